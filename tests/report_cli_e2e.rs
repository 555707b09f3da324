//! `jejak report` over HTTP and `jejak server letterhead`, end to end: the real `jejak`
//! binary, a real `jejak server run` process, a real SQLite database with a month of
//! sessions posted through the batch endpoint.
//!
//! The report fetched from the API (`--server URL --token …`) must be the report read
//! from the database (`--database …`): the same JSON apart from the generation time,
//! the same CSV byte for byte. The letterhead set with `jejak server letterhead` must be
//! on both, and the refusals (no token, a device token, an unknown library, a server
//! that is not there) must be clear messages with their exit codes.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;

use chrono::{Datelike, Months, NaiveDate, TimeZone, Utc};
use jejak_domain::{LibraryCode, PcCode};
use jejak_testkit::sim::{self, SimPc};
use serde_json::Value;
use support::{COMMAND_DEADLINE, Run, bare_command, run_command, spawn_server};
use uuid::Uuid;

const KOP: &str = "PEMERINTAH KABUPATEN BANYUMAS";

/// `jejak --lang LANG [--format FORMAT] ARGS…`.
fn jejak(lang: &str, format: Option<&str>, args: &[&str]) -> Run {
    let mut command = bare_command();
    command.args(["--lang", lang]);
    if let Some(format) = format {
        command.args(["--format", format]);
    }
    command.args(args);
    // The environment must not lend a server or token to the database runs.
    command
        .env_remove("JEJAK_SERVER_URL")
        .env_remove("JEJAK_STAFF_TOKEN");
    run_command(command, COMMAND_DEADLINE)
}

/// `jejak server --database sqlite:DB ARGS…` with JSON output.
fn server_json(db: &Path, args: &[&str]) -> Value {
    let database = format!("sqlite:{}", db.display());
    let mut all = vec!["server", "--database", &database];
    all.extend(args);
    jejak("en", Some("json"), &all).ok().json()
}

/// Posts `sessions` simulated sessions of one PC from the first day of `month` on,
/// through the batch endpoint as plain JSON.
fn post_month(url: &str, token: &str, library: &str, pc: &str, month: NaiveDate, seed: u64) {
    let sim = SimPc {
        library: LibraryCode::parse(library).unwrap(),
        pc: PcCode::parse(pc).unwrap(),
        epoch: Uuid::new_v4(),
        clock_error_ms: 0,
    };
    let first_day = Utc
        .from_utc_datetime(&month.and_hms_opt(0, 0, 0).unwrap())
        .to_utc();
    let log = sim::simulate(&sim, 30, first_day, seed);
    let batches = sim::batches(&sim, &log, 100, Utc::now());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let http = reqwest::Client::new();
        for batch in batches {
            let response = http
                .post(format!("{url}/api/v1/batches"))
                .bearer_auth(token)
                .header("Content-Type", "application/json")
                .body(serde_json::to_vec(&batch).unwrap())
                .send()
                .await
                .unwrap();
            let status = response.status();
            assert!(
                status.is_success(),
                "{status}: {}",
                response.text().await.unwrap()
            );
        }
    });
}

/// The JSON report without its generation time, the only thing two runs differ in.
fn without_time(run: &Run) -> Value {
    let mut report = run.json();
    report.as_object_mut().unwrap().remove("generated_at");
    report
}

