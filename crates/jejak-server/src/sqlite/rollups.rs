//! Recounting the rollups from the raw rows: `jejak server check-rollups` compares the
//! recount with the stored rollups, `--repair` and the schema migration that introduced
//! them write it. The recount uses the same rules as ingest (`rollup.rs`) but none of
//! its bookkeeping: every session once at its stored revision, every device's events
//! folded from the start.

use std::collections::HashMap;

use rusqlite::{Connection, params};

use super::write::{device_events, retained_from, write_entry_months, write_rollups};
use crate::entries::StoredEntry;
use crate::recount::{self, Places};
use crate::rollup::{EventCursor, RollupDelta, SessionFacts};
use crate::store::{RollupCheck, StoreError};
use uuid::Uuid;

/// Whether the store has the low-volume kinds' tables yet (V7): the V2 migration's
/// recount runs on a store without them.
fn has_entries(conn: &Connection) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'entries'")?
        .exists([])?)
}

/// Every device's library and zone offset.
fn places(conn: &Connection) -> Result<Places, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT d.id, d.library, l.timezone FROM devices d JOIN libraries l ON l.id = d.library",
    )?;
    let mut rows = stmt.query([])?;
    let mut out = HashMap::new();
    while let Some(r) = rows.next()? {
        let timezone: String = r.get(2)?;
        let zone = jejak_domain::Zone::parse(&timezone)
            .map_err(|e| StoreError::Inconsistent(format!("library zone '{timezone}': {e}")))?;
        out.insert(
            r.get(0)?,
            (r.get(1)?, i64::from(zone.offset().local_minus_utc())),
        );
    }
    Ok(out)
}

/// The rollups as the raw rows say they should be, and each device's event cursor.
fn recount(
    conn: &Connection,
) -> Result<(RollupDelta, HashMap<i64, Option<EventCursor>>), StoreError> {
    let places = places(conn)?;
    let mut delta = RollupDelta::default();
    {
        let mut stmt = conn.prepare(
            "SELECT device, attrs, start_s, duration_s, offline_s, group_size, patron,
                 rx_kib + tx_kib
             FROM sessions",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let device: i64 = r.get(0)?;
            let facts = SessionFacts {
                attrs: r.get(1)?,
                start_s: r.get(2)?,
                duration_s: r.get(3)?,
                offline_s: r.get(4)?,
                group_size: r.get(5)?,
                patron: r.get(6)?,
                kib: r.get(7)?,
            };
            recount::recount_session(&mut delta, &places, device, &facts)?;
        }
    }
    // The V2 migration recounts a store older than the entries (V7).
    if has_entries(conn)? {
        for row in entry_rows(conn)? {
            recount::recount_entry(&mut delta, &places, row)?;
        }
    }
    let mut cursors = HashMap::new();
    for (&device, &(_, offset)) in &places {
        let events = device_events(conn, device)?;
        cursors.insert(
            device,
            recount::recount_events(&mut delta, device, offset, &events),
        );
    }
    Ok((delta.without_zeros(), cursors))
}

/// The rollups as stored, unpacked (entries that count nothing left out).
fn stored(conn: &Connection) -> Result<RollupDelta, StoreError> {
    let mut delta = RollupDelta::default();
    for (table, column, add) in [
        (
            "day_rollups",
            "device, days",
            recount::stored_days as fn(&mut RollupDelta, i64, i64, &[u8]) -> Result<(), StoreError>,
        ),
        ("breakdown_rollups", "library, cells", recount::stored_cells),
        ("patron_months", "library, patrons", recount::stored_patrons),
    ] {
        let mut stmt = conn.prepare(&format!("SELECT month, {column} FROM {table}"))?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let bytes: Vec<u8> = r.get(2)?;
            add(&mut delta, r.get(0)?, r.get(1)?, &bytes)?;
        }
    }
    if has_entries(conn)? {
        let mut stmt = conn.prepare("SELECT month, library, counters FROM entry_months")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let (month, library): (i64, i64) = (r.get(0)?, r.get(1)?);
            let bytes: Vec<u8> = r.get(2)?;
            recount::stored_entry_month(&mut delta, month, library, &bytes)?;
        }
    }
    Ok(delta.without_zeros())
}

