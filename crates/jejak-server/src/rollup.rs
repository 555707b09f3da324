//! The rollups the reports read, and the rules that fill them. No IO: a backend calls
//! these functions inside its ingest transaction and writes the resulting deltas, and
//! `check-rollups` calls the same functions over the raw rows to recount.
//!
//! Three rollups, each at the grain its reports need and no finer:
//!
//! - **Per PC and local day** ([`DayTotals`]): public sessions started, persons, seconds
//!   of use, online seconds and KiB falling on the day, sessions with a complete
//!   profile, sessions by men and by women; every session started (staff too: it makes the day "open"); boots;
//!   the powered and internet-up seconds from the pc events; and the public sessions
//!   dated by estimate. (Records whose month cannot be told are stored before 2024, so
//!   they fall in months no report asks for; `dating.rs`.)
//! - **Per library, local month, user kind and gender, by age group and by purpose**
//!   ([`Cell`]): public sessions and persons, a session counting once per purpose it
//!   names. These are the village report's cross tables (and the target groups'
//!   counts). No report cross-tabulates them by day or PC, or age by purpose; at such
//!   grains the rollup would hold nearly a row per session, where this one holds at
//!   most 225 rows per library and month.
//! - **Per library, local month and patron key**: public sessions, so that unique users
//!   are a count of rows (a distinct count cannot be summed).
//!
//! Rules, stated once:
//!
//! - Days and months are the library's local ones (WIB +7, WITA +8, WIT +9).
//! - A session counts as one session (and its persons) on the local day it started, and
//!   in that day's month. Its seconds of use, online seconds and KiB are split over the
//!   local days it spans in proportion to the time spent in each, so a session from
//!   23:00 to 01:00 gives an hour to each day, and a session crossing a month end gives
//!   its later hours to the next month. Rounding is cumulative, so the parts add up to
//!   the whole exactly.
//! - An open session counts with the duration known so far; when a higher revision
//!   arrives (closed, or re-dated after a clock fix) its old contribution is taken away
//!   and the new one added, in the same transaction.
//! - Staff sessions (`staf`) count only towards "sessions of anyone" (an open day).
//! - Power and internet uptime come from a PC's events in time order (corrected time,
//!   then id): between two events the PC counts as on unless the first was a shutdown,
//!   for at most [`crate::report::MAX_SILENCE_MS`]; the internet counts as up from an
//!   `internet_up` until an `internet_down`, a boot or a shutdown. A span belongs to the
//!   local day of the event that starts it.

use rustc_hash::FxHashMap;

use chrono::{Datelike, NaiveDate};
use jejak_domain::PcEventKind;

use crate::codes::{self, SessionAttrs};

/// Seconds in a day.
const DAY_S: i64 = 86_400;
/// The longest silence that still counts as "on", in seconds.
const MAX_SILENCE_S: i64 = crate::report::MAX_SILENCE_MS / 1000;

/// What one PC did on one local day. Every field is a sum, so deltas add.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayTotals {
    /// Public sessions started on the day.
    pub sessions: i64,
    /// Their persons (group sizes).
    pub persons: i64,
    /// Seconds of public use falling on the day.
    pub seconds: i64,
    /// Of those, seconds with the link up.
    pub online_s: i64,
    /// KiB received and sent, the day's share.
    pub kib: i64,
    /// Public sessions started on the day with gender, age group and a purpose stated.
    pub complete: i64,
    /// Public sessions started on the day by men (gender L).
    pub men: i64,
    /// Public sessions started on the day by women (gender P).
    pub women: i64,
    /// Sessions of anyone (staff too) started on the day.
    pub all_sessions: i64,
    /// Boot events on the day.
    pub boots: i64,
    /// Seconds the PC was on (spans starting on the day).
    pub powered_s: i64,
    /// Of those, seconds with the internet up.
    pub internet_s: i64,
    /// Public sessions started on the day whose time is an estimate (no anchor dated
    /// their run): the reports say how many.
    pub estimated: i64,
}

impl DayTotals {
    /// Whether every sum is zero (such a row says nothing and a recount has none).
    pub fn is_zero(&self) -> bool {
        *self == DayTotals::default()
    }
}

/// A session as the rollups see it: what the server stores of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionFacts {
    /// Corrected start, Unix seconds.
    pub start_s: i64,
    /// Seconds of use.
    pub duration_s: i64,
    /// Seconds without the link.
    pub offline_s: i64,
    /// The packed attributes (`codes::SessionAttrs`).
    pub attrs: i64,
    /// Persons.
    pub group_size: i64,
    /// KiB received + sent.
    pub kib: i64,
    /// The store's number for the patron key, if any.
    pub patron: Option<i64>,
}

/// Which breakdown a cell of the breakdown rollup belongs to: the village report's
/// age × gender table or its purpose × gender table (where a session counts once per
/// purpose it names).
pub const BY_AGE: i64 = 0;
/// See [`BY_AGE`].
pub const BY_PURPOSE: i64 = 1;

/// A cell of the breakdown rollup: a library's month, [`BY_AGE`] with an age group code
/// or [`BY_PURPOSE`] with a purpose's bit index, a user kind and a gender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cell {
    /// The library's store number.
    pub library: i64,
    /// The month number.
    pub month: i64,
    /// [`BY_AGE`] or [`BY_PURPOSE`].
    pub breakdown: i64,
    /// The age group code or the purpose's bit index.
    pub value: i64,
    /// The user kind code.
    pub user_kind: i64,
    /// The gender code.
    pub gender: i64,
}

