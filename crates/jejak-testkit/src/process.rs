//! Child processes of the tests: [`ChildGuard`], which never leaves one behind, and
//! [`DistrictProcess`], `jejak server run` on a free port with its log collected.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A child process that is killed with SIGKILL and reaped when dropped.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
}

impl ChildGuard {
    /// Starts `command`; panics naming it when it cannot start.
    pub fn spawn(command: &mut Command) -> ChildGuard {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        ChildGuard { child: Some(child) }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// The child itself (to take its pipes).
    pub fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("a child not yet dropped")
    }

    /// SIGKILL, then reap. Returns the exit status (a signal, normally).
    pub fn kill9(&mut self) -> ExitStatus {
        let child = self.child_mut();
        // An error here means the process has already exited; `wait` still reaps it.
        let _ = child.kill();
        child.wait().expect("the killed child is reaped")
    }

    /// Sends a signal by name (`TERM`, `INT`) with the system's `kill` command, so the
    /// tests need no `unsafe` or libc. The child is not reaped until waited for, so its
    /// pid cannot have been reused.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.id().to_string())
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
        assert!(status.success(), "kill -{name} {} failed", self.id());
    }

    /// Waits for the process to exit, for at most `deadline`.
    pub fn wait_deadline(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let child = self.child_mut();
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            if let Some(status) = child.try_wait().expect("the child can be waited for") {
                return Some(status);
            }
            if start.elapsed() > deadline {
                return None;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How long a district server may take to say where it listens (a cold start on a busy
/// 2-core machine, or a PostgreSQL server's migrations).
const LISTEN_DEADLINE: Duration = Duration::from_secs(60);

/// `jejak server run --listen 127.0.0.1:0` as a child process: its URL once it says
/// where it listens, and every line it writes (stdout and stderr) collected.
#[derive(Debug)]
pub struct DistrictProcess {
    /// The process, killed when this is dropped.
    pub child: ChildGuard,
    /// `http://127.0.0.1:PORT` (or `https://`).
    pub url: String,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    log: Arc<Mutex<Vec<String>>>,
    later: mpsc::Receiver<String>,
}

impl DistrictProcess {
    /// Starts `command` (the `jejak` binary with `server --database … run --listen
    /// 127.0.0.1:0` and whatever else the test needs), reads its stdout and stderr line
    /// by line, and waits until it says where it listens.
    pub fn start(mut command: Command) -> DistrictProcess {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = ChildGuard::spawn(&mut command);
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let stdout = child.child_mut().stdout.take().expect("a piped stdout");
        let stderr = child.child_mut().stderr.take().expect("a piped stderr");
        for pipe in [
            Box::new(stderr) as Box<dyn std::io::Read + Send>,
            Box::new(stdout),
        ] {
            let (tx, lines) = (tx.clone(), log.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    lines
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .push(line.clone());
                    let _ = tx.send(line);
                }
            });
        }
        drop(tx);
        let deadline = Instant::now() + LISTEN_DEADLINE;
        let url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                panic!(
                    "the server did not say where it listens; its log:\n{}",
                    log.lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .join("\n")
                );
            };
            if let Some(url) = listening_url(&line) {
                break url;
            }
        };
        let addr = url
            .split_once("://")
            .map(|(_, addr)| addr.to_string())
            .unwrap_or_default();
        DistrictProcess {
            child,
            url,
            addr,
            log,
            later: rx,
        }
    }

    /// Every line the server wrote so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The next line the server writes after it said where it listens, waiting at most
    /// `deadline`.
    pub fn next_line(&self, deadline: Duration) -> Option<String> {
        self.later.recv_timeout(deadline).ok()
    }

    /// The process, its URL, and the lines it writes after it said where it listens.
    pub fn into_parts(self) -> (ChildGuard, String, mpsc::Receiver<String>) {
        (self.child, self.url, self.later)
    }

    /// The peak resident memory (`VmHWM`) of the server process, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the server's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("a VmHWM line")
    }

    /// SIGTERM, and a clean exit within `deadline`.
    pub fn stop(&mut self, deadline: Duration) {
        self.child.signal("TERM");
        let status = self.child.wait_deadline(deadline);
        assert!(
            status.is_some_and(|s| s.success()),
            "the server did not stop cleanly: {status:?}\n{}",
            self.log_lines().join("\n")
        );
    }
}

/// The URL in the server's "listening on http://…" line.
fn listening_url(line: &str) -> Option<String> {
    let at = line.find("http://").or_else(|| line.find("https://"))?;
    let url: String = line[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '/' | '.' | '[' | ']'))
        .collect();
    Some(url)
}
