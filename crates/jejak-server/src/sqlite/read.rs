//! The SQLite store's reads. They run on read-only connections of their own (WAL lets
//! them proceed while the writer writes) and see every commit that happened before.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use jejak_domain::{LibraryCode, LibraryDetails, PatronKey, PcCode, Zone};
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use crate::codes;
use crate::dating;
use crate::report::facts::{
    Breakdown, BreakdownFacts, DayFacts, FactsDetail, LibraryFacts, MonthFacts, PcFacts,
    month_bounds,
};
use crate::rollup::{self, DayTotals};
use crate::store::{
    AuthError, DEVICE_TOKEN_PREFIX, DeviceId, DeviceInfo, DeviceKeys, DeviceRef, DeviceState,
    EpochState, LibraryInfo, LostRange, Principal, STAFF_TOKEN_PREFIX, StoreError, StoredEvent,
    StoredSession, token_hash,
};

fn library_code(raw: String) -> Result<LibraryCode, StoreError> {
    LibraryCode::parse(&raw)
        .map_err(|_| StoreError::Inconsistent("a stored library code is invalid".into()))
}

fn pc_code(raw: String) -> Result<PcCode, StoreError> {
    PcCode::parse(&raw).map_err(|_| StoreError::Inconsistent("a stored PC code is invalid".into()))
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

pub(crate) fn authenticate(conn: &Connection, token: &str) -> Result<Principal, AuthError> {
    let token = token.trim();
    let hash = token_hash(token);
    if token.starts_with(DEVICE_TOKEN_PREFIX) {
        let row: Option<(Option<i64>, i64, String, String)> = conn
            .prepare_cached(
                "SELECT t.revoked_ms, d.id, l.code, d.pc
                 FROM tokens t
                 JOIN devices d ON d.id = t.device
                 JOIN libraries l ON l.id = d.library
                 WHERE t.hash = ?1",
            )
            .and_then(|mut s| {
                s.query_row([hash.as_slice()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()
            })
            .map_err(StoreError::from)?;
        match row {
            None => Err(AuthError::Unknown),
            Some((Some(_), ..)) => Err(AuthError::Revoked),
            Some((None, id, library, pc)) => Ok(Principal::Device {
                library: library_code(library)?,
                pc: pc_code(pc)?,
                device_id: DeviceId(id),
            }),
        }
    } else if token.starts_with(STAFF_TOKEN_PREFIX) {
        let row: Option<(Option<i64>, String)> = conn
            .prepare_cached(
                "SELECT revoked_ms, staff FROM tokens WHERE hash = ?1 AND staff IS NOT NULL",
            )
            .and_then(|mut s| {
                s.query_row([hash.as_slice()], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(StoreError::from)?;
        match row {
            None => Err(AuthError::Unknown),
            Some((Some(_), _)) => Err(AuthError::Revoked),
            Some((None, name)) => Ok(Principal::Staff { name }),
        }
    } else {
        Err(AuthError::Unknown)
    }
}

pub(crate) fn staff_token_active(conn: &Connection, hash: &[u8; 32]) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM tokens WHERE hash = ?1 AND staff IS NOT NULL AND revoked_ms IS NULL",
        )?
        .exists([hash.as_slice()])?)
}

pub(crate) fn libraries(conn: &Connection) -> Result<Vec<LibraryInfo>, StoreError> {
    let mut stmt = conn.prepare_cached(
        // The active tokens are counted in one pass: `tokens` is keyed by hash, so a
        // count per library would scan it once for each library (80 ms for 350).
        "SELECT l.code, l.name, l.timezone, l.created_ms, COALESCE(a.active, 0),
             l.npp, l.desa, l.kecamatan, l.address, l.kepala_desa, l.manager, l.manager_nip
         FROM libraries l LEFT JOIN (
             SELECT d.library, COUNT(*) AS active FROM tokens t JOIN devices d ON d.id = t.device
             WHERE t.revoked_ms IS NULL GROUP BY d.library
         ) a ON a.library = l.id
         ORDER BY l.code",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            (
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ),
            LibraryDetails {
                npp: r.get(5)?,
                desa: r.get(6)?,
                kecamatan: r.get(7)?,
                address: r.get(8)?,
                kepala_desa: r.get(9)?,
                manager: r.get(10)?,
                manager_nip: r.get(11)?,
            },
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let ((code, name, timezone, created_at_ms, active), details) = row?;
        out.push(LibraryInfo {
            code: library_code(code)?,
            name,
            timezone: Zone::parse(&timezone)
                .map_err(|_| StoreError::Inconsistent("a stored time zone is invalid".into()))?,
            active_devices: u32::try_from(active).unwrap_or(u32::MAX),
            created_at_ms,
            details,
        });
    }
    Ok(out)
}

pub(crate) fn devices(conn: &Connection) -> Result<Vec<DeviceInfo>, StoreError> {
    let mut stmt = conn.prepare_cached(
        // `IN (SELECT …)` is evaluated once into a temporary index; a correlated EXISTS
        // would scan `tokens` (keyed by hash) once per PC.
        "SELECT d.id, l.code, d.pc, d.created_ms, d.last_batch_ms, d.sessions,
             d.id IN (SELECT device FROM tokens WHERE device IS NOT NULL AND revoked_ms IS NULL)
         FROM devices d JOIN libraries l ON l.id = d.library
         ORDER BY l.code, d.pc",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, Option<i64>>(4)?,
            r.get::<_, i64>(5)?,
            r.get::<_, bool>(6)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, library, pc, enrolled_at_ms, last_batch_at_ms, sessions, active) = row?;
        out.push(DeviceInfo {
            device_id: DeviceId(id),
            library: library_code(library)?,
            pc: pc_code(pc)?,
            active,
            enrolled_at_ms,
            last_batch_at_ms,
            sessions: to_u64(sessions),
        });
    }
    Ok(out)
}

pub(crate) fn find_device(
    conn: &Connection,
    library: &LibraryCode,
    pc: &PcCode,
) -> Result<Option<DeviceRef>, StoreError> {
    let id: Option<i64> = conn
        .prepare_cached(
            "SELECT d.id FROM devices d JOIN libraries l ON l.id = d.library
             WHERE l.code = ?1 AND d.pc = ?2
               AND EXISTS (SELECT 1 FROM tokens t WHERE t.device = d.id AND t.revoked_ms IS NULL)",
        )?
        .query_row(params![library.as_str(), pc.as_str()], |r| r.get(0))
        .optional()?;
    Ok(id.map(|id| DeviceRef {
        id: DeviceId(id),
        library: library.clone(),
        pc: pc.clone(),
    }))
}

pub(crate) fn device_keys(
    conn: &Connection,
    device: DeviceId,
) -> Result<Option<DeviceKeys>, StoreError> {
    let row: Option<(Vec<u8>, Option<Vec<u8>>)> = conn
        .prepare_cached(
            "SELECT hash, public_key FROM tokens WHERE device = ?1 AND revoked_ms IS NULL",
        )?
        .query_row([device.0], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    row.map(|(hash, public_key)| DeviceKeys::from_stored(&hash, public_key.as_deref()))
        .transpose()
}

pub(crate) fn device_state(
    conn: &Connection,
    device: &DeviceRef,
) -> Result<DeviceState, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT last_batch_ms, sessions, events, rejected, offset_ms, offset_uncertainty_ms,
                 offset_at_ms
             FROM devices WHERE id = ?1",
        )?
        .query_row([device.id.0], |r| {
            Ok((
                r.get::<_, Option<i64>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<i64>>(4)?,
                r.get::<_, Option<i64>>(5)?,
                r.get::<_, Option<i64>>(6)?,
            ))
        })
        .optional()?
        .ok_or_else(|| StoreError::Inconsistent(format!("device {device} is not stored")))?;
    let mut stmt = conn.prepare_cached(
        "SELECT epoch, held_seq, last_batch_ms, first_ms FROM epochs WHERE device = ?1
         ORDER BY first_ms",
    )?;
    let epochs = stmt
        .query_map([device.id.0], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?
        .map(|row| {
            let (epoch, held, last, first) = row?;
            Ok(EpochState {
                epoch: Uuid::from_slice(&epoch)
                    .map_err(|_| StoreError::Inconsistent("a stored epoch is not a UUID".into()))?,
                held_seq: to_u64(held),
                last_batch_at_ms: Some(last),
                opened_at_ms: Some(first),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let mut stmt = conn.prepare_cached(
        "SELECT epoch, first_seq, last_seq, reported_ms FROM lost_ranges WHERE device = ?1
         ORDER BY reported_ms, first_seq",
    )?;
    let lost = stmt
        .query_map([device.id.0], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?
        .map(|row| {
            let (epoch, first, last, reported) = row?;
            Ok(LostRange {
                epoch: Uuid::from_slice(&epoch)
                    .map_err(|_| StoreError::Inconsistent("a stored epoch is not a UUID".into()))?,
                first_seq: to_u64(first),
                last_seq: to_u64(last),
                reported_at_ms: reported,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let (last_batch_at_ms, sessions, events, rejected, offset, uncertainty, offset_at) = row;
    Ok(DeviceState {
        library: device.library.clone(),
        pc: device.pc.clone(),
        epochs,
        last_batch_at_ms,
        sessions: to_u64(sessions),
        events: to_u64(events),
        rejected: to_u64(rejected),
        clock_offset_ms: offset,
        clock_uncertainty_ms: uncertainty.map(to_u64),
        clock_offset_at_ms: offset_at,
        lost,
    })
}

fn inconsistent(what: &str) -> StoreError {
    StoreError::Inconsistent(format!("a stored {what} is invalid"))
}

fn time(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| inconsistent("time"))
}

fn uuid(bytes: &[u8], what: &str) -> Result<Uuid, StoreError> {
    Uuid::from_slice(bytes).map_err(|_| inconsistent(what))
}

fn code<T>(value: Option<T>, what: &str) -> Result<T, StoreError> {
    value.ok_or_else(|| inconsistent(what))
}

fn patron_keys(conn: &Connection) -> Result<HashMap<i64, PatronKey>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT id, key FROM patron_keys")?;
    let mut rows = stmt.query([])?;
    let mut keys = HashMap::new();
    while let Some(r) = rows.next()? {
        let key = PatronKey::parse(&hex::encode(r.get::<_, Vec<u8>>(1)?))
            .map_err(|_| inconsistent("patron key"))?;
        keys.insert(r.get(0)?, key);
    }
    Ok(keys)
}

pub(crate) fn sessions(
    conn: &Connection,
    device: &DeviceRef,
) -> Result<Vec<StoredSession>, StoreError> {
    let keys = patron_keys(conn)?;
    // The key (device, id) leads from a device to its sessions.
    let mut stmt = conn.prepare_cached(
        "SELECT id, attrs, start_s, skew_ms, duration_s, offline_s, group_size, patron, rx_kib,
             tx_kib
         FROM sessions WHERE device = ?1 ORDER BY id",
    )?;
    let mut rows = stmt.query([device.id.0])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(stored_session(r, &keys)?);
    }
    Ok(out)
}

/// The sessions that started (by the server's clock) in `[from_s, to_s)`, Unix s, with
/// their library's and PC's codes. One pass over the table: for the detail export.
pub(crate) fn sessions_started_between(
    conn: &Connection,
    from_s: i64,
    to_s: i64,
) -> Result<Vec<(LibraryCode, PcCode, StoredSession)>, StoreError> {
    let keys = patron_keys(conn)?;
    let mut devices: HashMap<i64, (LibraryCode, PcCode)> = HashMap::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT d.id, l.code, d.pc FROM devices d JOIN libraries l ON l.id = d.library",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let library = LibraryCode::parse_exact(&r.get::<_, String>(1)?)
                .map_err(|_| inconsistent("a library code"))?;
            let pc = PcCode::parse_exact(&r.get::<_, String>(2)?)
                .map_err(|_| inconsistent("a PC code"))?;
            devices.insert(r.get(0)?, (library, pc));
        }
    }
    let mut stmt = conn.prepare_cached(
        "SELECT id, attrs, start_s, skew_ms, duration_s, offline_s, group_size, patron, rx_kib,
             tx_kib, device
         FROM sessions WHERE start_s >= ?1 AND start_s < ?2",
    )?;
    let mut rows = stmt.query([from_s, to_s])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let Some((library, pc)) = devices.get(&r.get::<_, i64>(10)?) else {
            return Err(inconsistent("a session of an unknown device"));
        };
        out.push((library.clone(), pc.clone(), stored_session(r, &keys)?));
    }
    Ok(out)
}

/// A row of `sessions` (its first ten columns as `sessions` selects them) as stored.
fn stored_session(
    r: &rusqlite::Row<'_>,
    keys: &HashMap<i64, PatronKey>,
) -> Result<StoredSession, StoreError> {
    codes::SessionColumns {
        id: r.get(0)?,
        attrs: r.get(1)?,
        start_s: r.get(2)?,
        skew_ms: r.get(3)?,
        duration_s: r.get(4)?,
        offline_s: r.get(5)?,
        group_size: r.get(6)?,
        patron: r.get(7)?,
        rx_kib: r.get(8)?,
        tx_kib: r.get(9)?,
    }
    .decode(keys)
}

pub(crate) fn events(
    conn: &Connection,
    device: &DeviceRef,
) -> Result<Vec<StoredEvent>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, attrs, at_s, skew_ms, clock_delta_ms FROM pc_events
         WHERE device = ?1 ORDER BY id",
    )?;
    let mut rows = stmt.query([device.id.0])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let (kind, quality) = codes::event_attrs_unpack(r.get(1)?);
        let at_s: i64 = r.get(2)?;
        out.push(StoredEvent {
            id: uuid(&r.get::<_, Vec<u8>>(0)?, "event id")?,
            kind: code(codes::event_kind_from(kind), "event kind")?,
            raw_at: time(at_s.saturating_mul(1000).saturating_add(r.get(3)?))?,
            corrected_at: time(at_s.saturating_mul(1000))?,
            clock_delta_ms: r.get(4)?,
            time_quality: code(codes::time_quality_from(quality), "time quality")?,
        });
    }
    Ok(out)
}

/// Per PC, the sessions still open that started before `before_ms`.
pub(crate) fn long_open_sessions(
    conn: &Connection,
    before_ms: i64,
) -> Result<Vec<(LibraryCode, PcCode, u64)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT library, pc, COUNT(*) FROM sessions_v
         WHERE end_reason IS NULL AND start_ms < ?1
         GROUP BY library, pc ORDER BY library, pc",
    )?;
    let mut rows = stmt.query([before_ms])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let library: String = r.get(0)?;
        let library = LibraryCode::parse(&library)
            .map_err(|e| StoreError::Inconsistent(format!("library code '{library}': {e}")))?;
        out.push((library, pc_code(r.get(1)?)?, to_u64(r.get(2)?)));
    }
    Ok(out)
}

