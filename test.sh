#!/usr/bin/env bash
# Set up, then run the checks and the test suite.
. "$(dirname "$0")/scripts/venv.sh"
ruff check .
ruff format --check .
mypy
python -m pytest "$@"
