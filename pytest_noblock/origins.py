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

    __slots__ = ("scope",)
    blamed = True

    def __init__(self, scope: MutableMapping[str, Any]) -> None:
        # The router writes the endpoint into the scope; everything is read from it only
        # when a report needs it, so fast requests pay nothing for it.
        self.scope = scope

    def describe(self) -> str:
        method = self.scope.get("method") or self.scope.get("type", "?").upper()
        return f"{method} {self.scope.get('path', '/')}"

    @property
    def handler(self) -> str | None:
        return handler_name(self.scope)


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
