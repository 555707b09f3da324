use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use jejak_domain::{
    AgeGroup, DeviceIdentity, EndReason, Gender, LibraryCode, PatronProfile, PcCode, PcEventKind,
    Purpose, RecordBody, TimeQuality, UserKind,
};
use proptest::prelude::*;

use super::*;
use crate::clock::ManualClock;

fn identity() -> DeviceIdentity {
    DeviceIdentity {
        library: LibraryCode::parse("dermaji").unwrap(),
        pc: PcCode::parse("pc-01").unwrap(),
    }
}

fn start_time() -> DateTime<Utc> {
    // Well after any build date this code will see in its lifetime of tests.
    Utc.with_ymd_and_hms(2031, 3, 2, 2, 0, 0).unwrap()
}

fn profile() -> PatronProfile {
    PatronProfile {
        user_kind: UserKind::NonAnggota,
        purposes: vec![Purpose::Pendidikan, Purpose::Ekonomi],
        gender: Gender::P,
        age_group: AgeGroup::Pemuda,
        group_size: 1,
        patron_key: None,
    }
}

fn open_store(dir: &tempfile::TempDir, clock: &ManualClock) -> Store {
    let (store, _) = Store::open(
        &dir.path().join("jejak.db"),
        identity(),
        Arc::new(clock.clone()),
    )
    .unwrap();
    store
}

fn all_changes(store: &Store) -> Vec<ChangeRecord> {
    store.changes_after(0, u32::MAX).unwrap()
}

fn assert_contiguous(changes: &[ChangeRecord]) {
    for (i, c) in changes.iter().enumerate() {
        assert_eq!(c.seq, i as u64 + 1, "seq must be 1, 2, 3 … without gaps");
    }
}

fn events(store: &Store, kind: PcEventKind) -> Vec<jejak_domain::PcEvent> {
    all_changes(store)
        .into_iter()
        .filter_map(|c| match c.body {
            RecordBody::PcEvent(e) if e.kind == kind => Some(e),
            _ => None,
        })
        .collect()
}

#[test]
fn a_session_is_started_and_ended_with_contiguous_seqs_and_monotonic_duration() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(start_time());
    let mut store = open_store(&dir, &clock);
    let started = store.start_session(profile(), None).unwrap();
    assert!(started.replaced.is_none());
    assert_eq!(started.session.revision, 1);
    clock.advance(Duration::from_secs(25 * 60));
    let ended = store.end_session(EndReason::Logout, None).unwrap();
    assert_eq!(ended.id, started.session.id);
    assert_eq!(ended.revision, 2);
    assert_eq!(ended.duration_secs, 25 * 60);
    assert_eq!(
        ended.ended_at,
        Some(start_time() + chrono::Duration::minutes(25))
    );
    assert_eq!(ended.time_quality, TimeQuality::Trusted);

    let changes = all_changes(&store);
    assert_contiguous(&changes);
    let kinds: Vec<&str> = changes.iter().map(|c| c.body.kind_code()).collect();
    assert_eq!(
        kinds,
        ["pc_event", "session", "session"],
        "boot, start, end"
    );
    assert!(store.open_session().unwrap().is_none());
    assert!(matches!(
        store.end_session(EndReason::Logout, None),
        Err(StoreError::NoOpenSession)
    ));
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

#[test]
fn starting_while_a_session_is_open_ends_it_as_staff_ended() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(start_time());
    let mut store = open_store(&dir, &clock);
    let first = store.start_session(profile(), None).unwrap().session;
    clock.advance(Duration::from_secs(600));
    let second = store.start_session(PatronProfile::default(), None).unwrap();
    let replaced = second.replaced.expect("the open session is ended first");
    assert_eq!(replaced.id, first.id);
    assert_eq!(replaced.end_reason, Some(EndReason::StaffEnded));
    assert_eq!(replaced.duration_secs, 600);
    assert_eq!(store.open_session().unwrap().unwrap().id, second.session.id);
}

