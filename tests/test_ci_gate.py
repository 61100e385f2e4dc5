"""The CI gate: whole-suite mode, the session summary, the JSON report, annotations, baseline."""

from __future__ import annotations

import json

# Imported here, in the outer process, so every in-process pytester run shares one copy of
# FastAPI and Starlette (a half-imported Starlette left over between runs breaks routing).
import fastapi  # noqa: F401
import pytest
from conftest import Project

# /slow holds the loop for 0.2 s: far over the 20 ms budget used below.
APP = """
import time
from fastapi import FastAPI

app = FastAPI()

@app.get("/slow")
async def slow():
    time.sleep(0.2)
    return {}

@app.get("/fast")
async def fast():
    return {}
"""

UNMARKED = """
import time
import pytest

async def test_slow(noblock_client):
    assert (await noblock_client.get("/slow")).status_code == 200

async def test_fast(noblock_client):
    assert (await noblock_client.get("/fast")).status_code == 200

def test_sync():
    assert True
"""


def gate_project(project: Project, tests: str = UNMARKED, **ini: str) -> Project:
    project.app(APP)
    ini.setdefault("asyncio_mode", "auto")
    project.ini(noblock_budget_ms="20", **ini)
    project.tests(tests)
    return project


# --- 1. whole-suite mode -------------------------------------------------------------------


def test_unmarked_tests_are_not_watched_by_default(project: Project) -> None:
    gate_project(project)
    project.run().assert_outcomes(passed=3)


def test_noblock_all_watches_every_async_test(project: Project) -> None:
    gate_project(project)
    result = project.run("--noblock-all")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["FAILED *test_slow - noblock: GET /slow held the event loop*"])
    result.stdout.no_fnmatch_line("*nothing was watched*")


def test_noblock_all_from_the_ini(project: Project) -> None:
    gate_project(project, noblock_all="true")
    project.run().assert_outcomes(passed=2, failed=1)


def test_noblock_false_opts_a_test_out(project: Project) -> None:
    gate_project(
        project,
        """
        import pytest

        @pytest.mark.noblock(False)
        async def test_slow(noblock_client):
            assert (await noblock_client.get("/slow")).status_code == 200
        """,
    )
    project.run("--noblock-all").assert_outcomes(passed=1)


def test_noblock_paused_excludes_a_stretch(project: Project) -> None:
    gate_project(
        project,
        """
        import pytest
        from pytest_noblock import noblock_paused

        @pytest.mark.noblock(count_test_code=True)
        async def test_setup_blocks(noblock_client):
            with noblock_paused():
                assert (await noblock_client.get("/slow")).status_code == 200
            assert (await noblock_client.get("/fast")).status_code == 200

        @pytest.mark.noblock
        async def test_after_pause_still_watched(noblock_client):
            with noblock_paused():
                pass
            assert (await noblock_client.get("/slow")).status_code == 200
        """,
    )
    result = project.run("-rA")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["FAILED *test_after_pause_still_watched - noblock: GET /slow*"])
    result.stdout.no_fnmatch_line("*test_setup_blocks*held*")


def test_noblock_paused_test_code_is_not_even_noted(project: Project) -> None:
    gate_project(
        project,
        """
        import time
        import pytest
        from pytest_noblock import noblock_paused

        @pytest.mark.noblock
        async def test_seed(noblock_client):
            with noblock_paused():
                time.sleep(0.2)
            assert (await noblock_client.get("/fast")).status_code == 200
        """,
    )
    result = project.run()
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*held the event loop*")


def test_noblock_paused_does_nothing_outside_a_watched_test(project: Project) -> None:
    gate_project(
        project,
        """
        import time
        from pytest_noblock import noblock_paused

        def test_sync():
            with noblock_paused():
                time.sleep(0.01)

        async def test_unwatched(noblock_client):
            with noblock_paused():
                assert (await noblock_client.get("/slow")).status_code == 200
            assert (await noblock_client.get("/slow")).status_code == 200
        """,
    )
    project.run().assert_outcomes(passed=2)


def test_noblock_all_says_nothing_about_tests_it_cannot_watch(project: Project) -> None:
    pytest.importorskip("trio")
    gate_project(
        project,
        """
        import pytest

        @pytest.fixture
        def anyio_backend():
            return "trio"

        @pytest.mark.anyio
        async def test_on_trio():
            pass
        """,
        asyncio_mode="strict",
    )
    result = project.run("--noblock-all")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*nothing was watched*")


