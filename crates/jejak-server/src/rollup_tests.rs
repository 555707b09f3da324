//! The property of the rollups: whatever sessions, revisions, pc events, desk visits
//! (withdrawn or not), member counts and arrival
//! orders (batches resent, refused for a seq gap and retried, anchors improving between
//! batches so that later revisions are re-dated), the stored rollups equal a recount
//! from the raw rows, and the sessions they count are exactly the stored public ones.

use chrono::{DateTime, TimeZone, Utc};
use jejak_domain::{
    AgeGroup, ChangeRecord, ClientInstant, ClockAnchor, EndReason, Gender, LibraryCode, PatronKey,
    PatronProfile, PcCode, PcEvent, PcEventKind, Purpose, RecordBody, Session, TimeQuality,
    UserKind, WireBatch, Zone,
};
use proptest::prelude::*;
use uuid::Uuid;

use crate::report::FactsDetail;
use crate::sqlite::SqliteStore;
use crate::store::{Delivery, IngestError, ServerStore};
use crate::test_backend::Backend;

/// One revision of a generated session.
#[derive(Debug, Clone)]
struct Rev {
    minutes: u64,
    closed: bool,
    kind: u8,
    gender: u8,
    age: u8,
    purposes: u8,
    key: Option<u8>,
    kib: u64,
}

#[derive(Debug, Clone)]
enum Gen {
    /// A session starting `start_min` minutes into the window, with its revisions.
    Session { start_min: u64, revs: Vec<Rev> },
    /// A pc event `at_min` minutes into the window.
    Event { at_min: u64, kind: u8 },
    /// A desk visit `at_min` minutes into the window, withdrawn by a later revision
    /// (the librarian's undo) when `undone`.
    Visit {
        at_min: u64,
        purpose: u8,
        people: u32,
        undone: bool,
    },
    /// An activity entered `at_min` minutes into the window, held `days_back` days
    /// before, edited `edits` times (each edit moves its date a day back and changes its
    /// type, place and participants).
    Activity {
        at_min: u64,
        days_back: u8,
        kind: u8,
        people: u32,
        edits: u8,
    },
    /// A revision of the member count of October (`november` false) or November.
    Members {
        november: bool,
        members: u32,
        new_members: u32,
    },
}

fn rev() -> impl Strategy<Value = Rev> {
    (
        0u64..(30 * 60),
        any::<bool>(),
        0u8..6,
        0u8..3,
        0u8..7,
        any::<u8>(),
        proptest::option::of(0u8..4),
        0u64..50_000,
    )
        .prop_map(
            |(minutes, closed, kind, gender, age, purposes, key, kib)| Rev {
                minutes,
                closed,
                kind,
                gender,
                age,
                purposes,
                key,
                kib,
            },
        )
}

fn gen_item() -> impl Strategy<Value = Gen> {
    prop_oneof![
        3 => (0u64..(4 * 1440), proptest::collection::vec(rev(), 1..4))
            .prop_map(|(start_min, revs)| Gen::Session { start_min, revs }),
        2 => (0u64..(4 * 1440), 0u8..5).prop_map(|(at_min, kind)| Gen::Event { at_min, kind }),
        2 => (0u64..(4 * 1440), 0u8..6, 1u32..40, any::<bool>())
            .prop_map(|(at_min, purpose, people, undone)| Gen::Visit { at_min, purpose, people, undone }),
        1 => (0u64..(4 * 1440), 0u8..40, any::<u8>(), 0u32..60, 0u8..3)
            .prop_map(|(at_min, days_back, kind, people, edits)| Gen::Activity { at_min, days_back, kind, people, edits }),
        1 => (any::<bool>(), 0u32..500, 0u32..20)
            .prop_map(|(november, members, new_members)| Gen::Members {
                november,
                members: members + new_members,
                new_members,
            }),
    ]
}

fn pick<T: Copy>(all: &[T], i: u8) -> T {
    all[usize::from(i) % all.len()]
}

