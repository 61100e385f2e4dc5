"""Holds as plain data: the per-test record that travels to the JSON report and the summary.

A record is made of dicts, lists, strings and numbers only, so it can ride on the test
report from a pytest-xdist worker to the controller (xdist serialises report attributes)
and be written as JSON unchanged. Like the terminal report, it holds code, names, paths
and line numbers, never a variable's value.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..holds import Hold
from ..origins import LIFESPAN, TEST_CODE
from ..settings import Settings
from ..stacks import CallSite, FrameRecord, display_path, locate_call
from ..strict import Finding
from .baseline import Record


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _frame(frame: FrameRecord, rootdir: str) -> Record:
    return {
        "file": display_path(frame.filename, rootdir),
        "line": frame.lineno,
        "function": frame.function,
    }


def _site(site: CallSite, rootdir: str) -> Record:
    return {
        "file": display_path(site.filename, rootdir),
        "line": site.lineno,
        "function": site.function,
        "source": site.source,
        "callee": site.callee,
    }


def _origin_kind(hold: Hold) -> str:
    if hold.request is not None:
        return "request"
    if hold.origin is TEST_CODE:
        return "test code"
    if hold.origin is LIFESPAN:
        return "lifespan"
    return "unknown"


def hold_record(hold: Hold, rootdir: str, *, failing: bool, baselined: bool = False) -> Record:
    site = hold.call_site
    request = hold.request
    hint = hold.hint
    return {
        "held_ms": _ms(hold.held_s),
        "wall_ms": _ms(hold.wall_s),
        "young_gc_ms": _ms(hold.young_collecting_s),
        "origin": _origin_kind(hold),
        "who": hold.origin.describe() if hold.origin is not None else "code outside the test",
        "blamed": hold.blamed_on_app,
        "failing": failing,
        "baselined": baselined,
        "request": request.describe() if request is not None else None,
        "handler": request.handler if request is not None else None,
        "in_spawned_task": hold.in_spawned_task,
        "in_worker_thread": hold.in_worker_thread,
        "call_site": None if site is None else _site(site, rootdir),
        "landed": _frame(hold.landed, rootdir) if hold.landed is not None else None,
        "app_stack": [_frame(frame, rootdir) for frame in hold.app_frames],
        "hint": None if hint is None else {"why": hint.what, "instead": hint.instead},
        "phase": hold.phase,
        "warm_up": hold.warm_up,
    }


def strict_record(finding: Finding, rootdir: str) -> Record:
    """A known blocking call strict mode found, however fast it was."""
    deeper = finding.stack[finding.site_index + 1 :]
    site = locate_call(finding.site, deeper[0] if deeper else None)
    return {
        "callee": finding.callee,
        "count": finding.count,
        "longest_ms": _ms(finding.longest_s),
        "request": finding.request.describe(),
        "handler": finding.request.handler,
        "call_site": _site(site, rootdir),
    }


def make_record(
    nodeid: str,
    settings: Settings,
    holds: Sequence[Record],
    notes: Sequence[str],
    steps: int,
    requests: int,
    strict_findings: Sequence[Record] = (),
) -> Record:
    if strict_findings or any(hold["failing"] and not hold["baselined"] for hold in holds):
        verdict = "failed"
    elif any(hold["baselined"] for hold in holds):
        verdict = "baselined"
    else:
        verdict = "clean"
    return {
        "nodeid": nodeid,
        "verdict": verdict,
        "outcome": None,
        "budget_ms": settings.budget_ms,
        "count_test_code": settings.count_test_code,
        "count_lifespan": settings.count_lifespan,
        "count_warmup": settings.count_warmup,
        "steps": steps,
        "requests": requests,
        "holds": list(holds),
        "strict_findings": list(strict_findings),
        "notes": list(notes),
    }
