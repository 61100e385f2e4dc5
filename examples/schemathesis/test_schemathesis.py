"""schemathesis tests of every operation of the app: no test rewrite, just the marker.

Each operation is a test of its own. `test_api[GET /orders/{order_id}]` is expected to FAIL
(`read_order` holds the loop); `test_api[GET /checksums/{word}]` passes.
"""

import pytest
import schemathesis
from hypothesis import settings

from examples.schemathesis.app import app

schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.mark.noblock
@schema.parametrize()
@settings(max_examples=5, derandomize=True, deadline=None)
def test_api(case: schemathesis.Case) -> None:
    response = case.call()
    assert response.status_code < 500
