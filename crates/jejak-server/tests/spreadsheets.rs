//! The reports' files as a spreadsheet program reads and prints them: LibreOffice
//! (Debian's `libreoffice-calc-nogui`), run headless, on the files the report API
//! serves for a real synced month.
//!
//! - The village workbook printed to PDF keeps the long note under the title whole on
//!   every sheet (it wraps inside the table's width instead of being cut off on both
//!   sides).
//! - The CSV files opened as a spreadsheet under an Indonesian locale (`csv_dialect=id`)
//!   and under an English one (the standard dialect): every number is a number cell
//!   with the value the report shows, and "Anak (≤12)" arrives intact (the byte-order
//!   mark names UTF-8; nothing tells LibreOffice the character set otherwise).
//!
//! - The printable village report printed by headless Chromium numbers every page
//!   ("Halaman X dari Y") and ends with the signature block, its two columns side by
//!   side: the head of the village and the manager, their names on one line, the NIP.
//!
//! Without LibreOffice (or `pdftotext`, Debian's `poppler-utils`, or Chromium) the
//! tests print a `SKIPPED:` line and pass, unless `JEJAK_REQUIRE_CHECKERS=1` (set by
//! CI).
#![allow(clippy::unwrap_used)]

#[path = "../../../tests/support/checkers.rs"]
mod checkers;
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use chrono::{TimeZone, Utc};
use common::TestServer;
use jejak_server::ServerStore;
use jejak_server::report::{Cell, ColumnKind, Report};

/// A server whose October 2026 is synced for two libraries, and a staff token.
async fn district() -> (TestServer, String) {
    let server = TestServer::start().await;
    let target = Utc.with_ymd_and_hms(2026, 11, 3, 5, 0, 0).unwrap();
    server.clock.advance(target - server.clock.now());
    server
        .sync_simulated(
            &[
                ("dermaji", "pc-01", 60),
                ("dermaji", "pc-02", 45),
                ("karangsari", "pc-01", 50),
            ],
            3,
        )
        .await;
    let staff = server.store.add_staff("dinas").await.unwrap();
    (server, staff.expose().to_string())
}

/// A report file as the API serves it.
async fn fetch(server: &TestServer, staff: &str, path_and_query: &str) -> Vec<u8> {
    let response = server
        .http
        .get(format!("{}/api/v1/reports/{path_and_query}", server.url))
        .bearer_auth(staff)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "{path_and_query}");
    response.bytes().await.unwrap().to_vec()
}

/// LibreOffice's `soffice` and Poppler's `pdftotext`, when installed.
fn office_tools() -> Option<(PathBuf, PathBuf)> {
    let soffice = checkers::find(
        "reading the reports as a spreadsheet program (LibreOffice: apt-get install libreoffice-calc-nogui)",
        PathBuf::from("/usr/bin/soffice"),
    )?;
    let pdftotext = checkers::find(
        "reading a printed report (pdftotext: apt-get install poppler-utils)",
        PathBuf::from("/usr/bin/pdftotext"),
    )?;
    Some((soffice, pdftotext))
}

