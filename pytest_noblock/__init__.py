"""pytest-noblock: fail a test when an async handler holds the event loop, and name the call.

Everything a user needs comes through pytest: the `noblock` marker, the `noblock_app` and
`noblock_client` fixtures and the `noblock_*` options, plus `noblock_paused()` to leave a
stretch of a test unwatched. The modules here are the plugin's inside.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .paused import noblock_paused

__all__ = ["noblock_paused"]


def __getattr__(name: str) -> Any:
    # Imported on first use: `pytest_noblock.plugin` is loaded by every pytest run, and
    # `paused` brings in the step clock (asyncio's internals among it).
    if name == "noblock_paused":
        from .paused import noblock_paused

        return noblock_paused
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