#[test]
fn a_clock_set_back_years_mid_session_is_recorded_and_cannot_shorten_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(start_time());
    let mut store = open_store(&dir, &clock);
    let started = store.start_session(profile(), None).unwrap().session;
    clock.advance(Duration::from_secs(10 * 60));
    store.heartbeat(None, None, false).unwrap();
    clock.set_wall(start_time() - chrono::Duration::days(3 * 365));
    clock.advance(Duration::from_secs(5 * 60));
    let ended = store.end_session(EndReason::Logout, None).unwrap();

    assert_eq!(
        ended.duration_secs,
        15 * 60,
        "duration comes from the monotonic clock"
    );
    assert!(ended.ended_at.unwrap() >= ended.started_at);
    assert_eq!(ended.started_at, started.started_at);
    assert_eq!(ended.time_quality, TimeQuality::Estimated);
    let jumps = events(&store, PcEventKind::ClockJump);
    assert_eq!(jumps.len(), 1);
    let delta = jumps[0].clock_delta_ms.unwrap();
    assert!(
        delta < -(3 * 365 - 1) * 86_400_000,
        "delta {delta} shows the clock went back ~3 years"
    );
    assert_contiguous(&all_changes(&store));
}

#[test]
fn a_clock_jumping_forward_mid_session_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(start_time());
    let mut store = open_store(&dir, &clock);
    store.start_session(profile(), None).unwrap();
    clock.advance(Duration::from_secs(60));
    clock.set_wall(clock.wall() + chrono::Duration::hours(7));
    store.heartbeat(None, None, false).unwrap();
    clock.advance(Duration::from_secs(60));
    let ended = store.end_session(EndReason::Logout, None).unwrap();
    assert_eq!(ended.duration_secs, 120);
    let jumps = events(&store, PcEventKind::ClockJump);
    assert_eq!(jumps.len(), 1, "one jump, recorded once");
    assert_eq!(jumps[0].clock_delta_ms, Some(7 * 3_600_000));
}

#[test]
fn a_clock_before_the_build_date_is_flagged_and_sessions_are_estimated() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap());
    let mut store = open_store(&dir, &clock);
    let s = store.start_session(profile(), None).unwrap().session;
    assert_eq!(s.time_quality, TimeQuality::Estimated);
    assert_eq!(events(&store, PcEventKind::ClockSuspect).len(), 1);
    store.end_session(EndReason::Logout, None).unwrap();
    assert_eq!(
        events(&store, PcEventKind::ClockSuspect).len(),
        1,
        "flagged once per run"
    );
    let status = store.status(jejak_domain::Zone::Wib).unwrap();
    assert!(status.clock_suspect_now);
    assert!(!status.clock_warnings.is_empty());
}

#[test]
fn after_a_reboot_the_open_session_ends_at_its_last_heartbeat_as_power_loss() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(start_time());
    let mut store = open_store(&dir, &clock);
    store.start_session(profile(), None).unwrap();
    clock.advance(Duration::from_secs(30));
    store.heartbeat(None, None, false).unwrap();
    clock.advance(Duration::from_secs(30));
    store.heartbeat(None, None, false).unwrap();
    clock.advance(Duration::from_secs(20)); // power cut 20 s after the last heartbeat
    clock.reboot(start_time() + chrono::Duration::hours(2));
    let recovered = store.recover_open_session(Duration::from_secs(90)).unwrap();
    let Some(Recovery::Closed(s)) = recovered else {
        panic!("expected a closed session, got {recovered:?}");
    };
    assert_eq!(s.end_reason, Some(EndReason::PowerLoss));
    assert_eq!(s.time_quality, TimeQuality::Estimated);
    assert_eq!(s.duration_secs, 60, "ends at the last heartbeat");
    assert_eq!(
        s.ended_at,
        Some(start_time() + chrono::Duration::seconds(60))
    );
    assert!(store.open_session().unwrap().is_none());
    assert_eq!(events(&store, PcEventKind::Boot).len(), 2);
}

#[test]
fn without_a_reboot_a_recent_session_continues_and_an_old_one_ends_as_crash() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(start_time());
    let mut store = open_store(&dir, &clock);
    let s = store.start_session(profile(), None).unwrap().session;
    clock.advance(Duration::from_secs(30));
    store.heartbeat(None, None, false).unwrap();
    clock.advance(Duration::from_secs(45));
    assert_eq!(
        store.recover_open_session(Duration::from_secs(90)).unwrap(),
        Some(Recovery::Continued(store.open_session().unwrap().unwrap()))
    );
    assert_eq!(store.open_session().unwrap().unwrap().id, s.id);

    clock.advance(Duration::from_secs(600));
    let Some(Recovery::Closed(closed)) =
        store.recover_open_session(Duration::from_secs(90)).unwrap()
    else {
        panic!("an old heartbeat closes the session");
    };
    assert_eq!(closed.end_reason, Some(EndReason::Crash));
    assert_eq!(closed.duration_secs, 30);
}

