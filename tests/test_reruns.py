"""pytest-rerunfailures: each attempt is watched on its own, and the report tells the last one.

A rerun starts the test again on the same item: a fresh `noblock_client`, a fresh watch,
and nothing of the attempt before it (its client, its failure headline, its notes).
"""

from __future__ import annotations

import json

# Imported before pytester snapshots sys.modules (see test_cleanup.py).
import fastapi  # noqa: F401
import jsonschema
import pytest
from conftest import SLOW_AND_FAST_APP, Project

from pytest_noblock.reporting.gate import load_schema


def assert_outcomes(result: pytest.RunResult, **expected: int) -> None:
    """`RunResult.assert_outcomes` does not know pytest-rerunfailures' "rerun"."""
    assert result.parseoutcomes() == expected


# Each test module counts its attempts in a module global: pytest-rerunfailures reruns the
# test on the same module object.
HOLDS_ONCE = """
import pytest

attempts = []

@pytest.mark.noblock
async def test_holds_once(noblock_client):
    attempts.append(1)
    path = "/slow" if len(attempts) == 1 else "/fast"
    assert (await noblock_client.get(path)).status_code == 200
"""

FAILS_ONCE_UNMARKED = """
attempts = []

async def test_fails_once(noblock_client):
    attempts.append(1)
    assert (await noblock_client.get("/fast")).status_code == 200
    assert len(attempts) > 1, "first attempt fails on its own"
"""

HOLDS_THEN_FAILS = """
import pytest

attempts = []

@pytest.mark.noblock
async def test_holds_then_fails(noblock_client):
    attempts.append(1)
    path = "/slow" if len(attempts) == 1 else "/fast"
    assert (await noblock_client.get(path)).status_code == 200
    assert len(attempts) == 1, "the second attempt fails on its own assertion"
"""


def test_a_test_that_held_the_loop_once_passes_on_its_rerun(project: Project) -> None:
    project.app(SLOW_AND_FAST_APP)
    project.tests(HOLDS_ONCE)
    result = project.run("--reruns", "1")
    assert_outcomes(result, passed=1, rerun=1)
    assert "LifespanError" not in result.stdout.str()


def test_an_unmarked_client_test_that_failed_once_passes_on_its_rerun(project: Project) -> None:
    project.app(SLOW_AND_FAST_APP)
    project.tests(FAILS_ONCE_UNMARKED)
    result = project.run("--reruns", "2")
    assert_outcomes(result, passed=1, rerun=1)
    assert "LifespanError" not in result.stdout.str()


def test_a_rerun_under_noblock_all_and_xdist_passes(project: Project) -> None:
    project.app(SLOW_AND_FAST_APP)
    project.tests(HOLDS_ONCE)
    project.tests(FAILS_ONCE_UNMARKED, name="test_unmarked")
    result = project.run("--reruns", "1", "--noblock-all", "-n", "2")
    assert_outcomes(result, passed=2, rerun=2)


def test_the_json_report_has_one_record_per_test_for_its_last_attempt(project: Project) -> None:
    project.app(SLOW_AND_FAST_APP)
    project.tests(HOLDS_ONCE)
    project.tests(HOLDS_THEN_FAILS, name="test_then_fails")
    result = project.run("--reruns", "1", "--noblock-report=report.json")
    assert_outcomes(result, passed=1, failed=1, rerun=2)
    report = json.loads((project.pytester.path / "report.json").read_text())
    jsonschema.validate(report, load_schema())
    tests = {record["nodeid"]: record for record in report["tests"]}
    assert len(report["tests"]) == len(tests) == 2
    held_once = tests["test_app.py::test_holds_once"]
    assert (held_once["outcome"], held_once["verdict"], held_once["attempts"]) == (
        "passed",
        "clean",
        2,
    )
    assert [hold for hold in held_once["holds"] if hold["failing"]] == []
    then_failed = tests["test_then_fails.py::test_holds_then_fails"]
    assert (then_failed["outcome"], then_failed["verdict"], then_failed["attempts"]) == (
        "failed",
        "clean",
        2,
    )
    assert report["summary"]["watched"] == 2
    assert report["summary"]["failed_on_holds"] == 0


def test_a_test_run_once_counts_one_attempt(project: Project) -> None:
    project.app(SLOW_AND_FAST_APP)
    project.tests(HOLDS_ONCE)
    result = project.run("--noblock-report=report.json")
    result.assert_outcomes(failed=1)
    report = json.loads((project.pytester.path / "report.json").read_text())
    jsonschema.validate(report, load_schema())
    assert [(record["outcome"], record["attempts"]) for record in report["tests"]] == [
        ("failed", 1)
    ]


def test_a_rerun_shows_its_own_failure_not_the_previous_attempts_headline(
    project: Project,
) -> None:
    project.app(SLOW_AND_FAST_APP)
    project.tests(HOLDS_THEN_FAILS)
    result = project.run("--reruns", "1", "-rA")
    assert_outcomes(result, failed=1, rerun=1)
    result.stdout.fnmatch_lines(
        ["FAILED test_app.py::test_holds_then_fails - AssertionError: the second*"]
    )
    summary = result.stdout.str().split("short test summary info")[1]
    assert "FAILED test_app.py::test_holds_then_fails - noblock" not in summary
