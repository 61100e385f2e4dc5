"""A Quart app, driven by its own `app.test_client()` in an async test (`quart` cases)."""

from __future__ import annotations

import json
import time
from typing import Any

from quart import Quart
from quart.utils import run_sync

from corpus import Case, work

SMALL = [{"id": i, "name": f"item{i}"} for i in range(50)]

app = Quart(__name__)


@app.get("/sleep")
async def sleep() -> dict[str, Any]:
    time.sleep(work.SLEEP_S)  # BLOCKS: quart_sleep
    return {"slept": work.SLEEP_S}


@app.get("/sleep-in-a-thread")
async def sleep_in_a_thread() -> dict[str, Any]:
    await run_sync(time.sleep)(work.CLEAN_WAIT_S)
    return {"slept": work.CLEAN_WAIT_S}


@app.get("/small")
async def small() -> dict[str, Any]:
    return {"items": json.loads(json.dumps(SMALL))}


def _sleep() -> None:
    time.sleep(work.SLEEP_S)


def quart_get(path: str) -> str:
    return (
        "client = app.test_client()\n"
        f'r = await client.get("{path}")\n'
        "assert r.status_code == 200, r.status\n"
    )


BACK_TO_BACK = """client = app.test_client()
for _ in range(50):
    r = await client.get("/small")
    assert r.status_code == 200, r.status
"""

D = "quart"
H = "handler"

CASES = [
    Case(
        "quart_sleep",
        True,
        "time.sleep",
        H,
        quart_get("/sleep"),
        _sleep,
        own_client=True,
        framework="Quart",
        driver=D,
    ),
    Case(
        "clean_quart_run_sync",
        False,
        "time.sleep",
        "`run_sync` (quart)",
        quart_get("/sleep-in-a-thread"),
        own_client=True,
        framework="Quart",
        driver=D,
    ),
    Case(
        "clean_quart_back_to_back",
        False,
        "50 quick requests",
        "back to back",
        BACK_TO_BACK,
        own_client=True,
        requests=50,
        framework="Quart",
        driver=D,
    ),
]
