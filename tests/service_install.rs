//! Running as a service (issue 6, "Must show"): `scripts/install-linux.sh --root DIR`
//! into a throwaway root, every file it creates checked for content, owner and mode; a
//! second run changes nothing; the agent is started from the command line of the unit
//! file it wrote (as the service's user when the test runs as root, as systemd would)
//! and must record heartbeats, serve the check-in page the autostart entry opens, and
//! stop cleanly on SIGTERM (and the server from its unit must answer as the Jejak
//! server); `uninstall-linux.sh` removes what was installed and keeps the data unless
//! `--purge`.
//!
//! `--root` never runs useradd, systemctl or chown outside the root, so the test is safe
//! on any machine. Owners are checked by number when the test runs as root (CI does);
//! otherwise the script runs with `--no-chown` and the owners are checked in the root's
//! own passwd and group files only, which the test says.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{COMMAND_DEADLINE, ChildGuard, JEJAK, Run, StoreView, poll_until, run_command};

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts")
        .join(name)
}

fn is_root() -> bool {
    jejak_agent::platform::is_elevated()
}

/// Runs one of the scripts with bash under a deadline.
fn run_script(name: &str, args: &[&str]) -> Run {
    let mut command = Command::new("bash");
    command.arg(script(name)).args(args);
    run_command(command, COMMAND_DEADLINE)
}

fn install(root: &Path) -> Run {
    let mut args = vec![
        "--root",
        root.to_str().unwrap(),
        "--binary",
        JEJAK,
        "--role",
        "both",
    ];
    if !is_root() {
        args.push("--no-chown");
    }
    run_script("install-linux.sh", &args).ok()
}

/// `name:x:uid:gid:…` entries of a passwd or group file.
fn ids(file: &Path) -> BTreeMap<String, (u32, Option<u32>)> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let id = fields.get(2)?.parse().ok()?;
            let second = fields.get(3).and_then(|g| g.parse().ok());
            Some((fields[0].to_string(), (id, second)))
        })
        .collect()
}

/// What one installed path must be.
struct Expect {
    path: &'static str,
    mode: u32,
    /// "root:root", "root:jejak" or "jejak:jejak".
    owner: &'static str,
    dir: bool,
}

const EXPECTED: &[Expect] = &[
    Expect {
        path: "/usr/local/bin/jejak",
        mode: 0o755,
        owner: "root:root",
        dir: false,
    },
    Expect {
        path: "/usr/local/sbin/jejak-admin",
        mode: 0o755,
        owner: "root:root",
        dir: false,
    },
    Expect {
        path: "/etc/jejak",
        mode: 0o770,
        owner: "root:jejak",
        dir: true,
    },
    Expect {
        path: "/etc/jejak/agent.toml",
        mode: 0o640,
        owner: "jejak:jejak",
        dir: false,
    },
    Expect {
        path: "/etc/jejak/agent.example.toml",
        mode: 0o644,
        owner: "root:root",
        dir: false,
    },
    Expect {
        path: "/etc/jejak/server.env",
        mode: 0o640,
        owner: "root:jejak",
        dir: false,
    },
    Expect {
        path: "/var/lib/jejak",
        mode: 0o700,
        owner: "jejak:jejak",
        dir: true,
    },
    Expect {
        path: "/var/lib/jejak-server",
        mode: 0o700,
        owner: "jejak:jejak",
        dir: true,
    },
    Expect {
        path: "/etc/systemd/system/jejak-agent.service",
        mode: 0o644,
        owner: "root:root",
        dir: false,
    },
    Expect {
        path: "/etc/systemd/system/jejak-server.service",
        mode: 0o644,
        owner: "root:root",
        dir: false,
    },
    Expect {
        path: "/etc/xdg/autostart/jejak-checkin.desktop",
        mode: 0o644,
        owner: "root:root",
        dir: false,
    },
];

