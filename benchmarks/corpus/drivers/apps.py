"""One FastAPI app (and one with a blocking middleware), driven by TestClient, on trio, on
uvloop (pytest-asyncio) and by schemathesis's `case.call()`.

Only anyio and plain blocking calls here, nothing asyncio-only: the same routes serve the
`testclient_*` cases (a sync test, the app on a loop in TestClient's portal thread) and the
`trio_*` cases (an `async def` test on trio). A blocking line carries one label per case.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.request import urlopen

import anyio
import httpcore  # noqa: F401  (httpx imports it at the first client: import it up front)
import httpx
import requests
from fastapi import Depends, FastAPI, Request, Response

from corpus import Case, get, work
from corpus.drivers import sync_get

# Building an httpx client loads the CA bundle unless it is handed an SSL context: do it once.
SSL_CONTEXT = httpx.create_ssl_context()
SMALL = [{"id": i, "name": f"item{i}"} for i in range(50)]
DOC = work.big_doc()
SLOW_SQL = work.SQL_SLOW

app = FastAPI()


# --- blocking ------------------------------------------------------------------------------


@app.get("/sleep")
async def sleep() -> dict[str, Any]:
    time.sleep(work.SLEEP_S)  # BLOCKS: testclient_sleep, testclient_bare_sleep, trio_sleep, uvloop_sleep, schemathesis_sleep  # noqa: E501  # fmt: skip
    return {"slept": work.SLEEP_S}


@app.get("/requests")
async def with_requests() -> dict[str, Any]:
    url = work.slow_url()
    upstream = requests.get(url, timeout=5)  # BLOCKS: testclient_requests, trio_requests, uvloop_requests, schemathesis_requests  # noqa: E501  # fmt: skip
    return {"upstream": upstream.json()}


@app.get("/cpu-loop")
async def cpu_loop() -> dict[str, Any]:
    total = 0
    for i in range(work.CPU_LOOP_N):  # BLOCKS: testclient_cpu_loop, trio_cpu_loop, uvloop_cpu_loop
        total += i * i % 7  # BLOCKS: testclient_cpu_loop, trio_cpu_loop, uvloop_cpu_loop
    return {"total": total}


@app.get("/json")
async def big_json() -> dict[str, Any]:
    text = json.dumps(DOC)  # BLOCKS: testclient_json_dumps, trio_json_dumps
    return {"size": len(text)}


async def stock_level() -> int:
    """An `async def` dependency on a sync database driver: it runs on the loop."""
    db = sqlite3.connect(":memory:")
    try:
        row = db.execute(SLOW_SQL).fetchone()  # BLOCKS: testclient_dependency, trio_dependency
        return int(row[0])
    finally:
        db.close()


@app.get("/stock")
async def stock(level: Annotated[int, Depends(stock_level)]) -> dict[str, Any]:
    return {"level": level}


def probe_sqlite() -> None:
    db = sqlite3.connect(":memory:")
    db.execute(SLOW_SQL).fetchone()
    db.close()


app_middleware = FastAPI()


@app_middleware.middleware("http")
async def check_token(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Asks an auth service about every request, with urllib, on the loop."""
    url = work.slow_url()
    answer = urlopen(url, timeout=5)  # BLOCKS: testclient_middleware, trio_middleware
    answer.read()
    answer.close()
    return await call_next(request)


@app_middleware.get("/items")
async def items() -> dict[str, Any]:
    return {"items": SMALL}


def probe_urllib() -> None:
    with urlopen(work.slow_url(), timeout=5) as answer:
        answer.read()


def probe_requests() -> None:
    requests.get(work.slow_url(), timeout=5).json()


def probe_cpu_loop() -> None:
    total = 0
    for i in range(work.CPU_LOOP_N):
        total += i * i % 7


# --- clean ---------------------------------------------------------------------------------


@app.get("/small")
async def small() -> dict[str, Any]:
    return {"items": json.loads(json.dumps(SMALL))}


@app.get("/small-wait")
async def small_wait() -> dict[str, Any]:
    await anyio.sleep(0.01)
    return {"items": json.loads(json.dumps(SMALL))}


@app.get("/def-sleep")
def def_sleep() -> dict[str, Any]:
    time.sleep(work.CLEAN_WAIT_S)
    return {"slept": work.CLEAN_WAIT_S}


