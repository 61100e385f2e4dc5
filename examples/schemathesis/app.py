"""A FastAPI app whose operations schemathesis generates requests for, from its OpenAPI schema."""

import hashlib
import time

from fastapi import FastAPI

app = FastAPI()


@app.get("/orders/{order_id}")
async def read_order(order_id: int) -> dict[str, int | str]:
    # Blocks the loop: a sync pause inside `async def` (standing in for a slow sync call).
    time.sleep(0.2)
    return {"id": order_id, "status": "shipped"}


@app.get("/checksums/{word}")
async def checksum(word: str) -> dict[str, str]:
    # Fine: a quick computation, well under the budget.
    return {"sha256": hashlib.sha256(word.encode()).hexdigest()}
