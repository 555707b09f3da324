//! One storage suite for both backends: every test here runs against the embedded
//! SQLite store and against PostgreSQL, through `Arc<dyn ServerStore>` only.
//!
//! PostgreSQL tests need `JEJAK_TEST_POSTGRES` (a URL of a server where databases can be
//! created, as `scripts/pg-test-cluster.sh start` prints). Without it they print a
//! SKIPPED line and pass, unless `JEJAK_REQUIRE_POSTGRES=1` (CI), when they fail. Each
//! PostgreSQL test makes its own database with a random name and drops it after, so the
//! tests run in parallel.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use jejak_domain::{
    ChangeRecord, DetailField, LibraryCode, LibraryDetails, LibraryDetailsEdit, PcCode, RecordBody,
    WireBatch, Zone,
};
use jejak_server::report::FactsDetail;
use jejak_server::{
    AuthError, Delivery, DeviceRef, EnrollError, IngestError, Principal, ServerStore, SqliteStore,
};
use jejak_testkit::postgres::TestDatabase;
use jejak_testkit::sim::{self, SimLog, SimPc};
use uuid::Uuid;

/// A store under test and what must be cleaned up after it.
struct Harness {
    store: Arc<dyn ServerStore>,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres(TestDatabase),
}

impl Harness {
    /// The URL of the harness's own PostgreSQL database.
    fn postgres_url(&self) -> String {
        match &self.cleanup {
            Cleanup::Postgres(database) => database.url.clone(),
            Cleanup::Sqlite(_) => unreachable!("a PostgreSQL harness"),
        }
    }

    async fn finish(self) {
        drop(self.store);
        if let Cleanup::Postgres(database) = self.cleanup {
            database.remove().await;
        }
    }
}

fn sqlite() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("server.db")).unwrap();
    Harness {
        store: Arc::new(store),
        cleanup: Cleanup::Sqlite(dir),
    }
}

/// A store on a fresh PostgreSQL database, or `None` (after a visible notice) when no
/// server is configured and none is required.
async fn postgres() -> Option<Harness> {
    let admin = jejak_testkit::postgres::admin_or_skip()?;
    let database = TestDatabase::create(&admin, "jejak_test").await;
    let store = jejak_server::PostgresStore::open(&database.url)
        .await
        .unwrap();
    Some(Harness {
        store: Arc::new(store),
        cleanup: Cleanup::Postgres(database),
    })
}

/// Instantiates a test body `async fn name(store: Arc<dyn ServerStore>)` for both
/// backends, as `name::sqlite` and `name::postgres`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let h = super::sqlite();
                super::$name(h.store.clone()).await;
                h.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(h) = super::postgres().await {
                    super::$name(h.store.clone()).await;
                    h.finish().await;
                }
            }
        }
    )*};
}

both_backends!(
    enrollment_and_tokens,
    a_signing_key_is_registered_once_per_token,
    a_long_batch_with_one_stored_session_stores_the_rest_once,
    the_same_batch_again_and_concurrently_is_stored_once,
    a_gap_is_refused_with_the_expected_seq,
    revisions_replace_and_conflicts_and_invalid_records_are_rejected,
    rollups_equal_a_recount_and_rebuild_repairs_nothing_lost,
    two_hundred_pcs_ingesting_at_once_lose_nothing,
    letterhead_long_open_sessions_and_the_latest_month,
    one_batch_with_two_revisions_of_a_session_keeps_the_newer,
    pruned_months_keep_their_reports_and_refuse_old_records,
    new_epochs_at_seq_1_are_counted_and_limited_per_day,
    seqs_a_pc_declares_lost_are_kept_once_and_never_overlap_a_record,
    a_run_the_next_right_clock_bounds_is_dated_again_and_its_month_follows,
    an_anchor_from_a_later_http_sync_dates_what_a_bundle_carried,
    an_acknowledgements_time_dates_the_run_it_came_back_in,
    retention_keeps_the_sessions_whose_month_cannot_be_told,
    library_details_round_trip_and_edits_change_only_what_is_given,
    visits_and_member_counts_are_stored_revised_withdrawn_and_counted_once,
    activities_are_stored_edited_and_counted_on_their_date,
    the_village_report_shows_visits_members_and_activities_cell_by_cell,
);

fn lib(code: &str) -> LibraryCode {
    LibraryCode::parse(code).unwrap()
}

fn pc(code: &str) -> PcCode {
    PcCode::parse(code).unwrap()
}

fn sim_pc(library: &str, pc_code: &str, seed: u64) -> SimPc {
    SimPc {
        library: lib(library),
        pc: pc(pc_code),
        epoch: Uuid::from_u64_pair(seed, 1),
        clock_error_ms: 1_500,
    }
}

/// The fixed arrival time of the suite's batches: a week after the simulated month.
fn arrival() -> DateTime<Utc> {
    sim::month_start() + Duration::days(38)
}

fn log_of(pc: &SimPc, sessions: usize, seed: u64) -> SimLog {
    sim::simulate(pc, sessions, sim::month_start(), seed)
}

async fn enroll(store: &dyn ServerStore, library: &str, pc_code: &str) -> (String, DeviceRef) {
    let code = lib(library);
    if !store
        .libraries()
        .await
        .unwrap()
        .iter()
        .any(|l| l.code == code)
    {
        store
            .add_library(&code, "Perpustakaan Desa", Zone::Wib)
            .await
            .unwrap();
    }
    let token = store.add_device(&code, &pc(pc_code)).await.unwrap();
    let device = match store.authenticate(token.expose()).await.unwrap() {
        Principal::Device { .. } => store
            .authenticate(token.expose())
            .await
            .unwrap()
            .device()
            .unwrap(),
        other => panic!("not a device: {other:?}"),
    };
    (token.expose().to_string(), device)
}

async fn ingest(
    store: &dyn ServerStore,
    device: &DeviceRef,
    batch: &WireBatch,
) -> Result<jejak_domain::BatchAck, IngestError> {
    store
        .ingest(device, batch.clone(), arrival(), Delivery::Online)
        .await
}

fn session_mut(record: &mut ChangeRecord) -> &mut jejak_domain::Session {
    match &mut record.body {
        RecordBody::Session(s) => s,
        _ => panic!("not a session"),
    }
}

/// A batch of the log's record `index` alone, at `seq`.
fn one_record(pc: &SimPc, log: &SimLog, index: usize, seq: u64) -> WireBatch {
    let mut record = log.records[index].clone();
    record.seq = seq;
    let mut single = log.clone();
    single.records = vec![record];
    sim::batches(pc, &single, 10, arrival() - Duration::seconds(1)).remove(0)
}

async fn enrollment_and_tokens(store: Arc<dyn ServerStore>) {
    let store = store.as_ref();
    let dermaji = lib("dermaji");
    store
        .add_library(&dermaji, "Perpustakaan Desa Dermaji", Zone::Wib)
        .await
        .unwrap();
    assert!(matches!(
        store.add_library(&dermaji, "again", Zone::Wib).await,
        Err(EnrollError::LibraryExists(_))
    ));
    assert!(matches!(
        store.add_library(&lib("kosong"), "  ", Zone::Wib).await,
        Err(EnrollError::InvalidName(_))
    ));
    assert!(matches!(
        store.add_device(&lib("nowhere"), &pc("pc-01")).await,
        Err(EnrollError::UnknownLibrary(_))
    ));
    let token = store.add_device(&dermaji, &pc("pc-01")).await.unwrap();
    let principal = store.authenticate(token.expose()).await.unwrap();
    let device = principal.device().unwrap();
    assert_eq!(
        (device.library.as_str(), device.pc.as_str()),
        ("dermaji", "pc-01")
    );
    assert!(matches!(
        store.add_device(&dermaji, &pc("pc-01")).await,
        Err(EnrollError::DeviceActive { .. })
    ));
    assert_eq!(
        store.find_device(&dermaji, &pc("pc-01")).await.unwrap(),
        Some(device.clone())
    );
    assert_eq!(
        store.device_keys(&device).await.unwrap(),
        Some(jejak_server::DeviceKeys {
            token_hash: jejak_server::token_hash(token.expose()),
            public_key: None,
        })
    );
    let libraries = store.libraries().await.unwrap();
    assert_eq!(libraries.len(), 1);
    assert_eq!(libraries[0].active_devices, 1);

    // Revoked: refused as revoked (not unknown); its data and number survive a new token.
    store.revoke_device(&dermaji, &pc("pc-01")).await.unwrap();
    assert!(matches!(
        store.authenticate(token.expose()).await,
        Err(AuthError::Revoked)
    ));
    assert!(matches!(
        store.revoke_device(&dermaji, &pc("pc-01")).await,
        Err(EnrollError::AlreadyRevoked { .. })
    ));
    assert!(matches!(
        store.revoke_device(&dermaji, &pc("pc-09")).await,
        Err(EnrollError::UnknownDevice { .. })
    ));
    assert_eq!(
        store.find_device(&dermaji, &pc("pc-01")).await.unwrap(),
        None
    );
    assert_eq!(store.device_keys(&device).await.unwrap(), None);
    let again = store.add_device(&dermaji, &pc("pc-01")).await.unwrap();
    let renewed = store
        .authenticate(again.expose())
        .await
        .unwrap()
        .device()
        .unwrap();
    assert_eq!(renewed.id, device.id, "a re-enrolled PC keeps its number");
    let devices = store.devices().await.unwrap();
    assert_eq!(devices.len(), 1);
    assert!(devices[0].active);

    // Staff tokens read and never write.
    let staff = store.add_staff("Ibu Sari").await.unwrap();
    assert_eq!(
        store.authenticate(staff.expose()).await.unwrap(),
        Principal::Staff {
            name: "Ibu Sari".into()
        }
    );
    assert!(matches!(
        store.add_staff("Ibu Sari").await,
        Err(EnrollError::StaffExists(_))
    ));
    let staff_hash = jejak_server::token_hash(staff.expose());
    assert!(store.staff_token_active(&staff_hash).await.unwrap());
    let device_hash = jejak_server::token_hash(again.expose());
    assert!(
        !store.staff_token_active(&device_hash).await.unwrap(),
        "a device token is no staff token"
    );
    store.revoke_staff("Ibu Sari").await.unwrap();
    assert!(matches!(
        store.authenticate(staff.expose()).await,
        Err(AuthError::Revoked)
    ));
    assert!(!store.staff_token_active(&staff_hash).await.unwrap());
    assert!(matches!(
        store.revoke_staff("Ibu Sari").await,
        Err(EnrollError::UnknownStaff(_))
    ));
    assert!(matches!(
        store.authenticate("jejak_dev_0000").await,
        Err(AuthError::Unknown)
    ));
    assert!(matches!(
        store.authenticate("not a token").await,
        Err(AuthError::Unknown)
    ));
}

