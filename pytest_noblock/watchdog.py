"""The watchdog: a thread that looks at the loop thread while a hold is going on.

It sleeps while the loop steps: every segment's start pushes its deadline on (see
`deadline`), so it wakes only once a segment has run for part of the budget, or a worker
thread is busy with one of the loop's requests. Then it looks every few milliseconds and
records the loop thread's stack, so the report can say where the time went.

Where the loop runs on the main thread, the time it spends on the CPU is sampled another
way: a CPU-time alarm (`ITIMER_PROF`) goes off every tenth of the budget of the process's
CPU time, and Python runs its handler on the main thread at the next bytecode, wherever
that is. The watchdog's own look is biased: it gets the GIL only where the loop lets it
go, and Jinja lets it go on every include to check the template's file for changes, so
half of a first render's samples sat on that `stat`, and a template compile read as the
render. So a tick's sample stands only for the time the loop thread spent off the CPU
since the last tick (a `time.sleep`, a blocking read: the stack stays put), and each
alarm's sample for the loop thread's CPU time since the alarm before, less any full
garbage collection (not counted in the hold, and ending in whatever line allocated last).

The alarm sees what the watchdog cannot, too. A C call that keeps the GIL (`json.dumps` of
a large object, `zlib.compress`) stops every Python thread, this one included; the alarms
that come due meanwhile are handled as one when it returns, still inside the same step,
with the frame that made the call in hand, and its sample stands for the call's CPU time.
A loop thread that lets the GIL go for a moment every few milliseconds takes it straight
back each time, and CPython's waiting thread then never asks for its turn: on a quiet
machine the watchdog slept through a 140 ms render, which the alarm samples as it came.

faulthandler's dump-later timer would see the C frames too, but it reads other threads'
frames while they run (it crashed the interpreter under load here), and pytest's own
`faulthandler_timeout` needs that single timer.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

from . import background, deadline, threadpool
from .alarm import CpuAlarm
from .gil import GilWatch
from .stacks import Captured, capture_lazily, capture_with_local_types
from .steps import OpenSegment, Sample, StepClock
from .threadtime import ThreadUsage, Usage, now

MAX_SAMPLES_PER_SEGMENT = 160

# CPython's switch interval while a watchdog of a loop off the main thread is about to look.
PROMPT_SWITCH_S = 0.0005


class _PromptSwitch:
    """A short switch interval while any watchdog wants one, and the user's back after.

    A watchdog waiting for the GIL gets it at the loop's next `stat` or `read`, or after
    the switch interval (5 ms) when the loop lets none go: a look an interval late lands at
    a call that lets the GIL go, not where the time goes. Jinja checks a macros file on
    every import: a first render that was all compiling showed half its samples there.
    At half a millisecond the look lands where the loop was.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wanted = 0
        self._before = 0.0

    def want(self) -> None:
        with self._lock:
            self._wanted += 1
            if self._wanted == 1:
                self._before = sys.getswitchinterval()
                sys.setswitchinterval(min(self._before, PROMPT_SWITCH_S))

    def done(self) -> None:
        with self._lock:
            self._wanted -= 1
            # Unless the app changed it meanwhile: then it is the app's.
            if self._wanted == 0 and sys.getswitchinterval() == min(self._before, PROMPT_SWITCH_S):
                sys.setswitchinterval(self._before)


_prompt_switch = _PromptSwitch()


