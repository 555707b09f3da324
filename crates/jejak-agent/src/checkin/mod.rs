//! The patron check-in page and the librarian screen, served by `jejak agent` on
//! `127.0.0.1:<checkin_port>`.
//!
//! When a patron sits down, one screen asks the purpose (one to three), gender, age
//! group, optionally a member number and the group size, and starts the session through
//! the same store call as `jejak session start` (a session still open is ended first as
//! `staff_ended`). While a session is open the page shows the time used and a
//! "Selesai / Finish" button. `/pustakawan`, behind the PIN set at `jejak init --pin`,
//! shows today's sessions on this PC, what waits to sync, the last sync and its result,
//! rejected records, clock warnings and a "Sinkron sekarang / Sync now" button that
//! runs the same sync as `jejak sync` (through [`SyncNow`], which the binary supplies:
//! the sync crate depends on this one, not the other way round).
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the check-in form, or the open session with its Finish button |
//! | `POST /mulai` | starts a session |
//! | `POST /selesai` | ends the open session (`logout`) |
//! | `GET /pustakawan` | the PIN form, or the librarian screen once signed in |
//! | `POST /pustakawan/masuk`, `POST /pustakawan/keluar` | PIN sign-in and sign-out |
//! | `POST /pustakawan/sinkron` | starts a sync now; the screen shows its outcome |
//! | `POST /pustakawan/akhiri` | ends the open session as `staff_ended` |
//! | `POST /pustakawan/tamu` | records a visit (or a group) in the visitor book |
//! | `POST /pustakawan/tamu/batal` | withdraws the visit the form names, if still the latest |
//! | `POST /pustakawan/anggota` | sets the member count of a month |
//! | `POST /pustakawan/kegiatan` | records an activity (kegiatan) with its participants |
//! | `POST /pustakawan/kegiatan/ubah` | changes the activity the form names (its next revision) |
//!
//! The librarian screen also keeps the desk (see [`desk`] and [`activity`]): the visitor
//! book (buku tamu), the month's member count and the library's activities;
//! `GET /pustakawan?bulan=YYYY-MM` opens the member form on a month and
//! `GET /pustakawan?kegiatan=<id>` the activity form on an activity to change.
//!
//! Pages are plain HTML drawn here with inline CSS: no scripts, no external files, each
//! well under 30 KB, large touch targets, so an old browser on an old PC is enough.
//! Indonesian by default (or the agent's `lang`); `?lang=en` switches and a cookie
//! remembers it.
//!
//! Security: only loopback peers are served, and only when the `Host` header names this
//! port on `127.0.0.1`, `localhost` or `[::1]` (a web page cannot reach the page
//! through DNS rebinding). Every POST must carry no foreign `Origin` (and no
//! `Sec-Fetch-Site: cross-site`) and a CSRF token: the HMAC, under a key made at start,
//! of a random nonce kept in an `HttpOnly; SameSite=Strict` cookie, so a page on
//! another local port that can set cookies for `127.0.0.1` still cannot forge it. A
//! member number becomes its HMAC before the store sees it and is never logged, never
//! stored and never shown again, not even on a form sent back with an error.

mod activity;
mod desk;
mod pages;
pub mod pin;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Form, Query, Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, HOST, LOCATION, ORIGIN,
    REFERRER_POLICY, RETRY_AFTER, SET_COOKIE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use jejak_domain::{
    AgeGroup, EndReason, Gender, Lang, MAX_PURPOSES, PatronProfile, Purpose, Session, UserKind,
    Zone,
};
use serde::Deserialize;
use sha2::Sha256;

use crate::netdev;
use crate::patron::{PatronSecret, SECRET_FILE};
use crate::store::{Store, StoreError};
use pin::{PIN_FILE, PinHash};

/// The port the page listens on unless configured otherwise.
pub const DEFAULT_PORT: u16 = 7878;
/// How long a librarian's PIN sign-in lasts, renewed by each desk entry (visitor book,
/// member count, activity). Short: the PC is a public one and the next patron sits down
/// at the same browser.
const LIBRARIAN_TTL: Duration = Duration::from_secs(15 * 60);
/// Wrong PINs in a row that cost no wait (typing mistakes).
const FREE_WRONG_PINS: u32 = 3;
/// The wait after the first wrong PIN past the free ones; each further wrong PIN
/// doubles it.
const FIRST_PIN_WAIT: Duration = Duration::from_secs(5);
/// The longest wait: a patron typing wrong PINs can keep the librarian waiting a few
/// minutes at most, never locked out. At one guess per five minutes a six-digit PIN
/// takes years to find.
const MAX_PIN_WAIT: Duration = Duration::from_secs(5 * 60);
/// A streak of wrong PINs is forgotten after this long without one.
const PIN_STREAK_FORGOTTEN: Duration = Duration::from_secs(60 * 60);
/// The largest form accepted; the real ones are a few hundred bytes.
const MAX_BODY_BYTES: usize = 16 * 1024;
/// The longest member number accepted (the form's `maxlength` says the same, but the
/// page does not rely on the browser).
pub(crate) const MAX_MEMBER_CHARS: usize = 40;

/// How long the answer to "Sync now" waits for the sync before showing the screen
/// with the sync still in progress.
const SYNC_ANSWER_WAIT: Duration = Duration::from_secs(20);

const CSRF_COOKIE: &str = "jejak_csrf";
const LANG_COOKIE: &str = "jejak_lang";
const LIBRARIAN_COOKIE: &str = "jejak_pustakawan";

/// What a "sync now" did, in both languages (the screen shows the reader's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncOutcome {
    /// The server acknowledged everything that was waiting (or nothing was waiting).
    pub ok: bool,
    pub id: String,
    pub en: String,
}

impl SyncOutcome {
    pub fn message(&self, lang: Lang) -> &str {
        lang.pick(&self.id, &self.en)
    }
}

/// The future of one "sync now".
pub type SyncFuture = Pin<Box<dyn Future<Output = SyncOutcome> + Send + 'static>>;

/// Runs the same sync as `jejak sync`, for the librarian's "Sync now" button. The
/// binary implements it with the sync crate.
pub trait SyncNow: Send + Sync + std::fmt::Debug + 'static {
    fn sync_now(&self) -> SyncFuture;

    /// Whether the PC is enrolled now. Asked at every view of the librarian screen, so
    /// that it says what the agent does: an enrolment made while the agent runs shows at
    /// once (and the agent syncs with it from its next round).
    fn enrolled(&self) -> bool {
        true
    }
}

