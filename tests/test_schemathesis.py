"""schemathesis 4: `case.call()` serves the app on schemathesis's own session-long loop thread."""

from __future__ import annotations

from collections.abc import Iterator

# Imported here, in the outer process, so every in-process pytester run shares one copy of
# FastAPI and Starlette (a half-imported Starlette left over between runs breaks routing).
import fastapi  # noqa: F401
import pytest

# Imported in the outer process too: the inner runs share one schemathesis, whose loop
# thread `stop_schemathesis_loop` stops.
import schemathesis.python.asgi  # noqa: F401
from conftest import Project, line_of, stop_schemathesis_loop


@pytest.fixture(autouse=True, scope="module")
def schemathesis_loop_stopped_after() -> Iterator[None]:
    yield
    stop_schemathesis_loop()


APP = """
import contextlib
import time
from fastapi import FastAPI, Request

@contextlib.asynccontextmanager
async def lifespan(app):
    yield {"greeting": "hello"}

app = FastAPI(lifespan=lifespan)

@app.get("/items/{item_id}")
async def read_item(item_id: int):
    time.sleep(0.2)
    return {"id": item_id}

@app.get("/users/{user_id}")
async def read_user(user_id: int, request: Request):
    return {"id": user_id, "greeting": request.state.greeting}
"""
SLEEP_LINE = line_of(APP, "time.sleep(0.2)")

# Few examples, derandomized: quick, and the same requests every run.
SCHEMA = """
import pytest
import schemathesis
from hypothesis import settings
from app import app

schema = schemathesis.openapi.from_asgi("/openapi.json", app)
examples = settings(max_examples=3, derandomize=True, deadline=None, database=None)
"""

PARAMETRIZED = (
    SCHEMA
    + """
@pytest.mark.noblock
@schema.parametrize()
@examples
def test_api(case):
    response = case.call()
    assert response.status_code < 500
"""
)

BLOCKING_REPORT = [
    f"GET /items/{{item_id}} held the event loop for * ms at app.py:{SLEEP_LINE} (budget 50 ms)",
    "  handler   app:read_item",
    f"  call      app.py:{SLEEP_LINE} in read_item",
    "                time.sleep(0.2)",
    "                ^^^^^^^^^^^^^^^",
    "  why       `time.sleep` stops the whole loop",
    "  instead   use `await asyncio.sleep(...)` (or `await anyio.sleep(...)`)",
    "            or make the endpoint a plain `def`: FastAPI runs those in its thread pool",
]


def test_blocking_operation_fails_at_its_line_clean_one_passes(project: Project) -> None:
    project.app(APP)
    project.tests(PARAMETRIZED)
    result = project.run("-v")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*_ test_api[[]GET /items/{item_id}[]] _*", *BLOCKING_REPORT])
    result.stdout.no_fnmatch_line("*GET /users/*held the event loop*")
    # One test per operation, counted apart though pytest 9.2 gives them one node id.
    result.stdout.fnmatch_lines(["2 tests watched (*), 1 failed on holds, *"])
    result.stdout.no_fnmatch_line("*nothing was watched*")


def test_clean_operation_back_to_back_and_concurrent_at_20_ms(project: Project) -> None:
    project.app(APP)
    project.tests(
        SCHEMA
        + """
from concurrent.futures import ThreadPoolExecutor

@pytest.mark.noblock(budget_ms=20)
@schema.include(path="/users/{user_id}").parametrize()
@settings(max_examples=1, derandomize=True, deadline=None, database=None, phases=["generate"])
def test_users(case):
    for _ in range(50):
        assert case.call().json()["greeting"] == "hello"
    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(lambda _: case.call(), range(50)))
    assert [response.status_code for response in responses] == [200] * 50
"""
    )
    result = project.run("-rA")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*held the event loop*")
    result.stdout.no_fnmatch_line("*nothing was watched*")


@pytest.mark.skipif(
    tuple(int(part) for part in pytest.__version__.split(".")[:2]) >= (9, 2),
    reason="schemathesis.pytest.from_fixture sets Node._nodeid, which pytest 9.2 no longer "
    "has: it fails there with or without pytest-noblock",
)
def test_from_fixture(project: Project) -> None:
    project.app(APP)
    project.tests(
        """
        import pytest
        import schemathesis
        from hypothesis import settings
        from app import app

        @pytest.fixture
        def api_schema():
            return schemathesis.openapi.from_asgi("/openapi.json", app)

        schema = schemathesis.pytest.from_fixture("api_schema")

        @pytest.mark.noblock
        @schema.parametrize()
        @settings(max_examples=3, derandomize=True, deadline=None, database=None)
        def test_api(case):
            case.call()
        """
    )
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(BLOCKING_REPORT[:4])
    result.stdout.no_fnmatch_line("*nothing was watched*")


