#!/usr/bin/env bash
# Installs Jejak as a service on a Linux PC (the agent) or district server (the server):
#
#   sudo scripts/install-linux.sh --binary target/pc/jejak                # a library PC
#   sudo scripts/install-linux.sh --binary target/release/jejak --role server
#
# It creates, and leaves alone what already exists (running it twice is fine):
#   - the system user and group `jejak` (no login, no home of its own);
#   - /usr/local/bin/jejak, and /usr/local/sbin/jejak-admin, which runs `jejak` as the
#     service's user with the service's data and configuration (sudo jejak-admin init …);
#   - /etc/jejak (root:jejak 0770): agent.toml (jejak:jejak 0640, from
#     config/agent.example.toml, kept if present), agent.example.toml, server.env (0640);
#   - /var/lib/jejak (agent data) and /var/lib/jejak-server (server data), jejak 0700;
#   - /etc/systemd/system/jejak-agent.service and jejak-server.service (0644), enabled
#     for multi-user.target;
#   - /etc/xdg/autostart/jejak-checkin.desktop, which opens the check-in page when a
#     patron logs in to the desktop.
#
# Options:
#   --role agent|server|both  what to install (default: agent)
#   --binary PATH             the jejak binary (default: `jejak` beside this script, then
#                             target/pc/jejak, target/release/jejak, or `jejak` on PATH)
#   --root DIR                install into DIR instead of / (a throwaway root for tests or
#                             an image being built): the user goes into DIR/etc/passwd and
#                             DIR/etc/group, units are enabled by symlink, systemctl and
#                             useradd are never run and nothing outside DIR is touched
#   --no-chown                with --root only: do not change owners (for an unprivileged
#                             build of an image; the owners to set are in DIR/etc/passwd)
#   --checkin-url URL         the page the autostart entry opens (default below)
#   -h, --help                this text
#
# The agent's unit is enabled but started only once the PC is set up (agent.toml names
# the library and the PC); the script then says what to run.
set -euo pipefail

# The check-in page the agent serves on this PC, at the agent's checkin_port (default
# 7878). A checkin_port already set in /etc/jejak/agent.toml wins over this default (0
# turns the page off, and with it the autostart entry); --checkin-url wins over both.
CHECKIN_URL="http://127.0.0.1:7878/"
CHECKIN_URL_GIVEN=0

SERVICE_USER="jejak"
BIN_PATH="/usr/local/bin/jejak"
ADMIN_PATH="/usr/local/sbin/jejak-admin"
CONFIG_DIR="/etc/jejak"
AGENT_DATA="/var/lib/jejak"
SERVER_DATA="/var/lib/jejak-server"
UNIT_DIR="/etc/systemd/system"
AUTOSTART="/etc/xdg/autostart/jejak-checkin.desktop"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() {
    sed -n '2,32p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

die() {
    echo "install-linux.sh: $*" >&2
    exit 2
}

say() {
    echo "install-linux.sh: $*" >&2
}

ROOT="/"
ROLE="agent"
BINARY=""
NO_CHOWN=0
while [ $# -gt 0 ]; do
    case "$1" in
        --root)
            [ $# -ge 2 ] || die "--root needs a directory"
            ROOT="$2"
            shift 2
            ;;
        --binary)
            [ $# -ge 2 ] || die "--binary needs a path"
            BINARY="$2"
            shift 2
            ;;
        --role)
            [ $# -ge 2 ] || die "--role needs agent, server or both"
            ROLE="$2"
            shift 2
            ;;
        --checkin-url)
            [ $# -ge 2 ] || die "--checkin-url needs a URL"
            CHECKIN_URL="$2"
            CHECKIN_URL_GIVEN=1
            shift 2
            ;;
        --no-chown)
            NO_CHOWN=1
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done

case "$ROLE" in
    agent | server | both) ;;
    *) die "--role must be agent, server or both, not '$ROLE'" ;;
esac
want_agent() { [ "$ROLE" = agent ] || [ "$ROLE" = both ]; }
want_server() { [ "$ROLE" = server ] || [ "$ROLE" = both ]; }

if [ "$ROOT" != "/" ]; then
    [ -d "$ROOT" ] || die "--root $ROOT is not a directory"
    ROOT="$(cd "$ROOT" && pwd)"
fi
if [ "$NO_CHOWN" = 1 ] && [ "$ROOT" = "/" ]; then
    die "--no-chown is only for --root: a real install must give the data to the service's user"
fi
if [ "$NO_CHOWN" = 0 ] && [ "$(id -u)" -ne 0 ]; then
    die "run as root (sudo), or use --root DIR --no-chown for an unprivileged build"
fi

