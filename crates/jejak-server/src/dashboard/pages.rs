//! The dashboard's HTML: one small layout, the report tables, and each page.
//!
//! Pages are plain server-rendered HTML with one inline style sheet: no scripts, no
//! external files, nothing to build. Forms and links do everything, so the pages work
//! on an old office PC's browser and with scripts off. Every piece is an askama
//! template (`templates/dashboard/`), which escapes every value it is given; pieces
//! rendered by one template go into another as markup (`|safe`) and nothing else does.

use std::fmt::Write as _;

use askama::Template;
use jejak_domain::Lang;

use crate::report::charts;
use crate::report::glossary::GlossarySection;
use crate::report::html::TableView;
use crate::report::{Cell, Report, Row, Table};

/// The dashboard's style sheet, inlined into every page (about 2 KB).
const STYLE: &str = include_str!("style.css");

/// Renders a template; rendering into a String fails only if a value's `Display` does,
/// which none of these do.
fn render(template: &impl Template) -> String {
    template.render().unwrap_or_default()
}

/// Percent-encodes a query value or path segment (everything but unreserved
/// characters), so a library code or month can never break out of a URL.
pub(crate) fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// Where the page sits, for the navigation and the language switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    /// The sign-in page: no navigation.
    SignIn,
    /// The district matrix.
    District,
    /// A village page (reached from the matrix).
    Village,
    /// The quarterly or annual comparison.
    Period,
    /// The month's visits per library (the matrix's services table).
    Visits,
    /// The month's activities and participants per library.
    Activities,
    /// The year's IPLM sheet.
    Iplm,
    /// The operations view.
    Operations,
}

/// What the layout needs to know about the request.
#[derive(Debug, Clone)]
pub(crate) struct Frame<'a> {
    /// The page's language.
    pub lang: Lang,
    /// The signed-in staff member's name, if any.
    pub staff: Option<&'a str>,
    /// The page's own path and query without `lang`, for the language switch.
    pub self_url: String,
    /// Which navigation entry is current.
    pub nav: Nav,
}

/// One entry of the navigation.
#[derive(Debug)]
struct NavItem {
    href: &'static str,
    label: &'static str,
    current: bool,
}

#[derive(Template)]
#[template(path = "dashboard/layout.html")]
struct Layout<'a> {
    lang: &'a str,
    title: &'a str,
    style: &'a str,
    nav: Vec<NavItem>,
    other_lang: &'a str,
    other_name: &'a str,
    switch_href: String,
    staff: Option<&'a str>,
    sign_out: &'a str,
    /// The page's body: markup rendered by the other templates.
    body: &'a str,
}

/// A whole page around `body` (markup from this module's templates).
fn layout(frame: &Frame<'_>, title: &str, body: &str) -> String {
    let lang = frame.lang;
    let nav = if frame.nav == Nav::SignIn {
        Vec::new()
    } else {
        [
            (
                Nav::District,
                "/dashboard",
                "Rekap bulanan",
                "Monthly summary",
            ),
            (Nav::Visits, "/dashboard/visits", "Kunjungan", "Visits"),
            (
                Nav::Activities,
                "/dashboard/activities",
                "Kegiatan",
                "Activities",
            ),
            (
                Nav::Period,
                "/dashboard/period",
                "Triwulan / tahun",
                "Quarter / year",
            ),
            (Nav::Iplm, "/dashboard/iplm", "IPLM", "IPLM"),
            (
                Nav::Operations,
                "/dashboard/ops",
                "Operasional",
                "Operations",
            ),
        ]
        .into_iter()
        .map(|(nav, href, id, en)| NavItem {
            href,
            label: lang.pick(id, en),
            current: nav == frame.nav,
        })
        .collect()
    };
    let separator = if frame.self_url.contains('?') {
        '&'
    } else {
        '?'
    };
    let (other_lang, other_name) = match lang {
        Lang::Id => ("en", "English"),
        Lang::En => ("id", "Bahasa Indonesia"),
    };
    render(&Layout {
        lang: lang.code(),
        title,
        style: STYLE,
        nav,
        other_lang,
        other_name,
        switch_href: format!("{}{separator}lang={other_lang}", frame.self_url),
        staff: frame.staff,
        sign_out: lang.pick("Keluar", "Sign out"),
        body,
    })
}

