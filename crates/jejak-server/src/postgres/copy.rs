//! `jejak server copy --from sqlite:PATH --to postgres://…`: moves a district's whole
//! server from its SQLite file to PostgreSQL, keeping every number (libraries, devices,
//! patrons) so tokens, held seqs, rollups and reports stay as they were.
//!
//! Resumable: each table is copied in chunks in primary-key order, and each chunk is
//! written in one target transaction together with its place in `copy_progress`, so an
//! interrupted copy continues after the last chunk that committed and never writes a
//! row twice. The source is opened read-only and must not change meanwhile (stop the
//! SQLite server first). At the end the identity counters are moved past the copied
//! numbers, every table's rows are counted on both sides and the target's rollups are
//! checked against a recount.
//!
//! This module reads the SQLite schema directly (a migration tool knows both schemas);
//! everything else keeps SQLite's SQL in `sqlite/`.

use std::collections::HashSet;

use rusqlite::types::Value;
use serde::Serialize;
use tokio_postgres::types::ToSql;

use super::PostgresStore;
use crate::store::{ServerStore, StoreError};

/// How a copy goes.
#[derive(Debug, Clone, Copy)]
pub struct CopyOptions {
    /// Rows per chunk (one target transaction each).
    pub chunk_rows: usize,
    /// Stop after this many chunks (to test resuming); `None` copies everything.
    pub stop_after_chunks: Option<usize>,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            chunk_rows: 5_000,
            stop_after_chunks: None,
        }
    }
}

/// One table's rows on both sides after a copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableCount {
    /// The table.
    pub table: String,
    /// Rows in the SQLite file.
    pub source: u64,
    /// Rows in PostgreSQL.
    pub target: u64,
}

/// What a copy did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyReport {
    /// Whether every table was copied (false when stopped by `stop_after_chunks`).
    pub complete: bool,
    /// Rows written by this run (a resumed run counts only its own).
    pub rows_written: u64,
    /// Per table, the rows on each side (only for a complete copy).
    pub counts: Vec<TableCount>,
    /// Whether the target's rollups equal a recount (only for a complete copy).
    pub rollups_consistent: bool,
}

impl CopyReport {
    /// Whether the copy is complete, every count agrees and the rollups check out.
    pub fn is_verified(&self) -> bool {
        self.complete && self.rollups_consistent && self.counts.iter().all(|c| c.source == c.target)
    }
}

/// One table's copy: the SQLite query (its columns in the order of the PostgreSQL
/// insert's), the key columns (names of the query's output) and the columns' kinds.
struct Spec {
    name: &'static str,
    select: &'static str,
    keys: &'static [&'static str],
    /// One letter per column: i (integer), b (bytes), t (text), o (0/1 as a boolean).
    kinds: &'static str,
    insert: &'static str,
    /// The column holding a session id whose month is appended as the last parameter.
    month_of: Option<usize>,
    /// How to count the source rows (the copy's check).
    count: &'static str,
}