/// A PC's signing key: registered under its token, the same key again changes nothing,
/// another key is refused, a revoked token registers nothing, and a new token (a new
/// enrollment) starts without a key.
async fn a_signing_key_is_registered_once_per_token(store: Arc<dyn ServerStore>) {
    use jejak_server::KeyRegistration;
    let (token, device) = enroll(store.as_ref(), "dermaji", "pc-01").await;
    let hash = jejak_server::token_hash(&token);
    let (key, other) = ([7u8; 32], [8u8; 32]);
    let keys = async || store.device_keys(&device).await.unwrap().unwrap();
    assert_eq!(keys().await.public_key, None);
    assert_eq!(
        store
            .register_device_key(&hash, &key, arrival())
            .await
            .unwrap(),
        KeyRegistration::Registered
    );
    assert_eq!(keys().await.public_key, Some(key));
    assert_eq!(keys().await.token_hash, hash);
    assert_eq!(
        store
            .register_device_key(&hash, &key, arrival())
            .await
            .unwrap(),
        KeyRegistration::AlreadyRegistered
    );
    assert_eq!(
        store
            .register_device_key(&hash, &other, arrival())
            .await
            .unwrap(),
        KeyRegistration::OtherKeyRegistered
    );
    assert_eq!(keys().await.public_key, Some(key), "the first key stays");
    assert_eq!(
        store
            .register_device_key(&[1u8; 32], &other, arrival())
            .await
            .unwrap(),
        KeyRegistration::NoActiveToken,
        "an unknown token registers nothing"
    );
    store
        .revoke_device(&lib("dermaji"), &pc("pc-01"))
        .await
        .unwrap();
    assert_eq!(
        store
            .register_device_key(&hash, &other, arrival())
            .await
            .unwrap(),
        KeyRegistration::NoActiveToken
    );
    let renewed = store
        .add_device(&lib("dermaji"), &pc("pc-01"))
        .await
        .unwrap();
    assert_eq!(
        keys().await,
        jejak_server::DeviceKeys {
            token_hash: jejak_server::token_hash(renewed.expose()),
            public_key: None,
        },
        "a new token starts without a key"
    );
    assert_eq!(
        store
            .register_device_key(&renewed.hash(), &other, arrival())
            .await
            .unwrap(),
        KeyRegistration::Registered
    );
    assert_eq!(keys().await.public_key, Some(other));
}

async fn the_same_batch_again_and_concurrently_is_stored_once(store: Arc<dyn ServerStore>) {
    let (_, device) = enroll(store.as_ref(), "dermaji", "pc-01").await;
    let sim = sim_pc("dermaji", "pc-01", 7);
    let log = log_of(&sim, 40, 7);
    let batches = sim::batches(&sim, &log, 20, arrival() - Duration::seconds(1));
    assert_eq!(batches.len(), 2);

    // The first batch eight times at once: stored once, the others are duplicates.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, device, batch) = (store.clone(), device.clone(), batches[0].clone());
        tasks.push(tokio::spawn(async move {
            ingest(store.as_ref(), &device, &batch).await.unwrap()
        }));
    }
    let mut new = 0;
    let mut duplicates = 0;
    for task in tasks {
        let ack = task.await.unwrap();
        assert_eq!(ack.held_seq, 20);
        new += ack.new;
        duplicates += ack.duplicates;
    }
    assert_eq!((new, duplicates), (20, 7 * 20));
    let ack = ingest(store.as_ref(), &device, &batches[1]).await.unwrap();
    assert_eq!((ack.new, ack.held_seq), (20, 40));
    let facts_before = store
        .month_facts(
            sim::month_start().date_naive(),
            None,
            FactsDetail::Breakdowns,
        )
        .await
        .unwrap();

    // Both again, "months later": nothing changes.
    for batch in &batches {
        let ack = ingest(store.as_ref(), &device, batch).await.unwrap();
        assert_eq!((ack.new, ack.duplicates), (0, 20));
    }
    let state = store.device_state(&device).await.unwrap();
    assert_eq!((state.sessions, state.epochs.len()), (40, 1));
    assert_eq!(state.epochs[0].held_seq, 40);
    let stored = store.sessions(&device).await.unwrap();
    assert_eq!(stored.len(), 40);
    for record in &log.records {
        let RecordBody::Session(s) = &record.body else {
            continue;
        };
        let held = stored.iter().find(|x| x.id == s.id).unwrap();
        assert!(held.matches(s), "{held:?} vs {s:?}");
    }
    assert_eq!(
        store
            .month_facts(
                sim::month_start().date_naive(),
                None,
                FactsDetail::Breakdowns
            )
            .await
            .unwrap(),
        facts_before
    );
    assert!(store.check_rollups().await.unwrap().is_consistent());
}

async fn a_gap_is_refused_with_the_expected_seq(store: Arc<dyn ServerStore>) {
    let (_, device) = enroll(store.as_ref(), "dermaji", "pc-01").await;
    let sim = sim_pc("dermaji", "pc-01", 4);
    let log = log_of(&sim, 10, 4);
    let batches = sim::batches(&sim, &log, 4, arrival() - Duration::seconds(1));
    match ingest(store.as_ref(), &device, &batches[1]).await {
        Err(IngestError::SeqGap {
            expected_seq,
            first_seq,
        }) => assert_eq!((expected_seq, first_seq), (1, 5)),
        other => panic!("expected a gap: {other:?}"),
    }
    assert_eq!(store.device_state(&device).await.unwrap().sessions, 0);
    ingest(store.as_ref(), &device, &batches[0]).await.unwrap();
    assert!(matches!(
        ingest(store.as_ref(), &device, &batches[2]).await,
        Err(IngestError::SeqGap {
            expected_seq: 5,
            ..
        })
    ));
    ingest(store.as_ref(), &device, &batches[1]).await.unwrap();
    let ack = ingest(store.as_ref(), &device, &batches[2]).await.unwrap();
    assert_eq!(ack.held_seq, 10);
    assert_eq!(store.device_state(&device).await.unwrap().sessions, 10);

    // A device that is no longer in the store (a forged reference) writes nothing.
    let ghost = DeviceRef {
        id: jejak_server::DeviceId(9_999),
        ..device.clone()
    };
    assert!(ingest(store.as_ref(), &ghost, &batches[0]).await.is_err());
}

/// A long batch of revised sessions, one of which an earlier batch stored: each is stored
/// once and the stored one counts as a duplicate. (On PostgreSQL this is the batch whose
/// optimistic COPY fails on the key and falls back to `INSERT … ON CONFLICT`; a short one
/// looks its revised sessions up first.)
async fn a_long_batch_with_one_stored_session_stores_the_rest_once(store: Arc<dyn ServerStore>) {
    let sent = repeat_one_stored_session(store.as_ref(), "pc-01", 60).await;
    assert!(sent > 32, "long enough to be copied optimistically");
    // And a short batch: two sessions, one stored.
    repeat_one_stored_session(store.as_ref(), "pc-02", 2).await;
}

/// Stores the first session of a log of `sessions` revised sessions (revision 1 or
/// more), then sends the whole log again from seq 2, and checks that only that session
/// was a duplicate; returns how many sessions the second batch carried.
async fn repeat_one_stored_session(
    store: &dyn ServerStore,
    pc_code: &str,
    sessions: usize,
) -> usize {
    let (_, device) = enroll(store, "dermaji", pc_code).await;
    let sim = sim_pc("dermaji", pc_code, sessions as u64);
    let mut log = log_of(&sim, sessions, sessions as u64);
    for record in &mut log.records {
        if let RecordBody::Session(s) = &mut record.body {
            s.revision = s.revision.max(1);
        }
    }
    let first = log
        .records
        .iter()
        .position(|r| matches!(r.body, RecordBody::Session(_)))
        .unwrap();
    let ack = ingest(store, &device, &one_record(&sim, &log, first, 1))
        .await
        .unwrap();
    assert_eq!(ack.new, 1);
    let stored_sessions = log
        .records
        .iter()
        .filter(|r| matches!(r.body, RecordBody::Session(_)))
        .count();
    for (i, record) in log.records.iter_mut().enumerate() {
        record.seq = i as u64 + 2;
    }
    let batch = sim::batches(&sim, &log, 1_000, arrival() - Duration::seconds(1)).remove(0);
    let ack = ingest(store, &device, &batch).await.unwrap();
    assert_eq!(ack.duplicates, 1);
    assert_eq!(ack.new as usize, log.records.len() - 1);
    assert!(ack.rejected.is_empty(), "{:?}", ack.rejected);
    assert_eq!(
        store.sessions(&device).await.unwrap().len(),
        stored_sessions
    );
    assert!(store.check_rollups().await.unwrap().is_consistent());
    batch.sessions.id.len()
}

async fn revisions_replace_and_conflicts_and_invalid_records_are_rejected(
    store: Arc<dyn ServerStore>,
) {
    let (_, device) = enroll(store.as_ref(), "dermaji", "pc-01").await;
    let sim = sim_pc("dermaji", "pc-01", 3);
    let mut log = log_of(&sim, 3, 3);
    session_mut(&mut log.records[0]).revision = 2;
    let id = session_mut(&mut log.records[0]).id;

    let ack = ingest(store.as_ref(), &device, &one_record(&sim, &log, 0, 1))
        .await
        .unwrap();
    assert_eq!(ack.new, 1);
    let find =
        |all: Vec<jejak_server::StoredSession>| all.into_iter().find(|s| s.id == id).unwrap();
    let original = find(store.sessions(&device).await.unwrap());

    // Same id, same revision, other content: a conflict; the stored one is kept.
    let mut changed = log.clone();
    session_mut(&mut changed.records[0]).duration_secs += 600;
    session_mut(&mut changed.records[0]).ended_at = None;
    session_mut(&mut changed.records[0]).end_reason = None;
    let ack = ingest(store.as_ref(), &device, &one_record(&sim, &changed, 0, 2))
        .await
        .unwrap();
    assert_eq!((ack.new, ack.held_seq), (0, 2));
    assert_eq!(ack.rejected.len(), 1);
    assert_eq!(
        (ack.rejected[0].seq, ack.rejected[0].code.as_str()),
        (2, "conflict")
    );
    assert_eq!(find(store.sessions(&device).await.unwrap()), original);

    // The same conflicting change again is counted once.
    ingest(store.as_ref(), &device, &one_record(&sim, &changed, 0, 2))
        .await
        .unwrap();
    assert_eq!(store.device_state(&device).await.unwrap().rejected, 1);

    // A higher revision replaces it (and its rollup contribution); a lower one after
    // it is a duplicate.
    let mut newer = changed.clone();
    session_mut(&mut newer.records[0]).revision = 3;
    let ack = ingest(store.as_ref(), &device, &one_record(&sim, &newer, 0, 3))
        .await
        .unwrap();
    assert_eq!(ack.new, 1);
    let replaced = find(store.sessions(&device).await.unwrap());
    assert_eq!(replaced.revision, 3);
    assert_eq!(replaced.end_reason, None);
    assert_eq!(replaced.duration_secs, original.duration_secs + 600);
    let ack = ingest(store.as_ref(), &device, &one_record(&sim, &log, 0, 4))
        .await
        .unwrap();
    assert_eq!(ack.duplicates, 1);
    assert_eq!(find(store.sessions(&device).await.unwrap()), replaced);

    // An invalid record is rejected and kept for review; the rest goes in.
    let mut invalid = log.clone();
    session_mut(&mut invalid.records[1]).patron.group_size = 0;
    let records: Vec<ChangeRecord> = invalid
        .records
        .iter()
        .enumerate()
        .map(|(i, r)| ChangeRecord {
            seq: 5 + i as u64,
            ..r.clone()
        })
        .collect();
    let mut renumbered = invalid.clone();
    renumbered.records = records;
    let batch = sim::batches(&sim, &renumbered, 10, arrival() - Duration::seconds(1)).remove(0);
    let ack = ingest(store.as_ref(), &device, &batch).await.unwrap();
    assert_eq!(ack.rejected.len(), 1);
    assert_eq!(
        (ack.rejected[0].seq, ack.rejected[0].code.as_str()),
        (6, "invalid")
    );
    assert_eq!(ack.held_seq, 7);
    let state = store.device_state(&device).await.unwrap();
    assert_eq!((state.sessions, state.rejected), (2, 2));
    assert!(store.check_rollups().await.unwrap().is_consistent());
}