@app.get("/anyio-sleep")
async def anyio_sleep() -> dict[str, Any]:
    await anyio.sleep(work.CLEAN_WAIT_S)
    return {"slept": work.CLEAN_WAIT_S}


def inventory() -> int:
    """A `def` dependency: FastAPI runs it in the thread pool, where blocking is fine."""
    db = sqlite3.connect(":memory:")
    try:
        return int(db.execute(work.SQL_MEDIUM).fetchone()[0])
    finally:
        db.close()


@app.get("/def-dependency")
async def def_dependency(count: Annotated[int, Depends(inventory)]) -> dict[str, Any]:
    return {"count": count}


@app.get("/httpx-async")
async def httpx_async() -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5, verify=SSL_CONTEXT) as upstream:
        answer = await upstream.get(work.slow_url(work.CLEAN_DELAY_MS))
    return {"upstream": answer.json()}


# --- the cases -----------------------------------------------------------------------------

SYNC_BACK_TO_BACK = """for _ in range(100):
    r = client.get("/small")
    assert r.status_code == 200, r.text
"""

BARE_SLEEP = """client = TestClient(app)  # no `with`: a portal (and a loop) per request
r = client.get("/sleep")
assert r.status_code == 200, r.text
"""

BARE_SMALL = """client = TestClient(app)  # no `with`: a portal (and a loop) per request
for _ in range(5):
    r = client.get("/small")
    assert r.status_code == 200, r.text
"""

BACK_TO_BACK = """for _ in range(100):
    r = await client.get("/small")
    assert r.status_code == 200, r.text
"""

CONCURRENT = """async def fetch() -> None:
    r = await client.get("/small-wait")
    assert r.status_code == 200, r.text

async with anyio.create_task_group() as group:
    for _ in range(100):
        group.start_soon(fetch)
"""

OWN_CLIENT = """transport = httpx.ASGITransport(app=app)
async with httpx.AsyncClient(transport=transport, base_url="http://local") as own:
    for _ in range(5):
        r = await own.get("/small")
        assert r.status_code == 200, r.text
"""

TC = "testclient"
TRIO = "trio"
UV = "uvloop"
ST = "schemathesis"
H = "handler"
MW = "@app.middleware"
DEP = "async dependency"
T = "def endpoint (thread pool)"
TD = "def dependency (thread pool)"
SQL = "sqlite3"


def case_call(path: str) -> str:
    """A schemathesis case's body: the operation's `case.call()`, as a sync test makes it."""
    return (
        'schema = schemathesis.openapi.from_asgi("/openapi.json", app)\n'
        f'r = schema["{path}"]["GET"].Case().call()\n'
        "assert r.status_code == 200, r.text\n"
    )


def _sleep() -> None:
    time.sleep(work.SLEEP_S)


def _dumps() -> None:
    json.dumps(DOC)


