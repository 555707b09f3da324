//! The web dashboard on a real server over a real SQLite file with a synced month,
//! first over plain HTTP (status codes, cookies, cross-site refusals, page sizes), then
//! in a real headless Chromium driven through chromedriver: sign in, the matrix with
//! its flagged library, a village page with its charts, the English switch and the
//! XLSX download, with screenshots kept under `target/test-output/dashboard/`.
//!
//! Also what a district officer meets (issue 15): a sign-in leads back to the page
//! (and month) asked for, and otherwise opens on the latest month with data; the
//! operations view names the libraries; cells are in one language at a time; every
//! report page and printable report explains its terms; axe-core finds nothing on any
//! page, and the W3C Nu HTML checker nothing in any page's or printable report's markup
//! (`tests/support/checkers.rs`). The visits, activities and IPLM pages (issue 17)
//! are opened too: a bar per library in their charts, and no sideways overflow on a
//! desktop or a phone.
//!
//! The browser test needs Debian's `chromium` and `chromium-driver`. Without them it
//! prints a `SKIPPED:` line and passes, unless `JEJAK_REQUIRE_BROWSER=1` (set by CI),
//! in which case it fails.
#![allow(clippy::unwrap_used)]

#[path = "../../../tests/support/checkers.rs"]
mod checkers;
mod common;

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use calamine::{Reader, Xlsx, open_workbook_from_rs};
use chrono::{NaiveDate, TimeZone, Utc};
use common::TestServer;
use fantoccini::{Client, Locator};
use jejak_domain::{Lang, LibraryCode, PcCode, Zone};
use jejak_server::ServerStore;
use jejak_server::report::{Cell, Report, ReportRequest, format_number, load};
use jejak_testkit::browser::{self as headless, Driver, path, text};
use jejak_testkit::sim::{self, SimPc};
use uuid::Uuid;

fn browser_available() -> bool {
    headless::available("dashboard browser tests")
}

/// Saves a screenshot under `target/test-output/dashboard/`.
async fn screenshot(client: &Client, name: &str) -> PathBuf {
    let dir = headless::output_dir(env!("CARGO_TARGET_TMPDIR"), "dashboard");
    headless::screenshot(client, &dir, name).await
}

/// A library name with every character HTML escapes, to see it shown literally.
const TRICKY_NAME: &str = "Perpustakaan Desa \"Dermaji\" <Maju & Jaya>";
/// The most bytes a dashboard page may have: small enough for a slow office PC.
const MAX_PAGE_BYTES: usize = 60 * 1024;

/// A district with October 2026 synced: `dermaji` (two PCs) and `karangsari` synced at
/// the end of the month, `sepi` last synced on 10 October, so silent for 21 days when
/// the server's clock reads 31 October. One staff token and one device token.
struct District {
    server: TestServer,
    staff: String,
    device: String,
}

async fn district() -> District {
    let server = TestServer::start().await;
    let at = |day: u32| Utc.with_ymd_and_hms(2026, 10, day, 5, 0, 0).unwrap();
    for (code, name) in [
        ("dermaji", TRICKY_NAME),
        ("karangsari", "Perpustakaan Desa Karangsari"),
        ("sepi", "Perpustakaan Desa Sepi"),
    ] {
        server
            .store
            .add_library(&LibraryCode::parse(code).unwrap(), name, Zone::Wib)
            .await
            .unwrap();
    }
    let mut device = String::new();
    for (i, (library, pc, sessions, sync_day)) in [
        ("sepi", "pc-01", 20, 10),
        ("dermaji", "pc-01", 90, 31),
        ("dermaji", "pc-02", 60, 31),
        ("karangsari", "pc-01", 70, 31),
    ]
    .into_iter()
    .enumerate()
    {
        // The server's clock is moved to the day of the sync, so the library's last
        // batch is dated then.
        server.clock.advance(at(sync_day) - server.clock.now());
        let (token, _) = server.enroll(library, pc).await;
        device = token.clone();
        let sim = SimPc {
            library: LibraryCode::parse(library).unwrap(),
            pc: PcCode::parse(pc).unwrap(),
            epoch: Uuid::new_v4(),
            clock_error_ms: 0,
        };
        let log = sim::simulate(&sim, sessions, sim::month_start(), i as u64 + 11);
        let sync_at = server.clock.now() - chrono::Duration::seconds(1);
        for batch in sim::batches(&sim, &log, 100, sync_at) {
            let (status, ack) = server.post(&token, &batch).await;
            assert_eq!(status, 200, "{ack}");
        }
    }
    let staff = server.store.add_staff("Bu Sri").await.unwrap();
    District {
        staff: staff.expose().to_string(),
        device,
        server,
    }
}

