"""A run that watches nothing pays for none of the watching machinery.

pytest imports the plugin in every run of the environment it is installed in. What watching
needs (the step clock, the watchdog, the client and what they import: asyncio, httpx,
anyio) is imported only once a test is watched. Each run here is a pytest process of its
own, with no other plugin loaded (they import asyncio or anyio themselves); its conftest
writes down, when the session ends, which of those modules were loaded.
"""

from __future__ import annotations

import json

import pytest
from conftest import Project

# What only a watched test needs: the plugin's machinery and the libraries it brings in.
HEAVY = (
    "asyncio",
    "anyio",
    "httpx",
    "pytest_noblock.runner",
    "pytest_noblock.steps",
    "pytest_noblock.watchdog",
    "pytest_noblock.client",
    "pytest_noblock.strict",
    "pytest_noblock.patching",
    # `--noblock-sweep`'s machinery: its options are read from a module of their own.
    "pytest_noblock.sweep",
)

CONFTEST = f"""
import json
import sys

HEAVY = {HEAVY!r}


def pytest_unconfigure(config):
    loaded = [name for name in HEAVY if name in sys.modules]
    (config.rootpath / "loaded.json").write_text(json.dumps(loaded))
"""

TESTS = """
import json

import pytest


def test_plain():
    assert json.loads("[1]") == [1]


@pytest.mark.noblock(False)
def test_left_unwatched():
    assert json.loads("{}") == {}
"""


def _loaded_after(
    project: Project, monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[pytest.RunResult, list[str]]:
    project.pytester.makeconftest(CONFTEST)
    project.tests(TESTS)
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    result = project.run_subprocess("-p", "pytest_noblock.plugin", *args, timeout=120)
    loaded: list[str] = json.loads((project.pytester.path / "loaded.json").read_text())
    return result, loaded


def test_a_run_that_watches_nothing_imports_no_watching_machinery(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, loaded = _loaded_after(project, monkeypatch)
    result.assert_outcomes(passed=2)
    assert loaded == []


def test_a_run_that_watches_a_test_imports_it(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same tests under --noblock-all are watched: the check above can see the imports.
    result, loaded = _loaded_after(project, monkeypatch, "--noblock-all")
    result.assert_outcomes(passed=2)
    assert "pytest_noblock.runner" in loaded
    assert "httpx" in loaded
