//! The web dashboard for district staff, served by the district server.
//!
//! Server-rendered HTML with inline CSS and inline SVG charts: no scripts, no build
//! step, no external files, so it works on an old, slow office PC and with scripts off.
//! Indonesian by default; `?lang=en` (or `?lang=id`) switches and is remembered in a
//! cookie.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | redirects to `/dashboard` |
//! | `GET /dashboard/login`, `POST /dashboard/login` | the sign-in form (staff token) |
//! | `POST /dashboard/logout` | signs out |
//! | `GET /dashboard?month=YYYY-MM` | the district matrix, flagged libraries highlighted |
//! | `GET /dashboard/village/{code}?month=` | a village's monthly report with charts |
//! | `GET /dashboard/visits?month=YYYY-MM` | visits per library and the visitor book's purposes (the matrix's services table), with charts |
//! | `GET /dashboard/activities?month=YYYY-MM` | activities and participants per library (the same table), with charts |
//! | `GET /dashboard/period?period=2026-Q4` | the quarterly or annual comparison |
//! | `GET /dashboard/iplm?year=YYYY` | the year's IPLM sheet and its definitions, with a chart of visits per day served |
//! | `GET /dashboard/ops` | the operations view |
//! | `GET /dashboard/download/{report}/{format}?…` | `csv`, `xlsx` or `html` of a report: the pages' own (`district`, `village`, `period`, `ops`), or any report of the registry by its name with the API's parameters |
//!
//! Security: a staff token (never a device token) signs in; the token itself is never
//! kept, put in a cookie, a URL or a log. A sign-in creates a server-side session with a
//! random 32-byte id, kept in memory for 12 hours, sent as an `HttpOnly; SameSite=Strict`
//! cookie. Every page but the sign-in page redirects there without a valid session; a
//! session is valid while its token, known by its SHA-256, is still active, so revoking
//! the token (`jejak server revoke-staff`) signs its sessions out at their next page.
//! State changes are POSTs whose `Origin`, when sent, must name this host. Answers carry
//! `Cache-Control: no-store` and a content security policy that allows no scripts.
//! Reports are built only through [`crate::report::load`], so the dashboard shows the
//! numbers `jejak report` and the report API show.

mod pages;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, HOST, LOCATION, ORIGIN,
    REFERRER_POLICY, SET_COOKIE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use jejak_domain::{Lang, LibraryCode};
use rand::Rng;
use serde::Deserialize;

use crate::http::AppState;
use crate::http::reports::{ReportFormat, report_response};
use crate::report::today_wib;
use crate::report::{
    CsvDialect, LoadError, ParamError, Period, RenderOptions, Report, ReportKind, ReportRequest,
    load, parse_month, parse_quarter, parse_year,
};
use crate::store::{AuthError, Principal, token_hash};
use pages::{Frame, Nav};

/// How long a sign-in lasts.
const SESSION_HOURS: i64 = 12;
/// The most sessions kept at once; past it the oldest are dropped. Only a valid staff
/// token creates one, so this only bounds memory against a token used in a loop.
const MAX_SESSIONS: usize = 10_000;
/// The session cookie's name.
const SESSION_COOKIE: &str = "jejak_session";
/// The language cookie's name.
const LANG_COOKIE: &str = "jejak_lang";

/// A signed-in staff member.
#[derive(Debug, Clone)]
struct StaffSession {
    /// The name the staff token was issued to (shown in the header).
    name: String,
    /// The SHA-256 of the token that signed in (never the token): every page asks the
    /// store whether it is still active, so revoking it ends the session.
    token_hash: [u8; 32],
    /// When the session ends.
    expires: DateTime<Utc>,
}

/// The dashboard's own state beside the server's: the signed-in sessions.
#[derive(Clone, Debug)]
struct Dashboard {
    app: AppState,
    sessions: Arc<Mutex<HashMap<String, StaffSession>>>,
}

