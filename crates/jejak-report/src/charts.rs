//! Charts as inline SVG for the dashboard, drawn from a report's own table cells, so a
//! chart always shows the numbers of the table beside it.
//!
//! Every chart is accessible without colour or scripts: `role="img"` with a `<title>`
//! and a `<desc>` that reads the data out, a text label with the number on each bar,
//! and a `<title>` on each bar for a tooltip. Coordinates are rounded to one decimal to
//! keep pages small for slow office PCs. Each chart is an askama template
//! (`templates/charts/`) filled with the coordinates computed here, so its
//! labels are escaped like every other text of the dashboard.

use askama::Template;
use jejak_domain::{Lang, VisitPurpose};

use crate::{Cell, Report, Row, Table, format_number};

/// The colours of the three genders (L/M, P/F, X), dark enough to print in grey.
const GENDER_COLOURS: [&str; 3] = ["#2f5597", "#c55a11", "#7f7f7f"];
/// The colour of single-series bars.
const BAR_COLOUR: &str = "#2f5597";

/// One bar: its label and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// What the bar stands for (a day, a purpose).
    pub label: String,
    /// Its value, never negative.
    pub value: f64,
}

/// One row of a stacked bar chart: a label and its three gender values (L, P, X).
#[derive(Debug, Clone, PartialEq)]
pub struct Stack {
    /// What the row stands for (an age group).
    pub label: String,
    /// The values of L, P and X.
    pub values: [f64; 3],
}

/// A chart ready for the page: the visible caption and the SVG (whose `<title>` says
/// the same for screen readers).
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// The caption shown above the chart.
    pub caption: String,
    /// The `<svg>` element.
    pub svg: String,
}

/// A title with the total of its bars, as the daily chart's caption and `<title>` read.
fn with_total(title: &str, total: f64, lang: Lang) -> String {
    format!(
        "{title} ({} {})",
        lang.pick("jumlah", "total"),
        n(total, lang)
    )
}

/// A number as the chart labels show it: whole, in the language's style.
fn n(value: f64, lang: Lang) -> String {
    format_number(value, 0, lang)
}

/// A coordinate, rounded to one decimal (and without `.0`), to keep the SVG small.
fn c(value: f64) -> String {
    let rounded = (value * 10.0).round() / 10.0;
    if rounded.fract() == 0.0 {
        format!("{rounded:.0}")
    } else {
        format!("{rounded:.1}")
    }
}

/// What every chart's `<svg>` opens with: its size, and a title and description that
/// read the data out (`templates/charts/open.html`).
#[derive(Debug)]
struct SvgHead {
    id: String,
    width: String,
    height: String,
    title: String,
    desc: String,
}

impl SvgHead {
    fn new(id: &str, width: f64, height: f64, title: String, desc: String) -> SvgHead {
        SvgHead {
            id: id.to_string(),
            width: c(width),
            height: c(height),
            title,
            desc,
        }
    }
}

/// Renders a chart's template; rendering into a String fails only if a value's
/// `Display` does, which none of these do.
fn render(template: &impl Template) -> String {
    template.render().unwrap_or_default()
}

/// The largest value, at least 1 so an empty chart still draws its axis.
fn scale_max(values: impl Iterator<Item = f64>) -> f64 {
    values.fold(1.0_f64, f64::max)
}

/// The bars' values read out, for the chart's description.
fn read_out(bars: &[Bar], lang: Lang) -> String {
    bars.iter()
        .map(|b| format!("{}: {}", b.label, n(b.value, lang)))
        .collect::<Vec<_>>()
        .join("; ")
}

#[derive(Template)]
#[template(path = "charts/vertical.html")]
struct Vertical {
    head: SvgHead,
    axis: Axis,
    colour: &'static str,
    label_y: String,
    bars: Vec<VerticalBar>,
}

#[derive(Debug)]
struct Axis {
    left: String,
    right: String,
    base: String,
    top: String,
    label_x: String,
    zero_y: String,
    max_y: String,
    max: String,
}

