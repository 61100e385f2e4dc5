"""Marking where each request starts and ends while a watched test runs.

Every `httpx.ASGITransport` is covered, the one behind `noblock_client` and any the test
builds itself: for the length of the watched test body, the transport hands each request
to the app through a thin wrapper that names the request and cuts the step clock's
segment at its edges. The wrapper passes scope, receive and send through untouched.

httpx-ws's `ASGIWebSocketTransport` overrides `handle_async_request` and runs each WebSocket
session's app in a task of its own, from a stream object it makes per session: that
stream's app is wrapped the same way when the session starts, so the session's loop time
is its request's (`WEBSOCKET /path`). Plain HTTP through that transport takes the path above.
"""

from __future__ import annotations

import copy
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from contextvars import Token
from typing import Any

import httpx

from . import steps
from .origins import PAUSED, Origin, Request, current_origin
from .patching import MethodPatch

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class TrackedApp:
    """An ASGI app wrapper that makes the request the owner of the loop time it uses."""

    __slots__ = ("app",)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        _clocks: dict[int, steps.StepClock] = steps.clocks,
        _get_ident: Callable[[], int] = threading.get_ident,
        _get_origin: Callable[[], Origin | None] = current_origin.get,
        _set_origin: Callable[[Origin | None], Token[Origin | None]] = current_origin.set,
        _reset_origin: Callable[[Token[Origin | None]], None] = current_origin.reset,
    ) -> None:
        # Runs for every request of a watched test: kept to a few local lookups.
        ident = _get_ident()
        clock = _clocks.get(ident)
        current = clock.current if clock is not None else None
        # The owner of the running segment is the caller's origin, read without a
        # context lookup (a miss in the context's cache after every request's reset).
        outer = current[1] if current is not None else _get_origin()
        if outer is PAUSED:
            # Sent from inside noblock_paused(): the request stays unwatched too.
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        token = _set_origin(request)
        if clock is not None:
            clock.switch(request)
        try:
            await self.app(scope, receive, send)
        finally:
            _reset_origin(token)
            # Looked up again: the test body may have ended meanwhile.
            clock = _clocks.get(ident)
            if clock is not None:
                clock.switch(outer)


_HANDLE = MethodPatch(httpx.ASGITransport, "handle_async_request")
# One tracked twin per transport, so the user's transport object is never modified.
# Keyed by id() for speed, and any transport hashes; the value holds the transport, so
# the id stays its own, and the app the twin wraps, in case the test swaps it.
_twins: dict[int, tuple[httpx.ASGITransport, ASGIApp, httpx.ASGITransport]] = {}


def _tracked_handle(
    self: httpx.ASGITransport, request: httpx.Request
) -> Coroutine[Any, Any, httpx.Response]:
    # A plain function handing back the original coroutine: no extra coroutine layer
    # for every request.
    entry = _twins.get(id(self))
    if entry is None or entry[0] is not self or entry[1] is not self.app:
        twin = copy.copy(self)
        twin.app = TrackedApp(self.app)
        entry = _twins[id(self)] = (self, self.app, twin)
    handle: Callable[..., Coroutine[Any, Any, httpx.Response]] = _HANDLE.original or _HANDLE.real
    return handle(entry[2], request)


# httpx-ws's per-session stream class's `_run`, once httpx-ws has been imported.
_session_run: MethodPatch | None = None


def _tracked_session_run(stream: Any) -> Coroutine[Any, Any, None]:
    # `_run` is the session's task: it calls `stream.app` once. The stream is httpx-ws's
    # own object for this one session, never the user's transport, so it may be changed.
    # A session that outlives the test only keeps its harmless wrapper.
    if not isinstance(stream.app, TrackedApp):
        stream.app = TrackedApp(stream.app)
    assert _session_run is not None
    run: Callable[[Any], Coroutine[Any, Any, None]] = _session_run.original or _session_run.real
    return run(stream)


def install() -> None:
    global _session_run
    _HANDLE.install(_tracked_handle)
    if _session_run is None:
        # Only when the test's code has imported it: never import httpx-ws for the user.
        stream = getattr(
            sys.modules.get("httpx_ws.transport"), "ASGIWebSocketAsyncNetworkStream", None
        )
        if isinstance(stream, type) and callable(vars(stream).get("_run")):
            _session_run = MethodPatch(stream, "_run")
    if _session_run is not None:
        _session_run.install(_tracked_session_run)


def uninstall() -> None:
    _HANDLE.uninstall()
    _twins.clear()
    if _session_run is not None:
        _session_run.uninstall()
