//! XLSX: one sheet per table.
//!
//! Each sheet starts with the letterhead lines (merged across the table's width,
//! centered, the first bold), the report title (bold, larger), the subtitle lines and
//! the table title (a line longer than the table is wide wraps inside its width, in a
//! row tall enough for it, so printing cuts nothing off), then a blank row, the header
//! row (bold on a blue-grey fill, frozen and repeated on printed pages), and the rows.
//! Numbers are real number cells with formats (`#,##0`, `#,##0.0`, `0.0%`) wherever
//! they are, the identity sheet's included; Excel shows them in the reader's own locale,
//! so an Indonesian Excel shows `1.234,5`. Suppressed counts are text cells (`<5`). The
//! cells of a date column that are ISO dates are real dates. Sheets are
//! named by their table's title, or by a short form chosen for titles longer than
//! Excel's 31 characters (`build::sheet_title`). Total rows are bold with a top border;
//! flagged rows are filled (alert light red, warning light yellow) and carry their
//! reason in a last "Catatan"/"Note" column. Sheets print A4, fitted to one page wide,
//! landscape when the report says so. The letterhead logo is not placed in XLSX. Date
//! cells show the long form ("Senin, 2 November 2026") through a number format in the
//! report's language, and the signature block, when there is one, follows the last
//! sheet's table as plain lines.

use std::collections::HashSet;

use rust_xlsxwriter::{
    ExcelDateTime, Format, FormatAlign, FormatBorder, FormatPattern, Workbook, Worksheet,
};

use chrono::Datelike;

use super::model::{Cell, generated_text, human_cell};
use super::{ColumnKind, RenderError, RenderOptions, Report, Severity, Table};

const HEADER_FILL: u32 = 0xD9E1F2;
const ALERT_FILL: u32 = 0xF8CBAD;
const WARNING_FILL: u32 = 0xFFF2CC;
/// Excel's paper size code for A4.
const PAPER_A4: u8 = 9;

/// The report as an XLSX workbook's bytes (suppression applied).
pub fn render_xlsx(report: &Report, options: &RenderOptions) -> Result<Vec<u8>, RenderError> {
    let lang = options.lang;
    let report = report.for_export(options);
    let mut workbook = Workbook::new();
    let mut used = HashSet::new();
    for (index, table) in report.sections.iter().enumerate() {
        let title = super::build::sheet_title(table).unwrap_or_else(|| table.title.clone());
        let name = sheet_name(title.get(lang), &table.id, &mut used);
        let sheet = workbook.add_worksheet();
        sheet.set_name(name)?;
        let last = index + 1 == report.sections.len();
        write_sheet(sheet, &report, table, last, options)?;
    }
    if report.sections.is_empty() {
        // A workbook needs a sheet; an empty report still says what it is.
        let sheet = workbook.add_worksheet();
        sheet.write_string_with_format(0, 0, report.title.get(lang), &title_format())?;
    }
    Ok(workbook.save_to_buffer()?)
}

