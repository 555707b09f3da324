//! Issue 15, the command line's half: what a librarian, an operator and a district
//! officer read. A failed sync is one plain sentence in their language (the technical
//! detail only with `-v`); admin commands print no log lines and their refusals say
//! what to do next; usage errors are Indonesian; one thing is counted ("N catatan
//! menunggu dikirim") by `status`, `sync --dry-run`, the progress lines and the result;
//! `session start` says what was started; no command panics on a closed pipe; values
//! are checked before any work, the server's database has a proper default place and
//! PC options are refused on server commands; and every command of the README, given a
//! bad value, says in Indonesian what to do and stores nothing.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{
    COMMAND_DEADLINE, ChildGuard, EXIT_INVALID, EXIT_NO_LINK, EXIT_REFUSED, FAST_SYNC, Run, TestPc,
    bare_command, enroll_pc, parse_session_id, run_command, spawn_district,
};

/// `jejak ARGS` with a clean environment.
fn jejak(args: &[&str]) -> Run {
    let mut command = bare_command();
    command.args(args);
    run_command(command, COMMAND_DEADLINE)
}

/// `jejak server --database sqlite:DB ARGS`, in the default language.
fn server(db: &Path, args: &[&str]) -> Run {
    let mut command = bare_command();
    command
        .arg("server")
        .arg("--database")
        .arg(format!("sqlite:{}", db.display()))
        .args(args);
    run_command(command, COMMAND_DEADLINE)
}

/// A port nothing listens on (bound, then let go).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A PC set up and enrolled with `server` under `token`, without asking the server
/// (so that any server URL will do).
fn enrolled_pc(server: &str, token: &str) -> TestPc {
    let pc = TestPc::new();
    pc.run(&[
        "init",
        "--library",
        "dermaji",
        "--pc",
        "pc-01",
        "--server",
        server,
    ])
    .ok();
    std::fs::write(pc.data_dir.join("device.token"), token).unwrap();
    pc
}

/// `jejak status --format json`'s count of changes waiting.
fn pending(pc: &TestPc) -> u64 {
    pc.status_json()["store"]["pending_changes"]
        .as_u64()
        .unwrap()
}

/// Every table of a server database with its row count: what a refused command must
/// leave as it was.
fn server_footprint(db: &Path) -> Vec<(String, i64)> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    tables
        .into_iter()
        .map(|table| {
            let rows = conn
                .query_row(&format!("SELECT COUNT(*) FROM \"{table}\""), [], |r| {
                    r.get(0)
                })
                .unwrap();
            (table, rows)
        })
        .collect()
}

/// Words of English log lines and technical errors that a person's terminal must not
/// show without `-v`.
fn assert_no_technical_detail(text: &str) {
    for word in [
        " WARN ",
        " INFO ",
        "os error",
        "tcp connect",
        "error sending request",
        "(403)",
        "(401)",
        "the server",
        "panicked",
    ] {
        assert!(!text.contains(word), "{word:?} shown: {text}");
    }
}

// ---------------------------------------------------------------------------------------
// Items 1 and 3: a sync's outcome, counted in "catatan"
// ---------------------------------------------------------------------------------------

#[test]
fn a_sync_without_a_link_says_one_plain_sentence_and_the_detail_only_with_v() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let pc = enrolled_pc(&url, &format!("jejak_dev_{}", "ab".repeat(32)));
    pc.record_sessions(2);
    let waiting = pending(&pc);
    let before = pc.footprint();

    let run = pc
        .run_env(&["sync", "--attempts", "2"], &FAST_SYNC)
        .expect_code(EXIT_NO_LINK);
    let no_link = "jejak: Tidak tersambung ke server kabupaten. Data aman di komputer ini; nyalakan modem atau periksa paket data, lalu coba lagi.";
    assert_eq!(
        run.stderr.lines().collect::<Vec<_>>(),
        [
            format!("{waiting} catatan menunggu dikirim …").as_str(),
            no_link
        ],
        "no log lines, one sentence"
    );
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert_eq!(pc.footprint(), before, "nothing marked synced or written");

    // -v adds the technical detail below the same sentence.
    let run = pc
        .run_env(&["-v", "sync", "--attempts", "2"], &FAST_SYNC)
        .expect_code(EXIT_NO_LINK);
    assert!(run.stderr.contains(no_link), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("(no link to the server after 2 attempts: ")
            && run.stderr.contains("Connection refused"),
        "{}",
        run.stderr
    );

    // English on request, in the same plain words.
    let run = pc
        .run_env(&["--lang", "en", "sync", "--attempts", "1"], &FAST_SYNC)
        .expect_code(EXIT_NO_LINK);
    assert!(
        run.stderr.contains(
            "jejak: No connection to the district server. The data is safe on this PC; turn the modem on or check the data package, then try again."
        ),
        "{}",
        run.stderr
    );
    assert_no_technical_detail(&run.stderr);

    // `jejak status` tells the last result the same way and counts what waits as the
    // sync did; the stored detail stays for `--format json`.
    let status = pc.run(&["status"]).ok().stdout;
    assert!(
        status.contains(no_link.trim_start_matches("jejak: ")),
        "{status}"
    );
    assert!(
        status.contains(&format!("{waiting} catatan menunggu dikirim")),
        "{status}"
    );
    for jargon in ["seq", "Epoch", "quick_check", "perubahan"] {
        assert!(!status.contains(jargon), "{jargon} on the status: {status}");
    }
    let json = pc.status_json();
    assert!(
        json["sync"]["last_result"]
            .as_str()
            .unwrap()
            .starts_with("no-link: no link to the server"),
        "{json}"
    );
}

