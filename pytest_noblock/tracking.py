"""Marking where each request starts and ends while a watched test runs.

Every `httpx.ASGITransport` is covered, the one behind `noblock_client` and any the test
builds itself: for the length of the watched test body, the transport hands each request
to the app through a thin wrapper that names the request and cuts the step clock's
segment at its edges. The wrapper passes scope, receive and send through untouched.
httpx2's `ASGITransport` (the fork newer Starlette asks for) is covered the same way.

httpx-ws's `ASGIWebSocketTransport` (and httpx2's copy of it) overrides
`handle_async_request` and runs each WebSocket session's app in a task of its own, from a
stream object it makes per session: that stream's app is wrapped the same way when the
session starts, so the session's loop time is its request's (`WEBSOCKET /path`). Plain
HTTP through that transport takes the path above.

All but httpx are patched only once the test's code has imported them: the plugin never
imports a library for the user.
"""

from __future__ import annotations

import copy
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from contextvars import Token
from typing import Any

import httpx  # noqa: F401 - the plugin's own client: its transport is patched from import on

from . import steps, warmup
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
        _sequence: Callable[[], int] = warmup.sequence,
    ) -> None:
        __tracebackhide__ = True  # tracebacks show the app, not the plugin
        # Runs for every request of a watched test: kept to a few local lookups.
        outer = _get_origin()
        request = Request(scope, self.app, _sequence())
        if outer is PAUSED:
            # Sent from inside noblock_paused(): the request stays unwatched too, but the
            # route has served it (a warm-up request, say).
            try:
                await self.app(scope, receive, send)
            finally:
                warmup.finished(request)
            return
        token = _set_origin(request)
        ident = _get_ident()
        clock = _clocks.get(ident)
        if clock is not None:
            clock.switch(request)
        try:
            await self.app(scope, receive, send)
        finally:
            _reset_origin(token)
            warmup.finished(request)
            # Looked up again: the test body may have ended meanwhile.
            clock = _clocks.get(ident)
            if clock is not None:
                clock.switch(outer)


# One tracked twin per transport, so the user's transport object is never modified.
# Keyed by id(): fast, and fine for a transport class that is not hashable. The value
# holds the transport, so the id stays its own, and the app the twin wraps, in case the
# test swaps it.
_twins: dict[int, tuple[Any, ASGIApp, Any]] = {}


def _tracking_handle(patch: MethodPatch) -> Callable[[Any, Any], Coroutine[Any, Any, Any]]:
    """`handle_async_request` of one transport class, sending each request to the twin."""

    def tracked_handle(self: Any, request: Any) -> Coroutine[Any, Any, Any]:
        __tracebackhide__ = True
        # A plain function handing back the original coroutine: no extra coroutine layer
        # for every request.
        entry = _twins.get(id(self))
        if entry is None or entry[0] is not self or entry[1] is not self.app:
            twin = copy.copy(self)
            twin.app = TrackedApp(self.app)
            entry = _twins[id(self)] = (self, self.app, twin)
        handle: Callable[[Any, Any], Coroutine[Any, Any, Any]] = patch.original or patch.real
        return handle(entry[2], request)

    return tracked_handle


def _tracking_session_run(patch: MethodPatch) -> Callable[[Any], Coroutine[Any, Any, None]]:
    """`_run` of one WebSocket session stream class, with the session's app tracked."""

    def tracked_session_run(stream: Any) -> Coroutine[Any, Any, None]:
        __tracebackhide__ = True
        # `_run` is the session's task: it calls `stream.app` once. The stream is the
        # library's own object for this one session, never the user's transport, so it
        # may be changed. A session that outlives the test only keeps its harmless wrapper.
        if not isinstance(stream.app, TrackedApp):
            stream.app = TrackedApp(stream.app)
        run: Callable[[Any], Coroutine[Any, Any, None]] = patch.original or patch.real
        return run(stream)

    return tracked_session_run


# (module, class, method, the wrapper's maker) for every method patched per request.
_METHODS: tuple[tuple[str, str, str, Callable[[MethodPatch], Callable[..., Any]]], ...] = (
    ("httpx", "ASGITransport", "handle_async_request", _tracking_handle),
    ("httpx2", "ASGITransport", "handle_async_request", _tracking_handle),
    ("httpx_ws.transport", "ASGIWebSocketAsyncNetworkStream", "_run", _tracking_session_run),
    (
        "httpx2.websockets._transport",
        "ASGIWebSocketAsyncNetworkStream",
        "_run",
        _tracking_session_run,
    ),
)
# The patches made so far, by module and class, each with its wrapper.
_patches: dict[tuple[str, str], tuple[MethodPatch, Callable[..., Any]]] = {}


def _patch_for(
    module: str, owner: str, method: str, wrapper_for: Callable[[MethodPatch], Callable[..., Any]]
) -> tuple[MethodPatch, Callable[..., Any]] | None:
    cls = getattr(sys.modules.get(module), owner, None)
    if not isinstance(cls, type) or not callable(vars(cls).get(method)):
        return None
    found = _patches.get((module, owner))
    # Checked against the class itself: a module imported again (pytester's in-process
    # runs drop the modules a run imported) has classes of its own.
    if found is None or found[0].owner is not cls:
        if found is not None:
            found[0].uninstall()
        patch = MethodPatch(cls, method)
        found = _patches[(module, owner)] = (patch, wrapper_for(patch))
    return found


def _found_patches() -> list[tuple[MethodPatch, Callable[..., Any]]]:
    found = (_patch_for(*entry) for entry in _METHODS)
    return [entry for entry in found if entry is not None]


# Made now for the libraries already imported (httpx always is), so that each patch keeps
# the library's own method: a fixture patching it before a test cannot pass for it.
_found_patches()


def install() -> None:
    for patch, wrapper in _found_patches():
        patch.install(wrapper)


def uninstall() -> None:
    for patch, _ in _patches.values():
        patch.uninstall()
    _twins.clear()
