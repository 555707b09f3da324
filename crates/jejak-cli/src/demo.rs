//! `jejak demo`: five village libraries of Banyumas (Dermaji, Pesawahan, Rempoah,
//! Adisara, Karanganyar; three PCs each) live through a simulated month. Every PC is set
//! up with the same code as `jejak init` and records through the real store, with a
//! simulated clock: mornings boot the PC, patrons come and go, power cuts leave
//! sessions open until the next boot recovers them, a data package runs out, and one PC
//! has a dead CMOS battery. The demo ends with a summary per village.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::Context as _;
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc, Weekday};
use clap::Args;
use jejak_agent::clock::ManualClock;
use jejak_agent::config::save_token;
use jejak_agent::config::{AgentConfig, STORE_FILE};
use jejak_agent::patron::PatronSecret;
use jejak_agent::store::{ActivityInput, NetCounters, Store, VisitInput};
use jejak_domain::{
    ActivityPlace, ActivityType, AgeGroup, DeviceIdentity, EndReason, Gender, Lang, LibraryCode,
    Participants, PatronProfile, PcCode, PcEventKind, Purpose, RecordBody, UserKind, VisitPurpose,
    YearMonth, Zone,
};
use jejak_faultproxy::{FaultProxy, Faults};
use jejak_server::{AppState, ServerConfig, ServerStore, SqliteStore};
use jejak_sync::bundle;
use jejak_sync::{SyncClient, SyncOptions, sync_once};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::context::Context;
use crate::errors::UsageError;
use crate::init::initialise;
use crate::output;
use crate::output::outln;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to put the simulated PCs' data (an empty or new folder); by default a new
    /// folder in the system's temporary directory.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The month to simulate, as YYYY-MM; by default the previous calendar month.
    #[arg(long)]
    month: Option<String>,
    /// Seed of the simulation: the same seed gives the same month.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Afterwards, keep the district server running with a staff token for the web
    /// dashboard, until Ctrl-C: on a port of 127.0.0.1 (`--serve 8081`) or an address
    /// (`--serve 0.0.0.0:8080`); 127.0.0.1:8080 when no value is given. The address is
    /// taken before the simulation starts, so a port in use fails at once.
    #[arg(
        long,
        value_name = "PORT|ADDR",
        num_args = 0..=1,
        default_missing_value = "127.0.0.1:8080"
    )]
    serve: Option<String>,
}

/// One of the five villages and what makes its month different.
struct Village {
    code: &'static str,
    name: &'static str,
    /// Its sub-district: the district matrix groups the villages by it (Karanganyar's is
    /// left unset, as a district that has not filled every library in yet would have).
    kecamatan: Option<&'static str>,
    /// Mean number of sessions per PC per open day.
    sessions_per_pc_day: f64,
    /// Chance of a power cut on an open day.
    power_cut_chance: f64,
    /// Days of the month (1-based, inclusive) when the data package has run out.
    no_internet_days: Option<(u32, u32)>,
    /// The PC whose CMOS battery is dead: its clock reads 2000 after a power cut.
    dead_cmos_pc: Option<&'static str>,
}

const VILLAGES: &[Village] = &[
    Village {
        code: "dermaji",
        name: "Perpustakaan Desa Dermaji",
        kecamatan: Some("Lumbir"),
        sessions_per_pc_day: 9.0,
        power_cut_chance: 0.08,
        no_internet_days: None,
        dead_cmos_pc: None,
    },
    Village {
        code: "pesawahan",
        name: "Perpustakaan Desa Pesawahan",
        kecamatan: Some("Rawalo"),
        sessions_per_pc_day: 5.0,
        power_cut_chance: 0.15,
        no_internet_days: Some((12, 19)),
        dead_cmos_pc: None,
    },
    Village {
        code: "rempoah",
        name: "Perpustakaan Desa Rempoah",
        kecamatan: Some("Baturraden"),
        sessions_per_pc_day: 7.0,
        power_cut_chance: 0.05,
        no_internet_days: None,
        dead_cmos_pc: None,
    },
    Village {
        code: "adisara",
        name: "Perpustakaan Desa Adisara",
        kecamatan: Some("Jatilawang"),
        sessions_per_pc_day: 4.0,
        power_cut_chance: 0.2,
        no_internet_days: Some((1, 4)),
        dead_cmos_pc: Some("pc-03"),
    },
    Village {
        code: "karanganyar",
        name: "Perpustakaan Desa Karanganyar",
        kecamatan: None,
        sessions_per_pc_day: 6.0,
        power_cut_chance: 0.1,
        no_internet_days: None,
        dead_cmos_pc: None,
    },
];

const PCS: &[&str] = &["pc-01", "pc-02", "pc-03"];
/// The demo's heartbeat: coarser than the agent's 30 s so a month runs in seconds.
const DEMO_HEARTBEAT: Duration = Duration::minutes(15);
const OPENING_HOUR: u32 = 8;
const CLOSING_HOUR: u32 = 15;

