"""Marking where each request starts and ends while a watched test runs.

Every `httpx.ASGITransport` is covered, the one behind `noblock_client` and any the test
builds itself: for the length of the watched test body, the transport hands each request
to the app through a thin wrapper that names the request and cuts the step clock's
segment at its edges. The wrapper passes scope, receive and send through untouched.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import httpx

from . import steps
from .origins import Request, current_origin

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class TrackedApp:
    """An ASGI app wrapper that makes the request the owner of the loop time it uses."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope.get("method", "WEBSOCKET"), scope.get("path", "/"), scope)
        token = current_origin.set(request)
        _switch(request)
        try:
            await self.app(scope, receive, send)
        finally:
            current_origin.reset(token)
            _switch(current_origin.get())


def _switch(origin: Any) -> None:
    clock = steps.clock_for_this_thread()
    if clock is not None:
        clock.switch(origin)


_original_handle: Callable[..., Awaitable[httpx.Response]] | None = None
# One tracked twin per transport, so the user's transport object is never modified.
# Keyed by id() for speed; the transport is kept in the value so the id stays its own.
_twins: dict[int, tuple[httpx.ASGITransport, httpx.ASGITransport]] = {}


async def _tracked_handle(self: httpx.ASGITransport, request: httpx.Request) -> httpx.Response:
    entry = _twins.get(id(self))
    if entry is None or entry[0] is not self or entry[1].app.app is not self.app:  # type: ignore[attr-defined]
        twin = copy.copy(self)
        twin.app = TrackedApp(self.app)
        entry = _twins[id(self)] = (self, twin)
    return await _original_handle(entry[1], request)  # type: ignore[misc]


def install() -> None:
    global _original_handle
    if _original_handle is None:
        _original_handle = httpx.ASGITransport.handle_async_request
        httpx.ASGITransport.handle_async_request = _tracked_handle  # type: ignore[method-assign]


def uninstall() -> None:
    global _original_handle
    if _original_handle is not None:
        httpx.ASGITransport.handle_async_request = _original_handle  # type: ignore[method-assign, assignment]
        _original_handle = None
        _twins.clear()
