//! The patron check-in page as `jejak agent` runs it: bound on 127.0.0.1 at
//! `checkin_port`, over its own store connection, with the librarian's "Sync now" wired
//! to the same `sync_once` and the same messages as `jejak sync`.

use std::sync::Arc;

use jejak_agent::checkin::{
    self, Checkin, CheckinHandle, CheckinSettings, SyncFuture, SyncNow, SyncOutcome,
};
use jejak_agent::clock::SystemClock;
use jejak_agent::config::{AgentConfig, STORE_FILE};
use jejak_agent::store::Store;
use jejak_domain::{DeviceIdentity, Lang};
use jejak_sync::{SyncError, sync_once};

use crate::context::Context;
use crate::errors::explain;
use crate::sync_cmd::{NOTHING_WAITING, manual_sync_options, report_text, sync_error_text};

/// Attempts per exchange of a "Sync now", as `jejak sync` makes by default.
const SYNC_NOW_ATTEMPTS: u32 = 5;

/// Starts the check-in page, unless `checkin_port = 0`. A page that cannot start (the
/// port is taken) is logged and left out: the agent's recording matters more.
pub async fn start(ctx: &Context, config: &AgentConfig, store: &Store) -> Option<CheckinHandle> {
    if config.checkin_port == 0 {
        tracing::info!("check-in page turned off (checkin_port = 0)");
        return None;
    }
    let listener = match checkin::bind(config.checkin_port).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(port = config.checkin_port, error = %e,
                "the check-in page cannot listen; the agent goes on recording without it");
            return None;
        }
    };
    let port = listener
        .local_addr()
        .map(|a| a.port())
        .unwrap_or(config.checkin_port);
    let page_store = match store.reopen() {
        Ok((page_store, _)) => page_store,
        Err(e) => {
            tracing::error!(error = %e, "the check-in page cannot open the store; it stays off");
            return None;
        }
    };
    let sync = match page_sync(ctx, config, store.identity().clone()) {
        Ok(sync) => sync,
        Err(e) => {
            tracing::warn!(error = %e, "the check-in page's Sync now is off");
            None
        }
    };
    let settings = CheckinSettings {
        port,
        data_dir: ctx.data_dir.clone(),
        zone: config.zone(),
        lang: config.lang(),
        net_dev_path: config.net_dev_path.clone(),
    };
    tracing::info!(url = %format!("http://127.0.0.1:{port}/"), "check-in page ready");
    Some(checkin::spawn(
        listener,
        Checkin::new(page_store, settings, sync),
    ))
}

/// The "Sync now" of the librarian screen. It reads the enrolment at each use, as the
/// agent's own sync does, so that an enrolment made while the agent runs is used (and
/// shown) without a restart.
fn page_sync(
    ctx: &Context,
    _config: &AgentConfig,
    identity: DeviceIdentity,
) -> anyhow::Result<Option<Arc<dyn SyncNow>>> {
    Ok(Some(Arc::new(PageSync(Arc::new(PageSyncInner {
        ctx: ctx.clone(),
        identity,
    })))))
}

#[derive(Debug)]
struct PageSync(Arc<PageSyncInner>);

#[derive(Debug)]
struct PageSyncInner {
    ctx: Context,
    identity: DeviceIdentity,
}

impl SyncNow for PageSync {
    fn sync_now(&self) -> SyncFuture {
        let inner = self.0.clone();
        Box::pin(async move { inner.run().await })
    }

    fn enrolled(&self) -> bool {
        matches!(
            crate::agent_cmd::current_enrolment(&self.0.ctx),
            Ok(Some(_))
        )
    }
}

impl PageSyncInner {
    /// One sync on its own store connection, as `jejak sync` runs it.
    async fn run(&self) -> SyncOutcome {
        let failed = |id: String, en: String| SyncOutcome { ok: false, id, en };
        let (config, server, token) = match crate::agent_cmd::current_enrolment(&self.ctx) {
            Ok(Some(enrolment)) => enrolment,
            Ok(None) => {
                return failed(
                    "Komputer ini belum terdaftar di server kabupaten (jejak enroll).".into(),
                    "This PC is not enrolled with the district server (jejak enroll).".into(),
                );
            }
            Err(e) => return failed(explain(&e, Lang::Id).0, explain(&e, Lang::En).0),
        };
        let client = match crate::sync_cmd::sync_client(&config, &server, &token)
            .and_then(|client| Ok(client.with_signing_key(&self.ctx.data_dir)?))
        {
            Ok(client) => client,
            Err(e) => return failed(explain(&e, Lang::Id).0, explain(&e, Lang::En).0),
        };
        let options = manual_sync_options(&config, SYNC_NOW_ATTEMPTS, false);
        let opened = Store::open(
            &self.ctx.data_dir.join(STORE_FILE),
            self.identity.clone(),
            Arc::new(SystemClock::new()),
        );
        let mut store = match opened {
            Ok((store, _)) => store,
            Err(e) => return failed(e.message(Lang::Id), e.message(Lang::En)),
        };
        match sync_once(&mut store, &client, &options, &mut |_| {}).await {
            Ok(report) if report.nothing_to_send => SyncOutcome {
                ok: true,
                id: NOTHING_WAITING.0.into(),
                en: NOTHING_WAITING.1.into(),
            },
            Ok(report) => SyncOutcome {
                ok: true,
                id: report_text(&report, Lang::Id, false).trim().to_string(),
                en: report_text(&report, Lang::En, false).trim().to_string(),
            },
            Err(SyncError::Store(e)) => failed(e.message(Lang::Id), e.message(Lang::En)),
            Err(e) => {
                // The screen tells the librarian what happened and what to do; the
                // technical detail is for the log.
                tracing::warn!(error = %e, "Sync now did not finish; the data is kept");
                match sync_error_text(&e) {
                    Some((id, en, _)) => failed(id, en),
                    None => failed(e.to_string(), e.to_string()),
                }
            }
        }
    }
}
