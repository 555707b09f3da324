//! The printable A4 HTML page.
//!
//! A complete standalone page: inline CSS, no scripts, no external resources (a logo is
//! embedded as a `data:` URI), `@page { size: A4 }` (landscape when the report says
//! so). The letterhead (kop) is centered with a double rule under it, then the title,
//! subtitle lines and the tables with numbers in the chosen language's style; total
//! rows bold, flagged rows filled and their reason in a "Catatan"/"Note" column; a
//! footer with the generation time. Every text from the model is HTML-escaped.

use std::fmt::Write as _;

use super::model::{generated_text, human_cell};
use super::{RenderOptions, Report, Severity};

const STYLE: &str = "\
@page { size: A4 PORTRAIT_OR_LANDSCAPE; margin: 15mm 12mm; }
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
footer { margin-top: 8mm; font-size: 8pt; color: #333; border-top: 1px solid #999; padding-top: 1mm; }
";

/// The report as a standalone, printable A4 HTML page (suppression applied).
pub fn render_html(report: &Report, options: &RenderOptions) -> String {
    let lang = options.lang;
    let report = report.for_export(options);
    let mut out = String::with_capacity(8192);
    let orientation = if report.landscape {
        "landscape"
    } else {
        "portrait"
    };
    let title = report.title.get(lang);
    out.push_str("<!DOCTYPE html>\n");
    let _ = write!(
        out,
        "<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>\n{}</style>\n</head>\n<body>\n",
        lang.code(),
        escape(title),
        STYLE.replace("PORTRAIT_OR_LANDSCAPE", orientation)
    );

    let letterhead = &report.letterhead;
    if !letterhead.lines.is_empty() || letterhead.logo.is_some() {
        out.push_str("<header class=\"kop\">\n");
        if let Some(logo) = &letterhead.logo {
            let _ = writeln!(
                out,
                "<img alt=\"logo\" src=\"data:{};base64,{}\">",
                escape(&logo.media_type),
                base64(&logo.bytes)
            );
        }
        out.push_str("<div class=\"lines\">\n");
        for line in &letterhead.lines {
            let _ = writeln!(out, "<div>{}</div>", escape(line));
        }
        out.push_str("</div>\n</header>\n");
    }

    let _ = writeln!(out, "<h1>{}</h1>", escape(title));
    for line in &report.subtitle {
        let _ = writeln!(out, "<p class=\"sub\">{}</p>", escape(line.get(lang)));
    }

    for table in &report.sections {
        let _ = writeln!(
            out,
            "<section id=\"{}\">\n<h2>{}</h2>\n<table>\n<thead><tr>",
            escape(&table.id),
            escape(table.title.get(lang))
        );
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
            for (column, cell) in table.columns.iter().zip(&row.cells) {
                let text = escape(&human_cell(cell, column.kind, lang));
                if column.kind.is_numeric() {
                    let _ = write!(out, "<td class=\"n\">{text}</td>");
                } else {
                    let _ = write!(out, "<td>{text}</td>");
                }
            }
            if flags {
                let reason = row
                    .emphasis
                    .as_ref()
                    .map(|flag| flag.reason.get(lang))
                    .unwrap_or_default();
                let _ = write!(out, "<td>{}</td>", escape(reason));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody>\n</table>\n</section>\n");
    }

    if let Some(note) = report.suppression_note(lang) {
        let _ = writeln!(out, "<p class=\"note\">{}</p>", escape(&note));
    }
    let _ = write!(
        out,
        "<footer>{} {} — Jejak</footer>\n</body>\n</html>\n",
        lang.pick("Dibuat", "Generated"),
        escape(&generated_text(&report.generated_at))
    );
    out
}

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
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
