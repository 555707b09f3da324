//! A PC whose clock lies, for the dating tests: runs (boots) whose wall clock is right,
//! reset to 2000, set right during the run, thrown back to 2000 during the run, or years
//! ahead, each with its boot event, sessions, heartbeats and a shutdown (or a power cut,
//! whose open session the next run closes), and the true time of everything. Batches
//! are cut from it as the PC would send them at a given moment, over HTTP or on a USB
//! stick.

use chrono::{DateTime, Utc};
use jejak_domain::{
    AgeGroup, ChangeRecord, ClientInstant, ClockAnchor, ClockBound, EndReason, Gender,
    PatronProfile, PcEvent, PcEventKind, Purpose, RecordBody, Session, TimeQuality, UserKind,
    WireBatch,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use super::{SimPc, uuid_v7_at};

/// 2000-01-01 00:00 UTC: where a clock without its CMOS battery starts again.
pub const Y2000_MS: i64 = 946_684_800_000;
const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;

/// How a simulated run's wall clock reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimClock {
    /// Right all along.
    Right,
    /// Reset to 2000 at boot (a dead CMOS battery after a power cut), never set right.
    Reset,
    /// Reset at boot and set right by the librarian this long into the run.
    ResetThenSet {
        /// Monotonic ms of the run at which the clock was set.
        after_ms: i64,
    },
    /// Right, then thrown back to 2000 this long into the run.
    RightThenReset {
        /// Monotonic ms of the run at which the clock jumped.
        after_ms: i64,
    },
    /// Ahead by this much all along (years: impossible to believe).
    Ahead {
        /// How far ahead, ms.
        ms: i64,
    },
}

impl SimClock {
    /// The wall clock's reading at monotonic `mono_ms` of a run that truly booted at
    /// `boot_ms`.
    pub fn wall(self, boot_ms: i64, mono_ms: i64) -> i64 {
        let truth = boot_ms + mono_ms;
        match self {
            SimClock::Right => truth,
            SimClock::Reset => Y2000_MS + mono_ms,
            SimClock::ResetThenSet { after_ms } if mono_ms < after_ms => Y2000_MS + mono_ms,
            SimClock::ResetThenSet { .. } => truth,
            SimClock::RightThenReset { after_ms } if mono_ms >= after_ms => {
                Y2000_MS + mono_ms - after_ms
            }
            SimClock::RightThenReset { .. } => truth,
            SimClock::Ahead { ms } => truth + ms,
        }
    }

    /// Whether the reading at `mono_ms` is the true time.
    pub fn right_at(self, mono_ms: i64) -> bool {
        match self {
            SimClock::Right => true,
            SimClock::Reset | SimClock::Ahead { .. } => false,
            SimClock::ResetThenSet { after_ms } => mono_ms >= after_ms,
            SimClock::RightThenReset { after_ms } => mono_ms < after_ms,
        }
    }
}

/// One simulated run (boot) of a PC.
#[derive(Debug, Clone)]
pub struct SimRun {
    /// Its id.
    pub run: Uuid,
    /// When it truly booted, Unix ms.
    pub boot_ms: i64,
    /// How long it stayed up, ms.
    pub length_ms: i64,
    /// Public sessions during it.
    pub sessions: usize,
    /// How its wall clock read.
    pub clock: SimClock,
    /// It ended in a power cut: no shutdown event, and its last session, still open, is
    /// closed by the next run (`power_loss`, a revision written in that run's time).
    pub cut: bool,
}

/// One change of the PC's log and what it truly was.
#[derive(Debug, Clone)]
pub struct SimChange {
    /// The change as the PC sends it.
    pub record: ChangeRecord,
    /// When it was written, true Unix ms.
    pub written_ms: i64,
    /// The run it belongs to (its index in [`History::runs`]).
    pub run: usize,
}

/// A PC's change log over its runs, with the truth beside it.
#[derive(Debug, Clone)]
pub struct History {
    /// The PC.
    pub pc: SimPc,
    /// Its runs, in order.
    pub runs: Vec<SimRun>,
    /// The change log in seq order (seqs from 1).
    pub changes: Vec<SimChange>,
    /// Each session's true start (Unix ms) and its run's index.
    pub true_starts: Vec<(Uuid, i64, usize)>,
}

