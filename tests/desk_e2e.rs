//! The librarian's desk records end to end with the real `jejak` binary: visits of the
//! visitor book (`jejak visit add|undo`) and a month's member count (`jejak member
//! set`), synced over HTTP and over a USB bundle to a real server on 127.0.0.1:0 (its
//! SQLite store in a file), stored once, counted, and equal to a recount; and a server
//! older than visits, which takes the sessions while the PC holds the visit back until
//! the server is upgraded.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jejak_domain::{LibraryCode, RecordKind};
use jejak_server::report::FactsDetail;
use jejak_server::{ServerStore, SqliteOptions, SqliteStore};
use jejak_testkit::server::ServerOnOwnRuntime;
use serde_json::Value;
use support::{FAST_SYNC, Run, TestPc, bare_command, run_command};

const COMMAND_DEADLINE: Duration = Duration::from_secs(60);

struct Server {
    runtime: ServerOnOwnRuntime,
    db: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(accepts: &[RecordKind]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("jejak-server.db");
        let path = db.clone();
        let runtime = ServerOnOwnRuntime::start_accepting(
            |clock| async move {
                Arc::new(SqliteStore::open_with(&path, SqliteOptions { clock }).unwrap())
                    as Arc<dyn ServerStore>
            },
            accepts,
        );
        Server {
            runtime,
            db,
            _dir: dir,
        }
    }

    fn store(&self) -> &dyn ServerStore {
        self.runtime.store.as_ref()
    }

    /// The month's sum of an entry counter of `library` (the month of the server's now).
    fn count(&self, library: &str, key: &str) -> i64 {
        let month = self.runtime.state.now().date_naive();
        let facts = self
            .runtime
            .block_on(self.store().month_facts(
                month,
                Some(&LibraryCode::parse(library).unwrap()),
                FactsDetail::Breakdowns,
            ))
            .unwrap();
        facts.libraries[0].entry_count(None, key)
    }

    fn assert_recount_equal(&self) {
        let check = self.runtime.block_on(self.store().check_rollups()).unwrap();
        assert!(check.is_consistent(), "{check:?}");
        let run = self.server_cmd(&["check-rollups"]);
        assert_eq!(run.code(), Some(0), "{}", run.stderr);
    }

    /// `jejak --lang en --format json server --database DB ARGS`.
    fn server_cmd(&self, args: &[&str]) -> Run {
        let mut command = bare_command();
        command
            .args(["--lang", "en", "--format", "json", "server", "--database"])
            .arg(format!("sqlite:{}", self.db.display()))
            .args(args);
        run_command(command, COMMAND_DEADLINE)
    }
}

/// A PC set up for `library/pc` and enrolled with the server (which tells it the kinds
/// it takes).
fn enrolled_pc(server: &Server, library: &str, pc: &str) -> TestPc {
    let token = server.runtime.enroll(library, "Perpustakaan Desa", pc);
    let test_pc = TestPc::new();
    let url = server.runtime.url();
    test_pc
        .run(&["init", "--library", library, "--pc", pc, "--server", &url])
        .ok();
    test_pc
        .run(&["enroll", "--server", &url, "--token", &token])
        .ok();
    test_pc
}

/// `jejak sync`: its report, or `{"nothing_to_send": true}` (exit 4).
fn sync(pc: &TestPc) -> Value {
    let run = pc.run_env(
        &["-v", "--lang", "en", "--format", "json", "sync"],
        &FAST_SYNC,
    );
    assert!(matches!(run.code(), Some(0 | 4)), "{}", run.stderr);
    run.json()
}

fn waiting(pc: &TestPc) -> i64 {
    pc.status_json()["store"]["pending_changes"]
        .as_i64()
        .unwrap()
}

fn visit(pc: &TestPc, user_kind: &str, purpose: &str, people: &str) -> Run {
    pc.run(&[
        "visit",
        "add",
        "--gender",
        "P",
        "--age",
        "remaja",
        "--user-kind",
        user_kind,
        "--purpose",
        purpose,
        "--people",
        people,
    ])
}

