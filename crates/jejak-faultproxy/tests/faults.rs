//! The proxy against real sockets on 127.0.0.1: small hand-written upstreams (echo, source,
//! sink, a counting HTTP/1.1 server) and real clients (raw TCP, reqwest).
//!
//! Timing assertions are lower bounds only (a loaded machine is slower, never faster), and
//! every wait is bounded by `LIMIT` so a broken proxy fails a test instead of hanging it.

// The helpers below are test code too: a panic there is a failed test with a clear location
// (clippy.toml only exempts `#[test]` functions themselves).
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use jejak_faultproxy::{FaultProxy, Faults, ProxyStats, ResetAfter};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, timeout};

/// Upper bound for anything that should happen; only reached when something is broken.
const LIMIT: Duration = Duration::from_secs(10);

async fn within<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    timeout(LIMIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; len];
    StdRng::seed_from_u64(seed).fill_bytes(&mut data);
    data
}

/// Spawns an accept loop running `serve` on each connection.
async fn upstream<F, Fut>(serve: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    });
    addr
}

/// Echoes everything back; half-closes when the client does.
async fn echo_upstream() -> SocketAddr {
    upstream(|mut stream| async move {
        let (mut r, mut w) = stream.split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
        let _ = w.shutdown().await;
    })
    .await
}

/// Sends `len` bytes of `payload(len, 1)` and closes.
async fn source_upstream(len: usize) -> SocketAddr {
    upstream(move |mut stream| async move {
        let _ = stream.write_all(&payload(len, 1)).await;
        let _ = stream.shutdown().await;
    })
    .await
}

/// Reads until the client closes (or the connection breaks), reports the byte count on the
/// channel, and answers with the count as 8 bytes.
async fn sink_upstream() -> (SocketAddr, watch::Receiver<Vec<u64>>) {
    let (tx, rx) = watch::channel(Vec::new());
    let tx = Arc::new(tx);
    let addr = upstream(move |mut stream| {
        let tx = Arc::clone(&tx);
        async move {
            let mut total = 0u64;
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            tx.send_modify(|totals| totals.push(total));
            let _ = stream.write_all(&total.to_be_bytes()).await;
        }
    })
    .await;
    (addr, rx)
}

/// How the test HTTP server answers.
#[derive(Clone, Copy)]
enum Reply {
    /// `Content-Length` framing; the body echoes the request body, or "pong" if empty.
    Echo,
    /// Chunked "hello world" in two writes with a pause between them, noting when the
    /// final write starts.
    SlowChunked,
}

/// What the test HTTP server has seen: requests read in full, and answers written in full.
#[derive(Default, Clone, Debug)]
struct HttpLog {
    requests: u64,
    answered: u64,
    last_part_at: Option<Instant>,
}

/// A minimal keep-alive HTTP/1.1 server counting requests and answers.
async fn http_upstream(reply: Reply) -> (SocketAddr, watch::Receiver<HttpLog>) {
    let (tx, rx) = watch::channel(HttpLog::default());
    let tx = Arc::new(tx);
    let addr = upstream(move |stream| serve_http(stream, reply, Arc::clone(&tx))).await;
    (addr, rx)
}

async fn serve_http(mut stream: TcpStream, reply: Reply, log: Arc<watch::Sender<HttpLog>>) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        // The head.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        // The body.
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buf[head_end..head_end + length].to_vec();
        buf.drain(..head_end + length);
        log.send_modify(|l| l.requests += 1);

        let written = match reply {
            Reply::Echo => {
                let body = if body.is_empty() {
                    b"pong".to_vec()
                } else {
                    body
                };
                let mut response =
                    format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len())
                        .into_bytes();
                response.extend_from_slice(&body);
                stream.write_all(&response).await
            }
            Reply::SlowChunked => {
                let first = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n";
                if stream.write_all(first).await.is_err() {
                    return;
                }
                // Not for correctness: it makes a proxy that gives up on the answer before
                // its end visibly early.
                tokio::time::sleep(Duration::from_millis(200)).await;
                log.send_modify(|l| l.last_part_at = Some(Instant::now()));
                stream.write_all(b"6\r\n world\r\n0\r\n\r\n").await
            }
        };
        if written.is_err() {
            return;
        }
        log.send_modify(|l| l.answered += 1);
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(LIMIT)
        .build()
        .unwrap()
}