#[test]
fn refused_syncs_are_plain_sentences_in_one_language() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("server.db").display());
    let server = spawn_district(&db, &[], &[]);
    let url = format!("http://{}", server.addr);
    let other_pcs_token = enroll_pc(&db, "dermaji", "pc-02");

    // A token the server never issued.
    let forged = enrolled_pc(&url, &format!("jejak_dev_{}", "cd".repeat(32)));
    forged.record_sessions(1);
    let before = forged.footprint();
    let run = forged
        .run_env(&["sync"], &FAST_SYNC)
        .expect_code(EXIT_REFUSED);
    assert_eq!(
        run.stderr.lines().last().unwrap(),
        "jejak: Server kabupaten tidak mengenali token komputer ini. Data aman di komputer ini; periksa token bersama petugas kabupaten, lalu jalankan jejak enroll."
    );
    assert_no_technical_detail(&run.stderr);
    assert_eq!(forged.footprint(), before);

    // Another PC's token: the server refuses the batch (403); no English, no status code.
    let borrowed = enrolled_pc(&url, &other_pcs_token);
    borrowed.record_sessions(1);
    let before = borrowed.footprint();
    let run = borrowed
        .run_env(&["sync"], &FAST_SYNC)
        .expect_code(EXIT_REFUSED);
    assert_eq!(
        run.stderr.lines().last().unwrap(),
        "jejak: Server kabupaten menolak kiriman dari komputer ini. Data aman di komputer ini; jalankan jejak doctor dan beri tahu petugas kabupaten."
    );
    assert_no_technical_detail(&run.stderr);
    assert_eq!(borrowed.footprint(), before);
    let run = borrowed
        .run_env(&["-v", "sync"], &FAST_SYNC)
        .expect_code(EXIT_REFUSED);
    assert!(run.stderr.contains("(403)"), "-v shows it: {}", run.stderr);
}

#[test]
fn status_dry_run_progress_and_result_count_the_same_catatan() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("server.db").display());
    let server = spawn_district(&db, &[], &[]);
    let token = enroll_pc(&db, "dermaji", "pc-01");
    let pc = enrolled_pc(&format!("http://{}", server.addr), &token);
    // Sessions started and ended: two changes each, one record each in a batch.
    pc.record_sessions(4);
    let waiting = pending(&pc);
    assert!(waiting >= 8, "{waiting}");
    let phrase = format!("{waiting} catatan menunggu dikirim");

    let status = pc.run(&["status"]).ok().stdout;
    assert!(status.contains(&phrase), "{status}");

    let dry = pc.run_env(&["sync", "--dry-run"], &FAST_SYNC).ok();
    assert!(
        dry.stdout
            .starts_with(&format!("{phrase}: akan dikirim dalam ")),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("Belum ada yang dikirim."),
        "{}",
        dry.stdout
    );
    assert_eq!(pending(&pc), waiting, "a dry run sends nothing");

    // Small batches, so that there is progress to show (a pipe gets lines, not a bar).
    let mut env = FAST_SYNC.to_vec();
    env.retain(|(key, _)| *key != "JEJAK_SYNC_BATCH_RECORDS");
    env.push(("JEJAK_SYNC_BATCH_RECORDS", "3"));
    let run = pc.run_env(&["sync"], &env).ok();
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines[0], format!("{phrase} …"), "{}", run.stderr);
    let progress: Vec<(u64, u64)> = lines[1..]
        .iter()
        .map(|line| {
            let (done, rest) = line.split_once('/').unwrap();
            let total = rest.split_whitespace().next().unwrap();
            assert!(rest.contains(" catatan terkirim · "), "{line}");
            (done.parse().unwrap(), total.parse().unwrap())
        })
        .collect();
    assert!(progress.len() >= 2, "{}", run.stderr);
    assert!(progress.windows(2).all(|w| w[0].0 < w[1].0), "{progress:?}");
    assert_eq!(progress.last(), Some(&(waiting, waiting)), "{}", run.stderr);
    assert_eq!(
        run.stdout.trim(),
        format!(
            "Sinkron selesai: {waiting} catatan terkirim; server kabupaten sudah menyimpan semuanya."
        )
    );
    let status = pc.run(&["status"]).ok().stdout;
    assert!(status.contains("0 catatan menunggu dikirim"), "{status}");
    assert!(status.contains("berhasil"), "{status}");
}

