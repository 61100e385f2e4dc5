"""Strict mode: known blocking calls made on the loop thread while serving a request.

A test suite fakes the slow things: the external API is a local stub that answers in
2 ms, the database a small SQLite file. A timing budget never sees `requests.get(...)`
inside `async def` there, yet in production the same line holds the loop for seconds.
So while a strict test body runs, the known blocking functions are wrapped where they
live (and where the app bound an alias to them, `from time import sleep`), and every
call made on the loop thread by code serving a request is recorded, whatever it lasted.

Why wrappers and not a profiler: `sys.setprofile` calls back on every Python call and
costs the app several times its speed; on 3.11 `time.sleep` raises no audit event, and
audit hooks can never be removed. A wrapper costs nothing until it is called, and then
one identity check on other threads; everything is put back when the test body ends.

The wrapped call still runs and returns (or raises) exactly as before: the app's
behaviour does not change, a broad `except` cannot hide a finding.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import FrameType, ModuleType
from typing import Any

import pytest

from .hints import hint_for
from .origins import Request, current_origin
from .report import advice_lines, call_lines, field_line
from .stacks import (
    FrameRecord,
    Stack,
    capture,
    display_path,
    is_library_file,
    library_modules,
    locate_call,
)

_HERE = os.path.dirname(os.path.abspath(__file__))
_CUT_FILES = (os.path.join(_HERE, "tracking.py"), os.path.join(_HERE, "steps.py"))

# Frames of these modules make calls the user cannot act on: the import system reads
# files, traceback formatting reads sources, FastAPI inspects an endpoint's source the
# first time it is called, logging writes to its streams, and the tools themselves.
NOISE_MODULES = (
    "importlib",
    "zipimport",
    "pkgutil",
    "linecache",
    "traceback",
    "tokenize",
    "inspect",
    "logging",
    "warnings",
    "_pytest",
    "pytest",
    "pluggy",
    "coverage",
    "pdb",
    "bdb",
    "pydevd",
    "_pydevd_bundle",
    "debugpy",
)

# Library functions whose waits are brief hand-overs, not blocking work: starting a
# thread (also how a thread pool grows) waits for it to be running.
NOISE_FUNCTIONS = frozenset({("threading", "Thread.start")})

# Calls asyncio itself makes, by design, on the loop: its subprocess transport starts the
# child with `subprocess.Popen` (the recommended `create_subprocess_exec` is not a finding).
NOISE_CALLERS = ("asyncio",)

# Name resolution is where a network call starts, not where it waits: a call that
# went deeper is said to land on the first call after it.
_LOOKUPS = ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex")


def _always(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    return True


def _blocking_socket(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    # asyncio's sockets are non-blocking (timeout 0.0): they never wait.
    return bool(args) and args[0].gettimeout() != 0.0


def _blocking_get(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    block = args[1] if len(args) > 1 else kwargs.get("block", True)
    timeout = args[2] if len(args) > 2 else kwargs.get("timeout")
    return bool(block) and timeout != 0


def _blocking_put(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    # An unbounded queue never makes `put` wait.
    return getattr(args[0], "maxsize", 0) > 0 and _blocking_get(args[1:], kwargs)


def _blocking_wait(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    timeout = args[1] if len(args) > 1 else kwargs.get("timeout")
    return timeout != 0


Blocks = Callable[[tuple[Any, ...], dict[str, Any]], bool]

_SOCKET_METHODS = (
    "connect",
    "connect_ex",
    "accept",
    "send",
    "sendall",
    "sendto",
    "sendmsg",
    "sendfile",
    "recv",
    "recv_into",
    "recvfrom",
    "recvfrom_into",
    "recvmsg",
)
_OS_CALLS = (
    "stat",
    "lstat",
    "listdir",
    "scandir",
    "walk",
    "remove",
    "unlink",
    "rename",
    "replace",
    "mkdir",
    "makedirs",
    "rmdir",
    "removedirs",
    "chmod",
    "utime",
    "truncate",
    "open",
    "system",
    "popen",
)

# (module, class or None, attributes, label prefix, when it blocks)
_TARGETS: tuple[tuple[str, str | None, tuple[str, ...], Blocks], ...] = (
    ("time", None, ("sleep",), _always),
    ("socket", None, ("getaddrinfo", "gethostbyname", "gethostbyname_ex"), _always),
    ("socket", None, ("create_connection",), _always),
    ("socket", "socket", _SOCKET_METHODS, _blocking_socket),
    ("builtins", None, ("open", "input"), _always),
    ("io", None, ("open",), _always),
    ("os", None, _OS_CALLS, _always),
    ("subprocess", None, ("run", "call", "check_call", "check_output"), _always),
    ("subprocess", None, ("getoutput", "getstatusoutput"), _always),
    ("subprocess", "Popen", ("__init__", "wait", "communicate"), _always),
    ("sqlite3", None, ("connect",), _always),
    ("threading", "Event", ("wait",), _blocking_wait),
    ("threading", "Condition", ("wait", "wait_for"), _blocking_wait),
    ("threading", "Semaphore", ("acquire",), _blocking_get),
    ("threading", "Barrier", ("wait",), _always),
    ("threading", "Thread", ("join",), _blocking_wait),
    ("queue", "Queue", ("get",), _blocking_get),
    ("queue", "Queue", ("put",), _blocking_put),
    ("http.client", "HTTPConnection", ("connect", "request", "getresponse"), _always),
    ("urllib.request", None, ("urlopen",), _always),
    ("requests.sessions", "Session", ("request",), _always),
)

_LABELS = {
    "requests.sessions.Session.request": "requests (Session.request)",
    "subprocess.Popen.__init__": "subprocess.Popen",
    "io.open": "builtins.open",
}


@dataclass
class Finding:
    """One known blocking call from one line of the app, however often it was made."""

    callee: str
    request: Request
    stack: Stack
    site_index: int
    functions: frozenset[str]
    count: int = 1
    longest_s: float = 0.0
    # The library line where it went deeper into another known call, and that call.
    landed: tuple[FrameRecord, str] | None = None
    then: list[str] = field(default_factory=list)
    on_socket: bool = False

    @property
    def site(self) -> FrameRecord:
        return self.stack[self.site_index]


class Recorder:
    """The strict findings of one test body. Only its loop thread writes to it."""

    def __init__(self, allow: Sequence[str]) -> None:
        self.allow = tuple(allow)
        self.ident = -1
        self.findings: dict[tuple[str, str, int], Finding] = {}
        # The recorded call running now (None for one the plugin ignores): calls made
        # inside it are where it landed, not findings of their own.
        self._running: list[Finding | None] = []

    def call(
        self,
        callee: str,
        original: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        frame: FrameType | None,
    ) -> Any:
        if self._running:
            outer = self._running[0]
            if outer is not None and callee not in outer.then and frame is not None:
                outer.then.append(callee)
                # Where it waits: the socket call, else the first call past a lookup.
                if callee.startswith("socket.socket.") and not outer.on_socket:
                    outer.landed = (capture_one(frame), callee)
                    outer.on_socket = True
                elif outer.landed is None and callee not in _LOOKUPS:
                    outer.landed = (capture_one(frame), callee)
            return original(*args, **kwargs)
        origin = current_origin.get()
        if not isinstance(origin, Request):
            return original(*args, **kwargs)
        # Marked as running first: what the plugin's own look-ups call (a path check,
        # the first read of the library roots) passes through, it is not a finding.
        self._running.append(None)
        finding: Finding | None = None
        start = 0.0
        try:
            finding = self._running[-1] = self._finding(callee, origin, frame)
            start = time.perf_counter()
            return original(*args, **kwargs)
        finally:
            self._running.pop()
            if finding is not None:
                finding.longest_s = max(finding.longest_s, time.perf_counter() - start)

    def _finding(self, callee: str, origin: Request, frame: FrameType | None) -> Finding | None:
        stack = own_part(capture(frame))
        if not stack or any(_is_noise(record) for record in stack):
            return None
        caller = stack[-1].module or ""
        if any(caller == name or caller.startswith(name + ".") for name in NOISE_CALLERS):
            return None
        site_index = _site_index(stack)
        site = stack[site_index]
        key = (callee, site.filename, site.lineno)
        finding = self.findings.get(key)
        if finding is not None:
            finding.count += 1
            return finding
        functions = frozenset(f"{record.module}:{record.function}" for record in stack)
        finding = Finding(callee, origin, stack, site_index, functions)
        self.findings[key] = finding
        return finding


def _is_noise(record: FrameRecord) -> bool:
    # The plugin's own frames around the app (its transport, these wrappers) are not
    # the app's doing; its own calls are never made while a request runs.
    module = record.module
    if not module or record.is_plugin:
        return False
    if (module, record.function) in NOISE_FUNCTIONS:
        return True
    return any(module == prefix or module.startswith(prefix + ".") for prefix in NOISE_MODULES)


def capture_one(frame: FrameType) -> FrameRecord:
    code = frame.f_code
    return FrameRecord(
        filename=code.co_filename,
        lineno=frame.f_lineno or code.co_firstlineno,
        function=getattr(code, "co_qualname", code.co_name),
        module=frame.f_globals.get("__name__"),
        code=code,
        lasti=frame.f_lasti,
    )


def own_part(stack: Stack) -> Stack:
    """What runs inside the request (or a task it spawned): cut the test and the loop."""
    for index in range(len(stack) - 1, -1, -1):
        if stack[index].filename in _CUT_FILES:
            return stack[index + 1 :]
    return stack


def _site_index(stack: Stack) -> int:
    """The deepest frame of the app's own code, else the deepest frame."""
    for index in range(len(stack) - 1, -1, -1):
        if not stack[index].is_library and not stack[index].is_plugin:
            return index
    return len(stack) - 1


