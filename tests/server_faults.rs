//! The district server on a bad day, with the real `jejak server run`: a full disk under
//! its SQLite file, a PostgreSQL server that goes down and comes back, a database host
//! that accepts connections and never answers, and a lock held on the sessions table.
//! In each the server says so (`/healthz` 503, a batch 503 with `Retry-After`, a clear
//! error at start), stores nothing it did not acknowledge, and recovers by itself.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use jejak_domain::{LibraryCode, PcCode, WireBatch};
use jejak_testkit::postgres::TestDatabase;
use support::{
    ChildGuard, RawAnswer, bare_command, poll_until, raw_get, raw_request, run_command,
    spawn_district,
};

/// The PC's change log as batches of 5 records (30 records in all).
fn batches() -> Vec<WireBatch> {
    let pc = jejak_testkit::sim::SimPc {
        library: LibraryCode::parse("penuh").unwrap(),
        pc: PcCode::parse("pc-01").unwrap(),
        epoch: uuid::Uuid::new_v4(),
        clock_error_ms: 0,
    };
    let first_day: DateTime<Utc> = Utc::now() - chrono::Duration::days(12);
    let first_day = first_day
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let log = jejak_testkit::sim::simulate(&pc, 20, first_day, 3);
    jejak_testkit::sim::batches(&pc, &log, 5, Utc::now() - chrono::Duration::seconds(5))
}

