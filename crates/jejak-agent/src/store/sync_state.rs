//! What the sync needs from the store: the unacknowledged part of the change log, the
//! clock anchors measured against the server, and a place to record the server's
//! answers. Each call is its own short transaction; nothing here is held across a
//! network exchange.

use chrono::{DateTime, Utc};
use jejak_domain::{ClientInstant, ClockAnchor, ClockBound, RejectedRecord};
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use uuid::Uuid;

use super::{Store, StoreError, millis_to_time};

/// The sync's view of the store.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SyncState {
    pub epoch: Uuid,
    /// The highest seq the server has acknowledged holding.
    pub acked_seq: u64,
    pub last_seq: u64,
    /// Changes the server refused; they stay here and count as acknowledged.
    pub rejected: u64,
    pub last_attempt: Option<DateTime<Utc>>,
    pub last_success: Option<DateTime<Utc>>,
    pub last_result: Option<String>,
}

impl SyncState {
    pub fn pending(&self) -> u64 {
        self.last_seq.saturating_sub(self.acked_seq)
    }
}

/// A change the server refused, as `jejak status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RejectedChange {
    pub seq: u64,
    pub code: String,
    pub detail: String,
    pub rejected_at: DateTime<Utc>,
}

impl Store {
    fn sqlite(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |e| StoreError::from_sqlite(&self.path, e)
    }

    pub fn sync_state(&self) -> Result<SyncState, StoreError> {
        let sqlite = self.sqlite();
        self.conn
            .query_row(
                "SELECT s.acked_seq, (SELECT COALESCE(MAX(seq), 0) FROM changes),
                        (SELECT COUNT(*) FROM rejected_changes),
                        s.last_attempt_wall_ms, s.last_success_wall_ms, s.last_result
                 FROM sync_state s WHERE s.id = 1",
                [],
                |r| {
                    Ok(SyncState {
                        epoch: self.epoch,
                        acked_seq: r.get::<_, i64>(0)?.max(0) as u64,
                        last_seq: r.get::<_, i64>(1)?.max(0) as u64,
                        rejected: r.get::<_, i64>(2)?.max(0) as u64,
                        last_attempt: r.get::<_, Option<i64>>(3)?.map(millis_to_time),
                        last_success: r.get::<_, Option<i64>>(4)?.map(millis_to_time),
                        last_result: r.get(5)?,
                    })
                },
            )
            .map_err(sqlite)
    }

    /// The current run and its clocks, for the `sent` instant of a batch and the
    /// timestamps of an offset measurement. Creates the run (and its boot event) if
    /// this is the first write of this boot.
    pub fn client_instant(&mut self) -> Result<ClientInstant, StoreError> {
        self.write(|w| {
            Ok(ClientInstant {
                run: w.run.run_id,
                mono_ms: w.now.mono_ms.max(0) as u64,
                wall_ms: w.now.wall.timestamp_millis(),
            })
        })
    }

    /// The monotonic clock now (for t1 and t4 of an exchange).
    pub fn mono_now(&self) -> u64 {
        self.clock.mono_ms()
    }

    /// Keeps the best (smallest uncertainty) anchor per run.
    pub fn save_anchor(&mut self, anchor: ClockAnchor) -> Result<(), StoreError> {
        let wall = self.clock.wall().timestamp_millis();
        let sqlite = self.sqlite();
        self.conn
            .execute(
                "INSERT INTO clock_anchors (run_id, mono_ms, server_ms, uncertainty_ms, measured_wall_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (run_id) DO UPDATE SET mono_ms = excluded.mono_ms,
                   server_ms = excluded.server_ms, uncertainty_ms = excluded.uncertainty_ms,
                   measured_wall_ms = excluded.measured_wall_ms
                 WHERE excluded.uncertainty_ms < clock_anchors.uncertainty_ms",
                params![
                    anchor.run.to_string(),
                    anchor.mono_ms as i64,
                    anchor.server_ms,
                    anchor.uncertainty_ms as i64,
                    wall
                ],
            )
            .map_err(sqlite)?;
        Ok(())
    }

