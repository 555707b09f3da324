//! Retention on the PC: acknowledged changes are pruned a number of days after the
//! server acknowledged them, and the store is kept under a size budget by pruning
//! acknowledged changes oldest first. An unacknowledged change is never pruned: the
//! queries below only ever select seqs at or under the acknowledged seq, and the
//! schema's triggers refuse the delete anyway if a query were ever wrong. Changes the
//! server rejected stay too (the operator must see them), and so does the newest change,
//! whose seq the next write continues from.

use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior, params};

use super::{Store, StoreError};

/// Changes deleted per statement while getting under the budget: small enough that the
/// size can be re-measured often, large enough that a big store is pruned in few rounds.
const MAX_BUDGET_CHUNK: i64 = 5_000;
const MIN_BUDGET_CHUNK: i64 = 16;
/// A safety stop for the budget loop; each round deletes at least one change or stops.
const MAX_BUDGET_ROUNDS: u32 = 10_000;

/// How long acknowledged data stays on the PC and how large the store may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrunePolicy {
    /// Acknowledged changes are pruned this long after the server acknowledged them.
    pub retention: Duration,
    /// The store's size budget in bytes (pages in use). Over it, acknowledged changes
    /// are pruned oldest first whatever their age.
    pub budget_bytes: u64,
}

/// What one prune pass did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    pub dry_run: bool,
    /// Acknowledged changes older than the retention period.
    pub changes_past_retention: u64,
    /// Acknowledged changes pruned early to get under the size budget.
    pub changes_over_budget: u64,
    /// Closed sessions whose every change was pruned.
    pub sessions_removed: u64,
    /// Bytes in use before and after (pages in use × page size).
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub budget_bytes: u64,
    /// Changes the server has not acknowledged yet (all kept).
    pub unsynced_changes: u64,
    /// The store is still over its budget with nothing left that may be pruned: the
    /// unsynced data (and records that must stay) alone exceed it.
    pub unsynced_over_budget: bool,
    /// The file was compacted after pruning.
    pub vacuumed: bool,
}

impl PruneReport {
    pub fn changes_pruned(&self) -> u64 {
        self.changes_past_retention + self.changes_over_budget
    }
}

/// The store's size against its budget, for `jejak status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreUsage {
    /// Bytes in use (pages in use × page size).
    pub used_bytes: u64,
    pub budget_bytes: u64,
    pub unsynced_changes: u64,
    /// The unsynced changes' record bodies, a lower bound of the space they take.
    pub unsynced_bytes: u64,
    /// Acknowledged changes a prune pass may remove if the budget needs it.
    pub prunable_changes: u64,
}

impl StoreUsage {
    pub fn over_budget(&self) -> bool {
        self.used_bytes > self.budget_bytes
    }

    /// The store cannot get under its budget without pruning unsynced data, which it
    /// never does: the operator must sync (or raise the budget).
    pub fn unsynced_over_budget(&self) -> bool {
        self.unsynced_bytes >= self.budget_bytes
            || (self.over_budget() && self.prunable_changes == 0)
    }
}

/// Bytes in the pages that hold data (free pages are reused before the file grows, and
/// a vacuum returns them to the file system).
fn used_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok(((pages - free).max(0) * size) as u64)
}

/// The highest seq a prune may reach: acknowledged, and below the newest change.
fn prunable_limit(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row(
        "SELECT (SELECT acked_seq FROM sync_state WHERE id = 1),
                (SELECT COALESCE(MAX(seq), 0) FROM changes)",
        [],
        |r| {
            let acked: i64 = r.get(0)?;
            let max: i64 = r.get(1)?;
            Ok((acked.min(max - 1).max(0), max - acked))
        },
    )
}

