"""Nothing silent: what ran unwatched is said, counted, and can fail a CI gate.

A gate that watched nothing looks exactly like a gate that found nothing. Each test that
asked to be watched and was not says why in its notes, the summary counts the watched
tests and the requests they sent against the tests that ran unwatched, and
`--noblock-require-requests` fails a run in which no request was watched at all.
"""

from __future__ import annotations

import json

# Kept in sys.modules between in-process runs (see test_kinds.py).
import fastapi  # noqa: F401
import jsonschema
from conftest import SLOW_AND_FAST_APP, Project

from pytest_noblock.reporting.gate import load_schema

WATCHED_AND_NOT = """
    import pytest

    @pytest.mark.noblock
    async def test_two_requests(noblock_client):
        assert (await noblock_client.get("/fast")).status_code == 200
        assert (await noblock_client.get("/fast")).status_code == 200

    @pytest.mark.noblock
    def test_no_loop_at_all():
        assert sum(range(10)) == 45
    """


def test_the_summary_counts_requests_and_what_ran_unwatched(project: Project) -> None:
    project.app(SLOW_AND_FAST_APP)
    project.tests(WATCHED_AND_NOT)
    result = project.run("-rA")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "1 tests watched (2 requests), 0 failed on holds, 0 holds in test code "
            "(not blamed), 1 ran unwatched (see their notes)",
        ]
    )
    result.stdout.fnmatch_lines(["*noblock notes*", "nothing was watched: no event loop ran*"])


def test_the_report_lists_what_ran_unwatched(project: Project) -> None:
    project.app(SLOW_AND_FAST_APP)
    project.tests(WATCHED_AND_NOT)
    project.run("--noblock-report=report.json").assert_outcomes(passed=2)
    data = json.loads((project.pytester.path / "report.json").read_text())
    jsonschema.validate(data, load_schema())
    assert data["summary"]["requests"] == 2
    assert data["summary"]["unwatched"] == 1
    assert [test["requests"] for test in data["tests"]] == [2]
    [unwatched] = data["unwatched"]
    assert unwatched["nodeid"] == "test_app.py::test_no_loop_at_all"
    assert unwatched["why"].startswith("nothing was watched")


def test_a_gate_that_watched_no_request_fails_when_asked(project: Project) -> None:
    project.app(SLOW_AND_FAST_APP)
    project.tests(
        """
        import pytest

        async def test_no_request():
            assert True

        def test_sync():
            assert True
        """
    )
    result = project.run("--noblock-all", "--noblock-require-requests")
    result.assert_outcomes(passed=2)
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        ["noblock: no request was watched in this run; --noblock-require-requests fails it"]
    )
    # Without the option the same run stays green.
    assert project.run("--noblock-all").ret == 0


def test_a_gate_that_watched_requests_passes_with_the_option(project: Project) -> None:
    project.app(SLOW_AND_FAST_APP)
    project.ini(asyncio_mode="auto", noblock_require_requests="true")
    project.tests(
        """
        async def test_fast(noblock_client):
            assert (await noblock_client.get("/fast")).status_code == 200
        """
    )
    result = project.run("--noblock-all")
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    result.stdout.no_fnmatch_line("*no request was watched*")


def test_the_option_counts_requests_from_xdist_workers(project: Project) -> None:
    project.app(SLOW_AND_FAST_APP)
    project.tests(
        """
        async def test_fast(noblock_client):
            assert (await noblock_client.get("/fast")).status_code == 200

        async def test_also_fast(noblock_client):
            assert (await noblock_client.get("/fast")).status_code == 200
        """
    )
    result = project.run_subprocess("--noblock-all", "--noblock-require-requests", "-n", "2")
    result.assert_outcomes(passed=2)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["2 tests watched (2 requests), *"])
