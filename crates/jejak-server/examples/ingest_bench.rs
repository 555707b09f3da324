//! The server's benchmark figures, one JSON line each on stdout:
//!
//! - `ingest_sessions_per_s`: sessions stored per second over HTTP on loopback, many
//!   PCs' batches at once, each answered after its commit;
//! - `rusqlite_rows_per_s`: a bare rusqlite bulk insert of the same rows, same run;
//! - `ingest_ratio_vs_rusqlite`: the first over the second (goal ≥ 0.6);
//! - `server_disk_bytes_per_session` (goal ≤ 64) at the stress district's pace, and
//!   `server_disk_bytes_per_session_typical_pace` (info) at a typical PC's;
//! - `visit_wire_bytes` and `visit_disk_bytes` (info): a desk visit's bytes on the wire
//!   (zstd at the PC's level, in a batch of a month's 1,200 visits) and on the server's
//!   disk (the compacted file's growth per visit, counters included).
//! - `activity_wire_bytes` and `activity_disk_bytes` (info): the same for an activity
//!   with its texts and participants, in a batch of 240 activities.
//!
//! `cargo run --release -p jejak-server --example ingest_bench [-- --quick]`. The files
//! go to `$BENCH_TMPDIR` (default: the system's temporary folder), which must be on the
//! disk being judged.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Instant;

use jejak_server::{AppState, Delivery, ServerConfig, ServerStore, SqliteStore};
use jejak_testkit::{bench, sim};

