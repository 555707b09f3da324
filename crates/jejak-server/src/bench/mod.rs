//! What the benchmark (and the tests) need to measure the server: realistic sessions and
//! batches, the bytes each session costs on disk, and the baseline of a bare rusqlite
//! bulk insert of the same rows.
//!
//! The sessions follow the brief's village library: a PC boots in the morning, serves a
//! handful of patrons for 15 minutes to 2 hours each, with one to three purposes, about
//! a third of them members with a patron key, and tens of megabytes of traffic.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use jejak_domain::{
    AgeGroup, ChangeRecord, ClientInstant, ClockAnchor, EndReason, Gender, LibraryCode, PatronKey,
    PatronProfile, PcCode, Purpose, RecordBody, Session, TimeQuality, UserKind, WireBatch, Zone,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rusqlite::{Connection, params};
use uuid::Uuid;

use crate::codes;
use crate::sqlite::SqliteStore;

pub mod clocks;
use crate::store::{Delivery, ServerStore};

/// One simulated PC and its clock.
#[derive(Debug, Clone)]
pub struct SimPc {
    /// Its library.
    pub library: LibraryCode,
    /// Its code.
    pub pc: PcCode,
    /// Its store's epoch.
    pub epoch: Uuid,
    /// How far its wall clock is off (PC wall minus true time), ms.
    pub clock_error_ms: i64,
}

/// Sessions of one PC with their true start times (the server's clock).
#[derive(Debug, Clone)]
pub struct SimLog {
    /// The change log, seqs from 1, each session at its final revision.
    pub records: Vec<ChangeRecord>,
    /// Each run and the true time it booted, for anchors.
    pub runs: Vec<(Uuid, DateTime<Utc>)>,
    /// The true start of each session, by id.
    pub true_starts: Vec<(Uuid, DateTime<Utc>)>,
}

fn uuid_v7_at(rng: &mut StdRng, at: DateTime<Utc>) -> Uuid {
    let mut random = [0u8; 10];
    rng.fill(&mut random);
    uuid::Builder::from_unix_timestamp_millis(at.timestamp_millis().max(0) as u64, &random)
        .into_uuid()
}

/// How busy a simulated PC is: sessions a day, their length and the gaps between them
/// (each a half-open range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Sessions a day.
    pub per_day: (u32, u32),
    /// Minutes a session lasts.
    pub minutes: (i64, i64),
    /// Minutes between two sessions.
    pub gap_minutes: (i64, i64),
}

impl Pace {
    /// A typical village PC: 3 to 8 sessions a day of 15 minutes to 2 hours.
    pub const TYPICAL: Pace = Pace {
        per_day: (3, 9),
        minutes: (15, 120),
        gap_minutes: (1, 30),
    };
    /// The brief's stress district: about 17 sessions a day per PC (6.5 million a year
    /// over 350 libraries of three PCs), shorter and back to back.
    pub const STRESS: Pace = Pace {
        per_day: (13, 22),
        minutes: (10, 40),
        gap_minutes: (0, 6),
    };
}

/// `sessions` realistic sessions of `pc`, a few a day from `first_day` on. Every run
/// (one boot per day) starts at 07:30 local time (WIB); the PC's wall clock is off by
/// `pc.clock_error_ms`. Deterministic for a given `seed`.
pub fn simulate(pc: &SimPc, sessions: usize, first_day: DateTime<Utc>, seed: u64) -> SimLog {
    simulate_at(pc, sessions, first_day, seed, Pace::TYPICAL)
}