// ---------------------------------------------------------------------------------------
// Item 4: what `session start` says
// ---------------------------------------------------------------------------------------

#[test]
fn session_start_says_who_in_categories_never_the_member_number() {
    let pc = TestPc::initialised();
    let run = pc
        .run(&[
            "session",
            "start",
            "--purpose",
            "pendidikan,ekonomi",
            "--gender",
            "P",
            "--age",
            "pemuda",
            "--kind",
            "anggota",
            "--member",
            "778899",
        ])
        .ok();
    let id = parse_session_id(&run.stdout).unwrap();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    for part in [
        "Sesi dimulai ",
        " WIB untuk: Anggota, Perempuan, Pemuda (16–30), 1 orang; tujuan: Pendidikan, Ekonomi/UMKM.",
        "Nomor anggota tidak disimpan",
    ] {
        assert!(lines[0].contains(part), "{part:?} missing: {}", lines[0]);
    }
    assert_eq!(lines[1], format!("ID sesi: {id}"));
    assert!(
        !run.stdout.contains("778899"),
        "the member number is never shown"
    );
    assert_eq!(pc.store().open_session_ids(), vec![id]);

    let run = pc
        .run(&[
            "--lang",
            "en",
            "session",
            "start",
            "--kind",
            "rombongan",
            "--group-size",
            "4",
        ])
        .ok();
    assert!(
        run.stdout
            .contains("for: Group, Not stated, Unknown, 4 people; purposes: not given."),
        "{}",
        run.stdout
    );
    assert!(parse_session_id(&run.stdout).is_some(), "{}", run.stdout);
}

// ---------------------------------------------------------------------------------------
// Item 5: a closed pipe
// ---------------------------------------------------------------------------------------

/// Runs `command` with its stdout a pipe whose reading end is already closed, so every
/// write fails with EPIPE; returns the exit code and stderr.
fn into_closed_pipe(mut command: Command) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    command
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped());
    let mut child = ChildGuard::spawn(&mut command);
    // The parent's copy of the writing end went into the command and is gone with it.
    drop(command);
    let mut stderr = child.child_mut().stderr.take().unwrap();
    let reading = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let status = child
        .wait_deadline(COMMAND_DEADLINE)
        .expect("a command writing into a closed pipe ends");
    (status.code(), reading.join().unwrap())
}

#[test]
fn no_command_panics_on_a_closed_pipe() {
    let pc = enrolled_pc(
        &format!("http://127.0.0.1:{}", closed_port()),
        &format!("jejak_dev_{}", "ab".repeat(32)),
    );
    pc.record_sessions(30);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    let database = format!("sqlite:{}", db.display());
    server(&db, &["init"]).ok();
    for n in 1..=12 {
        enroll_pc(&database, "dermaji", &format!("pc-{n:02}"));
    }
    let pc_commands: &[&[&str]] = &[
        &["status"],
        &["--format", "json", "status"],
        &["session", "list"],
        &["--format", "json", "session", "list"],
        &["doctor"],
        &["sync", "--dry-run"],
        &["prune", "--dry-run"],
        &["--help"],
    ];
    let mut commands: Vec<(Vec<String>, Command)> = Vec::new();
    for args in pc_commands {
        let mut command = pc.command();
        command.args(*args);
        commands.push((args.iter().map(|a| a.to_string()).collect(), command));
    }
    let district_commands: &[&[&str]] = &[
        &["server", "list"],
        &["--format", "json", "server", "list"],
        &["report", "district", "--month", "2026-10"],
        &[
            "--format", "csv", "report", "district", "--month", "2026-10",
        ],
        &["--format", "json", "report", "ops"],
        &[
            "--format", "html", "report", "district", "--month", "2026-10",
        ],
    ];
    for args in district_commands {
        let mut command = bare_command();
        command.args(*args).env("JEJAK_DATABASE", &database);
        commands.push((args.iter().map(|a| a.to_string()).collect(), command));
    }
    for (args, command) in commands {
        let (code, stderr) = into_closed_pipe(command);
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "jejak {args:?} on a closed pipe: {stderr}"
        );
        assert_eq!(code, Some(0), "jejak {args:?} ends quietly: {stderr}");
    }
}

// ---------------------------------------------------------------------------------------
// Item 2: admin commands and the argument parser
// ---------------------------------------------------------------------------------------

