//! The batch path fuzzed with proptest: arbitrary JSON documents, and real batches with
//! their numbers, arrays and strings replaced by hostile ones, go through what a request
//! body goes through (parse, the record count, decode and validation, and the real
//! SQLite store's ingest with its rollups). Whatever the input, the answer is a success
//! or a 4xx: never a panic, and never a 5xx (a panic inside the store would come back as
//! a 503 `store-unavailable`, which a PC retries for ever).
//!
//! `PROPTEST_CASES` sets how many documents each test tries (`.ci/run` runs more than a
//! plain `cargo test`).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use jejak_domain::{LibraryCode, PcCode, Zone};
use proptest::prelude::*;
use serde_json::{Map, Number, Value};

use super::body;
use super::{ApiProblem, Limits};
use crate::store::{Delivery, DeviceRef, ServerStore};
use crate::{SqliteOptions, SqliteStore};
use jejak_testkit::sim::{SimPc, batches, simulate};

/// A store with the one PC every batch here names.
struct Target {
    runtime: tokio::runtime::Runtime,
    store: Arc<SqliteStore>,
    device: DeviceRef,
    now: DateTime<Utc>,
    _dir: tempfile::TempDir,
}

/// One store for every case of every test here (opening one per case would spend the
/// run on migrations): what the cases store only makes later ones duplicates or gaps,
/// still a 4xx or a success.
fn target() -> &'static Target {
    static TARGET: std::sync::LazyLock<Target> = std::sync::LazyLock::new(open_target);
    &TARGET
}

fn open_target() -> Target {
    // Driven by `block_on` from the test threads at once.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let now = DateTime::parse_from_rfc3339("2026-10-20T05:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default();
    let store = SqliteStore::open_with(
        &dir.path().join("fuzz.db"),
        SqliteOptions {
            clock: Arc::new(move || now),
        },
    )
    .unwrap_or_else(|e| panic!("store: {e}"));
    let (library, pc) = (code("dermaji"), pc_code("pc-01"));
    let device = runtime.block_on(async {
        store
            .add_library(&library, "Perpustakaan Desa Dermaji", Zone::Wib)
            .await
            .unwrap_or_else(|e| panic!("library: {e}"));
        store
            .add_device(&library, &pc)
            .await
            .unwrap_or_else(|e| panic!("device: {e}"));
        store
            .find_device(&library, &pc)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("the device was just enrolled"))
    });
    Target {
        runtime,
        store: Arc::new(store),
        device,
        now,
        _dir: dir,
    }
}

fn code(raw: &str) -> LibraryCode {
    LibraryCode::parse(raw).unwrap_or_else(|e| panic!("{e}"))
}

fn pc_code(raw: &str) -> PcCode {
    PcCode::parse(raw).unwrap_or_else(|e| panic!("{e}"))
}

impl Target {
    /// The status the server would answer `json` with, as a batch body.
    fn status(&self, json: &[u8]) -> u16 {
        let batch = match body::parse(json) {
            Ok(batch) => batch,
            Err(e) => return ApiProblem::from(e).problem.status,
        };
        if batch.len() > Limits::default().max_records {
            return 413;
        }
        self.runtime.block_on(async {
            match self
                .store
                .ingest(&self.device, batch, self.now, Delivery::Online)
                .await
            {
                Ok(_) => 200,
                Err(e) => ApiProblem::from(e).problem.status,
            }
        })
    }
}

