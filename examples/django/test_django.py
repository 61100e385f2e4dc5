"""Django's AsyncClient and its ASGI app: `test_signed_invoice` and `test_signed_invoice_asgi`
are expected to FAIL. Run on their own: `pytest examples/django/`."""

import httpx
import pytest
from django.test import AsyncClient

pytestmark = [pytest.mark.asyncio, pytest.mark.noblock]


async def test_signed_invoice() -> None:
    # Expected to FAIL: `signed_invoice` hashes on the loop, inside `async def`.
    assert (await AsyncClient().get("/invoices/7/signed/")).json()["invoice"] == 7


async def test_signed_invoice_in_thread() -> None:
    response = await AsyncClient().get("/invoices/7/signed-in-thread/")
    assert response.json()["invoice"] == 7


async def test_signed_invoice_asgi(noblock_client: httpx.AsyncClient) -> None:
    # Expected to FAIL: the same view, served by Django's ASGI handler.
    assert (await noblock_client.get("/invoices/8/signed/")).json()["invoice"] == 8
