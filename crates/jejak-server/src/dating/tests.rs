//! The dating rules one by one (`date`, `plan`), and the kept runs' stored form. The
//! property over whole PC histories through the real stores is in
//! `crate::dating_props`.

use std::collections::HashMap;

use super::*;

const NOW: i64 = 1_790_000_000_000;
const Y2000: i64 = 946_684_800_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;

fn anchor(mono: i64, server: i64, unc: i64) -> Anchor {
    Anchor {
        boot_ms: server - mono,
        uncertainty_ms: unc,
    }
}

fn dated(run: &RunDating, raw: i64, mono: i64, offset: Option<&WallOffset>) -> Dated {
    date(raw, mono, 0, TimeQuality::Trusted, run, offset, NOW)
}

#[test]
fn an_anchor_dates_a_record_whatever_the_wall_clock_said() {
    let a = RunDating::Anchored(anchor(10_000_000, NOW - 1_000, 150));
    // Started 2 hours of monotonic time before the anchor, on a clock 3 years behind.
    let raw = NOW - 3 * 365 * DAY;
    let d = date(
        raw,
        10_000_000 - 7_200_000,
        1_800_000,
        TimeQuality::Estimated,
        &a,
        None,
        NOW,
    );
    assert_eq!(d.ms, NOW - 1_000 - 7_200_000);
    assert_eq!(
        d.quality,
        TimeQuality::Estimated,
        "the PC's own doubt stays"
    );
    let d = dated(&a, raw, 9_000_000, None);
    assert_eq!(d.quality, TimeQuality::Corrected);
}

#[test]
fn a_run_dated_by_its_own_clock_takes_the_offset_when_that_keeps_it_possible() {
    let off = WallOffset {
        ms: 60_000,
        uncertainty_ms: None,
    };
    let d = dated(&RunDating::OwnClock, NOW - HOUR, 5, Some(&off));
    assert_eq!(d.ms, NOW - HOUR + 60_000);
    assert_eq!(d.quality, TimeQuality::Estimated);
    assert_eq!(dated(&RunDating::OwnClock, NOW - 10, 5, None).ms, NOW - 10);
    // An offset measured while the clock read 2000 would throw a clock set right since
    // 26 years into the future: the reading alone is used.
    let stale = WallOffset {
        ms: NOW - Y2000,
        uncertainty_ms: Some(20),
    };
    assert_eq!(
        dated(&RunDating::OwnClock, NOW - DAY, 5, Some(&stale)).ms,
        NOW - DAY
    );
    // A clock that is consistently 26 years behind is dated by that offset.
    assert_eq!(
        dated(&RunDating::OwnClock, Y2000 - HOUR, 5, Some(&stale)).ms,
        NOW - HOUR
    );
}

#[test]
fn future_times_are_clamped_and_flagged() {
    // A clock one day ahead, dated by itself: the session would end tomorrow... but a
    // reading in the future is impossible, so it is undated instead.
    let d = date(
        NOW + DAY,
        5,
        600_000,
        TimeQuality::Trusted,
        &RunDating::OwnClock,
        None,
        NOW,
    );
    assert!(is_undated_s(d.ms / 1000));
    // Within the anchor's uncertainty: clamped, still corrected.
    let a = RunDating::Anchored(anchor(1_000, NOW, 500));
    let d = date(0, 1_300, 0, TimeQuality::Trusted, &a, None, NOW);
    assert_eq!((d.ms, d.quality), (NOW, TimeQuality::Corrected));
    // Beyond it: clamped and estimated.
    let d = date(0, 10_000, 0, TimeQuality::Trusted, &a, None, NOW);
    assert_eq!((d.ms, d.quality), (NOW, TimeQuality::Estimated));
}

