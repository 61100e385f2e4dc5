"""A pytest plugin for the generated benchmark projects (loaded with `-p harness.pytest_bench`).

It only provides plumbing that every tool gets alike: the slow upstream the apps call, a
plain client for the peers (which have no client fixture of their own), the measurement
of each case's true hold after its test, and timing records for the overhead runs. The
tools themselves are set up in each generated project's conftest.py, as their users would.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import os
import statistics
import threading
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

import httpx
import pytest
from corpus import Case, load_cases, slowserver, work
from corpus.drivers import load_driver_cases

PROBE_RUNS = 3


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bench", "pytest-noblock benchmark plumbing")
    group.addoption("--bench-probes", default=None, help="write true-hold probes to this file")
    group.addoption("--bench-timings", default=None, help="write timing records to this file")


def _append(path: str, record: dict[str, Any]) -> None:
    with open(path, "a") as out:
        out.write(json.dumps(record) + "\n")


@pytest.fixture(scope="session", autouse=True)
def bench_upstream() -> Iterator[str]:
    """The slow upstream the apps call: the runner's (its own process), or one started here."""
    given = os.environ.get(work.SLOW_URL_ENV)
    if given:
        yield given
        return
    with slowserver.running() as url:
        os.environ[work.SLOW_URL_ENV] = url
        try:
            yield url
        finally:
            os.environ.pop(work.SLOW_URL_ENV, None)


@pytest.fixture
def bench_client(bench_app: Any) -> httpx.AsyncClient:
    """For the peers: an `httpx.AsyncClient` on the app, like `noblock_client` without lifespan.

    A plain (sync) fixture, so building it happens outside the loop and outside any
    blocking check; `ASGITransport` holds nothing that needs closing.
    """
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=bench_app), base_url="http://test")


def _thread_schedstat() -> tuple[float, float] | None:
    """This thread's time on a CPU and time runnable but waiting for one, in seconds."""
    try:
        with open("/proc/thread-self/schedstat") as stat:
            on_cpu, waiting, _ = stat.read().split()
    except (OSError, ValueError):
        return None
    return int(on_cpu) / 1e9, int(waiting) / 1e9


def time_probe(probe: Callable[[], object]) -> tuple[float, float]:
    """Run a blocking call alone: (wall ms, ms of that spent waiting for a CPU)."""
    before = _thread_schedstat()
    started = time.perf_counter()
    probe()
    wall = time.perf_counter() - started
    after = _thread_schedstat()
    waiting = max(after[1] - before[1], 0.0) if before and after else 0.0
    return wall * 1000, waiting * 1000


class StepReferee:
    """Times every asyncio loop step of a test: the loop's true hold, in place.

    A probe runs the blocking call alone, off the loop; the same call can cost more inside
    the request (a C encoder on a heap the app has churned). The loop is held for the
    whole step that made the call, so the longest step of the case's test, timed around
    asyncio's `Handle._run`, is the reference. Its time is wall time less what the machine
    took (CPU waits, as for the probe) and, as a step may also pay for a garbage collection
    of the whole test process's heap, less the collections its own thread ran (a TestClient
    case's steps run on a portal thread). Kept independent of the plugin: plain
    `perf_counter`, schedstat and `gc.callbacks`.
    """

    def __init__(self) -> None:
        # None when no asyncio step ran (a trio case): its probe is then the reference.
        self.longest_ms: float | None = None
        self._original: Any = None
        # Per thread: seconds spent in collections so far, and when the current one began.
        self._collecting_s: dict[int, float] = {}
        self._collection_started: dict[int, float] = {}

    def _on_collection(self, phase: str, info: dict[str, int]) -> None:
        thread = threading.get_ident()
        if phase == "start":
            self._collection_started[thread] = time.perf_counter()
        elif thread in self._collection_started:
            took = time.perf_counter() - self._collection_started.pop(thread)
            self._collecting_s[thread] = self._collecting_s.get(thread, 0.0) + took

    def __enter__(self) -> StepReferee:
        original = self._original = asyncio.Handle._run
        referee = self

        def timed_run(handle: asyncio.Handle) -> None:
            thread = threading.get_ident()
            collected_before = referee._collecting_s.get(thread, 0.0)
            wall_ms, waiting_ms = time_probe(lambda: original(handle))
            collected_ms = (referee._collecting_s.get(thread, 0.0) - collected_before) * 1000
            held_ms = wall_ms - waiting_ms - collected_ms
            referee.longest_ms = max(referee.longest_ms or 0.0, held_ms)

        asyncio.Handle._run = timed_run  # type: ignore[method-assign,assignment]
        gc.callbacks.append(self._on_collection)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.Handle._run = self._original  # type: ignore[method-assign]
        gc.callbacks.remove(self._on_collection)


@pytest.fixture(autouse=True)
def bench_true_hold(request: pytest.FixtureRequest) -> Iterator[None]:
    """Time a blocking case's true hold: in place during its test, and its call alone after.

    The call alone runs once before the test too, untimed, so that neither the app's call
    nor the timed ones pay a first-call cost (imports, caches) the others do not. Alone,
    the true hold is the wall time less the time the thread sat runnable without a CPU
    (the machine's fault, not the call's), read from the kernel's per-thread counters.
    """
    case = _case_to_probe(request)
    try:
        if case is None or case.probe is None:
            yield
            return
        case.probe()  # warm: the app's call and the timed ones below are all warm calls
        with StepReferee() as referee:
            yield
        _probe(request, case, referee.longest_ms)
    finally:
        work.clear_scratch_files()


def _case_to_probe(request: pytest.FixtureRequest) -> Case | None:
    name = getattr(request.module, "CASE_NAME", None)
    if not request.config.getoption("bench_probes") or name is None:
        return None
    return _find_case(name)


@functools.cache
def _find_case(name: str) -> Case | None:
    """A case of the timing corpus or, failing that, of the drivers group (imported only then)."""
    for case in load_cases():
        if case.name == name:
            return case
    return next((case for case in load_driver_cases() if case.name == name), None)


def _probe(request: pytest.FixtureRequest, case: Case, in_place_ms: float | None) -> None:
    assert case.probe is not None
    runs = [time_probe(case.probe) for _ in range(PROBE_RUNS)]
    held = [wall - waiting for wall, waiting in runs]
    _append(
        request.config.getoption("bench_probes"),
        {
            "case": case.name,
            "wall_ms": [wall for wall, _ in runs],
            "held_ms": held,
            "true_ms": statistics.median(held),
            "true_wall_ms": statistics.median(wall for wall, _ in runs),
            "in_place_ms": in_place_ms,
        },
    )


@pytest.fixture
def bench_record(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Record a timing measured inside a test body (overhead runs)."""

    def record(**values: Any) -> None:
        path = request.config.getoption("bench_timings")
        if path:
            _append(path, {"nodeid": request.node.nodeid, **values})

    return record


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """Whole-test wall time (setup, call, teardown, reporting) for the fixed-cost runs."""
    path = item.config.getoption("bench_timings")
    if not path or item.get_closest_marker("bench_fixed_cost") is None:
        return (yield)
    started = time.perf_counter()
    try:
        return (yield)
    finally:
        marker = item.get_closest_marker("noblock")
        # The strict group's overhead run pairs strict=True with strict=False tests.
        marked = marker is not None and bool(marker.kwargs.get("strict", True))
        _append(
            path,
            {
                "nodeid": item.nodeid,
                "fixed": True,
                "marked": marked,
                "wall": time.perf_counter() - started,
            },
        )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "bench_fixed_cost: time this whole test (benchmark)")
