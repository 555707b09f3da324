//! `jejak doctor`: checks what a village PC needs to record and sync — its data folder,
//! configuration, store, what waits to sync, the link to the district server, the token,
//! the clock and the disk — and says for each problem what to do, in the user's language.
//!
//! Every check runs even when an earlier one fails, unless it depends on it (no link:
//! the token and the clock cannot be asked), so one run shows everything to fix. The
//! exit code is 1 when any check finds a problem; warnings alone exit 0, so a script can
//! tell "broken" from "worth a look".

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use clap::Args;
use jejak_agent::clock::{Clock, SystemClock};
use jejak_agent::collect::SERVER_SERVICE_NAME;
use jejak_agent::config::{AgentConfig, STORE_FILE, TOKEN_FILE, config_path};
use jejak_agent::platform;
use jejak_agent::store::{Store, waiting_text};
use jejak_domain::{Lang, Problem};
use serde::Serialize;

use crate::context::Context;
use crate::errors::{EXIT_FAILURE, SilentExit};
use crate::output;
use crate::output::outln;

/// A clock off by more than this is worth a warning: the server corrects times it can
/// date, but a wrong clock makes the PC's own screens and the local day wrong.
const CLOCK_WARN_MS: i64 = 2 * 60 * 1000;
/// A clock off by more than this is a problem: sessions land on the wrong day.
const CLOCK_PROBLEM_MS: i64 = 60 * 60 * 1000;
/// Unsynced changes older than this mean the PC has not reached the server for a week.
const UNSYNCED_WARN_SECS: i64 = 7 * 24 * 3600;
/// Free space under which the store may soon fail to write.
const DISK_PROBLEM_BYTES: u64 = 50 * 1000 * 1000;
const DISK_WARN_BYTES: u64 = 500 * 1000 * 1000;
/// A heartbeat older than this means the agent is not running.
const AGENT_SILENT_SECS: i64 = 10 * 60;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Seconds each question to the server may take.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
}

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Ok,
    Warning,
    Problem,
    /// Not checked because something it needs failed (named in the detail).
    Skipped,
}

impl Level {
    fn label(self, lang: Lang) -> &'static str {
        match self {
            Level::Ok => "OK",
            Level::Warning => lang.pick("PERINGATAN", "WARNING"),
            Level::Problem => lang.pick("MASALAH", "PROBLEM"),
            Level::Skipped => lang.pick("DILEWATI", "SKIPPED"),
        }
    }
}

/// One check's result, already in the user's language.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// A stable name for scripts: data_dir, config, store, unsynced, rejected, agent,
    /// server, link, token, clock, disk.
    pub check: &'static str,
    pub status: Level,
    /// The status as printed (OK, PERINGATAN, MASALAH …).
    pub label: String,
    /// What was found.
    pub detail: String,
    /// What to do about it; none when all is well.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advice: Option<String>,
}

struct Checks {
    lang: Lang,
    list: Vec<Check>,
}

impl Checks {
    /// Adds a result; `detail` and `advice` are (Indonesian, English) pairs.
    fn add(
        &mut self,
        check: &'static str,
        status: Level,
        detail: (String, String),
        advice: Option<(String, String)>,
    ) {
        let pick = |(id, en): (String, String)| match self.lang {
            Lang::Id => id,
            Lang::En => en,
        };
        self.list.push(Check {
            check,
            status,
            label: status.label(self.lang).to_string(),
            detail: pick(detail),
            advice: advice.map(pick),
        });
    }

    fn skip(&mut self, check: &'static str, because: (&str, &str)) {
        self.add(
            check,
            Level::Skipped,
            (
                format!("tidak diperiksa: {}", because.0),
                format!("not checked: {}", because.1),
            ),
            None,
        );
    }
}

fn pair(id: impl Into<String>, en: impl Into<String>) -> (String, String) {
    (id.into(), en.into())
}