/// The PC's change log from the generated items: every revision a record of its own.
fn records(
    library: &LibraryCode,
    pc: &PcCode,
    run: Uuid,
    boot: DateTime<Utc>,
    items: &[Gen],
) -> Vec<ChangeRecord> {
    let mut out = Vec::new();
    let mut seq = 0u64;
    // The revision each month's member count is at.
    let mut member_revisions = [0u32; 2];
    for item in items {
        match item {
            Gen::Visit {
                at_min,
                purpose,
                people,
                undone,
            } => {
                seq += 1;
                let at = boot + chrono::Duration::minutes(*at_min as i64);
                let visit = jejak_domain::Visit {
                    id: Uuid::new_v4(),
                    revision: 1,
                    library: library.clone(),
                    pc: pc.clone(),
                    at,
                    run_id: run,
                    mono_ms: at_min * 60 * 1000,
                    gender: pick(Gender::ALL, *purpose),
                    age_group: pick(AgeGroup::ALL, *purpose),
                    user_kind: pick(UserKind::VISITORS, *purpose),
                    purpose: pick(jejak_domain::VisitPurpose::ALL, *purpose),
                    people: *people,
                    withdrawn: false,
                };
                let mut revisions = vec![visit.clone()];
                if *undone {
                    revisions.push(visit.withdrawn(at, run, visit.mono_ms + 1));
                }
                for v in revisions {
                    if v.revision > 1 {
                        seq += 1;
                    }
                    out.push(ChangeRecord {
                        seq,
                        recorded_at: v.at,
                        run_id: run,
                        mono_ms: v.mono_ms,
                        body: RecordBody::Visit(v),
                    });
                }
            }
            Gen::Activity {
                at_min,
                days_back,
                kind,
                people,
                edits,
            } => {
                let id = Uuid::new_v4();
                for revision in 0..=u32::from(*edits) {
                    seq += 1;
                    let at = boot + chrono::Duration::minutes(*at_min as i64 + i64::from(revision));
                    let step = kind.wrapping_add(revision as u8);
                    let mut participants = jejak_domain::Participants::default();
                    participants.set(
                        pick(Gender::ALL, step),
                        pick(AgeGroup::ALL, step),
                        people + revision,
                    );
                    participants.set(pick(Gender::ALL, step / 3), AgeGroup::Lansia, revision * 2);
                    let mono_ms = at_min * 60 * 1000 + u64::from(revision);
                    let activity = jejak_domain::Activity {
                        id,
                        revision: revision + 1,
                        library: library.clone(),
                        pc: pc.clone(),
                        at,
                        run_id: run,
                        mono_ms,
                        date: at.date_naive()
                            - chrono::Days::new(u64::from(*days_back) + u64::from(revision)),
                        start: chrono::NaiveTime::from_hms_opt(9, 0, 0).expect("a time"),
                        duration_minutes: 60,
                        activity_type: pick(jejak_domain::ActivityType::ALL, step),
                        title: format!("Kegiatan {step}"),
                        partner: None,
                        place: pick(jejak_domain::ActivityPlace::ALL, step),
                        participants,
                        notes: None,
                    };
                    out.push(ChangeRecord {
                        seq,
                        recorded_at: at,
                        run_id: run,
                        mono_ms,
                        body: RecordBody::Activity(activity),
                    });
                }
            }
            Gen::Members {
                november,
                members,
                new_members,
            } => {
                seq += 1;
                let month =
                    jejak_domain::YearMonth::new(2026, 10 + u32::from(*november)).expect("a month");
                let revision = &mut member_revisions[usize::from(*november)];
                *revision += 1;
                let at = boot + chrono::Duration::minutes(i64::from(*revision));
                out.push(ChangeRecord {
                    seq,
                    recorded_at: at,
                    run_id: run,
                    mono_ms: u64::from(*revision) * 60_000,
                    body: RecordBody::MemberCount(jejak_domain::MemberCount {
                        id: jejak_domain::MemberCount::id_for(library, month),
                        revision: *revision,
                        library: library.clone(),
                        pc: pc.clone(),
                        at,
                        run_id: run,
                        mono_ms: u64::from(*revision) * 60_000,
                        month,
                        members: *members,
                        new_members: *new_members,
                    }),
                });
            }
            Gen::Session { start_min, revs } => {
                let id = Uuid::new_v4();
                let start = boot + chrono::Duration::minutes(*start_min as i64);
                for (i, r) in revs.iter().enumerate() {
                    seq += 1;
                    let last = i + 1 == revs.len();
                    let closed = r.closed || !last;
                    let duration = r.minutes * 60;
                    let end = start + chrono::Duration::seconds(duration as i64);
                    let purposes: Vec<Purpose> = Purpose::ALL
                        .iter()
                        .enumerate()
                        .filter(|(b, _)| r.purposes & (1 << b) != 0)
                        .map(|(_, p)| *p)
                        .take(3)
                        .collect();
                    out.push(ChangeRecord {
                        seq,
                        recorded_at: end,
                        run_id: run,
                        mono_ms: (start_min * 60 + duration) * 1000,
                        body: RecordBody::Session(Session {
                            id,
                            revision: i as u32 + 1,
                            library: library.clone(),
                            pc: pc.clone(),
                            started_at: start,
                            ended_at: closed.then_some(end),
                            duration_secs: duration,
                            end_reason: closed.then_some(EndReason::Logout),
                            patron: PatronProfile {
                                user_kind: pick(UserKind::ALL, r.kind),
                                purposes,
                                gender: pick(&[Gender::L, Gender::P, Gender::X], r.gender),
                                age_group: pick(AgeGroup::ALL, r.age),
                                group_size: 1 + u32::from(r.kind % 3),
                                patron_key: r.key.map(|k| {
                                    PatronKey::parse(&hex::encode([k; 32])).expect("a key")
                                }),
                            },
                            bytes_rx: r.kib * 1024,
                            bytes_tx: 0,
                            online_secs: duration / 2,
                            time_quality: TimeQuality::Trusted,
                            run_id: run,
                            started_mono_ms: start_min * 60 * 1000,
                        }),
                    });
                }
            }
            Gen::Event { at_min, kind } => {
                seq += 1;
                let at = boot + chrono::Duration::minutes(*at_min as i64);
                let kind = pick(
                    &[
                        PcEventKind::Boot,
                        PcEventKind::Heartbeat,
                        PcEventKind::InternetUp,
                        PcEventKind::InternetDown,
                        PcEventKind::Shutdown,
                    ],
                    *kind,
                );
                out.push(ChangeRecord {
                    seq,
                    recorded_at: at,
                    run_id: run,
                    mono_ms: at_min * 60 * 1000,
                    body: RecordBody::PcEvent(PcEvent {
                        id: Uuid::new_v4(),
                        library: library.clone(),
                        pc: pc.clone(),
                        kind,
                        at,
                        run_id: run,
                        mono_ms: at_min * 60 * 1000,
                        clock_delta_ms: None,
                    }),
                });
            }
        }
    }
    out
}

