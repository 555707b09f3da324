//! The Windows PC build end to end, under wine: the real `jejak.exe` (the PC profile
//! cross-built for x86_64-pc-windows-gnu, named by `JEJAK_WINDOWS_EXE`) is set up in
//! `C:\ProgramData\Jejak` of a wine prefix of the test's own, records sessions from the
//! CLI and from the check-in page it serves on 127.0.0.1, is killed hard and started
//! again (the cut session is recovered as `crash` in the same boot, and as `power_loss`
//! after a "reboot" — wine's server restarted, which empties the volatile registry key
//! that names the boot), and syncs to the Linux district server on 127.0.0.1. The server
//! then holds every session of the PC exactly once.
//!
//! The MSI (`scripts/build-windows.sh`, named by `JEJAK_WINDOWS_MSI`) is inspected with
//! msitools and installed with wine's `msiexec` in a second prefix: the service is
//! registered and started, waits for `jejak init`, then records, serves the check-in
//! page and syncs by itself; a stop closes the open session as `shutdown`; uninstalling
//! removes the service, the program, the logon entry and the PATH entry and keeps the
//! data folder.
//!
//! Without `JEJAK_WINDOWS_EXE` (and `JEJAK_WINDOWS_MSI`) the tests say SKIPPED and pass,
//! unless `JEJAK_REQUIRE_WINE=1` (CI), which makes them fail.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::{ChildGuard, Run, bare_command, poll_until, run_command};

/// Commands under wine are slower than native ones, and a cold wine start more so.
const WINE_DEADLINE: Duration = Duration::from_secs(120);

