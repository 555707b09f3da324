//! The patron check-in page and the librarian screen (issue 6, "Must show"), driven in a
//! real headless Chromium through chromedriver against the real `jejak` binary: `jejak
//! init --pin`, `jejak agent` serving the page, and a real district server (`jejak
//! server run`) to sync to.
//!
//! A patron checks in (after being told that four purposes are too many), sees the open
//! session and finishes it; the librarian signs in with the PIN (after a wrong one),
//! sees the session counted and waiting to sync, presses "Sync now" while the server is
//! down (no link, data kept) and again once it is up (synced: the server holds the
//! session and its patron key); a form on another site posting to the page is refused.
//! Screenshots are kept under `target/test-output/checkin/`. Finally the member number
//! typed in is searched for, and not found, in the PC's store, the server's store and
//! the agent's log.
//!
//! What a patron meets (issue 15): the form fits a 1024×768 monitor with its browser
//! (the Start button visible without scrolling) and a 360×640 phone (no sideways
//! scrolling); no word breaks in the middle; age groups say "tahun" and "not stated"
//! reads as declining to say; a patron's English ends with their session; no page
//! reloads itself; axe-core finds nothing on any page and the W3C Nu HTML checker
//! nothing in any page's markup (see `support/checkers.rs`).
//!
//! It needs Debian's `chromium` and `chromium-driver`. Without them it prints a
//! `SKIPPED:` line and passes, unless `JEJAK_REQUIRE_BROWSER=1` (set by CI), in which
//! case it fails.
#![allow(clippy::unwrap_used)]

#[path = "support/checkers.rs"]
mod checkers;
mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use jejak_testkit::browser::{self as headless, Driver, path, text};
use serde_json::Value;
use support::{COMMAND_DEADLINE, ChildGuard, TestPc, bare_command, run_command};

/// The librarian's PIN set at `jejak init`.
const PIN: &str = "246810";
/// The member number the patron types; it must never be kept anywhere.
const MEMBER: &str = "90817263";
/// The most bytes a check-in page may have.
const MAX_PAGE_BYTES: usize = 30 * 1024;

/// A free loopback port (free when asked; nothing else in the test takes ports by
/// number).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `jejak --lang en --format json server --database sqlite:DB ARGS…`.
fn server_json(db: &Path, args: &[&str]) -> Value {
    let mut command = bare_command();
    command
        .args(["--lang", "en", "--format", "json", "server", "--database"])
        .arg(format!("sqlite:{}", db.display()))
        .args(args);
    run_command(command, COMMAND_DEADLINE).ok().json()
}

