//! The registry of reports ([`ReportKind`]) and what a report request is
//! ([`ReportRequest`]): which report, for which period, and the parsing of the periods
//! people type (`2026-10`, `2026-Q4`, `2026`).
//!
//! [`ReportKind`] is the one list of reports. `jejak report`'s subcommands, the report
//! API's routes (`/api/v1/reports/{name}`), their OpenAPI operations and the
//! dashboard's downloads are all made from it: its name, its parameters (each with an
//! example and a description) and how they make a [`ReportRequest`]. A request is then
//! built from the store's facts by the server (`jejak_server::report::load`) and one of
//! the builders of [`crate::build`].

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use jejak_domain::{LibraryCode, Zone};

use crate::Period;

/// Every report Jejak makes. Adding a variant makes the compiler point at each place a
/// report must be described ([`ReportKind::name`], its parameters, its request) and
/// built (the server's `load`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportKind {
    /// The village monthly report (Laporan Bulanan Layanan TIK) of one library.
    Village,
    /// The district monthly matrix (Rekap Bulanan Kabupaten).
    District,
    /// The quarterly comparison (Laporan Triwulan).
    Quarter,
    /// The operations view.
    Operations,
    /// The annual comparison (Laporan Tahunan).
    Year,
    /// The IPLM sheet: a year's figures per village library as the district enters them
    /// in the national library development index's data collection.
    Iplm,
    /// The detail export (Data Rinci): a month's sessions, visits and activities, a row
    /// each, pseudonymous.
    Detail,
}

/// What a report parameter holds, which decides how it is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// A month, `YYYY-MM` ([`parse_month`]).
    Month,
    /// A library's code.
    Library,
    /// A quarter, `YYYY-Qn` ([`parse_quarter`]).
    Quarter,
    /// A year, `YYYY` ([`parse_year`]).
    Year,
}

/// One parameter of a report, as the API's query and `jejak report`'s options take it
/// (`month=2026-10`, `--month 2026-10`). Every parameter of a report is required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportParam {
    /// Its name in the query and on the command line.
    pub name: &'static str,
    /// What it holds.
    pub kind: ParamKind,
    /// An example value.
    pub example: &'static str,
    /// What it is, in English (the OpenAPI document, `--help`).
    pub description: &'static str,
}

const MONTH: ReportParam = ReportParam {
    name: "month",
    kind: ParamKind::Month,
    example: "2026-10",
    description: "The month, `YYYY-MM`",
};
const LIBRARY: ReportParam = ReportParam {
    name: "library",
    kind: ParamKind::Library,
    example: "BMS-KDR",
    description: "The library's code",
};
const QUARTER: ReportParam = ReportParam {
    name: "quarter",
    kind: ParamKind::Quarter,
    example: "2026-Q4",
    description: "The quarter, `YYYY-Qn`",
};
const YEAR: ReportParam = ReportParam {
    name: "year",
    kind: ParamKind::Year,
    example: "2026",
    description: "The year, `YYYY`",
};

/// Why a report's parameters make no request. The caller words it for its audience
/// (the API's problem detail, the command line's message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// A required parameter is missing.
    #[error("parameter '{}' is required", .0.name)]
    Missing(ReportParam),
    /// A parameter's value cannot be read as what it holds.
    #[error("parameter '{}' is not valid: '{raw}'", .param.name)]
    Invalid {
        /// The parameter.
        param: ReportParam,
        /// The value given.
        raw: String,
        /// Why, when the parser says more than "not understood" (a library code's rule).
        reason: Option<String>,
    },
}

impl ReportKind {
    /// Every report, in the order `jejak report --help` and the API document list them.
    pub const ALL: [ReportKind; 7] = [
        ReportKind::Village,
        ReportKind::District,
        ReportKind::Quarter,
        ReportKind::Operations,
        ReportKind::Year,
        ReportKind::Iplm,
        ReportKind::Detail,
    ];

