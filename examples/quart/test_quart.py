"""Quart's own test client, marked: `test_login` is expected to FAIL."""

import pytest

from examples.quart.app import app

pytestmark = [pytest.mark.asyncio, pytest.mark.noblock]


async def test_login() -> None:
    # Expected to FAIL: `login` hashes the password on the event loop.
    response = await app.test_client().post("/login", data=b"secret")
    assert response.status_code == 200


async def test_login_threaded() -> None:
    response = await app.test_client().post("/login-threaded", data=b"secret")
    assert response.status_code == 200