fn october() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 10, 1).unwrap()
}

/// The report the dashboard must show, built the same way the server builds it.
async fn village_report(server: &TestServer, library: &str, lang: Lang) -> Report {
    load(
        &server.store,
        &ReportRequest::Village {
            month: october(),
            library: LibraryCode::parse(library).unwrap(),
        },
        lang,
        server.clock.now(),
    )
    .await
    .unwrap()
}

/// The number in the cell of table `table`, column `key`, of the first row.
fn first_row_number(report: &Report, table: &str, key: &str) -> f64 {
    let table = report.sections.iter().find(|t| t.id == table).unwrap();
    let column = table.columns.iter().position(|c| c.key == key).unwrap();
    match &table.rows[0].cells[column] {
        Cell::Number(n) => *n,
        other => panic!("{other:?}"),
    }
}

/// An HTTP client that keeps no cookies and follows no redirects, so each answer is
/// seen as the server sent it.
fn plain_http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs in over HTTP; returns the answer's status, `Location` and `Set-Cookie`.
async fn post_sign_in(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    origin: Option<&str>,
) -> (u16, String, String, String) {
    let mut request = http
        .post(format!("{url}/dashboard/login"))
        .form(&[("token", token)]);
    if let Some(origin) = origin {
        request = request.header("Origin", origin);
    }
    let response = request.send().await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let (location, cookie) = (header("location"), header("set-cookie"));
    let status = response.status().as_u16();
    (status, location, cookie, response.text().await.unwrap())
}

