//! The SQLite store's writes. Each function runs on the writer thread inside its own
//! savepoint of the current group transaction (see `writer.rs`): when it returns `Err`
//! everything it wrote is rolled back.

use std::collections::HashMap;

use chrono::Datelike;

use jejak_domain::{
    LibraryCode, LibraryDetails, LibraryDetailsEdit, PcCode, RejectedRecord, TimeQuality, Zone,
};
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use crate::codes;
use crate::dating::{self, KeptRun, RunDating, StoredTime};
use crate::entries::{self, Decision, PreparedEntry, StoredEntry};
use crate::ingest::{
    self, Anchor, IngestOutcome, PreparedBatch, PreparedEvent, PreparedRecord, PreparedSession,
    REJECT_CONFLICT, REJECT_INVALID, WallOffset,
};
use crate::rollup::{
    self, DayTotals, EventCursor, EventPoint, RollupDelta, SessionFacts, fold_events,
};
use crate::store::{
    DeviceId, EnrollError, IngestError, KeyRegistration, LibraryInfo, StoreError, key_registration,
};

fn sql(e: rusqlite::Error) -> IngestError {
    IngestError::Store(StoreError::Sqlite(e))
}

/// Stores one prepared batch (see `ServerStore::ingest` for the contract).
pub(crate) fn ingest(
    conn: &Connection,
    device: DeviceId,
    batch: &PreparedBatch,
    received_ms: i64,
) -> Result<IngestOutcome, IngestError> {
    // The device's library and its zone (rollups count days in the library's zone), and
    // where its runs dated for certain end (`dating.rs`).
    let place: Option<(i64, String, Option<i64>)> = conn
        .prepare_cached(
            "SELECT d.library, l.timezone, d.dated_until_ms
             FROM devices d JOIN libraries l ON l.id = d.library
             WHERE d.id = ?1",
        )
        .and_then(|mut s| {
            s.query_row([device.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
        })
        .map_err(sql)?;
    let Some((library, timezone, dated_until)) = place else {
        return Err(IngestError::UnknownDevice);
    };
    let zone_offset_s = zone_offset(&timezone)?;

    // The gap check: the batch must start at or before the first seq the server lacks.
    let epoch_key = batch.epoch.as_bytes().as_slice();
    let epoch: Option<i64> = conn
        .prepare_cached("SELECT held_seq FROM epochs WHERE device = ?1 AND epoch = ?2")
        .and_then(|mut s| {
            s.query_row(params![device.0, epoch_key], |r| r.get(0))
                .optional()
        })
        .map_err(sql)?;
    let held = epoch.unwrap_or(0);
    ingest::check_gap(held, batch.first_seq)?;
    if epoch.is_none() {
        let recent = conn
            .prepare_cached("SELECT first_ms FROM epochs WHERE device = ?1 AND first_ms > ?2")
            .and_then(|mut s| {
                s.query_map(
                    params![device.0, received_ms - ingest::NEW_EPOCH_WINDOW_MS],
                    |r| r.get::<_, i64>(0),
                )?
                .collect::<Result<Vec<i64>, _>>()
            })
            .map_err(sql)?;
        ingest::check_new_epoch(device, &recent, received_ms)?;
        conn.prepare_cached(
            "INSERT INTO epochs (device, epoch, held_seq, first_ms, last_batch_ms)
             VALUES (?1, ?2, 0, ?3, ?3)",
        )
        .and_then(|mut s| s.execute(params![device.0, epoch_key, received_ms]))
        .map_err(sql)?;
    }
    // Seqs the PC pruned before the server lost them: recorded, never silently held.
    for range in &batch.lost {
        conn.prepare_cached(
            "INSERT INTO lost_ranges (device, epoch, first_seq, last_seq, reported_ms)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
        )
        .and_then(|mut s| {
            s.execute(params![
                device.0,
                epoch_key,
                range.first_seq,
                range.last_seq,
                received_ms
            ])
        })
        .map_err(sql)?;
    }

    // The best anchor of every run the batch touches: stored ones, replaced by the
    // batch's own where those are better.
    // The batch's anchors replace stored ones they beat, and then the best anchor of
    // every run the batch touches is read back. Both are one statement per batch over a
    // JSON list (a backlog touches a hundred runs; a statement per run would cost more
    // than the sessions themselves).
    if !batch.anchors.is_empty() {
        let list: Vec<(String, i64, i64)> = batch
            .anchors
            .iter()
            .map(|(run, a)| (hex::encode(run.as_bytes()), a.boot_ms, a.uncertainty_ms))
            .collect();
        let list = serde_json::to_string(&list)
            .map_err(|e| IngestError::Store(StoreError::Internal(e.to_string())))?;
        conn.prepare_cached(
            "INSERT INTO runs (device, run, boot_ms, uncertainty_ms)
             SELECT ?1, unhex(value ->> 0), value ->> 1, value ->> 2 FROM json_each(?2) WHERE true
             ON CONFLICT (device, run) DO UPDATE
                 SET boot_ms = excluded.boot_ms, uncertainty_ms = excluded.uncertainty_ms
                 WHERE excluded.uncertainty_ms < runs.uncertainty_ms",
        )
        .and_then(|mut s| s.execute(params![device.0, list]))
        .map_err(sql)?;
    }
    let wanted = batch.runs_wanted();
    let mut runs: HashMap<Uuid, Option<Anchor>> = wanted.iter().map(|r| (**r, None)).collect();
    let list = run_list(wanted.iter().copied())?;
    {
        let mut stmt = conn
            .prepare_cached(
                "SELECT run, boot_ms, uncertainty_ms FROM runs
                 WHERE device = ?1 AND run IN (SELECT unhex(value) FROM json_each(?2))",
            )
            .map_err(sql)?;
        let mut rows = stmt.query(params![device.0, list]).map_err(sql)?;
        while let Some(r) = rows.next().map_err(sql)? {
            let run: Vec<u8> = r.get(0).map_err(sql)?;
            if let Ok(run) = Uuid::from_slice(&run) {
                runs.insert(
                    run,
                    Some(Anchor {
                        boot_ms: r.get(1).map_err(sql)?,
                        uncertainty_ms: r.get(2).map_err(sql)?,
                    }),
                );
            }
        }
    }

    // The wall clock's offset for records whose run has no anchor: what this batch
    // establishes, else the latest the device established before.
    let offset = match batch.fresh_offset(&runs, received_ms) {
        Some(o) => {
            conn.prepare_cached(
                "UPDATE devices SET offset_ms = ?2, offset_uncertainty_ms = ?3, offset_at_ms = ?4
                 WHERE id = ?1",
            )
            .and_then(|mut s| s.execute(params![device.0, o.ms, o.uncertainty_ms, received_ms]))
            .map_err(sql)?;
            Some(o)
        }
        None => conn
            .prepare_cached(
                "SELECT offset_ms, offset_uncertainty_ms FROM devices
                 WHERE id = ?1 AND offset_ms IS NOT NULL",
            )
            .and_then(|mut s| {
                s.query_row([device.0], |r| {
                    Ok(WallOffset {
                        ms: r.get(0)?,
                        uncertainty_ms: r.get(1)?,
                    })
                })
                .optional()
            })
            .map_err(sql)?,
    };

    // Date the runs the batch touches together with the PC's kept runs, and see which
    // stored records the new evidence moves.
    let kept = kept_runs(conn, device.0, &batch.runs)?;
    let plan = batch.plan_dating(kept, &runs, held, offset, received_ms, dated_until);

    let mut ctx = RecordContext {
        conn,
        insert_session: conn
            .prepare_cached(
                "INSERT INTO sessions (id, device, attrs, start_s, skew_ms, duration_s, offline_s,
                     group_size, patron, rx_kib, tx_kib)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT (device, id) DO NOTHING",
            )
            .map_err(sql)?,
        insert_event: conn
            .prepare_cached(
                "INSERT INTO pc_events (id, device, attrs, at_s, skew_ms, clock_delta_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (device, id) DO NOTHING",
            )
            .map_err(sql)?,
        device,
        epoch: epoch_key,
        received_ms,
        datings: &plan.datings,
        offset,
        patrons: HashMap::new(),
        new: 0,
        duplicates: 0,
        rejected: Vec::new(),
        sessions_added: 0,
        events_added: 0,
        rejected_added: 0,
        library,
        zone_offset_s,
        rollups: RollupDelta::default(),
        new_events: Vec::new(),
        retained_from_s: retained_from(conn)?
            .map_or(i64::MIN, |month| month_start_s(month, zone_offset_s)),
    };
    let mut refold = false;
    for (record, run_dating) in plan.redated_records(device.0) {
        if record.event {
            refold |= ctx.redate_event(record, run_dating)?;
        } else {
            ctx.redate_session(record, run_dating)?;
        }
    }
    write_kept_runs(conn, device.0, &plan)?;
    for record in &batch.records {
        match record {
            PreparedRecord::Session(s) => ctx.session(s)?,
            PreparedRecord::Event(e) => ctx.event(e)?,
            PreparedRecord::Entry(e) => ctx.entry(e, &batch.pc)?,
            PreparedRecord::Invalid { seq, id, detail } => {
                ctx.reject(*seq, id, REJECT_INVALID, detail.clone())?
            }
        }
    }

    let RecordContext {
        rollups,
        new_events,
        new,
        duplicates,
        rejected,
        sessions_added,
        events_added,
        rejected_added,
        ..
    } = ctx;
    let mut rollups = rollups;
    fold_new_events(
        conn,
        device.0,
        zone_offset_s,
        new_events,
        refold,
        &mut rollups,
    )?;
    write_rollups(conn, &rollups.without_zeros())?;

    let held_seq = ingest::held_after(held, batch);
    conn.prepare_cached(
        "UPDATE epochs SET held_seq = ?3, last_batch_ms = ?4 WHERE device = ?1 AND epoch = ?2",
    )
    .and_then(|mut s| s.execute(params![device.0, epoch_key, held_seq, received_ms]))
    .map_err(sql)?;
    conn.prepare_cached(
        "UPDATE devices SET last_batch_ms = ?2, sessions = sessions + ?3, events = events + ?4,
             rejected = rejected + ?5, dated_until_ms = coalesce(?6, dated_until_ms)
         WHERE id = ?1",
    )
    .and_then(|mut s| {
        s.execute(params![
            device.0,
            received_ms,
            sessions_added,
            events_added,
            rejected_added,
            plan.dated_until
        ])
    })
    .map_err(sql)?;
    let rejected_count = rejected.len() as i64;
    conn.prepare_cached(
        "INSERT INTO batches (device, batch_id, epoch, first_seq, last_seq, new, duplicates,
             rejected, received_ms, deliveries, last_received_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1, ?9)
         ON CONFLICT (device, batch_id) DO UPDATE
             SET deliveries = deliveries + 1, last_received_ms = excluded.last_received_ms",
    )
    .and_then(|mut s| {
        s.execute(params![
            device.0,
            batch.batch_id.as_bytes().as_slice(),
            epoch_key,
            batch.first_seq,
            batch.last_seq,
            new,
            duplicates,
            rejected_count,
            received_ms
        ])
    })
    .map_err(sql)?;

    Ok(IngestOutcome {
        held_seq: held_seq as u64,
        new,
        duplicates,
        rejected,
    })
}

