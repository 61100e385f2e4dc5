"""Absurd but well-formed values, and values that used to pass without a word.

Each stops the run with one line naming the option and the value (or, where a value is not
wrong but does nothing, says so in the test's notes), never a traceback from deep inside.
"""

from __future__ import annotations

import json

# Imported before pytester snapshots sys.modules (see test_cleanup.py).
import fastapi  # noqa: F401
import pytest
from conftest import Project
from test_marker import APP, assert_one_usage_error, slow_test

# --- budgets past what a timer can hold ------------------------------------------------------


@pytest.mark.parametrize(
    ("marker", "shown"),
    [
        ("noblock(1e308)", "1e+308"),
        ("noblock(budget_ms=2e13)", "20000000000000.0"),
        ("noblock(10**400)", "1" + "0" * 400),
        ("noblock(max_thread_wait_ms=1e308)", "1e+308"),
    ],
)
def test_a_huge_marker_value_stops_the_run_with_one_line(
    project: Project, marker: str, shown: str
) -> None:
    project.app(APP)
    project.tests(slow_test(marker))
    result = project.run()
    option = "max_thread_wait_ms" if "max_thread" in marker else "budget_ms"
    assert_one_usage_error(
        result,
        f"ERROR: noblock: test_app.py::test_x: @pytest.mark.noblock({option}=...) must be "
        f"at most 3600000 ms (an hour), got {shown}",
    )
    assert "OverflowError" not in result.stdout.str() + result.stderr.str()


def test_a_huge_ini_budget_stops_the_run_with_one_line(project: Project) -> None:
    project.ini(asyncio_mode="auto", noblock_budget_ms="1e308")
    project.app(APP)
    project.tests(slow_test("noblock"))
    result = project.run()
    assert_one_usage_error(
        result,
        "ERROR: noblock: ini option noblock_budget_ms must be at most 3600000 ms (an hour), "
        "got '1e308'",
    )


def test_a_huge_cli_budget_stops_the_run_with_one_line(project: Project) -> None:
    project.app(APP)
    project.tests(slow_test("noblock"))
    result = project.run("--noblock-budget-ms=1e308")
    assert_one_usage_error(
        result,
        "ERROR: noblock: --noblock-budget-ms must be at most 3600000 ms (an hour), got '1e308'",
    )


def test_an_hour_is_a_budget_that_lets_the_hold_pass(project: Project) -> None:
    project.app(APP)
    project.tests(slow_test("noblock(3_600_000)"))
    project.run().assert_outcomes(passed=1)


# --- values that passed without a word ------------------------------------------------------


@pytest.mark.parametrize(
    ("marker", "line"),
    [
        (
            "noblock(None)",
            "@pytest.mark.noblock(budget_ms=...) must be a positive number of milliseconds, "
            "got None (leave it out for the default)",
        ),
        (
            "noblock(budget_ms=None)",
            "@pytest.mark.noblock(budget_ms=...) must be a positive number of milliseconds, "
            "got None (leave it out for the default)",
        ),
        (
            "noblock(False, strict=True)",
            "@pytest.mark.noblock(False) leaves the test unwatched and takes no options, "
            "got strict",
        ),
    ],
)
def test_a_marker_value_that_means_nothing_stops_the_run(
    project: Project, marker: str, line: str
) -> None:
    project.app(APP)
    project.tests(slow_test(marker))
    result = project.run("--noblock-all")
    assert_one_usage_error(result, f"ERROR: noblock: test_app.py::test_x: {line}")


@pytest.mark.parametrize(
    "option",
    [
        "noblock_all",
        "noblock_annotations",
        "noblock_count_test_code",
        "noblock_count_lifespan",
        "noblock_strict",
    ],
)
def test_a_bad_ini_boolean_names_its_option(
    project: Project, option: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Checked on every run, not only where the option is used (annotations: on GitHub).
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    project.ini(asyncio_mode="auto", **{option: "maybe"})
    project.app(APP)
    project.tests(slow_test("noblock"))
    result = project.run()
    assert_one_usage_error(
        result, f"ERROR: noblock: ini option {option} must be true or false, got 'maybe'"
    )


# --- the app ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "shown"),
    [
        ("builtins:print", "<built-in function print> (builtins.builtin_function_or_method)"),
        ("app:sync_app", "<function sync_app at *> (builtins.function)"),
    ],
)
def test_a_callable_that_is_no_asgi_app_is_refused(project: Project, spec: str, shown: str) -> None:
    project.ini(asyncio_mode="auto", noblock_app=spec)
    project.pytester.makepyfile(app=APP + "\ndef sync_app(scope, receive, send):\n    pass\n")
    project.tests(slow_test("noblock"))
    result = project.run()
    assert_one_usage_error(
        result,
        f"ERROR: noblock: ini option noblock_app = '{spec}' gave {shown}, which is not an ASGI "
        "app: it is not `async def`; an ASGI app is awaited as app(scope, receive, send)",
    )


# --- the baseline file -----------------------------------------------------------------------


def write_baseline(project: Project, **fields: object) -> None:
    baseline = {"kind": "pytest-noblock baseline", "version": 1, "findings": []}
    baseline.update(fields)
    (project.pytester.path / "base.json").write_text(json.dumps(baseline))


@pytest.mark.parametrize(
    "entry",
    [
        {"function": ["slow"], "source": "time.sleep(0.1)", "handler": "app:slow"},
        {"function": "slow", "source": {"a": 1}, "handler": None},
        {"function": "slow", "source": "time.sleep(0.1)", "handler": 3},
    ],
)
def test_a_baseline_entry_that_is_no_finding_stops_the_run(
    project: Project, entry: dict[str, object]
) -> None:
    project.app(APP)
    project.tests(slow_test("noblock"))
    write_baseline(project, findings=[entry])
    result = project.run("--noblock-baseline=base.json")
    assert_one_usage_error(
        result,
        "ERROR: noblock: --noblock-baseline=base.json is not a noblock baseline "
        "(delete it to record a new one)",
    )
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_a_baseline_of_another_version_stops_the_run(project: Project) -> None:
    project.app(APP)
    project.tests(slow_test("noblock"))
    write_baseline(project, version=99)
    result = project.run("--noblock-baseline=base.json")
    assert_one_usage_error(
        result,
        "ERROR: noblock: --noblock-baseline=base.json is version 99 of the baseline format; "
        "this pytest-noblock reads version 1 (delete it to record a new one)",
    )
