#!/usr/bin/env bash
# Install the edge-asc daemon as a systemd service on a Debian-based image (Raspberry Pi OS 64-bit,
# Jetson Linux): apt packages, the system user edge-asc (group audio), a runtime-only venv in
# /opt/edge-asc, model and index in /var/lib/edge-asc, the config in /etc/edge-asc, the unit in
# /etc/systemd/system; then enable --now. Run it from a clone, as root: sudo deploy/install.sh
#
# Idempotent: a second run changes nothing. Files are rewritten only when their content differs, an
# existing config is never overwritten (a new default goes beside it as config.yaml.dist), the venv is
# reinstalled only when the package sources (or PIP_ARGS) changed, and the service is restarted only
# when something it uses changed. See docs/deployment.md.
#
# Settings (environment variables), mainly for tests and image builds:
#   EDGE_ASC_ROOT=DIR   install into DIR as a root prefix (a disposable root or an image being built):
#                       users are created with useradd --prefix, the unit is enabled with
#                       systemctl --root; nothing is started. Default: the running system.
#   SKIP_APT=1          do not install apt packages (same as --skip-apt).
#   PYTHON=python3      interpreter for the venv (>= 3.10).
#   VENV_ARGS=...       extra arguments for "python -m venv" (tests: --system-site-packages --without-pip).
#   PIP_ARGS=...        extra arguments for "pip install" (--no-deps, --find-links DIR, --no-index...).
#   SYSTEMCTL=systemctl the systemctl command.
#   EDGE_ASC_SYSTEMD=auto|online|offline   talk to a running systemd (online) or only enable the unit
#                       (offline). auto: online when /run/systemd/system exists and no root prefix is set.
#   EDGE_ASC_SRC=DIR    the source tree (default: the clone this script is in).
#   MODEL_SRC=FILE, INDEX_SRC=DIR   the artifacts to ship (default: models/edge-asc-amb13.onnx and
#                       index/edge-asc-amb13/ of the source tree).
#   CHECK=0             skip the final "edge-asc run --check-config" of the installed daemon.
#   NETWORK_ALLOW="ADDR ..."   addresses (IP or CIDR, or "any") the service may talk to besides localhost:
#                       the MQTT broker (mqtt.url), a Prometheus server scraping metrics.listen. Written to
#                       the drop-in edge-asc.service.d/network.conf (IPAddressAllow=); NETWORK_ALLOW="" removes
#                       it; unset: an existing drop-in is kept.
# MQTT credentials: put the password in /etc/edge-asc/mqtt.password (mqtt.password_file); each run makes
# it owned by the service user and readable by it only (0400), since group edge-asc (socket clients) must
# not read it.
set -euo pipefail

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
    printf '\nUsage: %s [--skip-apt] [--help]\n' "$0"
}

for arg in "$@"; do
    case $arg in
        --skip-apt) SKIP_APT=1 ;;
        -h | --help) usage; exit 0 ;;
        *) printf 'edge-asc install: unknown argument %s (try --help)\n' "$arg" >&2; exit 2 ;;
    esac
done

# --- where things go (paths inside the target system; $ROOT prefixes them) ---------------------------
NAME=edge-asc
SERVICE_USER=edge-asc
AUDIO_GROUP=audio
PREFIX=/opt/edge-asc
STATE_DIR=/var/lib/edge-asc
CONF_DIR=/etc/edge-asc
UNIT_DIR=/etc/systemd/system
UNIT=edge-asc.service
MODEL_NAME=edge-asc-amb13.onnx
INDEX_NAME=edge-asc-amb13
DROPIN=$UNIT.d/network.conf
MQTT_SECRET=mqtt.password
STAMP=$PREFIX/.edge-asc-source.sha256
# procps: /bin/kill, the unit's ExecReload (a minimal image, a container's or debootstrap's minbase, has none)
APT_PACKAGES=(python3 python3-venv python3-dev build-essential libportaudio2 libsndfile1 libasound2-plugins alsa-utils procps)