/// GETs a dashboard page with a session cookie; returns status and body.
async fn get_page(http: &reqwest::Client, url: &str, cookie: &str) -> (u16, String) {
    let response = http.get(url).header("Cookie", cookie).send().await.unwrap();
    (
        response.status().as_u16(),
        response.text().await.unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_over_http_signs_in_refuses_cross_site_posts_and_keeps_pages_small() {
    let District {
        server,
        staff,
        device,
    } = district().await;
    let http = plain_http();
    let url = &server.url;

    // The root and every page lead to the sign-in page without a session, which leads
    // back to the page asked for.
    for (path, expected) in [
        ("/", "/dashboard"),
        ("/dashboard", "/dashboard/login"),
        (
            "/dashboard/village/dermaji?month=2026-09",
            "/dashboard/login?next=%2Fdashboard%2Fvillage%2Fdermaji%3Fmonth%3D2026-09",
        ),
        (
            "/dashboard/download/district/xlsx",
            "/dashboard/login?next=%2Fdashboard%2Fdownload%2Fdistrict%2Fxlsx",
        ),
    ] {
        let response = http.get(format!("{url}{path}")).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 303, "{path}");
        let location = response.headers()["location"].to_str().unwrap();
        assert_eq!(location, expected, "{path}");
    }
    // The sign-in page carries the page to go back to; a sign-in posted with it goes
    // there, one posted with another site's address goes to the dashboard.
    let (_, login) = get_page(
        &http,
        &format!("{url}/dashboard/login?next=%2Fdashboard%3Fmonth%3D2026-09"),
        "",
    )
    .await;
    assert!(
        login.contains("name=\"next\" value=\"/dashboard?month=2026-09\""),
        "{login}"
    );
    for (next, expected) in [
        ("/dashboard?month=2026-09", "/dashboard?month=2026-09"),
        ("https://evil.example/", "/dashboard"),
    ] {
        let response = http
            .post(format!("{url}/dashboard/login"))
            .form(&[("token", staff.as_str()), ("next", next)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 303);
        assert_eq!(response.headers()["location"], expected, "{next}");
    }

    // Refused tokens: a device's (403), an unknown one (401). The page says why and
    // sets no session.
    let (status, _, cookie, body) = post_sign_in(&http, url, &device, None).await;
    assert_eq!(status, 403);
    assert!(cookie.is_empty());
    assert!(body.contains("token PC perpustakaan"), "{body}");
    let (status, _, cookie, body) = post_sign_in(&http, url, "jejak_staff_nope", None).await;
    assert_eq!(status, 401);
    assert!(cookie.is_empty());
    assert!(body.contains("Token tidak dikenal"), "{body}");

    // A sign-in posted from another site is refused even with a good token.
    let (status, _, cookie, _) =
        post_sign_in(&http, url, &staff, Some("http://evil.example")).await;
    assert_eq!(status, 403);
    assert!(cookie.is_empty());

    // A good sign-in from this site: a session cookie that is not the token.
    let origin = format!("http://{}", server.addr);
    let (status, location, set_cookie, _) = post_sign_in(&http, url, &staff, Some(&origin)).await;
    assert_eq!((status, location.as_str()), (303, "/dashboard"));
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    assert!(set_cookie.contains("Path=/"), "{set_cookie}");
    assert!(!set_cookie.contains(&staff));
    let session = set_cookie.split(';').next().unwrap().to_string();
    let id = session.strip_prefix("jejak_session=").unwrap();
    assert_eq!(id.len(), 64, "32 random bytes in hex");

    // The pages, their size, and that they load nothing from elsewhere.
    let mut sizes = Vec::new();
    for path in [
        "/dashboard",
        "/dashboard?month=2026-10",
        "/dashboard/village/dermaji?month=2026-10",
        "/dashboard/period?period=2026-Q4",
        "/dashboard/ops",
        "/dashboard/visits?month=2026-10",
        "/dashboard/activities?month=2026-10",
        "/dashboard/iplm?year=2026",
    ] {
        let (status, body) = get_page(&http, &format!("{url}{path}"), &session).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert!(!body.contains("<script"), "{path}");
        assert!(!body.contains("src=\"http"), "{path}");
        assert!(
            body.len() < MAX_PAGE_BYTES,
            "{path} is {} bytes",
            body.len()
        );
        assert!(!body.contains(&staff));
        sizes.push((path, body.len()));
    }
    for (path, size) in &sizes {
        eprintln!("page size: {path} {size} bytes");
    }

    // Every page and printable report, as the server sends them, is valid HTML.
    let mut pages = Vec::new();
    for path in [
        "/dashboard",
        "/dashboard/village/dermaji?month=2026-10",
        "/dashboard/period?period=2026-Q4",
        "/dashboard/ops",
        "/dashboard/village/nowhere",
        "/dashboard?lang=en",
        "/dashboard/download/district/html?month=2026-10",
        "/dashboard/download/village/html?library=dermaji&month=2026-10",
        "/dashboard/download/period/html?period=2026-Q4",
        "/dashboard/download/ops/html",
        "/dashboard/visits?month=2026-10",
        "/dashboard/activities?month=2026-10&lang=en",
        "/dashboard/iplm?year=2026",
        "/dashboard/download/iplm/html?year=2026",
    ] {
        let (_, body) = get_page(&http, &format!("{url}{path}"), &session).await;
        pages.push((path.to_string(), body));
    }
    let (_, body) = get_page(&http, &format!("{url}/dashboard/login"), "").await;
    pages.push(("/dashboard/login".into(), body));
    let (_, _, _, body) = post_sign_in(&http, url, "jejak_staff_nope", None).await;
    pages.push(("a refused sign-in".into(), body));
    checkers::assert_valid_markup(&pages);

    // The printable report and the page explain their terms.
    for (path, body) in &pages[..4] {
        assert!(body.contains("id=\"glossary\""), "{path}");
    }
    let printable = &pages[7].1;
    assert!(printable.contains("Keterangan istilah"), "{printable}");
    assert!(printable.contains("<dt>Waktu daring</dt>"));
    assert!(printable.contains("<dt>Kelengkapan data</dt>"));

    // The operations view names each library, and no cell mixes the two languages.
    let (_, ops) = get_page(&http, &format!("{url}/dashboard/ops"), &session).await;
    assert!(
        ops.contains("<td>Perpustakaan Desa Karangsari</td>"),
        "{ops}"
    );
    for page in [&ops, &pages[0].1] {
        assert!(!page.contains(" / Total"));
        assert!(!page.contains("aktif / active"));
    }
    assert!(ops.contains("<td>aktif</td>"));
    let (_, matrix) = get_page(&http, &format!("{url}/dashboard"), &session).await;
    // Escaped by askama, with numeric character references.
    assert!(matrix.contains("Perpustakaan Desa &#34;Dermaji&#34; &#60;Maju &#38; Jaya&#62;"));
    assert!(matrix.contains("<tr class=\"alert\">"));
    assert!(matrix.contains("Tidak sinkron 21 hari"));

    // A village that does not exist, a bad month, a bad format.
    let (status, body) =
        get_page(&http, &format!("{url}/dashboard/village/nowhere"), &session).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = get_page(&http, &format!("{url}/dashboard?month=Oktober"), &session).await;
    assert_eq!(status, 200);
    assert!(body.contains("Bulan tidak dikenali"));
    let (status, _) = get_page(
        &http,
        &format!("{url}/dashboard/download/district/pdf"),
        &session,
    )
    .await;
    assert_eq!(status, 404);

    // Downloads with the session: the same file the report API serves.
    let response = http
        .get(format!(
            "{url}/dashboard/download/village/csv?library=dermaji&month=2026-10&table=daily"
        ))
        .header("Cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("laporan-bulanan-dermaji-2026-10-daily.csv")
    );
    let csv = response.text().await.unwrap();
    assert!(csv.starts_with('\u{feff}'), "a byte-order mark for Excel");
    assert_eq!(
        csv.lines().count(),
        1 + 31 + 1 + 1,
        "header, 31 days, a blank line, the total"
    );
    // The same table for Indonesian Excel: semicolons and decimal commas.
    let (status, csv) = get_page(
        &http,
        &format!(
            "{url}/dashboard/download/village/csv?library=dermaji&month=2026-10&table=daily&csv_dialect=id"
        ),
        &session,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        csv.starts_with("\u{feff}Tanggal;Buka;Sesi;Jam\r\n"),
        "{csv}"
    );
    assert!(csv.lines().nth(1).unwrap().contains(','), "{csv}");
    let (status, _) = get_page(
        &http,
        &format!("{url}/dashboard/download/district/csv?month=2026-10&csv_dialect=tab"),
        &session,
    )
    .await;
    assert_eq!(status, 400);

    // Signing out from another site is refused; from this one it ends the session.
    let response = http
        .post(format!("{url}/dashboard/logout"))
        .header("Cookie", &session)
        .header("Origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    let (status, _) = get_page(&http, &format!("{url}/dashboard"), &session).await;
    assert_eq!(status, 200, "still signed in");
    let response = http
        .post(format!("{url}/dashboard/logout"))
        .header("Cookie", &session)
        .header("Origin", &origin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 303);
    let (status, _) = get_page(&http, &format!("{url}/dashboard"), &session).await;
    assert_eq!(status, 303, "signed out");

    // A session ends after 12 hours.
    let (_, _, set_cookie, _) = post_sign_in(&http, url, &staff, None).await;
    let session = set_cookie.split(';').next().unwrap().to_string();
    let (status, _) = get_page(&http, &format!("{url}/dashboard"), &session).await;
    assert_eq!(status, 200);
    server.clock.advance(chrono::Duration::hours(13));
    let (status, _) = get_page(&http, &format!("{url}/dashboard"), &session).await;
    assert_eq!(status, 303, "expired");

    // Revoking the staff token ends the sessions it signed in at once, pages and
    // downloads alike; the token then cannot sign in again.
    let (_, _, set_cookie, _) = post_sign_in(&http, url, &staff, None).await;
    let session = set_cookie.split(';').next().unwrap().to_string();
    let (status, _) = get_page(&http, &format!("{url}/dashboard/ops"), &session).await;
    assert_eq!(status, 200);
    server.store.revoke_staff("Bu Sri").await.unwrap();
    for path in ["/dashboard/ops", "/dashboard/download/district/csv"] {
        let (status, _) = get_page(&http, &format!("{url}{path}"), &session).await;
        assert_eq!(status, 303, "{path} after the token was revoked");
    }
    let (status, _, cookie, body) = post_sign_in(&http, url, &staff, None).await;
    assert_eq!(status, 401);
    assert!(cookie.is_empty());
    assert!(body.contains("sudah dicabut"), "{body}");
}

/// Waits (up to 10 s) until the browser shows `expected`, since a form's submission
/// returns before the next page has loaded; returns the path shown last.
async fn wait_path(client: &Client, expected: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let shown = path(client).await;
        let ready = client
            .execute("return document.readyState", vec![])
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_string));
        if (shown == expected && ready.as_deref() == Some("complete")) || Instant::now() > deadline
        {
            return shown;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (up to 10 s) until the element's text is `expected`; returns the text shown
/// last. A click that navigates returns before the next page has loaded.
async fn wait_text(client: &Client, css: &str, expected: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let shown = match client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if shown == expected || Instant::now() > deadline {
            return shown;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The month the page's month chooser shows.
async fn month_shown(client: &Client) -> Option<String> {
    client
        .find(Locator::Css("input[name=month]"))
        .await
        .ok()?
        .prop("value")
        .await
        .ok()?
}

/// The finished download whose name ends with `suffix`, waiting up to 30 s.
async fn downloaded(dir: &Path, suffix: &str) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(suffix));
        if let Some(file) = found {
            return file;
        }
        assert!(
            Instant::now() < deadline,
            "no {suffix} download in {}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_headless_chromium_signs_in_shows_matrix_village_charts_and_downloads_xlsx() {
    if !browser_available() {
        return;
    }
    let district = district().await;
    let scratch = tempfile::tempdir().unwrap();
    let (profile, downloads) = (scratch.path().join("profile"), scratch.path().join("dl"));
    std::fs::create_dir_all(&downloads).unwrap();
    let driver = Driver::start();
    let prefs = serde_json::json!({
        "download.default_directory": downloads.display().to_string(),
        "download.prompt_for_download": false,
        "download.directory_upgrade": true,
        "safebrowsing.enabled": false,
    });
    let client = driver.browser(&profile, "1280,1400", Some(prefs)).await;
    let result = browse(&client, &district, &downloads).await;
    // The browser is closed whatever happened, then the outcome is reported.
    let _ = client.close().await;
    drop(driver);
    result.unwrap();
}

async fn browse(
    client: &Client,
    district: &District,
    downloads: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let server = &district.server;
    let url = &server.url;
    let axe = checkers::axe_script();
    let axe = axe.as_deref();
    // It is 3 November: the current month has no data yet, October has.
    server
        .clock
        .advance(Utc.with_ymd_and_hms(2026, 11, 3, 2, 0, 0).unwrap() - server.clock.now());

    // Not signed in: the dashboard leads to the sign-in page.
    client.goto(&format!("{url}/dashboard")).await?;
    assert_eq!(path(client).await, "/dashboard/login");
    checkers::assert_accessible(client, axe, "the sign-in page").await;
    assert_eq!(
        client
            .find(Locator::Css("html"))
            .await?
            .attr("lang")
            .await?,
        Some("id".to_string())
    );

    // A device token is refused with a clear message.
    let form = client.form(Locator::Css("form.sign-in")).await?;
    form.set_by_name("token", &district.device).await?;
    form.submit().await?;
    let error = client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#sign-in-error"))
        .await?
        .text()
        .await?;
    assert_eq!(path(client).await, "/dashboard/login");
    assert!(error.contains("token PC perpustakaan"), "{error}");
    checkers::assert_accessible(client, axe, "a refused sign-in").await;

    // The staff token signs in and lands on the district matrix of October: the latest
    // month with data, not November's empty first days.
    let form = client.form(Locator::Css("form.sign-in")).await?;
    form.set_by_name("token", &district.staff).await?;
    form.submit().await?;
    assert_eq!(wait_path(client, "/dashboard").await, "/dashboard");
    assert_eq!(text(client, "h1").await, "Rekap Bulanan Kabupaten");
    assert_eq!(month_shown(client).await.as_deref(), Some("2026-10"));
    let rows = client
        .find_all(Locator::Css("#table-libraries tbody tr"))
        .await?;
    assert_eq!(rows.len(), 4, "three libraries and the total");
    let mut names = Vec::new();
    for row in &rows {
        names.push(row.find(Locator::Css("td")).await?.text().await?);
    }
    assert_eq!(
        names,
        [
            TRICKY_NAME,
            "Perpustakaan Desa Karangsari",
            "Perpustakaan Desa Sepi",
            "Jumlah"
        ],
        "names shown literally, markup characters included"
    );
    let flagged = client
        .find(Locator::Css("#table-libraries tr.alert"))
        .await?;
    let flagged_text = flagged.text().await?;
    assert!(
        flagged_text.contains("Perpustakaan Desa Sepi"),
        "{flagged_text}"
    );
    assert!(
        flagged_text.contains("Tidak sinkron 24 hari"),
        "{flagged_text}"
    );
    // The highlight is really drawn: the flagged row's cells are filled.
    let background: String = client
        .execute(
            "return getComputedStyle(document.querySelector('#table-libraries tr.alert td')).backgroundColor",
            vec![],
        )
        .await?
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(background, "rgb(248, 203, 173)");
    assert!(text(client, "#flag-summary").await.starts_with("1 dari 3"));
    let glossary = text(client, "#glossary").await;
    for term in [
        "Internet aktif",
        "Kelengkapan",
        "Pemanfaatan",
        "Pengguna unik",
    ] {
        assert!(glossary.contains(term), "{term}: {glossary}");
    }
    screenshot(client, "matrix.png").await;
    checkers::assert_accessible(client, axe, "the district matrix").await;

    // Open the village page from the matrix.
    client
        .find(Locator::Css("a[href^='/dashboard/village/dermaji']"))
        .await?
        .click()
        .await?;
    assert_eq!(
        wait_path(client, "/dashboard/village/dermaji").await,
        "/dashboard/village/dermaji"
    );
    assert_eq!(text(client, "h1").await, "Laporan Bulanan Layanan TIK");
    let report = village_report(server, "dermaji", Lang::Id).await;
    let sessions = first_row_number(&report, "summary", "sessions");
    assert!(sessions > 100.0, "{sessions}");

    // The daily chart: one bar per day of October, values equal to the calendar table,
    // and its title names the month's total as the summary table does.
    let bars = client
        .find_all(Locator::Css("svg#chart-daily rect.bar"))
        .await?;
    assert_eq!(bars.len(), 31);
    let daily = report.sections.iter().find(|t| t.id == "daily").unwrap();
    let mut bar_sum = 0.0;
    for (bar, row) in bars.iter().zip(&daily.rows) {
        let value: f64 = bar.attr("data-value").await?.unwrap().parse()?;
        assert_eq!(Cell::Number(value), row.cells[2]);
        bar_sum += value;
    }
    assert_eq!(bar_sum, sessions);
    let title: String = client
        .execute(
            "return document.querySelector('#chart-daily-t').textContent",
            vec![],
        )
        .await?
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        title,
        format!(
            "Sesi per hari (jumlah {})",
            format_number(sessions, 0, Lang::Id)
        )
    );
    // The purpose and age × gender charts are there with a bar or segment each.
    assert_eq!(
        client
            .find_all(Locator::Css("svg#chart-purposes rect.bar"))
            .await?
            .len(),
        8
    );
    assert!(
        !client
            .find_all(Locator::Css("svg#chart-age-gender rect.seg"))
            .await?
            .is_empty()
    );
    let glossary = text(client, "#glossary").await;
    for term in ["Waktu daring", "Internet aktif", "Kelengkapan data"] {
        assert!(glossary.contains(term), "{term}: {glossary}");
    }
    client.set_window_size(1280, 2200).await?;
    screenshot(client, "village.png").await;
    client.set_window_size(1280, 1400).await?;
    checkers::assert_accessible(client, axe, "a village page").await;

    // English, remembered across pages.
    client
        .find(Locator::Css("#lang-switch"))
        .await?
        .click()
        .await?;
    assert_eq!(
        wait_text(client, "h1", "Monthly ICT Service Report").await,
        "Monthly ICT Service Report"
    );
    let title: String = client
        .execute(
            "return document.querySelector('#chart-daily-t').textContent",
            vec![],
        )
        .await?
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        title,
        format!(
            "Sessions per day (total {})",
            format_number(sessions, 0, Lang::En)
        )
    );
    client.goto(&format!("{url}/dashboard")).await?;
    assert_eq!(text(client, "h1").await, "District Monthly Summary");
    assert!(
        text(client, "#table-libraries tr.alert")
            .await
            .contains("Silent for 24 days")
    );
    assert_eq!(
        text(client, "#table-libraries tr.total td").await,
        "Total",
        "one language at a time"
    );
    screenshot(client, "matrix-en.png").await;
    checkers::assert_accessible(client, axe, "the district matrix in English").await;

    // Download the village's XLSX from its page and read it back.
    client
        .goto(&format!("{url}/dashboard/village/dermaji?month=2026-10"))
        .await?;
    client
        .find(Locator::Css("#download-xlsx"))
        .await?
        .click()
        .await?;
    let file = downloaded(downloads, ".xlsx").await;
    assert!(
        file.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("laporan-bulanan-dermaji-2026-10")
    );
    let bytes = std::fs::read(&file)?;
    let mut workbook: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes))?;
    // Sheet names shortened by hand where a title is longer than Excel allows, never
    // cut mid-word.
    assert_eq!(
        workbook.sheet_names(),
        [
            "A. Identity",
            "B. Summary",
            "C. Against the Previous Month",
            "D. PC Sessions by User Kind",
            "E. Age group × Gender",
            "F. Purpose × Gender",
            "G. Daily Calendar",
            "H. Per PC",
            "I. Visits per Day",
            "J. Visitor Book Age × Gender",
            "K. Visitor Book by Kind",
            "L. Visitor Book by Purpose",
            "M. Members",
            "N. Activities by Type",
            "O. Activities by Place",
            "P. Participants Age × Gender"
        ]
    );
    // The identity sheet keeps numbers and dates as numbers and dates.
    let identity = workbook.worksheet_range("A. Identity")?;
    let value_of = |item: &str| {
        identity
            .rows()
            .find(|row| {
                row.first()
                    .is_some_and(|c| *c == calamine::Data::String(item.to_string()))
            })
            .and_then(|row| row.get(1).cloned())
            .unwrap_or_else(|| panic!("no {item} row"))
    };
    assert_eq!(value_of("PCs"), calamine::Data::Float(2.0));
    assert!(
        matches!(value_of("Last sync"), calamine::Data::DateTime(_)),
        "{:?}",
        value_of("Last sync")
    );
    assert_eq!(value_of("Code").to_string(), "dermaji");

    // The quarter and the operations view, which names the libraries.
    client
        .goto(&format!("{url}/dashboard/period?period=2026-Q4&lang=id"))
        .await?;
    checkers::assert_accessible(client, axe, "the quarter").await;
    client.goto(&format!("{url}/dashboard/ops")).await?;
    let first = text(client, "#table-pcs tbody tr td").await;
    assert!(first.starts_with("Perpustakaan Desa"), "{first}");
    checkers::assert_accessible(client, axe, "the operations view").await;
    screenshot(client, "ops.png").await;
    // The visits, activities and IPLM pages: a bar per library in their charts, and
    // nothing wider than the window, on a desktop or a phone (the wide tables scroll
    // in their own box).
    for (what, path, chart, picture) in [
        (
            "the visits page",
            "/dashboard/visits?month=2026-10",
            "svg#chart-visits rect.bar",
            "visits.png",
        ),
        (
            "the activities page",
            "/dashboard/activities?month=2026-10",
            "svg#chart-participants rect.bar",
            "activities.png",
        ),
        (
            "the IPLM page",
            "/dashboard/iplm?year=2026",
            "svg#chart-visits-per-day rect.bar",
            "iplm.png",
        ),
    ] {
        client.goto(&format!("{url}{path}")).await?;
        assert_eq!(
            client.find_all(Locator::Css(chart)).await?.len(),
            3,
            "{what}: a bar per library"
        );
        checkers::assert_accessible(client, axe, what).await;
        screenshot(client, picture).await;
        for width in [1280, 390] {
            client.set_window_size(width, 1400).await?;
            let overflow = client
                .execute(
                    "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
                    vec![],
                )
                .await?
                .as_f64()
                .unwrap_or(f64::MAX);
            assert!(
                overflow <= 0.0,
                "{what} is {overflow} px wider than a {width} px window"
            );
        }
        client.set_window_size(1280, 1400).await?;
    }
    // A page that cannot be shown, and the printable reports.
    client
        .goto(&format!("{url}/dashboard/village/nowhere"))
        .await?;
    checkers::assert_accessible(client, axe, "a library that does not exist").await;
    for (what, path) in [
        ("the printable matrix", "district/html?month=2026-10"),
        (
            "the printable village report",
            "village/html?library=dermaji&month=2026-10",
        ),
    ] {
        client
            .goto(&format!("{url}/dashboard/download/{path}"))
            .await?;
        assert!(
            text(client, "#glossary").await.contains("Internet"),
            "{what}"
        );
        checkers::assert_accessible(client, axe, what).await;
    }

    // Sign out with the button: back to the sign-in page, and the dashboard is closed.
    client.goto(&format!("{url}/dashboard")).await?;
    client
        .find(Locator::Css("#sign-out"))
        .await?
        .click()
        .await?;
    assert_eq!(
        wait_path(client, "/dashboard/login").await,
        "/dashboard/login"
    );
    client.goto(&format!("{url}/dashboard")).await?;
    assert_eq!(path(client).await, "/dashboard/login");

    // A page asked for while signed out (a bookmark, a link in an e-mail) is where the
    // sign-in leads, its month and all.
    client
        .goto(&format!("{url}/dashboard/village/karangsari?month=2026-09"))
        .await?;
    assert_eq!(path(client).await, "/dashboard/login");
    let form = client.form(Locator::Css("form.sign-in")).await?;
    form.set_by_name("token", &district.staff).await?;
    form.submit().await?;
    assert_eq!(
        wait_path(client, "/dashboard/village/karangsari").await,
        "/dashboard/village/karangsari"
    );
    assert_eq!(month_shown(client).await.as_deref(), Some("2026-09"));
    Ok(())
}