fn at(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// Checks every expected path; returns the service user's uid and gid.
fn check_installed(root: &Path) -> (u32, u32) {
    let users = ids(&at(root, "/etc/passwd"));
    let groups = ids(&at(root, "/etc/group"));
    let (uid, gid) = users["jejak"];
    let gid = gid.unwrap();
    assert!(
        (100..1000).contains(&uid),
        "jejak is a system user: uid {uid}"
    );
    assert_eq!(
        groups["jejak"].0, gid,
        "the jejak group is the user's group"
    );
    let passwd = std::fs::read_to_string(at(root, "/etc/passwd")).unwrap();
    let entry = passwd.lines().find(|l| l.starts_with("jejak:")).unwrap();
    assert!(
        entry.ends_with(":/var/lib/jejak:/usr/sbin/nologin"),
        "no login shell: {entry}"
    );
    assert_eq!(
        passwd.lines().filter(|l| l.starts_with("jejak:")).count(),
        1
    );

    for expect in EXPECTED {
        let path = at(root, expect.path);
        let meta = std::fs::symlink_metadata(&path)
            .unwrap_or_else(|e| panic!("{} was not installed: {e}", expect.path));
        assert_eq!(meta.is_dir(), expect.dir, "{}", expect.path);
        assert_eq!(
            meta.permissions().mode() & 0o7777,
            expect.mode,
            "mode of {}",
            expect.path
        );
        if is_root() {
            let (want_uid, want_gid) = match expect.owner {
                "root:root" => (0, 0),
                "root:jejak" => (0, gid),
                "jejak:jejak" => (uid, gid),
                other => panic!("{other}"),
            };
            assert_eq!(
                (meta.uid(), meta.gid()),
                (want_uid, want_gid),
                "owner of {} should be {}",
                expect.path,
                expect.owner
            );
        }
    }
    assert_eq!(
        std::fs::read(at(root, "/usr/local/bin/jejak")).unwrap(),
        std::fs::read(JEJAK).unwrap(),
        "the binary is the one given"
    );

    for unit in ["jejak-agent.service", "jejak-server.service"] {
        let link = at(
            root,
            &format!("/etc/systemd/system/multi-user.target.wants/{unit}"),
        );
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            PathBuf::from(format!("/etc/systemd/system/{unit}")),
            "{unit} is enabled for multi-user.target, pointing inside the target system"
        );
    }

    let agent =
        std::fs::read_to_string(at(root, "/etc/systemd/system/jejak-agent.service")).unwrap();
    for line in [
        "ExecStart=/usr/local/bin/jejak --data-dir /var/lib/jejak agent",
        "Environment=JEJAK_CONFIG=/etc/jejak/agent.toml",
        "Restart=on-failure",
        "RestartPreventExitStatus=2",
        "User=jejak",
        "Group=jejak",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/jejak",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "UMask=0077",
        "LimitNOFILE=65536",
        "WantedBy=multi-user.target",
    ] {
        assert!(
            agent.lines().any(|l| l == line),
            "agent unit lacks {line:?}:\n{agent}"
        );
    }
    let server =
        std::fs::read_to_string(at(root, "/etc/systemd/system/jejak-server.service")).unwrap();
    for line in [
        "ExecStart=/usr/local/bin/jejak server run --listen ${JEJAK_LISTEN}",
        "EnvironmentFile=/etc/jejak/server.env",
        "Restart=on-failure",
        "User=jejak",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/jejak-server",
        "LimitNOFILE=65536",
        "WantedBy=multi-user.target",
    ] {
        assert!(
            server.lines().any(|l| l == line),
            "server unit lacks {line:?}:\n{server}"
        );
    }
    let env = std::fs::read_to_string(at(root, "/etc/jejak/server.env")).unwrap();
    assert!(env.contains("JEJAK_DATABASE=sqlite:/var/lib/jejak-server/"));
    assert!(env.contains("JEJAK_LISTEN="));

    let desktop =
        std::fs::read_to_string(at(root, "/etc/xdg/autostart/jejak-checkin.desktop")).unwrap();
    for line in [
        "[Desktop Entry]",
        "Type=Application",
        "Exec=xdg-open http://127.0.0.1:7878/",
        "Terminal=false",
    ] {
        assert!(
            desktop.lines().any(|l| l == line),
            "autostart entry lacks {line:?}:\n{desktop}"
        );
    }
    assert!(desktop.lines().any(|l| l.starts_with("Name=")));

    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/agent.example.toml"),
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(at(root, "/etc/jejak/agent.example.toml")).unwrap(),
        example
    );
    (uid, gid)
}

