"""Tasks started eagerly, whose first step runs on the stack of the code that started them.

Under `asyncio.eager_task_factory` (3.12+), or `create_task(..., eager_start=True)` (3.14+),
a new task runs up to its first suspension before `create_task` returns: inside the step,
and on the stack, of the handler that created it. Every way to start a task on a loop ends
in the loop's `create_task` (or, where that is not Python, a loop adapter's task factory:
`adapters.task_starts`), so what lies deeper than that frame is the new task's own.
"""

from __future__ import annotations

from .adapters import task_starts
from .stacks import Stack


def eagerly_started_task(part: Stack) -> Stack | None:
    """The frames of the task started eagerly within `part` (the innermost), or None."""
    starts = task_starts()
    for index in range(len(part) - 1, -1, -1):
        frame = part[index]
        if (frame.module, frame.function) in starts:
            # Caught inside `create_task` itself (a task factory at work): no task runs yet.
            return part[index + 1 :] or None
    return None
