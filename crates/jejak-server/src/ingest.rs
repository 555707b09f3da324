//! What every backend does to a batch before and while storing it, without any IO: the
//! checks that refuse a whole batch (identity, shape, numbers the store cannot hold),
//! the per-record validation, the conversion of records into the compact form the store
//! keeps, and the clock correction.
//!
//! [`ingest`] is the one flow every batch takes, whichever the backend: the batch is
//! prepared ([`prepare`]: identity, decoding, validation, conversion) on a blocking
//! thread, in parallel with other batches; the backend stores the prepared batch in one
//! transaction ([`ServerStore::store_batch`](crate::store::ServerStore::store_batch)),
//! deciding with the rules here ([`check_gap`], [`check_new_epoch`], [`batch_offset`],
//! [`PreparedBatch::plan_dating`], [`held_after`]); and the acknowledgement is built
//! from what it stored, after the commit. A backend only looks up and writes.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use jejak_domain::{
    BatchAck, BatchRecord, ClientInstant, ClockAnchor, ClockBound, EARLIEST_SERVER_MS, Lang,
    PatronKey, RecordBody, RejectedRecord, WireBatch,
};
use uuid::Uuid;

use crate::codes;
use crate::dating::{RunEvidence, RunRecord};
use crate::store::{Delivery, DeviceRef, IngestError, ServerStore, StoreError};

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

/// Stores one batch of `device` (see [`ServerStore::ingest`] for the contract): the one
/// ingest flow of both backends.
pub(crate) async fn ingest<S: ServerStore + ?Sized>(
    store: &S,
    device: &DeviceRef,
    batch: WireBatch,
    received_at: DateTime<Utc>,
    delivery: Delivery,
) -> Result<BatchAck, IngestError> {
    let (batch_id, epoch) = (batch.batch_id, batch.epoch);
    let received_ms = received_at.timestamp_millis();
    let owner = device.clone();
    // Decoding and converting a batch of thousands of records is CPU work: it runs on a
    // blocking thread, in parallel with other batches, so the store only looks up and
    // writes.
    let prepared =
        tokio::task::spawn_blocking(move || prepare(&owner, batch, received_ms, delivery))
            .await
            .map_err(|e| StoreError::Internal(format!("a preparation task failed: {e}")))??;
    if prepared.ignored_anchors > 0 {
        tracing::warn!(
            device = device.id.0,
            ignored = prepared.ignored_anchors,
            "clock anchors with implausible values were ignored"
        );
    }
    let (records, sessions, events) = (prepared.records.len(), prepared.sessions, prepared.events);
    let started = std::time::Instant::now();
    let outcome = store.store_batch(device, prepared, received_ms).await;
    match &outcome {
        Ok(o) => tracing::debug!(
            device = device.id.0,
            records,
            sessions,
            events,
            new = o.new,
            duplicates = o.duplicates,
            rejected = o.rejected.len(),
            held_seq = o.held_seq,
            micros = started.elapsed().as_micros() as u64,
            "batch stored"
        ),
        Err(e) => tracing::info!(device = device.id.0, records, error = %e, "batch refused"),
    }
    let outcome = outcome?;
    Ok(BatchAck {
        batch_id,
        epoch,
        held_seq: outcome.held_seq,
        new: outcome.new,
        duplicates: outcome.duplicates,
        rejected: outcome.rejected,
        received_at_ms: received_ms,
        sent_at_ms: store.now().timestamp_millis(),
    })
}

/// What storing one prepared batch did, before the answer is stamped with its send
/// time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestOutcome {
    pub(crate) held_seq: u64,
    pub(crate) new: u32,
    pub(crate) duplicates: u32,
    pub(crate) rejected: Vec<RejectedRecord>,
}

/// The gap check: a batch must start at or before the first seq the server lacks of its
/// epoch (`held_seq` is what the server holds, 0 for an epoch it has not seen).
pub(crate) fn check_gap(held_seq: i64, first_seq: i64) -> Result<(), IngestError> {
    if first_seq > held_seq.saturating_add(1) {
        return Err(IngestError::SeqGap {
            expected_seq: (held_seq as u64).saturating_add(1),
            first_seq: first_seq as u64,
        });
    }
    Ok(())
}