pub fn run(ctx: &Context, args: DemoArgs) -> anyhow::Result<()> {
    let lang = ctx.lang;
    let month = match &args.month {
        Some(text) => parse_month(text)?,
        None => previous_month(Utc::now().date_naive()),
    };
    // Everything the user gave is checked before the month is simulated: a port in use
    // must not cost the whole simulation first.
    let dashboard = args.serve.as_deref().map(bind_dashboard).transpose()?;
    let out = prepare_out_dir(args.out)?;
    if !ctx.json {
        outln!(
            "{} {} — {}",
            lang.pick("Simulasi satu bulan", "Simulating one month"),
            month.format("%Y-%m"),
            out.display()
        )?;
    }

    let mut threads = Vec::new();
    for (v_index, village) in VILLAGES.iter().enumerate() {
        // All PCs of one library share its patron secret, as `--patron-secret` arranges.
        let secret_hex = {
            let mut rng = StdRng::seed_from_u64(args.seed ^ ((v_index as u64 + 1) * 0x9E37));
            hex_of(&rng.random::<[u8; 32]>())
        };
        for (p_index, pc) in PCS.iter().enumerate() {
            let dir = out.join(village.code).join(pc);
            let seed = args
                .seed
                .wrapping_mul(1_000)
                .wrapping_add((v_index * 10 + p_index) as u64);
            let secret_hex = secret_hex.clone();
            threads.push(std::thread::spawn(move || {
                simulate_pc(village, pc, &dir, month, seed, &secret_hex)
                    .with_context(|| format!("{}/{pc}", village.code))
            }));
        }
    }
    for thread in threads {
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("a simulated PC stopped unexpectedly"))??;
    }

    if !ctx.json {
        outln!(
            "{}",
            lang.pick(
                "Sinkron ke server kabupaten (di komputer ini, lewat jalur yang dibuat buruk)…",
                "Syncing to the district server (on this machine, through deliberately bad links)…"
            )
        )?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let district = runtime.block_on(sync_to_district(&out, month, ctx.lang))?;

    let summaries = VILLAGES
        .iter()
        .map(|v| summarise(v, &out, month))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if ctx.json {
        return output::print_json(&serde_json::json!({
            "month": month.format("%Y-%m").to_string(),
            "out": out,
            "villages": summaries,
            "district": district,
        }));
    }
    let month_name = jejak_server::report::month_text(month)
        .get(lang)
        .to_string();
    outln!(
        "\n1. {} {month_name} ({})",
        lang.pick(
            "Yang dicatat komputer desa selama",
            "What the village PCs recorded in"
        ),
        lang.pick(
            "dibaca dari basis data tiap komputer; tanpa sesi petugas",
            "read from each PC's own store; staff sessions left out"
        )
    )?;
    outln!("{}", summary_table(&summaries, lang))?;
    outln!(
        "\n2. {} ({})",
        lang.pick(
            "Sinkron ke server kabupaten lewat jalur yang sengaja dibuat buruk",
            "The sync to the district server over deliberately bad links"
        ),
        lang.pick(
            "yang diterima server, termasuk sesi petugas",
            "what the server received, staff sessions included"
        )
    )?;
    outln!("{}", district_table(&district, lang))?;
    outln!(
        "\n3. {}",
        lang.pick(
            "Rekap bulanan kabupaten dari data server, seperti dicetak kantor kabupaten:",
            "The district's monthly summary from the server's data, as the district office prints it:"
        )
    )?;
    outln!(
        "{}",
        jejak_server::report::render_terminal(
            &district.matrix,
            &jejak_server::report::RenderOptions::new(lang)
        )
    )?;
    let counts = district.session_counts();
    outln!("{}", totals_explained(&counts, &month_name, lang))?;
    for path in &district.reports {
        outln!(
            "{} {}",
            lang.pick("Laporan ditulis:", "Report written:"),
            path.display()
        )?;
    }
    let events: u64 = district.villages.iter().map(|v| v.events_on_server).sum();
    outln!(
        "{} {} {} {} {} {}",
        lang.pick(
            "✓ Server kabupaten memegang persis catatan yang dibuat komputer desa:",
            "✓ The district server holds exactly the records the village PCs made:"
        ),
        output::number(counts.total as f64, 0, lang),
        lang.pick("sesi dan", "sessions and"),
        output::number(events as f64, 0, lang),
        lang.pick(
            "peristiwa komputer. Basis data server:",
            "pc events. Server database:"
        ),
        district.database.display()
    )?;
    let desk = district
        .villages
        .iter()
        .fold(DeskCounts::default(), |mut all, v| {
            all.visitors += v.desk.visitors;
            all.activities += v.desk.activities;
            all.participants += v.desk.participants;
            all
        });
    outln!(
        "{} {} {} {} {} {} {}",
        lang.pick(
            "✓ Dan buku tamu serta kegiatan di meja pustakawan:",
            "✓ And the visitor books and activities at the librarians' desks:"
        ),
        output::number(desk.visitors as f64, 0, lang),
        lang.pick("pengunjung,", "visitors,"),
        output::number(desk.activities as f64, 0, lang),
        lang.pick("kegiatan dengan", "activities with"),
        output::number(desk.participants as f64, 0, lang),
        lang.pick(
            "peserta dan jumlah anggota tiap perpustakaan, dihitung sama di server.",
            "participants and each library's member count, counted alike on the server."
        ),
    )?;
    outln!(
        "{}",
        lang.pick(
            "Data tiap komputer ada di folder di atas; coba: jejak --data-dir <folder>/dermaji/pc-01 status",
            "Each PC's data is in the folder above; try: jejak --data-dir <folder>/dermaji/pc-01 status"
        )
    )?;
    if let Some(listener) = dashboard {
        runtime.block_on(serve_dashboard(&district.database, listener, month, lang))?;
    }
    Ok(())
}

/// The sessions the district matrix counts: the "sessions" column of its library rows.
fn matrix_sessions(matrix: &jejak_server::report::Report) -> u64 {
    let Some(table) = matrix.sections.first() else {
        return 0;
    };
    let Some(column) = table.columns.iter().position(|c| c.key == "sessions") else {
        return 0;
    };
    table
        .rows
        .iter()
        .filter(|row| !row.is_total)
        .filter_map(|row| match row.cells.get(column) {
            Some(jejak_server::report::Cell::Number(n)) => Some(*n as u64),
            _ => None,
        })
        .sum()
}

/// Why the three tables count different numbers of sessions: the server holds every
/// session (staff ones included); the PCs' table and the matrix leave staff out; the
/// matrix counts a session in the month the server dates it in, which for a PC whose
/// clock was wrong is an estimate and may be another month.
fn totals_explained(counts: &SessionCounts, month: &str, lang: Lang) -> String {
    let n = |v: u64| output::number(v as f64, 0, lang);
    let (total, staff, public) = (
        n(counts.total),
        n(counts.staff),
        n(counts.total - counts.staff),
    );
    let (in_month, estimated, other) = (
        n(counts.in_month),
        n(counts.estimated_in_month),
        n(counts.other_months),
    );
    let other_months = if counts.other_months > 0 {
        lang.pick(
            &format!(
                "; {other} lainnya bertanggal di bulan lain (perkiraan server) dan masuk rekap bulan itu"
            ),
            &format!(
                "; {other} more are dated in another month (the server's estimate) and count in that month's summary"
            ),
        )
        .to_string()
    } else {
        String::new()
    };
    match lang {
        Lang::Id => format!(
            "Mengapa jumlah sesinya berbeda:\n  \
             • {total} sesi dibuat komputer desa, dan semuanya ada di server (tabel 2);\n  \
             • {staff} di antaranya sesi petugas, yang tidak dihitung dalam laporan: {public} sesi pengguna (tabel 1);\n  \
             • {in_month} bertanggal {month} dan dihitung di rekap (tabel 3); tanggal {estimated} di antaranya perkiraan server dari jam komputer, karena jam itu belum diukur saat sesinya berlangsung (komputer baru sinkron sesudahnya){other_months}."
        ),
        Lang::En => format!(
            "Why the session totals differ:\n  \
             • {total} sessions were made on the village PCs, and the server holds them all (table 2);\n  \
             • {staff} of them are staff sessions, which reports do not count: {public} patron sessions (table 1);\n  \
             • {in_month} are dated in {month} and counted in the summary (table 3); {estimated} of them dated by the server's estimate from the PC's clock, which was not measured while they happened (the PC synced afterwards){other_months}."
        ),
    }
}