/// Where the page finds what it needs.
#[derive(Debug, Clone)]
pub struct CheckinSettings {
    /// The port the page is served on (the one really bound), for the `Host` and
    /// `Origin` checks.
    pub port: u16,
    /// The data directory: the patron secret and the PIN file are read from it.
    pub data_dir: PathBuf,
    pub zone: Zone,
    /// The language until the reader picks one.
    pub lang: Lang,
    /// Interface counters, read at start and end of a session as `jejak session` does.
    pub net_dev_path: Option<PathBuf>,
}

/// The check-in page's state, shared by its handlers.
#[derive(Clone)]
pub struct Checkin {
    inner: Arc<Inner>,
}

struct Inner {
    settings: CheckinSettings,
    /// The page's own connection to the store; every call is one short transaction.
    store: Mutex<Store>,
    sync: Option<Arc<dyn SyncNow>>,
    /// Signs CSRF nonces; made at start, never leaves the process.
    csrf_key: [u8; 32],
    /// Signed-in librarians: cookie value → when the sign-in ends.
    librarians: Mutex<HashMap<String, Instant>>,
    /// Wrong PINs and the wait they impose. An async lock held across the check, so that
    /// PIN attempts are tried one at a time (parallel requests cannot skip a wait).
    pins: tokio::sync::Mutex<PinAttempts>,
    /// The PIN last signed in with is shorter than new PINs may be: the screen says so.
    short_pin: std::sync::atomic::AtomicBool,
    sync_run: Mutex<SyncRun>,
}

impl std::fmt::Debug for Checkin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No keys or cookie values.
        f.debug_struct("Checkin")
            .field("settings", &self.inner.settings)
            .field("sync", &self.inner.sync.is_some())
            .finish_non_exhaustive()
    }
}

/// Wrong PINs in a row and the wait they impose: none for the first few (typing
/// mistakes), then 5 s, doubling with each further wrong PIN up to 5 minutes. During a
/// wait no PIN is checked, the right one included, but the wait is never longer than
/// [`MAX_PIN_WAIT`], so the librarian is never locked out for long whatever a patron
/// types; the screen says when to try again.
#[derive(Debug, Default)]
struct PinAttempts {
    wrong: u32,
    last_wrong: Option<Instant>,
    next_try: Option<Instant>,
}

impl PinAttempts {
    /// How long until a PIN may be tried again; `None` when it may be now.
    fn wait(&self, now: Instant) -> Option<Duration> {
        self.next_try
            .and_then(|at| at.checked_duration_since(now))
            .filter(|wait| !wait.is_zero())
    }

    /// Records a wrong PIN at `now`; returns the wait it imposes.
    fn wrong_pin(&mut self, now: Instant) -> Option<Duration> {
        if self
            .last_wrong
            .is_some_and(|at| now.saturating_duration_since(at) >= PIN_STREAK_FORGOTTEN)
        {
            self.wrong = 0;
        }
        self.wrong = self.wrong.saturating_add(1);
        self.last_wrong = Some(now);
        let wait = pin_wait(self.wrong);
        self.next_try = wait.map(|wait| now + wait);
        wait
    }
}

/// The wait after the `wrong`-th wrong PIN in a row.
fn pin_wait(wrong: u32) -> Option<Duration> {
    let past_free = wrong.checked_sub(FREE_WRONG_PINS).filter(|n| *n > 0)?;
    let doublings = (past_free - 1).min(16);
    Some(
        FIRST_PIN_WAIT
            .saturating_mul(1 << doublings)
            .min(MAX_PIN_WAIT),
    )
}

/// "Try again at 10:32:15 (in 40 seconds)", in the library's zone.
fn pin_wait_text(lang: Lang, wait: Duration, wall_now: DateTime<Utc>, zone: Zone) -> String {
    // Whole seconds, rounded up, so that trying at the time shown always works.
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let at = wall_now + chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 1000));
    let at = at.with_timezone(&zone.offset()).format("%H:%M:%S");
    match lang {
        Lang::Id => format!("Terlalu banyak PIN salah. Coba lagi pukul {at} (dalam {secs} detik)."),
        Lang::En => format!("Too many wrong PINs. Try again at {at} (in {secs} seconds)."),
    }
}

/// The librarian's "sync now": running or not, and how the last one ended.
#[derive(Debug, Default, Clone)]
struct SyncRun {
    running: bool,
    last: Option<(DateTime<Utc>, SyncOutcome)>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A handler that panicked while holding a lock leaves data that is still usable
    // (a map of sign-ins, counters): carry on rather than refuse every later request.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Checkin {
    /// The page over `store` (its own connection, not the daemon's).
    pub fn new(store: Store, settings: CheckinSettings, sync: Option<Arc<dyn SyncNow>>) -> Self {
        Checkin {
            inner: Arc::new(Inner {
                settings,
                store: Mutex::new(store),
                sync,
                csrf_key: rand::random(),
                librarians: Mutex::new(HashMap::new()),
                pins: tokio::sync::Mutex::new(PinAttempts::default()),
                short_pin: std::sync::atomic::AtomicBool::new(false),
                sync_run: Mutex::new(SyncRun::default()),
            }),
        }
    }

    /// The page's routes with their guard. Serve it with
    /// `into_make_service_with_connect_info::<SocketAddr>()` (as [`spawn`] does):
    /// a request without its peer address is refused.
    pub fn router(&self) -> Router {
        self.router_with_body_timeout(ServeLimits::default().body_timeout)
    }

    fn router_with_body_timeout(&self, body_timeout: Duration) -> Router {
        Router::new()
            .route("/", get(home))
            .route("/mulai", post(start))
            .route("/selesai", post(finish))
            .route("/pustakawan", get(librarian))
            .route("/pustakawan/masuk", post(sign_in))
            .route("/pustakawan/keluar", post(sign_out))
            .route("/pustakawan/sinkron", post(sync_now))
            .route("/pustakawan/akhiri", post(staff_end))
            .route("/pustakawan/tamu", post(desk::add_visit))
            .route("/pustakawan/tamu/batal", post(desk::undo_visit))
            .route("/pustakawan/anggota", post(desk::set_member_count))
            .route("/pustakawan/kegiatan", post(activity::add_activity))
            .route("/pustakawan/kegiatan/ubah", post(activity::edit_activity))
            .route(IDLE_REPORT_PATH, post(idle_report))
            .fallback(not_found)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .layer(middleware::from_fn_with_state(
                (self.clone(), body_timeout),
                read_body_in_time,
            ))
            .layer(middleware::from_fn_with_state(self.clone(), guard))
            .with_state(self.clone())
    }

