"""The wrapper strict mode puts around a known blocking call, and the log that undoes it.

Why wrappers and not a profiler: `sys.setprofile` calls back on every Python call and
costs the app several times its speed; on 3.11 `time.sleep` raises no audit event, and
audit hooks can never be removed. A wrapper costs nothing until it is called, and then
one identity check on other threads; everything is put back when the test body ends.

The wrapped call still runs and returns (or raises) exactly as before: the app's
behaviour does not change, a broad `except` cannot hide a finding.
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from ..patching import Swap
from . import Recorder

Blocks = Callable[[tuple[Any, ...], dict[str, Any]], bool]
"""Whether this call, with these arguments, can wait (a lock taken with `blocking=False` cannot)."""


def always(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    return True


_active: Recorder | None = None


def activate(recorder: Recorder, *, this_thread: bool = True) -> None:
    """Calls on this thread (unless `this_thread` is false: a sync test's own thread runs
    no loop) and on the portal loops that start recording (`record_here_too`) are recorded
    from now on, until `uninstall`."""
    global _active
    if this_thread:
        recorder.idents.add(threading.get_ident())
    _active = recorder


def record_here_too() -> Callable[[], None]:
    """Another loop thread of the test (a portal's) is recorded too; returns the undo,
    called before the thread ends: a later thread may get its ident."""
    recorder = _active
    if recorder is None:
        return lambda: None
    ident = threading.get_ident()
    recorder.idents.add(ident)
    return lambda: recorder.idents.discard(ident)


def recording_here() -> bool:
    return _active is not None and threading.get_ident() in _active.idents


def wrap(callee: str, original: Callable[..., Any], blocks: Blocks) -> Callable[..., Any]:
    get_ident = threading.get_ident
    getframe = sys._getframe

    @functools.wraps(original)
    def strict_wrapper(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True  # tracebacks show the app, not the plugin
        recorder = _active
        if recorder is None or get_ident() not in recorder.idents:
            return original(*args, **kwargs)
        try:
            blocking = blocks(args, kwargs)
        except Exception:  # odd arguments: the call itself will say what is wrong
            blocking = False
        if not blocking:
            return original(*args, **kwargs)
        return recorder.call(callee, original, args, kwargs, getframe(1))

    return strict_wrapper


_patches: list[Swap] = []


def set_attribute(owner: Any, name: str, original: object, wrapper: object) -> None:
    """`owner.name = wrapper` (a module or a class) until `uninstall`."""
    owned = isinstance(owner, ModuleType) or name in vars(owner)
    setattr(owner, name, wrapper)
    _patches.append(Swap(owner, name, original, wrapper, owned))


def set_item(namespace: dict[str, Any], name: str, original: object, wrapper: object) -> None:
    """`namespace[name] = wrapper` (module globals, an object's `__dict__`) until `uninstall`."""
    namespace[name] = wrapper
    _patches.append(Swap(namespace, name, original, wrapper))


def uninstall() -> None:
    """Put everything back; idempotent, and the last line of clean-up.

    Every patch is put back even when one refuses: the first error is raised after. A name
    the test rebound meanwhile keeps its value until the test undoes it (`patching`).
    """
    global _active
    _active = None
    failed: Exception | None = None
    while _patches:
        patch = _patches.pop()
        try:
            patch.undo()
        except Exception as error:
            failed = failed or error
    if failed is not None:
        raise failed


def active() -> bool:
    return _active is not None or bool(_patches)