SRC_DIR=$(cd "${EDGE_ASC_SRC:-$(dirname "${BASH_SOURCE[0]}")/..}" && pwd)
ROOT=${EDGE_ASC_ROOT:-}
ROOT=${ROOT%/}
PYTHON=${PYTHON:-python3}
SKIP_APT=${SKIP_APT:-0}
SYSTEMCTL=${SYSTEMCTL:-systemctl}
SYSTEMD_MODE=${EDGE_ASC_SYSTEMD:-auto}
MODEL_SRC=${MODEL_SRC:-$SRC_DIR/models/$MODEL_NAME}
INDEX_SRC=${INDEX_SRC:-$SRC_DIR/index/$INDEX_NAME}
read -r -a VENV_ARGS <<<"${VENV_ARGS:-}"
read -r -a PIP_ARGS <<<"${PIP_ARGS:-}"
umask 022  # the venv and docs must be readable by the service user whatever root's umask is

CHANGES=0          # files, users and packages changed by this run
RUNTIME_CHANGED=0  # something the running service uses changed: restart it
UNIT_CHANGED=0

say() { printf 'edge-asc install: %s\n' "$*"; }
die() { printf 'edge-asc install: error: %s\n' "$*" >&2; exit 1; }
run() { say "+ $*"; "$@"; }
changed() { CHANGES=$((CHANGES + 1)); }

# --- users and ownership (read from $ROOT/etc when installing into a prefix) --------------------------
prefix_opt=()
[[ -n $ROOT ]] && prefix_opt=(--prefix "$ROOT")

# lookup DB NAME -> the entry's line (passwd or group), or nothing
lookup() {
    if [[ -n $ROOT ]]; then
        [[ -f $ROOT/etc/$1 ]] || return 0
        awk -F: -v n="$2" '$1 == n { print; exit }' "$ROOT/etc/$1"
    else
        getent "$1" "$2" || true
    fi
}

numeric_id() {  # numeric_id passwd|group NAME
    local line
    line=$(lookup "$1" "$2")
    [[ -n $line ]] || die "no $1 entry for $2${ROOT:+ in $ROOT/etc/$1}"
    cut -d: -f3 <<<"$line"
}

# set_attrs PATH MODE OWNER GROUP: chmod/chown only what differs
set_attrs() {
    local path=$1 mode=$2 uid gid
    uid=$(numeric_id passwd "$3")
    gid=$(numeric_id group "$4")
    if [[ $(stat -c '%a %u %g' "$path") != "$mode $uid $gid" ]]; then
        chown "$uid:$gid" "$path"
        chmod "$mode" "$path"
        say "set mode $mode owner $3:$4 on $path"
        changed
    fi
}

apply_attrs() {  # apply_attrs PATH MODE OWNER GROUP, unconditionally and quietly (new files)
    chown "$(numeric_id passwd "$3"):$(numeric_id group "$4")" "$1"
    chmod "$2" "$1"
}

ensure_dir() {  # ensure_dir PATH MODE OWNER GROUP
    if [[ -d $1 ]]; then
        set_attrs "$@"
        return
    fi
    mkdir -p "$1"
    apply_attrs "$@"
    say "created $1 (mode $2, $3:$4)"
    changed
}

# put_file SRC DEST MODE OWNER GROUP: replace DEST (atomically) only when its content differs.
# Returns 0 when DEST was written, 1 when it already had this content.
put_file() {
    local src=$1 dest=$2 tmp
    if [[ -f $dest ]] && cmp -s "$src" "$dest"; then
        set_attrs "$dest" "$3" "$4" "$5"
        return 1
    fi
    tmp=$(mktemp "$(dirname "$dest")/.${dest##*/}.XXXXXX")
    cp "$src" "$tmp"
    apply_attrs "$tmp" "$3" "$4" "$5"
    mv -f "$tmp" "$dest"
    say "wrote $dest"
    changed
    return 0
}

