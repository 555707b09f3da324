//! HTTPS sync from a PC whose clock says 2000 (issue 14, part 2): the real `jejak server
//! run --tls-cert/--tls-key` with a certificate valid only around today, a PC enrolled
//! with the real `jejak enroll` (which records the server's key after a verified first
//! contact) and synced with the real `jejak sync`; then the same PC with its clock at
//! 1 January 2000 (the sync library over the PC's store with a manual clock, as the
//! agent's clock is set in tests): it syncs because the key is pinned, an ordinary
//! check without the pin refuses the certificate, and a server with another key is
//! refused with the PC's data kept.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use jejak_agent::clock::ManualClock;
use jejak_agent::config::AgentConfig;
use jejak_agent::store::Store;
use jejak_domain::{DeviceIdentity, LibraryCode, PatronProfile, PcCode, TimeQuality};
use jejak_server::{ServerStore, SqliteStore};
use jejak_sync::{ServerTrust, SyncClient, SyncError, SyncOptions, sync_once, tls};
use jejak_testkit::server::InProcessServer;
use support::{ChildGuard, TestPc, district_server, spawn_server_with};

const LIBRARY: &str = "dermaji";

/// A self-signed certificate for 127.0.0.1 and localhost, valid from yesterday for a
/// month: no clock in 2000 can call it valid.
fn certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let now = rcgen::date_time_ymd(1970, 1, 1)
        + Duration::from_secs(Utc::now().timestamp().max(0) as u64);
    params.not_before = now - Duration::from_secs(86_400);
    params.not_after = now + Duration::from_secs(30 * 86_400);
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (
        dir.join(format!("{name}.crt.pem")),
        dir.join(format!("{name}.key.pem")),
    );
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

/// `jejak server run` over HTTPS; its URL and the key it prints for enrolment.
fn spawn_tls_server(db: &Path, cert: &Path, key: &Path) -> (ChildGuard, String, String) {
    let (child, url, lines) = spawn_server_with(
        db,
        &[
            "--tls-cert".as_ref(),
            cert.as_os_str(),
            "--tls-key".as_ref(),
            key.as_os_str(),
        ],
    );
    assert!(url.starts_with("https://"), "{url}");
    let pin = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .expect("the server prints its key");
        if let Some(at) = line.find("sha256:") {
            break line[at..].trim().to_string();
        }
    };
    (child, url, pin)
}

fn identity(code: &str) -> DeviceIdentity {
    DeviceIdentity {
        library: LibraryCode::parse(LIBRARY).unwrap(),
        pc: PcCode::parse(code).unwrap(),
    }
}

/// The PC's store with its clock at 1 January 2000, 08:00 (a dead CMOS battery).
fn pc_in_2000(pc: &TestPc) -> (Store, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2000, 1, 1, 8, 0, 0).single().unwrap(),
    ));
    let (store, _) = Store::open(&pc.db_path(), identity("pc-01"), clock.clone()).unwrap();
    (store, clock)
}

fn options() -> SyncOptions {
    SyncOptions {
        backoff_base: Duration::from_millis(20),
        backoff_cap: Duration::from_millis(100),
        max_attempts: Some(2),
        ..SyncOptions::default()
    }
}

