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
use jejak_sync::agent::AgentSync;
use jejak_sync::SyncOptions;

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
    if let Some(server) = &config.server {
        collectors.push(Box::new(
            match crate::sync_cmd::probe_client(&config, server)? {
                Some(client) => {
                    ConnectivityProbe::with_client(server, config.probe_interval(), client)
                }
                None => ConnectivityProbe::new(
                    server,
                    config.probe_interval(),
                    config.probe_timeout(),
                )?,
            },
        ));
    }
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

/// The agent's own sync, when this PC is enrolled (a server and a token).
fn background_sync(
    ctx: &Context,
    config: &AgentConfig,
    identity: jejak_domain::DeviceIdentity,
) -> anyhow::Result<Option<Box<dyn daemon::BackgroundSync>>> {
    let (Some(server), Some(token)) = (&config.server, load_token(&ctx.data_dir)?) else {
        tracing::info!("not enrolled with a server: recording only, no sync");
        return Ok(None);
    };
    let (backoff_base, backoff_cap) = config.sync_backoff();
    Ok(Some(Box::new(AgentSync {
        store_path: ctx.data_dir.join(STORE_FILE),
        identity,
        clock: Arc::new(SystemClock::new()),
        client: crate::sync_cmd::sync_client(config, server, &token)?,
        options: SyncOptions {
            max_records: config.sync_batch_records,
            backoff_base,
            backoff_cap,
            max_attempts: None,
            dry_run: false,
        },
    })))
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