/// The history of `pc` over `runs` (in order, not overlapping). Deterministic for a
/// given `seed`.
pub fn history(pc: &SimPc, runs: Vec<SimRun>, seed: u64) -> History {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut changes: Vec<SimChange> = Vec::new();
    let mut true_starts = Vec::new();
    // A session the previous run left open at a power cut: (session, its run).
    let mut left_open: Option<(Session, usize)> = None;
    for (index, r) in runs.iter().enumerate() {
        let wall = |mono: i64| {
            DateTime::<Utc>::from_timestamp_millis(r.clock.wall(r.boot_ms, mono))
                .unwrap_or_default()
        };
        let event = |rng: &mut StdRng, kind: PcEventKind, mono: i64| {
            let at = wall(mono);
            SimChange {
                record: ChangeRecord {
                    seq: 0,
                    recorded_at: at,
                    run_id: r.run,
                    mono_ms: mono as u64,
                    body: RecordBody::PcEvent(PcEvent {
                        id: uuid_v7_at(rng, at),
                        library: pc.library.clone(),
                        pc: pc.pc.clone(),
                        kind,
                        at,
                        run_id: r.run,
                        mono_ms: mono as u64,
                        clock_delta_ms: None,
                    }),
                },
                written_ms: r.boot_ms + mono,
                run: index,
            }
        };
        changes.push(event(&mut rng, PcEventKind::Boot, 30_000));
        if let Some((mut open, open_run)) = left_open.take() {
            // Closed at the next start as a power loss, at its last heartbeat's length.
            open.revision += 1;
            open.end_reason = Some(EndReason::PowerLoss);
            let written = r.boot_ms + 40_000;
            changes.push(SimChange {
                record: ChangeRecord {
                    seq: 0,
                    recorded_at: wall(40_000),
                    run_id: r.run,
                    mono_ms: 40_000,
                    body: RecordBody::Session(open),
                },
                written_ms: written,
                run: open_run,
            });
        }
        let mut heartbeat = 2 * HOUR;
        while heartbeat < r.length_ms {
            changes.push(event(&mut rng, PcEventKind::Heartbeat, heartbeat));
            heartbeat += 2 * HOUR;
        }
        // Sessions spread over the run, each in its own slot.
        let slots = r.sessions.max(1) as i64;
        let slot = (r.length_ms - 2 * MINUTE) / slots;
        for k in 0..r.sessions {
            let start = MINUTE + k as i64 * slot + rng.random_range(0..slot.max(2) / 2);
            let minutes = rng.random_range(5..(slot / MINUTE / 2).clamp(6, 120));
            let duration_s = minutes as u64 * 60;
            let started_at = wall(start);
            let purposes = vec![Purpose::ALL[rng.random_range(0..Purpose::ALL.len())]];
            let mut session = Session {
                id: uuid_v7_at(&mut rng, started_at),
                revision: 1,
                library: pc.library.clone(),
                pc: pc.pc.clone(),
                started_at,
                ended_at: Some(wall(start + duration_s as i64 * 1000)),
                duration_secs: duration_s,
                end_reason: Some(EndReason::Logout),
                patron: PatronProfile {
                    user_kind: UserKind::NonAnggota,
                    purposes,
                    gender: if rng.random_bool(0.5) {
                        Gender::L
                    } else {
                        Gender::P
                    },
                    age_group: AgeGroup::Pemuda,
                    group_size: 1,
                    patron_key: None,
                },
                bytes_rx: 1024 * 100,
                bytes_tx: 1024 * 10,
                online_secs: duration_s,
                time_quality: TimeQuality::Trusted,
                run_id: r.run,
                started_mono_ms: start as u64,
            };
            true_starts.push((session.id, r.boot_ms + start, index));
            let last = k + 1 == r.sessions;
            let end_mono = (start + duration_s as i64 * 1000).min(r.length_ms);
            if last && r.cut {
                // Open when the power went: written at its start, closed by the next run.
                session.ended_at = None;
                session.end_reason = None;
                session.duration_secs = ((end_mono - start) / 1000).max(0) as u64;
                session.online_secs = session.duration_secs;
                changes.push(SimChange {
                    record: ChangeRecord {
                        seq: 0,
                        recorded_at: started_at,
                        run_id: r.run,
                        mono_ms: start as u64,
                        body: RecordBody::Session(session.clone()),
                    },
                    written_ms: r.boot_ms + start,
                    run: index,
                });
                left_open = Some((session, index));
            } else {
                changes.push(SimChange {
                    record: ChangeRecord {
                        seq: 0,
                        recorded_at: wall(end_mono),
                        run_id: r.run,
                        mono_ms: end_mono as u64,
                        body: RecordBody::Session(session),
                    },
                    written_ms: r.boot_ms + end_mono,
                    run: index,
                });
            }
        }
        if !r.cut {
            changes.push(event(&mut rng, PcEventKind::Shutdown, r.length_ms));
        }
    }
    changes.sort_by_key(|c| c.written_ms);
    for (i, c) in changes.iter_mut().enumerate() {
        c.record.seq = i as u64 + 1;
    }
    History {
        pc: pc.clone(),
        runs,
        changes,
        true_starts,
    }
}