#[derive(Template)]
#[template(path = "dashboard/sign_in.html")]
struct SignIn<'a> {
    heading: &'a str,
    help: &'a str,
    error: Option<&'a str>,
    label: &'a str,
    button: &'a str,
    /// The page to go back to after signing in.
    next: Option<&'a str>,
}

/// The sign-in page, with an error message when the last attempt failed; `next` is the
/// page it leads back to.
pub(crate) fn sign_in(frame: &Frame<'_>, error: Option<&str>, next: Option<&str>) -> String {
    let lang = frame.lang;
    let body = render(&SignIn {
        heading: lang.pick("Masuk dasbor kabupaten", "Sign in to the district dashboard"),
        help: lang.pick(
            "Tempel token petugas Anda (jejak_staff_…), yang dibuat dengan perintah jejak server add-staff.",
            "Paste your staff token (jejak_staff_…), issued with the command jejak server add-staff.",
        ),
        error,
        label: lang.pick("Token petugas", "Staff token"),
        button: lang.pick("Masuk", "Sign in"),
        next,
    });
    layout(frame, lang.pick("Masuk", "Sign in"), &body)
}

#[derive(Template)]
#[template(path = "dashboard/message.html")]
struct Message<'a> {
    title: &'a str,
    text: &'a str,
    back: &'a str,
}

/// A short page with one message (not found, bad request, store down).
pub(crate) fn message(frame: &Frame<'_>, title: &str, text: &str) -> String {
    let body = render(&Message {
        title,
        text,
        back: frame
            .lang
            .pick("Kembali ke rekap bulanan", "Back to the monthly summary"),
    });
    layout(frame, title, &body)
}

#[derive(Template)]
#[template(path = "dashboard/table.html")]
struct TableSection<'a> {
    table: TableView,
    csv_href: Option<&'a str>,
    /// A sentence printed under the table (how its figures are counted).
    note: Option<&'a str>,
}

/// A report table as HTML. `link` may turn a row's first cell into a link (the
/// matrix's library names). Flagged rows get their severity's class and the reason in
/// a last "Catatan"/"Note" column, marked with a sign that also shows in black and
/// white.
pub(crate) fn table_html(
    table: &Table,
    lang: Lang,
    link: &dyn Fn(&crate::report::Row) -> Option<String>,
    csv_href: Option<&str>,
) -> String {
    render(&TableSection {
        table: TableView::new(table, lang, link),
        csv_href,
        note: None,
    })
}

/// A report table as HTML with its notes (how its figures are counted) under it.
fn table_with_notes(table: &Table, lang: Lang, csv_href: Option<&str>) -> String {
    render(&TableSection {
        table: TableView::new(table, lang, &|_| None),
        csv_href,
        note: None,
    })
}

/// Table `table` with only the columns `keys` (in that order) and without its note row:
/// the activities page shows the services table's activity columns alone. The cells
/// are the report's, only chosen, so the page shows what the downloads hold.
fn select_columns(table: &Table, keys: &[&str]) -> Table {
    let picked: Vec<usize> = keys
        .iter()
        .filter_map(|key| table.columns.iter().position(|c| c.key == *key))
        .collect();
    Table {
        id: table.id.clone(),
        title: table.title.clone(),
        columns: picked
            .iter()
            .filter_map(|&i| table.columns.get(i).cloned())
            .collect(),
        rows: table
            .rows
            .iter()
            .map(|row| Row {
                cells: picked
                    .iter()
                    .map(|&i| row.cells.get(i).cloned().unwrap_or(Cell::Empty))
                    .collect(),
                emphasis: row.emphasis.clone(),
                is_total: row.is_total,
            })
            .collect(),
        notes: table.notes.clone(),
    }
}

