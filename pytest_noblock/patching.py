"""Putting names back: what the plugin swaps while a test runs, and how it undoes it.

A test may patch the same name itself (`monkeypatch.setattr`, `mock.patch`). Inside a
watched test body `monkeypatch` saves the plugin's wrapper or stand-in as "the original"
and puts it back after the plugin has undone its own patch. So an undo that finds someone
else's object in place leaves it there and waits: once the test's fixtures are torn down
(`settle`), a name that holds the plugin's object again gets the real original back. After
every test each name is the original object again, whichever order the two undo in.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

_MISSING = object()


@dataclass
class Swap:
    """`namespace.name` (a module, a class, or a dict such as a module's globals) pointed
    at one of the plugin's objects, and what it held before."""

    namespace: Any
    name: str
    original: object
    ours: object
    # The class held the name in its own dict (else it was inherited: delete ours).
    owned: bool = True
    # While this says True, the plugin has put `ours` in place again (see MethodPatch).
    in_use: Callable[[], bool] | None = None

    @classmethod
    def make(cls, namespace: Any, name: str, ours: object) -> Swap:
        """`namespace.name = ours` (a module or a class) now; `undo` puts back what was there."""
        owned = isinstance(namespace, ModuleType) or name in vars(namespace)
        swap = cls(namespace, name, getattr(namespace, name), ours, owned)
        setattr(namespace, name, ours)
        return swap

    def current(self) -> object:
        found = self.namespace if isinstance(self.namespace, dict) else vars(self.namespace)
        return found.get(self.name, _MISSING)

    def undo(self) -> None:
        """The original back now, or once whoever replaced ours has undone their patch."""
        _undone[id(self.ours)] = (self.ours, self.original)
        if not self._put_back():
            _waiting.append(self)

    def _put_back(self) -> bool:
        """True when done with: the original is back, or someone else's object stays."""
        current = self.current()
        if current is not self.ours:
            # Someone else's: theirs to undo, which may put ours back (see `settle`).
            return current is self.original
        if isinstance(self.namespace, dict):
            self.namespace[self.name] = self.original
        elif self.owned:
            setattr(self.namespace, self.name, self.original)
        else:
            delattr(self.namespace, self.name)
        return True


_waiting: list[Swap] = []
# What this test's swaps put in place and took out again, by id: ours, and the original.
_undone: dict[int, tuple[object, object]] = {}
_known_modules: set[str] = set()
# How many modules there were and the last one imported, at the last look: an import adds
# its module at the end of `sys.modules`, so an unchanged shape means none was imported.
_known_shape: tuple[int, str | None] = (0, None)


def settle() -> None:
    """After a test's teardown: where a patch undone after ours put ours back, the original.

    A swap whose name still holds someone else's object (a module-scoped patch not undone
    yet) keeps waiting. And a module first imported while ours was in place may have bound
    it (FastAPI imports a module doing `from anyio.to_thread import run_sync` at the app's
    first start): that name gets the original too.
    """
    still = []
    for swap in _waiting:
        if (swap.in_use is not None and swap.in_use()) or not swap._put_back():
            still.append(swap)
    _waiting[:] = still
    _rebind_in_new_modules()


def _rebind_in_new_modules() -> None:
    global _known_modules, _known_shape
    shape = (len(sys.modules), next(reversed(sys.modules), None))
    if shape == _known_shape:
        # Nothing imported since the last look (the common case): no set of thousands of
        # names to build after every test.
        _undone.clear()
        return
    names = set(sys.modules)
    if _undone:
        for name in names - _known_modules:
            if name.partition(".")[0] == __package__:
                continue  # the plugin's own: `steps._timed_run` is a wrapper by design
            namespace = getattr(sys.modules.get(name), "__dict__", None)
            if not isinstance(namespace, dict):
                continue
            for key, value in list(namespace.items()):
                found = _undone.get(id(value))
                if found is not None and found[0] is value:
                    namespace[key] = found[1]
    _known_modules = names
    _known_shape = shape
    _undone.clear()


class MethodPatch:
    """One method of a library class, replaced for the length of a watched test.

    The method found first is kept for good: a wrapper left behind still calls it, and a
    later `install` never mistakes our own wrapper for the original.
    """

    def __init__(self, owner: type, name: str) -> None:
        self.owner = owner
        self.name = name
        self.real: Callable[..., Any] = owner.__dict__[name]
        # While installed: what the wrapper calls (usually `real`). A wrapper calls
        # `original or real`, which is safe from any thread, installed or not.
        self.original: Callable[..., Any] | None = None
        self.wrapper: Callable[..., Any] | None = None
        # What the class held before `install`, put back by `uninstall`.
        self._before: Callable[..., Any] | None = None
        self._left: Swap | None = None

    def install(self, wrapper: Callable[..., Any]) -> None:
        if self.original is not None:
            return
        current = self.owner.__dict__.get(self.name)
        self._before = self.real if current is None or current is wrapper else current
        self.original = self._before
        if self._left is not None and any(swap is self._left for swap in _waiting):
            # Put there over our wrapper (a module-scoped monkeypatch), which it saved and
            # may call: calling it from our wrapper would go round in a loop.
            self.original = self.real
        if self.wrapper is not wrapper:  # most patches install the same wrapper every test
            self.wrapper = functools.wraps(self.real)(wrapper)
        setattr(self.owner, self.name, self.wrapper)

    def uninstall(self) -> None:
        if self.original is None:
            return
        # The same wrapper goes in at every install: a swap that waits must not take it
        # out while it is installed again.
        self._left = Swap(self.owner, self.name, self._before, self.wrapper, in_use=self._installed)
        self._left.undo()
        self.original = None

    def _installed(self) -> bool:
        return self.original is not None
