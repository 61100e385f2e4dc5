#!/usr/bin/env bash
# Set up, then run the examples: pytest-noblock catches the handlers that block the loop.
. "$(dirname "$0")/scripts/venv.sh"
echo "Expected: 5 failed (bad_practice, blocking dependency, fast stub in strict mode, TestClient report, trio slow_lookup), 6 passed."
python -m pytest examples/ -p no:cacheprovider "$@" || [ $? -eq 1 ]