/// The per-batch state of the record loop.
struct RecordContext<'a> {
    conn: &'a Connection,
    /// The two statements every record runs, prepared once per batch.
    insert_session: rusqlite::CachedStatement<'a>,
    insert_event: rusqlite::CachedStatement<'a>,
    device: DeviceId,
    epoch: &'a [u8],
    received_ms: i64,
    /// How each run of the batch is dated (`dating::plan`).
    datings: &'a HashMap<Uuid, RunDating>,
    offset: Option<WallOffset>,
    /// Patron keys already resolved in this batch.
    patrons: HashMap<[u8; 32], i64>,
    new: u32,
    duplicates: u32,
    rejected: Vec<RejectedRecord>,
    sessions_added: i64,
    events_added: i64,
    rejected_added: i64,
    /// The device's library (the breakdown and patron rollups are per library).
    library: i64,
    /// The library zone's offset from UTC, seconds.
    zone_offset_s: i64,
    /// The batch's changes to the rollups, written once at its end.
    rollups: RollupDelta,
    /// The pc events this batch added, for the uptime fold at its end.
    new_events: Vec<EventPoint>,
    /// Records before this instant (Unix s) are older than the server keeps raw rows
    /// (`prune_raw`); `i64::MIN` when nothing was ever pruned.
    retained_from_s: i64,
}

/// A stored session's client-given fields, to compare with a resent one.
#[derive(Debug, PartialEq, Eq)]
struct StoredSession {
    patron: Option<i64>,
    fields: ingest::SessionFields,
}

/// The first whole second at or before `ms`, and what remains: how a time is stored.
fn split_ms(ms: i64) -> (i64, i64) {
    (ms.div_euclid(1000), ms.rem_euclid(1000))
}

