//! How records are dated when the PC's wall clock cannot be believed, and how they are
//! dated again when better evidence arrives later. No IO: a backend loads a PC's kept
//! runs, calls [`plan`] inside the ingest transaction, re-dates the stored records the
//! plan names (their rollups following, as for a new revision) and writes the kept runs
//! back.
//!
//! A *run* is one boot of a PC. Its monotonic clock never jumps, so one number — where
//! its monotonic zero lies on the server's clock, its *boot* — dates every record of
//! the run. The evidence for a run's boot, best first:
//!
//! 1. an anchor measured at an HTTP sync during the run (`corrected`);
//! 2. the run's own wall clock: read as it is when every reading is possible (moved by
//!    the PC's measured offset when that keeps it possible), or its latest possible
//!    reading when the clock was wrong for part of the run (a clock reset to 2000 and
//!    set right at noon dates the whole morning) — `estimated`;
//! 3. the order of runs on the PC: a run started after the previous run ended and ended
//!    before the next one started, so it lies between the runs dated by 1 or 2 around
//!    it, and between the evidence that travels with batches: every batch arrived after
//!    its records were made (an upper bound; a USB bundle's import time included), and
//!    a USB acknowledgement read on the PC proves the server's clock had passed the time
//!    it was written (a lower bound, [`jejak_domain::ClockBound`]). The result is an
//!    interval; its middle dates the run (`estimated`), and when it is wider than
//!    [`MAX_TOLD_INTERVAL_MS`] the run's month cannot be told: its records are stored
//!    *undated* (see [`UNDATED_BEFORE_MS`]) and the reports list them as such.
//!
//! Evidence of kind 3 keeps arriving after the records: the next run dated by its
//! clock bounds the runs before it from above, an anchor can come at a later HTTP sync
//! while the run is still going, an acknowledgement's bound arrives with the next
//! batch. So the server keeps, per PC, the runs whose dating can still move ([`KeptRun`]:
//! the run's identity, its monotonic span, its bounds, how its records are dated now,
//! and the ids and monotonic readings of its records), and re-dates their records in
//! the transaction of the batch that brings the new evidence. These are the runs dated
//! by estimate that no run dated by its clock follows yet, and the PC's latest run when
//! no anchor dates it: a few rows per PC, none for a PC that syncs over HTTP. A run that
//! can no longer move keeps a small row without its records when it was estimated (so a
//! late revision of one of its sessions is dated as its first revision was), and none
//! otherwise. Bytes are spent per run, not per session: a session row carries nothing
//! of this.

use std::collections::HashMap;

use jejak_domain::{EARLIEST_SERVER_MS, EndReason, TimeQuality};
use uuid::Uuid;

use crate::codes;
use crate::ingest::{Anchor, WallOffset};
use crate::rollup::{self, SessionFacts};

/// A wall reading after the arrival by more than this is impossible (a clock ahead), as
/// is one before [`EARLIEST_SERVER_MS`] (a clock reset).
const FUTURE_SLACK_MS: i64 = 60_000;
/// A corrected time this far in the future of the arrival is not an honest rounding
/// error: it is clamped *and* flagged `estimated`. Smaller excesses (within the
/// anchor's uncertainty) are only clamped.
const FUTURE_TOLERANCE_MS: i64 = 2_000;
/// An interval wider than this cannot tell a record's month: the run's records are
/// stored undated. (An interval that lies within one month is never wider.)
pub(crate) const MAX_TOLD_INTERVAL_MS: i64 = 31 * 86_400_000;
/// At most this many estimated runs of a PC keep their records re-datable; older ones
/// are settled. A PC whose clock never comes right would otherwise keep every record's
/// id here; a run this far back gains little from a run dated later anyway (its bounds
/// come from the batches that carried it).
pub(crate) const MAX_OPEN_RUNS: usize = 31;
/// Records whose month cannot be told are stored before this instant (2023-12-31
/// 00:00 UTC), at their PC's own impossible time when that lies before it, else just
/// before it: no real record is ever dated before [`EARLIEST_SERVER_MS`], and 2023-12-31
/// is December 2023 in every Indonesian zone, so a local month before January 2024 means
/// "date unknown" to the reports, and never a month of its own.
pub(crate) const UNDATED_BEFORE_MS: i64 = 1_703_980_800_000;
/// The first month number (`year * 12 + month - 1`) of real records: the months before
/// it hold the undated ones.
pub(crate) const FIRST_DATED_MONTH: i64 = 2024 * 12;

