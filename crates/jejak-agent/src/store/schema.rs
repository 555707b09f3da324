//! The local store's versioned migrations. Each entry is applied once, in order, in one
//! transaction, and never edited after release: a change to the schema is a new entry.

use rusqlite_migration::{M, Migrations};

pub(crate) fn migrations() -> Migrations<'static> {
    Migrations::new(vec![M::up(V1), M::up(V2), M::up(V3), M::up(V4), M::up(V5)])
}

const V1: &str = r#"
CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

-- One row per boot of the PC. Monotonic readings are only comparable within a run.
CREATE TABLE runs (
    run_id          TEXT PRIMARY KEY,
    boot_id         TEXT NOT NULL UNIQUE,
    started_wall_ms INTEGER NOT NULL,
    started_mono_ms INTEGER NOT NULL,
    -- The last (wall, monotonic) pair seen by any write: the next write expects the
    -- wall clock to have moved as far as the monotonic clock did.
    anchor_wall_ms  INTEGER NOT NULL,
    anchor_mono_ms  INTEGER NOT NULL,
    clock_suspect   INTEGER NOT NULL DEFAULT 0,
    last_heartbeat_wall_ms INTEGER,
    last_heartbeat_mono_ms INTEGER,
    heartbeats      INTEGER NOT NULL DEFAULT 0
) STRICT;

-- The append-only change log. `seq` is assigned as MAX(seq)+1 inside the transaction
-- that writes the change, with a plain INSERT: a clash is an error, never a skip.
CREATE TABLE changes (
    seq              INTEGER PRIMARY KEY,
    record_kind      TEXT NOT NULL,
    record_id        TEXT NOT NULL,
    revision         INTEGER NOT NULL,
    run_id           TEXT NOT NULL REFERENCES runs(run_id),
    recorded_wall_ms INTEGER NOT NULL,
    mono_ms          INTEGER NOT NULL,
    body             TEXT NOT NULL,
    UNIQUE (record_id, revision)
) STRICT;

CREATE TRIGGER changes_are_append_only BEFORE UPDATE ON changes
BEGIN
    SELECT RAISE(ABORT, 'the change log is append-only');
END;

-- What the server has acknowledged. Pruning may only ever remove acknowledged changes.
CREATE TABLE sync_state (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    acked_seq INTEGER NOT NULL DEFAULT 0,
    last_attempt_wall_ms INTEGER,
    last_success_wall_ms INTEGER,
    last_result TEXT
) STRICT;
INSERT INTO sync_state (id) VALUES (1);

CREATE TRIGGER unsynced_changes_are_kept BEFORE DELETE ON changes
WHEN OLD.seq > (SELECT acked_seq FROM sync_state WHERE id = 1)
BEGIN
    SELECT RAISE(ABORT, 'unsynced changes are never pruned');
END;

-- The current state of each session; every change to a row is also appended to
-- `changes` with the row's new revision.
CREATE TABLE sessions (
    id                TEXT PRIMARY KEY,
    revision          INTEGER NOT NULL CHECK (revision >= 1),
    run_id            TEXT NOT NULL REFERENCES runs(run_id),
    boot_id           TEXT NOT NULL,
    started_wall_ms   INTEGER NOT NULL,
    started_mono_ms   INTEGER NOT NULL,
    ended_wall_ms     INTEGER,
    end_reason        TEXT,
    duration_ms       INTEGER NOT NULL DEFAULT 0 CHECK (duration_ms >= 0),
    last_seen_wall_ms INTEGER NOT NULL,
    last_seen_mono_ms INTEGER NOT NULL,
    user_kind         TEXT NOT NULL,
    purposes          TEXT NOT NULL,
    gender            TEXT NOT NULL,
    age_group         TEXT NOT NULL,
    group_size        INTEGER NOT NULL,
    patron_key        TEXT,
    bytes_rx          INTEGER NOT NULL DEFAULT 0,
    bytes_tx          INTEGER NOT NULL DEFAULT 0,
    online_ms         INTEGER NOT NULL DEFAULT 0,
    -- The interface counters at the last reading, to add the difference next time.
    net_rx_seen       INTEGER,
    net_tx_seen       INTEGER,
    time_quality      TEXT NOT NULL,
    CHECK ((ended_wall_ms IS NULL) = (end_reason IS NULL))
) STRICT;

-- A PC has at most one open session.
CREATE UNIQUE INDEX sessions_one_open ON sessions ((ended_wall_ms IS NULL)) WHERE ended_wall_ms IS NULL;
CREATE INDEX sessions_by_start ON sessions (started_wall_ms);
CREATE INDEX changes_by_kind ON changes (record_kind, seq);
"#;

