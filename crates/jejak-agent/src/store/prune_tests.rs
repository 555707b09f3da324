//! Retention, the size budget and sessions nobody checked in.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use jejak_domain::{
    AgeGroup, ChangeRecord, DeviceIdentity, EndReason, Gender, LibraryCode, PatronProfile, PcCode,
    Purpose, RecordBody, RejectedRecord, UserKind,
};
use proptest::prelude::*;

use super::*;
use crate::clock::{Clock, ManualClock};
use crate::store::VisitInput;

const DAY: Duration = Duration::from_secs(86_400);

fn identity() -> DeviceIdentity {
    DeviceIdentity {
        library: LibraryCode::parse("adisara").unwrap(),
        pc: PcCode::parse("pc-02").unwrap(),
    }
}

fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2031, 6, 1, 1, 0, 0).unwrap()
}

fn open_store(dir: &tempfile::TempDir, clock: &ManualClock) -> Store {
    Store::open(
        &dir.path().join("jejak.db"),
        identity(),
        Arc::new(clock.clone()),
    )
    .unwrap()
    .0
}

fn checked_in() -> PatronProfile {
    PatronProfile {
        user_kind: UserKind::Anggota,
        purposes: vec![Purpose::Kesehatan],
        gender: Gender::L,
        age_group: AgeGroup::Lansia,
        group_size: 1,
        patron_key: None,
    }
}

fn policy(retention_days: u64, budget_bytes: u64) -> PrunePolicy {
    PrunePolicy {
        retention: DAY * retention_days as u32,
        budget_bytes,
    }
}

/// Closes `n` sessions of a few minutes each.
fn sessions(store: &mut Store, clock: &ManualClock, n: usize) {
    for _ in 0..n {
        store.start_session(checked_in(), None).unwrap();
        clock.advance(Duration::from_secs(600));
        store.end_session(EndReason::Logout, None).unwrap();
    }
}

fn ack_all(store: &mut Store, rejected: &[RejectedRecord]) -> u64 {
    let last = store.sync_state().unwrap().last_seq;
    store
        .record_ack(
            store.epoch(),
            last,
            rejected,
            &jejak_domain::RecordKind::ALL,
        )
        .unwrap();
    last
}

fn seqs(store: &Store) -> Vec<u64> {
    store
        .changes_after(0, u32::MAX)
        .unwrap()
        .iter()
        .map(|c| c.seq)
        .collect()
}

fn session_rows(store: &Store) -> i64 {
    store
        .conn
        .query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn acknowledged_changes_go_only_after_the_retention_period_and_the_newest_stays() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(start_time());
    let mut store = open_store(&dir, &clock);
    sessions(&mut store, &clock, 5);
    let acked = ack_all(&mut store, &[]);
    // Written after the acknowledgement: unsynced, kept whatever happens.
    store.start_session(checked_in(), None).unwrap();
    let unsynced = store.changes_after(acked, u32::MAX).unwrap();
    assert!(!unsynced.is_empty());

    clock.advance(DAY * 89);
    let report = store.prune(&policy(90, u64::MAX), false).unwrap();
    assert_eq!(
        report.changes_pruned(),
        0,
        "89 days after the acknowledgement"
    );
    assert_eq!(
        seqs(&store).len() as u64,
        store.sync_state().unwrap().last_seq
    );

    clock.advance(DAY * 2);
    let report = store.prune(&policy(90, u64::MAX), false).unwrap();
    assert_eq!(
        report.changes_past_retention, acked,
        "every acknowledged change (a newer unsynced one carries the seq on)"
    );
    assert_eq!(report.sessions_removed, 5, "the five closed sessions");
    assert_eq!(store.changes_after(acked, u32::MAX).unwrap(), unsynced);
    assert!(
        store.open_session().unwrap().is_some(),
        "the open session stays"
    );
    assert_eq!(session_rows(&store), 1);
    // The next seq still follows the last one.
    let last = store.sync_state().unwrap().last_seq;
    store.end_session(EndReason::Logout, None).unwrap();
    assert_eq!(store.sync_state().unwrap().last_seq, last + 1);
    assert_eq!(*seqs(&store).last().unwrap(), last + 1);
}