#[test]
fn undated_records_lie_before_any_real_month_whatever_their_clock_said() {
    for (raw, span) in [
        (Y2000 + HOUR, 3_600_000),
        (NOW + 5 * 365 * DAY, 7_200_000),
        (UNDATED_BEFORE_MS - 1_000, 366 * DAY),
        (0, 0),
        (i64::MAX, i64::MAX),
    ] {
        let d = date(
            raw,
            0,
            span,
            TimeQuality::Trusted,
            &RunDating::Undated,
            None,
            NOW,
        );
        assert!(d.ms >= 0, "{raw}");
        assert!(
            d.ms.saturating_add(span.min(366 * DAY)) < UNDATED_BEFORE_MS,
            "{raw} {span}"
        );
        assert_eq!(d.quality, TimeQuality::Estimated);
    }
    // A clock reset to 2000 keeps its own reading: the day it believed in.
    let d = date(
        Y2000 + HOUR,
        0,
        60_000,
        TimeQuality::Trusted,
        &RunDating::Undated,
        None,
        NOW,
    );
    assert_eq!(d.ms, Y2000 + HOUR);
    assert!(is_undated_month(rollup::month_number(
        chrono::DateTime::from_timestamp_millis(UNDATED_BEFORE_MS - 1)
            .unwrap()
            .with_timezone(&jejak_domain::Zone::Wit.offset())
            .date_naive()
    )));
}

#[test]
fn hostile_numbers_saturate_instead_of_panicking() {
    let a = RunDating::Anchored(Anchor {
        boot_ms: i64::MAX - 5,
        uncertainty_ms: 0,
    });
    let d = date(
        i64::MIN,
        i64::MAX,
        i64::MAX,
        TimeQuality::Trusted,
        &a,
        None,
        NOW,
    );
    assert_eq!(d.quality, TimeQuality::Estimated);
    let off = WallOffset {
        ms: i64::MAX,
        uncertainty_ms: None,
    };
    let _ = date(
        i64::MAX,
        0,
        0,
        TimeQuality::Trusted,
        &RunDating::OwnClock,
        Some(&off),
        NOW,
    );
}

/// A PC's history for `plan`: runs with readings, cut into batches.
struct Pc {
    seq: i64,
    ids: u64,
}

/// One reading of a run: (mono ms, raw ms, an event?).
type Reading = (i64, i64, bool);

impl Pc {
    fn new() -> Pc {
        Pc { seq: 0, ids: 0 }
    }

    /// A run's evidence from readings (the first is its boot event).
    fn run(&mut self, run: Uuid, readings: &[Reading], received_ms: i64) -> RunEvidence {
        let mut e = RunEvidence::new(run, readings[0].0);
        for (mono, raw, event) in readings {
            self.seq += 1;
            self.ids += 1;
            e.add(
                RunRecord {
                    id: Uuid::from_u64_pair(7, self.ids),
                    mono_ms: *mono,
                    event: *event,
                },
                *raw,
                self.seq,
                received_ms,
            );
        }
        e
    }
}

fn run_id(n: u64) -> Uuid {
    Uuid::from_u64_pair(1, n)
}

/// A day of a run booted at `boot` (true time) whose clock reads `boot_wall` at boot:
/// a boot event and sessions every two hours until `hours`.
fn day(boot: i64, boot_wall: i64, hours: i64) -> Vec<Reading> {
    let _ = boot;
    let mut out = vec![(30_000, boot_wall + 30_000, true)];
    for h in (1..=hours).step_by(2) {
        out.push((h * HOUR, boot_wall + h * HOUR, false));
    }
    out.push((hours * HOUR, boot_wall + hours * HOUR, true));
    out
}

struct Batch<'a> {
    evidence: &'a [RunEvidence],
    anchors: HashMap<Uuid, Option<Anchor>>,
    not_before: HashMap<Uuid, i64>,
    sent: (Uuid, i64),
    held: i64,
    received_ms: i64,
}

fn plan_of(kept: Vec<KeptRun>, b: &Batch<'_>, dated_until: Option<i64>) -> Plan {
    plan_with(kept, b, dated_until, None)
}

fn plan_with(
    kept: Vec<KeptRun>,
    b: &Batch<'_>,
    dated_until: Option<i64>,
    offset: Option<WallOffset>,
) -> Plan {
    plan(
        kept,
        b.evidence,
        &BatchClock {
            anchors: &b.anchors,
            not_before: &b.not_before,
            sent: b.sent,
            held_seq: b.held,
            offset,
            received_ms: b.received_ms,
        },
        dated_until,
    )
}

fn boot_of(d: &RunDating) -> Option<(i64, i64)> {
    match d {
        RunDating::Boot(a) | RunDating::Anchored(a) => Some((a.boot_ms, a.uncertainty_ms)),
        _ => None,
    }
}

