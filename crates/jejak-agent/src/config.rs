//! The agent's configuration: `agent.toml` in the data directory, with every key
//! overridable by an environment variable `JEJAK_<KEY>` (the environment wins).

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use jejak_domain::{DeviceIdentity, Lang, LibraryCode, PcCode, Zone};
use serde::{Deserialize, Serialize};

/// The name of the configuration file inside the data directory.
pub const CONFIG_FILE: &str = "agent.toml";
/// The name of the store file inside the data directory.
pub const STORE_FILE: &str = "jejak.db";
/// The device token the district server issued, inside the data directory.
pub const TOKEN_FILE: &str = "device.token";
/// The environment variable that names the configuration file when it does not live in
/// the data directory: a service installed by `scripts/install-linux.sh` keeps it in
/// `/etc/jejak/agent.toml`, where an administrator looks for it.
pub const CONFIG_ENV: &str = "JEJAK_CONFIG";

/// The configuration file for `data_dir`: `JEJAK_CONFIG` when set, otherwise
/// `agent.toml` inside the data directory. `jejak init` and `jejak enroll` write the
/// same file the agent reads.
pub fn config_path(data_dir: &Path) -> PathBuf {
    match std::env::var_os(CONFIG_ENV).filter(|v| !v.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => data_dir.join(CONFIG_FILE),
    }
}

/// Saves the device token readable by its owner only.
pub fn save_token(data_dir: &Path, token: &str) -> std::io::Result<()> {
    crate::platform::write_private_file(&data_dir.join(TOKEN_FILE), token.trim().as_bytes())
}

/// The device token, if this PC has been enrolled.
pub fn load_token(data_dir: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(data_dir.join(TOKEN_FILE)) {
        Ok(text) if !text.trim().is_empty() => Ok(Some(text.trim().to_string())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The keys that may come from the environment. Listing them keeps unrelated
/// `JEJAK_*` variables (such as `JEJAK_DATA_DIR` or `JEJAK_BOOT_ID`) out of the file's
/// namespace, where they would be unknown keys.
const ENV_KEYS: &[&str] = &[
    "library",
    "pc",
    "timezone",
    "server",
    "server_key",
    "server_ca",
    "lang",
    "heartbeat_secs",
    "heartbeat_event_every",
    "probe_secs",
    "probe_timeout_secs",
    "crash_grace_secs",
    "net_dev_path",
    "sync_secs",
    "sync_timeout_secs",
    "sync_batch_records",
    "sync_backoff_base_secs",
    "sync_backoff_cap_secs",
    "login_watch",
    "idle_end_secs",
    "retention_days",
    "store_budget_mb",
    "checkin_port",
];

/// Everything the agent and the PC-side commands read from configuration.
/// `config/agent.example.toml` documents each key with its default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The library code (NPP or district code). Set by `jejak init`.
    pub library: Option<String>,
    /// This PC's code inside the library, e.g. `pc-01`. Set by `jejak init`.
    pub pc: Option<String>,
    /// The library's time zone: Asia/Jakarta (WIB), Asia/Makassar (WITA), Asia/Jayapura (WIT).
    pub timezone: String,
    /// The district server's base URL; without it the agent records but does not probe.
    pub server: Option<String>,
    /// The SHA-256 of the HTTPS server's public key (`sha256:` and 64 hex digits),
    /// recorded by `jejak enroll` after a verified first contact: a server with this key
    /// is trusted whatever this PC's clock says.
    pub server_key: Option<String>,
    /// A PEM file of extra trust anchors for the server's certificate (a district's own
    /// CA, or its self-signed certificate), set by `jejak enroll --server-ca`.
    pub server_ca: Option<PathBuf>,
    /// The language of messages: `id` (default) or `en`.
    pub lang: String,
    /// Seconds between heartbeats that keep the open session's last-seen time.
    pub heartbeat_secs: f64,
    /// Every this many heartbeats a `heartbeat` pc event is written for uptime figures.
    pub heartbeat_event_every: u32,
    /// Seconds between connectivity probes against the server.
    pub probe_secs: f64,
    /// Seconds a probe may take before the link counts as down.
    pub probe_timeout_secs: f64,
    /// How old the last heartbeat of a session left open by a dead agent may be for
    /// the session to continue (same boot); older ones are closed as `crash`.
    pub crash_grace_secs: f64,
    /// A file in `/proc/net/dev`'s format to read the interface counters from instead of
    /// the system's own source (Linux `/proc/net/dev`, Windows' interface table); for
    /// tests and unusual systems.
    pub net_dev_path: Option<PathBuf>,
    /// Seconds between the agent's own syncs while the link is up.
    pub sync_secs: f64,
    /// Seconds one sync exchange (one batch) may take before it is retried.
    pub sync_timeout_secs: f64,
    /// Changes per batch.
    pub sync_batch_records: u32,
    /// First pause after a failed exchange; it doubles up to the cap (with full jitter).
    pub sync_backoff_base_secs: f64,
    pub sync_backoff_cap_secs: f64,
    /// Watch operating-system logins: a login nobody checked in still becomes a session
    /// (patron unknown), ended at logout or after `idle_end_secs` without input.
    pub login_watch: bool,
    /// Seconds without keyboard or mouse input (where the system can tell) after which
    /// the open session ends as `idle`.
    pub idle_end_secs: f64,
    /// Days a change stays on the PC after the server acknowledged it; never pruned before.
    pub retention_days: u32,
    /// The store's size budget in MiB: over it, acknowledged changes are pruned early,
    /// oldest first; unsynced ones never.
    pub store_budget_mb: u32,
    /// The port of the patron check-in page on 127.0.0.1; `0` turns the page off.
    pub checkin_port: u16,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            library: None,
            pc: None,
            timezone: Zone::Wib.code().to_string(),
            server: None,
            server_key: None,
            server_ca: None,
            lang: "id".to_string(),
            heartbeat_secs: 30.0,
            heartbeat_event_every: 30,
            probe_secs: 60.0,
            probe_timeout_secs: 10.0,
            crash_grace_secs: 90.0,
            net_dev_path: None,
            sync_secs: 300.0,
            sync_timeout_secs: 60.0,
            sync_batch_records: 500,
            sync_backoff_base_secs: 1.0,
            sync_backoff_cap_secs: 180.0,
            login_watch: true,
            idle_end_secs: 900.0,
            retention_days: 90,
            store_budget_mb: 64,
            checkin_port: crate::checkin::DEFAULT_PORT,
        }
    }
}

