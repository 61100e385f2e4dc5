"""A `def` endpoint's C call that keeps the GIL stops the loop from its worker thread.

FastAPI runs `def` endpoints in anyio's thread pool, which is right for calls that wait
(they let the GIL go). A C call that keeps the GIL for its whole length (`json.dumps` of a
big object) stops every Python thread, the loop's too: the plugin names the worker's
request, handler and line.
"""

from __future__ import annotations

# Kept in sys.modules between in-process runs (see test_kinds.py).
import fastapi  # noqa: F401
from conftest import Project, line_of

GIL_APP = """
    import json
    from fastapi import FastAPI
    from fastapi.responses import Response

    app = FastAPI()
    BIG = [{"id": n, "name": "x" * 20, "tags": list(range(10))} for n in range(150_000)]

    @app.get("/export")
    def export():
        return Response(json.dumps(BIG), media_type="application/json")

    @app.get("/crunch")
    def crunch():
        # Pure Python: the interpreter hands the GIL over every few milliseconds.
        total = 0
        for n in range(3_000_000):
            total += n * n
        return {"total": total}
    """

TESTS = """
    import pytest

    @pytest.mark.noblock
    async def test_export(noblock_client):
        assert (await noblock_client.get("/export")).status_code == 200

    @pytest.mark.noblock
    async def test_crunch(noblock_client):
        assert (await noblock_client.get("/crunch")).status_code == 200
    """


def test_a_def_endpoint_keeping_the_gil_is_named_and_a_python_loop_is_not(
    project: Project,
) -> None:
    project.app(GIL_APP)
    project.tests(TESTS)
    result = project.run_subprocess()
    result.assert_outcomes(failed=1, passed=1)
    line = line_of(GIL_APP, "json.dumps(BIG)")
    result.stdout.fnmatch_lines(
        [
            "*_ test_export _*",
            f"noblock: GET /export held the event loop for * ms at app.py:{line} (budget 50 ms)",
            "  handler   app:export  (in a worker thread, keeping the GIL)",
            f"  call      app.py:{line} in export",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "  why       a C call that keeps the GIL: it stops the event loop even from a worker "
            "thread",
        ]
    )
    result.stdout.no_fnmatch_line("*_ test_crunch _*")


def test_a_gil_holding_call_through_testclient_is_named(project: Project) -> None:
    project.app(GIL_APP)
    project.tests(
        """
        import pytest
        from starlette.testclient import TestClient
        from app import app

        @pytest.mark.noblock
        def test_export():
            with TestClient(app) as client:
                assert client.get("/export").status_code == 200
        """
    )
    result = project.run_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "noblock: GET /export held the event loop for * ms at app.py:* (budget 50 ms)",
            "  handler   app:export  (in a worker thread, keeping the GIL)",
        ]
    )
