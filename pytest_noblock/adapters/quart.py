"""Quart: its routing lives in the request context, and its test client calls the app.

Quart writes nothing of its routing into the ASGI scope: it matches the request against the
app's URL map when it pushes the request's context, and keeps the rule on its own request
object (`request.url_rule`; the view is `app.view_functions[rule.endpoint]`). While a test
is watched, `Quart.request_context` and `websocket_context` (called once per request) keep
that request object and its app beside the tracked request, keyed by the scope they share;
the rule is read from it only when a report names the handler. So a Quart app is named
through any tracked client: `noblock_client`, an `httpx.ASGITransport` of its own, Quart's
test client, or Starlette's `TestClient` in a sync test.

Quart's test client (`app.test_client()`) calls the app from `TestHTTPConnection` and
`TestWebsocketConnection`, one object per request that starts the app's task when entered:
that object's app is the tracked one just while it starts the task. `app.test_app()` runs
the app's lifespan (`before_serving`, `while_serving`): noted, never blamed on a request.

A `def` route (or hook) runs in a worker thread through `Quart.sync_to_async`: the call is
registered as its request's work there, so one that keeps the GIL is caught (see `gil`).
"""

from __future__ import annotations

import functools
import sys
import weakref
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from ..gil import for_worker
from ..origins import LIFESPAN, Request, current_origin
from ..patching import MethodPatch
from ..tracking import TrackedApp
from . import ClientPatch, Framework, Scope

# The Quart request object and app of each tracked request, by id() of the scope they
# share: (the scope, so the id stays its own; a weak reference to the tracked request, whose
# end drops the entry; Quart's request object; the app). Entries live as long as the
# tracked request, which lives as long as a hold names it.
_served: dict[int, tuple[Scope, weakref.ref[Request], Any, Any]] = {}


def _keeping_request(patch: MethodPatch) -> Callable[[Any, Any], Any]:
    return _keeping_request_of(lambda: patch.original or patch.real)


def _keeping_request_of(
    real: Callable[[], Callable[[Any, Any], Any]],
) -> Callable[[Any, Any], Any]:
    """`request_context` / `websocket_context`: keeps the request object for the report."""

    def context_keeping_request(app: Any, request: Any) -> Any:
        __tracebackhide__ = True
        context = real()(app, request)
        origin = current_origin.get()
        scope = getattr(request, "scope", None)
        if isinstance(origin, Request) and origin.scope is scope:
            key = id(scope)
            _served[key] = (scope, weakref.ref(origin, _forget(key)), request, app)
        return context

    return context_keeping_request


def _watching_workers(patch: MethodPatch) -> Callable[[Any, Any], Any]:
    return _watching_workers_of(lambda: patch.original or patch.real)


def _watching_workers_of(
    real: Callable[[], Callable[[Any, Any], Any]],
) -> Callable[[Any, Any], Any]:
    """`Quart.sync_to_async`, which runs a `def` route (or hook) in a worker thread: the
    call is the request's work there, so a worker keeping the GIL is caught (see `gil`)."""

    def sync_to_async_watched(app: Any, func: Callable[..., Any]) -> Any:
        __tracebackhide__ = True
        worker = functools.update_wrapper(for_worker(func, current_origin.get()), func)
        return real()(app, worker)

    return sync_to_async_watched


def _forget(key: int) -> Callable[[weakref.ref[Request]], None]:
    def forget(reference: weakref.ref[Request]) -> None:
        entry = _served.get(key)
        if entry is not None and entry[1] is reference:
            del _served[key]

    return forget


def _matched(scope: Scope) -> tuple[Any, Any] | None:
    """The URL rule the app matched for this request, and the app."""
    entry = _served.get(id(scope))
    if entry is None or entry[0] is not scope:
        return None
    rule = getattr(entry[2], "url_rule", None)
    return (rule, entry[3]) if rule is not None else None


def endpoint(scope: Scope) -> object:
    """The view function the rule names (a class-based view's class)."""
    matched = _matched(scope)
    if matched is None:
        return None
    rule, app = matched
    views = getattr(app, "view_functions", None)
    view = views.get(rule.endpoint) if isinstance(views, Mapping) else None
    return getattr(view, "view_class", view)


