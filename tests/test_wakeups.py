"""The watchdog sleeps while the loop steps, and still looks at every hold.

It is woken only when a segment could be worth a look: the loop pushes its deadline on as
segments start. These are the ways it could oversleep: a hold after many quick requests
(pushes all along), after the loop sat idle (no segment, no deadline), after a worker
thread's call (looked at on a beat, which pushes must not put off), right after a full
garbage collection in the same step (which it sleeps through), and in a `TestClient`'s
portal thread. Each hold must still be named at its line. On Linux the deadline is a kernel
timer; elsewhere a thread that sleeps until it, which the simulated macOS takes.
"""

from __future__ import annotations

# Kept in sys.modules between in-process runs (see test_kinds.py).
import fastapi  # noqa: F401
import pytest
from conftest import Project, line_of

APP = """
import gc
import time
from fastapi import FastAPI

app = FastAPI()

@app.get("/fast")
async def fast():
    return {"ok": True}

@app.get("/in-a-thread")
def in_a_thread():
    return {"ok": True}

@app.get("/sleep")
async def sleep():
    time.sleep(0.2)
    return {}

@app.get("/collect-then-sleep")
async def collect_then_sleep():
    gc.collect()
    time.sleep(0.25)
    return {}
"""

TESTS = """
import asyncio
import time

import pytest
from starlette.testclient import TestClient

from app import app

@pytest.mark.noblock
async def test_after_many_quick_requests(noblock_client):
    for _ in range(300):
        await noblock_client.get("/fast")
    await noblock_client.get("/sleep")

@pytest.mark.noblock
async def test_after_the_loop_sat_idle(noblock_client):
    await noblock_client.get("/fast")
    await asyncio.sleep(0.3)
    await noblock_client.get("/sleep")

@pytest.mark.noblock
async def test_after_a_worker_thread_and_idling(noblock_client):
    await noblock_client.get("/in-a-thread")
    await asyncio.sleep(0.3)
    await noblock_client.get("/sleep")

@pytest.mark.noblock
async def test_after_a_full_collection(noblock_client):
    await noblock_client.get("/collect-then-sleep")

@pytest.mark.noblock
def test_in_a_portal_after_quick_requests_and_idling():
    with TestClient(app) as client:
        for _ in range(100):
            client.get("/fast")
        time.sleep(0.3)
        client.get("/sleep")
"""


SLEEP_LINE = line_of(APP, "time.sleep(0.2)")
COLLECT_THEN_SLEEP_LINE = line_of(APP, "time.sleep(0.25)")


@pytest.mark.parametrize("platform", ["linux", "macos"])
def test_every_hold_is_looked_at_however_the_loop_got_there(
    project: Project, monkeypatch: pytest.MonkeyPatch, platform: str
) -> None:
    if platform != "linux":
        monkeypatch.setenv("PYTEST_NOBLOCK_PLATFORM", platform)
    project.app(APP)
    project.tests(TESTS)
    result = project.run()
    result.assert_outcomes(failed=5)
    # The table of longest holds: one line per test, with the site it names.
    sleep = f"GET /sleep  app.py:{SLEEP_LINE} in sleep"
    expected = {
        "test_after_many_quick_requests": sleep,
        "test_after_the_loop_sat_idle": sleep,
        "test_after_a_worker_thread_and_idling": sleep,
        "test_after_a_full_collection": (
            f"GET /collect-then-sleep  app.py:{COLLECT_THEN_SLEEP_LINE} in collect_then_sleep"
        ),
        "test_in_a_portal_after_quick_requests_and_idling": sleep,
    }
    for test, site in expected.items():
        result.stdout.fnmatch_lines([f"* ms  test_app.py::{test}  {site}"])
