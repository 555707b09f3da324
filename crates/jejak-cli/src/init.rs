//! `jejak init`: sets up a PC's data directory (configuration, patron secret, store).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use jejak_agent::checkin::pin::{PIN_FILE, PinHash};
use jejak_agent::clock::{Clock, SystemClock};
use jejak_agent::config::{AgentConfig, STORE_FILE, config_path};
use jejak_agent::patron::{PatronSecret, SECRET_FILE};
use jejak_agent::store::Store;
use jejak_domain::{Lang, LibraryCode, PcCode, Zone};

use crate::context::Context;
use crate::errors::UsageError;
use crate::output;
use crate::output::outln;

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The library code: its NPP or the district's code for it.
    #[arg(long)]
    library: String,
    /// This PC's code inside the library, e.g. pc-01.
    #[arg(long)]
    pc: String,
    /// The district server's URL, e.g. https://perpusda.example.go.id.
    #[arg(long)]
    server: Option<String>,
    /// Asia/Jakarta (WIB), Asia/Makassar (WITA) or Asia/Jayapura (WIT).
    #[arg(long, default_value = "Asia/Jakarta")]
    timezone: String,
    /// The library's patron secret (64 hex characters), to give all PCs of one library
    /// the same secret; by default a new one is made. Copy it from patron.key of the
    /// library's first PC.
    #[arg(long, env = "JEJAK_PATRON_SECRET", hide_env_values = true)]
    patron_secret: Option<String>,
    /// The device token printed by `jejak server add-device` (can also be given later
    /// with `jejak enroll`).
    #[arg(long, env = "JEJAK_TOKEN", hide_env_values = true, requires = "server")]
    token: Option<String>,
    /// The librarian's PIN for the librarian screen of the check-in page (6 to 64
    /// characters, at least 6 digits; only an Argon2id hash is kept, in librarian.pin).
    /// Run init again with a new --pin to change it.
    #[arg(long, env = "JEJAK_PIN", hide_env_values = true)]
    pin: Option<String>,
    /// Set up again even if this data directory belongs to another library or PC.
    #[arg(long)]
    force: bool,
}

/// What `init` did.
#[derive(Debug, serde::Serialize)]
pub struct Initialised {
    pub data_dir: PathBuf,
    pub library: String,
    pub pc: String,
    pub timezone: String,
    pub server: Option<String>,
    pub epoch: uuid::Uuid,
    pub new_patron_secret: bool,
}

pub fn run(ctx: &Context, args: InitArgs) -> anyhow::Result<()> {
    let secret = match &args.patron_secret {
        Some(text) => Some(PatronSecret::from_hex(text).ok_or_else(|| {
            UsageError::new(
                "--patron-secret harus 64 karakter heksadesimal (isi berkas patron.key komputer pertama perpustakaan ini)",
                "--patron-secret must be 64 hexadecimal characters (the content of patron.key on the library's first PC)",
            )
        })?),
        None => None,
    };
    // Checked before anything is written, so a PIN that is too short changes nothing.
    let pin = match args.pin.as_deref().map(PinHash::new).transpose() {
        Ok(pin) => pin,
        Err(e) => {
            return Err(UsageError::new(
                format!("--pin: {}", e.message(Lang::Id)),
                format!("--pin: {}", e.message(Lang::En)),
            )
            .into());
        }
    };
    let config = AgentConfig {
        library: Some(LibraryCode::parse(&args.library)?.to_string()),
        pc: Some(PcCode::parse(&args.pc)?.to_string()),
        timezone: Zone::parse(&args.timezone)?.code().to_string(),
        server: args.server.clone(),
        lang: ctx.lang.code().to_string(),
        ..AgentConfig::default()
    };
    let done = initialise(
        &ctx.data_dir,
        config,
        secret,
        args.force,
        Arc::new(SystemClock::new()),
    )?;
    let key = match (&args.token, &args.server) {
        (Some(token), Some(server)) => {
            jejak_agent::config::save_token(&ctx.data_dir, token)?;
            Some(crate::sync_cmd::register_signing_key(ctx, server, token)?)
        }
        _ => None,
    };
    if let Some(pin) = &pin {
        pin.save(&ctx.data_dir.join(PIN_FILE))?;
    }
    if ctx.json {
        let mut value = serde_json::to_value(&done)?;
        if let Some(key) = &key {
            value["signing_key"] = serde_json::to_value(key)?;
        }
        return output::print_json(&value);
    }
    let lang = ctx.lang;
    outln!(
        "{} {}/{} ({})",
        lang.pick("Komputer siap:", "PC ready:"),
        done.library,
        done.pc,
        done.timezone
    )?;
    outln!(
        "{} {}",
        lang.pick("Folder data:", "Data folder:"),
        done.data_dir.display()
    )?;
    if let Some(key) = &key {
        key.print(lang, ctx.verbose)?;
    }
    if pin.is_some() {
        let port = AgentConfig::load(&ctx.data_dir)
            .map(|c| c.checkin_port)
            .unwrap_or(jejak_agent::checkin::DEFAULT_PORT);
        outln!(
            "{} http://127.0.0.1:{port}/pustakawan",
            lang.pick(
                "PIN pustakawan disimpan (hanya hash-nya). Layar pustakawan:",
                "Librarian PIN saved (only its hash). Librarian screen:"
            )
        )?;
    }
    if done.new_patron_secret {
        outln!(
            "{}",
            lang.pick(
                "Rahasia pengguna baru dibuat (patron.key). Pakai isi berkas itu dengan --patron-secret di komputer lain perpustakaan ini.",
                "A new patron secret was made (patron.key). Use its content with --patron-secret on the library's other PCs."
            )
        )?;
    }
    Ok(())
}