impl History {
    /// The last seq written at or before `at_ms` (true time); 0 for none.
    pub fn seq_at(&self, at_ms: i64) -> u64 {
        self.changes
            .iter()
            .take_while(|c| c.written_ms <= at_ms)
            .last()
            .map_or(0, |c| c.record.seq)
    }

    /// The run going at `at_ms` (its index) and its monotonic time then.
    pub fn instant_at(&self, at_ms: i64) -> Option<(usize, i64)> {
        self.runs
            .iter()
            .position(|r| at_ms >= r.boot_ms && at_ms <= r.boot_ms + r.length_ms)
            .map(|i| (i, at_ms - self.runs[i].boot_ms))
    }

    /// An anchor measured against the server at `at_ms` during run `run` (exact).
    pub fn anchor_at(&self, run: usize, at_ms: i64) -> ClockAnchor {
        let r = &self.runs[run];
        ClockAnchor {
            run: r.run,
            mono_ms: (at_ms - r.boot_ms).max(0) as u64,
            server_ms: at_ms,
            uncertainty_ms: 0,
        }
    }

    /// The batch of seqs `first..=last` sent (or exported) at `at_ms` during run
    /// `sent_run`, carrying `anchors` and `bounds` as the PC would (those of the runs it
    /// holds and of the run going on, and the newest bound).
    pub fn batch(
        &self,
        (first, last): (u64, u64),
        (sent_run, at_ms): (usize, i64),
        anchors: &[ClockAnchor],
        bounds: &[ClockBound],
    ) -> WireBatch {
        // The newest revision of each record only, as the sync sends them.
        let records: Vec<ChangeRecord> = jejak_domain::newest_revisions(
            self.changes
                .iter()
                .filter(|c| (first..=last).contains(&c.record.seq))
                .map(|c| c.record.clone())
                .collect(),
        );
        // A session's revision names the run it started in.
        let mut runs: Vec<Uuid> = records.iter().map(|r| r.body.run_id()).collect();
        let sent = &self.runs[sent_run];
        runs.push(sent.run);
        let anchors: Vec<ClockAnchor> = anchors
            .iter()
            .filter(|a| runs.contains(&a.run))
            .copied()
            .collect();
        let mut wire = WireBatch::encode(
            Uuid::new_v4(),
            self.pc.library.clone(),
            self.pc.pc.clone(),
            self.pc.epoch,
            first,
            last,
            ClientInstant {
                run: sent.run,
                mono_ms: (at_ms - sent.boot_ms).max(0) as u64,
                wall_ms: sent.clock.wall(sent.boot_ms, at_ms - sent.boot_ms),
            },
            anchors,
            &records,
        );
        wire.bounds = bounds
            .iter()
            .enumerate()
            .filter(|(i, b)| runs.contains(&b.run) || *i + 1 == bounds.len())
            .map(|(_, b)| *b)
            .collect();
        wire
    }
}
