"""A FastAPI app as production runs it under `uvicorn[standard]`: on uvloop."""

import asyncio
import time

from fastapi import FastAPI

app = FastAPI()


@app.get("/slow-quote")
async def slow_quote() -> dict[str, float]:
    # Blocks the loop: time.sleep stops uvloop just like asyncio's own loop.
    time.sleep(0.2)
    return {"price": 1.0}


@app.get("/fast-quote")
async def fast_quote() -> dict[str, float]:
    # Fine: asyncio.sleep gives control back while it waits.
    await asyncio.sleep(0.2)
    return {"price": 1.0}
