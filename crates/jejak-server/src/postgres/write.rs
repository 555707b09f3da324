//! The PostgreSQL store's writes. Each runs inside one transaction that the caller
//! commits (and retries on a serialization failure or a deadlock); on `Err` the caller
//! rolls it back, so nothing of a refused batch is written.
//!
//! Lock order, the same in every transaction, so that hundreds of PCs ingesting at once
//! cannot deadlock: the device's row first (it serialises the batches of one PC, as the
//! SQLite writer serialises everything), then patron keys in key order, then the
//! packed rollup rows in key order (day rows by (month, device), then breakdown rows
//! by (month, library), then patron rows by (month, library)).

use std::collections::{BTreeSet, HashMap, HashSet};

use deadpool_postgres::Transaction;
use jejak_domain::{EndReason, LibraryCode, PcCode, RejectedRecord, TimeQuality, Zone};
use uuid::Uuid;

use crate::codes;
use crate::ingest::{
    self, Anchor, PreparedBatch, PreparedEvent, PreparedRecord, PreparedSession, REJECT_CONFLICT,
    REJECT_INVALID, WallOffset,
};
use crate::recount;
use crate::rollup::{self, DayTotals, EventCursor, EventPoint, RollupDelta, SessionFacts};
use crate::sqlite::IngestOutcome;
use crate::store::{DeviceId, EnrollError, IngestError, StoreError};

use super::schema::{FIRST_PARTITION_MONTH, LAST_PARTITION_MONTH};

type PgResult<T> = Result<T, tokio_postgres::Error>;

/// The month (`year * 12 + month - 1`) in a UUIDv7's timestamp: the partition of the
/// session's row. 0 (the default partition) for other ids and implausible months.
pub(crate) fn id_month(id: &Uuid) -> i64 {
    if id.get_version_num() != 7 {
        return 0;
    }
    let b = id.as_bytes();
    let ms = b[..6]
        .iter()
        .fold(0i64, |acc, x| (acc << 8) | i64::from(*x));
    let Some(at) = chrono::DateTime::from_timestamp_millis(ms) else {
        return 0;
    };
    let month = rollup::month_number(at.date_naive());
    if (FIRST_PARTITION_MONTH..=LAST_PARTITION_MONTH).contains(&month) {
        month
    } else {
        0
    }
}

/// The partition table's name of a month.
pub(crate) fn partition_name(month: i64) -> String {
    format!("sessions_m{}{:02}", month / 12, month % 12 + 1)
}

/// The statement that creates a month's partition when it is missing.
pub(crate) fn partition_sql(month: i64) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {} PARTITION OF sessions FOR VALUES FROM ({month}) TO ({})",
        partition_name(month),
        month + 1
    )
}

/// The offset from UTC of a library's stored zone, seconds.
fn zone_offset(timezone: &str) -> Result<i64, IngestError> {
    let zone = Zone::parse(timezone).map_err(|e| {
        IngestError::Store(StoreError::Inconsistent(format!(
            "library zone '{timezone}': {e}"
        )))
    })?;
    Ok(i64::from(zone.offset().local_minus_utc()))
}

fn pg(e: tokio_postgres::Error) -> IngestError {
    IngestError::Store(StoreError::Postgres(e))
}

