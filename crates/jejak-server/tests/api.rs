//! The HTTP API against a real server on loopback over a real SQLite file.
#![allow(clippy::unwrap_used)]

mod common;

use chrono::{DateTime, DurationRound, Utc};
use common::{TestServer, gzip};
use jejak_domain::{
    ChangeRecord, ClientInstant, ClockAnchor, EndReason, LibraryCode, PcCode, PcEvent, PcEventKind,
    RecordBody, TimeQuality, WireBatch,
};
use jejak_server::{ServerStore, StoredSession};
use jejak_testkit::sim::{self, SimLog, SimPc};
use uuid::Uuid;

fn sim_pc(library: &str, pc: &str, clock_error_ms: i64) -> SimPc {
    SimPc {
        library: LibraryCode::parse(library).unwrap(),
        pc: PcCode::parse(pc).unwrap(),
        epoch: Uuid::new_v4(),
        clock_error_ms,
    }
}

/// `sessions` sessions (a few a day) ending before `now`, synced at `now - 1 s`.
fn week(pc: &SimPc, sessions: usize, now: DateTime<Utc>, seed: u64) -> (SimLog, DateTime<Utc>) {
    let days = sessions as i64 / 3 + 2;
    let first_day = (now - chrono::Duration::days(days))
        .duration_trunc(chrono::Duration::days(1))
        .unwrap();
    let log = sim::simulate(pc, sessions, first_day, seed);
    (log, now - chrono::Duration::seconds(1))
}

