//! The librarian's desk on the librarian screen: the visitor book (buku tamu digital)
//! and the library's member count of a month, written through the store's desk calls
//! (`add_visit`, `undo_last_visit`, `set_member_count`), each committed before the
//! answer goes out.
//!
//! The visitor book is kept for a busy desk: the four categories (gender, age group,
//! user kind, purpose) are radio choices that start on the last visit's values, so a run
//! of similar visitors is one tap each on "Catat"; the combinations entered most often
//! lately are buttons of their own (one visitor each); a group is one entry with its
//! size. The undo names the entry it withdraws (its id travels with the form), so a
//! second tap of the same undo button withdraws nothing more; a fresh undo withdraws
//! the entry before. Nothing on the desk asks for or shows a name.

use std::collections::HashMap;

use axum::extract::{Form, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{Datelike, Days};
use jejak_domain::{
    Activity, AgeGroup, Gender, Lang, MemberCount, RecordBody, UserKind, Visit, VisitPurpose,
    YearMonth, check_people,
};
use serde::Deserialize;

use super::activity::{ActivityTyped, activities_since};
use super::{
    Checkin, Fields, FieldsExt, PageQuery, Refusal, cookie_lang, html, language, librarian_view,
    pages, refuse, see_other, store_failure,
};
use crate::store::{StoreError, VisitInput};

/// The visits read to count today's and to find the most frequent combinations: far
/// more than a village library's busiest day (the entries are the newest first).
const VISITS_READ: u32 = 1000;
/// The latest visits whose combinations make the quick buttons.
const QUICK_FROM: usize = 300;
/// Quick buttons at most.
const QUICK_BUTTONS: usize = 4;
/// Member counts listed under the form.
const COUNTS_LISTED: u32 = 6;
/// Months the member form offers, the current one included.
const MONTHS_OFFERED: u32 = 13;
/// Until this day of a month the member form starts on the previous month, whose
/// count the member book closes at its end.
const PREVIOUS_MONTH_UNTIL_DAY: u32 = 10;

/// One visitor's categories.
pub(super) type Combination = (Gender, AgeGroup, UserKind, VisitPurpose);

/// What the desk shows on the librarian screen.
#[derive(Debug, Default)]
pub(super) struct DeskView {
    /// People counted today (groups with their size) and the entries they came in.
    pub today_people: u32,
    pub today_entries: usize,
    /// The latest visit still counted: the one the undo withdraws.
    pub last: Option<Visit>,
    /// The latest visit was entered on an earlier day (the screen then gives its date).
    pub last_before_today: bool,
    /// The choices the form starts on: the last visit's.
    pub sticky: Option<Combination>,
    /// The combinations entered most often lately, most frequent first.
    pub quick: Vec<Combination>,
    /// The months the member form offers, newest first, and the one chosen.
    pub months: Vec<YearMonth>,
    pub month: Option<YearMonth>,
    /// What was last entered for the chosen month.
    pub month_count: Option<MemberCount>,
    /// The latest months entered.
    pub counts: Vec<MemberCount>,
    /// The day it is in the library's zone: the activity form's default date.
    pub today: Option<chrono::NaiveDate>,
    /// The activities listed under the activity form, held on or after `listed_since`,
    /// newest first, and how many more there are than the list shows.
    pub activities: Vec<Activity>,
    pub listed_since: Option<chrono::NaiveDate>,
    pub more_activities: usize,
    /// The activity the form edits (`?kegiatan=<id>`), when it names one.
    pub editing: Option<Activity>,
    /// `?kegiatan=` named no activity of this PC.
    pub edit_unknown: bool,
}

/// What the desk's forms say back: an error with what was typed, or a word of success.
#[derive(Debug, Default, Clone)]
pub(super) struct DeskNotice {
    pub visit_errors: Vec<String>,
    /// The visit form's choices as posted (for a form sent back with an error).
    pub visit_typed: Option<VisitTyped>,
    pub undone: bool,
    pub undo_stale: bool,
    pub member_errors: Vec<String>,
    pub member_typed: Option<MemberTyped>,
    pub member_saved: bool,
    pub activity_errors: Vec<String>,
    /// The activity form as posted (for a form sent back with an error).
    pub activity_typed: Option<ActivityTyped>,
    pub activity_saved: bool,
    pub activity_edited: bool,
}

/// The member form as posted.
#[derive(Debug, Default, Clone)]
pub(super) struct MemberTyped {
    pub month: String,
    pub members: String,
    pub new_members: String,
}

/// The visit form as posted.
#[derive(Debug, Default, Clone)]
pub(super) struct VisitTyped {
    pub gender: String,
    pub age: String,
    pub kind: String,
    pub purpose: String,
    pub people: String,
}

/// The month the member form starts on, on `today`.
pub(super) fn default_month(today: chrono::NaiveDate) -> Option<YearMonth> {
    let day = if today.day() <= PREVIOUS_MONTH_UNTIL_DAY {
        today.with_day(1)?.checked_sub_days(Days::new(1))?
    } else {
        today
    };
    YearMonth::of(day)
}

/// The months the member form offers on `today`, newest first.
fn offered_months(today: chrono::NaiveDate) -> Vec<YearMonth> {
    let mut months = Vec::new();
    let mut day = today.with_day(1);
    while let Some(first) = day {
        if months.len() as u32 == MONTHS_OFFERED {
            break;
        }
        if let Some(month) = YearMonth::of(first) {
            months.push(month);
        }
        day = first
            .checked_sub_days(Days::new(1))
            .and_then(|d| d.with_day(1));
    }
    months
}

/// Reads the desk's view from the store; `month` is the member form's month when the
/// page was asked for one, `edit` the activity the activity form edits (its id or short
/// id) when one was asked for.
pub(super) fn desk_view(
    c: &Checkin,
    month: Option<YearMonth>,
    edit: Option<&str>,
) -> Result<DeskView, StoreError> {
    let zone = c.settings().zone;
    c.with_store(|store| {
        let today = store
            .clock()
            .wall()
            .with_timezone(&zone.offset())
            .date_naive();
        let visits: Vec<Visit> = store
            .desk_records("visit", VISITS_READ)?
            .into_iter()
            .filter_map(|r| match r {
                RecordBody::Visit(v) => Some(v),
                _ => None,
            })
            .collect();
        // Ordered by the seq of each record's newest revision: a withdrawn visit moved
        // up with its undo, so the first one still counted is the latest entered.
        let counted: Vec<&Visit> = visits.iter().filter(|v| !v.withdrawn).collect();
        let todays = counted
            .iter()
            .filter(|v| v.at.with_timezone(&zone.offset()).date_naive() == today);
        let (today_people, today_entries) = todays.fold((0u32, 0usize), |(people, entries), v| {
            (people.saturating_add(v.people), entries + 1)
        });
        let mut tally: HashMap<Combination, (usize, usize)> = HashMap::new();
        for (recency, v) in counted.iter().take(QUICK_FROM).enumerate() {
            let entry = tally
                .entry((v.gender, v.age_group, v.user_kind, v.purpose))
                .or_insert((0, recency));
            entry.0 += 1;
        }
        let mut quick: Vec<(Combination, (usize, usize))> = tally.into_iter().collect();
        // Most frequent first; between equals, the one entered last.
        quick.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.1.1.cmp(&b.1.1)));
        let counts: Vec<MemberCount> = store
            .desk_records("member_count", 240)?
            .into_iter()
            .filter_map(|r| match r {
                RecordBody::MemberCount(m) => Some(m),
                _ => None,
            })
            .collect();
        let months = offered_months(today);
        let month = month
            .filter(|m| months.contains(m))
            .or_else(|| default_month(today));
        let month_count = counts.iter().find(|m| Some(m.month) == month).cloned();
        let mut listed = counts.clone();
        listed.sort_by_key(|m| std::cmp::Reverse(m.month));
        listed.truncate(COUNTS_LISTED as usize);
        let (activities, listed_since, more_activities) = activities_since(store, today)?;
        let (editing, edit_unknown) = match edit {
            None => (None, false),
            Some(id) => match store.find_activity(id) {
                Ok(activity) => (Some(activity), false),
                Err(StoreError::NoSuchActivity { .. } | StoreError::AmbiguousActivity { .. }) => {
                    (None, true)
                }
                Err(e) => return Err(e),
            },
        };
        Ok(DeskView {
            today_people,
            today_entries,
            last: counted.first().map(|v| (*v).clone()),
            last_before_today: counted
                .first()
                .is_some_and(|v| v.at.with_timezone(&zone.offset()).date_naive() < today),
            sticky: counted
                .first()
                .map(|v| (v.gender, v.age_group, v.user_kind, v.purpose)),
            quick: quick
                .into_iter()
                .take(QUICK_BUTTONS)
                .map(|(combination, _)| combination)
                .collect(),
            months,
            month,
            month_count,
            counts: listed,
            today: Some(today),
            activities,
            listed_since,
            more_activities,
            editing,
            edit_unknown,
        })
    })
}

