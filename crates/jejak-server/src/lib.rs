//! Jejak's district server: the HTTP API that village PCs sync to, over a storage trait
//! with an embedded SQLite implementation.
//!
//! - [`store`]: the [`ServerStore`] trait, its values, errors and tokens.
//! - [`SqliteStore`]: the embedded backend (one writer thread, group commit, WAL+FULL).
//! - [`PostgresStore`]: the PostgreSQL backend for a province or a country (sessions
//!   partitioned by month, every table keyed by library).
//! - [`router`] and [`run`]: the axum application and its serving loop.
//! - [`bundle_import`]: `jejak server import`, a PC's USB bundle through the same ingest.
//!
//! Invariants this crate keeps (see the brief, section 4): a batch is answered only
//! after its transaction commits; ingest is idempotent forever (record keys never
//! expire); identity comes from the token, never the payload; a rejected record is
//! stored and reported and never blocks the rest; raw client times are kept beside the
//! corrected ones.

#![warn(missing_docs)]

// Public so that the ingest benchmark's bare-rusqlite baseline (in `jejak-testkit`) stores
// the same small integers the server does.
pub mod bundle_import;
pub mod codes;
mod dashboard;
mod dating;
#[cfg(test)]
mod dating_props;
mod entries;
pub mod http;
mod ingest;
pub mod metrics;
pub mod postgres;
mod recount;
pub mod report;
mod rollup;
#[cfg(test)]
mod rollup_tests;
mod sqlite;
pub mod store;
#[cfg(test)]
mod test_backend;

pub use http::{
    AppState, DashboardSettings, Limits, ServerConfig, Serving, decode_carried_batch,
    inflate_carried, router, run, run_tls,
};
pub use ingest::{REJECT_CONFLICT, REJECT_INVALID};
pub use postgres::{PostgresOptions, PostgresStore};
pub use sqlite::backup;
pub use sqlite::backup::{BackupError, BackupInfo, RestoreOutcome};
pub use sqlite::{SqliteOptions, SqliteStore};
pub use store::{
    AuthError, Delivery, DeviceId, DeviceInfo, DeviceKeys, DeviceRef, DeviceState, DeviceToken,
    EnrollError, EpochState, IngestError, KeyRegistration, LibraryInfo, Principal, PruneOutcome,
    RollupCheck, ServerClock, ServerStore, StaffToken, StoreError, StoredEvent, StoredSession,
    system_clock, token_hash,
};