/// Whether a stored start (Unix seconds) is one of an undated record.
pub(crate) fn is_undated_s(start_s: i64) -> bool {
    start_s < UNDATED_BEFORE_MS / 1000
}

/// Whether a month number holds undated records only.
pub(crate) fn is_undated_month(month: i64) -> bool {
    month < FIRST_DATED_MONTH
}

/// Whether a wall time can be right: not before any server's time, not in the future
/// of the arrival.
pub(crate) fn plausible_ms(ms: i64, received_ms: i64) -> bool {
    ms >= EARLIEST_SERVER_MS && ms <= received_ms.saturating_add(FUTURE_SLACK_MS)
}

/// How a run's records are dated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunDating {
    /// By an anchor measured against the server: `corrected`.
    Anchored(Anchor),
    /// By an estimated boot (`uncertainty_ms` 0 when the run's own clock, set right,
    /// dated it): `estimated`.
    Boot(Anchor),
    /// By each record's own wall reading, moved by the PC's offset when that keeps it
    /// possible: `estimated`.
    OwnClock,
    /// The month cannot be told: stored before [`UNDATED_BEFORE_MS`].
    Undated,
}

/// A record's corrected time and how far to trust it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dated {
    /// Corrected start (or instant), Unix ms by the server's clock.
    pub ms: i64,
    pub quality: TimeQuality,
}

/// Dates a record whose PC wall clock read `raw_ms` at monotonic `mono_ms` of its run,
/// and which lasted `span_ms`. A record whose end would lie after `now_ms` (its
/// arrival) is pulled back to end then, and flagged `estimated` when the excess is more
/// than a rounding error. `client_quality` is the PC's own doubt, which an anchor
/// keeps (an end taken from a last heartbeat stays an estimate).
pub(crate) fn date(
    raw_ms: i64,
    mono_ms: i64,
    span_ms: i64,
    client_quality: TimeQuality,
    run: &RunDating,
    offset: Option<&WallOffset>,
    now_ms: i64,
) -> Dated {
    let (mut ms, mut quality, tolerance) = match run {
        RunDating::Anchored(a) => (
            a.server_time_of(mono_ms),
            if client_quality == TimeQuality::Estimated {
                TimeQuality::Estimated
            } else {
                TimeQuality::Corrected
            },
            FUTURE_TOLERANCE_MS.max(a.uncertainty_ms),
        ),
        RunDating::Boot(e) => (
            e.server_time_of(mono_ms),
            TimeQuality::Estimated,
            FUTURE_TOLERANCE_MS,
        ),
        RunDating::OwnClock => match own_time(raw_ms, offset, now_ms) {
            Some(ms) => (ms, TimeQuality::Estimated, FUTURE_TOLERANCE_MS),
            None => return undated(raw_ms, span_ms),
        },
        RunDating::Undated => return undated(raw_ms, span_ms),
    };
    let end = ms.saturating_add(span_ms);
    if end > now_ms {
        if end - now_ms > tolerance {
            quality = TimeQuality::Estimated;
        }
        ms = now_ms.saturating_sub(span_ms);
    }
    Dated { ms, quality }
}

/// A wall reading as the run's own clock dates it: moved by the PC's offset when that
/// gives a possible time, else as read when that is possible.
fn own_time(raw_ms: i64, offset: Option<&WallOffset>, now_ms: i64) -> Option<i64> {
    offset
        .map(|o| raw_ms.saturating_add(o.ms))
        .filter(|ms| plausible_ms(*ms, now_ms))
        .or_else(|| plausible_ms(raw_ms, now_ms).then_some(raw_ms))
}

/// Where an undated record is stored: at its PC's impossible reading when the whole
/// record lies before [`UNDATED_BEFORE_MS`] that way, else ending just before it.
fn undated(raw_ms: i64, span_ms: i64) -> Dated {
    let latest_start = UNDATED_BEFORE_MS
        .saturating_sub(span_ms.max(0))
        .saturating_sub(1000);
    Dated {
        ms: raw_ms.clamp(0, latest_start.max(0)),
        quality: TimeQuality::Estimated,
    }
}

