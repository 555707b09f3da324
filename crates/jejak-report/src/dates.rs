//! Dates as Indonesian offices write them: "Senin, 2 November 2026" (English: "Monday,
//! 2 November 2026"), the day without a leading zero, the month and the day of the week
//! in words. Every human format (terminal, printable HTML, the dashboard) prints a date
//! so; CSV and JSON keep the ISO date (`2026-11-02`) machines read, and XLSX holds a
//! real date shown in the long form in the reader's locale.

use chrono::{Datelike, NaiveDate, Weekday};
use jejak_domain::Lang;

/// The name of the month of `date`; the names live in `Lang` so the PC's pages share them.
pub fn month_name(date: NaiveDate, lang: Lang) -> &'static str {
    lang.month_name(date.month())
}

/// The name of a day of the week.
pub fn weekday_name(day: Weekday, lang: Lang) -> &'static str {
    match day {
        Weekday::Mon => lang.pick("Senin", "Monday"),
        Weekday::Tue => lang.pick("Selasa", "Tuesday"),
        Weekday::Wed => lang.pick("Rabu", "Wednesday"),
        Weekday::Thu => lang.pick("Kamis", "Thursday"),
        Weekday::Fri => lang.pick("Jumat", "Friday"),
        Weekday::Sat => lang.pick("Sabtu", "Saturday"),
        Weekday::Sun => lang.pick("Minggu", "Sunday"),
    }
}

/// A date without its day of the week: "2 November 2026".
pub fn day_month_year(date: NaiveDate, lang: Lang) -> String {
    format!("{} {} {}", date.day(), month_name(date, lang), date.year())
}

/// A date in the long form: "Senin, 2 November 2026" / "Monday, 2 November 2026".
pub fn long_date(date: NaiveDate, lang: Lang) -> String {
    format!(
        "{}, {}",
        weekday_name(date.weekday(), lang),
        day_month_year(date, lang)
    )
}

/// The XLSX number format that shows a date in the long form, in the language's locale
/// (LCID 0421 Indonesian, 0409 English US), whatever the reader's own locale.
pub(crate) fn xlsx_long_date_format(lang: Lang) -> &'static str {
    lang.pick("[$-421]dddd, d mmmm yyyy", "[$-409]dddd, d mmmm yyyy")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn every_weekday_is_named_in_both_languages() {
        // 2 to 8 November 2026 run from Monday to Sunday.
        let expected = [
            ("Senin, 2 November 2026", "Monday, 2 November 2026"),
            ("Selasa, 3 November 2026", "Tuesday, 3 November 2026"),
            ("Rabu, 4 November 2026", "Wednesday, 4 November 2026"),
            ("Kamis, 5 November 2026", "Thursday, 5 November 2026"),
            ("Jumat, 6 November 2026", "Friday, 6 November 2026"),
            ("Sabtu, 7 November 2026", "Saturday, 7 November 2026"),
            ("Minggu, 8 November 2026", "Sunday, 8 November 2026"),
        ];
        for (offset, (id, en)) in expected.iter().enumerate() {
            let date = day(2026, 11, 2 + offset as u32);
            assert_eq!(long_date(date, Lang::Id), *id);
            assert_eq!(long_date(date, Lang::En), *en);
        }
    }

    #[test]
    fn every_month_is_named_in_both_languages_and_the_day_has_no_leading_zero() {
        let id = [
            "Kamis, 1 Januari 2026",
            "Minggu, 1 Februari 2026",
            "Minggu, 1 Maret 2026",
            "Rabu, 1 April 2026",
            "Jumat, 1 Mei 2026",
            "Senin, 1 Juni 2026",
            "Rabu, 1 Juli 2026",
            "Sabtu, 1 Agustus 2026",
            "Selasa, 1 September 2026",
            "Kamis, 1 Oktober 2026",
            "Minggu, 1 November 2026",
            "Selasa, 1 Desember 2026",
        ];
        let en = [
            "Thursday, 1 January 2026",
            "Sunday, 1 February 2026",
            "Sunday, 1 March 2026",
            "Wednesday, 1 April 2026",
            "Friday, 1 May 2026",
            "Monday, 1 June 2026",
            "Wednesday, 1 July 2026",
            "Saturday, 1 August 2026",
            "Tuesday, 1 September 2026",
            "Thursday, 1 October 2026",
            "Sunday, 1 November 2026",
            "Tuesday, 1 December 2026",
        ];
        for month in 1..=12u32 {
            let date = day(2026, month, 1);
            assert_eq!(long_date(date, Lang::Id), id[month as usize - 1]);
            assert_eq!(long_date(date, Lang::En), en[month as usize - 1]);
        }
        assert_eq!(
            day_month_year(day(2026, 12, 31), Lang::Id),
            "31 Desember 2026"
        );
        assert_eq!(
            long_date(day(2024, 2, 29), Lang::Id),
            "Kamis, 29 Februari 2024"
        );
    }
}
