#!/usr/bin/env bash
# Fresh machine -> scene events: install the runtime (no torch) and run the demo.
# Debian-based, root or sudo. Extra arguments go to `edge-asc demo` (e.g. --fast).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
# libsndfile reads the bundled FLAC clips; PortAudio is needed by the microphone source;
# g++ and the Python headers build hnswlib, which PyPI ships only as source.
APT_PACKAGES=(libsndfile1 libportaudio2 g++ python3-dev)
missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ] && command -v apt-get >/dev/null; then
    echo "demo: installing apt packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PYTHON="${PYTHON:-python3}"
"$PYTHON" -m pip install -q --disable-pip-version-check .
exec "$PYTHON" -m edge_asc demo "$@"
