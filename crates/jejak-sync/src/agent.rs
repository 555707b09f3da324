//! The agent's background sync: the same `sync_once` as `jejak sync`, retrying
//! forever, on its own store connection.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use jejak_agent::clock::Clock;
use jejak_agent::daemon::BackgroundSync;
use jejak_agent::store::Store;
use jejak_domain::DeviceIdentity;

use crate::client::SyncClient;
use crate::sync_run::{SyncError, SyncOptions, sync_once};

#[derive(Debug)]
pub struct AgentSync {
    pub store_path: PathBuf,
    pub identity: DeviceIdentity,
    pub clock: Arc<dyn Clock>,
    pub client: SyncClient,
    pub options: SyncOptions,
}

impl BackgroundSync for AgentSync {
    fn sync(&mut self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            let mut store =
                match Store::open(&self.store_path, self.identity.clone(), self.clock.clone()) {
                    Ok((store, _)) => store,
                    Err(e) => {
                        tracing::error!(error = %e, "background sync cannot open the store");
                        return;
                    }
                };
            match sync_once(&mut store, &self.client, &self.options, &mut |_| {}).await {
                Ok(report) if report.nothing_to_send => tracing::debug!("nothing to sync"),
                Ok(report) => tracing::info!(
                    batches = report.batches,
                    records = report.records_sent,
                    bytes = report.bytes_sent,
                    held_seq = report.held_seq,
                    rejected = report.rejected.len(),
                    "background sync done"
                ),
                Err(SyncError::Unauthorized { revoked, .. }) => tracing::error!(
                    revoked,
                    "the server refused this PC's token; data is kept; enroll again with 'jejak enroll'"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "background sync stopped; data is kept and sent later")
                }
            }
        })
    }
}
