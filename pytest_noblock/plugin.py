"""pytest-noblock's hooks and fixtures: thin wiring around the modules that do the work."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Any

import httpx
import pytest
from _pytest._code.code import ReprFileLocation

from . import steps, strict, strict_patches, strict_report, strict_wrappers, threadpool, tracking
from .client import (
    HOW_TO_SET_THE_APP,
    AppError,
    LifespanError,
    LifespanTransport,
    check_asgi_app,
    load_app,
)
from .client import make_client as _make_client
from .holds import Hold
from .portals import SyncWatch
from .records import hold_record, make_record, strict_record
from .report import failure_text, note_for
from .session import REPORT_ATTRIBUTE, Gate, add_session_options
from .settings import MARKER, MARKER_HELP, Settings, add_options, default_settings, settings_for
from .watch import Findings, LoopWatch, wrap_test
from .watchdog import prepare_cpu_alarm, release_cpu_alarm

_settings_key = pytest.StashKey[Settings]()
_defaults_key = pytest.StashKey[Settings]()
_transports_key = pytest.StashKey[list[LifespanTransport]]()
_cpu_alarm_key = pytest.StashKey[bool]()
_section_key = pytest.StashKey[str]()
_headline_key = pytest.StashKey[str]()
_notes_key = pytest.StashKey[list[str]]()
_gate_key = pytest.StashKey[Gate]()
_record_key = pytest.StashKey[dict[str, object]]()
_allow_used_key = pytest.StashKey[set[str]]()

NOTES_SECTION = "noblock notes"
FAILURE_SECTION = "noblock: the event loop was held"


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)
    add_session_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    config.stash[_defaults_key] = default_settings(config)
    config.stash[_gate_key] = gate = Gate(config, config.stash[_defaults_key])
    config.pluginmanager.register(gate, "noblock-gate")
    config.stash[_cpu_alarm_key] = prepare_cpu_alarm()


def pytest_unconfigure(config: pytest.Config) -> None:
    if config.stash.get(_cpu_alarm_key, False):
        release_cpu_alarm()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    defaults = config.stash[_defaults_key]
    watch_all = config.stash[_gate_key].watch_all
    checked_app = False
    for item in items:
        settings = settings_for(item, defaults, watch_all=watch_all)
        if settings is not None:
            item.stash[_settings_key] = settings
        if not checked_app and _uses_default_app(item):
            _check_app_setting(config, item)
            checked_app = True


def _uses_default_app(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    definitions = info.name2fixturedefs.get("noblock_app") if info is not None else None
    if not definitions:
        return False
    return getattr(definitions[-1].func, "__module__", None) == __name__


def _check_app_setting(config: pytest.Config, item: pytest.Item) -> None:
    spec = config.getini("noblock_app")
    if not spec:
        raise pytest.UsageError(
            f"noblock: {item.nodeid} uses noblock_client, but no app is set: " + HOW_TO_SET_THE_APP
        )
    try:
        check_asgi_app(load_app(spec), f"ini option noblock_app = {spec!r}")
    except AppError as error:
        raise pytest.UsageError(str(error)) from None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    settings = item.stash.get(_settings_key, None)
    transports = item.stash.get(_transports_key, [])
    test = getattr(item, "obj", None)
    if (settings is None and not transports) or not isinstance(item, pytest.Function):
        return (yield)
    if not inspect.iscoroutinefunction(test):
        if settings is None:
            return (yield)
        return (yield from _run_sync_test(item, settings))
    if not _runs_async(item):
        pytest.fail(
            f"noblock: {item.name} is `async def` but no async plugin runs it, so nothing would "
            "be run or watched: mark it @pytest.mark.asyncio (pytest-asyncio, or set "
            "asyncio_mode = auto) or @pytest.mark.anyio",
            pytrace=False,
        )
    return (yield from _run_async_test(item, settings, transports, test))


def _run_sync_test(item: pytest.Function, settings: Settings) -> Generator[None, object, object]:
    """A sync test: the loops watched are the ones its TestClient starts in portal threads."""
    with SyncWatch(settings) as sync_watch:
        try:
            outcome = yield
        except BaseException:
            sync_watch.stop()
            waits = threadpool.take()
            if sync_watch.watched:
                _record(item, sync_watch.findings(), None, waits, failed_already=True)
            raise
    # Under --noblock-all an unmarked test did not ask for a watch: no note for it.
    if item.get_closest_marker(MARKER) is not None:
        for note in sync_watch.notes():
            _add_note(item, note)
    waits = threadpool.take()
    if sync_watch.watched:
        _fail_on_holds(item, sync_watch.findings(), None, waits)
    return outcome


def _run_async_test(
    item: pytest.Function,
    settings: Settings | None,
    transports: list[LifespanTransport],
    test: Callable[..., Any],
) -> Generator[None, object, object]:
    """An async test: its own function, wrapped, runs on the loop its async plugin gives it."""
    watch = LoopWatch(settings, item.config.stash[_cpu_alarm_key]) if settings is not None else None
    item.obj = wrap_test(test, watch, transports)
    recorder = None
    if settings is not None and settings.strict:
        recorder = strict.Recorder((*settings.allow, *settings.ini_allow))
        item.obj = strict_patches.wrap_test(item.obj, recorder)
    if watch is not None:
        # An unmarked test using noblock_client is here only for its lifespan: it pays
        # for no patch.
        steps.install()
        tracking.install()
        threadpool.install()
    try:
        outcome = yield
    except BaseException:
        waits = _finish(item, watch, test)
        if watch is not None and watch.started:
            _record(item, watch.findings(), recorder, waits, failed_already=True)
        raise
    waits = _finish(item, watch, test)
    if watch is not None:
        if not watch.started:
            # Under --noblock-all an unmarked test did not ask for a watch: no note for it.
            if item.get_closest_marker(MARKER) is not None:
                _add_note(
                    item,
                    "nothing was watched: the test body did not run on asyncio's own event loop "
                    "or trio (uvloop and others are not watched yet)",
                )
        else:
            _fail_on_holds(item, watch.findings(), recorder, waits)
    return outcome


def _fail_on_holds(
    item: pytest.Item,
    findings: Findings,
    recorder: strict.Recorder | None = None,
    waits: threadpool.PoolWaits | None = None,
) -> None:
    text = _record(item, findings, recorder, waits, failed_already=False)
    if text is not None:
        item.stash[_headline_key] = text.splitlines()[0]
        pytest.fail(text, pytrace=False)


def _finish(
    item: pytest.Function, watch: LoopWatch | None, test: object
) -> threadpool.PoolWaits | None:
    """Undo everything the test was given; hands back this test's thread-pool waits."""
    item.obj = test
    if watch is not None:
        watch.stop()
    steps.uninstall()
    tracking.uninstall()
    strict_wrappers.uninstall()
    threadpool.uninstall()
    return threadpool.take()


