//! The HTTP API (axum): routes, handlers, the serving loop with graceful shutdown.
//!
//! Every error answer is a problem document (`application/problem+json`, see
//! [`Problem`]) with a stable `type`:
//!
//! | status | type | when |
//! |---|---|---|
//! | 400 | `malformed-body` | the body cannot be read or decompressed |
//! | 400 | `malformed-json` | the body is not JSON at all (syntax) |
//! | 400 | `invalid-parameter` | a report's query parameter is missing or mistyped; the detail says what to write |
//! | 401 | `unauthorized` | no bearer token, or an unknown one |
//! | 401 | `token-revoked` | the token was revoked (the PC keeps its data) |
//! | 403 | `forbidden` | a staff token on a device endpoint, a device token on a report, or a batch naming another library/PC |
//! | 404 | `not-found` | no such route |
//! | 404 | `unknown-library` | a village report of a library the server does not know |
//! | 405 | `method-not-allowed` | wrong method for the route |
//! | 408 | `body-timeout` | the body did not arrive within the body timeout (see [`Serving`]) |
//! | 409 | `seq-gap` | the batch starts past the held seq; `expected_seq` says where to resume |
//! | 409 | `key-conflict` | another signing key is registered under the token |
//! | 413 | `payload-too-large` | the body, compressed or decompressed, is over its limit |
//! | 413 | `too-many-records` | more records than one batch may carry |
//! | 415 | `unsupported-media-type` | another Content-Type or Content-Encoding |
//! | 429 | `too-many-epochs` | the batch opens a new epoch (seq 1 again) and the PC opened 3 in the last day; `Retry-After` says when another is taken |
//! | 422 | `invalid-batch` | JSON of the wrong shape: wrong types, unknown enum values or fields, inconsistent columns |
//! | 422 | `invalid-key` | a signing key that is not an Ed25519 public key |
//! | 503 | `store-unavailable` | the store failed; retry the same batch later |
//! | 503 | `too-many-connections` | the connection cap is reached (sent at accept, before the request is read) |
//!
//! A 4xx never changes anything on the server; a 200 is sent only after the commit.

mod body;
#[cfg(test)]
mod fuzz_tests;
mod openapi;
pub(crate) mod reports;
mod serve;
pub mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use chrono::{DateTime, Utc};
use jejak_domain::{BatchAck, KeyRegistrationAnswer, KeyRegistrationRequest, Problem, WireBatch};
use serde::Serialize;

use crate::metrics::{BatchResult, Exposition, Metrics};
use crate::store::{
    AuthError, Delivery, DeviceRef, IngestError, KeyRegistration, Principal, ServerClock,
    ServerStore, system_clock, token_hash,
};
use body::BodyError;

pub use openapi::openapi_document;
pub use serve::Serving;

/// The media type of every error answer.
pub const PROBLEM_MEDIA_TYPE: &str = "application/problem+json";
/// The `service` the health answer names; the PC agent's connectivity probe requires it.
pub const SERVICE_NAME: &str = "jejak-server";
/// The `Retry-After` of every 503 (store unavailable, unhealthy, too many connections):
/// the PC waits this long before trying again.
pub const RETRY_AFTER_SECS: &str = "10";

/// Size limits of a batch request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most bytes a request body may have as sent (compressed). Default 2 MiB.
    pub max_body_bytes: usize,
    /// The most bytes it may inflate to. Default 4 MiB: a batch of 5,000 records, patron
    /// keys included, is about 1.1 MB of JSON.
    pub max_decompressed_bytes: usize,
    /// The most records (sessions + pc events) one batch may carry. Default 5,000: a
    /// 90-day backlog of one PC (about 5,400) goes in two batches.
    pub max_records: usize,
    /// The most batches read, decoded and stored at once. Default 32. A batch waits
    /// for its turn before its body is read, so a storm of PCs (every PC resending
    /// after a restore) holds memory for this many batches, not for one per
    /// connection; the store's single writer takes them one group at a time anyway.
    pub max_concurrent_batches: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 2 << 20,
            max_decompressed_bytes: 4 << 20,
            max_records: 5_000,
            max_concurrent_batches: 32,
        }
    }
}

