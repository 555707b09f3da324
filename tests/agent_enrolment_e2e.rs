//! An agent started before enrolment (issue 14, part 4), end to end with the real
//! binary: the agent runs unenrolled and records; `jejak enroll` then connects the PC,
//! and the running agent syncs with it without a restart; a new token (the old one
//! revoked) is picked up the same way. Nothing recorded before or between is lost.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use support::{AgentOptions, TestPc, district_server, poll_until, server_cli, spawn_server};

const LIBRARY: &str = "dermaji";

/// The changes the PC has not had acknowledged.
fn pending(pc: &TestPc) -> u64 {
    pc.status_json()["store"]["pending_changes"]
        .as_u64()
        .unwrap()
}

#[test]
fn an_agent_started_before_enrolment_syncs_once_enrolled_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("jejak-server.db");
    let token = district_server(&db, LIBRARY, &["pc-01"]).remove(0);
    let (mut server, url) = spawn_server(&db);

    let pc = TestPc::initialised();
    // Quick rounds, so that the test waits seconds, not the default minutes.
    let config = pc.data_dir.join("agent.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("probe_secs = 0.5\nsync_secs = 1.0\n");
    std::fs::write(&config, text).unwrap();
    let mut agent = pc.spawn_agent(AgentOptions::fast(0.5));
    agent.wait_for_message("agent started");
    pc.record_sessions(1);
    std::thread::sleep(Duration::from_secs(2));
    assert!(pending(&pc) > 0, "not enrolled: nothing can have been sent");

    let enrolled = pc
        .run(&[
            "--lang", "en", "enroll", "--server", &url, "--token", &token,
        ])
        .ok();
    assert!(
        enrolled.stdout.contains("without a restart"),
        "{}",
        enrolled.stdout
    );
    poll_until(
        "the running agent syncs with the new enrolment",
        Duration::from_secs(30),
        || (pending(&pc) == 0).then_some(()),
    );

    // A lost token: the district revokes it and issues another; the PC is enrolled
    // again while the agent runs, and what it records meanwhile still arrives.
    server_cli(
        &db,
        &["revoke-device", "--library", LIBRARY, "--pc", "pc-01"],
    )
    .ok();
    let new_token = server_cli(&db, &["add-device", "--library", LIBRARY, "--pc", "pc-01"])
        .ok()
        .json()["token"]
        .as_str()
        .unwrap()
        .to_string();
    pc.record_sessions(1);
    pc.run(&["enroll", "--server", &url, "--token", &new_token])
        .ok();
    poll_until(
        "the running agent syncs with the new token",
        Duration::from_secs(30),
        || (pending(&pc) == 0).then_some(()),
    );
    let status = agent.stop_with("TERM");
    assert!(status.success(), "the agent stopped with {status}");
    server.signal("TERM");
    server.wait_deadline(Duration::from_secs(20)).unwrap();

    // Every session reached the server once.
    let sessions = pc.store().sessions().len();
    let mut command = support::bare_command();
    command
        .args(["--format", "json", "report", "ops", "--database"])
        .arg(format!("sqlite:{}", db.display()));
    let ops = support::run_command(command, support::COMMAND_DEADLINE)
        .ok()
        .json();
    assert!(sessions >= 2);
    assert_eq!(ops["sections"][0]["rows"].as_array().unwrap().len(), 1);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let stored: i64 = conn
        .query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored as usize, sessions);
}
