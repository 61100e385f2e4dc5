"""An exception from the app reads as it would without the plugin: its own frames are hidden.

The plugin sits in the app's call path (the client's transport, the request tracking, strict
mode's wrappers and stand-ins, TestClient's patched transport); a traceback through it shows
the test and the app, never a pytest_noblock file.
"""

from __future__ import annotations

# Imported before pytester snapshots sys.modules (see test_cleanup.py).
import fastapi  # noqa: F401
import pytest
from conftest import APP_CONFTEST, Project, line_of

APP = """
import tempfile

from fastapi import FastAPI

LOG = tempfile.TemporaryFile("w")

app = FastAPI()


@app.get("/open")
async def open_missing():
    open("/no/such/file/anywhere")


@app.get("/raise")
async def raises():
    raise ValueError("the app's own error")


@app.get("/read-log")
async def read_log():
    return LOG.read()
"""

TESTS = """
import pytest
from fastapi.testclient import TestClient

from app import app


@pytest.mark.noblock(strict=True, allow=["builtins.open", "io"])
async def test_strict_open(noblock_client):
    await noblock_client.get("/open")


@pytest.mark.noblock(strict=True, allow=["io"])
async def test_strict_stand_in(noblock_client):
    await noblock_client.get("/read-log")


@pytest.mark.noblock
async def test_client(noblock_client):
    await noblock_client.get("/raise")


@pytest.mark.noblock
def test_testclient():
    TestClient(app).get("/raise")
"""


@pytest.mark.parametrize("style", ["long", "short"])
def test_a_traceback_through_the_plugin_shows_the_app_not_the_plugin(
    project: Project, style: str
) -> None:
    project.pytester.makepyfile(app=APP)
    project.pytester.makeconftest(APP_CONFTEST)
    project.tests(TESTS)
    result = project.run(f"--tb={style}")
    result.assert_outcomes(failed=4)
    assert "pytest_noblock" not in result.stdout.str()
    # The deepest frame shown is the app's line that raised.
    for needle, function, error in [
        ('open("/no/such/file/anywhere")', "open_missing", "FileNotFoundError"),
        ("return LOG.read()", "read_log", "*UnsupportedOperation"),
        ("raise ValueError", "raises", "ValueError"),
    ]:
        where = f"app.py:{line_of(APP, needle)}"
        if style == "long":
            result.stdout.fnmatch_lines([f"{where}: {error}"])
        else:
            result.stdout.fnmatch_lines([f"{where}: in {function}", f"    {needle}*"])
            result.stdout.fnmatch_lines([f"E   {error}: *"])