/// A small district's month through both stores: the same facts, the same sessions.
async fn fill_district(store: &dyn ServerStore, pcs: usize, sessions: usize) -> Vec<DeviceRef> {
    let sims = sim::district(pcs, 11);
    let mut devices = Vec::new();
    for sim in &sims {
        let (_, device) = enroll(store, sim.library.as_str(), sim.pc.as_str()).await;
        devices.push(device);
    }
    for (i, (sim, device)) in sims.iter().zip(&devices).enumerate() {
        let log = log_of(sim, sessions, 100 + i as u64);
        for batch in sim::batches(sim, &log, 25, arrival() - Duration::seconds(1)) {
            ingest(store, device, &batch).await.unwrap();
        }
    }
    devices
}

async fn rollups_equal_a_recount_and_rebuild_repairs_nothing_lost(store: Arc<dyn ServerStore>) {
    let devices = fill_district(store.as_ref(), 7, 60).await;
    let check = store.check_rollups().await.unwrap();
    assert!(check.is_consistent(), "{check:?}");
    assert!(check.rows_checked > 0);
    let month = sim::month_start().date_naive();
    let facts = store
        .month_facts(month, None, FactsDetail::Breakdowns)
        .await
        .unwrap();
    // A period's months read together are the months read one by one (what they share,
    // libraries and PCs, is read once), in the order asked for.
    let months = [
        month.checked_sub_months(chrono::Months::new(1)).unwrap(),
        month,
        month.checked_add_months(chrono::Months::new(1)).unwrap(),
    ];
    for detail in [FactsDetail::Days, FactsDetail::Breakdowns] {
        let together = store.months_facts(&months, None, detail).await.unwrap();
        let mut one_by_one = Vec::new();
        for m in months {
            one_by_one.push(store.month_facts(m, None, detail).await.unwrap());
        }
        assert_eq!(together, one_by_one);
        assert_eq!(together[1].month, month);
        assert!(together[1].libraries.iter().any(|l| !l.days.is_empty()));
    }
    store.rebuild_rollups().await.unwrap();
    assert!(store.check_rollups().await.unwrap().is_consistent());
    assert_eq!(
        store
            .month_facts(month, None, FactsDetail::Breakdowns)
            .await
            .unwrap(),
        facts
    );

    // The same batches into a fresh SQLite store give the same facts and sessions: the
    // backends agree to the byte on what a month was.
    let reference = sqlite();
    let reference_devices = fill_district(reference.store.as_ref(), 7, 60).await;
    assert_eq!(
        reference
            .store
            .month_facts(month, None, FactsDetail::Breakdowns)
            .await
            .unwrap(),
        facts
    );
    let one = lib("lib-01");
    assert_eq!(
        reference
            .store
            .month_facts(month, Some(&one), FactsDetail::Days)
            .await
            .unwrap(),
        store
            .month_facts(month, Some(&one), FactsDetail::Days)
            .await
            .unwrap()
    );
    for (mine, theirs) in devices.iter().zip(&reference_devices) {
        assert_eq!(
            store.sessions(mine).await.unwrap(),
            reference.store.sessions(theirs).await.unwrap()
        );
        assert_eq!(
            store.events(mine).await.unwrap(),
            reference.store.events(theirs).await.unwrap()
        );
        let (a, b) = (
            store.device_state(mine).await.unwrap(),
            reference.store.device_state(theirs).await.unwrap(),
        );
        assert_eq!(
            (a.sessions, a.events, &a.epochs),
            (b.sessions, b.events, &b.epochs)
        );
    }
    // Everything but the enrollment instants (the system clock's) is equal.
    let strip = |mut all: Vec<jejak_server::DeviceInfo>| {
        all.iter_mut().for_each(|d| d.enrolled_at_ms = 0);
        all
    };
    assert_eq!(
        strip(store.devices().await.unwrap()),
        strip(reference.store.devices().await.unwrap())
    );
    reference.finish().await;
}

async fn two_hundred_pcs_ingesting_at_once_lose_nothing(store: Arc<dyn ServerStore>) {
    const PCS: usize = 200;
    const SESSIONS: usize = 24;
    let sims = sim::district(PCS, 21);
    let mut devices = Vec::new();
    for sim in &sims {
        let (_, device) = enroll(store.as_ref(), sim.library.as_str(), sim.pc.as_str()).await;
        devices.push(device);
    }
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for (i, (sim, device)) in sims.iter().zip(&devices).enumerate() {
        let log = log_of(sim, SESSIONS, 500 + i as u64);
        let batches = sim::batches(sim, &log, 8, arrival() - Duration::seconds(1));
        let (store, device) = (store.clone(), device.clone());
        tasks.push(tokio::spawn(async move {
            let mut new = 0;
            for batch in &batches {
                new += ingest(store.as_ref(), &device, batch).await.unwrap().new;
            }
            // Every PC resends its first batch at the end (a lost acknowledgement).
            let again = ingest(store.as_ref(), &device, &batches[0]).await.unwrap();
            assert_eq!(again.new, 0);
            new
        }));
    }
    let mut new = 0;
    for task in tasks {
        new += task.await.unwrap();
    }
    println!(
        "{PCS} PCs, {} sessions ingested concurrently in {:?}",
        PCS * SESSIONS,
        started.elapsed()
    );
    assert_eq!(new as usize, PCS * SESSIONS);
    for device in &devices {
        let state = store.device_state(device).await.unwrap();
        assert_eq!(state.sessions as usize, SESSIONS);
        assert_eq!(state.epochs[0].held_seq as usize, SESSIONS);
    }
    let check = store.check_rollups().await.unwrap();
    assert!(check.is_consistent(), "{check:?}");

    // No lost update in the shared library rows: the facts equal those of the same
    // batches stored one after the other in SQLite.
    let reference = sqlite();
    let mut reference_devices = Vec::new();
    for sim in &sims {
        let (_, device) = enroll(
            reference.store.as_ref(),
            sim.library.as_str(),
            sim.pc.as_str(),
        )
        .await;
        reference_devices.push(device);
    }
    for (i, (sim, device)) in sims.iter().zip(&reference_devices).enumerate() {
        let log = log_of(sim, SESSIONS, 500 + i as u64);
        for batch in sim::batches(sim, &log, 8, arrival() - Duration::seconds(1)) {
            ingest(reference.store.as_ref(), device, &batch)
                .await
                .unwrap();
        }
    }
    let month = sim::month_start().date_naive();
    let mut ours = store
        .month_facts(month, None, FactsDetail::Breakdowns)
        .await
        .unwrap();
    let theirs = reference
        .store
        .month_facts(month, None, FactsDetail::Breakdowns)
        .await
        .unwrap();
    // The PCs' last batches arrived in another order; everything else is equal.
    assert_eq!(ours.libraries.len(), theirs.libraries.len());
    for (a, b) in ours.libraries.iter_mut().zip(&theirs.libraries) {
        a.last_batch_ms = b.last_batch_ms;
    }
    assert_eq!(ours, theirs);
    reference.finish().await;
}

async fn letterhead_long_open_sessions_and_the_latest_month(store: Arc<dyn ServerStore>) {
    assert_eq!(store.letterhead().await.unwrap(), None);
    let letterhead = jejak_server::report::Letterhead {
        lines: vec![
            "PEMERINTAH KABUPATEN BANYUMAS".into(),
            "DINAS ARSIP DAN PERPUSTAKAAN".into(),
        ],
        logo: None,
    };
    store
        .set_letterhead(Some(letterhead.clone()))
        .await
        .unwrap();
    assert_eq!(store.letterhead().await.unwrap(), Some(letterhead));
    store.set_letterhead(None).await.unwrap();
    assert_eq!(store.letterhead().await.unwrap(), None);

    // No session yet: no month with data (the dashboard then opens on the current one).
    assert_eq!(store.latest_session_month().await.unwrap(), None);
    let (_, device) = enroll(store.as_ref(), "dermaji", "pc-01").await;
    let sim = sim_pc("dermaji", "pc-01", 9);
    let mut log = log_of(&sim, 4, 9);
    session_mut(&mut log.records[1]).ended_at = None;
    session_mut(&mut log.records[1]).end_reason = None;
    let batch = sim::batches(&sim, &log, 10, arrival() - Duration::seconds(1)).remove(0);
    ingest(store.as_ref(), &device, &batch).await.unwrap();
    // The four sessions start in the first days of October 2026, the batch arrives in
    // November: October is the latest month with data.
    assert_eq!(
        store.latest_session_month().await.unwrap(),
        chrono::NaiveDate::from_ymd_opt(2026, 10, 1)
    );
    let open = store.long_open_sessions(arrival()).await.unwrap();
    assert_eq!(open, vec![(lib("dermaji"), pc("pc-01"), 1)]);
    assert!(
        store
            .long_open_sessions(sim::month_start() - Duration::days(1))
            .await
            .unwrap()
            .is_empty()
    );
    store.check_health().await.unwrap();
}

/// The rows of `sql` in the PostgreSQL database at `url`, on a connection of its own.
async fn pg_rows(url: &str, sql: &str) -> Vec<tokio_postgres::Row> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    let rows = client.query(sql, &[]).await.unwrap();
    drop(client);
    let _ = connection.await;
    rows
}

/// The names of the partitions of `sessions` in a PostgreSQL database, sorted.
async fn partitions_of_sessions(url: &str) -> Vec<String> {
    let mut names: Vec<String> = pg_rows(
        url,
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'sessions'::regclass",
    )
    .await
    .iter()
    .map(|r| r.get(0))
    .collect();
    names.sort();
    names
}

/// `PostgresStore::make_month_partitions` makes the months' partitions and the three
/// after them, once however often it is asked, and a batch of those months is stored in
/// its month's partition, not in the default one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn month_partitions_made_ahead_take_the_months_sessions() {
    let Some(harness) = postgres().await else {
        return;
    };
    let url = harness.postgres_url();
    assert_eq!(partitions_of_sessions(&url).await, ["sessions_default"]);
    let store = jejak_server::PostgresStore::open(&url).await.unwrap();
    let first = sim::month_start().date_naive();
    for _ in 0..2 {
        store
            .make_month_partitions(first, first + Duration::days(45))
            .await
            .unwrap();
    }
    assert_eq!(
        partitions_of_sessions(&url).await,
        [
            "sessions_default",
            "sessions_m202610",
            "sessions_m202611",
            "sessions_m202612",
            "sessions_m202701",
            "sessions_m202702",
        ]
    );

    let (_, device) = enroll(&store, "dermaji", "pc-01").await;
    let sim = sim_pc("dermaji", "pc-01", 5);
    let log = log_of(&sim, 6, 5);
    let batch = sim::batches(&sim, &log, 10, arrival()).remove(0);
    assert_eq!(ingest(&store, &device, &batch).await.unwrap().new, 6);
    let counts = pg_rows(
        &url,
        "SELECT (SELECT count(*) FROM sessions_m202610), (SELECT count(*) FROM sessions_default)",
    )
    .await;
    assert_eq!(
        (counts[0].get::<_, i64>(0), counts[0].get::<_, i64>(1)),
        (6, 0)
    );
    drop(store);
    harness.finish().await;
}

