"""The step clock: times every stretch of code a loop runs without giving control back.

asyncio runs everything as a callback through `Handle._run`, one at a time; while one
runs, the loop serves nothing else. Timing those calls tells exactly how long the loop
was held and by whom, which a probe's lateness cannot: fifty concurrent requests that
each take 1 ms make a probe 50 ms late without any of them holding the loop.

Time the loop thread lost to something other than the code it ran is taken out of a
segment: waiting for a CPU (threadtime), full garbage collections (whichever thread ran
them), and waiting inside `Thread.start` for a new thread to run. Young-generation
collections stay in: they are set off by what the segment itself allocated.

Two more boundaries split a step. `httpx.ASGITransport` runs a whole request inside the
caller's step without ever yielding, so the start and end of each request (see
`tracking`) cut the step too: back-to-back requests are measured one by one.
"""

from __future__ import annotations

import asyncio
import gc
import math
import threading
import time
from collections import deque
from collections.abc import Callable

from .origins import Origin, current_origin
from .patching import MethodPatch
from .stacks import Captured, Stack
from .threadtime import ThreadUsage, Usage


class Segment:
    """One stretch of loop time owned by one origin, long enough to be looked at."""

    __slots__ = (
        "collecting_s",
        "end",
        "in_worker_thread",
        "origin",
        "samples",
        "start",
        "starting_threads_s",
        "usage_after",
        "usage_before",
        "waiting_for_workers_s",
        "young_collecting_s",
    )

    def __init__(
        self,
        start: float,
        end: float,
        origin: Origin | None,
        seen: Observation,
        collecting_s: float,
        starting_threads_s: float,
        young_collecting_s: float = 0.0,
    ) -> None:
        self.start = start
        self.end = end
        self.origin = origin
        self.collecting_s = collecting_s
        self.young_collecting_s = young_collecting_s
        # A worker thread's stretch with the GIL (see `gil`), not the loop's own time.
        self.in_worker_thread = False
        # Time the loop thread waited for the GIL a worker thread kept (see `gil`).
        self.waiting_for_workers_s = 0.0
        self.starting_threads_s = starting_threads_s
        self.samples = seen.samples
        self.usage_before = seen.usage_before
        self.usage_after: Usage | None = None

    @property
    def wall_s(self) -> float:
        return self.end - self.start

    @property
    def waiting_s(self) -> float:
        """Time the thread was runnable but the machine gave it no CPU."""
        if self.usage_before is None or self.usage_after is None:
            return 0.0
        return max(self.usage_after.waiting_s - self.usage_before.waiting_s, 0.0)

    @property
    def cpu_s(self) -> float | None:
        if self.usage_before is None or self.usage_after is None:
            return None
        return max(self.usage_after.cpu_s - self.usage_before.cpu_s, 0.0)

    @property
    def held_s(self) -> float:
        """Wall time, less what the machine and full garbage collections took.

        A full collection walks the whole heap, which in a test process is pytest's and the
        whole suite's: its pause says nothing about the app. A young-generation collection
        runs because the code running allocated enough to set it off, and costs in
        proportion to what it allocated: the segment's own time (`young_collecting_s`).
        """
        lost = (
            self.waiting_s
            + self.collecting_s
            + self.starting_threads_s
            + self.waiting_for_workers_s
        )
        return max(self.wall_s - lost, 0.0)


class Sample:
    """A stack seen while a segment ran, and how much of the segment's time it stands for."""

    __slots__ = ("_stack", "weight_s")

    def __init__(self, stack: Stack | Captured, weight_s: float) -> None:
        self._stack = stack
        self.weight_s = weight_s

    @property
    def stack(self) -> Stack:
        stack = self._stack
        return stack.stack if isinstance(stack, Captured) else stack


class Observation:
    """What the watchdog saw of a segment while it ran."""

    __slots__ = ("samples", "usage_before")

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.usage_before: Usage | None = None


OpenSegment = tuple[float, "Origin | None"]
"""(start, origin): one tuple, so the watchdog never reads half an update. A new tuple is
made for every segment, so its identity tells segments apart."""


