"""`pytest --noblock-sweep`: every operation of the app swept, with no test written."""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

# Imported here, in the outer process, so every in-process pytester run shares one copy of
# FastAPI and Starlette (a half-imported Starlette left over between runs breaks routing).
import fastapi
import pydantic
import pytest
import schemathesis
from conftest import line_of
from schemathesis.python import asgi

from pytest_noblock.reporting.gate import load_schema
from pytest_noblock.sweep import generate


class WarmUpBody(pydantic.BaseModel):
    name: str


def _warm_up() -> None:
    """schemathesis imports most of itself on its first sweep: done here, when this module
    is collected, before any in-process run, so every run shares those modules (pytester
    drops the ones a run imported, and a later run's fresh copies do not recognise the kept
    ones' values: "unhashable type: 'GeneratedValue'")."""
    app = fastapi.FastAPI()

    @app.post("/{name}")
    async def create(
        name: str, body: WarmUpBody, q: int = 0, x_token: str = fastapi.Header("")
    ) -> None:
        pass

    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    try:
        for result in schema.get_all_operations():
            for case in generate(result.ok(), examples=2, seed=0):
                case.call()
    finally:
        # Its loop thread is not left to the tests of other modules (some count threads).
        asgi._shutdown()


_warm_up()


@pytest.fixture(autouse=True, scope="module")
def stop_schemathesis_loop() -> Iterator[None]:
    """schemathesis keeps its loop thread until the process exits: stopped after this module,
    so later tests that count threads and tasks see none of it."""
    yield
    asgi._shutdown()
    asyncio.set_event_loop(None)
    for loop in gc.get_objects():
        if isinstance(loop, asyncio.AbstractEventLoop) and not loop.is_running():
            loop.close()


APP = """
import time
from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from pydantic import BaseModel

app = FastAPI()


class Item(BaseModel):
    name: str
    price: float


async def slow_dependency() -> int:
    time.sleep(0.2)
    return 1


async def check_token(x_token: Annotated[str, Header()]) -> None:
    if x_token != "s3cret":
        raise HTTPException(403)


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None):
    time.sleep(0.2)
    return {"id": item_id}


SEEN = []


@app.get("/users/{user_id}", tags=["users"])
async def read_user(user_id: int, request: Request):
    SEEN.append(str(request.url))
    return {"id": user_id}


@app.post("/items")
async def create_item(item: Item):
    return item


@app.get("/reports", dependencies=[Depends(slow_dependency)])
async def reports():
    return []


@app.delete("/items/{item_id}")
async def delete_item(item_id: int):
    return {}


@app.get("/secret", dependencies=[Depends(check_token)])
async def secret():
    time.sleep(0.2)
    return {}
"""
# Each blocking function sleeps on its first line.
ITEM_SLEEP = line_of(APP, "async def read_item") + 1
DEPENDENCY_SLEEP = line_of(APP, "async def slow_dependency") + 1
SECRET_SLEEP = line_of(APP, "async def secret") + 1

# The operation behind the header check is reached only with the token this fixture sends.
CONFTEST = """
import pathlib

import pytest

@pytest.fixture
def noblock_sweep_kwargs():
    return {"headers": {"x-token": "s3cret"}}

def pytest_sessionfinish(session):
    import app

    seen = getattr(app, "SEEN", [])
    pathlib.Path("seen.log").write_text("".join(url + "\\n" for url in seen))
"""

INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
noblock_app = app:app
"""

# Two requests per operation: quick, and enough to reach each handler.
FEW = ("--noblock-sweep-examples=2",)


def sweep_project(pytester: pytest.Pytester, app: str = APP, conftest: str = CONFTEST) -> None:
    """An app, its ini and a conftest: no test file at all."""
    pytester.makepyfile(app=textwrap.dedent(app))
    pytester.makeconftest(conftest)
    pytester.makeini(INI)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly", *args)


def test_sweep_with_no_tests_written(pytester: pytest.Pytester) -> None:
    sweep_project(pytester)
    result = run(pytester, "--noblock-sweep", *FEW)
    result.assert_outcomes(failed=3, passed=3)
    result.stdout.fnmatch_lines(["noblock sweep: seed 0, 2 requests per operation, strict mode on"])
    result.stdout.fnmatch_lines(
        [
            "*_ GET /items/{item_id} _*",
            f"*GET /items/{{item_id}} held the event loop for * ms at app.py:{ITEM_SLEEP} "
            "(budget 50 ms)",
            "  handler   app:read_item",
            f"  call      app.py:{ITEM_SLEEP} in read_item",
            "                time.sleep(0.2)",
        ]
    )
    result.stdout.fnmatch_lines(
        [f"*GET /reports held the event loop for * ms at app.py:{DEPENDENCY_SLEEP} (budget 50 ms)"]
    )
    result.stdout.fnmatch_lines(
        [f"*GET /secret held the event loop for * ms at app.py:{SECRET_SLEEP} (budget 50 ms)"]
    )
    result.stdout.fnmatch_lines(
        [
            "*= noblock sweep =*",
            "clean *2 requests *-  DELETE /items/{item_id}",
            f"failed *2 requests *ms  GET /items/{{item_id}}  app.py:{ITEM_SLEEP}",
            f"failed *1 request *ms  GET /reports  app.py:{DEPENDENCY_SLEEP}",
            f"failed *2 requests *ms  GET /secret  app.py:{SECRET_SLEEP}",
            "clean *2 requests *-  GET /users/{user_id}",
            "clean *2 requests *-  POST /items",
            "6 operations swept, 3 blocking; seed 0, 2 requests per operation, strict mode on "
            "(--noblock-sweep-seed=0 replays it)",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "FAILED noblock-sweep::GET /items/{item_id} - *",
            "FAILED noblock-sweep::GET /reports - *",
            "FAILED noblock-sweep::GET /secret - *",
        ]
    )


def test_without_the_fixture_the_operation_behind_the_header_is_not_reached(
    pytester: pytest.Pytester,
) -> None:
    sweep_project(pytester, conftest="")
    result = run(pytester, "--noblock-sweep", *FEW, "-k", "secret")
    result.assert_outcomes(passed=1)


def test_beside_a_suite_and_selected_with_k(pytester: pytest.Pytester) -> None:
    sweep_project(pytester)
    pytester.makepyfile(test_own="def test_own():\n    pass\n")
    result = run(pytester, "--noblock-sweep", *FEW, "-k", "users or own", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*collected 7 items / 5 deselected / 2 selected"])
    result.stdout.fnmatch_lines(["*noblock-sweep::GET /users/{user_id} PASSED*"])


@pytest.mark.parametrize(
    "options",
    [
        ["--noblock-sweep-exclude", "GET /items/*", "--noblock-sweep-exclude", "/reports"],
        ["--noblock-sweep-include", "tag:users", "--noblock-sweep-include", "/secret"],
    ],
)
def test_include_and_exclude(pytester: pytest.Pytester, options: list[str]) -> None:
    sweep_project(pytester)
    if options[0].endswith("exclude"):
        expected = ["DELETE /items/{item_id}", "GET /secret", "GET /users/{user_id}", "POST /items"]
    else:
        expected = ["GET /secret", "GET /users/{user_id}"]
    result = run(pytester, "--noblock-sweep", *FEW, "--collect-only", "-q", *options)
    assert sorted(
        line.removeprefix("noblock-sweep::")
        for line in result.stdout.lines
        if line.startswith("noblock-sweep::")
    ) == sorted(expected)


def test_exclude_from_the_ini(pytester: pytest.Pytester) -> None:
    sweep_project(pytester)
    pytester.makeini(INI + "noblock_sweep_exclude =\n    DELETE *\n    /secret\n")
    result = run(pytester, "--noblock-sweep", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["4 tests collected*"])
    result.stdout.no_fnmatch_line("*DELETE*")


def test_the_same_seed_sends_the_same_requests(pytester: pytest.Pytester) -> None:
    sweep_project(pytester)
    seen = pytester.path / "seen.log"

    def requests_sent(seed: str) -> list[str]:
        seen.unlink(missing_ok=True)
        result = run(pytester, "--noblock-sweep", "-k", "users", "--noblock-sweep-seed", seed)
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines([f"noblock sweep: seed {seed}, 5 requests per operation*"])
        return seen.read_text().splitlines()

    first = requests_sent("7")
    assert len(first) == 5
    assert requests_sent("7") == first
    assert requests_sent("8") != first


def test_under_xdist(pytester: pytest.Pytester) -> None:
    sweep_project(pytester)
    result = run(pytester, "--noblock-sweep", *FEW, "-n", "2")
    result.assert_outcomes(failed=3, passed=3)
    result.stdout.fnmatch_lines(
        [f"failed *2 requests *ms  GET /items/{{item_id}}  app.py:{ITEM_SLEEP}"]
    )
    result.stdout.fnmatch_lines(["6 operations swept, 3 blocking; seed 0*"])


def test_json_report_has_the_table(pytester: pytest.Pytester) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    sweep_project(pytester)
    run(pytester, "--noblock-sweep", *FEW, "--noblock-report=report.json")
    data = json.loads((pytester.path / "report.json").read_text())
    jsonschema.validate(data, load_schema())
    sweep = data["sweep"]
    assert (sweep["seed"], sweep["examples"], sweep["strict"]) == (0, 2, True)
    rows = {row["operation"]: row for row in sweep["operations"]}
    assert len(rows) == 6
    blocking = rows["GET /items/{item_id}"]
    assert blocking["nodeid"] == "noblock-sweep::GET /items/{item_id}"
    assert (blocking["verdict"], blocking["requests"]) == ("failed", 2)
    assert blocking["site"] == f"app.py:{ITEM_SLEEP}"
    assert blocking["longest_hold_ms"] >= 150
    clean = rows["POST /items"]
    assert (clean["verdict"], clean["requests"], clean["site"]) == ("clean", 2, None)


def test_baseline_records_then_matches(pytester: pytest.Pytester) -> None:
    sweep_project(pytester)
    first = run(pytester, "--noblock-sweep", *FEW, "--noblock-baseline=base.json")
    first.assert_outcomes(passed=6)
    first.stdout.fnmatch_lines(["*noblock: wrote a baseline of 3 findings to base.json"])
    second = run(pytester, "--noblock-sweep", *FEW, "--noblock-baseline=base.json")
    second.assert_outcomes(passed=6)
    second.stdout.fnmatch_lines(["*3 passed on the baseline*"])
    second.stdout.fnmatch_lines(["baselined *2 requests *ms  GET /items/{item_id}*"])


def test_github_annotations(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    sweep_project(pytester)
    result = run(pytester, "--noblock-sweep", *FEW, "-k", "items and GET")
    result.stdout.fnmatch_lines(
        [f"::error file=app.py,line={ITEM_SLEEP},title=noblock::*noblock-sweep::GET /items/*"]
    )


STRICT_APP = """
import time
from fastapi import FastAPI

