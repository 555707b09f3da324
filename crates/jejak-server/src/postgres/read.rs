//! The PostgreSQL store's reads, each inside a read-only transaction of its own (one
//! snapshot for the several statements of `month_facts`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use jejak_domain::{LibraryCode, LibraryDetails, PatronKey, PcCode, Zone};
use uuid::Uuid;

use crate::codes;
use crate::recount::{self, Places};
use crate::report::facts::{
    Breakdown, BreakdownFacts, DayFacts, FactsDetail, LibraryFacts, MonthFacts, PcFacts,
    month_bounds,
};
use crate::rollup::{self, DayTotals, EventCursor, RollupDelta, SessionFacts};
use crate::store::{
    AuthError, DEVICE_TOKEN_PREFIX, DeviceId, DeviceInfo, DeviceKeys, DeviceRef, DeviceState,
    EpochState, LibraryInfo, LostRange, Principal, RollupCheck, STAFF_TOKEN_PREFIX, StoreError,
    StoredEvent, StoredSession, token_hash,
};

fn inconsistent(what: &str) -> StoreError {
    StoreError::Inconsistent(format!("a stored {what} is invalid"))
}

fn library_code(raw: String) -> Result<LibraryCode, StoreError> {
    LibraryCode::parse(&raw).map_err(|_| inconsistent("library code"))
}