impl RecordContext<'_> {
    fn run_dating(&self, run: &Uuid) -> RunDating {
        // The plan dates every run a valid record of the batch uses.
        self.datings
            .get(run)
            .copied()
            .unwrap_or(RunDating::OwnClock)
    }

    /// Dates a stored session again (its run's dating moved): the row and its rollups.
    fn redate_session(
        &mut self,
        record: &dating::RunRecord,
        run: &RunDating,
    ) -> Result<(), StoreError> {
        let id = record.id.as_bytes().as_slice();
        let stored = self
            .conn
            .prepare_cached(
                "SELECT attrs, start_s, skew_ms, duration_s, offline_s, group_size, patron,
                     rx_kib, tx_kib
                 FROM sessions WHERE device = ?1 AND id = ?2",
            )?
            .query_row(params![self.device.0, id], |r| {
                let facts = SessionFacts {
                    attrs: r.get(0)?,
                    start_s: r.get(1)?,
                    duration_s: r.get(3)?,
                    offline_s: r.get(4)?,
                    group_size: r.get(5)?,
                    patron: r.get(6)?,
                    kib: r.get::<_, i64>(7)?.saturating_add(r.get(8)?),
                };
                Ok((facts, r.get::<_, i64>(2)?))
            })
            .optional()?;
        // A record the server refused (or pruned) has nothing to date.
        let Some((old, skew_ms)) = stored else {
            return Ok(());
        };
        let offset = self.offset.as_ref();
        let moved =
            dating::redate_session(&old, skew_ms, record.mono_ms, run, offset, self.received_ms);
        let Some((after, new)) = moved else {
            return Ok(());
        };
        self.update_time("sessions", id, after)?;
        let (device, library, zone) = (self.device.0, self.library, self.zone_offset_s);
        self.rollups
            .moved_session(device, library, zone, &old, &new);
        Ok(())
    }

    /// Dates a stored pc event again; whether it moved (the PC's uptime is then folded
    /// again from all its events).
    fn redate_event(
        &mut self,
        record: &dating::RunRecord,
        run: &RunDating,
    ) -> Result<bool, StoreError> {
        let id = record.id.as_bytes().as_slice();
        let stored = self
            .conn
            .prepare_cached(
                "SELECT attrs, at_s, skew_ms FROM pc_events WHERE device = ?1 AND id = ?2",
            )?
            .query_row(params![self.device.0, id], |r| {
                Ok(StoredTime {
                    attrs: r.get(0)?,
                    start_s: r.get(1)?,
                    skew_ms: r.get(2)?,
                })
            })
            .optional()?;
        let Some(before) = stored else {
            return Ok(false);
        };
        let offset = self.offset.as_ref();
        let Some(after) =
            dating::redate_event(before, record.mono_ms, run, offset, self.received_ms)
        else {
            return Ok(false);
        };
        self.update_time("pc_events", id, after)?;
        let kind = codes::event_attrs_unpack(before.attrs).0;
        let (device, zone) = (self.device.0, self.zone_offset_s);
        self.rollups
            .moved_event(device, zone, kind, before.start_s, after.start_s);
        Ok(before.start_s != after.start_s)
    }

    /// Writes a record's new stored time (`sessions` or `pc_events`).
    fn update_time(&self, table: &str, id: &[u8], time: StoredTime) -> Result<(), StoreError> {
        let at = if table == "sessions" {
            "start_s"
        } else {
            "at_s"
        };
        self.conn
            .prepare_cached(&format!(
                "UPDATE {table} SET {at} = ?3, skew_ms = ?4, attrs = ?5
                 WHERE device = ?1 AND id = ?2"
            ))?
            .execute(params![
                self.device.0,
                id,
                time.start_s,
                time.skew_ms,
                time.attrs
            ])?;
        Ok(())
    }

    fn patron(&mut self, key: &[u8; 32]) -> Result<i64, StoreError> {
        if let Some(id) = self.patrons.get(key) {
            return Ok(*id);
        }
        let existing: Option<i64> = self
            .conn
            .prepare_cached("SELECT id FROM patron_keys WHERE key = ?1")?
            .query_row([key.as_slice()], |r| r.get(0))
            .optional()?;
        let id = match existing {
            Some(id) => id,
            None => {
                let id: i64 = self
                    .conn
                    .prepare_cached(
                        "UPDATE counters SET value = value + 1 WHERE name = 'patron_key'
                         RETURNING value",
                    )?
                    .query_row([], |r| r.get(0))?;
                self.conn
                    .prepare_cached("INSERT INTO patron_keys (key, id) VALUES (?1, ?2)")?
                    .execute(params![key.as_slice(), id])?;
                id
            }
        };
        self.patrons.insert(*key, id);
        Ok(id)
    }

    fn session(&mut self, s: &PreparedSession) -> Result<(), StoreError> {
        let patron = match &s.patron {
            Some(key) => Some(self.patron(key)?),
            None => None,
        };
        let f = &s.fields;
        let dated = dating::date(
            f.raw_start_ms,
            s.mono_ms,
            f.duration_s.saturating_mul(1000),
            dating::session_doubt(f.end_reason),
            &self.run_dating(&s.run),
            self.offset.as_ref(),
            self.received_ms,
        );
        let (start_s, _) = split_ms(dated.ms);
        let skew_ms = f.raw_start_ms.saturating_sub(start_s.saturating_mul(1000));
        let attrs = codes::SessionAttrs {
            end_reason: f.end_reason,
            user_kind: f.user_kind,
            gender: f.gender,
            age_group: f.age_group,
            quality: codes::time_quality_code(dated.quality),
            client_quality: f.client_quality,
            purposes: f.purposes,
            revision: f.revision,
        }
        .pack();
        let id = s.id.as_bytes().as_slice();
        let row = params![
            id,
            self.device.0,
            attrs,
            start_s,
            skew_ms,
            f.duration_s,
            f.offline_s,
            f.group_size,
            patron,
            f.rx_kib,
            f.tx_kib
        ];
        // A session before the retention cutoff that is not stored any more must not be
        // counted again in rollups that already hold it (or that are final).
        if start_s < self.retained_from_s
            && !dating::is_undated_s(start_s)
            && !self.session_stored(id)?
        {
            return self.reject(
                s.seq,
                &s.id,
                ingest::REJECT_BEYOND_RETENTION,
                "this session is older than the server keeps records; its month's report is final"
                    .into(),
            );
        }
        // The common case is a session the server has never seen: one statement.
        let inserted = self.insert_session.execute(row)?;
        let facts = SessionFacts {
            start_s,
            duration_s: f.duration_s,
            offline_s: f.offline_s,
            attrs,
            group_size: f.group_size,
            kib: f.rx_kib.saturating_add(f.tx_kib),
            patron,
        };
        if inserted == 1 {
            self.new += 1;
            self.sessions_added += 1;
            self.rollups
                .session(self.device.0, self.library, self.zone_offset_s, &facts, 1);
            return Ok(());
        }
        let stored = self
            .conn
            .prepare_cached(
                "SELECT attrs, start_s, skew_ms, duration_s, offline_s, group_size, patron, rx_kib,
                     tx_kib
                 FROM sessions WHERE device = ?1 AND id = ?2",
            )?
            .query_row(params![self.device.0, id], |r| {
                let packed: i64 = r.get(0)?;
                let a = codes::SessionAttrs::unpack(packed);
                let old = SessionFacts {
                    start_s: r.get(1)?,
                    duration_s: r.get(3)?,
                    offline_s: r.get(4)?,
                    attrs: packed,
                    group_size: r.get(5)?,
                    kib: r.get::<_, i64>(7)?.saturating_add(r.get(8)?),
                    patron: r.get(6)?,
                };
                Ok((
                    old,
                    StoredSession {
                        patron: r.get(6)?,
                        fields: ingest::SessionFields {
                            revision: a.revision,
                            raw_start_ms: r
                                .get::<_, i64>(1)?
                                .saturating_mul(1000)
                                .saturating_add(r.get(2)?),
                            duration_s: r.get(3)?,
                            end_reason: a.end_reason,
                            user_kind: a.user_kind,
                            purposes: a.purposes,
                            gender: a.gender,
                            age_group: a.age_group,
                            group_size: r.get(5)?,
                            rx_kib: r.get(7)?,
                            tx_kib: r.get(8)?,
                            offline_s: r.get(4)?,
                            client_quality: a.client_quality,
                        },
                    },
                ))
            })?;
        let (old, stored) = stored;
        let incoming = StoredSession {
            patron,
            fields: f.clone(),
        };
        match f.revision.cmp(&stored.fields.revision) {
            std::cmp::Ordering::Greater => {
                self.conn
                    .prepare_cached(
                        "UPDATE sessions SET attrs = ?3, start_s = ?4, skew_ms = ?5,
                             duration_s = ?6, offline_s = ?7, group_size = ?8, patron = ?9,
                             rx_kib = ?10, tx_kib = ?11
                         WHERE id = ?1 AND device = ?2",
                    )?
                    .execute(row)?;
                self.new += 1;
                // The new revision replaces the old one's contribution.
                let (device, library, offset) = (self.device.0, self.library, self.zone_offset_s);
                self.rollups
                    .moved_session(device, library, offset, &old, &facts);
                Ok(())
            }
            std::cmp::Ordering::Equal if incoming == stored => {
                self.duplicates += 1;
                Ok(())
            }
            std::cmp::Ordering::Equal => self.reject(
                s.seq,
                &s.id,
                REJECT_CONFLICT,
                format!(
                    "revision {} of this session is stored with different content; the stored one is kept",
                    f.revision
                ),
            ),
            // An older revision than the one stored: already superseded, nothing to do.
            std::cmp::Ordering::Less => {
                self.duplicates += 1;
                Ok(())
            }
        }
    }

    fn session_stored(&self, id: &[u8]) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM sessions WHERE device = ?1 AND id = ?2")?
            .exists(params![self.device.0, id])?)
    }

    fn event(&mut self, e: &PreparedEvent) -> Result<(), StoreError> {
        let f = &e.fields;
        let dated = dating::date(
            f.raw_at_ms,
            e.mono_ms,
            0,
            TimeQuality::Trusted,
            &self.run_dating(&e.run),
            self.offset.as_ref(),
            self.received_ms,
        );
        let (at_s, _) = split_ms(dated.ms);
        let id = e.id.as_bytes().as_slice();
        if at_s < self.retained_from_s && !dating::is_undated_s(at_s) {
            let stored = self
                .conn
                .prepare_cached("SELECT 1 FROM pc_events WHERE device = ?1 AND id = ?2")?
                .exists(params![self.device.0, id])?;
            if !stored {
                return self.reject(
                    e.seq,
                    &e.id,
                    ingest::REJECT_BEYOND_RETENTION,
                    "this pc event is older than the server keeps records".into(),
                );
            }
        }
        let inserted = self.insert_event.execute(params![
            id,
            self.device.0,
            codes::event_attrs(f.kind, codes::time_quality_code(dated.quality)),
            at_s,
            f.raw_at_ms.saturating_sub(at_s.saturating_mul(1000)),
            f.clock_delta_ms
        ])?;
        if inserted == 1 {
            self.new += 1;
            self.events_added += 1;
            if f.kind == codes::event_kind_code(jejak_domain::PcEventKind::Boot) {
                self.rollups
                    .boot(self.device.0, self.zone_offset_s, at_s, 1);
            }
            self.new_events.push(EventPoint {
                at_s,
                id: *e.id.as_bytes(),
                kind: f.kind,
            });
            return Ok(());
        }
        let stored: ingest::EventFields = self
            .conn
            .prepare_cached(
                "SELECT attrs, at_s, skew_ms, clock_delta_ms FROM pc_events
                 WHERE device = ?1 AND id = ?2",
            )?
            .query_row(params![self.device.0, id], |r| {
                Ok(ingest::EventFields {
                    kind: codes::event_attrs_unpack(r.get(0)?).0,
                    raw_at_ms: r
                        .get::<_, i64>(1)?
                        .saturating_mul(1000)
                        .saturating_add(r.get(2)?),
                    clock_delta_ms: r.get(3)?,
                })
            })?;
        if &stored == f {
            self.duplicates += 1;
            Ok(())
        } else {
            self.reject(
                e.seq,
                &e.id,
                REJECT_CONFLICT,
                "this pc event is stored with different content; the stored one is kept".into(),
            )
        }
    }
    /// Stores a low-volume record in `entries` by the rules of `entries::decide`, and
    /// counts it. `pc` is the sending PC's code.
    fn entry(&mut self, e: &PreparedEntry, pc: &str) -> Result<(), StoreError> {
        let dated = dating::date(
            e.wall_ms,
            e.mono_ms,
            0,
            TimeQuality::Trusted,
            &self.run_dating(&e.run),
            self.offset.as_ref(),
            self.received_ms,
        );
        let (at_s, _) = split_ms(dated.ms);
        let id = e.id.as_bytes().as_slice();
        let stored = self
            .conn
            .prepare_cached(
                "SELECT e.device, d.pc, e.revision, e.wall_ms, e.fields, e.at_s
                 FROM entries e JOIN devices d ON d.id = e.device
                 WHERE e.library = ?1 AND e.kind = ?2 AND e.id = ?3",
            )?
            .query_row(params![self.library, e.kind_number, id], |r| {
                let packed: Vec<u8> = r.get(4)?;
                let (fields, texts) = entries::unpack_or_empty(&packed);
                Ok(StoredEntry {
                    device: r.get(0)?,
                    pc: r.get(1)?,
                    revision: r.get(2)?,
                    wall_ms: r.get(3)?,
                    fields,
                    texts,
                    at_s: r.get(5)?,
                })
            })
            .optional()?;
        let (library, zone) = (self.library, self.zone_offset_s);
        if stored.is_none() && entries::counts_before(&e.body, at_s, zone, self.retained_from_s) {
            return self.reject(
                e.seq,
                &e.id,
                ingest::REJECT_BEYOND_RETENTION,
                format!(
                    "this {} counts in a month older than the server keeps records; its report is final",
                    e.kind.code()
                ),
            );
        }
        let row = params![
            library,
            e.kind_number,
            id,
            self.device.0,
            e.revision,
            e.wall_ms,
            at_s,
            entries::pack_entry(&e.fields, &e.texts)
        ];
        match entries::decide(e, self.device.0, pc, stored.as_ref()) {
            Decision::Insert => {
                self.conn
                    .prepare_cached(
                        "INSERT INTO entries (library, kind, id, device, revision, wall_ms, at_s,
                             fields)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    )?
                    .execute(row)?;
                self.new += 1;
                self.rollups.entry(library, zone, &e.body, at_s, 1);
            }
            Decision::Replace => {
                if let Some(old) = stored.as_ref().and_then(|s| entries::stored_body(e, s)) {
                    let old_at_s = stored.as_ref().map_or(at_s, |s| s.at_s);
                    self.rollups.entry(library, zone, &old, old_at_s, -1);
                }
                self.conn
                    .prepare_cached(
                        "UPDATE entries SET device = ?4, revision = ?5, wall_ms = ?6, at_s = ?7,
                             fields = ?8
                         WHERE library = ?1 AND kind = ?2 AND id = ?3",
                    )?
                    .execute(row)?;
                self.new += 1;
                self.rollups.entry(library, zone, &e.body, at_s, 1);
            }
            Decision::Duplicate => self.duplicates += 1,
            Decision::Conflict(detail) => {
                return self.reject(e.seq, &e.id, REJECT_CONFLICT, detail);
            }
        }
        Ok(())
    }

    /// Records a refused record (once per change of the device's log, however often it
    /// is sent) and lists it in the answer.
    fn reject(
        &mut self,
        seq: u64,
        id: &Uuid,
        code: &str,
        detail: String,
    ) -> Result<(), StoreError> {
        let times: i64 = self
            .conn
            .prepare_cached(
                "INSERT INTO rejected (device, epoch, seq, record_id, code, detail, first_ms,
                     last_ms, times)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, 1)
                 ON CONFLICT (device, epoch, seq) DO UPDATE
                     SET record_id = excluded.record_id, code = excluded.code,
                         detail = excluded.detail, last_ms = excluded.last_ms, times = times + 1
                 RETURNING times",
            )?
            .query_row(
                params![
                    self.device.0,
                    self.epoch,
                    // Seqs were checked to fit when the batch was prepared.
                    i64::try_from(seq).unwrap_or(i64::MAX),
                    id.as_bytes().as_slice(),
                    code,
                    &detail,
                    self.received_ms
                ],
                |r| r.get(0),
            )?;
        if times == 1 {
            self.rejected_added += 1;
        }
        self.rejected.push(ingest::rejected(seq, code, detail));
        Ok(())
    }
}

