"""No false alarms from a busy machine or a frozen clock, and pytest's faulthandler still works.

A CPU-bound neighbour process must not turn clean requests into holds, while a real hold is
still caught under the same load. Frozen or travelling time (freezegun, time-machine) must
neither hang the run nor blind the watch. `faulthandler_timeout` keeps printing its dump.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

# Imported here, before pytester snapshots sys.modules: a plugin in this venv imports part of
# starlette at start-up, and re-importing the rest per inner run mixes two copies of its
# routing module (every route then misses and answers 307).
import fastapi  # noqa: F401
import pytest
from conftest import Project, line_of

APP = """
import asyncio
import datetime
import time

from fastapi import FastAPI

app = FastAPI()


@app.get("/ping")
async def ping():
    await asyncio.sleep(0)
    return {"ok": True}


@app.get("/today")
async def today():
    return {"now": datetime.datetime.now().isoformat()}


@app.get("/slow")
async def slow():
    time.sleep(0.2)  # the hold
    return {}


@app.get("/wait")
async def wait():
    await asyncio.sleep(2)
    return {}


@app.get("/hold-long")
async def hold_long():
    time.sleep(1.5)  # the long hold
    return {}
"""
SLOW_LINE = line_of(APP, "# the hold")

# A failure or a note that blames a request (notes on the test's own code are allowed).
BLAMED_ON_A_REQUEST = "*GET /* held the event loop*"

CLEAN_TESTS = """
import asyncio

import pytest

@pytest.mark.noblock(budget_ms=20)
async def test_sequential(noblock_client):
    for _ in range(200):
        assert (await noblock_client.get("/ping")).status_code == 200

@pytest.mark.noblock(budget_ms=20)
async def test_concurrent(noblock_client):
    responses = await asyncio.gather(*(noblock_client.get("/ping") for _ in range(50)))
    assert {r.status_code for r in responses} == {200}
"""


@pytest.fixture
def busy_cpu() -> Iterator[None]:
    """Another process burning a CPU core for the length of the test."""
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        burner.kill()
        burner.wait()


@pytest.mark.usefixtures("busy_cpu")
def test_clean_requests_stay_clean_while_another_process_burns_a_core(project: Project) -> None:
    project.app(APP)
    project.tests(CLEAN_TESTS)
    result = project.run()
    result.assert_outcomes(passed=2)
    result.stdout.no_fnmatch_line(BLAMED_ON_A_REQUEST)


@pytest.mark.usefixtures("busy_cpu")
def test_three_runs_in_a_row_all_pass_under_load(project: Project) -> None:
    project.app(APP)
    project.tests(CLEAN_TESTS)
    for _ in range(3):
        result = project.run()
        result.assert_outcomes(passed=2)
        result.stdout.no_fnmatch_line(BLAMED_ON_A_REQUEST)


@pytest.mark.usefixtures("busy_cpu")
def test_a_real_hold_is_still_caught_under_load(project: Project) -> None:
    project.app(APP)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock(budget_ms=20)
        async def test_x(noblock_client):
            assert (await noblock_client.get("/ping")).status_code == 200
            assert (await noblock_client.get("/slow")).status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            f"noblock: GET /slow held the event loop for * ms at app.py:{SLOW_LINE} (budget 20 ms)",
            "  handler   app:slow",
        ]
    )
    result.stdout.no_fnmatch_line("*GET /ping*")


# The handler starts threads that the machine keeps off a CPU: they inherit the loop
# thread's pinning to one CPU and, for the length of `start()`, its idle-only scheduling
# class, while another process keeps that CPU busy 250 ms at a time. Each `start()` waits
# for a gap in the burn; the loop thread is asleep meanwhile, so none of it is its own
# wait for a CPU.
STARVED_THREADS_APP = """
import os
import threading
import time

from fastapi import FastAPI

app = FastAPI()


@app.get("/threads")
async def threads():
    os.sched_setaffinity(0, {int(os.environ["STARVED_CPU"])})
    for _ in range(12):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        try:
            worker = threading.Thread(target=time.sleep, args=(0.001,))
            worker.start()
        finally:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    return {"started": 12}


