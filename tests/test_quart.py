"""Quart apps: through Quart's own test client, `noblock_client` and any `httpx.ASGITransport`.

Quart keeps its routing in its request context, not in the ASGI scope: the handler and the
route template (`/items/<int:id>`) must still be named, and the advice given in Quart's
words (`run_sync`, a plain `def` route), never FastAPI's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import Project, line_of

# Kept in sys.modules between in-process runs, like FastAPI in the other files: every
# pytester run shares one copy of Quart.
quart = pytest.importorskip("quart", reason="Quart is not installed (the test extra has it)")

APP = """
import asyncio
import time
from quart import Quart

app = Quart(__name__)

@app.get("/items/<int:id>")
async def slow_item(id):
    time.sleep(0.2)  # the hold
    return {"id": id}

@app.get("/items/<int:id>/fast")
async def fast_item(id):
    await asyncio.sleep(0)
    return {"id": id}

@app.websocket("/ws")
async def echo():
    from quart import websocket
    text = await websocket.receive()
    time.sleep(0.2)  # the websocket's hold
    await websocket.send(text)
"""
SLEEP_LINE = line_of(APP, "# the hold")

SLOW_REPORT = [
    "noblock: GET /items/<int:id> held the event loop for * ms at "
    f"app.py:{SLEEP_LINE} (budget 50 ms)",
    "  handler   app:slow_item",
    f"  call      app.py:{SLEEP_LINE} in slow_item",
    "                time.sleep(0.2)  # the hold",
    "                ^^^^^^^^^^^^^^^",
    "  why       `time.sleep` stops the whole loop",
    "  instead   use `await asyncio.sleep(...)` (or `await anyio.sleep(...)`)",
    "            or make the route a plain `def`: Quart runs those in a worker thread",
]

TESTS = """
import httpx
import pytest
from app import app

@pytest.mark.noblock
async def test_test_client():
    client = app.test_client()
    assert (await client.get("/items/3/fast")).status_code == 200
    assert (await client.get("/items/3")).status_code == 200

@pytest.mark.noblock
async def test_noblock_client(noblock_client):
    assert (await noblock_client.get("/items/3")).status_code == 200

@pytest.mark.noblock
async def test_own_transport():
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/items/3")).status_code == 200
"""


def test_a_blocking_route_is_caught_through_every_client(project: Project) -> None:
    project.app(APP)
    project.tests(TESTS)
    result = project.run()
    result.assert_outcomes(failed=3)
    for name in ("test_test_client", "test_noblock_client", "test_own_transport"):
        result.stdout.fnmatch_lines(
            [f"FAILED test_app.py::{name} - noblock: GET /items/<int:id> held*"]
        )
    result.stdout.fnmatch_lines(SLOW_REPORT)
    result.stdout.no_fnmatch_line("*not routed to an endpoint*")
    result.stdout.no_fnmatch_line("*in a task the request started*")
    result.stdout.no_fnmatch_line("*run_in_threadpool*")
    result.stdout.no_fnmatch_line("*FastAPI*")
    result.stdout.no_fnmatch_line("*nothing was watched*")


def test_advice_is_quarts_run_sync(project: Project, slow_http: str) -> None:
    source = f"""
        import requests
        from quart import Quart

        app = Quart(__name__)

        @app.route("/call", methods=["POST"])
        async def call():
            return {{"status": requests.get("{slow_http}").status_code}}
        """
    project.app(source)
    project.tests(
        """
        import pytest
        from app import app

        @pytest.mark.noblock
        async def test_call():
            assert (await app.test_client().post("/call")).status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(failed=1)
    line = line_of(source, "requests.get")
    result.stdout.fnmatch_lines(
        [
            f"noblock: POST /call held the event loop for * ms at app.py:{line} (budget 50 ms)",
            "  handler   app:call",
            f"  call      app.py:{line} in call",
            "*instead   use `httpx.AsyncClient` (`await client.get(...)`), or "
            "`await run_sync(requests.get)(...)` (from quart)",
            "            or make the route a plain `def`: Quart runs those in a worker thread",
        ]
    )
    result.stdout.no_fnmatch_line("*run_in_threadpool*")


