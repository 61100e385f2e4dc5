"""Blame only the guilty: the request that held the loop is named, nothing else is.

Concurrent fast requests, the test's own code, thread-pool work, awaited sleeps and real
network waits are not holds; a blocking handler is caught whichever client reaches it.
"""

from __future__ import annotations

# Imported here, before pytester snapshots sys.modules: a plugin in this venv imports part of
# starlette at start-up, and re-importing the rest per inner run mixes two copies of its
# routing module (every route then misses and answers 307).
import sys

import fastapi  # noqa: F401
import pytest
from conftest import Project, line_of, on_loops

FAST_AND_SLOW_APP = """
import asyncio
import time

from fastapi import FastAPI

app = FastAPI()


@app.get("/fast/{n}")
async def fast(n: int):
    await asyncio.sleep(0)
    return {"n": n}


@app.get("/slow")
async def slow():
    time.sleep(0.2)  # the hold
    return {}
"""


@on_loops
def test_one_slow_request_among_ten_concurrent_is_the_only_one_named(project: Project) -> None:
    project.app(FAST_AND_SLOW_APP)
    project.tests(
        """
        import asyncio

        import pytest

        @pytest.mark.noblock
        async def test_mixed(noblock_client):
            paths = [f"/fast/{n}" for n in range(9)]
            paths.insert(4, "/slow")
            responses = await asyncio.gather(*(noblock_client.get(path) for path in paths))
            assert [r.status_code for r in responses] == [200] * 10
        """
    )
    line = line_of(FAST_AND_SLOW_APP, "# the hold")
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            f"noblock: GET /slow held the event loop for * ms at app.py:{line} (budget 50 ms)",
            "  handler   app:slow",
        ]
    )
    result.stdout.no_fnmatch_line("*holds of the event loop*")
    result.stdout.no_fnmatch_line("*/fast*")
    result.stdout.no_fnmatch_line("*app:fast*")


SPAWNING_APP = """
import asyncio
import time

from fastapi import FastAPI

app = FastAPI()
background = set()


async def later():
    await asyncio.sleep(0.05)
    time.sleep(0.2)  # the late hold


@app.post("/jobs")
async def start_job():
    task = asyncio.create_task(later())
    background.add(task)
    task.add_done_callback(background.discard)
    return {"started": True}
"""


@on_loops
def test_task_a_handler_spawned_is_blamed_on_its_request(project: Project) -> None:
    project.app(SPAWNING_APP)
    project.tests(
        """
        import asyncio

        import pytest

        from app import background

        @pytest.mark.noblock
        async def test_job(noblock_client):
            response = await noblock_client.post("/jobs")
            assert response.json() == {"started": True}
            await asyncio.gather(*background)
        """
    )
    line = line_of(SPAWNING_APP, "# the late hold")
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            f"noblock: POST /jobs held the event loop for * ms at app.py:{line} (budget 50 ms)",
            "  handler   app:start_job  (in a task the request started)",
            f"  call      app.py:{line} in later",
        ]
    )


EAGER_APP = """
import asyncio
import time

from fastapi import FastAPI

app = FastAPI()
background = set()


async def refresh_cache():
    time.sleep(0.2)  # in the task's first step


@app.post("/jobs")
async def start_job():
    task = asyncio.create_task(refresh_cache())
    background.add(task)
    task.add_done_callback(background.discard)
    return {"started": True}


@app.post("/own")
async def own_work():
    time.sleep(0.2)  # the handler's own
    return {}
"""


def uvloop_takes_the_eager_task_factory() -> bool:
    """uvloop 0.23 passes `eager_start` to the task factory, which Python 3.13.0's
    `eager_task_factory` does not take: every task then fails, plugin or not."""
    import asyncio

    import uvloop

    async def started() -> None:
        asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)
        step = asyncio.sleep(0)
        try:
            await asyncio.create_task(step)
        finally:
            step.close()

    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(started())
        loop.run_until_complete(loop.shutdown_asyncgens())
    except TypeError:
        return False
    finally:
        loop.close()
    return True


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks came with Python 3.12")
@on_loops
def test_eager_task_blocking_in_its_first_step_is_a_task_the_request_started(
    project: Project,
) -> None:
    if project.loop == "uvloop" and not uvloop_takes_the_eager_task_factory():
        pytest.skip("this uvloop cannot run asyncio.eager_task_factory on this Python")
    # Under `eager_task_factory` a new task's first step runs inside `create_task`, within
    # the handler's own step: it is still a task, not the handler.
    project.app(EAGER_APP)
    project.tests(
        """
        import asyncio

        import pytest

        from app import background

        @pytest.fixture(autouse=True)
        async def eager_tasks():
            asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)

        @pytest.mark.noblock
        async def test_job(noblock_client):
            assert (await noblock_client.post("/jobs")).json() == {"started": True}
            await asyncio.gather(*background)

        @pytest.mark.noblock
        async def test_own(noblock_client):
            assert (await noblock_client.post("/own")).json() == {}
        """
    )
    task_line = line_of(EAGER_APP, "# in the task's first step")
    own_line = line_of(EAGER_APP, "# the handler's own")
    result = project.run()
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            f"noblock: POST /jobs held the event loop for * ms at app.py:{task_line} (budget *)",
            "  handler   app:start_job  (in a task the request started)",
            f"  call      app.py:{task_line} in refresh_cache",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            f"noblock: POST /own held the event loop for * ms at app.py:{own_line} (budget *)",
            "  handler   app:own_work",
            f"  call      app.py:{own_line} in own_work",
        ]
    )


