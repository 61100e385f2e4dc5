"""The shipped examples, run for real: four tests fail on a hold, one in strict mode, six pass."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import run_example

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_APP = ROOT / "examples" / "app.py"

# The source line and its underline are indented to sit under the `call` field's text.
SOURCE_INDENT = " " * 16


@pytest.fixture(scope="module")
def examples_run() -> pytest.RunResult:
    """`pytest examples/` from the project root, as the README tells users to run it."""
    return run_example("examples/")


def call_in(function: str, callee: str, path: Path = EXAMPLES_APP) -> ast.Call:
    """The one call of `callee` (e.g. `requests.get`) inside `function` in an example app."""
    tree = ast.parse(path.read_text())
    functions = [
        node
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == function
    ]
    assert len(functions) == 1, f"{path.name} must define {function} once"
    calls = [
        node
        for node in ast.walk(functions[0])
        if isinstance(node, ast.Call) and ast.unparse(node.func) == callee
    ]
    assert len(calls) == 1, f"{function} must call {callee} once"
    return calls[0]


def source_line(lineno: int) -> str:
    return EXAMPLES_APP.read_text().splitlines()[lineno - 1]


def assert_lines_in_a_row(result: pytest.RunResult, expected: list[str]) -> None:
    """The exact lines, one after the other (no fnmatch: source code may hold `[`)."""
    lines = result.stdout.lines
    for start in range(len(lines) - len(expected) + 1):
        if lines[start : start + len(expected)] == expected:
            return
    pytest.fail(
        "lines not found in a row:\n" + "\n".join(expected) + "\n--- in ---\n" + result.stdout.str()
    )


def test_five_examples_fail_and_six_pass(examples_run: pytest.RunResult) -> None:
    examples_run.assert_outcomes(failed=5, passed=6, warnings=None)
    examples_run.stdout.fnmatch_lines(
        [
            "FAILED examples/test_app.py::test_bad_practice - noblock: GET /bad-practice*",
            "FAILED examples/test_app.py::test_blocking_dependency - noblock: GET /settings*",
            "FAILED examples/test_strict.py::test_fast_stub_strict - noblock strict: "
            "GET /bad-practice*",
            "FAILED examples/testclient/test_testclient.py::test_report - noblock: GET /report*",
            "FAILED examples/trio/test_trio.py::test_slow_lookup - noblock: GET /slow-lookup*",
        ]
    )
    examples_run.stdout.no_fnmatch_line("FAILED *test_fast_stub_plain*")


def test_the_testclient_example_names_the_sleep_in_build_report(
    examples_run: pytest.RunResult,
) -> None:
    line = call_in("build_report", "time.sleep", ROOT / "examples" / "testclient" / "app.py").lineno
    examples_run.stdout.fnmatch_lines(
        [
            "noblock: GET /report held the event loop for * ms "
            f"at examples/testclient/app.py:{line} (budget 50 ms)",
            "  handler   examples.testclient.app:build_report",
            f"  call      examples/testclient/app.py:{line} in build_report",
        ]
    )
    examples_run.stdout.no_fnmatch_line("*GET /digest held*")


def test_the_trio_example_names_the_sleep_in_slow_lookup(
    examples_run: pytest.RunResult,
) -> None:
    line = call_in("slow_lookup", "time.sleep", ROOT / "examples" / "trio" / "app.py").lineno
    examples_run.stdout.fnmatch_lines(
        [
            "noblock: GET /slow-lookup held the event loop for * ms "
            f"at examples/trio/app.py:{line} (budget 50 ms)",
            "  handler   examples.trio.app:slow_lookup",
        ]
    )
    examples_run.stdout.no_fnmatch_line("*GET /fast-lookup held*")


def test_the_bad_practice_report_names_the_requests_get_line(
    examples_run: pytest.RunResult,
) -> None:
    call = call_in("bad_practice", "requests.get")
    line = call.lineno
    code = source_line(line)
    examples_run.stdout.fnmatch_lines(
        [
            "noblock: GET /bad-practice held the event loop for * ms "
            f"at examples/app.py:{line} (budget 50 ms)",
            "  handler   examples.app:bad_practice",
            f"  call      examples/app.py:{line} in bad_practice",
        ]
    )
    underline = (
        SOURCE_INDENT
        + " " * (call.col_offset - (len(code) - len(code.lstrip())))
        + "^" * (call.end_col_offset - call.col_offset)
    )
    assert_lines_in_a_row(
        examples_run,
        [
            f"  call      examples/app.py:{line} in bad_practice",
            SOURCE_INDENT + code.strip(),
            underline,
        ],
    )
    examples_run.stdout.fnmatch_lines(
        [
            f"  call      examples/app.py:{line} in bad_practice",
            "  landed in socket.py:* in *",
            "  why       a blocking HTTP call",
        ]
    )


def test_the_dependency_report_names_the_sleep_in_load_settings(
    examples_run: pytest.RunResult,
) -> None:
    line = call_in("load_settings", "time.sleep").lineno
    examples_run.stdout.fnmatch_lines(
        [
            "noblock: GET /settings held the event loop for * ms "
            f"at examples/app.py:{line} (budget 50 ms)",
            "  handler   examples.app:read_settings",
            f"  call      examples/app.py:{line} in load_settings",
            "  why       `time.sleep` stops the whole loop",
        ]
    )
    assert_lines_in_a_row(
        examples_run,
        [
            f"  call      examples/app.py:{line} in load_settings",
            SOURCE_INDENT + source_line(line).strip(),
        ],
    )


def test_the_strict_example_names_the_requests_get_line(examples_run: pytest.RunResult) -> None:
    call = call_in("bad_practice", "requests.get")
    line = call.lineno
    code = source_line(line)
    underline = (
        SOURCE_INDENT
        + " " * (call.col_offset - (len(code) - len(code.lstrip())))
        + "^" * (call.end_col_offset - call.col_offset)
    )
    examples_run.stdout.fnmatch_lines(
        [
            "noblock strict: GET /bad-practice called requests.api.get on the event loop "
            f"at examples/app.py:{line}",
        ]
    )
    assert_lines_in_a_row(
        examples_run,
        [
            "  request   GET /bad-practice",
            "  handler   examples.app:bad_practice",
            f"  call      examples/app.py:{line} in bad_practice",
            SOURCE_INDENT + code.strip(),
            underline,
        ],
    )


def test_the_good_examples_report_nothing(examples_run: pytest.RunResult) -> None:
    for name in ("good_practice", "best_practice", "sync_endpoint"):
        examples_run.stdout.no_fnmatch_line(f"*examples.app:{name}*")
    examples_run.stdout.no_fnmatch_line("*GET /good-practice held*")
    examples_run.stdout.no_fnmatch_line("*GET /best-practice held*")
    examples_run.stdout.no_fnmatch_line("*GET /sync-endpoint held*")
