//! The HTTP exchanges with the district server, and how their answers are judged.
//! Only a well-formed acknowledgement that echoes the batch id counts: a captive
//! portal's `200 text/html`, an empty body or someone else's JSON is a failed attempt.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jejak_domain::{
    BATCH_MEDIA_TYPE, BatchAck, KeyRegistrationAnswer, KeyRegistrationRequest, Problem,
};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};

use crate::batching::PreparedBatch;
use crate::signing::{DeviceKey, KeyError};
use crate::tls::{PinningVerifier, ServerTrust, TrustError};

/// Talks to one district server with one device token.
#[derive(Debug, Clone)]
pub struct SyncClient {
    http: reqwest::Client,
    base: String,
    /// The device token; sent as a bearer token, never logged.
    token: String,
    /// The PC's signing key, for sync runs to register until the server has it.
    signing: Option<Arc<Signing>>,
    /// The certificate check, when built with [`SyncClient::with_trust`].
    verifier: Option<Arc<PinningVerifier>>,
}

/// The PC's signing key and the data folder that remembers its registration.
#[derive(Debug)]
pub struct Signing {
    pub data_dir: PathBuf,
    pub key: DeviceKey,
}

/// Why an exchange did not produce an acknowledgement.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PushError {
    /// No connection, a timeout, a reset: the link is down or bad. Retry.
    #[error("network: {0}")]
    Network(String),
    /// The server failed (5xx). Retry, but not before `retry_after` when it said so.
    /// `kind` is the problem's type when it sent one (`store-unavailable`: it is up but
    /// cannot store just now).
    #[error("server error {status}{}", .kind.as_deref().map(|k| format!(" ({k})")).unwrap_or_default())]
    Server {
        status: u16,
        kind: Option<String>,
        retry_after: Option<Duration>,
    },
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
            PushError::Network(_) | PushError::Server { .. } | PushError::NotAnAnswer(_)
        )
    }

    /// How long the server asked to wait before the next try (`Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            PushError::Server { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether the server is up but cannot store just now (503 `store-unavailable`):
    /// not a link problem.
    pub fn is_store_unavailable(&self) -> bool {
        matches!(self, PushError::Server { status: 503, kind: Some(kind), .. } if kind == "store-unavailable")
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
    /// The record kinds the server stores, as codes: read as text, so that a newer
    /// server naming a kind this PC does not know is still understood. `None` from a
    /// server older than the list.
    #[serde(default)]
    accepts: Option<Vec<String>>,
}

