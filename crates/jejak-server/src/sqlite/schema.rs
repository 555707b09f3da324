//! The SQLite store's versioned migrations. Each entry is applied once, in order, in one
//! transaction, and never edited after release: a change to the schema is a new entry.
//! PostgreSQL gets its own migrations (its own types, partitions by month); only the
//! meaning of the tables is shared.
//!
//! Size matters: a district keeps millions of sessions for years and the brief budgets
//! 64 bytes of disk per session, everything included. Hence `sessions` is a
//! `WITHOUT ROWID` table keyed by its PC and the 16-byte id (no second copy of the key in
//! a rowid index; since V3 the PC leads, see below) with eleven integer columns: the
//! vocabularies and the revision packed into one (`attrs`, see `codes::SessionAttrs`),
//! the corrected start in whole seconds, the PC's raw wall start kept exactly as its
//! difference from it in ms (a few bytes for a sane clock), offline rather than online seconds (usually near zero), kibibytes, and patron
//! keys replaced by small numbers. The run and monotonic start of a session are not
//! kept (they would cost 7 bytes a row): clock anchors are kept per run instead, and a
//! session is dated when it arrives. Few tables and no index beyond the keys keep the
//! fixed cost of a small district's file low too. The views decode it all.
//!
//! Why the PC leads the key of `sessions` and `pc_events` (V3): a batch is one PC's
//! records in time order, so under (device, id) its rows land side by side at the end of
//! that PC's range, and a group commit writes a few pages per batch to the WAL. Keyed by
//! the id alone, fifty PCs' batches of the same weeks interleave all over the table, and
//! every commit rewrote most of its pages (ingest ran at about 0.55 of a bare insert;
//! with the PC leading, about 0.7). It costs no byte: the device column is stored anyway.
//! A record's key is therefore (PC, id): the same id sent by another PC is another
//! record, which only a bug could make (ids are UUIDv7 made on the PC, and `jejak init`
//! refuses to enroll a data folder that belongs to another PC).

use rusqlite_migration::{HookError, M, Migrations};

pub(crate) fn migrations() -> Migrations<'static> {
    Migrations::new(steps())
}

fn steps() -> Vec<M<'static>> {
    vec![
        M::up(V1),
        // The rollups of a store that already holds sessions are counted from them.
        M::up_with_hook(V2, |tx: &rusqlite::Transaction| {
            super::rollups::rebuild(tx).map_err(|e| HookError::Hook(e.to_string()))
        }),
        M::up(V3),
        M::up(V4),
        M::up(V5),
        M::up(V6),
        M::up(V7),
        M::up(V8),
        // The entry counters move into packed month rows: the rows a store holds are
        // packed as they are (a recount could not bring back pruned months).
        M::up_with_hook(V9, |tx: &rusqlite::Transaction| {
            super::rollups::pack_entry_counts(tx).map_err(|e| HookError::Hook(e.to_string()))
        }),
    ]
}

/// The schema version (SQLite's `user_version`) this build brings a store to.
pub(crate) fn latest_version() -> i64 {
    steps().len() as i64
}

/// V4. The Ed25519 public key a PC registered under its token (`PUT
/// /api/v1/devices/me/key`), and when. USB bundles are signed with the private half,
/// which never leaves the PC, so nothing in this file suffices to sign for a PC; a
/// token without a key (enrolled before V4, or not yet in touch) is checked by the
/// HMAC under its hash until the PC registers one.
const V4: &str = r#"
ALTER TABLE tokens ADD COLUMN public_key BLOB CHECK (public_key IS NULL OR length(public_key) = 32);
ALTER TABLE tokens ADD COLUMN key_registered_ms INTEGER;
"#;

const V1: &str = r#"
CREATE TABLE libraries (
    id         INTEGER PRIMARY KEY,
    code       TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    -- The IANA name of one of Indonesia's three zones: reports are written in it.
    timezone   TEXT NOT NULL,
    created_ms INTEGER NOT NULL
) STRICT;