#[test]
fn a_clock_reset_to_2000_and_set_right_at_noon_dates_the_whole_run() {
    let mut pc = Pc::new();
    let boot = NOW - 10 * HOUR;
    let run = run_id(1);
    let evidence = [pc.run(
        run,
        &[
            (30_000, Y2000 + 30_000, true),
            (HOUR, Y2000 + HOUR, false),
            (3 * HOUR, Y2000 + 3 * HOUR, false),
            // Set right: the readings from here on are true.
            (6 * HOUR, boot + 6 * HOUR, true),
        ],
        NOW,
    )];
    let p = plan_of(
        Vec::new(),
        &Batch {
            evidence: &evidence,
            anchors: HashMap::new(),
            not_before: HashMap::new(),
            sent: (run, 7 * HOUR),
            held: 0,
            received_ms: NOW,
        },
        None,
    );
    let d = p.datings[&run];
    assert_eq!(boot_of(&d), Some((boot, 0)));
    assert_eq!(dated(&d, Y2000 + HOUR, HOUR, None).ms, boot + HOUR);
    // It is the PC's latest run: kept, in case an anchor comes while it goes on.
    assert_eq!(p.keep.len(), 1);
    assert!(p.keep[0].open);
    assert_eq!(p.dated_until, Some(boot + 6 * HOUR));
}

#[test]
fn a_run_that_never_had_a_right_clock_lies_between_its_neighbours() {
    let mut pc = Pc::new();
    let first = NOW - 10 * DAY;
    let (before, lost, after) = (run_id(1), run_id(2), run_id(3));
    let evidence = [
        pc.run(before, &day(first, first, 8), NOW),
        // The next day, the clock reads 2000 all day (a power cut before noon).
        pc.run(lost, &day(first + DAY, Y2000, 6), NOW),
        pc.run(after, &day(first + 2 * DAY, first + 2 * DAY, 4), NOW),
    ];
    let p = plan_of(
        Vec::new(),
        &Batch {
            evidence: &evidence,
            anchors: HashMap::new(),
            not_before: HashMap::new(),
            sent: (after, 5 * HOUR),
            held: 0,
            received_ms: NOW,
        },
        None,
    );
    let (boot, uncertainty) = boot_of(&p.datings[&lost]).unwrap();
    // After the first day's last reading (8 h), before the third day's boot event.
    let lo = first + 8 * HOUR - 30_000;
    let hi = first + 2 * DAY + 30_000 - 6 * HOUR;
    assert_eq!((boot, uncertainty), (lo + (hi - lo) / 2, (hi - lo) / 2));
    assert_eq!(p.datings[&before], RunDating::OwnClock);
    // The estimated run lies between two runs dated by their clocks: it can no longer
    // move, so only its estimate is kept; the latest run is kept too.
    let kept: Vec<(Uuid, bool, usize)> = p
        .keep
        .iter()
        .map(|k| (k.run, k.open, k.records.len()))
        .collect();
    assert_eq!(kept, vec![(lost, false, 0), (after, true, 4)]);
}

#[test]
fn a_pc_whose_clock_was_never_right_has_its_runs_undated_and_never_in_the_future() {
    let mut pc = Pc::new();
    let evidence = [
        pc.run(run_id(1), &day(0, Y2000, 8), NOW),
        pc.run(run_id(2), &day(0, Y2000, 6), NOW),
    ];
    let p = plan_of(
        Vec::new(),
        &Batch {
            evidence: &evidence,
            anchors: HashMap::new(),
            not_before: HashMap::new(),
            sent: (run_id(2), 7 * HOUR),
            held: 0,
            received_ms: NOW,
        },
        None,
    );
    assert_eq!(p.datings[&run_id(1)], RunDating::Undated);
    assert_eq!(p.datings[&run_id(2)], RunDating::Undated);
    // The first can never be told (nothing can bound it from below any more); the
    // latest waits for an acknowledgement's bound or an anchor.
    assert_eq!(
        p.keep.iter().map(|k| (k.run, k.open)).collect::<Vec<_>>(),
        vec![(run_id(1), false), (run_id(2), true)]
    );
}

