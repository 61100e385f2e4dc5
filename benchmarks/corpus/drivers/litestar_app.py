"""A Litestar app, driven by Litestar's own `TestClient` in a sync test (`litestar` cases).

The client serves the app on a loop in an anyio portal thread, as Starlette's does.
"""

from __future__ import annotations

import json
import time
from typing import Any

import requests
from litestar import Litestar, get

from corpus import Case, work
from corpus.drivers import sync_get

SMALL = [{"id": i, "name": f"item{i}"} for i in range(50)]


@get("/sleep")
async def sleep() -> dict[str, Any]:
    time.sleep(work.SLEEP_S)  # BLOCKS: litestar_sleep
    return {"slept": work.SLEEP_S}


@get("/requests")
async def with_requests() -> dict[str, Any]:
    upstream = requests.get(work.slow_url(), timeout=5)  # BLOCKS: litestar_requests
    return {"upstream": upstream.json()}


@get("/small")
async def small() -> dict[str, Any]:
    return {"items": json.loads(json.dumps(SMALL))}


@get("/sync-to-thread", sync_to_thread=True)
def sync_to_thread() -> dict[str, Any]:
    time.sleep(work.CLEAN_WAIT_S)
    return {"slept": work.CLEAN_WAIT_S}


app = Litestar([sleep, with_requests, small, sync_to_thread])


def _sleep() -> None:
    time.sleep(work.SLEEP_S)


def _requests() -> None:
    requests.get(work.slow_url(), timeout=5).json()


BACK_TO_BACK = """for _ in range(50):
    r = client.get("/small")
    assert r.status_code == 200, r.text
"""

D = "litestar"
H = "handler"

CASES = [
    Case("litestar_sleep", True, "time.sleep", H, sync_get("/sleep"), _sleep, driver=D),
    Case("litestar_requests", True, "requests", H, sync_get("/requests"), _requests, driver=D),
    Case(
        "clean_litestar_sync_to_thread",
        False,
        "time.sleep",
        "`def` handler, `sync_to_thread=True`",
        sync_get("/sync-to-thread"),
        driver=D,
    ),
    Case(
        "clean_litestar_back_to_back",
        False,
        "50 quick requests",
        "back to back",
        BACK_TO_BACK,
        requests=50,
        driver=D,
    ),
]
