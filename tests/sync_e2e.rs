//! The sync, end to end (issue 3, "Must show"): the real district server (in this
//! process on 127.0.0.1:0, or the `jejak server run` binary), real SQLite stores on both
//! sides, the real sync client (`jejak_sync::sync_once` and the `jejak sync` binary) and
//! the fault proxy between them.
//!
//! Every test checks data, not "it ran": the server must hold exactly the records the
//! PC made — every session once, at its newest revision and with the same content, every
//! pc event once — its counters must agree, its held seq must be the PC's last seq, and
//! the PC must never count as acknowledged a seq the server does not hold.
//!
//! Waits are bounded polls and every sync runs under a deadline; back-off is shortened
//! through `JEJAK_SYNC_*` (binary) or `SyncOptions` (library), never by sleeping.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use jejak_agent::clock::ManualClock;
use jejak_agent::store::{NetCounters, Store};
use jejak_domain::{
    AgeGroup, BATCH_MEDIA_TYPE, ClockAnchor, DeviceIdentity, EndReason, Gender, LibraryCode,
    PatronKey, PatronProfile, PcCode, PcEvent, PcEventKind, Purpose, RecordBody, Session,
    TimeQuality, UserKind,
};
use jejak_faultproxy::{FaultProxy, Faults, ProxyStats, ResetAfter};
use jejak_server::{
    AppState, DeviceRef, DeviceState, PostgresOptions, PostgresStore, ServerClock, ServerStore,
    SqliteOptions, SqliteStore, StoredEvent, StoredSession,
};
use jejak_sync::batching;
use jejak_sync::{SyncClient, SyncOptions, SyncReport, sync_once};
use jejak_testkit::postgres::TestDatabase;
use jejak_testkit::server::ServerOnOwnRuntime;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use support::{
    COMMAND_DEADLINE, ChildGuard, EXIT_INVALID, EXIT_NO_LINK, EXIT_NOTHING_TO_SEND, EXIT_REFUSED,
    EXIT_SERVER_UNAVAILABLE, FAST_SYNC, Run, StoreView, TestPc, bare_command, run_command,
};
use uuid::Uuid;

/// How long one library sync may take before the test calls it stuck.
const SYNC_DEADLINE: Duration = Duration::from_secs(45);

fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn minutes(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}

// ---------------------------------------------------------------------------------------
// The district server's database: SQLite, or PostgreSQL with JEJAK_E2E_BACKEND=postgres
// ---------------------------------------------------------------------------------------

/// Whether this run puts the district server on PostgreSQL (`JEJAK_E2E_BACKEND=postgres`,
/// with `JEJAK_TEST_POSTGRES` naming a server, as `scripts/pg-test-cluster.sh` prints).
/// The same tests then run unchanged on the other backend.
fn postgres_admin() -> Option<String> {
    if std::env::var("JEJAK_E2E_BACKEND").as_deref() != Ok("postgres") {
        return None;
    }
    match jejak_testkit::postgres::configured() {
        Some(url) => Some(url),
        None => panic!("JEJAK_E2E_BACKEND=postgres needs JEJAK_TEST_POSTGRES"),
    }
}

/// The server's database as `--database` names it; a PostgreSQL one is made fresh for
/// the test and dropped when the last clone goes.
#[derive(Clone)]
struct ServerDb {
    url: String,
    _guard: Arc<DbGuard>,
}

struct DbGuard {
    /// A PostgreSQL database to drop.
    postgres: Option<TestDatabase>,
}

impl Drop for DbGuard {
    fn drop(&mut self) {
        if let Some(database) = self.postgres.take() {
            // On a thread of its own: this may run inside another runtime.
            let _ = std::thread::spawn(move || client_runtime().block_on(database.remove())).join();
        }
    }
}

impl ServerDb {
    /// A new database: `dir/jejak-server.db`, or a fresh PostgreSQL database.
    fn create(dir: &Path) -> ServerDb {
        let (url, postgres) = match postgres_admin() {
            Some(admin) => {
                let database = std::thread::scope(|scope| {
                    scope
                        .spawn(|| {
                            client_runtime().block_on(TestDatabase::create(&admin, "jejak_e2e"))
                        })
                        .join()
                        .unwrap()
                });
                (database.url.clone(), Some(database))
            }
            None => (
                format!("sqlite:{}", dir.join("jejak-server.db").display()),
                None,
            ),
        };
        ServerDb {
            url,
            _guard: Arc::new(DbGuard { postgres }),
        }
    }

