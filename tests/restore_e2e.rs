//! The district server's disk dies (issue 14, part 3), end to end with the real binary:
//! `jejak server run` on a real SQLite file, `jejak server backup` while it runs, more
//! syncs, `jejak server restore` from the older backup, and the PCs' next `jejak sync`.
//! The server must then hold every record exactly once (the same as the PCs made, at
//! their newest revisions), `check-rollups` must pass, and what a PC had pruned before
//! the restore must be named on the operations view, never passed over silently.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jejak_agent::clock::ManualClock;
use jejak_agent::store::{PrunePolicy, Store};
use jejak_domain::{DeviceIdentity, LibraryCode, PcCode};
use jejak_server::{ServerStore, SqliteStore};
use serde_json::Value;
use support::{
    COMMAND_DEADLINE, ChildGuard, Run, TestPc, bare_command, district_server, run_command,
    server_cli, spawn_server,
};

const LIBRARY: &str = "dermaji";

fn stop(mut child: ChildGuard) {
    child.signal("TERM");
    let status = child
        .wait_deadline(Duration::from_secs(20))
        .expect("the server stops after SIGTERM");
    assert!(status.success(), "the server stopped with {status}");
}

/// A PC of the library, set up and enrolled.
fn pc(code: &str, url: &str, token: &str) -> TestPc {
    let pc = TestPc::new();
    pc.run(&[
        "init",
        "--library",
        LIBRARY,
        "--pc",
        code,
        "--timezone",
        "Asia/Jakarta",
    ])
    .ok();
    pc.run(&["enroll", "--server", url, "--token", token]).ok();
    pc
}

fn sync(pc: &TestPc, url: &str) -> Run {
    pc.run_env(
        &["--format", "json", "sync"],
        &[
            ("JEJAK_SERVER", url),
            ("JEJAK_SYNC_BACKOFF_BASE_SECS", "0.02"),
            ("JEJAK_SYNC_BACKOFF_CAP_SECS", "0.2"),
            ("JEJAK_SYNC_BATCH_RECORDS", "7"),
        ],
    )
}

/// The server's sessions of a PC by id and revision, read in this process from the
/// stopped server's file.
fn stored(db: &Path, code: &str) -> Vec<(String, u32)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = SqliteStore::open(db).unwrap();
        let device = store
            .find_device(
                &LibraryCode::parse(LIBRARY).unwrap(),
                &PcCode::parse(code).unwrap(),
            )
            .await
            .unwrap()
            .unwrap();
        let mut out: Vec<(String, u32)> = store
            .sessions(&device)
            .await
            .unwrap()
            .into_iter()
            .map(|s| (s.id.to_string(), s.revision))
            .collect();
        out.sort();
        out
    })
}

/// The PC's own sessions by id and revision.
fn made(pc: &TestPc) -> Vec<(String, u32)> {
    let mut out: Vec<(String, u32)> = pc
        .store()
        .sessions()
        .into_iter()
        .map(|s| (s.id, s.revision as u32))
        .collect();
    out.sort();
    out
}

/// Prunes the PC's store as its agent would `days` later, with a retention of one day:
/// every acknowledged change but the newest goes.
fn prune_as_if_days_later(pc: &TestPc, code: &str, days: i64) {
    let identity = DeviceIdentity {
        library: LibraryCode::parse(LIBRARY).unwrap(),
        pc: PcCode::parse(code).unwrap(),
    };
    let clock = ManualClock::new(chrono::Utc::now() + chrono::Duration::days(days));
    let (mut store, _) = Store::open(&pc.db_path(), identity, Arc::new(clock)).unwrap();
    let pruned = store
        .prune(
            &PrunePolicy {
                retention: Duration::from_secs(86_400),
                budget_bytes: 64 << 20,
            },
            false,
        )
        .unwrap();
    assert!(pruned.changes_past_retention > 0, "{pruned:?}");
}

fn column(table: &Value, key: &str) -> usize {
    table["columns"]
        .as_array()
        .unwrap()
        .iter()
        .position(|c| c["key"] == key)
        .unwrap_or_else(|| panic!("no column {key} in {table}"))
}

