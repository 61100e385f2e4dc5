"""A FastAPI app tested the way most suites do it: sync tests with `TestClient`."""

import hashlib
import time

from fastapi import FastAPI

app = FastAPI()


@app.get("/report")
async def build_report() -> dict[str, str]:
    # Blocks the loop: a sync pause inside `async def` (standing in for a slow sync call).
    time.sleep(0.2)
    return {"report": "ready"}


@app.get("/digest")
def digest() -> dict[str, str]:
    # Fine: a plain `def` endpoint runs in the thread pool, off the loop.
    time.sleep(0.2)
    return {"digest": hashlib.sha256(b"data").hexdigest()}
