"""Every place a handler's code runs, on FastAPI and plain Starlette, through both clients.

Each case blocks in one place only (its own path); the report must name that request and
the blocking line, whether the test uses `noblock_client` or a sync `TestClient`.
"""

from __future__ import annotations

import textwrap

import fastapi  # noqa: F401
import pytest
from conftest import Project

FASTAPI_APP = """
import time
from fastapi import BackgroundTasks, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

app = FastAPI()


class Boom(Exception):
    pass


@app.middleware("http")
async def http_middleware(request: Request, call_next):
    if request.url.path == "/middleware":
        time.sleep(0.2)  # hold:middleware
    return await call_next(request)


class PureMiddleware:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope.get("path") == "/asgi-middleware":
            time.sleep(0.2)  # hold:asgi-middleware
        await self.app(scope, receive, send)


app.add_middleware(PureMiddleware)


@app.exception_handler(Boom)
async def on_boom(request: Request, exc: Boom):
    time.sleep(0.2)  # hold:exception-handler
    return JSONResponse({"error": "boom"}, status_code=418)


async def plain_dependency():
    time.sleep(0.2)  # hold:dependency
    return 1


async def yield_dependency():
    yield 1
    time.sleep(0.2)  # hold:yield-cleanup


@app.get("/dependency")
async def uses_dependency(value: int = Depends(plain_dependency)):
    return {}


@app.get("/yield-cleanup")
async def uses_yield_dependency(value: int = Depends(yield_dependency)):
    return {}


@app.get("/middleware")
async def behind_middleware():
    return {}


@app.get("/asgi-middleware")
async def behind_asgi_middleware():
    return {}


@app.get("/exception-handler")
async def raises():
    raise Boom()


async def background_job():
    time.sleep(0.2)  # hold:background


@app.get("/background")
async def with_background(tasks: BackgroundTasks):
    tasks.add_task(background_job)
    return {}


async def chunks():
    yield b"a"
    time.sleep(0.2)  # hold:streaming
    yield b"b"


@app.get("/streaming")
async def streaming():
    return StreamingResponse(chunks())
"""

STARLETTE_APP = """
import time
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route


class Boom(Exception):
    pass


async def dispatch(request, call_next):
    if request.url.path == "/middleware":
        time.sleep(0.2)  # hold:middleware
    return await call_next(request)


class PureMiddleware:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope.get("path") == "/asgi-middleware":
            time.sleep(0.2)  # hold:asgi-middleware
        await self.app(scope, receive, send)


async def on_boom(request, exc):
    time.sleep(0.2)  # hold:exception-handler
    return JSONResponse({"error": "boom"}, status_code=418)


async def ok(request):
    return JSONResponse({})


async def raises(request):
    raise Boom()


async def background_job():
    time.sleep(0.2)  # hold:background


async def with_background(request):
    return JSONResponse({}, background=BackgroundTask(background_job))


async def chunks():
    yield b"a"
    time.sleep(0.2)  # hold:streaming
    yield b"b"


async def streaming(request):
    return StreamingResponse(chunks())


app = Starlette(
    routes=[
        Route("/middleware", ok),
        Route("/asgi-middleware", ok),
        Route("/exception-handler", raises),
        Route("/background", with_background),
        Route("/streaming", streaming),
    ],
    middleware=[Middleware(BaseHTTPMiddleware, dispatch=dispatch), Middleware(PureMiddleware)],
    exception_handlers={Boom: on_boom},
)
"""


def hold_lines(source: str) -> dict[str, int]:
    lines = textwrap.dedent(source).lstrip("\n").splitlines()
    return {
        line.split("# hold:")[1]: number
        for number, line in enumerate(lines, start=1)
        if "# hold:" in line
    }


def write_tests(places: list[str]) -> str:
    body = [
        "import pytest",
        "from starlette.testclient import TestClient",
        "from app import app",
        "",
    ]
    for place in places:
        name = place.replace("-", "_")
        body += [
            "@pytest.mark.noblock",
            f"async def test_{name}_async(noblock_client):",
            f'    await noblock_client.get("/{place}")',
            "",
            "@pytest.mark.noblock",
            f"def test_{name}_sync():",
            f'    TestClient(app, raise_server_exceptions=False).get("/{place}")',
            "",
        ]
    return "\n".join(body)


@pytest.mark.parametrize("source", [FASTAPI_APP, STARLETTE_APP], ids=["fastapi", "starlette"])
def test_holds_are_caught_where_the_handler_code_runs(project: Project, source: str) -> None:
    places = hold_lines(source)
    project.app(source)
    project.tests(write_tests(list(places)))
    result = project.run()
    result.assert_outcomes(failed=2 * len(places))
    for place, line in places.items():
        name = place.replace("-", "_")
        for kind in ("async", "sync"):
            result.stdout.fnmatch_lines(
                [
                    f"*_ test_{name}_{kind} _*",
                    f"noblock: GET /{place} held the event loop for * ms at app.py:{line} "
                    "(budget 50 ms)",
                ]
            )


