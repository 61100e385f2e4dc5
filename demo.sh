#!/usr/bin/env bash
# Set up, then run the examples: pytest-noblock catches the two handlers that block the loop.
. "$(dirname "$0")/scripts/venv.sh"
echo "Expected: 2 failed (bad_practice, blocking dependency), 3 passed."
python -m pytest examples/ -p no:cacheprovider "$@" || [ $? -eq 1 ]