    /// Its name: the subcommand of `jejak report` and the last segment of its API path.
    pub fn name(self) -> &'static str {
        match self {
            ReportKind::Village => "village",
            ReportKind::District => "district",
            ReportKind::Quarter => "quarter",
            ReportKind::Operations => "ops",
            ReportKind::Year => "year",
            ReportKind::Iplm => "iplm",
            ReportKind::Detail => "detail",
        }
    }

    /// The report of a name, if there is one.
    pub fn from_name(name: &str) -> Option<ReportKind> {
        ReportKind::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// What it is, in one English sentence (the OpenAPI summary, `--help`).
    pub fn summary(self) -> &'static str {
        match self {
            ReportKind::Village => {
                "Village monthly report (Laporan Bulanan Layanan TIK) of one library."
            }
            ReportKind::District => {
                "District monthly matrix (Rekap Bulanan Kabupaten): a row per village library."
            }
            ReportKind::Quarter => {
                "Quarterly report: libraries × months, change against the previous quarter, target groups (women, youth 16–30, UMKM)."
            }
            ReportKind::Operations => {
                "Operations view: last sync per library and PC, clock offsets, sessions open for more than 12 hours, rejected records."
            }
            ReportKind::Year => {
                "Annual report: libraries × months, change against the previous year, target groups."
            }
            ReportKind::Detail => {
                "Detail export (Data Rinci): one row per public PC session, visitor-book visit and activity of a month, patrons as pseudonyms."
            }
            ReportKind::Iplm => {
                "IPLM sheet: a year's visits per day, members, activity participants (socialisation/KIE apart) and PC and internet service per village library, with the definitions."
            }
        }
    }

    /// Its parameters, in the order they are read.
    pub fn params(self) -> &'static [ReportParam] {
        match self {
            ReportKind::Village => &[MONTH, LIBRARY],
            ReportKind::District | ReportKind::Detail => &[MONTH],
            ReportKind::Quarter => &[QUARTER],
            ReportKind::Operations => &[],
            ReportKind::Year | ReportKind::Iplm => &[YEAR],
        }
    }

    /// The request its parameters make; `value` gives a parameter's raw value by name.
    /// Parameters are read in the order of [`ReportKind::params`], so the first one
    /// missing or invalid is the one reported.
    pub fn request<'v>(
        self,
        value: impl Fn(&str) -> Option<&'v str>,
    ) -> Result<ReportRequest, ParamError> {
        let raw = |param: ReportParam| value(param.name).ok_or(ParamError::Missing(param));
        Ok(match self {
            ReportKind::Village => ReportRequest::Village {
                month: read(MONTH, raw(MONTH)?, parse_month)?,
                library: read_library(raw(LIBRARY)?)?,
            },
            ReportKind::District => ReportRequest::District {
                month: read(MONTH, raw(MONTH)?, parse_month)?,
            },
            ReportKind::Quarter => {
                ReportRequest::Period(read(QUARTER, raw(QUARTER)?, parse_quarter)?)
            }
            ReportKind::Operations => ReportRequest::Operations,
            ReportKind::Year => ReportRequest::Period(read(YEAR, raw(YEAR)?, parse_year)?),
            ReportKind::Detail => ReportRequest::Detail {
                month: read(MONTH, raw(MONTH)?, parse_month)?,
            },
            ReportKind::Iplm => ReportRequest::Iplm {
                year: read(YEAR, raw(YEAR)?, parse_year_number)?,
            },
        })
    }
}

/// A parameter's value read by `parse`.
fn read<T>(
    param: ReportParam,
    raw: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T, ParamError> {
    parse(raw).ok_or_else(|| ParamError::Invalid {
        param,
        raw: raw.to_string(),
        reason: None,
    })
}

/// The library parameter's value, with the code's rule when it breaks one.
fn read_library(raw: &str) -> Result<LibraryCode, ParamError> {
    LibraryCode::parse(raw).map_err(|e| ParamError::Invalid {
        param: LIBRARY,
        raw: raw.to_string(),
        reason: Some(e.to_string()),
    })
}

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
    /// The detail export of a month.
    Detail {
        /// Any day of the month (normally the first).
        month: NaiveDate,
    },
    /// The IPLM sheet of a year.
    Iplm {
        /// The year.
        year: i32,
    },
}

