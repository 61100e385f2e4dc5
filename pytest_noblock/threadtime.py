"""How long a thread really ran, and how long it sat waiting for a CPU.

A step that took 40 ms of wall time is not a hold if the machine took the CPU away
for 35 of them: the app did nothing wrong, the CI runner was busy. Linux counts both
figures per thread in /proc/<pid>/task/<tid>/schedstat (time on CPU, time runnable
but waiting for one); elsewhere we fall back to the thread's CPU clock alone (the BSDs),
and without one (macOS, Windows) there is no figure at all (see `platforms`).
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

from . import platforms


# The real clocks are bound as default arguments, never as module attributes: freezegun
# swaps the `time` functions it finds in modules, and a frozen clock would blind us.
def now(_perf_counter: Callable[[], float] = time.perf_counter) -> float:
    return _perf_counter()


def _thread_cpu_time(
    clock_id: int, _clock_gettime: Callable[[int], float] = time.clock_gettime
) -> float:
    return _clock_gettime(clock_id)


class Usage(NamedTuple):
    # A tuple: the watchdog makes one on every tick, on the loop's time (it holds the GIL).
    at: float
    cpu_s: float
    waiting_s: float


class ThreadUsage:
    """Reads one thread's usage; safe to call from any thread."""

    def __init__(self, thread_ident: int, native_id: int) -> None:
        self._fd: int | None = None
        self._cpu_clock: int | None = None
        if platforms.active.has(platforms.SCHEDSTAT):
            try:
                self._fd = os.open(f"/proc/self/task/{native_id}/schedstat", os.O_RDONLY)
            except OSError:
                self._fd = None
        # Both where both exist: schedstat's CPU time is brought up to date only on the
        # scheduler's ticks (up to 4 ms behind), the thread's clock on every reading, and the
        # watchdog tells a few milliseconds on the CPU from a few off it.
        if platforms.active.has(platforms.THREAD_CPU_CLOCK):
            try:
                self._cpu_clock = time.pthread_getcpuclockid(thread_ident)
            except (AttributeError, OSError):
                self._cpu_clock = None
        self._history: deque[Usage] = deque(maxlen=32)

    def read(self, at: float | None = None) -> Usage | None:
        """The usage now; `at` is the caller's reading of `now()`, if it just took one."""
        if at is None:
            at = now()
        cpu_s: float | None = None
        if self._cpu_clock is not None:
            try:
                cpu_s = _thread_cpu_time(self._cpu_clock)
            except OSError:
                return None
        if self._fd is not None:
            try:
                fields = os.pread(self._fd, 128, 0).split()
                scheduled_s, waiting_s = int(fields[0]) / 1e9, int(fields[1]) / 1e9
            except (OSError, IndexError, ValueError):
                return None
            return Usage(at, scheduled_s if cpu_s is None else cpu_s, waiting_s)
        return Usage(at, cpu_s, 0.0) if cpu_s is not None else None

    def remember(self, at: float) -> Usage | None:
        """Called by the watchdog on every tick, so a step's start has a reading before it."""
        usage = self.read(at)
        if usage is not None:
            self._history.append(usage)
        return usage

    def nearest(self, moment: float) -> Usage | None:
        """The reading closest to a step's start, on either side of it.

        One taken well before the start would count, as the step's, CPU waits that came
        before it: on a busy machine that hides real holds.
        """
        history = list(self._history)
        if not history:
            return None
        return min(history, key=lambda usage: abs(usage.at - moment))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