#[derive(Debug)]
struct VerticalBar {
    value: f64,
    x: String,
    y: String,
    width: String,
    height: String,
    label: String,
    shown: String,
    middle: String,
    show_value: bool,
    value_y: String,
}

/// A vertical bar chart (sessions per day): one bar per entry, its number above it
/// when not zero, the labels under the axis.
pub fn vertical_bars(id: &str, title: &str, bars: &[Bar], lang: Lang) -> String {
    let (width, height) = (720.0, 210.0);
    let (left, right, top, bottom) = (34.0, 8.0, 16.0, 24.0);
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let max = scale_max(bars.iter().map(|b| b.value));
    let total: f64 = bars.iter().map(|b| b.value).sum();
    let base = top + plot_h;
    let slot = plot_w / bars.len().max(1) as f64;
    let bar_w = (slot * 0.7).max(1.0);
    render(&Vertical {
        head: SvgHead::new(
            id,
            width,
            height,
            with_total(title, total, lang),
            read_out(bars, lang),
        ),
        axis: Axis {
            left: c(left),
            right: c(width - right),
            base: c(base),
            top: c(top),
            label_x: c(left - 4.0),
            zero_y: c(base + 4.0),
            max_y: c(top + 4.0),
            max: n(max, lang),
        },
        colour: BAR_COLOUR,
        label_y: c(base + 14.0),
        bars: bars
            .iter()
            .enumerate()
            .map(|(i, bar)| {
                let h = bar.value.max(0.0) / max * plot_h;
                let x = left + slot * i as f64 + (slot - bar_w) / 2.0;
                VerticalBar {
                    value: bar.value,
                    x: c(x),
                    y: c(base - h),
                    width: c(bar_w),
                    height: c(h),
                    label: bar.label.clone(),
                    shown: n(bar.value, lang),
                    middle: c(left + slot * (i as f64 + 0.5)),
                    show_value: bar.value > 0.0,
                    value_y: c(base - h - 3.0),
                }
            })
            .collect(),
    })
}

#[derive(Template)]
#[template(path = "charts/horizontal.html")]
struct Horizontal {
    head: SvgHead,
    colour: &'static str,
    label_x: String,
    bar_x: String,
    bar_height: String,
    bars: Vec<HorizontalBar>,
}

#[derive(Debug)]
struct HorizontalBar {
    value: f64,
    /// The whole label, read in the bar's tooltip.
    label: String,
    /// The label as drawn left of the bar, shortened to fit (see [`fit_label`]).
    short: String,
    shown: String,
    y: String,
    text_y: String,
    width: String,
    value_x: String,
}

/// The most characters a horizontal bar's label shows: what fits in its 170 pixels at
/// the charts' 11-pixel font. A longer label (a library's full name) is cut with "…"
/// rather than running off the chart's left edge; the bar's tooltip and the chart's
/// description keep it whole.
const LABEL_CHARS: usize = 26;

/// A label cut to [`LABEL_CHARS`] characters, ending with "…" when it was cut.
fn fit_label(label: &str) -> String {
    if label.chars().count() <= LABEL_CHARS {
        return label.to_string();
    }
    let mut short: String = label.chars().take(LABEL_CHARS - 1).collect();
    short.truncate(short.trim_end().len());
    short.push('…');
    short
}

/// A horizontal bar chart (purposes): one row per entry, its label on the left and its
/// number after the bar.
pub fn horizontal_bars(id: &str, title: &str, bars: &[Bar], lang: Lang) -> String {
    horizontal_bars_with(id, title, bars, 0, lang)
}