/// The doubt a session brings to its dating whatever dates its run: an anchor dates it
/// from the monotonic clock, which a wrong or jumping wall clock does not touch, so the
/// PC's doubt about its wall clock is cured by it; only an end taken from the last
/// heartbeat (power loss, crash) stays an estimate.
pub(crate) fn session_doubt(end_reason: Option<i64>) -> TimeQuality {
    match end_reason.and_then(codes::end_reason_from) {
        Some(EndReason::PowerLoss | EndReason::Crash) => TimeQuality::Estimated,
        _ => TimeQuality::Trusted,
    }
}

/// How a stored record is kept: its start (or instant) in whole seconds, its PC's raw
/// time as the difference from that in ms, and its packed attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoredTime {
    pub start_s: i64,
    pub skew_ms: i64,
    pub attrs: i64,
}

impl StoredTime {
    /// The PC's raw wall time, Unix ms.
    pub fn raw_ms(&self) -> i64 {
        self.start_s
            .saturating_mul(1000)
            .saturating_add(self.skew_ms)
    }

    /// A record whose PC read `raw_ms`, dated at `dated_ms`.
    pub fn of(raw_ms: i64, dated_ms: i64, attrs: i64) -> StoredTime {
        let start_s = dated_ms.div_euclid(1000);
        StoredTime {
            start_s,
            skew_ms: raw_ms.saturating_sub(start_s.saturating_mul(1000)),
            attrs,
        }
    }
}

/// A stored session dated again by its run's new dating: its new stored time and what
/// the rollups count of it now; `None` when nothing changes.
pub(crate) fn redate_session(
    old: &SessionFacts,
    skew_ms: i64,
    mono_ms: i64,
    run: &RunDating,
    offset: Option<&WallOffset>,
    now_ms: i64,
) -> Option<(StoredTime, SessionFacts)> {
    let stored = StoredTime {
        start_s: old.start_s,
        skew_ms,
        attrs: old.attrs,
    };
    let mut attrs = codes::SessionAttrs::unpack(stored.attrs);
    let raw = stored.raw_ms();
    let dated = date(
        raw,
        mono_ms,
        old.duration_s.saturating_mul(1000),
        session_doubt(attrs.end_reason),
        run,
        offset,
        now_ms,
    );
    attrs.quality = codes::time_quality_code(dated.quality);
    let new = StoredTime::of(raw, dated.ms, attrs.pack());
    (new != stored).then_some((
        new,
        SessionFacts {
            start_s: new.start_s,
            attrs: new.attrs,
            ..*old
        },
    ))
}

/// A stored pc event dated again by its run's new dating; `None` when nothing changes.
pub(crate) fn redate_event(
    stored: StoredTime,
    mono_ms: i64,
    run: &RunDating,
    offset: Option<&WallOffset>,
    now_ms: i64,
) -> Option<StoredTime> {
    let raw = stored.raw_ms();
    let dated = date(raw, mono_ms, 0, TimeQuality::Trusted, run, offset, now_ms);
    let (kind, _) = codes::event_attrs_unpack(stored.attrs);
    let new = StoredTime::of(
        raw,
        dated.ms,
        codes::event_attrs(kind, codes::time_quality_code(dated.quality)),
    );
    (new != stored).then_some(new)
}

/// One record of a run, as its kept run remembers it for re-dating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RunRecord {
    pub id: Uuid,
    /// Monotonic ms of the run at the record's start (or instant).
    pub mono_ms: i64,
    /// A pc event (else a session).
    pub event: bool,
}

/// What one batch shows of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunEvidence {
    pub run: Uuid,
    pub min_mono: i64,
    pub max_mono: i64,
    /// The seqs of its first and last pc events in the batch. A PC writes events only
    /// in its current run, so a run's events place it among the PC's runs; a session
    /// revision may be written in a later run's time.
    pub event_seqs: Option<(i64, i64)>,
    /// Some wall reading is impossible (before any server's time, or after the arrival).
    pub implausible: bool,
    /// The possible wall reading with the highest monotonic time: (raw ms, mono ms).
    pub latest_plausible: Option<(i64, i64)>,
    /// The reading with the highest monotonic time: (raw ms, mono ms).
    pub latest_reading: (i64, i64),
    /// Its valid records.
    pub records: Vec<RunRecord>,
}