/// How the HTTP layer behaves.
#[derive(Clone)]
pub struct ServerConfig {
    /// Request size limits.
    pub limits: Limits,
    /// The server's clock for t2/t3 of every answer and the arrival time of batches;
    /// tests inject a movable one to replay a batch "weeks later".
    pub clock: ServerClock,
    /// Timeouts, the connection cap and the shutdown's grace period.
    pub serving: Serving,
    /// Who may reach the dashboard and how its cookies are marked.
    pub dashboard: DashboardSettings,
    /// The record kinds this server stores, advertised in `GET /api/v1/devices/me`:
    /// every kind this build knows. Not a setting anyone chooses: tests set fewer to
    /// play a server older than a kind, which then also refuses such records (422), as
    /// an older server's parser would.
    pub accepts: Vec<jejak_domain::RecordKind>,
}

/// The dashboard's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DashboardSettings {
    /// Host names (without port) the dashboard answers to, besides `localhost` and IP
    /// addresses, which it always answers: a page of another site whose name was made
    /// to point at this server (DNS rebinding) names its own host and is refused.
    /// `jejak server run --dashboard-host perpusda.example.go.id`.
    pub hosts: Vec<String>,
    /// Marks the session and language cookies `Secure` (sent over HTTPS only): set when
    /// the server is reached over TLS, its own or a proxy's in front of it
    /// (`--behind-tls-proxy`). A setting, never guessed from a request header.
    pub secure_cookies: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            limits: Limits::default(),
            clock: system_clock(),
            serving: Serving::default(),
            dashboard: DashboardSettings::default(),
            accepts: jejak_domain::RecordKind::ALL.to_vec(),
        }
    }
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("limits", &self.limits)
            .field("serving", &self.serving)
            .field("dashboard", &self.dashboard)
            .finish_non_exhaustive()
    }
}

/// What every handler shares: the store, the configuration and the metrics. Cheap to
/// clone.
#[derive(Clone, Debug)]
pub struct AppState {
    store: Arc<dyn ServerStore>,
    config: Arc<ServerConfig>,
    metrics: Arc<Metrics>,
    /// Batches being inflated and parsed at once. Each holds its inflated JSON (up to
    /// `max_decompressed_bytes`) while it is parsed; bounding how many do so at once
    /// bounds what a burst of large or hostile batches can cost together, whatever the
    /// number of connections. A parsed batch waiting for the store no longer holds one
    /// (its columns are a fraction of the JSON, and `batch_turns` bounds how many wait):
    /// held until the commit, these few permits kept the next batches from being parsed
    /// while the writer worked, and ingest ran about a fifth slower.
    parsing: Arc<tokio::sync::Semaphore>,
    /// The latest health check's outcome (see [`healthz`]).
    health: Arc<HealthCache>,
    /// Turns for batches ([`Limits::max_concurrent_batches`]).
    batch_turns: Arc<tokio::sync::Semaphore>,
}

/// `/healthz` answers from a check at most this old: 1,050 PCs probing must not each
/// cost the store a write.
const HEALTH_FRESH: std::time::Duration = std::time::Duration::from_secs(5);
/// A store that has not answered the health check after this is unavailable.
const HEALTH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The latest health check, and a lock so that only one runs at a time.
#[derive(Debug, Default)]
struct HealthCache {
    last: std::sync::Mutex<Option<(Instant, Result<(), String>)>>,
    checking: tokio::sync::Mutex<()>,
}

impl HealthCache {
    fn fresh(&self) -> Option<Result<(), String>> {
        let last = self.last.lock().ok()?;
        match &*last {
            Some((at, outcome)) if at.elapsed() < HEALTH_FRESH => Some(outcome.clone()),
            _ => None,
        }
    }