const SPECS: &[Spec] = &[
    Spec {
        name: "libraries",
        select: "SELECT id, code, name, timezone, created_ms FROM libraries",
        keys: &["id"],
        kinds: "ittti",
        insert: "INSERT INTO libraries (id, code, name, timezone, created_ms) OVERRIDING SYSTEM VALUE
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        month_of: None,
        count: "SELECT COUNT(*) FROM libraries",
    },
    Spec {
        name: "devices",
        select: "SELECT library, id, pc, created_ms, last_batch_ms, offset_ms,
                     offset_uncertainty_ms, offset_at_ms, sessions, events, rejected, event_at_s,
                     event_id, event_kind, event_link_up, dated_until_ms FROM devices",
        keys: &["id"],
        kinds: "iitiiiiiiiiibioi",
        insert: "INSERT INTO devices (library, id, pc, created_ms, last_batch_ms, offset_ms,
                     offset_uncertainty_ms, offset_at_ms, sessions, events, rejected, event_at_s,
                     event_id, event_kind, event_link_up, dated_until_ms) OVERRIDING SYSTEM VALUE
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
                 ON CONFLICT DO NOTHING",
        month_of: None,
        count: "SELECT COUNT(*) FROM devices",
    },
    Spec {
        name: "tokens",
        select: "SELECT t.hash AS hash, d.library AS library, t.device AS device, t.staff AS staff,
                     t.created_ms AS created_ms, t.revoked_ms AS revoked_ms,
                     t.public_key AS public_key, t.key_registered_ms AS key_registered_ms
                 FROM tokens t LEFT JOIN devices d ON d.id = t.device",
        keys: &["hash"],
        kinds: "biitiibi",
        insert: "INSERT INTO tokens (hash, library, device, staff, created_ms, revoked_ms,
                     public_key, key_registered_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        month_of: None,
        count: "SELECT COUNT(*) FROM tokens",
    },
    Spec {
        name: "epochs",
        select: "SELECT d.library AS library, e.device AS device, e.epoch AS epoch,
                     e.held_seq AS held_seq, e.first_ms AS first_ms, e.last_batch_ms AS last_batch_ms
                 FROM epochs e JOIN devices d ON d.id = e.device",
        keys: &["device", "epoch"],
        kinds: "iibiii",
        insert: "INSERT INTO epochs (library, device, epoch, held_seq, first_ms, last_batch_ms)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        month_of: None,
        count: "SELECT COUNT(*) FROM epochs",
    },
    Spec {
        name: "runs",
        select: "SELECT d.library AS library, r.device AS device, r.run AS run,
                     r.boot_ms AS boot_ms, r.uncertainty_ms AS uncertainty_ms
                 FROM runs r JOIN devices d ON d.id = r.device",
        keys: &["device", "run"],
        kinds: "iibii",
        insert: "INSERT INTO runs (library, device, run, boot_ms, uncertainty_ms)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        month_of: None,
        count: "SELECT COUNT(*) FROM runs",
    },
    Spec {
        name: "kept_runs",
        select: "SELECT d.library AS library, k.device AS device, k.run AS run,
                     k.ordinal AS ordinal, k.open AS open, k.state AS state, k.records AS records
                 FROM kept_runs k JOIN devices d ON d.id = k.device",
        keys: &["device", "run"],
        kinds: "iibiobb",
        insert: "INSERT INTO kept_runs (library, device, run, ordinal, open, state, records)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        month_of: None,
        count: "SELECT COUNT(*) FROM kept_runs",
    },
    // Patron keys are per library in PostgreSQL: each key goes to the libraries whose
    // sessions use it, with its number (a key no session uses is not needed).
    Spec {
        name: "patron_keys",
        select: "SELECT DISTINCT d.library AS library, p.key AS key, p.id AS id
                 FROM patron_keys p JOIN sessions s ON s.patron = p.id
                     JOIN devices d ON d.id = s.device",
        keys: &["key", "library"],
        kinds: "ibi",
        insert: "INSERT INTO patron_keys (library, key, id) OVERRIDING SYSTEM VALUE
                 VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        month_of: None,
        count: "SELECT COUNT(*) FROM (SELECT DISTINCT d.library, p.key
                 FROM patron_keys p JOIN sessions s ON s.patron = p.id
                     JOIN devices d ON d.id = s.device)",
    },
    Spec {
        name: "sessions",
        select: "SELECT d.library AS library, s.id AS id, s.device AS device, s.attrs AS attrs,
                     s.start_s AS start_s, s.skew_ms AS skew_ms, s.duration_s AS duration_s,
                     s.offline_s AS offline_s, s.group_size AS group_size, s.patron AS patron,
                     s.rx_kib AS rx_kib, s.tx_kib AS tx_kib
                 FROM sessions s JOIN devices d ON d.id = s.device",
        keys: &["device", "id"],
        kinds: "ibiiiiiiiiii",
        insert: "INSERT INTO sessions (library, id, device, attrs, start_s, skew_ms, duration_s,
                     offline_s, group_size, patron, rx_kib, tx_kib, month)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                 ON CONFLICT DO NOTHING",
        month_of: Some(1),
        count: "SELECT COUNT(*) FROM sessions",
    },
    Spec {
        name: "pc_events",
        select: "SELECT d.library AS library, e.id AS id, e.device AS device, e.attrs AS attrs,
                     e.at_s AS at_s, e.skew_ms AS skew_ms, e.clock_delta_ms AS clock_delta_ms
                 FROM pc_events e JOIN devices d ON d.id = e.device",
        keys: &["device", "id"],
        kinds: "ibiiiii",
        insert: "INSERT INTO pc_events (library, id, device, attrs, at_s, skew_ms, clock_delta_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        month_of: None,
        count: "SELECT COUNT(*) FROM pc_events",
    },
    Spec {
        name: "rejected",
        select: "SELECT d.library AS library, r.device AS device, r.epoch AS epoch, r.seq AS seq,
                     r.record_id AS record_id, r.code AS code, r.detail AS detail,
                     r.first_ms AS first_ms, r.last_ms AS last_ms, r.times AS times
                 FROM rejected r JOIN devices d ON d.id = r.device",
        keys: &["device", "epoch", "seq"],
        kinds: "iibibttiii",
        insert: "INSERT INTO rejected (library, device, epoch, seq, record_id, code, detail,
                     first_ms, last_ms, times)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
        month_of: None,
        count: "SELECT COUNT(*) FROM rejected",
    },
    Spec {
        name: "batches",
        select: "SELECT d.library AS library, b.device AS device, b.batch_id AS batch_id,
                     b.epoch AS epoch, b.first_seq AS first_seq, b.last_seq AS last_seq,
                     b.new AS new, b.duplicates AS duplicates, b.rejected AS rejected,
                     b.received_ms AS received_ms, b.deliveries AS deliveries,
                     b.last_received_ms AS last_received_ms
                 FROM batches b JOIN devices d ON d.id = b.device",
        keys: &["device", "batch_id"],
        kinds: "iibbiiiiiiii",
        insert: "INSERT INTO batches (library, device, batch_id, epoch, first_seq, last_seq, new,
                     duplicates, rejected, received_ms, deliveries, last_received_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                 ON CONFLICT DO NOTHING",
        month_of: None,
        count: "SELECT COUNT(*) FROM batches",
    },
    Spec {
        name: "lost_ranges",
        select: "SELECT d.library AS library, l.device AS device, l.epoch AS epoch,
                     l.first_seq AS first_seq, l.last_seq AS last_seq, l.reported_ms AS reported_ms
                 FROM lost_ranges l JOIN devices d ON d.id = l.device",
        keys: &["device", "epoch", "first_seq"],
        kinds: "iibiii",
        insert: "INSERT INTO lost_ranges (library, device, epoch, first_seq, last_seq, reported_ms)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        month_of: None,
        count: "SELECT COUNT(*) FROM lost_ranges",
    },
    Spec {
        name: "settings",
        select: "SELECT name, value FROM settings",
        keys: &["name"],
        kinds: "tt",
        insert: "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        month_of: None,
        count: "SELECT COUNT(*) FROM settings",
    },
    Spec {
        name: "day_rollups",
        select: "SELECT r.month AS month, d.library AS library, r.device AS device, r.days AS days
                 FROM day_rollups r JOIN devices d ON d.id = r.device",
        keys: &["month", "device"],
        kinds: "iiib",
        insert: "INSERT INTO day_rollups (month, library, device, days) VALUES ($1, $2, $3, $4)
                 ON CONFLICT DO NOTHING",
        month_of: None,
        count: "SELECT COUNT(*) FROM day_rollups",
    },
    Spec {
        name: "breakdown_rollups",
        select: "SELECT month, library, cells FROM breakdown_rollups",
        keys: &["month", "library"],
        kinds: "iib",
        insert: "INSERT INTO breakdown_rollups (month, library, cells) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
        month_of: None,
        count: "SELECT COUNT(*) FROM breakdown_rollups",
    },
    Spec {
        name: "patron_months",
        select: "SELECT month, library, patrons FROM patron_months",
        keys: &["month", "library"],
        kinds: "iib",
        insert: "INSERT INTO patron_months (month, library, patrons) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
        month_of: None,
        count: "SELECT COUNT(*) FROM patron_months",
    },
];