    /// Keeps what a USB acknowledgement file tells about this PC's clock: the server
    /// wrote the file at `server_ms`, so now, when the PC reads it, the server's clock
    /// reads at least that. The bound is kept for the current run (the tightest one per
    /// run) and returned; batches carry it to the server ([`ClockBound`]).
    pub fn save_bound(&mut self, server_ms: i64) -> Result<ClockBound, StoreError> {
        self.write(|w| {
            let bound = ClockBound {
                run: w.run.run_id,
                mono_ms: w.now.mono_ms.max(0) as u64,
                server_ms,
            };
            w.tx.execute(
                "INSERT INTO clock_bounds (run_id, mono_ms, server_ms, learnt)
                 VALUES (?1, ?2, ?3, (SELECT COALESCE(MAX(learnt), 0) + 1 FROM clock_bounds))
                 ON CONFLICT (run_id) DO UPDATE SET mono_ms = excluded.mono_ms,
                   server_ms = excluded.server_ms, learnt = excluded.learnt
                 WHERE excluded.server_ms - excluded.mono_ms
                     > clock_bounds.server_ms - clock_bounds.mono_ms",
                params![bound.run.to_string(), bound.mono_ms as i64, bound.server_ms],
            )?;
            Ok(bound)
        })
    }

    /// The clock bounds known for these runs, and the newest one whatever its run (the
    /// run that was going when the last acknowledgement file came back may have nothing
    /// left to send, yet its bound still dates the runs after it).
    pub fn bounds_for(&self, runs: &[Uuid]) -> Result<Vec<ClockBound>, StoreError> {
        let sqlite = self.sqlite();
        let read = |r: &rusqlite::Row<'_>| -> rusqlite::Result<(String, i64, i64)> {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        };
        let mut found: Vec<(String, i64, i64)> = Vec::new();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT run_id, mono_ms, server_ms FROM clock_bounds WHERE run_id = ?1")
            .map_err(&sqlite)?;
        for run in runs {
            found.extend(
                stmt.query_row([run.to_string()], read)
                    .optional()
                    .map_err(&sqlite)?,
            );
        }
        let newest = self
            .conn
            .prepare_cached(
                "SELECT run_id, mono_ms, server_ms FROM clock_bounds
                 ORDER BY learnt DESC LIMIT 1",
            )
            .map_err(&sqlite)?
            .query_row([], read)
            .optional()
            .map_err(&sqlite)?;
        found.extend(newest);
        let mut out: Vec<ClockBound> = Vec::new();
        for (run, mono_ms, server_ms) in found {
            let Ok(run) = Uuid::parse_str(&run) else {
                continue;
            };
            if out.iter().all(|b| b.run != run) {
                out.push(ClockBound {
                    run,
                    mono_ms: mono_ms.max(0) as u64,
                    server_ms,
                });
            }
        }
        Ok(out)
    }

