"""A Litestar app: one handler that blocks the loop, and two ways that do not."""

import time

import anyio
from litestar import Litestar, get


@get("/slow-book")
async def slow_book() -> dict[str, str]:
    # Blocks the loop: a sync call inside `async def` (a sync driver's query, say).
    time.sleep(0.2)
    return {"title": "slow"}


@get("/fast-book")
async def fast_book() -> dict[str, str]:
    # Fine: `await` gives control back while it waits.
    await anyio.sleep(0.2)
    return {"title": "fast"}


@get("/sync-book", sync_to_thread=True)
def sync_book() -> dict[str, str]:
    # Fine: a plain `def` handler with `sync_to_thread=True` runs in a worker thread.
    time.sleep(0.2)
    return {"title": "sync"}


app = Litestar([slow_book, fast_book, sync_book])
