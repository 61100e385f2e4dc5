"""The sweep's requests carry the header the admin operations check."""

import pytest


@pytest.fixture
def noblock_sweep_kwargs() -> dict[str, dict[str, str]]:
    return {"headers": {"x-token": "example-token"}}
