"""Tests run by anyio's plugin on trio (as a guest run): watched like asyncio ones."""

from __future__ import annotations

import fastapi  # noqa: F401
import pytest
from conftest import SLOW_AND_FAST_APP, SLOW_REPORT, Project

APP = SLOW_AND_FAST_APP

TESTS = """
import httpx
import pytest
from app import app

pytestmark = pytest.mark.anyio

@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    return request.param

@pytest.mark.noblock
async def test_blocking():
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/fast")).status_code == 200
        assert (await client.get("/slow")).status_code == 200

@pytest.mark.noblock
async def test_clean():
    import anyio
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for _ in range(20):
            assert (await client.get("/fast")).json() == {"ok": True}
        await anyio.sleep(0.3)  # idle: trio's guest loop waits in queue.get
"""


def test_trio_and_asyncio_backends(project: Project) -> None:
    project.app(APP)
    project.tests(TESTS)
    result = project.run("-p", "no:asyncio")
    result.assert_outcomes(passed=2, failed=2)
    for backend in ("asyncio", "trio"):
        result.stdout.fnmatch_lines(
            [f"FAILED test_app.py::test_blocking[[]{backend}[]] - *noblock: GET /slow held*"]
        )
    result.stdout.fnmatch_lines(SLOW_REPORT[:3])
    result.stdout.no_fnmatch_line("*nothing was watched*")


def test_trio_test_code_hold_is_a_note(project: Project) -> None:
    project.app(APP)
    project.tests(
        """
        import time
        import pytest

        @pytest.fixture
        def anyio_backend():
            return "trio"

        @pytest.mark.anyio
        @pytest.mark.noblock
        async def test_own_code():
            time.sleep(0.2)
        """
    )
    result = project.run("-p", "no:asyncio")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["test_app.py::test_own_code: the test's own code held the event loop for * ms*"]
    )


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_noblock_client_on_both_backends(project: Project, backend: str) -> None:
    project.app(
        APP.replace(
            "app = FastAPI()",
            "import contextlib\n\n@contextlib.asynccontextmanager\nasync def lifespan(app):\n"
            "    app.state.ready = True\n    yield\n    app.state.ready = False\n\n"
            "app = FastAPI(lifespan=lifespan)",
        )
    )
    project.tests(
        f"""
        import pytest
        from app import app

        @pytest.fixture
        def anyio_backend():
            return "{backend}"

        @pytest.mark.anyio
        @pytest.mark.noblock
        async def test_blocking(noblock_client):
            assert app.state.ready
            assert (await noblock_client.get("/slow")).status_code == 200

        @pytest.mark.anyio
        @pytest.mark.noblock
        async def test_clean(noblock_client):
            assert (await noblock_client.get("/fast")).json() == {{"ok": True}}

        def test_shut_down():
            assert app.state.ready is False
        """
    )
    result = project.run("-p", "no:asyncio")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["FAILED test_app.py::test_blocking - *noblock: GET /slow held*"])
