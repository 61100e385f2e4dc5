"""The fixtures: noblock_app (from a fixture or the ini) and noblock_client with its lifespan."""

from __future__ import annotations

# Imported here, in the outer process, so every in-process pytester run shares one copy of
# FastAPI and Starlette (a half-imported Starlette left over between runs breaks routing).
import fastapi  # noqa: F401
import pytest
from conftest import SLOW_AND_FAST_APP, Project

APP = """
from fastapi import FastAPI

app = FastAPI()

@app.get("/hello")
async def hello():
    return {"hello": "world"}
"""

HELLO_TEST = """
import pytest

@pytest.mark.noblock
async def test_x(noblock_client):
    assert (await noblock_client.get("/hello")).json() == {"hello": "world"}
"""


def assert_stopped_with(result: pytest.RunResult, first_line: str) -> None:
    """The run stopped before any test ran, with a clear error and no traceback."""
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([first_line])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    result.stdout.no_fnmatch_line("*passed*")


# --- where the app comes from ---------------------------------------------------------------


def test_app_from_a_conftest_fixture(project: Project) -> None:
    project.app(APP)
    project.tests(HELLO_TEST)
    project.run().assert_outcomes(passed=1)


def test_app_from_the_ini_without_a_fixture(project: Project) -> None:
    project.ini(asyncio_mode="auto", noblock_app="app:app")
    project.pytester.makepyfile(app=APP)
    project.tests(HELLO_TEST)
    project.run().assert_outcomes(passed=1)


def test_app_from_the_ini_in_a_package(project: Project) -> None:
    project.ini(asyncio_mode="auto", noblock_app="myapp.main:app", pythonpath=".")
    project.pytester.mkpydir("myapp")
    project.pytester.makepyfile(**{"myapp/main": APP})
    project.tests(HELLO_TEST, name="tests/test_app")
    project.run().assert_outcomes(passed=1)


def test_fixture_override_wins_over_the_ini(project: Project) -> None:
    project.ini(asyncio_mode="auto", noblock_app="no_such_module:app")
    project.app(APP)
    project.tests(HELLO_TEST)
    project.run().assert_outcomes(passed=1)


def test_fixture_override_in_the_test_module(project: Project) -> None:
    project.pytester.makepyfile(app=APP)
    project.tests(
        """
        import pytest
        from app import app

        @pytest.fixture
        def noblock_app():
            return app

        @pytest.mark.noblock
        async def test_x(noblock_client):
            assert (await noblock_client.get("/hello")).json() == {"hello": "world"}
        """
    )
    project.run().assert_outcomes(passed=1)


def test_no_app_set_stops_the_run_and_shows_both_ways(project: Project) -> None:
    project.tests(HELLO_TEST)
    result = project.run()
    assert_stopped_with(
        result,
        "ERROR: noblock: test_app.py::test_x uses noblock_client, but no app is set: *",
    )
    result.stderr.fnmatch_lines(
        [
            '*noblock_app = "myapp.main:app"',
            "*with a fixture in conftest.py:",
            "*def noblock_app():",
            "*return app",
        ]
    )


def test_no_app_set_does_not_bother_tests_without_the_client(project: Project) -> None:
    project.tests(
        """
        import pytest

        async def test_plain():
            pass

        @pytest.mark.noblock
        async def test_marked():
            pass
        """
    )
    project.run().assert_outcomes(passed=2)


