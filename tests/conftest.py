"""Shared set-up for the plugin's tests: each test writes a small project and runs pytest on it."""

from __future__ import annotations

import textwrap

import pytest

APP_CONFTEST = """
import pytest

from app import app


@pytest.fixture
def noblock_app():
    return app
"""


class Project:
    """A throw-away project in pytester's directory: an app, tests, and an ini file."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        self.ini(asyncio_mode="auto")

    def ini(self, **options: str) -> None:
        lines = ["[pytest]", "asyncio_default_fixture_loop_scope = function"]
        lines += [f"{key} = {value}" for key, value in options.items()]
        self.pytester.makeini("\n".join(lines) + "\n")

    def app(self, source: str) -> None:
        """Write app.py (must define `app`) and a conftest that hands it to the plugin."""
        self.pytester.makepyfile(app=textwrap.dedent(source))
        self.pytester.makeconftest(APP_CONFTEST)

    def tests(self, source: str, name: str = "test_app") -> None:
        self.pytester.makepyfile(**{name: textwrap.dedent(source)})

    def run(self, *args: str) -> pytest.RunResult:
        return self.pytester.runpytest("-p", "no:cacheprovider", *args)

    def run_subprocess(self, *args: str) -> pytest.RunResult:
        return self.pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


@pytest.fixture
def project(pytester: pytest.Pytester) -> Project:
    return Project(pytester)
