"""Strict mode: the bad endpoint again, against the fast local stub a test suite usually has.

The stub answers in about a millisecond, so ``requests.get`` holds the loop far below any
budget and the plain marker passes: in production, against the real API, the same line
freezes every request. ``strict=True`` fails on the call itself, however fast it was.

Expected: ``test_fast_stub_plain`` passes, ``test_fast_stub_strict`` FAILS naming the
``requests.get(...)`` line of ``bad_practice``.
"""

import httpx
import pytest

pytestmark = pytest.mark.asyncio


@pytest.mark.noblock
async def test_fast_stub_plain(noblock_client: httpx.AsyncClient, fast_upstream: str) -> None:
    # Passes: about a millisecond on the loop is well under the 50 ms budget.
    response = await noblock_client.get("/bad-practice")
    assert response.json()["upstream"]["status"] == "ok"


@pytest.mark.noblock(strict=True)
async def test_fast_stub_strict(noblock_client: httpx.AsyncClient, fast_upstream: str) -> None:
    # Expected to FAIL: strict mode reports the requests.get call however fast it was.
    response = await noblock_client.get("/bad-practice")
    assert response.json()["upstream"]["status"] == "ok"
