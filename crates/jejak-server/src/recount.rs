//! The backend-neutral half of `check-rollups` and of writing rollups: recounting from
//! raw rows handed in by a backend, decoding stored packed rows, comparing the two, and
//! merging a delta into one packed row. Both backends call these, so that SQLite and
//! PostgreSQL keep byte-identical rollups and report differences the same way.

use std::collections::{BTreeMap, HashMap};

use chrono::Datelike;

use crate::rollup::{self, DayTotals, EventCursor, EventPoint, RollupDelta, SessionFacts};
use crate::store::{RollupCheck, StoreError};

/// Every device's library and zone offset (seconds east of UTC), by device number.
pub(crate) type Places = HashMap<i64, (i64, i64)>;

/// At most this many differences are described (the count is always exact).
const DESCRIBED: usize = 20;

fn corrupt(what: &str, month: i64, owner: i64) -> StoreError {
    StoreError::Inconsistent(format!("the packed {what} of month {month}, owner {owner}"))
}

/// Adds one stored session to a recount.
pub(crate) fn recount_session(
    delta: &mut RollupDelta,
    places: &Places,
    device: i64,
    facts: &SessionFacts,
) -> Result<(), StoreError> {
    let Some(&(library, offset)) = places.get(&device) else {
        return Err(StoreError::Inconsistent(format!(
            "a session of unknown device {device}"
        )));
    };
    delta.session(device, library, offset, facts, 1);
    Ok(())
}

/// Adds one device's events (in time order) to a recount and returns its cursor.
pub(crate) fn recount_events(
    delta: &mut RollupDelta,
    device: i64,
    offset: i64,
    events: &[EventPoint],
) -> Option<EventCursor> {
    let boot = crate::codes::event_kind_code(jejak_domain::PcEventKind::Boot);
    for e in events.iter().filter(|e| e.kind == boot) {
        delta.boot(device, offset, e.at_s, 1);
    }
    rollup::fold_events(delta, device, offset, None, events)
}

/// Adds one stored entry (a visit, a member count) to a recount: the counting rule of
/// its kind (`rollup::entry_counters`), as at ingest.
pub(crate) fn recount_entry(
    delta: &mut RollupDelta,
    places: &Places,
    row: EntryRow,
) -> Result<(), StoreError> {
    let Some(&(library, offset)) = places.get(&row.stored.device) else {
        return Err(StoreError::Inconsistent(format!(
            "an entry of unknown device {}",
            row.stored.device
        )));
    };
    let body = row.record()?;
    delta.entry(library, offset, &body, row.stored.at_s, 1);
    Ok(())
}

/// A stored entry as a backend reads it for a recount.
pub(crate) struct EntryRow {
    pub kind: i64,
    pub id: uuid::Uuid,
    /// Its library's code.
    pub library: String,
    pub stored: crate::entries::StoredEntry,
}

impl EntryRow {
    /// The stored entry as the record it is (its run and monotonic time are not kept).
    pub(crate) fn record(&self) -> Result<jejak_domain::RecordBody, StoreError> {
        let bad = |what: &str| StoreError::Inconsistent(format!("entry {}: {what}", self.id));
        let kind = crate::entries::kind_of_number(self.kind).ok_or_else(|| bad("unknown kind"))?;
        let library_code = jejak_domain::LibraryCode::parse_exact(&self.library)
            .map_err(|_| bad("library code"))?;
        let pc = jejak_domain::PcCode::parse_exact(&self.stored.pc).map_err(|_| bad("PC code"))?;
        crate::entries::stored_record(kind, self.id, &library_code, &pc, &self.stored)
            .map_err(|e| bad(&e.to_string()))
    }
}

/// Adds a stored day row (one PC's month) to the stored side of a check.
pub(crate) fn stored_days(
    delta: &mut RollupDelta,
    month: i64,
    device: i64,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let values = rollup::unpack_days(bytes).ok_or_else(|| corrupt("days", month, device))?;
    let first = rollup::month_first(month).ok_or_else(|| corrupt("days", month, device))?;
    for (index, counters) in values.chunks(rollup::DAY_FIELDS).enumerate() {
        let day = rollup::date_day(first) + index as i64;
        delta
            .days
            .insert((device, day), DayTotals::from_slice(counters));
    }
    Ok(())
}

/// Adds a stored entry counter row (one library's month, `rollup::EntryMonth`) to the
/// stored side of a check.
pub(crate) fn stored_entry_month(
    delta: &mut RollupDelta,
    month: i64,
    library: i64,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let first = rollup::month_first_day(month);
    rollup::EntryMonth::each_packed(bytes, |key, pairs| {
        for pair in pairs.chunks(2) {
            delta
                .entries
                .insert((library, first + pair[0], key.to_string()), pair[1]);
        }
    })
    .ok_or_else(|| corrupt("entry counters", month, library))
}

/// Adds a stored breakdown row (one library's month) to the stored side of a check.
pub(crate) fn stored_cells(
    delta: &mut RollupDelta,
    month: i64,
    library: i64,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let values = rollup::unpack(bytes).ok_or_else(|| corrupt("cells", month, library))?;
    for (slot, pair) in values.chunks(2).enumerate() {
        let counts = (pair[0], pair.get(1).copied().unwrap_or(0));
        delta
            .cells
            .insert(rollup::slot_cell(library, month, slot), counts);
    }
    Ok(())
}