@app.get("/threads-then-sleep")
async def threads_then_sleep():
    await threads()
    time.sleep(0.1)  # still a hold: over three times the budget
    return {}
"""

BURN_IN_BURSTS = """
import os, sys, time
os.sched_setaffinity(0, {int(sys.argv[1])})
while True:
    start = time.perf_counter()
    while time.perf_counter() - start < 0.25:
        pass
    time.sleep(0.005)
"""


@pytest.mark.skipif(
    not hasattr(os, "SCHED_IDLE") or not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="needs Linux scheduling classes, and root to leave SCHED_IDLE again",
)
def test_waiting_for_a_new_thread_to_start_is_not_a_hold(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    cpu = min(os.sched_getaffinity(0))
    monkeypatch.setenv("STARVED_CPU", str(cpu))
    project.app(STARVED_THREADS_APP)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock(budget_ms=30)
        async def test_threads(noblock_client):
            assert (await noblock_client.get("/threads")).json() == {"started": 12}

        @pytest.mark.noblock(budget_ms=30)
        async def test_threads_then_sleep(noblock_client):
            assert (await noblock_client.get("/threads-then-sleep")).status_code == 200
        """
    )
    burner = subprocess.Popen([sys.executable, "-c", BURN_IN_BURSTS, str(cpu)])
    try:
        result = project.run_subprocess()
    finally:
        burner.kill()
        burner.wait()
    result.assert_outcomes(passed=1, failed=1)
    sleep_line = line_of(STARVED_THREADS_APP, "time.sleep(0.1)")
    result.stdout.fnmatch_lines(
        [
            "noblock: GET /threads-then-sleep held the event loop for * ms "
            f"at app.py:{sleep_line} (budget 30 ms)",
        ]
    )
    result.stdout.no_fnmatch_line("*GET /threads held*")


def run_with_timeout(project: Project) -> pytest.RunResult:
    """In a subprocess with a time limit: a frozen clock must not hang the run."""
    return project.pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:randomly", timeout=60
    )


FREEZEGUN_CLEAN = """
import datetime

import pytest
from freezegun import freeze_time

@pytest.mark.noblock(budget_ms=20)
@freeze_time("2020-01-01")
async def test_decorated(noblock_client):
    for _ in range(20):
        response = await noblock_client.get("/today")
        assert response.json() == {"now": "2020-01-01T00:00:00"}

@pytest.mark.noblock(budget_ms=20)
async def test_started_in_body(noblock_client):
    freezer = freeze_time("2020-01-01")
    freezer.start()
    try:
        for _ in range(20):
            response = await noblock_client.get("/today")
            assert response.json() == {"now": "2020-01-01T00:00:00"}
    finally:
        freezer.stop()
"""


def test_freezegun_clean_tests_pass_and_do_not_hang(project: Project) -> None:
    project.app(APP)
    project.tests(FREEZEGUN_CLEAN)
    result = run_with_timeout(project)
    result.assert_outcomes(passed=2)
    result.stdout.no_fnmatch_line(BLAMED_ON_A_REQUEST)


def test_freezegun_blocking_handler_is_still_caught(project: Project) -> None:
    project.app(APP)
    project.tests(
        """
        import pytest
        from freezegun import freeze_time

        @pytest.mark.noblock
        @freeze_time("2020-01-01")
        async def test_decorated(noblock_client):
            assert (await noblock_client.get("/slow")).status_code == 200

        @pytest.mark.noblock
        async def test_started_in_body(noblock_client):
            with freeze_time("2020-01-01"):
                assert (await noblock_client.get("/slow")).status_code == 200
        """
    )
    result = run_with_timeout(project)
    result.assert_outcomes(failed=2)
    headline = (
        f"noblock: GET /slow held the event loop for * ms at app.py:{SLOW_LINE} (budget 50 ms)"
    )
    result.stdout.fnmatch_lines(
        [headline, "  handler   app:slow", headline, "  handler   app:slow"]
    )


