#!/usr/bin/env bash
# Jejak benchmark: builds in release mode and prints one JSON line per figure on stdout,
#   {"name": "...", "value": 12.3, "unit": "...", "goal": "<= 8", "ok": true}
# Everything else (build output, details, warnings) goes to stderr.
#
#   scripts/bench.sh           the full run, for the figures (about 4 minutes after the build,
#                              and the PostgreSQL section's 6.5 million sessions on top)
#   scripts/bench.sh --quick   a small run (about 10 s after the build) that CI uses to keep
#                              this script working
#
# The script exits non-zero only when it cannot measure (a build failure, a crash, an
# agent that does not stop cleanly), never because a goal is missed: read "ok".
#
# BENCH_TMPDIR chooses where the stores and the fsync probe are written (default
# $TMPDIR or /tmp). It must be on the disk being judged: a tmpfs makes fsync free.
#
# Adding a figure: write a section function that calls `check NAME VALUE UNIT GOAL`
# (or `emit` directly) and call it from the list at the bottom.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

QUICK=0
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=1 ;;
        -h | --help)
            sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "bench: unknown argument '$arg' (use --quick or --help)" >&2
            exit 2
            ;;
    esac
done

# Sizes of the two runs.
if [[ $QUICK == 1 ]]; then
    SESSION_OPS=200
    VISIT_TAPS=200
    FSYNC_SAMPLES=200
    AGENT_SETTLE_SECS=2
    AGENT_WINDOW_SECS=5
else
    SESSION_OPS=2000
    VISIT_TAPS=500
    FSYNC_SAMPLES=200
    AGENT_SETTLE_SECS=5
    AGENT_WINDOW_SECS=60
fi

log() { printf 'bench: %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

# ---------------------------------------------------------------- output helpers

# meets VALUE GOAL -> prints true or false. GOAL is "<= 8", "< 0.2", ">= 0.6", "> 1",
# "== 0", or "info" (no goal: always true).
meets() {
    awk -v v="$1" -v goal="$2" 'BEGIN {
        n = split(goal, p, " ")
        if (goal == "info") { print "true"; exit }
        if (n != 2 || p[2] !~ /^-?[0-9.]+$/) { print "bad goal: " goal > "/dev/stderr"; exit 1 }
        t = p[2] + 0; v = v + 0
        if      (p[1] == "<")  r = (v <  t)
        else if (p[1] == "<=") r = (v <= t)
        else if (p[1] == ">")  r = (v >  t)
        else if (p[1] == ">=") r = (v >= t)
        else if (p[1] == "==") r = (v == t)
        else { print "bad goal: " goal > "/dev/stderr"; exit 1 }
        print (r ? "true" : "false")
    }'
}

