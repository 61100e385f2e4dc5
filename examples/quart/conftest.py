"""The Quart example runs when asked for by path (`pytest examples/quart`) only: `pytest
examples/` is the FastAPI demo, whose count of failures stays its own."""

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    start = config.invocation_params.dir
    asked = [(start / arg.split("::")[0]).resolve() for arg in config.args]
    if any(path == HERE or HERE in path.parents for path in asked):
        return None
    return True
