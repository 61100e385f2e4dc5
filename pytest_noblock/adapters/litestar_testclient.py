"""Litestar's `TestClient` and `AsyncTestClient`: requests served on a portal's loop.

Both clients run the app on an event loop in a thread of their own, an anyio blocking
portal: one for a `with` (`async with`) block, a new one for every request without it.
Every request reaches the app in `TestClientTransport.handle_request`, as
`portal.call(self.client.app, ...)`: a copy of the transport handles it, seeing the client
through a view whose app is tracked, so neither the user's transport nor the client is
modified (WebSocket sessions, made from that client, are covered too). Litestar imports
`start_blocking_portal` into `litestar.testing.client.base` by name: that name calls anyio's
own for the test, where the watch put its watched portal (see `portals`).
`LifeSpanHandler.lifespan` runs as the app's lifespan: noted, never blamed on a request.

The async client's `handle_async_request` calls `handle_request` from the test's own loop,
which waits there, held, until the portal's loop has served the request; its `__aenter__`
and `__aexit__` wait the same way for the portal and the app's lifespan. Those waits are cut
out of the test loop's time (what they wait for is timed where it runs): neither a hold nor
the test's own code.
"""

from __future__ import annotations

import copy
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import anyio.from_thread

from .. import steps
from ..origins import WAITING_FOR_ANOTHER_LOOP, current_origin
from ..patching import MethodPatch
from ..tracking import ASGIApp
from . import ClientPatch
from .starlette_testclient import Patch, lifespan_origin


def install(patch: Patch, tracked: Callable[[ASGIApp], ASGIApp]) -> None:
    """For one watched test; only when the test's code has imported Litestar's clients."""
    base = sys.modules.get("litestar.testing.client.base")
    if base is not None and callable(getattr(base, "start_blocking_portal", None)):
        patch(base, "start_blocking_portal", _start_portal_through_anyio)
    transport = getattr(sys.modules.get("litestar.testing.transport"), "TestClientTransport", None)
    if transport is not None and hasattr(transport, "handle_request"):
        patch(transport, "handle_request", _tracked_handle(transport.handle_request, tracked))
    lifespan = getattr(
        sys.modules.get("litestar.testing.life_span_handler"), "LifeSpanHandler", None
    )
    if lifespan is not None and hasattr(lifespan, "lifespan"):
        patch(lifespan, "lifespan", lifespan_origin(lifespan.lifespan))


def _start_portal_through_anyio(*args: Any, **kwargs: Any) -> Any:
    __tracebackhide__ = True
    return anyio.from_thread.start_blocking_portal(*args, **kwargs)


class _ClientView:
    """The client as one request's transport sees it: the same client, its app tracked."""

    __slots__ = ("_client", "app")

    def __init__(self, client: object, app: ASGIApp) -> None:
        self._client = client
        self.app = app

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def _tracked_handle(
    original: Callable[..., Any], tracked: Callable[[ASGIApp], ASGIApp]
) -> Callable[..., Any]:
    def handle_request(transport: Any, request: Any) -> Any:
        __tracebackhide__ = True  # tracebacks show the app, not the plugin
        twin = copy.copy(transport)
        twin.client = _ClientView(transport.client, tracked(transport.client.app))
        return original(twin, request)

    return handle_request


def _waiting_for_the_portal(patch: MethodPatch) -> Callable[..., Coroutine[Any, Any, Any]]:
    """An async method of the client that waits, on the test's loop, for the portal's: its
    wait cut out of the test loop's time."""

    async def waiting(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        method: Callable[..., Coroutine[Any, Any, Any]] = patch.original or patch.real
        clock = steps.clocks.get(threading.get_ident())
        if clock is None:
            return await method(*args, **kwargs)
        clock.switch(WAITING_FOR_ANOTHER_LOOP)
        try:
            return await method(*args, **kwargs)
        finally:
            # Looked up again: the test body may have ended meanwhile.
            clock = steps.clocks.get(threading.get_ident())
            if clock is not None:
                clock.switch(current_origin.get())

    return waiting


PATCHES: tuple[ClientPatch, ...] = (
    # Each request.
    (
        "litestar.testing.transport",
        "TestClientTransport",
        "handle_async_request",
        _waiting_for_the_portal,
    ),
    # `async with`: starting the portal and the app's lifespan, and shutting both down.
    *(
        ("litestar.testing.client.async_client", "AsyncTestClient", method, _waiting_for_the_portal)
        for method in ("__aenter__", "__aexit__")
    ),
)
