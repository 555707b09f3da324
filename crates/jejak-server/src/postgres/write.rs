//! The PostgreSQL store's writes. Each runs inside one transaction that the caller
//! commits (and retries on a serialization failure or a deadlock); on `Err` the caller
//! rolls it back, so nothing of a refused batch is written.
//!
//! Lock order, the same in every transaction, so that hundreds of PCs ingesting at once
//! cannot deadlock: the device's row first (it serialises the batches of one PC, as the
//! SQLite writer serialises everything), then patron keys in key order, then the
//! packed rollup rows in key order (day rows by (month, device), then breakdown rows
//! by (month, library), then patron rows by (month, library)). New sessions and pc
//! events are inserted in id order.
//!
//! A library-wide rollup row is inserted empty (`ON CONFLICT DO NOTHING`), then read
//! `FOR UPDATE`, merged and written back, so two PCs of a library never lose each
//! other's update. New records are copied in bulk (see [`insert_new`]).

use std::collections::{BTreeSet, HashMap, HashSet};

use deadpool_postgres::Transaction;
use jejak_domain::{
    LibraryCode, LibraryDetails, LibraryDetailsEdit, PcCode, RejectedRecord, TimeQuality, Zone,
};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::codes;
use crate::dating::{self, KeptRun, RunDating, StoredTime};
use crate::entries::{self, Decision, PreparedEntry, StoredEntry};
use crate::ingest::{
    self, Anchor, IngestOutcome, PreparedBatch, PreparedEvent, PreparedRecord, PreparedSession,
    REJECT_CONFLICT, REJECT_INVALID, WallOffset,
};
use crate::recount;
use crate::rollup::{self, DayTotals, EventCursor, EventPoint, RollupDelta, SessionFacts};
use crate::store::{
    DeviceId, EnrollError, IngestError, KeyRegistration, LibraryInfo, StoreError, key_registration,
};

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

/// The statements that make a month's partition: a table of the sessions' shape,
/// attached to `sessions`. Attaching takes only a SHARE UPDATE EXCLUSIVE lock on
/// `sessions` (`CREATE TABLE … PARTITION OF` takes an ACCESS EXCLUSIVE one), so the
/// batches storing sessions meanwhile neither wait for it nor make it wait; the indexes
/// of `sessions` are made on the new, empty table as it is attached.
pub(crate) fn partition_sql(month: i64) -> String {
    let name = partition_name(month);
    format!(
        "CREATE TABLE {name} (LIKE sessions INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
         ALTER TABLE sessions ATTACH PARTITION {name} FOR VALUES FROM ({month}) TO ({})",
        month + 1
    )
}

/// The names of the partitions `sessions` has.
pub(crate) const PARTITION_NAMES: &str = "SELECT c.relname::text FROM pg_inherits i
     JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'sessions'::regclass";

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

/// Locks the device's row and reads what a batch needs of it and of its library.
const LOCK_DEVICE: &str = "SELECT d.library, l.timezone, d.offset_ms, d.offset_uncertainty_ms,
         d.event_at_s, d.event_id, d.event_kind, d.event_link_up, d.dated_until_ms
     FROM devices d JOIN libraries l ON l.id = d.library
     WHERE d.id = $1 FOR UPDATE OF d";
/// The epoch's held seq and the retention cutoff, read under the device's lock.
const SELECT_STATE: &str = "SELECT
     (SELECT held_seq FROM epochs WHERE library = $1 AND device = $2 AND epoch = $3),
     (SELECT value FROM settings WHERE name = $4)";
const UPSERT_RUNS: &str = "INSERT INTO runs (library, device, run, boot_ms, uncertainty_ms)
     SELECT $1, $2, r, b, u FROM unnest($3::bytea[], $4::int8[], $5::int8[]) AS t(r, b, u)
     ON CONFLICT (library, device, run) DO UPDATE
         SET boot_ms = excluded.boot_ms, uncertainty_ms = excluded.uncertainty_ms
         WHERE excluded.uncertainty_ms < runs.uncertainty_ms";
const SELECT_RUNS: &str = "SELECT run, boot_ms, uncertainty_ms FROM runs
     WHERE library = $1 AND device = $2 AND run = ANY($3::bytea[])";
/// The PC's open kept runs and the settled ones the batch's runs name (`dating.rs`).
const SELECT_KEPT_RUNS: &str = "SELECT run, ordinal, open, state, records FROM kept_runs
     WHERE library = $1 AND device = $2 AND (open OR run = ANY($3::bytea[]))";
const UPSERT_KEPT_RUN: &str = "INSERT INTO kept_runs (library, device, run, ordinal, open,
         state, records)
     VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (library, device, run) DO UPDATE SET ordinal = excluded.ordinal,
         open = excluded.open, state = excluded.state, records = excluded.records";
const DELETE_KEPT_RUN: &str =
    "DELETE FROM kept_runs WHERE library = $1 AND device = $2 AND run = $3";
const INSERT_PATRONS: &str = "INSERT INTO patron_keys (library, key)
     SELECT $1, k FROM unnest($2::bytea[]) AS t(k)
     ORDER BY k ON CONFLICT (library, key) DO NOTHING";
const SELECT_PATRONS: &str =
    "SELECT key, id FROM patron_keys WHERE library = $1 AND key = ANY($2::bytea[])";
/// A batch's bookkeeping in one statement: the epoch's row (made by its first batch,
/// `first_ms`, moved on by every batch); the device's counters, and its clock offset
/// and event cursor when the batch changed them (`$9`, `$12`); the batch's row.
const BOOKKEEPING: &str = "WITH epoch AS (
         INSERT INTO epochs (library, device, epoch, held_seq, first_ms, last_batch_ms)
         VALUES ($1, $2, $4, $5, $3, $3)
         ON CONFLICT (library, device, epoch) DO UPDATE
             SET held_seq = excluded.held_seq, last_batch_ms = excluded.last_batch_ms
     ), device AS (
         UPDATE devices SET last_batch_ms = $3, sessions = sessions + $6,
             events = events + $7, rejected = rejected + $8,
             offset_ms = CASE WHEN $9 THEN $10 ELSE offset_ms END,
             offset_uncertainty_ms = CASE WHEN $9 THEN $11 ELSE offset_uncertainty_ms END,
             offset_at_ms = CASE WHEN $9 THEN $3 ELSE offset_at_ms END,
             event_at_s = CASE WHEN $12 THEN $13 ELSE event_at_s END,
             event_id = CASE WHEN $12 THEN $14 ELSE event_id END,
             event_kind = CASE WHEN $12 THEN $15 ELSE event_kind END,
             event_link_up = CASE WHEN $12 THEN $16 ELSE event_link_up END,
             dated_until_ms = coalesce($23, dated_until_ms)
         WHERE library = $1 AND id = $2
     )
     INSERT INTO batches (library, device, batch_id, epoch, first_seq, last_seq, new,
         duplicates, rejected, received_ms, deliveries, last_received_ms)
     VALUES ($1, $2, $17, $4, $18, $19, $20, $21, $22, $3, 1, $3)
     ON CONFLICT (library, device, batch_id) DO UPDATE
         SET deliveries = batches.deliveries + 1,
             last_received_ms = excluded.last_received_ms";
/// How a batch's statements are planned. They are all key look-ups and arrays joined
/// on keys, whose best plan does not depend on the values: planned once per connection
/// (generic plans) instead of once per batch for a connection's first few batches. A
/// generic plan guesses ten elements for every array, and a connection often plans while
/// the rollup tables are still small: it then chose to read a whole rollup table and
/// hash the array, which costs a batch more as the table grows (half a millisecond a
/// statement at 200 rows). Without sequential scans, hash and merge joins, each key is
/// looked up in its index, as the few keys of a batch are best served.
const BATCH_PLANS: &str = "SET LOCAL plan_cache_mode = force_generic_plan;
     SET LOCAL enable_seqscan = off; SET LOCAL enable_hashjoin = off;
     SET LOCAL enable_mergejoin = off";
