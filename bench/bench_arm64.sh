#!/usr/bin/env bash
# edge-asc on the devices' architecture: a fresh clone in a debootstrap'd arm64 Debian 12 (Debian's own
# /usr/bin/python3 3.11, PEP 668), run under qemu-user-static + binfmt_misc. Root; needs debootstrap,
# qemu-user-static and binfmt-support, and network access to Debian's archive and PyPI.
#
#   bash bench/bench_arm64.sh                       # all steps, fresh root
#   ROOT=/var/tmp/edge-asc-firstrun.XXXX STEPS="install tests" bash bench/bench_arm64.sh   # resume in a kept root
#   (with ROOT set, the demo step runs the README's demo command again in that root)
#
# Steps (STEPS, default "demo compare install tests"):
#   demo     bench/bench_firstrun.sh with ARCH=arm64 (the base system once, a fresh clone of HEAD
#            (TREE=worktree: with uncommitted changes), then the README's `bash scripts/demo.sh --fast`:
#            apt packages, .venv, pip from PyPI incl. the hnswlib build, the demo's audio by apt-get download);
#            the root is kept for the next steps.
#   compare  the same demo on this machine (X86_PYTHON, default .venv/bin/python, on the clone of the root
#            and the same audio): the decisions (interval, label, confidence, true scene) and tallies must
#            be equal line by line; latencies are left out.
#   install  deploy/install.sh as on a Pi, twice: systemd is installed first (a Raspberry Pi OS image has it,
#            minbase does not); nothing runs systemd in a chroot, so the unit is enabled, not started, and
#            the installer's check runs the installed daemon on its config as user edge-asc. Then the venv
#            (torch absent?), the packages and where each came from (wheel or built here).
#   tests    the README's second command without the training extra (PyPI has no torch==2.13.0, the pin,
#            for any platform, and a device does not train): EXTRAS=test bash scripts/setup-dev.sh, then
#            bash scripts/test.sh; passed/failed/skipped counts and the failures' one-line reasons.
# Emulated timings mean nothing (qemu is 10-50x slower than a Pi); each step's wall time is printed to
# say how long the bench takes. Logs: $ROOT/arm64-*.log. The root is kept (KEEP_ROOT=0 removes it).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
source bench/emulated_cpu.sh
STEPS=${STEPS:-demo compare install tests}
X86_PYTHON=${X86_PYTHON:-$REPO/.venv/bin/python}
[ "$(id -u)" -eq 0 ] || { echo "$0: run as root (debootstrap, chroot)" >&2; exit 1; }
for tool in debootstrap qemu-aarch64-static update-binfmts; do
    command -v "$tool" >/dev/null || { echo "$0: $tool missing: apt-get install debootstrap qemu-user-static binfmt-support" >&2; exit 1; }
done
has() { [[ " $STEPS " == *" $1 "* ]]; }
now() { date +%s; }
SUMMARY=()

# binfmt_misc: aarch64 binaries run through qemu (a container may not have it mounted)
mountpoint -q /proc/sys/fs/binfmt_misc || mount binfmt_misc -t binfmt_misc /proc/sys/fs/binfmt_misc
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64
grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 || { echo "$0: binfmt qemu-aarch64 is not enabled" >&2; exit 1; }
echo "== binfmt: qemu-aarch64 $(sed -n 's/^flags: //p' /proc/sys/fs/binfmt_misc/qemu-aarch64) ($(qemu-aarch64-static --version | head -1))"

# --- 1. fresh clone -> README's demo command, in the arm64 root ------------------------------------------
DEMO_IN_KEPT_ROOT=${ROOT:-}
if has demo && [ -z "${ROOT:-}" ]; then
    t0=$(now)
    out=$(mktemp)
    ARCH=arm64 KEEP=1 TREE=${TREE:-head} nice -n "${NICE:-15}" bash bench/bench_firstrun.sh 2>&1 | tee "$out"
    ROOT=$(sed -n 's/^kept //p' "$out" | tail -1)
    rm -f "$out"
    [ -d "$ROOT/root/edge-asc" ] || { echo "$0: bench_firstrun.sh kept no root" >&2; exit 1; }
    cp "$ROOT/firstrun.log" "$ROOT/arm64-demo.log"
    SUMMARY+=("demo: $(grep -cE '  heard ' "$ROOT/arm64-demo.log" || true) scene events; $(grep -m1 '# tally' "$ROOT/arm64-demo.log" | sed 's/^ *[0-9.]*  # //') ($(($(now) - t0)) s emulated, from the fresh clone)")
