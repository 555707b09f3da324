#!/usr/bin/env bash
# Removes what scripts/install-linux.sh installed:
#
#   sudo scripts/uninstall-linux.sh           # keeps the data, agent.toml and the user
#   sudo scripts/uninstall-linux.sh --purge   # also the data, /etc/jejak and the user
#
# Without --purge the PC's records (which may not all be synced yet), its setup and its
# token stay, so installing again carries on where it stopped. --purge deletes records
# that may never have reached the district server: export them first
# (sudo jejak-admin sync --export FILE) if in doubt.
#
# Options:
#   --root DIR   uninstall from a throwaway root instead of / (nothing outside DIR is
#                touched; systemctl and userdel are never run)
#   --purge      also delete /var/lib/jejak, /var/lib/jejak-server, /etc/jejak and the
#                jejak user and group
#   -h, --help   this text
set -euo pipefail

SERVICE_USER="jejak"
BIN_PATH="/usr/local/bin/jejak"
ADMIN_PATH="/usr/local/sbin/jejak-admin"
CONFIG_DIR="/etc/jejak"
AGENT_DATA="/var/lib/jejak"
SERVER_DATA="/var/lib/jejak-server"
UNIT_DIR="/etc/systemd/system"
AUTOSTART="/etc/xdg/autostart/jejak-checkin.desktop"
UNITS=(jejak-agent.service jejak-server.service)

usage() {
    sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

die() {
    echo "uninstall-linux.sh: $*" >&2
    exit 2
}

say() {
    echo "uninstall-linux.sh: $*" >&2
}

ROOT="/"
PURGE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --root)
            [ $# -ge 2 ] || die "--root needs a directory"
            ROOT="$2"
            shift 2
            ;;
        --purge)
            PURGE=1
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done

if [ "$ROOT" != "/" ]; then
    [ -d "$ROOT" ] || die "--root $ROOT is not a directory"
    ROOT="$(cd "$ROOT" && pwd)"
elif [ "$(id -u)" -ne 0 ]; then
    die "run as root (sudo)"
fi

at() {
    if [ "$ROOT" = "/" ]; then
        printf '%s' "$1"
    else
        printf '%s%s' "$ROOT" "$1"
    fi
}

systemd_running() {
    [ "$ROOT" = "/" ] && [ -d /run/systemd/system ]
}

for unit in "${UNITS[@]}"; do
    if [ -f "$(at "$UNIT_DIR/$unit")" ]; then
        if systemd_running; then
            # The agent closes its open session as a shutdown when stopped.
            systemctl disable --now "$unit" > /dev/null 2>&1 || true
        fi
        rm -f "$(at "$UNIT_DIR/multi-user.target.wants/$unit")" "$(at "$UNIT_DIR/$unit")"
        say "removed $unit"
    fi
done
rmdir "$(at "$UNIT_DIR/multi-user.target.wants")" 2> /dev/null || true
if systemd_running; then
    systemctl daemon-reload
fi

rm -f "$(at "$AUTOSTART")" "$(at "$BIN_PATH")" "$(at "$ADMIN_PATH")" \
    "$(at "$CONFIG_DIR/agent.example.toml")"

if [ "$PURGE" = 1 ]; then
    rm -rf "$(at "$AGENT_DATA")" "$(at "$SERVER_DATA")" "$(at "$CONFIG_DIR")"
    if [ "$ROOT" = "/" ]; then
        if getent passwd "$SERVICE_USER" > /dev/null; then
            userdel "$SERVICE_USER"
        fi
        if getent group "$SERVICE_USER" > /dev/null; then
            groupdel "$SERVICE_USER"
        fi
    else
        for file in passwd group shadow gshadow; do
            path="$(at "/etc/$file")"
            if [ -f "$path" ] && grep -q "^$SERVICE_USER:" "$path"; then
                grep -v "^$SERVICE_USER:" "$path" > "$path.new" || true
                chmod --reference="$path" "$path.new"
                mv -f "$path.new" "$path"
            fi
        done
    fi
    say "purged: data, configuration and the $SERVICE_USER user are gone"
else
    for kept in "$AGENT_DATA" "$SERVER_DATA" "$CONFIG_DIR"; do
        if [ -e "$(at "$kept")" ]; then
            say "kept $kept (remove it with --purge)"
        fi
    done
fi
say "uninstalled from $ROOT"
