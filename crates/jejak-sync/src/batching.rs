//! From the change log to a compressed batch.

use jejak_agent::store::{Store, StoreError};
use jejak_domain::{ChangeRecord, ClientInstant, RecordKind, SeqRange, WireBatch};
use uuid::Uuid;

/// zstd level for batches: the highest levels cost tens of milliseconds on a 20 KB
/// batch, which is nothing next to seconds on a 64 kbit/s link.
pub const ZSTD_LEVEL: i32 = 19;

/// A batch ready to send, and to send again unchanged if the answer is lost.
#[derive(Debug, Clone)]
pub struct PreparedBatch {
    pub wire: WireBatch,
    /// The JSON document, zstd-compressed.
    pub body: Vec<u8>,
    /// Bytes of the JSON before compression.
    pub json_bytes: usize,
    /// The kinds the batch may carry (those the server takes): the changes of its range
    /// of other kinds were left out, and are held back when it is acknowledged
    /// (`Store::record_ack`).
    pub kinds: Vec<RecordKind>,
    /// For a batch of held-back changes ([`prepare_held_back`]): their seqs, released
    /// once it is acknowledged. Empty for a batch of the queue.
    pub releases: Vec<u64>,
}

impl PreparedBatch {
    pub fn records(&self) -> usize {
        self.wire.len()
    }

    /// The changes (seqs) the batch covers, less those declared lost.
    pub fn changes(&self) -> u64 {
        let range = (self.wire.last_seq + 1).saturating_sub(self.wire.first_seq);
        let lost: u64 = self.wire.lost.iter().map(SeqRange::len).sum();
        range.saturating_sub(lost)
    }
}

pub use jejak_domain::newest_revisions;

/// Reads up to `max_seqs` changes after `after` and builds the batch covering them,
/// carrying the records of `kinds` (those the server takes) only: the range covers the
/// others, which the store holds back once the batch is acknowledged. `None` when
/// nothing is waiting.
pub fn prepare(
    store: &Store,
    after: u64,
    max_seqs: u32,
    sent: ClientInstant,
    kinds: &[RecordKind],
) -> Result<Option<PreparedBatch>, StoreError> {
    let changes = store.changes_after(after, max_seqs)?;
    let Some(last) = changes.last().map(|c| c.seq) else {
        return Ok(None);
    };
    let first = after + 1;
    let lost = pruned_ranges(first, &changes);
    let held_back = changes
        .iter()
        .filter(|c| !kinds.contains(&c.body.kind()))
        .count();
    if held_back > 0 {
        tracing::info!(
            held_back,
            "records of kinds the server does not take yet are held back"
        );
    }
    let records: Vec<ChangeRecord> = newest_revisions(changes)
        .into_iter()
        .filter(|c| kinds.contains(&c.body.kind()))
        .collect();
    let mut batch = encode(store, first, last, sent, records)?;
    if !lost.is_empty() {
        tracing::warn!(
            lost = lost.iter().map(SeqRange::len).sum::<u64>(),
            "the server lacks changes this PC already pruned; they are reported as lost"
        );
    }
    batch.wire.lost = lost;
    let mut batch = compress(batch.wire);
    batch.kinds = kinds.to_vec();
    Ok(Some(batch))
}

/// A batch of the held-back changes of `kinds` (kinds the server takes now), at most
/// `max_seqs`: its range runs from the first to the last of them, all at or below what
/// the server holds, so it passes the gap check; the changes of the range that are not
/// in it were sent before. `None` when none of those kinds is held back.
pub fn prepare_held_back(
    store: &Store,
    max_seqs: u32,
    sent: ClientInstant,
    kinds: &[RecordKind],
) -> Result<Option<PreparedBatch>, StoreError> {
    let changes = store.held_back(kinds, max_seqs)?;
    let (Some(first), Some(last)) = (
        changes.first().map(|c| c.seq),
        changes.last().map(|c| c.seq),
    ) else {
        return Ok(None);
    };
    let releases: Vec<u64> = changes.iter().map(|c| c.seq).collect();
    let batch = encode(store, first, last, sent, newest_revisions(changes))?;
    let mut batch = compress(batch.wire);
    batch.kinds = kinds.to_vec();
    batch.releases = releases;
    Ok(Some(batch))
}