/// A configuration that cannot be used, naming the key and what to do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", self.message(Lang::Id))]
pub enum ConfigError {
    /// A key with a bad value or an unknown key, as read from the file or environment.
    BadKey {
        key: String,
        source_name: String,
        problem: String,
    },
    /// `jejak init` has not been run for this data directory.
    NotInitialised { path: PathBuf },
}

impl ConfigError {
    pub fn message(&self, lang: Lang) -> String {
        match (self, lang) {
            (
                ConfigError::BadKey {
                    key,
                    source_name,
                    problem,
                },
                Lang::Id,
            ) => format!("konfigurasi salah pada kunci '{key}' ({source_name}): {problem}"),
            (
                ConfigError::BadKey {
                    key,
                    source_name,
                    problem,
                },
                Lang::En,
            ) => format!("bad configuration key '{key}' ({source_name}): {problem}"),
            (ConfigError::NotInitialised { path }, Lang::Id) => format!(
                "komputer ini belum disiapkan ({} tidak ada); jalankan dulu: jejak init --library KODE --pc pc-01",
                path.display()
            ),
            (ConfigError::NotInitialised { path }, Lang::En) => format!(
                "this PC is not set up yet ({} is missing); run first: jejak init --library CODE --pc pc-01",
                path.display()
            ),
        }
    }
}

fn bad_key(key: &str, source_name: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError::BadKey {
        key: key.to_string(),
        source_name: source_name.to_string(),
        problem: problem.into(),
    }
}

impl AgentConfig {
    /// Reads the configuration file of `data_dir` (see [`config_path`]; if present)
    /// and the environment over it.
    pub fn load(data_dir: &Path) -> Result<AgentConfig, ConfigError> {
        Self::load_from(
            &config_path(data_dir),
            Env::prefixed("JEJAK_").only(ENV_KEYS),
        )
    }

    fn load_from(file: &Path, env: Env) -> Result<AgentConfig, ConfigError> {
        let figment = Figment::from(Serialized::defaults(AgentConfig::default()))
            .merge(Toml::file(file))
            .merge(env);
        let config: AgentConfig = figment.extract().map_err(|e| {
            let key = if e.path.is_empty() {
                // serde reports an unknown key in the message, not the path.
                e.kind.to_string()
            } else {
                e.path.join(".")
            };
            let source_name = e
                .metadata
                .as_ref()
                .map(|m| m.name.to_string())
                .unwrap_or_else(|| file.display().to_string());
            bad_key(&key, &source_name, e.kind.to_string())
        })?;
        config.validate(&file.display().to_string())?;
        Ok(config)
    }

