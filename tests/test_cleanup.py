"""Clean-up: whatever way a watched test ends, the plugin leaves nothing behind.

No watchdog thread, no patched asyncio or httpx, no warnings, no pending lifespan task, no
faulthandler timer still armed, after a test that passed, failed, errored, was skipped or
was interrupted.
"""

from __future__ import annotations

import json
import threading
import time

# Imported here, before pytester snapshots sys.modules: a plugin in this venv imports part of
# starlette at start-up, and re-importing the rest per inner run mixes two copies of its
# routing module (every route then misses and answers 307).
import fastapi  # noqa: F401
import pytest
from conftest import APP_CONFTEST, Project

from pytest_noblock import background

APP = """
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI

events = []


@asynccontextmanager
async def lifespan(app):
    events.append("startup")
    yield
    events.append("shutdown")


app = FastAPI(lifespan=lifespan)


@app.get("/ping")
async def ping():
    return {"ok": True}


@app.get("/slow")
async def slow():
    time.sleep(0.2)
    return {}
"""

# Each scenario is a marked test module that ends one way; test_zz.py runs after it.
SCENARIOS = {
    "passed": """
        import pytest

        @pytest.mark.noblock
        async def test_passed(noblock_client):
            assert (await noblock_client.get("/ping")).status_code == 200
        """,
    "failed_hold": """
        import pytest

        @pytest.mark.noblock
        async def test_failed_hold(noblock_client):
            assert (await noblock_client.get("/slow")).status_code == 200
        """,
    "failed_hold_sync": """
        import pytest
        from fastapi.testclient import TestClient

        from app import app

        @pytest.mark.noblock
        def test_failed_hold_sync():
            with TestClient(app) as client:
                assert client.get("/slow").status_code == 200
        """,
    "portal_only_sync": """
        import anyio.from_thread
        import pytest
        from fastapi.testclient import TestClient

        from app import app

        @pytest.mark.noblock
        def test_portal_only_sync():
            # Portals closed at once: the watch of each may not have begun on its loop yet.
            for _ in range(20):
                with anyio.from_thread.start_blocking_portal():
                    pass
            assert TestClient(app).get("/ping").status_code == 200
            with TestClient(app) as client:
                assert client.get("/ping").status_code == 200
        """,
    "failed_assertion": """
        import pytest

        @pytest.mark.noblock
        async def test_failed_assertion(noblock_client):
            assert (await noblock_client.get("/ping")).status_code == 418
        """,
    "errored": """
        import pytest

        @pytest.fixture
        async def broken(noblock_client):
            assert (await noblock_client.get("/ping")).status_code == 200
            raise RuntimeError("the fixture broke")

        @pytest.mark.noblock
        async def test_errored(noblock_client, broken):
            assert (await noblock_client.get("/ping")).status_code == 200
        """,
    "skipped": """
        import pytest

        @pytest.mark.noblock
        async def test_skipped(noblock_client):
            assert (await noblock_client.get("/ping")).status_code == 200
            pytest.skip("not today")
        """,
}

OUTCOMES = {
    "passed": {"passed": 1},
    "failed_hold": {"failed": 1},
    "failed_hold_sync": {"failed": 1},
    "portal_only_sync": {"passed": 1},
    "failed_assertion": {"failed": 1},
    "errored": {"errors": 1},
    "skipped": {"skipped": 1},
}

# The plugin's threads are `_thread`'s, which `threading.enumerate()` does not list: a thread
# of the plugin's is one running the plugin's code.
PLUGIN_THREADS = """

def plugin_threads():
    import os
    import sys
    import threading

    own = os.sep + "pytest_noblock" + os.sep
    found = []
    for ident, frame in sys._current_frames().items():
        while frame is not None and ident != threading.get_ident():
            if own in frame.f_code.co_filename:
                found.append(ident)
                break
            frame = frame.f_back
    return found
"""