    fn settings(&self) -> &CheckinSettings {
        &self.inner.settings
    }

    /// Runs `f` on the store. A store that another process moved aside (damaged) is
    /// opened again, as the daemon does, so the page keeps writing to the live file.
    fn with_store<T>(
        &self,
        f: impl Fn(&mut Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut store = lock(&self.inner.store);
        match f(&mut store) {
            Err(e) if e.needs_reopen() => {
                let (fresh, _) = store.reopen()?;
                *store = fresh;
                f(&mut store)
            }
            other => other,
        }
    }

    /// The PC's wall clock as the store reads it (the tests' clock is a manual one).
    fn wall_now(&self) -> DateTime<Utc> {
        self.with_store(|store| Ok(store.clock().wall()))
            .unwrap_or_else(|_| Utc::now())
    }

    fn csrf_token(&self, nonce: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.inner.csrf_key)
            .expect("HMAC accepts keys of any length");
        mac.update(nonce.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The CSRF token for the request's nonce cookie, and the cookie to set when the
    /// request had none.
    fn csrf(&self, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
        if let Some(nonce) = cookie(headers, CSRF_COOKIE).filter(|n| is_hex_id(n)) {
            return (self.csrf_token(nonce), None);
        }
        let nonce = random_id();
        let set = HeaderValue::from_str(&format!(
            "{CSRF_COOKIE}={nonce}; Path=/; HttpOnly; SameSite=Strict"
        ))
        .ok();
        (self.csrf_token(&nonce), set)
    }

    /// Whether the form's token matches the nonce cookie.
    fn csrf_ok(&self, headers: &HeaderMap, form: &Fields) -> bool {
        let (Some(nonce), Some(given)) = (
            cookie(headers, CSRF_COOKIE).filter(|n| is_hex_id(n)),
            form.get("csrf").and_then(|t| hex::decode(t).ok()),
        ) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.inner.csrf_key)
            .expect("HMAC accepts keys of any length");
        mac.update(nonce.as_bytes());
        mac.verify_slice(&given).is_ok()
    }

    /// Renews a signed-in librarian's sign-in for another [`LIBRARIAN_TTL`]; the cookie
    /// to send back, or `None` when the request is not from a signed-in librarian.
    fn renew_librarian(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let id = cookie(headers, LIBRARIAN_COOKIE)?;
        let now = Instant::now();
        let mut librarians = lock(&self.inner.librarians);
        librarians.retain(|_, until| *until > now);
        *librarians.get_mut(id)? = now + LIBRARIAN_TTL;
        librarian_cookie(id, LIBRARIAN_TTL)
    }

    /// Whether the request comes from a signed-in librarian.
    fn is_librarian(&self, headers: &HeaderMap) -> bool {
        let Some(id) = cookie(headers, LIBRARIAN_COOKIE) else {
            return false;
        };
        let now = Instant::now();
        let mut librarians = lock(&self.inner.librarians);
        librarians.retain(|_, until| *until > now);
        librarians.contains_key(id)
    }
}

/// The librarian's sign-in cookie for `ttl` (an empty one with no time clears it).
fn librarian_cookie(id: &str, ttl: Duration) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{LIBRARIAN_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        ttl.as_secs()
    ))
    .ok()
}

/// Whether nobody has said who uses the session yet (a login nobody checked in).
fn is_unattended(session: &Session) -> bool {
    session.patron.user_kind == UserKind::Unknown && session.patron.purposes.is_empty()
}

/// A request's form fields in order (a field may repeat, as `purpose` does).
type Fields = Vec<(String, String)>;

trait FieldsExt {
    fn get(&self, name: &str) -> Option<&str>;
    fn all(&self, name: &str) -> Vec<&str>;
}

impl FieldsExt for Fields {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn all(&self, name: &str) -> Vec<&str> {
        self.iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

fn random_id() -> String {
    // rand's default generator is a CSPRNG seeded from the operating system.
    hex::encode(rand::random::<[u8; 32]>())
}

fn is_hex_id(value: &str) -> bool {
    value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())
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

/// The query parameters the pages take; all optional.
#[derive(Debug, Default, Deserialize)]
struct PageQuery {
    lang: Option<String>,
    /// `1`: show the check-in form even though a session is open.
    baru: Option<String>,
    /// The patron just finished: thank them, in the language given (`id`, `en`).
    selesai: Option<String>,
}

/// How long a language chosen while no session is open holds: long enough to fill the
/// form in, short enough that a patron who walked away before starting does not leave
/// their language to the next one.
const LANG_WITHOUT_SESSION_SECS: u32 = 10 * 60;
/// The cookie's own lifetime when the choice belongs to a session (it ends with the
/// session anyway; this only clears old cookies).
const LANG_WITH_SESSION_SECS: u32 = 24 * 3600;

/// A language chosen with `?lang=`, as the language cookie keeps it: the language and
/// the session open when it was chosen (`en.<session id>`, or `en` with none). The
/// choice holds only while that same session is open (or, for `en`, while none is), so
/// a patron's English ends with their session and the next patron gets the page's own
/// language again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LangChoice {
    lang: Lang,
    session: Option<uuid::Uuid>,
}

impl LangChoice {
    fn parse(value: &str) -> Option<LangChoice> {
        let (lang, session) = match value.split_once('.') {
            Some((lang, session)) => (lang, Some(uuid::Uuid::parse_str(session).ok()?)),
            None => (value, None),
        };
        Some(LangChoice {
            lang: lang.parse().ok()?,
            session,
        })
    }

    /// Whether the choice still holds with `open` the session open now.
    fn holds(self, open: Option<uuid::Uuid>) -> bool {
        self.session == open
    }

