"""The tools compared: how each is switched on in a test, and how to read its verdict.

Each tool runs in a pytest process of its own, with the other tools' pytest plugins
switched off (`-p no:NAME`), on the same generated tests. A tool's user-facing set-up
lives in the generated conftest.py and in the marker line above each test, written the way
each tool's documentation shows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from corpus import CORPUS_DIR

APPS_DIR = str(CORPUS_DIR / "apps")
STRICT_DIR = str(CORPUS_DIR / "strict")
DRIVERS_DIR = str(CORPUS_DIR / "drivers")


@dataclass(frozen=True)
class Finding:
    """What a tool said about one test run."""

    blocked: bool
    problem: str | None = None
    ms: float | None = None
    path: str | None = None
    line: int | None = None
    holds: int | None = None

    @property
    def site(self) -> str | None:
        return f"{self.path}:{self.line}" if self.path and self.line else None


PASSED = Finding(blocked=False)


@dataclass(frozen=True)
class Tool:
    key: str
    title: str
    module: str | None
    disable: tuple[str, ...]
    conftest: str
    marker: Callable[[float], str]
    client_fixture: str
    app_fixture: str
    parse: Callable[[str], Finding]
    reports_site: bool
    has_budget: bool = True


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _problem(text: str) -> Finding:
    return Finding(blocked=False, problem=_first_line(text)[:200] or "failed without a message")


# --- pytest-noblock ------------------------------------------------------------------------

HEADLINE = re.compile(
    r"^(?:Failed: )?noblock: "
    r"(?:(?P<holds>\d+) holds of the event loop over the [\d.]+ ms budget; worst: )?"
    r"(?P<who>.+?) held the event loop for (?P<ms>\d+(?:\.\d+)?) ms"
    r"(?: at (?P<path>\S+?):(?P<line>\d+))? \(budget [\d.]+ ms\)",
    re.MULTILINE,
)


STRICT_HEADLINE = re.compile(
    r"^(?:Failed: )?noblock strict: (?P<who>.+?) called (?P<callee>\S+) on the event loop "
    r"at (?P<path>\S+?):(?P<line>\d+)",
    re.MULTILINE,
)


def parse_noblock(text: str) -> Finding:
    match = HEADLINE.search(text)
    if match is None:
        strict = STRICT_HEADLINE.search(text)
        if strict is not None:
            return Finding(blocked=True, path=strict["path"], line=int(strict["line"]), holds=1)
        return _problem(text)
    return Finding(
        blocked=True,
        ms=float(match["ms"]),
        path=match["path"],
        line=int(match["line"]) if match["line"] else None,
        holds=int(match["holds"]) if match["holds"] else 1,
    )


NOBLOCK = Tool(
    key="noblock",
    title="pytest-noblock",
    module=None,
    disable=("pyleak", "loopguard"),
    conftest='"""pytest-noblock: nothing to set up; the marker and noblock_client do it."""\n',
    marker=lambda budget: f"@pytest.mark.noblock(budget_ms={budget:g})",
    client_fixture="noblock_client",
    app_fixture="noblock_app",
    parse=parse_noblock,
    reports_site=True,
)


NOBLOCK_STRICT = Tool(
    key="noblock-strict",
    title="pytest-noblock strict",
    module=None,
    disable=("pyleak", "loopguard"),
    conftest=NOBLOCK.conftest,
    marker=lambda budget: f"@pytest.mark.noblock(budget_ms={budget:g}, strict=True)",
    client_fixture="noblock_client",
    app_fixture="noblock_app",
    parse=parse_noblock,
    reports_site=True,
)


# --- frames in tracebacks --------------------------------------------------------------------

FRAME = re.compile(r'File "(?P<path>[^"]+)", line (?P<line>\d+)')


def _frames(text: str) -> list[tuple[str, int]]:
    return [(match["path"], int(match["line"])) for match in FRAME.finditer(text)]


def _in_apps(path: str) -> bool:
    return path.startswith((APPS_DIR, STRICT_DIR, DRIVERS_DIR))


# --- pyleak --------------------------------------------------------------------------------

PYLEAK_BLOCK = re.compile(r"Event Loop Block: block-\d+\s+Duration: (?P<s>[\d.]+)s")


def parse_pyleak(text: str) -> Finding:
    if "EventLoopBlockError" not in text and "event loop blocks" not in text:
        return _problem(text)
    duration = PYLEAK_BLOCK.search(text)
    site: tuple[str, int] | None = None
    start = text.find("Blocking Stack:")
    if start >= 0:
        end = text.find("Event Loop Block:", start)
        stack = _frames(text[start : end if end >= 0 else len(text)])
        app = [frame for frame in stack if _in_apps(frame[0])]
        site = app[-1] if app else None
    return Finding(
        blocked=True,
        ms=float(duration["s"]) * 1000 if duration else None,
        path=site[0] if site else None,
        line=site[1] if site else None,
        holds=len(PYLEAK_BLOCK.findall(text)) or None,
    )


PYLEAK = Tool(
    key="pyleak",
    title="pyleak",
    module="pyleak",
    disable=("noblock", "loopguard"),
    conftest='"""pyleak: its pytest plugin acts on the no_leaks marker."""\n',
    marker=lambda budget: (
        "@pytest.mark.no_leaks(tasks=False, threads=False, blocking=True, "
        f"blocking_threshold={budget / 1000:g})"
    ),
    client_fixture="bench_client",
    app_fixture="bench_app",
    parse=parse_pyleak,
    reports_site=True,
)


# --- blockbuster ---------------------------------------------------------------------------

BLOCKBUSTER_CONFTEST = '''"""blockbuster, as its README shows: an autouse fixture for every test."""

from collections.abc import Iterator

import pytest
from blockbuster import BlockBuster, blockbuster_ctx


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    with blockbuster_ctx() as bb:
        yield bb
'''


def parse_blockbuster(text: str) -> Finding:
    if "BlockingError" not in text:
        return _problem(text)
    frames = _frames(text)
    site: tuple[str, int] | None = None
    for index, (path, _) in enumerate(frames):
        if path.replace("\\", "/").endswith("blockbuster/blockbuster.py"):
            app = [frame for frame in frames[:index] if _in_apps(frame[0])]
            if app:
                site = app[-1]
                break
    return Finding(blocked=True, path=site[0] if site else None, line=site[1] if site else None)


BLOCKBUSTER = Tool(
    key="blockbuster",
    title="blockbuster",
    module="blockbuster",
    disable=("noblock", "pyleak", "loopguard"),
    conftest=BLOCKBUSTER_CONFTEST,
    marker=lambda budget: "",
    client_fixture="bench_client",
    app_fixture="bench_app",
    parse=parse_blockbuster,
    reports_site=True,
    has_budget=False,
)


# --- fastapi-loopguard ---------------------------------------------------------------------

LOOPGUARD_LAG = re.compile(r"Event loop blocking detected!.*?max lag: (?P<ms>[\d.]+)ms", re.S)


def parse_loopguard(text: str) -> Finding:
    match = LOOPGUARD_LAG.search(text)
    if match is None:
        return _problem(text)
    return Finding(blocked=True, ms=float(match["ms"]))


LOOPGUARD = Tool(
    key="loopguard",
    title="fastapi-loopguard",
    module="fastapi_loopguard",
    disable=("noblock", "pyleak"),
    conftest='"""fastapi-loopguard: its pytest plugin acts on the no_blocking marker."""\n',
    marker=lambda budget: f"@pytest.mark.no_blocking(threshold_ms={budget:g})",
    client_fixture="bench_client",
    app_fixture="bench_app",
    parse=parse_loopguard,
    reports_site=False,
)


# --- asyncio debug mode --------------------------------------------------------------------

ASYNCIO_DEBUG_CONFTEST = '''"""asyncio debug mode: slow callbacks get logged, and fail the test.