/// Stores one prepared batch (see `ServerStore::ingest` for the contract).
pub(crate) async fn ingest(
    tx: &Transaction<'_>,
    device: DeviceId,
    batch: &PreparedBatch,
    received_ms: i64,
) -> Result<IngestOutcome, IngestError> {
    // The device's row, locked: batches of one PC run one after the other, so the gap
    // check, the held seq, the counters and the event cursor need no further locks.
    let place = tx
        .query_opt(
            "SELECT d.library, l.timezone FROM devices d JOIN libraries l ON l.id = d.library
             WHERE d.id = $1 FOR UPDATE OF d",
            &[&device.0],
        )
        .await
        .map_err(pg)?;
    let Some(place) = place else {
        return Err(IngestError::UnknownDevice);
    };
    let library: i64 = place.try_get(0).map_err(pg)?;
    let timezone: String = place.try_get(1).map_err(pg)?;
    let zone_offset_s = zone_offset(&timezone)?;
    let dev = device.0;

    let epoch_key = batch.epoch.as_bytes().as_slice();
    let epoch: Option<i64> = tx
        .query_opt(
            "SELECT held_seq FROM epochs WHERE library = $1 AND device = $2 AND epoch = $3",
            &[&library, &dev, &epoch_key],
        )
        .await
        .map_err(pg)?
        .map(|r| r.try_get(0))
        .transpose()
        .map_err(pg)?;
    let held = epoch.unwrap_or(0);
    if batch.first_seq > held.saturating_add(1) {
        return Err(IngestError::SeqGap {
            expected_seq: (held as u64).saturating_add(1),
            first_seq: batch.first_seq as u64,
        });
    }
    if epoch.is_none() {
        tx.execute(
            "INSERT INTO epochs (library, device, epoch, held_seq, first_ms, last_batch_ms)
             VALUES ($1, $2, $3, 0, $4, $4)",
            &[&library, &dev, &epoch_key, &received_ms],
        )
        .await
        .map_err(pg)?;
    }

    // The batch's anchors replace stored ones they beat; then the best anchor of every
    // run the batch touches is read back. One statement each, over arrays.
    if !batch.anchors.is_empty() {
        let mut anchors: Vec<(&Uuid, &Anchor)> = batch.anchors.iter().collect();
        anchors.sort_by_key(|(run, _)| **run);
        let runs: Vec<&[u8]> = anchors
            .iter()
            .map(|(r, _)| r.as_bytes().as_slice())
            .collect();
        let boots: Vec<i64> = anchors.iter().map(|(_, a)| a.boot_ms).collect();
        let doubts: Vec<i64> = anchors.iter().map(|(_, a)| a.uncertainty_ms).collect();
        tx.execute(
            "INSERT INTO runs (library, device, run, boot_ms, uncertainty_ms)
             SELECT $1, $2, r, b, u FROM unnest($3::bytea[], $4::int8[], $5::int8[]) AS t(r, b, u)
             ON CONFLICT (library, device, run) DO UPDATE
                 SET boot_ms = excluded.boot_ms, uncertainty_ms = excluded.uncertainty_ms
                 WHERE excluded.uncertainty_ms < runs.uncertainty_ms",
            &[&library, &dev, &runs, &boots, &doubts],
        )
        .await
        .map_err(pg)?;
    }
    let mut wanted: Vec<&Uuid> = batch.runs.iter().chain(batch.anchors.keys()).collect();
    wanted.push(&batch.sent.run);
    wanted.sort();
    wanted.dedup();
    let mut runs: HashMap<Uuid, Option<Anchor>> = wanted.iter().map(|r| (**r, None)).collect();
    let list: Vec<&[u8]> = wanted.iter().map(|r| r.as_bytes().as_slice()).collect();
    for r in tx
        .query(
            "SELECT run, boot_ms, uncertainty_ms FROM runs
             WHERE library = $1 AND device = $2 AND run = ANY($3::bytea[])",
            &[&library, &dev, &list],
        )
        .await
        .map_err(pg)?
    {
        let run: Vec<u8> = r.try_get(0).map_err(pg)?;
        if let Ok(run) = Uuid::from_slice(&run) {
            runs.insert(
                run,
                Some(Anchor {
                    boot_ms: r.try_get(1).map_err(pg)?,
                    uncertainty_ms: r.try_get(2).map_err(pg)?,
                }),
            );
        }
    }

    let sent_anchor = runs.get(&batch.sent.run).copied().flatten();
    let fresh = ingest::batch_offset(
        &batch.sent,
        sent_anchor.as_ref(),
        received_ms,
        batch.delivery,
    );
    let offset = match fresh {
        Some(o) => {
            tx.execute(
                "UPDATE devices SET offset_ms = $3, offset_uncertainty_ms = $4, offset_at_ms = $5
                 WHERE library = $1 AND id = $2",
                &[&library, &dev, &o.ms, &o.uncertainty_ms, &received_ms],
            )
            .await
            .map_err(pg)?;
            Some(o)
        }
        None => match tx
            .query_opt(
                "SELECT offset_ms, offset_uncertainty_ms FROM devices
                 WHERE library = $1 AND id = $2 AND offset_ms IS NOT NULL",
                &[&library, &dev],
            )
            .await
            .map_err(pg)?
        {
            Some(r) => Some(WallOffset {
                ms: r.try_get(0).map_err(pg)?,
                uncertainty_ms: r.try_get(1).map_err(pg)?,
            }),
            None => None,
        },
    };

    // Patron keys, resolved once per batch in key order (two PCs of a library meeting
    // the same new key wait on each other in the same order).
    let keys: BTreeSet<[u8; 32]> = batch
        .records
        .iter()
        .filter_map(|r| match r {
            PreparedRecord::Session(s) => s.patron,
            _ => None,
        })
        .collect();
    let mut patrons = HashMap::new();
    if !keys.is_empty() {
        let list: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
        tx.execute(
            "INSERT INTO patron_keys (library, key) SELECT $1, k FROM unnest($2::bytea[]) AS t(k)
             ORDER BY k ON CONFLICT (library, key) DO NOTHING",
            &[&library, &list],
        )
        .await
        .map_err(pg)?;
        for r in tx
            .query(
                "SELECT key, id FROM patron_keys WHERE library = $1 AND key = ANY($2::bytea[])",
                &[&library, &list],
            )
            .await
            .map_err(pg)?
        {
            let key: Vec<u8> = r.try_get(0).map_err(pg)?;
            if let Ok(key) = <[u8; 32]>::try_from(key.as_slice()) {
                patrons.insert(key, r.try_get::<_, i64>(1).map_err(pg)?);
            }
        }
    }

    let mut ctx = RecordContext {
        tx,
        device,
        library,
        epoch: epoch_key,
        received_ms,
        runs: &runs,
        offset,
        patrons,
        new: 0,
        duplicates: 0,
        rejected: Vec::new(),
        sessions_added: 0,
        events_added: 0,
        rejected_added: 0,
        zone_offset_s,
        rollups: RollupDelta::default(),
        new_events: Vec::new(),
    };
    // Every new record in two statements (one for sessions, one for events); only the
    // records already stored are then looked at one by one, in seq order.
    let mut session_rows = HashMap::new();
    let mut event_rows = HashMap::new();
    // Rows by the record's place in the batch (a batch may repeat an id).
    for (index, record) in batch.records.iter().enumerate() {
        match record {
            PreparedRecord::Session(s) => {
                session_rows.insert(index, ctx.session_row(s).map_err(IngestError::Store)?);
            }
            PreparedRecord::Event(e) => {
                event_rows.insert(index, ctx.event_row(e));
            }
            PreparedRecord::Invalid { .. } => {}
        }
    }
    // Records from before the retention cutoff are never inserted anew (see
    // `ServerStore::prune_raw`): they are left out here and refused below unless stored.
    let cutoff = retained_from(tx)
        .await
        .map_err(IngestError::Store)?
        .map_or(i64::MIN, |month| month_start_s(month, zone_offset_s));
    session_rows.retain(|_, r| r.start_s >= cutoff);
    let kept_events: HashMap<usize, (i64, i64, i64)> = event_rows
        .iter()
        .filter(|(_, r)| r.0 >= cutoff)
        .map(|(i, r)| (*i, *r))
        .collect();
    let mut fresh_sessions = bulk_sessions(tx, library, dev, batch, &session_rows).await?;
    let mut fresh_events = bulk_events(tx, library, dev, batch, &kept_events).await?;
    for (index, record) in batch.records.iter().enumerate() {
        match record {
            PreparedRecord::Session(s) => {
                let row = match session_rows.get(&index) {
                    Some(row) => *row,
                    None => ctx.session_row(s).map_err(IngestError::Store)?,
                };
                let fresh = fresh_sessions.remove(&s.id);
                ctx.session(s, &row, fresh).await?
            }
            PreparedRecord::Event(e) => {
                let at_s = event_rows.get(&index).map_or(0, |r| r.0);
                let fresh = fresh_events.remove(&e.id);
                ctx.event(e, at_s, fresh).await?
            }
            PreparedRecord::Invalid { seq, id, detail } => {
                ctx.reject(*seq, id, REJECT_INVALID, detail.clone()).await?
            }
        }
    }
    let RecordContext {
        mut rollups,
        new_events,
        new,
        duplicates,
        rejected,
        sessions_added,
        events_added,
        rejected_added,
        ..
    } = ctx;
    fold_new_events(tx, library, dev, zone_offset_s, new_events, &mut rollups).await?;
    write_rollups(tx, library, &rollups.without_zeros()).await?;

    let held_seq = held.max(batch.last_seq);
    tx.execute(
        "UPDATE epochs SET held_seq = $4, last_batch_ms = $5
         WHERE library = $1 AND device = $2 AND epoch = $3",
        &[&library, &dev, &epoch_key, &held_seq, &received_ms],
    )
    .await
    .map_err(pg)?;
    tx.execute(
        "UPDATE devices SET last_batch_ms = $3, sessions = sessions + $4, events = events + $5,
             rejected = rejected + $6
         WHERE library = $1 AND id = $2",
        &[
            &library,
            &dev,
            &received_ms,
            &sessions_added,
            &events_added,
            &rejected_added,
        ],
    )
    .await
    .map_err(pg)?;
    let (new_i, dup_i, rej_i) = (i64::from(new), i64::from(duplicates), rejected.len() as i64);
    tx.execute(
        "INSERT INTO batches (library, device, batch_id, epoch, first_seq, last_seq, new,
             duplicates, rejected, received_ms, deliveries, last_received_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1, $10)
         ON CONFLICT (library, device, batch_id) DO UPDATE
             SET deliveries = batches.deliveries + 1,
                 last_received_ms = excluded.last_received_ms",
        &[
            &library,
            &dev,
            &batch.batch_id.as_bytes().as_slice(),
            &epoch_key,
            &batch.first_seq,
            &batch.last_seq,
            &new_i,
            &dup_i,
            &rej_i,
            &received_ms,
        ],
    )
    .await
    .map_err(pg)?;
    Ok(IngestOutcome {
        held_seq: held_seq as u64,
        new,
        duplicates,
        rejected,
    })
}