/// `jejak server copy`: a district's SQLite server copied to PostgreSQL, interrupted
/// twice and resumed, ends with the same counts, consistent rollups, the same facts,
/// sessions and reports, and tokens that still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_from_sqlite_interrupted_and_resumed_gives_identical_reports() {
    let Some(target) = postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.db");
    let source: Arc<dyn ServerStore> = Arc::new(SqliteStore::open(&path).unwrap());
    let devices = fill_district(source.as_ref(), 7, 60).await;
    // A rejection, a revoked PC, a staff token and a letterhead travel too.
    let (token, device) = enroll(source.as_ref(), "dermaji", "pc-01").await;
    let sim = sim_pc("dermaji", "pc-01", 3);
    let mut log = log_of(&sim, 3, 3);
    session_mut(&mut log.records[1]).patron.group_size = 0;
    let batch = sim::batches(&sim, &log, 10, arrival() - Duration::seconds(1)).remove(0);
    assert_eq!(
        ingest(source.as_ref(), &device, &batch)
            .await
            .unwrap()
            .rejected
            .len(),
        1
    );
    source
        .revoke_device(&lib("lib-00"), &pc("pc-02"))
        .await
        .unwrap();
    let staff = source.add_staff("Ibu Sari").await.unwrap();
    source
        .set_letterhead(Some(jejak_server::report::Letterhead {
            lines: vec!["PEMERINTAH KABUPATEN BANYUMAS".into()],
            logo: None,
        }))
        .await
        .unwrap();

    let pg_url = target.postgres_url();
    let pg = jejak_server::PostgresStore::open(&pg_url).await.unwrap();
    let options = |stop| jejak_server::postgres::CopyOptions {
        chunk_rows: 50,
        stop_after_chunks: stop,
    };
    let first = jejak_server::postgres::copy_from_sqlite(&path, &pg, options(Some(5)))
        .await
        .unwrap();
    assert!(!first.complete);
    assert!(first.rows_written > 0);
    let second = jejak_server::postgres::copy_from_sqlite(&path, &pg, options(Some(7)))
        .await
        .unwrap();
    assert!(!second.complete);
    let last = jejak_server::postgres::copy_from_sqlite(&path, &pg, options(None))
        .await
        .unwrap();
    assert!(last.is_verified(), "{last:?}");
    let sessions = last.counts.iter().find(|c| c.table == "sessions").unwrap();
    assert_eq!(sessions.target, 7 * 60 + 2);
    // Nothing was written twice across the interruptions.
    let total: u64 = last.counts.iter().map(|c| c.target).sum();
    assert_eq!(
        first.rows_written + second.rows_written + last.rows_written,
        total
    );

    let target_store: Arc<dyn ServerStore> = Arc::new(pg);
    let month = sim::month_start().date_naive();
    assert_eq!(
        target_store
            .month_facts(month, None, FactsDetail::Breakdowns)
            .await
            .unwrap(),
        source
            .month_facts(month, None, FactsDetail::Breakdowns)
            .await
            .unwrap()
    );
    for device in devices.iter().chain([&device]) {
        assert_eq!(
            target_store.sessions(device).await.unwrap(),
            source.sessions(device).await.unwrap()
        );
        assert_eq!(
            target_store.device_state(device).await.unwrap(),
            source.device_state(device).await.unwrap()
        );
    }
    assert_eq!(
        target_store.devices().await.unwrap(),
        source.devices().await.unwrap()
    );
    assert_eq!(
        target_store.libraries().await.unwrap(),
        source.libraries().await.unwrap()
    );
    let now = arrival();
    for request in [
        jejak_server::report::ReportRequest::District { month },
        jejak_server::report::ReportRequest::Village {
            month,
            library: lib("lib-01"),
        },
    ] {
        let a = jejak_server::report::load(source.as_ref(), &request, jejak_domain::Lang::En, now)
            .await
            .unwrap();
        let b = jejak_server::report::load(
            target_store.as_ref(),
            &request,
            jejak_domain::Lang::En,
            now,
        )
        .await
        .unwrap();
        assert_eq!(a, b);
    }

    // Tokens still work, and new enrollments get fresh numbers.
    assert!(target_store.authenticate(&token).await.is_ok());
    assert!(target_store.authenticate(staff.expose()).await.is_ok());
    store_new_pc(target_store.as_ref()).await;
    drop(target_store);
    target.finish().await;
}

async fn store_new_pc(store: &dyn ServerStore) {
    let token = store
        .add_device(&lib("dermaji"), &pc("pc-02"))
        .await
        .unwrap();
    let device = store
        .authenticate(token.expose())
        .await
        .unwrap()
        .device()
        .unwrap();
    let known: Vec<_> = store.devices().await.unwrap();
    assert_eq!(
        known.iter().filter(|d| d.device_id == device.id).count(),
        1,
        "a new PC gets a number of its own"
    );
}

async fn one_batch_with_two_revisions_of_a_session_keeps_the_newer(store: Arc<dyn ServerStore>) {
    let (_, device) = enroll(store.as_ref(), "dermaji", "pc-01").await;
    let sim = sim_pc("dermaji", "pc-01", 12);
    let mut log = log_of(&sim, 2, 12);
    // Seq 2 becomes revision 2 of seq 1's session, open and longer.
    let first = session_mut(&mut log.records[0]).clone();
    let mut second = first.clone();
    second.revision = first.revision + 1;
    second.duration_secs += 300;
    second.ended_at = None;
    second.end_reason = None;
    *session_mut(&mut log.records[1]) = second.clone();
    let batch = sim::batches(&sim, &log, 10, arrival() - Duration::seconds(1)).remove(0);
    let ack = ingest(store.as_ref(), &device, &batch).await.unwrap();
    assert_eq!((ack.new, ack.duplicates, ack.rejected.len()), (2, 0, 0));
    let stored = store.sessions(&device).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert!(stored[0].matches(&second), "{:?}", stored[0]);
    assert_eq!(store.device_state(&device).await.unwrap().sessions, 1);
    assert!(store.check_rollups().await.unwrap().is_consistent());
}

async fn pruned_months_keep_their_reports_and_refuse_old_records(store: Arc<dyn ServerStore>) {
    let (_, device) = enroll(store.as_ref(), "dermaji", "pc-01").await;
    let sim = sim_pc("dermaji", "pc-01", 13);
    let log = log_of(&sim, 40, 13);
    let batches = sim::batches(&sim, &log, 20, arrival() - Duration::seconds(1));
    for batch in &batches {
        ingest(store.as_ref(), &device, batch).await.unwrap();
    }
    let october = sim::month_start().date_naive();
    let before = store
        .month_facts(october, None, FactsDetail::Breakdowns)
        .await
        .unwrap();
    let november = october + chrono::Months::new(1);
    let pruned = store.prune_raw(november).await.unwrap();
    assert_eq!(pruned.sessions, 40);
    assert_eq!(pruned.kept_from, november);
    assert!(store.sessions(&device).await.unwrap().is_empty());
    assert_eq!(store.device_state(&device).await.unwrap().sessions, 0);
    // October's report does not move, and the check covers the kept months.
    assert_eq!(
        store
            .month_facts(october, None, FactsDetail::Breakdowns)
            .await
            .unwrap(),
        before
    );
    assert!(store.check_rollups().await.unwrap().is_consistent());
    // A resent October batch is refused as beyond retention and counts nothing again.
    let ack = ingest(store.as_ref(), &device, &batches[0]).await.unwrap();
    assert_eq!((ack.new, ack.rejected.len()), (0, 20));
    assert!(
        ack.rejected
            .iter()
            .all(|r| r.code.as_str() == "beyond-retention")
    );
    assert_eq!(
        store
            .month_facts(october, None, FactsDetail::Breakdowns)
            .await
            .unwrap(),
        before
    );
    store.rebuild_rollups().await.unwrap();
    assert_eq!(
        store
            .month_facts(october, None, FactsDetail::Breakdowns)
            .await
            .unwrap(),
        before
    );
    assert!(store.check_rollups().await.unwrap().is_consistent());
}

/// A PC may start its change log again (a new epoch at seq 1) when its store was
/// replaced; a token that does so over and over is refused past three a day (the batch
/// stores nothing), and every epoch's opening time is kept for the operations view.
async fn new_epochs_at_seq_1_are_counted_and_limited_per_day(store: Arc<dyn ServerStore>) {
    let (_, device) = enroll(store.as_ref(), "dermaji", "pc-01").await;
    let log = log_of(&sim_pc("dermaji", "pc-01", 9), 4, 9);
    let epoch_batch = |n: u128| {
        let mut sim = sim_pc("dermaji", "pc-01", 9);
        sim.epoch = uuid::Uuid::from_u128(1000 + n);
        sim::batches(&sim, &log, 4, arrival() - Duration::seconds(1)).remove(0)
    };
    for n in 0..3 {
        ingest(store.as_ref(), &device, &epoch_batch(n))
            .await
            .unwrap();
    }
    let before = store.device_state(&device).await.unwrap();
    assert_eq!(before.epochs.len(), 3);
    assert!(
        before
            .epochs
            .iter()
            .all(|e| e.opened_at_ms == Some(arrival().timestamp_millis()))
    );
    match ingest(store.as_ref(), &device, &epoch_batch(3)).await {
        Err(IngestError::TooManyEpochs {
            opened,
            retry_after_s,
        }) => {
            assert_eq!(opened, 3);
            assert_eq!(retry_after_s, 86_400);
        }
        other => panic!("a fourth epoch in a day is refused: {other:?}"),
    }
    let after = store.device_state(&device).await.unwrap();
    assert_eq!(after.epochs.len(), 3, "nothing of it was stored");
    assert_eq!(after.sessions, before.sessions);
    // An epoch the server knows goes on as usual, and a day later a new one is taken.
    ingest(store.as_ref(), &device, &epoch_batch(1))
        .await
        .unwrap();
    store
        .ingest(
            &device,
            epoch_batch(3),
            arrival() + Duration::days(1) + Duration::seconds(1),
            Delivery::Online,
        )
        .await
        .unwrap();
    assert_eq!(store.device_state(&device).await.unwrap().epochs.len(), 4);
}