/// The librarian screen with the desk's word, or the PIN form's redirect.
pub(super) fn screen(
    c: &Checkin,
    headers: &HeaderMap,
    status: StatusCode,
    notice: &DeskNotice,
) -> Response {
    let query = PageQuery::default();
    let (lang, _) = language(c, &query, headers);
    let (csrf, csrf_cookie) = c.csrf(headers);
    let month = notice
        .member_typed
        .as_ref()
        .and_then(|typed| YearMonth::parse(&typed.month).ok());
    // A refused edit stays an edit of the same activity.
    let edit = notice
        .activity_typed
        .as_ref()
        .and_then(|typed| typed.id.as_deref());
    match (librarian_view(c), desk_view(c, month, edit)) {
        (Ok(view), Ok(desk)) => html(
            status,
            pages::librarian(lang, &csrf, &view, &desk, notice, c.settings().zone),
            &[csrf_cookie],
        ),
        (Err(e), _) | (_, Err(e)) => store_failure(lang, &e),
    }
}

/// Runs a desk form's `action` once the form passes the checks every desk form passes
/// first: the CSRF token, then a signed-in librarian (signed out, the form goes back to
/// the PIN form and nothing is written). Each desk form renews the sign-in, so a
/// librarian keeping the visitor book at a busy desk is not signed out in the middle of
/// it; 15 minutes without one still end it.
pub(super) fn desk_action(
    c: &Checkin,
    headers: &HeaderMap,
    form: &Fields,
    action: impl FnOnce(Lang) -> Response,
) -> Response {
    let lang = cookie_lang(c, headers);
    if !c.csrf_ok(headers, form) {
        return refuse(lang, Refusal::MissingCsrf);
    }
    let Some(renewed) = c.renew_librarian(headers) else {
        return see_other("/pustakawan", &[]);
    };
    let mut response = action(lang);
    response.headers_mut().append(SET_COOKIE, renewed);
    response
}

