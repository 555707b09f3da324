//! The printable A4 HTML page.
//!
//! A complete standalone page: inline CSS, no scripts, no external resources (a logo is
//! embedded as a `data:` URI), `@page { size: A4 }` (landscape when the report says
//! so). The letterhead (kop) is centered with a double rule under it, then the title,
//! subtitle lines and the tables with numbers in the chosen language's style; total
//! rows bold, flagged rows filled and their reason in a "Catatan"/"Note" column; a
//! glossary of the terms its columns use ([`super::glossary`]); the signature block
//! when the report has one (two columns: "Mengetahui, Kepala Desa …" on the left, the
//! place and date and the library's manager with the NIP on the right, room to sign
//! above each name, never split across pages); a footer with the generation time; and
//! on every printed page "Halaman X dari Y" in the bottom margin (a CSS `@page` margin
//! box with the `page` and `pages` counters). The page is an askama template
//! (`templates/report.html`), which escapes every value from the model.

use askama::Template as _;

use super::model::{generated_text, human_cell};
use super::{RenderOptions, Report, Severity};

const STYLE: &str = "\
@page { size: A4 PORTRAIT_OR_LANDSCAPE; margin: 15mm 12mm; @bottom-right { content: PAGE_COUNTER; font-family: 'DejaVu Sans', Arial, Helvetica, sans-serif; font-size: 8pt; } }
* { box-sizing: border-box; }
body { font-family: 'DejaVu Sans', Arial, Helvetica, sans-serif; font-size: 10pt; color: #000; background: #fff; margin: 0 auto; max-width: 277mm; padding: 8mm; }
@media print { body { padding: 0; max-width: none; } }
.kop { display: flex; align-items: center; justify-content: center; gap: 4mm; border-bottom: 3px double #000; padding-bottom: 2mm; margin-bottom: 5mm; }
.kop img { height: 22mm; }
.kop .lines { text-align: center; }
.kop .lines div { line-height: 1.3; }
.kop .lines div:first-child { font-size: 13pt; font-weight: bold; }
.kop .lines div:nth-child(2) { font-size: 12pt; font-weight: bold; }
h1 { font-size: 13pt; text-align: center; margin: 0 0 1mm; text-transform: uppercase; }
.sub { text-align: center; margin: 0; }
h2 { font-size: 11pt; margin: 6mm 0 2mm; page-break-after: avoid; break-after: avoid; }
table { border-collapse: collapse; width: 100%; page-break-inside: auto; }
thead { display: table-header-group; }
tr { page-break-inside: avoid; break-inside: avoid; }
th, td { border: 1px solid #444; padding: 1mm 1.5mm; vertical-align: top; }
th { background: #d9e1f2; font-weight: bold; text-align: center; }
td.n { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
tr.total td { font-weight: bold; border-top: 2px solid #000; }
tr.alert td { background: #f8cbad; }
tr.warning td { background: #fff2cc; }
* { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
.note { font-style: italic; margin-top: 3mm; }
.glossary { margin-top: 6mm; font-size: 8.5pt; page-break-inside: avoid; break-inside: avoid; }
.glossary h2 { font-size: 10pt; margin: 0 0 1mm; }
.glossary dl { margin: 0; display: grid; grid-template-columns: max-content 1fr; gap: 0.5mm 3mm; }
.glossary dt { font-weight: bold; }
.glossary dd { margin: 0; }
.signature { margin-top: 10mm; display: grid; grid-template-columns: 1fr 1fr; gap: 10mm; page-break-inside: avoid; break-inside: avoid; }
.signature > div { text-align: center; }
.signature .line { min-height: 1.2em; }
.signature .space { height: 20mm; }
.signature .name { font-weight: bold; text-decoration: underline; }
footer { margin-top: 8mm; font-size: 8pt; color: #333; border-top: 1px solid #999; padding-top: 1mm; }
";

/// The report as a standalone, printable A4 HTML page (suppression applied).
pub fn render_html(report: &Report, options: &RenderOptions) -> String {
    let lang = options.lang;
    let report = report.for_export(options);
    let orientation = if report.landscape {
        "landscape"
    } else {
        "portrait"
    };
    let letterhead = &report.letterhead;
    let page = PrintablePage {
        lang: lang.code(),
        title: report.title.get(lang),
        style: STYLE
            .replace("PORTRAIT_OR_LANDSCAPE", orientation)
            .replace("PAGE_COUNTER", page_counter(lang)),
        letterhead: !letterhead.lines.is_empty() || letterhead.logo.is_some(),
        logo: letterhead
            .logo
            .as_ref()
            .map(|logo| (logo.media_type.as_str(), base64(&logo.bytes))),
        lines: &letterhead.lines,
        subtitles: report.subtitle.iter().map(|line| line.get(lang)).collect(),
        tables: report
            .sections
            .iter()
            .map(|table| TableView::new(table, lang, &|_| None))
            .collect(),
        note: report.suppression_note(lang),
        glossary: super::glossary::GlossarySection::new(&report, lang)
            .render()
            .unwrap_or_default(),
        signature: report
            .signature
            .as_ref()
            .map(|signature| SignatureView::new(signature, lang)),
        generated_label: lang.pick("Dibuat", "Generated"),
        generated: generated_text(&report.generated_at, lang),
    };
    // Rendering into a String fails only if a value's Display fails, which none here do.
    page.render().unwrap_or_default()
}

/// The printable page's template (`templates/report.html`): every value is escaped by
/// askama unless marked safe (only the style sheet, a constant of this file).
#[derive(askama::Template)]
#[template(path = "report.html")]
struct PrintablePage<'a> {
    lang: &'a str,
    title: &'a str,
    style: String,
    letterhead: bool,
    logo: Option<(&'a str, String)>,
    lines: &'a [String],
    subtitles: Vec<&'a str>,
    tables: Vec<TableView>,
    note: Option<String>,
    signature: Option<SignatureView>,
    /// The glossary's markup (`templates/glossary.html`, escaped there).
    glossary: String,
    generated_label: &'a str,
    generated: String,
}

/// The page number in the bottom margin of every printed page ("Halaman 2 dari 5"), a
/// CSS paged-media counter: the browser's print (Chromium since version 131) fills it
/// in; a screen shows nothing there.
fn page_counter(lang: jejak_domain::Lang) -> &'static str {
    lang.pick(
        "\"Halaman \" counter(page) \" dari \" counter(pages)",
        "\"Page \" counter(page) \" of \" counter(pages)",
    )
}

/// The signature block as the template lays it out: the place and date head the right
/// column (the maker's), and the shorter column's heading is padded at its top, so the
/// two headings end on the same line and the names stand side by side.
struct SignatureView {
    /// The acknowledging head of the village, then the maker.
    columns: [SignatoryView; 2],
}

impl SignatureView {
    fn new(signature: &super::Signature, lang: jejak_domain::Lang) -> SignatureView {
        let mut left = SignatoryView::new(&signature.acknowledged_by, lang);
        let mut right = SignatoryView::new(&signature.made_by, lang);
        right.heading.insert(0, signature.place_and_date(lang));
        let lines = left.heading.len().max(right.heading.len());
        for column in [&mut left, &mut right] {
            while column.heading.len() < lines {
                column.heading.insert(0, String::new());
            }
        }
        SignatureView {
            columns: [left, right],
        }
    }
}

struct SignatoryView {
    heading: Vec<String>,
    name: String,
    nip: Option<String>,
}

impl SignatoryView {
    fn new(person: &super::Signatory, lang: jejak_domain::Lang) -> SignatoryView {
        SignatoryView {
            heading: person
                .heading
                .iter()
                .map(|line| line.get(lang).to_string())
                .collect(),
            name: person.name_line(),
            nip: person.nip.as_ref().map(|nip| format!("NIP {nip}")),
        }
    }
}

/// A report table ready for a template, shared by the printable page and the
/// dashboard: the labels, and each row's cells as people read them.
#[derive(Debug, Clone)]
pub struct TableView {
    /// The table's id (an anchor on the page).
    pub id: String,
    /// Its title in the page's language.
    pub title: String,
    /// Its column labels in the page's language.
    pub header: Vec<String>,
    /// Whether the table has the note column of flagged rows.
    pub flags: bool,
    /// Its rows.
    pub rows: Vec<RowView>,
    /// The sentences printed under it, in the page's language.
    pub notes: Vec<String>,
}

/// One row of a [`TableView`].
#[derive(Debug, Clone)]
pub struct RowView {
    /// `total`, `alert`, `warning`, both, or empty.
    pub class: String,
    /// Its cells, as people read them.
    pub cells: Vec<CellView>,
    /// Why it is flagged, if it is.
    pub flag: Option<FlagView>,
}

/// One cell of a [`RowView`].
#[derive(Debug, Clone)]
pub struct CellView {
    /// Whether it holds a number (right-aligned).
    pub numeric: bool,
    /// Its text, numbers written in the page's language.
    pub text: String,
    /// Where the cell links to (the dashboard's library names), if anywhere.
    pub link: Option<String>,
}

/// Why a row is flagged, with the sign that marks it in black and white too.
#[derive(Debug, Clone)]
pub struct FlagView {
    /// The sign before the reason (visible without colour).
    pub sign: &'static str,
    /// The reason, in the page's language.
    pub reason: String,
}

impl TableView {
    /// `table` in `lang`; `link` may give a row's first cell a link.
    pub fn new(
        table: &super::Table,
        lang: jejak_domain::Lang,
        link: &dyn Fn(&super::Row) -> Option<String>,
    ) -> TableView {
        let flags = table.has_flags();
        let rows = table
            .rows
            .iter()
            .map(|row| {
                let mut classes = Vec::new();
                if row.is_total {
                    classes.push("total");
                }
                match row.emphasis.as_ref().map(|flag| flag.severity) {
                    Some(Severity::Alert) => classes.push("alert"),
                    Some(Severity::Warning) => classes.push("warning"),
                    None => {}
                }
                let href = link(row);
                let cells = table
                    .columns
                    .iter()
                    .zip(&row.cells)
                    .enumerate()
                    .map(|(i, (column, cell))| CellView {
                        numeric: column.kind.is_numeric(),
                        text: human_cell(cell, column.kind, lang),
                        link: if i == 0 { href.clone() } else { None },
                    })
                    .collect();
                RowView {
                    class: classes.join(" "),
                    cells,
                    flag: row.emphasis.as_ref().map(|flag| FlagView {
                        sign: match flag.severity {
                            Severity::Alert => "⚠",
                            Severity::Warning => "!",
                        },
                        reason: flag.reason.get(lang).to_string(),
                    }),
                }
            })
            .collect();
        TableView {
            id: table.id.clone(),
            title: table.title.get(lang).to_string(),
            header: table.header(lang),
            flags,
            rows,
            notes: table
                .notes
                .iter()
                .map(|n| n.get(lang).to_string())
                .collect(),
        }
    }
}

/// Standard base64 with padding (for the embedded logo).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let index = usize::try_from((n >> (18 - 6 * i)) & 63).unwrap_or(0);
                out.push(char::from(ALPHABET[index]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
