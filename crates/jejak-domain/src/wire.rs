//! The sync's wire format, version 1: what a PC sends to the district server and what
//! the server answers.
//!
//! A batch covers a contiguous range of the device's change log (`first_seq..=last_seq`).
//! Within the range only the newest revision of each session is sent — an older
//! revision superseded inside the same range carries no information the server needs —
//! so the server may mark the whole range as held. Records are laid out in columns
//! (one array per field) with small integers and dictionaries for repeated values:
//! compressed, a realistic session costs under 40 bytes on the wire, which matters at
//! 64 kbit/s. The document is JSON so that a person (and a test) can read it.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::change::{ChangeRecord, RecordBody, RecordKind};
use crate::entry::EntryRecord;
use crate::event::PcEvent;
use crate::identity::{LibraryCode, PcCode};
use crate::session::{PatronKey, PatronProfile, Session};
use crate::vocab::{AgeGroup, EndReason, Gender, PcEventKind, Purpose, TimeQuality, UserKind};

/// The version this code writes and reads.
pub const WIRE_VERSION: u32 = 1;
/// The media type of a batch document (before `Content-Encoding`).
pub const BATCH_MEDIA_TYPE: &str = "application/vnd.jejak.batch.v1+json";

/// No server's clock ever read a time before this (2024-01-01 UTC, before this software
/// existed): a time before it that claims to be the server's is refused, and a PC wall
/// time before it is a clock reset (a dead CMOS battery's 2000).
pub const EARLIEST_SERVER_MS: i64 = 1_704_067_200_000;

/// The most entries any one array of a batch may hold (each column, `runs`, `anchors`,
/// `patron_keys`). The parser refuses a longer array as soon as it sees the entry past
/// this, so a small compressed body cannot grow into millions of entries in memory. A PC
/// sends at most a few thousand records per batch; a server may allow fewer
/// (`Limits::max_records`), never more.
pub const MAX_BATCH_ENTRIES: usize = 10_000;
/// The most purposes one session's list may carry on the wire: the vocabulary has eight.
/// (More than [`crate::session::MAX_PURPOSES`] is a broken domain rule, refused for that
/// record alone; more than this is not a batch any PC writes.)
pub const MAX_WIRE_PURPOSES: usize = 8;
/// The most fields one entry may carry on the wire: every kind has a handful.
pub const MAX_ENTRY_FIELDS: usize = 32;

/// The ranges every number of a batch must lie in. They bound what the server's
/// arithmetic and storage meet (64-bit signed columns, dates chrono can hold, a session
/// split over at most a year of days), far beyond what an honest PC sends. A number
/// outside them refuses the whole batch (422), naming the field.
pub mod ranges {
    /// Seqs are stored as signed 64-bit numbers.
    pub const MAX_SEQ: u64 = i64::MAX as u64;
    /// Monotonic milliseconds since a boot: a century of uptime.
    pub const MAX_MONO_MS: u64 = 100 * 366 * 86_400_000;
    /// Wall times, Unix ms: from 1970-01-01 (a PC clock reset reads 2000 or 1980, never
    /// before 1970) …
    pub const MIN_WALL_MS: i64 = 0;
    /// … to the end of the year 9999.
    pub const MAX_WALL_MS: i64 = 253_402_300_799_999;
    /// One session lasts at most a year: its hours are split over the days it spans.
    pub const MAX_DURATION_S: u64 = 366 * 86_400;
    /// One session moves at most a tebibyte each way (in KiB).
    pub const MAX_KIB: u64 = 1 << 30;
}

/// A UUID written as 32 hex digits: shorter than the hyphenated form and just as exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HexId(pub Uuid);

impl Serialize for HexId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.simple().encode_lower(&mut Uuid::encode_buffer()))
    }
}

impl<'de> Deserialize<'de> for HexId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct IdVisitor;

        impl serde::de::Visitor<'_> for IdVisitor {
            type Value = HexId;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a UUID as 32 hex digits")
            }

            // Borrowed, not allocated: ingest reads thousands of ids per batch.
            fn visit_str<E: serde::de::Error>(self, raw: &str) -> Result<HexId, E> {
                Uuid::try_parse(raw)
                    .map(HexId)
                    .map_err(|e| E::custom(format!("invalid id '{raw}': {e}")))
            }
        }

        d.deserialize_str(IdVisitor)
    }
}

/// A moment by the PC's own clocks.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientInstant {
    pub run: Uuid,
    pub mono_ms: u64,
    pub wall_ms: i64,
}

/// What an offset measurement established: at monotonic time `mono_ms` of `run`, the
/// server's clock read `server_ms` (± `uncertainty_ms`, half the round trip). With it
/// the server dates any record of that run from its monotonic time, however wrong the
/// PC's wall clock was.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockAnchor {
    pub run: Uuid,
    pub mono_ms: u64,
    pub server_ms: i64,
    pub uncertainty_ms: u64,
}

impl ClockAnchor {
    /// The NTP on-wire calculation from the four timestamps of one exchange: client
    /// send `t1` and receive `t4` (monotonic ms of `run`), server receive `t2` and send
    /// `t3` (server ms). The anchor sits at the exchange's midpoint.
    pub fn measure(run: Uuid, t1_mono: u64, t2_server: i64, t3_server: i64, t4_mono: u64) -> Self {
        let round_trip = t4_mono.saturating_sub(t1_mono) as i64;
        let server_busy = (t3_server - t2_server).max(0);
        let delay = (round_trip - server_busy).max(0) as u64;
        ClockAnchor {
            run,
            mono_ms: t1_mono + (t4_mono.saturating_sub(t1_mono)) / 2,
            server_ms: t2_server + server_busy / 2,
            uncertainty_ms: delay / 2,
        }
    }

    /// Server time of a monotonic reading of the same run.
    pub fn server_time_of(&self, mono_ms: u64) -> i64 {
        self.server_ms + (mono_ms as i64 - self.mono_ms as i64)
    }
}

/// A one-sided fact about the PC's clock: at monotonic time `mono_ms` of `run`, the
/// server's clock read *at least* `server_ms`. The PC learns it from a USB
/// acknowledgement file: the server wrote the file at `server_ms` (its latest answer
/// time), and the PC read it later, at `mono_ms`. So it bounds the run from below only:
/// the run booted no earlier than `server_ms - mono_ms`. Together with the bundle's own
/// upper bound (it was exported before it was imported) it brackets a run that was still
/// going when the acknowledgement came back; for a later run it is a lower bound that
/// also holds for every run after it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockBound {
    pub run: Uuid,
    pub mono_ms: u64,
    pub server_ms: i64,
}

