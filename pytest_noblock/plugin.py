"""pytest-noblock's hooks and fixtures: thin wiring around the modules that do the work."""

from __future__ import annotations

import dataclasses
import inspect
import os
import sys
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING

import pytest
from _pytest._code.code import ReprFileLocation

from . import platforms, sweep_options
from .alarm import prepare_cpu_alarm, release_cpu_alarm
from .errors import HOW_TO_SET_THE_APP, AppError, LifespanError
from .keys import (
    ALLOW_USED,
    CPU_ALARM,
    DEFAULTS,
    FAILURE_TEXT,
    GATE,
    HEADLINE,
    NOTES,
    RECORD,
    SETTINGS,
    TRANSPORTS,
    UNWATCHED,
    forget_attempt,
)
from .reporting.gate import REPORT_ATTRIBUTE, UNWATCHED_ATTRIBUTE, Gate, add_session_options
from .settings import MARKER_HELP, add_options, app_setting, default_settings, settings_for

# The watching machinery (step clock, watchdog, patches, the client and what they import:
# asyncio's internals, httpx, anyio) is imported only once a test is watched: a run that
# watches nothing does not pay for it.
if TYPE_CHECKING:
    import httpx

NOTES_SECTION = "noblock notes"
FAILURE_SECTION = "noblock: the event loop was held"
# The platform to put back when a session ends (pytester runs sessions inside sessions).
PLATFORM_BEFORE = pytest.StashKey[platforms.Platform]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)
    add_session_options(parser)
    sweep_options.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    config.stash[DEFAULTS] = default_settings(config)
    config.stash[GATE] = gate = Gate(config, config.stash[DEFAULTS])
    config.pluginmanager.register(gate, "noblock-gate")
    config.stash[PLATFORM_BEFORE] = platforms.enter(os.environ)
    config.stash[CPU_ALARM] = prepare_cpu_alarm()
    if config.getoption("noblock_sweep"):
        from . import sweep

        sweeping = sweep.SweepPlugin(config)
        config.pluginmanager.register(sweeping, "noblock-sweep")
        gate.sections["sweep"] = sweeping.report_section


def pytest_keyboard_interrupt() -> None:
    # The test interrupted ran no teardown: its threads are joined before the session's
    # end hooks, where a suite may look for threads left behind.
    _join_stopped_threads()


def pytest_unconfigure(config: pytest.Config) -> None:
    if config.stash.get(CPU_ALARM, False):
        release_cpu_alarm()
    if PLATFORM_BEFORE in config.stash:
        platforms.leave(config.stash[PLATFORM_BEFORE])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    defaults = config.stash[DEFAULTS]
    watch_all = config.stash[GATE].watch_all
    checked_app = False
    watching = not config.getoption("noblock_off")
    for item in items:
        settings = settings_for(item, defaults, watch_all=watch_all)
        if settings is not None and watching:
            item.stash[SETTINGS] = settings
        if not checked_app and _uses_default_app(item):
            _check_app_setting(config, item)
            checked_app = True
    if any(SETTINGS in item.stash for item in items):
        # Loaded before any fixture runs: the patches it prepares keep the libraries' own
        # methods, whatever a fixture patches later.
        from . import runner  # noqa: F401


