//! What the benchmark programs need besides simulated PCs: a district enrolled in a
//! store, the bytes each session costs on disk, and the baseline of a bare rusqlite bulk
//! insert of the same rows.

use std::path::Path;
use std::time::{Duration, Instant};

use jejak_domain::{WireBatch, Zone};
use jejak_server::codes;
use jejak_server::{Delivery, EnrollError, ServerStore, SqliteStore};
use rusqlite::{Connection, params};

use crate::sim::{Pace, SimPc, batches, district, month_start, simulate_at};

/// Enrolls a district made by [`district`](crate::sim::district) in `store` (a library for every three PCs)
/// and returns each PC's token, in the district's order.
pub async fn enroll_district(
    store: &dyn ServerStore,
    district: &[SimPc],
) -> Result<Vec<String>, EnrollError> {
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

/// What a low-volume record kind costs: the JSON bytes of a batch of its records (the
/// caller compresses it as the PC does) and the server's bytes on disk per record.
#[derive(Debug, Clone)]
pub struct EntryFigure {
    pub records: usize,
    /// The batch as the PC would send it (uncompressed JSON).
    pub batch_json: Vec<u8>,
    /// The compacted file's growth per record: the `entries` rows, their counters
    /// (`entry_months`) and the indexes.
    pub disk_bytes_per_record: f64,
}

/// `count` records made by `make` (from their index, a seeded random source and the
/// desk PC's library, PC and run) in one batch, stored in a new store in `dir`.
async fn entry_figures(
    dir: &Path,
    count: usize,
    mut make: impl FnMut(
        usize,
        &mut rand::rngs::StdRng,
        &jejak_domain::LibraryCode,
        &jejak_domain::PcCode,
        uuid::Uuid,
    ) -> jejak_domain::RecordBody,
) -> Result<EntryFigure, Box<dyn std::error::Error + Send + Sync>> {
    use jejak_domain::{ChangeRecord, ClientInstant, LibraryCode, PcCode};
    use rand::SeedableRng;

    let store = SqliteStore::open(&dir.join("entry-bench.db"))?;
    let library = LibraryCode::parse("3302012001")?;
    let pc = PcCode::parse("meja")?;
    store
        .add_library(&library, "Perpustakaan Desa", Zone::Wib)
        .await?;
    store.add_device(&library, &pc).await?;
    let device = store
        .find_device(&library, &pc)
        .await?
        .ok_or("the device just enrolled is missing")?;
    let empty_bytes = store.compact().await?;

    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    let run = uuid::Uuid::now_v7();
    let records: Vec<ChangeRecord> = (0..count)
        .map(|i| {
            let body = make(i, &mut rng, &library, &pc, run);
            let entry = body.entry();
            ChangeRecord {
                seq: i as u64 + 1,
                recorded_at: entry
                    .as_ref()
                    .and_then(|e| chrono::DateTime::from_timestamp_millis(e.wall_ms))
                    .unwrap_or_else(month_start),
                run_id: run,
                mono_ms: entry.map_or(0, |e| e.mono_ms),
                body,
            }
        })
        .collect();
    let sync_at = month_start() + chrono::Duration::days(40);
    let batch = WireBatch::encode(
        uuid::Uuid::now_v7(),
        library,
        pc,
        uuid::Uuid::now_v7(),
        1,
        count as u64,
        ClientInstant {
            run,
            mono_ms: 40 * 86_400_000,
            wall_ms: sync_at.timestamp_millis(),
        },
        Vec::new(),
        &records,
    );
    let batch_json = serde_json::to_vec(&batch)?;
    store
        .ingest(&device, batch, sync_at, Delivery::Online)
        .await?;
    let full_bytes = store.compact().await?;
    Ok(EntryFigure {
        records: count,
        batch_json,
        disk_bytes_per_record: full_bytes.saturating_sub(empty_bytes) as f64 / count.max(1) as f64,
    })
}

/// Gives each library of `district` a desk PC (`meja`) that sends a year of its desk
/// from `first_day` ([`crate::sim::desk_year`]: visitor book, activities, member counts)
/// as it would on `sync_at`; returns the records stored. The report benchmarks' stress
/// district keeps its desks this way on both backends.
pub async fn store_desk_years(
    store: &dyn ServerStore,
    district: &[SimPc],
    first_day: chrono::DateTime<chrono::Utc>,
    sync_at: chrono::DateTime<chrono::Utc>,
) -> usize {
    let desks = district
        .iter()
        .filter(|pc| pc.pc.as_str() == "pc-01")
        .enumerate()
        .map(|(i, pc)| SimPc {
            library: pc.library.clone(),
            pc: jejak_domain::PcCode::parse("meja").expect("a valid PC code"),
            epoch: uuid::Uuid::from_u64_pair(99, i as u64),
            clock_error_ms: 0,
        });
    let mut stored = 0;
    for (i, desk) in desks.enumerate() {
        store
            .add_device(&desk.library, &desk.pc)
            .await
            .expect("the desk PC is added");
        let device = store
            .find_device(&desk.library, &desk.pc)
            .await
            .expect("the store answers")
            .expect("the desk PC was just added");
        let log = crate::sim::desk_year(&desk, first_day, 1_000 + i as u64);
        for batch in batches(&desk, &log, 500, sync_at) {
            let ack = store
                .ingest(&device, batch, sync_at, Delivery::Online)
                .await
                .expect("the desk's batch is stored");
            assert!(ack.rejected.is_empty(), "{:?}", ack.rejected);
        }
        stored += log.records.len();
    }
    stored
}

/// A month of a busy village library's visitor book (`visits` entries of mixed
/// categories, about 40 a day, a few of them groups and a few undone).
pub async fn visit_figures(
    dir: &Path,
    visits: usize,
) -> Result<EntryFigure, Box<dyn std::error::Error + Send + Sync>> {
    use jejak_domain::{AgeGroup, Gender, RecordBody, UserKind, Visit, VisitPurpose};
    use rand::Rng;

    entry_figures(dir, visits, |i, rng, library, pc, run| {
        // Opening hours, 08:00 to 15:00 WIB, about 40 a day.
        let at = month_start()
            + chrono::Duration::days((i / 40) as i64)
            + chrono::Duration::hours(1)
            + chrono::Duration::seconds(i64::from(rng.random_range(0..25_200u32)));
        let group = rng.random_range(0..20u32) == 0;
        let pick = |rng: &mut rand::rngs::StdRng, n: usize| rng.random_range(0..n);
        RecordBody::Visit(Visit {
            id: uuid::Uuid::now_v7(),
            revision: 1,
            library: library.clone(),
            pc: pc.clone(),
            at,
            run_id: run,
            mono_ms: 1_000 + i as u64 * 600_000,
            gender: Gender::ALL[pick(rng, 2)],
            age_group: AgeGroup::ALL[pick(rng, 6)],
            user_kind: if group {
                UserKind::Rombongan
            } else {
                UserKind::VISITORS[pick(rng, 2)]
            },
            purpose: VisitPurpose::ALL[pick(rng, VisitPurpose::ALL.len())],
            people: if group { rng.random_range(5..40) } else { 1 },
            withdrawn: rng.random_range(0..50u32) == 0,
        })
    })
    .await
}

/// Activities as a village library records them: `activities` of mixed types, entered
/// a few days after they were held, with a title of about 40 characters, a partner
/// half of the time, a line of notes a third of the time, and participants in four
/// to eight gender × age cells.
pub async fn activity_figures(
    dir: &Path,
    activities: usize,
) -> Result<EntryFigure, Box<dyn std::error::Error + Send + Sync>> {
    use jejak_domain::{
        Activity, ActivityPlace, ActivityType, AgeGroup, Gender, Participants, RecordBody,
    };
    use rand::Rng;

    entry_figures(dir, activities, |i, rng, library, pc, run| {
        let at = month_start()
            + chrono::Duration::hours(i as i64 * 3)
            + chrono::Duration::seconds(i64::from(rng.random_range(0..3_600u32)));
        let mut participants = Participants::default();
        for _ in 0..rng.random_range(4..9) {
            participants.set(
                Gender::ALL[rng.random_range(0..2)],
                AgeGroup::ALL[rng.random_range(0..6)],
                rng.random_range(1..15),
            );
        }
        let activity_type = ActivityType::ALL[rng.random_range(0..ActivityType::ALL.len())];
        RecordBody::Activity(Activity {
            id: uuid::Uuid::now_v7(),
            revision: 1,
            library: library.clone(),
            pc: pc.clone(),
            at,
            run_id: run,
            mono_ms: 1_000 + i as u64 * 600_000,
            date: at.date_naive() - chrono::Days::new(rng.random_range(0..5)),
            start: chrono::NaiveTime::from_hms_opt(rng.random_range(8..15), 0, 0)
                .unwrap_or_default(),
            duration_minutes: rng.random_range(4..13) * 15,
            activity_type,
            title: format!(
                "{} literasi digital untuk warga desa {i}",
                activity_type.label(jejak_domain::Lang::Id)
            ),
            partner: rng
                .random_bool(0.5)
                .then(|| "Karang Taruna Desa Dermaji".to_string()),
            place: ActivityPlace::ALL[rng.random_range(0..2)],
            participants,
            notes: rng
                .random_bool(0.33)
                .then(|| "Peserta membawa ponsel sendiri; lanjutan bulan depan.".to_string()),
        })
    })
    .await
}