# --- the wrappers -------------------------------------------------------------------

_active: Recorder | None = None


def _wrap(callee: str, original: Callable[..., Any], blocks: Blocks) -> Callable[..., Any]:
    get_ident = threading.get_ident
    getframe = sys._getframe

    @functools.wraps(original)
    def strict_wrapper(*args: Any, **kwargs: Any) -> Any:
        recorder = _active
        if recorder is None or recorder.ident != get_ident() or not blocks(args, kwargs):
            return original(*args, **kwargs)
        return recorder.call(callee, original, args, kwargs, getframe(1))

    return strict_wrapper


@dataclass
class _Patch:
    namespace: Any
    name: str
    original: object
    wrapper: object
    owned: bool  # the attribute lived in this namespace's own dict


_patches: list[_Patch] = []


def install(recorder: Recorder) -> None:
    """Wrap the known blocking calls, then the app's aliases of them. On the loop thread."""
    global _active
    uninstall()
    recorder.ident = threading.get_ident()
    wrappers: dict[int, tuple[object, object]] = {}
    for module_name, class_name, names, blocks in _TARGETS:
        module = sys.modules.get(module_name)
        owner: Any = getattr(module, class_name, None) if class_name else module
        if owner is None:
            continue
        for name in names:
            original = getattr(owner, name, None)
            if original is None:
                continue
            entry = wrappers.get(id(original))
            if entry is None or entry[0] is not original:
                where = f"{module_name}.{class_name or ''}.{name}".replace("..", ".")
                wrapper = _wrap(_LABELS.get(where, where), original, blocks)
                if where == "sqlite3.connect":
                    wrapper = _sqlite_connect(module, wrapper)  # type: ignore[arg-type]
                entry = wrappers[id(original)] = (original, wrapper)
            _set(owner, name, original, entry[1])
    _patch_aliases(wrappers)
    _active = recorder


