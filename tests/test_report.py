"""The verdict a user reads when a handler held the loop: what, where, how long, and why."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

# Imported here so they stay in sys.modules between in-process runs: pytester drops the
# modules a run imported, and a FastAPI imported afresh next to a kept Starlette misroutes
# every request (307 to a trailing slash).
import fastapi  # noqa: F401
import pytest
import requests  # noqa: F401
from conftest import Project, line_of

# The source line and its underline are indented to sit under the `call` field's text.
SOURCE_INDENT = " " * 16


def assert_lines_in_a_row(result: pytest.RunResult, expected: Sequence[str]) -> None:
    """The exact lines, one after the other (no fnmatch: source code may hold `[`)."""
    lines = result.stdout.lines
    width = len(expected)
    for start in range(len(lines) - width + 1):
        if lines[start : start + width] == list(expected):
            return
    pytest.fail(
        "lines not found in a row:\n" + "\n".join(expected) + "\n--- in ---\n" + result.stdout.str()
    )


def failure_report(result: pytest.RunResult) -> str:
    """The text of the one failure, from its `___ name ___` header to the next `===` rule."""
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if re.fullmatch(r"_+ \S+ _+", line))
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("====="))
    return "\n".join(lines[start + 1 : end])


def underline(source_line: str, call: str) -> str:
    """The carets expected under `call` on `source_line` (as the report prints them)."""
    stripped = source_line.strip()
    assert stripped.count(call) == 1
    return SOURCE_INDENT + " " * stripped.index(call) + "^" * len(call)


SLEEP_APP = """
    import time
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/slow")
    async def slow():
        time.sleep(0.2)
        return {}
    """

SLOW_TEST = """
    import pytest

    @pytest.mark.noblock
    async def test_slow(noblock_client):
        assert (await noblock_client.get("/slow")).status_code == 200
    """


def test_the_verdict_names_request_time_budget_handler_and_line(project: Project) -> None:
    project.app(SLEEP_APP)
    project.tests(SLOW_TEST)
    result = project.run()
    result.assert_outcomes(failed=1)
    line = line_of(SLEEP_APP, "time.sleep(0.2)")
    result.stdout.fnmatch_lines(
        [
            f"noblock: GET /slow held the event loop for * ms at app.py:{line} (budget 50 ms)",
            "  handler   app:slow",
            f"  call      app.py:{line} in slow",
        ]
    )
    assert_lines_in_a_row(
        result,
        [
            f"  call      app.py:{line} in slow",
            SOURCE_INDENT + "time.sleep(0.2)",
            SOURCE_INDENT + "^^^^^^^^^^^^^^^",
        ],
    )
    held = re.search(r"held the event loop for (\d+) ms", result.stdout.str())
    assert held is not None
    assert int(held.group(1)) >= 190  # the 0.2 s sleep, not some other slice of it
    # time.sleep is a C function called straight from the app: no library frame to show.
    result.stdout.no_fnmatch_line("  landed in*")
    # One app frame only: no app stack.
    result.stdout.no_fnmatch_line("  app stack*")


def test_the_short_summary_line_starts_with_the_verdict(project: Project) -> None:
    project.app(SLEEP_APP)
    project.tests(SLOW_TEST)
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["FAILED test_app.py::test_slow - noblock: GET /slow*"])


def test_the_short_summary_is_one_line_on_ci(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On CI pytest prints the whole failure message in the short summary: ours must
    # still be the one headline, not the report a second time.
    monkeypatch.setenv("CI", "true")
    project.app(SLEEP_APP)
    project.tests(SLOW_TEST)
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "FAILED test_app.py::test_slow - noblock: GET /slow held the event loop "
            "for * ms at app.py:* (budget 50 ms)",
            "*= 1 failed in *",
        ]
    )
    assert len([line for line in result.stdout.lines if line.startswith("  handler")]) == 1


def test_a_post_request_and_the_marker_budget_are_named(project: Project) -> None:
    source = """
        import time
        from fastapi import FastAPI

        app = FastAPI()

        @app.post("/items")
        async def create_item():
            time.sleep(0.1)
            return {"created": True}
        """
    project.app(source)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock(budget_ms=20)
        async def test_create(noblock_client):
            assert (await noblock_client.post("/items", json={})).status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(failed=1)
    line = line_of(source, "time.sleep(0.1)")
    result.stdout.fnmatch_lines(
        [
            f"noblock: POST /items held the event loop for * ms at app.py:{line} (budget 20 ms)",
            "  handler   app:create_item",
            f"  call      app.py:{line} in create_item",
        ]
    )


def test_the_underline_marks_only_the_call_that_blocked(project: Project) -> None:
    source = """
        import time
        from fastapi import FastAPI

        app = FastAPI()

        @app.get("/label")
        async def label():
            text = str(len("ab")) + str(time.sleep(0.2))
            return {"text": text}
        """
    project.app(source)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        async def test_label(noblock_client):
            assert (await noblock_client.get("/label")).status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(failed=1)
    line = line_of(source, "time.sleep(0.2)")
    code = 'text = str(len("ab")) + str(time.sleep(0.2))'
    assert_lines_in_a_row(
        result,
        [
            f"  call      app.py:{line} in label",
            SOURCE_INDENT + code,
            underline(code, "time.sleep(0.2)"),
        ],
    )


def test_a_blocking_http_call_is_underlined_named_and_explained(
    project: Project, slow_http: str
) -> None:
    source = f"""
        import requests
        from fastapi import FastAPI

        URL = {slow_http!r} + "/rates"

        app = FastAPI()

        @app.get("/rates")
        async def rates():
            data = requests.get(URL, timeout=5).json()
            return data
        """
    project.app(source)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        async def test_rates(noblock_client):
            assert (await noblock_client.get("/rates")).json() == {"status": "ok"}
        """
    )
    result = project.run()
    result.assert_outcomes(failed=1)
    line = line_of(source, "requests.get(")
    code = "data = requests.get(URL, timeout=5).json()"
    assert_lines_in_a_row(
        result,
        [
            f"  call      app.py:{line} in rates",
            SOURCE_INDENT + code,
            underline(code, "requests.get(URL, timeout=5)"),
        ],
    )
    result.stdout.fnmatch_lines(
        [
            f"noblock: GET /rates held the event loop for * ms at app.py:{line} (budget 50 ms)",
            "  landed in socket.py:* in SocketIO.readinto",
            "  why       a blocking HTTP call",
            "  instead   *`httpx.AsyncClient`*run_in_threadpool(requests.get, ...)*",
            "            or make the endpoint a plain `def`: FastAPI runs those in its thread pool",
        ]
    )


