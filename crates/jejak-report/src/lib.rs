//! Jejak's reports, without IO: the facts a store hands over ([`MonthFacts`]), what a
//! report request is ([`ReportRequest`]), the pure builders that turn facts into a small,
//! format-neutral model ([`Report`]), and its renderers. No database and no HTTP: the
//! server reads the facts (`jejak_server::report::load`), a builder fills a [`Report`],
//! and `jejak report`, the report API or the dashboard pick a renderer.
//!
//! | Renderer | Function | Numbers |
//! |---|---|---|
//! | terminal table | [`render_terminal`] | `1.234,5` (id) / `1,234.5` (en) |
//! | CSV, one file per table | [`render_csv`], [`table_csv`] | as shown, `.` or `,` decimals ([`CsvDialect`]) |
//! | JSON (the model itself) | [`render_json`] | JSON numbers |
//! | XLSX workbook, one sheet per table | [`render_xlsx`] | real number cells with formats |
//! | printable A4 HTML page | [`render_html`] | `1.234,5` (id) / `1,234.5` (en) |
//!
//! Conventions of the model:
//!
//! - A [`ColumnKind::Percent`] cell holds a *fraction* (`0.5` is 50 %), so the XLSX
//!   `0.0%` format shows it right and JSON carries the same value; CSV writes what the
//!   report shows (`50.0` under a `%` header), rounded like every CSV number.
//! - A [`ColumnKind::Date`] cell holds an ISO date text (`2026-11-02`); XLSX writes it
//!   as a real date when it parses, and the human formats print it in the long form
//!   ("Senin, 2 November 2026", [`dates`]).
//! - Labels come in both languages ([`Text`]); [`RenderOptions::lang`] picks one.
//!   Indonesian is the default.
//! - Rows may carry a [`Flag`] (a highlighted row: a silent village, low uptime). When
//!   any row of a table is flagged, every format gains a last column "Catatan"/"Note"
//!   holding the flag's reason, so the highlight survives in CSV and black-and-white
//!   print.
//!
//! # Small-cell suppression
//!
//! [`RenderOptions::suppress_below`] `= Some(k)` is for exports that leave the office.
//! Every cell of a [`ColumnKind::Count`] column whose value is at least 1 and below `k`
//! is replaced by the text `<k` — in the terminal table, CSV, XLSX (a text cell) and
//! HTML, and also in JSON: a suppressed JSON export shows the `"<k"` strings and a
//! top-level `"suppressed_below": k`, so no format of a suppressed export carries the
//! small numbers. Zero stays `0` (an empty cell discloses no person). Total rows follow
//! the same rule. Other column kinds (hours, percentages) are not suppressed, and no
//! complementary suppression is done: a reader may still derive a small count from a
//! total minus the shown cells. Without the option nothing is altered.

#![warn(missing_docs)]

mod build;
pub mod charts;
pub mod counters;
mod csv;
pub mod dates;
pub mod facts;
pub mod glossary;
pub mod html;
mod model;
mod number;
mod request;
mod terminal;
mod xlsx;

#[cfg(test)]
mod tests;

pub use build::{
    CLOCK_WARNING_MS, DetailFacts, LOW_UPTIME, OpsRow, Period, SessionDetail, detail_export,
    district_monthly, iplm_sheet, month_text, operations_report, period_report,
    sheets_not_named_in_full, village_monthly,
};
pub use csv::{
    CsvDialect, CsvFile, UTF8_BOM, UnknownCsvDialect, render_csv, render_csv_combined, table_csv,
};
pub use facts::{
    Breakdown, BreakdownFacts, DayFacts, DayVisits, EntryCountFacts, FactsDetail, LibraryFacts,
    LostRange, MAX_SILENCE_MS, MonthFacts, PcFacts, VISITS_RULE, library_day_visits,
    library_visits, month_count, month_members, service_days, visits_of_day,
};
pub use html::render_html;
pub use model::{
    Cell, Column, ColumnKind, Flag, Letterhead, Logo, Report, Row, Severity, Signatory, Signature,
    Table, Text,
};
pub use number::format_number;
pub use request::{
    ParamError, ParamKind, ReportKind, ReportParam, ReportRequest, parse_month, parse_quarter,
    parse_year, today_wib,
};
pub use terminal::render_terminal;
pub use xlsx::render_xlsx;

use jejak_domain::Lang;

/// How a report is rendered: the language of labels and human numbers, and the
/// optional small-cell suppression (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RenderOptions {
    /// Language of labels and of the number style in human formats.
    pub lang: Lang,
    /// Counts `1..k` are shown as the text `<k` in every format.
    pub suppress_below: Option<u32>,
    /// How CSV separates fields and writes decimals.
    pub csv_dialect: CsvDialect,
}

impl RenderOptions {
    /// Options for a language, without suppression.
    pub fn new(lang: Lang) -> Self {
        RenderOptions {
            lang,
            suppress_below: None,
            csv_dialect: CsvDialect::Standard,
        }
    }

    /// The same options with CSV in `dialect`.
    pub fn with_csv_dialect(mut self, dialect: CsvDialect) -> Self {
        self.csv_dialect = dialect;
        self
    }

    /// The same options with small-cell suppression below `k`.
    pub fn suppressing_below(mut self, k: u32) -> Self {
        self.suppress_below = Some(k);
        self
    }
}

/// The errors of rendering. Only the XLSX writer can fail.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The XLSX writer refused the workbook.
    #[error("XLSX: {0}")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
    /// The model could not be serialised.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// The report as JSON: the model itself, numbers as JSON numbers. With suppression the
/// suppressed counts are `"<k"` strings and `suppressed_below` is set.
pub fn render_json(report: &Report, options: &RenderOptions) -> Result<String, RenderError> {
    let shown = report.for_export(options);
    Ok(serde_json::to_string_pretty(shown.as_ref())?)
}