/// The settings key of the retention cutoff: the month number (see `rollup.rs`) from
/// which raw records are kept.
pub(crate) const RETAINED_FROM: &str = "retained_from";

/// The month from which raw records are kept, when anything was ever pruned.
pub(crate) fn retained_from(conn: &Connection) -> Result<Option<i64>, StoreError> {
    let value: Option<String> = conn
        .prepare_cached("SELECT value FROM settings WHERE name = ?1")?
        .query_row([RETAINED_FROM], |r| r.get(0))
        .optional()?;
    value
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| StoreError::Inconsistent(format!("retention month '{v}'")))
        })
        .transpose()
}

/// The Unix time at which a month starts in a zone `offset_s` ahead of UTC.
fn month_start_s(month: i64, offset_s: i64) -> i64 {
    rollup::month_first(month).map_or(i64::MIN, |d| rollup::date_day(d) * 86_400 - offset_s)
}

/// Removes the raw sessions that ended, and the pc events that happened, before `month`
/// began in their library's zone; the rollups stay. Open sessions stay, and so does each
/// PC's latest event before the cutoff, from which the uptime fold (and a recount)
/// continues. Patron keys no kept session refers to go too. From then on, ingest
/// refuses records from before the cutoff that it does not hold
/// (`beyond-retention`), and `check-rollups` compares the months from `month` on.
pub(crate) fn prune_raw(conn: &Connection, month: i64) -> Result<(u64, u64), StoreError> {
    let mut pruned = (0u64, 0u64);
    let devices: Vec<(i64, String)> = {
        let mut stmt = conn.prepare(
            "SELECT d.id, l.timezone FROM devices d JOIN libraries l ON l.id = d.library",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (device, timezone) in devices {
        let cutoff = month_start_s(
            month,
            zone_offset(&timezone).map_err(|e| match e {
                IngestError::Store(e) => e,
                other => StoreError::Inconsistent(other.to_string()),
            })?,
        );
        // The end-reason digit is 6 while a session is open (codes.rs). Undated records
        // stay: they may be dated yet, and no month's report has counted them.
        let undated = dating::UNDATED_BEFORE_MS / 1000;
        let sessions = conn.execute(
            "DELETE FROM sessions WHERE device = ?1 AND start_s + duration_s < ?2
                 AND (attrs / 126) % 63 / 9 <> 6 AND start_s >= ?3",
            params![device, cutoff, undated],
        )?;
        let events = conn.execute(
            "DELETE FROM pc_events WHERE device = ?1 AND at_s < ?2 AND at_s >= ?3 AND id IS NOT (
                 SELECT id FROM pc_events WHERE device = ?1 AND at_s < ?2
                 ORDER BY at_s DESC, id DESC LIMIT 1)",
            params![device, cutoff, undated],
        )?;
        conn.execute(
            "UPDATE devices SET sessions = sessions - ?2, events = events - ?3 WHERE id = ?1",
            params![device, sessions as i64, events as i64],
        )?;
        pruned.0 += sessions as u64;
        pruned.1 += events as u64;
    }
    conn.execute(
        "DELETE FROM patron_keys WHERE id NOT IN (SELECT patron FROM sessions WHERE patron IS NOT NULL)",
        [],
    )?;
    let month = retained_from(conn)?.map_or(month, |m| m.max(month));
    set_setting(conn, RETAINED_FROM, Some(month.to_string()))?;
    Ok(pruned)
}

/// The offset from UTC of a library's stored zone, seconds.
fn zone_offset(timezone: &str) -> Result<i64, IngestError> {
    let zone = jejak_domain::Zone::parse(timezone).map_err(|e| {
        IngestError::Store(StoreError::Inconsistent(format!(
            "library zone '{timezone}': {e}"
        )))
    })?;
    Ok(i64::from(zone.offset().local_minus_utc()))
}

/// Continues the device's uptime fold with the events this batch added. Events arrive
/// in the PC's order, which is time order unless its clock was corrected between runs;
/// when a new event sorts before the device's latest one, the device's uptime is
/// folded again from all its events, so the rollup always equals a recount.
fn fold_new_events(
    conn: &Connection,
    device: i64,
    offset_s: i64,
    mut events: Vec<EventPoint>,
    refold: bool,
    rollups: &mut RollupDelta,
) -> Result<(), StoreError> {
    if events.is_empty() && !refold {
        return Ok(());
    }
    events.sort();
    let cursor = read_cursor(conn, device)?;
    let in_order =
        !refold && cursor.is_none_or(|c| (c.at_s, c.id) < (events[0].at_s, events[0].id));
    let cursor = if in_order {
        fold_events(rollups, device, offset_s, cursor, &events)
    } else {
        tracing::debug!(
            device,
            "pc events out of time order, or dated again: uptime folded again"
        );
        // Take the stored spans away (as a negative delta), then fold everything again.
        for (month, values) in device_day_rollups(conn, device)? {
            let first = rollup::month_first(month).ok_or_else(|| corrupt("days", month, device))?;
            for (index, day) in values.chunks(rollup::DAY_FIELDS).enumerate() {
                let stored = DayTotals::from_slice(day);
                if stored.powered_s == 0 && stored.internet_s == 0 {
                    continue;
                }
                let date = first + chrono::Duration::days(index as i64);
                let entry = rollups
                    .days
                    .entry((device, rollup::date_day(date)))
                    .or_default();
                entry.powered_s -= stored.powered_s;
                entry.internet_s -= stored.internet_s;
            }
        }
        let all = device_events(conn, device)?;
        fold_events(rollups, device, offset_s, None, &all)
    };
    if let Some(c) = cursor {
        conn.prepare_cached(
            "UPDATE devices SET event_at_s = ?2, event_id = ?3, event_kind = ?4,
                 event_link_up = ?5
             WHERE id = ?1",
        )?
        .execute(params![device, c.at_s, c.id.as_slice(), c.kind, c.link_up])?;
    }
    Ok(())
}

/// Runs as a JSON list of hex ids, for one statement over them all (`json_each`).
fn run_list<'a>(runs: impl Iterator<Item = &'a Uuid>) -> Result<String, IngestError> {
    serde_json::to_string(&runs.map(|r| hex::encode(r.as_bytes())).collect::<Vec<_>>())
        .map_err(|e| IngestError::Store(StoreError::Internal(e.to_string())))
}