#[test]
fn ending_after_a_reboot_without_the_agent_still_tells_the_truth() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(start_time());
    let mut store = open_store(&dir, &clock);
    store.start_session(profile(), None).unwrap();
    clock.advance(Duration::from_secs(300));
    store.heartbeat(None, None, false).unwrap();
    clock.reboot(start_time() + chrono::Duration::days(1));
    let ended = store.end_session(EndReason::Logout, None).unwrap();
    assert_eq!(ended.end_reason, Some(EndReason::PowerLoss));
    assert_eq!(ended.duration_secs, 300);
}

#[test]
fn bytes_come_from_counter_differences_and_survive_a_counter_reset() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(start_time());
    let mut store = open_store(&dir, &clock);
    store
        .start_session(profile(), Some(NetCounters { rx: 1000, tx: 100 }))
        .unwrap();
    clock.advance(Duration::from_secs(30));
    let hb = store
        .heartbeat(Some(NetCounters { rx: 6000, tx: 600 }), Some(true), false)
        .unwrap();
    assert_eq!(hb.session.unwrap().bytes_rx, 5000);
    clock.advance(Duration::from_secs(30));
    // The modem was unplugged and the counters started again from zero.
    store
        .heartbeat(Some(NetCounters { rx: 300, tx: 30 }), Some(false), false)
        .unwrap();
    clock.advance(Duration::from_secs(30));
    let ended = store
        .end_session(EndReason::Logout, Some(NetCounters { rx: 800, tx: 80 }))
        .unwrap();
    assert_eq!(ended.bytes_rx, 5000 + 300 + 500);
    assert_eq!(ended.bytes_tx, 500 + 30 + 50);
    assert_eq!(
        ended.online_secs, 30,
        "only the interval the probe saw the link up"
    );
}

#[test]
fn heartbeat_events_are_written_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(start_time());
    let mut store = open_store(&dir, &clock);
    assert!(
        store
            .heartbeat(None, None, false)
            .unwrap()
            .event_seq
            .is_none()
    );
    let seq = store
        .heartbeat(None, None, true)
        .unwrap()
        .event_seq
        .unwrap();
    assert_eq!(seq, all_changes(&store).len() as u64);
    assert!(
        store
            .status(jejak_domain::Zone::Wib)
            .unwrap()
            .last_heartbeat
            .is_some()
    );
}

#[test]
fn the_change_log_is_append_only_and_unsynced_changes_cannot_be_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(start_time());
    let mut store = open_store(&dir, &clock);
    store.start_session(profile(), None).unwrap();
    let update = store
        .conn
        .execute("UPDATE changes SET body = '{}' WHERE seq = 1", []);
    assert!(update.unwrap_err().to_string().contains("append-only"));
    let delete = store.conn.execute("DELETE FROM changes WHERE seq = 1", []);
    assert!(delete.unwrap_err().to_string().contains("never pruned"));
    // A clashing seq is an error, never a silent skip.
    let clash = store.conn.execute(
        "INSERT INTO changes (seq, record_kind, record_id, revision, run_id, recorded_wall_ms, mono_ms, body)
         SELECT seq, record_kind, 'x', 9, run_id, 0, 0, body FROM changes WHERE seq = 1",
        [],
    );
    assert!(clash.is_err());
}

#[test]
fn a_corrupt_store_is_moved_aside_and_a_fresh_epoch_starts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jejak.db");
    let clock = ManualClock::new(start_time());
    let old_epoch = {
        let mut store = open_store(&dir, &clock);
        store.start_session(profile(), None).unwrap();
        store.end_session(EndReason::Logout, None).unwrap();
        store.epoch()
    };
    // Overwrite the header and the first pages with garbage.
    let mut bytes = std::fs::read(&path).unwrap();
    for (i, b) in bytes.iter_mut().take(8192).enumerate() {
        *b = (i * 31 % 251) as u8;
    }
    std::fs::write(&path, &bytes).unwrap();

    let (mut store, report) = Store::open(&path, identity(), Arc::new(clock.clone())).unwrap();
    let moved = report.quarantined.expect("the damaged file is quarantined");
    assert!(moved.exists(), "never deleted");
    assert_eq!(std::fs::read(&moved).unwrap(), bytes);
    assert_ne!(store.epoch(), old_epoch);
    assert_eq!(events(&store, PcEventKind::StoreRecovered).len(), 1);
    store.start_session(profile(), None).unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    assert_contiguous(&all_changes(&store));
    assert!(
        store
            .status(jejak_domain::Zone::Wib)
            .unwrap()
            .recovered_from
            .is_some()
    );
}