/// Real batches of the one PC, as JSON documents.
fn real_batches() -> Vec<Value> {
    let pc = SimPc {
        library: code("dermaji"),
        pc: pc_code("pc-01"),
        epoch: uuid::Uuid::from_u128(42),
        clock_error_ms: -3_000,
    };
    let first_day = DateTime::parse_from_rfc3339("2026-10-05T00:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default();
    let log = simulate(&pc, 12, first_day, 7);
    let sync_at = first_day + chrono::Duration::days(10);
    let mut out = batches(&pc, &log, 6, sync_at);
    // Then a batch of the desk's records: two visits, the month's member count and an
    // activity (the one kind with free text).
    let first = out.last().map_or(1, |b| b.last_seq + 1);
    let run = uuid::Uuid::from_u128(77);
    let at = first_day + chrono::Duration::hours(3);
    let visit = |seq: u64, people: u32| jejak_domain::ChangeRecord {
        seq,
        recorded_at: at,
        run_id: run,
        mono_ms: seq * 1_000,
        body: jejak_domain::RecordBody::Visit(jejak_domain::Visit {
            id: uuid::Uuid::from_u128(9_000 + u128::from(seq)),
            revision: 1,
            library: pc.library.clone(),
            pc: pc.pc.clone(),
            at,
            run_id: run,
            mono_ms: seq * 1_000,
            gender: jejak_domain::Gender::P,
            age_group: jejak_domain::AgeGroup::Anak,
            user_kind: jejak_domain::UserKind::Rombongan,
            purpose: jejak_domain::VisitPurpose::Belajar,
            people,
            withdrawn: false,
        }),
    };
    let month = jejak_domain::YearMonth::new(2026, 10).unwrap_or_else(|| unreachable!());
    let count = jejak_domain::ChangeRecord {
        seq: first + 2,
        recorded_at: at,
        run_id: run,
        mono_ms: 9_000,
        body: jejak_domain::RecordBody::MemberCount(jejak_domain::MemberCount {
            id: jejak_domain::MemberCount::id_for(&pc.library, month),
            revision: 1,
            library: pc.library.clone(),
            pc: pc.pc.clone(),
            at,
            run_id: run,
            mono_ms: 9_000,
            month,
            members: 240,
            new_members: 7,
        }),
    };
    let activity = jejak_domain::ChangeRecord {
        seq: first + 3,
        recorded_at: at,
        run_id: run,
        mono_ms: 9_500,
        body: jejak_domain::RecordBody::Activity(jejak_domain::Activity {
            id: uuid::Uuid::from_u128(7_777),
            revision: 1,
            library: pc.library.clone(),
            pc: pc.pc.clone(),
            at,
            run_id: run,
            mono_ms: 9_500,
            date: at.date_naive(),
            start: chrono::NaiveTime::from_hms_opt(9, 0, 0).unwrap_or_default(),
            duration_minutes: 90,
            activity_type: jejak_domain::ActivityType::BedahBuku,
            title: "Bedah buku anak".into(),
            partner: Some("SD Negeri 1".into()),
            place: jejak_domain::ActivityPlace::DiPerpustakaan,
            participants: jejak_domain::Participants::parse("P:anak=9,L:anak=8")
                .unwrap_or_default(),
            notes: None,
        }),
    };
    out.push(jejak_domain::WireBatch::encode(
        uuid::Uuid::from_u128(88),
        pc.library.clone(),
        pc.pc.clone(),
        pc.epoch,
        first,
        first + 3,
        jejak_domain::ClientInstant {
            run,
            mono_ms: 10_000,
            wall_ms: sync_at.timestamp_millis(),
        },
        Vec::new(),
        &[visit(first, 1), visit(first + 1, 25), count, activity],
    ));
    out.iter()
        .map(|b| serde_json::to_value(b).unwrap_or(Value::Null))
        .collect()
}

/// Numbers a hostile client would try.
fn hostile_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::from(i64::MIN)),
        Just(Value::from(i64::MAX)),
        Just(Value::from(u64::MAX)),
        Just(Value::from(9_223_372_036_854_776_u64)),
        Just(Value::from(0)),
        Just(Value::from(-1)),
        Just(Value::from(1_u64 << 53)),
        Just(Value::from(u64::from(u32::MAX) + 1)),
        Just(Number::from_f64(1e300).map_or(Value::Null, Value::Number)),
        Just(Number::from_f64(-0.5).map_or(Value::Null, Value::Number)),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (0_u64..100_000).prop_map(Value::from),
    ]
}

