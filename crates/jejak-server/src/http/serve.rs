//! The serving loop: hyper's HTTP/1 connections driven one by one, each watched for
//! clients that are too slow, under a cap on how many are open at once, with a
//! shutdown that stops accepting at once and gives the requests in flight a bounded
//! grace period.
//!
//! Why not `axum::serve`: it has no header, body or idle timeout, no connection cap and
//! a graceful shutdown that waits for ever. A client that sends its headers or body a
//! byte at a time (or a half-open connection left by a modem that lost its link) then
//! holds a connection, and a file descriptor, for as long as it likes; enough of them
//! and `accept` fails with "too many open files", `/healthz` stops answering and
//! SIGTERM never completes.
//!
//! Each connection has a watch ([`Activity`]) fed by its socket's reads and writes and
//! by the requests it serves; a timer looks at it once a second:
//! - **header timeout**: from the first byte of a request head to the complete head;
//! - **idle timeout**: no request in flight and no bytes either way: the connection is
//!   closed (a fresh one costs the client one round trip);
//! - **body timeout**: enforced by [`TimedBody`] around every request body: the body
//!   must arrive within the body timeout plus one second per `body_min_rate` bytes
//!   received, so a 64 kbit/s link is never near it and a byte-at-a-time sender is cut
//!   off after the body timeout.
//!
//! Connections over `max_connections` are refused at accept with a fixed 503 written
//! without reading the request (no parsing, no task), so a flood cannot starve the
//! server of descriptors or memory.
//!
//! Over HTTPS (`jejak server run --tls-cert/--tls-key`) the same loop serves: the TLS
//! handshake runs in the connection's own task, counts against the cap and must end
//! within the header timeout; a connection over the cap is closed without an answer (a
//! plain-text 503 would mean nothing to a TLS client).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tower_service::Service as _;

/// How a server treats its connections. The defaults suit village PCs on 2G links and a
/// district office's browsers; `jejak server run` can change each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Serving {
    /// From the first byte of a request head to its end. Default 20 s: a head is a few
    /// hundred bytes, one or two packets even on a lossy 2G link.
    pub header_timeout: Duration,
    /// The time a request body may take before `body_min_rate` extends it. Default 30 s.
    pub body_timeout: Duration,
    /// Bytes per second of body that earn one more second (default 1,024: a 2 MiB body
    /// may take 30 s plus 34 minutes, while a 64 kbit/s link sends it in 4 minutes).
    pub body_min_rate: u64,
    /// How long a kept-alive connection may sit with no request and no traffic.
    /// Default 30 s.
    pub idle_timeout: Duration,
    /// The most connections open at once; more are refused with 503 at accept. Default
    /// 1,024 (the units raise `LimitNOFILE` to 65,536, far above it).
    pub max_connections: usize,
    /// After the shutdown signal: how long requests in flight may take to finish before
    /// their connections are closed. Default 10 s.
    pub shutdown_grace: Duration,
}

impl Default for Serving {
    fn default() -> Self {
        Serving {
            header_timeout: Duration::from_secs(20),
            body_timeout: Duration::from_secs(30),
            body_min_rate: 1024,
            idle_timeout: Duration::from_secs(30),
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// How often each connection's watch is looked at.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// How long to wait before accepting again after `accept` failed (out of descriptors):
/// retrying at once would only spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(200);
/// How often a failing `accept` is logged.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);
/// Refusals being written at once; past this a connection over the cap is just closed.
const REFUSALS_AT_ONCE: usize = 64;
/// How long a refused connection's request is read and thrown away before it is closed
/// (closing a socket with unread data resets it, and the client would see a reset
/// instead of the 503).
const REFUSAL_DRAIN: Duration = Duration::from_secs(1);
/// The problem document sent to a connection over the cap.
const OVER_CAPACITY_BODY: &str = "{\"type\":\"too-many-connections\",\"title\":\"Too many connections\",\
    \"status\":503,\"detail\":\"the server has too many open connections; retry later\"}";
/// The whole answer to a connection over the cap, written without reading its request.
static OVER_CAPACITY: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\n\
         Retry-After: 10\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{OVER_CAPACITY_BODY}",
        OVER_CAPACITY_BODY.len()
    )
    .into_bytes()
});