/// The batch over `records[from..to]`, keeping only the newest revision of each record
/// in the range (as the client does), with an anchor for the run that is `skew_s` off
/// the truth and more precise the later the batch (so it replaces the stored one and
/// re-dates what follows).
#[allow(clippy::too_many_arguments)]
fn batch(
    library: &LibraryCode,
    pc: &PcCode,
    epoch: Uuid,
    run: Uuid,
    boot: DateTime<Utc>,
    records: &[ChangeRecord],
    (from, to): (usize, usize),
    skew_s: i64,
) -> WireBatch {
    let current = jejak_domain::newest_revisions(records[from..to].to_vec());
    let sent_mono = 6 * 86_400_000u64;
    let server_ms = (boot + chrono::Duration::milliseconds(sent_mono as i64)).timestamp_millis()
        + skew_s * 1000;
    WireBatch::encode(
        Uuid::new_v4(),
        library.clone(),
        pc.clone(),
        epoch,
        records[from].seq,
        records[to - 1].seq,
        ClientInstant {
            run,
            mono_ms: sent_mono,
            wall_ms: server_ms,
        },
        vec![ClockAnchor {
            run,
            mono_ms: sent_mono,
            server_ms,
            uncertainty_ms: 10_000 - (to as u64).min(9_000),
        }],
        &current,
    )
}

