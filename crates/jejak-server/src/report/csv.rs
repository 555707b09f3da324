//! CSV: one file per table.
//!
//! The tables of a report have different columns, so each becomes its own RFC 4180
//! file (CRLF line ends, fields quoted when they hold a comma, quote, CR or LF, quotes
//! doubled), named `<report id>-<table id>.csv`. The first row holds the labels in the
//! chosen language. Numbers are the model's values exactly, as in JSON and the XLSX
//! cells (`1234.5`: `.` decimals, no grouping, no rounding to the column's places —
//! report builders round what should be rounded), percentages are fractions as in the
//! model (`0.5`), dates ISO. Total rows are
//! ordinary rows; flagged rows carry their reason in a last "Catatan"/"Note" column.
//! No byte-order mark is written.

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
    let mut out = String::new();
    write_record(&mut out, table.header(lang).iter().map(String::as_str));
    let flags = table.has_flags();
    for row in &table.rows {
        let mut fields: Vec<String> = table
            .columns
            .iter()
            .zip(&row.cells)
            .map(|(_, cell)| plain_cell(cell))
            .collect();
        if flags {
            fields.push(
                row.emphasis
                    .as_ref()
                    .map(|flag| flag.reason.get(lang).to_string())
                    .unwrap_or_default(),
            );
        }
        write_record(&mut out, fields.iter().map(String::as_str));
    }
    out
}

fn plain_cell(cell: &Cell) -> String {
    match cell {
        Cell::Text(text) => text.clone(),
        Cell::Empty => String::new(),
        Cell::Number(n) => plain_number(*n),
    }
}

fn write_record<'a>(out: &mut String, fields: impl Iterator<Item = &'a str>) {
    for (i, field) in fields.enumerate() {
        if i > 0 {
            out.push(',');
        }
        if field.contains([',', '"', '\r', '\n']) {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(field);
        }
    }
    out.push_str("\r\n");
}
