//! The agent: the long-running process on a village PC. It recovers a session an
//! earlier run left open, keeps the open session's heartbeat, turns collector
//! observations into pc events, and on shutdown closes the open session.
//!
//! The store is used inline on the runtime's one thread: each call is one short
//! transaction, and nothing else in the agent is latency-critical.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use jejak_domain::{DeviceIdentity, EndReason, PcEventKind};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use crate::clock::Clock;
use crate::collect::{Collector, LinkState, Observation};
use crate::login::SeatChange;
use crate::store::{NetCounters, PrunePolicy, Recovery, Store, StoreError};

/// The first prune pass waits this long after the start (a village PC is often switched
/// on for a few hours only, so waiting a day would never come); then one a day, and one
/// after each background sync.
const PRUNE_FIRST_AFTER: Duration = Duration::from_secs(10 * 60);
const PRUNE_EVERY: Duration = Duration::from_secs(24 * 3600);

/// The agent's timing, from the configuration.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    pub heartbeat: Duration,
    /// Every this many heartbeats a `heartbeat` pc event is written.
    pub heartbeat_event_every: u32,
    /// How old a dead agent's last heartbeat may be for its session to continue.
    pub crash_grace: Duration,
    /// How often to sync while the link is up.
    pub sync_interval: Duration,
    /// Retention and the size budget; `None` prunes nothing.
    pub prune: Option<PrunePolicy>,
}