#[test]
fn visits_and_member_counts_sync_over_http_and_usb_stored_once_and_counted() {
    let server = Server::start(&RecordKind::ALL);
    let desk = enrolled_pc(&server, "dermaji", "pc-01");
    visit(&desk, "anggota", "membaca", "1").ok();
    visit(&desk, "rombongan", "komputer_internet", "12").ok();
    visit(&desk, "non_anggota", "pinjam_kembali", "2").ok();
    let undo = desk.run(&["visit", "undo"]).ok();
    assert!(undo.stdout.contains("dibatalkan"), "{}", undo.stdout);
    // Bad values say what to do and store nothing.
    let before = desk.store().count_and_max();
    let bad = visit(&desk, "staf", "membaca", "1").expect_code(2);
    assert!(bad.stderr.contains("buku tamu"), "{}", bad.stderr);
    let bad = desk
        .run(&[
            "--lang", "en", "member", "set", "--month", "2026-13", "--total", "5", "--new", "1",
        ])
        .expect_code(2);
    assert!(bad.stderr.contains("YYYY-MM"), "{}", bad.stderr);
    assert_eq!(desk.store().count_and_max(), before);
    let month = server.runtime.state.now().format("%Y-%m").to_string();
    desk.run(&[
        "member", "set", "--month", &month, "--total", "120", "--new", "4",
    ])
    .ok();

    let report = sync(&desk);
    assert_eq!(report["pending_after"], 0, "{report}");
    assert_eq!(server.count("dermaji", "visit.entries"), 2);
    assert_eq!(server.count("dermaji", "visit.people"), 13);
    assert_eq!(
        server.count("dermaji", "visit.people.purpose.komputer_internet"),
        12
    );
    assert_eq!(
        server.count("dermaji", "visit.people.purpose.pinjam_kembali"),
        0
    );
    assert_eq!(server.count("dermaji", "member_count.members"), 120);
    // The undo of the group after it was sent: it counts no more.
    desk.run(&["visit", "undo"]).ok();
    sync(&desk);
    assert_eq!(server.count("dermaji", "visit.people"), 1);
    assert_eq!(server.count("dermaji", "visit.entries"), 1);
    assert_eq!(
        server.count("dermaji", "visit.people.purpose.komputer_internet"),
        0
    );
    assert_eq!(sync(&desk)["nothing_to_send"], true);

    // A second PC of the library, by USB: a visit, and the month's count entered later
    // (it stands: one record for the library, whichever PC).
    let usb = enrolled_pc(&server, "dermaji", "pc-02");
    visit(&usb, "pelatihan", "ikut_kegiatan", "20").ok();
    usb.run(&[
        "member", "set", "--month", &month, "--total", "125", "--new", "5",
    ])
    .ok();
    carry(&server, &usb, "bundle.json");
    let bundle = usb.dir.path().join("bundle.json");
    assert_eq!(waiting(&usb), 0);
    assert_eq!(server.count("dermaji", "visit.entries"), 2);
    assert_eq!(
        server.count("dermaji", "visit.people.purpose.ikut_kegiatan"),
        20
    );
    assert_eq!(server.count("dermaji", "member_count.members"), 125);
    assert_eq!(server.count("dermaji", "member_count.new"), 5);
    // The same bundle imported again stores nothing twice.
    server
        .server_cmd(&["import", bundle.to_str().unwrap()])
        .ok();
    assert_eq!(server.count("dermaji", "visit.people"), 21);
    server.assert_recount_equal();
}

/// Exports a bundle on `pc`, imports it on the server, and takes its acknowledgement
/// back to the PC.
fn carry(server: &Server, pc: &TestPc, name: &str) {
    let bundle = pc.dir.path().join(name);
    pc.run(&["sync", "--export", bundle.to_str().unwrap()]).ok();
    server
        .server_cmd(&["import", bundle.to_str().unwrap()])
        .ok();
    let ack = ack_path(&bundle);
    pc.run(&["sync", "--import-ack", ack.to_str().unwrap()])
        .ok();
}

fn ack_path(bundle: &Path) -> std::path::PathBuf {
    let mut name = bundle.as_os_str().to_owned();
    name.push(".ack.json");
    name.into()
}