#[test]
fn disk_full_gives_a_clear_error_and_keeps_what_was_committed() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(start_time());
    let mut store = open_store(&dir, &clock);
    let pages: u64 = store
        .conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    store.limit_pages_for_test(pages).unwrap();
    let mut committed = 0;
    let err = loop {
        match store.start_session(profile(), None) {
            Ok(_) => committed += 1,
            Err(e) => break e,
        }
        assert!(committed < 100_000, "the page limit never hit");
    };
    assert!(matches!(err, StoreError::DiskFull { .. }), "{err:?}");
    assert!(err.message(Lang::Id).contains("disk penuh"));
    assert_eq!(store.integrity_check().unwrap(), "ok");
    let sessions = store.recent_sessions(u32::MAX).unwrap();
    assert_eq!(sessions.len(), committed);
    assert_contiguous(&all_changes(&store));
    // Space comes back: writing works again.
    store.limit_pages_for_test(1_000_000).unwrap();
    store.start_session(profile(), None).unwrap();
}

use jejak_domain::Lang;

#[test]
fn two_writers_on_one_file_lose_nothing_and_keep_seqs_contiguous() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(start_time());
    drop(open_store(&dir, &clock));
    let per_writer = 60;
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let clock = clock.clone();
            let path = dir.path().join("jejak.db");
            std::thread::spawn(move || {
                let (mut store, _) = Store::open(&path, identity(), Arc::new(clock)).unwrap();
                let mut ids = Vec::new();
                for _ in 0..per_writer {
                    ids.push(store.start_session(profile(), None).unwrap().session.id);
                }
                ids
            })
        })
        .collect();
    let ids: Vec<Uuid> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let store = open_store(&dir, &clock);
    let sessions = store.recent_sessions(u32::MAX).unwrap();
    assert_eq!(sessions.len(), 2 * per_writer);
    for id in &ids {
        assert!(sessions.iter().any(|s| s.id == *id));
    }
    let changes = all_changes(&store);
    assert_contiguous(&changes);
    // Each start after the first also ended the previous session.
    assert_eq!(changes.len(), 1 + 2 * per_writer + (2 * per_writer - 1));
    assert_eq!(
        sessions.iter().filter(|s| s.is_open()).count(),
        1,
        "exactly one session is left open"
    );
}

#[derive(Debug, Clone)]
enum Op {
    Start,
    End,
    Heartbeat { event: bool },
    Advance(u64),
    SetWallBack(i64),
    Reboot,
    Recover,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Start),
        3 => Just(Op::End),
        3 => any::<bool>().prop_map(|event| Op::Heartbeat { event }),
        4 => (1u64..4_000).prop_map(Op::Advance),
        1 => (-10_000i64..10_000).prop_map(Op::SetWallBack),
        1 => Just(Op::Reboot),
        1 => Just(Op::Recover),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever happens to the clocks and in whatever order the calls come, seqs stay
    /// contiguous, durations are never negative, ends never precede starts, every
    /// change is a valid record, and at most one session is open.
    #[test]
    fn store_invariants_hold_under_any_sequence(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(start_time());
        let mut store = open_store(&dir, &clock);
        for op in ops {
            match op {
                Op::Start => { store.start_session(profile(), None).unwrap(); }
                Op::End => match store.end_session(EndReason::Logout, None) {
                    Ok(_) | Err(StoreError::NoOpenSession) => {}
                    Err(e) => panic!("{e}"),
                },
                Op::Heartbeat { event } => { store.heartbeat(None, Some(true), event).unwrap(); }
                Op::Advance(secs) => clock.advance(Duration::from_secs(secs)),
                Op::SetWallBack(minutes) => clock.set_wall(clock.wall() - chrono::Duration::minutes(minutes)),
                Op::Reboot => clock.reboot(clock.wall() + chrono::Duration::minutes(5)),
                Op::Recover => { store.recover_open_session(Duration::from_secs(90)).unwrap(); }
            }
        }
        let changes = all_changes(&store);
        assert_contiguous(&changes);
        let mut last_revision = std::collections::HashMap::new();
        for c in &changes {
            c.body.validate().unwrap();
            if let RecordBody::Session(s) = &c.body {
                let prev = last_revision.insert(s.id, s.revision).unwrap_or(0);
                prop_assert_eq!(s.revision, prev + 1, "revisions grow by one in seq order");
                prop_assert!(s.online_secs <= s.duration_secs);
            }
        }
        let sessions = store.recent_sessions(u32::MAX).unwrap();
        prop_assert!(sessions.iter().filter(|s| s.is_open()).count() <= 1);
        prop_assert_eq!(store.integrity_check().unwrap(), "ok");
    }
}