const COPY_SESSIONS: &str = "COPY sessions (library, month, id, device, attrs, start_s, skew_ms,
         duration_s, offline_s, group_size, patron, rx_kib, tx_kib) FROM STDIN (FORMAT binary)";
const COPY_EVENTS: &str = "COPY pc_events (library, id, device, attrs, at_s, skew_ms,
         clock_delta_ms) FROM STDIN (FORMAT binary)";
/// The savepoint the optimistic COPY of a batch's new records runs under.
const NEW_RECORDS: &str = "jejak_new_records";

/// Stores one prepared batch (see `ServerStore::ingest` for the contract).
///
/// A batch is a handful of round trips, whatever its size: the device's row is locked
/// first; every read that depends only on that lock goes out in one pipeline; the new
/// records are copied in bulk; the bookkeeping (one statement) and the reads of the
/// rollup rows go out in a second pipeline, and the merged rollup rows in one more
/// statement. Statements are prepared once per connection (deadpool's statement
/// cache), and the statements of a pipeline (futures joined with `biased;`, so each
/// sends its request on the first poll, in order) run one after the other in the order
/// they are written, so the lock order holds.
pub(crate) async fn ingest(
    tx: &Transaction<'_>,
    device: DeviceId,
    batch: &PreparedBatch,
    received_ms: i64,
) -> Result<IngestOutcome, IngestError> {
    let dev = device.0;
    // The device's row, locked: batches of one PC run one after the other, so the gap
    // check, the held seq, the counters, the offset and the event cursor (read here,
    // written at the end) need no further locks.
    let lock = tx.prepare_cached(LOCK_DEVICE).await.map_err(pg)?;
    let (_, place) = tokio::try_join!(
        biased;
        tx.batch_execute(BATCH_PLANS),
        async { tx.query_opt(&lock, &[&dev]).await },
    )
    .map_err(pg)?;
    let Some(place) = place else {
        return Err(IngestError::UnknownDevice);
    };
    let library: i64 = place.try_get(0).map_err(pg)?;
    let timezone: String = place.try_get(1).map_err(pg)?;
    let zone_offset_s = zone_offset(&timezone)?;
    let stored_offset = match place.try_get::<_, Option<i64>>(2).map_err(pg)? {
        Some(ms) => Some(WallOffset {
            ms,
            uncertainty_ms: place.try_get(3).map_err(pg)?,
        }),
        None => None,
    };
    let cursor = match place.try_get::<_, Option<i64>>(4).map_err(pg)? {
        Some(at_s) => {
            let id: Option<Vec<u8>> = place.try_get(5).map_err(pg)?;
            Some(EventCursor {
                at_s,
                id: id.and_then(|id| id.try_into().ok()).unwrap_or([0; 16]),
                kind: place.try_get::<_, Option<i64>>(6).map_err(pg)?.unwrap_or(0),
                link_up: place
                    .try_get::<_, Option<bool>>(7)
                    .map_err(pg)?
                    .unwrap_or(false),
            })
        }
        None => None,
    };
    let dated_until: Option<i64> = place.try_get(8).map_err(pg)?;

    // Everything else the batch reads, in one pipeline behind the lock: the epoch's
    // held seq; the batch's anchors written where they beat stored ones, then the best
    // anchor of every run the batch touches; the patron keys made and read in key order
    // (two PCs of a library meeting the same new key wait on each other in the same
    // order); the retention cutoff.
    let (s_state, s_put_runs, s_runs, s_put_keys, s_keys, s_kept) = tokio::try_join!(
        tx.prepare_cached(SELECT_STATE),
        tx.prepare_cached(UPSERT_RUNS),
        tx.prepare_cached(SELECT_RUNS),
        tx.prepare_cached(INSERT_PATRONS),
        tx.prepare_cached(SELECT_PATRONS),
        tx.prepare_cached(SELECT_KEPT_RUNS),
    )
    .map_err(pg)?;
    let batch_runs: Vec<&[u8]> = batch.runs.iter().map(|r| r.as_bytes().as_slice()).collect();
    let epoch_key = batch.epoch.as_bytes().as_slice();
    let mut anchors: Vec<(&Uuid, &Anchor)> = batch.anchors.iter().collect();
    anchors.sort_by_key(|(run, _)| **run);
    let anchor_runs: Vec<&[u8]> = anchors
        .iter()
        .map(|(r, _)| r.as_bytes().as_slice())
        .collect();
    let boots: Vec<i64> = anchors.iter().map(|(_, a)| a.boot_ms).collect();
    let doubts: Vec<i64> = anchors.iter().map(|(_, a)| a.uncertainty_ms).collect();
    let wanted = batch.runs_wanted();
    let run_list: Vec<&[u8]> = wanted.iter().map(|r| r.as_bytes().as_slice()).collect();
    let keys: BTreeSet<[u8; 32]> = batch
        .records
        .iter()
        .filter_map(|r| match r {
            PreparedRecord::Session(s) => s.patron,
            _ => None,
        })
        .collect();
    let key_list: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
    let (state, _, run_rows, _, key_rows, kept_rows) = tokio::try_join!(
        biased;
        async {
            tx.query_one(&s_state, &[&library, &dev, &epoch_key, &RETAINED_FROM])
                .await
        },
        async {
            if anchors.is_empty() {
                return Ok(0);
            }
            tx.execute(
                &s_put_runs,
                &[&library, &dev, &anchor_runs, &boots, &doubts],
            )
            .await
        },
        async { tx.query(&s_runs, &[&library, &dev, &run_list]).await },
        async {
            if key_list.is_empty() {
                return Ok(0);
            }
            tx.execute(&s_put_keys, &[&library, &key_list]).await
        },
        async {
            if key_list.is_empty() {
                return Ok(Vec::new());
            }
            tx.query(&s_keys, &[&library, &key_list]).await
        },
        async { tx.query(&s_kept, &[&library, &dev, &batch_runs]).await },
    )
    .map_err(pg)?;

    let epoch: Option<i64> = state.try_get(0).map_err(pg)?;
    let held = epoch.unwrap_or(0);
    ingest::check_gap(held, batch.first_seq)?;
    if epoch.is_none() {
        // A new epoch: rare, so its one extra look-up costs nothing in the common case.
        let recent: Vec<i64> = tx
            .query(
                "SELECT first_ms FROM epochs WHERE library = $1 AND device = $2 AND first_ms > $3",
                &[&library, &dev, &(received_ms - ingest::NEW_EPOCH_WINDOW_MS)],
            )
            .await
            .map_err(pg)?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()
            .map_err(pg)?;
        ingest::check_new_epoch(device, &recent, received_ms)?;
    }
    let mut runs: HashMap<Uuid, Option<Anchor>> = wanted.iter().map(|r| (**r, None)).collect();
    for r in run_rows {
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
    let mut patrons = HashMap::new();
    for r in key_rows {
        let key: Vec<u8> = r.try_get(0).map_err(pg)?;
        if let Ok(key) = <[u8; 32]>::try_from(key.as_slice()) {
            patrons.insert(key, r.try_get::<_, i64>(1).map_err(pg)?);
        }
    }
    let retained = state
        .try_get::<_, Option<String>>(1)
        .map_err(pg)?
        .map(|v| {
            v.parse::<i64>().map_err(|_| {
                IngestError::Store(StoreError::Inconsistent(format!("retention month '{v}'")))
            })
        })
        .transpose()?;

    let fresh_offset = batch.fresh_offset(&runs, received_ms);
    let offset = fresh_offset.or(stored_offset);

    // Date the runs the batch touches together with the PC's kept runs, and see which
    // stored records the new evidence moves.
    let mut kept = Vec::with_capacity(kept_rows.len());
    for r in kept_rows {
        let run: Vec<u8> = r.try_get(0).map_err(pg)?;
        let state: Vec<u8> = r.try_get(3).map_err(pg)?;
        let records: Vec<u8> = r.try_get(4).map_err(pg)?;
        kept.push(KeptRun::from_row(
            dev,
            &run,
            r.try_get(1).map_err(pg)?,
            r.try_get(2).map_err(pg)?,
            &state,
            &records,
        )?);
    }
    let plan = batch.plan_dating(kept, &runs, held, offset, received_ms, dated_until);

    let mut ctx = RecordContext {
        tx,
        device,
        library,
        epoch: epoch_key,
        received_ms,
        datings: &plan.datings,
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
    let mut refold = false;
    for (record, run_dating) in plan.redated_records(dev) {
        if record.event {
            refold |= ctx.redate_event(record, run_dating).await?;
        } else {
            ctx.redate_session(record, run_dating).await?;
        }
    }
    write_kept_runs(tx, library, dev, &plan).await?;
    // Every new record in one COPY per table; only the records already stored are then
    // looked at one by one, in seq order.
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
            PreparedRecord::Entry(_) | PreparedRecord::Invalid { .. } => {}
        }
    }
    // Records from before the retention cutoff are never inserted anew (see
    // `ServerStore::prune_raw`): they are left out here and refused below unless stored.
    let cutoff = retained.map_or(i64::MIN, |month| month_start_s(month, zone_offset_s));
    session_rows.retain(|_, r| r.start_s >= cutoff || dating::is_undated_s(r.start_s));
    let kept_events: HashMap<usize, (i64, i64, i64)> = event_rows
        .iter()
        .filter(|(_, r)| r.0 >= cutoff || dating::is_undated_s(r.0))
        .map(|(i, r)| (*i, *r))
        .collect();
    let (mut fresh_sessions, mut fresh_events) =
        insert_new(tx, library, dev, batch, held, &session_rows, &kept_events).await?;
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
            PreparedRecord::Entry(e) => ctx.entry(e, &batch.pc, cutoff).await?,
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
    let new_cursor = fold_new_events(
        tx,
        library,
        dev,
        zone_offset_s,
        cursor,
        (new_events, refold),
        &mut rollups,
    )
    .await?;

    // The device's bookkeeping, then the rollup rows (read, merged, written back) last,
    // so that the library-wide rows are locked for as short a time as possible.
    let held_seq = ingest::held_after(held, batch);
    let (new_i, dup_i, rej_i) = (i64::from(new), i64::from(duplicates), rejected.len() as i64);
    let s_bookkeeping = tx.prepare_cached(BOOKKEEPING).await.map_err(pg)?;
    let set_offset = fresh_offset.is_some();
    let offset_ms = fresh_offset.map(|o| o.ms);
    let offset_doubt = fresh_offset.and_then(|o| o.uncertainty_ms);
    let set_cursor = new_cursor.is_some();
    let cursor_at = new_cursor.map(|c| c.at_s);
    let cursor_id = new_cursor.map(|c| c.id.to_vec());
    let cursor_kind = new_cursor.map(|c| c.kind);
    let cursor_up = new_cursor.map(|c| c.link_up);
    let batch_id = batch.batch_id.as_bytes().as_slice();
    let bookkeeping = async {
        tx.execute(
            &s_bookkeeping,
            &[
                &library,
                &dev,
                &received_ms,
                &epoch_key,
                &held_seq,
                &sessions_added,
                &events_added,
                &rejected_added,
                &set_offset,
                &offset_ms,
                &offset_doubt,
                &set_cursor,
                &cursor_at,
                &cursor_id,
                &cursor_kind,
                &cursor_up,
                &batch_id,
                &batch.first_seq,
                &batch.last_seq,
                &new_i,
                &dup_i,
                &rej_i,
                &plan.dated_until,
            ],
        )
        .await
        .map_err(StoreError::from)
    };
    let delta = rollups.without_zeros();
    tokio::try_join!(biased; bookkeeping, write_rollups(tx, library, &delta))
        .map_err(IngestError::Store)?;
    // Seqs the PC pruned before the server lost them: recorded, never silently held.
    for range in &batch.lost {
        tx.execute(
            "INSERT INTO lost_ranges (library, device, epoch, first_seq, last_seq, reported_ms)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            &[
                &library,
                &dev,
                &epoch_key,
                &range.first_seq,
                &range.last_seq,
                &received_ms,
            ],
        )
        .await
        .map_err(StoreError::from)?;
    }
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

