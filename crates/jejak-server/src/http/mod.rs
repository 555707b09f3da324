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
//! | 409 | `seq-gap` | the batch starts past the held seq; `expected_seq` says where to resume |
//! | 413 | `payload-too-large` | the body, compressed or decompressed, is over its limit |
//! | 413 | `too-many-records` | more records than one batch may carry |
//! | 415 | `unsupported-media-type` | another Content-Type or Content-Encoding |
//! | 422 | `invalid-batch` | JSON of the wrong shape: wrong types, unknown enum values or fields, inconsistent columns |
//! | 503 | `store-unavailable` | the store failed; retry the same batch later |
//!
//! A 4xx never changes anything on the server; a 200 is sent only after the commit.

mod body;
mod openapi;
pub(crate) mod reports;
pub mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use jejak_domain::{BatchAck, Problem, WireBatch};
use serde::Serialize;

use crate::metrics::{BatchResult, Metrics};
use crate::store::{
    AuthError, Delivery, DeviceRef, IngestError, Principal, ServerClock, ServerStore, system_clock,
};
use body::BodyError;

pub use openapi::openapi_document;

/// The media type of every error answer.
pub const PROBLEM_MEDIA_TYPE: &str = "application/problem+json";
/// The `service` the health answer names; the PC agent's connectivity probe requires it.
pub const SERVICE_NAME: &str = "jejak-server";

/// Size limits of a batch request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most bytes a request body may have as sent (compressed). Default 2 MiB.
    pub max_body_bytes: usize,
    /// The most bytes it may inflate to. Default 16 MiB.
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
            max_decompressed_bytes: 16 << 20,
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
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            limits: Limits::default(),
            clock: system_clock(),
        }
    }
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("limits", &self.limits)
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
    /// Turns for batches ([`Limits::max_concurrent_batches`]).
    batch_turns: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    /// The state of a server over `store`.
    pub fn new(store: Arc<dyn ServerStore>, config: ServerConfig) -> AppState {
        let turns = config.limits.max_concurrent_batches.max(1);
        AppState {
            store,
            config: Arc::new(config),
            metrics: Arc::new(Metrics::new()),
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
    Router::new()
        .route("/api/v1/batches", post(post_batch))
        .route("/api/v1/devices/me", get(device_me))
        .route("/api/v1/time", get(server_time))
        .route("/api/v1/reports/village", get(reports::village_report))
        .route("/api/v1/reports/district", get(reports::district_report))
        .route("/api/v1/reports/quarter", get(reports::quarter_report))
        .route("/api/v1/reports/year", get(reports::year_report))
        .route("/api/v1/reports/ops", get(reports::ops_report))
        .route("/api/v1/openapi.json", get(openapi_json))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(crate::dashboard::routes(&state))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes, then stops accepting
/// connections and waits for the requests in flight to finish (each batch in flight is
/// committed and answered) before returning.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let address = listener.local_addr()?;
    tracing::info!(%address, "jejak server listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!(%address, "jejak server stopped");
    Ok(())
}

/// [`run`] over HTTPS: the same API, TLS terminated here with `tls`
/// ([`tls::load_server_config`]).
pub async fn run_tls(
    listener: tokio::net::TcpListener,
    tls: std::sync::Arc<rustls::ServerConfig>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let address = listener.local_addr()?;
    tracing::info!(%address, "jejak server listening (HTTPS)");
    axum::serve(tls::TlsListener::new(listener, tls)?, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
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
            StatusCode::SERVICE_UNAVAILABLE => Some((RETRY_AFTER, HeaderValue::from_static("10"))),
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
    // Inflating and parsing up to 16 MiB is CPU work: off the async workers.
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
    if batch.len() > limits.max_records {
        return Err(ApiProblem::new(
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
        ("Content-Encoding" = Option<String>, Header, description = "`zstd`, `gzip`, or absent"),
    ),
    responses(
        (status = 200, description = "Stored and committed; the answer says what was new, duplicate or rejected", body = BatchAck),
        (status = 400, description = "`malformed-body` or `malformed-json`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized` or `token-revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: a staff token, or a batch naming another library or PC", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`seq-gap`: resend from `expected_seq`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload-too-large` or `too-many-records`", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported-media-type`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid-batch`", body = Problem, content_type = "application/problem+json"),
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

/// What the server holds for the token's device.
#[utoipa::path(
    get,
    path = "/api/v1/devices/me",
    tag = "sync",
    responses(
        (status = 200, description = "The device's held seqs, counts and clock offset", body = crate::store::DeviceState),
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
        Ok(state) => Json(state).into_response(),
        Err(e) => store_unavailable(&e).into_response(),
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
    responses((status = 200, description = "The server clock's readings", body = TimeAnswer))
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
    /// `ok`, or `unavailable` when the store cannot write.
    pub status: String,
    /// Always `jejak-server`: the PC's connectivity probe checks it, so that a captive
    /// portal's page is not taken for the server.
    pub service: String,
    /// This server's version.
    pub version: String,
}

/// Liveness for people, load balancers and the PCs' connectivity probe.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses(
        (status = 200, description = "The server can take batches", body = Health),
        (status = 503, description = "The store cannot write", body = Health),
    )
)]
async fn healthz(State(app): State<AppState>) -> Response {
    let healthy = app.store.is_healthy();
    let body = Health {
        status: if healthy { "ok" } else { "unavailable" }.to_string(),
        service: SERVICE_NAME.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Prometheus metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "OpenMetrics text exposition", body = String, content_type = "application/openmetrics-text"))
)]
async fn metrics(State(app): State<AppState>) -> Response {
    let mut response = app.metrics.render().into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

/// This API's OpenAPI 3 document, generated from the code.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json"))
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
