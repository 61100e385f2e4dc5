"""Run these examples on trio through anyio's pytest plugin, with their own app."""

import pytest
from starlette.applications import Starlette


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


@pytest.fixture
def noblock_app() -> Starlette:
    from examples.trio.app import app

    return app