fn stored<'a>(sessions: &'a [StoredSession], id: &Uuid) -> &'a StoredSession {
    sessions.iter().find(|s| s.id == *id).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_stored_with_corrected_times_and_acknowledged() {
    let server = TestServer::start().await;
    let (token, device) = server.enroll("dermaji", "pc-01").await;
    // The PC's clock is 90 s fast; the anchors date its runs exactly.
    let pc = sim_pc("dermaji", "pc-01", 90_000);
    let (mut log, sync_at) = week(&pc, 12, server.clock.now(), 1);
    // A pc event at the end of the log.
    let (run, boot) = *log.runs.last().unwrap();
    let event_at = sync_at - chrono::Duration::minutes(5);
    log.records.push(ChangeRecord {
        seq: 13,
        recorded_at: event_at,
        run_id: run,
        mono_ms: (event_at - boot).num_milliseconds() as u64,
        body: RecordBody::PcEvent(PcEvent {
            id: Uuid::now_v7(),
            library: pc.library.clone(),
            pc: pc.pc.clone(),
            kind: PcEventKind::InternetUp,
            at: event_at + chrono::Duration::milliseconds(pc.clock_error_ms),
            run_id: run,
            mono_ms: (event_at - boot).num_milliseconds() as u64,
            clock_delta_ms: None,
        }),
    });
    let batch = sim::batches(&pc, &log, 100, sync_at).remove(0);
    assert_eq!((batch.first_seq, batch.last_seq), (1, 13));

    let before = server.clock.now().timestamp_millis();
    let (status, ack) = server.post(&token, &batch).await;
    let after = server.clock.now().timestamp_millis();
    assert_eq!(status, 200, "{ack}");
    assert_eq!(ack["batch_id"], batch.batch_id.to_string());
    assert_eq!(ack["epoch"], pc.epoch.to_string());
    assert_eq!(ack["held_seq"], 13);
    assert_eq!(ack["new"], 13);
    assert_eq!(ack["duplicates"], 0);
    assert_eq!(ack["rejected"], serde_json::json!([]));
    let t2 = ack["received_at_ms"].as_i64().unwrap();
    let t3 = ack["sent_at_ms"].as_i64().unwrap();
    assert!(before <= t2 && t2 <= t3 && t3 <= after, "{t2} {t3}");

    let sessions = server.store.sessions(&device).await.unwrap();
    assert_eq!(sessions.len(), 12);
    for (id, truth) in &log.true_starts {
        let s = stored(&sessions, id);
        let error = (s.corrected_start - *truth).num_milliseconds().abs();
        assert!(error < 1_000, "corrected start is {error} ms off");
        assert_eq!(s.time_quality, TimeQuality::Corrected);
        assert_eq!(
            (s.raw_start - *truth).num_milliseconds(),
            90_000,
            "the raw time is kept exactly"
        );
        let sent = log
            .records
            .iter()
            .find_map(|r| match &r.body {
                RecordBody::Session(x) if x.id == *id => Some(x),
                _ => None,
            })
            .unwrap();
        assert!(s.matches(sent), "{s:?} vs {sent:?}");
    }
    let events = server.store.events(&device).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, PcEventKind::InternetUp);
    assert!((events[0].corrected_at - event_at).num_milliseconds().abs() < 1_000);

    let me: serde_json::Value = server
        .http
        .get(format!("{}/api/v1/devices/me", server.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["library"], "dermaji");
    assert_eq!(me["epochs"][0]["held_seq"], 13);
    assert_eq!(me["sessions"], 12);
    assert_eq!(me["events"], 1);
    let offset = me["clock_offset_ms"].as_i64().unwrap();
    assert!((offset + 90_000).abs() < 1_000, "offset {offset}");
    // The record kinds this server stores, so a PC holds back only what it cannot take.
    assert_eq!(
        me["accepts"],
        serde_json::json!(["session", "pc_event", "visit", "member_count", "activity"])
    );
    server.assert_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_batch_twice_at_once_and_weeks_later_is_stored_once() {
    let server = TestServer::start().await;
    let (token, device) = server.enroll("dermaji", "pc-01").await;
    let pc = sim_pc("dermaji", "pc-01", 0);
    let (log, sync_at) = week(&pc, 30, server.clock.now(), 2);
    let batch = sim::batches(&pc, &log, 100, sync_at).remove(0);

    let (a, b) = tokio::join!(server.post(&token, &batch), server.post(&token, &batch));
    assert_eq!((a.0, b.0), (200, 200), "{} {}", a.1, b.1);
    let new = a.1["new"].as_u64().unwrap() + b.1["new"].as_u64().unwrap();
    let dup = a.1["duplicates"].as_u64().unwrap() + b.1["duplicates"].as_u64().unwrap();
    assert_eq!((new, dup), (30, 30));
    assert_eq!(a.1["held_seq"], 30);
    assert_eq!(b.1["held_seq"], 30);

    let stored_before = server.store.sessions(&device).await.unwrap();
    server.clock.advance(chrono::Duration::weeks(7));
    let (status, ack) = server.post(&token, &batch).await;
    assert_eq!(status, 200, "{ack}");
    assert_eq!(
        (ack["new"].as_u64(), ack["duplicates"].as_u64()),
        (Some(0), Some(30))
    );
    assert_eq!(ack["held_seq"], 30);
    assert_eq!(server.store.sessions(&device).await.unwrap(), stored_before);
    let (sessions, _, batches) = server.count_rows();
    assert_eq!((sessions, batches), (30, 1), "one copy, one batch row");
    server.assert_healthy().await;
}

/// A batch of one session record at `seq`, as `WireBatch::encode` makes it.
fn one_session_batch(pc: &SimPc, log: &SimLog, index: usize, seq: u64) -> WireBatch {
    let mut record = log.records[index].clone();
    record.seq = seq;
    let sync_at = Utc::now() - chrono::Duration::seconds(1);
    let mut single = log.clone();
    single.records = vec![record];
    let mut batch = sim::batches(pc, &single, 10, sync_at).remove(0);
    batch.first_seq = seq;
    batch.last_seq = seq;
    batch
}

fn session_mut(record: &mut ChangeRecord) -> &mut jejak_domain::Session {
    match &mut record.body {
        RecordBody::Session(s) => s,
        _ => panic!("not a session"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_are_reported_and_higher_revisions_replace() {
    let server = TestServer::start().await;
    let (token, device) = server.enroll("dermaji", "pc-01").await;
    let pc = sim_pc("dermaji", "pc-01", 0);
    let (mut log, _) = week(&pc, 3, server.clock.now(), 3);
    session_mut(&mut log.records[0]).revision = 2;
    let id = session_mut(&mut log.records[0]).id;

    let (status, ack) = server
        .post(&token, &one_session_batch(&pc, &log, 0, 1))
        .await;
    assert_eq!((status, ack["new"].as_u64()), (200, Some(1)), "{ack}");
    let original = stored(&server.store.sessions(&device).await.unwrap(), &id).clone();

    // Same id, same revision, other content: a conflict, the stored one is kept.
    let mut changed = log.clone();
    session_mut(&mut changed.records[0]).duration_secs += 600;
    session_mut(&mut changed.records[0]).ended_at = None;
    session_mut(&mut changed.records[0]).end_reason = None;
    let (status, ack) = server
        .post(&token, &one_session_batch(&pc, &changed, 0, 2))
        .await;
    assert_eq!(status, 200, "{ack}");
    assert_eq!(ack["new"], 0);
    assert_eq!(ack["rejected"][0]["seq"], 2);
    assert_eq!(ack["rejected"][0]["code"], "conflict");
    assert_eq!(
        ack["held_seq"], 2,
        "a rejected record does not block the queue"
    );
    assert_eq!(
        stored(&server.store.sessions(&device).await.unwrap(), &id),
        &original
    );

    // A higher revision replaces it; a lower one afterwards is a duplicate.
    let mut newer = changed.clone();
    session_mut(&mut newer.records[0]).revision = 3;
    let (status, ack) = server
        .post(&token, &one_session_batch(&pc, &newer, 0, 3))
        .await;
    assert_eq!((status, ack["new"].as_u64()), (200, Some(1)), "{ack}");
    let replaced = stored(&server.store.sessions(&device).await.unwrap(), &id).clone();
    assert_eq!(replaced.revision, 3);
    assert_eq!(replaced.end_reason, None);
    assert_eq!(replaced.duration_secs, original.duration_secs + 600);
    let (status, ack) = server
        .post(&token, &one_session_batch(&pc, &log, 0, 4))
        .await;
    assert_eq!(
        (status, ack["duplicates"].as_u64()),
        (200, Some(1)),
        "{ack}"
    );
    assert_eq!(
        stored(&server.store.sessions(&device).await.unwrap(), &id),
        &replaced
    );

    // An invalid record is rejected and stored for review; the rest goes in.
    let mut invalid = log.clone();
    session_mut(&mut invalid.records[1]).patron.group_size = 0;
    let mut batch = sim::batches(&pc, &invalid, 10, Utc::now()).remove(0);
    batch.first_seq = 5;
    batch.last_seq = 7;
    let batch = reseq(batch, &invalid, 5);
    let (status, ack) = server.post(&token, &batch).await;
    assert_eq!(status, 200, "{ack}");
    assert_eq!(ack["rejected"][0]["code"], "invalid");
    assert_eq!(ack["rejected"][0]["seq"], 6);
    assert_eq!(ack["held_seq"], 7);
    let me = server.store.device_state(&device).await.unwrap();
    assert_eq!((me.sessions, me.rejected), (2, 2));
}

/// The log's records renumbered from `first` and encoded again.
fn reseq(batch: WireBatch, log: &SimLog, first: u64) -> WireBatch {
    let records: Vec<ChangeRecord> = log
        .records
        .iter()
        .enumerate()
        .map(|(i, r)| ChangeRecord {
            seq: first + i as u64,
            ..r.clone()
        })
        .collect();
    WireBatch::encode(
        batch.batch_id,
        batch.library,
        batch.pc,
        batch.epoch,
        first,
        first + records.len() as u64 - 1,
        batch.sent,
        batch.anchors,
        &records,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_is_refused_with_the_expected_seq_and_a_forged_device_with_403() {
    let server = TestServer::start().await;
    let (token, device) = server.enroll("dermaji", "pc-01").await;
    let (other_token, _) = server.enroll("kalisari", "pc-02").await;
    let pc = sim_pc("dermaji", "pc-01", 0);
    let (log, sync_at) = week(&pc, 10, server.clock.now(), 4);
    let batches = sim::batches(&pc, &log, 4, sync_at);

    let (status, problem) = server.post(&token, &batches[1]).await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["type"], "seq-gap");
    assert_eq!(problem["expected_seq"], 1);
    assert_eq!(server.count_rows(), (0, 0, 0));

    assert_eq!(server.post(&token, &batches[0]).await.0, 200);
    let (status, problem) = server.post(&token, &batches[2]).await;
    assert_eq!((status, problem["expected_seq"].as_u64()), (409, Some(5)));
    assert_eq!(server.post(&token, &batches[1]).await.0, 200);
    assert_eq!(server.post(&token, &batches[2]).await.0, 200);
    let state = server.store.device_state(&device).await.unwrap();
    assert_eq!(state.epochs[0].held_seq, 10);

    // Library kalisari's token sending dermaji's records: refused, nothing written.
    let before = server.count_rows();
    let other_pc = sim_pc("dermaji", "pc-01", 0);
    let (log, sync_at) = week(&other_pc, 5, server.clock.now(), 5);
    let forged = sim::batches(&other_pc, &log, 10, sync_at).remove(0);
    let (status, problem) = server.post(&other_token, &forged).await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(problem["type"], "forbidden");
    assert_eq!(server.count_rows(), before);
    server.assert_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked_before_anything_is_read() {
    let server = TestServer::start().await;
    let (token, _) = server.enroll("dermaji", "pc-01").await;
    let staff = server.store.add_staff("Bu Sri").await.unwrap();
    let pc = sim_pc("dermaji", "pc-01", 0);
    let (log, sync_at) = week(&pc, 3, server.clock.now(), 6);
    let batch = sim::batches(&pc, &log, 10, sync_at).remove(0);

    let (status, problem) = server.post("jejak_dev_not-a-real-token", &batch).await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _, problem) = server
        .post_raw(
            None,
            "application/json",
            None,
            serde_json::to_vec(&batch).unwrap(),
        )
        .await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, problem) = server.post(staff.expose(), &batch).await;
    assert_eq!((status, problem["type"].as_str()), (403, Some("forbidden")));
    let me = server
        .http
        .get(format!("{}/api/v1/devices/me", server.url))
        .bearer_auth(staff.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(me.status().as_u16(), 403);

    server
        .store
        .revoke_device(&pc.library, &pc.pc)
        .await
        .unwrap();
    let (status, problem) = server.post(&token, &batch).await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (401, Some("token-revoked"))
    );
    assert_eq!(server.count_rows(), (0, 0, 0));

    // Enrolled again, the PC keeps its place: same device, new token.
    let (token, _) = server.enroll("dermaji", "pc-01").await;
    assert_eq!(server.post(&token, &batch).await.0, 200);
    server.assert_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_get_the_right_4xx_and_change_nothing() {
    let server = TestServer::start().await;
    let (token, _) = server.enroll("dermaji", "pc-01").await;
    let pc = sim_pc("dermaji", "pc-01", 0);
    let (log, sync_at) = week(&pc, 3, server.clock.now(), 7);
    let batch = sim::batches(&pc, &log, 10, sync_at).remove(0);
    let json = serde_json::to_string(&batch).unwrap();
    let media = jejak_domain::BATCH_MEDIA_TYPE;

    // (what, body, Content-Encoding, Content-Type, status, problem type)
    type Case<'a> = (&'a str, Vec<u8>, Option<&'a str>, &'a str, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "truncated JSON",
            json[..json.len() / 2].into(),
            None,
            media,
            400,
            "malformed-json",
        ),
        (
            "not JSON",
            b"hello".to_vec(),
            None,
            media,
            400,
            "malformed-json",
        ),
        (
            "wrong type",
            json.replacen("\"wire_version\":1", "\"wire_version\":\"1\"", 1)
                .into(),
            None,
            media,
            422,
            "invalid-batch",
        ),
        (
            "unknown enum value",
            json.replace("\"logout\"", "\"teleported\"").into(),
            None,
            media,
            422,
            "invalid-batch",
        ),
        (
            "unknown field",
            json.replacen('{', "{\"extra\":1,", 1).into(),
            None,
            media,
            422,
            "invalid-batch",
        ),
        (
            "columns of different lengths",
            json.replacen("\"revision\":[", "\"revision\":[9,", 1)
                .into(),
            None,
            media,
            422,
            "invalid-batch",
        ),
        (
            "a seq the store cannot hold",
            json.replacen("\"first_seq\":1,", "\"first_seq\":9223372036854775818,", 1)
                .replacen("\"last_seq\":3,", "\"last_seq\":9223372036854775820,", 1)
                .into(),
            None,
            media,
            422,
            "invalid-batch",
        ),
        (
            "corrupt zstd",
            b"\x28\xb5\x2f\xfdgarbage".to_vec(),
            Some("zstd"),
            media,
            400,
            "malformed-body",
        ),
        (
            "unknown encoding",
            json.clone().into(),
            Some("br"),
            media,
            415,
            "unsupported-media-type",
        ),
        (
            "wrong media type",
            json.clone().into(),
            None,
            "text/html",
            415,
            "unsupported-media-type",
        ),
    ];
    for (name, body, encoding, content_type, want, kind) in cases {
        let (status, ctype, problem) = server
            .post_raw(Some(&token), content_type, encoding, body)
            .await;
        assert_eq!(status, want, "{name}: {problem}");
        assert_eq!(problem["type"], kind, "{name}");
        assert_eq!(ctype, "application/problem+json", "{name}");
        assert_eq!(problem["status"], want, "{name}");
        assert_eq!(server.count_rows(), (0, 0, 0), "{name} wrote something");
    }
    // The same batch is accepted as plain JSON and gzip.
    let (status, _, ack) = server
        .post_raw(
            Some(&token),
            "application/json; charset=utf-8",
            Some("gzip"),
            gzip(json.as_bytes()),
        )
        .await;
    assert_eq!(status, 200, "{ack}");
    server.assert_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_bombs_and_long_batches_are_refused_with_413() {
    let server = TestServer::start().await;
    let (token, _) = server.enroll("dermaji", "pc-01").await;
    let media = jejak_domain::BATCH_MEDIA_TYPE;

    // 3 MiB sent as is: over the 2 MiB compressed limit.
    let (status, _, problem) = server
        .post_raw(Some(&token), media, None, vec![b' '; 3 << 20])
        .await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (413, Some("payload-too-large"))
    );

    // The same without Content-Length (chunked): refused while it streams.
    let status = chunked_post(&server, &token, 3 << 20).await;
    assert_eq!(status, 413);

    // 100 MB of zeros in a few kilobytes of zstd, without a declared size.
    let mut bomb = Vec::new();
    {
        use std::io::Write;
        let mut encoder = zstd::stream::write::Encoder::new(&mut bomb, 1).unwrap();
        encoder.include_contentsize(false).unwrap();
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..100 {
            encoder.write_all(&chunk).unwrap();
        }
        encoder.finish().unwrap();
    }
    assert!(bomb.len() < 64 << 10, "{}", bomb.len());
    let started = std::time::Instant::now();
    let (status, _, problem) = server
        .post_raw(Some(&token), media, Some("zstd"), bomb)
        .await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (413, Some("payload-too-large"))
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));

    // A gzip bomb: 20 MiB of zeros.
    let (status, _, _) = server
        .post_raw(
            Some(&token),
            media,
            Some("gzip"),
            gzip(&vec![0u8; 20 << 20]),
        )
        .await;
    assert_eq!(status, 413);

    // 5,001 records: one more than a batch may carry.
    let pc = sim_pc("dermaji", "pc-01", 0);
    let (log, sync_at) = week(&pc, 5_001, server.clock.now(), 8);
    let batch = sim::batches(&pc, &log, 6_000, sync_at).remove(0);
    let (status, problem) = server.post(&token, &batch).await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (413, Some("too-many-records"))
    );
    assert_eq!(server.count_rows(), (0, 0, 0));
    server.assert_healthy().await;
}

