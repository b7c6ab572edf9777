#!/usr/bin/env bash
# One-time set-up of a development/test machine (Debian-based, root or sudo): system packages for
# audio (PortAudio, libsndfile, PulseAudio for the microphone-path test), systemd-analyze and socat
# for the deployment and protocol tests, then the package with its training and test extras.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
APT_PACKAGES=(libportaudio2 libsndfile1 pulseaudio pulseaudio-utils libasound2-plugins socat systemd python3-venv)
missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing apt packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PYTHON="${PYTHON:-python3}"
# torch is pinned in the [train] extra (a CPU build); an unpinned torch would pull CUDA wheels.
"$PYTHON" -m pip install -q --disable-pip-version-check -e ".[train,test]"
