//! The library's activities (kegiatan) on the librarian screen: a form for an activity
//! with its participants by gender × age group, the activities held lately with a link
//! to change each, written through the store's `add_activity` and `edit_activity` (an
//! edit is the activity's next revision), each committed before the answer goes out.
//!
//! Every value is read before the store is touched, so a typo writes nothing, and the
//! domain's own checks (bounds, the date at most tomorrow and a year back, a title)
//! explain what they refuse in the page's language. The free texts (title, partner,
//! notes) describe the activity and its partner organisation, never a patron: the form
//! says so above them, they are never logged, and the log gets the activity's short id
//! only.

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::NaiveDate;
use jejak_domain::{
    Activity, ActivityPlace, ActivityType, AgeGroup, Gender, Lang, Participants, RecordBody,
    parse_date, parse_time,
};

use super::desk::{DeskNotice, default_month, desk_action, screen};
use super::{Checkin, Fields, FieldsExt, see_other, store_failure};
use crate::store::{ActivityInput, Store, StoreError, short_id};

/// The activities read to list the recent ones: far more than a village library holds
/// in two months.
const ACTIVITIES_READ: u32 = 1000;
/// Activities listed under the form at most, so the screen stays under 30 KB on a busy
/// day (40 sessions listed, the longest texts in the form).
pub(super) const ACTIVITIES_LISTED: usize = 8;
/// The characters of a title the list shows; the form shows it whole.
pub(super) const LISTED_TITLE_CHARS: usize = 60;

/// The activity form as posted, every value as typed.
#[derive(Debug, Default, Clone)]
pub(super) struct ActivityTyped {
    /// The activity an edit changes (its full id); none for a new one.
    pub id: Option<String>,
    pub date: String,
    pub start: String,
    pub duration: String,
    pub kind: String,
    pub title: String,
    pub partner: String,
    pub place: String,
    pub notes: String,
    /// The participant cells, gender-major (as [`cell_name`] names them).
    pub cells: Vec<String>,
}

impl ActivityTyped {
    /// What an activity says, as the form shows it for an edit.
    pub(super) fn of(activity: &Activity) -> ActivityTyped {
        ActivityTyped {
            id: Some(activity.id.to_string()),
            date: activity.date.to_string(),
            start: activity.start.format("%H:%M").to_string(),
            duration: activity.duration_minutes.to_string(),
            kind: activity.activity_type.code().to_string(),
            title: activity.title.clone(),
            partner: activity.partner.clone().unwrap_or_default(),
            place: activity.place.code().to_string(),
            notes: activity.notes.clone().unwrap_or_default(),
            cells: cells()
                .map(|(g, a)| match activity.participants.get(g, a) {
                    0 => String::new(),
                    n => n.to_string(),
                })
                .collect(),
        }
    }
}

/// Every participant cell, gender-major, as the domain orders them.
pub(super) fn cells() -> impl Iterator<Item = (Gender, AgeGroup)> {
    Gender::ALL
        .iter()
        .flat_map(|&g| AgeGroup::ALL.iter().map(move |&a| (g, a)))
}

/// The form field of a participant cell: `p_L_dewasa`.
pub(super) fn cell_name(gender: Gender, age: AgeGroup) -> String {
    format!("p_{}_{}", gender.code(), age.code())
}

/// The activities held on or after the first day of the month the member form starts
/// on (so in a month's first days last month's are still there to correct), newest
/// first by when they were held; at most [`ACTIVITIES_LISTED`], with how many more.
pub(super) fn activities_since(
    store: &Store,
    today: NaiveDate,
) -> Result<(Vec<Activity>, Option<NaiveDate>, usize), StoreError> {
    let since = default_month(today).and_then(|m| NaiveDate::from_ymd_opt(m.year(), m.month(), 1));
    let mut held: Vec<Activity> = store
        .desk_records("activity", ACTIVITIES_READ)?
        .into_iter()
        .filter_map(|r| match r {
            RecordBody::Activity(a) => Some(a),
            _ => None,
        })
        .filter(|a| since.is_none_or(|since| a.date >= since))
        .collect();
    held.sort_by_key(|a| std::cmp::Reverse((a.date, a.start, a.id)));
    let more = held.len().saturating_sub(ACTIVITIES_LISTED);
    held.truncate(ACTIVITIES_LISTED);
    Ok((held, since, more))
}