pub fn run(ctx: &Context, args: DoctorArgs) -> anyhow::Result<()> {
    let timeout = Duration::from_secs_f64(args.timeout.clamp(0.5, 600.0));
    let mut checks = Checks {
        lang: ctx.lang,
        list: Vec::new(),
    };
    let data_ok = check_data_dir(&mut checks, &ctx.data_dir);
    let config = check_config(&mut checks, &ctx.data_dir);
    match (&config, data_ok) {
        (Some(config), true) => check_store(&mut checks, &ctx.data_dir, config),
        (None, _) => {
            for name in ["store", "unsynced", "rejected", "agent"] {
                checks.skip(
                    name,
                    (
                        "konfigurasi belum bisa dipakai",
                        "the configuration cannot be used",
                    ),
                );
            }
        }
        (Some(_), false) => {
            for name in ["store", "unsynced", "rejected", "agent"] {
                checks.skip(
                    name,
                    (
                        "lihat pemeriksaan folder data",
                        "see the data folder's check",
                    ),
                );
            }
        }
    }
    #[cfg(windows)]
    check_service(&mut checks);
    check_network(&mut checks, &ctx.data_dir, config.as_ref(), timeout)?;
    check_disk(&mut checks, &ctx.data_dir);

    let problems = count(&checks.list, Level::Problem);
    let warnings = count(&checks.list, Level::Warning);
    if ctx.json {
        output::print_json(&serde_json::json!({
            "data_dir": ctx.data_dir,
            "config": config_path(&ctx.data_dir),
            "ok": problems == 0,
            "problems": problems,
            "warnings": warnings,
            "checks": checks.list,
        }))?;
    } else {
        print_text(ctx, &checks.list, problems, warnings)?;
    }
    if problems > 0 {
        return Err(SilentExit(EXIT_FAILURE).into());
    }
    Ok(())
}

fn count(list: &[Check], level: Level) -> usize {
    list.iter().filter(|c| c.status == level).count()
}

fn print_text(
    ctx: &Context,
    list: &[Check],
    problems: usize,
    warnings: usize,
) -> std::io::Result<()> {
    let lang = ctx.lang;
    outln!(
        "{} {}",
        lang.pick(
            "Pemeriksaan komputer ini (jejak doctor), folder data",
            "Checking this PC (jejak doctor), data folder"
        ),
        ctx.data_dir.display()
    )?;
    let width = list
        .iter()
        .map(|c| c.label.chars().count())
        .max()
        .unwrap_or(2);
    for check in list {
        outln!(
            "{:<width$}  {}: {}",
            check.label,
            check_name(check.check, lang),
            check.detail
        )?;
        if let Some(advice) = &check.advice {
            outln!("{:<width$}  → {}", "", advice)?;
        }
    }
    let summary = match (problems, warnings) {
        (0, 0) => lang.pick("Semua baik.", "All is well.").to_string(),
        _ => format!(
            "{} {}, {} {}.",
            problems,
            lang.pick("masalah", "problem(s)"),
            warnings,
            lang.pick("peringatan", "warning(s)")
        ),
    };
    outln!("{summary}")
}

fn check_name(check: &str, lang: Lang) -> &'static str {
    match check {
        "data_dir" => lang.pick("Folder data", "Data folder"),
        "config" => lang.pick("Konfigurasi", "Configuration"),
        "store" => lang.pick("Basis data", "Store"),
        "unsynced" => lang.pick("Menunggu sinkron", "Waiting to sync"),
        "rejected" => lang.pick("Ditolak server", "Rejected by the server"),
        "agent" => lang.pick("Agen", "Agent"),
        "service" => lang.pick("Layanan Windows", "Windows service"),
        "server" => lang.pick("Server kabupaten", "District server"),
        "link" => lang.pick("Sambungan", "Link"),
        "token" => "Token",
        "clock" => lang.pick("Jam komputer", "Clock"),
        "disk" => lang.pick("Ruang disk", "Disk space"),
        _ => "?",
    }
}

