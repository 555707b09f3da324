//! What every backend does to a batch before and while storing it, without any IO: the
//! checks that refuse a whole batch (identity, shape, numbers the store cannot hold),
//! the per-record validation, the conversion of records into the compact form the store
//! keeps, and the clock correction.
//!
//! Preparing happens on the caller's task, in parallel with other batches; the backend's
//! single writer then only looks up and writes.

use std::collections::HashMap;

use jejak_domain::{
    BatchRecord, ClientInstant, ClockAnchor, Lang, PatronKey, RecordBody, RejectedRecord,
    TimeQuality, WireBatch,
};
use uuid::Uuid;

use crate::codes;
use crate::store::{Delivery, DeviceRef, IngestError};

/// Rejection code of a record that breaks a domain rule.
pub const REJECT_INVALID: &str = "invalid";
/// Rejection code of a record whose id is stored with different content at the same
/// revision. A record's key is its PC and its id, on both backends.
pub const REJECT_CONFLICT: &str = "conflict";
/// Rejection code of a record older than the server keeps raw records (`jejak server
/// prune`): its month's rollups are final, so it is refused rather than counted twice
/// or lost silently; the PC keeps it and shows it.
pub const REJECT_BEYOND_RETENTION: &str = "beyond-retention";

/// A PC opens a new epoch (a change log starting again at seq 1) only when its store was
/// damaged and replaced: rare. At most this many new epochs of one device are taken in
/// [`NEW_EPOCH_WINDOW_MS`]; past it a batch of yet another new epoch is refused (429,
/// `Retry-After`), so a leaked or buggy token cannot pour unlimited "fresh" change logs
/// in. Every new epoch is logged, and the operations view counts them per PC.
pub const MAX_NEW_EPOCHS: usize = 3;
/// The window of [`MAX_NEW_EPOCHS`]: a day.
pub const NEW_EPOCH_WINDOW_MS: i64 = 86_400_000;

/// Decides on a batch that opens a new epoch, given when the device's epochs opened
/// within the last [`NEW_EPOCH_WINDOW_MS`] (any order): refused when there are
/// [`MAX_NEW_EPOCHS`] already, with the seconds until the oldest leaves the window.
pub(crate) fn check_new_epoch(
    device: crate::store::DeviceId,
    recent_opened_ms: &[i64],
    received_ms: i64,
) -> Result<(), IngestError> {
    if recent_opened_ms.len() >= MAX_NEW_EPOCHS {
        let oldest = recent_opened_ms
            .iter()
            .copied()
            .min()
            .unwrap_or(received_ms);
        let retry_after_s = ((oldest + NEW_EPOCH_WINDOW_MS - received_ms) / 1000).max(60);
        tracing::warn!(
            device = device.0,
            opened = recent_opened_ms.len(),
            "a new epoch was refused: this PC opened too many in a day"
        );
        return Err(IngestError::TooManyEpochs {
            opened: recent_opened_ms.len(),
            retry_after_s: u64::try_from(retry_after_s).unwrap_or(60),
        });
    }
    if recent_opened_ms.is_empty() {
        tracing::info!(device = device.0, "a PC opened a new epoch");
    } else {
        tracing::warn!(
            device = device.0,
            opened_today = recent_opened_ms.len() + 1,
            "a PC opened another new epoch (its store started again at seq 1)"
        );
    }
    Ok(())
}

/// No anchor is believed whose server time lies before this (2024-01-01 UTC): the
/// server's clock never read such a time for this software.
const EARLIEST_ANCHOR_MS: i64 = 1_704_067_200_000;
/// An anchor may lie this far in the future of the arrival time (clock steps on the
/// server between the probe and the batch) before it is ignored.
const ANCHOR_FUTURE_SLACK_MS: i64 = 60_000;
/// Anchors measured over a round trip this slow are too vague to date anything.
const MAX_ANCHOR_UNCERTAINTY_MS: i64 = 3_600_000;
/// A corrected time this far in the future of the arrival is not an honest rounding
/// error: it is clamped *and* flagged `estimated`. Smaller excesses (within the
/// anchor's uncertainty) are only clamped.
const FUTURE_TOLERANCE_MS: i64 = 2_000;

/// Where a run's monotonic clock stands on the server's clock: it read zero at server
/// time `boot_ms`, give or take `uncertainty_ms`. An anchor (`at mono m the server read
/// t`) says exactly this with `boot_ms = t - m`; kept in this form, one number dates
/// every record of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Anchor {
    pub boot_ms: i64,
    pub uncertainty_ms: i64,
}