    fn cookie(self) -> Option<HeaderValue> {
        let (value, max_age) = match self.session {
            Some(id) => (
                format!("{}.{}", self.lang.code(), id.simple()),
                LANG_WITH_SESSION_SECS,
            ),
            None => (self.lang.code().to_string(), LANG_WITHOUT_SESSION_SECS),
        };
        HeaderValue::from_str(&format!(
            "{LANG_COOKIE}={value}; Path=/; Max-Age={max_age}; SameSite=Strict"
        ))
        .ok()
    }

    /// The cookie that forgets the choice.
    fn forget() -> Option<HeaderValue> {
        HeaderValue::from_str(&format!(
            "{LANG_COOKIE}=; Path=/; Max-Age=0; SameSite=Strict"
        ))
        .ok()
    }
}

impl Checkin {
    /// The id of the session open now (none when the store cannot say).
    fn open_session_id(&self) -> Option<uuid::Uuid> {
        self.with_store(|s| s.open_session())
            .ok()
            .flatten()
            .map(|s| s.id)
    }
}

/// The reader's language: `?lang=` (then remembered in a cookie for the session open
/// now), the cookie while its session is still the open one, or the agent's language;
/// with the cookie to set (a new choice, or forgetting one whose session ended).
fn language(c: &Checkin, query: &PageQuery, headers: &HeaderMap) -> (Lang, Option<HeaderValue>) {
    let open = c.open_session_id();
    if let Some(lang) = query.lang.as_deref().and_then(|l| l.parse::<Lang>().ok()) {
        let choice = LangChoice {
            lang,
            session: open,
        };
        return (lang, choice.cookie());
    }
    match cookie(headers, LANG_COOKIE).map(LangChoice::parse) {
        None => (c.settings().lang, None),
        Some(Some(choice)) if choice.holds(open) => (choice.lang, None),
        // Its session ended (or the cookie is unreadable): the page's own language, and
        // the cookie is forgotten.
        Some(_) => (c.settings().lang, LangChoice::forget()),
    }
}

fn cookie_lang(c: &Checkin, headers: &HeaderMap) -> Lang {
    language(c, &PageQuery::default(), headers).0
}

/// An HTML answer with the cookies to set.
fn html(status: StatusCode, body: String, cookies: &[Option<HeaderValue>]) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    for set in cookies.iter().flatten() {
        headers.append(SET_COOKIE, set.clone());
    }
    response
}

/// "See other": the page to show after a POST, so a reload does not post again.
fn see_other(to: &str, cookies: &[Option<HeaderValue>]) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(to) {
        response.headers_mut().insert(LOCATION, location);
    }
    for set in cookies.iter().flatten() {
        response.headers_mut().append(SET_COOKIE, set.clone());
    }
    response
}

/// Why a request was refused, for the refusal page and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    NotLoopback,
    BadHost,
    ForeignOrigin,
    MissingCsrf,
}

impl Refusal {
    fn code(self) -> &'static str {
        match self {
            Refusal::NotLoopback => "not_loopback",
            Refusal::BadHost => "bad_host",
            Refusal::ForeignOrigin => "foreign_origin",
            Refusal::MissingCsrf => "csrf",
        }
    }
}

fn refuse(lang: Lang, refusal: Refusal) -> Response {
    tracing::warn!(reason = refusal.code(), "check-in page refused a request");
    html(StatusCode::FORBIDDEN, pages::refused(lang, refusal), &[])
}