/// Writes `data` and reads the echo back concurrently (so neither side's buffers fill up).
async fn echo_round_trip(stream: TcpStream, data: &[u8]) -> std::io::Result<Vec<u8>> {
    let (mut r, mut w) = stream.into_split();
    let to_send = data.to_vec();
    let writer = tokio::spawn(async move {
        w.write_all(&to_send).await?;
        w.shutdown().await
    });
    let mut back = Vec::new();
    let read = r.read_to_end(&mut back).await;
    let written = writer.await.unwrap();
    read?;
    written?;
    Ok(back)
}

async fn wait_for_log(
    rx: &mut watch::Receiver<HttpLog>,
    ok: impl FnMut(&HttpLog) -> bool,
) -> HttpLog {
    within("http upstream log", rx.wait_for(ok))
        .await
        .unwrap()
        .clone()
}

#[tokio::test]
async fn pass_echo_is_byte_identical() {
    let proxy = FaultProxy::start(echo_upstream().await, Faults::pass())
        .await
        .unwrap();
    let data = payload(512 * 1024, 7);
    let client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let back = within("echo", echo_round_trip(client, &data))
        .await
        .unwrap();
    assert!(
        back == data,
        "echo differs: {} bytes back of {}",
        back.len(),
        data.len()
    );
    let stats = proxy.stats();
    assert_eq!(stats.connections_accepted, 1);
    assert_eq!(stats.bytes_client_to_upstream, data.len() as u64);
    assert_eq!(stats.bytes_upstream_to_client, data.len() as u64);
    assert_eq!(
        ProxyStats {
            connections_accepted: 0,
            connections_active: 0,
            bytes_client_to_upstream: 0,
            bytes_upstream_to_client: 0,
            ..stats
        },
        ProxyStats::default(),
        "no faults were injected"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn pass_http_round_trip() {
    let (addr, mut log) = http_upstream(Reply::Echo).await;
    let proxy = FaultProxy::start(addr, Faults::pass()).await.unwrap();
    let client = http_client();
    let url = format!("http://{}/ingest", proxy.local_addr());
    let body = payload(100_000, 3);
    let response = client.post(&url).body(body.clone()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.bytes().await.unwrap() == body,
        "HTTP body echoed unchanged"
    );
    let text = client.get(&url).send().await.unwrap().text().await.unwrap();
    assert_eq!(text, "pong");
    let seen = wait_for_log(&mut log, |l| l.answered == 2).await;
    assert_eq!(seen.requests, 2);
    assert_eq!(
        proxy.stats().connections_accepted,
        1,
        "keep-alive reuses one connection"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn chunked_http_passes_through() {
    let (addr, _log) = http_upstream(Reply::SlowChunked).await;
    let proxy = FaultProxy::start(addr, Faults::pass()).await.unwrap();
    let url = format!("http://{}/", proxy.local_addr());
    let text = http_client()
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, "hello world");
    proxy.shutdown().await;
}

#[tokio::test]
async fn latency_is_added_each_way() {
    let latency = Duration::from_millis(150);
    let faults = Faults {
        latency,
        ..Faults::pass()
    };
    let proxy = FaultProxy::start(echo_upstream().await, faults)
        .await
        .unwrap();
    let client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let started = Instant::now();
    let back = within("echo", echo_round_trip(client, b"ping"))
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(back, b"ping");
    assert!(
        elapsed >= 2 * latency,
        "round trip took {elapsed:?}, want ≥ {:?}",
        2 * latency
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn latency_is_pipelined_not_per_chunk_serial() {
    // 64 chunks' worth of data with 100 ms latency: a proxy that slept per chunk in turn
    // would take seconds; a link with latency takes about one latency more than without.
    let latency = Duration::from_millis(100);
    let faults = Faults {
        latency,
        ..Faults::pass()
    };
    let proxy = FaultProxy::start(echo_upstream().await, faults)
        .await
        .unwrap();
    let data = payload(1024 * 1024, 9);
    let client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let started = Instant::now();
    let back = within("echo", echo_round_trip(client, &data))
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert!(back == data);
    assert!(elapsed >= 2 * latency, "took {elapsed:?}");
    // Generous: serial per-chunk delays would be ≥ 64 × 2 × 100 ms = 12.8 s.
    assert!(
        elapsed < Duration::from_secs(6),
        "took {elapsed:?}: latency serializes chunks"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn bandwidth_is_capped() {
    let (addr, _totals) = sink_upstream().await;
    let rate = 16_000;
    let proxy = FaultProxy::start(addr, Faults::slow_link(rate, Duration::ZERO))
        .await
        .unwrap();
    let data = payload(32_000, 5); // 2 s at 16,000 B/s
    let mut client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let started = Instant::now();
    within("send", client.write_all(&data)).await.unwrap();
    client.shutdown().await.unwrap();
    let mut count = [0u8; 8];
    within("sink's count", client.read_exact(&mut count))
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(u64::from_be_bytes(count), data.len() as u64);
    assert!(
        elapsed >= Duration::from_millis(1800),
        "32,000 B at 16,000 B/s took {elapsed:?}"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn refuse_resets_new_connections_without_reaching_upstream() {
    let (addr, mut log) = http_upstream(Reply::Echo).await;
    let proxy = FaultProxy::start(addr, Faults::link_down()).await.unwrap();

    let mut raw = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let mut buf = [0u8; 16];
    match within("refused read", raw.read(&mut buf)).await {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!("read {n} bytes from a refused connection"),
    }

    let url = format!("http://{}/", proxy.local_addr());
    let result = http_client().get(&url).send().await;
    assert!(
        result.is_err(),
        "request through a down link succeeded: {result:?}"
    );

    let stats = proxy.stats();
    assert_eq!(stats.refused, stats.connections_accepted);
    assert!(stats.refused >= 2);
    assert_eq!(log.borrow_and_update().requests, 0);

    // Link back up: requests go through again.
    proxy.set_faults(Faults::pass());
    let text = http_client()
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, "pong");
    let _ = wait_for_log(&mut log, |l| l.answered == 1).await;
    proxy.shutdown().await;
}

#[tokio::test]
async fn refuse_switched_on_cuts_open_connections() {
    let proxy = FaultProxy::start(echo_upstream().await, Faults::pass())
        .await
        .unwrap();
    let mut client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    client.write_all(b"hello").await.unwrap();
    let mut buf = [0u8; 5];
    within("echo", client.read_exact(&mut buf)).await.unwrap();

    proxy.set_faults(Faults::link_down());
    match within("cut read", client.read(&mut buf)).await {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!("read {n} bytes after the link went down"),
    }
    assert_eq!(proxy.stats().link_down_cuts, 1);
    proxy.shutdown().await;
}

#[tokio::test]
async fn stall_holds_data_until_released() {
    let (addr, mut totals) = sink_upstream().await;
    let proxy = FaultProxy::start(addr, Faults::stalled()).await.unwrap();
    let mut client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    client.write_all(b"hello").await.unwrap();
    client.shutdown().await.unwrap();
    let mut count = [0u8; 8];
    // The client's own timeout is the only way out of a stall.
    let waited = timeout(Duration::from_millis(300), client.read_exact(&mut count)).await;
    assert!(waited.is_err(), "a stalled link answered: {waited:?}");
    assert_eq!(proxy.stats().bytes_client_to_upstream, 0);

    // Released: what was held is delivered, and the answer comes back.
    proxy.set_faults(Faults::pass());
    within("answer after release", client.read_exact(&mut count))
        .await
        .unwrap();
    assert_eq!(u64::from_be_bytes(count), 5);
    let totals = within("sink", totals.wait_for(|t| !t.is_empty()))
        .await
        .unwrap()
        .clone();
    assert_eq!(totals, vec![5]);
    proxy.shutdown().await;
}

#[tokio::test]
async fn stalled_http_request_times_out() {
    let (addr, log) = http_upstream(Reply::Echo).await;
    let proxy = FaultProxy::start(addr, Faults::stalled()).await.unwrap();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let url = format!("http://{}/", proxy.local_addr());
    let err = client.get(&url).send().await.unwrap_err();
    assert!(err.is_timeout(), "want a timeout, got {err:?}");
    assert_eq!(log.borrow().requests, 0);
    proxy.shutdown().await;
}

#[tokio::test]
async fn reset_after_bytes_to_client() {
    let proxy = FaultProxy::start(
        source_upstream(100_000).await,
        Faults::reset_after(ResetAfter::UpstreamToClient(10_000)),
    )
    .await
    .unwrap();
    let mut client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let mut got = Vec::new();
    let result = within("read until reset", client.read_to_end(&mut got)).await;
    let err = result.expect_err("a reset connection must end in an error, not a clean end");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err:?}");
    assert!(got.len() <= 10_000, "got {} bytes", got.len());
    assert_eq!(
        got[..],
        payload(100_000, 1)[..got.len()],
        "what arrived is the start of the stream"
    );
    let stats = proxy.stats();
    assert_eq!(stats.resets, 1);
    assert_eq!(stats.bytes_upstream_to_client, 10_000);
    proxy.shutdown().await;
}

#[tokio::test]
async fn reset_after_bytes_to_upstream() {
    let (addr, mut totals) = sink_upstream().await;
    let proxy = FaultProxy::start(
        addr,
        Faults::reset_after(ResetAfter::ClientToUpstream(10_000)),
    )
    .await
    .unwrap();
    let mut client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let data = payload(50_000, 2);
    // Either the write or the read that follows meets the reset.
    let outcome = within("client", async {
        client.write_all(&data).await?;
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await
    })
    .await;
    assert!(outcome.is_err(), "client saw no error: {outcome:?}");
    let totals = within("sink", totals.wait_for(|t| !t.is_empty()))
        .await
        .unwrap()
        .clone();
    assert_eq!(
        totals,
        vec![10_000],
        "the upstream got exactly the first 10,000 bytes"
    );
    assert_eq!(proxy.stats().resets, 1);
    proxy.shutdown().await;
}

#[tokio::test]
async fn reset_after_total_bytes() {
    let proxy = FaultProxy::start(
        echo_upstream().await,
        Faults::reset_after(ResetAfter::Total(3_000)),
    )
    .await
    .unwrap();
    let client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let result = within("echo", echo_round_trip(client, &payload(10_000, 4))).await;
    assert!(result.is_err(), "{result:?}");
    let stats = proxy.stats();
    assert_eq!(stats.resets, 1);
    assert_eq!(
        stats.bytes_client_to_upstream + stats.bytes_upstream_to_client,
        3_000
    );
    proxy.shutdown().await;
}

/// The key case (B2 #12): the server gets the request and answers it in full, and the
/// client gets an error instead of the answer.
#[tokio::test]
async fn lose_response_after_the_server_answered() {
    let (addr, mut log) = http_upstream(Reply::Echo).await;
    let proxy = FaultProxy::start(addr, Faults::lost_response())
        .await
        .unwrap();
    let url = format!("http://{}/api/v1/batches", proxy.local_addr());
    let result = http_client()
        .post(&url)
        .body(payload(20_000, 6))
        .send()
        .await;
    let err = result.expect_err("the answer must be lost");
    assert!(!err.is_timeout(), "want a reset, not a timeout: {err:?}");

    let seen = wait_for_log(&mut log, |l| l.answered >= 1).await;
    assert_eq!(
        (seen.requests, seen.answered),
        (1, 1),
        "received and answered once"
    );
    let stats = proxy.stats();
    assert_eq!(stats.responses_lost, 1);
    assert!(stats.bytes_client_to_upstream > 20_000);
    assert_eq!(
        stats.bytes_upstream_to_client, 0,
        "not one byte of the answer reached the client"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn lose_response_waits_for_the_whole_chunked_answer() {
    let (addr, mut log) = http_upstream(Reply::SlowChunked).await;
    let proxy = FaultProxy::start(addr, Faults::lost_response())
        .await
        .unwrap();
    let url = format!("http://{}/", proxy.local_addr());
    let result = http_client().get(&url).send().await;
    let failed_at = Instant::now();
    assert!(result.is_err(), "the answer must be lost: {result:?}");
    let seen = wait_for_log(&mut log, |l| l.answered >= 1).await;
    assert_eq!((seen.requests, seen.answered), (1, 1));
    let last_part_at = seen.last_part_at.unwrap();
    assert!(
        failed_at >= last_part_at,
        "the client was reset before the upstream sent the end of its answer"
    );
    assert_eq!(proxy.stats().responses_lost, 1);
    proxy.shutdown().await;
}

/// A sync client keeps its connection in a pool: switching the fault on must reach it.
#[tokio::test]
async fn lose_response_reaches_pooled_connections() {
    let (addr, mut log) = http_upstream(Reply::Echo).await;
    let proxy = FaultProxy::start(addr, Faults::pass()).await.unwrap();
    let client = http_client();
    let url = format!("http://{}/", proxy.local_addr());

    assert_eq!(
        client
            .post(&url)
            .body("one")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "one"
    );
    proxy.set_faults(Faults::lost_response());
    let lost = client.post(&url).body("two").send().await;
    assert!(lost.is_err(), "{lost:?}");
    proxy.set_faults(Faults::pass());
    assert_eq!(
        client
            .post(&url)
            .body("three")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "three"
    );

    let seen = wait_for_log(&mut log, |l| l.answered >= 3).await;
    assert_eq!((seen.requests, seen.answered), (3, 3));
    let stats = proxy.stats();
    assert_eq!(stats.responses_lost, 1);
    assert_eq!(
        stats.connections_accepted, 2,
        "pooled, then a new connection after the reset"
    );
    proxy.shutdown().await;
}

/// Runs `count` echo exchanges of `len` bytes one after another; true where the exchange
/// failed.
async fn echo_failures(proxy: &FaultProxy, count: usize, len: usize) -> Vec<bool> {
    let mut failed = Vec::new();
    for i in 0..count {
        let data = payload(len, i as u64);
        let client = TcpStream::connect(proxy.local_addr()).await.unwrap();
        let back = within("echo", echo_round_trip(client, &data)).await;
        failed.push(back.map_or(true, |b| b != data));
    }
    failed
}

#[tokio::test]
async fn drop_chance_one_drops_every_connection() {
    let faults = Faults {
        drop_within_bytes: 1_000,
        ..Faults::lossy(1.0)
    };
    let proxy = FaultProxy::start(echo_upstream().await, faults)
        .await
        .unwrap();
    let failed = echo_failures(&proxy, 5, 4_000).await;
    assert_eq!(failed, vec![true; 5]);
    let stats = proxy.stats();
    assert_eq!(stats.drops, 5);
    assert!(stats.bytes_client_to_upstream + stats.bytes_upstream_to_client < 5 * 1_000);
    proxy.shutdown().await;
}

#[tokio::test]
async fn drop_chance_zero_drops_nothing() {
    let proxy = FaultProxy::start(echo_upstream().await, Faults::lossy(0.0))
        .await
        .unwrap();
    let failed = echo_failures(&proxy, 5, 4_000).await;
    assert_eq!(failed, vec![false; 5]);
    assert_eq!(proxy.stats().drops, 0);
    proxy.shutdown().await;
}

#[tokio::test]
async fn drops_repeat_for_a_seed() {
    let faults = Faults {
        drop_within_bytes: 1_000,
        seed: 42,
        ..Faults::lossy(0.5)
    };
    let upstream = echo_upstream().await;
    let mut runs = Vec::new();
    for _ in 0..2 {
        let proxy = FaultProxy::start(upstream, faults.clone()).await.unwrap();
        let failed = echo_failures(&proxy, 16, 2_000).await;
        let dropped = failed.iter().filter(|&&f| f).count() as u64;
        assert_eq!(proxy.stats().drops, dropped);
        proxy.shutdown().await;
        runs.push(failed);
    }
    assert_eq!(runs[0], runs[1], "the same seed drops the same connections");
    let dropped = runs[0].iter().filter(|&&f| f).count();
    assert!(
        (1..16).contains(&dropped),
        "{dropped} of 16 dropped at chance 0.5"
    );
}

#[tokio::test]
async fn shutdown_closes_everything() {
    let proxy = FaultProxy::start(echo_upstream().await, Faults::pass())
        .await
        .unwrap();
    let addr = proxy.local_addr();
    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(b"hi").await.unwrap();
    let mut buf = [0u8; 2];
    within("echo", client.read_exact(&mut buf)).await.unwrap();
    within("shutdown", proxy.shutdown()).await;
    match within("read after shutdown", client.read(&mut buf)).await {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!("read {n} bytes after shutdown"),
    }
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}

#[tokio::test]
async fn unreachable_upstream_resets_the_client() {
    // A port that was just free: nothing listens there.
    let free = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = FaultProxy::start(free, Faults::pass()).await.unwrap();
    let mut client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let mut buf = [0u8; 1];
    match within("read", client.read(&mut buf)).await {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!("read {n} bytes"),
    }
    assert_eq!(proxy.stats().upstream_connect_failures, 1);
    proxy.shutdown().await;
}

#[tokio::test]
async fn live_bandwidth_change_reaches_open_connections() {
    // Starts unlimited, then drops to 8,000 B/s mid-connection: the next 16,000 bytes on
    // the same connection take about 2 s.
    let proxy = FaultProxy::start(echo_upstream().await, Faults::pass())
        .await
        .unwrap();
    let mut client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let mut buf = vec![0u8; 16_000];
    client.write_all(b"warm").await.unwrap();
    within("echo", client.read_exact(&mut buf[..4]))
        .await
        .unwrap();

    proxy.set_faults(Faults::slow_link(8_000, Duration::ZERO));
    let started = Instant::now();
    let data = payload(16_000, 8);
    client.write_all(&data).await.unwrap();
    within("throttled echo", client.read_exact(&mut buf))
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert!(buf == data);
    assert!(elapsed >= Duration::from_millis(1800), "took {elapsed:?}");
    proxy.shutdown().await;
}