def test_landed_in_names_the_library_frame_urlopen_went_into(
    project: Project, slow_http: str
) -> None:
    source = f"""
        import urllib.request
        from fastapi import FastAPI

        URL = {slow_http!r} + "/health"
        # The process's first urlopen builds an opener, loading the system's certificates:
        # done here, at import, so the wait for the upstream is the whole hold.
        urllib.request.install_opener(urllib.request.build_opener())

        app = FastAPI()

        @app.get("/health")
        async def health():
            with urllib.request.urlopen(URL, timeout=5) as response:
                return {{"upstream": response.status}}
        """
    project.app(source)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        async def test_health(noblock_client):
            assert (await noblock_client.get("/health")).json() == {"upstream": 200}
        """
    )
    result = project.run()
    result.assert_outcomes(failed=1)
    line = line_of(source, "urlopen(")
    result.stdout.fnmatch_lines(
        [
            f"  call      app.py:{line} in health",
            "  landed in socket.py:* in SocketIO.readinto",
            "  why       a blocking HTTP call",
        ]
    )


def test_landed_in_names_subprocess_for_subprocess_run(project: Project) -> None:
    source = """
        import subprocess
        from fastapi import FastAPI

        app = FastAPI()

        @app.get("/convert")
        async def convert():
            subprocess.run(["sleep", "0.2"], check=True)
            return {}
        """
    project.app(source)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        async def test_convert(noblock_client):
            assert (await noblock_client.get("/convert")).status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(failed=1)
    line = line_of(source, "subprocess.run(")
    result.stdout.fnmatch_lines(
        [
            f"  call      app.py:{line} in convert",
            "  landed in subprocess.py:* in *",
            "  why       a blocking subprocess call",
        ]
    )


PACKAGE_MAIN = """
from fastapi import FastAPI