class LostTime:
    """Stretches of the loop thread's time lost to something else, by when each began.

    Rare next to segments (a collection, a slow thread start), so a segment pays for them
    only when it is kept: `between` adds up the ones that began inside it. Kept by time,
    not by segment, so a stretch that begins while a segment is being opened still lands
    in the right one.
    """

    # More than any one segment sees; older entries belong to segments long closed.
    KEPT = 256

    def __init__(self) -> None:
        # (when it began, how long, the ident of the thread it was lost in)
        self._log: deque[tuple[float, float, int]] = deque(maxlen=self.KEPT)

    def add(self, began: float, seconds: float, thread: int = 0) -> None:
        self._log.append((began, seconds, thread))

    def between(self, start: float, end: float) -> float:
        # A copy: a collection set off while summing appends to the log.
        return sum(seconds for began, seconds, _ in list(self._log) if start <= began < end)

    def overlapping(self, start: float, end: float, thread: int | None = None) -> float:
        """The parts inside `start`..`end`, for a stretch known only after the fact: one the
        watchdog dates from when it should have woken, after the stretch already began.
        With `thread`, only the stretches lost in that thread."""
        return sum(
            max(min(end, began + seconds) - max(start, began), 0.0)
            for began, seconds, lost_in in list(self._log)
            if thread is None or lost_in == thread
        )


def _not_told(running: bool, at: float) -> None:
    pass


# The oldest generation: a collection of it walks everything the process holds.
FULL_COLLECTION = 2


class GarbageCollectorTime:
    """The time garbage collections take from the loop thread, by when each began.

    Full collections are `lost`: taken out of the segment they land in, less the time the
    loop thread waited for a CPU meanwhile (that wait is taken out already). One run by
    another thread counts too: it keeps the GIL from start to end, so a loop thread waiting
    on that thread (a local stub server answering `requests.get`) waits for all of it, and
    one coming back from a blocking call waits for the GIL until it ends. Young collections
    run by the loop thread are `young`: counted, and shown in the report's timing line;
    another thread's are its own allocations' doing, and brief.
    """

    def __init__(self, thread_ident: int, usage: ThreadUsage) -> None:
        self.lost = LostTime()
        self.young = LostTime()
        self._usage = usage
        self._thread_ident = thread_ident
        self._started: float | None = None
        self._full = False
        # The thread running the collection that began at `_started`.
        self._collector = 0
        # Told as a full collection of the loop thread's own begins (True) and ends (False).
        self.around_full: Callable[[bool, float], None] = _not_told
        # The loop thread's CPU wait so far when the running full collection began.
        self._waited_before: float | None = None

    def __call__(
        self,
        phase: str,
        info: dict[str, int],
        _now: Callable[[], float] = time.perf_counter,
        _get_ident: Callable[[], int] = threading.get_ident,
    ) -> None:
        if phase == "start":
            full = info.get("generation", FULL_COLLECTION) >= FULL_COLLECTION
            own = _get_ident() == self._thread_ident
            if full or own:
                self._started = _now()
                self._full = full
                self._collector = _get_ident()
                if full and own:
                    self.around_full(True, self._started)
                # Young collections run by the thousand: only the rare full one pays for
                # reading the loop thread's usage. Not in another thread's: the read lets
                # the GIL go, and the watchdog would look before the collection is logged;
                # the loop thread, stopped meanwhile, waits for no CPU.
                usage = self._usage.read() if full and own else None
                self._waited_before = usage.waiting_s if usage is not None else None
        elif self._started is not None:
            took = _now() - self._started
            if not self._full:
                self.young.add(self._started, took)
            else:
                usage = self._usage.read() if self._waited_before is not None else None
                if usage is not None and self._waited_before is not None:
                    took -= max(usage.waiting_s - self._waited_before, 0.0)
                self.lost.add(self._started, max(took, 0.0), self._collector)
                if self._collector == self._thread_ident:
                    self.around_full(False, _now())
            self._started = None

    @property
    def collecting_everything(self) -> bool:
        """A full collection is running (seen from another thread while it lets the GIL go)."""
        return self._started is not None and self._full

    def full_overlapping(self, start: float, end: float, thread: int | None = None) -> float:
        """Full collections' time inside `start`..`end`, the one running now included: the
        watchdog can look in the middle of one (the finalizers it runs let the GIL go).
        With `thread`, only the collections that thread ran."""
        started, full, collector = self._started, self._full, self._collector
        running = 0.0
        if started is not None and full and (thread is None or thread == collector):
            running = max(end - max(start, started), 0.0)
        return self.lost.overlapping(start, end, thread) + running

    def install(self) -> None:
        gc.callbacks.append(self)

    def uninstall(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)