def _record(
    item: pytest.Item,
    findings: Findings,
    recorder: strict.Recorder | None,
    waits: threadpool.PoolWaits | None,
    *,
    failed_already: bool,
) -> str | None:
    """Notes go to the report; returns the failure text when the app held the loop."""
    settings = item.stash[_settings_key]
    rootdir = str(item.config.rootpath)
    for hold in findings.noted:
        _add_note(item, note_for(hold, settings.budget_s, rootdir))
    if findings.dropped:
        _add_note(item, f"{findings.dropped} more long steps were not analysed (limit reached)")
    known_calls = _strict_findings(item, recorder, findings) if recorder is not None else []
    failing = _gate_records(item, settings, findings, known_calls, rootdir)
    verbosity = item.config.get_verbosity()
    texts = []
    if failing:
        texts.append(failure_text(failing, settings.budget_s, rootdir, verbosity))
    if known_calls:
        texts.append(strict_report.failure_text(known_calls, rootdir, verbosity))
    if waits is not None:
        failure = threadpool.failure_text(waits, settings.max_thread_wait_ms)
        if failure is not None:
            texts.append(failure)
        else:
            _add_note(item, threadpool.describe(waits))
    text = "\n\n".join(part for part in texts if part) or None
    if text is not None and failed_already:
        item.stash[_section_key] = text
    return text