from myapp import services

app = FastAPI()


def load_rates():
    return services.fetch_rates()


@app.get("/rates")
async def refresh_rates():
    rates = load_rates()
    return rates
"""

PACKAGE_SERVICES = """
import time


def fetch_rates():
    time.sleep(0.2)
    return {"rate": 1}
"""

PACKAGE_CONFTEST = """
import pytest

from myapp.main import app


@pytest.fixture
def noblock_app():
    return app
"""


def write_package_app(project: Project) -> None:
    """An app in a package: myapp/main.py's handler calls a helper that calls a service."""
    package = project.pytester.mkpydir("myapp")
    (package / "main.py").write_text(PACKAGE_MAIN.lstrip("\n"))
    (package / "services.py").write_text(PACKAGE_SERVICES.lstrip("\n"))
    project.pytester.makeconftest(PACKAGE_CONFTEST)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        async def test_rates(noblock_client):
            assert (await noblock_client.get("/rates")).json() == {"rate": 1}
        """
    )


def test_paths_are_relative_to_rootdir_and_the_app_stack_shows_only_app_frames(
    project: Project,
) -> None:
    write_package_app(project)
    result = project.run()
    result.assert_outcomes(failed=1)
    sleep_line = line_of(PACKAGE_SERVICES, "time.sleep(0.2)")
    helper_line = line_of(PACKAGE_MAIN, "return services.fetch_rates()")
    handler_line = line_of(PACKAGE_MAIN, "rates = load_rates()")
    result.stdout.fnmatch_lines(
        [
            "noblock: GET /rates held the event loop for * ms "
            f"at myapp/services.py:{sleep_line} (budget 50 ms)",
            "  handler   myapp.main:refresh_rates",
            f"  call      myapp/services.py:{sleep_line} in fetch_rates",
        ]
    )
    assert_lines_in_a_row(
        result,
        [
            f"  app stack myapp/main.py:{handler_line} in refresh_rates",
            f"            myapp/main.py:{helper_line} in load_rates",
            f"            myapp/services.py:{sleep_line} in fetch_rates",
        ],
    )
    report = failure_report(result)
    for library in ("site-packages", "starlette", "fastapi/", "pytest_noblock", "asyncio/"):
        assert library not in report, f"{library!r} should not be in the report"


def test_vv_shows_the_whole_stack_with_the_framework_frames(project: Project) -> None:
    write_package_app(project)
    result = project.run("-vv")
    result.assert_outcomes(failed=1)
    sleep_line = line_of(PACKAGE_SERVICES, "time.sleep(0.2)")
    helper_line = line_of(PACKAGE_MAIN, "return services.fetch_rates()")
    handler_line = line_of(PACKAGE_MAIN, "rates = load_rates()")
    result.stdout.fnmatch_lines(
        [
            "  stack     *",
            "            *starlette/routing.py:* in *",
            "            *fastapi/routing.py:* in *",
            f"            myapp/main.py:{handler_line} in refresh_rates",
            f"            myapp/main.py:{helper_line} in load_rates",
            f"            myapp/services.py:{sleep_line} in fetch_rates",
            "  why       `time.sleep` stops the whole loop",
        ]
    )
    result.stdout.no_fnmatch_line("  app stack*")


def test_a_hold_in_a_dependency_names_the_route_handler_and_the_dependency_line(
    project: Project,
) -> None:
    source = """
        import time
        from typing import Annotated

        from fastapi import Depends, FastAPI

        app = FastAPI()

        async def current_user():
            time.sleep(0.2)
            return "ada"

        @app.get("/me")
        async def read_me(user: Annotated[str, Depends(current_user)]):
            return {"user": user}
        """
    project.app(source)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        async def test_me(noblock_client):
            assert (await noblock_client.get("/me")).json() == {"user": "ada"}
        """
    )
    result = project.run()
    result.assert_outcomes(failed=1)
    line = line_of(source, "time.sleep(0.2)")
    result.stdout.fnmatch_lines(
        [
            f"noblock: GET /me held the event loop for * ms at app.py:{line} (budget 50 ms)",
            "  handler   app:read_me",
            f"  call      app.py:{line} in current_user",
            "  why       `time.sleep` stops the whole loop",
        ]
    )


