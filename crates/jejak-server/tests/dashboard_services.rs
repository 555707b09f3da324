//! The dashboard's visits, activities and IPLM pages on a real server over a real
//! SQLite file: a library whose desk PC sent the visitor book, an activity and the
//! member count through the real batch endpoint, and a library whose PC sent sessions.
//! Each page is closed without a session, shows the library's figures signed in (the
//! figures `report::load` computes), turns an unreadable month or year into a notice,
//! and is valid HTML (the W3C Nu checker, when installed; see
//! `tests/support/checkers.rs`). The IPLM sheet downloads from the dashboard as XLSX
//! and CSV with the same figures.
#![allow(clippy::unwrap_used)]

#[path = "../../../tests/support/checkers.rs"]
mod checkers;
mod common;

use std::io::Cursor;

use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use chrono::{DateTime, Duration, Utc};
use common::TestServer;
use jejak_domain::{
    ActivityPlace, ActivityType, AgeGroup, ChangeRecord, ClientInstant, Gender, Lang, LibraryCode,
    LibraryDetails, Participants, RecordBody, UserKind, Visit, VisitPurpose, WireBatch, YearMonth,
    Zone,
};
use jejak_server::report::{Cell, Report, ReportRequest, format_number, load};
use jejak_server::{DeviceRef, ServerStore};
use jejak_testkit::sim;
use uuid::Uuid;

/// When the desk PC's batch arrives, and the server's clock while the test runs: early
/// November 2026, so October is complete and the current year is 2026.
fn arrival() -> DateTime<Utc> {
    sim::month_start() + Duration::days(38)
}

/// A visitor-book entry of `people` at dermaji's desk on 2 October.
fn desk_visit(device: &DeviceRef, id: u128, purpose: VisitPurpose, people: u32) -> Visit {
    Visit {
        id: Uuid::from_u128(id),
        revision: 1,
        library: device.library.clone(),
        pc: device.pc.clone(),
        at: sim::month_start() + Duration::days(1) + Duration::hours(3),
        run_id: Uuid::from_u128(77),
        mono_ms: 60_000 + id as u64,
        gender: Gender::P,
        age_group: AgeGroup::Remaja,
        user_kind: UserKind::Rombongan,
        purpose,
        people,
        withdrawn: false,
    }
}

/// A batch of `bodies` at seqs 1.. of `device`'s first epoch, sent a second before
/// [`arrival`].
fn entry_batch(device: &DeviceRef, bodies: Vec<RecordBody>) -> WireBatch {
    let records: Vec<ChangeRecord> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| ChangeRecord {
            seq: 1 + i as u64,
            recorded_at: arrival(),
            run_id: body.run_id(),
            mono_ms: 1,
            body,
        })
        .collect();
    let last = records.len() as u64;
    WireBatch::encode(
        Uuid::from_u64_pair(1, last),
        device.library.clone(),
        device.pc.clone(),
        Uuid::from_u128(1),
        1,
        last,
        ClientInstant {
            run: Uuid::from_u128(77),
            mono_ms: 10_000_000,
            wall_ms: arrival().timestamp_millis() - 1_000,
        },
        Vec::new(),
        &records,
    )
}

/// The desk's October in dermaji: a class of 37 reading and 12 at the computers on 2
/// October (49 visits on one day served, no PC check-ins), a socialisation held outside
/// on 3 October with 29 participants, and 120 members of whom 4 new.
const DERMAJI_VISITS: &str = "49";
const DERMAJI_PARTICIPANTS: &str = "29";

