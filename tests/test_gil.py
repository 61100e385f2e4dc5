"""A `def` endpoint's C call that keeps the GIL stops the loop from its worker thread.

FastAPI runs `def` endpoints in anyio's thread pool, which is right for calls that wait
(they let the GIL go). A C call that keeps the GIL for its whole length (`json.dumps` of a
big object) stops every Python thread, the loop's too: the plugin names the worker's
request, handler and line.
"""

from __future__ import annotations

from fnmatch import fnmatch

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


def test_another_threads_collection_does_not_hide_a_worker_keeping_the_gil(
    project: Project,
) -> None:
    # A full collection run by another thread can let the GIL go in a finalizer (a wait, a
    # socket's close) for as long as the worker keeps it: the collection's wall time spans
    # the worker's whole call, yet none of the call is the collection's.
    project.app(GIL_APP)
    project.tests(
        """
        import gc
        import threading
        import time

        import pytest

        class WaitsWhenCollected:
            def __init__(self, waiting):
                self.waiting = waiting
                self.cycle = self

            def __del__(self):
                self.waiting.set()
                time.sleep(2.5)

        def collect(waiting):
            WaitsWhenCollected(waiting)
            gc.collect()

        @pytest.mark.noblock
        async def test_export(noblock_client):
            waiting = threading.Event()
            collector = threading.Thread(target=collect, args=(waiting,))
            collector.start()
            waiting.wait()
            assert (await noblock_client.get("/export")).status_code == 200
            collector.join()
        """
    )
    result = project.run_subprocess()
    result.assert_outcomes(failed=1)
    line = line_of(GIL_APP, "json.dumps(BIG)")
    result.stdout.fnmatch_lines(
        [
            f"noblock: GET /export held the event loop for * ms at app.py:{line} (budget 50 ms)",
            "  handler   app:export  (in a worker thread, keeping the GIL)",
        ]
    )


def test_every_hold_is_named_at_its_line_when_the_worker_ends_first(project: Project) -> None:
    # On 3.12 and 3.13 the worker often gets the GIL back before the watchdog and finishes
    # its whole call (or the test ends) before the watchdog looks: 1 hold in 4 was missed.
    project.app(GIL_APP)
    project.tests(
        """
        import sys
        import pytest
        from starlette.testclient import TestClient
        from app import app

        @pytest.mark.noblock
        @pytest.mark.parametrize("n", range(6))
        def test_testclient(n):
            with TestClient(app) as client:
                assert client.get("/export").status_code == 200

        @pytest.mark.noblock
        @pytest.mark.parametrize("n", range(6))
        async def test_client(n, noblock_client):
            assert (await noblock_client.get("/export")).status_code == 200

        def test_nothing_left_behind():
            monitoring = getattr(sys, "monitoring", None)
            if monitoring is not None:
                assert [monitoring.get_tool(tool) for tool in range(6)].count(
                    "pytest-noblock"
                ) == 0
        """
    )
    result = project.run_subprocess()
    result.assert_outcomes(failed=12, passed=1)
    line = line_of(GIL_APP, "json.dumps(BIG)")
    headline = f"noblock: GET /export held the event loop for * ms at app.py:{line} (budget 50 ms)"
    assert sum(1 for text in result.stdout.lines if fnmatch(text, headline)) == 12, (
        result.stdout.str()
    )


def test_a_full_collection_in_a_worker_thread_is_not_its_requests_hold(project: Project) -> None:
    # The worker's full collection keeps the GIL as long as `json.dumps(BIG)` does, yet it
    # walks the whole heap (in a test run, the whole suite's): not the call's cost, and not
    # counted when the loop thread runs one either. The heap grows until one collection
    # clearly outlasts the budget.
    app = """
        import gc
        import time
        from fastapi import FastAPI

        app = FastAPI()
        HEAP = []


        def full_collection_s():
            start = time.perf_counter()
            gc.collect()
            return time.perf_counter() - start


        while full_collection_s() < 0.15 and len(HEAP) < 16_000_000:
            HEAP.extend([] for _ in range(500_000))


        @app.get("/collect")
        def collect():
            gc.collect()
            return {}
        """
    project.app(app)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        async def test_collect(noblock_client):
            assert (await noblock_client.get("/collect")).status_code == 200
        """
    )
    result = project.run_subprocess()
    result.assert_outcomes(passed=1)


def test_a_machine_stall_while_a_worker_waits_is_not_a_gil_hold(project: Project) -> None:
    # The whole process stopped for 300 ms (SIGSTOP, as a busy VM host or a debugger does)
    # while a `def` endpoint slept in its worker thread: the watchdog woke up late, but the
    # worker had not run, so it had kept no GIL. (A Prefect test failed so under load.)
    project.app(
        """
        import os
        import subprocess
        import time

        from fastapi import FastAPI

        app = FastAPI()

        @app.get("/wait")
        def wait():
            pid = os.getpid()
            stall = f"sleep 0.1; kill -STOP {pid}; sleep 0.3; kill -CONT {pid}"
            subprocess.Popen(["sh", "-c", stall])
            time.sleep(0.6)
            return {}
        """
    )
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        async def test_wait(noblock_client):
            assert (await noblock_client.get("/wait")).status_code == 200
        """
    )
    # In a process of its own: the stall stops every thread of the process it is sent to.
    result = project.run_subprocess()
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*keeping the GIL*")