/// Deserializes an array of at most [`MAX_BATCH_ENTRIES`] entries, refusing a longer one
/// at the first entry past the limit (before it is allocated).
fn bounded<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    d.deserialize_seq(BoundedVisitor::<T> {
        max: MAX_BATCH_ENTRIES,
        marker: std::marker::PhantomData,
    })
}

/// `purposes`: at most [`MAX_BATCH_ENTRIES`] lists of at most [`MAX_WIRE_PURPOSES`].
fn bounded_purposes<'de, D>(d: D) -> Result<Vec<Vec<Purpose>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct PurposeList(Vec<Purpose>);

    impl<'de> Deserialize<'de> for PurposeList {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_seq(BoundedVisitor::<Purpose> {
                max: MAX_WIRE_PURPOSES,
                marker: std::marker::PhantomData,
            })
            .map(PurposeList)
        }
    }

    let lists: Vec<PurposeList> = bounded(d)?;
    Ok(lists.into_iter().map(|list| list.0).collect())
}

struct BoundedVisitor<T> {
    max: usize,
    marker: std::marker::PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for BoundedVisitor<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "an array of at most {} entries", self.max)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        // JSON gives no length ahead; a hint from another format is trusted only up to
        // the limit.
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.max).min(1024));
        while let Some(entry) = seq.next_element()? {
            if out.len() == self.max {
                return Err(serde::de::Error::custom(format_args!(
                    "an array holds more than {} entries",
                    self.max
                )));
            }
            out.push(entry);
        }
        Ok(out)
    }
}

/// Seqs `first..=last` of the batch's epoch that the PC no longer has: it pruned them
/// after an earlier acknowledgement, and the server has since lost them (it was restored
/// from an older backup). The batch covers them, so that the rest can be stored, and the
/// server records them as lost instead of counting them as held silently.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeqRange {
    pub first: u64,
    pub last: u64,
}

impl SeqRange {
    /// How many seqs the range holds.
    pub fn len(&self) -> u64 {
        self.last.saturating_sub(self.first).saturating_add(1)
    }

    pub fn is_empty(&self) -> bool {
        self.last < self.first
    }
}

/// Sessions, one array per field; entry `i` of every array belongs to the same session.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionColumns {
    /// Seq of each entry as the difference from the previous entry's (the first from
    /// `first_seq - 1`).
    #[serde(deserialize_with = "bounded")]
    pub seq_delta: Vec<u64>,
    #[serde(deserialize_with = "bounded")]
    pub id: Vec<HexId>,
    #[serde(deserialize_with = "bounded")]
    pub revision: Vec<u32>,
    /// Index into the batch's `runs`.
    #[serde(deserialize_with = "bounded")]
    pub run: Vec<u32>,
    #[serde(deserialize_with = "bounded")]
    pub started_mono_ms: Vec<u64>,
    /// Wall start in Unix ms, as the difference from the previous entry's (the first from 0).
    #[serde(deserialize_with = "bounded")]
    pub started_at_delta_ms: Vec<i64>,
    #[serde(deserialize_with = "bounded")]
    pub duration_s: Vec<u64>,
    /// `null` while the session is open.
    #[serde(deserialize_with = "bounded")]
    pub end_reason: Vec<Option<EndReason>>,
    #[serde(deserialize_with = "bounded")]
    pub user_kind: Vec<UserKind>,
    #[serde(deserialize_with = "bounded_purposes")]
    pub purposes: Vec<Vec<Purpose>>,
    #[serde(deserialize_with = "bounded")]
    pub gender: Vec<Gender>,
    #[serde(deserialize_with = "bounded")]
    pub age_group: Vec<AgeGroup>,
    #[serde(deserialize_with = "bounded")]
    pub group_size: Vec<u32>,
    /// Index into the batch's `patron_keys`, or `null`.
    #[serde(deserialize_with = "bounded")]
    pub patron: Vec<Option<u32>>,
    /// Kibibytes received and sent (rounded up): reports count megabytes.
    #[serde(deserialize_with = "bounded")]
    pub rx_kib: Vec<u64>,
    #[serde(deserialize_with = "bounded")]
    pub tx_kib: Vec<u64>,
    #[serde(deserialize_with = "bounded")]
    pub online_s: Vec<u64>,
    #[serde(deserialize_with = "bounded")]
    pub time_quality: Vec<TimeQuality>,
}

/// pc events, one array per field.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventColumns {
    #[serde(deserialize_with = "bounded")]
    pub seq_delta: Vec<u64>,
    #[serde(deserialize_with = "bounded")]
    pub id: Vec<HexId>,
    #[serde(deserialize_with = "bounded")]
    pub kind: Vec<PcEventKind>,
    #[serde(deserialize_with = "bounded")]
    pub run: Vec<u32>,
    #[serde(deserialize_with = "bounded")]
    pub mono_ms: Vec<u64>,
    #[serde(deserialize_with = "bounded")]
    pub at_delta_ms: Vec<i64>,
    #[serde(deserialize_with = "bounded")]
    pub clock_delta_ms: Vec<Option<i64>>,
}

/// One low-volume record (a visit, a member count) as a compact row:
/// `[seq_delta, kind, id, revision, run, mono_ms, wall_delta_ms, [fields…]]`. The seq is
/// the difference from the previous entry's (the first from `first_seq - 1`), the run
/// an index into the batch's `runs`, the wall time (Unix ms) the difference from the
/// previous entry's (the first from 0), and the fields the kind's own small integers
/// (`RecordBody::entry`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryRow(
    pub u64,
    pub String,
    pub HexId,
    pub u32,
    pub u32,
    pub u64,
    pub i64,
    #[serde(deserialize_with = "bounded_fields")] pub Vec<i64>,
    /// The kind's free-text fields (an activity's title, partner, notes), absent for
    /// kinds without text, so a visit's row keeps its bytes.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "bounded_texts"
    )]
    pub Vec<String>,
);

/// The most free-text fields one entry may carry on the wire.
pub const MAX_ENTRY_TEXTS: usize = 8;

/// An entry's texts: at most [`MAX_ENTRY_TEXTS`] (their length is the kind's rule).
fn bounded_texts<'de, D>(d: D) -> Result<Vec<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    d.deserialize_seq(BoundedVisitor::<String> {
        max: MAX_ENTRY_TEXTS,
        marker: std::marker::PhantomData,
    })
}

/// An entry's fields: at most [`MAX_ENTRY_FIELDS`].
fn bounded_fields<'de, D>(d: D) -> Result<Vec<i64>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    d.deserialize_seq(BoundedVisitor::<i64> {
        max: MAX_ENTRY_FIELDS,
        marker: std::marker::PhantomData,
    })
}

