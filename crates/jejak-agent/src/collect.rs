//! Collectors: small independent watchers that report what they observe to the agent.
//! Each runs on its own schedule; operating-system login detection
//! ([`crate::login::LoginCollector`]) is one more implementation of [`Collector`].

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use crate::netdev;
use crate::store::NetCounters;

/// What the connectivity probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// The district server answered and can store.
    Up,
    /// The district server answered (so the internet works) but says it cannot store
    /// just now (its `/healthz` is `unavailable`: a full disk, its database down). Not an
    /// internet outage: no `internet_down` event is written for it.
    ServerUnavailable,
    /// No answer from the server: no link, a timeout, a captive portal's page.
    Down,
}

impl LinkState {
    /// Whether the internet (the way to the server) works.
    pub fn internet_up(self) -> bool {
        self != LinkState::Down
    }
}

/// Something a collector saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// The connectivity probe's verdict.
    Link(LinkState),
    /// The interface byte counters (sum over non-loopback interfaces).
    Counters(NetCounters),
    /// Someone logged in or began using the input again, or left the seat
    /// ([`crate::login`]).
    Seat(crate::login::SeatChange),
}

/// A boxed future, so that collectors can be kept in one list.
pub type CollectFuture<'a> = Pin<Box<dyn Future<Output = Vec<Observation>> + Send + 'a>>;

/// One watcher of the PC or its link.
pub trait Collector: Send {
    fn name(&self) -> &'static str;
    /// How long to wait between two collections.
    fn interval(&self) -> Duration;
    fn collect(&mut self) -> CollectFuture<'_>;
}

/// Reads the interface counters (the system's own, or a file a test writes).
#[derive(Debug)]
pub struct NetCounterCollector {
    path: Option<PathBuf>,
    interval: Duration,
}

impl NetCounterCollector {
    pub fn new(path: Option<PathBuf>, interval: Duration) -> Self {
        NetCounterCollector { path, interval }
    }
}

impl Collector for NetCounterCollector {
    fn name(&self) -> &'static str {
        "net_counters"
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn collect(&mut self) -> CollectFuture<'_> {
        Box::pin(async move {
            netdev::read_counters(self.path.as_deref())
                .map(Observation::Counters)
                .into_iter()
                .collect()
        })
    }
}

/// The service name the district server puts in its `/healthz` answer. Only an answer
/// that is JSON and names this service counts as "the link is up": a captive portal's
/// `200 text/html` or a modem's error page does not.
pub const SERVER_SERVICE_NAME: &str = "jejak-server";

/// Asks the district server whether it can be reached.
#[derive(Debug)]
pub struct ConnectivityProbe {
    client: reqwest::Client,
    url: String,
    interval: Duration,
}

impl ConnectivityProbe {
    pub fn new(
        server: &str,
        interval: Duration,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self::with_client(server, interval, client))
    }

    /// A probe over a client built elsewhere: over HTTPS, the sync's own certificate
    /// check (the server's pinned key), so that a PC whose clock is wrong does not take
    /// a sound link for a broken one. The client must not follow redirects.
    pub fn with_client(server: &str, interval: Duration, client: reqwest::Client) -> Self {
        ConnectivityProbe {
            client,
            url: format!("{}/healthz", server.trim_end_matches('/')),
            interval,
        }
    }

    /// One probe: [`LinkState::Up`] only for a 2xx well-formed answer from a Jejak
    /// server, [`LinkState::ServerUnavailable`] for its answer that it cannot store
    /// (any other status, still JSON naming the service), [`LinkState::Down`] for
    /// anything else.
    pub async fn probe(&self) -> LinkState {
        let Ok(response) = self.client.get(&self.url).send().await else {
            return LinkState::Down;
        };
        let status = response.status();
        let is_json = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !is_json {
            return LinkState::Down;
        }
        let from_jejak = match response.json::<serde_json::Value>().await {
            Ok(body) => body.get("service").and_then(|s| s.as_str()) == Some(SERVER_SERVICE_NAME),
            Err(_) => false,
        };
        match (from_jejak, status.is_success()) {
            (true, true) => LinkState::Up,
            (true, false) => LinkState::ServerUnavailable,
            (false, _) => LinkState::Down,
        }
    }
}

impl Collector for ConnectivityProbe {
    fn name(&self) -> &'static str {
        "connectivity_probe"
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn collect(&mut self) -> CollectFuture<'_> {
        Box::pin(async move { vec![Observation::Link(self.probe().await)] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-route HTTP server on 127.0.0.1 that answers every request with `response`.
    async fn serve(response: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            }
        });
        format!("http://{addr}")
    }

    fn probe(url: &str) -> ConnectivityProbe {
        ConnectivityProbe::new(url, Duration::from_secs(60), Duration::from_secs(2)).unwrap()
    }

    #[tokio::test]
    async fn a_jejak_server_answer_is_up() {
        let body = r#"{"status":"ok","service":"jejak-server"}"#;
        let response: &'static str = Box::leak(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .into_boxed_str(),
        );
        assert_eq!(probe(&serve(response).await).probe().await, LinkState::Up);
    }

    #[tokio::test]
    async fn a_jejak_server_that_cannot_store_is_reached_not_down() {
        let body = r#"{"status":"unavailable","service":"jejak-server","version":"0.1.0"}"#;
        let response: &'static str = Box::leak(
            format!(
                "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .into_boxed_str(),
        );
        let state = probe(&serve(response).await).probe().await;
        assert_eq!(state, LinkState::ServerUnavailable);
        assert!(state.internet_up(), "a store outage is no internet outage");
    }

    #[tokio::test]
    async fn a_captive_portal_page_is_down() {
        let url = serve(
            "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 13\r\nconnection: close\r\n\r\n<html>x</html",
        )
        .await;
        assert_eq!(probe(&url).probe().await, LinkState::Down);
    }

    #[tokio::test]
    async fn json_from_something_else_is_down() {
        let url = serve(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\nconnection: close\r\n\r\n{\"ok\":true}",
        )
        .await;
        assert_eq!(probe(&url).probe().await, LinkState::Down);
    }

    #[tokio::test]
    async fn no_server_is_down() {
        // Bind and drop, so nothing listens on the port.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        assert_eq!(
            probe(&format!("http://{addr}")).probe().await,
            LinkState::Down
        );
    }

    #[tokio::test]
    async fn counters_come_from_the_configured_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dev");
        std::fs::write(&path, "h\nh\n eth0: 10 0 0 0 0 0 0 0 20 0 0 0 0 0 0 0\n").unwrap();
        let mut c = NetCounterCollector::new(Some(path), Duration::from_secs(1));
        assert_eq!(
            c.collect().await,
            vec![Observation::Counters(NetCounters { rx: 10, tx: 20 })]
        );
    }
}
