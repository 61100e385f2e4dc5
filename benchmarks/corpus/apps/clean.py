"""Clean cases: apps that keep the loop free, including the ones a naive detector gets wrong.

Sync (`def`) endpoints, dependencies and background tasks run in the thread pool, where
blocking is fine; work handed to a thread is fine; many quick requests, back to back or
concurrent, never add up to a hold; a 10 ms block is under any sensible budget.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

import anyio
import httpcore  # noqa: F401  (httpx imports it at the first client: import it up front)
import httpx
import requests
from fastapi import BackgroundTasks, Depends, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from corpus import Case, get, work

# Building an httpx client loads the CA bundle unless it is handed an SSL context: do it once.
SSL_CONTEXT = httpx.create_ssl_context()
SMALL = [{"id": i, "name": f"item{i}"} for i in range(50)]

app = FastAPI()


def burn(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


@app.get("/def-sleep")
def def_sleep() -> dict[str, Any]:
    time.sleep(work.CLEAN_WAIT_S)
    return {"slept": work.CLEAN_WAIT_S}


@app.get("/def-cpu")
def def_cpu() -> dict[str, Any]:
    return {"total": burn(work.CLEAN_CPU_N)}


@app.get("/def-requests")
def def_requests() -> dict[str, Any]:
    return {"upstream": requests.get(work.slow_url(work.CLEAN_DELAY_MS), timeout=5).json()}


def inventory() -> int:
    connection = sqlite3.connect(":memory:")
    try:
        return int(connection.execute(work.SQL_MEDIUM).fetchone()[0])
    finally:
        connection.close()


@app.get("/def-dependency")
async def def_dependency(count: Annotated[int, Depends(inventory)]) -> dict[str, Any]:
    return {"count": count}


@app.get("/threadpool-sleep")
async def threadpool_sleep() -> dict[str, Any]:
    await run_in_threadpool(time.sleep, work.CLEAN_WAIT_S)
    return {"slept": work.CLEAN_WAIT_S}


@app.get("/to-thread-cpu")
async def to_thread_cpu() -> dict[str, Any]:
    return {"total": await anyio.to_thread.run_sync(burn, work.CLEAN_CPU_N)}


@app.get("/asyncio-to-thread")
async def asyncio_to_thread() -> dict[str, Any]:
    url = work.slow_url(work.CLEAN_DELAY_MS)
    upstream = await asyncio.to_thread(requests.get, url, timeout=5)
    return {"upstream": upstream.json()}


@app.get("/httpx-async")
async def httpx_async() -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5, verify=SSL_CONTEXT) as upstream:
        answer = await upstream.get(work.slow_url(work.CLEAN_DELAY_MS))
    return {"upstream": answer.json()}


@app.get("/small")
async def small() -> dict[str, Any]:
    return {"items": json.loads(json.dumps(SMALL))}


@app.get("/small-wait")
async def small_wait() -> dict[str, Any]:
    await asyncio.sleep(0.01)
    return {"items": json.loads(json.dumps(SMALL))}


@app.get("/block-10ms")
async def block_10ms() -> dict[str, Any]:
    time.sleep(work.TINY_SLEEP_S)
    return {"slept": work.TINY_SLEEP_S}


@app.get("/async-sleep")
async def async_sleep() -> dict[str, Any]:
    await asyncio.sleep(work.CLEAN_WAIT_S)
    return {"slept": work.CLEAN_WAIT_S}


async def ticker() -> AsyncIterator[bytes]:
    for i in range(3):
        await asyncio.sleep(work.CLEAN_WAIT_S / 3)
        yield f"tick {i}\n".encode()


@app.get("/stream")
async def stream() -> StreamingResponse:
    return StreamingResponse(ticker(), media_type="text/plain")


def send_receipt(address: str) -> None:
    time.sleep(work.CLEAN_WAIT_S)


@app.post("/checkout")
async def checkout(tasks: BackgroundTasks) -> dict[str, Any]:
    tasks.add_task(send_receipt, "ada@example.com")
    return {"paid": True}


app_middleware = FastAPI()


@app_middleware.middleware("http")
async def timing(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    started = time.perf_counter()
    await asyncio.sleep(0.005)
    response = await call_next(request)
    response.headers["x-elapsed"] = f"{time.perf_counter() - started:.4f}"
    return response


@app_middleware.get("/timed")
async def timed() -> dict[str, Any]:
    await asyncio.sleep(work.CLEAN_WAIT_S)
    return {"timed": True}


BACK_TO_BACK = """for _ in range(100):
    r = await client.get("/small")
    assert r.status_code == 200, r.text
