"""Where Linux features are missing: macOS and Windows, simulated on Linux.

`PYTEST_NOBLOCK_PLATFORM=macos|windows` makes the plugin do without what that platform
lacks, through the same code paths it takes there: no /proc/.../schedstat and no per-thread
CPU clock on macOS; on Windows no CPU-time alarm (SIGPROF) either. Windows' own
`socket.socketpair`, built from a loopback connect, is the stdlib's (`_fallback_socketpair`).
"""

from __future__ import annotations

import socket

# Kept in sys.modules between in-process runs (see test_kinds.py).
import fastapi  # noqa: F401
import pytest
from conftest import SLOW_AND_FAST_APP, SLOW_REPORT, Project

SLOW_TESTS = """
import signal

import pytest

@pytest.mark.noblock
async def test_slow(noblock_client):
    assert (await noblock_client.get("/slow")).status_code == 200

@pytest.mark.noblock
async def test_fast(noblock_client):
    assert (await noblock_client.get("/fast")).json() == {"ok": True}

@pytest.mark.noblock
async def test_alarm_signal(noblock_client):
    # Inside a watched body the CPU-time alarm's handler is set, where it is used at all.
    assert signal.getsignal(signal.SIGPROF) not in (signal.SIG_DFL, signal.SIG_IGN)
"""

MACOS_NOTE = (
    "noblock: on macOS (simulated) holds include time the loop thread waited for a CPU "
    "(no /proc/.../schedstat); CPU work is not told from waiting (no per-thread CPU clock)"
)
WINDOWS_NOTE = (
    "noblock: on Windows (simulated) holds include time the loop thread waited for a CPU "
    "(no /proc/.../schedstat); CPU work is not told from waiting (no per-thread CPU clock); "
    "C calls that keep the GIL are not sampled (no SIGPROF): such a hold may say "
    '"not caught"'
)


def test_on_linux_nothing_is_missing(project: Project) -> None:
    project.app(SLOW_AND_FAST_APP)
    project.tests(SLOW_TESTS)
    result = project.run()
    result.assert_outcomes(failed=1, passed=2)
    result.stdout.fnmatch_lines(SLOW_REPORT)
    result.stdout.no_fnmatch_line("noblock: on *")


def test_on_macos_holds_are_caught_and_cpu_waits_are_said_once(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_NOBLOCK_PLATFORM", "macos")
    project.app(SLOW_AND_FAST_APP)
    project.tests(SLOW_TESTS)
    result = project.run()
    result.assert_outcomes(failed=1, passed=2)
    result.stdout.fnmatch_lines(SLOW_REPORT)
    assert result.stdout.lines.count(MACOS_NOTE) == 1, result.stdout.str()


def test_on_windows_holds_are_caught_without_the_alarm(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_NOBLOCK_PLATFORM", "windows")
    project.app(SLOW_AND_FAST_APP)
    project.tests(SLOW_TESTS)
    result = project.run()
    # The alarm's signal is left alone: test_alarm_signal fails on its own assertion.
    result.assert_outcomes(failed=2, passed=1)
    result.stdout.fnmatch_lines(SLOW_REPORT)
    result.stdout.fnmatch_lines(["FAILED test_app.py::test_alarm_signal - assert *"])
    assert result.stdout.lines.count(WINDOWS_NOTE) == 1, result.stdout.str()


SPINNING_APP = """
import time
from fastapi import FastAPI

app = FastAPI()

@app.get("/spin")
async def spin():
    deadline = time.perf_counter() + 0.3
    total = 0
    while time.perf_counter() < deadline:
        total += sum(range(2000))
    return {"total": total}
"""


@pytest.mark.parametrize("platform", ["macos", "windows"])
def test_without_a_thread_cpu_clock_cpu_work_is_not_told_from_waiting(
    project: Project, monkeypatch: pytest.MonkeyPatch, platform: str
) -> None:
    # Without a per-thread CPU clock a hold has no CPU figure: the generic advice is given
    # where Linux says "CPU work on the loop" (test_kinds.py).
    monkeypatch.setenv("PYTEST_NOBLOCK_PLATFORM", platform)
    project.app(SPINNING_APP)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        async def test_spin(noblock_client):
            assert (await noblock_client.get("/spin")).status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["  handler   app:spin", "  why       a blocking call"])


def test_the_platform_note_needs_a_watched_test(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_NOBLOCK_PLATFORM", "windows")
    project.tests("def test_plain():\n    pass\n")
    result = project.run()
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("noblock: on *")


def test_an_unknown_platform_is_one_line(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_NOBLOCK_PLATFORM", "beos")
    project.tests("def test_plain():\n    pass\n")
    result = project.run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: noblock: PYTEST_NOBLOCK_PLATFORM=beos is not one of: macos, windows"]
    )
    result.stderr.no_fnmatch_line("*Traceback*")


LOOP_MAKING_APP = """
import asyncio
import time

from fastapi import FastAPI

app = FastAPI()


@app.get("/loop")
async def make_a_loop():
    # asyncio makes its self-pipe with socket.socketpair(): on Windows, a loopback connect.
    loop = asyncio.new_event_loop()
    loop.close()
    return {}


@app.get("/sleep")
async def nap():
    time.sleep(0.001)
    return {}
"""

WINDOWS_SOCKETPAIR_CONFTEST = """
import socket

import pytest

from app import app


@pytest.fixture(autouse=True)
def windows_socketpair(monkeypatch):
    monkeypatch.setattr(socket, "socketpair", socket._fallback_socketpair)


@pytest.fixture
def noblock_app():
    return app
"""


@pytest.mark.skipif(
    not hasattr(socket, "_fallback_socketpair"),
    reason="this Python's socket.py has no copy of Windows' socketpair (3.13+ has)",
)
def test_strict_mode_lets_asyncio_make_its_loop_with_windows_socketpair(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_NOBLOCK_PLATFORM", "windows")
    project.app(LOOP_MAKING_APP)
    project.pytester.makeconftest(WINDOWS_SOCKETPAIR_CONFTEST)
    project.tests(
        """
        import socket

        import pytest

        @pytest.mark.noblock(strict=True, budget_ms=10_000)
        async def test_loop(noblock_client):
            assert socket.socketpair is socket._fallback_socketpair
            assert (await noblock_client.get("/loop")).status_code == 200

        @pytest.mark.noblock(strict=True, budget_ms=10_000)
        async def test_sleep(noblock_client):
            assert (await noblock_client.get("/sleep")).status_code == 200
        """
    )
    result = project.run()
    # Strict mode still works there: the sleep is a finding, the loop's socketpair is not.
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["FAILED test_app.py::test_sleep - *time.sleep*"])
    result.stdout.no_fnmatch_line("*socket.socket.accept*")
