//! The check-in page over a real listener on 127.0.0.1:0 and a real store in a temporary
//! directory: the patron's flow, the refusals, the PIN and "sync now", the page sizes,
//! and that a member number is never kept or shown.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::TimeZone;
use jejak_domain::{
    AgeGroup, DeviceIdentity, EndReason, Gender, LibraryCode, PcCode, Purpose, UserKind,
};

use super::*;
use crate::clock::ManualClock;
use crate::patron::PatronSecret;

const PIN: &str = "246810";
const MEMBER: &str = "90817263";
const MAX_PAGE_BYTES: usize = 30 * 1024;

/// A "sync now" that counts its calls and always succeeds.
#[derive(Debug)]
struct FakeSync(Arc<AtomicU32>);

impl SyncNow for FakeSync {
    fn sync_now(&self) -> SyncFuture {
        let calls = self.0.clone();
        Box::pin(async move {
            calls.fetch_add(1, Ordering::SeqCst);
            SyncOutcome {
                ok: true,
                id: "Sinkron selesai: 3 catatan terkirim".into(),
                en: "Sync done: 3 records sent".into(),
            }
        })
    }
}

/// The page on a real listener, with a store, a patron secret and a PIN.
struct TestPage {
    url: String,
    port: u16,
    dir: tempfile::TempDir,
    http: reqwest::Client,
    syncs: Arc<AtomicU32>,
    secret: PatronSecret,
    /// The page's clock: the same boot for every store connection of the test.
    clock: ManualClock,
    checkin: Checkin,
    handle: Option<CheckinHandle>,
}

/// A browser's cookies, kept by hand (the client has no cookie store).
#[derive(Debug, Default, Clone)]
struct Jar(HashMap<String, String>);

impl Jar {
    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
    fn take(&mut self, response: &reqwest::Response) {
        for set in response.headers().get_all("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() {
                self.0.remove(k);
            } else {
                self.0.insert(k.to_string(), v.to_string());
            }
        }
    }
}

struct Answer {
    status: u16,
    location: String,
    body: String,
}

impl TestPage {
    async fn start(enrolled: bool) -> TestPage {
        Self::start_with(enrolled, ServeLimits::default()).await
    }

    async fn start_with(enrolled: bool, limits: ServeLimits) -> TestPage {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(chrono::Utc.with_ymd_and_hms(2031, 1, 5, 1, 0, 0).unwrap());
        let identity = DeviceIdentity {
            library: LibraryCode::parse("dermaji").unwrap(),
            pc: PcCode::parse("pc-01").unwrap(),
        };
        let (store, _) = Store::open(
            &dir.path().join("jejak.db"),
            identity,
            Arc::new(clock.clone()),
        )
        .unwrap();
        let secret = PatronSecret::generate();
        secret.save(&dir.path().join(SECRET_FILE)).unwrap();
        PinHash::new(PIN)
            .unwrap()
            .save(&dir.path().join(PIN_FILE))
            .unwrap();
        let listener = bind(0).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let syncs = Arc::new(AtomicU32::new(0));
        let sync: Option<Arc<dyn SyncNow>> = if enrolled {
            Some(Arc::new(FakeSync(syncs.clone())))
        } else {
            None
        };
        let checkin = Checkin::new(
            store,
            CheckinSettings {
                port,
                data_dir: dir.path().to_path_buf(),
                zone: Zone::Wib,
                lang: Lang::Id,
                net_dev_path: Some(dir.path().join("no-such-net-dev")),
            },
            sync,
        );
        let handle = Some(spawn_with_limits(listener, checkin.clone(), limits));
        TestPage {
            url: format!("http://127.0.0.1:{port}"),
            port,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            dir,
            syncs,
            secret,
            clock,
            checkin,
            handle,
        }
    }

    async fn answer(response: reqwest::Response, jar: &mut Jar) -> Answer {
        jar.take(&response);
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = response.text().await.unwrap();
        assert!(
            body.len() < MAX_PAGE_BYTES,
            "a page of {} bytes",
            body.len()
        );
        Answer {
            status,
            location,
            body,
        }
    }

    async fn get(&self, path: &str, jar: &mut Jar) -> Answer {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .header("Cookie", jar.header())
            .send()
            .await
            .unwrap();
        Self::answer(response, jar).await
    }

    /// POSTs a form as a browser on this page would (same Origin).
    async fn post(&self, path: &str, jar: &mut Jar, form: &[(&str, &str)]) -> Answer {
        self.post_with(path, jar, form, &[("Origin", &self.url)])
            .await
    }

    async fn post_with(
        &self,
        path: &str,
        jar: &mut Jar,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = self
            .http
            .post(format!("{}{path}", self.url))
            .header("Cookie", jar.header())
            .form(form);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        Self::answer(request.send().await.unwrap(), jar).await
    }

    /// A fresh store connection, to see what the page wrote.
    fn store(&self) -> Store {
        Store::open(
            &self.dir.path().join("jejak.db"),
            DeviceIdentity {
                library: LibraryCode::parse("dermaji").unwrap(),
                pc: PcCode::parse("pc-01").unwrap(),
            },
            Arc::new(self.clock.clone()),
        )
        .unwrap()
        .0
    }

    /// Every byte of the store's files.
    /// Wrong PINs in a row as the page counts them.
    async fn inner_wrong_pins(&self) -> u32 {
        self.checkin.inner.pins.lock().await.wrong
    }

    fn store_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.to_string_lossy().contains("jejak.db") {
                bytes.extend(std::fs::read(&path).unwrap());
            }
        }
        bytes
    }

    /// Signs in as the librarian.
    async fn sign_in(&self, jar: &mut Jar) {
        let csrf = csrf_of(&self.get("/pustakawan", jar).await.body);
        let answer = self
            .post("/pustakawan/masuk", jar, &[("csrf", &csrf), ("pin", PIN)])
            .await;
        assert_eq!(answer.status, 303, "{}", answer.body);
        assert_eq!(answer.location, "/pustakawan");
    }
}

/// The CSRF token of the page's first form.
fn csrf_of(body: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let at = body.find(marker).expect("a form with a CSRF token") + marker.len();
    body[at..at + 64].to_string()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The text of the element with `id` (up to its closing tag).
fn element(body: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\"");
    let at = body
        .find(&marker)
        .unwrap_or_else(|| panic!("no #{id} in {body}"));
    let start = body[at..].find('>').unwrap() + at + 1;
    let end = body[start..].find("</").unwrap() + start;
    body[start..end].to_string()
}

#[tokio::test]
async fn a_patron_checks_in_sees_the_session_counted_and_finishes() {
    let page = TestPage::start(true).await;
    let mut jar = Jar::default();

    let form = page.get("/", &mut jar).await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("<html lang=\"id\">"));
    assert!(form.body.contains("id=\"checkin\""), "{}", form.body);
    assert_eq!(
        form.body.matches("name=\"purpose\"").count(),
        Purpose::ALL.len()
    );
    assert!(!form.body.contains("<script"), "no scripts");
    let csrf = csrf_of(&form.body);

    let started = page
        .post(
            "/mulai",
            &mut jar,
            &[
                ("csrf", &csrf),
                ("purpose", "pendidikan"),
                ("purpose", "ekonomi"),
                ("gender", "P"),
                ("age", "pemuda"),
                ("member", MEMBER),
                ("group_size", "1"),
            ],
        )
        .await;
    assert_eq!(started.status, 303, "{}", started.body);
    assert_eq!(started.location, "/");
    assert!(!started.body.contains(MEMBER));

    // The store holds the session as `jejak session start` would have made it.
    let session = page
        .store()
        .open_session()
        .unwrap()
        .expect("an open session");
    assert_eq!(
        session.patron.purposes,
        [Purpose::Pendidikan, Purpose::Ekonomi]
    );
    assert_eq!(session.patron.gender, Gender::P);
    assert_eq!(session.patron.age_group, AgeGroup::Pemuda);
    assert_eq!(session.patron.user_kind, UserKind::Anggota);
    assert_eq!(
        session.patron.patron_key,
        Some(page.secret.key_for(MEMBER)),
        "the member number's HMAC under the library's secret"
    );

    // The open session: its start, the time used so far and the Finish button. The
    // page never reloads itself (a screen reader would start over every time).
    let open = page.get("/", &mut jar).await;
    assert!(open.body.contains("id=\"session-open\""), "{}", open.body);
    assert_eq!(element(&open.body, "started-at"), "08:00");
    assert_eq!(element(&open.body, "time-used"), "kurang dari 1 menit");
    assert!(open.body.contains("id=\"finish\""));
    assert!(!open.body.contains("http-equiv"), "{}", open.body);
    assert!(!open.body.contains(MEMBER));

    // Counted on the librarian screen, waiting to sync.
    page.sign_in(&mut jar).await;
    let screen = page.get("/pustakawan", &mut jar).await;
    assert_eq!(screen.status, 200);
    assert_eq!(element(&screen.body, "today-count"), "1");
    assert!(
        element(&screen.body, "pending").starts_with(|c: char| c.is_ascii_digit() && c != '0'),
        "{}",
        element(&screen.body, "pending")
    );
    assert!(screen.body.contains("(berjalan)"));
    assert!(!screen.body.contains(MEMBER));
    // Plain words, the same `jejak status` uses: records waiting, no seq or epoch.
    assert!(
        element(&screen.body, "pending").ends_with(" catatan"),
        "{}",
        element(&screen.body, "pending")
    );
    for jargon in ["seq", "perubahan", "Epoch", "epoch"] {
        assert!(!screen.body.contains(jargon), "{jargon}");
    }

    // Finish.
    let csrf = csrf_of(&open.body);
    let finished = page.post("/selesai", &mut jar, &[("csrf", &csrf)]).await;
    assert_eq!(finished.status, 303);
    assert_eq!(finished.location, "/?selesai=id");
    let store = page.store();
    assert!(store.open_session().unwrap().is_none());
    let ended = &store.recent_sessions(5).unwrap()[0];
    assert_eq!(ended.id, session.id);
    assert_eq!(ended.end_reason, Some(EndReason::Logout));
    let thanks = page.get("/?selesai=id", &mut jar).await;
    assert!(thanks.body.contains("id=\"thanks\""));
    assert!(thanks.body.contains("id=\"checkin\""));

    // The number itself is nowhere in the store's files.
    assert!(!contains(&page.store_bytes(), MEMBER));
}