# emit NAME VALUE UNIT GOAL OK: prints one figure as one JSON line on stdout.
emit() {
    local name="$1" value="$2" unit="$3" goal="$4" ok="$5" s
    for s in "$name" "$unit" "$goal"; do
        [[ $s != *[\"\\]* ]] || die "emit: '$s' would need JSON escaping"
    done
    [[ $ok == true || $ok == false ]] || die "emit: ok must be true or false, got '$ok'"
    # At most 4 decimals, no trailing zeros; refuse anything that is not a number.
    value="$(awk -v v="$value" 'BEGIN {
        if (v !~ /^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$/) exit 1
        s = sprintf("%.4f", v); sub(/0+$/, "", s); sub(/\.$/, "", s)
        if (s == "-0") s = "0"
        print s
    }')" || die "emit: $name has no numeric value ('$2')"
    printf '{"name": "%s", "value": %s, "unit": "%s", "goal": "%s", "ok": %s}\n' \
        "$name" "$value" "$unit" "$goal" "$ok"
}

# check NAME VALUE UNIT GOAL: emit with "ok" worked out from the goal.
check() {
    local ok
    ok="$(meets "$2" "$4")" || die "check: bad goal for $1: '$4'"
    emit "$1" "$2" "$3" "$4" "$ok"
    [[ $ok == true ]] || log "goal missed: $1 = $2 $3 (goal $4)"
}

# ---------------------------------------------------------------- workspace, cleanup

WORK="$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/jejak-bench.XXXXXX")"
AGENT_PID=""
SERVER_PID=""

cleanup() {
    local rc=$?
    set +e
    for pid in $AGENT_PID $SERVER_PID; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null
            for _ in $(seq 1 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -KILL "$pid" 2>/dev/null
            wait "$pid" 2>/dev/null
        fi
    done
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

FS_TYPE="$(stat -f -c %T "$WORK" 2>/dev/null || echo unknown)"
log "mode: $([[ $QUICK == 1 ]] && echo quick || echo full); work dir $WORK ($FS_TYPE)"
if [[ $FS_TYPE == tmpfs || $FS_TYPE == ramfs ]]; then
    log "WARNING: $WORK is in memory; fsync costs nothing there. Set BENCH_TMPDIR to a directory on disk."
fi

# ---------------------------------------------------------------- build

log "building: the PC build (profile pc, no district server) and the release build"
# The agent and the session writes are measured as a village PC runs them: the `pc`
# profile without the district server's code (see Cargo.toml).
cargo build --profile pc -p jejak-cli --no-default-features >&2
cargo build --profile pc -p jejak-agent --examples >&2
# The district server, the sync and the demo, as the district office runs them.
cargo build --release -p jejak-cli -p jejak-server -p jejak-sync --bins --examples >&2
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
JEJAK="$TARGET_DIR/pc/jejak"
JEJAK_DISTRICT="$TARGET_DIR/release/jejak"
BENCH_SESSION_WRITE="$TARGET_DIR/pc/examples/bench_session_write"
BENCH_VISIT_ENTRY="$TARGET_DIR/pc/examples/bench_visit_entry"
BENCH_INGEST="$TARGET_DIR/release/examples/ingest_bench"
BENCH_SYNC="$TARGET_DIR/release/examples/bench_sync"
BENCH_REPORT="$TARGET_DIR/release/examples/report_bench"
BENCH_PG="$TARGET_DIR/release/examples/pg_bench"
BENCH_RESTORE="$TARGET_DIR/release/examples/restore_bench"
for binary in "$JEJAK" "$JEJAK_DISTRICT" "$BENCH_SESSION_WRITE" "$BENCH_VISIT_ENTRY" "$BENCH_INGEST" "$BENCH_SYNC" "$BENCH_REPORT" "$BENCH_PG" "$BENCH_RESTORE"; do
    [[ -x $binary ]] || die "no binary at $binary"
done

# ---------------------------------------------------------------- sections

# Durable session start/end through the store the CLI uses, and the raw fsync of the
# same file system measured in the same run (the ratio is what carries between disks).
section_session_write() {
    log "session writes: $SESSION_OPS timed operations, $FSYNC_SAMPLES raw fsyncs"
    local out name value
    out="$("$BENCH_SESSION_WRITE" --dir "$WORK/session-write" \
        --ops "$SESSION_OPS" --fsync-samples "$FSYNC_SAMPLES")" ||
        die "bench_session_write failed"
    declare -A fig=()
    while read -r name value; do
        if [[ -n $name ]]; then fig[$name]="$value"; fi
    done <<<"$out"
    for name in session_write_p50_ms session_write_p99_ms fsync_ms session_write_p50_vs_fsync; do
        [[ -n ${fig[$name]:-} ]] || die "bench_session_write did not report $name"
    done
    # Library PCs have slow disks (5-20 ms per fsync); a start or an end is one commit.
    check session_write_p50_ms "${fig[session_write_p50_ms]}" ms "<= 10"
    check session_write_p99_ms "${fig[session_write_p99_ms]}" ms "<= 20"
    emit fsync_ms "${fig[fsync_ms]}" ms info true
    # One commit is one fsync of the WAL plus a few pages and the SQL work.
    check session_write_p50_vs_fsync "${fig[session_write_p50_vs_fsync]}" ratio "<= 3"
}

# One tap of the visitor book on the librarian screen to stored: the PC build's page
# on 127.0.0.1 with a signed-in librarian, the real POST, answered after the commit.
section_visit_entry() {
    log "visitor book: $VISIT_TAPS taps on the librarian screen"
    local out
    out="$("$BENCH_VISIT_ENTRY" --dir "$WORK" --taps "$VISIT_TAPS")" ||
        die "bench_visit_entry failed"
    relay_figures <<<"$out"
}

# A tiny server on 127.0.0.1 that answers GET /healthz as a Jejak server does, so that
# the agent's connectivity probe does its real work. Writes its port to $1 and one
# line per request to $2.
HEALTHZ_SERVER_PY='
import http.server, os, sys

BODY = b"{\"status\":\"ok\",\"service\":\"jejak-server\"}"
port_file, hits_file = sys.argv[1], sys.argv[2]

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(hits_file, "a") as f:
            f.write(self.path + "\n")
        if self.path.split("?")[0] == "/healthz":
            status, body, kind = 200, BODY, "application/json"
        else:
            status, body, kind = 404, b"not found\n", "text/plain"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        sys.stderr.write("healthz: " + (fmt % args) + "\n")

server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
'

# Fields 14 and 15 of /proc/PID/stat (utime + stime, in clock ticks). The command name
# (field 2) is cut off first, as it may contain spaces.
cpu_ticks() {
    awk '{ sub(/^.*\) /, ""); split($0, f, " "); print f[12] + f[13] }' "/proc/$1/stat"
}

# CPU time in nanoseconds from /proc/PID/schedstat (field 1), or empty when the kernel
# does not provide it. The same time as utime + stime, without the 10 ms tick rounding
# that makes a 60 s window at rest read 0 or 0.017 %.
cpu_ns() {
    [[ -r /proc/$1/schedstat ]] && awk '{ print $1 }' "/proc/$1/schedstat" || true
}

status_kib() { awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status"; }

now_secs() { date +%s.%N; }

# sleep that a signal interrupts at once (bash runs traps only between commands, but
# `wait` returns when a trapped signal arrives).
pause() {
    sleep "$1" &
    wait $!
}

# The real release agent at rest, with its default settings (heartbeat 30 s, probe 60 s).
section_agent_at_rest() {
    local data="$WORK/agent" port_file="$WORK/healthz.port" hits="$WORK/healthz.hits"
    local agent_log="$WORK/agent.log" port="" i
    : >"$hits"

    python3 -c "$HEALTHZ_SERVER_PY" "$port_file" "$hits" 2>"$WORK/healthz.log" &
    SERVER_PID=$!
    for i in $(seq 1 100); do
        [[ -s $port_file ]] && break
        kill -0 "$SERVER_PID" 2>/dev/null || die "the healthz server died: $(cat "$WORK/healthz.log")"
        sleep 0.1
    done
    port="$(cat "$port_file" 2>/dev/null)" || die "the healthz server did not report its port"
    log "healthz server on http://127.0.0.1:$port (pid $SERVER_PID)"

    "$JEJAK" --data-dir "$data" init --library bench --pc pc-01 >&2

    # Only the server comes from the environment; every other setting is the default.
    (
        while read -r var; do
            if [[ $var == JEJAK_* ]]; then unset "$var"; fi
        done < <(compgen -e)
        export JEJAK_SERVER="http://127.0.0.1:$port"
        exec "$JEJAK" --data-dir "$data" agent
    ) 2>"$agent_log" &
    AGENT_PID=$!
    for i in $(seq 1 150); do
        grep -q "agent started" "$agent_log" && break
        kill -0 "$AGENT_PID" 2>/dev/null || die "the agent exited at start: $(cat "$agent_log")"
        sleep 0.1
    done
    grep -q "agent started" "$agent_log" || die "the agent did not start: $(cat "$agent_log")"
    [[ "$(readlink -f "/proc/$AGENT_PID/exe")" == "$(readlink -f "$JEJAK")" ]] ||
        die "pid $AGENT_PID is not $JEJAK"
    log "agent pid $AGENT_PID started; settling ${AGENT_SETTLE_SECS} s, then measuring ${AGENT_WINDOW_SECS} s"

    pause "$AGENT_SETTLE_SECS"
    local clk_tck ticks0 ticks1 ns0 ns1 t0 t1 rss_kib
    clk_tck="$(getconf CLK_TCK)"
    ns0="$(cpu_ns "$AGENT_PID")"
    ticks0="$(cpu_ticks "$AGENT_PID")"
    t0="$(now_secs)"
    pause "$AGENT_WINDOW_SECS"
    ns1="$(cpu_ns "$AGENT_PID")"
    ticks1="$(cpu_ticks "$AGENT_PID")"
    t1="$(now_secs)"
    rss_kib="$(status_kib "$AGENT_PID" VmRSS)"
    log "agent: VmRSS $rss_kib KiB, VmHWM $(status_kib "$AGENT_PID" VmHWM) KiB," \
        "RssAnon $(status_kib "$AGENT_PID" RssAnon) KiB, RssFile $(status_kib "$AGENT_PID" RssFile) KiB," \
        "threads $(awk '$1 == "Threads:" { print $2 }' "/proc/$AGENT_PID/status")," \
        "cpu $((ticks1 - ticks0)) ticks at $clk_tck/s, ${ns0:+$(((ns1 - ns0) / 1000)) us by schedstat,}" \
        "over $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"

    # Stop it as the service manager does, and check that it stops cleanly.
    kill -TERM "$AGENT_PID"
    local rc=0
    for i in $(seq 1 150); do
        kill -0 "$AGENT_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$AGENT_PID" 2>/dev/null && die "the agent did not stop within 15 s of SIGTERM"
    wait "$AGENT_PID" || rc=$?
    AGENT_PID=""
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""

    local probes
    probes="$(grep -c '^/healthz' "$hits" || true)"
    log "healthz requests served: $probes"
    grep -q "internet_up" "$agent_log" ||
        log "WARNING: the agent never recorded internet_up; the probe was not exercised"

    local rss_mb cpu_pct
    rss_mb="$(awk -v k="$rss_kib" 'BEGIN { printf "%.4f", k / 1024 }')"
    # CPU % of one core = CPU seconds used / seconds elapsed * 100, from schedstat when
    # the kernel has it, else from utime + stime ticks.
    local cpu_secs
    if [[ -n $ns0 && -n $ns1 ]]; then
        cpu_secs="$(awk -v d="$((ns1 - ns0))" 'BEGIN { printf "%.9f", d / 1e9 }')"
    else
        cpu_secs="$(awk -v d="$((ticks1 - ticks0))" -v hz="$clk_tck" 'BEGIN { printf "%.9f", d / hz }')"
    fi
    cpu_pct="$(awk -v c="$cpu_secs" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.6f", c / (t1 - t0) * 100 }')"
    check agent_rss_mb "$rss_mb" MB "< 8"
    check agent_cpu_pct "$cpu_pct" "% of one core" "< 0.2"

    if [[ $rc != 0 ]]; then
        log "agent log:"
        cat "$agent_log" >&2
        die "the agent exited with status $rc after SIGTERM (expected 0)"
    fi
    log "agent stopped cleanly after SIGTERM"
}

# Re-emits the JSON figure lines an example printed, checking each against its goal.
# Lines whose goal is "info" are passed on as information.
relay_figures() {
    local name value unit goal
    while IFS=$'\t' read -r name value unit goal; do
        [[ -n $name ]] || continue
        if [[ $goal == info ]]; then
            emit "$name" "$value" "$unit" info true
        else
            check "$name" "$value" "$unit" "$goal"
        fi
    done < <(python3 -c '
import json, sys
for line in sys.stdin:
    line = line.strip()
    if line.startswith("{"):
        f = json.loads(line)
        print("\t".join([f["name"], str(f["value"]), f["unit"], f["goal"]]))
')
}

# Ingest over HTTP on loopback against a bare rusqlite bulk insert of the same rows in
# the same run, and the server's bytes on disk per session.
section_ingest() {
    log "server ingest (this takes a while in the full run)"
    local out
    out="$("$BENCH_INGEST" $([[ $QUICK == 1 ]] && echo --quick))" || die "ingest_bench failed"
    relay_figures <<<"$out"
}

# The district matrix and a village report over a stress district's year (350 libraries,
# about 6.5 million sessions ingested through the real store first: about two minutes).
section_reports() {
    log "reports over $([[ $QUICK == 1 ]] && echo "a small month" || echo "6.5 million sessions") (building the store takes a while in the full run)"
    local out
    out="$("$BENCH_REPORT" $([[ $QUICK == 1 ]] && echo --quick))" || die "report_bench failed"
    relay_figures <<<"$out"
}

# Bytes on the wire per session, and a 5,400-record backlog through a 64 kbit/s link
# with drops. The demo's month gives the per-session cost of small monthly batches.
section_sync() {
    log "sync: wire bytes and the 64 kbit/s backlog"
    "$JEJAK_DISTRICT" demo --out "$WORK/demo" >/dev/null 2>&1 || die "jejak demo failed"
    local out
    out="$("$BENCH_SYNC" --demo "$WORK/demo" $([[ $QUICK == 1 ]] && echo --quick))" || die "bench_sync failed"
    relay_figures <<<"$out"
}

# The PostgreSQL backend: ingest over HTTP against COPY of the same rows into the same
# database in the same run, and the district matrix and the IPLM sheet over a stress
# district's year. The section starts its own throwaway cluster
# (scripts/pg-test-cluster.sh, its state in the work dir so that a cluster the caller
# runs is left alone) and stops it after.
section_postgres() {
    log "PostgreSQL: ingest against COPY, the district matrix and the IPLM sheet (the full run stores 6.5 million sessions first)"
    local state="$WORK/pg-cluster.state" line out
    # The report section's store (hundreds of MB) is still being written back to the
    # disk: flushed first, it does not slow this section's commits.
    sync
    line="$(JEJAK_PG_STATE="$state" bash scripts/pg-test-cluster.sh start | tail -n 1)" ||
        die "could not start a PostgreSQL cluster"
    out="$(env "$line" "$BENCH_PG" $([[ $QUICK == 1 ]] && echo --quick))" || {
        JEJAK_PG_STATE="$state" bash scripts/pg-test-cluster.sh stop
        die "pg_bench failed"
    }
    JEJAK_PG_STATE="$state" bash scripts/pg-test-cluster.sh stop
    relay_figures <<<"$out"
}

# The Windows PC build: the size of jejak.exe (PC profile, x86_64-pc-windows-gnu) and,
# under wine, the session write latency (information only: wine is not Windows, and
# its fsync is Linux's). Skipped, with a log line, where the target or wine is missing.
section_windows() {
    if ! rustup target list --installed 2>/dev/null | grep -q '^x86_64-pc-windows-gnu$' ||
        ! command -v x86_64-w64-mingw32-gcc >/dev/null || ! command -v wine >/dev/null; then
        log "windows: SKIPPED (needs the rustup target x86_64-pc-windows-gnu, mingw-w64 and wine)"
        return
    fi
    log "windows: the PC build for x86_64-pc-windows-gnu"
    cargo build --profile pc -p jejak-cli --no-default-features --target x86_64-pc-windows-gnu >&2
    local exe="$TARGET_DIR/x86_64-pc-windows-gnu/pc/jejak.exe"
    [[ -f $exe ]] || die "no Windows binary at $exe"
    check windows_exe_kb "$(($(stat -c %s "$exe") / 1024))" KiB "< 10240"
    if [[ $QUICK == 1 ]]; then
        log "windows: the write latency under wine is measured in the full run only"
        return
    fi
    cargo build --profile pc -p jejak-agent --examples --target x86_64-pc-windows-gnu >&2
    local bench="$TARGET_DIR/x86_64-pc-windows-gnu/pc/examples/bench_session_write.exe" out name value
    out="$(JEJAK_WINE_PREFIX="$WORK/wine-prefix" bash scripts/wine-run.sh "$bench" \
        --dir "$WORK/wine-session-write" --ops "$SESSION_OPS" --fsync-samples "$FSYNC_SAMPLES" |
        tr -d '\r')" || die "bench_session_write.exe failed under wine"
    declare -A fig=()
    while read -r name value; do
        if [[ -n $name ]]; then fig[$name]="$value"; fi
    done <<<"$out"
    for name in session_write_p50_ms session_write_p99_ms; do
        [[ -n ${fig[$name]:-} ]] || die "bench_session_write.exe did not report $name"
        emit "wine_$name" "${fig[$name]}" ms info true
    done
    WINEPREFIX="$WORK/wine-prefix" wineserver -k 2>/dev/null || true
}

# After a restore from a backup 30 days old, a stress district's 1,050 PCs all send again
# what the backup lacks (1,600 records each), each over its own connection, to the real
# `jejak server run` (SQLite); the time until the server holds everything again, and the
# server's peak resident memory. --quick: 60 PCs of 200 records.
section_restore_storm() {
    log "restore storm: $([[ $QUICK == 1 ]] && echo "60 PCs" || echo "1,050 PCs") resend after a restore (preparing the backup takes a while in the full run)"
    local dir="$WORK/restore" quick="" port_file="$WORK/restore/server.log" url="" i out
    [[ $QUICK == 1 ]] && quick="--quick"
    mkdir -p "$dir"
    "$BENCH_RESTORE" prepare "$dir" $quick || die "restore_bench prepare failed"
    # One socket per PC on each side.
    ulimit -n 8192 2>/dev/null || log "WARNING: could not raise the open files limit"
    "$JEJAK_DISTRICT" --lang en server --database "sqlite:$dir/server.db" run --listen 127.0.0.1:0 \
        2>"$port_file" &
    SERVER_PID=$!
    for i in $(seq 1 100); do
        url="$(grep -o 'http://[0-9.:]*' "$port_file" | head -n 1 || true)"
        [[ -n $url ]] && break
        kill -0 "$SERVER_PID" 2>/dev/null || die "the server died: $(cat "$port_file")"
        sleep 0.1
    done
    [[ -n $url ]] || die "the server did not say where it listens"
    out="$("$BENCH_RESTORE" storm "$dir" "$url" $quick)" || die "restore_bench storm failed"
    local hwm_kib
    hwm_kib="$(status_kib "$SERVER_PID" VmHWM)"
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" || true
    SERVER_PID=""
    relay_figures <<<"$out"
    check restore_storm_server_peak_rss_mb "$(awk -v k="$hwm_kib" 'BEGIN { printf "%.1f", k / 1024 }')" MB "< 256"
    rm -rf "$dir"
}

# ---------------------------------------------------------------- run

section_session_write
section_visit_entry
section_agent_at_rest
section_sync
section_ingest
section_reports
section_restore_storm
section_postgres
section_windows
log "done"
