"""The frame of a worker call's own function, kept so its line can be read after it returned.

A worker thread that keeps the GIL through a C call (`json.dumps` of a big object) is
looked at by the watchdog as soon as the watchdog gets the GIL back. Often the worker gets
it first and finishes its whole call (or the loop's thread does, and ends the test) before
the watchdog looks: 1 hold in 4 was missed so here. A frame object kept past its return
still knows the last line it ran: the line that made the call.

The frame is caught as the function starts: on 3.12+ by `sys.monitoring`, for the code
objects of functions handed to the pool only; on 3.11 by a trace function on the worker's
own thread that sees calls (not lines) until that function started, chained to any tracer
already there (coverage's).
"""

from __future__ import annotations

import functools
import sys
import threading
from types import CodeType, FrameType
from typing import Any, NamedTuple

from .stacks import is_library_file

# Free for tools other than debuggers (0), coverage (1), profilers (2), optimizers (5).
_TOOL_IDS = (3, 4)

TraceFunction = Any


class _Keeper:
    def __init__(self) -> None:
        # Worker thread ident -> the frame of the function its current call started.
        self.frames: dict[int, FrameType] = {}

    def expect(self, codes: list[CodeType]) -> None:
        raise NotImplementedError

    def take(self) -> FrameType | None:
        return self.frames.pop(threading.get_ident(), None)

    def close(self) -> None:
        self.frames.clear()


class _Monitoring(_Keeper):
    def __init__(self, monitoring: Any, tool: int) -> None:
        super().__init__()
        self.monitoring = monitoring
        self.tool = tool
        self.codes: set[CodeType] = set()
        self.waiting: set[int] = set()
        monitoring.use_tool_id(tool, "pytest-noblock")
        monitoring.register_callback(tool, monitoring.events.PY_START, self.started)

    def started(self, code: CodeType, offset: int) -> None:
        # Each expected function that starts within the call is deeper than the last.
        ident = threading.get_ident()
        if ident in self.waiting:
            self.frames[ident] = sys._getframe(1)

    def expect(self, codes: list[CodeType]) -> None:
        for code in codes:
            if code not in self.codes:
                self.codes.add(code)
                self.monitoring.set_local_events(self.tool, code, self.monitoring.events.PY_START)
        self.waiting.add(threading.get_ident())

    def take(self) -> FrameType | None:
        self.waiting.discard(threading.get_ident())
        return super().take()

    def close(self) -> None:
        for code in list(self.codes):
            self.monitoring.set_local_events(self.tool, code, 0)
        self.monitoring.register_callback(self.tool, self.monitoring.events.PY_START, None)
        self.monitoring.free_tool_id(self.tool)
        super().close()


class _Pending(NamedTuple):
    codes: frozenset[CodeType]
    deepest: CodeType
    previous: TraceFunction


class _Tracing(_Keeper):
    def __init__(self) -> None:
        super().__init__()
        self.pending: dict[int, _Pending] = {}

    def expect(self, codes: list[CodeType]) -> None:
        previous = sys.gettrace()
        self.pending[threading.get_ident()] = _Pending(frozenset(codes), codes[-1], previous)
        sys.settrace(self.called)

    def called(self, frame: FrameType, event: str, arg: object) -> TraceFunction:
        ident = threading.get_ident()
        pending = self.pending.get(ident)
        if pending is None:
            return None
        if frame.f_code in pending.codes:
            self.frames[ident] = frame
            if frame.f_code is pending.deepest:
                del self.pending[ident]
                sys.settrace(pending.previous)
        if pending.previous is not None:
            return pending.previous(frame, event, arg)
        return None

    def take(self) -> FrameType | None:
        pending = self.pending.pop(threading.get_ident(), None)
        if pending is not None:
            sys.settrace(pending.previous)
        return super().take()


_keeper: _Keeper | None = None


def start() -> None:
    """For the watched test: keep the frames of functions handed to worker threads."""
    global _keeper
    if _keeper is not None:
        return
    monitoring: Any = getattr(sys, "monitoring", None)
    if monitoring is None:
        _keeper = _Tracing()
        return
    for tool in _TOOL_IDS:
        if monitoring.get_tool(tool) is None:
            _keeper = _Monitoring(monitoring, tool)
            return


def stop() -> None:
    global _keeper
    keeper, _keeper = _keeper, None
    if keeper is not None:
        keeper.close()


def _code_of(func: Any) -> CodeType | None:
    while isinstance(func, functools.partial):
        func = func.func
    code = getattr(func, "__code__", None)
    return code if isinstance(code, CodeType) else None


def expect(func: Any, endpoint: Any = None) -> None:
    """On the worker thread, just before it calls `func` for a request routed to `endpoint`.

    A framework may hand the pool a function of its own that calls the endpoint (FastAPI
    0.165 does): then the endpoint's frame, the deeper one, is the one kept.
    """
    keeper = _keeper
    code = _code_of(func)
    if keeper is None or code is None:
        return
    codes = [code]
    inner = _code_of(endpoint)
    if inner is not None and inner is not code and is_library_file(code.co_filename):
        codes.append(inner)
    keeper.expect(codes)


def take() -> FrameType | None:
    """On the worker thread, once its call returned: the frame `func` ran in, if seen."""
    keeper = _keeper
    return keeper.take() if keeper is not None else None
