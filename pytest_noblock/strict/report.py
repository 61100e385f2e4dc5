"""Strict mode's failure text: each known blocking call, where the app made it, what instead."""

from __future__ import annotations

from collections.abc import Sequence

from ..hints import hint_for
from ..reporting.failure import advice_lines, call_lines, field_line
from ..stacks import display_path, library_modules, locate_call
from . import Finding


def _milliseconds(seconds: float) -> str:
    value = seconds * 1000
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"


SHOWN_FINDINGS = 10


def failure_text(findings: Sequence[Finding], rootdir: str, verbosity: int = 0) -> str:
    """The first line is what pytest's short summary shows."""
    first = findings[0]
    site = first.site
    where = f"{display_path(site.filename, rootdir)}:{site.lineno}"
    count = len(findings)
    lines = [
        f"noblock strict: {first.request.describe()} called {_called(first)} on the event loop "
        f"at {where}" + (f" (and {count - 1} more known blocking calls)" if count > 1 else ""),
        "  fast here against a local stand-in, it holds every request in production",
    ]
    shown = findings if verbosity >= 2 else findings[:SHOWN_FINDINGS]
    for finding in shown:
        lines.append("")
        lines.extend(_describe(finding, rootdir))
    if len(findings) > len(shown):
        lines.append("")
        lines.append(f"... and {len(findings) - len(shown)} more (-vv shows them all)")
    return "\n".join(lines)


def _called(finding: Finding) -> str:
    """`requests.api.get` says more than the `Session.request` it went through."""
    stack = finding.stack
    deeper = stack[finding.site_index + 1 :]
    callee = locate_call(finding.site, deeper[0] if deeper else None).callee
    family = finding.callee.split(" ")[0]
    if callee and callee != family and callee.startswith(family + "."):
        return callee
    return finding.callee


def _describe(finding: Finding, rootdir: str) -> list[str]:
    def add(label: str, text: str) -> None:
        lines.append(field_line(label, text))

    times = f"{finding.count} times" if finding.count > 1 else "once"
    lines = [f"{_called(finding)}: called {times}, longest {_milliseconds(finding.longest_s)}"]
    add("request", finding.request.describe())
    add("handler", finding.request.handler or "(not routed to an endpoint)")
    stack = finding.stack
    index = finding.site_index
    deeper = stack[index + 1 :]
    lines.extend(call_lines(locate_call(stack[index], deeper[0] if deeper else None), rootdir))
    if finding.landed is not None and finding.landed[0].is_library:
        landed, callee = finding.landed
        where = f"{display_path(landed.filename, rootdir)}:{landed.lineno} in {landed.function}"
        add("landed in", f"{where} ({callee})")
    hint = hint_for(finding.callee, library_modules(deeper), False)
    lines.extend(advice_lines(hint.in_words_of(finding.request.framework)))
    return lines