#[test]
fn the_newest_change_stays_even_when_everything_is_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(start_time());
    let mut store = open_store(&dir, &clock);
    sessions(&mut store, &clock, 3);
    let acked = ack_all(&mut store, &[]);
    clock.advance(DAY * 400);
    store.prune(&policy(1, 0), false).unwrap();
    assert_eq!(seqs(&store), vec![acked]);
    let delete = store
        .conn
        .execute("DELETE FROM changes WHERE seq = ?1", [acked as i64]);
    assert!(delete.unwrap_err().to_string().contains("never pruned"));
    let seq = store
        .record_event(jejak_domain::PcEventKind::Heartbeat)
        .unwrap();
    assert_eq!(seq, acked + 1, "seqs never restart");
}

#[test]
fn unsynced_data_is_never_pruned_and_an_impossible_budget_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(start_time());
    let mut store = open_store(&dir, &clock);
    sessions(&mut store, &clock, 20);
    let before = store.changes_after(0, u32::MAX).unwrap();
    clock.advance(DAY * 1000);
    let report = store.prune(&policy(1, 1), false).unwrap();
    assert_eq!(report.changes_pruned(), 0);
    assert!(report.unsynced_over_budget, "{report:?}");
    assert_eq!(report.unsynced_changes, before.len() as u64);
    assert_eq!(store.changes_after(0, u32::MAX).unwrap(), before);
    let usage = store.usage(1).unwrap();
    assert!(usage.unsynced_over_budget(), "{usage:?}");
    assert_eq!(usage.prunable_changes, 0);
    assert!(!store.usage(64 << 20).unwrap().unsynced_over_budget());
}

#[test]
fn rejected_records_stay_visible_after_pruning() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(start_time());
    let mut store = open_store(&dir, &clock);
    sessions(&mut store, &clock, 4);
    let rejected = RejectedRecord {
        seq: 3,
        code: "invalid".into(),
        detail: "test".into(),
    };
    ack_all(&mut store, std::slice::from_ref(&rejected));
    clock.advance(DAY * 200);
    let report = store.prune(&policy(90, 0), false).unwrap();
    assert!(report.changes_pruned() > 0);
    assert!(seqs(&store).contains(&3));
    let kept = store.rejected_changes(10).unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].seq, 3);
    assert_eq!(store.sync_state().unwrap().rejected, 1);
}

#[test]
fn over_budget_the_oldest_acknowledged_changes_go_first_and_the_file_shrinks() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(start_time());
    let mut store = open_store(&dir, &clock);
    sessions(&mut store, &clock, 600);
    let acked = ack_all(&mut store, &[]);
    sessions(&mut store, &clock, 20);
    let unsynced = store.changes_after(acked, u32::MAX).unwrap();
    let used = store.usage(0).unwrap().used_bytes;
    let budget = used / 3;

    let dry = store.prune(&policy(90, budget), true).unwrap();
    assert!(dry.dry_run && dry.changes_over_budget > 0, "{dry:?}");
    assert_eq!(
        store.usage(0).unwrap().used_bytes,
        used,
        "a dry run prunes nothing"
    );
    assert_eq!(seqs(&store).len() as u64, acked + unsynced.len() as u64);

    let report = store.prune(&policy(90, budget), false).unwrap();
    assert_eq!(report.changes_past_retention, 0, "nothing is 90 days old");
    assert_eq!(report.changes_over_budget, dry.changes_over_budget);
    assert!(report.bytes_after <= budget, "{report:?}");
    assert!(!report.unsynced_over_budget);
    assert!(report.vacuumed);
    let file = std::fs::metadata(dir.path().join("jejak.db"))
        .unwrap()
        .len();
    assert!(
        file <= budget + 4096 * 8,
        "file {file} after vacuum, budget {budget}"
    );
    // Oldest first: what is left is one contiguous tail.
    let left = seqs(&store);
    let first = left[0];
    assert_eq!(left, (first..first + left.len() as u64).collect::<Vec<_>>());
    assert_eq!(store.changes_after(acked, u32::MAX).unwrap(), unsynced);
}

#[test]
fn acknowledgements_made_before_the_upgrade_count_from_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(start_time());
    let mut store = open_store(&dir, &clock);
    sessions(&mut store, &clock, 2);
    let acked = ack_all(&mut store, &[]);
    let history: Vec<(i64, i64)> = {
        let mut stmt = store
            .conn
            .prepare("SELECT acked_seq, acked_at_ms FROM ack_history")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(
        history,
        vec![(acked as i64, clock.wall().timestamp_millis())]
    );
}

