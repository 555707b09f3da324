//! The proxy itself: an accept loop, and per connection two pumps (one per direction),
//! each a reader that timestamps chunks and a writer that delays, paces and cuts them.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tracing::debug;

use crate::faults::{Direction, Faults, ResetAfter};
use crate::http::{ResponseEnd, response_end};

/// Largest single read. Also the largest write when there is no bandwidth limit.
const CHUNK: usize = 16 * 1024;
/// Chunks a direction may have read but not yet written (latency in flight, or held by a
/// stall): bounds the proxy's memory per connection at about 2 × 8 × 16 KiB, after which
/// TCP backpressure reaches the sender, as a real bottleneck would.
const QUEUE_CHUNKS: usize = 8;
/// How long to wait for the upstream to accept. It is on loopback, so this only guards
/// against a wedged upstream; a stopped one refuses at once.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response the lost-acknowledgement fault buffers; beyond this it stops waiting
/// for the end and resets the client anyway, so a runaway upstream cannot exhaust memory.
const MAX_HELD_RESPONSE: usize = 64 * 1024 * 1024;
/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// Counters since the proxy started. Every fault that ends a connection is counted once,
/// under the fault that ended it, before the client sees the reset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Client connections accepted (including refused ones).
    pub connections_accepted: u64,
    /// Client connections open now.
    pub connections_active: u64,
    /// Bytes forwarded client → upstream.
    pub bytes_client_to_upstream: u64,
    /// Bytes forwarded upstream → client (a lost response's bytes are not forwarded).
    pub bytes_upstream_to_client: u64,
    /// Connections reset at accept because [`Faults::refuse`] was on.
    pub refused: u64,
    /// Open connections reset because [`Faults::refuse`] was switched on.
    pub link_down_cuts: u64,
    /// Connections reset by [`Faults::drop_connection_chance`].
    pub drops: u64,
    /// Connections reset by [`Faults::reset_after`].
    pub resets: u64,
    /// Responses read in full from the upstream and withheld, the client reset instead
    /// ([`Faults::lose_response`]).
    pub responses_lost: u64,
    /// Connections reset because the upstream could not be reached.
    pub upstream_connect_failures: u64,
}

/// The bytes read from one side of one connection while capturing was on, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Captured {
    /// The connection's number (in order of acceptance).
    pub conn: u64,
    pub direction: Direction,
    pub bytes: Vec<u8>,
}

/// A running fault proxy: a listener on loopback that forwards each connection to one
/// upstream address through the current [`Faults`].
///
/// Dropping it stops it too, but without waiting; prefer [`FaultProxy::shutdown`].
pub struct FaultProxy {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    /// Dropping or sending on it stops the accept loop.
    stop: Option<oneshot::Sender<()>>,
    accept_task: Option<JoinHandle<()>>,
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("local_addr", &self.local_addr)
            .field("upstream", &self.shared.upstream)
            .field("faults", &*self.shared.faults.borrow())
            .field("stats", &self.stats())
            .finish()
    }
}