/// A local day number (days since 1970-01-01 in the library's zone) as a date.
pub fn day_date(day: i64) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(1970, 1, 1)?.checked_add_signed(chrono::Duration::days(day))
}

/// The local day number of a date.
pub fn date_day(date: NaiveDate) -> i64 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or(date);
    (date - epoch).num_days()
}

/// A month number (`year * 12 + month - 1`) of a local day number. Ingest asks this
/// for every session, so it is the civil-from-days arithmetic of the proleptic
/// Gregorian calendar (H. Hinnant's algorithm) rather than a round trip through a date.
pub fn day_month(day: i64) -> i64 {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months counted from March, so that February's leap day comes last.
    let from_march = (5 * day_of_year + 2) / 153;
    let month = if from_march < 10 {
        from_march + 3
    } else {
        from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    year * 12 + month - 1
}

/// The month number of a date.
pub fn month_number(date: NaiveDate) -> i64 {
    i64::from(date.year()) * 12 + i64::from(date.month0())
}

/// The local day number of a Unix time in a zone `offset_s` seconds ahead of UTC.
pub fn local_day(unix_s: i64, offset_s: i64) -> i64 {
    (unix_s + offset_s).div_euclid(DAY_S)
}

/// The first day of a month number.
pub fn month_first(month: i64) -> Option<NaiveDate> {
    let year = i32::try_from(month.div_euclid(12)).ok()?;
    NaiveDate::from_ymd_opt(year, u32::try_from(month.rem_euclid(12)).ok()? + 1, 1)
}

// ------------------------------------------------------------------ storage layout
//
// A backend stores each rollup as one row per month and PC (days) or per month and
// library (breakdown cells, patrons), its counters packed in a blob of zigzag LEB128
// varints. Per row and batch that is one read and one write instead of an upsert per
// day, cell and patron (which halved ingest speed), and a month of a PC costs about
// 450 bytes on disk instead of ~35 bytes per day row.

/// Counters per day, in this order: the fields of [`DayTotals`] as declared.
pub const DAY_FIELDS: usize = 13;
/// Day slots in a month's blob.
pub const MONTH_DAYS: usize = 31;
/// Counters per day of rows written before `estimated` was counted (read as if it
/// were zero; a row is written in the current layout the next time a batch touches it).
const LEGACY_DAY_FIELDS: usize = 12;

/// Unpacks a month's day row ([`pack`]) in the current layout, whatever layout it was
/// written in; `None` when it is not varints. (A row of another length is read as it is,
/// so that `check-rollups` reports it as a difference and `--repair` replaces it.)
pub fn unpack_days(bytes: &[u8]) -> Option<Vec<i64>> {
    let values = unpack(bytes)?;
    if values.len() == MONTH_DAYS * LEGACY_DAY_FIELDS {
        return Some(
            values
                .chunks(LEGACY_DAY_FIELDS)
                .flat_map(|day| day.iter().copied().chain(std::iter::once(0)))
                .collect(),
        );
    }
    Some(values)
}

impl DayTotals {
    /// The counters in blob order.
    pub fn to_array(self) -> [i64; DAY_FIELDS] {
        [
            self.sessions,
            self.persons,
            self.seconds,
            self.online_s,
            self.kib,
            self.complete,
            self.men,
            self.women,
            self.all_sessions,
            self.boots,
            self.powered_s,
            self.internet_s,
            self.estimated,
        ]
    }

    /// The day whose counters start `values` (in blob order).
    pub fn from_slice(values: &[i64]) -> DayTotals {
        let at = |i: usize| values.get(i).copied().unwrap_or(0);
        DayTotals {
            sessions: at(0),
            persons: at(1),
            seconds: at(2),
            online_s: at(3),
            kib: at(4),
            complete: at(5),
            men: at(6),
            women: at(7),
            all_sessions: at(8),
            boots: at(9),
            powered_s: at(10),
            internet_s: at(11),
            estimated: at(12),
        }
    }
}

/// The public sessions a month's day row (as [`unpack_days`] gives it) counts.
pub fn row_sessions(values: &[i64]) -> i64 {
    values
        .chunks(DAY_FIELDS)
        .map(|day| day.first().copied().unwrap_or(0))
        .sum()
}

/// User kind codes a cell can hold (all six, staff never filled).
const KINDS: usize = 6;
/// Gender codes.
const GENDERS: usize = 3;
/// Age group codes.
const AGES: usize = 7;
/// Purpose bits.
const PURPOSES: usize = 8;
/// Cells in a library month's blob (age cells, then purpose cells); each holds two
/// counters, sessions then persons.
pub const CELL_SLOTS: usize = (AGES + PURPOSES) * KINDS * GENDERS;

/// The slot of a cell in its month's blob.
pub fn cell_slot(cell: &Cell) -> Option<usize> {
    let (value, kind, gender) = (
        usize::try_from(cell.value).ok()?,
        usize::try_from(cell.user_kind).ok()?,
        usize::try_from(cell.gender).ok()?,
    );
    if kind >= KINDS || gender >= GENDERS {
        return None;
    }
    let row = match cell.breakdown {
        BY_AGE if value < AGES => value,
        BY_PURPOSE if value < PURPOSES => AGES + value,
        _ => return None,
    };
    Some((row * KINDS + kind) * GENDERS + gender)
}

/// The cell of a slot in a library month's blob.
pub fn slot_cell(library: i64, month: i64, slot: usize) -> Cell {
    let gender = slot % GENDERS;
    let kind = slot / GENDERS % KINDS;
    let row = slot / GENDERS / KINDS;
    let (breakdown, value) = if row < AGES {
        (BY_AGE, row)
    } else {
        (BY_PURPOSE, row - AGES)
    };
    Cell {
        library,
        month,
        breakdown,
        value: value as i64,
        user_kind: kind as i64,
        gender: gender as i64,
    }
}

/// Packs counters as zigzag LEB128 varints (a zero costs one byte).
pub fn pack(values: &[i64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() + 16);
    for v in values {
        push_varint(&mut out, *v);
    }
    out
}

/// Appends one zigzag LEB128 varint ([`pack`]'s encoding).
fn push_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        let byte = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
}

