"""httpx-ws's `ASGIWebSocketTransport` (and httpx2's copy of it): WebSocket sessions.

The transport runs each session's app in a task of its own, from a stream object it makes
per session: that stream's app is wrapped when the session starts, so the session's loop
time is its request's (`WEBSOCKET /path`). Plain HTTP through the transport goes through
`httpx.ASGITransport`'s method (see `httpx`).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from ..patching import MethodPatch
from ..tracking import TrackedApp
from . import ClientPatch


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


PATCHES: tuple[ClientPatch, ...] = (
    ("httpx_ws.transport", "ASGIWebSocketAsyncNetworkStream", "_run", _tracking_session_run),
    (
        "httpx2.websockets._transport",
        "ASGIWebSocketAsyncNetworkStream",
        "_run",
        _tracking_session_run,
    ),
)
