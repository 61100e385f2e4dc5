"""Sync tests with Starlette's/FastAPI's `TestClient`: no test rewrite, just the marker.

`test_report` is expected to FAIL (the handler holds the loop); `test_digest` passes.
"""

import pytest
from fastapi.testclient import TestClient

from examples.testclient.app import app

pytestmark = pytest.mark.noblock


def test_report() -> None:
    # Expected to FAIL: `build_report` calls time.sleep inside `async def`.
    with TestClient(app) as client:
        assert client.get("/report").json() == {"report": "ready"}


def test_digest() -> None:
    # Without a `with` block: TestClient starts a loop per request; it is watched too.
    client = TestClient(app)
    assert client.get("/digest").status_code == 200