/// Converts `input` with LibreOffice (`--convert-to target`, with `filter` options when
/// given) into `dir`, under a profile of its own in `dir`; returns the new file.
fn convert(
    soffice: &Path,
    input: &Path,
    target: &str,
    infilter: Option<&str>,
    dir: &Path,
) -> PathBuf {
    let profile = dir.join("lo-profile");
    let mut command = Command::new(soffice);
    command
        .arg(format!(
            "-env:UserInstallation=file://{}",
            profile.display()
        ))
        .args(["--headless", "--norestore", "--nolockcheck"]);
    if let Some(filter) = infilter {
        command.arg(format!("--infilter={filter}"));
    }
    let output = command
        .args(["--convert-to", target, "--outdir"])
        .arg(dir)
        .arg(input)
        .output()
        .unwrap();
    let extension = target.split(':').next().unwrap();
    let converted = dir.join(input.with_extension(extension).file_name().unwrap());
    assert!(
        converted.exists(),
        "LibreOffice made no {extension}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    converted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_printed_village_workbook_keeps_the_long_note_whole() {
    let Some((soffice, pdftotext)) = office_tools() else {
        return;
    };
    let (server, staff) = district().await;
    let dir = tempfile::tempdir().unwrap();
    let xlsx = dir.path().join("village.xlsx");
    std::fs::write(
        &xlsx,
        fetch(
            &server,
            &staff,
            "village?month=2026-10&library=dermaji&format=xlsx",
        )
        .await,
    )
    .unwrap();
    let report: jejak_server::report::Report = serde_json::from_slice(
        &fetch(&server, &staff, "village?month=2026-10&library=dermaji").await,
    )
    .unwrap();
    let note = report
        .subtitle
        .iter()
        .map(|line| line.id.as_str())
        .max_by_key(|line| line.len())
        .unwrap();
    assert!(note.len() > 150, "the long note: {note}");

    let pdf = convert(&soffice, &xlsx, "pdf", None, dir.path());
    let (ok, text) = checkers::run(&pdftotext, &[pdf.to_str().unwrap(), "-"]);
    assert!(ok, "{text}");
    // Every sheet prints the note whole: its words in order, none cut off at either end.
    let printed: Vec<&str> = text.split_whitespace().collect();
    let words: Vec<&str> = note.split_whitespace().collect();
    let whole = printed
        .windows(words.len())
        .filter(|window| *window == words.as_slice())
        .count();
    assert_eq!(
        whole,
        report.sections.len(),
        "the note printed whole on {whole} of {} sheets; the printed text:\n{text}",
        report.sections.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_printed_village_report_numbers_its_pages_and_ends_with_the_signature_block() {
    let Some(chromium) = checkers::find(
        "printing the printable report (Chromium: apt-get install chromium)",
        PathBuf::from("/usr/bin/chromium"),
    ) else {
        return;
    };
    let Some(pdftotext) = checkers::find(
        "reading a printed report (pdftotext: apt-get install poppler-utils)",
        PathBuf::from("/usr/bin/pdftotext"),
    ) else {
        return;
    };
    let (server, staff) = district().await;
    let mut edit = jejak_domain::LibraryDetailsEdit::default();
    for (field, value) in [
        (jejak_domain::DetailField::Desa, "Dermaji"),
        (jejak_domain::DetailField::KepalaDesa, "Slamet Riyadi"),
        (jejak_domain::DetailField::Manager, "Siti Aminah"),
        (jejak_domain::DetailField::ManagerNip, "198503122010012004"),
    ] {
        edit.set(field, value).unwrap();
    }
    server
        .store
        .edit_library(
            &jejak_domain::LibraryCode::parse("dermaji").unwrap(),
            None,
            &edit,
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("village.html");
    std::fs::write(
        &html,
        fetch(
            &server,
            &staff,
            "village?month=2026-10&library=dermaji&format=html",
        )
        .await,
    )
    .unwrap();
    let pdf = dir.path().join("village.pdf");
    let (ok, said) = checkers::run(
        &chromium,
        &[
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-dev-shm-usage",
            &format!("--user-data-dir={}", dir.path().join("profile").display()),
            "--no-pdf-header-footer",
            &format!("--print-to-pdf={}", pdf.display()),
            &format!("file://{}", html.display()),
        ],
    );
    assert!(ok && pdf.exists(), "Chromium printed nothing: {said}");
    let (ok, text) = checkers::run(&pdftotext, &["-layout", pdf.to_str().unwrap(), "-"]);
    assert!(ok, "{text}");

    // Every page says its number and how many there are.
    let pages = text
        .split('\u{c}')
        .filter(|page| !page.trim().is_empty())
        .count();
    assert!(
        pages >= 2,
        "the village report takes more than a page: {text}"
    );
    for page in 1..=pages {
        let number = format!("Halaman {page} dari {pages}");
        assert!(text.contains(&number), "{number} missing:\n{text}");
    }
    // The signature block after the last table, the two columns side by side.
    let lines: Vec<&str> = text.lines().collect();
    let side_by_side = |left: &str, right: &str| {
        lines
            .iter()
            .position(|line| line.contains(left) && line.contains(right))
            .unwrap_or_else(|| panic!("'{left}' and '{right}' not on one line:\n{text}"))
    };
    let first = side_by_side("Mengetahui,", "Dermaji, 3 November 2026");
    let heads = side_by_side("Kepala Desa Dermaji", "Pengelola Perpustakaan");
    let names = side_by_side("Slamet Riyadi", "Siti Aminah");
    assert!(first < heads && heads < names, "{text}");
    assert!(
        lines[names + 1].contains("NIP 19850312 201001 2 004"),
        "{text}"
    );
    let last_table = lines
        .iter()
        .rposition(|line| line.contains("pc-02"))
        .unwrap();
    assert!(last_table < first, "after the per-PC table:\n{text}");
}

/// LibreOffice's CSV import options: field separator, text delimiter (`"`), character
/// set left to the file (the byte-order mark), first line 1, no column formats, and
/// the locale numbers are read in (an LCID: 1057 is id-ID, 1033 en-US).
fn csv_filter(separator: char, locale: u32) -> String {
    format!("CSV:{},34,,1,,{locale}", u32::from(separator))
}

/// Opens the CSV `bytes` in LibreOffice as `csv_filter` says, saves the sheet as XLSX
/// and reads it back: what a person sees after opening the file.
fn open_as_spreadsheet(
    soffice: &Path,
    bytes: &[u8],
    separator: char,
    locale: u32,
    dir: &Path,
) -> calamine::Range<Data> {
    let csv = dir.join(format!("sheet-{locale}.csv"));
    std::fs::write(&csv, bytes).unwrap();
    let xlsx = convert(
        soffice,
        &csv,
        "xlsx:Calc MS Excel 2007 XML",
        Some(&csv_filter(separator, locale)),
        dir,
    );
    let mut book: Xlsx<_> =
        open_workbook_from_rs(std::io::Cursor::new(std::fs::read(xlsx).unwrap())).unwrap();
    let name = book.sheet_names()[0].clone();
    book.worksheet_range(&name).unwrap()
}

/// Every cell of `table` as the spreadsheet holds it: labels as text, numbers as
/// numbers equal to what the report shows (shares in percent), totals after a blank row.
fn assert_spreadsheet_holds(sheet: &calamine::Range<Data>, report: &Report, table_id: &str) {
    let table = report.sections.iter().find(|t| t.id == table_id).unwrap();
    let rows: Vec<&[Data]> = sheet.rows().collect();
    let label = |data: &Data| match data {
        Data::String(s) => s.clone(),
        other => panic!("{table_id}: a label read as {other:?}"),
    };
    assert_eq!(label(&rows[0][0]), table.columns[0].label.id, "{table_id}");
    let data_rows = table.rows.iter().filter(|r| !r.is_total).count();
    let mut numbers = 0;
    for (i, row) in table.rows.iter().enumerate() {
        // The total comes after a blank row.
        let at = 1 + i + usize::from(row.is_total);
        if row.is_total {
            assert!(
                rows[1 + data_rows].iter().all(|d| matches!(d, Data::Empty)),
                "{table_id}: no blank row before the total"
            );
        }
        for ((cell, column), read) in row.cells.iter().zip(&table.columns).zip(rows[at].iter()) {
            match cell {
                Cell::Number(n) => {
                    let (value, places) = match column.kind {
                        ColumnKind::Percent(p) => (n * 100.0, p),
                        ColumnKind::Decimal(p) => (*n, p),
                        _ => (*n, 0),
                    };
                    let read = match read {
                        Data::Float(f) => *f,
                        Data::Int(i) => *i as f64,
                        other => panic!(
                            "{table_id} row {at}, {}: {value} read as {other:?}",
                            column.key
                        ),
                    };
                    let scale = 10f64.powi(i32::from(places));
                    assert!(
                        (read - (value * scale).round() / scale).abs() < 1e-9,
                        "{table_id} row {at}, {}: {read} is not {value} to {places} places",
                        column.key
                    );
                    numbers += 1;
                }
                Cell::Text(text) if column.kind == ColumnKind::Text => {
                    assert_eq!(&label(read), text, "{table_id} row {at}")
                }
                _ => {}
            }
        }
    }
    assert!(numbers >= 8, "{table_id}: {numbers} numbers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_reads_as_numbers_in_an_indonesian_and_an_english_spreadsheet() {
    let Some((soffice, _)) = office_tools() else {
        return;
    };
    let (server, staff) = district().await;
    let dir = tempfile::tempdir().unwrap();
    for (endpoint, table) in [
        ("district?month=2026-10", "libraries"),
        ("village?month=2026-10&library=dermaji", "age_by_gender"),
        ("village?month=2026-10&library=dermaji", "summary"),
        ("quarter?quarter=2026-Q4", "sessions_by_month"),
    ] {
        let report: Report =
            serde_json::from_slice(&fetch(&server, &staff, endpoint).await).unwrap();
        // Indonesian Excel or LibreOffice: `;` and decimal commas.
        let bytes = fetch(
            &server,
            &staff,
            &format!("{endpoint}&format=csv&table={table}&csv_dialect=id"),
        )
        .await;
        let sheet = open_as_spreadsheet(&soffice, &bytes, ';', 1057, dir.path());
        assert_spreadsheet_holds(&sheet, &report, table);
        // The standard dialect in an English one.
        let bytes = fetch(
            &server,
            &staff,
            &format!("{endpoint}&format=csv&table={table}"),
        )
        .await;
        let sheet = open_as_spreadsheet(&soffice, &bytes, ',', 1033, dir.path());
        assert_spreadsheet_holds(&sheet, &report, table);
    }
}
