"""Running one test under the watch: what the plugin's `pytest_runtest_call` hands over.

A sync test is watched on the loops its `TestClient` starts (`portals`); an async test's
own function is wrapped to run under a `LoopWatch` on its loop. Either way, what was found
ends as notes, a record for the CI gate and, when the app held the loop, the failure text.
The state a test leaves for the report hooks sits in its stash, under the keys below.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any

import pytest

from . import steps, strict, threadpool, tracking
from .adapters import sync_test_notes
from .client import LifespanTransport
from .holds import Hold
from .keys import (
    ALLOW_USED,
    CPU_ALARM,
    FAILURE_TEXT,
    GATE,
    HEADLINE,
    LIFESPAN_SITES_TOLD,
    NOTES,
    RECORD,
    REQUESTS_BEFORE,
    SETTINGS,
    UNWATCHED,
)
from .origins import LIFESPAN
from .portals import SyncWatch
from .reporting.failure import failure_text, note_for
from .reporting.records import hold_record, make_record, strict_record
from .settings import MARKER, Settings
from .strict import patches as strict_patches
from .strict import report as strict_report
from .strict import wrappers as strict_wrappers
from .watch import Findings, LoopWatch, wrap_test

LOOP_NOT_WATCHED = (
    "nothing was watched: the test body ran on an event loop the plugin cannot time "
    "(asyncio's own, uvloop and trio are timed)"
)


def run_sync_test(item: pytest.Function, settings: Settings) -> Generator[None, object, object]:
    """A sync test: the loops watched are the ones its TestClient starts in portal threads.

    In strict mode the known blocking calls are wrapped for the test body; what the app
    calls on those portals' loops is recorded (the test's own thread runs no loop).
    """
    item.stash[REQUESTS_BEFORE] = tracking.requests_named()
    recorder = strict.Recorder((*settings.allow, *settings.ini_allow)) if settings.strict else None
    with SyncWatch(settings) as sync_watch:
        try:
            if recorder is not None:
                strict_patches.install(recorder, this_thread=False)
            outcome = yield
        except BaseException:
            sync_watch.stop()
            strict_wrappers.uninstall()
            waits = threadpool.take()
            if sync_watch.watched:
                _record(item, sync_watch.findings(), recorder, waits, failed_already=True)
            raise
        finally:
            strict_wrappers.uninstall()
    # Under --noblock-all an unmarked test did not ask for a watch: no note for it.
    if item.get_closest_marker(MARKER) is not None:
        for note in [*sync_watch.notes(), *sync_test_notes(item)]:
            add_note(item, note)
        if not sync_watch.watched:
            item.stash[UNWATCHED] = " ".join(sync_watch.notes())
    waits = threadpool.take()
    if sync_watch.watched:
        _fail_on_holds(item, sync_watch.findings(), recorder, waits)
    return outcome


def run_async_test(
    item: pytest.Function,
    settings: Settings | None,
    transports: list[LifespanTransport],
    test: Callable[..., Any],
) -> Generator[None, object, object]:
    """An async test: its own function, wrapped, runs on the loop its async plugin gives it.

    The loops of the blocking portals it starts (Litestar's `AsyncTestClient` serves the app
    on one) are watched beside it.
    """
    watch = LoopWatch(settings, item.config.stash[CPU_ALARM]) if settings is not None else None
    portals = SyncWatch(settings) if settings is not None else None
    item.obj = wrap_test(test, watch, transports)
    recorder = None
    if settings is not None and settings.strict:
        recorder = strict.Recorder((*settings.allow, *settings.ini_allow))
        item.obj = strict_patches.wrap_test(item.obj, recorder)
    if watch is not None and portals is not None:
        item.stash[REQUESTS_BEFORE] = tracking.requests_named()
        # An unmarked test using noblock_client is here only for its lifespan: it pays
        # for no patch.
        steps.install()
        tracking.install()
        threadpool.install()
        portals.start()
    try:
        outcome = yield
    except BaseException:
        waits = _finish(item, watch, test, portals)
        if watch is not None and portals is not None and (watch.started or portals.watched):
            _record(item, _all_findings(watch, portals), recorder, waits, failed_already=True)
        raise
    waits = _finish(item, watch, test, portals)
    if watch is not None and portals is not None:
        # Under --noblock-all an unmarked test did not ask for a watch: no note for it.
        marked = item.get_closest_marker(MARKER) is not None
        if not watch.started:
            # It ran a loop the plugin cannot time: told in a note when the test asked for
            # a watch, and counted in the summary when no portal loop was watched either.
            if not portals.watched:
                item.stash[UNWATCHED] = LOOP_NOT_WATCHED
            if marked:
                add_note(item, LOOP_NOT_WATCHED)
        if marked:
            for note in portals.unwatched_notes():
                add_note(item, note)
        if watch.started or portals.watched:
            _fail_on_holds(item, _all_findings(watch, portals), recorder, waits)
    return outcome


def _all_findings(watch: LoopWatch, portals: SyncWatch) -> Findings:
    return Findings.merged([watch.findings(), portals.findings()])


def _fail_on_holds(
    item: pytest.Item,
    findings: Findings,
    recorder: strict.Recorder | None = None,
    waits: threadpool.PoolWaits | None = None,
) -> None:
    text = _record(item, findings, recorder, waits, failed_already=False)
    if text is not None:
        item.stash[HEADLINE] = text.splitlines()[0]
        pytest.fail(text, pytrace=False)


def _finish(
    item: pytest.Function, watch: LoopWatch | None, test: object, portals: SyncWatch | None
) -> threadpool.PoolWaits | None:
    """Undo everything the test was given; hands back this test's thread-pool waits."""
    item.obj = test
    if watch is not None:
        watch.stop()
    if portals is not None:
        portals.stop()
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
    settings = item.stash[SETTINGS]
    rootdir = str(item.config.rootpath)
    told = item.config.stash.setdefault(LIFESPAN_SITES_TOLD, set())
    for hold in findings.noted:
        if hold.origin is LIFESPAN:
            # The same lifespan runs for every test: told once, summed up at the end.
            site = hold.call_site
            where = (site.filename, site.lineno) if site is not None else None
            if where in told:
                continue
            told.add(where)
        add_note(item, note_for(hold, settings.budget_s, rootdir))
    if findings.dropped:
        add_note(item, f"{findings.dropped} more long steps were not analysed (limit reached)")
    for note in findings.notes:
        add_note(item, note)
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
            add_note(item, threadpool.describe(waits))
    text = "\n\n".join(part for part in texts if part) or None
    if text is not None and failed_already:
        item.stash[FAILURE_TEXT] = text
    return text


