//! The PostgreSQL store's versioned migrations. Each is applied once, in order, inside
//! one transaction that holds an advisory lock, so two servers starting together on
//! the same database cannot apply one twice; `schema_migrations` records what was
//! applied. A change to the schema is a new entry, never an edit of a released one.
//!
//! The tables mean what the SQLite ones mean (see `sqlite/schema.rs`), with two changes
//! for a sharded PostgreSQL (Citus):
//!
//! - Every table that grows with use carries `library` (the library's number) and leads
//!   or includes it in its key, so that `library` can be the distribution column and a
//!   batch's whole transaction stays on one shard. `libraries`, `tokens`, `settings` and
//!   `schema_migrations` are small and would be reference tables.
//! - `sessions` is partitioned by month (declarative `PARTITION BY RANGE`). The month is
//!   the one in the session id's UUIDv7 timestamp (made on the PC when the session
//!   started): unlike the corrected start, it never changes between revisions, so a
//!   session's row never moves between partitions and the key (library, device,
//!   month, id) since V2 finds it again on every resend. Ids that are not UUIDv7, or whose month is outside
//!   2020–2099 (a PC clock reset to 2000), go to the default partition.

/// The migrations, in order: (version, SQL).
pub(crate) const MIGRATIONS: &[(i64, &str)] = &[
    (1, V1),
    (2, V2),
    (3, V3),
    (4, V4),
    (5, V5),
    (6, V6),
    (7, V7),
    (8, V8),
];

/// The version whose migration packs the entry counters of the older layout into
/// `entry_months` (in Rust, after its SQL: `PostgresStore::migrate`).
pub(crate) const PACK_ENTRY_COUNTS: i64 = 8;

/// The advisory lock key that serialises migrations (an arbitrary constant: "jejak" in
/// ASCII).
pub(crate) const MIGRATION_LOCK: i64 = 0x6a_656a_616b;

/// The first and last month (as `year * 12 + month - 1`) that get a partition of their
/// own; others go to `sessions_default`.
pub(crate) const FIRST_PARTITION_MONTH: i64 = 2020 * 12;
/// See [`FIRST_PARTITION_MONTH`].
pub(crate) const LAST_PARTITION_MONTH: i64 = 2099 * 12 + 11;

const V1: &str = r#"
CREATE TABLE libraries (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code       TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    timezone   TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);

CREATE TABLE devices (
    library       BIGINT NOT NULL REFERENCES libraries(id),
    id            BIGINT GENERATED ALWAYS AS IDENTITY,
    pc            TEXT NOT NULL,
    created_ms    BIGINT NOT NULL,
    last_batch_ms BIGINT,
    offset_ms             BIGINT,
    offset_uncertainty_ms BIGINT,
    offset_at_ms          BIGINT,
    sessions      BIGINT NOT NULL DEFAULT 0,
    events        BIGINT NOT NULL DEFAULT 0,
    rejected      BIGINT NOT NULL DEFAULT 0,
    event_at_s    BIGINT,
    event_id      BYTEA,
    event_kind    BIGINT,
    event_link_up BOOLEAN,
    PRIMARY KEY (library, id),
    UNIQUE (library, pc)
);
CREATE INDEX devices_id ON devices (id);

-- At most one active token per device and per staff name, enforced by the database so
-- that two enrollments racing cannot both win.
CREATE TABLE tokens (
    hash       BYTEA PRIMARY KEY,
    library    BIGINT,
    device     BIGINT,
    staff      TEXT,
    created_ms BIGINT NOT NULL,
    revoked_ms BIGINT,
    CHECK ((device IS NULL) <> (staff IS NULL))
);
CREATE UNIQUE INDEX tokens_active_device ON tokens (device) WHERE revoked_ms IS NULL AND device IS NOT NULL;
CREATE UNIQUE INDEX tokens_active_staff ON tokens (staff) WHERE revoked_ms IS NULL AND staff IS NOT NULL;
CREATE INDEX tokens_device ON tokens (device);

CREATE TABLE epochs (
    library       BIGINT NOT NULL,
    device        BIGINT NOT NULL,
    epoch         BYTEA NOT NULL,
    held_seq      BIGINT NOT NULL CHECK (held_seq >= 0),
    first_ms      BIGINT NOT NULL,
    last_batch_ms BIGINT NOT NULL,
    PRIMARY KEY (library, device, epoch)
);