def _no_push(at: float) -> None:
    pass


def _no_hold_off(at: float) -> None:
    pass


class StepClock:
    """Splits one loop thread's time into segments and keeps the long ones.

    `open`, `close` and `switch` run for every callback of the loop and twice for every
    request: they stay small.
    """

    MAX_KEPT = 500

    def __init__(self, thread_ident: int, usage: ThreadUsage, keep_over_s: float) -> None:
        self.thread_ident = thread_ident
        self.usage = usage
        self.gc = GarbageCollectorTime(thread_ident, usage)
        # See `_timed_thread_start`.
        self.thread_starts = LostTime()
        # Stretches a worker thread kept the GIL, found after the fact (see `gil`).
        self.workers_kept_gil = LostTime()
        self.keep_over_s = keep_over_s
        self.current: OpenSegment | None = None
        # The watchdog's notes on the open segment, by its start.
        self.observed: dict[float, Observation] = {}
        self.kept: list[Segment] = []
        self.dropped = 0
        self.steps = 0
        # Time inside steps so far: a loop that times only some of its callbacks (uvloop's
        # tasks) tells the rest from how late it ran less this (`adapters.uvloop`).
        self.stepped_s = 0.0
        # A watchdog's deadline (see `deadline`), pushed on by a segment that starts at or
        # after `push_at`: one call every few milliseconds of a busy loop, not one per step.
        self.push_at = math.inf
        self.push: Callable[[float], None] = _no_push
        self.hold_off: Callable[[float], None] = _no_hold_off
        self.gc.around_full = self._around_full_collection

    def _around_full_collection(self, running: bool, at: float) -> None:
        """A full collection is nobody's hold (see `GarbageCollectorTime`): the watchdog
        sleeps through it, and the segment it ends in is due a look a look-after from its end.
        Woken in the middle, it would take the GIL from the busy loop once the collection
        is over (a few milliseconds of the loop's time) to find nothing to look at."""
        if self.push_at == math.inf:  # no watchdog, or one on a worker's beat
            return
        if running:
            self.hold_off(at)
        else:
            self.push(at)

    def open(self, origin: Origin | None, _now: Callable[[], float] = time.perf_counter) -> None:
        if self.current is not None:
            self.close()
        self.steps += 1
        at = _now()
        self.current = (at, origin)
        if at >= self.push_at:
            self.push(at)

    def close(self, _now: Callable[[], float] = time.perf_counter) -> None:
        current = self.current
        if current is None:
            return
        self.current = None
        end = _now()
        self.stepped_s += end - current[0]
        if end - current[0] >= self.keep_over_s:
            self._keep(current, end)

    def switch(self, origin: Origin | None, _now: Callable[[], float] = time.perf_counter) -> None:
        """A request started or ended inside the running step: `close` and `open` in one."""
        current = self.current
        if current is None:
            return
        at = _now()
        self.stepped_s += at - current[0]
        if at - current[0] >= self.keep_over_s:
            self._keep(current, at)
            # Keeping it took a little time of its own: not the new segment's.
            at = _now()
        self.current = (at, origin)
        if at >= self.push_at:
            self.push(at)

    def _keep(self, current: OpenSegment, end: float) -> None:
        start, origin = current
        seen = self.observed.pop(start, None) or Observation()
        segment = Segment(
            start,
            end,
            origin,
            seen,
            self.gc.lost.between(start, end),
            self.thread_starts.between(start, end),
            self.gc.young.between(start, end),
        )
        if segment.usage_before is None:
            segment.usage_before = self.usage.nearest(start)
        segment.usage_after = self.usage.read()
        if len(self.kept) < self.MAX_KEPT:
            self.kept.append(segment)
        else:
            self.dropped += 1

    def keep_other_thread(self, segment: Segment) -> None:
        """A worker thread's stretch with the GIL: its request's hold, not the loop's.

        Only its held part is the loop's wait for a worker: a full collection in it is
        taken out of the loop's segments already.
        """
        segment.in_worker_thread = True
        self.workers_kept_gil.add(segment.start, segment.held_s)
        if len(self.kept) < self.MAX_KEPT:
            self.kept.append(segment)
        else:
            self.dropped += 1

    def settle(self) -> None:
        """Once the watch is over: take the workers' stretches out of the loop's segments.

        They are found only after they end, when the loop's segment may be kept already.
        """
        for segment in self.kept:
            if not segment.in_worker_thread:
                segment.waiting_for_workers_s = self.workers_kept_gil.between(
                    segment.start, segment.end
                )

    def observe(self, start: float) -> Observation:
        """The watchdog's notes on the segment open since `start`; older notes are dropped."""
        seen = self.observed.get(start)
        if seen is None:
            # A copy of the keys: the CPU alarm's handler may add notes meanwhile.
            for stale in [key for key in list(self.observed) if key < start]:
                self.observed.pop(stale, None)
            seen = self.observed[start] = Observation()
        return seen