fn check(backend: &Backend, items: Vec<Gen>, cuts: Vec<usize>, order: Vec<u8>, skews: Vec<i64>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let under_test = backend.open(crate::store::system_clock()).await;
        check_store(under_test.store.as_ref(), items, cuts, order, skews).await;
        under_test.finish().await;
    });
}

async fn check_store(
    store: &dyn ServerStore,
    items: Vec<Gen>,
    cuts: Vec<usize>,
    order: Vec<u8>,
    skews: Vec<i64>,
) {
    // A library in WITA (+8), so local days differ from UTC days.
    let library = LibraryCode::parse("wita-1").unwrap();
    store
        .add_library(&library, "Desa Wita", Zone::Wita)
        .await
        .unwrap();
    let pc = PcCode::parse("pc-01").unwrap();
    store.add_device(&library, &pc).await.unwrap();
    let device = store.find_device(&library, &pc).await.unwrap().unwrap();
    // The window straddles a month end: 2026-10-30 to 2026-11-03.
    let boot = Utc.with_ymd_and_hms(2026, 10, 29, 20, 0, 0).unwrap();
    let (run, epoch) = (Uuid::new_v4(), Uuid::new_v4());
    let records = records(&library, &pc, run, boot, &items);
    if records.is_empty() {
        return;
    }
    // Batches: cut points over the log.
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % records.len()).collect();
    bounds.push(0);
    bounds.push(records.len());
    bounds.sort();
    bounds.dedup();
    let ranges: Vec<(usize, usize)> = bounds.windows(2).map(|w| (w[0], w[1])).collect();
    // Arrival: batches in a shuffled order, each delivered possibly twice; those
    // refused for a gap come back later, until everything is held.
    let mut queue: Vec<usize> = (0..ranges.len()).collect();
    for (i, o) in order.iter().enumerate() {
        let len = queue.len();
        queue.swap(i % len, usize::from(*o) % len);
    }
    let mut accepted = vec![false; ranges.len()];
    let mut rounds = 0;
    while accepted.iter().any(|a| !a) {
        rounds += 1;
        assert!(rounds < 100, "the batches never all arrived");
        for (n, &b) in queue.iter().enumerate() {
            let skew = skews[n % skews.len()];
            let wire = batch(&library, &pc, epoch, run, boot, &records, ranges[b], skew);
            let at = boot + chrono::Duration::days(6);
            match store
                .ingest(&device, wire.clone(), at, Delivery::Online)
                .await
            {
                Ok(_) => {
                    accepted[b] = true;
                    // A duplicate now and then.
                    if n % 3 == 0 {
                        store
                            .ingest(&device, wire, at, Delivery::Online)
                            .await
                            .unwrap();
                    }
                }
                Err(IngestError::SeqGap { .. }) => {}
                Err(e) => panic!("{e}"),
            }
        }
    }
    let found = store.check_rollups().await.unwrap();
    assert!(found.is_consistent(), "{found:#?}");

    // An independent count: the public sessions the month facts hold are the
    // stored sessions that are not staff.
    let stored = store.sessions(&device).await.unwrap();
    let public = stored
        .iter()
        .filter(|s| s.patron.user_kind != UserKind::Staf)
        .count() as u64;
    let mut counted = 0;
    for month in [(2026, 10), (2026, 11)] {
        let first = chrono::NaiveDate::from_ymd_opt(month.0, month.1, 1).unwrap();
        let facts = store
            .month_facts(first, None, FactsDetail::Breakdowns)
            .await
            .unwrap();
        let lib = &facts.libraries[0];
        let by_days: u64 = lib.days.iter().map(|d| d.sessions).sum();
        let by_age: u64 = lib
            .breakdowns
            .iter()
            .filter(|b| matches!(b.by, crate::report::Breakdown::Age(_)))
            .map(|b| b.sessions)
            .sum();
        assert_eq!(by_days, by_age);
        counted += by_days;
    }
    // Sessions re-dated outside the two months are the only ones not counted.
    assert!(counted <= public);

    // An independent count of activities: the newest revision of each, on its own
    // date, whatever order its revisions arrived in.
    let mut newest = std::collections::HashMap::new();
    for r in &records {
        if let RecordBody::Activity(a) = &r.body {
            newest.insert(a.id, a.clone());
        }
    }
    let in_window = |a: &&jejak_domain::Activity| {
        a.date >= chrono::NaiveDate::from_ymd_opt(2026, 10, 1).unwrap()
            && a.date <= chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap()
    };
    let expected: i64 = newest
        .values()
        .filter(in_window)
        .map(|a| i64::from(a.participants.total()))
        .sum();
    let mut participants = 0;
    for month in [10, 11] {
        let first = chrono::NaiveDate::from_ymd_opt(2026, month, 1).unwrap();
        let facts = store
            .month_facts(first, None, FactsDetail::Days)
            .await
            .unwrap();
        participants += facts.libraries[0].entry_count(None, "activity.participants");
    }
    assert_eq!(participants, expected);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn rollups_equal_a_recount_whatever_the_arrival_order(
        items in proptest::collection::vec(gen_item(), 1..25),
        cuts in proptest::collection::vec(any::<usize>(), 0..5),
        order in proptest::collection::vec(any::<u8>(), 0..6),
        skews in proptest::collection::vec(-7200i64..7200, 1..4),
    ) {
        check(&Backend::Sqlite, items, cuts, order, skews);
    }
}

