//! Tests of the report model and its renderers.

use std::io::Cursor;

use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use chrono::{FixedOffset, TimeZone};
use jejak_domain::Lang;

use super::*;

fn sample() -> Report {
    let wib = FixedOffset::east_opt(7 * 3600).expect("offset");
    let columns = vec![
        Column::new(
            "library",
            Text::new("Perpustakaan", "Library"),
            ColumnKind::Text,
        ),
        Column::new("sessions", Text::new("Sesi", "Sessions"), ColumnKind::Count),
        Column::new("hours", Text::new("Jam", "Hours"), ColumnKind::Decimal(1)),
        Column::new(
            "uptime",
            Text::new("Uptime internet", "Internet uptime"),
            ColumnKind::Percent(1),
        ),
        Column::new(
            "last_sync",
            Text::new("Sinkron terakhir", "Last sync"),
            ColumnKind::Date,
        ),
    ];
    let rows = vec![
        Row::new(vec![
            Cell::text("Perpus Desa Karangsari, \"Sekar\""),
            Cell::number(1234),
            Cell::number(1234.5),
            Cell::number(0.875),
            Cell::text("2026-11-28"),
        ]),
        Row::new(vec![
            Cell::text("Desa <script>alert(1)</script>"),
            Cell::number(3),
            Cell::number(2.25),
            Cell::number(0.42),
            Cell::text("2026-11-02"),
        ])
        .flagged(Flag::alert(Text::new(
            "Uptime di bawah 50%",
            "Uptime below 50%",
        ))),
        Row::new(vec![
            Cell::text("Desa Baru\nbaris dua"),
            Cell::number(0),
            Cell::Empty,
            Cell::Empty,
            Cell::Empty,
        ]),
        Row::total(vec![
            Cell::text("Jumlah"),
            Cell::number(1237),
            Cell::number(1236.75),
            Cell::number(0.6475),
            Cell::Empty,
        ]),
    ];
    let gender = Table {
        id: "gender".into(),
        title: Text::new("Jenis kelamin", "Gender"),
        columns: vec![
            Column::new(
                "gender",
                Text::new("Jenis kelamin", "Gender"),
                ColumnKind::Text,
            ),
            Column::new("sessions", Text::new("Sesi", "Sessions"), ColumnKind::Count),
        ],
        rows: vec![
            Row::new(vec![Cell::text("L"), Cell::number(700)]),
            Row::new(vec![Cell::text("P"), Cell::number(537)]),
        ],
        notes: Vec::new(),
    };
    Report {
        id: "rekap-2026-11".into(),
        title: Text::new("Rekap Bulanan Kabupaten", "District Monthly Summary"),
        subtitle: vec![Text::new("Bulan: November 2026", "Month: November 2026")],
        letterhead: Letterhead {
            lines: vec![
                "PEMERINTAH KABUPATEN BANYUMAS".into(),
                "DINAS ARSIP DAN PERPUSTAKAAN".into(),
                "Jl. Jend. Gatot Subroto No. 93, Purwokerto".into(),
            ],
            logo: None,
        },
        sections: vec![
            Table {
                id: "matrix".into(),
                title: Text::new(
                    "Rekap per perpustakaan desa [bulanan]: November 2026",
                    "Per village library [monthly]: November 2026",
                ),
                columns,
                rows,
                notes: Vec::new(),
            },
            gender,
        ],
        generated_at: wib
            .with_ymd_and_hms(2026, 12, 1, 8, 30, 0)
            .single()
            .expect("time"),
        landscape: true,
        suppressed_below: None,
        signature: None,
    }
}

fn id() -> RenderOptions {
    RenderOptions::new(Lang::Id)
}

fn en() -> RenderOptions {
    RenderOptions::new(Lang::En)
}

