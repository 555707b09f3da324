//! Privacy end to end (issue 6, part 4): member numbers typed at `jejak session start
//! --member` never leave the keyboard in clear. A real district server (`jejak server
//! run`), a PC with its agent, `jejak sync` and `jejak prune` all run with their most
//! verbose logs, the sync goes through the fault proxy with its wire capture on, and
//! then every file of the PC's data directory, every file of the server's database
//! (with its WAL), every line any process printed and every byte on the wire (with the
//! zstd bodies inflated) are searched for the member numbers, as typed and in the
//! obvious encodings (digits only, lower case, hex, base64, UTF-16, a plain SHA-256) —
//! and none is found. Positive controls show each search looked at the real thing: the
//! HMAC patron keys are in the PC's store and in the inflated batches, and the logs are
//! verbose.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use hmac::{Hmac, Mac};
use jejak_faultproxy::{Direction, FaultProxy, Faults};
use sha2::{Digest, Sha256};
use support::{
    AgentOptions, COMMAND_DEADLINE, Run, TestPc, bare_command, files_under, poll_until, run_command,
};

/// Member numbers as a librarian might type them: a NIK-like number, a card number with
/// dashes and a phone-like number.
/// An activity's free text, searched for in every log.
const ACTIVITY_TITLE: &str = "Kelas Surel Angkatan Tujuh";
const ACTIVITY_PARTNER: &str = "Karang Taruna Tunas Muda";
const MEMBERS: &[&str] = &["3302141203950004", "AGT-2026-0042", " 081234567890 "];

const TRACE: [(&str, &str); 2] = [("JEJAK_LOG", "trace"), ("JEJAK_LOG_FORMAT", "json")];

