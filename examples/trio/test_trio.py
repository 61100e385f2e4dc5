"""Tests run on trio by anyio's plugin: `test_slow_lookup` is expected to FAIL."""

import httpx
import pytest

pytestmark = [pytest.mark.anyio, pytest.mark.noblock]


async def test_slow_lookup(noblock_client: httpx.AsyncClient) -> None:
    # Expected to FAIL: `slow_lookup` calls time.sleep inside `async def`.
    assert (await noblock_client.get("/slow-lookup")).json() == {"found": True}


async def test_fast_lookup(noblock_client: httpx.AsyncClient) -> None:
    assert (await noblock_client.get("/fast-lookup")).json() == {"found": True}