/// The PC's open kept runs and the settled ones the batch's runs name.
fn kept_runs(conn: &Connection, device: i64, runs: &[Uuid]) -> Result<Vec<KeptRun>, IngestError> {
    let list = run_list(runs.iter())?;
    let mut stmt = conn
        .prepare_cached(
            "SELECT run, ordinal, open, state, records FROM kept_runs
             WHERE device = ?1
                 AND (open = 1 OR run IN (SELECT unhex(value) FROM json_each(?2)))",
        )
        .map_err(sql)?;
    let mut rows = stmt.query(params![device, list]).map_err(sql)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(sql)? {
        let run: Vec<u8> = r.get(0).map_err(sql)?;
        let state: Vec<u8> = r.get(3).map_err(sql)?;
        let records: Vec<u8> = r.get(4).map_err(sql)?;
        out.push(KeptRun::from_row(
            device,
            &run,
            r.get(1).map_err(sql)?,
            r.get::<_, i64>(2).map_err(sql)? != 0,
            &state,
            &records,
        )?);
    }
    Ok(out)
}

/// Writes what the plan keeps of the PC's runs, and forgets the rest.
fn write_kept_runs(conn: &Connection, device: i64, plan: &dating::Plan) -> Result<(), StoreError> {
    for k in &plan.keep {
        conn.prepare_cached(
            "INSERT INTO kept_runs (device, run, ordinal, open, state, records)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (device, run) DO UPDATE SET ordinal = excluded.ordinal,
                 open = excluded.open, state = excluded.state, records = excluded.records",
        )?
        .execute(params![
            device,
            k.run.as_bytes().as_slice(),
            k.ordinal,
            i64::from(k.open),
            k.state(),
            k.record_ids()
        ])?;
    }
    for run in &plan.forget {
        conn.prepare_cached("DELETE FROM kept_runs WHERE device = ?1 AND run = ?2")?
            .execute(params![device, run.as_bytes().as_slice()])?;
    }
    Ok(())
}

