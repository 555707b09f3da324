//! The district server under slow and greedy clients, with the real `jejak server run`:
//! 200 clients that send their headers or body a byte at a time neither keep `/healthz`
//! from answering nor the server from exiting within its grace period; the header, body
//! and idle timeouts cut such clients off; connections over the cap are refused at
//! once; and a batch that inflates to a flood of empty arrays costs the server a
//! bounded amount of memory.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::{raw_get, raw_request, spawn_district};

/// Rows in a table of the SQLite server database.
fn count(db_path: &std::path::Path, table: &str) -> i64 {
    let conn = rusqlite::Connection::open(db_path).unwrap();
    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

/// Opens `n` connections that each begin a request and then send one more byte every
/// `pause` from a single thread, until `stop` is set: half stall in their headers, half
/// (with a valid token and a long Content-Length) in a batch's body.
struct SlowClients {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<TcpStream>>>,
}

impl SlowClients {
    fn start(addr: &str, token: &str, n: usize, pause: Duration) -> SlowClients {
        let mut streams = Vec::new();
        for i in 0..n {
            let mut stream = TcpStream::connect(addr).unwrap();
            if i % 2 == 0 {
                stream.write_all(b"GET /healthz HTTP/1.1\r\nHo").unwrap();
            } else {
                stream
                    .write_all(
                        format!(
                            "POST /api/v1/batches HTTP/1.1\r\nHost: {addr}\r\n\
                             Authorization: Bearer {token}\r\n\
                             Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{"
                        )
                        .as_bytes(),
                    )
                    .unwrap();
            }
            streams.push(stream);
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopping.load(std::sync::atomic::Ordering::SeqCst) {
                for stream in &mut streams {
                    // A client the server has dropped fails here; it stays dropped.
                    let _ = stream.write_all(b"x");
                }
                std::thread::sleep(pause);
            }
            streams
        });
        SlowClients {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> Vec<TcpStream> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap()
    }
}

#[test]
fn healthz_answers_and_sigterm_ends_the_server_within_its_grace_while_200_slow_clients_hold_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("server.db").display());
    let token = support::enroll_pc(&db, "penuh", "pc-01");
    // The default header and body timeouts (20 s, 30 s) are longer than this test: the
    // slow clients are still connected when the signal comes.
    let mut server = spawn_district(&db, &["--shutdown-grace", "3"], &[]);
    let slow = SlowClients::start(&server.addr, &token, 200, Duration::from_millis(500));

    std::thread::sleep(Duration::from_secs(1));
    let asked = Instant::now();
    let health = raw_get(&server.addr, "/healthz", Duration::from_secs(5)).unwrap();
    assert_eq!(health.status, 200, "{health:?}");
    assert!(health.body.contains("\"status\":\"ok\""), "{health:?}");
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );

    server.child.signal("TERM");
    let signalled = Instant::now();
    let status = server
        .child
        .wait_deadline(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("still running 10 s after SIGTERM: {:?}", server.log_lines()));
    let took = signalled.elapsed();
    assert!(status.success(), "{status:?}");
    // The grace period (3 s) and a little for the exit itself.
    assert!(
        took < Duration::from_secs(5),
        "the server took {took:?} to stop"
    );
    assert!(
        took > Duration::from_millis(2500),
        "the slow clients were in flight, so the grace period ran out ({took:?})"
    );
    // It stopped accepting at once: nothing answers on the port now.
    assert!(raw_get(&server.addr, "/healthz", Duration::from_secs(1)).is_err());
    drop(slow.stop());
    assert_eq!(count(&dir.path().join("server.db"), "batches"), 0);
}

#[test]
fn slow_headers_slow_bodies_and_idle_connections_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("server.db");
    let db = format!("sqlite:{}", db_path.display());
    let token = support::enroll_pc(&db, "penuh", "pc-01");
    let server = spawn_district(
        &db,
        &[
            "--header-timeout",
            "2",
            "--body-timeout",
            "2",
            "--idle-timeout",
            "2",
        ],
        &[],
    );
    let slow = SlowClients::start(&server.addr, &token, 20, Duration::from_millis(300));
    let idle = TcpStream::connect(&server.addr).unwrap();
    // A kept-alive connection that answered one request and then says nothing more.
    let mut kept = TcpStream::connect(&server.addr).unwrap();
    kept.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).as_bytes())
        .unwrap();
    std::thread::sleep(Duration::from_secs(5));
    let streams = slow.stop();

    for (i, mut stream) in streams.into_iter().enumerate() {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut answer = Vec::new();
        let read = stream.read_to_end(&mut answer);
        if i % 2 == 0 {
            // Headers a byte at a time: closed without an answer.
            assert!(
                answer.is_empty(),
                "slow head {i}: {:?}",
                String::from_utf8_lossy(&answer)
            );
        } else {
            // A body a byte at a time: 408 with a problem document, then closed.
            let _ = read;
            let answer = support::parse_answer(&answer).unwrap();
            assert_eq!(answer.status, 408, "slow body {i}: {answer:?}");
            assert!(
                answer.body.contains("\"type\":\"body-timeout\""),
                "{answer:?}"
            );
        }
    }
    for (what, mut stream) in [("idle", idle), ("kept-alive", kept)] {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut rest = Vec::new();
        stream
            .read_to_end(&mut rest)
            .unwrap_or_else(|e| panic!("the {what} connection was not closed: {e}"));
    }
    assert_eq!(count(&db_path, "batches"), 0, "nothing was stored");
    let health = raw_get(&server.addr, "/healthz", Duration::from_secs(5)).unwrap();
    assert_eq!(health.status, 200);
}