/// A session's row as stored, computed once per batch.
#[derive(Debug, Clone, Copy)]
struct SessionRow {
    patron: Option<i64>,
    start_s: i64,
    skew_ms: i64,
    attrs: i64,
    month: i64,
}

/// Inserts the batch's sessions that are not stored yet, in one statement, and returns
/// the ids it inserted (the first occurrence of each, when a batch repeats an id).
async fn bulk_sessions(
    tx: &Transaction<'_>,
    library: i64,
    device: i64,
    batch: &PreparedBatch,
    rows: &HashMap<usize, SessionRow>,
) -> Result<HashSet<Uuid>, IngestError> {
    let mut seen = HashSet::new();
    let mut list: Vec<(&Uuid, &PreparedSession, &SessionRow)> = Vec::new();
    for (index, record) in batch.records.iter().enumerate() {
        if let PreparedRecord::Session(s) = record
            && seen.insert(s.id)
            && let Some(row) = rows.get(&index)
        {
            list.push((&s.id, s, row));
        }
    }
    if list.is_empty() {
        return Ok(HashSet::new());
    }
    // Key order, so that two transactions meeting the same ids wait in the same order.
    list.sort_by_key(|(id, ..)| **id);
    let ids: Vec<&[u8]> = list
        .iter()
        .map(|(id, ..)| id.as_bytes().as_slice())
        .collect();
    let months: Vec<i64> = list.iter().map(|(.., r)| r.month).collect();
    let attrs: Vec<i64> = list.iter().map(|(.., r)| r.attrs).collect();
    let starts: Vec<i64> = list.iter().map(|(.., r)| r.start_s).collect();
    let skews: Vec<i64> = list.iter().map(|(.., r)| r.skew_ms).collect();
    let durations: Vec<i64> = list.iter().map(|(_, s, _)| s.fields.duration_s).collect();
    let offline: Vec<i64> = list.iter().map(|(_, s, _)| s.fields.offline_s).collect();
    let groups: Vec<i64> = list.iter().map(|(_, s, _)| s.fields.group_size).collect();
    let patrons: Vec<Option<i64>> = list.iter().map(|(.., r)| r.patron).collect();
    let rx: Vec<i64> = list.iter().map(|(_, s, _)| s.fields.rx_kib).collect();
    let tx_kib: Vec<i64> = list.iter().map(|(_, s, _)| s.fields.tx_kib).collect();
    let inserted = tx
        .query(
            "INSERT INTO sessions (library, month, id, device, attrs, start_s, skew_ms,
                 duration_s, offline_s, group_size, patron, rx_kib, tx_kib)
             SELECT $1, m, i, $2, a, st, sk, d, o, g, p, r, t
             FROM unnest($3::int8[], $4::bytea[], $5::int8[], $6::int8[], $7::int8[],
                 $8::int8[], $9::int8[], $10::int8[], $11::int8[], $12::int8[], $13::int8[])
                 WITH ORDINALITY AS u(m, i, a, st, sk, d, o, g, p, r, t, n)
             ORDER BY n
             ON CONFLICT (library, month, id) DO NOTHING
             RETURNING id",
            &[
                &library, &device, &months, &ids, &attrs, &starts, &skews, &durations, &offline,
                &groups, &patrons, &rx, &tx_kib,
            ],
        )
        .await
        .map_err(pg)?;
    let mut out = HashSet::new();
    for r in inserted {
        let id: Vec<u8> = r.try_get(0).map_err(pg)?;
        if let Ok(id) = Uuid::from_slice(&id) {
            out.insert(id);
        }
    }
    Ok(out)
}