/// The sessions to insert (the first occurrence of each id, when a batch repeats one),
/// in key order, so that two transactions meeting the same ids wait in the same order.
fn new_sessions<'b>(
    batch: &'b PreparedBatch,
    rows: &HashMap<usize, SessionRow>,
) -> Vec<(&'b PreparedSession, SessionRow)> {
    let mut seen = HashSet::new();
    let mut list = Vec::new();
    for (index, record) in batch.records.iter().enumerate() {
        if let PreparedRecord::Session(s) = record
            && seen.insert(s.id)
            && let Some(row) = rows.get(&index)
        {
            list.push((s, *row));
        }
    }
    list.sort_by_key(|(s, _)| s.id);
    list
}

/// The pc events to insert, as [`new_sessions`].
fn new_events<'b>(
    batch: &'b PreparedBatch,
    rows: &HashMap<usize, (i64, i64, i64)>,
) -> Vec<(&'b PreparedEvent, (i64, i64, i64))> {
    let mut seen = HashSet::new();
    let mut list = Vec::new();
    for (index, record) in batch.records.iter().enumerate() {
        if let PreparedRecord::Event(e) = record
            && seen.insert(e.id)
            && let Some(row) = rows.get(&index)
        {
            list.push((e, *row));
        }
    }
    list.sort_by_key(|(e, _)| e.id);
    list
}

/// Inserts the batch's records that are not stored yet and returns the ids it inserted
/// (sessions, events).
///
/// Most batches carry only records the server has never seen, so they are first copied
/// in bulk (`COPY … FROM STDIN (FORMAT binary)`, far cheaper than a row-by-row
/// `INSERT … ON CONFLICT`) under a savepoint. When one of them is stored already (a
/// session's new revision, a batch racing its own resend) the copy fails on the primary key as a
/// whole (PostgreSQL logs that error); it is rolled back to the savepoint and the
/// records go through `INSERT … ON CONFLICT DO NOTHING RETURNING id` instead, which
/// tells the new from the stored. A batch whose changes are partly held already (sent
/// again) goes that way at once. Either way the same rows are inserted and the same
/// ids returned. (Looking every id up first instead costs a fifth of the ingest rate.)
async fn insert_new(
    tx: &Transaction<'_>,
    library: i64,
    device: i64,
    batch: &PreparedBatch,
    held: i64,
    session_rows: &HashMap<usize, SessionRow>,
    event_rows: &HashMap<usize, (i64, i64, i64)>,
) -> Result<(HashSet<Uuid>, HashSet<Uuid>), IngestError> {
    let sessions = new_sessions(batch, session_rows);
    let events = new_events(batch, event_rows);
    if sessions.is_empty() && events.is_empty() {
        return Ok((HashSet::new(), HashSet::new()));
    }
    if batch.first_seq <= held {
        // Some of the batch's changes are held already (it is sent again): its records
        // are known to be stored, so the copy would only fail.
        let fresh_sessions = bulk_sessions(tx, library, device, &sessions).await?;
        let fresh_events = bulk_events(tx, library, device, &events).await?;
        return Ok((fresh_sessions, fresh_events));
    }
    // A live batch often carries the end of a session whose start an earlier batch
    // stored, and the copy would then fail (and PostgreSQL log the error) for almost
    // every such batch. When only a few sessions can be stored already (not those at
    // revision 0: a stored one would have its change held), they are looked up first
    // and left out of the copy. A backlog's many revised sessions are rarely stored, and
    // looking each up would cost more than the odd fallback.
    let maybe_stored: Vec<&(&PreparedSession, SessionRow)> = sessions
        .iter()
        .filter(|(s, _)| s.fields.revision > 0)
        .collect();
    let sessions = if !maybe_stored.is_empty() && maybe_stored.len() <= LOOK_UP_FIRST {
        let stored = stored_session_ids(tx, library, device, &maybe_stored).await?;
        sessions
            .into_iter()
            .filter(|(s, _)| !stored.contains(&s.id))
            .collect()
    } else {
        sessions
    };
    if sessions.is_empty() && events.is_empty() {
        return Ok((HashSet::new(), HashSet::new()));
    }
    let copied = async {
        if !sessions.is_empty() {
            copy_sessions(tx, library, device, &sessions).await?;
        }
        if !events.is_empty() {
            copy_events(tx, library, device, &events).await?;
        }
        Ok::<(), tokio_postgres::Error>(())
    };
    let savepoint = format!("SAVEPOINT {NEW_RECORDS}");
    match tokio::try_join!(biased; tx.batch_execute(&savepoint), copied) {
        Ok(_) => {
            // The savepoint is left in place: releasing it would cost a round trip,
            // and COMMIT commits what was written under it all the same.
            let fresh_sessions = sessions.iter().map(|(s, _)| s.id).collect();
            let fresh_events = events.iter().map(|(e, _)| e.id).collect();
            Ok((fresh_sessions, fresh_events))
        }
        Err(e) if unique_violation(&e) => {
            tx.batch_execute(&format!("ROLLBACK TO SAVEPOINT {NEW_RECORDS}"))
                .await
                .map_err(pg)?;
            let fresh_sessions = bulk_sessions(tx, library, device, &sessions).await?;
            let fresh_events = bulk_events(tx, library, device, &events).await?;
            Ok((fresh_sessions, fresh_events))
        }
        Err(e) => Err(pg(e)),
    }
}