app = FastAPI()

@app.get("/quick")
async def quick():
    time.sleep(0.001)
    return {}
"""


def test_strict_by_default_and_off_with_an_option(pytester: pytest.Pytester) -> None:
    sweep_project(pytester, app=STRICT_APP)
    strict = run(pytester, "--noblock-sweep", *FEW)
    strict.assert_outcomes(failed=1)
    quick = line_of(STRICT_APP, "time.sleep(0.001)")
    strict.stdout.fnmatch_lines(
        [f"noblock strict: GET /quick called time.sleep on the event loop at app.py:{quick}"]
    )
    strict.stdout.no_fnmatch_line("*strict mode watches async tests only*")
    relaxed = run(pytester, "--noblock-sweep", *FEW, "--noblock-sweep-no-strict")
    relaxed.assert_outcomes(passed=1)
    relaxed.stdout.fnmatch_lines(["noblock sweep: *strict mode off"])


def test_app_given_on_the_command_line(pytester: pytest.Pytester) -> None:
    sweep_project(pytester, app=STRICT_APP)
    pytester.makeini(INI.replace("noblock_app = app:app", ""))
    result = run(pytester, "--noblock-sweep", "--noblock-app=app:app", *FEW)
    result.assert_outcomes(failed=1)


NO_SCHEMA_APP = """
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def home(request):
    return JSONResponse({})

