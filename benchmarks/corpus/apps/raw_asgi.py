"""One raw ASGI callable, no framework: it speaks the protocol by hand."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from corpus import Case, get, work

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


async def app(
    scope: Scope,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["path"] == "/block":
        time.sleep(work.SLEEP_S)  # BLOCKS: raw_asgi_sleep
    else:
        await asyncio.sleep(work.CLEAN_WAIT_S)
    body = json.dumps({"path": scope["path"]}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


OWN_CLIENT = """transport = httpx.ASGITransport(app=app)
async with httpx.AsyncClient(transport=transport, base_url="http://raw") as own:
    for _ in range(3):
        r = await own.get("/ok")
        assert r.status_code == 200, r.text
"""

R = "raw ASGI"
CASES = [
    Case(
        "raw_asgi_sleep",
        True,
        "time.sleep",
        "raw ASGI callable",
        get("/block"),
        lambda: time.sleep(work.SLEEP_S),
        framework=R,
    ),
    Case(
        "clean_raw_asgi_own_client",
        False,
        "asyncio.sleep",
        "raw ASGI callable (test's own client)",
        OWN_CLIENT,
        own_client=True,
        requests=3,
        framework=R,
    ),
]
