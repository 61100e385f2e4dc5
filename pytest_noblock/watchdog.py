"""The watchdog: a thread that looks at the loop thread while a hold is going on.

It wakes every few milliseconds. When the loop has been inside one segment for half the
budget, it records the loop thread's stack, so the report can say where the time went.

A C call that keeps the GIL (`json.dumps` of a large object, `zlib.compress`) stops every
Python thread, this one included, so a Python-level look would come too late. For that
case the watchdog keeps a faulthandler timer armed and re-arms it on every tick: as long
as the watchdog runs, the timer never fires; when the GIL is held too long, it fires and
dumps the stacks from C, without needing the GIL.
"""

from __future__ import annotations

import faulthandler
import os
import sys
import tempfile
import threading
from dataclasses import dataclass

from .stacks import Stack, capture_with_local_types, parse_faulthandler_dump
from .steps import StepClock
from .threadtime import ThreadUsage, now

MAX_SAMPLES_PER_SEGMENT = 12


@dataclass(frozen=True)
class PytestTimeout:
    """pytest's own `faulthandler_timeout`, which shares faulthandler's single timer."""

    deadline: float
    fd: int
    exit: bool


class DeadmanTimer:
    def __init__(self, after_s: float, pytest_timeout: PytestTimeout | None) -> None:
        self.after_s = after_s
        self._pytest_timeout = pytest_timeout
        # Lives as long as the timer that writes to it; closed in close().
        self._file = tempfile.TemporaryFile()  # noqa: SIM115
        self._armed_at: float | None = None
        self._read = 0
        self.active = True

    def rearm(self, at: float) -> None:
        if not self.active:
            return
        timeout = self.after_s
        if self._pytest_timeout is not None:
            remaining = self._pytest_timeout.deadline - at
            if remaining <= self.after_s:
                # pytest's timeout comes first: give the timer back to it for good.
                self.active = False
                self._hand_back()
                return
        faulthandler.dump_traceback_later(timeout, repeat=False, file=self._file, exit=False)
        self._armed_at = at

    def due(self, at: float) -> bool:
        return self.active and (self._armed_at is None or at - self._armed_at >= self.after_s / 3)

    def collect(self) -> list[tuple[float, str]]:
        """Dumps written since the last call, each with the moment it fired."""
        size = os.fstat(self._file.fileno()).st_size
        if size <= self._read or self._armed_at is None:
            return []
        text = os.pread(self._file.fileno(), size - self._read, self._read).decode(
            "utf-8", "replace"
        )
        self._read = size
        return [(self._armed_at + self.after_s, text)]

    def close(self) -> None:
        if self.active:
            faulthandler.cancel_dump_traceback_later()
            self._hand_back()
        self._file.close()

    def _hand_back(self) -> None:
        timeout = self._pytest_timeout
        if timeout is None:
            faulthandler.cancel_dump_traceback_later()
            return
        faulthandler.dump_traceback_later(
            max(timeout.deadline - now(), 0.001), file=timeout.fd, exit=timeout.exit
        )


class Watchdog:
    def __init__(
        self,
        clock: StepClock,
        usage: ThreadUsage,
        budget_s: float,
        pytest_timeout: PytestTimeout | None,
    ) -> None:
        self._clock = clock
        self._usage = usage
        self._tick_s = min(max(budget_s / 5, 0.002), 0.01)
        self._sample_after_s = budget_s / 2
        self._deadman = DeadmanTimer(max(budget_s * 0.6, 3 * self._tick_s + 0.005), pytest_timeout)
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="pytest-noblock-watchdog", daemon=True
        )
        self.dumps: list[tuple[float, Stack]] = []

    def start(self) -> None:
        self._usage.remember()
        self._deadman.rearm(now())
        self._thread.start()

    def stop(self) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        self._collect_dumps()
        self._deadman.close()

    def _run(self) -> None:
        while not self._stopping.wait(self._tick_s):
            self._tick()

    def _tick(self) -> None:
        at = now()
        self._collect_dumps()
        if self._deadman.due(at):
            self._deadman.rearm(at)
        self._usage.remember()
        segment = self._clock.current
        if segment is None or at - segment.start < self._sample_after_s:
            return
        if segment.usage_before is None:
            segment.usage_before = self._usage.before(segment.start)
        if len(segment.samples) >= MAX_SAMPLES_PER_SEGMENT:
            return
        frame = sys._current_frames().get(self._clock.thread_ident)
        if frame is not None and self._clock.current is segment:
            segment.samples.append(capture_with_local_types(frame))
        del frame

    def _collect_dumps(self) -> None:
        for fired_at, text in self._deadman.collect():
            stack = parse_faulthandler_dump(text).get(self._clock.thread_ident)
            if stack:
                self.dumps.append((fired_at, stack))
