//! `jejak demo` end to end with the real binary: the month's reports are written, the
//! server's rollups pass `jejak server check-rollups` (and a damaged rollup is found and
//! repaired), and `--serve` gives a dashboard a staff member can sign in to.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::JEJAK;

fn check_rollups(database: &std::path::Path, repair: bool) -> std::process::Output {
    let mut command = Command::new(JEJAK);
    command
        .args(["--lang", "en", "server", "check-rollups", "--database"])
        .arg(format!("sqlite:{}", database.display()));
    if repair {
        command.arg("--repair");
    }
    command.output().unwrap()
}

#[test]
fn the_demo_writes_its_reports_and_its_rollups_equal_a_recount() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let run = Command::new(JEJAK)
        .args(["--format", "json", "demo", "--month", "2026-10", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    for file in [
        "rekap-bulanan-2026-10.xlsx",
        "rekap-bulanan-2026-10.html",
        "laporan-bulanan-dermaji-2026-10.html",
    ] {
        let path = out.join("laporan").join(file);
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.len() > 1000, "{} is too small", path.display());
    }
    let html = std::fs::read_to_string(out.join("laporan/rekap-bulanan-2026-10.html")).unwrap();
    assert!(html.contains("PEMERINTAH KABUPATEN BANYUMAS"));

    let database = out.join("server/jejak-server.db");
    // Every session the PCs made is counted in the month's matrix, the PC with the dead
    // CMOS battery that syncs only by USB (Adisara's) included: none is dated in 2000.
    let matrix = Command::new(JEJAK)
        .args(["report", "--format", "json", "--database"])
        .arg(format!("sqlite:{}", database.display()))
        .args(["district", "--month", "2026-10"])
        .output()
        .unwrap();
    let matrix: serde_json::Value = serde_json::from_slice(&matrix.stdout).unwrap();
    let table = &matrix["sections"][0];
    let column = |key: &str| {
        table["columns"]
            .as_array()
            .unwrap()
            .iter()
            .position(|c| c["key"] == key)
            .unwrap()
    };
    let (code, sessions) = (column("code"), column("sessions"));
    let villages = summary["villages"].as_array().unwrap();
    assert_eq!(villages.len(), 5);
    for village in villages {
        let row = table["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["cells"][code] == village["library"])
            .unwrap_or_else(|| panic!("no row for {}", village["library"]));
        assert_eq!(
            row["cells"][sessions], village["sessions"],
            "{}: the matrix counts another number of sessions than its PCs made",
            village["library"]
        );
    }
    // The librarians' desks: the matrix's services table counts each village's visitor
    // book (its purposes add up to the visitors the desk PC holds), its two activities
    // and their participants, and the member count, as the demo checked them.
    let services = &matrix["sections"][1];
    assert_eq!(services["id"], "services");
    let service_column = |key: &str| {
        services["columns"]
            .as_array()
            .unwrap()
            .iter()
            .position(|c| c["key"] == key)
            .unwrap_or_else(|| panic!("no column {key}"))
    };
    let purposes: Vec<usize> = services["columns"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .filter(|(_, c)| c["key"].as_str().unwrap().starts_with("purpose_"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(purposes.len(), 6);
    for village in summary["district"]["villages"].as_array().unwrap() {
        let desk = &village["desk"];
        assert!(desk["visitors"].as_u64().unwrap() > 20, "{desk}");
        assert_eq!(desk["activities"], 2, "{desk}");
        let row = services["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["cells"][service_column("code")] == village["library"])
            .unwrap();
        let cells = &row["cells"];
        let by_purpose: u64 = purposes.iter().map(|i| cells[*i].as_u64().unwrap()).sum();
        assert_eq!(by_purpose, desk["visitors"].as_u64().unwrap());
        assert_eq!(cells[service_column("activities")], desk["activities"]);
        assert_eq!(cells[service_column("participants")], desk["participants"]);
        assert_eq!(cells[service_column("members")], desk["members"]);
        assert!(
            cells[service_column("visits")].as_u64().unwrap() >= desk["visitors"].as_u64().unwrap(),
            "visits by the rule are at least the visitor book's"
        );
    }
    assert!(out.join("laporan/iplm-2026.xlsx").exists());

    let fine = check_rollups(&database, false);
    let text = String::from_utf8_lossy(&fine.stdout);
    assert!(fine.status.success(), "{text}");
    assert!(text.contains("equal a recount"), "{text}");

    // Damage one PC's month of day rollups: the check finds it, the repair mends it.
    let conn = rusqlite::Connection::open(&database).unwrap();
    let changed = conn
        .execute(
            "UPDATE day_rollups SET days = x'02'
             WHERE (month, device) = (SELECT month, device FROM day_rollups LIMIT 1)",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(conn);
    let damaged = check_rollups(&database, false);
    assert_eq!(damaged.status.code(), Some(1));
    let text = String::from_utf8_lossy(&damaged.stdout);
    assert!(text.contains("differ from the recount"), "{text}");
    assert!(String::from_utf8_lossy(&damaged.stderr).contains("--repair"));
    let repaired = check_rollups(&database, true);
    assert!(
        repaired.status.success(),
        "{}",
        String::from_utf8_lossy(&repaired.stderr)
    );
    assert!(check_rollups(&database, false).status.success());

    // Pruning every raw record of the month keeps its report exactly as it was.
    let district_json = || {
        let out = Command::new(JEJAK)
            .args(["report", "--format", "json", "--database"])
            .arg(format!("sqlite:{}", database.display()))
            .args(["district", "--month", "2026-10"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        report.as_object_mut().unwrap().remove("generated_at");
        report
    };
    let before = district_json();
    let pruned = Command::new(JEJAK)
        .args([
            "--format",
            "json",
            "server",
            "prune",
            "--keep-months",
            "0",
            "--database",
        ])
        .arg(format!("sqlite:{}", database.display()))
        .output()
        .unwrap();
    assert!(
        pruned.status.success(),
        "{}",
        String::from_utf8_lossy(&pruned.stderr)
    );
    let pruned: serde_json::Value = serde_json::from_slice(&pruned.stdout).unwrap();
    assert!(pruned["sessions"].as_u64().unwrap() > 1000, "{pruned}");
    let conn = rusqlite::Connection::open(&database).unwrap();
    let left: i64 = conn
        .query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get(0))
        .unwrap();
    assert!(left < 20, "{left} sessions left after pruning");
    drop(conn);
    assert_eq!(district_json(), before);
    assert!(check_rollups(&database, false).status.success());
}

/// Issue 15, item 10: every table the demo prints has a title, and its three session
/// totals are explained, with numbers that add up: all sessions on the server = staff +
/// patron sessions (table 1), and the patron sessions are those the matrix (table 3)
/// counts plus those dated in another month.
fn assert_tables_are_titled_and_totals_explained(printed: &[String]) {
    let text = printed.join("\n");
    let position = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} is not in the demo's output:\n{text}"))
    };
    let titles = [
        "1. What the village PCs recorded in October 2026",
        "2. The sync to the district server",
        "3. The district's monthly summary from the server's data",
        "Why the session totals differ:",
    ];
    let at: Vec<usize> = titles.iter().map(|t| position(t)).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "titles out of order");
    // Each table follows its title.
    for title in &titles[..3] {
        let after = &text[position(title)..];
        let next_line = after.lines().nth(1).unwrap_or("");
        assert!(
            next_line.starts_with('┌') || next_line.starts_with("District"),
            "no table under {title:?}: {next_line:?}"
        );
    }
    let number = |prefix: &str, suffix: &str| -> u64 {
        let line = text
            .lines()
            .find(|l| l.contains(prefix) && l.contains(suffix))
            .unwrap_or_else(|| panic!("no line with {prefix:?} … {suffix:?}:\n{text}"));
        let start = line.find(prefix).unwrap() + prefix.len();
        let digits: String = line[start..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == ',')
            .filter(char::is_ascii_digit)
            .collect();
        digits.parse().unwrap()
    };
    let total = number("• ", " sessions were made on the village PCs");
    let staff = number("• ", " of them are staff sessions");
    let patrons = number("which reports do not count: ", " patron sessions (table 1)");
    let in_month = number("• ", " are dated in October 2026");
    assert!(staff > 0, "the demo's PCs record staff sessions too");
    assert_eq!(total, staff + patrons);
    assert!(in_month <= patrons && in_month > 0);
    // The server's line and table 1's total row say the same.
    let server_line = number("made: ", " sessions and");
    assert_eq!(server_line, total);
}

#[test]
fn the_demo_serves_its_dashboard_with_a_staff_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(JEJAK)
        .args([
            "--lang",
            "en",
            "demo",
            "--month",
            "2026-10",
            "--serve",
            "127.0.0.1:0",
            "--out",
        ])
        .arg(dir.path().join("demo"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let (mut url, mut token) = (None, None);
    let mut printed = Vec::new();
    while url.is_none() || token.is_none() {
        let line = received
            .recv_timeout(Duration::from_secs(120))
            .expect("the demo printed no dashboard address");
        printed.push(line.clone());
        if let Some(rest) = line.strip_prefix("Dashboard: ") {
            url = Some(rest.trim().to_string());
        }
        if let Some(rest) = line.strip_prefix("Staff token to sign in: ") {
            token = Some(rest.trim().to_string());
        }
    }
    let (url, token) = (url.unwrap(), token.unwrap());
    assert!(url.ends_with("/dashboard?month=2026-10"), "{url}");
    assert_tables_are_titled_and_totals_explained(&printed);
    let base = url.split("/dashboard").next().unwrap().to_string();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let page = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let signed_in = client
            .post(format!("{base}/dashboard/login"))
            .form(&[("token", token.as_str())])
            .send()
            .await
            .unwrap();
        assert!(
            signed_in.status().is_redirection(),
            "{}",
            signed_in.status()
        );
        let cookie = signed_in
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .collect::<Vec<_>>()
            .join("; ");
        assert!(!cookie.is_empty());
        let page = client
            .get(&url)
            .header(reqwest::header::COOKIE, cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        page.text().await.unwrap()
    });
    for name in ["Adisara", "Dermaji", "Karanganyar", "Pesawahan", "Rempoah"] {
        assert!(page.contains(name), "{name} is not on the matrix");
    }

    // SIGTERM stops the server cleanly.
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}