-- One row per PC (library + code). Records carry this small number. It outlives tokens:
-- a PC whose token was revoked and re-issued keeps its history and its held seqs.
CREATE TABLE devices (
    id            INTEGER PRIMARY KEY,
    library       INTEGER NOT NULL REFERENCES libraries(id),
    pc            TEXT NOT NULL,
    created_ms    INTEGER NOT NULL,
    last_batch_ms INTEGER,
    -- The PC wall clock's latest known offset (server minus PC), its uncertainty (NULL
    -- when estimated from a send time alone) and when it was established.
    offset_ms             INTEGER,
    offset_uncertainty_ms INTEGER,
    offset_at_ms          INTEGER,
    -- Counters kept by ingest so that status pages need no scan of the big tables.
    sessions      INTEGER NOT NULL DEFAULT 0,
    events        INTEGER NOT NULL DEFAULT 0,
    rejected      INTEGER NOT NULL DEFAULT 0,
    UNIQUE (library, pc)
) STRICT;

-- Bearer tokens, of which only the SHA-256 is kept: a device's (it writes its batches)
-- or a staff member's (read-only). The single writer keeps at most one active token
-- per device and per staff name.
CREATE TABLE tokens (
    hash       BLOB PRIMARY KEY,
    device     INTEGER REFERENCES devices(id),
    staff      TEXT,
    created_ms INTEGER NOT NULL,
    revoked_ms INTEGER,
    CHECK ((device IS NULL) <> (staff IS NULL))
) STRICT, WITHOUT ROWID;

-- The held seq of each epoch of each device: every change up to it is stored (or was
-- rejected and recorded). Seqs are contiguous within an epoch only.
CREATE TABLE epochs (
    device        INTEGER NOT NULL REFERENCES devices(id),
    epoch         BLOB NOT NULL,
    held_seq      INTEGER NOT NULL CHECK (held_seq >= 0),
    first_ms      INTEGER NOT NULL,
    last_batch_ms INTEGER NOT NULL,
    PRIMARY KEY (device, epoch)
) STRICT, WITHOUT ROWID;

-- The best clock anchor known for each run (boot) of each device: the server time at
-- which the run's monotonic clock read zero, and the uncertainty of that (half the
-- round trip of the measurement). A record of the run at monotonic time m happened at
-- boot_ms + m.
CREATE TABLE runs (
    device         INTEGER NOT NULL,
    run            BLOB NOT NULL,
    boot_ms        INTEGER NOT NULL,
    uncertainty_ms INTEGER NOT NULL,
    PRIMARY KEY (device, run)
) STRICT, WITHOUT ROWID;