#[test]
fn a_run_dated_later_by_the_next_right_clock_is_dated_again() {
    let mut pc = Pc::new();
    let first = NOW - 20 * DAY;
    let (right, lost, later) = (run_id(1), run_id(2), run_id(3));
    // A USB bundle with a right day and a 2000 day, imported ten days later.
    let imported = first + 12 * DAY;
    let batch1 = [
        pc.run(right, &day(first, first, 8), imported),
        pc.run(lost, &day(first + DAY, Y2000, 6), imported),
    ];
    let b1 = Batch {
        evidence: &batch1,
        anchors: HashMap::new(),
        not_before: HashMap::new(),
        sent: (lost, 6 * HOUR),
        held: 0,
        received_ms: imported,
    };
    let p1 = plan_of(Vec::new(), &b1, None);
    let (boot1, unc1) = boot_of(&p1.datings[&lost]).unwrap();
    assert!(unc1 > 5 * DAY, "bounded by the import only: {unc1}");
    let kept = p1.keep.clone();
    assert_eq!(kept.len(), 1);
    assert!(kept[0].open && kept[0].records.len() == 5);

    // The next bundle starts with a right day two days after the lost one: it bounds the
    // lost day from above, and its records move.
    let batch2 = [pc.run(later, &day(first + 2 * DAY, first + 2 * DAY, 4), NOW)];
    let b2 = Batch {
        evidence: &batch2,
        anchors: HashMap::new(),
        not_before: HashMap::new(),
        sent: (later, 5 * HOUR),
        held: pc.seq - 6,
        received_ms: NOW,
    };
    let p2 = plan_of(kept.clone(), &b2, p1.dated_until);
    let (boot2, unc2) = boot_of(&p2.datings[&lost]).unwrap();
    assert!(unc2 < DAY, "{unc2}");
    assert!(boot2 < boot1);
    assert_eq!(p2.redate.len(), 1);
    assert_eq!(p2.redate[0].0, lost);
    assert_eq!(p2.redate[0].2.len(), 5, "the records stored before");
    // Settled now: kept without records.
    let settled = p2.keep.iter().find(|k| k.run == lost).unwrap();
    assert!(!settled.open && settled.records.is_empty());

    // The same batch again changes nothing.
    let mut after: Vec<KeptRun> = p2.keep.clone();
    after.retain(|k| k.open || k.run == lost);
    let again = plan_of(after, &b2, p2.dated_until.or(p1.dated_until));
    assert!(again.redate.is_empty());
    assert!(again.keep.is_empty(), "{:?}", again.keep);
}

#[test]
fn an_anchor_measured_later_in_the_same_run_dates_what_a_bundle_carried() {
    let mut pc = Pc::new();
    let boot = NOW - 30 * HOUR;
    let run = run_id(1);
    // Exported by USB at 5 h (a PC with a right clock), imported at 20 h.
    let batch1 = [pc.run(run, &day(boot, boot + 90_000, 4), boot + 20 * HOUR)];
    let p1 = plan_of(
        Vec::new(),
        &Batch {
            evidence: &batch1,
            anchors: HashMap::new(),
            not_before: HashMap::new(),
            sent: (run, 5 * HOUR),
            held: 0,
            received_ms: boot + 20 * HOUR,
        },
        None,
    );
    assert_eq!(p1.datings[&run], RunDating::OwnClock);
    assert_eq!(p1.keep.len(), 1, "the latest run, dated by its clock alone");

    // Still the same boot, a link at last: the HTTP sync measures an anchor.
    let a = anchor(29 * HOUR, NOW - HOUR, 80);
    let batch2 = [pc.run(run, &[(29 * HOUR, boot + 90_000 + 29 * HOUR, true)], NOW)];
    let p2 = plan_of(
        p1.keep.clone(),
        &Batch {
            evidence: &batch2,
            anchors: HashMap::from([(run, Some(a))]),
            not_before: HashMap::new(),
            sent: (run, 30 * HOUR),
            held: pc.seq - 1,
            received_ms: NOW,
        },
        p1.dated_until,
    );
    assert_eq!(p2.datings[&run], RunDating::Anchored(a));
    assert_eq!(p2.redate.len(), 1);
    assert_eq!(p2.redate[0].2.len(), batch1[0].records.len());
    assert_eq!(p2.forget, vec![run], "an anchored run needs no row");
    let moved = date(
        boot + 90_000 + HOUR,
        HOUR,
        0,
        TimeQuality::Trusted,
        &p2.datings[&run],
        None,
        NOW,
    );
    assert_eq!(
        (moved.ms, moved.quality),
        (boot + HOUR, TimeQuality::Corrected)
    );
}

