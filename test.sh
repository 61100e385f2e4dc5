#!/usr/bin/env bash
# Set up, then run the checks once and the test suite on every supported Python found
# (see noxfile.py). Arguments go to pytest.
. "$(dirname "$0")/scripts/venv.sh"
ruff check .
ruff format --check .
mypy
mkdir -p .nox
status=0
nox --non-interactive -- "$@" 2>&1 | tee .nox/test.log || status=$?
python scripts/closing_lines.py .nox/test.log
exit "$status"