    /// Opens the store in this process with `clock`.
    async fn open(&self, clock: ServerClock) -> Arc<dyn ServerStore> {
        match self.url.strip_prefix("sqlite:") {
            Some(path) => {
                Arc::new(SqliteStore::open_with(Path::new(path), SqliteOptions { clock }).unwrap())
            }
            None => Arc::new(
                PostgresStore::open_with(
                    &self.url,
                    PostgresOptions {
                        clock,
                        ..PostgresOptions::default()
                    },
                )
                .await
                .unwrap(),
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The district server in this process
// ---------------------------------------------------------------------------------------

/// The real server (`jejak_server::run` over a `SqliteStore` file, or PostgreSQL) on
/// 127.0.0.1:0, on a runtime of its own (as if it were another machine), with a clock
/// the test can move.
struct TestServer {
    server: ServerOnOwnRuntime,
    store: Arc<dyn ServerStore>,
    state: AppState,
    addr: SocketAddr,
    db: ServerDb,
    _dir: tempfile::TempDir,
}

impl TestServer {
    fn start() -> TestServer {
        let dir = tempfile::Builder::new()
            .prefix("jejak-sync-e2e-server-")
            .tempdir()
            .unwrap();
        let db = ServerDb::create(dir.path());
        let server = ServerOnOwnRuntime::start(|clock| db.open(clock));
        TestServer {
            store: server.store.clone(),
            state: server.state.clone(),
            addr: server.addr(),
            server,
            db,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        self.server.url()
    }

    fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.server.block_on(future)
    }

    /// Moves the server's clock (the store's and the HTTP layer's) forward.
    fn advance_clock(&self, by: chrono::Duration) {
        self.server.clock.advance(by);
    }

    fn now(&self) -> DateTime<Utc> {
        self.state.now()
    }

    /// `add-library` (once) and `add-device`; returns the device token.
    fn enroll(&self, library: &str, pc: &str) -> String {
        self.server
            .enroll(library, &format!("Perpustakaan Desa {library}"), pc)
    }

    /// The enrolled device (with an active token).
    fn device(&self, library: &str, pc: &str) -> DeviceRef {
        let (lib, pc_code) = (
            LibraryCode::parse(library).unwrap(),
            PcCode::parse(pc).unwrap(),
        );
        self.block_on(self.store.find_device(&lib, &pc_code))
            .unwrap()
            .unwrap_or_else(|| panic!("{library}/{pc} is not enrolled"))
    }

    fn held_seq(&self, device: &DeviceRef) -> u64 {
        held(&self.block_on(self.store.device_state(device)).unwrap())
    }

    fn snapshot(&self, devices: &[DeviceRef]) -> Vec<Snapshot> {
        self.block_on(async {
            let mut out = Vec::new();
            for device in devices {
                out.push(snapshot(self.store.as_ref(), device).await);
            }
            out
        })
    }

    fn proxy(&self, faults: Faults) -> FaultProxy {
        self.block_on(FaultProxy::start(self.addr, faults)).unwrap()
    }

    /// `batches_total` by result, from `/metrics` as the server counted them: the
    /// results that happened (every series exists from the start, at zero; those are
    /// left out).
    fn batch_results(&self) -> BTreeMap<String, u64> {
        let text = self
            .state
            .metrics()
            .render(jejak_server::metrics::Exposition::Classic);
        text.lines()
            .filter_map(|line| {
                let rest = line.strip_prefix("jejak_batches_total{result=\"")?;
                let (result, count) = rest.split_once("\"} ")?;
                Some((result.to_string(), count.trim().parse().ok()?))
            })
            .filter(|(_, count)| *count > 0)
            .collect()
    }

    /// `GET /healthz` answers 200 with the JSON the PCs' probe requires.
    fn assert_healthy(&self, context: &str) {
        let rt = client_runtime();
        let (status, kind, body) = rt.block_on(async {
            let response = reqwest::get(format!("{}/healthz", self.url()))
                .await
                .unwrap();
            let status = response.status().as_u16();
            let kind = header(&response, "content-type");
            (status, kind, response.text().await.unwrap())
        });
        let health: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        assert_eq!(status, 200, "{context}: /healthz answered {status}: {body}");
        assert!(kind.starts_with("application/json"), "{context}: {kind}");
        assert_eq!(health["service"], "jejak-server", "{context}: {body}");
        assert_eq!(health["status"], "ok", "{context}: {body}");
    }
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

fn held(state: &DeviceState) -> u64 {
    state.epochs.first().map(|e| e.held_seq).unwrap_or(0)
}

/// Everything the server holds for one device.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    sessions: Vec<StoredSession>,
    events: Vec<StoredEvent>,
    state: DeviceState,
}

async fn snapshot(store: &dyn ServerStore, device: &DeviceRef) -> Snapshot {
    Snapshot {
        sessions: store.sessions(device).await.unwrap(),
        events: store.events(device).await.unwrap(),
        state: store.device_state(device).await.unwrap(),
    }
}

// ---------------------------------------------------------------------------------------
// A village PC in this process: the real store with a clock the test moves
// ---------------------------------------------------------------------------------------

/// A PC's store driven through its API, with a manual clock (wall and monotonic move
/// together unless a test says otherwise).
struct SimPc {
    store: Store,
    clock: ManualClock,
    rng: StdRng,
    rx: u64,
    tx: u64,
}

fn identity(library: &str, pc: &str) -> DeviceIdentity {
    DeviceIdentity {
        library: LibraryCode::parse(library).unwrap(),
        pc: PcCode::parse(pc).unwrap(),
    }
}

/// Simulated time per session, at most (gap, use, heartbeat, internet events).
const MAX_MINUTES_PER_SESSION: u64 = 25;

impl SimPc {
    /// Opens (or creates) the store at `db`. Its clock starts far enough in the past
    /// that `sessions` sessions end before now.
    fn create(db: &Path, library: &str, pc: &str, seed: u64, sessions: usize) -> SimPc {
        let history =
            chrono::Duration::minutes((sessions as u64 * MAX_MINUTES_PER_SESSION + 60) as i64);
        let start = Utc::now() - history;
        let clock = ManualClock::new(start);
        let (mut store, _) =
            Store::open(db, identity(library, pc), Arc::new(clock.clone())).unwrap();
        // The simulated days lie before this build's date; only the clock test wants a
        // clock the store calls implausible.
        store.set_earliest_plausible_wall(start - chrono::Duration::days(30));
        SimPc {
            store,
            clock,
            rng: StdRng::seed_from_u64(seed),
            rx: 0,
            tx: 0,
        }
    }

    fn pass(&mut self, lo: u64, hi: u64) -> Duration {
        let by = minutes(self.rng.random_range(lo..=hi));
        self.clock.advance(by);
        by
    }

    fn counters(&mut self) -> NetCounters {
        self.rx += self.rng.random_range(0..4_000_000);
        self.tx += self.rng.random_range(0..400_000);
        NetCounters {
            rx: self.rx,
            tx: self.tx,
        }
    }

    /// `sessions` sessions started and ended, half of them with a heartbeat event, and
    /// the internet going down and up now and then: about 2.8 changes per session.
    fn fill(&mut self, sessions: usize) {
        for i in 0..sessions {
            self.pass(1, 4);
            if i % 7 == 3 {
                self.store.record_event(PcEventKind::InternetDown).unwrap();
                self.pass(1, 3);
                self.store.record_event(PcEventKind::InternetUp).unwrap();
            }
            let profile = random_profile(&mut self.rng);
            let net = self.counters();
            self.store.start_session(profile, Some(net)).unwrap();
            self.pass(2, 12);
            if self.rng.random_bool(0.5) {
                let net = self.counters();
                self.store.heartbeat(Some(net), Some(true), true).unwrap();
                self.pass(1, 4);
            }
            let reason = [
                EndReason::Logout,
                EndReason::Logout,
                EndReason::Idle,
                EndReason::StaffEnded,
                EndReason::Shutdown,
            ][self.rng.random_range(0..5)];
            let net = self.counters();
            self.store.end_session(reason, Some(net)).unwrap();
        }
    }

    fn last_seq(&self) -> u64 {
        self.store.sync_state().unwrap().last_seq
    }
}

fn random_profile(rng: &mut StdRng) -> PatronProfile {
    const KINDS: [UserKind; 6] = [
        UserKind::Anggota,
        UserKind::Anggota,
        UserKind::NonAnggota,
        UserKind::Rombongan,
        UserKind::Pelatihan,
        UserKind::Staf,
    ];
    const PURPOSES: [Purpose; 8] = [
        Purpose::Pendidikan,
        Purpose::Ekonomi,
        Purpose::Kesehatan,
        Purpose::Komunikasi,
        Purpose::Hobi,
        Purpose::Pemerintahan,
        Purpose::LiterasiDigital,
        Purpose::Lainnya,
    ];
    const AGES: [AgeGroup; 7] = [
        AgeGroup::Anak,
        AgeGroup::Remaja,
        AgeGroup::Pemuda,
        AgeGroup::Dewasa,
        AgeGroup::Madya,
        AgeGroup::Lansia,
        AgeGroup::Unknown,
    ];
    let user_kind = KINDS[rng.random_range(0..KINDS.len())];
    let count = rng.random_range(1..=3);
    let mut purposes = Vec::new();
    while purposes.len() < count {
        let p = PURPOSES[rng.random_range(0..PURPOSES.len())];
        if !purposes.contains(&p) {
            purposes.push(p);
        }
    }
    PatronProfile {
        user_kind,
        purposes,
        gender: [Gender::L, Gender::P, Gender::X][rng.random_range(0..3)],
        age_group: AGES[rng.random_range(0..AGES.len())],
        group_size: if user_kind == UserKind::Rombongan {
            rng.random_range(2..=8)
        } else {
            1
        },
        patron_key: (user_kind == UserKind::Anggota).then(|| {
            // Members are few: keys repeat, as the same member comes back.
            let member: u8 = rng.random_range(0..12);
            PatronKey::parse(&hex::encode([member; 32])).unwrap()
        }),
    }
}

/// What a PC holds: the newest revision of every session, every pc event, and its
/// sync state.
#[derive(Debug)]
struct PcContent {
    sessions: BTreeMap<Uuid, Session>,
    events: BTreeMap<Uuid, PcEvent>,
    epoch: Uuid,
    last_seq: u64,
    acked_seq: u64,
}

fn pc_content(store: &Store) -> PcContent {
    let sessions: BTreeMap<Uuid, Session> = store
        .recent_sessions(u32::MAX)
        .unwrap()
        .into_iter()
        .map(|s| (s.id, s))
        .collect();
    let mut events = BTreeMap::new();
    let mut newest_revision: BTreeMap<Uuid, u32> = BTreeMap::new();
    for change in store.changes_after(0, u32::MAX).unwrap() {
        match change.body {
            RecordBody::PcEvent(e) => {
                assert!(events.insert(e.id, e).is_none(), "a pc event logged twice");
            }
            RecordBody::Session(s) => {
                let rev = newest_revision.entry(s.id).or_default();
                *rev = (*rev).max(s.revision);
            }
            RecordBody::Visit(_) | RecordBody::MemberCount(_) | RecordBody::Activity(_) => {}
        }
    }
    // The store's own consistency: every session row is its newest logged revision.
    for (id, s) in &sessions {
        assert_eq!(newest_revision.get(id), Some(&s.revision), "session {id}");
    }
    assert_eq!(newest_revision.len(), sessions.len());
    let state = store.sync_state().unwrap();
    PcContent {
        sessions,
        events,
        epoch: store.epoch(),
        last_seq: state.last_seq,
        acked_seq: state.acked_seq,
    }
}

/// Opens a PC data directory's store as it is now (reading only: opening appends
/// nothing to the change log).
fn read_pc(db: &Path, library: &str, pc: &str) -> PcContent {
    let clock = ManualClock::new(Utc::now());
    let (store, _) = Store::open(db, identity(library, pc), Arc::new(clock)).unwrap();
    pc_content(&store)
}

/// The server holds exactly what the PC made: each session once with the PC's newest
/// revision and content, each pc event once, counters that agree, the held seq at the
/// PC's last seq. (Whether the PC has heard so is checked separately.)
async fn assert_holds_exactly(
    server: &dyn ServerStore,
    device: &DeviceRef,
    pc: &PcContent,
    context: &str,
) {
    let Snapshot {
        sessions,
        events,
        state,
    } = snapshot(server, device).await;
    let ids: HashSet<Uuid> = sessions.iter().map(|s| s.id).collect();
    assert_eq!(
        ids.len(),
        sessions.len(),
        "{context}: a session is stored twice"
    );
    let missing: Vec<&Uuid> = pc.sessions.keys().filter(|id| !ids.contains(id)).collect();
    let unknown: Vec<&Uuid> = ids
        .iter()
        .filter(|id| !pc.sessions.contains_key(id))
        .collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "{context}: {} sessions missing on the server {missing:?}; {} unknown to the PC {unknown:?}",
        missing.len(),
        unknown.len()
    );
    for stored in &sessions {
        let made = &pc.sessions[&stored.id];
        assert!(
            stored.matches(made),
            "{context}: session {} differs\nserver: {stored:?}\nPC: {made:?}",
            stored.id
        );
    }
    let event_ids: HashSet<Uuid> = events.iter().map(|e| e.id).collect();
    assert_eq!(
        event_ids.len(),
        events.len(),
        "{context}: a pc event is stored twice"
    );
    let missing: Vec<&Uuid> = pc
        .events
        .keys()
        .filter(|id| !event_ids.contains(id))
        .collect();
    let unknown: Vec<&Uuid> = event_ids
        .iter()
        .filter(|id| !pc.events.contains_key(id))
        .collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "{context}: pc events missing on the server {missing:?}; unknown to the PC {unknown:?}"
    );
    for stored in &events {
        let made = &pc.events[&stored.id];
        // The wire carries whole milliseconds; the PC's log keeps the clock's nanoseconds.
        let mut made = made.clone();
        made.at = DateTime::from_timestamp_millis(made.at.timestamp_millis()).unwrap();
        assert!(
            stored.matches(&made),
            "{context}: pc event {} differs\nserver: {stored:?}\nPC: {made:?}",
            stored.id
        );
    }
    assert_eq!(
        (state.sessions, state.events, state.rejected),
        (pc.sessions.len() as u64, pc.events.len() as u64, 0),
        "{context}: the server's counters (sessions, events, rejected)"
    );
    assert_eq!(state.epochs.len(), 1, "{context}: {:?}", state.epochs);
    assert_eq!(state.epochs[0].epoch, pc.epoch, "{context}: epoch");
    assert_eq!(
        state.epochs[0].held_seq, pc.last_seq,
        "{context}: the server's held seq is the PC's last seq"
    );
}

impl TestServer {
    /// [`assert_holds_exactly`] for a PC whose store the test holds, and the PC's queue
    /// has drained.
    fn assert_conserved(&self, store: &Store, context: &str) -> PcContent {
        let content = pc_content(store);
        self.assert_conserved_content(&content, store.identity(), context);
        content
    }

    fn assert_conserved_content(&self, content: &PcContent, who: &DeviceIdentity, context: &str) {
        let device = self.device(who.library.as_str(), who.pc.as_str());
        self.block_on(assert_holds_exactly(
            self.store.as_ref(),
            &device,
            content,
            context,
        ));
        assert_eq!(
            content.acked_seq, content.last_seq,
            "{context}: the PC's queue has not drained"
        );
    }
}

fn fast_options(max_attempts: Option<u32>) -> SyncOptions {
    SyncOptions {
        max_records: 40,
        backoff_base: Duration::from_millis(20),
        backoff_cap: Duration::from_millis(200),
        max_attempts,
        dry_run: false,
    }
}

/// The real sync client of one PC, with the runtime it runs on (reqwest wants its
/// connections to live on one runtime).
struct Client {
    rt: tokio::runtime::Runtime,
    sync: SyncClient,
}

impl Client {
    fn new(url: &str, token: &str, timeout: Duration) -> Client {
        let rt = client_runtime();
        let sync = {
            let _inside = rt.enter();
            SyncClient::new(url, token, timeout).unwrap()
        };
        Client { rt, sync }
    }

    /// One `sync_once`, under a deadline.
    fn try_sync(
        &self,
        store: &mut Store,
        options: &SyncOptions,
    ) -> Result<Result<SyncReport, jejak_sync::SyncError>, tokio::time::error::Elapsed> {
        self.rt.block_on(async {
            tokio::time::timeout(
                SYNC_DEADLINE,
                sync_once(store, &self.sync, options, &mut |_| {}),
            )
            .await
        })
    }

    fn sync(&self, store: &mut Store, options: &SyncOptions) -> SyncReport {
        self.try_sync(store, options)
            .expect("the sync did not finish in time")
            .unwrap_or_else(|e| panic!("sync failed: {e}"))
    }

    /// Syncs until the queue is empty (bounded), returning the reports.
    fn drain(&self, store: &mut Store) -> Vec<SyncReport> {
        let mut reports = Vec::new();
        for _ in 0..5 {
            if store.sync_state().unwrap().pending() == 0 {
                return reports;
            }
            reports.push(self.sync(store, &fast_options(Some(20))));
        }
        panic!(
            "the queue did not drain after 5 syncs: {:?}",
            store.sync_state().unwrap()
        );
    }
}

// ---------------------------------------------------------------------------------------
// The `jejak` binary: PCs and servers as processes
// ---------------------------------------------------------------------------------------

/// A PC data directory set up with `jejak init … --server URL` and `jejak enroll`.
fn binary_pc(library: &str, pc: &str, server: &str, token: &str) -> TestPc {
    let test_pc = TestPc::new();
    let run = test_pc
        .run(&[
            "--lang",
            "en",
            "init",
            "--library",
            library,
            "--pc",
            pc,
            "--server",
            server,
        ])
        .ok();
    assert!(
        run.stdout.contains(&format!("{library}/{pc}")),
        "{}",
        run.stdout
    );
    // `init --token` should do this too, but does not save the token (see
    // `init_with_a_token_enrolls_the_pc`). Enrolling registers the PC's signing key, so a
    // server that refuses the token says so at once (exit 6), keeping the token all the
    // same: the tests of a wrong token go on from there.
    let run = test_pc.run(&[
        "--lang", "en", "enroll", "--server", server, "--token", token,
    ]);
    match run.code() {
        Some(0) => {}
        Some(6) => assert!(
            run.stderr.contains("does not recognise this PC's token"),
            "{}",
            run.stderr
        ),
        other => panic!("enroll exited {other:?}: {}", run.stderr),
    }
    test_pc
}

/// `jejak --lang en --format json sync ARGS` with fast back-off.
/// `jejak sync` in English with JSON output and `-v`, so that a failure shows its
/// technical detail (attempts, the server's answer) below the plain sentence.
fn jejak_sync(pc: &TestPc, args: &[&str], batch_records: &str) -> Run {
    let mut all = vec!["-v", "--lang", "en", "--format", "json", "sync"];
    all.extend_from_slice(args);
    let mut env: Vec<(&str, &str)> = FAST_SYNC.to_vec();
    env.retain(|(k, _)| *k != "JEJAK_SYNC_BATCH_RECORDS");
    env.push(("JEJAK_SYNC_BATCH_RECORDS", batch_records));
    pc.run_env(&all, &env)
}

fn acked_seq(view: &StoreView) -> u64 {
    view.count("SELECT acked_seq FROM sync_state WHERE id = 1") as u64
}

/// `jejak --lang en --format json server --database DB ARGS`.
fn server_cmd(db: &ServerDb, args: &[&str]) -> Run {
    let mut command = bare_command();
    command
        .args(["--lang", "en", "server", "--database"])
        .arg(&db.url)
        .args(args);
    run_command(command, COMMAND_DEADLINE)
}

fn server_cmd_json(db: &ServerDb, args: &[&str]) -> Run {
    let mut command = bare_command();
    command
        .args(["--lang", "en", "--format", "json", "server", "--database"])
        .arg(&db.url)
        .args(args);
    run_command(command, COMMAND_DEADLINE)
}

/// Opens the server's database in this process (the server process is stopped) and
/// runs `f` on it.
fn with_server_db<T>(db: &ServerDb, f: impl AsyncFnOnce(&dyn ServerStore) -> T) -> T {
    let rt = client_runtime();
    rt.block_on(async {
        let store = db.open(jejak_server::system_clock()).await;
        f(store.as_ref()).await
    })
}

// ---------------------------------------------------------------------------------------
// 1. Conservation and liveness under every proxy fault
// ---------------------------------------------------------------------------------------

/// A change of faults once a condition holds, while the sync runs.
struct Step {
    when: &'static str,
    cond: fn(&TestServer, &DeviceRef, &ProxyStats) -> bool,
    then: Faults,
}

/// What a fault case did.
struct CaseOutcome {
    report: SyncReport,
    stats: ProxyStats,
    elapsed: Duration,
}

/// One PC with a few hundred changes syncs through the proxy with `initial` faults
/// (changed by `steps` as their conditions come true), then with faults off until its
/// queue is empty; the server must then hold every record exactly once.
fn conservation_case(
    name: &str,
    seed: u64,
    initial: Faults,
    steps: Vec<Step>,
    exchange_timeout: Duration,
) -> CaseOutcome {
    let server = TestServer::start();
    let token = server.enroll("rempoah", "pc-01");
    let device = server.device("rempoah", "pc-01");
    let dir = tempfile::tempdir().unwrap();
    let mut pc = SimPc::create(&dir.path().join("jejak.db"), "rempoah", "pc-01", seed, 100);
    pc.fill(100);
    let last_seq = pc.last_seq();
    assert!(last_seq >= 250, "{name}: only {last_seq} changes");

    let proxy = server.proxy(initial);
    let client = Client::new(
        &format!("http://{}", proxy.local_addr()),
        &token,
        exchange_timeout,
    );
    // Retry forever under the fault, as the agent does; the deadline bounds it.
    let options = fast_options(None);
    let started = Instant::now();
    let (outcome, failure) = std::thread::scope(|scope| {
        let (store, client, options) = (&mut pc.store, &client, &options);
        let sync = scope.spawn(move || client.try_sync(store, options));
        let mut failure = None;
        'steps: for step in &steps {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if (step.cond)(&server, &device, &proxy.stats()) {
                    proxy.set_faults(step.then.clone());
                    break;
                }
                if sync.is_finished() || Instant::now() > deadline {
                    failure = Some(format!(
                        "{name}: the sync {} before {}: {:?}",
                        if sync.is_finished() {
                            "ended"
                        } else {
                            "was still running"
                        },
                        step.when,
                        proxy.stats()
                    ));
                    proxy.set_faults(Faults::pass());
                    break 'steps;
                }
                std::thread::sleep(Duration::from_millis(3));
            }
        }
        (sync.join().unwrap(), failure)
    });
    let elapsed = started.elapsed();
    if let Some(failure) = failure {
        panic!("{failure}");
    }
    let report = outcome
        .unwrap_or_else(|_| {
            panic!(
                "{name}: no progress within {SYNC_DEADLINE:?}: {:?}",
                proxy.stats()
            )
        })
        .unwrap_or_else(|e| panic!("{name}: the sync failed: {e}"));
    let stats = proxy.stats();

    // Faults off: sync until nothing is left, then once more: nothing to send.
    proxy.set_faults(Faults::pass());
    let mut reports = vec![report];
    reports.extend(client.drain(&mut pc.store));
    let again = client.sync(&mut pc.store, &fast_options(Some(3)));
    assert!(again.nothing_to_send, "{name}: {again:?}");

    server.assert_conserved(&pc.store, name);
    assert_eq!(server.held_seq(&device), last_seq, "{name}");
    let results = server.batch_results();
    assert_eq!(
        results.get("error"),
        None,
        "{name}: 5xx answers: {results:?}"
    );
    server.assert_healthy(name);
    server.block_on(proxy.shutdown());

    let mut report = reports.remove(0);
    for r in reports {
        report.new += r.new;
        report.duplicates += r.duplicates;
        report.retries += r.retries;
        report.batches += r.batches;
    }
    CaseOutcome {
        report,
        stats,
        elapsed,
    }
}

#[test]
fn conservation_with_a_clean_link() {
    let out = conservation_case("pass", 1, Faults::pass(), vec![], Duration::from_secs(5));
    assert_eq!(out.report.retries, 0, "{:?}", out.report);
    assert_eq!(out.report.duplicates, 0, "{:?}", out.report);
    assert!(out.report.batches >= 6, "{:?}", out.report);
}

