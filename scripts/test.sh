#!/usr/bin/env bash
# The test command (README and CI): the fast suite, with the clone's .venv (made by scripts/setup-dev.sh).
# Long measurements are bench/ scripts, not tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
    if [ -x .venv/bin/python ]; then
        PYTHON=.venv/bin/python
    else
        echo "scripts/test.sh: no .venv here (scripts/setup-dev.sh makes it); using python3" >&2
        PYTHON=python3
    fi
fi
exec "$PYTHON" -m pytest -q "$@"