/// Reads one varint of [`push_varint`] at `*at`, moving past it; `None` at the end or
/// for a truncated or overlong one.
fn next_varint(bytes: &[u8], at: &mut usize) -> Option<i64> {
    let (mut z, mut shift) = (0u64, 0u32);
    loop {
        let b = *bytes.get(*at)?;
        *at += 1;
        if shift > 63 {
            return None;
        }
        z |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(((z >> 1) as i64) ^ -((z & 1) as i64));
        }
        shift += 7;
    }
}

/// Unpacks what [`pack`] wrote; `None` for a truncated or overlong varint.
pub fn unpack(bytes: &[u8]) -> Option<Vec<i64>> {
    let mut out = Vec::with_capacity(bytes.len());
    let (mut z, mut shift) = (0u64, 0u32);
    for b in bytes {
        if shift > 63 {
            return None;
        }
        z |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            out.push(((z >> 1) as i64) ^ -((z & 1) as i64));
            z = 0;
            shift = 0;
        } else {
            shift += 7;
        }
    }
    (shift == 0).then_some(out)
}

/// Packs a month's patrons (ascending numbers with their sessions) as varint pairs of
/// the difference from the previous number and the sessions.
pub fn pack_patrons(patrons: &std::collections::BTreeMap<i64, i64>) -> Vec<u8> {
    let mut values = Vec::with_capacity(patrons.len() * 2);
    let mut previous = 0;
    for (patron, sessions) in patrons {
        values.push(patron - previous);
        values.push(*sessions);
        previous = *patron;
    }
    pack(&values)
}

/// Unpacks what [`pack_patrons`] wrote.
pub fn unpack_patrons(bytes: &[u8]) -> Option<std::collections::BTreeMap<i64, i64>> {
    let values = unpack(bytes)?;
    if values.len() % 2 != 0 {
        return None;
    }
    let mut out = std::collections::BTreeMap::new();
    let mut patron = 0i64;
    for pair in values.chunks(2) {
        patron = patron.checked_add(pair[0])?;
        out.insert(patron, pair[1]);
    }
    Some(out)
}

/// The patrons of a packed month ([`pack_patrons`]) with sessions, counted without
/// building the map (a district's month holds a few hundred thousand of them).
pub fn count_patrons(bytes: &[u8]) -> Option<u64> {
    let values = unpack(bytes)?;
    if values.len() % 2 != 0 {
        return None;
    }
    Some(values.chunks(2).filter(|pair| pair[1] > 0).count() as u64)
}

/// The first local day number of a month number: the inverse of [`day_month`] (the
/// days-from-civil arithmetic of the same calendar), total for any month a day number
/// can fall in, so that ingest never meets a date it cannot place.
pub fn month_first_day(month: i64) -> i64 {
    let (year, month0) = (month.div_euclid(12), month.rem_euclid(12));
    // Years counted from March, so that February's leap day comes last.
    let year = year - i64::from(month0 < 2);
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let from_march = (month0 + 10) % 12;
    let day_of_year = (153 * from_march + 2) / 5;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// A counter's change: its key, its day of the month from 0, the change.
pub type EntryChange<'a> = (&'a str, i64, i64);

/// The low-volume kinds' counter changes of a delta ([`RollupDelta::entries`]) by the
/// packed row they go to, (month, library), in key order (the order a backend locks
/// or writes the rows in).
pub fn entry_month_changes(
    changes: &FxHashMap<(i64, i64, String), i64>,
) -> std::collections::BTreeMap<(i64, i64), Vec<EntryChange<'_>>> {
    let mut months: std::collections::BTreeMap<(i64, i64), Vec<EntryChange<'_>>> =
        std::collections::BTreeMap::new();
    for ((library, day, key), change) in changes {
        let month = day_month(*day);
        months.entry((month, *library)).or_default().push((
            key,
            day - month_first_day(month),
            *change,
        ));
    }
    months
}

/// A library's counters of the low-volume kinds over one local month, as one packed row
/// holds them: (counter key, day of the month from 0) → value, zeros left out.
///
/// One row per library and month rather than a row per counter and day: the district
/// matrix and the IPLM sheet read every library's month, about 170 counters each, and
/// stepping through 60,000 rows a month was most of a year's sheet. The row is zigzag
/// varints ([`pack`]): the number of keys, then per key in ascending order the length of
/// the prefix it shares
/// with the key before, the length of the rest and the rest's bytes, its number of days,
/// and its (day, value) pairs. Sorted keys share long prefixes
/// (`activity.participants.ga.P.…`), so a month's row stays about a kilobyte and fits
/// in its page.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EntryMonth {
    /// (counter key, day of the month from 0) → value.
    pub counters: std::collections::BTreeMap<(String, i64), i64>,
}

