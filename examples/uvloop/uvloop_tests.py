"""Tests on uvloop through pytest-asyncio: `test_slow_quote` is expected to FAIL.

Not collected by `pytest examples/` (the demo runs on asyncio's own loop); run it with
`pytest examples/uvloop/uvloop_tests.py`.
"""

import asyncio

import httpx
import pytest
import uvloop
from fastapi import FastAPI

pytestmark = [pytest.mark.asyncio, pytest.mark.noblock]


@pytest.fixture(scope="session")
def event_loop_policy() -> uvloop.EventLoopPolicy:
    # pytest-asyncio 1.4+ also takes a `pytest_asyncio_loop_factories` hook in a conftest:
    # `return {"uvloop": uvloop.new_event_loop}`.
    return uvloop.EventLoopPolicy()


@pytest.fixture
def noblock_app() -> FastAPI:
    from examples.uvloop.app import app

    return app


async def test_slow_quote(noblock_client: httpx.AsyncClient) -> None:
    # Expected to FAIL: `slow_quote` calls time.sleep inside `async def`.
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
    assert (await noblock_client.get("/slow-quote")).json() == {"price": 1.0}


async def test_fast_quote(noblock_client: httpx.AsyncClient) -> None:
    assert (await noblock_client.get("/fast-quote")).json() == {"price": 1.0}