class Watchdog:
    """Samples the loop thread's stack while a segment runs long.

    Each sample is weighted by the time it stands for, so the report names the line where
    the time went: a tick's sample by the loop thread's time off the CPU since the last
    tick (one tick at most: a starved watchdog saw only that moment), or by the whole tick
    where that cannot be told; an alarm's sample by the loop thread's CPU time since the
    alarm before it.
    """

    def __init__(
        self, clock: StepClock, usage: ThreadUsage, budget_s: float, cpu_alarm: bool
    ) -> None:
        self._clock = clock
        self._usage = usage
        # The beat while a segment runs long. Every tick costs a busy loop dearly: the
        # watchdog waits for the GIL while the loop lets it go at every `select` and takes it
        # straight back, up to a switch interval (1 to 3 ms of the loop's time per tick on a
        # two-core VM). Where the alarm samples the loop's CPU time, the ticks are for the
        # time off the CPU (a `time.sleep`, a blocking read), whose stack stays put: one
        # look at half the budget or later is enough, and a tick a little more often than
        # every half budget puts one in every hold. Elsewhere a third of the budget.
        self._tick_s = (
            min(max(budget_s * 0.45, 0.002), 0.025)
            if cpu_alarm
            else min(max(budget_s / 3, 0.002), 0.02)
        )
        # Where no alarm samples the CPU time (a loop in a thread of its own), the watchdog
        # looks ten times a budget while a segment runs long, from a quarter of the budget
        # on: a hold just over the budget gets a dozen looks, enough to weigh what it was
        # (warm-up or not); three were not.
        self._sample_after_s = budget_s / 2 if cpu_alarm else budget_s / 4
        self._prompt_after_s = max(self._sample_after_s - self._tick_s, budget_s / 8)
        self._prompt_tick_s = max(budget_s / 10, 0.002)
        # Ten samples to a budget's worth of CPU time, from a quarter of the budget on: a
        # hold just over the budget gets a dozen, enough to weigh what it was (warm-up or
        # not) by. An alarm that finds no long segment costs a few microseconds.
        self._alarm_every_s = max(budget_s / 10, 0.002)
        self._alarm = CpuAlarm(self._alarm_every_s, self._on_alarm) if cpu_alarm else None
        self._alarm_sample_after_s = budget_s / 4
        # How long after its start a segment could first be worth a look. The watchdog sleeps
        # until then (see `deadline`); segments push the deadline on at most every quarter of
        # it, so a segment's first look comes between three quarters of it and all of it.
        self._look_after_s = self._sample_after_s if cpu_alarm else self._prompt_after_s
        self._push_every_s = self._look_after_s / 4
        self._deadline = deadline.make()
        # When the next look is due, and the interval it was planned for: one tuple, set by
        # the loop's pushes and by the watchdog.
        self._plan = (math.inf, self._look_after_s)
        # The last reading of the loop thread's usage, a tick's or a push's: (when, what).
        self._last: tuple[float, Usage | None] = (now(), None)
        self._prompt = False
        # When the last alarm was handled, and the loop thread's CPU time then.
        self._mark = (self._last[0], 0.0)
        self._gil = GilWatch(clock, budget_s, self._on_worker_busy)
        self._stopping = threading.Event()
        # A tick and `stop` take turns: once stopped, the thread touches nothing.
        self._ticking = threading.Lock()
        self._thread: background.Joinable | None = None

    def start(self, _thread_time: Callable[[], float] = time.thread_time) -> None:
        at = now()
        self._last = (at, self._usage.remember(at))
        if self._alarm is not None:
            # On the loop's thread, the main thread: the one the handler runs on.
            self._mark = (at, _thread_time())
            self._alarm.arm()
        # The segment open now (the test's own code) is due a look like any other.
        self._clock.push = self._pushed
        self._clock.hold_off = self._hold_off
        self._clock.push_at = at + self._push_every_s
        self._arm(at + self._look_after_s, self._look_after_s)
        # Not waited for: it needs the GIL once, to reach its first wait, and gets it at the
        # loop's next `select` (or after a switch interval) long before its first look is due.
        self._thread = background.start(self._run)

    def stop(self) -> None:
        """Safe from any thread. The last tick runs here, on the caller's thread: the
        watchdog's may not have run since a worker let the GIL go (see `_last_look`).
        The thread itself ends on its own and is joined after the test's teardown."""
        with self._ticking:
            if self._stopping.is_set():
                return
            self._stopping.set()
            self._clock.push_at = math.inf
            if self._thread is not None:
                self._last_look()
                # Its thread closes the deadline once woken: nothing sets it after this.
                self._deadline.set(0.0)
            else:
                self._deadline.close()
        if self._alarm is not None:
            self._alarm.close()
        self._look_promptly(False)
        self._gil.close()
        if self._thread is not None:
            background.join_later(self._thread)

    def _last_look(self) -> None:
        """The test may end while the watchdog waits for the GIL a worker kept: the loop's
        thread can get it first and stop the watch before any tick saw that stretch."""
        at = now()
        self._tick(at, self._tick_s, late_s=max(at - self._plan[0], 0.0), last=True)

    def _look_promptly(self, wanted: bool) -> None:
        if wanted != self._prompt:
            self._prompt = wanted
            if wanted:
                _prompt_switch.want()
            else:
                _prompt_switch.done()

    def _arm(self, due: float, planned_s: float) -> None:
        self._plan = (due, planned_s)
        self._deadline.set(due)

    def _pushed(self, at: float) -> None:
        """On the loop thread, as a segment starts: the next look is due a look-after from
        now. The usage read here is what a long segment's first look is measured from."""
        if self._plan[0] <= at or self._stopping.is_set():
            # Due already: the watchdog is up, or waits for the GIL, and plans the next look
            # itself. Moved now, its look would be measured against a deadline to come, and
            # a worker that kept the GIL all along would not show (the loop thread can get
            # the GIL back first). Stopped: a push that began as the watch ended.
            return
        self._clock.push_at = at + self._push_every_s
        self._last = (at, self._usage.remember(at))
        self._arm(at + self._look_after_s, self._look_after_s)

    def _hold_off(self, at: float) -> None:
        """On the loop thread: no look until the next push, unless one is due already."""
        if self._plan[0] <= at:
            return
        self._disarm()

    def _disarm(self) -> None:
        # The timer first: a push between the two (from the loop, while the watchdog plans)
        # still finds the deadline it woke for passed, and leaves the plan to the watchdog.
        self._deadline.clear()
        self._plan = (math.inf, self._look_after_s)

    def _on_worker_busy(self) -> None:
        """On a worker thread as it begins a call for this loop: looks on a beat from now on.

        Takes no lock (the app's thread would wait for a tick to end). In this order, and
        `_plan_next` in the reverse one: whichever runs second sees what the other did."""
        if self._clock.push_at == math.inf:  # on a worker's beat already, or stopped
            return
        self._clock.push_at = math.inf
        at = now()
        if self._plan[0] > at + self._tick_s:
            self._arm(at + self._tick_s, self._tick_s)

    def _run(self) -> None:
        self._gil.start()
        while True:
            self._deadline.wait()
            with self._ticking:
                if self._stopping.is_set():
                    self._deadline.close()
                    return
                at = now()
                due, planned_s = self._plan
                workers_busy = self._tick(at, planned_s, late_s=at - due)
                self._plan_next(at, workers_busy)

    def _plan_next(self, at: float, workers_busy: bool) -> None:
        """Look again on a beat while something is going on; else sleep until the open
        segment, or the next one to start, could be worth a look."""
        current = self._clock.current
        if (
            workers_busy
            or self._prompt
            or (current is not None and at - current[0] >= self._look_after_s)
        ):
            # A worker's beat tells how late each look comes: pushes would put it off. A long
            # segment's beat ends with the segment: the next one to start pushes.
            self._clock.push_at = math.inf if workers_busy else -math.inf
            interval = self._prompt_tick_s if self._prompt else self._tick_s
            self._arm(at + interval, interval)
            return
        # In this order: a segment that starts meanwhile either is seen here or pushes, and
        # a worker that begins a call either is seen here or wakes the watchdog itself.
        self._disarm()
        self._clock.push_at = -math.inf
        if self._gil.any_busy():
            self._clock.push_at = math.inf
            self._arm(at + self._tick_s, self._tick_s)
            return
        current = self._clock.current
        if current is not None:
            self._arm(current[0] + self._look_after_s, self._look_after_s)

    def _tick(self, at: float, planned_s: float, late_s: float, last: bool = False) -> bool:
        """One look; returns whether a worker thread is busy with this loop's request.
        `late_s`: how long after it was due the look came (the GIL taken included); `last`:
        the watch's final look, which no later tick measures from."""
        last_at, previous = self._last
        since_last_tick = at - last_at
        workers = self._gil.look(late_s)
        current = self._clock.current
        # The open segment, when it has run long enough to be sampled.
        long_one = (
            current if current is not None and at - current[0] >= self._sample_after_s else None
        )
        looked: Captured | None = None
        if (
            self._alarm is None
            and long_one is not None
            and not self._clock.gc.collecting_everything
        ):
            # Before anything lets the GIL go: the look would land wherever the loop lets
            # it go next.
            looked = self._look_at_loop(long_one, late_s)
        # A busy machine keeps the watchdog from running too: not a hold of anyone's.
        busy = bool(workers)
        if last and not busy and long_one is None:
            # Nothing for it to weigh (most tests end so): no usage to read, a few of the
            # test's microseconds each.
            return False
        own_wait = self._gil.own_wait(busy)
        usage = self._usage.remember(at)
        self._last = (at, usage)
        threadpool.sample()
        if busy:
            # The loop thread's CPU time since the last tick, from the readings kept anyway.
            loop_used = 0.0
            if previous is not None and usage is not None:
                loop_used = usage.cpu_s - previous.cpu_s
            self._gil.tick(at, late_s - own_wait, loop_used, workers)
        if self._alarm is None:
            # The next tick samples: it must find the loop where it is (see _PromptSwitch).
            self._look_promptly(current is not None and at - current[0] >= self._prompt_after_s)
        if long_one is not None:
            self._sample(at, long_one, since_last_tick, planned_s, (previous, usage), looked)
        return busy

    def _sample(
        self,
        at: float,
        current: OpenSegment,
        since_last_tick: float,
        planned_s: float,
        readings: tuple[Usage | None, Usage | None],
        looked: Captured | None,
    ) -> None:
        """The loop's stack, weighted by the time since the last reading it stands for."""
        previous, usage = readings
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
        weight = since_last_tick - gc.full_overlapping(at - since_last_tick, at)
        if self._alarm is not None and previous is not None and usage is not None:
            # The alarm samples the time on the CPU: this sample stands for the rest.
            weight -= (usage.cpu_s - previous.cpu_s) + (usage.waiting_s - previous.waiting_s)
            if weight < self._tick_s / 3:
                return
        if self._alarm is None:
            if looked is not None and self._clock.current is current:
                cap_s = planned_s + PROMPT_SWITCH_S
                seen.samples.append(Sample(looked, min(weight, cap_s)))
            return
        frame = sys._current_frames().get(self._clock.thread_ident)
        if frame is not None and self._clock.current is current:
            stack = capture_with_local_types(frame, self._clock.thread_ident)
            seen.samples.append(Sample(stack, min(weight, self._tick_s)))
        del frame

    def _look_at_loop(
        self,
        current: OpenSegment,
        gil_wait_s: float,
        _sleep: Callable[[float], object] = time.sleep,
    ) -> Captured | None:
        """The loop thread's stack, taken where the loop is rather than where it stopped."""
        if gil_wait_s < PROMPT_SWITCH_S:
            # The GIL came before the switch interval was up: the loop let it go at a call
            # (a `stat`), or it sits in a blocking one. Let it run on a moment: the next
            # look lands where it goes, or on the same blocking call.
            _sleep(PROMPT_SWITCH_S / 4)
            if self._clock.current is not current:
                return None
        frame = sys._current_frames().get(self._clock.thread_ident)
        try:
            return (
                capture_with_local_types(frame, self._clock.thread_ident)
                if frame is not None
                else None
            )
        finally:
            del frame

    def _on_alarm(
        self, frame: FrameType | None, _thread_time: Callable[[], float] = time.thread_time
    ) -> None:
        """On the main thread, the loop's, at the first bytecode after the alarm went off."""
        at = now()
        cpu = _thread_time()
        since, since_cpu = self._mark
        self._mark = (at, cpu)
        current = self._clock.current
        if current is None or frame is None or at - current[0] < self._alarm_sample_after_s:
            return
        seen = self._clock.observe(current[0])
        if len(seen.samples) >= MAX_SAMPLES_PER_SEGMENT:
            return
        # The running collection too: one's end calls the plugin's own callback, Python
        # code, and a pending alarm is handled there, before the collection is logged.
        ran = cpu - since_cpu - self._clock.gc.full_overlapping(since, at)
        if ran <= 0:
            return
        if ran > 2 * self._alarm_every_s:
            # Handled late: the loop thread was inside one C call (a SQLite query, a hash)
            # all along. The types of the locals tell what it was made on (a database
            # connection); elsewhere the frames say enough, and the types cost as much.
            stack = capture_with_local_types(frame, self._clock.thread_ident, read_source=False)
        else:
            stack = capture_lazily(frame, self._clock.thread_ident)
        seen.samples.append(Sample(stack, ran))
