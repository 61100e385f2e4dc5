"""The benchmark harness still works: a few cases through pytest-noblock.

This checks the harness (corpus loader, generated tests, verdict parsing), not timings: the
blocking case must be caught at its labelled line, the clean case must stay clean; and the
drivers group generates runnable TestClient, trio and Litestar TestClient tests; the
suite-cost phase's generated suite passes with and without `--noblock-all`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "benchmarks" / "run.py"
BLOCKING = "handler_time_sleep"
CLEAN = "clean_def_sleep"
APP = ROOT / "benchmarks" / "corpus" / "apps" / "fastapi_handlers.py"
DRIVERS_APP = ROOT / "benchmarks" / "corpus" / "drivers" / "apps.py"
TESTCLIENT = "testclient_sleep"
TRIO = "trio_sleep"
LITESTAR_APP = ROOT / "benchmarks" / "corpus" / "drivers" / "litestar_app.py"
LITESTAR = "litestar_sleep"
WARMUP_APP = ROOT / "benchmarks" / "corpus" / "apps" / "warmup.py"
WARMUP = "clean_warmup_jinja_compile"
RECURRING = "jinja_environment_per_request"


def labelled_line(path: Path, case: str) -> int:
    """Found here independently of the harness's own loader."""
    lines = path.read_text().splitlines()
    hits = [number for number, text in enumerate(lines, 1) if f"# BLOCKS: {case}" in text]
    assert len(hits) == 1, hits
    return hits[0]


def labelled_lines(path: Path, case: str) -> list[int]:
    """Lines whose `# BLOCKS:` comment lists `case` (one line may label several cases)."""
    lines = path.read_text().splitlines()
    found = []
    for number, text in enumerate(lines, 1):
        match = re.search(r"#\s*BLOCKS:\s*(.+)$", text)
        if match and case in [name.strip() for name in match.group(1).split(",")]:
            found.append(number)
    return found