#[test]
fn admin_commands_log_nothing_and_their_refusals_say_what_to_do_next() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    for args in [
        &["init"][..],
        &[
            "add-library",
            "dermaji",
            "--name",
            "Perpustakaan Desa Dermaji",
        ],
        &["add-staff", "Bu Sri"],
        &["list"],
    ] {
        let run = server(&db, args).ok();
        assert!(run.stderr.is_empty(), "{args:?} printed: {}", run.stderr);
    }
    let run = server(
        &db,
        &["add-device", "--library", "dermaji", "--pc", "pc-01"],
    )
    .ok();
    assert!(
        run.stderr
            .starts_with("Token ini hanya ditampilkan sekali."),
        "a message for the operator, no log line: {}",
        run.stderr
    );
    // -v shows what the store does.
    let run = server(&db, &["-v", "list"]).ok();
    assert!(run.stderr.contains(" INFO "), "{}", run.stderr);

    let before = server_footprint(&db);
    let cases: &[(&[&str], &str)] = &[
        (
            &["add-device", "--library", "dermaji", "--pc", "pc-01"],
            "jejak: komputer dermaji/pc-01 sudah terdaftar dengan token aktif. Untuk memberinya token baru (tokennya hilang atau komputernya diganti), cabut dulu yang lama: jejak server revoke-device --library dermaji --pc pc-01, lalu jalankan add-device lagi",
        ),
        (
            &["add-staff", "Bu Sri"],
            "jejak: petugas 'Bu Sri' sudah punya token aktif. Token hanya ditampilkan sekali; jika hilang, cabut dulu: jejak server revoke-staff \"Bu Sri\", lalu jalankan add-staff lagi",
        ),
        (
            &["add-device", "--library", "rempoah", "--pc", "pc-01"],
            "jejak: perpustakaan 'rempoah' belum terdaftar; tambahkan dulu: jejak server add-library rempoah --name \"Perpustakaan Desa …\"",
        ),
        (
            &["add-library", "dermaji", "--name", "Dermaji lagi"],
            "jejak: perpustakaan 'dermaji' sudah terdaftar; lihat daftarnya dengan jejak server list, atau pakai kode lain",
        ),
        (
            &["revoke-device", "--library", "dermaji", "--pc", "pc-09"],
            "jejak: komputer dermaji/pc-09 belum pernah didaftarkan; lihat yang terdaftar dengan jejak server list",
        ),
        (
            &["revoke-staff", "Pak Budi"],
            "jejak: petugas 'Pak Budi' tidak punya token aktif (belum pernah dibuat, atau sudah dicabut); periksa ejaan nama persis seperti saat add-staff",
        ),
    ];
    for (args, message) in cases {
        let run = server(&db, args).expect_code(EXIT_INVALID);
        assert_eq!(run.stderr.trim_end(), *message, "{args:?}");
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
        assert_eq!(server_footprint(&db), before, "{args:?} stored something");
    }
    // Revoked twice: the second says there is nothing left to revoke and how to re-enroll.
    server(
        &db,
        &["revoke-device", "--library", "dermaji", "--pc", "pc-01"],
    )
    .ok();
    let after_revoke = server_footprint(&db);
    let run = server(
        &db,
        &["revoke-device", "--library", "dermaji", "--pc", "pc-01"],
    )
    .expect_code(EXIT_INVALID);
    assert!(
        run.stderr
            .contains("sudah dicabut sebelumnya, tidak ada yang perlu dicabut lagi; untuk mendaftarkannya lagi: jejak server add-device --library dermaji --pc pc-01"),
        "{}",
        run.stderr
    );
    assert_eq!(server_footprint(&db), after_revoke);
    // In English on request, with the same next step.
    let run = jejak(&[
        "--lang",
        "en",
        "server",
        "--database",
        &format!("sqlite:{}", db.display()),
        "add-staff",
        "Bu Sri",
    ])
    .expect_code(EXIT_INVALID);
    assert!(
        run.stderr
            .contains("staff member 'Bu Sri' already has an active token. A token is shown only once; if it was lost, revoke it first: jejak server revoke-staff \"Bu Sri\""),
        "{}",
        run.stderr
    );

    // `jejak server run` is a daemon: it still logs what it does.
    let running = spawn_district(&format!("sqlite:{}", db.display()), &[], &[]);
    let logged = support::poll_until(
        "an INFO line of jejak server run",
        Duration::from_secs(20),
        || {
            running
                .log_lines()
                .into_iter()
                .find(|line| line.contains(" INFO "))
        },
    );
    assert!(!logged.is_empty());
}

