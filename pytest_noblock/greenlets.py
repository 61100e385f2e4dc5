"""Stacks that cross into a greenlet: how SQLAlchemy's asyncio layer runs its ORM.

`await session.execute(...)` switches to a greenlet that runs SQLAlchemy's synchronous
code (compiling the query, configuring the mappers, building an object per row) and
switches back at each database wait. A frame in that greenlet has no caller beyond the
greenlet's first function: a sample taken there lost the app's line that awaited it and
the request it served, and a hold of loading 40,000 rows was reported at whichever ORM
line the samples fell on, as if in a task of its own.

Meanwhile the greenlet the loop runs in waits, suspended in the frame that switched
(`greenlet_spawn`); its frames are the rest of the stack. The loop's greenlet is noted
when a watch starts, only when the app has imported greenlet already.
"""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any

# The greenlet each watched loop runs in, by its thread's ident.
_loop_greenlets: dict[int, Any] = {}


def watch(thread_ident: int) -> None:
    """On the loop's thread, as its watch starts."""
    module = sys.modules.get("greenlet")
    getcurrent = getattr(module, "getcurrent", None)
    if getcurrent is not None:
        _loop_greenlets[thread_ident] = getcurrent()


def unwatch(thread_ident: int) -> None:
    _loop_greenlets.pop(thread_ident, None)


def waiting_frame(thread_ident: int | None) -> FrameType | None:
    """Where the loop's greenlet waits while another one of its thread runs, else None.

    Read from any thread: a greenlet that runs has no frame to give, so a loop back in its
    own greenlet between two reads gives None rather than a wrong stack.
    """
    if thread_ident is None:
        return None
    loop_greenlet = _loop_greenlets.get(thread_ident)
    if loop_greenlet is None:
        return None
    frame: FrameType | None = getattr(loop_greenlet, "gr_frame", None)
    return frame
