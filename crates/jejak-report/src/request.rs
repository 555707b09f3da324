//! What a report request is: which report, for which period, and the parsing of the
//! periods people type (`2026-10`, `2026-Q4`, `2026`).

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use jejak_domain::{LibraryCode, Zone};

use crate::Period;

/// Which report, for which period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportRequest {
    /// The village monthly report of one library.
    Village {
        /// Any day of the month (normally the first).
        month: NaiveDate,
        /// The library.
        library: LibraryCode,
    },
    /// The district monthly matrix.
    District {
        /// Any day of the month (normally the first).
        month: NaiveDate,
    },
    /// The quarterly or annual comparison.
    Period(Period),
    /// The operations view (now).
    Operations,
}

/// "Today" for the flags that count days (silence), as a date in WIB: the district
/// office's working day, whatever zone its villages are in.
pub fn today_wib(now: DateTime<Utc>) -> NaiveDate {
    now.with_timezone(&Zone::Wib.offset()).date_naive()
}

/// A month as people write it: `2026-10` (also `2026-10-01`, any day naming the month).
pub fn parse_month(raw: &str) -> Option<NaiveDate> {
    let raw = raw.trim();
    NaiveDate::parse_from_str(&format!("{raw}-01"), "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(raw, "%Y-%m-%d"))
        .ok()
        .and_then(|d| d.with_day(1))
        .filter(|d| (2000..=2200).contains(&d.year()))
}

/// A quarter as people write it: `2026-Q4` (or `2026-q4`).
pub fn parse_quarter(raw: &str) -> Option<Period> {
    raw.trim()
        .to_ascii_uppercase()
        .split_once("-Q")
        .and_then(|(year, quarter)| Some((year.parse::<i32>().ok()?, quarter.parse::<u32>().ok()?)))
        .filter(|(year, quarter)| (1..=4).contains(quarter) && (2000..=2200).contains(year))
        .map(|(year, quarter)| Period::Quarter { year, quarter })
}

/// A year as people write it: `2026`.
pub fn parse_year(raw: &str) -> Option<Period> {
    raw.trim()
        .parse::<i32>()
        .ok()
        .filter(|year| (2000..=2200).contains(year))
        .map(Period::Year)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse_as_people_write_them() {
        assert_eq!(parse_month("2026-10"), NaiveDate::from_ymd_opt(2026, 10, 1));
        assert_eq!(
            parse_month(" 2026-10-17"),
            NaiveDate::from_ymd_opt(2026, 10, 1)
        );
        assert_eq!(parse_month("2026-13"), None);
        assert_eq!(parse_month("Oktober"), None);
        assert_eq!(parse_month("1900-01"), None);
        assert_eq!(
            parse_quarter("2026-q4"),
            Some(Period::Quarter {
                year: 2026,
                quarter: 4
            })
        );
        assert_eq!(parse_quarter("2026-Q5"), None);
        assert_eq!(parse_quarter("2026"), None);
        assert_eq!(parse_year("2026"), Some(Period::Year(2026)));
        assert_eq!(parse_year("26x"), None);
    }
}