# --- 1. checks before anything changes --------------------------------------------------------------
preflight() {
    if [[ -z $ROOT && $EUID -ne 0 ]]; then
        die "run as root (sudo $0): it creates a system user and writes /opt, /var/lib, /etc"
    fi
    [[ -f $SRC_DIR/pyproject.toml && -d $SRC_DIR/edge_asc ]] || die "$SRC_DIR is not an edge-asc source tree (no pyproject.toml or edge_asc/); set EDGE_ASC_SRC"
    [[ -f $MODEL_SRC ]] || die "model not found: $MODEL_SRC (the shipped ONNX encoder; train and export it as in docs/model-card.md, or set MODEL_SRC=FILE)"
    [[ -f $INDEX_SRC/manifest.json && -f $INDEX_SRC/index.bin ]] || die "index not found: $INDEX_SRC needs manifest.json and index.bin (build it with edge-asc build-index, or set INDEX_SRC=DIR)"
    local addr
    for addr in ${NETWORK_ALLOW:-}; do  # systemd takes addresses only: a host name would fail at start
        [[ $addr =~ ^(any|[0-9A-Fa-f:.]+(/[0-9]+)?)$ ]] || die "NETWORK_ALLOW: '$addr' is not an IP address, a CIDR prefix or 'any'"
    done
    command -v "$PYTHON" >/dev/null || die "$PYTHON not found (install python3, or set PYTHON=)"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
        die "edge-asc needs Python >= 3.10, $PYTHON is $("$PYTHON" -c 'import platform; print(platform.python_version())'); set PYTHON= to a newer interpreter"
    # The venv links to this interpreter; the service runs with ProtectHome=yes as edge-asc, so an
    # interpreter under /root or /home (pyenv, conda) cannot start it.
    local real_python
    real_python=$(readlink -f "$(command -v "$PYTHON")")
    if [[ $real_python == /root/* || $real_python == /home/* ]]; then
        if [[ -z $ROOT ]]; then
            die "$PYTHON is $real_python: the service (user edge-asc, ProtectHome=yes) cannot run it; use a system interpreter (PYTHON=/usr/bin/python3)"
        fi
        say "warning: $PYTHON is $real_python, which the service could not run on a real system (ProtectHome=yes)"
    fi
    # the index must have been built with this encoder (the daemon refuses a mismatch; fail here first)
    local model_sha index_sha
    model_sha=$(sha256sum "$MODEL_SRC" | cut -d' ' -f1)
    index_sha=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1])).get("encoder_sha256", ""))' "$INDEX_SRC/manifest.json") ||
        die "cannot read $INDEX_SRC/manifest.json"
    [[ -z $index_sha || $index_sha == "$model_sha" ]] ||
        die "$INDEX_SRC/manifest.json was built for encoder sha256 $index_sha, but $MODEL_SRC has sha256 $model_sha"
    case $SYSTEMD_MODE in auto | online | offline) ;; *) die "EDGE_ASC_SYSTEMD must be auto, online or offline, not $SYSTEMD_MODE" ;; esac
    if [[ -n $ROOT && $SKIP_APT != 1 ]]; then
        die "EDGE_ASC_ROOT is set: apt cannot install into a prefix; install the packages in the image and set SKIP_APT=1"
    fi
}

# --- 2. apt packages ---------------------------------------------------------------------------------
install_packages() {
    if [[ $SKIP_APT == 1 ]]; then
        say "apt: skipped (SKIP_APT=1); needed: ${APT_PACKAGES[*]}"
        return
    fi
    local missing=() p
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        say "apt: all packages present (${APT_PACKAGES[*]})"
        return
    fi
    run apt-get update -qq
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    changed
}

# --- 3. the system user ------------------------------------------------------------------------------
ensure_user() {
    if [[ -z $(lookup group "$AUDIO_GROUP") ]]; then
        run groupadd "${prefix_opt[@]}" --system "$AUDIO_GROUP"
        changed
    fi
    if [[ -n $(lookup passwd "$SERVICE_USER") ]]; then
        local members
        members=$(lookup group "$AUDIO_GROUP" | cut -d: -f4)
        if [[ ,$members, == *",$SERVICE_USER,"* ]]; then
            say "user $SERVICE_USER exists (groups $SERVICE_USER, $AUDIO_GROUP)"
        else
            run usermod "${prefix_opt[@]}" --append --groups "$AUDIO_GROUP" "$SERVICE_USER"
            changed
        fi
        return
    fi
    local group_opt=(--user-group)
    [[ -n $(lookup group "$SERVICE_USER") ]] && group_opt=(--gid "$SERVICE_USER")
    run useradd "${prefix_opt[@]}" --system "${group_opt[@]}" --groups "$AUDIO_GROUP" \
        --home-dir "$STATE_DIR" --no-create-home --shell /usr/sbin/nologin --comment "edge-asc daemon" "$SERVICE_USER"
    changed
}

# --- 4. the runtime venv -----------------------------------------------------------------------------
# The files pip builds the package from (and that the source fingerprint covers).
package_files() {
    local f paths=()
    for f in pyproject.toml setup.cfg setup.py MANIFEST.in README.md LICENSE edge_asc; do
        [[ -e $SRC_DIR/$f ]] && paths+=("$f")
    done
    # artifacts go into the wheel only if pyproject.toml ships them as data files
    if grep -q 'data-files' "$SRC_DIR/pyproject.toml"; then
        for f in models index; do [[ -d $SRC_DIR/$f ]] && paths+=("$f"); done
    fi
    (cd "$SRC_DIR" && find "${paths[@]}" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*.egg-info/*' | LC_ALL=C sort)
}

source_fingerprint() {
    {
        printf 'python %s\npip-args %s\n' "$("$VENV_PY" -c 'import sys; print(sys.version)')" "${PIP_ARGS[*]}"
        package_files | (cd "$SRC_DIR" && xargs -d '\n' sha256sum)
    } | sha256sum | cut -d' ' -f1
}

check_no_training_packages() {
    # Only the venv's own site-packages count: a --system-site-packages venv (tests) sees the host's.
    "$VENV_PY" - <<'EOF' || die "the runtime venv must not contain training packages (see above)"
import importlib.metadata as md, importlib.util, sys, sysconfig
paths = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
banned = {"torch", "librosa", "matplotlib"}
found = sorted(d.metadata["Name"] for d in md.distributions(path=paths) if d.metadata["Name"].lower() in banned)
with open(sys.prefix + "/pyvenv.cfg") as f:
    isolated = "include-system-site-packages = false" in f.read()
if isolated and importlib.util.find_spec("torch") is not None:
    found.append("torch (importable)")
if found:
    print("edge-asc install: found in the venv:", ", ".join(found))
    sys.exit(1)
print("edge-asc install: checked: no torch, librosa or matplotlib in", ", ".join(paths))
EOF
}

install_venv() {
    local venv=$ROOT$PREFIX
    VENV_PY=$venv/bin/python
    if [[ -x $VENV_PY ]] && "$VENV_PY" -c 'import sys' 2>/dev/null; then
        say "venv $venv exists"
    else
        if [[ -e $venv ]]; then
            [[ -f $venv/pyvenv.cfg ]] || die "$venv exists and is not a venv; move it away"
            say "venv $venv is broken (its interpreter does not run): recreating it"
            run rm -rf "$venv"
        fi
        mkdir -p "$(dirname "$venv")"
        run "$PYTHON" -m venv "${VENV_ARGS[@]}" "$venv"
        changed
        RUNTIME_CHANGED=1
    fi

    local want have=""
    want=$(source_fingerprint)
    [[ -f $ROOT$STAMP ]] && have=$(<"$ROOT$STAMP")
    if [[ $want == "$have" ]] && "$venv/bin/edge-asc" --version >/dev/null 2>&1; then
        say "package up to date in $venv ($("$venv/bin/edge-asc" --version))"
    else
        # build from a clean copy so that pip leaves no build/ or *.egg-info in the clone
        local build
        build=$(mktemp -d)
        # shellcheck disable=SC2064  # expand now: the trap must remove this directory
        trap "rm -rf '$build'" EXIT
        package_files | (cd "$SRC_DIR" && xargs -d '\n' cp --parents -t "$build")
        run "$VENV_PY" -m pip install --disable-pip-version-check --no-input "${PIP_ARGS[@]}" "$build"
        rm -rf "$build"
        trap - EXIT
        "$venv/bin/edge-asc" --version >/dev/null || die "$venv/bin/edge-asc does not run after pip install"
        printf '%s\n' "$want" >"$ROOT$STAMP"
        say "installed $("$venv/bin/edge-asc" --version) into $venv"
        changed
        RUNTIME_CHANGED=1
    fi
    check_no_training_packages
}

# --- 5. model and index ------------------------------------------------------------------------------
install_data() {
    local state=$ROOT$STATE_DIR f dest
    ensure_dir "$state" 750 "$SERVICE_USER" "$SERVICE_USER"
    # root-owned and group-readable: the daemon reads them and cannot change them
    ensure_dir "$state/models" 750 root "$SERVICE_USER"
    ensure_dir "$state/index" 750 root "$SERVICE_USER"
    ensure_dir "$state/index/$INDEX_NAME" 750 root "$SERVICE_USER"
    put_file "$MODEL_SRC" "$state/models/$MODEL_NAME" 640 root "$SERVICE_USER" && RUNTIME_CHANGED=1
    for f in "$INDEX_SRC"/*; do
        [[ -f $f ]] || continue
        put_file "$f" "$state/index/$INDEX_NAME/${f##*/}" 640 root "$SERVICE_USER" && RUNTIME_CHANGED=1
    done
    # the index directory mirrors the source: drop files the new index no longer has
    for dest in "$state/index/$INDEX_NAME"/* "$state/index/$INDEX_NAME"/.[!.]*; do
        [[ -e $dest && ! -e $INDEX_SRC/${dest##*/} ]] || continue
        run rm -rf "$dest"
        changed
        RUNTIME_CHANGED=1
    done
    local doc=$ROOT$PREFIX/share/doc/edge-asc
    if [[ -f $SRC_DIR/docs/deployment.md ]]; then
        ensure_dir "$doc" 755 root root
        put_file "$SRC_DIR/docs/deployment.md" "$doc/deployment.md" 644 root root || true
    fi
}

