#!/usr/bin/env bash
# deploy/install.sh for real, end to end. Two parts:
#
#   bash bench/bench_install.sh             # (default) into a disposable root prefix, pip resolving
#                                           # every runtime dependency from PyPI (no local index, no
#                                           # cache, hnswlib compiled from its sdist as on a Pi); then a
#                                           # second run (must change nothing), systemd-analyze verify
#                                           # and security on the installed unit, uninstall --purge.
#   bash bench/bench_install.sh --systemd   # under a real, booted systemd: a throwaway container
#                                           # (systemd-nspawn on an overlay of / with a tmpfs upper
#                                           # layer, private network) gets the install from a wheelhouse
#                                           # built here; then READY, the socket and its permissions,
#                                           # sandboxed inference on a file, a watchdog restart,
#                                           # MemoryDenyWriteExecute, a second run, uninstall.
#   bash bench/bench_install.sh --all       # both
#
# Needs network access to PyPI, g++ and the Python headers (build-essential python3-dev); --systemd
# also needs root, systemd-nspawn (apt-get install systemd-container), overlayfs and python3-venv for
# /usr/bin/python3. Artifacts: models/ and index/ of the clone, else the tiny real pair of
# tests/conftest.py trained on the spot. KEEP=1 keeps the work directory.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
export OMP_NUM_THREADS=1
MODE=${1:---prefix}
case $MODE in --prefix | --systemd | --all) ;; *) echo "usage: $0 [--systemd | --all]" >&2; exit 2 ;; esac