/// After a restore from an older backup, a PC that pruned part of what the server lost
/// sends the rest with the pruned seqs declared lost: the server stores the records,
/// holds the whole range, keeps the lost range once however often it is sent, and
/// refuses (storing nothing) a batch that declares a seq lost and sends it too.
async fn seqs_a_pc_declares_lost_are_kept_once_and_never_overlap_a_record(
    store: Arc<dyn ServerStore>,
) {
    let (_, device) = enroll(store.as_ref(), "dermaji", "pc-01").await;
    let sim = sim_pc("dermaji", "pc-01", 21);
    let log = log_of(&sim, 10, 21);
    let batches = sim::batches(&sim, &log, 4, arrival() - Duration::seconds(1));
    let mut resent = batches[1].clone();
    assert_eq!(resent.first_seq, 5);
    // The same records at the same seqs (each column's first seq counts from first_seq).
    resent.first_seq = 1;
    for first_delta in [
        resent.sessions.seq_delta.first_mut(),
        resent.events.seq_delta.first_mut(),
    ]
    .into_iter()
    .flatten()
    {
        *first_delta += 4;
    }
    resent.lost = vec![jejak_domain::SeqRange { first: 1, last: 4 }];
    for _ in 0..2 {
        let ack = ingest(store.as_ref(), &device, &resent).await.unwrap();
        assert_eq!(ack.held_seq, 8);
    }
    let state = store.device_state(&device).await.unwrap();
    assert_eq!(state.sessions, 4);
    assert_eq!(state.lost.len(), 1, "{:?}", state.lost);
    let lost = &state.lost[0];
    assert_eq!(
        (lost.epoch, lost.first_seq, lost.last_seq, lost.changes()),
        (sim.epoch, 1, 4, 4)
    );

    let mut overlapping = batches[2].clone();
    overlapping.lost = vec![jejak_domain::SeqRange {
        first: overlapping.first_seq,
        last: overlapping.first_seq,
    }];
    assert!(matches!(
        ingest(store.as_ref(), &device, &overlapping).await,
        Err(IngestError::Shape(_))
    ));
    let state = store.device_state(&device).await.unwrap();
    assert_eq!((state.sessions, state.lost.len()), (4, 1));
    assert_eq!(state.epochs[0].held_seq, 8);
    assert!(store.check_rollups().await.unwrap().is_consistent());
}

/// PostgreSQL is backed up with its own tools (README, "Backups"): a `pg_dump -Fc` taken
/// while the store is open, restored with `pg_restore` into an empty database, gives a
/// store with every record, the same held seqs and rollups equal to a recount, which
/// takes the next batch where the PC left off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pg_dump_restored_into_an_empty_database_holds_everything() {
    let Some(harness) = postgres().await else {
        return;
    };
    let devices = fill_district(harness.store.as_ref(), 3, 40).await;
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("jejak.dump");
    let status = std::process::Command::new("pg_dump")
        .args(["--format=custom", "--file"])
        .arg(&dump)
        .arg(harness.postgres_url())
        .status()
        .expect("pg_dump (Debian's postgresql-client) is installed");
    assert!(status.success(), "pg_dump: {status}");

    let Cleanup::Postgres(database) = &harness.cleanup else {
        unreachable!("a PostgreSQL harness")
    };
    let target = TestDatabase::create(&database.admin, "jejak_restored").await;
    let url = target.url.clone();
    let status = std::process::Command::new("pg_restore")
        .args(["--no-owner", "--exit-on-error", "--dbname", &url])
        .arg(&dump)
        .status()
        .expect("pg_restore is installed");
    assert!(status.success(), "pg_restore: {status}");

    let restored = jejak_server::PostgresStore::open(&url).await.unwrap();
    for device in &devices {
        let (before, after) = (
            harness.store.device_state(device).await.unwrap(),
            restored.device_state(device).await.unwrap(),
        );
        assert_eq!(before, after);
        assert_eq!(
            harness.store.sessions(device).await.unwrap(),
            restored.sessions(device).await.unwrap()
        );
    }
    assert!(restored.check_rollups().await.unwrap().is_consistent());
    drop(restored);
    target.remove().await;
    harness.finish().await;
}

// ---------------------------------------------------------------------------------------
// Dating again when later evidence arrives (`dating.rs`)
// ---------------------------------------------------------------------------------------

use jejak_testkit::sim::clocks::{self, History, SimClock, SimRun};

const HOUR_MS: i64 = 3_600_000;

/// A WIB wall time as Unix ms.
fn wib_ms(month: u32, day: u32, hour: u32) -> i64 {
    use chrono::TimeZone;
    Zone::Wib
        .offset()
        .with_ymd_and_hms(2026, month, day, hour, 0, 0)
        .unwrap()
        .timestamp_millis()
}

/// Stores a batch that reached the server at `received_ms`.
async fn arrive(
    store: &dyn ServerStore,
    device: &DeviceRef,
    batch: &WireBatch,
    received_ms: i64,
    delivery: Delivery,
) {
    let received = DateTime::from_timestamp_millis(received_ms).unwrap();
    store
        .ingest(device, batch.clone(), received, delivery)
        .await
        .unwrap();
}

fn sim_run(n: u64, boot_ms: i64, hours: i64, sessions: usize, clock: SimClock) -> SimRun {
    SimRun {
        run: Uuid::from_u64_pair(31, n),
        boot_ms,
        length_ms: hours * HOUR_MS,
        sessions,
        clock,
        cut: false,
    }
}

/// What a month's facts say of one library: (sessions, of which estimated, undated).
async fn month_counts(
    store: &dyn ServerStore,
    library: &LibraryCode,
    month: u32,
) -> (u64, u64, u64) {
    let facts = store
        .month_facts(
            chrono::NaiveDate::from_ymd_opt(2026, month, 1).unwrap(),
            Some(library),
            FactsDetail::Days,
        )
        .await
        .unwrap();
    let l = &facts.libraries[0];
    (
        l.days.iter().map(|d| d.sessions).sum(),
        l.days.iter().map(|d| d.estimated).sum(),
        l.pcs.iter().map(|p| p.undated_sessions).sum(),
    )
}

/// The stored start (ms) and quality of every session of `run`.
async fn starts_of(
    store: &dyn ServerStore,
    device: &DeviceRef,
    h: &History,
    run: usize,
) -> Vec<(i64, i64, jejak_domain::TimeQuality)> {
    let stored = store.sessions(device).await.unwrap();
    h.true_starts
        .iter()
        .filter(|(_, _, r)| *r == run)
        .filter_map(|(id, truth, _)| {
            let s = stored.iter().find(|s| s.id == *id)?;
            Some((*truth, s.corrected_start.timestamp_millis(), s.time_quality))
        })
        .collect()
}

async fn history_pc(store: &dyn ServerStore, runs: Vec<SimRun>) -> (History, DeviceRef) {
    let (_, device) = enroll(store, "wektu", "pc-01").await;
    let h = clocks::history(&sim_pc("wektu", "pc-01", 31), runs, 5);
    (h, device)
}

/// A USB bundle carries a right day (28 October) and a day whose clock read 2000 (31
/// October), and reaches the district forty days later: nothing bounds the second day
/// within a month, so its sessions are listed as undated, counted in no month. The next
/// bundle starts with a right day (1 November): the 2000 day lies between the two, its
/// sessions move to October in the same transaction, and the rollups follow.
async fn a_run_the_next_right_clock_bounds_is_dated_again_and_its_month_follows(
    store: Arc<dyn ServerStore>,
) {
    let store = store.as_ref();
    let (h, device) = history_pc(
        store,
        vec![
            sim_run(0, wib_ms(10, 28, 8), 8, 3, SimClock::Right),
            sim_run(1, wib_ms(10, 31, 8), 8, 4, SimClock::Reset),
            sim_run(2, wib_ms(11, 1, 8), 8, 2, SimClock::Right),
        ],
    )
    .await;
    let library = lib("wektu");
    // A minute before the day's shutdown: every session of the day is in the bundle.
    let export1 = wib_ms(10, 31, 16) - 60_000;
    let first = h.batch((1, h.seq_at(export1)), (1, export1), &[], &[]);
    arrive(
        store,
        &device,
        &first,
        export1 + 40 * 24 * HOUR_MS,
        Delivery::Carried,
    )
    .await;
    assert_eq!(month_counts(store, &library, 10).await, (3, 3, 4));
    for (_, stored, quality) in starts_of(store, &device, &h, 1).await {
        assert!(
            stored < wib_ms(1, 1, 0) - 365 * 24 * HOUR_MS,
            "undated, before 2024"
        );
        assert_eq!(quality, jejak_domain::TimeQuality::Estimated);
    }
    assert!(store.check_rollups().await.unwrap().is_consistent());

    let export2 = wib_ms(11, 1, 16) - 60_000;
    let second = h.batch(
        (first.last_seq + 1, h.seq_at(export2)),
        (2, export2),
        &[],
        &[],
    );
    arrive(
        store,
        &device,
        &second,
        export2 + 41 * 24 * HOUR_MS,
        Delivery::Carried,
    )
    .await;
    // The 2000 day's four sessions are October's now, dated by estimate.
    assert_eq!(month_counts(store, &library, 10).await, (7, 7, 0));
    assert_eq!(month_counts(store, &library, 11).await, (2, 2, 0));
    let (after_first, before_third) = (wib_ms(10, 28, 16), wib_ms(11, 1, 8));
    for (truth, stored, _) in starts_of(store, &device, &h, 1).await {
        assert!(
            stored > after_first && stored < before_third,
            "{stored} for {truth}"
        );
    }
    assert!(store.check_rollups().await.unwrap().is_consistent());

    // The first bundle again, weeks later: nothing moves.
    arrive(
        store,
        &device,
        &first,
        export2 + 60 * 24 * HOUR_MS,
        Delivery::Carried,
    )
    .await;
    assert_eq!(month_counts(store, &library, 10).await, (7, 7, 0));
    assert!(store.check_rollups().await.unwrap().is_consistent());
}

/// A PC that stays on for days with its clock at 2000 exports a bundle, then gets a
/// link: the HTTP sync measures an anchor for the same run, and every record the bundle
/// carried is dated by it, exactly and `corrected`.
async fn an_anchor_from_a_later_http_sync_dates_what_a_bundle_carried(store: Arc<dyn ServerStore>) {
    let store = store.as_ref();
    let (h, device) = history_pc(
        store,
        vec![sim_run(0, wib_ms(11, 3, 8), 72, 6, SimClock::Reset)],
    )
    .await;
    let library = lib("wektu");
    let export = wib_ms(11, 4, 20);
    let bundle = h.batch((1, h.seq_at(export)), (0, export), &[], &[]);
    let carried = h.true_starts.iter().filter(|(_, t, _)| *t < export).count() as u64;
    assert!(carried >= 2);
    arrive(
        store,
        &device,
        &bundle,
        export + 2 * HOUR_MS,
        Delivery::Carried,
    )
    .await;
    assert_eq!(
        month_counts(store, &library, 11).await.2,
        carried,
        "undated"
    );

    let sync = wib_ms(11, 5, 20);
    let anchor = h.anchor_at(0, sync);
    let batch = h.batch(
        (bundle.last_seq + 1, h.seq_at(sync)),
        (0, sync),
        &[anchor],
        &[],
    );
    arrive(store, &device, &batch, sync, Delivery::Online).await;
    for (truth, stored, quality) in starts_of(store, &device, &h, 0).await {
        if truth < sync {
            assert!((stored - truth).abs() < 1_000, "{stored} for {truth}");
            assert_eq!(quality, jejak_domain::TimeQuality::Corrected);
        }
    }
    let made = h.true_starts.iter().filter(|(_, t, _)| *t < sync).count() as u64;
    assert_eq!(month_counts(store, &library, 11).await, (made, 0, 0));
    assert!(store.check_rollups().await.unwrap().is_consistent());
}