/// Posts `size` bytes with chunked transfer encoding over a raw connection and returns
/// the answer's status.
async fn chunked_post(server: &TestServer, token: &str, size: usize) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/batches HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b' '; 64 << 10];
    let mut sent = 0;
    while sent < size {
        let frame = format!("{:x}\r\n", chunk.len());
        // The server may answer and close before everything is sent.
        if conn.write_all(frame.as_bytes()).await.is_err()
            || conn.write_all(&chunk).await.is_err()
            || conn.write_all(b"\r\n").await.is_err()
        {
            break;
        }
        sent += chunk.len();
    }
    let _ = conn.write_all(b"0\r\n\r\n").await;
    let mut answer = vec![0u8; 64];
    let n = conn.read(&mut answer).await.unwrap();
    let line = String::from_utf8_lossy(&answer[..n]).to_string();
    line.split(' ').nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_three_years_behind_is_corrected_by_the_anchor() {
    let server = TestServer::start().await;
    let (token, device) = server.enroll("dermaji", "pc-01").await;
    let three_years_ms = 3 * 365 * 86_400_000i64;
    let pc = sim_pc("dermaji", "pc-01", -three_years_ms);
    let (mut log, sync_at) = week(&pc, 8, server.clock.now(), 9);
    for record in &mut log.records {
        // The agent flags times from a clock before its build date.
        session_mut(record).time_quality = TimeQuality::Estimated;
    }
    let batch = sim::batches(&pc, &log, 10, sync_at).remove(0);
    let (status, ack) = server.post(&token, &batch).await;
    assert_eq!(status, 200, "{ack}");
    let sessions = server.store.sessions(&device).await.unwrap();
    for (id, truth) in &log.true_starts {
        let s = stored(&sessions, id);
        let error = (s.corrected_start - *truth).num_milliseconds().abs();
        assert!(error < 2_000, "{error} ms off");
        assert_eq!(
            s.time_quality,
            TimeQuality::Corrected,
            "an anchor dates the session whatever the PC's wall clock said"
        );
        assert_eq!((s.raw_start - *truth).num_milliseconds(), -three_years_ms);
    }

    // Without an anchor, the offset measured at send time corrects the next batch (and
    // flags it estimated).
    let mut late = sim::simulate(
        &pc,
        3,
        sync_at.duration_trunc(chrono::Duration::days(1)).unwrap() - chrono::Duration::days(1),
        10,
    );
    for (i, record) in late.records.iter_mut().enumerate() {
        record.seq = 9 + i as u64;
    }
    let mut batch = sim::batches(&pc, &late, 10, sync_at).remove(0);
    batch.anchors.clear();
    let batch = WireBatch {
        sent: ClientInstant {
            run: Uuid::new_v4(),
            ..batch.sent
        },
        ..batch
    };
    let (status, ack) = server.post(&token, &batch).await;
    assert_eq!(status, 200, "{ack}");
    let sessions = server.store.sessions(&device).await.unwrap();
    for (id, truth) in &late.true_starts {
        let s = stored(&sessions, id);
        let error = (s.corrected_start - *truth).num_milliseconds().abs();
        assert!(error < 5_000, "{error} ms off");
        assert_eq!(s.time_quality, TimeQuality::Estimated);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_pcs_syncing_at_once_lose_nothing() {
    let server = TestServer::start().await;
    let mut pcs = Vec::new();
    for i in 0..50 {
        let library = format!("lib-{:02}", i / 3);
        let pc_code = format!("pc-{:02}", i % 3 + 1);
        let (token, device) = server.enroll(&library, &pc_code).await;
        pcs.push((token, device, sim_pc(&library, &pc_code, 0)));
    }
    let now = server.clock.now();
    let mut tasks = Vec::new();
    for (i, (token, _, pc)) in pcs.iter().enumerate() {
        let (log, sync_at) = week(pc, 60, now, 100 + i as u64);
        let batches = sim::batches(pc, &log, 20, sync_at);
        let http = server.http.clone();
        let url = format!("{}/api/v1/batches", server.url);
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            for batch in batches {
                let body =
                    zstd::encode_all(serde_json::to_vec(&batch).unwrap().as_slice(), 3).unwrap();
                let response = http
                    .post(&url)
                    .bearer_auth(&token)
                    .header("Content-Type", jejak_domain::BATCH_MEDIA_TYPE)
                    .header("Content-Encoding", "zstd")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                let ack: serde_json::Value = response.json().await.unwrap();
                assert_eq!(status, 200, "{ack}");
                assert_eq!(ack["new"], 20);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let (sessions, _, batches) = server.count_rows();
    assert_eq!((sessions, batches), (3_000, 150));
    for (_, device, _) in &pcs {
        let state = server.store.device_state(device).await.unwrap();
        assert_eq!((state.sessions, state.epochs[0].held_seq), (60, 60));
    }
    server.assert_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_batch_is_already_committed() {
    let server = TestServer::start().await;
    let (token, _) = server.enroll("dermaji", "pc-01").await;
    let pc = sim_pc("dermaji", "pc-01", 0);
    let (log, sync_at) = week(&pc, 40, server.clock.now(), 11);
    for (i, batch) in sim::batches(&pc, &log, 10, sync_at).iter().enumerate() {
        let (status, ack) = server.post(&token, batch).await;
        assert_eq!(status, 200, "{ack}");
        // A connection of another process's kind sees it the moment the answer arrives.
        assert_eq!(server.count_rows().0, 10 * (i as i64 + 1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operational_endpoints_answer_as_documented() {
    let mut server = TestServer::start().await;
    let (token, _) = server.enroll("dermaji", "pc-01").await;
    server.assert_healthy().await;

    let time: serde_json::Value = server
        .http
        .get(format!("{}/api/v1/time", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let t2 = time["received_at_ms"].as_i64().unwrap();
    assert!(t2 <= time["sent_at_ms"].as_i64().unwrap());
    assert!((t2 - Utc::now().timestamp_millis()).abs() < 5_000);

    let pc = sim_pc("dermaji", "pc-01", 0);
    let (log, sync_at) = week(&pc, 5, server.clock.now(), 12);
    let batch = sim::batches(&pc, &log, 10, sync_at).remove(0);
    assert_eq!(server.post(&token, &batch).await.0, 200);
    assert_eq!(server.post("jejak_dev_x", &batch).await.0, 401);
    let metrics = server
        .http
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("jejak_batches_total{result=\"accepted\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("jejak_batches_total{result=\"unauthorized\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("jejak_records_total{outcome=\"new\"} 5"),
        "{metrics}"
    );
    assert!(
        metrics.contains("jejak_ingest_duration_seconds_count 1"),
        "{metrics}"
    );

    let doc: serde_json::Value = server
        .http
        .get(format!("{}/api/v1/openapi.json", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/batches",
        "/api/v1/devices/me",
        "/api/v1/time",
        "/healthz",
        "/metrics",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    assert_eq!(
        doc["components"]["schemas"]["RecordKind"]["enum"],
        serde_json::json!(["session", "pc_event", "visit", "member_count", "activity"])
    );
    // The report endpoints: staff token, every media type, every refusal documented.
    assert!(doc["components"]["securitySchemes"]["staff_token"].is_object());
    for path in [
        "/api/v1/reports/village",
        "/api/v1/reports/district",
        "/api/v1/reports/quarter",
        "/api/v1/reports/year",
        "/api/v1/reports/ops",
    ] {
        let get = &doc["paths"][path]["get"];
        assert!(get.is_object(), "{path} missing");
        assert_eq!(
            get["security"],
            serde_json::json!([{ "staff_token": [] }]),
            "{path}"
        );
        let names: Vec<&str> = get["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        for name in ["format", "lang", "suppress_below", "table"] {
            assert!(names.contains(&name), "{path} lacks {name}: {names:?}");
        }
        for media in [
            "application/json",
            "text/csv; charset=utf-8",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "text/html; charset=utf-8",
        ] {
            assert!(
                get["responses"]["200"]["content"][media].is_object(),
                "{path} 200 lacks {media}"
            );
        }
        for status in ["400", "401", "403"] {
            assert!(
                get["responses"][status].is_object(),
                "{path} lacks {status}"
            );
        }
    }
    assert!(doc["paths"]["/api/v1/reports/village"]["get"]["responses"]["404"].is_object());
    let schemas = &doc["components"]["schemas"];
    for name in [
        "WireBatch",
        "SessionColumns",
        "BatchAck",
        "Problem",
        "EndReason",
        "DeviceState",
    ] {
        assert!(schemas[name].is_object(), "{name} missing");
    }
    assert_eq!(
        schemas["EndReason"]["enum"],
        serde_json::json!(EndReason::codes())
    );

    let missing = server
        .http
        .get(format!("{}/api/v1/nothing", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    assert_eq!(
        missing.headers().get("content-type").unwrap(),
        "application/problem+json"
    );
    let wrong = server
        .http
        .get(format!("{}/api/v1/batches", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 405);

    // Graceful shutdown: `run` returns, and the port no longer answers.
    server.stop().await.unwrap();
    assert!(
        server
            .http
            .get(format!("{}/healthz", server.url))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anchors_are_kept_per_run_and_the_best_one_wins() {
    let server = TestServer::start().await;
    let (token, device) = server.enroll("dermaji", "pc-01").await;
    let pc = sim_pc("dermaji", "pc-01", 45_000);
    let (log, sync_at) = week(&pc, 6, server.clock.now(), 13);
    let mut batches = sim::batches(&pc, &log, 3, sync_at);
    // The first batch carries the anchors; the second none: the stored ones date it.
    let anchors: Vec<ClockAnchor> = batches[0].anchors.clone();
    batches[1].anchors.clear();
    assert_eq!(server.post(&token, &batches[0]).await.0, 200);
    assert_eq!(server.post(&token, &batches[1]).await.0, 200);
    let sessions = server.store.sessions(&device).await.unwrap();
    for (id, truth) in &log.true_starts {
        let s = stored(&sessions, id);
        let runs_anchored = anchors.iter().any(|a| {
            log.records.iter().any(|r| {
                r.run_id == a.run && matches!(&r.body, RecordBody::Session(x) if x.id == *id)
            })
        });
        if runs_anchored {
            assert_eq!(s.time_quality, TimeQuality::Corrected);
            assert!((s.corrected_start - *truth).num_milliseconds().abs() < 1_000);
        }
    }
}

/// The dashboard answers only IP addresses, `localhost` and the names it is given (a
/// page of another site pointed at this server by DNS rebinding names its own host);
/// behind TLS its cookies are `Secure`. The API, which PCs reach by the district's
/// name, is not restricted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_answers_only_its_hosts_and_marks_cookies_secure_behind_tls() {
    let server = TestServer::start_configured(
        jejak_server::Limits::default(),
        jejak_server::DashboardSettings {
            hosts: vec!["perpusda.example.go.id".into()],
            secure_cookies: true,
        },
    )
    .await;
    let staff = server.store.add_staff("dinas").await.unwrap();
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let sign_in = |host: &'static str| {
        no_redirects
            .post(format!("{}/dashboard/login", server.url))
            .header("Host", host)
            .form(&[("token", staff.expose())])
            .send()
    };
    let refused = sign_in("evil.example").await.unwrap();
    assert_eq!(refused.status().as_u16(), 421);
    assert!(refused.headers().get("set-cookie").is_none());
    let page = no_redirects
        .get(format!("{}/dashboard/login", server.url))
        .header("Host", "evil.example:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 421);

    for host in ["perpusda.example.go.id", "127.0.0.1"] {
        let signed_in = sign_in(host).await.unwrap();
        assert_eq!(signed_in.status().as_u16(), 303, "{host}");
        let cookie = signed_in.headers()["set-cookie"].to_str().unwrap();
        assert!(cookie.starts_with("jejak_session="), "{cookie}");
        assert!(cookie.ends_with("; Secure"), "{cookie}");
        assert!(cookie.contains("HttpOnly"), "{cookie}");
    }
    // PCs reach the API under the district's name, configured or not.
    let health = server
        .http
        .get(format!("{}/healthz", server.url))
        .header("Host", "any-name.example")
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);

    // Without the setting, no Secure (plain HTTP on a LAN must keep working).
    let plain = TestServer::start().await;
    let staff = plain.store.add_staff("dinas").await.unwrap();
    let signed_in = no_redirects
        .post(format!("{}/dashboard/login", plain.url))
        .form(&[("token", staff.expose())])
        .send()
        .await
        .unwrap();
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap();
    assert!(!cookie.contains("Secure"), "{cookie}");
}

/// A batch whose library or PC is spelled with spaces is refused as a whole (422), not
/// taken for the token's own: the wire is exact, whatever people may type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_library_or_pc_with_spaces_is_refused_and_nothing_is_stored() {
    let server = TestServer::start().await;
    let (token, _) = server.enroll("3302012001", "pc-01").await;
    let pc = sim_pc("3302012001", "pc-01", 0);
    let (log, now) = week(&pc, 3, Utc::now(), 5);
    let batch = sim::batches(&pc, &log, 10, now).remove(0);
    for (field, spelled) in [("library", " 3302012001"), ("pc", "pc-01 ")] {
        let mut document = serde_json::to_value(&batch).unwrap();
        document[field] = serde_json::Value::from(spelled);
        let (status, kind, problem) = server
            .post_raw(
                Some(&token),
                "application/json",
                None,
                serde_json::to_vec(&document).unwrap(),
            )
            .await;
        assert_eq!(status, 422, "{field}: {problem}");
        assert_eq!(kind, "application/problem+json");
        assert_eq!(problem["type"], "invalid-batch");
    }
    assert_eq!(server.count_rows(), (0, 0, 0), "nothing was stored");
    let (status, _) = server.post(&token, &batch).await;
    assert_eq!(status, 200, "the same batch, spelled exactly, is stored");
}

/// `PUT /api/v1/devices/me/key`: a device token registers its PC's Ed25519 public key
/// once; anything that is not such a key, a staff token, no token and a second key are
/// refused with their problem, and none of them changes what is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pc_registers_its_signing_key_once_and_bad_registrations_change_nothing() {
    let server = TestServer::start().await;
    let (token, device) = server.enroll("dermaji", "pc-01").await;
    let staff = server.store.add_staff("Bu Sri").await.unwrap();
    let url = format!("{}/api/v1/devices/me/key", server.url);
    let put = async |bearer: Option<&str>, body: String| {
        let mut request = server
            .http
            .put(&url)
            .header("Content-Type", "application/json")
            .body(body);
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let kind = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        (status, kind, body)
    };
    let key_of = |seed: u8| ed25519_dalek::SigningKey::from_bytes(&[seed; 32]).verifying_key();
    let json = |hex_key: &str| format!("{{\"public_key\":\"{hex_key}\"}}");
    let stored = async || {
        server
            .store
            .device_keys(&device)
            .await
            .unwrap()
            .unwrap()
            .public_key
    };

    let mut identity = [0u8; 32];
    identity[0] = 1;
    let refusals = [
        (
            Some(token.as_str()),
            json(&"zz".repeat(32)),
            422,
            "invalid-key",
        ),
        (
            Some(token.as_str()),
            json(&"ab".repeat(31)),
            422,
            "invalid-key",
        ),
        // The identity point: a weak key anyone can sign for.
        (
            Some(token.as_str()),
            json(&hex::encode(identity)),
            422,
            "invalid-key",
        ),
        (
            Some(token.as_str()),
            "{\"key\":1}".to_string(),
            400,
            "malformed-json",
        ),
        (
            Some(token.as_str()),
            "x".repeat(5000),
            413,
            "payload-too-large",
        ),
        (
            Some(staff.expose()),
            json(&hex::encode(key_of(1).to_bytes())),
            403,
            "forbidden",
        ),
        (
            None,
            json(&hex::encode(key_of(1).to_bytes())),
            401,
            "unauthorized",
        ),
        (
            Some("jejak_dev_nobody"),
            json(&hex::encode(key_of(1).to_bytes())),
            401,
            "unauthorized",
        ),
    ];
    for (bearer, body, status, kind) in refusals {
        let (got, content_type, problem) = put(bearer, body.clone()).await;
        assert_eq!(
            (got, problem["type"].as_str()),
            (status, Some(kind)),
            "{body:.80}: {problem}"
        );
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(stored().await, None, "{body:.80}: nothing was stored");
    }

    let key = hex::encode(key_of(1).to_bytes());
    let (status, _, answer) = put(Some(&token), json(&key)).await;
    assert_eq!(
        (status, answer["new"].as_bool()),
        (200, Some(true)),
        "{answer}"
    );
    assert_eq!(answer["public_key"], key.as_str());
    assert_eq!(stored().await, Some(key_of(1).to_bytes()));
    let (status, _, answer) = put(Some(&token), json(&key.to_uppercase())).await;
    assert_eq!(
        (status, answer["new"].as_bool()),
        (200, Some(false)),
        "the same key again"
    );
    let (status, _, problem) = put(Some(&token), json(&hex::encode(key_of(2).to_bytes()))).await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (409, Some("key-conflict")),
        "{problem}"
    );
    assert_eq!(
        stored().await,
        Some(key_of(1).to_bytes()),
        "the first key stays"
    );
    server.assert_healthy().await;
}