/// Inserts the batch's pc events that are not stored yet, in one statement.
async fn bulk_events(
    tx: &Transaction<'_>,
    library: i64,
    device: i64,
    batch: &PreparedBatch,
    rows: &HashMap<usize, (i64, i64, i64)>,
) -> Result<HashSet<Uuid>, IngestError> {
    let mut seen = HashSet::new();
    let mut list: Vec<(&PreparedEvent, (i64, i64, i64))> = Vec::new();
    for (index, record) in batch.records.iter().enumerate() {
        if let PreparedRecord::Event(e) = record
            && seen.insert(e.id)
            && let Some(row) = rows.get(&index)
        {
            list.push((e, *row));
        }
    }
    if list.is_empty() {
        return Ok(HashSet::new());
    }
    list.sort_by_key(|(e, _)| e.id);
    let ids: Vec<&[u8]> = list
        .iter()
        .map(|(e, _)| e.id.as_bytes().as_slice())
        .collect();
    let attrs: Vec<i64> = list.iter().map(|(_, r)| r.1).collect();
    let ats: Vec<i64> = list.iter().map(|(_, r)| r.0).collect();
    let skews: Vec<i64> = list.iter().map(|(_, r)| r.2).collect();
    let deltas: Vec<Option<i64>> = list.iter().map(|(e, _)| e.fields.clock_delta_ms).collect();
    let inserted = tx
        .query(
            "INSERT INTO pc_events (library, id, device, attrs, at_s, skew_ms, clock_delta_ms)
             SELECT $1, i, $2, a, t, s, c
             FROM unnest($3::bytea[], $4::int8[], $5::int8[], $6::int8[], $7::int8[])
                 WITH ORDINALITY AS u(i, a, t, s, c, n)
             ORDER BY n
             ON CONFLICT (library, id) DO NOTHING
             RETURNING id",
            &[&library, &device, &ids, &attrs, &ats, &skews, &deltas],
        )
        .await
        .map_err(pg)?;
    let mut out = HashSet::new();
    for r in inserted {
        let id: Vec<u8> = r.try_get(0).map_err(pg)?;
        if let Ok(id) = Uuid::from_slice(&id) {
            out.insert(id);
        }
    }
    Ok(out)
}

/// The per-batch state of the record loop.
struct RecordContext<'a, 't> {
    tx: &'a Transaction<'t>,
    device: DeviceId,
    library: i64,
    epoch: &'a [u8],
    received_ms: i64,
    runs: &'a HashMap<Uuid, Option<Anchor>>,
    offset: Option<WallOffset>,
    patrons: HashMap<[u8; 32], i64>,
    new: u32,
    duplicates: u32,
    rejected: Vec<RejectedRecord>,
    sessions_added: i64,
    events_added: i64,
    rejected_added: i64,
    zone_offset_s: i64,
    rollups: RollupDelta,
    new_events: Vec<EventPoint>,
}