clocks: dict[int, StepClock] = {}
"""The clock of each watched loop thread, by thread ident."""
_RUN = MethodPatch(asyncio.Handle, "_run")
_THREAD_START = MethodPatch(threading.Thread, "start")


def _timed_run(handle: asyncio.Handle, _get_ident: Callable[[], int] = threading.get_ident) -> None:
    ident = _get_ident()
    clock = clocks.get(ident)
    if clock is not None:
        clock.open(handle._context.get(current_origin))  # type: ignore[attr-defined]
    try:
        # A loop in another thread (a TestClient portal that outlives the test) may be
        # here just as `uninstall` runs: then `original` is None and `real` is used.
        (_RUN.original or _RUN.real)(handle)
    finally:
        # Also looked up afterwards: the test body attaches its clock in mid-step.
        clock = clocks.get(ident)
        if clock is not None:
            clock.close()


# A thread start that takes longer than this is waiting on the machine, not working.
THREAD_START_S = 0.001


def _timed_thread_start(
    thread: threading.Thread,
    _get_ident: Callable[[], int] = threading.get_ident,
    _now: Callable[[], float] = time.perf_counter,
) -> None:
    """`Thread.start`, with its wait for the new thread left out of the loop's time.

    `start` returns once the new thread runs (anyio's workers, asyncio's default executor
    and child watcher start threads from the loop). That is a hand-over of about 0.1 ms,
    but on a loaded machine the new thread can take tens of milliseconds to be scheduled
    and to get the GIL, while the loop thread sleeps in `start`: the calling code cannot
    help it. Each start still counts for up to `THREAD_START_S`, so a handler starting
    threads by the hundred is still a hold. Costs a schedstat read per start (two when slow).
    """
    __tracebackhide__ = True  # tracebacks show the app, not the plugin
    start: Callable[[threading.Thread], None] = _THREAD_START.original or _THREAD_START.real
    clock = clocks.get(_get_ident())
    if clock is None:
        return start(thread)
    before = clock.usage.read()
    started = _now()
    try:
        return start(thread)
    finally:
        waited = _now() - started - THREAD_START_S
        if waited > 0:
            # The loop thread's own wait for a CPU in there is already left out.
            after = clock.usage.read()
            if before is not None and after is not None:
                waited -= max(after.waiting_s - before.waiting_s, 0.0)
            clock.thread_starts.add(started, max(waited, 0.0))


def install() -> None:
    """Route asyncio's callbacks through the clock; a no-op for unwatched threads."""
    _RUN.install(_timed_run)
    _THREAD_START.install(_timed_thread_start)


def uninstall() -> None:
    if not clocks:
        _RUN.uninstall()
        _THREAD_START.uninstall()


def attach(clock: StepClock, origin: Origin | None) -> None:
    clock.gc.install()
    clocks[clock.thread_ident] = clock
    clock.open(origin)


def detach(clock: StepClock) -> None:
    clock.close()
    clock.gc.uninstall()
    if clocks.get(clock.thread_ident) is clock:
        del clocks[clock.thread_ident]
