//! The librarian's desk records: visits of the visitor book (buku tamu), the undo of
//! the last one, a month's member count, and the library's activities (kegiatan) with
//! their edits. Each is one change of the log, written
//! through `Store::write` (seq, run and clock checks come with it); `entries` keeps
//! every such record's newest revision, which pruning never touches, so the undo and
//! the next revision of a month's count do not depend on changes still being held.

use chrono::{NaiveDate, NaiveTime};
use jejak_domain::{
    Activity, ActivityPlace, ActivityType, AgeGroup, Gender, MemberCount, Participants, RecordBody,
    UserKind, Visit, VisitPurpose, YearMonth,
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

/// What the librarian says of an activity: everything but the record's own identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityInput {
    pub date: NaiveDate,
    pub start: NaiveTime,
    pub duration_minutes: u32,
    pub activity_type: ActivityType,
    pub title: String,
    pub partner: Option<String>,
    pub place: ActivityPlace,
    pub participants: Participants,
    pub notes: Option<String>,
}

impl ActivityInput {
    /// What an activity says, to change some of it for an edit.
    pub fn of(activity: &Activity) -> ActivityInput {
        ActivityInput {
            date: activity.date,
            start: activity.start,
            duration_minutes: activity.duration_minutes,
            activity_type: activity.activity_type,
            title: activity.title.clone(),
            partner: activity.partner.clone(),
            place: activity.place,
            participants: activity.participants,
            notes: activity.notes.clone(),
        }
    }
}

/// The short form of an id that `jejak activity list` shows and `edit` takes: its last
/// eight hex digits (a UUIDv7's first ones are its time, shared by ids made together).
pub fn short_id(id: &Uuid) -> String {
    let hex = id.simple().to_string();
    hex[hex.len() - 8..].to_string()
}

impl Store {
    /// Writes a new activity. An invalid one (a bound, a control character, a date too
    /// far from today) writes nothing.
    pub fn add_activity(&mut self, input: ActivityInput) -> Result<Activity, StoreError> {
        self.write(|w| {
            let activity = w.activity(Uuid::now_v7(), 1, input);
            activity.validate().map_err(|e| fail(e.into()))?;
            w.append_entry(&RecordBody::Activity(activity.clone()))?;
            Ok(activity)
        })
    }

    /// Edits the activity whose id (or its short form, [`short_id`]) is `id`: `change`
    /// gets what it says now and the result is written as its next revision. Nothing is
    /// written when the id names no activity or the result is invalid.
    pub fn edit_activity(
        &mut self,
        id: &str,
        change: impl FnOnce(&mut ActivityInput),
    ) -> Result<Activity, StoreError> {
        let found = self.find_activity(id)?;
        self.write(|w| {
            // Read again inside the write, so that an edit made meanwhile by another
            // process is the one this edit follows (never two edits at one revision).
            let body: String = w.tx.query_row(
                "SELECT body FROM entries WHERE record_id = ?1",
                [found.id.to_string()],
                |r| r.get(0),
            )?;
            let Ok(RecordBody::Activity(current)) = serde_json::from_str(&body) else {
                return Err(fail(StoreError::Corrupt(
                    "an activity cannot be read".into(),
                )));
            };
            let mut input = ActivityInput::of(&current);
            change(&mut input);
            let activity = w.activity(current.id, current.revision + 1, input);
            activity.validate().map_err(|e| fail(e.into()))?;
            w.append_entry(&RecordBody::Activity(activity.clone()))?;
            Ok(activity)
        })
    }

    /// The newest revision of the activity `id` names (the full id, or a unique
    /// ending of its hex digits such as the short form).
    pub fn find_activity(&self, id: &str) -> Result<Activity, StoreError> {
        let wanted = id.trim().to_lowercase().replace('-', "");
        let not_found = || StoreError::NoSuchActivity {
            given: id.to_string(),
        };
        if wanted.len() < 4 || !wanted.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(not_found());
        }
        let matching: Vec<Activity> = self
            .desk_records("activity", u32::MAX)?
            .into_iter()
            .filter_map(|r| match r {
                RecordBody::Activity(a) if a.id.simple().to_string().ends_with(&wanted) => Some(a),
                _ => None,
            })
            .collect();
        match <[Activity; 1]>::try_from(matching) {
            Ok([activity]) => Ok(activity),
            Err(matching) if matching.is_empty() => Err(not_found()),
            Err(_) => Err(StoreError::AmbiguousActivity {
                given: id.to_string(),
            }),
        }
    }

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
    /// `input` as revision `revision` of activity `id`, entered now.
    fn activity(&self, id: Uuid, revision: u32, input: ActivityInput) -> Activity {
        Activity {
            id,
            revision,
            library: self.identity.library.clone(),
            pc: self.identity.pc.clone(),
            at: self.now.wall,
            run_id: self.run.run_id,
            mono_ms: self.now.mono_ms.max(0) as u64,
            date: input.date,
            start: input.start,
            duration_minutes: input.duration_minutes,
            activity_type: input.activity_type,
            title: input.title,
            partner: input.partner,
            place: input.place,
            participants: input.participants,
            notes: input.notes,
        }
    }

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
