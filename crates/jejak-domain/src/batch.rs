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

use crate::event::PcEvent;
use crate::identity::{LibraryCode, PcCode};
use crate::session::{PatronKey, PatronProfile, Session};
use crate::vocab::{AgeGroup, EndReason, Gender, PcEventKind, Purpose, TimeQuality, UserKind};
use crate::wire::{ChangeRecord, RecordBody};

/// The version this code writes and reads.
pub const WIRE_VERSION: u32 = 1;
/// The media type of a batch document (before `Content-Encoding`).
pub const BATCH_MEDIA_TYPE: &str = "application/vnd.jejak.batch.v1+json";

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
    pub seq_delta: Vec<u64>,
    pub id: Vec<HexId>,
    pub revision: Vec<u32>,
    /// Index into the batch's `runs`.
    pub run: Vec<u32>,
    pub started_mono_ms: Vec<u64>,
    /// Wall start in Unix ms, as the difference from the previous entry's (the first from 0).
    pub started_at_delta_ms: Vec<i64>,
    pub duration_s: Vec<u64>,
    /// `null` while the session is open.
    pub end_reason: Vec<Option<EndReason>>,
    pub user_kind: Vec<UserKind>,
    pub purposes: Vec<Vec<Purpose>>,
    pub gender: Vec<Gender>,
    pub age_group: Vec<AgeGroup>,
    pub group_size: Vec<u32>,
    /// Index into the batch's `patron_keys`, or `null`.
    pub patron: Vec<Option<u32>>,
    /// Kibibytes received and sent (rounded up): reports count megabytes.
    pub rx_kib: Vec<u64>,
    pub tx_kib: Vec<u64>,
    pub online_s: Vec<u64>,
    pub time_quality: Vec<TimeQuality>,
}

/// pc events, one array per field.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventColumns {
    pub seq_delta: Vec<u64>,
    pub id: Vec<HexId>,
    pub kind: Vec<PcEventKind>,
    pub run: Vec<u32>,
    pub mono_ms: Vec<u64>,
    pub at_delta_ms: Vec<i64>,
    pub clock_delta_ms: Vec<Option<i64>>,
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
    pub runs: Vec<Uuid>,
    pub anchors: Vec<ClockAnchor>,
    pub patron_keys: Vec<PatronKey>,
    pub sessions: SessionColumns,
    pub events: EventColumns,
    /// Seqs of the range that the PC pruned and the server no longer holds (after a
    /// restore from a backup); absent in every ordinary batch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lost: Vec<SeqRange>,
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
    #[error("{table} entry {index}: a number is out of range")]
    Overflow { table: &'static str, index: usize },
    #[error(
        "lost range {first}..={last} is empty, outside first_seq..=last_seq, or overlaps a record or another lost range"
    )]
    LostRange { first: u64, last: u64 },
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
        let (mut last_session_seq, mut last_event_seq) = (first_seq - 1, first_seq - 1);
        let (mut last_start, mut last_at) = (0i64, 0i64);
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
            lost: Vec::new(),
        }
    }

    /// How many records the batch carries.
    pub fn len(&self) -> usize {
        self.sessions.id.len() + self.events.id.len()
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
        let time = |table: &'static str, index: usize, ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms)
                .ok_or(BatchShapeError::Overflow { table, index })
        };
        let mut out = Vec::with_capacity(n + m);
        let mut seq = self.first_seq - 1;
        let mut start_ms = 0i64;
        for i in 0..n {
            seq = self.next_seq("sessions", i, seq, s.seq_delta[i])?;
            start_ms = start_ms.checked_add(s.started_at_delta_ms[i]).ok_or(
                BatchShapeError::Overflow {
                    table: "sessions",
                    index: i,
                },
            )?;
            let started_at = time("sessions", i, start_ms)?;
            let ended_at = match s.end_reason[i] {
                Some(_) => Some(
                    started_at
                        .checked_add_signed(chrono::Duration::seconds(
                            i64::try_from(s.duration_s[i]).map_err(|_| {
                                BatchShapeError::Overflow {
                                    table: "sessions",
                                    index: i,
                                }
                            })?,
                        ))
                        .ok_or(BatchShapeError::Overflow {
                            table: "sessions",
                            index: i,
                        })?,
                ),
                None => None,
            };
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
            let kib = |v: u64| {
                v.checked_mul(1024).ok_or(BatchShapeError::Overflow {
                    table: "sessions",
                    index: i,
                })
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
                    bytes_rx: kib(s.rx_kib[i])?,
                    bytes_tx: kib(s.tx_kib[i])?,
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
            at_ms = at_ms
                .checked_add(e.at_delta_ms[i])
                .ok_or(BatchShapeError::Overflow {
                    table: "events",
                    index: i,
                })?;
            out.push(BatchRecord {
                seq,
                body: RecordBody::PcEvent(PcEvent {
                    id: e.id[i].0,
                    library: self.library.clone(),
                    pc: self.pc.clone(),
                    kind: e.kind[i],
                    at: time("events", i, at_ms)?,
                    run_id: run("events", i, e.run[i])?,
                    mono_ms: e.mono_ms[i],
                    clock_delta_ms: e.clock_delta_ms[i],
                }),
            });
        }
        out.sort_by_key(|r| r.seq);
        for pair in out.windows(2) {
            if pair[0].seq == pair[1].seq {
                return Err(BatchShapeError::DuplicateSeq(pair[0].seq));
            }
        }
        self.check_lost(&out)?;
        Ok(out)
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