    /// Whether the store can write, checked at most every [`HEALTH_FRESH`]; `Err` says
    /// why not.
    async fn check(&self, store: &dyn ServerStore) -> Result<(), String> {
        if let Some(outcome) = self.fresh() {
            return outcome;
        }
        let _checking = self.checking.lock().await;
        // Another request may have checked while this one waited.
        if let Some(outcome) = self.fresh() {
            return outcome;
        }
        let outcome = match tokio::time::timeout(HEALTH_TIMEOUT, store.check_health()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "the store did not answer within {} s",
                HEALTH_TIMEOUT.as_secs()
            )),
        };
        if let Err(why) = &outcome {
            tracing::warn!(problem = %why, "health check: the store cannot write");
        }
        if let Ok(mut last) = self.last.lock() {
            *last = Some((Instant::now(), outcome.clone()));
        }
        outcome
    }
}

/// Batches parsed at once per core: parsing is CPU work, so more would only wait on the
/// cores while holding their memory.
const PARSING_PER_CORE: usize = 2;

impl AppState {
    /// The state of a server over `store`.
    pub fn new(store: Arc<dyn ServerStore>, config: ServerConfig) -> AppState {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let turns = config.limits.max_concurrent_batches.max(1);
        AppState {
            store,
            config: Arc::new(config),
            metrics: Arc::new(Metrics::new()),
            parsing: Arc::new(tokio::sync::Semaphore::new(cores * PARSING_PER_CORE)),
            health: Arc::new(HealthCache::default()),
            batch_turns: Arc::new(tokio::sync::Semaphore::new(turns)),
        }
    }

    /// The store, for the CLI's enrollment commands and the USB import (which calls
    /// [`ServerStore::ingest`] with [`Delivery::Carried`]: the same idempotent path as
    /// HTTP).
    pub fn store(&self) -> &Arc<dyn ServerStore> {
        &self.store
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The server clock now.
    pub fn now(&self) -> DateTime<Utc> {
        (self.config.clock)()
    }
}

/// The application: every route of the API.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/v1/batches", post(post_batch))
        .route("/api/v1/devices/me", get(device_me))
        .route("/api/v1/devices/me/key", put(register_key))
        .route("/api/v1/time", get(server_time));
    reports::report_routes(api)
        .route("/api/v1/openapi.json", get(openapi_json))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(crate::dashboard::routes(&state))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes, then stops accepting
/// connections at once and gives the requests in flight (each batch in flight is
/// committed and answered) up to [`Serving::shutdown_grace`] to finish before closing
/// what is left and returning. Slow clients are cut off by the timeouts of
/// [`Serving`], and connections over its cap are refused.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let address = listener.local_addr()?;
    let serving = state.config.serving;
    tracing::info!(%address, max_connections = serving.max_connections, "jejak server listening");
    serve::serve(listener, router(state), serving, None, shutdown).await?;
    tracing::info!(%address, "jejak server stopped");
    Ok(())
}

/// [`run`] over HTTPS: the same API and the same serving loop (timeouts, connection cap,
/// bounded shutdown), TLS terminated here with `tls` ([`tls::load_server_config`]).
pub async fn run_tls(
    listener: tokio::net::TcpListener,
    tls: std::sync::Arc<rustls::ServerConfig>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let address = listener.local_addr()?;
    let serving = state.config.serving;
    tracing::info!(%address, max_connections = serving.max_connections, "jejak server listening (HTTPS)");
    serve::serve(listener, router(state), serving, Some(tls), shutdown).await?;
    tracing::info!(%address, "jejak server stopped");
    Ok(())
}

/// An error answer: a problem document with its status.
#[derive(Debug)]
pub(crate) struct ApiProblem {
    problem: Problem,
    /// 401 answers name the scheme; 503 answers suggest when to retry.
    extra: Option<(axum::http::HeaderName, HeaderValue)>,
}