CREATE TABLE runs (
    library        BIGINT NOT NULL,
    device         BIGINT NOT NULL,
    run            BYTEA NOT NULL,
    boot_ms        BIGINT NOT NULL,
    uncertainty_ms BIGINT NOT NULL,
    PRIMARY KEY (library, device, run)
);

-- Patron keys are HMACs with a per-library secret, so they are per library too.
CREATE TABLE patron_keys (
    library BIGINT NOT NULL,
    key     BYTEA NOT NULL,
    id      BIGINT GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (library, key)
);
CREATE INDEX patron_keys_id ON patron_keys (id);

CREATE TABLE sessions (
    library    BIGINT NOT NULL,
    month      BIGINT NOT NULL,
    id         BYTEA NOT NULL,
    device     BIGINT NOT NULL,
    attrs      BIGINT NOT NULL,
    start_s    BIGINT NOT NULL,
    skew_ms    BIGINT NOT NULL,
    duration_s BIGINT NOT NULL,
    offline_s  BIGINT NOT NULL,
    group_size BIGINT NOT NULL,
    patron     BIGINT,
    rx_kib     BIGINT NOT NULL,
    tx_kib     BIGINT NOT NULL,
    PRIMARY KEY (library, month, id)
) PARTITION BY RANGE (month);
CREATE TABLE sessions_default PARTITION OF sessions DEFAULT;
CREATE INDEX sessions_device ON sessions (library, device);

CREATE TABLE pc_events (
    library        BIGINT NOT NULL,
    id             BYTEA NOT NULL,
    device         BIGINT NOT NULL,
    attrs          BIGINT NOT NULL,
    at_s           BIGINT NOT NULL,
    skew_ms        BIGINT NOT NULL,
    clock_delta_ms BIGINT,
    PRIMARY KEY (library, id)
);
CREATE INDEX pc_events_device ON pc_events (library, device);

CREATE TABLE rejected (
    library    BIGINT NOT NULL,
    device     BIGINT NOT NULL,
    epoch      BYTEA NOT NULL,
    seq        BIGINT NOT NULL,
    record_id  BYTEA NOT NULL,
    code       TEXT NOT NULL,
    detail     TEXT NOT NULL,
    first_ms   BIGINT NOT NULL,
    last_ms    BIGINT NOT NULL,
    times      BIGINT NOT NULL,
    PRIMARY KEY (library, device, epoch, seq)
);

CREATE TABLE batches (
    library          BIGINT NOT NULL,
    device           BIGINT NOT NULL,
    batch_id         BYTEA NOT NULL,
    epoch            BYTEA NOT NULL,
    first_seq        BIGINT NOT NULL,
    last_seq         BIGINT NOT NULL,
    new              BIGINT NOT NULL,
    duplicates       BIGINT NOT NULL,
    rejected         BIGINT NOT NULL,
    received_ms      BIGINT NOT NULL,
    deliveries       BIGINT NOT NULL,
    last_received_ms BIGINT NOT NULL,
    PRIMARY KEY (library, device, batch_id)
);

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- The rollups, packed exactly as in SQLite (rollup.rs), month first: reports read one
-- month of every library.
CREATE TABLE day_rollups (
    month   BIGINT NOT NULL,
    library BIGINT NOT NULL,
    device  BIGINT NOT NULL,
    days    BYTEA NOT NULL,
    PRIMARY KEY (month, library, device)
);

CREATE TABLE breakdown_rollups (
    month   BIGINT NOT NULL,
    library BIGINT NOT NULL,
    cells   BYTEA NOT NULL,
    PRIMARY KEY (month, library)
);

CREATE TABLE patron_months (
    month   BIGINT NOT NULL,
    library BIGINT NOT NULL,
    patrons BYTEA NOT NULL,
    PRIMARY KEY (month, library)
);
"#;

