"""The step clock on uvloop: a task factory that times every step of every task.

uvloop runs callbacks through its own Cython handles: there is no `Handle._run` to patch.
What a handler does runs as task steps, though, and a task step is one `send` (or `throw`)
into the task's coroutine: the task factory wraps each new task's coroutine so that each
`send`/`throw` opens a segment and ends it, owned by the origin in the task's context
(the task runs its steps in that context, as asyncio's `Handle._run` does). The test's own
task was started before the watch: its coroutine is reached through the one the plugin
awaits (`watch.wrap_test`), wrapped the same way.

Measured against asyncio's own loop with the same plugin on (`benchmarks/uvloop_cost.py`):
the wrapper costs a Python call per step, as the `Handle._run` patch does. uvloop's debug
mode would time its ready callbacks itself, but it keeps a stack for every handle created
and only logs once the callback is over, too late for the watchdog to see where it was.

Not timed: plain callbacks (`call_soon`, `call_later`, future and protocol callbacks) and
the steps of tasks started before the watch. A heartbeat callback (`Heartbeat`) finds the
time the loop spent in them from how late it ran: past the budget, the test gets a note
saying so, so such a hold is never silent (but it is not named, nor failed).
"""

from __future__ import annotations

import asyncio
import collections.abc
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Generator
from typing import Any

from .. import steps
from ..origins import Origin, current_origin
from ..steps import StepClock

# What a hold outside the timed task steps can be.
UNTIMED = (
    "uvloop's plain callbacks (call_soon, call_later, future and protocol callbacks) and the "
    "steps of tasks started before the test are not timed"
)


def running() -> bool:
    """Is the current thread's running loop a uvloop one? Never imports uvloop for the user."""
    uvloop = sys.modules.get("uvloop")
    if uvloop is None:
        return False
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return False
    return isinstance(loop, uvloop.Loop)


# The threads inside a timed task step right now: a step started within one is nested.
_stepping: set[int] = set()


class TimedCoroutine(collections.abc.Coroutine[Any, Any, Any]):
    """A task's coroutine whose every step is a segment of its thread's step clock.

    The clock is looked up at each step, as `steps` does for asyncio's handles: a task that
    outlives its test is timed by the next watched test on its loop, and by no one between.
    Otherwise the same coroutine: its name, frame and `cr_await` are the wrapped one's, so
    tasks print and introspect as before.
    """

    __slots__ = ("_coro",)

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._coro = coro

    def send(
        self,
        value: Any,
        _clocks: dict[int, StepClock] = steps.clocks,
        _get_ident: Callable[[], int] = threading.get_ident,
        _origin: Callable[[], Origin | None] = current_origin.get,
    ) -> Any:
        __tracebackhide__ = True  # tracebacks show the app, not the plugin
        ident = _get_ident()
        clock = _clocks.get(ident)
        if clock is None:
            return self._coro.send(value)
        if ident in _stepping:
            return self._nested(clock, self._coro.send, value)
        _stepping.add(ident)
        clock.open(_origin())
        try:
            return self._coro.send(value)
        finally:
            _stepping.discard(ident)
            clock.close()

    def throw(self, *error: Any) -> Any:
        __tracebackhide__ = True
        ident = threading.get_ident()
        clock = steps.clocks.get(ident)
        if clock is None:
            return self._coro.throw(*error)
        if ident in _stepping:
            return self._nested(clock, self._coro.throw, *error)
        _stepping.add(ident)
        clock.open(current_origin.get())
        try:
            return self._coro.throw(*error)
        finally:
            _stepping.discard(ident)
            clock.close()

    @staticmethod
    def _nested(clock: StepClock, step: Callable[..., Any], *args: Any) -> Any:
        """A step run inside another task's step: an eager task's first step, run by
        `create_task` itself. Part of the step that created it, as on asyncio's loop; only
        its owner is the new task's."""
        __tracebackhide__ = True
        outer = clock.current
        clock.switch(current_origin.get())
        try:
            return step(*args)
        finally:
            clock.switch(outer[1] if outer is not None else None)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, Any]:
        return self

    def __next__(self) -> Any:
        __tracebackhide__ = True
        return self.send(None)

    def __iter__(self) -> TimedCoroutine:
        return self

    def __getattr__(self, name: str) -> Any:
        # __name__, __qualname__, cr_frame, cr_code, cr_await...: the wrapped coroutine's.
        return getattr(self._coro, name)

    def __repr__(self) -> str:
        return repr(self._coro)


