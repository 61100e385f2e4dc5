"""Litestar: its router writes the route handler it chose, and the route, into the scope.

`scope["route_handler"]` is the handler object the `@get(...)` decorator made; its `fn` is
the user's function (a controller's method, bound). `scope["path_template"]` is the path
as the route declares it, mount prefixes included, parameter types left out
(`/users/{user_id}`). Both are set before the handler runs, so a hold is named even when
the handler raised.
"""

from __future__ import annotations

from . import Framework, Scope


def endpoint(scope: Scope) -> object:
    return getattr(scope.get("route_handler"), "fn", None)


def route(scope: Scope) -> str | None:
    template = scope.get("path_template")
    return template if isinstance(template, str) and template else None


FRAMEWORK = Framework(
    name="Litestar",
    packages=frozenset({"litestar"}),
    endpoint=endpoint,
    route=route,
    thread_call="`await anyio.to_thread.run_sync({call})`",
    sync_handler=(
        "or make the handler a plain `def` with `sync_to_thread=True`: "
        "Litestar runs it in a worker thread"
    ),
)