def test_noblock_all_watches_testclient_tests_too(project: Project) -> None:
    gate_project(
        project,
        """
        from fastapi.testclient import TestClient

        from app import app

        def test_slow_through_testclient():
            with TestClient(app) as client:
                assert client.get("/slow").status_code == 200

        def test_no_loop_at_all():
            assert 1 + 1 == 2
        """,
    )
    result = project.run("--noblock-all")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        ["FAILED test_app.py::test_slow_through_testclient - noblock: GET /slow*"]
    )
    # A sync test that starts no loop did not ask to be watched: no note about it.
    result.stdout.no_fnmatch_line("*nothing was watched*")


# --- 2. session summary --------------------------------------------------------------------


def test_session_summary_lists_longest_holds(project: Project) -> None:
    gate_project(project)
    result = project.run("--noblock-all")
    result.stdout.fnmatch_lines(
        [
            "*= noblock: longest holds =*",
            "*ms*test_app.py::test_slow*GET /slow  app.py:8 in slow",
            "2 tests watched (2 requests), 1 failed on holds, 0 holds in test code (not blamed)",
            "holds per call site:",
            "*1 x app.py:8 in slow",
        ]
    )


def test_noblock_durations_limits_the_list(project: Project) -> None:
    gate_project(
        project,
        """
        import pytest

        @pytest.mark.parametrize("n", range(3))
        async def test_slow(noblock_client, n):
            assert (await noblock_client.get("/slow")).status_code == 200
        """,
    )
    result = project.run("--noblock-all", "--noblock-durations=1")
    text = result.stdout.str()
    assert text.count("GET /slow  app.py:8 in slow") == 1, text
    result.stdout.fnmatch_lines(["*3 x app.py:8 in slow"])
    everything = project.run("--noblock-all", "--noblock-durations=0").stdout.str()
    assert everything.count("GET /slow  app.py:8 in slow") == 3


def test_bad_noblock_durations_is_one_line(project: Project) -> None:
    gate_project(project)
    result = project.run("--noblock-durations=many")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--noblock-durations must be a whole number*'many'*"])


def test_no_summary_when_nothing_was_watched(project: Project) -> None:
    gate_project(project)
    project.run().stdout.no_fnmatch_line("*noblock: longest holds*")


# --- 3. JSON report ------------------------------------------------------------------------


def _report(project: Project, *args: str) -> dict[str, object]:
    path = project.pytester.path / "noblock.json"
    project.run("--noblock-all", f"--noblock-report={path}", *args)
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


def test_json_report_has_one_record_per_watched_test(project: Project) -> None:
    gate_project(project)
    data = _report(project)
    assert data["schema_version"] == 1
    tests = {record["nodeid"]: record for record in data["tests"]}  # type: ignore[attr-defined]
    assert set(tests) == {"test_app.py::test_slow", "test_app.py::test_fast"}
    slow = tests["test_app.py::test_slow"]
    assert slow["verdict"] == "failed"
    assert slow["budget_ms"] == 20
    (hold,) = slow["holds"]
    assert hold["request"] == "GET /slow"
    assert hold["handler"] == "app:slow"
    assert hold["blamed"] is True
    assert hold["held_ms"] >= 100
    assert hold["call_site"] == {
        "file": "app.py",
        "line": 8,
        "function": "slow",
        "source": "time.sleep(0.2)",
        "callee": "time.sleep",
    }
    assert tests["test_app.py::test_fast"]["verdict"] == "clean"
    assert data["settings"]["budget_ms"] == 20  # type: ignore[index]
    assert "pytest_noblock" in data["versions"]  # type: ignore[operator]


def test_json_report_matches_the_shipped_schema(project: Project) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from pytest_noblock.reporting.gate import load_schema

    gate_project(
        project,
        UNMARKED
        + """
async def test_own_code_blocks(noblock_client):
    time.sleep(0.2)
    assert (await noblock_client.get("/fast")).status_code == 200

async def test_slow_and_wrong(noblock_client):
    assert (await noblock_client.get("/slow")).status_code == 201
""",
    )
    data = _report(project)
    jsonschema.validate(data, load_schema())
    tests = {record["nodeid"]: record for record in data["tests"]}  # type: ignore[attr-defined]
    own = tests["test_app.py::test_own_code_blocks"]
    assert own["verdict"] == "clean"
    assert own["holds"][0]["origin"] == "test code"
    assert own["notes"]
    wrong = tests["test_app.py::test_slow_and_wrong"]
    assert (wrong["verdict"], wrong["outcome"]) == ("failed", "failed")
    assert data["summary"]["holds_in_test_code"] == 1  # type: ignore[index]