/// Adds a stored patron row (one library's month) to the stored side of a check.
pub(crate) fn stored_patrons(
    delta: &mut RollupDelta,
    month: i64,
    library: i64,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let patrons =
        rollup::unpack_patrons(bytes).ok_or_else(|| corrupt("patrons", month, library))?;
    for (patron, sessions) in patrons {
        delta.patrons.insert((library, month, patron), sessions);
    }
    Ok(())
}

/// Compares a recount (`expected`) with the stored rollups (`actual`), both without
/// zero entries.
pub(crate) fn compare(expected: &RollupDelta, actual: &RollupDelta) -> RollupCheck {
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
    let mut keys: Vec<_> = expected
        .entries
        .keys()
        .chain(actual.entries.keys())
        .collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let (want, have) = (expected.entries.get(key), actual.entries.get(key));
        if want != have {
            note(format!(
                "entry counter '{}' of library {} on day {}: recount {:?}, stored {:?}",
                key.2, key.0, key.1, want, have
            ));
        }
    }
    RollupCheck {
        rows_checked: (expected.days.len()
            + expected.cells.len()
            + expected.patrons.len()
            + expected.entries.len()) as u64,
        differences: count,
        described: differences,
    }
}

/// The changes to one breakdown row: (cell slot, (sessions, persons)) to add.
pub(crate) type CellChanges = Vec<(usize, (i64, i64))>;

/// A delta grouped by the packed rows it changes, each map in key order, so that a
/// backend reads and writes rows in one fixed order (no deadlock between two batches).
#[derive(Debug, Default)]
pub(crate) struct RowChanges {
    /// (month, device) → (day of month from 0, totals to add).
    pub days: BTreeMap<(i64, i64), Vec<(usize, DayTotals)>>,
    /// (month, library) → (cell slot, (sessions, persons)) to add.
    pub cells: BTreeMap<(i64, i64), CellChanges>,
    /// (month, library) → (patron number, sessions) to add.
    pub patrons: BTreeMap<(i64, i64), Vec<(i64, i64)>>,
}

/// Groups a delta by packed row.
pub(crate) fn row_changes(delta: &RollupDelta) -> Result<RowChanges, StoreError> {
    let mut out = RowChanges::default();
    for ((device, day), totals) in &delta.days {
        let date = rollup::day_date(*day).ok_or_else(|| corrupt("day", 0, *device))?;
        out.days
            .entry((rollup::month_number(date), *device))
            .or_default()
            .push((date.day0() as usize, *totals));
    }
    for (cell, counts) in &delta.cells {
        let slot = rollup::cell_slot(cell).ok_or_else(|| corrupt("cell", cell.month, 0))?;
        out.cells
            .entry((cell.month, cell.library))
            .or_default()
            .push((slot, *counts));
    }
    for ((library, month, patron), sessions) in &delta.patrons {
        out.patrons
            .entry((*month, *library))
            .or_default()
            .push((*patron, *sessions));
    }
    Ok(out)
}

/// A day row with changes added; `None` when it now counts nothing (the row goes).
pub(crate) fn merge_days(
    stored: Option<&[u8]>,
    changes: &[(usize, DayTotals)],
    (month, device): (i64, i64),
) -> Result<Option<Vec<u8>>, StoreError> {
    let mut values = match stored {
        Some(bytes) => rollup::unpack_days(bytes).ok_or_else(|| corrupt("days", month, device))?,
        None => Vec::new(),
    };
    values.resize(rollup::MONTH_DAYS * rollup::DAY_FIELDS, 0);
    for (index, totals) in changes {
        let slot = values
            .get_mut(index * rollup::DAY_FIELDS..(index + 1) * rollup::DAY_FIELDS)
            .ok_or_else(|| corrupt("days", month, device))?;
        for (value, add) in slot.iter_mut().zip(totals.to_array()) {
            *value += add;
        }
    }
    Ok(values
        .iter()
        .any(|v| *v != 0)
        .then(|| rollup::pack(&values)))
}

/// A breakdown row with changes added; `None` when it now counts nothing.
pub(crate) fn merge_cells(
    stored: Option<&[u8]>,
    changes: &[(usize, (i64, i64))],
    (month, library): (i64, i64),
) -> Result<Option<Vec<u8>>, StoreError> {
    let mut values = match stored {
        Some(bytes) => rollup::unpack(bytes).ok_or_else(|| corrupt("cells", month, library))?,
        None => Vec::new(),
    };
    values.resize(rollup::CELL_SLOTS * 2, 0);
    for (slot, (sessions, persons)) in changes {
        let pair = values
            .get_mut(slot * 2..slot * 2 + 2)
            .ok_or_else(|| corrupt("cells", month, library))?;
        pair[0] += sessions;
        pair[1] += persons;
    }
    Ok(values
        .iter()
        .any(|v| *v != 0)
        .then(|| rollup::pack(&values)))
}

/// A patron row with changes added; `None` when no patron is left in it.
pub(crate) fn merge_patrons(
    stored: Option<&[u8]>,
    changes: &[(i64, i64)],
    (month, library): (i64, i64),
) -> Result<Option<Vec<u8>>, StoreError> {
    let mut set = match stored {
        Some(bytes) => {
            rollup::unpack_patrons(bytes).ok_or_else(|| corrupt("patrons", month, library))?
        }
        None => BTreeMap::new(),
    };
    for (patron, sessions) in changes {
        *set.entry(*patron).or_default() += sessions;
    }
    set.retain(|_, sessions| *sessions != 0);
    Ok((!set.is_empty()).then(|| rollup::pack_patrons(&set)))
}