/// The wire batch over `first..=last` carrying `records`, with the anchors and bounds
/// of their runs (uncompressed).
fn encode(
    store: &Store,
    first: u64,
    last: u64,
    sent: ClientInstant,
    records: Vec<ChangeRecord>,
) -> Result<PreparedBatch, StoreError> {
    let mut runs: Vec<Uuid> = records.iter().map(|r| r.body.run_id()).collect();
    // The current run's anchor too: it dates the batch's own send time, so the server
    // never has to fall back on a one-way estimate for this PC's clock.
    runs.push(sent.run);
    runs.sort();
    runs.dedup();
    let anchors = store.anchors_for(&runs)?;
    // What USB acknowledgement files told about this PC's clock (nothing, for a PC that
    // never carried a bundle): lower bounds that date its runs where no anchor does.
    let bounds = store.bounds_for(&runs)?;
    let identity = store.identity();
    let mut wire = WireBatch::encode(
        Uuid::now_v7(),
        identity.library.clone(),
        identity.pc.clone(),
        store.epoch(),
        first,
        last,
        sent,
        anchors,
        &records,
    );
    wire.bounds = bounds;
    Ok(PreparedBatch {
        wire,
        body: Vec::new(),
        json_bytes: 0,
        kinds: Vec::new(),
        releases: Vec::new(),
    })
}

/// The seqs from `first` on that the change log no longer has. Only acknowledged
/// changes are ever pruned, so such a hole means the server acknowledged them once and
/// has lost them since (it was restored from an older backup): they cannot be sent
/// again and are declared lost instead of passing silently.
fn pruned_ranges(first: u64, changes: &[ChangeRecord]) -> Vec<SeqRange> {
    let mut lost = Vec::new();
    let mut expected = first;
    for change in changes {
        if change.seq > expected {
            lost.push(SeqRange {
                first: expected,
                last: change.seq - 1,
            });
        }
        expected = change.seq.saturating_add(1);
    }
    lost
}

/// Serializes and compresses a batch.
pub fn compress(wire: WireBatch) -> PreparedBatch {
    // Serializing plain data to a Vec cannot fail.
    let json = serde_json::to_vec(&wire).unwrap_or_default();
    let body = zstd::bulk::compress(&json, ZSTD_LEVEL).unwrap_or_else(|_| json.clone());
    PreparedBatch {
        json_bytes: json.len(),
        body,
        wire,
        kinds: RecordKind::ALL.to_vec(),
        releases: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jejak_agent::clock::ManualClock;
    use jejak_domain::{DeviceIdentity, EndReason, LibraryCode, PatronProfile, PcCode, RecordBody};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn a_batch_carries_only_the_newest_revision_but_covers_every_seq() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(chrono::DateTime::from_timestamp(1_900_000_000, 0).unwrap());
        let identity = DeviceIdentity {
            library: LibraryCode::parse("rempoah").unwrap(),
            pc: PcCode::parse("pc-01").unwrap(),
        };
        let (mut store, _) = Store::open(
            &dir.path().join("jejak.db"),
            identity,
            Arc::new(clock.clone()),
        )
        .unwrap();
        let first = store
            .start_session(PatronProfile::default(), None)
            .unwrap()
            .session;
        clock.advance(Duration::from_secs(60));
        store.end_session(EndReason::Logout, None).unwrap();
        store.start_session(PatronProfile::default(), None).unwrap();
        let sent = store.client_instant().unwrap();
        let batch = prepare(&store, 0, 100, sent, &RecordKind::ALL)
            .unwrap()
            .unwrap();
        // boot, start 1 (superseded), end 1, start 2
        assert_eq!((batch.wire.first_seq, batch.wire.last_seq), (1, 4));
        let decoded = batch.wire.decode().unwrap();
        let seqs: Vec<u64> = decoded.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, vec![1, 3, 4]);
        match &decoded[1].body {
            RecordBody::Session(s) => {
                assert_eq!(s.id, first.id);
                assert_eq!(s.revision, 2);
            }
            other => panic!("{other:?}"),
        }
        let json = zstd::bulk::decompress(&batch.body, 1 << 20).unwrap();
        assert_eq!(json.len(), batch.json_bytes);
        assert!(
            prepare(&store, 4, 100, sent, &RecordKind::ALL)
                .unwrap()
                .is_none()
        );
    }
}