impl Dashboard {
    /// The staff session of the request's cookie, if it is valid now: not expired, and
    /// its token not revoked since (a store error counts as not valid).
    async fn staff(&self, headers: &HeaderMap) -> Option<StaffSession> {
        let id = cookie(headers, SESSION_COOKIE)?;
        let now = self.app.now();
        let session = {
            let mut sessions = self.sessions.lock().ok()?;
            match sessions.get(id) {
                Some(session) if session.expires > now => session.clone(),
                Some(_) => {
                    sessions.remove(id);
                    return None;
                }
                None => return None,
            }
        };
        match self
            .app
            .store()
            .staff_token_active(&session.token_hash)
            .await
        {
            Ok(true) => Some(session),
            Ok(false) => {
                tracing::info!(staff = %session.name, "dashboard: the session's token was revoked; signed out");
                if let Ok(mut sessions) = self.sessions.lock() {
                    sessions.remove(id);
                }
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "dashboard: the store could not check a session's token");
                None
            }
        }
    }

    /// Starts a session for `name`, signed in with the token of `token_hash`; returns its
    /// id.
    fn start_session(&self, name: String, token_hash: [u8; 32]) -> Option<String> {
        let mut bytes = [0u8; 32];
        // ThreadRng is a cryptographically secure generator seeded from the OS.
        rand::rng().fill(&mut bytes);
        let id = hex::encode(bytes);
        let now = self.app.now();
        let mut sessions = self.sessions.lock().ok()?;
        sessions.retain(|_, s| s.expires > now);
        if sessions.len() >= MAX_SESSIONS {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(
            id.clone(),
            StaffSession {
                name,
                token_hash,
                expires: now + Duration::hours(SESSION_HOURS),
            },
        );
        Some(id)
    }

    /// Ends the session of the request's cookie.
    fn end_session(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers, SESSION_COOKIE)
            && let Ok(mut sessions) = self.sessions.lock()
        {
            sessions.remove(id);
        }
    }
}

/// The dashboard's routes, to be merged into the server's router.
pub(crate) fn routes(app: &AppState) -> Router<AppState> {
    let dashboard = Dashboard {
        app: app.clone(),
        sessions: Arc::new(Mutex::new(HashMap::new())),
    };
    Router::new()
        .route("/", get(root))
        .route("/dashboard", get(district_page))
        .route("/dashboard/", get(root))
        .route("/dashboard/login", get(sign_in_page).post(sign_in))
        .route("/dashboard/logout", post(sign_out))
        .route("/dashboard/village/{code}", get(village_page))
        .route("/dashboard/visits", get(visits_page))
        .route("/dashboard/activities", get(activities_page))
        .route("/dashboard/period", get(period_page))
        .route("/dashboard/iplm", get(iplm_page))
        .route("/dashboard/ops", get(ops_page))
        .route("/dashboard/download/{kind}/{format}", get(download))
        .route_layer(axum::middleware::from_fn_with_state(
            dashboard.clone(),
            guard,
        ))
        .with_state(dashboard)
}

/// In front of every dashboard route: refuses a `Host` the dashboard does not answer to
/// (421), and marks the answer's cookies `Secure` when the server is reached over TLS.
async fn guard(
    State(dash): State<Dashboard>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let settings = &dash.app.config().dashboard;
    let host = request
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !host_allowed(host, &settings.hosts) {
        tracing::warn!("dashboard: a request for a host it does not answer to was refused");
        let mut response = (
            StatusCode::MISDIRECTED_REQUEST,
            "Host tidak dilayani dasbor ini / this dashboard does not answer to that host name \
             (jejak server run --dashboard-host NAME)",
        )
            .into_response();
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        return secure(response);
    }
    let mut response = next.run(request).await;
    if settings.secure_cookies {
        mark_cookies_secure(response.headers_mut());
    }
    response
}

/// Whether the dashboard answers to `host` (a `Host` header, port and all): IP
/// addresses and `localhost` always, names only when configured.
fn host_allowed(host: &str, configured: &[String]) -> bool {
    let host = host.trim();
    // `[::1]:8080`, `127.0.0.1:8080`, `name:8080`, or any of them without a port.
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((inside, _)) => inside,
            None => return false,
        }
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    if name.is_empty() {
        return false;
    }
    name.parse::<std::net::IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || configured
            .iter()
            .any(|allowed| allowed.trim().eq_ignore_ascii_case(name))
}

/// Adds `Secure` to every cookie the answer sets.
fn mark_cookies_secure(headers: &mut HeaderMap) {
    let cookies: Vec<HeaderValue> = headers.get_all(SET_COOKIE).iter().cloned().collect();
    if cookies.is_empty() {
        return;
    }
    headers.remove(SET_COOKIE);
    for cookie in cookies {
        let marked = cookie
            .to_str()
            .ok()
            .and_then(|c| HeaderValue::from_str(&format!("{c}; Secure")).ok())
            .unwrap_or(cookie);
        headers.append(SET_COOKIE, marked);
    }
}

/// The query parameters the pages take; all optional.
#[derive(Debug, Default, Deserialize)]
struct PageQuery {
    month: Option<String>,
    lang: Option<String>,
    period: Option<String>,
    /// The IPLM page's year.
    year: Option<String>,
    library: Option<String>,
    table: Option<String>,
    /// On the sign-in page: the page to go back to (see [`safe_next`]).
    next: Option<String>,
    /// A CSV download's dialect (`standard` or `id`).
    csv_dialect: Option<String>,
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
struct SignInForm {
    token: String,
    /// The page to go back to (see [`safe_next`]).
    #[serde(default)]
    next: Option<String>,
}

/// A cookie's value from the request.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
}

