"""Whose code is running on the loop: a request, the app's lifespan, or the test itself.

The answer travels in a context variable. asyncio copies the context into every task
and callback, so a task a handler spawns stays tied to that handler's request, and the
step clock can read the owner of each step from the handle's context for free.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from contextvars import ContextVar
from typing import Any


class Origin:
    """Base of the owners of loop time."""

    __slots__ = ()
    blamed = False
    # Loop time the test asked not to watch (`noblock_paused`): neither blamed nor noted.
    ignored = False

    def describe(self) -> str:
        raise NotImplementedError


class TestCode(Origin):
    def describe(self) -> str:
        return "the test's own code"


class Lifespan(Origin):
    def describe(self) -> str:
        return "the app's lifespan"


class Paused(Origin):
    ignored = True

    def describe(self) -> str:
        return "a stretch inside noblock_paused()"


class Request(Origin):
    """One request to the app, and the handler the app routed it to."""

    __slots__ = ("app", "first_on_route", "scope", "started")
    blamed = True

    def __init__(
        self, scope: MutableMapping[str, Any], app: object = None, started: int = 0
    ) -> None:
        # The router writes the endpoint into the scope; everything is read from it only
        # when a report needs it, so fast requests pay nothing for it.
        self.scope = scope
        self.app = app
        # Where the request started in `warmup.sequence`, and whether it was among the
        # first its route served on this app (see `warmup`).
        self.started = started
        self.first_on_route = False

    def describe(self) -> str:
        method = self.scope.get("method") or self.scope.get("type", "?").upper()
        return f"{method} {route_template(self.scope)}"

    @property
    def handler(self) -> str | None:
        return handler_name(self.scope)

    @property
    def endpoint(self) -> object:
        """The function the router chose for the request, once it chose one."""
        return self.scope.get("endpoint")

    def served_app(self) -> object:
        """The app instance that served the request: the innermost one the framework
        names in the scope (Starlette's `scope["app"]`), else the one the client called."""
        return self.scope.get("app") or _unwrapped(self.app)

    @property
    def frameworks(self) -> frozenset[str]:
        """The packages whose code serves this request: those of the app's classes."""
        packages: set[str] = set()
        for app in (self.scope.get("app"), _unwrapped(self.app)):
            if app is not None:
                packages.update(cls.__module__.partition(".")[0] for cls in type(app).__mro__)
        packages.discard("builtins")
        return frozenset(packages)


def _unwrapped(app: object) -> object:
    # The plugin's own wrappers (the client's lifespan state) hand the app on.
    while app is not None and type(app).__module__.startswith(__package__ + "."):
        app = getattr(app, "app", None)
    return app


TEST_CODE = TestCode()
LIFESPAN = Lifespan()
PAUSED = Paused()

current_origin: ContextVar[Origin | None] = ContextVar("pytest_noblock_origin", default=None)


def handler_name(scope: Mapping[str, Any]) -> str | None:
    """The endpoint Starlette's router (and so FastAPI's) stored in the scope."""
    endpoint = scope.get("endpoint")
    if endpoint is None:
        return None
    module = getattr(endpoint, "__module__", None)
    name = getattr(endpoint, "__qualname__", None) or type(endpoint).__qualname__
    return f"{module}:{name}" if module else name


def route_template(scope: Mapping[str, Any]) -> str:
    """The path as the app's route declares it (`/users/{id}`), so reports and baselines
    group a route's requests, whatever ids they carried."""
    path: str = scope.get("path", "/")
    params = scope.get("path_params")
    if not params or not isinstance(params, Mapping):
        return path
    route_format = getattr(scope.get("route"), "path_format", None)
    if isinstance(route_format, str):
        try:
            concrete = route_format.format(**{name: str(v) for name, v in params.items()})
        except (KeyError, IndexError, ValueError):
            concrete = None
        # A mounted router's routes are relative to their mount: keep its prefix.
        if concrete is not None and path.endswith(concrete):
            return path[: len(path) - len(concrete)] + route_format
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