/// The epoch's held seq once a batch is stored: the batch covers its whole range
/// (superseded revisions were left out by the client), so it moves to its end.
pub(crate) fn held_after(held_seq: i64, batch: &PreparedBatch) -> i64 {
    held_seq.max(batch.last_seq)
}

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

/// An anchor may lie this far in the future of the arrival time (clock steps on the
/// server between the probe and the batch) before it is ignored.
const ANCHOR_FUTURE_SLACK_MS: i64 = 60_000;
/// Anchors measured over a round trip this slow are too vague to date anything.
const MAX_ANCHOR_UNCERTAINTY_MS: i64 = 3_600_000;

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
    /// A low-volume record (a visit, a member count): the generic `entries` path.
    Entry(crate::entries::PreparedEntry),
    /// Refused before the store was asked (a broken domain rule): stored in the
    /// rejected table and reported; it does not hold the batch back.
    Invalid {
        seq: u64,
        id: Uuid,
        detail: String,
    },
}

/// A batch checked and converted, ready for the store
/// ([`ServerStore::store_batch`](crate::store::ServerStore::store_batch)).
#[derive(Debug, Clone)]
pub struct PreparedBatch {
    pub(crate) batch_id: Uuid,
    pub(crate) epoch: Uuid,
    pub(crate) first_seq: i64,
    pub(crate) last_seq: i64,
    pub(crate) sent: ClientInstant,
    pub(crate) delivery: Delivery,
    /// The runs the records use, in first-use order.
    pub(crate) runs: Vec<Uuid>,
    /// Usable anchors, the best per run.
    pub(crate) anchors: HashMap<Uuid, Anchor>,
    /// Anchors that were ignored as implausible (logged as a count).
    pub(crate) ignored_anchors: usize,
    pub(crate) records: Vec<PreparedRecord>,
    pub(crate) sessions: usize,
    pub(crate) events: usize,
    /// The sending PC's code (the library-scoped tie rule compares PC codes).
    pub(crate) pc: String,
    /// Seq ranges the PC declared lost (pruned before the server lost them).
    pub(crate) lost: Vec<LostSeqs>,
    /// What the batch shows of each run it touches, in the order the runs first appear
    /// (for `dating::plan`).
    pub(crate) evidence: Vec<RunEvidence>,
    /// Lower bounds on runs' boots (server ms) from the batch's clock bounds, the
    /// tightest per run.
    pub(crate) not_before: HashMap<Uuid, i64>,
}

impl PreparedBatch {
    /// Every run whose anchor the batch's dating needs: the runs its records use, the
    /// runs it carries anchors for and the run it was sent in, sorted, each once.
    pub(crate) fn runs_wanted(&self) -> Vec<&Uuid> {
        let mut wanted: Vec<&Uuid> = self.runs.iter().chain(self.anchors.keys()).collect();
        wanted.push(&self.sent.run);
        wanted.sort();
        wanted.dedup();
        wanted
    }

    /// The PC's wall clock offset for records whose run has no anchor: what this batch
    /// establishes (`fresh`, see [`batch_offset`]; the store keeps it as the device's
    /// latest), else the latest the device established before (`stored`).
    pub(crate) fn fresh_offset(
        &self,
        anchors: &HashMap<Uuid, Option<Anchor>>,
        received_ms: i64,
    ) -> Option<WallOffset> {
        let sent_anchor = anchors.get(&self.sent.run).copied().flatten();
        batch_offset(&self.sent, sent_anchor.as_ref(), received_ms, self.delivery)
    }

    /// Dates the batch's runs with the PC's kept runs (`dating::plan`): `anchors` the best
    /// known per run, `held_seq` the epoch's before this batch, `offset` the PC's clock
    /// offset, `dated_until` the PC's stored one.
    pub(crate) fn plan_dating(
        &self,
        kept: Vec<crate::dating::KeptRun>,
        anchors: &HashMap<Uuid, Option<Anchor>>,
        held_seq: i64,
        offset: Option<WallOffset>,
        received_ms: i64,
        dated_until: Option<i64>,
    ) -> crate::dating::Plan {
        crate::dating::plan(
            kept,
            &self.evidence,
            &crate::dating::BatchClock {
                anchors,
                not_before: &self.not_before,
                sent: (
                    self.sent.run,
                    i64::try_from(self.sent.mono_ms).unwrap_or(i64::MAX),
                ),
                held_seq,
                offset,
                received_ms,
            },
            dated_until,
        )
    }
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
    let plausible = anchor.server_ms >= EARLIEST_SERVER_MS
        && anchor.server_ms <= received_ms.saturating_add(ANCHOR_FUTURE_SLACK_MS)
        && uncertainty_ms <= MAX_ANCHOR_UNCERTAINTY_MS;
    plausible.then_some(Anchor {
        boot_ms: anchor.server_ms.saturating_sub(mono_ms),
        uncertainty_ms,
    })
}