#[test]
fn numbers_read_in_id_and_en_style() {
    assert_eq!(format_number(1234.5, 1, Lang::Id), "1.234,5");
    assert_eq!(format_number(1234.5, 1, Lang::En), "1,234.5");
    assert_eq!(format_number(1_234_567.0, 0, Lang::Id), "1.234.567");
    assert_eq!(format_number(1_234_567.0, 0, Lang::En), "1,234,567");
    assert_eq!(format_number(999.0, 0, Lang::Id), "999");
    assert_eq!(format_number(0.0, 2, Lang::Id), "0,00");
    assert_eq!(format_number(-1234.56, 1, Lang::Id), "-1.234,6");
    assert_eq!(format_number(-0.01, 1, Lang::En), "0.0");
    assert_eq!(format_number(f64::NAN, 1, Lang::En), "–");
    // Halves round away from zero, as people round by hand.
    assert_eq!(format_number(2.25, 1, Lang::Id), "2,3");
    assert_eq!(format_number(0.125, 2, Lang::En), "0.13");
    assert_eq!(format_number(-2.5, 0, Lang::En), "-3");
    let text = render_terminal(&sample(), &id());
    assert!(text.contains("1.234,5"), "{text}");
    assert!(text.contains("87,5%"), "{text}");
    let text = render_terminal(&sample(), &en());
    assert!(text.contains("1,234.5"), "{text}");
    assert!(text.contains("87.5%"), "{text}");
    assert!(text.contains("District Monthly Summary"));
    assert!(text.contains("Σ Jumlah"));
    assert!(text.contains("Uptime below 50%"));
}

#[test]
fn suppression_hides_small_counts_in_every_format() {
    let report = sample();
    let options = id().suppressing_below(5);

    let text = render_terminal(&report, &options);
    assert!(text.contains("<5"), "{text}");
    assert!(text.contains("1.234"));
    assert!(text.contains("ditampilkan sebagai <5"));

    let csv = render_csv(&report, &options);
    let matrix = &csv[0].content;
    assert!(matrix.contains(",<5,"), "{matrix}");
    // Zero and large counts stay; hours are not counts (shown to one place).
    assert!(matrix.contains(",0,"), "{matrix}");
    assert!(matrix.contains(",2.3,"), "{matrix}");

    let html = render_html(&report, &options);
    // askama escapes with numeric character references (`<` is `&#60;`).
    assert!(html.contains("<td class=\"n\">&#60;5</td>"), "{html}");
    assert!(!html.contains("<td class=\"n\">3</td>"));

    let json = render_json(&report, &options).expect("json");
    let value: serde_json::Value = serde_json::from_str(&json).expect("parse");
    assert_eq!(value["suppressed_below"], 5);
    assert_eq!(value["sections"][0]["rows"][1]["cells"][1], "<5");
    assert_eq!(value["sections"][0]["rows"][0]["cells"][1], 1234);

    let bytes = render_xlsx(&report, &options).expect("xlsx");
    let mut book: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).expect("open");
    let name = book.sheet_names()[0].clone();
    let range = book.worksheet_range(&name).expect("sheet");
    let found: Vec<&Data> = range
        .used_cells()
        .filter(|(_, _, d)| matches!(d, Data::String(s) if s == "<5"))
        .map(|(_, _, d)| d)
        .collect();
    assert_eq!(found.len(), 1);
    assert!(
        !range
            .used_cells()
            .any(|(_, _, d)| matches!(d, Data::Float(f) if *f == 3.0))
    );

    // Without the option, JSON keeps the numbers and no marker.
    let json = render_json(&report, &id()).expect("json");
    let value: serde_json::Value = serde_json::from_str(&json).expect("parse");
    assert!(value.get("suppressed_below").is_none());
    assert_eq!(value["sections"][0]["rows"][1]["cells"][1], 3);
}

#[test]
fn csv_follows_rfc_4180_and_shows_what_the_report_shows() {
    let files = render_csv(&sample(), &en());
    assert_eq!(files.len(), 2);
    assert_eq!(files[0].name, "rekap-2026-11-matrix.csv");
    assert_eq!(files[1].name, "rekap-2026-11-gender.csv");
    // A UTF-8 byte-order mark first, for Excel.
    let content = files[0].content.strip_prefix(UTF8_BOM).expect("a BOM");
    let lines: Vec<&str> = content.split("\r\n").collect();
    // The share is a percentage now, and its header says so.
    assert_eq!(
        lines[0],
        "Library,Sessions,Hours,Internet uptime (%),Last sync,Note"
    );
    // Numbers rounded to the places the report shows.
    assert_eq!(
        lines[1],
        "\"Perpus Desa Karangsari, \"\"Sekar\"\"\",1234,1234.5,87.5,2026-11-28,"
    );
    assert_eq!(
        lines[2],
        "Desa <script>alert(1)</script>,3,2.3,42.0,2026-11-02,Uptime below 50%"
    );
    // A newline inside a field keeps the field quoted across lines.
    assert_eq!(lines[3], "\"Desa Baru\nbaris dua\",0,,,,");
    // The total apart from the data rows.
    assert_eq!(lines[4], "");
    assert_eq!(lines[5], "Jumlah,1237,1236.8,64.8,,");
    assert!(files[0].content.ends_with("\r\n"));
    // Indonesian labels by default.
    let files = render_csv(&sample(), &RenderOptions::default());
    assert!(
        files[1]
            .content
            .starts_with("\u{feff}Jenis kelamin,Sesi\r\n")
    );
}