# A path on the target system, as seen from here.
at() {
    if [ "$ROOT" = "/" ]; then
        printf '%s' "$1"
    else
        printf '%s%s' "$ROOT" "$1"
    fi
}

if [ -z "$BINARY" ]; then
    for candidate in "$SCRIPT_DIR/jejak" "$SCRIPT_DIR/../target/pc/jejak" \
        "$SCRIPT_DIR/../target/release/jejak"; do
        if [ -x "$candidate" ]; then
            BINARY="$candidate"
            break
        fi
    done
fi
if [ -z "$BINARY" ]; then
    BINARY="$(command -v jejak || true)"
fi
[ -n "$BINARY" ] || die "no jejak binary found; build one (cargo build --profile pc -p jejak-cli --no-default-features) and pass --binary PATH"
[ -x "$BINARY" ] || die "--binary $BINARY is not an executable file"

# --- the service's user ------------------------------------------------------------

# The lowest id from 100 to 999 that no user and no group of the target uses, so that
# the user and its group share one number.
free_system_id() {
    local passwd="$1" group="$2" id
    for ((id = 100; id < 1000; id++)); do
        if ! cut -d: -f3 "$passwd" "$group" | grep -qx "$id"; then
            echo "$id"
            return 0
        fi
    done
    die "no free system id between 100 and 999 in $passwd"
}

ensure_user() {
    if [ "$ROOT" = "/" ]; then
        if ! getent passwd "$SERVICE_USER" > /dev/null; then
            useradd --system --user-group --home-dir "$AGENT_DATA" --no-create-home \
                --shell /usr/sbin/nologin --comment "Jejak service" "$SERVICE_USER"
            say "created the system user $SERVICE_USER"
        fi
        USER_UID="$(id -u "$SERVICE_USER")"
        USER_GID="$(id -g "$SERVICE_USER")"
        return 0
    fi
    # In a throwaway root the entries are written into the root's own copies: useradd
    # --root would chroot and needs the target's PAM and NSS files, which a bare
    # directory does not have.
    local passwd group shadow
    passwd="$(at /etc/passwd)"
    group="$(at /etc/group)"
    shadow="$(at /etc/shadow)"
    mkdir -p "$(at /etc)"
    [ -f "$passwd" ] || printf 'root:x:0:0:root:/root:/bin/sh\n' > "$passwd"
    [ -f "$group" ] || printf 'root:x:0:\n' > "$group"
    if ! grep -q "^$SERVICE_USER:" "$passwd"; then
        local id gid
        id="$(free_system_id "$passwd" "$group")"
        gid="$(awk -F: -v n="$SERVICE_USER" '$1 == n { print $3 }' "$group")"
        if [ -z "$gid" ]; then
            gid="$id"
            printf '%s:x:%s:\n' "$SERVICE_USER" "$gid" >> "$group"
        fi
        printf '%s:x:%s:%s:Jejak service:%s:/usr/sbin/nologin\n' \
            "$SERVICE_USER" "$id" "$gid" "$AGENT_DATA" >> "$passwd"
        if [ -f "$shadow" ]; then
            printf '%s:!:::::::\n' "$SERVICE_USER" >> "$shadow"
        fi
        say "added the system user $SERVICE_USER to $passwd"
    elif ! grep -q "^$SERVICE_USER:" "$group"; then
        printf '%s:x:%s:\n' "$SERVICE_USER" \
            "$(awk -F: -v n="$SERVICE_USER" '$1 == n { print $4 }' "$passwd")" >> "$group"
    fi
    USER_UID="$(awk -F: -v n="$SERVICE_USER" '$1 == n { print $3 }' "$passwd")"
    USER_GID="$(awk -F: -v n="$SERVICE_USER" '$1 == n { print $4 }' "$passwd")"
}

# Owners by number: in a throwaway root the host may have no such user, or another one
# under that name.
own() {
    local owner="$1"
    shift
    [ "$NO_CHOWN" = 1 ] && return 0
    local uid gid
    case "$owner" in
        root:root) uid=0 gid=0 ;;
        root:jejak) uid=0 gid="$USER_GID" ;;
        jejak:jejak) uid="$USER_UID" gid="$USER_GID" ;;
        *) die "internal: unknown owner $owner" ;;
    esac
    chown "$uid:$gid" "$@"
}

# Writes a file only when its content differs, then sets owner and mode; the new content
# is written beside it and renamed, so a reader never sees half a file.
put_file() {
    local path="$1" mode="$2" owner="$3" content="$4"
    local target
    target="$(at "$path")"
    mkdir -p "$(dirname "$target")"
    if [ ! -f "$target" ] || [ "$(cat "$target")" != "$content" ]; then
        printf '%s\n' "$content" > "$target.new"
        mv -f "$target.new" "$target"
    fi
    chmod "$mode" "$target"
    own "$owner" "$target"
}

