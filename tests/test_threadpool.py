"""Thread-pool starvation: `def` endpoints waiting for one of the limiter's 40 threads."""

from __future__ import annotations

import fastapi  # noqa: F401
from conftest import Project

APP = """
import time
from fastapi import FastAPI

app = FastAPI()

@app.get("/sync")
def sync():
    time.sleep(0.5)
    return {}

@app.get("/quick")
def quick():
    return {}
"""

# The budget is generous: these tests are about the pool; starting 40 worker threads on a
# busy machine is not what they check.
ASYNC_TESTS = """
import asyncio
import pytest

@pytest.mark.noblock(budget_ms=500{marker})
async def test_many(noblock_client):
    responses = await asyncio.gather(*(noblock_client.get("/sync") for _ in range(50)))
    assert all(response.status_code == 200 for response in responses)

@pytest.mark.noblock(budget_ms=500{marker})
async def test_few(noblock_client):
    responses = await asyncio.gather(*(noblock_client.get("/quick") for _ in range(10)))
    assert all(response.status_code == 200 for response in responses)
"""

WAIT_NOTE = (
    "test_app.py::test_many: thread pool: 10 calls waited for a worker thread "
    "(all 40 were busy*); longest wait * ms; threads held by: 40 x GET /sync (app:sync)"
)


def test_waiting_for_a_thread_is_a_note(project: Project) -> None:
    project.app(APP)
    project.tests(ASYNC_TESTS.format(marker=""))
    result = project.run()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*= noblock notes =*", WAIT_NOTE])
    result.stdout.no_fnmatch_line("test_app.py::test_few: thread pool*")


def test_a_thread_pool_note_belongs_to_its_own_test(project: Project) -> None:
    # The unmarked test saturates the pool through noblock_client; the marked sync test
    # after it starts no loop. Its report must not inherit the first test's waits.
    project.app(APP)
    project.tests(
        """
        import asyncio
        import pytest

        async def test_unmarked_many(noblock_client):
            responses = await asyncio.gather(*(noblock_client.get("/sync") for _ in range(50)))
            assert all(response.status_code == 200 for response in responses)

        @pytest.mark.noblock
        def test_marked_sync():
            assert True
        """
    )
    result = project.run()
    result.assert_outcomes(passed=2)
    result.stdout.no_fnmatch_line("*thread pool:*")


def test_max_thread_wait_ms_marker_fails(project: Project) -> None:
    project.app(APP)
    project.tests(ASYNC_TESTS.format(marker=", max_thread_wait_ms=100"))
    result = project.run()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "noblock: requests waited * ms for a worker thread (max_thread_wait_ms 100 ms)",
            "  thread pool: 10 calls waited for a worker thread (all 40 were busy*); longest wait "
            "* ms; threads held by: 40 x GET /sync (app:sync)",
            "  instead *",
        ]
    )


def test_max_thread_wait_ms_ini_and_generous_bound(project: Project) -> None:
    project.ini(asyncio_mode="auto", noblock_max_thread_wait_ms="5000")
    project.app(APP)
    project.tests(ASYNC_TESTS.format(marker=""))
    result = project.run()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([WAIT_NOTE])


def test_max_thread_wait_ms_bad_value(project: Project) -> None:
    project.app(APP)
    project.tests(ASYNC_TESTS.format(marker=", max_thread_wait_ms='soon'"))
    result = project.run()
    result.stderr.fnmatch_lines(
        [
            "ERROR: noblock: test_app.py::test_many: @pytest.mark.noblock(max_thread_wait_ms=...) "
            "must be a positive number of milliseconds, got 'soon'"
        ]
    )


def test_testclient_thread_pool(project: Project) -> None:
    # 50 test threads reach the portal one by one; a longer sleep keeps the pool full
    # until the last of them has queued, even on a busy machine.
    project.app(APP.replace("time.sleep(0.5)", "time.sleep(1.0)"))
    project.tests(
        """
        import concurrent.futures
        import pytest
        from starlette.testclient import TestClient
        from app import app

        @pytest.mark.noblock(budget_ms=500, max_thread_wait_ms=100)
        def test_many():
            with TestClient(app) as client:
                with concurrent.futures.ThreadPoolExecutor(50) as pool:
                    responses = list(pool.map(lambda _: client.get("/sync"), range(50)))
            assert all(response.status_code == 200 for response in responses)
        """
    )
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["noblock: requests waited * ms for a worker thread (max_thread_wait_ms 100 ms)"]
    )


def test_thread_pool_on_trio(project: Project) -> None:
    project.app(APP)
    project.tests(
        """
        import anyio
        import pytest

        @pytest.fixture
        def anyio_backend():
            return "trio"

        @pytest.mark.anyio
        @pytest.mark.noblock(budget_ms=500)
        async def test_many(noblock_client):
            statuses = []

            async def get():
                statuses.append((await noblock_client.get("/sync")).status_code)

            async with anyio.create_task_group() as group:
                for _ in range(50):
                    group.start_soon(get)
            assert statuses == [200] * 50
        """
    )
    result = project.run("-p", "no:asyncio")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([WAIT_NOTE])
