"""The step clock on trio: its instrument API marks where every task step starts and ends.

trio runs each task step (from one checkpoint to the next) without giving control back,
like an asyncio callback, and tells instruments about each one: `before_task_step` and
`after_task_step` are the boundaries `Handle._run` gives on asyncio. The owner of a step
is read from the task's context, which trio, like asyncio, copies into the tasks a
request spawns.

anyio's pytest plugin runs trio as a guest of a plain loop on the test's thread: between
steps that thread sits in `queue.get` waiting for trio's I/O thread, outside any step, so
idle time is never a hold. The instrument lives only in the test's own trio run, added
from inside it when the test body starts and removed when it ends.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from typing import Any

from ..steps import StepClock


def running() -> bool:
    """Is the current thread inside a trio run? Never imports trio for the user."""
    trio = sys.modules.get("trio")
    if trio is None:
        return False
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return False
    return True


def attach(clock: StepClock) -> Callable[[], None]:
    """Time every task step of the current trio run on `clock`; returns the undo."""
    import trio

    from ..origins import current_origin

    class StepInstrument(trio.abc.Instrument):
        def before_task_step(self, task: Any) -> None:
            clock.open(task.context.get(current_origin))

        def after_task_step(self, task: Any) -> None:
            clock.close()

    instrument = StepInstrument()
    trio.lowlevel.add_instrument(instrument)

    def detach() -> None:
        # Outside the run (clean-up after an error) the instrument died with the run.
        with contextlib.suppress(RuntimeError, KeyError):
            trio.lowlevel.remove_instrument(instrument)

    return detach