app = Starlette(routes=[Route("/", home)])
"""

SCHEMA_FILE = """
{"openapi": "3.0.0", "info": {"title": "t", "version": "1"},
 "paths": {"/": {"get": {"responses": {"200": {"description": "ok"}}}}}}
"""


def test_app_without_a_schema(pytester: pytest.Pytester) -> None:
    sweep_project(pytester, app=NO_SCHEMA_APP)
    result = run(pytester, "--noblock-sweep")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: noblock: --noblock-sweep found no OpenAPI schema at /openapi.json or "
            "/schema/openapi.json of app:app: give it with --noblock-sweep-schema=openapi.json "
            "(a file or the path the app serves it at)"
        ]
    )
    pytester.makefile(".json", openapi=SCHEMA_FILE)
    given = run(pytester, "--noblock-sweep", "--noblock-sweep-schema=openapi.json", "-v")
    given.assert_outcomes(passed=1)
    given.stdout.fnmatch_lines(["*noblock-sweep::GET / PASSED*"])


@pytest.mark.parametrize(
    ("options", "error"),
    [
        (["--noblock-sweep-examples=0"], "--noblock-sweep-examples must be a whole number >= 1*"),
        (["--noblock-sweep-seed=x"], "--noblock-sweep-seed must be a whole number >= 0, got 'x'"),
        (["--noblock-sweep-exclude=items"], "--noblock-sweep-exclude takes*got 'items'"),
        (["--noblock-app=nowhere:app"], "--noblock-app=nowhere:app: cannot import 'nowhere'*"),
    ],
)
def test_bad_values_are_one_line(pytester: pytest.Pytester, options: list[str], error: str) -> None:
    sweep_project(pytester)
    result = run(pytester, "--noblock-sweep", *options)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: noblock: {error}"])
    assert "Traceback" not in result.stderr.str()


def test_no_app_is_one_line(pytester: pytest.Pytester) -> None:
    sweep_project(pytester)
    pytester.makeini(INI.replace("noblock_app = app:app", ""))
    result = run(pytester, "--noblock-sweep")
    result.stderr.fnmatch_lines(["ERROR: noblock: --noblock-sweep needs the app: *"])


def test_without_schemathesis_one_line_says_what_to_install(pytester: pytest.Pytester) -> None:
    sweep_project(pytester)
    pytester.makeconftest(
        CONFTEST
        + """
import sys

# Stands for an environment without schemathesis.
sys.modules["schemathesis"] = None
"""
    )
    result = run(pytester, "-p", "no:schemathesis", "--noblock-sweep")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ['ERROR: noblock: --noblock-sweep needs schemathesis: pip install "pytest-noblock[sweep]"']
    )


def test_without_the_option_nothing_is_imported_or_collected(pytester: pytest.Pytester) -> None:
    sweep_project(pytester)
    pytester.makepyfile(
        test_own="""
        import sys

        def test_own():
            assert "schemathesis" not in sys.modules
        """
    )
    # schemathesis's own pytest plugin would import it: left out, as where it is not installed.
    result = pytester.runpytest_subprocess("-p", "no:schemathesis", "-p", "no:randomly")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*noblock sweep*")


LIFESPAN_APP = """
import contextlib

from fastapi import FastAPI, Request

EVENTS = []

@contextlib.asynccontextmanager
async def lifespan(app):
    EVENTS.append("startup")
    yield {"greeting": "hello"}
    EVENTS.append("shutdown")

app = FastAPI(lifespan=lifespan)

@app.get("/greeting")
async def greeting(request: Request):
    return {"greeting": request.state.greeting}

@app.get("/items/{item_id}")
async def read_item(item_id: int):
    return {}

@app.post("/items")
async def create_item():
    return {}
