//! What Jejak's tests and benchmark programs share, so that each exists once.
//!
//! - [`sim`]: simulated village PCs, their sessions and the batches they send, and PCs
//!   whose clocks lie.
//! - [`bench`]: what only the benchmark programs need (an enrolled district, bytes per
//!   session on disk, the bare-rusqlite baseline).
//! - [`server`]: the district server's HTTP layer in this process, with a movable clock.
//! - [`postgres`]: PostgreSQL test databases (`JEJAK_TEST_POSTGRES`).
//! - [`process`]: child processes that are never left behind, and `jejak server run` as
//!   one.
//! - [`browser`]: headless Chromium through chromedriver.
//!
//! A dev-dependency only: the server library ships no fixtures. This is test code: it
//! panics on what a test cannot go on without, and every panic names what was being set
//! up.

pub mod bench;
pub mod browser;
pub mod postgres;
pub mod process;
pub mod server;
pub mod sim;
