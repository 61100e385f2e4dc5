"""httpx's `ASGITransport` (and httpx2's, the fork newer Starlette asks for).

Every transport is covered, the one behind `noblock_client` and any the test builds
itself: for the length of the watched test body, `handle_async_request` hands each request
to a tracked twin of the transport, whose app names the request and cuts the step clock's
segment at its edges. The user's transport object is never modified.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Coroutine
from typing import Any

from ..patching import MethodPatch
from ..tracking import ASGIApp, TrackedApp
from . import ClientPatch

# One tracked twin per transport. Keyed by id(): fast, and fine for a transport class that
# is not hashable. The value holds the transport, so the id stays its own, and the app the
# twin wraps, in case the test swaps it.
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


def forget() -> None:
    """After the test: no twin outlives it."""
    _twins.clear()


PATCHES: tuple[ClientPatch, ...] = (
    ("httpx", "ASGITransport", "handle_async_request", _tracking_handle),
    ("httpx2", "ASGITransport", "handle_async_request", _tracking_handle),
)