def test_the_tests_own_failure_and_the_hold_are_both_shown(project: Project) -> None:
    project.app(SLEEP_APP)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        async def test_slow(noblock_client):
            response = await noblock_client.get("/slow")
            assert response.json() == {"expected": "something else"}
        """
    )
    result = project.run()
    result.assert_outcomes(failed=1)
    line = line_of(SLEEP_APP, "time.sleep(0.2)")
    result.stdout.fnmatch_lines(
        [
            "E       AssertionError: assert {} == {'expected': 'something else'}",
            "*- noblock: the event loop was held -*",
            f"noblock: GET /slow held the event loop for * ms at app.py:{line} (budget 50 ms)",
            "  handler   app:slow",
            f"  call      app.py:{line} in slow",
        ]
    )
    # The test's own failure stays the main report.
    result.stdout.fnmatch_lines(["FAILED test_app.py::test_slow - AssertionError*"])


SEVERAL_HOLDS_APP = """
    import time
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/sleep/{ms}")
    async def nap(ms: int):
        time.sleep(ms / 1000)
        return {}
    """

SEVERAL_HOLDS_TEST = """
    import pytest

    @pytest.mark.noblock(budget_ms=20)
    async def test_naps(noblock_client):
        # 120 ms apart at the top: a stall of the machine (a sleep that overran by 80 ms
        # was seen in CI) cannot change the order.
        for ms in (60, 480, 120, 360, 240):
            assert (await noblock_client.get(f"/sleep/{ms}")).status_code == 200
    """


def test_several_holds_are_listed_worst_first_and_capped_at_three(project: Project) -> None:
    project.app(SEVERAL_HOLDS_APP)
    project.tests(SEVERAL_HOLDS_TEST)
    result = project.run()
    result.assert_outcomes(failed=1)
    line = line_of(SEVERAL_HOLDS_APP, "time.sleep(ms / 1000)")
    # Requests are named by their route: the durations tell the five apart.
    result.stdout.fnmatch_lines(
        [
            "noblock: 5 holds of the event loop over the 20 ms budget; worst: "
            f"GET /sleep/{{ms}} held the event loop for * ms at app.py:{line} (budget 20 ms)",
            "",
            f"GET /sleep/{{ms}} held the event loop for * ms at app.py:{line} (budget 20 ms)",
            "  handler   app:nap",
            "",
            "GET /sleep/{ms} held the event loop for * ms*",
            "  handler   app:nap",
            "",
            "GET /sleep/{ms} held the event loop for * ms*",
            "  handler   app:nap",
            "",
            "... and 2 more holds (-vv shows them all)",
        ]
    )
    shown = [
        int(match.group(1))
        for text in result.stdout.lines
        if (match := re.match(r"GET /sleep/\{ms\} held the event loop for (\d+) ms", text))
    ]
    # The worst in the first line, then the three longest, worst first: 480, 360, 240 ms.
    assert len(shown) == 3, shown
    assert shown == sorted(shown, reverse=True), shown
    assert shown[-1] >= 200, shown


def test_vv_lists_every_hold(project: Project) -> None:
    project.app(SEVERAL_HOLDS_APP)
    project.tests(SEVERAL_HOLDS_TEST)
    result = project.run("-vv")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["noblock: 5 holds of the event loop over the 20 ms budget; *"])
    # Each on its own: on a loaded machine a sleep can overrun enough to change the order.
    headlines = [
        line
        for line in result.stdout.lines
        if line.startswith("GET /sleep/{ms} held the event loop for ")
    ]
    assert len(headlines) == 5, headlines
    result.stdout.no_fnmatch_line("*more holds (-vv shows them all)*")


@pytest.mark.parametrize("flags", [(), ("-vv", "-l"), ("-vv", "--showlocals", "--tb=long")])
def test_reports_never_print_local_values(project: Project, flags: tuple[str, ...]) -> None:
    source = """
        import time
        from fastapi import FastAPI

        app = FastAPI()

        def sign(token):
            time.sleep(0.2)
            return len(token)

        @app.get("/login")
        async def login():
            secret = "hunter2-topsecret"
            signature = sign(secret)
            return {"signature": signature}
        """
    project.app(source)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        async def test_login(noblock_client):
            assert (await noblock_client.get("/login")).status_code == 200
        """
    )
    result = project.run(*flags)
    result.assert_outcomes(failed=1)
    # The report is there, with the line that passes the secret on, by name only.
    result.stdout.fnmatch_lines(
        [
            "noblock: GET /login held the event loop for * ms at app.py:* (budget 50 ms)",
            "*app.py:* in login",
        ]
    )
    output = result.stdout.str() + result.stderr.str()
    assert "hunter2-topsecret" not in output