#[test]
fn a_login_nobody_checked_in_is_recorded_and_filled_in_at_check_in() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(start_time());
    let mut store = open_store(&dir, &clock);
    let session = store.start_unattended_session(None).unwrap().unwrap();
    assert_eq!(session.patron, PatronProfile::default());
    assert_eq!(session.revision, 1);
    assert_eq!(
        store.unattended_open_session().unwrap().map(|s| s.id),
        Some(session.id)
    );
    assert!(
        store.start_unattended_session(None).unwrap().is_none(),
        "a second login notice starts nothing"
    );

    clock.advance(Duration::from_secs(120));
    let filled = store.fill_in_open_session(checked_in()).unwrap();
    assert_eq!((filled.id, filled.revision), (session.id, 2));
    assert_eq!(filled.patron, checked_in());
    assert_eq!(filled.started_at, session.started_at);
    assert!(store.unattended_open_session().unwrap().is_none());
    let revisions: Vec<(uuid::Uuid, u32)> = store
        .changes_after(0, u32::MAX)
        .unwrap()
        .into_iter()
        .filter_map(|c| match c.body {
            RecordBody::Session(s) => Some((s.id, s.revision)),
            _ => None,
        })
        .collect();
    assert_eq!(revisions, vec![(session.id, 1), (session.id, 2)]);

    // A patron who checked in first is not replaced by their own login.
    store.end_session(EndReason::Logout, None).unwrap();
    assert!(matches!(
        store.fill_in_open_session(checked_in()),
        Err(StoreError::NoOpenSession)
    ));
    let theirs = store.start_session(checked_in(), None).unwrap().session;
    assert!(store.start_unattended_session(None).unwrap().is_none());
    assert_eq!(store.open_session().unwrap().unwrap().id, theirs.id);
    assert!(store.unattended_open_session().unwrap().is_none());
}

// ---------------------------------------------------------------------------------------
// Property: pruning never removes an unsynced record
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Start,
    End,
    Unattended,
    FillIn,
    Event,
    /// The server acknowledges this fraction (0–100 %) of what waits, maybe rejecting one.
    Ack {
        percent: u8,
        reject: bool,
    },
    Advance {
        days: u32,
    },
    SetWallBack {
        days: u32,
    },
    Prune {
        retention_days: u8,
        budget_kib: u32,
        dry_run: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Start),
        3 => Just(Op::End),
        1 => Just(Op::Unattended),
        1 => Just(Op::FillIn),
        2 => Just(Op::Event),
        3 => (0u8..=100, proptest::bool::weighted(0.2))
            .prop_map(|(percent, reject)| Op::Ack { percent, reject }),
        2 => (0u32..120).prop_map(|days| Op::Advance { days }),
        1 => (0u32..400).prop_map(|days| Op::SetWallBack { days }),
        4 => (0u8..100, 0u32..200, proptest::bool::weighted(0.2)).prop_map(
            |(retention_days, budget_kib, dry_run)| Op::Prune { retention_days, budget_kib, dry_run }
        ),
    ]
}