/// `POST /api/v1/batches`: one batch of a device's change log.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireBatch {
    pub wire_version: u32,
    /// Chosen by the client; the answer echoes it, and a retry sends the same id.
    pub batch_id: Uuid,
    /// Must match the token's library and PC, or the batch is refused (403).
    pub library: LibraryCode,
    pub pc: PcCode,
    /// The device store's epoch; seqs are contiguous within one epoch.
    pub epoch: Uuid,
    pub first_seq: u64,
    pub last_seq: u64,
    /// When the client sent this, by its clocks (t1).
    pub sent: ClientInstant,
    #[serde(deserialize_with = "bounded")]
    pub runs: Vec<Uuid>,
    #[serde(deserialize_with = "bounded")]
    pub anchors: Vec<ClockAnchor>,
    #[serde(deserialize_with = "bounded")]
    pub patron_keys: Vec<PatronKey>,
    pub sessions: SessionColumns,
    pub events: EventColumns,
    /// The low-volume records (visits, member counts), one compact row each; absent
    /// when there are none, so a batch of sessions and events keeps its bytes. A PC
    /// sends only kinds the server lists in `accepts`.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "bounded"
    )]
    pub entries: Vec<EntryRow>,
    /// Seqs of the range that the PC pruned and the server no longer holds (after a
    /// restore from a backup); absent in every ordinary batch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lost: Vec<SeqRange>,
    /// Lower bounds on the server's clock that the PC learnt from USB acknowledgement
    /// files ([`ClockBound`]); absent unless the PC imported one.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "bounded"
    )]
    pub bounds: Vec<ClockBound>,
}

/// A record of a batch, back in row form, with the seq it had in the change log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRecord {
    pub seq: u64,
    pub body: RecordBody,
}

/// Why a batch document cannot be read at all (the whole batch is refused, 422).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchShapeError {
    #[error("wire_version {0} is not supported; this server reads version {WIRE_VERSION}")]
    Version(u32),
    #[error("first_seq {first} and last_seq {last} do not make a range starting at 1 or later")]
    Range { first: u64, last: u64 },
    #[error("column '{column}' of {table} has {found} entries, expected {expected}")]
    ColumnLength {
        table: &'static str,
        column: &'static str,
        found: usize,
        expected: usize,
    },
    #[error("{table} entry {index}: seq {seq} is outside first_seq..=last_seq or not increasing")]
    Seq {
        table: &'static str,
        index: usize,
        seq: u64,
    },
    #[error("seq {0} appears twice")]
    DuplicateSeq(u64),
    #[error("{table} entry {index}: {what} index {value} is out of range")]
    Index {
        table: &'static str,
        index: usize,
        what: &'static str,
        value: u32,
    },
    /// A number outside [`ranges`]: `field` names it as the document does
    /// (`sessions.duration_s`), `index` its entry.
    #[error("{field}{} is {value}, outside the allowed {min} to {max}", index.map(|i| format!("[{i}]")).unwrap_or_default())]
    OutOfRange {
        field: &'static str,
        index: Option<usize>,
        value: i128,
        min: i128,
        max: i128,
    },
    #[error(
        "lost range {first}..={last} is empty, outside first_seq..=last_seq, or overlaps a record or another lost range"
    )]
    LostRange { first: u64, last: u64 },
    /// An entry of a kind this server does not store (or not an entry kind at all).
    #[error("entries[{index}].kind '{code}' is not a kind this server stores")]
    UnknownKind { index: usize, code: String },
    /// An entry's field outside what its kind allows.
    #[error("entries[{index}].{field} is {value}, outside what a {kind} allows")]
    EntryField {
        index: usize,
        kind: &'static str,
        field: &'static str,
        value: i64,
    },
}

/// Checks that `value` of `field` (entry `index`) lies in `min..=max`.
fn in_range(
    field: &'static str,
    index: Option<usize>,
    value: impl Into<i128>,
    min: impl Into<i128>,
    max: impl Into<i128>,
) -> Result<(), BatchShapeError> {
    let (value, min, max) = (value.into(), min.into(), max.into());
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(BatchShapeError::OutOfRange {
            field,
            index,
            value,
            min,
            max,
        })
    }
}

/// Adds a delta to a running wall time and checks the sum against the wall range,
/// naming the delta's field when it leaves it.
fn wall_after(
    field: &'static str,
    index: usize,
    previous: i64,
    delta: i64,
) -> Result<i64, BatchShapeError> {
    let sum = i128::from(previous) + i128::from(delta);
    in_range(
        field,
        Some(index),
        sum,
        ranges::MIN_WALL_MS,
        ranges::MAX_WALL_MS,
    )?;
    // In range, so it fits.
    Ok(i64::try_from(sum).unwrap_or(ranges::MAX_WALL_MS))
}

fn div_ceil_kib(bytes: u64) -> u64 {
    bytes.div_ceil(1024)
}

