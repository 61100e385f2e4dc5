"""The watchdog: a thread that looks at the loop thread while a hold is going on.

It wakes every few milliseconds. When the loop has been inside one segment for half the
budget, it records the loop thread's stack, so the report can say where the time went.

A C call that keeps the GIL (`json.dumps` of a large object, `zlib.compress`) stops every
Python thread, this one included, so the watchdog cannot look while it runs. For that case
it keeps a CPU-time alarm (`ITIMER_PROF`) armed and re-arms it on every tick: as long as
the watchdog runs, the alarm never goes off. When the process burns CPU while the watchdog
is starved, it does, and Python runs the alarm's handler on the main thread as soon as the
C call returns: still inside the same step, with the frame that made the call in hand.

Pure Python can starve the watchdog too. A loop thread that lets the GIL go for a moment
every few milliseconds (Jinja checking each included template's file for changes) takes it
straight back each time, and CPython's waiting thread then never asks for its turn: on a
quiet machine the watchdog slept through a 140 ms render. So the alarm repeats, every tick
of CPU time, while the watchdog stays away, and spread work is seen spread.

An alarm's sample stands for the loop thread's CPU time since the sample before, less any
full garbage collection in it: wall time would give it the machine's preemptions too, and
a collection (not counted in the hold) ends in whatever line allocated last. On a CI worker
with a big heap, one sample taken after a 90 ms collection outweighed forty templates.

faulthandler's dump-later timer would see the C frames too, but it reads other threads'
frames while they run (it crashed the interpreter under load here), and pytest's own
`faulthandler_timeout` needs that single timer.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

from . import threadpool
from .alarm import CpuAlarm
from .gil import GilWatch
from .stacks import capture_with_local_types
from .steps import Sample, StepClock
from .threadtime import ThreadUsage, Usage, now

MAX_SAMPLES_PER_SEGMENT = 48


class Watchdog:
    """Samples the loop thread's stack while a segment runs long.

    Each sample is weighted by the time it stands for, so the report names the line where
    the time went: a tick's sample stands for one tick at most (a starved watchdog saw only
    that moment), an alarm's sample for one interval when its handler ran on time and for
    the whole wait when a C call held it back (the last one's also until the watchdog ran
    again), counted in the loop thread's CPU time.
    """

    def __init__(
        self, clock: StepClock, usage: ThreadUsage, budget_s: float, cpu_alarm: bool
    ) -> None:
        self._clock = clock
        self._usage = usage
        # A third of the budget: the first sample of a hold comes between half the budget
        # and five sixths of it. Every tick costs the loop a GIL hand-over or two.
        self._tick_s = min(max(budget_s / 3, 0.002), 0.02)
        self._sample_after_s = budget_s / 2
        # Long enough that a watchdog kept waiting by the GIL's switch interval (5 ms) or
        # a busy machine rarely sets it off, short enough to go off inside any hold.
        alarm_after_s = max(budget_s * 0.8, 2 * self._tick_s + 0.01)
        self._alarm = CpuAlarm(alarm_after_s, self._tick_s, self._on_alarm) if cpu_alarm else None
        self._last_tick = now()
        self._gil = GilWatch(clock, budget_s)
        # Up to when the loop thread's time is spoken for, and its CPU time then (None where
        # it cannot be read): the next alarm's sample stands for the time since. One tuple,
        # moved by both threads: the tick's reading can be older than an alarm's.
        self._mark: tuple[float, float | None] = (self._last_tick, None)
        # The last alarm's sample since the last tick: it stands for the time until the
        # watchdog runs again too.
        self._last_alarm: Sample | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="pytest-noblock-watchdog", daemon=True
        )

    def start(self) -> None:
        self._last_tick = now()
        usage = self._usage.remember(self._last_tick)
        self._mark = (self._last_tick, usage.cpu_s if usage is not None else None)
        if self._alarm is not None:
            self._alarm.rearm()
        self._thread.start()

    def stop(self) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        if self._alarm is not None:
            self._alarm.close()
        at = now()
        self._close_starved_stretch(at, self._usage.read(at))

    def _run(self) -> None:
        self._gil.start()
        try:
            while not self._stopping.wait(self._tick_s):
                self._tick()
            # The test may end while the watchdog waits for the GIL a worker kept: the
            # loop's thread can get it first and stop the watch before any tick saw it.
            self._tick()
        finally:
            self._gil.close()

    def _tick(self) -> None:
        at = now()
        since_last_tick = at - self._last_tick
        workers = self._gil.look(since_last_tick - self._tick_s)
        # Not while a full collection runs: the plugin's own callback let the GIL go, the
        # loop thread is no more watched than before, and re-arming would leave what comes
        # after the collection unsampled for `after_s`.
        if self._alarm is not None and not self._clock.gc.collecting_everything:
            self._alarm.rearm()
        # A busy machine keeps the watchdog from running too: not a hold of anyone's.
        busy = bool(workers)
        own_wait = self._gil.own_wait(busy)
        previous = self._usage.nearest(self._last_tick) if busy else None
        self._close_starved_stretch(at, self._usage.remember(at))
        self._last_tick = at
        threadpool.sample()
        if busy:
            # The loop thread's CPU time since the last tick, from the readings kept anyway.
            latest = self._usage.nearest(at)
            loop_used = 0.0
            if previous is not None and latest is not None:
                loop_used = latest.cpu_s - previous.cpu_s
            self._gil.tick(at, since_last_tick - self._tick_s - own_wait, loop_used, workers)
        current = self._clock.current
        if current is None or at - current[0] < self._sample_after_s:
            return
        start = current[0]
        seen = self._clock.observe(start)
        if seen.usage_before is None:
            seen.usage_before = self._usage.nearest(start)
        if len(seen.samples) >= MAX_SAMPLES_PER_SEGMENT:
            return
        gc = self._clock.gc
        if gc.collecting_everything:
            # The plugin's own callback let the GIL go as the collection began or ended:
            # a sample now would show where it was set off, a moment of no weight.
            return
        frame = sys._current_frames().get(self._clock.thread_ident)
        if frame is not None and self._clock.current is current:
            stack = capture_with_local_types(frame)
            ran = since_last_tick - gc.full_overlapping(at - since_last_tick, at)
            seen.samples.append(Sample(stack, min(max(ran, 0.0), self._tick_s)))
        del frame

    def _on_alarm(
        self, frame: FrameType | None, _thread_time: Callable[[], float] = time.thread_time
    ) -> None:
        """On the main thread, right after (or inside) whatever starved the watchdog."""
        current = self._clock.current
        if current is None or frame is None:
            return
        alarm = self._alarm
        if alarm is None:
            return
        at = now()
        # The alarm is armed only when the loop runs on the main thread, where this runs.
        cpu = _thread_time()
        since, since_cpu = self._mark
        ran = self._ran(since, at, cpu - since_cpu if since_cpu is not None else None)
        self._mark = (at, cpu)
        # A handler that ran when its alarm was due saw one moment of whatever kept the
        # watchdog out (pure Python taking the GIL straight back): it stands for one
        # interval, as a tick's sample does, and the rest of the stretch is not guessed at.
        # One that ran late waited for a C call that kept the GIL: the wait was the call's.
        # The first alarm comes `after_s` after the watchdog armed it, the next ones every
        # `every_s`. One already on its way when it re-armed can be handled after that, and
        # sooner than `after_s` (of CPU time, so of wall time too): the next one is the first.
        due = alarm.after_s if since < alarm.armed_at + alarm.after_s else alarm.every_s
        late = ran > due + alarm.every_s
        weight = ran if late else min(ran, alarm.every_s)
        seen = self._clock.observe(current[0])
        last = self._last_alarm
        if len(seen.samples) >= MAX_SAMPLES_PER_SEGMENT and last is not None:
            # No room for another stack: the last one stands for this stretch too.
            last.weight_s += weight
            return
        sample = Sample(capture_with_local_types(frame, read_source=False), weight)
        seen.samples.append(sample)
        self._last_alarm = sample

    def _ran(self, since: float, at: float, cpu_s: float | None) -> float:
        """How long the loop thread ran between two moments, less full collections.

        In CPU time where the loop thread's is known at both ends (everywhere but macOS):
        what the machine took meanwhile was nobody's code.
        """
        ran = cpu_s if cpu_s is not None else at - since
        # The running one too: a collection's end calls the plugin's own callback, Python
        # code, and a pending alarm is handled there, before the collection is logged.
        return max(ran - self._clock.gc.full_overlapping(since, at), 0.0)

    def _close_starved_stretch(self, at: float, usage: Usage | None) -> None:
        """The watchdog runs again: the last alarm's sample stands for the time until now.

        Alarms handled while this tick waited for the GIL (reading the usage lets it go)
        moved the mark past `at`: then the time is theirs already.
        """
        last, self._last_alarm = self._last_alarm, None
        since, since_cpu = self._mark
        if at <= since:
            return
        cpu = usage.cpu_s if usage is not None else None
        self._mark = (at, cpu)
        if last is not None:
            spent = cpu - since_cpu if cpu is not None and since_cpu is not None else None
            last.weight_s += self._ran(since, at, spent)