TRIVIAL_APP = """
from fastapi import FastAPI

app = FastAPI()


@app.get("/ping")
async def ping():
    return {"ok": True}
"""


@on_loops
def test_test_code_sleeping_is_a_note_not_a_failure(project: Project) -> None:
    project.app(TRIVIAL_APP)
    project.tests(
        """
        import time

        import pytest

        @pytest.mark.noblock
        async def test_x(noblock_client):
            assert (await noblock_client.get("/ping")).status_code == 200
            time.sleep(0.2)
            assert (await noblock_client.get("/ping")).status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*= noblock notes =*",
            "test_app.py::test_x: the test's own code held the event loop for * ms *",
        ]
    )
    result.stdout.no_fnmatch_line("*GET /ping*")


def test_test_code_building_data_is_a_note_not_a_failure(project: Project) -> None:
    project.app(TRIVIAL_APP)
    project.tests(
        """
        import time

        import pytest

        @pytest.mark.noblock
        async def test_x(noblock_client):
            rows = []
            started = time.thread_time()  # CPU time: as much work on a busy machine
            while time.thread_time() - started < 0.2:
                # Numbers, not dicts: dicts set off collections, and a full one in a big
                # heap (the suite's own) would take most of the 0.2 s and is not counted.
                rows.append(len(rows) * 3)
            assert (await noblock_client.get("/ping")).status_code == 200
            assert rows
        """
    )
    result = project.run()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*= noblock notes =*",
            "test_app.py::test_x: the test's own code held the event loop for * ms *",
        ]
    )


def test_test_code_holding_fails_with_count_test_code(project: Project) -> None:
    project.app(TRIVIAL_APP)
    source = """
        import time

        import pytest

        @pytest.mark.noblock(count_test_code=True)
        async def test_x(noblock_client):
            assert (await noblock_client.get("/ping")).status_code == 200
            time.sleep(0.2)
        """
    project.tests(source)
    line = line_of(source, "time.sleep(0.2)")
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "noblock: the test's own code held the event loop for * ms"
            f" at test_app.py:{line} (budget 50 ms)"
        ]
    )


# A failure or a note that blames a request (notes on the test's own code are allowed).
BLAMED_ON_A_REQUEST = "*GET /* held the event loop*"

CLEAN_APP = """
import asyncio
import time
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool


@asynccontextmanager
async def lifespan(app):
    async with httpx.AsyncClient() as http:
        yield {"http": http}


app = FastAPI(lifespan=lifespan)


@app.get("/ping")
async def ping():
    return {"ok": True}


@app.get("/sync-def")
def sync_def():
    time.sleep(0.2)
    return {}


@app.get("/threadpool")
async def threadpool():
    await run_in_threadpool(time.sleep, 0.2)
    return {}


@app.get("/await-sleep")
async def await_sleep():
    await asyncio.sleep(0.2)
    return {}


@app.get("/upstream")
async def upstream(request: Request, url: str):
    response = await request.state.http.get(url)
    return {"upstream": response.text}
"""


def run_clean(project: Project, body: str) -> None:
    """Run one marked test at budget_ms=20 against CLEAN_APP: it passes, no request is blamed."""
    project.app(CLEAN_APP)
    project.tests(body)
    result = project.run()
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line(BLAMED_ON_A_REQUEST)


def test_def_endpoint_sleeping_in_the_thread_pool_is_clean(project: Project) -> None:
    run_clean(
        project,
        """
        import pytest

        @pytest.mark.noblock(budget_ms=20)
        async def test_x(noblock_client):
            assert (await noblock_client.get("/sync-def")).status_code == 200
        """,
    )


def test_run_in_threadpool_is_clean(project: Project) -> None:
    run_clean(
        project,
        """
        import pytest

        @pytest.mark.noblock(budget_ms=20)
        async def test_x(noblock_client):
            assert (await noblock_client.get("/threadpool")).status_code == 200
        """,
    )


@on_loops
def test_awaited_asyncio_sleep_is_clean(project: Project) -> None:
    run_clean(
        project,
        """
        import pytest

        @pytest.mark.noblock(budget_ms=20)
        async def test_x(noblock_client):
            assert (await noblock_client.get("/await-sleep")).status_code == 200
        """,
    )


def test_async_http_call_to_a_slow_server_is_clean(project: Project) -> None:
    run_clean(
        project,
        """
        import threading
        import time
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        import pytest


        class Slow(BaseHTTPRequestHandler):
            def do_GET(self):
                time.sleep(0.2)
                body = b"late"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass


        @pytest.fixture
        def slow_server():
            server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            yield f"http://127.0.0.1:{server.server_address[1]}/"
            server.shutdown()
            server.server_close()
            thread.join()


        @pytest.mark.noblock(budget_ms=20)
        async def test_x(noblock_client, slow_server):
            response = await noblock_client.get("/upstream", params={"url": slow_server})
            assert response.json() == {"upstream": "late"}
        """,
    )


def test_200_sequential_trivial_requests_are_clean(project: Project) -> None:
    run_clean(
        project,
        """
        import pytest

        @pytest.mark.noblock(budget_ms=20)
        async def test_x(noblock_client):
            for _ in range(200):
                assert (await noblock_client.get("/ping")).status_code == 200
        """,
    )


@on_loops
def test_50_concurrent_trivial_requests_are_clean(project: Project) -> None:
    run_clean(
        project,
        """
        import asyncio

        import pytest

        @pytest.mark.noblock(budget_ms=20)
        async def test_x(noblock_client):
            responses = await asyncio.gather(*(noblock_client.get("/ping") for _ in range(50)))
            assert {r.status_code for r in responses} == {200}
        """,
    )


def test_200_sequential_requests_through_the_tests_own_transport_are_clean(
    project: Project,
) -> None:
    run_clean(
        project,
        """
        import httpx
        import pytest

        from app import app

        @pytest.mark.noblock(budget_ms=20)
        async def test_x():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                for _ in range(200):
                    assert (await client.get("/ping")).status_code == 200
        """,
    )


def test_50_concurrent_requests_through_the_tests_own_transport_are_clean(
    project: Project,
) -> None:
    run_clean(
        project,
        """
        import asyncio

        import httpx
        import pytest

        from app import app

        @pytest.mark.noblock(budget_ms=20)
        async def test_x():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                responses = await asyncio.gather(*(client.get("/ping") for _ in range(50)))
            assert {r.status_code for r in responses} == {200}
        """,
    )


def test_app_built_in_the_test_body_is_not_blamed(project: Project) -> None:
    project.tests(
        """
        import httpx
        import pytest
        from fastapi import FastAPI

        def add_route(app, n):
            @app.get(f"/items{n}/{{item_id}}")
            async def item(item_id: int, q: str | None = None):
                return {"n": n, "item_id": item_id, "q": q}

        @pytest.mark.noblock(budget_ms=20)
        async def test_x():
            app = FastAPI()
            for n in range(30):
                add_route(app, n)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                for n in range(30):
                    response = await client.get(f"/items{n}/7", params={"q": "x"})
                    assert response.json() == {"n": n, "item_id": 7, "q": "x"}
        """
    )
    result = project.run()
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line(BLAMED_ON_A_REQUEST)


def test_blocking_handler_through_the_tests_own_transport_is_caught(project: Project) -> None:
    project.app(FAST_AND_SLOW_APP)
    project.tests(
        """
        import httpx
        import pytest

        from app import app

        @pytest.mark.noblock
        async def test_x():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                assert (await client.get("/fast/1")).status_code == 200
                assert (await client.get("/slow")).status_code == 200
        """
    )
    line = line_of(FAST_AND_SLOW_APP, "# the hold")
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            f"noblock: GET /slow held the event loop for * ms at app.py:{line} (budget 50 ms)",
            "  handler   app:slow",
            f"  call      app.py:{line} in slow",
        ]
    )
    result.stdout.no_fnmatch_line("*/fast*")


STARLETTE_APP = """
import time

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def report(request):
    time.sleep(0.2)  # the hold
    return JSONResponse({})


async def ping(request):
    return JSONResponse({"ok": True})


app = Starlette(routes=[Route("/report", report), Route("/ping", ping)])
"""


def test_starlette_hold_is_caught_and_the_handler_named(project: Project) -> None:
    project.app(STARLETTE_APP)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        async def test_x(noblock_client):
            assert (await noblock_client.get("/ping")).status_code == 200
            assert (await noblock_client.get("/report")).status_code == 200
        """
    )
    line = line_of(STARLETTE_APP, "# the hold")
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            f"noblock: GET /report held the event loop for * ms at app.py:{line} (budget 50 ms)",
            "  handler   app:report",
            f"  call      app.py:{line} in report",
        ]
    )
    result.stdout.no_fnmatch_line("*GET /ping*")


RAW_ASGI_APP = """
import time


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        time.sleep(0.2)  # the hold
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
"""


def test_raw_asgi_callable_hold_is_caught(project: Project) -> None:
    project.app(RAW_ASGI_APP)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        async def test_x(noblock_client):
            assert (await noblock_client.get("/fast")).text == "ok"
            assert (await noblock_client.get("/slow")).text == "ok"
        """
    )
    line = line_of(RAW_ASGI_APP, "# the hold")
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            f"noblock: GET /slow held the event loop for * ms at app.py:{line} (budget 50 ms)",
            f"  call      app.py:{line} in app",
        ]
    )
    result.stdout.no_fnmatch_line("*GET /fast*")