/// A GET form choosing the period: `name=value` in an input of `kind`.
#[derive(Debug)]
struct PeriodForm<'a> {
    action: String,
    name: &'a str,
    kind: &'a str,
    value: &'a str,
    label: &'a str,
    button: &'a str,
}

/// What comes above a report's tables: where the page came from, the period form, a
/// notice, the title and subtitle lines, and the download links (CSV of every table,
/// XLSX and the printable page).
#[derive(Template)]
#[template(path = "dashboard/report_top.html")]
struct ReportTop<'a> {
    crumbs: Option<(String, &'a str)>,
    form: Option<PeriodForm<'a>>,
    notice: Option<&'a str>,
    title: &'a str,
    subtitles: Vec<&'a str>,
    download_label: &'a str,
    /// The label of the CSV in the Indonesian dialect (`;`, decimal commas).
    csv_id: &'a str,
    base: &'a str,
    query: &'a str,
    printable: &'a str,
}

impl<'a> ReportTop<'a> {
    fn new(report: &'a Report, lang: Lang, base: &'a str, query: &'a str) -> ReportTop<'a> {
        ReportTop {
            crumbs: None,
            form: None,
            notice: None,
            title: report.title.get(lang),
            subtitles: report.subtitle.iter().map(|line| line.get(lang)).collect(),
            download_label: lang.pick("Unduh:", "Download:"),
            csv_id: lang.pick("CSV (Excel Indonesia)", "CSV (Indonesian Excel)"),
            base,
            query,
            printable: lang.pick("Laporan cetak (A4)", "Printable report (A4)"),
        }
    }
}

fn period_form<'a>(
    action: String,
    name: &'a str,
    kind: &'a str,
    value: &'a str,
    label: &'a str,
    lang: Lang,
) -> PeriodForm<'a> {
    PeriodForm {
        action,
        name,
        kind,
        value,
        label,
        button: lang.pick("Tampilkan", "Show"),
    }
}

#[derive(Template)]
#[template(path = "dashboard/flag_summary.html")]
struct FlagSummary {
    flagged: bool,
    text: String,
}

/// How many rows of the matrix are flagged, as a sentence above it.
fn flag_summary(table: &Table, lang: Lang) -> String {
    let flagged = table.rows.iter().filter(|r| r.emphasis.is_some()).count();
    let libraries = table.rows.iter().filter(|r| !r.is_total).count();
    let text = match (flagged, lang) {
        (0, Lang::Id) => format!("{libraries} perpustakaan; tidak ada yang ditandai."),
        (0, Lang::En) => format!("{libraries} libraries; none flagged."),
        (_, Lang::Id) => format!(
            "{flagged} dari {libraries} perpustakaan perlu perhatian (tidak sinkron lebih dari 14 hari atau internet aktif di bawah 50%)."
        ),
        (_, Lang::En) => format!(
            "{flagged} of {libraries} libraries need attention (silent for over 14 days or internet up under 50%)."
        ),
    };
    render(&FlagSummary {
        flagged: flagged > 0,
        text,
    })
}

