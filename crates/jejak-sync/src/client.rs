//! The HTTP exchanges with the district server, and how their answers are judged.
//! Only a well-formed acknowledgement that echoes the batch id counts: a captive
//! portal's `200 text/html`, an empty body or someone else's JSON is a failed attempt.

use std::sync::Arc;
use std::time::Duration;

use jejak_domain::{BATCH_MEDIA_TYPE, BatchAck, Problem};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};

use crate::batching::PreparedBatch;
use crate::tls::{PinningVerifier, ServerTrust, TrustError};

/// Talks to one district server with one device token.
#[derive(Debug, Clone)]
pub struct SyncClient {
    http: reqwest::Client,
    base: String,
    /// The device token; sent as a bearer token, never logged.
    token: String,
    /// The certificate check, when built with [`SyncClient::with_trust`].
    verifier: Option<Arc<PinningVerifier>>,
}

/// Why an exchange did not produce an acknowledgement.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PushError {
    /// No connection, a timeout, a reset: the link is down or bad. Retry.
    #[error("network: {0}")]
    Network(String),
    /// The server failed (5xx). Retry.
    #[error("server error {0}")]
    Server(u16),
    /// Something answered, but not a Jejak acknowledgement of this batch (a captive
    /// portal, a proxy's page). Retry: the link is not really up.
    #[error("not an acknowledgement: {0}")]
    NotAnAnswer(String),
    /// The server holds less than this batch assumes: resume from `expected_seq`.
    #[error("the server expects seq {expected_seq}")]
    Gap { expected_seq: u64 },
    /// The token is wrong or revoked. Stop; keep all data.
    #[error("token refused{}: {detail}", if *.revoked { " (revoked)" } else { "" })]
    Unauthorized { revoked: bool, detail: String },
    /// The server refused the batch for another reason (4xx). Stop, or adapt (413).
    #[error("refused by the server ({}): {}", .problem.status, .problem.detail)]
    Refused { problem: Problem },
}

impl PushError {
    /// Whether trying the same exchange again later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            PushError::Network(_) | PushError::Server(_) | PushError::NotAnAnswer(_)
        )
    }
}

/// The server's clock readings of a time probe (t2, t3), Unix ms.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
pub struct ServerTime {
    pub received_at_ms: i64,
    pub sent_at_ms: i64,
}

/// What the server says it holds of one epoch of this PC's change log.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
pub struct HeldEpoch {
    pub epoch: uuid::Uuid,
    pub held_seq: u64,
}

/// The part of `GET /api/v1/devices/me` the sync reads.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct HeldState {
    pub epochs: Vec<HeldEpoch>,
}

impl HeldState {
    /// The held seq of `epoch`: 0 when the server has never seen it (or lost it).
    pub fn held_seq(&self, epoch: uuid::Uuid) -> u64 {
        self.epochs
            .iter()
            .find(|e| e.epoch == epoch)
            .map_or(0, |e| e.held_seq)
    }
}