/// Whether a peer may use the page: only this machine.
fn peer_allowed(peer: IpAddr) -> bool {
    match peer {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// The names this page answers to, with its port.
fn allowed_hosts(port: u16) -> Vec<String> {
    let mut hosts: Vec<String> = ["127.0.0.1", "localhost", "[::1]"]
        .iter()
        .map(|h| format!("{h}:{port}"))
        .collect();
    if port == 80 {
        hosts.extend(["127.0.0.1", "localhost", "[::1]"].map(String::from));
    }
    hosts
}

fn host_allowed(host: &str, port: u16) -> bool {
    let host = host.trim().to_ascii_lowercase();
    allowed_hosts(port).contains(&host)
}

/// Whether a POST's `Origin` (when sent) is this page.
fn origin_allowed(origin: &str, port: u16) -> bool {
    let origin = origin.trim().to_ascii_lowercase();
    allowed_hosts(port)
        .iter()
        .any(|host| origin == format!("http://{host}"))
}

/// The guard in front of every route: loopback peers, this page's `Host`, and for
/// anything but GET and HEAD no foreign `Origin`; plus headers that keep the pages out
/// of caches and frames and allow no scripts.
async fn guard(State(c): State<Checkin>, request: Request, next: Next) -> Response {
    let port = c.settings().port;
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let refusal = if !peer.is_some_and(peer_allowed) {
        Some(Refusal::NotLoopback)
    } else if !request
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| host_allowed(h, port))
    {
        Some(Refusal::BadHost)
    } else if request.method() != Method::GET && request.method() != Method::HEAD {
        let headers = request.headers();
        let foreign_origin = headers
            .get(ORIGIN)
            .is_some_and(|o| !o.to_str().is_ok_and(|o| origin_allowed(o, port)));
        let cross_site = headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"));
        (foreign_origin || cross_site).then_some(Refusal::ForeignOrigin)
    } else {
        None
    };
    let mut response = match refusal {
        Some(refusal) => refuse(cookie_lang(&c, request.headers()), refusal),
        None => next.run(request).await,
    };
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // `same-origin`, not `no-referrer`: under `no-referrer` a browser sends
    // `Origin: null` with the page's own form posts, which would then be refused.
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

async fn not_found(State(c): State<Checkin>, headers: HeaderMap) -> Response {
    let lang = cookie_lang(&c, &headers);
    html(StatusCode::NOT_FOUND, pages::not_found(lang), &[])
}

/// What the check-in form shows when it comes back with an error: the choices made,
/// never the member number.
#[derive(Debug, Default, Clone)]
struct Choices {
    purposes: Vec<String>,
    gender: Option<String>,
    age: Option<String>,
    group_size: String,
    /// A member number was typed: the form asks for it again rather than keep it.
    member_given: bool,
}

async fn home(
    State(c): State<Checkin>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let (lang, lang_cookie) = language(&c, &query, &headers);
    let (csrf, csrf_cookie) = c.csrf(&headers);
    let open = match c.with_store(|s| s.open_session()) {
        Ok(open) => open,
        Err(e) => return store_failure(lang, &e),
    };
    // A login nobody checked in shows the form, to fill that session in.
    let body = match open {
        Some(session) if query.baru.is_none() && !is_unattended(&session) => {
            pages::session_open(lang, &csrf, &session, c.wall_now(), c.settings().zone)
        }
        open => pages::checkin_form(
            lang,
            &csrf,
            &Choices::default(),
            None,
            query
                .selesai
                .as_deref()
                .map(|said| said.parse::<Lang>().unwrap_or(lang)),
            open.as_ref(),
            c.settings().zone,
        ),
    };
    html(StatusCode::OK, body, &[lang_cookie, csrf_cookie])
}

fn store_failure(lang: Lang, e: &StoreError) -> Response {
    tracing::error!(error = %e, "check-in page: store call failed");
    html(
        StatusCode::SERVICE_UNAVAILABLE,
        pages::store_failure(lang, &e.message(lang)),
        &[],
    )
}

/// Reads the check-in form into a profile, or the errors to show (in `lang`).
fn profile_from(
    c: &Checkin,
    form: &Fields,
    lang: Lang,
) -> Result<PatronProfile, Box<(Choices, Vec<String>)>> {
    let choices = Choices {
        purposes: form.all("purpose").iter().map(|p| p.to_string()).collect(),
        gender: form.get("gender").map(str::to_string),
        age: form.get("age").map(str::to_string),
        group_size: form.get("group_size").unwrap_or("1").trim().to_string(),
        member_given: form.get("member").is_some_and(|m| !m.trim().is_empty()),
    };
    let mut errors = Vec::new();
    let mut purposes = Vec::new();
    for raw in &choices.purposes {
        match Purpose::parse(raw) {
            Ok(p) if !purposes.contains(&p) => purposes.push(p),
            Ok(_) => {}
            Err(e) => errors.push(e.message(lang)),
        }
    }
    if purposes.is_empty() {
        errors.push(
            lang.pick(
                "Pilih tujuan penggunaan (1 sampai 3).",
                "Choose what you will use the computer for (1 to 3).",
            )
            .to_string(),
        );
    } else if purposes.len() > MAX_PURPOSES {
        errors.push(format!(
            "{} {}",
            lang.pick(
                "Paling banyak 3 tujuan; Anda memilih",
                "At most 3 purposes; you chose"
            ),
            purposes.len()
        ));
    }
    let gender = match choices.gender.as_deref().map(Gender::parse) {
        Some(Ok(g)) => Some(g),
        Some(Err(e)) => {
            errors.push(e.message(lang));
            None
        }
        None => {
            errors.push(
                lang.pick("Pilih jenis kelamin.", "Choose a gender.")
                    .to_string(),
            );
            None
        }
    };
    let age = match choices.age.as_deref().map(AgeGroup::parse) {
        Some(Ok(a)) => Some(a),
        Some(Err(e)) => {
            errors.push(e.message(lang));
            None
        }
        None => {
            errors.push(
                lang.pick("Pilih kelompok umur.", "Choose an age group.")
                    .to_string(),
            );
            None
        }
    };
    let group_size = match choices.group_size.parse::<u32>() {
        Ok(n) if (1..=jejak_domain::MAX_GROUP_SIZE).contains(&n) => n,
        _ => {
            errors.push(
                lang.pick(
                    "Jumlah orang harus angka 1 sampai 200.",
                    "The number of people must be 1 to 200.",
                )
                .to_string(),
            );
            1
        }
    };
    let member = form.get("member").map(str::trim).filter(|m| !m.is_empty());
    // Bounded here, not only by the form's `maxlength`: anything can post to the page.
    let member = match member {
        Some(number) if number.chars().count() > MAX_MEMBER_CHARS => {
            errors.push(format!(
                "{} {MAX_MEMBER_CHARS} {}",
                lang.pick(
                    "Nomor anggota terlalu panjang: paling banyak",
                    "The member number is too long: at most"
                ),
                lang.pick("karakter.", "characters.")
            ));
            None
        }
        other => other,
    };
    let patron_key = match member {
        Some(number) => match PatronSecret::load(&c.settings().data_dir.join(SECRET_FILE)) {
            Ok(secret) => Some(secret.key_for(number)),
            Err(e) => {
                // The error names the secret's file, never the number.
                tracing::error!(error = %e, "check-in page: the patron secret cannot be read");
                errors.push(
                    lang.pick(
                        "Nomor anggota tidak bisa dipakai sekarang (rahasia perpustakaan tidak terbaca); kosongkan atau minta bantuan petugas.",
                        "The member number cannot be used now (the library's secret cannot be read); leave it empty or ask the librarian.",
                    )
                    .to_string(),
                );
                None
            }
        },
        None => None,
    };
    let (Some(gender), Some(age_group), true) = (gender, age, errors.is_empty()) else {
        return Err(Box::new((choices, errors)));
    };
    // The kind follows from what was given: a member number makes a member, more than
    // one person at the PC a group, anyone else a non-member.
    let user_kind = if patron_key.is_some() {
        UserKind::Anggota
    } else if group_size > 1 {
        UserKind::Rombongan
    } else {
        UserKind::NonAnggota
    };
    let profile = PatronProfile {
        user_kind,
        purposes,
        gender,
        age_group,
        group_size,
        patron_key,
    };
    match profile.validate() {
        Ok(()) => Ok(profile),
        Err(e) => Err(Box::new((choices, vec![e.message(lang)]))),
    }
}

async fn start(State(c): State<Checkin>, headers: HeaderMap, Form(form): Form<Fields>) -> Response {
    let lang = cookie_lang(&c, &headers);
    if !c.csrf_ok(&headers, &form) {
        return refuse(lang, Refusal::MissingCsrf);
    }
    let profile = match profile_from(&c, &form, lang) {
        Ok(profile) => profile,
        Err(refused) => {
            let (choices, errors) = *refused;
            let (csrf, csrf_cookie) = c.csrf(&headers);
            let open = c.with_store(|s| s.open_session()).ok().flatten();
            return html(
                StatusCode::UNPROCESSABLE_ENTITY,
                pages::checkin_form(
                    lang,
                    &csrf,
                    &choices,
                    Some(&errors),
                    None,
                    open.as_ref(),
                    c.settings().zone,
                ),
                &[csrf_cookie],
            );
        }
    };
    let open_before = c.open_session_id();
    let net = netdev::read_counters(c.settings().net_dev_path.as_deref());
    // A login nobody checked in is filled in (its next revision); otherwise a session
    // starts, ending one still open as `staff_ended`, as `jejak session start` does.
    let outcome = c.with_store(|s| {
        if s.unattended_open_session()?.is_some() {
            match s.fill_in_open_session(profile.clone()) {
                Ok(session) => return Ok((session.id, None, true)),
                // It ended in between (a logout): start a session of its own.
                Err(StoreError::NoOpenSession) => {}
                Err(e) => return Err(e),
            }
        }
        s.start_session(profile.clone(), net)
            .map(|started| (started.session.id, started.replaced.map(|r| r.id), false))
    });
    match outcome {
        Ok((session, replaced, filled_in)) => {
            // Ids only: no categories and no patron key in the log.
            tracing::info!(%session, ?replaced, filled_in, "check-in recorded at the check-in page");
            // A language the patron chose on the form now belongs to their session, and
            // ends with it.
            let chosen = cookie(&headers, LANG_COOKIE)
                .and_then(LangChoice::parse)
                .filter(|choice| choice.holds(open_before))
                .and_then(|choice| {
                    LangChoice {
                        lang: choice.lang,
                        session: Some(session),
                    }
                    .cookie()
                });
            see_other("/", &[chosen])
        }
        Err(e) => store_failure(lang, &e),
    }
}

/// Where the per-user part (`jejak logon`, run at each desktop logon on Windows) reports
/// how long the input has been idle: a service cannot read that from session 0. The same
/// guard as every form applies (this PC only, no other site's page).
pub const IDLE_REPORT_PATH: &str = "/seat/idle";

#[derive(Debug, Deserialize)]
struct IdleReport {
    idle_ms: String,
}

/// An idle report longer than a year is not a reading.
const MAX_IDLE_REPORT_MS: u64 = 365 * 24 * 3600 * 1000;

async fn idle_report(Form(report): Form<IdleReport>) -> Response {
    match report.idle_ms.trim().parse::<u64>() {
        Ok(ms) if ms <= MAX_IDLE_REPORT_MS => {
            crate::login::console_event(crate::login::ConsoleEvent::InputIdle(
                Duration::from_millis(ms),
            ));
            StatusCode::NO_CONTENT.into_response()
        }
        _ => (
            StatusCode::BAD_REQUEST,
            "idle_ms: milidetik, 0 sampai satu tahun / milliseconds, 0 to one year\n",
        )
            .into_response(),
    }
}

/// Finish: the session ends, and so does the patron's language choice (the thanks are
/// said in it, the page after them is in the page's own language for the next patron).
async fn finish(
    State(c): State<Checkin>,
    headers: HeaderMap,
    Form(form): Form<Fields>,
) -> Response {
    let lang = cookie_lang(&c, &headers);
    let mut response = end_open(
        &c,
        &headers,
        &form,
        EndReason::Logout,
        &format!("/?selesai={}", lang.code()),
    );
    if response.status() == StatusCode::SEE_OTHER
        && cookie(&headers, LANG_COOKIE).is_some()
        && let Some(forget) = LangChoice::forget()
    {
        response.headers_mut().append(SET_COOKIE, forget);
    }
    response
}

async fn staff_end(
    State(c): State<Checkin>,
    headers: HeaderMap,
    Form(form): Form<Fields>,
) -> Response {
    if c.csrf_ok(&headers, &form) && !c.is_librarian(&headers) {
        return see_other("/pustakawan", &[]);
    }
    end_open(&c, &headers, &form, EndReason::StaffEnded, "/pustakawan")
}

fn end_open(
    c: &Checkin,
    headers: &HeaderMap,
    form: &Fields,
    reason: EndReason,
    to: &str,
) -> Response {
    let lang = cookie_lang(c, headers);
    if !c.csrf_ok(headers, form) {
        return refuse(lang, Refusal::MissingCsrf);
    }
    let net = netdev::read_counters(c.settings().net_dev_path.as_deref());
    match c.with_store(|s| s.end_session(reason, net)) {
        Ok(session) => {
            tracing::info!(session = %session.id, end_reason = reason.code(),
                duration_secs = session.duration_secs, "session ended at the check-in page");
            see_other(to, &[])
        }
        // Already ended (a second tap, another tab, the CLI): nothing to do.
        Err(StoreError::NoOpenSession) => see_other(to, &[]),
        Err(e) => store_failure(lang, &e),
    }
}

/// Everything the librarian screen shows.
#[derive(Debug)]
struct LibrarianView {
    today: Vec<Session>,
    open: Option<Session>,
    pending: u64,
    sync: crate::store::SyncState,
    rejected: Vec<crate::store::RejectedChange>,
    clock_warnings: Vec<crate::store::ClockWarning>,
    clock: crate::store::ClockState,
    enrolled: bool,
    run: SyncRun,
    /// The PIN signed in with is shorter than new PINs may be.
    short_pin: bool,
}

fn librarian_view(c: &Checkin) -> Result<LibrarianView, StoreError> {
    let zone = c.settings().zone;
    c.with_store(|store| {
        let status = store.status(zone)?;
        let sync = store.sync_state()?;
        let rejected = store.rejected_changes(10)?;
        // Today in the library's zone, by the PC's clock (as `jejak status` counts).
        let today = store
            .clock()
            .wall()
            .with_timezone(&zone.offset())
            .date_naive();
        let today_sessions: Vec<Session> = store
            .recent_sessions(500)?
            .into_iter()
            .filter(|s| s.started_at.with_timezone(&zone.offset()).date_naive() == today)
            .collect();
        Ok(LibrarianView {
            today: today_sessions,
            open: status.open_session,
            pending: status.pending_changes,
            sync,
            rejected,
            clock_warnings: status.clock_warnings,
            clock: status.clock,
            enrolled: c.inner.sync.as_ref().is_some_and(|sync| sync.enrolled()),
            run: lock(&c.inner.sync_run).clone(),
            short_pin: c.inner.short_pin.load(std::sync::atomic::Ordering::Relaxed),
        })
    })
}

async fn librarian(
    State(c): State<Checkin>,
    Query(query): Query<PageQuery>,
    Query(desk_query): Query<desk::DeskQuery>,
    headers: HeaderMap,
) -> Response {
    let (lang, lang_cookie) = language(&c, &query, &headers);
    let (csrf, csrf_cookie) = c.csrf(&headers);
    if !c.is_librarian(&headers) {
        let pin_set = matches!(
            PinHash::load(&c.settings().data_dir.join(PIN_FILE)),
            Ok(Some(_))
        );
        // A wait after wrong PINs is shown before anyone types again.
        let wait = c
            .inner
            .pins
            .try_lock()
            .ok()
            .and_then(|attempts| attempts.wait(Instant::now()))
            .map(|wait| pin_wait_text(lang, wait, c.wall_now(), c.settings().zone));
        return html(
            StatusCode::OK,
            pages::pin_form(lang, &csrf, None, pin_set, wait.as_deref()),
            &[lang_cookie, csrf_cookie],
        );
    }
    let edit = desk_query.kegiatan.as_deref().filter(|id| !id.is_empty());
    match (
        librarian_view(&c),
        desk::desk_view(&c, desk_query.month(), edit),
    ) {
        (Ok(view), Ok(desk)) => html(
            // An edit link naming no activity of this PC: the screen says so.
            if desk.edit_unknown {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::OK
            },
            pages::librarian(
                lang,
                &csrf,
                &view,
                &desk,
                &desk_query.notice(),
                c.settings().zone,
            ),
            &[lang_cookie, csrf_cookie],
        ),
        (Err(e), _) | (_, Err(e)) => store_failure(lang, &e),
    }
}

async fn sign_in(
    State(c): State<Checkin>,
    headers: HeaderMap,
    Form(form): Form<Fields>,
) -> Response {
    let lang = cookie_lang(&c, &headers);
    if !c.csrf_ok(&headers, &form) {
        return refuse(lang, Refusal::MissingCsrf);
    }
    let (csrf, _) = c.csrf(&headers);
    let zone = c.settings().zone;
    let page = |status: StatusCode, message: &str, pin_set: bool, wait: Option<Duration>| {
        let wait_text = wait.map(|wait| pin_wait_text(lang, wait, c.wall_now(), zone));
        let mut response = html(
            status,
            pages::pin_form(lang, &csrf, Some(message), pin_set, wait_text.as_deref()),
            &[],
        );
        if let Some(wait) = wait
            && let Ok(value) = HeaderValue::from_str(&(wait.as_secs() + 1).to_string())
        {
            response.headers_mut().insert(RETRY_AFTER, value);
        }
        response
    };
    // One attempt at a time: the lock is held until this attempt is counted.
    let mut attempts = c.inner.pins.lock().await;
    let now = Instant::now();
    if let Some(wait) = attempts.wait(now) {
        return page(
            StatusCode::TOO_MANY_REQUESTS,
            lang.pick(
                "Tunggu dulu: PIN belum diperiksa.",
                "Please wait: the PIN was not checked.",
            ),
            true,
            Some(wait),
        );
    }
    let pin = match PinHash::load(&c.settings().data_dir.join(PIN_FILE)) {
        Ok(Some(pin)) => pin,
        Ok(None) => {
            return page(
                StatusCode::FORBIDDEN,
                lang.pick(
                    "PIN pustakawan belum diatur. Jalankan: jejak init … --pin PIN",
                    "No librarian PIN is set. Run: jejak init … --pin PIN",
                ),
                false,
                None,
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "check-in page: the PIN file cannot be read");
            return page(
                StatusCode::INTERNAL_SERVER_ERROR,
                &e.message(lang),
                false,
                None,
            );
        }
    };
    let typed = form.get("pin").unwrap_or_default().to_string();
    // Argon2 takes a noticeable fraction of a second by design: off the async thread.
    // Anything longer than a PIN may be is wrong without hashing it.
    let checked = if typed.chars().count() <= pin::MAX_PIN_CHARS {
        let typed = typed.clone();
        tokio::task::spawn_blocking(move || (pin.verify(&typed), pin))
            .await
            .ok()
    } else {
        None
    };
    let Some((true, pin)) = checked else {
        let wait = attempts.wrong_pin(now);
        tracing::warn!(
            wrong_in_a_row = attempts.wrong,
            wait_secs = wait.map(|w| w.as_secs()),
            "wrong librarian PIN"
        );
        return page(
            StatusCode::UNAUTHORIZED,
            lang.pick("PIN salah.", "Wrong PIN."),
            true,
            wait,
        );
    };
    *attempts = PinAttempts::default();
    drop(attempts);
    // A PIN kept the old way is hashed again with Argon2id now that it is known.
    if let Some(upgraded) = pin.upgraded(&typed) {
        match upgraded.and_then(|new| new.save(&c.settings().data_dir.join(PIN_FILE))) {
            Ok(()) => tracing::info!("the librarian PIN's stored hash was upgraded to Argon2id"),
            Err(e) => {
                tracing::error!(error = %e, "the librarian PIN's hash could not be upgraded; it is tried again at the next sign-in")
            }
        }
    }
    c.inner.short_pin.store(
        typed.chars().count() < pin::MIN_PIN_CHARS,
        std::sync::atomic::Ordering::Relaxed,
    );
    let id = random_id();
    lock(&c.inner.librarians).insert(id.clone(), now + LIBRARIAN_TTL);
    tracing::info!("librarian signed in at the check-in page");
    see_other("/pustakawan", &[librarian_cookie(&id, LIBRARIAN_TTL)])
}

async fn sign_out(
    State(c): State<Checkin>,
    headers: HeaderMap,
    Form(form): Form<Fields>,
) -> Response {
    let lang = cookie_lang(&c, &headers);
    if !c.csrf_ok(&headers, &form) {
        return refuse(lang, Refusal::MissingCsrf);
    }
    if let Some(id) = cookie(&headers, LIBRARIAN_COOKIE) {
        lock(&c.inner.librarians).remove(id);
    }
    see_other("/", &[librarian_cookie("", Duration::ZERO)])
}

async fn sync_now(
    State(c): State<Checkin>,
    headers: HeaderMap,
    Form(form): Form<Fields>,
) -> Response {
    let lang = cookie_lang(&c, &headers);
    if !c.csrf_ok(&headers, &form) {
        return refuse(lang, Refusal::MissingCsrf);
    }
    if !c.is_librarian(&headers) {
        return see_other("/pustakawan", &[]);
    }
    let Some(sync) = c.inner.sync.clone().filter(|sync| sync.enrolled()) else {
        // The screen says the PC is not enrolled; nothing to start.
        return see_other("/pustakawan", &[]);
    };
    {
        let mut run = lock(&c.inner.sync_run);
        if run.running {
            return see_other("/pustakawan", &[]);
        }
        run.running = true;
    }
    tracing::info!("sync started from the librarian screen");
    let state = c.clone();
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    // The sync runs on its own task (a slow link may take minutes). The answer waits for
    // it a little, so that a quick sync shows its outcome on the next page; a longer one
    // shows "in progress" with a button to look again. The screen never reloads itself
    // (a reload restarts a screen reader and is WCAG 2.2.1's failure).
    tokio::spawn(async move {
        let outcome = sync.sync_now().await;
        tracing::info!(ok = outcome.ok, "sync from the librarian screen finished");
        {
            let mut run = lock(&state.inner.sync_run);
            run.running = false;
            run.last = Some((Utc::now(), outcome));
        }
        let _ = done.send(());
    });
    let _ = tokio::time::timeout(SYNC_ANSWER_WAIT, finished).await;
    see_other("/pustakawan", &[])
}

/// Binds the page's listener on loopback.
pub async fn bind(port: u16) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port)).await
}