def test_blueprint_and_class_view_are_named_as_quart_routes_them(project: Project) -> None:
    project.app(
        """
        import time
        from quart import Blueprint, Quart
        from quart.views import MethodView

        shop = Blueprint("shop", __name__, url_prefix="/shop")

        @shop.get("/orders/<uuid:order>")
        async def order(order):
            time.sleep(0.2)
            return {}

        class Basket(MethodView):
            async def get(self, owner):
                time.sleep(0.2)
                return {}

        app = Quart(__name__)
        app.register_blueprint(shop)
        app.add_url_rule("/baskets/<owner>", view_func=Basket.as_view("basket"))
        """
    )
    project.tests(
        """
        import pytest
        from app import app

        @pytest.mark.noblock
        async def test_blueprint():
            client = app.test_client()
            response = await client.get("/shop/orders/6e7b2b52-1c4f-4d0a-9a53-0f7f3b1f2a10")
            assert response.status_code == 200

        @pytest.mark.noblock
        async def test_class_view():
            assert (await app.test_client().get("/baskets/ann")).status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "noblock: GET /shop/orders/<uuid:order> held the event loop for * ms at app.py:*",
            "  handler   app:order",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "noblock: GET /baskets/<owner> held the event loop for * ms at app.py:*",
            "  handler   app:Basket",
        ]
    )


def test_websocket_through_the_test_client(project: Project) -> None:
    project.app(APP)
    project.tests(
        """
        import pytest
        from app import app

        @pytest.mark.noblock
        async def test_ws():
            async with app.test_client().websocket("/ws") as websocket:
                await websocket.send("hi")
                assert await websocket.receive() == "hi"
        """
    )
    result = project.run()
    result.assert_outcomes(failed=1)
    line = line_of(APP, "# the websocket's hold")
    result.stdout.fnmatch_lines(
        [
            f"noblock: WEBSOCKET /ws held the event loop for * ms at app.py:{line} (budget 50 ms)",
            "  handler   app:echo",
        ]
    )


CLEAN_TESTS = """
import asyncio
import pytest
from app import app

@pytest.mark.noblock(budget_ms=20)
async def test_back_to_back():
    client = app.test_client()
    for index in range(50):
        assert (await client.get(f"/items/{index}/fast")).status_code == 200

@pytest.mark.noblock(budget_ms=20)
async def test_concurrent():
    client = app.test_client()
    responses = await asyncio.gather(*(client.get(f"/items/{i}/fast") for i in range(50)))
    assert {response.status_code for response in responses} == {200}

@pytest.mark.noblock(budget_ms=20)
async def test_concurrent_noblock_client(noblock_client):
    responses = await asyncio.gather(
        *(noblock_client.get(f"/items/{i}/fast") for i in range(50))
    )
    assert {response.status_code for response in responses} == {200}
"""


def test_clean_look_alike_passes_50_back_to_back_and_50_concurrent(project: Project) -> None:
    project.app(APP)
    project.tests(CLEAN_TESTS)
    result = project.run()
    result.assert_outcomes(passed=3)
    result.stdout.no_fnmatch_line("*held the event loop*")
    result.stdout.no_fnmatch_line("*nothing was watched*")


def test_strict_mode_catches_a_fast_blocking_call(project: Project) -> None:
    source = """
        import time
        from quart import Quart

        app = Quart(__name__)

        @app.get("/nap")
        async def nap():
            time.sleep(0.001)
            return {}
        """
    project.app(source)
    project.tests(
        """
        import pytest
        from app import app

        @pytest.mark.noblock(strict=True, budget_ms=10_000)
        async def test_nap():
            assert (await app.test_client().get("/nap")).status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(failed=1)
    line = line_of(source, "time.sleep(0.001)")
    result.stdout.fnmatch_lines(
        [
            f"noblock strict: GET /nap called time.sleep on the event loop at app.py:{line}*",
            "*handler   app:nap",
        ]
    )
    result.stdout.no_fnmatch_line("*run_in_threadpool*")


def test_lifespan_through_test_app_is_a_note(project: Project) -> None:
    project.app(
        """
        import time
        from quart import Quart

        app = Quart(__name__)

        @app.before_serving
        async def warm():
            time.sleep(0.2)

        @app.get("/fast")
        async def fast():
            return {}
        """
    )
    project.tests(
        """
        import pytest
        from app import app

        @pytest.mark.noblock
        async def test_served():
            async with app.test_app() as test_app:
                assert (await test_app.test_client().get("/fast")).status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*= noblock notes =*",
            "test_app.py::test_served: the app's lifespan held the event loop for * ms at "
            "app.py:8 (budget 50 ms); not counted against the app*",
        ]
    )


def test_nothing_stays_patched_after_the_test(project: Project) -> None:
    project.app(APP)
    project.tests(
        """
        import asyncio
        import pytest
        import quart.app
        import quart.testing.app
        import quart.testing.connections as connections
        from app import app

        ORIGINALS = {
            (quart.app.Quart, "request_context"): quart.app.Quart.request_context,
            (quart.app.Quart, "websocket_context"): quart.app.Quart.websocket_context,
            (quart.app.Quart, "sync_to_async"): quart.app.Quart.sync_to_async,
            (connections.TestHTTPConnection, "__aenter__"):
                connections.TestHTTPConnection.__aenter__,
            (connections.TestWebsocketConnection, "__aenter__"):
                connections.TestWebsocketConnection.__aenter__,
            (quart.testing.app.TestApp, "startup"): quart.testing.app.TestApp.startup,
            (asyncio.Handle, "_run"): asyncio.Handle._run,
        }

        @pytest.mark.noblock
        async def test_blocking():
            client = app.test_client()
            async with client.request("/items/1") as connection:
                await connection.send_complete()
            assert connection.app is app

        def test_after():
            for (owner, name), original in ORIGINALS.items():
                assert getattr(owner, name) is original, name
        """
    )
    result = project.run()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["FAILED test_app.py::test_blocking - *GET /items/<int:id> held*"])


def test_the_example_catches_the_hash_on_the_loop(pytester: pytest.Pytester) -> None:
    """`pytest examples/quart`, from the project root as a user runs it."""
    root = Path(__file__).resolve().parent.parent
    app = root / "examples" / "quart" / "app.py"
    line = line_of(app.read_text(), "hashlib.pbkdf2_hmac")
    result = pytester.run(
        sys.executable, "-m", "pytest", str(root / "examples" / "quart"), "-p", "no:cacheprovider"
    )
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "noblock: POST /login held the event loop for * ms "
            f"at examples/quart/app.py:{line} (budget 50 ms)",
            "  handler   examples.quart.app:login",
            "  instead   run it in a worker thread: `await run_sync(fn)(...)` (from quart)*",
            "            or make the route a plain `def`: Quart runs those in a worker thread",
        ]
    )
    result.stdout.no_fnmatch_line("*POST /login-threaded held*")


def test_starlette_testclient_in_a_sync_test_names_the_quart_route(project: Project) -> None:
    project.app(APP)
    project.tests(
        """
        import pytest
        import quart.app
        from starlette.testclient import TestClient
        from app import app

        ORIGINALS = (quart.app.Quart.request_context, quart.app.Quart.sync_to_async)

        @pytest.mark.noblock
        def test_sync():
            assert TestClient(app).get("/items/3").status_code == 200

        def test_after():
            assert (quart.app.Quart.request_context, quart.app.Quart.sync_to_async) == ORIGINALS
        """
    )
    result = project.run()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(SLOW_REPORT[:3])


def test_a_def_route_keeping_the_gil_is_caught_and_a_sleeping_one_is_not(
    project: Project,
) -> None:
    source = """
        import json
        import time
        from quart import Quart

        app = Quart(__name__)
        BIG = [{"id": n, "name": "x" * 20, "tags": list(range(10))} for n in range(150_000)]

        @app.get("/export")
        def export():
            return json.dumps(BIG)

        @app.get("/nap")
        def nap(**_):
            time.sleep(0.2)
            return {}
        """
    project.app(source)
    project.tests(
        """
        import pytest
        from app import app

        @pytest.mark.noblock
        async def test_export():
            assert (await app.test_client().get("/export")).status_code == 200

        @pytest.mark.noblock
        async def test_nap():
            assert (await app.test_client().get("/nap")).status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(passed=1, failed=1)
    line = line_of(source, "json.dumps(BIG)")
    result.stdout.fnmatch_lines(
        [
            f"noblock: GET /export held the event loop for * ms at app.py:{line} (budget 50 ms)",
            "  handler   app:export  (in a worker thread, keeping the GIL)",
        ]
    )
    result.stdout.no_fnmatch_line("*GET /nap held*")
