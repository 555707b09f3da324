//! `jejak server …`: the district server's commands (set up, run, enroll, import USB
//! bundles).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use jejak_domain::{
    DetailField, LibraryCode, LibraryDetails, LibraryDetailsEdit, LibraryDetailsError, PcCode, Zone,
};
use jejak_server::bundle_import::{self, ImportError};
pub use jejak_server::bundle_import::{ImportSummary, ImportTrust};
use jejak_server::{AppState, PostgresStore, ServerConfig, ServerStore, SqliteStore};
use jejak_sync::bundle::BundleTrust;

use crate::context::Context;
use crate::errors::{UsageError, file_error};
use crate::output;
use crate::output::{errln, outln};

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The server's database: `sqlite:PATH` (or a plain path), or a PostgreSQL URL
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DB`. By default the file the systemd
    /// service uses, /var/lib/jejak-server/jejak-server.db, when run as root, and
    /// ~/.local/share/jejak-server/jejak-server.db otherwise.
    #[arg(long, global = true, env = "JEJAK_DATABASE", value_name = "DATABASE")]
    database: Option<String>,
    #[command(subcommand)]
    command: ServerCommand,
}

/// The server's database when neither `--database` nor `JEJAK_DATABASE` names one: the
/// file the systemd service keeps (`scripts/install-linux.sh`: `/var/lib/jejak-server`)
/// for root or an administrator, else the user's data folder (`$XDG_DATA_HOME` or
/// `~/.local/share`), beside where a PC's agent would keep its own data. Never a path
/// relative to wherever the command happens to run.
pub fn default_database() -> String {
    let folder = jejak_agent::platform::default_data_dir().with_file_name("jejak-server");
    format!("sqlite:{}", folder.join("jejak-server.db").display())
}

/// The refusal for a SQLite database file that does not exist, naming the ways to
/// point at the right one.
pub fn missing_database(path: &Path) -> UsageError {
    let service = Path::new(SERVICE_DATABASE);
    let (id_hint, en_hint) = if path == service {
        (String::new(), String::new())
    } else {
        (
            format!(" (layanan jejak-server memakai sqlite:{SERVICE_DATABASE})"),
            format!(" (the jejak-server service uses sqlite:{SERVICE_DATABASE})"),
        )
    };
    UsageError::new(
        format!(
            "basis data server {} tidak ada. Tunjuk basis datanya dengan --database sqlite:PATH atau JEJAK_DATABASE{id_hint}",
            path.display()
        ),
        format!(
            "the server database {} does not exist. Point at it with --database sqlite:PATH or JEJAK_DATABASE{en_hint}",
            path.display()
        ),
    )
}

/// Where `scripts/install-linux.sh` has the jejak-server service keep its database.
const SERVICE_DATABASE: &str = "/var/lib/jejak-server/jejak-server.db";

impl ServerArgs {
    /// Whether the command serves (`run`), and so logs what it does like a daemon.
    pub fn serves(&self) -> bool {
        matches!(self.command, ServerCommand::Run(_))
    }
}

#[derive(Debug, Subcommand)]
enum ServerCommand {
    /// Create the server's database (and apply migrations to an existing one).
    Init,
    /// Serve the HTTP API until SIGTERM or Ctrl-C.
    Run(RunArgs),
    /// Write a consistent copy of the SQLite database to FILE while the server runs
    /// (PostgreSQL: use pg_dump, see the README).
    Backup {
        /// The new backup file (it must not exist).
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
    /// Replace the (stopped) server's SQLite database with a backup, after checking it
    /// (a sound SQLite file, a Jejak server's, not from a newer jejak). The database it
    /// replaces is kept beside it. The PCs then send again what the backup lacks.
    Restore {
        /// The backup file.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
    /// Remove raw sessions and pc events older than the last N whole months (before the
    /// current one); the reports of those months stay as they are.
    Prune {
        /// Whole months to keep before the current one.
        #[arg(long, value_name = "N")]
        keep_months: u32,
    },
    /// Give the embedded SQLite file's free pages back to the disk (VACUUM), for
    /// example after `prune`; ingest waits while it runs. PostgreSQL needs no such step
    /// (autovacuum).
    Compact,
    /// Add a village library, with as much of its identity and signatories as is known
    /// (the rest can be set later with edit-library).
    AddLibrary {
        /// The library's code (NPP or the district's code).
        library: String,
        /// The library's name, e.g. "Perpustakaan Desa Dermaji".
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "Asia/Jakarta")]
        timezone: String,
        #[command(flatten)]
        details: DetailOptions,
    },
    /// Change a library's name or details: only the options given change, and an empty
    /// value (--kecamatan "") clears a field. The time zone cannot change (the stored
    /// days were counted in it).
    EditLibrary {
        /// The library's code.
        library: String,
        /// The library's new name.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        details: DetailOptions,
    },
    /// Enroll a PC; prints its token once (the server keeps only a hash).
    AddDevice {
        #[arg(long)]
        library: String,
        #[arg(long)]
        pc: String,
    },
    /// Revoke a PC's token (its data stays; its batches are refused until re-enrolled).
    RevokeDevice {
        #[arg(long)]
        library: String,
        #[arg(long)]
        pc: String,
    },
    /// Issue a read-only staff token for reports; prints it once.
    AddStaff { name: String },
    /// Revoke a staff member's token (a lost one, or someone who left): reports and the
    /// dashboard refuse it at once, dashboard sessions it signed in included.
    RevokeStaff { name: String },
    /// Set, show or clear the letterhead (kop surat) printed above every report.
    /// Without options it shows the current one. `--line` replaces the lines and
    /// `--logo` the logo; what is not given is kept.
    Letterhead {
        /// A line of the letterhead, top to bottom (the first is the most prominent);
        /// repeat for each line, e.g. --line "PEMERINTAH KABUPATEN BANYUMAS".
        #[arg(long = "line", value_name = "TEXT")]
        lines: Vec<String>,
        /// A logo (PNG or JPEG, at most 256 KiB) shown left of the lines in HTML.
        #[arg(long, value_name = "FILE.png")]
        logo: Option<PathBuf>,
        /// Remove the letterhead.
        #[arg(long, conflicts_with_all = ["lines", "logo"])]
        clear: bool,
    },
    /// List libraries and enrolled PCs.
    List,
    /// Recount the report rollups from the stored sessions and pc events and compare;
    /// exits 1 when they differ. `--repair` replaces them with the recount.
    CheckRollups {
        /// Replace the rollups with the recount (after showing the differences).
        #[arg(long)]
        repair: bool,
    },
    /// Ingest a USB bundle and write its acknowledgement file.
    Import {
        file: PathBuf,
        /// Where to write the acknowledgement (default: FILE.ack.json).
        #[arg(long)]
        ack: Option<PathBuf>,
        /// The fingerprint of the PC's signing key, read on the PC itself (`jejak status`,
        /// or what `jejak sync --export` printed): needed once, for a PC that has not
        /// registered its key online. The key is then registered with the server.
        #[arg(long, value_name = "FINGERPRINT")]
        trust_key: Option<String>,
        /// Accept a bundle that is not signed (made by an older jejak), checked only by
        /// the token's hash, which anyone holding a copy of this database could forge.
        #[arg(long)]
        accept_unsigned: bool,
    },
    /// Copy a whole SQLite server to an empty PostgreSQL database (stop the server
    /// first). Resumable: run it again after an interruption. Verified by row counts
    /// and a rollup check; exits 1 when they disagree.
    Copy {
        /// The SQLite server: `sqlite:PATH` (or a plain path).
        #[arg(long)]
        from: String,
        /// The PostgreSQL database: `postgres://USER[:PASSWORD]@HOST[:PORT]/DB`.
        #[arg(long)]
        to: String,
        /// Rows per chunk (one transaction each).
        #[arg(long, default_value_t = 5_000)]
        chunk_rows: usize,
    },
}