#[test]
fn an_acknowledgements_time_bounds_the_run_it_came_back_in_and_those_after() {
    let mut pc = Pc::new();
    let boot = NOW - 3 * DAY;
    let run = run_id(1);
    // A PC that never had a right clock exports at 2 h; the district imports the bundle
    // at boot + 20 h; the operator brings the acknowledgement back at 26 h: still the
    // same boot.
    let imported = boot + 20 * HOUR;
    let batch1 = [pc.run(run, &day(boot, Y2000, 2), imported)];
    let p1 = plan_of(
        Vec::new(),
        &Batch {
            evidence: &batch1,
            anchors: HashMap::new(),
            not_before: HashMap::new(),
            sent: (run, 2 * HOUR),
            held: 0,
            received_ms: imported,
        },
        None,
    );
    assert_eq!(p1.datings[&run], RunDating::Undated);
    // The next bundle carries the bound: the server's clock read `imported` by 26 h.
    let batch2 = [
        pc.run(run, &[(27 * HOUR, Y2000 + 27 * HOUR, true)], NOW),
        pc.run(run_id(2), &day(0, Y2000, 3), NOW),
    ];
    let p2 = plan_of(
        p1.keep.clone(),
        &Batch {
            evidence: &batch2,
            anchors: HashMap::new(),
            not_before: HashMap::from([(run, imported - 26 * HOUR)]),
            sent: (run_id(2), 4 * HOUR),
            held: pc.seq - 6,
            received_ms: NOW,
        },
        None,
    );
    // Between the acknowledgement (boot ≥ imported − 26 h) and the import (boot ≤
    // imported − 2 h): the middle, give or take 12 h.
    let (b, u) = boot_of(&p2.datings[&run]).unwrap();
    assert_eq!((b, u), (imported - 14 * HOUR, 12 * HOUR));
    assert!((b - boot).abs() <= u);
    assert_eq!(p2.redate.len(), 1);
    // The next run is bounded from below by it.
    assert!(matches!(p2.datings[&run_id(2)], RunDating::Boot(_)));
}

#[test]
fn runs_dated_by_an_anchor_or_a_right_clock_keep_nothing_once_a_later_run_came() {
    let mut pc = Pc::new();
    let first = NOW - 5 * DAY;
    let (anchored, right, last) = (run_id(1), run_id(2), run_id(3));
    let evidence = [
        pc.run(anchored, &day(first, Y2000, 4), NOW),
        pc.run(right, &day(first + DAY, first + DAY, 4), NOW),
        pc.run(last, &day(first + 2 * DAY, first + 2 * DAY, 4), NOW),
    ];
    let p = plan_of(
        Vec::new(),
        &Batch {
            evidence: &evidence,
            anchors: HashMap::from([
                (anchored, Some(anchor(HOUR, first + HOUR, 50))),
                (last, Some(anchor(HOUR, first + 2 * DAY + HOUR, 50))),
            ]),
            not_before: HashMap::new(),
            sent: (last, 5 * HOUR),
            held: 0,
            received_ms: NOW,
        },
        None,
    );
    assert!(p.keep.is_empty(), "{:?}", p.keep);
    assert!(p.redate.is_empty());
    assert_eq!(p.dated_until, Some(first + 2 * DAY - 50 + 4 * HOUR));
}