/// The page's language: `?lang=` first (and then remembered), else the cookie, else
/// Indonesian.
fn language(query: &PageQuery, headers: &HeaderMap) -> (Lang, Option<HeaderValue>) {
    if let Some(lang) = query.lang.as_deref().and_then(|l| l.parse::<Lang>().ok()) {
        let cookie = HeaderValue::from_str(&format!(
            "{LANG_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Strict",
            lang.code()
        ))
        .ok();
        return (lang, cookie);
    }
    let lang = cookie(headers, LANG_COOKIE)
        .and_then(|l| l.parse::<Lang>().ok())
        .unwrap_or_default();
    (lang, None)
}

/// The headers every dashboard answer carries: no caching of staff data on a shared
/// PC, no scripts, no framing, no referrer leaving the site.
fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

/// An HTML answer, with the language cookie when the language was just chosen.
fn html(status: StatusCode, body: String, lang_cookie: Option<HeaderValue>) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Some(cookie) = lang_cookie {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    secure(response)
}

/// A `303 See Other` to `to`, with extra cookies.
fn see_other(to: &str, cookies: impl IntoIterator<Item = HeaderValue>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(to) {
        response.headers_mut().insert(LOCATION, location);
    }
    for cookie in cookies {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    secure(response)
}

/// Whether a POST comes from this site: its `Origin`, when sent, must be this host.
/// Browsers send `Origin` on every cross-site POST, so a form on another site cannot
/// sign someone in or out here.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN) else {
        return true;
    };
    let (Ok(origin), Some(host)) = (
        origin.to_str(),
        headers.get(HOST).and_then(|h| h.to_str().ok()),
    ) else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|rest| rest.eq_ignore_ascii_case(host))
}

/// The page's path and query without `lang`, for the language switch.
fn self_url(path: &str, pairs: &[(&str, Option<&str>)]) -> String {
    let query: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={}", pages::url_encode(v))))
        .collect();
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

/// The answer when a report could not be loaded.
fn load_failed(frame: &Frame<'_>, error: &LoadError, cookie: Option<HeaderValue>) -> Response {
    let lang = frame.lang;
    match error {
        LoadError::UnknownLibrary(code) => html(
            StatusCode::NOT_FOUND,
            pages::message(
                frame,
                lang.pick("Tidak ditemukan", "Not found"),
                &match lang {
                    Lang::Id => format!("Perpustakaan '{code}' tidak terdaftar."),
                    Lang::En => format!("Library '{code}' is not registered."),
                },
            ),
            cookie,
        ),
        LoadError::Store(e) => {
            tracing::error!(error = %e, "dashboard: the store could not be read");
            html(
                StatusCode::SERVICE_UNAVAILABLE,
                pages::message(
                    frame,
                    lang.pick("Data tidak dapat dibaca", "Data unavailable"),
                    lang.pick(
                        "Server tidak dapat membaca data saat ini. Coba lagi sebentar lagi.",
                        "The server could not read its data just now. Try again shortly.",
                    ),
                ),
                cookie,
            )
        }
    }
}

/// A month from the query, or `default`; with a notice when the query's month could
/// not be read.
fn month_of(query: &PageQuery, default: NaiveDate, lang: Lang) -> (NaiveDate, Option<String>) {
    match query.month.as_deref().filter(|m| !m.trim().is_empty()) {
        None => (default, None),
        Some(raw) => match parse_month(raw) {
            Some(month) => (month, None),
            None => (
                default,
                Some(match lang {
                    Lang::Id => "Bulan tidak dikenali; gunakan TTTT-BB, misalnya 2026-10. Bulan terakhir yang berisi data ditampilkan.".to_string(),
                    Lang::En => "Month not recognised; use YYYY-MM, e.g. 2026-10. The latest month with data is shown.".to_string(),
                }),
            ),
        },
    }
}

/// A year from the query, or `default`; with a notice when the query's year could not
/// be read, as [`month_of`] does for months.
fn year_of(query: &PageQuery, default: i32, lang: Lang) -> (i32, Option<String>) {
    match query.year.as_deref().filter(|y| !y.trim().is_empty()) {
        None => (default, None),
        Some(raw) => match parse_year(raw) {
            Some(Period::Year(year)) => (year, None),
            _ => (
                default,
                Some(match lang {
                    Lang::Id => "Tahun tidak dikenali; gunakan TTTT, misalnya 2026. Tahun berjalan ditampilkan.".to_string(),
                    Lang::En => "Year not recognised; use YYYY, e.g. 2026. The current year is shown.".to_string(),
                }),
            ),
        },
    }
}

/// The month a page shows when none is asked for: the latest month with sessions (the
/// current month is all zeros in its first days, and a district whose PCs sync late
/// has nothing in it yet), never past the current month in WIB, which is also the
/// answer before the first session or when the store cannot say.
async fn default_month(dash: &Dashboard, now: DateTime<Utc>) -> NaiveDate {
    let current = today_wib(now).with_day(1).unwrap_or_else(|| today_wib(now));
    match dash.app.store().latest_session_month().await {
        Ok(Some(latest)) => latest.min(current),
        Ok(None) => current,
        Err(e) => {
            tracing::warn!(error = %e, "dashboard: the latest month with data could not be read");
            current
        }
    }
}

/// Where a sign-in may lead back to: a dashboard page of this server (its path and
/// query), never another site (`//host`, a scheme) or a header-breaking character.
fn safe_next(raw: &str) -> Option<&str> {
    let raw = raw.trim();
    (raw.starts_with("/dashboard")
        && !raw.starts_with("/dashboard/login")
        && !raw.starts_with("/dashboard/logout")
        && raw.len() <= 512
        && raw
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '\\' && c != '"'))
    .then_some(raw)
}