/// Posts a batch as plain JSON.
fn post(addr: &str, token: &str, batch: &WireBatch) -> RawAnswer {
    let body = serde_json::to_vec(batch).unwrap();
    let mut request = format!(
        "POST /api/v1/batches HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    raw_request(addr, &request, Duration::from_secs(60)).unwrap()
}

fn health(addr: &str) -> RawAnswer {
    raw_get(addr, "/healthz", Duration::from_secs(20)).unwrap()
}

/// Waits for `/healthz` to answer `status`.
fn health_becomes(addr: &str, status: u16, deadline: Duration) -> RawAnswer {
    poll_until(&format!("/healthz to answer {status}"), deadline, || {
        Some(health(addr)).filter(|a| a.status == status)
    })
}

fn assert_store_unavailable(answer: &RawAnswer) {
    assert_eq!(answer.status, 503, "{answer:?}");
    assert!(answer.head.contains("retry-after: 10"), "{answer:?}");
    assert!(
        answer.body.contains("\"type\":\"store-unavailable\""),
        "{answer:?}"
    );
}

// ---------------------------------------------------------------------------------------
// A full disk (SQLite)
// ---------------------------------------------------------------------------------------

/// Runs in a private mount namespace (`unshare --mount --map-root-user`, no root needed):
/// the server's folder is an 8 MiB tmpfs. The test steers it through files in `$OUT`.
const FULL_DISK: &str = r#"
set -u
mount -t tmpfs -o size=8m tmpfs "$D" || { touch "$OUT/no-mount"; exit 0; }
DB="sqlite:$D/server.db"
"$JEJAK" server --database "$DB" add-library penuh --name Penuh > /dev/null || exit 10
"$JEJAK" server --database "$DB" add-device --library penuh --pc pc-01 > "$OUT/token" || exit 11
"$JEJAK" --lang en server --database "$DB" run --listen 127.0.0.1:0 2> "$OUT/server.log" &
SERVER=$!
until [ -e "$OUT/fill" ]; do sleep 0.1; done
head -c 20000000 /dev/zero > "$D/filler" 2> /dev/null
touch "$OUT/filled"
until [ -e "$OUT/free" ]; do sleep 0.1; done
rm -f "$D/filler"
touch "$OUT/freed"
until [ -e "$OUT/stop" ]; do sleep 0.1; done
kill -TERM $SERVER
wait $SERVER
"#;

fn wait_for_file(path: &Path) {
    poll_until(
        &format!("{}", path.display()),
        Duration::from_secs(60),
        || path.exists().then_some(()),
    );
}

#[test]
fn health_reports_a_full_disk_and_the_server_recovers_when_room_is_made() {
    let available = Command::new("unshare")
        .args(["--mount", "--map-root-user", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !available {
        eprintln!("SKIPPED: the full-disk test needs `unshare --mount --map-root-user`");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (data, out) = (work.path().join("data"), work.path().join("out"));
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let mut command = Command::new("unshare");
    // Its own PID namespace too, so that killing `unshare` (the guard does, if the test
    // fails) takes the server in it along.
    command
        .args([
            "--fork",
            "--kill-child",
            "--pid",
            "--mount",
            "--map-root-user",
        ])
        .args(["sh", "-c", FULL_DISK])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .env("JEJAK", support::JEJAK)
        .env("D", &data)
        .env("OUT", &out)
        .env_remove("JEJAK_LANG");
    let mut namespace = ChildGuard::spawn(&mut command);
    let log = out.join("server.log");
    let addr = poll_until("the server's address", Duration::from_secs(60), || {
        if out.join("no-mount").exists() {
            return Some(None);
        }
        let text = std::fs::read_to_string(&log).ok()?;
        let at = text.find("http://")?;
        Some(Some(text[at + 7..].split_whitespace().next()?.to_string()))
    });
    let Some(addr) = addr else {
        eprintln!("SKIPPED: tmpfs could not be mounted in a user namespace here");
        return;
    };
    let token = std::fs::read_to_string(out.join("token"))
        .unwrap()
        .trim()
        .to_string();
    let batches = batches();
    assert_eq!(health(&addr).status, 200);
    assert_eq!(post(&addr, &token, &batches[0]).status, 200);

    std::fs::write(out.join("fill"), "").unwrap();
    wait_for_file(&out.join("filled"));
    let unhealthy = health_becomes(&addr, 503, Duration::from_secs(20));
    assert!(
        unhealthy.body.contains("\"status\":\"unavailable\""),
        "{unhealthy:?}"
    );
    assert!(
        unhealthy.body.contains("\"service\":\"jejak-server\""),
        "{unhealthy:?}"
    );
    assert!(
        unhealthy.body.contains("disk"),
        "the reason is given: {unhealthy:?}"
    );
    assert!(unhealthy.head.contains("retry-after: 10"), "{unhealthy:?}");
    // While the disk is full a batch is either stored (SQLite reuses the WAL's pages)
    // and acknowledged, or refused with 503 and not held: never acknowledged unstored.
    for batch in &batches[1..3] {
        let answer = post(&addr, &token, batch);
        match answer.status {
            200 => assert!(answer.body.contains("\"held_seq\""), "{answer:?}"),
            503 => assert_store_unavailable(&answer),
            409 => assert!(answer.body.contains("seq-gap"), "{answer:?}"),
            _ => panic!("{answer:?}"),
        }
    }

    std::fs::write(out.join("free"), "").unwrap();
    wait_for_file(&out.join("freed"));
    // No batch needed: health finds out by itself.
    health_becomes(&addr, 200, Duration::from_secs(20));
    for batch in &batches[1..] {
        let answer = post(&addr, &token, batch);
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    std::fs::write(out.join("stop"), "").unwrap();
    let status = namespace.wait_deadline(Duration::from_secs(30)).unwrap();
    assert!(status.success(), "{status:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("panicked"), "{text}");
}

// ---------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A PostgreSQL cluster of the test's own (it is stopped and started again, which the
/// shared one must never be), made by `scripts/pg-test-cluster.sh`.
struct OwnCluster {
    state: tempfile::TempDir,
    url: String,
}

impl OwnCluster {
    fn script(&self, what: &str) -> std::process::Output {
        Self::run(self.state.path(), what)
    }

    fn run(state: &Path, what: &str) -> std::process::Output {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/pg-test-cluster.sh"
        );
        let output = Command::new("bash")
            .arg(script)
            .arg(what)
            .env("JEJAK_PG_STATE", state.join("cluster.state"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "pg-test-cluster.sh {what}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    fn start() -> OwnCluster {
        let state = tempfile::tempdir().unwrap();
        let output = Self::run(state.path(), "start");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let url = stdout
            .lines()
            .last()
            .and_then(|l| l.strip_prefix("JEJAK_TEST_POSTGRES="))
            .unwrap()
            .to_string();
        OwnCluster { state, url }
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = self.script("stop");
    }
}

#[test]
fn after_a_postgresql_outage_health_and_batches_recover_by_themselves() {
    if jejak_testkit::postgres::admin_or_skip().is_none() {
        return;
    }
    let cluster = OwnCluster::start();
    let token = support::enroll_pc(&cluster.url, "penuh", "pc-01");
    let server = spawn_district(&cluster.url, &[], &[("JEJAK_LOG", "info")]);
    let batches = batches();
    assert_eq!(health(&server.addr).status, 200);
    assert_eq!(post(&server.addr, &token, &batches[0]).status, 200);

    cluster.script("pause");
    let down = Instant::now();
    assert_store_unavailable(&post(&server.addr, &token, &batches[1]));
    let unhealthy = health_becomes(&server.addr, 503, Duration::from_secs(30));
    assert!(
        unhealthy.body.contains("\"service\":\"jejak-server\""),
        "{unhealthy:?}"
    );
    assert!(unhealthy.body.contains("\"problem\""), "{unhealthy:?}");
    // Down for a while, as in the issue (15 s there).
    std::thread::sleep(Duration::from_secs(5).saturating_sub(down.elapsed()));

    cluster.script("resume");
    // Nothing but the health probe itself asks: it finds the database back.
    health_becomes(&server.addr, 200, Duration::from_secs(30));
    for batch in &batches[1..] {
        let answer = post(&server.addr, &token, batch);
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    let logs = server.log_lines().join("\n");
    assert!(
        !logs.contains("PostgreSQL error: db error"),
        "errors name what PostgreSQL said: {logs}"
    );
}

#[test]
fn a_database_host_that_never_answers_is_a_clear_error_at_start() {
    // Accepts connections and never says a word, as a firewall's black hole or a hung
    // server does.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let mut accepted = Vec::new();
        for stream in silent.incoming().take(4) {
            accepted.push(stream);
        }
        std::thread::sleep(Duration::from_secs(30));
    });
    let started = Instant::now();
    let mut command = bare_command();
    command.args([
        "--lang",
        "en",
        "server",
        "--database",
        &format!("postgres://jejak:rahasia@127.0.0.1:{port}/jejak"),
        "run",
        "--listen",
        "127.0.0.1:0",
    ]);
    let run = run_command(command, Duration::from_secs(40));
    let took = started.elapsed();
    assert_ne!(run.code(), Some(0), "{run:?}");
    assert!(
        took < Duration::from_secs(25),
        "it took {took:?} to give up"
    );
    assert!(
        run.stderr.contains("did not answer within 10 s"),
        "a clear error: {}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("rahasia"),
        "no password: {}",
        run.stderr
    );
    assert!(!run.stderr.contains("listening"), "{}", run.stderr);
    drop(held);
}

#[test]
fn a_lock_on_the_sessions_table_fails_a_batch_within_the_statement_timeout() {
    let Some(admin) = jejak_testkit::postgres::admin_or_skip() else {
        return;
    };
    let database = runtime().block_on(TestDatabase::create(&admin, "jejak_lock"));
    let url = database.url.clone();
    let token = support::enroll_pc(&url, "penuh", "pc-01");
    let server = spawn_district(&url, &["--statement-timeout", "2"], &[]);
    let batches = batches();
    assert_eq!(post(&server.addr, &token, &batches[0]).status, 200);

    // Another session holds the sessions table (a careless maintenance job).
    let mut psql = Command::new("psql");
    psql.args([
        &url,
        "-c",
        "BEGIN; LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(8);",
    ])
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null());
    let mut locker = ChildGuard::spawn(&mut psql);
    std::thread::sleep(Duration::from_secs(1));
    let sent = Instant::now();
    let answer = post(&server.addr, &token, &batches[1]);
    let took = sent.elapsed();
    assert_store_unavailable(&answer);
    assert!(took < Duration::from_secs(10), "answered after {took:?}");

    // Once the lock is gone the same batch goes through: nothing of it was held.
    locker.wait_deadline(Duration::from_secs(30)).unwrap();
    let answer = post(&server.addr, &token, &batches[1]);
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(answer.body.contains("\"new\":5"), "{answer:?}");
    drop(server);
    runtime().block_on(database.remove());
}