/// The data folder exists, is a folder this user can use, and is private: it holds the
/// patron secret and the token (invariant 7, "not readable by the patron's account").
fn check_data_dir(checks: &mut Checks, dir: &Path) -> bool {
    let shown = dir.display();
    let meta = match std::fs::metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            checks.add(
                "data_dir",
                Level::Problem,
                pair(
                    format!("{shown} tidak ada"),
                    format!("{shown} does not exist"),
                ),
                Some(pair(
                    format!(
                        "siapkan komputer ini: jejak init --library KODE --pc pc-01 ({}); kalau folder lain yang dipakai, beri --data-dir atau JEJAK_DATA_DIR",
                        words::AS_SERVICE.0
                    ),
                    format!(
                        "set this PC up: jejak init --library CODE --pc pc-01 ({}); if another folder is used, give --data-dir or JEJAK_DATA_DIR",
                        words::AS_SERVICE.1
                    ),
                )),
            );
            return false;
        }
        Err(e) => {
            checks.add(
                "data_dir",
                Level::Problem,
                pair(
                    format!("{shown} tidak bisa dibaca ({e})"),
                    format!("{shown} cannot be read ({e})"),
                ),
                Some(run_as_service_user()),
            );
            return false;
        }
    };
    if !meta.is_dir() {
        checks.add(
            "data_dir",
            Level::Problem,
            pair(
                format!("{shown} bukan folder"),
                format!("{shown} is not a folder"),
            ),
            Some(pair(
                "pindahkan berkas itu, lalu jalankan jejak init",
                "move that file away, then run jejak init",
            )),
        );
        return false;
    }
    if let Err(e) = std::fs::read_dir(dir) {
        checks.add(
            "data_dir",
            Level::Problem,
            pair(
                format!("{shown} tidak bisa dibuka ({e})"),
                format!("{shown} cannot be opened ({e})"),
            ),
            Some(run_as_service_user()),
        );
        return false;
    }
    let access = match platform::folder_access(dir) {
        Ok(access) => access,
        Err(e) => {
            checks.add(
                "data_dir",
                Level::Warning,
                pair(
                    format!("{shown}: hak akses tidak bisa dibaca ({e})"),
                    format!("{shown}: its permissions cannot be read ({e})"),
                ),
                Some(run_as_service_user()),
            );
            return true;
        }
    };
    // Root opening the service's store would leave WAL files the agent's own user cannot
    // write, and the agent would then fail: look, but do not open it.
    if let Some(owner) = &access.owned_by_another_user {
        checks.add(
            "data_dir",
            Level::Warning,
            pair(
                format!(
                    "{shown} milik pengguna lain ({owner}); basis data tidak dibuka sebagai root"
                ),
                format!(
                    "{shown} belongs to another user ({owner}); the store is not opened as root"
                ),
            ),
            Some(run_as_service_user()),
        );
        return false;
    }
    let described = &access.description;
    if access.others_can_read {
        let fix = platform::restrict_folder_command(dir);
        checks.add(
            "data_dir",
            Level::Warning,
            pair(
                format!(
                    "{shown} bisa dibaca pengguna lain ({described}); isinya data pengunjung dan rahasia perpustakaan"
                ),
                format!(
                    "{shown} can be read by other users ({described}); it holds patron data and the library's secret"
                ),
            ),
            Some(pair(
                format!("batasi untuk pemiliknya saja: {fix}"),
                format!("restrict it to its owner: {fix}"),
            )),
        );
        return true;
    }
    checks.add(
        "data_dir",
        Level::Ok,
        pair(
            format!("{shown}, hanya untuk pemiliknya ({described})"),
            format!("{shown}, its owner's only ({described})"),
        ),
        None,
    );
    true
}

/// The Windows service: installed and running, as the PC needs it from boot.
#[cfg(windows)]
fn check_service(checks: &mut Checks) {
    use crate::windows_service::{InstalledState, service_state, state_text};
    use windows_service::service::ServiceState;
    let state = service_state();
    let level = match &state {
        InstalledState::State(ServiceState::Running) => Level::Ok,
        InstalledState::NotInstalled => Level::Problem,
        _ => Level::Warning,
    };
    let detail = pair(state_text(&state, Lang::Id), state_text(&state, Lang::En));
    let advice = (level != Level::Ok).then(|| pair(words::START_AGENT.0, words::START_AGENT.1));
    checks.add("service", level, detail, advice);
}

fn run_as_service_user() -> (String, String) {
    pair(words::RUN_AS_AGENT.0, words::RUN_AS_AGENT.1)
}

/// Advice in each system's own terms.
mod words {
    #[cfg(not(windows))]
    pub const AS_SERVICE: (&str, &str) = (
        "pada layanan: sudo jejak-admin init …",
        "for the service: sudo jejak-admin init …",
    );
    #[cfg(windows)]
    pub const AS_SERVICE: (&str, &str) = (
        "dari Command Prompt sebagai Administrator",
        "from a Command Prompt opened as Administrator",
    );
    #[cfg(not(windows))]
    pub const RUN_AS_AGENT: (&str, &str) = (
        "jalankan sebagai pengguna agen (pada layanan: sudo jejak-admin doctor)",
        "run as the agent's user (for the service: sudo jejak-admin doctor)",
    );
    #[cfg(windows)]
    pub const RUN_AS_AGENT: (&str, &str) = (
        "jalankan dari Command Prompt sebagai Administrator (klik kanan → Run as administrator)",
        "run it from a Command Prompt opened as Administrator (right-click → Run as administrator)",
    );
    #[cfg(not(windows))]
    pub const START_AGENT: (&str, &str) = (
        "jalankan agen: sudo systemctl start jejak-agent (lihat log: journalctl -u jejak-agent), atau jejak agent",
        "start the agent: sudo systemctl start jejak-agent (its log: journalctl -u jejak-agent), or jejak agent",
    );
    #[cfg(windows)]
    pub const START_AGENT: (&str, &str) = (
        "jalankan layanan: sc start Jejak (lihat log di C:\\ProgramData\\Jejak\\logs), atau pasang ulang MSI",
        "start the service: sc start Jejak (its log is in C:\\ProgramData\\Jejak\\logs), or install the MSI again",
    );
    #[cfg(not(windows))]
    pub const SET_CLOCK: (&str, &str) = (
        "sudo timedatectl set-time 'YYYY-MM-DD HH:MM:SS' atau di BIOS",
        "sudo timedatectl set-time 'YYYY-MM-DD HH:MM:SS' or in the BIOS",
    );
    #[cfg(windows)]
    pub const SET_CLOCK: (&str, &str) = (
        "Settings → Time & language → Date & time, atau di BIOS",
        "Settings → Time & language → Date & time, or in the BIOS",
    );
}

