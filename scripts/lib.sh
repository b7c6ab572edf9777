# Shared by scripts/demo.sh and scripts/setup-dev.sh (sourced, not run): one line per step, apt that
# waits for another apt/dpkg (unattended-upgrades on a fresh machine) instead of failing, and the
# virtual environment every script uses.

VENV="${VENV:-.venv}"             # the clone's virtual environment (scripts/test.sh and .ci/run use it)
APT_WAIT_S="${APT_WAIT_S:-600}"   # how long to wait for another apt/dpkg to finish
step() { echo "==> $*"; }

# as_root CMD...: CMD as root (sudo when not root), decided when something actually needs root, so a
# machine with everything installed runs the scripts without sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        echo "$0: these system packages must be installed as root (no sudo here): run as root" >&2
        return 1
    fi
}

# apt_retry ARGS...: apt-get ARGS, retrying while another process holds an apt lock (dpkg's lock is waited
# for by DPkg::Lock::Timeout; apt-get update's lists lock is not, hence the loop). Needs pipefail.
apt_retry() {
    local deadline=$(( $(date +%s) + APT_WAIT_S )) log
    log="$(mktemp)"
    while true; do
        if as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$APT_WAIT_S" "$@" 2>&1 | tee "$log"; then
            rm -f "$log"
            return 0
        fi
        if grep -q "Could not get lock\|Unable to lock" "$log" && [ "$(date +%s)" -lt "$deadline" ]; then
            echo "    another apt/dpkg holds the lock; waiting (up to ${APT_WAIT_S} s in all)"
            sleep 5
            continue
        fi
        rm -f "$log"
        return 1
    done
}

# apt_install PKG...: install the packages not yet installed (Debian-based systems; elsewhere say what is needed).
apt_install() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        step "system packages already installed: $*"
        return 0
    fi
    if ! command -v apt-get >/dev/null; then
        step "not a Debian-based system: install the equivalents of ${missing[*]} yourself"
        return 0
    fi
    step "apt-get update (the package lists)"
    apt_retry update
    step "apt-get install ${missing[*]}"
    apt_retry install -y --no-install-recommends "${missing[@]}"
}

# make_venv: create $VENV with ${PYTHON:-python3} unless it exists. --system-site-packages: packages the
# machine already has (Debian's python3-*, a pyenv's torch) are reused; pip installs the rest into $VENV,
# never into the system Python (which Debian 12 marks externally managed, PEP 668).
make_venv() {
    local python="${PYTHON:-python3}"
    if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
        step "using the virtual environment $VENV ($("$VENV/bin/python" --version))"
        return 0
    fi
    if [ -e "$VENV" ]; then  # left half-made by an interrupted run (no pip in it): make it again
        step "the virtual environment $VENV is incomplete (no pip); making it again"
        rm -rf "$VENV"
    fi
    command -v "$python" >/dev/null || { echo "$0: $python not found (set PYTHON=...)" >&2; exit 1; }
    step "creating the virtual environment $VENV with $python ($("$python" --version))"
    "$python" -m venv --system-site-packages "$VENV"
}

# pip_install ARGS...: pip in $VENV with its own progress output.
pip_install() {
    step "pip install $* into $VENV (hnswlib has no wheels and is compiled: a minute or two)"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar on "$@"
}
