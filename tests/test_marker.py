"""The marker and its options: where the budget comes from, and how bad values are refused."""

from __future__ import annotations

# Imported here, in the outer process, so every in-process pytester run shares one copy of
# FastAPI and Starlette (a half-imported Starlette left over between runs breaks routing).
import fastapi  # noqa: F401
import pytest
from conftest import Project

# A 0.1 s hold: well over a 20 ms budget, well under a 500 ms one.
APP = """
import time
from fastapi import FastAPI

app = FastAPI()

@app.get("/slow")
async def slow():
    time.sleep(0.1)
    return {}

@app.get("/fast")
async def fast():
    return {}
"""


def slow_test(marker: str) -> str:
    return f"""
        import pytest

        @pytest.mark.{marker}
        async def test_x(noblock_client):
            assert (await noblock_client.get("/slow")).status_code == 200
        """


def assert_one_usage_error(result: pytest.RunResult, line: str) -> None:
    """The run stopped before any test ran, with exactly one clear line and no traceback."""
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [text for text in result.stderr.lines if text.strip()]
    assert len(errors) == 1, errors
    result.stderr.fnmatch_lines([line])
    assert "Traceback" not in result.stdout.str()
    assert "Traceback" not in result.stderr.str()
    result.stdout.no_fnmatch_line("*passed*")
    result.stdout.no_fnmatch_line("*failed*")


# --- the marker is registered ---------------------------------------------------------------


def test_markers_lists_noblock(project: Project) -> None:
    result = project.run("--markers")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["@pytest.mark.noblock(budget_ms=*count_test_code=*): *"])


def test_marked_test_runs_under_strict_markers(project: Project) -> None:
    project.app(APP)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        async def test_x(noblock_client):
            assert (await noblock_client.get("/fast")).status_code == 200

        @pytest.mark.noblock(budget_ms=20, count_test_code=True)
        async def test_y(noblock_client):
            assert (await noblock_client.get("/fast")).status_code == 200
        """
    )
    result = project.run("--strict-markers")
    result.assert_outcomes(passed=2)
    result.stdout.no_fnmatch_line("*not found in `markers` configuration*")


# --- where the budget comes from ------------------------------------------------------------


def test_default_budget_is_50_ms(project: Project) -> None:
    project.app(
        """
        import time
        from fastapi import FastAPI

        app = FastAPI()

        @app.get("/slow")
        async def slow():
            time.sleep(0.2)
            return {}
        """
    )
    project.tests(slow_test("noblock"))
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["noblock: GET /slow held the event loop for * (budget 50 ms)"])


@pytest.mark.parametrize("marker", ["noblock(budget_ms=20)", "noblock(20)"])
def test_small_marker_budget_fails_a_hold(project: Project, marker: str) -> None:
    project.app(APP)
    project.tests(slow_test(marker))
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["noblock: GET /slow held the event loop for * (budget 20 ms)"])


@pytest.mark.parametrize("marker", ["noblock(budget_ms=500)", "noblock(500)"])
def test_big_marker_budget_lets_the_same_hold_pass(project: Project, marker: str) -> None:
    project.app(APP)
    project.tests(slow_test(marker))
    result = project.run()
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*held the event loop*")


def test_marker_budget_accepts_a_float(project: Project) -> None:
    project.app(APP)
    project.tests(slow_test("noblock(budget_ms=20.0)"))
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*(budget 20 ms)"])


def test_ini_budget(project: Project) -> None:
    project.ini(asyncio_mode="auto", noblock_budget_ms="20")
    project.app(APP)
    project.tests(slow_test("noblock"))
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["noblock: GET /slow held the event loop for * (budget 20 ms)"])


def test_big_ini_budget_lets_the_hold_pass(project: Project) -> None:
    project.ini(asyncio_mode="auto", noblock_budget_ms="500")
    project.app(APP)
    project.tests(slow_test("noblock"))
    result = project.run()
    result.assert_outcomes(passed=1)


def test_cli_budget_overrides_a_big_ini_budget(project: Project) -> None:
    project.ini(asyncio_mode="auto", noblock_budget_ms="500")
    project.app(APP)
    project.tests(slow_test("noblock"))
    result = project.run("--noblock-budget-ms=20")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["noblock: GET /slow held the event loop for * (budget 20 ms)"])


def test_cli_budget_overrides_a_small_ini_budget(project: Project) -> None:
    project.ini(asyncio_mode="auto", noblock_budget_ms="20")
    project.app(APP)
    project.tests(slow_test("noblock"))
    result = project.run("--noblock-budget-ms", "500")
    result.assert_outcomes(passed=1)


def test_marker_budget_overrides_cli_and_ini(project: Project) -> None:
    project.ini(asyncio_mode="auto", noblock_budget_ms="500")
    project.app(APP)
    project.tests(slow_test("noblock(budget_ms=20)"))
    result = project.run("--noblock-budget-ms=500")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*(budget 20 ms)"])


def test_each_test_keeps_its_own_budget(project: Project) -> None:
    project.app(APP)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock(budget_ms=20)
        async def test_strict(noblock_client):
            await noblock_client.get("/slow")

        @pytest.mark.noblock(budget_ms=500)
        async def test_lenient(noblock_client):
            await noblock_client.get("/slow")
        """
    )
    result = project.run("-rA")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "PASSED test_app.py::test_lenient",
            "FAILED test_app.py::test_strict - noblock: GET /slow held *",
        ]
    )