/// The form that starts a session, with the page's CSRF token.
fn a_checkin(csrf: &str) -> Vec<(&str, &str)> {
    vec![
        ("csrf", csrf),
        ("purpose", "komunikasi"),
        ("gender", "L"),
        ("age", "remaja"),
    ]
}

#[tokio::test]
async fn a_patrons_language_ends_with_their_session() {
    let page = TestPage::start(false).await;
    let mut jar = Jar::default();

    // English chosen on the form holds for a short while without a session, and
    // carries into the session the patron starts.
    let form = page.get("/?lang=en", &mut jar).await;
    assert!(form.body.contains("<html lang=\"en\">"));
    assert_eq!(jar.0.get(LANG_COOKIE).map(String::as_str), Some("en"));
    let csrf = csrf_of(&form.body);
    let started = page.post("/mulai", &mut jar, &a_checkin(&csrf)).await;
    assert_eq!(started.status, 303, "{}", started.body);
    let session = page.store().open_session().unwrap().unwrap();
    assert_eq!(
        jar.0.get(LANG_COOKIE),
        Some(&format!("en.{}", session.id.simple())),
        "the choice now belongs to the session"
    );
    let open = page.get("/", &mut jar).await;
    assert!(open.body.contains("<html lang=\"en\">"));
    assert!(open.body.contains("Time used at"));

    // Finish: thanked in English, and the page after it is Indonesian again, for the
    // next patron.
    let finished = page
        .post("/selesai", &mut jar, &[("csrf", &csrf_of(&open.body))])
        .await;
    assert_eq!(finished.location, "/?selesai=en");
    assert!(!jar.0.contains_key(LANG_COOKIE), "the choice is forgotten");
    let next = page.get(&finished.location, &mut jar).await;
    assert!(next.body.contains("<html lang=\"id\">"), "{}", next.body);
    assert!(
        next.body
            .contains("<p class=\"notice\" id=\"thanks\" lang=\"en\">Thank you!")
    );
    assert!(next.body.contains("Selamat datang"));

    // English chosen during a session that then ends another way (idle, a logout, the
    // librarian, the command line): the next patron still gets Indonesian.
    let csrf = csrf_of(&next.body);
    page.post("/mulai", &mut jar, &a_checkin(&csrf)).await;
    let english = page.get("/?lang=en", &mut jar).await;
    assert!(english.body.contains("<html lang=\"en\">"));
    page.store().end_session(EndReason::Idle, None).unwrap();
    let after = page.get("/", &mut jar).await;
    assert!(after.body.contains("<html lang=\"id\">"), "{}", after.body);
    assert!(
        !jar.0.contains_key(LANG_COOKIE),
        "the stale choice is forgotten"
    );

    // A choice made with no session open does not hold for a session someone else
    // started meanwhile.
    page.get("/?lang=en", &mut jar).await;
    page.store()
        .start_session(
            PatronProfile {
                user_kind: UserKind::NonAnggota,
                purposes: vec![Purpose::Hobi],
                gender: Gender::P,
                age_group: AgeGroup::Dewasa,
                group_size: 1,
                patron_key: None,
            },
            None,
        )
        .unwrap();
    let other = page.get("/", &mut jar).await;
    assert!(other.body.contains("<html lang=\"id\">"));
}

#[test]
fn a_language_choice_names_its_session() {
    let id = uuid::Uuid::now_v7();
    let tagged = LangChoice {
        lang: Lang::En,
        session: Some(id),
    };
    let cookie = tagged.cookie().unwrap();
    let value = cookie.to_str().unwrap();
    assert!(
        value.starts_with(&format!("jejak_lang=en.{};", id.simple())),
        "{value}"
    );
    assert!(value.contains("Max-Age=86400"));
    assert_eq!(
        LangChoice::parse(&format!("en.{}", id.simple())),
        Some(tagged)
    );
    assert!(tagged.holds(Some(id)));
    assert!(!tagged.holds(None));
    assert!(!tagged.holds(Some(uuid::Uuid::now_v7())));
    let untagged = LangChoice::parse("en").unwrap();
    assert!(untagged.holds(None));
    assert!(!untagged.holds(Some(id)));
    assert!(
        untagged
            .cookie()
            .unwrap()
            .to_str()
            .unwrap()
            .contains("Max-Age=600")
    );
    for bad in ["fr", "en.nope", "", "en.", "."] {
        assert_eq!(LangChoice::parse(bad), None, "{bad}");
    }
}

#[tokio::test]
async fn more_than_three_purposes_or_missing_answers_are_refused_with_a_clear_message() {
    let page = TestPage::start(false).await;
    let mut jar = Jar::default();
    let csrf = csrf_of(&page.get("/", &mut jar).await.body);
    let answer = page
        .post(
            "/mulai",
            &mut jar,
            &[
                ("csrf", &csrf),
                ("purpose", "pendidikan"),
                ("purpose", "ekonomi"),
                ("purpose", "kesehatan"),
                ("purpose", "hobi"),
                ("gender", "L"),
                ("age", "dewasa"),
                ("member", MEMBER),
            ],
        )
        .await;
    assert_eq!(answer.status, 422);
    let errors = element(&answer.body, "errors");
    assert!(errors.contains("Paling banyak 3 tujuan"), "{errors}");
    // The choices come back (so only one box needs unticking), the number does not.
    assert_eq!(answer.body.matches(" checked>").count(), 6);
    assert!(!answer.body.contains(MEMBER));
    assert!(answer.body.contains("id=\"member-again\""));
    assert!(page.store().open_session().unwrap().is_none());

    // Nothing chosen: each missing answer is named, in English when asked for.
    page.get("/?lang=en", &mut jar).await;
    let answer = page.post("/mulai", &mut jar, &[("csrf", &csrf)]).await;
    assert_eq!(answer.status, 422);
    for expected in [
        "Choose what you will use",
        "Choose a gender",
        "Choose an age group",
    ] {
        assert!(
            answer.body.contains(expected),
            "{expected}: {}",
            answer.body
        );
    }
    assert!(page.store().recent_sessions(5).unwrap().is_empty());
    assert!(!contains(&page.store_bytes(), MEMBER));
}

#[tokio::test]
async fn starting_while_a_session_is_open_ends_it_as_staff_ended() {
    let page = TestPage::start(false).await;
    let mut jar = Jar::default();
    let csrf = csrf_of(&page.get("/", &mut jar).await.body);
    let fields = [
        ("csrf", csrf.as_str()),
        ("purpose", "komunikasi"),
        ("gender", "X"),
        ("age", "unknown"),
        ("group_size", "3"),
    ];
    assert_eq!(page.post("/mulai", &mut jar, &fields).await.status, 303);
    // The next patron takes "Not you?" and checks in over the open session.
    let form = page.get("/?baru=1", &mut jar).await;
    assert!(form.body.contains("id=\"replacing\""));
    assert_eq!(page.post("/mulai", &mut jar, &fields).await.status, 303);
    let sessions = page.store().recent_sessions(5).unwrap();
    assert_eq!(sessions.len(), 2);
    assert!(sessions[0].is_open());
    assert_eq!(sessions[0].patron.user_kind, UserKind::Rombongan);
    assert_eq!(sessions[0].patron.group_size, 3);
    assert_eq!(sessions[1].end_reason, Some(EndReason::StaffEnded));
}