/// Where the device's uptime fold stands.
fn read_cursor(conn: &Connection, device: i64) -> rusqlite::Result<Option<EventCursor>> {
    conn.prepare_cached(
        "SELECT event_at_s, event_id, event_kind, event_link_up FROM devices
         WHERE id = ?1 AND event_at_s IS NOT NULL",
    )?
    .query_row([device], |r| {
        let id: Vec<u8> = r.get(1)?;
        Ok(EventCursor {
            at_s: r.get(0)?,
            id: id.try_into().unwrap_or([0; 16]),
            kind: r.get(2)?,
            link_up: r.get(3)?,
        })
    })
    .optional()
}

/// Every pc event of a device in time order (then id).
pub(crate) fn device_events(conn: &Connection, device: i64) -> rusqlite::Result<Vec<EventPoint>> {
    let mut stmt =
        conn.prepare_cached("SELECT at_s, id, attrs FROM pc_events WHERE device = ?1")?;
    let mut rows = stmt.query([device])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let id: Vec<u8> = r.get(1)?;
        out.push(EventPoint {
            at_s: r.get(0)?,
            id: id.try_into().unwrap_or([0; 16]),
            kind: codes::event_attrs_unpack(r.get(2)?).0,
        });
    }
    out.sort();
    Ok(out)
}

/// Reads a packed rollup row, `None` when there is none.
fn read_packed(
    conn: &Connection,
    sql: &str,
    month: i64,
    owner: i64,
) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(conn
        .prepare_cached(sql)?
        .query_row(params![month, owner], |r| r.get(0))
        .optional()?)
}

/// Writes a packed rollup row, or removes it when it counts nothing.
fn write_packed(
    conn: &Connection,
    table: &str,
    column: &str,
    owner_column: &str,
    (month, owner): (i64, i64),
    packed: Option<Vec<u8>>,
) -> Result<(), StoreError> {
    match packed {
        Some(bytes) => conn
            .prepare_cached(&format!(
                "INSERT INTO {table} (month, {owner_column}, {column}) VALUES (?1, ?2, ?3)
                 ON CONFLICT (month, {owner_column}) DO UPDATE SET {column} = excluded.{column}"
            ))?
            .execute(params![month, owner, bytes])?,
        None => conn
            .prepare_cached(&format!(
                "DELETE FROM {table} WHERE month = ?1 AND {owner_column} = ?2"
            ))?
            .execute(params![month, owner])?,
    };
    Ok(())
}

fn corrupt(what: &str, month: i64, owner: i64) -> StoreError {
    StoreError::Inconsistent(format!("the packed {what} of month {month}, owner {owner}"))
}

