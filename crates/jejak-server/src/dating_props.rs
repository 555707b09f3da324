//! The property of dating, through the real stores: for random runs of a PC (clocks
//! right, reset to 2000, set right or thrown back during a run, years ahead; power cuts
//! whose open session the next run closes) and random deliveries (HTTP syncs that
//! measure an anchor, USB bundles imported days later whose acknowledgement may come
//! back, be lost, or come back in the same run; an HTTP sync after a bundle of the same
//! run: a late anchor), in the order they reach the server:
//!
//! - every session lands in the local month of its true start whenever the evidence
//!   bounds it within that month (the nearest runs dated by their clock or an anchor
//!   before and after it, and the arrivals of the batches that carried its run);
//! - the months' counts never lose a session: their sum plus the undated equals what
//!   the PC made;
//! - the rollups equal a recount.

use std::collections::HashMap;

use chrono::{Datelike, TimeZone, Utc};
use jejak_domain::{ClockAnchor, ClockBound, LibraryCode, PcCode, WireBatch, Zone};
use proptest::prelude::*;
use uuid::Uuid;

use crate::dating::UNDATED_BEFORE_MS;
use crate::report::FactsDetail;
use crate::store::{Delivery, ServerStore};
use crate::test_backend::Backend;
use jejak_testkit::sim::SimPc;
use jejak_testkit::sim::clocks::{History, SimClock, SimRun, history};

const HOUR: i64 = 3_600_000;

/// A generated run: hours since the previous one ended, hours up, sessions, clock kind,
/// where in the run a clock change happens (per mille), a power cut at its end.
type GenRun = (i64, i64, usize, u8, i64, bool);
/// A generated delivery: where in the PC's life (per mille), HTTP (0) or USB with the
/// acknowledgement brought back (1) or lost (2), hours the stick takes to the district.
type GenDelivery = (i64, u8, i64);

fn runs(plan: &[GenRun]) -> Vec<SimRun> {
    // From 2026-10-18 08:00 WIB: the runs straddle month ends.
    let mut at = Utc
        .with_ymd_and_hms(2026, 10, 18, 1, 0, 0)
        .unwrap()
        .timestamp_millis();
    plan.iter()
        .enumerate()
        .map(|(i, (gap_h, hours, sessions, kind, change, cut))| {
            at += gap_h * HOUR;
            let length_ms = hours * HOUR;
            let after_ms = (length_ms * change / 1000).max(HOUR / 2);
            let clock = match kind {
                0 | 1 => SimClock::Right,
                2 => SimClock::Reset,
                3 => SimClock::ResetThenSet { after_ms },
                4 => SimClock::RightThenReset { after_ms },
                _ => SimClock::Ahead {
                    ms: 5 * 365 * 24 * HOUR,
                },
            };
            let run = SimRun {
                run: Uuid::from_u64_pair(77, i as u64),
                boot_ms: at,
                length_ms,
                sessions: *sessions,
                clock,
                cut: *cut,
            };
            at += length_ms;
            run
        })
        .collect()
}

/// What reached the server: (arrival ms, batch, delivery), the runs an anchor was
/// measured in, and the acknowledgements' bounds the PC learnt (run, mono ms, server
/// ms).
type Arrivals = (
    Vec<(i64, WireBatch, Delivery)>,
    Vec<usize>,
    Vec<(usize, i64, i64)>,
);

/// The PC's side: deliveries at moments of its life, as the sync and the USB stick make
/// them.
fn deliver(h: &History, plan: &[GenDelivery]) -> Arrivals {
    let first = h.runs[0].boot_ms;
    let last_run = h.runs.len() - 1;
    let end = h.runs[last_run].boot_ms + h.runs[last_run].length_ms;
    let mut moments: Vec<(i64, u8, i64)> = plan
        .iter()
        .map(|(at, kind, delay)| (first + (end - first) * at / 1000, *kind, *delay))
        .collect();
    moments.sort();
    // Everything reaches the server in the end: a last delivery as the last run ends.
    let final_kind = plan.last().map_or(0, |g| g.1 % 2);
    moments.push((end, final_kind, 30));
    let (mut acked, mut anchors, mut bounds) = (0u64, Vec::<ClockAnchor>::new(), Vec::new());
    let mut anchored_runs = Vec::new();
    let mut learnt = Vec::new();
    let mut pending: Option<(u64, i64)> = None;
    let mut out = Vec::new();
    for (at, kind, delay_h) in moments {
        // The PC must be on to sync or export: the run going then, or the next one.
        let at = match h.instant_at(at) {
            Some(_) => at,
            None => match h.runs.iter().find(|r| r.boot_ms > at) {
                Some(r) => r.boot_ms + 60_000,
                None => end,
            },
        };
        let Some((run, mono)) = h.instant_at(at) else {
            continue;
        };
        // An acknowledgement brought back: the server's time in it bounds this run.
        if let Some((held, imported)) = pending
            && imported <= at
        {
            acked = acked.max(held);
            bounds.push(ClockBound {
                run: h.runs[run].run,
                mono_ms: mono as u64,
                server_ms: imported,
            });
            learnt.push((run, mono, imported));
            pending = None;
        }
        let last = h.seq_at(at);
        if last <= acked {
            continue;
        }
        if kind == 0 {
            anchors.push(h.anchor_at(run, at));
            anchored_runs.push(run);
            let batch = h.batch((acked + 1, last), (run, at), &anchors, &bounds);
            out.push((at, batch, Delivery::Online));
            acked = last;
            pending = None;
        } else {
            let batch = h.batch((acked + 1, last), (run, at), &anchors, &bounds);
            let imported = at + delay_h * HOUR;
            out.push((imported, batch, Delivery::Carried));
            if kind == 1 {
                pending = Some((last, imported));
            }
        }
    }
    out.sort_by_key(|(at, _, _)| *at);
    // A bound reaches the server only with a later batch.
    let delivered: Vec<(usize, i64, i64)> = learnt
        .into_iter()
        .filter(|(run, mono, _)| {
            let learnt_at = h.runs[*run].boot_ms + mono;
            out.iter().any(|(at, b, _)| {
                *at >= learnt_at && b.bounds.iter().any(|x| x.run == h.runs[*run].run)
            })
        })
        .collect();
    (out, anchored_runs, delivered)
}

