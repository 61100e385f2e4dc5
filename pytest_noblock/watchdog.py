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

faulthandler's dump-later timer would see the C frames too, but it reads other threads'
frames while they run (it crashed the interpreter under load here), and pytest's own
`faulthandler_timeout` needs that single timer.
"""

from __future__ import annotations

import sys
import threading
from types import FrameType

from . import threadpool
from .alarm import CpuAlarm
from .gil import GilWatch
from .stacks import capture_with_local_types
from .steps import Sample, StepClock
from .threadtime import ThreadUsage, now

MAX_SAMPLES_PER_SEGMENT = 48


class Watchdog:
    """Samples the loop thread's stack while a segment runs long.

    Each sample is weighted by the time it stands for, so the report names the line where
    the time went: a tick's sample stands for one tick at most (a starved watchdog saw only
    that moment), an alarm's sample for one interval when its handler ran on time and for
    the whole wait when a C call held it back (the last one's also until the watchdog ran
    again).
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
        # The alarms' samples since the last tick, each with when it was taken, and the
        # tick the starved stretch began at.
        self._starved: list[tuple[Sample, float]] = []
        self._starved_since = 0.0
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="pytest-noblock-watchdog", daemon=True
        )

    def start(self) -> None:
        self._last_tick = now()
        self._usage.remember(self._last_tick)
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
        self._close_starved_stretch(now(), 0.0)

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
        if self._alarm is not None:
            self._alarm.rearm()
        # A busy machine keeps the watchdog from running too: not a hold of anyone's.
        busy = bool(workers)
        own_wait = self._gil.own_wait(busy or bool(self._starved))
        self._close_starved_stretch(at, own_wait)
        previous = self._usage.nearest(self._last_tick) if busy else None
        self._last_tick = at
        self._usage.remember(at)
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
        frame = sys._current_frames().get(self._clock.thread_ident)
        if frame is not None and self._clock.current is current:
            stack = capture_with_local_types(frame)
            seen.samples.append(Sample(stack, min(since_last_tick, self._tick_s)))
        del frame

    def _on_alarm(self, frame: FrameType | None) -> None:
        """On the main thread, right after (or inside) whatever starved the watchdog."""
        current = self._clock.current
        if current is None or frame is None:
            return
        alarm = self._alarm
        if alarm is None:
            return
        at = now()
        # One reading of the list: the watchdog may swap in a new one meanwhile, and an
        # error here would be raised in the app's code.
        starved = self._starved
        if not starved:
            self._starved_since = self._last_tick
        since = starved[-1][1] if starved else self._last_tick
        interval = at - since
        # A handler that ran when its alarm was due saw one moment of whatever kept the
        # watchdog out (pure Python taking the GIL straight back): it stands for one
        # interval, as a tick's sample does, and the rest of the stretch is not guessed at.
        # One that ran late waited for a C call that kept the GIL: the wait was the call's.
        due = alarm.every_s if starved else alarm.after_s
        late = interval > due + alarm.every_s
        weight = interval if late else min(interval, alarm.every_s)
        seen = self._clock.observe(current[0])
        if len(seen.samples) >= MAX_SAMPLES_PER_SEGMENT and starved:
            # No room for another stack: the last one stands for this stretch too.
            last = starved[-1][0]
            last.weight_s += weight
            starved[-1] = (last, at)
            return
        sample = Sample(capture_with_local_types(frame, read_source=False), weight)
        seen.samples.append(sample)
        starved.append((sample, at))

    def _close_starved_stretch(self, at: float, own_wait: float) -> None:
        """The watchdog runs again: the starved stretch the alarms sampled is over.

        What of it the watchdog spent waiting for a CPU, the machine took, not the code the
        alarms caught: that time is no sample's (a lone sample after a syscall stood for a
        whole template compile on a loaded machine). It is taken out of each sample in
        proportion, since the wait cannot be dated.
        """
        if not self._starved:
            return
        starved, self._starved = self._starved, []
        last, last_at = starved[-1]
        # The tick may read the clock just before a handler samples: never below 0.
        last.weight_s += max(at - last_at, 0.0)
        span = at - self._starved_since
        if span <= 0:
            return
        # Nor a full garbage collection's: it is not counted in the hold, and it runs
        # wherever the heap fills up (a template line of no weight of its own).
        lost = own_wait + self._clock.gc.lost.between(self._starved_since, at)
        kept = max(span - lost, min(span, self._tick_s), 0.0) / span
        for sample, _ in starved:
            sample.weight_s = max(sample.weight_s, 0.0) * kept