/// Reads the form: every value, each mistake said once in the page's language. The
/// domain's checks that need the whole activity (the date against today, the bounds of
/// the texts, a title) come when the store validates it.
fn activity_from(form: &Fields, lang: Lang) -> (ActivityTyped, Result<ActivityInput, Vec<String>>) {
    let field = |name: &str| form.get(name).unwrap_or_default().trim().to_string();
    let typed = ActivityTyped {
        id: form
            .get("activity")
            .map(|id| id.trim().to_string())
            .filter(|id| !id.is_empty()),
        date: field("date"),
        start: field("start"),
        duration: field("duration"),
        kind: field("type"),
        title: field("title"),
        partner: field("partner"),
        place: field("place"),
        notes: field("notes"),
        cells: cells().map(|(g, a)| field(&cell_name(g, a))).collect(),
    };
    let mut errors = Vec::new();
    let date = parse_date(&typed.date)
        .map_err(|e| errors.push(e.message(lang)))
        .ok();
    let start = parse_time(&typed.start)
        .map_err(|e| errors.push(e.message(lang)))
        .ok();
    let duration = match typed.duration.parse::<u32>() {
        Ok(minutes) => Some(minutes),
        Err(_) => {
            errors.push(
                lang.pick(
                    "Durasi harus angka menit, 1 sampai 1440.",
                    "The duration must be a number of minutes, 1 to 1440.",
                )
                .to_string(),
            );
            None
        }
    };
    let kind = if typed.kind.is_empty() {
        errors.push(
            lang.pick("Pilih jenis kegiatan.", "Choose the kind of activity.")
                .to_string(),
        );
        None
    } else {
        ActivityType::parse(&typed.kind)
            .map_err(|e| errors.push(e.message(lang)))
            .ok()
    };
    let place = if typed.place.is_empty() {
        errors.push(
            lang.pick(
                "Pilih tempat kegiatan.",
                "Choose where the activity was held.",
            )
            .to_string(),
        );
        None
    } else {
        ActivityPlace::parse(&typed.place)
            .map_err(|e| errors.push(e.message(lang)))
            .ok()
    };
    let mut participants = Participants::default();
    let mut bad_count = false;
    for ((gender, age), raw) in cells().zip(&typed.cells) {
        if raw.is_empty() {
            continue;
        }
        match raw.parse::<u32>() {
            Ok(n) => participants.set(gender, age, n),
            Err(_) => bad_count = true,
        }
    }
    if bad_count {
        errors.push(
            lang.pick(
                "Jumlah peserta harus bilangan bulat 0 atau lebih (kosong berarti 0).",
                "Participant counts must be whole numbers, 0 or more (empty means 0).",
            )
            .to_string(),
        );
    }
    let optional = |text: &str| (!text.is_empty()).then(|| text.to_string());
    let input = match (date, start, duration, kind, place) {
        (Some(date), Some(start), Some(duration_minutes), Some(activity_type), Some(place))
            if errors.is_empty() =>
        {
            Ok(ActivityInput {
                date,
                start,
                duration_minutes,
                activity_type,
                title: typed.title.clone(),
                partner: optional(&typed.partner),
                place,
                participants,
                notes: optional(&typed.notes),
            })
        }
        _ => Err(errors),
    };
    (typed, input)
}

/// The screen with the activity form sent back: what was typed and why it was refused.
fn refused(
    c: &Checkin,
    headers: &HeaderMap,
    status: StatusCode,
    typed: ActivityTyped,
    errors: Vec<String>,
) -> Response {
    let notice = DeskNotice {
        activity_errors: errors,
        activity_typed: Some(typed),
        ..DeskNotice::default()
    };
    screen(c, headers, status, &notice)
}

/// `POST /pustakawan/kegiatan`: a new activity.
pub(super) async fn add_activity(
    State(c): State<Checkin>,
    headers: HeaderMap,
    Form(form): Form<Fields>,
) -> Response {
    desk_action(&c, &headers, &form, |lang| {
        let (mut typed, input) = activity_from(&form, lang);
        // A new activity's form never edits one, whatever a stray field says.
        typed.id = None;
        let input = match input {
            Ok(input) => input,
            Err(errors) => {
                return refused(
                    &c,
                    &headers,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    typed,
                    errors,
                );
            }
        };
        match c.with_store(|store| store.add_activity(input.clone())) {
            Ok(activity) => {
                // The short id only: the texts are the librarian's words, never logged.
                tracing::info!(activity = %short_id(&activity.id), "activity recorded at the librarian screen");
                see_other("/pustakawan?kegiatan_dicatat=1#kegiatan", &[])
            }
            Err(StoreError::Invalid(e)) => refused(
                &c,
                &headers,
                StatusCode::UNPROCESSABLE_ENTITY,
                typed,
                vec![e.message(lang)],
            ),
            Err(e) => store_failure(lang, &e),
        }
    })
}

/// `POST /pustakawan/kegiatan/ubah`: the activity the hidden `activity` field names,
/// changed to what the form says, as its next revision.
pub(super) async fn edit_activity(
    State(c): State<Checkin>,
    headers: HeaderMap,
    Form(form): Form<Fields>,
) -> Response {
    desk_action(&c, &headers, &form, |lang| {
        let (typed, input) = activity_from(&form, lang);
        let unknown = lang.pick(
            "Kegiatan itu tidak ada di komputer ini; tidak ada yang diubah. Pilih \"Ubah\" pada daftar kegiatan.",
            "That activity is not on this PC; nothing was changed. Choose \"Edit\" in the list of activities.",
        );
        let Some(id) = typed.id.clone() else {
            return refused(
                &c,
                &headers,
                StatusCode::NOT_FOUND,
                typed,
                vec![unknown.into()],
            );
        };
        let input = match input {
            Ok(input) => input,
            Err(errors) => {
                return refused(
                    &c,
                    &headers,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    typed,
                    errors,
                );
            }
        };
        match c.with_store(|store| store.edit_activity(&id, |a| *a = input.clone())) {
            Ok(activity) => {
                tracing::info!(activity = %short_id(&activity.id), revision = activity.revision, "activity changed at the librarian screen");
                see_other("/pustakawan?kegiatan_diubah=1#kegiatan", &[])
            }
            Err(StoreError::NoSuchActivity { .. } | StoreError::AmbiguousActivity { .. }) => {
                // Sent back as a new activity's form, so nothing names the unknown id.
                let typed = ActivityTyped { id: None, ..typed };
                refused(
                    &c,
                    &headers,
                    StatusCode::NOT_FOUND,
                    typed,
                    vec![unknown.into()],
                )
            }
            Err(StoreError::Invalid(e)) => refused(
                &c,
                &headers,
                StatusCode::UNPROCESSABLE_ENTITY,
                typed,
                vec![e.message(lang)],
            ),
            Err(e) => store_failure(lang, &e),
        }
    })
}