impl ApiProblem {
    fn new(status: StatusCode, kind: &str, title: &str, detail: impl Into<String>) -> ApiProblem {
        let extra = match status {
            StatusCode::UNAUTHORIZED => {
                Some((WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")))
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                Some((RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS)))
            }
            _ => None,
        };
        ApiProblem {
            problem: Problem {
                kind: kind.to_string(),
                title: title.to_string(),
                status: status.as_u16(),
                detail: detail.into(),
                expected_seq: None,
            },
            extra,
        }
    }

    fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The metrics label of a refused batch.
    fn batch_result(&self) -> BatchResult {
        match self.problem.status {
            401 => BatchResult::Unauthorized,
            403 => BatchResult::Forbidden,
            409 => BatchResult::SeqGap,
            413 => BatchResult::TooLarge,
            415 => BatchResult::Unsupported,
            400..=499 => BatchResult::Invalid,
            _ => BatchResult::Error,
        }
    }
}

impl IntoResponse for ApiProblem {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::to_vec(&self.problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_MEDIA_TYPE));
        if let Some((name, value)) = self.extra {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

fn store_unavailable(error: &dyn std::fmt::Display) -> ApiProblem {
    tracing::error!(error = %error, "store failure");
    ApiProblem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store-unavailable",
        "Store unavailable",
        "the server could not store or read data just now; nothing was changed, retry later",
    )
}

impl From<BodyError> for ApiProblem {
    fn from(e: BodyError) -> ApiProblem {
        let detail = e.to_string();
        match e {
            BodyError::TooLarge { .. } | BodyError::InflatesTooLarge { .. } => ApiProblem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
                detail,
            ),
            BodyError::MediaType(_) | BodyError::Encoding(_) => ApiProblem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                detail,
            ),
            BodyError::Timeout => {
                let mut problem = ApiProblem::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "body-timeout",
                    "Request body timeout",
                    detail,
                );
                // The rest of the body may still be on its way: this connection is done.
                problem.extra = Some((
                    axum::http::header::CONNECTION,
                    HeaderValue::from_static("close"),
                ));
                problem
            }
            BodyError::Read(_) | BodyError::Corrupt { .. } => ApiProblem::new(
                StatusCode::BAD_REQUEST,
                "malformed-body",
                "Malformed body",
                detail,
            ),
            BodyError::Syntax(_) => ApiProblem::new(
                StatusCode::BAD_REQUEST,
                "malformed-json",
                "Malformed JSON",
                detail,
            ),
            BodyError::Invalid(_) => ApiProblem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-batch",
                "Invalid batch",
                detail,
            ),
        }
    }
}

impl From<IngestError> for ApiProblem {
    fn from(e: IngestError) -> ApiProblem {
        let detail = e.to_string();
        match e {
            IngestError::Shape(_) | IngestError::OutOfRange(_) => ApiProblem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-batch",
                "Invalid batch",
                detail,
            ),
            IngestError::WrongDevice { .. } => {
                ApiProblem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
            }
            IngestError::SeqGap { expected_seq, .. } => {
                let mut p =
                    ApiProblem::new(StatusCode::CONFLICT, "seq-gap", "Sequence gap", detail);
                p.problem.expected_seq = Some(expected_seq);
                p
            }
            IngestError::TooManyEpochs { retry_after_s, .. } => {
                let mut problem = ApiProblem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too-many-epochs",
                    "Too many new change logs",
                    detail,
                );
                problem.extra = HeaderValue::from_str(&retry_after_s.to_string())
                    .ok()
                    .map(|v| (RETRY_AFTER, v));
                problem
            }
            IngestError::UnknownDevice => ApiProblem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                "the device of this token is not enrolled",
            ),
            IngestError::Store(e) => store_unavailable(&e),
        }
    }
}

/// The bearer token of a request, if it has one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Authenticates a request as a device: a staff token is refused (403), a missing,
/// unknown or revoked one too (401).
async fn authenticate_device(app: &AppState, headers: &HeaderMap) -> Result<DeviceRef, ApiProblem> {
    let Some(token) = bearer(headers) else {
        return Err(ApiProblem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            "send the device token as 'Authorization: Bearer <token>'",
        ));
    };
    match app.store.authenticate(token).await {
        Ok(principal @ Principal::Device { .. }) => principal.device().ok_or_else(|| {
            ApiProblem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                "the token's device could not be read",
            )
        }),
        Ok(Principal::Staff { .. }) => Err(ApiProblem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Forbidden",
            "a staff token reads reports; only a device token may use this endpoint",
        )),
        Err(AuthError::Unknown) => Err(ApiProblem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            "the token is not known to this server",
        )),
        Err(AuthError::Revoked) => Err(ApiProblem::new(
            StatusCode::UNAUTHORIZED,
            "token-revoked",
            "Token revoked",
            "this device's token has been revoked; the PC keeps its data until it is enrolled again",
        )),
        Err(AuthError::Store(e)) => Err(store_unavailable(&e)),
    }
}