impl Anchor {
    /// The server time of a monotonic reading of the run (saturating: a hostile number
    /// must not panic the writer).
    pub fn server_time_of(&self, mono_ms: i64) -> i64 {
        self.boot_ms.saturating_add(mono_ms)
    }

    /// Whether this anchor dates the run better than `other`.
    pub fn better_than(&self, other: Option<&Anchor>) -> bool {
        other.is_none_or(|o| self.uncertainty_ms < o.uncertainty_ms)
    }
}

/// The PC wall clock's offset: server time minus PC wall time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WallOffset {
    pub ms: i64,
    /// `None` when estimated from a send time alone (no round trip measured).
    pub uncertainty_ms: Option<i64>,
}

/// The client-given fields of a session the server keeps, which decide "same content":
/// everything the PC sent except the id (the key), the patron key (compared through its
/// stored number by the backend) and the run and monotonic start (used to date the
/// session, not kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionFields {
    pub revision: i64,
    pub raw_start_ms: i64,
    pub duration_s: i64,
    pub end_reason: Option<i64>,
    pub user_kind: i64,
    pub purposes: i64,
    pub gender: i64,
    pub age_group: i64,
    pub group_size: i64,
    pub rx_kib: i64,
    pub tx_kib: i64,
    /// Seconds of the session without a link (duration minus online seconds): stored
    /// instead of the online seconds because it is usually near zero, and zero costs
    /// no bytes.
    pub offline_s: i64,
    pub client_quality: i64,
}

/// A session ready for the writer.
#[derive(Debug, Clone)]
pub(crate) struct PreparedSession {
    pub seq: u64,
    pub id: Uuid,
    pub run: Uuid,
    /// The patron key as its 32 bytes (the hex text costs twice as much).
    pub patron: Option<[u8; 32]>,
    /// Monotonic ms of the run at the start.
    pub mono_ms: i64,
    pub fields: SessionFields,
}

/// The client-given fields of a pc event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EventFields {
    pub kind: i64,
    pub raw_at_ms: i64,
    pub clock_delta_ms: Option<i64>,
}

/// A pc event ready for the writer.
#[derive(Debug, Clone)]
pub(crate) struct PreparedEvent {
    pub seq: u64,
    pub id: Uuid,
    pub run: Uuid,
    pub mono_ms: i64,
    pub fields: EventFields,
}

/// One record of a batch, in seq order.
#[derive(Debug, Clone)]
pub(crate) enum PreparedRecord {
    Session(PreparedSession),
    Event(PreparedEvent),
    /// Refused before the store was asked (a broken domain rule): stored in the
    /// rejected table and reported; it does not hold the batch back.
    Invalid {
        seq: u64,
        id: Uuid,
        detail: String,
    },
}

/// A batch checked and converted, ready for the writer.
#[derive(Debug, Clone)]
pub(crate) struct PreparedBatch {
    pub batch_id: Uuid,
    pub epoch: Uuid,
    pub first_seq: i64,
    pub last_seq: i64,
    pub sent: ClientInstant,
    pub delivery: Delivery,
    /// The runs the records use, in first-use order.
    pub runs: Vec<Uuid>,
    /// Usable anchors, the best per run.
    pub anchors: HashMap<Uuid, Anchor>,
    /// Anchors that were ignored as implausible (logged as a count).
    pub ignored_anchors: usize,
    pub records: Vec<PreparedRecord>,
    pub sessions: usize,
    pub events: usize,
    /// Seq ranges the PC declared lost (pruned before the server lost them).
    pub lost: Vec<LostSeqs>,
    /// Estimated boots of the batch's runs whose wall clock cannot be believed and that
    /// have no anchor in the batch ([`estimate_boots`]); an anchor stored earlier wins.
    pub estimates: HashMap<Uuid, Anchor>,
}

/// A lost seq range, in the store's integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LostSeqs {
    pub first_seq: i64,
    pub last_seq: i64,
}

fn to_i64(value: u64) -> Option<i64> {
    i64::try_from(value).ok()
}

/// Checks an anchor the client sent back: the server read `server_ms` itself, but the
/// PC carries it, so a broken or hostile client could send anything.
pub(crate) fn usable_anchor(anchor: &ClockAnchor, received_ms: i64) -> Option<Anchor> {
    let mono_ms = to_i64(anchor.mono_ms)?;
    let uncertainty_ms = to_i64(anchor.uncertainty_ms)?;
    let plausible = anchor.server_ms >= EARLIEST_ANCHOR_MS
        && anchor.server_ms <= received_ms.saturating_add(ANCHOR_FUTURE_SLACK_MS)
        && uncertainty_ms <= MAX_ANCHOR_UNCERTAINTY_MS;
    plausible.then_some(Anchor {
        boot_ms: anchor.server_ms.saturating_sub(mono_ms),
        uncertainty_ms,
    })
}