/// A PC whose clock was never right exports at 14:00; the district imports the bundle at
/// 18:00; the operator brings the acknowledgement back at 09:00 the next day, the PC
/// still on. The next bundle carries the server's time of that acknowledgement: the run
/// lies between it and the first import, and its sessions get their month.
async fn an_acknowledgements_time_dates_the_run_it_came_back_in(store: Arc<dyn ServerStore>) {
    let store = store.as_ref();
    let (h, device) = history_pc(
        store,
        vec![sim_run(0, wib_ms(11, 10, 8), 30, 5, SimClock::Reset)],
    )
    .await;
    let library = lib("wektu");
    let export = wib_ms(11, 10, 14);
    let imported = wib_ms(11, 10, 18);
    let first = h.batch((1, h.seq_at(export)), (0, export), &[], &[]);
    arrive(store, &device, &first, imported, Delivery::Carried).await;
    let (_, _, undated) = month_counts(store, &library, 11).await;
    assert!(undated >= 1, "nothing bounds it from below yet");

    let back = wib_ms(11, 11, 9);
    let bound = jejak_domain::ClockBound {
        run: h.runs[0].run,
        mono_ms: (back - h.runs[0].boot_ms) as u64,
        server_ms: imported,
    };
    let export2 = wib_ms(11, 11, 12);
    let second = h.batch(
        (first.last_seq + 1, h.seq_at(export2)),
        (0, export2),
        &[],
        &[bound],
    );
    assert_eq!(second.bounds, vec![bound]);
    arrive(
        store,
        &device,
        &second,
        wib_ms(11, 12, 9),
        Delivery::Carried,
    )
    .await;
    let made = h
        .true_starts
        .iter()
        .filter(|(_, t, _)| *t < export2)
        .count() as u64;
    assert_eq!(month_counts(store, &library, 11).await, (made, made, 0));
    // Booted no earlier than 18:00 less the 25 h the PC had been on at 09:00, no later
    // than 18:00 less the 6 h it had been on at the export.
    for (truth, stored, quality) in starts_of(store, &device, &h, 0).await {
        let mono = truth - h.runs[0].boot_ms;
        assert!(stored >= imported - 25 * HOUR_MS + mono - 1_000, "{stored}");
        assert!(stored <= imported - 6 * HOUR_MS + mono + 1_000, "{stored}");
        assert_eq!(quality, jejak_domain::TimeQuality::Estimated);
    }
    assert!(store.check_rollups().await.unwrap().is_consistent());
}

/// Pruning the raw records of past months leaves the undated ones (no month counted
/// them, and a later bundle may date them yet); the rollups still equal a recount.
async fn retention_keeps_the_sessions_whose_month_cannot_be_told(store: Arc<dyn ServerStore>) {
    let store = store.as_ref();
    let (h, device) = history_pc(
        store,
        vec![
            sim_run(0, wib_ms(10, 28, 8), 8, 3, SimClock::Right),
            sim_run(1, wib_ms(10, 31, 8), 8, 4, SimClock::Reset),
        ],
    )
    .await;
    let export = wib_ms(10, 31, 16) - 60_000;
    let bundle = h.batch((1, h.seq_at(export)), (1, export), &[], &[]);
    arrive(
        store,
        &device,
        &bundle,
        export + 40 * 24 * HOUR_MS,
        Delivery::Carried,
    )
    .await;
    let pruned = store
        .prune_raw(chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap())
        .await
        .unwrap();
    assert_eq!(pruned.sessions, 3, "October's three dated sessions");
    assert_eq!(starts_of(store, &device, &h, 1).await.len(), 4);
    assert_eq!(month_counts(store, &lib("wektu"), 10).await, (3, 3, 4));
    assert!(store.check_rollups().await.unwrap().is_consistent());
}

/// A library's identity and signatories are stored with it, listed, read into the
/// report facts, and edited field by field (an empty value clears one); an unknown
/// library or a refused name changes nothing.
async fn library_details_round_trip_and_edits_change_only_what_is_given(
    store: Arc<dyn ServerStore>,
) {
    let store = store.as_ref();
    let dermaji = lib("dermaji");
    let details = LibraryDetails {
        npp: Some("3302012D1000001".into()),
        desa: Some("Dermaji".into()),
        kecamatan: Some("Lumbir".into()),
        address: Some("Jl. Raya Dermaji No. 1, Lumbir".into()),
        kepala_desa: Some("Slamet Riyadi".into()),
        manager: Some("Siti Aminah".into()),
        manager_nip: Some("198503122010012004".into()),
    };
    store
        .add_library_with_details(&dermaji, "Perpustakaan Desa Dermaji", Zone::Wib, &details)
        .await
        .unwrap();
    store
        .add_library(&lib("kosong"), "Perpustakaan Desa Kosong", Zone::Wib)
        .await
        .unwrap();
    let listed = store.libraries().await.unwrap();
    assert_eq!(listed[0].code, dermaji);
    assert_eq!(listed[0].details, details);
    assert_eq!(listed[1].details, LibraryDetails::default());
    let facts = store
        .month_facts(
            chrono::NaiveDate::from_ymd_opt(2026, 10, 1).unwrap(),
            Some(&dermaji),
            FactsDetail::Days,
        )
        .await
        .unwrap();
    assert_eq!(facts.libraries[0].details, details, "the reports see them");

    let mut edit = LibraryDetailsEdit::default();
    edit.set(DetailField::Manager, "Siti Aminah, S.Pd.")
        .unwrap();
    edit.set(DetailField::Kecamatan, "").unwrap();
    let edited = store.edit_library(&dermaji, None, &edit).await.unwrap();
    let expected = LibraryDetails {
        manager: Some("Siti Aminah, S.Pd.".into()),
        kecamatan: None,
        ..details.clone()
    };
    assert_eq!(edited.details, expected);
    assert_eq!(edited.name, "Perpustakaan Desa Dermaji", "the name stays");
    let renamed = store
        .edit_library(
            &dermaji,
            Some("Perpustakaan Desa Dermaji Baru"),
            &LibraryDetailsEdit::default(),
        )
        .await
        .unwrap();
    assert_eq!(renamed.details, expected, "a rename keeps the details");

    // Refusals store nothing.
    assert!(matches!(
        store.edit_library(&lib("nowhere"), None, &edit).await,
        Err(EnrollError::UnknownLibrary(_))
    ));
    assert!(matches!(
        store.edit_library(&dermaji, Some(" "), &edit).await,
        Err(EnrollError::InvalidName(_))
    ));
    let after = store.libraries().await.unwrap();
    assert_eq!(after.len(), 2);
    assert_eq!(after[0].name, "Perpustakaan Desa Dermaji Baru");
    assert_eq!(after[0].details, expected);
}

/// PostgreSQL's version 8 packs the entry counters into month rows: every counter of a
/// version 7 database comes through with its library, day and value (pruned months
/// included: they are packed, not recounted), and the old table is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migration_packs_every_entry_counter_into_its_month() {
    let Some(h) = postgres().await else { return };
    let url = h.postgres_url();
    for code in ["alpha", "beta"] {
        h.store
            .add_library(&lib(code), "Perpustakaan Desa", Zone::Wib)
            .await
            .unwrap();
    }
    let ids = pg_rows(&url, "SELECT id FROM libraries ORDER BY code").await;
    let (alpha, beta): (i64, i64) = (ids[0].get(0), ids[1].get(0));
    // Back to version 7: its counter table, with counters of two libraries, one of them
    // in a month long pruned.
    pg_rows(&url, "DROP TABLE entry_months").await;
    pg_rows(&url, "DELETE FROM schema_migrations WHERE version >= 8").await;
    pg_rows(
        &url,
        "CREATE TABLE entry_counts (
             library BIGINT NOT NULL,
             day     BIGINT NOT NULL,
             key     TEXT NOT NULL,
             value   BIGINT NOT NULL,
             PRIMARY KEY (library, day, key)
         )",
    )
    .await;
    let date = |y, m, d| chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap();
    let counters = [
        (alpha, date(2026, 10, 1), "visit.people", 14),
        (alpha, date(2026, 10, 31), "visit.people", 2),
        (alpha, date(2026, 10, 1), "visit.people.ga.P.remaja", 5),
        (alpha, date(2026, 11, 1), "member_count.members", 310),
        (beta, date(2026, 10, 7), "activity.participants", 25),
        (beta, date(2019, 2, 28), "visit.people", 1),
    ];
    let epoch = date(1970, 1, 1);
    for (library, day, key, value) in counters {
        let day = (day - epoch).num_days();
        pg_rows(
            &url,
            &format!("INSERT INTO entry_counts VALUES ({library}, {day}, '{key}', {value})"),
        )
        .await;
    }
    let reopened = jejak_server::PostgresStore::open(&url).await.unwrap();
    let mut stored = Vec::new();
    for month in [date(2019, 2, 1), date(2026, 10, 1), date(2026, 11, 1)] {
        let facts = reopened
            .month_facts(month, None, FactsDetail::Breakdowns)
            .await
            .unwrap();
        for l in &facts.libraries {
            let id = if l.code.as_str() == "alpha" {
                alpha
            } else {
                beta
            };
            for c in &l.entry_counts {
                stored.push((id, c.day, c.key.to_string(), c.value));
            }
        }
    }
    stored.sort();
    let mut expected: Vec<_> = counters
        .iter()
        .map(|(l, d, k, v)| (*l, *d, k.to_string(), *v))
        .collect();
    expected.sort();
    assert_eq!(stored, expected);
    assert_eq!(pg_rows(&url, "SELECT 1 FROM entry_months").await.len(), 4);
    let old = pg_rows(&url, "SELECT to_regclass('entry_counts') IS NULL").await;
    assert!(old[0].get::<_, bool>(0));
    drop(reopened);
    h.finish().await;
}

/// A PostgreSQL database of the previous schema version (before library details) keeps
/// its libraries when the store migrates it, with no details set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migration_to_library_details_keeps_existing_libraries() {
    let Some(h) = postgres().await else { return };
    let url = h.postgres_url();
    // Back to version 5: the columns of version 6 go, and a library is added as version
    // 5 would have.
    pg_rows(
        &url,
        "ALTER TABLE libraries DROP COLUMN npp, DROP COLUMN desa, DROP COLUMN kecamatan,
             DROP COLUMN address, DROP COLUMN kepala_desa, DROP COLUMN manager,
             DROP COLUMN manager_nip",
    )
    .await;
    // Version 7's and 8's tables (the entries and their counters) go too, so the store
    // stands at version 5.
    pg_rows(&url, "DROP TABLE entries, entry_months").await;
    pg_rows(&url, "DELETE FROM schema_migrations WHERE version >= 6").await;
    pg_rows(
        &url,
        "INSERT INTO libraries (code, name, timezone, created_ms)
         VALUES ('lama', 'Perpustakaan Desa Lama', 'Asia/Jakarta', 1)",
    )
    .await;
    let reopened = jejak_server::PostgresStore::open(&url).await.unwrap();
    let libraries = reopened.libraries().await.unwrap();
    assert_eq!(libraries.len(), 1);
    assert_eq!(libraries[0].name, "Perpustakaan Desa Lama");
    assert_eq!(libraries[0].details, LibraryDetails::default());
    drop(reopened);
    h.finish().await;
}