impl EntryMonth {
    /// Packs the month's counters; `None` when it counts nothing (the row goes).
    pub fn pack(&self) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut keys = 0;
        let mut previous = "";
        let mut counters = self.counters.iter().filter(|(_, v)| **v != 0).peekable();
        while let Some(((key, _), _)) = counters.peek() {
            keys += 1;
            let key = key.as_str();
            let shared = previous
                .bytes()
                .zip(key.bytes())
                .take_while(|(a, b)| a == b)
                .count();
            push_varint(&mut out, shared as i64);
            push_varint(&mut out, (key.len() - shared) as i64);
            out.extend_from_slice(&key.as_bytes()[shared..]);
            let days: Vec<(i64, i64)> =
                std::iter::from_fn(|| counters.next_if(|((k, _), _)| k == key))
                    .map(|((_, day), value)| (*day, *value))
                    .collect();
            push_varint(&mut out, days.len() as i64);
            for (day, value) in days {
                push_varint(&mut out, day);
                push_varint(&mut out, value);
            }
            previous = key;
        }
        if keys == 0 {
            return None;
        }
        let mut row = Vec::with_capacity(out.len() + 2);
        push_varint(&mut row, keys);
        row.extend(out);
        Some(row)
    }

    /// Calls `each(key, pairs)` for every key of a packed row, in key order, with its
    /// days' counters as (day of the month from 0, value) pairs laid flat, without
    /// building the map: the month reads keep only some keys. `None` for a row that is
    /// not what [`EntryMonth::pack`] writes.
    pub fn each_packed(bytes: &[u8], mut each: impl FnMut(&str, &[i64])) -> Option<()> {
        let mut at = 0;
        let keys = usize::try_from(next_varint(bytes, &mut at)?).ok()?;
        let mut key: Vec<u8> = Vec::new();
        let mut pairs: Vec<i64> = Vec::new();
        for _ in 0..keys {
            let shared = usize::try_from(next_varint(bytes, &mut at)?).ok()?;
            let rest = usize::try_from(next_varint(bytes, &mut at)?).ok()?;
            if shared > key.len() {
                return None;
            }
            key.truncate(shared);
            key.extend_from_slice(bytes.get(at..at.checked_add(rest)?)?);
            at += rest;
            let days = usize::try_from(next_varint(bytes, &mut at)?).ok()?;
            pairs.clear();
            for _ in 0..days {
                let day = next_varint(bytes, &mut at)?;
                if !(0..MONTH_DAYS as i64).contains(&day) {
                    return None;
                }
                pairs.push(day);
                pairs.push(next_varint(bytes, &mut at)?);
            }
            each(std::str::from_utf8(&key).ok()?, &pairs);
        }
        (at == bytes.len()).then_some(())
    }

    /// Adds counter changes, each (key, day of the month from 0, change).
    pub fn add(&mut self, changes: &[EntryChange<'_>]) {
        for (key, day, change) in changes {
            *self.counters.entry((key.to_string(), *day)).or_default() += change;
        }
    }

    /// Appends the counters of a packed row to `out` as the reports take them, dated
    /// from the month's `first` day; a [`FactsDetail::Days`] read keeps only the keys of
    /// `counter_in_days_detail`. Each key is one shared text for its days. `None` for a
    /// row that is not what [`EntryMonth::pack`] writes.
    pub fn push_facts(
        bytes: &[u8],
        first: NaiveDate,
        detail: crate::report::FactsDetail,
        out: &mut Vec<crate::report::facts::EntryCountFacts>,
    ) -> Option<()> {
        EntryMonth::each_packed(bytes, |key, pairs| {
            if detail == crate::report::FactsDetail::Days
                && !crate::report::facts::counter_in_days_detail(key)
            {
                return;
            }
            let key: std::sync::Arc<str> = key.into();
            out.extend(
                pairs
                    .chunks(2)
                    .map(|pair| crate::report::facts::EntryCountFacts {
                        day: first + chrono::Duration::days(pair[0]),
                        key: key.clone(),
                        value: pair[1],
                    }),
            );
        })
    }

    /// Unpacks what [`EntryMonth::pack`] wrote.
    pub fn unpack(bytes: &[u8]) -> Option<EntryMonth> {
        let mut month = EntryMonth::default();
        EntryMonth::each_packed(bytes, |key, pairs| {
            for pair in pairs.chunks(2) {
                month.counters.insert((key.to_string(), pair[0]), pair[1]);
            }
        })?;
        Some(month)
    }
}

/// Changes to the rollups, summed over a batch (or a recount) before they are written:
/// a batch of 500 sessions touches a few dozen day rows, so writing sums instead of a
/// statement per session keeps ingest near the speed of the raw inserts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RollupDelta {
    /// Per (device, local day).
    pub days: FxHashMap<(i64, i64), DayTotals>,
    /// Per breakdown cell: (sessions, persons).
    pub cells: FxHashMap<Cell, (i64, i64)>,
    /// Per (library, month number, patron number): sessions.
    pub patrons: FxHashMap<(i64, i64, i64), i64>,
    /// The low-volume kinds' counters ([`entry_counters`]), per (library, local day,
    /// counter key).
    pub entries: FxHashMap<(i64, i64, String), i64>,
}