/// Reads a visit from the form: a quick button's `combo` (one visitor), or the four
/// choices and the number of people.
fn visit_from(form: &Fields, lang: Lang) -> Result<VisitInput, Box<(VisitTyped, Vec<String>)>> {
    let (typed, quick) = match form.get("combo") {
        Some(combo) => {
            let parts: Vec<&str> = combo.split('.').collect();
            let part = |i: usize| parts.get(i).copied().unwrap_or_default().to_string();
            (
                VisitTyped {
                    gender: part(0),
                    age: part(1),
                    kind: part(2),
                    purpose: part(3),
                    people: "1".into(),
                },
                true,
            )
        }
        None => (
            VisitTyped {
                gender: form.get("gender").unwrap_or_default().to_string(),
                age: form.get("age").unwrap_or_default().to_string(),
                kind: form.get("kind").unwrap_or_default().to_string(),
                purpose: form.get("purpose").unwrap_or_default().to_string(),
                people: form.get("people").unwrap_or("1").trim().to_string(),
            },
            false,
        ),
    };
    let mut errors = Vec::new();
    let gender = choice(
        &typed.gender,
        Gender::parse,
        ("Pilih jenis kelamin.", "Choose a gender."),
        lang,
        &mut errors,
    );
    let age_group = choice(
        &typed.age,
        AgeGroup::parse,
        ("Pilih kelompok umur.", "Choose an age group."),
        lang,
        &mut errors,
    );
    // Only the visitor book's kinds: staff and "unknown" are not visitors.
    let user_kind = choice(
        &typed.kind,
        |raw| {
            UserKind::parse(raw).and_then(|k| {
                if UserKind::VISITORS.contains(&k) {
                    Ok(k)
                } else {
                    Err(jejak_domain::DomainError::NotAVisitorKind { given: k.code() })
                }
            })
        },
        ("Pilih kriteria pengunjung.", "Choose a visitor kind."),
        lang,
        &mut errors,
    );
    let purpose = choice(
        &typed.purpose,
        VisitPurpose::parse,
        (
            "Pilih tujuan kunjungan.",
            "Choose the purpose of the visit.",
        ),
        lang,
        &mut errors,
    );
    let people = match typed
        .people
        .parse::<u32>()
        .ok()
        .filter(|n| check_people(*n).is_ok())
    {
        Some(n) => Some(n),
        None => {
            errors.push(
                lang.pick(
                    "Jumlah orang harus angka 1 sampai 500.",
                    "The number of people must be 1 to 500.",
                )
                .to_string(),
            );
            None
        }
    };
    match (gender, age_group, user_kind, purpose, people) {
        (Some(gender), Some(age_group), Some(user_kind), Some(purpose), Some(people))
            if errors.is_empty() =>
        {
            Ok(VisitInput {
                gender,
                age_group,
                user_kind,
                purpose,
                people,
            })
        }
        // A quick button that was refused comes back as the form's choices, so the
        // librarian sees what it was.
        _ => Err(Box::new((
            VisitTyped {
                people: if quick {
                    "1".into()
                } else {
                    typed.people.clone()
                },
                ..typed
            },
            errors,
        ))),
    }
}

