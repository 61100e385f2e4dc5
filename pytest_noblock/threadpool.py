"""Thread-pool starvation: calls that waited because every worker thread was taken.

FastAPI and Starlette run `def` endpoints, `def` dependencies and sync iterators through
`anyio.to_thread.run_sync`, under the loop's default limiter: 40 tokens. The 41st call
waits for a token without holding the loop, so the step clock never sees it; a slow `def`
endpoint under load makes every other `def` endpoint slow all the same.

While a watched test runs, `anyio.to_thread.run_sync` goes through `_MeteredPool.run_sync`,
which hands anyio a thin stand-in for the limiter: when the call asks for a token, it
reads the limiter's `statistics()` (a full limiter means the call will queue), and times
the queueing; the limiter's own `acquire` still does the work. It also knows which request
each borrowing task serves, so the threads' holders can be named. The watchdog reads the
same statistics on every tick to see how many calls waited at once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio.to_thread

from . import callframes
from .gil import for_worker
from .origins import Origin, Request, current_origin
from .patching import Swap
from .reporting.units import milliseconds


@dataclass(frozen=True)
class PoolWaits:
    """What the test's requests went through waiting for worker threads."""

    calls_waited: int
    longest_s: float
    total_tokens: int
    most_at_once: int
    holders: tuple[tuple[str, int], ...]


def _name(origin: Origin | None) -> str:
    if origin is None:
        return "code outside any request"
    if isinstance(origin, Request) and origin.handler:
        return f"{origin.describe()} ({origin.handler})"
    return origin.describe()


def _borrower() -> object | None:
    """The object anyio's limiter lends a token to: the running task."""
    try:
        return asyncio.current_task()
    except RuntimeError:
        pass
    try:
        import trio

        return trio.lowlevel.current_task()
    except (ImportError, RuntimeError):
        return None