WORK=$(mktemp -d /tmp/edge-asc-bench-install.XXXXXX)
LOG=$WORK/log
mkdir -p "$LOG"
NSPAWN_JOB=""
LEADER=""
cleanup() {
    # the container, if a failure left it running: power it off from inside, else stop the timeout
    # process this script started (nspawn then shuts the container down)
    if [[ -n $NSPAWN_JOB ]] && kill -0 "$NSPAWN_JOB" 2>/dev/null; then
        if [[ -n $LEADER ]]; then
            nsenter -t "$LEADER" -a systemctl poweroff 2>/dev/null || kill -TERM "$NSPAWN_JOB" 2>/dev/null || true
        else
            kill -TERM "$NSPAWN_JOB" 2>/dev/null || true
        fi
        for _ in $(seq 1 300); do kill -0 "$NSPAWN_JOB" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$NSPAWN_JOB" 2>/dev/null && echo "bench_install: the container (timeout process $NSPAWN_JOB) is still stopping"
    fi
    if [[ ${KEEP:-0} == 1 ]]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

section() { printf '\n== %s\n' "$*"; }
die() { printf 'bench_install: %s\n' "$*"; exit 1; }  # on stdout: the output is the record
now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$2"; }
SUMMARY=()

section "machine"
printf 'kernel %s, %s, %s CPU(s), python %s, pip %s, g++ %s\n' "$(uname -r)" "$(uname -m)" "$(getconf _NPROCESSORS_ONLN)" \
    "$(python3 -c 'import platform; print(platform.python_version())')" "$(python3 -m pip --version | cut -d' ' -f2)" \
    "$(g++ -dumpfullversion 2>/dev/null || echo none)"
systemd-analyze --version | sed -n 1p

MODEL_SRC=$REPO/models/edge-asc-amb13.onnx
INDEX_SRC=$REPO/index/edge-asc-amb13
if [[ -f $MODEL_SRC && -f $INDEX_SRC/manifest.json ]]; then
    echo "artifacts: the shipped model and index of the clone"
else
    echo "artifacts: models/ and index/ are not in the clone yet; the tiny committed pair of tests/fixtures/tiny"
    python3 - "$WORK/artifacts" >"$LOG/artifacts.txt" 2>&1 <<'EOF'
import sys
from pathlib import Path
sys.path.insert(0, "tests")
from conftest import build_tiny_artifacts
out = Path(sys.argv[1]); out.mkdir()
a = build_tiny_artifacts(out)
print(a.model, a.index)
EOF
    MODEL_SRC=$WORK/artifacts/encoder.onnx
    INDEX_SRC=$WORK/artifacts/index
fi
# a clip to classify in the installed roots: synthetic audio (tests/audio_gen.py), as the runtime tests use
CLIP=$WORK/clip.flac
python3 - "$CLIP" <<'EOF'
import sys
import soundfile as sf
sys.path.insert(0, "tests")
import audio_gen
sf.write(sys.argv[1], audio_gen.clip("rain"), audio_gen.SAMPLE_RATE, subtype="PCM_16")
EOF
printf 'model %s (%s bytes), index %s (%s)\n' "$MODEL_SRC" "$(stat -c %s "$MODEL_SRC")" "$INDEX_SRC" "$(du -sh "$INDEX_SRC" | cut -f1)"

# --- part 1: a root prefix, pip from PyPI --------------------------------------------------------------
prefix_bench() {
    local root=$WORK/root t0 t1 first second tree venv hnsw torch venv_size data_size score left
    snapshot() { (cd "$root" && find . -printf '%p %y %m %U %G %s %T@ %l\n' | LC_ALL=C sort); }
    section "disposable root $root"
    mkdir -p "$root/etc/systemd/system" "$root/opt" "$root/var/lib" "$root/usr/lib/systemd"
    printf 'root:x:0:0:root:/root:/bin/bash\n' >"$root/etc/passwd"
    printf 'root:x:0:\naudio:x:29:\n' >"$root/etc/group"
    printf 'root:*:19000:0:99999:7:::\n' >"$root/etc/shadow"
    printf 'root:*::\naudio:*::\n' >"$root/etc/gshadow"
    cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"

    # pip sees PyPI only: no pip.conf (local mirrors, find-links), no cache
    export EDGE_ASC_ROOT=$root SKIP_APT=1 MODEL_SRC INDEX_SRC PIP_CONFIG_FILE=/dev/null PIP_NO_CACHE_DIR=1
    export PIP_ARGS="--index-url https://pypi.org/simple"

    section "first install (pip from PyPI)"
    t0=$(now)
    bash deploy/install.sh 2>&1 | tee "$LOG/install1.txt" |
        grep -E '^edge-asc install|^config OK|Successfully|Building wheel for|Created wheel' | cut -c1-200
    t1=$(now)
    first=$(elapsed "$t0" "$t1")
    snapshot >"$LOG/tree1.txt"

    section "second install"
    t0=$(now)
    bash deploy/install.sh >"$LOG/install2.txt" 2>&1
    t1=$(now)
    second=$(elapsed "$t0" "$t1")
    grep -E 'done:' "$LOG/install2.txt"
    snapshot >"$LOG/tree2.txt"
    if diff -q "$LOG/tree1.txt" "$LOG/tree2.txt" >/dev/null; then tree="identical"; else tree="CHANGED: $(diff "$LOG/tree1.txt" "$LOG/tree2.txt" | awk 'NR <= 5' || true)"; fi

    section "the installed venv"
    venv=$root/opt/edge-asc
    "$venv/bin/python" -m pip list --disable-pip-version-check --format=freeze 2>/dev/null | tr '\n' ' '
    echo
    if "$venv/bin/python" -c 'import torch' 2>/dev/null; then torch="PRESENT"; else torch="absent"; fi
    echo "torch: $torch"
    venv_size=$(du -sh "$venv" | cut -f1)
    data_size=$(du -sh "$root/var/lib/edge-asc" | cut -f1)
    echo "venv $venv_size, /var/lib/edge-asc $data_size"
    echo "largest packages:"
    du -s "$venv"/lib/python3*/site-packages/* | sort -rn | awk 'NR <= 6 { printf "  %6.1f MB %s\n", $1 / 1024, $2 }' | sed "s#$venv/##"

    section "hnswlib alone from its sdist (PyPI has no hnswlib wheel for any platform)"
    t0=$(now)
    "$venv/bin/python" -m pip wheel --disable-pip-version-check --no-deps --no-binary hnswlib -w "$WORK/hnswlib" hnswlib >"$LOG/hnswlib.txt" 2>&1
    t1=$(now)
    hnsw=$(elapsed "$t0" "$t1")
    echo "built $(basename "$WORK"/hnswlib/hnswlib-*.whl) in $hnsw s (build deps from PyPI: setuptools, wheel, numpy, pybind11; g++ -O3 -march=native, one translation unit)"

    section "systemd-analyze on the installed unit"
    systemd-analyze verify --root="$root" edge-asc.service && echo "verify: OK (no output)"
    score=$(systemd-analyze security --offline=true --root="$root" edge-asc.service | grep 'Overall exposure' | sed 's/.*: //')
    echo "security: $score"

    section "uninstall --purge"
    bash deploy/uninstall.sh --purge | sed -n '$p'
    left=$(cd "$root" && find . -path ./usr -prune -o -print | LC_ALL=C sort | tr '\n' ' ')
    echo "left in the root (besides usr/): $left"
    unset EDGE_ASC_ROOT PIP_CONFIG_FILE PIP_NO_CACHE_DIR PIP_ARGS

    SUMMARY+=("prefix: first install $first s (venv, pip from PyPI incl. the hnswlib build, data, config, check, unit)"
        "prefix: second install $second s, tree $tree"
        "prefix: hnswlib wheel from source $hnsw s"
        "prefix: venv $venv_size, data $data_size, torch $torch, unit exposure $score")
}

# --- part 2: under a booted systemd --------------------------------------------------------------------
systemd_bench() {
    [[ $EUID -eq 0 ]] || die "--systemd needs root"
    command -v systemd-nspawn >/dev/null || die "--systemd needs systemd-nspawn (apt-get install systemd-container)"
    grep -qw overlay /proc/filesystems || die "--systemd needs overlayfs"
    /usr/bin/python3 -c 'import ensurepip' 2>/dev/null || die "--systemd needs python3-venv for /usr/bin/python3"
    local wheels=$WORK/wheels art=$WORK/art machine=edgeasc$$ t0 t1 nspawn_pid leader state i

    section "wheelhouse for an offline device (pip wheel from PyPI, HNSWLIB_NO_NATIVE=1)"
    mkdir -p "$WORK/pkg" "$art"
    (cd "$REPO" && cp -r pyproject.toml README.md edge_asc "$WORK/pkg/") && find "$WORK/pkg" -name __pycache__ -prune -exec rm -rf {} +
    t0=$(now)
    HNSWLIB_NO_NATIVE=1 PIP_CONFIG_FILE=/dev/null python3 -m pip wheel -q --disable-pip-version-check --no-cache-dir \
        --index-url https://pypi.org/simple -w "$wheels" "$WORK/pkg" "setuptools>=68" wheel >"$LOG/wheels.txt" 2>&1
    t1=$(now)
    echo "$(find "$wheels" -name '*.whl' | wc -l) wheels in $(elapsed "$t0" "$t1") s: $(find "$wheels" -name '*.whl' -printf '%f ' | tr -s ' ')"
    cp "$MODEL_SRC" "$art/model.onnx"
    cp -r "$INDEX_SRC" "$art/index"
    cp "$CLIP" "$art/clip.flac"

    section "boot a throwaway systemd: nspawn on an overlay of / (tmpfs upper layer), private network"
    mkdir -p "$WORK/ovl/t"
    local mask=()
    [[ -e /lib/systemd/system/postgresql.service ]] && mask=(--bind-ro=/dev/null:/etc/systemd/system/postgresql.service)
    cat >"$WORK/boot.sh" <<EOF
set -e
mount -t tmpfs -o size=4g tmpfs $WORK/ovl/t
mkdir -p $WORK/ovl/t/upper $WORK/ovl/t/work $WORK/ovl/merged
mount -t overlay overlay -o lowerdir=/,upperdir=$WORK/ovl/t/upper,workdir=$WORK/ovl/t/work $WORK/ovl/merged
exec systemd-nspawn -D $WORK/ovl/merged --private-network --boot --machine=$machine --register=no --keep-unit \\
    --link-journal=no --console=read-only --bind-ro=$REPO:/src --bind-ro=$wheels:/wheels --bind-ro=$art:/art ${mask[*]}
EOF
    t0=$(now)
    timeout 1200 unshare -m --propagation private bash "$WORK/boot.sh" >"$LOG/nspawn.txt" 2>&1 &
    NSPAWN_JOB=$!
    leader=""
    for i in $(seq 1 600); do
        # ps exits 1 while the process it looks for does not exist yet
        nspawn_pid=$(ps -o pid= --ppid "$NSPAWN_JOB" | tr -d ' ' | head -1 || true)
        [[ -n $nspawn_pid ]] && leader=$(ps -o pid=,comm= --ppid "$nspawn_pid" | awk '$2 == "systemd" { print $1 }' | head -1 || true)
        LEADER=$leader
        if [[ -n $leader ]]; then
            state=$(nsenter -t "$leader" -a systemctl is-system-running 2>/dev/null || true)
            [[ $state == running || $state == degraded ]] && break
        fi
        kill -0 "$NSPAWN_JOB" 2>/dev/null || { cat "$LOG/nspawn.txt"; die "the container did not boot"; }
        [[ $i -lt 600 ]] || die "the container did not boot in 60 s"
        sleep 0.1
    done
    t1=$(now)
    echo "systemd $state in $(elapsed "$t0" "$t1") s (container PID 1 is host PID $leader)"
    C() { nsenter -t "$leader" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/root "$@"; }

    section "install.sh under systemd (PYTHON=/usr/bin/python3, pip --no-index --find-links wheelhouse)"
    t0=$(now)
    C env SKIP_APT=1 PYTHON=/usr/bin/python3 PIP_ARGS="--no-index --find-links /wheels" MODEL_SRC=/art/model.onnx \
        INDEX_SRC=/art/index bash /src/deploy/install.sh >"$LOG/sd-install1.txt" 2>&1 || { cat "$LOG/sd-install1.txt"; die "install failed"; }
    t1=$(now)
    local install_s
    install_s=$(elapsed "$t0" "$t1")
    grep -E '^edge-asc install: (\+ systemctl|done)|^config OK' "$LOG/sd-install1.txt" | cut -c1-160
    C systemctl show edge-asc -p ActiveState -p SubState -p StatusText -p NRestarts -p WatchdogUSec | tr '\n' ' '
    echo
    sleep 12
    local after_12
    after_12=$(C systemctl show edge-asc -p ActiveState -p NRestarts | tr '\n' ' ')
    echo "12 s later (longer than WatchdogSec, no microphone in the container): $after_12"
    C journalctl -u edge-asc --no-pager -o cat | grep -E 'unavailable|ready' | awk 'NR <= 2' | cut -c1-160

    section "socket and subscribers"
    C stat -c '%A %U:%G %n' /run/edge-asc /run/edge-asc/edge-asc.sock
    echo "root:      $(C timeout 5 /opt/edge-asc/bin/edge-asc listen --timeout 1 2>&1 | head -1 | cut -c1-100)"
    C useradd -M benchuser
    echo "benchuser: $(C runuser -u benchuser -- timeout 5 /opt/edge-asc/bin/edge-asc listen --timeout 1 2>&1 | head -1 | cut -c1-140)"
    C usermod -aG edge-asc benchuser
    echo "benchuser in group edge-asc: $(C runuser -u benchuser -- timeout 5 /opt/edge-asc/bin/edge-asc listen --timeout 1 2>&1 | head -1 | cut -c1-100)"

    section "inference inside the sandbox: a drop-in replaces the source by a file (paced in real time)"
    C install -m 0640 -o root -g edge-asc /art/clip.flac /var/lib/edge-asc/clip.flac
    C mkdir -p /etc/systemd/system/edge-asc.service.d
    C sh -c 'printf "[Service]\nExecStart=\nExecStart=/opt/edge-asc/bin/edge-asc run --config /etc/edge-asc/config.yaml --source file:/var/lib/edge-asc/clip.flac --realtime\n" >/etc/systemd/system/edge-asc.service.d/bench.conf'
    C systemctl daemon-reload
    C systemctl restart edge-asc
    C timeout 20 /opt/edge-asc/bin/edge-asc listen --events scene,status --timeout 4 >"$LOG/events.txt" 2>&1 || true
    local scenes
    scenes=$(grep -c '"type":"scene"' "$LOG/events.txt" || true)
    echo "$scenes scene events; the first and the first status:"
    grep -m1 '"type":"scene"' "$LOG/events.txt" | cut -c1-220 || true
    grep -m1 '"type":"status"' "$LOG/events.txt" | cut -c1-300 || true
    sleep 1
    echo "at the end of the file: $(C systemctl show edge-asc -p ActiveState -p Result -p ExecMainStatus | tr '\n' ' ')"
    C rm -rf /etc/systemd/system/edge-asc.service.d /var/lib/edge-asc/clip.flac
    C systemctl daemon-reload
    C systemctl start edge-asc

    section "watchdog: SIGSTOP the daemon"
    local pid
    pid=$(C systemctl show edge-asc -p MainPID --value)
    C kill -STOP "$pid"
    sleep 15
    local watchdog
    watchdog=$(C systemctl show edge-asc -p ActiveState -p NRestarts | tr '\n' ' ')
    echo "$watchdog"
    C journalctl -u edge-asc --no-pager -o cat | grep "result 'watchdog'" | awk 'NR == 1' || echo "no watchdog kill in the journal"

    section "MemoryDenyWriteExecute and sounddevice's callback, under systemd (as edge-asc)"
    for mdwe in yes no; do
        C systemd-run --wait --pipe -q -p MemoryDenyWriteExecute=$mdwe -p User=edge-asc /opt/edge-asc/bin/python -c "
import sounddevice as sd
try:
    sd._ffi.callback('PaStreamCallback')(lambda *a: 0)
    print('MemoryDenyWriteExecute=$mdwe: ffi.callback OK')
except MemoryError as exc:
    print('MemoryDenyWriteExecute=$mdwe: ffi.callback fails:', str(exc)[:60])
" 2>&1 | tail -1
    done

    section "second install, then uninstall"
    pid=$(C systemctl show edge-asc -p MainPID --value)
    C env SKIP_APT=1 PYTHON=/usr/bin/python3 PIP_ARGS="--no-index --find-links /wheels" MODEL_SRC=/art/model.onnx \
        INDEX_SRC=/art/index bash /src/deploy/install.sh >"$LOG/sd-install2.txt" 2>&1
    local second
    second="$(grep -E 'done:' "$LOG/sd-install2.txt" | sed 's/edge-asc install: //'), MainPID $pid -> $(C systemctl show edge-asc -p MainPID --value)"
    echo "$second"
    C bash /src/deploy/uninstall.sh --purge >"$LOG/sd-uninstall.txt" 2>&1
    local gone
    gone="unit: $(C systemctl show edge-asc -p LoadState --value), user: $(C getent passwd edge-asc || echo none), left: $(C sh -c 'ls -d /opt/edge-asc /var/lib/edge-asc /etc/edge-asc /etc/systemd/system/edge-asc.service 2>/dev/null | wc -l')"
    echo "after uninstall --purge: $gone"

    C systemctl poweroff || true
    wait "$NSPAWN_JOB" || true
    NSPAWN_JOB=""
    LEADER=""
    SUMMARY+=("systemd: install + enable --now $install_s s; after 12 s without a microphone: $after_12"
        "systemd: $scenes scene events from a file inside the sandbox; watchdog on SIGSTOP: $watchdog"
        "systemd: second install: $second"
        "systemd: after uninstall --purge: $gone")
}

[[ $MODE == --systemd ]] || prefix_bench
[[ $MODE == --prefix ]] || systemd_bench

section "summary"
printf '%s\n' "${SUMMARY[@]}"