/// `jejak demo --serve`: the district server on `address` over the demo's database,
/// its clock set to the morning after the month (when the reports are due, so the
/// silence flags read as they would then), with a staff token for the dashboard. Runs
/// until Ctrl-C or SIGTERM.
async fn serve_dashboard(
    database: &Path,
    listener: std::net::TcpListener,
    month: NaiveDate,
    lang: Lang,
) -> anyhow::Result<()> {
    let shutdown = crate::agent_cmd::shutdown_signal()?;
    let store: Arc<dyn ServerStore> = Arc::new(SqliteStore::open(database)?);
    let token = store
        .add_staff(&format!("demo-{}", Utc::now().timestamp()))
        .await?;
    let due = local(month + Duration::days(days_in_month(month) as i64), 9, 0);
    let started = std::time::Instant::now();
    let clock: jejak_server::ServerClock =
        Arc::new(move || due + Duration::from_std(started.elapsed()).unwrap_or_default());
    let state = AppState::new(
        store,
        ServerConfig {
            clock,
            ..ServerConfig::default()
        },
    );
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let bound = listener.local_addr()?;
    outln!(
        "{} http://{bound}/dashboard?month={}",
        lang.pick("Dasbor:", "Dashboard:"),
        month.format("%Y-%m")
    )?;
    outln!(
        "{} {}",
        lang.pick("Token petugas untuk masuk:", "Staff token to sign in:"),
        token.expose()
    )?;
    outln!(
        "{}",
        lang.pick("Tekan Ctrl-C untuk berhenti.", "Press Ctrl-C to stop.")
    )?;
    jejak_server::run(listener, state, shutdown).await?;
    Ok(())
}

/// Takes the dashboard's address for `--serve`: a bare port means that port on
/// 127.0.0.1 (this machine only); anything else is an address such as 0.0.0.0:8080.
fn bind_dashboard(given: &str) -> anyhow::Result<std::net::TcpListener> {
    let given = given.trim();
    let address = match given.parse::<u16>() {
        Ok(port) => std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Err(_) => given.parse().map_err(|_| {
            UsageError::new(
                format!(
                    "--serve '{given}' bukan port atau alamat; tulis port (mis. --serve 8081) atau alamat:port (mis. --serve 0.0.0.0:8080)"
                ),
                format!(
                    "--serve '{given}' is not a port or an address; give a port (e.g. --serve 8081) or address:port (e.g. --serve 0.0.0.0:8080)"
                ),
            )
        })?,
    };
    let listener = std::net::TcpListener::bind(address).map_err(|e| {
        let (id, en) = if e.kind() == std::io::ErrorKind::AddrInUse {
            (
                format!(
                    "port {} sudah dipakai program lain; pilih port lain, mis. --serve {}",
                    address.port(),
                    address.port().wrapping_add(1).max(1024)
                ),
                format!(
                    "port {} is already in use by another program; choose another, e.g. --serve {}",
                    address.port(),
                    address.port().wrapping_add(1).max(1024)
                ),
            )
        } else {
            (
                format!("dasbor tidak bisa memakai {address}; pilih alamat lain dengan --serve"),
                format!("the dashboard cannot use {address}; choose another address with --serve"),
            )
        };
        UsageError::new(id, en).with_detail(e)
    })?;
    // Tokio takes it over later, inside the runtime.
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// The month to simulate, as the reports read months (a four-digit year from 2000).
fn parse_month(text: &str) -> anyhow::Result<NaiveDate> {
    jejak_server::report::parse_month(text).ok_or_else(|| {
        UsageError::new(
            format!("bulan '{text}' tidak sah; tulis tahun empat angka dan bulan 01–12, mis. 2026-10"),
            format!("month '{text}' is not valid; write a four-digit year and the month 01–12, e.g. 2026-10"),
        )
        .into()
    })
}

fn previous_month(today: NaiveDate) -> NaiveDate {
    let first = today.with_day(1).unwrap_or(today);
    let last_of_previous = first.pred_opt().unwrap_or(first);
    last_of_previous.with_day(1).unwrap_or(last_of_previous)
}

fn days_in_month(first: NaiveDate) -> u32 {
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
    };
    next.map(|n| (n - first).num_days() as u32).unwrap_or(30)
}

