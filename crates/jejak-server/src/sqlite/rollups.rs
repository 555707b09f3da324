//! Recounting the rollups from the raw rows: `jejak server check-rollups` compares the
//! recount with the stored rollups, `--repair` and the schema migration that introduced
//! them write it. The recount uses the same rules as ingest (`rollup.rs`) but none of
//! its bookkeeping: every session once at its stored revision, every device's events
//! folded from the start.

use std::collections::HashMap;

use rusqlite::{Connection, params};

use super::write::{device_events, retained_from, write_rollups};
use crate::rollup::{self, DayTotals, EventCursor, RollupDelta, SessionFacts, fold_events};
use crate::store::{RollupCheck, StoreError};

/// Every device's library and zone offset.
fn places(conn: &Connection) -> Result<HashMap<i64, (i64, i64)>, StoreError> {
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
            let Some(&(library, offset)) = places.get(&device) else {
                return Err(StoreError::Inconsistent(format!(
                    "a session of unknown device {device}"
                )));
            };
            let facts = SessionFacts {
                attrs: r.get(1)?,
                start_s: r.get(2)?,
                duration_s: r.get(3)?,
                offline_s: r.get(4)?,
                group_size: r.get(5)?,
                patron: r.get(6)?,
                kib: r.get(7)?,
            };
            delta.session(device, library, offset, &facts, 1);
        }
    }
    let boot = crate::codes::event_kind_code(jejak_domain::PcEventKind::Boot);
    let mut cursors = HashMap::new();
    for (&device, &(_, offset)) in &places {
        let events = device_events(conn, device)?;
        for e in events.iter().filter(|e| e.kind == boot) {
            delta.boot(device, offset, e.at_s);
        }
        cursors.insert(
            device,
            fold_events(&mut delta, device, offset, None, &events),
        );
    }
    Ok((delta.without_zeros(), cursors))
}

/// The rollups as stored, unpacked (entries that count nothing left out).
fn stored(conn: &Connection) -> Result<RollupDelta, StoreError> {
    let corrupt = |what: &str, month: i64| {
        StoreError::Inconsistent(format!("the packed {what} of month {month}"))
    };
    let mut delta = RollupDelta::default();
    let mut stmt = conn.prepare("SELECT month, device, days FROM day_rollups")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let (month, device): (i64, i64) = (r.get(0)?, r.get(1)?);
        let bytes: Vec<u8> = r.get(2)?;
        let values = rollup::unpack(&bytes).ok_or_else(|| corrupt("days", month))?;
        let first = rollup::month_first(month).ok_or_else(|| corrupt("days", month))?;
        for (index, counters) in values.chunks(rollup::DAY_FIELDS).enumerate() {
            let day = rollup::date_day(first) + index as i64;
            delta
                .days
                .insert((device, day), DayTotals::from_slice(counters));
        }
    }
    let mut stmt = conn.prepare("SELECT month, library, cells FROM breakdown_rollups")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let (month, library): (i64, i64) = (r.get(0)?, r.get(1)?);
        let bytes: Vec<u8> = r.get(2)?;
        let values = rollup::unpack(&bytes).ok_or_else(|| corrupt("cells", month))?;
        for (slot, pair) in values.chunks(2).enumerate() {
            let counts = (pair[0], pair.get(1).copied().unwrap_or(0));
            delta
                .cells
                .insert(rollup::slot_cell(library, month, slot), counts);
        }
    }
    let mut stmt = conn.prepare("SELECT month, library, patrons FROM patron_months")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let (month, library): (i64, i64) = (r.get(0)?, r.get(1)?);
        let bytes: Vec<u8> = r.get(2)?;
        let patrons = rollup::unpack_patrons(&bytes).ok_or_else(|| corrupt("patrons", month))?;
        for (patron, sessions) in patrons {
            delta.patrons.insert((library, month, patron), sessions);
        }
    }
    Ok(delta.without_zeros())
}

/// At most this many differences are described (the count is always exact).
const DESCRIBED: usize = 20;

/// Compares the stored rollups with a recount from the raw rows.
pub(crate) fn check(conn: &Connection) -> Result<RollupCheck, StoreError> {
    let (mut expected, _) = recount(conn)?;
    let mut actual = stored(conn)?;
    // Months whose raw records were pruned keep rollups a recount cannot reproduce.
    if let Some(month) = retained_from(conn)? {
        expected = expected.keeping_months_from(month);
        actual = actual.keeping_months_from(month);
    }
    let mut differences = Vec::new();
    let mut count = 0u64;
    let mut note = |text: String| {
        count += 1;
        if differences.len() < DESCRIBED {
            differences.push(text);
        }
    };
    let mut day_keys: Vec<_> = expected.days.keys().chain(actual.days.keys()).collect();
    day_keys.sort();
    day_keys.dedup();
    for key in day_keys {
        let (want, have) = (expected.days.get(key), actual.days.get(key));
        if want != have {
            note(format!(
                "day rollup of device {} on day {}: recount {:?}, stored {:?}",
                key.0, key.1, want, have
            ));
        }
    }
    let mut keys: Vec<_> = expected.cells.keys().chain(actual.cells.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let (want, have) = (expected.cells.get(key), actual.cells.get(key));
        if want != have {
            note(format!(
                "breakdown rollup {key:?}: recount {want:?}, stored {have:?}"
            ));
        }
    }
    let mut keys: Vec<_> = expected
        .patrons
        .keys()
        .chain(actual.patrons.keys())
        .collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let (want, have) = (expected.patrons.get(key), actual.patrons.get(key));
        if want != have {
            note(format!(
                "patron rollup of library {} month {} patron {}: recount {:?}, stored {:?}",
                key.0, key.1, key.2, want, have
            ));
        }
    }
    Ok(RollupCheck {
        rows_checked: (expected.days.len() + expected.cells.len() + expected.patrons.len()) as u64,
        differences: count,
        described: differences,
    })
}

/// Replaces the stored rollups and event cursors with a recount.
pub(crate) fn rebuild(conn: &Connection) -> Result<(), StoreError> {
    let (mut expected, cursors) = recount(conn)?;
    // The months before the retention cutoff keep their rollups: their raw rows are gone.
    let from = retained_from(conn)?.unwrap_or(i64::MIN);
    expected = expected.keeping_months_from(from);
    conn.execute("DELETE FROM day_rollups WHERE month >= ?1", [from])?;
    conn.execute("DELETE FROM breakdown_rollups WHERE month >= ?1", [from])?;
    conn.execute("DELETE FROM patron_months WHERE month >= ?1", [from])?;
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