/// The unsynced part of the change log, by seq, as the batcher reads it.
fn unsynced(store: &Store) -> BTreeMap<u64, ChangeRecord> {
    let acked = store.sync_state().unwrap().acked_seq;
    store
        .changes_after(acked, u32::MAX)
        .unwrap()
        .into_iter()
        .map(|c| (c.seq, c))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the order of writes, acknowledgements, clock changes and prune passes
    /// (with any retention and any budget, dry or not): after every step each change the
    /// server has not acknowledged is still there, byte for byte, every change ever
    /// written since the last acknowledgement is among them, seqs never restart, and
    /// rejected records stay.
    #[test]
    fn pruning_never_removes_an_unsynced_record(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(start_time());
        let mut store = open_store(&dir, &clock);
        // Every change ever written, as first read back: the reference.
        let mut written: BTreeMap<u64, ChangeRecord> = BTreeMap::new();
        let mut rejected_seqs: Vec<u64> = Vec::new();
        let mut last_seq = 0;
        for op in ops {
            match op {
                Op::Start => { store.start_session(checked_in(), None).unwrap(); }
                Op::End => match store.end_session(EndReason::Logout, None) {
                    Ok(_) | Err(StoreError::NoOpenSession) => {}
                    Err(e) => panic!("{e}"),
                },
                Op::Unattended => { store.start_unattended_session(None).unwrap(); }
                Op::FillIn => match store.fill_in_open_session(checked_in()) {
                    Ok(_) | Err(StoreError::NoOpenSession) => {}
                    Err(e) => panic!("{e}"),
                },
                Op::Event => { store.record_event(jejak_domain::PcEventKind::InternetUp).unwrap(); }
                Op::Ack { percent, reject } => {
                    let state = store.sync_state().unwrap();
                    let held = state.acked_seq + state.pending() * u64::from(percent) / 100;
                    let rejected: Vec<RejectedRecord> = (reject && held > state.acked_seq)
                        .then(|| RejectedRecord { seq: held, code: "invalid".into(), detail: "p".into() })
                        .into_iter()
                        .collect();
                    rejected_seqs.extend(rejected.iter().map(|r| r.seq));
                    store.record_ack(store.epoch(), held, &rejected, &jejak_domain::RecordKind::ALL).unwrap();
                }
                Op::Advance { days } => clock.advance(DAY * days),
                Op::SetWallBack { days } => clock.set_wall(clock.wall() - chrono::Duration::days(i64::from(days))),
                Op::Prune { retention_days, budget_kib, dry_run } => {
                    let before = unsynced(&store);
                    let report = store
                        .prune(&policy(u64::from(retention_days), u64::from(budget_kib) * 1024), dry_run)
                        .unwrap();
                    prop_assert_eq!(report.unsynced_changes, before.len() as u64);
                    prop_assert_eq!(&unsynced(&store), &before, "prune changed the unsynced records");
                }
            }
            let state = store.sync_state().unwrap();
            prop_assert!(state.last_seq >= last_seq, "seqs restarted");
            for c in store.changes_after(last_seq, u32::MAX).unwrap() {
                written.insert(c.seq, c);
            }
            last_seq = state.last_seq;
            let now = unsynced(&store);
            let expected: BTreeMap<u64, ChangeRecord> = written
                .range(state.acked_seq + 1..)
                .map(|(s, c)| (*s, c.clone()))
                .collect();
            prop_assert_eq!(now, expected, "an unsynced change is missing or altered");
            for seq in &rejected_seqs {
                prop_assert!(seqs(&store).contains(seq), "rejected change {} was pruned", seq);
            }
            prop_assert_eq!(state.rejected as usize, {
                let mut r = rejected_seqs.clone(); r.sort(); r.dedup(); r.len()
            });
        }
    }
}

fn desk_visit(people: u32) -> VisitInput {
    VisitInput {
        gender: Gender::P,
        age_group: AgeGroup::Remaja,
        user_kind: UserKind::Rombongan,
        purpose: jejak_domain::VisitPurpose::Membaca,
        people,
    }
}

/// A visit an older server did not take is held back when its range is acknowledged:
/// it counts as waiting, neither retention nor the budget prunes it, and once a server
/// takes it and acknowledges it, it waits no more.
#[test]
fn held_back_visits_wait_and_are_never_pruned_until_a_server_has_them() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(start_time());
    let mut store = open_store(&dir, &clock);
    sessions(&mut store, &clock, 2);
    let visit = store.add_visit(desk_visit(3)).unwrap();
    sessions(&mut store, &clock, 2);
    let last = store.sync_state().unwrap().last_seq;
    // The server took sessions and pc events only.
    store
        .record_ack(store.epoch(), last, &[], &jejak_domain::RecordKind::WIRE_V1)
        .unwrap();
    let state = store.sync_state().unwrap();
    assert_eq!(
        (state.acked_seq, state.held_back, state.pending()),
        (last, 1, 1)
    );
    assert_eq!(
        store
            .status(jejak_domain::Zone::Wib)
            .unwrap()
            .pending_changes,
        1
    );

    clock.advance(DAY * 400);
    let report = store.prune(&policy(0, 1), false).unwrap();
    assert!(report.changes_past_retention > 0, "{report:?}");
    let held = store
        .held_back(&[jejak_domain::RecordKind::Visit], 100)
        .unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].body, RecordBody::Visit(visit));

    // A server that takes visits now has it.
    store.release_held_back(&[held[0].seq], &[]).unwrap();
    assert_eq!(store.sync_state().unwrap().pending(), 0);
    assert!(
        store
            .held_back(&[jejak_domain::RecordKind::Visit], 100)
            .unwrap()
            .is_empty()
    );
}