/// [`simulate`] at another pace.
pub fn simulate_at(
    pc: &SimPc,
    sessions: usize,
    first_day: DateTime<Utc>,
    seed: u64,
    pace: Pace,
) -> SimLog {
    let mut rng = StdRng::seed_from_u64(seed);
    let keys: Vec<PatronKey> = (0..40)
        .map(|_| {
            let mut bytes = [0u8; 32];
            rng.fill(&mut bytes);
            PatronKey::parse(&hex::encode(bytes))
                .expect("64 lowercase hex digits are exactly what a patron key is")
        })
        .collect();
    let mut log = SimLog {
        records: Vec::with_capacity(sessions),
        runs: Vec::new(),
        true_starts: Vec::with_capacity(sessions),
    };
    let mut day = 0i64;
    let mut seq = 0u64;
    while log.records.len() < sessions {
        // 07:30 WIB is 00:30 UTC.
        let boot = first_day + chrono::Duration::days(day) + chrono::Duration::minutes(30);
        let run = uuid_v7_at(&mut rng, boot);
        log.runs.push((run, boot));
        let mut t = boot + chrono::Duration::minutes(rng.random_range(10..60));
        let per_day = rng.random_range(pace.per_day.0..pace.per_day.1);
        for _ in 0..per_day {
            if log.records.len() >= sessions {
                break;
            }
            let minutes: i64 = rng.random_range(pace.minutes.0..pace.minutes.1);
            let duration = minutes * 60 + rng.random_range(0..60);
            let wall = t + chrono::Duration::milliseconds(pc.clock_error_ms);
            let mono = (t - boot).num_milliseconds() as u64;
            let purposes_n = rng.random_range(1..=2);
            let mut purposes = Vec::new();
            while purposes.len() < purposes_n {
                let p = Purpose::ALL[rng.random_range(0..Purpose::ALL.len())];
                if !purposes.contains(&p) {
                    purposes.push(p);
                }
            }
            let member = rng.random_bool(0.35);
            let kib_per_s = rng.random_range(2..40u64);
            let id = uuid_v7_at(&mut rng, wall);
            seq += 1;
            log.true_starts.push((id, t));
            log.records.push(ChangeRecord {
                seq,
                recorded_at: wall + chrono::Duration::seconds(duration),
                run_id: run,
                mono_ms: mono + duration as u64 * 1000,
                body: RecordBody::Session(Session {
                    id,
                    revision: rng.random_range(2..4),
                    library: pc.library.clone(),
                    pc: pc.pc.clone(),
                    started_at: wall,
                    ended_at: Some(wall + chrono::Duration::seconds(duration)),
                    duration_secs: duration as u64,
                    end_reason: Some(if rng.random_bool(0.85) {
                        EndReason::Logout
                    } else {
                        EndReason::Idle
                    }),
                    patron: PatronProfile {
                        user_kind: if member {
                            UserKind::Anggota
                        } else {
                            UserKind::NonAnggota
                        },
                        purposes,
                        gender: if rng.random_bool(0.5) {
                            Gender::L
                        } else {
                            Gender::P
                        },
                        age_group: AgeGroup::ALL[rng.random_range(1..6)],
                        group_size: if rng.random_bool(0.9) {
                            1
                        } else {
                            rng.random_range(2..6)
                        },
                        patron_key: member.then(|| keys[rng.random_range(0..keys.len())].clone()),
                    },
                    bytes_rx: duration as u64 * kib_per_s * 1024,
                    bytes_tx: duration as u64 * kib_per_s * 100,
                    online_secs: duration as u64 - rng.random_range(0..60),
                    time_quality: TimeQuality::Trusted,
                    run_id: run,
                    started_mono_ms: mono,
                }),
            });
            t += chrono::Duration::seconds(duration)
                + chrono::Duration::minutes(
                    rng.random_range(pace.gap_minutes.0..pace.gap_minutes.1),
                );
        }
        day += 1;
    }
    log
}