/// The first whole second at or before `ms`.
fn whole_s(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

impl RecordContext<'_, '_> {
    fn anchor(&self, run: &Uuid) -> Option<Anchor> {
        self.runs.get(run).copied().flatten()
    }

    /// How the session is stored: its dated, packed row.
    fn session_row(&self, s: &PreparedSession) -> Result<SessionRow, StoreError> {
        let patron = match &s.patron {
            Some(key) => Some(*self.patrons.get(key).ok_or_else(|| {
                StoreError::Inconsistent("a patron key of the batch was not stored".into())
            })?),
            None => None,
        };
        let f = &s.fields;
        // As in SQLite: an end taken from the last heartbeat stays an estimate.
        let ends_at_heartbeat = matches!(
            f.end_reason.and_then(codes::end_reason_from),
            Some(EndReason::PowerLoss | EndReason::Crash)
        );
        let client_quality = if ends_at_heartbeat {
            TimeQuality::Estimated
        } else {
            TimeQuality::Trusted
        };
        let dated = ingest::date(
            f.raw_start_ms,
            s.mono_ms,
            f.duration_s.saturating_mul(1000),
            client_quality,
            self.anchor(&s.run).as_ref(),
            self.offset.as_ref(),
            self.received_ms,
        );
        let start_s = whole_s(dated.ms);
        let skew_ms = f.raw_start_ms.saturating_sub(start_s.saturating_mul(1000));
        let attrs = codes::SessionAttrs {
            end_reason: f.end_reason,
            user_kind: f.user_kind,
            gender: f.gender,
            age_group: f.age_group,
            quality: codes::time_quality_code(dated.quality),
            client_quality: f.client_quality,
            purposes: f.purposes,
            revision: f.revision,
        }
        .pack();
        Ok(SessionRow {
            patron,
            start_s,
            skew_ms,
            attrs,
            month: id_month(&s.id),
        })
    }

    /// Stores one session whose row the batch's bulk insert either wrote (`fresh`) or
    /// found already stored.
    async fn session(
        &mut self,
        s: &PreparedSession,
        row: &SessionRow,
        fresh: bool,
    ) -> Result<(), StoreError> {
        let f = &s.fields;
        let SessionRow {
            patron,
            start_s,
            skew_ms,
            attrs,
            month,
        } = *row;
        let id = s.id.as_bytes().as_slice();
        let (lib, dev) = (self.library, self.device.0);
        let facts = SessionFacts {
            start_s,
            duration_s: f.duration_s,
            offline_s: f.offline_s,
            attrs,
            group_size: f.group_size,
            kib: f.rx_kib.saturating_add(f.tx_kib),
            patron,
        };
        if fresh {
            self.new += 1;
            self.sessions_added += 1;
            self.rollups
                .session(dev, lib, self.zone_offset_s, &facts, 1);
            return Ok(());
        }
        let r = self
            .tx
            .query_opt(
                "SELECT device, attrs, start_s, skew_ms, duration_s, offline_s, group_size,
                     patron, rx_kib, tx_kib
                 FROM sessions WHERE library = $1 AND month = $2 AND id = $3 FOR UPDATE",
                &[&lib, &month, &id],
            )
            .await?;
        // Not new and not stored: from before the retention cutoff (the bulk insert
        // left it out), so it must not be counted again in rollups that hold it.
        let Some(r) = r else {
            return self
                .reject(
                    s.seq,
                    &s.id,
                    ingest::REJECT_BEYOND_RETENTION,
                    "this session is older than the server keeps records; its month's report is final"
                        .into(),
                )
                .await;
        };
        let packed: i64 = r.try_get(1)?;
        let a = codes::SessionAttrs::unpack(packed);
        let stored_device: i64 = r.try_get(0)?;
        let stored_patron: Option<i64> = r.try_get(7)?;
        let old = SessionFacts {
            start_s: r.try_get(2)?,
            duration_s: r.try_get(4)?,
            offline_s: r.try_get(5)?,
            attrs: packed,
            group_size: r.try_get(6)?,
            kib: r.try_get::<_, i64>(8)?.saturating_add(r.try_get(9)?),
            patron: stored_patron,
        };
        let stored_fields = ingest::SessionFields {
            revision: a.revision,
            raw_start_ms: r
                .try_get::<_, i64>(2)?
                .saturating_mul(1000)
                .saturating_add(r.try_get(3)?),
            duration_s: r.try_get(4)?,
            end_reason: a.end_reason,
            user_kind: a.user_kind,
            purposes: a.purposes,
            gender: a.gender,
            age_group: a.age_group,
            group_size: r.try_get(6)?,
            rx_kib: r.try_get(8)?,
            tx_kib: r.try_get(9)?,
            offline_s: r.try_get(5)?,
            client_quality: a.client_quality,
        };
        if stored_device != dev {
            return self
                .reject(
                    s.seq,
                    &s.id,
                    REJECT_CONFLICT,
                    "this session id is already stored for another PC".into(),
                )
                .await;
        }
        match f.revision.cmp(&stored_fields.revision) {
            std::cmp::Ordering::Greater => {
                self.tx
                    .execute(
                        "UPDATE sessions SET attrs = $4, start_s = $5, skew_ms = $6,
                             duration_s = $7, offline_s = $8, group_size = $9, patron = $10,
                             rx_kib = $11, tx_kib = $12
                         WHERE library = $1 AND month = $2 AND id = $3",
                        &[
                            &lib,
                            &month,
                            &id,
                            &attrs,
                            &start_s,
                            &skew_ms,
                            &f.duration_s,
                            &f.offline_s,
                            &f.group_size,
                            &patron,
                            &f.rx_kib,
                            &f.tx_kib,
                        ],
                    )
                    .await?;
                self.new += 1;
                let offset = self.zone_offset_s;
                self.rollups.session(dev, lib, offset, &old, -1);
                self.rollups.session(dev, lib, offset, &facts, 1);
                Ok(())
            }
            std::cmp::Ordering::Equal if patron == stored_patron && *f == stored_fields => {
                self.duplicates += 1;
                Ok(())
            }
            std::cmp::Ordering::Equal => {
                self.reject(
                    s.seq,
                    &s.id,
                    REJECT_CONFLICT,
                    format!(
                        "revision {} of this session is stored with different content; the stored one is kept",
                        f.revision
                    ),
                )
                .await
            }
            std::cmp::Ordering::Less => {
                self.duplicates += 1;
                Ok(())
            }
        }
    }

    /// How the event is stored: (at_s, attrs, skew_ms).
    fn event_row(&self, e: &PreparedEvent) -> (i64, i64, i64) {
        let f = &e.fields;
        let dated = ingest::date(
            f.raw_at_ms,
            e.mono_ms,
            0,
            TimeQuality::Trusted,
            self.anchor(&e.run).as_ref(),
            self.offset.as_ref(),
            self.received_ms,
        );
        let at_s = whole_s(dated.ms);
        let attrs = codes::event_attrs(f.kind, codes::time_quality_code(dated.quality));
        (
            at_s,
            attrs,
            f.raw_at_ms.saturating_sub(at_s.saturating_mul(1000)),
        )
    }

    /// Stores one event whose row the bulk insert wrote (`fresh`) or found stored.
    async fn event(&mut self, e: &PreparedEvent, at_s: i64, fresh: bool) -> Result<(), StoreError> {
        let f = &e.fields;
        let id = e.id.as_bytes().as_slice();
        let (lib, dev) = (self.library, self.device.0);
        if fresh {
            self.new += 1;
            self.events_added += 1;
            if f.kind == codes::event_kind_code(jejak_domain::PcEventKind::Boot) {
                self.rollups.boot(dev, self.zone_offset_s, at_s);
            }
            self.new_events.push(EventPoint {
                at_s,
                id: *e.id.as_bytes(),
                kind: f.kind,
            });
            return Ok(());
        }
        let r = self
            .tx
            .query_opt(
                "SELECT device, attrs, at_s, skew_ms, clock_delta_ms FROM pc_events
                 WHERE library = $1 AND id = $2",
                &[&lib, &id],
            )
            .await?;
        let Some(r) = r else {
            return self
                .reject(
                    e.seq,
                    &e.id,
                    ingest::REJECT_BEYOND_RETENTION,
                    "this pc event is older than the server keeps records".into(),
                )
                .await;
        };
        let device: i64 = r.try_get(0)?;
        let stored = ingest::EventFields {
            kind: codes::event_attrs_unpack(r.try_get(1)?).0,
            raw_at_ms: r
                .try_get::<_, i64>(2)?
                .saturating_mul(1000)
                .saturating_add(r.try_get(3)?),
            clock_delta_ms: r.try_get(4)?,
        };
        if device == dev && &stored == f {
            self.duplicates += 1;
            Ok(())
        } else if device != dev {
            self.reject(
                e.seq,
                &e.id,
                REJECT_CONFLICT,
                "this pc event id is already stored for another PC".into(),
            )
            .await
        } else {
            self.reject(
                e.seq,
                &e.id,
                REJECT_CONFLICT,
                "this pc event is stored with different content; the stored one is kept".into(),
            )
            .await
        }
    }

    /// Records a refused record (once per change of the device's log, however often it
    /// is sent) and lists it in the answer.
    async fn reject(
        &mut self,
        seq: u64,
        id: &Uuid,
        code: &str,
        detail: String,
    ) -> Result<(), StoreError> {
        // Seqs were checked to fit when the batch was prepared.
        let seq_i = i64::try_from(seq).unwrap_or(i64::MAX);
        let times: i64 = self
            .tx
            .query_one(
                "INSERT INTO rejected (library, device, epoch, seq, record_id, code, detail,
                     first_ms, last_ms, times)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, 1)
                 ON CONFLICT (library, device, epoch, seq) DO UPDATE
                     SET record_id = excluded.record_id, code = excluded.code,
                         detail = excluded.detail, last_ms = excluded.last_ms,
                         times = rejected.times + 1
                 RETURNING times",
                &[
                    &self.library,
                    &self.device.0,
                    &self.epoch,
                    &seq_i,
                    &id.as_bytes().as_slice(),
                    &code,
                    &detail,
                    &self.received_ms,
                ],
            )
            .await?
            .try_get(0)?;
        if times == 1 {
            self.rejected_added += 1;
        }
        self.rejected.push(ingest::rejected(seq, code, detail));
        Ok(())
    }
}