/// The most sessions that may be stored already which a batch looks up before its copy
/// (see [`insert_new`]).
const LOOK_UP_FIRST: usize = 32;

/// Which of `list` are stored already.
async fn stored_session_ids(
    tx: &Transaction<'_>,
    library: i64,
    device: i64,
    list: &[&(&PreparedSession, SessionRow)],
) -> Result<HashSet<Uuid>, IngestError> {
    let months: Vec<i64> = list.iter().map(|(_, r)| r.month).collect();
    let ids: Vec<&[u8]> = list
        .iter()
        .map(|(s, _)| s.id.as_bytes().as_slice())
        .collect();
    let statement = tx
        .prepare_cached(
            "SELECT s.id FROM sessions s
             JOIN unnest($3::int8[], $4::bytea[]) AS u(m, i) ON s.month = u.m AND s.id = u.i
             WHERE s.library = $1 AND s.device = $2",
        )
        .await
        .map_err(pg)?;
    let mut out = HashSet::new();
    for r in tx
        .query(&statement, &[&library, &device, &months, &ids])
        .await
        .map_err(pg)?
    {
        let id: Vec<u8> = r.try_get(0).map_err(pg)?;
        if let Ok(id) = Uuid::from_slice(&id) {
            out.insert(id);
        }
    }
    Ok(out)
}

/// Copies new sessions into `sessions` (routed to their month's partition).
async fn copy_sessions(
    tx: &Transaction<'_>,
    library: i64,
    device: i64,
    list: &[(&PreparedSession, SessionRow)],
) -> PgResult<u64> {
    let statement = tx.prepare_cached(COPY_SESSIONS).await?;
    let sink = tx.copy_in(&statement).await?;
    let mut types = vec![Type::INT8, Type::INT8, Type::BYTEA];
    types.extend(std::iter::repeat_n(Type::INT8, 10));
    let writer = BinaryCopyInWriter::new(sink, &types);
    let mut writer = std::pin::pin!(writer);
    for (s, r) in list {
        let f = &s.fields;
        let id = s.id.as_bytes().as_slice();
        writer
            .as_mut()
            .write(&[
                &library,
                &r.month,
                &id,
                &device,
                &r.attrs,
                &r.start_s,
                &r.skew_ms,
                &f.duration_s,
                &f.offline_s,
                &f.group_size,
                &r.patron,
                &f.rx_kib,
                &f.tx_kib,
            ])
            .await?;
    }
    writer.finish().await
}

/// Copies new pc events into `pc_events`.
async fn copy_events(
    tx: &Transaction<'_>,
    library: i64,
    device: i64,
    list: &[(&PreparedEvent, (i64, i64, i64))],
) -> PgResult<u64> {
    let statement = tx.prepare_cached(COPY_EVENTS).await?;
    let sink = tx.copy_in(&statement).await?;
    let types = [
        Type::INT8,
        Type::BYTEA,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::INT8,
    ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    let mut writer = std::pin::pin!(writer);
    for (e, (at_s, attrs, skew_ms)) in list {
        let id = e.id.as_bytes().as_slice();
        writer
            .as_mut()
            .write(&[
                &library,
                &id,
                &device,
                attrs,
                at_s,
                skew_ms,
                &e.fields.clock_delta_ms,
            ])
            .await?;
    }
    writer.finish().await
}

/// Inserts the sessions that are not stored yet, in one statement, and returns the ids
/// it inserted.
async fn bulk_sessions(
    tx: &Transaction<'_>,
    library: i64,
    device: i64,
    list: &[(&PreparedSession, SessionRow)],
) -> Result<HashSet<Uuid>, IngestError> {
    if list.is_empty() {
        return Ok(HashSet::new());
    }
    let ids: Vec<&[u8]> = list
        .iter()
        .map(|(s, _)| s.id.as_bytes().as_slice())
        .collect();
    let months: Vec<i64> = list.iter().map(|(_, r)| r.month).collect();
    let attrs: Vec<i64> = list.iter().map(|(_, r)| r.attrs).collect();
    let starts: Vec<i64> = list.iter().map(|(_, r)| r.start_s).collect();
    let skews: Vec<i64> = list.iter().map(|(_, r)| r.skew_ms).collect();
    let durations: Vec<i64> = list.iter().map(|(s, _)| s.fields.duration_s).collect();
    let offline: Vec<i64> = list.iter().map(|(s, _)| s.fields.offline_s).collect();
    let groups: Vec<i64> = list.iter().map(|(s, _)| s.fields.group_size).collect();
    let patrons: Vec<Option<i64>> = list.iter().map(|(_, r)| r.patron).collect();
    let rx: Vec<i64> = list.iter().map(|(s, _)| s.fields.rx_kib).collect();
    let tx_kib: Vec<i64> = list.iter().map(|(s, _)| s.fields.tx_kib).collect();
    let inserted = tx
        .query(
            "INSERT INTO sessions (library, month, id, device, attrs, start_s, skew_ms,
                 duration_s, offline_s, group_size, patron, rx_kib, tx_kib)
             SELECT $1, m, i, $2, a, st, sk, d, o, g, p, r, t
             FROM unnest($3::int8[], $4::bytea[], $5::int8[], $6::int8[], $7::int8[],
                 $8::int8[], $9::int8[], $10::int8[], $11::int8[], $12::int8[], $13::int8[])
                 WITH ORDINALITY AS u(m, i, a, st, sk, d, o, g, p, r, t, n)
             ORDER BY n
             ON CONFLICT (library, device, month, id) DO NOTHING
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

/// Inserts the pc events that are not stored yet, in one statement.
async fn bulk_events(
    tx: &Transaction<'_>,
    library: i64,
    device: i64,
    list: &[(&PreparedEvent, (i64, i64, i64))],
) -> Result<HashSet<Uuid>, IngestError> {
    if list.is_empty() {
        return Ok(HashSet::new());
    }
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
             ON CONFLICT (library, device, id) DO NOTHING
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

/// A stored session, locked, for the records of a batch that are not new.
const SELECT_SESSION: &str = "SELECT attrs, start_s, skew_ms, duration_s, offline_s,
         group_size, patron, rx_kib, tx_kib
     FROM sessions WHERE library = $1 AND month = $2 AND id = $3 AND device = $4 FOR UPDATE";
const UPDATE_SESSION: &str = "UPDATE sessions SET attrs = $4, start_s = $5, skew_ms = $6,
         duration_s = $7, offline_s = $8, group_size = $9, patron = $10, rx_kib = $11,
         tx_kib = $12
     WHERE library = $1 AND month = $2 AND id = $3 AND device = $13";
const SELECT_EVENT: &str = "SELECT attrs, at_s, skew_ms, clock_delta_ms FROM pc_events
     WHERE library = $1 AND id = $2 AND device = $3";
const UPSERT_REJECTED: &str = "INSERT INTO rejected (library, device, epoch, seq, record_id,
         code, detail, first_ms, last_ms, times)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, 1)
     ON CONFLICT (library, device, epoch, seq) DO UPDATE
         SET record_id = excluded.record_id, code = excluded.code,
             detail = excluded.detail, last_ms = excluded.last_ms,
             times = rejected.times + 1
     RETURNING times";

/// A stored entry with the code of the PC that sent it, locked (`entries.rs`).
const SELECT_ENTRY: &str = "SELECT e.device, d.pc, e.revision, e.wall_ms, e.fields, e.at_s
     FROM entries e JOIN devices d ON d.library = e.library AND d.id = e.device
     WHERE e.library = $1 AND e.kind = $2 AND e.id = $3 FOR UPDATE OF e";
const INSERT_ENTRY: &str = "INSERT INTO entries (library, kind, id, device, revision, wall_ms,
         at_s, fields)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (library, kind, id) DO NOTHING";
