"""A small FastAPI app that shows one upstream call written several ways.

Every ``async def`` handler runs on the single event loop, so a blocking call inside
one freezes every other request until it returns. Plain ``def`` handlers run in
AnyIO's worker thread pool (40 threads by default), where blocking is acceptable.

The upstream base URL is read from ``EXAMPLES_UPSTREAM_URL`` at request time, so
tests can point the app at a local slow server.
"""

import os
import time
from typing import Annotated, Any

import httpcore  # noqa: F401  (see SSL_CONTEXT below)
import httpx
import requests
from fastapi import Depends, FastAPI
from fastapi.concurrency import run_in_threadpool

UPSTREAM_ENV_VAR = "EXAMPLES_UPSTREAM_URL"

# Building an httpx client is not free: the first one imports httpcore, and every
# one loads the CA bundle from disk unless handed an SSL context. Both cost tens of
# milliseconds, so pay them once at import time instead of on the loop per request.
SSL_CONTEXT = httpx.create_ssl_context()

app = FastAPI(title="pytest-noblock examples")


def upstream_url() -> str:
    """Return the upstream base URL, read when the request is handled."""
    return os.environ[UPSTREAM_ENV_VAR].rstrip("/")


@app.get("/bad-practice")
async def bad_practice() -> dict[str, Any]:
    # BAD: requests is synchronous. Inside ``async def`` this call holds the event
    # loop for as long as the upstream takes to answer, so nothing else runs.
    response = requests.get(upstream_url() + "/slow", timeout=5)
    return {"practice": "bad", "upstream": response.json()}


@app.get("/good-practice")
async def good_practice() -> dict[str, Any]:
    # GOOD: the synchronous call runs in a worker thread; the loop only awaits it
    # and keeps serving other requests meanwhile.
    response = await run_in_threadpool(requests.get, upstream_url() + "/slow", timeout=5)
    return {"practice": "good", "upstream": response.json()}


@app.get("/best-practice")
async def best_practice() -> dict[str, Any]:
    # BEST: an async HTTP client yields to the loop while it waits, with no thread.
    async with httpx.AsyncClient(timeout=5, verify=SSL_CONTEXT) as client:
        response = await client.get(upstream_url() + "/slow")
    return {"practice": "best", "upstream": response.json()}


@app.get("/sync-endpoint")
def sync_endpoint() -> dict[str, Any]:
    # FINE: a plain ``def`` handler runs in the thread pool, so blocking here
    # ties up one worker thread, not the event loop.
    time.sleep(0.2)
    return {"practice": "sync", "slept": 0.2}


async def load_settings() -> dict[str, str]:
    """Dependency that reads a (pretend) slow config source synchronously."""
    # BAD: ``async def`` dependencies run on the event loop too, so this
    # stand-in for a slow synchronous config read blocks every request.
    time.sleep(0.2)
    return {"source": "slow-config", "region": "local"}


@app.get("/settings")
async def read_settings(
    settings: Annotated[dict[str, str], Depends(load_settings)],
) -> dict[str, Any]:
    return {"settings": settings}
