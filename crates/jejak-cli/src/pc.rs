//! The librarian's PC-side commands: `jejak session …` and `jejak status`.

use clap::Subcommand;
use jejak_agent::netdev;
use jejak_agent::patron::{PatronSecret, SECRET_FILE};
use jejak_agent::store::{RejectedChange, StoreStatus, SyncState, waiting_text};
use jejak_domain::{
    AgeGroup, EndReason, Gender, Lang, PatronProfile, Session, UserKind, Zone, parse_purposes,
};

use crate::context::{Context, Pc};
use crate::output;
use crate::output::{errln, outln};

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Start a session; says who it is for (in categories) and its id (mulai sesi).
    Start {
        /// One to three purposes, comma-separated: pendidikan, ekonomi, kesehatan,
        /// komunikasi, hobi, pemerintahan, literasi_digital, lainnya.
        #[arg(long)]
        purpose: Option<String>,
        /// L (laki-laki), P (perempuan) or X (not stated).
        #[arg(long)]
        gender: Option<String>,
        /// anak, remaja, pemuda, dewasa, madya, lansia or unknown.
        #[arg(long)]
        age: Option<String>,
        /// anggota, non_anggota, rombongan, pelatihan, staf or unknown.
        #[arg(long)]
        kind: Option<String>,
        /// How many people share the PC.
        #[arg(long, default_value_t = 1)]
        group_size: u32,
        /// The member number; only its HMAC is stored, never the number.
        #[arg(long)]
        member: Option<String>,
    },
    /// End the open session (akhiri sesi).
    End {
        /// logout, idle, shutdown, power_loss, crash or staff_ended.
        #[arg(long, default_value = "logout")]
        reason: String,
    },
    /// List recent sessions on this PC (daftar sesi).
    List {
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

pub fn session(ctx: &Context, command: SessionCommand) -> anyhow::Result<()> {
    match command {
        SessionCommand::Start {
            purpose,
            gender,
            age,
            kind,
            group_size,
            member,
        } => {
            // Parse everything before touching the store, so invalid input writes nothing.
            let mut profile = PatronProfile {
                purposes: purpose
                    .as_deref()
                    .map(parse_purposes)
                    .transpose()?
                    .unwrap_or_default(),
                gender: gender
                    .as_deref()
                    .map(Gender::parse)
                    .transpose()?
                    .unwrap_or(Gender::X),
                age_group: age
                    .as_deref()
                    .map(AgeGroup::parse)
                    .transpose()?
                    .unwrap_or(AgeGroup::Unknown),
                user_kind: kind
                    .as_deref()
                    .map(UserKind::parse)
                    .transpose()?
                    .unwrap_or(UserKind::Unknown),
                group_size,
                patron_key: None,
            };
            profile.validate()?;
            let mut pc = ctx.open_pc()?;
            if let Some(member) = member.as_deref().filter(|m| !m.trim().is_empty()) {
                let secret = PatronSecret::load(&ctx.data_dir.join(SECRET_FILE))?;
                profile.patron_key = Some(secret.key_for(member));
            }
            let net = netdev::read_counters(pc.config.net_dev_path.as_deref());
            let started = pc.store.start_session(profile, net)?;
            if let Some(replaced) = &started.replaced {
                errln!(
                    "{} {} ({})",
                    ctx.lang.pick(
                        "Sesi yang masih terbuka diakhiri dulu:",
                        "The session still open was ended first:"
                    ),
                    replaced.id,
                    replaced
                        .end_reason
                        .map(|r| r.label(ctx.lang))
                        .unwrap_or_default()
                );
            }
            if ctx.json {
                return output::print_json(&serde_json::json!({
                    "session": started.session,
                    "replaced": started.replaced,
                }));
            }
            outln!(
                "{}",
                started_text(&started.session, pc.config.zone(), ctx.lang)
            )?;
            Ok(())
        }
        SessionCommand::End { reason } => {
            let reason = EndReason::parse(&reason)?;
            let mut pc = ctx.open_pc()?;
            let net = netdev::read_counters(pc.config.net_dev_path.as_deref());
            let session = pc.store.end_session(reason, net)?;
            if ctx.json {
                return output::print_json(&session);
            }
            outln!(
                "{} {} · {} · {}",
                ctx.lang.pick("Sesi selesai:", "Session ended:"),
                session.id,
                output::duration(session.duration_secs, ctx.lang),
                session
                    .end_reason
                    .map(|r| r.label(ctx.lang))
                    .unwrap_or_default()
            )?;
            Ok(())
        }
        SessionCommand::List { limit } => {
            let pc = ctx.open_pc()?;
            let sessions = pc.store.recent_sessions(limit)?;
            if ctx.json {
                return output::print_json(&sessions);
            }
            outln!("{}", sessions_table(&sessions, pc.config.zone(), ctx.lang))?;
            Ok(())
        }
    }
}

/// What `jejak session start` says: who the session is for, in categories (never the
/// member number), when it started, and its id on a line of its own for scripts
/// (`--format json` gives all of it).
fn started_text(session: &Session, zone: Zone, lang: Lang) -> String {
    let patron = &session.patron;
    let purposes = if patron.purposes.is_empty() {
        lang.pick("belum diisi", "not given").to_string()
    } else {
        patron
            .purposes
            .iter()
            .map(|p| p.label(lang))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let people = match lang {
        Lang::Id => format!("{} orang", patron.group_size),
        Lang::En if patron.group_size == 1 => "1 person".to_string(),
        Lang::En => format!("{} people", patron.group_size),
    };
    let mut text = format!(
        "{} {} {}: {}, {}, {}, {people}; {} {purposes}.",
        lang.pick("Sesi dimulai", "Session started"),
        output::local_time(session.started_at, zone),
        lang.pick("untuk", "for"),
        patron.user_kind.label(lang),
        patron.gender.label(lang),
        patron.age_group.label(lang),
        lang.pick("tujuan:", "purposes:"),
    );
    if patron.patron_key.is_some() {
        text.push_str(lang.pick(
            " Nomor anggota tidak disimpan, hanya kunci samarannya (untuk menghitung pengguna unik).",
            " The member number is not kept, only its keyed hash (to count unique users).",
        ));
    }
    if !patron.user_kind.counts_publicly() {
        text.push_str(lang.pick(
            " Sesi petugas tidak dihitung dalam laporan.",
            " Staff sessions are not counted in the reports.",
        ));
    }
    format!(
        "{text}\n{} {}",
        lang.pick("ID sesi:", "Session ID:"),
        session.id
    )
}

fn sessions_table(sessions: &[Session], zone: Zone, lang: Lang) -> String {
    let header = [
        lang.pick("ID sesi", "Session ID"),
        lang.pick("Mulai", "Start"),
        lang.pick("Durasi", "Duration"),
        lang.pick("Kriteria", "User kind"),
        lang.pick("Tujuan", "Purposes"),
        lang.pick("JK", "Gender"),
        lang.pick("Umur", "Age"),
        lang.pick("Data (MB)", "Data (MB)"),
        lang.pick("Alasan berakhir", "End reason"),
    ]
    .map(String::from)
    .to_vec();
    let rows = sessions
        .iter()
        .map(|s| {
            vec![
                s.id.to_string()[..13].to_string(),
                output::local_time(s.started_at, zone),
                output::duration(s.duration_secs, lang),
                s.patron.user_kind.label(lang).to_string(),
                s.patron
                    .purposes
                    .iter()
                    .map(|p| p.label(lang))
                    .collect::<Vec<_>>()
                    .join(", "),
                s.patron.gender.code().to_string(),
                s.patron.age_group.label(lang).to_string(),
                output::number((s.bytes_rx + s.bytes_tx) as f64 / 1e6, 1, lang),
                s.end_reason
                    .map(|r| r.label(lang).to_string())
                    .unwrap_or_else(|| lang.pick("(berjalan)", "(open)").to_string()),
            ]
        })
        .collect();
    output::table(header, rows)
}

pub fn status(ctx: &Context) -> anyhow::Result<()> {
    let pc = ctx.open_pc()?;
    // The key that signs this PC's USB bundles: the district compares its fingerprint
    // with the one a bundle carries when the PC never registered the key online.
    let key_fingerprint = jejak_sync::signing::DeviceKey::load(&ctx.data_dir)
        .ok()
        .flatten()
        .map(|key| key.fingerprint());
    let status = pc.store.status(pc.config.zone())?;
    let sync = pc.store.sync_state()?;
    let rejected = pc.store.rejected_changes(10)?;
    let usage = pc.store.usage(pc.config.prune_policy().budget_bytes)?;
    if usage.unsynced_over_budget() {
        // Loud on purpose: data that cannot be pruned is filling the store.
        errln!(
            "{}",
            crate::prune_cmd::over_budget_warning(usage.budget_bytes, ctx.lang)
        );
    }
    if ctx.json {
        return output::print_json(&serde_json::json!({
            "usage": usage,
            "library": pc.store.identity().library,
            "pc": pc.store.identity().pc,
            "server": pc.config.server,
            "store": status,
            "sync": sync,
            "rejected": rejected,
            "signing_key_fingerprint": key_fingerprint,
        }));
    }
    print_status(
        &pc,
        &status,
        &sync,
        &rejected,
        key_fingerprint.as_deref(),
        ctx.lang,
        ctx.verbose,
    )?;
    outln!(
        "{} {} / {} ({} {})",
        ctx.lang.pick("Ukuran basis data:", "Store size:"),
        crate::prune_cmd::mb(usage.used_bytes, ctx.lang),
        crate::prune_cmd::mb(usage.budget_bytes, ctx.lang),
        ctx.lang.pick("batas; disimpan", "budget; kept"),
        match ctx.lang {
            Lang::Id => format!("{} hari setelah diterima server", pc.config.retention_days),
            Lang::En => format!(
                "{} days after the server's acknowledgement",
                pc.config.retention_days
            ),
        }
    )?;
    Ok(())
}

fn print_status(
    pc: &Pc,
    status: &StoreStatus,
    sync: &SyncState,
    rejected: &[RejectedChange],
    key_fingerprint: Option<&str>,
    lang: Lang,
    verbose: bool,
) -> std::io::Result<()> {
    let zone = pc.config.zone();
    let mut rows = vec![
        (
            lang.pick("Perpustakaan / komputer", "Library / PC"),
            pc.store.identity().to_string(),
        ),
        (
            lang.pick("Sesi berjalan", "Open session"),
            match &status.open_session {
                Some(s) => format!(
                    "{} ({} {}, {})",
                    s.id,
                    lang.pick("mulai", "since"),
                    output::local_time(s.started_at, zone),
                    output::duration(s.duration_secs, lang)
                ),
                None => lang.pick("tidak ada", "none").to_string(),
            },
        ),
        (
            lang.pick("Sesi hari ini", "Sessions today"),
            status.sessions_today.to_string(),
        ),
        (
            lang.pick("Pengiriman ke server", "Sending to the server"),
            if verbose {
                format!(
                    "{} (seq {}/{})",
                    waiting_text(status.pending_changes, lang),
                    status.acked_seq,
                    status.last_seq
                )
            } else {
                waiting_text(status.pending_changes, lang)
            },
        ),
        (
            lang.pick("Server kabupaten", "District server"),
            pc.config
                .server
                .clone()
                .unwrap_or_else(|| lang.pick("belum diatur", "not set").to_string()),
        ),
        (
            lang.pick("Sinkron terakhir berhasil", "Last successful sync"),
            sync.last_success
                .map(|t| output::local_time(t, zone))
                .unwrap_or_else(|| lang.pick("belum pernah", "never").to_string()),
        ),
        (
            lang.pick("Hasil sinkron terakhir", "Last sync result"),
            match (&sync.last_attempt, sync.last_result_text(lang)) {
                (Some(at), Some(result)) => format!("{} · {result}", output::local_time(*at, zone)),
                _ => "-".to_string(),
            },
        ),
        (
            lang.pick("Ditolak server", "Rejected by the server"),
            format!(
                "{} {}",
                sync.rejected,
                lang.pick(
                    "catatan (disimpan di komputer ini)",
                    "records (kept on this PC)"
                )
            ),
        ),
        (
            lang.pick("Tanda hidup terakhir", "Last heartbeat"),
            status
                .last_heartbeat
                .map(|t| output::local_time(t, zone))
                .unwrap_or_else(|| {
                    lang.pick(
                        "belum ada (agen belum jalan?)",
                        "none yet (is the agent running?)",
                    )
                    .to_string()
                }),
        ),
        (
            lang.pick("Jam komputer", "PC clock"),
            status.clock.advice(lang),
        ),
        (
            lang.pick("Kesehatan basis data", "Store health"),
            if status.quick_check == "ok" {
                lang.pick("baik", "sound").to_string()
            } else {
                format!(
                    "{} ({})",
                    lang.pick("RUSAK; jalankan jejak doctor", "DAMAGED; run jejak doctor"),
                    status.quick_check
                )
            },
        ),
        (
            lang.pick(
                "Sidik jari kunci berkas USB",
                "USB bundles' key fingerprint",
            ),
            key_fingerprint.map(str::to_string).unwrap_or_else(|| {
                lang.pick(
                    "belum dibuat (dibuat saat jejak enroll)",
                    "not made yet (made at jejak enroll)",
                )
                .to_string()
            }),
        ),
    ];
    if verbose {
        // What support asks for; a librarian needs none of it.
        rows.push((
            lang.pick("Epoch basis data", "Store epoch"),
            status.epoch.to_string(),
        ));
        if let Some(stored) = &sync.last_result {
            rows.push((
                lang.pick("Rincian sinkron terakhir", "Last sync detail"),
                stored.clone(),
            ));
        }
    }
    #[cfg(windows)]
    {
        let state = crate::windows_service::service_state();
        rows.push((
            lang.pick("Layanan Windows", "Windows service"),
            crate::windows_service::state_text(&state, lang),
        ));
    }
    for warning in &status.clock_warnings {
        rows.push((
            lang.pick("Peringatan jam", "Clock warning"),
            format!(
                "{} {}{}",
                output::local_time(warning.at, zone),
                warning.kind.label(lang),
                warning
                    .delta_ms
                    .map(|d| format!(" ({:+} s)", d / 1000))
                    .unwrap_or_default()
            ),
        ));
    }
    for r in rejected {
        rows.push((
            lang.pick("Ditolak", "Rejected"),
            format!("seq {} · {} · {}", r.seq, r.code, r.detail),
        ));
    }
    if let Some(file) = &status.recovered_from {
        rows.push((
            lang.pick("Dipulihkan dari", "Recovered from"),
            format!(
                "{file} ({})",
                lang.pick(
                    "berkas rusak disimpan, tidak dihapus",
                    "damaged file kept, not deleted"
                )
            ),
        ));
    }
    let table = output::table(
        vec![
            lang.pick("Hal", "Item").into(),
            lang.pick("Keadaan", "State").into(),
        ],
        rows.into_iter()
            .map(|(k, v)| vec![k.to_string(), v])
            .collect(),
    );
    outln!("{table}")
}
