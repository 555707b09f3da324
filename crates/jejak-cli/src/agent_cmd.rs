//! `jejak agent`: the background agent's wiring — the store, the collectors (interface
//! counters, the link probe, the seat), the background sync, the check-in page — in one
//! [`run_agent`] that every entry point calls: the console and the systemd unit through
//! [`agent`], the Windows service through `windows_service`.

use std::future::Future;
use std::sync::Arc;

use jejak_agent::clock::{Clock, SystemClock};
use jejak_agent::collect::{Collector, ConnectivityProbe, NetCounterCollector};
use jejak_agent::config::{AgentConfig, STORE_FILE, load_token};
use jejak_agent::daemon::{self, AgentSettings};
use jejak_agent::login::LoginCollector;
use jejak_agent::platform;
use jejak_sync::SyncOptions;
use jejak_sync::agent::AgentSync;

use crate::context::Context;

/// Runs the agent in the foreground until SIGTERM or SIGINT (Ctrl-C on Windows), or,
/// with `service`, as the Windows service.
pub fn agent(ctx: &Context, service: bool) -> anyhow::Result<()> {
    if service {
        #[cfg(windows)]
        return crate::windows_service::run(ctx.clone());
        #[cfg(not(windows))]
        return Err(crate::errors::UsageError::new(
            "--service hanya untuk layanan Windows; di Linux agen berjalan sebagai unit systemd (scripts/install-linux.sh)",
            "--service is for the Windows service only; on Linux the agent runs as a systemd unit (scripts/install-linux.sh)",
        )
        .into());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // Installed before anything else, so that a SIGTERM during start-up (while the
        // store opens or recovers) is a clean stop and not the default kill.
        let shutdown = shutdown_signal()?;
        run_agent(ctx, shutdown).await
    })
}

/// The agent from its start to its stop: waits for the store, records, syncs and serves
/// the check-in page until `shutdown` completes, then closes the open session as
/// `shutdown`. Returns early (and cleanly) if `shutdown` comes while the store is still
/// being waited for.
pub async fn run_agent(
    ctx: &Context,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let config = ctx.config()?;
    let identity = config.identity(&ctx.data_dir)?;
    let mut shutdown = Box::pin(shutdown);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let Some(store) = daemon::open_store_patiently(
        &ctx.data_dir.join(STORE_FILE),
        identity.clone(),
        clock,
        &mut shutdown,
    )
    .await
    else {
        return Ok(());
    };
    let mut collectors: Vec<Box<dyn Collector>> = vec![Box::new(NetCounterCollector::new(
        config.net_dev_path.clone(),
        config.heartbeat_interval(),
    ))];
    // The probe and the sync read the enrolment again each time, so that `jejak enroll`
    // (or a new token or server URL) takes effect without restarting the agent.
    collectors.push(Box::new(EnrolledProbe {
        ctx: ctx.clone(),
        interval: config.probe_interval(),
        current: None,
    }));
    if config.login_watch {
        collectors.push(Box::new(LoginCollector::new(
            platform::system_login_source(),
            config.idle_end(),
            config.heartbeat_interval(),
        )));
    }
    tracing::info!(device = %identity, epoch = %store.epoch(), system = platform::SYSTEM_NAME, "agent started");
    let settings = AgentSettings {
        heartbeat: config.heartbeat_interval(),
        heartbeat_event_every: config.heartbeat_event_every,
        crash_grace: config.crash_grace(),
        sync_interval: config.sync_interval(),
        prune: Some(config.prune_policy()),
    };
    let background_sync = background_sync(ctx, &config, identity.clone())?;
    // The check-in page stops before the daemon closes the open session at shutdown, so
    // no session can start after that.
    let checkin = crate::checkin_cmd::start(ctx, &config, &store).await;
    let shutdown = async move {
        shutdown.await;
        if let Some(page) = checkin {
            page.stop().await;
        }
    };
    daemon::run(store, settings, collectors, background_sync, shutdown).await?;
    Ok(())
}

/// The agent's own sync. It is there from the start, enrolled or not: it reads the
/// enrolment before every run (see [`EnrolledSync`]).
fn background_sync(
    ctx: &Context,
    _config: &AgentConfig,
    identity: jejak_domain::DeviceIdentity,
) -> anyhow::Result<Option<Box<dyn daemon::BackgroundSync>>> {
    Ok(Some(Box::new(EnrolledSync {
        ctx: ctx.clone(),
        identity,
        current: None,
    })))
}

/// This PC's enrolment as it stands now: its configuration, server URL and token, or
/// `None` while it is not enrolled. Read from agent.toml and the token file each time
/// (two small files), so that the agent, the check-in page and `jejak doctor` all go by
/// what `jejak enroll` last wrote.
pub fn current_enrolment(ctx: &Context) -> anyhow::Result<Option<(AgentConfig, String, String)>> {
    let config = ctx.config()?;
    let token = load_token(&ctx.data_dir)?;
    Ok(match (config.server.clone(), token) {
        (Some(server), Some(token)) => Some((config, server, token)),
        _ => None,
    })
}