fi
[ -n "${ROOT:-}" ] && [ -d "$ROOT/root/edge-asc" ] || { echo "$0: no root: run the demo step, or set ROOT to a kept one" >&2; exit 2; }
echo "== root $ROOT (kept)"

mount_root() {
    local m
    mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
    for m in dev dev/pts; do mountpoint -q "$ROOT/$m" || mount --bind "/$m" "$ROOT/$m"; done
    # not the host's /sys but a Pi's view of its CPUs (bench/emulated_cpu.sh says why)
    emulated_cpu_view "$ROOT"
}
cleanup() {
    for m in proc/cpuinfo dev/pts dev sys proc; do mountpoint -q "$ROOT/$m" && umount -l "$ROOT/$m"; done
    [ "${KEEP_ROOT:-1}" = 1 ] || rm -rf --one-file-system "$ROOT"
}
trap cleanup EXIT
mount_root
ENV=(PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 OMP_NUM_THREADS=1)
[ -f "$ROOT/usr/local/share/ca-certificates/$(ls /usr/local/share/ca-certificates 2>/dev/null | head -1)" ] && ENV+=(PIP_CERT=/etc/ssl/certs/ca-certificates.crt)
in_root() { chroot "$ROOT" /usr/bin/env -i "${ENV[@]}" nice -n "${NICE:-15}" "$@"; }
echo "== in the root: $(in_root uname -m), $(in_root /usr/bin/python3 --version), Debian $(cat "$ROOT/etc/debian_version")"

# a kept root (ROOT=...) with demo in STEPS: the README's demo command again there (its .venv and audio reused)
if has demo && [ -n "${DEMO_IN_KEPT_ROOT:-}" ]; then
    t0=$(now)
    echo "== bash scripts/demo.sh --fast in the kept root (log $ROOT/arm64-demo.log)"
    rc=0
    in_root bash -c 'cd /root/edge-asc && bash scripts/demo.sh --fast' >"$ROOT/arm64-demo.log" 2>&1 || rc=$?
    grep -E '^==>|^# ' "$ROOT/arm64-demo.log" | cut -c1-200
    SUMMARY+=("demo (kept root): rc $rc, $(grep -cE '  heard ' "$ROOT/arm64-demo.log" || true) scene events; $(grep -m1 '# tally' "$ROOT/arm64-demo.log" | sed 's/^# //') ($(($(now) - t0)) s emulated)")
fi

# the demo's decision lines and tallies, without the time stamps and latencies
decisions() { grep -E '  heard |^ *([0-9.]+  )?# (tally|before enrolment|after enrolment|  )' "$1" | sed -E 's/^ *[0-9.]+  //; s/ +latency .*//; s/ *$//'; }

# --- 2. the same demo on this machine (x86_64) ---------------------------------------------------------
if has compare; then
    [ -x "$X86_PYTHON" ] || { echo "$0: X86_PYTHON=$X86_PYTHON is not an interpreter with the runtime installed" >&2; exit 2; }
    echo "== compare: edge-asc demo --fast on $(uname -m) ($X86_PYTHON, $("$X86_PYTHON" -c 'import onnxruntime, numpy; print(f"onnxruntime {onnxruntime.__version__}, numpy {numpy.__version__}")'))"
    (cd "$ROOT/root/edge-asc" && PYTHONPATH=$PWD OMP_NUM_THREADS=1 nice -n "${NICE:-15}" "$X86_PYTHON" -m edge_asc demo --fast) >"$ROOT/arm64-x86-demo.log" 2>&1
    decisions "$ROOT/arm64-demo.log" >"$ROOT/arm64-decisions-arm64.txt"
    decisions "$ROOT/arm64-x86-demo.log" >"$ROOT/arm64-decisions-x86.txt"
    n_arm=$(grep -c '  heard ' "$ROOT/arm64-decisions-arm64.txt" || true)
    n_x86=$(grep -c '  heard ' "$ROOT/arm64-decisions-x86.txt" || true)
    if diff -u "$ROOT/arm64-decisions-x86.txt" "$ROOT/arm64-decisions-arm64.txt" >"$ROOT/arm64-decisions.diff"; then
        verdict="equal: $n_arm decisions and the tallies, line by line"
    else
        verdict="DIFFERENT ($n_x86 x86 lines, $n_arm arm64 lines; $(grep -c '^[-+][^-+]' "$ROOT/arm64-decisions.diff") lines differ, $ROOT/arm64-decisions.diff)"
        head -20 "$ROOT/arm64-decisions.diff"
    fi
    echo "decisions arm64 vs x86_64: $verdict"
    SUMMARY+=("compare: decisions arm64 vs x86_64: $verdict")