impl FaultProxy {
    /// Binds `127.0.0.1:0` (a free port) and forwards every accepted connection to
    /// `upstream` through `faults`.
    pub async fn start(upstream: SocketAddr, faults: Faults) -> io::Result<FaultProxy> {
        FaultProxy::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), upstream, faults).await
    }

    /// Like [`FaultProxy::start`], but binds `listen` (for the demo, which wants a fixed
    /// port the client configuration can name).
    pub async fn start_on(
        listen: SocketAddr,
        upstream: SocketAddr,
        faults: Faults,
    ) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind(listen).await?;
        let local_addr = listener.local_addr()?;
        let (faults, _) = watch::channel(faults);
        let shared = Arc::new(Shared {
            upstream,
            faults,
            counters: Counters::default(),
            capture: std::sync::Mutex::new(None),
        });
        let (stop, stopped) = oneshot::channel();
        let accept_task = tokio::spawn(accept_loop(listener, Arc::clone(&shared), stopped));
        debug!(%local_addr, %upstream, "fault proxy started");
        Ok(FaultProxy {
            local_addr,
            shared,
            stop: Some(stop),
            accept_task: Some(accept_task),
        })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address every connection is forwarded to.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// Replaces the faults. New connections get all of them; open connections get the
    /// ones documented as live on [`Faults`] (latency, bandwidth, stall, refuse,
    /// lose_response), while the per-connection choices (drop, reset_after) stay as they
    /// were drawn at accept.
    pub fn set_faults(&self, faults: Faults) {
        debug!(?faults, "fault proxy: new faults");
        self.shared.faults.send_replace(faults);
    }

    /// The faults in force now.
    pub fn faults(&self) -> Faults {
        self.shared.faults.borrow().clone()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ProxyStats {
        self.shared.counters.snapshot()
    }

    /// Starts keeping a copy of every byte read from either side, for tests that must
    /// inspect what crossed the wire (memory grows with the traffic: tests only).
    pub fn start_capture(&self) {
        let mut capture = self
            .shared
            .capture
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        capture.get_or_insert_with(Vec::new);
    }

    /// What was captured since [`FaultProxy::start_capture`], per connection and
    /// direction.
    pub fn captured(&self) -> Vec<Captured> {
        let capture = self
            .shared
            .capture
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        capture.clone().unwrap_or_default()
    }

    /// Stops accepting, closes every open connection (both sides, with a normal close) and
    /// waits until they are gone. The port is free when this returns.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            // An error only means the accept loop has already ended.
            let _ = stop.send(());
        }
        if let Some(task) = self.accept_task.take()
            && let Err(e) = task.await
        {
            debug!(error = %e, "fault proxy: accept loop ended abnormally");
        }
        debug!(local_addr = %self.local_addr, "fault proxy stopped");
    }
}

/// State shared by the handle, the accept loop and the connections.
struct Shared {
    upstream: SocketAddr,
    /// The current faults; connections subscribe to see live changes.
    faults: watch::Sender<Faults>,
    counters: Counters,
    /// Bytes read, when capturing is on.
    capture: std::sync::Mutex<Option<Vec<Captured>>>,
}

impl Shared {
    fn record(&self, conn: u64, direction: Direction, data: &[u8]) {
        let mut capture = self.capture.lock().unwrap_or_else(|e| e.into_inner());
        let Some(captured) = capture.as_mut() else {
            return;
        };
        match captured
            .iter_mut()
            .rev()
            .find(|c| c.conn == conn && c.direction == direction)
        {
            Some(c) => c.bytes.extend_from_slice(data),
            None => captured.push(Captured {
                conn,
                direction,
                bytes: data.to_vec(),
            }),
        }
    }
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    active: AtomicU64,
    client_to_upstream: AtomicU64,
    upstream_to_client: AtomicU64,
    refused: AtomicU64,
    link_down_cuts: AtomicU64,
    drops: AtomicU64,
    resets: AtomicU64,
    responses_lost: AtomicU64,
    connect_failures: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> ProxyStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ProxyStats {
            connections_accepted: get(&self.accepted),
            connections_active: get(&self.active),
            bytes_client_to_upstream: get(&self.client_to_upstream),
            bytes_upstream_to_client: get(&self.upstream_to_client),
            refused: get(&self.refused),
            link_down_cuts: get(&self.link_down_cuts),
            drops: get(&self.drops),
            resets: get(&self.resets),
            responses_lost: get(&self.responses_lost),
            upstream_connect_failures: get(&self.connect_failures),
        }
    }

    fn bytes(&self, dir: Direction) -> &AtomicU64 {
        match dir {
            Direction::ClientToUpstream => &self.client_to_upstream,
            Direction::UpstreamToClient => &self.upstream_to_client,
        }
    }
}

/// Keeps `connections_active` right even when a connection task is aborted at shutdown.
struct ActiveGuard<'a>(&'a AtomicU64);