#[test]
fn connections_over_the_cap_are_refused_at_once_and_the_server_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("server.db").display());
    let server = spawn_district(&db, &["--max-connections", "30"], &[]);
    let held: Vec<TcpStream> = (0..30)
        .map(|_| TcpStream::connect(&server.addr).unwrap())
        .collect();
    // The server must have accepted all 30 before the next one counts as over the cap.
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let refused = raw_get(&server.addr, "/healthz", Duration::from_secs(5)).unwrap();
    assert_eq!(refused.status, 503, "{refused:?}");
    assert!(refused.head.contains("Retry-After: 10"), "{refused:?}");
    assert!(refused.body.contains("too-many-connections"), "{refused:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
    drop(held);
    support::poll_until(
        "the server to take connections again",
        Duration::from_secs(10),
        || {
            raw_get(&server.addr, "/healthz", Duration::from_secs(5))
                .ok()
                .filter(|a| a.status == 200)
        },
    );
}

#[test]
fn a_batch_that_inflates_to_millions_of_empty_arrays_costs_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("server.db");
    let db = format!("sqlite:{}", db_path.display());
    let token = support::enroll_pc(&db, "penuh", "pc-01");
    let server = spawn_district(&db, &[], &[]);
    // Warm the server up with one request of each kind, so the baseline includes its
    // steady-state allocations.
    let health = raw_get(&server.addr, "/healthz", Duration::from_secs(5)).unwrap();
    assert_eq!(health.status, 200);

    // The bomb: a batch whose `purposes` column holds 16 MiB of `[]`, about 2 kB
    // as zstd (refused while it inflates), and one that fits the inflate limit (refused
    // while it is parsed, at the first array entry past the wire format's limit).
    let bomb = |bytes: usize| {
        let json = format!(
            "{{\"wire_version\":1,\"batch_id\":\"{}\",\"library\":\"penuh\",\"pc\":\"pc-01\",\
             \"epoch\":\"{}\",\"first_seq\":1,\"last_seq\":1,\
             \"sent\":{{\"run\":\"{}\",\"mono_ms\":1,\"wall_ms\":1790000000000}},\
             \"runs\":[],\"anchors\":[],\"patron_keys\":[],\"sessions\":{{\"purposes\":[{}[]]}}}}",
            uuid::Uuid::now_v7(),
            uuid::Uuid::now_v7(),
            uuid::Uuid::now_v7(),
            "[],".repeat(bytes / 3)
        );
        zstd::encode_all(json.as_bytes(), 3).unwrap()
    };
    let bombs = [(bomb(16 << 20), 413), (bomb((4 << 20) - 4096), 422)];
    for (body, _) in &bombs {
        assert!(body.len() < 64 * 1024, "{} bytes compressed", body.len());
    }
    let baseline = server.peak_rss_kib();
    for round in 0..10 {
        let (body, expected) = &bombs[round % 2];
        let mut request = format!(
            "POST /api/v1/batches HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/vnd.jejak.batch.v1+json\r\nContent-Encoding: zstd\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            server.addr,
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        let answer = raw_request(&server.addr, &request, Duration::from_secs(30)).unwrap();
        assert_eq!(answer.status, *expected, "round {round}: {answer:?}");
    }
    let growth_kib = server.peak_rss_kib().saturating_sub(baseline);
    eprintln!("peak RSS grew by {growth_kib} KiB over 10 bombs (baseline {baseline} KiB)");
    assert!(
        growth_kib < 24 * 1024,
        "the bombs drove the server's peak memory up by {growth_kib} KiB"
    );
    assert_eq!(count(&db_path, "batches"), 0, "nothing was stored");
}