/// A district with October 2026: `dermaji` (kecamatan Lumbir) whose desk PC sent the
/// visitor book, an activity and the member count; `karangsari` (kecamatan Kebasen)
/// whose PC sent sessions. Returns the server and a staff token.
async fn district() -> (TestServer, String) {
    let server = TestServer::start().await;
    server
        .clock
        .advance(arrival() + Duration::minutes(1) - server.clock.now());
    for (code, name, kecamatan) in [
        ("dermaji", "Perpustakaan Desa Dermaji", "Lumbir"),
        ("karangsari", "Perpustakaan Desa Karangsari", "Kebasen"),
    ] {
        let details = LibraryDetails {
            kecamatan: Some(kecamatan.to_string()),
            ..LibraryDetails::default()
        };
        server
            .store
            .add_library_with_details(
                &LibraryCode::parse(code).unwrap(),
                name,
                Zone::Wib,
                &details,
            )
            .await
            .unwrap();
    }
    server
        .sync_simulated(&[("karangsari", "pc-01", 40)], 5)
        .await;
    let (token, device) = server.enroll("dermaji", "pc-01").await;
    let month = YearMonth::of(sim::month_start().date_naive()).unwrap();
    let activity = jejak_domain::Activity {
        id: Uuid::from_u128(4242),
        revision: 1,
        library: device.library.clone(),
        pc: device.pc.clone(),
        at: sim::month_start() + Duration::days(20),
        run_id: Uuid::from_u128(77),
        mono_ms: 90_000,
        date: (sim::month_start() + Duration::days(2)).date_naive(),
        start: chrono::NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
        duration_minutes: 120,
        activity_type: ActivityType::SosialisasiKie,
        title: "Sosialisasi gizi".into(),
        partner: None,
        place: ActivityPlace::DiLuar,
        participants: Participants::parse("P:dewasa=17,L:dewasa=9,P:anak=3").unwrap(),
        notes: None,
    };
    let members = jejak_domain::MemberCount {
        id: jejak_domain::MemberCount::id_for(&device.library, month),
        revision: 1,
        library: device.library.clone(),
        pc: device.pc.clone(),
        at: sim::month_start() + Duration::days(30) + Duration::hours(3),
        run_id: Uuid::from_u128(78),
        mono_ms: 1_000,
        month,
        members: 120,
        new_members: 4,
    };
    let batch = entry_batch(
        &device,
        vec![
            RecordBody::Visit(desk_visit(&device, 1, VisitPurpose::Membaca, 37)),
            RecordBody::Visit(desk_visit(&device, 2, VisitPurpose::KomputerInternet, 12)),
            RecordBody::MemberCount(members),
            RecordBody::Activity(activity),
        ],
    );
    let (status, ack) = server.post(&token, &batch).await;
    assert_eq!(status, 200, "{ack}");
    assert_eq!(ack["rejected"].as_array().map(Vec::len), Some(0), "{ack}");
    let staff = server.store.add_staff("Bu Sri").await.unwrap();
    (server, staff.expose().to_string())
}

/// An HTTP client that keeps no cookies and follows no redirects.
fn plain_http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs in; returns the session cookie (`jejak_session=…`).
async fn sign_in(http: &reqwest::Client, url: &str, staff: &str) -> String {
    let response = http
        .post(format!("{url}/dashboard/login"))
        .form(&[("token", staff)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 303);
    response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// GETs `path` with the cookie; returns the status and the body's bytes.
async fn get(http: &reqwest::Client, url: &str, path: &str, cookie: &str) -> (u16, Vec<u8>) {
    let response = http
        .get(format!("{url}{path}"))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.bytes().await.unwrap().to_vec(),
    )
}

async fn page(http: &reqwest::Client, url: &str, path: &str, cookie: &str) -> (u16, String) {
    let (status, body) = get(http, url, path, cookie).await;
    (status, String::from_utf8(body).unwrap())
}

/// The texts of the cells of the row of table `table` whose cells include `<td>{code}</td>`.
fn row_of(html: &str, table: &str, code: &str) -> Vec<String> {
    let start = html
        .find(&format!("id=\"table-{table}\""))
        .unwrap_or_else(|| panic!("no table {table}"));
    let section = &html[start..];
    let section = &section[..section.find("</section>").unwrap()];
    let row = section
        .split("<tr")
        .find(|row| row.contains(&format!("<td>{code}</td>")))
        .unwrap_or_else(|| panic!("no row of {code} in {table}"));
    row.split("<td")
        .skip(1)
        .map(|cell| {
            let text = &cell[cell.find('>').unwrap() + 1..];
            text[..text.find("</td>").unwrap()].to_string()
        })
        .collect()
}

/// The cells of the header of table `table`.
fn header_of(html: &str, table: &str) -> Vec<String> {
    let start = html.find(&format!("id=\"table-{table}\"")).unwrap();
    let head = &html[start..];
    let head = &head[..head.find("</thead>").unwrap()];
    head.split("<th scope=\"col\">")
        .skip(1)
        .map(|cell| cell[..cell.find("</th>").unwrap()].to_string())
        .collect()
}

/// The cell of `row` under the header `label`.
fn cell<'a>(header: &[String], row: &'a [String], label: &str) -> &'a str {
    let i = header
        .iter()
        .position(|h| h == label)
        .unwrap_or_else(|| panic!("no column {label} in {header:?}"));
    &row[i]
}

