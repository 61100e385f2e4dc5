"""Watching one test body: the step clock and the watchdog, started and stopped together."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, TypeVar

from . import greenlets, steps
from .adapters import running_loop
from .client import LifespanTransport
from .holds import Hold, find_holds
from .origins import LIFESPAN, TEST_CODE, current_origin
from .settings import Settings
from .steps import StepClock
from .threadtime import ThreadUsage
from .watchdog import Watchdog

T = TypeVar("T")


@dataclass
class Findings:
    failing: list[Hold] = field(default_factory=list)
    noted: list[Hold] = field(default_factory=list)
    steps: int = 0
    dropped: int = 0
    # What the loop's adapter could not time and says about it.
    notes: list[str] = field(default_factory=list)

    @classmethod
    def merged(cls, all_found: Iterable[Findings]) -> Findings:
        """The findings of several loops watched in one test, worst first."""
        merged = cls()
        for found in all_found:
            merged.failing.extend(found.failing)
            merged.noted.extend(found.noted)
            merged.steps += found.steps
            merged.dropped += found.dropped
            merged.notes.extend(found.notes)
        merged.failing.sort(key=lambda hold: hold.held_s, reverse=True)
        merged.noted.sort(key=lambda hold: hold.held_s, reverse=True)
        return merged


class LoopWatch:
    """Times the loop a test body runs on; `start` is called on that loop's thread."""

    def __init__(self, settings: Settings, cpu_alarm: bool) -> None:
        self.settings = settings
        self._cpu_alarm = cpu_alarm
        self._clock: StepClock | None = None
        self._usage: ThreadUsage | None = None
        self._watchdog: Watchdog | None = None
        self._findings: Findings | None = None
        self._detach_loop: Callable[[], str | None] | None = None
        self._loop_note: str | None = None
        self._other_loop: ModuleType | None = None

    @property
    def started(self) -> bool:
        return self._clock is not None

    @property
    def timed_by_asyncio(self) -> bool:
        """Timed through asyncio's own `Handle._run`, with nothing attached to the loop
        itself: then `stop` may run on any thread."""
        return self._other_loop is None

    def start(self) -> None:
        ident = threading.get_ident()
        self._usage = ThreadUsage(ident, threading.get_native_id())
        self._clock = StepClock(ident, self._usage, keep_over_s=self.settings.budget_s)
        steps.attach(self._clock, TEST_CODE)
        greenlets.watch(ident)
        # asyncio's own loop needs no adapter: asking each adapter costs a trio run's check
        # (an exception raised and caught) on every watch.
        self._other_loop = None if runs_on_asyncio_event_loop() else running_loop()
        if self._other_loop is not None:
            self._detach_loop = self._other_loop.attach(self._clock)
        # The alarm's handler runs on the main thread: it can only sample a loop there.
        on_main_thread = threading.current_thread() is threading.main_thread()
        self._watchdog = Watchdog(
            self._clock, self._usage, self.settings.budget_s, self._cpu_alarm and on_main_thread
        )
        self._watchdog.start()

    def own_steps(self, body: Coroutine[Any, Any, T]) -> Coroutine[Any, Any, T]:
        """The test body, as the task that was running before the watch steps it: timed
        by the loop's adapter when the loop times only the tasks it starts (uvloop)."""
        timed = getattr(self._other_loop, "timed", None)
        if timed is None:
            return body
        return timed(body)  # type: ignore[no-any-return]

    def stop(self) -> None:
        """Idempotent, and safe from any thread: also the last line of clean-up."""
        if self._detach_loop is not None:
            self._loop_note = self._detach_loop()
            self._detach_loop = None
        if self._clock is not None:
            steps.detach(self._clock)
            greenlets.unwatch(self._clock.thread_ident)
        if self._watchdog is not None:
            self._watchdog.stop()
        if self._usage is not None:
            self._usage.close()
        if self._findings is None and self._clock is not None and self._watchdog is not None:
            self._findings = self._judge(self._clock, self._watchdog)

    def findings(self) -> Findings:
        self.stop()
        return self._findings or Findings()

    def _judge(self, clock: StepClock, watchdog: Watchdog) -> Findings:
        clock.settle()
        holds = find_holds(clock.kept, self.settings.budget_s)
        findings = Findings(steps=clock.steps, dropped=clock.dropped)
        if self._loop_note is not None:
            findings.notes.append(self._loop_note)
        for hold in holds:
            if self._counts(hold):
                findings.failing.append(hold)
            else:
                findings.noted.append(hold)
        return findings

    def _counts(self, hold: Hold) -> bool:
        if hold.blamed_on_app:
            return hold.warm_up is None or self.settings.count_warmup
        if hold.origin is LIFESPAN:
            return self.settings.count_lifespan
        return self.settings.count_test_code


TestFunction = Callable[..., Awaitable[Any]]


def runs_on_asyncio_event_loop() -> bool:
    """The step clock times asyncio's own loop; other loops run callbacks elsewhere."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return False
    return isinstance(loop, asyncio.BaseEventLoop)


def watchable_loop() -> bool:
    """Can the loop the current thread runs be timed: asyncio's own, or one an adapter
    knows?"""
    return runs_on_asyncio_event_loop() or running_loop() is not None


def wrap_test(
    test: TestFunction, watch: LoopWatch | None, transports: Sequence[LifespanTransport]
) -> TestFunction:
    """The test function as the async plugin will run it: on the test's own loop."""

    @functools.wraps(test)
    async def run_watched(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        token = current_origin.set(TEST_CODE)

        async def body() -> Any:
            __tracebackhide__ = True
            try:
                for transport in transports:
                    await transport.lifespan.start()
                return await test(*args, **kwargs)
            finally:
                current_origin.reset(token)
                for transport in transports:
                    await transport.aclose()

        # Watched from before the lifespan starts until after it shut down: a hold there
        # is the lifespan's (a note), never missed.
        if watch is None:
            return await body()
        if watchable_loop():
            watch.start()
        try:
            return await watch.own_steps(body())
        finally:
            watch.stop()

    return run_watched