/// The agent's sync over the enrolment as it stands at each run: not enrolled, it only
/// records; enrolled (or enrolled again, with a new token, server URL or server key),
/// it syncs with that from the next run on, without a restart.
#[derive(Debug)]
struct EnrolledSync {
    ctx: Context,
    identity: jejak_domain::DeviceIdentity,
    /// The enrolment the current sync was built for, and that sync.
    current: Option<(AgentConfig, String, AgentSync)>,
}

impl EnrolledSync {
    fn refresh(&mut self) -> anyhow::Result<Option<&mut AgentSync>> {
        let Some((config, server, token)) = current_enrolment(&self.ctx)? else {
            if self.current.take().is_some() {
                tracing::warn!("no longer enrolled: recording only, no sync");
            }
            return Ok(None);
        };
        let unchanged = self
            .current
            .as_ref()
            .is_some_and(|(c, t, _)| *c == config && *t == token);
        if !unchanged {
            let (backoff_base, backoff_cap) = config.sync_backoff();
            let sync = AgentSync {
                store_path: self.ctx.data_dir.join(STORE_FILE),
                identity: self.identity.clone(),
                clock: Arc::new(SystemClock::new()),
                client: crate::sync_cmd::sync_client(&config, &server, &token)?
                    .with_signing_key(&self.ctx.data_dir)?,
                options: SyncOptions {
                    max_records: config.sync_batch_records,
                    backoff_base,
                    backoff_cap,
                    max_attempts: None,
                    dry_run: false,
                },
            };
            tracing::info!(server = %server, "enrolment read: syncing with this server");
            self.current = Some((config, token, sync));
        }
        Ok(self.current.as_mut().map(|(_, _, sync)| sync))
    }
}

impl daemon::BackgroundSync for EnrolledSync {
    fn sync(&mut self) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            match self.refresh() {
                Ok(Some(sync)) => sync.sync().await,
                Ok(None) => tracing::debug!("not enrolled with a server: recording only"),
                Err(e) => tracing::warn!(
                    error = %e,
                    "the enrolment cannot be read; the next sync reads it again"
                ),
            }
        })
    }
}

/// The link probe over the enrolment as it stands: no server, no probe (and no
/// verdict); a new server URL or key is probed from the next round on.
struct EnrolledProbe {
    ctx: Context,
    interval: std::time::Duration,
    /// The enrolment the probe was built for, and that probe.
    current: Option<(AgentConfig, ConnectivityProbe)>,
}

impl EnrolledProbe {
    fn refresh(&mut self) -> anyhow::Result<Option<&ConnectivityProbe>> {
        let config = self.ctx.config()?;
        let Some(server) = config.server.clone() else {
            self.current = None;
            return Ok(None);
        };
        if !self.current.as_ref().is_some_and(|(c, _)| *c == config) {
            let probe = match crate::sync_cmd::probe_client(&config, &server)? {
                Some(client) => ConnectivityProbe::with_client(&server, self.interval, client),
                None => ConnectivityProbe::new(&server, self.interval, config.probe_timeout())?,
            };
            self.current = Some((config, probe));
        }
        Ok(self.current.as_ref().map(|(_, probe)| probe))
    }
}

impl Collector for EnrolledProbe {
    fn name(&self) -> &'static str {
        "connectivity_probe"
    }

    fn interval(&self) -> std::time::Duration {
        self.interval
    }

    fn collect(&mut self) -> jejak_agent::collect::CollectFuture<'_> {
        Box::pin(async move {
            match self.refresh() {
                Ok(Some(probe)) => {
                    vec![jejak_agent::collect::Observation::Link(probe.probe().await)]
                }
                Ok(None) => Vec::new(),
                Err(e) => {
                    tracing::warn!(error = %e, "the configuration cannot be read; probing later");
                    Vec::new()
                }
            }
        })
    }
}

/// Completes at SIGTERM (service stop, system shutdown) or SIGINT (Ctrl-C). The
/// handlers are installed when this is called, not when the future is first polled.
#[cfg(unix)]
pub fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}

/// Completes at Ctrl-C, Ctrl-Break, the console window's closing, logoff or system
/// shutdown (for the agent run in a console; the service stops through the service
/// control manager instead).
#[cfg(windows)]
pub fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::windows;
    let mut ctrl_c = windows::ctrl_c()?;
    let mut ctrl_break = windows::ctrl_break()?;
    let mut close = windows::ctrl_close()?;
    let mut logoff = windows::ctrl_logoff()?;
    let mut shutdown = windows::ctrl_shutdown()?;
    Ok(async move {
        tokio::select! {
            _ = ctrl_c.recv() => {}
            _ = ctrl_break.recv() => {}
            _ = close.recv() => {}
            _ = logoff.recv() => {}
            _ = shutdown.recv() => {}
        }
    })
}
