"""Sync tests with Starlette's and FastAPI's `TestClient`: the app runs in a portal thread."""

from __future__ import annotations

# Imported here, in the outer process, so every in-process pytester run shares one copy of
# FastAPI and Starlette (a half-imported Starlette left over between runs breaks routing).
import fastapi  # noqa: F401
import pytest
from conftest import SLOW_AND_FAST_APP, SLOW_REPORT, Project

APP = SLOW_AND_FAST_APP
BLOCKING_REPORT = [*SLOW_REPORT, "  why       `time.sleep` stops the whole loop"]

WITH_BLOCK = """
import pytest
from starlette.testclient import TestClient
from app import app

@pytest.mark.noblock
def test_blocking():
    with TestClient(app) as client:
        assert client.get("/fast").status_code == 200
        assert client.get("/slow").status_code == 200

@pytest.mark.noblock
def test_clean():
    with TestClient(app) as client:
        for _ in range(20):
            assert client.get("/fast").json() == {"ok": True}
"""


@pytest.mark.parametrize("with_block", [True, False], ids=["with", "without-with"])
def test_testclient_blocking_fails_clean_passes(project: Project, with_block: bool) -> None:
    project.app(APP)
    source = WITH_BLOCK
    if not with_block:
        source = source.replace("with TestClient(app) as client:", "if client := TestClient(app):")
    project.tests(source)
    result = project.run()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(BLOCKING_REPORT)
    result.stdout.fnmatch_lines(["FAILED test_app.py::test_blocking - *noblock: GET /slow held*"])
    result.stdout.no_fnmatch_line("*nothing was watched*")


def test_fastapi_testclient_and_plain_starlette(project: Project) -> None:
    project.app(
        """
        import time
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        async def slow(request):
            time.sleep(0.2)
            return JSONResponse({})

        app = Starlette(routes=[Route("/slow", slow)])
        """
    )
    project.tests(
        """
        import pytest
        from fastapi.testclient import TestClient
        from app import app

        @pytest.mark.noblock
        def test_blocking():
            client = TestClient(app)
            assert client.get("/slow").status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "noblock: GET /slow held the event loop for * ms at app.py:7 (budget 50 ms)",
            "  handler   app:slow",
        ]
    )


def test_waiting_for_the_portal_is_not_a_hold(project: Project) -> None:
    project.app(
        """
        import asyncio
        from fastapi import FastAPI

        app = FastAPI()

        @app.get("/wait")
        async def wait():
            await asyncio.sleep(0.3)
            return {}
        """
    )
    project.tests(
        """
        import time
        import pytest
        from starlette.testclient import TestClient
        from app import app

        @pytest.mark.noblock
        def test_waits():
            with TestClient(app) as client:
                time.sleep(0.2)  # the test's own thread: no loop runs here
                assert client.get("/wait").status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*held the event loop*")
    result.stdout.no_fnmatch_line("*nothing was watched*")


def test_no_portal_threads_or_patches_left_behind(project: Project) -> None:
    project.app(APP)
    project.tests(
        """
        import threading
        import anyio.from_thread
        import asyncio
        import pytest
        import starlette.testclient
        from starlette.testclient import TestClient
        from app import app

        ORIGINAL_PORTAL = anyio.from_thread.start_blocking_portal
        ORIGINAL_HANDLE = starlette.testclient._TestClientTransport.handle_request
        ORIGINAL_RUN = asyncio.Handle._run

        @pytest.mark.noblock
        def test_blocking():
            with TestClient(app) as client:
                client.get("/slow")

        def test_after():
            assert anyio.from_thread.start_blocking_portal is ORIGINAL_PORTAL
            assert starlette.testclient._TestClientTransport.handle_request is ORIGINAL_HANDLE
            assert asyncio.Handle._run is ORIGINAL_RUN
            names = [thread.name for thread in threading.enumerate()]
            assert not [name for name in names if "noblock" in name], names
        """
    )
    result = project.run()
    result.assert_outcomes(passed=1, failed=1)


def test_sync_test_without_a_loop_says_nothing_was_watched(project: Project) -> None:
    project.app(APP)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        def test_sync():
            assert 1 + 1 == 2
        """
    )
    result = project.run()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*= noblock notes =*",
            "test_app.py::test_sync: nothing was watched: no event loop ran in this sync test*",
        ]
    )


def test_lifespan_in_a_with_block_is_a_note(project: Project) -> None:
    project.app(
        """
        import contextlib
        import time
        from fastapi import FastAPI

        @contextlib.asynccontextmanager
        async def lifespan(app):
            time.sleep(0.2)
            yield

        app = FastAPI(lifespan=lifespan)

        @app.get("/fast")
        async def fast():
            return {}
        """
    )
    project.tests(
        """
        import pytest
        from starlette.testclient import TestClient
        from app import app

        @pytest.mark.noblock
        def test_startup():
            with TestClient(app) as client:
                assert client.get("/fast").status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*= noblock notes =*",
            "test_app.py::test_startup: the app's lifespan held the event loop for * ms at "
            "app.py:7 (budget 50 ms); not counted against the app*",
        ]
    )