/// Waits (up to `deadline`) until `url` answers 200.
async fn wait_http_ok(url: &str, deadline: Duration) {
    let http = reqwest::Client::new();
    let until = Instant::now() + deadline;
    loop {
        if let Ok(response) = http.get(url).send().await
            && response.status().is_success()
        {
            return;
        }
        assert!(Instant::now() < until, "{url} did not answer");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `jejak server run` on a chosen port, killed when dropped.
fn spawn_server(db: &Path, port: u16, log: &Path) -> ChildGuard {
    let mut command = bare_command();
    command
        .args(["--lang", "en", "server", "--database"])
        .arg(format!("sqlite:{}", db.display()))
        .args(["run", "--listen", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    ChildGuard::spawn(&mut command)
}

/// A page on another local port whose form posts to the check-in page, as a site the
/// patron browses to could. It answers every request with the same page.
fn spawn_foreign_site(target: &str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let page = format!(
        "<!DOCTYPE html><html><body><h1>Gratis pulsa!</h1>\
         <form id=\"evil\" method=\"post\" action=\"{target}/mulai\">\
         <input type=\"hidden\" name=\"purpose\" value=\"hobi\">\
         <input type=\"hidden\" name=\"gender\" value=\"L\">\
         <input type=\"hidden\" name=\"age\" value=\"anak\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{fake}\">\
         <button type=\"submit\" id=\"go\">Klik di sini</button></form></body></html>",
        fake = "0".repeat(64)
    );
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    url
}

// ---------------------------------------------------------------------------------------
// The browser (`jejak_testkit::browser`, as in the dashboard's browser test)
// ---------------------------------------------------------------------------------------

fn browser_available() -> bool {
    headless::available("the check-in page's browser test")
}

/// Saves a screenshot under `target/test-output/checkin/`.
async fn screenshot(client: &Client, name: &str) -> PathBuf {
    let dir = headless::output_dir(env!("CARGO_TARGET_TMPDIR"), "checkin");
    headless::screenshot(client, &dir, name).await
}

/// Waits (up to `deadline`) until the element's text contains `expected`; returns the
/// text shown last. A page that refreshes itself or is still loading shows nothing.
async fn wait_text(client: &Client, css: &str, expected: &str, deadline: Duration) -> String {
    let until = Instant::now() + deadline;
    loop {
        let shown = match client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if shown.contains(expected) || Instant::now() > until {
            return shown;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap();
}

/// The page's HTML as the browser holds it; checked for size and for the member number.
async fn source(client: &Client) -> String {
    let html = client.source().await.unwrap();
    assert!(html.len() < MAX_PAGE_BYTES, "{} bytes", html.len());
    assert!(!html.contains(MEMBER), "the member number is shown");
    html
}

/// Sets the page's viewport (not the window, which has a border of its own) to
/// `width`×`height` CSS pixels. Headless Chromium applies a new window size a moment
/// after it answers, and on a loaded machine the page may still report the old one:
/// the border is measured and the size set again until the page reports what was asked.
async fn set_viewport(client: &Client, width: u32, height: u32) {
    let inner = |client: &Client| {
        let client = client.clone();
        async move {
            let inner = client
                .execute("return [window.innerWidth, window.innerHeight]", vec![])
                .await
                .unwrap();
            (inner[0].as_u64().unwrap(), inner[1].as_u64().unwrap())
        }
    };
    let wanted = (u64::from(width), u64::from(height));
    let (mut window_w, mut window_h) = (u64::from(width), u64::from(height));
    let mut seen = (0, 0);
    for _ in 0..20 {
        client
            .set_window_size(window_w as u32, window_h as u32)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        seen = inner(client).await;
        if seen == wanted {
            return;
        }
        // The border is what the window has beyond the page; only a plausible one
        // (the page smaller than the window asked for) is added back.
        let (border_w, border_h) = (
            window_w.saturating_sub(seen.0),
            window_h.saturating_sub(seen.1),
        );
        if border_w < 200 && border_h < 300 {
            window_w = wanted.0 + border_w;
            window_h = wanted.1 + border_h;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        seen, wanted,
        "the page's viewport after resizing the window"
    );
}

/// How the form lies out in the viewport: the Start button's bottom edge, the page's
/// and each tile's overflow sideways, the tiles' smallest height, and every tile text as
/// the lines the browser broke it into.
#[derive(Debug, serde::Deserialize)]
struct FormLayout {
    viewport_height: f64,
    start_bottom: f64,
    page_overflow: f64,
    tiles_overflowing: Vec<String>,
    smallest_tile: f64,
    texts: Vec<Vec<String>>,
}

async fn form_layout(client: &Client) -> FormLayout {
    let script = r#"
        const start = document.querySelector('#start').getBoundingClientRect();
        const tiles = [...document.querySelectorAll('.tile')];
        const texts = [];
        for (const span of document.querySelectorAll('.tile span')) {
            const walker = document.createTreeWalker(span, NodeFilter.SHOW_TEXT);
            let node;
            while ((node = walker.nextNode())) {
                const lines = [];
                let text = '', top = null;
                for (let i = 0; i < node.length; i++) {
                    const range = document.createRange();
                    range.setStart(node, i);
                    range.setEnd(node, i + 1);
                    const rects = range.getClientRects();
                    if (rects.length > 0) {
                        const t = Math.round(rects[0].top);
                        if (top !== null && Math.abs(t - top) > 3) { lines.push(text); text = ''; }
                        top = t;
                    }
                    text += node.data[i];
                }
                lines.push(text);
                texts.push(lines);
            }
        }
        return {
            viewport_height: window.innerHeight,
            start_bottom: start.bottom,
            page_overflow: document.documentElement.scrollWidth - window.innerWidth,
            tiles_overflowing: tiles.filter(t => t.scrollWidth > t.clientWidth + 1).map(t => t.textContent),
            smallest_tile: Math.min(...tiles.map(t => t.getBoundingClientRect().height)),
            texts,
        };
    "#;
    serde_json::from_value(client.execute(script, vec![]).await.unwrap()).unwrap()
}

/// Asserts that no tile text was broken inside a word: every line but the last ends at
/// a space, a slash or a hyphen.
fn assert_whole_words(layout: &FormLayout, at: &str) {
    for lines in &layout.texts {
        for line in &lines[..lines.len() - 1] {
            assert!(
                line.ends_with([' ', '/', '-']),
                "at {at} the browser broke {lines:?} inside a word"
            );
        }
    }
}

/// The browser's cookies for the page, as a `Cookie` header.
async fn browser_cookies(client: &Client) -> String {
    let cookies: Vec<String> = client
        .get_all_cookies()
        .await
        .unwrap()
        .iter()
        .map(|c| format!("{}={}", c.name(), c.value()))
        .collect();
    cookies.join("; ")
}

/// The page at `path` as the agent sends it (not as the browser holds it), with the
/// browser's cookies, for the markup check.
async fn raw_page(client: &Client, page: &str, path: &str) -> String {
    reqwest::Client::new()
        .get(format!("{page}{path}"))
        .header("Cookie", browser_cookies(client).await)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The answer to a form posted as the browser would (its cookies, the form's CSRF
/// token, `origin`), as the agent sends it, for the markup check.
async fn raw_post(client: &Client, page: &str, path: &str, origin: &str) -> String {
    let csrf = client
        .find(Locator::Css("input[name=csrf]"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    reqwest::Client::new()
        .post(format!("{page}{path}"))
        .header("Cookie", browser_cookies(client).await)
        .header("Origin", origin)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Waits (up to `deadline`) for the librarian screen's sync result to contain
/// `expected`, pressing Refresh while the sync is still running (the screen never
/// reloads itself).
async fn wait_sync_result(client: &Client, expected: &str, deadline: Duration) -> String {
    let until = Instant::now() + deadline;
    loop {
        let shown = match client.find(Locator::Css("#sync-result")).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if shown.contains(expected) || Instant::now() > until {
            return shown;
        }
        if let Ok(refresh) = client.find(Locator::Css("#refresh-screen")).await {
            let _ = refresh.click().await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

// ---------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------

/// Everything the browsing needs to reach.
struct Setup {
    page: String,
    server_port: u16,
    server_db: PathBuf,
    server_log: PathBuf,
    pc: TestPc,
}

fn contains_bytes(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Every byte of the files in `dir` whose name contains `part`.
fn files_bytes(dir: &Path, part: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().contains(part) && path.is_file() {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkin_and_librarian_screen_in_headless_chromium() {
    if !browser_available() {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();

    // The district server's database, with the library and this PC enrolled; the
    // server itself starts later, so the first "Sync now" finds no link.
    let server_db = scratch.path().join("server.db");
    server_json(&server_db, &["init"]);
    server_json(
        &server_db,
        &[
            "add-library",
            "dermaji",
            "--name",
            "Perpustakaan Desa Dermaji",
        ],
    );
    let token = server_json(
        &server_db,
        &["add-device", "--library", "dermaji", "--pc", "pc-01"],
    )["token"]
        .as_str()
        .unwrap()
        .to_string();
    let server_port = free_port();
    let page_port = free_port();

    // The PC, set up with its PIN, and its agent serving the page. The probe and the
    // agent's own sync wait an hour, so only "Sync now" sends anything.
    let pc = TestPc::new();
    let server_url = format!("http://127.0.0.1:{server_port}");
    let init = pc
        .run(&[
            "init",
            "--library",
            "dermaji",
            "--pc",
            "pc-01",
            "--timezone",
            "Asia/Jakarta",
            "--server",
            &server_url,
            "--token",
            &token,
            "--pin",
            PIN,
        ])
        .ok();
    assert!(
        init.stdout.contains("PIN pustakawan disimpan"),
        "{}",
        init.stdout
    );
    let agent_log = scratch.path().join("agent.log");
    let mut command = pc.command();
    command
        .arg("agent")
        .env("JEJAK_LOG_FORMAT", "json")
        .env("JEJAK_CHECKIN_PORT", page_port.to_string())
        .env("JEJAK_PROBE_SECS", "3600")
        .env("JEJAK_SYNC_SECS", "3600")
        .env("JEJAK_SYNC_BACKOFF_BASE_SECS", "0.02")
        .env("JEJAK_SYNC_BACKOFF_CAP_SECS", "0.2")
        .env("JEJAK_SYNC_TIMEOUT_SECS", "5")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&agent_log).unwrap());
    let mut agent = ChildGuard::spawn(&mut command);
    let page = format!("http://127.0.0.1:{page_port}");
    wait_http_ok(&format!("{page}/"), Duration::from_secs(30)).await;

    let setup = Setup {
        page,
        server_port,
        server_db: server_db.clone(),
        server_log: scratch.path().join("server.log"),
        pc,
    };
    let driver = Driver::start();
    // A phone-to-old-monitor sized window: the check-in PC's screen.
    let client = driver
        .browser(&scratch.path().join("profile"), "1024,1300", None)
        .await;
    let mut server = None;
    let result = browse(&client, &setup, &mut server).await;
    let _ = client.close().await;
    drop(driver);
    if let Err(e) = &result {
        eprintln!(
            "agent log:\n{}",
            std::fs::read_to_string(&agent_log).unwrap_or_default()
        );
        panic!("{e}");
    }

    // The agent stops cleanly on TERM (the page first, then the daemon).
    agent.signal("TERM");
    let status = agent
        .wait_deadline(COMMAND_DEADLINE)
        .expect("the agent stops");
    assert!(status.success(), "{status:?}");
    let log = std::fs::read_to_string(&agent_log).unwrap();
    assert!(log.contains("check-in page ready"), "{log}");
    assert!(log.contains("check-in page stopped"), "{log}");
    assert!(
        log.contains("foreign_origin"),
        "the refusal is logged: {log}"
    );
    drop(server);

    // The member number is nowhere: not in the PC's store, the server's store or the
    // agent's log.
    assert!(!contains_bytes(log.as_bytes(), MEMBER), "agent log");
    assert!(
        !contains_bytes(&files_bytes(&setup.pc.data_dir, "jejak.db"), MEMBER),
        "PC store"
    );
    assert!(
        !contains_bytes(&files_bytes(scratch.path(), "server.db"), MEMBER),
        "server store"
    );
}

/// How the librarian screen lies out: its overflow sideways and the smallest tap target
/// of the desk (its choices and buttons).
#[derive(Debug, serde::Deserialize)]
struct DeskLayout {
    page_overflow: f64,
    smallest_target: f64,
    narrowest_target: f64,
    /// How far the activity form's participant grid reaches past its box sideways (its
    /// box scrolls, but a grid that fits needs no scrolling).
    grid_overflow: f64,
    /// The elements whose content overflows them sideways (outside a table's scroll box),
    /// to say which when the page does.
    overflowing: Vec<String>,
}

async fn desk_layout(client: &Client) -> DeskLayout {
    let script = r#"
        const targets = [...document.querySelectorAll('#buku-tamu .chip, #buku-tamu button, #anggota button, #anggota input:not([type=hidden]), #anggota select, #people, #kegiatan .chip, #kegiatan button, #kegiatan input:not([type=hidden]):not([type=radio]), #kegiatan select, #kegiatan a.edit')];
        const grid = document.querySelector('#participants');
        const rects = targets.map(t => t.getBoundingClientRect());
        return {
            page_overflow: document.documentElement.scrollWidth - window.innerWidth,
            smallest_target: Math.min(...rects.map(r => r.height)),
            narrowest_target: Math.min(...rects.map(r => r.width)),
            grid_overflow: grid ? grid.parentElement.scrollWidth - grid.parentElement.clientWidth : 0,
            overflowing: [...document.querySelectorAll('body *')].filter(e => !e.closest('.scroll') && e.scrollWidth > e.clientWidth + 1).slice(-6).map(e => e.tagName + '#' + e.id + '.' + e.className + ':' + e.scrollWidth + '>' + e.clientWidth),
        };
    "#;
    serde_json::from_value(client.execute(script, vec![]).await.unwrap()).unwrap()
}

/// The visits in the PC's store, as `jejak visit list` reads them: (gender, age group,
/// user kind, purpose, people, withdrawn), latest first.
fn stored_visits(pc: &TestPc) -> Vec<(String, String, String, String, u64, bool)> {
    let listed = pc
        .run(&["--format", "json", "visit", "list", "--limit", "100"])
        .ok()
        .json();
    listed
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["gender"].as_str().unwrap().to_string(),
                v["age_group"].as_str().unwrap().to_string(),
                v["user_kind"].as_str().unwrap().to_string(),
                v["purpose"].as_str().unwrap().to_string(),
                v["people"].as_u64().unwrap(),
                v["withdrawn"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// The desk on the librarian screen (issue 17): taps, a quick button, a group, the
/// undo, the member count and an activity with its edit, on a 1024×768 monitor (a
/// 1024×640 viewport, as the check-in form's test explains) and at 360×640, read back
/// from the PC's store.
async fn desk(
    client: &Client,
    setup: &Setup,
    pages: &mut Vec<(String, String)>,
    axe: Option<&str>,
) -> Result<(), Box<dyn std::error::Error>> {
    let long = Duration::from_secs(60);
    let page = &setup.page;
    client.goto(&format!("{page}/pustakawan")).await?;
    assert_eq!(text(client, "#visits-today").await, "0");

    // The first visitor: every choice made once, then one tap.
    set_viewport(client, 1024, 640).await;
    for (name, value) in [
        ("gender", "P"),
        ("age", "anak"),
        ("kind", "non_anggota"),
        ("purpose", "membaca"),
    ] {
        click(client, &format!("input[name={name}][value={value}]")).await;
    }
    click(client, "#record-visit").await;
    assert_eq!(wait_text(client, "#visits-today", "1", long).await, "1");
    // The next one like her is one tap: the choices stayed.
    click(client, "#record-visit").await;
    assert_eq!(wait_text(client, "#visits-today", "2", long).await, "2");
    // And the combination is a quick button.
    click(client, ".quick-visit").await;
    assert_eq!(wait_text(client, "#visits-today", "3", long).await, "3");
    let layout = desk_layout(client).await;
    assert!(layout.page_overflow <= 0.0, "{layout:?}");
    screenshot(client, "05a-visitor-book-1024x640.png").await;
    checkers::assert_accessible(client, axe, "the visitor book").await;

    // A school class: one entry with its size.
    click(client, "input[name=kind][value=rombongan]").await;
    click(client, "input[name=purpose][value=ikut_kegiatan]").await;
    let people = client.find(Locator::Css("#people")).await?;
    people.clear().await?;
    people.send_keys("28").await?;
    click(client, "#record-visit").await;
    assert_eq!(wait_text(client, "#visits-today", "31", long).await, "31");
    assert!(text(client, "#last-visit").await.contains("28 orang"));

    // The undo takes the group back.
    click(client, "#undo-visit").await;
    let undone = wait_text(client, "#visit-undone", "dibatalkan", long).await;
    assert!(undone.contains("dibatalkan"), "{undone:?}");
    assert_eq!(text(client, "#visits-today").await, "3");
    pages.push((
        "the librarian screen after an undo".into(),
        raw_page(client, page, "/pustakawan?dibatalkan=1").await,
    ));

    // A phone: nothing sideways, every target a finger's size; a tap works there too,
    // with the choices of the last visit still counted (the undone group's are gone).
    set_viewport(client, 360, 640).await;
    let layout = desk_layout(client).await;
    assert!(layout.page_overflow <= 0.0, "{layout:?}");
    assert!(layout.smallest_target >= 44.0, "{layout:?}");
    assert!(layout.overflowing.is_empty(), "{layout:?}");
    assert!(layout.narrowest_target >= 44.0, "{layout:?}");
    click(client, "#record-visit").await;
    assert_eq!(wait_text(client, "#visits-today", "4", long).await, "4");
    screenshot(client, "05b-visitor-book-360x640.png").await;
    checkers::assert_accessible(client, axe, "the visitor book on a phone").await;

    // The member count of the month the form starts on.
    let members = client.find(Locator::Css("#members")).await?;
    members.clear().await?;
    members.send_keys("150").await?;
    let new_members = client.find(Locator::Css("#new_members")).await?;
    new_members.clear().await?;
    new_members.send_keys("7").await?;
    click(client, "#save-members").await;
    let saved = wait_text(client, "#member-saved", "disimpan", long).await;
    assert!(saved.contains("disimpan"), "{saved:?}");
    assert!(
        text(client, "#month-last")
            .await
            .contains("150 anggota · 7 anggota baru")
    );
    let layout = desk_layout(client).await;
    assert!(layout.page_overflow <= 0.0, "{layout:?}");
    screenshot(client, "05c-member-count-360x640.png").await;
    // More new members than members: said, nothing stored.
    let members = client.find(Locator::Css("#members")).await?;
    members.clear().await?;
    members.send_keys("5").await?;
    click(client, "#save-members").await;
    let error = wait_text(client, "#member-errors", "7", long).await;
    assert!(error.contains('7'), "{error:?}");
    checkers::assert_accessible(client, axe, "the member form with an error").await;

    // An activity, on the phone: the date starts on today; the time is set as a browser
    // would keep it (typing into a time field depends on the browser's locale).
    let privacy = text(client, "#activity-privacy").await;
    assert!(
        privacy.contains("jangan menulis nama pengunjung"),
        "{privacy:?}"
    );
    client
        .execute("document.getElementById('a-start').value = '09:30'", vec![])
        .await?;
    let fill = |css: &'static str, value: &'static str| async move {
        let input = client.find(Locator::Css(css)).await.unwrap();
        input.clear().await.unwrap();
        input.send_keys(value).await.unwrap();
    };
    fill("#a-duration", "90").await;
    click(client, "#a-type option[value=bedah_buku]").await;
    fill("#a-title", "Bedah buku cerita rakyat").await;
    fill("#a-partner", "Taman Baca Ceria").await;
    fill("input[name=p_P_anak]", "12").await;
    fill("input[name=p_L_anak]", "9").await;
    let layout = desk_layout(client).await;
    assert!(layout.page_overflow <= 0.0, "{layout:?}");
    assert!(layout.grid_overflow <= 0.0, "{layout:?}");
    assert!(layout.overflowing.is_empty(), "{layout:?}");
    assert!(layout.smallest_target >= 44.0, "{layout:?}");
    assert!(layout.narrowest_target >= 44.0, "{layout:?}");
    screenshot(client, "05d-activity-form-360x640.png").await;
    click(client, "#save-activity").await;
    let saved = wait_text(client, "#activity-saved", "dicatat", long).await;
    assert!(saved.contains("dicatat"), "{saved:?}");
    let listed = text(client, "#activity-list").await;
    assert!(listed.contains("Bedah buku cerita rakyat"), "{listed:?}");
    assert!(listed.contains("21"), "{listed:?}");
    let layout = desk_layout(client).await;
    assert!(layout.page_overflow <= 0.0, "{layout:?}");
    checkers::assert_accessible(client, axe, "the activity form on a phone").await;

    // On the monitor: "Ubah" opens the form on it, and saving makes a new revision.
    set_viewport(client, 1024, 640).await;
    click(client, "#activity-list a.edit").await;
    let title = wait_text(client, "#activities-title", "Ubah kegiatan", long).await;
    assert_eq!(title, "Ubah kegiatan");
    let url = client.current_url().await?;
    let path = format!("{}?{}", url.path(), url.query().unwrap_or_default());
    pages.push((
        "the activity form on an activity to change".into(),
        raw_page(client, page, &path).await,
    ));
    fill("#a-title", "Bedah buku dongeng desa").await;
    fill("input[name=p_X_lansia]", "1").await;
    let layout = desk_layout(client).await;
    assert!(layout.page_overflow <= 0.0, "{layout:?}");
    assert!(layout.grid_overflow <= 0.0, "{layout:?}");
    screenshot(client, "05e-activity-edit-1024x640.png").await;
    checkers::assert_accessible(client, axe, "the activity form on an activity").await;
    click(client, "#save-activity").await;
    let edited = wait_text(client, "#activity-edited", "revisi baru", long).await;
    assert!(edited.contains("revisi baru"), "{edited:?}");
    let listed = text(client, "#activity-list").await;
    assert!(listed.contains("Bedah buku dongeng desa"), "{listed:?}");
    assert!(!listed.contains("cerita rakyat"), "{listed:?}");
    client.set_window_size(1024, 1300).await?;

    // What the PC's store holds: the activity's second revision.
    let activities = setup
        .pc
        .run(&["--format", "json", "activity", "list"])
        .ok()
        .json();
    let activities = activities.as_array().unwrap();
    assert_eq!(activities.len(), 1, "{activities:?}");
    let a = &activities[0];
    assert_eq!(
        (
            a["revision"].as_u64(),
            a["title"].as_str(),
            a["partner"].as_str(),
            a["activity_type"].as_str(),
            a["duration_minutes"].as_u64(),
            a["start"].as_str(),
        ),
        (
            Some(2),
            Some("Bedah buku dongeng desa"),
            Some("Taman Baca Ceria"),
            Some("bedah_buku"),
            Some(90),
            Some("09:30:00"),
        ),
        "{a}"
    );
    let participants: u64 = a["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(participants, 22, "{a}");

    // What the PC's store holds: the four visits and the withdrawn group, and the count.
    let visits = stored_visits(&setup.pc);
    let one = |kind: &str, purpose: &str| {
        (
            "P".to_string(),
            "anak".to_string(),
            kind.to_string(),
            purpose.to_string(),
        )
    };
    let mut counted = Vec::new();
    for v in &visits {
        if v.5 {
            assert_eq!((v.2.as_str(), v.4), ("rombongan", 28), "{visits:?}");
        } else {
            counted.push(((v.0.clone(), v.1.clone(), v.2.clone(), v.3.clone()), v.4));
        }
    }
    assert_eq!(visits.iter().filter(|v| v.5).count(), 1, "{visits:?}");
    assert_eq!(
        counted,
        vec![
            (one("non_anggota", "membaca"), 1),
            (one("non_anggota", "membaca"), 1),
            (one("non_anggota", "membaca"), 1),
            (one("non_anggota", "membaca"), 1),
        ],
        "{visits:?}"
    );
    let counts = setup
        .pc
        .run(&["--format", "json", "member", "list"])
        .ok()
        .json();
    let counts = counts.as_array().unwrap();
    assert_eq!(counts.len(), 1, "{counts:?}");
    assert_eq!(
        (
            counts[0]["members"].as_u64(),
            counts[0]["new_members"].as_u64()
        ),
        (Some(150), Some(7))
    );
    Ok(())
}

async fn browse(
    client: &Client,
    setup: &Setup,
    server: &mut Option<ChildGuard>,
) -> Result<(), Box<dyn std::error::Error>> {
    let page = &setup.page;
    let long = Duration::from_secs(60);
    let axe = checkers::axe_script();
    let axe = axe.as_deref();
    // Every page as the agent sent it, for the markup check at the end.
    let mut pages: Vec<(String, String)> = Vec::new();

    // The check-in form, in Indonesian.
    client.goto(&format!("{page}/")).await?;
    assert_eq!(
        client
            .find(Locator::Css("html"))
            .await?
            .attr("lang")
            .await?,
        Some("id".to_string())
    );
    assert!(text(client, "h1").await.starts_with("Selamat datang"));
    source(client).await;
    checkers::assert_accessible(client, axe, "the check-in form").await;
    pages.push((
        "the check-in form".into(),
        raw_page(client, page, "/").await,
    ));

    // A patron answers about themselves: age groups in years, and "not stated" as
    // declining to say, for gender and age alike.
    let mut ages = Vec::new();
    for tile in client.find_all(Locator::Css(".ages .tile")).await? {
        ages.push(tile.text().await?);
    }
    assert_eq!(ages.len(), 7, "{ages:?}");
    assert!(
        ages[0].contains("Anak") && ages[0].contains("≤ 12 tahun"),
        "{ages:?}"
    );
    assert!(ages[..6].iter().all(|a| a.contains(" tahun")), "{ages:?}");
    assert_eq!(ages[6], "Tidak ingin menyebutkan");
    assert_eq!(
        text(client, ".genders .tile:last-child").await,
        "Tidak ingin menyebutkan"
    );
    assert!(!source(client).await.contains("Tidak diketahui"));

    // A 1024×768 monitor, less the taskbar and the browser's tab strip and address
    // bar: the whole form, Start included, is on the screen without scrolling.
    set_viewport(client, 1024, 640).await;
    screenshot(client, "01-checkin-form-1024x640.png").await;
    let layout = form_layout(client).await;
    assert!(
        layout.start_bottom <= layout.viewport_height,
        "the Start button ends at {} px, below the {} px on screen",
        layout.start_bottom,
        layout.viewport_height
    );
    assert!(layout.page_overflow <= 0.0, "{layout:?}");
    assert!(layout.tiles_overflowing.is_empty(), "{layout:?}");
    assert_whole_words(&layout, "1024×640");
    let governance = layout
        .texts
        .iter()
        .find(|lines| lines.concat().starts_with("Pemerintahan"))
        .unwrap();
    assert!(
        governance.first().unwrap() != "Pemerintah",
        "{governance:?}"
    );

    // A phone, 360×640: everything fits sideways and every choice is a finger's width.
    set_viewport(client, 360, 640).await;
    screenshot(client, "01-checkin-form-360x640.png").await;
    let layout = form_layout(client).await;
    assert!(layout.page_overflow <= 0.0, "{layout:?}");
    assert!(layout.tiles_overflowing.is_empty(), "{layout:?}");
    assert!(layout.smallest_tile >= 44.0, "{layout:?}");
    assert_whole_words(&layout, "360×640");
    checkers::assert_accessible(client, axe, "the check-in form on a phone").await;
    client.set_window_size(1024, 1300).await?;

    // Four purposes are refused with a clear message; the choices come back.
    for purpose in ["pendidikan", "ekonomi", "literasi_digital", "hobi"] {
        click(client, &format!("input[name=purpose][value={purpose}]")).await;
    }
    click(client, "input[name=gender][value=P]").await;
    click(client, "input[name=age][value=pemuda]").await;
    client
        .find(Locator::Css("#member"))
        .await?
        .send_keys(MEMBER)
        .await?;
    click(client, "#start").await;
    let errors = wait_text(client, "#errors", "Paling banyak 3", long).await;
    assert!(errors.contains("Paling banyak 3 tujuan"), "{errors}");
    assert_eq!(
        text(client, "#member-again").await,
        "Nomor anggota tidak disimpan: ketik lagi."
    );
    assert_eq!(
        client
            .find_all(Locator::Css("input[name=purpose]:checked"))
            .await?
            .len(),
        4
    );
    source(client).await;
    screenshot(client, "02-too-many-purposes.png").await;
    checkers::assert_accessible(client, axe, "the form with errors").await;
    pages.push((
        "the form with errors".into(),
        raw_post(client, page, "/mulai", page).await,
    ));

    // Untick one, type the member number again, start.
    click(client, "input[name=purpose][value=hobi]").await;
    client
        .find(Locator::Css("#member"))
        .await?
        .send_keys(MEMBER)
        .await?;
    click(client, "#start").await;
    let used = wait_text(client, "#time-used", "menit", long).await;
    assert!(used.contains("menit"), "{used:?}");
    assert_eq!(path(client).await, "/");
    assert_eq!(text(client, "#finish").await, "Selesai");
    // The page shows when the session started and never reloads itself: no refresh
    // in its markup or its headers, and a mark left in the page stays.
    assert!(!source(client).await.contains("http-equiv"));
    assert!(text(client, "#started-at").await.contains(':'));
    let head = reqwest::get(format!("{page}/")).await?;
    assert!(head.headers().get("refresh").is_none());
    client
        .execute("window.jejakMark = 'still here'; return null", vec![])
        .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        client.execute("return window.jejakMark", vec![]).await?,
        serde_json::json!("still here")
    );
    screenshot(client, "03-session-open.png").await;
    checkers::assert_accessible(client, axe, "the open session").await;
    pages.push(("the open session".into(), raw_page(client, page, "/").await));

    // The session is in the store, as `jejak session start` would have made it.
    let status = setup.pc.status_json();
    let open = &status["store"]["open_session"];
    assert_eq!(open["user_kind"], "anggota", "{status}");
    assert_eq!(
        open["purposes"],
        serde_json::json!(["pendidikan", "ekonomi", "literasi_digital"])
    );
    assert_eq!(open["patron_key"].as_str().map(str::len), Some(64));

    // The librarian screen: a wrong PIN first, then the right one.
    client.goto(&format!("{page}/pustakawan")).await?;
    client
        .find(Locator::Css("#pin-input"))
        .await?
        .send_keys("1111")
        .await?;
    click(client, "#pin-submit").await;
    let error = wait_text(client, "#pin-error", "PIN salah", long).await;
    assert_eq!(error, "PIN salah.");
    screenshot(client, "04-wrong-pin.png").await;
    checkers::assert_accessible(client, axe, "a wrong PIN").await;
    pages.push((
        "the PIN form".into(),
        raw_page(client, page, "/pustakawan").await,
    ));
    client
        .find(Locator::Css("#pin-input"))
        .await?
        .send_keys(PIN)
        .await?;
    click(client, "#pin-submit").await;
    assert_eq!(wait_text(client, "#today-count", "1", long).await, "1");
    assert!(text(client, "#open-session").await.starts_with("sejak"));
    let pending = text(client, "#pending").await;
    assert!(
        pending.ends_with(" catatan") && !pending.starts_with("0 "),
        "{pending}"
    );
    assert_eq!(text(client, "#last-success").await, "belum pernah");
    let screen = source(client).await;
    for jargon in ["seq", "perubahan", "Epoch"] {
        assert!(!screen.contains(jargon), "{jargon} on the librarian screen");
    }
    screenshot(client, "05-librarian-session-open.png").await;
    checkers::assert_accessible(client, axe, "the librarian screen").await;
    pages.push((
        "the librarian screen".into(),
        raw_page(client, page, "/pustakawan").await,
    ));

    desk(client, setup, &mut pages, axe).await?;

    // Back on the patron's page: Finish.
    client.goto(&format!("{page}/")).await?;
    click(client, "#finish").await;
    let thanks = wait_text(client, "#thanks", "Terima kasih", long).await;
    assert!(thanks.starts_with("Terima kasih"), "{thanks:?}");
    assert!(client.find(Locator::Css("#checkin")).await.is_ok());
    screenshot(client, "06-finished.png").await;
    checkers::assert_accessible(client, axe, "the thanks").await;

    // Counted, ended, waiting to sync; Sync now while the server is down.
    client.goto(&format!("{page}/pustakawan")).await?;
    assert_eq!(text(client, "#today-count").await, "1");
    assert_eq!(text(client, "#open-session").await, "tidak ada");
    let row = text(client, "#today-sessions tbody tr").await;
    assert!(row.contains("Anggota") && row.contains("Keluar"), "{row}");
    click(client, "#sync-now").await;
    let result = wait_sync_result(client, "Tidak tersambung", long).await;
    assert!(
        result.contains("Tidak tersambung ke server kabupaten"),
        "{result:?}"
    );
    assert!(
        !text(client, "#pending").await.starts_with("0 "),
        "the data stays"
    );
    screenshot(client, "07-sync-no-link.png").await;

    // The server comes up: Sync now sends everything.
    *server = Some(spawn_server(
        &setup.server_db,
        setup.server_port,
        &setup.server_log,
    ));
    wait_http_ok(
        &format!("http://127.0.0.1:{}/healthz", setup.server_port),
        Duration::from_secs(30),
    )
    .await;
    click(client, "#sync-now").await;
    let result = wait_sync_result(client, "Sinkron selesai", long).await;
    assert!(result.contains("Sinkron selesai"), "{result:?}");
    assert_eq!(text(client, "#pending").await, "0 catatan");
    assert_ne!(text(client, "#last-success").await, "belum pernah");
    source(client).await;
    screenshot(client, "08-synced.png").await;

    // The server holds the session with its patron key (never the number).
    let db = rusqlite::Connection::open_with_flags(
        &setup.server_db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    let sessions: i64 = db.query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get(0))?;
    assert_eq!(sessions, 1);
    let keys: i64 = db.query_row("SELECT COUNT(*) FROM patron_keys", [], |r| r.get(0))?;
    assert_eq!(keys, 1);
    drop(db);

    // The English switch.
    client.goto(&format!("{page}/pustakawan?lang=en")).await?;
    assert_eq!(text(client, "h1").await, "Librarian screen");
    assert!(text(client, "#sync-result").await.contains("Sync done"));
    assert_eq!(text(client, "#sync-now").await, "Sync now");
    screenshot(client, "09-librarian-en.png").await;
    checkers::assert_accessible(client, axe, "the librarian screen in English").await;
    pages.push((
        "the librarian screen in English".into(),
        raw_page(client, page, "/pustakawan").await,
    ));
    client.goto(&format!("{page}/?lang=id")).await?;

    // A form on another site that posts to the page is refused.
    let foreign = spawn_foreign_site(page);
    client.goto(&foreign).await?;
    click(client, "#go").await;
    let refused = wait_text(client, "#refused", "situs lain", long).await;
    assert!(
        refused.contains("Permintaan dari situs lain ditolak"),
        "{refused:?}"
    );
    assert_eq!(
        client
            .find(Locator::Css("#refused"))
            .await?
            .attr("data-reason")
            .await?
            .as_deref(),
        Some("foreign_origin")
    );
    screenshot(client, "10-foreign-origin-refused.png").await;
    checkers::assert_accessible(client, axe, "the refusal page").await;
    client.goto(&format!("{page}/")).await?;
    pages.push((
        "the refusal page".into(),
        raw_post(client, page, "/mulai", "http://evil.example").await,
    ));
    pages.push((
        "a page that does not exist".into(),
        raw_page(client, page, "/tidak-ada").await,
    ));
    let status = setup.pc.status_json();
    assert_eq!(status["store"]["sessions_today"], 1, "nothing was started");
    assert!(status["store"]["open_session"].is_null());

    // A patron reads English, and their English ends with their session: the thanks
    // are in English, the page after them is Indonesian for the next patron.
    client.goto(&format!("{page}/?lang=en")).await?;
    assert!(text(client, "h1").await.starts_with("Welcome"));
    click(client, "input[name=purpose][value=komunikasi]").await;
    click(client, "input[name=gender][value=X]").await;
    click(client, "input[name=age][value=unknown]").await;
    click(client, "#start").await;
    assert_eq!(wait_text(client, "#finish", "Finish", long).await, "Finish");
    assert_eq!(text(client, "h1").await, "Session in progress");
    pages.push((
        "the open session in English".into(),
        raw_page(client, page, "/").await,
    ));
    click(client, "#finish").await;
    let thanks = wait_text(client, "#thanks", "Thank you", long).await;
    assert!(thanks.starts_with("Thank you"), "{thanks:?}");
    assert!(text(client, "h1").await.starts_with("Selamat datang"));
    assert_eq!(
        client
            .find(Locator::Css("html"))
            .await?
            .attr("lang")
            .await?
            .as_deref(),
        Some("id")
    );
    screenshot(client, "11-next-patron-in-indonesian.png").await;
    checkers::assert_accessible(client, axe, "the thanks in English").await;
    client.goto(&format!("{page}/")).await?;
    assert!(text(client, "h1").await.starts_with("Selamat datang"));
    assert_eq!(setup.pc.status_json()["store"]["sessions_today"], 2);

    // Every page's markup, as the agent sent it.
    checkers::assert_valid_markup(&pages);
    Ok(())
}