impl RunEvidence {
    /// A run first seen with one reading.
    pub fn new(run: Uuid, mono: i64) -> RunEvidence {
        RunEvidence {
            run,
            min_mono: mono,
            max_mono: mono,
            event_seqs: None,
            implausible: false,
            latest_plausible: None,
            latest_reading: (0, i64::MIN),
            records: Vec::new(),
        }
    }

    /// Adds one record's readings (`received_ms` judges the wall reading).
    pub fn add(&mut self, record: RunRecord, raw_ms: i64, seq: i64, received_ms: i64) {
        let mono = record.mono_ms;
        self.min_mono = self.min_mono.min(mono);
        self.max_mono = self.max_mono.max(mono);
        if record.event {
            self.event_seqs = Some(match self.event_seqs {
                Some((first, last)) => (first.min(seq), last.max(seq)),
                None => (seq, seq),
            });
        }
        if plausible_ms(raw_ms, received_ms) {
            if self.latest_plausible.is_none_or(|(_, m)| mono >= m) {
                self.latest_plausible = Some((raw_ms, mono));
            }
        } else {
            self.implausible = true;
        }
        if mono >= self.latest_reading.1 {
            self.latest_reading = (raw_ms, mono);
        }
        self.records.push(record);
    }
}

/// A run the server keeps for a PC (see the module's notes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeptRun {
    pub run: Uuid,
    /// Its place among the PC's kept runs (their order on the PC).
    pub ordinal: i64,
    /// Whether its dating can still move (its records are kept); else it is settled.
    pub open: bool,
    pub min_mono: i64,
    pub max_mono: i64,
    pub implausible: bool,
    pub latest_plausible: Option<(i64, i64)>,
    pub latest_reading: (i64, i64),
    /// The run booted at or after this (server ms): from acknowledgement files.
    pub not_before: Option<i64>,
    /// The run booted at or before this (server ms): from arrivals.
    pub not_after: Option<i64>,
    /// How its stored records are dated.
    pub dating: RunDating,
    /// Its records, while it is open.
    pub records: Vec<RunRecord>,
}

/// Stored-form version of [`KeptRun::state`].
const STATE_VERSION: i64 = 1;

impl KeptRun {
    /// Everything but the key, the ordinal, the open flag and the record ids, packed as
    /// varints (see [`rollup::pack`]).
    pub fn state(&self) -> Vec<u8> {
        let (dating, boot, uncertainty) = match self.dating {
            RunDating::Anchored(a) => (0, a.boot_ms, a.uncertainty_ms),
            RunDating::Boot(a) => (1, a.boot_ms, a.uncertainty_ms),
            RunDating::OwnClock => (2, 0, 0),
            RunDating::Undated => (3, 0, 0),
        };
        let flags = i64::from(self.implausible)
            | i64::from(self.latest_plausible.is_some()) << 1
            | i64::from(self.not_before.is_some()) << 2
            | i64::from(self.not_after.is_some()) << 3;
        let (plausible_raw, plausible_mono) = self.latest_plausible.unwrap_or((0, 0));
        let mut values = vec![
            STATE_VERSION,
            flags,
            self.min_mono,
            self.max_mono,
            plausible_raw,
            plausible_mono,
            self.latest_reading.0,
            self.latest_reading.1,
            self.not_before.unwrap_or(0),
            self.not_after.unwrap_or(0),
            dating,
            boot,
            uncertainty,
            self.records.len() as i64,
        ];
        let mut previous = 0i64;
        for r in &self.records {
            values.push(r.mono_ms.saturating_sub(previous));
            values.push(i64::from(r.event));
            previous = r.mono_ms;
        }
        rollup::pack(&values)
    }

    /// The ids of its records, 16 bytes each, in the order of [`KeptRun::state`].
    pub fn record_ids(&self) -> Vec<u8> {
        self.records
            .iter()
            .flat_map(|r| r.id.into_bytes())
            .collect()
    }

