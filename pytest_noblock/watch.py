"""Watching one test body: the step clock and the watchdog, started and stopped together."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import steps
from .adapters import running_loop
from .client import LifespanTransport
from .holds import Hold, find_holds
from .origins import LIFESPAN, TEST_CODE, current_origin
from .settings import Settings
from .steps import StepClock
from .threadtime import ThreadUsage
from .watchdog import Watchdog


@dataclass
class Findings:
    failing: list[Hold] = field(default_factory=list)
    noted: list[Hold] = field(default_factory=list)
    steps: int = 0
    dropped: int = 0

    @classmethod
    def merged(cls, all_found: Iterable[Findings]) -> Findings:
        """The findings of several loops watched in one test, worst first."""
        merged = cls()
        for found in all_found:
            merged.failing.extend(found.failing)
            merged.noted.extend(found.noted)
            merged.steps += found.steps
            merged.dropped += found.dropped
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
        self._detach_loop: Callable[[], None] | None = None

    @property
    def started(self) -> bool:
        return self._clock is not None

    def start(self) -> None:
        ident = threading.get_ident()
        self._usage = ThreadUsage(ident, threading.get_native_id())
        self._clock = StepClock(ident, self._usage, keep_over_s=self.settings.budget_s)
        steps.attach(self._clock, TEST_CODE)
        other_loop = running_loop()
        if other_loop is not None:
            self._detach_loop = other_loop.attach(self._clock)
        # The alarm's handler runs on the main thread: it can only sample a loop there.
        on_main_thread = threading.current_thread() is threading.main_thread()
        self._watchdog = Watchdog(
            self._clock, self._usage, self.settings.budget_s, self._cpu_alarm and on_main_thread
        )
        self._watchdog.start()

    def stop(self) -> None:
        """Idempotent, and safe from any thread: also the last line of clean-up."""
        if self._detach_loop is not None:
            self._detach_loop()
            self._detach_loop = None
        if self._clock is not None:
            steps.detach(self._clock)
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
        # Watched from before the lifespan starts until after it shut down: a hold there
        # is the lifespan's (a note), never missed.
        if watch is not None and watchable_loop():
            watch.start()
        try:
            for transport in transports:
                await transport.lifespan.start()
            return await test(*args, **kwargs)
        finally:
            current_origin.reset(token)
            try:
                for transport in transports:
                    await transport.aclose()
            finally:
                if watch is not None:
                    watch.stop()

    return run_watched
