"""Writing reports: what a tired user reads when a test fails on a hold.

Only code, names, paths and line numbers are printed, never a variable's value.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..hints import Hint
from ..holds import Hold
from ..origins import LIFESPAN, Request
from ..stacks import CallSite, FrameRecord, display_path
from .units import milliseconds

SHOWN_HOLDS = 3
SHOWN_APP_FRAMES = 6


def _where(frame: FrameRecord, rootdir: str) -> str:
    return f"{display_path(frame.filename, rootdir)}:{frame.lineno} in {frame.function}"


def headline(hold: Hold, budget_s: float, rootdir: str) -> str:
    who = hold.origin.describe() if hold.origin is not None else "code outside the test"
    line = f"{who} held the event loop for {milliseconds(hold.held_s)}"
    if hold.call_site is not None:
        site = hold.call_site
        line += f" at {display_path(site.filename, rootdir)}:{site.lineno}"
    return f"{line} (budget {milliseconds(budget_s)})"


LABEL_WIDTH = 10


def field_line(label: str, text: str) -> str:
    return f"  {label:<{LABEL_WIDTH}}{text}"


def call_lines(site: CallSite, rootdir: str) -> list[str]:
    """The `call` field: where it is, then its source line with the call underlined."""
    where = f"{display_path(site.filename, rootdir)}:{site.lineno} in {site.function}"
    indent = " " * (2 + LABEL_WIDTH + 4)
    lines = [field_line("call", where), indent + site.source]
    underline = site.underline()
    if underline:
        lines.append(indent + underline)
    return lines


def advice_lines(hint: Hint, *, in_a_thread: bool = False) -> list[str]:
    lines = [field_line("why", hint.what), field_line("instead", hint.instead)]
    if not in_a_thread and hint.also:
        lines.append(field_line("", hint.also))
    return lines


def describe_hold(
    hold: Hold, budget_s: float, rootdir: str, verbosity: int, *, with_headline: bool = True
) -> list[str]:
    lines = [headline(hold, budget_s, rootdir)] if with_headline else []

    def field(label: str, text: str) -> None:
        lines.append(field_line(label, text))

    request = hold.request
    if request is not None:
        handler = request.handler or "(not routed to an endpoint)"
        if hold.in_spawned_task:
            handler += "  (in a task the request started)"
        elif hold.in_worker_thread:
            handler += "  (in a worker thread, keeping the GIL)"
        field("handler", handler)
    site = hold.call_site
    if site is None:
        field("call", "not caught: the hold ended before the watchdog could look")
    else:
        lines.extend(call_lines(site, rootdir))
    if hold.phase is not None:
        field("phase", f"{hold.phase}: no line of the app's own code was running")
    if hold.landed is not None:
        field("landed in", _where(hold.landed, rootdir))
    frames: Sequence[FrameRecord] = (
        [frame for frame in hold.full_stack if not frame.is_plugin]
        if verbosity >= 2
        else hold.app_frames
    )
    if len(frames) > 1 or verbosity >= 2:
        shown = frames if verbosity >= 2 else frames[-SHOWN_APP_FRAMES:]
        label = "stack" if verbosity >= 2 else "app stack"
        for index, frame in enumerate(shown):
            field(label if index == 0 else "", _where(frame, rootdir))
    not_counted = [
        f"{milliseconds(seconds)} {what}"
        for seconds, what in (
            (hold.waiting_s, "waiting for a CPU"),
            (hold.collecting_s, "in full garbage collections of the whole heap"),
            (hold.starting_threads_s, "waiting for new threads to start"),
            (hold.waiting_for_workers_s, "waiting for the GIL a worker thread kept"),
        )
        if seconds >= 0.001
    ]
    timing = []
    if hold.young_collecting_s >= 0.001:
        timing.append(
            f"including {milliseconds(hold.young_collecting_s)} of garbage collection "
            "its own allocations set off"
        )
    if not_counted:
        timing.append(f"not counting {' and '.join(not_counted)}")
    if timing:
        field("timing", f"{milliseconds(hold.wall_s)} wall, {'; '.join(timing)}")
    if hold.hint:
        lines.extend(advice_lines(hold.hint, in_a_thread=hold.in_worker_thread))
    return lines


def failure_text(holds: Sequence[Hold], budget_s: float, rootdir: str, verbosity: int) -> str:
    """The failure message: its first line is what pytest's short summary shows."""
    worst = holds[0]
    if len(holds) == 1:
        first = f"noblock: {headline(worst, budget_s, rootdir)}"
    else:
        first = (
            f"noblock: {len(holds)} holds of the event loop over the "
            f"{milliseconds(budget_s)} budget; worst: {headline(worst, budget_s, rootdir)}"
        )
    shown = holds if verbosity >= 2 else holds[:SHOWN_HOLDS]
    lines = [first]
    for hold in shown:
        if len(holds) > 1:
            lines.append("")
        lines.extend(
            describe_hold(hold, budget_s, rootdir, verbosity, with_headline=len(holds) > 1)
        )
    if len(holds) > len(shown):
        lines.append("")
        lines.append(f"... and {len(holds) - len(shown)} more holds (-vv shows them all)")
    return "\n".join(lines)


def note_for(hold: Hold, budget_s: float, rootdir: str) -> str:
    """A hold that is not the app's fault: told, not failed."""
    if hold.warm_up is not None:
        first = isinstance(hold.origin, Request) and hold.origin.first_on_route
        when = (
            "on this app's first request to the route"
            if first
            else "the first time this app's route did it"
        )
        return (
            f"warm-up: {headline(hold, budget_s, rootdir)}: {hold.warm_up}, {when}; "
            "not counted (count it with @pytest.mark.noblock(count_warmup=True))"
        )
    option = "count_lifespan" if hold.origin is LIFESPAN else "count_test_code"
    return (
        f"{headline(hold, budget_s, rootdir)}; not counted against the app "
        f"(count it with @pytest.mark.noblock({option}=True))"
    )