#[test]
fn only_the_latest_estimated_runs_stay_open() {
    let mut pc = Pc::new();
    let first = NOW - 100 * DAY;
    let mut evidence = vec![pc.run(run_id(0), &day(first, first, 4), NOW)];
    for i in 1..=40u64 {
        evidence.push(pc.run(run_id(i), &day(0, Y2000, 4), NOW));
    }
    let p = plan_of(
        Vec::new(),
        &Batch {
            evidence: &evidence,
            anchors: HashMap::new(),
            not_before: HashMap::new(),
            sent: (run_id(40), 5 * HOUR),
            held: 0,
            received_ms: NOW,
        },
        None,
    );
    let open = p.keep.iter().filter(|k| k.open).count();
    assert_eq!(open, MAX_OPEN_RUNS + 1, "the cap, and the latest run");
    assert!(
        p.keep
            .iter()
            .filter(|k| !k.open)
            .all(|k| k.records.is_empty())
    );
    // In the PC's order.
    let ordinals: Vec<i64> = p.keep.iter().map(|k| k.ordinal).collect();
    let mut sorted = ordinals.clone();
    sorted.sort();
    assert_eq!(ordinals, sorted);
}

#[test]
fn a_kept_run_round_trips_its_stored_form() {
    let mut pc = Pc::new();
    let e = pc.run(run_id(9), &day(0, Y2000, 6), NOW);
    let mut k = KeptRun::from_evidence(&e, 7);
    k.merge(&e);
    k.not_before = Some(NOW - 40 * DAY);
    k.not_after = Some(NOW - 2 * DAY);
    for dating in [
        RunDating::Undated,
        RunDating::OwnClock,
        RunDating::Boot(anchor(HOUR, NOW - DAY, 3 * HOUR)),
        RunDating::Anchored(anchor(5, NOW, 10)),
    ] {
        k.dating = dating;
        let back = KeptRun::from_stored(k.run, 7, true, &k.state(), &k.record_ids());
        assert_eq!(back.as_ref(), Some(&k));
    }
    assert!(KeptRun::from_stored(k.run, 7, true, &k.state(), &[1, 2, 3]).is_none());
    assert!(KeptRun::from_stored(k.run, 7, true, &[0xff], &[]).is_none());
}

#[test]
fn the_offset_dates_a_clock_that_runs_wrong_but_not_one_that_resets_at_every_boot() {
    let first = NOW - 10 * DAY;
    let five_years = 5 * 365 * DAY;
    let (before, wrong, after) = (run_id(1), run_id(2), run_id(3));
    // A clock five years ahead all along, its offset measured at an earlier sync: the
    // offset dates the run between two right ones exactly.
    let mut pc = Pc::new();
    let evidence = [
        pc.run(before, &day(first, first, 8), NOW),
        pc.run(wrong, &day(first + DAY, first + DAY + five_years, 6), NOW),
        pc.run(after, &day(first + 2 * DAY, first + 2 * DAY, 4), NOW),
    ];
    let batch = Batch {
        evidence: &evidence,
        anchors: HashMap::new(),
        not_before: HashMap::new(),
        sent: (after, 5 * HOUR),
        held: 0,
        received_ms: NOW,
    };
    let ahead = WallOffset {
        ms: -five_years,
        uncertainty_ms: Some(30),
    };
    let p = plan_with(Vec::new(), &batch, None, Some(ahead));
    assert_eq!(p.datings[&wrong], RunDating::OwnClock);
    let at = date(
        first + DAY + five_years + HOUR,
        HOUR,
        0,
        TimeQuality::Trusted,
        &p.datings[&wrong],
        Some(&ahead),
        NOW,
    );
    assert_eq!(at.ms, first + DAY + HOUR);

    // A clock that reads 2000 at every boot, its offset measured in an earlier run:
    // that offset would put this run at the earlier run's boot, before the run that
    // precedes it, so the run is dated between its neighbours instead.
    let mut pc = Pc::new();
    let evidence = [
        pc.run(before, &day(first, first, 8), NOW),
        pc.run(wrong, &day(first + DAY, Y2000, 6), NOW),
        pc.run(after, &day(first + 2 * DAY, first + 2 * DAY, 4), NOW),
    ];
    let reset = WallOffset {
        ms: first - 20 * DAY - Y2000,
        uncertainty_ms: Some(30),
    };
    let batch = Batch {
        evidence: &evidence,
        ..batch
    };
    let p = plan_with(Vec::new(), &batch, None, Some(reset));
    let (boot, _) = boot_of(&p.datings[&wrong]).expect("between its neighbours");
    assert!(boot > first + 8 * HOUR && boot < first + 2 * DAY, "{boot}");
}