#[test]
fn conservation_with_added_latency() {
    let latency = Duration::from_millis(40);
    let out = conservation_case(
        "latency",
        2,
        Faults {
            latency,
            ..Faults::pass()
        },
        vec![],
        Duration::from_secs(5),
    );
    // Every exchange (the clock probe and each batch) waited at least one round trip.
    let exchanges = out.report.batches + 1;
    assert!(
        out.elapsed >= latency * 2 * exchanges,
        "{:?} for {exchanges} exchanges",
        out.elapsed
    );
    assert_eq!(out.report.duplicates, 0);
}

#[test]
fn conservation_over_a_64_kbit_link() {
    let rate = 8_000;
    let out = conservation_case(
        "bandwidth",
        3,
        Faults {
            bandwidth_bytes_per_s: Some(rate),
            ..Faults::pass()
        },
        vec![],
        Duration::from_secs(10),
    );
    let floor =
        Duration::from_secs_f64(out.stats.bytes_client_to_upstream as f64 / rate as f64 * 0.8);
    assert!(
        out.elapsed >= floor,
        "{} bytes went up in {:?}: the limit did not hold",
        out.stats.bytes_client_to_upstream,
        out.elapsed
    );
}

#[test]
fn conservation_when_the_link_is_down_then_back() {
    let out = conservation_case(
        "link down",
        4,
        Faults::link_down(),
        vec![Step {
            when: "three connections refused",
            cond: |_, _, s| s.refused >= 3,
            then: Faults::pass(),
        }],
        Duration::from_secs(5),
    );
    assert!(out.stats.refused >= 3);
    assert!(out.report.retries >= 3, "{:?}", out.report);
}

#[test]
fn conservation_when_the_link_stalls_and_the_client_times_out() {
    let out = conservation_case(
        "stall",
        5,
        Faults::stalled(),
        vec![Step {
            // The first exchange timed out and the client came back on a new connection.
            when: "a second connection after a timeout",
            cond: |_, _, s| s.connections_accepted >= 2,
            then: Faults::pass(),
        }],
        Duration::from_millis(700),
    );
    assert!(out.report.retries >= 1, "{:?}", out.report);
    assert!(
        out.elapsed >= Duration::from_millis(700),
        "{:?}",
        out.elapsed
    );
}

#[test]
fn conservation_when_acknowledgements_are_lost() {
    // The clock probe is answered; then the server's answers to batches are read in full
    // and withheld (the classic lost acknowledgement) until two were lost after the
    // server had committed them. A little latency keeps the switch ahead of the sync.
    let slow = Faults {
        latency: Duration::from_millis(30),
        ..Faults::pass()
    };
    let out = conservation_case(
        "lost response",
        6,
        slow.clone(),
        vec![
            Step {
                when: "the clock probe's answer",
                cond: |_, _, s| s.bytes_upstream_to_client > 0,
                then: Faults {
                    lose_response: true,
                    ..slow
                },
            },
            Step {
                when: "two answers lost after a commit",
                cond: |server, device, s| s.responses_lost >= 2 && server.held_seq(device) > 0,
                then: Faults::pass(),
            },
        ],
        Duration::from_secs(5),
    );
    assert!(out.stats.responses_lost >= 2);
    // The same batch was sent again and the server said it had it already. One of the
    // lost answers may be that of the question which kinds the server takes, which is
    // not retried (the PC uses what it last heard), so one retry at least.
    assert!(out.report.duplicates > 0, "{:?}", out.report);
    assert!(out.report.retries >= 1, "{:?}", out.report);
}

/// The time probe's answer on the wire (status line, headers, body), measured.
fn time_answer_bytes(server: &TestServer) -> u64 {
    let proxy = server.proxy(Faults::pass());
    let client = Client::new(
        &format!("http://{}", proxy.local_addr()),
        "unused",
        Duration::from_secs(5),
    );
    client.rt.block_on(client.sync.server_time()).unwrap();
    let bytes = proxy.stats().bytes_upstream_to_client;
    server.block_on(proxy.shutdown());
    bytes
}

/// The binary part of the fault matrix: a `jejak sync` process through the proxy.
struct BinaryCase {
    server: TestServer,
    token: String,
    pc: TestPc,
    device: DeviceRef,
    last_seq: u64,
}

fn binary_case(seed: u64) -> BinaryCase {
    let server = TestServer::start();
    let token = server.enroll("dermaji", "pc-01");
    let device = server.device("dermaji", "pc-01");
    // The URL is set per run with `jejak enroll`, to the proxy.
    let pc = binary_pc("dermaji", "pc-01", &server.url(), &token);
    let mut sim = SimPc::create(&pc.db_path(), "dermaji", "pc-01", seed, 100);
    sim.fill(100);
    let last_seq = sim.last_seq();
    drop(sim);
    BinaryCase {
        server,
        token,
        pc,
        device,
        last_seq,
    }
}

impl BinaryCase {
    fn point_at(&self, proxy: &FaultProxy) {
        let url = format!("http://{}", proxy.local_addr());
        self.pc
            .run(&["enroll", "--server", &url, "--token", &self.token])
            .ok();
    }

    fn finish(&self, context: &str) -> PcContent {
        let content = read_pc(&self.pc.db_path(), "dermaji", "pc-01");
        self.server
            .assert_conserved_content(&content, &identity("dermaji", "pc-01"), context);
        assert_eq!(
            self.server.held_seq(&self.device),
            self.last_seq.max(content.last_seq)
        );
        let results = self.server.batch_results();
        assert_eq!(
            results.get("error"),
            None,
            "{context}: 5xx answers: {results:?}"
        );
        self.server.assert_healthy(context);
        content
    }
}

#[test]
fn conservation_with_random_drops_through_the_binary() {
    let case = binary_case(7);
    // Half the connections are cut at a random point of their first 4 KiB (the clock
    // probe or the first batches on a kept-alive connection); the seed makes it
    // repeatable. The sync must get through while the fault is on.
    let proxy = case.server.proxy(Faults {
        drop_connection_chance: 0.5,
        drop_within_bytes: 4 << 10,
        // With this seed six of the first connections are cut mid-exchange.
        seed: 12,
        ..Faults::pass()
    });
    case.point_at(&proxy);
    let run = jejak_sync(&case.pc, &["--attempts", "60"], "40").expect_code(0);
    let report = run.json();
    let stats = proxy.stats();
    assert!(stats.drops >= 3, "the fault hardly struck: {stats:?}");
    assert!(report["retries"].as_u64().unwrap() >= 3, "{report}");
    assert_eq!(report["pending_after"], 0, "{report}");
    case.finish("random drops");
    case.server.block_on(proxy.shutdown());
}

#[test]
fn conservation_when_requests_are_cut_through_the_binary() {
    let case = binary_case(8);
    // Each connection is reset after 400 bytes from the PC: the clock probe gets through,
    // every batch upload is cut short, so the server can commit nothing.
    let proxy = case
        .server
        .proxy(Faults::reset_after(ResetAfter::ClientToUpstream(400)));
    case.point_at(&proxy);
    let run = jejak_sync(&case.pc, &["--attempts", "3"], "40").expect_code(EXIT_NO_LINK);
    assert!(run.stderr.contains("no link"), "{}", run.stderr);
    assert!(proxy.stats().resets >= 3, "{:?}", proxy.stats());
    assert_eq!(acked_seq(&case.pc.store()), 0, "nothing is marked synced");
    assert_eq!(
        case.server.held_seq(&case.device),
        0,
        "a cut request commits nothing"
    );
    let empty = case.server.snapshot(std::slice::from_ref(&case.device));
    assert!(empty[0].sessions.is_empty() && empty[0].events.is_empty());

    proxy.set_faults(Faults::pass());
    let report = jejak_sync(&case.pc, &[], "40").ok().json();
    assert_eq!(report["duplicates"], 0, "{report}");
    assert_eq!(report["pending_after"], 0, "{report}");
    case.finish("requests cut");
    jejak_sync(&case.pc, &[], "40").expect_code(EXIT_NOTHING_TO_SEND);
    case.server.block_on(proxy.shutdown());
}

#[test]
fn conservation_when_answers_are_cut_through_the_binary() {
    let case = binary_case(9);
    // Reset after the clock probe's answer and 60 bytes more: every batch is committed
    // by the server and its answer cut short (a lost acknowledgement, byte-exact).
    let probe = time_answer_bytes(&case.server);
    let proxy = case
        .server
        .proxy(Faults::reset_after(ResetAfter::UpstreamToClient(
            probe + 60,
        )));
    case.point_at(&proxy);
    let run = jejak_sync(&case.pc, &["--attempts", "3"], "40").expect_code(EXIT_NO_LINK);
    assert!(run.stderr.contains("no link"), "{}", run.stderr);
    let held = case.server.held_seq(&case.device);
    assert!(
        held > 0,
        "the first batch was committed: {:?}",
        proxy.stats()
    );
    assert_eq!(
        acked_seq(&case.pc.store()),
        0,
        "a cut answer is no answer: nothing is marked synced"
    );

    proxy.set_faults(Faults::pass());
    let report = jejak_sync(&case.pc, &[], "40").ok().json();
    // The committed batch came again: reported as duplicates, stored once.
    assert!(report["duplicates"].as_u64().unwrap() >= 1, "{report}");
    case.finish("answers cut");
    case.server.block_on(proxy.shutdown());
}

// ---------------------------------------------------------------------------------------
// 2. A server killed with -9 mid-ingest
// ---------------------------------------------------------------------------------------

#[test]
fn a_server_killed_mid_ingest_loses_nothing_acknowledged_and_stores_the_retry_once() {
    let work = tempfile::tempdir().unwrap();
    let db = ServerDb::create(work.path());
    server_cmd(&db, &["init"]).ok();
    server_cmd(
        &db,
        &[
            "add-library",
            "dermaji",
            "--name",
            "Perpustakaan Desa Dermaji",
        ],
    )
    .ok();
    let token = server_cmd(
        &db,
        &["add-device", "--library", "dermaji", "--pc", "pc-01"],
    )
    .ok()
    .stdout
    .trim()
    .to_string();
    assert!(token.starts_with("jejak_dev_"), "{token}");

    let pc = binary_pc("dermaji", "pc-01", "http://127.0.0.1:9", &token);
    let mut sim = SimPc::create(&pc.db_path(), "dermaji", "pc-01", 21, 420);
    sim.fill(420);
    let last_seq = sim.last_seq();
    drop(sim);
    assert!(last_seq > 1_000, "{last_seq}");

    let seed = Utc::now().timestamp_subsec_nanos() as u64;
    eprintln!("kill -9 moments seeded with {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let view = pc.store();
    let mut acked_before = 0;
    let mut committed_unacked = false;
    let mut finished_early = false;
    for round in 0..5 {
        let mut server = support::spawn_district(&db.url, &[], &[]);
        pc.run(&["enroll", "--server", &server.url, "--token", &token])
            .ok();
        let out = std::fs::File::create(work.path().join(format!("sync-{round}.out"))).unwrap();
        let err = std::fs::File::create(work.path().join(format!("sync-{round}.err"))).unwrap();
        let mut command = pc.command();
        command
            .args(["--lang", "en", "sync", "--attempts", "3"])
            .envs(
                FAST_SYNC
                    .iter()
                    .filter(|(k, _)| *k != "JEJAK_SYNC_BATCH_RECORDS")
                    .copied(),
            )
            .env("JEJAK_SYNC_BATCH_RECORDS", "10")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let mut sync = ChildGuard::spawn(&mut command);
        // Kill once this round has made progress, at a random moment after.
        support::poll_until("the sync to make progress", Duration::from_secs(30), || {
            let moved = acked_seq(&view) > acked_before;
            let exited = sync.child_mut().try_wait().unwrap().is_some();
            (moved || exited).then_some(())
        });
        std::thread::sleep(Duration::from_millis(rng.random_range(0..60)));
        server.child.kill9();
        let status = sync
            .wait_deadline(Duration::from_secs(30))
            .expect("jejak sync did not give up after the server died");
        let acked = acked_seq(&view);
        let held = with_server_db(&db, async |store| {
            let device = store
                .find_device(
                    &LibraryCode::parse("dermaji").unwrap(),
                    &PcCode::parse("pc-01").unwrap(),
                )
                .await
                .unwrap()
                .unwrap();
            held(&store.device_state(&device).await.unwrap())
        });
        eprintln!("round {round}: PC acknowledged {acked}, server holds {held}, sync {status:?}");
        assert!(
            held >= acked,
            "round {round}: the PC counts seq {acked} as acknowledged but the server holds only {held}"
        );
        assert!(
            acked >= acked_before,
            "round {round}: the acknowledged seq went back"
        );
        committed_unacked = held > acked;
        acked_before = acked;
        if status.success() {
            finished_early = true;
            break;
        }
        assert_eq!(
            status.code(),
            Some(EXIT_NO_LINK),
            "round {round}: {}",
            std::fs::read_to_string(work.path().join(format!("sync-{round}.err"))).unwrap()
        );
    }

    // The sync finishes against a restarted server on the same database.
    let mut server = support::spawn_district(&db.url, &[], &[]);
    pc.run(&["enroll", "--server", &server.url, "--token", &token])
        .ok();
    let mut duplicates = 0;
    for _ in 0..5 {
        let run = jejak_sync(&pc, &["--attempts", "20"], "10");
        if run.code() == Some(EXIT_NOTHING_TO_SEND) {
            break;
        }
        let report = run.ok().json();
        duplicates += report["duplicates"].as_u64().unwrap();
        if report["pending_after"] == 0 {
            break;
        }
    }
    server.stop(COMMAND_DEADLINE);
    if committed_unacked && !finished_early {
        // The batch in flight at the last kill was committed but never acknowledged: it
        // came again, and the server said so.
        assert!(
            duplicates > 0,
            "the retried batch was not reported as a duplicate"
        );
    }
    let content = read_pc(&pc.db_path(), "dermaji", "pc-01");
    assert_eq!(content.acked_seq, content.last_seq, "the queue drained");
    with_server_db(&db, async |store| {
        let device = store
            .find_device(
                &LibraryCode::parse("dermaji").unwrap(),
                &PcCode::parse("pc-01").unwrap(),
            )
            .await
            .unwrap()
            .unwrap();
        assert_holds_exactly(store, &device, &content, "after kill -9 rounds").await;
    });
}

// ---------------------------------------------------------------------------------------
// 3. The same batch twice at once, and 30 days later
// ---------------------------------------------------------------------------------------

/// The clock probe exactly as `sync_once` makes it, so that a hand-built batch carries
/// the anchor the real client's would.
fn measure_clock_like_the_client(store: &mut Store, client: &Client) {
    let instant = store.client_instant().unwrap();
    let t1 = store.mono_now();
    let time = client.rt.block_on(client.sync.server_time()).unwrap();
    let t4 = store.mono_now();
    store
        .save_anchor(ClockAnchor::measure(
            instant.run,
            t1,
            time.received_at_ms,
            time.sent_at_ms,
            t4,
        ))
        .unwrap();
}

/// The real client reads, from the real server, the record kinds it stores: every kind
/// this build knows.
#[test]
fn the_client_reads_the_record_kinds_the_server_stores() {
    let server = TestServer::start();
    let token = server.enroll("pesawahan", "pc-03");
    let client = Client::new(&server.url(), &token, Duration::from_secs(10));
    let held = client.rt.block_on(client.sync.held_state()).unwrap();
    assert_eq!(
        held.accepted_kinds(),
        jejak_domain::RecordKind::ALL.to_vec()
    );
}

#[test]
fn the_same_batch_twice_at_once_and_30_days_later_is_stored_once() {
    let server = TestServer::start();
    let token = server.enroll("pesawahan", "pc-02");
    let device = server.device("pesawahan", "pc-02");
    let dir = tempfile::tempdir().unwrap();
    let mut pc = SimPc::create(&dir.path().join("jejak.db"), "pesawahan", "pc-02", 31, 60);
    pc.fill(60);
    let last_seq = pc.last_seq();
    let client = Client::new(&server.url(), &token, Duration::from_secs(10));
    let rt = &client.rt;
    measure_clock_like_the_client(&mut pc.store, &client);
    let sent = pc.store.client_instant().unwrap();
    let batch = batching::prepare(&pc.store, 0, 5_000, sent, &jejak_domain::RecordKind::ALL)
        .unwrap()
        .unwrap();
    let records = batch.records() as u32;
    assert_eq!(batch.wire.last_seq, pc.last_seq());

    // Two POSTs of identical bytes at the same moment, on two connections.
    let (a, b) =
        rt.block_on(async { tokio::join!(client.sync.push(&batch), client.sync.push(&batch)) });
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        (a.batch_id, b.batch_id),
        (batch.wire.batch_id, batch.wire.batch_id)
    );
    assert_eq!(
        (a.new + b.new, a.duplicates + b.duplicates),
        (records, records),
        "{a:?} {b:?}"
    );
    assert!(
        a.new == 0 || b.new == 0,
        "one of them stored everything: {a:?} {b:?}"
    );
    assert_eq!((a.held_seq, b.held_seq), (pc.last_seq(), pc.last_seq()));
    let once = server.snapshot(std::slice::from_ref(&device)).remove(0);
    assert_eq!(
        (once.state.sessions, once.sessions.len()),
        (60, 60),
        "one copy of each session"
    );

    // 30 days later (the server's injected clock), the same bytes again, and the same
    // records in a new batch from the real client.
    let before = server.now();
    server.advance_clock(chrono::Duration::days(30));
    let c = rt.block_on(client.sync.push(&batch)).unwrap();
    assert_eq!(
        (c.new, c.duplicates, c.held_seq),
        (0, records, last_seq),
        "{c:?}"
    );
    let arrival = DateTime::from_timestamp_millis(c.received_at_ms).unwrap();
    assert!(
        arrival - before >= chrono::Duration::days(30) - chrono::Duration::seconds(1),
        "the server's clock did not move: {arrival}"
    );
    let again = client.sync(&mut pc.store, &fast_options(Some(3)));
    // Its first batch is all duplicates, and the answer (the held seq) ends the sync.
    assert_eq!(again.new, 0, "{again:?}");
    assert_eq!(again.duplicates, again.records_sent, "{again:?}");
    assert_eq!(again.held_seq, last_seq, "{again:?}");

    let later = server.snapshot(std::slice::from_ref(&device)).remove(0);
    assert_eq!(later.sessions, once.sessions, "the sessions did not change");
    assert_eq!(later.events, once.events, "the pc events did not change");
    assert_eq!(
        (
            later.state.sessions,
            later.state.events,
            later.state.rejected,
            held(&later.state)
        ),
        (once.state.sessions, once.state.events, 0, last_seq)
    );
    server.assert_conserved(&pc.store, "30 days later");
    let results = server.batch_results();
    assert_eq!(results.get("error"), None, "{results:?}");
}

