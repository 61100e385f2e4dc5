"""Choosing where a hold is said to be: one line the user can act on, the same on every run.

The watchdog's samples of a long segment are weighed by the time each stands for, and a
line holds the time of every sample taken beneath it. So the site is found by walking
down from the request's edge: at each level the heaviest line is followed while it holds
most of the time of the line above; where the time spreads over many lines (forty
templates rendered, then a gzip pass), the walk stops at the line that led into all of
them, instead of letting one hot leaf outvote the rest.

Only the app's own frames are walked. A sample with none (the framework validating a
request, serializing a response, building the OpenAPI document) is walked along the
frames of the framework serving the request, down to the line that entered a phase the
`phases` table knows: the line a user reads is then the framework's, found the same way
on every run, never the deepest library line of one sample, which moves from one sample
(and one run) to the next.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from .eager import eagerly_started_task
from .phases import find_phase
from .stacks import STEPS_FILE, TRACKING_FILE, FrameRecord, Stack, as_the_app_made_it
from .steps import Sample

# Below the first level, a line is followed only while it holds more than this share of
# the time of the line above it.
MOST = 0.5
# Samples with an app frame are walked on their own when they hold at least this share of
# the hold. A request whose time splits between the app's loop and the framework
# serializing its response was named at whichever part came out heavier in this run, and
# a baseline of unchanged code broke; the app's code is also what the user can change.
APP_SHARE = 1 / 4


@dataclass(frozen=True)
class Site:
    """The sample that stands for a hold, and the frame of it the hold is reported at."""

    stack: Stack
    index: int
    in_spawned_task: bool
    # Samples the site was chosen from, with their weights: what the time was spent in.
    weighed: tuple[tuple[Stack, float], ...]
    # What the samples taken beneath the site ran below it, with their weights: where the
    # site's call went, told by all of them rather than by one.
    beneath: tuple[tuple[Stack, float], ...] = ()
    # The library frames the app's code went through to reach the site (the import
    # system, for a module's top-level code).
    above: Stack = ()

    @property
    def frame(self) -> FrameRecord:
        return self.stack[self.index]

    @property
    def deeper(self) -> Stack:
        return self.stack[self.index + 1 :]


@dataclass(frozen=True)
class _Walked:
    stack: Stack
    spawned: bool
    weight: float
    # Indexes into `stack` of the frames the walk follows, outermost first.
    path: tuple[int, ...]

    def key(self, depth: int) -> tuple[str, int]:
        frame = self.stack[self.path[depth]]
        return frame.filename, frame.lineno


def choose(samples: Sequence[Sample], frameworks: Collection[str]) -> Site | None:
    """The site of a hold from its samples; `frameworks` are the packages serving it."""
    walked = []
    for sample in samples:
        part, spawned = own_part(sample.stack)
        part = as_the_app_made_it(part)
        if part:
            weight = 0.0 if _starting_a_thread(sample.stack) else sample.weight_s
            walked.append(_Walked(part, spawned, weight, _path(part, frameworks)))
    if not walked:
        return None
    group, depth = _walk(_app_first(walked))
    # The heaviest sample that shows where the site's call went, if any does: a sample
    # caught on the site's own line (between two calls) says less about it.
    deeper = [entry for entry in group if depth and entry.path[depth - 1] < len(entry.stack) - 1]
    chosen = max(deeper or group, key=lambda entry: entry.weight)
    # No sample had a frame to follow (library code outside any known framework): the
    # deepest frame is all there is.
    index = chosen.path[depth - 1] if depth else len(chosen.stack) - 1
    weighed = tuple((entry.stack, entry.weight) for entry in walked)
    beneath = tuple(
        (entry.stack[entry.path[depth - 1] + 1 :], entry.weight) for entry in group if depth
    )
    previous = chosen.path[depth - 2] if depth >= 2 else -1
    above = tuple(frame for frame in chosen.stack[previous + 1 : index] if frame.is_library)
    return Site(chosen.stack, index, chosen.spawned, weighed, beneath, above)


def _app_first(walked: list[_Walked]) -> list[_Walked]:
    """The samples that ran the app's own code, if they hold a good share of the time."""
    own = [entry for entry in walked if any(not frame.is_library for frame in entry.stack)]
    total = sum(entry.weight for entry in walked)
    if own and sum(entry.weight for entry in own) >= total * APP_SHARE:
        return own
    return walked


def _walk(walked: list[_Walked]) -> tuple[list[_Walked], int]:
    """Down the heaviest line while it holds most of the time; returns the group and depth."""
    group = walked
    depth = 0
    while True:
        children: dict[tuple[str, int], list[_Walked]] = defaultdict(list)
        for entry in group:
            if len(entry.path) > depth:
                children[entry.key(depth)].append(entry)
        if not children:
            return group, depth
        total = sum(entry.weight for entry in group)
        heaviest = max(children.values(), key=lambda members: sum(e.weight for e in members))
        # The first level is the request's own entry point: the heaviest one always wins.
        if depth and sum(entry.weight for entry in heaviest) <= total * MOST:
            return group, depth
        group = heaviest
        depth += 1


def _path(stack: Stack, frameworks: Collection[str]) -> tuple[int, ...]:
    app = [index for index, frame in enumerate(stack) if not frame.is_library]
    if app:
        # A frame caught on its `def` line has only just been entered (a recursive CPU
        # loop is mostly that): the line that called it says more.
        if len(app) > 1 and _just_entered(stack[app[-1]]):
            app.pop()
        return tuple(app)
    # Inside a phase, what the time goes to depends on the data (validating a response
    # or dumping it): the line that entered the phase stays put.
    phase = find_phase(stack)
    end = phase[0] if phase is not None else len(stack)
    return tuple(
        index for index, frame in enumerate(stack[:end]) if top_package(frame) in frameworks
    )


def top_package(frame: FrameRecord) -> str:
    return (frame.module or "").partition(".")[0]


def _just_entered(frame: FrameRecord) -> bool:
    return frame.code is not None and frame.lineno == frame.code.co_firstlineno


def _starting_a_thread(stack: Stack) -> bool:
    """Inside `Thread.start`, whose wait is not counted as held (see `steps`)."""
    return any(
        frame.filename == STEPS_FILE and frame.function == "_timed_thread_start" for frame in stack
    )


def own_part(stack: Stack) -> tuple[Stack, bool]:
    """Cut away the test, pytest and the loop: keep what runs inside the request or task.

    Returns the part and whether it runs in a task of its own (no request edge above it).
    A task the request started eagerly runs on the request's stack: it is cut out too.
    """
    for marker in (TRACKING_FILE, STEPS_FILE):
        for index in range(len(stack) - 1, -1, -1):
            if stack[index].filename == marker:
                part = stack[index + 1 :]
                task = eagerly_started_task(part)
                return (task, True) if task else (part, marker == STEPS_FILE)
    return stack, True