fn emit(name: &str, value: f64, unit: &str, goal: &str) {
    println!(r#"{{"name": "{name}", "value": {value:.3}, "unit": "{unit}", "goal": "{goal}"}}"#);
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (pcs, per_pc, per_batch, clients) = if quick {
        (10, 500, 500, 10)
    } else {
        (50, 2_000, 500, 50)
    };
    let base = std::env::var_os("BENCH_TMPDIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(&base).unwrap();

    // The district and its batches, encoded as the sync client sends them.
    let district = sim::district(pcs, 42);
    let sync_at = sim::month_start() + chrono::Duration::days(400);
    let mut work = Vec::new();
    let mut all_batches = Vec::new();
    let mut wire_bytes = 0usize;
    for (i, pc) in district.iter().enumerate() {
        let log = sim::simulate(pc, per_pc, sim::month_start(), i as u64);
        for batch in sim::batches(pc, &log, per_batch, sync_at) {
            let body = zstd::encode_all(serde_json::to_vec(&batch).unwrap().as_slice(), 3).unwrap();
            wire_bytes += body.len();
            work.push((i, body));
            all_batches.push(batch);
        }
    }
    let sessions = pcs * per_pc;
    let mut per_device: Vec<Vec<Vec<u8>>> = vec![Vec::new(); pcs];
    for (i, body) in work {
        per_device[i].push(body);
    }
    eprintln!(
        "bench: {pcs} PCs x {per_pc} sessions in batches of {per_batch}, {clients} clients; \
         {:.1} wire bytes/session",
        wire_bytes as f64 / sessions as f64
    );

    // Rounds of (HTTP ingest, bare insert) on fresh files, side by side so that both
    // see the same machine; the round with the median ratio is reported.
    let rounds = if quick { 1 } else { 3 };
    let mut results = Vec::new();
    for round in 0..rounds {
        let round_dir = tempfile::tempdir_in(&base).unwrap();
        let http_secs =
            http_round(round_dir.path(), &district, &per_device, clients, sessions).await;
        let (rows, bare) =
            bench::bare_rusqlite_insert(&round_dir.path().join("bare.db"), &all_batches).unwrap();
        assert_eq!(rows, sessions);
        let ingest_rate = sessions as f64 / http_secs;
        let bare_rate = rows as f64 / bare.as_secs_f64();
        eprintln!(
            "bench: round {round}: {ingest_rate:.0} sessions/s over HTTP, {bare_rate:.0} rows/s bare"
        );
        results.push((ingest_rate / bare_rate, ingest_rate, bare_rate));
    }
    results.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (ratio, ingest_rate, bare_rate) = results[results.len() / 2];

    // The same rows through the store without HTTP, one batch after another (what the
    // USB import does).
    let direct = SqliteStore::open(&dir.path().join("direct.db")).unwrap();
    let refs = enroll(&direct, &district).await.1;
    let started = Instant::now();
    for batch in all_batches.iter().cloned() {
        let device = refs
            .iter()
            .find(|d| d.library == batch.library && d.pc == batch.pc)
            .unwrap()
            .clone();
        direct
            .ingest(&device, batch, sync_at, Delivery::Carried)
            .await
            .unwrap();
    }
    let direct_secs = started.elapsed().as_secs_f64();

    emit("ingest_sessions_per_s", ingest_rate, "sessions/s", "info");
    emit("rusqlite_rows_per_s", bare_rate, "rows/s", "info");
    emit("ingest_ratio_vs_rusqlite", ratio, "ratio", ">= 0.6");
    emit(
        "ingest_direct_sessions_per_s",
        sessions as f64 / direct_secs,
        "sessions/s",
        "info",
    );
    // The sync client's own figure (`wire_bytes_per_session`, in bench_sync) is the one
    // the goal applies to; this is the server simulator's noisier data, for comparison.
    emit(
        "ingest_batch_bytes_per_session",
        wire_bytes as f64 / sessions as f64,
        "bytes",
        "info",
    );

    let disk_dir = tempfile::tempdir_in(&base).unwrap();
    let figure = bench::disk_bytes_per_session(disk_dir.path(), 15, 20_000, sim::Pace::STRESS)
        .await
        .unwrap();
    emit(
        "server_disk_bytes_per_session",
        figure.bytes_per_session,
        "bytes",
        "<= 64",
    );
    // A quieter district pays the fixed costs per PC (rollups, run anchors) over fewer
    // sessions: shown for information.
    let typical_dir = tempfile::tempdir_in(&base).unwrap();
    let typical = bench::disk_bytes_per_session(typical_dir.path(), 15, 20_000, sim::Pace::TYPICAL)
        .await
        .unwrap();
    emit(
        "server_disk_bytes_per_session_typical_pace",
        typical.bytes_per_session,
        "bytes",
        "info",
    );

    let visit_dir = tempfile::tempdir_in(&base).unwrap();
    let visits = bench::visit_figures(visit_dir.path(), 1_200).await.unwrap();
    // zstd level 19, as the PC compresses its batches (`jejak_sync::batching`).
    let wire = zstd::bulk::compress(&visits.batch_json, 19).unwrap();
    emit(
        "visit_wire_bytes",
        wire.len() as f64 / visits.records as f64,
        "bytes",
        "info",
    );
    emit(
        "visit_disk_bytes",
        visits.disk_bytes_per_record,
        "bytes",
        "info",
    );

    let activity_dir = tempfile::tempdir_in(&base).unwrap();
    let activities = bench::activity_figures(activity_dir.path(), 240)
        .await
        .unwrap();
    let wire = zstd::bulk::compress(&activities.batch_json, 19).unwrap();
    emit(
        "activity_wire_bytes",
        wire.len() as f64 / activities.records as f64,
        "bytes",
        "info",
    );
    emit(
        "activity_disk_bytes",
        activities.disk_bytes_per_record,
        "bytes",
        "info",
    );
}

/// Enrolls the district in `store`; returns the tokens and devices.
async fn enroll(
    store: &SqliteStore,
    district: &[sim::SimPc],
) -> (Vec<String>, Vec<jejak_server::DeviceRef>) {
    let tokens = bench::enroll_district(store, district).await.unwrap();
    let mut devices = Vec::new();
    for pc in district {
        devices.push(
            store
                .find_device(&pc.library, &pc.pc)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    (tokens, devices)
}

/// Serves a fresh store on loopback and sends every PC's batches with `clients`
/// concurrent clients (each takes the next PC and sends its batches in seq order, as a
/// PC does); returns the seconds from the first request to the last answer.
async fn http_round(
    dir: &std::path::Path,
    district: &[sim::SimPc],
    per_device: &[Vec<Vec<u8>>],
    clients: usize,
    sessions: usize,
) -> f64 {
    let store = SqliteStore::open(&dir.join("ingest.db")).unwrap();
    let tokens = Arc::new(enroll(&store, district).await.0);
    let state = AppState::new(Arc::new(store.clone()), ServerConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v1/batches", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(jejak_server::run(listener, state, async {
        let _ = stopped.await;
    }));
    let queue = Arc::new(std::sync::Mutex::new(
        per_device.iter().cloned().enumerate().collect::<Vec<_>>(),
    ));
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (queue, http, url, tokens) = (queue.clone(), http.clone(), url.clone(), tokens.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().unwrap().pop();
                let Some((device, bodies)) = next else { break };
                for body in bodies {
                    let response = http
                        .post(&url)
                        .bearer_auth(&tokens[device])
                        .header("Content-Type", jejak_domain::BATCH_MEDIA_TYPE)
                        .header("Content-Encoding", "zstd")
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status().as_u16(), 200);
                    let _ = response.bytes().await.unwrap();
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    let held: u64 = store
        .devices()
        .await
        .unwrap()
        .iter()
        .map(|d| d.sessions)
        .sum();
    assert_eq!(held as usize, sessions, "every session stored once");
    secs
}
