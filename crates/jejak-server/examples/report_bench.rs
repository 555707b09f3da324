//! The report benchmark: a stress district's year (350 libraries of three PCs, about
//! 6.5 million sessions, the brief's section 6) ingested through the real store, then
//! the time to build its reports. One JSON line per figure on stdout:
//!
//! - `district_matrix_ms`: the district monthly matrix of one month (goal < 50), as
//!   `jejak report district`, the API and the dashboard build it (`report::load`),
//!   grouped by kecamatan (the libraries lie in 27, one in twenty not set);
//! - `village_report_ms`: one library's monthly report, which also reads the month
//!   before for its change table (goal < 50);
//! - `iplm_year_ms`: the IPLM sheet of the year 2026 (goal < 100), twelve months of
//!   facts;
//! - `detail_export_ms` (info): the detail export of one month, which reads the raw
//!   sessions and every entry;
//! - `report_store_entries` (info): the desk records stored: each library's desk PC
//!   keeps a visitor book of about 15 entries an open day, four activities a month and
//!   the monthly member count, so the matrix and the sheet count visits, activities and
//!   members from the entry counters as well;
//! - `report_store_sessions` (info): the sessions the store holds;
//! - `report_store_bytes_per_session` (info): its file size over them.
//!
//! Each time is the median of 15 builds after one warm-up (the page cache is warm, as
//! on a server that has been running). `--quick` stores 20 libraries' month instead:
//! its figures only show the script still works.
//!
//! `cargo run --release -p jejak-server --example report_bench [-- --quick]`; files go
//! to `$BENCH_TMPDIR` (default: the system's temporary folder).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};
use jejak_domain::{Lang, Zone};
use jejak_server::report::{ReportRequest, load};
use jejak_server::{Delivery, ServerStore, SqliteStore};
use jejak_testkit::bench;
use jejak_testkit::sim::{self, Pace};

