"""Soak pytest-noblock beside the other plugins a real suite runs with.

    python benchmarks/soak.py                    # ~1000 tests, -n 2, random order, coverage, reruns
    python benchmarks/soak.py --seeds 1,2,3 --copies 10 --keep

Generates a suite of about a thousand tests of every kind the plugin meets (marked and
unmarked, strict, pytest-asyncio and anyio, TestClient, holds, failures, fixture errors, skips,
xfails, freezegun and time-machine, `noblock_paused`, `noblock(False)`, tests that fail once
and pass on their rerun, tests that monkeypatch the names the plugin swaps) and runs it with
pytest-xdist (`-n 2`), pytest-randomly (a seed per run), pytest-cov (`--cov --cov-branch`),
pytest-rerunfailures (`--reruns 1`), `--noblock-all` and `--noblock-report`, under `-W error`.

Each run is checked against what every test is meant to do: its outcome and its number of
attempts; the JSON report against the shipped schema, one record per watched test; and, at
the end of the session in every process, that every name the plugin swaps is the original
object again, that no wrapper or stand-in of the plugin is left in any module or class, and
that no watchdog thread or CPU-time alarm is left. Prints a short summary; exits 1 on any
surprise. Needs the plugin's test extra (`pip install -e ".[test]"`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path

# --- the generated project -------------------------------------------------------------------

APP = """
import threading
import time
from contextlib import asynccontextmanager
from time import sleep  # an alias strict mode points at its wrapper while a test runs

from fastapi import FastAPI

LOCK = threading.Lock()  # strict mode gives it a stand-in while a strict test runs
EVENTS = []


@asynccontextmanager
async def lifespan(app):
    EVENTS.append("startup")
    yield
    EVENTS.append("shutdown")


app = FastAPI(lifespan=lifespan)


@app.get("/fast")
async def fast():
    return {"ok": True}


@app.get("/slow")
async def slow():
    time.sleep(0.5)  # ten times the budget: caught however busy the machine is
    return {}


@app.get("/nap")
async def nap():
    sleep(0.001)
    return {}


@app.get("/locked")
async def locked():
    with LOCK:
        return {"ok": True}


@app.get("/threaded")
def threaded():
    time.sleep(0.005)
    return {"ok": True}


@app.get("/boom")
async def boom():
    raise ValueError("the app failed")