/// A library's details as `add-library` and `edit-library` take them; each is printed
/// on the library's reports.
#[derive(Debug, Args)]
struct DetailOptions {
    /// Nomor Pokok Perpustakaan, 15 characters, e.g. 3302012D1000001.
    #[arg(long)]
    npp: Option<String>,
    /// The village (desa), e.g. Dermaji.
    #[arg(long)]
    desa: Option<String>,
    /// The sub-district (kecamatan): the district matrix groups libraries by it.
    #[arg(long)]
    kecamatan: Option<String>,
    /// The library's address.
    #[arg(long)]
    address: Option<String>,
    /// The head of the village, who acknowledges the monthly report ("Mengetahui").
    #[arg(long)]
    kepala_desa: Option<String>,
    /// The library's manager (pengelola), who signs the monthly report.
    #[arg(long)]
    manager: Option<String>,
    /// The manager's NIP (18 digits), when they are a civil servant.
    #[arg(long)]
    nip: Option<String>,
}

impl DetailOptions {
    /// The options given, validated: the first refused value stops the command before
    /// anything is stored.
    fn edit(&self) -> Result<LibraryDetailsEdit, LibraryDetailsError> {
        let given = [
            (DetailField::Npp, &self.npp),
            (DetailField::Desa, &self.desa),
            (DetailField::Kecamatan, &self.kecamatan),
            (DetailField::Address, &self.address),
            (DetailField::KepalaDesa, &self.kepala_desa),
            (DetailField::Manager, &self.manager),
            (DetailField::ManagerNip, &self.nip),
        ];
        let mut edit = LibraryDetailsEdit::default();
        for (field, value) in given {
            if let Some(value) = value {
                edit.set(field, value)?;
            }
        }
        Ok(edit)
    }
}

/// `jejak server run`'s options.
#[derive(Debug, Args)]
struct RunArgs {
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Keep raw sessions and pc events for this many whole months before the current
    /// one, pruning older ones once a day (the reports' rollups are kept); 0 keeps
    /// everything.
    #[arg(long, env = "JEJAK_RETAIN_MONTHS", default_value_t = 0)]
    retain_months: u32,
    #[command(flatten)]
    serving: ServingArgs,
    /// Write a backup of the SQLite database into this folder at start and then
    /// every `--backup-every`, keeping the newest `--backup-keep`.
    #[arg(long, env = "JEJAK_BACKUP_DIR", value_name = "DIR")]
    backup_dir: Option<PathBuf>,
    /// How often to back up: 24h, 12h, 90m, 1d…
    #[arg(long, env = "JEJAK_BACKUP_EVERY", default_value = "24h", value_parser = crate::backup_cmd::parse_interval)]
    backup_every: std::time::Duration,
    /// How many backups to keep in `--backup-dir` (the oldest go first).
    #[arg(long, env = "JEJAK_BACKUP_KEEP", default_value_t = 7)]
    backup_keep: usize,
    /// Serve HTTPS with this PEM certificate chain (the server's certificate first),
    /// for districts without a reverse proxy; needs `--tls-key`.
    #[arg(
        long,
        env = "JEJAK_TLS_CERT",
        value_name = "FILE.pem",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of `--tls-cert`.
    #[arg(
        long,
        env = "JEJAK_TLS_KEY",
        value_name = "FILE.pem",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
}