/// The district matrix page: month chooser, flagged-library summary, the matrix with
/// each library linked to its village page, and the downloads.
pub(crate) fn district(
    frame: &Frame<'_>,
    report: &Report,
    month: &str,
    notice: Option<&str>,
) -> String {
    let lang = frame.lang;
    let query = format!("month={}", url_encode(month));
    let mut top = ReportTop::new(report, lang, "/dashboard/download/district", &query);
    top.form = Some(period_form(
        "/dashboard".into(),
        "month",
        "month",
        month,
        lang.pick("Bulan (TTTT-BB)", "Month (YYYY-MM)"),
        lang,
    ));
    top.notice = notice;
    let mut body = render(&top);
    for table in &report.sections {
        if table.id == "libraries" {
            body.push_str(&flag_summary(table, lang));
        }
        let code = table.columns.iter().position(|c| c.key == "code");
        let link = |row: &crate::report::Row| -> Option<String> {
            if row.is_total {
                return None;
            }
            match row.cells.get(code?) {
                Some(Cell::Text(code)) if !code.is_empty() => Some(format!(
                    "/dashboard/village/{}?month={}",
                    url_encode(code),
                    url_encode(month)
                )),
                _ => None,
            }
        };
        body.push_str(&table_html(table, lang, &link, None));
    }
    body.push_str(&render(&GlossarySection::new(report, lang)));
    layout(frame, report.title.get(lang), &body)
}

#[derive(Template)]
#[template(path = "dashboard/charts.html")]
struct Charts<'a> {
    heading: &'a str,
    /// Each chart's SVG is markup rendered by `charts.rs`.
    charts: Vec<charts::Chart>,
}

/// A village page: the report's identity and summary, the charts, then the other
/// tables, with downloads.
pub(crate) fn village(frame: &Frame<'_>, report: &Report, code: &str, month: &str) -> String {
    let lang = frame.lang;
    let query = format!("library={}&month={}", url_encode(code), url_encode(month));
    let mut top = ReportTop::new(report, lang, "/dashboard/download/village", &query);
    top.crumbs = Some((
        format!("/dashboard?month={}", url_encode(month)),
        lang.pick("Rekap bulanan kabupaten", "District monthly summary"),
    ));
    top.form = Some(period_form(
        format!("/dashboard/village/{}", url_encode(code)),
        "month",
        "month",
        month,
        lang.pick("Bulan (TTTT-BB)", "Month (YYYY-MM)"),
        lang,
    ));
    let mut body = render(&top);
    let no_link = |_: &crate::report::Row| None;
    let csv = |table: &Table| {
        format!(
            "/dashboard/download/village/csv?{query}&table={}",
            url_encode(&table.id)
        )
    };
    let (first, rest): (Vec<&Table>, Vec<&Table>) = report
        .sections
        .iter()
        .partition(|t| t.id == "identity" || t.id == "summary");
    for table in first {
        body.push_str(&table_html(table, lang, &no_link, Some(&csv(table))));
    }
    body.push_str(&render(&Charts {
        heading: lang.pick("Grafik", "Charts"),
        charts: [
            charts::daily_chart(report, lang),
            charts::purpose_chart(report, lang),
            charts::age_gender_chart(report, lang),
        ]
        .into_iter()
        .flatten()
        .collect(),
    }));
    for table in rest {
        body.push_str(&table_html(table, lang, &no_link, Some(&csv(table))));
    }
    body.push_str(&render(&GlossarySection::new(report, lang)));
    layout(frame, report.title.get(lang), &body)
}

/// What differs between the month's services pages.
struct ServicesBody<'a> {
    /// The page's heading (the report's title is the matrix's).
    heading: &'a str,
    /// Where the month chooser goes.
    action: &'a str,
    charts: Vec<charts::Chart>,
    /// The tables' markup.
    tables: String,
}

/// What the month's services pages have in common: the top (month chooser, notice,
/// title, the district report's downloads), `charts`, then `tables`, then the glossary
/// of the services table's terms.
fn services_page(
    frame: &Frame<'_>,
    report: &Report,
    month: &str,
    notice: Option<&str>,
    page: ServicesBody<'_>,
) -> String {
    let ServicesBody {
        heading,
        action,
        charts,
        tables,
    } = page;
    let lang = frame.lang;
    let query = format!("month={}", url_encode(month));
    let mut top = ReportTop::new(report, lang, "/dashboard/download/district", &query);
    top.title = heading;
    // The month alone: the report's other subtitle is about its PC table.
    top.subtitles.truncate(1);
    top.form = Some(period_form(
        action.into(),
        "month",
        "month",
        month,
        lang.pick("Bulan (TTTT-BB)", "Month (YYYY-MM)"),
        lang,
    ));
    top.notice = notice;
    let mut body = render(&top);
    body.push_str(&render(&Charts {
        heading: lang.pick("Grafik", "Charts"),
        charts,
    }));
    body.push_str(&tables);
    // The terms of the table shown, not of the matrix's PC table, which is not.
    let shown = Report {
        sections: report
            .sections
            .iter()
            .filter(|t| t.id == "services")
            .cloned()
            .collect(),
        ..report.clone()
    };
    body.push_str(&render(&GlossarySection::new(&shown, lang)));
    layout(frame, heading, &body)
}