impl RollupDelta {
    /// Adds (`sign = 1`) or takes away (`sign = -1`) one session's contribution.
    /// `offset_s` is the library's zone offset from UTC.
    pub fn session(
        &mut self,
        device: i64,
        library: i64,
        offset_s: i64,
        s: &SessionFacts,
        sign: i64,
    ) {
        let attrs = SessionAttrs::unpack(s.attrs);
        let start_day = local_day(s.start_s, offset_s);
        if attrs.user_kind == codes::user_kind_code(jejak_domain::UserKind::Staf) {
            self.days
                .entry((device, start_day))
                .or_default()
                .all_sessions += sign;
            return;
        }
        // What the start day counts besides its share of the time: added with that share
        // below, so a session within one day costs one look-up.
        let complete = attrs.gender != codes::gender_code(jejak_domain::Gender::X)
            && attrs.age_group != codes::age_group_code(jejak_domain::AgeGroup::Unknown)
            && attrs.purposes != 0;
        let estimated =
            attrs.quality == codes::time_quality_code(jejak_domain::TimeQuality::Estimated);
        let counts = DayTotals {
            sessions: sign,
            estimated: if estimated { sign } else { 0 },
            persons: sign * s.group_size,
            complete: if complete { sign } else { 0 },
            men: if attrs.gender == codes::gender_code(jejak_domain::Gender::L) {
                sign
            } else {
                0
            },
            women: if attrs.gender == codes::gender_code(jejak_domain::Gender::P) {
                sign
            } else {
                0
            },
            all_sessions: sign,
            ..DayTotals::default()
        };
        let month = day_month(start_day);
        let mut cell = Cell {
            library,
            month,
            breakdown: BY_AGE,
            value: attrs.age_group,
            user_kind: attrs.user_kind,
            gender: attrs.gender,
        };
        let entry = self.cells.entry(cell).or_default();
        entry.0 += sign;
        entry.1 += sign * s.group_size;
        for bit in 0..8 {
            if attrs.purposes & (1 << bit) != 0 {
                cell.breakdown = BY_PURPOSE;
                cell.value = bit;
                let entry = self.cells.entry(cell).or_default();
                entry.0 += sign;
                entry.1 += sign * s.group_size;
            }
        }
        if let Some(patron) = s.patron {
            *self.patrons.entry((library, month, patron)).or_default() += sign;
        }

        // The duration and what goes with it, split over the local days spanned.
        let duration = s.duration_s.max(0);
        let online = (duration - s.offline_s).clamp(0, duration);
        let local_start = s.start_s + offset_s;
        let local_end = local_start + duration;
        let (mut at, mut done_online, mut done_kib) = (local_start, 0i64, 0i64);
        loop {
            let day = at.div_euclid(DAY_S);
            let day_end = (day + 1) * DAY_S;
            let until = local_end.min(day_end);
            let elapsed = until - local_start;
            // Cumulative shares: the last day takes exactly what remains.
            let (online_so_far, kib_so_far) = if until >= local_end {
                (online, s.kib)
            } else {
                (
                    share(online, elapsed, duration),
                    share(s.kib, elapsed, duration),
                )
            };
            let entry = self.days.entry((device, day)).or_default();
            if day == start_day {
                entry.sessions += counts.sessions;
                entry.persons += counts.persons;
                entry.complete += counts.complete;
                entry.men += counts.men;
                entry.women += counts.women;
                entry.all_sessions += counts.all_sessions;
                entry.estimated += counts.estimated;
            }
            entry.seconds += sign * (until - at);
            entry.online_s += sign * (online_so_far - done_online);
            entry.kib += sign * (kib_so_far - done_kib);
            done_online = online_so_far;
            done_kib = kib_so_far;
            if until >= local_end {
                break;
            }
            at = until;
        }
    }

    /// Moves a session's contribution: a stored session dated again, or replaced by a
    /// higher revision.
    pub fn moved_session(
        &mut self,
        device: i64,
        library: i64,
        offset_s: i64,
        old: &SessionFacts,
        new: &SessionFacts,
    ) {
        self.session(device, library, offset_s, old, -1);
        self.session(device, library, offset_s, new, 1);
    }

    /// Moves a stored pc event of kind `kind` from `old_s` to `new_s` (dated again):
    /// a boot counts on its new day. (Uptime is folded again by the caller.)
    pub fn moved_event(&mut self, device: i64, offset_s: i64, kind: i64, old_s: i64, new_s: i64) {
        if kind == codes::event_kind_code(PcEventKind::Boot) && old_s != new_s {
            self.boot(device, offset_s, old_s, -1);
            self.boot(device, offset_s, new_s, 1);
        }
    }

    /// Adds (`sign = 1`) or takes away (`sign = -1`, a boot dated again) a boot on its
    /// local day.
    pub fn boot(&mut self, device: i64, offset_s: i64, at_s: i64, sign: i64) {
        self.days
            .entry((device, local_day(at_s, offset_s)))
            .or_default()
            .boots += sign;
    }

    /// Adds a span of powered time (and of internet, if `internet`) starting at `at_s`.
    pub fn powered(&mut self, device: i64, offset_s: i64, at_s: i64, span_s: i64, internet: bool) {
        let day = self
            .days
            .entry((device, local_day(at_s, offset_s)))
            .or_default();
        day.powered_s += span_s;
        if internet {
            day.internet_s += span_s;
        }
    }

    /// The same delta with only the entries of `month` (a month number) and later, and
    /// those of undated records (which retention never removes: they may be dated yet).
    pub fn keeping_months_from(mut self, month: i64) -> RollupDelta {
        let kept = |m: i64| m >= month || crate::dating::is_undated_month(m);
        self.days.retain(|(_, day), _| kept(day_month(*day)));
        self.cells.retain(|cell, _| kept(cell.month));
        self.patrons.retain(|(_, m, _), _| kept(*m));
        self.entries.retain(|(_, day, _), _| kept(day_month(*day)));
        self
    }