fn write_sheet(
    sheet: &mut Worksheet,
    report: &Report,
    table: &Table,
    last: bool,
    options: &RenderOptions,
) -> Result<(), RenderError> {
    let lang = options.lang;
    let flags = table.has_flags();
    let width = (table.columns.len() + usize::from(flags)).max(1);
    let last_col = u16::try_from(width - 1).unwrap_or(u16::MAX);
    let header = table.header(lang);

    // The columns' widths first: the lines above the table wrap within them.
    let mut widths: Vec<usize> = header
        .iter()
        .map(|label| label.chars().count().min(24))
        .collect();
    for data in &table.rows {
        for (col, (column, cell)) in table.columns.iter().zip(&data.cells).enumerate() {
            let shown = human_cell(cell, column.kind, lang).chars().count();
            if let Some(w) = widths.get_mut(col) {
                *w = (*w).max(shown);
            }
        }
        if flags && let Some(w) = widths.last_mut() {
            let reason = data.emphasis.as_ref().map(|f| f.reason.get(lang));
            *w = (*w).max(reason.map_or(0, |r| r.chars().count()));
        }
    }
    let widths: Vec<f64> = widths
        .iter()
        .map(|w| {
            #[allow(clippy::cast_precision_loss)]
            let w = *w as f64;
            (w + 2.0).clamp(8.0, 50.0)
        })
        .collect();
    for (col, w) in widths.iter().enumerate() {
        sheet.set_column_width(col_num(col), *w)?;
    }
    let span: f64 = widths.iter().sum();

    let mut row: u32 = 0;
    let mut top_lines: Vec<(String, Format)> = Vec::new();
    for (i, line) in report.letterhead.lines.iter().enumerate() {
        let format = Format::new().set_align(FormatAlign::Center);
        let format = if i == 0 {
            format.set_bold().set_font_size(13)
        } else {
            format
        };
        top_lines.push((line.clone(), format));
    }
    top_lines.push((
        report.title.get(lang).to_string(),
        title_format().set_align(FormatAlign::Center),
    ));
    for line in &report.subtitle {
        top_lines.push((
            line.get(lang).to_string(),
            Format::new().set_align(FormatAlign::Center),
        ));
    }
    top_lines.push((
        table.title.get(lang).to_string(),
        Format::new().set_bold().set_align(FormatAlign::Center),
    ));
    if let Some(note) = report.suppression_note(lang) {
        top_lines.push((note, Format::new().set_italic()));
    }
    for (text, format) in &top_lines {
        // A line longer than the table is wide (the village report's note on how it
        // counts) wraps inside the table's width, in a row made tall enough for it, so
        // a printed page shows all of it instead of cutting it off on both sides.
        let lines = wrapped_lines(text, span);
        let format = if lines > 1 {
            sheet.set_row_height(row, LINE_HEIGHT * f64::from(lines))?;
            format.clone().set_text_wrap().set_align(FormatAlign::Top)
        } else {
            format.clone()
        };
        if last_col > 0 {
            sheet.merge_range(row, 0, row, last_col, text, &format)?;
        } else {
            sheet.write_string_with_format(row, 0, text, &format)?;
        }
        row += 1;
    }
    row += 1; // a blank row before the header

    let header_row = row;
    let header_format = Format::new()
        .set_bold()
        .set_text_wrap()
        .set_align(FormatAlign::Center)
        .set_align(FormatAlign::VerticalCenter)
        .set_pattern(FormatPattern::Solid)
        .set_background_color(HEADER_FILL)
        .set_border(FormatBorder::Thin);
    for (col, label) in header.iter().enumerate() {
        sheet.write_string_with_format(header_row, col_num(col), label, &header_format)?;
    }
    sheet.set_freeze_panes(header_row + 1, 0)?;
    sheet.set_repeat_rows(header_row, header_row)?;

    for data in &table.rows {
        row += 1;
        for (col, (column, cell)) in table.columns.iter().zip(&data.cells).enumerate() {
            let format = cell_format(column.kind, data.is_total, data.emphasis.as_ref());
            let c = col_num(col);
            match cell {
                Cell::Number(n) => {
                    sheet.write_number_with_format(row, c, *n, &format)?;
                }
                Cell::Text(text) if column.kind == ColumnKind::Date => match iso_date(text) {
                    Some(date) => {
                        sheet.write_datetime_with_format(
                            row,
                            c,
                            &date,
                            &format.set_num_format(super::dates::xlsx_long_date_format(lang)),
                        )?;
                    }
                    None => {
                        sheet.write_string_with_format(row, c, text, &format)?;
                    }
                },
                Cell::Text(text) => {
                    let format = if column.kind.is_numeric() {
                        format.set_align(FormatAlign::Right)
                    } else {
                        format
                    };
                    sheet.write_string_with_format(row, c, text, &format)?;
                }
                Cell::Empty => {
                    sheet.write_blank(row, c, &format)?;
                }
            }
        }
        if flags {
            let reason = data
                .emphasis
                .as_ref()
                .map(|flag| flag.reason.get(lang).to_string())
                .unwrap_or_default();
            let format = cell_format(ColumnKind::Text, data.is_total, data.emphasis.as_ref());
            let c = col_num(table.columns.len());
            sheet.write_string_with_format(row, c, &reason, &format)?;
        }
    }
    // The table's notes (how its figures are counted) under it, after a blank row, so
    // that a filter or a sum over the table's rows leaves them out.
    if !table.notes.is_empty() {
        row += 1;
        for note in &table.notes {
            row += 1;
            sheet.write_string(row, 0, note.get(lang))?;
        }
    }
    if last && let Some(signature) = &report.signature {
        // The signature block closes the workbook as plain lines under the last table.
        row += 1;
        for line in signature.lines(lang) {
            row += 1;
            sheet.write_string(row, 0, &line)?;
        }
    }
    row += 2;
    sheet.write_string_with_format(
        row,
        0,
        format!(
            "{} {}",
            lang.pick("Dibuat", "Generated"),
            generated_text(&report.generated_at, lang)
        ),
        &Format::new().set_italic().set_font_size(9),
    )?;

    sheet.set_paper_size(PAPER_A4);
    if report.landscape {
        sheet.set_landscape();
    }
    sheet.set_print_fit_to_pages(1, 0);
    Ok(())
}

