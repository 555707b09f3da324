//! The sync's benchmark figures, one JSON line each on stdout:
//!
//! - `wire_bytes_per_session`: compressed bytes per session in batches of 500 closed
//!   sessions, encoded exactly as the sync client sends them (goal ≤ 40). The sessions
//!   are the ones `jejak demo` recorded through the real store (`--demo DIR`), or, when no
//!   demo folder is given, a month of sessions generated here.
//! - `wire_bytes_per_change`: the same over every change of the log (sessions and pc
//!   events such as heartbeats), for information.
//! - `backlog_64kbps_s`: a PC with a 5,400-record backlog syncs to an in-process district
//!   server through the fault proxy at 64 kbit/s with 150 ms latency and one connection
//!   in ten dropped (goal < 60 s).
//!
//! `cargo run --release -p jejak-sync --example bench_sync -- [--quick] [--demo DIR]`.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use jejak_agent::clock::ManualClock;
use jejak_agent::patron::PatronSecret;
use jejak_agent::store::{NetCounters, Store};
use jejak_domain::{
    AgeGroup, ChangeRecord, ClientInstant, DeviceIdentity, EndReason, Gender, LibraryCode,
    PatronProfile, PcCode, PcEventKind, Purpose, RecordBody, UserKind, WireBatch, Zone,
};
use jejak_faultproxy::{FaultProxy, Faults};
use jejak_server::{AppState, ServerConfig, ServerStore, SqliteStore};
use jejak_sync::batching::{compress, newest_revisions};
use jejak_sync::{SyncClient, SyncOptions, sync_once};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

fn emit(name: &str, value: f64, unit: &str, goal: &str, ok: Option<bool>) {
    let ok = ok.map(|b| b.to_string()).unwrap_or_else(|| "null".into());
    println!(
        r#"{{"name": "{name}", "value": {value:.2}, "unit": "{unit}", "goal": "{goal}", "ok": {ok}}}"#
    );
}

fn identity(pc: &str) -> DeviceIdentity {
    DeviceIdentity {
        library: LibraryCode::parse("bench").unwrap(),
        pc: PcCode::parse(pc).unwrap(),
    }
}

/// A PC's life, as the demo simulates it: mornings boot, patrons come and go, a
/// heartbeat event every 15 minutes, the link up and down now and then.
fn simulate(store: &mut Store, clock: &ManualClock, changes: u64, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let secret = PatronSecret::generate();
    let start = Utc.with_ymd_and_hms(2026, 7, 1, 1, 0, 0).unwrap();
    let mut day = 0i64;
    let mut counters = NetCounters { rx: 0, tx: 0 };
    while store.sync_state().unwrap().last_seq < changes {
        clock.reboot(start + chrono::Duration::days(day));
        day += 1;
        store.recover_open_session(Duration::from_secs(90)).unwrap();
        store
            .record_event(if rng.random_bool(0.9) {
                PcEventKind::InternetUp
            } else {
                PcEventKind::InternetDown
            })
            .unwrap();
        let mut minutes = 0u64;
        while minutes < 7 * 60 {
            let gap = rng.random_range(5..90);
            clock.advance(Duration::from_secs(gap * 60));
            minutes += gap;
            let user_kind = [
                UserKind::Anggota,
                UserKind::Anggota,
                UserKind::NonAnggota,
                UserKind::Pelatihan,
            ][rng.random_range(0..4)];
            // Members (about half the patrons) come back: 80 of them per library.
            let patron_key = (user_kind == UserKind::Anggota)
                .then(|| secret.key_for(&format!("AGT-{:03}", rng.random_range(0..80))));
            let profile = PatronProfile {
                user_kind,
                purposes: vec![
                    [
                        Purpose::Pendidikan,
                        Purpose::Hobi,
                        Purpose::Komunikasi,
                        Purpose::Ekonomi,
                    ][rng.random_range(0..4)],
                ],
                gender: [Gender::L, Gender::P][rng.random_range(0..2)],
                age_group: [
                    AgeGroup::Anak,
                    AgeGroup::Remaja,
                    AgeGroup::Pemuda,
                    AgeGroup::Dewasa,
                ][rng.random_range(0..4)],
                group_size: 1,
                patron_key,
            };
            store.start_session(profile, Some(counters)).unwrap();
            let length = rng.random_range(10..80u64);
            for _ in 0..length / 15 {
                clock.advance(Duration::from_secs(15 * 60));
                counters.rx += rng.random_range(100_000..20_000_000);
                counters.tx += rng.random_range(10_000..2_000_000);
                store.heartbeat(Some(counters), Some(true), true).unwrap();
            }
            clock.advance(Duration::from_secs((length % 15) * 60));
            store
                .end_session(EndReason::Logout, Some(counters))
                .unwrap();
            minutes += length;
        }
        store.record_event(PcEventKind::Shutdown).unwrap();
    }
}

fn batch_bytes(records: &[ChangeRecord]) -> usize {
    let sent = ClientInstant {
        run: Uuid::nil(),
        mono_ms: 0,
        wall_ms: 0,
    };
    let identity = identity("pc-01");
    records
        .chunks(500)
        .map(|chunk| {
            let first = chunk.first().map(|c| c.seq).unwrap_or(1);
            let last = chunk.last().map(|c| c.seq).unwrap_or(1);
            let wire = WireBatch::encode(
                Uuid::now_v7(),
                identity.library.clone(),
                identity.pc.clone(),
                Uuid::nil(),
                first,
                last,
                sent,
                vec![],
                chunk,
            );
            compress(wire).body.len()
        })
        .sum()
}