"""

LIFESPAN_CONFTEST = """
import pathlib

def pytest_sessionfinish(session):
    import app

    pathlib.Path("events.log").write_text(" ".join(app.EVENTS))
"""


def test_the_lifespan_runs_once_around_the_sweep(pytester: pytest.Pytester) -> None:
    sweep_project(pytester, app=LIFESPAN_APP, conftest=LIFESPAN_CONFTEST)
    pytester.makepyfile(test_own="def test_own():\n    pass\n")
    result = run(pytester, "--noblock-sweep", *FEW)
    result.assert_outcomes(passed=4)
    assert (pytester.path / "events.log").read_text() == "startup shutdown"


def test_the_example_project(pytester: pytest.Pytester) -> None:
    """examples/sweep, run as its README says: `pytest --noblock-sweep` in its folder."""
    example = Path(__file__).parents[1] / "examples" / "sweep"
    result = pytester.run(
        sys.executable,
        "-m",
        "pytest",
        "--noblock-sweep",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        f"--rootdir={example}",
        "-c",
        str(example / "pytest.ini"),
        str(example),
    )
    result.assert_outcomes(failed=2, passed=1)
    source = (example / "app.py").read_text()
    result.stdout.fnmatch_lines(
        [
            "GET /orders/{order_id} held the event loop for * ms at app.py:"
            f"{line_of(source, 'async def read_order') + 2} (budget 50 ms)",
            "GET /admin/stats held the event loop for * ms at app.py:"
            f"{line_of(source, 'async def admin_stats') + 2} (budget 50 ms)",
            "FAILED *noblock-sweep::GET /orders/{order_id}*",
            "FAILED *noblock-sweep::GET /admin/stats*",
        ]
    )


OVERRIDE_APP = """
import time

from fastapi import Depends, FastAPI

app = FastAPI()

async def get_user() -> str:
    raise RuntimeError("no user database in the sweep")

@app.get("/me")
async def me(user: str = Depends(get_user)):
    time.sleep(0.2)
    return {"user": user}

@app.get("/crash")
async def crash():
    raise RuntimeError("boom")
"""

OVERRIDE_CONFTEST = """
import pytest

from app import app, get_user

@pytest.fixture
def noblock_sweep_kwargs():
    app.dependency_overrides[get_user] = lambda: "sweep"
    yield {}
    app.dependency_overrides.clear()
"""


def test_dependency_overrides_from_the_fixture_and_errors_of_the_app(
    pytester: pytest.Pytester,
) -> None:
    sweep_project(pytester, app=OVERRIDE_APP, conftest=OVERRIDE_CONFTEST)
    result = run(pytester, "--noblock-sweep", *FEW, "-rA")
    result.assert_outcomes(failed=1, passed=1)
    sleep = line_of(OVERRIDE_APP, "time.sleep(0.2)")
    result.stdout.fnmatch_lines([f"*GET /me held the event loop for * ms at app.py:{sleep}*"])
    result.stdout.fnmatch_lines(
        [
            "noblock-sweep::GET /crash: 1 of the requests raised in the app (RuntimeError): "
            "not counted against it"
        ]
    )


def test_the_fixture_must_return_request_options(pytester: pytest.Pytester) -> None:
    sweep_project(
        pytester,
        app=STRICT_APP,
        conftest="import pytest\n\n@pytest.fixture\ndef noblock_sweep_kwargs():\n    return 3\n",
    )
    result = run(pytester, "--noblock-sweep", *FEW)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "noblock: the fixture noblock_sweep_kwargs must return a dict of request options "
            "(headers=, cookies=, params=) for case.call(), got int"
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_a_schema_file_schemathesis_cannot_read_is_one_line(pytester: pytest.Pytester) -> None:
    sweep_project(pytester, app=NO_SCHEMA_APP)
    pytester.makefile(".json", openapi="[1, 2]")
    result = run(pytester, "--noblock-sweep", "--noblock-sweep-schema=openapi.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: noblock: --noblock-sweep-schema=openapi.json is not an OpenAPI schema "
            "schemathesis reads (*)"
        ]
    )