/// Serves `app` on `listener` until `shutdown` completes, over TLS when `tls` is given;
/// see the module's docs.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    serving: Serving,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let permits = Arc::new(Semaphore::new(serving.max_connections.max(1)));
    let refusals = Arc::new(Semaphore::new(REFUSALS_AT_ONCE));
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut last_accept_log: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => match permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let _ = stream.set_nodelay(true);
                        let (app, stopping) = (app.clone(), stopping.clone());
                        match acceptor.clone() {
                            None => {
                                connections.spawn(connection(stream, app, serving, stopping, permit));
                            }
                            Some(acceptor) => {
                                connections.spawn(async move {
                                    let handshake = tokio::time::timeout(
                                        serving.header_timeout,
                                        acceptor.accept(stream),
                                    );
                                    match handshake.await {
                                        Ok(Ok(tls)) => {
                                            connection(tls, app, serving, stopping, permit).await
                                        }
                                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                                        Err(_) => tracing::info!("connection closed: the TLS handshake did not end in time"),
                                    }
                                });
                            }
                        }
                    }
                    Err(_) if acceptor.is_some() => {
                        tracing::warn!("connection closed: too many open connections");
                    }
                    Err(_) => refuse(stream, &refusals),
                },
                Err(e) => {
                    if last_accept_log.is_none_or(|at| at.elapsed() >= ACCEPT_LOG_EVERY) {
                        tracing::error!(error = %e, open = connections.len(), "cannot accept connections; retrying");
                        last_accept_log = Some(Instant::now());
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Stop accepting at once: the port is free for a new server from here on.
    drop(listener);
    let _ = stop.send(true);
    let open = connections.len();
    if open > 0 {
        tracing::info!(
            connections = open,
            grace_secs = serving.shutdown_grace.as_secs_f64(),
            "stopping: finishing the requests in flight"
        );
    }
    let drained = tokio::time::timeout(serving.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "stopping: the grace period is over; closing the connections still open"
        );
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
    Ok(())
}

/// Answers a connection over the cap with the fixed 503, without parsing anything: the
/// answer is written at once, the request read and dropped for at most a second, and the
/// socket closed. When too many refusals are under way already, it is closed at once.
fn refuse(stream: TcpStream, refusals: &Arc<Semaphore>) {
    tracing::warn!("connection refused: too many open connections");
    let Ok(permit) = refusals.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut stream = stream;
        let _ = tokio::time::timeout(REFUSAL_DRAIN, async {
            stream.write_all(&OVER_CAPACITY).await?;
            stream.shutdown().await?;
            let mut sink = [0u8; 1024];
            while stream.read(&mut sink).await? > 0 {}
            Ok::<(), io::Error>(())
        })
        .await;
        drop(permit);
    });
}

/// Serves one connection (plain TCP or TLS) until it closes, times out, or the grace
/// period ends.
async fn connection<S>(
    stream: S,
    app: Router,
    serving: Serving,
    mut stopping: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let service = hyper::service::service_fn({
        let activity = activity.clone();
        move |request: hyper::Request<Incoming>| {
            let in_flight = activity.request_started();
            let request = request.map(|body| Body::new(TimedBody::new(body, serving)));
            let mut app = app.clone();
            async move {
                let response = app.call(request).await;
                drop(in_flight);
                response
            }
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let mut closing_since: Option<Instant> = None;
    let mut watch = tokio::time::interval(WATCH_EVERY);
    watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            changed = stopping.changed(), if closing_since.is_none() => {
                if changed.is_ok() {
                    // Answers the request in flight, if any, then closes.
                    conn.as_mut().graceful_shutdown();
                    closing_since = Some(Instant::now());
                }
            }
            _ = watch.tick() => match activity.verdict(&serving) {
                Verdict::Fine => {}
                Verdict::SlowHead => {
                    tracing::info!("connection closed: the request head did not arrive in time");
                    return;
                }
                Verdict::Idle => match closing_since {
                    None => {
                        conn.as_mut().graceful_shutdown();
                        closing_since = Some(Instant::now());
                    }
                    // A client that stopped reading its answer: no more waiting.
                    Some(since) if since.elapsed() > serving.idle_timeout => return,
                    Some(_) => {}
                },
            },
        }
    }
}

/// What a connection's watch says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Fine,
    /// A request head started longer than the header timeout ago: close at once.
    SlowHead,
    /// No request and no traffic for the idle timeout: close when nothing is in flight.
    Idle,
}