async fn root() -> Response {
    see_other("/dashboard", [])
}

async fn sign_in_page(
    State(dash): State<Dashboard>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let (lang, cookie) = language(&query, &headers);
    let next = query.next.as_deref().and_then(safe_next);
    if dash.staff(&headers).await.is_some() {
        return see_other(next.unwrap_or("/dashboard"), cookie);
    }
    let frame = Frame {
        lang,
        staff: None,
        self_url: self_url("/dashboard/login", &[("next", next)]),
        nav: Nav::SignIn,
    };
    html(StatusCode::OK, pages::sign_in(&frame, None, next), cookie)
}

async fn sign_in(
    State(dash): State<Dashboard>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<SignInForm>,
) -> Response {
    let (lang, _) = language(&PageQuery::default(), &headers);
    let next = form.next.as_deref().and_then(safe_next);
    let frame = Frame {
        lang,
        staff: None,
        self_url: self_url("/dashboard/login", &[("next", next)]),
        nav: Nav::SignIn,
    };
    if !same_origin(&headers) {
        tracing::warn!("dashboard: sign-in from another site refused");
        return html(
            StatusCode::FORBIDDEN,
            pages::sign_in(
                &frame,
                Some(lang.pick(
                    "Permintaan dari situs lain ditolak.",
                    "A request from another site was refused.",
                )),
                next,
            ),
            None,
        );
    }
    let refused = |status: StatusCode, id: &str, en: &str| {
        html(
            status,
            pages::sign_in(&frame, Some(lang.pick(id, en)), next),
            None,
        )
    };
    match dash.app.store().authenticate(form.token.trim()).await {
        Ok(Principal::Staff { name }) => {
            let Some(id) = dash.start_session(name.clone(), token_hash(&form.token)) else {
                return refused(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Sesi tidak dapat dibuat.",
                    "The session could not be created.",
                );
            };
            tracing::info!(staff = %name, "dashboard: staff signed in");
            let cookie = HeaderValue::from_str(&format!(
                "{SESSION_COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
                SESSION_HOURS * 3600
            ))
            .ok();
            // Back to the page that asked for the sign-in, its month and all.
            see_other(next.unwrap_or("/dashboard"), cookie)
        }
        Ok(Principal::Device { .. }) => {
            tracing::warn!("dashboard: a device token was used to sign in");
            refused(
                StatusCode::FORBIDDEN,
                "Ini token PC perpustakaan, bukan token petugas. Gunakan token petugas dari jejak server add-staff.",
                "This is a library PC's token, not a staff token. Use a staff token from jejak server add-staff.",
            )
        }
        Err(AuthError::Unknown) => {
            tracing::info!("dashboard: sign-in with an unknown token");
            refused(
                StatusCode::UNAUTHORIZED,
                "Token tidak dikenal. Periksa token petugas Anda.",
                "Unknown token. Check your staff token.",
            )
        }
        Err(AuthError::Revoked) => refused(
            StatusCode::UNAUTHORIZED,
            "Token ini sudah dicabut. Minta token baru kepada admin server.",
            "This token has been revoked. Ask the server's administrator for a new one.",
        ),
        Err(AuthError::Store(e)) => {
            tracing::error!(error = %e, "dashboard: the store could not check a token");
            refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "Server tidak dapat memeriksa token saat ini. Coba lagi sebentar lagi.",
                "The server could not check the token just now. Try again shortly.",
            )
        }
    }
}

