//! The dashboard's HTML: one small layout, the report tables, and each page.
//!
//! Pages are plain server-rendered HTML with one inline style sheet: no scripts, no
//! external files, nothing to build. Forms and links do everything, so the pages work
//! on an old office PC's browser and with scripts off. Every text from the store or the
//! request is escaped here.

use std::fmt::Write as _;

use jejak_domain::Lang;

use super::charts;
use crate::report::{Cell, ColumnKind, Report, Severity, Table, format_number};

/// The dashboard's style sheet, inlined into every page (about 2 KB).
const STYLE: &str = include_str!("style.css");

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
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

/// A whole page around `body`.
pub(crate) fn layout(frame: &Frame<'_>, title: &str, body: &str) -> String {
    let lang = frame.lang;
    let mut out = String::with_capacity(body.len() + STYLE.len() + 1500);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} — Jejak</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n<header class=\"top\">\n\
         <a class=\"brand\" href=\"/dashboard\">Jejak</a>\n",
        lang.code(),
        escape(title)
    );
    if frame.nav != Nav::SignIn {
        out.push_str("<nav>");
        for (nav, href, id, en) in [
            (
                Nav::District,
                "/dashboard",
                "Rekap bulanan",
                "Monthly summary",
            ),
            (
                Nav::Period,
                "/dashboard/period",
                "Triwulan / tahun",
                "Quarter / year",
            ),
            (
                Nav::Operations,
                "/dashboard/ops",
                "Operasional",
                "Operations",
            ),
        ] {
            let current = if nav == frame.nav {
                " aria-current=\"page\""
            } else {
                ""
            };
            let _ = write!(out, "<a href=\"{href}\"{current}>{}</a>", lang.pick(id, en));
        }
        out.push_str("</nav>\n");
    }
    let separator = if frame.self_url.contains('?') {
        '&'
    } else {
        '?'
    };
    let (other, other_name) = match lang {
        Lang::Id => ("en", "English"),
        Lang::En => ("id", "Bahasa Indonesia"),
    };
    let _ = write!(
        out,
        "<span class=\"right\"><a id=\"lang-switch\" lang=\"{other}\" href=\"{}\">{other_name}</a>",
        escape(&format!("{}{separator}lang={other}", frame.self_url))
    );
    if let Some(staff) = frame.staff {
        let _ = write!(
            out,
            "<span class=\"who\">{}</span><form method=\"post\" action=\"/dashboard/logout\" class=\"inline\">\
             <button type=\"submit\" id=\"sign-out\">{}</button></form>",
            escape(staff),
            lang.pick("Keluar", "Sign out")
        );
    }
    out.push_str("</span>\n</header>\n<main>\n");
    out.push_str(body);
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

/// The sign-in page, with an error message when the last attempt failed.
pub(crate) fn sign_in(frame: &Frame<'_>, error: Option<&str>) -> String {
    let lang = frame.lang;
    let mut body = String::with_capacity(1200);
    let _ = write!(
        body,
        "<h1>{}</h1>\n<p>{}</p>\n",
        lang.pick("Masuk dasbor kabupaten", "Sign in to the district dashboard"),
        lang.pick(
            "Tempel token petugas Anda (jejak_staff_…), yang dibuat dengan perintah jejak server add-staff.",
            "Paste your staff token (jejak_staff_…), issued with the command jejak server add-staff."
        )
    );
    if let Some(error) = error {
        let _ = writeln!(
            body,
            "<p class=\"error\" role=\"alert\" id=\"sign-in-error\">{}</p>",
            escape(error)
        );
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/dashboard/login\" class=\"sign-in\">\n\
         <label for=\"token\">{}</label>\n\
         <input type=\"password\" id=\"token\" name=\"token\" autocomplete=\"off\" required size=\"60\">\n\
         <button type=\"submit\" id=\"sign-in\">{}</button>\n</form>\n",
        lang.pick("Token petugas", "Staff token"),
        lang.pick("Masuk", "Sign in")
    );
    layout(frame, lang.pick("Masuk", "Sign in"), &body)
}

/// A short page with one message (not found, bad request, store down).
pub(crate) fn message(frame: &Frame<'_>, title: &str, text: &str) -> String {
    let body = format!(
        "<h1>{}</h1>\n<p class=\"error\" role=\"alert\">{}</p>\n<p><a href=\"/dashboard\">{}</a></p>\n",
        escape(title),
        escape(text),
        frame
            .lang
            .pick("Kembali ke rekap bulanan", "Back to the monthly summary")
    );
    layout(frame, title, &body)
}

