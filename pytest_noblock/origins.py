"""Whose code is running on the loop: a request, the app's lifespan, or the test itself.

The answer travels in a context variable. asyncio copies the context into every task
and callback, so a task a handler spawns stays tied to that handler's request, and the
step clock can read the owner of each step from the handle's context for free.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


class Origin:
    """Base of the owners of loop time."""

    blamed = False

    def describe(self) -> str:
        raise NotImplementedError


class TestCode(Origin):
    def describe(self) -> str:
        return "the test's own code"


class Lifespan(Origin):
    def describe(self) -> str:
        return "the app's lifespan"


@dataclass(eq=False)
class Request(Origin):
    """One request to the app, and the handler the app routed it to."""

    method: str
    path: str
    scope: MutableMapping[str, Any] | None = field(default=None, repr=False)
    resolved_handler: str | None = None
    blamed = True

    def describe(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def handler(self) -> str | None:
        if self.resolved_handler is None and self.scope is not None:
            self.resolved_handler = handler_name(self.scope)
        return self.resolved_handler

    def finish(self) -> None:
        """Resolve the handler once routing is done and let go of the scope."""
        _ = self.handler
        self.scope = None


TEST_CODE = TestCode()
LIFESPAN = Lifespan()

current_origin: ContextVar[Origin | None] = ContextVar("pytest_noblock_origin", default=None)


def handler_name(scope: Mapping[str, Any]) -> str | None:
    """The endpoint Starlette's router (and so FastAPI's) stored in the scope."""
    endpoint = scope.get("endpoint")
    if endpoint is None:
        return None
    module = getattr(endpoint, "__module__", None)
    name = getattr(endpoint, "__qualname__", None) or type(endpoint).__qualname__
    return f"{module}:{name}" if module else name
