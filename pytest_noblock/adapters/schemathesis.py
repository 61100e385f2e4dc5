"""schemathesis's in-process client: `case.call()` on a schema loaded with `from_asgi`.

schemathesis 4 serves every ASGI app of the process on one event loop, in a thread it
starts on the first request with anyio's `start_blocking_portal` (imported by name, so the
portal patch in `portals` never sees it) and keeps until the process exits. Every request
reaches the app through `schemathesis.python.asgi._ASGIAdapter.send`: a shallow copy of the
adapter, with the app tracked, sends it, so the user's client is never modified. The loop
thread is watched from the test's first request on it (`portals.SyncWatch._adopt`), as a
`TestClient` entered before the test is.

schemathesis finds the app's lifespan and its state by the app object's id: while the test
runs, its two look-ups are handed the user's app for the tracked one, so the app keeps one
lifespan and sees its state. The lifespan task, started by the first request of the
session, runs as the app's lifespan: noted, never blamed on a request.

A schemathesis whose inside differs from this is not watched, and a test that sent
requests through it says so (`unwatched`): releases before 4.26 call the app through the
`starlette-testclient` package, each request on a portal of its own.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

from ..tracking import ASGIApp
from .starlette_testclient import lifespan_origin

Patch = Callable[[object, str, object], None]

MODULE = "schemathesis.python.asgi"
# What `install` patches in MODULE: the adapter's `send`, the lifespan's task, and the
# two functions that find an app's lifespan by its id.
_NAMES = ("_ASGIAdapter", "_Lifespan", "_start_lifespan", "_lifespan_state")

UNWATCHED = (
    "schemathesis's requests were not watched: pytest-noblock knows how schemathesis 4.26 "
    "and later call the app, and this release differs (`schemathesis.python.asgi` lacks "
    "{missing})"
)


OWN_LOOP = (
    "schemathesis runs this `async def` test on an event loop of its own, which is not "
    "watched: the requests `case.call()` sends are (on schemathesis's loop thread), requests "
    "the test awaits itself (httpx's `ASGITransport`) are not"
)


def test_notes(test: object) -> list[str]:
    """What a marked schemathesis test runs unwatched: an `async def` test is run by
    schemathesis itself, on a loop it makes in the test's thread, which no adapter sees."""
    if not type(test).__module__.startswith("schemathesis."):
        return []
    return [OWN_LOOP] if inspect.iscoroutinefunction(getattr(test, "test_function", None)) else []


def _missing(asgi: ModuleType) -> list[str]:
    """What this adapter patches that this schemathesis release lacks."""
    missing = [name for name in _NAMES if not hasattr(asgi, name)]
    adapter = getattr(asgi, "_ASGIAdapter", None)
    if adapter is not None and not callable(vars(adapter).get("send")):
        missing.append("_ASGIAdapter.send")
    lifespan = getattr(asgi, "_Lifespan", None)
    if lifespan is not None and not callable(vars(lifespan).get("_run")):
        missing.append("_Lifespan._run")
    return missing


# For the test running now: the clients schemathesis made for requests this adapter could
# not watch, and what it lacked.
_unwatched_clients = 0
_lacking: list[str] = []


def unwatched() -> str | None:
    """Why schemathesis's requests in this test were not watched, if it made any."""
    if not _unwatched_clients:
        return None
    return UNWATCHED.format(missing=", ".join(f"`{name}`" for name in _lacking))


def install(patch: Patch, tracked: Callable[[ASGIApp], ASGIApp]) -> None:
    """For one watched sync test; only when schemathesis has been imported."""
    global _unwatched_clients, _lacking
    _unwatched_clients = 0
    asgi = sys.modules.get(MODULE)
    if asgi is None:
        return
    _lacking = _missing(asgi)
    if _lacking:
        # Not watched: counted, to say so (every release so far makes one per `case.call()`).
        if callable(getattr(asgi, "get_client", None)):
            patch(asgi, "get_client", _counting(asgi.get_client))
        return
    # The tracked app of each user's app sent to in this test, by the tracked one's id;
    # each value holds the tracked app too, so the id stays its own. Dropped with the
    # patches when the test ends.
    originals: dict[int, tuple[ASGIApp, ASGIApp]] = {}

    def user_app(app: Any) -> Any:
        found = originals.get(id(app))
        return found[1] if found is not None and found[0] is app else app

    patch(asgi._ASGIAdapter, "send", _tracked_send(asgi._ASGIAdapter.send, tracked, originals))
    patch(asgi._Lifespan, "_run", lifespan_origin(asgi._Lifespan._run))
    patch(asgi, "_start_lifespan", _by_user_app(asgi._start_lifespan, user_app))
    patch(asgi, "_lifespan_state", _by_user_app(asgi._lifespan_state, user_app))


def _counting(original: Callable[..., Any]) -> Callable[..., Any]:
    def get_client(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        global _unwatched_clients
        _unwatched_clients += 1
        return original(*args, **kwargs)

    return get_client


def _tracked_send(
    original: Callable[..., Any],
    tracked: Callable[[ASGIApp], ASGIApp],
    originals: dict[int, tuple[ASGIApp, ASGIApp]],
) -> Callable[..., Any]:
    def send(adapter: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True  # tracebacks show the app, not the plugin
        # Not `copy.copy`: a requests adapter pickles only its pool settings.
        twin = object.__new__(type(adapter))
        twin.__dict__.update(vars(adapter))
        twin.app = tracked(adapter.app)
        originals[id(twin.app)] = (twin.app, adapter.app)
        try:
            return original(twin, request, *args, **kwargs)
        finally:
            del originals[id(twin.app)]

    return send


def _by_user_app(original: Callable[[Any], Any], user_app: Callable[[Any], Any]) -> Any:
    def look_up(app: Any) -> Any:
        __tracebackhide__ = True
        return original(user_app(app))

    return look_up


@contextlib.contextmanager
def lifespans_kept() -> Iterator[None]:
    """Around a test's teardown: the lifespans schemathesis runs stay up through it.

    schemathesis's own pytest plugin ends every app's lifespan when a test ends; the sweep
    keeps it from one of its items to the next, so the app starts once for the sweep. A
    release without the registry this reads keeps schemathesis's own behaviour.
    """
    asgi = sys.modules.get(MODULE)
    lifespans = getattr(asgi, "_LIFESPANS", None)
    if not isinstance(lifespans, dict):
        yield
        return
    kept = dict(lifespans)
    lifespans.clear()
    try:
        yield
    finally:
        lifespans.update(kept)