def run_harness(tmp_path: Path, *options: str, repeat: int = 1) -> tuple[dict[str, Any], str]:
    """One quick run of benchmarks/run.py (our plugin only, no burner, no overhead phase).

    Its generated projects go under `tmp_path` (kept there with `--keep`).
    """
    out = tmp_path / "results.json"
    env = {key: value for key, value in os.environ.items() if key != "PYTEST_ADDOPTS"}
    env["TMPDIR"] = str(tmp_path)
    done = subprocess.run(
        [
            sys.executable,
            str(RUN),
            *options,
            "--no-peers",
            "--repeat",
            str(repeat),
            "--no-burner",
            "--no-overhead",
            "--no-results",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    results: dict[str, Any] = json.loads(out.read_text())
    return results, done.stdout


def test_harness_catches_the_blocking_case_at_its_label_and_passes_the_clean_one(
    tmp_path: Path,
) -> None:
    results, stdout = run_harness(tmp_path, "--cases", f"{BLOCKING},{CLEAN}")
    ours = results["tools"]["noblock"]

    line = labelled_line(APP, BLOCKING)
    assert results["labels"][BLOCKING] == f"corpus/apps/fastapi_handlers.py:{line}"
    caught = ours["blocking"][BLOCKING]
    assert caught["blocked"] is True, caught
    assert caught["problem"] is None, caught
    assert caught["path"].endswith("corpus/apps/fastapi_handlers.py"), caught
    assert caught["line"] == line
    assert caught["exact"] is True
    assert caught["ms"] > 50

    assert [run["blocked"] for run in ours["clean"][CLEAN]] == [False]
    assert [run["problem"] for run in ours["clean"][CLEAN]] == [None]
    assert ours["totals"]["detected"] == 1
    assert ours["totals"]["false_alarms"] == 0
    assert "| pytest-noblock | 1/1 (100%) | 1/1 (100%) | 0/1 | 0 |" in stdout


def test_harness_runs_the_strict_group(tmp_path: Path) -> None:
    """Fast blocking calls: strict mode catches each at its label, the plain marker none."""
    results, _ = run_harness(tmp_path, "--cases", BLOCKING, "--strict", "--strict-repeat", "1")
    strict = results["strict"]
    caught = strict["noblock-strict"]["blocking"]
    assert caught, strict
    assert all(found["exact"] for found in caught.values()), caught
    assert not any(found["blocked"] for found in strict["noblock"]["blocking"].values())
    for tool in ("noblock-strict", "noblock"):
        runs = [run for runs in strict[tool]["clean"].values() for run in runs]
        assert runs
        assert not any(run["blocked"] or run["problem"] for run in runs), runs


def test_harness_runs_a_testclient_a_trio_and_a_litestar_case(tmp_path: Path) -> None:
    """The drivers group: a sync TestClient test, an anyio test on trio and a sync test with
    Litestar's TestClient, each caught."""
    results, stdout = run_harness(
        tmp_path, "--cases", f"{TESTCLIENT},{TRIO},{LITESTAR}", "--drivers-repeat", "1"
    )
    assert results["tools"]["noblock"]["totals"]["blocking"] == 0  # the asyncio table is apart
    drivers = results["drivers"]
    [line] = labelled_lines(DRIVERS_APP, TESTCLIENT)
    assert labelled_lines(DRIVERS_APP, TRIO) == [line]
    [litestar_line] = labelled_lines(LITESTAR_APP, LITESTAR)
    labels = {
        TESTCLIENT: f"corpus/drivers/apps.py:{line}",
        TRIO: f"corpus/drivers/apps.py:{line}",
        LITESTAR: f"corpus/drivers/litestar_app.py:{litestar_line}",
    }
    for case, label in labels.items():
        assert drivers["labels"][case] == label
        caught = drivers["noblock"]["blocking"][case]
        assert caught["problem"] is None, caught
        assert caught["blocked"] is True, caught
        assert caught["exact"] is True, caught
    assert "| TestClient (sync test) | pytest-noblock | 1/1 (100%) | 1/1 (100%) |" in stdout
    assert "| trio (anyio plugin) | pytest-noblock | 1/1 (100%) | 1/1 (100%) |" in stdout
    assert (
        "| Litestar `TestClient` (sync test) | pytest-noblock | 1/1 (100%) | 1/1 (100%) |" in stdout
    )


def test_harness_times_a_generated_suite_with_and_without_noblock_all(tmp_path: Path) -> None:
    results, stdout = run_harness(
        tmp_path,
        "--cases",
        CLEAN,
        "--suite-cost",
        "--suite-cost-rounds",
        "1",
        "--suite-cost-tests",
        "20",
    )
    cost = results["suite_cost"]
    assert cost["tests"] == 20
    assert cost["failed_runs"] == 0, cost
    assert len(cost["watched_s"]) == len(cost["plain_s"]) == len(cost["ratios"]) == 1
    assert "suite of 20 small tests, --noblock-all vs without: " in stdout


def test_harness_times_a_run_with_and_without_the_plugin(tmp_path: Path) -> None:
    results, stdout = run_harness(
        tmp_path, "--cases", CLEAN, "--import-cost", "--import-cost-rounds", "1"
    )
    cost = results["import_cost"]
    assert cost["failed_runs"] == 0, cost
    assert len(cost["bare_with_s"]) == len(cost["bare_without_s"]) == 1
    assert len(cost["installed_with_s"]) == len(cost["installed_without_s"]) == 1
    assert cost["module_import_ms"] > 0, cost
    assert "import cost of a run watching nothing: " in stdout


def test_harness_builds_a_fresh_app_for_each_warmup_repetition(tmp_path: Path) -> None:
    """A template compiled on a fresh app's first request: noted in every repetition, never
    failed; the same compile on every request is caught at its label."""
    results, _ = run_harness(tmp_path, "--cases", f"{RECURRING},{WARMUP}", "--keep", repeat=2)
    ours = results["tools"]["noblock"]

    [line] = labelled_lines(WARMUP_APP, RECURRING)
    caught = ours["blocking"][RECURRING]
    assert caught["problem"] is None, caught
    assert caught["blocked"] is True, caught
    assert caught["path"].endswith("corpus/apps/warmup.py"), caught
    assert caught["line"] == line

    assert [run["blocked"] for run in ours["clean"][WARMUP]] == [False, False]
    assert [run["problem"] for run in ours["clean"][WARMUP]] == [None, None]
    [log] = tmp_path.glob("noblock-bench-*/clean-noblock/pytest.log")
    # Each repetition got an app of its own, so each was a first request that warmed up.
    assert "2 warm-up holds noted" in log.read_text()


def test_watchdog_cost_script_prints_every_kind_against_the_unmarked_one() -> None:
    script = ROOT / "benchmarks" / "watchdog_cost.py"
    done = subprocess.run(
        [sys.executable, str(script), "--rounds", "2", "--requests", "5"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for kind in ("unmarked", "marked", "marked, no looks", "marked, no thread"):
        assert re.search(rf"^  {re.escape(kind)} +\d+\.\d us +[+-]\d+\.\d%$", done.stdout, re.M)