class _MeteredPool:
    def __init__(self, original: Callable[..., Any]) -> None:
        self.original = original
        self.lock = threading.Lock()
        self.limiters: dict[int, anyio.CapacityLimiter] = {}
        # id(borrowing task) -> (task, its origin), while it runs a call in a thread.
        self.borrowers: dict[int, tuple[object, Origin | None]] = {}
        self.waits: list[float] = []
        self.total_tokens = 0
        self.most_at_once = 0
        self.holders: Counter[str] = Counter()

    async def run_sync(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True  # tracebacks show the app, not the plugin
        limiter = kwargs.get("limiter") or anyio.to_thread.current_default_thread_limiter()
        task = _borrower()
        if task is not None:
            self.borrowers[id(task)] = (task, current_origin.get())
        try:
            kwargs["limiter"] = _MeteredLimiter(self, limiter)
            return await self.original(for_worker(func, current_origin.get()), *args, **kwargs)
        finally:
            if task is not None:
                self.borrowers.pop(id(task), None)

    def queued(self, limiter: anyio.CapacityLimiter, stats: Any) -> None:
        """A call found every token taken: who holds them?"""
        holders = Counter(
            _name(self.borrowers.get(id(task), (None, None))[1]) for task in stats.borrowers
        )
        with self.lock:
            self.limiters[id(limiter)] = limiter
            self.total_tokens = max(self.total_tokens, int(stats.total_tokens))
            if sum(holders.values()) > sum(self.holders.values()):
                self.holders = holders

    def waited(self, seconds: float) -> None:
        with self.lock:
            self.waits.append(seconds)

    def sample(self) -> None:
        """From the watchdog's thread: how many calls are waiting right now."""
        for limiter in list(self.limiters.values()):
            try:
                waiting = limiter.statistics().tasks_waiting
            except RuntimeError:  # changed under us: the next tick reads it again
                continue
            self.most_at_once = max(self.most_at_once, waiting)

    def result(self) -> PoolWaits | None:
        with self.lock:
            if not self.waits:
                return None
            return PoolWaits(
                calls_waited=len(self.waits),
                longest_s=max(self.waits),
                total_tokens=self.total_tokens,
                most_at_once=self.most_at_once,
                holders=tuple(self.holders.most_common()),
            )


class _MeteredLimiter:
    """The limiter as anyio's worker code uses it (`async with`), with the wait timed.

    The token is still taken by the limiter's own `acquire`, in the same order: the check
    before it runs in the same step (no await in between), so it sees what `acquire` sees.
    """

    def __init__(self, pool: _MeteredPool, limiter: anyio.CapacityLimiter) -> None:
        self._pool = pool
        self._limiter = limiter

    async def __aenter__(self) -> None:
        __tracebackhide__ = True
        # asyncio's worker code: `async with limiter`, on behalf of the current task.
        await self._acquire(self._limiter.acquire)

    async def __aexit__(self, *exc_info: object) -> None:
        self._limiter.release()

    async def acquire_on_behalf_of(self, borrower: object) -> None:
        __tracebackhide__ = True
        # trio's worker code borrows for a placeholder object, not for the task.
        self._pool.borrowers[id(borrower)] = (borrower, current_origin.get())
        await self._acquire(lambda: self._limiter.acquire_on_behalf_of(borrower))

    def release_on_behalf_of(self, borrower: object) -> None:
        self._pool.borrowers.pop(id(borrower), None)
        self._limiter.release_on_behalf_of(borrower)

    async def _acquire(self, acquire: Callable[[], Awaitable[None]]) -> None:
        __tracebackhide__ = True
        stats = self._limiter.statistics()
        if stats.tasks_waiting == 0 and stats.borrowed_tokens < stats.total_tokens:
            await acquire()
            return
        self._pool.queued(self._limiter, stats)
        queued_at = time.perf_counter()
        try:
            await acquire()
        finally:
            self._pool.waited(time.perf_counter() - queued_at)


_meter: _MeteredPool | None = None
_swap: Swap | None = None
_last: PoolWaits | None = None


def install() -> None:
    global _meter, _swap, _last
    if _meter is None:
        _last = None
        _meter = _MeteredPool(anyio.to_thread.run_sync)
        _swap = Swap.make(anyio.to_thread, "run_sync", _meter.run_sync)
        callframes.start()


def uninstall() -> None:
    global _meter, _swap, _last
    if _meter is not None:
        if _swap is not None:
            _swap.undo()
        callframes.stop()
        _last = _meter.result()
        _meter = _swap = None


def sample() -> None:
    meter = _meter
    if meter is not None and meter.limiters:
        meter.sample()


def take() -> PoolWaits | None:
    """The waits of the test that just ended (after `uninstall`), once."""
    global _last
    result, _last = _last, None
    return result


def describe(waits: PoolWaits) -> str:
    at_once = f", up to {waits.most_at_once} waiting at once" if waits.most_at_once > 1 else ""
    held_by = ", ".join(f"{count} x {name}" for name, count in waits.holders) or "unknown"
    return (
        f"thread pool: {waits.calls_waited} calls waited for a worker thread "
        f"(all {waits.total_tokens} were busy{at_once}); longest wait "
        f"{milliseconds(waits.longest_s)}; threads held by: {held_by}"
    )


INSTEAD = (
    "make the endpoints that hold the threads `async def` with awaitable I/O, or give the "
    "pool more threads at startup: anyio.to_thread.current_default_thread_limiter()"
    ".total_tokens = N"
)


def failure_text(waits: PoolWaits, max_wait_ms: float | None) -> str | None:
    """The failure when a wait went past the bound; None means: only a note."""
    if max_wait_ms is None or waits.longest_s * 1000 <= max_wait_ms:
        return None
    return "\n".join(
        [
            f"noblock: requests waited {milliseconds(waits.longest_s)} for a worker thread "
            f"(max_thread_wait_ms {milliseconds(max_wait_ms / 1000)})",
            f"  {describe(waits)}",
            f"  instead   {INSTEAD}",
        ]
    )
