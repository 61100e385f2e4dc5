"""Worker threads that keep the GIL: a `def` endpoint can stop the loop from its thread.

FastAPI and Starlette run `def` endpoints and dependencies in anyio's worker threads, which
is right for calls that wait: they let the GIL go. A C call that keeps it for its whole
length (`json.dumps` of a big object) stops every Python thread instead, the loop's too,
and the step clock sees nothing of it: the loop is idle, or its step looks long for no
reason of its own.

The watchdog sees it: woken as a worker begins a call for one of the loop's requests, it
looks on a beat while the call runs; a look late by more than the budget (less its own wait
for a CPU) means some thread kept the GIL. If a worker thread running a call for one of this
loop's requests used the CPU all that time, it was that thread: its stack, read as soon as
the watchdog has the GIL back, still shows the line that made the call. The stretch becomes
a hold of that request, and is taken out of the loop's own time.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from . import callframes, platforms
from .origins import Origin, Request
from .stacks import Stack, capture
from .steps import Observation, Sample, Segment, StepClock
from .threadtime import ThreadUsage

# Worker threads running a call for a request right now: thread ident -> (the ident of the
# loop thread that handed the call over, the request, the worker's CPU time when it began).
busy_workers: dict[int, tuple[int, Origin | None, float]] = {}
# Calls that ran long and ended before the watchdog looked: thread ident -> (the loop
# thread's ident, the request, the worker's CPU time when the call began and ended, the
# stack as the call's own function left it).
finished_workers: dict[int, tuple[int, Origin | None, float, float, Stack]] = {}
# For each watched loop thread, what tells its watchdog that a worker began a call for it: the
# watchdog may have found the loop idle and gone to sleep, and only a beat of looks tells
# whether the worker keeps the GIL.
wake_watchdog: dict[int, Callable[[], None]] = {}

# A thread that used at least this share of the stretch on a CPU was the one running.
RUNNING_SHARE = 0.5
# Pure-Python work in a thread hands the GIL over every switch interval (5 ms), yet on a
# loaded machine the watchdog was seen waiting 30 ms for it: a stretch shorter than this
# many intervals is not told from that, whatever the budget.
SWITCH_INTERVALS = 10


class Busy(NamedTuple):
    """A worker running a call for one of the loop's requests, as the watchdog saw it."""

    origin: Origin | None
    began: float
    # Read at a late tick only: the moment the watchdog got the GIL back.
    stack: Stack | None
    # For a call that already ended: the worker's CPU time then.
    ended: float | None = None


def for_worker(func: Callable[..., Any], origin: Origin | None) -> Callable[..., Any]:
    """`func`, registered as the request's work while it runs in a worker thread."""
    loop_thread = threading.get_ident()

    def run_for_request(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        ident = threading.get_ident()
        began = time.thread_time()
        busy_workers[ident] = (loop_thread, origin, began)
        wake = wake_watchdog.get(loop_thread)
        if wake is not None:
            wake()
        callframes.expect(func, origin.endpoint if isinstance(origin, Request) else None)
        try:
            return func(*args, **kwargs)
        finally:
            frame = callframes.take()
            ended = time.thread_time()
            # Long enough on a CPU to have kept the watchdog out: if the watchdog has not
            # looked yet, the line the call's own function ended on is all that is left.
            if frame is not None and ended - began >= _shortest_stretch_s():
                finished_workers[ident] = (loop_thread, origin, began, ended, capture(frame))
            del frame
            busy_workers.pop(ident, None)

    return run_for_request


def _shortest_stretch_s() -> float:
    return SWITCH_INTERVALS * sys.getswitchinterval()


def _cpu_time(ident: int) -> float | None:
    if not platforms.active.has(platforms.THREAD_CPU_CLOCK):
        return None
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(ident))
    except (AttributeError, OSError, ValueError):
        return None