#[tokio::test]
async fn foreign_origins_other_hosts_and_posts_without_a_csrf_token_are_refused() {
    let page = TestPage::start(true).await;
    let mut jar = Jar::default();
    let csrf = csrf_of(&page.get("/", &mut jar).await.body);
    let form = [
        ("csrf", csrf.as_str()),
        ("purpose", "pendidikan"),
        ("gender", "L"),
        ("age", "anak"),
    ];
    let refused = |answer: &Answer, reason: &str| {
        assert_eq!(answer.status, 403, "{reason}: {}", answer.body);
        assert!(
            answer.body.contains(&format!("data-reason=\"{reason}\"")),
            "{reason}: {}",
            answer.body
        );
        assert!(answer.body.contains("Permintaan ditolak"));
    };

    for origin in ["http://evil.example", "null", "http://127.0.0.1:1"] {
        let answer = page
            .post_with("/mulai", &mut jar, &form, &[("Origin", origin)])
            .await;
        refused(&answer, "foreign_origin");
    }
    let answer = page
        .post_with(
            "/mulai",
            &mut jar,
            &form,
            &[("Sec-Fetch-Site", "cross-site")],
        )
        .await;
    refused(&answer, "foreign_origin");

    // DNS rebinding: a name that resolves to 127.0.0.1 is still not this page's name.
    for host in [
        "evil.example".to_string(),
        format!("evil.example:{}", page.port),
    ] {
        let response = page
            .http
            .get(format!("{}/", page.url))
            .header("Host", &host)
            .send()
            .await
            .unwrap();
        let answer = TestPage::answer(response, &mut jar.clone()).await;
        refused(&answer, "bad_host");
    }
    // `localhost` is this page too.
    let response = page
        .http
        .get(format!("{}/", page.url))
        .header("Host", format!("localhost:{}", page.port))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);

    // No token, a token for another nonce, a nonce cookie planted with a made-up token.
    let without: Vec<_> = form.iter().filter(|(k, _)| *k != "csrf").copied().collect();
    refused(&page.post("/mulai", &mut jar, &without).await, "csrf");
    let mut planted = Jar::default();
    planted.0.insert(CSRF_COOKIE.into(), "a".repeat(64));
    let mut forged = without.clone();
    forged.push(("csrf", csrf.as_str()));
    refused(&page.post("/mulai", &mut planted, &forged).await, "csrf");
    let made_up = "b".repeat(64);
    let mut forged = without.clone();
    forged.push(("csrf", made_up.as_str()));
    refused(&page.post("/mulai", &mut planted, &forged).await, "csrf");
    refused(
        &page.post("/selesai", &mut Jar::default(), &[]).await,
        "csrf",
    );

    assert!(
        page.store().recent_sessions(5).unwrap().is_empty(),
        "no refused request wrote anything"
    );
    // The same form with its token and this page's Origin works.
    assert_eq!(page.post("/mulai", &mut jar, &form).await.status, 303);
}