# --- bad values stop the run ----------------------------------------------------------------

MARKER_BUDGET = (
    "ERROR: noblock: test_app.py::test_x: @pytest.mark.noblock(budget_ms=...) "
    "must be a positive number of milliseconds, got {}"
)


@pytest.mark.parametrize(
    ("marker", "shown"),
    [
        ("noblock(0)", "0"),
        ("noblock(budget_ms=0)", "0"),
        ("noblock(-5)", "-5"),
        ("noblock(budget_ms=-5)", "-5"),
        ('noblock("fast")', "'fast'"),
        ('noblock(budget_ms="fast")', "'fast'"),
        ("noblock(True)", "True"),
        ("noblock(budget_ms=True)", "True"),
    ],
)
def test_bad_marker_budget_stops_the_run(project: Project, marker: str, shown: str) -> None:
    project.app(APP)
    project.tests(slow_test(marker))
    result = project.run()
    assert_one_usage_error(result, MARKER_BUDGET.format(shown))


def test_unknown_marker_keyword_stops_the_run(project: Project) -> None:
    project.app(APP)
    project.tests(slow_test("noblock(budget=20)"))
    result = project.run()
    assert_one_usage_error(
        result,
        "ERROR: noblock: test_app.py::test_x: @pytest.mark.noblock got unknown option(s) budget; "
        "it takes budget_ms, count_test_code, count_lifespan, count_warmup, "
        "max_thread_wait_ms, strict, allow",
    )


def test_two_positional_values_stop_the_run(project: Project) -> None:
    project.app(APP)
    project.tests(slow_test("noblock(20, 30)"))
    result = project.run()
    assert_one_usage_error(
        result,
        "ERROR: noblock: test_app.py::test_x: @pytest.mark.noblock takes one positional value*",
    )


def test_a_budget_given_twice_stops_the_run_naming_both(project: Project) -> None:
    project.app(APP)
    project.tests(slow_test("noblock(20, budget_ms=30)"))
    result = project.run()
    assert_one_usage_error(
        result,
        "ERROR: noblock: test_app.py::test_x: @pytest.mark.noblock got the budget twice, "
        "as its first value (20) and as budget_ms=30: give one",
    )


def test_bad_count_test_code_stops_the_run(project: Project) -> None:
    project.app(APP)
    project.tests(slow_test('noblock(count_test_code="yes")'))
    result = project.run()
    assert_one_usage_error(
        result,
        "ERROR: noblock: test_app.py::test_x: @pytest.mark.noblock(count_test_code=...) "
        "must be True or False, got 'yes'",
    )