/// How the page is served: timeouts, the connection cap and the stop's grace period.
/// The defaults suit one PC's browser; tests shorten them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// A request's headers must arrive within this (counted from when the connection
    /// waits for them, so it is also how long a kept-alive connection may sit idle).
    pub header_timeout: Duration,
    /// A request's body must arrive within this once its headers are in (408 if not).
    pub body_timeout: Duration,
    /// Connections served at once; more are answered 503 at once and closed.
    pub max_connections: usize,
    /// How long stopping waits for requests in flight before cutting them off.
    pub stop_grace: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_connections: 64,
            stop_grace: Duration::from_secs(5),
        }
    }
}

/// What a connection over the cap gets before it is closed: no page, no work.
const BUSY_ANSWER: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nRetry-After: 5\r\nConnection: close\r\nContent-Length: 56\r\n\r\nSibuk, coba lagi sebentar. / Busy, try again shortly.\r\n\r\n";

/// Reads the whole body (at most [`MAX_BODY_BYTES`]) within `timeout` before the
/// handler runs, so a client that sends its form a byte at a time is answered 408
/// instead of holding the request open.
async fn read_body_in_time(
    State((c, timeout)): State<(Checkin, Duration)>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, MAX_BODY_BYTES)).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                .await
        }
        Ok(Err(_)) => {
            let lang = cookie_lang(&c, &parts.headers);
            html(
                StatusCode::PAYLOAD_TOO_LARGE,
                pages::store_failure(
                    lang,
                    lang.pick("Isian terlalu besar.", "The form is too large."),
                ),
                &[],
            )
        }
        Err(_) => {
            tracing::warn!("check-in page: a request body did not arrive in time");
            let lang = cookie_lang(&c, &parts.headers);
            html(
                StatusCode::REQUEST_TIMEOUT,
                pages::store_failure(
                    lang,
                    lang.pick(
                        "Isian tidak terkirim utuh tepat waktu.",
                        "The form did not arrive in time.",
                    ),
                ),
                &[],
            )
        }
    }
}