def _strict_findings(
    item: pytest.Item, recorder: strict.Recorder, findings: Findings
) -> list[strict.Finding]:
    """The known blocking calls that fail the test: not allowed, not already timed."""
    settings = item.stash[_settings_key]
    timed = [
        (hold.call_site.filename, hold.call_site.lineno)
        for hold in findings.failing
        if hold.call_site
    ]
    verdict = strict.judge(recorder, timed)
    note = strict.stale_note(settings.allow, verdict.used)
    if note is not None:
        _add_note(item, note)
    item.config.stash.setdefault(_allow_used_key, set()).update(verdict.used)
    return verdict.findings


def _gate_records(
    item: pytest.Item,
    settings: Settings,
    findings: Findings,
    known_calls: Sequence[strict.Finding],
    rootdir: str,
) -> list[Hold]:
    """Records the test for the CI gate; returns the failing holds the baseline does not know."""
    gate = item.config.stash[_gate_key]
    holds, failing = [], []
    for hold in findings.failing:
        record = hold_record(hold, rootdir, failing=True)
        record["baselined"] = gate.accepts(record)
        holds.append(record)
        if not record["baselined"]:
            failing.append(hold)
    holds += [hold_record(hold, rootdir, failing=False) for hold in findings.noted]
    notes = item.stash.get(_notes_key, [])
    strict_records = [strict_record(finding, rootdir) for finding in known_calls]
    item.stash[_record_key] = make_record(
        item.nodeid, settings, holds, notes, findings.steps, strict_records
    )
    return failing


def _add_note(item: pytest.Item, note: str) -> None:
    item.stash.setdefault(_notes_key, []).append(note)


def _runs_async(item: pytest.Function) -> bool:
    if "anyio_backend" in item.funcargs:
        return True
    if any(cls.__module__.startswith("pytest_asyncio") for cls in type(item).__mro__):
        return True
    plugins = item.config.pluginmanager
    # Other async runners we do not know the inside of: trust them to run the test.
    return any(plugins.hasplugin(name) for name in ("trio", "pytest_trio", "twisted", "tornasync"))


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
        headline = item.stash.get(_headline_key, None)
        if headline is not None:
            _show_headline_in_short_summary(report, headline)
        section = item.stash.get(_section_key, None)
        if section is not None:
            report.sections.append((FAILURE_SECTION, section))
        notes = item.stash.get(_notes_key, [])
        if notes:
            report.sections.append((NOTES_SECTION, "\n".join(notes)))
        record = item.stash.get(_record_key, None)
        if record is not None:
            setattr(report, REPORT_ATTRIBUTE, record)
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


def pytest_sessionfinish(session: pytest.Session) -> None:
    gate = session.config.stash.get(_gate_key, None)
    if gate is not None:
        gate.finish()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    gate = terminalreporter.config.stash.get(_gate_key, None)
    if gate is not None:
        gate.summary(terminalreporter)
    lines: list[str] = []
    for reports in terminalreporter.stats.values():
        for report in reports:
            for title, content in getattr(report, "sections", ()):
                if title == NOTES_SECTION and getattr(report, "when", None) == "call":
                    lines.extend(f"{report.nodeid}: {note}" for note in content.splitlines())
    config = terminalreporter.config
    if _allow_used_key in config.stash:
        allow = config.stash[_defaults_key].ini_allow
        note = strict.stale_note(allow, config.stash[_allow_used_key])
        if note is not None:
            lines.append(f"ini option noblock_allow: {note}")
    if lines:
        terminalreporter.write_sep("=", NOTES_SECTION)
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture
def noblock_app(request: pytest.FixtureRequest) -> object:
    """The ASGI app under test: override this fixture, or set the ini option noblock_app."""
    spec = request.config.getini("noblock_app")
    if not spec:
        raise AppError("noblock: no app is set: " + HOW_TO_SET_THE_APP)
    return load_app(spec)


@pytest.fixture
def noblock_client(
    noblock_app: object, request: pytest.FixtureRequest
) -> Iterator[httpx.AsyncClient]:
    """An `httpx.AsyncClient` on the app (base URL http://testserver), lifespan included."""
    app = check_asgi_app(noblock_app, "the noblock_app fixture")
    client, transport = _make_client(app)
    request.node.stash.setdefault(_transports_key, []).append(transport)
    yield client
    transport.lifespan.abandon()