/// The file a variable names (`JEJAK_WINDOWS_EXE`, `JEJAK_WINDOWS_MSI`), or `None` (the
/// test is skipped) unless CI requires it.
fn given_file(variable: &str) -> Option<PathBuf> {
    match std::env::var_os(variable).filter(|v| !v.is_empty()) {
        Some(path) => {
            let path = PathBuf::from(path);
            assert!(
                path.is_file(),
                "{variable}={} is not a file",
                path.display()
            );
            Some(path)
        }
        None if std::env::var("JEJAK_REQUIRE_WINE").is_ok_and(|v| v == "1") => {
            panic!("JEJAK_REQUIRE_WINE=1 but {variable} is not set")
        }
        None => {
            eprintln!(
                "SKIPPED: the Windows end-to-end tests need {variable} (scripts/build-windows.sh \
                 builds jejak.exe and the MSI) and wine; .ci/run sets it"
            );
            None
        }
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A wine prefix of the test's own, with a persistent wine server (so that processes of
/// the test share one "boot" until [`WinePc::reboot`]) and the Windows binary.
struct WinePc {
    exe: PathBuf,
    prefix: PathBuf,
    _dir: tempfile::TempDir,
}

impl WinePc {
    fn new(exe: PathBuf) -> WinePc {
        let dir = tempfile::tempdir().unwrap();
        let pc = WinePc {
            exe,
            prefix: dir.path().join("prefix"),
            _dir: dir,
        };
        // The first run makes the prefix (scripts/wine-run.sh) and its stand-in DLL.
        pc.run(&["--version"]).ok();
        pc.start_wineserver();
        pc
    }

    fn wineserver(&self, arg: &str) -> Command {
        let mut command = Command::new("wineserver");
        command
            .arg(arg)
            .env("WINEPREFIX", &self.prefix)
            .env("WINEDEBUG", "-all")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    }

    /// A persistent wine server, so that the prefix's processes share one "boot" until
    /// [`WinePc::reboot`]. A server still running (for a few seconds after the last
    /// process) is waited for first: `-p` only starts a new one.
    fn start_wineserver(&self) {
        let _ = self.wineserver("-w").status();
        let status = self.wineserver("-p").status().unwrap();
        assert!(status.success(), "wineserver -p: {status:?}");
        // Wine's own services start with the session's first process and keep its
        // standard handles: start them here with none of the test's pipes.
        let status = Command::new("wine")
            .args(["cmd.exe", "/c", "exit"])
            .env("WINEPREFIX", &self.prefix)
            .env("WINEDEBUG", "-all")
            .env("WINEDLLOVERRIDES", "bcryptprimitives=n")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "wine cmd /c exit: {status:?}");
    }

    /// The PC restarts: every process of the prefix and its wine server end, and with
    /// the server the volatile registry key that names the boot.
    fn reboot(&self) {
        let _ = self.wineserver("-k").status();
        self.start_wineserver();
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = bare_command();
        // bare_command names the Linux binary; keep its cleaned environment, run wine.
        let mut wine = Command::new(repo().join("scripts/wine-run.sh"));
        for (key, value) in command.get_envs() {
            match value {
                Some(value) => wine.env(key, value),
                None => wine.env_remove(key),
            };
        }
        command = wine;
        command
            .arg(&self.exe)
            .args(args)
            .env("JEJAK_WINE_PREFIX", &self.prefix)
            .env("JEJAK_LANG", "en")
            // Wine says a user is always logged on: the seat is tested with recorded
            // events instead (login.rs, windows_service.rs).
            .env("JEJAK_LOGIN_WATCH", "false");
        command
    }

    fn run(&self, args: &[&str]) -> Run {
        run_command(self.command(args), WINE_DEADLINE)
    }

    fn sessions(&self) -> Vec<Value> {
        let listed = self.run(&["--format", "json", "session", "list", "--limit", "100"]);
        listed.ok().json().as_array().unwrap().clone()
    }

    /// The agent with a fast heartbeat and its check-in page on `port`; its log (JSON
    /// lines) goes to `log`.
    fn spawn_agent(&self, port: u16, log: &Path) -> ChildGuard {
        let mut command = self.command(&["agent"]);
        command
            .env("JEJAK_CHECKIN_PORT", port.to_string())
            .env("JEJAK_HEARTBEAT_SECS", "1")
            .env("JEJAK_HEARTBEAT_EVENT_EVERY", "1")
            .env("JEJAK_CRASH_GRACE_SECS", "2")
            .env("JEJAK_PROBE_SECS", "1")
            .env("JEJAK_SYNC_SECS", "3600")
            .env("JEJAK_LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap());
        ChildGuard::spawn(&mut command)
    }
}

impl Drop for WinePc {
    fn drop(&mut self) {
        let _ = self.wineserver("-k").status();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_log(log: &Path, what: &str) -> String {
    poll_until(
        &format!("the agent's log to say {what:?}"),
        WINE_DEADLINE,
        || {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            text.lines().find(|l| l.contains(what)).map(str::to_string)
        },
    )
}

/// The district server: `jejak server run` (the Linux binary) on 127.0.0.1.
struct District {
    db: PathBuf,
    url: String,
    _server: ChildGuard,
    _dir: tempfile::TempDir,
}

impl District {
    fn server_json(db: &Path, args: &[&str]) -> Value {
        let mut command = bare_command();
        command
            .args(["--lang", "en", "--format", "json", "server", "--database"])
            .arg(format!("sqlite:{}", db.display()))
            .args(args);
        run_command(command, support::COMMAND_DEADLINE).ok().json()
    }

    /// Starts a server with one library and one PC; returns it with the PC's token.
    fn start() -> (District, String) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("district.db");
        Self::server_json(&db, &["init"]);
        Self::server_json(
            &db,
            &[
                "add-library",
                "dermaji",
                "--name",
                "Perpustakaan Desa Dermaji",
            ],
        );
        let token = Self::server_json(
            &db,
            &["add-device", "--library", "dermaji", "--pc", "pc-01"],
        )["token"]
            .as_str()
            .unwrap()
            .to_string();
        let (server, url) = support::spawn_server(&db);
        (
            District {
                db,
                url,
                _server: server,
                _dir: dir,
            },
            token,
        )
    }

    /// The ids (simple form) and revisions of the sessions the server holds for the PC.
    fn sessions(&self) -> Vec<(String, i64)> {
        let conn = rusqlite::Connection::open_with_flags(
            &self.db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let mut stmt = conn
            .prepare("SELECT id, revision FROM sessions_v WHERE library = 'dermaji' AND pc = 'pc-01' ORDER BY id")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }
}

/// One check-in through the page, as a patron's browser posts it.
fn check_in(port: u16) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap();
        let page = http.get(format!("{base}/")).send().await.unwrap();
        let cookies: Vec<String> = page
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .map(str::to_string)
            .collect();
        let body = page.text().await.unwrap();
        let marker = "name=\"csrf\" value=\"";
        let at = body.find(marker).expect("the check-in form") + marker.len();
        let csrf = &body[at..at + 64];
        let answer = http
            .post(format!("{base}/mulai"))
            .header("Origin", &base)
            .header("Cookie", cookies.join("; "))
            .form(&[
                ("csrf", csrf),
                ("purpose", "ekonomi"),
                ("gender", "L"),
                ("age", "dewasa"),
                ("group_size", "1"),
            ])
            .send()
            .await
            .unwrap();
        let status = answer.status().as_u16();
        assert_eq!(
            status,
            303,
            "the check-in: {}",
            answer.text().await.unwrap()
        );
    });
}

fn end_reasons(sessions: &[Value]) -> Vec<String> {
    sessions
        .iter()
        .map(|s| s["end_reason"].as_str().unwrap_or("open").to_string())
        .collect()
}

#[test]
fn the_windows_build_records_recovers_and_syncs_every_session_once() {
    let Some(exe) = given_file("JEJAK_WINDOWS_EXE") else {
        return;
    };
    let (district, token) = District::start();
    let pc = WinePc::new(exe);

    // Set up as the README's Windows section says, in the default data folder.
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
            &district.url,
            "--token",
            &token,
            "--pin",
            "246810",
        ])
        .ok();
    assert!(
        init.stdout.contains(r"C:\ProgramData\Jejak"),
        "the service's data folder: {}",
        init.stdout
    );
    assert!(
        pc.prefix
            .join("drive_c/ProgramData/Jejak/jejak.db")
            .is_file(),
        "the store is in %ProgramData%\\Jejak"
    );

    // A session from the CLI, started and ended.
    let started = pc
        .run(&[
            "session",
            "start",
            "--purpose",
            "pendidikan",
            "--gender",
            "P",
            "--age",
            "pemuda",
        ])
        .ok();
    assert!(
        support::parse_session_id(&started.stdout).is_some(),
        "{}",
        started.stdout
    );
    pc.run(&["session", "end"]).ok();

    // The agent, and a patron checking in at its page.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = dir.path().join("agent-1.log");
    let mut agent = pc.spawn_agent(port, &log);
    wait_for_log(&log, "check-in page ready");
    check_in(port);
    let open = pc.sessions();
    assert_eq!(end_reasons(&open), ["open", "logout"], "{open:?}");
    let checked_in = open[0]["id"].as_str().unwrap().to_string();
    assert_eq!(open[0]["purposes"], serde_json::json!(["ekonomi"]));

    // Killed hard in the same boot: the next start closes it as a crash.
    wait_for_log(&log, "heartbeat recorded");
    agent.kill9();
    std::thread::sleep(Duration::from_secs(3));
    let log = dir.path().join("agent-2.log");
    let mut agent = pc.spawn_agent(port, &log);
    wait_for_log(&log, "closed a session an earlier run left open");
    let after_crash = pc.sessions();
    assert_eq!(after_crash[0]["id"].as_str(), Some(checked_in.as_str()));
    assert_eq!(after_crash[0]["end_reason"], "crash", "{after_crash:?}");

    // Another patron; then the power goes (the wine server dies with everything in it).
    check_in(port);
    wait_for_log(&log, "heartbeat recorded");
    agent.kill9();
    pc.reboot();
    let log = dir.path().join("agent-3.log");
    let agent = pc.spawn_agent(port, &log);
    wait_for_log(&log, "closed a session an earlier run left open");
    let after_reboot = pc.sessions();
    assert_eq!(
        end_reasons(&after_reboot),
        ["power_loss", "crash", "logout"],
        "{after_reboot:?}"
    );
    drop(agent);

    // Sync to the Linux district server: every session, once, at its last revision. (The
    // agent, enrolled at init, may have sent some already: then less or nothing is left.)
    let sync = pc.run(&["sync"]);
    assert!(
        matches!(sync.code(), Some(0 | 4)),
        "sync: {:?} {} {}",
        sync.code(),
        sync.stdout,
        sync.stderr
    );
    let held = district.sessions();
    let made: BTreeSet<(String, i64)> = after_reboot
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().replace('-', ""),
                s["revision"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(held.len(), made.len(), "held {held:?}, made {made:?}");
    assert_eq!(held.into_iter().collect::<BTreeSet<_>>(), made);
    // Again: nothing to send, and the server holds the same.
    pc.run(&["sync"]).expect_code(4);
    assert_eq!(district.sessions().len(), made.len());
    let status = pc.run(&["--format", "json", "status"]).ok().json();
    assert_eq!(status["store"]["pending_changes"], 0, "{status}");
    let rollups = District::server_json(&district.db, &["check-rollups"]);
    assert_eq!(rollups["differences"], 0, "{rollups}");
}