def test_json_report_carries_strict_findings(project: Project) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from pytest_noblock.reporting.gate import load_schema

    project.app(
        """
        import time
        from fastapi import FastAPI

        app = FastAPI()

        @app.get("/nap")
        async def nap():
            time.sleep(0.001)
            return {}
        """
    )
    project.tests(
        """
        import pytest

        @pytest.mark.noblock(strict=True)
        async def test_nap(noblock_client):
            assert (await noblock_client.get("/nap")).status_code == 200
        """
    )
    path = project.pytester.path / "noblock.json"
    project.run(f"--noblock-report={path}").assert_outcomes(failed=1)
    data = json.loads(path.read_text())
    jsonschema.validate(data, load_schema())
    (record,) = data["tests"]
    assert record["verdict"] == "failed"
    assert record["holds"] == []
    (finding,) = record["strict_findings"]
    assert finding["callee"] == "time.sleep"
    assert finding["count"] == 1
    assert finding["request"] == "GET /nap"
    assert finding["handler"] == "app:nap"
    assert finding["call_site"] == {
        "file": "app.py",
        "line": 8,
        "function": "nap",
        "source": "time.sleep(0.001)",
        "callee": "time.sleep",
    }


@pytest.mark.parametrize("option", ["--noblock-report", "--noblock-baseline"])
def test_an_output_path_under_a_file_stops_the_run_before_the_tests(
    project: Project, option: str
) -> None:
    gate_project(project)
    (project.pytester.path / "afile").write_text("")
    result = project.run("--noblock-all", f"{option}=afile/out.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in result.stderr.lines if line.strip()] == [
        f"ERROR: noblock: {option}=afile/out.json cannot be written: afile is a file, not a folder"
    ]
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


@pytest.mark.parametrize("option", ["--noblock-report", "--noblock-baseline"])
def test_an_output_path_that_is_a_folder_stops_the_run(project: Project, option: str) -> None:
    gate_project(project)
    (project.pytester.path / "out").mkdir()
    result = project.run("--noblock-all", f"{option}=out")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: noblock: {option}=out cannot be written: it is a folder"])


@pytest.mark.parametrize("option", ["--noblock-report", "--noblock-baseline"])
def test_an_empty_output_path_stops_the_run(project: Project, option: str) -> None:
    gate_project(project)
    result = project.run("--noblock-all", f"{option}=")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: noblock: {option} needs a file path, got ''"])


@pytest.mark.parametrize("option", ["--noblock-report", "--noblock-baseline"])
def test_an_output_that_cannot_be_written_at_the_end_fails_the_run(
    project: Project, option: str
) -> None:
    # A file appears where the output's folder was to be made, after the run started.
    gate_project(
        project,
        """
        from pathlib import Path

        async def test_fast(noblock_client):
            Path("out").write_text("")
            assert (await noblock_client.get("/fast")).status_code == 200
        """,
    )
    result = project.run("--noblock-all", f"{option}=out/out.json")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [f"noblock: could not write {option}=out/out.json: out is a file, not a folder"]
    )
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_an_output_that_cannot_be_written_fails_an_xdist_run_too(project: Project) -> None:
    gate_project(
        project,
        """
        from pathlib import Path

        async def test_fast(noblock_client):
            Path("out").write_text("")
            assert (await noblock_client.get("/fast")).status_code == 200
        """,
    )
    result = project.run("--noblock-all", "--noblock-report=out/report.json", "-n", "2")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED


# --- 4. GitHub Actions annotations ---------------------------------------------------------


