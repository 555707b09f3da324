//! The restore storm (`restore_storm_s` in `scripts/bench.sh`): a stress district's
//! server is restored from a backup 30 days old, and all its PCs at once send again what
//! the backup lacks, each over a connection of its own. The figure is the time from the
//! first request until the server again holds everything (every PC's last batch
//! acknowledged with its last seq); `scripts/bench.sh` reads the server's peak memory
//! beside it.
//!
//! Two steps, so that the server runs as its own process (`jejak server run`) and its
//! memory is its own:
//!
//! - `restore_bench prepare DIR [--quick]` enrolls the district in a new store, ingests
//!   each PC's history (what the backup holds), backs it up with `jejak_server::backup`
//!   while the store is open, and restores that backup as `DIR/server.db`; the tokens go
//!   to `DIR/tokens.json`.
//! - `restore_bench storm DIR URL [--quick]` makes every PC's resend (the records after
//!   what the backup holds, compressed as the sync client sends them) before the clock
//!   starts, then sends them: one task and one HTTP client (so one connection) per PC,
//!   all at once, each PC's batches in seq order. It prints the figure as a JSON line
//!   and exits non-zero if any PC's resend was not acknowledged in full.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use jejak_domain::BatchAck;
use jejak_server::{Delivery, ServerStore, SqliteStore, backup};
use jejak_testkit::bench;
use jejak_testkit::sim::{self, Pace, SimLog, SimPc};

/// The district and how much each PC holds and resends.
struct Shape {
    pcs: usize,
    /// Records of each PC that the backup holds.
    history: usize,
    /// Records of each PC that the backup lacks (the 30 days after it).
    resend: usize,
}

fn shape(quick: bool) -> Shape {
    if quick {
        Shape {
            pcs: 60,
            history: 200,
            resend: 200,
        }
    } else {
        Shape {
            pcs: 1_050,
            history: 1_600,
            resend: 1_600,
        }
    }
}

/// Records per batch, as the sync client sends them.
const PER_BATCH: usize = 500;

/// The simulated history starts this long before now, so that every record and
/// anchor lies in the server's past.
fn first_day(now: DateTime<Utc>) -> DateTime<Utc> {
    now - chrono::Duration::days(240)
}

fn log_of(pc: &SimPc, i: usize, shape: &Shape, now: DateTime<Utc>) -> SimLog {
    sim::simulate_at(
        pc,
        shape.history + shape.resend,
        first_day(now),
        1_000 + i as u64,
        Pace::STRESS,
    )
}

fn tokens_path(dir: &Path) -> PathBuf {
    dir.join("tokens.json")
}

/// The moment the simulation is laid out from, shared by both steps (written by
/// `prepare`), so that `storm` makes the same records.
fn now_path(dir: &Path) -> PathBuf {
    dir.join("now.txt")
}

async fn prepare(dir: &Path, shape: &Shape) {
    let now = Utc::now() - chrono::Duration::minutes(5);
    std::fs::write(now_path(dir), now.to_rfc3339()).unwrap();
    let live = dir.join("live.db");
    let store = SqliteStore::open(&live).unwrap();
    let district = sim::district(shape.pcs, 14);
    let tokens = bench::enroll_district(&store, &district).await.unwrap();
    for (i, pc) in district.iter().enumerate() {
        let device = store
            .find_device(&pc.library, &pc.pc)
            .await
            .unwrap()
            .unwrap();
        let mut log = log_of(pc, i, shape, now);
        log.records.truncate(shape.history);
        for batch in sim::batches(pc, &log, PER_BATCH, now) {
            store
                .ingest(&device, batch, now, Delivery::Online)
                .await
                .unwrap();
        }
    }
    // The backup is taken from the open store, as `run --backup-dir` takes it.
    let info = store.backup(&dir.join("backup.db")).await.unwrap();
    drop(store);
    let restored = backup::restore(&info.path, &dir.join("server.db"), "bench").unwrap();
    eprintln!(
        "restore_bench: {} PCs, {} sessions in the backup ({:.1} MB)",
        restored.restored.devices,
        restored.restored.sessions,
        restored.restored.bytes as f64 / 1e6
    );
    std::fs::write(tokens_path(dir), serde_json::to_vec(&tokens).unwrap()).unwrap();
}

async fn storm(dir: &Path, url: &str, shape: &Shape) -> bool {
    let now = DateTime::parse_from_rfc3339(std::fs::read_to_string(now_path(dir)).unwrap().trim())
        .unwrap()
        .with_timezone(&Utc);
    let tokens: Vec<String> =
        serde_json::from_slice(&std::fs::read(tokens_path(dir)).unwrap()).unwrap();
    let district = sim::district(shape.pcs, 14);
    // Every PC's resend, compressed, before the clock starts: the figure is the server's.
    let mut resends: Vec<Vec<(Vec<u8>, u64)>> = Vec::with_capacity(district.len());
    for (i, pc) in district.iter().enumerate() {
        let mut log = log_of(pc, i, shape, now);
        log.records.drain(..shape.history);
        let batches = sim::batches(pc, &log, PER_BATCH, now)
            .into_iter()
            .map(|b| {
                let json = serde_json::to_vec(&b).unwrap();
                (zstd::encode_all(json.as_slice(), 3).unwrap(), b.last_seq)
            })
            .collect();
        resends.push(batches);
    }
    let records = district.len() * shape.resend;
    eprintln!(
        "restore_bench: {} PCs resend {} records at once",
        district.len(),
        records
    );
    let url = format!("{}/api/v1/batches", url.trim_end_matches('/'));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (token, batches) in tokens.into_iter().zip(resends) {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            // A client of its own: its own connection, as each PC has.
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(300))
                .build()
                .unwrap();
            let last = batches.last().map_or(0, |b| b.1);
            let mut held = 0;
            for (body, _) in batches {
                let mut tries = 0;
                loop {
                    tries += 1;
                    let answer = http
                        .post(&url)
                        .bearer_auth(&token)
                        .header("Content-Type", jejak_domain::BATCH_MEDIA_TYPE)
                        .header("Content-Encoding", "zstd")
                        .body(body.clone())
                        .send()
                        .await;
                    match answer {
                        Ok(response) if response.status().is_success() => {
                            held = response.json::<BatchAck>().await.unwrap().held_seq;
                            break;
                        }
                        // A PC retries what was not acknowledged (503, a reset).
                        Ok(_) | Err(_) if tries < 20 => {
                            tokio::time::sleep(Duration::from_millis(200 * tries)).await;
                        }
                        Ok(response) => panic!("refused: {}", response.status()),
                        Err(e) => panic!("no answer: {e}"),
                    }
                }
            }
            held == last
        }));
    }
    let mut complete = true;
    for task in tasks {
        complete &= task.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "restore_bench: {records} records in {secs:.1} s ({:.0} records/s)",
        records as f64 / secs
    );
    println!(r#"{{"name": "restore_storm_s", "value": {secs:.3}, "unit": "s", "goal": "< 60"}}"#);
    complete
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let shape = shape(quick);
    match args.get(1).map(String::as_str) {
        Some("prepare") => prepare(Path::new(&args[2]), &shape).await,
        Some("storm") => {
            if !storm(Path::new(&args[2]), &args[3], &shape).await {
                eprintln!("restore_bench: a PC's resend was not acknowledged in full");
                std::process::exit(1);
            }
        }
        _ => {
            eprintln!("usage: restore_bench prepare DIR [--quick] | storm DIR URL [--quick]");
            std::process::exit(2);
        }
    }
}