/// The month (in WIB) of a Unix ms.
fn month_of(ms: i64) -> (i32, u32) {
    let local = Utc
        .timestamp_millis_opt(ms)
        .single()
        .unwrap_or_default()
        .with_timezone(&Zone::Wib.offset());
    (local.year(), local.month())
}

/// The interval the evidence that reached the server gives a session's true start, from
/// a subset of what the server weighs: the nearest runs before and after its own that
/// their clock or an anchor dates, and the batches that carried its run.
fn evidence_interval(
    h: &History,
    arrivals: &Arrivals,
    run: usize,
    mono: i64,
) -> (Option<i64>, Option<i64>) {
    let monos = |j: usize| {
        h.changes
            .iter()
            .filter(|c| c.run == j)
            .map(|c| match &c.record.body {
                jejak_domain::RecordBody::Session(s) => s.started_mono_ms as i64,
                jejak_domain::RecordBody::PcEvent(e) => e.mono_ms as i64,
                other => other.entry().map_or(0, |e| e.mono_ms as i64),
            })
            .collect::<Vec<i64>>()
    };
    let dated =
        |j: usize| arrivals.1.contains(&j) || monos(j).iter().any(|m| h.runs[j].clock.right_at(*m));
    let own = monos(run);
    let (min, max) = (
        own.iter().copied().min().unwrap_or(0),
        own.iter().copied().max().unwrap_or(0),
    );
    let mut lo = (0..run).rev().find(|j| dated(*j)).map(|j| {
        let end = h.runs[j].boot_ms + monos(j).into_iter().max().unwrap_or(0);
        end + mono - min
    });
    // An acknowledgement read in this run, or in one before it, bounds it from below.
    for (j, at_mono, server_ms) in &arrivals.2 {
        let bound = match j.cmp(&run) {
            std::cmp::Ordering::Equal => server_ms - at_mono + mono,
            std::cmp::Ordering::Less => {
                let end = server_ms - at_mono + monos(*j).into_iter().max().unwrap_or(0);
                end + mono - min
            }
            std::cmp::Ordering::Greater => continue,
        };
        lo = Some(lo.map_or(bound, |l| l.max(bound)));
    }
    let mut hi = ((run + 1)..h.runs.len()).find(|j| dated(*j)).map(|j| {
        let start = h.runs[j].boot_ms + monos(j).into_iter().min().unwrap_or(0);
        start - (max - mono)
    });
    for (at, batch, _) in &arrivals.0 {
        let id = h.runs[run].run;
        let Ok(records) = batch.decode() else {
            continue;
        };
        let in_batch = records
            .iter()
            .filter_map(|r| match &r.body {
                jejak_domain::RecordBody::Session(s) if s.run_id == id => {
                    Some(s.started_mono_ms as i64)
                }
                jejak_domain::RecordBody::PcEvent(e) if e.run_id == id => Some(e.mono_ms as i64),
                _ => None,
            })
            .max();
        if let Some(m) = in_batch {
            let bound = at - m + mono;
            hi = Some(hi.map_or(bound, |h| h.min(bound)));
        }
    }
    (lo, hi)
}