/// Everything between the request and the stored batch.
async fn ingest_request(
    app: &AppState,
    headers: &HeaderMap,
    request_body: Body,
    received_at: DateTime<Utc>,
) -> Result<BatchAck, ApiProblem> {
    // Who is asking comes first: an unauthenticated body is never read.
    let device = authenticate_device(app, headers).await?;
    body::check_media_type(headers)?;
    let encoding = body::encoding(headers)?;
    let limits = app.config.limits;
    // The turn is taken before the body is read and held until the batch is stored.
    // The semaphore is never closed, so acquiring cannot fail.
    let _turn = app.batch_turns.acquire().await.ok();
    let raw = body::read_limited(headers, request_body, limits.max_body_bytes).await?;
    // The semaphore is never closed; should that change, parsing goes on unbounded
    // rather than refusing every batch.
    let parsing = app.parsing.clone().acquire_owned().await.ok();
    // Inflating and parsing a few MiB is CPU work: off the async workers.
    let batch: WireBatch = tokio::task::spawn_blocking(move || -> Result<WireBatch, BodyError> {
        let json = body::inflate(&raw, encoding, limits.max_decompressed_bytes)?;
        body::parse(&json)
    })
    .await
    .map_err(|e| {
        ApiProblem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            format!("the batch could not be parsed: {e}"),
        )
    })??;
    // The JSON is gone; the parsed batch waits for the store under its turn only.
    drop(parsing);
    if let Some(refusal) = too_many_records(&batch, limits) {
        return Err(refusal);
    }
    if let Some(refusal) = unaccepted_entry(&batch, &app.config.accepts) {
        return Err(refusal);
    }
    let started = Instant::now();
    let ack = app
        .store
        .ingest(&device, batch, received_at, Delivery::Online)
        .await
        .map_err(|e| {
            if let IngestError::WrongDevice { .. } = &e {
                // A security event: a token used for another library's or PC's data.
                tracing::warn!(device = device.id.0, error = %e, "batch names another device");
            }
            ApiProblem::from(e)
        })?;
    app.metrics.ingest_duration(started.elapsed());
    app.metrics.records(
        u64::from(ack.new),
        u64::from(ack.duplicates),
        ack.rejected.len() as u64,
    );
    Ok(ack)
}

/// The refusal of a batch with more records than one batch may carry.
fn too_many_records(batch: &WireBatch, limits: Limits) -> Option<ApiProblem> {
    if batch.len() > limits.max_records {
        return Some(ApiProblem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-many-records",
            "Too many records",
            format!(
                "the batch carries {} records; at most {} are accepted in one batch",
                batch.len(),
                limits.max_records
            ),
        ));
    }
    None
}

/// Decodes a batch carried on a USB stick as the HTTP path decodes a request's body:
/// inflated (zstd when `compressed`) within the same limit, parsed by the same parser,
/// its records counted against the same limit. The problem says why one is refused.
/// Returns the batch and the size of its JSON.
pub fn decode_carried_batch(
    body: &[u8],
    compressed: bool,
    limits: Limits,
) -> Result<(WireBatch, usize), Problem> {
    let encoding = if compressed {
        body::Encoding::Zstd
    } else {
        body::Encoding::Identity
    };
    let (batch, size) = body::inflate(body, encoding, limits.max_decompressed_bytes)
        .and_then(|json| body::parse(&json).map(|batch| (batch, json.len())))
        .map_err(|e| ApiProblem::from(e).problem)?;
    match too_many_records(&batch, limits) {
        Some(refusal) => Err(refusal.problem),
        None => Ok((batch, size)),
    }
}