#[test]
fn a_server_older_than_visits_gets_the_sessions_and_the_visit_waits_until_it_is_upgraded() {
    let mut server = Server::start(&RecordKind::WIRE_V1);
    let pc = enrolled_pc(&server, "kebasen", "pc-01");
    let url_before = server.runtime.url();
    pc.start_session(&["--gender", "L", "--age", "pemuda", "--kind", "anggota"]);
    visit(&pc, "anggota", "membaca", "3").ok();
    pc.run(&["session", "end"]).ok();

    let report = sync(&pc);
    assert_eq!(report["pending_after"], 1, "{report}");
    let device = server
        .runtime
        .block_on(server.store().find_device(
            &LibraryCode::parse("kebasen").unwrap(),
            &jejak_domain::PcCode::parse("pc-01").unwrap(),
        ))
        .unwrap()
        .unwrap();
    let sessions = server
        .runtime
        .block_on(server.store().sessions(&device))
        .unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(server.count("kebasen", "visit.people"), 0);
    assert_eq!(waiting(&pc), 1);
    let status = pc.run(&["status"]).ok();
    assert!(
        status.stdout.contains("1 catatan menunggu dikirim"),
        "{}",
        status.stdout
    );
    // Pruning leaves it alone; a second sync sends nothing the server cannot take.
    pc.run(&["prune"]).ok();
    assert_eq!(pc.store().count("SELECT COUNT(*) FROM held_back"), 1);
    let report = sync(&pc);
    assert_eq!(report["pending_after"], 1, "{report}");

    // The district upgrades its server (at a new address): the visit arrives, once.
    server.runtime.upgrade(&RecordKind::ALL);
    let config = pc.data_dir.join("agent.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let moved = text.replace(&url_before, &server.runtime.url());
    assert_ne!(moved, text);
    std::fs::write(&config, moved).unwrap();
    let report = sync(&pc);
    assert_eq!(report["pending_after"], 0, "{report}");
    assert_eq!(waiting(&pc), 0);
    assert_eq!(server.count("kebasen", "visit.people"), 3);
    assert_eq!(server.count("kebasen", "visit.entries"), 1);
    assert_eq!(sync(&pc)["nothing_to_send"], true);
    assert_eq!(server.count("kebasen", "visit.people"), 3);
    assert_eq!(
        server
            .runtime
            .block_on(server.store().sessions(&device))
            .unwrap()
            .len(),
        1
    );
    server.assert_recount_equal();
}

/// A server that does not list visits refuses a batch carrying one (422, naming it), as
/// an older server's parser would, and stores nothing of it.
#[test]
fn a_server_that_does_not_take_visits_refuses_a_batch_with_one_and_stores_nothing() {
    use jejak_domain::{
        AgeGroup, ChangeRecord, ClientInstant, Gender, PcCode, RecordBody, UserKind, Visit,
        VisitPurpose, WireBatch,
    };
    let server = Server::start(&RecordKind::WIRE_V1);
    let token = server
        .runtime
        .enroll("kebasen", "Perpustakaan Desa", "pc-02");
    let (library, pc) = (
        LibraryCode::parse("kebasen").unwrap(),
        PcCode::parse("pc-02").unwrap(),
    );
    let now = server.runtime.state.now();
    let run = uuid::Uuid::now_v7();
    let visit = Visit {
        id: uuid::Uuid::now_v7(),
        revision: 1,
        library: library.clone(),
        pc: pc.clone(),
        at: now,
        run_id: run,
        mono_ms: 5_000,
        gender: Gender::P,
        age_group: AgeGroup::Dewasa,
        user_kind: UserKind::Anggota,
        purpose: VisitPurpose::Membaca,
        people: 1,
        withdrawn: false,
    };
    let batch = WireBatch::encode(
        uuid::Uuid::now_v7(),
        library.clone(),
        pc.clone(),
        uuid::Uuid::now_v7(),
        1,
        1,
        ClientInstant {
            run,
            mono_ms: 6_000,
            wall_ms: now.timestamp_millis(),
        },
        Vec::new(),
        &[ChangeRecord {
            seq: 1,
            recorded_at: now,
            run_id: run,
            mono_ms: 5_000,
            body: RecordBody::Visit(visit),
        }],
    );
    let body = zstd::encode_all(serde_json::to_vec(&batch).unwrap().as_slice(), 3).unwrap();
    let url = format!("{}/api/v1/batches", server.runtime.url());
    let answer = server.runtime.block_on(async move {
        let response = reqwest::Client::new()
            .post(url)
            .bearer_auth(token)
            .header("Content-Type", jejak_domain::BATCH_MEDIA_TYPE)
            .header("Content-Encoding", "zstd")
            .body(body)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    });
    assert_eq!(answer.0, 422, "{}", answer.1);
    assert!(answer.1.contains("entries[0].kind 'visit'"), "{}", answer.1);
    let device = server
        .runtime
        .block_on(server.store().find_device(&library, &pc))
        .unwrap()
        .unwrap();
    let state = server
        .runtime
        .block_on(server.store().device_state(&device))
        .unwrap();
    assert_eq!(state.epochs.len(), 0, "{state:?}");
    assert_eq!(server.count("kebasen", "visit.entries"), 0);
}

/// `jejak --lang en activity add` of a valid activity held today, with `extra` options
/// (flag, value pairs) replacing or adding to its own.
fn add_activity(pc: &TestPc, today: &str, extra: &[&str]) -> Run {
    let mut options = vec![
        ("--date", today),
        ("--start", "09:00"),
        ("--duration", "120"),
        ("--type", "pelatihan"),
        ("--title", "Pelatihan membuat email"),
        ("--participants", "L:dewasa=5,P:dewasa=7"),
    ];
    for pair in extra.chunks(2) {
        options.retain(|(flag, _)| *flag != pair[0]);
        options.push((pair[0], pair[1]));
    }
    let mut args = vec!["--lang", "en", "activity", "add"];
    for (flag, value) in options {
        args.extend([flag, value]);
    }
    pc.run(&args)
}

/// The short id `jejak activity add` printed.
fn short_id_of(run: &Run) -> String {
    run.stdout
        .lines()
        .find_map(|l| l.strip_prefix("Activity ID: "))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn activities_are_added_listed_edited_and_synced_over_http_and_usb_counted_on_their_date() {
    let server = Server::start(&RecordKind::ALL);
    let today = server.runtime.state.now().date_naive();
    let today = today.format("%Y-%m-%d").to_string();
    let desk = enrolled_pc(&server, "dermaji", "pc-01");
    let added = add_activity(&desk, &today, &["--partner", "Karang Taruna"]).ok();
    assert!(
        added.stderr.contains("never write a patron's name"),
        "{}",
        added.stderr
    );
    let first = short_id_of(&added);
    assert_eq!(first.len(), 8, "{}", added.stdout);
    let other = add_activity(
        &desk,
        &today,
        &[
            "--type",
            "sosialisasi_kie",
            "--place",
            "di_luar",
            "--participants",
            "P:lansia=9",
            "--title",
            "Sosialisasi literasi",
        ],
    )
    .ok();
    let other = short_id_of(&other);

    // Bad values say what to do and store nothing.
    let before = desk.store().count_and_max();
    for (extra, says) in [
        (vec!["--type", "rapat"], "sosialisasi_kie"),
        (vec!["--date", "14-11-2026"], "YYYY-MM-DD"),
        (vec!["--date", "2020-01-01"], "at most a year back"),
        (vec!["--start", "25:00"], "HH:MM"),
        (vec!["--duration", "0"], "1 to 1440"),
        (vec!["--participants", "L:dewasa"], "participants"),
        (vec!["--participants", "L:dewasa=1001"], "0 to 1000"),
        (vec!["--notes", "baris\nbaru"], "one line"),
    ] {
        let bad = add_activity(&desk, &today, &extra).expect_code(2);
        assert!(bad.stderr.contains(says), "{extra:?}: {}", bad.stderr);
    }
    let long_title = "a".repeat(121);
    let bad = add_activity(&desk, &today, &["--title", &long_title]).expect_code(2);
    assert!(bad.stderr.contains("at most 120"), "{}", bad.stderr);
    let bad = desk
        .run(&[
            "--lang",
            "en",
            "activity",
            "edit",
            "ffffffff",
            "--duration",
            "30",
        ])
        .expect_code(2);
    assert!(bad.stderr.contains("jejak activity list"), "{}", bad.stderr);
    let bad = desk
        .run(&["activity", "edit", &first, "--duration", "2000"])
        .expect_code(2);
    assert!(bad.stderr.contains("durasi"), "{}", bad.stderr);
    assert_eq!(desk.store().count_and_max(), before);

    let report = sync(&desk);
    assert_eq!(report["pending_after"], 0, "{report}");
    assert_eq!(server.count("dermaji", "activity.count"), 2);
    assert_eq!(server.count("dermaji", "activity.participants"), 21);
    assert_eq!(
        server.count("dermaji", "activity.participants.type.sosialisasi_kie"),
        9
    );
    assert_eq!(server.count("dermaji", "activity.count.place.di_luar"), 1);
    assert_eq!(
        server.count("dermaji", "activity.participants.ga.P.dewasa"),
        7
    );

    // An edit after the sync is a new revision: the counts follow it.
    let edited = desk
        .run(&[
            "activity",
            "edit",
            &first,
            "--participants",
            "P:remaja=20",
            "--title",
            "Kelas email",
        ])
        .ok();
    assert!(edited.stdout.contains("revisi 2"), "{}", edited.stdout);
    sync(&desk);
    assert_eq!(server.count("dermaji", "activity.count"), 2);
    assert_eq!(server.count("dermaji", "activity.participants"), 29);
    assert_eq!(
        server.count("dermaji", "activity.participants.ga.P.dewasa"),
        0
    );
    assert_eq!(
        server.count("dermaji", "activity.participants.ga.P.remaja"),
        20
    );
    let list = desk.run(&["activity", "list", "--month", &today[..7]]).ok();
    assert!(list.stdout.contains("Kelas email"), "{}", list.stdout);
    assert!(
        list.stdout.contains(&first) && list.stdout.contains(&other),
        "{}",
        list.stdout
    );
    assert!(
        !list.stdout.contains("Pelatihan membuat email"),
        "{}",
        list.stdout
    );
    let empty = desk.run(&["activity", "list", "--month", "2001-01"]).ok();
    assert!(
        empty.stdout.contains("Belum ada kegiatan"),
        "{}",
        empty.stdout
    );
    assert_eq!(sync(&desk)["nothing_to_send"], true);

    // A second PC by USB: its activity, imported twice, is stored once.
    let usb = enrolled_pc(&server, "dermaji", "pc-02");
    add_activity(
        &usb,
        &today,
        &["--type", "bedah_buku", "--participants", "X:anak=4"],
    )
    .ok();
    let bundle = usb.dir.path().join("bundle.json");
    usb.run(&["sync", "--export", bundle.to_str().unwrap()])
        .ok();
    for _ in 0..2 {
        server
            .server_cmd(&["import", bundle.to_str().unwrap()])
            .ok();
    }
    let ack = ack_path(&bundle);
    usb.run(&["sync", "--import-ack", ack.to_str().unwrap()])
        .ok();
    assert_eq!(waiting(&usb), 0);
    assert_eq!(server.count("dermaji", "activity.count"), 3);
    assert_eq!(server.count("dermaji", "activity.count.type.bedah_buku"), 1);
    assert_eq!(server.count("dermaji", "activity.participants"), 33);
    server.assert_recount_equal();
}

/// The same by USB: the bundle for a server older than visits leaves the visit out and
/// the acknowledgement holds it back; once the PC hears the upgraded server takes visits
/// (here at a second `jejak enroll`), the next bundle carries it first, and the
/// importer stores it once.
#[test]
fn by_usb_a_held_back_visit_goes_in_a_later_bundle_once_the_server_takes_it() {
    let mut server = Server::start(&RecordKind::WIRE_V1);
    let token = server
        .runtime
        .enroll("kebasen", "Perpustakaan Desa", "pc-03");
    let pc = TestPc::new();
    let url = server.runtime.url();
    pc.run(&[
        "init",
        "--library",
        "kebasen",
        "--pc",
        "pc-03",
        "--server",
        &url,
    ])
    .ok();
    pc.run(&["enroll", "--server", &url, "--token", &token])
        .ok();
    pc.start_session(&["--gender", "P", "--age", "dewasa", "--kind", "anggota"]);
    visit(&pc, "anggota", "membaca", "2").ok();
    pc.run(&["session", "end"]).ok();

    carry(&server, &pc, "first.json");
    assert_eq!(waiting(&pc), 1);
    assert_eq!(server.count("kebasen", "visit.people"), 0);

    server.runtime.upgrade(&RecordKind::ALL);
    let url = server.runtime.url();
    pc.run(&["enroll", "--server", &url, "--token", &token])
        .ok();
    visit(&pc, "non_anggota", "belajar", "1").ok();
    carry(&server, &pc, "second.json");
    assert_eq!(waiting(&pc), 0);
    assert_eq!(server.count("kebasen", "visit.people"), 3);
    assert_eq!(server.count("kebasen", "visit.entries"), 2);
    server.assert_recount_equal();
}
