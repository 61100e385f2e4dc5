"""`noblock_paused()`: a stretch of a watched test the user knows blocks, left unwatched.

Set-up work in a test (seeding a database with a sync driver, say) may hold the loop on
purpose. Inside the block the loop time belongs to a "paused" owner that is neither blamed
nor noted; requests sent from inside it are not tracked either. Outside a watched test it
does nothing, so a test keeps working with the plugin disabled.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from . import steps
from .origins import PAUSED, current_origin


@contextmanager
def noblock_paused() -> Iterator[None]:
    token = current_origin.set(PAUSED)
    # The step that is running now is cut here, so what came before stays watched.
    clock = steps.clocks.get(threading.get_ident())
    if clock is not None:
        clock.switch(PAUSED)
    try:
        yield
    finally:
        current_origin.reset(token)
        # Looked up again: the watch may have stopped inside the block.
        clock = steps.clocks.get(threading.get_ident())
        if clock is not None:
            clock.switch(current_origin.get())