fn sqlite(e: rusqlite::Error) -> StoreError {
    StoreError::Sqlite(e)
}

/// A source value as a PostgreSQL parameter of the column's kind.
fn param(kind: u8, value: &Value) -> Result<Box<dyn ToSql + Sync + Send>, StoreError> {
    let wrong = || StoreError::Inconsistent(format!("a source value of kind {}", kind as char));
    Ok(match (kind, value) {
        (b'i', Value::Null) => Box::new(None::<i64>),
        (b'i', Value::Integer(v)) => Box::new(Some(*v)),
        (b'o', Value::Null) => Box::new(None::<bool>),
        (b'o', Value::Integer(v)) => Box::new(Some(*v != 0)),
        (b'b', Value::Null) => Box::new(None::<Vec<u8>>),
        (b'b', Value::Blob(v)) => Box::new(Some(v.clone())),
        (b't', Value::Null) => Box::new(None::<String>),
        (b't', Value::Text(v)) => Box::new(Some(v.clone())),
        _ => return Err(wrong()),
    })
}

/// A chunk's last key, kept in `copy_progress` as JSON (blobs in hex).
fn key_json(values: &[Value]) -> String {
    let list: Vec<serde_json::Value> = values
        .iter()
        .map(|v| match v {
            Value::Integer(i) => serde_json::json!(i),
            Value::Blob(b) => serde_json::json!({ "hex": hex::encode(b) }),
            Value::Text(t) => serde_json::json!(t),
            Value::Real(r) => serde_json::json!(r),
            Value::Null => serde_json::Value::Null,
        })
        .collect();
    serde_json::Value::Array(list).to_string()
}