    fn validate(&self, source_name: &str) -> Result<(), ConfigError> {
        let positive = |key: &str, v: f64, max: f64| {
            if v.is_finite() && v > 0.0 && v <= max {
                Ok(())
            } else {
                Err(bad_key(
                    key,
                    source_name,
                    format!("must be more than 0 and at most {max}, got {v}"),
                ))
            }
        };
        positive("heartbeat_secs", self.heartbeat_secs, 3600.0)?;
        positive("probe_secs", self.probe_secs, 86_400.0)?;
        positive("probe_timeout_secs", self.probe_timeout_secs, 600.0)?;
        positive("crash_grace_secs", self.crash_grace_secs, 86_400.0)?;
        positive("sync_secs", self.sync_secs, 86_400.0)?;
        positive("sync_timeout_secs", self.sync_timeout_secs, 3600.0)?;
        positive(
            "sync_backoff_base_secs",
            self.sync_backoff_base_secs,
            3600.0,
        )?;
        positive(
            "sync_backoff_cap_secs",
            self.sync_backoff_cap_secs,
            86_400.0,
        )?;
        positive("idle_end_secs", self.idle_end_secs, 86_400.0)?;
        if !(1..=3650).contains(&self.retention_days) {
            return Err(bad_key(
                "retention_days",
                source_name,
                format!("must be 1 to 3650, got {}", self.retention_days),
            ));
        }
        if !(1..=1_000_000).contains(&self.store_budget_mb) {
            return Err(bad_key(
                "store_budget_mb",
                source_name,
                format!("must be 1 to 1000000, got {}", self.store_budget_mb),
            ));
        }
        if !(1..=5000).contains(&self.sync_batch_records) {
            return Err(bad_key(
                "sync_batch_records",
                source_name,
                format!("must be 1 to 5000, got {}", self.sync_batch_records),
            ));
        }
        if self.heartbeat_event_every == 0 {
            return Err(bad_key(
                "heartbeat_event_every",
                source_name,
                "must be at least 1",
            ));
        }
        Zone::parse(&self.timezone)
            .map_err(|e| bad_key("timezone", source_name, e.message(Lang::En)))?;
        self.lang
            .parse::<Lang>()
            .map_err(|e| bad_key("lang", source_name, e.to_string()))?;
        if let Some(library) = &self.library {
            LibraryCode::parse(library)
                .map_err(|e| bad_key("library", source_name, e.message(Lang::En)))?;
        }
        if let Some(pc) = &self.pc {
            PcCode::parse(pc).map_err(|e| bad_key("pc", source_name, e.message(Lang::En)))?;
        }
        if let Some(server) = &self.server
            && !(server.starts_with("http://") || server.starts_with("https://"))
        {
            return Err(bad_key(
                "server",
                source_name,
                "must start with http:// or https://",
            ));
        }
        if let Some(key) = &self.server_key {
            let well_formed = key.strip_prefix("sha256:").is_some_and(|digits| {
                digits.len() == 64 && digits.bytes().all(|b| b.is_ascii_hexdigit())
            });
            if !well_formed {
                return Err(bad_key(
                    "server_key",
                    source_name,
                    "must be sha256: followed by 64 hex digits (run jejak enroll again to record it)",
                ));
            }
        }
        Ok(())
    }

    /// The library and PC, or the instruction to run `jejak init`.
    pub fn identity(&self, data_dir: &Path) -> Result<DeviceIdentity, ConfigError> {
        match (&self.library, &self.pc) {
            (Some(library), Some(pc)) => Ok(DeviceIdentity {
                // Both were checked by `validate`.
                library: LibraryCode::parse(library)
                    .map_err(|e| bad_key("library", CONFIG_FILE, e.message(Lang::En)))?,
                pc: PcCode::parse(pc)
                    .map_err(|e| bad_key("pc", CONFIG_FILE, e.message(Lang::En)))?,
            }),
            _ => Err(ConfigError::NotInitialised {
                path: config_path(data_dir),
            }),
        }
    }

    pub fn zone(&self) -> Zone {
        Zone::parse(&self.timezone).unwrap_or(Zone::Wib)
    }

