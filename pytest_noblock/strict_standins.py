"""Stand-ins for blocking objects the app made before the test: its module-level locks.

`threading.Lock` and `RLock` are C types whose methods cannot be wrapped, so the app's
module-level locks are swapped for a proxy and swapped back after the test. Every call
goes to the same lock, so other threads that hold or wait on it see no difference.

sqlite3's Connection and Cursor are C types too: a connection opened while strict mode
runs is made of subclasses that report their calls.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from .strict_wrappers import always, set_item, wrap


def _blocking_acquire(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    blocking = args[1] if len(args) > 1 else kwargs.get("blocking", True)
    timeout = args[2] if len(args) > 2 else kwargs.get("timeout", -1)
    return bool(blocking) and timeout != 0


class _LockProxy:
    """Stands in for a lock of the app's module globals while a strict test runs.

    `threading.Lock` and `RLock` are C types whose methods cannot be wrapped, so the
    app's module-level locks are swapped for this proxy and swapped back after the test.
    Every call goes to the same lock, so other threads that hold or wait on it see no
    difference.
    """

    __slots__ = ("_lock",)

    def __init__(self, lock: Any) -> None:
        self._lock = lock

    def _acquire(self, *args: Any, **kwargs: Any) -> Any:
        return self._lock.acquire(*args, **kwargs)

    def _enter(self) -> Any:
        return self._lock.__enter__()

    def release(self) -> None:
        self._lock.release()

    def __exit__(self, *exc: object) -> Any:
        return self._lock.__exit__(*exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lock, name)

    def __repr__(self) -> str:
        return repr(self._lock)


_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))


def _lock_proxy_type(lock_type: type) -> type:
    label = "threading.RLock.acquire" if "RLock" in lock_type.__name__ else "threading.Lock.acquire"
    return type(
        "Lock",
        (_LockProxy,),
        {
            "__slots__": (),
            "acquire": wrap(label, _LockProxy._acquire, _blocking_acquire),
            "__enter__": wrap(label, _LockProxy._enter, always),
        },
    )


_LOCK_PROXIES = {lock_type: _lock_proxy_type(lock_type) for lock_type in _LOCK_TYPES}


def swap_in(namespace: dict[str, Any]) -> None:
    """A module-level lock (`LOCK = threading.Lock()`) is swapped for a proxy to it."""
    for name, value in list(namespace.items()):
        proxy_type = _LOCK_PROXIES.get(type(value))
        if proxy_type is not None:
            set_item(namespace, name, value, proxy_type(value))


# sqlite3's Connection and Cursor are C types that cannot be patched: a connection
# opened while strict mode runs is made of subclasses that report their calls.
_sqlite_classes: tuple[type, type] | None = None


def sqlite_types(sqlite3: ModuleType) -> tuple[type, type]:
    global _sqlite_classes
    if _sqlite_classes is not None:
        return _sqlite_classes

    def reporting(base: type, name: str) -> Callable[..., Any]:
        method = getattr(base, name)
        return wrap(f"sqlite3.{base.__name__}.{name}", method, always)

    cursor_methods = ("execute", "executemany", "executescript", "fetchone", "fetchmany")
    cursor_type = type(
        "Cursor",
        (sqlite3.Cursor,),
        {
            "__module__": "sqlite3",
            **{name: reporting(sqlite3.Cursor, name) for name in (*cursor_methods, "fetchall")},
        },
    )

    def cursor(self: Any, factory: Any = cursor_type) -> Any:
        return sqlite3.Connection.cursor(self, factory)

    # The C shortcuts build a plain cursor: these build a reporting one, as documented
    # ("creates a new cursor object and calls execute() on it").
    def execute(self: Any, sql: str, parameters: Any = (), /) -> Any:
        return self.cursor().execute(sql, parameters)

    def executemany(self: Any, sql: str, parameters: Any, /) -> Any:
        return self.cursor().executemany(sql, parameters)

    def executescript(self: Any, script: str, /) -> Any:
        return self.cursor().executescript(script)

    shortcuts: dict[str, Callable[..., Any]] = {
        "execute": execute,
        "executemany": executemany,
        "executescript": executescript,
    }
    connection_type = type(
        "Connection",
        (sqlite3.Connection,),
        {
            "__module__": "sqlite3",
            "cursor": cursor,
            **{
                name: wrap(f"sqlite3.Connection.{name}", method, always)
                for name, method in shortcuts.items()
            },
            **{name: reporting(sqlite3.Connection, name) for name in ("commit", "rollback")},
        },
    )
    _sqlite_classes = (connection_type, cursor_type)
    return _sqlite_classes