    /// The same delta without entries that change nothing.
    pub fn without_zeros(mut self) -> RollupDelta {
        self.days.retain(|_, v| !v.is_zero());
        self.cells.retain(|_, v| *v != (0, 0));
        self.patrons.retain(|_, v| *v != 0);
        self.entries.retain(|_, v| *v != 0);
        self
    }

    /// Adds (`sign = 1`) or takes away (`sign = -1`) one entry's counters: `body` dated
    /// at `at_s` (Unix s) in a library whose zone is `offset_s` ahead of UTC.
    pub fn entry(
        &mut self,
        library: i64,
        offset_s: i64,
        body: &jejak_domain::RecordBody,
        at_s: i64,
        sign: i64,
    ) {
        for (day, key, value) in entry_counters(body, local_day(at_s, offset_s)) {
            *self.entries.entry((library, day, key)).or_default() += sign * value;
        }
    }
}

/// What one low-volume record counts, as (local day, counter key, value): the one
/// counting rule of each kind, used at ingest (as a delta) and by the recount.
///
/// - A visit counts on the local day it was entered: `visit.entries`, `visit.people`
///   and, when it came for the computer or the internet, `visit.people.computer` (what
///   the visit rule needs per day); and on that month's first day by gender and age
///   group (`visit.people.ga.P.remaja`), by user kind (`visit.people.kind.anggota`) and
///   by purpose (`visit.people.purpose.membaca`), as entries and as people. A withdrawn
///   visit counts nothing.
/// - A member count counts on its month's first day, whatever day it was entered:
///   `member_count.members` (at month end) and `member_count.new`.
/// - An activity counts on its own date (the day it was held, whatever day it was
///   entered): `activity.count` and `activity.participants`, each also by type
///   (`activity.participants.type.pelatihan`) and by place
///   (`activity.count.place.di_luar`), and its participants by gender and age group
///   (`activity.participants.ga.P.dewasa`, non-zero cells only). An edit moves them:
///   the older revision's counters are taken away first.
///
/// Sessions and pc events have rollups of their own and count nothing here.
pub fn entry_counters(body: &jejak_domain::RecordBody, day: i64) -> Vec<(i64, String, i64)> {
    use crate::report::counters::{self as name, by, by_gender_age};
    use jejak_domain::RecordBody;
    match body {
        RecordBody::Session(_) | RecordBody::PcEvent(_) => Vec::new(),
        RecordBody::Visit(v) if v.withdrawn => Vec::new(),
        RecordBody::Visit(v) => {
            let people = i64::from(v.people);
            // Only what the visit rule needs per day is kept per day; the breakdowns
            // count on the month's first day, since every report reads them per month
            // (a busy month would otherwise be some fifty counters a day per library,
            // which the district's reports read for every library).
            let first = day_date(day)
                .and_then(|d| d.with_day(1))
                .map_or(day, date_day);
            let mut out = Vec::with_capacity(9);
            out.push((day, name::VISIT_ENTRIES.to_string(), 1));
            out.push((day, name::VISIT_PEOPLE.to_string(), people));
            if v.purpose == jejak_domain::VisitPurpose::KomputerInternet {
                out.push((day, name::VISIT_PEOPLE_COMPUTER.to_string(), people));
            }
            for (base, value) in [(name::VISIT_ENTRIES, 1), (name::VISIT_PEOPLE, people)] {
                for key in [
                    by_gender_age(base, v.gender, v.age_group),
                    by(base, name::KIND, v.user_kind.code()),
                    by(base, name::PURPOSE, v.purpose.code()),
                ] {
                    out.push((first, key, value));
                }
            }
            out
        }
        RecordBody::MemberCount(m) => {
            let first = date_day(m.month.first_day());
            vec![
                (first, name::MEMBERS.into(), i64::from(m.members)),
                (first, name::NEW_MEMBERS.into(), i64::from(m.new_members)),
            ]
        }
        RecordBody::Activity(a) => {
            let held = date_day(a.date);
            let participants = i64::from(a.participants.total());
            let mut out = Vec::with_capacity(8 + 21);
            for (base, value) in [(name::ACTIVITIES, 1), (name::PARTICIPANTS, participants)] {
                out.push((held, base.to_string(), value));
                out.push((held, by(base, name::TYPE, a.activity_type.code()), value));
                out.push((held, by(base, name::PLACE, a.place.code()), value));
            }
            for (gender, age, n) in a.participants.cells() {
                out.push((
                    held,
                    by_gender_age(name::PARTICIPANTS, gender, age),
                    i64::from(n),
                ));
            }
            out
        }
    }
}

/// `total × part ÷ whole`, rounded down, without overflow for any stored values.
fn share(total: i64, part: i64, whole: i64) -> i64 {
    if whole <= 0 {
        return total;
    }
    (i128::from(total) * i128::from(part) / i128::from(whole)) as i64
}

/// Where a PC's event fold stands: its latest event in time order and the link's state
/// after it. Kept per device so that the next batch continues where this one stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventCursor {
    /// The latest event's corrected time, Unix seconds.
    pub at_s: i64,
    /// Its id, which orders events of the same second.
    pub id: [u8; 16],
    /// Its kind's code.
    pub kind: i64,
    /// Whether the internet counts as up after it.
    pub link_up: bool,
}

/// A pc event as the fold sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventPoint {
    /// Corrected time, Unix seconds.
    pub at_s: i64,
    /// The event's id.
    pub id: [u8; 16],
    /// Its kind's code.
    pub kind: i64,
}

