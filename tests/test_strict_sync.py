"""Strict mode in sync tests: the app's known blocking calls on a sync client's portal loop.

A sync test's `TestClient` (Starlette's, FastAPI's, Litestar's) and schemathesis's
`case.call()` serve the app on an event loop in another thread. In strict mode the known
blocking calls are wrapped for the test body, and the calls made on that loop thread by
code serving a request are findings, reported as in an async test.
"""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import Iterator

# Imported here, in the outer process, so every in-process pytester run shares one copy of
# FastAPI and Starlette (see test_cleanup.py), and of schemathesis, whose loop thread
# `stop_schemathesis_loop` stops.
import fastapi  # noqa: F401
import pytest
import schemathesis.python.asgi  # noqa: F401
from conftest import Project, line_of, stop_schemathesis_loop

from pytest_noblock.strict import wrappers as strict_wrappers

# Litestar too, where it installs (its tests skip, saying why, where it does not).
with contextlib.suppress(ImportError):
    import litestar.testing  # noqa: F401

# A budget no fast call reaches even on a loaded machine: these tests look at strict
# findings only, and a call that also ran past the budget would be reported as a hold.
FASTAPI_APP = """
import time

import requests
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

URL = "{url}"
PATH = __file__

app = FastAPI()


@app.get("/fetch")
async def fetch():
    return requests.get(URL, timeout=5).json()


@app.get("/nap")
async def nap():
    time.sleep(0.001)
    return {{}}


@app.get("/read")
async def read():
    with open(PATH) as own_source:
        return {{"size": len(own_source.read())}}


@app.get("/fetch-in-a-thread")
async def fetch_in_a_thread():
    return await run_in_threadpool(lambda: requests.get(URL, timeout=5).json())


@app.get("/nap-in-a-thread")
async def nap_in_a_thread():
    await run_in_threadpool(time.sleep, 0.001)
    return {{}}


@app.get("/read-in-a-def")
def read_in_a_def():
    with open(PATH) as source:
        return {{"size": len(source.read())}}
"""

TESTCLIENT_TESTS = """
import pytest
from fastapi.testclient import TestClient

from app import app


@pytest.fixture(scope="module")
def client():
    with TestClient(app) as client:
        yield client


@MARK
@pytest.mark.parametrize("path", PATHS)
def test_in_a_block(path):
    with TestClient(app) as client:
        assert client.get(path).status_code == 200


@MARK
@pytest.mark.parametrize("path", PATHS)
def test_entered_before_the_test(client, path):
    assert client.get(path).status_code == 200


@MARK
@pytest.mark.parametrize("path", PATHS)
def test_without_a_block(path):
    assert TestClient(app).get(path).status_code == 200
"""

BLOCKING = ["/fetch", "/nap", "/read"]
CLEAN = ["/fetch-in-a-thread", "/nap-in-a-thread", "/read-in-a-def"]
STRICT = "@pytest.mark.noblock(strict=True, budget_ms=10_000)"


def sources_with(marker: str, paths: list[str]) -> str:
    source = TESTCLIENT_TESTS.replace("PATHS", repr(paths))
    return source.replace("@MARK", marker)


def test_a_sync_testclient_test_fails_on_each_known_blocking_call(
    project: Project, fast_http: str
) -> None:
    source = FASTAPI_APP.format(url=fast_http)
    project.app(source)
    project.tests(sources_with(STRICT, BLOCKING))
    result = project.run()
    result.assert_outcomes(failed=9)
    fetch_line = line_of(source, "return requests.get(URL, timeout=5).json()")
    nap_line = line_of(source, "    time.sleep(0.001)")
    read_line = line_of(source, "with open(PATH) as own_source:")
    result.stdout.fnmatch_lines(
        [
            "noblock strict: GET /fetch called requests.api.get on the event loop "
            f"at app.py:{fetch_line}",
            "  fast here against a local stand-in, it holds every request in production",
            "",
            "requests.api.get: called once, longest * ms",
            "  request   GET /fetch",
            "  handler   app:fetch",
            f"  call      app.py:{fetch_line} in fetch",
            "                return requests.get(URL, timeout=5).json()",
            "                       ^^^^^^^^^^^^*",
            "  landed in urllib3/util/connection.py:* in create_connection (socket.socket.connect)",
            "  why       a blocking HTTP call",
            "  instead   use `httpx.AsyncClient`*",
            "            or make the endpoint a plain `def`*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            f"noblock strict: GET /nap called time.sleep on the event loop at app.py:{nap_line}",
            "*",
            "*",
            "time.sleep: called once, longest * ms",
            "  request   GET /nap",
            "  handler   app:nap",
            f"  call      app.py:{nap_line} in nap",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "noblock strict: GET /read called builtins.open on the event loop "
            f"at app.py:{read_line}",
        ]
    )
    for kind in ("in_a_block", "entered_before_the_test", "without_a_block"):
        for path in BLOCKING:
            result.stdout.fnmatch_lines(
                [f"FAILED test_app.py::test_{kind}[[]{path}] - noblock strict*"]
            )
    result.stdout.no_fnmatch_line("*strict mode watches async tests only*")
    result.stdout.no_fnmatch_line("*pytest_noblock*")