/// The log in batches of `per_batch` records as the sync client would send them, each
/// with an anchor for every run it uses (measured at the true time `sync_at`, when the
/// run's monotonic clock read `sync_at - boot`).
pub fn batches(
    pc: &SimPc,
    log: &SimLog,
    per_batch: usize,
    sync_at: DateTime<Utc>,
) -> Vec<WireBatch> {
    let mut out = Vec::new();
    let per_batch = per_batch.max(1);
    for chunk in log.records.chunks(per_batch) {
        let (Some(first), Some(last)) = (chunk.first(), chunk.last()) else {
            continue;
        };
        let mut anchors: Vec<ClockAnchor> = Vec::new();
        for record in chunk {
            if anchors.iter().any(|a| a.run == record.run_id) {
                continue;
            }
            if let Some((run, boot)) = log.runs.iter().find(|(run, _)| *run == record.run_id) {
                anchors.push(ClockAnchor {
                    run: *run,
                    mono_ms: (sync_at - *boot).num_milliseconds().max(0) as u64,
                    server_ms: sync_at.timestamp_millis(),
                    uncertainty_ms: 40,
                });
            }
        }
        let (last_run, last_boot) = log
            .runs
            .iter()
            .find(|(run, _)| *run == last.run_id)
            .copied()
            .unwrap_or((last.run_id, sync_at));
        out.push(WireBatch::encode(
            Uuid::new_v4(),
            pc.library.clone(),
            pc.pc.clone(),
            pc.epoch,
            first.seq,
            last.seq,
            ClientInstant {
                run: last_run,
                mono_ms: (sync_at - last_boot).num_milliseconds().max(0) as u64,
                wall_ms: sync_at.timestamp_millis() + pc.clock_error_ms,
            },
            anchors,
            chunk,
        ));
    }
    out
}

/// `count` PCs: libraries `lib-00`, `lib-01` … with three PCs each, clocks off by up to
/// ±3 s (NTP-less PCs drift).
pub fn district(count: usize, seed: u64) -> Vec<SimPc> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|i| SimPc {
            library: LibraryCode::parse(&format!("lib-{:02}", i / 3))
                .expect("a valid library code"),
            pc: PcCode::parse(&format!("pc-{:02}", i % 3 + 1)).expect("a valid PC code"),
            epoch: Uuid::from_u64_pair(seed, i as u64),
            clock_error_ms: rng.random_range(-3_000..3_000),
        })
        .collect()
}

/// Enrolls a district made by [`district`] in `store` (a library for every three PCs)
/// and returns each PC's token, in the district's order.
pub async fn enroll_district(
    store: &dyn ServerStore,
    district: &[SimPc],
) -> Result<Vec<String>, crate::store::EnrollError> {
    let mut tokens = Vec::new();
    for (i, pc) in district.iter().enumerate() {
        if i % 3 == 0 {
            store
                .add_library(&pc.library, "Perpustakaan Desa", Zone::Wib)
                .await?;
        }
        tokens.push(
            store
                .add_device(&pc.library, &pc.pc)
                .await?
                .expose()
                .to_string(),
        );
    }
    Ok(tokens)
}

/// The start of the simulated month: 2026-10-01 00:00 UTC.
pub fn month_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// The result of [`disk_bytes_per_session`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiskFigure {
    /// Sessions stored.
    pub sessions: usize,
    /// The database file's size after `VACUUM`.
    pub file_bytes: u64,
    /// `file_bytes / sessions`.
    pub bytes_per_session: f64,
}

/// Enrolls a district of `pcs` PCs in a new store in `dir`, stores `sessions` realistic
/// sessions through `ingest` (batches of 500), compacts the file and divides its size by
/// the sessions. The brief's goal is at most 64 bytes.
///
/// The budget is judged at the brief's stress district's pace ([`Pace::STRESS`], about
/// 17 sessions a PC a day), the scale it is for. The rollups and the clock anchors of
/// runs cost a fixed amount per PC and day or month, so a quieter PC pays more per
/// session: at [`Pace::TYPICAL`] (5.5 a day) the figure is several bytes higher.
pub async fn disk_bytes_per_session(
    dir: &Path,
    pcs: usize,
    sessions: usize,
    pace: Pace,
) -> Result<DiskFigure, Box<dyn std::error::Error + Send + Sync>> {
    let store = SqliteStore::open(&dir.join("disk-bench.db"))?;
    let district = district(pcs.max(1), 7);
    let per_pc = sessions.div_ceil(district.len());
    let mut stored = 0;
    for (i, pc) in district.iter().enumerate() {
        if store.find_device(&pc.library, &pc.pc).await?.is_none() {
            if i % 3 == 0 {
                store
                    .add_library(&pc.library, "Perpustakaan Desa", Zone::Wib)
                    .await?;
            }
            store.add_device(&pc.library, &pc.pc).await?;
        }
        let device = store
            .find_device(&pc.library, &pc.pc)
            .await?
            .ok_or("the device just enrolled is missing")?;
        let n = per_pc.min(sessions - stored);
        let log = simulate_at(pc, n, month_start(), i as u64, pace);
        let sync_at = month_start() + chrono::Duration::days(120);
        for batch in batches(pc, &log, 500, sync_at) {
            store
                .ingest(&device, batch, sync_at, Delivery::Online)
                .await?;
        }
        stored += n;
        if stored >= sessions {
            break;
        }
    }
    let file_bytes = store.compact().await?;
    Ok(DiskFigure {
        sessions: stored,
        file_bytes,
        bytes_per_session: file_bytes as f64 / stored.max(1) as f64,
    })
}