def _set(owner: Any, name: str, original: object, wrapper: object) -> None:
    owned = isinstance(owner, ModuleType) or name in vars(owner)
    setattr(owner, name, wrapper)
    _patches.append(_Patch(owner, name, original, wrapper, owned))


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
            "acquire": _wrap(label, _LockProxy._acquire, _blocking_acquire),
            "__enter__": _wrap(label, _LockProxy._enter, _always),
        },
    )


_LOCK_PROXIES = {lock_type: _lock_proxy_type(lock_type) for lock_type in _LOCK_TYPES}


def _patch_aliases(wrappers: dict[int, tuple[object, object]]) -> None:
    """`from time import sleep` in the app's own modules: point the alias at the wrapper.

    A module-level lock (`LOCK = threading.Lock()`) is swapped for a proxy the same way.
    """
    for module in list(sys.modules.values()):
        filename = getattr(module, "__file__", None)
        if not isinstance(filename, str) or is_library_file(filename):
            continue
        if filename.startswith(_HERE + os.sep):
            continue
        namespace = vars(module)
        for name, value in list(namespace.items()):
            entry = wrappers.get(id(value))
            if entry is not None and entry[0] is value:
                namespace[name] = entry[1]
                _patches.append(_Patch(namespace, name, value, entry[1], True))
                continue
            proxy_type = _LOCK_PROXIES.get(type(value))
            if proxy_type is not None:
                proxy = namespace[name] = proxy_type(value)
                _patches.append(_Patch(namespace, name, value, proxy, True))