/// No head is being read.
const NONE: u64 = u64::MAX;

/// A connection's activity, in milliseconds since it was accepted.
#[derive(Debug)]
struct Activity {
    opened: Instant,
    /// The last read or write of at least one byte.
    last_io_ms: AtomicU64,
    /// When the first byte of the request head now being read arrived, or [`NONE`].
    head_started_ms: AtomicU64,
    /// Requests handed to the application and not answered yet.
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            opened: Instant::now(),
            last_io_ms: AtomicU64::new(0),
            head_started_ms: AtomicU64::new(NONE),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn read(&self) {
        let now = self.now_ms();
        self.last_io_ms.store(now, Ordering::Relaxed);
        // Bytes while no request is in flight begin the next request's head.
        if self.in_flight.load(Ordering::Relaxed) == 0 {
            let _ = self.head_started_ms.compare_exchange(
                NONE,
                now,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    fn wrote(&self) {
        self.last_io_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// A complete head reached the application; the guard marks the answer.
    fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_started_ms.store(NONE, Ordering::Relaxed);
        InFlight(self.clone())
    }

    fn verdict(&self, serving: &Serving) -> Verdict {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            // The body has its own timeout; the application's work is not the client's.
            return Verdict::Fine;
        }
        let now = self.now_ms();
        let since = |ms: u64| Duration::from_millis(now.saturating_sub(ms));
        match self.head_started_ms.load(Ordering::Relaxed) {
            NONE if since(self.last_io_ms.load(Ordering::Relaxed)) > serving.idle_timeout => {
                Verdict::Idle
            }
            NONE => Verdict::Fine,
            started if since(started) > serving.header_timeout => Verdict::SlowHead,
            _ => Verdict::Fine,
        }
    }
}

/// Marks a request answered when dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.wrote();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A socket whose reads and writes feed its connection's [`Activity`].
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read();
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A request body that did not arrive in time (see [`Serving::body_timeout`]).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub(crate) struct BodyTimeout;

/// A request body with a deadline that moves with what has arrived.
struct TimedBody {
    inner: Incoming,
    started: tokio::time::Instant,
    deadline: Pin<Box<tokio::time::Sleep>>,
    serving: Serving,
    received: u64,
}

impl TimedBody {
    fn new(inner: Incoming, serving: Serving) -> TimedBody {
        let started = tokio::time::Instant::now();
        TimedBody {
            inner,
            started,
            deadline: Box::pin(tokio::time::sleep_until(started + serving.body_timeout)),
            serving,
            received: 0,
        }
    }
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received = this.received.saturating_add(data.len() as u64);
                    let earned = this.received / this.serving.body_min_rate.max(1);
                    let deadline =
                        this.started + this.serving.body_timeout + Duration::from_secs(earned);
                    this.deadline.as_mut().reset(deadline);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(BodyTimeout.into()))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether an error, or any error it wraps, is a [`BodyTimeout`].
pub(crate) fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<BodyTimeout>() {
            return true;
        }
        current = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watch_tells_slow_heads_and_idle_connections() {
        let serving = Serving {
            header_timeout: Duration::from_millis(50),
            idle_timeout: Duration::from_millis(80),
            ..Serving::default()
        };
        let activity = Arc::new(Activity::new());
        assert_eq!(activity.verdict(&serving), Verdict::Fine);
        activity.read();
        std::thread::sleep(Duration::from_millis(70));
        assert_eq!(activity.verdict(&serving), Verdict::SlowHead);
        let in_flight = activity.request_started();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            activity.verdict(&serving),
            Verdict::Fine,
            "a request in flight is the application's time"
        );
        drop(in_flight);
        assert_eq!(activity.verdict(&serving), Verdict::Fine);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(activity.verdict(&serving), Verdict::Idle);
    }

    #[test]
    fn the_refusal_is_a_complete_answer() {
        let text = std::str::from_utf8(&OVER_CAPACITY).unwrap_or_default();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or_default();
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{head}"
        );
        let problem: jejak_domain::Problem = serde_json::from_str(body).unwrap_or_else(|e| {
            panic!("{e}: {body}");
        });
        assert_eq!(problem.kind, "too-many-connections");
    }
}