/// Adds a batch's (or a rebuild's) rollup changes to the tables: for each month of a
/// PC (days) or of a library (cells, patrons) the batch touched, one read and one
/// write of its packed row. Rows that fall to counting nothing are removed, so that a
/// patron is in a month's row exactly when it has sessions in the month.
pub(crate) fn write_rollups(conn: &Connection, delta: &RollupDelta) -> Result<(), StoreError> {
    use std::collections::BTreeMap;

    // Days, grouped by (month, device); BTreeMaps give a fixed write order.
    let mut months: BTreeMap<(i64, i64), Vec<(usize, &DayTotals)>> = BTreeMap::new();
    for ((device, day), totals) in &delta.days {
        let date = rollup::day_date(*day).ok_or_else(|| corrupt("day", 0, *device))?;
        months
            .entry((rollup::month_number(date), *device))
            .or_default()
            .push((date.day0() as usize, totals));
    }
    for ((month, device), days) in months {
        let mut values = match read_packed(
            conn,
            "SELECT days FROM day_rollups WHERE month = ?1 AND device = ?2",
            month,
            device,
        )? {
            Some(bytes) => {
                rollup::unpack_days(&bytes).ok_or_else(|| corrupt("days", month, device))?
            }
            None => Vec::new(),
        };
        values.resize(rollup::MONTH_DAYS * rollup::DAY_FIELDS, 0);
        for (index, totals) in days {
            let slot = &mut values[index * rollup::DAY_FIELDS..(index + 1) * rollup::DAY_FIELDS];
            for (value, add) in slot.iter_mut().zip(totals.to_array()) {
                *value += add;
            }
        }
        let packed = values
            .iter()
            .any(|v| *v != 0)
            .then(|| rollup::pack(&values));
        write_packed(
            conn,
            "day_rollups",
            "days",
            "device",
            (month, device),
            packed,
        )?;
    }

    // Breakdown cells, grouped by (month, library).
    // (month, library) → the cells' changes (sessions, persons).
    type CellChanges<'a> = Vec<(&'a rollup::Cell, (i64, i64))>;
    let mut cells: BTreeMap<(i64, i64), CellChanges> = BTreeMap::new();
    for (cell, counts) in &delta.cells {
        cells
            .entry((cell.month, cell.library))
            .or_default()
            .push((cell, *counts));
    }
    for ((month, library), changes) in cells {
        let mut values = match read_packed(
            conn,
            "SELECT cells FROM breakdown_rollups WHERE month = ?1 AND library = ?2",
            month,
            library,
        )? {
            Some(bytes) => {
                rollup::unpack(&bytes).ok_or_else(|| corrupt("cells", month, library))?
            }
            None => Vec::new(),
        };
        values.resize(rollup::CELL_SLOTS * 2, 0);
        for (cell, (sessions, persons)) in changes {
            let slot = rollup::cell_slot(cell).ok_or_else(|| corrupt("cell", month, library))?;
            values[slot * 2] += sessions;
            values[slot * 2 + 1] += persons;
        }
        let packed = values
            .iter()
            .any(|v| *v != 0)
            .then(|| rollup::pack(&values));
        write_packed(
            conn,
            "breakdown_rollups",
            "cells",
            "library",
            (month, library),
            packed,
        )?;
    }

    // Patrons, grouped by (month, library).
    let mut patrons: BTreeMap<(i64, i64), Vec<(i64, i64)>> = BTreeMap::new();
    for ((library, month, patron), sessions) in &delta.patrons {
        patrons
            .entry((*month, *library))
            .or_default()
            .push((*patron, *sessions));
    }
    for ((month, library), changes) in patrons {
        let mut set = match read_packed(
            conn,
            "SELECT patrons FROM patron_months WHERE month = ?1 AND library = ?2",
            month,
            library,
        )? {
            Some(bytes) => {
                rollup::unpack_patrons(&bytes).ok_or_else(|| corrupt("patrons", month, library))?
            }
            None => BTreeMap::new(),
        };
        for (patron, sessions) in changes {
            *set.entry(patron).or_default() += sessions;
        }
        set.retain(|_, sessions| *sessions != 0);
        let packed = (!set.is_empty()).then(|| rollup::pack_patrons(&set));
        write_packed(
            conn,
            "patron_months",
            "patrons",
            "library",
            (month, library),
            packed,
        )?;
    }
    write_entry_months(conn, &delta.entries)
}

/// Adds the low-volume kinds' counter changes (per library, local day and key) to their
/// packed month rows: one read and one write per library and month touched.
pub(crate) fn write_entry_months(
    conn: &Connection,
    changes: &rustc_hash::FxHashMap<(i64, i64, String), i64>,
) -> Result<(), StoreError> {
    let months = rollup::entry_month_changes(changes);
    for ((month, library), changes) in months {
        let mut counters = match read_packed(
            conn,
            "SELECT counters FROM entry_months WHERE month = ?1 AND library = ?2",
            month,
            library,
        )? {
            Some(bytes) => rollup::EntryMonth::unpack(&bytes)
                .ok_or_else(|| corrupt("entry counters", month, library))?,
            None => rollup::EntryMonth::default(),
        };
        counters.add(&changes);
        write_packed(
            conn,
            "entry_months",
            "counters",
            "library",
            (month, library),
            counters.pack(),
        )?;
    }
    Ok(())
}

/// Every day rollup of a device as stored: (month, unpacked counters).
pub(crate) fn device_day_rollups(
    conn: &Connection,
    device: i64,
) -> Result<Vec<(i64, Vec<i64>)>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT month, days FROM day_rollups WHERE device = ?1")?;
    let mut rows = stmt.query([device])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let month: i64 = r.get(0)?;
        let bytes: Vec<u8> = r.get(1)?;
        out.push((
            month,
            rollup::unpack_days(&bytes).ok_or_else(|| corrupt("days", month, device))?,
        ));
    }
    Ok(out)
}

/// A name for people (a library's, a staff member's): trimmed, 1 to 200 characters, no
/// control characters (it ends up in reports and logs).
pub(crate) fn clean_name(raw: &str) -> Result<String, EnrollError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(EnrollError::InvalidName(
            "a name must have 1 to 200 characters and no control characters".into(),
        ));
    }
    Ok(name.to_string())
}

fn library_id(conn: &Connection, code: &LibraryCode) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT id FROM libraries WHERE code = ?1")?
        .query_row([code.as_str()], |r| r.get(0))
        .optional()?)
}

fn device_id(conn: &Connection, library: i64, pc: &PcCode) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT id FROM devices WHERE library = ?1 AND pc = ?2")?
        .query_row(params![library, pc.as_str()], |r| r.get(0))
        .optional()?)
}

/// The settings key of the letterhead (JSON of `report::Letterhead`).
pub(crate) const LETTERHEAD: &str = "letterhead";