/// Folds events (already in time order, all after `cursor`) into powered and internet
/// spans, and returns the new cursor.
pub fn fold_events(
    delta: &mut RollupDelta,
    device: i64,
    offset_s: i64,
    mut cursor: Option<EventCursor>,
    events: &[EventPoint],
) -> Option<EventCursor> {
    for e in events {
        if let Some(c) = cursor
            && c.kind != codes::event_kind_code(PcEventKind::Shutdown)
        {
            let span = (e.at_s - c.at_s).clamp(0, MAX_SILENCE_S);
            if span > 0 {
                delta.powered(device, offset_s, c.at_s, span, c.link_up);
            }
        }
        let kind = codes::event_kind_from(e.kind);
        let link_up = match kind {
            Some(PcEventKind::InternetUp) => true,
            Some(PcEventKind::InternetDown | PcEventKind::Boot | PcEventKind::Shutdown) => false,
            _ => cursor.is_some_and(|c| c.link_up),
        };
        cursor = Some(EventCursor {
            at_s: e.at_s,
            id: e.id,
            kind: e.kind,
            link_up,
        });
    }
    cursor
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_month_of_a_day_agrees_with_the_calendar() {
        // Every day from 1900 to 2200, leap years and centuries included.
        let first = date_day(NaiveDate::from_ymd_opt(1900, 1, 1).unwrap());
        let last = date_day(NaiveDate::from_ymd_opt(2200, 12, 31).unwrap());
        for day in first..=last {
            assert_eq!(
                day_month(day),
                month_number(day_date(day).unwrap()),
                "day {day}"
            );
        }
    }

    #[test]
    fn the_first_day_of_a_month_is_where_its_days_begin() {
        // Every month from 1600 to 2400, and months before the epoch and far out.
        for month in (1600 * 12..2400 * 12).chain([-30, -1, 0, 1, 11, 12, 1_000_000]) {
            let first = month_first_day(month);
            assert_eq!(day_month(first), month, "month {month}");
            assert_eq!(
                day_month(first - 1),
                month - 1,
                "the day before month {month}"
            );
            if let Some(date) = month_first(month) {
                assert_eq!(date_day(date), first, "month {month}");
            }
        }
    }

    #[test]
    fn a_months_entry_counters_pack_and_unpack_as_they_were() {
        let mut month = EntryMonth::default();
        for (key, day, value) in [
            ("visit.people", 0, 12),
            ("visit.people", 30, 3),
            ("visit.people.computer", 4, 2),
            ("activity.participants.ga.P.dewasa", 17, -1),
            ("member_count.members", 0, 1_250_000),
            ("visit.entries", 9, 0),
        ] {
            month.counters.insert((key.to_string(), day), value);
        }
        let bytes = month.pack().unwrap();
        let back = EntryMonth::unpack(&bytes).unwrap();
        // The zero is not stored; everything else comes back.
        month.counters.retain(|_, v| *v != 0);
        assert_eq!(back, month);
        let mut keys = Vec::new();
        EntryMonth::each_packed(&bytes, |key, pairs| {
            keys.push((key.to_string(), pairs.len()))
        })
        .unwrap();
        assert_eq!(
            keys,
            [
                ("activity.participants.ga.P.dewasa".to_string(), 2),
                ("member_count.members".to_string(), 2),
                ("visit.people".to_string(), 4),
                ("visit.people.computer".to_string(), 2),
            ]
        );
        // A month of zeros is no row; a cut or padded row is refused, not misread.
        let zeros = EntryMonth {
            counters: [(("visit.people".to_string(), 1), 0)].into(),
        };
        assert_eq!(zeros.pack(), None);
        for cut in 0..bytes.len() {
            assert_eq!(EntryMonth::unpack(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut padded = bytes.clone();
        padded.push(0);
        assert_eq!(EntryMonth::unpack(&padded), None);
        // A day outside the month's 31 slots is refused.
        let mut late = EntryMonth::default();
        late.counters.insert(("visit.people".to_string(), 31), 1);
        assert_eq!(EntryMonth::unpack(&late.pack().unwrap()), None);
        assert_eq!(
            count_patrons(&pack_patrons(&[(3, 1), (9, 0), (70, 2)].into())),
            Some(2)
        );
    }

    #[test]
    fn packed_counters_and_cells_round_trip() {
        let values = [0, 1, -1, 63, -64, 64, 300, i64::MAX, i64::MIN, 86_400];
        assert_eq!(unpack(&pack(&values)).unwrap(), values);
        assert_eq!(pack(&[0, 0, 0]).len(), 3);
        assert_eq!(unpack(&[0x80]), None);
        let patrons: std::collections::BTreeMap<i64, i64> = [(3, 1), (70, 2), (71, 5)].into();
        assert_eq!(unpack_patrons(&pack_patrons(&patrons)).unwrap(), patrons);
        let mut seen = std::collections::HashSet::new();
        for slot in 0..CELL_SLOTS {
            let cell = slot_cell(4, 24_321, slot);
            assert_eq!(cell_slot(&cell), Some(slot));
            assert!(seen.insert(slot));
        }
        let day = DayTotals {
            sessions: 1,
            persons: 2,
            seconds: 3,
            online_s: 4,
            kib: 5,
            complete: 6,
            men: 7,
            women: 8,
            all_sessions: 9,
            boots: 10,
            powered_s: 11,
            internet_s: 12,
            estimated: 13,
        };
        assert_eq!(DayTotals::from_slice(&day.to_array()), day);
        assert_eq!(
            month_first(2026 * 12 + 9),
            NaiveDate::from_ymd_opt(2026, 10, 1)
        );
    }
    #[test]
    fn a_day_row_of_the_older_layout_reads_as_if_nothing_was_estimated() {
        // The layout before `estimated`: 12 counters a day.
        let legacy: Vec<i64> = (0..MONTH_DAYS * LEGACY_DAY_FIELDS)
            .map(|i| i as i64 + 1)
            .collect();
        let days = unpack_days(&pack(&legacy)).unwrap();
        assert_eq!(days.len(), MONTH_DAYS * DAY_FIELDS);
        for (day, values) in days.chunks(DAY_FIELDS).enumerate() {
            let old = &legacy[day * LEGACY_DAY_FIELDS..(day + 1) * LEGACY_DAY_FIELDS];
            assert_eq!(&values[..LEGACY_DAY_FIELDS], old);
            assert_eq!(DayTotals::from_slice(values).estimated, 0);
        }
        // The current layout reads as written.
        let current: Vec<i64> = (0..(MONTH_DAYS * DAY_FIELDS) as i64).collect();
        assert_eq!(unpack_days(&pack(&current)).unwrap(), current);
    }

    use jejak_domain::{AgeGroup, Gender, Purpose, UserKind};

    fn attrs(kind: UserKind, purposes: &[Purpose]) -> i64 {
        SessionAttrs {
            end_reason: None,
            user_kind: codes::user_kind_code(kind),
            gender: codes::gender_code(Gender::P),
            age_group: codes::age_group_code(AgeGroup::Pemuda),
            quality: 0,
            client_quality: 0,
            purposes: codes::purposes_mask(purposes),
            revision: 1,
        }
        .pack()
    }

    #[test]
    fn a_session_across_midnight_counts_once_and_splits_its_time_and_bytes() {
        // WIB: 2026-10-31 23:00 local is 16:00 UTC.
        let offset = 7 * 3600;
        let start = chrono::NaiveDate::from_ymd_opt(2026, 10, 31)
            .and_then(|d| d.and_hms_opt(16, 0, 0))
            .map(|t| t.and_utc().timestamp())
            .unwrap();
        let s = SessionFacts {
            start_s: start,
            duration_s: 7200,
            offline_s: 1200,
            attrs: attrs(UserKind::Anggota, &[Purpose::Ekonomi]),
            group_size: 2,
            kib: 1001,
            patron: Some(7),
        };
        let mut d = RollupDelta::default();
        d.session(1, 9, offset, &s, 1);
        let oct31 = date_day(chrono::NaiveDate::from_ymd_opt(2026, 10, 31).unwrap());
        let a = d.days[&(1, oct31)];
        let b = d.days[&(1, oct31 + 1)];
        assert_eq!((a.sessions, a.persons, a.seconds), (1, 2, 3600));
        assert_eq!((b.sessions, b.persons, b.seconds), (0, 0, 3600));
        assert_eq!(a.online_s + b.online_s, 6000);
        assert_eq!(a.kib + b.kib, 1001);
        assert_eq!(a.kib, 500);
        let october = month_number(chrono::NaiveDate::from_ymd_opt(2026, 10, 1).unwrap());
        assert_eq!(d.patrons[&(9, october, 7)], 1);
        // One age cell and one purpose cell.
        assert_eq!(d.cells.len(), 2);

        // Taking it away again leaves nothing.
        d.session(1, 9, offset, &s, -1);
        assert_eq!(d.without_zeros(), RollupDelta::default());
    }

    #[test]
    fn staff_sessions_only_open_the_day() {
        let s = SessionFacts {
            start_s: 1_790_000_000,
            duration_s: 600,
            offline_s: 0,
            attrs: attrs(UserKind::Staf, &[]),
            group_size: 1,
            kib: 10,
            patron: None,
        };
        let mut d = RollupDelta::default();
        d.session(1, 1, 0, &s, 1);
        let day = d.days.values().next().copied().unwrap();
        assert_eq!(
            day,
            DayTotals {
                all_sessions: 1,
                ..DayTotals::default()
            }
        );
        assert!(d.cells.is_empty());
    }

    #[test]
    fn the_event_fold_matches_the_uptime_rule() {
        use PcEventKind::*;
        let min = 60;
        let events: Vec<EventPoint> = [
            (Boot, 0),
            (InternetUp, min),
            (Heartbeat, 15 * min),
            (InternetDown, 25 * min),
            (Heartbeat, 30 * min),
            (Shutdown, 40 * min),
            (Boot, 600 * min),
            (InternetUp, 601 * min),
            (Heartbeat, 610 * min),
            (Boot, 700 * min),
        ]
        .iter()
        .enumerate()
        .map(|(i, (k, t))| EventPoint {
            at_s: 1_790_000_000 + t,
            id: [i as u8; 16],
            kind: codes::event_kind_code(*k),
        })
        .collect();
        // In one go, or in two batches continuing from the cursor: the same.
        let mut whole = RollupDelta::default();
        fold_events(&mut whole, 1, 0, None, &events);
        let mut parts = RollupDelta::default();
        let cursor = fold_events(&mut parts, 1, 0, None, &events[..4]);
        fold_events(&mut parts, 1, 0, cursor, &events[4..]);
        assert_eq!(whole, parts);
        let powered: i64 = whole.days.values().map(|d| d.powered_s).sum();
        let up: i64 = whole.days.values().map(|d| d.internet_s).sum();
        assert_eq!(powered, (40 + 1 + 9 + 20) * 60);
        assert_eq!(up, (24 + 9 + 20) * 60);
    }
}