# --- 6. the config -----------------------------------------------------------------------------------
install_config() {
    local conf=$ROOT$CONF_DIR default
    ensure_dir "$conf" 750 root "$SERVICE_USER"
    default=$(mktemp)
    if ! "$ROOT$PREFIX/bin/edge-asc" run --dump-config >"$default"; then
        rm -f "$default"
        die "'$ROOT$PREFIX/bin/edge-asc run --dump-config' failed: cannot write the default config $CONF_DIR/config.yaml"
    fi
    [[ -s $default ]] || { rm -f "$default"; die "'edge-asc run --dump-config' printed nothing"; }
    if [[ ! -e $conf/config.yaml ]]; then
        put_file "$default" "$conf/config.yaml" 640 root "$SERVICE_USER" || true
        RUNTIME_CHANGED=1
    elif cmp -s "$default" "$conf/config.yaml"; then
        set_attrs "$conf/config.yaml" 640 root "$SERVICE_USER"
        say "config $conf/config.yaml is the default"
    else
        say "config $conf/config.yaml was edited: kept; the current default is in config.yaml.dist"
        put_file "$default" "$conf/config.yaml.dist" 640 root "$SERVICE_USER" || true
    fi
    rm -f "$default"
    if [[ -f $conf/$MQTT_SECRET ]]; then
        set_attrs "$conf/$MQTT_SECRET" 400 "$SERVICE_USER" "$SERVICE_USER"
        say "MQTT password $CONF_DIR/$MQTT_SECRET: readable by $SERVICE_USER only"
    fi
}