/// A cell as people read it: id-ID or English numbers, percentages with `%`.
pub(crate) fn human_cell(cell: &Cell, kind: ColumnKind, lang: Lang) -> String {
    match (cell, kind) {
        (Cell::Text(text), _) => text.clone(),
        (Cell::Empty, _) => String::new(),
        (Cell::Number(n), ColumnKind::Count) => format_number(*n, 0, lang),
        (Cell::Number(n), ColumnKind::Decimal(places)) => format_number(*n, places, lang),
        (Cell::Number(n), ColumnKind::Percent(places)) => {
            format!("{}%", format_number(n * 100.0, places, lang))
        }
        (Cell::Number(n), ColumnKind::Text | ColumnKind::Date) => {
            format_number(*n, if n.fract() == 0.0 { 0 } else { 2 }, lang)
        }
    }
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
    let mut out = String::with_capacity(256 + table.rows.len() * table.columns.len() * 40);
    let _ = write!(
        out,
        "<section class=\"table\" id=\"table-{}\">\n<h2>{}",
        escape(&table.id),
        escape(table.title.get(lang))
    );
    if let Some(href) = csv_href {
        let _ = write!(out, " <a class=\"small\" href=\"{}\">CSV</a>", escape(href));
    }
    out.push_str("</h2>\n<div class=\"scroll\"><table>\n<thead><tr>");
    for label in table.header(lang) {
        let _ = write!(out, "<th scope=\"col\">{}</th>", escape(&label));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    let flags = table.has_flags();
    for row in &table.rows {
        let mut classes = Vec::new();
        if row.is_total {
            classes.push("total");
        }
        match row.emphasis.as_ref().map(|flag| flag.severity) {
            Some(Severity::Alert) => classes.push("alert"),
            Some(Severity::Warning) => classes.push("warning"),
            None => {}
        }
        if classes.is_empty() {
            out.push_str("<tr>");
        } else {
            let _ = write!(out, "<tr class=\"{}\">", classes.join(" "));
        }
        for (i, (column, cell)) in table.columns.iter().zip(&row.cells).enumerate() {
            let text = escape(&human_cell(cell, column.kind, lang));
            let class = if column.kind.is_numeric() {
                " class=\"n\""
            } else {
                ""
            };
            match (i, link(row)) {
                (0, Some(href)) => {
                    let _ = write!(
                        out,
                        "<td{class}><a href=\"{}\">{text}</a></td>",
                        escape(&href)
                    );
                }
                _ => {
                    let _ = write!(out, "<td{class}>{text}</td>");
                }
            }
        }
        if flags {
            match &row.emphasis {
                Some(flag) => {
                    let sign = match flag.severity {
                        Severity::Alert => "⚠",
                        Severity::Warning => "!",
                    };
                    let _ = write!(
                        out,
                        "<td class=\"flag\"><span aria-hidden=\"true\">{sign}</span> {}</td>",
                        escape(flag.reason.get(lang))
                    );
                }
                None => out.push_str("<td></td>"),
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table></div>\n</section>\n");
    out
}

/// The report's title and subtitle lines.
fn heading(report: &Report, lang: Lang) -> String {
    let mut out = format!("<h1>{}</h1>\n", escape(report.title.get(lang)));
    for line in &report.subtitle {
        let _ = writeln!(out, "<p class=\"sub\">{}</p>", escape(line.get(lang)));
    }
    out
}

/// The download links of a report: CSV (every table, one after another), XLSX and the
/// printable page. Multi-table reports also offer CSV beside each table.
fn downloads(base: &str, query: &str, lang: Lang) -> String {
    let mut out = String::from("<p class=\"downloads\">");
    let _ = write!(out, "{} ", lang.pick("Unduh:", "Download:"));
    let _ = write!(
        out,
        "<a class=\"button\" id=\"download-csv\" href=\"{}\">CSV</a> ",
        escape(&format!("{base}/csv?{query}"))
    );
    let _ = writeln!(
        out,
        "<a class=\"button\" id=\"download-xlsx\" href=\"{}\">XLSX (Excel)</a> \
         <a class=\"button\" id=\"download-html\" href=\"{}\">{}</a></p>",
        escape(&format!("{base}/xlsx?{query}")),
        escape(&format!("{base}/html?{query}")),
        lang.pick("Laporan cetak (A4)", "Printable report (A4)")
    );
    out
}

/// A GET form choosing the period: `name=value` in an input of `kind`.
fn period_form(
    action: &str,
    name: &str,
    kind: &str,
    value: &str,
    label: &str,
    lang: Lang,
) -> String {
    format!(
        "<form method=\"get\" action=\"{}\" class=\"period\">\
         <label for=\"{name}\">{}</label> \
         <input type=\"{kind}\" id=\"{name}\" name=\"{name}\" value=\"{}\" required> \
         <button type=\"submit\">{}</button></form>\n",
        escape(action),
        escape(label),
        escape(value),
        lang.pick("Tampilkan", "Show")
    )
}

/// How many rows of the matrix are flagged, as a sentence above it.
fn flag_summary(table: &Table, lang: Lang) -> String {
    let flagged = table.rows.iter().filter(|r| r.emphasis.is_some()).count();
    let libraries = table.rows.iter().filter(|r| !r.is_total).count();
    if flagged == 0 {
        format!(
            "<p class=\"ok\">{}</p>\n",
            match lang {
                Lang::Id => format!("{libraries} perpustakaan; tidak ada yang ditandai."),
                Lang::En => format!("{libraries} libraries; none flagged."),
            }
        )
    } else {
        format!(
            "<p class=\"attention\" id=\"flag-summary\">{}</p>\n",
            match lang {
                Lang::Id => format!(
                    "{flagged} dari {libraries} perpustakaan perlu perhatian (tidak sinkron lebih dari 14 hari atau internet aktif di bawah 50%)."
                ),
                Lang::En => format!(
                    "{flagged} of {libraries} libraries need attention (silent for over 14 days or internet up under 50%)."
                ),
            }
        )
    }
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
    let mut body = String::with_capacity(16_384);
    body.push_str(&period_form(
        "/dashboard",
        "month",
        "month",
        month,
        lang.pick("Bulan (TTTT-BB)", "Month (YYYY-MM)"),
        lang,
    ));
    if let Some(notice) = notice {
        let _ = writeln!(
            body,
            "<p class=\"error\" role=\"alert\">{}</p>",
            escape(notice)
        );
    }
    body.push_str(&heading(report, lang));
    let query = format!("month={}", url_encode(month));
    body.push_str(&downloads("/dashboard/download/district", &query, lang));
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
    layout(frame, report.title.get(lang), &body)
}

/// A village page: the report's identity and summary, the charts, then the other
/// tables, with downloads.
pub(crate) fn village(frame: &Frame<'_>, report: &Report, code: &str, month: &str) -> String {
    let lang = frame.lang;
    let mut body = String::with_capacity(32_768);
    let _ = writeln!(
        body,
        "<p class=\"crumbs\"><a href=\"/dashboard?month={}\">← {}</a></p>",
        url_encode(month),
        lang.pick("Rekap bulanan kabupaten", "District monthly summary")
    );
    body.push_str(&period_form(
        &format!("/dashboard/village/{}", url_encode(code)),
        "month",
        "month",
        month,
        lang.pick("Bulan (TTTT-BB)", "Month (YYYY-MM)"),
        lang,
    ));
    body.push_str(&heading(report, lang));
    let query = format!("library={}&month={}", url_encode(code), url_encode(month));
    body.push_str(&downloads("/dashboard/download/village", &query, lang));
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
    let _ = write!(
        body,
        "<section class=\"charts\" id=\"charts\">\n<h2>{}</h2>\n",
        lang.pick("Grafik", "Charts")
    );
    for chart in [
        charts::daily_chart(report, lang),
        charts::purpose_chart(report, lang),
        charts::age_gender_chart(report, lang),
    ]
    .into_iter()
    .flatten()
    {
        let _ = writeln!(
            body,
            "<figure><figcaption>{}</figcaption>{}</figure>",
            escape(&chart.caption),
            chart.svg
        );
    }
    body.push_str("</section>\n");
    for table in rest {
        body.push_str(&table_html(table, lang, &no_link, Some(&csv(table))));
    }
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
    let mut body = String::with_capacity(16_384);
    if let Some((name, value)) = chooser {
        body.push_str(&period_form(
            "/dashboard/period",
            name,
            "text",
            value,
            lang.pick(
                "Triwulan (TTTT-Qn) atau tahun (TTTT)",
                "Quarter (YYYY-Qn) or year (YYYY)",
            ),
            lang,
        ));
    }
    body.push_str(&heading(report, lang));
    body.push_str(&downloads(download_base, query, lang));
    let no_link = |_: &crate::report::Row| None;
    for table in &report.sections {
        let csv = format!(
            "{download_base}/csv?{query}&table={}",
            url_encode(&table.id)
        );
        let csv = (report.sections.len() > 1).then_some(csv);
        body.push_str(&table_html(table, lang, &no_link, csv.as_deref()));
    }
    layout(frame, report.title.get(lang), &body)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::report::{Column, Flag, Row, Text};

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
                    Cell::text("Jumlah / Total"),
                    Cell::Empty,
                    Cell::number(1237.0),
                    Cell::Empty,
                ]),
            ],
        }
    }

    #[test]
    fn names_with_markup_are_escaped() {
        let table = matrix("Desa <b>\"Maju\" & Jaya</b>");
        let html = table_html(&table, Lang::Id, &|_| Some("/x?a=1&b=2".into()), None);
        assert!(!html.contains("<b>"));
        assert!(html.contains("Desa &lt;b&gt;&quot;Maju&quot; &amp; Jaya&lt;/b&gt;"));
        assert!(html.contains("href=\"/x?a=1&amp;b=2\""));
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
        assert!(page.contains("href=\"/dashboard?month=2026-10&amp;lang=en\""));
        assert!(page.contains("Sari &lt;admin&gt;"));
        assert!(page.contains("action=\"/dashboard/logout\""));
        assert!(page.contains("<html lang=\"id\">"));
    }
}
