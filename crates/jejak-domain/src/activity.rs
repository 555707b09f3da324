//! A library activity (kegiatan): a training, a socialisation (KIE), a reading group, a
//! competition… with its participants counted by gender and age group. Per PC (a
//! UUIDv7 made on the PC); editable afterwards, each edit a new revision that replaces
//! the older one, as sessions do.
//!
//! Dating: the record's wall time `at` is when it was entered, by the PC's clock, as for
//! every record; the activity counts on its own `date`, the librarian's stated day, so
//! an activity entered days later belongs to the day it was held. That date is bounded
//! against the entry time: at most tomorrow (the domain has no time zone, so up to two
//! UTC days after the entry's UTC day, which is tomorrow in every Indonesian zone) and
//! at most a year back ([`MAX_DAYS_BACK`] days), so a mistyped year is refused rather
//! than counted in a month nobody looks at.
//!
//! The free-text fields (title, partner, notes) describe the activity and its partner
//! organisation, never a patron: they are bounded, on one line, and never logged.

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, Timelike, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::change::RecordKind;
use crate::entry::{EntryCommon, EntryFieldError, FieldReader, index_of};
use crate::error::{DomainError, Field};
use crate::identity::{LibraryCode, PcCode};
use crate::vocab::{ActivityPlace, ActivityType, AgeGroup, Gender};

pub const MAX_TITLE_CHARS: usize = 120;
pub const MAX_PARTNER_CHARS: usize = 120;
pub const MAX_NOTES_CHARS: usize = 500;
/// A day: a longer activity (a three-day training) is entered once per day.
pub const MAX_DURATION_MINUTES: u32 = 1440;
/// More people of one gender and age group than a village activity gathers is a typing
/// mistake.
pub const MAX_PARTICIPANTS_PER_CELL: u32 = 1000;
/// How far back an activity's date may lie from the day it is entered.
pub const MAX_DAYS_BACK: u64 = 366;
/// How far ahead of the entry's UTC day (tomorrow in every Indonesian zone).
const MAX_DAYS_AHEAD: u64 = 2;

/// The number of participant cells: every gender × every age group.
const CELLS: usize = 21;
const _: () = assert!(Gender::ALL.len() * AgeGroup::ALL.len() == CELLS);
/// An activity's integer fields: date, start, duration, type, place, the cells.
const FIELDS: usize = 5 + CELLS;
/// Title, partner, notes.
const TEXTS: usize = 3;

/// Participants by gender × age group (the sessions' vocabularies), gender-major.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Participants(#[serde(with = "cells")] [u32; CELLS]);

/// Serde for the cells as a list (serde derives arrays up to 32 only as tuples, and a
/// list reads better in the PC's change log).
mod cells {
    use super::CELLS;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(cells: &[u32; CELLS], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(cells.iter())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u32; CELLS], D::Error> {
        let list = Vec::<u32>::deserialize(d)?;
        list.try_into()
            .map_err(|_| serde::de::Error::custom("participants: 21 counts expected"))
    }
}

impl Participants {
    fn cell(gender: Gender, age: AgeGroup) -> usize {
        index_of(Gender::ALL, &gender) as usize * AgeGroup::ALL.len()
            + index_of(AgeGroup::ALL, &age) as usize
    }

    pub fn get(&self, gender: Gender, age: AgeGroup) -> u32 {
        self.0[Participants::cell(gender, age)]
    }

    pub fn set(&mut self, gender: Gender, age: AgeGroup, count: u32) {
        self.0[Participants::cell(gender, age)] = count;
    }

    pub fn total(&self) -> u32 {
        self.0.iter().sum()
    }

