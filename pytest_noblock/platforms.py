"""What this platform lets the plugin measure, and a switch to try the others on Linux.

Linux gives everything. macOS has no /proc/<pid>/task/<tid>/schedstat (the time the loop
thread waited for a CPU cannot be left out of a hold) and no per-thread CPU clock (Darwin
has no `pthread_getcpuclockid`: a hold cannot be told CPU work from waiting). Windows lacks
both, and `SIGPROF`/`setitimer` too (no CPU-time alarm: a C call that keeps the GIL for a
whole hold is measured, but the watchdog cannot see where).

A testing aid: `PYTEST_NOBLOCK_PLATFORM=macos` or `windows`, read once when a pytest session
starts, makes the plugin do without what that platform lacks, through the same code paths
it takes there. It does not change the interpreter: Windows' `socket.socketpair` is the
stdlib's `socket._fallback_socketpair` (3.13+), which a test puts in place itself.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Mapping

import pytest

SWITCH = "PYTEST_NOBLOCK_PLATFORM"

SCHEDSTAT = "schedstat"
THREAD_CPU_CLOCK = "thread CPU clock"
CPU_ALARM = "CPU-time alarm"
# Linux's timerfd: the watchdog sleeps while the loop steps (see `deadline`). Without it the
# watchdog wakes more often, which costs a busy loop time but changes no verdict.
KERNEL_TIMER = "kernel timer"

# What each simulated platform lacks, and its name in the note.
_SIMULATED = {
    "macos": ("macOS", frozenset({SCHEDSTAT, THREAD_CPU_CLOCK, KERNEL_TIMER})),
    "windows": ("Windows", frozenset({SCHEDSTAT, THREAD_CPU_CLOCK, CPU_ALARM, KERNEL_TIMER})),
}
_NAMES = {"darwin": "macOS", "win32": "Windows", "linux": "Linux"}

# What the note says each missing feature costs, in the order it says it.
_CONSEQUENCES = (
    (SCHEDSTAT, "holds include time the loop thread waited for a CPU (no /proc/.../schedstat)"),
    (THREAD_CPU_CLOCK, "CPU work is not told from waiting (no per-thread CPU clock)"),
    (
        CPU_ALARM,
        'C calls that keep the GIL are not sampled (no SIGPROF): such a hold may say "not caught"',
    ),
)


class Platform:
    """The machine a session runs on, or the one it simulates, and what it lacks.

    A plain class: this module is imported by every pytest run, and a dataclass costs a
    run that watches nothing half a millisecond to build.
    """

    __slots__ = ("lacks", "name", "simulated")

    def __init__(self, name: str, *, simulated: bool, lacks: frozenset[str]) -> None:
        self.name = name
        self.simulated = simulated
        self.lacks = lacks

    def has(self, feature: str) -> bool:
        return feature not in self.lacks

    def note(self) -> str | None:
        """One line on what the plugin cannot subtract or sample here; None on Linux."""
        costs = [text for feature, text in _CONSEQUENCES if feature in self.lacks]
        if not costs:
            return None
        where = f"{self.name} (simulated)" if self.simulated else self.name
        return f"noblock: on {where} {'; '.join(costs)}"


def _missing_here() -> frozenset[str]:
    missing = set()
    if not os.path.exists(f"/proc/self/task/{threading.get_native_id()}/schedstat"):
        missing.add(SCHEDSTAT)
    if not hasattr(time, "pthread_getcpuclockid"):
        missing.add(THREAD_CPU_CLOCK)
    if not hasattr(signal, "SIGPROF") or not hasattr(signal, "setitimer"):
        missing.add(CPU_ALARM)
    if sys.platform != "linux":
        missing.add(KERNEL_TIMER)
    return frozenset(missing)


def detect(environ: Mapping[str, str]) -> Platform:
    """This machine's platform, or the one the switch asks for; a bad value is a usage error."""
    wanted = environ.get(SWITCH, "")
    if not wanted:
        name = _NAMES.get(sys.platform, sys.platform)
        return Platform(name, simulated=False, lacks=_missing_here())
    if wanted not in _SIMULATED:
        raise pytest.UsageError(
            f"noblock: {SWITCH}={wanted} is not one of: {', '.join(sorted(_SIMULATED))}"
        )
    name, lacks = _SIMULATED[wanted]
    return Platform(name, simulated=True, lacks=lacks | _missing_here())


active = detect({})
"""The platform of the running session: set when it starts (`enter`), put back when it ends."""


def enter(environ: Mapping[str, str]) -> Platform:
    """Read the switch for a session starting; returns the platform to put back after it."""
    global active
    before, active = active, detect(environ)
    return before


def leave(before: Platform) -> None:
    global active
    active = before
