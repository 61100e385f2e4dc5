"""Marking where each request starts and ends while a watched test runs.

A client adapter (see `adapters`) hands each request to the app through `TrackedApp`, a
thin wrapper that names the request and cuts the step clock's segment at its edges; it
passes scope, receive and send through untouched. The client methods the adapters name
are patched for the length of each watched test body, and only once the test's code has
imported their module: the plugin never imports a library for the user.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Awaitable, Callable, MutableMapping
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


# The patches made so far, by module, class and method, each with its wrapper.
_patches: dict[tuple[str, str, str], tuple[MethodPatch, Callable[..., Any]]] = {}


def _patch_for(
    module: str, owner: str, method: str, wrapper_for: Callable[[MethodPatch], Callable[..., Any]]
) -> tuple[MethodPatch, Callable[..., Any]] | None:
    cls = getattr(sys.modules.get(module), owner, None)
    if not isinstance(cls, type) or not callable(vars(cls).get(method)):
        return None
    found = _patches.get((module, owner, method))
    # Checked against the class itself: a module imported again (pytester's in-process
    # runs drop the modules a run imported) has classes of its own.
    if found is None or found[0].owner is not cls:
        if found is not None:
            found[0].uninstall()
        patch = MethodPatch(cls, method)
        found = _patches[(module, owner, method)] = (patch, wrapper_for(patch))
    return found


def _found_patches() -> list[tuple[MethodPatch, Callable[..., Any]]]:
    from .adapters import client_patches

    found = (_patch_for(*entry) for entry in client_patches())
    return [entry for entry in found if entry is not None]


# Made now for the clients already imported (httpx always is), so that each patch keeps
# the library's own method: a fixture patching it before a test cannot pass for it.
_found_patches()


def install() -> None:
    for patch, wrapper in _found_patches():
        patch.install(wrapper)


def uninstall() -> None:
    from .adapters import httpx as httpx_adapter

    for patch, _ in _patches.values():
        patch.uninstall()
    httpx_adapter.forget()