/// How `jejak server run` treats connections (see `jejak_server::Serving`).
#[derive(Debug, Args)]
struct ServingArgs {
    /// Seconds from the first byte of a request's headers to their end; a slower client
    /// is disconnected.
    #[arg(
        long,
        env = "JEJAK_HEADER_TIMEOUT",
        value_name = "SECS",
        default_value_t = 20
    )]
    header_timeout: u64,
    /// Seconds a request body may take, plus one second per 1 KiB received (so a slow
    /// but steady link is never cut off, and a client sending a byte at a time is).
    #[arg(
        long,
        env = "JEJAK_BODY_TIMEOUT",
        value_name = "SECS",
        default_value_t = 30
    )]
    body_timeout: u64,
    /// Seconds a kept-alive connection may sit idle before it is closed.
    #[arg(
        long,
        env = "JEJAK_IDLE_TIMEOUT",
        value_name = "SECS",
        default_value_t = 30
    )]
    idle_timeout: u64,
    /// The most connections open at once; more are refused with 503 (keep it well under
    /// the open-file limit, `LimitNOFILE` in the systemd unit).
    #[arg(long, env = "JEJAK_MAX_CONNECTIONS", default_value_t = 1024)]
    max_connections: usize,
    /// Seconds that requests in flight get to finish after SIGTERM before their
    /// connections are closed.
    #[arg(
        long,
        env = "JEJAK_SHUTDOWN_GRACE",
        value_name = "SECS",
        default_value_t = 10
    )]
    shutdown_grace: u64,
    /// PostgreSQL only: seconds one statement may run (waiting for a lock included)
    /// before it is cancelled and the batch answered 503 with Retry-After.
    #[arg(
        long,
        env = "JEJAK_STATEMENT_TIMEOUT",
        value_name = "SECS",
        default_value_t = 30
    )]
    statement_timeout: u64,
    /// A host name the dashboard answers to, e.g. perpusda.example.go.id (repeat for
    /// more). IP addresses and localhost always work; a name not listed is refused (421),
    /// so another site pointed at this server cannot show it.
    #[arg(
        long = "dashboard-host",
        env = "JEJAK_DASHBOARD_HOSTS",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    dashboard_hosts: Vec<String>,
    /// The server is reached over HTTPS through a proxy (nginx, Caddy) in front of it:
    /// the dashboard's cookies are then marked Secure.
    #[arg(long, env = "JEJAK_BEHIND_TLS_PROXY")]
    behind_tls_proxy: bool,
}

impl ServingArgs {
    fn serving(&self) -> anyhow::Result<jejak_server::Serving> {
        let positive = |name: &str, value: u64| -> anyhow::Result<std::time::Duration> {
            if value == 0 {
                return Err(UsageError::new(
                    format!("--{name} harus lebih dari 0 detik"),
                    format!("--{name} must be more than 0 seconds"),
                )
                .into());
            }
            Ok(std::time::Duration::from_secs(value))
        };
        if self.max_connections == 0 {
            return Err(UsageError::new(
                "--max-connections harus paling sedikit 1",
                "--max-connections must be at least 1",
            )
            .into());
        }
        Ok(jejak_server::Serving {
            header_timeout: positive("header-timeout", self.header_timeout)?,
            body_timeout: positive("body-timeout", self.body_timeout)?,
            idle_timeout: positive("idle-timeout", self.idle_timeout)?,
            max_connections: self.max_connections,
            shutdown_grace: std::time::Duration::from_secs(self.shutdown_grace),
            ..jejak_server::Serving::default()
        })
    }
}

/// Whether a `--database` value names a PostgreSQL database (`postgres://…` or
/// `postgresql://…`) rather than a SQLite file.
pub fn is_postgres(database: &str) -> bool {
    database.starts_with("postgres://") || database.starts_with("postgresql://")
}

/// The database a `--database` value names (SQLite: `sqlite:PATH` or a plain path).
pub fn sqlite_path(database: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = database.strip_prefix("sqlite:") {
        return Ok(PathBuf::from(path));
    }
    if database.contains("://") {
        return Err(UsageError::new(
            format!("basis data '{database}' belum didukung; pakai sqlite:PATH atau postgres://…"),
            format!("database '{database}' is not supported; use sqlite:PATH or postgres://…"),
        )
        .into());
    }
    Ok(PathBuf::from(database))
}

/// A database URL without its password, to show to people and logs.
pub fn redacted(database: &str) -> String {
    let Some((scheme, rest)) = database.split_once("://") else {
        return database.to_string();
    };
    match rest.split_once('@') {
        Some((user, host)) => {
            let user = user.split(':').next().unwrap_or("");
            format!("{scheme}://{user}@{host}")
        }
        None => database.to_string(),
    }
}

/// Opens the store a `--database` value names, choosing the backend once, by its
/// scheme: PostgreSQL for `postgres://`, else the embedded SQLite file.
pub async fn open_store(database: &str) -> anyhow::Result<Arc<dyn ServerStore>> {
    open_store_with(database, jejak_server::PostgresOptions::default()).await
}

/// [`open_store`] with PostgreSQL's options (`jejak server run` sets a statement
/// timeout).
async fn open_store_with(
    database: &str,
    options: jejak_server::PostgresOptions,
) -> anyhow::Result<Arc<dyn ServerStore>> {
    if is_postgres(database) {
        let store = PostgresStore::open_with(database, options)
            .await
            .with_context(|| format!("cannot open {}", redacted(database)))?;
        return Ok(Arc::new(store));
    }
    let path = sqlite_path(database)?;
    if let Some(folder) = path
        .parent()
        .filter(|f| !f.as_os_str().is_empty() && !f.exists())
    {
        // The default database's folder (~/.local/share/jejak-server) is made, private,
        // the first time; a folder the user named that is not there is more likely a typo.
        if database != default_database() {
            return Err(UsageError::new(
                format!(
                    "folder {} untuk basis data server tidak ada; periksa --database (atau JEJAK_DATABASE), atau buat foldernya dulu",
                    folder.display()
                ),
                format!(
                    "the folder {} for the server database does not exist; check --database (or JEJAK_DATABASE), or create the folder first",
                    folder.display()
                ),
            )
            .into());
        }
        jejak_agent::platform::create_private_dir(folder)
            .map_err(|e| file_error(folder, true, e))?;
    }
    let store =
        SqliteStore::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(Arc::new(store))
}

pub fn run(ctx: &Context, args: ServerArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(ctx, args))
}

/// The SQLite file a `--database` value names, which must exist (a command that only
/// reads or rewrites it must not create an empty one).
fn existing_sqlite_path(database: &str) -> anyhow::Result<PathBuf> {
    let path = sqlite_path(database)?;
    if !path.exists() {
        return Err(missing_database(&path).into());
    }
    Ok(path)
}

