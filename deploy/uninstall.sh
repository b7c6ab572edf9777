#!/usr/bin/env bash
# Remove what deploy/install.sh installed: stop and disable edge-asc.service, remove the unit, the venv
# /opt/edge-asc, the model and index in /var/lib/edge-asc (with anything the daemon kept there) and the
# user edge-asc. The config in /etc/edge-asc is kept unless --purge; apt packages are left installed
# (other software may use them). Safe to run twice. Run as root: sudo deploy/uninstall.sh
#
# Options:
#   --purge       also remove /etc/edge-asc (the config, edited or not)
#   --keep-user   keep the system user and group edge-asc
# Settings: EDGE_ASC_ROOT, SYSTEMCTL, EDGE_ASC_SYSTEMD as for deploy/install.sh.
set -euo pipefail

PURGE=0
KEEP_USER=0
for arg in "$@"; do
    case $arg in
        --purge) PURGE=1 ;;
        --keep-user) KEEP_USER=1 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) printf 'edge-asc uninstall: unknown argument %s (try --help)\n' "$arg" >&2; exit 2 ;;
    esac
done

SERVICE_USER=edge-asc
UNIT=edge-asc.service
PREFIX=/opt/edge-asc
STATE_DIR=/var/lib/edge-asc
CONF_DIR=/etc/edge-asc
UNIT_FILE=/etc/systemd/system/$UNIT
ROOT=${EDGE_ASC_ROOT:-}
ROOT=${ROOT%/}
SYSTEMCTL=${SYSTEMCTL:-systemctl}
SYSTEMD_MODE=${EDGE_ASC_SYSTEMD:-auto}

say() { printf 'edge-asc uninstall: %s\n' "$*"; }
die() { printf 'edge-asc uninstall: error: %s\n' "$*" >&2; exit 1; }
run() { say "+ $*"; "$@"; }

if [[ -z $ROOT && $EUID -ne 0 ]]; then
    die "run as root (sudo $0)"
fi
case $SYSTEMD_MODE in auto | online | offline) ;; *) die "EDGE_ASC_SYSTEMD must be auto, online or offline, not $SYSTEMD_MODE" ;; esac

systemd_online() {
    case $SYSTEMD_MODE in
        online) return 0 ;;
        offline) return 1 ;;
    esac
    [[ -z $ROOT && -d /run/systemd/system ]]
}

lookup() {  # lookup passwd|group NAME -> the entry's line, or nothing
    if [[ -n $ROOT ]]; then
        [[ -f $ROOT/etc/$1 ]] || return 0
        awk -F: -v n="$2" '$1 == n { print; exit }' "$ROOT/etc/$1"
    else
        getent "$1" "$2" || true
    fi
}

remove() {  # remove PATH...: only what exists, saying so
    local p
    for p in "$@"; do
        if [[ -e $p || -L $p ]]; then
            run rm -rf -- "$p"
        fi
    done
}

# --- the service -------------------------------------------------------------------------------------
root_opt=()
[[ -n $ROOT ]] && root_opt=(--root="$ROOT")
if [[ -e $ROOT$UNIT_FILE ]]; then
    if systemd_online; then
        # --now stops it; a unit that is not running is fine
        run "$SYSTEMCTL" disable --now "$UNIT"
    else
        run "$SYSTEMCTL" "${root_opt[@]}" disable "$UNIT"
    fi
    remove "$ROOT$UNIT_FILE"
    if systemd_online; then
        run "$SYSTEMCTL" daemon-reload
        "$SYSTEMCTL" reset-failed "$UNIT" 2>/dev/null || true  # forget a failed state, if any
    fi
else
    say "no $UNIT_FILE"
fi
# a drop-in made with "systemctl edit edge-asc" belongs to the admin: keep it unless purging
if [[ -d $ROOT$UNIT_FILE.d ]]; then
    if [[ $PURGE == 1 ]]; then remove "$ROOT$UNIT_FILE.d"; else say "kept drop-ins in $UNIT_FILE.d (--purge removes them)"; fi
fi

# --- files -------------------------------------------------------------------------------------------
# /run/edge-asc is the RuntimeDirectory: systemd removed it when the service stopped.
remove "$ROOT$PREFIX" "$ROOT$STATE_DIR" "$ROOT/run/edge-asc"
if [[ $PURGE == 1 ]]; then
    remove "$ROOT$CONF_DIR"
elif [[ -e $ROOT$CONF_DIR ]]; then
    say "kept $CONF_DIR (--purge removes it)"
fi

# --- the user ----------------------------------------------------------------------------------------
prefix_opt=()
[[ -n $ROOT ]] && prefix_opt=(--prefix "$ROOT")
if [[ $KEEP_USER == 1 ]]; then
    say "kept user $SERVICE_USER (--keep-user)"
elif [[ -n $(lookup passwd "$SERVICE_USER") ]]; then
    run userdel "${prefix_opt[@]}" "$SERVICE_USER"
    # userdel keeps the user's group when other users were added to it (subscribers): remove it too
    if [[ -n $(lookup group "$SERVICE_USER") ]]; then
        run groupdel "${prefix_opt[@]}" "$SERVICE_USER"
    fi
else
    say "no user $SERVICE_USER"
fi
say "done (apt packages were left installed)"