#[test]
fn usage_errors_are_indonesian_by_default_and_name_the_fix() {
    let pc = TestPc::initialised();
    let before = pc.footprint();
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["session", "start", "--gendr", "P"],
            &[
                "jejak: opsi '--gendr' tidak dikenal di sini",
                "  mungkin maksudnya: --gender",
                "Cara pakai: jejak session start",
                "Penjelasan semua opsi: jejak session start --help",
            ],
        ),
        (
            &["sesion", "list"],
            &[
                "jejak: perintah 'sesion' tidak dikenal",
                "  mungkin maksudnya: session",
            ],
        ),
        (
            &["--format", "yaml", "status"],
            &[
                "jejak: nilai 'yaml' tidak sah untuk --format <FORMAT>; pilihan yang sah: text, json, csv, xlsx, html",
            ],
        ),
        (
            &["session", "list", "--limit", "banyak"],
            &[
                "jejak: nilai 'banyak' tidak sah untuk --limit <LIMIT>: harus bilangan bulat tanpa tanda, mis. 5",
            ],
        ),
        (
            &["session", "start", "--gender"],
            &["jejak: --gender <GENDER> perlu nilai, tetapi tidak diberi nilai"],
        ),
        (
            &["sync", "--dry-run", "--export", "x.jejak"],
            &["jejak: --dry-run tidak dapat dipakai bersama --export <FILE>; pilih salah satu"],
        ),
        (
            &["session"],
            &[
                "jejak: perintah ini belum lengkap; pilih salah satu perintah di bawah",
                "  start ",
            ],
        ),
        (
            &["init", "--pc", "pc-01"],
            &[
                "jejak: opsi wajib belum diberikan: --library <LIBRARY>",
                "Cara pakai: jejak init --library <LIBRARY> --pc <PC>",
            ],
        ),
    ];
    for (args, lines) in cases {
        let run = pc.run(args).expect_code(EXIT_INVALID);
        for line in *lines {
            assert!(
                run.stderr.lines().any(|l| l.starts_with(line)),
                "{args:?}: {line:?} missing from\n{}",
                run.stderr
            );
        }
        assert!(!run.stderr.contains("error:"), "{}", run.stderr);
        assert!(run.stdout.is_empty());
        assert_eq!(pc.footprint(), before, "{args:?} wrote something");
    }
    // English stays clap's own, by flag or by environment.
    let run = pc
        .run(&["--lang", "en", "session", "start", "--gendr", "P"])
        .expect_code(EXIT_INVALID);
    assert!(
        run.stderr
            .starts_with("error: unexpected argument '--gendr' found"),
        "{}",
        run.stderr
    );
    let run = pc
        .run_env(
            &["session", "start", "--gendr", "P"],
            &[("JEJAK_LANG", "en")],
        )
        .expect_code(EXIT_INVALID);
    assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
    // A value parser's own refusal, in Indonesian too.
    let run = jejak(&["server", "run", "--backup-every", "10s", "--listen", "x"])
        .expect_code(EXIT_INVALID);
    assert!(
        run.stderr.starts_with("jejak: nilai 'x' tidak sah untuk --listen <LISTEN>: tulis alamat dan port, mis. 127.0.0.1:8080")
            || run.stderr.starts_with("jejak: nilai '10s' tidak sah untuk --backup-every <BACKUP_EVERY>: '10s' terlalu sering; cadangkan paling sering sekali semenit"),
        "{}",
        run.stderr
    );
}

// ---------------------------------------------------------------------------------------
// Items 6–9: values checked before any work; the server's database
// ---------------------------------------------------------------------------------------

/// The user id, from `id -u` (the tests need no libc).
fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