impl SyncClient {
    /// `timeout` bounds each whole exchange; a batch is sized so one fits in it even
    /// at 64 kbit/s.
    pub fn new(server: &str, token: &str, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(30)))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(SyncClient {
            http,
            base: server.trim_end_matches('/').to_string(),
            token: token.trim().to_string(),
            verifier: None,
        })
    }

    /// Like [`SyncClient::new`], with the PC's own certificate check: the server's key
    /// pinned at enrolment is accepted whatever the PC's clock says (see `tls.rs`).
    pub fn with_trust(
        server: &str,
        token: &str,
        timeout: Duration,
        trust: &ServerTrust,
    ) -> Result<Self, TrustError> {
        let verifier = Arc::new(PinningVerifier::new(trust)?);
        let http = verifier
            .http_client(timeout, timeout.min(Duration::from_secs(30)))
            .map_err(|e| TrustError::Rustls(e.to_string()))?;
        Ok(SyncClient {
            http,
            base: server.trim_end_matches('/').to_string(),
            token: token.trim().to_string(),
            verifier: Some(verifier),
        })
    }

    /// The key (see `tls::key_pin`) of the last server this client's certificate check
    /// accepted: after a successful exchange over HTTPS, the server's.
    pub fn server_key_seen(&self) -> Option<[u8; 32]> {
        self.verifier
            .as_ref()
            .and_then(|v| v.seen.lock().ok().and_then(|seen| *seen))
    }

    pub fn server(&self) -> &str {
        &self.base
    }

    /// `GET /api/v1/time`: the server's clock, for the offset measurement.
    pub async fn server_time(&self) -> Result<ServerTime, PushError> {
        let response = self
            .http
            .get(format!("{}/api/v1/time", self.base))
            .send()
            .await
            .map_err(network)?;
        let status = response.status();
        if status.is_server_error() {
            return Err(PushError::Server(status.as_u16()));
        }
        if !status.is_success() || !is_json(&response) {
            return Err(PushError::NotAnAnswer(format!(
                "time probe answered {status} {}",
                content_type(&response)
            )));
        }
        response
            .json::<ServerTime>()
            .await
            .map_err(|e| PushError::NotAnAnswer(format!("time probe: {e}")))
    }

    /// `GET /api/v1/devices/me`: what the server holds of this PC, so that a PC with
    /// nothing new to send still notices a server restored from an older backup.
    pub async fn held_state(&self) -> Result<HeldState, PushError> {
        let response = self
            .http
            .get(format!("{}/api/v1/devices/me", self.base))
            .header(AUTHORIZATION, format!("Bearer {}", self.token))
            .send()
            .await
            .map_err(network)?;
        let status = response.status();
        if status.is_server_error() {
            return Err(PushError::Server(status.as_u16()));
        }
        if status == StatusCode::OK && is_json(&response) {
            return response
                .json::<HeldState>()
                .await
                .map_err(|e| PushError::NotAnAnswer(format!("device state: {e}")));
        }
        if status.is_success() {
            return Err(PushError::NotAnAnswer(format!(
                "device state answered {status} {}",
                content_type(&response)
            )));
        }
        Err(refusal(status, read_problem(response, status).await?))
    }

    /// `POST /api/v1/batches` with the prepared (compressed) body.
    pub async fn push(&self, batch: &PreparedBatch) -> Result<BatchAck, PushError> {
        let response = self
            .http
            .post(format!("{}/api/v1/batches", self.base))
            .header(AUTHORIZATION, format!("Bearer {}", self.token))
            .header(CONTENT_TYPE, BATCH_MEDIA_TYPE)
            .header(CONTENT_ENCODING, "zstd")
            .body(batch.body.clone())
            .send()
            .await
            .map_err(network)?;
        let status = response.status();
        if status == StatusCode::OK {
            if !is_json(&response) {
                return Err(PushError::NotAnAnswer(format!(
                    "200 with {}",
                    content_type(&response)
                )));
            }
            let ack: BatchAck = response
                .json()
                .await
                .map_err(|e| PushError::NotAnAnswer(format!("unreadable acknowledgement: {e}")))?;
            if ack.batch_id != batch.wire.batch_id {
                return Err(PushError::NotAnAnswer(format!(
                    "the answer is for batch {}, not {}",
                    ack.batch_id, batch.wire.batch_id
                )));
            }
            return Ok(ack);
        }
        if status.is_server_error() {
            return Err(PushError::Server(status.as_u16()));
        }
        let problem = read_problem(response, status).await?;
        match status {
            StatusCode::CONFLICT => match problem.expected_seq {
                Some(expected_seq) => Err(PushError::Gap { expected_seq }),
                None => Err(PushError::Refused { problem }),
            },
            _ => Err(refusal(status, problem)),
        }
    }
}

/// A 4xx problem other than a seq gap: a refused token, or a refusal of the request.
fn refusal(status: StatusCode, problem: Problem) -> PushError {
    if status == StatusCode::UNAUTHORIZED {
        PushError::Unauthorized {
            revoked: problem.kind.contains("revoked"),
            detail: problem.detail,
        }
    } else {
        PushError::Refused { problem }
    }
}

fn network(e: reqwest::Error) -> PushError {
    // reqwest's message chain says whether it was a timeout, a refusal or a reset.
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(inner) = source {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        source = inner.source();
    }
    PushError::Network(message)
}

fn content_type(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("no content type")
        .to_string()
}

fn is_json(response: &reqwest::Response) -> bool {
    content_type(response).starts_with("application/json")
}

/// A 4xx answer must be a problem document; anything else is a box in between (a
/// proxy, a portal) and counts as no answer.
async fn read_problem(
    response: reqwest::Response,
    status: StatusCode,
) -> Result<Problem, PushError> {
    let kind = content_type(&response);
    if !(kind.starts_with("application/problem+json") || kind.starts_with("application/json")) {
        return Err(PushError::NotAnAnswer(format!("{status} with {kind}")));
    }
    response
        .json::<Problem>()
        .await
        .map_err(|e| PushError::NotAnAnswer(format!("{status} with an unreadable problem: {e}")))
}
