"""Stand-ins for blocking objects the app made before the test: locks, files, SQLite.

`threading.Lock`/`RLock`, the `io` file types and `sqlite3.Connection` are C types: their
methods cannot be wrapped, and an object's `__class__` cannot be swapped for a reporting
subclass (they are immutable types). So while a strict test body runs, the references the
app holds to such objects are swapped for a stand-in that forwards every call to the same
object and reports the blocking ones, and swapped back after. Other threads that hold or
wait on the same lock, or write to the same file, see no difference.

Where the references are looked for: the app's module globals, the attributes of the app's
own classes found there, and the attributes of instances of the app's own classes, two
levels down (`SERVICE._lock`, `SERVICE.cache.lock`). Not a walk of everything reachable
(`gc.get_objects`, referrers): that costs milliseconds per test on a real app, and it would
reach into library objects whose locks are their own business (a `queue.Queue`'s mutex,
logging's handler locks, the thread pool's). Not a swap of the factories
(`threading.Lock = ...`): objects made while it is in place would keep the swapped type
after the test, outside strict mode.

A stand-in passes `isinstance` and compares and hashes like the original, but it `is not`
the original and its `type()` differs, and C code that insists on the real object (sqlite3's
`backup(target)`) refuses it; a reference taken from it during the test keeps forwarding.
The console streams are never swapped: printing is not what strict mode is about.
"""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType
from typing import Any, SupportsIndex, cast

from .wrappers import Blocks, always, set_attribute, set_item, wrap

# How far below the app's module globals its objects' attributes are looked at.
DEPTH = 2


class StandIn:
    """Forwards everything to the object it stands in for."""

    __slots__ = ("__weakref__", "_target")
    _target: Any

    def __init__(self, target: object) -> None:
        object.__setattr__(self, "_target", target)

    # isinstance() falls back to `__class__` (as unittest.mock's specs do), so
    # `isinstance(stand_in, sqlite3.Connection)` still holds for the app's checks.
    @property
    def __class__(self) -> type:
        return type(self._target)

    @__class__.setter
    def __class__(self, value: type) -> None:
        self._target.__class__ = value

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)

    def __setattr__(self, name: str, value: object) -> None:
        setattr(self._target, name, value)

    def __delattr__(self, name: str) -> None:
        delattr(self._target, name)

    def __eq__(self, other: object) -> bool:
        return bool(self._target == (other._target if isinstance(other, StandIn) else other))

    def __hash__(self) -> int:
        return hash(self._target)

    # `copy`/`pickle` refuse a stand-in exactly as they refuse the original.
    def __reduce_ex__(self, protocol: SupportsIndex) -> str | tuple[Any, ...]:
        return self._target.__reduce_ex__(protocol)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return repr(self._target)