#[test]
fn report_over_http_is_the_report_from_the_database_with_the_letterhead() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    let database = format!("sqlite:{}", db.display());

    server_json(&db, &["init"]);
    for library in ["dermaji", "karangsari"] {
        server_json(
            &db,
            &["add-library", library, "--name", "Perpustakaan Desa"],
        );
    }
    let dermaji = server_json(
        &db,
        &["add-device", "--library", "dermaji", "--pc", "pc-01"],
    );
    let karangsari = server_json(
        &db,
        &["add-device", "--library", "karangsari", "--pc", "pc-01"],
    );
    let staff = server_json(&db, &["add-staff", "dinas"])["token"]
        .as_str()
        .unwrap()
        .to_string();
    let device = dermaji["token"].as_str().unwrap().to_string();

    // The letterhead: none yet, then two lines.
    assert_eq!(server_json(&db, &["letterhead"])["letterhead"], Value::Null);
    let set = server_json(
        &db,
        &[
            "letterhead",
            "--line",
            KOP,
            "--line",
            "DINAS ARSIP DAN PERPUSTAKAAN",
        ],
    );
    assert_eq!(set["letterhead"]["lines"][0], KOP);
    let shown = jejak(
        "id",
        None,
        &["server", "--database", &database, "letterhead"],
    )
    .ok();
    assert!(shown.stdout.contains(KOP), "{}", shown.stdout);
    let empty_line = jejak(
        "en",
        None,
        &[
            "server",
            "--database",
            &database,
            "letterhead",
            "--line",
            " ",
        ],
    )
    .expect_code(2);
    assert!(
        empty_line.stderr.contains("--line"),
        "{}",
        empty_line.stderr
    );

    // Last month's sessions, through the real server.
    let today = Utc::now().date_naive();
    let month = NaiveDate::from_ymd_opt(today.year(), today.month(), 1).unwrap() - Months::new(1);
    let month_text = month.format("%Y-%m").to_string();
    let (mut server, url) = spawn_server(&db);
    post_month(&url, &device, "dermaji", "pc-01", month, 1);
    post_month(
        &url,
        karangsari["token"].as_str().unwrap(),
        "karangsari",
        "pc-01",
        month,
        2,
    );

    let reports: [Vec<&str>; 4] = [
        vec!["district", "--month", &month_text],
        vec!["village", "--month", &month_text, "--library", "dermaji"],
        vec!["year", "--year", &month_text[..4]],
        vec!["village", "--month", &month_text, "--library", "karangsari"],
    ];
    let over_http = |lang: &str, format: &str, report: &[&str]| {
        let mut args = vec!["report", "--server", &url, "--token", &staff];
        args.extend(report);
        jejak(lang, Some(format), &args).ok()
    };
    let mut fetched = Vec::new();
    for report in &reports {
        for lang in ["id", "en"] {
            fetched.push((
                without_time(&over_http(lang, "json", report)),
                over_http(lang, "csv", report).stdout,
            ));
        }
    }
    // The district matrix has both libraries' 60 sessions in its total row.
    let matrix = &fetched[0].0["sections"][0];
    let sessions = matrix["columns"]
        .as_array()
        .unwrap()
        .iter()
        .position(|c| c["key"] == "sessions")
        .unwrap();
    let rows = matrix["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "two libraries and the total: {matrix}");
    assert_eq!(rows[2]["cells"][sessions], 60, "{matrix}");
    let html = over_http("id", "html", &reports[0]).stdout;
    assert!(html.contains(KOP), "the letterhead is on the page");
    let suppressed = {
        let mut args = vec!["report", "--server", &url, "--token", &staff];
        args.extend(&reports[1]);
        args.extend(["--suppress-below", "5"]);
        without_time(&jejak("id", Some("json"), &args).ok())
    };
    assert_eq!(suppressed["suppressed_below"], 5);

    // The environment works as well as the options.
    let mut command = bare_command();
    command
        .args(["--format", "json", "report"])
        .args(&reports[0])
        .env("JEJAK_SERVER_URL", &url)
        .env("JEJAK_STAFF_TOKEN", &staff);
    let from_env = run_command(command, COMMAND_DEADLINE).ok();
    assert_eq!(without_time(&from_env), fetched[0].0);

    // Refusals, in the reader's language.
    let district = ["district", "--month", month_text.as_str()];
    let mut no_token = vec!["report", "--server", &url];
    no_token.extend(district);
    let refused = jejak("id", None, &no_token).expect_code(2);
    assert!(refused.stderr.contains("--token"), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("jejak server add-staff"),
        "{}",
        refused.stderr
    );

    let mut as_device = vec!["report", "--server", &url, "--token", &device];
    as_device.extend(district);
    let refused = jejak("en", None, &as_device).expect_code(2);
    assert!(refused.stderr.contains("403"), "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("use a staff token from `jejak server add-staff`"),
        "{}",
        refused.stderr
    );
    let refused = jejak("id", None, &as_device).expect_code(2);
    assert!(
        refused.stderr.contains("pakai token staf"),
        "{}",
        refused.stderr
    );

    let mut wrong_token = vec!["report", "--server", &url, "--token", "jejak_staff_nope"];
    wrong_token.extend(district);
    let refused = jejak("en", None, &wrong_token).expect_code(2);
    assert!(refused.stderr.contains("401"), "{}", refused.stderr);

    let mut unknown = vec!["report", "--server", &url, "--token", &staff];
    unknown.extend(["village", "--month", &month_text, "--library", "tidakada"]);
    let refused = jejak("en", None, &unknown).expect_code(2);
    assert!(
        refused
            .stderr
            .contains("library 'tidakada' is not registered"),
        "{}",
        refused.stderr
    );

    // An implausible year is refused here, before the server is asked (the API refuses
    // it too, with a 400 its own tests check).
    let mut bad_year = vec!["report", "--server", &url, "--token", &staff];
    bad_year.extend(["year", "--year", "1800"]);
    let refused = jejak("en", None, &bad_year).expect_code(2);
    assert!(
        refused.stderr.contains("year '1800' is not plausible")
            && refused.stderr.contains("four-digit year from 2000"),
        "{}",
        refused.stderr
    );

    // A staff token revoked while the server runs is refused at its next request; the
    // name cannot be revoked twice.
    let mut revoked_staff = vec!["report", "--server", &url, "--token", &staff];
    revoked_staff.extend(district);
    jejak("en", None, &revoked_staff).ok();
    let revoked = server_json(&db, &["revoke-staff", "dinas"]);
    assert_eq!(revoked["revoked"], Value::Bool(true));
    let refused = jejak("en", None, &revoked_staff).expect_code(2);
    assert!(refused.stderr.contains("401"), "{}", refused.stderr);
    let database = format!("sqlite:{}", db.display());
    let again = jejak(
        "en",
        None,
        &["server", "--database", &database, "revoke-staff", "dinas"],
    )
    .expect_code(2);
    assert!(!again.stderr.is_empty());

    server.signal("TERM");
    assert!(
        server
            .wait_deadline(COMMAND_DEADLINE)
            .is_some_and(|s| s.success()),
        "the server stops cleanly"
    );

    // The server is gone: the CLI says it cannot reach it.
    let gone = jejak("id", None, &as_device).expect_code(1);
    assert!(
        gone.stderr.contains("tidak dapat dihubungi"),
        "{}",
        gone.stderr
    );

    // The same reports from the database.
    let mut index = 0;
    for report in &reports {
        for lang in ["id", "en"] {
            let mut args = vec!["report", "--database", &database];
            args.extend(report);
            let json = without_time(&jejak(lang, Some("json"), &args).ok());
            let csv = jejak(lang, Some("csv"), &args).ok().stdout;
            let (http_json, http_csv) = &fetched[index];
            assert_eq!(&json, http_json, "{report:?} {lang}: JSON over HTTP");
            assert_eq!(&csv, http_csv, "{report:?} {lang}: CSV over HTTP");
            assert_eq!(json["letterhead"]["lines"][0], KOP);
            index += 1;
        }
    }
    let mut args = vec!["report", "--database", &database];
    args.extend(&reports[0]);
    let page = jejak("id", Some("html"), &args).ok().stdout;
    assert!(page.contains(KOP));

    // CSV for Indonesian Excel: a byte-order mark, semicolons, decimal commas; the
    // dialect is refused (before any work) with another format, saying what to write.
    let mut dialect = args.clone();
    dialect.extend(["--csv-dialect", "id"]);
    let csv = jejak("id", Some("csv"), &dialect).ok().stdout;
    assert!(csv.starts_with('\u{feff}'), "{csv}");
    let header = csv.lines().nth(1).unwrap();
    assert!(header.contains(';') && !header.contains(','), "{csv}");
    let refused = jejak("id", Some("json"), &dialect).expect_code(2);
    assert!(
        refused
            .stderr
            .contains("--csv-dialect hanya untuk --format csv"),
        "{}",
        refused.stderr
    );
    let mut unknown = args.clone();
    unknown.extend(["--csv-dialect", "titik-koma"]);
    let refused = jejak("id", Some("csv"), &unknown).expect_code(2);
    assert!(refused.stderr.contains("standard"), "{}", refused.stderr);

    // Compacting the file keeps every report as it was and leaves it no larger.
    let before = without_time(&jejak("en", Some("json"), &args).ok());
    let compacted = server_json(&db, &["compact"]);
    let (was, is) = (
        compacted["before_bytes"].as_u64().unwrap(),
        compacted["after_bytes"].as_u64().unwrap(),
    );
    assert!(is > 0 && is <= was, "{compacted}");
    assert_eq!(is, std::fs::metadata(&db).unwrap().len());
    let after = without_time(&jejak("en", Some("json"), &args).ok());
    assert_eq!(before, after);
    let on_postgres = jejak(
        "en",
        None,
        &[
            "server",
            "--database",
            "postgres://nobody@127.0.0.1:1/none",
            "compact",
        ],
    )
    .expect_code(2);
    assert!(
        on_postgres.stderr.contains("autovacuum"),
        "{}",
        on_postgres.stderr
    );

    // Cleared, the letterhead leaves the reports.
    assert_eq!(
        server_json(&db, &["letterhead", "--clear"])["letterhead"],
        Value::Null
    );
    let page = jejak("id", Some("html"), &args).ok().stdout;
    assert!(!page.contains(KOP));
}