/// A horizontal bar chart whose numbers are written with `decimals` decimals, for
/// values that are not counts (visits per day served).
pub fn horizontal_bars_with(
    id: &str,
    title: &str,
    bars: &[Bar],
    decimals: u8,
    lang: Lang,
) -> String {
    let shown = |value: f64| format_number(value, decimals, lang);
    let read_out = bars
        .iter()
        .map(|b| format!("{}: {}", b.label, shown(b.value)))
        .collect::<Vec<_>>()
        .join("; ");
    let (label_w, bar_area, row_h, top) = (170.0, 470.0, 22.0, 6.0);
    let width = label_w + bar_area + 70.0;
    let height = top * 2.0 + row_h * bars.len() as f64;
    let max = scale_max(bars.iter().map(|b| b.value));
    render(&Horizontal {
        head: SvgHead::new(id, width, height, title.to_string(), read_out),
        colour: BAR_COLOUR,
        label_x: c(label_w - 6.0),
        bar_x: c(label_w),
        bar_height: c(row_h - 6.0),
        bars: bars
            .iter()
            .enumerate()
            .map(|(i, bar)| {
                let y = top + row_h * i as f64;
                let w = bar.value.max(0.0) / max * bar_area;
                HorizontalBar {
                    value: bar.value,
                    label: bar.label.clone(),
                    short: fit_label(&bar.label),
                    shown: shown(bar.value),
                    y: c(y + 3.0),
                    text_y: c(y + row_h * 0.65),
                    width: c(w),
                    value_x: c(label_w + w + 4.0),
                }
            })
            .collect(),
    })
}

#[derive(Template)]
#[template(path = "charts/stacked.html")]
struct Stacked {
    head: SvgHead,
    legend: Vec<LegendEntry>,
    label_x: String,
    bar_height: String,
    rows: Vec<StackRow>,
}

#[derive(Debug)]
struct LegendEntry {
    x: String,
    text_x: String,
    colour: &'static str,
    name: String,
}

#[derive(Debug)]
struct StackRow {
    label: String,
    y: String,
    text_y: String,
    segments: Vec<Segment>,
    total_x: String,
    total: String,
}

#[derive(Debug)]
struct Segment {
    value: f64,
    x: String,
    width: String,
    colour: &'static str,
    name: String,
    shown: String,
    /// Where the number goes inside the segment, when it fits.
    inside_x: Option<String>,
}