/// One of the form's choices: `missing` when none was made, the vocabulary's own
/// message (with the allowed values) when it is not one of them.
fn choice<T>(
    given: &str,
    parse: impl Fn(&str) -> Result<T, jejak_domain::DomainError>,
    missing: (&str, &str),
    lang: Lang,
    errors: &mut Vec<String>,
) -> Option<T> {
    if given.is_empty() {
        errors.push(lang.pick(missing.0, missing.1).to_string());
        return None;
    }
    parse(given).map_err(|e| errors.push(e.message(lang))).ok()
}

/// `POST /pustakawan/tamu`: one visitor (or a group) in the visitor book.
pub(super) async fn add_visit(
    State(c): State<Checkin>,
    headers: HeaderMap,
    Form(form): Form<Fields>,
) -> Response {
    desk_action(&c, &headers, &form, |lang| {
        add_visit_now(&c, &headers, &form, lang)
    })
}

fn add_visit_now(c: &Checkin, headers: &HeaderMap, form: &Fields, lang: Lang) -> Response {
    let input = match visit_from(form, lang) {
        Ok(input) => input,
        Err(refused) => {
            let (typed, errors) = *refused;
            let notice = DeskNotice {
                visit_errors: errors,
                visit_typed: Some(typed),
                ..DeskNotice::default()
            };
            return screen(c, headers, StatusCode::UNPROCESSABLE_ENTITY, &notice);
        }
    };
    match c.with_store(|store| store.add_visit(input)) {
        Ok(visit) => {
            // The id and the size only: categories are patron data of a kind.
            tracing::info!(visit = %visit.id, people = visit.people, "visit recorded at the librarian screen");
            see_other("/pustakawan#buku-tamu", &[])
        }
        Err(StoreError::Invalid(e)) => {
            let notice = DeskNotice {
                visit_errors: vec![e.message(lang)],
                ..DeskNotice::default()
            };
            screen(c, headers, StatusCode::UNPROCESSABLE_ENTITY, &notice)
        }
        Err(e) => store_failure(lang, &e),
    }
}

/// `POST /pustakawan/tamu/batal`: withdraws the visit the form names, when it is still
/// the latest one counted.
pub(super) async fn undo_visit(
    State(c): State<Checkin>,
    headers: HeaderMap,
    Form(form): Form<Fields>,
) -> Response {
    desk_action(&c, &headers, &form, |lang| {
        undo_visit_now(&c, &headers, &form, lang)
    })
}

fn undo_visit_now(c: &Checkin, headers: &HeaderMap, form: &Fields, lang: Lang) -> Response {
    let named = form
        .get("visit")
        .and_then(|v| uuid::Uuid::parse_str(v).ok());
    // The check and the undo under the one lock of the page's store connection: no
    // other tap of this page comes in between.
    let outcome = c.with_store(|store| {
        let latest = store
            .desk_records("visit", VISITS_READ)?
            .into_iter()
            .find_map(|r| match r {
                RecordBody::Visit(v) if !v.withdrawn => Some(v.id),
                _ => None,
            });
        match latest {
            Some(id) if Some(id) == named => store.undo_last_visit().map(Some),
            _ => Ok(None),
        }
    });
    match outcome {
        Ok(Some(visit)) => {
            tracing::info!(visit = %visit.id, "visit undone at the librarian screen");
            see_other("/pustakawan?dibatalkan=1#buku-tamu", &[])
        }
        // Already undone (a second tap of the same button, another tab): nothing more
        // is withdrawn, and the screen says which entry an undo would take now.
        Ok(None) => {
            let notice = DeskNotice {
                undo_stale: true,
                ..DeskNotice::default()
            };
            screen(c, headers, StatusCode::CONFLICT, &notice)
        }
        Err(e) => store_failure(lang, &e),
    }
}

