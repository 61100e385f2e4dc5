"""A test that patches what the plugin patches too gets every original object back.

`monkeypatch` saves whatever a name holds when it patches it. Inside a watched test body
that is the plugin's wrapper or stand-in; `monkeypatch` puts it back after the plugin has
undone its own patches. Whichever order the two undo in, after the test every name is the
original object again (identity, not only behaviour).
"""

from __future__ import annotations

# Imported before pytester snapshots sys.modules (see test_cleanup.py).
import fastapi  # noqa: F401
import pytest
from conftest import Project

APP = """
import threading
import time

from fastapi import FastAPI

LOCK = threading.Lock()

app = FastAPI()


@app.get("/ping")
async def ping():
    with LOCK:
        pass
    return {"ok": True}
"""

# The originals, taken when the test module is imported (before any watched test), and
# each name's fake. `sync` tests run through TestClient (the portal patches).
CONFTEST = """
import asyncio
import builtins
import threading
import time

import anyio.from_thread
import anyio.to_thread
import httpx
import pytest
import starlette.testclient

import app as app_module
from app import app


@pytest.fixture
def noblock_app():
    return app


NAMES = {
    "time.sleep": (time, "sleep"),
    "builtins.open": (builtins, "open"),
    "Handle._run": (asyncio.Handle, "_run"),
    "Thread.start": (threading.Thread, "start"),
    "ASGITransport.handle_async_request": (httpx.ASGITransport, "handle_async_request"),
    "app.LOCK": (app_module, "LOCK"),
    "anyio.to_thread.run_sync": (anyio.to_thread, "run_sync"),
    "start_blocking_portal": (anyio.from_thread, "start_blocking_portal"),
    "_TestClientTransport.handle_request": (
        starlette.testclient._TestClientTransport,
        "handle_request",
    ),
    "TestClient.lifespan": (starlette.testclient.TestClient, "lifespan"),
}
ORIGINALS = {name: vars(owner)[attribute] for name, (owner, attribute) in NAMES.items()}


def fake_for(original):
    if isinstance(original, type(threading.Lock())):
        return threading.Lock()
    return lambda *args, **kwargs: original(*args, **kwargs)


def patch_all(monkeypatch):
    for owner, attribute in NAMES.values():
        monkeypatch.setattr(owner, attribute, fake_for(vars(owner)[attribute]))


@pytest.fixture
def patched_before(monkeypatch):
    patch_all(monkeypatch)


def changed():
    return [
        name
        for name, (owner, attribute) in NAMES.items()
        if vars(owner).get(attribute) is not ORIGINALS[name]
    ]
"""

# One way a test patches; each runs in an async strict test and in a TestClient test.
PATCHES = {
    # monkeypatch saves the plugin's objects, and undoes after the plugin did.
    "in_the_body": "patch_all(monkeypatch)",
    # monkeypatch undoes first, inside the body.
    "undone_in_the_body": "patch_all(monkeypatch); monkeypatch.undo()",
    "in_a_context": "with pytest.MonkeyPatch.context() as patcher: patch_all(patcher)",
}

TESTS = """
import pytest
from fastapi.testclient import TestClient

from conftest import changed, patch_all
from app import app


@pytest.mark.noblock(strict=True, allow=["threading.Lock"])
async def test_async(noblock_client, monkeypatch):
    PATCH
    assert (await noblock_client.get("/ping")).status_code == 200


@pytest.mark.noblock(strict=True, allow=["threading.Lock"])
async def test_async_patched_in_a_fixture(patched_before, noblock_client):
    assert (await noblock_client.get("/ping")).status_code == 200


@pytest.mark.noblock(strict=True, allow=["threading.Lock"])
def test_sync(monkeypatch):
    PATCH
    with TestClient(app) as client:
        assert client.get("/ping").status_code == 200


def test_zz_every_name_is_the_original_again():
    assert changed() == []
"""


@pytest.mark.parametrize("how", list(PATCHES))
def test_every_patched_name_is_the_original_object_after_the_test(
    project: Project, how: str
) -> None:
    project.pytester.makepyfile(app=APP)
    project.pytester.makeconftest(CONFTEST)
    project.tests(TESTS.replace("PATCH", PATCHES[how]))
    # In a subprocess with a time limit: a wrapper calling itself hangs the run.
    result = project.run_subprocess("-W", "error", timeout=60)
    result.assert_outcomes(passed=4)


def test_a_module_scoped_patch_undone_after_later_tests_gets_the_originals_back(
    project: Project,
) -> None:
    project.pytester.makepyfile(app=APP)
    project.pytester.makeconftest(CONFTEST)
    project.tests(
        """
        import pytest

        from conftest import changed, patch_all

        @pytest.fixture(scope="module")
        def module_patch():
            with pytest.MonkeyPatch.context() as patcher:
                yield patcher

        @pytest.mark.noblock(strict=True, allow=["threading.Lock"])
        async def test_patches_for_the_module(noblock_client, module_patch):
            patch_all(module_patch)
            assert (await noblock_client.get("/ping")).status_code == 200

        @pytest.mark.noblock(strict=True, allow=["threading.Lock"])
        async def test_runs_patched(noblock_client, module_patch):
            assert (await noblock_client.get("/ping")).status_code == 200
        """,
        name="test_a",
    )
    project.tests(
        """
        from conftest import changed

        def test_every_name_is_the_original_again():
            assert changed() == []
        """,
        name="test_b",
    )
    # In a subprocess with a time limit: a wrapper calling itself hangs the run.
    result = project.run_subprocess("-W", "error", timeout=60)
    result.assert_outcomes(passed=3)


def test_a_module_first_imported_during_a_test_keeps_no_wrapper(project: Project) -> None:
    # FastAPI imports a module doing `from anyio.to_thread import run_sync` when the app
    # first starts: inside a watched test, that binds the plugin's wrapper.
    project.pytester.makepyfile(app=APP)
    project.pytester.makeconftest(CONFTEST)
    project.pytester.makepyfile(
        late="from time import sleep\nfrom anyio.to_thread import run_sync\n"
    )
    project.tests(
        """
        import sys

        import pytest

        from conftest import ORIGINALS

        @pytest.mark.noblock(strict=True, allow=["threading.Lock"])
        async def test_imports_late(noblock_client):
            import late
            assert (await noblock_client.get("/ping")).status_code == 200

        def test_zz_late_holds_the_originals():
            late = sys.modules["late"]
            assert late.sleep is ORIGINALS["time.sleep"]
            assert late.run_sync is ORIGINALS["anyio.to_thread.run_sync"]
        """
    )
    result = project.run_subprocess("-W", "error", timeout=60)
    result.assert_outcomes(passed=2)