/// Sync bookkeeping: the clock anchors measured against the server, and the changes
/// the server refused (kept here, counted and shown, never resent as if new).
const V2: &str = r#"
CREATE TABLE clock_anchors (
    run_id           TEXT PRIMARY KEY REFERENCES runs(run_id),
    mono_ms          INTEGER NOT NULL,
    server_ms        INTEGER NOT NULL,
    uncertainty_ms   INTEGER NOT NULL,
    measured_wall_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE rejected_changes (
    seq            INTEGER PRIMARY KEY REFERENCES changes(seq),
    code           TEXT NOT NULL,
    detail         TEXT NOT NULL,
    rejected_at_ms INTEGER NOT NULL
) STRICT;
"#;

/// Retention: when each acknowledgement arrived, so that acknowledged changes are pruned
/// a number of days after the server acknowledged them (never before), and a guard that
/// keeps the newest change, whose seq the next write continues from.
const V3: &str = r#"
-- One row per acknowledgement that moved `acked_seq` forward, with the PC's wall clock
-- at that moment. A change with seq s was acknowledged at the first row whose
-- acked_seq >= s. A store acknowledged before this migration counts from the upgrade.
CREATE TABLE ack_history (
    acked_seq   INTEGER PRIMARY KEY,
    acked_at_ms INTEGER NOT NULL
) STRICT;
INSERT INTO ack_history (acked_seq, acked_at_ms)
    SELECT acked_seq, CAST(strftime('%s', 'now') AS INTEGER) * 1000
    FROM sync_state WHERE id = 1 AND acked_seq > 0;

-- Every path that records an acknowledgement (HTTP sync, USB bundle) updates
-- sync_state, so the time is recorded here rather than in each of them.
CREATE TRIGGER ack_time_is_recorded AFTER UPDATE OF acked_seq ON sync_state
WHEN NEW.acked_seq > OLD.acked_seq
BEGIN
    INSERT OR IGNORE INTO ack_history (acked_seq, acked_at_ms)
    VALUES (NEW.acked_seq, COALESCE(NEW.last_success_wall_ms, CAST(strftime('%s', 'now') AS INTEGER) * 1000));
END;

-- The next seq is MAX(seq)+1: deleting the newest change would hand out its seq again.
CREATE TRIGGER newest_change_is_kept BEFORE DELETE ON changes
WHEN OLD.seq >= (SELECT MAX(seq) FROM changes)
BEGIN
    SELECT RAISE(ABORT, 'the newest change is never pruned: the next seq follows it');
END;
"#;

/// Lower bounds on the server's clock learnt from USB acknowledgement files: at
/// `mono_ms` of the run the server's clock read at least `server_ms` (the time the server
/// wrote the file). One row per run, the tightest (the highest `server_ms - mono_ms`);
/// batches carry them to the server, which dates the run's records with them. `learnt`
/// orders them (1, 2, 3 …): the PC's wall clock cannot, since it is what is in doubt.
const V4: &str = r#"
CREATE TABLE clock_bounds (
    run_id    TEXT PRIMARY KEY REFERENCES runs(run_id),
    mono_ms   INTEGER NOT NULL,
    server_ms INTEGER NOT NULL,
    learnt    INTEGER NOT NULL
) STRICT;
"#;

/// The desk records (visits, member counts; `desk.rs`): the newest revision of each,
/// which pruning never touches. And the held-back list: changes of kinds the server did
/// not accept when their range was sent (an older server), kept, never pruned and
/// counted as waiting until a server that takes their kind has them (`sync_state.rs`).
const V5: &str = r#"
CREATE TABLE entries (
    record_id   TEXT PRIMARY KEY,
    record_kind TEXT NOT NULL,
    revision    INTEGER NOT NULL CHECK (revision >= 1),
    seq         INTEGER NOT NULL,
    body        TEXT NOT NULL
) STRICT;
CREATE INDEX entries_by_kind ON entries (record_kind, seq);

CREATE TABLE held_back (
    seq         INTEGER PRIMARY KEY,
    record_kind TEXT NOT NULL
) STRICT;

CREATE TRIGGER held_back_changes_are_kept BEFORE DELETE ON changes
WHEN OLD.seq IN (SELECT seq FROM held_back)
BEGIN
    SELECT RAISE(ABORT, 'changes held back for a server are never pruned');
END;
"#;

#[cfg(test)]
mod tests {
    #[test]
    fn migrations_are_valid() {
        assert!(super::migrations().validate().is_ok());
    }
}