/// `jejak server copy --from sqlite:PATH --to postgres://…`.
async fn copy(ctx: &Context, from: &str, to: &str, chunk_rows: usize) -> anyhow::Result<()> {
    let lang = ctx.lang;
    let path = existing_sqlite_path(from)?;
    if !is_postgres(to) {
        return Err(UsageError::new(
            "--to harus basis data PostgreSQL (postgres://…)",
            "--to must be a PostgreSQL database (postgres://…)",
        )
        .into());
    }
    let target = PostgresStore::open(to)
        .await
        .with_context(|| format!("cannot open {}", redacted(to)))?;
    let report = jejak_server::postgres::copy_from_sqlite(
        &path,
        &target,
        jejak_server::postgres::CopyOptions {
            chunk_rows,
            stop_after_chunks: None,
        },
    )
    .await?;
    if ctx.json {
        output::print_json(&report)?;
    } else {
        for count in &report.counts {
            outln!(
                "{:<20} {:>12} {:>12}",
                count.table,
                count.source,
                count.target
            )?;
        }
        outln!(
            "{}",
            if report.is_verified() {
                lang.pick(
                    "Salinan lengkap: jumlah baris sama dan rollup sesuai hitung ulang.",
                    "Copy complete: row counts agree and the rollups equal a recount.",
                )
            } else {
                lang.pick(
                    "Salinan TIDAK cocok: lihat jumlah di atas.",
                    "The copy does NOT agree: see the counts above.",
                )
            }
        )?;
    }
    if !report.is_verified() {
        std::process::exit(1);
    }
    Ok(())
}

/// `jejak server compact`: the SQLite file (its WAL emptied into it) before and after a
/// VACUUM.
async fn compact(ctx: &Context, database: &str) -> anyhow::Result<()> {
    let lang = ctx.lang;
    if is_postgres(database) {
        return Err(UsageError::new(
            "compact hanya untuk basis data SQLite; PostgreSQL merapikan dirinya sendiri (autovacuum)",
            "compact is for the SQLite database; PostgreSQL reclaims space itself (autovacuum)",
        )
        .into());
    }
    let path = existing_sqlite_path(database)?;
    let size = |path: &std::path::Path| std::fs::metadata(path).map_or(0, |m| m.len());
    let mut wal = path.clone().into_os_string();
    wal.push("-wal");
    let before = size(&path) + size(std::path::Path::new(&wal));
    let store =
        SqliteStore::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    let after = store.compact().await?;
    if ctx.json {
        return output::print_json(
            &serde_json::json!({ "before_bytes": before, "after_bytes": after }),
        );
    }
    outln!(
        "{} {} → {} MB",
        lang.pick("Basis data dipadatkan:", "Database compacted:"),
        format_mb(before),
        format_mb(after)
    )?;
    Ok(())
}

/// Bytes as megabytes with one decimal.
fn format_mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
}

