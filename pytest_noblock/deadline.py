"""When the watchdog wakes: a deadline the loop pushes on as it steps, without waking it.

A Python thread that wakes while the loop computes must take the GIL from it: the loop lets
the GIL go at its next `select` and waits to get it back, 1 to 3 ms of its time per wake-up
on a two-core machine. A watchdog that woke every few milliseconds to find nothing wrong
cost a busy loop a quarter of its speed. So it sleeps until a segment could be worth a look:
the loop pushes the deadline on as segments start, and a loop that keeps stepping never
lets it come.

On Linux the deadline is a `timerfd`: the kernel moves it, and the watchdog, blocked in
`read` without the GIL, is not woken at all. Elsewhere the thread sleeps until the deadline
it last saw and, finding it moved, sleeps again: one wake-up per push, as often as a
watchdog that looks on a fixed beat.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from typing import Protocol

from . import platforms
from .threadtime import now


class Deadline(Protocol):
    def set(self, at: float) -> None:
        """Wake the waiter at `now()` time `at` (at once if that has passed); safe from any
        thread. The kernel timer is set without letting the GIL go: the loop's push and the
        watchdog's own setting cannot land in the other order than they were made."""

    def clear(self) -> None:
        """No wake-up until the next `set`."""

    def wait(self) -> None:
        """Block, without the GIL, until the deadline passes."""

    def close(self) -> None:
        """On the waiting thread, once it waits no more."""


class _SleepingDeadline:
    """A thread that sleeps until the deadline it read, and again if it moved meanwhile."""

    def __init__(self) -> None:
        self._due = math.inf
        # Set when the deadline comes earlier than the one the waiter sleeps towards.
        self._earlier = threading.Event()

    def set(self, at: float) -> None:
        earlier = at < self._due
        self._due = at
        if earlier:
            self._earlier.set()

    def clear(self) -> None:
        self._due = math.inf

    def wait(self) -> None:
        while True:
            left = self._due - now()
            if left <= 0:
                return
            self._earlier.wait(None if math.isinf(left) else left)
            self._earlier.clear()

    def close(self) -> None:
        pass


class _KernelDeadline:
    """A `timerfd` on CLOCK_MONOTONIC, `now()`'s clock, set through libc with the GIL held."""

    def __init__(self, libc: _Libc) -> None:
        self._libc = libc
        self._fd = libc.create()

    def set(self, at: float) -> None:
        # Never zero, which would disarm it: a past deadline expires at once.
        self._libc.set_absolute(self._fd, max(at, 1e-9))

    def clear(self) -> None:
        self._libc.set_absolute(self._fd, 0.0)

    def wait(self) -> None:
        os.read(self._fd, 8)

    def close(self) -> None:
        os.close(self._fd)


class _Libc:
    """`timerfd_create` and `timerfd_settime`, called through ctypes' `PyDLL`, which keeps
    the GIL: the loop and the watchdog both set the deadline, and a call made with the GIL
    let go could land after a later one from the other thread."""

    CLOCK_MONOTONIC = 1
    TFD_TIMER_ABSTIME = 1

    def __init__(self) -> None:
        import ctypes

        class Timespec(ctypes.Structure):
            _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]

        class Itimerspec(ctypes.Structure):
            _fields_ = [("it_interval", Timespec), ("it_value", Timespec)]

        libc = ctypes.PyDLL(None, use_errno=True)
        self._create = libc.timerfd_create
        self._create.argtypes = [ctypes.c_int, ctypes.c_int]
        self._create.restype = ctypes.c_int
        self._settime = libc.timerfd_settime
        self._settime.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(Itimerspec),
            ctypes.c_void_p,
        ]
        self._settime.restype = ctypes.c_int
        self._get_errno = ctypes.get_errno
        self._timespec = Timespec
        self._itimerspec = Itimerspec

    def create(self) -> int:
        fd: int = self._create(self.CLOCK_MONOTONIC, os.O_CLOEXEC)
        if fd < 0:
            error = self._get_errno()
            raise OSError(error, os.strerror(error))
        return fd

    def set_absolute(self, fd: int, at: float) -> None:
        seconds = int(at)
        value = self._timespec(seconds, int((at - seconds) * 1e9))
        # A closed descriptor, or one reused by a file that is not a timer, refuses the call
        # (EBADF, EINVAL) and is left as it was: a push racing the watch's end does no harm.
        setting = self._itimerspec(self._timespec(0, 0), value)
        self._settime(fd, self.TFD_TIMER_ABSTIME, setting, None)


_libc: _Libc | None = None
_libc_failed = False


def _kernel_libc() -> _Libc | None:
    """libc's timer calls, where the kernel has them and `now()` reads their clock."""
    global _libc, _libc_failed
    if _libc is None and not _libc_failed:
        implementation = time.get_clock_info("perf_counter").implementation
        try:
            if sys.platform != "linux" or "CLOCK_MONOTONIC" not in implementation:
                raise OSError("no timerfd on CLOCK_MONOTONIC")
            _libc = _Libc()
        except (ImportError, OSError, AttributeError):
            _libc_failed = True
    return _libc


def make() -> Deadline:
    """A kernel timer where there is one; otherwise a thread that sleeps until the deadline."""
    libc = _kernel_libc() if platforms.active.has(platforms.KERNEL_TIMER) else None
    if libc is not None:
        try:
            return _KernelDeadline(libc)
        except OSError:
            pass
    return _SleepingDeadline()