# --- 7. the installed daemon accepts its config, model and index ------------------------------------
check_install() {
    if [[ ${CHECK:-1} == 0 ]]; then
        say "check skipped (CHECK=0)"
        return
    fi
    # As the service would: the unit's model/index variables, the config file; the source is replaced
    # by stdin so that the check does not need a microphone plugged in now. On the real system it runs
    # as the service user, which also proves the file permissions.
    local as_user=()
    [[ -z $ROOT ]] && as_user=(runuser -u "$SERVICE_USER" --)
    say "+ edge-asc run --config $CONF_DIR/config.yaml --check-config --source stdin${as_user[*]:+ (as $SERVICE_USER)}"
    (cd / && "${as_user[@]}" env EDGE_ASC_MODEL="$ROOT$STATE_DIR/models/$MODEL_NAME" EDGE_ASC_INDEX="$ROOT$STATE_DIR/index/$INDEX_NAME" EDGE_ASC_ENROLLED="$ROOT$STATE_DIR/enrolled" \
        "$ROOT$PREFIX/bin/edge-asc" run --config "$ROOT$CONF_DIR/config.yaml" --check-config --source stdin </dev/null) ||
        die "the installed daemon rejects its config, model or index (above); fix $CONF_DIR/config.yaml or the artifacts and run again"
}