async fn run_async(ctx: &Context, args: ServerArgs) -> anyhow::Result<()> {
    let lang = ctx.lang;
    let ServerArgs { database, command } = args;
    let database = database.unwrap_or_else(default_database);
    // A copy names its two databases itself and opens no other.
    if let ServerCommand::Copy {
        from,
        to,
        chunk_rows,
    } = &command
    {
        return copy(ctx, from, to, *chunk_rows).await;
    }
    if let ServerCommand::Compact = &command {
        return compact(ctx, &database).await;
    }
    // A backup reads the file beside a running server; a restore must not open it.
    if let ServerCommand::Backup { to } = &command {
        return crate::backup_cmd::backup_to(ctx, &database, to);
    }
    if let ServerCommand::Restore { from } = &command {
        return crate::backup_cmd::restore_from(ctx, &database, from);
    }
    let command = match command {
        ServerCommand::Run(args) => return serve(ctx, &database, args).await,
        other => other,
    };
    let store = open_store(&database).await?;
    match command {
        ServerCommand::Init => {
            let shown = if is_postgres(&database) {
                redacted(&database)
            } else {
                sqlite_path(&database)?.display().to_string()
            };
            if ctx.json {
                return output::print_json(&serde_json::json!({ "database": shown }));
            }
            outln!(
                "{} {}",
                lang.pick("Basis data server siap:", "Server database ready:"),
                shown
            )?;
        }
        ServerCommand::Prune { keep_months } => {
            let month = retention_cutoff(chrono::Utc::now(), keep_months);
            let pruned = store.prune_raw(month).await?;
            if ctx.json {
                return output::print_json(&pruned);
            }
            outln!(
                "{}",
                lang.pick(
                    &format!(
                        "{} sesi dan {} peristiwa komputer sebelum {} dihapus; rekap bulanannya tetap.",
                        pruned.sessions,
                        pruned.events,
                        pruned.kept_from.format("%Y-%m")
                    ),
                    &format!(
                        "Removed {} sessions and {} pc events before {}; their monthly rollups stay.",
                        pruned.sessions,
                        pruned.events,
                        pruned.kept_from.format("%Y-%m")
                    ),
                )
            )?;
        }
        ServerCommand::AddLibrary {
            library,
            name,
            timezone,
            details,
        } => {
            let code = LibraryCode::parse(&library)?;
            let zone = Zone::parse(&timezone)?;
            let mut values = LibraryDetails::default();
            details.edit()?.apply(&mut values);
            store
                .add_library_with_details(&code, &name, zone, &values)
                .await
                .map_err(usage)?;
            if ctx.json {
                return output::print_json(&serde_json::json!({
                    "library": code, "name": name.trim(), "timezone": zone.code(), "details": values
                }));
            }
            outln!(
                "{} {code} ({})",
                lang.pick("Perpustakaan ditambahkan:", "Library added:"),
                name.trim()
            )?;
            print_details(&values, lang)?;
        }
        ServerCommand::EditLibrary {
            library,
            name,
            details,
        } => {
            let code = LibraryCode::parse(&library)?;
            let edit = details.edit()?;
            if name.is_none() && edit.is_empty() {
                return Err(UsageError::new(
                    "tidak ada yang diubah: sebutkan opsi yang diganti, misalnya --kecamatan Lumbir atau --nip \"\" untuk mengosongkan NIP",
                    "nothing to change: give the options to change, e.g. --kecamatan Lumbir, or --nip \"\" to clear the NIP",
                )
                .into());
            }
            let edited = store
                .edit_library(&code, name.as_deref(), &edit)
                .await
                .map_err(usage)?;
            if ctx.json {
                return output::print_json(&edited);
            }
            outln!(
                "{} {code} ({})",
                lang.pick("Perpustakaan diubah:", "Library changed:"),
                edited.name
            )?;
            print_details(&edited.details, lang)?;
        }
        ServerCommand::AddDevice { library, pc } => {
            let (library, pc) = (LibraryCode::parse(&library)?, PcCode::parse(&pc)?);
            let token = store.add_device(&library, &pc).await.map_err(usage)?;
            if ctx.json {
                return output::print_json(
                    &serde_json::json!({ "library": library, "pc": pc, "token": token.expose() }),
                );
            }
            outln!("{}", token.expose())?;
            errln!(
                "{}",
                lang.pick(
                    "Token ini hanya ditampilkan sekali. Di komputer perpustakaan: jejak enroll --server URL --token TOKEN",
                    "This token is shown only once. On the library PC: jejak enroll --server URL --token TOKEN"
                )
            );
        }
        ServerCommand::RevokeDevice { library, pc } => {
            let (library, pc) = (LibraryCode::parse(&library)?, PcCode::parse(&pc)?);
            store.revoke_device(&library, &pc).await.map_err(usage)?;
            if ctx.json {
                return output::print_json(
                    &serde_json::json!({ "library": library, "pc": pc, "revoked": true }),
                );
            }
            outln!(
                "{} {library}/{pc}",
                lang.pick("Token dicabut:", "Token revoked:")
            )?;
        }
        ServerCommand::AddStaff { name } => {
            let token = store.add_staff(&name).await.map_err(usage)?;
            if ctx.json {
                return output::print_json(
                    &serde_json::json!({ "name": name, "token": token.expose() }),
                );
            }
            outln!("{}", token.expose())?;
        }
        ServerCommand::RevokeStaff { name } => {
            store.revoke_staff(&name).await.map_err(usage)?;
            if ctx.json {
                return output::print_json(&serde_json::json!({ "name": name, "revoked": true }));
            }
            outln!(
                "{} {name}",
                lang.pick("Token staf dicabut:", "Staff token revoked:")
            )?;
        }
        ServerCommand::Letterhead { lines, logo, clear } => {
            letterhead(ctx, store.as_ref(), lines, logo.as_deref(), clear).await?;
        }
        ServerCommand::CheckRollups { repair } => {
            return check_rollups(ctx, store.as_ref(), repair).await;
        }
        ServerCommand::List => {
            let libraries = store.libraries().await?;
            let devices = store.devices().await?;
            if ctx.json {
                return output::print_json(
                    &serde_json::json!({ "libraries": libraries, "devices": devices }),
                );
            }
            let rows = devices
                .iter()
                .map(|d| {
                    vec![
                        d.library.to_string(),
                        d.pc.to_string(),
                        if d.active {
                            lang.pick("aktif", "active")
                        } else {
                            lang.pick("dicabut", "revoked")
                        }
                        .to_string(),
                    ]
                })
                .collect();
            outln!(
                "{} {}",
                libraries.len(),
                lang.pick("perpustakaan", "libraries")
            )?;
            if !libraries.is_empty() {
                let blank = || "-".to_string();
                let library_rows = libraries
                    .iter()
                    .map(|l| {
                        let get =
                            |f: DetailField| l.details.get(f).map_or_else(blank, str::to_string);
                        vec![
                            l.code.to_string(),
                            l.name.clone(),
                            get(DetailField::Npp),
                            get(DetailField::Desa),
                            get(DetailField::Kecamatan),
                            get(DetailField::KepalaDesa),
                            get(DetailField::Manager),
                            l.details.manager_nip_grouped().unwrap_or_else(blank),
                        ]
                    })
                    .collect();
                outln!(
                    "{}",
                    output::table(
                        vec![
                            lang.pick("Kode", "Code").into(),
                            lang.pick("Nama", "Name").into(),
                            DetailField::Npp.label(lang).into(),
                            DetailField::Desa.label(lang).into(),
                            DetailField::Kecamatan.label(lang).into(),
                            DetailField::KepalaDesa.label(lang).into(),
                            DetailField::Manager.label(lang).into(),
                            "NIP".into(),
                        ],
                        library_rows
                    )
                )?;
            }
            outln!(
                "{}",
                output::table(
                    vec![
                        lang.pick("Perpustakaan", "Library").into(),
                        lang.pick("Komputer", "PC").into(),
                        lang.pick("Token", "Token").into()
                    ],
                    rows
                )
            )?;
        }
        // Handled before any store was opened.
        ServerCommand::Run(_)
        | ServerCommand::Copy { .. }
        | ServerCommand::Compact
        | ServerCommand::Backup { .. }
        | ServerCommand::Restore { .. } => {}
        ServerCommand::Import {
            file,
            ack,
            trust_key,
            accept_unsigned,
        } => {
            let ack_path = ack.unwrap_or_else(|| with_suffix(&file, ".ack.json"));
            let trust = ImportTrust {
                key_fingerprint: trust_key,
                accept_unsigned,
            };
            let summary = import_bundle(
                store.as_ref(),
                &file,
                &ack_path,
                &trust,
                &jejak_server::system_clock(),
            )
            .await?;
            // On stderr, so that it reaches a person in JSON mode too.
            if summary.trust == BundleTrust::TokenHash {
                errln!(
                    "{}",
                    lang.pick(
                        "Peringatan: berkas tanpa tanda tangan diterima (--accept-unsigned); hanya diperiksa dengan hash token, yang bisa dipalsukan oleh siapa pun yang memegang salinan basis data server. Perbarui jejak di komputer itu supaya berkasnya ditandatangani.",
                        "Warning: an unsigned bundle was accepted (--accept-unsigned); it was checked only by the token's hash, which anyone holding a copy of the server's database could forge. Update jejak on that PC so that its bundles are signed."
                    )
                );
            }
            if ctx.json {
                return output::print_json(&summary);
            }
            outln!(
                "{} {}/{}: {} {}, {} {}, {} {}. {} {}",
                lang.pick("Berkas diterima dari", "Bundle imported from"),
                summary.library,
                summary.pc,
                summary.new,
                lang.pick("baru", "new"),
                summary.duplicates,
                lang.pick("sudah ada", "already there"),
                summary.rejected,
                lang.pick("ditolak", "rejected"),
                lang.pick("Tanda terima:", "Acknowledgement:"),
                ack_path.display()
            )?;
        }
    }
    Ok(())
}