#[test]
fn a_pc_whose_clock_says_2000_syncs_over_https_with_the_pinned_key_and_refuses_another() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path(), "district");
    let db = dir.path().join("jejak-server.db");
    let token = district_server(&db, LIBRARY, &["pc-01"]).remove(0);
    let (running, url, printed_pin) = spawn_tls_server(&db, &cert, &key);

    // Enrolment: an ordinary, verified first contact (the district's certificate given
    // as a trust anchor, today's clock), which records the server's key.
    let pc = TestPc::initialised();
    let enrolled = pc
        .run(&[
            "--format",
            "json",
            "enroll",
            "--server",
            &url,
            "--token",
            &token,
            "--server-ca",
            cert.to_str().unwrap(),
        ])
        .ok()
        .json();
    assert_eq!(enrolled["server_key"], printed_pin.as_str(), "{enrolled}");
    let config = AgentConfig::load(&pc.data_dir).unwrap();
    assert_eq!(config.server_key.as_deref(), Some(printed_pin.as_str()));
    pc.start_session(&[
        "--purpose",
        "pendidikan",
        "--gender",
        "L",
        "--age",
        "remaja",
    ]);
    pc.run(&["session", "end"]).ok();
    pc.run(&["sync"]).ok();

    // The clock now says 2000. A session is recorded, then synced with only the pinned
    // key to trust (no CA file): the certificate is "not yet valid" by this clock, and
    // it does not matter.
    let (mut store, clock) = pc_in_2000(&pc);
    store.start_session(PatronProfile::default(), None).unwrap();
    clock.advance(Duration::from_secs(1_800));
    store
        .end_session(jejak_domain::EndReason::Logout, None)
        .unwrap();
    let pending = store.sync_state().unwrap().pending();
    assert!(pending > 0);
    let pinned_only = ServerTrust {
        pinned_key: Some(tls::parse_pin(&printed_pin).unwrap()),
        extra_roots: Vec::new(),
        clock: clock.clone(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // Without the pin, the ordinary check by a clock in 2000 refuses the certificate:
    // nothing is sent and nothing is lost.
    let unpinned = ServerTrust {
        pinned_key: None,
        extra_roots: tls::read_ca(&cert).unwrap(),
        clock: clock.clone(),
    };
    let client = SyncClient::with_trust(&url, &token, Duration::from_secs(10), &unpinned).unwrap();
    let refused = runtime.block_on(sync_once(&mut store, &client, &options(), &mut |_| {}));
    match refused {
        Err(SyncError::NoLink { last_error, .. }) => {
            assert!(last_error.contains("certificate"), "{last_error}")
        }
        other => panic!("an ordinary check in 2000 must refuse: {other:?}"),
    }
    assert_eq!(store.sync_state().unwrap().pending(), pending);

    let client =
        SyncClient::with_trust(&url, &token, Duration::from_secs(10), &pinned_only).unwrap();
    let report = runtime
        .block_on(sync_once(&mut store, &client, &options(), &mut |_| {}))
        .unwrap();
    assert_eq!(report.pending_after, 0, "{report:?}");
    assert!(report.clock_offset_ms.unwrap() < -20 * 365 * 86_400_000_i64);

    // Another server with another key, even with a certificate just as valid for this
    // address: refused, and the PC keeps what it has.
    let (other_cert, other_key) = certificate(dir.path(), "other");
    let other_dir = tempfile::tempdir().unwrap();
    let other_store = SqliteStore::open(&other_dir.path().join("other.db")).unwrap();
    let other = runtime.block_on(async {
        let config = jejak_server::http::tls::load_server_config(&other_cert, &other_key).unwrap();
        let state = jejak_server::AppState::new(
            Arc::new(other_store.clone()),
            jejak_server::ServerConfig::default(),
        );
        InProcessServer::start_tls(state, config).await
    });
    let other_url = other.url();
    store.start_session(PatronProfile::default(), None).unwrap();
    let pending = store.sync_state().unwrap().pending();
    let impostor =
        SyncClient::with_trust(&other_url, &token, Duration::from_secs(10), &pinned_only).unwrap();
    match runtime.block_on(sync_once(&mut store, &impostor, &options(), &mut |_| {})) {
        Err(SyncError::NoLink { last_error, .. }) => {
            assert!(last_error.contains("certificate"), "{last_error}")
        }
        other => panic!("a server with another key must be refused: {other:?}"),
    }
    assert_eq!(store.sync_state().unwrap().pending(), pending);
    assert!(runtime.block_on(other_store.devices()).unwrap().is_empty());
    drop(other);
    drop(store);

    // The district server holds both sessions, the one made in "2000" dated by the
    // anchor measured over HTTPS: today, not January 2000.
    running.signal("TERM");
    let mut running = running;
    running.wait_deadline(Duration::from_secs(20)).unwrap();
    let sessions = runtime.block_on(async {
        let store = SqliteStore::open(&db).unwrap();
        let device = store
            .find_device(
                &LibraryCode::parse(LIBRARY).unwrap(),
                &PcCode::parse("pc-01").unwrap(),
            )
            .await
            .unwrap()
            .unwrap();
        store.sessions(&device).await.unwrap()
    });
    assert_eq!(sessions.len(), 2);
    let dated_in_2000 = sessions
        .iter()
        .find(|s| s.raw_start.timestamp() < 1_000_000_000)
        .unwrap();
    let error = (dated_in_2000.corrected_start - Utc::now())
        .num_minutes()
        .abs();
    assert!(error < 60, "dated {error} minutes from now");
    assert_eq!(dated_in_2000.time_quality, TimeQuality::Corrected);
}