/// The facts of each of `months` (any day of each) from the rollups (see `rollup.rs`
/// for the rules). What does not change from month to month — the libraries, their
/// PCs, the sessions no month holds — is read once; then per month its day rows, its
/// patron rows, its breakdown rows when asked and its entry counter rows (one range of
/// each key).
pub(crate) fn months_facts(
    conn: &Connection,
    months: &[chrono::NaiveDate],
    only: Option<&LibraryCode>,
    detail: FactsDetail,
) -> Result<Vec<MonthFacts>, StoreError> {
    let mut libs: Vec<LibraryFacts> = libraries(conn)?
        .into_iter()
        .filter(|l| only.is_none_or(|c| c == &l.code))
        .map(|l| LibraryFacts {
            code: l.code,
            name: l.name,
            timezone: l.timezone,
            details: l.details,
            pcs: Vec::new(),
            open_days: Vec::new(),
            unique_users: 0,
            last_batch_ms: None,
            days: Vec::new(),
            breakdowns: Vec::new(),
            entry_counts: Vec::new(),
        })
        .collect();
    if libs.is_empty() {
        return Ok(months
            .iter()
            .map(|month| MonthFacts {
                month: month_bounds(*month).0,
                libraries: Vec::new(),
            })
            .collect());
    }
    // Store numbers of the libraries asked for, to index `libs`.
    let mut lib_index: HashMap<i64, usize> = HashMap::new();
    {
        let by_code: HashMap<&str, usize> = libs
            .iter()
            .enumerate()
            .map(|(i, l)| (l.code.as_str(), i))
            .collect();
        let mut stmt = conn.prepare_cached("SELECT id, code FROM libraries")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let code = r
                .get_ref(1)?
                .as_str()
                .map_err(|_| inconsistent("a library code"))?;
            if let Some(&i) = by_code.get(code) {
                lib_index.insert(r.get(0)?, i);
            }
        }
    }

    // PCs with an active token, read once: `tokens` is keyed by hash, so a lookup per
    // PC would scan it for each of a province's thousand PCs (15 ms of a 20 ms matrix).
    let active: std::collections::HashSet<i64> = {
        let mut stmt = conn.prepare_cached(
            "SELECT device FROM tokens WHERE device IS NOT NULL AND revoked_ms IS NULL",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    // PCs and their last batches.
    let mut device_index: HashMap<i64, (usize, usize)> = HashMap::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT d.id, d.library, d.pc, d.last_batch_ms FROM devices d
             ORDER BY d.library, d.pc",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let Some(&i) = lib_index.get(&r.get::<_, i64>(1)?) else {
                continue;
            };
            let last: Option<i64> = r.get(3)?;
            let id: i64 = r.get(0)?;
            libs[i].last_batch_ms = libs[i].last_batch_ms.max(last);
            libs[i].pcs.push(PcFacts {
                pc: pc_code(r.get(2)?)?,
                active: active.contains(&id),
                last_batch_ms: last,
                powered_seconds: 0,
                internet_up_seconds: 0,
                undated_sessions: 0,
            });
            device_index.insert(r.get(0)?, (i, libs[i].pcs.len() - 1));
        }
    }

    // Sessions whose month cannot be told, whenever they happened (the months before
    // any real one hold them; `dating.rs`).
    {
        let mut stmt =
            conn.prepare_cached("SELECT device, days FROM day_rollups WHERE month < ?1")?;
        let mut rows = stmt.query([dating::FIRST_DATED_MONTH])?;
        while let Some(r) = rows.next()? {
            let Some(&(i, p)) = device_index.get(&r.get::<_, i64>(0)?) else {
                continue;
            };
            let bytes: Vec<u8> = r.get(1)?;
            let values = rollup::unpack_days(&bytes)
                .ok_or_else(|| inconsistent("the packed days of an undated month"))?;
            libs[i].pcs[p].undated_sessions += to_u64(rollup::row_sessions(&values));
        }
    }
    months
        .iter()
        .map(|month| month_of(conn, &libs, &lib_index, &device_index, *month, detail))
        .collect()
}

