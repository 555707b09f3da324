//! The library's member count of a month: members at month end and new members in the
//! month, as the librarian reads them from the (paper) member book. Library-scoped: its
//! id is a UUIDv5 of the library, the kind and the month, so the same month entered on
//! two PCs is one record ([`crate::library_scoped_supersedes`] decides which stands).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::change::RecordKind;
use crate::entry::{EntryCommon, EntryFieldError, FieldReader, scoped_id};
use crate::error::{DomainError, Field};
use crate::identity::{LibraryCode, PcCode};

/// More members than any village library has; a larger number is a typing mistake.
pub const MAX_MEMBERS: u32 = 1_000_000;
/// The months a member count may be for.
const FIRST_YEAR: i32 = 2000;
const LAST_YEAR: i32 = 2100;

/// A calendar month, written `2026-11`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct YearMonth {
    year: i32,
    month: u32,
}

impl YearMonth {
    pub fn new(year: i32, month: u32) -> Option<YearMonth> {
        ((FIRST_YEAR..=LAST_YEAR).contains(&year) && (1..=12).contains(&month))
            .then_some(YearMonth { year, month })
    }

    pub fn parse(raw: &str) -> Result<YearMonth, DomainError> {
        let bad = || DomainError::BadMonth {
            given: raw.to_string(),
        };
        let (year, month) = raw.trim().split_once('-').ok_or_else(bad)?;
        if year.len() != 4 || month.len() != 2 {
            return Err(bad());
        }
        let year = year.parse().map_err(|_| bad())?;
        let month = month.parse().map_err(|_| bad())?;
        YearMonth::new(year, month).ok_or_else(bad)
    }

    pub fn year(self) -> i32 {
        self.year
    }

    pub fn month(self) -> u32 {
        self.month
    }

    /// The month's first day.
    pub fn first_day(self) -> NaiveDate {
        // Year and month are checked on construction.
        NaiveDate::from_ymd_opt(self.year, self.month, 1).unwrap_or_default()
    }

    /// The month a day falls in.
    pub fn of(day: NaiveDate) -> Option<YearMonth> {
        YearMonth::new(day.year(), day.month())
    }

    /// `yyyymm` as one number, as the wire carries it.
    pub fn number(self) -> i64 {
        i64::from(self.year) * 100 + i64::from(self.month)
    }
}

impl fmt::Display for YearMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl FromStr for YearMonth {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        YearMonth::parse(s)
    }
}

impl TryFrom<String> for YearMonth {
    type Error = DomainError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        YearMonth::parse(&raw)
    }
}

