"""The CPU-time alarm the watchdog keeps armed (see `watchdog`), and the session's hold on it.

A module of its own, light to import: every session decides at its start whether it may use
the alarm's signal, while the watchdog is loaded only when a test is watched.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

from . import platforms

# The profiling timer counts system time too: building a 200 MB string is mostly page
# faults, which a user-time alarm (`ITIMER_VIRTUAL`) never sees.
_ALARM = getattr(signal, "SIGPROF", None)


# How many pytest sessions in this process hold the alarm's signal (pytester runs nest),
# and what the signal's disposition was before the first of them.
_sessions_holding_alarm = 0
_disposition_before: object = None


def prepare_cpu_alarm() -> bool:
    """Called once per session, on the main thread: may the CPU-time alarm be used?

    Its signal is ignored between tests, so an alarm already on its way when a test ends
    cannot kill the process (the default action of SIGPROF). A signal nobody handles
    (default or ignored: ignored is inherited from a parent process, pytest running pytest
    for one) is free to use; someone else's handler means it is theirs: then we do without.
    """
    global _sessions_holding_alarm, _disposition_before
    if _ALARM is None or not platforms.active.has(platforms.CPU_ALARM):
        return False
    if threading.current_thread() is not threading.main_thread():
        return False
    try:
        handler = signal.getsignal(_ALARM)
        if handler not in (signal.SIG_DFL, signal.SIG_IGN):
            return False
        if _sessions_holding_alarm == 0:
            _disposition_before = handler
            signal.signal(_ALARM, signal.SIG_IGN)
    except (ValueError, OSError):
        return False
    _sessions_holding_alarm += 1
    return True


def release_cpu_alarm() -> None:
    global _sessions_holding_alarm
    _sessions_holding_alarm -= 1
    idle = _sessions_holding_alarm == 0 and _ALARM is not None
    if idle and signal.getsignal(_ALARM) is signal.SIG_IGN:  # type: ignore[arg-type]
        signal.signal(_ALARM, _disposition_before)  # type: ignore[arg-type]


class CpuAlarm:
    """Runs `on_alarm` on the main thread every `every_s` of the process's CPU time.

    Alarms that come due while a C call keeps the GIL are delivered as one, when it returns.
    """

    def __init__(self, every_s: float, on_alarm: Callable[[FrameType | None], None]) -> None:
        assert _ALARM is not None
        self._signal: int = _ALARM
        self.every_s = every_s
        signal.signal(self._signal, lambda signum, frame: on_alarm(frame))

    def arm(self) -> None:
        signal.setitimer(signal.ITIMER_PROF, self.every_s, self.every_s)

    def close(self) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(self._signal, signal.SIG_IGN)