/// Inflates a zstd stream carried on a USB stick (a version 1 bundle's batches) to at
/// most `limit` bytes, as the HTTP path inflates a body.
pub fn inflate_carried(body: &[u8], limit: usize) -> Result<Vec<u8>, Problem> {
    body::inflate(body, body::Encoding::Zstd, limit)
        .map(std::borrow::Cow::into_owned)
        .map_err(|e| ApiProblem::from(e).problem)
}

/// Stores one batch of the token's device; answers after the commit.
#[utoipa::path(
    post,
    path = "/api/v1/batches",
    tag = "sync",
    request_body(
        content = WireBatch,
        content_type = "application/vnd.jejak.batch.v1+json",
        description = "A batch of the device's change log (`application/json` is accepted too). \
            Send it compressed with `Content-Encoding: zstd` (or `gzip`)."
    ),
    params(
        ("Content-Encoding" = inline(Option<openapi::EncodingName>), Header, description = "`zstd` (what PCs send), `gzip`, `identity`, or absent"),
    ),
    responses(
        (status = 200, description = "Stored and committed; the answer says what was new, duplicate or rejected", body = BatchAck),
        (status = 400, description = "`malformed-body` or `malformed-json`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized` or `token-revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: a staff token, or a batch naming another library or PC", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`seq-gap`: resend from `expected_seq`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload-too-large` or `too-many-records`", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported-media-type`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too-many-epochs`: a new change log (seq 1 of a new epoch) beyond the PC's allowance of a day; retry after `Retry-After`", body = Problem, content_type = "application/problem+json"),
        (status = 408, description = "`body-timeout`: the body did not arrive in time; send it again", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid-batch`: the detail names what is wrong, e.g. `sessions.duration_s[3] is … outside the allowed 0 to 31622400`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`store-unavailable`: retry the same batch later", body = Problem, content_type = "application/problem+json"),
    ),
    security(("device_token" = []))
)]
async fn post_batch(
    State(app): State<AppState>,
    headers: HeaderMap,
    request_body: Body,
) -> Response {
    // t2: the arrival, read before the body streams in (on a slow link the upload
    // itself takes minutes and is not part of the clock offset).
    let received_at = app.now();
    match ingest_request(&app, &headers, request_body, received_at).await {
        Ok(mut ack) => {
            app.metrics.batch(BatchResult::Accepted);
            // t3: as late as possible before the answer leaves.
            ack.sent_at_ms = app.now().timestamp_millis();
            (StatusCode::OK, Json(ack)).into_response()
        }
        Err(problem) => {
            app.metrics.batch(problem.batch_result());
            problem.into_response()
        }
    }
}

/// Refuses a batch carrying an entry of a kind this server does not list in `accepts`
/// (only a test's server lists fewer than it knows), naming the entry, as an older
/// server's parser would refuse it.
fn unaccepted_entry(batch: &WireBatch, accepts: &[jejak_domain::RecordKind]) -> Option<ApiProblem> {
    let (index, row) = batch.entries.iter().enumerate().find(|(_, row)| {
        jejak_domain::RecordKind::from_code(&row.1).is_some_and(|kind| !accepts.contains(&kind))
    })?;
    Some(ApiProblem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-batch",
        "Invalid batch",
        format!(
            "entries[{index}].kind '{}' is not a kind this server stores",
            row.1
        ),
    ))
}

/// The answer of `GET /api/v1/devices/me`: what the server holds for the token's
/// device, and the record kinds it stores.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct DeviceMe {
    #[serde(flatten)]
    state: crate::store::DeviceState,
    /// The record kinds this server stores. A PC sends only these and holds the rest
    /// back; a server that does not say takes the kinds of wire format v1.
    accepts: Vec<jejak_domain::RecordKind>,
}