#[test]
fn the_indonesian_csv_dialect_has_semicolons_and_decimal_commas() {
    let options = id().with_csv_dialect(CsvDialect::Indonesian);
    let files = render_csv(&sample(), &options);
    let content = files[0].content.strip_prefix(UTF8_BOM).expect("a BOM");
    let lines: Vec<&str> = content.split("\r\n").collect();
    assert_eq!(
        lines[0],
        "Perpustakaan;Sesi;Jam;Uptime internet (%);Sinkron terakhir;Catatan"
    );
    // The decimals are commas; fields are still quoted as RFC 4180 says.
    assert_eq!(
        lines[1],
        "\"Perpus Desa Karangsari, \"\"Sekar\"\"\";1234;1234,5;87,5;2026-11-28;"
    );
    assert_eq!(lines[4], "");
    assert_eq!(lines[5], "Jumlah;1237;1236,8;64,8;;");

    // Every table in one file, for people: one BOM, each table under its title.
    let combined = render_csv_combined(&sample(), &options);
    assert_eq!(combined.matches(UTF8_BOM).count(), 1);
    assert!(
        combined.starts_with(
            "\u{feff}Rekap per perpustakaan desa [bulanan]: November 2026\r\nPerpustakaan;Sesi;"
        ),
        "{combined}"
    );
    let second = &sample().sections[1];
    assert!(
        combined.contains(&format!(
            "\r\n\r\n{}\r\nJenis kelamin;Sesi\r\n",
            second.title.id
        )),
        "{combined}"
    );
}

#[test]
fn html_is_a_standalone_escaped_a4_page() {
    let html = render_html(&sample(), &id());
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<html lang=\"id\">"));
    assert!(html.contains("@page { size: A4 landscape"));
    assert!(!html.contains("<script>"));
    assert!(!html.to_lowercase().contains("<script"));
    assert!(html.contains("Desa &#60;script&#62;alert(1)&#60;/script&#62;"));
    assert!(html.contains("Karangsari, &#34;Sekar&#34;"));
    assert!(html.contains("<div>PEMERINTAH KABUPATEN BANYUMAS</div>"));
    assert!(html.contains("<div>DINAS ARSIP DAN PERPUSTAKAAN</div>"));
    assert!(html.contains("<td class=\"n\">1.234,5</td>"));
    assert!(html.contains("<tr class=\"alert\">"));
    assert!(html.contains("<tr class=\"total\">"));
    assert!(html.contains("Rekap per perpustakaan desa [bulanan]"));
    assert!(html.contains("Dibuat Selasa, 1 Desember 2026 08:30 WIB"));
    // Dates in the long form, the day of the week named.
    assert!(html.contains("<td>Sabtu, 28 November 2026</td>"));
    // Every printed page is numbered in the bottom margin.
    assert!(html.contains(
        "@bottom-right { content: \"Halaman \" counter(page) \" dari \" counter(pages);"
    ));
    assert!(!html.contains("http://") && !html.contains("https://"));
    let html = render_html(&sample(), &en());
    assert!(html.contains("<td class=\"n\">1,234.5</td>"));
    assert!(html.contains("Generated Tuesday, 1 December 2026 08:30 WIB"));
    assert!(html.contains("<td>Saturday, 28 November 2026</td>"));
    assert!(html.contains("\"Page \" counter(page) \" of \" counter(pages)"));
    // A logo is embedded, never fetched.
    let mut report = sample();
    report.letterhead.logo = Some(Logo {
        media_type: "image/png".into(),
        bytes: b"foo".to_vec(),
    });
    assert!(render_html(&report, &id()).contains("src=\"data:image/png;base64,Zm9v\""));
}