def uninstall() -> None:
    """Put everything back; idempotent, and the last line of clean-up."""
    global _active
    _active = None
    while _patches:
        patch = _patches.pop()
        namespace = patch.namespace if isinstance(patch.namespace, dict) else None
        current = (namespace or vars(patch.namespace)).get(patch.name)
        if current is not patch.wrapper:
            continue  # the app rebound it meanwhile: its own value stays
        if namespace is not None:
            namespace[patch.name] = patch.original
        elif patch.owned:
            setattr(patch.namespace, patch.name, patch.original)
        else:
            delattr(patch.namespace, patch.name)


def active() -> bool:
    return _active is not None or bool(_patches)


# sqlite3's Connection and Cursor are C types that cannot be patched: a connection
# opened while strict mode runs is made of subclasses that report their calls.
_sqlite_classes: tuple[type, type] | None = None


def _sqlite_types(sqlite3: ModuleType) -> tuple[type, type]:
    global _sqlite_classes
    if _sqlite_classes is not None:
        return _sqlite_classes

    def reporting(base: type, name: str) -> Callable[..., Any]:
        method = getattr(base, name)
        return _wrap(f"sqlite3.{base.__name__}.{name}", method, _always)

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
                name: _wrap(f"sqlite3.Connection.{name}", method, _always)
                for name, method in shortcuts.items()
            },
            **{name: reporting(sqlite3.Connection, name) for name in ("commit", "rollback")},
        },
    )
    _sqlite_classes = (connection_type, cursor_type)
    return _sqlite_classes


def _sqlite_connect(sqlite3: ModuleType, wrapper: Callable[..., Any]) -> Callable[..., Any]:
    connection_type, _ = _sqlite_types(sqlite3)
    get_ident = threading.get_ident

    @functools.wraps(wrapper)
    def connect(*args: Any, **kwargs: Any) -> Any:
        recorder = _active
        # Only a connection the request opens on the loop thread: another thread's
        # connection, or one with the app's own factory, is left as it is.
        if (
            recorder is not None
            and recorder.ident == get_ident()
            and isinstance(current_origin.get(), Request)
            and "factory" not in kwargs
            and len(args) < 6
        ):
            kwargs["factory"] = connection_type
        return wrapper(*args, **kwargs)

    return connect


# --- running a test body under strict mode -------------------------------------------

TestFunction = Callable[..., Awaitable[Any]]


def wrap_test(test: TestFunction, recorder: Recorder) -> TestFunction:
    """Record while the test body runs, on its loop's thread; put everything back after."""

    @functools.wraps(test)
    async def run_strict(*args: Any, **kwargs: Any) -> Any:
        install(recorder)
        try:
            return await test(*args, **kwargs)
        finally:
            uninstall()

    return run_strict


# --- options -------------------------------------------------------------------------


def add_options(parser: pytest.Parser) -> None:
    parser.addini(
        "noblock_strict",
        help="strict mode for every @pytest.mark.noblock test: fail on known blocking calls "
        "(time.sleep, requests, open(), sqlite3...) on the loop, however fast.",
        type="bool",
        default=False,
    )
    parser.addini(
        "noblock_allow",
        help='strict mode allowlist: callees ("time.sleep") or calling functions '
        '("myapp.cache:warm"), one a line.',
        type="linelist",
        default=[],
    )


