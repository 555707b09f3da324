//! A real server on 127.0.0.1:0 over a real SQLite file in a temporary folder, with a
//! movable clock, and the requests the tests send it.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use jejak_domain::{LibraryCode, PcCode, WireBatch};
use jejak_server::{
    AppState, DashboardSettings, DeviceRef, Limits, ServerConfig, ServerStore, SqliteOptions,
    SqliteStore,
};

use jejak_testkit::server::InProcessServer;
pub use jejak_testkit::server::TestClock;

pub struct TestServer {
    pub url: String,
    pub addr: SocketAddr,
    pub store: SqliteStore,
    pub clock: TestClock,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    serving: InProcessServer,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(Limits::default()).await
    }

    pub async fn start_with(limits: Limits) -> TestServer {
        Self::start_configured(limits, DashboardSettings::default()).await
    }

    /// A server whose dashboard answers to `dashboard.hosts` and marks its cookies as
    /// `dashboard.secure_cookies` says.
    pub async fn start_configured(limits: Limits, dashboard: DashboardSettings) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let clock = TestClock::default();
        let store = SqliteStore::open_with(
            &dir.path().join("server.db"),
            SqliteOptions {
                clock: clock.server_clock(),
            },
        )
        .unwrap();
        let state = AppState::new(
            Arc::new(store.clone()),
            ServerConfig {
                limits,
                clock: clock.server_clock(),
                dashboard,
                ..ServerConfig::default()
            },
        );
        let serving = InProcessServer::start(state).await;
        TestServer {
            url: serving.url(),
            addr: serving.addr,
            store,
            clock,
            dir,
            http: reqwest::Client::new(),
            serving,
        }
    }

    pub fn db_path(&self) -> std::path::PathBuf {
        self.dir.path().join("server.db")
    }

    /// Stops the server and waits for `run` to return.
    pub async fn stop(&mut self) -> std::io::Result<()> {
        self.serving.stop().await
    }

    /// Adds the library (if new) and enrolls the PC; returns its token and device.
    pub async fn enroll(&self, library: &str, pc: &str) -> (String, DeviceRef) {
        let lib = LibraryCode::parse(library).unwrap();
        let pc = PcCode::parse(pc).unwrap();
        let token =
            jejak_testkit::server::enroll(&self.store, library, "Perpustakaan Desa", pc.as_str())
                .await;
        let device = self.store.find_device(&lib, &pc).await.unwrap().unwrap();
        (token, device)
    }

    pub async fn post_raw(
        &self,
        token: Option<&str>,
        content_type: &str,
        encoding: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, String, serde_json::Value) {
        let mut request = self
            .http
            .post(format!("{}/api/v1/batches", self.url))
            .header("Content-Type", content_type)
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(encoding) = encoding {
            request = request.header("Content-Encoding", encoding);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let kind = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let text = response.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        (status, kind, json)
    }

    /// Posts a batch as the sync client does: zstd-compressed batch JSON.
    /// Enrolls each `(library, pc, sessions)`, simulates that many sessions from
    /// October 2026 (`sim::simulate`, seeded from `seed` on) and syncs them, dated a
    /// second before the server's clock; returns the last device token.
    pub async fn sync_simulated(&self, pcs: &[(&str, &str, usize)], seed: u64) -> String {
        let mut token = String::new();
        for (i, (library, pc, sessions)) in pcs.iter().enumerate() {
            token = self.enroll(library, pc).await.0;
            let sim = jejak_testkit::sim::SimPc {
                library: LibraryCode::parse(library).unwrap(),
                pc: PcCode::parse(pc).unwrap(),
                epoch: uuid::Uuid::new_v4(),
                clock_error_ms: 0,
            };
            let month = jejak_testkit::sim::month_start();
            let log = jejak_testkit::sim::simulate(&sim, *sessions, month, seed + i as u64);
            let sync_at = self.clock.now() - chrono::Duration::seconds(1);
            for batch in jejak_testkit::sim::batches(&sim, &log, 100, sync_at) {
                let (status, ack) = self.post(&token, &batch).await;
                assert_eq!(status, 200, "{ack}");
            }
        }
        token
    }

    pub async fn post(&self, token: &str, batch: &WireBatch) -> (u16, serde_json::Value) {
        let json = serde_json::to_vec(batch).unwrap();
        let body = zstd::encode_all(json.as_slice(), 3).unwrap();
        let (status, kind, value) = self
            .post_raw(
                Some(token),
                jejak_domain::BATCH_MEDIA_TYPE,
                Some("zstd"),
                body,
            )
            .await;
        if status == 200 {
            assert!(kind.starts_with("application/json"), "{kind}");
        } else {
            assert_eq!(kind, "application/problem+json", "{status} {value}");
        }
        (status, value)
    }

    /// GET /healthz answers exactly as the agent's probe requires.
    pub async fn assert_healthy(&self) {
        let response = self
            .http
            .get(format!("{}/healthz", self.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(
            response.headers().get("content-type").unwrap(),
            "application/json"
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["service"], "jejak-server");
        assert_eq!(body["status"], "ok");
    }

    /// Sessions and events stored, read through a fresh connection of its own.
    pub fn count_rows(&self) -> (i64, i64, i64) {
        let conn = rusqlite::Connection::open(self.db_path()).unwrap();
        let sessions = conn
            .query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get(0))
            .unwrap();
        let events = conn
            .query_row("SELECT COUNT(*) FROM pc_events", [], |r| r.get(0))
            .unwrap();
        let batches = conn
            .query_row("SELECT COUNT(*) FROM batches", [], |r| r.get(0))
            .unwrap();
        (sessions, events, batches)
    }
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}
