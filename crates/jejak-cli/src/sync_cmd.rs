//! `jejak sync` (one sync now, a dry run, or a USB bundle) and `jejak enroll`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use jejak_agent::clock::SystemClock;
use jejak_agent::config::{AgentConfig, config_path, load_token, save_token};
use jejak_agent::store::{SyncProblem, waiting_text};
use jejak_domain::Lang;
use jejak_sync::bundle::{self, BundleError};
use jejak_sync::signing::DeviceKey;
use jejak_sync::tls;
use jejak_sync::{
    Progress, ServerTrust, SyncClient, SyncError, SyncOptions, SyncReport, sync_once,
};

use crate::context::Context;
use crate::errors::{SilentExit, UsageError, file_error};
use crate::output;
use crate::output::{errln, outln};

/// Exit codes of `jejak sync`, so that scripts can tell what happened.
pub const EXIT_NOTHING_TO_SEND: u8 = 4;
pub const EXIT_NO_LINK: u8 = 5;
pub const EXIT_REFUSED: u8 = 6;
/// The server answered but could not take the data now (5xx, such as its database
/// being down or its disk full): the link is fine, try again later.
pub const EXIT_SERVER_UNAVAILABLE: u8 = 7;

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Say what would be sent, without sending.
    #[arg(long)]
    dry_run: bool,
    /// Write everything not yet acknowledged into FILE, for a USB stick.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["dry_run", "import_ack"])]
    export: Option<PathBuf>,
    /// Read the acknowledgement file the district office gave back, and mark those
    /// records synced.
    #[arg(long, value_name = "FILE", conflicts_with = "dry_run")]
    import_ack: Option<PathBuf>,
    /// Attempts per exchange before giving up (the agent never gives up).
    #[arg(long, default_value_t = 5)]
    attempts: u32,
}

#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// The district server's URL.
    #[arg(long)]
    server: String,
    /// The device token printed by `jejak server add-device`.
    #[arg(long, env = "JEJAK_TOKEN", hide_env_values = true)]
    token: String,
    /// For an https:// server with the district's own certificate: the certificate (or
    /// its CA) as a PEM file, trusted beside the system's roots.
    #[arg(long, value_name = "FILE.pem")]
    server_ca: Option<PathBuf>,
    /// For an https:// server: the key the district office printed (`sha256:…`, shown
    /// by `jejak server run --tls-cert`), when this PC cannot verify the server itself
    /// (its clock is wrong, or no trust root is at hand).
    #[arg(long, value_name = "sha256:HEX")]
    server_key: Option<String>,
}

/// The PC's trust in an https:// server as its configuration states it: the key pinned
/// at enrolment and the district's own trust anchors, judged with the PC's clock.
fn server_trust(
    pinned_key: Option<&str>,
    server_ca: Option<&std::path::Path>,
) -> anyhow::Result<ServerTrust> {
    Ok(ServerTrust {
        pinned_key: pinned_key.map(tls::parse_pin).transpose()?,
        extra_roots: match server_ca {
            Some(path) => tls::read_ca(path)?,
            None => Vec::new(),
        },
        clock: Arc::new(SystemClock::new()),
    })
}

/// The sync client for this PC's settings: over HTTPS with the PC's own certificate
/// check (the key pinned at enrolment, the district's CA).
pub fn sync_client(config: &AgentConfig, server: &str, token: &str) -> anyhow::Result<SyncClient> {
    if !server.starts_with("https://") {
        return Ok(SyncClient::new(server, token, config.sync_timeout())?);
    }
    let trust = server_trust(config.server_key.as_deref(), config.server_ca.as_deref())?;
    Ok(SyncClient::with_trust(
        server,
        token,
        config.sync_timeout(),
        &trust,
    )?)
}

/// The HTTP client of the agent's connectivity probe, checked as the sync checks it.
pub fn probe_client(config: &AgentConfig, server: &str) -> anyhow::Result<Option<reqwest::Client>> {
    if !server.starts_with("https://") {
        return Ok(None);
    }
    let trust = server_trust(config.server_key.as_deref(), config.server_ca.as_deref())?;
    Ok(Some(tls::http_client(&trust, config.probe_timeout())?))
}