/// The visits page: visits per library and the visitor book's purposes over the
/// district as charts, then the district report's services table with the rule that
/// counts visits under it; the downloads are the district report's.
pub(crate) fn visits(
    frame: &Frame<'_>,
    report: &Report,
    month: &str,
    notice: Option<&str>,
) -> String {
    let lang = frame.lang;
    let tables = report
        .sections
        .iter()
        .filter(|t| t.id == "services")
        .map(|t| {
            let csv = format!(
                "/dashboard/download/district/csv?month={}&table={}",
                url_encode(month),
                url_encode(&t.id)
            );
            table_with_notes(t, lang, Some(&csv))
        })
        .collect::<String>();
    services_page(
        frame,
        report,
        month,
        notice,
        ServicesBody {
            heading: lang.pick("Kunjungan perpustakaan desa", "Village library visits"),
            action: "/dashboard/visits",
            charts: [
                charts::visits_by_library_chart(report, lang),
                charts::district_purposes_chart(report, lang),
            ]
            .into_iter()
            .flatten()
            .collect(),
            tables,
        },
    )
}

/// The activities page: activities and participants per library as charts, then the
/// services table's activity columns; the downloads are the district report's.
pub(crate) fn activities(
    frame: &Frame<'_>,
    report: &Report,
    month: &str,
    notice: Option<&str>,
) -> String {
    let lang = frame.lang;
    let tables = report
        .sections
        .iter()
        .filter(|t| t.id == "services")
        .map(|t| {
            let mut picked = select_columns(
                t,
                &[
                    "library",
                    "code",
                    "kecamatan",
                    "activities",
                    "participants",
                    "participants_kie",
                ],
            );
            picked.title = crate::report::Text::new(
                "Kegiatan dan peserta per perpustakaan",
                "Activities and participants per library",
            );
            table_html(&picked, lang, &|_| None, None)
        })
        .collect::<String>();
    services_page(
        frame,
        report,
        month,
        notice,
        ServicesBody {
            heading: lang.pick("Kegiatan perpustakaan desa", "Village library activities"),
            action: "/dashboard/activities",
            charts: [
                charts::activities_by_library_chart(report, lang),
                charts::participants_by_library_chart(report, lang),
            ]
            .into_iter()
            .flatten()
            .collect(),
            tables,
        },
    )
}

/// The IPLM page: the year chooser, the sheet's downloads, a chart of visits per day
/// served per library, the figures per library and their definitions.
pub(crate) fn iplm(frame: &Frame<'_>, report: &Report, year: &str, notice: Option<&str>) -> String {
    let lang = frame.lang;
    let query = format!("year={}", url_encode(year));
    let mut top = ReportTop::new(report, lang, "/dashboard/download/iplm", &query);
    top.form = Some(period_form(
        "/dashboard/iplm".into(),
        "year",
        "text",
        year,
        lang.pick("Tahun (TTTT)", "Year (YYYY)"),
        lang,
    ));
    top.notice = notice;
    let mut body = render(&top);
    body.push_str(&render(&Charts {
        heading: lang.pick("Grafik", "Charts"),
        charts: charts::iplm_visits_per_day_chart(report, lang)
            .into_iter()
            .collect(),
    }));
    for table in &report.sections {
        let csv = format!(
            "/dashboard/download/iplm/csv?{query}&table={}",
            url_encode(&table.id)
        );
        body.push_str(&table_html(table, lang, &|_| None, Some(&csv)));
    }
    body.push_str(&render(&GlossarySection::new(report, lang)));
    layout(frame, report.title.get(lang), &body)
}