/// Checks a batch against its token and converts it. Refuses the whole batch (nothing
/// is written) when it names another device, cannot be read, or carries a seq the
/// store cannot hold; a record that breaks a domain rule is only marked invalid.
pub(crate) fn prepare(
    device: &DeviceRef,
    batch: WireBatch,
    received_ms: i64,
    delivery: Delivery,
) -> Result<PreparedBatch, IngestError> {
    // Identity comes from the token: a payload naming another library or PC is refused
    // before anything else is looked at.
    if batch.library != device.library || batch.pc != device.pc {
        return Err(IngestError::WrongDevice {
            device: device.to_string(),
            claimed_library: batch.library,
            claimed_pc: batch.pc,
        });
    }
    let decoded = batch.decode()?;
    let (Some(first_seq), Some(last_seq)) = (to_i64(batch.first_seq), to_i64(batch.last_seq))
    else {
        return Err(IngestError::OutOfRange(format!(
            "seq {} is beyond what the server can store",
            batch.last_seq
        )));
    };
    let lost = batch
        .lost
        .iter()
        .map(|r| match (to_i64(r.first), to_i64(r.last)) {
            (Some(first_seq), Some(last_seq)) => Ok(LostSeqs {
                first_seq,
                last_seq,
            }),
            _ => Err(IngestError::OutOfRange(format!(
                "lost seq {} is beyond what the server can store",
                r.last
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut anchors: HashMap<Uuid, Anchor> = HashMap::new();
    let mut ignored_anchors = 0;
    for anchor in &batch.anchors {
        match usable_anchor(anchor, received_ms) {
            Some(a) => {
                if a.better_than(anchors.get(&anchor.run)) {
                    anchors.insert(anchor.run, a);
                }
            }
            None => ignored_anchors += 1,
        }
    }
    let mut runs: Vec<Uuid> = Vec::new();
    let mut records = Vec::with_capacity(decoded.len());
    let (mut sessions, mut events) = (0, 0);
    for BatchRecord { seq, body } in decoded {
        let id = body.record_id();
        if let Err(e) = body.validate() {
            records.push(PreparedRecord::Invalid {
                seq,
                id,
                detail: e.message(Lang::En),
            });
            continue;
        }
        let run = match &body {
            RecordBody::Session(s) => s.run_id,
            RecordBody::PcEvent(e) => e.run_id,
        };
        let converted = match body {
            RecordBody::Session(s) => session_fields(&s).map(|(mono_ms, fields, patron)| {
                PreparedRecord::Session(PreparedSession {
                    seq,
                    id,
                    run,
                    patron,
                    mono_ms,
                    fields,
                })
            }),
            RecordBody::PcEvent(e) => to_i64(e.mono_ms).map(|mono_ms| {
                PreparedRecord::Event(PreparedEvent {
                    seq,
                    id,
                    run,
                    mono_ms,
                    fields: EventFields {
                        kind: codes::event_kind_code(e.kind),
                        raw_at_ms: e.at.timestamp_millis(),
                        clock_delta_ms: e.clock_delta_ms,
                    },
                })
            }),
        };
        match converted {
            Some(record) => {
                match &record {
                    PreparedRecord::Session(_) => sessions += 1,
                    PreparedRecord::Event(_) => events += 1,
                    PreparedRecord::Invalid { .. } => {}
                }
                if !runs.contains(&run) {
                    runs.push(run);
                }
                records.push(record);
            }
            None => records.push(out_of_range(seq, id)),
        }
    }
    let estimates = estimate_boots(&records, &anchors, received_ms);
    Ok(PreparedBatch {
        batch_id: batch.batch_id,
        epoch: batch.epoch,
        first_seq,
        last_seq,
        sent: batch.sent,
        delivery,
        runs,
        anchors,
        ignored_anchors,
        records,
        sessions,
        events,
        lost,
        estimates,
    })
}

/// Whether a wall time can be right: not before this software's time (2024), not in
/// the future of the arrival.
fn plausible_ms(ms: i64, received_ms: i64) -> bool {
    ms >= EARLIEST_ANCHOR_MS && ms <= received_ms.saturating_add(ANCHOR_FUTURE_SLACK_MS)
}

/// A run as one batch shows it: the seqs, monotonic readings and wall readings of its
/// records.
#[derive(Debug, Clone)]
struct RunSpan {
    run: Uuid,
    min_mono: i64,
    max_mono: i64,
    /// Some wall reading of the run is impossible (before 2024, or after the arrival):
    /// a dead CMOS battery's 2000, or a clock years ahead.
    implausible: bool,
    /// The plausible wall reading with the highest monotonic time (raw ms, mono ms):
    /// after the clock was set right, if it was.
    latest_plausible: Option<(i64, i64)>,
}

/// Where the runs of a batch stand on the server's clock when their wall clock cannot
/// be believed and no anchor dates them, from the rest of the batch's evidence:
///
/// 1. the run's own latest plausible wall reading (the clock was set right during the
///    run: a librarian fixing a reset clock leaves a `clock_jump`, and every reading
///    after it is true): the run booted at that reading less its monotonic time;
/// 2. otherwise its neighbours in seq order (a run that starts after another ends after
///    it): it booted after the previous dated run's last record, less its own first
///    monotonic reading, and before the next dated run's first record (or the arrival,
///    an upper bound for everything, a USB bundle's import included), less its last
///    reading. The estimate is the middle of that interval, and its half width its
///    uncertainty; without a lower bound it is the upper bound.
///
/// Runs with a believable wall clock are left to the PC's measured offset, and runs
/// with an anchor to the anchor.
pub(crate) fn estimate_boots(
    records: &[PreparedRecord],
    anchors: &HashMap<Uuid, Anchor>,
    received_ms: i64,
) -> HashMap<Uuid, Anchor> {
    let plausible = |raw: i64| plausible_ms(raw, received_ms);
    let mut spans: Vec<RunSpan> = Vec::new();
    for record in records {
        let (run, mono, raw) = match record {
            PreparedRecord::Session(s) => (s.run, s.mono_ms, s.fields.raw_start_ms),
            PreparedRecord::Event(e) => (e.run, e.mono_ms, e.fields.raw_at_ms),
            PreparedRecord::Invalid { .. } => continue,
        };
        let index = match spans.iter().position(|span| span.run == run) {
            Some(index) => index,
            None => {
                spans.push(RunSpan {
                    run,
                    min_mono: mono,
                    max_mono: mono,
                    implausible: false,
                    latest_plausible: None,
                });
                spans.len() - 1
            }
        };
        let span = &mut spans[index];
        span.min_mono = span.min_mono.min(mono);
        span.max_mono = span.max_mono.max(mono);
        if plausible(raw) {
            if span.latest_plausible.is_none_or(|(_, m)| mono >= m) {
                span.latest_plausible = Some((raw, mono));
            }
        } else {
            span.implausible = true;
        }
    }
    // Each run's boot where the batch tells it: its anchor, or its own plausible
    // readings (also for runs whose clock was right throughout: they bound neighbours).
    let known: Vec<Option<i64>> = spans
        .iter()
        .map(|span| match anchors.get(&span.run) {
            Some(a) => Some(a.boot_ms),
            None => span
                .latest_plausible
                .map(|(raw, mono)| raw.saturating_sub(mono)),
        })
        .collect();
    let mut estimates = HashMap::new();
    for (i, span) in spans.iter().enumerate() {
        if !span.implausible || anchors.contains_key(&span.run) {
            continue;
        }
        if let Some(boot) = known[i] {
            // From the run's own clock once set right: no uncertainty beyond the PC's
            // offset, which `date` leaves aside for it.
            estimates.insert(
                span.run,
                Anchor {
                    boot_ms: boot,
                    uncertainty_ms: 0,
                },
            );
            continue;
        }
        let lower = (0..i).rev().find_map(|j| {
            known[j].map(|boot| {
                boot.saturating_add(spans[j].max_mono)
                    .saturating_sub(span.min_mono)
            })
        });
        let upper = (i + 1..spans.len())
            .find_map(|j| {
                known[j].map(|boot| {
                    boot.saturating_add(spans[j].min_mono)
                        .saturating_sub(span.max_mono)
                })
            })
            .unwrap_or(received_ms.saturating_sub(span.max_mono));
        let (boot_ms, uncertainty_ms) = match lower {
            Some(lower) if lower <= upper => (lower + (upper - lower) / 2, (upper - lower) / 2),
            // No lower bound, or contradicting ones (a neighbour itself misdated): the
            // upper bound, which at least never dates a record in the future.
            _ => (upper, i64::MAX),
        };
        estimates.insert(
            span.run,
            Anchor {
                boot_ms,
                uncertainty_ms,
            },
        );
    }
    estimates
}

fn out_of_range(seq: u64, id: Uuid) -> PreparedRecord {
    PreparedRecord::Invalid {
        seq,
        id,
        detail: "a number is out of the range the server stores".into(),
    }
}

/// The monotonic start and the stored form of a session's client-given fields; `None`
/// if a number does not fit.
type SessionParts = (i64, SessionFields, Option<[u8; 32]>);

fn session_fields(s: &jejak_domain::Session) -> Option<SessionParts> {
    let p = &s.patron;
    let duration_s = to_i64(s.duration_secs)?;
    let fields = SessionFields {
        revision: i64::from(s.revision),
        raw_start_ms: s.started_at.timestamp_millis(),
        duration_s,
        end_reason: s.end_reason.map(codes::end_reason_code),
        user_kind: codes::user_kind_code(p.user_kind),
        purposes: codes::purposes_mask(&p.purposes),
        gender: codes::gender_code(p.gender),
        age_group: codes::age_group_code(p.age_group),
        group_size: i64::from(p.group_size),
        // The wire carries kibibytes; `decode` multiplied them by 1024, so this is exact.
        rx_kib: to_i64(s.bytes_rx / 1024)?,
        tx_kib: to_i64(s.bytes_tx / 1024)?,
        offline_s: duration_s.checked_sub(to_i64(s.online_secs)?)?,
        client_quality: codes::time_quality_code(s.time_quality),
    };
    Some((
        to_i64(s.started_mono_ms)?,
        fields,
        p.patron_key.as_ref().map(key_bytes),
    ))
}

/// A patron key's 32 bytes. `PatronKey` guarantees 64 lowercase hex digits.
pub(crate) fn key_bytes(key: &PatronKey) -> [u8; 32] {
    let mut out = [0u8; 32];
    // A PatronKey is always valid hex of the right length; should that ever change, an
    // all-zero key is stored rather than a panic in the writer.
    let _ = hex::decode_to_slice(key.as_str(), &mut out);
    out
}

/// The offset this batch itself establishes for the PC's wall clock: exactly, when its
/// send instant's run has an anchor; roughly (arrival minus send time, so the one-way
/// transit is included) for an online batch without one; not at all for a carried one.
pub(crate) fn batch_offset(
    sent: &ClientInstant,
    sent_anchor: Option<&Anchor>,
    received_ms: i64,
    delivery: Delivery,
) -> Option<WallOffset> {
    match (sent_anchor, to_i64(sent.mono_ms)) {
        (Some(anchor), Some(mono)) => Some(WallOffset {
            ms: anchor.server_time_of(mono).saturating_sub(sent.wall_ms),
            uncertainty_ms: Some(anchor.uncertainty_ms),
        }),
        _ if delivery == Delivery::Online => Some(WallOffset {
            ms: received_ms.saturating_sub(sent.wall_ms),
            uncertainty_ms: None,
        }),
        _ => None,
    }
}

/// A record's corrected time and how far to trust it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dated {
    /// Corrected start (or instant), Unix ms by the server's clock.
    pub ms: i64,
    pub quality: TimeQuality,
}

/// What is known of where a run's monotonic clock stands on the server's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunTime<'a> {
    /// Measured against the server (an anchor): records are `corrected`.
    Anchored(&'a Anchor),
    /// Estimated from other evidence ([`estimate_boots`]): records are `estimated`.
    Estimated(&'a Anchor),
    /// Nothing beyond the PC's own wall clock.
    Unknown,
}

impl<'a> RunTime<'a> {
    /// The run's time from a measured anchor, else from an estimate.
    pub fn of(anchor: Option<&'a Anchor>, estimate: Option<&'a Anchor>) -> RunTime<'a> {
        match (anchor, estimate) {
            (Some(a), _) => RunTime::Anchored(a),
            (None, Some(e)) => RunTime::Estimated(e),
            (None, None) => RunTime::Unknown,
        }
    }
}

/// Dates a record: from its run's anchor when there is one (`corrected`, unless the PC
/// itself called the time `estimated`), else from the run's estimated boot, else its
/// raw wall time moved by the PC's latest known offset (both `estimated`). A record
/// whose end (`start + span_ms`) would lie after `now_ms` is pulled back to end at
/// `now_ms`, and flagged `estimated` when the excess is more than a rounding error.
pub(crate) fn date(
    raw_ms: i64,
    mono_ms: i64,
    span_ms: i64,
    client_quality: TimeQuality,
    run: RunTime<'_>,
    offset: Option<&WallOffset>,
    now_ms: i64,
) -> Dated {
    let (mut ms, mut quality, tolerance) = match run {
        RunTime::Anchored(a) => (
            a.server_time_of(mono_ms),
            if client_quality == TimeQuality::Estimated {
                TimeQuality::Estimated
            } else {
                TimeQuality::Corrected
            },
            FUTURE_TOLERANCE_MS.max(a.uncertainty_ms),
        ),
        RunTime::Estimated(e) => {
            // The PC's measured offset dates a clock that is consistently wrong more
            // closely than neighbours do, as long as it puts the record at a possible
            // time; an estimate from the run's own clock set right (no uncertainty)
            // is exact for the whole run.
            let by_offset = offset
                .map(|o| raw_ms.saturating_add(o.ms))
                .filter(|ms| plausible_ms(*ms, now_ms));
            let ms = match by_offset {
                Some(ms) if e.uncertainty_ms > 0 => ms,
                _ => e.server_time_of(mono_ms),
            };
            (ms, TimeQuality::Estimated, FUTURE_TOLERANCE_MS)
        }
        RunTime::Unknown => (
            raw_ms.saturating_add(offset.map_or(0, |o| o.ms)),
            TimeQuality::Estimated,
            FUTURE_TOLERANCE_MS,
        ),
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

/// A record refused with a reason, as the answer lists it.
pub(crate) fn rejected(seq: u64, code: &str, detail: impl Into<String>) -> RejectedRecord {
    RejectedRecord {
        seq,
        code: code.to_string(),
        detail: detail.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_790_000_000_000;

    fn anchor(mono: i64, server: i64, unc: i64) -> Anchor {
        Anchor {
            boot_ms: server - mono,
            uncertainty_ms: unc,
        }
    }

    #[test]
    fn an_anchor_dates_a_record_whatever_the_wall_clock_said() {
        let a = anchor(10_000_000, NOW - 1_000, 150);
        // Started 2 hours of monotonic time before the anchor, on a clock 3 years behind.
        let raw = NOW - 3 * 365 * 86_400_000;
        let d = date(
            raw,
            10_000_000 - 7_200_000,
            1_800_000,
            TimeQuality::Estimated,
            RunTime::Anchored(&a),
            None,
            NOW,
        );
        assert_eq!(d.ms, NOW - 1_000 - 7_200_000);
        assert_eq!(
            d.quality,
            TimeQuality::Estimated,
            "the PC's own doubt stays"
        );
        let d = date(
            raw,
            9_000_000,
            0,
            TimeQuality::Trusted,
            RunTime::Anchored(&a),
            None,
            NOW,
        );
        assert_eq!(d.quality, TimeQuality::Corrected);
    }

    #[test]
    fn without_an_anchor_the_offset_applies_and_the_time_is_estimated() {
        let off = WallOffset {
            ms: 60_000,
            uncertainty_ms: None,
        };
        let d = date(
            NOW - 3_600_000,
            5,
            0,
            TimeQuality::Trusted,
            RunTime::Unknown,
            Some(&off),
            NOW,
        );
        assert_eq!(d.ms, NOW - 3_540_000);
        assert_eq!(d.quality, TimeQuality::Estimated);
        let d = date(
            NOW - 10,
            5,
            0,
            TimeQuality::Trusted,
            RunTime::Unknown,
            None,
            NOW,
        );
        assert_eq!(d.ms, NOW - 10);
    }

    #[test]
    fn future_times_are_clamped_and_flagged() {
        // A clock one day ahead with no offset known: the session would end tomorrow.
        let d = date(
            NOW + 86_400_000,
            5,
            600_000,
            TimeQuality::Trusted,
            RunTime::Unknown,
            None,
            NOW,
        );
        assert_eq!(d.ms, NOW - 600_000);
        assert_eq!(d.quality, TimeQuality::Estimated);
        // Within the anchor's uncertainty: clamped, still corrected.
        let a = anchor(1_000, NOW, 500);
        let d = date(
            0,
            1_300,
            0,
            TimeQuality::Trusted,
            RunTime::Anchored(&a),
            None,
            NOW,
        );
        assert_eq!((d.ms, d.quality), (NOW, TimeQuality::Corrected));
    }

    #[test]
    fn hostile_numbers_saturate_instead_of_panicking() {
        let a = Anchor {
            boot_ms: i64::MAX - 5,
            uncertainty_ms: 0,
        };
        let d = date(
            i64::MIN,
            i64::MAX,
            i64::MAX,
            TimeQuality::Trusted,
            RunTime::Anchored(&a),
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
            RunTime::Unknown,
            Some(&off),
            NOW,
        );
    }

    #[test]
    fn implausible_anchors_are_ignored() {
        let run = Uuid::nil();
        let good = ClockAnchor {
            run,
            mono_ms: 5,
            server_ms: NOW - 10,
            uncertainty_ms: 40,
        };
        assert!(usable_anchor(&good, NOW).is_some());
        for bad in [
            ClockAnchor {
                server_ms: NOW + 3_600_000,
                ..good
            },
            ClockAnchor {
                server_ms: 946_684_800_000,
                ..good
            },
            ClockAnchor {
                mono_ms: u64::MAX,
                ..good
            },
            ClockAnchor {
                uncertainty_ms: 86_400_000,
                ..good
            },
        ] {
            assert!(usable_anchor(&bad, NOW).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn the_send_instant_gives_the_offset() {
        let run = Uuid::nil();
        let sent = ClientInstant {
            run,
            mono_ms: 2_000,
            wall_ms: NOW - 100_000,
        };
        let a = anchor(1_000, NOW - 1_000, 30);
        let o = batch_offset(&sent, Some(&a), NOW, Delivery::Online).unwrap();
        assert_eq!((o.ms, o.uncertainty_ms), (100_000, Some(30)));
        let o = batch_offset(&sent, None, NOW, Delivery::Online).unwrap();
        assert_eq!((o.ms, o.uncertainty_ms), (100_000, None));
        assert!(batch_offset(&sent, None, NOW, Delivery::Carried).is_none());
    }

    /// A session of `run` at monotonic `mono` whose PC wall clock read `raw`.
    fn record(seq: u64, run: Uuid, mono: i64, raw: i64) -> PreparedRecord {
        PreparedRecord::Session(PreparedSession {
            seq,
            id: Uuid::from_u64_pair(seq, 7),
            run,
            patron: None,
            mono_ms: mono,
            fields: SessionFields {
                revision: 1,
                raw_start_ms: raw,
                duration_s: 600,
                end_reason: None,
                user_kind: 0,
                purposes: 1,
                gender: 0,
                age_group: 0,
                group_size: 1,
                rx_kib: 0,
                tx_kib: 0,
                offline_s: 0,
                client_quality: 0,
            },
        })
    }

    const Y2000: i64 = 946_684_800_000;
    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 86_400_000;

    fn dated(run: RunTime<'_>, raw: i64, mono: i64, offset: Option<&WallOffset>) -> i64 {
        date(raw, mono, 0, TimeQuality::Trusted, run, offset, NOW).ms
    }

    #[test]
    fn a_clock_reset_to_2000_and_set_right_at_noon_dates_the_whole_run() {
        let run = Uuid::from_u64_pair(1, 1);
        let boot = NOW - 10 * HOUR;
        let records = [
            record(1, run, HOUR, Y2000 + HOUR),
            record(2, run, 3 * HOUR, Y2000 + 3 * HOUR),
            // Set right: the readings from here on are true.
            record(3, run, 6 * HOUR, boot + 6 * HOUR),
        ];
        let estimates = estimate_boots(&records, &HashMap::new(), NOW);
        let e = estimates.get(&run).expect("an estimate");
        assert_eq!(e.boot_ms, boot);
        let at = dated(RunTime::Estimated(e), Y2000 + HOUR, HOUR, None);
        assert_eq!(at, boot + HOUR);
        // A measured offset does not pull the morning back to 2000.
        let off = WallOffset {
            ms: 0,
            uncertainty_ms: Some(20),
        };
        assert_eq!(
            dated(RunTime::Estimated(e), Y2000 + HOUR, HOUR, Some(&off)),
            boot + HOUR
        );
    }

    #[test]
    fn a_run_that_never_had_a_right_clock_lies_between_its_neighbours() {
        let (before, lost, after) = (
            Uuid::from_u64_pair(2, 1),
            Uuid::from_u64_pair(2, 2),
            Uuid::from_u64_pair(2, 3),
        );
        let day = NOW - 10 * DAY;
        let records = [
            record(1, before, HOUR, day + HOUR),
            record(2, before, 8 * HOUR, day + 8 * HOUR),
            // The next day, the clock reads 2000 all day (power cut before noon).
            record(3, lost, HOUR, Y2000 + HOUR),
            record(4, lost, 2 * HOUR, Y2000 + 2 * HOUR),
            record(5, after, HOUR, day + 2 * DAY + HOUR),
        ];
        let estimates = estimate_boots(&records, &HashMap::new(), NOW);
        assert_eq!(estimates.len(), 1, "only the run with an impossible clock");
        let e = estimates[&lost];
        let start = dated(RunTime::Estimated(&e), Y2000 + HOUR, HOUR, None);
        assert!(
            start > day + 8 * HOUR && start < day + 2 * DAY + HOUR,
            "{start}"
        );
        assert_eq!(
            e.uncertainty_ms,
            (2 * DAY + HOUR - 2 * HOUR - (8 * HOUR - HOUR)) / 2
        );

        // With nothing after it, the arrival bounds it: never in the future.
        let alone = [record(1, lost, HOUR, Y2000 + HOUR)];
        let e = estimate_boots(&alone, &HashMap::new(), NOW)[&lost];
        assert_eq!(e.boot_ms, NOW - HOUR);
    }

    #[test]
    fn anchored_and_believable_runs_get_no_estimate() {
        let (anchored, right) = (Uuid::from_u64_pair(3, 1), Uuid::from_u64_pair(3, 2));
        let records = [
            record(1, anchored, HOUR, Y2000),
            record(2, right, HOUR, NOW - DAY),
        ];
        let anchors = HashMap::from([(anchored, anchor(HOUR, NOW - 2 * DAY, 50))]);
        assert!(estimate_boots(&records, &anchors, NOW).is_empty());
    }

    proptest::proptest! {
        /// Random days of one PC (one run a day, boots at random hours), each run's
        /// clock right, reset to 2000 and set right later, reset and never set right, or
        /// years ahead, all arriving in one batch (a USB bundle) at a random time after:
        /// every record is dated somewhere possible (none in 2000, none in the future),
        /// and a record of a run that was never dated by its own clock lands in its true
        /// month whenever both neighbouring dated runs lie in that same month (the
        /// evidence bounds it within the month). A run with a clock set right is exact.
        #[test]
        fn records_land_in_the_month_their_evidence_bounds(
            days in proptest::collection::vec((0i64..10, 0u8..4, 1usize..4), 3..40),
            late_days in 0i64..20,
        ) {
            let first_day = NOW - 120 * DAY;
            let mut records = Vec::new();
            let mut truth = Vec::new();
            let mut kinds = Vec::new();
            let mut seq = 0;
            for (i, (boot_hour, clock, count)) in days.iter().enumerate() {
                let run = Uuid::from_u64_pair(9, i as u64);
                let boot = first_day + i as i64 * 3 * DAY + boot_hour * HOUR;
                for k in 0..*count {
                    seq += 1;
                    let mono = (k as i64 + 1) * HOUR;
                    let true_ms = boot + mono;
                    let raw = match clock {
                        0 => true_ms,
                        1 if k + 1 == *count && *count > 1 => true_ms,
                        1 | 2 => Y2000 + mono,
                        _ => true_ms + 5 * 365 * DAY,
                    };
                    records.push(record(seq, run, mono, raw));
                    truth.push((run, mono, raw, true_ms));
                }
                kinds.push((run, *clock == 0 || (*clock == 1 && *count > 1)));
            }
            let arrival = first_day + (days.len() as i64 * 3 + late_days) * DAY;
            let estimates = estimate_boots(&records, &HashMap::new(), arrival);
            let month = |ms: i64| {
                let d = chrono::DateTime::from_timestamp_millis(ms).unwrap();
                (chrono::Datelike::year(&d), chrono::Datelike::month(&d))
            };
            for (index, (run, mono, raw, true_ms)) in truth.iter().enumerate() {
                let run_time = RunTime::of(None, estimates.get(run));
                let at = date(*raw, *mono, 0, TimeQuality::Trusted, run_time, None, arrival).ms;
                proptest::prop_assert!(at >= EARLIEST_ANCHOR_MS && at <= arrival, "{at}");
                let self_dated = kinds.iter().any(|(r, ok)| r == run && *ok);
                if self_dated {
                    proptest::prop_assert_eq!(at, *true_ms);
                    continue;
                }
                let run_index = kinds.iter().position(|(r, _)| r == run).unwrap();
                let previous = kinds[..run_index].iter().rposition(|(_, ok)| *ok);
                let next = kinds[run_index + 1..].iter().position(|(_, ok)| *ok);
                if let (Some(p), Some(n)) = (previous, next) {
                    let first_of = |r: usize| truth.iter().find(|t| t.0 == kinds[r].0).unwrap().3;
                    let last_of = |r: usize| truth.iter().rev().find(|t| t.0 == kinds[r].0).unwrap().3;
                    let (lo, hi) = (last_of(p), first_of(run_index + 1 + n));
                    if month(lo) == month(hi) {
                        proptest::prop_assert_eq!(month(at), month(*true_ms), "record {}", index);
                    }
                }
            }
        }
    }
}
