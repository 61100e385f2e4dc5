"""Whose code is running on the loop: a request, the app's lifespan, or the test itself.

The answer travels in a context variable. asyncio copies the context into every task
and callback, so a task a handler spawns stays tied to that handler's request, and the
step clock can read the owner of each step from the handle's context for free.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import Any

from .adapters import Framework, framework_for


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


class WaitingForAnotherLoop(Origin):
    """A client holding the test's loop while another thread's loop serves its request
    (Litestar's `AsyncTestClient`): that loop is watched, this wait is neither blamed nor
    noted."""

    ignored = True

    def describe(self) -> str:
        return "a client waiting for the loop that serves its request"


class Request(Origin):
    """One request to the app, and the handler the app routed it to."""

    # Weakly referable: an adapter may keep what it learns of the request beside it, for as
    # long as the request lives (see `adapters.quart`).
    __slots__ = ("__weakref__", "_framework", "app", "first_on_route", "scope", "started")
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
        self._framework: Framework | None = None

    def describe(self) -> str:
        kind = self.scope.get("type", "?")
        # A WebSocket scope has no method in ASGI; Quart's test client still writes "GET".
        method = (kind != "websocket" and self.scope.get("method")) or kind.upper()
        route = self.framework.route(self.scope) or self.scope.get("path", "/")
        return f"{method} {route}"

    @property
    def framework(self) -> Framework:
        if self._framework is None:
            self._framework = framework_for(self.frameworks)
        return self._framework

    @property
    def handler(self) -> str | None:
        return handler_name(self.endpoint)

    @property
    def endpoint(self) -> object:
        """The function the router chose for the request, once it chose one."""
        return self.framework.endpoint(self.scope)

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
WAITING_FOR_ANOTHER_LOOP = WaitingForAnotherLoop()

current_origin: ContextVar[Origin | None] = ContextVar("pytest_noblock_origin", default=None)


def handler_name(endpoint: object) -> str | None:
    """`module:qualname` of the function (or class) a router chose."""
    if endpoint is None:
        return None
    module = getattr(endpoint, "__module__", None)
    name = getattr(endpoint, "__qualname__", None) or type(endpoint).__qualname__
    return f"{module}:{name}" if module else name