/// A sync the agent runs in the background while the link is up. The sync crate
/// implements it (it depends on this crate, not the other way round); the agent only
/// decides when. An implementation opens its own store connection, so a long sync over
/// a slow link never holds up heartbeats.
pub trait BackgroundSync: Send + 'static {
    fn sync(&mut self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// What one run of the agent did, for its log line at exit and for tests.
#[derive(Debug, Default, Clone)]
pub struct AgentSummary {
    pub recovery: Option<Recovery>,
    pub heartbeats: u64,
    pub syncs_started: u64,
    pub ended_at_shutdown: Option<uuid::Uuid>,
}

/// Opens the store, retrying with a growing pause while it cannot be opened (a full
/// disk, a directory not yet mounted), so the agent waits instead of crash-looping.
/// Returns `None` if `shutdown` completes first.
pub async fn open_store_patiently(
    path: &Path,
    identity: DeviceIdentity,
    clock: Arc<dyn Clock>,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) -> Option<Store> {
    let mut pause = Duration::from_secs(1);
    loop {
        match Store::open(path, identity.clone(), clock.clone()) {
            Ok((store, report)) => {
                if let Some(moved) = report.quarantined {
                    tracing::error!(moved_to = %moved.display(), epoch = %store.epoch(),
                        "the damaged store was moved aside; a fresh store was started");
                }
                return Some(store);
            }
            Err(e) => {
                tracing::error!(error = %e, retry_in_secs = pause.as_secs(), "cannot open the local store");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = &mut *shutdown => return None,
        }
        pause = (pause * 2).min(Duration::from_secs(60));
    }
}

/// Runs the agent until `shutdown` completes (SIGTERM or SIGINT in the binary).
pub async fn run(
    mut store: Store,
    settings: AgentSettings,
    collectors: Vec<Box<dyn Collector>>,
    background_sync: Option<Box<dyn BackgroundSync>>,
    shutdown: impl Future<Output = ()>,
) -> Result<AgentSummary, StoreError> {
    let mut summary = AgentSummary {
        recovery: store.recover_open_session(settings.crash_grace)?,
        ..AgentSummary::default()
    };
    match &summary.recovery {
        Some(Recovery::Continued(s)) => {
            tracing::info!(session = %s.id, "the open session continues")
        }
        Some(Recovery::Closed(s)) => tracing::warn!(
            session = %s.id,
            end_reason = s.end_reason.map(|r| r.code()).unwrap_or(""),
            duration_secs = s.duration_secs,
            "closed a session an earlier run left open"
        ),
        None => {}
    }

    let (observations_tx, mut observations) = mpsc::channel::<Observation>(16);
    let tasks: Vec<_> = collectors
        .into_iter()
        .map(|collector| tokio::spawn(run_collector(collector, observations_tx.clone())))
        .collect();
    drop(observations_tx);

    let mut heartbeat = tokio::time::interval(settings.heartbeat);
    // The monotonic clock at the last heartbeat tick: a much longer gap than the interval
    // means the process was frozen while the PC slept or hibernated.
    let mut last_beat_mono: Option<u64> = None;
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Whether the internet works (for internet_up/down events and heartbeats), and the
    // probe's last verdict about the server itself.
    let mut link_up: Option<bool> = None;
    let mut last_probe: Option<LinkState> = None;
    let mut counters: Option<NetCounters> = None;
    // The first periodic sync waits one interval: at start the probe's first verdict
    // (which starts a sync when the link is up) comes sooner.
    let mut sync_tick = tokio::time::interval_at(
        tokio::time::Instant::now() + settings.sync_interval,
        settings.sync_interval,
    );
    sync_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut prune_tick =
        tokio::time::interval_at(tokio::time::Instant::now() + PRUNE_FIRST_AFTER, PRUNE_EVERY);
    prune_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The sync is either idle (here) or running in its own task, which hands it back.
    let mut idle_sync = background_sync;
    let mut running_sync: Option<tokio::task::JoinHandle<Box<dyn BackgroundSync>>> = None;
    let mut start_sync =
        |idle: &mut Option<Box<dyn BackgroundSync>>,
         running: &mut Option<tokio::task::JoinHandle<Box<dyn BackgroundSync>>>| {
            if let Some(mut sync) = idle.take() {
                summary.syncs_started += 1;
                *running = Some(tokio::spawn(async move {
                    sync.sync().await;
                    sync
                }));
            }
        };
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = prune_tick.tick(), if settings.prune.is_some() => {
                if let Some(policy) = &settings.prune {
                    prune(&mut store, policy);
                }
            }
            _ = sync_tick.tick(), if idle_sync.is_some() => {
                // Whatever the probe said last: a probe can be wrong or stale (a store
                // outage that just ended, one probe lost on a bad link), and a sync's
                // own retries are bounded by its back-off and the server's Retry-After.
                start_sync(&mut idle_sync, &mut running_sync);
            }
            finished = async {
                match running_sync.as_mut() {
                    Some(handle) => handle.await,
                    None => std::future::pending().await,
                }
            }, if running_sync.is_some() => {
                running_sync = None;
                match finished {
                    Ok(sync) => idle_sync = Some(sync),
                    Err(e) => tracing::error!(error = %e, "the background sync task failed; syncing stops until restart"),
                }
                // New acknowledgements may have made data prunable (or the budget
                // reachable again).
                if let Some(policy) = &settings.prune {
                    prune(&mut store, policy);
                }
            }
            _ = heartbeat.tick() => {
                summary.heartbeats += 1;
                let mono = store.monotonic_ms();
                if let Some(last) = last_beat_mono.replace(mono)
                    && mono.saturating_sub(last) > (settings.heartbeat + settings.crash_grace).as_millis() as u64
                {
                    slept(&mut store, mono - last, settings.crash_grace);
                }
                // The first heartbeat of a run and every n-th after it become pc events.
                let write_event =
                    (summary.heartbeats - 1).is_multiple_of(u64::from(settings.heartbeat_event_every.max(1)));
                match store.heartbeat(counters, link_up, write_event) {
                    Ok(outcome) => {
                        if let Some(seq) = outcome.event_seq {
                            tracing::info!(seq, "heartbeat recorded");
                        }
                    }
                    // A full disk or a busy store must not stop the agent: it says so and
                    // tries again at the next tick.
                    Err(e) => {
                        tracing::error!(error = %e, "heartbeat not recorded");
                        reopen_if_needed(&mut store, &e);
                    }
                }
            }
            Some(observation) = observations.recv() => match observation {
                Observation::Counters(c) => counters = Some(c),
                Observation::Seat(change) => seat_changed(&mut store, change, counters),
                Observation::Link(state) => {
                    // The events say whether the internet works: a server that answers
                    // but cannot store is reached, so it is no internet outage (the
                    // reports' internet uptime comes from these events).
                    let up = state.internet_up();
                    if link_up != Some(up) {
                        let kind = if up { PcEventKind::InternetUp } else { PcEventKind::InternetDown };
                        match store.record_event(kind) {
                            Ok(seq) => {
                                link_up = Some(up);
                                tracing::info!(seq, event = kind.code(), "link changed");
                            }
                            Err(e) => {
                                tracing::error!(error = %e, "link change not recorded");
                                reopen_if_needed(&mut store, &e);
                            }
                        }
                    }
                    if last_probe != Some(state) {
                        match state {
                            LinkState::ServerUnavailable => tracing::warn!(
                                "the district server is reachable but cannot store right now; syncs go on on their own schedule"
                            ),
                            LinkState::Up if last_probe == Some(LinkState::ServerUnavailable) => {
                                tracing::info!("the district server can store again")
                            }
                            _ => {}
                        }
                        // A server newly able to take data gets it at once.
                        if state == LinkState::Up {
                            start_sync(&mut idle_sync, &mut running_sync);
                        }
                        last_probe = Some(state);
                    }
                }
            },
        }
    }

    for task in tasks {
        task.abort();
    }
    // A sync cut short loses nothing: each acknowledgement was recorded in its own
    // transaction, and the rest is sent again next time.
    if let Some(handle) = running_sync {
        handle.abort();
    }
    let mut ended = store.end_session(EndReason::Shutdown, counters);
    if let Err(e) = &ended
        && e.needs_reopen()
    {
        reopen_if_needed(&mut store, e);
        ended = store.end_session(EndReason::Shutdown, counters);
    }
    match ended {
        Ok(session) => {
            tracing::info!(session = %session.id, "closed the open session at shutdown");
            summary.ended_at_shutdown = Some(session.id);
        }
        Err(StoreError::NoOpenSession) => {}
        Err(e) => tracing::error!(error = %e, "could not close the open session at shutdown"),
    }
    let seq = store.record_event(PcEventKind::Shutdown)?;
    tracing::info!(seq, heartbeats = summary.heartbeats, "agent stopped");
    Ok(summary)
}