/// The numbers of a JSON report row, by column key.
fn number_of(row: &Value, columns: &[Value], key: &str) -> f64 {
    let index = columns
        .iter()
        .position(|c| c["key"] == key)
        .unwrap_or_else(|| panic!("no column {key}"));
    row["cells"][index].as_f64().unwrap_or(0.0)
}

/// A library's details, set with `jejak server add-library` and `edit-library`, reach
/// the reports: the village report's identity and signature block (with the head of the
/// village's name and the manager's NIP) in its printable page, and the district matrix
/// grouped by kecamatan, each subtotal the sum of its libraries. Bad values are refused
/// with a message that names the fix, and nothing is stored.
#[test]
fn library_details_reach_the_village_report_and_the_matrix_and_bad_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    let database = format!("sqlite:{}", db.display());
    let server = |lang: &str, args: &[&str]| {
        let mut all = vec!["server", "--database", database.as_str()];
        all.extend(args);
        jejak(lang, None, &all)
    };
    server_json(&db, &["init"]);

    // Every field at once, in Indonesian; what was stored is shown back.
    let added = server(
        "id",
        &[
            "add-library",
            "dermaji",
            "--name",
            "Perpustakaan Desa Dermaji",
            "--npp",
            "3302012d1000001",
            "--desa",
            "Dermaji",
            "--kecamatan",
            "Lumbir",
            "--address",
            "Jl. Raya Dermaji No. 1",
            "--kepala-desa",
            "Slamet Riyadi",
            "--manager",
            "Siti Aminah",
            "--nip",
            "19850312 201001 2 004",
        ],
    )
    .ok();
    for shown in [
        "Perpustakaan ditambahkan: dermaji",
        "NPP: 3302012D1000001",
        "Kecamatan: Lumbir",
        "NIP pengelola: 19850312 201001 2 004",
    ] {
        assert!(added.stdout.contains(shown), "{shown}: {}", added.stdout);
    }
    for (code, kecamatan) in [
        ("lumbir", Some("Lumbir")),
        ("kalisalak", Some("Kebasen")),
        ("adisara", None),
    ] {
        let mut args = vec!["add-library", code, "--name", "Perpustakaan Desa"];
        if let Some(kecamatan) = kecamatan {
            args.extend(["--kecamatan", kecamatan]);
        }
        server_json(&db, &args);
    }

    // One field changed, another cleared, the rest kept.
    let edited = server_json(
        &db,
        &[
            "edit-library",
            "dermaji",
            "--manager",
            "Siti Aminah, S.Pd.",
            "--address",
            "",
        ],
    );
    assert_eq!(edited["details"]["manager"], "Siti Aminah, S.Pd.");
    assert_eq!(edited["details"]["address"], Value::Null, "cleared");
    assert_eq!(edited["details"]["kepala_desa"], "Slamet Riyadi");
    assert_eq!(edited["details"]["manager_nip"], "198503122010012004");
    let listed = || server_json(&db, &["list"])["libraries"].clone();
    let before = listed();

    // Refusals: a bad NPP, a bad NIP, an unknown library, nothing to change. Each says
    // what to do, in Indonesian by default, and stores nothing.
    let bad_npp = server(
        "id",
        &[
            "add-library",
            "baru",
            "--name",
            "Perpustakaan Desa Baru",
            "--npp",
            "33020",
        ],
    )
    .expect_code(2);
    assert!(
        bad_npp.stderr.contains("NPP '33020' tidak sah")
            && bad_npp.stderr.contains("15 karakter")
            && bad_npp.stderr.contains("--npp"),
        "{}",
        bad_npp.stderr
    );
    let bad_nip = server(
        "id",
        &[
            "edit-library",
            "dermaji",
            "--manager",
            "Orang Lain",
            "--nip",
            "1985031220100120",
        ],
    )
    .expect_code(2);
    assert!(
        bad_nip.stderr.contains("18 angka") && bad_nip.stderr.contains("--nip \"\""),
        "{}",
        bad_nip.stderr
    );
    let english = server("en", &["edit-library", "dermaji", "--nip", "x"]).expect_code(2);
    assert!(
        english.stderr.contains("a NIP has 18 digits"),
        "{}",
        english.stderr
    );
    let unknown = server("id", &["edit-library", "nowhere", "--desa", "X"]).expect_code(2);
    assert!(
        unknown.stderr.contains("jejak server add-library nowhere"),
        "{}",
        unknown.stderr
    );
    let nothing = server("id", &["edit-library", "dermaji"]).expect_code(2);
    assert!(
        nothing.stderr.contains("tidak ada yang diubah"),
        "{}",
        nothing.stderr
    );
    assert_eq!(listed(), before, "no refusal stored anything");

    // A month of sessions at every library, through the real server.
    let today = Utc::now().date_naive();
    let month = NaiveDate::from_ymd_opt(today.year(), today.month(), 1).unwrap() - Months::new(1);
    let month_text = month.format("%Y-%m").to_string();
    let (running, url) = spawn_server(&db);
    for (seed, code) in ["dermaji", "lumbir", "kalisalak", "adisara"]
        .into_iter()
        .enumerate()
    {
        let token = server_json(&db, &["add-device", "--library", code, "--pc", "pc-01"])["token"]
            .as_str()
            .unwrap()
            .to_string();
        post_month(&url, &token, code, "pc-01", month, seed as u64 + 10);
    }
    drop(running);

    // The village report's printable page: identity, long dates, the signature block.
    let page = jejak(
        "id",
        Some("html"),
        &[
            "report",
            "--database",
            &database,
            "village",
            "--month",
            &month_text,
            "--library",
            "dermaji",
        ],
    )
    .ok()
    .stdout;
    for expected in [
        "<td>NPP</td><td>3302012D1000001</td>",
        "<td>Alamat</td><td>(belum diisi)</td>",
        "<section class=\"signature\"",
        "<div class=\"line\">Mengetahui,</div>",
        "<div class=\"line\">Kepala Desa Dermaji</div>",
        "<div class=\"name\">Slamet Riyadi</div>",
        "<div class=\"line\">Pengelola Perpustakaan</div>",
        "<div class=\"name\">Siti Aminah, S.Pd.</div>",
        "<div>NIP 19850312 201001 2 004</div>",
        "<div class=\"line\">Dermaji, ",
        "counter(page) \" dari \" counter(pages)",
        "<h2>D. Sesi PC menurut Kriteria Pengguna</h2>",
        "<h2>C. Dibanding Bulan Sebelumnya</h2>",
    ] {
        assert!(page.contains(expected), "{expected} not in the page");
    }
    // The calendar names each day: the first of the month in the long form.
    let first = format!(
        "<td>{}</td>",
        jejak_server::report::dates::long_date(month, jejak_domain::Lang::Id)
    );
    assert!(page.contains(&first), "{first} not in the calendar");

    // The district matrix: grouped by kecamatan, each subtotal the sum of its rows.
    let matrix = jejak(
        "id",
        Some("json"),
        &[
            "report",
            "--database",
            &database,
            "district",
            "--month",
            &month_text,
        ],
    )
    .ok()
    .json();
    let table = &matrix["sections"][0];
    let columns = table["columns"].as_array().unwrap();
    let rows = table["rows"].as_array().unwrap();
    let label = |row: &Value| row["cells"][0].as_str().unwrap_or("").to_string();
    let labels: Vec<String> = rows.iter().map(label).collect();
    assert_eq!(
        labels,
        [
            "Perpustakaan Desa",
            "Jumlah Kecamatan Kebasen",
            "Perpustakaan Desa Dermaji",
            "Perpustakaan Desa",
            "Jumlah Kecamatan Lumbir",
            "Perpustakaan Desa",
            "Jumlah (kecamatan belum diisi)",
            "Jumlah",
        ]
    );
    let code_of = |i: usize| rows[i]["cells"][1].as_str().unwrap_or("").to_string();
    assert_eq!(
        [code_of(0), code_of(2), code_of(3), code_of(5)],
        ["kalisalak", "dermaji", "lumbir", "adisara"]
    );
    let npp = columns.iter().position(|c| c["key"] == "npp").unwrap();
    assert_eq!(rows[2]["cells"][npp], "3302012D1000001");
    let mut group: Vec<&Value> = Vec::new();
    let mut subtotals: Vec<&Value> = Vec::new();
    for row in &rows[..rows.len() - 1] {
        if row["is_total"] == true {
            for key in ["pcs", "sessions", "l", "p", "hours", "data_mb", "estimated"] {
                let sum: f64 = group.iter().map(|r| number_of(r, columns, key)).sum();
                let subtotal = number_of(row, columns, key);
                assert!(
                    (subtotal - sum).abs() < 1e-9,
                    "{}: {key} {subtotal} is not the sum {sum}",
                    label(row)
                );
            }
            assert!(number_of(row, columns, "sessions") > 0.0, "{}", label(row));
            subtotals.push(row);
            group.clear();
        } else {
            group.push(row);
        }
    }
    let total = rows.last().unwrap();
    for key in ["pcs", "sessions", "hours", "data_mb"] {
        let sum: f64 = subtotals.iter().map(|r| number_of(r, columns, key)).sum();
        assert!((number_of(total, columns, key) - sum).abs() < 1e-9, "{key}");
    }
}