/// What the server holds for the token's device.
#[utoipa::path(
    get,
    path = "/api/v1/devices/me",
    tag = "sync",
    responses(
        (status = 200, description = "The device's held seqs, counts and clock offset, and the record kinds the server stores", body = DeviceMe),
        (status = 401, description = "`unauthorized` or `token-revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not a device token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("device_token" = []))
)]
async fn device_me(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let device = match authenticate_device(&app, &headers).await {
        Ok(device) => device,
        Err(problem) => return problem.into_response(),
    };
    match app.store.device_state(&device).await {
        Ok(state) => Json(DeviceMe {
            state,
            accepts: app.config.accepts.clone(),
        })
        .into_response(),
        Err(e) => store_unavailable(&e).into_response(),
    }
}

/// The largest key registration accepted: the real one is under 100 bytes.
const MAX_KEY_REQUEST_BYTES: usize = 1024;

/// Registers the PC's Ed25519 public key, with which it signs its USB bundles, under
/// the token of the request. A token holds one key for its life; a new key comes with
/// a new token (a new enrollment).
#[utoipa::path(
    put,
    path = "/api/v1/devices/me/key",
    tag = "sync",
    request_body(content = KeyRegistrationRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The key is the device's (`new` says whether this request registered it)", body = KeyRegistrationAnswer),
        (status = 400, description = "`malformed-json`: the body is not the request", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized` or `token-revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not a device token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`key-conflict`: another key is registered under this token; enroll the PC again to change it", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload-too-large`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid-key`: not an Ed25519 public key", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`store-unavailable`: retry later", body = Problem, content_type = "application/problem+json"),
    ),
    security(("device_token" = []))
)]
async fn register_key(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    match register_key_request(&app, &headers, body).await {
        Ok(answer) => Json(answer).into_response(),
        Err(problem) => problem.into_response(),
    }
}

async fn register_key_request(
    app: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<KeyRegistrationAnswer, ApiProblem> {
    let device = authenticate_device(app, headers).await?;
    let hash = bearer(headers).map(token_hash).ok_or_else(|| {
        ApiProblem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            "send the device token as 'Authorization: Bearer <token>'",
        )
    })?;
    let bytes = axum::body::to_bytes(body, MAX_KEY_REQUEST_BYTES)
        .await
        .map_err(|_| BodyError::TooLarge {
            limit: MAX_KEY_REQUEST_BYTES,
        })?;
    let request: KeyRegistrationRequest =
        serde_json::from_slice(&bytes).map_err(|e| BodyError::Syntax(e.to_string()))?;
    let invalid = |why: &str| {
        ApiProblem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-key",
            "Invalid key",
            format!("public_key must be an Ed25519 public key as 64 hexadecimal digits: {why}"),
        )
    };
    let key: [u8; 32] = hex::decode(request.public_key.trim())
        .map_err(|_| invalid("not hexadecimal"))?
        .try_into()
        .map_err(|_| invalid("not 32 bytes"))?;
    if !ed25519_dalek::VerifyingKey::from_bytes(&key).is_ok_and(|k| !k.is_weak()) {
        return Err(invalid("not a point of the curve, or a weak one"));
    }
    let outcome = app
        .store
        .register_device_key(&hash, &key, app.now())
        .await
        .map_err(|e| store_unavailable(&e))?;
    let answer = |new| KeyRegistrationAnswer {
        public_key: hex::encode(key),
        new,
    };
    match outcome {
        KeyRegistration::Registered => {
            tracing::info!(device = device.id.0, "a PC registered its signing key");
            Ok(answer(true))
        }
        KeyRegistration::AlreadyRegistered => Ok(answer(false)),
        KeyRegistration::OtherKeyRegistered => {
            tracing::warn!(
                device = device.id.0,
                "a PC sent another signing key than the one registered under its token"
            );
            Err(ApiProblem::new(
                StatusCode::CONFLICT,
                "key-conflict",
                "Another key is registered",
                "another signing key is registered under this token; to change it, the district \
                 revokes the PC's token and enrolls it again (jejak server revoke-device, add-device)",
            ))
        }
        KeyRegistration::NoActiveToken => Err(ApiProblem::new(
            StatusCode::UNAUTHORIZED,
            "token-revoked",
            "Token revoked",
            "this device's token has been revoked; the PC keeps its data until it is enrolled again",
        )),
    }
}