/// One month's facts: `template` holds the libraries and PCs of [`months_facts`],
/// `lib_index` and `device_index` place a store number in it.
fn month_of(
    conn: &Connection,
    template: &[LibraryFacts],
    lib_index: &HashMap<i64, usize>,
    device_index: &HashMap<i64, (usize, usize)>,
    month: chrono::NaiveDate,
    detail: FactsDetail,
) -> Result<MonthFacts, StoreError> {
    let (first, next) = month_bounds(month);
    let mut libs = template.to_vec();
    // The month's day rollups: one packed row per PC.
    let month_number = rollup::month_number(first);
    let corrupt = |what: &str| inconsistent(&format!("the packed {what} of {first}"));
    {
        let mut stmt =
            conn.prepare_cached("SELECT device, days FROM day_rollups WHERE month = ?1")?;
        let mut rows = stmt.query([month_number])?;
        while let Some(r) = rows.next()? {
            let Some(&(i, p)) = device_index.get(&r.get::<_, i64>(0)?) else {
                continue;
            };
            let bytes: Vec<u8> = r.get(1)?;
            let values = rollup::unpack_days(&bytes).ok_or_else(|| corrupt("days"))?;
            let lib = &mut libs[i];
            for (index, counters) in values.chunks(rollup::DAY_FIELDS).enumerate() {
                let t = DayTotals::from_slice(counters);
                if t.is_zero() {
                    continue;
                }
                let day = first + chrono::Duration::days(index as i64);
                if day >= next {
                    return Err(corrupt("days"));
                }
                if t.all_sessions > 0 || t.boots > 0 {
                    lib.open_days.push(day);
                }
                lib.pcs[p].powered_seconds += to_u64(t.powered_s);
                lib.pcs[p].internet_up_seconds += to_u64(t.internet_s);
                if t.sessions > 0 || t.seconds > 0 || t.kib > 0 {
                    lib.days.push(DayFacts {
                        pc: lib.pcs[p].pc.clone(),
                        day,
                        sessions: to_u64(t.sessions),
                        persons: to_u64(t.persons),
                        seconds: to_u64(t.seconds),
                        online_seconds: to_u64(t.online_s),
                        kib: to_u64(t.kib),
                        complete: to_u64(t.complete),
                        men: to_u64(t.men),
                        women: to_u64(t.women),
                        estimated: to_u64(t.estimated),
                    });
                }
            }
        }
    }
    for lib in &mut libs {
        lib.open_days.sort();
        lib.open_days.dedup();
        lib.days.sort_by(|a, b| (&a.pc, a.day).cmp(&(&b.pc, b.day)));
    }

    // Unique users: the patrons of the month's packed rows.
    {
        let mut stmt =
            conn.prepare_cached("SELECT library, patrons FROM patron_months WHERE month = ?1")?;
        let mut rows = stmt.query([month_number])?;
        while let Some(r) = rows.next()? {
            if let Some(&i) = lib_index.get(&r.get::<_, i64>(0)?) {
                let bytes: Vec<u8> = r.get(1)?;
                libs[i].unique_users =
                    rollup::count_patrons(&bytes).ok_or_else(|| corrupt("patrons"))?;
            }
        }
    }

    if detail == FactsDetail::Breakdowns {
        let mut stmt =
            conn.prepare_cached("SELECT library, cells FROM breakdown_rollups WHERE month = ?1")?;
        let mut rows = stmt.query([month_number])?;
        while let Some(r) = rows.next()? {
            let library: i64 = r.get(0)?;
            let Some(&i) = lib_index.get(&library) else {
                continue;
            };
            let bytes: Vec<u8> = r.get(1)?;
            let values = rollup::unpack(&bytes).ok_or_else(|| corrupt("cells"))?;
            for (slot, pair) in values.chunks(2).enumerate() {
                let (sessions, persons) = (pair[0], pair.get(1).copied().unwrap_or(0));
                if sessions == 0 && persons == 0 {
                    continue;
                }
                let cell = rollup::slot_cell(library, month_number, slot);
                let by = if cell.breakdown == rollup::BY_AGE {
                    Breakdown::Age(code(codes::age_group_from(cell.value), "age group")?)
                } else {
                    let purpose = codes::purposes_from(1 << cell.value.clamp(0, 62));
                    Breakdown::Purpose(code(purpose.first().copied(), "purpose")?)
                };
                libs[i].breakdowns.push(BreakdownFacts {
                    by,
                    user_kind: code(codes::user_kind_from(cell.user_kind), "user kind")?,
                    gender: code(codes::gender_from(cell.gender), "gender")?,
                    sessions: to_u64(sessions),
                    persons: to_u64(persons),
                });
            }
        }
    }
    // The low-volume kinds' counters: one packed row per library; one library's (the
    // village report's) is looked up by its key rather than found among the district's.
    {
        let one = match lib_index.keys().collect::<Vec<_>>()[..] {
            [library] if libs.len() == 1 => Some(*library),
            _ => None,
        };
        let mut stmt = conn.prepare_cached(if one.is_some() {
            "SELECT library, counters FROM entry_months WHERE month = ?1 AND library = ?2"
        } else {
            "SELECT library, counters FROM entry_months WHERE month = ?1 AND ?2 IS NULL"
        })?;
        let mut rows = stmt.query(params![month_number, one])?;
        while let Some(r) = rows.next()? {
            let library: i64 = r.get(0)?;
            let Some(&i) = lib_index.get(&library) else {
                continue;
            };
            let counts = &mut libs[i].entry_counts;
            let bytes = r
                .get_ref(1)?
                .as_blob()
                .map_err(|_| corrupt("entry counters"))?;
            rollup::EntryMonth::push_facts(bytes, first, detail, counts)
                .ok_or_else(|| corrupt("entry counters"))?;
        }
    }
    Ok(MonthFacts {
        month: first,
        libraries: libs,
    })
}

/// The latest month with a breakdown rollup row (every session adds to one).
pub(crate) fn latest_session_month(
    conn: &Connection,
) -> Result<Option<chrono::NaiveDate>, StoreError> {
    let month: Option<i64> = conn
        .prepare_cached("SELECT MAX(month) FROM breakdown_rollups")?
        .query_row([], |r| r.get(0))?;
    Ok(month.and_then(crate::rollup::month_first))
}

/// The district's letterhead, when set.
pub(crate) fn letterhead(
    conn: &Connection,
) -> Result<Option<crate::report::Letterhead>, StoreError> {
    let json: Option<String> = conn
        .prepare_cached("SELECT value FROM settings WHERE name = ?1")?
        .query_row([super::write::LETTERHEAD], |r| r.get(0))
        .optional()?;
    json.map(|j| serde_json::from_str(&j).map_err(|e| inconsistent(&format!("letterhead: {e}"))))
        .transpose()
}