@pytest.mark.parametrize(
    ("spec", "line"),
    [
        (
            "no_such_module:app",
            "ERROR: noblock: ini option noblock_app = 'no_such_module:app': "
            "cannot import 'no_such_module' (ModuleNotFoundError: *)",
        ),
        (
            "app:nope",
            "ERROR: noblock: ini option noblock_app = 'app:nope': 'app' has no attribute 'nope'",
        ),
        (
            "app",
            "ERROR: noblock: ini option noblock_app = 'app' must look like "
            "'package.module:attribute'",
        ),
        (
            "app:not_an_app",
            "ERROR: noblock: ini option noblock_app = 'app:not_an_app' gave 42 (builtins.int), "
            "which is not an ASGI app*",
        ),
    ],
)
def test_bad_ini_app_stops_the_run_with_one_line(project: Project, spec: str, line: str) -> None:
    project.ini(asyncio_mode="auto", noblock_app=spec)
    project.pytester.makepyfile(app=APP + "\nnot_an_app = 42\n")
    project.tests(HELLO_TEST)
    result = project.run()
    assert_stopped_with(result, line)
    assert len([text for text in result.stderr.lines if text.strip()]) == 1


def test_ini_app_whose_import_fails_names_the_error(project: Project) -> None:
    project.ini(asyncio_mode="auto", noblock_app="app:app")
    project.pytester.makepyfile(app="raise RuntimeError('no database configured')\n")
    project.tests(HELLO_TEST)
    result = project.run()
    assert_stopped_with(
        result,
        "ERROR: noblock: ini option noblock_app = 'app:app': cannot import 'app' "
        "(RuntimeError: no database configured)",
    )


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ('"app"', "'app' (builtins.str)"),
        ("None", "None"),
        ("42", "42 (builtins.int)"),
        ("FastAPI", "the class fastapi.applications.FastAPI (pass an instance of it)"),
        ("importlib.import_module('app')", "the module 'app'"),
    ],
)
def test_non_asgi_fixture_value_errors_with_one_line(
    project: Project, value: str, shown: str
) -> None:
    project.pytester.makepyfile(app=APP)
    project.pytester.makeconftest(
        f"""
        import importlib

        import pytest
        from fastapi import FastAPI

        @pytest.fixture
        def noblock_app():
            return {value}
        """
    )
    project.tests(HELLO_TEST)
    result = project.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*_ ERROR at setup of test_x _*",
            f"noblock: the noblock_app fixture gave {shown}, which is not an ASGI app: "
            "an ASGI app is called as app(scope, receive, send)",
            "*= short test summary info =*",
        ],
        consecutive=True,
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_wsgi_app_gets_a_hint(project: Project) -> None:
    project.pytester.makeconftest(
        """
        import pytest

        def wsgi(environ, start_response):
            start_response("200 OK", [])
            return [b"hello"]

        @pytest.fixture
        def noblock_app():
            return wsgi
        """
    )
    project.tests(HELLO_TEST)
    result = project.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*_ ERROR at setup of test_x _*",
            "noblock: the noblock_app fixture gave <function wsgi at *> (builtins.function), "
            "which is not an ASGI app: it takes two arguments, like a WSGI app (Flask, Django); "
            "pytest-noblock needs an ASGI app (FastAPI, Starlette, ...)",
            "*= short test summary info =*",
        ],
        consecutive=True,
    )
    result.stdout.no_fnmatch_line("*Traceback*")


# --- the client -----------------------------------------------------------------------------


def test_client_is_an_httpx_async_client_on_testserver(project: Project) -> None:
    project.app(
        """
        from fastapi import FastAPI, Request

        app = FastAPI()

        @app.get("/where")
        async def where(request: Request):
            return {"url": str(request.url)}
        """
    )
    project.tests(
        """
        import httpx
        import pytest

        @pytest.mark.noblock
        async def test_x(noblock_client):
            assert isinstance(noblock_client, httpx.AsyncClient)
            assert str(noblock_client.base_url) == "http://testserver"
            response = await noblock_client.get("/where")
            assert response.json() == {"url": "http://testserver/where"}
        """
    )
    project.run().assert_outcomes(passed=1)


def test_client_works_in_an_unmarked_test(project: Project) -> None:
    project.app(APP)
    project.tests(
        """
        async def test_x(noblock_client):
            assert (await noblock_client.get("/hello")).json() == {"hello": "world"}
        """
    )
    project.run().assert_outcomes(passed=1)