/// A row's height per line of text, in points (Calibri 11's default is 15).
const LINE_HEIGHT: f64 = 15.0;

/// How many lines `text` takes wrapped in a merged range `span` characters wide (Excel's
/// column widths count characters of the default font): breaking at spaces, with a
/// little room for wider letters, bold and larger fonts.
fn wrapped_lines(text: &str, span: f64) -> u32 {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let room = ((span * 0.9).floor() as usize).max(10);
    let mut lines = 1u32;
    let mut used = 0usize;
    for word in text.split_whitespace() {
        let length = word.chars().count();
        if used > 0 && used + 1 + length > room {
            lines += 1;
            used = length;
        } else {
            used += length + usize::from(used > 0);
        }
    }
    lines
}

/// A cell text that is exactly an ISO date (`2026-10-31`), as a spreadsheet date.
fn iso_date(text: &str) -> Option<ExcelDateTime> {
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    if text.len() != 10 {
        return None;
    }
    ExcelDateTime::from_ymd(
        u16::try_from(date.year()).ok()?,
        u8::try_from(date.month()).ok()?,
        u8::try_from(date.day()).ok()?,
    )
    .ok()
}

fn title_format() -> Format {
    Format::new().set_bold().set_font_size(14)
}

fn cell_format(kind: ColumnKind, is_total: bool, flag: Option<&super::Flag>) -> Format {
    let mut format = Format::new().set_border(FormatBorder::Hair);
    format = match kind {
        ColumnKind::Count => format.set_num_format("#,##0"),
        ColumnKind::Decimal(places) => format.set_num_format(decimal_format(places)),
        ColumnKind::Percent(places) => {
            format.set_num_format(format!("{}%", decimal_pattern("0", places)))
        }
        ColumnKind::Text | ColumnKind::Date => format,
    };
    if is_total {
        format = format.set_bold().set_border_top(FormatBorder::Medium);
    }
    if let Some(flag) = flag {
        let fill = match flag.severity {
            Severity::Alert => ALERT_FILL,
            Severity::Warning => WARNING_FILL,
        };
        format = format
            .set_pattern(FormatPattern::Solid)
            .set_background_color(fill);
    }
    format
}

fn decimal_format(places: u8) -> String {
    decimal_pattern("#,##0", places)
}

fn decimal_pattern(whole: &str, places: u8) -> String {
    if places == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{}", "0".repeat(usize::from(places)))
    }
}

fn col_num(col: usize) -> u16 {
    u16::try_from(col).unwrap_or(u16::MAX)
}

/// A sheet name Excel accepts: no `[]:*?/\`, no leading or trailing apostrophe, at most
/// 31 characters, not empty, unique in the workbook (case-insensitively; a clash gets
/// ` (2)`, ` (3)` … within the 31 characters).
pub(crate) fn sheet_name(title: &str, fallback: &str, used: &mut HashSet<String>) -> String {
    let cleaned: String = title
        .chars()
        .map(|c| if "[]:*?/\\".contains(c) { ' ' } else { c })
        .collect();
    let mut base: String = cleaned
        .trim()
        .trim_matches('\'')
        .trim()
        .chars()
        .take(31)
        .collect();
    if base.is_empty() {
        base = fallback.chars().take(31).collect();
    }
    if base.is_empty() {
        base = "Sheet".to_string();
    }
    let base = base.trim_end().to_string();
    let mut candidate = base.clone();
    let mut n = 2;
    while used.contains(&candidate.to_lowercase()) {
        let suffix = format!(" ({n})");
        let keep = 31 - suffix.chars().count();
        candidate = format!(
            "{}{suffix}",
            base.chars().take(keep).collect::<String>().trim_end()
        );
        n += 1;
    }
    used.insert(candidate.to_lowercase());
    candidate
}