# A directory with an exact owner and mode.
put_dir() {
    local path="$1" mode="$2" owner="$3"
    local target
    target="$(at "$path")"
    mkdir -p "$target"
    chmod "$mode" "$target"
    own "$owner" "$target"
}

# --- what gets installed -----------------------------------------------------------

agent_unit() {
    cat << EOF
# Installed by Jejak's scripts/install-linux.sh; scripts/uninstall-linux.sh removes it.
[Unit]
Description=Jejak agent: catatan penggunaan komputer perpustakaan desa (village library PC use log)
# The agent records offline; it needs only its disk, not the network.
After=local-fs.target time-sync.target
# A PC left alone for months must keep recording: never stop restarting.
StartLimitIntervalSec=0

[Service]
Type=simple
User=$SERVICE_USER
Group=$SERVICE_USER
Environment=JEJAK_CONFIG=$CONFIG_DIR/agent.toml
ExecStart=$BIN_PATH --data-dir $AGENT_DATA agent
Restart=on-failure
RestartSec=5
# Exit 2 is a configuration the agent refuses (or a PC not yet set up with jejak init):
# restarting cannot fix it, so it is left for jejak doctor to explain.
RestartPreventExitStatus=2
# SIGTERM closes the open session as a shutdown; give it time to commit.
KillSignal=SIGTERM
TimeoutStopSec=30
# The check-in page and the sync hold a few sockets; the default soft limit (1,024) is
# enough, this leaves room and matches the server's unit.
LimitNOFILE=65536
UMask=0077
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=$AGENT_DATA
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
SystemCallArchitectures=native
CapabilityBoundingSet=

[Install]
WantedBy=multi-user.target
EOF
}

server_unit() {
    cat << EOF
# Installed by Jejak's scripts/install-linux.sh; scripts/uninstall-linux.sh removes it.
[Unit]
Description=Jejak district server (server kabupaten)
After=network-online.target
Wants=network-online.target
StartLimitIntervalSec=0

[Service]
Type=simple
User=$SERVICE_USER
Group=$SERVICE_USER
# JEJAK_DATABASE and JEJAK_LISTEN.
EnvironmentFile=$CONFIG_DIR/server.env
ExecStart=$BIN_PATH server run --listen \${JEJAK_LISTEN}
Restart=on-failure
RestartSec=5
RestartPreventExitStatus=2
# SIGTERM stops accepting at once and gives requests in flight --shutdown-grace (10 s)
# to finish, well inside this.
TimeoutStopSec=30
# Every connection is a file descriptor: far above the server's --max-connections
# (1,024), so a burst of PCs meets the server's own 503, never "too many open files".
LimitNOFILE=65536
UMask=0077
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=$SERVER_DATA
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
SystemCallArchitectures=native
CapabilityBoundingSet=

[Install]
WantedBy=multi-user.target
EOF
}

server_env() {
    cat << EOF
# The district server's settings, read by jejak-server.service (and by jejak-admin).
JEJAK_DATABASE=sqlite:$SERVER_DATA/jejak-server.db
# Where the server listens; the village PCs must reach it (put TLS in front of it).
JEJAK_LISTEN=0.0.0.0:8080
EOF
}

admin_wrapper() {
    cat << EOF
#!/bin/sh
# Installed by Jejak's scripts/install-linux.sh. Runs jejak as the service's user with
# the service's data and configuration, so that what it writes stays the service's:
#   sudo jejak-admin init --library 3302012001 --pc pc-01 --server URL --token TOKEN
#   sudo jejak-admin status | doctor | sync | session list
set -eu
# Files jejak writes are the service user's and its group's only.
umask 027
JEJAK_DATA_DIR=$AGENT_DATA
JEJAK_CONFIG=$CONFIG_DIR/agent.toml
export JEJAK_DATA_DIR JEJAK_CONFIG
if [ -r $CONFIG_DIR/server.env ]; then
    set -a
    . $CONFIG_DIR/server.env
    set +a
fi
if [ "\$(id -un)" = $SERVICE_USER ]; then
    exec $BIN_PATH "\$@"
fi
if [ "\$(id -u)" -ne 0 ]; then
    echo "jejak-admin: jalankan dengan sudo / run with sudo: sudo jejak-admin \$*" >&2
    exit 1
fi
exec runuser -u $SERVICE_USER -- $BIN_PATH "\$@"
EOF
}

autostart_entry() {
    cat << EOF
[Desktop Entry]
Type=Application
Name=Jejak: daftar pengunjung
Name[en]=Jejak: check-in
Comment=Membuka halaman daftar pengunjung komputer perpustakaan
Comment[en]=Opens this library PC's check-in page
Exec=xdg-open $CHECKIN_URL
Terminal=false
NoDisplay=true
X-GNOME-Autostart-enabled=true
EOF
}