/// Sets a district setting, or removes it with `None`.
pub(crate) fn set_setting(
    conn: &Connection,
    name: &str,
    value: Option<String>,
) -> Result<(), StoreError> {
    match value {
        Some(value) => conn
            .prepare_cached(
                "INSERT INTO settings (name, value) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![name, value])?,
        None => conn
            .prepare_cached("DELETE FROM settings WHERE name = ?1")?
            .execute([name])?,
    };
    Ok(())
}

pub(crate) fn add_library(
    conn: &Connection,
    code: &LibraryCode,
    name: &str,
    timezone: Zone,
    details: &LibraryDetails,
    now_ms: i64,
) -> Result<(), EnrollError> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO libraries (code, name, timezone, created_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (code) DO NOTHING",
        )
        .and_then(|mut s| s.execute(params![code.as_str(), name, timezone.code(), now_ms]))
        .map_err(StoreError::from)?;
    if inserted == 0 {
        return Err(EnrollError::LibraryExists(code.clone()));
    }
    // In the same savepoint as the insert: a library is never seen without its details.
    write_library(conn, code, name, details)?;
    Ok(())
}

/// Changes a library's name and details (see `ServerStore::edit_library`); the writer
/// thread runs it in one savepoint, so nothing else writes between the read and the
/// write.
pub(crate) fn edit_library(
    conn: &Connection,
    code: &LibraryCode,
    name: Option<&str>,
    edit: &LibraryDetailsEdit,
) -> Result<LibraryInfo, EnrollError> {
    let Some(mut library) = super::read::libraries(conn)?
        .into_iter()
        .find(|l| &l.code == code)
    else {
        return Err(EnrollError::UnknownLibrary(code.clone()));
    };
    if let Some(name) = name {
        library.name = name.to_string();
    }
    edit.apply(&mut library.details);
    write_library(conn, code, &library.name, &library.details)?;
    Ok(library)
}

/// Writes a library's name and every detail column.
fn write_library(
    conn: &Connection,
    code: &LibraryCode,
    name: &str,
    d: &LibraryDetails,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE libraries SET name = ?2, npp = ?3, desa = ?4, kecamatan = ?5, address = ?6,
             kepala_desa = ?7, manager = ?8, manager_nip = ?9
         WHERE code = ?1",
    )?
    .execute(params![
        code.as_str(),
        name,
        d.npp,
        d.desa,
        d.kecamatan,
        d.address,
        d.kepala_desa,
        d.manager,
        d.manager_nip
    ])?;
    Ok(())
}

pub(crate) fn add_device(
    conn: &Connection,
    library: &LibraryCode,
    pc: &PcCode,
    token_hash: &[u8; 32],
    now_ms: i64,
) -> Result<DeviceId, EnrollError> {
    let Some(lib) = library_id(conn, library)? else {
        return Err(EnrollError::UnknownLibrary(library.clone()));
    };
    let id = match device_id(conn, lib, pc)? {
        Some(id) => {
            let active = conn
                .prepare_cached("SELECT 1 FROM tokens WHERE device = ?1 AND revoked_ms IS NULL")
                .and_then(|mut s| s.exists([id]))
                .map_err(StoreError::from)?;
            if active {
                return Err(EnrollError::DeviceActive {
                    library: library.clone(),
                    pc: pc.clone(),
                });
            }
            id
        }
        None => conn
            .prepare_cached(
                "INSERT INTO devices (library, pc, created_ms) VALUES (?1, ?2, ?3) RETURNING id",
            )
            .and_then(|mut s| s.query_row(params![lib, pc.as_str(), now_ms], |r| r.get(0)))
            .map_err(StoreError::from)?,
    };
    conn.prepare_cached("INSERT INTO tokens (hash, device, created_ms) VALUES (?1, ?2, ?3)")
        .and_then(|mut s| s.execute(params![token_hash.as_slice(), id, now_ms]))
        .map_err(StoreError::from)?;
    Ok(DeviceId(id))
}

pub(crate) fn revoke_device(
    conn: &Connection,
    library: &LibraryCode,
    pc: &PcCode,
    now_ms: i64,
) -> Result<DeviceId, EnrollError> {
    let unknown = || EnrollError::UnknownDevice {
        library: library.clone(),
        pc: pc.clone(),
    };
    let lib = library_id(conn, library)?.ok_or_else(unknown)?;
    let id = device_id(conn, lib, pc)?.ok_or_else(unknown)?;
    let revoked = conn
        .prepare_cached(
            "UPDATE tokens SET revoked_ms = ?2 WHERE device = ?1 AND revoked_ms IS NULL",
        )
        .and_then(|mut s| s.execute(params![id, now_ms]))
        .map_err(StoreError::from)?;
    if revoked == 0 {
        return Err(EnrollError::AlreadyRevoked {
            library: library.clone(),
            pc: pc.clone(),
        });
    }
    Ok(DeviceId(id))
}

pub(crate) fn register_device_key(
    conn: &Connection,
    token_hash: &[u8; 32],
    public_key: &[u8; 32],
    now_ms: i64,
) -> Result<KeyRegistration, StoreError> {
    let stored: Option<Option<Vec<u8>>> = conn
        .prepare_cached(
            "SELECT public_key FROM tokens
             WHERE hash = ?1 AND device IS NOT NULL AND revoked_ms IS NULL",
        )?
        .query_row([token_hash.as_slice()], |r| r.get(0))
        .optional()?;
    let (outcome, write) = key_registration(stored.as_ref().map(|k| k.as_deref()), public_key);
    if write {
        conn.prepare_cached(
            "UPDATE tokens SET public_key = ?2, key_registered_ms = ?3
             WHERE hash = ?1 AND public_key IS NULL",
        )?
        .execute(params![
            token_hash.as_slice(),
            public_key.as_slice(),
            now_ms
        ])?;
    }
    Ok(outcome)
}

pub(crate) fn add_staff(
    conn: &Connection,
    name: &str,
    token_hash: &[u8; 32],
    now_ms: i64,
) -> Result<(), EnrollError> {
    let active = conn
        .prepare_cached("SELECT 1 FROM tokens WHERE staff = ?1 AND revoked_ms IS NULL")
        .and_then(|mut s| s.exists([name]))
        .map_err(StoreError::from)?;
    if active {
        return Err(EnrollError::StaffExists(name.to_string()));
    }
    conn.prepare_cached("INSERT INTO tokens (hash, staff, created_ms) VALUES (?1, ?2, ?3)")
        .and_then(|mut s| s.execute(params![token_hash.as_slice(), name, now_ms]))
        .map_err(StoreError::from)?;
    Ok(())
}

pub(crate) fn revoke_staff(conn: &Connection, name: &str, now_ms: i64) -> Result<(), EnrollError> {
    let revoked = conn
        .prepare_cached("UPDATE tokens SET revoked_ms = ?2 WHERE staff = ?1 AND revoked_ms IS NULL")
        .and_then(|mut s| s.execute(params![name, now_ms]))
        .map_err(StoreError::from)?;
    if revoked == 0 {
        return Err(EnrollError::UnknownStaff(name.to_string()));
    }
    Ok(())
}