const UPDATE_ENTRY: &str = "UPDATE entries SET device = $4, revision = $5, wall_ms = $6,
         at_s = $7, fields = $8
     WHERE library = $1 AND kind = $2 AND id = $3";
/// The packed entry counter rows a batch touches: made when missing, then read back
/// locked, in key order.
const MAKE_ENTRY_MONTHS: &str = "INSERT INTO entry_months (month, library, counters)
     SELECT m, l, '\\x'::bytea FROM unnest($1::int8[], $2::int8[]) AS u(m, l)
     ORDER BY m, l ON CONFLICT (month, library) DO NOTHING";
const LOCK_ENTRY_MONTHS: &str = "SELECT r.month, r.library, r.counters FROM entry_months r
     JOIN unnest($1::int8[], $2::int8[]) AS u(m, l) ON r.month = u.m AND r.library = u.l
     ORDER BY r.month, r.library FOR UPDATE OF r";
/// The merged rows written back ($1-$3) or removed ($4-$5).
const WRITE_ENTRY_MONTHS: &str = "WITH put AS (
         UPDATE entry_months r SET counters = u.b
         FROM unnest($1::int8[], $2::int8[], $3::bytea[]) AS u(m, l, b)
         WHERE r.month = u.m AND r.library = u.l
     )
     DELETE FROM entry_months r USING unnest($4::int8[], $5::int8[]) AS u(m, l)
     WHERE r.month = u.m AND r.library = u.l";

/// The per-batch state of the record loop.
struct RecordContext<'a, 't> {
    tx: &'a Transaction<'t>,
    device: DeviceId,
    library: i64,
    epoch: &'a [u8],
    received_ms: i64,
    /// How each run of the batch is dated (`dating::plan`).
    datings: &'a HashMap<Uuid, RunDating>,
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
    fn run_dating(&self, run: &Uuid) -> RunDating {
        // The plan dates every run a valid record of the batch uses.
        self.datings
            .get(run)
            .copied()
            .unwrap_or(RunDating::OwnClock)
    }

    /// Dates a stored session again (its run's dating moved): the row and its rollups.
    async fn redate_session(
        &mut self,
        record: &dating::RunRecord,
        run: &RunDating,
    ) -> Result<(), StoreError> {
        let id = record.id.as_bytes().as_slice();
        let (lib, dev, month) = (self.library, self.device.0, id_month(&record.id));
        let statement = self.tx.prepare_cached(SELECT_SESSION).await?;
        // A record the server refused (or pruned) has nothing to date.
        let Some(r) = self
            .tx
            .query_opt(&statement, &[&lib, &month, &id, &dev])
            .await?
        else {
            return Ok(());
        };
        let old = SessionFacts {
            attrs: r.try_get(0)?,
            start_s: r.try_get(1)?,
            duration_s: r.try_get(3)?,
            offline_s: r.try_get(4)?,
            group_size: r.try_get(5)?,
            patron: r.try_get(6)?,
            kib: r.try_get::<_, i64>(7)?.saturating_add(r.try_get(8)?),
        };
        let offset = self.offset.as_ref();
        let moved = dating::redate_session(
            &old,
            r.try_get(2)?,
            record.mono_ms,
            run,
            offset,
            self.received_ms,
        );
        let Some((after, new)) = moved else {
            return Ok(());
        };
        self.tx
            .execute(
                "UPDATE sessions SET start_s = $5, skew_ms = $6, attrs = $7
                 WHERE library = $1 AND month = $2 AND id = $3 AND device = $4",
                &[
                    &lib,
                    &month,
                    &id,
                    &dev,
                    &after.start_s,
                    &after.skew_ms,
                    &after.attrs,
                ],
            )
            .await?;
        let zone = self.zone_offset_s;
        self.rollups.moved_session(dev, lib, zone, &old, &new);
        Ok(())
    }

