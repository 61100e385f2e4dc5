"""Shared set-up for the plugin's tests: each test writes a small project and runs pytest on it."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

# The plugin imports its watching machinery when a test is first watched. pytester's
# in-process runs drop the modules a run imported when it ends: imported here, before its
# snapshot, every inner run shares one copy, as one real session does.
import pytest_noblock.client
import pytest_noblock.runner  # noqa: F401

SLOW_SECONDS = 0.2

# The app most tests start from: one handler that blocks the loop for 0.2 s, one that doesn't.
SLOW_AND_FAST_APP = """
import time
from fastapi import FastAPI

app = FastAPI()

@app.get("/slow")
async def slow():
    time.sleep(0.2)
    return {}

@app.get("/fast")
async def fast():
    return {"ok": True}
"""
_SLEEP_LINE = SLOW_AND_FAST_APP.lstrip("\n").splitlines().index("    time.sleep(0.2)") + 1

# The first lines of the report for GET /slow at the default budget.
SLOW_REPORT = [
    f"noblock: GET /slow held the event loop for * ms at app.py:{_SLEEP_LINE} (budget 50 ms)",
    "  handler   app:slow",
    f"  call      app.py:{_SLEEP_LINE} in slow",
    "                time.sleep(0.2)",
]

APP_CONFTEST = """
import pytest

from app import app


@pytest.fixture
def noblock_app():
    return app
"""


# Added to the project's conftest for a run on uvloop (`on_loops`): pytest-asyncio's loops
# come from uvloop's policy, and the run says how many it made, so a run that did not use
# uvloop cannot pass for one.
UVLOOP_CONFTEST = """

import uvloop


class CountingPolicy(uvloop.EventLoopPolicy):
    made = 0

    def new_event_loop(self):
        CountingPolicy.made += 1
        return super().new_event_loop()


@pytest.fixture(scope="session")
def event_loop_policy():
    return CountingPolicy()


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(f"uvloop loops made: {CountingPolicy.made}")
"""

LOOPS = ("asyncio", "uvloop")


def on_loops(test: Callable[..., None]) -> Callable[..., None]:
    """Runs a timing test on each loop in LOOPS: its project's async tests run on that loop.

    For the tests whose project is an app (`Project.app`) and async tests through
    pytest-asyncio; the uvloop run is skipped, saying why, where uvloop does not install.
    """
    return pytest.mark.parametrize("project", LOOPS, indirect=True)(test)


class Project:
    """A throw-away project in pytester's directory: an app, tests, and an ini file."""

    def __init__(self, pytester: pytest.Pytester, loop: str = "asyncio") -> None:
        self.pytester = pytester
        self.loop = loop
        self.ini(asyncio_mode="auto")

    def ini(self, **options: str) -> None:
        lines = ["[pytest]", "asyncio_default_fixture_loop_scope = function"]
        lines += [f"{key} = {value}" for key, value in options.items()]
        self.pytester.makeini("\n".join(lines) + "\n")

    def app(self, source: str) -> None:
        """Write app.py (must define `app`) and a conftest that hands it to the plugin."""
        self.pytester.makepyfile(app=textwrap.dedent(source))
        self.pytester.makeconftest(
            APP_CONFTEST + (UVLOOP_CONFTEST if self.loop == "uvloop" else "")
        )

    def tests(self, source: str, name: str = "test_app") -> None:
        self.pytester.makepyfile(**{name: textwrap.dedent(source)})

    def run(self, *args: str) -> pytest.RunResult:
        result = self.pytester.runpytest(*self._options(args), *args)
        if self.loop == "uvloop":
            made = [line for line in result.stdout.lines if line.startswith("uvloop loops made:")]
            assert made, result.stdout.str()
            assert made[-1] != "uvloop loops made: 0", result.stdout.str()
            result.stdout.no_fnmatch_line("*nothing was watched*")
        return result

    def run_subprocess(self, *args: str, timeout: float | None = None) -> pytest.RunResult:
        return self.pytester.runpytest_subprocess(*self._options(args), *args, timeout=timeout)

    @staticmethod
    def _options(args: tuple[str, ...]) -> list[str]:
        # pytest-randomly, installed for the tests that ask for it (`-p randomly`), would
        # shuffle and reseed every inner run: the project's own runs stay in file order.
        options = ["-p", "no:cacheprovider"]
        if not any("randomly" in arg for arg in args):
            options += ["-p", "no:randomly"]
        return options


@pytest.fixture
def project(pytester: pytest.Pytester, request: pytest.FixtureRequest) -> Project:
    loop: str = getattr(request, "param", "asyncio")
    if loop == "uvloop":
        pytest.importorskip("uvloop", reason="uvloop does not install on this Python")
    return Project(pytester, loop)


ROOT = Path(__file__).resolve().parent.parent


def run_example(path: str) -> pytest.RunResult:
    """`pytest <path>` from the project root, as examples/README.md tells users to run it:
    in a process of its own, outside the suite's settings (`PYTEST_*`), 200 columns wide."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env["COLUMNS"] = "200"
    start = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", path, "-p", "no:cacheprovider"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return pytest.RunResult(
        completed.returncode,
        completed.stdout.splitlines(),
        completed.stderr.splitlines(),
        time.monotonic() - start,
    )


def stop_schemathesis_loop() -> None:
    """schemathesis keeps its loop thread until the process exits (the inner runs share this
    process): stopped, so later tests that count tasks, threads and sockets see none of it."""
    from schemathesis.python import asgi

    asgi._shutdown()
    # schemathesis runs an `async def` test on a loop it sets for the thread and never
    # closes: closed now, not left to a later test that counts what is left.
    asyncio.set_event_loop(None)
    for loop in gc.get_objects():
        if isinstance(loop, asyncio.AbstractEventLoop) and not loop.is_running():
            loop.close()


def line_of(source: str, needle: str) -> int:
    """1-based line number, in the file pytester writes, of the one line holding `needle`."""
    lines = textwrap.dedent(source).strip("\n").splitlines()
    found = [index + 1 for index, line in enumerate(lines) if needle in line]
    assert len(found) == 1, f"{needle!r} must be on exactly one line, found {found}"
    return found[0]


@contextmanager
def http_server(delay_s: float) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 that answers every GET after `delay_s`; yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(delay_s)
            body = json.dumps({"status": "ok"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="session")
def slow_http() -> Iterator[str]:
    """Answers every GET after 0.2 s: a slow upstream."""
    with http_server(SLOW_SECONDS) as url:
        yield url


@pytest.fixture(scope="session")
def fast_http() -> Iterator[str]:
    """Answers every GET at once: the local stand-in of an upstream in a test suite."""
    with http_server(0) as url:
        yield url