    /// A kept run from its stored parts; `None` when they do not fit together.
    pub fn from_stored(
        run: Uuid,
        ordinal: i64,
        open: bool,
        state: &[u8],
        ids: &[u8],
    ) -> Option<KeptRun> {
        let v = rollup::unpack(state)?;
        if v.len() < 14 || v[0] != STATE_VERSION {
            return None;
        }
        let flags = v[1];
        let dating = match v[10] {
            0 => RunDating::Anchored(Anchor {
                boot_ms: v[11],
                uncertainty_ms: v[12],
            }),
            1 => RunDating::Boot(Anchor {
                boot_ms: v[11],
                uncertainty_ms: v[12],
            }),
            2 => RunDating::OwnClock,
            3 => RunDating::Undated,
            _ => return None,
        };
        let count = usize::try_from(v[13]).ok()?;
        if v.len() != 14 + 2 * count || ids.len() != 16 * count {
            return None;
        }
        let mut records = Vec::with_capacity(count);
        let mut mono = 0i64;
        for (i, pair) in v[14..].chunks(2).enumerate() {
            mono = mono.saturating_add(pair[0]);
            let id = Uuid::from_slice(&ids[i * 16..(i + 1) * 16]).ok()?;
            records.push(RunRecord {
                id,
                mono_ms: mono,
                event: pair[1] != 0,
            });
        }
        Some(KeptRun {
            run,
            ordinal,
            open,
            min_mono: v[2],
            max_mono: v[3],
            implausible: flags & 1 != 0,
            latest_plausible: (flags & 2 != 0).then_some((v[4], v[5])),
            latest_reading: (v[6], v[7]),
            not_before: (flags & 4 != 0).then_some(v[8]),
            not_after: (flags & 8 != 0).then_some(v[9]),
            dating,
            records,
        })
    }

    /// A kept run from a row of `kept_runs` (run, ordinal, open, state, records) of
    /// `device`; an inconsistent row is an error, never a guess.
    pub fn from_row(
        device: i64,
        run: &[u8],
        ordinal: i64,
        open: bool,
        state: &[u8],
        ids: &[u8],
    ) -> Result<KeptRun, crate::store::StoreError> {
        Uuid::from_slice(run)
            .ok()
            .and_then(|run| KeptRun::from_stored(run, ordinal, open, state, ids))
            .ok_or_else(|| {
                crate::store::StoreError::Inconsistent(format!("a kept run of device {device}"))
            })
    }

    fn from_evidence(e: &RunEvidence, ordinal: i64) -> KeptRun {
        KeptRun {
            run: e.run,
            ordinal,
            open: true,
            min_mono: e.min_mono,
            max_mono: e.max_mono,
            implausible: e.implausible,
            latest_plausible: e.latest_plausible,
            latest_reading: e.latest_reading,
            not_before: None,
            not_after: None,
            dating: RunDating::Undated,
            records: Vec::new(),
        }
    }

    /// Adds what a batch shows of the run.
    fn merge(&mut self, e: &RunEvidence) {
        self.min_mono = self.min_mono.min(e.min_mono);
        self.max_mono = self.max_mono.max(e.max_mono);
        self.implausible |= e.implausible;
        if let Some((raw, mono)) = e.latest_plausible
            && self.latest_plausible.is_none_or(|(_, m)| mono >= m)
        {
            self.latest_plausible = Some((raw, mono));
        }
        if e.latest_reading.1 >= self.latest_reading.1 {
            self.latest_reading = e.latest_reading;
        }
        let mut known: std::collections::HashSet<(Uuid, bool)> =
            self.records.iter().map(|r| (r.id, r.event)).collect();
        for r in &e.records {
            if known.insert((r.id, r.event)) {
                self.records.push(*r);
            }
        }
    }

    fn bound_after(&mut self, boot_ms: i64) {
        self.not_after = Some(self.not_after.map_or(boot_ms, |b| b.min(boot_ms)));
    }

    fn bound_before(&mut self, boot_ms: i64) {
        self.not_before = Some(self.not_before.map_or(boot_ms, |b| b.max(boot_ms)));
    }
}

/// What a PC's batch brings beside its records, for [`plan`].
#[derive(Debug, Clone)]
pub(crate) struct BatchClock<'a> {
    /// The best anchor known for each run the batch or a kept run touches (stored ones
    /// and the batch's own).
    pub anchors: &'a HashMap<Uuid, Option<Anchor>>,
    /// Lower bounds on runs' boots from the batch's clock bounds.
    pub not_before: &'a HashMap<Uuid, i64>,
    /// The run and monotonic time at which the batch was sent (or exported).
    pub sent: (Uuid, i64),
    /// The epoch's held seq before the batch: records after it are new to the server.
    pub held_seq: i64,
    /// The PC wall clock's offset (server minus PC), when known.
    pub offset: Option<WallOffset>,
    pub received_ms: i64,
}