impl WireBatch {
    /// Builds a batch covering `first_seq..=last_seq` from `records` (those in the range
    /// that are still current; the caller leaves superseded revisions out).
    #[allow(clippy::too_many_arguments)]
    pub fn encode(
        batch_id: Uuid,
        library: LibraryCode,
        pc: PcCode,
        epoch: Uuid,
        first_seq: u64,
        last_seq: u64,
        sent: ClientInstant,
        anchors: Vec<ClockAnchor>,
        records: &[ChangeRecord],
    ) -> WireBatch {
        let mut runs: Vec<Uuid> = Vec::new();
        let mut run_index: HashMap<Uuid, u32> = HashMap::new();
        let mut index_of_run = |run: Uuid| -> u32 {
            *run_index.entry(run).or_insert_with(|| {
                runs.push(run);
                (runs.len() - 1) as u32
            })
        };
        let mut patron_keys: Vec<PatronKey> = Vec::new();
        let mut key_index: HashMap<PatronKey, u32> = HashMap::new();
        let mut sessions = SessionColumns::default();
        let mut events = EventColumns::default();
        let mut entries: Vec<EntryRow> = Vec::new();
        let (mut last_session_seq, mut last_event_seq) = (first_seq - 1, first_seq - 1);
        let mut last_entry_seq = first_seq - 1;
        let (mut last_start, mut last_at, mut last_entry_ms) = (0i64, 0i64, 0i64);
        let mut sorted: Vec<&ChangeRecord> = records.iter().collect();
        sorted.sort_by_key(|r| r.seq);
        for record in sorted {
            match &record.body {
                RecordBody::Session(s) => {
                    let c = &mut sessions;
                    c.seq_delta.push(record.seq - last_session_seq);
                    last_session_seq = record.seq;
                    c.id.push(HexId(s.id));
                    c.revision.push(s.revision);
                    c.run.push(index_of_run(s.run_id));
                    c.started_mono_ms.push(s.started_mono_ms);
                    let start = s.started_at.timestamp_millis();
                    c.started_at_delta_ms.push(start - last_start);
                    last_start = start;
                    c.duration_s.push(s.duration_secs);
                    c.end_reason.push(s.end_reason);
                    c.user_kind.push(s.patron.user_kind);
                    c.purposes.push(s.patron.purposes.clone());
                    c.gender.push(s.patron.gender);
                    c.age_group.push(s.patron.age_group);
                    c.group_size.push(s.patron.group_size);
                    c.patron.push(s.patron.patron_key.as_ref().map(|key| {
                        *key_index.entry(key.clone()).or_insert_with(|| {
                            patron_keys.push(key.clone());
                            (patron_keys.len() - 1) as u32
                        })
                    }));
                    c.rx_kib.push(div_ceil_kib(s.bytes_rx));
                    c.tx_kib.push(div_ceil_kib(s.bytes_tx));
                    c.online_s.push(s.online_secs);
                    c.time_quality.push(s.time_quality);
                }
                RecordBody::PcEvent(e) => {
                    let c = &mut events;
                    c.seq_delta.push(record.seq - last_event_seq);
                    last_event_seq = record.seq;
                    c.id.push(HexId(e.id));
                    c.kind.push(e.kind);
                    c.run.push(index_of_run(e.run_id));
                    c.mono_ms.push(e.mono_ms);
                    let at = e.at.timestamp_millis();
                    c.at_delta_ms.push(at - last_at);
                    last_at = at;
                    c.clock_delta_ms.push(e.clock_delta_ms);
                }
                RecordBody::Visit(_) | RecordBody::MemberCount(_) | RecordBody::Activity(_) => {
                    let Some(entry) = record.body.entry() else {
                        continue;
                    };
                    entries.push(EntryRow(
                        record.seq - last_entry_seq,
                        entry.kind.code().to_string(),
                        HexId(entry.id),
                        entry.revision,
                        index_of_run(entry.run_id),
                        entry.mono_ms,
                        entry.wall_ms - last_entry_ms,
                        entry.fields,
                        entry.texts,
                    ));
                    last_entry_seq = record.seq;
                    last_entry_ms = entry.wall_ms;
                }
            }
        }
        WireBatch {
            wire_version: WIRE_VERSION,
            batch_id,
            library,
            pc,
            epoch,
            first_seq,
            last_seq,
            sent,
            runs,
            anchors,
            patron_keys,
            sessions,
            events,
            entries,
            lost: Vec::new(),
            bounds: Vec::new(),
        }
    }