/// Continues the device's uptime fold with the events this batch added; when one sorts
/// before the device's latest event the device is folded again from all its events
/// (the rule of `sqlite/write.rs`, so both backends keep equal rollups).
async fn fold_new_events(
    tx: &Transaction<'_>,
    library: i64,
    device: i64,
    offset_s: i64,
    mut events: Vec<EventPoint>,
    rollups: &mut RollupDelta,
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    events.sort();
    let cursor = match tx
        .query_opt(
            "SELECT event_at_s, event_id, event_kind, event_link_up FROM devices
             WHERE library = $1 AND id = $2 AND event_at_s IS NOT NULL",
            &[&library, &device],
        )
        .await?
    {
        Some(r) => {
            let id: Vec<u8> = r.try_get(1)?;
            Some(EventCursor {
                at_s: r.try_get(0)?,
                id: id.try_into().unwrap_or([0; 16]),
                kind: r.try_get(2)?,
                link_up: r.try_get(3)?,
            })
        }
        None => None,
    };
    let in_order = cursor.is_none_or(|c| (c.at_s, c.id) < (events[0].at_s, events[0].id));
    let cursor = if in_order {
        rollup::fold_events(rollups, device, offset_s, cursor, &events)
    } else {
        tracing::debug!(device, "pc events out of time order: uptime folded again");
        for r in tx
            .query(
                "SELECT month, days FROM day_rollups WHERE library = $1 AND device = $2",
                &[&library, &device],
            )
            .await?
        {
            let month: i64 = r.try_get(0)?;
            let bytes: Vec<u8> = r.try_get(1)?;
            let values = rollup::unpack(&bytes).ok_or_else(|| {
                StoreError::Inconsistent(format!("the packed days of month {month}"))
            })?;
            let first = rollup::month_first(month).ok_or_else(|| {
                StoreError::Inconsistent(format!("the packed days of month {month}"))
            })?;
            for (index, day) in values.chunks(rollup::DAY_FIELDS).enumerate() {
                let stored = DayTotals::from_slice(day);
                if stored.powered_s == 0 && stored.internet_s == 0 {
                    continue;
                }
                let date = first + chrono::Duration::days(index as i64);
                let entry = rollups
                    .days
                    .entry((device, rollup::date_day(date)))
                    .or_default();
                entry.powered_s -= stored.powered_s;
                entry.internet_s -= stored.internet_s;
            }
        }
        let all = device_events(tx, library, device).await?;
        rollup::fold_events(rollups, device, offset_s, None, &all)
    };
    if let Some(c) = cursor {
        write_cursor(tx, library, device, Some(c)).await?;
    }
    Ok(())
}

/// Stores (or clears) a device's event cursor.
pub(crate) async fn write_cursor(
    tx: &Transaction<'_>,
    library: i64,
    device: i64,
    cursor: Option<EventCursor>,
) -> PgResult<()> {
    let (at, id, kind, up) = match cursor {
        Some(c) => (
            Some(c.at_s),
            Some(c.id.to_vec()),
            Some(c.kind),
            Some(c.link_up),
        ),
        None => (None, None, None, None),
    };
    tx.execute(
        "UPDATE devices SET event_at_s = $3, event_id = $4, event_kind = $5, event_link_up = $6
         WHERE library = $1 AND id = $2",
        &[&library, &device, &at, &id, &kind, &up],
    )
    .await?;
    Ok(())
}

/// Every pc event of a device in time order (then id).
pub(crate) async fn device_events(
    tx: &Transaction<'_>,
    library: i64,
    device: i64,
) -> PgResult<Vec<EventPoint>> {
    let mut out = Vec::new();
    for r in tx
        .query(
            "SELECT at_s, id, attrs FROM pc_events WHERE library = $1 AND device = $2",
            &[&library, &device],
        )
        .await?
    {
        let id: Vec<u8> = r.try_get(1)?;
        out.push(EventPoint {
            at_s: r.try_get(0)?,
            id: id.try_into().unwrap_or([0; 16]),
            kind: codes::event_attrs_unpack(r.try_get(2)?).0,
        });
    }
    out.sort();
    Ok(out)
}

/// Adds a batch's (or a rebuild's) rollup changes to the packed rows, in key order.
/// A library-wide row (breakdown, patrons) is shared by the library's PCs: a missing
/// one is first inserted empty (`ON CONFLICT DO NOTHING` waits for a concurrent
/// inserter), then read `FOR UPDATE`, merged and written back, so no update is lost.
pub(crate) async fn write_rollups(
    tx: &Transaction<'_>,
    library: i64,
    delta: &RollupDelta,
) -> Result<(), StoreError> {
    let changes = recount::row_changes(delta)?;
    for ((month, device), days) in &changes.days {
        let lib = device_library(tx, library, *device).await?;
        let stored: Option<Vec<u8>> = tx
            .query_opt(
                "SELECT days FROM day_rollups WHERE month = $1 AND library = $2 AND device = $3
                 FOR UPDATE",
                &[month, &lib, device],
            )
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        let packed = recount::merge_days(stored.as_deref(), days, (*month, *device))?;
        match packed {
            Some(bytes) => {
                tx.execute(
                    "INSERT INTO day_rollups (month, library, device, days) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (month, library, device) DO UPDATE SET days = excluded.days",
                    &[month, &lib, device, &bytes],
                )
                .await?
            }
            None => {
                tx.execute(
                    "DELETE FROM day_rollups WHERE month = $1 AND library = $2 AND device = $3",
                    &[month, &lib, device],
                )
                .await?
            }
        };
    }
    for ((month, lib), cells) in &changes.cells {
        let stored = lock_library_row(tx, "breakdown_rollups", "cells", *month, *lib).await?;
        let packed = recount::merge_cells(stored.as_deref(), cells, (*month, *lib))?;
        put_library_row(tx, "breakdown_rollups", "cells", *month, *lib, packed).await?;
    }
    for ((month, lib), patrons) in &changes.patrons {
        let stored = lock_library_row(tx, "patron_months", "patrons", *month, *lib).await?;
        let packed = recount::merge_patrons(stored.as_deref(), patrons, (*month, *lib))?;
        put_library_row(tx, "patron_months", "patrons", *month, *lib, packed).await?;
    }
    Ok(())
}