/// Version 2: sessions and pc events keyed by their PC after the library, as in SQLite's
/// V3. A record's key is (PC, id); PostgreSQL needs the partition column in the key too,
/// so sessions are keyed (library, device, month, id). The key now serves the per-PC
/// reads (recount, pruning, the event fold), so the (library, device) indexes go, and a
/// batch's rows, one PC's ids in time order, land side by side in the key's index
/// instead of all over it: a COPY of a batch touches a few index pages.
const V2: &str = r#"
ALTER TABLE sessions DROP CONSTRAINT sessions_pkey;
ALTER TABLE sessions ADD PRIMARY KEY (library, device, month, id);
DROP INDEX sessions_device;
ALTER TABLE pc_events DROP CONSTRAINT pc_events_pkey;
ALTER TABLE pc_events ADD PRIMARY KEY (library, device, id);
DROP INDEX pc_events_device;
"#;

/// Version 3: the Ed25519 public key a PC registered under its token, and when (see the
/// SQLite store's V4, which adds the same).
const V3: &str = r#"
ALTER TABLE tokens ADD COLUMN public_key BYTEA CHECK (public_key IS NULL OR octet_length(public_key) = 32);
ALTER TABLE tokens ADD COLUMN key_registered_ms BIGINT;
"#;

/// Version 4: seq ranges a PC could not send again after the server was restored from an
/// older backup (it had pruned them), kept so that the operations view names them.
const V4: &str = r#"
CREATE TABLE lost_ranges (
    library     BIGINT NOT NULL,
    device      BIGINT NOT NULL,
    epoch       BYTEA NOT NULL,
    first_seq   BIGINT NOT NULL,
    last_seq    BIGINT NOT NULL,
    reported_ms BIGINT NOT NULL,
    PRIMARY KEY (library, device, epoch, first_seq)
);
"#;

/// Version 5: the runs whose dating can still move when later evidence arrives, and the
/// least end of each PC's latest run dated for certain (see the SQLite store's V6 and
/// `dating.rs`).
const V5: &str = r#"
CREATE TABLE kept_runs (
    library BIGINT NOT NULL,
    device  BIGINT NOT NULL,
    run     BYTEA NOT NULL,
    ordinal BIGINT NOT NULL,
    open    BOOLEAN NOT NULL,
    state   BYTEA NOT NULL,
    records BYTEA NOT NULL,
    PRIMARY KEY (library, device, run)
);
ALTER TABLE devices ADD COLUMN dated_until_ms BIGINT;
"#;

/// Version 6: a library's identity and signatories (see the SQLite store's V7).
const V6: &str = r#"
ALTER TABLE libraries
    ADD COLUMN npp TEXT,
    ADD COLUMN desa TEXT,
    ADD COLUMN kecamatan TEXT,
    ADD COLUMN address TEXT,
    ADD COLUMN kepala_desa TEXT,
    ADD COLUMN manager TEXT,
    ADD COLUMN manager_nip TEXT;
"#;

/// Version 7: the low-volume record kinds in one generic table and their counters per
/// library, local day and counter key (see the SQLite store's V8 and `entries.rs`).
/// Both lead with `library`, the distribution column.
const V7: &str = r#"
CREATE TABLE entries (
    library  BIGINT NOT NULL,
    kind     BIGINT NOT NULL,
    id       BYTEA NOT NULL,
    device   BIGINT NOT NULL,
    revision BIGINT NOT NULL,
    wall_ms  BIGINT NOT NULL,
    at_s     BIGINT NOT NULL,
    fields   BYTEA NOT NULL,
    PRIMARY KEY (library, kind, id)
);
CREATE TABLE entry_counts (
    library BIGINT NOT NULL,
    day     BIGINT NOT NULL,
    key     TEXT NOT NULL,
    value   BIGINT NOT NULL,
    PRIMARY KEY (library, day, key)
);
"#;

/// Version 8: the entry counters in one packed row per month and library
/// (`rollup::EntryMonth`), as the SQLite store's V9: a district's year of them was
/// 670,000 rows. The migration packs `entry_counts` into it and drops the old table.
/// Its rows are read back locked and written whole, as the breakdown rows are.
const V8: &str = r#"
CREATE TABLE entry_months (
    month    BIGINT NOT NULL,
    library  BIGINT NOT NULL,
    counters BYTEA NOT NULL,
    PRIMARY KEY (month, library)
);
"#;