async fn sign_out(State(dash): State<Dashboard>, headers: HeaderMap) -> Response {
    if !same_origin(&headers) {
        tracing::warn!("dashboard: sign-out from another site refused");
        return secure((StatusCode::FORBIDDEN, "cross-site request refused").into_response());
    }
    dash.end_session(&headers);
    let expired = HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
    ))
    .ok();
    see_other("/dashboard/login", expired)
}

/// The answer to a request without a valid session: the sign-in page, which leads
/// back to `uri` (its month and all) once signed in.
fn to_sign_in(uri: &Uri) -> Response {
    let back = uri.path_and_query().map_or("/dashboard", |pq| pq.as_str());
    match safe_next(back) {
        Some(back) if back != "/dashboard" => see_other(
            &format!("/dashboard/login?next={}", pages::url_encode(back)),
            [],
        ),
        _ => see_other("/dashboard/login", []),
    }
}

async fn district_page(
    State(dash): State<Dashboard>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let Some(staff) = dash.staff(&headers).await else {
        return to_sign_in(&uri);
    };
    let (lang, cookie) = language(&query, &headers);
    let now = dash.app.now();
    let (month, notice) = month_of(&query, default_month(&dash, now).await, lang);
    let month_text = month.format("%Y-%m").to_string();
    let frame = Frame {
        lang,
        staff: Some(&staff.name),
        self_url: self_url("/dashboard", &[("month", Some(&month_text))]),
        nav: Nav::District,
    };
    match load(
        dash.app.store().as_ref(),
        &ReportRequest::District { month },
        lang,
        now,
    )
    .await
    {
        Ok(report) => html(
            StatusCode::OK,
            pages::district(&frame, &report, &month_text, notice.as_deref()),
            cookie,
        ),
        Err(e) => load_failed(&frame, &e, cookie),
    }
}

async fn village_page(
    State(dash): State<Dashboard>,
    Path(code): Path<String>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let Some(staff) = dash.staff(&headers).await else {
        return to_sign_in(&uri);
    };
    let (lang, cookie) = language(&query, &headers);
    let now = dash.app.now();
    let (month, _) = month_of(&query, default_month(&dash, now).await, lang);
    let month_text = month.format("%Y-%m").to_string();
    let frame = Frame {
        lang,
        staff: Some(&staff.name),
        self_url: self_url(
            &format!("/dashboard/village/{}", pages::url_encode(&code)),
            &[("month", Some(&month_text))],
        ),
        nav: Nav::Village,
    };
    let Ok(library) = LibraryCode::parse(&code) else {
        return html(
            StatusCode::NOT_FOUND,
            pages::message(
                &frame,
                lang.pick("Tidak ditemukan", "Not found"),
                lang.pick(
                    "Kode perpustakaan tidak valid.",
                    "The library code is not valid.",
                ),
            ),
            cookie,
        );
    };
    let request = ReportRequest::Village {
        month,
        library: library.clone(),
    };
    match load(dash.app.store().as_ref(), &request, lang, now).await {
        Ok(report) => html(
            StatusCode::OK,
            pages::village(&frame, &report, library.as_str(), &month_text),
            cookie,
        ),
        Err(e) => load_failed(&frame, &e, cookie),
    }
}

/// Which of the two month pages made from the district report's services table.
#[derive(Debug, Clone, Copy)]
enum ServicesPage {
    Visits,
    Activities,
}

async fn visits_page(
    State(dash): State<Dashboard>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    services_page(dash, query, headers, uri, ServicesPage::Visits).await
}

async fn activities_page(
    State(dash): State<Dashboard>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    services_page(dash, query, headers, uri, ServicesPage::Activities).await
}

/// The visits or activities page of a month: the district report, loaded as the matrix
/// is, shown through its services table.
async fn services_page(
    dash: Dashboard,
    query: PageQuery,
    headers: HeaderMap,
    uri: Uri,
    page: ServicesPage,
) -> Response {
    let Some(staff) = dash.staff(&headers).await else {
        return to_sign_in(&uri);
    };
    let (lang, cookie) = language(&query, &headers);
    let now = dash.app.now();
    let (month, notice) = month_of(&query, default_month(&dash, now).await, lang);
    let month_text = month.format("%Y-%m").to_string();
    let (path, nav) = match page {
        ServicesPage::Visits => ("/dashboard/visits", Nav::Visits),
        ServicesPage::Activities => ("/dashboard/activities", Nav::Activities),
    };
    let frame = Frame {
        lang,
        staff: Some(&staff.name),
        self_url: self_url(path, &[("month", Some(&month_text))]),
        nav,
    };
    match load(
        dash.app.store().as_ref(),
        &ReportRequest::District { month },
        lang,
        now,
    )
    .await
    {
        Ok(report) => {
            let body = match page {
                ServicesPage::Visits => {
                    pages::visits(&frame, &report, &month_text, notice.as_deref())
                }
                ServicesPage::Activities => {
                    pages::activities(&frame, &report, &month_text, notice.as_deref())
                }
            };
            html(StatusCode::OK, body, cookie)
        }
        Err(e) => load_failed(&frame, &e, cookie),
    }
}

