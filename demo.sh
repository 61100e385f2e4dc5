#!/usr/bin/env bash
# Set up, then run the examples: pytest-noblock catches the two handlers that block the loop.
. "$(dirname "$0")/scripts/venv.sh"
echo "Expected: 4 failed (bad_practice, blocking dependency, TestClient report, trio slow_lookup), 5 passed."
python -m pytest examples/ -p no:cacheprovider "$@" || [ $? -eq 1 ]