/// The server's clock at arrival (t2) and departure (t3) of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct TimeAnswer {
    /// When the request arrived, Unix ms (t2).
    pub received_at_ms: i64,
    /// When the answer left, Unix ms (t3).
    pub sent_at_ms: i64,
}

/// The clock probe: with the PC's own send and receive times it gives the offset of the
/// PC's clock (NTP's on-wire calculation). No token needed.
#[utoipa::path(
    get,
    path = "/api/v1/time",
    tag = "sync",
    responses(
        (status = 200, description = "The server clock's readings", body = TimeAnswer),
        (status = "4XX", description = "The request itself was refused (malformed, or its headers over the limit): a problem document when it could be read", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn server_time(State(app): State<AppState>) -> Json<TimeAnswer> {
    let received_at_ms = app.now().timestamp_millis();
    Json(TimeAnswer {
        received_at_ms,
        sent_at_ms: app.now().timestamp_millis(),
    })
}

/// The health answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`, or `unavailable` when the store cannot write (the answer is then 503 with
    /// `Retry-After`).
    pub status: String,
    /// Always `jejak-server`: the PC's connectivity probe checks it, so that a captive
    /// portal's page is not taken for the server. A 503 with this service means "the
    /// server is reachable, its store is not", not "no link".
    pub service: String,
    /// This server's version.
    pub version: String,
    /// Why the store cannot write (a full disk, a database that does not answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Health for people, load balancers and the PCs' connectivity probe: the store is
/// asked (a recent commit, or a small write of its own, at most every 5 s), so a full
/// disk or a database that is down shows here, and a store that recovers shows as soon
/// as it does.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses(
        (status = 200, description = "The server can take batches", body = Health),
        (status = 503, description = "The server answers but its store cannot write (full disk, database down); retry after `Retry-After` seconds", body = Health,
            headers(("Retry-After" = u32, description = "Seconds to wait before trying again"))),
        (status = "4XX", description = "The request itself was refused (malformed, or its headers over the limit): a problem document when it could be read", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn healthz(State(app): State<AppState>) -> Response {
    let outcome = app.health.check(app.store.as_ref()).await;
    let body = Health {
        status: if outcome.is_ok() { "ok" } else { "unavailable" }.to_string(),
        service: SERVICE_NAME.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        problem: outcome.err(),
    };
    if body.problem.is_none() {
        return (StatusCode::OK, Json(body)).into_response();
    }
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
    response
}

/// Prometheus metrics: the classic text format 0.0.4 by default, OpenMetrics when the
/// `Accept` header prefers it (as Prometheus does).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    params(("Accept" = Option<String>, Header, description = "`application/openmetrics-text` for OpenMetrics 1.0.0; anything else (or nothing) gives the classic text format 0.0.4")),
    responses(
        (status = 200, description = "The metrics, in the exposition the `Accept` header asks for", content(
            (String = "text/plain; version=0.0.4"),
            (String = "application/openmetrics-text; version=1.0.0"),
        )),
        (status = "4XX", description = "The request itself was refused (malformed, or its headers over the limit): a problem document when it could be read", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn metrics(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let accept = headers.get(ACCEPT).and_then(|v| v.to_str().ok());
    let format = Exposition::for_accept(accept);
    let mut response = app.metrics.render(format).into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    response
}

/// This API's OpenAPI 3 document, generated from the code.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "operations",
    responses(
        (status = 200, description = "The OpenAPI document", body = Object, content_type = "application/json"),
        (status = "4XX", description = "The request itself was refused (malformed, or its headers over the limit): a problem document when it could be read", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn openapi_json() -> Response {
    Json(openapi_document()).into_response()
}

async fn not_found() -> ApiProblem {
    ApiProblem::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "Not found",
        "no such endpoint",
    )
}

async fn method_not_allowed() -> ApiProblem {
    ApiProblem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        "this endpoint does not take that method",
    )
}
