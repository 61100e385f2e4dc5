"""What the plugin knows of each client, framework and event loop: one module each.

The core (step clock, watchdog, holds, stacks) knows no framework by name. A framework
module says how a request served by it is named (handler, route), which of its frames start
a phase worth naming, which of its work happens once per app, and how its users move a
blocking call off the loop. A client module says which method it calls the app from, so
the plugin can name each request as it starts. A loop module says how the step clock sees
that loop's steps when it is not asyncio's own.

Every module here switches on only once the user's code has imported what it adapts to: the
plugin never imports a framework or client for the user. Adding a framework is adding a
module here, its entry in `FRAMEWORKS` or `CLIENTS`, and its tests.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Collection, Iterator, MutableMapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ..patching import MethodPatch
from ..stacks import FrameRule

Scope = MutableMapping[str, Any]


@dataclass(frozen=True)
class Framework:
    """A web framework, as the reports name what it serves and advise its users."""

    name: str
    # The top-level packages whose classes make an app this framework's.
    packages: frozenset[str]
    # The function the router chose for a request, read from its scope once the app ran
    # (None: not routed, or not known).
    endpoint: Callable[[Scope], object]
    # The path as the route declares it (`/users/{id}`), or None to keep the path.
    route: Callable[[Scope], str | None]
    # How a blocking call moves to a worker thread in this framework, `{call}` standing for
    # what is called and its arguments: "`await run_in_threadpool({call})`"; or `{function}`
    # and `{arguments}` apart, for a framework that takes them in two calls.
    thread_call: str
    # The other way out the framework offers, if any: a plain `def` handler.
    sync_handler: str | None = None
    # (module, function, phase): frames that start a phase of serving a request.
    phases: tuple[FrameRule, ...] = ()
    # (module, function, what): frames beneath which the work is done once per app.
    one_time_work: tuple[FrameRule, ...] = ()
    # (module, function, what): the coroutines the framework itself runs each request in,
    # as a task of its own; loop time in them is the request's, not a task it started.
    request_tasks: tuple[FrameRule, ...] = ()


NO_FRAMEWORK = Framework(
    name="ASGI",
    packages=frozenset(),
    endpoint=lambda scope: None,
    route=lambda scope: None,
    thread_call="`await anyio.to_thread.run_sync({call})`",
)

# A method patched while a watched test body runs: (module, class, method, the wrapper's
# maker). A client's method the app is called from, or a framework's that tells what a
# request is routed to (Quart's request context).
ClientPatch = tuple[str, str, str, Callable[[MethodPatch], Callable[..., Any]]]


def frameworks() -> tuple[Framework, ...]:
    """Most specific first: a FastAPI app is a Starlette app too."""
    from . import django, fastapi, litestar, quart, starlette

    return (
        fastapi.FRAMEWORK,
        starlette.FRAMEWORK,
        litestar.FRAMEWORK,
        quart.FRAMEWORK,
        django.FRAMEWORK,
    )


def client_patches() -> Iterator[ClientPatch]:
    from . import django, httpx, httpx_ws, litestar_testclient, quart

    yield from httpx.PATCHES
    yield from httpx_ws.PATCHES
    yield from litestar_testclient.PATCHES
    yield from quart.PATCHES
    yield from django.PATCHES


def sync_clients() -> tuple[ModuleType, ...]:
    """Clients a sync test calls, serving the app on a portal's loop: each has
    `install(patch, tracked)`, called when a watched test starts (an async test calls
    some of them too: Litestar's `AsyncTestClient`), and may have `unwatched()`: why its
    requests in the test could not be watched, if they could not, and `test_notes(item)`:
    what a marked test of its own kind ran that was not watched."""
    from . import django, litestar_testclient, quart, schemathesis, starlette_testclient

    return (starlette_testclient, litestar_testclient, schemathesis, quart, django)


def sync_test_notes(item: object) -> list[str]:
    """What the sync clients say a marked test ran unwatched."""
    notes: list[str] = []
    for client in sync_clients():
        if hasattr(client, "test_notes"):
            notes += client.test_notes(item)
    return notes


def loops() -> tuple[ModuleType, ...]:
    """Event loops other than asyncio's own (whose steps `steps` times): each has
    `running()`, true inside such a loop, and `attach(clock)` returning the undo, which
    returns a note on what the loop ran that could not be timed, if anything. A loop
    whose adapter times only the tasks started after `attach` also has `timed(coro)`:
    the test body's coroutine, stepped by the task already running it."""
    from . import trio, uvloop

    return (trio, uvloop)


@functools.cache
def task_starts() -> frozenset[tuple[str, str]]:
    """(module, function) of the frames a loop starts a new task in: asyncio's own
    `create_task`, and the task factory of a loop adapter whose `create_task` is not Python
    (its `TASK_START`). What runs deeper is the new task's own (an eager task's first step)."""
    starts = {("asyncio.base_events", "BaseEventLoop.create_task")}
    starts.update(loop.TASK_START for loop in loops() if hasattr(loop, "TASK_START"))
    return frozenset(starts)


def running_loop() -> ModuleType | None:
    """The adapter of the loop the current thread runs, if it is not asyncio's own."""
    return next((loop for loop in loops() if loop.running()), None)


def framework_for(packages: Collection[str]) -> Framework:
    """The framework of an app whose classes come from `packages`."""
    for framework in frameworks():
        if framework.packages & set(packages):
            return framework
    return NO_FRAMEWORK


# Read for every hold and stack sample a report looks at; the tables never change.
@functools.cache
def all_phases() -> tuple[FrameRule, ...]:
    return tuple(dict.fromkeys(rule for each in frameworks() for rule in each.phases))


@functools.cache
def all_one_time_work() -> tuple[FrameRule, ...]:
    return tuple(dict.fromkeys(rule for each in frameworks() for rule in each.one_time_work))


_THREAD_CALL = re.compile(r"\{to_thread(?::([^}]*))?\}")


def advise(instead: str, framework: Framework) -> str:
    """Advice written with `{to_thread}` / `{to_thread:requests.get, ...}`, in the
    framework's own words."""
    return _THREAD_CALL.sub(lambda match: _thread_call(framework, match.group(1)), instead)


def _thread_call(framework: Framework, call: str | None) -> str:
    function, _, arguments = (call or "fn, ...").partition(", ")
    return framework.thread_call.format(call=call or "...", function=function, arguments=arguments)