#[test]
fn the_servers_database_has_a_proper_place_and_pc_options_are_refused() {
    let home = tempfile::tempdir().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let in_home = |args: &[&str]| {
        let mut command = bare_command();
        command
            .args(args)
            .current_dir(cwd.path())
            .env("HOME", home.path())
            .env_remove("XDG_DATA_HOME");
        run_command(command, COMMAND_DEADLINE)
    };
    let default = if is_root() {
        PathBuf::from("/var/lib/jejak-server/jejak-server.db")
    } else {
        home.path()
            .join(".local/share/jejak-server/jejak-server.db")
    };

    // A PC option on a server command is refused before anything is opened or made.
    let run = in_home(&["server", "init", "--data-dir", "/tmp/x"]).expect_code(EXIT_INVALID);
    assert_eq!(
        run.stderr.trim_end(),
        "jejak: --data-dir adalah folder data komputer perpustakaan (untuk perintah PC seperti jejak status); perintah server dan laporan memakai basis data server: --database sqlite:PATH (atau JEJAK_DATABASE)"
    );
    let run = in_home(&[
        "report",
        "district",
        "--month",
        "2026-10",
        "--data-dir",
        "/tmp/x",
    ])
    .expect_code(EXIT_INVALID);
    assert!(
        run.stderr.contains("--database sqlite:PATH"),
        "{}",
        run.stderr
    );
    let run = in_home(&["demo", "--data-dir", "/tmp/x"]).expect_code(EXIT_INVALID);
    assert!(run.stderr.contains("--out FOLDER"), "{}", run.stderr);
    assert_eq!(std::fs::read_dir(cwd.path()).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(home.path()).unwrap().count(), 0);

    // A report without a database says where it looked and how to point at one.
    if !default.exists() {
        let run = in_home(&["report", "district", "--month", "2026-10"]).expect_code(EXIT_INVALID);
        let message = run.stderr.trim_end();
        assert!(
            message.starts_with(&format!(
                "jejak: basis data server {} tidak ada. Tunjuk basis datanya dengan --database sqlite:PATH atau JEJAK_DATABASE",
                default.display()
            )),
            "{message}"
        );
        assert!(
            message.ends_with("; atau ambil laporan dari server yang berjalan dengan --server URL --token TOKEN (token staf dari jejak server add-staff)"),
            "{message}"
        );
        assert!(!default.exists(), "a report creates no database");
    }

    // Not as root (whose default is the service's /var/lib/jejak-server): the default
    // database is made in the user's data folder, private, never in the current folder.
    if !is_root() {
        let run = in_home(&["server", "init"]).ok();
        assert_eq!(
            run.stdout.trim(),
            format!("Basis data server siap: {}", default.display())
        );
        assert!(default.is_file());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(default.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        assert_eq!(std::fs::read_dir(cwd.path()).unwrap().count(), 0);
    }
}

#[test]
fn report_periods_are_checked_before_any_report_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    server(&db, &["init"]).ok();
    let database = format!("sqlite:{}", db.display());
    let this_year: i32 = chrono::Utc::now().format("%Y").to_string().parse().unwrap();
    let next_year = (this_year + 1).to_string();
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["year", "--year", "26"],
            format!("jejak: tahun '26' tidak masuk akal; tulis tahun empat angka dari 2000, mis. {this_year}"),
        ),
        (
            vec!["year", "--year", &next_year],
            format!("jejak: {next_year} belum dimulai (hari ini "),
        ),
        (
            vec!["district", "--month", "2026-13"],
            "jejak: bulan '2026-13' tidak dikenali; tulis tahun empat angka dan bulan 01–12, mis. ".to_string(),
        ),
        (
            vec!["district", "--month", "26-10"],
            "jejak: bulan '26-10' tidak dikenali".to_string(),
        ),
        (
            vec!["quarter", "--quarter", "2026-Q5"],
            "jejak: triwulan '2026-Q5' tidak dikenali; tulis tahun empat angka, -Q dan nomor triwulan 1–4, mis. ".to_string(),
        ),
    ];
    for (args, message) in cases {
        let mut all = vec!["report", "--database", &database];
        all.extend(&args);
        let run = jejak(&all).expect_code(EXIT_INVALID);
        assert!(run.stderr.starts_with(&message), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "no report of zeros: {}", run.stdout);
    }
    // The year of today is fine.
    jejak(&[
        "report",
        "--database",
        &database,
        "year",
        "--year",
        &this_year.to_string(),
    ])
    .ok();
}

#[test]
fn demo_serve_takes_a_bare_port_and_a_taken_port_fails_before_the_simulation() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = dir.path().join("demo");
    let started = std::time::Instant::now();
    let run = jejak(&["demo", "--serve", &port, "--out", out.to_str().unwrap()])
        .expect_code(EXIT_INVALID);
    assert!(
        run.stderr.starts_with(&format!(
            "jejak: port {port} sudah dipakai program lain; pilih port lain, mis. --serve "
        )),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty(), "nothing simulated: {}", run.stdout);
    assert!(!out.exists(), "no output folder made");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it failed at once, not after the month"
    );
    let run = jejak(&[
        "demo",
        "--serve",
        "delapan-ribu",
        "--out",
        out.to_str().unwrap(),
    ])
    .expect_code(EXIT_INVALID);
    assert!(
        run.stderr.starts_with("jejak: --serve 'delapan-ribu' bukan port atau alamat; tulis port (mis. --serve 8081) atau alamat:port (mis. --serve 0.0.0.0:8080)"),
        "{}",
        run.stderr
    );
    assert!(!out.exists());
}

// ---------------------------------------------------------------------------------------
// Done when: every command of the README, given a bad value
// ---------------------------------------------------------------------------------------

