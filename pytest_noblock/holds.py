"""From raw segments and stack samples to holds: who held the loop, where, how long."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from . import warmup
from .adapters import NO_FRAMEWORK
from .hints import KEPT_THE_GIL, Hint, hint_for, is_generic
from .origins import Origin, Request
from .phases import find_phase
from .sites import Site, choose
from .stacks import (
    CallSite,
    FrameRecord,
    FrameRule,
    Stack,
    first_match,
    library_modules,
    locate_call,
)
from .steps import Segment

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
    # What the framework was doing, when the hold ran none of the app's own lines.
    phase: str | None = None
    # The one-time work a route's first request did on this app (see `warmup`).
    warm_up: str | None = None
    # Young-generation collections the hold's own allocations set off: counted in it.
    young_collecting_s: float = 0.0
    # A worker thread kept the GIL (see `gil`): the loop could not run.
    in_worker_thread: bool = False
    # Time the loop waited for the GIL a worker kept: that worker's hold, not this one.
    waiting_for_workers_s: float = 0.0

    @property
    def blamed_on_app(self) -> bool:
        return self.origin is not None and self.origin.blamed

    @property
    def request(self) -> Request | None:
        return self.origin if isinstance(self.origin, Request) else None


def find_holds(segments: Sequence[Segment], budget_s: float) -> list[Hold]:
    holds = [
        _analyse(segment, budget_s)
        for segment in segments
        if segment.held_s > budget_s and not (segment.origin and segment.origin.ignored)
    ]
    holds.sort(key=lambda hold: hold.held_s, reverse=True)
    return holds


def _analyse(segment: Segment, budget_s: float) -> Hold:
    origin = segment.origin
    frameworks = origin.frameworks if isinstance(origin, Request) else frozenset()
    site = choose(segment.samples, frameworks)
    call_site = None
    landed = None
    hint = None
    cpu_s = segment.cpu_s
    held = segment.held_s
    cpu_bound = None if cpu_s is None or held <= 0 else cpu_s / held >= CPU_BOUND_SHARE
    stack: Stack = ()
    phase = warm_up = None
    if site is not None:
        stack = site.stack
        found = find_phase(stack) if site.frame.is_library else None
        phase = found[1] if found is not None else None
        deeper = site.deeper
        call_site = locate_call(site.frame, deeper[0] if deeper else None)
        # Where the call ended up inside libraries; an app frame there (a comprehension's
        # own frame on 3.11, on the very line shown) is in the app stack already. Code made
        # with exec ("<string>": SQLAlchemy's attribute setters) has no file to open: the
        # frame that called it is named instead.
        real = [frame for frame in deeper if frame.filename != "<string>"]
        if real and real[-1].is_library:
            landed = real[-1]
        hint = (
            KEPT_THE_GIL
            if segment.in_worker_thread
            else _hint(site, call_site.callee, bool(cpu_bound)).in_words_of(
                origin.framework if isinstance(origin, Request) else NO_FRAMEWORK
            )
        )
        if isinstance(origin, Request):
            warmed = warmup.classify(site.weighed, held, budget_s)
            # Concurrent first requests are all first; later ones only once per work.
            first = warmed is not None and warmup.first_time(origin, warmed.work, warmed.made)
            if warmed is not None and (first or origin.first_on_route):
                warm_up = warmed.work
    return Hold(
        origin=origin,
        held_s=held,
        wall_s=segment.wall_s,
        waiting_s=segment.waiting_s,
        collecting_s=segment.collecting_s,
        starting_threads_s=segment.starting_threads_s,
        cpu_bound=cpu_bound,
        call_site=call_site,
        landed=landed,
        app_frames=tuple(frame for frame in stack if not frame.is_library),
        full_stack=stack,
        hint=hint,
        # Only a request spawns tasks the report tells apart; the test's own code and the
        # lifespan run in tasks of their own from the start.
        in_spawned_task=(
            site is not None
            and site.in_spawned_task
            and isinstance(origin, Request)
            and not segment.in_worker_thread
            and not _framework_task(site.stack, origin.framework.request_tasks)
        ),
        in_worker_thread=segment.in_worker_thread,
        waiting_for_workers_s=segment.waiting_for_workers_s,
        phase=phase,
        warm_up=warm_up,
        young_collecting_s=segment.young_collecting_s,
    )


def _framework_task(stack: Stack, request_tasks: Sequence[FrameRule]) -> bool:
    """Is the task `stack` runs in one the framework runs the request in?"""
    # The task's coroutine is the first frame below the loop's own.
    task = next((frame for frame in stack if not (frame.module or "").startswith("asyncio.")), None)
    return task is not None and first_match((task,), request_tasks) is not None


def _hint(site: Site, callee: str | None, cpu_bound: bool) -> Hint:
    """The advice most of the time beneath the site calls for.

    A C call that keeps the GIL (loading certificates into an SSL context) starves the
    watchdog, so the samples that show it are few: each sample's libraries vote with its
    weight, and advice that names the job wins over the generic kind.
    """
    votes: dict[Hint, float] = {}
    for deeper, weight in site.beneath or ((site.deeper, 1.0),):
        # The import system above a module's top-level code says as much as what it ran.
        frames = (*site.above, *deeper)
        # Modules, and the functions in them: building a client is told by its `__init__`.
        names = [
            *library_modules(frames),
            *(f"{f.module}.{f.function}" for f in frames if f.module),
        ]
        hint = hint_for(callee, names, cpu_bound)
        votes[hint] = votes.get(hint, 0.0) + weight
    specific = {hint: weight for hint, weight in votes.items() if not is_generic(hint)}
    chosen = specific or votes
    return max(chosen, key=chosen.__getitem__)