def test_nothing_left_patched_after_the_test(project: Project) -> None:
    project.app(APP)
    project.tests(
        PARAMETRIZED
        + """
import asyncio
from schemathesis.python import asgi

SEND = asgi._ASGIAdapter.send
RUN = asgi._Lifespan._run
START = asgi._start_lifespan
STATE = asgi._lifespan_state
HANDLE_RUN = asyncio.Handle._run

def test_zz_after():
    assert asgi._ASGIAdapter.send is SEND
    assert asgi._Lifespan._run is RUN
    assert asgi._start_lifespan is START
    assert asgi._lifespan_state is STATE
    assert asyncio.Handle._run is HANDLE_RUN
"""
    )
    result = project.run()
    result.assert_outcomes(passed=2, failed=1)


def test_a_release_it_does_not_know_is_said(project: Project) -> None:
    """A schemathesis whose inside moved: the test says what was not watched, and why."""
    project.app(APP)
    project.pytester.makeconftest(
        """
        import pytest
        from schemathesis.python import asgi

        class Lifespan(asgi._Lifespan):
            '''Stands for a release whose lifespan runs through another method.'''

        @pytest.fixture(autouse=True, scope="session")
        def other_release():
            known = asgi._Lifespan
            asgi._Lifespan = Lifespan
            yield
            asgi._Lifespan = known
        """
    )
    only_blocking = '@schema.include(path="/items/{item_id}").parametrize()'
    project.tests(
        PARAMETRIZED.replace("@schema.parametrize()", only_blocking)
        + """
@pytest.mark.noblock
def test_without_schemathesis():
    pass
"""
    )
    result = project.run()
    result.assert_outcomes(passed=2)
    # Said of the test that sent requests, not of every test in the process.
    result.stdout.fnmatch_lines(["test_app.py::test_without_schemathesis: nothing was watched*"])
    result.stdout.no_fnmatch_line("test_app.py::test_without_schemathesis: schemathesis's*")
    result.stdout.no_fnmatch_line("test_app.py::test_api: nothing was watched*")
    result.stdout.fnmatch_lines(
        [
            "test_app.py::test_api: schemathesis's requests were not watched: pytest-noblock "
            "knows how schemathesis 4.26 and later call the app, and this release differs "
            "(`schemathesis.python.asgi` lacks `_Lifespan._run`)",
        ]
    )


def test_async_test_calling_case_call(project: Project) -> None:
    """schemathesis runs an `async def` test on a loop of its own; the app still runs on
    schemathesis's loop thread, watched the same way."""
    project.app(APP)
    project.tests(PARAMETRIZED.replace("def test_api(case):", "async def test_api(case):"))
    result = project.run()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(BLOCKING_REPORT[:4])
    result.stdout.no_fnmatch_line("*nothing was watched*")
    result.stdout.fnmatch_lines(["*schemathesis runs this `async def` test on an event loop*"])


def test_strict_mode_reports_a_timed_call_once(project: Project) -> None:
    """Strict mode records the app's calls on schemathesis's loop thread (tests/
    test_strict_sync.py); a known call that also held the loop past the budget is reported
    once, as the hold, with its duration."""
    project.app(APP)
    project.tests(PARAMETRIZED.replace("@pytest.mark.noblock", "@pytest.mark.noblock(strict=True)"))
    result = project.run()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(BLOCKING_REPORT[:4])
    result.stdout.no_fnmatch_line("*noblock strict*")
    result.stdout.no_fnmatch_line("*strict mode watches async tests only*")


def test_async_test_awaiting_its_own_client_says_its_loop_is_not_watched(
    project: Project,
) -> None:
    """schemathesis runs an `async def` test on a loop no adapter sees: a request the test
    awaits there (httpx's ASGITransport) is not watched, and the test says so."""
    project.app(APP)
    project.tests(
        SCHEMA
        + """
import httpx

@pytest.mark.noblock
@schema.include(path="/items/{item_id}").parametrize()
@examples
async def test_api(case):
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await client.get(f"/items/{case.path_parameters['item_id']}")
"""
    )
    result = project.run("-rA")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*schemathesis runs this `async def` test on an event loop of its own, which is not "
            "watched: the requests `case.call()` sends are (on schemathesis's loop thread), "
            "requests the test awaits itself (httpx's `ASGITransport`) are not"
        ]
    )