    pub fn lang(&self) -> Lang {
        self.lang.parse().unwrap_or_default()
    }

    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_secs_f64(self.heartbeat_secs)
    }

    pub fn probe_interval(&self) -> Duration {
        Duration::from_secs_f64(self.probe_secs)
    }

    pub fn probe_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.probe_timeout_secs)
    }

    pub fn sync_interval(&self) -> Duration {
        Duration::from_secs_f64(self.sync_secs)
    }

    pub fn sync_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.sync_timeout_secs)
    }

    pub fn sync_backoff(&self) -> (Duration, Duration) {
        (
            Duration::from_secs_f64(self.sync_backoff_base_secs),
            Duration::from_secs_f64(self.sync_backoff_cap_secs),
        )
    }

    pub fn crash_grace(&self) -> Duration {
        Duration::from_secs_f64(self.crash_grace_secs)
    }

    pub fn idle_end(&self) -> Duration {
        Duration::from_secs_f64(self.idle_end_secs)
    }

    /// Retention and the size budget, for the store's prune pass.
    pub fn prune_policy(&self) -> crate::store::PrunePolicy {
        crate::store::PrunePolicy {
            retention: Duration::from_secs(u64::from(self.retention_days) * 86_400),
            budget_bytes: u64::from(self.store_budget_mb) * 1024 * 1024,
        }
    }

    /// The file as `jejak init` writes it: only what differs from the defaults.
    pub fn to_toml(&self) -> String {
        let mut out = String::from(
            "# Jejak agent configuration. Every key is documented, with its default, in\n\
             # config/agent.example.toml. Environment variables JEJAK_<KEY> override this file.\n",
        );
        let defaults = AgentConfig::default();
        let mut line = |key: &str, value: toml::Value| {
            out.push_str(&format!("{key} = {value}\n"));
        };
        if let Some(library) = &self.library {
            line("library", library.clone().into());
        }
        if let Some(pc) = &self.pc {
            line("pc", pc.clone().into());
        }
        line("timezone", self.timezone.clone().into());
        if let Some(server) = &self.server {
            line("server", server.clone().into());
        }
        if self.lang != defaults.lang {
            line("lang", self.lang.clone().into());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join(CONFIG_FILE);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn defaults_apply_without_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let config = AgentConfig::load_from(
            &dir.path().join(CONFIG_FILE),
            Env::prefixed("JEJAK_TEST_NONE_"),
        )
        .unwrap();
        assert_eq!(config, AgentConfig::default());
        assert!(matches!(
            config.identity(dir.path()),
            Err(ConfigError::NotInitialised { .. })
        ));
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure type is fixed by figment.
    fn the_environment_overrides_the_file() {
        figment::Jail::expect_with(|jail| {
            let path = write(
                jail.directory(),
                "library = \"dermaji\"\npc = \"pc-01\"\nheartbeat_secs = 15\nprobe_secs = 20\n",
            );
            jail.set_env("JEJAK_HEARTBEAT_SECS", "5");
            jail.set_env("JEJAK_PC", "pc-02");
            let config =
                AgentConfig::load_from(&path, Env::prefixed("JEJAK_").only(ENV_KEYS)).unwrap();
            assert_eq!(config.heartbeat_secs, 5.0, "environment wins over the file");
            assert_eq!(config.probe_secs, 20.0, "the file wins over the default");
            assert_eq!(config.pc.as_deref(), Some("pc-02"));
            assert_eq!(config.library.as_deref(), Some("dermaji"));
            assert_eq!(
                config.crash_grace_secs, 90.0,
                "untouched keys keep their default"
            );
            Ok(())
        });
    }

    #[test]
    fn errors_name_the_bad_key() {
        let dir = tempfile::tempdir().unwrap();
        let none = || Env::prefixed("JEJAK_TEST_NONE_");
        let cases = [
            ("heartbeat_secs = \"often\"\n", "heartbeat_secs"),
            ("heartbeat_secs = -1\n", "heartbeat_secs"),
            ("hearbeat_secs = 5\n", "hearbeat_secs"),
            ("timezone = \"Europe/Paris\"\n", "timezone"),
            ("pc = \"pc 01\"\n", "pc"),
            ("server = \"ftp://x\"\n", "server"),
        ];
        for (text, key) in cases {
            let path = write(dir.path(), text);
            let err = AgentConfig::load_from(&path, none()).unwrap_err();
            let ConfigError::BadKey { key: named, .. } = &err else {
                panic!("{err:?}");
            };
            assert!(named.contains(key), "{text:?} gave key {named:?}");
            assert!(err.message(Lang::Id).contains("konfigurasi salah"));
        }
    }

    #[test]
    fn the_documented_example_is_valid_and_states_the_defaults() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/agent.example.toml");
        let config = AgentConfig::load_from(&example, Env::prefixed("JEJAK_TEST_NONE_")).unwrap();
        assert_eq!(config, AgentConfig::default());
        let text = std::fs::read_to_string(&example).unwrap();
        for key in ENV_KEYS {
            assert!(
                text.contains(&format!("{key} =")),
                "{key} is not documented"
            );
        }
    }

    #[test]
    fn what_init_writes_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let config = AgentConfig {
            library: Some("3302012001".into()),
            pc: Some("pc-03".into()),
            timezone: "Asia/Makassar".into(),
            server: Some("http://127.0.0.1:8080".into()),
            lang: "en".into(),
            ..AgentConfig::default()
        };
        let path = write(dir.path(), &config.to_toml());
        let read = AgentConfig::load_from(&path, Env::prefixed("JEJAK_TEST_NONE_")).unwrap();
        assert_eq!(read, config);
    }
}
