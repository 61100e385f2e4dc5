"""Marking where each request starts and ends while a watched test runs.

Every `httpx.ASGITransport` is covered, the one behind `noblock_client` and any the test
builds itself: for the length of the watched test body, the transport hands each request
to the app through a thin wrapper that names the request and cuts the step clock's
segment at its edges. The wrapper passes scope, receive and send through untouched.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from typing import Any

import httpx

from . import steps
from .origins import PAUSED, Request, current_origin

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class TrackedApp:
    """An ASGI app wrapper that makes the request the owner of the loop time it uses."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        _clocks: dict[int, steps.StepClock] = steps.clocks,
        _get_ident: Callable[[], int] = threading.get_ident,
    ) -> None:
        # Runs for every request of a watched test: kept to a few lookups.
        if current_origin.get() is PAUSED:
            # Sent from inside noblock_paused(): the request stays unwatched too.
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        token = current_origin.set(request)
        clock = _clocks.get(_get_ident())
        if clock is not None:
            clock.switch(request)
        try:
            await self.app(scope, receive, send)
        finally:
            current_origin.reset(token)
            # Looked up again: the test body may have ended meanwhile.
            clock = _clocks.get(_get_ident())
            if clock is not None:
                clock.switch(current_origin.get())


_original_handle: Callable[..., Coroutine[Any, Any, httpx.Response]] | None = None
# One tracked twin per transport, so the user's transport object is never modified.
# Keyed by id() for speed; the transport is kept in the value so the id stays its own.
_twins: dict[int, tuple[httpx.ASGITransport, httpx.ASGITransport]] = {}


def _tracked_handle(
    self: httpx.ASGITransport, request: httpx.Request
) -> Coroutine[Any, Any, httpx.Response]:
    # A plain function handing back the original coroutine: no extra coroutine layer
    # for every request.
    entry = _twins.get(id(self))
    if entry is None or entry[0] is not self or entry[1].app.app is not self.app:  # type: ignore[attr-defined]
        twin = copy.copy(self)
        twin.app = TrackedApp(self.app)
        entry = _twins[id(self)] = (self, twin)
    return _original_handle(entry[1], request)  # type: ignore[misc]


def install() -> None:
    global _original_handle
    if _original_handle is None:
        _original_handle = httpx.ASGITransport.handle_async_request
        httpx.ASGITransport.handle_async_request = _tracked_handle  # type: ignore[method-assign]


def uninstall() -> None:
    global _original_handle
    if _original_handle is not None:
        httpx.ASGITransport.handle_async_request = _original_handle  # type: ignore[method-assign]
        _original_handle = None
        _twins.clear()
