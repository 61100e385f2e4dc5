"""Django: async views, served by its test client's `AsyncClient` or its ASGI handler.

The view is named as Django names it (a class-based view by its class), the route by its
URL pattern (`/users/<int:pk>/`), both read only when a report needs them. Django's URL
resolver writes nothing into the request's scope: for `AsyncClient`'s requests the match
Django made is kept by the scope's id; a request to the ASGI handler is resolved again
from its path, as Django's own test client finds `response.resolver_match`.

`AsyncClient` does not call an ASGI app: it hands a scope to its `AsyncClientHandler`,
which builds the request and awaits the view on the test's own loop. That handler's
`__call__` is where each request is named. An app served by `get_asgi_application()`
through `httpx.ASGITransport` (`noblock_client`) or Starlette's `TestClient` is named by
those clients' adapters like any ASGI app.

The sync `django.test.Client` runs an async view through asgiref's `async_to_sync`, on a
new event loop in another thread for each request: those requests are not watched (strict
mode does not reach them either), and a test that makes them is told so.
"""

from __future__ import annotations

import functools
import inspect
import re
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from .. import warmup
from ..origins import Request
from ..patching import MethodPatch
from ..tracking import ASGIApp, serving
from . import ClientPatch, Framework, Scope

# The matches Django made for `AsyncClient`'s latest requests, by id(scope): (the scope,
# so the id stays its own, and the match). Found again from the path, a request could meet
# another URL conf: `override_settings(ROOT_URLCONF=...)` around a test ends before the
# report is written, and a middleware may set `request.urlconf`.
_matches: dict[int, tuple[Scope, Any]] = {}
_KEPT_MATCHES = 1000


def _match(scope: Scope) -> Any:
    """The URL resolver's match for the request's path, or None."""
    kept = _matches.get(id(scope))
    if kept is not None and kept[0] is scope:
        return kept[1]
    urls = sys.modules.get("django.urls")
    path = scope.get("path")
    if urls is None or not isinstance(path, str):
        return None
    root = scope.get("root_path") or ""
    if root and path.startswith(root):
        path = path[len(root) :]
    try:
        return urls.resolve(path)
    except Exception:
        # Resolver404, or a URL conf that no longer imports: the path is all there is.
        return None


def endpoint(scope: Scope) -> object:
    match = _match(scope)
    if match is None:
        return None
    view = match.func
    while isinstance(view, functools.partial):
        view = view.func
    # `as_view()` makes a function per class: Django names the view by its class.
    return getattr(view, "view_class", view)


# A route written with `re_path` (or included under one) is a regular expression: the
# path reads better than it.
_REGEX = re.compile(r"[\^$\\()\[\]?*+|]")


def route(scope: Scope) -> str | None:
    """The path as the URL pattern declares it (`/users/<int:pk>/`)."""
    match = _match(scope)
    pattern = getattr(match, "route", None)
    if not isinstance(pattern, str) or _REGEX.search(pattern):
        return None
    return (scope.get("root_path") or "") + "/" + pattern


FRAMEWORK = Framework(
    name="Django",
    packages=frozenset({"django"}),
    endpoint=endpoint,
    route=route,
    thread_call="`await sync_to_async({function})({arguments})` (asgiref)",
    sync_handler="or make the view a plain `def`: Django runs those in a thread for you",
    # Django's ASGI handler, 5.0 to 5.2, serves each request in a task beside the one that
    # listens for the client going away (6.0 serves it in the request's own task).
    request_tasks=(
        (
            "django.core.handlers.asgi",
            "ASGIHandler.handle.<locals>.process_request",
            "serving the request",
        ),
    ),
)


def _tracking_call(patch: MethodPatch) -> Callable[[Any, Scope], Coroutine[Any, Any, Any]]:
    """`AsyncClientHandler.__call__`: one request, from its scope to Django's response."""

    async def call_keeping_the_match(handler: Any, scope: Scope) -> Any:
        __tracebackhide__ = True
        call: Callable[[Any, Scope], Coroutine[Any, Any, Any]] = patch.original or patch.real
        response = await call(handler, scope)
        match = getattr(getattr(response, "asgi_request", None), "resolver_match", None)
        if match is not None:
            _matches[id(scope)] = (scope, match)
            if len(_matches) > _KEPT_MATCHES:
                del _matches[next(iter(_matches))]
        return response

    def tracked_call(handler: Any, scope: Scope) -> Coroutine[Any, Any, Any]:
        __tracebackhide__ = True
        request = Request(scope, handler, warmup.sequence())
        return serving(request, call_keeping_the_match, handler, scope)

    return tracked_call


PATCHES: tuple[ClientPatch, ...] = (
    ("django.test.client", "AsyncClientHandler", "__call__", _tracking_call),
)


# The sync `Client`'s requests to async views in the current watched sync test.
_sync_requests = 0

Patch = Callable[[object, str, object], None]


def install(patch: Patch, tracked: Callable[[ASGIApp], ASGIApp]) -> None:
    """For one watched sync test: count the sync `Client`'s requests to async views, to
    say they were not watched. Only when the test's code has imported the client."""
    global _sync_requests
    _sync_requests = 0
    handler = getattr(sys.modules.get("django.test.client"), "ClientHandler", None)
    if isinstance(handler, type) and callable(vars(handler).get("__call__")):
        patch(handler, "__call__", _counting_call(vars(handler)["__call__"]))


def _counting_call(original: Callable[..., Any]) -> Callable[..., Any]:
    def counted_call(handler: Any, environ: Any) -> Any:
        __tracebackhide__ = True
        global _sync_requests
        response = original(handler, environ)
        # A sync view runs no loop: there was nothing to watch.
        match = getattr(getattr(response, "wsgi_request", None), "resolver_match", None)
        if match is not None and _is_async(match.func):
            _sync_requests += 1
        return response

    return counted_call


def _is_async(view: object) -> bool:
    """Does Django run `view` as an async view? (asgiref's test, which Django uses, also
    knows the functions marked as coroutine functions: an async class-based view's.)"""
    sync = sys.modules.get("asgiref.sync")
    test = getattr(sync, "iscoroutinefunction", inspect.iscoroutinefunction)
    return bool(test(view))


def unwatched() -> str | None:
    """Why the sync `Client`'s requests in this test were not watched, if it made any to
    async views."""
    if not _sync_requests:
        return None
    return (
        f"{_sync_requests} request(s) to async views through Django's sync `Client` were not "
        "watched (neither timed nor, in strict mode, checked for known blocking calls): "
        "Django runs each through `async_to_sync`, on a new event loop in another thread; "
        "use `AsyncClient` in an async test to watch them"
    )