/// Sets up `data_dir` for one PC. Used by `jejak init` and by the demo, so that the
/// demo's PCs are set up exactly as real ones are.
pub fn initialise(
    data_dir: &Path,
    config: AgentConfig,
    secret: Option<PatronSecret>,
    force: bool,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Initialised> {
    // `JEJAK_CONFIG` may put the file outside the data directory (a service keeps it in
    // /etc/jejak); the agent reads the same path.
    let config_path = config_path(data_dir);
    if config_path.exists() && !force {
        let existing = AgentConfig::load(data_dir)?;
        // A file that names no library and no PC (the example the install script puts in
        // /etc/jejak) belongs to nobody yet.
        let owned = existing.library.is_some() || existing.pc.is_some();
        if owned && (existing.library != config.library || existing.pc != config.pc) {
            let owner = format!(
                "{}/{}",
                existing.library.unwrap_or_default(),
                existing.pc.unwrap_or_default()
            );
            return Err(UsageError::new(
                format!(
                    "folder {} sudah dipakai untuk {owner}; pakai --force untuk menggantinya (data yang ada tetap disimpan)",
                    data_dir.display(),
                ),
                format!(
                    "{} is already set up for {owner}; use --force to change it (existing data is kept)",
                    data_dir.display(),
                ),
            )
            .into());
        }
    }
    create_private_dir(data_dir)?;
    write_atomically(
        &config_path,
        merged_config(&config_path, &config)?.as_bytes(),
    )?;

    let secret_path = data_dir.join(SECRET_FILE);
    let new_patron_secret = match secret {
        Some(secret) => {
            secret.save(&secret_path)?;
            false
        }
        None if secret_path.exists() => {
            PatronSecret::load(&secret_path)?;
            false
        }
        None => {
            PatronSecret::generate().save(&secret_path)?;
            true
        }
    };
    let identity = config.identity(data_dir)?;
    let (store, _) = Store::open(&data_dir.join(STORE_FILE), identity.clone(), clock)?;
    Ok(Initialised {
        data_dir: data_dir.to_path_buf(),
        library: identity.library.to_string(),
        pc: identity.pc.to_string(),
        timezone: config.timezone,
        server: config.server,
        epoch: store.epoch(),
        new_patron_secret,
    })
}

/// The configuration file `jejak init` writes: the keys it sets (library, PC, zone,
/// server, language) over whatever else an existing file holds, so that running it again
/// keeps an administrator's other settings (the check-in port, retention, …).
fn merged_config(path: &Path, config: &AgentConfig) -> anyhow::Result<String> {
    let fresh = config.to_toml();
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(fresh);
    };
    let mut table: toml::Table = text
        .parse()
        .with_context(|| format!("cannot read {}", path.display()))?;
    let keys: toml::Table = fresh.parse()?;
    table.extend(keys);
    Ok(toml::to_string(&table)?)
}

/// Sets one key of `agent.toml`, keeping every other key the file has.
pub fn set_config_key(data_dir: &Path, key: &str, value: &str) -> anyhow::Result<()> {
    let path = config_path(data_dir);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let mut table: toml::Table = text
        .parse()
        .with_context(|| format!("cannot read {}", path.display()))?;
    table.insert(key.to_string(), toml::Value::String(value.to_string()));
    write_atomically(&path, toml::to_string(&table)?.as_bytes())?;
    // Read it back: a value the agent would refuse must not be left in the file.
    AgentConfig::load(data_dir)?;
    Ok(())
}

/// The data directory holds patron categories and the patron secret: only the agent's
/// user (on Windows: SYSTEM and the Administrators) may read it.
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    jejak_agent::platform::create_private_dir(dir)
        .with_context(|| format!("cannot create or restrict {}", dir.display()))
}

/// Writes a file so that a power cut leaves either the old or the new content.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut file =
        std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
