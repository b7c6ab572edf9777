#!/usr/bin/env bash
# Fresh clone -> first demo event on a stock Debian 12, with Debian's own /usr/bin/python3 (3.11, marked
# externally managed: PEP 668), in a disposable debootstrap'd chroot. Root; needs debootstrap and network
# access to Debian's archive and PyPI.
#
#   bash bench/bench_firstrun.sh              # amd64
#   ARCH=arm64 bash bench/bench_firstrun.sh   # arm64 under qemu-user-static + binfmt_misc (timings mean nothing)
#
# The base system (debootstrap --variant=minbase with python3, git and ca-certificates: less than a stock
# image has, so nothing is assumed) is made once into $BASE and copied for each run into a fresh root.
# The clone: `git clone` of this repository plus its working tree's uncommitted changes (TREE=head: the
# committed HEAD only). Inside, as root, the README's command runs: `bash scripts/demo.sh --fast`.
# Printed: every output line with its time since the clone began, the time to the first scene event, and
# the download (apt archives and lists, pip's cache, the demo's packages). KEEP=1 keeps the root.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
source bench/emulated_cpu.sh
ARCH=${ARCH:-amd64}
SUITE=bookworm
MIRROR=${MIRROR:-http://deb.debian.org/debian}
BASE=${BASE:-/var/tmp/edge-asc-firstrun-$SUITE-$ARCH}
ROOT=$(mktemp -d /var/tmp/edge-asc-firstrun.XXXXXX)
[ "$(id -u)" -eq 0 ] || { echo "$0: run as root (debootstrap, chroot)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "$0: apt-get install debootstrap" >&2; exit 1; }

cleanup() {
    for m in proc/cpuinfo dev/pts dev sys proc; do mountpoint -q "$ROOT/$m" && umount -l "$ROOT/$m"; done
    [ "${KEEP:-0}" = 1 ] && echo "kept $ROOT" || rm -rf --one-file-system "$ROOT"
}
trap cleanup EXIT

if [ ! -x "$BASE/usr/bin/python3" ]; then
    echo "== debootstrap $SUITE $ARCH into $BASE (once)"
    extra=()
    [ "$ARCH" = "$(dpkg --print-architecture)" ] || extra=(--foreign)
    debootstrap --arch "$ARCH" "${extra[@]}" --variant=minbase --include=python3,git,ca-certificates "$SUITE" "$BASE.tmp" "$MIRROR"
    if [ "${#extra[@]}" -gt 0 ]; then
        cp /usr/bin/qemu-aarch64-static "$BASE.tmp/usr/bin/"
        chroot "$BASE.tmp" /debootstrap/debootstrap --second-stage
    fi
    rm -f "$BASE.tmp"/var/cache/apt/archives/*.deb
    mv "$BASE.tmp" "$BASE"
fi
cp -a "$BASE/." "$ROOT/"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
# debootstrap writes no /etc/hosts (an installer or image does): "localhost" would go to DNS
[ -e "$ROOT/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$ROOT/etc/hosts"
mount -t proc proc "$ROOT/proc"; mount --bind /dev "$ROOT/dev"; mount --bind /dev/pts "$ROOT/dev/pts"
# Under emulation not the host's /sys but a Pi's view of its CPUs (bench/emulated_cpu.sh says why)
if [ "$ARCH" = "$(dpkg --print-architecture)" ]; then mount --bind /sys "$ROOT/sys"; else emulated_cpu_view "$ROOT"; fi
ENV=(PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8)
# A network behind a TLS-inspecting proxy: the host's local CAs are trusted in the root too (apt, pip).
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
    chroot "$ROOT" update-ca-certificates >/dev/null 2>&1
    ENV+=(PIP_CERT=/etc/ssl/certs/ca-certificates.crt)
    echo "== the host's local CAs are trusted in the root: $(cd /usr/local/share/ca-certificates && echo *.crt)"
fi
in_root() { chroot "$ROOT" /usr/bin/env -i "${ENV[@]}" "$@"; }

echo "== the system: $(in_root /usr/bin/python3 --version), $(in_root uname -m), Debian $(cat "$ROOT/etc/debian_version")"
in_root test -f /usr/lib/python3.11/EXTERNALLY-MANAGED && echo "   /usr/bin/python3 is externally managed (PEP 668)"
lists_before=$(du -sb "$ROOT/var/lib/apt/lists" | cut -f1)

# The clone: HEAD, then the working tree's changes (files added or changed, files deleted).
stamp() { local t0=$1 line; while IFS= read -r line; do awk -v a="$EPOCHREALTIME" -v b="$t0" -v l="$line" 'BEGIN { printf "%7.1f  %s\n", a - b, l }'; done; }
mb() { awk -v b="${1:-0}" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }
T0=${EPOCHREALTIME}
{
    git clone -q "$REPO" "$ROOT/root/edge-asc"
    if [ "${TREE:-worktree}" = worktree ]; then
        git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$ROOT/root/edge-asc"
        { git diff --name-only --cached --diff-filter=D HEAD; git ls-files --deleted; } | sort -u | (cd "$ROOT/root/edge-asc" && xargs -r rm -f --)
    fi
    echo "cloned $(git rev-parse --short HEAD) (${TREE:-worktree})"
} 2>&1 | stamp "$T0"
in_root bash -c 'cd /root/edge-asc && bash scripts/demo.sh --fast' 2>&1 | stamp "$T0" | tee "$ROOT/firstrun.log"

echo "== summary ($ARCH)"
first=$(grep -m1 -E '^ *[0-9.]+  (ok |   ) *[0-9.]+- *[0-9.]+ s  heard ' "$ROOT/firstrun.log" | awk '{print $1}')
echo "fresh clone -> first scene event: ${first:-none} s"
apt_debs=$(du -cb "$ROOT"/var/cache/apt/archives/*.deb 2>/dev/null | tail -1 | cut -f1)
# pip's "Downloading NAME (N MB)" lines (hnswlib's build requirements, fetched in pip's build environment, are not shown)
pip_fetched=$(grep -oE 'Downloading [^ ]+ \([0-9.]+ [kM]B\)' "$ROOT/firstrun.log" | tr -d '()' | awk '{s += $3 * ($4 == "kB" ? 1e3 : 1e6)} END {print s + 0}')
# apt's "Fetched N kB in ..." lines: the package lists, the apt packages and the demo's packages
apt_fetched=$(grep -oE 'Fetched [0-9,.]+ [kMG]?B' "$ROOT/firstrun.log" | awk '{gsub(",", "", $2); f = ($3 == "kB") ? 1e3 : ($3 == "MB") ? 1e6 : ($3 == "GB") ? 1e9 : 1; s += $2 * f} END {print s + 0}')
demo_pkgs=$(grep -E 'Get:[0-9]+ .* (minetest-data|gnome-shell-pomodoro-data|btanks-data) ' "$ROOT/firstrun.log" | grep -oE '\[[0-9,.]+ [kM]B\]' | tr -d '[],' | awk '{s += $1 * ($2 == "kB" ? 1e3 : 1e6)} END {print s + 0}')
echo "download: $(mb "$apt_fetched") by apt (lists, $(mb "$apt_debs") of system packages, $(mb "$demo_pkgs") of demo packages), $(mb "$pip_fetched") by pip"
grep -E '# (tally|before enrolment|after enrolment)' "$ROOT/firstrun.log" | sed 's/^ *[0-9.]*  //' || true