/// Every path under `root` with its mode, owner, size and link target, to compare two
/// installs.
fn snapshot(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for path in support::files_under(root) {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        out.push(format!(
            "{} {:o} {}:{} {} {:?} {}",
            path.strip_prefix(root).unwrap().display(),
            meta.permissions().mode(),
            meta.uid(),
            meta.gid(),
            meta.len(),
            std::fs::read_link(&path).ok(),
            if meta.is_file() && meta.len() < 1_000_000 {
                String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned()
            } else {
                String::new()
            }
        ));
    }
    out.sort();
    out
}

/// The value of `Key=` lines of a unit file's `[Service]` section.
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_string)
        .collect()
}

/// Rewrites an absolute path of the target system to where it is in the throwaway root.
fn rooted(root: &Path, word: &str) -> String {
    if word.starts_with('/') {
        at(root, word).display().to_string()
    } else {
        word.to_string()
    }
}

/// A command run as the service's user when the test is root (as the unit's `User=`
/// would), as the test's own user otherwise.
fn as_service_user(program: &str, uid: u32, gid: u32) -> Command {
    if is_root() {
        let mut command = Command::new("setpriv");
        command
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .arg("--clear-groups")
            .arg("--")
            .arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn clean_env(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("JEJAK_") {
            command.env_remove(key);
        }
    }
}

/// Sets the PC up the way `jejak-admin init` does (as the service's user, umask 027),
/// then starts the agent from the unit's own `Environment=` and `ExecStart=` lines with
/// the root prefix put in front of their paths; it must heart-beat into the installed
/// data directory and stop cleanly on SIGTERM.
fn start_agent_from_unit(root: &Path, uid: u32, gid: u32) {
    let config = at(root, "/etc/jejak/agent.toml");
    let data = at(root, "/var/lib/jejak");
    let bin = at(root, "/usr/local/bin/jejak");
    let mut init = as_service_user("sh", uid, gid);
    init.args(["-c", "umask 027; exec \"$@\"", "sh"])
        .arg(&bin)
        .arg("--data-dir")
        .arg(&data)
        .args(["init", "--library", "dermaji", "--pc", "pc-01"]);
    clean_env(&mut init);
    init.env("JEJAK_CONFIG", &config);
    let run = run_command(init, COMMAND_DEADLINE).ok();
    assert!(run.stdout.contains("dermaji/pc-01"), "{}", run.stdout);
    let written = std::fs::read_to_string(&config).unwrap();
    assert!(
        written.contains("library = \"dermaji\""),
        "init wrote the configuration in /etc/jejak: {written}"
    );
    assert!(
        !data.join("agent.toml").exists(),
        "no second configuration in the data directory"
    );
    let config_meta = std::fs::metadata(&config).unwrap();
    assert_eq!(config_meta.permissions().mode() & 0o777, 0o640);
    if is_root() {
        assert_eq!(config_meta.uid(), uid, "init ran as the service's user");
        for file in ["jejak.db", "patron.key"] {
            assert_eq!(
                std::fs::metadata(data.join(file)).unwrap().uid(),
                uid,
                "{file} belongs to the service's user"
            );
        }
    }

    let unit =
        std::fs::read_to_string(at(root, "/etc/systemd/system/jejak-agent.service")).unwrap();
    let exec = unit_values(&unit, "ExecStart");
    assert_eq!(exec.len(), 1, "one ExecStart: {exec:?}");
    let words: Vec<String> = exec[0]
        .split_whitespace()
        .map(|w| rooted(root, w))
        .collect();
    let mut agent = as_service_user(&words[0], uid, gid);
    agent.args(&words[1..]);
    clean_env(&mut agent);
    for assignment in unit_values(&unit, "Environment") {
        let (key, value) = assignment.split_once('=').unwrap();
        agent.env(key, rooted(root, value));
    }
    // Faster heartbeats than the defaults and a free port for the check-in page (7878
    // may be taken by another test), through the environment as an administrator would
    // override them; everything else is the unit's.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    agent
        .env("JEJAK_CHECKIN_PORT", port.to_string())
        .env("JEJAK_HEARTBEAT_SECS", "0.2")
        .env("JEJAK_HEARTBEAT_EVENT_EVERY", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = ChildGuard::spawn(&mut agent);
    // `jejak status`, as the service's user, is how an administrator sees the agent is
    // alive: the last heartbeat must appear and then move on. (Reading the store as root
    // here could leave root-owned WAL files the agent cannot open.)
    let last_heartbeat = |child: &mut ChildGuard| {
        if let Some(status) = child.child_mut().try_wait().unwrap() {
            panic!("the agent started from the unit exited early: {status}");
        }
        let mut status = as_service_user(bin.to_str().unwrap(), uid, gid);
        clean_env(&mut status);
        status
            .env("JEJAK_CONFIG", &config)
            .arg("--data-dir")
            .arg(&data)
            .args(["--format", "json", "status"]);
        let json = run_command(status, COMMAND_DEADLINE).ok().json();
        json["store"]["last_heartbeat"].as_str().map(str::to_string)
    };
    let first = poll_until(
        "the agent started from the unit to record a heartbeat",
        Duration::from_secs(30),
        || last_heartbeat(&mut child),
    );
    poll_until(
        "the agent started from the unit to keep heart-beating",
        Duration::from_secs(30),
        || last_heartbeat(&mut child).filter(|t| *t != first),
    );
    // The page the autostart entry opens is served by the agent the unit started.
    let page = poll_until(
        "the check-in page to answer",
        Duration::from_secs(30),
        || http_get(port, "/"),
    );
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(
        page.to_ascii_lowercase()
            .contains("content-type: text/html"),
        "{page}"
    );
    child.signal("TERM");
    let status = child
        .wait_deadline(COMMAND_DEADLINE)
        .expect("the agent stops on SIGTERM");
    assert!(status.success(), "a clean stop on SIGTERM: {status}");
    if is_root() {
        for file in support::files_under(&data) {
            assert_eq!(
                std::fs::metadata(&file).unwrap().uid(),
                uid,
                "{} was written by the service's user",
                file.display()
            );
        }
    }
    // jejak doctor as the service's user (what `sudo jejak-admin doctor` runs) finds
    // the installed setup sound and names the configuration in /etc/jejak.
    let mut doctor = as_service_user(bin.to_str().unwrap(), uid, gid);
    clean_env(&mut doctor);
    doctor
        .env("JEJAK_CONFIG", &config)
        .arg("--data-dir")
        .arg(&data)
        .args(["--lang", "en", "--format", "json", "doctor"]);
    let report = run_command(doctor, COMMAND_DEADLINE);
    assert_eq!(
        report.code(),
        Some(0),
        "{}\n{}",
        report.stdout,
        report.stderr
    );
    let report = report.json();
    let checks = report["checks"].as_array().unwrap();
    let status = |name: &str| {
        checks.iter().find(|c| c["check"] == name).unwrap()["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(status("data_dir"), "ok", "{report:#}");
    assert_eq!(status("store"), "ok", "{report:#}");
    assert_eq!(
        status("agent"),
        "ok",
        "the agent heart-beat a moment ago: {report:#}"
    );
    assert!(
        report["config"]
            .as_str()
            .unwrap()
            .ends_with("/etc/jejak/agent.toml"),
        "{report:#}"
    );

    let view = StoreView::open(&data.join("jejak.db"));
    assert_eq!(view.integrity_check(), "ok");
    assert!(
        view.count(
            "SELECT COUNT(*) FROM changes WHERE json_extract(body, '$.data.kind') = 'heartbeat'"
        ) >= 2,
        "heartbeat pc events were recorded"
    );
}

/// Starts the district server from its unit the same way: `EnvironmentFile=` read as
/// systemd reads it, `${JEJAK_LISTEN}` expanded in `ExecStart=`, paths put under the
/// root; it must answer `/healthz` as the Jejak server, keep its database in the
/// installed data folder and stop cleanly on SIGTERM.
fn start_server_from_unit(root: &Path, uid: u32, gid: u32) {
    let unit =
        std::fs::read_to_string(at(root, "/etc/systemd/system/jejak-server.service")).unwrap();
    let env_file = unit_values(&unit, "EnvironmentFile");
    assert_eq!(env_file.len(), 1, "{unit}");
    let mut env = BTreeMap::new();
    for line in std::fs::read_to_string(at(root, &env_file[0]))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (key, value) = line.split_once('=').unwrap();
        let value = match value.strip_prefix("sqlite:") {
            Some(path) => format!("sqlite:{}", rooted(root, path)),
            None => rooted(root, value),
        };
        env.insert(key.to_string(), value);
    }
    assert!(env.contains_key("JEJAK_DATABASE"), "{env:?}");
    assert!(env.contains_key("JEJAK_LISTEN"), "{env:?}");
    // A free port instead of the installed 0.0.0.0:8080.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    env.insert("JEJAK_LISTEN".into(), format!("127.0.0.1:{port}"));
    let exec = unit_values(&unit, "ExecStart");
    assert_eq!(exec.len(), 1, "{exec:?}");
    let words: Vec<String> = exec[0]
        .split_whitespace()
        .map(|w| match w {
            "${JEJAK_LISTEN}" => env["JEJAK_LISTEN"].clone(),
            other => rooted(root, other),
        })
        .collect();
    let mut server = as_service_user(&words[0], uid, gid);
    server.args(&words[1..]);
    clean_env(&mut server);
    server
        .envs(&env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = ChildGuard::spawn(&mut server);
    let health = poll_until(
        "the server started from the unit to answer /healthz",
        Duration::from_secs(30),
        || {
            if let Some(status) = child.child_mut().try_wait().unwrap() {
                panic!("the server started from the unit exited early: {status}");
            }
            http_get(port, "/healthz")
        },
    );
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains("\"jejak-server\""), "{health}");
    child.signal("TERM");
    let status = child
        .wait_deadline(COMMAND_DEADLINE)
        .expect("the server stops on SIGTERM");
    assert!(status.success(), "a clean stop on SIGTERM: {status}");
    let db = at(root, "/var/lib/jejak-server/jejak-server.db");
    let meta = std::fs::metadata(&db).expect("the database is in /var/lib/jejak-server");
    if is_root() {
        assert_eq!(meta.uid(), uid, "the server ran as the service's user");
    }
}

/// A plain `GET` on 127.0.0.1:`port`; `None` while nothing answers.
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    (!answer.is_empty()).then_some(answer)
}

#[test]
fn the_install_script_builds_a_throwaway_root_the_agent_runs_from_it_and_uninstall_cleans_up() {
    let work = tempfile::Builder::new()
        .prefix("jejak-install-")
        .tempdir()
        .unwrap();
    // The service's user must be able to reach the root, as it reaches / on a real PC.
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = work.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    if !is_root() {
        eprintln!(
            "NOTE: not running as root: installed with --no-chown, owners checked only in the root's passwd and group files"
        );
    }

    let first = install(&root);
    assert!(
        first.stderr.contains("installed (both)"),
        "{}",
        first.stderr
    );
    let (uid, gid) = check_installed(&root);
    let before = snapshot(&root);

    let second = install(&root);
    assert!(
        !second.stderr.contains("added the system user"),
        "the user is made once: {}",
        second.stderr
    );
    check_installed(&root);
    assert_eq!(snapshot(&root), before, "a second install changes nothing");

    verify_units(&root);
    start_agent_from_unit(&root, uid, gid);
    start_server_from_unit(&root, uid, gid);

    // Installing again after the PC was set up keeps its configuration.
    install(&root);
    let config = std::fs::read_to_string(at(&root, "/etc/jejak/agent.toml")).unwrap();
    assert!(config.contains("library = \"dermaji\""), "{config}");

    let removed = run_script("uninstall-linux.sh", &["--root", root.to_str().unwrap()]).ok();
    assert!(
        removed.stderr.contains("kept /var/lib/jejak"),
        "{}",
        removed.stderr
    );
    for gone in [
        "/usr/local/bin/jejak",
        "/usr/local/sbin/jejak-admin",
        "/etc/systemd/system/jejak-agent.service",
        "/etc/systemd/system/jejak-server.service",
        "/etc/systemd/system/multi-user.target.wants/jejak-agent.service",
        "/etc/xdg/autostart/jejak-checkin.desktop",
        "/etc/jejak/agent.example.toml",
    ] {
        assert!(
            std::fs::symlink_metadata(at(&root, gone)).is_err(),
            "{gone} is left after uninstall"
        );
    }
    assert!(
        at(&root, "/var/lib/jejak/jejak.db").is_file(),
        "the records stay"
    );
    assert!(
        at(&root, "/etc/jejak/agent.toml").is_file(),
        "the setup stays"
    );
    assert!(ids(&at(&root, "/etc/passwd")).contains_key("jejak"));

    // Installing over kept data carries on with it.
    install(&root);
    check_installed(&root);
    assert!(at(&root, "/var/lib/jejak/jejak.db").is_file());

    // The autostart entry opens the page at the port the agent is configured with.
    let config_path = at(&root, "/etc/jejak/agent.toml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    std::fs::write(&config_path, format!("{config}checkin_port = 8123\n")).unwrap();
    install(&root);
    let desktop =
        std::fs::read_to_string(at(&root, "/etc/xdg/autostart/jejak-checkin.desktop")).unwrap();
    assert!(
        desktop.contains("Exec=xdg-open http://127.0.0.1:8123/"),
        "{desktop}"
    );

    run_script(
        "uninstall-linux.sh",
        &["--root", root.to_str().unwrap(), "--purge"],
    )
    .ok();
    for gone in ["/var/lib/jejak", "/var/lib/jejak-server", "/etc/jejak"] {
        assert!(!at(&root, gone).exists(), "{gone} is left after --purge");
    }
    assert!(!ids(&at(&root, "/etc/passwd")).contains_key("jejak"));
    assert!(!ids(&at(&root, "/etc/group")).contains_key("jejak"));
    assert!(ids(&at(&root, "/etc/passwd")).contains_key("root"));
}

/// `systemd-analyze verify` on the units (with the binary's path pointing into the
/// root, since verify checks that it exists): any warning about a key fails the test.
fn verify_units(root: &Path) {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: systemd-analyze is not installed; the units were not verified");
        return;
    }
    let dir = root.parent().unwrap().join("verify");
    std::fs::create_dir_all(&dir).unwrap();
    let bin = at(root, "/usr/local/bin/jejak");
    let mut command = Command::new("systemd-analyze");
    command.args(["verify", "--man=no"]);
    for unit in ["jejak-agent.service", "jejak-server.service"] {
        let text = std::fs::read_to_string(at(root, &format!("/etc/systemd/system/{unit}")))
            .unwrap()
            .replace("/usr/local/bin/jejak", bin.to_str().unwrap());
        std::fs::write(dir.join(unit), text).unwrap();
        command.arg(dir.join(unit));
    }
    let run = run_command(command, COMMAND_DEADLINE);
    assert!(
        run.status.success() && run.stderr.trim().is_empty(),
        "systemd-analyze verify: {}\n{}",
        run.stdout,
        run.stderr
    );
}

#[test]
fn the_scripts_refuse_bad_options_and_explain_themselves() {
    for name in ["install-linux.sh", "uninstall-linux.sh"] {
        let help = run_script(name, &["--help"]).ok();
        assert!(
            help.stdout.contains("--root"),
            "{name} --help: {}",
            help.stdout
        );
        let bad = run_script(name, &["--frobnicate"]).expect_code(2);
        assert!(bad.stderr.contains("unknown option"), "{}", bad.stderr);
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let role = run_script(
        "install-linux.sh",
        &[
            "--root",
            root,
            "--binary",
            JEJAK,
            "--role",
            "desk",
            "--no-chown",
        ],
    )
    .expect_code(2);
    assert!(role.stderr.contains("--role"), "{}", role.stderr);
    let no_chown =
        run_script("install-linux.sh", &["--binary", JEJAK, "--no-chown"]).expect_code(2);
    assert!(no_chown.stderr.contains("--root"), "{}", no_chown.stderr);
    let missing = run_script(
        "install-linux.sh",
        &[
            "--root",
            root,
            "--binary",
            "/nonexistent/jejak",
            "--no-chown",
        ],
    )
    .expect_code(2);
    assert!(
        missing.stderr.contains("not an executable"),
        "{}",
        missing.stderr
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "a refused install writes nothing"
    );
}

/// The scripts pass shellcheck where it is installed (CI installs it).
#[test]
fn the_scripts_pass_shellcheck() {
    let Ok(version) = Command::new("shellcheck").arg("--version").output() else {
        if std::env::var_os("JEJAK_REQUIRE_SHELLCHECK").is_some() {
            panic!("shellcheck is required (JEJAK_REQUIRE_SHELLCHECK) but not installed");
        }
        eprintln!("SKIPPED: shellcheck is not installed");
        return;
    };
    assert!(version.status.success());
    let mut command = Command::new("shellcheck");
    command.args([script("install-linux.sh"), script("uninstall-linux.sh")]);
    let run = run_command(command, COMMAND_DEADLINE);
    assert!(run.status.success(), "shellcheck:\n{}", run.stdout);
}
