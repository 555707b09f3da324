//! The reports' files as a spreadsheet program reads and prints them: LibreOffice
//! (Debian's `libreoffice-calc-nogui`), run headless, on the files the report API
//! serves for a real synced month.
//!
//! - The village workbook printed to PDF keeps the long note under the title whole on
//!   every sheet (it wraps inside the table's width instead of being cut off on both
//!   sides).
//!
//! Without LibreOffice (or `pdftotext`, Debian's `poppler-utils`) the tests print a
//! `SKIPPED:` line and pass, unless `JEJAK_REQUIRE_CHECKERS=1` (set by CI).
#![allow(clippy::unwrap_used)]

#[path = "../../../tests/support/checkers.rs"]
mod checkers;
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{TimeZone, Utc};
use common::TestServer;
use jejak_server::ServerStore;

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
