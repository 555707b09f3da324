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
use jejak_agent::store::{NetCounters, Store};
use jejak_domain::{
    AgeGroup, DeviceIdentity, EndReason, Gender, Lang, LibraryCode, PatronProfile, PcCode,
    PcEventKind, Purpose, RecordBody, UserKind, Zone,
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
    /// Afterwards, keep the district server running at this address (default
    /// 127.0.0.1:8080) with a staff token for the web dashboard, until Ctrl-C.
    #[arg(
        long,
        value_name = "ADDR",
        num_args = 0..=1,
        default_missing_value = "127.0.0.1:8080"
    )]
    serve: Option<String>,
}

/// One of the five villages and what makes its month different.
struct Village {
    code: &'static str,
    name: &'static str,
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
        sessions_per_pc_day: 9.0,
        power_cut_chance: 0.08,
        no_internet_days: None,
        dead_cmos_pc: None,
    },
    Village {
        code: "pesawahan",
        name: "Perpustakaan Desa Pesawahan",
        sessions_per_pc_day: 5.0,
        power_cut_chance: 0.15,
        no_internet_days: Some((12, 19)),
        dead_cmos_pc: None,
    },
    Village {
        code: "rempoah",
        name: "Perpustakaan Desa Rempoah",
        sessions_per_pc_day: 7.0,
        power_cut_chance: 0.05,
        no_internet_days: None,
        dead_cmos_pc: None,
    },
    Village {
        code: "adisara",
        name: "Perpustakaan Desa Adisara",
        sessions_per_pc_day: 4.0,
        power_cut_chance: 0.2,
        no_internet_days: Some((1, 4)),
        dead_cmos_pc: Some("pc-03"),
    },
    Village {
        code: "karanganyar",
        name: "Perpustakaan Desa Karanganyar",
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
    let out = prepare_out_dir(args.out)?;
    if !ctx.json {
        println!(
            "{} {} — {}",
            lang.pick("Simulasi satu bulan", "Simulating one month"),
            month.format("%Y-%m"),
            out.display()
        );
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
        println!(
            "{}",
            lang.pick(
                "Sinkron ke server kabupaten (di komputer ini, lewat jalur yang dibuat buruk)…",
                "Syncing to the district server (on this machine, through deliberately bad links)…"
            )
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let district = runtime.block_on(sync_to_district(&out, month, ctx.lang))?;
    let serve = args.serve.clone();

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
    println!("{}", summary_table(&summaries, lang));
    println!("{}", district_table(&district, lang));
    println!(
        "{}",
        jejak_server::report::render_terminal(
            &district.matrix,
            &jejak_server::report::RenderOptions::new(lang)
        )
    );
    for path in &district.reports {
        println!(
            "{} {}",
            lang.pick("Laporan ditulis:", "Report written:"),
            path.display()
        );
    }
    let sessions: u64 = district.villages.iter().map(|v| v.sessions_on_server).sum();
    let events: u64 = district.villages.iter().map(|v| v.events_on_server).sum();
    println!(
        "{} {} {} {} {} {}",
        lang.pick(
            "✓ Server kabupaten memegang persis catatan yang dibuat komputer desa:",
            "✓ The district server holds exactly the records the village PCs made:"
        ),
        output::number(sessions as f64, 0, lang),
        lang.pick("sesi dan", "sessions and"),
        output::number(events as f64, 0, lang),
        lang.pick(
            "peristiwa komputer. Basis data server:",
            "pc events. Server database:"
        ),
        district.database.display()
    );
    println!(
        "{}",
        lang.pick(
            "Sesi petugas tidak dihitung. Data tiap komputer ada di folder di atas; coba: jejak --data-dir <folder>/dermaji/pc-01 status",
            "Staff sessions are not counted. Each PC's data is in the folder above; try: jejak --data-dir <folder>/dermaji/pc-01 status"
        )
    );
    if let Some(address) = serve {
        runtime.block_on(serve_dashboard(&district.database, &address, month, lang))?;
    }
    Ok(())
}

/// `jejak demo --serve`: the district server on `address` over the demo's database,
/// its clock set to the morning after the month (when the reports are due, so the
/// silence flags read as they would then), with a staff token for the dashboard. Runs
/// until Ctrl-C or SIGTERM.
async fn serve_dashboard(
    database: &Path,
    address: &str,
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
    let listener = tokio::net::TcpListener::bind(address).await.map_err(|e| {
        UsageError::new(
            format!(
                "tidak bisa mendengarkan di {address}: {e}; pilih alamat lain dengan --serve ALAMAT"
            ),
            format!("cannot listen on {address}: {e}; choose another address with --serve ADDR"),
        )
    })?;
    let bound = listener.local_addr()?;
    println!(
        "{} http://{bound}/dashboard?month={}",
        lang.pick("Dasbor:", "Dashboard:"),
        month.format("%Y-%m")
    );
    println!(
        "{} {}",
        lang.pick("Token petugas untuk masuk:", "Staff token to sign in:"),
        token.expose()
    );
    println!(
        "{}",
        lang.pick("Tekan Ctrl-C untuk berhenti.", "Press Ctrl-C to stop.")
    );
    jejak_server::run(listener, state, shutdown).await?;
    Ok(())
}

fn parse_month(text: &str) -> anyhow::Result<NaiveDate> {
    NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d").map_err(|_| {
        UsageError::new(
            format!("bulan '{text}' tidak sah; tulis seperti 2026-10"),
            format!("month '{text}' is not valid; write it like 2026-10"),
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
            // Closing time: the PC is shut down properly.
            store.record_event(PcEventKind::Shutdown)?;
        }
        cut_yesterday = !powered;
    }
    Ok(())
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
        store.add_library(&library, village.name, Zone::Wib).await?;
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
        let (sessions_on_server, events_on_server) =
            verify_village(village, out, store.as_ref(), month).await?;
        let (batches, retries, bytes_sent) = totals.get(village.code).copied().unwrap_or_default();
        villages.push(VillageSync {
            library: village.code.to_string(),
            link: Link::of(village),
            batches,
            retries,
            bytes_sent,
            sessions_on_server,
            events_on_server,
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
    Ok(District {
        database,
        villages,
        matrix,
        reports,
    })
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
) -> anyhow::Result<(u64, u64)> {
    let (mut sessions, mut events) = (0u64, 0u64);
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
        let remote: BTreeMap<uuid::Uuid, u32> = server
            .sessions(&device)
            .await?
            .into_iter()
            .map(|s| (s.id, s.revision))
            .collect();
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
                RecordBody::Session(_) => None,
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
        sessions += remote.len() as u64;
        events += remote_events.len() as u64;
    }
    Ok((sessions, events))
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