"""

CONCURRENT = """responses = await asyncio.gather(*(client.get("/small-wait") for _ in range(100)))
assert all(r.status_code == 200 for r in responses)
"""

APP_IN_BODY = """from fastapi import FastAPI

local = FastAPI()


@local.get("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}


transport = httpx.ASGITransport(app=local)
async with httpx.AsyncClient(transport=transport, base_url="http://local") as own:
    for _ in range(5):
        r = await own.get("/hello")
        assert r.status_code == 200, r.text
"""

TEST_CODE_BLOCKS = """r = await client.get("/small")
assert r.status_code == 200, r.text
time.sleep(work.CLEAN_WAIT_S)  # the test's own slow set-up, not the app's
r = await client.get("/small")
assert r.status_code == 200, r.text
"""

POST_CHECKOUT = 'r = await client.post("/checkout")\nassert r.status_code == 200, r.text\n'

T = "thread pool"
CASES = [
    Case("clean_def_sleep", False, "time.sleep", "def endpoint (" + T + ")", get("/def-sleep")),
    Case("clean_def_cpu", False, "pure-Python CPU", "def endpoint (" + T + ")", get("/def-cpu")),
    Case("clean_def_requests", False, "requests", "def endpoint (" + T + ")", get("/def-requests")),
    Case(
        "clean_def_dependency_sqlite",
        False,
        "sqlite3",
        "def dependency (" + T + ")",
        get("/def-dependency"),
    ),
    Case(
        "clean_run_in_threadpool",
        False,
        "time.sleep",
        "run_in_threadpool",
        get("/threadpool-sleep"),
    ),
    Case("clean_to_thread_cpu", False, "pure-Python CPU", "anyio.to_thread", get("/to-thread-cpu")),
    Case(
        "clean_asyncio_to_thread_requests",
        False,
        "requests",
        "asyncio.to_thread",
        get("/asyncio-to-thread"),
    ),
    Case("clean_httpx_async", False, "httpx.AsyncClient", "handler", get("/httpx-async")),
    Case(
        "clean_back_to_back",
        False,
        "100 quick requests",
        "back to back",
        BACK_TO_BACK,
        requests=100,
    ),
    Case(
        "clean_concurrent",
        False,
        "100 quick requests",
        "concurrent (gather)",
        CONCURRENT,
        requests=100,
    ),
    Case(
        "clean_app_in_test_body",
        False,
        "app built in the test",
        "test's own ASGITransport client",
        APP_IN_BODY,
        own_client=True,
        requests=5,
    ),
    Case("clean_block_10ms", False, "time.sleep 10 ms", "handler", get("/block-10ms")),
    Case("clean_async_sleep", False, "asyncio.sleep", "handler", get("/async-sleep")),
    Case("clean_stream_async", False, "asyncio.sleep", "streaming generator", get("/stream")),
    Case(
        "clean_background_def",
        False,
        "time.sleep",
        "def background task (" + T + ")",
        POST_CHECKOUT,
    ),
    Case(
        "clean_middleware_async",
        False,
        "asyncio.sleep",
        "@app.middleware",
        get("/timed"),
        app_attr="app_middleware",
    ),
    Case(
        "clean_test_code_blocks",
        False,
        "time.sleep in the test",
        "the test's own code, between requests",
        TEST_CODE_BLOCKS,
        requests=2,
    ),
]