def test_github_annotations(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    gate_project(project)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.delenv("GITHUB_WORKSPACE", raising=False)
    result = project.run("--noblock-all")
    result.stdout.fnmatch_lines(
        ["::error file=app.py,line=8,title=noblock::GET /slow held the event loop*"]
    )
    off = project.run("--noblock-all", "--noblock-no-annotations")
    off.stdout.no_fnmatch_line("::error*")


def test_annotation_paths_are_relative_to_the_workspace(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate_project(project)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_WORKSPACE", str(project.pytester.path.parent))
    result = project.run("--noblock-all")
    result.stdout.fnmatch_lines([f"::error file={project.pytester.path.name}/app.py,line=8,*"])


def test_no_annotations_outside_github(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    gate_project(project)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    project.run("--noblock-all").stdout.no_fnmatch_line("::error*")


# --- 5. xdist and -p no:noblock ------------------------------------------------------------


def test_xdist_workers_report_to_one_summary_and_file(project: Project) -> None:
    pytest.importorskip("xdist")
    gate_project(
        project,
        """
        import pytest

        @pytest.mark.parametrize("n", range(4))
        async def test_slow(noblock_client, n):
            assert (await noblock_client.get("/slow")).status_code == 200

        async def test_fast(noblock_client):
            assert (await noblock_client.get("/fast")).status_code == 200
        """,
    )
    path = project.pytester.path / "noblock.json"
    result = project.run("-n", "2", "--noblock-all", f"--noblock-report={path}")
    result.assert_outcomes(passed=1, failed=4)
    result.stdout.fnmatch_lines(
        ["5 tests watched (*), 4 failed on holds, *", "*4 x app.py:8 in slow"]
    )
    # The short summary gives the hold's headline, as without xdist.
    result.stdout.fnmatch_lines(["FAILED test_app.py::test_slow[[]*] - noblock: GET /slow*"])
    data = json.loads(path.read_text())
    assert len(data["tests"]) == 5
    assert not list(project.pytester.path.glob("noblock.json.*"))


def test_disabled_with_p_no_noblock(project: Project) -> None:
    project.app(APP)
    project.tests(
        """
        import httpx
        import pytest
        from app import app
        from pytest_noblock import noblock_paused

        @pytest.mark.noblock
        async def test_slow():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                with noblock_paused():
                    assert (await client.get("/fast")).status_code == 200
                assert (await client.get("/slow")).status_code == 200
        """
    )
    result = project.run("-p", "no:noblock", "-W", "ignore::pytest.PytestUnknownMarkWarning")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*held the event loop*")


# --- 6. baseline ---------------------------------------------------------------------------


def test_baseline_records_then_only_new_findings_fail(project: Project) -> None:
    gate_project(project)
    baseline = project.pytester.path / "noblock-baseline.json"
    first = project.run("--noblock-all", f"--noblock-baseline={baseline}")
    first.assert_outcomes(passed=3)
    first.stdout.fnmatch_lines(["*noblock: wrote a baseline of 1 finding to *"])
    assert baseline.exists()

    # An unrelated edit moves the known line down: still known.
    project.app("# a comment\n# another\n" + APP)
    project.run("--noblock-all", f"--noblock-baseline={baseline}").assert_outcomes(passed=3)

    # A new blocking call fails; the old one, once fixed, is reported as gone.
    project.app(
        APP.replace("time.sleep(0.2)", "pass").replace(
            "async def fast():\n    return {}",
            "async def fast():\n    time.sleep(0.2)\n    return {}",
        )
    )
    result = project.run("--noblock-all", f"--noblock-baseline={baseline}")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*noblock: 1 baseline entry is gone*",
            "*app:slow*time.sleep(0.2)*",
            "FAILED *test_fast - noblock: GET /fast*",
        ]
    )


def test_broken_baseline_is_one_line(project: Project) -> None:
    gate_project(project)
    (project.pytester.path / "base.json").write_text("not json")
    result = project.run("--noblock-all", "--noblock-baseline=base.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--noblock-baseline*base.json*not a noblock baseline*"])


def test_baseline_under_xdist(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("xdist")
    gate_project(project)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    baseline = project.pytester.path / "noblock-baseline.json"
    first = project.run("-n", "2", "--noblock-all", f"--noblock-baseline={baseline}")
    first.assert_outcomes(passed=3)
    assert json.loads(baseline.read_text())["findings"][0]["handler"] == "app:slow"
    again = project.run("-n", "2", "--noblock-all", f"--noblock-baseline={baseline}")
    again.assert_outcomes(passed=3)
    # A baselined finding is known: no annotation marks it in the pull request.
    again.stdout.no_fnmatch_line("::error*")
    again.stdout.no_fnmatch_line("*baseline entr*gone*")


def test_a_test_code_hold_that_fails_is_counted_as_a_failure_not_a_note(
    project: Project,
) -> None:
    project.app("app = None\n")
    project.tests(
        """
        import time
        import pytest

        @pytest.mark.noblock(count_test_code=True)
        async def test_own():
            time.sleep(0.2)
        """
    )
    result = project.run("--noblock-report=report.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["1 tests watched (* requests), 1 failed on holds, 0 holds in test code (not blamed)"]
    )
    data = json.loads((project.pytester.path / "report.json").read_text())
    hold = data["tests"][0]["holds"][0]
    assert hold["origin"] == "test code"
    assert hold["in_spawned_task"] is False