/// The undo withdraws the latest visit still counted, as its next revision; with none
/// left it says so and writes nothing. An invalid visit writes nothing either.
#[test]
fn the_undo_takes_back_the_latest_visit_and_bad_visits_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(start_time());
    let mut store = open_store(&dir, &clock);
    let first = store.add_visit(desk_visit(1)).unwrap();
    let second = store.add_visit(desk_visit(12)).unwrap();
    let before = store.sync_state().unwrap().last_seq;
    assert!(matches!(
        store.add_visit(desk_visit(501)),
        Err(StoreError::Invalid(_))
    ));
    let staff = VisitInput {
        user_kind: UserKind::Staf,
        ..desk_visit(1)
    };
    assert!(store.add_visit(staff).is_err());
    assert_eq!(store.sync_state().unwrap().last_seq, before);

    let undone = store.undo_last_visit().unwrap();
    assert_eq!(
        (undone.id, undone.revision, undone.withdrawn),
        (second.id, 2, true)
    );
    let undone = store.undo_last_visit().unwrap();
    assert_eq!((undone.id, undone.withdrawn), (first.id, true));
    let last = store.sync_state().unwrap().last_seq;
    assert!(matches!(
        store.undo_last_visit(),
        Err(StoreError::NothingToUndo)
    ));
    assert_eq!(store.sync_state().unwrap().last_seq, last);

    // A month's count set twice is one record at its next revision.
    let month = jejak_domain::YearMonth::parse("2031-05").unwrap();
    store.set_member_count(month, 100, 3).unwrap();
    let again = store.set_member_count(month, 104, 4).unwrap();
    assert_eq!(again.revision, 2);
    assert!(store.set_member_count(month, 2, 4).is_err());
}

fn desk_activity(title: &str) -> crate::store::ActivityInput {
    crate::store::ActivityInput {
        date: start_time().date_naive() - chrono::Days::new(3),
        start: chrono::NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
        duration_minutes: 120,
        activity_type: jejak_domain::ActivityType::Pelatihan,
        title: title.into(),
        partner: None,
        place: jejak_domain::ActivityPlace::DiPerpustakaan,
        participants: jejak_domain::Participants::parse("L:dewasa=5,P:dewasa=7").unwrap(),
        notes: None,
    }
}

/// An activity is added, then edited by its short id into its next revision with the
/// changed fields only; an invalid one or an edit of an unknown id writes nothing.
#[test]
fn activities_are_added_and_edited_as_revisions_and_bad_ones_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(start_time());
    let mut store = open_store(&dir, &clock);
    let first = store
        .add_activity(desk_activity("Pelatihan email"))
        .unwrap();
    let other = store.add_activity(desk_activity("Bedah buku")).unwrap();
    assert_eq!(first.revision, 1);
    let before = store.sync_state().unwrap().last_seq;
    for bad in [
        crate::store::ActivityInput {
            title: "baris\nbaru".into(),
            ..desk_activity("x")
        },
        crate::store::ActivityInput {
            date: start_time().date_naive() + chrono::Days::new(30),
            ..desk_activity("x")
        },
        crate::store::ActivityInput {
            duration_minutes: 0,
            ..desk_activity("x")
        },
    ] {
        assert!(matches!(
            store.add_activity(bad),
            Err(StoreError::Invalid(_))
        ));
    }
    assert!(matches!(
        store.edit_activity("ffffffff", |a| a.duration_minutes = 60),
        Err(StoreError::NoSuchActivity { .. })
    ));
    assert!(matches!(
        store.edit_activity(&crate::store::short_id(&first.id), |a| a.notes =
            Some("x".repeat(501))),
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(store.sync_state().unwrap().last_seq, before);

    clock.advance(Duration::from_secs(60));
    let edited = store
        .edit_activity(&crate::store::short_id(&first.id), |a| {
            a.participants = jejak_domain::Participants::parse("P:remaja=20").unwrap();
            a.partner = Some("Karang Taruna".into());
        })
        .unwrap();
    assert_eq!((edited.id, edited.revision), (first.id, 2));
    assert_eq!(edited.title, first.title);
    assert_eq!(edited.participants.total(), 20);
    assert!(edited.at > first.at);
    // The full id works too, and the next edit follows the newest revision.
    let again = store
        .edit_activity(&first.id.to_string(), |a| a.duration_minutes = 90)
        .unwrap();
    assert_eq!((again.revision, again.participants.total()), (3, 20));
    assert_eq!(store.find_activity(&other.id.to_string()).unwrap(), other);
    let listed = store.desk_records("activity", 10).unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0], RecordBody::Activity(again));
}
