//! What the proxy does to the traffic it carries.

use std::time::Duration;

/// One way through the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the client (the village PC's sync client) to the upstream (the district server).
    ClientToUpstream,
    /// From the upstream back to the client.
    UpstreamToClient,
}

/// When [`Faults::reset_after`] resets the client connection: after exactly this many
/// bytes have been forwarded in the counted direction(s). Those bytes are delivered; the
/// next byte is not, and the client gets a TCP RST instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetAfter {
    /// Count bytes forwarded client → upstream: a request cut off mid-upload, so the server
    /// sees a truncated request and should commit nothing.
    ClientToUpstream(u64),
    /// Count bytes forwarded upstream → client: a response cut off mid-download, after the
    /// server has already done its work.
    UpstreamToClient(u64),
    /// Count bytes forwarded both ways together.
    Total(u64),
}

/// The faults a [`FaultProxy`](crate::FaultProxy) injects. Change them at run time with
/// [`FaultProxy::set_faults`](crate::FaultProxy::set_faults); each field says whether a
/// change reaches connections that are already open.
///
/// Build one from a constructor ([`Faults::pass`], [`Faults::slow_link`], …) and adjust it
/// with struct update syntax: `Faults { seed: 7, ..Faults::lossy(0.2) }`.
#[derive(Clone, Debug, PartialEq)]
pub struct Faults {
    /// Added one-way delay for every chunk, in both directions, so a round trip gains twice
    /// this. Chunks are delayed independently (pipelined, like a long wire), not one after
    /// another, so latency does not also cut throughput. Live: applies to chunks read after
    /// the change.
    pub latency: Duration,
    /// Token-bucket limit per direction per connection, in bytes per second (64 kbit/s is
    /// 8000 B/s). `None` or `Some(0)` means unlimited. Live: applies from the next slice of
    /// data written.
    pub bandwidth_bytes_per_s: Option<u64>,
    /// Chance (0.0–1.0) that a new connection is dropped: it is reset at a random point
    /// within its first [`drop_within_bytes`](Self::drop_within_bytes) bytes (both
    /// directions counted together). This is the "10–30 % loss" knob for whole exchanges;
    /// a connection chosen for dropping never ends cleanly: if either side finishes before
    /// the drop point, it is reset at that moment instead. Decided when the connection is
    /// accepted.
    pub drop_connection_chance: f64,
    /// The window for the random drop point of [`drop_connection_chance`](Self::drop_connection_chance).
    /// Keep it below the size of one exchange (request plus response) if every chosen
    /// connection should fail on its first exchange; with HTTP keep-alive a larger window
    /// lets some exchanges through and cuts a later one on the same connection.
    pub drop_within_bytes: u64,
    /// Link down: every new connection is accepted and reset at once (the client sees
    /// "connection reset" rather than "connection refused", since the port stays bound).
    /// Live: switching it on also resets every open connection.
    pub refuse: bool,
    /// Accept and read, but forward nothing either way, so the client must time out.
    /// Live: switching it on holds data on open connections too; switching it off releases
    /// what was held (like a network that holds packets and then delivers them).
    pub stall: bool,
    /// Reset (RST) the client connection after this many bytes. Decided when the connection
    /// is accepted; counts from the start of the connection.
    pub reset_after: Option<ResetAfter>,
    /// The lost acknowledgement: forward the request, read the upstream's whole answer
    /// (HTTP/1.1 framing: `Content-Length`, chunked, or until the upstream closes), then
    /// reset the client without sending any of it. The server has done the work; the client
    /// cannot know. Live: it is checked each time the client sends data, so it reaches
    /// pooled keep-alive connections too. For non-HTTP traffic the answer is everything the
    /// upstream sends until it closes.
    pub lose_response: bool,
    /// Seed for the random choices (which connections drop, and where), so a run can be
    /// repeated: the n-th accepted connection always makes the same choices for a seed.
    pub seed: u64,
}

/// The default drop window: 8 KiB, about one small sync batch and its acknowledgement.
const DEFAULT_DROP_WITHIN_BYTES: u64 = 8 * 1024;

impl Default for Faults {
    /// No faults: the same as [`Faults::pass`].
    fn default() -> Self {
        Faults {
            latency: Duration::ZERO,
            bandwidth_bytes_per_s: None,
            drop_connection_chance: 0.0,
            drop_within_bytes: DEFAULT_DROP_WITHIN_BYTES,
            refuse: false,
            stall: false,
            reset_after: None,
            lose_response: false,
            seed: 0,
        }
    }
}

impl Faults {
    /// No faults: forward everything as it comes.
    pub fn pass() -> Self {
        Faults::default()
    }

    /// A slow link: `bytes_per_s` each way and `latency` added one way per chunk.
    pub fn slow_link(bytes_per_s: u64, latency: Duration) -> Self {
        Faults {
            latency,
            bandwidth_bytes_per_s: Some(bytes_per_s),
            ..Faults::default()
        }
    }

    /// A village 2G/EDGE link as the reliability plan describes it (B2 #15): 32 kbit/s
    /// (4000 B/s) each way, 250 ms one way (500 ms round trip) and 10 % of connections
    /// dropped mid-transfer.
    pub fn village_2g(seed: u64) -> Self {
        Faults {
            drop_connection_chance: 0.1,
            seed,
            ..Faults::slow_link(4000, Duration::from_millis(250))
        }
    }

    /// Drop this share (0.0–1.0) of new connections at a random point (see
    /// [`Faults::drop_connection_chance`]).
    pub fn lossy(drop_connection_chance: f64) -> Self {
        Faults {
            drop_connection_chance,
            ..Faults::default()
        }
    }

    /// The link is down: reset every connection (see [`Faults::refuse`]).
    pub fn link_down() -> Self {
        Faults {
            refuse: true,
            ..Faults::default()
        }
    }

    /// Accept but never answer (see [`Faults::stall`]).
    pub fn stalled() -> Self {
        Faults {
            stall: true,
            ..Faults::default()
        }
    }

    /// Reset each connection after some bytes (see [`ResetAfter`]).
    pub fn reset_after(after: ResetAfter) -> Self {
        Faults {
            reset_after: Some(after),
            ..Faults::default()
        }
    }

    /// Lose every response after the upstream has sent it (see [`Faults::lose_response`]).
    pub fn lost_response() -> Self {
        Faults {
            lose_response: true,
            ..Faults::default()
        }
    }
}