/// The same property on PostgreSQL, which applies the same rules (`rollup.rs`) through
/// its own SQL. Fewer cases: each makes and drops a database.
#[test]
fn rollups_equal_a_recount_whatever_the_arrival_order_on_postgres() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let strategy = (
        proptest::collection::vec(gen_item(), 1..25),
        proptest::collection::vec(any::<usize>(), 0..5),
        proptest::collection::vec(any::<u8>(), 0..6),
        proptest::collection::vec(-7200i64..7200, 1..4),
    );
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 16,
        ..ProptestConfig::default()
    });
    let outcome = runner.run(&strategy, |(items, cuts, order, skews)| {
        check(&backend, items, cuts, order, skews);
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

/// The migration that introduced the rollups counts them from the sessions a store
/// already holds, and `rebuild_rollups` gives the same rollups as ingest did.
#[tokio::test(flavor = "multi_thread")]
async fn a_rebuild_gives_the_rollups_ingest_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
    let library = LibraryCode::parse("wib-1").unwrap();
    store
        .add_library(&library, "Desa", Zone::Wib)
        .await
        .unwrap();
    let pc = PcCode::parse("pc-01").unwrap();
    store.add_device(&library, &pc).await.unwrap();
    let device = store.find_device(&library, &pc).await.unwrap().unwrap();
    let boot = Utc.with_ymd_and_hms(2026, 10, 29, 20, 0, 0).unwrap();
    let items: Vec<Gen> = (0..40)
        .map(|i| Gen::Session {
            start_min: i * 97,
            revs: vec![Rev {
                minutes: 30 + i,
                closed: true,
                kind: (i % 5) as u8,
                gender: (i % 3) as u8,
                age: (i % 7) as u8,
                purposes: i as u8,
                key: Some((i % 4) as u8),
                kib: i * 100,
            }],
        })
        .chain((0..30).map(|i| Gen::Event {
            at_min: i * 50,
            kind: (i % 5) as u8,
        }))
        .collect();
    let (run, epoch) = (Uuid::new_v4(), Uuid::new_v4());
    let records = records(&library, &pc, run, boot, &items);
    let wire = batch(
        &library,
        &pc,
        epoch,
        run,
        boot,
        &records,
        (0, records.len()),
        0,
    );
    store
        .ingest(
            &device,
            wire,
            boot + chrono::Duration::days(6),
            Delivery::Online,
        )
        .await
        .unwrap();
    let month = chrono::NaiveDate::from_ymd_opt(2026, 10, 1).unwrap();
    let before = store
        .month_facts(month, None, FactsDetail::Breakdowns)
        .await
        .unwrap();
    assert!(
        before.libraries[0]
            .days
            .iter()
            .map(|d| d.sessions)
            .sum::<u64>()
            > 0
    );
    store.rebuild_rollups().await.unwrap();
    let after = store
        .month_facts(month, None, FactsDetail::Breakdowns)
        .await
        .unwrap();
    assert_eq!(before, after);
    assert!(store.check_rollups().await.unwrap().is_consistent());
}

/// Pruning raw records keeps the months' reports as they were, the check still holds
/// for the kept months, and a record from a pruned month that arrives later is refused
/// (`beyond-retention`) instead of being counted a second time.
#[tokio::test(flavor = "multi_thread")]
async fn pruning_keeps_the_reports_and_refuses_what_it_no_longer_holds() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
    let library = LibraryCode::parse("wib-1").unwrap();
    store
        .add_library(&library, "Desa", Zone::Wib)
        .await
        .unwrap();
    let pc = PcCode::parse("pc-01").unwrap();
    store.add_device(&library, &pc).await.unwrap();
    let device = store.find_device(&library, &pc).await.unwrap().unwrap();
    // From 2026-10-29 20:00 UTC (30 October, 03:00 WIB) over five days.
    let boot = Utc.with_ymd_and_hms(2026, 10, 29, 20, 0, 0).unwrap();
    let session = |start_min: u64, key: u8| Gen::Session {
        start_min,
        revs: vec![Rev {
            minutes: 45,
            closed: true,
            kind: 1,
            gender: key % 3,
            age: 2,
            purposes: 3,
            key: Some(key),
            kib: 900,
        }],
    };
    let mut items: Vec<Gen> = (0..40u64)
        .map(|i| session(i * 150, (i % 4) as u8))
        .collect();
    items.extend((0..40u64).map(|i| Gen::Event {
        at_min: i * 140,
        kind: (i % 4) as u8,
    }));
    // The last record: an October session that arrives after the pruning.
    items.push(session(60, 3));
    let (run, epoch) = (Uuid::new_v4(), Uuid::new_v4());
    let records = records(&library, &pc, run, boot, &items);
    let n = records.len();
    let at = boot + chrono::Duration::days(6);
    let first = batch(&library, &pc, epoch, run, boot, &records, (0, n - 1), 0);
    store
        .ingest(&device, first, at, Delivery::Online)
        .await
        .unwrap();
    let october = chrono::NaiveDate::from_ymd_opt(2026, 10, 1).unwrap();
    let november = chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
    let facts = |month| {
        let store = store.clone();
        async move {
            store
                .month_facts(month, None, FactsDetail::Breakdowns)
                .await
                .unwrap()
        }
    };
    let (october_before, november_before) = (facts(october).await, facts(november).await);
    assert!(
        october_before.libraries[0]
            .days
            .iter()
            .any(|d| d.sessions > 0)
    );

    let pruned = store.prune_raw(november).await.unwrap();
    assert!(pruned.sessions > 0 && pruned.events > 0, "{pruned:?}");
    assert_eq!(pruned.kept_from, november);
    let cutoff = Utc.with_ymd_and_hms(2026, 10, 31, 17, 0, 0).unwrap();
    for s in store.sessions(&device).await.unwrap() {
        assert!(s.corrected_end.is_none_or(|end| end >= cutoff), "{s:?}");
    }
    assert_eq!(facts(october).await, october_before);
    assert_eq!(facts(november).await, november_before);
    assert!(store.check_rollups().await.unwrap().is_consistent());

    // The late October session is refused, and October's report does not move.
    let late = batch(&library, &pc, epoch, run, boot, &records, (n - 1, n), 0);
    let ack = store
        .ingest(&device, late, at, Delivery::Online)
        .await
        .unwrap();
    let ack = serde_json::to_value(&ack).unwrap();
    assert_eq!(
        ack["rejected"][0]["code"],
        crate::ingest::REJECT_BEYOND_RETENTION,
        "{ack}"
    );
    assert_eq!(facts(october).await, october_before);

    // A rebuild recounts the kept months only.
    store.rebuild_rollups().await.unwrap();
    assert_eq!(facts(october).await, october_before);
    assert_eq!(facts(november).await, november_before);
    assert!(store.check_rollups().await.unwrap().is_consistent());
}