/// What [`plan`] decided for one batch.
#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    /// How each run the batch touches is dated now.
    pub datings: HashMap<Uuid, RunDating>,
    /// Stored records whose run is dated differently now: the run, its new dating and
    /// its records as stored before this batch.
    pub redate: Vec<(Uuid, RunDating, Vec<RunRecord>)>,
    /// Kept runs to write (new or changed), and runs whose kept row goes.
    pub keep: Vec<KeptRun>,
    pub forget: Vec<Uuid>,
    /// The PC's new `dated_until` (the least end, by the server's clock, of its latest
    /// run dated by an anchor or its own clock), when it moved.
    pub dated_until: Option<i64>,
}

impl Plan {
    /// The stored records to date again, each with its run's new dating (logged per
    /// run: ids and counts only).
    pub fn redated_records(&self, device: i64) -> impl Iterator<Item = (&RunRecord, &RunDating)> {
        self.redate.iter().flat_map(move |(run, dating, records)| {
            tracing::debug!(
                device,
                run = %run,
                records = records.len(),
                "later evidence dates a run again"
            );
            records.iter().map(move |r| (r, dating))
        })
    }
}

/// Where a run stands in the solve.
#[derive(Debug, Clone, Copy)]
enum Place {
    /// Dated by itself (anchor or clock): its boot lies in `[lo, hi]`.
    Fixed { dating: RunDating, lo: i64, hi: i64 },
    /// Dated by its neighbours and bounds.
    Between,
}

/// A run of the solve, in the PC's order.
#[derive(Debug, Clone)]
struct Entry {
    kept: KeptRun,
    /// Whether it had a kept row before this batch.
    stored: bool,
    anchor: Option<Anchor>,
}

/// The fixed dating of a run from its own evidence, if it has any.
fn fixed(
    anchor: Option<Anchor>,
    k: &KeptRun,
    offset: Option<&WallOffset>,
    received_ms: i64,
) -> Option<Place> {
    if let Some(a) = anchor {
        return Some(Place::Fixed {
            dating: RunDating::Anchored(a),
            lo: a.boot_ms.saturating_sub(a.uncertainty_ms),
            hi: a.boot_ms.saturating_add(a.uncertainty_ms),
        });
    }
    if !k.implausible
        && let Some((raw, mono)) = k.latest_plausible
    {
        let boot = own_time(raw, offset, received_ms)
            .unwrap_or(raw)
            .saturating_sub(mono);
        return Some(Place::Fixed {
            dating: RunDating::OwnClock,
            lo: boot,
            hi: boot,
        });
    }
    if let Some((raw, mono)) = k.latest_plausible {
        // Wrong for part of the run and right for the rest: the right part dates it all.
        let boot = raw.saturating_sub(mono);
        return Some(Place::Fixed {
            dating: RunDating::Boot(Anchor {
                boot_ms: boot,
                uncertainty_ms: 0,
            }),
            lo: boot,
            hi: boot,
        });
    }
    None
}

/// Where the PC's measured offset would put a run whose clock reads impossible times
/// (its boot): right for a clock that runs consistently wrong, wrong for one that resets
/// at every boot (the offset measured in one run would date the next as if it booted
/// at the same time). So it is only taken where the order of runs allows it.
fn by_offset(k: &KeptRun, offset: Option<&WallOffset>, received_ms: i64) -> Option<i64> {
    let (raw, mono) = k.latest_reading;
    offset
        .map(|o| raw.saturating_add(o.ms))
        .filter(|ms| plausible_ms(*ms, received_ms))
        .map(|ms| ms.saturating_sub(mono))
}

