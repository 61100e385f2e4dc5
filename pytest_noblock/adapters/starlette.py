"""Starlette: its router writes the endpoint and the route into the request's scope."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import Framework, Scope


def endpoint(scope: Scope) -> object:
    return scope.get("endpoint")


def route(scope: Scope) -> str | None:
    """The path as the app's route declares it (`/users/{id}`), so reports and baselines
    group a route's requests, whatever ids they carried."""
    path: str = scope.get("path", "/")
    params = scope.get("path_params")
    if not params or not isinstance(params, Mapping):
        return None
    route_format = getattr(scope.get("route"), "path_format", None)
    if isinstance(route_format, str):
        try:
            concrete = route_format.format(**{name: str(v) for name, v in params.items()})
        except (KeyError, IndexError, ValueError):
            concrete = None
        # A mounted router's routes are relative to their mount: keep its prefix.
        if concrete is not None and path.endswith(concrete):
            return path[: len(path) - len(concrete)] + route_format
    return _from_params(path, params)


def _from_params(path: str, params: Mapping[str, Any]) -> str:
    rest = dict(params)
    for name, value in params.items():
        text = str(value)
        # A `{name:path}` parameter spans segments: it ends the path.
        if "/" in text and path.endswith(text):
            path = path[: -len(text)] + "{" + name + "}"
            del rest[name]
    segments = path.split("/")
    for name, value in rest.items():
        text = str(value)
        for index, segment in enumerate(segments):
            if segment == text:
                segments[index] = "{" + name + "}"
                break
    return "/".join(segments)


PHASES = (
    ("starlette.requests", "Request.json", "parsing the request body"),
    ("starlette.requests", "Request.form", "parsing the request body"),
    # A middleware wraps everything beneath it: only its own work names a phase.
    (
        "starlette.middleware.gzip",
        "IdentityResponder.send_with_compression",
        "compressing the response (GZipMiddleware)",
    ),
    ("starlette.templating", "Jinja2Templates.TemplateResponse", "rendering a template"),
    ("starlette.responses", "Response.render", "rendering the response"),
    ("starlette.responses", "JSONResponse.render", "rendering the response"),
)

THREAD_CALL = "`await run_in_threadpool({call})`"

FRAMEWORK = Framework(
    name="Starlette",
    packages=frozenset({"starlette"}),
    endpoint=endpoint,
    route=route,
    thread_call=THREAD_CALL,
    sync_handler="or make the endpoint a plain `def`: Starlette runs those in its thread pool",
    phases=PHASES,
)