CASES = [
    # TestClient: a sync test, `with TestClient(app) as client:`
    Case("testclient_sleep", True, "time.sleep", H, sync_get("/sleep"), _sleep, driver=TC),
    Case(
        "testclient_requests", True, "requests", H, sync_get("/requests"), probe_requests, driver=TC
    ),
    Case(
        "testclient_cpu_loop",
        True,
        "pure-Python CPU",
        H,
        sync_get("/cpu-loop"),
        probe_cpu_loop,
        driver=TC,
    ),
    Case("testclient_json_dumps", True, "json.dumps", H, sync_get("/json"), _dumps, driver=TC),
    Case("testclient_dependency", True, SQL, DEP, sync_get("/stock"), probe_sqlite, driver=TC),
    Case(
        "testclient_middleware",
        True,
        "urllib",
        MW,
        sync_get("/items"),
        probe_urllib,
        app_attr="app_middleware",
        driver=TC,
    ),
    Case(
        "testclient_bare_sleep",
        True,
        "time.sleep",
        "handler, TestClient without `with`",
        BARE_SLEEP,
        _sleep,
        own_client=True,
        driver=TC,
    ),
    Case("clean_testclient_small", False, "quick request", H, sync_get("/small"), driver=TC),
    Case("clean_testclient_def_sleep", False, "time.sleep", T, sync_get("/def-sleep"), driver=TC),
    Case(
        "clean_testclient_back_to_back",
        False,
        "100 quick requests",
        "back to back",
        SYNC_BACK_TO_BACK,
        requests=100,
        driver=TC,
    ),
    Case(
        "clean_testclient_anyio_sleep",
        False,
        "anyio.sleep",
        H,
        sync_get("/anyio-sleep"),
        driver=TC,
    ),
    Case(
        "clean_testclient_def_dependency",
        False,
        SQL,
        TD,
        sync_get("/def-dependency"),
        driver=TC,
    ),
    Case(
        "clean_testclient_httpx_async",
        False,
        "httpx.AsyncClient",
        H,
        sync_get("/httpx-async"),
        driver=TC,
    ),
    Case(
        "clean_testclient_bare",
        False,
        "5 quick requests",
        "TestClient without `with`",
        BARE_SMALL,
        own_client=True,
        requests=5,
        driver=TC,
    ),
    # trio: an `async def` test on trio (anyio's plugin), the tool's httpx.AsyncClient
    Case("trio_sleep", True, "time.sleep", H, get("/sleep"), _sleep, driver=TRIO),
    Case("trio_requests", True, "requests", H, get("/requests"), probe_requests, driver=TRIO),
    Case(
        "trio_cpu_loop", True, "pure-Python CPU", H, get("/cpu-loop"), probe_cpu_loop, driver=TRIO
    ),
    Case("trio_json_dumps", True, "json.dumps", H, get("/json"), _dumps, driver=TRIO),
    Case("trio_dependency", True, SQL, DEP, get("/stock"), probe_sqlite, driver=TRIO),
    Case(
        "trio_middleware",
        True,
        "urllib",
        MW,
        get("/items"),
        probe_urllib,
        app_attr="app_middleware",
        driver=TRIO,
    ),
    Case("clean_trio_small", False, "quick request", H, get("/small"), driver=TRIO),
    Case("clean_trio_def_sleep", False, "time.sleep", T, get("/def-sleep"), driver=TRIO),
    Case(
        "clean_trio_back_to_back",
        False,
        "100 quick requests",
        "back to back",
        BACK_TO_BACK,
        requests=100,
        driver=TRIO,
    ),
    Case(
        "clean_trio_concurrent",
        False,
        "100 quick requests",
        "concurrent (task group)",
        CONCURRENT,
        requests=100,
        driver=TRIO,
    ),
    Case("clean_trio_anyio_sleep", False, "anyio.sleep", H, get("/anyio-sleep"), driver=TRIO),
    Case("clean_trio_def_dependency", False, SQL, TD, get("/def-dependency"), driver=TRIO),
    Case("clean_trio_httpx_async", False, "httpx.AsyncClient", H, get("/httpx-async"), driver=TRIO),
    Case(
        "clean_trio_own_client",
        False,
        "5 quick requests",
        "test's own ASGITransport client",
        OWN_CLIENT,
        own_client=True,
        requests=5,
        driver=TRIO,
    ),
    # uvloop: an `async def` test on pytest-asyncio with uvloop's `event_loop_policy`
    Case("uvloop_sleep", True, "time.sleep", H, get("/sleep"), _sleep, driver=UV),
    Case("uvloop_requests", True, "requests", H, get("/requests"), probe_requests, driver=UV),
    Case(
        "uvloop_cpu_loop", True, "pure-Python CPU", H, get("/cpu-loop"), probe_cpu_loop, driver=UV
    ),
    Case("clean_uvloop_small", False, "quick request", H, get("/small"), driver=UV),
    Case("clean_uvloop_def_sleep", False, "time.sleep", T, get("/def-sleep"), driver=UV),
    Case(
        "clean_uvloop_concurrent",
        False,
        "100 quick requests",
        "concurrent (task group)",
        CONCURRENT,
        requests=100,
        driver=UV,
    ),
    # schemathesis: a sync test calling `case.call()` (the app on schemathesis's loop thread)
    Case(
        "schemathesis_sleep",
        True,
        "time.sleep",
        H,
        case_call("/sleep"),
        _sleep,
        own_client=True,
        driver=ST,
    ),
    Case(
        "schemathesis_requests",
        True,
        "requests",
        H,
        case_call("/requests"),
        probe_requests,
        own_client=True,
        driver=ST,
    ),
    Case(
        "clean_schemathesis_small",
        False,
        "quick request",
        H,
        case_call("/small"),
        own_client=True,
        driver=ST,
    ),
    Case(
        "clean_schemathesis_def_sleep",
        False,
        "time.sleep",
        T,
        case_call("/def-sleep"),
        own_client=True,
        driver=ST,
    ),
]