fi

# --- 3. deploy/install.sh, as on a Pi ------------------------------------------------------------------
if has install; then
    t0=$(now)
    echo "== deploy/install.sh in the root (systemd installed first, as on a Pi OS image)"
    in_root bash -c 'DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null' 2>&1 | tail -3
    rc=0
    in_root bash -c 'cd /root/edge-asc && bash deploy/install.sh' >"$ROOT/arm64-install1.log" 2>&1 || rc=$?
    grep -E '^edge-asc install: (\+ |installed|checked|done|error|warning|systemd is not)|^config OK|Successfully installed|Building wheel|Created wheel|Using cached|ERROR' "$ROOT/arm64-install1.log" | cut -c1-220
    first="rc $rc, $(($(now) - t0)) s emulated"
    t0=$(now)
    rc2=0
    in_root bash -c 'cd /root/edge-asc && bash deploy/install.sh' >"$ROOT/arm64-install2.log" 2>&1 || rc2=$?
    second="rc $rc2, $(grep -E 'done:' "$ROOT/arm64-install2.log" | sed 's/edge-asc install: //'), $(($(now) - t0)) s emulated"
    echo "second run: $second"
    torch=absent
    in_root /opt/edge-asc/bin/python -c 'import torch' 2>/dev/null && torch=PRESENT
    echo "venv /opt/edge-asc: $(du -sh "$ROOT/opt/edge-asc" | cut -f1), torch $torch; packages (and whether pip took a wheel or built it here):"
    in_root /opt/edge-asc/bin/python - <<'EOF'
import importlib.metadata as md
for d in sorted(md.distributions(), key=lambda d: d.metadata["Name"].lower()):
    name = d.metadata["Name"]
    if name.lower() in {"pip", "setuptools", "edge-asc"}:
        continue
    wheel = d.read_text("WHEEL") or ""
    tags = [l.split(": ", 1)[1] for l in wheel.splitlines() if l.startswith("Tag: ")]
    print(f"  {name} {d.version}: {', '.join(tags)}")
EOF
    # where hnswlib came from: pip's wheel cache holds what it built from a source distribution
    built=$(find "$ROOT/root/.cache/pip/wheels" -name '*.whl' -printf '%f ' 2>/dev/null || true)
    echo "built from source by pip here (its wheel cache): ${built:-nothing}"
    echo "unit: $(in_root systemctl is-enabled edge-asc.service 2>&1 || true) (not started: no systemd runs in a chroot)"
    SUMMARY+=("install: first run $first; second run $second; torch $torch; built here: ${built:-nothing}")
fi

# --- 4. the torch-free test suite ----------------------------------------------------------------------
if has tests; then
    t0=$(now)
    echo "== EXTRAS=test bash scripts/setup-dev.sh (log $ROOT/arm64-setup-dev.log)"
    rc=0
    in_root bash -c 'cd /root/edge-asc && EXTRAS=test bash scripts/setup-dev.sh' >"$ROOT/arm64-setup-dev.log" 2>&1 || rc=$?
    grep -E '^==>|Successfully installed|ERROR' "$ROOT/arm64-setup-dev.log" | cut -c1-200
    [ "$rc" -eq 0 ] || { echo "setup-dev.sh failed (rc $rc):"; tail -20 "$ROOT/arm64-setup-dev.log"; exit 1; }
    echo "set-up: $(($(now) - t0)) s emulated"
    t0=$(now)
    echo "== bash scripts/test.sh (log $ROOT/arm64-tests.log)"
    rc=0
    in_root bash -c 'cd /root/edge-asc && export XDG_RUNTIME_DIR=/run/user/0 && mkdir -p $XDG_RUNTIME_DIR && bash scripts/test.sh -p no:cacheprovider -rfEs '"${PYTEST_ARGS:-}" >"$ROOT/arm64-tests.log" 2>&1 || rc=$?
    grep -E '^(FAILED|ERROR|SKIPPED)' "$ROOT/arm64-tests.log" | cut -c1-240 | sort | uniq -c | sort -rn | head -40
    # -q prints the counts without the ===== frame
    counts=$(grep -E '(passed|failed|error).* in [0-9.]+s' "$ROOT/arm64-tests.log" | tail -1 | tr -d '=' | sed 's/^ *//' || true)
    echo "tests: rc $rc: ${counts:-no summary line (see the log)}"
    SUMMARY+=("tests: rc $rc: ${counts:-no summary line} ($(($(now) - t0)) s emulated)")
fi

echo "== summary (arm64 under qemu-user-static; timings emulated)"
printf '%s\n' "${SUMMARY[@]}"
