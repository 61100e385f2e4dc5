"""What a hold is known by in a baseline file: stays put when lines move.

A module of its own, light to import: the CI gate loads a baseline when a session starts,
while the records (and the machinery that makes them) are loaded only when a test is
watched.
"""

from __future__ import annotations

from typing import Any

Record = dict[str, Any]
BaselineKey = tuple[str | None, str | None, str | None]
"""(call site function, call site source line, handler): stays put when lines move."""


def baseline_key(hold: Record) -> BaselineKey:
    site = hold.get("call_site") or {}
    return (site.get("function"), site.get("source"), hold.get("handler"))


def entry_key(entry: Record) -> BaselineKey:
    """The key of a baseline file's entry (see `gate`), matched against `baseline_key`."""
    return (entry.get("function"), entry.get("source"), entry.get("handler"))