#[test]
fn after_a_restore_the_pcs_send_again_what_the_server_lost_and_pruned_changes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("jejak-server.db");
    let backup = dir.path().join("backup-old.db");
    let tokens = district_server(&db, LIBRARY, &["pc-01", "pc-02"]);
    let (token1, token2) = (&tokens[0], &tokens[1]);

    let (running, url) = spawn_server(&db);
    let pc1 = pc("pc-01", &url, token1);
    let pc2 = pc("pc-02", &url, token2);
    pc1.record_sessions(3);
    sync(&pc1, &url).ok();

    // The backup, taken while the server runs.
    let taken = server_cli(&db, &["backup", "--to", backup.to_str().unwrap()])
        .ok()
        .json();
    assert!(taken["sessions"].as_u64().unwrap() >= 3, "{taken}");
    let again = server_cli(&db, &["backup", "--to", backup.to_str().unwrap()]);
    assert_eq!(
        again.code(),
        Some(2),
        "a backup never overwrites: {again:?}"
    );

    // After the backup: more from pc-01, and pc-02's first sync, which it then prunes
    // at once (retention 0 days).
    pc1.record_sessions(4);
    sync(&pc1, &url).ok();
    pc2.record_sessions(5);
    sync(&pc2, &url).ok();
    prune_as_if_days_later(&pc2, "pc-02", 3);
    let kept_from = pc2.store().count("SELECT MIN(seq) FROM changes") as u64;
    assert!(
        kept_from > 1,
        "pc-02 pruned nothing; the test proves nothing"
    );

    // A restore is refused while the server has the database open, and changes nothing.
    let refused = server_cli(&db, &["restore", "--from", backup.to_str().unwrap()]);
    assert_eq!(refused.code(), Some(2), "{refused:?}");
    assert!(refused.stderr.contains("in use"), "{}", refused.stderr);
    stop(running);
    let before_restore = stored(&db, "pc-01");
    assert_eq!(before_restore, made(&pc1));

    let restored = server_cli(&db, &["restore", "--from", backup.to_str().unwrap()])
        .ok()
        .json();
    assert!(restored["previous_moved_to"].is_string(), "{restored}");
    assert!(stored(&db, "pc-01").len() < made(&pc1).len());

    // The PCs have nothing new, yet each notices that the server lost what it had
    // acknowledged, and sends it again.
    let (running, url) = spawn_server(&db);
    let report = sync(&pc1, &url).ok().json();
    assert!(report["new"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["pending_after"], 0, "{report}");
    let report = sync(&pc2, &url).ok().json();
    assert!(report["batches"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["pending_after"], 0, "{report}");
    stop(running);

    // Everything, exactly once, at its newest revision; the rollups agree.
    assert_eq!(stored(&db, "pc-01"), made(&pc1));
    let pc2_made: Vec<(String, u32)> = made(&pc2);
    let pc2_stored = stored(&db, "pc-02");
    for session in &pc2_stored {
        assert!(pc2_made.contains(session), "{session:?} was never made");
    }
    server_cli(&db, &["check-rollups"]).ok();

    // What pc-02 pruned before the restore is named, by PC and seq range.
    let mut command = bare_command();
    command
        .args([
            "--lang",
            "en",
            "--format",
            "json",
            "report",
            "ops",
            "--database",
        ])
        .arg(format!("sqlite:{}", db.display()));
    let ops = run_command(command, COMMAND_DEADLINE).ok().json();
    let lost = ops["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "lost")
        .unwrap_or_else(|| panic!("no lost table: {ops}"));
    let rows = lost["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{lost}");
    let cells = rows[0]["cells"].as_array().unwrap();
    assert_eq!(cells[column(lost, "pc")], "pc-02");
    assert_eq!(cells[column(lost, "first_seq")], 1);
    assert_eq!(cells[column(lost, "last_seq")], kept_from - 1);
    assert_eq!(cells[column(lost, "changes")], kept_from - 1);
    let pcs = &ops["sections"][0];
    let pc2_row = pcs["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["cells"][column(pcs, "pc")] == "pc-02")
        .unwrap();
    assert_eq!(pc2_row["cells"][column(pcs, "lost")], kept_from - 1);
    assert!(pc2_row["emphasis"].is_object(), "{pc2_row}");
}
