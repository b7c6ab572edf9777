#!/usr/bin/env bash
# Fresh machine -> scene events: install the runtime (no torch) into the clone's .venv and run the demo.
# Debian-based (Debian 12, Raspberry Pi OS bookworm), root or sudo. Extra arguments go to `edge-asc demo`
# (e.g. --fast). The demo's audio comes from Debian's archive (apt-get download, cached in ~/.cache/edge-asc).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

# python3-venv makes .venv; g++ and the Python headers build hnswlib, which PyPI ships only as source;
# libsndfile decodes audio; PortAudio is the microphone source's library.
apt_install python3-venv python3-dev g++ libsndfile1 libportaudio2 ca-certificates
if command -v apt-get >/dev/null && ! compgen -G "/var/lib/apt/lists/*_Packages" >/dev/null; then
    step "apt-get update (no package lists yet: the demo downloads its audio with apt-get download)"
    apt_retry update
fi
make_venv
pip_install .
step "edge-asc demo $*"
exec "$VENV/bin/edge-asc" demo "$@"