#[test]
fn xlsx_has_real_numbers_labels_and_letterhead() {
    let report = sample();
    for options in [id(), en()] {
        let lang = options.lang;
        let bytes = render_xlsx(&report, &options).expect("xlsx");
        let mut book: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).expect("open");
        let names = book.sheet_names();
        assert_eq!(names.len(), report.sections.len());
        for name in &names {
            assert!(name.chars().count() <= 31, "{name}");
            assert!(!name.contains(['[', ']', ':']), "{name}");
        }
        assert_eq!(names[1], report.sections[1].title.get(lang));
        for (name, table) in names.iter().zip(&report.sections) {
            let range = book.worksheet_range(name).expect("sheet");
            let cell = |r: u32, c: u32| range.get_value((r, c)).cloned().unwrap_or(Data::Empty);
            // Letterhead lines, then the title.
            for (i, line) in report.letterhead.lines.iter().enumerate() {
                assert_eq!(
                    cell(u32::try_from(i).expect("row"), 0),
                    Data::String(line.clone())
                );
            }
            assert_eq!(cell(3, 0), Data::String(report.title.get(lang).to_string()));
            // Three letterhead lines, title, one subtitle, table title, a blank row.
            let header = 7;
            assert_eq!(
                cell(header - 2, 0),
                Data::String(table.title.get(lang).to_string())
            );
            for (c, label) in table.header(lang).iter().enumerate() {
                let c = u32::try_from(c).expect("col");
                assert_eq!(cell(header, c), Data::String(label.clone()));
            }
            // Every number cell of the model is a number cell with the same value.
            let mut numbers = 0;
            for (r, row) in table.rows.iter().enumerate() {
                let r = header + 1 + u32::try_from(r).expect("row");
                for (c, model) in row.cells.iter().enumerate() {
                    let c = u32::try_from(c).expect("col");
                    match model {
                        Cell::Number(n) => {
                            assert_eq!(cell(r, c), Data::Float(*n), "{name} ({r},{c})");
                            numbers += 1;
                        }
                        Cell::Text(t) if table.columns[c as usize].kind == ColumnKind::Date => {
                            assert!(
                                matches!(cell(r, c), Data::DateTime(_)),
                                "{t} {:?}",
                                cell(r, c)
                            );
                        }
                        Cell::Text(t) => assert_eq!(cell(r, c), Data::String(t.clone())),
                        Cell::Empty => assert_eq!(cell(r, c), Data::Empty),
                    }
                }
            }
            assert!(numbers > 0);
        }
    }
}

#[test]
fn sheet_names_are_short_valid_and_unique() {
    let mut used = std::collections::HashSet::new();
    let long = "Tabel Tujuan Penggunaan × Jenis Kelamin per Desa";
    let a = xlsx::sheet_name(long, "t", &mut used);
    let b = xlsx::sheet_name(long, "t", &mut used);
    let c = xlsx::sheet_name("'a/b:c'", "t", &mut used);
    let d = xlsx::sheet_name("[]", "fallback", &mut used);
    assert_eq!(a.chars().count(), 31);
    assert!(b.ends_with(" (2)") && b.chars().count() <= 31, "{b}");
    assert_ne!(a, b);
    assert_eq!(c, "a b c");
    assert_eq!(d, "fallback");
}

#[test]
fn json_is_the_model_with_numbers_as_numbers() {
    let report = sample();
    let json = render_json(&report, &id()).expect("json");
    let value: serde_json::Value = serde_json::from_str(&json).expect("parse");
    assert_eq!(value["sections"][0]["rows"][0]["cells"][2], 1234.5);
    assert_eq!(
        value["sections"][0]["rows"][2]["cells"][2],
        serde_json::Value::Null
    );
    assert_eq!(
        value["sections"][0]["columns"][2]["kind"]["type"],
        "decimal"
    );
    assert_eq!(value["sections"][0]["rows"][3]["is_total"], true);
    let back: Report = serde_json::from_str(&json).expect("round trip");
    assert_eq!(back, report);
}