def test_websocket_connect(project: Project) -> None:
    project.app(
        """
        import time
        from fastapi import FastAPI, WebSocket

        app = FastAPI()

        @app.websocket("/ws")
        async def echo(websocket: WebSocket):
            await websocket.accept()
            text = await websocket.receive_text()
            time.sleep(0.2)
            await websocket.send_text(text)
            await websocket.close()
        """
    )
    project.tests(
        """
        import pytest
        from starlette.testclient import TestClient
        from app import app

        @pytest.mark.noblock
        def test_ws():
            with TestClient(app).websocket_connect("/ws") as websocket:
                websocket.send_text("hi")
                assert websocket.receive_text() == "hi"
        """
    )
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "noblock: WEBSOCKET /ws held the event loop for * ms at app.py:10 (budget 50 ms)",
            "  handler   app:echo",
        ]
    )


def test_c_call_in_a_portal_thread_is_caught(project: Project) -> None:
    # The CPU-time alarm only samples the main thread; a portal loop is not on it. The
    # hold is measured all the same, and the watchdog usually sees the call's line.
    project.app(
        """
        import json
        from fastapi import FastAPI

        app = FastAPI()
        BIG = [{"key": index, "values": list(range(50))} for index in range(40000)]

        @app.get("/dump")
        async def dump():
            for _ in range(3):
                json.dumps(BIG)
            return {}
        """
    )
    project.tests(
        """
        import pytest
        from starlette.testclient import TestClient
        from app import app

        @pytest.mark.noblock
        def test_dump():
            assert TestClient(app).get("/dump").status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["noblock: GET /dump held the event loop for * ms*"])


def test_client_from_a_fixture_started_before_the_test(project: Project) -> None:
    # The usual FastAPI suite: the `with TestClient(app)` block is entered in a fixture,
    # before the test body, so its portal loop already runs when the watch begins.
    project.app(APP)
    project.tests(
        """
        import pytest
        from starlette.testclient import TestClient
        from app import app

        @pytest.fixture(scope="module")
        def client():
            with TestClient(app) as client:
                yield client

        @pytest.mark.noblock
        def test_blocking(client):
            assert client.get("/slow").status_code == 200

        @pytest.mark.noblock
        def test_clean(client):
            assert client.get("/fast").status_code == 200

        def test_unmarked(client):
            assert client.get("/slow").status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(BLOCKING_REPORT)
    result.stdout.fnmatch_lines(["FAILED test_app.py::test_blocking - *noblock: GET /slow held*"])


def test_testclient_on_the_trio_backend(project: Project) -> None:
    project.app(APP)
    project.tests(
        """
        import pytest
        from starlette.testclient import TestClient
        from app import app

        @pytest.mark.noblock
        def test_blocking():
            with TestClient(app, backend="trio") as client:
                assert client.get("/slow").status_code == 200

        @pytest.mark.noblock
        def test_clean():
            assert TestClient(app, backend="trio").get("/fast").status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(BLOCKING_REPORT)
    result.stdout.no_fnmatch_line("*nothing was watched*")
    result.stdout.no_fnmatch_line("*not watched*")


def test_testclient_in_an_async_test_is_watched_on_its_portal(project: Project) -> None:
    # The portal's loop serves the app: watched beside the test's own loop, which only
    # waits for it (the test's own code, a note).
    project.app(APP)
    project.tests(
        """
        import pytest
        from starlette.testclient import TestClient
        from app import app

        @pytest.mark.noblock
        async def test_blocking():
            with TestClient(app) as client:
                assert client.get("/slow").status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(BLOCKING_REPORT)
