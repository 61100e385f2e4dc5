"""pytest-noblock: fail a test when an async handler holds the event loop, and name the call.

Everything a user needs comes through pytest: the `noblock` marker, the `noblock_app` and
`noblock_client` fixtures and the `noblock_*` options, plus `noblock_paused()` to leave a
stretch of a test unwatched. The modules here are the plugin's inside.
"""

from .paused import noblock_paused

__all__ = ["noblock_paused"]