    /// How many records the batch carries.
    pub fn len(&self) -> usize {
        self.sessions.id.len() + self.events.id.len() + self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Turns the columns back into records, ordered by seq, checking the document's
    /// shape. Whether each record is valid is the caller's question (`RecordBody::validate`).
    pub fn decode(&self) -> Result<Vec<BatchRecord>, BatchShapeError> {
        if self.wire_version != WIRE_VERSION {
            return Err(BatchShapeError::Version(self.wire_version));
        }
        if self.first_seq == 0 || self.last_seq < self.first_seq {
            return Err(BatchShapeError::Range {
                first: self.first_seq,
                last: self.last_seq,
            });
        }
        let s = &self.sessions;
        let n = s.id.len();
        let session_columns: [(&'static str, usize); 17] = [
            ("seq_delta", s.seq_delta.len()),
            ("revision", s.revision.len()),
            ("run", s.run.len()),
            ("started_mono_ms", s.started_mono_ms.len()),
            ("started_at_delta_ms", s.started_at_delta_ms.len()),
            ("duration_s", s.duration_s.len()),
            ("end_reason", s.end_reason.len()),
            ("user_kind", s.user_kind.len()),
            ("purposes", s.purposes.len()),
            ("gender", s.gender.len()),
            ("age_group", s.age_group.len()),
            ("group_size", s.group_size.len()),
            ("patron", s.patron.len()),
            ("rx_kib", s.rx_kib.len()),
            ("tx_kib", s.tx_kib.len()),
            ("online_s", s.online_s.len()),
            ("time_quality", s.time_quality.len()),
        ];
        check_lengths("sessions", n, &session_columns)?;
        let e = &self.events;
        let m = e.id.len();
        check_lengths(
            "events",
            m,
            &[
                ("seq_delta", e.seq_delta.len()),
                ("kind", e.kind.len()),
                ("run", e.run.len()),
                ("mono_ms", e.mono_ms.len()),
                ("at_delta_ms", e.at_delta_ms.len()),
                ("clock_delta_ms", e.clock_delta_ms.len()),
            ],
        )?;

        self.check_header_ranges()?;

        let run = |table: &'static str, index: usize, value: u32| {
            self.runs
                .get(value as usize)
                .copied()
                .ok_or(BatchShapeError::Index {
                    table,
                    index,
                    what: "run",
                    value,
                })
        };
        // Every wall time was checked against `ranges` first, so chrono can hold it.
        let time = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
        let mut out = Vec::with_capacity(n + m);
        let mut seq = self.first_seq - 1;
        let mut start_ms = 0i64;
        for i in 0..n {
            seq = self.next_seq("sessions", i, seq, s.seq_delta[i])?;
            start_ms = wall_after(
                "sessions.started_at_delta_ms",
                i,
                start_ms,
                s.started_at_delta_ms[i],
            )?;
            in_range(
                "sessions.started_mono_ms",
                Some(i),
                s.started_mono_ms[i],
                0,
                ranges::MAX_MONO_MS,
            )?;
            in_range(
                "sessions.duration_s",
                Some(i),
                s.duration_s[i],
                0,
                ranges::MAX_DURATION_S,
            )?;
            in_range(
                "sessions.online_s",
                Some(i),
                s.online_s[i],
                0,
                ranges::MAX_DURATION_S,
            )?;
            in_range("sessions.rx_kib", Some(i), s.rx_kib[i], 0, ranges::MAX_KIB)?;
            in_range("sessions.tx_kib", Some(i), s.tx_kib[i], 0, ranges::MAX_KIB)?;
            let started_at = time(start_ms);
            // A year at most (checked above): the sum stays far inside chrono's range.
            let ended_at = s.end_reason[i].map(|_| {
                started_at
                    + chrono::Duration::seconds(s.duration_s[i].min(ranges::MAX_DURATION_S) as i64)
            });
            let patron_key = match s.patron[i] {
                Some(k) => Some(self.patron_keys.get(k as usize).cloned().ok_or(
                    BatchShapeError::Index {
                        table: "sessions",
                        index: i,
                        what: "patron",
                        value: k,
                    },
                )?),
                None => None,
            };
            out.push(BatchRecord {
                seq,
                body: RecordBody::Session(Session {
                    id: s.id[i].0,
                    revision: s.revision[i],
                    library: self.library.clone(),
                    pc: self.pc.clone(),
                    started_at,
                    ended_at,
                    duration_secs: s.duration_s[i],
                    end_reason: s.end_reason[i],
                    patron: PatronProfile {
                        user_kind: s.user_kind[i],
                        purposes: s.purposes[i].clone(),
                        gender: s.gender[i],
                        age_group: s.age_group[i],
                        group_size: s.group_size[i],
                        patron_key,
                    },
                    // At most a TiB in KiB (checked above): the product fits.
                    bytes_rx: s.rx_kib[i] * 1024,
                    bytes_tx: s.tx_kib[i] * 1024,
                    online_secs: s.online_s[i],
                    time_quality: s.time_quality[i],
                    run_id: run("sessions", i, s.run[i])?,
                    started_mono_ms: s.started_mono_ms[i],
                }),
            });
        }
        let mut seq = self.first_seq - 1;
        let mut at_ms = 0i64;
        for i in 0..m {
            seq = self.next_seq("events", i, seq, e.seq_delta[i])?;
            at_ms = wall_after("events.at_delta_ms", i, at_ms, e.at_delta_ms[i])?;
            in_range(
                "events.mono_ms",
                Some(i),
                e.mono_ms[i],
                0,
                ranges::MAX_MONO_MS,
            )?;
            if let Some(delta) = e.clock_delta_ms[i] {
                // A jump between two wall times of the allowed range.
                in_range(
                    "events.clock_delta_ms",
                    Some(i),
                    delta,
                    -ranges::MAX_WALL_MS,
                    ranges::MAX_WALL_MS,
                )?;
            }
            out.push(BatchRecord {
                seq,
                body: RecordBody::PcEvent(PcEvent {
                    id: e.id[i].0,
                    library: self.library.clone(),
                    pc: self.pc.clone(),
                    kind: e.kind[i],
                    at: time(at_ms),
                    run_id: run("events", i, e.run[i])?,
                    mono_ms: e.mono_ms[i],
                    clock_delta_ms: e.clock_delta_ms[i],
                }),
            });
        }
        self.decode_entries(&mut out)?;
        out.sort_by_key(|r| r.seq);
        for pair in out.windows(2) {
            if pair[0].seq == pair[1].seq {
                return Err(BatchShapeError::DuplicateSeq(pair[0].seq));
            }
        }
        self.check_lost(&out)?;
        Ok(out)
    }

    /// The entries back in row form, checking their numbers and their kinds' fields.
    fn decode_entries(&self, out: &mut Vec<BatchRecord>) -> Result<(), BatchShapeError> {
        let mut seq = self.first_seq - 1;
        let mut wall_ms = 0i64;
        for (i, EntryRow(seq_delta, code, id, revision, run, mono_ms, wall_delta, fields, texts)) in
            self.entries.iter().enumerate()
        {
            seq = self.next_seq("entries", i, seq, *seq_delta)?;
            wall_ms = wall_after("entries.wall_delta_ms", i, wall_ms, *wall_delta)?;
            in_range("entries.mono_ms", Some(i), *mono_ms, 0, ranges::MAX_MONO_MS)?;
            let kind = RecordKind::from_code(code)
                .filter(|k| k.is_entry())
                .ok_or_else(|| BatchShapeError::UnknownKind {
                    index: i,
                    code: code.chars().take(40).collect(),
                })?;
            let run_id = self
                .runs
                .get(*run as usize)
                .copied()
                .ok_or(BatchShapeError::Index {
                    table: "entries",
                    index: i,
                    what: "run",
                    value: *run,
                })?;
            let entry = EntryRecord {
                kind,
                id: id.0,
                revision: *revision,
                run_id,
                mono_ms: *mono_ms,
                wall_ms,
                fields: fields.clone(),
                texts: texts.clone(),
            };
            let body = RecordBody::from_entry(&self.library, &self.pc, &entry).map_err(|e| {
                BatchShapeError::EntryField {
                    index: i,
                    kind: e.kind,
                    field: e.field,
                    value: e.value,
                }
            })?;
            out.push(BatchRecord { seq, body });
        }
        Ok(())
    }

    /// The numbers outside the columns: the seq range, the send instant and the anchors.
    fn check_header_ranges(&self) -> Result<(), BatchShapeError> {
        in_range("first_seq", None, self.first_seq, 1, ranges::MAX_SEQ)?;
        in_range("last_seq", None, self.last_seq, 1, ranges::MAX_SEQ)?;
        in_range(
            "sent.mono_ms",
            None,
            self.sent.mono_ms,
            0,
            ranges::MAX_MONO_MS,
        )?;
        in_range(
            "sent.wall_ms",
            None,
            self.sent.wall_ms,
            ranges::MIN_WALL_MS,
            ranges::MAX_WALL_MS,
        )?;
        for (i, anchor) in self.anchors.iter().enumerate() {
            in_range(
                "anchors.mono_ms",
                Some(i),
                anchor.mono_ms,
                0,
                ranges::MAX_MONO_MS,
            )?;
            in_range(
                "anchors.server_ms",
                Some(i),
                anchor.server_ms,
                ranges::MIN_WALL_MS,
                ranges::MAX_WALL_MS,
            )?;
            in_range(
                "anchors.uncertainty_ms",
                Some(i),
                anchor.uncertainty_ms,
                0,
                ranges::MAX_MONO_MS,
            )?;
        }
        for (i, bound) in self.bounds.iter().enumerate() {
            in_range(
                "bounds.mono_ms",
                Some(i),
                bound.mono_ms,
                0,
                ranges::MAX_MONO_MS,
            )?;
            in_range(
                "bounds.server_ms",
                Some(i),
                bound.server_ms,
                ranges::MIN_WALL_MS,
                ranges::MAX_WALL_MS,
            )?;
        }
        Ok(())
    }

    /// Lost ranges must lie inside the batch, apart from each other and from every
    /// record: a seq is either sent or declared lost, never both.
    fn check_lost(&self, records: &[BatchRecord]) -> Result<(), BatchShapeError> {
        let mut ranges = self.lost.clone();
        ranges.sort_by_key(|r| r.first);
        let mut previous_last = self.first_seq - 1;
        for r in &ranges {
            let bad = BatchShapeError::LostRange {
                first: r.first,
                last: r.last,
            };
            if r.is_empty() || r.first <= previous_last || r.last > self.last_seq {
                return Err(bad);
            }
            let at = records.partition_point(|rec| rec.seq < r.first);
            if records.get(at).is_some_and(|rec| rec.seq <= r.last) {
                return Err(bad);
            }
            previous_last = r.last;
        }
        Ok(())
    }

    fn next_seq(
        &self,
        table: &'static str,
        index: usize,
        previous: u64,
        delta: u64,
    ) -> Result<u64, BatchShapeError> {
        let seq = previous.saturating_add(delta);
        if delta == 0 || seq > self.last_seq {
            return Err(BatchShapeError::Seq { table, index, seq });
        }
        Ok(seq)
    }
}

fn check_lengths(
    table: &'static str,
    expected: usize,
    columns: &[(&'static str, usize)],
) -> Result<(), BatchShapeError> {
    for (column, found) in columns {
        if *found != expected {
            return Err(BatchShapeError::ColumnLength {
                table,
                column,
                found: *found,
                expected,
            });
        }
    }
    Ok(())
}

/// Why the server did not store one record of a batch. The record stays on the PC,
/// counted and shown, and does not hold the queue back.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectedRecord {
    pub seq: u64,
    /// `invalid` (breaks a domain rule) or `conflict` (same id and revision as a stored
    /// record, different content).
    pub code: String,
    pub detail: String,
}

/// The server's answer to a batch, sent only after its transaction committed.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchAck {
    /// Echoes the batch's id: an answer without it (a captive portal's page) is no answer.
    pub batch_id: Uuid,
    pub epoch: Uuid,
    /// The highest seq up to which the server holds every change of this epoch.
    pub held_seq: u64,
    /// Records stored for the first time, or as a higher revision.
    pub new: u32,
    /// Records the server already had (same content, or an older revision).
    pub duplicates: u32,
    pub rejected: Vec<RejectedRecord>,
    /// Server clock when the request arrived (t2) and when the answer left (t3), Unix ms.
    pub received_at_ms: i64,
    pub sent_at_ms: i64,
}

/// An error answer (RFC 9457 problem details), as every 4xx and 5xx of the API carries.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// A stable code such as `seq-gap`, `forbidden`, `payload-too-large`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// For `seq-gap` (409): the seq the server expects next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_seq: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn session(seq: u64, minutes: i64, key: Option<&str>) -> ChangeRecord {
        let run = Uuid::from_u128(7);
        ChangeRecord {
            seq,
            recorded_at: chrono::Utc.with_ymd_and_hms(2026, 10, 1, 2, 0, 0).unwrap(),
            run_id: run,
            mono_ms: 5,
            body: RecordBody::Session(Session {
                id: Uuid::from_u128(1000 + seq as u128),
                revision: 2,
                library: LibraryCode::parse("dermaji").unwrap(),
                pc: PcCode::parse("pc-01").unwrap(),
                started_at: chrono::Utc.with_ymd_and_hms(2026, 10, 1, 1, 0, 0).unwrap()
                    + chrono::Duration::minutes(minutes),
                ended_at: Some(
                    chrono::Utc.with_ymd_and_hms(2026, 10, 1, 1, 30, 0).unwrap()
                        + chrono::Duration::minutes(minutes),
                ),
                duration_secs: 1800,
                end_reason: Some(EndReason::Logout),
                patron: PatronProfile {
                    user_kind: UserKind::Anggota,
                    purposes: vec![Purpose::Pendidikan, Purpose::Ekonomi],
                    gender: Gender::P,
                    age_group: AgeGroup::Pemuda,
                    group_size: 1,
                    patron_key: key.map(|k| PatronKey::parse(&k.repeat(64)).unwrap()),
                },
                bytes_rx: 2048,
                bytes_tx: 1024,
                online_secs: 1700,
                time_quality: TimeQuality::Trusted,
                run_id: run,
                started_mono_ms: 100_000,
            }),
        }
    }

    fn event(seq: u64) -> ChangeRecord {
        let run = Uuid::from_u128(7);
        let at = chrono::Utc.with_ymd_and_hms(2026, 10, 1, 1, 0, 0).unwrap();
        ChangeRecord {
            seq,
            recorded_at: at,
            run_id: run,
            mono_ms: 9,
            body: RecordBody::PcEvent(PcEvent {
                id: Uuid::from_u128(5000 + seq as u128),
                library: LibraryCode::parse("dermaji").unwrap(),
                pc: PcCode::parse("pc-01").unwrap(),
                kind: PcEventKind::ClockJump,
                at,
                run_id: run,
                mono_ms: 9,
                clock_delta_ms: Some(-3),
            }),
        }
    }

    fn batch(records: &[ChangeRecord], first: u64, last: u64) -> WireBatch {
        WireBatch::encode(
            Uuid::from_u128(1),
            LibraryCode::parse("dermaji").unwrap(),
            PcCode::parse("pc-01").unwrap(),
            Uuid::from_u128(2),
            first,
            last,
            ClientInstant {
                run: Uuid::from_u128(7),
                mono_ms: 1,
                wall_ms: 2,
            },
            vec![],
            records,
        )
    }

    #[test]
    fn records_survive_the_columns_exactly() {
        let records = vec![
            session(3, 0, Some("a")),
            event(4),
            session(6, 50, None),
            session(7, 20, Some("a")),
        ];
        let wire = batch(&records, 3, 9);
        assert_eq!(wire.patron_keys.len(), 1, "repeated keys are sent once");
        assert_eq!(wire.runs.len(), 1);
        let json = serde_json::to_string(&wire).unwrap();
        let back: WireBatch = serde_json::from_str(&json).unwrap();
        let decoded = back.decode().unwrap();
        let expected: Vec<BatchRecord> = records
            .into_iter()
            .map(|r| BatchRecord {
                seq: r.seq,
                body: r.body,
            })
            .collect();
        assert_eq!(decoded, expected);
    }

    fn visit(seq: u64, people: u32) -> ChangeRecord {
        let run = Uuid::from_u128(7);
        let at = chrono::Utc.with_ymd_and_hms(2026, 10, 1, 3, 0, 0).unwrap()
            + chrono::Duration::seconds(seq as i64);
        ChangeRecord {
            seq,
            recorded_at: at,
            run_id: run,
            mono_ms: 11,
            body: RecordBody::Visit(crate::visit::Visit {
                id: Uuid::from_u128(9000 + seq as u128),
                revision: 1,
                library: LibraryCode::parse("dermaji").unwrap(),
                pc: PcCode::parse("pc-01").unwrap(),
                at,
                run_id: run,
                mono_ms: 11 + seq,
                gender: Gender::L,
                age_group: AgeGroup::Anak,
                user_kind: UserKind::Rombongan,
                purpose: crate::vocab::VisitPurpose::Membaca,
                people,
                withdrawn: false,
            }),
        }
    }

    fn member_count(seq: u64) -> ChangeRecord {
        let library = LibraryCode::parse("dermaji").unwrap();
        let month = crate::member_count::YearMonth::parse("2026-09").unwrap();
        let at = chrono::Utc.with_ymd_and_hms(2026, 10, 1, 4, 0, 0).unwrap();
        ChangeRecord {
            seq,
            recorded_at: at,
            run_id: Uuid::from_u128(8),
            mono_ms: 3,
            body: RecordBody::MemberCount(crate::member_count::MemberCount {
                id: crate::member_count::MemberCount::id_for(&library, month),
                revision: 3,
                library,
                pc: PcCode::parse("pc-01").unwrap(),
                at,
                run_id: Uuid::from_u128(8),
                mono_ms: 3,
                month,
                members: 240,
                new_members: 7,
            }),
        }
    }

    fn activity(seq: u64) -> ChangeRecord {
        let at = chrono::Utc.with_ymd_and_hms(2026, 10, 2, 4, 0, 0).unwrap();
        ChangeRecord {
            seq,
            recorded_at: at,
            run_id: Uuid::from_u128(8),
            mono_ms: 4,
            body: RecordBody::Activity(crate::activity::Activity {
                id: Uuid::from_u128(7000),
                revision: 2,
                library: LibraryCode::parse("dermaji").unwrap(),
                pc: PcCode::parse("pc-01").unwrap(),
                at,
                run_id: Uuid::from_u128(8),
                mono_ms: 4,
                date: chrono::NaiveDate::from_ymd_opt(2026, 9, 30).unwrap(),
                start: chrono::NaiveTime::from_hms_opt(13, 30, 0).unwrap(),
                duration_minutes: 90,
                activity_type: crate::vocab::ActivityType::BedahBuku,
                title: "Bedah buku \"Laskar Pelangi\" — ñ".into(),
                partner: None,
                place: crate::vocab::ActivityPlace::DiLuar,
                participants: crate::activity::Participants::parse("P:anak=12,L:anak=9").unwrap(),
                notes: Some("Bersama SD N 1".into()),
            }),
        }
    }

    #[test]
    fn entries_survive_the_rows_exactly_and_are_absent_when_empty() {
        let records = vec![
            session(1, 0, None),
            visit(2, 1),
            event(3),
            visit(4, 30),
            member_count(5),
            activity(6),
        ];
        let wire = batch(&records, 1, 6);
        assert_eq!(wire.entries.len(), 4);
        // Only the activity's row carries texts: a visit's row keeps its bytes.
        assert!(wire.entries[..3].iter().all(|row| row.8.is_empty()));
        assert_eq!(wire.entries[3].8.len(), 3);
        assert_eq!(wire.runs.len(), 2);
        let json = serde_json::to_string(&wire).unwrap();
        assert!(json.contains("\"entries\":[[2,\"visit\","), "{json}");
        let back: WireBatch = serde_json::from_str(&json).unwrap();
        let expected: Vec<BatchRecord> = records
            .into_iter()
            .map(|r| BatchRecord {
                seq: r.seq,
                body: r.body,
            })
            .collect();
        assert_eq!(back.decode().unwrap(), expected);
        let plain = serde_json::to_string(&batch(&[session(1, 0, None), event(2)], 1, 2)).unwrap();
        assert!(!plain.contains("entries"), "{plain}");
    }

    #[test]
    fn hostile_entries_are_refused_naming_the_field() {
        let good = batch(&[visit(1, 2), member_count(2)], 1, 2);
        assert!(good.decode().is_ok());
        let refused = |change: &dyn Fn(&mut WireBatch)| {
            let mut wire = good.clone();
            change(&mut wire);
            wire.decode().unwrap_err().to_string()
        };
        let message = refused(&|w| w.entries[0].1 = "loan".into());
        assert!(message.starts_with("entries[0].kind 'loan'"), "{message}");
        // Text on a kind without text is refused, not dropped.
        let message = refused(&|w| w.entries[0].8 = vec!["Budi".into()]);
        assert!(message.starts_with("entries[0].visit.fields"), "{message}");
        let message = refused(&|w| w.entries[1].1 = "session".into());
        assert!(message.starts_with("entries[1].kind"), "{message}");
        let message = refused(&|w| w.entries[0].7[4] = 501);
        assert!(
            message.starts_with("entries[0].visit.people is 501"),
            "{message}"
        );
        let message = refused(&|w| w.entries[0].7[3] = -1);
        assert!(message.starts_with("entries[0].visit.purpose"), "{message}");
        let message = refused(&|w| w.entries[1].7[1] = i64::MAX);
        assert!(
            message.starts_with("entries[1].member_count.members"),
            "{message}"
        );
        let message = refused(&|w| w.entries[0].6 = i64::MIN);
        assert!(message.starts_with("entries.wall_delta_ms"), "{message}");
        let message = refused(&|w| w.entries[0].5 = u64::MAX);
        assert!(message.starts_with("entries.mono_ms"), "{message}");
        let message = refused(&|w| w.entries[0].4 = 9);
        assert!(message.contains("run index 9"), "{message}");
        let message = refused(&|w| w.entries[1].0 = 5);
        assert!(message.starts_with("entries entry 1"), "{message}");
        // Huge arrays are refused while parsing, before they are held in memory.
        let json = serde_json::to_string(&good).unwrap();
        let wide = json.replacen(
            "[0,0,2,0,2,0]",
            &format!("[{}]", vec!["0"; MAX_ENTRY_FIELDS + 1].join(",")),
            1,
        );
        assert_ne!(wide, json);
        let err = serde_json::from_str::<WireBatch>(&wide).unwrap_err();
        assert!(err.to_string().contains("more than 32 entries"), "{err}");
        let row = "[1,\"visit\",\"00000000000000000000000000002329\",1,0,0,0,[0,0,2,0,2,0]]";
        let many = json.replacen(
            "\"entries\":[",
            &format!("\"entries\":[{},", vec![row; MAX_BATCH_ENTRIES].join(",")),
            1,
        );
        let err = serde_json::from_str::<WireBatch>(&many).unwrap_err();
        assert!(err.to_string().contains("more than 10000 entries"), "{err}");
    }

    #[test]
    fn malformed_shapes_are_refused() {
        let mut wire = batch(&[session(1, 0, None), session(2, 1, None)], 1, 2);
        wire.sessions.gender.pop();
        assert!(matches!(
            wire.decode(),
            Err(BatchShapeError::ColumnLength {
                column: "gender",
                ..
            })
        ));

        let mut wire = batch(&[session(1, 0, None)], 1, 1);
        wire.sessions.seq_delta[0] = 5;
        assert!(matches!(wire.decode(), Err(BatchShapeError::Seq { .. })));

        let mut wire = batch(&[session(1, 0, None)], 1, 1);
        wire.sessions.run[0] = 3;
        assert!(matches!(
            wire.decode(),
            Err(BatchShapeError::Index { what: "run", .. })
        ));

        let wire = batch(&[session(1, 0, None), event(1)], 1, 1);
        assert_eq!(wire.decode(), Err(BatchShapeError::DuplicateSeq(1)));

        let mut wire = batch(&[], 1, 1);
        wire.wire_version = 9;
        assert_eq!(wire.decode(), Err(BatchShapeError::Version(9)));
    }

    #[test]
    fn unknown_enum_values_and_fields_are_refused_by_the_parser() {
        let json = serde_json::to_string(&batch(&[session(1, 0, None)], 1, 1)).unwrap();
        assert!(
            serde_json::from_str::<WireBatch>(&json.replace("\"pemuda\"", "\"astronaut\""))
                .is_err()
        );
        assert!(
            serde_json::from_str::<WireBatch>(&json.replacen('{', "{\"extra\":1,", 1)).is_err()
        );
    }

    /// The field an out-of-range error names, or a description of another outcome.
    fn refusal(wire: &WireBatch) -> String {
        match wire.decode() {
            Err(BatchShapeError::OutOfRange { field, .. }) => field.to_string(),
            other => format!("not an out-of-range refusal: {other:?}"),
        }
    }

    #[test]
    fn every_number_out_of_range_is_refused_naming_its_field() {
        let good = batch(&[session(1, 0, Some("a")), event(2)], 1, 2);
        assert!(good.decode().is_ok());
        let mut cases: Vec<(&str, WireBatch)> = Vec::new();
        let mut add = |field: &'static str, change: &dyn Fn(&mut WireBatch)| {
            let mut wire = good.clone();
            change(&mut wire);
            cases.push((field, wire));
        };
        // The number from the issue: a panic in chrono before this check existed.
        add("sessions.duration_s", &|w| {
            w.sessions.duration_s[0] = 9_223_372_036_854_776
        });
        add("sessions.duration_s", &|w| {
            w.sessions.duration_s[0] = u64::MAX
        });
        add("sessions.started_at_delta_ms", &|w| {
            w.sessions.started_at_delta_ms[0] = i64::MAX
        });
        add("sessions.started_at_delta_ms", &|w| {
            w.sessions.started_at_delta_ms[0] = -1
        });
        add("sessions.started_mono_ms", &|w| {
            w.sessions.started_mono_ms[0] = u64::MAX
        });
        add("sessions.online_s", &|w| w.sessions.online_s[0] = u64::MAX);
        add("sessions.rx_kib", &|w| {
            w.sessions.rx_kib[0] = u64::MAX / 512
        });
        add("sessions.tx_kib", &|w| {
            w.sessions.tx_kib[0] = ranges::MAX_KIB + 1
        });
        add("events.at_delta_ms", &|w| {
            w.events.at_delta_ms[0] = i64::MIN
        });
        add("events.mono_ms", &|w| w.events.mono_ms[0] = u64::MAX);
        add("events.clock_delta_ms", &|w| {
            w.events.clock_delta_ms[0] = Some(i64::MIN)
        });
        add("first_seq", &|w| {
            w.first_seq = u64::MAX - 1;
            w.last_seq = u64::MAX;
        });
        add("sent.mono_ms", &|w| w.sent.mono_ms = u64::MAX);
        add("sent.wall_ms", &|w| w.sent.wall_ms = i64::MIN);
        let anchor = ClockAnchor {
            run: Uuid::from_u128(7),
            mono_ms: 1,
            server_ms: 1_790_000_000_000,
            uncertainty_ms: 10,
        };
        add("anchors.mono_ms", &|w| {
            w.anchors = vec![ClockAnchor {
                mono_ms: u64::MAX,
                ..anchor
            }]
        });
        add("anchors.server_ms", &|w| {
            w.anchors = vec![ClockAnchor {
                server_ms: i64::MAX,
                ..anchor
            }]
        });
        add("anchors.uncertainty_ms", &|w| {
            w.anchors = vec![ClockAnchor {
                uncertainty_ms: u64::MAX,
                ..anchor
            }]
        });
        for (field, wire) in &cases {
            assert_eq!(refusal(wire), *field);
            let message = wire.decode().unwrap_err().to_string();
            assert!(message.starts_with(field), "{message}");
        }
        // The edges themselves are allowed.
        let mut edge = good.clone();
        edge.sessions.duration_s[0] = ranges::MAX_DURATION_S;
        edge.sessions.online_s[0] = ranges::MAX_DURATION_S;
        edge.sessions.rx_kib[0] = ranges::MAX_KIB;
        edge.anchors = vec![anchor];
        let decoded = edge.decode().unwrap();
        let RecordBody::Session(s) = &decoded[0].body else {
            panic!("a session first")
        };
        assert_eq!(s.bytes_rx, ranges::MAX_KIB * 1024);
    }

    #[test]
    fn long_arrays_are_refused_while_parsing() {
        let json = serde_json::to_string(&batch(&[session(1, 0, None)], 1, 1)).unwrap();
        let empties = vec!["[]"; MAX_BATCH_ENTRIES + 1].join(",");
        let bomb = json.replace(
            "\"purposes\":[[\"pendidikan\",\"ekonomi\"]]",
            &format!("\"purposes\":[{empties}]"),
        );
        assert_ne!(bomb, json, "the purposes column was found");
        let err = serde_json::from_str::<WireBatch>(&bomb).unwrap_err();
        assert!(err.to_string().contains("more than 10000 entries"), "{err}");
        let nine = json.replace(
            "[\"pendidikan\",\"ekonomi\"]",
            &format!("[{}]", ["\"hobi\""; MAX_WIRE_PURPOSES + 1].join(",")),
        );
        let err = serde_json::from_str::<WireBatch>(&nine).unwrap_err();
        assert!(err.to_string().contains("more than 8 entries"), "{err}");
        // At the limit the document still parses (and the server judges its size).
        let many = json.replace(
            "\"purposes\":[[\"pendidikan\",\"ekonomi\"]]",
            &format!("\"purposes\":[{}]", vec!["[]"; MAX_BATCH_ENTRIES].join(",")),
        );
        let parsed: WireBatch = serde_json::from_str(&many).unwrap();
        assert_eq!(parsed.sessions.purposes.len(), MAX_BATCH_ENTRIES);
    }

    #[test]
    fn a_library_with_spaces_is_not_a_batch() {
        let json = serde_json::to_string(&batch(&[], 1, 1)).unwrap();
        let spaced = json.replace("\"dermaji\"", "\" dermaji\"");
        assert_ne!(spaced, json);
        assert!(serde_json::from_str::<WireBatch>(&spaced).is_err());
    }

    #[test]
    fn the_ntp_calculation_finds_the_midpoint() {
        // The PC's monotonic clock: send at 1000, answer at 1400 (400 ms round trip);
        // the server took 100 ms between receiving (t2) and answering (t3).
        let anchor = ClockAnchor::measure(Uuid::nil(), 1000, 50_000, 50_100, 1400);
        assert_eq!(anchor.mono_ms, 1200);
        assert_eq!(anchor.server_ms, 50_050);
        assert_eq!(anchor.uncertainty_ms, 150);
        assert_eq!(anchor.server_time_of(200), 49_050);
    }
}