"""

# The session-end check, in every process (the controller and each xdist worker): written
# to identity-<process>.json for soak.py to read. The controller also writes the final
# outcome and the attempts of every test to outcomes.json.
CONFTEST = '''
import asyncio
import builtins
import gc
import io
import json
import os
import queue
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
import types
from collections import Counter
from pathlib import Path

import anyio.from_thread
import anyio.to_thread
import httpx
import pytest
import starlette.testclient

import app as app_module
from app import app
from pytest_noblock.strict import patches as strict_patches
from pytest_noblock.strict.standins import StandIn

PLUGIN_DIR = str(Path(strict_patches.__file__).parent)
HERE = Path(__file__).parent


@pytest.fixture
def noblock_app():
    return app


@pytest.fixture
def anyio_backend():
    return "asyncio"


def _owners():
    """Every (label, namespace, name) the plugin swaps while a test runs."""
    found = []
    for module_name, class_name, names, _ in strict_patches._TARGETS:
        module = sys.modules.get(module_name)
        owner = getattr(module, class_name, None) if class_name else module
        if owner is not None:
            found += [(f"{module_name}.{class_name or ''}.{name}", owner, name) for name in names]
    found += [
        ("asyncio.Handle._run", asyncio.Handle, "_run"),
        ("threading.Thread.start", threading.Thread, "start"),
        ("httpx.ASGITransport.handle_async_request", httpx.ASGITransport, "handle_async_request"),
        ("anyio.to_thread.run_sync", anyio.to_thread, "run_sync"),
        ("anyio.from_thread.start_blocking_portal", anyio.from_thread, "start_blocking_portal"),
        (
            "TestClientTransport.handle_request",
            starlette.testclient._TestClientTransport,
            "handle_request",
        ),
        ("TestClient.lifespan", starlette.testclient.TestClient, "lifespan"),
    ]
    found += [(f"app.{name}", app_module, name) for name in list(vars(app_module))]
    return found


_MISSING = object()
ORIGINALS = {
    label: vars(owner).get(name, _MISSING) for label, owner, name in _owners()
}


def _changed():
    return sorted(
        label
        for label, owner, name in _owners()
        if label in ORIGINALS and vars(owner).get(name, _MISSING) is not ORIGINALS[label]
    )


def _is_plugins(value):
    """A wrapper or stand-in of the plugin's (not one of its modules' own functions)."""
    if isinstance(value, StandIn) or type(value).__name__ == "StandIn":
        return True
    function = getattr(value, "__func__", value)
    code = getattr(function, "__code__", None)
    if not isinstance(code, types.CodeType) or not code.co_filename.startswith(PLUGIN_DIR):
        return False
    module = sys.modules.get(getattr(function, "__module__", "") or "")
    return getattr(module, getattr(function, "__name__", ""), None) is not function


def _leaked():
    """The plugin's objects left in any module's globals or in any class found there."""
    leaked = set()
    for module_name, module in list(sys.modules.items()):
        if module_name.startswith("pytest_noblock") or module is None:
            continue
        try:
            namespace = dict(vars(module))
        except TypeError:
            continue
        for name, value in namespace.items():
            if _is_plugins(value):
                leaked.add(f"{module_name}.{name}")
            if isinstance(value, type) and value.__module__ == module_name:
                for attribute, member in list(vars(value).items()):
                    if _is_plugins(member):
                        leaked.add(f"{module_name}.{value.__qualname__}.{attribute}")
    return sorted(leaked)


def _plugin_threads():
    # The plugin's threads are `_thread`'s, which `threading.enumerate()` does not list: a
    # thread of the plugin's is one running its code.
    own = os.sep + "pytest_noblock" + os.sep
    found = []
    for ident, frame in sys._current_frames().items():
        while frame is not None and ident != threading.get_ident():
            if own in frame.f_code.co_filename:
                found.append(ident)
                break
            frame = frame.f_back
    return found


def pytest_sessionfinish(session):
    process = os.environ.get("PYTEST_XDIST_WORKER", "controller")
    state = {
        "changed": _changed(),
        "leaked": _leaked(),
        "threads": _plugin_threads(),
        "cpu_alarm": list(signal.getitimer(signal.ITIMER_PROF)),
        "ran_tests": session.testscollected,
    }
    (HERE / f"identity-{process}.json").write_text(json.dumps(state))
    if process == "controller":
        (HERE / "outcomes.json").write_text(
            json.dumps({"outcomes": _outcomes, "reruns": _reruns})
        )


_outcomes = {}
_reruns = Counter()


def pytest_runtest_logreport(report):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return  # the controller sees every report, the workers' too
    if report.outcome == "rerun":
        _reruns[report.nodeid] += 1
        return
    if report.when == "setup" and report.failed:
        _outcomes[report.nodeid] = "error"
    elif report.skipped and hasattr(report, "wasxfail"):
        _outcomes[report.nodeid] = "xfailed"
    elif report.when == "setup" and report.skipped:
        _outcomes[report.nodeid] = "skipped"
    elif report.when == "call":
        _outcomes[report.nodeid] = report.outcome
    elif report.when == "teardown" and report.failed:
        _outcomes[report.nodeid] = "error"
'''

HEADER = """
import asyncio
import builtins
import datetime
import threading
import time

import anyio
import freezegun
import pytest
import time_machine
from fastapi.testclient import TestClient

import app as app_module
from app import app
from pytest_noblock import noblock_paused

attempts = {}


def attempt(name):
    attempts[name] = attempts.get(name, 0) + 1
    return attempts[name]


@pytest.fixture
async def broken_fixture(noblock_client):
    assert (await noblock_client.get("/fast")).status_code == 200
    raise RuntimeError("the fixture broke")