def test_clean_look_alikes_pass(project: Project, fast_http: str) -> None:
    project.app(FASTAPI_APP.format(url=fast_http))
    project.tests(sources_with(STRICT, CLEAN))
    result = project.run()
    result.assert_outcomes(passed=9)


@pytest.mark.parametrize(
    "marker", ["@pytest.mark.noblock(strict=False)", "@pytest.mark.noblock(budget_ms=10_000)"]
)
def test_without_strict_the_same_calls_pass(project: Project, fast_http: str, marker: str) -> None:
    project.app(FASTAPI_APP.format(url=fast_http))
    project.tests(sources_with(marker, BLOCKING))
    result = project.run()
    result.assert_outcomes(passed=9)
    result.stdout.no_fnmatch_line("*noblock strict*")


def test_the_allowlist_applies(project: Project, fast_http: str) -> None:
    project.app(FASTAPI_APP.format(url=fast_http))
    project.tests(
        sources_with(
            '@pytest.mark.noblock(strict=True, budget_ms=10_000, allow=["time.sleep"])', ["/nap"]
        )
    )
    result = project.run()
    result.assert_outcomes(passed=3)


CLEANUP_TESTS = """
import builtins
import socket
import time

import pytest
import requests.sessions
from fastapi.testclient import TestClient

import app

ORIGINALS = {
    "time.sleep": (time, "sleep", time.sleep),
    "builtins.open": (builtins, "open", builtins.open),
    "socket.socket.connect": (socket.socket, "connect", vars(socket.socket).get("connect")),
    "Session.request": (
        requests.sessions.Session, "request", requests.sessions.Session.request
    ),
}


def changed():
    return [
        name
        for name, (owner, attribute, original) in ORIGINALS.items()
        if vars(owner).get(attribute) is not original
    ]


@pytest.mark.noblock(strict=True, budget_ms=10_000)
def test_a_fails_strict():
    with TestClient(app.app) as client:
        client.get("/fetch")
        client.get("/nap")


@pytest.mark.noblock(strict=True, budget_ms=10_000)
def test_b_errors():
    with TestClient(app.app) as client:
        client.get("/nap")
        raise RuntimeError("the test's own failure")


@pytest.mark.noblock(strict=True, budget_ms=10_000)
def test_c_errors_before_any_request():
    raise RuntimeError("the test's own failure")


def test_d_nothing_left():
    assert changed() == []
"""


def test_every_patched_name_is_the_original_after_the_test(
    project: Project, fast_http: str
) -> None:
    project.app(FASTAPI_APP.format(url=fast_http))
    project.tests(CLEANUP_TESTS)
    result = project.run()
    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines(["FAILED test_app.py::test_a_fails_strict - noblock strict: *"])
    result.stdout.fnmatch_lines(["FAILED test_app.py::test_b_errors - RuntimeError: *"])
    assert not strict_wrappers.active()


# --- Litestar --------------------------------------------------------------------------

LITESTAR_APP = """
import time

from litestar import Litestar, get


@get("/nap")
async def nap() -> dict[str, bool]:
    time.sleep(0.001)
    return {"ok": True}


@get("/nap-in-a-thread", sync_to_thread=True)
def nap_in_a_thread() -> dict[str, bool]:
    time.sleep(0.002)
    return {"ok": True}


app = Litestar([nap, nap_in_a_thread])
"""

LITESTAR_TESTS = """
import pytest
from litestar.testing import TestClient

from app import app


@pytest.mark.noblock(STRICT)
@pytest.mark.parametrize("path", ["/nap", "/nap-in-a-thread"])
def test_in_a_block(path):
    with TestClient(app) as client:
        assert client.get(path).json() == {"ok": True}


@pytest.mark.noblock(STRICT)
@pytest.mark.parametrize("path", ["/nap", "/nap-in-a-thread"])
def test_without_a_block(path):
    assert TestClient(app).get(path).json() == {"ok": True}
"""