LIFESPAN_APP = """
import contextlib
import time
from fastapi import FastAPI


@contextlib.asynccontextmanager
async def lifespan(app):
    time.sleep(0.2)  # hold:startup
    yield
    time.sleep(0.2)  # hold:shutdown


app = FastAPI(lifespan=lifespan)


@app.get("/fast")
async def fast():
    return {}
"""


LIFESPAN_TESTS = {
    "async": """
        import pytest

        @pytest.mark.noblock
        @pytest.mark.parametrize("n", [1, 2, 3])
        async def test_async(noblock_client, n):
            assert (await noblock_client.get("/fast")).status_code == 200
        """,
    "sync": """
        import pytest
        from starlette.testclient import TestClient
        from app import app

        @pytest.mark.noblock
        @pytest.mark.parametrize("n", [1, 2, 3])
        def test_sync(n):
            with TestClient(app) as client:
                assert client.get("/fast").status_code == 200
        """,
}


@pytest.mark.parametrize("kind", list(LIFESPAN_TESTS))
def test_lifespan_startup_and_shutdown_are_notes_told_once(project: Project, kind: str) -> None:
    lines = hold_lines(LIFESPAN_APP)
    project.app(LIFESPAN_APP)
    project.tests(LIFESPAN_TESTS[kind])
    result = project.run()
    result.assert_outcomes(passed=3)
    for phase in ("startup", "shutdown"):
        # Told for the first test; every test's lifespan is summed up once at the end.
        result.stdout.fnmatch_lines(
            [
                f"test_app.py::test_{kind}[[]1]: the app's lifespan held the event loop for * ms "
                f"at app.py:{lines[phase]} (budget 50 ms); not counted against the app "
                "(count it with @pytest.mark.noblock(count_lifespan=True))"
            ]
        )
        result.stdout.fnmatch_lines(
            [
                "the app's lifespan (noted, not failed; count_lifespan=True counts it):",
                f"      3 x app.py:{lines[phase]} in lifespan, longest * ms",
            ],
            consecutive=False,
        )
    result.stdout.no_fnmatch_line(f"test_app.py::test_{kind}[[]2]*")
    result.stdout.no_fnmatch_line("*longest holds*the app's lifespan*")
    assert not [line for line in result.stdout.lines if "  the app's lifespan  " in line]