/// The configuration parses and names the library and the PC.
fn check_config(checks: &mut Checks, data_dir: &Path) -> Option<AgentConfig> {
    let path = config_path(data_dir);
    let shown = path.display();
    let config = match AgentConfig::load(data_dir) {
        Ok(config) => config,
        Err(e) => {
            checks.add(
                "config",
                Level::Problem,
                pair(e.message(Lang::Id), e.message(Lang::En)),
                Some(pair(
                    format!(
                        "perbaiki kunci itu di {shown} (semua kunci dijelaskan di config/agent.example.toml)"
                    ),
                    format!(
                        "fix that key in {shown} (every key is explained in config/agent.example.toml)"
                    ),
                )),
            );
            return None;
        }
    };
    match config.identity(data_dir) {
        Ok(identity) => {
            checks.add(
                "config",
                Level::Ok,
                pair(
                    format!("{shown} terbaca: {identity}, zona {}", config.timezone),
                    format!("{shown} read: {identity}, zone {}", config.timezone),
                ),
                None,
            );
            Some(config)
        }
        Err(e) => {
            checks.add(
                "config",
                Level::Problem,
                pair(e.message(Lang::Id), e.message(Lang::En)),
                Some(pair(
                    format!(
                        "jejak init --library KODE --pc pc-01 ({})",
                        words::AS_SERVICE.0
                    ),
                    format!(
                        "jejak init --library CODE --pc pc-01 ({})",
                        words::AS_SERVICE.1
                    ),
                )),
            );
            None
        }
    }
}