def _forward(name: str) -> Callable[..., Any]:
    def forward(self: StandIn, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True  # tracebacks show the app, not the plugin
        return getattr(self._target, name)(*args, **kwargs)

    forward.__name__ = forward.__qualname__ = name
    return forward


def _returning_self(name: str) -> Callable[..., Any]:
    """`with LOG as f:` and `for line in LOG:` must go on through the stand-in."""

    def forward(self: StandIn) -> StandIn:
        __tracebackhide__ = True
        getattr(self._target, name)()  # the original's own checks: a closed file raises
        return self

    forward.__name__ = forward.__qualname__ = name
    return forward


def _stand_in_type(
    name: str, label: str, blocking: Mapping[str, Blocks], extra: Mapping[str, Any]
) -> type[StandIn]:
    namespace: dict[str, Any] = {"__slots__": (), "__exit__": _forward("__exit__"), **extra}
    for method, blocks in blocking.items():
        namespace[method] = wrap(f"{label}.{method}", _forward(method), blocks)
    return type(name, (StandIn,), namespace)


def blocking_acquire(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    blocking = args[1] if len(args) > 1 else kwargs.get("blocking", True)
    timeout = args[2] if len(args) > 2 else kwargs.get("timeout", -1)
    return bool(blocking) and timeout != 0


def _lock_type(label: str) -> type[StandIn]:
    # `with lock:` is reported as the acquire it is.
    enter = wrap(f"{label}.acquire", _forward("__enter__"), always)
    return _stand_in_type("Lock", label, {"acquire": blocking_acquire}, {"__enter__": enter})


_FILE_METHODS = (
    "read",
    "read1",
    "readall",
    "readinto",
    "readinto1",
    "readline",
    "readlines",
    "write",
    "writelines",
    "flush",
    "truncate",
    "__next__",
)


def _file_type(file_type: type) -> type[StandIn]:
    name = file_type.__name__
    methods = {method: always for method in _FILE_METHODS if hasattr(file_type, method)}
    extra = {"__enter__": _returning_self("__enter__"), "__iter__": _returning_self("__iter__")}
    return _stand_in_type(name, f"io.{name}", methods, extra)


_LOCK_STAND_INS = {
    type(threading.Lock()): _lock_type("threading.Lock"),
    type(threading.RLock()): _lock_type("threading.RLock"),
}
_FILE_TYPES = (io.TextIOWrapper, io.BufferedReader, io.BufferedWriter, io.BufferedRandom, io.FileIO)
_FILE_STAND_INS: dict[type, type[StandIn]] = {
    file_type: _file_type(file_type) for file_type in _FILE_TYPES
}


# sqlite3's Connection and Cursor are C types too: a connection opened while strict mode
# runs is made of subclasses that report their calls (see `strict.patches`), and one opened
# before gets a stand-in that hands out the same reporting cursors.
# Made once per `sqlite3.Connection` type (a fresh import of sqlite3 makes new types).
_sqlite_classes: dict[type, tuple[type, type, type[StandIn]]] = {}


def sqlite_types(sqlite3: ModuleType) -> tuple[type, type, type[StandIn]]:
    """The reporting Connection and Cursor subclasses, and the Connection stand-in."""
    made = _sqlite_classes.get(sqlite3.Connection)
    if made is not None:
        return made

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

    # The C shortcuts build a plain cursor: these build a reporting one, as documented
    # ("creates a new cursor object and calls execute() on it").
    def execute(self: Any, sql: str, parameters: Any = (), /) -> Any:
        __tracebackhide__ = True
        return self.cursor().execute(sql, parameters)

    def executemany(self: Any, sql: str, parameters: Any, /) -> Any:
        __tracebackhide__ = True
        return self.cursor().executemany(sql, parameters)

    def executescript(self: Any, script: str, /) -> Any:
        __tracebackhide__ = True
        return self.cursor().executescript(script)

    shortcuts = {
        method.__name__: wrap(f"sqlite3.Connection.{method.__name__}", method, always)
        for method in (execute, executemany, executescript)
    }

    def cursor(self: Any, factory: Any = cursor_type) -> Any:
        __tracebackhide__ = True
        return sqlite3.Connection.cursor(self, factory)

    connection_type = type(
        "Connection",
        (sqlite3.Connection,),
        {
            "__module__": "sqlite3",
            "cursor": cursor,
            **shortcuts,
            **{name: reporting(sqlite3.Connection, name) for name in ("commit", "rollback")},
        },
    )

    def stand_in_cursor(self: StandIn, factory: Any = cursor_type) -> Any:
        __tracebackhide__ = True
        return self._target.cursor(factory)

    stand_in_type = _stand_in_type(
        "Connection",
        "sqlite3.Connection",
        {"commit": always, "rollback": always},
        {"cursor": stand_in_cursor, "__enter__": _returning_self("__enter__"), **shortcuts},
    )
    made = _sqlite_classes[sqlite3.Connection] = (connection_type, cursor_type, stand_in_type)
    return made


def swap_in(modules: Iterable[ModuleType]) -> None:
    """Stand-ins for the blocking objects the app's modules hold (see the top), until
    `wrappers.uninstall`."""
    modules = list(modules)
    walk = _Walk({module.__name__ for module in modules})
    for module in modules:
        namespace = vars(module)
        walk.namespace(namespace, namespace, 0)


# Bases that hold no state of their own: an app class may derive from them.
_NEUTRAL = frozenset({"builtins", "abc", "typing", "enum", "dataclasses"})


class _Walk:
    def __init__(self, app_modules: set[str]) -> None:
        self.app_modules = app_modules
        self.types: dict[type, type[StandIn]] = {**_LOCK_STAND_INS, **_FILE_STAND_INS}
        sqlite3 = sys.modules.get("sqlite3")
        if sqlite3 is not None:
            self.types[sqlite3.Connection] = sqlite_types(sqlite3)[2]
        console = [sys.stdin, sys.stdout, sys.stderr, sys.__stdin__, sys.__stdout__, sys.__stderr__]
        for stream in list(console):  # and the byte streams under them (`sys.stdout.buffer`)
            buffer = getattr(stream, "buffer", None)
            console += [buffer, getattr(buffer, "raw", None)]
        self.console = {id(stream) for stream in console if stream is not None}
        # One stand-in per object, so that `a.lock is b.lock` stays true.
        self.stand_ins: dict[int, StandIn] = {}
        self.seen: set[int] = set()

    def namespace(
        self, namespace: Mapping[str, Any], owner: dict[str, Any] | type, depth: int
    ) -> None:
        """Swap in `namespace`, writing to `owner` (the same dict, or the class it is of)."""
        for name, value in list(namespace.items()):
            try:
                self._swap(name, value, owner, depth)
            except Exception:  # an odd object (unhashable type, a refusing class): left alone
                continue

    def _swap(self, name: str, value: object, owner: dict[str, Any] | type, depth: int) -> None:
        stand_in_type = self.types.get(type(value))
        if stand_in_type is None:
            if depth < DEPTH:
                self.visit(value, depth + 1)
            return
        if id(value) in self.console:
            return
        stand_in = self.stand_ins.get(id(value))
        if stand_in is None:
            stand_in = self.stand_ins[id(value)] = stand_in_type(value)
        if isinstance(owner, dict):
            set_item(owner, name, value, stand_in)
        else:
            set_attribute(owner, name, value, stand_in)

    def visit(self, value: object, depth: int) -> None:
        """The attributes of the app's own objects and classes; nothing else's.

        An instance counts only when every class it is made of is the app's: the lock
        inside an app subclass of `queue.Queue` or `ThreadPoolExecutor` is the library's.
        A class whose metaclass runs code on `setattr` is left alone.
        """
        # By `type()`: a stand-in's, or a mock's, `__class__` may say something else.
        is_class = issubclass(type(value), type)
        cls = cast(type, value) if is_class else type(value)
        if id(value) in self.seen or not self._is_apps(cls):
            return
        self.seen.add(id(value))
        if is_class:
            if type(cls).__setattr__ is type.__setattr__:
                self.namespace(vars(cls), cls, depth)
            return
        if not all(self._is_apps(base) for base in cls.__mro__ if base.__module__ not in _NEUTRAL):
            return
        try:
            # Not `value.__dict__`: the app's own `__getattribute__` is not run.
            attributes = object.__getattribute__(value, "__dict__")
        except AttributeError:
            return  # `__slots__` only
        if isinstance(attributes, dict):
            self.namespace(attributes, attributes, depth)

    def _is_apps(self, cls: type) -> bool:
        return cls.__module__ in self.app_modules