install_binary() {
    local target
    target="$(at "$BIN_PATH")"
    mkdir -p "$(dirname "$target")"
    # Copied beside and renamed: a running agent keeps its old file, and a copy that is
    # cut short never replaces a working binary.
    if [ ! -f "$target" ] || ! cmp -s "$BINARY" "$target"; then
        cp "$BINARY" "$target.new"
        chmod 0755 "$target.new"
        mv -f "$target.new" "$target"
    fi
    chmod 0755 "$target"
    own root:root "$target"
}

# Enables a unit for multi-user.target the way `systemctl enable` would.
enable_unit() {
    local unit="$1"
    if [ "$ROOT" = "/" ] && [ -d /run/systemd/system ]; then
        systemctl enable "$unit" > /dev/null 2>&1 || systemctl enable "$unit"
        return 0
    fi
    local wants
    wants="$(at "$UNIT_DIR/multi-user.target.wants")"
    mkdir -p "$wants"
    ln -sfn "$UNIT_DIR/$unit" "$wants/$unit"
}

agent_config() {
    local example="$SCRIPT_DIR/../config/agent.example.toml"
    local target
    target="$(at "$CONFIG_DIR/agent.toml")"
    # The PC's setup (library, PC, server) lives here once jejak init has run: keep it.
    if [ ! -f "$target" ]; then
        if [ -f "$example" ]; then
            cp "$example" "$target.new"
        else
            printf '# Jejak agent configuration; set up with: sudo jejak-admin init --library KODE --pc pc-01\ntimezone = "Asia/Jakarta"\n' > "$target.new"
        fi
        mv -f "$target.new" "$target"
    fi
    chmod 0640 "$target"
    own jejak:jejak "$target"
    if [ -f "$example" ]; then
        put_file "$CONFIG_DIR/agent.example.toml" 0644 root:root "$(cat "$example")"
    fi
}

# --- the run -----------------------------------------------------------------------

ensure_user
install_binary
put_file "$ADMIN_PATH" 0755 root:root "$(admin_wrapper)"
# jejak init and jejak enroll, run as the service's user by jejak-admin, rewrite
# agent.toml here; nobody else may list or read the directory.
put_dir "$CONFIG_DIR" 0770 root:jejak

if want_agent; then
    agent_config
    put_dir "$AGENT_DATA" 0700 jejak:jejak
    put_file "$UNIT_DIR/jejak-agent.service" 0644 root:root "$(agent_unit)"
    port="$(sed -n 's/^[[:space:]]*checkin_port[[:space:]]*=[[:space:]]*\([0-9][0-9]*\).*/\1/p' \
        "$(at "$CONFIG_DIR/agent.toml")" | tail -n 1)"
    if [ "$CHECKIN_URL_GIVEN" = 0 ] && [ -n "$port" ]; then
        CHECKIN_URL="http://127.0.0.1:$port/"
    fi
    if [ "$CHECKIN_URL_GIVEN" = 0 ] && [ "$port" = 0 ]; then
        rm -f "$(at "$AUTOSTART")"
        say "checkin_port = 0: the check-in page is off, so no autostart entry"
    else
        put_file "$AUTOSTART" 0644 root:root "$(autostart_entry)"
    fi
    enable_unit jejak-agent.service
fi
if want_server; then
    if [ ! -f "$(at "$CONFIG_DIR/server.env")" ]; then
        put_file "$CONFIG_DIR/server.env" 0640 root:jejak "$(server_env)"
    else
        chmod 0640 "$(at "$CONFIG_DIR/server.env")"
        own root:jejak "$(at "$CONFIG_DIR/server.env")"
    fi
    put_dir "$SERVER_DATA" 0700 jejak:jejak
    put_file "$UNIT_DIR/jejak-server.service" 0644 root:root "$(server_unit)"
    enable_unit jejak-server.service
fi

if [ "$ROOT" = "/" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    if want_server; then
        systemctl restart jejak-server.service
    fi
    if want_agent; then
        if grep -Eq '^[[:space:]]*library[[:space:]]*=' "$CONFIG_DIR/agent.toml" \
            && grep -Eq '^[[:space:]]*pc[[:space:]]*=' "$CONFIG_DIR/agent.toml"; then
            systemctl restart jejak-agent.service
        else
            say "next: sudo jejak-admin init --library KODE --pc pc-01 --server URL --token TOKEN"
            say "then: sudo systemctl start jejak-agent"
        fi
    fi
fi
say "installed ($ROLE) into $ROOT"
