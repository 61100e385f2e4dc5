"""The errors the plugin reports in one line: the user's app, or how it was set, is at fault.

A module of its own, light to import: the report hook checks every failure against these,
while the client machinery is loaded only when a test uses the client.
"""

from __future__ import annotations


class AppError(Exception):
    """A problem with the app the user gave us; reported as one line, no traceback."""


HOW_TO_SET_THE_APP = (
    "tell pytest-noblock which app to test, either in pytest's config:\n"
    "    [tool.pytest.ini_options]\n"
    '    noblock_app = "myapp.main:app"\n'
    "or with a fixture in conftest.py:\n"
    "    @pytest.fixture\n"
    "    def noblock_app():\n"
    "        return app"
)


class LifespanError(Exception):
    """The app's lifespan startup or shutdown failed."""
