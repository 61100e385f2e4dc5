"""The seeds' bad example, end to end: the smallest proof that the plugin works."""

from __future__ import annotations

from conftest import Project, on_loops


@on_loops
def test_blocking_handler_fails_and_names_the_line(project: Project) -> None:
    project.app(
        """
        import time
        from fastapi import FastAPI

        app = FastAPI()

        @app.get("/slow")
        async def slow():
            time.sleep(0.2)
            return {}
        """
    )
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        async def test_slow(noblock_client):
            assert (await noblock_client.get("/slow")).status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "noblock: GET /slow held the event loop for * ms at app.py:8 (budget 50 ms)",
            "  handler   app:slow",
            "  call      app.py:8 in slow",
            "                time.sleep(0.2)",
            "                ^^^^^^^^^^^^^^^",
        ]
    )
