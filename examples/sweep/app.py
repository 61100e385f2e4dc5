"""A FastAPI app with no tests at all: `pytest --noblock-sweep` checks each of its operations."""

import time
from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException
from pydantic import BaseModel

app = FastAPI()


class Order(BaseModel):
    item: str
    quantity: int


async def check_token(x_token: Annotated[str, Header()]) -> None:
    if x_token != "example-token":
        raise HTTPException(status_code=403)


@app.get("/orders/{order_id}")
async def read_order(order_id: int) -> dict[str, int | str]:
    # Blocks the loop: a sync pause inside `async def` (standing in for a slow sync call).
    time.sleep(0.2)
    return {"id": order_id, "status": "shipped"}


@app.post("/orders")
async def create_order(order: Order) -> Order:
    # Fine: no blocking call.
    return order


@app.get("/admin/stats", dependencies=[Depends(check_token)])
async def admin_stats() -> dict[str, int]:
    # Behind a header check: only reached with the token conftest.py sends.
    time.sleep(0.2)
    return {"orders": 1}