The marked test runs with the loop in debug mode and slow_callback_duration set to the
budget (a sync test: every loop it starts, such as TestClient's); every "Executing ... took
N seconds" warning from the asyncio logger fails it.
"""

import asyncio
import inspect
import logging
from collections.abc import Generator
from typing import Any

import pytest


class SlowCallbacks(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Executing "):
            self.messages.append(message)


class DebugLoops(asyncio.DefaultEventLoopPolicy):
    """For a sync test (TestClient): every loop made while it runs is a debug loop.

    TestClient runs the app on a loop of its own (anyio's portal thread), made through the
    policy: this is PYTHONASYNCIODEBUG=1 with the budget as slow_callback_duration.
    """

    def __init__(self, budget_s: float) -> None:
        super().__init__()
        self.budget_s = budget_s

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        loop = super().new_event_loop()
        loop.set_debug(True)
        loop.slow_callback_duration = self.budget_s
        return loop


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "asyncio_debug(budget_ms): fail on slow callbacks")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    marker = item.get_closest_marker("asyncio_debug")
    test = getattr(item, "obj", None)
    if marker is None or test is None:
        return (yield)
    budget_s = marker.kwargs["budget_ms"] / 1000

    async def debugged(*args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        loop.slow_callback_duration = budget_s
        loop.set_debug(True)
        await asyncio.sleep(0)  # the test body starts in a callback that debug mode times
        return await test(*args, **kwargs)

    # The last callback is logged after the test coroutine returns: keep listening till then.
    handler = SlowCallbacks()
    logger = logging.getLogger("asyncio")
    logger.addHandler(handler)
    policy = asyncio.get_event_loop_policy()
    if inspect.iscoroutinefunction(test):
        item.obj = debugged
    else:
        asyncio.set_event_loop_policy(DebugLoops(budget_s))
    try:
        result = yield
    finally:
        item.obj = test
        asyncio.set_event_loop_policy(policy)
        logger.removeHandler(handler)
    if handler.messages:
        pytest.fail(
            f"asyncio debug: {len(handler.messages)} slow callback(s); "
            f"first: {handler.messages[0]}",
            pytrace=False,
        )
    return result
'''

DEBUG_TOOK = re.compile(r"took (?P<s>[\d.]+) seconds")
DEBUG_AT = re.compile(r"(?:running|created) at (?P<path>[^\s:>]+\.py):(?P<line>\d+)")


def parse_asyncio_debug(text: str) -> Finding:
    if "asyncio debug:" not in text:
        return _problem(text)
    took = DEBUG_TOOK.search(text)
    site = next((match for match in DEBUG_AT.finditer(text) if _in_apps(match["path"])), None)
    return Finding(
        blocked=True,
        ms=float(took["s"]) * 1000 if took else None,
        path=site["path"] if site else None,
        line=int(site["line"]) if site else None,
    )


ASYNCIO_DEBUG = Tool(
    key="asyncio-debug",
    title="asyncio debug mode",
    module=None,
    disable=("noblock", "pyleak", "loopguard"),
    conftest=ASYNCIO_DEBUG_CONFTEST,
    marker=lambda budget: f"@pytest.mark.asyncio_debug(budget_ms={budget:g})",
    client_fixture="bench_client",
    app_fixture="bench_app",
    parse=parse_asyncio_debug,
    reports_site=True,
)

ALL = (NOBLOCK, PYLEAK, BLOCKBUSTER, LOOPGUARD, ASYNCIO_DEBUG)
PEERS = ALL[1:]
BY_KEY = {tool.key: tool for tool in ALL}


# --- drivers a tool cannot run (corpus.drivers) ----------------------------------------------

# Shown as "n/a" in the drivers group, not as misses, with the reason in RESULTS.md.
CANNOT_RUN: dict[tuple[str, str], str] = {
    ("pyleak", "testclient"): (
        "its `no_leaks` marker watches the event loop in `async def` tests only; on a sync "
        "test it checks threads and nothing else (run anyway, it passes every blocking case)"
    ),
    ("pyleak", "litestar"): (
        "as with TestClient: its `no_leaks` marker watches the event loop in `async def` tests "
        "only, and Litestar's `TestClient` test is sync (its loop runs in a portal thread)"
    ),
    ("pyleak", "schemathesis"): (
        "as with TestClient: its `no_leaks` marker watches the event loop in `async def` tests "
        "only, and a `case.call()` test is sync (the app runs on schemathesis's loop thread)"
    ),
    ("blockbuster", "trio"): (
        "its wrappers act only when `asyncio.get_running_loop()` finds a loop in the calling "
        "thread, and a trio run has none (run anyway, it passes every blocking case)"
    ),
    ("loopguard", "testclient"): (
        "its `no_blocking` marker does nothing on a sync test (it warns: there is no event "
        "loop to monitor); TestClient's loop in the portal thread is not watched"
    ),
    ("loopguard", "litestar"): (
        "as with TestClient: its `no_blocking` marker does nothing on a sync test; Litestar's "
        "`TestClient` loop in the portal thread is not watched"
    ),
    ("loopguard", "schemathesis"): (
        "as with TestClient: its `no_blocking` marker does nothing on a sync test; "
        "schemathesis's loop thread is not watched"
    ),
    ("loopguard", "trio"): (
        "its detector is an asyncio task (`asyncio.create_task`): on trio every marked test "
        "errors with `RuntimeError: no running event loop`"
    ),
    ("asyncio-debug", "trio"): (
        "debug mode is a setting of an asyncio loop, and a trio run has none (the test's loop "
        "cannot be put in debug mode: `RuntimeError: no running event loop`)"
    ),
}


def cannot_run(tool: Tool, driver: str) -> str | None:
    """Why `tool` cannot run a test driven this way at all, or None when it can."""
    return CANNOT_RUN.get((tool.key, driver))