/// Every form in which a member number could leak. Text forms are compared
/// case-insensitively; binary forms byte for byte.
struct Needles {
    text: Vec<Vec<u8>>,
    binary: Vec<Vec<u8>>,
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn needles() -> Needles {
    let mut text: Vec<String> = Vec::new();
    let mut binary: Vec<Vec<u8>> = Vec::new();
    for typed in MEMBERS {
        let trimmed = typed.trim();
        let compact: String = trimmed.chars().filter(|c| c.is_alphanumeric()).collect();
        let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
        for form in [trimmed.to_string(), compact.clone(), digits.clone()] {
            if form.len() < 6 {
                continue;
            }
            text.push(form.clone());
            text.push(hex::encode(form.as_bytes()));
            text.push(hex::encode(Sha256::digest(form.as_bytes())));
            // Base64 is case-sensitive, but a case-insensitive match only finds more.
            text.push(base64(form.as_bytes()).trim_end_matches('=').to_string());
            binary.push(form.encode_utf16().flat_map(u16::to_le_bytes).collect());
            binary.push(form.encode_utf16().flat_map(u16::to_be_bytes).collect());
        }
        // The number as an integer, in case anything stored it as one.
        if let Ok(n) = digits.parse::<u64>() {
            binary.push(n.to_le_bytes().to_vec());
            binary.push(n.to_be_bytes().to_vec());
        }
    }
    text.sort();
    text.dedup();
    Needles {
        text: text
            .into_iter()
            .map(|s| s.to_ascii_lowercase().into_bytes())
            .collect(),
        binary,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

impl Needles {
    fn leaks(&self, haystack: &[u8], source: &str) -> Vec<String> {
        let lower = haystack.to_ascii_lowercase();
        let mut out: Vec<String> = self
            .text
            .iter()
            .filter(|n| contains(&lower, n))
            .map(|n| format!("{:?} in {source}", String::from_utf8_lossy(n)))
            .collect();
        out.extend(
            self.binary
                .iter()
                .filter(|n| contains(haystack, n))
                .map(|n| format!("bytes {} in {source}", hex::encode(n))),
        );
        out
    }
}

fn hmac_hex(secret_hex: &str, message: &str) -> String {
    let key = hex::decode(secret_hex.trim()).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// `jejak server …` on the database at `db`, with trace logs.
fn server_cmd(db: &Path, args: &[&str], outputs: &mut Vec<(String, String)>) -> Run {
    let mut command = bare_command();
    command
        .args(["--lang", "en", "server", "--database"])
        .arg(format!("sqlite:{}", db.display()))
        .args(args)
        .envs(TRACE);
    let run = run_command(command, COMMAND_DEADLINE).ok();
    outputs.push((format!("server {args:?} stdout"), run.stdout.clone()));
    outputs.push((format!("server {args:?} stderr"), run.stderr.clone()));
    run
}

/// The HTTP messages in one direction of one connection: (head, body), with zstd or
/// gzip bodies inflated.
fn http_bodies(stream: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = stream;
    while let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&rest[..end]).to_ascii_lowercase();
        let header = |name: &str| {
            head.lines().find_map(|l| {
                l.strip_prefix(&format!("{name}:"))
                    .map(|v| v.trim().to_string())
            })
        };
        let length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let body_start = end + 4;
        let body = &rest[body_start..(body_start + length).min(rest.len())];
        let inflated = match header("content-encoding").as_deref() {
            Some("zstd") => zstd::stream::decode_all(body).unwrap(),
            Some("gzip") => {
                let mut out = Vec::new();
                std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(body), &mut out)
                    .unwrap();
                out
            }
            _ => body.to_vec(),
        };
        out.push((head.clone(), inflated));
        rest = &rest[(body_start + length).min(rest.len())..];
    }
    out
}

#[test]
fn member_numbers_are_nowhere_on_the_pc_the_server_the_logs_or_the_wire() {
    let needles = needles();
    let mut outputs: Vec<(String, String)> = Vec::new();

    // The district server, with a library and this PC enrolled.
    let server_dir = tempfile::Builder::new()
        .prefix("jejak-privacy-server-")
        .tempdir()
        .unwrap();
    let db = server_dir.path().join("jejak-server.db");
    server_cmd(&db, &["init"], &mut outputs);
    server_cmd(
        &db,
        &[
            "add-library",
            "dermaji",
            "--name",
            "Perpustakaan Desa Dermaji",
        ],
        &mut outputs,
    );
    let token = server_cmd(
        &db,
        &["add-device", "--library", "dermaji", "--pc", "pc-01"],
        &mut outputs,
    )
    .stdout
    .trim()
    .to_string();
    // A child process whose every log line is kept.
    let mut server = support::spawn_district(&format!("sqlite:{}", db.display()), &[], &TRACE);

    // The fault proxy between them, keeping a copy of every byte.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let proxy = runtime
        .block_on(FaultProxy::start(
            server.addr.parse().unwrap(),
            Faults::pass(),
        ))
        .unwrap();
    proxy.start_capture();
    let url = format!("http://{}", proxy.local_addr());

    // The PC, enrolled through the proxy; its agent probes and syncs often.
    let pc = TestPc::new();
    let run = |pc: &TestPc, args: &[&str], outputs: &mut Vec<(String, String)>| {
        let run = pc.run_env(args, &TRACE).ok();
        outputs.push((format!("{args:?} stdout"), run.stdout.clone()));
        outputs.push((format!("{args:?} stderr"), run.stderr.clone()));
        run
    };
    run(
        &pc,
        &[
            "init",
            "--library",
            "dermaji",
            "--pc",
            "pc-01",
            "--server",
            &url,
        ],
        &mut outputs,
    );
    run(
        &pc,
        &["enroll", "--server", &url, "--token", &token],
        &mut outputs,
    );
    let config = pc.data_dir.join("agent.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(
        "probe_secs = 0.2\nsync_secs = 0.5\nsync_backoff_base_secs = 0.02\nsync_backoff_cap_secs = 0.2\n",
    );
    std::fs::write(&config, text).unwrap();
    let mut agent = pc.spawn_agent(AgentOptions::fast(0.05).log("trace"));
    agent.wait_for_heartbeats(1);

    // The librarian types the member numbers, in text and JSON output.
    for (i, member) in MEMBERS.iter().enumerate() {
        let format = if i % 2 == 0 { "text" } else { "json" };
        run(
            &pc,
            &[
                "--format",
                format,
                "session",
                "start",
                "--kind",
                "anggota",
                "--purpose",
                "pendidikan",
                "--member",
                member,
            ],
            &mut outputs,
        );
        run(&pc, &["session", "end"], &mut outputs);
    }
    // The visitor book and the member count: categories and numbers only, nothing of a
    // person (their rows on the wire are checked below).
    for args in [
        &[
            "visit",
            "add",
            "--gender",
            "P",
            "--age",
            "lansia",
            "--user-kind",
            "anggota",
            "--purpose",
            "membaca",
        ][..],
        &[
            "--format",
            "json",
            "visit",
            "add",
            "--gender",
            "L",
            "--age",
            "anak",
            "--user-kind",
            "rombongan",
            "--purpose",
            "ikut_kegiatan",
            "--people",
            "12",
        ],
        &["visit", "undo"],
        &["visit", "list"],
        &[
            "member", "set", "--month", "2026-11", "--total", "240", "--new", "7",
        ],
    ] {
        run(&pc, args, &mut outputs);
    }
    // An activity: its title, partner and notes are the only free text Jejak keeps. They
    // travel to the server, and no log line ever carries them.
    let today = chrono::Utc::now()
        .date_naive()
        .format("%Y-%m-%d")
        .to_string();
    for args in [
        &[
            "activity",
            "add",
            "--date",
            &today,
            "--start",
            "09:00",
            "--duration",
            "90",
            "--type",
            "pelatihan",
            "--title",
            ACTIVITY_TITLE,
            "--partner",
            ACTIVITY_PARTNER,
            "--participants",
            "P:dewasa=6",
        ][..],
        &["activity", "list"],
    ] {
        run(&pc, args, &mut outputs);
    }
    // The agent's own sync takes them over the proxy.
    let view = pc.store();
    let last_session_seq = view.count("SELECT MAX(seq) FROM changes WHERE record_kind = 'session'");
    poll_until(
        "the agent's background sync",
        Duration::from_secs(60),
        || {
            (view.count("SELECT acked_seq FROM sync_state WHERE id = 1") >= last_session_seq)
                .then_some(())
        },
    );
    assert!(agent.stop_with("TERM").success());
    outputs.push(("agent stderr".into(), agent.log_lines().join("\n")));
    outputs.push(("agent stdout".into(), agent.stdout_lines().join("\n")));
    // And `jejak sync` sends the rest (the agent's shutdown), then the PC prunes.
    let sync = pc.run_env(&["--format", "json", "sync"], &TRACE);
    assert!(matches!(sync.code(), Some(0 | 4)), "{sync:?}");
    outputs.push(("sync stdout".into(), sync.stdout.clone()));
    outputs.push(("sync stderr".into(), sync.stderr.clone()));
    for args in [
        &["--format", "json", "status"][..],
        &["status"],
        &["session", "list"],
        &["--format", "json", "session", "list"],
        &["prune", "--dry-run"],
        &["--format", "json", "prune"],
    ] {
        run(&pc, args, &mut outputs);
    }
    assert_eq!(
        pc.status_json()["store"]["pending_changes"],
        0,
        "everything reached the server"
    );

    let mut leaks = Vec::new();
    let mut scanned = Vec::new();
    // The server's database while it runs (its WAL holds the newest pages), then after
    // a clean stop.
    for path in files_under(server_dir.path()) {
        leaks.extend(needles.leaks(&std::fs::read(&path).unwrap(), &path.display().to_string()));
        scanned.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    assert!(
        scanned.iter().any(|n| n == "jejak-server.db-wal"),
        "the server's WAL was scanned: {scanned:?}"
    );
    server.stop(COMMAND_DEADLINE);
    outputs.push(("server log".into(), server.log_lines().join("\n")));
    for path in files_under(server_dir.path()) {
        leaks.extend(needles.leaks(&std::fs::read(&path).unwrap(), &path.display().to_string()));
    }
    // The PC's data directory.
    let mut pc_files = Vec::new();
    for path in files_under(&pc.data_dir) {
        let bytes = std::fs::read(&path).unwrap();
        leaks.extend(needles.leaks(&bytes, &path.display().to_string()));
        pc_files.push((path, bytes));
    }
    // Every line every process printed.
    for (source, text) in &outputs {
        leaks.extend(needles.leaks(text.as_bytes(), source));
    }
    // The wire, raw and inflated.
    let captured = proxy.captured();
    runtime.block_on(proxy.shutdown());
    let mut batches = 0;
    let mut inflated_text = Vec::new();
    for c in &captured {
        let source = format!("wire conn {} {:?}", c.conn, c.direction);
        leaks.extend(needles.leaks(&c.bytes, &source));
        for (head, body) in http_bodies(&c.bytes) {
            if c.direction == Direction::ClientToUpstream
                && head.starts_with("post /api/v1/batches")
            {
                batches += 1;
            }
            leaks.extend(needles.leaks(&body, &format!("{source} (inflated body)")));
            inflated_text.extend(body);
        }
    }
    assert!(leaks.is_empty(), "member numbers found: {leaks:#?}");
    // The activity's free text: on the wire (it is the record), never in a log.
    assert!(contains(&inflated_text, ACTIVITY_TITLE.as_bytes()));
    for (source, text) in &outputs {
        let is_log = source.ends_with("stderr") || source == "server log";
        for free_text in [ACTIVITY_TITLE, ACTIVITY_PARTNER] {
            assert!(
                !(is_log && text.contains(free_text)),
                "an activity's free text in {source}"
            );
        }
    }

    // Positive controls: the searches looked at the real data.
    let secret = std::fs::read_to_string(pc.data_dir.join("patron.key")).unwrap();
    let keys: Vec<String> = MEMBERS
        .iter()
        .map(|m| hmac_hex(&secret, m.trim()))
        .collect();
    let store_bytes: Vec<u8> = pc_files
        .iter()
        .filter(|(p, _)| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("jejak.db")
        })
        .flat_map(|(_, b)| b.clone())
        .collect();
    let stored =
        view.count("SELECT COUNT(DISTINCT patron_key) FROM sessions WHERE patron_key IS NOT NULL");
    assert_eq!(stored, MEMBERS.len() as i64, "each member has a patron key");
    assert!(batches >= 1, "batches were captured on the wire");
    // The desk records went over the same wire, as compact rows of small integers.
    assert!(
        contains(&inflated_text, b"\"entries\":[["),
        "the visits and the member count were captured on the wire"
    );
    for key in &keys {
        let on_wire = contains(&inflated_text, key.as_bytes());
        let in_store = contains(&store_bytes, key.as_bytes())
            || view.count(&format!(
                "SELECT COUNT(*) FROM sessions WHERE patron_key = '{key}'"
            )) == 1;
        assert!(
            on_wire && in_store,
            "the patron key (HMAC) of each member is on the wire ({on_wire}) and in the store ({in_store})"
        );
    }
    assert!(
        outputs
            .iter()
            .any(|(s, t)| s == "agent stderr" && t.contains("\"level\":\"TRACE\"")),
        "the agent logged at trace level"
    );
}