fn emit(name: &str, value: f64, unit: &str, goal: &str) {
    println!(r#"{{"name": "{name}", "value": {value:.3}, "unit": "{unit}", "goal": "{goal}"}}"#);
}

/// The median time of `runs` builds of `request`, after one warm-up.
async fn time_report(store: &SqliteStore, request: &ReportRequest, runs: usize) -> Duration {
    let now = Utc::now();
    load(store, request, Lang::Id, now).await.unwrap();
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let report = load(store, request, Lang::Id, now).await.unwrap();
        times.push(started.elapsed());
        assert!(!report.sections.is_empty());
    }
    times.sort();
    times[times.len() / 2]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (libraries, per_pc) = if quick { (20, 500) } else { (350, 6_190) };
    let base = std::env::var_os("BENCH_TMPDIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(&base).unwrap();
    // BENCH_REPORT_DB keeps the store at a path of one's choosing and reuses it when it
    // is already there (for working on the reports without rebuilding it every time).
    let kept = std::env::var_os("BENCH_REPORT_DB").map(std::path::PathBuf::from);
    let reuse = kept.as_ref().is_some_and(|p| p.exists());
    let path = kept.unwrap_or_else(|| dir.path().join("report-bench.db"));
    let store = SqliteStore::open(&path).unwrap();

    // The year starts on 1 November 2025, so that October 2026 is its last full month
    // (the quick run's month is October 2026 itself).
    let first_day = if quick {
        "2026-10-01T00:00:00Z"
    } else {
        "2025-11-01T00:00:00Z"
    };
    let first_day = chrono::DateTime::parse_from_rfc3339(first_day)
        .unwrap()
        .with_timezone(&Utc);
    let sync_at = first_day + chrono::Duration::days(366);
    let district = sim::district(libraries * 3, 11);
    let started = Instant::now();
    // The libraries lie in 27 kecamatan (as Banyumas's), one in twenty not set yet, so
    // the matrix is timed with its grouping and subtotals.
    for (i, pc) in district
        .iter()
        .filter(|pc| !reuse && pc.pc.as_str() == "pc-01")
        .enumerate()
    {
        let details = jejak_domain::LibraryDetails {
            desa: Some(format!("Desa {}", pc.library)),
            kecamatan: (i % 20 != 19).then(|| format!("Kecamatan {:02}", i % 27)),
            ..Default::default()
        };
        store
            .add_library_with_details(
                &pc.library,
                &format!("Perpustakaan Desa {}", pc.library),
                Zone::Wib,
                &details,
            )
            .await
            .unwrap();
    }
    // Eight PCs at a time, as many PCs syncing at once would: the store's writer groups
    // their batches into shared commits.
    let mut stored = 0usize;
    let groups = if reuse { &[][..] } else { &district[..] };
    if reuse {
        stored = store
            .devices()
            .await
            .unwrap()
            .iter()
            .map(|d| d.sessions as usize)
            .sum();
    }
    for group in groups.chunks(8) {
        let mut tasks = Vec::new();
        for (i, pc) in group.iter().enumerate() {
            let store = store.clone();
            let pc = pc.clone();
            let seed = stored as u64 + i as u64;
            tasks.push(tokio::spawn(async move {
                store.add_device(&pc.library, &pc.pc).await.unwrap();
                let device = store
                    .find_device(&pc.library, &pc.pc)
                    .await
                    .unwrap()
                    .unwrap();
                let log = sim::simulate_at(&pc, per_pc, first_day, seed, Pace::STRESS);
                for batch in sim::batches(&pc, &log, 500, sync_at) {
                    store
                        .ingest(&device, batch, sync_at, Delivery::Online)
                        .await
                        .unwrap();
                }
                log.records.len()
            }));
        }
        for task in tasks {
            stored += task.await.unwrap();
        }
    }
    eprintln!(
        "bench: stored {stored} sessions of {} PCs in {:.1} s",
        district.len(),
        started.elapsed().as_secs_f64()
    );

    // Each library's desk PC sends its year of visitor book, activities and member
    // counts.
    let started = Instant::now();
    let entries = if reuse {
        store.entry_records().await.unwrap().len()
    } else {
        bench::store_desk_years(&store, &district, first_day, sync_at).await
    };
    eprintln!(
        "bench: stored {entries} desk records of {} libraries in {:.1} s",
        libraries,
        started.elapsed().as_secs_f64()
    );

    let month = NaiveDate::from_ymd_opt(2026, 10, 1).unwrap();
    let matrix = time_report(&store, &ReportRequest::District { month }, 15).await;
    let library = district[district.len() / 2].library.clone();
    let village = time_report(&store, &ReportRequest::Village { month, library }, 15).await;
    let iplm = time_report(&store, &ReportRequest::Iplm { year: 2026 }, 15).await;
    // The detail export reads a month's raw sessions: three builds are enough.
    let detail = time_report(&store, &ReportRequest::Detail { month }, 3).await;
    let facts = store
        .month_facts(month, None, jejak_server::report::FactsDetail::Days)
        .await
        .unwrap();
    let month_sessions: u64 = facts
        .libraries
        .iter()
        .flat_map(|l| &l.days)
        .map(|d| d.sessions)
        .sum();
    eprintln!(
        "bench: October 2026 holds {month_sessions} sessions of {} libraries",
        facts.libraries.len()
    );
    assert!(month_sessions > 0, "the measured month is empty");

    emit(
        "district_matrix_ms",
        matrix.as_secs_f64() * 1000.0,
        "ms",
        "< 50",
    );
    emit(
        "village_report_ms",
        village.as_secs_f64() * 1000.0,
        "ms",
        "< 50",
    );
    emit("iplm_year_ms", iplm.as_secs_f64() * 1000.0, "ms", "< 100");
    emit(
        "detail_export_ms",
        detail.as_secs_f64() * 1000.0,
        "ms",
        "info",
    );
    emit("report_store_sessions", stored as f64, "sessions", "info");
    emit("report_store_entries", entries as f64, "records", "info");
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(path.with_extension("db-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
    emit(
        "report_store_bytes_per_session",
        bytes as f64 / stored.max(1) as f64,
        "bytes",
        "info",
    );
}