fn prepare_out_dir(out: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let out = out.unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "jejak-demo-{}",
            Utc::now().format("%Y%m%dT%H%M%S%.3f")
        ))
    });
    if out.exists() && std::fs::read_dir(&out)?.next().is_some() {
        return Err(UsageError::new(
            format!(
                "folder {} tidak kosong; pilih folder baru untuk --out",
                out.display()
            ),
            format!(
                "{} is not empty; choose a new folder for --out",
                out.display()
            ),
        )
        .into());
    }
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    Ok(out)
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn local(day: NaiveDate, hour: u32, minute: u32) -> DateTime<Utc> {
    Zone::Wib
        .offset()
        .from_local_datetime(&day.and_hms_opt(hour, minute, 0).unwrap_or_default())
        .single()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

fn to_std(d: Duration) -> StdDuration {
    d.to_std().unwrap_or_default()
}

/// One PC's month. The true time is tracked beside the PC's clock, which may be wrong.
fn simulate_pc(
    village: &Village,
    pc: &str,
    dir: &Path,
    month: NaiveDate,
    seed: u64,
    secret_hex: &str,
) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    let month_start = local(month, 0, 0);
    let clock = ManualClock::new(month_start);
    let config = AgentConfig {
        library: Some(village.code.to_string()),
        pc: Some(pc.to_string()),
        timezone: Zone::Wib.code().to_string(),
        ..AgentConfig::default()
    };
    let secret = PatronSecret::from_hex(secret_hex).context("demo secret")?;
    let shared_secret = PatronSecret::from_hex(secret_hex).context("demo secret")?;
    initialise(
        dir,
        config,
        Some(shared_secret),
        false,
        Arc::new(clock.clone()),
    )?;
    let identity = DeviceIdentity {
        library: LibraryCode::parse(village.code)?,
        pc: PcCode::parse(pc)?,
    };
    let (mut store, _) = Store::open(&dir.join(STORE_FILE), identity, Arc::new(clock.clone()))?;
    // The simulated month lies before this build; only the dead CMOS clock is wrong.
    store.set_earliest_plausible_wall(month_start - Duration::days(365));
    let has_dead_cmos = village.dead_cmos_pc == Some(pc);
    let mut cut_yesterday = false;
    let member_prefix: String = village
        .code
        .chars()
        .take(3)
        .collect::<String>()
        .to_uppercase();

    for day_index in 0..days_in_month(month) {
        let day = month + Duration::days(day_index as i64);
        if day.weekday() == Weekday::Sun {
            continue;
        }
        let day_number = day.day();
        let link_up = !village
            .no_internet_days
            .is_some_and(|(from, to)| (from..=to).contains(&day_number));
        let open = local(day, OPENING_HOUR, rng.random_range(0..20));
        let close = local(day, CLOSING_HOUR, 0);

        // Morning: the PC boots. A dead CMOS battery after a power cut makes the clock
        // read 1 January 2000 until the librarian sets it at noon.
        let wrong_clock = has_dead_cmos && cut_yesterday;
        let boot_wall = if wrong_clock {
            Utc.with_ymd_and_hms(2000, 1, 1, 1, 0, 0)
                .single()
                .unwrap_or_default()
        } else {
            open
        };
        clock.reboot(boot_wall);
        let mut true_now = open;
        // The agent starts: it recovers what the last run left open.
        store.recover_open_session(StdDuration::from_secs(90))?;
        store.record_event(if link_up {
            PcEventKind::InternetUp
        } else {
            PcEventKind::InternetDown
        })?;
        let mut counters = NetCounters { rx: 0, tx: 0 };
        let power_cut_at = rng.random_bool(village.power_cut_chance).then(|| {
            open + Duration::minutes(
                rng.random_range(30..(CLOSING_HOUR - OPENING_HOUR) as i64 * 60),
            )
        });
        let clock_fixed_at = local(day, 12, 0);
        let mut clock_fixed = !wrong_clock;
        let mut next_heartbeat = true_now + DEMO_HEARTBEAT;

        // Moves true time (and the PC's clocks) forward to `until`, heart-beating on the
        // way. Returns false if the power went out first.
        let mut pass_time = |store: &mut Store,
                             true_now: &mut DateTime<Utc>,
                             until: DateTime<Utc>,
                             in_session: bool,
                             rng: &mut StdRng,
                             counters: &mut NetCounters|
         -> anyhow::Result<bool> {
            loop {
                let stop = until.min(next_heartbeat);
                let cut = power_cut_at.filter(|cut| *cut <= stop);
                let target = cut.unwrap_or(stop);
                let step = target - *true_now;
                if step > Duration::zero() {
                    clock.advance(to_std(step));
                    if in_session && link_up {
                        let kb_per_min = rng.random_range(40..600) as u64;
                        counters.rx += kb_per_min * 1024 * step.num_minutes().max(0) as u64;
                        counters.tx += kb_per_min * 100 * step.num_minutes().max(0) as u64;
                    }
                    *true_now = target;
                }
                if cut.is_some() {
                    return Ok(false);
                }
                if !clock_fixed && *true_now >= clock_fixed_at {
                    clock.set_wall(*true_now);
                    clock_fixed = true;
                }
                if *true_now >= next_heartbeat {
                    store.heartbeat(Some(*counters), Some(link_up), true)?;
                    next_heartbeat += DEMO_HEARTBEAT;
                }
                if *true_now >= until {
                    return Ok(true);
                }
            }
        };

        let mean_gap =
            (CLOSING_HOUR - OPENING_HOUR) as f64 * 60.0 / village.sessions_per_pc_day.max(0.5);
        let mut powered = true;
        loop {
            let gap = Duration::minutes((rng.random::<f64>() * mean_gap * 1.2) as i64 + 2);
            let arrival = true_now + gap;
            if arrival >= close {
                break;
            }
            if !pass_time(
                &mut store,
                &mut true_now,
                arrival,
                false,
                &mut rng,
                &mut counters,
            )? {
                powered = false;
                break;
            }
            let profile = patron(&mut rng, &secret, &member_prefix);
            store.start_session(profile, Some(counters))?;
            let length = Duration::minutes(rng.random_range(8..95));
            let leave = (true_now + length).min(close);
            if !pass_time(
                &mut store,
                &mut true_now,
                leave,
                true,
                &mut rng,
                &mut counters,
            )? {
                powered = false;
                break;
            }
            let reason = match rng.random_range(0..100) {
                0..=84 => EndReason::Logout,
                85..=94 => EndReason::Idle,
                _ => EndReason::StaffEnded,
            };
            store.end_session(reason, Some(counters))?;
        }
        if powered {
            pass_time(
                &mut store,
                &mut true_now,
                close,
                false,
                &mut rng,
                &mut counters,
            )?;
            if pc == DESK_PC {
                desk_day(&mut store, &mut rng, month, day)?;
            }
            // Closing time: the PC is shut down properly.
            store.record_event(PcEventKind::Shutdown)?;
        }
        cut_yesterday = !powered;
    }
    Ok(())
}

/// The PC at the librarian's desk, where the visitor book, the activities and the
/// member count are kept.
const DESK_PC: &str = "pc-01";

/// A day at the librarian's desk, written at closing time: the day's visitor-book
/// entries (now and then a group, now and then a double tap the librarian undoes), an
/// activity on two days of the month, and the month's member count from the 20th on
/// (a later day's count is its next revision).
fn desk_day(
    store: &mut Store,
    rng: &mut StdRng,
    month: NaiveDate,
    day: NaiveDate,
) -> anyhow::Result<()> {
    for _ in 0..rng.random_range(2..10) {
        let group = rng.random_bool(0.05);
        let pick = |rng: &mut StdRng, len: usize| rng.random_range(0..len);
        let input = VisitInput {
            gender: if rng.random_bool(0.55) {
                Gender::P
            } else {
                Gender::L
            },
            age_group: AgeGroup::ALL[pick(rng, AgeGroup::ALL.len())],
            user_kind: if group {
                UserKind::Rombongan
            } else if rng.random_bool(0.6) {
                UserKind::Anggota
            } else {
                UserKind::NonAnggota
            },
            purpose: VisitPurpose::ALL[pick(rng, VisitPurpose::ALL.len())],
            people: if group { rng.random_range(5..25) } else { 1 },
        };
        store.add_visit(input)?;
        if rng.random_bool(0.04) {
            // A double tap: the librarian takes the second entry back.
            store.add_visit(input)?;
            store.undo_last_visit()?;
        }
    }
    let activity = match day.day() {
        8..=9 => Some((
            ActivityType::SosialisasiKie,
            "Sosialisasi gizi anak",
            Some("Puskesmas"),
            ActivityPlace::DiLuar,
            "P:dewasa=14,L:dewasa=4,P:lansia=3",
        )),
        22..=23 => Some((
            ActivityType::Pelatihan,
            "Pelatihan membuat email",
            None,
            ActivityPlace::DiPerpustakaan,
            "P:remaja=6,L:remaja=5,P:dewasa=3",
        )),
        _ => None,
    };
    let already = |store: &Store, title: &str| -> anyhow::Result<bool> {
        Ok(store
            .desk_records("activity", u32::MAX)?
            .iter()
            .any(|r| matches!(r, RecordBody::Activity(a) if a.title == title)))
    };
    if let Some((activity_type, title, partner, place, participants)) = activity
        && !already(store, title)?
    {
        store.add_activity(ActivityInput {
            date: day,
            start: chrono::NaiveTime::from_hms_opt(9, 0, 0).unwrap_or_default(),
            duration_minutes: 120,
            activity_type,
            title: title.to_string(),
            partner: partner.map(str::to_string),
            place,
            participants: Participants::parse(participants)?,
            notes: None,
        })?;
    }
    if day.day() >= 20 {
        let new_members = 3 + (month.month() % 5);
        let month = YearMonth::of(month).context("the simulated month")?;
        store.set_member_count(month, 180 + new_members, new_members)?;
    }
    Ok(())
}

/// What the desk recorded in the month (the newest revisions), to compare the PC with
/// the server's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
struct DeskCounts {
    /// Visitor-book visitors (groups by their size), undone entries left out.
    visitors: u64,
    /// Activities and their participants.
    activities: u64,
    participants: u64,
    /// The month's member count, if entered.
    members: Option<u64>,
}