/// A PC recorded sessions in an earlier boot (run) with a correct clock; it syncs in a
/// new boot. The link drops after the clock probe and comes back three days later; the
/// client retries the same bytes, as it must. The records were made by a correct clock
/// and must keep their times, and the server must not take the three days for a clock
/// error. (Before the batch carried the anchor of its send run, the server took
/// "arrival minus send time" for the PC clock's offset and moved these sessions three
/// days late.)
#[test]
fn a_batch_retried_days_later_keeps_its_records_on_the_right_day() {
    let server = TestServer::start();
    let token = server.enroll("karanganyar", "pc-01");
    let device = server.device("karanganyar", "pc-01");
    let dir = tempfile::tempdir().unwrap();
    let mut pc = SimPc::create(&dir.path().join("jejak.db"), "karanganyar", "pc-01", 41, 20);
    pc.fill(20);
    // The next morning: a new boot with a correct clock, and the sync starts.
    pc.clock.reboot(Utc::now());
    let client = Client::new(&server.url(), &token, Duration::from_secs(10));
    measure_clock_like_the_client(&mut pc.store, &client);
    let sent = pc.store.client_instant().unwrap();
    let batch = batching::prepare(&pc.store, 0, 40, sent, &jejak_domain::RecordKind::ALL)
        .unwrap()
        .unwrap();
    // Three days without a link; both clocks move on.
    let delay = chrono::Duration::days(3);
    server.advance_clock(delay);
    pc.clock.advance(delay.to_std().unwrap());
    client.rt.block_on(client.sync.push(&batch)).unwrap();

    let stored = server.block_on(server.store.sessions(&device)).unwrap();
    let made = pc_content(&pc.store).sessions;
    assert!(!stored.is_empty());
    for s in &stored {
        // The PC's clock was right, so the truth is the raw start.
        let error = (s.corrected_start - made[&s.id].started_at)
            .num_seconds()
            .abs();
        assert!(
            error <= 5,
            "session {} dated {} s away from when it happened (raw {}, corrected {})",
            s.id,
            error,
            s.raw_start,
            s.corrected_start
        );
    }
    let state = server.block_on(server.store.device_state(&device)).unwrap();
    assert!(
        state.clock_offset_ms.unwrap_or(0).abs() < 60_000,
        "the server now believes the PC's clock is {:?} ms off",
        state.clock_offset_ms
    );
}

// ---------------------------------------------------------------------------------------
// 4. Forged, unauthorised and malformed batches
// ---------------------------------------------------------------------------------------

fn zstd_bomb(bytes: usize, declare_size: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = zstd::stream::write::Encoder::new(&mut out, 1).unwrap();
    encoder.include_contentsize(declare_size).unwrap();
    if declare_size {
        encoder.set_pledged_src_size(Some(bytes as u64)).unwrap();
    }
    let chunk = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len());
        encoder.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    encoder.finish().unwrap();
    out
}

fn gzip_bomb(bytes: usize) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..bytes.div_ceil(chunk.len()) {
        encoder.write_all(&chunk).unwrap();
    }
    encoder.finish().unwrap()
}

/// Sends `head` (a request without its body) over a new connection and reads the whole
/// answer: status, content type, body.
fn raw_request(addr: SocketAddr, head: &str) -> (u16, String, String) {
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    conn.write_all(head.as_bytes()).unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let kind = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_default();
    (status, kind, body.to_string())
}

struct BadRequest {
    what: &'static str,
    token: Option<String>,
    content_type: &'static str,
    encoding: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    kind: &'static str,
}

