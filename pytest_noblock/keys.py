"""Where the hooks and the runner leave state for each other: the config's and the items' stash.

A module of its own, light to import: the hooks read these keys in every run, while the
runner (and everything it imports) is loaded only when a test is watched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .client import LifespanTransport
    from .reporting.gate import Gate
    from .settings import Settings

SETTINGS: pytest.StashKey[Settings] = pytest.StashKey()
DEFAULTS: pytest.StashKey[Settings] = pytest.StashKey()
TRANSPORTS: pytest.StashKey[list[LifespanTransport]] = pytest.StashKey()
CPU_ALARM: pytest.StashKey[bool] = pytest.StashKey()
FAILURE_TEXT: pytest.StashKey[str] = pytest.StashKey()
HEADLINE: pytest.StashKey[str] = pytest.StashKey()
NOTES: pytest.StashKey[list[str]] = pytest.StashKey()
GATE: pytest.StashKey[Gate] = pytest.StashKey()
RECORD: pytest.StashKey[dict[str, object]] = pytest.StashKey()
# Why a test asked to be watched was not (a loop the plugin cannot time, no loop at all).
UNWATCHED: pytest.StashKey[str] = pytest.StashKey()
REQUESTS_BEFORE: pytest.StashKey[int] = pytest.StashKey()
ALLOW_USED: pytest.StashKey[set[str]] = pytest.StashKey()
LIFESPAN_SITES_TOLD: pytest.StashKey[set[tuple[str, int] | None]] = pytest.StashKey()


def forget_attempt(item: pytest.Item) -> None:
    """Drop what an earlier attempt of this test left for the report hooks."""
    keys: tuple[pytest.StashKey[Any], ...] = (
        FAILURE_TEXT,
        HEADLINE,
        NOTES,
        RECORD,
        REQUESTS_BEFORE,
        UNWATCHED,
    )
    for key in keys:
        if key in item.stash:
            del item.stash[key]