/// A report with a signature block, as the village monthly report has.
fn signed() -> Report {
    let mut report = sample();
    report.signature = Some(Signature {
        place: Some("Dermaji".into()),
        date: chrono::NaiveDate::from_ymd_opt(2026, 11, 2).expect("date"),
        acknowledged_by: Signatory {
            heading: vec![
                Text::new("Mengetahui,", "Acknowledged by,"),
                Text::new("Kepala Desa Dermaji", "Head of Dermaji Village"),
            ],
            name: Some("Slamet <Riyadi>".into()),
            nip: None,
        },
        made_by: Signatory {
            heading: vec![Text::new("Pengelola Perpustakaan", "Library Manager")],
            name: None,
            nip: Some("19850312 201001 2 004".into()),
        },
    });
    report
}

#[test]
fn the_signature_block_closes_the_printed_report_and_the_text_formats() {
    let report = signed();
    let html = render_html(&report, &id());
    let block = &html[html
        .find("<section class=\"signature\"")
        .expect("a signature block")..];
    let glossary = block.find("glossary").unwrap_or(block.len());
    assert!(
        html.find("<section class=\"signature\"") > html.rfind("</table>"),
        "after the tables"
    );
    let block = &block[..glossary];
    for expected in [
        "<div class=\"line\">Mengetahui,</div>",
        "<div class=\"line\">Kepala Desa Dermaji</div>",
        "<div class=\"name\">Slamet &#60;Riyadi&#62;</div>",
        "<div class=\"line\">Dermaji, 2 November 2026</div>",
        "<div class=\"line\">Pengelola Perpustakaan</div>",
        // No name given: a line to write it on by hand.
        "<div class=\"name\">(................................)</div>",
        "<div>NIP 19850312 201001 2 004</div>",
        "<div class=\"space\"></div>",
    ] {
        assert!(block.contains(expected), "{expected} in {block}");
    }
    assert!(html.contains(".signature { margin-top: 10mm; display: grid;"));
    assert!(html.contains("break-inside: avoid; }\n.signature > div"));
    let english = render_html(&report, &en());
    assert!(english.contains("<div class=\"line\">Acknowledged by,</div>"));
    assert!(english.contains("<div class=\"line\">Dermaji, 2 November 2026</div>"));

    let terminal = render_terminal(&report, &id());
    let at = terminal
        .find("Dermaji, 2 November 2026")
        .expect("in the terminal");
    assert!(
        at > terminal.rfind('└').expect("a table"),
        "after the tables"
    );
    assert!(terminal[at..].contains("Mengetahui,\nKepala Desa Dermaji\n\nSlamet <Riyadi>\n"));
    assert!(terminal[at..].contains(
        "Pengelola Perpustakaan\n\n(................................)\nNIP 19850312 201001 2 004\n"
    ));

    // The combined CSV ends with it, a line per record; a single table's file does not.
    let combined = render_csv_combined(&report, &id());
    assert!(
        combined.ends_with(
            "P,537\r\n\r\n\"Dermaji, 2 November 2026\"\r\n\"\"\r\n\"Mengetahui,\"\r\n\
             Kepala Desa Dermaji\r\n\"\"\r\nSlamet <Riyadi>\r\n\"\"\r\nPengelola Perpustakaan\r\n\
             \"\"\r\n(................................)\r\nNIP 19850312 201001 2 004\r\n"
        ),
        "{combined}"
    );
    assert!(!table_csv(&report.sections[0], &id()).contains("Mengetahui"));

    // XLSX: plain lines under the last sheet's table, none on the others.
    let bytes = render_xlsx(&report, &id()).expect("xlsx");
    let mut book: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).expect("open");
    let names = book.sheet_names();
    let mut texts = |name: &str| -> Vec<String> {
        let range = book.worksheet_range(name).expect("sheet");
        range
            .rows()
            .filter_map(|row| match row.first() {
                Some(Data::String(text)) => Some(text.clone()),
                _ => None,
            })
            .collect()
    };
    let last = texts(names.last().expect("a sheet"));
    let place = last
        .iter()
        .position(|t| t == "Dermaji, 2 November 2026")
        .expect("the place and date on the last sheet");
    assert_eq!(last[place + 1], "Mengetahui,", "blank lines are left out");
    assert!(last.contains(&"NIP 19850312 201001 2 004".to_string()));
    assert!(!texts(&names[0]).contains(&"Mengetahui,".to_string()));
}
