#!/usr/bin/env bash
# The full debian-ambient build (issue 16): `edge-asc data debian` into OUT, niced, with the clone's .venv
# (scripts/setup-dev.sh makes it; PYTHON overrides). Downloads about 2.3 GB of packages into CACHE_DIR
# (default ~/.cache/edge-asc; an empty one measures the full download). Prints the download size, the build
# time, the files, recordings and minutes per class, and the sizes on disk.
# usage: scripts/build-debian-data.sh OUT [CACHE_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:?usage: scripts/build-debian-data.sh OUT [CACHE_DIR]}"
CACHE="${2:-}"
PYTHON="${PYTHON:-.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
start=$(date +%s)
nice -n 10 "$PYTHON" -m edge_asc data debian --out "$OUT" ${CACHE:+--cache-dir "$CACHE"}
echo "wall clock: $(( $(date +%s) - start )) s"
echo "on disk: dataset $(du -sh "$OUT" | cut -f1), packages kept $(du -sh "${CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edge-asc}/debs" | cut -f1)"