@pytest.mark.parametrize("strict", [True, False])
def test_a_sync_litestar_testclient_test(project: Project, strict: bool) -> None:
    pytest.importorskip("litestar", reason="Litestar does not install on this Python")
    project.app(LITESTAR_APP)
    project.tests(LITESTAR_TESTS.replace("STRICT", f"strict={strict}, budget_ms=10_000"))
    result = project.run()
    if not strict:
        result.assert_outcomes(passed=4)
        return
    result.assert_outcomes(passed=2, failed=2)
    line = line_of(LITESTAR_APP, "    time.sleep(0.001)")
    result.stdout.fnmatch_lines(
        [
            f"noblock strict: GET /nap called time.sleep on the event loop at app.py:{line}",
            "*",
            "*",
            "time.sleep: called once, longest * ms",
            "  request   GET /nap",
            "  handler   app:nap",
            f"  call      app.py:{line} in nap",
            "                time.sleep(0.001)",
            "                ^^^^^^^^^^^^^^^^^",
            "  why       *",
            "  instead   use `await asyncio.sleep(...)`*",
            "            or make the handler a plain `def` with `sync_to_thread=True`*",
        ]
    )
    for kind in ("in_a_block", "without_a_block"):
        result.stdout.fnmatch_lines([f"FAILED test_app.py::test_{kind}[[]/nap] - noblock strict*"])


# --- schemathesis ----------------------------------------------------------------------


@pytest.fixture
def schemathesis_loop_stopped_after() -> Iterator[None]:
    yield
    stop_schemathesis_loop()


SCHEMATHESIS_APP = """
import time
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

app = FastAPI()

@app.get("/items/{item_id}")
async def read_item(item_id: int):
    time.sleep(0.001)
    return {"id": item_id}

@app.get("/users/{user_id}")
async def read_user(user_id: int):
    await run_in_threadpool(time.sleep, 0.001)
    return {"id": user_id}
"""

SCHEMATHESIS_TESTS = """
import pytest
import schemathesis
from hypothesis import settings
from app import app

schema = schemathesis.openapi.from_asgi("/openapi.json", app)

@pytest.mark.noblock(STRICT)
@schema.parametrize()
@settings(max_examples=3, derandomize=True, deadline=None, database=None)
def test_api(case):
    assert case.call().status_code < 500
"""


@pytest.mark.usefixtures("schemathesis_loop_stopped_after")
@pytest.mark.parametrize("strict", [True, False])
def test_schemathesis_case_call(project: Project, strict: bool) -> None:
    project.app(SCHEMATHESIS_APP)
    project.tests(SCHEMATHESIS_TESTS.replace("STRICT", f"strict={strict}, budget_ms=10_000"))
    result = project.run()
    if not strict:
        result.assert_outcomes(passed=2)
        return
    result.assert_outcomes(passed=1, failed=1)
    line = line_of(SCHEMATHESIS_APP, "    time.sleep(0.001)")
    result.stdout.fnmatch_lines(
        [
            "noblock strict: GET /items/{item_id} called time.sleep on the event loop "
            f"at app.py:{line}",
            "*",
            "*",
            "time.sleep: called * longest * ms",
            "  request   GET /items/*",
            "  handler   app:read_item",
            f"  call      app.py:{line} in read_item",
        ]
    )


# --- Django's sync Client: not watched, said so ----------------------------------------

DJANGO_SETTINGS = """
SECRET_KEY = "test"
ROOT_URLCONF = "urls"
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = []
DATABASES = {}
"""

DJANGO_URLS = """
import time

from django.http import JsonResponse
from django.urls import path


async def nap(request):
    time.sleep(0.001)
    return JsonResponse({"ok": True})


urlpatterns = [path("nap/", nap)]
"""


def test_djangos_sync_client_says_strict_does_not_reach_it(project: Project) -> None:
    pytest.importorskip("django")
    project.pytester.makepyfile(
        settings_module=textwrap.dedent(DJANGO_SETTINGS), urls=textwrap.dedent(DJANGO_URLS)
    )
    project.pytester.makeconftest(
        """
        import django
        from django.conf import settings

        import settings_module

        if not settings.configured:
            settings.configure(**{
                name: getattr(settings_module, name)
                for name in dir(settings_module) if name.isupper()
            })
            django.setup()
        """
    )
    project.tests(
        """
        import pytest
        from django.test import Client

        @pytest.mark.noblock(strict=True)
        def test_sync_client():
            assert Client().get("/nap/").status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "test_app.py::test_sync_client: 1 request(s) to async views through Django's sync "
            "`Client` were not watched (neither timed nor, in strict mode, checked for known "
            "blocking calls)*"
        ]
    )