impl DeskCounts {
    /// The desk PC's own records.
    fn of_pc(store: &Store) -> anyhow::Result<DeskCounts> {
        let mut counts = DeskCounts::default();
        for record in store.desk_records("visit", u32::MAX)? {
            if let RecordBody::Visit(v) = record
                && !v.withdrawn
            {
                counts.visitors += u64::from(v.people);
            }
        }
        for record in store.desk_records("activity", u32::MAX)? {
            if let RecordBody::Activity(a) = record {
                counts.activities += 1;
                counts.participants += u64::from(a.participants.total());
            }
        }
        for record in store.desk_records("member_count", u32::MAX)? {
            if let RecordBody::MemberCount(m) = record {
                counts.members = Some(u64::from(m.members));
            }
        }
        Ok(counts)
    }

    /// The server's counters of the library's month.
    fn of_server(lib: &jejak_server::report::LibraryFacts) -> DeskCounts {
        use jejak_server::report::{counters, month_count, month_members};
        DeskCounts {
            visitors: month_count(lib, counters::VISIT_PEOPLE),
            activities: month_count(lib, counters::ACTIVITIES),
            participants: month_count(lib, counters::PARTICIPANTS),
            members: month_members(lib).map(|(members, _)| members),
        }
    }
}

/// How each village reaches the district office in the demo.
#[derive(Debug, Clone, Copy, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Link {
    /// A good link.
    Good,
    /// 2G: 128 kbit/s, 150 ms each way, one connection in ten dropped.
    Slow2g,
    /// The server's answers are lost for the first seconds (the classic lost ack).
    LostAcks,
    /// No link at first (the modem is off), then a good one.
    Outage,
    /// No link at all: a USB stick goes to the district office.
    UsbStick,
}

impl Link {
    fn of(village: &Village) -> Link {
        match village.code {
            "pesawahan" => Link::Slow2g,
            "rempoah" => Link::LostAcks,
            "karanganyar" => Link::Outage,
            "adisara" => Link::UsbStick,
            _ => Link::Good,
        }
    }

    fn label(self, lang: Lang) -> &'static str {
        match self {
            Link::Good => lang.pick("baik", "good"),
            Link::Slow2g => lang.pick("2G lambat, sering putus", "slow 2G, drops"),
            Link::LostAcks => lang.pick("jawaban server hilang", "lost acknowledgements"),
            Link::Outage => lang.pick("putus, lalu pulih", "down, then back"),
            Link::UsbStick => lang.pick("tanpa sinyal: USB", "no signal: USB stick"),
        }
    }

    fn faults(self) -> Faults {
        match self {
            Link::Good | Link::UsbStick => Faults::pass(),
            Link::Slow2g => Faults {
                drop_connection_chance: 0.1,
                seed: 7,
                ..Faults::slow_link(16_000, StdDuration::from_millis(150))
            },
            Link::LostAcks => Faults::lost_response(),
            Link::Outage => Faults::link_down(),
        }
    }
}

/// One village's sync, as the demo reports it.
#[derive(Debug, serde::Serialize)]
struct VillageSync {
    library: String,
    link: Link,
    batches: u64,
    retries: u64,
    bytes_sent: u64,
    sessions_on_server: u64,
    events_on_server: u64,
    /// The village's sessions on the server, by what the reports make of them.
    sessions: SessionCounts,
    /// The desk's visitors, activities and member count, equal on the PC and the server.
    desk: DeskCounts,
}

/// Sessions the server holds, as the reports count them.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
struct SessionCounts {
    total: u64,
    /// Staff sessions: recorded, never counted in reports.
    staff: u64,
    /// Patron sessions the server dates in the month (those the matrix counts).
    in_month: u64,
    /// …of which dated by an estimate (a wrong clock, a power cut).
    estimated_in_month: u64,
    /// Patron sessions the server dates in another month.
    other_months: u64,
}

impl SessionCounts {
    fn add(&mut self, other: SessionCounts) {
        self.total += other.total;
        self.staff += other.staff;
        self.in_month += other.in_month;
        self.estimated_in_month += other.estimated_in_month;
        self.other_months += other.other_months;
    }
}

#[derive(Debug, serde::Serialize)]
struct District {
    database: PathBuf,
    villages: Vec<VillageSync>,
    /// The district matrix of the month, as the district office would print it.
    #[serde(skip)]
    matrix: jejak_server::report::Report,
    /// The printable and spreadsheet reports written into the output folder.
    reports: Vec<PathBuf>,
}

impl District {
    fn session_counts(&self) -> SessionCounts {
        let mut counts = SessionCounts::default();
        for village in &self.villages {
            counts.add(village.sessions);
        }
        counts
    }
}