/// The librarian is told plainly: a clock that reads 2000 is wrong now; once set right
/// (a jump of decades), it was wrong and the CMOS battery is the likely cause; a jump of
/// hours (a drift correction) is no reason to worry. `jejak status` and the librarian
/// screen show this same judgement.
#[test]
fn the_clock_state_says_wrong_now_then_was_wrong_after_it_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let reset = chrono::Utc
        .with_ymd_and_hms(2000, 1, 1, 1, 0, 0)
        .single()
        .unwrap();
    let clock = ManualClock::new(reset);
    let mut store = open_store(&dir, &clock);
    store.start_session(profile(), None).unwrap();
    let status = store.status(jejak_domain::Zone::Wib).unwrap();
    assert_eq!(status.clock, super::ClockState::WrongNow);
    assert!(
        status
            .clock
            .advice(jejak_domain::Lang::Id)
            .contains("baterai CMOS")
    );

    clock.advance(Duration::from_secs(3_600));
    clock.set_wall(start_time());
    store.heartbeat(None, None, false).unwrap();
    let status = store.status(jejak_domain::Zone::Wib).unwrap();
    match status.clock {
        super::ClockState::WasWrong { jump_ms, .. } => {
            assert!(jump_ms.unwrap() > 20 * 365 * 86_400_000)
        }
        other => panic!("the clock was wrong: {other:?}"),
    }
    let advice = status.clock.advice(jejak_domain::Lang::En);
    assert!(advice.contains("CMOS battery"), "{advice}");

    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(start_time());
    let mut store = open_store(&dir, &clock);
    store.start_session(profile(), None).unwrap();
    clock.set_wall(start_time() + chrono::Duration::hours(3));
    store.heartbeat(None, None, false).unwrap();
    let status = store.status(jejak_domain::Zone::Wib).unwrap();
    assert_eq!(status.clock_warnings.len(), 1);
    assert_eq!(status.clock, super::ClockState::Plausible);
}

#[test]
fn an_acknowledgements_time_is_kept_as_a_bound_for_the_run_it_came_back_in() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2000, 1, 1, 8, 0, 0).unwrap());
    let mut store = open_store(&dir, &clock);
    let server = start_time().timestamp_millis();
    clock.advance(Duration::from_secs(3_600));
    let first = store.save_bound(server).unwrap();
    assert_eq!(first.mono_ms, clock.mono_ms());
    assert_eq!(first.server_ms, server);
    // A weaker bound for the same run (an older file read later) does not replace it; a
    // tighter one does.
    clock.advance(Duration::from_secs(3_600));
    store.save_bound(server).unwrap();
    assert_eq!(store.bounds_for(&[first.run]).unwrap(), vec![first]);
    let tighter = store.save_bound(server + 7_200_000).unwrap();
    assert_eq!(store.bounds_for(&[first.run]).unwrap(), vec![tighter]);

    // After a reboot the newest bound travels with every batch, whatever runs it holds.
    clock.reboot(Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 30).unwrap());
    let now = store.client_instant().unwrap();
    assert_ne!(now.run, first.run);
    assert_eq!(store.bounds_for(&[now.run]).unwrap(), vec![tighter]);
    let later = store.save_bound(server + 9_000_000).unwrap();
    assert_eq!(later.run, now.run);
    assert_eq!(
        store.bounds_for(&[first.run, now.run]).unwrap(),
        vec![tighter, later]
    );
    assert_eq!(store.bounds_for(&[]).unwrap(), vec![later]);
}