/// A report page without charts: the quarterly/annual comparison or the operations
/// view. `chooser` is the period form, if the report has one.
pub(crate) fn plain_report(
    frame: &Frame<'_>,
    report: &Report,
    chooser: Option<(&str, &str)>,
    download_base: &str,
    query: &str,
) -> String {
    let lang = frame.lang;
    let mut top = ReportTop::new(report, lang, download_base, query);
    top.form = chooser.map(|(name, value)| {
        period_form(
            "/dashboard/period".into(),
            name,
            "text",
            value,
            lang.pick(
                "Triwulan (TTTT-Qn) atau tahun (TTTT)",
                "Quarter (YYYY-Qn) or year (YYYY)",
            ),
            lang,
        )
    });
    let mut body = render(&top);
    let no_link = |_: &crate::report::Row| None;
    for table in &report.sections {
        let csv = format!(
            "{download_base}/csv?{query}&table={}",
            url_encode(&table.id)
        );
        let csv = (report.sections.len() > 1).then_some(csv);
        body.push_str(&table_html(table, lang, &no_link, csv.as_deref()));
    }
    body.push_str(&render(&GlossarySection::new(report, lang)));
    layout(frame, report.title.get(lang), &body)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::report::{Column, ColumnKind, Flag, Row, Text};

    fn matrix(name: &str) -> Table {
        Table {
            id: "libraries".into(),
            title: Text::new("Perpustakaan desa", "Village libraries"),
            columns: vec![
                Column::new(
                    "library",
                    Text::new("Perpustakaan", "Library"),
                    ColumnKind::Text,
                ),
                Column::new("code", Text::new("Kode", "Code"), ColumnKind::Text),
                Column::new("sessions", Text::new("Sesi", "Sessions"), ColumnKind::Count),
                Column::new(
                    "uptime",
                    Text::new("Internet", "Internet"),
                    ColumnKind::Percent(1),
                ),
            ],
            rows: vec![
                Row::new(vec![
                    Cell::text(name),
                    Cell::text("lib-01"),
                    Cell::number(1234.0),
                    Cell::number(0.505),
                ]),
                Row::new(vec![
                    Cell::text("Sepi"),
                    Cell::text("lib-02"),
                    Cell::number(3.0),
                    Cell::Empty,
                ])
                .flagged(Flag::alert(Text::new(
                    "Tidak sinkron 21 hari",
                    "Silent for 21 days",
                ))),
                Row::total(vec![
                    Cell::text("Jumlah"),
                    Cell::Empty,
                    Cell::number(1237.0),
                    Cell::Empty,
                ]),
            ],
            notes: Vec::new(),
        }
    }

    #[test]
    fn names_with_markup_are_escaped() {
        let table = matrix("Desa <b>\"Maju\" & Jaya</b>");
        let html = table_html(&table, Lang::Id, &|_| Some("/x?a=1&b=2".into()), None);
        assert!(!html.contains("<b>"));
        // askama's numeric references: `<` `&#60;`, `>` `&#62;`, `"` `&#34;`, `&` `&#38;`.
        assert!(html.contains("Desa &#60;b&#62;&#34;Maju&#34; &#38; Jaya&#60;/b&#62;"));
        assert!(html.contains("href=\"/x?a=1&#38;b=2\""));
    }

    #[test]
    fn numbers_use_the_language_and_flagged_rows_are_marked() {
        let table = matrix("Maju");
        let id = table_html(&table, Lang::Id, &|_| None, None);
        assert!(id.contains("<td class=\"n\">1.234</td>"));
        assert!(id.contains("<td class=\"n\">50,5%</td>"));
        assert!(id.contains("<tr class=\"alert\">"));
        assert!(id.contains("<th scope=\"col\">Catatan</th>"));
        assert!(id.contains("Tidak sinkron 21 hari"));
        assert!(id.contains("<tr class=\"total\">"));
        let en = table_html(&table, Lang::En, &|_| None, None);
        assert!(en.contains("<td class=\"n\">1,234</td>"));
        assert!(en.contains("Silent for 21 days"));
        assert!(en.contains("<th scope=\"col\">Note</th>"));
    }

    #[test]
    fn a_tables_notes_are_printed_under_it_escaped() {
        let mut table = matrix("Maju");
        table.notes.push(crate::report::Text::new(
            "Kunjungan = buku tamu + <check-in>",
            "Visits = visitor book + <check-in>",
        ));
        let html = table_with_notes(&table, Lang::Id, None);
        assert!(
            html.contains("<p class=\"note\">Kunjungan = buku tamu + &#60;check-in&#62;</p>"),
            "{html}"
        );
        assert_eq!(
            html.matches("<tr").count(),
            1 + 3,
            "the header and three rows"
        );
        // A table without notes has none under it.
        let plain = table_with_notes(&matrix("Maju"), Lang::Id, None);
        assert!(!plain.contains("class=\"note\""));
        // Choosing columns keeps the notes.
        let picked = select_columns(&table, &["library"]);
        assert_eq!(picked.notes, table.notes);
    }

    #[test]
    fn columns_are_chosen_by_key_with_their_cells() {
        let table = select_columns(&matrix("Maju"), &["library", "sessions", "nope"]);
        let keys: Vec<&str> = table.columns.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["library", "sessions"]);
        assert_eq!(table.rows.len(), 3);
        assert_eq!(
            table.rows[0].cells,
            vec![Cell::text("Maju"), Cell::number(1234.0)]
        );
        assert!(table.rows[2].is_total);
        assert!(table.rows[1].emphasis.is_some());
    }

    #[test]
    fn the_navigation_names_every_page_in_both_languages() {
        for (lang, labels) in [
            (Lang::Id, ["Kunjungan", "Kegiatan", "IPLM"]),
            (Lang::En, ["Visits", "Activities", "IPLM"]),
        ] {
            let frame = Frame {
                lang,
                staff: Some("Sari"),
                self_url: "/dashboard/visits?month=2026-10".into(),
                nav: Nav::Visits,
            };
            let page = layout(&frame, "x", "");
            for (href, label) in [
                "/dashboard/visits",
                "/dashboard/activities",
                "/dashboard/iplm",
            ]
            .iter()
            .zip(labels)
            {
                assert!(page.contains(&format!("<a href=\"{href}\"")), "{href}");
                assert!(page.contains(&format!(">{label}</a>")), "{label}");
            }
            assert!(page.contains("<a href=\"/dashboard/visits\" aria-current=\"page\">"));
        }
    }

    #[test]
    fn urls_are_percent_encoded() {
        assert_eq!(url_encode("lib-01"), "lib-01");
        assert_eq!(url_encode("a b&c/\"<"), "a%20b%26c%2F%22%3C");
    }

    #[test]
    fn the_layout_has_no_scripts_and_switches_language() {
        let frame = Frame {
            lang: Lang::Id,
            staff: Some("Sari <admin>"),
            self_url: "/dashboard?month=2026-10".into(),
            nav: Nav::District,
        };
        let page = layout(&frame, "Rekap", "<p>isi</p>");
        assert!(!page.contains("<script"));
        assert!(page.contains("href=\"/dashboard?month=2026-10&#38;lang=en\""));
        assert!(page.contains("Sari &#60;admin&#62;"));
        assert!(page.contains("action=\"/dashboard/logout\""));
        assert!(page.contains("<html lang=\"id\">"));
    }
}