def route(scope: Scope) -> str | None:
    """The rule as the app declares it (`/items/<int:id>`), under the scope's root path."""
    matched = _matched(scope)
    template = getattr(matched[0], "rule", None) if matched is not None else None
    if not isinstance(template, str):
        return None
    root: str = scope.get("root_path", "")
    path: str = scope.get("path", "/")
    return root + template if root and path.startswith(root) else template


def install(patch: Callable[[object, str, object], None], tracked: object) -> None:
    """For one watched sync test (a Quart app served through Starlette's `TestClient`, whose
    own adapter tracks the requests): the app's routing is kept for the report too."""
    quart = getattr(sys.modules.get("quart.app"), "Quart", None)
    if not isinstance(quart, type):
        return
    for name, wrapper_of in (
        ("request_context", _keeping_request_of),
        ("websocket_context", _keeping_request_of),
        ("sync_to_async", _watching_workers_of),
    ):
        original: Callable[[Any, Any], Any] | None = vars(quart).get(name)
        if callable(original):
            patch(quart, name, wrapper_of(_always(original)))


def _always(real: Callable[[Any, Any], Any]) -> Callable[[], Callable[[Any, Any], Any]]:
    return lambda: real


def _tracked_connection_enter(
    patch: MethodPatch,
) -> Callable[[Any], Coroutine[Any, Any, Any]]:
    """`__aenter__` of a test connection: the task it starts runs the tracked app."""

    async def enter_tracked(connection: Any) -> Any:
        __tracebackhide__ = True
        enter: Callable[[Any], Coroutine[Any, Any, Any]] = patch.original or patch.real
        # The connection is the client's own object for this one request. Its app is
        # called as the task starts, within `__aenter__`; the connection reads it again
        # after (`app.response_class`), so it is the app itself again by then.
        app = connection.app
        connection.app = TrackedApp(app)
        try:
            return await enter(connection)
        finally:
            connection.app = app

    return enter_tracked


def _lifespan_origin(patch: MethodPatch) -> Callable[[Any], Coroutine[Any, Any, None]]:
    """`TestApp.startup`: the lifespan task it starts runs, up to shutdown, as the lifespan."""

    async def startup_as_lifespan(test_app: Any) -> None:
        __tracebackhide__ = True
        startup: Callable[[Any], Coroutine[Any, Any, None]] = patch.original or patch.real
        token = current_origin.set(LIFESPAN)
        try:
            await startup(test_app)
        finally:
            current_origin.reset(token)

    return startup_as_lifespan


PATCHES: tuple[ClientPatch, ...] = (
    ("quart.app", "Quart", "request_context", _keeping_request),
    ("quart.app", "Quart", "websocket_context", _keeping_request),
    ("quart.app", "Quart", "sync_to_async", _watching_workers),
    ("quart.testing.connections", "TestHTTPConnection", "__aenter__", _tracked_connection_enter),
    (
        "quart.testing.connections",
        "TestWebsocketConnection",
        "__aenter__",
        _tracked_connection_enter,
    ),
    ("quart.testing.app", "TestApp", "startup", _lifespan_origin),
)

# Quart serves each request in tasks of its own, beside the one the client started.
REQUEST_TASKS = (
    ("quart.asgi", "ASGIHTTPConnection.handle_request", "handling the request"),
    ("quart.asgi", "ASGIHTTPConnection.handle_messages", "receiving the request body"),
    ("quart.asgi", "ASGIWebsocketConnection.handle_websocket", "handling the WebSocket"),
    ("quart.asgi", "ASGIWebsocketConnection.handle_messages", "receiving WebSocket messages"),
)

FRAMEWORK = Framework(
    name="Quart",
    packages=frozenset({"quart"}),
    endpoint=endpoint,
    route=route,
    thread_call="`await run_sync({function})({arguments})` (from quart)",
    sync_handler="or make the route a plain `def`: Quart runs those in a worker thread",
    request_tasks=REQUEST_TASKS,
)