#[tokio::test]
async fn the_librarian_screen_needs_the_pin_and_runs_sync_now() {
    let page = TestPage::start(true).await;
    let mut jar = Jar::default();
    let pin_page = page.get("/pustakawan", &mut jar).await;
    assert!(pin_page.body.contains("id=\"pin\""));
    assert!(!pin_page.body.contains("id=\"librarian\""));
    let csrf = csrf_of(&pin_page.body);

    // A wrong PIN: an error, no sign-in.
    let wrong = page
        .post(
            "/pustakawan/masuk",
            &mut jar,
            &[("csrf", &csrf), ("pin", "135799")],
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(element(&wrong.body, "pin-error"), "PIN salah.");
    assert!(!jar.0.contains_key(LIBRARIAN_COOKIE));
    assert!(
        !page
            .get("/pustakawan", &mut jar)
            .await
            .body
            .contains("id=\"librarian\"")
    );
    // Sync now without signing in does nothing.
    let answer = page
        .post("/pustakawan/sinkron", &mut jar, &[("csrf", &csrf)])
        .await;
    assert_eq!(answer.location, "/pustakawan");
    assert_eq!(page.syncs.load(Ordering::SeqCst), 0);

    // The right PIN, then Sync now; the screen shows the outcome in the reader's language.
    page.sign_in(&mut jar).await;
    let screen = page.get("/pustakawan", &mut jar).await;
    assert!(screen.body.contains("id=\"sync-now\""));
    assert_eq!(element(&screen.body, "today-count"), "0");
    let answer = page
        .post("/pustakawan/sinkron", &mut jar, &[("csrf", &csrf)])
        .await;
    assert_eq!(
        (answer.status, answer.location.as_str()),
        (303, "/pustakawan")
    );
    let mut shown = String::new();
    for _ in 0..100 {
        let screen = page.get("/pustakawan?lang=en", &mut jar).await;
        if screen.body.contains("Sync done") {
            shown = element(&screen.body, "sync-result");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(shown.ends_with("Sync done: 3 records sent"), "{shown:?}");
    assert_eq!(page.syncs.load(Ordering::SeqCst), 1);

    // Signing out ends the librarian's session.
    let csrf = csrf_of(&page.get("/pustakawan", &mut jar).await.body);
    let out = page
        .post("/pustakawan/keluar", &mut jar, &[("csrf", &csrf)])
        .await;
    assert_eq!(out.location, "/");
    assert!(
        page.get("/pustakawan", &mut jar)
            .await
            .body
            .contains("id=\"pin\"")
    );
}

#[tokio::test]
async fn wrong_pins_cost_a_growing_wait_that_the_screen_states_and_the_right_pin_then_works() {
    let page = TestPage::start(false).await;
    let mut jar = Jar::default();
    let csrf = csrf_of(&page.get("/pustakawan", &mut jar).await.body);
    let wrong = async |jar: &mut Jar| {
        page.post(
            "/pustakawan/masuk",
            jar,
            &[("csrf", &csrf), ("pin", "000000")],
        )
        .await
    };
    // Typing mistakes cost nothing.
    for _ in 0..FREE_WRONG_PINS {
        let answer = wrong(&mut jar).await;
        assert_eq!(answer.status, 401);
        assert!(!answer.body.contains("id=\"pin-wait\""), "{}", answer.body);
    }
    // The next wrong PIN imposes a wait, and the screen says until when (08:00 WIB is
    // the test clock's time).
    let answer = wrong(&mut jar).await;
    assert_eq!(answer.status, 401);
    let wait = element(&answer.body, "pin-wait");
    assert!(
        wait.starts_with("Terlalu banyak PIN salah. Coba lagi pukul 08:00:05 (dalam 5 detik)"),
        "{wait}"
    );
    // During the wait even the right PIN is not checked; the answer says when to retry.
    let answer = page
        .post(
            "/pustakawan/masuk",
            &mut jar,
            &[("csrf", &csrf), ("pin", PIN)],
        )
        .await;
    assert_eq!(answer.status, 429, "{}", answer.body);
    assert!(answer.body.contains("id=\"pin-wait\""));
    assert!(!jar.0.contains_key(LIBRARIAN_COOKIE));
    // The PIN form shows the wait too, before anyone types.
    let form = page.get("/pustakawan?lang=en", &mut jar).await;
    assert!(
        element(&form.body, "pin-wait").starts_with("Too many wrong PINs. Try again at 08:00:0"),
        "{}",
        form.body
    );
    // Once the wait is over, the right PIN signs in and the streak is forgotten.
    tokio::time::sleep(FIRST_PIN_WAIT + Duration::from_millis(200)).await;
    page.sign_in(&mut jar).await;
    assert_eq!(page.inner_wrong_pins().await, 0);
}

#[test]
fn the_pin_wait_doubles_and_never_exceeds_five_minutes() {
    let waits: Vec<u64> = (1..=12)
        .map(|n| pin_wait(n).map_or(0, |w| w.as_secs()))
        .collect();
    assert_eq!(waits, [0, 0, 0, 5, 10, 20, 40, 80, 160, 300, 300, 300]);
    assert!((1..10_000).all(|n| pin_wait(n).is_none_or(|w| w <= MAX_PIN_WAIT)));
    assert_eq!(pin_wait(u32::MAX), Some(MAX_PIN_WAIT));

    // A streak is forgotten after an hour without a wrong PIN.
    let start = Instant::now();
    let mut attempts = PinAttempts::default();
    for _ in 0..5 {
        attempts.wrong_pin(start);
    }
    assert_eq!(attempts.wait(start), Some(Duration::from_secs(10)));
    assert_eq!(attempts.wait(start + Duration::from_secs(10)), None);
    let later = start + PIN_STREAK_FORGOTTEN;
    assert_eq!(attempts.wrong_pin(later), None, "a new streak starts free");
    assert_eq!(attempts.wrong, 1);
}

#[tokio::test]
async fn a_pin_kept_the_old_way_is_upgraded_to_argon2id_at_the_next_sign_in() {
    let page = TestPage::start(false).await;
    let path = page.dir.path().join(PIN_FILE);
    pin::PinHash::legacy_for_tests("2468").save(&path).unwrap();
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .starts_with("jejak-pin-v1 ")
    );
    let mut jar = Jar::default();
    let csrf = csrf_of(&page.get("/pustakawan", &mut jar).await.body);
    let answer = page
        .post(
            "/pustakawan/masuk",
            &mut jar,
            &[("csrf", &csrf), ("pin", "2468")],
        )
        .await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("jejak-pin-v2 $argon2id$"), "{text}");
    assert!(PinHash::load(&path).unwrap().unwrap().verify("2468"));
    // The four-digit PIN still works, and the screen asks for a longer one.
    let screen = page.get("/pustakawan", &mut jar).await;
    assert!(screen.body.contains("id=\"short-pin\""), "{}", screen.body);
}

#[tokio::test]
async fn a_pc_not_enrolled_says_so_instead_of_offering_sync() {
    let page = TestPage::start(false).await;
    let mut jar = Jar::default();
    page.sign_in(&mut jar).await;
    let screen = page.get("/pustakawan", &mut jar).await;
    assert!(screen.body.contains("id=\"not-enrolled\""));
    assert!(!screen.body.contains("id=\"sync-now\""));
}

#[test]
fn only_this_machine_and_this_pages_names_are_served() {
    assert!(peer_allowed("127.0.0.1".parse().unwrap()));
    assert!(peer_allowed("127.8.9.1".parse().unwrap()));
    assert!(peer_allowed("::1".parse().unwrap()));
    assert!(peer_allowed("::ffff:127.0.0.1".parse().unwrap()));
    assert!(!peer_allowed("192.168.1.20".parse().unwrap()));
    assert!(!peer_allowed("::ffff:10.0.0.1".parse().unwrap()));

    assert!(host_allowed("127.0.0.1:7878", 7878));
    assert!(host_allowed("LOCALHOST:7878", 7878));
    assert!(host_allowed("[::1]:7878", 7878));
    assert!(!host_allowed("127.0.0.1:7879", 7878));
    assert!(!host_allowed("127.0.0.1", 7878));
    assert!(!host_allowed("attacker.example:7878", 7878));
    assert!(host_allowed("localhost", 80));

    assert!(origin_allowed("http://127.0.0.1:7878", 7878));
    assert!(origin_allowed("http://localhost:7878", 7878));
    assert!(!origin_allowed("https://127.0.0.1:7878", 7878));
    assert!(!origin_allowed("http://127.0.0.1:7878.evil.example", 7878));
    assert!(!origin_allowed("null", 7878));
}

#[test]
fn durations_and_escaping_read_well() {
    assert_eq!(pages::duration(59, Lang::Id), "kurang dari 1 menit");
    assert_eq!(pages::duration(65 * 60, Lang::Id), "1 jam 5 menit");
    assert_eq!(pages::duration(7 * 60, Lang::En), "7 min");
    // The templates escape what they are given.
    let page = pages::store_failure(Lang::En, "<script>alert('x')</script> & \"q\"");
    assert!(!page.contains("<script>"), "{page}");
    assert!(
        page.contains("&#60;script&#62;alert(&#39;x&#39;)&#60;/script&#62; &#38; &#34;q&#34;"),
        "{page}"
    );
}

#[tokio::test]
async fn a_login_nobody_checked_in_is_filled_in_not_replaced() {
    let page = TestPage::start(false).await;
    let login = page
        .store()
        .start_unattended_session(None)
        .unwrap()
        .expect("a session for the login");
    let mut jar = Jar::default();
    let form = page.get("/", &mut jar).await;
    assert!(form.body.contains("id=\"filling-in\""), "{}", form.body);
    assert!(form.body.contains("id=\"checkin\""));
    let csrf = csrf_of(&form.body);
    let answer = page
        .post(
            "/mulai",
            &mut jar,
            &[
                ("csrf", &csrf),
                ("purpose", "pemerintahan"),
                ("gender", "L"),
                ("age", "lansia"),
            ],
        )
        .await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    let sessions = page.store().recent_sessions(5).unwrap();
    assert_eq!(sessions.len(), 1, "the same session, not a second one");
    assert_eq!(sessions[0].id, login.id);
    assert!(sessions[0].is_open());
    assert!(sessions[0].revision > login.revision);
    assert_eq!(sessions[0].patron.purposes, [Purpose::Pemerintahan]);
    assert_eq!(sessions[0].patron.user_kind, UserKind::NonAnggota);
    // Filled in, the page shows the open session with its Finish button.
    assert!(
        page.get("/", &mut jar)
            .await
            .body
            .contains("id=\"session-open\"")
    );
}

#[tokio::test]
async fn a_busy_day_keeps_the_librarian_screen_small() {
    let page = TestPage::start(true).await;
    let mut store = page.store();
    let profile = jejak_domain::PatronProfile {
        user_kind: UserKind::Rombongan,
        purposes: vec![
            Purpose::Pemerintahan,
            Purpose::LiterasiDigital,
            Purpose::Ekonomi,
        ],
        gender: Gender::P,
        age_group: AgeGroup::Madya,
        group_size: 4,
        patron_key: None,
    };
    for _ in 0..120 {
        store.start_session(profile.clone(), None).unwrap();
    }
    // A busy month of activities, each with the longest title, partner and notes
    // allowed (the form shows them whole when one is edited).
    for day in 0..20u64 {
        let mut participants = jejak_domain::Participants::default();
        participants.set(Gender::P, AgeGroup::Madya, 30);
        store
            .add_activity(crate::store::ActivityInput {
                date: chrono::NaiveDate::from_ymd_opt(2030, 12, 10).unwrap()
                    + chrono::Days::new(day),
                start: chrono::NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
                duration_minutes: 120,
                activity_type: jejak_domain::ActivityType::KunjunganStudiBanding,
                title: "Kunjungan studi banding ".repeat(5),
                partner: Some("Perpustakaan Daerah ".repeat(6)),
                place: jejak_domain::ActivityPlace::DiLuar,
                participants,
                notes: Some("Catatan ".repeat(62) + "ok"),
            })
            .unwrap();
    }
    let mut jar = Jar::default();
    page.sign_in(&mut jar).await;
    // `answer` checks every page is under 30 KB.
    let screen = page.get("/pustakawan?lang=en", &mut jar).await;
    assert_eq!(element(&screen.body, "today-count"), "120");
    assert!(element(&screen.body, "more-sessions").starts_with("And 80 earlier"));
    assert!(
        element(&screen.body, "more-activities").starts_with("And 12 more activities"),
        "{}",
        element(&screen.body, "more-activities")
    );
    let short = crate::store::short_id(&stored_activities(&page)[0].id);
    let editing = page
        .get(&format!("/pustakawan?lang=en&kegiatan={short}"), &mut jar)
        .await;
    assert_eq!(editing.status, 200);
}

/// The per-user part reports the console's input idle time; the page hands it to the
/// console's state, which the Windows login source reads. Foreign pages cannot post it,
/// and a value that is not a reading is refused and changes nothing.
#[tokio::test]
async fn idle_reports_reach_the_console_seat_and_nothing_else_can_post_them() {
    use crate::login::{ConsoleEvent, console, console_event};
    let page = TestPage::start(false).await;
    let mut jar = Jar::default();
    console_event(ConsoleEvent::Logon);
    let idle = || {
        console()
            .lock()
            .unwrap()
            .snapshot(std::time::Instant::now())
            .and_then(|s| s.idle_for)
    };
    assert_eq!(idle(), None, "no report yet");

    // As `jejak logon` posts it: no Origin, this page's Host.
    let response = page
        .http
        .post(format!("{}{}", page.url, super::IDLE_REPORT_PATH))
        .form(&[("idle_ms", "120000")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    let seen = idle().expect("the report is the idle time");
    assert!(
        seen >= Duration::from_secs(120) && seen < Duration::from_secs(125),
        "{seen:?}"
    );

    for bad in ["-5", "lots", "99999999999999999999", ""] {
        let answer = page
            .post(super::IDLE_REPORT_PATH, &mut jar, &[("idle_ms", bad)])
            .await;
        assert_eq!(answer.status, 400, "{bad}: {}", answer.body);
    }
    let answer = page
        .post_with(
            super::IDLE_REPORT_PATH,
            &mut jar,
            &[("idle_ms", "0")],
            &[("Origin", "http://evil.example")],
        )
        .await;
    assert_eq!(answer.status, 403, "a foreign page: {}", answer.body);
    let still = idle().expect("still the first report");
    assert!(still >= Duration::from_secs(120), "unchanged: {still:?}");
}

#[tokio::test]
async fn a_member_number_longer_than_the_form_allows_is_refused_and_nothing_is_stored() {
    let page = TestPage::start(false).await;
    let mut jar = Jar::default();
    let csrf = csrf_of(&page.get("/?lang=en", &mut jar).await.body);
    let long = "9".repeat(15_000);
    let check_in = async |jar: &mut Jar, member: &str| {
        page.post(
            "/mulai",
            jar,
            &[
                ("csrf", &csrf),
                ("purpose", "pendidikan"),
                ("gender", "P"),
                ("age", "remaja"),
                ("member", member),
            ],
        )
        .await
    };
    let answer = check_in(&mut jar, &long).await;
    assert_eq!(answer.status, 422, "{}", answer.body);
    assert!(
        element(&answer.body, "errors").contains("The member number is too long: at most 40"),
        "{}",
        answer.body
    );
    assert!(!answer.body.contains(&long[..100]));
    assert!(
        page.store().recent_sessions(5).unwrap().is_empty(),
        "nothing stored"
    );
    assert!(!contains(&page.store_bytes(), &long[..100]));
    // Forty characters are still fine.
    let answer = check_in(&mut jar, &"9".repeat(MAX_MEMBER_CHARS)).await;
    assert_eq!(answer.status, 303, "{}", answer.body);
}

/// Short limits, so that the slow-client tests take seconds.
fn short_limits() -> ServeLimits {
    ServeLimits {
        header_timeout: Duration::from_millis(700),
        body_timeout: Duration::from_millis(700),
        max_connections: 16,
        stop_grace: Duration::from_secs(2),
    }
}

/// Reads from `stream` until it closes (or `deadline`); returns what came and whether
/// it closed.
async fn read_until_closed(
    stream: &mut tokio::net::TcpStream,
    deadline: Duration,
) -> (String, bool) {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(deadline, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

#[tokio::test]
async fn slow_headers_slow_bodies_and_idle_connections_are_dropped_in_time() {
    use tokio::io::AsyncWriteExt;
    let page = TestPage::start_with(false, short_limits()).await;
    let addr = format!("127.0.0.1:{}", page.port);

    // Headers a byte at a time, slower than the header timeout: the page hangs up.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let started = Instant::now();
    let head = format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n", page.port);
    let mut cut = false;
    for byte in head.bytes() {
        if slow.write_all(&[byte]).await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, closed) = read_until_closed(&mut slow, Duration::from_secs(3)).await;
    assert!(
        cut || closed,
        "a client sending headers slowly was not dropped"
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );

    // A body a byte at a time: 408, and nothing stored.
    let mut jar = Jar::default();
    let csrf = csrf_of(&page.get("/", &mut jar).await.body);
    let form = format!("csrf={csrf}&purpose=pendidikan&gender=L&age=anak");
    let mut body_slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    body_slow
        .write_all(
            format!(
                "POST /mulai HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://127.0.0.1:{port}\r\nCookie: {cookies}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {len}\r\n\r\n",
                port = page.port,
                cookies = jar.header(),
                len = form.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    body_slow.write_all(&form.as_bytes()[..3]).await.unwrap();
    let (answer, _) = read_until_closed(&mut body_slow, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        page.store().recent_sessions(5).unwrap().is_empty(),
        "nothing stored"
    );

    // A kept-alive connection that asks nothing more is closed after the same timeout.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    idle.write_all(
        format!(
            "GET /pustakawan HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
            page.port
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let (answer, closed) = read_until_closed(&mut idle, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(closed, "an idle kept-alive connection stayed open");
}

#[tokio::test]
async fn connections_over_the_cap_are_refused_at_once_and_the_page_stops_in_its_grace_period() {
    use tokio::io::AsyncWriteExt;
    // Bodies may take long here, so that requests in flight really outlast the grace
    // period when the page stops.
    let limits = ServeLimits {
        body_timeout: Duration::from_secs(60),
        ..short_limits()
    };
    let mut page = TestPage::start_with(false, limits).await;
    let addr = format!("127.0.0.1:{}", page.port);
    // 200 slow clients: each sends part of a request head and then nothing.
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let _ = stream.write_all(b"GET / HTTP/1.1\r\nHo").await;
        slow.push(stream);
    }
    // Those past the cap were answered 503 and closed without waiting for a body (whose
    // timeout is a minute). Two seconds each leaves room for a loaded machine or wine
    // accepting late; a connection that waited for its body would still fail.
    let mut refused = 0;
    for stream in slow.iter_mut().skip(16) {
        let (answer, closed) = read_until_closed(stream, Duration::from_secs(2)).await;
        if closed && answer.starts_with("HTTP/1.1 503") {
            refused += 1;
        }
    }
    assert_eq!(
        refused,
        200 - 16,
        "every connection over the cap is refused at once"
    );
    // The slow ones are dropped at their header timeout, and the page answers again.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let mut jar = Jar::default();
    assert_eq!(page.get("/", &mut jar).await.status, 200);

    // Stopping while slow clients hold connections (new ones, opened just now) takes no
    // longer than the grace period.
    let mut holding = Vec::new();
    for _ in 0..16 {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST /mulai HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 100\r\n\r\nab",
            page.port
        );
        let _ = stream.write_all(head.as_bytes()).await;
        holding.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    page.handle.take().unwrap().stop().await;
    assert!(
        started.elapsed() <= limits.stop_grace + Duration::from_millis(500),
        "stopped after {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() >= limits.stop_grace - Duration::from_millis(100),
        "the requests in flight were given their grace period"
    );
    // Nothing is accepted any more.
    assert!(reqwest::get(format!("http://{addr}/")).await.is_err());
}

// ---------------------------------------------------------------------------------------
// The desk: the visitor book and the member counts
// ---------------------------------------------------------------------------------------

/// The visits in the page's store, newest revision of each, latest first.
fn stored_visits(page: &TestPage) -> Vec<jejak_domain::Visit> {
    page.store()
        .desk_records("visit", 1000)
        .unwrap()
        .into_iter()
        .map(|r| match r {
            jejak_domain::RecordBody::Visit(v) => v,
            other => panic!("not a visit: {other:?}"),
        })
        .collect()
}

fn stored_counts(page: &TestPage) -> Vec<jejak_domain::MemberCount> {
    page.store()
        .desk_records("member_count", 100)
        .unwrap()
        .into_iter()
        .map(|r| match r {
            jejak_domain::RecordBody::MemberCount(m) => m,
            other => panic!("not a member count: {other:?}"),
        })
        .collect()
}

/// The value of the hidden `visit` field of the undo form.
fn undo_target(body: &str) -> String {
    let marker = "name=\"visit\" value=\"";
    let at = body.find(marker).expect("an undo form") + marker.len();
    body[at..at + 36].to_string()
}

/// Whether the radio `name`=`value` is checked on the page.
fn checked(body: &str, name: &str, value: &str) -> bool {
    body.contains(&format!("name=\"{name}\" value=\"{value}\" checked"))
}

#[tokio::test]
async fn the_visitor_book_stores_taps_groups_and_undoes_the_last_entries() {
    let page = TestPage::start(true).await;
    let mut jar = Jar::default();
    page.sign_in(&mut jar).await;
    let screen = page.get("/pustakawan", &mut jar).await;
    assert_eq!(element(&screen.body, "visits-today"), "0");
    assert!(!screen.body.contains("id=\"undo-visit\""));
    // Nothing chosen yet: no quick buttons, no choice made for the librarian (the
    // activity form's place further down starts on "at the library", a fact of most).
    assert!(!screen.body.contains("name=\"combo\""));
    let book = &screen.body[..screen.body.find("id=\"anggota\"").unwrap()];
    assert!(!book.contains(" checked"));
    let csrf = csrf_of(&screen.body);

    // One tap: stored with the chosen categories before the answer.
    let tap = [
        ("csrf", csrf.as_str()),
        ("gender", "P"),
        ("age", "anak"),
        ("kind", "non_anggota"),
        ("purpose", "membaca"),
        ("people", "1"),
    ];
    let answer = page.post("/pustakawan/tamu", &mut jar, &tap).await;
    assert_eq!(
        (answer.status, answer.location.as_str()),
        (303, "/pustakawan#buku-tamu")
    );
    let visits = stored_visits(&page);
    assert_eq!(visits.len(), 1);
    let first = &visits[0];
    assert_eq!(
        (
            first.gender,
            first.age_group,
            first.user_kind,
            first.purpose,
            first.people,
            first.withdrawn
        ),
        (
            Gender::P,
            AgeGroup::Anak,
            UserKind::NonAnggota,
            jejak_domain::VisitPurpose::Membaca,
            1,
            false
        )
    );

    // The choices stay selected, and the combination is a quick button of its own.
    let screen = page.get("/pustakawan", &mut jar).await;
    assert_eq!(element(&screen.body, "visits-today"), "1");
    for (name, value) in [
        ("gender", "P"),
        ("age", "anak"),
        ("kind", "non_anggota"),
        ("purpose", "membaca"),
    ] {
        assert!(checked(&screen.body, name, value), "{name}={value} sticky");
    }
    assert!(
        screen
            .body
            .contains("name=\"combo\" value=\"P.anak.non_anggota.membaca\"")
    );
    let answer = page
        .post(
            "/pustakawan/tamu",
            &mut jar,
            &[("csrf", &csrf), ("combo", "P.anak.non_anggota.membaca")],
        )
        .await;
    assert_eq!(answer.status, 303);
    assert_eq!(stored_visits(&page).len(), 2);

    // A group: one entry with its size.
    let answer = page
        .post(
            "/pustakawan/tamu",
            &mut jar,
            &[
                ("csrf", &csrf),
                ("gender", "X"),
                ("age", "remaja"),
                ("kind", "rombongan"),
                ("purpose", "ikut_kegiatan"),
                ("people", "25"),
            ],
        )
        .await;
    assert_eq!(answer.status, 303);
    let visits = stored_visits(&page);
    assert_eq!(visits.len(), 3);
    assert_eq!(
        (visits[0].user_kind, visits[0].people),
        (UserKind::Rombongan, 25)
    );
    let screen = page.get("/pustakawan", &mut jar).await;
    assert_eq!(element(&screen.body, "visits-today"), "27");
    assert_eq!(element(&screen.body, "visit-entries"), "3");
    assert!(element(&screen.body, "last-visit").contains("25 orang"));

    // Undo withdraws the last entry (the group) as its next revision.
    let group = visits[0].id;
    assert_eq!(undo_target(&screen.body), group.to_string());
    let group_id = group.to_string();
    let undo = [("csrf", csrf.as_str()), ("visit", group_id.as_str())];
    let answer = page.post("/pustakawan/tamu/batal", &mut jar, &undo).await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    let visits = stored_visits(&page);
    let withdrawn: Vec<_> = visits.iter().filter(|v| v.withdrawn).collect();
    assert_eq!(withdrawn.len(), 1);
    assert_eq!((withdrawn[0].id, withdrawn[0].revision), (group, 2));
    let screen = page.get("/pustakawan?dibatalkan=1", &mut jar).await;
    assert_eq!(element(&screen.body, "visits-today"), "2");
    assert!(screen.body.contains("id=\"visit-undone\""));

    // The same undo again (a double tap): refused, nothing more withdrawn.
    let again = page.post("/pustakawan/tamu/batal", &mut jar, &undo).await;
    assert_eq!(again.status, 409);
    assert!(again.body.contains("id=\"undo-stale\""));
    assert_eq!(
        stored_visits(&page).iter().filter(|v| v.withdrawn).count(),
        1
    );

    // A fresh undo takes the entry before.
    let target = undo_target(&again.body);
    assert_ne!(target, group.to_string());
    let answer = page
        .post(
            "/pustakawan/tamu/batal",
            &mut jar,
            &[("csrf", &csrf), ("visit", &target)],
        )
        .await;
    assert_eq!(answer.status, 303);
    let visits = stored_visits(&page);
    assert_eq!(visits.iter().filter(|v| v.withdrawn).count(), 2);
    let screen = page.get("/pustakawan", &mut jar).await;
    assert_eq!(element(&screen.body, "visits-today"), "1");
    assert_eq!(undo_target(&screen.body), first.id.to_string());
    assert!(element(&screen.body, "last-visit").starts_with("Terakhir: 08:00 ·"));

    // The next day: today's count starts again, and the entry an undo would take says
    // its date.
    page.clock
        .advance(std::time::Duration::from_secs(24 * 3600));
    let screen = page.get("/pustakawan", &mut jar).await;
    assert_eq!(element(&screen.body, "visits-today"), "0");
    assert!(
        element(&screen.body, "last-visit").starts_with("Terakhir: 05-01-2031 08:00 WIB"),
        "{}",
        element(&screen.body, "last-visit")
    );
}

#[tokio::test]
async fn refused_taps_say_why_and_store_nothing() {
    let page = TestPage::start(true).await;
    let mut jar = Jar::default();
    page.sign_in(&mut jar).await;
    let csrf = csrf_of(&page.get("/pustakawan", &mut jar).await.body);
    let pending_before = page.store().status(Zone::Wib).unwrap().pending_changes;
    let cases: [(&[(&str, &str)], &str); 6] = [
        (
            &[
                ("gender", "Z"),
                ("age", "anak"),
                ("kind", "anggota"),
                ("purpose", "membaca"),
            ],
            "Z",
        ),
        (
            &[
                ("gender", "L"),
                ("age", "anak"),
                ("kind", "staf"),
                ("purpose", "membaca"),
            ],
            "staf",
        ),
        (
            &[
                ("gender", "L"),
                ("age", "anak"),
                ("kind", "anggota"),
                ("purpose", "tidur"),
            ],
            "tidur",
        ),
        (
            &[("gender", "L"), ("age", "anak"), ("kind", "anggota")],
            "Pilih tujuan kunjungan.",
        ),
        (
            &[
                ("gender", "L"),
                ("age", "anak"),
                ("kind", "rombongan"),
                ("purpose", "membaca"),
                ("people", "501"),
            ],
            "1 sampai 500",
        ),
        (&[("combo", "L.anak.anggota")], "Pilih tujuan kunjungan."),
    ];
    for (fields, said) in cases {
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend_from_slice(fields);
        let answer = page.post("/pustakawan/tamu", &mut jar, &form).await;
        assert_eq!(answer.status, 422, "{fields:?}");
        let errors = element(&answer.body, "visit-errors");
        assert!(errors.contains(said), "{fields:?}: {errors}");
    }
    // A forged form (no valid CSRF token) is refused.
    let forged = page
        .post(
            "/pustakawan/tamu",
            &mut jar,
            &[
                ("csrf", &"0".repeat(64)),
                ("gender", "L"),
                ("age", "anak"),
                ("kind", "anggota"),
                ("purpose", "membaca"),
            ],
        )
        .await;
    assert_eq!(forged.status, 403);
    // Signed out: back to the PIN form, nothing written.
    let mut stranger = Jar::default();
    let stranger_csrf = csrf_of(&page.get("/pustakawan", &mut stranger).await.body);
    let tap = [
        ("csrf", stranger_csrf.as_str()),
        ("gender", "L"),
        ("age", "anak"),
        ("kind", "anggota"),
        ("purpose", "membaca"),
    ];
    let answer = page.post("/pustakawan/tamu", &mut stranger, &tap).await;
    assert_eq!(
        (answer.status, answer.location.as_str()),
        (303, "/pustakawan")
    );
    let answer = page
        .post(
            "/pustakawan/anggota",
            &mut stranger,
            &[
                ("csrf", &stranger_csrf),
                ("month", "2030-12"),
                ("members", "5"),
                ("new_members", "1"),
            ],
        )
        .await;
    assert_eq!(
        (answer.status, answer.location.as_str()),
        (303, "/pustakawan")
    );
    // And an undo with nothing to undo withdraws nothing.
    let answer = page
        .post(
            "/pustakawan/tamu/batal",
            &mut jar,
            &[
                ("csrf", &csrf),
                ("visit", &uuid::Uuid::now_v7().to_string()),
            ],
        )
        .await;
    assert_eq!(answer.status, 409);

    assert!(stored_visits(&page).is_empty());
    assert!(stored_counts(&page).is_empty());
    assert_eq!(
        page.store().status(Zone::Wib).unwrap().pending_changes,
        pending_before
    );
}

#[tokio::test]
async fn member_counts_are_stored_shown_replaced_and_bad_values_refused() {
    let page = TestPage::start(true).await;
    let mut jar = Jar::default();
    page.sign_in(&mut jar).await;
    // 5 January (WIB): the form starts on December, whose count the book just closed.
    let screen = page.get("/pustakawan", &mut jar).await;
    assert!(
        screen
            .body
            .contains("<option value=\"2030-12\" selected>Desember 2030</option>")
    );
    assert!(
        screen
            .body
            .contains("<option value=\"2031-01\">Januari 2031</option>")
    );
    assert_eq!(
        element(&screen.body, "month-last"),
        "Bulan ini belum diisi."
    );
    let csrf = csrf_of(&screen.body);

    let answer = page
        .post(
            "/pustakawan/anggota",
            &mut jar,
            &[
                ("csrf", &csrf),
                ("month", "2030-12"),
                ("members", "120"),
                ("new_members", "4"),
            ],
        )
        .await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert_eq!(
        answer.location,
        "/pustakawan?bulan=2030-12&disimpan=1#anggota"
    );
    let counts = stored_counts(&page);
    assert_eq!(counts.len(), 1);
    assert_eq!(
        (
            counts[0].month.to_string(),
            counts[0].members,
            counts[0].new_members,
            counts[0].revision
        ),
        ("2030-12".to_string(), 120, 4, 1)
    );
    let screen = page
        .get("/pustakawan?bulan=2030-12&disimpan=1", &mut jar)
        .await;
    assert!(screen.body.contains("id=\"member-saved\""));
    assert!(element(&screen.body, "month-last").contains("120 anggota · 4 anggota baru"));
    assert!(
        screen
            .body
            .contains("id=\"members\" name=\"members\" min=\"0\" max=\"1000000\" value=\"120\"")
    );

    // Entered again: the month's next revision replaces it.
    let answer = page
        .post(
            "/pustakawan/anggota",
            &mut jar,
            &[
                ("csrf", &csrf),
                ("month", "2030-12"),
                ("members", "124"),
                ("new_members", "5"),
            ],
        )
        .await;
    assert_eq!(answer.status, 303);
    let counts = stored_counts(&page);
    assert_eq!(counts.len(), 1);
    assert_eq!(
        (counts[0].members, counts[0].new_members, counts[0].revision),
        (124, 5, 2)
    );

    // Bad values: said, typed values kept, nothing stored.
    let pending = page.store().status(Zone::Wib).unwrap().pending_changes;
    for (month, members, new, said) in [
        ("2030-12", "3", "4", "4"),
        ("2030-12", "banyak", "4", "harus bilangan bulat"),
        ("2030-12", "-1", "0", "harus bilangan bulat"),
        ("2030-12", "1000001", "0", "1000000"),
        ("2031-02", "130", "2", "belum tiba"),
        ("bulan lalu", "130", "2", "bulan lalu"),
    ] {
        let answer = page
            .post(
                "/pustakawan/anggota",
                &mut jar,
                &[
                    ("csrf", &csrf),
                    ("month", month),
                    ("members", members),
                    ("new_members", new),
                ],
            )
            .await;
        assert_eq!(answer.status, 422, "{month} {members} {new}");
        let errors = element(&answer.body, "member-errors");
        assert!(errors.contains(said), "{month} {members} {new}: {errors}");
        assert!(
            answer.body.contains(&format!("value=\"{members}\"")),
            "{members} kept"
        );
    }
    let counts = stored_counts(&page);
    assert_eq!(
        (counts[0].members, counts[0].new_members, counts[0].revision),
        (124, 5, 2)
    );
    assert_eq!(
        page.store().status(Zone::Wib).unwrap().pending_changes,
        pending
    );
}

#[tokio::test]
async fn the_desk_never_asks_for_or_shows_a_name() {
    let page = TestPage::start(true).await;
    let mut jar = Jar::default();
    page.sign_in(&mut jar).await;
    let csrf = csrf_of(&page.get("/pustakawan", &mut jar).await.body);
    // A name slipped into the form as an extra field is neither stored nor shown.
    let answer = page
        .post(
            "/pustakawan/tamu",
            &mut jar,
            &[
                ("csrf", &csrf),
                ("gender", "L"),
                ("age", "dewasa"),
                ("kind", "anggota"),
                ("purpose", "pinjam_kembali"),
                ("nama", "Siti Aminah"),
            ],
        )
        .await;
    assert_eq!(answer.status, 303);
    let screen = page.get("/pustakawan", &mut jar).await.body;
    // The visitor book's and the member form's inputs are choices and numbers only:
    // nowhere to type a name. (The activity form's texts describe the activity, and say
    // so above them: see the activity tests.)
    let desk =
        &screen[screen.find("id=\"buku-tamu\"").unwrap()..screen.find("id=\"kegiatan\"").unwrap()];
    for input in desk.split("<input").skip(1) {
        assert!(
            ["type=\"radio\"", "type=\"number\"", "type=\"hidden\""]
                .iter()
                .any(|t| input.starts_with(&format!(" {t}"))),
            "an input that is not a choice or a number: <input{}",
            &input[..input.find('>').unwrap()]
        );
    }
    assert!(!desk.contains("<textarea"));
    assert!(!screen.contains("Siti"));
    assert!(!contains(&page.store_bytes(), "Siti Aminah"));
}

#[test]
fn the_member_form_starts_on_last_month_in_a_months_first_days() {
    use chrono::NaiveDate;
    let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
    assert_eq!(
        desk::default_month_for_tests(day(2031, 1, 5)).to_string(),
        "2030-12"
    );
    assert_eq!(
        desk::default_month_for_tests(day(2031, 1, 10)).to_string(),
        "2030-12"
    );
    assert_eq!(
        desk::default_month_for_tests(day(2031, 1, 11)).to_string(),
        "2031-01"
    );
    assert_eq!(
        desk::default_month_for_tests(day(2026, 3, 31)).to_string(),
        "2026-03"
    );
}

#[tokio::test]
async fn each_desk_form_renews_the_librarians_sign_in() {
    let page = TestPage::start(true).await;
    let mut jar = Jar::default();
    page.sign_in(&mut jar).await;
    let csrf = csrf_of(&page.get("/pustakawan", &mut jar).await.body);
    let id = jar.0[LIBRARIAN_COOKIE].clone();
    // Shorten what is left of the sign-in, as if the librarian signed in 14 minutes ago.
    let nearly_over = Instant::now() + Duration::from_secs(60);
    *lock(&page.checkin.inner.librarians).get_mut(&id).unwrap() = nearly_over;
    let response = page
        .http
        .post(format!("{}/pustakawan/tamu", page.url))
        .header("Cookie", jar.header())
        .header("Origin", &page.url)
        .form(&[
            ("csrf", csrf.as_str()),
            ("gender", "L"),
            ("age", "lansia"),
            ("kind", "anggota"),
            ("purpose", "membaca"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 303);
    let renewed: Vec<&str> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        renewed
            .iter()
            .any(|c| c.starts_with(&format!("{LIBRARIAN_COOKIE}={id};"))
                && c.contains("Max-Age=900")),
        "{renewed:?}"
    );
    let until = lock(&page.checkin.inner.librarians)[&id];
    assert!(
        until > nearly_over + Duration::from_secs(600),
        "renewed for 15 minutes"
    );
    assert_eq!(stored_visits(&page).len(), 1);
}

// ---------------------------------------------------------------------------------------
// The desk: activities (kegiatan)
// ---------------------------------------------------------------------------------------

/// The activities in the page's store, newest revision of each, latest entered first.
fn stored_activities(page: &TestPage) -> Vec<jejak_domain::Activity> {
    page.store()
        .desk_records("activity", 1000)
        .unwrap()
        .into_iter()
        .map(|r| match r {
            jejak_domain::RecordBody::Activity(a) => a,
            other => panic!("not an activity: {other:?}"),
        })
        .collect()
}

/// A valid activity form: a training held yesterday (the test's today is 5 January 2031
/// in WIB) with 15 participants, `extra` fields added or replacing these.
fn an_activity<'a>(csrf: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![
        ("csrf", csrf),
        ("date", "2031-01-04"),
        ("start", "09:00"),
        ("duration", "120"),
        ("type", "pelatihan"),
        ("title", "Pelatihan membuat surel"),
        ("partner", "Karang Taruna"),
        ("place", "di_perpustakaan"),
        ("notes", ""),
        ("p_L_dewasa", "5"),
        ("p_P_dewasa", "7"),
        ("p_P_remaja", "3"),
        ("p_X_lansia", ""),
    ];
    for (name, value) in extra {
        match form.iter_mut().find(|(n, _)| n == name) {
            Some(field) => field.1 = value,
            None => form.push((name, value)),
        }
    }
    form
}

#[tokio::test]
async fn activities_are_recorded_listed_and_changed_as_new_revisions() {
    let page = TestPage::start(true).await;
    let mut jar = Jar::default();
    page.sign_in(&mut jar).await;
    let screen = page.get("/pustakawan", &mut jar).await;
    // Above the free texts, the form says what they are for; the inputs carry the
    // domain's bounds; the date starts on today.
    let privacy = element(&screen.body, "activity-privacy");
    assert!(
        privacy.contains("bukan pengunjung: jangan menulis nama pengunjung"),
        "{privacy}"
    );
    let form_at = screen.body.find("id=\"activity-form\"").unwrap();
    let privacy_at = screen.body.find("id=\"activity-privacy\"").unwrap();
    let title_at = screen.body.find("id=\"a-title\"").unwrap();
    assert!(form_at < privacy_at && privacy_at < title_at);
    for (id, max) in [("a-title", 120), ("a-partner", 120), ("a-notes", 500)] {
        assert!(
            screen.body.contains(&format!(
                "id=\"{id}\" name=\"{}\" maxlength=\"{max}\"",
                &id[2..]
            )),
            "{id} maxlength {max}"
        );
    }
    assert!(
        screen
            .body
            .contains("id=\"a-date\" name=\"date\" value=\"2031-01-05\"")
    );
    assert!(checked(&screen.body, "place", "di_perpustakaan"));
    assert_eq!(
        element(&screen.body, "activity-list"),
        "Belum ada kegiatan."
    );
    let english = page.get("/pustakawan?lang=en", &mut jar).await;
    assert!(
        element(&english.body, "activity-privacy").contains("never a patron"),
        "{}",
        element(&english.body, "activity-privacy")
    );
    let screen = page.get("/pustakawan?lang=id", &mut jar).await;
    let csrf = csrf_of(&screen.body);

    // A valid activity: stored with its participants before the answer.
    let answer = page
        .post("/pustakawan/kegiatan", &mut jar, &an_activity(&csrf, &[]))
        .await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert_eq!(answer.location, "/pustakawan?kegiatan_dicatat=1#kegiatan");
    let stored = stored_activities(&page);
    assert_eq!(stored.len(), 1);
    let a = &stored[0];
    assert_eq!(
        (
            a.date.to_string(),
            a.start.format("%H:%M").to_string(),
            a.duration_minutes,
            a.activity_type,
            a.title.as_str(),
            a.partner.as_deref(),
            a.place,
            a.notes.as_deref(),
            a.revision
        ),
        (
            "2031-01-04".to_string(),
            "09:00".to_string(),
            120,
            jejak_domain::ActivityType::Pelatihan,
            "Pelatihan membuat surel",
            Some("Karang Taruna"),
            jejak_domain::ActivityPlace::DiPerpustakaan,
            None,
            1
        )
    );
    assert_eq!(a.participants.get(Gender::L, AgeGroup::Dewasa), 5);
    assert_eq!(a.participants.get(Gender::P, AgeGroup::Dewasa), 7);
    assert_eq!(a.participants.get(Gender::P, AgeGroup::Remaja), 3);
    assert_eq!(a.participants.total(), 15);

    // Listed under the form, with a link that opens the form on it.
    let screen = page.get("/pustakawan?kegiatan_dicatat=1", &mut jar).await;
    assert!(screen.body.contains("id=\"activity-saved\""));
    let short = crate::store::short_id(&a.id);
    let list = &screen.body[screen.body.find("id=\"activity-list\"").unwrap()..];
    assert!(
        list.contains(&format!("<td>4 Januari 2031</td><td>Pelatihan</td><td id=\"t{short}\">Pelatihan membuat surel</td><td class=\"n\">15</td>")),
        "{list}"
    );
    // Each "Ubah" link is named by its word and the activity's title (a screen reader
    // hears "Ubah Pelatihan membuat surel", not a row of identical "Ubah").
    let link = format!(
        "id=\"e{short}\" aria-labelledby=\"e{short} t{short}\" href=\"/pustakawan?kegiatan={short}#kegiatan\""
    );
    assert!(list.contains(&link), "{list}");
    let edit = page
        .get(&format!("/pustakawan?kegiatan={short}"), &mut jar)
        .await;
    assert_eq!(edit.status, 200);
    assert!(edit.body.contains(
        "<form id=\"activity-form\" method=\"post\" action=\"/pustakawan/kegiatan/ubah\">"
    ));
    assert!(
        edit.body
            .contains(&format!("name=\"activity\" value=\"{}\"", a.id))
    );
    assert!(edit.body.contains("value=\"Pelatihan membuat surel\""));
    assert!(edit.body.contains("name=\"p_P_dewasa\" aria-label=\"Perempuan, Dewasa (31–45)\" min=\"0\" max=\"1000\" value=\"7\""));
    assert!(edit.body.contains("<option value=\"pelatihan\" selected>"));

    // Saving the edit: the activity's next revision, with the changed fields.
    let id = a.id.to_string();
    let changed = an_activity(
        &csrf,
        &[
            ("activity", &id),
            ("title", "Pelatihan surel dan dokumen"),
            ("p_X_lansia", "2"),
            ("partner", ""),
        ],
    );
    let answer = page
        .post("/pustakawan/kegiatan/ubah", &mut jar, &changed)
        .await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert_eq!(answer.location, "/pustakawan?kegiatan_diubah=1#kegiatan");
    let stored = stored_activities(&page);
    assert_eq!(stored.len(), 1);
    let b = &stored[0];
    assert_eq!(
        (
            b.id,
            b.revision,
            b.title.as_str(),
            b.partner.as_deref(),
            b.participants.total()
        ),
        (a.id, 2, "Pelatihan surel dan dokumen", None, 17)
    );
    let screen = page.get("/pustakawan?kegiatan_diubah=1", &mut jar).await;
    assert!(screen.body.contains("id=\"activity-edited\""));
    let list = &screen.body[screen.body.find("id=\"activity-list\"").unwrap()..];
    assert!(
        list.contains("Pelatihan surel dan dokumen</td><td class=\"n\">17</td>"),
        "{list}"
    );
    assert!(!list.contains("Pelatihan membuat surel"), "{list}");
    // The form is back to a new activity.
    assert!(
        screen
            .body
            .contains("action=\"/pustakawan/kegiatan\"><input type=\"hidden\" name=\"csrf\"")
    );
}

#[tokio::test]
async fn refused_activities_say_why_and_store_nothing() {
    let page = TestPage::start(true).await;
    let mut jar = Jar::default();
    page.sign_in(&mut jar).await;
    let csrf = csrf_of(&page.get("/pustakawan", &mut jar).await.body);
    let pending_before = page.store().status(Zone::Wib).unwrap().pending_changes;

    // Signed out: back to the PIN form, nothing written.
    let mut stranger = Jar::default();
    let stranger_csrf = csrf_of(&page.get("/pustakawan", &mut stranger).await.body);
    let answer = page
        .post(
            "/pustakawan/kegiatan",
            &mut stranger,
            &an_activity(&stranger_csrf, &[]),
        )
        .await;
    assert_eq!(
        (answer.status, answer.location.as_str()),
        (303, "/pustakawan")
    );
    // A forged form (no valid CSRF token): refused.
    let zeros = "0".repeat(64);
    let forged = page
        .post("/pustakawan/kegiatan", &mut jar, &an_activity(&zeros, &[]))
        .await;
    assert_eq!(forged.status, 403);

    // Bad values: explained in the page's language, what was typed kept.
    let long_title = "k".repeat(121);
    let cases: [(&[(&str, &str)], &str); 8] = [
        (
            &[("title", &long_title)],
            "judul kegiatan terlalu panjang: 121 karakter, paling banyak 120",
        ),
        (
            &[("date", "2029-12-31")],
            "tanggal kegiatan 2029-12-31 terlalu jauh dari hari pencatatan",
        ),
        (&[("date", "2031-01-08")], "paling lambat besok"),
        (
            &[("duration", "0")],
            "durasi (menit) harus 1 sampai 1440, diberikan 0",
        ),
        (&[("duration", "dua jam")], "Durasi harus angka menit"),
        (&[("title", "   ")], "judul kegiatan wajib diisi"),
        (&[("type", "")], "Pilih jenis kegiatan."),
        (
            &[("p_L_anak", "banyak")],
            "Jumlah peserta harus bilangan bulat",
        ),
    ];
    for (fields, said) in cases {
        let answer = page
            .post(
                "/pustakawan/kegiatan",
                &mut jar,
                &an_activity(&csrf, fields),
            )
            .await;
        assert_eq!(answer.status, 422, "{fields:?}");
        let errors = element(&answer.body, "activity-errors");
        assert!(errors.contains(said), "{fields:?}: {errors}");
        assert!(
            answer.body.contains("value=\"Karang Taruna\""),
            "typed values kept"
        );
    }
    let english = page.get("/pustakawan?lang=en", &mut jar).await;
    let csrf_en = csrf_of(&english.body);
    let answer = page
        .post(
            "/pustakawan/kegiatan",
            &mut jar,
            &an_activity(&csrf_en, &[("duration", "0")]),
        )
        .await;
    assert_eq!(answer.status, 422);
    assert!(
        element(&answer.body, "activity-errors").contains("duration (minutes) must be 1 to 1440")
    );
    page.get("/pustakawan?lang=id", &mut jar).await;

    // An edit naming no activity of this PC: a clear refusal, nothing stored.
    let unknown = uuid::Uuid::now_v7().to_string();
    let answer = page
        .post(
            "/pustakawan/kegiatan/ubah",
            &mut jar,
            &an_activity(&csrf, &[("activity", &unknown)]),
        )
        .await;
    assert_eq!(answer.status, 404, "{}", answer.body);
    assert!(
        element(&answer.body, "activity-errors").contains("tidak ada di komputer ini"),
        "{}",
        element(&answer.body, "activity-errors")
    );
    let answer = page
        .post(
            "/pustakawan/kegiatan/ubah",
            &mut jar,
            &an_activity(&csrf, &[]),
        )
        .await;
    assert_eq!(answer.status, 404);
    let answer = page.get("/pustakawan?kegiatan=deadbeef", &mut jar).await;
    assert_eq!(answer.status, 404);
    assert!(answer.body.contains("id=\"activity-unknown\""));
    assert!(answer.body.contains("action=\"/pustakawan/kegiatan\">"));

    assert!(stored_activities(&page).is_empty());
    assert_eq!(
        page.store().status(Zone::Wib).unwrap().pending_changes,
        pending_before
    );

    // A refused edit leaves the activity as it was.
    let answer = page
        .post("/pustakawan/kegiatan", &mut jar, &an_activity(&csrf, &[]))
        .await;
    assert_eq!(answer.status, 303);
    let before = stored_activities(&page);
    let pending = page.store().status(Zone::Wib).unwrap().pending_changes;
    let id = before[0].id.to_string();
    let answer = page
        .post(
            "/pustakawan/kegiatan/ubah",
            &mut jar,
            &an_activity(&csrf, &[("activity", &id), ("date", "2029-12-31")]),
        )
        .await;
    assert_eq!(answer.status, 422);
    // Still the edit of that activity, with what was typed.
    assert!(
        answer
            .body
            .contains(&format!("name=\"activity\" value=\"{id}\""))
    );
    assert!(answer.body.contains("value=\"2029-12-31\""));
    assert_eq!(stored_activities(&page), before);
    assert_eq!(
        page.store().status(Zone::Wib).unwrap().pending_changes,
        pending
    );
}
