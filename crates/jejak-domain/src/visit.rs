//! A desk visit: one line of the visitor book (buku tamu), for one visitor or one group.
//! Only categories, never a name. The librarian's undo is a new revision that
//! withdraws the entry, so the change log stays append-only.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::change::RecordKind;
use crate::entry::{EntryCommon, EntryFieldError, FieldReader, index_of};
use crate::error::{DomainError, Field};
use crate::identity::{LibraryCode, PcCode};
use crate::vocab::{AgeGroup, Gender, UserKind, VisitPurpose};

/// The most people one entry counts: a school class or a village meeting, not more.
pub const MAX_VISIT_PEOPLE: u32 = 500;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Visit {
    /// UUIDv7 made on the PC.
    pub id: Uuid,
    /// 1 when entered, 2 when withdrawn (the undo).
    pub revision: u32,
    pub library: LibraryCode,
    pub pc: PcCode,
    /// Wall time of the entry as the PC's clock said (UTC).
    pub at: DateTime<Utc>,
    pub run_id: Uuid,
    pub mono_ms: u64,
    pub gender: Gender,
    pub age_group: AgeGroup,
    /// One of [`UserKind::VISITORS`].
    pub user_kind: UserKind,
    pub purpose: VisitPurpose,
    /// 1 for one visitor, the group's size for a group.
    pub people: u32,
    /// The librarian took the entry back: it counts nothing.
    pub withdrawn: bool,
}

impl Visit {
    pub fn validate(&self) -> Result<(), DomainError> {
        if self.revision == 0 {
            return Err(DomainError::RevisionZero);
        }
        if !UserKind::VISITORS.contains(&self.user_kind) {
            return Err(DomainError::NotAVisitorKind {
                given: self.user_kind.code(),
            });
        }
        check_people(self.people)
    }

    /// The next revision, withdrawing this entry (the librarian's undo).
    pub fn withdrawn(&self, at: DateTime<Utc>, run_id: Uuid, mono_ms: u64) -> Visit {
        Visit {
            revision: self.revision + 1,
            withdrawn: true,
            at,
            run_id,
            mono_ms,
            ..self.clone()
        }
    }

    /// The fields as the wire and the server carry them: gender, age group, user kind
    /// and purpose as their index in the vocabulary, then people and withdrawn (0/1).
    pub(crate) fn fields(&self) -> Vec<i64> {
        vec![
            index_of(Gender::ALL, &self.gender),
            index_of(AgeGroup::ALL, &self.age_group),
            index_of(UserKind::ALL, &self.user_kind),
            index_of(VisitPurpose::ALL, &self.purpose),
            i64::from(self.people),
            i64::from(self.withdrawn),
        ]
    }

    pub(crate) fn from_fields(
        common: EntryCommon,
        r: &FieldReader<'_>,
    ) -> Result<Visit, EntryFieldError> {
        debug_assert_eq!(r.kind, RecordKind::Visit);
        r.exactly(6, "visit.fields")?;
        Ok(Visit {
            id: common.id,
            revision: common.revision,
            library: common.library,
            pc: common.pc,
            at: common.at,
            run_id: common.run_id,
            mono_ms: common.mono_ms,
            gender: r.one_of(0, "visit.gender", Gender::ALL)?,
            age_group: r.one_of(1, "visit.age_group", AgeGroup::ALL)?,
            user_kind: r.one_of(2, "visit.user_kind", UserKind::ALL)?,
            purpose: r.one_of(3, "visit.purpose", VisitPurpose::ALL)?,
            // The wire's bound is the domain's: more is not a typing mistake to keep.
            people: r.number(4, "visit.people", 1, i64::from(MAX_VISIT_PEOPLE))? as u32,
            withdrawn: r.number(5, "visit.withdrawn", 0, 1)? == 1,
        })
    }
}

/// Checks a number of visitors a person typed or a record carries.
pub fn check_people(people: u32) -> Result<(), DomainError> {
    if (1..=MAX_VISIT_PEOPLE).contains(&people) {
        Ok(())
    } else {
        Err(DomainError::OutOfBounds {
            field: Field::People,
            given: i64::from(people),
            min: 1,
            max: i64::from(MAX_VISIT_PEOPLE),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::change::RecordBody;
    use crate::lang::Lang;
    use chrono::TimeZone;

    pub(crate) fn visit() -> Visit {
        Visit {
            id: Uuid::now_v7(),
            revision: 1,
            library: LibraryCode::parse("dermaji").unwrap(),
            pc: PcCode::parse("pc-01").unwrap(),
            at: Utc.with_ymd_and_hms(2026, 11, 2, 3, 0, 0).unwrap(),
            run_id: Uuid::now_v7(),
            mono_ms: 1000,
            gender: Gender::P,
            age_group: AgeGroup::Remaja,
            user_kind: UserKind::NonAnggota,
            purpose: VisitPurpose::Membaca,
            people: 1,
            withdrawn: false,
        }
    }

    #[test]
    fn people_and_visitor_kinds_are_bounded() {
        let mut v = visit();
        assert!(v.validate().is_ok());
        v.people = 0;
        assert!(v.validate().is_err());
        v.people = MAX_VISIT_PEOPLE + 1;
        let err = v.validate().unwrap_err();
        assert!(err.message(Lang::En).contains("1 to 500"), "{err}");
        assert!(err.message(Lang::Id).contains("jumlah pengunjung"), "{err}");
        v.people = MAX_VISIT_PEOPLE;
        assert!(v.validate().is_ok());
        for kind in [UserKind::Staf, UserKind::Unknown] {
            v.user_kind = kind;
            assert!(matches!(
                v.validate(),
                Err(DomainError::NotAVisitorKind { .. })
            ));
        }
        v.user_kind = UserKind::Rombongan;
        v.revision = 0;
        assert_eq!(v.validate(), Err(DomainError::RevisionZero));
    }

    #[test]
    fn an_undo_is_the_next_revision_withdrawing_the_same_visit() {
        let v = visit();
        let undo = v.withdrawn(v.at, v.run_id, 2000);
        assert_eq!((undo.id, undo.revision, undo.withdrawn), (v.id, 2, true));
        assert_eq!(undo.purpose, v.purpose);
    }

    #[test]
    fn the_generic_form_round_trips_and_pins_its_indices() {
        let mut v = visit();
        v.purpose = VisitPurpose::KomputerInternet;
        v.people = 12;
        let body = RecordBody::Visit(v.clone());
        let entry = body.entry().unwrap();
        // Gender P, age remaja, user kind non_anggota, purpose komputer_internet: the
        // wire's indices must never move.
        assert_eq!(entry.fields, vec![1, 1, 1, 3, 12, 0]);
        let back = RecordBody::from_entry(&v.library, &v.pc, &entry).unwrap();
        assert_eq!(back, body);
        for (index, bad, field) in [
            (0, 3, "visit.gender"),
            (3, 6, "visit.purpose"),
            (4, 0, "visit.people"),
            (4, 501, "visit.people"),
            (5, 2, "visit.withdrawn"),
        ] {
            let mut e = entry.clone();
            e.fields[index] = bad;
            let err = RecordBody::from_entry(&v.library, &v.pc, &e).unwrap_err();
            assert_eq!(err.field, field);
        }
        let mut e = entry.clone();
        e.fields.push(0);
        assert_eq!(
            RecordBody::from_entry(&v.library, &v.pc, &e)
                .unwrap_err()
                .field,
            "visit.fields"
        );
    }
}