def test_raw_asgi_app_without_lifespan_support(project: Project) -> None:
    project.app(
        """
        async def app(scope, receive, send):
            assert scope["type"] == "http"
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"raw " + scope["path"].encode()})
        """
    )
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        async def test_x(noblock_client):
            response = await noblock_client.get("/ping")
            assert response.status_code == 200
            assert response.text == "raw /ping"
        """
    )
    result = project.run()
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*LifespanError*")


def test_raw_asgi_app_that_ignores_lifespan_quietly(project: Project) -> None:
    """An app that returns at once on a lifespan scope, without reading a message."""
    project.app(
        """
        async def app(scope, receive, send):
            if scope["type"] != "http":
                return
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        """
    )
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        async def test_x(noblock_client):
            assert (await noblock_client.get("/")).status_code == 204
        """
    )
    project.run().assert_outcomes(passed=1)


# --- lifespan -------------------------------------------------------------------------------

LIFESPAN_APP = """
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request

LOG = Path(__file__).parent / "events.log"


def log(event):
    with LOG.open("a") as file:
        file.write(event + "\\n")


def events():
    return LOG.read_text().split() if LOG.exists() else []


@asynccontextmanager
async def lifespan(app):
    log("startup")
    app.state.started = True
    yield {"db": "x"}
    log("shutdown")


app = FastAPI(lifespan=lifespan)
app.state.started = False


@app.get("/state")
async def state(request: Request):
    log("request")
    return {"started": request.app.state.started, "db": request.state.db}
"""


def logged_events(project: Project) -> list[str]:
    return (project.pytester.path / "events.log").read_text().split()


def test_lifespan_runs_around_each_test(project: Project) -> None:
    project.app(LIFESPAN_APP)
    project.tests(
        """
        import pytest
        from app import events, log

        @pytest.mark.noblock
        async def test_first(noblock_client):
            assert events() == ["startup"]
            response = await noblock_client.get("/state")
            assert response.json() == {"started": True, "db": "x"}
            log("first-done")

        @pytest.mark.noblock
        async def test_second(noblock_client):
            # The first test's app was shut down after its body; this one started afresh.
            assert events() == ["startup", "request", "first-done", "shutdown", "startup"]
            assert (await noblock_client.get("/state")).json()["db"] == "x"
        """
    )
    project.run().assert_outcomes(passed=2)
    assert logged_events(project) == [
        "startup",
        "request",
        "first-done",
        "shutdown",
        "startup",
        "request",
        "shutdown",
    ]


def test_lifespan_state_reaches_request_state(project: Project) -> None:
    project.app(LIFESPAN_APP)
    project.tests(
        """
        async def test_x(noblock_client):
            assert (await noblock_client.get("/state")).json()["db"] == "x"
        """
    )
    project.run().assert_outcomes(passed=1)


def test_lifespan_shuts_down_after_a_failing_test(project: Project) -> None:
    project.app(LIFESPAN_APP)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        async def test_x(noblock_client):
            await noblock_client.get("/state")
            assert False, "the test's own failure"
        """
    )
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*AssertionError: the test's own failure"])
    assert logged_events(project) == ["startup", "request", "shutdown"]


FAILING_STARTUP_APP = """
from contextlib import asynccontextmanager
from fastapi import FastAPI

@asynccontextmanager
async def lifespan(app):
    raise RuntimeError("cannot reach the database")
    yield

app = FastAPI(lifespan=lifespan)

@app.get("/")
async def root():
    return {}
