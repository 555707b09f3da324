//! The district server's HTTP layer (`jejak_server::run`) in this process, on a fresh
//! `127.0.0.1:0` listener over a real store, with a clock the test can move.
//!
//! [`InProcessServer`] runs in the test's own runtime (async tests); [`ServerOnOwnRuntime`] runs
//! on a runtime of its own, as if it were another machine, for tests that block (a PC's
//! sync, the `jejak` binary as a child process).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};
use jejak_domain::{LibraryCode, PcCode, Zone};
use jejak_server::{AppState, EnrollError, ServerClock, ServerConfig, ServerStore};

/// The server's clock: the real one moved by a skew the test sets ("weeks later").
#[derive(Debug, Clone, Default)]
pub struct TestClock {
    skew_ms: Arc<AtomicI64>,
}

impl TestClock {
    /// The real time plus the skew.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::milliseconds(self.skew_ms.load(Ordering::SeqCst))
    }

    /// Moves the clock forward by `by` (every clone of it moves).
    pub fn advance(&self, by: chrono::Duration) {
        self.skew_ms
            .fetch_add(by.num_milliseconds(), Ordering::SeqCst);
    }

    /// Sets the clock to run `skew` ahead of the real time.
    pub fn set_skew(&self, skew: chrono::Duration) {
        self.skew_ms
            .store(skew.num_milliseconds(), Ordering::SeqCst);
    }

    /// The clock as the store and the HTTP layer take it.
    pub fn server_clock(&self) -> ServerClock {
        let me = self.clone();
        Arc::new(move || me.now())
    }
}

/// `jejak_server::run` (or `run_tls`) serving `state` on `127.0.0.1:0`, in the runtime
/// it was started in. Dropping it asks the server to stop; [`InProcessServer::stop`] also
/// waits for it.
#[derive(Debug)]
pub struct InProcessServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http` or `https`.
    scheme: &'static str,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl InProcessServer {
    /// Binds a free loopback port and serves `state` on it over plain HTTP.
    pub async fn start(state: AppState) -> InProcessServer {
        Self::serve(state, None).await
    }

    /// Binds a free loopback port and serves `state` on it over HTTPS with `tls`, as
    /// `jejak server run --tls-cert/--tls-key` does.
    pub async fn start_tls(state: AppState, tls: Arc<rustls::ServerConfig>) -> InProcessServer {
        Self::serve(state, Some(tls)).await
    }

    async fn serve(state: AppState, tls: Option<Arc<rustls::ServerConfig>>) -> InProcessServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free loopback port");
        let addr = listener.local_addr().expect("the listener's address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async {
            let _ = stopped.await;
        };
        let (scheme, task) = match tls {
            None => (
                "http",
                tokio::spawn(jejak_server::run(listener, state, shutdown)),
            ),
            Some(tls) => (
                "https",
                tokio::spawn(jejak_server::run_tls(listener, tls, state, shutdown)),
            ),
        };
        InProcessServer {
            addr,
            scheme,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// `http://127.0.0.1:PORT` (or `https://`).
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// Stops the server and waits for `run` to return what it returned.
    pub async fn stop(&mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.expect("the server's task does not panic"),
            None => Ok(()),
        }
    }
}

impl Drop for InProcessServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A district server on a multi-threaded runtime of its own, over the store `open`
/// makes with the server's [`TestClock`].
pub struct ServerOnOwnRuntime {
    runtime: Option<tokio::runtime::Runtime>,
    /// The store the server serves.
    pub store: Arc<dyn ServerStore>,
    /// The server's state (its metrics, its clock).
    pub state: AppState,
    /// The server's clock, shared by the store and the HTTP layer.
    pub clock: TestClock,
    serving: Option<InProcessServer>,
}

impl std::fmt::Debug for ServerOnOwnRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerOnOwnRuntime")
            .field("serving", &self.serving)
            .finish_non_exhaustive()
    }
}

impl ServerOnOwnRuntime {
    /// Opens the store with `open` on the server's runtime and serves it with the
    /// default configuration and the server's clock.
    pub fn start<F>(open: impl FnOnce(ServerClock) -> F) -> ServerOnOwnRuntime
    where
        F: Future<Output = Arc<dyn ServerStore>>,
    {
        Self::start_accepting(open, &jejak_domain::RecordKind::ALL)
    }

    /// As [`ServerOnOwnRuntime::start`], for a server that stores only the record kinds
    /// `accepts` (playing a server older than the others, which refuses them).
    pub fn start_accepting<F>(
        open: impl FnOnce(ServerClock) -> F,
        accepts: &[jejak_domain::RecordKind],
    ) -> ServerOnOwnRuntime
    where
        F: Future<Output = Arc<dyn ServerStore>>,
    {
        let clock = TestClock::default();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("the server's runtime");
        let store = runtime.block_on(open(clock.server_clock()));
        let state = AppState::new(
            store.clone(),
            ServerConfig {
                clock: clock.server_clock(),
                accepts: accepts.to_vec(),
                ..ServerConfig::default()
            },
        );
        let serving = runtime.block_on(InProcessServer::start(state.clone()));
        ServerOnOwnRuntime {
            runtime: Some(runtime),
            store,
            state,
            clock,
            serving: Some(serving),
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.serving.as_ref().map(|s| s.addr).expect("serving")
    }

    /// Stops serving and serves the same store again, now storing the record kinds
    /// `accepts`: the district upgraded its server. It listens on a new port (the old
    /// one may be taken meanwhile by any socket of the machine); see [`Self::url`].
    pub fn upgrade(&mut self, accepts: &[jejak_domain::RecordKind]) {
        let mut old = self.serving.take().expect("serving");
        self.block_on(old.stop()).expect("the server stops cleanly");
        let state = AppState::new(
            self.store.clone(),
            ServerConfig {
                clock: self.clock.server_clock(),
                accepts: accepts.to_vec(),
                ..ServerConfig::default()
            },
        );
        self.serving = Some(self.block_on(InProcessServer::start(state.clone())));
        self.state = state;
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// Runs `future` on the server's runtime.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.as_ref().expect("running").block_on(future)
    }

    /// Adds `library` (once) and enrolls its `pc`; returns the PC's token.
    pub fn enroll(&self, library: &str, library_name: &str, pc: &str) -> String {
        self.block_on(enroll(self.store.as_ref(), library, library_name, pc))
    }
}

impl Drop for ServerOnOwnRuntime {
    fn drop(&mut self) {
        drop(self.serving.take());
        if let Some(runtime) = self.runtime.take() {
            // Never blocks, so a failing test that drops this inside async code still
            // reports its own panic.
            runtime.shutdown_background();
        }
    }
}

/// Adds `library` named `library_name` to `store` unless it is there, enrolls its `pc`
/// and returns the PC's token.
pub async fn enroll(
    store: &dyn ServerStore,
    library: &str,
    library_name: &str,
    pc: &str,
) -> String {
    let lib = LibraryCode::parse(library).expect("a valid library code");
    let pc_code = PcCode::parse(pc).expect("a valid PC code");
    match store.add_library(&lib, library_name, Zone::Wib).await {
        Ok(()) | Err(EnrollError::LibraryExists(_)) => {}
        Err(e) => panic!("add_library {library}: {e}"),
    }
    store
        .add_device(&lib, &pc_code)
        .await
        .unwrap_or_else(|e| panic!("add_device {library}/{pc}: {e}"))
        .expose()
        .to_string()
}