/// The store opens (which runs `PRAGMA quick_check` and moves a damaged file aside),
/// what waits to sync, what the server rejected, and whether the agent is alive.
fn check_store(checks: &mut Checks, data_dir: &Path, config: &AgentConfig) {
    let Ok(identity) = config.identity(data_dir) else {
        return;
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let path = data_dir.join(STORE_FILE);
    let (store, report) = match Store::open(&path, identity, clock) {
        Ok(opened) => opened,
        Err(e) => {
            checks.add(
                "store",
                Level::Problem,
                pair(e.message(Lang::Id), e.message(Lang::En)),
                Some(pair(
                    format!(
                        "lihat pesan di atas; kalau disk penuh, kosongkan ruang; kalau izin ditolak, {}",
                        words::RUN_AS_AGENT.0
                    ),
                    format!(
                        "see the message above; if the disk is full, free space; if permission is denied, {}",
                        words::RUN_AS_AGENT.1
                    ),
                )),
            );
            for name in ["unsynced", "rejected", "agent"] {
                checks.skip(name, ("basis data tidak terbuka", "the store did not open"));
            }
            return;
        }
    };
    let zone = config.zone();
    let status = match store.status(zone) {
        Ok(status) => status,
        Err(e) => {
            checks.add(
                "store",
                Level::Problem,
                pair(e.message(Lang::Id), e.message(Lang::En)),
                None,
            );
            return;
        }
    };
    let shown = path.display();
    if let Some(moved) = report.quarantined {
        checks.add(
            "store",
            Level::Warning,
            pair(
                format!(
                    "basis data rusak, dipindahkan ke {} dan yang baru dimulai",
                    moved.display()
                ),
                format!(
                    "the store was damaged; it was moved to {} and a new one started",
                    moved.display()
                ),
            ),
            Some(pair(
                "jangan hapus berkas itu; laporkan ke kabupaten. Kalau sering terjadi, periksa disk dan listrik (UPS)",
                "do not delete that file; tell the district. If it happens often, check the disk and the power (a UPS)",
            )),
        );
    } else if status.quick_check != "ok" {
        checks.add(
            "store",
            Level::Problem,
            pair(
                format!("{shown}: quick_check {}", status.quick_check),
                format!("{shown}: quick_check {}", status.quick_check),
            ),
            Some(pair(
                "hentikan agen lalu jalankan jejak status: berkas rusak dipindahkan (tidak dihapus) dan basis data baru dimulai",
                "stop the agent, then run jejak status: the damaged file is moved aside (not deleted) and a new store starts",
            )),
        );
    } else {
        checks.add(
            "store",
            Level::Ok,
            pair(
                format!(
                    "{shown}: quick_check ok, {} KB",
                    output::number(status.file_bytes as f64 / 1000.0, 0, Lang::Id)
                ),
                format!(
                    "{shown}: quick_check ok, {} KB",
                    output::number(status.file_bytes as f64 / 1000.0, 0, Lang::En)
                ),
            ),
            None,
        );
    }

    let now = Utc::now();
    let oldest = if status.pending_changes > 0 {
        store
            .changes_after(status.acked_seq, 1)
            .ok()
            .and_then(|c| c.first().map(|c| c.recorded_at))
    } else {
        None
    };
    match oldest {
        None => checks.add(
            "unsynced",
            Level::Ok,
            pair(
                "tidak ada catatan yang menunggu dikirim",
                "no records are waiting to be sent",
            ),
            None,
        ),
        Some(oldest) => {
            let age = (now - oldest).num_seconds().max(0);
            let (id_age, en_age) = (age_text(age, Lang::Id), age_text(age, Lang::En));
            let detail = pair(
                format!(
                    "{}, yang tertua {id_age} lalu",
                    waiting_text(status.pending_changes, Lang::Id)
                ),
                format!(
                    "{}, the oldest from {en_age} ago",
                    waiting_text(status.pending_changes, Lang::En)
                ),
            );
            if age > UNSYNCED_WARN_SECS {
                checks.add(
                    "unsynced",
                    Level::Warning,
                    detail,
                    Some(pair(
                        "data aman di komputer ini. Nyalakan modem lalu jalankan jejak sync, atau bawa lewat USB: jejak sync --export BERKAS",
                        "the data is safe on this PC. Turn the modem on and run jejak sync, or carry it on a USB stick: jejak sync --export FILE",
                    )),
                );
            } else {
                checks.add("unsynced", Level::Ok, detail, None);
            }
        }
    }

    match store.sync_state() {
        Ok(sync) if sync.rejected > 0 => checks.add(
            "rejected",
            Level::Warning,
            pair(
                format!(
                    "{} catatan ditolak server (tetap disimpan di komputer ini)",
                    sync.rejected
                ),
                format!(
                    "{} records were rejected by the server (kept on this PC)",
                    sync.rejected
                ),
            ),
            Some(pair(
                "lihat rinciannya dengan jejak status dan laporkan ke kabupaten",
                "see them with jejak status and tell the district",
            )),
        ),
        Ok(_) => checks.add("rejected", Level::Ok, pair("tidak ada", "none"), None),
        Err(e) => checks.add(
            "rejected",
            Level::Problem,
            pair(e.message(Lang::Id), e.message(Lang::En)),
            None,
        ),
    }

    let silent = status
        .last_heartbeat
        .map(|t| (now - t).num_seconds())
        .filter(|age| *age <= AGENT_SILENT_SECS);
    let advice = pair(words::START_AGENT.0, words::START_AGENT.1);
    match (silent, status.last_heartbeat) {
        (Some(age), _) => checks.add(
            "agent",
            Level::Ok,
            pair(
                format!(
                    "tanda hidup terakhir {} lalu",
                    age_text(age.max(0), Lang::Id)
                ),
                format!("last heartbeat {} ago", age_text(age.max(0), Lang::En)),
            ),
            None,
        ),
        (None, Some(last)) => checks.add(
            "agent",
            Level::Warning,
            pair(
                format!(
                    "agen tidak berjalan: tanda hidup terakhir {}",
                    output::local_time(last, zone)
                ),
                format!(
                    "the agent is not running: last heartbeat {}",
                    output::local_time(last, zone)
                ),
            ),
            Some(advice),
        ),
        (None, None) => checks.add(
            "agent",
            Level::Warning,
            pair(
                "agen belum pernah berjalan di komputer ini",
                "the agent has never run on this PC",
            ),
            Some(advice),
        ),
    }
}

fn age_text(secs: i64, lang: Lang) -> String {
    let days = secs / 86_400;
    if days >= 1 {
        return format!("{days} {}", lang.pick("hari", "days"));
    }
    output::duration(secs.max(0) as u64, lang)
}

/// The server's URL, then — when there is one — the link, the token and the clock.
fn check_network(
    checks: &mut Checks,
    data_dir: &Path,
    config: Option<&AgentConfig>,
    timeout: Duration,
) -> anyhow::Result<()> {
    let Some(config) = config else {
        for name in ["server", "link", "token", "clock"] {
            checks.skip(
                name,
                (
                    "konfigurasi belum bisa dipakai",
                    "the configuration cannot be used",
                ),
            );
        }
        return Ok(());
    };
    let Some(server) = config.server.as_deref().map(|s| s.trim_end_matches('/')) else {
        checks.add(
            "server",
            Level::Warning,
            pair(
                "alamat server belum diatur: komputer ini mencatat tetapi tidak sinkron",
                "no server is set: this PC records but does not sync",
            ),
            Some(pair(
                "jejak enroll --server URL --token TOKEN (token dari kabupaten: jejak server add-device)",
                "jejak enroll --server URL --token TOKEN (the district issues the token: jejak server add-device)",
            )),
        );
        for name in ["link", "token", "clock"] {
            checks.skip(name, ("alamat server belum diatur", "no server is set"));
        }
        return Ok(());
    };
    checks.add(
        "server",
        Level::Ok,
        pair(server.to_string(), server.to_string()),
        None,
    );
    let token = jejak_agent::config::load_token(data_dir).unwrap_or(None);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Over HTTPS, the agent's own certificate check (the key pinned at enrolment): the
    // doctor judges the link as the agent sees it, a wrong clock included.
    let http = match crate::sync_cmd::probe_client(config, server)? {
        Some(client) => client,
        None => reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?,
    };
    runtime.block_on(async {
        if !check_link(checks, &http, server).await {
            for name in ["token", "clock"] {
                checks.skip(
                    name,
                    ("server tidak terjangkau", "the server cannot be reached"),
                );
            }
            return;
        }
        check_token(checks, &http, server, data_dir, config, token.as_deref()).await;
        check_clock(checks, &http, server).await;
    });
    Ok(())
}

fn content_type(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// `GET /healthz` must answer as a Jejak server. A login page of the network (a captive
/// portal: a redirect or an HTML page) is named as such, since "buy a package / log in
/// to the Wi-Fi" is what fixes it.
async fn check_link(checks: &mut Checks, http: &reqwest::Client, server: &str) -> bool {
    let url = format!("{server}/healthz");
    let no_link_advice = pair(
        "periksa modem dan paket data (sinyal, pulsa/kuota), lalu jalankan jejak doctor lagi. Data tetap aman di komputer ini; tanpa sambungan, bawa lewat USB: jejak sync --export BERKAS",
        "check the modem and the data package (signal, credit), then run jejak doctor again. The data is safe on this PC; without a link, carry it on a USB stick: jejak sync --export FILE",
    );
    let response = match http.get(&url).send().await {
        Ok(response) => response,
        Err(e) => {
            let why = error_chain(&e);
            checks.add(
                "link",
                Level::Problem,
                pair(
                    format!("tidak tersambung ke {server} ({why})"),
                    format!("no link to {server} ({why})"),
                ),
                Some(no_link_advice),
            );
            return false;
        }
    };
    let status = response.status();
    let kind = content_type(&response);
    let portal_advice = pair(
        "jaringan ini meminta login atau pembelian paket: buka peramban, selesaikan halaman itu, lalu jalankan jejak doctor lagi",
        "this network asks for a login or a data package: open a browser, complete that page, then run jejak doctor again",
    );
    if status.is_redirection() {
        let to = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("?")
            .to_string();
        checks.add(
            "link",
            Level::Problem,
            pair(
                format!(
                    "yang menjawab bukan server Jejak: jawaban {status} mengalihkan ke {to} (halaman login jaringan / captive portal)"
                ),
                format!(
                    "something other than the Jejak server answered: {status} redirecting to {to} (a network login page / captive portal)"
                ),
            ),
            Some(portal_advice),
        );
        return false;
    }
    if kind.starts_with("text/html") {
        checks.add(
            "link",
            Level::Problem,
            pair(
                format!(
                    "yang menjawab bukan server Jejak: halaman HTML ({status}), biasanya halaman login jaringan (captive portal) atau halaman modem"
                ),
                format!(
                    "something other than the Jejak server answered: an HTML page ({status}), usually a network login page (captive portal) or the modem's page"
                ),
            ),
            Some(portal_advice),
        );
        return false;
    }
    let body: Option<serde_json::Value> = if kind.starts_with("application/json") {
        response.json().await.ok()
    } else {
        None
    };
    let service = body
        .as_ref()
        .and_then(|b| b.get("service"))
        .and_then(|s| s.as_str());
    if service != Some(SERVER_SERVICE_NAME) {
        checks.add(
            "link",
            Level::Problem,
            pair(
                format!(
                    "{url} menjawab {status} ({kind}), tetapi bukan sebagai server Jejak"
                ),
                format!("{url} answered {status} ({kind}), but not as a Jejak server"),
            ),
            Some(pair(
                "periksa alamat server (kunci server di konfigurasi; ubah dengan jejak enroll --server URL --token TOKEN)",
                "check the server's address (the server key of the configuration; change it with jejak enroll --server URL --token TOKEN)",
            )),
        );
        return false;
    }
    let version = body
        .as_ref()
        .and_then(|b| b.get("version"))
        .and_then(|s| s.as_str())
        .unwrap_or("?");
    if !status.is_success() {
        checks.add(
            "link",
            Level::Problem,
            pair(
                format!("server Jejak {version} terjangkau tetapi sedang tidak bisa menyimpan ({status})"),
                format!("the Jejak server {version} is reachable but cannot store right now ({status})"),
            ),
            Some(pair(
                "data tetap aman di komputer ini dan dikirim nanti; laporkan ke kabupaten bila berlanjut",
                "the data stays safe on this PC and is sent later; tell the district if it goes on",
            )),
        );
        // The server answered: the token and the clock can still be asked.
        return true;
    }
    checks.add(
        "link",
        Level::Ok,
        pair(
            format!("server Jejak {version} menjawab"),
            format!("the Jejak server {version} answers"),
        ),
        None,
    );
    true
}

fn error_chain(e: &reqwest::Error) -> String {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        source = inner.source();
    }
    message
}

/// `GET /api/v1/devices/me` with the device token: accepted, revoked or unknown, and
/// for the library and PC this configuration names.
async fn check_token(
    checks: &mut Checks,
    http: &reqwest::Client,
    server: &str,
    data_dir: &Path,
    config: &AgentConfig,
    token: Option<&str>,
) {
    let token_path: PathBuf = data_dir.join(TOKEN_FILE);
    let enroll = pair(
        format!(
            "minta token baru ke kabupaten (jejak server add-device), lalu: jejak enroll --server {server} --token TOKEN"
        ),
        format!(
            "ask the district for a new token (jejak server add-device), then: jejak enroll --server {server} --token TOKEN"
        ),
    );
    let Some(token) = token else {
        checks.add(
            "token",
            Level::Problem,
            pair(
                format!(
                    "komputer ini belum terdaftar ({} tidak ada)",
                    token_path.display()
                ),
                format!(
                    "this PC is not enrolled ({} is missing)",
                    token_path.display()
                ),
            ),
            Some(enroll),
        );
        return;
    };
    let response = match http
        .get(format!("{server}/api/v1/devices/me"))
        .bearer_auth(token)
        .send()
        .await
    {
        Ok(response) => response,
        Err(e) => {
            let why = error_chain(&e);
            checks.add(
                "token",
                Level::Warning,
                pair(
                    format!("tidak bisa diperiksa ({why})"),
                    format!("could not be checked ({why})"),
                ),
                Some(pair("coba lagi nanti", "try again later")),
            );
            return;
        }
    };
    let status = response.status();
    if status.is_success() {
        let state: Option<serde_json::Value> = response.json().await.ok();
        let library = state
            .as_ref()
            .and_then(|s| s.get("library"))
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .to_string();
        let pc = state
            .as_ref()
            .and_then(|s| s.get("pc"))
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .to_string();
        let ours = (
            config.library.clone().unwrap_or_default(),
            config.pc.clone().unwrap_or_default(),
        );
        if (library.as_str(), pc.as_str()) != (ours.0.as_str(), ours.1.as_str()) {
            checks.add(
                "token",
                Level::Problem,
                pair(
                    format!(
                        "token diterima, tetapi milik {library}/{pc}, sedangkan komputer ini {}/{}",
                        ours.0, ours.1
                    ),
                    format!(
                        "the token is accepted but belongs to {library}/{pc}, while this PC is {}/{}",
                        ours.0, ours.1
                    ),
                ),
                Some(enroll),
            );
            return;
        }
        checks.add(
            "token",
            Level::Ok,
            pair(
                format!("diterima server untuk {library}/{pc}"),
                format!("accepted by the server for {library}/{pc}"),
            ),
            None,
        );
        check_token_file_mode(checks, &token_path);
        return;
    }
    let problem: Option<Problem> = response.json().await.ok();
    let kind = problem.as_ref().map(|p| p.kind.clone()).unwrap_or_default();
    let (id, en) = match status.as_u16() {
        401 if kind.contains("revoked") => (
            "token komputer ini sudah dicabut di server; semua data tetap disimpan".to_string(),
            "this PC's token was revoked at the server; all data is kept".to_string(),
        ),
        401 => (
            "server tidak mengenal token komputer ini; semua data tetap disimpan".to_string(),
            "the server does not know this PC's token; all data is kept".to_string(),
        ),
        403 => (
            "token ini bukan token komputer (mungkin token staf)".to_string(),
            "this is not a PC's token (perhaps a staff token)".to_string(),
        ),
        _ => (
            format!("pemeriksaan token dijawab {status}"),
            format!("the token check answered {status}"),
        ),
    };
    checks.add("token", Level::Problem, (id, en), Some(enroll));
}

/// The token file is the PC's password to the server: its owner's only.
fn check_token_file_mode(checks: &mut Checks, path: &Path) {
    if let Some(described) = platform::file_readable_by_others(path) {
        let shown = path.display();
        let fix = platform::restrict_file_command(path);
        checks.add(
            "token",
            Level::Warning,
            pair(
                format!("{shown} bisa dibaca pengguna lain ({described})"),
                format!("{shown} can be read by other users ({described})"),
            ),
            Some(pair(fix.clone(), fix)),
        );
    }
}

/// The PC's clock against the server's (`GET /api/v1/time`, NTP's on-wire calculation:
/// the offset is the mean of the two one-way differences, good to half the round trip).
async fn check_clock(checks: &mut Checks, http: &reqwest::Client, server: &str) {
    let t1 = Utc::now().timestamp_millis();
    let answer = http.get(format!("{server}/api/v1/time")).send().await;
    let time: Option<(i64, i64)> = match answer {
        Ok(response) if response.status().is_success() => response
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| {
                Some((
                    v.get("received_at_ms")?.as_i64()?,
                    v.get("sent_at_ms")?.as_i64()?,
                ))
            }),
        _ => None,
    };
    let t4 = Utc::now().timestamp_millis();
    let Some((t2, t3)) = time else {
        checks.add(
            "clock",
            Level::Warning,
            pair(
                "jam server tidak bisa dibaca",
                "the server's clock could not be read",
            ),
            Some(pair("coba lagi nanti", "try again later")),
        );
        return;
    };
    // Server time minus PC time.
    let offset = ((t2 - t1) + (t3 - t4)) / 2;
    let round_trip = (t4 - t1) - (t3 - t2);
    let off = age_text(offset.abs() / 1000, Lang::Id);
    let off_en = age_text(offset.abs() / 1000, Lang::En);
    let (ahead_id, ahead_en) = if offset < 0 {
        ("lebih cepat", "ahead of")
    } else {
        ("lebih lambat", "behind")
    };
    let fix = pair(
        format!(
            "atur tanggal dan jam komputer ({}). Kalau jam salah lagi setiap listrik padam, ganti baterai CMOS (CR2032) di papan induk. Waktu yang sudah tercatat dikoreksi server saat sinkron",
            words::SET_CLOCK.0
        ),
        format!(
            "set the PC's date and time ({}). If it is wrong again after every power cut, replace the CMOS battery (CR2032) on the motherboard. Times already recorded are corrected by the server at sync",
            words::SET_CLOCK.1
        ),
    );
    let level = if offset.abs() > CLOCK_PROBLEM_MS {
        Level::Problem
    } else if offset.abs() > CLOCK_WARN_MS {
        Level::Warning
    } else {
        Level::Ok
    };
    let detail = if level == Level::Ok {
        pair(
            format!(
                "selisih dengan server {} ms (±{} ms)",
                offset,
                round_trip.max(0) / 2
            ),
            format!(
                "{} ms from the server's (±{} ms)",
                offset,
                round_trip.max(0) / 2
            ),
        )
    } else {
        pair(
            format!("jam komputer ini {off} {ahead_id} dari jam server"),
            format!("this PC's clock is {off_en} {ahead_en} the server's"),
        )
    };
    checks.add("clock", level, detail, (level != Level::Ok).then_some(fix));
}