/// A login nobody checked in starts a session with the patron unknown (unless one is
/// open); a logout or an idle end closes the open session, whoever started it.
fn seat_changed(store: &mut Store, change: SeatChange, counters: Option<NetCounters>) {
    let result = match change {
        SeatChange::Began => store.start_unattended_session(counters).map(|started| {
            if let Some(session) = started {
                tracing::info!(session = %session.id, "a login nobody checked in: session started");
            }
        }),
        SeatChange::Ended(reason) => match store.end_session(reason, counters) {
            Ok(session) => {
                tracing::info!(session = %session.id, end_reason = reason.code(), "session ended by the seat");
                Ok(())
            }
            Err(StoreError::NoOpenSession) => Ok(()),
            Err(e) => Err(e),
        },
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "seat change not recorded");
        reopen_if_needed(store, &e);
    }
}

/// The PC slept (or hibernated) for about `gap_ms`: the session open before it ends at
/// its last heartbeat, as `idle`.
fn slept(store: &mut Store, gap_ms: u64, max_silence: Duration) {
    match store.end_session_after_sleep(max_silence) {
        Ok(Some(session)) => tracing::info!(
            session = %session.id,
            slept_secs = gap_ms / 1000,
            "the PC slept; the session open before it ended at its last heartbeat"
        ),
        Ok(None) => tracing::info!(slept_secs = gap_ms / 1000, "the PC slept"),
        Err(e) => {
            tracing::error!(error = %e, "the session open before the PC slept was not closed");
            reopen_if_needed(store, &e);
        }
    }
}

/// One prune pass; a failure is logged and retried at the next occasion.
fn prune(store: &mut Store, policy: &PrunePolicy) {
    if let Err(e) = store.prune(policy, false) {
        tracing::error!(error = %e, "prune pass failed; nothing was removed");
        reopen_if_needed(store, &e);
    }
}

/// After a failed store call: if the store was damaged or moved aside by another
/// process, open it again (which quarantines a damaged file and starts afresh), so the
/// agent goes on recording in the live file.
fn reopen_if_needed(store: &mut Store, error: &StoreError) {
    if !error.needs_reopen() {
        return;
    }
    match store.reopen() {
        Ok((fresh, report)) => {
            tracing::warn!(
                quarantined = report.quarantined.is_some(),
                epoch = %fresh.epoch(),
                "the store was reopened"
            );
            *store = fresh;
        }
        Err(e) => tracing::error!(error = %e, "cannot reopen the store; trying again later"),
    }
}

