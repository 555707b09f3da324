//! The PC's data is safe in two senses: a damaged store is kept aside (never deleted)
//! while the PC goes on recording in a fresh one, and no patron's member number is ever
//! written anywhere in clear (brief §2 patron_key, §4.7 privacy by design).
#![allow(clippy::unwrap_used)]

mod support;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use support::{AgentOptions, TestPc, file_names, files_under, parse_session_id};

// ---------------------------------------------------------------------------------------
// 4. A corrupted store is quarantined
// ---------------------------------------------------------------------------------------

/// Deterministic bytes that are nothing like a SQLite page.
fn garbage(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A store with some history, closed cleanly (no `-wal` left), then `range` of it
/// overwritten with garbage. Returns the damaged file's bytes and the old epoch.
fn damaged_store(pc: &TestPc, range: std::ops::Range<usize>) -> (Vec<u8>, String) {
    let old_epoch = pc.status_json()["store"]["epoch"]
        .as_str()
        .unwrap()
        .to_string();
    pc.start_session(&["--purpose", "pendidikan"]);
    pc.run(&["session", "end"]).ok();
    pc.start_session(&["--purpose", "hobi"]);
    pc.run(&["session", "end"]).ok();
    let names = file_names(&pc.data_dir);
    assert!(
        !names.contains("jejak.db-wal"),
        "the last connection to close removes the WAL: {names:?}"
    );
    let mut bytes = std::fs::read(pc.db_path()).unwrap();
    assert!(
        bytes.len() >= range.end,
        "the store has {} bytes",
        bytes.len()
    );
    bytes[range.clone()].copy_from_slice(&garbage(range.len()));
    std::fs::write(pc.db_path(), &bytes).unwrap();
    (bytes, old_epoch)
}

/// Asserts that `name` in the data dir holds exactly `expected` (compactly on failure).
fn assert_kept_intact(pc: &TestPc, name: &str, expected: &[u8]) {
    let kept = std::fs::read(pc.data_dir.join(name)).unwrap();
    let first_difference = kept.iter().zip(expected).position(|(a, b)| a != b);
    assert!(
        kept == expected,
        "{name} is not the damaged file byte for byte: {} bytes instead of {}, first \
         difference at {first_difference:?}, starts with {:?}",
        kept.len(),
        expected.len(),
        String::from_utf8_lossy(&kept[..kept.len().min(16)])
    );
}

/// The one quarantined file (`jejak.db.corrupt-<time>`), by name.
fn quarantined(pc: &TestPc) -> String {
    let corrupt: Vec<String> = file_names(&pc.data_dir)
        .into_iter()
        .filter(|n| {
            n.starts_with("jejak.db.corrupt-") && !n.ends_with("-wal") && !n.ends_with("-shm")
        })
        .collect();
    assert_eq!(
        corrupt.len(),
        1,
        "exactly one quarantined store: {corrupt:?}"
    );
    corrupt.into_iter().next().unwrap()
}

#[test]
fn a_store_with_a_garbage_header_is_quarantined_and_the_agent_keeps_recording() {
    let pc = TestPc::initialised();
    let (damaged, old_epoch) = damaged_store(&pc, 0..8192);

    let mut agent = pc.spawn_agent(AgentOptions::fast(0.03));
    let moved =
        agent.wait_for_message("the damaged store was moved aside; a fresh store was started");
    agent.wait_for_heartbeats(2);

    let name = quarantined(&pc);
    assert!(
        moved["fields"]["moved_to"]
            .as_str()
            .unwrap()
            .ends_with(&name),
        "{moved}"
    );
    assert_kept_intact(&pc, &name, &damaged);

    let status = pc.status_json();
    assert_eq!(status["store"]["recovered_from"], name.as_str());
    assert_eq!(status["store"]["quick_check"], "ok");
    assert_ne!(status["store"]["epoch"], old_epoch.as_str(), "a new epoch");
    assert!(status["store"]["last_heartbeat"].is_string(), "{status}");

    // The fresh store works for the CLI and the agent together.
    let id = pc.start_session(&["--purpose", "ekonomi"]);
    let seq = pc.store().session_change_seq(&id, 1).unwrap() as u64;
    agent.wait_for_heartbeats_after(seq, 2);
    assert!(agent.stop_with("TERM").success());

    let store = pc.store();
    store.assert_sound("the fresh store");
    let kinds: Vec<String> = store
        .changes()
        .iter()
        .map(|c| c.event_kind().unwrap_or("session").to_string())
        .collect();
    assert_eq!(kinds[..2], ["boot", "store_recovered"], "{kinds:?}");
    assert_eq!(store.sessions().len(), 1, "only the new session");
    assert_eq!(
        store.session(&id).unwrap().end_reason.as_deref(),
        Some("shutdown")
    );
    assert_eq!(quarantined(&pc), name, "nothing quarantined twice");
    assert_kept_intact(&pc, &name, &damaged);
}

#[test]
fn a_store_with_damaged_pages_is_quarantined_by_any_command_with_a_warning() {
    let pc = TestPc::initialised();
    // The header is intact; the pages after it are not (only quick_check can tell).
    let (damaged, _) = damaged_store(&pc, 4096..3 * 4096);

    let run = pc
        .run(&["--lang", "en", "session", "start", "--kind", "anggota"])
        .ok();
    let id = parse_session_id(&run.stdout).unwrap();
    let name = quarantined(&pc);
    assert!(
        run.stderr
            .contains("WARNING: the store was damaged and was moved to")
            && run.stderr.contains(&name),
        "{}",
        run.stderr
    );
    assert_kept_intact(&pc, &name, &damaged);

    let status = pc.status_json();
    assert_eq!(status["store"]["recovered_from"], name.as_str());
    assert_eq!(status["store"]["quick_check"], "ok");
    assert_eq!(status["store"]["open_session"]["id"], id.as_str());
    pc.store().assert_sound("the fresh store");
}

// ---------------------------------------------------------------------------------------
// 5. No patron data in clear
// ---------------------------------------------------------------------------------------

/// The member numbers as typed, and the member each stands for.
const TYPED: &[(&str, &str)] = &[
    ("NIK3302123456789", "NIK3302123456789"),
    ("AGT-998877", "AGT-998877"),
    ("nik 3302 1234 56789", "NIK3302123456789"),
    ("  agt-998877 ", "AGT-998877"),
];

/// Every form in which a member number could leak: as typed, trimmed, without spaces,
/// the bare digits of the NIK. Compared case-insensitively.
fn needles() -> Vec<Vec<u8>> {
    let mut out: Vec<String> = Vec::new();
    for (typed, member) in TYPED {
        out.push(typed.trim().to_string());
        out.push(typed.split_whitespace().collect());
        out.push(member.to_string());
    }
    out.push("3302123456789".to_string());
    out.push("agt998877".to_string());
    out.sort();
    out.dedup();
    out.into_iter()
        .map(|s| s.to_ascii_lowercase().into_bytes())
        .collect()
}

fn find_leaks(haystack: &[u8], source: &str, needles: &[Vec<u8>]) -> Vec<String> {
    let lower = haystack.to_ascii_lowercase();
    needles
        .iter()
        .filter(|n| lower.windows(n.len()).any(|w| w == n.as_slice()))
        .map(|n| format!("{} in {source}", String::from_utf8_lossy(n)))
        .collect()
}

fn scan_data_dir(pc: &TestPc, needles: &[Vec<u8>]) -> (Vec<String>, Vec<String>) {
    let mut leaks = Vec::new();
    let mut scanned = Vec::new();
    for path in files_under(&pc.data_dir) {
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        leaks.extend(find_leaks(&bytes, &name, needles));
        scanned.push(name);
    }
    (leaks, scanned)
}

fn hmac_hex(secret_hex: &str, message: &str) -> String {
    let key = hex::decode(secret_hex.trim()).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[test]
fn member_numbers_never_appear_in_clear_in_any_file_or_output() {
    let pc = TestPc::initialised();
    let needles = needles();
    let trace = [("JEJAK_LOG", "trace"), ("JEJAK_LOG_FORMAT", "json")];
    let mut agent = pc.spawn_agent(AgentOptions::fast(0.03).log("trace"));
    agent.wait_for_heartbeats(1);

    let mut outputs: Vec<(String, String)> = Vec::new();
    let mut ids = Vec::new();
    for (i, (typed, _)) in TYPED.iter().enumerate() {
        let format = if i % 2 == 0 { "text" } else { "json" };
        let run = pc
            .run_env(
                &[
                    "--format", format, "session", "start", "--kind", "anggota", "--member", typed,
                ],
                &trace,
            )
            .ok();
        let id = if format == "json" {
            let json = run.json();
            json["session"]["id"].as_str().unwrap().to_string()
        } else {
            parse_session_id(&run.stdout).unwrap()
        };
        ids.push(id);
        outputs.push((format!("start {typed:?} stdout"), run.stdout));
        outputs.push((format!("start {typed:?} stderr"), run.stderr));
    }
    let last_seq = pc
        .store()
        .session_change_seq(ids.last().unwrap(), 1)
        .unwrap() as u64;
    agent.wait_for_heartbeats_after(last_seq, 2);
    for args in [
        &["--format", "json", "session", "list"][..],
        &["session", "list"],
        &["--format", "json", "status"],
        &["status"],
        &["--format", "json", "session", "end"],
    ] {
        let run = pc.run_env(args, &trace).ok();
        outputs.push((format!("{args:?} stdout"), run.stdout));
        outputs.push((format!("{args:?} stderr"), run.stderr));
    }

    // While the agent runs, the WAL and shared-memory files exist too.
    let (leaks, scanned) = scan_data_dir(&pc, &needles);
    assert!(leaks.is_empty(), "member numbers in clear: {leaks:?}");
    assert!(
        scanned.iter().any(|n| n == "jejak.db-wal"),
        "the WAL was scanned: {scanned:?}"
    );
    assert!(agent.stop_with("TERM").success());
    let (leaks, scanned) = scan_data_dir(&pc, &needles);
    assert!(leaks.is_empty(), "member numbers in clear: {leaks:?}");
    for required in ["jejak.db", "agent.toml", "patron.key"] {
        assert!(scanned.iter().any(|n| n == required), "{scanned:?}");
    }
    outputs.push(("agent stderr".into(), agent.log_lines().join("\n")));
    outputs.push(("agent stdout".into(), agent.stdout_lines().join("\n")));
    let mut leaks = Vec::new();
    for (source, text) in &outputs {
        leaks.extend(find_leaks(text.as_bytes(), source, &needles));
    }
    assert!(leaks.is_empty(), "member numbers in output: {leaks:?}");
    assert!(
        agent
            .log_lines()
            .iter()
            .filter_map(|l| support::log_event(l))
            .any(|e| e["level"] == "DEBUG" || e["level"] == "TRACE"),
        "the agent really logged below info (the search covered verbose logs)"
    );

    // The store holds keyed pseudonyms: 64 hex characters, the same for the same member
    // however it was typed, different for different members, and none of them a plain
    // hash of the number (which anyone could recompute).
    let store = pc.store();
    let keys: Vec<String> = ids
        .iter()
        .map(|id| store.session(id).unwrap().patron_key.unwrap())
        .collect();
    for key in &keys {
        assert_eq!(key.len(), 64, "{key}");
        assert!(
            key.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
    }
    assert_eq!(keys[0], keys[2], "the same NIK typed twice");
    assert_eq!(keys[1], keys[3], "the same member card typed twice");
    assert_ne!(keys[0], keys[1]);
    for (_, member) in TYPED {
        assert!(!keys.contains(&hex::encode(Sha256::digest(member.as_bytes()))));
    }
    let secret = std::fs::read_to_string(pc.data_dir.join("patron.key")).unwrap();
    assert_eq!(
        keys[0],
        hmac_hex(&secret, "NIK3302123456789"),
        "HMAC-SHA256 under the library's secret"
    );
    assert_eq!(keys[1], hmac_hex(&secret, "AGT-998877"));
    // The change log carries the key, never anything else about the patron.
    let bodies: Vec<String> = store
        .changes()
        .iter()
        .filter(|c| c.record_kind == "session")
        .map(|c| c.body.to_string())
        .collect();
    assert!(bodies.iter().any(|b| b.contains(&keys[0])));

    // Another PC of the same library, given the library's secret, makes the same keys
    // (unique-user counts work across PCs); a PC of another library cannot.
    let same_library = TestPc::new();
    same_library
        .run(&[
            "init",
            "--library",
            support::LIBRARY,
            "--pc",
            "pc-02",
            "--patron-secret",
            secret.trim(),
        ])
        .ok();
    let other_library = TestPc::new();
    other_library
        .run(&["init", "--library", "pesawahan", "--pc", "pc-01"])
        .ok();
    for (other, same) in [(&same_library, true), (&other_library, false)] {
        let id = other.start_session(&["--member", "NIK 3302123456789"]);
        let key = other.store().session(&id).unwrap().patron_key.unwrap();
        assert_eq!(key == keys[0], same);
        let (leaks, _) = scan_data_dir(other, &needles);
        assert!(leaks.is_empty(), "{leaks:?}");
    }
}

/// PRODUCT BUG (see the test report): `Store::open` in crates/jejak-agent/src/store/mod.rs
/// checks the file and then renames whatever is at the path by then. When several
/// processes open a damaged store at once (the agent starting at boot while the
/// librarian starts a session), a later one can move aside the fresh store an earlier
/// one has just created, and an acknowledged session written into it is lost.
#[test]

fn processes_opening_a_damaged_store_at_once_quarantine_it_once_and_lose_nothing() {
    for trial in 0..40 {
        let pc = TestPc::initialised();
        let (damaged, _) = damaged_store(&pc, 0..8192);
        let runs: Vec<support::Run> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| pc.run(&["session", "start"])))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let corrupt: Vec<String> = file_names(&pc.data_dir)
            .into_iter()
            .filter(|n| {
                n.starts_with("jejak.db.corrupt-") && !n.ends_with("-wal") && !n.ends_with("-shm")
            })
            .collect();
        assert_eq!(
            corrupt.len(),
            1,
            "trial {trial}: more than the damaged store was moved aside: {corrupt:?}"
        );
        assert_kept_intact(&pc, &corrupt[0], &damaged);
        let store = pc.store();
        for run in &runs {
            if let Some(id) = parse_session_id(&run.stdout) {
                assert!(
                    store.session(&id).is_some(),
                    "trial {trial}: the acknowledged session {id} is not in the store"
                );
            }
        }
    }
}