def test_freezegun_moving_the_clock_an_hour_mid_test_stays_clean(project: Project) -> None:
    project.app(APP)
    project.tests(
        """
        import datetime

        import pytest
        from freezegun import freeze_time

        @pytest.mark.noblock(budget_ms=20)
        async def test_tick(noblock_client):
            with freeze_time("2020-01-01") as frozen:
                assert (await noblock_client.get("/ping")).status_code == 200
                frozen.tick(datetime.timedelta(hours=1))
                response = await noblock_client.get("/today")
                assert response.json() == {"now": "2020-01-01T01:00:00"}

        @pytest.mark.noblock(budget_ms=20)
        async def test_move_to(noblock_client):
            with freeze_time("2020-01-01") as frozen:
                assert (await noblock_client.get("/ping")).status_code == 200
                frozen.move_to("2020-01-01 01:00:00")
                response = await noblock_client.get("/today")
                assert response.json() == {"now": "2020-01-01T01:00:00"}
        """
    )
    result = run_with_timeout(project)
    result.assert_outcomes(passed=2)
    result.stdout.no_fnmatch_line(BLAMED_ON_A_REQUEST)


TIME_MACHINE_TESTS = """
import datetime

import pytest
import time_machine

START = datetime.datetime(2020, 1, 1)

@pytest.mark.noblock(budget_ms=20)
async def test_clean(noblock_client):
    with time_machine.travel(START, tick=False):
        for _ in range(20):
            response = await noblock_client.get("/today")
            assert response.json() == {"now": "2020-01-01T00:00:00"}

@pytest.mark.noblock(budget_ms=20)
async def test_shift_an_hour(noblock_client):
    with time_machine.travel(START, tick=False) as traveller:
        assert (await noblock_client.get("/ping")).status_code == 200
        traveller.shift(3600)
        response = await noblock_client.get("/today")
        assert response.json() == {"now": "2020-01-01T01:00:00"}

@pytest.mark.noblock
async def test_blocking(noblock_client):
    with time_machine.travel(START, tick=False):
        assert (await noblock_client.get("/slow")).status_code == 200
"""


def test_time_machine_clean_passes_and_blocking_is_caught(project: Project) -> None:
    project.app(APP)
    project.tests(TIME_MACHINE_TESTS)
    result = run_with_timeout(project)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_blocking _*",
            f"noblock: GET /slow held the event loop for * ms at app.py:{SLOW_LINE} (budget 50 ms)",
            "  handler   app:slow",
        ]
    )
    result.stdout.no_fnmatch_line("*test_clean - *")
    result.stdout.no_fnmatch_line("*test_shift_an_hour - *")


def test_faulthandler_timeout_dumps_while_a_marked_test_awaits(project: Project) -> None:
    project.ini(asyncio_mode="auto", faulthandler_timeout="1")
    project.app(APP)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        async def test_waits(noblock_client):
            assert (await noblock_client.get("/wait")).status_code == 200
        """
    )
    result = run_with_timeout(project)
    result.assert_outcomes(passed=1)
    result.stderr.fnmatch_lines(["*Timeout (0:00:01)!*", "*most recent call first*"])
    result.stdout.no_fnmatch_line(BLAMED_ON_A_REQUEST)


def test_faulthandler_timeout_dumps_while_a_marked_test_holds_the_loop(project: Project) -> None:
    project.ini(asyncio_mode="auto", faulthandler_timeout="1")
    project.app(APP)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        async def test_holds(noblock_client):
            assert (await noblock_client.get("/hold-long")).status_code == 200
        """
    )
    result = run_with_timeout(project)
    result.assert_outcomes(failed=1)
    result.stderr.fnmatch_lines(["*Timeout (0:00:01)!*", "*most recent call first*"])
    line = line_of(APP, "# the long hold")
    result.stdout.fnmatch_lines(
        [f"noblock: GET /hold-long held the event loop for * ms at app.py:{line} (budget 50 ms)"]
    )