fn pc_code(raw: String) -> Result<PcCode, StoreError> {
    PcCode::parse(&raw).map_err(|_| inconsistent("PC code"))
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
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

/// See [`crate::ServerStore::staff_token_active`].
/// One statement, without a transaction of its own, as [`authenticate`]: the dashboard
/// asks on every page.
pub(crate) async fn staff_token_active(
    client: &deadpool_postgres::ClientWrapper,
    hash: &[u8; 32],
) -> Result<bool, StoreError> {
    let statement = client
        .prepare_cached(
            "SELECT 1 FROM tokens WHERE hash = $1 AND staff IS NOT NULL AND revoked_ms IS NULL",
        )
        .await?;
    Ok(client
        .query_opt(&statement, &[&hash.as_slice()])
        .await?
        .is_some())
}

/// Who a token is. One statement, so it runs without a transaction of its own (one
/// statement sees one snapshot either way): every request is authenticated, and BEGIN
/// and COMMIT would cost two more round trips each time.
pub(crate) async fn authenticate(
    client: &deadpool_postgres::ClientWrapper,
    token: &str,
) -> Result<Principal, AuthError> {
    let token = token.trim();
    let hash = token_hash(token);
    if token.starts_with(DEVICE_TOKEN_PREFIX) {
        let statement = client
            .prepare_cached(
                "SELECT t.revoked_ms, d.id, l.code, d.pc
                 FROM tokens t
                 JOIN devices d ON d.library = t.library AND d.id = t.device
                 JOIN libraries l ON l.id = d.library
                 WHERE t.hash = $1",
            )
            .await
            .map_err(StoreError::from)?;
        let row = client
            .query_opt(&statement, &[&hash.as_slice()])
            .await
            .map_err(StoreError::from)?;
        let Some(r) = row else {
            return Err(AuthError::Unknown);
        };
        let revoked: Option<i64> = r.try_get(0).map_err(StoreError::from)?;
        if revoked.is_some() {
            return Err(AuthError::Revoked);
        }
        Ok(Principal::Device {
            library: library_code(r.try_get(2).map_err(StoreError::from)?)?,
            pc: pc_code(r.try_get(3).map_err(StoreError::from)?)?,
            device_id: DeviceId(r.try_get(1).map_err(StoreError::from)?),
        })
    } else if token.starts_with(STAFF_TOKEN_PREFIX) {
        let statement = client
            .prepare_cached(
                "SELECT revoked_ms, staff FROM tokens WHERE hash = $1 AND staff IS NOT NULL",
            )
            .await
            .map_err(StoreError::from)?;
        let row = client
            .query_opt(&statement, &[&hash.as_slice()])
            .await
            .map_err(StoreError::from)?;
        let Some(r) = row else {
            return Err(AuthError::Unknown);
        };
        let revoked: Option<i64> = r.try_get(0).map_err(StoreError::from)?;
        if revoked.is_some() {
            return Err(AuthError::Revoked);
        }
        Ok(Principal::Staff {
            name: r.try_get(1).map_err(StoreError::from)?,
        })
    } else {
        Err(AuthError::Unknown)
    }
}

pub(crate) async fn libraries(tx: &Transaction<'_>) -> Result<Vec<LibraryInfo>, StoreError> {
    let mut out = Vec::new();
    for r in tx
        .query(
            // The active tokens are counted in one pass: a count per library scanned
            // `tokens` once for each library (35 ms for 350).
            "SELECT l.code, l.name, l.timezone, l.created_ms, COALESCE(a.active, 0),
                 l.npp, l.desa, l.kecamatan, l.address, l.kepala_desa, l.manager, l.manager_nip
             FROM libraries l LEFT JOIN (
                 SELECT library, COUNT(*) AS active FROM tokens
                 WHERE device IS NOT NULL AND revoked_ms IS NULL GROUP BY library
             ) a ON a.library = l.id
             ORDER BY l.code COLLATE \"C\"",
            &[],
        )
        .await?
    {
        let timezone: String = r.try_get(2)?;
        out.push(LibraryInfo {
            code: library_code(r.try_get(0)?)?,
            name: r.try_get(1)?,
            timezone: Zone::parse(&timezone).map_err(|_| inconsistent("time zone"))?,
            active_devices: u32::try_from(r.try_get::<_, i64>(4)?).unwrap_or(u32::MAX),
            created_at_ms: r.try_get(3)?,
            details: LibraryDetails {
                npp: r.try_get(5)?,
                desa: r.try_get(6)?,
                kecamatan: r.try_get(7)?,
                address: r.try_get(8)?,
                kepala_desa: r.try_get(9)?,
                manager: r.try_get(10)?,
                manager_nip: r.try_get(11)?,
            },
        });
    }
    Ok(out)
}

pub(crate) async fn devices(tx: &Transaction<'_>) -> Result<Vec<DeviceInfo>, StoreError> {
    let mut out = Vec::new();
    for r in tx
        .query(
            "SELECT d.id, l.code, d.pc, d.created_ms, d.last_batch_ms, d.sessions,
                 EXISTS (SELECT 1 FROM tokens t WHERE t.device = d.id AND t.revoked_ms IS NULL)
             FROM devices d JOIN libraries l ON l.id = d.library
             ORDER BY l.code COLLATE \"C\", d.pc COLLATE \"C\"",
            &[],
        )
        .await?
    {
        out.push(DeviceInfo {
            device_id: DeviceId(r.try_get(0)?),
            library: library_code(r.try_get(1)?)?,
            pc: pc_code(r.try_get(2)?)?,
            active: r.try_get(6)?,
            enrolled_at_ms: r.try_get(3)?,
            last_batch_at_ms: r.try_get(4)?,
            sessions: to_u64(r.try_get(5)?),
        });
    }
    Ok(out)
}

pub(crate) async fn find_device(
    tx: &Transaction<'_>,
    library: &LibraryCode,
    pc: &PcCode,
) -> Result<Option<DeviceRef>, StoreError> {
    let row = tx
        .query_opt(
            "SELECT d.id FROM devices d JOIN libraries l ON l.id = d.library
             WHERE l.code = $1 AND d.pc = $2
               AND EXISTS (SELECT 1 FROM tokens t WHERE t.device = d.id AND t.revoked_ms IS NULL)",
            &[&library.as_str(), &pc.as_str()],
        )
        .await?;
    Ok(match row {
        Some(r) => Some(DeviceRef {
            id: DeviceId(r.try_get(0)?),
            library: library.clone(),
            pc: pc.clone(),
        }),
        None => None,
    })
}

pub(crate) async fn device_keys(
    tx: &Transaction<'_>,
    device: DeviceId,
) -> Result<Option<DeviceKeys>, StoreError> {
    let row = tx
        .query_opt(
            "SELECT hash, public_key FROM tokens WHERE device = $1 AND revoked_ms IS NULL",
            &[&device.0],
        )
        .await?;
    match row {
        None => Ok(None),
        Some(r) => {
            let hash: Vec<u8> = r.try_get(0)?;
            let public_key: Option<Vec<u8>> = r.try_get(1)?;
            DeviceKeys::from_stored(&hash, public_key.as_deref()).map(Some)
        }
    }
}

pub(crate) async fn device_state(
    tx: &Transaction<'_>,
    device: &DeviceRef,
) -> Result<DeviceState, StoreError> {
    let r = tx
        .query_opt(
            "SELECT last_batch_ms, sessions, events, rejected, offset_ms, offset_uncertainty_ms,
                 offset_at_ms, library
             FROM devices WHERE id = $1",
            &[&device.id.0],
        )
        .await?
        .ok_or_else(|| StoreError::Inconsistent(format!("device {device} is not stored")))?;
    let library: i64 = r.try_get(7)?;
    let mut epochs = Vec::new();
    for e in tx
        .query(
            "SELECT epoch, held_seq, last_batch_ms, first_ms FROM epochs
             WHERE library = $1 AND device = $2 ORDER BY first_ms",
            &[&library, &device.id.0],
        )
        .await?
    {
        epochs.push(EpochState {
            epoch: uuid(&e.try_get::<_, Vec<u8>>(0)?, "epoch")?,
            held_seq: to_u64(e.try_get(1)?),
            last_batch_at_ms: Some(e.try_get(2)?),
            opened_at_ms: Some(e.try_get(3)?),
        });
    }
    let mut lost = Vec::new();
    for l in tx
        .query(
            "SELECT epoch, first_seq, last_seq, reported_ms FROM lost_ranges
             WHERE library = $1 AND device = $2 ORDER BY reported_ms, first_seq",
            &[&library, &device.id.0],
        )
        .await?
    {
        lost.push(LostRange {
            epoch: uuid(&l.try_get::<_, Vec<u8>>(0)?, "epoch")?,
            first_seq: to_u64(l.try_get(1)?),
            last_seq: to_u64(l.try_get(2)?),
            reported_at_ms: l.try_get(3)?,
        });
    }
    let uncertainty: Option<i64> = r.try_get(5)?;
    Ok(DeviceState {
        library: device.library.clone(),
        pc: device.pc.clone(),
        epochs,
        last_batch_at_ms: r.try_get(0)?,
        sessions: to_u64(r.try_get(1)?),
        events: to_u64(r.try_get(2)?),
        rejected: to_u64(r.try_get(3)?),
        clock_offset_ms: r.try_get(4)?,
        clock_uncertainty_ms: uncertainty.map(to_u64),
        clock_offset_at_ms: r.try_get(6)?,
        lost,
    })
}

async fn device_library(tx: &Transaction<'_>, device: DeviceId) -> Result<i64, StoreError> {
    Ok(tx
        .query_opt("SELECT library FROM devices WHERE id = $1", &[&device.0])
        .await?
        .ok_or_else(|| StoreError::Inconsistent(format!("device {} is not stored", device.0)))?
        .try_get(0)?)
}

pub(crate) async fn sessions(
    tx: &Transaction<'_>,
    device: &DeviceRef,
) -> Result<Vec<StoredSession>, StoreError> {
    let library = device_library(tx, device.id).await?;
    let mut keys: HashMap<i64, PatronKey> = HashMap::new();
    for r in tx
        .query(
            "SELECT id, key FROM patron_keys WHERE library = $1",
            &[&library],
        )
        .await?
    {
        let key = PatronKey::parse(&hex::encode(r.try_get::<_, Vec<u8>>(1)?))
            .map_err(|_| inconsistent("patron key"))?;
        keys.insert(r.try_get(0)?, key);
    }
    let mut out = Vec::new();
    for r in tx
        .query(
            "SELECT id, attrs, start_s, skew_ms, duration_s, offline_s, group_size, patron,
                 rx_kib, tx_kib
             FROM sessions WHERE library = $1 AND device = $2 ORDER BY id",
            &[&library, &device.id.0],
        )
        .await?
    {
        out.push(stored_session(&r, &keys)?);
    }
    Ok(out)
}

/// The sessions that started (by the server's clock) in `[from_s, to_s)`, Unix s, with
/// their library's and PC's codes. One pass over the table: for the detail export.
pub(crate) async fn sessions_started_between(
    tx: &Transaction<'_>,
    from_s: i64,
    to_s: i64,
) -> Result<Vec<(LibraryCode, PcCode, StoredSession)>, StoreError> {
    let mut keys: HashMap<i64, HashMap<i64, PatronKey>> = HashMap::new();
    for r in tx
        .query("SELECT library, id, key FROM patron_keys", &[])
        .await?
    {
        let key = PatronKey::parse(&hex::encode(r.try_get::<_, Vec<u8>>(2)?))
            .map_err(|_| inconsistent("patron key"))?;
        keys.entry(r.try_get(0)?)
            .or_default()
            .insert(r.try_get(1)?, key);
    }
    let mut devices: HashMap<(i64, i64), (LibraryCode, PcCode)> = HashMap::new();
    for r in tx
        .query(
            "SELECT d.library, d.id, l.code, d.pc FROM devices d
             JOIN libraries l ON l.id = d.library",
            &[],
        )
        .await?
    {
        let library = LibraryCode::parse_exact(&r.try_get::<_, String>(2)?)
            .map_err(|_| inconsistent("a library code"))?;
        let pc = PcCode::parse_exact(&r.try_get::<_, String>(3)?)
            .map_err(|_| inconsistent("a PC code"))?;
        devices.insert((r.try_get(0)?, r.try_get(1)?), (library, pc));
    }
    let no_keys = HashMap::new();
    let mut out = Vec::new();
    for r in tx
        .query(
            "SELECT id, attrs, start_s, skew_ms, duration_s, offline_s, group_size, patron,
                 rx_kib, tx_kib, library, device
             FROM sessions WHERE start_s >= $1 AND start_s < $2",
            &[&from_s, &to_s],
        )
        .await?
    {
        let library: i64 = r.try_get(10)?;
        let Some((code, pc)) = devices.get(&(library, r.try_get(11)?)) else {
            return Err(inconsistent("a session of an unknown device"));
        };
        let session = stored_session(&r, keys.get(&library).unwrap_or(&no_keys))?;
        out.push((code.clone(), pc.clone(), session));
    }
    Ok(out)
}

/// A row of `sessions` (its first ten columns as `sessions` selects them) as stored.
fn stored_session(
    r: &tokio_postgres::Row,
    keys: &HashMap<i64, PatronKey>,
) -> Result<StoredSession, StoreError> {
    codes::SessionColumns {
        id: r.try_get(0)?,
        attrs: r.try_get(1)?,
        start_s: r.try_get(2)?,
        skew_ms: r.try_get(3)?,
        duration_s: r.try_get(4)?,
        offline_s: r.try_get(5)?,
        group_size: r.try_get(6)?,
        patron: r.try_get(7)?,
        rx_kib: r.try_get(8)?,
        tx_kib: r.try_get(9)?,
    }
    .decode(keys)
}

pub(crate) async fn events(
    tx: &Transaction<'_>,
    device: &DeviceRef,
) -> Result<Vec<StoredEvent>, StoreError> {
    let library = device_library(tx, device.id).await?;
    let mut out = Vec::new();
    for r in tx
        .query(
            "SELECT id, attrs, at_s, skew_ms, clock_delta_ms FROM pc_events
             WHERE library = $1 AND device = $2 ORDER BY id",
            &[&library, &device.id.0],
        )
        .await?
    {
        let (kind, quality) = codes::event_attrs_unpack(r.try_get(1)?);
        let at_s: i64 = r.try_get(2)?;
        out.push(StoredEvent {
            id: uuid(&r.try_get::<_, Vec<u8>>(0)?, "event id")?,
            kind: code(codes::event_kind_from(kind), "event kind")?,
            raw_at: time(at_s.saturating_mul(1000).saturating_add(r.try_get(3)?))?,
            corrected_at: time(at_s.saturating_mul(1000))?,
            clock_delta_ms: r.try_get(4)?,
            time_quality: code(codes::time_quality_from(quality), "time quality")?,
        });
    }
    Ok(out)
}

/// Per PC, the sessions still open that started before `before_ms`.
pub(crate) async fn long_open_sessions(
    tx: &Transaction<'_>,
    before_ms: i64,
) -> Result<Vec<(LibraryCode, PcCode, u64)>, StoreError> {
    // The end reason is "none" (code 6) while a session is open: see codes.rs.
    let mut out = Vec::new();
    for r in tx
        .query(
            "SELECT l.code, d.pc, COUNT(*)
             FROM sessions s JOIN devices d ON d.library = s.library AND d.id = s.device
                 JOIN libraries l ON l.id = s.library
             WHERE (s.attrs / 126) % 63 / 9 = 6 AND s.start_s * 1000 < $1
             GROUP BY l.code, d.pc ORDER BY l.code COLLATE \"C\", d.pc COLLATE \"C\"",
            &[&before_ms],
        )
        .await?
    {
        out.push((
            library_code(r.try_get(0)?)?,
            pc_code(r.try_get(1)?)?,
            to_u64(r.try_get(2)?),
        ));
    }
    Ok(out)
}

/// A month's facts from the rollups, exactly as `sqlite/read.rs` builds them.
pub(crate) async fn month_facts(
    tx: &Transaction<'_>,
    month: chrono::NaiveDate,
    only: Option<&LibraryCode>,
    detail: FactsDetail,
) -> Result<MonthFacts, StoreError> {
    let (first, next) = month_bounds(month);
    let mut libs: Vec<LibraryFacts> = libraries(tx)
        .await?
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
        return Ok(MonthFacts {
            month: first,
            libraries: libs,
        });
    }
    let mut lib_index: HashMap<i64, usize> = HashMap::new();
    for r in tx.query("SELECT id, code FROM libraries", &[]).await? {
        let code: String = r.try_get(1)?;
        if let Some(i) = libs.iter().position(|l| l.code.as_str() == code) {
            lib_index.insert(r.try_get(0)?, i);
        }
    }
    let mut device_index: HashMap<i64, (usize, usize)> = HashMap::new();
    for r in tx
        .query(
            "SELECT d.id, d.library, d.pc, d.last_batch_ms,
                 EXISTS (SELECT 1 FROM tokens t WHERE t.device = d.id AND t.revoked_ms IS NULL)
             FROM devices d ORDER BY d.library, d.pc COLLATE \"C\"",
            &[],
        )
        .await?
    {
        let Some(&i) = lib_index.get(&r.try_get::<_, i64>(1)?) else {
            continue;
        };
        let last: Option<i64> = r.try_get(3)?;
        libs[i].last_batch_ms = libs[i].last_batch_ms.max(last);
        libs[i].pcs.push(PcFacts {
            pc: pc_code(r.try_get(2)?)?,
            active: r.try_get(4)?,
            last_batch_ms: last,
            powered_seconds: 0,
            internet_up_seconds: 0,
            undated_sessions: 0,
        });
        device_index.insert(r.try_get(0)?, (i, libs[i].pcs.len() - 1));
    }

    let month_number = rollup::month_number(first);
    let corrupt = |what: &str| inconsistent(&format!("the packed {what} of {first}"));
    for r in tx
        .query(
            "SELECT device, days FROM day_rollups WHERE month = $1",
            &[&month_number],
        )
        .await?
    {
        let Some(&(i, p)) = device_index.get(&r.try_get::<_, i64>(0)?) else {
            continue;
        };
        let bytes: Vec<u8> = r.try_get(1)?;
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
    // Sessions whose month cannot be told, whenever they happened (the months before
    // any real one hold them; `dating.rs`).
    for r in tx
        .query(
            "SELECT device, days FROM day_rollups WHERE month < $1",
            &[&crate::dating::FIRST_DATED_MONTH],
        )
        .await?
    {
        let Some(&(i, p)) = device_index.get(&r.try_get::<_, i64>(0)?) else {
            continue;
        };
        let bytes: Vec<u8> = r.try_get(1)?;
        let values = rollup::unpack_days(&bytes).ok_or_else(|| corrupt("days"))?;
        libs[i].pcs[p].undated_sessions += to_u64(rollup::row_sessions(&values));
    }
    for lib in &mut libs {
        lib.open_days.sort();
        lib.open_days.dedup();
        lib.days.sort_by(|a, b| (&a.pc, a.day).cmp(&(&b.pc, b.day)));
    }
    for r in tx
        .query(
            "SELECT library, patrons FROM patron_months WHERE month = $1",
            &[&month_number],
        )
        .await?
    {
        if let Some(&i) = lib_index.get(&r.try_get::<_, i64>(0)?) {
            let bytes: Vec<u8> = r.try_get(1)?;
            libs[i].unique_users =
                rollup::count_patrons(&bytes).ok_or_else(|| corrupt("patrons"))?;
        }
    }
    if detail == FactsDetail::Breakdowns {
        for r in tx
            .query(
                "SELECT library, cells FROM breakdown_rollups WHERE month = $1",
                &[&month_number],
            )
            .await?
        {
            let library: i64 = r.try_get(0)?;
            let Some(&i) = lib_index.get(&library) else {
                continue;
            };
            let bytes: Vec<u8> = r.try_get(1)?;
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
    // The low-volume kinds' counters: one packed row per library.
    let library_ids: Vec<i64> = lib_index.keys().copied().collect();
    for r in tx
        .query(
            "SELECT library, counters FROM entry_months
             WHERE month = $1 AND library = ANY($2)",
            &[&month_number, &library_ids],
        )
        .await?
    {
        let Some(&i) = lib_index.get(&r.try_get::<_, i64>(0)?) else {
            continue;
        };
        let bytes: &[u8] = r.try_get(1)?;
        rollup::EntryMonth::push_facts(bytes, first, detail, &mut libs[i].entry_counts)
            .ok_or_else(|| corrupt("entry counters"))?;
    }
    Ok(MonthFacts {
        month: first,
        libraries: libs,
    })
}

/// The district's letterhead, when set.
/// The latest month with a breakdown rollup row (every session adds to one).
pub(crate) async fn latest_session_month(
    tx: &Transaction<'_>,
) -> Result<Option<chrono::NaiveDate>, StoreError> {
    let row = tx
        .query_one("SELECT MAX(month) FROM breakdown_rollups", &[])
        .await?;
    let month: Option<i64> = row.try_get(0)?;
    Ok(month.and_then(crate::rollup::month_first))
}

pub(crate) async fn letterhead(
    tx: &Transaction<'_>,
) -> Result<Option<crate::report::Letterhead>, StoreError> {
    let row = tx
        .query_opt(
            "SELECT value FROM settings WHERE name = $1",
            &[&super::LETTERHEAD],
        )
        .await?;
    match row {
        None => Ok(None),
        Some(r) => {
            let json: String = r.try_get(0)?;
            serde_json::from_str(&json)
                .map(Some)
                .map_err(|e| inconsistent(&format!("letterhead: {e}")))
        }
    }
}

/// Every device's library and zone offset.
async fn places(tx: &Transaction<'_>) -> Result<Places, StoreError> {
    let mut out = Places::new();
    for r in tx
        .query(
            "SELECT d.id, d.library, l.timezone FROM devices d JOIN libraries l ON l.id = d.library",
            &[],
        )
        .await?
    {
        let timezone: String = r.try_get(2)?;
        let zone = Zone::parse(&timezone)
            .map_err(|e| StoreError::Inconsistent(format!("library zone '{timezone}': {e}")))?;
        out.insert(
            r.try_get(0)?,
            (r.try_get(1)?, i64::from(zone.offset().local_minus_utc())),
        );
    }
    Ok(out)
}

/// The rollups as the raw rows say they should be, and each device's event cursor.
pub(crate) async fn recount(
    tx: &Transaction<'_>,
) -> Result<(RollupDelta, HashMap<i64, Option<EventCursor>>), StoreError> {
    let places = places(tx).await?;
    let mut delta = RollupDelta::default();
    for r in tx
        .query(
            "SELECT device, attrs, start_s, duration_s, offline_s, group_size, patron,
                 rx_kib + tx_kib
             FROM sessions",
            &[],
        )
        .await?
    {
        let facts = SessionFacts {
            attrs: r.try_get(1)?,
            start_s: r.try_get(2)?,
            duration_s: r.try_get(3)?,
            offline_s: r.try_get(4)?,
            group_size: r.try_get(5)?,
            patron: r.try_get(6)?,
            kib: r.try_get(7)?,
        };
        recount::recount_session(&mut delta, &places, r.try_get(0)?, &facts)?;
    }
    for row in entry_rows(tx).await? {
        recount::recount_entry(&mut delta, &places, row)?;
    }
    let mut cursors = HashMap::new();
    for (&device, &(library, offset)) in &places {
        let events = super::write::device_events(tx, library, device).await?;
        cursors.insert(
            device,
            recount::recount_events(&mut delta, device, offset, &events),
        );
    }
    Ok((delta.without_zeros(), cursors))
}

/// The rollups as stored, unpacked.
async fn stored(tx: &Transaction<'_>) -> Result<RollupDelta, StoreError> {
    let mut delta = RollupDelta::default();
    for r in tx
        .query("SELECT month, device, days FROM day_rollups", &[])
        .await?
    {
        let bytes: Vec<u8> = r.try_get(2)?;
        recount::stored_days(&mut delta, r.try_get(0)?, r.try_get(1)?, &bytes)?;
    }
    for r in tx
        .query("SELECT month, library, cells FROM breakdown_rollups", &[])
        .await?
    {
        let bytes: Vec<u8> = r.try_get(2)?;
        recount::stored_cells(&mut delta, r.try_get(0)?, r.try_get(1)?, &bytes)?;
    }
    for r in tx
        .query("SELECT month, library, patrons FROM patron_months", &[])
        .await?
    {
        let bytes: Vec<u8> = r.try_get(2)?;
        recount::stored_patrons(&mut delta, r.try_get(0)?, r.try_get(1)?, &bytes)?;
    }
    for r in tx
        .query("SELECT month, library, counters FROM entry_months", &[])
        .await?
    {
        let bytes: Vec<u8> = r.try_get(2)?;
        recount::stored_entry_month(&mut delta, r.try_get(0)?, r.try_get(1)?, &bytes)?;
    }
    Ok(delta.without_zeros())
}

/// Compares the stored rollups with a recount from the raw rows.
pub(crate) async fn check_rollups(tx: &Transaction<'_>) -> Result<RollupCheck, StoreError> {
    let (mut expected, _) = recount(tx).await?;
    let mut actual = stored(tx).await?;
    // Months whose raw records were pruned keep rollups a recount cannot reproduce.
    if let Some(month) = super::write::retained_from(tx).await? {
        expected = expected.keeping_months_from(month);
        actual = actual.keeping_months_from(month);
    }
    Ok(recount::compare(&expected, &actual))
}

/// Every stored entry (its newest version) as the recount and the detail export read it.
pub(crate) async fn entry_rows(tx: &Transaction<'_>) -> Result<Vec<recount::EntryRow>, StoreError> {
    let mut out = Vec::new();
    for r in tx
        .query(
            "SELECT e.kind, e.id, l.code, e.device, d.pc, e.revision, e.wall_ms, e.fields, e.at_s
             FROM entries e JOIN devices d ON d.library = e.library AND d.id = e.device
                 JOIN libraries l ON l.id = e.library",
            &[],
        )
        .await?
    {
        let id: Vec<u8> = r.try_get(1)?;
        let packed: Vec<u8> = r.try_get(7)?;
        let (fields, texts) = crate::entries::unpack_entry(&packed)
            .ok_or_else(|| StoreError::Inconsistent("an entry's fields".into()))?;
        out.push(recount::EntryRow {
            kind: r.try_get(0)?,
            id: Uuid::from_slice(&id)
                .map_err(|_| StoreError::Inconsistent("an entry's id".into()))?,
            library: r.try_get(2)?,
            stored: crate::entries::StoredEntry {
                device: r.try_get(3)?,
                pc: r.try_get(4)?,
                revision: r.try_get(5)?,
                wall_ms: r.try_get(6)?,
                fields,
                texts,
                at_s: r.try_get(8)?,
            },
        });
    }
    Ok(out)
}