/// The IPLM sheet of a year: the current year (in WIB) unless another is asked for.
async fn iplm_page(
    State(dash): State<Dashboard>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let Some(staff) = dash.staff(&headers).await else {
        return to_sign_in(&uri);
    };
    let (lang, cookie) = language(&query, &headers);
    let now = dash.app.now();
    let (year, notice) = year_of(&query, today_wib(now).year(), lang);
    let year_text = year.to_string();
    let frame = Frame {
        lang,
        staff: Some(&staff.name),
        self_url: self_url("/dashboard/iplm", &[("year", Some(&year_text))]),
        nav: Nav::Iplm,
    };
    match load(
        dash.app.store().as_ref(),
        &ReportRequest::Iplm { year },
        lang,
        now,
    )
    .await
    {
        Ok(report) => html(
            StatusCode::OK,
            pages::iplm(&frame, &report, &year_text, notice.as_deref()),
            cookie,
        ),
        Err(e) => load_failed(&frame, &e, cookie),
    }
}

async fn period_page(
    State(dash): State<Dashboard>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let Some(staff) = dash.staff(&headers).await else {
        return to_sign_in(&uri);
    };
    let (lang, cookie) = language(&query, &headers);
    let now = dash.app.now();
    let today = today_wib(now);
    let default = format!("{}-Q{}", today.year(), today.month0() / 3 + 1);
    let raw = query
        .period
        .clone()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or(default);
    let frame = Frame {
        lang,
        staff: Some(&staff.name),
        self_url: self_url("/dashboard/period", &[("period", Some(&raw))]),
        nav: Nav::Period,
    };
    let Some(period) = parse_quarter(&raw).or_else(|| parse_year(&raw)) else {
        return html(
            StatusCode::BAD_REQUEST,
            pages::message(
                &frame,
                lang.pick("Periode tidak dikenali", "Period not recognised"),
                lang.pick(
                    "Tulis triwulan seperti 2026-Q4 atau tahun seperti 2026.",
                    "Write a quarter like 2026-Q4 or a year like 2026.",
                ),
            ),
            cookie,
        );
    };
    match load(
        dash.app.store().as_ref(),
        &ReportRequest::Period(period),
        lang,
        now,
    )
    .await
    {
        Ok(report) => {
            let query = format!("period={}", pages::url_encode(&raw));
            html(
                StatusCode::OK,
                pages::plain_report(
                    &frame,
                    &report,
                    Some(("period", &raw)),
                    "/dashboard/download/period",
                    &query,
                ),
                cookie,
            )
        }
        Err(e) => load_failed(&frame, &e, cookie),
    }
}

async fn ops_page(
    State(dash): State<Dashboard>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let Some(staff) = dash.staff(&headers).await else {
        return to_sign_in(&uri);
    };
    let (lang, cookie) = language(&query, &headers);
    let now = dash.app.now();
    let frame = Frame {
        lang,
        staff: Some(&staff.name),
        self_url: "/dashboard/ops".into(),
        nav: Nav::Operations,
    };
    match load(
        dash.app.store().as_ref(),
        &ReportRequest::Operations,
        lang,
        now,
    )
    .await
    {
        Ok(report) => html(
            StatusCode::OK,
            pages::plain_report(&frame, &report, None, "/dashboard/download/ops", "all=1"),
            cookie,
        ),
        Err(e) => load_failed(&frame, &e, cookie),
    }
}

/// A report file in `format` (`csv`, `xlsx`, `html`, also `json`), rendered by the
/// report API's own [`report_response`], so a file downloaded here is the file the API
/// serves. `table` picks one table of a CSV export.
fn render_download(
    report: &Report,
    format: ReportFormat,
    options: &RenderOptions,
    table: Option<&str>,
) -> Response {
    secure(report_response(report, format, options, table))
}

