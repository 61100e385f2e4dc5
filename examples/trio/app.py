"""A Starlette app served on trio (through anyio): the same checks as on asyncio."""

import time

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def slow_lookup(request: Request) -> JSONResponse:
    # Blocks the loop: time.sleep stops trio's scheduler just like asyncio's.
    time.sleep(0.2)
    return JSONResponse({"found": True})


async def fast_lookup(request: Request) -> JSONResponse:
    # Fine: anyio.sleep gives control back while it waits.
    await anyio.sleep(0.2)
    return JSONResponse({"found": True})


app = Starlette(routes=[Route("/slow-lookup", slow_lookup), Route("/fast-lookup", fast_lookup)])