/// Compares the stored rollups with a recount from the raw rows.
pub(crate) fn check(conn: &Connection) -> Result<RollupCheck, StoreError> {
    let (mut expected, _) = recount(conn)?;
    let mut actual = stored(conn)?;
    // Months whose raw records were pruned keep rollups a recount cannot reproduce.
    if let Some(month) = retained_from(conn)? {
        expected = expected.keeping_months_from(month);
        actual = actual.keeping_months_from(month);
    }
    Ok(recount::compare(&expected, &actual))
}

/// Replaces the stored rollups and event cursors with a recount.
pub(crate) fn rebuild(conn: &Connection) -> Result<(), StoreError> {
    let (mut expected, cursors) = recount(conn)?;
    // The months before the retention cutoff keep their rollups: their raw rows are gone
    // (but for the undated records', which retention keeps).
    let from = retained_from(conn)?.unwrap_or(i64::MIN);
    expected = expected.keeping_months_from(from);
    let undated = crate::dating::FIRST_DATED_MONTH;
    let mut tables = vec!["day_rollups", "breakdown_rollups", "patron_months"];
    if has_entries(conn)? {
        tables.push("entry_months");
    }
    for table in tables {
        conn.execute(
            &format!("DELETE FROM {table} WHERE month >= ?1 OR month < ?2"),
            [from, undated],
        )?;
    }
    write_rollups(conn, &expected)?;
    let mut update = conn.prepare(
        "UPDATE devices SET event_at_s = ?2, event_id = ?3, event_kind = ?4, event_link_up = ?5
         WHERE id = ?1",
    )?;
    for (device, cursor) in cursors {
        match cursor {
            Some(c) => {
                update.execute(params![device, c.at_s, c.id.as_slice(), c.kind, c.link_up])?
            }
            None => update.execute(params![
                device,
                None::<i64>,
                None::<Vec<u8>>,
                None::<i64>,
                None::<bool>
            ])?,
        };
    }
    Ok(())
}

/// The V9 migration: the entry counters of the V8 layout (a row per library, local day
/// and key) packed into month rows as they are, then the old table dropped.
pub(crate) fn pack_entry_counts(conn: &Connection) -> Result<(), StoreError> {
    let mut counters = rustc_hash::FxHashMap::default();
    {
        let mut stmt = conn.prepare("SELECT library, day, key, value FROM entry_counts")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            counters.insert((r.get(0)?, r.get(1)?, r.get(2)?), r.get(3)?);
        }
    }
    write_entry_months(conn, &counters)?;
    conn.execute_batch("DROP TABLE entry_counts")?;
    Ok(())
}

/// Every stored entry (its newest version) as the recount and the detail export read it.
pub(crate) fn entry_rows(conn: &Connection) -> Result<Vec<recount::EntryRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT e.kind, e.id, l.code, e.device, d.pc, e.revision, e.wall_ms, e.fields, e.at_s
         FROM entries e JOIN devices d ON d.id = e.device JOIN libraries l ON l.id = e.library",
    )?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let id: Vec<u8> = r.get(1)?;
        let packed: Vec<u8> = r.get(7)?;
        let (fields, texts) = crate::entries::unpack_entry(&packed)
            .ok_or_else(|| StoreError::Inconsistent("an entry's fields".into()))?;
        out.push(recount::EntryRow {
            kind: r.get(0)?,
            id: Uuid::from_slice(&id)
                .map_err(|_| StoreError::Inconsistent("an entry's id".into()))?,
            library: r.get(2)?,
            stored: StoredEntry {
                device: r.get(3)?,
                pc: r.get(4)?,
                revision: r.get(5)?,
                wall_ms: r.get(6)?,
                fields,
                texts,
                at_s: r.get(8)?,
            },
        });
    }
    Ok(out)
}
