//! The terminal table.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, ContentArrangement, Table as Grid};

use super::model::{generated_text, human_cell};
use super::{RenderOptions, Report};

/// The report as terminal text: title and subtitle lines, then each table (comfy-table,
/// UTF-8 borders, numbers in the chosen language's style, numeric columns
/// right-aligned). No colours, so it reads the same when piped: a total row's first
/// cell starts with `Σ`, a flagged row's with `!` and its reason fills the note column.
/// The letterhead is left out (it belongs to paper); the signature block follows the
/// tables as plain lines.
pub fn render_terminal(report: &Report, options: &RenderOptions) -> String {
    let lang = options.lang;
    let report = report.for_export(options);
    let mut out = String::new();
    out.push_str(report.title.get(lang));
    out.push('\n');
    for line in &report.subtitle {
        out.push_str(line.get(lang));
        out.push('\n');
    }
    for table in &report.sections {
        out.push('\n');
        out.push_str(table.title.get(lang));
        out.push('\n');
        let flags = table.has_flags();
        let mut grid = Grid::new();
        grid.load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_header(table.header(lang));
        for row in &table.rows {
            let mut cells: Vec<String> = table
                .columns
                .iter()
                .zip(&row.cells)
                .map(|(column, cell)| human_cell(cell, column.kind, lang))
                .collect();
            if row.is_total
                && let Some(first) = cells.first_mut()
            {
                *first = format!("Σ {first}");
            }
            if flags {
                match &row.emphasis {
                    Some(flag) => {
                        if let Some(first) = cells.first_mut() {
                            *first = format!("! {first}");
                        }
                        cells.push(flag.reason.get(lang).to_string());
                    }
                    None => cells.push(String::new()),
                }
            }
            grid.add_row(cells);
        }
        for (index, column) in table.columns.iter().enumerate() {
            if column.kind.is_numeric()
                && let Some(grid_column) = grid.column_mut(index)
            {
                grid_column.set_cell_alignment(CellAlignment::Right);
            }
        }
        out.push_str(&grid.to_string());
        out.push('\n');
        for note in &table.notes {
            out.push_str(note.get(lang));
            out.push('\n');
        }
    }
    if let Some(signature) = &report.signature {
        out.push('\n');
        for line in signature.lines(lang) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    if let Some(note) = report.suppression_note(lang) {
        out.push('\n');
        out.push_str(&note);
        out.push('\n');
    }
    out.push_str(&format!(
        "\n{} {}\n",
        lang.pick("Dibuat", "Generated"),
        generated_text(&report.generated_at, lang)
    ));
    out
}