/// Any JSON value, with strings that are sometimes the wire format's own words.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        hostile_number(),
        prop_oneof![
            Just("dermaji".to_string()),
            Just(" dermaji".to_string()),
            Just("pc-01".to_string()),
            Just("pendidikan".to_string()),
            Just("logout".to_string()),
            Just("P".to_string()),
            Just("00000000000000000000000000000001".to_string()),
            Just("a".repeat(64)),
            ".{0,12}",
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((field_name(), inner), 0..8)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// The batch's own field names, mostly, so that documents get past the first checks.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "wire_version", "batch_id", "library", "pc", "epoch", "first_seq", "last_seq",
            "sent", "runs", "anchors", "patron_keys", "sessions", "events", "seq_delta", "id",
            "revision", "run", "started_mono_ms", "started_at_delta_ms", "duration_s",
            "end_reason", "user_kind", "purposes", "gender", "age_group", "group_size",
            "patron", "rx_kib", "tx_kib", "online_s", "time_quality", "kind", "mono_ms",
            "at_delta_ms", "clock_delta_ms", "wall_ms", "server_ms", "uncertainty_ms",
            "entries",
        ])
        .prop_map(str::to_string),
        1 => "[a-z_]{1,10}",
    ]
}

/// Every path to a leaf of `value` (object keys and array indexes).
fn leaf_paths(value: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                path.push(key.clone());
                leaf_paths(child, path, out);
                path.pop();
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, child) in items.iter().enumerate() {
                path.push(i.to_string());
                leaf_paths(child, path, out);
                path.pop();
            }
        }
        _ => out.push(path.clone()),
    }
}

fn leaf_mut<'a>(value: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(value, |node, step| match node {
        Value::Object(map) => map.get_mut(step),
        Value::Array(items) => step.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
        _ => None,
    })
}

proptest! {
    #[test]
    fn any_json_document_gets_a_4xx_or_success(document in any_json()) {
        let target = target();
        let json = serde_json::to_vec(&document).unwrap_or_default();
        let status = target.status(&json);
        prop_assert!(status == 200 || (400..500).contains(&status), "{status} for {document}");
    }

    #[test]
    fn real_batches_with_hostile_values_get_a_4xx_or_success(
        which in 0_usize..3,
        changes in prop::collection::vec((any::<prop::sample::Index>(), any_json(), hostile_number(), any::<bool>()), 1..6),
    ) {
        let target = target();
        let mut batch = real_batches().swap_remove(which);
        let mut paths = Vec::new();
        leaf_paths(&batch, &mut Vec::new(), &mut paths);
        for (index, replacement, number, numeric) in changes {
            let path = index.get(&paths).clone();
            if let Some(leaf) = leaf_mut(&mut batch, &path) {
                // Mostly a hostile number where a number was; sometimes anything at all.
                *leaf = if numeric && leaf.is_number() { number } else { replacement };
            }
        }
        let json = serde_json::to_vec(&batch).unwrap_or_default();
        let status = target.status(&json);
        prop_assert!(status == 200 || (400..500).contains(&status), "{status} for {batch}");
    }
}

#[test]
fn the_real_batches_are_stored_and_the_issues_batch_is_a_422() {
    let target = target();
    let mut documents = real_batches();
    assert_eq!(documents.len(), 3);
    let mut hostile = documents[1].clone();
    for document in &documents {
        let json = serde_json::to_vec(document).unwrap_or_default();
        assert_eq!(target.status(&json), 200, "{document}");
    }
    // The issue's number: chrono panicked on it and the PC got 503 for ever.
    if let Some(duration) = leaf_mut(
        &mut hostile,
        &["sessions".into(), "duration_s".into(), "0".into()],
    ) {
        *duration = Value::from(9_223_372_036_854_776_u64);
    }
    hostile["batch_id"] = Value::from(uuid::Uuid::now_v7().to_string());
    let json = serde_json::to_vec(&hostile).unwrap_or_default();
    let batch = body::parse(&json).unwrap_or_else(|e| panic!("it parses: {e}"));
    let refused = target
        .runtime
        .block_on(
            target
                .store
                .ingest(&target.device, batch, target.now, Delivery::Online),
        )
        .err()
        .unwrap_or_else(|| panic!("the batch was accepted"));
    let problem = ApiProblem::from(refused).problem;
    assert_eq!(problem.status, 422);
    assert!(
        problem.detail.contains("sessions.duration_s[0]"),
        "{}",
        problem.detail
    );
    documents.clear();
}