    /// The non-zero cells, in vocabulary order.
    pub fn cells(&self) -> impl Iterator<Item = (Gender, AgeGroup, u32)> + '_ {
        Gender::ALL.iter().flat_map(move |&g| {
            AgeGroup::ALL
                .iter()
                .map(move |&a| (g, a, self.get(g, a)))
                .filter(|(_, _, n)| *n > 0)
        })
    }

    /// Reads what a librarian types: `L:dewasa=5,P:dewasa=7` (gender, age group and
    /// count per item, separated by commas; the same cell twice adds up). An empty
    /// text is no participants.
    pub fn parse(input: &str) -> Result<Participants, DomainError> {
        let mut out = Participants::default();
        for item in input.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let bad = || DomainError::BadCode {
                field: Field::Participants,
                given: item.to_string(),
            };
            let (cell, count) = item.split_once('=').ok_or_else(bad)?;
            let (gender, age) = cell.split_once(':').ok_or_else(bad)?;
            let gender = Gender::parse(gender)?;
            let age = AgeGroup::parse(age)?;
            let count: u32 = count.trim().parse().map_err(|_| bad())?;
            let sum = out.get(gender, age).saturating_add(count);
            out.set(gender, age, sum);
        }
        out.check()?;
        Ok(out)
    }

    /// Written back as [`Participants::parse`] reads it.
    pub fn to_text(&self) -> String {
        self.cells()
            .map(|(g, a, n)| format!("{}:{}={n}", g.code(), a.code()))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn check(&self) -> Result<(), DomainError> {
        for &given in &self.0 {
            if given > MAX_PARTICIPANTS_PER_CELL {
                return Err(DomainError::OutOfBounds {
                    field: Field::Participants,
                    given: i64::from(given),
                    min: 0,
                    max: i64::from(MAX_PARTICIPANTS_PER_CELL),
                });
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    /// UUIDv7 made on the PC.
    pub id: Uuid,
    /// 1 when entered, one more at every edit.
    pub revision: u32,
    pub library: LibraryCode,
    pub pc: PcCode,
    /// When this revision was entered, by the PC's clock (UTC).
    pub at: DateTime<Utc>,
    pub run_id: Uuid,
    pub mono_ms: u64,
    /// The day it was held (the library's local calendar): what it counts on.
    pub date: NaiveDate,
    /// Local start time, to the minute.
    pub start: NaiveTime,
    pub duration_minutes: u32,
    pub activity_type: ActivityType,
    pub title: String,
    /// The partner organisation (mitra), if any.
    pub partner: Option<String>,
    pub place: ActivityPlace,
    pub participants: Participants,
    pub notes: Option<String>,
}

impl Activity {
    pub fn validate(&self) -> Result<(), DomainError> {
        if self.revision == 0 {
            return Err(DomainError::RevisionZero);
        }
        check_date(self.date, self.at)?;
        if !(1..=MAX_DURATION_MINUTES).contains(&self.duration_minutes) {
            return Err(DomainError::OutOfBounds {
                field: Field::Duration,
                given: i64::from(self.duration_minutes),
                min: 1,
                max: i64::from(MAX_DURATION_MINUTES),
            });
        }
        if self.start.second() != 0 || self.start.nanosecond() != 0 {
            return Err(DomainError::BadTime {
                given: self.start.to_string(),
            });
        }
        check_text(Field::Title, &self.title, MAX_TITLE_CHARS)?;
        if self.title.trim().is_empty() {
            return Err(DomainError::TextMissing {
                field: Field::Title,
            });
        }
        if let Some(partner) = &self.partner {
            check_text(Field::Partner, partner, MAX_PARTNER_CHARS)?;
        }
        if let Some(notes) = &self.notes {
            check_text(Field::Notes, notes, MAX_NOTES_CHARS)?;
        }
        self.participants.check()
    }

    /// The fields as the wire and the server carry them: the date as `yyyymmdd`, the
    /// start as minutes after midnight, the duration, type and place (their index in
    /// the vocabulary), then the 21 participant counts, gender-major.
    pub(crate) fn fields(&self) -> Vec<i64> {
        let mut out = Vec::with_capacity(FIELDS);
        out.push(
            i64::from(self.date.year()) * 10_000
                + i64::from(self.date.month()) * 100
                + i64::from(self.date.day()),
        );
        out.push(i64::from(self.start.hour() * 60 + self.start.minute()));
        out.push(i64::from(self.duration_minutes));
        out.push(index_of(ActivityType::ALL, &self.activity_type));
        out.push(index_of(ActivityPlace::ALL, &self.place));
        out.extend(self.participants.0.iter().map(|&n| i64::from(n)));
        out
    }

    /// Title, partner and notes; an absent one as an empty text.
    pub(crate) fn texts(&self) -> Vec<String> {
        vec![
            self.title.clone(),
            self.partner.clone().unwrap_or_default(),
            self.notes.clone().unwrap_or_default(),
        ]
    }

    pub(crate) fn from_fields(
        common: EntryCommon,
        r: &FieldReader<'_>,
    ) -> Result<Activity, EntryFieldError> {
        debug_assert_eq!(r.kind, RecordKind::Activity);
        r.exactly_with_texts(FIELDS, TEXTS, "activity.fields")?;
        let ymd = r.number(0, "activity.date", 20000101, 21001231)?;
        let date = NaiveDate::from_ymd_opt(
            (ymd / 10_000) as i32,
            (ymd / 100 % 100) as u32,
            (ymd % 100) as u32,
        )
        .ok_or_else(|| r.error("activity.date", ymd))?;
        let minutes = r.number(1, "activity.start", 0, 24 * 60 - 1)? as u32;
        let start = NaiveTime::from_hms_opt(minutes / 60, minutes % 60, 0)
            .ok_or_else(|| r.error("activity.start", i64::from(minutes)))?;
        let mut participants = Participants::default();
        for (i, cell) in participants.0.iter_mut().enumerate() {
            *cell = r.number(
                5 + i,
                "activity.participants",
                0,
                i64::from(MAX_PARTICIPANTS_PER_CELL),
            )? as u32;
        }
        let optional = |text: String| (!text.is_empty()).then_some(text);
        Ok(Activity {
            id: common.id,
            revision: common.revision,
            library: common.library,
            pc: common.pc,
            at: common.at,
            run_id: common.run_id,
            mono_ms: common.mono_ms,
            date,
            start,
            duration_minutes: r.number(
                2,
                "activity.duration",
                1,
                i64::from(MAX_DURATION_MINUTES),
            )? as u32,
            activity_type: r.one_of(3, "activity.type", ActivityType::ALL)?,
            place: r.one_of(4, "activity.place", ActivityPlace::ALL)?,
            participants,
            title: r.text(0),
            partner: optional(r.text(1)),
            notes: optional(r.text(2)),
        })
    }
}

/// Checks a free-text field: at most `max` characters, on one line, no control
/// characters.
fn check_text(field: Field, text: &str, max: usize) -> Result<(), DomainError> {
    let given = text.chars().count();
    if given > max {
        return Err(DomainError::TextTooLong { field, given, max });
    }
    if text.chars().any(char::is_control) {
        return Err(DomainError::ControlCharacter { field });
    }
    Ok(())
}

/// Checks an activity's date against the time it is entered (see the module's
/// documentation).
fn check_date(date: NaiveDate, entered: DateTime<Utc>) -> Result<(), DomainError> {
    let day = entered.date_naive();
    let latest = day.checked_add_days(Days::new(MAX_DAYS_AHEAD));
    let earliest = day.checked_sub_days(Days::new(MAX_DAYS_BACK));
    match (earliest, latest) {
        (Some(earliest), Some(latest)) if (earliest..=latest).contains(&date) => Ok(()),
        _ => Err(DomainError::ActivityDateOutOfRange {
            date: date.to_string(),
            entered: day.to_string(),
        }),
    }
}

/// Reads a date written `YYYY-MM-DD`.
pub fn parse_date(raw: &str) -> Result<NaiveDate, DomainError> {
    NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d").map_err(|_| DomainError::BadDate {
        given: raw.to_string(),
    })
}

/// Reads a time of day written `HH:MM`.
pub fn parse_time(raw: &str) -> Result<NaiveTime, DomainError> {
    NaiveTime::parse_from_str(raw.trim(), "%H:%M").map_err(|_| DomainError::BadTime {
        given: raw.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::RecordBody;
    use crate::lang::Lang;
    use chrono::TimeZone;

    fn activity() -> Activity {
        Activity {
            id: Uuid::now_v7(),
            revision: 1,
            library: LibraryCode::parse("dermaji").unwrap(),
            pc: PcCode::parse("pc-01").unwrap(),
            at: Utc.with_ymd_and_hms(2026, 11, 16, 3, 0, 0).unwrap(),
            run_id: Uuid::now_v7(),
            mono_ms: 1000,
            date: NaiveDate::from_ymd_opt(2026, 11, 14).unwrap(),
            start: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            duration_minutes: 120,
            activity_type: ActivityType::Pelatihan,
            title: "Pelatihan membuat email".into(),
            partner: Some("Karang Taruna".into()),
            place: ActivityPlace::DiPerpustakaan,
            participants: Participants::parse("L:dewasa=5,P:dewasa=7,P:remaja=3").unwrap(),
            notes: None,
        }
    }

    #[test]
    fn participants_read_what_a_librarian_types() {
        let p = Participants::parse(" L:dewasa=5, P:dewasa=7,p:DEWASA=1,,X:lansia=0").unwrap();
        assert_eq!(p.get(Gender::L, AgeGroup::Dewasa), 5);
        assert_eq!(p.get(Gender::P, AgeGroup::Dewasa), 8);
        assert_eq!(p.total(), 13);
        assert_eq!(p.to_text(), "L:dewasa=5,P:dewasa=8");
        assert_eq!(Participants::parse(&p.to_text()).unwrap(), p);
        assert_eq!(Participants::parse("").unwrap().total(), 0);
        for bad in [
            "L:dewasa",
            "L=5",
            "Q:dewasa=1",
            "L:bayi=1",
            "L:dewasa=-1",
            "L:dewasa=x",
        ] {
            assert!(Participants::parse(bad).is_err(), "{bad}");
        }
        let err = Participants::parse("L:dewasa=1001").unwrap_err();
        assert!(err.message(Lang::En).contains("0 to 1000"), "{err}");
        assert!(err.message(Lang::Id).contains("jumlah peserta"), "{err}");
        assert!(Participants::parse("L:dewasa=1000").is_ok());
    }

    #[test]
    fn every_bound_is_checked() {
        assert_eq!(activity().validate(), Ok(()));
        let refused = |change: &dyn Fn(&mut Activity)| {
            let mut a = activity();
            change(&mut a);
            a.validate().unwrap_err()
        };
        assert_eq!(refused(&|a| a.revision = 0), DomainError::RevisionZero);
        for minutes in [0, MAX_DURATION_MINUTES + 1] {
            assert!(matches!(
                refused(&|a| a.duration_minutes = minutes),
                DomainError::OutOfBounds {
                    field: Field::Duration,
                    ..
                }
            ));
        }
        let long = |n: usize| "é".repeat(n);
        for (field, max, set) in [
            (
                Field::Title,
                MAX_TITLE_CHARS,
                &(|a: &mut Activity, t: String| a.title = t) as &dyn Fn(&mut Activity, String),
            ),
            (Field::Partner, MAX_PARTNER_CHARS, &|a, t| {
                a.partner = Some(t)
            }),
            (Field::Notes, MAX_NOTES_CHARS, &|a, t| a.notes = Some(t)),
        ] {
            // Characters are counted, not bytes: the bound itself is allowed.
            let mut a = activity();
            set(&mut a, long(max));
            assert_eq!(a.validate(), Ok(()), "{field:?}");
            let err = refused(&|a| set(a, long(max + 1)));
            assert_eq!(
                err,
                DomainError::TextTooLong {
                    field,
                    given: max + 1,
                    max
                }
            );
            assert!(err.message(Lang::Id).contains("terlalu panjang"));
            for control in ["baris\nbaru", "tab\there", "esc\u{1b}[31m"] {
                assert_eq!(
                    refused(&|a| set(a, control.into())),
                    DomainError::ControlCharacter { field }
                );
            }
        }
        assert_eq!(
            refused(&|a| a.title = "   ".into()),
            DomainError::TextMissing {
                field: Field::Title
            }
        );
        let mut crowd = Participants::default();
        crowd.set(Gender::X, AgeGroup::Unknown, MAX_PARTICIPANTS_PER_CELL + 1);
        assert!(matches!(
            refused(&|a| a.participants = crowd),
            DomainError::OutOfBounds {
                field: Field::Participants,
                ..
            }
        ));
    }

    #[test]
    fn the_date_is_bounded_against_the_entry_time() {
        let entered = activity().at.date_naive();
        let with_date = |date: NaiveDate| {
            let mut a = activity();
            a.date = date;
            a.validate()
        };
        // Tomorrow in any Indonesian zone is allowed, a year back too.
        assert!(with_date(entered + Days::new(2)).is_ok());
        assert!(with_date(entered - Days::new(MAX_DAYS_BACK)).is_ok());
        for date in [
            entered + Days::new(3),
            entered - Days::new(MAX_DAYS_BACK + 1),
            NaiveDate::from_ymd_opt(2062, 11, 14).unwrap(),
        ] {
            let err = with_date(date).unwrap_err();
            assert!(matches!(err, DomainError::ActivityDateOutOfRange { .. }));
            assert!(err.message(Lang::En).contains("at most tomorrow"), "{err}");
        }
    }

    #[test]
    fn dates_and_times_parse_or_say_how_to_write_them() {
        assert_eq!(
            parse_date("2026-11-14").unwrap(),
            NaiveDate::from_ymd_opt(2026, 11, 14).unwrap()
        );
        assert_eq!(
            parse_time("09:05").unwrap(),
            NaiveTime::from_hms_opt(9, 5, 0).unwrap()
        );
        for bad in ["14-11-2026", "2026-02-30", "kemarin"] {
            let err = parse_date(bad).unwrap_err();
            assert!(err.message(Lang::Id).contains("TTTT-BB-HH"), "{err}");
        }
        for bad in ["9", "25:00", "09:60"] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_generic_form_round_trips_and_pins_its_indices() {
        let mut a = activity();
        a.activity_type = ActivityType::SosialisasiKie;
        a.place = ActivityPlace::DiLuar;
        a.notes = Some("Di balai desa".into());
        let body = RecordBody::Activity(a.clone());
        let entry = body.entry().unwrap();
        assert_eq!(&entry.fields[..5], &[20261114, 540, 120, 1, 1]);
        // L:dewasa is cell 3, P:remaja is 7 + 1, P:dewasa is 7 + 3.
        assert_eq!(
            (
                entry.fields[5 + 3],
                entry.fields[5 + 8],
                entry.fields[5 + 10]
            ),
            (5, 3, 7)
        );
        assert_eq!(
            entry.texts,
            vec!["Pelatihan membuat email", "Karang Taruna", "Di balai desa"]
        );
        let back = RecordBody::from_entry(&a.library, &a.pc, &entry).unwrap();
        assert_eq!(back, body);
        for (index, bad, field) in [
            (0, 20260230, "activity.date"),
            (0, 19991231, "activity.date"),
            (1, 1440, "activity.start"),
            (2, 0, "activity.duration"),
            (3, 8, "activity.type"),
            (4, 2, "activity.place"),
            (9, 1001, "activity.participants"),
            (9, -1, "activity.participants"),
        ] {
            let mut e = entry.clone();
            e.fields[index] = bad;
            let err = RecordBody::from_entry(&a.library, &a.pc, &e).unwrap_err();
            assert_eq!(err.field, field);
        }
        let mut e = entry.clone();
        e.texts.pop();
        let err = RecordBody::from_entry(&a.library, &a.pc, &e).unwrap_err();
        assert_eq!(err.field, "activity.fields");
        // A visit carrying text is refused, not read with its text dropped.
        let visit = crate::visit::tests::visit();
        let mut e = RecordBody::Visit(visit.clone()).entry().unwrap();
        e.texts.push("x".into());
        assert!(RecordBody::from_entry(&visit.library, &visit.pc, &e).is_err());
    }
}