def test_the_time_sleep_hint_points_to_asyncio_sleep(project: Project) -> None:
    project.app(SLEEP_APP)
    project.tests(SLOW_TEST)
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "  why       `time.sleep` stops the whole loop",
            "  instead   use `await asyncio.sleep(...)` (or `await anyio.sleep(...)`)",
            "            or make the endpoint a plain `def`: FastAPI runs those in its thread pool",
        ]
    )


def test_a_sleep_imported_from_time_still_gets_the_time_sleep_hint(project: Project) -> None:
    source = """
        from time import sleep
        from fastapi import FastAPI

        app = FastAPI()

        @app.get("/slow")
        async def slow():
            sleep(0.2)
            return {}
        """
    project.app(source)
    project.tests(SLOW_TEST)
    result = project.run()
    result.assert_outcomes(failed=1)
    line = line_of(source, "sleep(0.2)")
    result.stdout.fnmatch_lines(
        [
            f"  call      app.py:{line} in slow",
            "  why       `time.sleep` stops the whole loop",
            "  instead   use `await asyncio.sleep(...)`*",
        ]
    )


def test_reading_a_file_gets_the_file_io_hint(project: Project, tmp_path: Path) -> None:
    """A FIFO makes `open(path).read()` genuinely slow: its writer comes 0.2 s late."""
    fifo = tmp_path / "report.fifo"
    source = f"""
        from fastapi import FastAPI

        PATH = {str(fifo)!r}

        app = FastAPI()

        @app.get("/report")
        async def report():
            text = open(PATH).read()
            return {{"text": text}}
        """
    project.app(source)
    project.tests(
        f"""
        import os
        import threading
        import time

        import pytest

        PATH = {str(fifo)!r}

        def write_later():
            time.sleep(0.2)
            # O_RDWR never waits for a reader, so this thread cannot hang the run.
            fd = os.open(PATH, os.O_RDWR)
            os.write(fd, b"late")
            os.close(fd)

        @pytest.mark.noblock
        async def test_report(noblock_client):
            os.mkfifo(PATH)
            writer = threading.Thread(target=write_later, daemon=True)
            writer.start()
            response = await noblock_client.get("/report")
            writer.join(5)
            assert response.json() == {{"text": "late"}}
        """
    )
    result = project.run()
    result.assert_outcomes(failed=1)
    line = line_of(source, "open(PATH).read()")
    code = "text = open(PATH).read()"
    assert_lines_in_a_row(result, [f"  call      app.py:{line} in report", SOURCE_INDENT + code])
    result.stdout.fnmatch_lines(
        [
            "  why       blocking file I/O",
            "  instead   use `anyio.Path` or aiofiles*",
        ]
    )