/// The least and greatest boot of each run from the runs around it: a run starts after
/// the one before it ends (forward, from the PC's `dated_until`), and ends before the
/// next one starts and before every arrival (backward). `None` as the least: nothing but
/// "after 2024" bounds it from below.
fn bounds(
    entries: &[Entry],
    places: &[Place],
    dated_until: Option<i64>,
    received_ms: i64,
) -> (Vec<Option<i64>>, Vec<i64>) {
    let mut lows = Vec::with_capacity(entries.len());
    let mut end_lo: Option<i64> = dated_until;
    for (entry, place) in entries.iter().zip(places) {
        let k = &entry.kept;
        let lo = match place {
            Place::Fixed { lo, .. } => Some(*lo),
            Place::Between => {
                let from_before = end_lo.map(|end| end.saturating_sub(k.min_mono));
                match (from_before, k.not_before) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                }
            }
        };
        lows.push(lo);
        if let Some(lo) = lo {
            let end = lo.saturating_add(k.max_mono);
            end_lo = Some(end_lo.map_or(end, |e| e.max(end)));
        }
    }
    let mut highs = vec![i64::MAX; entries.len()];
    let mut start_hi = i64::MAX;
    for i in (0..entries.len()).rev() {
        let k = &entries[i].kept;
        let hi = match places[i] {
            Place::Fixed { hi, .. } => hi,
            Place::Between => k
                .not_after
                .unwrap_or(i64::MAX)
                .min(received_ms.saturating_sub(k.max_mono))
                .min(start_hi.saturating_sub(k.max_mono)),
        };
        highs[i] = hi;
        start_hi = start_hi.min(hi.saturating_add(k.min_mono));
    }
    (lows, highs)
}