TaskFactory = Callable[..., "asyncio.Future[Any]"]


class Heartbeat:
    """A callback the loop runs every few milliseconds, to tell holds no step clock saw.

    When it runs late, the loop was busy from the moment it was due until it ran, in task
    steps (timed: `StepClock.stepped_s`) and in callbacks no one timed. Its lateness less
    every timed step since the last beat, the full collections and the thread's wait for a
    CPU meanwhile is the least the untimed callbacks took: past the budget, a note says so.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, clock: StepClock) -> None:
        self._loop = loop
        self._clock = clock
        self._every_s = max(clock.keep_over_s / 3, 0.005)
        self._stopped = False
        self.untimed: list[float] = []
        self._schedule(time.perf_counter())

    def _schedule(self, now: float) -> None:
        self._last = now
        self._stepped_before = self._clock.stepped_s
        usage = self._clock.usage.read()
        self._waited_before = usage.waiting_s if usage is not None else None
        self._due = now + self._every_s
        self._handle = self._loop.call_later(self._every_s, self._beat)

    def _beat(self) -> None:
        if self._stopped:
            return
        clock = self._clock
        now = time.perf_counter()
        untimed = (now - self._due) - (clock.stepped_s - self._stepped_before)
        if untimed > clock.keep_over_s:
            untimed -= clock.gc.lost.between(self._last, now)
            usage = clock.usage.read()
            if usage is not None and self._waited_before is not None:
                untimed -= max(usage.waiting_s - self._waited_before, 0.0)
            if untimed > clock.keep_over_s:
                self.untimed.append(untimed)
        self._schedule(now)

    def stop(self) -> None:
        """From any thread: a beat already due on another thread's loop finds it stopped."""
        self._stopped = True
        if threading.get_ident() == self._clock.thread_ident:
            self._handle.cancel()

    def note(self) -> str | None:
        if not self.untimed:
            return None
        times = "once" if len(self.untimed) == 1 else f"{len(self.untimed)} times"
        return (
            f"uvloop: the loop was held {times} outside any task step (at least "
            f"{max(self.untimed) * 1000:.0f} ms): {UNTIMED}; not checked against the budget, "
            "and where it was is not known"
        )


# The frame an eager task's first step runs under (see `eager`): uvloop's `create_task` is C.
TASK_START = (__name__, "attach.<locals>.timed_task")


def attach(clock: StepClock) -> Callable[[], str | None]:
    """Time every task the running uvloop loop starts from now on; returns the undo, which
    gives back the task factory the loop had and tells what the heartbeat saw untimed."""
    watched = asyncio.get_running_loop()
    before: TaskFactory | None = watched.get_task_factory()

    def timed_task(
        loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **options: Any
    ) -> asyncio.Future[Any]:
        # An eager task runs its first step in here: that step is the app's, not ours.
        __tracebackhide__ = True
        timed = TimedCoroutine(coro)
        if before is not None:
            return before(loop, timed, **options)
        return asyncio.Task(timed, loop=loop, **options)

    # typeshed's factory type names no keyword options: asyncio passes them (context, name).
    watched.set_task_factory(timed_task)  # type: ignore[arg-type]
    heartbeat = Heartbeat(watched, clock)

    def detach() -> str | None:
        heartbeat.stop()
        # A factory the test set meanwhile is the test's to keep.
        if watched.get_task_factory() is timed_task:
            watched.set_task_factory(before)
        return heartbeat.note()

    return detach


def timed(coro: Coroutine[Any, Any, Any]) -> Coroutine[Any, Any, Any]:
    """The test body's own coroutine, stepped by a task started before the watch."""
    return TimedCoroutine(coro)
