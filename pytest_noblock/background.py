"""The plugin's own threads: started bare, joined once the test is over.

`threading.Thread.start` waits until the new thread has run its bootstrap, and `join` until it
is gone: hand-overs between threads of about a fifth of a millisecond each on a two-core
machine, paid by every watched test (and by every request of a `TestClient` used without
`with`, each on a loop of its own). A watchdog's start waits for nothing (its thread needs the
GIL once before its first look is due, see `watchdog`), and once told to stop it touches
nothing of the test's, so it may end while the test's fixtures are torn down.
`join_stopped`, called after the teardown, makes sure it has: no thread of the plugin
outlives the test.

They are threads of `_thread`'s, not `threading`'s: the app and the user's fixtures do not
find them in `threading.enumerate()` while they run, nor does `threading` keep any record
of them after.
"""

from __future__ import annotations

import _thread
from collections.abc import Callable
from typing import Protocol


class Joinable(Protocol):
    def join(self) -> None: ...


class _SentinelThread:
    """Before 3.13: the thread's state lock, the one `threading` waits on, released when
    the interpreter has deleted the thread's state."""

    def __init__(self, run: Callable[[], object]) -> None:
        self._run = run
        self._sentinel: _thread.LockType | None = None
        # Held until the thread has its sentinel: `join` waits on this first.
        self._started = _thread.allocate_lock()
        self._started.acquire()
        _thread.start_new_thread(self._bootstrap, ())

    def _bootstrap(self) -> None:
        try:
            # Taken by the thread itself, as `threading` does: the interpreter releases it.
            sentinel = _thread._set_sentinel()  # type: ignore[attr-defined]
            sentinel.acquire()
            self._sentinel = sentinel
        finally:
            self._started.release()
        self._run()

    def join(self) -> None:
        with self._started:
            pass
        if self._sentinel is not None:
            with self._sentinel:
                pass


def start(run: Callable[[], object]) -> Joinable:
    """`run` in a thread of its own, started now; nothing waits for it to run."""
    start_joinable = getattr(_thread, "start_joinable_thread", None)
    if start_joinable is not None:
        handle: Joinable = start_joinable(run, daemon=True)
        return handle
    return _SentinelThread(run)


# Threads told to stop, not joined yet.
_stopped: list[Joinable] = []


def join_later(thread: Joinable) -> None:
    """`thread` was told to stop: `join_stopped` waits for it."""
    _stopped.append(thread)


def join_stopped() -> None:
    """After a test's teardown (and at the session's end): every stopped thread is gone."""
    while _stopped:
        _stopped.pop().join()
