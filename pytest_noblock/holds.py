"""From raw segments and stack samples to holds: who held the loop, where, how long."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from .eager import eagerly_started_task
from .hints import Hint, hint_for
from .origins import Origin, Request
from .stacks import CallSite, FrameRecord, Stack, library_modules, locate_call
from .steps import Sample, Segment

_TRACKING_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tracking.py")
_STEPS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "steps.py")

# A hold whose thread spent at least this share of it on a CPU was computing, not waiting.
CPU_BOUND_SHARE = 0.7


@dataclass(frozen=True)
class Hold:
    origin: Origin | None
    held_s: float
    wall_s: float
    waiting_s: float
    collecting_s: float
    starting_threads_s: float
    cpu_bound: bool | None
    call_site: CallSite | None
    landed: FrameRecord | None
    app_frames: tuple[FrameRecord, ...]
    full_stack: Stack
    hint: Hint | None
    in_spawned_task: bool

    @property
    def blamed_on_app(self) -> bool:
        return self.origin is not None and self.origin.blamed

    @property
    def request(self) -> Request | None:
        return self.origin if isinstance(self.origin, Request) else None


def find_holds(segments: Sequence[Segment], budget_s: float) -> list[Hold]:
    holds = [
        _analyse(segment)
        for segment in segments
        if segment.held_s > budget_s and not (segment.origin and segment.origin.ignored)
    ]
    holds.sort(key=lambda hold: hold.held_s, reverse=True)
    return holds


def _analyse(segment: Segment) -> Hold:
    stack, spawned = _representative(segment.samples)
    app_frames = tuple(frame for frame in stack if not frame.is_library and not frame.is_plugin)
    call_site = None
    landed = None
    hint = None
    cpu_s = segment.cpu_s
    held = segment.held_s
    cpu_bound = None if cpu_s is None or held <= 0 else cpu_s / held >= CPU_BOUND_SHARE
    if stack:
        site_index = _site_index(stack)
        deeper = stack[site_index + 1 :]
        call_site = locate_call(stack[site_index], deeper[0] if deeper else None)
        if deeper and not deeper[-1].is_plugin:
            landed = deeper[-1]
        hint = hint_for(call_site.callee, library_modules(deeper), bool(cpu_bound))
    return Hold(
        origin=segment.origin,
        held_s=held,
        wall_s=segment.wall_s,
        waiting_s=segment.waiting_s,
        collecting_s=segment.collecting_s,
        starting_threads_s=segment.starting_threads_s,
        cpu_bound=cpu_bound,
        call_site=call_site,
        landed=landed,
        app_frames=app_frames,
        full_stack=stack,
        hint=hint,
        in_spawned_task=spawned,
    )


def _site_index(stack: Stack) -> int:
    """The deepest frame of the app's own code, or the deepest frame if there is none.

    A frame caught on its `def` line has only just been entered (a recursive CPU loop
    is mostly that): the line that called it says more.
    """
    app_indexes = [
        index for index, frame in enumerate(stack) if not frame.is_library and not frame.is_plugin
    ]
    if not app_indexes:
        return len(stack) - 1
    deepest = app_indexes[-1]
    if len(app_indexes) > 1 and _just_entered(stack[deepest]):
        return app_indexes[-2]
    return deepest


def _just_entered(frame: FrameRecord) -> bool:
    return frame.code is not None and frame.lineno == frame.code.co_firstlineno


def _representative(samples: Sequence[Sample]) -> tuple[Stack, bool]:
    """The owner's part of the stack at the call site where most of the time went."""
    sliced = [
        (*_own_part(sample.stack), 0.0 if _starting_a_thread(sample.stack) else sample.weight_s)
        for sample in samples
    ]
    sliced = [entry for entry in sliced if entry[0]]
    if not sliced:
        return (), False
    time_per_site: dict[tuple[str, int], float] = defaultdict(float)
    for part, _, weight in sliced:
        time_per_site[_site_key(part)] += weight
    heaviest = max(time_per_site, key=time_per_site.__getitem__)
    return next((part, spawned) for part, spawned, _ in sliced if _site_key(part) == heaviest)


def _starting_a_thread(stack: Stack) -> bool:
    """Inside `Thread.start`, whose wait is not counted as held (see `steps`)."""
    return any(
        frame.filename == _STEPS_FILE and frame.function == "_timed_thread_start" for frame in stack
    )


def _site_key(stack: Stack) -> tuple[str, int]:
    frame = stack[_site_index(stack)]
    return frame.filename, frame.lineno


def _own_part(stack: Stack) -> tuple[Stack, bool]:
    """Cut away the test, pytest and the loop: keep what runs inside the request or task.

    A task the request started eagerly runs on the request's stack: it is cut out too.
    """
    for marker in (_TRACKING_FILE, _STEPS_FILE):
        for index in range(len(stack) - 1, -1, -1):
            if stack[index].filename == marker:
                part = stack[index + 1 :]
                task = eagerly_started_task(part)
                return (task, True) if task else (part, marker == _STEPS_FILE)
    return stack, True