/// Every store under a demo folder.
fn demo_stores(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for village in std::fs::read_dir(dir).unwrap().flatten() {
        for pc in std::fs::read_dir(village.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let db = pc.path().join("jejak.db");
            if db.exists() {
                out.push(db);
            }
        }
    }
    out.sort();
    out
}

/// Compressed bytes per closed session and per change, over the given change logs
/// (each log one PC's, batched as the client batches it).
fn wire_cost(logs: &[Vec<ChangeRecord>]) -> (f64, f64, usize) {
    let (mut session_bytes, mut sessions, mut all_bytes, mut changes) =
        (0usize, 0usize, 0usize, 0usize);
    for log in logs {
        let current = newest_revisions(log.clone());
        let closed: Vec<ChangeRecord> = current
            .iter()
            .filter(|c| matches!(&c.body, RecordBody::Session(s) if !s.is_open()))
            .cloned()
            .collect();
        session_bytes += batch_bytes(&closed);
        sessions += closed.len();
        all_bytes += batch_bytes(&current);
        changes += log.len();
    }
    (
        session_bytes as f64 / sessions.max(1) as f64,
        all_bytes as f64 / changes.max(1) as f64,
        sessions,
    )
}

/// The brief's backlog: one PC that could not sync for about three months (5,400
/// changes), sessions with returning members, heartbeat events every 15 minutes. With
/// `--demo DIR`, the demo's PCs (one month each, so smaller batches) are measured too.
fn wire_figures(demo: Option<&Path>, quick: bool) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Utc::now());
    let (mut store, _) = Store::open(
        &dir.path().join("pc.db"),
        identity("pc-01"),
        Arc::new(clock.clone()),
    )
    .unwrap();
    store.set_earliest_plausible_wall(Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap());
    simulate(&mut store, &clock, if quick { 1_000 } else { 5_400 }, 3);
    let (per_session, per_change, sessions) =
        wire_cost(&[store.changes_after(0, u32::MAX).unwrap()]);
    eprintln!("bench: wire cost over one PC's backlog of {sessions} sessions");
    emit(
        "wire_bytes_per_session",
        per_session,
        "bytes",
        "<= 40",
        Some(per_session <= 40.0),
    );
    emit("wire_bytes_per_change", per_change, "bytes", "info", None);
    if let Some(dir) = demo {
        let logs: Vec<Vec<ChangeRecord>> = demo_stores(dir)
            .iter()
            .map(|db| {
                let (store, _) = Store::open(
                    db,
                    identity("pc-01"),
                    Arc::new(ManualClock::new(Utc::now())),
                )
                .unwrap();
                store.changes_after(0, u32::MAX).unwrap()
            })
            .collect();
        let (per_session, _, sessions) = wire_cost(&logs);
        eprintln!(
            "bench: demo month, {sessions} sessions over {} PCs",
            logs.len()
        );
        emit(
            "wire_bytes_per_session_demo_month",
            per_session,
            "bytes",
            "info",
            None,
        );
    }
}

async fn backlog_figure(quick: bool) {
    let records: u64 = if quick { 600 } else { 5_400 };
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Utc::now());
    let (mut pc, _) = Store::open(
        &dir.path().join("pc.db"),
        identity("pc-01"),
        Arc::new(clock.clone()),
    )
    .unwrap();
    pc.set_earliest_plausible_wall(Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap());
    simulate(&mut pc, &clock, records, 7);
    let backlog = pc.sync_state().unwrap().pending();

    let server: Arc<dyn ServerStore> =
        Arc::new(SqliteStore::open(&dir.path().join("server.db")).unwrap());
    server
        .add_library(&LibraryCode::parse("bench").unwrap(), "Bench", Zone::Wib)
        .await
        .unwrap();
    let token = server
        .add_device(
            &LibraryCode::parse("bench").unwrap(),
            &PcCode::parse("pc-01").unwrap(),
        )
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = AppState::new(server.clone(), ServerConfig::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(jejak_server::run(listener, state, async {
        let _ = stopped.await;
    }));
    // 64 kbit/s = 8,000 bytes/s each way, 150 ms each way, one connection in ten cut.
    let faults = Faults {
        drop_connection_chance: 0.1,
        drop_within_bytes: 16 * 1024,
        seed: 64,
        ..Faults::slow_link(8_000, Duration::from_millis(150))
    };
    let proxy = FaultProxy::start(addr, faults).await.unwrap();
    let client = SyncClient::new(
        &format!("http://{}", proxy.local_addr()),
        token.expose(),
        Duration::from_secs(30),
    )
    .unwrap();
    let options = SyncOptions {
        backoff_base: Duration::from_millis(250),
        backoff_cap: Duration::from_secs(4),
        ..SyncOptions::default()
    };
    let started = Instant::now();
    let report = sync_once(&mut pc, &client, &options, &mut |_| {})
        .await
        .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(pc.sync_state().unwrap().pending(), 0, "the backlog drained");
    let stats = proxy.stats();
    eprintln!(
        "bench: backlog of {backlog} changes: {} batches, {} bytes sent, {} retries, {} drops, {seconds:.1} s",
        report.batches, report.bytes_sent, report.retries, stats.drops
    );
    emit(
        "backlog_64kbps_s",
        seconds,
        "s",
        "< 60",
        Some(seconds < 60.0),
    );
    emit("backlog_records", backlog as f64, "records", "info", None);
    proxy.shutdown().await;
    let _ = stop.send(());
    serving.await.unwrap().unwrap();
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let demo = args
        .iter()
        .position(|a| a == "--demo")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    wire_figures(demo.as_deref(), quick);
    backlog_figure(quick).await;
}