/// `msiinfo export MSI TABLE`: the table's rows (after its three header lines), split
/// into columns.
fn msi_table(msi: &Path, table: &str) -> Vec<Vec<String>> {
    let output = Command::new("msiinfo")
        .args(["export"])
        .arg(msi)
        .arg(table)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "msiinfo export {table}: {output:?}"
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .skip(3)
        .map(|line| line.split('\t').map(str::to_string).collect())
        .collect()
}

/// What the MSI holds, as msitools reads it: the program, the service and how it is
/// controlled and configured, the logon entry, the shortcuts, the PATH entry, and
/// nothing that would remove the data folder.
fn inspect_msi(msi: &Path) {
    let files: Vec<String> = msi_table(msi, "File")
        .into_iter()
        .map(|r| r[2].clone())
        .collect();
    for name in [
        "jejak.exe",
        "Jejak — isi kunjungan.url",
        "Jejak — pustakawan.url",
        "BACA-SAYA.txt",
    ] {
        assert!(files.iter().any(|f| f == name), "{name} in {files:?}");
    }
    let services = msi_table(msi, "ServiceInstall");
    assert_eq!(services.len(), 1, "{services:?}");
    let service = &services[0];
    // Name, type 16 (own process), start 2 (automatic), LocalSystem, the arguments.
    assert_eq!(service[1], "Jejak");
    assert_eq!(service[3], "16");
    assert_eq!(service[4], "2");
    assert_eq!(service[8], "LocalSystem");
    assert_eq!(service[10], "agent --service");
    let control = msi_table(msi, "ServiceControl");
    // 1 start at install, 2 | 32 stop at install and uninstall, 128 delete at uninstall.
    assert_eq!(control[0][2], "163", "{control:?}");
    let delayed = msi_table(msi, "MsiServiceConfig");
    assert_eq!(
        &delayed[0][1..5],
        ["Jejak", "5", "3", "1"],
        "delayed start: {delayed:?}"
    );
    let restart = msi_table(msi, "MsiServiceConfigFailureActions");
    assert_eq!(
        restart[0][6], "1[~]1[~]1",
        "restart three times: {restart:?}"
    );
    let registry = msi_table(msi, "Registry");
    assert!(
        registry
            .iter()
            .any(|r| r[2].ends_with(r"CurrentVersion\Run")
                && r[3] == "JejakCheckin"
                && r[4].contains("jejak.exe\" logon")),
        "the logon entry: {registry:?}"
    );
    let environment = msi_table(msi, "Environment");
    assert_eq!(
        &environment[0][1..3],
        ["=-*PATH", "[~];[INSTALLDIR]"],
        "{environment:?}"
    );
    let sequence: Vec<String> = msi_table(msi, "InstallExecuteSequence")
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    for action in [
        "InstallServices",
        "MsiConfigureServices",
        "StartServices",
        "WriteEnvironmentStrings",
    ] {
        assert!(
            sequence.iter().any(|a| a == action),
            "{action} in {sequence:?}"
        );
    }
    let removes = msi_table(msi, "RemoveFile");
    assert!(
        removes.iter().all(|r| !r.join(" ").contains("ProgramData")),
        "nothing removes the data folder: {removes:?}"
    );
}

