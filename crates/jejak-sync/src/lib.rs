//! The village PC's side of the sync: it reads the change log from the last
//! acknowledged seq, sends compressed batches sized for slow links, and marks records
//! synced only on a well-formed answer that echoes the batch id.
//!
//! - [`batching`]: change log → wire batch (newest revision per session only) → zstd.
//! - [`client`]: the HTTP exchanges (time probe, batch push) and how answers are read.
//! - [`backoff`]: exponential back-off with full jitter, capped.
//! - [`sync_run`]: one sync run: probe the clock, push batches until nothing is left.
//! - [`agent`]: the agent's background sync.
//! - [`bundle`]: USB bundles and their acknowledgement files, for offices without a link.
//! - [`signing`]: the PC's Ed25519 key that signs its bundles, and its registration.

pub mod agent;
pub mod backoff;
pub mod batching;
pub mod bundle;
pub mod client;
pub mod signing;
pub mod sync_run;
pub mod tls;

pub use client::{PushError, SyncClient};
pub use sync_run::{Progress, SyncError, SyncOptions, SyncReport, sync_once};
pub use tls::{ServerTrust, TrustError};
