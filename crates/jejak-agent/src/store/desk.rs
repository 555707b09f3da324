//! The librarian's desk records: visits of the visitor book (buku tamu), the undo of
//! the last one, and a month's member count. Each is one change of the log, written
//! through `Store::write` (seq, run and clock checks come with it); `entries` keeps
//! every such record's newest revision, which pruning never touches, so the undo and
//! the next revision of a month's count do not depend on changes still being held.

use jejak_domain::{
    AgeGroup, Gender, MemberCount, RecordBody, UserKind, Visit, VisitPurpose, YearMonth,
};
use rusqlite::{OptionalExtension, params};
use uuid::Uuid;

use super::{Store, StoreError, Writer, fail};

/// What the librarian says of a visitor (or a group) at the desk: categories only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VisitInput {
    pub gender: Gender,
    pub age_group: AgeGroup,
    pub user_kind: UserKind,
    pub purpose: VisitPurpose,
    /// 1, or the group's size.
    pub people: u32,
}

impl Store {
    /// Writes a visit of the visitor book. An invalid one (a group too large, a
    /// visitor kind the book does not have) writes nothing.
    pub fn add_visit(&mut self, input: VisitInput) -> Result<Visit, StoreError> {
        self.write(|w| {
            let visit = Visit {
                id: Uuid::now_v7(),
                revision: 1,
                library: w.identity.library.clone(),
                pc: w.identity.pc.clone(),
                at: w.now.wall,
                run_id: w.run.run_id,
                mono_ms: w.now.mono_ms.max(0) as u64,
                gender: input.gender,
                age_group: input.age_group,
                user_kind: input.user_kind,
                purpose: input.purpose,
                people: input.people,
                withdrawn: false,
            };
            visit.validate().map_err(|e| fail(e.into()))?;
            w.append_entry(&RecordBody::Visit(visit.clone()))?;
            Ok(visit)
        })
    }

    /// The librarian's undo: withdraws the latest visit not withdrawn yet, as its next
    /// revision (the change log stays append-only). `NothingToUndo` when there is none.
    pub fn undo_last_visit(&mut self) -> Result<Visit, StoreError> {
        self.write(|w| {
            let body: Option<String> =
                w.tx.query_row(
                    "SELECT body FROM entries WHERE record_kind = 'visit'
                         AND json_extract(body, '$.data.withdrawn') = 0
                     ORDER BY seq DESC LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(body) = body else {
                return Err(fail(StoreError::NothingToUndo));
            };
            let Ok(RecordBody::Visit(last)) = serde_json::from_str(&body) else {
                return Err(fail(StoreError::Corrupt(
                    "a visit of the visitor book cannot be read".into(),
                )));
            };
            let undo = last.withdrawn(w.now.wall, w.run.run_id, w.now.mono_ms.max(0) as u64);
            w.append_entry(&RecordBody::Visit(undo.clone()))?;
            Ok(undo)
        })
    }

    /// Sets the library's member count of `month`: its next revision when the month
    /// was set before on this PC. Invalid numbers write nothing.
    pub fn set_member_count(
        &mut self,
        month: YearMonth,
        members: u32,
        new_members: u32,
    ) -> Result<MemberCount, StoreError> {
        self.write(|w| {
            let id = MemberCount::id_for(&w.identity.library, month);
            let revision: Option<u32> =
                w.tx.query_row(
                    "SELECT revision FROM entries WHERE record_id = ?1",
                    [id.to_string()],
                    |r| r.get(0),
                )
                .optional()?;
            let count = MemberCount {
                id,
                revision: revision.unwrap_or(0) + 1,
                library: w.identity.library.clone(),
                pc: w.identity.pc.clone(),
                at: w.now.wall,
                run_id: w.run.run_id,
                mono_ms: w.now.mono_ms.max(0) as u64,
                month,
                members,
                new_members,
            };
            count.validate().map_err(|e| fail(e.into()))?;
            w.append_entry(&RecordBody::MemberCount(count.clone()))?;
            Ok(count)
        })
    }

    /// The newest revision of every desk record of `kind` (`visit`, `member_count`),
    /// latest first, at most `limit`.
    pub fn desk_records(&self, kind: &str, limit: u32) -> Result<Vec<RecordBody>, StoreError> {
        let sqlite = |e| StoreError::from_sqlite(&self.path, e);
        let mut stmt = self
            .conn
            .prepare("SELECT body FROM entries WHERE record_kind = ?1 ORDER BY seq DESC LIMIT ?2")
            .map_err(sqlite)?;
        let bodies: Vec<String> = stmt
            .query_map(params![kind, limit], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(sqlite)?;
        bodies
            .iter()
            .map(|b| {
                serde_json::from_str(b)
                    .map_err(|e| StoreError::Corrupt(format!("a desk record: {e}")))
            })
            .collect()
    }
}

impl Writer<'_> {
    /// Appends a desk record to the change log and keeps it as its record's newest
    /// revision.
    fn append_entry(&self, body: &RecordBody) -> rusqlite::Result<u64> {
        let seq = self.append(body)?;
        let json = serde_json::to_string(body)
            .map_err(|e| fail(StoreError::Corrupt(format!("cannot encode record: {e}"))))?;
        self.tx.execute(
            "INSERT INTO entries (record_id, record_kind, revision, seq, body)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (record_id) DO UPDATE SET revision = excluded.revision,
                 seq = excluded.seq, body = excluded.body",
            params![
                body.record_id().to_string(),
                body.kind_code(),
                body.revision(),
                seq as i64,
                json
            ],
        )?;
        Ok(seq)
    }
}