async fn run_collector(mut collector: Box<dyn Collector>, out: mpsc::Sender<Observation>) {
    loop {
        for observation in collector.collect().await {
            if out.send(observation).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(collector.interval()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::collect::CollectFuture;
    use chrono::TimeZone;
    use jejak_domain::{LibraryCode, PatronProfile, PcCode, RecordBody};

    /// Reports the probe's verdicts in turn, then nothing more.
    struct ScriptedLink(Vec<LinkState>);

    impl Collector for ScriptedLink {
        fn name(&self) -> &'static str {
            "scripted_link"
        }
        fn interval(&self) -> Duration {
            Duration::from_secs(60)
        }
        fn collect(&mut self) -> CollectFuture<'_> {
            Box::pin(async move {
                if self.0.is_empty() {
                    Vec::new()
                } else {
                    vec![Observation::Link(self.0.remove(0))]
                }
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_agent_heartbeats_records_link_changes_and_closes_the_session_at_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(chrono::Utc.with_ymd_and_hms(2031, 1, 5, 1, 0, 0).unwrap());
        let identity = DeviceIdentity {
            library: LibraryCode::parse("pesawahan").unwrap(),
            pc: PcCode::parse("pc-02").unwrap(),
        };
        let (mut store, _) = Store::open(
            &dir.path().join("jejak.db"),
            identity,
            Arc::new(clock.clone()),
        )
        .unwrap();
        let session = store
            .start_session(PatronProfile::default(), None)
            .unwrap()
            .session;
        let settings = AgentSettings {
            heartbeat: Duration::from_secs(30),
            heartbeat_event_every: 2,
            crash_grace: Duration::from_secs(90),
            sync_interval: Duration::from_secs(300),
            prune: None,
        };
        let shutdown = tokio::time::sleep(Duration::from_secs(30 * 5 + 1));
        let summary = run(
            store,
            settings,
            vec![Box::new(ScriptedLink(vec![
                LinkState::Up,
                LinkState::ServerUnavailable,
                LinkState::Down,
            ]))],
            None,
            shutdown,
        )
        .await
        .unwrap();
        assert!(matches!(summary.recovery, Some(Recovery::Continued(_))));
        assert_eq!(summary.heartbeats, 6, "ticks at 0, 30, 60, 90, 120, 150 s");
        assert_eq!(summary.ended_at_shutdown, Some(session.id));

        let (store, _) = Store::open(
            &dir.path().join("jejak.db"),
            DeviceIdentity {
                library: LibraryCode::parse("pesawahan").unwrap(),
                pc: PcCode::parse("pc-02").unwrap(),
            },
            Arc::new(clock),
        )
        .unwrap();
        let kinds: Vec<String> = store
            .changes_after(0, 100)
            .unwrap()
            .into_iter()
            .map(|c| match c.body {
                RecordBody::PcEvent(e) => e.kind.code().to_string(),
                RecordBody::Session(s) => format!(
                    "session:{}",
                    s.end_reason.map(|r| r.code()).unwrap_or("open")
                ),
                other => other.kind_code().to_string(),
            })
            .collect();
        assert_eq!(
            kinds.iter().filter(|k| *k == "heartbeat").count(),
            3,
            "every second heartbeat: {kinds:?}"
        );
        // Up, then a server that answers but cannot store (the internet works: no
        // event), then no answer at all.
        let link_events: Vec<&str> = kinds
            .iter()
            .map(String::as_str)
            .filter(|k| k.starts_with("internet_"))
            .collect();
        assert_eq!(link_events, ["internet_up", "internet_down"], "{kinds:?}");
        assert_eq!(kinds.last().map(String::as_str), Some("shutdown"));
        assert_eq!(kinds[kinds.len() - 2], "session:shutdown");
    }

    /// Counts how often the agent asked for a sync.
    struct CountingSync(Arc<std::sync::atomic::AtomicU32>);

    impl BackgroundSync for CountingSync {
        fn sync(&mut self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
            Box::pin(async move {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(5)).await;
            })
        }
    }

    async fn syncs_with_link(link: Vec<LinkState>) -> u32 {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(chrono::Utc.with_ymd_and_hms(2031, 1, 5, 1, 0, 0).unwrap());
        let identity = DeviceIdentity {
            library: LibraryCode::parse("rempoah").unwrap(),
            pc: PcCode::parse("pc-01").unwrap(),
        };
        let (store, _) =
            Store::open(&dir.path().join("jejak.db"), identity, Arc::new(clock)).unwrap();
        let settings = AgentSettings {
            heartbeat: Duration::from_secs(30),
            heartbeat_event_every: 10,
            crash_grace: Duration::from_secs(90),
            sync_interval: Duration::from_secs(100),
            prune: None,
        };
        let count = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let sync = CountingSync(count.clone());
        let summary = run(
            store,
            settings,
            vec![Box::new(ScriptedLink(link))],
            Some(Box::new(sync)),
            tokio::time::sleep(Duration::from_secs(350)),
        )
        .await
        .unwrap();
        assert_eq!(
            u64::from(count.load(std::sync::atomic::Ordering::SeqCst)),
            summary.syncs_started
        );
        count.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Moves the manual clock by `gap` (wall and monotonic) at its second look: the PC
    /// slept that long while the agent was frozen.
    struct Sleeper {
        clock: ManualClock,
        looks: u32,
        gap: Duration,
    }

    impl Collector for Sleeper {
        fn name(&self) -> &'static str {
            "sleeper"
        }
        fn interval(&self) -> Duration {
            Duration::from_secs(100)
        }
        fn collect(&mut self) -> CollectFuture<'_> {
            Box::pin(async move {
                self.looks += 1;
                if self.looks == 2 {
                    self.clock.advance(self.gap);
                } else {
                    self.clock.advance(self.interval());
                }
                Vec::new()
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_open_when_the_pc_slept_ends_as_idle_at_its_last_heartbeat() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(chrono::Utc.with_ymd_and_hms(2031, 1, 5, 1, 0, 0).unwrap());
        let identity = DeviceIdentity {
            library: LibraryCode::parse("adisara").unwrap(),
            pc: PcCode::parse("pc-01").unwrap(),
        };
        let path = dir.path().join("jejak.db");
        let (mut store, _) = Store::open(&path, identity.clone(), Arc::new(clock.clone())).unwrap();
        let session = store
            .start_session(PatronProfile::default(), None)
            .unwrap()
            .session;
        let settings = AgentSettings {
            heartbeat: Duration::from_secs(30),
            heartbeat_event_every: 100,
            crash_grace: Duration::from_secs(90),
            sync_interval: Duration::from_secs(3600),
            prune: None,
        };
        let sleeper = Sleeper {
            clock: clock.clone(),
            looks: 0,
            gap: Duration::from_secs(3 * 3600),
        };
        let summary = run(
            store,
            settings,
            vec![Box::new(sleeper)],
            None,
            tokio::time::sleep(Duration::from_secs(150)),
        )
        .await
        .unwrap();
        assert_eq!(
            summary.ended_at_shutdown, None,
            "the sleep ended it, not the stop"
        );
        let (store, _) = Store::open(&path, identity, Arc::new(clock)).unwrap();
        let ended = store.recent_sessions(5).unwrap();
        assert_eq!(ended.len(), 1);
        let ended = &ended[0];
        assert_eq!(ended.id, session.id);
        assert_eq!(ended.end_reason, Some(EndReason::Idle));
        assert!(
            ended.duration_secs < 3600,
            "the three hours asleep are not use: {} s",
            ended.duration_secs
        );
        assert_eq!(ended.time_quality, jejak_domain::TimeQuality::Estimated);
    }

    #[tokio::test(start_paused = true)]
    async fn the_agent_syncs_on_its_schedule_whatever_the_probe_says() {
        // Link up at once: a sync at start (tick or link-up, whichever is first), then at
        // 100, 200 and 300 s; never two at a time.
        let up = syncs_with_link(vec![LinkState::Up]).await;
        assert!((3..=5).contains(&up), "{up} syncs with the link up");
        // A probe that says down (or a server that cannot store) does not stop the
        // schedule: a sync is tried at 100, 200 and 300 s all the same, so a probe that
        // is wrong, or a store outage that ended, cannot stop syncing for good.
        for verdict in [LinkState::Down, LinkState::ServerUnavailable] {
            assert_eq!(
                syncs_with_link(vec![verdict]).await,
                3,
                "syncs tried on schedule after {verdict:?}"
            );
        }
    }
}
