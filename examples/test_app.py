"""Example tests for pytest-noblock.

Running ``pytest examples/`` from the project root is expected to give two failures,
both caught by the plugin because the handler holds the event loop
(``test_bad_practice`` and ``test_blocking_dependency``), and three passes.
"""

import httpx
import pytest

pytestmark = [pytest.mark.asyncio, pytest.mark.noblock]


async def test_bad_practice(noblock_client: httpx.AsyncClient) -> None:
    # Expected to FAIL: sync requests.get inside async def blocks the loop.
    response = await noblock_client.get("/bad-practice")
    assert response.status_code == 200
    assert response.json()["practice"] == "bad"
    assert response.json()["upstream"]["status"] == "ok"


async def test_good_practice(noblock_client: httpx.AsyncClient) -> None:
    response = await noblock_client.get("/good-practice")
    assert response.status_code == 200
    assert response.json()["practice"] == "good"
    assert response.json()["upstream"]["status"] == "ok"


async def test_best_practice(noblock_client: httpx.AsyncClient) -> None:
    response = await noblock_client.get("/best-practice")
    assert response.status_code == 200
    assert response.json()["practice"] == "best"
    assert response.json()["upstream"]["status"] == "ok"


async def test_sync_endpoint(noblock_client: httpx.AsyncClient) -> None:
    response = await noblock_client.get("/sync-endpoint")
    assert response.status_code == 200
    assert response.json()["practice"] == "sync"


async def test_blocking_dependency(noblock_client: httpx.AsyncClient) -> None:
    # Expected to FAIL: the async def dependency calls time.sleep on the loop.
    response = await noblock_client.get("/settings")
    assert response.status_code == 200
    assert response.json()["settings"]["source"] == "slow-config"