def _uses_default_app(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    definitions = info.name2fixturedefs.get("noblock_app") if info is not None else None
    if not definitions:
        return False
    return getattr(definitions[-1].func, "__module__", None) == __name__


def _check_app_setting(config: pytest.Config, item: pytest.Item) -> None:
    spec, where = app_setting(config)
    if not spec:
        raise pytest.UsageError(
            f"noblock: {item.nodeid} uses noblock_client, but no app is set: " + HOW_TO_SET_THE_APP
        )
    from .client import check_asgi_app, load_app

    try:
        check_asgi_app(load_app(spec, where), where)
    except AppError as error:
        raise pytest.UsageError(str(error)) from None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # pytest-rerunfailures runs the same item again: each attempt starts with a clean slate.
    forget_attempt(item)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    settings = item.stash.get(SETTINGS, None)
    transports = item.stash.get(TRANSPORTS, [])
    test = getattr(item, "obj", None)
    if (settings is None and not transports) or not isinstance(item, pytest.Function):
        return (yield)
    from . import runner

    if not inspect.iscoroutinefunction(test):
        if settings is None:
            return (yield)
        return (yield from runner.run_sync_test(item, settings))
    if not runner.runs_async(item):
        pytest.fail(
            f"noblock: {item.name} is `async def` but no async plugin runs it, so nothing would "
            "be run or watched: mark it @pytest.mark.asyncio (pytest-asyncio, or set "
            "asyncio_mode = auto) or @pytest.mark.anyio",
            pytrace=False,
        )
    return (yield from runner.run_async_test(item, settings, transports, test))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    try:
        return (yield)
    finally:
        # The test's own patches are undone by now (its fixtures are torn down). Nothing
        # is patched, and no thread started, before a test is first watched, which
        # imports `patching` and `background`.
        if f"{__package__}.patching" in sys.modules:
            from . import patching

            patching.settle()
        _join_stopped_threads()


def _join_stopped_threads() -> None:
    if f"{__package__}.background" in sys.modules:
        from . import background

        background.join_stopped()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    # The user's app or its set-up is at fault: one line says it, a traceback through
    # the plugin would only hide it.
    if call.excinfo is not None and isinstance(call.excinfo.value, AppError):
        report.longrepr = str(call.excinfo.value)
    elif call.excinfo is not None and isinstance(call.excinfo.value, LifespanError):
        report.longrepr = f"LifespanError: {call.excinfo.value}"
    if call.when == "call":
        headline = item.stash.get(HEADLINE, None)
        if headline is not None:
            _show_headline_in_short_summary(report, headline)
        section = item.stash.get(FAILURE_TEXT, None)
        if section is not None:
            report.sections.append((FAILURE_SECTION, section))
        notes = item.stash.get(NOTES, [])
        if notes:
            report.sections.append((NOTES_SECTION, "\n".join(notes)))
        record = item.stash.get(RECORD, None)
        if record is not None:
            setattr(report, REPORT_ATTRIBUTE, record)
        unwatched = item.stash.get(UNWATCHED, None)
        if unwatched is not None:
            setattr(report, UNWATCHED_ATTRIBUTE, unwatched)
    return report


def _show_headline_in_short_summary(report: pytest.TestReport, headline: str) -> None:
    """The short summary shows the crash message; pytest prints all of it on CI.

    pytest-xdist rebuilds the report from the exception chain's own crash entries, so the
    last of those is replaced too.
    """
    longrepr = report.longrepr
    crash = getattr(longrepr, "reprcrash", None)
    if not isinstance(crash, ReprFileLocation):
        return
    shorter = dataclasses.replace(crash, message=headline)
    longrepr.reprcrash = shorter  # type: ignore[union-attr]
    chain = getattr(longrepr, "chain", None)
    if chain:
        traceback, _, description = chain[-1]
        chain[-1] = (traceback, shorter, description)


_GREEN = (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)


def pytest_sessionfinish(session: pytest.Session) -> None:
    gate = session.config.stash.get(GATE, None)
    if gate is None:
        return
    written = gate.finish()
    if session.exitstatus in _GREEN and (not written or gate.watched_nothing() is not None):
        # A CI job must not upload nothing, or watch nothing, and stay green: the summary
        # says why it failed.
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    gate = terminalreporter.config.stash.get(GATE, None)
    if gate is not None:
        gate.summary(terminalreporter)
    lines: list[str] = []
    for outcome, reports in terminalreporter.stats.items():
        if outcome == "rerun":
            continue  # an earlier attempt's notes: the last attempt's are the test's
        for report in reports:
            for title, content in getattr(report, "sections", ()):
                if title == NOTES_SECTION and getattr(report, "when", None) == "call":
                    lines.extend(f"{report.nodeid}: {note}" for note in content.splitlines())
    config = terminalreporter.config
    platform_note = platforms.active.note()
    if platform_note is not None and gate is not None and gate.records:
        lines.append(platform_note)
    if ALLOW_USED in config.stash:
        allow = config.stash[DEFAULTS].ini_allow
        from .strict import stale_note

        note = stale_note(allow, config.stash[ALLOW_USED])
        if note is not None:
            lines.append(f"ini option noblock_allow: {note}")
    if lines:
        terminalreporter.write_sep("=", NOTES_SECTION)
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture
def noblock_app(request: pytest.FixtureRequest) -> object:
    """The ASGI app under test: override this fixture, or set --noblock-app or the ini
    option noblock_app."""
    spec, where = app_setting(request.config)
    if not spec:
        raise AppError("noblock: no app is set: " + HOW_TO_SET_THE_APP)
    from .client import load_app

    return load_app(spec, where)


@pytest.fixture
def noblock_sweep_kwargs() -> dict[str, object]:
    """What every request of `--noblock-sweep` is sent with: override it in conftest.py to
    return `headers=`, `cookies=`, `params=` for `case.call()` (a yield fixture may set the
    app's `dependency_overrides` and clear them after)."""
    return {}


@pytest.fixture
def noblock_client(
    noblock_app: object, request: pytest.FixtureRequest
) -> Iterator[httpx.AsyncClient]:
    """An `httpx.AsyncClient` on the app (base URL http://testserver), lifespan included."""
    from .client import check_asgi_app, make_client

    app = check_asgi_app(noblock_app, "the noblock_app fixture")
    client, transport = make_client(app)
    transports = request.node.stash.setdefault(TRANSPORTS, [])
    transports.append(transport)
    try:
        yield client
    finally:
        transport.lifespan.abandon()
        # A rerun (pytest-rerunfailures) makes a new client for the same item.
        transports.remove(transport)