fn token(ctx: &Context) -> anyhow::Result<String> {
    load_token(&ctx.data_dir)?.ok_or_else(|| {
        UsageError::new(
            "komputer ini belum terdaftar di server kabupaten; jalankan: jejak enroll --server URL --token TOKEN",
            "this PC is not enrolled with the district server; run: jejak enroll --server URL --token TOKEN",
        )
        .into()
    })
}

fn server(ctx: &Context, config: &AgentConfig) -> anyhow::Result<String> {
    config.server.clone().ok_or_else(|| {
        UsageError::new(
            format!(
                "alamat server belum diatur di {}; jalankan: jejak enroll --server URL --token TOKEN",
                config_path(&ctx.data_dir).display()
            ),
            format!(
                "no server is set in {}; run: jejak enroll --server URL --token TOKEN",
                config_path(&ctx.data_dir).display()
            ),
        )
        .into()
    })
}

pub fn enroll(ctx: &Context, args: EnrollArgs) -> anyhow::Result<()> {
    let config = AgentConfig::load(&ctx.data_dir)?;
    config.identity(&ctx.data_dir)?;
    if !(args.server.starts_with("http://") || args.server.starts_with("https://")) {
        return Err(UsageError::new(
            "--server harus diawali http:// atau https://",
            "--server must start with http:// or https://",
        )
        .into());
    }
    let server = args.server.trim_end_matches('/').to_string();
    let pinned = if server.starts_with("https://") {
        first_contact(ctx, &server, &args)?
    } else {
        None
    };
    crate::init::set_config_key(&ctx.data_dir, "server", &server)?;
    if let Some(ca) = &args.server_ca {
        let ca = std::fs::canonicalize(ca)?;
        crate::init::set_config_key(&ctx.data_dir, "server_ca", &ca.display().to_string())?;
    }
    if let Some(key) = &pinned {
        crate::init::set_config_key(&ctx.data_dir, "server_key", key)?;
    }
    save_token(&ctx.data_dir, &args.token)?;
    let key = register_signing_key(ctx, &server, &args.token)?;
    if ctx.json {
        return output::print_json(
            &serde_json::json!({ "server": server, "enrolled": true, "signing_key": key, "server_key": pinned }),
        );
    }
    outln!(
        "{} {server}",
        ctx.lang
            .pick("Terdaftar ke server:", "Enrolled with server:"),
    )?;
    key.print(ctx.lang, ctx.verbose)?;
    if let Some(key) = &pinned {
        outln!(
            "{} {key}",
            ctx.lang.pick(
                "Kunci server dicatat (dipercaya walau jam komputer ini salah):",
                "Server key recorded (trusted even when this PC's clock is wrong):"
            )
        )?;
    }
    let minutes = (config.sync_interval().as_secs() / 60).max(1);
    outln!(
        "{}",
        ctx.lang.pick(
            &format!(
                "Agen yang sedang berjalan memakainya tanpa dimulai ulang: ia memeriksa sambungan dalam satu menit dan sinkron paling lambat {minutes} menit lagi (atau tekan Sinkron sekarang)."
            ),
            &format!(
                "A running agent uses it without a restart: it checks the link within a minute and syncs within {minutes} minutes at the latest (or press Sync now)."
            ),
        )
    )?;
    Ok(())
}