impl From<YearMonth> for String {
    fn from(m: YearMonth) -> String {
        m.to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberCount {
    /// [`MemberCount::id_for`] of the library and the month.
    pub id: Uuid,
    /// Grows with every change of this month's count on the PC that writes it.
    pub revision: u32,
    pub library: LibraryCode,
    pub pc: PcCode,
    /// When it was entered, by the PC's clock (UTC).
    pub at: DateTime<Utc>,
    pub run_id: Uuid,
    pub mono_ms: u64,
    pub month: YearMonth,
    /// Registered members at the month's end.
    pub members: u32,
    /// Members who joined during the month.
    pub new_members: u32,
}

impl MemberCount {
    /// The id of `library`'s count for `month`: the same on every PC.
    pub fn id_for(library: &LibraryCode, month: YearMonth) -> Uuid {
        scoped_id(library, RecordKind::MemberCount, &month.to_string())
    }

    pub fn validate(&self) -> Result<(), DomainError> {
        if self.revision == 0 {
            return Err(DomainError::RevisionZero);
        }
        for (field, given) in [
            (Field::Members, self.members),
            (Field::NewMembers, self.new_members),
        ] {
            if given > MAX_MEMBERS {
                return Err(DomainError::OutOfBounds {
                    field,
                    given: i64::from(given),
                    min: 0,
                    max: i64::from(MAX_MEMBERS),
                });
            }
        }
        if self.new_members > self.members {
            return Err(DomainError::NewMembersAboveTotal {
                new_members: self.new_members,
                members: self.members,
            });
        }
        if self.id != MemberCount::id_for(&self.library, self.month) {
            return Err(DomainError::ScopedIdMismatch);
        }
        Ok(())
    }

    /// The fields as the wire and the server carry them: the month as `yyyymm`,
    /// members, new members.
    pub(crate) fn fields(&self) -> Vec<i64> {
        vec![
            self.month.number(),
            i64::from(self.members),
            i64::from(self.new_members),
        ]
    }

    pub(crate) fn from_fields(
        common: EntryCommon,
        r: &FieldReader<'_>,
    ) -> Result<MemberCount, EntryFieldError> {
        debug_assert_eq!(r.kind, RecordKind::MemberCount);
        r.exactly(3, "member_count.fields")?;
        let number = r.number(
            0,
            "member_count.month",
            i64::from(FIRST_YEAR) * 100 + 1,
            i64::from(LAST_YEAR) * 100 + 12,
        )?;
        let month = YearMonth::new((number / 100) as i32, (number % 100) as u32).ok_or(
            EntryFieldError {
                kind: RecordKind::MemberCount.code(),
                field: "member_count.month",
                value: number,
            },
        )?;
        let max = i64::from(MAX_MEMBERS);
        Ok(MemberCount {
            id: common.id,
            revision: common.revision,
            library: common.library,
            pc: common.pc,
            at: common.at,
            run_id: common.run_id,
            mono_ms: common.mono_ms,
            month,
            members: r.number(1, "member_count.members", 0, max)? as u32,
            new_members: r.number(2, "member_count.new_members", 0, max)? as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::RecordBody;
    use crate::lang::Lang;
    use chrono::TimeZone;

    fn count(library: &str, month: &str) -> MemberCount {
        let library = LibraryCode::parse(library).unwrap();
        let month = YearMonth::parse(month).unwrap();
        MemberCount {
            id: MemberCount::id_for(&library, month),
            revision: 1,
            library,
            pc: PcCode::parse("pc-01").unwrap(),
            at: Utc.with_ymd_and_hms(2026, 12, 1, 2, 0, 0).unwrap(),
            run_id: Uuid::now_v7(),
            mono_ms: 5,
            month,
            members: 120,
            new_members: 4,
        }
    }

    #[test]
    fn months_are_written_yyyy_mm() {
        assert_eq!(YearMonth::parse("2026-11").unwrap().to_string(), "2026-11");
        for bad in [
            "2026-13", "2026-1", "26-11", "november", "1999-12", "2026-00",
        ] {
            let err = YearMonth::parse(bad).unwrap_err();
            assert!(err.message(Lang::Id).contains("TTTT-BB"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_same_month_of_the_same_library_has_one_id_on_every_pc() {
        let a = count("dermaji", "2026-11");
        let mut b = count("dermaji", "2026-11");
        b.pc = PcCode::parse("pc-02").unwrap();
        assert_eq!(a.id, b.id);
        assert_eq!(a.id.get_version_num(), 5);
        assert_ne!(a.id, count("dermaji", "2026-12").id);
        assert_ne!(a.id, count("kebasen", "2026-11").id);
    }

    #[test]
    fn counts_are_bounded_and_the_id_must_match() {
        let mut m = count("dermaji", "2026-11");
        assert!(m.validate().is_ok());
        m.new_members = 121;
        assert!(matches!(
            m.validate(),
            Err(DomainError::NewMembersAboveTotal { .. })
        ));
        m.new_members = 0;
        m.members = MAX_MEMBERS + 1;
        let err = m.validate().unwrap_err();
        assert!(err.message(Lang::En).contains("number of members"), "{err}");
        m.members = 10;
        m.id = Uuid::now_v7();
        assert_eq!(m.validate(), Err(DomainError::ScopedIdMismatch));
    }

    #[test]
    fn the_generic_form_round_trips() {
        let m = count("dermaji", "2026-11");
        let body = RecordBody::MemberCount(m.clone());
        let entry = body.entry().unwrap();
        assert_eq!(entry.fields, vec![202611, 120, 4]);
        assert_eq!(
            RecordBody::from_entry(&m.library, &m.pc, &entry).unwrap(),
            body
        );
        let mut bad = entry.clone();
        bad.fields[0] = 202613;
        assert_eq!(
            RecordBody::from_entry(&m.library, &m.pc, &bad)
                .unwrap_err()
                .field,
            "member_count.month"
        );
    }
}