CHECK = (
    PLUGIN_THREADS
    + """
import asyncio
import gc
import signal
import sys
import threading

import httpx

import app


def test_zz_no_watchdog_thread():
    assert not plugin_threads()


def test_zz_asyncio_httpx_and_threading_are_unpatched():
    # The plugin's wrappers carry the wrapped method's name; `__wrapped__` gives them away.
    for method in (
        asyncio.events.Handle._run,
        httpx.ASGITransport.handle_async_request,
        threading.Thread.start,
    ):
        assert not hasattr(method, "__wrapped__"), method


def test_zz_cpu_alarm_disarmed():
    assert signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)


def test_zz_switch_interval_is_the_interpreters_again():
    assert sys.getswitchinterval() == 0.005


def test_zz_no_pending_task():
    gc.collect()
    # type(), not isinstance(): a lazy object (Django's settings, once another test
    # imported Django) would be set up by reading its __class__.
    pending = [
        task
        for task in gc.get_objects()
        if issubclass(type(task), asyncio.Task) and not task.done()
    ]
    assert not pending


def test_zz_lifespan_shut_down():
    assert app.events.count("startup") >= 1
    assert app.events.count("startup") == app.events.count("shutdown"), app.events
"""
)
CHECKS = 6

NOISE = ("PytestUnraisableExceptionWarning", "never awaited", "Task was destroyed")


def assert_quiet(result: pytest.RunResult) -> None:
    output = result.stdout.str() + "\n" + result.stderr.str()
    for text in NOISE:
        assert text not in output


def write_scenarios(project: Project, *names: str) -> None:
    project.app(APP)
    for name in names:
        project.tests(SCENARIOS[name], name=f"test_{name}")
    # Collected after the scenarios: pytest runs files in alphabetical order.
    project.tests(CHECK, name="test_zz")


@pytest.mark.parametrize(
    "scenario",
    [
        "passed",
        "failed_hold",
        "failed_hold_sync",
        "portal_only_sync",
        "failed_assertion",
        "errored",
        "skipped",
    ],
)
def test_nothing_is_left_behind(project: Project, scenario: str) -> None:
    write_scenarios(project, scenario)
    result = project.run("-W", "error")
    outcomes = dict(OUTCOMES[scenario])
    outcomes["passed"] = outcomes.get("passed", 0) + CHECKS
    result.assert_outcomes(**outcomes)
    assert_quiet(result)


def test_nothing_is_left_behind_after_all_endings_in_one_real_run(project: Project) -> None:
    write_scenarios(project, *SCENARIOS)
    result = project.run_subprocess("-W", "error")
    result.assert_outcomes(passed=2 + CHECKS, failed=3, errors=1, skipped=1)
    assert_quiet(result)


REPORT_AT_EXIT = (
    PLUGIN_THREADS
    + """

import asyncio
import json
import signal
import sys
import threading

import httpx


def pytest_unconfigure(config):
    import app as app_module

    state = {
        "threads": plugin_threads(),
        "wrapped": [
            method.__qualname__
            for method in (
                asyncio.events.Handle._run,
                httpx.ASGITransport.handle_async_request,
                threading.Thread.start,
            )
            if hasattr(method, "__wrapped__")
        ],
        "events": app_module.events,
        "cpu_alarm": list(signal.getitimer(signal.ITIMER_PROF)),
        "switch_interval": sys.getswitchinterval(),
    }
    with open("state.json", "w") as file:
        json.dump(state, file)
"""
)


def test_nothing_is_left_behind_after_keyboard_interrupt(project: Project) -> None:
    project.app(APP)
    project.pytester.makeconftest(APP_CONFTEST + REPORT_AT_EXIT)
    project.tests(
        """
        import pytest

        from fastapi.testclient import TestClient

        from app import app

        @pytest.mark.noblock
        def test_interrupted():
            with TestClient(app) as client:
                assert client.get("/slow").status_code == 200
            raise KeyboardInterrupt

        def test_never_runs():
            pass
        """
    )
    result = project.run_subprocess("-W", "error")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    # The run stopped at the interrupt: test_never_runs did not run.
    result.stdout.fnmatch_lines(["*!!! KeyboardInterrupt !!!*", "*= no tests ran in *"])
    assert_quiet(result)
    state = json.loads((project.pytester.path / "state.json").read_text())
    assert state == {
        "threads": [],
        "wrapped": [],
        "events": ["startup", "shutdown"],
        "cpu_alarm": [0.0, 0.0],
        "switch_interval": 0.005,
    }


