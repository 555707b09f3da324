//! A real full disk: the data directory is a 600 KiB tmpfs mounted in a private mount
//! namespace (`unshare --mount --map-root-user`, so no root is needed and nothing leaks
//! onto the host). Session starts run until the disk is full; the failure must be a clear
//! message, everything acknowledged before it must be intact, and once space is freed
//! the PC records again.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

const SCRIPT: &str = r#"
set -u
mount -t tmpfs -o size=600k tmpfs "$D" || { echo "NO_MOUNT"; exit 0; }
"$JEJAK" --data-dir "$D" init --library penuh --pc pc-01 > /dev/null || exit 10
head -c 380000 /dev/zero > "$D/filler"
i=0
while [ $i -lt 5000 ]; do
  if said=$("$JEJAK" --data-dir "$D" session start --purpose pendidikan --gender P 2> "$OUT/err.txt"); then
    echo "$said" | sed -n 's/^ID sesi: //p' >> "$OUT/acks.txt"
  else
    echo "$?" > "$OUT/rc.txt"
    break
  fi
  i=$((i + 1))
done
cp "$D"/jejak.db* "$OUT/"
rm -f "$D/filler"
"$JEJAK" --data-dir "$D" session start --purpose ekonomi > "$OUT/after.txt" || echo "AFTER_FAILED" > "$OUT/after.txt"
"$JEJAK" --data-dir "$D" --format json status > "$OUT/status.json"
"#;

#[test]
fn a_full_disk_gives_a_clear_error_loses_nothing_and_recovers() {
    let available = Command::new("unshare")
        .args(["--mount", "--map-root-user", "true"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !available {
        eprintln!(
            "SKIPPED: disk-full test needs `unshare --mount --map-root-user` (user namespaces)"
        );
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let out = work.path().join("out");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let status = Command::new("unshare")
        .args(["--mount", "--map-root-user", "sh", "-c", SCRIPT])
        .env("JEJAK", env!("CARGO_BIN_EXE_jejak"))
        .env("D", &data)
        .env("OUT", &out)
        .env_remove("JEJAK_LANG")
        .status()
        .unwrap();
    assert!(status.success());
    if !out.join("rc.txt").exists() && !out.join("acks.txt").exists() {
        eprintln!("SKIPPED: tmpfs could not be mounted in a user namespace here");
        return;
    }

    let rc = std::fs::read_to_string(out.join("rc.txt")).expect("the disk filled up");
    assert_eq!(rc.trim(), "1", "a full disk is a failure exit, not a crash");
    let err = std::fs::read_to_string(out.join("err.txt")).unwrap();
    assert!(
        err.contains("disk penuh"),
        "clear message in Indonesian: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    let acks: Vec<String> = std::fs::read_to_string(out.join("acks.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert!(acks.len() > 10, "some sessions fit before the disk filled");
    let db = rusqlite::Connection::open(out.join("jejak.db")).unwrap();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    for id in &acks {
        let found: i64 = db
            .query_row("SELECT COUNT(*) FROM sessions WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(found, 1, "acknowledged session {id} survived the full disk");
    }
    let (count, max): (i64, i64) = db
        .query_row("SELECT COUNT(*), MAX(seq) FROM changes", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(count, max, "seq stays contiguous");

    let after = std::fs::read_to_string(out.join("after.txt")).unwrap();
    assert!(
        after
            .lines()
            .filter_map(|line| line.strip_prefix("ID sesi: "))
            .any(|id| uuid::Uuid::parse_str(id.trim()).is_ok()),
        "recording works again once space is freed: {after}"
    );
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("status.json")).unwrap()).unwrap();
    assert_eq!(status["store"]["quick_check"], "ok");
    assert!(Path::new(&out.join("jejak.db")).exists());
}