/// The baseline of the ingest benchmark: inserts the sessions of `batches` into a fresh
/// database at `path` with a bare rusqlite bulk insert (one prepared statement, one
/// transaction, WAL with `synchronous=FULL`, the server's own `sessions` table layout
/// and the server's page cache size), and returns the rows inserted and the time from
/// `BEGIN` to after `COMMIT`.
pub fn bare_rusqlite_insert(
    path: &Path,
    batches: &[WireBatch],
) -> Result<(usize, Duration), rusqlite::Error> {
    let mut conn = Connection::open(path)?;
    conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0))?;
    conn.execute_batch(
        "PRAGMA synchronous=FULL;
         PRAGMA cache_size=-32768;
         CREATE TABLE IF NOT EXISTS sessions (
             id BLOB PRIMARY KEY, device INTEGER NOT NULL, revision INTEGER NOT NULL,
             run INTEGER NOT NULL, mono_ms INTEGER NOT NULL, start_ms INTEGER NOT NULL,
             skew_ms INTEGER NOT NULL, duration_s INTEGER NOT NULL, end_reason INTEGER,
             user_kind INTEGER NOT NULL, purposes INTEGER NOT NULL, gender INTEGER NOT NULL,
             age_group INTEGER NOT NULL, group_size INTEGER NOT NULL, patron INTEGER,
             rx_kib INTEGER NOT NULL, tx_kib INTEGER NOT NULL, online_s INTEGER NOT NULL,
             quality INTEGER NOT NULL, client_quality INTEGER NOT NULL
         ) STRICT, WITHOUT ROWID;",
    )?;
    // The rows are made before the clock starts: the baseline is the database's work.
    let mut rows = Vec::new();
    for (device, batch) in batches.iter().enumerate() {
        let s = &batch.sessions;
        let mut start = 0i64;
        for i in 0..s.id.len() {
            start += s.started_at_delta_ms[i];
            rows.push((
                s.id[i].0,
                device as i64,
                s.revision[i],
                s.run[i],
                s.started_mono_ms[i] as i64,
                start,
                s.duration_s[i] as i64,
                s.end_reason[i].map(codes::end_reason_code),
                codes::user_kind_code(s.user_kind[i]),
                codes::purposes_mask(&s.purposes[i]),
                codes::gender_code(s.gender[i]),
                codes::age_group_code(s.age_group[i]),
                s.group_size[i],
                s.patron[i],
                (s.rx_kib[i] as i64, s.tx_kib[i] as i64, s.online_s[i] as i64),
                codes::time_quality_code(s.time_quality[i]),
            ));
        }
    }
    let started = Instant::now();
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare(
            "INSERT INTO sessions VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8, ?9, ?10, ?11, ?12,
                 ?13, ?14, ?15, ?16, ?17, 1, ?18)",
        )?;
        for r in &rows {
            insert.execute(params![
                r.0.as_bytes().as_slice(),
                r.1,
                r.2,
                r.3,
                r.4,
                r.5,
                r.6,
                r.7,
                r.8,
                r.9,
                r.10,
                r.11,
                r.12,
                r.13,
                r.14.0,
                r.14.1,
                r.14.2,
                r.15
            ])?;
        }
    }
    tx.commit()?;
    Ok((rows.len(), started.elapsed()))
}