# --- 8. the unit and systemd -------------------------------------------------------------------------
install_unit() {
    ensure_dir "$ROOT$UNIT_DIR" 755 root root
    if put_file "$SRC_DIR/systemd/$UNIT" "$ROOT$UNIT_DIR/$UNIT" 644 root root; then
        UNIT_CHANGED=1
        RUNTIME_CHANGED=1
    fi
    install_network_dropin
}

# The unit denies every address but localhost; MQTT to a broker elsewhere (or a remote Prometheus) needs it.
install_network_dropin() {
    local dropin=$ROOT$UNIT_DIR/$DROPIN tmp addr
    [[ -n ${NETWORK_ALLOW+set} ]] || return 0
    if [[ -z $NETWORK_ALLOW ]]; then
        if [[ -e $dropin ]]; then
            run rm -f "$dropin"
            changed
            UNIT_CHANGED=1
            RUNTIME_CHANGED=1
        fi
        return 0
    fi
    ensure_dir "$ROOT$UNIT_DIR/$UNIT.d" 755 root root
    tmp=$(mktemp)
    printf '# Written by deploy/install.sh (NETWORK_ALLOW): what the daemon may reach besides localhost\n[Service]\nIPAddressAllow=%s\n' "$NETWORK_ALLOW" >"$tmp"
    if put_file "$tmp" "$dropin" 644 root root; then
        UNIT_CHANGED=1
        RUNTIME_CHANGED=1
    fi
    rm -f "$tmp"
}

systemd_online() {
    case $SYSTEMD_MODE in
        online) return 0 ;;
        offline) return 1 ;;
    esac
    [[ -z $ROOT && -d /run/systemd/system ]]
}

start_service() {
    local root_opt=()
    [[ -n $ROOT ]] && root_opt=(--root="$ROOT")
    if ! systemd_online; then
        if [[ $("$SYSTEMCTL" "${root_opt[@]}" is-enabled "$UNIT" 2>/dev/null) == enabled ]]; then
            say "$UNIT is enabled"
        else
            run "$SYSTEMCTL" "${root_opt[@]}" enable "$UNIT"
            changed
        fi
        say "systemd is not running here${ROOT:+ (installing into $ROOT)}: $UNIT is enabled but not started; it starts at the next boot"
        return
    fi
    [[ $UNIT_CHANGED == 1 ]] && run "$SYSTEMCTL" daemon-reload
    if [[ $("$SYSTEMCTL" is-enabled "$UNIT" 2>/dev/null) != enabled ]]; then
        run "$SYSTEMCTL" enable --now "$UNIT" || die "$UNIT did not start: journalctl -u $NAME -n 50"
        changed
    elif ! "$SYSTEMCTL" is-active --quiet "$UNIT"; then
        run "$SYSTEMCTL" start "$UNIT" || die "$UNIT did not start: journalctl -u $NAME -n 50"
        changed
    elif [[ $RUNTIME_CHANGED == 1 ]]; then
        run "$SYSTEMCTL" restart "$UNIT" || die "$UNIT did not restart: journalctl -u $NAME -n 50"
        changed
    else
        say "$UNIT is enabled and running"
    fi
}

main() {
    say "source $SRC_DIR -> ${ROOT:-/} (model $MODEL_SRC, index $INDEX_SRC)"
    preflight
    install_packages
    ensure_user
    install_venv
    install_data
    install_config
    check_install
    install_unit
    start_service
    if [[ $CHANGES -eq 0 ]]; then
        say "done: nothing changed"
    else
        say "done: $CHANGES change(s)"
    fi
    say "logs: journalctl -u $NAME -f; events: socat - UNIX-CONNECT:/run/edge-asc/edge-asc.sock (as root or a member of group $SERVICE_USER)"
}

main