def _strict_findings(
    item: pytest.Item, recorder: strict.Recorder, findings: Findings
) -> list[strict.Finding]:
    """The known blocking calls that fail the test: not allowed, not already timed."""
    settings = item.stash[SETTINGS]
    timed = [
        (hold.call_site.filename, hold.call_site.lineno)
        for hold in findings.failing
        if hold.call_site
    ]
    verdict = strict.judge(recorder, timed)
    note = strict.stale_note(settings.allow, verdict.used)
    if note is not None:
        add_note(item, note)
    item.config.stash.setdefault(ALLOW_USED, set()).update(verdict.used)
    return verdict.findings


def _gate_records(
    item: pytest.Item,
    settings: Settings,
    findings: Findings,
    known_calls: Sequence[strict.Finding],
    rootdir: str,
) -> list[Hold]:
    """Records the test for the CI gate; returns the failing holds the baseline does not know."""
    gate = item.config.stash[GATE]
    holds, failing = [], []
    for hold in findings.failing:
        record = hold_record(hold, rootdir, failing=True)
        record["baselined"] = gate.accepts(record)
        holds.append(record)
        if not record["baselined"]:
            failing.append(hold)
    holds += [hold_record(hold, rootdir, failing=False) for hold in findings.noted]
    notes = item.stash.get(NOTES, [])
    strict_records = [strict_record(finding, rootdir) for finding in known_calls]
    before = item.stash.get(REQUESTS_BEFORE, None)
    requests = tracking.requests_named() - before - 1 if before is not None else 0
    item.stash[RECORD] = make_record(
        test_id(item), settings, holds, notes, findings.steps, requests, strict_records
    )
    return failing


def test_id(item: pytest.Item) -> str:
    """The test's node id, ending in its own name where the id lost it.

    schemathesis 4 makes one test per API operation, named `test_api[GET /items/{id}]`;
    under pytest 9.2 they all share the node id `...::test_api`, which would make one record
    of them all.
    """
    parent, _, last = item.nodeid.rpartition("::")
    if parent and last != item.name and item.name.startswith(last + "["):
        return f"{parent}::{item.name}"
    return item.nodeid


def add_note(item: pytest.Item, note: str) -> None:
    item.stash.setdefault(NOTES, []).append(note)


def runs_async(item: pytest.Function) -> bool:
    if "anyio_backend" in item.funcargs:
        return True
    if any(cls.__module__.startswith("pytest_asyncio") for cls in type(item).__mro__):
        return True
    plugins = item.config.pluginmanager
    # Other async runners we do not know the inside of: trust them to run the test.
    return any(plugins.hasplugin(name) for name in ("trio", "pytest_trio", "twisted", "tornasync"))