/// `jejak server run`: everything given is checked (the serving limits, the TLS files,
/// the backup folder, the address, which is taken at once) before the store is opened,
/// then the API is served until SIGTERM or Ctrl-C.
async fn serve(ctx: &Context, database: &str, args: RunArgs) -> anyhow::Result<()> {
    let lang = ctx.lang;
    let RunArgs {
        listen,
        retain_months,
        serving,
        backup_dir,
        backup_every,
        backup_keep,
        tls_cert,
        tls_key,
    } = args;
    let serving_settings = serving.serving()?;
    if backup_dir.is_some() && is_postgres(database) {
        return Err(UsageError::new(
            "--backup-dir hanya untuk SQLite; PostgreSQL dicadangkan dengan pg_dump atau pg_basebackup",
            "--backup-dir is for SQLite; back PostgreSQL up with pg_dump or pg_basebackup",
        )
        .into());
    }
    let tls = match (&tls_cert, &tls_key) {
        (Some(cert), Some(key)) => Some((
            jejak_server::http::tls::load_server_config(cert, key).map_err(|e| {
                UsageError::new(
                    "sertifikat atau kunci TLS tidak dapat dipakai; --tls-cert harus berkas PEM berisi sertifikat (server lebih dulu) dan --tls-key kunci pribadinya dalam PEM",
                    "the TLS certificate or key cannot be used; --tls-cert must be a PEM file of the certificate chain (the server's first) and --tls-key its private key in PEM",
                )
                .with_detail(e)
            })?,
            server_key_pin(cert)?,
        )),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        let (id, en) = if e.kind() == std::io::ErrorKind::AddrInUse {
            (
                format!("{listen} sudah dipakai program lain (server lain masih berjalan?); hentikan program itu atau pilih --listen lain"),
                format!("{listen} is already in use by another program (another server still running?); stop it or choose another --listen"),
            )
        } else {
            (
                format!("server tidak bisa mendengarkan di {listen}; pilih --listen lain, mis. 0.0.0.0:8080"),
                format!("the server cannot listen on {listen}; choose another --listen, e.g. 0.0.0.0:8080"),
            )
        };
        UsageError::new(id, en).exit_code(crate::errors::EXIT_FAILURE).with_detail(e)
    })?;
    let shutdown = crate::agent_cmd::shutdown_signal()?;
    let options = jejak_server::PostgresOptions {
        statement_timeout: Some(std::time::Duration::from_secs(
            serving.statement_timeout.max(1),
        )),
        ..jejak_server::PostgresOptions::default()
    };
    let store = open_store_with(database, options).await?;
    if retain_months > 0 {
        tokio::spawn(prune_daily(store.clone(), retain_months));
    }
    if let Some(dir) = backup_dir {
        std::fs::create_dir_all(&dir).map_err(|e| file_error(&dir, true, e))?;
        tokio::spawn(crate::backup_cmd::backup_periodically(
            store.clone(),
            dir,
            backup_every,
            backup_keep,
        ));
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    errln!(
        "{} {scheme}://{}",
        lang.pick("Server Jejak berjalan di", "Jejak server listening on"),
        listener.local_addr()?
    );
    let state = AppState::new(
        store,
        ServerConfig {
            serving: serving_settings,
            dashboard: jejak_server::DashboardSettings {
                hosts: serving.dashboard_hosts.clone(),
                // The server's own TLS makes its cookies Secure as a proxy's does.
                secure_cookies: serving.behind_tls_proxy || tls.is_some(),
            },
            ..ServerConfig::default()
        },
    );
    match tls {
        Some((config, pin)) => {
            errln!(
                "{} {pin}",
                lang.pick(
                    "Kunci server (untuk jejak enroll --server-key):",
                    "Server key (for jejak enroll --server-key):"
                )
            );
            jejak_server::run_tls(listener, config, state, shutdown).await?;
        }
        None => jejak_server::run(listener, state, shutdown).await?,
    }
    Ok(())
}

/// The most lines a letterhead may have, and the longest line: a kop is a few short
/// lines, and a long paste is a mistake better caught here than on paper.
const LETTERHEAD_MAX_LINES: usize = 8;
const LETTERHEAD_MAX_CHARS: usize = 150;
/// The largest logo: it travels inside every JSON report and HTML page.
const LOGO_MAX_BYTES: usize = 256 * 1024;