@pytest.mark.parametrize("value", ["abc", "0", "-3"])
def test_bad_ini_budget_stops_the_run(project: Project, value: str) -> None:
    project.ini(asyncio_mode="auto", noblock_budget_ms=value)
    project.app(APP)
    project.tests(slow_test("noblock"))
    result = project.run()
    assert_one_usage_error(
        result,
        "ERROR: noblock: ini option noblock_budget_ms must be a positive number of "
        f"milliseconds, got '{value}'",
    )


@pytest.mark.parametrize("value", ["0", "-1", "x", "nan"])
def test_bad_cli_budget_stops_the_run(project: Project, value: str) -> None:
    project.app(APP)
    project.tests(slow_test("noblock"))
    result = project.run(f"--noblock-budget-ms={value}")
    assert_one_usage_error(
        result,
        "ERROR: noblock: --noblock-budget-ms must be a positive number of milliseconds, "
        f"got '{value}'",
    )


def test_bad_cli_budget_wins_over_a_good_ini_budget(project: Project) -> None:
    project.ini(asyncio_mode="auto", noblock_budget_ms="50")
    project.app(APP)
    project.tests(slow_test("noblock"))
    result = project.run("--noblock-budget-ms=0")
    assert_one_usage_error(result, "ERROR: noblock: --noblock-budget-ms must be *, got '0'")


# --- count_test_code ------------------------------------------------------------------------

TEST_CODE_HOLD = """
import time
import pytest

@pytest.mark.{marker}
async def test_x(noblock_client):
    assert (await noblock_client.get("/fast")).status_code == 200
    time.sleep(0.2)
"""
SLEEP_LINE = TEST_CODE_HOLD.lstrip("\n").splitlines().index("    time.sleep(0.2)") + 1


def test_test_code_hold_is_a_note_by_default(project: Project) -> None:
    project.app(APP)
    project.tests(TEST_CODE_HOLD.format(marker="noblock"))
    result = project.run()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*= noblock notes =*",
            "test_app.py::test_x: the test's own code held the event loop for * (budget 50 ms); "
            "not counted against the app "
            "(count it with @pytest.mark.noblock(count_test_code=True))",
        ]
    )


def test_count_test_code_false_keeps_it_a_note(project: Project) -> None:
    project.ini(asyncio_mode="auto", noblock_count_test_code="true")
    project.app(APP)
    project.tests(TEST_CODE_HOLD.format(marker="noblock(count_test_code=False)"))
    result = project.run()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["test_app.py::test_x: the test's own code held the event loop*"])


def test_count_test_code_on_the_marker_fails_the_test(project: Project) -> None:
    project.app(APP)
    project.tests(TEST_CODE_HOLD.format(marker="noblock(count_test_code=True)"))
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "noblock: the test's own code held the event loop for * ms "
            f"at test_app.py:{SLEEP_LINE} (budget 50 ms)",
            f"  call      test_app.py:{SLEEP_LINE} in test_x",
        ]
    )


def test_count_test_code_in_the_ini_fails_the_test(project: Project) -> None:
    project.ini(asyncio_mode="auto", noblock_count_test_code="true")
    project.app(APP)
    project.tests(TEST_CODE_HOLD.format(marker="noblock"))
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "noblock: the test's own code held the event loop for * ms "
            f"at test_app.py:{SLEEP_LINE} (budget 50 ms)",
            f"  call      test_app.py:{SLEEP_LINE} in test_x",
        ]
    )
    result.stdout.no_fnmatch_line("*noblock notes*")


def test_count_test_code_does_not_touch_a_clean_test(project: Project) -> None:
    project.ini(asyncio_mode="auto", noblock_count_test_code="true")
    project.app(APP)
    project.tests(
        """
        import asyncio
        import pytest

        @pytest.mark.noblock
        async def test_x(noblock_client):
            assert (await noblock_client.get("/fast")).status_code == 200
            await asyncio.sleep(0.1)
        """
    )
    result = project.run()
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*held the event loop*")