/// Dates the runs of one PC's batch together with its kept runs, and says which stored
/// records move. `kept` holds the PC's open kept runs and any settled ones the batch
/// touches; `evidence` the batch's runs in the order they first appear in it;
/// `dated_until` the PC's current one.
pub(crate) fn plan(
    kept: Vec<KeptRun>,
    evidence: &[RunEvidence],
    clock: &BatchClock<'_>,
    dated_until: Option<i64>,
) -> Plan {
    let received_ms = clock.received_ms;
    let offset = clock.offset.as_ref();
    let mut out = Plan::default();
    let anchor_of = |run: &Uuid| clock.anchors.get(run).copied().flatten();

    // The order: the open kept runs (already in the PC's order), then the runs the batch
    // places — those with new pc events, in the order of their first event.
    let (mut open, settled): (Vec<KeptRun>, Vec<KeptRun>) = kept.into_iter().partition(|k| k.open);
    open.sort_by_key(|k| k.ordinal);
    let next_ordinal = open.last().map_or(1, |k| k.ordinal + 1);
    let mut entries: Vec<Entry> = open
        .into_iter()
        .map(|k| Entry {
            anchor: anchor_of(&k.run),
            kept: k,
            stored: true,
        })
        .collect();
    let previous: HashMap<Uuid, KeptRun> = entries
        .iter()
        .map(|e| (e.kept.run, e.kept.clone()))
        .collect();
    let mut placed: Vec<&RunEvidence> = evidence
        .iter()
        .filter(|e| !previous.contains_key(&e.run))
        .filter(|e| !settled.iter().any(|k| k.run == e.run))
        .filter(|e| e.event_seqs.is_some_and(|(_, last)| last > clock.held_seq))
        .collect();
    placed.sort_by_key(|e| e.event_seqs.map_or(i64::MAX, |(first, _)| first));
    for (ordinal, e) in (next_ordinal..).zip(placed) {
        entries.push(Entry {
            kept: KeptRun::from_evidence(e, ordinal),
            stored: false,
            anchor: anchor_of(&e.run),
        });
    }
    // What the batch adds to the runs in the order: their readings and records, the
    // arrival as an upper bound, the acknowledgements' lower bounds.
    for entry in &mut entries {
        let k = &mut entry.kept;
        if let Some(e) = evidence.iter().find(|e| e.run == k.run) {
            k.merge(e);
            k.bound_after(received_ms.saturating_sub(e.max_mono));
        }
        if clock.sent.0 == k.run {
            k.bound_after(received_ms.saturating_sub(clock.sent.1));
        }
        if let Some(boot) = clock.not_before.get(&k.run) {
            k.bound_before(*boot);
        }
    }

    // Each run's place: fixed by its own evidence, or between its neighbours; then a run
    // the PC's offset dates where its neighbours allow it is fixed there too.
    let mut places: Vec<Place> = entries
        .iter()
        .map(|e| fixed(e.anchor, &e.kept, offset, received_ms).unwrap_or(Place::Between))
        .collect();
    let (mut lows, mut highs) = bounds(&entries, &places, dated_until, received_ms);
    let mut by_offset_taken = false;
    for (i, entry) in entries.iter().enumerate() {
        if !matches!(places[i], Place::Between) {
            continue;
        }
        if let Some(boot) = by_offset(&entry.kept, offset, received_ms)
            && lows[i].is_none_or(|lo| boot >= lo)
            && boot <= highs[i]
        {
            places[i] = Place::Fixed {
                dating: RunDating::OwnClock,
                lo: boot,
                hi: boot,
            };
            by_offset_taken = true;
        }
    }
    if by_offset_taken {
        (lows, highs) = bounds(&entries, &places, dated_until, received_ms);
    }
    let has_fixed_after: Vec<bool> = (0..entries.len())
        .map(|i| {
            places[i + 1..]
                .iter()
                .any(|p| matches!(p, Place::Fixed { .. }))
        })
        .collect();

    // Datings, the kept runs after this batch, and the records to re-date.
    let last = entries.len().checked_sub(1);
    let mut open_estimates = 0usize;
    let mut new_until = dated_until;
    for i in (0..entries.len()).rev() {
        let entry = &mut entries[i];
        let k = &mut entry.kept;
        let dating = match places[i] {
            Place::Fixed { dating, lo, .. } => {
                let end = lo.saturating_add(k.max_mono);
                new_until = Some(new_until.map_or(end, |u| u.max(end)));
                dating
            }
            Place::Between => {
                let floor = EARLIEST_SERVER_MS.saturating_sub(k.min_mono);
                let lo = lows[i].unwrap_or(floor).max(floor);
                let hi = highs[i];
                if hi < lo {
                    // The evidence disagrees (a neighbour's clock was wrong yet
                    // possible): the upper bound at least never dates into the future.
                    RunDating::Boot(Anchor {
                        boot_ms: hi,
                        uncertainty_ms: lo - hi,
                    })
                } else if hi - lo > MAX_TOLD_INTERVAL_MS {
                    RunDating::Undated
                } else {
                    RunDating::Boot(Anchor {
                        boot_ms: lo + (hi - lo) / 2,
                        uncertainty_ms: (hi - lo) / 2,
                    })
                }
            }
        };
        out.datings.insert(k.run, dating);
        if entry.stored
            && let Some(before) = previous.get(&k.run)
            && before.dating != dating
        {
            out.redate.push((k.run, dating, before.records.clone()));
        }
        k.dating = dating;
        // What is kept: the latest run unless an anchor dates it (an anchor or a later
        // batch may still date it better); a run dated by estimate while it can still
        // move, with its records; else a settled row, without records, for estimates
        // only (a late revision of one of its sessions is dated the same way).
        let is_latest = Some(i) == last;
        let anchored = matches!(dating, RunDating::Anchored(_));
        let estimated = matches!(places[i], Place::Between);
        let can_move = is_latest
            || (estimated && !has_fixed_after[i] && lows[i].is_some() && {
                open_estimates += 1;
                open_estimates <= MAX_OPEN_RUNS
            });
        if anchored || (!estimated && !is_latest) {
            if entry.stored {
                out.forget.push(k.run);
            }
            continue;
        }
        k.open = can_move;
        if !can_move {
            k.records.clear();
        }
        if previous.get(&k.run) != Some(k) {
            out.keep.push(k.clone());
        }
    }
    out.keep.reverse();
    if new_until != dated_until {
        out.dated_until = new_until;
    }

    // Settled kept runs the batch touches keep their dating; the other runs of the batch
    // (a run of a session's revision alone, a batch sent again) are dated by their own
    // evidence. (Every run with new pc events was placed above.)
    for k in &settled {
        out.datings.insert(k.run, k.dating);
    }
    for e in evidence {
        if out.datings.contains_key(&e.run) {
            continue;
        }
        let alone = KeptRun::from_evidence(e, 0);
        let dating = match fixed(anchor_of(&e.run), &alone, offset, received_ms) {
            Some(Place::Fixed { dating, .. }) => dating,
            _ if by_offset(&alone, offset, received_ms).is_some() => RunDating::OwnClock,
            _ => RunDating::Undated,
        };
        out.datings.insert(e.run, dating);
    }
    out
}

#[cfg(test)]
mod tests;