/// `POST /pustakawan/anggota`: the member count of a month.
pub(super) async fn set_member_count(
    State(c): State<Checkin>,
    headers: HeaderMap,
    Form(form): Form<Fields>,
) -> Response {
    desk_action(&c, &headers, &form, |lang| {
        set_member_count_now(&c, &headers, &form, lang)
    })
}

fn set_member_count_now(c: &Checkin, headers: &HeaderMap, form: &Fields, lang: Lang) -> Response {
    let month_raw = form.get("month").unwrap_or_default().trim().to_string();
    let members_raw = form.get("members").unwrap_or_default().trim().to_string();
    let new_raw = form
        .get("new_members")
        .unwrap_or_default()
        .trim()
        .to_string();
    let zone = c.settings().zone;
    let today = c.wall_now().with_timezone(&zone.offset()).date_naive();
    let mut errors = Vec::new();
    let month = match YearMonth::parse(&month_raw) {
        Ok(month) if YearMonth::of(today).is_some_and(|now| month > now) => {
            errors.push(
                lang.pick(
                    "Bulan itu belum tiba: pilih bulan ini atau bulan yang sudah lewat.",
                    "That month has not come yet: choose this month or an earlier one.",
                )
                .to_string(),
            );
            None
        }
        Ok(month) => Some(month),
        Err(e) => {
            errors.push(e.message(lang));
            None
        }
    };
    let mut number = |raw: &str, what: (&str, &str)| match raw.parse::<u32>() {
        Ok(n) => Some(n),
        Err(_) => {
            errors.push(format!(
                "{} {}",
                lang.pick(what.0, what.1),
                lang.pick(
                    "harus bilangan bulat 0 atau lebih.",
                    "must be a whole number, 0 or more."
                )
            ));
            None
        }
    };
    let members = number(&members_raw, ("Jumlah anggota", "Members"));
    let new_members = number(&new_raw, ("Anggota baru", "New members"));
    let refused = |errors: Vec<String>| {
        let notice = DeskNotice {
            member_errors: errors,
            member_typed: Some(MemberTyped {
                month: month_raw.clone(),
                members: members_raw.clone(),
                new_members: new_raw.clone(),
            }),
            ..DeskNotice::default()
        };
        screen(c, headers, StatusCode::UNPROCESSABLE_ENTITY, &notice)
    };
    let (Some(month), Some(members), Some(new_members), true) =
        (month, members, new_members, errors.is_empty())
    else {
        return refused(errors);
    };
    match c.with_store(|store| store.set_member_count(month, members, new_members)) {
        Ok(count) => {
            tracing::info!(month = %count.month, revision = count.revision, "member count set at the librarian screen");
            see_other(
                &format!("/pustakawan?bulan={month}&disimpan=1#anggota"),
                &[],
            )
        }
        Err(StoreError::Invalid(e)) => refused(vec![e.message(lang)]),
        Err(e) => store_failure(lang, &e),
    }
}

/// The query the librarian screen takes for the desk.
#[derive(Debug, Default, Deserialize)]
pub(super) struct DeskQuery {
    /// The member form's month, `YYYY-MM`.
    pub bulan: Option<String>,
    /// `1`: the last visit was just undone.
    pub dibatalkan: Option<String>,
    /// `1`: the member count was just saved.
    pub disimpan: Option<String>,
    /// The activity the activity form edits: its id or short id.
    pub kegiatan: Option<String>,
    /// `1`: an activity was just recorded.
    pub kegiatan_dicatat: Option<String>,
    /// `1`: an activity was just changed.
    pub kegiatan_diubah: Option<String>,
}

impl DeskQuery {
    pub(super) fn month(&self) -> Option<YearMonth> {
        self.bulan.as_deref().and_then(|m| YearMonth::parse(m).ok())
    }

    pub(super) fn notice(&self) -> DeskNotice {
        DeskNotice {
            undone: self.dibatalkan.is_some(),
            member_saved: self.disimpan.is_some(),
            activity_saved: self.kegiatan_dicatat.is_some(),
            activity_edited: self.kegiatan_diubah.is_some(),
            ..DeskNotice::default()
        }
    }
}

/// The quick button's value for a combination, as [`visit_from`] reads it back.
pub(super) fn combo_value(c: &Combination) -> String {
    format!(
        "{}.{}.{}.{}",
        c.0.code(),
        c.1.code(),
        c.2.code(),
        c.3.code()
    )
}

#[cfg(test)]
pub(super) fn default_month_for_tests(today: chrono::NaiveDate) -> YearMonth {
    default_month(today).unwrap_or_else(|| panic!("no month for {today}"))
}
