"""Strict mode: known blocking calls made on the loop thread while serving a request.

A test suite fakes the slow things: the external API is a local stub that answers in
2 ms, the database a small SQLite file. A timing budget never sees `requests.get(...)`
inside `async def` there, yet in production the same line holds the loop for seconds.
So while a strict test body runs, the known blocking functions are wrapped
(`strict.patches`, `strict.standins`), and every call made on the loop thread by code
serving a request is recorded here, whatever it lasted; then judged against the allowlist.
The report text is `strict.report`'s.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import FrameType, ModuleType
from typing import Any

from ..origins import Request, current_origin
from ..stacks import (
    PLUGIN_DIR,
    STEPS_FILE,
    TRACKING_FILE,
    FrameRecord,
    Stack,
    as_the_app_made_it,
    capture,
)

_CUT_FILES = (TRACKING_FILE, STEPS_FILE)

# Frames of these modules make calls the user cannot act on: the import system reads
# files, traceback formatting reads sources, FastAPI inspects an endpoint's source the
# first time it is called, logging writes to its streams, and the tools themselves.
# Top-level package names: a module is noise when its package is one of them.
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
# thread (also how a thread pool grows) waits for it to be running; a socket pair is
# two ends of one local connection (on Windows socket.py makes it with a loopback
# `connect` and `accept`, as asyncio does for every loop it creates; elsewhere one C call).
NOISE_FUNCTIONS = frozenset(
    {
        ("threading", "Thread.start"),
        ("socket", "socketpair"),
        ("socket", "_fallback_socketpair"),
    }
)

# Calls asyncio itself makes, by design, on the loop: its subprocess transport starts the
# child with `subprocess.Popen` (the recommended `create_subprocess_exec` is not a finding).
NOISE_CALLERS = ("asyncio",)

# Name resolution is where a network call starts, not where it waits: a call that
# went deeper is said to land on the first call after it.
_LOOKUPS = ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex")


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
    """The strict findings of one test body, written by the loop threads it records on:
    the test's own, and the loops of the portals it started (`portals`)."""

    def __init__(self, allow: Sequence[str]) -> None:
        self.allow = tuple(allow)
        self.idents: set[int] = set()
        self.findings: dict[tuple[str, str, int], Finding] = {}
        self._threads = threading.local()

    @property
    def _running(self) -> list[Finding | None]:
        """The recorded calls running now on this thread (None for one the plugin
        ignores): calls made inside one are where it landed, not findings of their own."""
        running: list[Finding | None] | None = getattr(self._threads, "running", None)
        if running is None:
            running = self._threads.running = []
        return running

    def call(
        self,
        callee: str,
        original: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        frame: FrameType | None,
    ) -> Any:
        __tracebackhide__ = True  # tracebacks show the app, not the plugin
        if self._running:
            outer = self._running[0]
            # A call the plugin's own stand-in made on the app's behalf (a cursor for
            # `connection.execute`) is the same call, not where it landed.
            if (
                outer is not None
                and callee not in outer.then
                and frame is not None
                and not frame.f_code.co_filename.startswith(PLUGIN_DIR)
            ):
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
            try:
                finding = self._running[-1] = self._finding(callee, origin, frame)
            except Exception:  # never at the app's expense: its call runs regardless
                finding = None
            start = time.perf_counter()
            return original(*args, **kwargs)
        finally:
            self._running.pop()
            if finding is not None:
                finding.longest_s = max(finding.longest_s, time.perf_counter() - start)

    def _finding(self, callee: str, origin: Request, frame: FrameType | None) -> Finding | None:
        stack = own_part(capture(frame, threading.get_ident()))
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
        if site_index < len(stack) - 1:
            # A library made the call (its own `from time import sleep`): that line is
            # where it landed, unless a socket call deeper down says where it waited.
            finding.landed = (stack[-1], callee)
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
    return is_noise_module(module)


_NOISE_PACKAGES = frozenset(NOISE_MODULES)  # top-level names: one look-up per module


def is_noise_module(name: str) -> bool:
    return name.partition(".")[0] in _NOISE_PACKAGES


def capture_one(frame: FrameType) -> FrameRecord:
    code = frame.f_code
    return FrameRecord(
        filename=code.co_filename,
        lineno=frame.f_lineno or code.co_firstlineno,
        function=code.co_qualname,
        module=frame.f_globals.get("__name__"),
        code=code,
        lasti=frame.f_lasti,
    )


def own_part(stack: Stack) -> Stack:
    """What runs inside the request (or a task it spawned): cut the test and the loop."""
    for index in range(len(stack) - 1, -1, -1):
        if stack[index].filename in _CUT_FILES:
            return as_the_app_made_it(stack[index + 1 :])
    return as_the_app_made_it(stack)


def _site_index(stack: Stack) -> int:
    """The deepest frame of the app's own code, else the deepest frame."""
    for index in range(len(stack) - 1, -1, -1):
        if not stack[index].is_library and not stack[index].is_plugin:
            return index
    return len(stack) - 1


# --- judging and reporting -----------------------------------------------------------


def allows(entry: str, finding: Finding) -> bool:
    """`module:function` names a calling function (or a class's methods); else a callee.

    A callee is matched as users write it: the library (`requests`), the name they call
    (`requests.get`, which is `requests.api:get` on the way to the wrapped
    `Session.request`), or the qualified name a report shows.
    """
    if ":" in entry:
        return any(name == entry or name.startswith(entry + ".") for name in finding.functions)
    # A label such as "requests (Session.request)" is matched by its first word too.
    callees = (finding.callee, finding.callee.split(" (")[0], *finding.then)
    if any(callee == entry or callee.startswith(entry + ".") for callee in callees):
        return True
    named = _loaded_function(entry)
    return named is not None and named in finding.functions


def _loaded_function(dotted: str) -> str | None:
    """`module:qualname` of the function a dotted name reaches from a loaded module.

    Only module and class dictionaries are read: nothing is imported, no code of the
    app's runs.
    """
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        value: object = sys.modules.get(".".join(parts[:cut]))
        if value is None:
            continue
        for attribute in parts[cut:]:
            namespace = vars(value) if isinstance(value, (ModuleType, type)) else {}
            value = namespace.get(attribute)
        module = getattr(value, "__module__", None)
        qualname = getattr(value, "__qualname__", None)
        if isinstance(module, str) and isinstance(qualname, str):
            return f"{module}:{qualname}"
        return None
    return None


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