#[test]
fn forged_unauthorised_malformed_and_oversized_batches_get_the_right_4xx_and_change_nothing() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    // A (adisara/pc-01) and C (dermaji/pc-02) have synced, so there is data to protect;
    // C's token is then revoked. B (dermaji/pc-01) has a batch ready.
    let token_a = server.enroll("adisara", "pc-01");
    let token_b = server.enroll("dermaji", "pc-01");
    let token_c = server.enroll("dermaji", "pc-02");
    let devices = [
        server.device("adisara", "pc-01"),
        server.device("dermaji", "pc-01"),
        server.device("dermaji", "pc-02"),
    ];
    for (token, pc, seed) in [(&token_a, "a", 51), (&token_c, "c", 52)] {
        let (library, code) = if pc == "a" {
            ("adisara", "pc-01")
        } else {
            ("dermaji", "pc-02")
        };
        let mut sim = SimPc::create(
            &dir.path().join(format!("{pc}.db")),
            library,
            code,
            seed,
            15,
        );
        sim.fill(15);
        let client = Client::new(&server.url(), token, Duration::from_secs(5));
        client.drain(&mut sim.store);
        server.assert_conserved(&sim.store, pc);
    }
    server
        .block_on(server.store.revoke_device(
            &LibraryCode::parse("dermaji").unwrap(),
            &PcCode::parse("pc-02").unwrap(),
        ))
        .unwrap();
    let staff = server
        .block_on(server.store.add_staff("Ibu Sari"))
        .unwrap()
        .expose()
        .to_string();
    let mut b = SimPc::create(&dir.path().join("b.db"), "dermaji", "pc-01", 53, 15);
    b.fill(15);
    let sent = b.store.client_instant().unwrap();
    let batch_b = batching::prepare(&b.store, 0, 500, sent, &jejak_domain::RecordKind::ALL)
        .unwrap()
        .unwrap();
    let json_b = serde_json::to_vec(&batch_b.wire).unwrap();
    let value_b: Value = serde_json::from_slice(&json_b).unwrap();
    let edited = |edit: &dyn Fn(&mut Value)| -> Vec<u8> {
        let mut v = value_b.clone();
        edit(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    let zstd_of = |json: &[u8]| zstd::bulk::compress(json, 3).unwrap();

    let some = |t: &str| Some(t.to_string());
    let batch_type = BATCH_MEDIA_TYPE;
    let cases = vec![
        BadRequest {
            what: "library A's token with a batch naming library B",
            token: some(&token_a),
            content_type: batch_type,
            encoding: Some("zstd"),
            body: batch_b.body.clone(),
            status: 403,
            kind: "forbidden",
        },
        BadRequest {
            what: "A's token with A's library but another PC",
            token: some(&token_a),
            content_type: batch_type,
            encoding: Some("zstd"),
            body: zstd_of(&edited(&|v| {
                v["library"] = json!("adisara");
                v["pc"] = json!("pc-02");
            })),
            status: 403,
            kind: "forbidden",
        },
        BadRequest {
            what: "no token",
            token: None,
            content_type: batch_type,
            encoding: Some("zstd"),
            body: batch_b.body.clone(),
            status: 401,
            kind: "unauthorized",
        },
        BadRequest {
            what: "an unknown device token",
            token: some(&format!("jejak_dev_{}", "0".repeat(64))),
            content_type: batch_type,
            encoding: Some("zstd"),
            body: batch_b.body.clone(),
            status: 401,
            kind: "unauthorized",
        },
        BadRequest {
            what: "a wrong token (not a token at all)",
            token: some("hunter2"),
            content_type: batch_type,
            encoding: Some("zstd"),
            body: batch_b.body.clone(),
            status: 401,
            kind: "unauthorized",
        },
        BadRequest {
            what: "a staff token",
            token: some(&staff),
            content_type: batch_type,
            encoding: Some("zstd"),
            body: batch_b.body.clone(),
            status: 403,
            kind: "forbidden",
        },
        BadRequest {
            what: "a revoked token with its own PC's batch",
            token: some(&token_c),
            content_type: batch_type,
            encoding: Some("zstd"),
            body: zstd_of(&edited(&|v| v["pc"] = json!("pc-02"))),
            status: 401,
            kind: "token-revoked",
        },
        BadRequest {
            what: "malformed JSON (cut short)",
            token: some(&token_b),
            content_type: "application/json",
            encoding: None,
            body: json_b[..json_b.len() / 2].to_vec(),
            status: 400,
            kind: "malformed-json",
        },
        BadRequest {
            what: "not JSON at all",
            token: some(&token_b),
            content_type: "application/json",
            encoding: None,
            body: b"<html>hello</html>".to_vec(),
            status: 400,
            kind: "malformed-json",
        },
        BadRequest {
            what: "garbage that claims to be zstd",
            token: some(&token_b),
            content_type: batch_type,
            encoding: Some("zstd"),
            body: b"this is not a zstd frame".to_vec(),
            status: 400,
            kind: "malformed-body",
        },
        BadRequest {
            what: "wrong type: first_seq as text",
            token: some(&token_b),
            content_type: batch_type,
            encoding: None,
            body: edited(&|v| v["first_seq"] = json!("1")),
            status: 422,
            kind: "invalid-batch",
        },
        BadRequest {
            what: "wrong type: a gender as a number",
            token: some(&token_b),
            content_type: batch_type,
            encoding: None,
            body: edited(&|v| v["sessions"]["gender"][0] = json!(7)),
            status: 422,
            kind: "invalid-batch",
        },
        BadRequest {
            what: "wrong type: a negative duration",
            token: some(&token_b),
            content_type: batch_type,
            encoding: Some("zstd"),
            body: zstd_of(&edited(&|v| v["sessions"]["duration_s"][0] = json!(-5))),
            status: 422,
            kind: "invalid-batch",
        },
        BadRequest {
            what: "unknown enum value: gender Q",
            token: some(&token_b),
            content_type: batch_type,
            encoding: None,
            body: edited(&|v| v["sessions"]["gender"][0] = json!("Q")),
            status: 422,
            kind: "invalid-batch",
        },
        BadRequest {
            what: "unknown enum value: purpose",
            token: some(&token_b),
            content_type: batch_type,
            encoding: None,
            body: edited(&|v| v["sessions"]["purposes"][0] = json!(["olahraga"])),
            status: 422,
            kind: "invalid-batch",
        },
        BadRequest {
            what: "unknown enum value: pc event kind",
            token: some(&token_b),
            content_type: batch_type,
            encoding: None,
            body: edited(&|v| v["events"]["kind"][0] = json!("alien_landing")),
            status: 422,
            kind: "invalid-batch",
        },
        BadRequest {
            what: "an unknown field",
            token: some(&token_b),
            content_type: batch_type,
            encoding: None,
            body: edited(&|v| v["name"] = json!("Budi")),
            status: 422,
            kind: "invalid-batch",
        },
        BadRequest {
            what: "a zstd bomb that declares its size (64 MiB of zeros)",
            token: some(&token_b),
            content_type: batch_type,
            encoding: Some("zstd"),
            body: zstd_bomb(64 << 20, true),
            status: 413,
            kind: "payload-too-large",
        },
        BadRequest {
            what: "a zstd bomb that hides its size (64 MiB of zeros)",
            token: some(&token_b),
            content_type: batch_type,
            encoding: Some("zstd"),
            body: zstd_bomb(64 << 20, false),
            status: 413,
            kind: "payload-too-large",
        },
        BadRequest {
            what: "a gzip bomb (24 MiB of zeros)",
            token: some(&token_b),
            content_type: batch_type,
            encoding: Some("gzip"),
            body: gzip_bomb(24 << 20),
            status: 413,
            kind: "payload-too-large",
        },
        BadRequest {
            what: "an HTML body",
            token: some(&token_b),
            content_type: "text/html",
            encoding: None,
            body: json_b.clone(),
            status: 415,
            kind: "unsupported-media-type",
        },
        BadRequest {
            what: "an unknown content encoding",
            token: some(&token_b),
            content_type: batch_type,
            encoding: Some("br"),
            body: batch_b.body.clone(),
            status: 415,
            kind: "unsupported-media-type",
        },
    ];
    for case in &cases {
        if case.kind == "payload-too-large" && case.encoding.is_some() {
            assert!(
                case.body.len() < 1 << 20,
                "{}: the bomb itself is small",
                case.what
            );
        }
    }

    let before = server.snapshot(&devices);
    let accepted_before = server.batch_results().get("accepted").copied();
    let rt = client_runtime();
    // A fresh connection for each request: a refused body may leave its connection closed.
    let http = {
        let _inside = rt.enter();
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
    };
    for case in cases {
        let (status, kind, body) = rt.block_on(async {
            let mut request = http
                .post(format!("{}/api/v1/batches", server.url()))
                .header("Content-Type", case.content_type)
                .body(case.body);
            if let Some(token) = &case.token {
                request = request.bearer_auth(token);
            }
            if let Some(encoding) = case.encoding {
                request = request.header("Content-Encoding", encoding);
            }
            let response = request
                .send()
                .await
                .unwrap_or_else(|e| panic!("{}: no answer: {e}", case.what));
            let status = response.status().as_u16();
            let kind = header(&response, "content-type");
            (status, kind, response.text().await.unwrap())
        });
        let problem: Value = serde_json::from_str(&body)
            .unwrap_or_else(|_| panic!("{}: {status} without a JSON problem: {body}", case.what));
        assert_eq!(
            (status, problem["type"].as_str()),
            (case.status, Some(case.kind)),
            "{}: {body}",
            case.what
        );
        assert!(
            kind.starts_with("application/problem+json"),
            "{}: content type {kind}",
            case.what
        );
        assert_eq!(problem["status"], case.status, "{}: {body}", case.what);
        assert!(
            !problem["detail"].as_str().unwrap_or("").is_empty(),
            "{}: {body}",
            case.what
        );
    }
    // A body declared larger than the limit is refused from its Content-Length, before
    // a byte of it is read (sent over a raw connection, so that the unread body cannot
    // turn the answer into a reset).
    let (status, kind, body) = raw_request(
        server.addr,
        &format!(
            "POST /api/v1/batches HTTP/1.1\r\nHost: jejak\r\nAuthorization: Bearer {token_b}\r\n\
             Content-Type: {BATCH_MEDIA_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            3 << 20
        ),
    );
    let problem: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    assert_eq!(
        (status, problem["type"].as_str()),
        (413, Some("payload-too-large")),
        "{body}"
    );
    assert!(kind.starts_with("application/problem+json"), "{kind}");

    // Nothing was written, for anyone.
    assert_eq!(
        server.snapshot(&devices),
        before,
        "a refused request changed the store"
    );
    let results = server.batch_results();
    assert_eq!(
        results.get("accepted").copied(),
        accepted_before,
        "{results:?}"
    );
    assert_eq!(results.get("error"), None, "{results:?}");
    server.assert_healthy("after the bad requests");

    // And the server still takes B's real sync.
    let client = Client::new(&server.url(), &token_b, Duration::from_secs(5));
    client.drain(&mut b.store);
    server.assert_conserved(&b.store, "B after the bad requests");
}

// ---------------------------------------------------------------------------------------
// 4b. Revoked and wrong tokens with the binary
// ---------------------------------------------------------------------------------------

#[test]
fn a_wrong_forged_or_revoked_token_exits_6_and_the_pc_keeps_everything() {
    let server = TestServer::start();
    let db = server.db.clone();
    server_cmd(
        &db,
        &[
            "add-library",
            "dermaji",
            "--name",
            "Perpustakaan Desa Dermaji",
        ],
    )
    .ok();
    let token = server_cmd(
        &db,
        &["add-device", "--library", "dermaji", "--pc", "pc-01"],
    )
    .ok()
    .stdout
    .trim()
    .to_string();
    let device = server.device("dermaji", "pc-01");
    // Enrolled with a token the server never issued.
    let wrong = format!("jejak_dev_{}", "ab".repeat(32));
    let pc = binary_pc("dermaji", "pc-01", &server.url(), &wrong);
    for purpose in ["pendidikan", "ekonomi", "kesehatan"] {
        pc.start_session(&["--purpose", purpose, "--gender", "P", "--age", "pemuda"]);
        pc.run(&["session", "end"]).ok();
    }
    let (count, last) = pc.store().count_and_max();
    let run = jejak_sync(&pc, &[], "40").expect_code(EXIT_REFUSED);
    assert!(
        run.stderr.contains("does not recognise this PC's token"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("The data is safe on this PC"),
        "{}",
        run.stderr
    );
    assert_eq!(acked_seq(&pc.store()), 0);

    // Another library's valid token: the batch names dermaji/pc-01, the token says
    // adisara/pc-01. Refused (403), nothing written for either.
    let other_token = server.enroll("adisara", "pc-01");
    let other = server.device("adisara", "pc-01");
    let both = [device.clone(), other];
    let empty = server.snapshot(&both);
    pc.run(&["enroll", "--server", &server.url(), "--token", &other_token])
        .ok();
    let run = jejak_sync(&pc, &[], "40").expect_code(EXIT_REFUSED);
    assert!(run.stderr.contains("(403)"), "{}", run.stderr);
    assert!(
        run.stderr.contains("The data is safe on this PC"),
        "{}",
        run.stderr
    );
    assert_eq!(
        server.snapshot(&both),
        empty,
        "a forged batch wrote something"
    );
    assert_eq!(acked_seq(&pc.store()), 0);

    // A dry run says what would go and sends nothing.
    pc.run(&["enroll", "--server", &server.url(), "--token", &token])
        .ok();
    let dry = jejak_sync(&pc, &["--dry-run"], "40").ok().json();
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert!(dry["records_sent"].as_u64().unwrap() >= 4, "{dry}");
    assert_eq!(server.held_seq(&device), 0, "a dry run sends nothing");

    let report = jejak_sync(&pc, &[], "40").ok().json();
    assert_eq!(report["pending_after"], 0, "{report}");
    let content = read_pc(&pc.db_path(), "dermaji", "pc-01");
    server.assert_conserved_content(&content, &identity("dermaji", "pc-01"), "first sync");

    // More sessions, then the district revokes the token.
    for _ in 0..2 {
        pc.start_session(&["--purpose", "hobi", "--kind", "non_anggota"]);
        pc.run(&["session", "end", "--reason", "idle"]).ok();
    }
    server_cmd(
        &db,
        &["revoke-device", "--library", "dermaji", "--pc", "pc-01"],
    )
    .ok();
    let on_server = server.snapshot(std::slice::from_ref(&device));
    let (count_before, last_before) = pc.store().count_and_max();
    assert!(last_before > last && count_before > count);
    let acked = acked_seq(&pc.store());
    let run = jejak_sync(&pc, &[], "40").expect_code(EXIT_REFUSED);
    assert!(run.stderr.contains("revoked"), "{}", run.stderr);
    assert!(
        run.stderr.contains("The data is safe on this PC"),
        "{}",
        run.stderr
    );
    // The PC keeps every change and its queue; the server has nothing new.
    let view = pc.store();
    view.assert_sound("after the refusal");
    assert_eq!(view.count_and_max(), (count_before, last_before));
    assert_eq!(acked_seq(&view), acked);
    assert_eq!(server.snapshot(std::slice::from_ref(&device)), on_server);
    let status = pc.status_json();
    assert_eq!(
        status["store"]["pending_changes"].as_i64(),
        Some(last_before - acked as i64),
        "{status}"
    );
    assert!(
        status["sync"]["last_result"]
            .as_str()
            .unwrap_or("")
            .contains("revoked"),
        "jejak status does not show the refusal: {status}"
    );
    let text = pc.run(&["--lang", "en", "status"]).ok().stdout;
    assert!(text.contains("revoked"), "{text}");

    // Enrolled again with a new token: the held history continues.
    let token = server_cmd(
        &db,
        &["add-device", "--library", "dermaji", "--pc", "pc-01"],
    )
    .ok()
    .stdout
    .trim()
    .to_string();
    pc.run(&["enroll", "--server", &server.url(), "--token", &token])
        .ok();
    let report = jejak_sync(&pc, &[], "40").ok().json();
    assert_eq!(report["duplicates"], 0, "{report}");
    let content = read_pc(&pc.db_path(), "dermaji", "pc-01");
    server.assert_conserved_content(
        &content,
        &identity("dermaji", "pc-01"),
        "after re-enrolling",
    );
}

/// The issue: "A PC is enrolled with `jejak init --library LIB --pc PC --server URL
/// --token TOKEN` (or a later `jejak enroll …`)".
#[test]

fn init_with_a_token_enrolls_the_pc() {
    let server = TestServer::start();
    let token = server.enroll("dermaji", "pc-01");
    let pc = TestPc::new();
    pc.run(&[
        "init",
        "--library",
        "dermaji",
        "--pc",
        "pc-01",
        "--server",
        &server.url(),
        "--token",
        &token,
    ])
    .ok();
    pc.start_session(&["--purpose", "pendidikan"]);
    let run = jejak_sync(&pc, &[], "40");
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    let content = read_pc(&pc.db_path(), "dermaji", "pc-01");
    server.assert_conserved_content(&content, &identity("dermaji", "pc-01"), "init --token");
}

// ---------------------------------------------------------------------------------------
// 5. A PC clock three years behind
// ---------------------------------------------------------------------------------------

struct SkewedPc {
    server: TestServer,
    pc: SimPc,
    device: DeviceRef,
    /// (session id, true start, true end) by the real clock.
    truth: Vec<(Uuid, DateTime<Utc>, DateTime<Utc>)>,
    three_years: chrono::Duration,
    _dir: tempfile::TempDir,
}

/// A PC whose wall clock reads three years behind (dead CMOS battery) while its
/// monotonic clock is right records a morning of sessions and syncs with the real client
/// against a server whose clock is right.
fn three_years_behind() -> SkewedPc {
    let server = TestServer::start();
    let token = server.enroll("adisara", "pc-03");
    let device = server.device("adisara", "pc-03");
    let three_years = chrono::Duration::days(3 * 365);
    let true_start = Utc::now() - chrono::Duration::hours(6);
    let clock = ManualClock::new(true_start - three_years);
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(
        &dir.path().join("jejak.db"),
        identity("adisara", "pc-03"),
        Arc::new(clock.clone()),
    )
    .unwrap();
    let mut pc = SimPc {
        store,
        clock,
        rng: StdRng::seed_from_u64(61),
        rx: 0,
        tx: 0,
    };
    let mut elapsed = chrono::Duration::zero();
    let mut truth = Vec::new();
    for _ in 0..12 {
        elapsed += chrono::Duration::from_std(pc.pass(3, 9)).unwrap();
        let profile = random_profile(&mut pc.rng);
        let session = pc.store.start_session(profile, None).unwrap().session;
        let raw = true_start + elapsed - three_years;
        assert_eq!(
            session.started_at.timestamp_millis(),
            raw.timestamp_millis()
        );
        let start = true_start + elapsed;
        elapsed += chrono::Duration::from_std(pc.pass(5, 20)).unwrap();
        pc.store.end_session(EndReason::Logout, None).unwrap();
        truth.push((session.id, start, true_start + elapsed));
    }
    // Bring the PC's monotonic clock in step with real time, then sync now.
    let lag = Utc::now() - (true_start + elapsed);
    pc.clock.advance(lag.to_std().unwrap());
    let client = Client::new(&server.url(), &token, Duration::from_secs(5));
    let report = client.sync(&mut pc.store, &fast_options(Some(3)));
    let offset = report.clock_offset_ms.unwrap();
    assert!(
        (offset + three_years.num_milliseconds()).abs() < 5_000,
        "the client measured {offset} ms"
    );
    SkewedPc {
        server,
        pc,
        device,
        truth,
        three_years,
        _dir: dir,
    }
}

#[test]
fn a_pc_clock_three_years_behind_is_corrected_to_within_seconds() {
    let SkewedPc {
        server,
        pc,
        device,
        truth,
        three_years,
        _dir,
    } = three_years_behind();
    server.assert_conserved(&pc.store, "three years behind");
    let sessions = server.block_on(server.store.sessions(&device)).unwrap();
    let made = pc_content(&pc.store).sessions;
    for (id, start, end) in &truth {
        let s = sessions.iter().find(|s| s.id == *id).unwrap();
        let start_error = (s.corrected_start - *start).num_milliseconds().abs();
        assert!(
            start_error <= 2_000,
            "session {id}: start {start_error} ms off"
        );
        let end_error = (s.corrected_end.unwrap() - *end).num_milliseconds().abs();
        assert!(end_error <= 2_000, "session {id}: end {end_error} ms off");
        // The raw time is kept as the PC sent it: three years off.
        assert_eq!(s.raw_start, made[id].started_at);
        assert_eq!(
            s.raw_start.timestamp_millis(),
            (*start - three_years).timestamp_millis()
        );
        assert_ne!(s.time_quality, TimeQuality::Trusted, "session {id}");
    }
    // The pc events too (the boot and the clock_suspect warning came first).
    let events = server.block_on(server.store.events(&device)).unwrap();
    let suspect = events
        .iter()
        .find(|e| e.kind == PcEventKind::ClockSuspect)
        .expect("the PC flagged its clock");
    let first_start = truth[0].1;
    assert!(suspect.corrected_at <= first_start);
    assert!(first_start - suspect.corrected_at < chrono::Duration::minutes(10));
    let state = server.block_on(server.store.device_state(&device)).unwrap();
    let offset = state.clock_offset_ms.unwrap();
    assert!(
        (offset - three_years.num_milliseconds()).abs() < 5_000,
        "the server's offset for this PC: {offset} ms"
    );
}

#[test]

fn a_pc_clock_three_years_behind_is_flagged_corrected_once_an_anchor_dates_it() {
    let SkewedPc {
        server,
        device,
        truth,
        ..
    } = three_years_behind();
    let sessions = server.block_on(server.store.sessions(&device)).unwrap();
    for (id, _, _) in &truth {
        let s = sessions.iter().find(|s| s.id == *id).unwrap();
        assert_eq!(
            s.client_time_quality,
            TimeQuality::Estimated,
            "the PC doubted its clock"
        );
        assert_eq!(
            s.time_quality,
            TimeQuality::Corrected,
            "session {id}: the anchor dated it to the second"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 6. Fifty PCs at once
// ---------------------------------------------------------------------------------------

#[test]
fn fifty_pcs_syncing_at_once_get_no_errors_and_lose_nothing() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let pcs: Vec<(String, String)> = (0..50)
        .map(|i| (format!("desa-{:02}", i / 3), format!("pc-{:02}", i % 3 + 1)))
        .collect();
    let tokens: Vec<String> = pcs.iter().map(|(l, p)| server.enroll(l, p)).collect();
    // Fill the 50 stores in parallel (each its own file, as on 50 machines).
    let stores: Vec<SimPc> = std::thread::scope(|scope| {
        let handles: Vec<_> = pcs
            .iter()
            .enumerate()
            .map(|(i, (library, pc))| {
                let db = dir.path().join(format!("{library}-{pc}.db"));
                scope.spawn(move || {
                    let mut sim = SimPc::create(&db, library, pc, 100 + i as u64, 100);
                    sim.fill(100);
                    sim
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    // Fifty real clients, each on its own thread and runtime, released together.
    let url = server.url();
    let barrier = std::sync::Barrier::new(stores.len());
    let started = Instant::now();
    let results: Vec<(SimPc, Result<SyncReport, String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = stores
            .into_iter()
            .zip(&tokens)
            .map(|(mut sim, token)| {
                let (url, barrier) = (&url, &barrier);
                scope.spawn(move || {
                    let client = Client::new(url, token, Duration::from_secs(30));
                    let options = fast_options(Some(5));
                    barrier.wait();
                    let result = client
                        .try_sync(&mut sim.store, &options)
                        .map_err(|_| "deadline".to_string())
                        .and_then(|r| r.map_err(|e| e.to_string()));
                    (sim, result)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    eprintln!("50 PCs synced in {:?}", started.elapsed());

    let mut batches = 0u64;
    for (sim, result) in &results {
        let who = sim.store.identity().to_string();
        let report = result
            .as_ref()
            .unwrap_or_else(|e| panic!("{who}: the sync failed: {e}"));
        // No 5xx, no timeout, no reset: not a single retry.
        assert_eq!(report.retries, 0, "{who}: {report:?}");
        assert!(report.rejected.is_empty(), "{who}: {report:?}");
        assert_eq!(report.duplicates, 0, "{who}: {report:?}");
        batches += u64::from(report.batches);
        server.assert_conserved(&sim.store, &who);
    }
    let results_by_kind = server.batch_results();
    assert_eq!(
        results_by_kind,
        BTreeMap::from([("accepted".to_string(), batches)]),
        "every batch accepted at the first attempt"
    );
    server.assert_healthy("after 50 PCs");
}

// ---------------------------------------------------------------------------------------
// 7. USB bundles with the binary
// ---------------------------------------------------------------------------------------

fn import(db: &ServerDb, file: &Path) -> Run {
    server_cmd_json(db, &["import", file.to_str().unwrap()])
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A PC whose clock says 2000 and that syncs by USB only (issue 14): its first bundle
/// cannot be dated (nothing bounds its run from below, so its sessions are listed as
/// undated, in no month), the acknowledgement file brings the server's time back to the
/// PC, which keeps it for the run still going, and the next bundle carries it: the
/// server dates the run between that time and the first import, the first bundle's
/// sessions included.
#[test]
fn a_usb_only_pc_in_2000_is_dated_by_the_time_its_acknowledgement_brought_back() {
    let server = TestServer::start();
    let db = server.db.clone();
    let token = server.enroll("adisara", "pc-03");
    let device = server.device("adisara", "pc-03");
    let dir = tempfile::tempdir().unwrap();
    let y2000 = Utc.with_ymd_and_hms(2000, 1, 1, 8, 0, 0).unwrap();
    // The PC booted 30 hours ago (true time) with its clock at 1 January 2000.
    let boot = Utc::now() - chrono::Duration::hours(30);
    let clock = ManualClock::new(y2000);
    let base_mono = jejak_agent::clock::Clock::mono_ms(&clock) as i64;
    let (mut store, _) = Store::open(
        &dir.path().join("jejak.db"),
        identity("adisara", "pc-03"),
        Arc::new(clock.clone()),
    )
    .unwrap();
    let key = jejak_sync::signing::DeviceKey::load_or_create(dir.path()).unwrap();
    let profile = PatronProfile {
        user_kind: UserKind::NonAnggota,
        purposes: vec![Purpose::Pendidikan],
        gender: Gender::P,
        age_group: AgeGroup::Pemuda,
        group_size: 1,
        patron_key: None,
    };
    let session = |store: &mut Store, gap: Duration| {
        clock.advance(gap);
        let id = store
            .start_session(profile.clone(), None)
            .unwrap()
            .session
            .id;
        clock.advance(gap);
        store.end_session(EndReason::Logout, None).unwrap();
        id
    };
    let hour = Duration::from_secs(3_600);
    let first: Vec<Uuid> = (0..3).map(|_| session(&mut store, hour)).collect();
    let exported_mono = jejak_agent::clock::Clock::mono_ms(&clock) as i64;
    let bundle1 = dir.path().join("bundle-1.json");
    jejak_sync::bundle::export(&mut store, &token, &key, &bundle1).unwrap();
    // The district imports it (a day after the export, by the story's clock), vouching
    // for the PC's key by the fingerprint the PC shows, as a PC that never synced over
    // HTTP must be.
    server_cmd_json(
        &db,
        &[
            "import",
            bundle1.to_str().unwrap(),
            "--trust-key",
            &key.fingerprint(),
        ],
    )
    .ok();
    let imported_by = Utc::now();
    let stored = |ids: &[Uuid]| -> Vec<StoredSession> {
        let all = server.block_on(server.store.sessions(&device)).unwrap();
        ids.iter()
            .map(|id| all.iter().find(|s| s.id == *id).unwrap().clone())
            .collect()
    };
    let year_2024 = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    for s in stored(&first) {
        assert!(
            s.corrected_start < year_2024,
            "undated: {}",
            s.corrected_start
        );
    }

    // Back on the PC, still the same boot, now: the acknowledgement is read.
    let since_boot = (imported_by - boot).num_milliseconds() + 100;
    let mono_now = jejak_agent::clock::Clock::mono_ms(&clock) as i64 - base_mono;
    clock.advance(Duration::from_millis((since_boot - mono_now) as u64));
    let ack_mono = jejak_agent::clock::Clock::mono_ms(&clock) as i64;
    let ack = std::fs::read(with_suffix(&bundle1, ".ack.json")).unwrap();
    jejak_sync::bundle::import_ack(&mut store, &token, &ack).unwrap();
    let bound = store.bounds_for(&[]).unwrap();
    assert_eq!(bound.len(), 1, "the server's time is kept as a bound");
    assert_eq!(bound[0].mono_ms as i64, ack_mono);
    assert!(
        bound[0].server_ms <= imported_by.timestamp_millis(),
        "{bound:?}"
    );
    let second = session(&mut store, Duration::from_millis(100));
    let bundle2 = dir.path().join("bundle-2.json");
    jejak_sync::bundle::export(&mut store, &token, &key, &bundle2).unwrap();
    let jejak_sync::bundle::Carried::Batches(carried) = bundle_file(&bundle2).carried().unwrap()
    else {
        panic!("a bundle of this version carries batches");
    };
    let batch: jejak_domain::WireBatch =
        serde_json::from_slice(&zstd::decode_all(carried[0].as_slice()).unwrap()).unwrap();
    assert_eq!(batch.bounds, bound, "the next bundle carries it");
    std::thread::sleep(Duration::from_millis(500));
    import(&db, &bundle2).ok();

    // The run booted after the acknowledgement's time less the PC's monotonic time
    // when it read it, and before the first import less its monotonic time at the first
    // export: every session of it is dated in between (by estimate), none undated.
    let (lowest_boot, highest_boot) = (
        bound[0].server_ms - ack_mono,
        imported_by.timestamp_millis() - exported_mono,
    );
    assert!(lowest_boot <= highest_boot);
    for s in stored(&first).into_iter().chain(stored(&[second])) {
        let mono = s.raw_start.timestamp_millis() - y2000.timestamp_millis() + base_mono;
        let at = s.corrected_start.timestamp_millis();
        let (lowest, highest) = (lowest_boot + mono, highest_boot + mono);
        assert!(
            at >= lowest - 1_000 && at <= highest + 1_000,
            "{at} not in {lowest}..{highest}"
        );
        assert_eq!(s.time_quality, TimeQuality::Estimated);
    }
    let ack = std::fs::read(with_suffix(&bundle2, ".ack.json")).unwrap();
    jejak_sync::bundle::import_ack(&mut store, &token, &ack).unwrap();
    drop(store);
    let content = read_pc(&dir.path().join("jejak.db"), "adisara", "pc-03");
    server.assert_conserved_content(&content, &identity("adisara", "pc-03"), "two bundles");
}

#[test]
fn usb_bundles_go_through_once_and_tampered_or_foreign_ones_are_refused() {
    let server = TestServer::start();
    let db = server.db.clone();
    let token = server.enroll("dermaji", "pc-01");
    let device = server.device("dermaji", "pc-01");
    let pc = binary_pc("dermaji", "pc-01", &server.url(), &token);
    let usb = pc.dir.path().join("usb");
    std::fs::create_dir_all(&usb).unwrap();
    let add = |seed: u64, sessions: usize| {
        let mut sim = SimPc::create(&pc.db_path(), "dermaji", "pc-01", seed, sessions);
        sim.fill(sessions);
    };
    let export = |name: &str| -> (PathBuf, Value) {
        let file = usb.join(name);
        let run = pc
            .run(&[
                "--lang",
                "en",
                "--format",
                "json",
                "sync",
                "--export",
                file.to_str().unwrap(),
            ])
            .ok();
        (file, run.json())
    };
    let on_server = || server.snapshot(std::slice::from_ref(&device)).remove(0);

    add(71, 40);
    let (bundle1, exported) = export("bundle-1.json");
    let last = read_pc(&pc.db_path(), "dermaji", "pc-01").last_seq;
    assert_eq!(
        (
            exported["first_seq"].as_u64(),
            exported["last_seq"].as_u64()
        ),
        (Some(1), Some(last))
    );
    assert_eq!(acked_seq(&pc.store()), 0, "exporting marks nothing synced");
    let records = exported["records"].as_u64().unwrap();

    // At the district office.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&bundle1).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "a bundle is readable by its owner only"
        );
    }
    let imported = import(&db, &bundle1).ok().json();
    assert_eq!(
        imported["trust"], "signed",
        "enrolled online, the PC registered its key: {imported}"
    );
    assert_eq!(imported["key_fingerprint"], exported["key_fingerprint"]);
    assert_eq!(
        (
            imported["new"].as_u64(),
            imported["duplicates"].as_u64(),
            imported["held_seq"].as_u64()
        ),
        (Some(records), Some(0), Some(last)),
        "{imported}"
    );
    let ack1 = with_suffix(&bundle1, ".ack.json");
    assert!(ack1.is_file());
    let content = read_pc(&pc.db_path(), "dermaji", "pc-01");
    server.block_on(assert_holds_exactly(
        server.store.as_ref(),
        &device,
        &content,
        "bundle 1",
    ));
    let after_first = on_server();

    // The same bundle again: nothing changes, and the answer says it was all there.
    let again = import(&db, &bundle1).ok().json();
    assert_eq!(
        (again["new"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(records)),
        "{again}"
    );
    assert_eq!(on_server().sessions, after_first.sessions);
    assert_eq!(on_server().events, after_first.events);
    assert_eq!(
        (on_server().state.sessions, on_server().state.events),
        (after_first.state.sessions, after_first.state.events)
    );

    // Back on the PC.
    let acked = pc
        .run(&[
            "--format",
            "json",
            "sync",
            "--import-ack",
            ack1.to_str().unwrap(),
        ])
        .ok()
        .json();
    assert_eq!(acked["held_seq"].as_u64(), Some(last), "{acked}");
    assert_eq!(acked_seq(&pc.store()), last);
    pc.run(&["sync", "--import-ack", ack1.to_str().unwrap()])
        .ok();
    assert_eq!(
        acked_seq(&pc.store()),
        last,
        "an acknowledgement read twice changes nothing"
    );
    jejak_sync(&pc, &[], "40").expect_code(EXIT_NOTHING_TO_SEND);

    // A bundle, then the same records over HTTP (its acknowledgement never came back).
    add(72, 25);
    let (bundle2, exported2) = export("bundle-2.json");
    let records2 = exported2["records"].as_u64().unwrap();
    import(&db, &bundle2).ok();
    let after_second = on_server();
    let report = jejak_sync(&pc, &[], "40").ok().json();
    assert_eq!(report["new"], 0, "{report}");
    // The server answered the first batch with the seq it holds (the bundle's end), so
    // the rest of the range was not even sent again.
    assert_eq!(report["duplicates"], report["records_sent"], "{report}");
    assert!(
        report["records_sent"].as_u64().unwrap() <= records2,
        "{report}"
    );
    assert_eq!(report["held_seq"], exported2["last_seq"], "{report}");
    assert_eq!(on_server().sessions, after_second.sessions);
    assert_eq!(on_server().events, after_second.events);
    // The late acknowledgement is harmless.
    pc.run(&[
        "sync",
        "--import-ack",
        with_suffix(&bundle2, ".ack.json").to_str().unwrap(),
    ])
    .ok();
    let content = read_pc(&pc.db_path(), "dermaji", "pc-01");
    server.assert_conserved_content(&content, &identity("dermaji", "pc-01"), "bundle 2 + HTTP");

    // Tampered bundles are refused, with a message and a nonzero exit, and change nothing.
    add(73, 10);
    let (bundle3, _) = export("bundle-3.json");
    let original = std::fs::read(&bundle3).unwrap();
    let text = String::from_utf8(original.clone()).unwrap();
    let refused = |file: &Path, expect: &str| assert_import_refused(&server, &device, file, expect);
    // One byte of a batch.
    let at = text.find("\"batches\"").unwrap() + "\"batches\": [\n    \"".len() + 20;
    let mut bytes = original.clone();
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    let payload_byte = usb.join("tampered-payload.json");
    std::fs::write(&payload_byte, &bytes).unwrap();
    refused(&payload_byte, "damaged");
    // A header field (the range it claims).
    let mut value: Value = serde_json::from_str(&text).unwrap();
    value["last_seq"] = json!(value["last_seq"].as_u64().unwrap() + 5);
    let header_field = usb.join("tampered-header.json");
    std::fs::write(&header_field, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
    refused(&header_field, "signature does not match");
    // A bundle of the same library and PC made with another server's token.
    let elsewhere = TestServer::start();
    let foreign_token = elsewhere.enroll("dermaji", "pc-01");
    let other = binary_pc("dermaji", "pc-01", &elsewhere.url(), &foreign_token);
    let mut sim = SimPc::create(&other.db_path(), "dermaji", "pc-01", 74, 5);
    sim.fill(5);
    drop(sim);
    let other_server = usb.join("other-server.json");
    other
        .run(&["sync", "--export", other_server.to_str().unwrap()])
        .ok();
    refused(
        &other_server,
        "not signed with the key dermaji/pc-01 registered",
    );
    // Another PC's bundle relabelled as this PC's.
    let token2 = server.enroll("dermaji", "pc-02");
    let pc2 = binary_pc("dermaji", "pc-02", &server.url(), &token2);
    let mut sim = SimPc::create(&pc2.db_path(), "dermaji", "pc-02", 75, 5);
    sim.fill(5);
    drop(sim);
    let pc2_bundle = usb.join("pc-02.json");
    pc2.run(&["sync", "--export", pc2_bundle.to_str().unwrap()])
        .ok();
    let mut value: Value = serde_json::from_slice(&std::fs::read(&pc2_bundle).unwrap()).unwrap();
    value["pc"] = json!("pc-01");
    let relabelled = usb.join("relabelled.json");
    std::fs::write(&relabelled, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
    refused(
        &relabelled,
        "not signed with the key dermaji/pc-01 registered",
    );
    // A PC this server never enrolled.
    let stranger = binary_pc("karanganyar", "pc-01", "http://127.0.0.1:9", &foreign_token);
    let mut sim = SimPc::create(&stranger.db_path(), "karanganyar", "pc-01", 76, 3);
    sim.fill(3);
    drop(sim);
    let stranger_bundle = usb.join("stranger.json");
    stranger
        .run(&["sync", "--export", stranger_bundle.to_str().unwrap()])
        .ok();
    refused(&stranger_bundle, "not enrolled");
    // Not a bundle at all.
    let junk = usb.join("junk.json");
    std::fs::write(&junk, b"{\"hello\": 1}").unwrap();
    refused(&junk, "bundle refused");

    // Acknowledgements are checked on the PC too.
    import(&db, &bundle3).ok();
    let ack3 = with_suffix(&bundle3, ".ack.json");
    let acked_before = acked_seq(&pc.store());
    let mut value: Value = serde_json::from_slice(&std::fs::read(&ack3).unwrap()).unwrap();
    value["acks"][0]["held_seq"] = json!(value["acks"][0]["held_seq"].as_u64().unwrap() + 1_000);
    let forged_ack = usb.join("forged.ack.json");
    std::fs::write(&forged_ack, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
    let run = pc.run(&[
        "--lang",
        "en",
        "sync",
        "--import-ack",
        forged_ack.to_str().unwrap(),
    ]);
    assert_eq!(run.code(), Some(EXIT_INVALID), "{}", run.stderr);
    assert!(
        run.stderr.contains("signature does not match"),
        "{}",
        run.stderr
    );
    import(&db, &pc2_bundle).ok();
    let run = pc.run(&[
        "--lang",
        "en",
        "sync",
        "--import-ack",
        with_suffix(&pc2_bundle, ".ack.json").to_str().unwrap(),
    ]);
    assert_eq!(run.code(), Some(EXIT_INVALID), "{}", run.stderr);
    assert!(run.stderr.contains("dermaji/pc-02"), "{}", run.stderr);
    assert_eq!(
        acked_seq(&pc.store()),
        acked_before,
        "a refused acknowledgement marks nothing"
    );
    pc.run(&["sync", "--import-ack", ack3.to_str().unwrap()])
        .ok();
    let content = read_pc(&pc.db_path(), "dermaji", "pc-01");
    server.assert_conserved_content(
        &content,
        &identity("dermaji", "pc-01"),
        "after the USB round",
    );
}

/// A bundle of a PC whose token the district revoked is refused, and the message says
/// why (so the office knows to re-enroll the PC, not to enroll a new one).
#[test]

fn a_bundle_of_a_revoked_pc_is_refused_as_revoked() {
    let server = TestServer::start();
    let token = server.enroll("dermaji", "pc-02");
    let device = server.device("dermaji", "pc-02");
    let pc = binary_pc("dermaji", "pc-02", &server.url(), &token);
    let mut sim = SimPc::create(&pc.db_path(), "dermaji", "pc-02", 81, 5);
    sim.fill(5);
    drop(sim);
    let bundle = pc.dir.path().join("bundle.json");
    pc.run(&["sync", "--export", bundle.to_str().unwrap()]).ok();
    server
        .block_on(server.store.revoke_device(
            &LibraryCode::parse("dermaji").unwrap(),
            &PcCode::parse("pc-02").unwrap(),
        ))
        .unwrap();
    let before = server.snapshot(std::slice::from_ref(&device));
    let run = import(&server.db, &bundle);
    assert_ne!(run.code(), Some(0), "{}", run.stdout);
    assert_eq!(server.snapshot(std::slice::from_ref(&device)), before);
    assert!(run.stderr.contains("revoked"), "{}", run.stderr);
}

/// A bundle file as JSON, to change it as an attacker (or a broken PC) would.
fn bundle_file(path: &Path) -> jejak_sync::bundle::Bundle {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn write_bundle(path: &Path, bundle: &jejak_sync::bundle::Bundle) {
    std::fs::write(path, serde_json::to_vec_pretty(bundle).unwrap()).unwrap();
}

/// `jejak server import FILE` must refuse `file` with `expect` in its message, write no
/// acknowledgement and change nothing on the server.
fn assert_import_refused(server: &TestServer, device: &DeviceRef, file: &Path, expect: &str) {
    let before = server.snapshot(std::slice::from_ref(device));
    let run = import(&server.db, file);
    assert_ne!(
        run.code(),
        Some(0),
        "{} was accepted: {}",
        file.display(),
        run.stdout
    );
    assert!(
        run.stderr.contains(expect),
        "{}: expected '{expect}' in: {}",
        file.display(),
        run.stderr
    );
    assert!(
        !with_suffix(file, ".ack.json").exists(),
        "{}: an acknowledgement was written",
        file.display()
    );
    assert_eq!(
        server.snapshot(std::slice::from_ref(device)),
        before,
        "{}: a refused bundle changed the server",
        file.display()
    );
}

/// A PC enrolled online (its key registered) with `sessions` simulated sessions, and
/// the bundle of all of it it exported: (server, device, token, PC, USB folder, bundle).
fn enrolled_pc_with_bundle(
    pc_code: &str,
    seed: u64,
    sessions: usize,
) -> (TestServer, DeviceRef, String, TestPc, PathBuf, PathBuf) {
    let server = TestServer::start();
    let token = server.enroll("dermaji", pc_code);
    let device = server.device("dermaji", pc_code);
    let pc = binary_pc("dermaji", pc_code, &server.url(), &token);
    let mut sim = SimPc::create(&pc.db_path(), "dermaji", pc_code, seed, sessions);
    sim.fill(sessions);
    drop(sim);
    let usb = pc.dir.path().join("usb");
    std::fs::create_dir_all(&usb).unwrap();
    let genuine = usb.join("genuine.json");
    pc.run(&["sync", "--export", genuine.to_str().unwrap()])
        .ok();
    (server, device, token, pc, usb, genuine)
}

/// Issue 13, item 4: the server's database holds each token's SHA-256, which was the
/// bundles' only key. A PC that registered its Ed25519 key can no longer be written for
/// with anything a copy of the database holds.
#[test]
fn a_bundle_forged_from_a_copy_of_the_server_database_is_refused() {
    let (server, device, _token, _pc, usb, genuine) = enrolled_pc_with_bundle("pc-01", 91, 12);

    // What the copy of the database gives: the token's hash and the public key.
    let stolen = server
        .block_on(server.store.device_keys(&device))
        .unwrap()
        .unwrap();
    assert!(
        stolen.public_key.is_some(),
        "enrollment registered the PC's key"
    );
    let forger_dir = tempfile::tempdir().unwrap();
    let forger = jejak_sync::signing::DeviceKey::load_or_create(forger_dir.path()).unwrap();

    // Records of the attacker's own making, sealed with the stolen hash and their key.
    let mut forged = bundle_file(&genuine);
    forged.records += 1;
    forged.seal(&forger, &stolen.token_hash);
    let forged_path = usb.join("forged.json");
    write_bundle(&forged_path, &forged);
    assert_import_refused(
        &server,
        &device,
        &forged_path,
        "not signed with the key dermaji/pc-01 registered",
    );
    // The same with the PC's own public key written in (the signature cannot match).
    let mut claimed = bundle_file(&forged_path);
    claimed.public_key = Some(hex::encode(stolen.public_key.unwrap()));
    let claimed_path = usb.join("claimed.json");
    write_bundle(&claimed_path, &claimed);
    assert_import_refused(&server, &device, &claimed_path, "signature does not match");
    // An old-style file, with the stolen HMAC only.
    let mut unsigned = bundle_file(&genuine);
    unsigned.public_key = None;
    unsigned.signature = None;
    let unsigned_path = usb.join("unsigned.json");
    write_bundle(&unsigned_path, &unsigned);
    assert_import_refused(&server, &device, &unsigned_path, "not signed with the key");

    // The PC's own bundle goes through.
    let imported = import(&server.db, &genuine).ok().json();
    assert_eq!(imported["trust"], "signed", "{imported}");
    assert!(imported["new"].as_u64().unwrap() > 0, "{imported}");
}

/// A PC enrolled without a link never registered its key online. Its signed bundle is
/// refused until the district confirms the key's fingerprint as the PC itself shows it
/// (`--trust-key`): then the key is registered, and from there on only that key counts —
/// a bundle forged with a copy of the server's database (the token's hash) and another
/// key is refused. An unsigned bundle (an older jejak) is refused unless the district
/// accepts it explicitly (`--accept-unsigned`). Every refusal stores nothing and writes
/// no acknowledgement.
#[test]
fn a_pc_that_never_registered_its_key_is_trusted_by_the_fingerprint_read_on_it() {
    let server = TestServer::start();
    let token = server.enroll("dermaji", "pc-03");
    let device = server.device("dermaji", "pc-03");
    // Enrolled against a server out of reach: the key is made, not registered.
    let pc = TestPc::new();
    pc.run(&["init", "--library", "dermaji", "--pc", "pc-03"])
        .ok();
    let run = pc
        .run(&[
            "--lang",
            "en",
            "enroll",
            "--server",
            "http://127.0.0.1:9",
            "--token",
            &token,
        ])
        .ok();
    assert!(
        run.stdout.contains("not registered with the server yet"),
        "{}",
        run.stdout
    );
    let mut sim = SimPc::create(&pc.db_path(), "dermaji", "pc-03", 92, 6);
    sim.fill(6);
    drop(sim);
    let usb = pc.dir.path().join("usb");
    std::fs::create_dir_all(&usb).unwrap();
    let first = usb.join("first.json");
    let exported = pc
        .run(&["--lang", "en", "sync", "--export", first.to_str().unwrap()])
        .ok();
    let pc_key = jejak_sync::signing::DeviceKey::load(&pc.data_dir)
        .unwrap()
        .unwrap();
    let fingerprint = pc_key.fingerprint();
    assert!(
        exported.stdout.contains(&fingerprint),
        "the PC shows its fingerprint at export: {}",
        exported.stdout
    );

    // Not vouched for: refused, naming the fingerprint to compare and the flag.
    assert_import_refused(&server, &device, &first, &fingerprint);
    assert_import_refused(&server, &device, &first, "--trust-key");
    // A fingerprint that is not the signer's: refused.
    let wrong = server_cmd_json(
        &server.db,
        &[
            "import",
            first.to_str().unwrap(),
            "--trust-key",
            "0000-1111-2222-3333",
        ],
    );
    assert_ne!(wrong.code(), Some(0), "{}", wrong.stdout);
    assert!(
        wrong.stderr.contains("not 0000-1111-2222-3333"),
        "{}",
        wrong.stderr
    );
    assert!(!with_suffix(&first, ".ack.json").exists());

    // Vouched for (as typed by a person: capitals, spaces): taken, and the key kept.
    let typed = fingerprint.to_uppercase().replace('-', " ");
    let run = server_cmd_json(
        &server.db,
        &["import", first.to_str().unwrap(), "--trust-key", &typed],
    )
    .ok();
    assert_eq!(run.json()["trust"], "signed", "{}", run.stdout);
    let keys = server
        .block_on(server.store.device_keys(&device))
        .unwrap()
        .unwrap();
    assert_eq!(
        keys.public_key,
        Some(pc_key.public_key()),
        "the key confirmed at the import is registered"
    );
    pc.run(&[
        "sync",
        "--import-ack",
        with_suffix(&first, ".ack.json").to_str().unwrap(),
    ])
    .ok();

    // From now on a bundle forged with the token's hash and another key is refused,
    // whatever fingerprint is given with it.
    let mut sim = SimPc::create(&pc.db_path(), "dermaji", "pc-03", 93, 4);
    sim.fill(4);
    drop(sim);
    let second = usb.join("second.json");
    pc.run(&["sync", "--export", second.to_str().unwrap()]).ok();
    let mut forged = bundle_file(&second);
    let forger_dir = tempfile::tempdir().unwrap();
    let forger = jejak_sync::signing::DeviceKey::load_or_create(forger_dir.path()).unwrap();
    forged.seal(&forger, &keys.token_hash);
    let forged_path = usb.join("forged.json");
    write_bundle(&forged_path, &forged);
    assert_import_refused(&server, &device, &forged_path, "not signed with the key");
    let imported = import(&server.db, &second).ok().json();
    assert_eq!(imported["trust"], "signed", "{imported}");

    // An unsigned bundle (as an older jejak made them), from a PC without a registered
    // key: its own genuine export with the signature taken off (the token-hash MAC does
    // not cover it).
    let other_token = server.enroll("dermaji", "pc-09");
    let other_device = server.device("dermaji", "pc-09");
    let other = TestPc::new();
    other
        .run(&["init", "--library", "dermaji", "--pc", "pc-09"])
        .ok();
    other
        .run(&[
            "enroll",
            "--server",
            "http://127.0.0.1:9",
            "--token",
            &other_token,
        ])
        .ok();
    let mut sim = SimPc::create(&other.db_path(), "dermaji", "pc-09", 95, 3);
    sim.fill(3);
    drop(sim);
    let unsigned_path = usb.join("unsigned.json");
    other
        .run(&["sync", "--export", unsigned_path.to_str().unwrap()])
        .ok();
    let mut unsigned = bundle_file(&unsigned_path);
    unsigned.public_key = None;
    unsigned.signature = None;
    write_bundle(&unsigned_path, &unsigned);
    assert_import_refused(&server, &other_device, &unsigned_path, "--accept-unsigned");
    let accepted = server_cmd_json(
        &server.db,
        &[
            "import",
            unsigned_path.to_str().unwrap(),
            "--accept-unsigned",
        ],
    )
    .ok();
    assert_eq!(
        accepted.json()["trust"],
        "token_hash",
        "{}",
        accepted.stdout
    );
    assert!(
        accepted.stderr.contains("--accept-unsigned"),
        "the warning names what was accepted: {}",
        accepted.stderr
    );
    assert!(
        accepted.json()["new"].as_u64().is_some_and(|n| n > 0),
        "{}",
        accepted.stdout
    );
}

/// Issue 13, item 5: a bundle gets the HTTP path's limits, batch by batch, and one
/// whose batches disagree with its header is refused before anything is stored, with
/// no acknowledgement file. Every file here is validly signed by the PC's own key (a
/// broken or hostile PC), so only the content checks stand in the way.
#[test]
fn bundles_over_the_limits_or_disagreeing_with_their_header_are_refused_and_store_nothing() {
    use std::io::Write as _;
    // Enough for several batches of 500 records.
    let (server, device, token, pc, usb, genuine) = enrolled_pc_with_bundle("pc-04", 94, 700);
    let key = jejak_sync::signing::DeviceKey::load(&pc.data_dir)
        .unwrap()
        .unwrap();
    let token_hash = jejak_sync::bundle::device_key(&token);
    let original = bundle_file(&genuine);
    assert!(
        original.batches.len() >= 2,
        "{} batches",
        original.batches.len()
    );
    let variant = |name: &str, change: &dyn Fn(&mut jejak_sync::bundle::Bundle)| -> PathBuf {
        let mut bundle = original.clone();
        change(&mut bundle);
        bundle.update_checksum();
        bundle.seal(&key, &token_hash);
        let path = usb.join(name);
        write_bundle(&path, &bundle);
        path
    };
    // Whitespace that inflates past one batch's limit (the HTTP path's), from a few kB.
    let too_large = format!(
        "the decompressed body is larger than {} bytes",
        jejak_server::Limits::default().max_decompressed_bytes
    );
    let mut encoder = zstd::stream::Encoder::new(Vec::new(), 19).unwrap();
    let spaces = vec![b' '; 1 << 20];
    for _ in 0..17 {
        encoder.write_all(&spaces).unwrap();
    }
    let bomb = encoder.finish().unwrap();
    assert!(bomb.len() < 64 << 10, "{} bytes", bomb.len());
    let bomb_hex = hex::encode(&bomb);
    let cases: Vec<(PathBuf, &str)> = vec![
        (
            variant("bomb.json", &|b| b.batches[1] = bomb_hex.clone()),
            &too_large,
        ),
        (
            variant("more-records.json", &|b| b.records += 4),
            "the batches hold",
        ),
        (
            variant("longer-range.json", &|b| b.last_seq += 5),
            "the batches end at seq",
        ),
        (
            variant("missing-batch.json", &|b| {
                b.batches.remove(1);
            }),
            "batch 2 covers seq",
        ),
        (
            variant("no-batches.json", &|b| b.batches.clear()),
            "0 batches for",
        ),
        (
            variant("other-epoch.json", &|b| b.epoch = Uuid::new_v4()),
            "is of epoch",
        ),
    ];
    for (path, expect) in &cases {
        assert_import_refused(&server, &device, path, expect);
    }
    // A version 1 file (one stream) of whitespace: the same limit, for the stream.
    let mut legacy = original.clone();
    legacy.version = 1;
    legacy.batches.clear();
    legacy.payload = bomb_hex.clone();
    legacy.update_checksum();
    legacy.seal(&key, &token_hash);
    let legacy_path = usb.join("legacy-bomb.json");
    write_bundle(&legacy_path, &legacy);
    assert_import_refused(&server, &device, &legacy_path, &too_large);
    // A file too large to be a bundle is refused before it is read.
    let huge = usb.join("huge.json");
    let file = std::fs::File::create(&huge).unwrap();
    file.set_len(33 << 20).unwrap();
    assert_import_refused(&server, &device, &huge, "larger than 32 MB");

    // The PC's own file, untouched, goes through in full.
    let imported = import(&server.db, &genuine).ok().json();
    assert_eq!(
        imported["new"].as_u64(),
        Some(original.records),
        "{imported}"
    );
    assert_eq!(
        imported["held_seq"].as_u64(),
        Some(original.last_seq),
        "{imported}"
    );
}

// ---------------------------------------------------------------------------------------
// 8. A captive portal
// ---------------------------------------------------------------------------------------

/// A tiny HTTP server that answers every request with the same 200 page, like a
/// captive portal or a modem's "your data package has run out" page.
struct Portal {
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Portal {
    fn start(content_type: &'static str, body: &'static str) -> Portal {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, done) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if done.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                // Read the request head and any declared body, then answer and close.
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
                let length = text
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(0);
                let _ = std::io::copy(&mut (&mut conn).take(length), &mut std::io::sink());
                count.fetch_add(1, Ordering::SeqCst);
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(answer.as_bytes());
            }
        });
        Portal {
            addr,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Portal {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn a_captive_portal_is_no_link_and_marks_nothing_synced() {
    let portals = [
        Portal::start(
            "text/html",
            "<html><body>Paket data Anda habis. Beli paket baru di sini.</body></html>",
        ),
        // Someone else's JSON is no answer either.
        Portal::start(
            "application/json",
            "{\"status\":\"ok\",\"login\":\"required\"}",
        ),
    ];
    for portal in &portals {
        let pc = binary_pc(
            "dermaji",
            "pc-01",
            &portal.url(),
            &format!("jejak_dev_{}", "cd".repeat(32)),
        );
        pc.start_session(&["--purpose", "pendidikan"]);
        pc.run(&["session", "end"]).ok();
        pc.start_session(&["--purpose", "komunikasi"]);
        let before = pc.store().count_and_max();
        let run = jejak_sync(&pc, &["--attempts", "2"], "40").expect_code(EXIT_NO_LINK);
        assert!(run.stderr.contains("no link"), "{}", run.stderr);
        assert!(run.stdout.trim().is_empty(), "{}", run.stdout);
        assert!(
            portal.requests.load(Ordering::SeqCst) >= 2,
            "the client never asked"
        );
        let view = pc.store();
        assert_eq!(acked_seq(&view), 0, "nothing is marked synced");
        assert_eq!(view.count_and_max(), before, "the change log is untouched");
        let status = pc.status_json();
        assert_eq!(
            status["store"]["pending_changes"].as_i64(),
            Some(before.1),
            "{status}"
        );
        assert!(status["sync"]["last_success"].is_null(), "{status}");
        assert!(
            status["sync"]["last_result"]
                .as_str()
                .unwrap_or("")
                .contains("no link"),
            "{status}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 9. A server that is up but cannot store
// ---------------------------------------------------------------------------------------

/// Answers as the district server does while its store cannot write (a full disk, its
/// database down): `/healthz` says `unavailable` (503), the clock probe works, every
/// batch gets 503 `store-unavailable` with `Retry-After`. It notes when each batch
/// arrived.
struct StoreDown {
    addr: SocketAddr,
    batches: Arc<std::sync::Mutex<Vec<Instant>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StoreDown {
    fn start(retry_after_secs: u64) -> StoreDown {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let batches = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, done) = (batches.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if done.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let text = String::from_utf8_lossy(&head).to_string();
                let length = text
                    .to_ascii_lowercase()
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:").map(str::to_string))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(0);
                let _ = std::io::copy(&mut (&mut conn).take(length), &mut std::io::sink());
                let answer = if text.starts_with("GET /healthz") {
                    let body = "{\"status\":\"unavailable\",\"service\":\"jejak-server\",\"version\":\"0.1.0\"}";
                    format!(
                        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else if text.starts_with("GET /api/v1/time") {
                    let now = Utc::now().timestamp_millis();
                    let body = format!("{{\"received_at_ms\":{now},\"sent_at_ms\":{now}}}");
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    if text.starts_with("POST /api/v1/batches") {
                        seen.lock().unwrap().push(Instant::now());
                    }
                    let body = "{\"type\":\"store-unavailable\",\"title\":\"Store unavailable\",\"status\":503,\"detail\":\"the server could not store or read data just now; nothing was changed, retry later\"}";
                    format!(
                        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\nRetry-After: {retry_after_secs}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = conn.write_all(answer.as_bytes());
            }
        });
        StoreDown {
            addr,
            batches,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn batch_times(&self) -> Vec<Instant> {
        self.batches.lock().unwrap().clone()
    }
}

impl Drop for StoreDown {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Issue 13, item 10: with the server up but unable to store, `jejak sync` says so
/// (not "no link"), waits at least what `Retry-After` asks between tries, and counts
/// its tries right ("after 3 attempts" for three, "after 1 attempt" for one).
#[test]
fn a_server_that_cannot_store_is_told_from_no_link_and_its_retry_after_is_honoured() {
    let server = StoreDown::start(2);
    let pc = binary_pc(
        "dermaji",
        "pc-01",
        &server.url(),
        &format!("jejak_dev_{}", "ab".repeat(32)),
    );
    pc.start_session(&["--purpose", "pendidikan"]);
    let before = pc.store().count_and_max();
    let run = jejak_sync(&pc, &["--attempts", "3"], "40").expect_code(EXIT_SERVER_UNAVAILABLE);
    assert!(
        run.stderr
            .contains("reachable but cannot store data right now"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("after 3 attempts"), "{}", run.stderr);
    assert!(run.stderr.contains("retry in 2 s"), "{}", run.stderr);
    assert!(!run.stderr.contains("no link"), "{}", run.stderr);
    let times = server.batch_times();
    assert_eq!(times.len(), 3, "three tries of the batch");
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(1_950),
            "a try {gap:?} after the one before, though the server asked for 2 s"
        );
    }
    let run = jejak_sync(&pc, &["--attempts", "1"], "40").expect_code(EXIT_SERVER_UNAVAILABLE);
    assert!(run.stderr.contains("after 1 attempt:"), "{}", run.stderr);
    assert_eq!(server.batch_times().len(), 4, "one try is one request");
    assert_eq!(acked_seq(&pc.store()), 0, "nothing is marked synced");
    assert_eq!(pc.store().count_and_max(), before);

    // No link at all still reads as no link, with its tries counted the same way.
    let offline = binary_pc(
        "dermaji",
        "pc-01",
        "http://127.0.0.1:9",
        &format!("jejak_dev_{}", "ab".repeat(32)),
    );
    offline.start_session(&["--purpose", "pendidikan"]);
    let run = jejak_sync(&offline, &["--attempts", "3"], "40").expect_code(EXIT_NO_LINK);
    assert!(
        run.stderr
            .contains("no link to the server after 3 attempts"),
        "{}",
        run.stderr
    );
}

/// Issue 13, item 12 (the agent's part): the real agent facing a server that answers
/// but cannot store records no internet outage (the reports' internet uptime comes from
/// these events), says what it is, and keeps trying to sync on its own schedule although
/// its probe says the server cannot take data.
#[test]
fn an_agent_facing_a_server_that_cannot_store_records_no_outage_and_keeps_trying() {
    use std::io::Write as _;
    use support::AgentOptions;
    let server = StoreDown::start(1);
    let pc = binary_pc(
        "dermaji",
        "pc-01",
        &server.url(),
        &format!("jejak_dev_{}", "ef".repeat(32)),
    );
    let mut config = std::fs::OpenOptions::new()
        .append(true)
        .open(pc.data_dir.join("agent.toml"))
        .unwrap();
    writeln!(
        config,
        "probe_secs = 0.3\nsync_secs = 0.5\nsync_backoff_base_secs = 0.05\nsync_backoff_cap_secs = 0.2\ncheckin_port = 0"
    )
    .unwrap();
    drop(config);
    pc.start_session(&["--purpose", "pendidikan"]);
    let mut agent = pc.spawn_agent(AgentOptions::fast(0.5));
    agent.wait_for_message(
        "the district server is reachable but cannot store right now; syncs go on on their own schedule",
    );
    support::poll_until("three tries of a batch", Duration::from_secs(30), || {
        (server.batch_times().len() >= 3).then_some(())
    });
    let times = server.batch_times();
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(950),
            "the agent sent sooner than the server's Retry-After of 1 s"
        );
    }
    assert!(agent.stop_with("TERM").success());
    let kinds: Vec<String> = pc
        .store()
        .changes()
        .iter()
        .filter_map(|c| c.event_kind().map(str::to_string))
        .collect();
    assert!(kinds.iter().any(|k| k == "internet_up"), "{kinds:?}");
    assert!(
        !kinds.iter().any(|k| k == "internet_down"),
        "a store outage recorded as an internet outage: {kinds:?}"
    );
    assert_eq!(acked_seq(&pc.store()), 0, "nothing is marked synced");
}
