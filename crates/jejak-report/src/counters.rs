//! The names of the low-volume kinds' counters ([`crate::facts::EntryCountFacts`]): the
//! server's ingest writes them (`rollup::entry_counters`) and the builders read them, by
//! this one list, so a counter cannot be written under one name and read under another
//! (a report column would quietly show zeros).
//!
//! A name is a base (`visit.people`) or a base and one breakdown with its code:
//! [`by`] gives `visit.people.purpose.membaca`, [`by_gender_age`] gives
//! `visit.people.ga.P.remaja`. The codes are the vocabulary's (`jejak_domain::vocab`).

use jejak_domain::{AgeGroup, Gender};

/// Visitor-book entries (a group is one entry).
pub const VISIT_ENTRIES: &str = "visit.entries";
/// Visitor-book visitors (a group counts its size).
pub const VISIT_PEOPLE: &str = "visit.people";
/// Of the visitors, those who came for the computer or the internet (the visit rule's
/// part, per day).
pub const VISIT_PEOPLE_COMPUTER: &str = "visit.people.computer";
/// Activities held.
pub const ACTIVITIES: &str = "activity.count";
/// Their participants.
pub const PARTICIPANTS: &str = "activity.participants";
/// Registered members at the month's end, as the librarian entered them.
pub const MEMBERS: &str = "member_count.members";
/// The month's new members.
pub const NEW_MEMBERS: &str = "member_count.new";

/// Breakdown by the visitor's user kind (visits).
pub const KIND: &str = "kind";
/// Breakdown by the visit's purpose (visits).
pub const PURPOSE: &str = "purpose";
/// Breakdown by activity type (activities).
pub const TYPE: &str = "type";
/// Breakdown by where the activity was held (activities).
pub const PLACE: &str = "place";
/// Breakdown by gender and age group ([`by_gender_age`]).
const GENDER_AGE: &str = "ga";

/// The counter of `base` broken down by `breakdown` for one `code`:
/// `by(VISIT_PEOPLE, PURPOSE, "membaca")` is `visit.people.purpose.membaca`.
pub fn by(base: &str, breakdown: &str, code: &str) -> String {
    format!("{base}.{breakdown}.{code}")
}

/// The counter of `base` for one gender and age group: `visit.people.ga.P.remaja`.
pub fn by_gender_age(base: &str, gender: Gender, age: AgeGroup) -> String {
    by(
        base,
        GENDER_AGE,
        &format!("{}.{}", gender.code(), age.code()),
    )
}

/// The code of counter `key` if it is `base` broken down by `breakdown` (the inverse
/// of [`by`], without allocating): `Some("membaca")` for
/// `visit.people.purpose.membaca`, `VISIT_PEOPLE` and `PURPOSE`.
pub fn code_of<'k>(key: &'k str, base: &str, breakdown: &str) -> Option<&'k str> {
    key.strip_prefix(base)?
        .strip_prefix('.')?
        .strip_prefix(breakdown)?
        .strip_prefix('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_breakdowns_name_reads_back_its_code() {
        let key = by(VISIT_PEOPLE, PURPOSE, "membaca");
        assert_eq!(key, "visit.people.purpose.membaca");
        assert_eq!(code_of(&key, VISIT_PEOPLE, PURPOSE), Some("membaca"));
        assert_eq!(code_of(&key, VISIT_ENTRIES, PURPOSE), None);
        assert_eq!(code_of(&key, VISIT_PEOPLE, KIND), None);
        assert_eq!(code_of(VISIT_PEOPLE_COMPUTER, VISIT_PEOPLE, PURPOSE), None);
        assert_eq!(
            by_gender_age(PARTICIPANTS, Gender::P, AgeGroup::Remaja),
            "activity.participants.ga.P.remaja"
        );
    }
}
