//! A fault-injecting TCP proxy for Jejak's end-to-end tests, the demo and the benchmark.
//!
//! It sits between the village PC's sync client and the district server on loopback and
//! plays a bad village link: added latency, a bandwidth cap, connections dropped at random
//! points, a link that is down, a server that never answers, resets after N bytes, and the
//! case that matters most for idempotent sync, the **lost acknowledgement**: the server
//! receives and commits a batch and answers, and the client never hears it
//! (reliability plan B2 #12). `tc netem` is not available on the build machines, so the
//! delay and the lost acknowledgement have to come from userspace (research a6).
//!
//! ```no_run
//! # async fn demo(server: std::net::SocketAddr) -> std::io::Result<()> {
//! use jejak_faultproxy::{FaultProxy, Faults};
//! use std::time::Duration;
//!
//! let proxy = FaultProxy::start(server, Faults::slow_link(8000, Duration::from_millis(300))).await?;
//! let url = format!("http://{}/", proxy.local_addr()); // point the sync client here
//! // … sync over a 64 kbit/s link …
//! proxy.set_faults(Faults::lost_response()); // the next answer never arrives
//! // … the client must retry and the server must deduplicate …
//! println!("{:?}", proxy.stats());
//! proxy.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! The proxy never panics on network errors: it logs them with `tracing` at debug level
//! and carries on. It only ever connects to the one upstream address it was given.

mod faults;
mod http;
mod proxy;

pub use faults::{Direction, Faults, ResetAfter};
pub use proxy::{Captured, FaultProxy, ProxyStats};