    /// The anchors known for these runs.
    pub fn anchors_for(&self, runs: &[Uuid]) -> Result<Vec<ClockAnchor>, StoreError> {
        let sqlite = self.sqlite();
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT mono_ms, server_ms, uncertainty_ms FROM clock_anchors WHERE run_id = ?1",
            )
            .map_err(&sqlite)?;
        let mut out = Vec::new();
        for run in runs {
            let found = stmt
                .query_row([run.to_string()], |r| {
                    Ok(ClockAnchor {
                        run: *run,
                        mono_ms: r.get::<_, i64>(0)?.max(0) as u64,
                        server_ms: r.get(1)?,
                        uncertainty_ms: r.get::<_, i64>(2)?.max(0) as u64,
                    })
                })
                .optional()
                .map_err(&sqlite)?;
            out.extend(found);
        }
        Ok(out)
    }

    /// Records the server's answer: everything up to `held_seq` is acknowledged (for
    /// this store's epoch only), and refused changes are kept and counted.
    pub fn record_ack(
        &mut self,
        epoch: Uuid,
        held_seq: u64,
        rejected: &[RejectedRecord],
    ) -> Result<(), StoreError> {
        if epoch != self.epoch {
            return Err(StoreError::Corrupt(format!(
                "the server acknowledged epoch {epoch}, but this store's epoch is {}",
                self.epoch
            )));
        }
        let now = self.clock.wall().timestamp_millis();
        let path = self.path.clone();
        let sqlite = |e| StoreError::from_sqlite(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite)?;
        // Never beyond what exists, never backwards.
        tx.execute(
            "UPDATE sync_state SET
               acked_seq = MAX(acked_seq, MIN(?1, (SELECT COALESCE(MAX(seq), 0) FROM changes))),
               last_success_wall_ms = ?2, last_attempt_wall_ms = ?2, last_result = 'ok'
             WHERE id = 1",
            params![held_seq as i64, now],
        )
        .map_err(sqlite)?;
        for r in rejected {
            tx.execute(
                "INSERT OR REPLACE INTO rejected_changes (seq, code, detail, rejected_at_ms)
                 SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM changes WHERE seq = ?1)",
                params![r.seq as i64, r.code, r.detail, now],
            )
            .map_err(sqlite)?;
        }
        tx.commit().map_err(sqlite)
    }

    /// The server holds less of this store's epoch than it once acknowledged (it was
    /// restored from an older backup, or never saw this epoch): everything after
    /// `held_seq` counts as unsent again, so it is kept from pruning and sent again
    /// from what the change log still has. Returns the acknowledged seq before, when it
    /// moved back. The acknowledgement times above `held_seq` go too, so retention
    /// starts again from the new acknowledgement.
    pub fn rewind_ack(&mut self, epoch: Uuid, held_seq: u64) -> Result<Option<u64>, StoreError> {
        if epoch != self.epoch {
            return Ok(None);
        }
        let path = self.path.clone();
        let sqlite = |e| StoreError::from_sqlite(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite)?;
        let before: i64 = tx
            .query_row("SELECT acked_seq FROM sync_state WHERE id = 1", [], |r| {
                r.get(0)
            })
            .map_err(sqlite)?;
        let held = i64::try_from(held_seq).unwrap_or(i64::MAX);
        if held >= before {
            return Ok(None);
        }
        tx.execute("UPDATE sync_state SET acked_seq = ?1 WHERE id = 1", [held])
            .map_err(sqlite)?;
        tx.execute("DELETE FROM ack_history WHERE acked_seq > ?1", [held])
            .map_err(sqlite)?;
        tx.commit().map_err(sqlite)?;
        tracing::warn!(
            acked_before = before,
            held_seq,
            "the server holds less than it acknowledged; resending from what this PC keeps"
        );
        Ok(Some(before.max(0) as u64))
    }

    /// Records a sync attempt that did not get an acknowledgement (no link, refused…).
    pub fn record_sync_failure(&mut self, result: &str) -> Result<(), StoreError> {
        let now = self.clock.wall().timestamp_millis();
        let sqlite = self.sqlite();
        self.conn
            .execute(
                "UPDATE sync_state SET last_attempt_wall_ms = ?1, last_result = ?2 WHERE id = 1",
                params![now, result],
            )
            .map_err(sqlite)?;
        Ok(())
    }

    pub fn rejected_changes(&self, limit: u32) -> Result<Vec<RejectedChange>, StoreError> {
        let sqlite = self.sqlite();
        let mut stmt = self
            .conn
            .prepare(
                "SELECT seq, code, detail, rejected_at_ms FROM rejected_changes ORDER BY seq DESC LIMIT ?1",
            )
            .map_err(&sqlite)?;
        let rows = stmt
            .query_map([limit], |r| {
                Ok(RejectedChange {
                    seq: r.get::<_, i64>(0)?.max(0) as u64,
                    code: r.get(1)?,
                    detail: r.get(2)?,
                    rejected_at: millis_to_time(r.get(3)?),
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(&sqlite)?;
        Ok(rows)
    }
}