fn key_values(json: &str) -> Result<Vec<Value>, StoreError> {
    let bad = || StoreError::Inconsistent("the copy's progress is unreadable".into());
    let list: Vec<serde_json::Value> = serde_json::from_str(json).map_err(|_| bad())?;
    list.into_iter()
        .map(|v| match v {
            serde_json::Value::Number(n) => n.as_i64().map(Value::Integer).ok_or_else(bad),
            serde_json::Value::String(s) => Ok(Value::Text(s)),
            serde_json::Value::Object(o) => o
                .get("hex")
                .and_then(|h| h.as_str())
                .and_then(|h| hex::decode(h).ok())
                .map(Value::Blob)
                .ok_or_else(bad),
            serde_json::Value::Null => Ok(Value::Null),
            _ => Err(bad()),
        })
        .collect()
}

/// Copies the SQLite server database at `source` into the (new, or partly copied)
/// PostgreSQL database of `target`. See the module's documentation.
pub async fn copy_from_sqlite(
    source: &std::path::Path,
    target: &PostgresStore,
    options: CopyOptions,
) -> Result<CopyReport, StoreError> {
    let conn = rusqlite::Connection::open_with_flags(
        source,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite)?;
    {
        let client = target.client().await?;
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS copy_progress (
                     name     TEXT PRIMARY KEY,
                     last_key TEXT,
                     rows     BIGINT NOT NULL,
                     done     BOOLEAN NOT NULL
                 )",
            )
            .await?;
        // A copy starts only into an empty server, or continues its own.
        let started: i64 = client
            .query_one("SELECT COUNT(*) FROM copy_progress", &[])
            .await?
            .try_get(0)?;
        let libraries: i64 = client
            .query_one("SELECT COUNT(*) FROM libraries", &[])
            .await?
            .try_get(0)?;
        if started == 0 && libraries > 0 {
            return Err(StoreError::Inconsistent(
                "the target database already holds a server; copy into an empty one".into(),
            ));
        }
    }
    let chunk = options.chunk_rows.max(1);
    let mut chunks = 0usize;
    let mut written = 0u64;
    for spec in SPECS {
        let progress = {
            let client = target.client().await?;
            client
                .query_opt(
                    "SELECT last_key, done FROM copy_progress WHERE name = $1",
                    &[&spec.name],
                )
                .await?
        };
        let mut last: Option<Vec<Value>> = None;
        if let Some(row) = progress {
            if row.try_get::<_, bool>(1)? {
                continue;
            }
            if let Some(json) = row.try_get::<_, Option<String>>(0)? {
                last = Some(key_values(&json)?);
            }
        }
        let key_list = spec.keys.join(", ");
        loop {
            if options.stop_after_chunks.is_some_and(|n| chunks >= n) {
                return Ok(CopyReport {
                    complete: false,
                    rows_written: written,
                    counts: Vec::new(),
                    rollups_consistent: false,
                });
            }
            let rows: Vec<Vec<Value>> = {
                let marks: Vec<String> = (1..=spec.keys.len()).map(|i| format!("?{i}")).collect();
                let sql = match &last {
                    Some(_) => format!(
                        "SELECT * FROM ({}) WHERE ({key_list}) > ({}) ORDER BY {key_list} LIMIT {chunk}",
                        spec.select,
                        marks.join(", ")
                    ),
                    None => format!(
                        "SELECT * FROM ({}) ORDER BY {key_list} LIMIT {chunk}",
                        spec.select
                    ),
                };
                let mut stmt = conn.prepare(&sql).map_err(sqlite)?;
                let width = stmt.column_count();
                let key_index: Vec<usize> = spec
                    .keys
                    .iter()
                    .map(|k| stmt.column_index(k))
                    .collect::<Result<_, _>>()
                    .map_err(sqlite)?;
                let params: Vec<Value> = last.clone().unwrap_or_default();
                let mut out = Vec::new();
                let mut q = stmt
                    .query(rusqlite::params_from_iter(params.iter()))
                    .map_err(sqlite)?;
                while let Some(r) = q.next().map_err(sqlite)? {
                    let mut row = Vec::with_capacity(width + spec.keys.len());
                    for i in 0..width {
                        row.push(r.get::<_, Value>(i).map_err(sqlite)?);
                    }
                    // The key travels at the end of the row, for the progress.
                    for &i in &key_index {
                        row.push(r.get::<_, Value>(i).map_err(sqlite)?);
                    }
                    out.push(row);
                }
                out
            };
            let width = spec.kinds.len();
            let finished = rows.len() < chunk;
            if let Some(index) = spec.month_of {
                let months: HashSet<i64> = rows
                    .iter()
                    .filter_map(|r| match &r[index] {
                        Value::Blob(b) => uuid::Uuid::from_slice(b).ok(),
                        _ => None,
                    })
                    .map(|id| super::write::id_month(&id))
                    .collect();
                target.ensure_partitions(months).await?;
            }
            let new_last = rows.last().map(|r| r[r.len() - spec.keys.len()..].to_vec());
            let mut client = target.client().await?;
            let tx = client.transaction().await?;
            let stmt = tx.prepare_cached(spec.insert).await?;
            for row in &rows {
                let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::with_capacity(width + 1);
                for (kind, value) in spec.kinds.bytes().zip(&row[..width]) {
                    params.push(param(kind, value)?);
                }
                if let Some(index) = spec.month_of {
                    let month = match &row[index] {
                        Value::Blob(b) => uuid::Uuid::from_slice(b)
                            .map(|id| super::write::id_month(&id))
                            .unwrap_or(0),
                        _ => 0,
                    };
                    params.push(Box::new(month));
                }
                let refs: Vec<&(dyn ToSql + Sync)> = params
                    .iter()
                    .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                    .collect();
                tx.execute(&stmt, &refs).await?;
            }
            let key = new_last
                .as_deref()
                .map(key_json)
                .or_else(|| last.as_deref().map(key_json));
            let count = rows.len() as i64;
            tx.execute(
                "INSERT INTO copy_progress (name, last_key, rows, done) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name) DO UPDATE SET last_key = excluded.last_key,
                     rows = copy_progress.rows + excluded.rows, done = excluded.done",
                &[&spec.name, &key, &count, &finished],
            )
            .await?;
            tx.commit().await?;
            written += rows.len() as u64;
            chunks += 1;
            tracing::info!(
                table = spec.name,
                rows = rows.len(),
                "copy: chunk committed"
            );
            if finished {
                break;
            }
            last = new_last;
        }
    }

    // Identity counters past the copied numbers, so new libraries, devices and patron
    // keys get fresh ones.
    let client = target.client().await?;
    for table in ["libraries", "devices", "patron_keys"] {
        client
            .execute(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'),
                         (SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), false)"
                ),
                &[],
            )
            .await?;
    }
    let mut counts = Vec::new();
    for spec in SPECS {
        let source: i64 = conn
            .query_row(spec.count, [], |r| r.get(0))
            .map_err(sqlite)?;
        let target_rows: i64 = client
            .query_one(&format!("SELECT COUNT(*) FROM {}", spec.name), &[])
            .await?
            .try_get(0)?;
        counts.push(TableCount {
            table: spec.name.to_string(),
            source: u64::try_from(source).unwrap_or(0),
            target: u64::try_from(target_rows).unwrap_or(0),
        });
    }
    drop(client);
    let check = target.check_rollups().await?;
    Ok(CopyReport {
        complete: true,
        rows_written: written,
        counts,
        rollups_consistent: check.is_consistent(),
    })
}