/// The library of a device: the batch's own for its device, looked up for a rebuild.
async fn device_library(tx: &Transaction<'_>, library: i64, device: i64) -> PgResult<i64> {
    if library != 0 {
        return Ok(library);
    }
    tx.query_one("SELECT library FROM devices WHERE id = $1", &[&device])
        .await?
        .try_get(0)
}

/// Locks a library-wide packed row (making it if missing) and returns its bytes,
/// `None` for a new (empty) row.
async fn lock_library_row(
    tx: &Transaction<'_>,
    table: &str,
    column: &str,
    month: i64,
    library: i64,
) -> PgResult<Option<Vec<u8>>> {
    tx.execute(
        &format!(
            "INSERT INTO {table} (month, library, {column}) VALUES ($1, $2, '\\x'::bytea)
             ON CONFLICT (month, library) DO NOTHING"
        ),
        &[&month, &library],
    )
    .await?;
    let bytes: Vec<u8> = tx
        .query_one(
            &format!("SELECT {column} FROM {table} WHERE month = $1 AND library = $2 FOR UPDATE"),
            &[&month, &library],
        )
        .await?
        .try_get(0)?;
    Ok((!bytes.is_empty()).then_some(bytes))
}

/// Writes a locked library-wide row back, or removes it when it counts nothing.
async fn put_library_row(
    tx: &Transaction<'_>,
    table: &str,
    column: &str,
    month: i64,
    library: i64,
    packed: Option<Vec<u8>>,
) -> PgResult<()> {
    match packed {
        Some(bytes) => {
            tx.execute(
                &format!("UPDATE {table} SET {column} = $3 WHERE month = $1 AND library = $2"),
                &[&month, &library, &bytes],
            )
            .await?
        }
        None => {
            tx.execute(
                &format!("DELETE FROM {table} WHERE month = $1 AND library = $2"),
                &[&month, &library],
            )
            .await?
        }
    };
    Ok(())
}

fn unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

async fn library_id(tx: &Transaction<'_>, code: &LibraryCode) -> PgResult<Option<i64>> {
    tx.query_opt(
        "SELECT id FROM libraries WHERE code = $1",
        &[&code.as_str()],
    )
    .await?
    .map(|r| r.try_get(0))
    .transpose()
}

pub(crate) async fn add_library(
    tx: &Transaction<'_>,
    code: &LibraryCode,
    name: &str,
    timezone: Zone,
    now_ms: i64,
) -> Result<(), EnrollError> {
    let inserted = tx
        .execute(
            "INSERT INTO libraries (code, name, timezone, created_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (code) DO NOTHING",
            &[&code.as_str(), &name, &timezone.code(), &now_ms],
        )
        .await
        .map_err(StoreError::from)?;
    if inserted == 0 {
        return Err(EnrollError::LibraryExists(code.clone()));
    }
    Ok(())
}

pub(crate) async fn add_device(
    tx: &Transaction<'_>,
    library: &LibraryCode,
    pc: &PcCode,
    token_hash: &[u8; 32],
    now_ms: i64,
) -> Result<DeviceId, EnrollError> {
    let Some(lib) = library_id(tx, library).await.map_err(StoreError::from)? else {
        return Err(EnrollError::UnknownLibrary(library.clone()));
    };
    tx.execute(
        "INSERT INTO devices (library, pc, created_ms) VALUES ($1, $2, $3)
         ON CONFLICT (library, pc) DO NOTHING",
        &[&lib, &pc.as_str(), &now_ms],
    )
    .await
    .map_err(StoreError::from)?;
    let id: i64 = tx
        .query_one(
            "SELECT id FROM devices WHERE library = $1 AND pc = $2 FOR UPDATE",
            &[&lib, &pc.as_str()],
        )
        .await
        .and_then(|r| r.try_get(0))
        .map_err(StoreError::from)?;
    let active = || EnrollError::DeviceActive {
        library: library.clone(),
        pc: pc.clone(),
    };
    let exists = tx
        .query_opt(
            "SELECT 1 FROM tokens WHERE device = $1 AND revoked_ms IS NULL",
            &[&id],
        )
        .await
        .map_err(StoreError::from)?;
    if exists.is_some() {
        return Err(active());
    }
    match tx
        .execute(
            "INSERT INTO tokens (hash, library, device, created_ms) VALUES ($1, $2, $3, $4)",
            &[&token_hash.as_slice(), &lib, &id, &now_ms],
        )
        .await
    {
        Ok(_) => Ok(DeviceId(id)),
        Err(e) if unique_violation(&e) => Err(active()),
        Err(e) => Err(StoreError::from(e).into()),
    }
}

pub(crate) async fn revoke_device(
    tx: &Transaction<'_>,
    library: &LibraryCode,
    pc: &PcCode,
    now_ms: i64,
) -> Result<DeviceId, EnrollError> {
    let unknown = || EnrollError::UnknownDevice {
        library: library.clone(),
        pc: pc.clone(),
    };
    let lib = library_id(tx, library)
        .await
        .map_err(StoreError::from)?
        .ok_or_else(unknown)?;
    let id: i64 = tx
        .query_opt(
            "SELECT id FROM devices WHERE library = $1 AND pc = $2",
            &[&lib, &pc.as_str()],
        )
        .await
        .map_err(StoreError::from)?
        .ok_or_else(unknown)?
        .try_get(0)
        .map_err(StoreError::from)?;
    let revoked = tx
        .execute(
            "UPDATE tokens SET revoked_ms = $2 WHERE device = $1 AND revoked_ms IS NULL",
            &[&id, &now_ms],
        )
        .await
        .map_err(StoreError::from)?;
    if revoked == 0 {
        return Err(EnrollError::AlreadyRevoked {
            library: library.clone(),
            pc: pc.clone(),
        });
    }
    Ok(DeviceId(id))
}