/// `jejak server letterhead`: sets, clears or shows the district's letterhead.
async fn letterhead(
    ctx: &Context,
    store: &dyn ServerStore,
    lines: Vec<String>,
    logo: Option<&Path>,
    clear: bool,
) -> anyhow::Result<()> {
    let lang = ctx.lang;
    if clear {
        store.set_letterhead(None).await?;
        if ctx.json {
            return output::print_json(&serde_json::json!({ "letterhead": null }));
        }
        outln!("{}", lang.pick("Kop surat dihapus.", "Letterhead removed."))?;
        return Ok(());
    }
    let mut current = store.letterhead().await?;
    if !lines.is_empty() || logo.is_some() {
        let mut next = current.take().unwrap_or_default();
        if !lines.is_empty() {
            next.lines = letterhead_lines(lines)?;
        }
        if let Some(path) = logo {
            next.logo = Some(read_logo(path)?);
        }
        store.set_letterhead(Some(next.clone())).await?;
        current = Some(next);
    }
    if ctx.json {
        let shown = current.as_ref().map(|l| {
            serde_json::json!({
                "lines": l.lines,
                "logo": l.logo.as_ref().map(|logo| serde_json::json!({
                    "media_type": logo.media_type,
                    "bytes": logo.bytes.len(),
                })),
            })
        });
        return output::print_json(&serde_json::json!({ "letterhead": shown }));
    }
    match current {
        None => outln!(
            "{}",
            lang.pick(
                "Belum ada kop surat. Atur dengan: jejak server letterhead --line \"PEMERINTAH KABUPATEN …\"",
                "No letterhead yet. Set one with: jejak server letterhead --line \"PEMERINTAH KABUPATEN …\""
            )
        )?,
        Some(letterhead) => {
            outln!("{}", lang.pick("Kop surat:", "Letterhead:"))?;
            for line in &letterhead.lines {
                outln!("  {line}")?;
            }
            if let Some(logo) = &letterhead.logo {
                outln!(
                    "  {} {}, {} {}",
                    lang.pick("Logo:", "Logo:"),
                    logo.media_type,
                    logo.bytes.len(),
                    lang.pick("bita", "bytes")
                )?;
            }
        }
    }
    Ok(())
}

/// The lines as given, trimmed; an empty, overlong or excessive line is refused.
fn letterhead_lines(lines: Vec<String>) -> anyhow::Result<Vec<String>> {
    if lines.len() > LETTERHEAD_MAX_LINES {
        return Err(UsageError::new(
            format!("kop surat paling banyak {LETTERHEAD_MAX_LINES} baris"),
            format!("a letterhead has at most {LETTERHEAD_MAX_LINES} lines"),
        )
        .into());
    }
    lines
        .into_iter()
        .map(|line| {
            let line = line.trim().to_string();
            if line.is_empty() || line.chars().count() > LETTERHEAD_MAX_CHARS {
                return Err(UsageError::new(
                    format!("setiap --line harus berisi 1–{LETTERHEAD_MAX_CHARS} karakter"),
                    format!("each --line must hold 1–{LETTERHEAD_MAX_CHARS} characters"),
                )
                .into());
            }
            Ok(line)
        })
        .collect()
}

/// Reads a logo file; its media type comes from its first bytes, not its name.
fn read_logo(path: &Path) -> anyhow::Result<jejak_server::report::Logo> {
    let bytes = std::fs::read(path).map_err(|e| file_error(path, false, e))?;
    let media_type = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        "image/jpeg"
    } else {
        return Err(UsageError::new(
            format!("logo {} bukan berkas PNG atau JPEG", path.display()),
            format!("the logo {} is not a PNG or JPEG file", path.display()),
        )
        .into());
    };
    if bytes.len() > LOGO_MAX_BYTES {
        return Err(UsageError::new(
            format!(
                "logo {} terlalu besar ({} KiB); paling besar {} KiB",
                path.display(),
                bytes.len() / 1024,
                LOGO_MAX_BYTES / 1024
            ),
            format!(
                "the logo {} is too large ({} KiB); at most {} KiB",
                path.display(),
                bytes.len() / 1024,
                LOGO_MAX_BYTES / 1024
            ),
        )
        .into());
    }
    Ok(jejak_server::report::Logo {
        media_type: media_type.to_string(),
        bytes,
    })
}

/// A library's details that are set, one `label: value` line each (the address and NIP
/// included), so the person who typed them sees what was stored.
fn print_details(details: &LibraryDetails, lang: jejak_domain::Lang) -> anyhow::Result<()> {
    for field in DetailField::ALL {
        let value = match field {
            DetailField::ManagerNip => details.manager_nip_grouped(),
            _ => details.get(field).map(str::to_string),
        };
        if let Some(value) = value {
            outln!("  {}: {value}", field.label(lang))?;
        }
    }
    Ok(())
}

