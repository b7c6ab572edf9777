#!/usr/bin/env bash
# The test command (README and CI): the fast suite; slow cases are covered by bench/ scripts.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
exec "${PYTHON:-python3}" -m pytest -q "$@"