async fn download(
    State(dash): State<Dashboard>,
    Path((kind, format)): Path<(String, String)>,
    Query(query): Query<PageQuery>,
    pairs: Result<Query<Vec<(String, String)>>, QueryRejection>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let Some(staff) = dash.staff(&headers).await else {
        return to_sign_in(&uri);
    };
    let (lang, cookie) = language(&query, &headers);
    let now = dash.app.now();
    let frame = Frame {
        lang,
        staff: Some(&staff.name),
        self_url: "/dashboard".into(),
        nav: Nav::District,
    };
    let bad = |status: StatusCode, id: &str, en: &str| {
        html(
            status,
            pages::message(
                &frame,
                lang.pick("Tidak dapat diunduh", "Cannot download"),
                lang.pick(id, en),
            ),
            None,
        )
    };
    let Ok(format) = format.parse::<ReportFormat>() else {
        return bad(
            StatusCode::NOT_FOUND,
            "Format tidak dikenal; pilih csv, xlsx atau html.",
            "Unknown format; choose csv, xlsx or html.",
        );
    };
    let mut options = RenderOptions::new(lang);
    if let Some(raw) = query.csv_dialect.as_deref() {
        match raw.parse::<CsvDialect>() {
            Ok(dialect) => options = options.with_csv_dialect(dialect),
            Err(_) => {
                return bad(
                    StatusCode::BAD_REQUEST,
                    "Dialek CSV tidak dikenal; pilih standard atau id.",
                    "Unknown CSV dialect; choose standard or id.",
                );
            }
        }
    }
    let request = match kind.as_str() {
        "district" => ReportRequest::District {
            month: month_of(&query, default_month(&dash, now).await, lang).0,
        },
        "village" => {
            let Some(library) = query
                .library
                .as_deref()
                .and_then(|l| LibraryCode::parse(l).ok())
            else {
                return bad(
                    StatusCode::BAD_REQUEST,
                    "Kode perpustakaan tidak valid.",
                    "The library code is not valid.",
                );
            };
            ReportRequest::Village {
                month: month_of(&query, default_month(&dash, now).await, lang).0,
                library,
            }
        }
        "period" => {
            let raw = query.period.as_deref().unwrap_or_default();
            match parse_quarter(raw).or_else(|| parse_year(raw)) {
                Some(period) => ReportRequest::Period(period),
                None => {
                    return bad(
                        StatusCode::BAD_REQUEST,
                        "Periode tidak dikenali (2026-Q4 atau 2026).",
                        "Period not recognised (2026-Q4 or 2026).",
                    );
                }
            }
        }
        "ops" => ReportRequest::Operations,
        // Every other report of the registry, with its own parameters from the query
        // (`/dashboard/download/year/csv?year=2026`), as the report API reads them.
        other => {
            let Some(report) = ReportKind::from_name(other) else {
                return bad(
                    StatusCode::NOT_FOUND,
                    "Laporan tidak dikenal.",
                    "Unknown report.",
                );
            };
            let pairs = pairs.map(|Query(pairs)| pairs).unwrap_or_default();
            let value = |name: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| key == name)
                    .map(|(_, value)| value.as_str())
            };
            match report.request(value) {
                Ok(request) => request,
                Err(error) => {
                    let example: Vec<String> = report
                        .params()
                        .iter()
                        .map(|param| format!("{}={}", param.name, param.example))
                        .collect();
                    let example = example.join("&");
                    let (ParamError::Missing(param) | ParamError::Invalid { param, .. }) = error;
                    let name = param.name;
                    return bad(
                        StatusCode::BAD_REQUEST,
                        &format!(
                            "Parameter '{name}' belum diisi atau tidak sah; contoh: ?{example}"
                        ),
                        &format!("Parameter '{name}' is missing or not valid; e.g. ?{example}"),
                    );
                }
            }
        }
    };
    let report = match load(dash.app.store().as_ref(), &request, lang, now).await {
        Ok(report) => report,
        Err(e) => return load_failed(&frame, &e, cookie),
    };
    render_download(&report, format, &options, query.table.as_deref())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn origin_must_match_the_host_when_sent() {
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8080")])));
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "null")
        ])));
        assert!(!same_origin(&headers(&[(
            "origin",
            "http://127.0.0.1:8080"
        )])));
    }

    #[test]
    fn the_dashboard_answers_ip_addresses_localhost_and_configured_names() {
        let configured = vec!["perpusda.example.go.id".to_string()];
        for host in [
            "127.0.0.1:8080",
            "192.168.1.10",
            "[::1]:8080",
            "localhost:8080",
            "LOCALHOST",
            "perpusda.example.go.id",
            "Perpusda.Example.go.id:443",
        ] {
            assert!(host_allowed(host, &configured), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8080",
            "",
            "[::1",
            "perpusda.example.go.id.evil",
        ] {
            assert!(!host_allowed(host, &configured), "{host}");
        }
        assert!(!host_allowed("perpusda.example.go.id", &[]));
    }

    #[test]
    fn secure_marks_every_cookie() {
        let mut h = headers(&[
            (
                "set-cookie",
                "jejak_session=abc; HttpOnly; SameSite=Strict; Path=/",
            ),
            ("set-cookie", "jejak_lang=en; Path=/"),
        ]);
        mark_cookies_secure(&mut h);
        let cookies: Vec<&str> = h
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(cookies.len(), 2);
        assert!(
            cookies.iter().all(|c| c.ends_with("; Secure")),
            "{cookies:?}"
        );
    }

    #[test]
    fn cookies_are_read_by_name() {
        let h = headers(&[("cookie", "a=1; jejak_session=abc ; jejak_lang=en")]);
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, LANG_COOKIE), Some("en"));
        assert_eq!(cookie(&h, "b"), None);
    }

    #[test]
    fn language_comes_from_the_query_then_the_cookie() {
        let query = PageQuery {
            lang: Some("en".into()),
            ..PageQuery::default()
        };
        let (lang, set) = language(&query, &HeaderMap::new());
        assert_eq!(lang, Lang::En);
        assert!(set.unwrap().to_str().unwrap().starts_with("jejak_lang=en;"));
        let (lang, set) = language(
            &PageQuery::default(),
            &headers(&[("cookie", "jejak_lang=en")]),
        );
        assert_eq!((lang, set), (Lang::En, None));
        let (lang, _) = language(&PageQuery::default(), &HeaderMap::new());
        assert_eq!(lang, Lang::Id);
    }

    #[test]
    fn a_month_comes_from_the_query_else_the_default_with_a_notice_when_unreadable() {
        let default = NaiveDate::from_ymd_opt(2026, 9, 1).unwrap();
        let (month, notice) = month_of(&PageQuery::default(), default, Lang::Id);
        assert_eq!(month, default);
        assert!(notice.is_none());
        let asked = PageQuery {
            month: Some("2026-10".into()),
            ..PageQuery::default()
        };
        assert_eq!(
            month_of(&asked, default, Lang::Id),
            (NaiveDate::from_ymd_opt(2026, 10, 1).unwrap(), None)
        );
        let bad = PageQuery {
            month: Some("Oktober".into()),
            ..PageQuery::default()
        };
        let (month, notice) = month_of(&bad, default, Lang::Id);
        assert_eq!(month, default);
        assert!(notice.unwrap().contains("Bulan tidak dikenali"));
    }

    #[test]
    fn a_year_comes_from_the_query_else_the_default_with_a_notice_when_unreadable() {
        assert_eq!(year_of(&PageQuery::default(), 2026, Lang::Id), (2026, None));
        let asked = PageQuery {
            year: Some(" 2025 ".into()),
            ..PageQuery::default()
        };
        assert_eq!(year_of(&asked, 2026, Lang::Id), (2025, None));
        for raw in ["20x6", "1999", "2026-Q1", "tahun ini"] {
            let bad = PageQuery {
                year: Some(raw.into()),
                ..PageQuery::default()
            };
            let (year, notice) = year_of(&bad, 2026, Lang::En);
            assert_eq!(year, 2026, "{raw}");
            assert!(notice.unwrap().contains("Year not recognised"), "{raw}");
        }
    }

    #[test]
    fn a_sign_in_leads_back_only_to_a_dashboard_page() {
        for good in [
            "/dashboard",
            "/dashboard?month=2026-09",
            "/dashboard/village/dermaji?month=2026-09&lang=en",
            "/dashboard/period?period=2026-Q3",
        ] {
            assert_eq!(safe_next(good), Some(good), "{good}");
        }
        for bad in [
            "https://evil.example/dashboard",
            "//evil.example/dashboard",
            "/dashboardx\\evil",
            "/dashboard/login?next=/dashboard",
            "/dashboard/logout",
            "/api/v1/reports/ops",
            "/dashboard?a=\"b",
            "/dashboard\r\nSet-Cookie: x=1",
            "",
        ] {
            assert_eq!(safe_next(bad), None, "{bad}");
        }
        assert_eq!(safe_next(&format!("/dashboard?{}", "a".repeat(600))), None);
        let uri: Uri = "/dashboard/village/dermaji?month=2026-09".parse().unwrap();
        let answer = to_sign_in(&uri);
        assert_eq!(
            answer.headers()[LOCATION],
            "/dashboard/login?next=%2Fdashboard%2Fvillage%2Fdermaji%3Fmonth%3D2026-09"
        );
        let plain = to_sign_in(&"/dashboard".parse().unwrap());
        assert_eq!(plain.headers()[LOCATION], "/dashboard/login");
    }
}