STRAY_DUMP_TESTS = """
import asyncio
import time

import pytest

@pytest.mark.noblock
async def test_a_passes(noblock_client):
    assert (await noblock_client.get("/ping")).status_code == 200

@pytest.mark.noblock
async def test_b_holds(noblock_client):
    assert (await noblock_client.get("/slow")).status_code == 200

@pytest.mark.noblock
async def test_c_awaits(noblock_client):
    await asyncio.sleep(WAIT)
    assert (await noblock_client.get("/ping")).status_code == 200

def test_d_unmarked_sleeps():
    time.sleep(SLEEP)
"""


@pytest.mark.parametrize(
    ("faulthandler_timeout", "wait_s", "sleep_s"),
    [
        # No timeout of pytest's: the plugin's own short timer must not outlive its test.
        (None, 0.0, 0.5),
        # pytest's 2 s timer: test_c ends ~1.1 s in, so a timer left armed for its deadline
        # would fire during the 1.5 s sleep, well before the next test's own 2 s are up.
        ("2", 1.1, 1.5),
    ],
)
def test_no_stray_faulthandler_dump_in_a_later_test(
    project: Project, faulthandler_timeout: str | None, wait_s: float, sleep_s: float
) -> None:
    if faulthandler_timeout is not None:
        project.ini(asyncio_mode="auto", faulthandler_timeout=faulthandler_timeout)
    project.app(APP)
    project.tests(STRAY_DUMP_TESTS.replace("WAIT", repr(wait_s)).replace("SLEEP", repr(sleep_s)))
    result = project.run_subprocess()
    result.assert_outcomes(passed=3, failed=1)
    output = result.stdout.str() + "\n" + result.stderr.str()
    assert "Timeout (" not in output
    assert "most recent call first" not in output


def test_a_test_patching_the_same_methods_leaves_them_working(project: Project) -> None:
    # monkeypatch undoes its patches after the plugin has put the originals back, which
    # puts the plugin's wrappers back on the classes: they must still work, and the next
    # watched test must not take them for the originals.
    project.app(APP)
    project.tests(
        """
        import asyncio
        import threading

        import httpx
        import pytest

        PATCHED = (
            (threading.Thread, "start"),
            (asyncio.Handle, "_run"),
            (httpx.ASGITransport, "handle_async_request"),
        )


        @pytest.mark.noblock
        async def test_patches_them(noblock_client, monkeypatch):
            for owner, name in PATCHED:
                method = getattr(owner, name)
                monkeypatch.setattr(owner, name, lambda *args, _m=method: _m(*args))
            assert (await noblock_client.get("/ping")).status_code == 200


        @pytest.mark.noblock
        async def test_after_them(noblock_client):
            worker = threading.Thread(target=lambda: None)
            worker.start()
            worker.join()
            await asyncio.sleep(0)
            assert (await noblock_client.get("/ping")).status_code == 200


        def test_all_unwrapped_at_the_end():
            for owner, name in PATCHED:
                assert not hasattr(getattr(owner, name), "__wrapped__"), name
        """
    )
    # In a subprocess with a timeout: a wrapper calling itself used to hang the run.
    result = project.pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:randomly", timeout=60
    )
    result.assert_outcomes(passed=3)


def test_a_conftest_checking_for_stray_threads_at_session_end_finds_none(
    project: Project,
) -> None:
    # No thread of the plugin outlives the tests: a suite's own session-end check for
    # leaked threads (its conftest's hook runs before the plugin's) must not see it.
    project.app(APP)
    project.pytester.makeconftest(
        APP_CONFTEST
        + """

import json


def pytest_sessionfinish(session):
    with open("threads.json", "w") as file:
        json.dump(plugin_threads(), file)
"""
        + PLUGIN_THREADS
    )
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        @pytest.mark.parametrize("n", [1, 2])
        async def test_ping(noblock_client, n):
            assert (await noblock_client.get("/ping")).status_code == 200
        """
    )
    project.run_subprocess().assert_outcomes(passed=2)
    assert json.loads((project.pytester.path / "threads.json").read_text()) == []


def test_the_plugins_threads_are_gone_once_joined() -> None:
    # What `join_stopped` promises after each test's teardown: the thread has ended, not
    # merely been told to. (On 3.11 and 3.12 the join once returned at once: a watchdog
    # still running showed up in the next test now and then.)
    ending = threading.Event()

    def run() -> None:
        time.sleep(0.2)
        ending.set()

    background.join_later(background.start(run))
    background.join_stopped()
    assert ending.is_set()