impl HeldState {
    /// The kinds of record this PC may send the server: those it advertises (kinds this
    /// PC does not know are left out), or those of wire format v1 when it does not say.
    /// The PC holds back records of any other kind, and sends the rest.
    pub fn accepted_kinds(&self) -> Vec<jejak_domain::RecordKind> {
        match &self.accepts {
            Some(codes) => {
                let mut kinds: Vec<_> = codes
                    .iter()
                    .filter_map(|c| jejak_domain::RecordKind::from_code(c))
                    .collect();
                kinds.sort();
                kinds.dedup();
                kinds
            }
            None => jejak_domain::RecordKind::WIRE_V1.to_vec(),
        }
    }

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
            signing: None,
            verifier: None,
        })
    }

    /// The same client, registering the PC's signing key (made in `data_dir` if there
    /// is none yet) at the start of each sync run until the server has it.
    pub fn with_signing_key(mut self, data_dir: &Path) -> Result<Self, KeyError> {
        let key = DeviceKey::load_or_create(data_dir)?;
        self.signing = Some(Arc::new(Signing {
            data_dir: data_dir.to_path_buf(),
            key,
        }));
        Ok(self)
    }

    /// The signing key this client registers, if any.
    pub fn signing(&self) -> Option<&Signing> {
        self.signing.as_deref()
    }

    /// The device token (to remember under which token a key was registered).
    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// `PUT /api/v1/devices/me/key`: registers `key`'s public half under this token.
    pub async fn register_key(&self, key: &DeviceKey) -> Result<KeyRegistrationAnswer, PushError> {
        let response = self
            .http
            .put(format!("{}/api/v1/devices/me/key", self.base))
            .header(AUTHORIZATION, format!("Bearer {}", self.token))
            .json(&KeyRegistrationRequest {
                public_key: key.public_hex(),
            })
            .send()
            .await
            .map_err(network)?;
        let status = response.status();
        if status == StatusCode::OK && is_json(&response) {
            let answer: KeyRegistrationAnswer = response.json().await.map_err(|e| {
                PushError::NotAnAnswer(format!("unreadable key registration answer: {e}"))
            })?;
            if answer.public_key != key.public_hex() {
                return Err(PushError::NotAnAnswer(
                    "the answer names another key".to_string(),
                ));
            }
            return Ok(answer);
        }
        if status.is_server_error() {
            return Err(server_error(response).await);
        }
        if status.is_success() {
            return Err(PushError::NotAnAnswer(format!(
                "{status} with {}",
                content_type(&response)
            )));
        }
        let problem = read_problem(response, status).await?;
        match status {
            StatusCode::UNAUTHORIZED => Err(PushError::Unauthorized {
                revoked: problem.kind.contains("revoked"),
                detail: problem.detail,
            }),
            _ => Err(PushError::Refused { problem }),
        }
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
            signing: None,
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
            return Err(server_error(response).await);
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
            return Err(server_error(response).await);
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
            return Err(server_error(response).await);
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

/// The longest `Retry-After` taken at its word: a server (or a box in between) asking
/// for more is waited on for this long.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// A 5xx answer: its status, its problem type if it sent one, and its `Retry-After`
/// (seconds or an HTTP date).
async fn server_error(response: reqwest::Response) -> PushError {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
    let kind = if content_type(&response).starts_with("application/problem+json") {
        response.json::<Problem>().await.ok().map(|p| p.kind)
    } else {
        None
    };
    PushError::Server {
        status,
        kind,
        retry_after,
    }
}

/// `Retry-After` as a delay: delta-seconds, or an HTTP date (RFC 9110) relative to
/// `now`, at most [`MAX_RETRY_AFTER`].
fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    let delay = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
            (at.with_timezone(&chrono::Utc) - now)
                .to_std()
                .unwrap_or(Duration::ZERO)
        }
    };
    Some(delay.min(MAX_RETRY_AFTER))
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

#[cfg(test)]
mod tests {
    use super::*;
    use jejak_domain::RecordKind;

    #[test]
    fn the_kinds_a_server_takes_are_its_list_or_the_v1_kinds_when_it_does_not_say() {
        let state = |json: &str| serde_json::from_str::<HeldState>(json).unwrap();
        // A server older than the list takes what wire format v1 carries.
        assert_eq!(
            state(r#"{"epochs": []}"#).accepted_kinds(),
            RecordKind::WIRE_V1.to_vec()
        );
        // A newer server may name kinds this PC does not know: still an answer, and
        // only the kinds both know count.
        assert_eq!(
            state(r#"{"epochs": [], "accepts": ["loan", "visit", "pc_event", "session"]}"#)
                .accepted_kinds(),
            vec![RecordKind::Session, RecordKind::PcEvent, RecordKind::Visit]
        );
        // A server that stores fewer kinds is taken at its word: the rest is held back.
        assert_eq!(
            state(r#"{"epochs": [], "accepts": ["session"]}"#).accepted_kinds(),
            vec![RecordKind::Session]
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates_and_is_capped() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-01T08:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(parse_retry_after("10", now), Some(Duration::from_secs(10)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Tue, 01 Dec 2026 08:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Tue, 01 Dec 2026 07:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past: retry now"
        );
        assert_eq!(parse_retry_after("999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