fn wine_tool(pc: &WinePc, args: &[&str]) -> std::process::Output {
    Command::new("wine")
        .args(args)
        .env("WINEPREFIX", &pc.prefix)
        .env("WINEDEBUG", "-all")
        .env("WINEDLLOVERRIDES", "bcryptprimitives=n")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn service_state(pc: &WinePc) -> Option<String> {
    let query = wine_tool(pc, &["sc", "query", "Jejak"]);
    let text = String::from_utf8_lossy(&query.stdout).into_owned();
    text.lines()
        .find(|l| l.contains("STATE"))
        .and_then(|l| l.split_whitespace().last())
        .map(str::to_string)
}

#[test]
fn the_msi_installs_a_service_that_waits_for_setup_records_syncs_and_uninstalls_keeping_data() {
    let Some(msi) = given_file("JEJAK_WINDOWS_MSI") else {
        return;
    };
    let Some(exe) = given_file("JEJAK_WINDOWS_EXE") else {
        return;
    };
    inspect_msi(&msi);

    let (district, token) = District::start();
    let pc = WinePc::new(exe);
    let program_data = pc.prefix.join("drive_c/ProgramData/Jejak");
    // An administrator's settings before setup (kept by `jejak init`): a free port for
    // the page, and fast timers for the test.
    let port = free_port();
    std::fs::create_dir_all(&program_data).unwrap();
    std::fs::write(
        program_data.join("agent.toml"),
        format!(
            "checkin_port = {port}\nheartbeat_secs = 1\nprobe_secs = 1\nsync_secs = 2\nlogin_watch = false\n"
        ),
    )
    .unwrap();

    let install = wine_tool(&pc, &["msiexec", "/i", msi.to_str().unwrap(), "/qn"]);
    assert!(install.status.success(), "msiexec /i: {install:?}");
    let installed = pc.prefix.join("drive_c/Program Files/Jejak/jejak.exe");
    assert!(installed.is_file(), "the program in Program Files");
    // Started, and waiting for `jejak init` rather than failing.
    poll_until("the service to run", WINE_DEADLINE, || {
        (service_state(&pc).as_deref() == Some("RUNNING")).then_some(())
    });
    let logs = program_data.join("logs");
    let log_text = || {
        std::fs::read_dir(&logs)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                    .collect::<String>()
            })
            .unwrap_or_default()
    };
    poll_until("the service to wait for setup", WINE_DEADLINE, || {
        log_text()
            .contains("waiting for this PC to be set up")
            .then_some(())
    });

    // Setup from an administrator's prompt, with the program the MSI installed.
    let setup = Command::new("wine")
        .arg(&installed)
        .args([
            "init",
            "--library",
            "dermaji",
            "--pc",
            "pc-01",
            "--server",
            &district.url,
        ])
        .args(["--token", &token, "--pin", "246810"])
        .env("WINEPREFIX", &pc.prefix)
        .env("WINEDEBUG", "-all")
        .env("WINEDLLOVERRIDES", "bcryptprimitives=n")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(setup.status.success(), "jejak init: {setup:?}");
    poll_until("the service's agent to start", WINE_DEADLINE, || {
        log_text().contains("check-in page ready").then_some(())
    });
    check_in(port);
    // The service syncs by itself: the server gets the open session.
    let held = poll_until("the service to sync the session", WINE_DEADLINE, || {
        let held = district.sessions();
        (!held.is_empty()).then_some(held)
    });
    assert_eq!(held.len(), 1, "{held:?}");

    // A stop closes the open session as `shutdown`.
    let stop = wine_tool(&pc, &["sc", "stop", "Jejak"]);
    assert!(stop.status.success(), "sc stop: {stop:?}");
    poll_until("the service to stop", WINE_DEADLINE, || {
        (service_state(&pc).as_deref() == Some("STOPPED")).then_some(())
    });
    let sessions = pc.sessions();
    assert_eq!(end_reasons(&sessions), ["shutdown"], "{sessions:?}");

    // Uninstall: service, program and entries go; the data stays.
    let remove = wine_tool(&pc, &["msiexec", "/x", msi.to_str().unwrap(), "/qn"]);
    assert!(remove.status.success(), "msiexec /x: {remove:?}");
    assert_eq!(service_state(&pc), None, "the service is gone");
    assert!(!installed.exists(), "the program is gone");
    let run_key = wine_tool(
        &pc,
        &[
            "reg",
            "query",
            r"HKLM\Software\Microsoft\Windows\CurrentVersion\Run",
        ],
    );
    assert!(!String::from_utf8_lossy(&run_key.stdout).contains("JejakCheckin"));
    for kept in ["jejak.db", "agent.toml", "patron.key", "librarian.pin"] {
        assert!(program_data.join(kept).is_file(), "{kept} is kept");
    }
    assert_eq!(pc.sessions().len(), 1, "the records are kept");
}
