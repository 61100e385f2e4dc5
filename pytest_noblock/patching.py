"""Replacing one method of a library class for the length of a watched test, safely.

A test may patch the same method itself (`mock.patch`, `monkeypatch.setattr`) and undo
its patch after ours is gone, which puts our wrapper back on the class. So the method
found first is kept for good: a wrapper left behind that way still calls it, a later
`install` never mistakes our own wrapper for the original, and `uninstall` puts the
original back only while the class still holds our wrapper (never over someone else's).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any


class MethodPatch:
    def __init__(self, owner: type, name: str) -> None:
        self.owner = owner
        self.name = name
        self.real: Callable[..., Any] = owner.__dict__[name]
        # While installed: what the class held before us (usually `real`). A wrapper calls
        # `original or real`, which is safe from any thread, installed or not.
        self.original: Callable[..., Any] | None = None
        self.wrapper: Callable[..., Any] | None = None

    def install(self, wrapper: Callable[..., Any]) -> None:
        if self.original is not None:
            return
        current = self.owner.__dict__.get(self.name)
        self.original = self.real if current is None or current is wrapper else current
        self.wrapper = functools.wraps(self.real)(wrapper)
        setattr(self.owner, self.name, self.wrapper)

    def uninstall(self) -> None:
        if self.original is None:
            return
        if self.owner.__dict__.get(self.name) is self.wrapper:
            setattr(self.owner, self.name, self.original)
        self.original = None