async fn check_store(store: &dyn ServerStore, run_plan: Vec<GenRun>, plan: Vec<GenDelivery>) {
    let library = LibraryCode::parse("waktu").unwrap();
    store
        .add_library(&library, "Desa Waktu", Zone::Wib)
        .await
        .unwrap();
    let pc = PcCode::parse("pc-01").unwrap();
    store.add_device(&library, &pc).await.unwrap();
    let device = store.find_device(&library, &pc).await.unwrap().unwrap();
    let sim = SimPc {
        library: library.clone(),
        pc: pc.clone(),
        epoch: Uuid::from_u64_pair(5, 5),
        clock_error_ms: 0,
    };
    let h = history(&sim, runs(&run_plan), 11);
    let arrivals = deliver(&h, &plan);
    for (at, batch, delivery) in &arrivals.0 {
        let received = Utc.timestamp_millis_opt(*at).single().unwrap();
        store
            .ingest(&device, batch.clone(), received, *delivery)
            .await
            .unwrap_or_else(|e| panic!("a batch was refused: {e}"));
    }
    let check = store.check_rollups().await.unwrap();
    assert!(check.is_consistent(), "{check:#?}");

    let stored: HashMap<Uuid, i64> = store
        .sessions(&device)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.id, s.corrected_start.timestamp_millis()))
        .collect();
    assert_eq!(stored.len(), h.true_starts.len(), "every session is stored");
    let mut months: Vec<(i32, u32)> = Vec::new();
    for (id, true_ms, run) in &h.true_starts {
        let at = stored[id];
        let mono = true_ms - h.runs[*run].boot_ms;
        if at >= UNDATED_BEFORE_MS {
            months.push(month_of(at));
        }
        if let (Some(lo), Some(hi)) = evidence_interval(&h, &arrivals, *run, mono)
            && month_of(lo) == month_of(hi)
        {
            assert!(
                at >= UNDATED_BEFORE_MS,
                "session of run {run} ({:?}) is undated, yet the evidence puts it in {:?}",
                h.runs[*run].clock,
                month_of(lo)
            );
            assert_eq!(
                month_of(at),
                month_of(*true_ms),
                "session of run {run} ({:?}) at {at}, truly {true_ms}, evidence {lo}..{hi}",
                h.runs[*run].clock
            );
        }
    }
    // The months' counts and the undated add up to what the PC made.
    months.sort();
    months.dedup();
    let mut counted = 0u64;
    let mut undated = None;
    let asked = if months.is_empty() {
        vec![(2026, 10)]
    } else {
        months.clone()
    };
    for (year, month) in asked {
        let first = chrono::NaiveDate::from_ymd_opt(year, month, 1).unwrap();
        let facts = store
            .month_facts(first, Some(&library), FactsDetail::Days)
            .await
            .unwrap();
        let lib = &facts.libraries[0];
        if months.contains(&(year, month)) {
            counted += lib.days.iter().map(|d| d.sessions).sum::<u64>();
        }
        let u: u64 = lib.pcs.iter().map(|p| p.undated_sessions).sum();
        assert!(
            undated.is_none_or(|x| x == u),
            "undated in every month's facts"
        );
        undated = Some(u);
    }
    assert_eq!(
        counted + undated.unwrap_or(0),
        h.true_starts.len() as u64,
        "the months ({months:?}) and the undated hold every session"
    );
}

fn check(backend: &Backend, run_plan: Vec<GenRun>, plan: Vec<GenDelivery>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let under_test = backend.open(crate::store::system_clock()).await;
        check_store(under_test.store.as_ref(), run_plan, plan).await;
        under_test.finish().await;
    });
}

fn gen_run() -> impl Strategy<Value = GenRun> {
    (
        1i64..60,
        // Most runs are a working day; some PCs stay on for days, so that a bundle's
        // acknowledgement or an HTTP sync can come back in the run it was exported in.
        prop_oneof![4 => 2i64..14, 1 => 24i64..200],
        0usize..5,
        0u8..6,
        50i64..950,
        any::<bool>(),
    )
}

fn gen_delivery() -> impl Strategy<Value = GenDelivery> {
    // A stick reaches the district within hours, or after weeks.
    (0i64..1000, 0u8..3, prop_oneof![1i64..48, 48i64..1500])
}

fn strategy() -> impl Strategy<Value = (Vec<GenRun>, Vec<GenDelivery>)> {
    (
        proptest::collection::vec(gen_run(), 2..16),
        proptest::collection::vec(gen_delivery(), 0..7),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    #[test]
    fn records_land_in_the_month_their_evidence_bounds_and_none_is_lost(
        (run_plan, plan) in strategy(),
    ) {
        check(&Backend::Sqlite, run_plan, plan);
    }
}

/// The same property on PostgreSQL. Fewer cases: each makes and drops a database.
#[test]
fn records_land_in_the_month_their_evidence_bounds_and_none_is_lost_on_postgres() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 16,
        ..ProptestConfig::default()
    });
    let outcome = runner.run(&strategy(), |(run_plan, plan)| {
        check(&backend, run_plan, plan);
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}