/// Starts the district server in this process (embedded SQLite, 127.0.0.1), enrolls
/// every PC exactly as `jejak server add-device` and `jejak enroll` do, syncs each
/// village through its own faulty link (or a USB bundle), and checks that the server
/// holds exactly the records the PCs made.
async fn sync_to_district(out: &Path, month: NaiveDate, lang: Lang) -> anyhow::Result<District> {
    let database = out.join("server").join("jejak-server.db");
    std::fs::create_dir_all(out.join("server"))?;
    // The district server lives in the simulated time too: it is the evening of the
    // month's last day, so the PCs' clocks (right, apart from the dead CMOS) agree with it,
    // and the USB bundle is imported that evening as well.
    let simulated_now = local(
        month + Duration::days(days_in_month(month) as i64 - 1),
        17,
        0,
    );
    let started = std::time::Instant::now();
    let clock: jejak_server::ServerClock =
        Arc::new(move || simulated_now + Duration::from_std(started.elapsed()).unwrap_or_default());
    let store: Arc<dyn ServerStore> = Arc::new(SqliteStore::open_with(
        &database,
        jejak_server::SqliteOptions {
            clock: clock.clone(),
        },
    )?);
    let state = AppState::new(
        store.clone(),
        ServerConfig {
            clock: clock.clone(),
            ..ServerConfig::default()
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let server_addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(jejak_server::run(listener, state, async {
        let _ = stopped.await;
    }));

    let mut tasks = Vec::new();
    let mut proxies = Vec::new();
    for village in VILLAGES {
        let library = LibraryCode::parse(village.code)?;
        let details = jejak_domain::LibraryDetails {
            desa: village
                .name
                .strip_prefix("Perpustakaan Desa ")
                .map(str::to_string),
            kecamatan: village.kecamatan.map(str::to_string),
            ..Default::default()
        };
        store
            .add_library_with_details(&library, village.name, Zone::Wib, &details)
            .await?;
        let link = Link::of(village);
        let proxy = FaultProxy::start(server_addr, link.faults()).await?;
        let url = format!("http://{}", proxy.local_addr());
        for pc in PCS {
            let dir = out.join(village.code).join(pc);
            let token = store.add_device(&library, &PcCode::parse(pc)?).await?;
            crate::init::set_config_key(&dir, "server", &url)?;
            save_token(&dir, token.expose())?;
            let token = token.expose().to_string();
            let (library, url, store, clock) =
                (library.clone(), url.clone(), store.clone(), clock.clone());
            tasks.push(tokio::spawn(async move {
                let outcome = if link == Link::UsbStick {
                    carry_usb_bundle(&dir, &token, store.as_ref(), month, &clock).await
                } else {
                    sync_pc(&dir, &url, &token, month).await
                };
                (library, outcome)
            }));
        }
        proxies.push((link, proxy));
    }
    // The broken links mend after a while; the PCs' retries then get through.
    tokio::time::sleep(StdDuration::from_millis(1500)).await;
    for (link, proxy) in &proxies {
        if matches!(link, Link::LostAcks | Link::Outage) {
            proxy.set_faults(Faults::pass());
        }
    }
    let mut totals: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for task in tasks {
        let (library, outcome) = task.await?;
        let (batches, retries, bytes) = outcome?;
        let entry = totals.entry(library.to_string()).or_default();
        entry.0 += batches;
        entry.1 += retries;
        entry.2 += bytes;
    }
    for (_, proxy) in proxies {
        proxy.shutdown().await;
    }

    let mut villages = Vec::new();
    for village in VILLAGES {
        let (sessions, events_on_server, desk) =
            verify_village(village, out, store.as_ref(), month).await?;
        let (batches, retries, bytes_sent) = totals.get(village.code).copied().unwrap_or_default();
        villages.push(VillageSync {
            library: village.code.to_string(),
            link: Link::of(village),
            batches,
            retries,
            bytes_sent,
            sessions_on_server: sessions.total,
            events_on_server,
            sessions,
            desk,
        });
    }
    let _ = stop.send(());
    server.await??;
    // The rollups the reports read must equal a recount from the sessions just stored.
    let check = store.check_rollups().await?;
    if !check.is_consistent() {
        anyhow::bail!(
            "the district server's rollups differ from a recount: {:?}",
            check.described
        );
    }
    let (matrix, reports) = write_reports(store.as_ref(), out, month, lang).await?;
    let district = District {
        database,
        villages,
        matrix,
        reports,
    };
    // What the demo says about the totals must be what the matrix shows.
    let counted = district.session_counts().in_month;
    anyhow::ensure!(
        matrix_sessions(&district.matrix) == counted,
        "the district matrix counts {} sessions, the server dates {counted} patron sessions in the month",
        matrix_sessions(&district.matrix)
    );
    Ok(district)
}

/// The month's reports from the district server's data: the district matrix (XLSX and
/// printable HTML) and each village's monthly report (printable HTML), written into the
/// output folder. "Today" is the day after the month, as when the reports are due.
async fn write_reports(
    store: &dyn ServerStore,
    out: &Path,
    month: NaiveDate,
    lang: Lang,
) -> anyhow::Result<(jejak_server::report::Report, Vec<PathBuf>)> {
    use jejak_server::report::{
        Letterhead, RenderOptions, ReportRequest, load, render_html, render_xlsx,
    };
    // The district's kop, kept in the server's store as `jejak server letterhead` keeps
    // it, so that every report (and the dashboard with --serve) carries it.
    store
        .set_letterhead(Some(Letterhead {
            lines: vec![
                "PEMERINTAH KABUPATEN BANYUMAS".into(),
                "DINAS ARSIP DAN PERPUSTAKAAN".into(),
                "Jl. Jenderal Soedirman, Purwokerto".into(),
            ],
            logo: None,
        }))
        .await?;
    let due = local(month + Duration::days(days_in_month(month) as i64), 9, 0);
    let options = RenderOptions::new(lang);
    let matrix = load(store, &ReportRequest::District { month }, lang, due).await?;
    let dir = out.join("laporan");
    std::fs::create_dir_all(&dir)?;
    let mut written = Vec::new();
    let xlsx = dir.join(format!("{}.xlsx", matrix.id));
    std::fs::write(&xlsx, render_xlsx(&matrix, &options)?)?;
    written.push(xlsx);
    let html = dir.join(format!("{}.html", matrix.id));
    std::fs::write(&html, render_html(&matrix, &options))?;
    written.push(html);
    for village in VILLAGES {
        let library = LibraryCode::parse(village.code)?;
        let report = load(store, &ReportRequest::Village { month, library }, lang, due).await?;
        let path = dir.join(format!("{}.html", report.id));
        std::fs::write(&path, render_html(&report, &options))?;
        written.push(path);
    }
    // The IPLM sheet of the month's year, as the district enters it nationally.
    let year = month.year();
    let iplm = load(store, &ReportRequest::Iplm { year }, lang, due).await?;
    let path = dir.join(format!("{}.xlsx", iplm.id));
    std::fs::write(&path, render_xlsx(&iplm, &options)?)?;
    written.push(path);
    Ok((matrix, written))
}

/// Opens a simulated PC's store as it is at the end of the month.
fn open_demo_pc(dir: &Path, month: NaiveDate) -> anyhow::Result<Store> {
    let config = AgentConfig::load(dir)?;
    let clock = ManualClock::new(local(
        month + Duration::days(days_in_month(month) as i64 - 1),
        17,
        0,
    ));
    let (mut store, _) = Store::open(
        &dir.join(STORE_FILE),
        config.identity(dir)?,
        Arc::new(clock),
    )?;
    store.set_earliest_plausible_wall(local(month, 0, 0) - Duration::days(365));
    Ok(store)
}

/// `jejak sync` for one simulated PC, retrying (quickly, for the demo) until done.
async fn sync_pc(
    dir: &Path,
    url: &str,
    token: &str,
    month: NaiveDate,
) -> anyhow::Result<(u64, u64, u64)> {
    let mut store = open_demo_pc(dir, month)?;
    let client = SyncClient::new(url, token, StdDuration::from_secs(20))?.with_signing_key(dir)?;
    let options = SyncOptions {
        backoff_base: StdDuration::from_millis(100),
        backoff_cap: StdDuration::from_secs(1),
        ..SyncOptions::default()
    };
    let report = sync_once(&mut store, &client, &options, &mut |_| {}).await?;
    Ok((
        u64::from(report.batches),
        u64::from(report.retries),
        report.bytes_sent,
    ))
}

/// The USB route: export on the PC, import at the district office, acknowledgement
/// back on the PC.
async fn carry_usb_bundle(
    dir: &Path,
    token: &str,
    server: &dyn ServerStore,
    month: NaiveDate,
    clock: &jejak_server::ServerClock,
) -> anyhow::Result<(u64, u64, u64)> {
    let mut store = open_demo_pc(dir, month)?;
    // The PC was enrolled at the district office, where it heard which record kinds the
    // server takes (`jejak enroll` asks); so its bundle carries the desk's records too.
    store.save_server_accepts(&jejak_domain::RecordKind::ALL)?;
    let bundle_path = dir.join("usb-bundle.json");
    let ack_path = dir.join("usb-bundle.ack.json");
    let key = jejak_sync::signing::DeviceKey::load_or_create(dir)?;
    let exported = bundle::export(&mut store, token, &key, &bundle_path)?;
    // The district officer checks the fingerprint on the PC's screen, as the README says.
    let trust = crate::server_cmd::ImportTrust {
        key_fingerprint: Some(key.fingerprint()),
        accept_unsigned: false,
    };
    crate::server_cmd::import_bundle(server, &bundle_path, &ack_path, &trust, clock).await?;
    bundle::import_ack(&mut store, token, &std::fs::read(&ack_path)?)?;
    Ok((exported.batches as u64, 0, exported.bytes))
}

/// Compares every PC of a village with what the server holds: the same sessions at the
/// same revisions, the same pc events, and nothing left waiting.
async fn verify_village(
    village: &Village,
    out: &Path,
    server: &dyn ServerStore,
    month: NaiveDate,
) -> anyhow::Result<(SessionCounts, u64, DeskCounts)> {
    let (mut sessions, mut events) = (SessionCounts::default(), 0u64);
    let month_end = month + Duration::days(days_in_month(month) as i64);
    for pc in PCS {
        let dir = out.join(village.code).join(pc);
        let store = open_demo_pc(&dir, month)?;
        let state = store.sync_state()?;
        anyhow::ensure!(
            state.pending() == 0,
            "{}/{pc}: {} changes still waiting",
            village.code,
            state.pending()
        );
        let device = server
            .find_device(&LibraryCode::parse(village.code)?, &PcCode::parse(pc)?)
            .await?
            .ok_or_else(|| anyhow::anyhow!("{}/{pc} is not enrolled", village.code))?;
        let local: BTreeMap<uuid::Uuid, u32> = store
            .recent_sessions(u32::MAX)?
            .into_iter()
            .map(|s| (s.id, s.revision))
            .collect();
        let stored = server.sessions(&device).await?;
        for session in &stored {
            sessions.total += 1;
            if !session.patron.user_kind.counts_publicly() {
                sessions.staff += 1;
                continue;
            }
            // The day the reports count it on: its start as the server dates it, in the
            // library's zone (all five are in WIB).
            let day = session
                .corrected_start
                .with_timezone(&Zone::Wib.offset())
                .date_naive();
            if (month..month_end).contains(&day) {
                sessions.in_month += 1;
                sessions.estimated_in_month +=
                    u64::from(session.time_quality == jejak_domain::TimeQuality::Estimated);
            } else {
                sessions.other_months += 1;
            }
        }
        let remote: BTreeMap<uuid::Uuid, u32> = stored.iter().map(|s| (s.id, s.revision)).collect();
        anyhow::ensure!(
            local == remote,
            "{}/{pc}: the server's sessions differ from the PC's",
            village.code
        );
        let local_events: HashSet<uuid::Uuid> = store
            .changes_after(0, u32::MAX)?
            .into_iter()
            .filter_map(|c| match c.body {
                RecordBody::PcEvent(e) => Some(e.id),
                RecordBody::Session(_)
                | RecordBody::Visit(_)
                | RecordBody::MemberCount(_)
                | RecordBody::Activity(_) => None,
            })
            .collect();
        let remote_events: HashSet<uuid::Uuid> = server
            .events(&device)
            .await?
            .into_iter()
            .map(|e| e.id)
            .collect();
        anyhow::ensure!(
            local_events == remote_events,
            "{}/{pc}: the server's pc events differ from the PC's",
            village.code
        );
        events += remote_events.len() as u64;
    }
    // The desk's visitors, activities and member count: the server counts what the desk
    // PC holds.
    let library = LibraryCode::parse(village.code)?;
    let desk = DeskCounts::of_pc(&open_demo_pc(&out.join(village.code).join(DESK_PC), month)?)?;
    let facts = server
        .month_facts(
            month,
            Some(&library),
            jejak_server::report::FactsDetail::Days,
        )
        .await?;
    let counted = facts
        .library(&library)
        .map(DeskCounts::of_server)
        .unwrap_or_default();
    anyhow::ensure!(
        desk == counted,
        "{}: the server counts {counted:?} of the desk's records, the desk PC holds {desk:?}",
        village.code
    );
    Ok((sessions, events, desk))
}

fn district_table(district: &District, lang: Lang) -> String {
    let header = [
        lang.pick("Perpustakaan", "Library"),
        lang.pick("Jalur ke kabupaten", "Link to the district"),
        lang.pick("Batch", "Batches"),
        lang.pick("Percobaan ulang", "Retries"),
        lang.pick("Terkirim (KB)", "Sent (KB)"),
        lang.pick("Sesi di server", "Sessions on server"),
        lang.pick("Peristiwa di server", "Events on server"),
    ]
    .map(String::from)
    .to_vec();
    let rows = district
        .villages
        .iter()
        .map(|v| {
            vec![
                v.library.clone(),
                v.link.label(lang).to_string(),
                v.batches.to_string(),
                v.retries.to_string(),
                output::number(v.bytes_sent as f64 / 1000.0, 1, lang),
                output::number(v.sessions_on_server as f64, 0, lang),
                output::number(v.events_on_server as f64, 0, lang),
            ]
        })
        .collect();
    output::table(header, rows)
}

fn weighted<T: Copy>(rng: &mut StdRng, choices: &[(T, u32)]) -> T {
    let total: u32 = choices.iter().map(|(_, w)| w).sum();
    let mut pick = rng.random_range(0..total.max(1));
    for (value, weight) in choices {
        if pick < *weight {
            return *value;
        }
        pick -= weight;
    }
    choices[0].0
}

fn patron(rng: &mut StdRng, secret: &PatronSecret, member_prefix: &str) -> PatronProfile {
    let user_kind = weighted(
        rng,
        &[
            (UserKind::Anggota, 45),
            (UserKind::NonAnggota, 35),
            (UserKind::Rombongan, 7),
            (UserKind::Pelatihan, 8),
            (UserKind::Staf, 5),
        ],
    );
    let purpose_weights = [
        (Purpose::Pendidikan, 35),
        (Purpose::Komunikasi, 15),
        (Purpose::Ekonomi, 12),
        (Purpose::Hobi, 15),
        (Purpose::LiterasiDigital, 8),
        (Purpose::Pemerintahan, 6),
        (Purpose::Kesehatan, 5),
        (Purpose::Lainnya, 4),
    ];
    let count = weighted(rng, &[(1usize, 70), (2, 25), (3, 5)]);
    let mut purposes = Vec::new();
    while purposes.len() < count {
        let p = weighted(rng, &purpose_weights);
        if !purposes.contains(&p) {
            purposes.push(p);
        }
    }
    PatronProfile {
        user_kind,
        purposes,
        gender: weighted(rng, &[(Gender::L, 48), (Gender::P, 48), (Gender::X, 4)]),
        age_group: weighted(
            rng,
            &[
                (AgeGroup::Anak, 15),
                (AgeGroup::Remaja, 25),
                (AgeGroup::Pemuda, 30),
                (AgeGroup::Dewasa, 15),
                (AgeGroup::Madya, 10),
                (AgeGroup::Lansia, 5),
            ],
        ),
        group_size: if user_kind == UserKind::Rombongan {
            rng.random_range(2..7)
        } else {
            1
        },
        patron_key: (user_kind == UserKind::Anggota)
            .then(|| secret.key_for(&format!("{member_prefix}-{:04}", rng.random_range(1..80)))),
    }
}

/// A village's month, read back from its PCs' stores.
#[derive(Debug, serde::Serialize)]
struct VillageSummary {
    library: String,
    name: String,
    pcs: usize,
    sessions: u64,
    unique_members: usize,
    hours: f64,
    mean_minutes: f64,
    women_pct: f64,
    top_purpose: Option<Purpose>,
    data_mb: f64,
    power_loss_sessions: u64,
    clock_warnings: u64,
    changes_waiting_to_sync: u64,
}

fn summarise(village: &Village, out: &Path, month: NaiveDate) -> anyhow::Result<VillageSummary> {
    let month_end = local(month + Duration::days(days_in_month(month) as i64), 0, 0);
    let mut sessions = 0u64;
    let mut seconds = 0u64;
    let mut women = 0u64;
    let mut bytes = 0u64;
    let mut power_loss = 0u64;
    let mut clock_warnings = 0u64;
    let mut waiting = 0u64;
    let mut members = HashSet::new();
    let mut purposes: BTreeMap<Purpose, u64> = BTreeMap::new();
    for pc in PCS {
        let dir = out.join(village.code).join(pc);
        let config = AgentConfig::load(&dir)?;
        let clock = ManualClock::new(month_end);
        let (mut store, _) = Store::open(
            &dir.join(STORE_FILE),
            config.identity(&dir)?,
            Arc::new(clock),
        )?;
        store.set_earliest_plausible_wall(local(month, 0, 0) - Duration::days(365));
        for s in store.recent_sessions(u32::MAX)? {
            if s.end_reason == Some(EndReason::PowerLoss) {
                power_loss += 1;
            }
            if !s.patron.user_kind.counts_publicly() {
                continue;
            }
            sessions += 1;
            seconds += s.duration_secs;
            bytes += s.bytes_rx + s.bytes_tx;
            women += u64::from(s.patron.gender == Gender::P);
            if let Some(key) = &s.patron.patron_key {
                members.insert(key.clone());
            }
            for p in &s.patron.purposes {
                *purposes.entry(*p).or_default() += 1;
            }
        }
        for change in store.changes_after(0, u32::MAX)? {
            if let RecordBody::PcEvent(e) = change.body
                && matches!(e.kind, PcEventKind::ClockJump | PcEventKind::ClockSuspect)
            {
                clock_warnings += 1;
            }
        }
        waiting += store.status(Zone::Wib)?.pending_changes;
    }
    Ok(VillageSummary {
        library: village.code.to_string(),
        name: village.name.to_string(),
        pcs: PCS.len(),
        sessions,
        unique_members: members.len(),
        hours: seconds as f64 / 3600.0,
        mean_minutes: if sessions > 0 {
            seconds as f64 / 60.0 / sessions as f64
        } else {
            0.0
        },
        women_pct: if sessions > 0 {
            women as f64 * 100.0 / sessions as f64
        } else {
            0.0
        },
        top_purpose: purposes.iter().max_by_key(|(_, n)| **n).map(|(p, _)| *p),
        data_mb: bytes as f64 / 1e6,
        power_loss_sessions: power_loss,
        clock_warnings,
        changes_waiting_to_sync: waiting,
    })
}

fn summary_table(summaries: &[VillageSummary], lang: Lang) -> String {
    let header = [
        lang.pick("Perpustakaan", "Library"),
        lang.pick("PC", "PCs"),
        lang.pick("Sesi", "Sessions"),
        lang.pick("Anggota unik", "Unique members"),
        lang.pick("Jam", "Hours"),
        lang.pick("Rata-rata (menit)", "Mean (min)"),
        lang.pick("Perempuan %", "Women %"),
        lang.pick("Tujuan utama", "Top purpose"),
        lang.pick("Data (MB)", "Data (MB)"),
        lang.pick("Sesi terputus listrik", "Cut by power loss"),
        lang.pick("Peringatan jam", "Clock warnings"),
        lang.pick("Menunggu sinkron", "Waiting to sync"),
    ]
    .map(String::from)
    .to_vec();
    let n = |v: f64, d: usize| output::number(v, d, lang);
    let mut rows: Vec<Vec<String>> = summaries
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.pcs.to_string(),
                n(s.sessions as f64, 0),
                n(s.unique_members as f64, 0),
                n(s.hours, 1),
                n(s.mean_minutes, 1),
                n(s.women_pct, 1),
                s.top_purpose
                    .map(|p| p.label(lang).to_string())
                    .unwrap_or_default(),
                n(s.data_mb, 1),
                n(s.power_loss_sessions as f64, 0),
                n(s.clock_warnings as f64, 0),
                n(s.changes_waiting_to_sync as f64, 0),
            ]
        })
        .collect();
    let total_sessions: u64 = summaries.iter().map(|s| s.sessions).sum();
    let total_hours: f64 = summaries.iter().map(|s| s.hours).sum();
    rows.push(vec![
        lang.pick("JUMLAH", "TOTAL").to_string(),
        summaries.iter().map(|s| s.pcs).sum::<usize>().to_string(),
        n(total_sessions as f64, 0),
        n(
            summaries.iter().map(|s| s.unique_members).sum::<usize>() as f64,
            0,
        ),
        n(total_hours, 1),
        n(
            if total_sessions > 0 {
                total_hours * 60.0 / total_sessions as f64
            } else {
                0.0
            },
            1,
        ),
        n(
            if total_sessions > 0 {
                summaries
                    .iter()
                    .map(|s| s.women_pct * s.sessions as f64)
                    .sum::<f64>()
                    / total_sessions as f64
            } else {
                0.0
            },
            1,
        ),
        String::new(),
        n(summaries.iter().map(|s| s.data_mb).sum(), 1),
        n(
            summaries.iter().map(|s| s.power_loss_sessions).sum::<u64>() as f64,
            0,
        ),
        n(
            summaries.iter().map(|s| s.clock_warnings).sum::<u64>() as f64,
            0,
        ),
        n(
            summaries
                .iter()
                .map(|s| s.changes_waiting_to_sync)
                .sum::<u64>() as f64,
            0,
        ),
    ]);
    output::table(header, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_previous_month_is_found_across_a_year_end() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        assert_eq!(previous_month(d(2026, 11, 26)), d(2026, 10, 1));
        assert_eq!(previous_month(d(2027, 1, 5)), d(2026, 12, 1));
        assert_eq!(days_in_month(d(2028, 2, 1)), 29);
    }
}