/// Each command of the README with a bad value: an Indonesian message on stderr (by
/// default) that names the fix, exit 2 (1 for what is not the user's input), nothing on
/// stdout, and nothing stored on the PC or the server.
#[test]
fn every_readme_command_with_a_bad_value_says_in_indonesian_what_to_do_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    let database = format!("sqlite:{}", db.display());
    server(&db, &["init"]).ok();
    server(
        &db,
        &[
            "add-library",
            "dermaji",
            "--name",
            "Perpustakaan Desa Dermaji",
        ],
    )
    .ok();
    server(
        &db,
        &["add-device", "--library", "dermaji", "--pc", "pc-01"],
    )
    .ok();
    server(&db, &["add-staff", "Bu Sri"]).ok();
    let existing = dir.path().join("existing.db");
    std::fs::write(&existing, b"x").unwrap();
    let nonempty = dir.path().join("nonempty");
    std::fs::create_dir_all(&nonempty).unwrap();
    std::fs::write(nonempty.join("x"), b"x").unwrap();
    let missing = dir.path().join("tidak-ada");
    let missing = missing.to_str().unwrap();
    let missing_out = format!("{missing}/rekap.xlsx");
    let pc = enrolled_pc(
        &format!("http://127.0.0.1:{}", closed_port()),
        &format!("jejak_dev_{}", "ab".repeat(32)),
    );
    pc.record_sessions(1);

    // (arguments, what the message must say: what is wrong and the fix)
    let pc_cases: &[(&[&str], &[&str])] = &[
        (
            &[
                "init",
                "--library",
                "dermaji",
                "--pc",
                "pc-02",
                "--timezone",
                "Asia/Tokyo",
            ],
            &["zona waktu 'Asia/Tokyo' tidak dikenal; pilihan yang sah: Asia/Jakarta"],
        ),
        (
            &[
                "init",
                "--library",
                "dermaji",
                "--pc",
                "pc-01",
                "--pin",
                "12",
            ],
            &["--pin", "6"],
        ),
        (
            &[
                "init",
                "--library",
                "dermaji",
                "--pc",
                "pc-01",
                "--patron-secret",
                "rahasia",
            ],
            &[
                "--patron-secret harus 64 karakter heksadesimal",
                "patron.key",
            ],
        ),
        (
            &["session", "start", "--purpose", "olahraga"],
            &["tujuan penggunaan 'olahraga' tidak dikenal; pilihan yang sah: pendidikan"],
        ),
        (
            &["session", "end", "--reason", "bosan"],
            &["alasan berakhir 'bosan' tidak dikenal; pilihan yang sah: logout"],
        ),
        (
            &["session", "list", "--limit=-1"],
            &["nilai '-1' tidak sah untuk --limit <LIMIT>: harus antara 0 dan "],
        ),
        (
            &["--format", "csv", "status"],
            &["hanya untuk `jejak report`"],
        ),
        (
            &["prune", "--keep", "30"],
            &["opsi '--keep' tidak dikenal", "jejak prune --help"],
        ),
        (
            &["sync", "--import-ack", missing],
            &["tidak ada; periksa nama dan foldernya"],
        ),
        (&["sync", "--export"], &["--export <FILE> perlu nilai"]),
        (
            &[
                "enroll",
                "--server",
                "perpusda.example.go.id",
                "--token",
                "T",
            ],
            &["--server harus diawali http:// atau https://"],
        ),
        (
            &["--lang", "jv", "doctor"],
            &["bahasa tidak dikenal 'jv'; pilihan: id, en"],
        ),
        (
            &["agent", "--service"],
            &[
                "--service hanya untuk layanan Windows",
                "scripts/install-linux.sh",
            ],
        ),
    ];
    let pc_before = pc.footprint();
    for (args, parts) in pc_cases {
        let run = pc.run(args);
        check_refusal(&run, parts);
        assert_eq!(
            pc.footprint(),
            pc_before,
            "{args:?} wrote to the PC's store"
        );
    }
    // `init` in a new folder with a bad value makes nothing.
    let fresh = TestPc::new();
    check_refusal(
        &fresh.run(&["init", "--library", "dermaji", "--pc", "pc 01"]),
        &["kode komputer"],
    );
    assert!(
        !fresh.data_dir.exists(),
        "a refused init made the data folder"
    );

    let server_cases: &[(&[&str], &[&str])] = &[
        (
            &[
                "add-library",
                "rempoah",
                "--name",
                "Rempoah",
                "--timezone",
                "Mars/Olympus",
            ],
            &["zona waktu 'Mars/Olympus' tidak dikenal; pilihan yang sah: Asia/Jakarta"],
        ),
        (
            &["add-device", "--library", "rempoah", "--pc", "pc-01"],
            &["jejak server add-library rempoah"],
        ),
        (
            &["add-device", "--library", "dermaji", "--pc", "pc-01"],
            &["jejak server revoke-device --library dermaji --pc pc-01"],
        ),
        (
            &["add-staff", "Bu Sri"],
            &["jejak server revoke-staff \"Bu Sri\""],
        ),
        (
            &["add-staff", "  "],
            &["nama harus berisi 1 sampai 200 karakter"],
        ),
        (
            &["run", "--listen", "8080"],
            &["tulis alamat dan port, mis. 127.0.0.1:8080"],
        ),
        (&["run", "--backup-every", "10s"], &["sekali semenit"]),
        (
            &["run", "--max-connections", "0"],
            &["--max-connections harus paling sedikit 1"],
        ),
        (
            &["revoke-device", "--library", "dermaji", "--pc", "pc-09"],
            &["jejak server list"],
        ),
        (&["revoke-staff", "Pak Budi"], &["periksa ejaan nama"]),
        (
            &["letterhead", "--logo", missing],
            &["tidak ada; periksa nama dan foldernya"],
        ),
        (
            &["letterhead", "--line", ""],
            &["setiap --line harus berisi 1–150 karakter"],
        ),
        (
            &["import", missing],
            &["tidak ada; periksa nama dan foldernya"],
        ),
        (
            &["backup", "--to", existing.to_str().unwrap()],
            &["sudah ada; pilih nama lain"],
        ),
        (
            &["restore", "--from", missing],
            &["tidak ada; periksa nama dan foldernya"],
        ),
        (
            &["copy", "--from", &database, "--to", "sqlite:/tmp/lain.db"],
            &["--to harus basis data PostgreSQL (postgres://…)"],
        ),
        (
            &["prune", "--keep-months", "dua"],
            &["harus bilangan bulat"],
        ),
    ];
    let report_cases: &[(&[&str], &[&str])] = &[
        (
            &["village", "--month", "2026-13", "--library", "dermaji"],
            &["tulis tahun empat angka dan bulan 01–12"],
        ),
        (
            &["village", "--month", "2026-10", "--library", "rempoah"],
            &[
                "perpustakaan 'rempoah' tidak terdaftar",
                "jejak server list",
            ],
        ),
        (
            &[
                "district",
                "--month",
                "2026-10",
                "--format",
                "xlsx",
                "--out",
                &missing_out,
            ],
            &["tidak ada; buat foldernya dulu atau pilih tempat lain"],
        ),
        (
            &["quarter", "--quarter", "2026-Q5"],
            &["nomor triwulan 1–4"],
        ),
        (
            &["year", "--year", "26"],
            &["tulis tahun empat angka dari 2000"],
        ),
        (
            &["ops", "--suppress-below", "sedikit"],
            &["harus bilangan bulat"],
        ),
        (
            &[
                "district",
                "--month",
                "2026-10",
                "--server",
                "dinas.example",
                "--token",
                "T",
            ],
            &["harus diawali http:// atau https://"],
        ),
        (
            &[
                "district",
                "--month",
                "2026-10",
                "--server",
                "http://127.0.0.1:1",
            ],
            &["--server perlu --token TOKEN", "jejak server add-staff"],
        ),
    ];
    let demo_cases: &[(&[&str], &[&str])] = &[
        (
            &["demo", "--serve", "abc"],
            &["tulis port (mis. --serve 8081)"],
        ),
        (
            &["demo", "--month", "2026-13"],
            &["tulis tahun empat angka dan bulan 01–12"],
        ),
        (
            &["demo", "--out", nonempty.to_str().unwrap()],
            &["tidak kosong; pilih folder baru untuk --out"],
        ),
    ];
    let server_before = server_footprint(&db);
    let mut district: Vec<(Vec<&str>, &[&str])> = Vec::new();
    for (args, parts) in server_cases {
        let mut all = vec!["server", "--database", database.as_str()];
        all.extend_from_slice(args);
        district.push((all, *parts));
    }
    for (args, parts) in report_cases {
        let mut all = vec!["report", "--database", database.as_str()];
        all.extend_from_slice(args);
        district.push((all, *parts));
    }
    for (args, parts) in demo_cases {
        district.push((args.to_vec(), *parts));
    }
    for (args, parts) in &district {
        let run = jejak(args);
        check_refusal(&run, parts);
        assert_eq!(
            server_footprint(&db),
            server_before,
            "{args:?} stored something"
        );
    }
    assert!(!Path::new("/tmp/lain.db").exists());

    // A database in a folder that is not there is a typo, not a new database.
    let typo = format!("sqlite:{missing}/jejak-server.db");
    check_refusal(
        &jejak(&["server", "--database", &typo, "list"]),
        &["untuk basis data server tidak ada; periksa --database (atau JEJAK_DATABASE)"],
    );
    assert!(!Path::new(missing).exists(), "no folder made for a typo");
}

/// A refusal as the issue wants it: not a crash, a nonzero exit (2 for a bad value), the
/// message in Indonesian on stderr naming the fix (`parts`), nothing on stdout.
fn check_refusal(run: &Run, parts: &[&str]) {
    let code = run.code();
    assert!(
        matches!(code, Some(1 | 2)),
        "jejak {:?} exited {code:?}: {}",
        run.args,
        run.stderr
    );
    assert!(
        run.stderr.starts_with("jejak: "),
        "jejak {:?}: {}",
        run.args,
        run.stderr
    );
    for part in parts {
        assert!(
            run.stderr.contains(part),
            "jejak {:?}: {part:?} missing from {}",
            run.args,
            run.stderr
        );
    }
    for english in [
        "error:",
        "must",
        "cannot",
        "not found",
        "invalid",
        "panicked",
    ] {
        assert!(
            !run.stderr.contains(english),
            "jejak {:?}: English {english:?} in {}",
            run.args,
            run.stderr
        );
    }
    assert!(
        run.stdout.is_empty(),
        "jejak {:?}: {}",
        run.args,
        run.stdout
    );
}