/// A desk visit of `library`'s `pc_code` on day `day` of the suite's month at 10:00 WIB
/// plus `minute`.
fn desk_visit(
    library: &str,
    pc_code: &str,
    id: u128,
    minute: i64,
    purpose: jejak_domain::VisitPurpose,
    people: u32,
) -> jejak_domain::Visit {
    jejak_domain::Visit {
        id: Uuid::from_u128(id),
        revision: 1,
        library: lib(library),
        pc: pc(pc_code),
        at: sim::month_start() + Duration::days(1) + Duration::hours(3) + Duration::minutes(minute),
        run_id: Uuid::from_u128(77),
        mono_ms: 60_000 + minute as u64 * 60_000,
        gender: jejak_domain::Gender::P,
        age_group: jejak_domain::AgeGroup::Remaja,
        user_kind: jejak_domain::UserKind::Rombongan,
        purpose,
        people,
        withdrawn: false,
    }
}

/// The suite month's member count of `library`, entered on `pc_code` at 10:00 WIB plus
/// `minute` on the month's last day.
fn month_members(
    library: &str,
    pc_code: &str,
    revision: u32,
    minute: i64,
    members: u32,
) -> jejak_domain::MemberCount {
    let month = jejak_domain::YearMonth::of(sim::month_start().date_naive()).unwrap();
    jejak_domain::MemberCount {
        id: jejak_domain::MemberCount::id_for(&lib(library), month),
        revision,
        library: lib(library),
        pc: pc(pc_code),
        at: sim::month_start()
            + Duration::days(30)
            + Duration::hours(3)
            + Duration::minutes(minute),
        run_id: Uuid::from_u128(78),
        mono_ms: 1_000,
        month,
        members,
        new_members: 4,
    }
}

/// A batch of `bodies` at seqs `first..` of `device`'s epoch 1.
fn entry_batch(device: &DeviceRef, first: u64, bodies: Vec<RecordBody>) -> WireBatch {
    let records: Vec<ChangeRecord> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| ChangeRecord {
            seq: first + i as u64,
            recorded_at: arrival(),
            run_id: body.run_id(),
            mono_ms: 1,
            body,
        })
        .collect();
    let last = records.last().map_or(first, |r| r.seq);
    WireBatch::encode(
        Uuid::from_u64_pair(first, last),
        device.library.clone(),
        device.pc.clone(),
        Uuid::from_u128(1),
        first,
        last,
        jejak_domain::ClientInstant {
            run: Uuid::from_u128(77),
            mono_ms: 10_000_000,
            wall_ms: arrival().timestamp_millis() - 1_000,
        },
        Vec::new(),
        &records,
    )
}

/// The month's sum of an entry counter of `library`.
async fn entry_count(store: &dyn ServerStore, library: &str, key: &str) -> i64 {
    let facts = store
        .month_facts(
            sim::month_start().date_naive(),
            Some(&lib(library)),
            FactsDetail::Breakdowns,
        )
        .await
        .unwrap();
    facts.libraries[0].entry_count(None, key)
}

async fn visits_and_member_counts_are_stored_revised_withdrawn_and_counted_once(
    store: Arc<dyn ServerStore>,
) {
    use jejak_domain::VisitPurpose::{KomputerInternet, Membaca};
    let store = store.as_ref();
    let (_, one) = enroll(store, "dermaji", "pc-01").await;
    let (_, two) = enroll(store, "dermaji", "pc-02").await;
    let reader = desk_visit("dermaji", "pc-01", 1, 0, Membaca, 1);
    let class = desk_visit("dermaji", "pc-01", 2, 5, KomputerInternet, 12);
    let first = entry_batch(
        &one,
        1,
        vec![
            RecordBody::Visit(reader.clone()),
            RecordBody::Visit(class.clone()),
            RecordBody::MemberCount(month_members("dermaji", "pc-01", 1, 0, 120)),
        ],
    );
    let ack = ingest(store, &one, &first).await.unwrap();
    assert_eq!((ack.new, ack.held_seq, ack.rejected.len()), (3, 3, 0));
    assert_eq!(entry_count(store, "dermaji", "visit.entries").await, 2);
    assert_eq!(entry_count(store, "dermaji", "visit.people").await, 13);
    assert_eq!(
        entry_count(store, "dermaji", "visit.people.purpose.komputer_internet").await,
        12
    );
    assert_eq!(
        entry_count(store, "dermaji", "visit.people.ga.P.remaja").await,
        13
    );
    assert_eq!(
        entry_count(store, "dermaji", "member_count.members").await,
        120
    );

    // The same batch again is held already: nothing counts twice.
    let ack = ingest(store, &one, &first).await.unwrap();
    assert_eq!((ack.new, ack.duplicates), (0, 3));
    assert_eq!(entry_count(store, "dermaji", "visit.people").await, 13);

    // The librarian's undo: a new revision withdrawing the reader, who counts no more.
    let undo = reader.withdrawn(reader.at, reader.run_id, reader.mono_ms + 1);
    let ack = ingest(
        store,
        &one,
        &entry_batch(&one, 4, vec![RecordBody::Visit(undo)]),
    )
    .await
    .unwrap();
    assert_eq!(ack.new, 1);
    assert_eq!(entry_count(store, "dermaji", "visit.entries").await, 1);
    assert_eq!(
        entry_count(store, "dermaji", "visit.people.purpose.membaca").await,
        0
    );

    // The same revision with other content is a conflict; the stored one is kept.
    let mut bigger = class.clone();
    bigger.people = 13;
    let ack = ingest(
        store,
        &one,
        &entry_batch(&one, 5, vec![RecordBody::Visit(bigger)]),
    )
    .await
    .unwrap();
    assert_eq!(ack.rejected.len(), 1);
    assert_eq!(
        (ack.rejected[0].seq, ack.rejected[0].code.as_str()),
        (5, "conflict")
    );
    assert_eq!(entry_count(store, "dermaji", "visit.people").await, 12);
    // Another PC cannot send a PC's visit as its own.
    let ack = ingest(
        store,
        &two,
        &entry_batch(&two, 1, vec![RecordBody::Visit(class)]),
    )
    .await
    .unwrap();
    assert_eq!(ack.rejected[0].code, "conflict");
    assert_eq!(entry_count(store, "dermaji", "visit.people").await, 12);

    // The month's member count entered on a second PC, later: one record, the later
    // entry standing; the earlier one sent again changes nothing.
    let later = entry_batch(
        &two,
        2,
        vec![RecordBody::MemberCount(month_members(
            "dermaji", "pc-02", 1, 5, 125,
        ))],
    );
    let ack = ingest(store, &two, &later).await.unwrap();
    assert_eq!((ack.new, ack.rejected.len()), (1, 0));
    assert_eq!(
        entry_count(store, "dermaji", "member_count.members").await,
        125
    );
    ingest(store, &one, &first).await.unwrap();
    assert_eq!(
        entry_count(store, "dermaji", "member_count.members").await,
        125
    );
    assert_eq!(entry_count(store, "dermaji", "member_count.new").await, 4);

    // In the other arrival order, in another library, the same version stands.
    let (_, three) = enroll(store, "kebasen", "pc-01").await;
    let (_, four) = enroll(store, "kebasen", "pc-02").await;
    let later = month_members("kebasen", "pc-02", 1, 5, 125);
    let earlier = month_members("kebasen", "pc-01", 1, 0, 120);
    ingest(
        store,
        &four,
        &entry_batch(&four, 1, vec![RecordBody::MemberCount(later)]),
    )
    .await
    .unwrap();
    let ack = ingest(
        store,
        &three,
        &entry_batch(&three, 1, vec![RecordBody::MemberCount(earlier)]),
    )
    .await
    .unwrap();
    assert_eq!((ack.new, ack.duplicates, ack.rejected.len()), (0, 1, 0));
    assert_eq!(
        entry_count(store, "kebasen", "member_count.members").await,
        125
    );

    // An invalid one (more new members than members) is rejected and counts nothing.
    let mut invalid = month_members("kebasen", "pc-01", 2, 9, 3);
    invalid.new_members = 9;
    let ack = ingest(
        store,
        &three,
        &entry_batch(&three, 2, vec![RecordBody::MemberCount(invalid)]),
    )
    .await
    .unwrap();
    assert_eq!(ack.rejected[0].code, "invalid");
    assert_eq!(
        entry_count(store, "kebasen", "member_count.members").await,
        125
    );

    // The counters equal a recount, and a rebuild gives the same facts.
    let check = store.check_rollups().await.unwrap();
    assert!(check.is_consistent(), "{check:?}");
    let month = sim::month_start().date_naive();
    let before = store
        .month_facts(month, None, FactsDetail::Days)
        .await
        .unwrap();
    store.rebuild_rollups().await.unwrap();
    assert_eq!(
        store
            .month_facts(month, None, FactsDetail::Days)
            .await
            .unwrap(),
        before
    );
}

/// An activity held on day 3 of the suite's month, entered on day 21 (entered late: it
/// counts on its own date), at revision `revision`.
fn month_activity(revision: u32, participants: &str, title: &str) -> jejak_domain::Activity {
    jejak_domain::Activity {
        id: Uuid::from_u128(4242),
        revision,
        library: lib("dermaji"),
        pc: pc("pc-01"),
        at: sim::month_start() + Duration::days(20) + Duration::minutes(i64::from(revision)),
        run_id: Uuid::from_u128(77),
        mono_ms: 90_000 + u64::from(revision),
        date: (sim::month_start() + Duration::days(2)).date_naive(),
        start: chrono::NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
        duration_minutes: 120,
        activity_type: jejak_domain::ActivityType::SosialisasiKie,
        title: title.into(),
        partner: Some("Puskesmas Kebasen".into()),
        place: jejak_domain::ActivityPlace::DiLuar,
        participants: jejak_domain::Participants::parse(participants).unwrap(),
        notes: Some("Penyuluhan gizi — ñ".into()),
    }
}

