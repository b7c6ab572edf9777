#!/usr/bin/env bash
# One-time set-up of a development/test machine (Debian-based, root or sudo): system packages for
# audio (PortAudio, libsndfile, PulseAudio for the microphone-path test), systemd-analyze, procps's kill
# and socat for the deployment and protocol tests, mosquitto (broker and clients) for the MQTT tests, the tools that
# build hnswlib, then the package with its training and test extras, editable, in the clone's virtual
# environment .venv. EXTRAS=test leaves the training extra out (a device does not train; torch is pinned to the
# CPU build 2.13.0 that these build machines carry): the runtime tests run, the training tests skip.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

apt_install python3-venv python3-dev g++ libportaudio2 libsndfile1 ca-certificates \
    pulseaudio pulseaudio-utils libasound2-plugins socat systemd procps mosquitto mosquitto-clients
make_venv
# torch is pinned in the [train] extra (a CPU build); an unpinned torch would pull CUDA wheels.
pip_install -e ".[${EXTRAS:-train,test}]"
step "ready: bash scripts/test.sh runs the tests with $VENV/bin/python"