/// The number in the report's table `table`, row of library `code`, column `key`.
fn report_number(report: &Report, table: &str, code: &str, key: &str) -> f64 {
    let table = report.sections.iter().find(|t| t.id == table).unwrap();
    let column = |key: &str| table.columns.iter().position(|c| c.key == key).unwrap();
    let row = table
        .rows
        .iter()
        .find(|r| r.cells[column("code")] == Cell::text(code))
        .unwrap();
    match &row.cells[column(key)] {
        Cell::Number(n) => *n,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_visits_activities_and_iplm_pages_show_each_librarys_figures() {
    let (server, staff) = district().await;
    let url = &server.url;
    let http = plain_http();

    // Closed without a session; the sign-in leads back to the page asked for.
    for (path, next) in [
        (
            "/dashboard/visits?month=2026-10",
            "%2Fdashboard%2Fvisits%3Fmonth%3D2026-10",
        ),
        (
            "/dashboard/activities?month=2026-10",
            "%2Fdashboard%2Factivities%3Fmonth%3D2026-10",
        ),
        (
            "/dashboard/iplm?year=2026",
            "%2Fdashboard%2Fiplm%3Fyear%3D2026",
        ),
        (
            "/dashboard/download/iplm/csv?year=2026",
            "%2Fdashboard%2Fdownload%2Fiplm%2Fcsv%3Fyear%3D2026",
        ),
    ] {
        let response = http.get(format!("{url}{path}")).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 303, "{path}");
        assert_eq!(
            response.headers()["location"],
            format!("/dashboard/login?next={next}").as_str(),
            "{path}"
        );
    }
    let session = sign_in(&http, url, &staff).await;
    let district = load(
        &server.store,
        &ReportRequest::District {
            month: sim::month_start().date_naive(),
        },
        Lang::Id,
        server.clock.now(),
    )
    .await
    .unwrap();

    // Visits: dermaji's desk figures cell by cell, karangsari's visits as the report
    // counts them, the charts, the rule as a note under the table, the downloads.
    let (status, visits) = page(&http, url, "/dashboard/visits?month=2026-10", &session).await;
    assert_eq!(status, 200, "{visits}");
    let header = header_of(&visits, "services");
    let dermaji = row_of(&visits, "services", "dermaji");
    for (label, expected) in [
        ("Perpustakaan", "Perpustakaan Desa Dermaji"),
        ("Kecamatan", "Lumbir"),
        ("Hari layanan", "1"),
        ("Kunjungan", DERMAJI_VISITS),
        ("Kunjungan/hari layanan", "49,0"),
        ("Tujuan: Membaca", "37"),
        ("Tujuan: Komputer/internet", "12"),
        ("Kegiatan", "1"),
        ("Peserta", DERMAJI_PARTICIPANTS),
        ("Peserta sosialisasi/KIE", DERMAJI_PARTICIPANTS),
        ("Anggota", "120"),
        ("Anggota baru", "4"),
    ] {
        assert_eq!(cell(&header, &dermaji, label), expected, "{label}");
    }
    let karangsari_visits = report_number(&district, "services", "karangsari", "visits");
    assert!(
        karangsari_visits > 0.0,
        "the PC's check-ins count as visits"
    );
    assert_eq!(
        cell(
            &header,
            &row_of(&visits, "services", "karangsari"),
            "Kunjungan"
        ),
        format_number(karangsari_visits, 0, Lang::Id)
    );
    assert!(visits.contains("<tr class=\"total\"><td>Jumlah Kecamatan Lumbir</td>"));
    let rule = jejak_server::report::VISITS_RULE.0;
    assert!(
        visits.contains(&format!("<p class=\"note\">{rule}</p>")),
        "the rule is a note under the table"
    );
    assert!(!visits.contains(&format!("<td>{rule}</td>")), "not a row");
    assert!(visits.contains("id=\"chart-visits\""));
    assert!(visits.contains(&format!(
        "<title>Perpustakaan Desa Dermaji: {DERMAJI_VISITS}</title>"
    )));
    assert!(visits.contains("id=\"chart-visit-purposes\""));
    assert!(visits.contains("<title>Membaca: 37</title>"), "{visits}");
    for download in ["xlsx", "csv", "html"] {
        assert!(
            visits.contains(&format!(
                "href=\"/dashboard/download/district/{download}?month=2026-10\""
            )),
            "{download}"
        );
    }
    assert!(visits.contains("aria-current=\"page\">Kunjungan</a>"));

    // Activities: the activity columns alone, and the two charts.
    let (status, activities) =
        page(&http, url, "/dashboard/activities?month=2026-10", &session).await;
    assert_eq!(status, 200, "{activities}");
    let header = header_of(&activities, "services");
    assert_eq!(
        header,
        [
            "Perpustakaan",
            "Kode",
            "Kecamatan",
            "Kegiatan",
            "Peserta",
            "Peserta sosialisasi/KIE"
        ]
    );
    assert_eq!(
        row_of(&activities, "services", "dermaji"),
        [
            "Perpustakaan Desa Dermaji",
            "dermaji",
            "Lumbir",
            "1",
            DERMAJI_PARTICIPANTS,
            DERMAJI_PARTICIPANTS
        ]
    );
    assert_eq!(
        row_of(&activities, "services", "karangsari")[3..],
        ["0", "0", "0"]
    );
    assert!(activities.contains(&format!(
        "<title>Perpustakaan Desa Dermaji: {DERMAJI_PARTICIPANTS}</title>"
    )));
    assert!(activities.contains("id=\"chart-activities\""));
    assert!(activities.contains("href=\"/dashboard/download/district/xlsx?month=2026-10\""));

    // IPLM: the year's figures, the definitions, the chart of visits per day served.
    let (status, iplm) = page(&http, url, "/dashboard/iplm?year=2026", &session).await;
    assert_eq!(status, 200, "{iplm}");
    let header = header_of(&iplm, "iplm");
    let dermaji = row_of(&iplm, "iplm", "dermaji");
    for (label, expected) in [
        ("Hari layanan", "1"),
        ("Kunjungan", DERMAJI_VISITS),
        ("Kunjungan per hari", "49,0"),
        ("Anggota", "120"),
        ("Anggota baru", "4"),
        ("Kegiatan", "1"),
        ("Peserta kegiatan", DERMAJI_PARTICIPANTS),
        ("Peserta sosialisasi/KIE", DERMAJI_PARTICIPANTS),
    ] {
        assert_eq!(cell(&header, &dermaji, label), expected, "{label}");
    }
    assert!(iplm.contains("id=\"table-definitions\""));
    assert!(iplm.contains(rule), "the visits' definition");
    assert!(iplm.contains("id=\"chart-visits-per-day\""));
    assert!(iplm.contains("<title>Perpustakaan Desa Dermaji: 49,0</title>"));
    assert!(iplm.contains("href=\"/dashboard/download/iplm/xlsx?year=2026\""));
    assert!(iplm.contains("href=\"/dashboard/download/iplm/csv?year=2026\""));

    // English through the language switch.
    let (_, english) = page(&http, url, "/dashboard/iplm?year=2026&lang=en", &session).await;
    assert!(english.contains("IPLM Data Sheet of the Village Libraries"));
    assert!(english.contains(">Visits</a>"));
    assert!(english.contains("<title>Perpustakaan Desa Dermaji: 49.0</title>"));

    // An unreadable month or year: a notice and the default, never an error.
    let (status, body) = page(&http, url, "/dashboard/visits?month=Oktober", &session).await;
    assert_eq!(status, 200);
    assert!(body.contains("Bulan tidak dikenali"), "{body}");
    assert_eq!(row_of(&body, "services", "dermaji")[4], DERMAJI_VISITS);
    let (status, body) = page(&http, url, "/dashboard/activities?month=13-2026", &session).await;
    assert_eq!(status, 200);
    assert!(body.contains("Bulan tidak dikenali"), "{body}");
    let (status, body) = page(&http, url, "/dashboard/iplm?year=20x6", &session).await;
    assert_eq!(status, 200);
    assert!(body.contains("Tahun tidak dikenali"), "{body}");
    assert!(body.contains("value=\"2026\""), "the current year is shown");
    assert_eq!(row_of(&body, "iplm", "dermaji")[6], DERMAJI_VISITS);

    // Every page is valid HTML.
    let mut pages = Vec::new();
    for path in [
        "/dashboard/visits?month=2026-10",
        "/dashboard/activities?month=2026-10",
        "/dashboard/iplm?year=2026",
        "/dashboard/iplm?year=20x6&lang=en",
        "/dashboard/download/iplm/html?year=2026",
    ] {
        let (status, body) = page(&http, url, path, &session).await;
        assert_eq!(status, 200, "{path}");
        pages.push((path.to_string(), body));
    }
    checkers::assert_valid_markup(&pages);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_iplm_sheet_downloads_from_the_dashboard_with_its_figures() {
    let (server, staff) = district().await;
    let url = &server.url;
    let http = plain_http();
    let session = sign_in(&http, url, &staff).await;

    // The CSV of the figures: the dermaji row holds the year's figures.
    let (status, csv) = page(
        &http,
        url,
        "/dashboard/download/iplm/csv?year=2026&table=iplm",
        &session,
    )
    .await;
    assert_eq!(status, 200, "{csv}");
    let mut lines = csv.trim_start_matches('\u{feff}').lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let dermaji: Vec<&str> = lines
        .find(|line| line.split(',').nth(1) == Some("dermaji"))
        .unwrap()
        .split(',')
        .collect();
    let value = |label: &str| dermaji[header.iter().position(|h| *h == label).unwrap()];
    assert_eq!(value("Perpustakaan"), "Perpustakaan Desa Dermaji");
    assert_eq!(value("Kecamatan"), "Lumbir");
    assert_eq!(value("Kunjungan"), DERMAJI_VISITS);
    assert_eq!(value("Kunjungan per hari"), "49.0");
    assert_eq!(value("Anggota"), "120");
    assert_eq!(value("Peserta kegiatan"), DERMAJI_PARTICIPANTS);
    assert_eq!(value("Peserta sosialisasi/KIE"), DERMAJI_PARTICIPANTS);

    // The whole sheet as CSV (both tables), in the English columns.
    let (status, whole) = page(
        &http,
        url,
        "/dashboard/download/iplm/csv?year=2026&lang=en",
        &session,
    )
    .await;
    assert_eq!(status, 200);
    assert!(whole.contains("Visits per day"), "{whole}");
    assert!(whole.contains("Definition"), "{whole}");

    // The workbook: a sheet per table, the dermaji row with numbers as numbers.
    let (status, bytes) = get(
        &http,
        url,
        "/dashboard/download/iplm/xlsx?year=2026",
        &session,
    )
    .await;
    assert_eq!(status, 200);
    let mut workbook: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).unwrap();
    let names = workbook.sheet_names();
    assert_eq!(names.len(), 2, "{names:?}");
    let sheet = workbook.worksheet_range(&names[0]).unwrap();
    let header_row = sheet
        .rows()
        .position(|row| row.iter().any(|c| *c == Data::String("Kunjungan".into())))
        .unwrap();
    let header: Vec<String> = sheet
        .rows()
        .nth(header_row)
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    let row = sheet
        .rows()
        .find(|row| row.get(1) == Some(&Data::String("dermaji".into())))
        .unwrap();
    let number = |label: &str| row[header.iter().position(|h| h == label).unwrap()].clone();
    assert_eq!(number("Kunjungan"), Data::Float(49.0));
    assert_eq!(number("Kunjungan per hari"), Data::Float(49.0));
    assert_eq!(number("Anggota"), Data::Float(120.0));
    assert_eq!(number("Peserta kegiatan"), Data::Float(29.0));
    assert_eq!(number("Peserta sosialisasi/KIE"), Data::Float(29.0));

    // A year that is not one is refused with what to write, never a 5xx.
    let (status, body) = page(
        &http,
        url,
        "/dashboard/download/iplm/xlsx?year=20x6",
        &session,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("?year=2026"), "{body}");
}