async fn activities_are_stored_edited_and_counted_on_their_date(store: Arc<dyn ServerStore>) {
    let store = store.as_ref();
    let (_, one) = enroll(store, "dermaji", "pc-01").await;
    let first = month_activity(1, "P:dewasa=7,L:dewasa=5", "Sosialisasi gizi");
    let batch = entry_batch(&one, 1, vec![RecordBody::Activity(first.clone())]);
    let ack = ingest(store, &one, &batch).await.unwrap();
    assert_eq!((ack.new, ack.rejected.len()), (1, 0));
    let day = |key: &'static str| async move { entry_count(store, "dermaji", key).await };
    assert_eq!(day("activity.count").await, 1);
    assert_eq!(day("activity.participants").await, 12);
    assert_eq!(day("activity.participants.type.sosialisasi_kie").await, 12);
    assert_eq!(day("activity.count.place.di_luar").await, 1);
    assert_eq!(day("activity.participants.ga.P.dewasa").await, 7);
    // Counted on the day it was held, not the day it was typed.
    let facts = store
        .month_facts(
            sim::month_start().date_naive(),
            Some(&lib("dermaji")),
            FactsDetail::Days,
        )
        .await
        .unwrap();
    let held = (sim::month_start() + Duration::days(2)).date_naive();
    assert_eq!(
        facts.libraries[0].entry_count(Some(held), "activity.count"),
        1
    );
    let typed = (sim::month_start() + Duration::days(20)).date_naive();
    assert_eq!(
        facts.libraries[0].entry_count(Some(typed), "activity.count"),
        0
    );

    // Resent: held already. The same revision with another title: a conflict, the
    // stored one kept.
    let ack = ingest(store, &one, &batch).await.unwrap();
    assert_eq!((ack.new, ack.duplicates), (0, 1));
    let mut retitled = first.clone();
    retitled.title = "Judul lain".into();
    let ack = ingest(
        store,
        &one,
        &entry_batch(&one, 2, vec![RecordBody::Activity(retitled)]),
    )
    .await
    .unwrap();
    assert_eq!(ack.rejected[0].code, "conflict");
    assert_eq!(day("activity.participants").await, 12);

    // The edit: a higher revision replaces it, the counts follow (the old taken away).
    let edited = month_activity(2, "P:remaja=20", "Sosialisasi gizi remaja");
    let ack = ingest(
        store,
        &one,
        &entry_batch(&one, 3, vec![RecordBody::Activity(edited)]),
    )
    .await
    .unwrap();
    assert_eq!((ack.new, ack.rejected.len()), (1, 0));
    assert_eq!(day("activity.count").await, 1);
    assert_eq!(day("activity.participants").await, 20);
    assert_eq!(day("activity.participants.ga.P.dewasa").await, 0);
    assert_eq!(day("activity.participants.ga.P.remaja").await, 20);
    // The older revision arriving late changes nothing.
    let ack = ingest(
        store,
        &one,
        &entry_batch(&one, 4, vec![RecordBody::Activity(first)]),
    )
    .await
    .unwrap();
    assert_eq!(ack.new, 0);
    assert_eq!(day("activity.participants").await, 20);
    assert!(store.check_rollups().await.unwrap().is_consistent());
}

/// A table of a report as rows of comparable texts: numbers with up to 4 places, an
/// empty cell as "-".
fn cells_of(report: &jejak_server::report::Report, id: &str) -> Vec<Vec<String>> {
    use jejak_server::report::Cell;
    let table = report
        .sections
        .iter()
        .find(|t| t.id == id)
        .unwrap_or_else(|| panic!("no table {id}"));
    table
        .rows
        .iter()
        .map(|r| {
            r.cells
                .iter()
                .map(|c| match c {
                    Cell::Text(t) => t.clone(),
                    Cell::Number(n) => format!("{n:.4}")
                        .trim_end_matches('0')
                        .trim_end_matches('.')
                        .to_string(),
                    Cell::Empty => "-".into(),
                })
                .collect()
        })
        .collect()
}

fn texts(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

/// The golden month of the desk's record kinds: two visitor-book entries on 2 October
/// (one reader, a class of 12 for the computer), the member count, and a sosialisasi
/// held outside on 3 October, ingested through the real store; every cell of the village
/// report's new tables is known. Session tables are the older golden test's.
async fn the_village_report_shows_visits_members_and_activities_cell_by_cell(
    store: Arc<dyn ServerStore>,
) {
    use jejak_domain::VisitPurpose::{KomputerInternet, Membaca};
    let store = store.as_ref();
    let (_, one) = enroll(store, "dermaji", "pc-01").await;
    let batch = entry_batch(
        &one,
        1,
        vec![
            RecordBody::Visit(desk_visit("dermaji", "pc-01", 1, 0, Membaca, 1)),
            RecordBody::Visit(desk_visit("dermaji", "pc-01", 2, 5, KomputerInternet, 12)),
            RecordBody::MemberCount(month_members("dermaji", "pc-01", 1, 0, 120)),
            RecordBody::Activity(month_activity(
                1,
                "P:dewasa=7,L:dewasa=5,P:anak=2",
                "Sosialisasi gizi",
            )),
        ],
    );
    let ack = ingest(store, &one, &batch).await.unwrap();
    assert_eq!((ack.new, ack.rejected.len()), (4, 0));
    let facts = store
        .month_facts(
            sim::month_start().date_naive(),
            Some(&lib("dermaji")),
            FactsDetail::Breakdowns,
        )
        .await
        .unwrap();
    let report = jejak_server::report::village_monthly(
        &facts,
        None,
        &lib("dermaji"),
        jejak_domain::Lang::Id,
        arrival(),
    )
    .unwrap();

    let rule = jejak_server::report::VISITS_RULE.0;
    assert_eq!(
        cells_of(&report, "visits_daily"),
        vec![
            texts(&["2026-10-02", "13", "12", "0", "13"]),
            texts(&["Jumlah", "13", "12", "0", "13"]),
        ]
    );
    let notes_of = |report: &jejak_server::report::Report, id: &str| {
        report
            .sections
            .iter()
            .find(|t| t.id == id)
            .map(|t| t.notes.iter().map(|n| n.id.clone()).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert_eq!(notes_of(&report, "visits_daily"), vec![rule.to_string()]);
    // All desk visitors were girls (P, remaja) in this month.
    let by_age = cells_of(&report, "visitors_by_age_gender");
    assert_eq!(by_age[1], texts(&["Remaja (13–15)", "0", "13", "0", "13"]));
    assert_eq!(
        by_age.last().unwrap(),
        &texts(&["Jumlah", "0", "13", "0", "13"])
    );
    assert_eq!(
        cells_of(&report, "visitors_by_kind"),
        vec![
            texts(&["Anggota", "0", "0", "0"]),
            texts(&["Non-anggota", "0", "0", "0"]),
            texts(&["Rombongan", "2", "13", "1"]),
            texts(&["Pelatihan", "0", "0", "0"]),
            texts(&["Jumlah", "2", "13", "-"]),
        ]
    );
    let by_purpose = cells_of(&report, "visitors_by_purpose");
    assert_eq!(by_purpose[0], texts(&["Membaca", "1", "1", "0.0769"]));
    assert_eq!(
        by_purpose[3],
        texts(&["Komputer/internet", "1", "12", "0.9231"])
    );
    assert_eq!(
        by_purpose.last().unwrap(),
        &texts(&["Jumlah", "2", "13", "-"])
    );
    assert_eq!(
        cells_of(&report, "members"),
        vec![
            texts(&["Anggota pada akhir bulan", "120"]),
            texts(&["Anggota baru bulan ini", "4"]),
        ]
    );
    let by_type = cells_of(&report, "activities_by_type");
    assert_eq!(by_type[1], texts(&["Sosialisasi/KIE", "1", "14"]));
    assert_eq!(by_type.last().unwrap(), &texts(&["Jumlah", "1", "14"]));
    assert_eq!(
        cells_of(&report, "activities_by_place"),
        vec![
            texts(&["Di perpustakaan", "0", "0"]),
            texts(&["Di luar perpustakaan", "1", "14"]),
            texts(&["Jumlah", "1", "14"]),
        ]
    );
    let participants = cells_of(&report, "participants_by_age_gender");
    assert_eq!(
        participants[0][0..4],
        texts(&["Anak (≤12)", "0", "2", "0"])[..]
    );
    assert_eq!(
        participants.last().unwrap(),
        &texts(&["Jumlah", "5", "9", "0", "14"])
    );

    // The district matrix's services table: one day served (the visitor book's; no PC
    // was used), 13 visits, the purposes, the sosialisasi's 14 participants twice (all
    // and KIE), the member count; then the total row and the rule under them.
    let district = jejak_server::report::district_monthly(
        &store
            .month_facts(sim::month_start().date_naive(), None, FactsDetail::Days)
            .await
            .unwrap(),
        arrival().date_naive(),
        jejak_domain::Lang::Id,
        arrival(),
    );
    let services = cells_of(&district, "services");
    let dermaji = texts(&[
        "Perpustakaan Desa",
        "dermaji",
        "-",
        "1",
        "13",
        "13",
        "1",
        "0",
        "0",
        "12",
        "0",
        "0",
        "1",
        "14",
        "14",
        "120",
        "4",
    ]);
    assert_eq!(services[0], dermaji);
    let mut total = dermaji.clone();
    total[..3].clone_from_slice(&texts(&["Jumlah", "-", "-"]));
    assert_eq!(services[1], total);
    assert_eq!(services.len(), 2);
    assert_eq!(notes_of(&district, "services"), vec![rule.to_string()]);

    // The IPLM sheet of the year, read through the report loader as the CLI and the API
    // read it: the same figures over the year (one month had any), and a definition
    // for every figure.
    let iplm = jejak_server::report::load(
        store,
        &jejak_server::report::ReportRequest::Iplm { year: 2026 },
        jejak_domain::Lang::Id,
        arrival(),
    )
    .await
    .unwrap();
    let sheet = cells_of(&iplm, "iplm");
    let dermaji = texts(&[
        "Perpustakaan Desa",
        "dermaji",
        "-",
        "-",
        "-",
        "1",
        "13",
        "13",
        "120",
        "4",
        "1",
        "14",
        "14",
        "1",
        "0",
        "0",
        "0",
        "0",
        "-",
    ]);
    assert_eq!(sheet[0], dermaji);
    let mut total = dermaji.clone();
    total[..2].clone_from_slice(&texts(&["Jumlah", "-"]));
    assert_eq!(sheet[1], total);
    assert_eq!(sheet.len(), 2);
    let definitions = cells_of(&iplm, "definitions");
    assert_eq!(definitions[1], texts(&["Kunjungan / Visits", rule]));
    assert_eq!(definitions.len(), 12);

    // The detail export: a row per visit (in time order) and per activity; no session
    // was sent, so its session table is empty; nothing names a patron.
    let detail = jejak_server::report::load(
        store,
        &jejak_server::report::ReportRequest::Detail {
            month: sim::month_start().date_naive(),
        },
        jejak_domain::Lang::Id,
        arrival(),
    )
    .await
    .unwrap();
    assert!(cells_of(&detail, "sessions").is_empty());
    let visit = |time: &str, purpose: &str, people: &str| {
        texts(&[
            "dermaji",
            "pc-01",
            "2026-10-02",
            time,
            "Rombongan",
            "Perempuan",
            "Remaja (13–15)",
            purpose,
            people,
        ])
    };
    assert_eq!(
        cells_of(&detail, "visits"),
        vec![
            visit("10:00", "Membaca", "1"),
            visit("10:05", "Komputer/internet", "12")
        ]
    );
    assert_eq!(
        cells_of(&detail, "activities"),
        vec![texts(&[
            "dermaji",
            "2026-10-03",
            "09:00",
            "120",
            "Sosialisasi/KIE",
            "Sosialisasi gizi",
            "Puskesmas Kebasen",
            "Di luar perpustakaan",
            "5",
            "9",
            "14",
            "Penyuluhan gizi — ñ",
        ])]
    );

    // A month with nothing from the desk says "-" for the member count it never got,
    // and its visits table is the total and the rule alone.
    let empty = store
        .month_facts(
            (sim::month_start() - Duration::days(40)).date_naive(),
            Some(&lib("dermaji")),
            FactsDetail::Breakdowns,
        )
        .await
        .unwrap();
    let report = jejak_server::report::village_monthly(
        &empty,
        None,
        &lib("dermaji"),
        jejak_domain::Lang::En,
        arrival(),
    )
    .unwrap();
    assert_eq!(
        cells_of(&report, "members"),
        vec![
            texts(&["Members at month end", "-"]),
            texts(&["New members this month", "-"]),
        ]
    );
    assert_eq!(
        cells_of(&report, "visits_daily"),
        vec![texts(&["Total", "0", "0", "0", "0"]),]
    );
}
