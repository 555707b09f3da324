//! What the sync needs from the store: the unacknowledged part of the change log, the
//! clock anchors measured against the server, and a place to record the server's
//! answers. Each call is its own short transaction; nothing here is held across a
//! network exchange.

use chrono::{DateTime, Utc};
use jejak_domain::{
    ChangeRecord, ClientInstant, ClockAnchor, ClockBound, Lang, RecordKind, RejectedRecord,
};
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
    /// Changes of kinds the server did not take when their range was sent (an older
    /// server): acknowledged as a range, yet waiting, and never pruned, until a server
    /// that takes their kind has them.
    pub held_back: u64,
    pub last_attempt: Option<DateTime<Utc>>,
    pub last_success: Option<DateTime<Utc>>,
    pub last_result: Option<String>,
}

impl SyncState {
    /// Changes waiting to be sent: those after the acknowledged seq, and those held
    /// back for a server that takes their kind.
    pub fn pending(&self) -> u64 {
        self.last_seq
            .saturating_sub(self.acked_seq)
            .saturating_add(self.held_back)
    }

    /// Why the last sync failed, when it did and the store knows the reason's code.
    pub fn last_problem(&self) -> Option<SyncProblem> {
        let (code, _) = self.last_result.as_deref()?.split_once(": ")?;
        SyncProblem::from_code(code)
    }

    /// The last sync's outcome for people: "berhasil" / "succeeded", the sentence of
    /// its problem, or (from a version that stored no code) the text as stored.
    pub fn last_result_text(&self, lang: Lang) -> Option<String> {
        let stored = self.last_result.as_deref()?;
        if stored == "ok" {
            return Some(lang.pick("berhasil", "succeeded").to_string());
        }
        Some(match self.last_problem() {
            Some(problem) => problem.sentence(lang).to_string(),
            None => stored.to_string(),
        })
    }
}

/// How many changes wait to be sent, in the words every screen uses: `5 catatan
/// menunggu dikirim` (a change of the change log is a "catatan", a record, for people).
pub fn waiting_text(pending: u64, lang: Lang) -> String {
    match lang {
        Lang::Id => format!("{pending} catatan menunggu dikirim"),
        Lang::En if pending == 1 => "1 record waiting to be sent".to_string(),
        Lang::En => format!("{pending} records waiting to be sent"),
    }
}

/// Why a sync stopped without finishing, as people are told and as the store keeps it
/// (`last_result` is `"<code>: <technical detail>"`, the detail in English for logs and
/// `jejak status --format json`). The data stays on the PC in every case, and each
/// sentence says so and what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncProblem {
    /// No answer from the server: no link, a timeout, a captive portal's page.
    NoLink,
    /// The server answered that it cannot store now (its database is down, its disk full).
    ServerCannotStore,
    /// The server answered with another failure (5xx).
    ServerFailing,
    /// The server revoked this PC's token.
    TokenRevoked,
    /// The server does not accept this PC's token.
    TokenRefused,
    /// The server refused a batch (4xx other than the token).
    Refused,
    /// The server and the PC disagree about the change log and made no progress.
    OutOfStep,
}

impl SyncProblem {
    const ALL: [SyncProblem; 7] = [
        SyncProblem::NoLink,
        SyncProblem::ServerCannotStore,
        SyncProblem::ServerFailing,
        SyncProblem::TokenRevoked,
        SyncProblem::TokenRefused,
        SyncProblem::Refused,
        SyncProblem::OutOfStep,
    ];