/// Deletes acknowledged, not rejected changes with seq at most `limit`, oldest first, at
/// most `count` of them.
fn delete_changes(conn: &Connection, limit: i64, count: i64) -> rusqlite::Result<u64> {
    conn.execute(
        "DELETE FROM changes WHERE seq IN (
             SELECT seq FROM changes
             WHERE seq <= ?1 AND seq <= (SELECT acked_seq FROM sync_state WHERE id = 1)
               AND seq NOT IN (SELECT seq FROM rejected_changes)
               AND seq NOT IN (SELECT seq FROM held_back)
             ORDER BY seq LIMIT ?2)",
        params![limit, count],
    )
    .map(|n| n as u64)
}

/// Closed sessions with no change left in the log: the server holds them, and nothing
/// on the PC will revise a closed session again.
fn delete_pruned_sessions(conn: &Connection) -> rusqlite::Result<u64> {
    conn.execute(
        "DELETE FROM sessions WHERE ended_wall_ms IS NOT NULL AND NOT EXISTS (
             SELECT 1 FROM changes c WHERE c.record_id = sessions.id)",
        [],
    )
    .map(|n| n as u64)
}

impl Store {
    /// The store's size against `budget_bytes`.
    pub fn usage(&self, budget_bytes: u64) -> Result<StoreUsage, StoreError> {
        let sqlite = |e| StoreError::from_sqlite(&self.path, e);
        let used = used_bytes(&self.conn).map_err(sqlite)?;
        let (limit, _) = prunable_limit(&self.conn).map_err(sqlite)?;
        let (unsynced_changes, unsynced_bytes, prunable): (i64, i64, i64) = self
            .conn
            .query_row(
                "SELECT
                   (SELECT COUNT(*) FROM changes WHERE seq > s.acked_seq),
                   (SELECT COALESCE(SUM(length(body)), 0) FROM changes WHERE seq > s.acked_seq),
                   (SELECT COUNT(*) FROM changes WHERE seq <= ?1
                      AND seq NOT IN (SELECT seq FROM rejected_changes))
                 FROM sync_state s WHERE s.id = 1",
                [limit],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(sqlite)?;
        Ok(StoreUsage {
            used_bytes: used,
            budget_bytes,
            unsynced_changes: unsynced_changes.max(0) as u64,
            unsynced_bytes: unsynced_bytes.max(0) as u64,
            prunable_changes: prunable.max(0) as u64,
        })
    }

    /// One prune pass: first the acknowledged changes whose acknowledgement is older than
    /// the retention period, then, while the store is over its budget, acknowledged
    /// changes oldest first whatever their age; closed sessions left without changes go
    /// with them. Unacknowledged and rejected changes are always kept; when they alone
    /// keep the store over budget, this says so loudly (and `jejak status` shows it).
    /// A dry run does the same work in a transaction it rolls back.
    pub fn prune(
        &mut self,
        policy: &PrunePolicy,
        dry_run: bool,
    ) -> Result<PruneReport, StoreError> {
        let now_ms = self.clock.wall().timestamp_millis();
        let retention_ms = i64::try_from(policy.retention.as_millis()).unwrap_or(i64::MAX);
        let cutoff_ms = now_ms.saturating_sub(retention_ms);
        let budget = policy.budget_bytes;
        let path = self.path.clone();
        let sqlite = |e| StoreError::from_sqlite(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite)?;
        let mut report = PruneReport {
            dry_run,
            budget_bytes: policy.budget_bytes,
            bytes_before: used_bytes(&tx).map_err(sqlite)?,
            ..PruneReport::default()
        };

        // Retention: everything up to the highest seq acknowledged before the cutoff. A
        // wall clock set back (a dead CMOS battery) only delays pruning; it can never
        // reach past what the server acknowledged.
        let (limit, unsynced) = prunable_limit(&tx).map_err(sqlite)?;
        report.unsynced_changes = unsynced.max(0) as u64;
        let acked_before_cutoff: i64 = tx
            .query_row(
                "SELECT COALESCE(MAX(acked_seq), 0) FROM ack_history WHERE acked_at_ms <= ?1",
                [cutoff_ms],
                |r| r.get(0),
            )
            .map_err(sqlite)?;
        let retention_limit = acked_before_cutoff.min(limit);
        if retention_limit > 0 {
            report.changes_past_retention =
                delete_changes(&tx, retention_limit, i64::MAX).map_err(sqlite)?;
            // The history only needs its newest row at or under what was pruned.
            tx.execute(
                "DELETE FROM ack_history WHERE acked_seq < ?1",
                [acked_before_cutoff],
            )
            .map_err(sqlite)?;
        }
        report.sessions_removed += delete_pruned_sessions(&tx).map_err(sqlite)?;

        // The budget: acknowledged changes oldest first, in chunks sized from the
        // average change, until the pages in use fit.
        let mut used = used_bytes(&tx).map_err(sqlite)?;
        let mut rounds = 0;
        while used > budget && rounds < MAX_BUDGET_ROUNDS {
            rounds += 1;
            let rows: i64 = tx
                .query_row("SELECT COUNT(*) FROM changes", [], |r| r.get(0))
                .map_err(sqlite)?;
            let per_row = (used / rows.max(1) as u64).max(1);
            let chunk =
                (((used - budget) / per_row) as i64 + 1).clamp(MIN_BUDGET_CHUNK, MAX_BUDGET_CHUNK);
            let deleted = delete_changes(&tx, limit, chunk).map_err(sqlite)?;
            report.sessions_removed += delete_pruned_sessions(&tx).map_err(sqlite)?;
            report.changes_over_budget += deleted;
            used = used_bytes(&tx).map_err(sqlite)?;
            if deleted == 0 {
                break;
            }
        }
        report.bytes_after = used;
        report.unsynced_over_budget = used > budget;

        if dry_run {
            tx.rollback().map_err(sqlite)?;
        } else {
            tx.commit().map_err(sqlite)?;
            if report.changes_pruned() > 0 {
                report.vacuumed = self.compact(report.changes_over_budget > 0);
            }
        }
        if report.unsynced_over_budget {
            tracing::error!(
                used_bytes = report.bytes_after,
                budget_bytes = report.budget_bytes,
                unsynced_changes = report.unsynced_changes,
                "THE STORE IS OVER ITS SIZE BUDGET WITH ONLY UNSYNCED DATA LEFT: nothing unsynced is ever pruned; sync this PC (or carry a USB bundle) soon, or raise store_budget_mb"
            );
        }
        if report.changes_pruned() > 0 || report.sessions_removed > 0 {
            tracing::info!(
                dry_run,
                past_retention = report.changes_past_retention,
                over_budget = report.changes_over_budget,
                sessions = report.sessions_removed,
                bytes_before = report.bytes_before,
                bytes_after = report.bytes_after,
                "pruned acknowledged data"
            );
        }
        Ok(report)
    }

    /// Gives freed pages back to the file system: a full `VACUUM` when pruning was for
    /// the budget or a quarter of the file is free, then a WAL checkpoint that truncates
    /// the log. A busy or full disk only postpones it (the pages are reused meanwhile).
    fn compact(&self, force: bool) -> bool {
        let free_fraction = || -> rusqlite::Result<f64> {
            let pages: i64 = self.conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
            let free: i64 = self
                .conn
                .query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
            Ok(free as f64 / pages.max(1) as f64)
        };
        let wanted = force || free_fraction().is_ok_and(|f| f >= 0.25);
        if !wanted {
            return false;
        }
        let done = self.conn.execute_batch("VACUUM").is_ok();
        if !done {
            tracing::warn!("the store could not be compacted now; freed space is reused meanwhile");
        }
        // TRUNCATE empties the WAL the vacuum filled; a reader in another process may
        // keep it for now, which is harmless.
        let _ = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        done
    }
}

#[cfg(test)]
#[path = "prune_tests.rs"]
mod tests;