/// The running page; [`CheckinHandle::stop`] ends it.
#[derive(Debug)]
pub struct CheckinHandle {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    grace: Duration,
}

impl CheckinHandle {
    /// Stops accepting connections at once, lets requests in flight finish within the
    /// grace period (cutting off the rest) and returns. The daemon calls it before it
    /// closes the open session at shutdown, so no session can start after that.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        // The serving task bounds itself; this is a second fence.
        if tokio::time::timeout(self.grace + Duration::from_secs(1), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
        tracing::info!("check-in page stopped");
    }
}

/// Serves `checkin` on `listener` until [`CheckinHandle::stop`], with the default
/// [`ServeLimits`].
pub fn spawn(listener: tokio::net::TcpListener, checkin: Checkin) -> CheckinHandle {
    spawn_with_limits(listener, checkin, ServeLimits::default())
}

/// Serves `checkin` on `listener` with `limits`: HTTP/1 over hyper with a header
/// timeout, a body timeout (in the router), at most `max_connections` at once, and a
/// stop that stops accepting at once and waits at most `stop_grace`.
pub fn spawn_with_limits(
    listener: tokio::net::TcpListener,
    checkin: Checkin,
    limits: ServeLimits,
) -> CheckinHandle {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let router = checkin.router_with_body_timeout(limits.body_timeout);
    let task = tokio::spawn(serve(listener, router, limits, stopped));
    CheckinHandle {
        stop,
        task,
        grace: limits.stop_grace,
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: ServeLimits,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors, for instance: wait a moment rather
                        // than spin, and keep serving the connections already open.
                        tracing::warn!(error = %e, "check-in page: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    // Over the cap: a fixed answer written without waiting, then closed.
                    let _ = stream.try_write(BUSY_ANSWER);
                    tracing::warn!("check-in page: too many connections; one refused");
                    continue;
                };
                let router = router.clone();
                let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    let mut router = router.clone();
                    async move { tower_service::Service::call(&mut router, request).await }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(limits.header_timeout)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                let mut stop = stopped.clone();
                connections.spawn(async move {
                    let _permit = permit;
                    tokio::pin!(connection);
                    tokio::select! {
                        served = connection.as_mut() => {
                            if let Err(e) = served {
                                tracing::debug!(error = %e, "check-in page: connection ended");
                            }
                        }
                        _ = stop.changed() => {
                            // Finish the request in flight, take no further one.
                            connection.as_mut().graceful_shutdown();
                            let _ = connection.await;
                        }
                    }
                });
            }
        }
    }
    // Nothing more is accepted from here on.
    drop(listener);
    let finished = tokio::time::timeout(limits.stop_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tracing::warn!(
            cut_off = connections.len(),
            "check-in page: requests still in flight after the grace period were cut off"
        );
        connections.abort_all();
    }
}