"""


@pytest.mark.parametrize("marked", [True, False])
def test_failing_startup_fails_the_test(project: Project, marked: bool) -> None:
    project.app(FAILING_STARTUP_APP)
    marker = "@pytest.mark.noblock" if marked else ""
    project.tests(
        f"""
        import pytest

        {marker}
        async def test_x(noblock_client):
            await noblock_client.get("/")
        """
    )
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "LifespanError: the app's lifespan startup failed: "
            "RuntimeError: cannot reach the database",
        ]
    )


def test_failing_startup_report_names_the_error_without_plugin_internals(
    project: Project,
) -> None:
    project.app(FAILING_STARTUP_APP)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        async def test_x(noblock_client):
            await noblock_client.get("/")
        """
    )
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*the app's lifespan startup failed: *RuntimeError: cannot reach the database"]
    )
    result.stdout.no_fnmatch_line("*pytest_noblock/*")
    result.stdout.no_fnmatch_line("*lifespan startup failed: Traceback*")


def test_failing_shutdown_is_reported(project: Project) -> None:
    project.app(
        """
        from contextlib import asynccontextmanager
        from fastapi import FastAPI

        @asynccontextmanager
        async def lifespan(app):
            yield
            raise RuntimeError("could not flush the cache")

        app = FastAPI(lifespan=lifespan)

        @app.get("/")
        async def root():
            return {}
        """
    )
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        async def test_x(noblock_client):
            assert (await noblock_client.get("/")).status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "LifespanError: the app's lifespan shutdown failed: "
            "RuntimeError: could not flush the cache",
        ]
    )


def test_client_first_used_by_an_async_fixture(project: Project) -> None:
    project.app(LIFESPAN_APP)
    project.tests(
        """
        import pytest
        from app import events

        @pytest.fixture
        async def seen_state(noblock_client):
            response = await noblock_client.get("/state")
            return response.json()

        @pytest.mark.noblock
        async def test_x(seen_state, noblock_client):
            assert seen_state == {"started": True, "db": "x"}
            assert (await noblock_client.get("/state")).json()["db"] == "x"
            assert events() == ["startup", "request", "request"]
        """
    )
    project.run().assert_outcomes(passed=1)
    assert logged_events(project) == ["startup", "request", "request", "shutdown"]


def test_client_used_by_an_async_fixture_in_strict_mode(project: Project) -> None:
    project.ini(asyncio_mode="strict")
    project.app(LIFESPAN_APP)
    project.tests(
        """
        import pytest
        import pytest_asyncio
        from app import events

        @pytest_asyncio.fixture
        async def seen_state(noblock_client):
            return (await noblock_client.get("/state")).json()

        @pytest.mark.asyncio
        @pytest.mark.noblock
        async def test_x(seen_state, noblock_client):
            assert seen_state["started"] is True
            assert (await noblock_client.get("/state")).json()["db"] == "x"
            assert events() == ["startup", "request", "request"]
        """
    )
    project.run().assert_outcomes(passed=1)
    assert logged_events(project) == ["startup", "request", "request", "shutdown"]


def test_blocking_lifespan_startup_is_not_blamed_on_the_test(project: Project) -> None:
    """Startup is watched: a hold there is the lifespan's, told in a note, never a failure."""
    project.app(
        """
        import time
        from contextlib import asynccontextmanager
        from fastapi import FastAPI

        @asynccontextmanager
        async def lifespan(app):
            time.sleep(0.2)
            yield

        app = FastAPI(lifespan=lifespan)

        @app.get("/")
        async def root():
            return {}
        """
    )
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        async def test_x(noblock_client):
            assert (await noblock_client.get("/")).status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["test_app.py::test_x: the app's lifespan held the event loop for * ms*not counted*"]
    )
    result.stdout.no_fnmatch_line("*GET / held the event loop*")


def test_noblock_off_keeps_the_fixtures_and_watches_nothing(project: Project) -> None:
    project.app(SLOW_AND_FAST_APP)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        async def test_slow(noblock_client):
            assert (await noblock_client.get("/slow")).status_code == 200
        """
    )
    result = project.run("--noblock-off", "--noblock-all")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*held the event loop*")
    result.stdout.no_fnmatch_line("*noblock: longest holds*")