def test_lifespan_holds_fail_with_count_lifespan(project: Project) -> None:
    lines = hold_lines(LIFESPAN_APP)
    project.app(LIFESPAN_APP)
    project.tests(
        """
        import pytest
        from starlette.testclient import TestClient
        from app import app

        @pytest.mark.noblock(count_lifespan=True)
        async def test_async(noblock_client):
            assert (await noblock_client.get("/fast")).status_code == 200

        @pytest.mark.noblock(count_lifespan=True)
        def test_sync():
            with TestClient(app) as client:
                assert client.get("/fast").status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(failed=2)
    for kind in ("async", "sync"):
        result.stdout.fnmatch_lines(
            [
                f"*_ test_{kind} _*",
                "noblock: 2 holds of the event loop over the 50 ms budget; worst: the app's "
                "lifespan held the event loop for * ms at app.py:* (budget 50 ms)",
            ]
        )
    for phase in ("startup", "shutdown"):
        result.stdout.fnmatch_lines([f"*call      app.py:{lines[phase]} in lifespan"])


def test_ini_count_lifespan_fails_and_the_marker_opts_out(project: Project) -> None:
    project.app(LIFESPAN_APP)
    project.ini(asyncio_mode="auto", noblock_count_lifespan="true")
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        async def test_counted(noblock_client):
            assert (await noblock_client.get("/fast")).status_code == 200

        @pytest.mark.noblock(count_lifespan=False)
        async def test_noted(noblock_client):
            assert (await noblock_client.get("/fast")).status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        ["FAILED test_app.py::test_counted - noblock: 2 holds of the event loop*"]
    )
    result.stdout.fnmatch_lines(
        ["test_app.py::test_noted: the app's lifespan held the event loop for * ms *"]
    )


WEBSOCKET_APP = """
import time
from fastapi import FastAPI, WebSocket

app = FastAPI()


@app.websocket("/ws")
async def echo(websocket: WebSocket):
    await websocket.accept()
    text = await websocket.receive_text()
    if text == "hold":
        time.sleep(0.2)  # hold:websocket
    await websocket.send_text(text)
    await websocket.close()


@app.get("/fast")
async def fast():
    return {}


@app.get("/slow")
async def slow():
    time.sleep(0.2)  # hold:slow
    return {}
"""


def test_websocket_through_httpx_ws_then_timing_tests_in_the_same_run(
    project: Project,
) -> None:
    # httpx-ws runs the app in a task of its own, outside `handle_async_request`. The
    # websocket tests come first on one shared loop; the tests after them must see every
    # patch undone, no task or thread left over, and timing judged as if they ran alone.
    lines = hold_lines(WEBSOCKET_APP)
    project.app(WEBSOCKET_APP)
    project.tests(
        """
        import asyncio
        import threading

        import httpx
        import pytest
        from httpx_ws import aconnect_ws
        from httpx_ws.transport import ASGIWebSocketAsyncNetworkStream, ASGIWebSocketTransport
        from app import app

        pytestmark = pytest.mark.asyncio(loop_scope="module")


        def patchable():
            return [
                httpx.ASGITransport.handle_async_request,
                ASGIWebSocketTransport.handle_async_request,
                ASGIWebSocketAsyncNetworkStream.__init__,
                ASGIWebSocketAsyncNetworkStream._run,
            ]


        BEFORE = patchable()
        THREADS = set(threading.enumerate())


        async def echo(text):
            transport = ASGIWebSocketTransport(app)
            async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
                async with aconnect_ws("/ws", client) as ws:
                    await ws.send_text(text)
                    assert await ws.receive_text() == text
                # Plain HTTP through the same transport is still a request of its own.
                assert (await client.get("/fast")).status_code == 200


        @pytest.mark.noblock
        async def test_ws_blocking():
            await echo("hold")


        @pytest.mark.noblock
        async def test_ws_clean():
            await echo("hi")


        @pytest.mark.noblock
        async def test_clean_after_ws(noblock_client):
            for _ in range(50):
                assert (await noblock_client.get("/fast")).status_code == 200


        @pytest.mark.noblock
        async def test_hold_after_ws(noblock_client):
            assert (await noblock_client.get("/slow")).status_code == 200


        async def test_nothing_left_after_ws():
            assert patchable() == BEFORE
            assert asyncio.all_tasks() == {asyncio.current_task()}
            assert set(threading.enumerate()) <= THREADS
        """
    )
    result = project.run("-p", "no:randomly")
    result.assert_outcomes(passed=3, failed=2)
    line = lines["websocket"]
    result.stdout.fnmatch_lines(
        [
            "*_ test_ws_blocking _*",
            f"noblock: WEBSOCKET /ws held the event loop for * ms at app.py:{line} (budget 50 ms)",
            "  handler   app:echo",
            f"  call      app.py:{line} in echo",
            "                time.sleep(0.2)  # hold:websocket",
            "*",
            "  why       `time.sleep` stops the whole loop",
            "*_ test_hold_after_ws _*",
            f"noblock: GET /slow held the event loop for * ms at app.py:{lines['slow']} "
            "(budget 50 ms)",
            "  handler   app:slow",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "FAILED test_app.py::test_ws_blocking - *",
            "FAILED test_app.py::test_hold_after_ws - *",
        ]
    )
    # Neither "the test's own code" nor "code outside the test": every hold had its request.
    result.stdout.no_fnmatch_line("*not counted against the app*")


def test_httpx2_transports_are_tied_to_their_requests(project: Project) -> None:
    # httpx2 is the fork Starlette's TestClient now asks for; its ASGITransport and its
    # WebSocket transport (httpx-ws, vendored) are classes of their own.
    lines = hold_lines(WEBSOCKET_APP)
    project.app(WEBSOCKET_APP)
    project.tests(
        """
        import httpx2
        import pytest
        from httpx2.websockets import ASGIWebSocketTransport
        from app import app


        def client(transport):
            return httpx2.AsyncClient(transport=transport, base_url="http://x")


        @pytest.mark.noblock
        async def test_http_blocking():
            async with client(httpx2.ASGITransport(app=app)) as http:
                assert (await http.get("/slow")).status_code == 200


        @pytest.mark.noblock
        async def test_http_clean():
            async with client(httpx2.ASGITransport(app=app)) as http:
                for _ in range(50):
                    assert (await http.get("/fast")).status_code == 200


        @pytest.mark.noblock
        async def test_ws_blocking():
            async with client(ASGIWebSocketTransport(app)) as http:
                async with http.websocket("/ws") as ws:
                    await ws.send_text("hold")
                    assert await ws.receive_text() == "hold"
        """
    )
    result = project.run("-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*_ test_http_blocking _*",
            f"noblock: GET /slow held the event loop for * ms at app.py:{lines['slow']} "
            "(budget 50 ms)",
            "  handler   app:slow",
            "*_ test_ws_blocking _*",
            f"noblock: WEBSOCKET /ws held the event loop for * ms at app.py:"
            f"{lines['websocket']} (budget 50 ms)",
            "  handler   app:echo",
        ]
    )
    result.stdout.no_fnmatch_line("*not counted against the app*")