/// Free space where the store lives.
fn check_disk(checks: &mut Checks, data_dir: &Path) {
    // The data folder may not exist yet; its nearest existing parent is on the same disk
    // in the common case.
    let mut dir = data_dir.to_path_buf();
    while !dir.exists() {
        if !dir.pop() {
            break;
        }
    }
    {
        let free = match platform::free_disk_bytes(&dir) {
            Ok(free) => free,
            Err(e) => {
                checks.add(
                    "disk",
                    Level::Warning,
                    pair(
                        format!("ruang kosong tidak bisa dibaca ({e})"),
                        format!("free space could not be read ({e})"),
                    ),
                    None,
                );
                return;
            }
        };
        let mb = |lang| output::number(free as f64 / 1e6, 0, lang);
        let detail = pair(
            format!("{} MB kosong di {}", mb(Lang::Id), dir.display()),
            format!("{} MB free at {}", mb(Lang::En), dir.display()),
        );
        let advice = pair(
            "kosongkan ruang (hapus unduhan lama, kosongkan tempat sampah); data Jejak jangan dihapus",
            "free some space (old downloads, the trash); do not delete Jejak's data",
        );
        if free < DISK_PROBLEM_BYTES {
            checks.add("disk", Level::Problem, detail, Some(advice));
        } else if free < DISK_WARN_BYTES {
            checks.add("disk", Level::Warning, detail, Some(advice));
        } else {
            checks.add("disk", Level::Ok, detail, None);
        }
    }
}