pub(crate) async fn add_staff(
    tx: &Transaction<'_>,
    name: &str,
    token_hash: &[u8; 32],
    now_ms: i64,
) -> Result<(), EnrollError> {
    let exists = tx
        .query_opt(
            "SELECT 1 FROM tokens WHERE staff = $1 AND revoked_ms IS NULL",
            &[&name],
        )
        .await
        .map_err(StoreError::from)?;
    if exists.is_some() {
        return Err(EnrollError::StaffExists(name.to_string()));
    }
    match tx
        .execute(
            "INSERT INTO tokens (hash, staff, created_ms) VALUES ($1, $2, $3)",
            &[&token_hash.as_slice(), &name, &now_ms],
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if unique_violation(&e) => Err(EnrollError::StaffExists(name.to_string())),
        Err(e) => Err(StoreError::from(e).into()),
    }
}

pub(crate) async fn revoke_staff(
    tx: &Transaction<'_>,
    name: &str,
    now_ms: i64,
) -> Result<(), EnrollError> {
    let revoked = tx
        .execute(
            "UPDATE tokens SET revoked_ms = $2 WHERE staff = $1 AND revoked_ms IS NULL",
            &[&name, &now_ms],
        )
        .await
        .map_err(StoreError::from)?;
    if revoked == 0 {
        return Err(EnrollError::UnknownStaff(name.to_string()));
    }
    Ok(())
}

/// Sets a district setting, or removes it with `None`.
pub(crate) async fn set_setting(
    tx: &Transaction<'_>,
    name: &str,
    value: Option<String>,
) -> PgResult<()> {
    match value {
        Some(value) => {
            tx.execute(
                "INSERT INTO settings (name, value) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                &[&name, &value],
            )
            .await?
        }
        None => {
            tx.execute("DELETE FROM settings WHERE name = $1", &[&name])
                .await?
        }
    };
    Ok(())
}

/// The settings key of the retention cutoff (the same as SQLite's, so a copied server
/// keeps it): the month number (see `rollup.rs`) from which raw records are kept.
pub(crate) const RETAINED_FROM: &str = "retained_from";

/// The month from which raw records are kept, when anything was ever pruned.
pub(crate) async fn retained_from(tx: &Transaction<'_>) -> Result<Option<i64>, StoreError> {
    let row = tx
        .query_opt(
            "SELECT value FROM settings WHERE name = $1",
            &[&RETAINED_FROM],
        )
        .await?;
    match row {
        None => Ok(None),
        Some(r) => {
            let v: String = r.try_get(0)?;
            v.parse::<i64>()
                .map(Some)
                .map_err(|_| StoreError::Inconsistent(format!("retention month '{v}'")))
        }
    }
}

/// The Unix time at which a month starts in a zone `offset_s` ahead of UTC.
fn month_start_s(month: i64, offset_s: i64) -> i64 {
    rollup::month_first(month).map_or(i64::MIN, |d| rollup::date_day(d) * 86_400 - offset_s)
}

/// Removes the raw sessions that ended, and the pc events that happened, before `month`
/// began in their library's zone, keeping the rollups, exactly as SQLite's `prune_raw`:
/// open sessions stay, and so does each PC's latest event before the cutoff (the uptime
/// fold continues from it); patron keys no kept session refers to go too. Every
/// device's row is locked first, in key order, so no batch runs meanwhile.
pub(crate) async fn prune_raw(tx: &Transaction<'_>, month: i64) -> Result<(u64, u64), StoreError> {
    let devices = tx
        .query(
            "SELECT d.library, d.id, l.timezone FROM devices d JOIN libraries l ON l.id = d.library
             ORDER BY d.library, d.id FOR UPDATE OF d",
            &[],
        )
        .await?;
    let mut pruned = (0u64, 0u64);
    for row in devices {
        let (library, device): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        let timezone: String = row.try_get(2)?;
        let offset = zone_offset(&timezone).map_err(|e| match e {
            IngestError::Store(e) => e,
            other => StoreError::Inconsistent(other.to_string()),
        })?;
        let cutoff = month_start_s(month, offset);
        // The end-reason digit is 6 while a session is open (codes.rs).
        let sessions = tx
            .execute(
                "DELETE FROM sessions WHERE library = $1 AND device = $2
                     AND start_s + duration_s < $3 AND (attrs / 126) % 63 / 9 <> 6",
                &[&library, &device, &cutoff],
            )
            .await?;
        let events = tx
            .execute(
                "DELETE FROM pc_events WHERE library = $1 AND device = $2 AND at_s < $3
                     AND id IS DISTINCT FROM (
                         SELECT id FROM pc_events WHERE library = $1 AND device = $2
                             AND at_s < $3
                         ORDER BY at_s DESC, id DESC LIMIT 1)",
                &[&library, &device, &cutoff],
            )
            .await?;
        let (s, e) = (sessions as i64, events as i64);
        tx.execute(
            "UPDATE devices SET sessions = sessions - $3, events = events - $4
             WHERE library = $1 AND id = $2",
            &[&library, &device, &s, &e],
        )
        .await?;
        pruned.0 += sessions;
        pruned.1 += events;
    }
    tx.execute(
        "DELETE FROM patron_keys p WHERE NOT EXISTS (
             SELECT 1 FROM sessions s WHERE s.library = p.library AND s.patron = p.id)",
        &[],
    )
    .await?;
    let month = retained_from(tx).await?.map_or(month, |m| m.max(month));
    set_setting(tx, RETAINED_FROM, Some(month.to_string())).await?;
    Ok(pruned)
}