/// A stacked horizontal bar chart by gender (age groups): a legend, one row per entry
/// with an L, P and X segment (its number inside when it fits) and the row's total
/// after the bar.
pub fn stacked_bars(
    id: &str,
    title: &str,
    series: &[String; 3],
    stacks: &[Stack],
    lang: Lang,
) -> String {
    let (label_w, bar_area, row_h, top) = (170.0, 470.0, 22.0, 26.0);
    let width = label_w + bar_area + 70.0;
    let height = top + 6.0 + row_h * stacks.len() as f64;
    let max = scale_max(stacks.iter().map(|s| s.values.iter().sum()));
    let desc = stacks
        .iter()
        .map(|s| {
            format!(
                "{}: {} {}, {} {}, {} {}",
                s.label,
                series[0],
                n(s.values[0], lang),
                series[1],
                n(s.values[1], lang),
                series[2],
                n(s.values[2], lang)
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let legend = series
        .iter()
        .zip(GENDER_COLOURS)
        .enumerate()
        .map(|(i, (name, colour))| {
            let x = label_w + 150.0 * i as f64;
            LegendEntry {
                x: c(x),
                text_x: c(x + 16.0),
                colour,
                name: name.clone(),
            }
        })
        .collect();
    let rows = stacks
        .iter()
        .enumerate()
        .map(|(i, stack)| {
            let y = top + row_h * i as f64;
            let mut x = label_w;
            let mut segments = Vec::new();
            for ((value, colour), name) in stack.values.iter().zip(GENDER_COLOURS).zip(series) {
                let w = value.max(0.0) / max * bar_area;
                if w <= 0.0 {
                    continue;
                }
                let shown = n(*value, lang);
                // A number inside its segment only where it fits; the total always shows.
                let fits = w >= 8.0 * shown.len() as f64 + 4.0;
                segments.push(Segment {
                    value: *value,
                    x: c(x),
                    width: c(w),
                    colour,
                    name: name.clone(),
                    inside_x: fits.then(|| c(x + w / 2.0)),
                    shown,
                });
                x += w;
            }
            StackRow {
                label: stack.label.clone(),
                y: c(y + 3.0),
                text_y: c(y + row_h * 0.65),
                segments,
                total_x: c(x + 4.0),
                total: n(stack.values.iter().sum(), lang),
            }
        })
        .collect();
    render(&Stacked {
        head: SvgHead::new(id, width, height, title.to_string(), desc),
        legend,
        label_x: c(label_w - 6.0),
        bar_height: c(row_h - 6.0),
        rows,
    })
}

/// The number in a cell (suppressed or empty cells count as zero in a chart).
fn number(cell: Option<&Cell>) -> f64 {
    match cell {
        Some(Cell::Number(v)) if v.is_finite() => *v,
        _ => 0.0,
    }
}

/// The text in a cell.
fn text(cell: Option<&Cell>) -> String {
    match cell {
        Some(Cell::Text(t)) => t.clone(),
        Some(Cell::Number(v)) => v.to_string(),
        _ => String::new(),
    }
}

/// The index of a column by key.
fn column(table: &Table, key: &str) -> Option<usize> {
    table.columns.iter().position(|col| col.key == key)
}

/// A table of the report by id.
fn table<'a>(report: &'a Report, id: &str) -> Option<&'a Table> {
    report.sections.iter().find(|t| t.id == id)
}

/// Sessions per day of the village report's daily calendar (`daily`): one bar per day
/// of the month, labelled with the day of the month.
pub fn daily_chart(report: &Report, lang: Lang) -> Option<Chart> {
    let daily = table(report, "daily")?;
    let (day, sessions) = (column(daily, "day")?, column(daily, "sessions")?);
    let bars: Vec<Bar> = daily
        .rows
        .iter()
        .filter(|row| !row.is_total)
        .map(|row| {
            let date = text(row.cells.get(day));
            // "2026-10-07" is labelled "7".
            let label = date
                .rsplit('-')
                .next()
                .map(|d| d.trim_start_matches('0').to_string())
                .unwrap_or(date);
            Bar {
                label,
                value: number(row.cells.get(sessions)),
            }
        })
        .collect();
    let title = lang.pick("Sesi per hari", "Sessions per day");
    Some(Chart {
        caption: with_total(title, bars.iter().map(|b| b.value).sum(), lang),
        svg: vertical_bars("chart-daily", title, &bars, lang),
    })
}

/// Sessions per purpose, from the purpose × gender table's `total` column.
pub fn purpose_chart(report: &Report, lang: Lang) -> Option<Chart> {
    let purposes = table(report, "purpose_by_gender")?;
    let total = column(purposes, "total")?;
    let bars: Vec<Bar> = purposes
        .rows
        .iter()
        .filter(|row| !row.is_total)
        .map(|row| Bar {
            label: text(row.cells.first()),
            value: number(row.cells.get(total)),
        })
        .collect();
    let title = lang.pick(
        "Tujuan penggunaan (sesi; satu sesi dapat punya beberapa tujuan)",
        "Purposes (sessions; a session may name several)",
    );
    Some(Chart {
        caption: title.to_string(),
        svg: horizontal_bars("chart-purposes", title, &bars, lang),
    })
}

/// Sessions per age group stacked by gender, from the age × gender table.
pub fn age_gender_chart(report: &Report, lang: Lang) -> Option<Chart> {
    let ages = table(report, "age_by_gender")?;
    let columns = [column(ages, "l")?, column(ages, "p")?, column(ages, "x")?];
    let stacks: Vec<Stack> = ages
        .rows
        .iter()
        .filter(|row| !row.is_total)
        .map(|row| Stack {
            label: text(row.cells.first()),
            values: columns.map(|i| number(row.cells.get(i))),
        })
        .collect();
    let series = columns.map(|i| {
        ages.columns
            .get(i)
            .map(|col| col.label.get(lang).to_string())
            .unwrap_or_default()
    });
    let series = [
        format!("{} ({})", series[0], lang.pick("laki-laki", "male")),
        format!("{} ({})", series[1], lang.pick("perempuan", "female")),
        format!(
            "{} ({})",
            series[2],
            lang.pick("tidak disebut", "not stated")
        ),
    ];
    let title = lang.pick(
        "Kelompok umur × jenis kelamin (sesi)",
        "Age group × gender (sessions)",
    );
    Some(Chart {
        caption: title.to_string(),
        svg: stacked_bars("chart-age-gender", title, &series, &stacks, lang),
    })
}

/// The rows of a table that has a row per library (the district matrix's services
/// table, the IPLM sheet): those with a library code, which leaves out the kecamatan
/// subtotals, the total and the note under them.
fn library_rows(table: &Table) -> Option<impl Iterator<Item = &Row>> {
    let code = column(table, "code")?;
    Some(
        table
            .rows
            .iter()
            .filter(move |row| !row.is_total && !text(row.cells.get(code)).is_empty()),
    )
}

/// One bar per library of table `table_id`, valued by its column `key` and labelled
/// with the library's name; its numbers written with `decimals` decimals.
fn per_library(
    report: &Report,
    table_id: &str,
    key: &str,
    chart_id: &str,
    title: &str,
    decimals: u8,
    lang: Lang,
) -> Option<Chart> {
    let table = table(report, table_id)?;
    let (name, value) = (column(table, "library")?, column(table, key)?);
    let bars: Vec<Bar> = library_rows(table)?
        .map(|row| Bar {
            label: text(row.cells.get(name)),
            value: number(row.cells.get(value)),
        })
        .collect();
    Some(Chart {
        caption: title.to_string(),
        svg: horizontal_bars_with(chart_id, title, &bars, decimals, lang),
    })
}

/// Visits per library, from the district matrix's services table (`services`).
pub fn visits_by_library_chart(report: &Report, lang: Lang) -> Option<Chart> {
    per_library(
        report,
        "services",
        "visits",
        "chart-visits",
        lang.pick("Kunjungan per perpustakaan", "Visits per library"),
        0,
        lang,
    )
}

/// The visitor book's people by purpose over the whole district: the `purpose_*`
/// columns of the services table's last total row (the district's).
pub fn district_purposes_chart(report: &Report, lang: Lang) -> Option<Chart> {
    let services = table(report, "services")?;
    let total = services.rows.iter().rev().find(|row| row.is_total)?;
    let bars: Vec<Bar> = VisitPurpose::ALL
        .iter()
        .filter_map(|purpose| {
            let index = column(services, &format!("purpose_{}", purpose.code()))?;
            Some(Bar {
                label: purpose.label(lang).to_string(),
                value: number(total.cells.get(index)),
            })
        })
        .collect();
    let title = lang.pick(
        "Tujuan kunjungan menurut buku tamu, seluruh kabupaten (orang)",
        "Visit purposes in the visitor book, whole district (people)",
    );
    Some(Chart {
        caption: title.to_string(),
        svg: horizontal_bars("chart-visit-purposes", title, &bars, lang),
    })
}

/// Activities per library, from the services table.
pub fn activities_by_library_chart(report: &Report, lang: Lang) -> Option<Chart> {
    per_library(
        report,
        "services",
        "activities",
        "chart-activities",
        lang.pick("Kegiatan per perpustakaan", "Activities per library"),
        0,
        lang,
    )
}

/// Activity participants per library, from the services table.
pub fn participants_by_library_chart(report: &Report, lang: Lang) -> Option<Chart> {
    per_library(
        report,
        "services",
        "participants",
        "chart-participants",
        lang.pick(
            "Peserta kegiatan per perpustakaan",
            "Activity participants per library",
        ),
        0,
        lang,
    )
}

/// Visits per day served per library over the year, from the IPLM sheet (`iplm`).
pub fn iplm_visits_per_day_chart(report: &Report, lang: Lang) -> Option<Chart> {
    per_library(
        report,
        "iplm",
        "visits_per_day",
        "chart-visits-per-day",
        lang.pick(
            "Kunjungan per hari layanan per perpustakaan",
            "Visits per day served per library",
        ),
        1,
        lang,
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The `(data-value, height)` of every `rect class="bar"` in the SVG.
    fn bar_heights(svg: &str, attribute: &str) -> Vec<(f64, f64)> {
        svg.split("<rect class=\"bar\"")
            .skip(1)
            .map(|rest| {
                let attr = |name: &str| -> f64 {
                    let start = rest.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
                    let end = start + rest[start..].find('"').unwrap();
                    rest[start..end].parse().unwrap()
                };
                (attr("data-value"), attr(attribute))
            })
            .collect()
    }

    #[test]
    fn vertical_bars_are_proportional_to_the_data() {
        let bars: Vec<Bar> = [0.0, 5.0, 10.0, 20.0]
            .iter()
            .enumerate()
            .map(|(i, v)| Bar {
                label: (i + 1).to_string(),
                value: *v,
            })
            .collect();
        let svg = vertical_bars("c", "Sesi per hari", &bars, Lang::Id);
        let heights = bar_heights(&svg, "height");
        assert_eq!(heights.len(), 4);
        let full = heights[3].1;
        assert!(full > 100.0);
        for (value, height) in heights {
            assert!(
                (height - value / 20.0 * full).abs() <= 0.1,
                "{value} {height}"
            );
        }
        assert!(svg.contains("<title id=\"c-t\">Sesi per hari (jumlah 35)</title>"));
        assert!(svg.contains("role=\"img\""));
        assert!(svg.contains(">20</text>"), "the value labels are written");
    }

    #[test]
    fn horizontal_bars_are_proportional_and_numbers_use_the_language() {
        let bars = vec![
            Bar {
                label: "Pendidikan".into(),
                value: 1_500.0,
            },
            Bar {
                label: "Hobi".into(),
                value: 750.0,
            },
        ];
        let svg = horizontal_bars("p", "Tujuan", &bars, Lang::Id);
        let widths = bar_heights(&svg, "width");
        assert_eq!(widths, vec![(1_500.0, 470.0), (750.0, 235.0)]);
        assert!(svg.contains(">1.500</text>"), "id-ID grouping");
        let english = horizontal_bars("p", "Purposes", &bars, Lang::En);
        assert!(english.contains(">1,500</text>"));
    }

    #[test]
    fn stacked_segments_add_up_to_the_row_total() {
        let stacks = vec![
            Stack {
                label: "Pemuda".into(),
                values: [30.0, 10.0, 0.0],
            },
            Stack {
                label: "Lansia".into(),
                values: [5.0, 5.0, 10.0],
            },
        ];
        let series = ["L".to_string(), "P".to_string(), "X".to_string()];
        let svg = stacked_bars("a", "Umur", &series, &stacks, Lang::Id);
        // Two segments in the first row (X is zero), three in the second.
        assert_eq!(svg.matches("<rect class=\"seg\"").count(), 5);
        assert!(svg.contains(">40</text>") && svg.contains(">20</text>"));
        assert!(svg.contains("Pemuda: L 30, P 10, X 0"));
    }

    /// A report with a services table as the district matrix has it: two libraries of
    /// a kecamatan, its subtotal, the total and the rule's note row.
    fn services_report() -> Report {
        use crate::{Column, ColumnKind, Letterhead, Text};
        let count = |key: &str| Column::new(key, Text::new(key, key), ColumnKind::Count);
        let mut columns = vec![
            Column::new(
                "library",
                Text::new("Perpustakaan", "Library"),
                ColumnKind::Text,
            ),
            Column::new("code", Text::new("Kode", "Code"), ColumnKind::Text),
            count("visits"),
        ];
        columns.extend(
            VisitPurpose::ALL
                .iter()
                .map(|p| count(&format!("purpose_{}", p.code()))),
        );
        columns.push(count("participants"));
        let row = |name: &str, code: &str, visits: f64, total: bool| {
            let mut cells = vec![Cell::text(name), Cell::text(code), Cell::number(visits)];
            cells.extend((0..VisitPurpose::ALL.len()).map(|i| Cell::number(visits + i as f64)));
            cells.push(Cell::number(visits * 2.0));
            if total {
                Row::total(cells)
            } else {
                Row::new(cells)
            }
        };
        let mut note = vec![Cell::text("Kunjungan dihitung ...")];
        note.resize(columns.len(), Cell::Empty);
        Report {
            id: "r".into(),
            title: Text::new("R", "R"),
            subtitle: Vec::new(),
            letterhead: Letterhead::default(),
            sections: vec![Table {
                id: "services".into(),
                title: Text::new("Layanan", "Services"),
                columns,
                rows: vec![
                    row(
                        "Perpustakaan Desa Karangsari Kidul Wetan",
                        "karangsari",
                        13.0,
                        false,
                    ),
                    row("Dermaji", "dermaji", 4.0, false),
                    row("Jumlah Kecamatan Lumbir", "", 17.0, true),
                    row("Jumlah", "", 17.0, true),
                    Row::new(note),
                ],
                notes: Vec::new(),
            }],
            generated_at: chrono::DateTime::UNIX_EPOCH.fixed_offset(),
            landscape: true,
            suppressed_below: None,
            signature: None,
        }
    }

    #[test]
    fn library_charts_have_a_bar_per_library_and_no_total_or_note() {
        let report = services_report();
        let chart = visits_by_library_chart(&report, Lang::Id).unwrap();
        assert_eq!(bar_heights(&chart.svg, "width").len(), 2);
        assert_eq!(
            bar_heights(&chart.svg, "width")
                .iter()
                .map(|(v, _)| *v)
                .collect::<Vec<_>>(),
            vec![13.0, 4.0]
        );
        // The long name is cut where it is drawn and whole in the tooltip.
        assert!(
            chart.svg.contains(">Perpustakaan Desa Karangs…</text>"),
            "{}",
            chart.svg
        );
        assert!(
            chart
                .svg
                .contains("<title>Perpustakaan Desa Karangsari Kidul Wetan: 13</title>")
        );
        let participants = participants_by_library_chart(&report, Lang::En).unwrap();
        assert!(
            participants.svg.contains("Dermaji: 8"),
            "{}",
            participants.svg
        );
        // No activities column in this table: no chart rather than an empty one.
        assert!(activities_by_library_chart(&report, Lang::Id).is_none());
    }

    #[test]
    fn the_purpose_chart_reads_the_district_total_row() {
        let chart = district_purposes_chart(&services_report(), Lang::En).unwrap();
        let values: Vec<f64> = bar_heights(&chart.svg, "width")
            .iter()
            .map(|(v, _)| *v)
            .collect();
        let expected: Vec<f64> = (0..VisitPurpose::ALL.len())
            .map(|i| 17.0 + i as f64)
            .collect();
        assert_eq!(values, expected);
        assert!(chart.svg.contains(VisitPurpose::ALL[0].label(Lang::En)));
    }

    #[test]
    fn decimals_are_written_as_asked() {
        let bars = vec![Bar {
            label: "Dermaji".into(),
            value: 6.25,
        }];
        let svg = horizontal_bars_with("d", "Per hari", &bars, 1, Lang::Id);
        assert!(
            svg.contains(">6,3</text>") || svg.contains(">6,2</text>"),
            "{svg}"
        );
        assert!(svg.contains("Dermaji: 6,"));
        assert_eq!(fit_label("Pendek"), "Pendek");
        assert_eq!(fit_label(&"a".repeat(40)).chars().count(), LABEL_CHARS);
    }

    #[test]
    fn names_are_escaped_in_svg() {
        let bars = vec![Bar {
            label: "<script>&\"x\"".into(),
            value: 1.0,
        }];
        let svg = horizontal_bars("e", "A & B <c>", &bars, Lang::En);
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&#60;script&#62;&#38;&#34;x&#34;"));
        assert!(svg.contains("A &#38; B &#60;c&#62;"));
    }
}