impl ReportRequest {
    /// Which report it asks for.
    pub fn kind(&self) -> ReportKind {
        match self {
            ReportRequest::Village { .. } => ReportKind::Village,
            ReportRequest::District { .. } => ReportKind::District,
            ReportRequest::Period(Period::Quarter { .. }) => ReportKind::Quarter,
            ReportRequest::Period(Period::Year(_)) => ReportKind::Year,
            ReportRequest::Operations => ReportKind::Operations,
            ReportRequest::Iplm { .. } => ReportKind::Iplm,
            ReportRequest::Detail { .. } => ReportKind::Detail,
        }
    }

    /// Its parameters as [`ReportKind::request`] reads them back (`month=2026-10`), in
    /// the order of [`ReportKind::params`].
    pub fn params(&self) -> Vec<(&'static str, String)> {
        match self {
            ReportRequest::Village { month, library } => vec![
                (MONTH.name, month.format("%Y-%m").to_string()),
                (LIBRARY.name, library.to_string()),
            ],
            ReportRequest::District { month } | ReportRequest::Detail { month } => {
                vec![(MONTH.name, month.format("%Y-%m").to_string())]
            }
            ReportRequest::Period(Period::Quarter { year, quarter }) => {
                vec![(QUARTER.name, format!("{year}-Q{quarter}"))]
            }
            ReportRequest::Period(Period::Year(year)) | ReportRequest::Iplm { year } => {
                vec![(YEAR.name, year.to_string())]
            }
            ReportRequest::Operations => Vec::new(),
        }
    }

    /// The first day of the period it covers; `None` for the operations view, which is
    /// of now.
    pub fn first_day(&self) -> Option<NaiveDate> {
        match self {
            ReportRequest::Village { month, .. }
            | ReportRequest::District { month }
            | ReportRequest::Detail { month } => month.with_day(1),
            ReportRequest::Period(period) => period.months().first().copied(),
            ReportRequest::Iplm { year } => NaiveDate::from_ymd_opt(*year, 1, 1),
            ReportRequest::Operations => None,
        }
    }
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
    parse_year_number(raw).map(Period::Year)
}

/// The number of a year as people write it (`2026`), between 2000 and 2200.
fn parse_year_number(raw: &str) -> Option<i32> {
    raw.trim()
        .parse::<i32>()
        .ok()
        .filter(|year| (2000..=2200).contains(year))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_report_reads_back_the_parameters_it_declares() {
        for kind in ReportKind::ALL {
            assert_eq!(ReportKind::from_name(kind.name()), Some(kind));
            let examples: Vec<(&str, &str)> =
                kind.params().iter().map(|p| (p.name, p.example)).collect();
            let lookup = |name: &str| examples.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
            let request = kind.request(lookup).expect("the examples make a request");
            assert_eq!(request.kind(), kind);
            let names: Vec<&str> = request.params().iter().map(|(n, _)| *n).collect();
            let declared: Vec<&str> = kind.params().iter().map(|p| p.name).collect();
            assert_eq!(names, declared, "{}", kind.name());
            for missing in kind.params() {
                let without = |name: &str| lookup(name).filter(|_| name != missing.name);
                assert_eq!(
                    kind.request(without),
                    Err(ParamError::Missing(*missing)),
                    "{} without {}",
                    kind.name(),
                    missing.name
                );
            }
        }
        assert_eq!(ReportKind::from_name("nope"), None);
        assert_eq!(
            ReportKind::Village.request(|name| Some(if name == "month" {
                "2026-10"
            } else {
                "x y"
            })),
            Err(ParamError::Invalid {
                param: LIBRARY,
                raw: "x y".into(),
                reason: LibraryCode::parse("x y").err().map(|e| e.to_string()),
            })
        );
    }

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
