"""Litestar's own test clients, marked: `test_slow_book` is expected to FAIL.

Run on their own, `pytest examples/litestar` (`pytest examples/` leaves them out):
1 failed, 2 passed.
"""

import pytest
from litestar.testing import AsyncTestClient, TestClient

from examples.litestar.app import app

pytestmark = pytest.mark.noblock


@pytest.mark.asyncio
async def test_slow_book() -> None:
    # Expected to FAIL: `slow_book` calls time.sleep inside `async def`.
    async with AsyncTestClient(app) as client:
        assert (await client.get("/slow-book")).json() == {"title": "slow"}


@pytest.mark.asyncio
async def test_fast_book() -> None:
    async with AsyncTestClient(app) as client:
        assert (await client.get("/fast-book")).json() == {"title": "fast"}


def test_sync_book() -> None:
    with TestClient(app) as client:
        assert client.get("/sync-book").json() == {"title": "sync"}