def parse_allow(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise pytest.UsageError(
            f'noblock: {where} must be a list of names like ["time.sleep", "myapp.cache:warm"], '
            f"got {value!r}"
        )
    for entry in value:
        if not isinstance(entry, str) or not entry.strip() or " " in entry.strip():
            raise pytest.UsageError(
                f"noblock: {where} entries must be names like "
                f'"time.sleep" or "myapp.cache:warm", got {entry!r}'
            )
    return tuple(entry.strip() for entry in value)


# --- judging and reporting -----------------------------------------------------------


def allows(entry: str, finding: Finding) -> bool:
    """`module:function` names a calling function (or a class's methods); else a callee."""
    if ":" in entry:
        return any(name == entry or name.startswith(entry + ".") for name in finding.functions)
    callees = (finding.callee, *finding.then)
    return any(callee == entry or callee.startswith(entry + ".") for callee in callees)


@dataclass
class Verdict:
    findings: list[Finding]
    used: set[str]


def judge(recorder: Recorder, timed_sites: Iterable[tuple[str, int]]) -> Verdict:
    """Drop allowed calls, and calls the timing report already shows with their duration."""
    timed = set(timed_sites)
    used: set[str] = set()
    kept: list[Finding] = []
    for finding in recorder.findings.values():
        matched = [entry for entry in recorder.allow if allows(entry, finding)]
        used.update(matched)
        if matched or (finding.site.filename, finding.site.lineno) in timed:
            continue
        kept.append(finding)
    return Verdict(kept, used)


def stale_note(allow: Sequence[str], used: set[str]) -> str | None:
    stale = [entry for entry in allow if entry not in used]
    if not stale:
        return None
    return (
        "strict allowlist: "
        + ", ".join(repr(entry) for entry in stale)
        + (" matched no call (stale: remove it)")
    )


def _milliseconds(seconds: float) -> str:
    value = seconds * 1000
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"


SHOWN_FINDINGS = 10


def failure_text(findings: Sequence[Finding], rootdir: str, verbosity: int = 0) -> str:
    """The first line is what pytest's short summary shows."""
    first = findings[0]
    site = first.site
    where = f"{display_path(site.filename, rootdir)}:{site.lineno}"
    count = len(findings)
    lines = [
        f"noblock strict: {first.request.describe()} called {_called(first)} on the event loop "
        f"at {where}" + (f" (and {count - 1} more known blocking calls)" if count > 1 else ""),
        "  fast here against a local stand-in, it holds every request in production",
    ]
    shown = findings if verbosity >= 2 else findings[:SHOWN_FINDINGS]
    for finding in shown:
        lines.append("")
        lines.extend(_describe(finding, rootdir))
    if len(findings) > len(shown):
        lines.append("")
        lines.append(f"... and {len(findings) - len(shown)} more (-vv shows them all)")
    return "\n".join(lines)


def _called(finding: Finding) -> str:
    """`requests.api.get` says more than the `Session.request` it went through."""
    stack = finding.stack
    deeper = stack[finding.site_index + 1 :]
    callee = locate_call(finding.site, deeper[0] if deeper else None).callee
    family = finding.callee.split(" ")[0]
    if callee and callee != family and callee.startswith(family + "."):
        return callee
    return finding.callee


def _describe(finding: Finding, rootdir: str) -> list[str]:
    def add(label: str, text: str) -> None:
        lines.append(field_line(label, text))

    times = f"{finding.count} times" if finding.count > 1 else "once"
    lines = [f"{_called(finding)}: called {times}, longest {_milliseconds(finding.longest_s)}"]
    add("request", finding.request.describe())
    add("handler", finding.request.handler or "(not routed to an endpoint)")
    stack = finding.stack
    index = finding.site_index
    deeper = stack[index + 1 :]
    lines.extend(call_lines(locate_call(stack[index], deeper[0] if deeper else None), rootdir))
    if finding.landed is not None and finding.landed[0].is_library:
        landed, callee = finding.landed
        where = f"{display_path(landed.filename, rootdir)}:{landed.lineno} in {landed.function}"
        add("landed in", f"{where} ({callee})")
    lines.extend(advice_lines(hint_for(finding.callee, library_modules(deeper), False)))
    return lines
