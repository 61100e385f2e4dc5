"""Watching the loops a test starts in other threads: anyio's blocking portals.

A sync client (Starlette's `TestClient`, see `adapters`) runs the app on an event loop in
a thread of its own, started by `anyio.from_thread.start_blocking_portal`: one portal for a
`with TestClient(app)` block, a new one for every request without it. The sync test's
thread only waits for that loop, so it is never the one holding it. Litestar's
`AsyncTestClient` does the same from an async test: its portals are watched beside the
test's own loop.

For the length of a marked sync test, every blocking portal started gets its own step
clock and watchdog, attached from inside the portal's loop thread as soon as the portal
is up and detached before it closes; and every request the sync clients' adapters see
reaches the app through `tracking.TrackedApp`, on the portal's thread, so it is named and
cut exactly as with `httpx.ASGITransport`. A portal started before the test (a
`TestClient` entered in a fixture, the usual suite) is watched from the test's first
request on it. Nothing is patched before or after the test.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any

import anyio.from_thread

from . import steps, threadpool
from .adapters import sync_clients
from .patching import Swap
from .settings import Settings
from .strict import wrappers as strict_wrappers
from .tracking import ASGIApp, Receive, Scope, Send, TrackedApp
from .watch import Findings, LoopWatch, watchable_loop

NOTHING_WATCHED = (
    "nothing was watched: no event loop ran in this sync test (a `TestClient(app)` or "
    "schemathesis `case.call()` request runs one; other sync code is not watched)"
)


class _PortalLoop:
    """The watch of one portal's loop, started on that loop's thread.

    Stopped from any thread where the loop is asyncio's own (see `stops_from_any_thread`);
    a watch that was stopped before its start came round never starts.
    """

    def __init__(self, watch: LoopWatch) -> None:
        self.watch = watch
        self.backend: str | None = None
        self._unrecord: Callable[[], None] = lambda: None
        self._turns = threading.Lock()
        self._ended = False

    def start(self) -> None:
        with self._turns:
            if self._ended:
                return
            if watchable_loop():
                self.backend = "watched"
                self.watch.start()
                # An async test in strict mode: the app's calls on this loop are its too.
                self._unrecord = strict_wrappers.record_here_too()
            else:
                self.backend = "other"

    @property
    def stops_from_any_thread(self) -> bool:
        """Not started, or on asyncio's own loop: nothing to undo on the loop's thread (an
        adapter's instrument or task factory is)."""
        with self._turns:
            return self.backend != "watched" or self.watch.timed_by_asyncio

    def stop(self) -> None:
        with self._turns:
            self._ended = True
            self._unrecord()
            self.watch.stop()


class SyncWatch:
    """Patches in place for one marked test; a context manager that always undoes them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._loops: list[_PortalLoop] = []
        self._undo: list[Callable[[], None]] = []
        self._start_portal: Callable[..., contextlib.AbstractContextManager[Any]] = (
            anyio.from_thread.start_blocking_portal
        )

    def __enter__(self) -> SyncWatch:
        self.start()
        return self

    def start(self) -> None:
        steps.install()
        threadpool.install()
        self._start_portal = anyio.from_thread.start_blocking_portal
        self._patch(anyio.from_thread, "start_blocking_portal", self._watched_portal)
        for client in sync_clients():
            client.install(self._patch, self._tracked)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Idempotent: every watch stopped, every patch undone."""
        for loop in self._loops:
            loop.stop()
        while self._undo:
            self._undo.pop()()
        steps.uninstall()
        threadpool.uninstall()

    @property
    def watched(self) -> bool:
        return any(loop.watch.started for loop in self._loops)

    def findings(self) -> Findings:
        return Findings.merged(loop.watch.findings() for loop in self._loops)

    def notes(self) -> list[str]:
        notes = self.unwatched_notes()
        if not self.watched and not notes:
            notes.append(NOTHING_WATCHED)
        return notes

    def unwatched_notes(self) -> list[str]:
        notes = []
        unwatched = sum(1 for loop in self._loops if loop.backend == "other")
        if unwatched:
            notes.append(
                f"{unwatched} portal loop(s) ran on neither asyncio's own event loop, uvloop "
                "nor trio and were not watched"
            )
        # A client the test used whose requests could not be watched says why; then
        # "nothing was watched" would only repeat it.
        reasons = [getattr(client, "unwatched", lambda: None)() for client in sync_clients()]
        return notes + [reason for reason in reasons if reason is not None]

    def _patch(self, owner: object, name: str, replacement: object) -> None:
        self._undo.append(Swap.make(owner, name, replacement).undo)

    def _tracked(self, app: ASGIApp) -> ASGIApp:
        """The app as a sync client's request reaches it: named, on a watched loop."""
        return _Adopting(TrackedApp(app), self._adopt)

    def _adopt(self) -> None:
        """Watch a portal loop that was already running when the test began.

        The usual suite enters `with TestClient(app)` in a fixture, before the test body:
        its loop is watched from the first request the test makes on it.
        """
        loop = _PortalLoop(LoopWatch(self.settings, cpu_alarm=False))
        self._loops.append(loop)
        loop.start()

    @contextlib.contextmanager
    def _watched_portal(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        __tracebackhide__ = True  # a portal that fails to start shows anyio's frames only
        with self._start_portal(*args, **kwargs) as portal:
            loop = _PortalLoop(LoopWatch(self.settings, cpu_alarm=False))
            self._loops.append(loop)
            # Not waited for: what the test sends the portal next is started after it, on the
            # same loop, so the watch is on before the app runs. Each hand-over to the portal's
            # thread costs the test a few tenths of a millisecond; a bare `TestClient(app)`
            # starts a portal for every request.
            started = portal.start_task_soon(loop.start)
            try:
                yield portal
                if started.done():
                    started.result()  # the watch's own failure, if it had one
            finally:
                if not loop.stops_from_any_thread:
                    # On the loop's thread while it still runs; directly if the portal broke.
                    with contextlib.suppress(Exception):
                        portal.call(loop.stop)
                loop.stop()


class _Adopting:
    """Makes sure the loop a request runs on is watched, then hands the request on."""

    def __init__(self, app: ASGIApp, adopt: Callable[[], None]) -> None:
        self.app = app
        self._adopt = adopt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        __tracebackhide__ = True
        if threading.get_ident() not in steps.clocks:
            self._adopt()
        await self.app(scope, receive, send)