-- Pseudonymous patron keys (HMAC-SHA256, 32 bytes), stored once and referenced by a
-- small number from sessions. Numbers come from `counters`.
CREATE TABLE patron_keys (
    key BLOB PRIMARY KEY,
    id  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
INSERT INTO counters (name, value) VALUES ('patron_key', 0);

-- Sessions at their highest revision. start_s: corrected start, Unix seconds by the
-- server's clock; the PC's raw wall start is start_s * 1000 + skew_ms (Unix ms); the end
-- is start_s + duration_s (durations come from the monotonic clock). attrs packs the
-- vocabularies and the revision (codes.rs). offline_s = duration_s - online seconds.
CREATE TABLE sessions (
    id         BLOB PRIMARY KEY,
    device     INTEGER NOT NULL,
    attrs      INTEGER NOT NULL,
    start_s    INTEGER NOT NULL,
    skew_ms    INTEGER NOT NULL,
    duration_s INTEGER NOT NULL,
    offline_s  INTEGER NOT NULL,
    group_size INTEGER NOT NULL,
    patron     INTEGER,
    rx_kib     INTEGER NOT NULL,
    tx_kib     INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- pc events (boot, heartbeat, internet up/down, clock jumps), dated like sessions.
-- attrs: bits 0-3 the kind, 4-5 the time quality.
CREATE TABLE pc_events (
    id             BLOB PRIMARY KEY,
    device         INTEGER NOT NULL,
    attrs          INTEGER NOT NULL,
    at_s           INTEGER NOT NULL,
    skew_ms        INTEGER NOT NULL,
    clock_delta_ms INTEGER
) STRICT, WITHOUT ROWID;

-- Records the server refused, kept for review (the operations view) and never lost:
-- one row per change of a device's log, however often it was sent.
CREATE TABLE rejected (
    device     INTEGER NOT NULL,
    epoch      BLOB NOT NULL,
    seq        INTEGER NOT NULL,
    record_id  BLOB NOT NULL,
    code       TEXT NOT NULL,
    detail     TEXT NOT NULL,
    first_ms   INTEGER NOT NULL,
    last_ms    INTEGER NOT NULL,
    times      INTEGER NOT NULL,
    PRIMARY KEY (device, epoch, seq)
) STRICT, WITHOUT ROWID;

-- Every batch received, keyed per device (a batch id is the client's choice).
CREATE TABLE batches (
    device           INTEGER NOT NULL,
    batch_id         BLOB NOT NULL,
    epoch            BLOB NOT NULL,
    first_seq        INTEGER NOT NULL,
    last_seq         INTEGER NOT NULL,
    new              INTEGER NOT NULL,
    duplicates       INTEGER NOT NULL,
    rejected         INTEGER NOT NULL,
    received_ms      INTEGER NOT NULL,
    deliveries       INTEGER NOT NULL,
    last_received_ms INTEGER NOT NULL,
    PRIMARY KEY (device, batch_id)
) STRICT, WITHOUT ROWID;

-- Sessions as people read them: attrs decoded into the codes of codes.rs, library and
-- PC named, both times shown in Unix ms.
CREATE VIEW sessions_v AS
SELECT lower(hex(s.id)) AS id, l.code AS library, d.pc AS pc, s.attrs / 2032128 AS revision,
    s.start_s * 1000 AS start_ms, (s.start_s + s.duration_s) * 1000 AS end_ms,
    s.start_s * 1000 + s.skew_ms AS raw_start_ms, s.duration_s,
    nullif((s.attrs / 126) % 63 / 9, 6) AS end_reason, (s.attrs % 126) / 21 AS user_kind,
    (s.attrs % 126) / 7 % 3 AS gender, s.attrs % 126 % 7 AS age_group,
    (s.attrs / 126) % 63 / 3 % 3 AS time_quality, (s.attrs / 126) % 63 % 3 AS client_time_quality,
    (s.attrs / 7938) % 256 AS purposes, s.group_size, s.patron, s.rx_kib, s.tx_kib,
    s.duration_s - s.offline_s AS online_s
FROM sessions s JOIN devices d ON d.id = s.device JOIN libraries l ON l.id = d.library;

CREATE VIEW pc_events_v AS
SELECT lower(hex(e.id)) AS id, l.code AS library, d.pc AS pc, e.attrs & 15 AS kind,
    e.at_s * 1000 AS at_ms, e.at_s * 1000 + e.skew_ms AS raw_at_ms, e.clock_delta_ms,
    (e.attrs >> 4) & 3 AS time_quality
FROM pc_events e JOIN devices d ON d.id = e.device JOIN libraries l ON l.id = d.library;
"#;

/// Version 2: the district's settings (the letterhead) and the rollups.
const V2: &str = r#"
-- The district's settings, by name: `letterhead` holds the kop as JSON.
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT, WITHOUT ROWID;

-- The rollups the reports read, kept by ingest in the batch's own transaction (the
-- rules and the packed layouts are in rollup.rs). Days and months are the library's
-- local ones; month = year * 12 + month - 1. Each row's counters are packed varints:
-- days: 31 day slots of 12 counters (sessions, persons, seconds, online seconds, KiB,
-- complete, men, women, sessions of anyone, boots, powered and internet seconds);
-- cells: the age × gender and purpose × gender cells by user kind (sessions, persons);
-- patrons: (patron number difference, sessions) pairs. Keys lead with the month:
-- reports read one month of every library.
CREATE TABLE day_rollups (
    month  INTEGER NOT NULL,
    device INTEGER NOT NULL,
    days   BLOB NOT NULL,
    PRIMARY KEY (month, device)
) STRICT, WITHOUT ROWID;

CREATE TABLE breakdown_rollups (
    month   INTEGER NOT NULL,
    library INTEGER NOT NULL,
    cells   BLOB NOT NULL,
    PRIMARY KEY (month, library)
) STRICT, WITHOUT ROWID;

CREATE TABLE patron_months (
    month   INTEGER NOT NULL,
    library INTEGER NOT NULL,
    patrons BLOB NOT NULL,
    PRIMARY KEY (month, library)
) STRICT, WITHOUT ROWID;

-- Where each PC's event fold stands (its latest event and the link after it), so
-- that the next batch's events continue it.
ALTER TABLE devices ADD COLUMN event_at_s INTEGER;
ALTER TABLE devices ADD COLUMN event_id BLOB;
ALTER TABLE devices ADD COLUMN event_kind INTEGER;
ALTER TABLE devices ADD COLUMN event_link_up INTEGER;
"#;

/// Version 3: sessions and pc events keyed by their PC first (see the module's notes).
/// The tables are rebuilt in key order; the views are dropped first, since SQLite will not
/// rename a table under a view that names a missing one, and made again unchanged.
const V3: &str = r#"
DROP VIEW sessions_v;
DROP VIEW pc_events_v;

CREATE TABLE sessions_by_pc (
    device     INTEGER NOT NULL,
    id         BLOB NOT NULL,
    attrs      INTEGER NOT NULL,
    start_s    INTEGER NOT NULL,
    skew_ms    INTEGER NOT NULL,
    duration_s INTEGER NOT NULL,
    offline_s  INTEGER NOT NULL,
    group_size INTEGER NOT NULL,
    patron     INTEGER,
    rx_kib     INTEGER NOT NULL,
    tx_kib     INTEGER NOT NULL,
    PRIMARY KEY (device, id)
) STRICT, WITHOUT ROWID;
INSERT INTO sessions_by_pc
SELECT device, id, attrs, start_s, skew_ms, duration_s, offline_s, group_size, patron,
    rx_kib, tx_kib
FROM sessions ORDER BY device, id;
DROP TABLE sessions;
ALTER TABLE sessions_by_pc RENAME TO sessions;

CREATE TABLE pc_events_by_pc (
    device         INTEGER NOT NULL,
    id             BLOB NOT NULL,
    attrs          INTEGER NOT NULL,
    at_s           INTEGER NOT NULL,
    skew_ms        INTEGER NOT NULL,
    clock_delta_ms INTEGER,
    PRIMARY KEY (device, id)
) STRICT, WITHOUT ROWID;
INSERT INTO pc_events_by_pc
SELECT device, id, attrs, at_s, skew_ms, clock_delta_ms FROM pc_events ORDER BY device, id;
DROP TABLE pc_events;
ALTER TABLE pc_events_by_pc RENAME TO pc_events;

CREATE VIEW sessions_v AS
SELECT lower(hex(s.id)) AS id, l.code AS library, d.pc AS pc, s.attrs / 2032128 AS revision,
    s.start_s * 1000 AS start_ms, (s.start_s + s.duration_s) * 1000 AS end_ms,
    s.start_s * 1000 + s.skew_ms AS raw_start_ms, s.duration_s,
    nullif((s.attrs / 126) % 63 / 9, 6) AS end_reason, (s.attrs % 126) / 21 AS user_kind,
    (s.attrs % 126) / 7 % 3 AS gender, s.attrs % 126 % 7 AS age_group,
    (s.attrs / 126) % 63 / 3 % 3 AS time_quality, (s.attrs / 126) % 63 % 3 AS client_time_quality,
    (s.attrs / 7938) % 256 AS purposes, s.group_size, s.patron, s.rx_kib, s.tx_kib,
    s.duration_s - s.offline_s AS online_s
FROM sessions s JOIN devices d ON d.id = s.device JOIN libraries l ON l.id = d.library;

CREATE VIEW pc_events_v AS
SELECT lower(hex(e.id)) AS id, l.code AS library, d.pc AS pc, e.attrs & 15 AS kind,
    e.at_s * 1000 AS at_ms, e.at_s * 1000 + e.skew_ms AS raw_at_ms, e.clock_delta_ms,
    (e.attrs >> 4) & 3 AS time_quality
FROM pc_events e JOIN devices d ON d.id = e.device JOIN libraries l ON l.id = d.library;
"#;

/// Version 5: seq ranges a PC could not send again after the server was restored from
/// an older backup (it had pruned them), kept so that the operations view names them.
const V5: &str = r#"
CREATE TABLE lost_ranges (
    device      INTEGER NOT NULL,
    epoch       BLOB NOT NULL,
    first_seq   INTEGER NOT NULL,
    last_seq    INTEGER NOT NULL,
    reported_ms INTEGER NOT NULL,
    PRIMARY KEY (device, epoch, first_seq)
) STRICT, WITHOUT ROWID;
"#;

/// Version 6: the runs whose dating can still move when later evidence arrives, and
/// the least end of each PC's latest run dated for certain (see `dating.rs`). A kept
/// run's `state` packs its monotonic span, its bounds and how its records are dated;
/// `records` holds their ids (16 bytes each) while the run is `open`. Day rollups gain
/// a counter (sessions dated by estimate); rows written before it are read as if it
/// were zero and rewritten in the new layout when a batch next touches them.
const V6: &str = r#"
CREATE TABLE kept_runs (
    device  INTEGER NOT NULL,
    run     BLOB NOT NULL,
    ordinal INTEGER NOT NULL,
    open    INTEGER NOT NULL,
    state   BLOB NOT NULL,
    records BLOB NOT NULL,
    PRIMARY KEY (device, run)
) STRICT, WITHOUT ROWID;
ALTER TABLE devices ADD COLUMN dated_until_ms INTEGER;
"#;

/// Version 7: a library's identity and signatories as its reports print them (see
/// `jejak_domain::LibraryDetails`), all optional: libraries added before it keep their
/// rows and have none until `jejak server edit-library` sets them.
const V7: &str = r#"
ALTER TABLE libraries ADD COLUMN npp TEXT;
ALTER TABLE libraries ADD COLUMN desa TEXT;
ALTER TABLE libraries ADD COLUMN kecamatan TEXT;
ALTER TABLE libraries ADD COLUMN address TEXT;
ALTER TABLE libraries ADD COLUMN kepala_desa TEXT;
ALTER TABLE libraries ADD COLUMN manager TEXT;
ALTER TABLE libraries ADD COLUMN manager_nip TEXT;
"#;

/// Version 8: the low-volume record kinds (visits, member counts) in one generic table,
/// keyed by library, kind (its place in `RecordKind::ALL`) and id, their fields packed
/// as varints (`entries.rs`); and their counters per library, local day and counter key
/// (`rollup::entry_counters`). No kind has a table or SQL of its own.
const V8: &str = r#"
CREATE TABLE entries (
    library  INTEGER NOT NULL,
    kind     INTEGER NOT NULL,
    id       BLOB NOT NULL,
    device   INTEGER NOT NULL,
    revision INTEGER NOT NULL,
    wall_ms  INTEGER NOT NULL,
    at_s     INTEGER NOT NULL,
    fields   BLOB NOT NULL,
    PRIMARY KEY (library, kind, id)
) STRICT, WITHOUT ROWID;
CREATE TABLE entry_counts (
    library INTEGER NOT NULL,
    day     INTEGER NOT NULL,
    key     TEXT NOT NULL,
    value   INTEGER NOT NULL,
    PRIMARY KEY (library, day, key)
) STRICT, WITHOUT ROWID;
"#;

/// Version 9: the low-volume kinds' counters in one packed row per month and library
/// (`rollup::EntryMonth`), as the sessions' rollups are, instead of a row per library,
/// day and key: a district's year of them was 670,000 rows, and stepping through them
/// was most of the IPLM sheet's time. The hook packs `entry_counts` into the new table,
/// then drops it. Unlike the other rollups it has a rowid: its rows (about a kilobyte)
/// are longer than a key-ordered table keeps in its page, and each would take a page of
/// its own besides.
const V9: &str = r#"
CREATE TABLE entry_months (
    month    INTEGER NOT NULL,
    library  INTEGER NOT NULL,
    counters BLOB NOT NULL,
    PRIMARY KEY (month, library)
) STRICT;
"#;

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    #[test]
    fn migrations_are_valid() {
        assert!(super::migrations().validate().is_ok());
    }

    fn rows(conn: &Connection, sql: &str) -> Vec<Vec<rusqlite::types::Value>> {
        let mut stmt = conn.prepare(sql).unwrap();
        let width = stmt.column_count();
        stmt.query_map([], |r| (0..width).map(|i| r.get(i)).collect())
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn key_columns(conn: &Connection, table: &str) -> Vec<String> {
        let sql = format!("SELECT name FROM pragma_table_info('{table}') WHERE pk > 0 ORDER BY pk");
        rows(conn, &sql)
            .into_iter()
            .map(|r| match &r[0] {
                rusqlite::types::Value::Text(name) => name.clone(),
                other => panic!("a column name, not {other:?}"),
            })
            .collect()
    }

    /// V7 adds the library details: a store of the version before keeps its libraries,
    /// with no details set.
    #[test]
    fn v7_keeps_existing_libraries_without_details() {
        let mut conn = Connection::open_in_memory().unwrap();
        let migrations = super::migrations();
        migrations.to_version(&mut conn, 6).unwrap();
        conn.execute_batch(
            "INSERT INTO libraries VALUES (1, 'kemuning', 'Perpustakaan Desa', 'Asia/Jakarta', 5);",
        )
        .unwrap();
        migrations.to_latest(&mut conn).unwrap();
        let libraries = crate::sqlite::read::libraries(&conn).unwrap();
        assert_eq!(libraries.len(), 1);
        assert_eq!(libraries[0].name, "Perpustakaan Desa");
        assert_eq!(libraries[0].created_at_ms, 5);
        assert_eq!(
            libraries[0].details,
            jejak_domain::LibraryDetails::default()
        );
    }

    /// V9 packs the entry counters into month rows: every counter of a V8 store comes
    /// through with its library, day and value (pruned months included: they are packed,
    /// not recounted), and the old table is gone.
    #[test]
    fn v9_packs_every_entry_counter_into_its_month() {
        let mut conn = Connection::open_in_memory().unwrap();
        let migrations = super::migrations();
        migrations.to_version(&mut conn, 8).unwrap();
        let day =
            |y, m, d| crate::rollup::date_day(chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap());
        let counters = [
            (1, day(2026, 10, 1), "visit.people", 14),
            (1, day(2026, 10, 31), "visit.people", 2),
            (1, day(2026, 10, 1), "visit.people.ga.P.remaja", 5),
            (1, day(2026, 11, 1), "member_count.members", 310),
            (2, day(2026, 10, 7), "activity.participants", 25),
            (2, day(2019, 2, 28), "visit.people", 1),
        ];
        for (library, day, key, value) in counters {
            conn.execute(
                "INSERT INTO entry_counts VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![library, day, key, value],
            )
            .unwrap();
        }
        migrations.to_latest(&mut conn).unwrap();
        assert_eq!(
            rows(
                &conn,
                "SELECT month, library FROM entry_months ORDER BY month, library"
            ),
            [(24229, 2), (24321, 1), (24321, 2), (24322, 1)]
                .map(|(m, l)| vec![m.into(), rusqlite::types::Value::Integer(l)])
        );
        let mut stored = crate::rollup::RollupDelta::default();
        let mut stmt = conn
            .prepare("SELECT month, library, counters FROM entry_months")
            .unwrap();
        let mut found = stmt.query([]).unwrap();
        while let Some(r) = found.next().unwrap() {
            let bytes: Vec<u8> = r.get(2).unwrap();
            crate::recount::stored_entry_month(
                &mut stored,
                r.get(0).unwrap(),
                r.get(1).unwrap(),
                &bytes,
            )
            .unwrap();
        }
        let expected: rustc_hash::FxHashMap<(i64, i64, String), i64> = counters
            .iter()
            .map(|(l, d, k, v)| ((*l, *d, k.to_string()), *v))
            .collect();
        assert_eq!(stored.entries, expected);
        let old: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'entry_counts'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(old, 0);
    }

    /// V3 rebuilds sessions and pc events under (device, id): every row, as the views
    /// show it, must come through unchanged, and the views must work again.
    #[test]
    fn v3_keys_records_by_pc_and_keeps_every_row() {
        let mut conn = Connection::open_in_memory().unwrap();
        let migrations = super::migrations();
        migrations.to_version(&mut conn, 2).unwrap();
        assert_eq!(key_columns(&conn, "sessions"), ["id"]);
        conn.execute_batch(
            "INSERT INTO libraries VALUES (1, 'kemuning', 'Perpustakaan Desa', 'Asia/Jakarta', 0);
             INSERT INTO devices (id, library, pc, created_ms) VALUES (1, 1, 'pc-01', 0), (2, 1, 'pc-02', 0);
             INSERT INTO sessions VALUES
                 (x'0190000000007000800000000000000b', 2, 2032128 + 130, 1767225600, 250, 3600, 60, 1, NULL, 900, 100),
                 (x'0190000000007000800000000000000a', 1, 130, 1767229200, -40, 1800, 0, 2, 7, 10, 1),
                 (x'0190000000007000800000000000000c', 1, 4, 1767232800, 0, 0, 0, 1, NULL, 0, 0);
             INSERT INTO pc_events VALUES
                 (x'0190000000007000800000000000001b', 2, 0, 1767225000, 12, NULL),
                 (x'0190000000007000800000000000001a', 1, 17, 1767225100, -3, 5000);",
        )
        .unwrap();
        let sessions = rows(&conn, "SELECT * FROM sessions_v ORDER BY id");
        let events = rows(&conn, "SELECT * FROM pc_events_v ORDER BY id");
        assert_eq!((sessions.len(), events.len()), (3, 2));

        migrations.to_latest(&mut conn).unwrap();
        assert_eq!(key_columns(&conn, "sessions"), ["device", "id"]);
        assert_eq!(key_columns(&conn, "pc_events"), ["device", "id"]);
        assert_eq!(
            rows(&conn, "SELECT * FROM sessions_v ORDER BY id"),
            sessions
        );
        assert_eq!(rows(&conn, "SELECT * FROM pc_events_v ORDER BY id"), events);
        // The key is per PC now: another PC may hold the same id, the same PC may not.
        let id = "x'0190000000007000800000000000000a'";
        let insert = |device: i64| {
            conn.execute(
                &format!(
                    "INSERT INTO sessions VALUES ({device}, {id}, 0, 0, 0, 0, 0, 1, NULL, 0, 0)"
                ),
                [],
            )
        };
        assert!(insert(1).is_err());
        assert!(insert(2).is_ok());
    }
}