    /// The code kept in the store, stable across versions.
    pub fn code(self) -> &'static str {
        match self {
            SyncProblem::NoLink => "no-link",
            SyncProblem::ServerCannotStore => "server-cannot-store",
            SyncProblem::ServerFailing => "server-failing",
            SyncProblem::TokenRevoked => "token-revoked",
            SyncProblem::TokenRefused => "token-refused",
            SyncProblem::Refused => "refused",
            SyncProblem::OutOfStep => "out-of-step",
        }
    }

    pub fn from_code(code: &str) -> Option<SyncProblem> {
        Self::ALL.into_iter().find(|p| p.code() == code)
    }

    /// One plain sentence for the librarian: what happened, that the data is safe, and
    /// what to do.
    pub fn sentence(self, lang: Lang) -> &'static str {
        match self {
            SyncProblem::NoLink => lang.pick(
                "Tidak tersambung ke server kabupaten. Data aman di komputer ini; nyalakan modem atau periksa paket data, lalu coba lagi.",
                "No connection to the district server. The data is safe on this PC; turn the modem on or check the data package, then try again.",
            ),
            SyncProblem::ServerCannotStore => lang.pick(
                "Server kabupaten tersambung, tetapi belum bisa menyimpan data sekarang. Data aman di komputer ini; coba lagi nanti, dan beri tahu petugas kabupaten jika masih begini.",
                "The district server is reachable but cannot store data right now. The data is safe on this PC; try again later, and tell the district office if it stays so.",
            ),
            SyncProblem::ServerFailing => lang.pick(
                "Server kabupaten tersambung, tetapi sedang bermasalah. Data aman di komputer ini; coba lagi nanti, dan beri tahu petugas kabupaten jika masih begini.",
                "The district server is reachable but failing. The data is safe on this PC; try again later, and tell the district office if it stays so.",
            ),
            SyncProblem::TokenRevoked => lang.pick(
                "Server kabupaten tidak menerima komputer ini lagi: tokennya sudah dicabut. Data aman di komputer ini; minta token baru ke petugas kabupaten, lalu jalankan jejak enroll.",
                "The district server no longer accepts this PC: its token was revoked. The data is safe on this PC; ask the district office for a new token, then run jejak enroll.",
            ),
            SyncProblem::TokenRefused => lang.pick(
                "Server kabupaten tidak mengenali token komputer ini. Data aman di komputer ini; periksa token bersama petugas kabupaten, lalu jalankan jejak enroll.",
                "The district server does not recognise this PC's token. The data is safe on this PC; check the token with the district office, then run jejak enroll.",
            ),
            SyncProblem::Refused => lang.pick(
                "Server kabupaten menolak kiriman dari komputer ini. Data aman di komputer ini; jalankan jejak doctor dan beri tahu petugas kabupaten.",
                "The district server refused what this PC sent. The data is safe on this PC; run jejak doctor and tell the district office.",
            ),
            SyncProblem::OutOfStep => lang.pick(
                "Server kabupaten dan komputer ini tidak sepakat tentang apa yang sudah terkirim. Data aman di komputer ini; coba lagi, dan beri tahu petugas kabupaten jika masih begini.",
                "The district server and this PC disagree about what was already sent. The data is safe on this PC; try again, and tell the district office if it stays so.",
            ),
        }
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
                        s.last_attempt_wall_ms, s.last_success_wall_ms, s.last_result,
                        (SELECT COUNT(*) FROM held_back)
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
                        held_back: r.get::<_, i64>(6)?.max(0) as u64,
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
    /// this store's epoch only), and refused changes are kept and counted. `sent_kinds`
    /// are the kinds the acknowledged batches carried: the newly acknowledged changes of
    /// any other kind were left out of them (the server did not take the kind), and are
    /// held back in the same transaction, so that they stay waiting and are never
    /// pruned.
    pub fn record_ack(
        &mut self,
        epoch: Uuid,
        held_seq: u64,
        rejected: &[RejectedRecord],
        sent_kinds: &[RecordKind],
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
        let sent: Vec<&str> = sent_kinds.iter().map(|k| k.code()).collect();
        let sent = serde_json::to_string(&sent).unwrap_or_else(|_| "[]".into());
        tx.execute(
            "INSERT OR IGNORE INTO held_back (seq, record_kind)
             SELECT seq, record_kind FROM changes
             WHERE seq > (SELECT acked_seq FROM sync_state WHERE id = 1) AND seq <= ?1
               AND record_kind NOT IN (SELECT value FROM json_each(?2))",
            params![held_seq as i64, sent],
        )
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

    /// Records a sync attempt that did not get an acknowledgement (no link, refused…):
    /// why, and the technical detail.
    pub fn record_sync_failure(
        &mut self,
        problem: SyncProblem,
        detail: &str,
    ) -> Result<(), StoreError> {
        let now = self.clock.wall().timestamp_millis();
        let sqlite = self.sqlite();
        let result = format!("{}: {detail}", problem.code());
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

/// The store-meta key of the kinds the district server last said it takes.
const SERVER_ACCEPTS: &str = "server_accepts";

impl Store {
    /// The record kinds the district server last said it takes (`GET
    /// /api/v1/devices/me`, or a USB acknowledgement file); those of wire format v1
    /// while it never said.
    pub fn server_accepts(&self) -> Result<Vec<RecordKind>, StoreError> {
        let raw: Option<String> = self
            .conn
            .query_row(
                "SELECT value FROM store_meta WHERE key = ?1",
                [SERVER_ACCEPTS],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.sqlite())?;
        Ok(match raw {
            Some(codes) => codes.split(',').filter_map(RecordKind::from_code).collect(),
            None => RecordKind::WIRE_V1.to_vec(),
        })
    }

    /// Keeps the kinds the server says it takes.
    pub fn save_server_accepts(&mut self, kinds: &[RecordKind]) -> Result<(), StoreError> {
        let codes: Vec<&str> = kinds.iter().map(|k| k.code()).collect();
        self.conn
            .execute(
                "INSERT INTO store_meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![SERVER_ACCEPTS, codes.join(",")],
            )
            .map_err(self.sqlite())?;
        Ok(())
    }

    /// The held-back changes of `kinds` (those a server now takes), oldest first, at
    /// most `limit`.
    pub fn held_back(
        &self,
        kinds: &[RecordKind],
        limit: u32,
    ) -> Result<Vec<ChangeRecord>, StoreError> {
        let codes: Vec<&str> = kinds.iter().map(|k| k.code()).collect();
        let codes = serde_json::to_string(&codes).unwrap_or_else(|_| "[]".into());
        self.read_changes(
            "SELECT c.seq, c.recorded_wall_ms, c.run_id, c.mono_ms, c.body
             FROM held_back h JOIN changes c ON c.seq = h.seq
             WHERE h.record_kind IN (SELECT value FROM json_each(?1))
             ORDER BY c.seq LIMIT ?2",
            params![codes, limit],
        )
    }

    /// A server acknowledged the held-back changes `seqs`: they wait no more (and may
    /// be pruned like any acknowledged change); refused ones are kept and counted.
    pub fn release_held_back(
        &mut self,
        seqs: &[u64],
        rejected: &[RejectedRecord],
    ) -> Result<(), StoreError> {
        let now = self.clock.wall().timestamp_millis();
        let path = self.path.clone();
        let sqlite = |e| StoreError::from_sqlite(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite)?;
        for seq in seqs {
            tx.execute("DELETE FROM held_back WHERE seq = ?1", [*seq as i64])
                .map_err(sqlite)?;
        }
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

    /// Remembers what a USB bundle carried (by its payload digest): the kinds, so that
    /// its acknowledgement holds back exactly what it left out, and the held-back
    /// changes it releases.
    pub fn save_bundle_kinds(
        &mut self,
        digest: &str,
        kinds: &[RecordKind],
        releases: &[u64],
    ) -> Result<(), StoreError> {
        let codes: Vec<&str> = kinds.iter().map(|k| k.code()).collect();
        let seqs: Vec<String> = releases.iter().map(u64::to_string).collect();
        self.conn
            .execute(
                "INSERT INTO store_meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![
                    format!("bundle_kinds:{digest}"),
                    format!("{}|{}", codes.join(","), seqs.join(","))
                ],
            )
            .map_err(self.sqlite())?;
        Ok(())
    }

    /// What the bundle of `digest` carried ([`Store::save_bundle_kinds`]): for a bundle
    /// written before bundles said, the kinds of wire format v1 (what such a version
    /// sent) and no held-back changes.
    pub fn bundle_kinds(&self, digest: &str) -> Result<(Vec<RecordKind>, Vec<u64>), StoreError> {
        let raw: Option<String> = self
            .conn
            .query_row(
                "SELECT value FROM store_meta WHERE key = ?1",
                [format!("bundle_kinds:{digest}")],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.sqlite())?;
        let Some(raw) = raw else {
            return Ok((RecordKind::WIRE_V1.to_vec(), Vec::new()));
        };
        let (codes, seqs) = raw.split_once('|').unwrap_or((raw.as_str(), ""));
        Ok((
            codes.split(',').filter_map(RecordKind::from_code).collect(),
            seqs.split(',').filter_map(|s| s.parse().ok()).collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(last_result: Option<&str>) -> SyncState {
        SyncState {
            epoch: Uuid::nil(),
            acked_seq: 3,
            last_seq: 8,
            rejected: 0,
            held_back: 0,
            last_attempt: None,
            last_success: None,
            last_result: last_result.map(str::to_string),
        }
    }

    #[test]
    fn every_problem_code_reads_back_as_its_problem() {
        for problem in SyncProblem::ALL {
            assert_eq!(SyncProblem::from_code(problem.code()), Some(problem));
            for lang in [Lang::Id, Lang::En] {
                // One sentence that says the data is safe.
                assert!(
                    problem
                        .sentence(lang)
                        .contains(lang.pick("Data aman", "data is safe")),
                    "{problem:?}"
                );
            }
        }
    }

    #[test]
    fn the_last_result_reads_as_a_sentence_and_keeps_its_detail_for_json() {
        let failed = state(Some(
            "no-link: no link to the server after 5 attempts: tcp connect error",
        ));
        assert_eq!(failed.last_problem(), Some(SyncProblem::NoLink));
        assert_eq!(
            failed.last_result_text(Lang::Id).as_deref(),
            Some(SyncProblem::NoLink.sentence(Lang::Id))
        );
        assert_eq!(
            state(Some("ok")).last_result_text(Lang::Id).as_deref(),
            Some("berhasil")
        );
        // A result stored by an earlier version is shown as it is.
        let older = state(Some("the server refused the batch (403): wrong library"));
        assert_eq!(older.last_problem(), None);
        assert_eq!(
            older.last_result_text(Lang::En).as_deref(),
            Some("the server refused the batch (403): wrong library")
        );
        assert_eq!(state(None).last_result_text(Lang::Id), None);
    }

    #[test]
    fn what_waits_is_counted_in_records_in_both_languages() {
        assert_eq!(waiting_text(5, Lang::Id), "5 catatan menunggu dikirim");
        assert_eq!(waiting_text(1, Lang::En), "1 record waiting to be sent");
        assert_eq!(waiting_text(5, Lang::En), "5 records waiting to be sent");
    }
}