"""

# (kind, outcome, attempts with --reruns 1, watched by the plugin, test source with {n}).
KINDS: list[tuple[str, str, int, bool, str]] = [
    (
        "marked_clean",
        "passed",
        1,
        True,
        """
        @pytest.mark.noblock
        async def test_marked_clean_{n}(noblock_client):
            assert (await noblock_client.get("/fast")).json() == {{"ok": True}}
        """,
    ),
    (
        "marked_holds",
        "failed",
        2,
        True,
        """
        @pytest.mark.noblock
        async def test_marked_holds_{n}(noblock_client):
            assert (await noblock_client.get("/slow")).status_code == 200
        """,
    ),
    (
        "unmarked_clean",
        "passed",
        1,
        True,
        """
        async def test_unmarked_clean_{n}(noblock_client):
            assert (await noblock_client.get("/fast")).status_code == 200
        """,
    ),
    (
        "unmarked_holds",
        "failed",
        2,
        True,
        """
        async def test_unmarked_holds_{n}(noblock_client):
            assert (await noblock_client.get("/slow")).status_code == 200
        """,
    ),
    (
        "opted_out_holds",
        "passed",
        1,
        False,
        """
        @pytest.mark.noblock(False)
        async def test_opted_out_holds_{n}(noblock_client):
            assert (await noblock_client.get("/slow")).status_code == 200
        """,
    ),
    (
        "strict_clean",
        "passed",
        1,
        True,
        """
        @pytest.mark.noblock(strict=True)
        async def test_strict_clean_{n}(noblock_client):
            assert (await noblock_client.get("/fast")).status_code == 200
            assert (await noblock_client.get("/threaded")).status_code == 200
        """,
    ),
    (
        "strict_finding",
        "failed",
        2,
        True,
        """
        @pytest.mark.noblock(strict=True)
        async def test_strict_finding_{n}(noblock_client):
            assert (await noblock_client.get("/nap")).status_code == 200
        """,
    ),
    (
        "strict_allowed",
        "passed",
        1,
        True,
        """
        @pytest.mark.noblock(strict=True, allow=["time.sleep", "threading.Lock"])
        async def test_strict_allowed_{n}(noblock_client):
            assert (await noblock_client.get("/nap")).status_code == 200
            assert (await noblock_client.get("/locked")).status_code == 200
        """,
    ),
    (
        "anyio_clean",
        "passed",
        1,
        True,
        """
        @pytest.mark.anyio
        @pytest.mark.noblock
        async def test_anyio_clean_{n}(noblock_client):
            await anyio.sleep(0)
            assert (await noblock_client.get("/fast")).status_code == 200
        """,
    ),
    (
        "testclient_clean",
        "passed",
        1,
        True,
        """
        @pytest.mark.noblock
        def test_testclient_clean_{n}():
            with TestClient(app) as client:
                assert client.get("/fast").status_code == 200
        """,
    ),
    (
        "testclient_holds",
        "failed",
        2,
        True,
        """
        def test_testclient_holds_{n}():
            assert TestClient(app).get("/slow").status_code == 200
        """,
    ),
    (
        "own_assertion",
        "failed",
        2,
        True,
        """
        @pytest.mark.noblock
        async def test_own_assertion_{n}(noblock_client):
            assert (await noblock_client.get("/fast")).status_code == 418
        """,
    ),
    (
        "app_raises",
        "failed",
        2,
        True,
        """
        @pytest.mark.noblock
        async def test_app_raises_{n}(noblock_client):
            await noblock_client.get("/boom")
        """,
    ),
    (
        "fixture_error",
        "error",
        2,
        False,
        """
        @pytest.mark.noblock
        async def test_fixture_error_{n}(noblock_client, broken_fixture):
            assert False, "never runs"
        """,
    ),
    (
        "skipped_inside",
        "skipped",
        1,
        True,
        """
        @pytest.mark.noblock
        async def test_skipped_inside_{n}(noblock_client):
            assert (await noblock_client.get("/fast")).status_code == 200
            pytest.skip("not today")
        """,
    ),
    (
        "skipped_marker",
        "skipped",
        1,
        False,
        """
        @pytest.mark.skip(reason="never")
        @pytest.mark.noblock
        async def test_skipped_marker_{n}(noblock_client):
            assert False
        """,
    ),
    (
        "xfailed",
        "xfailed",
        1,
        True,
        """
        @pytest.mark.xfail(reason="a known hold", strict=True)
        @pytest.mark.noblock
        async def test_xfailed_{n}(noblock_client):
            assert (await noblock_client.get("/slow")).status_code == 200
        """,
    ),
    (
        "holds_once",
        "passed",
        2,
        True,
        """
        @pytest.mark.noblock
        async def test_holds_once_{n}(noblock_client):
            path = "/slow" if attempt("holds_once_{n}") == 1 else "/fast"
            assert (await noblock_client.get(path)).status_code == 200
        """,
    ),
    (
        "fails_once",
        "passed",
        2,
        True,
        """
        async def test_fails_once_{n}(noblock_client):
            assert (await noblock_client.get("/fast")).status_code == 200
            assert attempt("fails_once_{n}") > 1
        """,
    ),
    (
        "paused",
        "passed",
        1,
        True,
        """
        @pytest.mark.noblock
        async def test_paused_{n}(noblock_client):
            with noblock_paused():
                time.sleep(0.1)
                assert (await noblock_client.get("/slow")).status_code == 200
            assert (await noblock_client.get("/fast")).status_code == 200
        """,
    ),
    (
        "test_code_holds",
        "passed",
        1,
        True,
        """
        @pytest.mark.noblock
        async def test_test_code_holds_{n}(noblock_client):
            time.sleep(0.1)  # the test's own code: a note, not a failure
            assert (await noblock_client.get("/fast")).status_code == 200
        """,
    ),
    (
        "freezegun",
        "passed",
        1,
        True,
        """
        @pytest.mark.noblock
        async def test_freezegun_{n}(noblock_client):
            with freezegun.freeze_time("2020-01-01"):
                assert (await noblock_client.get("/fast")).status_code == 200
                assert datetime.date.today().year == 2020
        """,
    ),
    (
        "time_machine",
        "passed",
        1,
        True,
        """
        @pytest.mark.noblock
        async def test_time_machine_{n}(noblock_client):
            with time_machine.travel(datetime.datetime(2020, 1, 1), tick=False):
                assert (await noblock_client.get("/fast")).status_code == 200
        """,
    ),
    (
        "monkeypatched",
        "passed",
        1,
        True,
        """
        @pytest.mark.noblock(strict=True, allow=["threading.Lock"])
        async def test_monkeypatched_{n}(noblock_client, monkeypatch):
            for owner, name in (
                (time, "sleep"),
                (builtins, "open"),
                (asyncio.Handle, "_run"),
                (threading.Thread, "start"),
            ):
                original = getattr(owner, name)
                monkeypatch.setattr(owner, name, lambda *a, _o=original, **k: _o(*a, **k))
            monkeypatch.setattr(app_module, "LOCK", threading.Lock())
            assert (await noblock_client.get("/locked")).status_code == 200
        """,
    ),
]


def generate(root: Path, copies: int, modules: int) -> dict[str, tuple[str, int, bool]]:
    """Writes the project; returns each test's node id with its expected outcome."""
    (root / "app.py").write_text(textwrap.dedent(APP))
    (root / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (root / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    expected: dict[str, tuple[str, int, bool]] = {}
    per_module = max(1, copies // modules)
    number = 0
    for module in range(modules):
        name = f"test_soak_{module:02d}.py"
        parts = [textwrap.dedent(HEADER)]
        for _ in range(per_module):
            for kind, outcome, attempts, watched, source in KINDS:
                parts.append(textwrap.dedent(source.format(n=number)))
                expected[f"{name}::test_{kind}_{number}"] = (outcome, attempts, watched)
            number += 1
        (root / name).write_text("\n".join(parts))
    return expected


# --- running and checking --------------------------------------------------------------------


def run_once(
    root: Path, seed: int, workers: str, timeout: float
) -> tuple[subprocess.CompletedProcess[str], float]:
    for stale in [*root.glob("identity-*.json"), root / "outcomes.json", root / "report.json"]:
        stale.unlink(missing_ok=True)
    env = dict(os.environ, COVERAGE_FILE=str(root / ".coverage"))
    env.pop("GITHUB_ACTIONS", None)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "-n",
        workers,
        f"--randomly-seed={seed}",
        "--cov",
        "--cov-branch",
        "--cov-report=",
        "--reruns",
        "1",
        "--noblock-all",
        "--noblock-report=report.json",
        "-W",
        "error",
        # Coverage's own files and the event loop pytest-asyncio closes are not ours to judge.
        "-W",
        "ignore::pytest.PytestUnraisableExceptionWarning",
    ]
    started = time.perf_counter()
    result = subprocess.run(
        command, cwd=root, env=env, capture_output=True, text=True, timeout=timeout
    )
    return result, time.perf_counter() - started


def check(root: Path, expected: dict[str, tuple[str, int, bool]]) -> list[str]:
    """Every surprise of one run, one line each."""
    problems: list[str] = []
    try:
        seen = json.loads((root / "outcomes.json").read_text())
    except (OSError, ValueError) as error:
        return [f"no outcomes.json: {error}"]
    outcomes, reruns = seen["outcomes"], seen["reruns"]
    for nodeid, (outcome, attempts, _) in expected.items():
        got = outcomes.get(nodeid)
        got_attempts = reruns.get(nodeid, 0) + 1
        if got != outcome or got_attempts != attempts:
            problems.append(
                f"{nodeid}: expected {outcome} in {attempts} attempt(s), "
                f"got {got} in {got_attempts}"
            )
    extra = sorted(set(outcomes) - set(expected))
    problems += [f"{nodeid}: not generated, yet it ran" for nodeid in extra]
    problems += _check_report(root, expected)
    identity = sorted(root.glob("identity-*.json"))
    if len(identity) < 2:
        problems.append(f"the session-end check ran in {len(identity)} process(es), not all")
    for path in identity:
        state = json.loads(path.read_text())
        process = path.stem.removeprefix("identity-")
        for label in state["changed"]:
            problems.append(f"{process}: {label} is not the original object after the session")
        for label in state["leaked"]:
            problems.append(f"{process}: the plugin's wrapper or stand-in left at {label}")
        if state["threads"]:
            problems.append(f"{process}: threads left: {state['threads']}")
        if state["cpu_alarm"] != [0.0, 0.0]:
            problems.append(f"{process}: CPU-time alarm left armed: {state['cpu_alarm']}")
    return problems


def _check_report(root: Path, expected: dict[str, tuple[str, int, bool]]) -> list[str]:
    try:
        report = json.loads((root / "report.json").read_text())
    except (OSError, ValueError) as error:
        return [f"no JSON report: {error}"]
    problems = []
    try:
        import jsonschema

        from pytest_noblock.reporting.gate import load_schema

        jsonschema.validate(report, load_schema())
    except ImportError:
        pass
    except Exception as error:  # jsonschema.ValidationError: the first problem is enough
        problems.append(f"the JSON report does not match its schema: {str(error)[:200]}")
    records = report.get("tests", [])
    nodeids = [record["nodeid"] for record in records]
    if len(nodeids) != len(set(nodeids)):
        repeated = [nodeid for nodeid, count in Counter(nodeids).items() if count > 1]
        problems.append(f"the JSON report repeats {len(repeated)} node ids, e.g. {repeated[0]}")
    watched = {nodeid for nodeid, (_, _, is_watched) in expected.items() if is_watched}
    missing = sorted(watched - set(nodeids))
    if missing:
        problems.append(f"the JSON report misses {len(missing)} watched tests, e.g. {missing[0]}")
    for record in records:
        _, attempts, _ = expected.get(record["nodeid"], (None, None, None))
        if attempts is not None and record.get("attempts") != attempts:
            problems.append(
                f"{record['nodeid']}: the JSON report says {record.get('attempts')} attempts, "
                f"not {attempts}"
            )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1", help="pytest-randomly seeds, one run each (1)")
    parser.add_argument(
        "--copies", type=int, default=40, help=f"copies of the {len(KINDS)} kinds of test (40)"
    )
    parser.add_argument("--modules", type=int, default=20, help="test modules (20)")
    parser.add_argument("-n", "--workers", default="2", help="pytest-xdist workers (2)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run (1800)")
    parser.add_argument("--keep", action="store_true", help="keep the generated project")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="noblock-soak-"))
    failed = False
    try:
        expected = generate(root, args.copies, args.modules)
        kinds = Counter(outcome for outcome, _, _ in expected.values())
        print(
            f"soak: {len(expected)} tests ({', '.join(f'{n} {o}' for o, n in kinds.items())}) "
            f"in {args.modules} modules, -n {args.workers}, --reruns 1, --cov --cov-branch, "
            "--noblock-all, -W error"
        )
        for seed in (int(text) for text in args.seeds.split(",")):
            result, seconds = run_once(root, seed, args.workers, args.timeout)
            problems = check(root, expected)
            if args.keep and (root / "report.json").exists():
                shutil.copy(root / "report.json", root / f"report-seed-{seed}.json")
            last = result.stdout.strip().splitlines()[-1:] or ["(no output)"]
            verdict = "ok" if not problems else f"{len(problems)} problem(s)"
            print(f"seed {seed}: {verdict} in {seconds:.0f} s, exit {result.returncode}: {last[0]}")
            for problem in problems[:20]:
                print(f"  {problem}")
            if problems and result.stderr.strip():
                print("  stderr: " + result.stderr.strip().splitlines()[-1][:300])
            if result.returncode not in (0, 1):
                failed = True
                print(f"  unexpected exit code {result.returncode}")
            failed = failed or bool(problems)
    finally:
        if args.keep:
            print(f"kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print("soak: " + ("FAILED" if failed else "passed"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