/// What became of the PC's signing key at enrollment.
#[derive(Debug, serde::Serialize)]
pub struct KeyAtEnrollment {
    pub fingerprint: String,
    /// The server now holds it.
    pub registered: bool,
    /// Why not, when it does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl KeyAtEnrollment {
    /// Prints what became of the key; `verbose` adds why it is not registered.
    pub fn print(&self, lang: Lang, verbose: bool) -> std::io::Result<()> {
        if self.registered {
            outln!(
                "{} {}",
                lang.pick(
                    "Kunci tanda tangan berkas USB terdaftar di server, sidik jari",
                    "The USB bundles' signing key is registered with the server, fingerprint"
                ),
                self.fingerprint
            )?;
        } else {
            let why = match (&self.detail, verbose) {
                (Some(detail), true) => format!(" ({detail})"),
                _ => String::new(),
            };
            outln!(
                "{} {}{why}. {}",
                lang.pick(
                    "Kunci tanda tangan berkas USB belum terdaftar di server, sidik jari",
                    "The USB bundles' signing key is not registered with the server yet, fingerprint"
                ),
                self.fingerprint,
                lang.pick(
                    "Kunci didaftarkan otomatis pada sinkron berikutnya; sampai itu kabupaten memeriksa berkas USB dari komputer ini dengan cara lama (hash token).",
                    "It is registered at the next sync by itself; until then the district checks this PC's USB bundles the old way (by the token's hash)."
                )
            )?;
        }
        Ok(())
    }
}

/// Makes this PC's signing key if it has none and registers it with `server` under
/// `token` now. Offline first: a server out of reach is no error (the next sync
/// registers it); a server that refuses the token is.
pub fn register_signing_key(
    ctx: &Context,
    server: &str,
    token: &str,
) -> anyhow::Result<KeyAtEnrollment> {
    // The configuration as enrolment just wrote it: over HTTPS the server's pinned key.
    let config = AgentConfig::load(&ctx.data_dir)?;
    let client = sync_client(&config, server, token)?;
    let key = DeviceKey::load_or_create(&ctx.data_dir)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let registered = runtime.block_on(client.register_key(&key));
    // The kinds the server takes, so that a PC that syncs by USB only knows them too.
    if let Ok(held) = runtime.block_on(client.held_state()) {
        let mut store = ctx.open_pc()?.store;
        store.save_server_accepts(&held.accepted_kinds())?;
    }
    let fingerprint = key.fingerprint();
    match registered {
        Ok(_) => {
            jejak_sync::signing::mark_registered(&ctx.data_dir, server, token, &key)?;
            Ok(KeyAtEnrollment {
                fingerprint,
                registered: true,
                detail: None,
            })
        }
        Err(jejak_sync::PushError::Unauthorized { revoked, detail }) => {
            Err(sync_error(SyncError::Unauthorized { revoked, detail }))
        }
        Err(e) => Ok(KeyAtEnrollment {
            fingerprint,
            registered: false,
            detail: Some(e.to_string()),
        }),
    }
}

/// The verified first contact with an https:// server: an ordinary certificate check
/// (system roots and `--server-ca`, validity by this PC's clock), or the key the
/// district gave (`--server-key`). Returns the server's key to pin; `None` when the
/// server cannot be reached now (enrolment goes on; the key is recorded when
/// `jejak enroll` runs again with the link up). A certificate that fails the check
/// refuses the enrolment, with what to do.
fn first_contact(ctx: &Context, server: &str, args: &EnrollArgs) -> anyhow::Result<Option<String>> {
    let lang = ctx.lang;
    let given = args.server_key.as_deref().map(tls::parse_pin).transpose()?;
    let trust = server_trust(args.server_key.as_deref(), args.server_ca.as_deref())?;
    let client = SyncClient::with_trust(server, &args.token, Duration::from_secs(30), &trust)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match runtime.block_on(client.server_time()) {
        Ok(_) => {
            let Some(seen) = client.server_key_seen() else {
                return Ok(None);
            };
            if given.is_some_and(|key| key != seen) {
                return Err(UsageError::new(
                    format!(
                        "kunci server ini ({}) bukan kunci yang diberikan dengan --server-key; tanyakan kantor kabupaten",
                        tls::format_pin(&seen)
                    ),
                    format!(
                        "this server's key ({}) is not the one given with --server-key; ask the district office",
                        tls::format_pin(&seen)
                    ),
                )
                .into());
            }
            Ok(Some(tls::format_pin(&seen)))
        }
        Err(e) if e.to_string().contains("certificate") => Err(UsageError::new(
            format!(
                "sertifikat server tidak dapat diperiksa. Periksa jam komputer ini (jam {} UTC; jika tahunnya salah, ganti baterai CMOS), atau berikan sertifikat kabupaten dengan --server-ca FILE, atau kunci server dengan --server-key sha256:… dari kantor kabupaten",
                chrono::Utc::now().format("%Y-%m-%d %H:%M")
            ),
            format!(
                "the server's certificate cannot be verified. Check this PC's clock (it reads {} UTC; if the year is wrong, replace the CMOS battery), or give the district's certificate with --server-ca FILE, or the server's key with --server-key sha256:… from the district office",
                chrono::Utc::now().format("%Y-%m-%d %H:%M")
            ),
        )
        .with_detail(e)
        .into()),
        Err(e) => {
            let why = if ctx.verbose {
                format!(" ({e})")
            } else {
                String::new()
            };
            errln!(
                "{}{why}",
                lang.pick(
                    "PERINGATAN: server belum dapat dihubungi, jadi kuncinya belum dicatat; jalankan jejak enroll lagi saat ada sinyal",
                    "WARNING: the server cannot be reached now, so its key is not recorded yet; run jejak enroll again when the link is up"
                )
            );
            Ok(given.map(|key| tls::format_pin(&key)))
        }
    }
}

