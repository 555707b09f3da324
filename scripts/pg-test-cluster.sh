#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests and the benchmark, made from the server
# binaries on the machine (initdb, pg_ctl, postgres) as an unprivileged user, in a
# temporary directory, on a free port, with its unix socket in that directory and trust
# authentication on loopback only. Nothing of it outlives `stop`.
#
#   scripts/pg-test-cluster.sh start   # prints JEJAK_TEST_POSTGRES=postgres://… (last line)
#   scripts/pg-test-cluster.sh env     # prints the same line for a running cluster
#   scripts/pg-test-cluster.sh stop    # stops it and removes its directory
#   scripts/pg-test-cluster.sh pause   # stops it at once (an outage: pg_ctl -m immediate)
#   scripts/pg-test-cluster.sh resume  # starts a paused cluster again, same port and data
#
# The state file (default /tmp/jejak-pg-test-cluster.state, or $JEJAK_PG_STATE) names the
# running cluster, so that `env` and `stop` find it from another shell.
set -euo pipefail

STATE="${JEJAK_PG_STATE:-/tmp/jejak-pg-test-cluster.state}"
DB_USER="jejak"

find_bin() {
    # Debian keeps the server binaries in /usr/lib/postgresql/<version>/bin; this machine
    # also has them in /usr/local/bin.
    local name="$1" dir
    if command -v "$name" >/dev/null 2>&1; then
        command -v "$name"
        return
    fi
    for dir in /usr/local/bin /usr/lib/postgresql/*/bin; do
        if [ -x "$dir/$name" ]; then
            echo "$dir/$name"
            return
        fi
    done
    echo "pg-test-cluster: '$name' not found (install Debian's postgresql package)" >&2
    exit 1
}

# initdb and postgres refuse to run as root: as root, run them as an unprivileged
# user (the postgres user when the system has one, else `jejak-pgtest`, made here).
run_user() {
    if [ "$(id -u)" != 0 ]; then
        echo ""
    elif id postgres >/dev/null 2>&1; then
        echo postgres
    else
        id jejak-pgtest >/dev/null 2>&1 ||
            useradd --system --no-create-home --shell /usr/sbin/nologin jejak-pgtest
        echo jejak-pgtest
    fi
}

as_user() {
    local user="$1"
    shift
    if [ -z "$user" ]; then
        "$@"
    else
        runuser -u "$user" -- "$@"
    fi
}

free_port() {
    python3 - <<'EOF'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

url_of() {
    echo "postgres://${DB_USER}@127.0.0.1:$1/postgres"
}

start() {
    if [ -f "$STATE" ]; then
        # shellcheck disable=SC1090
        . "$STATE"
        if [ -n "${PGDIR:-}" ] && [ -d "$PGDIR" ] &&
            pg_isready -q -h 127.0.0.1 -p "$PGPORT" 2>/dev/null; then
            echo "pg-test-cluster: already running in $PGDIR" >&2
            echo "JEJAK_TEST_POSTGRES=$(url_of "$PGPORT")"
            return
        fi
        rm -f "$STATE"
    fi
    local initdb pg_ctl user dir port
    initdb="$(find_bin initdb)"
    pg_ctl="$(find_bin pg_ctl)"
    user="$(run_user)"
    dir="$(mktemp -d /tmp/jejak-pg.XXXXXX)"
    # Until the cluster answers, any failure removes what was made.
    trap 'as_user "$user" "$pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$dir"; rm -f "$STATE"' ERR
    [ -z "$user" ] || chown "$user" "$dir"
    chmod 700 "$dir"
    port="$(free_port)"
    as_user "$user" "$initdb" -D "$dir/data" -U "$DB_USER" --auth=trust \
        --encoding=UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        false
    }
    # Loopback and the private socket only; fsync stays on (its default) because the
    # tests check acknowledged-means-committed, not the disk. Enough connections for
    # the tests' parallel databases and the 200-PC concurrency test.
    cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 300
shared_buffers = 128MB
synchronous_commit = on
EOF
    as_user "$user" "$pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null || {
        cat "$dir/server.log" >&2
        false
    }
    local tries=0
    until pg_isready -q -h 127.0.0.1 -p "$port"; do
        tries=$((tries + 1))
        if [ "$tries" -gt 60 ]; then
            echo "pg-test-cluster: the server did not become ready" >&2
            cat "$dir/server.log" >&2
            false
        fi
        sleep 0.5
    done
    psql -q -h 127.0.0.1 -p "$port" -U "$DB_USER" -d postgres -c 'select 1' >/dev/null
    trap - ERR
    printf 'PGDIR=%q\nPGPORT=%q\nPGUSER_RUN=%q\n' "$dir" "$port" "$user" >"$STATE"
    echo "pg-test-cluster: PostgreSQL running in $dir on port $port" >&2
    echo "JEJAK_TEST_POSTGRES=$(url_of "$port")"
}

stop() {
    [ -f "$STATE" ] || {
        echo "pg-test-cluster: no cluster running" >&2
        return 0
    }
    # shellcheck disable=SC1090
    . "$STATE"
    local pg_ctl
    pg_ctl="$(find_bin pg_ctl)"
    if [ -d "$PGDIR/data" ]; then
        as_user "$PGUSER_RUN" "$pg_ctl" -D "$PGDIR/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
            as_user "$PGUSER_RUN" "$pg_ctl" -D "$PGDIR/data" -m immediate stop >/dev/null 2>&1 ||
            true
    fi
    rm -rf "$PGDIR"
    rm -f "$STATE"
    echo "pg-test-cluster: stopped" >&2
}

# An outage for the tests: the server stops at once, as a crash would, and comes back
# with its data on the same port.
pause() {
    # shellcheck disable=SC1090
    . "$STATE"
    as_user "$PGUSER_RUN" "$(find_bin pg_ctl)" -D "$PGDIR/data" -m immediate stop >/dev/null
}

resume() {
    # shellcheck disable=SC1090
    . "$STATE"
    as_user "$PGUSER_RUN" "$(find_bin pg_ctl)" -D "$PGDIR/data" -l "$PGDIR/server.log" -w -t 60 start >/dev/null
}

env_line() {
    [ -f "$STATE" ] || {
        echo "pg-test-cluster: no cluster running" >&2
        exit 1
    }
    # shellcheck disable=SC1090
    . "$STATE"
    echo "JEJAK_TEST_POSTGRES=$(url_of "$PGPORT")"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
pause) pause ;;
resume) resume ;;
env) env_line ;;
*)
    echo "usage: $0 start|stop|env|pause|resume" >&2
    exit 2
    ;;
esac