/// An enrolment refusal in the user's language, with the next step.
fn usage(e: jejak_server::EnrollError) -> anyhow::Error {
    use jejak_server::EnrollError;
    let (id, en) = match e {
        EnrollError::Store(inner) => return inner.into(),
        EnrollError::LibraryExists(ref code) => (
            format!(
                "perpustakaan '{code}' sudah terdaftar; lihat daftarnya dengan jejak server list, atau pakai kode lain"
            ),
            format!(
                "library '{code}' is already registered; see the list with jejak server list, or use another code"
            ),
        ),
        EnrollError::UnknownLibrary(ref code) => (
            format!(
                "perpustakaan '{code}' belum terdaftar; tambahkan dulu: jejak server add-library {code} --name \"Perpustakaan Desa …\""
            ),
            format!(
                "library '{code}' is not registered; add it first: jejak server add-library {code} --name \"Perpustakaan Desa …\""
            ),
        ),
        EnrollError::DeviceActive {
            ref library,
            ref pc,
        } => (
            format!(
                "komputer {library}/{pc} sudah terdaftar dengan token aktif. Untuk memberinya token baru (tokennya hilang atau komputernya diganti), cabut dulu yang lama: jejak server revoke-device --library {library} --pc {pc}, lalu jalankan add-device lagi"
            ),
            format!(
                "PC {library}/{pc} is already enrolled with an active token. To give it a new token (the old one was lost, or the PC replaced), revoke the old one first: jejak server revoke-device --library {library} --pc {pc}, then run add-device again"
            ),
        ),
        EnrollError::UnknownDevice {
            ref library,
            ref pc,
        } => (
            format!(
                "komputer {library}/{pc} belum pernah didaftarkan; lihat yang terdaftar dengan jejak server list"
            ),
            format!(
                "PC {library}/{pc} was never enrolled; see the enrolled PCs with jejak server list"
            ),
        ),
        EnrollError::AlreadyRevoked {
            ref library,
            ref pc,
        } => (
            format!(
                "token komputer {library}/{pc} sudah dicabut sebelumnya, tidak ada yang perlu dicabut lagi; untuk mendaftarkannya lagi: jejak server add-device --library {library} --pc {pc}"
            ),
            format!(
                "the token of PC {library}/{pc} is already revoked, there is nothing left to revoke; to enroll it again: jejak server add-device --library {library} --pc {pc}"
            ),
        ),
        EnrollError::StaffExists(ref name) => (
            format!(
                "petugas '{name}' sudah punya token aktif. Token hanya ditampilkan sekali; jika hilang, cabut dulu: jejak server revoke-staff \"{name}\", lalu jalankan add-staff lagi"
            ),
            format!(
                "staff member '{name}' already has an active token. A token is shown only once; if it was lost, revoke it first: jejak server revoke-staff \"{name}\", then run add-staff again"
            ),
        ),
        EnrollError::UnknownStaff(ref name) => (
            format!(
                "petugas '{name}' tidak punya token aktif (belum pernah dibuat, atau sudah dicabut); periksa ejaan nama persis seperti saat add-staff"
            ),
            format!(
                "staff member '{name}' has no active token (never issued, or already revoked); check the name's spelling exactly as given to add-staff"
            ),
        ),
        EnrollError::InvalidName(_) => (
            "nama harus berisi 1 sampai 200 karakter, tanpa karakter kendali (baris baru, tab)"
                .to_string(),
            "a name must have 1 to 200 characters and no control characters (line breaks, tabs)"
                .to_string(),
        ),
    };
    UsageError::new(id, en).with_detail(&e).into()
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// `jejak server import`: the import itself is `jejak_server::bundle_import`; this maps
/// its refusals onto the command line's messages and exit codes.
pub async fn import_bundle(
    store: &dyn ServerStore,
    file: &Path,
    ack_path: &Path,
    trust: &ImportTrust,
    clock: &jejak_server::ServerClock,
) -> anyhow::Result<ImportSummary> {
    bundle_import::import_bundle(store, file, ack_path, trust, clock)
        .await
        .map_err(|e| match e {
            ImportError::Refused { id, en } => UsageError::new(id, en).into(),
            ImportError::File {
                path,
                writing,
                source,
            } => file_error(&path, writing, source).into(),
            other => anyhow::Error::new(other),
        })
}

/// `jejak server check-rollups [--repair]`.
async fn check_rollups(ctx: &Context, store: &dyn ServerStore, repair: bool) -> anyhow::Result<()> {
    let lang = ctx.lang;
    let found = store.check_rollups().await?;
    if ctx.json {
        output::print_json(&found)?;
    } else {
        for difference in &found.described {
            outln!("  {difference}")?;
        }
        if found.is_consistent() {
            outln!(
                "{}",
                lang.pick(
                    &format!(
                        "Rollup sesuai dengan hitung ulang dari data mentah ({} baris).",
                        found.rows_checked
                    ),
                    &format!(
                        "The rollups equal a recount from the raw rows ({} rows).",
                        found.rows_checked
                    ),
                )
            )?;
        } else {
            outln!(
                "{}",
                lang.pick(
                    &format!(
                        "{} baris rollup berbeda dari hitung ulang.",
                        found.differences
                    ),
                    &format!("{} rollup rows differ from the recount.", found.differences),
                )
            )?;
        }
    }
    if found.is_consistent() {
        return Ok(());
    }
    if repair {
        store.rebuild_rollups().await?;
        let again = store.check_rollups().await?;
        if again.is_consistent() {
            errln!(
                "{}",
                lang.pick(
                    "Rollup diganti dengan hitung ulang.",
                    "The rollups were replaced with the recount."
                )
            );
            return Ok(());
        }
    } else if !ctx.json {
        errln!(
            "{}",
            lang.pick(
                "Jalankan `jejak server check-rollups --repair` untuk menggantinya dengan hitung ulang.",
                "Run `jejak server check-rollups --repair` to replace them with the recount."
            )
        );
    }
    Err(crate::errors::SilentExit(1).into())
}

/// The first month kept when `keep_months` whole months before the current one (in WIB)
/// are kept.
fn retention_cutoff(now: chrono::DateTime<chrono::Utc>, keep_months: u32) -> chrono::NaiveDate {
    let today = now.with_timezone(&Zone::Wib.offset()).date_naive();
    let this_month = chrono::Datelike::with_day(&today, 1).unwrap_or(today);
    this_month
        .checked_sub_months(chrono::Months::new(keep_months))
        .unwrap_or(this_month)
}

/// The pin the PCs record for this certificate's key (`jejak enroll --server-key`).
fn server_key_pin(cert: &std::path::Path) -> anyhow::Result<String> {
    let chain = jejak_sync::tls::read_ca(cert)?;
    chain
        .first()
        .and_then(jejak_sync::tls::key_pin)
        .map(|pin| jejak_sync::tls::format_pin(&pin))
        .ok_or_else(|| anyhow::anyhow!("{}: the certificate cannot be read", cert.display()))
}

/// `jejak server run --retain-months N`: prunes at start and then once a day. A failure
/// is logged and tried again the next day; it never stops the server.
async fn prune_daily(store: Arc<dyn ServerStore>, keep_months: u32) {
    let mut every_day = tokio::time::interval(std::time::Duration::from_secs(24 * 3600));
    loop {
        every_day.tick().await;
        let month = retention_cutoff(chrono::Utc::now(), keep_months);
        match store.prune_raw(month).await {
            Ok(pruned) => tracing::info!(
                sessions = pruned.sessions,
                events = pruned.events,
                kept_from = %pruned.kept_from,
                "retention: raw records pruned"
            ),
            Err(e) => tracing::error!(error = %e, "retention: pruning failed; retried tomorrow"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retention_cutoff_counts_whole_months_in_wib() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-30T18:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        // 18:00 UTC on 30 November is 1 December in WIB.
        assert_eq!(
            retention_cutoff(now, 0),
            chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()
        );
        assert_eq!(
            retention_cutoff(now, 24),
            chrono::NaiveDate::from_ymd_opt(2024, 12, 1).unwrap()
        );
    }
}