pub fn sync(ctx: &Context, args: SyncArgs) -> anyhow::Result<()> {
    let mut pc = ctx.open_pc()?;
    let lang = ctx.lang;
    if let Some(path) = &args.export {
        let token = token(ctx)?;
        let key = DeviceKey::load_or_create(&ctx.data_dir)?;
        return match bundle::export(&mut pc.store, &token, &key, path) {
            Ok(summary) => {
                if ctx.json {
                    return output::print_json(&summary);
                }
                outln!(
                    "{} {} ({} {}, seq {}–{}, {} KB)",
                    lang.pick("Berkas sinkron ditulis:", "Sync bundle written:"),
                    summary.path.display(),
                    summary.records,
                    lang.pick("catatan", "records"),
                    summary.first_seq,
                    summary.last_seq,
                    output::number(summary.bytes as f64 / 1000.0, 1, lang)
                )?;
                outln!(
                    "{} {}",
                    lang.pick("Ditandatangani dengan kunci", "Signed with key"),
                    summary.key_fingerprint
                )?;
                outln!(
                    "{}",
                    lang.pick(
                        "Bawa berkas ini ke kantor kabupaten. Data tetap disimpan di komputer ini sampai berkas tanda terima dimasukkan (jejak sync --import-ack).",
                        "Take this file to the district office. The data stays on this PC until the acknowledgement file is read in (jejak sync --import-ack)."
                    )
                )?;
                Ok(())
            }
            Err(BundleError::NothingToExport) => nothing_to_send(ctx),
            Err(e) => Err(bundle_error(e)),
        };
    }
    if let Some(path) = &args.import_ack {
        let token = token(ctx)?;
        let bytes = std::fs::read(path).map_err(|e| file_error(path, false, e))?;
        let imported = bundle::import_ack(&mut pc.store, &token, &bytes).map_err(bundle_error)?;
        if ctx.json {
            return output::print_json(&imported);
        }
        outln!(
            "{} seq {} ({} {}, {} {}, {} {})",
            lang.pick(
                "Tanda terima dibaca: server menyimpan sampai",
                "Acknowledgement read: the server holds up to"
            ),
            imported.held_seq,
            imported.new,
            lang.pick("baru", "new"),
            imported.duplicates,
            lang.pick("sudah ada", "already there"),
            imported.rejected,
            lang.pick("ditolak", "rejected"),
        )?;
        return Ok(());
    }

    let server = server(ctx, &pc.config)?;
    let token = token(ctx)?;
    let options = manual_sync_options(&pc.config, args.attempts, args.dry_run);
    let client = sync_client(&pc.config, &server, &token)?.with_signing_key(&ctx.data_dir)?;
    let pending = pc.store.sync_state()?.pending();
    if !ctx.json && !args.dry_run && pending > 0 {
        errln!("{} …", waiting_text(pending, lang));
    }
    let sent_label = lang.pick("catatan terkirim", "records sent");
    let bar =
        (!ctx.json && std::io::stderr().is_terminal() && pending > 0 && !args.dry_run).then(|| {
            let bar = ProgressBar::new(pending);
            bar.set_style(
                ProgressStyle::with_template(&format!(
                    "{{spinner}} [{{bar:30}}] {{pos}}/{{len}} {sent_label} · {{msg}}"
                ))
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        });
    let start_seq = pc.store.sync_state()?.acked_seq;
    let json = ctx.json;
    let mut on_progress = |p: &Progress| {
        let rate = p.bytes_sent as f64 / p.elapsed.as_secs_f64().max(0.001) / 1000.0;
        // Counted as `jejak status` counts what waits: changes of the change log.
        let sent = p.held_seq.saturating_sub(start_seq);
        let kb = output::number(p.bytes_sent as f64 / 1000.0, 1, lang);
        let rate = output::number(rate, 1, lang);
        match &bar {
            Some(bar) => {
                bar.set_length(pending.max(sent));
                bar.set_position(sent);
                bar.set_message(format!("{kb} KB · {rate} KB/s"));
            }
            None if !json => errln!(
                "{sent}/{} {sent_label} · {kb} KB · {rate} KB/s",
                pending.max(sent)
            ),
            None => {}
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(sync_once(
        &mut pc.store,
        &client,
        &options,
        &mut on_progress,
    ));
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    match result {
        Ok(report) if report.nothing_to_send => nothing_to_send(ctx),
        Ok(report) => {
            if ctx.json {
                output::print_json(&report)?;
            } else {
                outln!("{}", report_text(&report, lang, ctx.verbose).trim_end())?;
            }
            Ok(())
        }
        Err(e) => Err(sync_error(e)),
    }
}

/// The options of a sync someone is waiting for (`jejak sync`, the librarian screen's
/// "Sync now"): a bounded number of attempts and a short back-off cap, where the
/// agent's own sync retries forever.
pub fn manual_sync_options(config: &AgentConfig, attempts: u32, dry_run: bool) -> SyncOptions {
    let (backoff_base, backoff_cap) = config.sync_backoff();
    SyncOptions {
        max_records: config.sync_batch_records,
        backoff_base,
        backoff_cap: backoff_cap.min(Duration::from_secs(30)),
        max_attempts: Some(attempts.max(1)),
        dry_run,
    }
}

/// What a sync with nothing to send says (Indonesian, English).
pub const NOTHING_WAITING: (&str, &str) = (
    "Tidak ada catatan yang menunggu dikirim.",
    "No records are waiting to be sent.",
);

fn nothing_to_send(ctx: &Context) -> anyhow::Result<()> {
    if ctx.json {
        output::print_json(&serde_json::json!({ "nothing_to_send": true }))?;
    } else {
        outln!("{}", ctx.lang.pick(NOTHING_WAITING.0, NOTHING_WAITING.1))?;
    }
    Err(SilentExit(EXIT_NOTHING_TO_SEND).into())
}

/// What a sync did, in the reader's language: what `jejak sync` prints and the
/// librarian screen's "Sync now" shows. Records are counted as `jejak status` counts
/// what waits (changes of the change log, "catatan"); `verbose` adds the technical
/// detail (batches, bytes, seqs, each rejected record). One line per fact, each ending
/// in a newline.
pub fn report_text(report: &SyncReport, lang: Lang, verbose: bool) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let kb = |b: u64| output::number(b as f64 / 1000.0, 1, lang);
    if report.dry_run {
        let _ = writeln!(
            out,
            "{}: {} {} {}, {} KB ({} KB {}). {}",
            waiting_text(report.changes_sent, lang),
            lang.pick("akan dikirim dalam", "they would go in"),
            report.batches,
            lang.pick(
                "kiriman",
                if report.batches == 1 {
                    "batch"
                } else {
                    "batches"
                }
            ),
            kb(report.bytes_sent),
            kb(report.json_bytes),
            lang.pick("sebelum dipadatkan", "before compression"),
            lang.pick("Belum ada yang dikirim.", "Nothing was sent."),
        );
        return out;
    }
    let sent = match lang {
        Lang::Id => format!("{} catatan terkirim", report.changes_sent),
        Lang::En if report.changes_sent == 1 => "1 record sent".to_string(),
        Lang::En => format!("{} records sent", report.changes_sent),
    };
    let left = if report.pending_after == 0 {
        lang.pick(
            "server kabupaten sudah menyimpan semuanya",
            "the district server holds them all",
        )
        .to_string()
    } else {
        waiting_text(report.pending_after, lang)
    };
    let _ = writeln!(
        out,
        "{} {sent}; {left}.",
        lang.pick("Sinkron selesai:", "Sync done:")
    );
    if !report.rejected.is_empty() {
        let _ = writeln!(
            out,
            "{} {}",
            report.rejected.len(),
            lang.pick(
                "catatan ditolak server; catatan itu tetap disimpan di komputer ini (lihat jejak status) dan tidak menghalangi yang lain.",
                "records were refused by the server; they stay on this PC (see jejak status) and do not hold the others back."
            )
        );
    }
    if let Some(offset) = report.clock_offset_ms
        && offset.abs() > 60_000
    {
        let _ = writeln!(
            out,
            "{} {} {}",
            lang.pick("Jam komputer ini selisih", "This PC's clock is off by"),
            output::duration(offset.unsigned_abs() / 1000, lang),
            lang.pick(
                "dari server; waktu catatan dikoreksi di server. Setel jam komputer ini.",
                "from the server; the server corrects the records' times. Set this PC's clock."
            ),
        );
    }
    if verbose {
        let _ = writeln!(
            out,
            "  ({} batch, {} KB, {} {}, {} {}, {} {}; {} seq {})",
            report.batches,
            kb(report.bytes_sent),
            report.records_sent,
            lang.pick("entri", "entries"),
            report.new,
            lang.pick("baru", "new"),
            report.duplicates,
            lang.pick("sudah ada", "already there"),
            lang.pick("server menyimpan sampai", "the server holds up to"),
            report.held_seq,
        );
        for r in &report.rejected {
            let _ = writeln!(
                out,
                "  {} seq {}: {} ({})",
                lang.pick("ditolak", "rejected"),
                r.seq,
                r.code,
                r.detail
            );
        }
    }
    out
}

fn sync_error(e: SyncError) -> anyhow::Error {
    match sync_error_text(&e) {
        Some((id, en, code)) => UsageError::new(id, en)
            .exit_code(code)
            .with_detail(&e)
            .into(),
        None => e.into(),
    }
}

/// Why a sync stopped, in one plain sentence in Indonesian and in English, with the
/// exit code of `jejak sync`; `None` for a store error, which is reported as the
/// store's own error. The technical detail is the error's `Display`.
pub fn sync_error_text(e: &SyncError) -> Option<(String, String, u8)> {
    let problem = e.problem()?;
    let code = match problem {
        SyncProblem::NoLink => EXIT_NO_LINK,
        SyncProblem::ServerCannotStore | SyncProblem::ServerFailing => EXIT_SERVER_UNAVAILABLE,
        SyncProblem::TokenRevoked
        | SyncProblem::TokenRefused
        | SyncProblem::Refused
        | SyncProblem::OutOfStep => EXIT_REFUSED,
    };
    Some((
        problem.sentence(Lang::Id).to_string(),
        problem.sentence(Lang::En).to_string(),
        code,
    ))
}

fn bundle_error(e: BundleError) -> anyhow::Error {
    match e {
        BundleError::Store(inner) => inner.into(),
        other => UsageError::new(
            format!("berkas ditolak: {}", other.message(Lang::Id)),
            format!("file refused: {}", other.message(Lang::En)),
        )
        .into(),
    }
}