impl<'a> ActiveGuard<'a> {
    fn new(active: &'a AtomicU64) -> Self {
        active.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(active)
    }
}

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: oneshot::Receiver<()>) {
    // Connection tasks live in the set so that shutdown can abort and await them all.
    let mut connections = JoinSet::new();
    let mut next_id: u64 = 0;
    loop {
        tokio::select! {
            // Stop on a signal and also when the handle was dropped (the sender with it).
            _ = &mut stop => break,
            Some(joined) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = joined {
                    debug!(error = %e, "fault proxy: connection task failed");
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((client, peer)) => {
                    let id = next_id;
                    next_id += 1;
                    shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
                    let faults = shared.faults.borrow().clone();
                    if faults.refuse {
                        debug!(conn = id, %peer, "link down: resetting new connection");
                        shared.counters.refused.fetch_add(1, Ordering::Relaxed);
                        reset(client, id);
                        continue;
                    }
                    let plan = Plan::draw(&faults, id);
                    debug!(conn = id, %peer, ?plan, "accepted");
                    connections.spawn(handle_connection(client, id, plan, Arc::clone(&shared)));
                }
                Err(e) => {
                    debug!(error = %e, "fault proxy: accept failed");
                    sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    connections.shutdown().await;
}

/// The per-connection choices, drawn once at accept.
#[derive(Debug)]
struct Plan {
    /// Reset when this many bytes (both directions) have been forwarded.
    drop_at: Option<u64>,
    reset_after: Option<ResetAfter>,
}

impl Plan {
    fn draw(faults: &Faults, id: u64) -> Plan {
        // One generator per connection, from the seed and the connection's number, so the
        // choices do not depend on how connections interleave.
        let mut rng = StdRng::seed_from_u64(faults.seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let chance = faults.drop_connection_chance;
        let chance = if chance.is_nan() {
            0.0
        } else {
            chance.clamp(0.0, 1.0)
        };
        let drop_at = rng
            .random_bool(chance)
            .then(|| rng.random_range(0..faults.drop_within_bytes.max(1)));
        Plan {
            drop_at,
            reset_after: faults.reset_after,
        }
    }
}

/// Why a connection was cut on purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cut {
    Drop,
    Reset,
    LostResponse,
    LinkDown,
}

/// Per-connection state the two directions share (they run in one task, but the task must
/// be `Send`, hence atomics).
struct Conn {
    id: u64,
    plan: Plan,
    client_to_upstream: AtomicU64,
    upstream_to_client: AtomicU64,
    /// Set when the client sent data while `lose_response` was on: the upstream's next
    /// answer is withheld.
    lose_next_response: AtomicBool,
    /// That request was a HEAD (its response has no body).
    head_request: AtomicBool,
}

impl Conn {
    fn new(id: u64, plan: Plan) -> Conn {
        Conn {
            id,
            plan,
            client_to_upstream: AtomicU64::new(0),
            upstream_to_client: AtomicU64::new(0),
            lose_next_response: AtomicBool::new(false),
            head_request: AtomicBool::new(false),
        }
    }

    fn forwarded(&self, dir: Direction) -> &AtomicU64 {
        match dir {
            Direction::ClientToUpstream => &self.client_to_upstream,
            Direction::UpstreamToClient => &self.upstream_to_client,
        }
    }

    /// Claims up to `want` bytes for writing in `dir`, and says whether the connection must
    /// be cut once they are written (a limit is reached). Claiming before writing keeps the
    /// two directions from overshooting a shared limit while one of them waits on a write.
    fn claim(&self, dir: Direction, want: u64) -> (u64, Option<Cut>) {
        let this = self.forwarded(dir).load(Ordering::Relaxed);
        let total = self.client_to_upstream.load(Ordering::Relaxed)
            + self.upstream_to_client.load(Ordering::Relaxed);
        let mut allowed = want;
        let mut cut = None;
        let mut limit = |remaining: u64, why: Cut| {
            if remaining <= allowed {
                allowed = remaining;
                cut = Some(why);
            }
        };
        if let Some(at) = self.plan.drop_at {
            limit(at.saturating_sub(total), Cut::Drop);
        }
        match self.plan.reset_after {
            Some(ResetAfter::Total(n)) => limit(n.saturating_sub(total), Cut::Reset),
            Some(ResetAfter::ClientToUpstream(n)) if dir == Direction::ClientToUpstream => {
                limit(n.saturating_sub(this), Cut::Reset);
            }
            Some(ResetAfter::UpstreamToClient(n)) if dir == Direction::UpstreamToClient => {
                limit(n.saturating_sub(this), Cut::Reset);
            }
            _ => {}
        }
        self.forwarded(dir).fetch_add(allowed, Ordering::Relaxed);
        (allowed, cut)
    }

    /// A connection chosen for dropping has not reached its drop point yet.
    fn drop_pending(&self) -> bool {
        self.plan.drop_at.is_some()
    }
}

async fn handle_connection(client: TcpStream, id: u64, plan: Plan, shared: Arc<Shared>) {
    let _active = ActiveGuard::new(&shared.counters.active);
    let mut client = client;
    // Small writes (HTTP heads, acks) must not wait for Nagle: timings should be the
    // faults', not the kernel's.
    if let Err(e) = client.set_nodelay(true) {
        debug!(conn = id, error = %e, "set_nodelay on client failed");
    }
    let mut upstream = match timeout(CONNECT_TIMEOUT, TcpStream::connect(shared.upstream)).await {
        Ok(Ok(upstream)) => upstream,
        Ok(Err(e)) => {
            debug!(conn = id, error = %e, "upstream unreachable: resetting client");
            shared
                .counters
                .connect_failures
                .fetch_add(1, Ordering::Relaxed);
            reset(client, id);
            return;
        }
        Err(_) => {
            debug!(conn = id, "upstream connect timed out: resetting client");
            shared
                .counters
                .connect_failures
                .fetch_add(1, Ordering::Relaxed);
            reset(client, id);
            return;
        }
    };
    if let Err(e) = upstream.set_nodelay(true) {
        debug!(conn = id, error = %e, "set_nodelay on upstream failed");
    }
    let conn = Conn::new(id, plan);
    match relay(&mut client, &mut upstream, &conn, &shared).await {
        None => debug!(conn = id, "closed"),
        Some(cut) => {
            debug!(conn = id, ?cut, "cutting connection");
            let counter = match cut {
                Cut::Drop => &shared.counters.drops,
                Cut::Reset => &shared.counters.resets,
                Cut::LostResponse => &shared.counters.responses_lost,
                Cut::LinkDown => &shared.counters.link_down_cuts,
            };
            // Counted before the reset, so a client that saw the reset sees the count.
            counter.fetch_add(1, Ordering::Relaxed);
            reset(client, id);
            // The upstream gets a normal close: it did nothing wrong.
            drop(upstream);
        }
    }
}

/// Closes the client connection with a TCP RST rather than a FIN: SO_LINGER 0 makes
/// `close` abort the connection and discard anything unsent.
fn reset(client: TcpStream, id: u64) {
    if let Err(e) = client.set_zero_linger() {
        debug!(conn = id, error = %e, "SO_LINGER 0 failed: closing normally instead");
    }
    drop(client);
}

/// Carries both directions until both have finished (`None`), one fails (`None`: the
/// sockets are then closed normally), or a fault cuts the connection (`Some`).
async fn relay(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    conn: &Conn,
    shared: &Shared,
) -> Option<Cut> {
    let (client_read, client_write) = client.split();
    let (upstream_read, upstream_write) = upstream.split();
    let to_upstream = pump(
        Direction::ClientToUpstream,
        client_read,
        upstream_write,
        conn,
        shared,
    );
    let to_client = pump(
        Direction::UpstreamToClient,
        upstream_read,
        client_write,
        conn,
        shared,
    );
    let mut faults = shared.faults.subscribe();
    let link_down = async move { faults.wait_for(|f| f.refuse).await.is_ok() };
    tokio::pin!(to_upstream, to_client, link_down);
    let (mut to_upstream_done, mut to_client_done) = (false, false);
    loop {
        tokio::select! {
            end = &mut to_upstream, if !to_upstream_done => match end {
                PumpEnd::Finished => to_upstream_done = true,
                PumpEnd::Failed => return None,
                PumpEnd::Cut(cut) => return Some(cut),
            },
            end = &mut to_client, if !to_client_done => match end {
                PumpEnd::Finished => to_client_done = true,
                PumpEnd::Failed => return None,
                PumpEnd::Cut(cut) => return Some(cut),
            },
            // `false` only if the proxy is gone, and then everything is closing anyway.
            down = &mut link_down => return down.then_some(Cut::LinkDown),
        }
        if to_upstream_done && to_client_done {
            return None;
        }
    }
}

/// How one direction ended.
#[derive(Debug)]
enum PumpEnd {
    /// The source closed and everything was delivered; the close was passed on.
    Finished,
    /// An I/O error on either socket.
    Failed,
    /// A fault cut the connection.
    Cut(Cut),
}

/// Data read from the source, and when it may be delivered.
struct Chunk {
    data: Vec<u8>,
    due: Instant,
}

/// One direction: a reader and a writer joined by a short queue, so chunks are delayed
/// independently (latency does not serialize them) while the queue bounds memory.
async fn pump(
    dir: Direction,
    mut src: ReadHalf<'_>,
    mut dst: WriteHalf<'_>,
    conn: &Conn,
    shared: &Shared,
) -> PumpEnd {
    let (tx, mut rx) = mpsc::channel(QUEUE_CHUNKS);
    let reader = read_side(dir, &mut src, tx, conn, shared);
    let writer = write_side(dir, &mut dst, &mut rx, conn, shared);
    tokio::pin!(reader, writer);
    let mut reader_done = false;
    loop {
        tokio::select! {
            end = &mut reader, if !reader_done => match end {
                // The queue's sender is gone with the reader: the writer drains and ends.
                None => reader_done = true,
                Some(end) => return end,
            },
            end = &mut writer => return end,
        }
    }
}

/// Reads the source into the queue. Returns `None` at end of stream (having dropped the
/// sender, so the writer finishes the queue), or how the direction ends early.
async fn read_side(
    dir: Direction,
    src: &mut ReadHalf<'_>,
    tx: mpsc::Sender<Chunk>,
    conn: &Conn,
    shared: &Shared,
) -> Option<PumpEnd> {
    // The answer being withheld by the lost-acknowledgement fault.
    let mut held: Vec<u8> = Vec::new();
    loop {
        let mut data = vec![0u8; CHUNK];
        let n = match src.read(&mut data).await {
            Ok(n) => n,
            Err(e) => {
                debug!(conn = conn.id, ?dir, error = %e, "read failed");
                return Some(PumpEnd::Failed);
            }
        };
        let withholding =
            dir == Direction::UpstreamToClient && conn.lose_next_response.load(Ordering::Relaxed);
        if n == 0 {
            if withholding {
                // The upstream closed: whatever it sent was its whole answer.
                debug!(
                    conn = conn.id,
                    bytes = held.len(),
                    "withheld answer ended by close"
                );
                return Some(PumpEnd::Cut(Cut::LostResponse));
            }
            return None;
        }
        data.truncate(n);
        shared.record(conn.id, dir, &data);
        if withholding {
            held.extend_from_slice(&data);
            let head = conn.head_request.load(Ordering::Relaxed);
            if response_end(&held, head) == ResponseEnd::Complete || held.len() > MAX_HELD_RESPONSE
            {
                debug!(
                    conn = conn.id,
                    bytes = held.len(),
                    "withheld a whole answer"
                );
                return Some(PumpEnd::Cut(Cut::LostResponse));
            }
            continue;
        }
        if dir == Direction::ClientToUpstream
            && shared.faults.borrow().lose_response
            && !conn.lose_next_response.swap(true, Ordering::Relaxed)
        {
            // Armed before this request reaches the upstream, so every byte of the answer
            // is read after this point. Without pipelining (reqwest and hyper do not
            // pipeline) the previous answer has been fully delivered already.
            conn.head_request
                .store(data.starts_with(b"HEAD "), Ordering::Relaxed);
            debug!(conn = conn.id, "the answer to this request will be lost");
        }
        let due = Instant::now() + shared.faults.borrow().latency;
        if tx.send(Chunk { data, due }).await.is_err() {
            // The writer has ended, and with it this direction.
            return None;
        }
    }
}

/// Writes queued chunks to the destination once due, holding them while stalled, pacing
/// them to the bandwidth limit, and cutting the connection at the planned byte.
async fn write_side(
    dir: Direction,
    dst: &mut WriteHalf<'_>,
    rx: &mut mpsc::Receiver<Chunk>,
    conn: &Conn,
    shared: &Shared,
) -> PumpEnd {
    let mut faults = shared.faults.subscribe();
    let mut pacer = Pacer::default();
    while let Some(chunk) = rx.recv().await {
        sleep_until(chunk.due).await;
        let mut rest: &[u8] = &chunk.data;
        while !rest.is_empty() {
            if faults.wait_for(|f| !f.stall).await.is_err() {
                return PumpEnd::Failed;
            }
            let rate = faults.borrow().bandwidth_bytes_per_s.filter(|&r| r > 0);
            let mut slice = rest.len();
            match rate {
                Some(rate) => {
                    slice = slice.min(Pacer::slice(rate));
                    pacer.wait(slice, rate).await;
                }
                None => pacer = Pacer::default(),
            }
            let (allowed, cut) = conn.claim(dir, slice as u64);
            // `allowed` ≤ `slice`, a usize, so this cannot truncate.
            let allowed = usize::try_from(allowed).unwrap_or(slice);
            if allowed > 0 {
                shared
                    .counters
                    .bytes(dir)
                    .fetch_add(allowed as u64, Ordering::Relaxed);
                if let Err(e) = dst.write_all(&rest[..allowed]).await {
                    debug!(conn = conn.id, ?dir, error = %e, "write failed");
                    return PumpEnd::Failed;
                }
            }
            if let Some(cut) = cut {
                return PumpEnd::Cut(cut);
            }
            rest = &rest[allowed..];
        }
    }
    // The source closed and everything has been delivered.
    if conn.drop_pending() {
        // A connection chosen for dropping never ends cleanly.
        return PumpEnd::Cut(Cut::Drop);
    }
    if let Err(e) = dst.shutdown().await {
        debug!(conn = conn.id, ?dir, error = %e, "passing on the close failed");
    }
    PumpEnd::Finished
}

/// A token bucket one slice deep: each slice may start once the previous ones have "used
/// up" their time at the configured rate. Idle time earns no credit beyond one slice, so a
/// burst after a pause is not faster than the link.
#[derive(Default)]
struct Pacer {
    next: Option<Instant>,
}

impl Pacer {
    /// Writes are split into slices of about 1/20 s of data so throttled traffic flows
    /// smoothly instead of in second-long bursts.
    fn slice(rate: u64) -> usize {
        usize::try_from((rate / 20).clamp(1, CHUNK as u64)).unwrap_or(CHUNK)
    }

    async fn wait(&mut self, bytes: usize, rate: u64) {
        let now = Instant::now();
        let start = self.next.map_or(now, |next| next.max(now));
        sleep_until(start).await;
        self.next = Some(start + Duration::from_secs_f64(bytes as f64 / rate as f64));
    }
}
