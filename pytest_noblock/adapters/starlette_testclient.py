"""Starlette's `TestClient` (and so FastAPI's): requests served on a portal's loop.

`TestClient` runs the app on an event loop in a thread of its own (an anyio blocking
portal, see `portals`). Every request reaches the app through `_TestClientTransport`'s
`handle_request`: a shallow copy of the transport, with the app tracked, handles it, so
the user's transport is never modified (WebSocket sessions, which it creates with its app,
are covered too). `TestClient.lifespan` runs as the app's lifespan: noted, never blamed on
a request.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from typing import Any

from ..origins import LIFESPAN, current_origin
from ..tracking import ASGIApp

Patch = Callable[[object, str, object], None]


def install(patch: Patch, tracked: Callable[[ASGIApp], ASGIApp]) -> None:
    """For one watched sync test; only when the test's code has imported the client."""
    testclient = sys.modules.get("starlette.testclient")
    if testclient is None:
        return
    transport = getattr(testclient, "_TestClientTransport", None)
    if transport is not None and hasattr(transport, "handle_request"):
        patch(transport, "handle_request", _tracked_handle(transport.handle_request, tracked))
    client = getattr(testclient, "TestClient", None)
    if client is not None and hasattr(client, "lifespan"):
        patch(client, "lifespan", lifespan_origin(client.lifespan))


def _tracked_handle(
    original: Callable[..., Any], tracked: Callable[[ASGIApp], ASGIApp]
) -> Callable[..., Any]:
    def handle_request(transport: Any, request: Any) -> Any:
        __tracebackhide__ = True  # tracebacks show the app, not the plugin
        twin = copy.copy(transport)
        twin.app = tracked(transport.app)
        return original(twin, request)

    return handle_request


def lifespan_origin(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A client's method that runs the app's lifespan, as the lifespan's loop time."""

    async def lifespan(self: Any) -> None:
        __tracebackhide__ = True
        token = current_origin.set(LIFESPAN)
        try:
            await original(self)
        finally:
            current_origin.reset(token)

    return lifespan