/// A lower bound on a run's boot from a clock bound the PC carried back from an
/// acknowledgement file; `None` when the server's time in it cannot be one (before any
/// server's time, or later than this arrival).
pub(crate) fn usable_bound(bound: &ClockBound, received_ms: i64) -> Option<i64> {
    let mono_ms = to_i64(bound.mono_ms)?;
    let plausible = bound.server_ms >= EARLIEST_SERVER_MS
        && bound.server_ms <= received_ms.saturating_add(ANCHOR_FUTURE_SLACK_MS);
    plausible.then(|| bound.server_ms.saturating_sub(mono_ms))
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
    let mut not_before: HashMap<Uuid, i64> = HashMap::new();
    for bound in &batch.bounds {
        match usable_bound(bound, received_ms) {
            Some(boot) => {
                let entry = not_before.entry(bound.run).or_insert(boot);
                *entry = (*entry).max(boot);
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
        let run = body.run_id();
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
            RecordBody::Visit(_) | RecordBody::MemberCount(_) | RecordBody::Activity(_) => {
                crate::entries::PreparedEntry::of(seq, &body).map(PreparedRecord::Entry)
            }
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
                    PreparedRecord::Entry(_) | PreparedRecord::Invalid { .. } => {}
                }
                if !runs.contains(&run) {
                    runs.push(run);
                }
                records.push(record);
            }
            None => records.push(out_of_range(seq, id)),
        }
    }
    let evidence = run_evidence(&records, received_ms);
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
        pc: device.pc.to_string(),
        lost,
        evidence,
        not_before,
    })
}

/// What the batch shows of each run, in the order the runs first appear.
fn run_evidence(records: &[PreparedRecord], received_ms: i64) -> Vec<RunEvidence> {
    let mut evidence: Vec<RunEvidence> = Vec::new();
    let mut index: HashMap<Uuid, usize> = HashMap::new();
    for record in records {
        let (run, record, raw, seq) = match record {
            PreparedRecord::Session(s) => (
                s.run,
                RunRecord {
                    id: s.id,
                    mono_ms: s.mono_ms,
                    event: false,
                },
                s.fields.raw_start_ms,
                s.seq,
            ),
            PreparedRecord::Event(e) => (
                e.run,
                RunRecord {
                    id: e.id,
                    mono_ms: e.mono_ms,
                    event: true,
                },
                e.fields.raw_at_ms,
                e.seq,
            ),
            // An entry is dated by its run but gives the run no evidence: its wall
            // time is a person's entry time, and sessions and events date runs well.
            PreparedRecord::Entry(_) | PreparedRecord::Invalid { .. } => continue,
        };
        let i = *index.entry(run).or_insert_with(|| {
            evidence.push(RunEvidence::new(run, record.mono_ms));
            evidence.len() - 1
        });
        // Seqs were checked to fit when the batch was decoded.
        let seq = i64::try_from(seq).unwrap_or(i64::MAX);
        evidence[i].add(record, raw, seq, received_ms);
    }
    evidence
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

    #[test]
    fn a_clock_bound_bounds_the_boot_from_below_unless_it_cannot_be_a_servers() {
        let bound = ClockBound {
            run: Uuid::nil(),
            mono_ms: 3_600_000,
            server_ms: NOW - 86_400_000,
        };
        assert_eq!(
            usable_bound(&bound, NOW),
            Some(NOW - 86_400_000 - 3_600_000)
        );
        for bad in [
            ClockBound {
                server_ms: 946_684_800_000,
                ..bound
            },
            ClockBound {
                server_ms: NOW + 3_600_000,
                ..bound
            },
            ClockBound {
                mono_ms: u64::MAX,
                ..bound
            },
        ] {
            assert_eq!(usable_bound(&bad, NOW), None, "{bad:?}");
        }
    }
}