class GilWatch:
    """Run by one loop's watchdog on every tick; keeps what it finds on the loop's clock."""

    def __init__(self, clock: StepClock, budget_s: float, wake: Callable[[], None]) -> None:
        self._clock = clock
        self._wake = wake
        wake_watchdog[clock.thread_ident] = wake
        self._shortest_s = max(budget_s, _shortest_stretch_s())
        # The watchdog's own thread, and its usage once first needed.
        self._own_thread: tuple[int, int] | None = None
        self._own: ThreadUsage | None = None
        self._own_waiting: float | None = None
        # CPU time of each of this loop's busy workers at the last tick.
        self._worker_cpu: dict[int, float] = {}

    def start(self) -> None:
        """On the watchdog's own thread: its CPU waits are not a worker's doing."""
        self._own_thread = (threading.get_ident(), threading.get_native_id())

    def close(self) -> None:
        if self._own is not None:
            self._own.close()
        loop_thread = self._clock.thread_ident
        if wake_watchdog.get(loop_thread) == self._wake:
            del wake_watchdog[loop_thread]
        for ident, record in list(finished_workers.items()):
            if record[0] == loop_thread:
                finished_workers.pop(ident, None)

    def own_wait(self, needed: bool) -> float:
        """How long the watchdog waited for a CPU since the last tick: the machine's doing.

        Read only on ticks that need it (a worker busy): every read lets the GIL go, and
        getting it back costs the watchdog up to a switch interval while the loop computes.
        Without a reading at the last tick there is no baseline: then nothing is taken out.
        """
        if not needed or self._own_thread is None:
            self._own_waiting = None
            return 0.0
        if self._own is None:
            # Opened on the first tick with a worker busy: most tests have none.
            self._own = ThreadUsage(*self._own_thread)
        usage = self._own.read()
        waiting = usage.waiting_s if usage is not None else None
        before, self._own_waiting = self._own_waiting, waiting
        if waiting is None or before is None:
            return 0.0
        return max(waiting - before, 0.0)

    def any_busy(self) -> bool:
        loop_thread = self._clock.thread_ident
        return any(record[0] == loop_thread for record in list(busy_workers.values()))

    def look(self, late_s: float) -> dict[int, Busy]:
        """This loop's busy workers, with their stacks when the watchdog woke up late.

        Called first thing on every tick: whatever the watchdog does next may let the GIL go
        (reading a /proc file does), and a worker that kept it would then run on and finish
        its call before it is looked at (on 3.12 and 3.13, 1 hold in 4 was missed so).
        """
        loop_thread = self._clock.thread_ident
        ended = {
            ident: Busy(origin, began, stack, cpu)
            for ident, (loop, origin, began, cpu, stack) in list(finished_workers.items())
            if loop == loop_thread and finished_workers.pop(ident, None) is not None
        }
        mine = {
            ident: (origin, began)
            for ident, (loop, origin, began) in list(busy_workers.items())
            if loop == loop_thread
        }
        if late_s <= self._shortest_s:
            return {ident: Busy(origin, began, None) for ident, (origin, began) in mine.items()}
        frames = sys._current_frames()
        found = {
            ident: Busy(origin, began, capture(frames.get(ident)))
            for ident, (origin, began) in mine.items()
        }
        del frames
        # A worker that ended its call since: what it left, unless it is busy again.
        return ended | found

    def tick(self, at: float, late_s: float, loop_used_s: float, mine: dict[int, Busy]) -> None:
        """`late_s`: how much later than planned the watchdog woke up, less its CPU waits;
        `loop_used_s`: the loop thread's CPU time meanwhile; `mine`: what `look` found."""
        if not mine:
            self._worker_cpu.clear()
            return
        used = {}
        for ident, busy in mine.items():
            cpu = busy.ended if busy.ended is not None else _cpu_time(ident)
            if cpu is not None:
                used[ident] = cpu - self._worker_cpu.get(ident, busy.began)
                self._worker_cpu[ident] = cpu
        for ident in [ident for ident in self._worker_cpu if ident not in mine]:
            del self._worker_cpu[ident]
        if late_s <= self._shortest_s:
            return
        # The loop thread ran most of the stretch: its own step, which the clock times.
        if loop_used_s >= late_s * RUNNING_SHARE:
            return
        # Of this loop's busy workers, the one that ran most. On a loaded machine the one
        # keeping the GIL may itself wait for a CPU meanwhile: no share of the stretch is
        # asked of it, only that it ran for longer than a hold lasts. One that did not
        # kept nothing: the whole process was stopped (a busy VM host, SIGSTOP) while it
        # waited, and every thread woke up late.
        ident = max(mine, key=lambda ident: used.get(ident, 0.0))
        culprit = mine[ident]
        ran = used.get(ident)
        if not culprit.stack or (ran is not None and ran < self._shortest_s):
            return
        # A call that already ended is held to more: it ran most of the stretch itself.
        if culprit.ended is not None and (ran or 0.0) < late_s * RUNNING_SHARE:
            return
        seen = Observation()
        seen.samples.append(Sample(culprit.stack, late_s))
        start = at - late_s
        # A full collection the worker ran meanwhile is the whole heap's, not its call's.
        # Another thread's is not taken out: it let the GIL go (a finalizer's system call)
        # for the worker to keep it this long, and its wall time spans the worker's call.
        collecting = self._clock.gc.full_overlapping(start, at, thread=ident)
        self._clock.keep_other_thread(Segment(start, at, culprit.origin, seen, collecting, 0.0))