    /// Dates a stored pc event again; whether it moved (the PC's uptime is then folded
    /// again from all its events).
    async fn redate_event(
        &mut self,
        record: &dating::RunRecord,
        run: &RunDating,
    ) -> Result<bool, StoreError> {
        let id = record.id.as_bytes().as_slice();
        let (lib, dev) = (self.library, self.device.0);
        let statement = self.tx.prepare_cached(SELECT_EVENT).await?;
        let Some(r) = self.tx.query_opt(&statement, &[&lib, &id, &dev]).await? else {
            return Ok(false);
        };
        let before = StoredTime {
            attrs: r.try_get(0)?,
            start_s: r.try_get(1)?,
            skew_ms: r.try_get(2)?,
        };
        let offset = self.offset.as_ref();
        let Some(after) =
            dating::redate_event(before, record.mono_ms, run, offset, self.received_ms)
        else {
            return Ok(false);
        };
        self.tx
            .execute(
                "UPDATE pc_events SET at_s = $4, skew_ms = $5, attrs = $6
                 WHERE library = $1 AND id = $2 AND device = $3",
                &[
                    &lib,
                    &id,
                    &dev,
                    &after.start_s,
                    &after.skew_ms,
                    &after.attrs,
                ],
            )
            .await?;
        let kind = codes::event_attrs_unpack(before.attrs).0;
        let zone = self.zone_offset_s;
        self.rollups
            .moved_event(dev, zone, kind, before.start_s, after.start_s);
        Ok(before.start_s != after.start_s)
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
        let dated = dating::date(
            f.raw_start_ms,
            s.mono_ms,
            f.duration_s.saturating_mul(1000),
            dating::session_doubt(f.end_reason),
            &self.run_dating(&s.run),
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
        let statement = self.tx.prepare_cached(SELECT_SESSION).await?;
        let r = self
            .tx
            .query_opt(&statement, &[&lib, &month, &id, &dev])
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
        let packed: i64 = r.try_get(0)?;
        let a = codes::SessionAttrs::unpack(packed);
        let stored_patron: Option<i64> = r.try_get(6)?;
        let old = SessionFacts {
            start_s: r.try_get(1)?,
            duration_s: r.try_get(3)?,
            offline_s: r.try_get(4)?,
            attrs: packed,
            group_size: r.try_get(5)?,
            kib: r.try_get::<_, i64>(7)?.saturating_add(r.try_get(8)?),
            patron: stored_patron,
        };
        let stored_fields = ingest::SessionFields {
            revision: a.revision,
            raw_start_ms: r
                .try_get::<_, i64>(1)?
                .saturating_mul(1000)
                .saturating_add(r.try_get(2)?),
            duration_s: r.try_get(3)?,
            end_reason: a.end_reason,
            user_kind: a.user_kind,
            purposes: a.purposes,
            gender: a.gender,
            age_group: a.age_group,
            group_size: r.try_get(5)?,
            rx_kib: r.try_get(7)?,
            tx_kib: r.try_get(8)?,
            offline_s: r.try_get(4)?,
            client_quality: a.client_quality,
        };
        match f.revision.cmp(&stored_fields.revision) {
            std::cmp::Ordering::Greater => {
                let statement = self.tx.prepare_cached(UPDATE_SESSION).await?;
                self.tx
                    .execute(
                        &statement,
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
                            &dev,
                        ],
                    )
                    .await?;
                self.new += 1;
                let offset = self.zone_offset_s;
                self.rollups.moved_session(dev, lib, offset, &old, &facts);
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
        let dated = dating::date(
            f.raw_at_ms,
            e.mono_ms,
            0,
            TimeQuality::Trusted,
            &self.run_dating(&e.run),
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
                self.rollups.boot(dev, self.zone_offset_s, at_s, 1);
            }
            self.new_events.push(EventPoint {
                at_s,
                id: *e.id.as_bytes(),
                kind: f.kind,
            });
            return Ok(());
        }
        let statement = self.tx.prepare_cached(SELECT_EVENT).await?;
        let r = self.tx.query_opt(&statement, &[&lib, &id, &dev]).await?;
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
        let stored = ingest::EventFields {
            kind: codes::event_attrs_unpack(r.try_get(0)?).0,
            raw_at_ms: r
                .try_get::<_, i64>(1)?
                .saturating_mul(1000)
                .saturating_add(r.try_get(2)?),
            clock_delta_ms: r.try_get(3)?,
        };
        if &stored == f {
            self.duplicates += 1;
            Ok(())
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

    /// Stores a low-volume record in `entries` by the rules of `entries::decide`, and
    /// counts it (the SQLite store's `entry`, with the row locked: a library-scoped
    /// record may be written by two PCs' batches at once). `cutoff` is the retention
    /// cutoff, Unix s.
    async fn entry(&mut self, e: &PreparedEntry, pc: &str, cutoff: i64) -> Result<(), StoreError> {
        let dated = dating::date(
            e.wall_ms,
            e.mono_ms,
            0,
            jejak_domain::TimeQuality::Trusted,
            &self.run_dating(&e.run),
            self.offset.as_ref(),
            self.received_ms,
        );
        let at_s = whole_s(dated.ms);
        let id = e.id.as_bytes().as_slice();
        let (lib, dev, zone) = (self.library, self.device.0, self.zone_offset_s);
        let fields = entries::pack_entry(&e.fields, &e.texts);
        // The entry's row: the key, then the columns an insert or an update writes.
        let row: [&(dyn tokio_postgres::types::ToSql + Sync); 8] = [
            &lib,
            &e.kind_number,
            &id,
            &dev,
            &e.revision,
            &e.wall_ms,
            &at_s,
            &fields,
        ];
        let select = self.tx.prepare_cached(SELECT_ENTRY).await?;
        let insert = self.tx.prepare_cached(INSERT_ENTRY).await?;
        // The row, locked; when missing, inserted (waiting for a concurrent inserter of
        // the same library-scoped record, whose row is then read and decided on).
        let mut stored = None;
        for _ in 0..2 {
            stored = match self
                .tx
                .query_opt(&select, &[&lib, &e.kind_number, &id])
                .await?
            {
                Some(r) => {
                    let packed: Vec<u8> = r.try_get(4)?;
                    let (fields, texts) = entries::unpack_or_empty(&packed);
                    Some(StoredEntry {
                        device: r.try_get(0)?,
                        pc: r.try_get(1)?,
                        revision: r.try_get(2)?,
                        wall_ms: r.try_get(3)?,
                        fields,
                        texts,
                        at_s: r.try_get(5)?,
                    })
                }
                None => None,
            };
            if stored.is_some() {
                break;
            }
            if entries::counts_before(&e.body, at_s, zone, cutoff) {
                let detail = format!(
                    "this {} counts in a month older than the server keeps records; its report is final",
                    e.kind.code()
                );
                return self
                    .reject(e.seq, &e.id, ingest::REJECT_BEYOND_RETENTION, detail)
                    .await;
            }
            if self.tx.execute(&insert, &row).await? == 1 {
                self.new += 1;
                self.rollups.entry(lib, zone, &e.body, at_s, 1);
                return Ok(());
            }
        }
        match entries::decide(e, dev, pc, stored.as_ref()) {
            Decision::Insert | Decision::Replace => {
                if let Some(old) = stored.as_ref().and_then(|s| entries::stored_body(e, s)) {
                    let old_at_s = stored.as_ref().map_or(at_s, |s| s.at_s);
                    self.rollups.entry(lib, zone, &old, old_at_s, -1);
                }
                let update = self.tx.prepare_cached(UPDATE_ENTRY).await?;
                self.tx.execute(&update, &row).await?;
                self.new += 1;
                self.rollups.entry(lib, zone, &e.body, at_s, 1);
                Ok(())
            }
            Decision::Duplicate => {
                self.duplicates += 1;
                Ok(())
            }
            Decision::Conflict(detail) => self.reject(e.seq, &e.id, REJECT_CONFLICT, detail).await,
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
        let statement = self.tx.prepare_cached(UPSERT_REJECTED).await?;
        let times: i64 = self
            .tx
            .query_one(
                &statement,
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
/// (the rule of `sqlite/write.rs`, so both backends keep equal rollups). `cursor` is the
/// device's stored one (read under the device's lock); returns the cursor to store,
/// `None` to leave the stored one as it is.
async fn fold_new_events(
    tx: &Transaction<'_>,
    library: i64,
    device: i64,
    offset_s: i64,
    cursor: Option<EventCursor>,
    (mut events, refold): (Vec<EventPoint>, bool),
    rollups: &mut RollupDelta,
) -> Result<Option<EventCursor>, StoreError> {
    if events.is_empty() && !refold {
        return Ok(None);
    }
    events.sort();
    let in_order =
        !refold && cursor.is_none_or(|c| (c.at_s, c.id) < (events[0].at_s, events[0].id));
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
            let values = rollup::unpack_days(&bytes).ok_or_else(|| {
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
    Ok(cursor)
}

/// Writes what the plan keeps of the PC's runs, and forgets the rest.
async fn write_kept_runs(
    tx: &Transaction<'_>,
    library: i64,
    device: i64,
    plan: &dating::Plan,
) -> Result<(), StoreError> {
    if plan.keep.is_empty() && plan.forget.is_empty() {
        return Ok(());
    }
    let (upsert, delete) = tokio::try_join!(
        tx.prepare_cached(UPSERT_KEPT_RUN),
        tx.prepare_cached(DELETE_KEPT_RUN)
    )?;
    for k in &plan.keep {
        tx.execute(
            &upsert,
            &[
                &library,
                &device,
                &k.run.as_bytes().as_slice(),
                &k.ordinal,
                &k.open,
                &k.state(),
                &k.record_ids(),
            ],
        )
        .await?;
    }
    for run in &plan.forget {
        tx.execute(&delete, &[&library, &device, &run.as_bytes().as_slice()])
            .await?;
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

const LOCK_DAYS: &str = "SELECT d.month, d.library, d.device, d.days FROM day_rollups d
     JOIN unnest($1::int8[], $2::int8[], $3::int8[]) AS u(m, l, v)
         ON d.month = u.m AND d.library = u.l AND d.device = u.v
     ORDER BY d.month, d.library, d.device FOR UPDATE OF d";
const MAKE_CELLS: &str = "INSERT INTO breakdown_rollups (month, library, cells)
     SELECT m, l, '\\x'::bytea FROM unnest($1::int8[], $2::int8[]) AS u(m, l)
     ORDER BY m, l ON CONFLICT (month, library) DO NOTHING";
const LOCK_CELLS: &str = "SELECT r.month, r.library, r.cells FROM breakdown_rollups r
     JOIN unnest($1::int8[], $2::int8[]) AS u(m, l) ON r.month = u.m AND r.library = u.l
     ORDER BY r.month, r.library FOR UPDATE OF r";
const MAKE_PATRONS: &str = "INSERT INTO patron_months (month, library, patrons)
     SELECT m, l, '\\x'::bytea FROM unnest($1::int8[], $2::int8[]) AS u(m, l)
     ORDER BY m, l ON CONFLICT (month, library) DO NOTHING";
const LOCK_PATRONS: &str = "SELECT r.month, r.library, r.patrons FROM patron_months r
     JOIN unnest($1::int8[], $2::int8[]) AS u(m, l) ON r.month = u.m AND r.library = u.l
     ORDER BY r.month, r.library FOR UPDATE OF r";
/// The merged rollup rows written back in one statement (every row it touches is
/// locked already, or new and only this device's): day rows put ($1-$4) or removed
/// ($5-$7), breakdown rows put ($8-$10) or removed ($11-$12), patron rows put
/// ($13-$15) or removed ($16-$17).
const WRITE_ROLLUPS: &str = "WITH put_days AS (
         INSERT INTO day_rollups (month, library, device, days)
         SELECT m, l, v, b FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::bytea[])
             AS u(m, l, v, b)
         ON CONFLICT (month, library, device) DO UPDATE SET days = excluded.days
     ), drop_days AS (
         DELETE FROM day_rollups d USING unnest($5::int8[], $6::int8[], $7::int8[]) AS u(m, l, v)
         WHERE d.month = u.m AND d.library = u.l AND d.device = u.v
     ), put_cells AS (
         UPDATE breakdown_rollups r SET cells = u.b
         FROM unnest($8::int8[], $9::int8[], $10::bytea[]) AS u(m, l, b)
         WHERE r.month = u.m AND r.library = u.l
     ), drop_cells AS (
         DELETE FROM breakdown_rollups r USING unnest($11::int8[], $12::int8[]) AS u(m, l)
         WHERE r.month = u.m AND r.library = u.l
     ), put_patrons AS (
         UPDATE patron_months r SET patrons = u.b
         FROM unnest($13::int8[], $14::int8[], $15::bytea[]) AS u(m, l, b)
         WHERE r.month = u.m AND r.library = u.l
     )
     DELETE FROM patron_months r USING unnest($16::int8[], $17::int8[]) AS u(m, l)
     WHERE r.month = u.m AND r.library = u.l";

/// Packed rollup rows to write back: the keys' columns and the new bytes.
#[derive(Default)]
struct RowWrites {
    months: Vec<i64>,
    libraries: Vec<i64>,
    devices: Vec<i64>,
    bytes: Vec<Vec<u8>>,
}

impl RowWrites {
    fn push(&mut self, month: i64, library: i64, device: i64, bytes: Vec<u8>) {
        self.months.push(month);
        self.libraries.push(library);
        self.devices.push(device);
        self.bytes.push(bytes);
    }
}

/// Stored packed rows by key ((month, library, device) or (month, library)).
type Stored<K> = HashMap<K, Vec<u8>>;

/// Adds a batch's (or a rebuild's) rollup changes to the packed rows, in key order: day
/// rows by (month, library, device), then breakdown rows, then patron rows by (month,
/// library). A library-wide row (breakdown, patrons) is shared by the library's PCs: the
/// missing ones are first inserted empty (`ON CONFLICT DO NOTHING` waits for a
/// concurrent inserter), then all are read `FOR UPDATE` (locked in key order: `ORDER
/// BY` comes before the row locks), merged and written back, so no update is lost.
/// The reads go out as one pipeline, the writes as one statement.
pub(crate) async fn write_rollups(
    tx: &Transaction<'_>,
    library: i64,
    delta: &RollupDelta,
) -> Result<(), StoreError> {
    write_entry_months(tx, &delta.entries).await?;
    let changes = recount::row_changes(delta)?;
    if changes.days.is_empty() && changes.cells.is_empty() && changes.patrons.is_empty() {
        return Ok(());
    }
    let (lock_days, make_cells, lock_cells, make_patrons, lock_patrons, write_rows) = tokio::try_join!(
        tx.prepare_cached(LOCK_DAYS),
        tx.prepare_cached(MAKE_CELLS),
        tx.prepare_cached(LOCK_CELLS),
        tx.prepare_cached(MAKE_PATRONS),
        tx.prepare_cached(LOCK_PATRONS),
        tx.prepare_cached(WRITE_ROLLUPS),
    )?;

    // The library of every device whose days change: the batch's own, or looked up
    // for a rebuild (library 0).
    let mut device_libraries: HashMap<i64, i64> = HashMap::new();
    if library == 0 && !changes.days.is_empty() {
        let devices: Vec<i64> = changes
            .days
            .keys()
            .map(|(_, device)| *device)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for r in tx
            .query(
                "SELECT id, library FROM devices WHERE id = ANY($1::int8[])",
                &[&devices],
            )
            .await?
        {
            device_libraries.insert(r.try_get(0)?, r.try_get(1)?);
        }
    }
    let mut days = Vec::with_capacity(changes.days.len());
    for ((month, device), totals) in &changes.days {
        let lib = if library != 0 {
            library
        } else {
            *device_libraries.get(device).ok_or_else(|| {
                StoreError::Inconsistent(format!("rollups of device {device}, which has no row"))
            })?
        };
        days.push(((*month, lib, *device), totals));
    }
    days.sort_by_key(|(key, _)| *key);
    let day_months: Vec<i64> = days.iter().map(|((m, _, _), _)| *m).collect();
    let day_libraries: Vec<i64> = days.iter().map(|((_, l, _), _)| *l).collect();
    let day_devices: Vec<i64> = days.iter().map(|((_, _, d), _)| *d).collect();
    let cell_months: Vec<i64> = changes.cells.keys().map(|(m, _)| *m).collect();
    let cell_libraries: Vec<i64> = changes.cells.keys().map(|(_, l)| *l).collect();
    let patron_months: Vec<i64> = changes.patrons.keys().map(|(m, _)| *m).collect();
    let patron_libraries: Vec<i64> = changes.patrons.keys().map(|(_, l)| *l).collect();

    let (day_rows, _, cell_rows, _, patron_rows) = tokio::try_join!(
        biased;
        async {
            if days.is_empty() {
                return Ok(Vec::new());
            }
            tx.query(&lock_days, &[&day_months, &day_libraries, &day_devices])
                .await
        },
        async {
            if cell_months.is_empty() {
                return Ok(0);
            }
            tx.execute(&make_cells, &[&cell_months, &cell_libraries])
                .await
        },
        async {
            if cell_months.is_empty() {
                return Ok(Vec::new());
            }
            tx.query(&lock_cells, &[&cell_months, &cell_libraries])
                .await
        },
        async {
            if patron_months.is_empty() {
                return Ok(0);
            }
            tx.execute(&make_patrons, &[&patron_months, &patron_libraries])
                .await
        },
        async {
            if patron_months.is_empty() {
                return Ok(Vec::new());
            }
            tx.query(&lock_patrons, &[&patron_months, &patron_libraries])
                .await
        },
    )?;

    let mut stored_days: Stored<(i64, i64, i64)> = HashMap::new();
    for r in day_rows {
        stored_days.insert((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?), r.try_get(3)?);
    }
    let mut day_puts = RowWrites::default();
    let mut day_drops = RowWrites::default();
    for ((month, lib, device), totals) in &days {
        let stored = stored_days.get(&(*month, *lib, *device)).map(Vec::as_slice);
        match recount::merge_days(stored, totals, (*month, *device))? {
            Some(bytes) => day_puts.push(*month, *lib, *device, bytes),
            None => day_drops.push(*month, *lib, *device, Vec::new()),
        }
    }
    let (cell_puts, cell_drops) =
        merge_library_rows(&changes.cells, cell_rows, recount::merge_cells)?;
    let (patron_puts, patron_drops) =
        merge_library_rows(&changes.patrons, patron_rows, recount::merge_patrons)?;

    let (dp, dd, cp, cd, pp, pd) = (
        &day_puts,
        &day_drops,
        &cell_puts,
        &cell_drops,
        &patron_puts,
        &patron_drops,
    );
    tx.execute(
        &write_rows,
        &[
            &dp.months,
            &dp.libraries,
            &dp.devices,
            &dp.bytes,
            &dd.months,
            &dd.libraries,
            &dd.devices,
            &cp.months,
            &cp.libraries,
            &cp.bytes,
            &cd.months,
            &cd.libraries,
            &pp.months,
            &pp.libraries,
            &pp.bytes,
            &pd.months,
            &pd.libraries,
        ],
    )
    .await?;
    Ok(())
}

/// Adds the low-volume kinds' counter changes of a delta (`rollup::entry_counters`) to
/// their packed month rows: made when missing, read back locked in key order (so two
/// batches of one library lock them in the same order), merged, written back or
/// removed when they count nothing any more.
async fn write_entry_months(
    tx: &Transaction<'_>,
    changes: &rustc_hash::FxHashMap<(i64, i64, String), i64>,
) -> Result<(), StoreError> {
    if changes.is_empty() {
        return Ok(());
    }
    let months = rollup::entry_month_changes(changes);
    let month_numbers: Vec<i64> = months.keys().map(|(m, _)| *m).collect();
    let libraries: Vec<i64> = months.keys().map(|(_, l)| *l).collect();
    let make = tx.prepare_cached(MAKE_ENTRY_MONTHS).await?;
    tx.execute(&make, &[&month_numbers, &libraries]).await?;
    let lock = tx.prepare_cached(LOCK_ENTRY_MONTHS).await?;
    let mut stored: HashMap<(i64, i64), Vec<u8>> = HashMap::new();
    for r in tx.query(&lock, &[&month_numbers, &libraries]).await? {
        stored.insert((r.try_get(0)?, r.try_get(1)?), r.try_get(2)?);
    }
    let (mut puts, mut drops) = (RowWrites::default(), RowWrites::default());
    for ((month, library), changes) in &months {
        let mut counters = match stored.get(&(*month, *library)) {
            // An empty row was just made by the insert above.
            Some(bytes) if !bytes.is_empty() => {
                rollup::EntryMonth::unpack(bytes).ok_or_else(|| {
                    StoreError::Inconsistent(format!(
                        "the packed entry counters of month {month}, library {library}"
                    ))
                })?
            }
            _ => rollup::EntryMonth::default(),
        };
        counters.add(changes);
        match counters.pack() {
            Some(bytes) => puts.push(*month, *library, 0, bytes),
            None => drops.push(*month, *library, 0, Vec::new()),
        }
    }
    let write = tx.prepare_cached(WRITE_ENTRY_MONTHS).await?;
    tx.execute(
        &write,
        &[
            &puts.months,
            &puts.libraries,
            &puts.bytes,
            &drops.months,
            &drops.libraries,
        ],
    )
    .await?;
    Ok(())
}

/// The V8 migration: the entry counters of the V7 layout (a row per library, local day
/// and key) packed into month rows as they are (pruned months included, which a recount
/// could not bring back), then the old table dropped.
pub(crate) async fn pack_entry_counts(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let mut counters = rustc_hash::FxHashMap::default();
    for r in tx
        .query("SELECT library, day, key, value FROM entry_counts", &[])
        .await?
    {
        counters.insert((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?), r.try_get(3)?);
    }
    write_entry_months(tx, &counters).await?;
    tx.batch_execute("DROP TABLE entry_counts").await?;
    Ok(())
}

/// Merges a batch's changes to library-wide packed rows (breakdown cells or patrons,
/// by (month, library)) into the rows read back locked; returns the rows to write and
/// the rows to remove (those that count nothing any more). An empty row read back (just
/// made by the `ON CONFLICT DO NOTHING` insert) counts as missing.
fn merge_library_rows<V: ?Sized, C: std::borrow::Borrow<V>>(
    changes: &std::collections::BTreeMap<(i64, i64), C>,
    rows: Vec<tokio_postgres::Row>,
    merge: impl Fn(Option<&[u8]>, &V, (i64, i64)) -> Result<Option<Vec<u8>>, StoreError>,
) -> Result<(RowWrites, RowWrites), StoreError> {
    let mut stored: Stored<(i64, i64)> = HashMap::new();
    for r in rows {
        let bytes: Vec<u8> = r.try_get(2)?;
        if !bytes.is_empty() {
            stored.insert((r.try_get(0)?, r.try_get(1)?), bytes);
        }
    }
    let (mut puts, mut drops) = (RowWrites::default(), RowWrites::default());
    for (&(month, library), change) in changes {
        let row = stored.get(&(month, library)).map(Vec::as_slice);
        match merge(row, change.borrow(), (month, library))? {
            Some(bytes) => puts.push(month, library, 0, bytes),
            None => drops.push(month, library, 0, Vec::new()),
        }
    }
    Ok((puts, drops))
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
    details: &LibraryDetails,
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
    // In the same transaction as the insert: a library is never seen without its details.
    write_library(tx, code, name, details).await?;
    Ok(())
}

/// Changes a library's name and details (see `ServerStore::edit_library`). The row is
/// locked first, so two edits of the same library apply one after the other.
pub(crate) async fn edit_library(
    tx: &Transaction<'_>,
    code: &LibraryCode,
    name: Option<&str>,
    edit: &LibraryDetailsEdit,
) -> Result<LibraryInfo, EnrollError> {
    tx.execute(
        "SELECT 1 FROM libraries WHERE code = $1 FOR UPDATE",
        &[&code.as_str()],
    )
    .await
    .map_err(StoreError::from)?;
    let Some(mut library) = super::read::libraries(tx)
        .await?
        .into_iter()
        .find(|l| &l.code == code)
    else {
        return Err(EnrollError::UnknownLibrary(code.clone()));
    };
    if let Some(name) = name {
        library.name = name.to_string();
    }
    edit.apply(&mut library.details);
    write_library(tx, code, &library.name, &library.details).await?;
    Ok(library)
}

/// Writes a library's name and every detail column.
async fn write_library(
    tx: &Transaction<'_>,
    code: &LibraryCode,
    name: &str,
    d: &LibraryDetails,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE libraries SET name = $2, npp = $3, desa = $4, kecamatan = $5, address = $6,
             kepala_desa = $7, manager = $8, manager_nip = $9
         WHERE code = $1",
        &[
            &code.as_str(),
            &name,
            &d.npp,
            &d.desa,
            &d.kecamatan,
            &d.address,
            &d.kepala_desa,
            &d.manager,
            &d.manager_nip,
        ],
    )
    .await?;
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

pub(crate) async fn register_device_key(
    tx: &Transaction<'_>,
    token_hash: &[u8; 32],
    public_key: &[u8; 32],
    now_ms: i64,
) -> Result<KeyRegistration, StoreError> {
    // FOR UPDATE: two registrations racing for one token see each other's key.
    let stored: Option<Option<Vec<u8>>> = tx
        .query_opt(
            "SELECT public_key FROM tokens
             WHERE hash = $1 AND device IS NOT NULL AND revoked_ms IS NULL FOR UPDATE",
            &[&token_hash.as_slice()],
        )
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    let (outcome, write) = key_registration(stored.as_ref().map(|k| k.as_deref()), public_key);
    if write {
        tx.execute(
            "UPDATE tokens SET public_key = $2, key_registered_ms = $3
             WHERE hash = $1 AND public_key IS NULL",
            &[&token_hash.as_slice(), &public_key.as_slice(), &now_ms],
        )
        .await?;
    }
    Ok(outcome)
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
        // The end-reason digit is 6 while a session is open (codes.rs). Undated records
        // stay: they may be dated yet, and no month's report has counted them.
        let undated = dating::UNDATED_BEFORE_MS / 1000;
        let sessions = tx
            .execute(
                "DELETE FROM sessions WHERE library = $1 AND device = $2
                     AND start_s + duration_s < $3 AND (attrs / 126) % 63 / 9 <> 6
                     AND start_s >= $4",
                &[&library, &device, &cutoff, &undated],
            )
            .await?;
        let events = tx
            .execute(
                "DELETE FROM pc_events WHERE library = $1 AND device = $2 AND at_s < $3
                     AND at_s >= $4
                     AND id IS DISTINCT FROM (
                         SELECT id FROM pc_events WHERE library = $1 AND device = $2
                             AND at_s < $3
                         ORDER BY at_s DESC, id DESC LIMIT 1)",
                &[&library, &device, &cutoff, &undated],
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
