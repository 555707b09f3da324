//! The check-in page's HTML: small server-drawn pages with inline CSS, no scripts, large
//! touch targets. The pages are askama templates (`templates/checkin/`), which escape
//! every value by default; this module turns the page's state into what the templates
//! show (times in the library's zone, durations in words).

use askama::Template;
use chrono::{DateTime, Utc};
use jejak_domain::{
    AgeGroup, Gender, Lang, MemberCount, Purpose, Session, UserKind, Visit, VisitPurpose,
    YearMonth, Zone,
};

use super::activity::{ACTIVITIES_LISTED, ActivityTyped, LISTED_TITLE_CHARS, cell_name, cells};
use super::desk::{DeskNotice, DeskView, combo_value};
use super::{Choices, LibrarianView, MAX_MEMBER_CHARS, Refusal};

/// The most sessions the librarian screen lists, newest first, so the page stays
/// small on a busy day (the count above the table is always complete).
const MAX_ROWS: usize = 40;

/// What every page shows around its body: the title and the language switch. No page
/// reloads itself: a reload restarts a screen reader (WCAG 2.2.1), so pages that show
/// something changing offer a button to look again instead.
struct Frame {
    lang: Lang,
    other_lang: Lang,
    title: &'static str,
    path: &'static str,
}

impl Frame {
    fn new(lang: Lang, title: &'static str, path: &'static str) -> Self {
        let other_lang = match lang {
            Lang::Id => Lang::En,
            Lang::En => Lang::Id,
        };
        Frame {
            lang,
            other_lang,
            title,
            path,
        }
    }
}

/// Renders a page; a template that fails (it cannot, short of a bug) becomes a short
/// plain page rather than a panic.
fn render(page: &impl Template) -> String {
    page.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "check-in page: a template failed");
        "<!DOCTYPE html><html><body><p>Jejak: halaman tidak bisa ditampilkan / the page cannot be shown.</p></body></html>".to_string()
    })
}

/// A duration for people: "1 jam 5 menit" / "1 h 5 min".
pub(super) fn duration(secs: u64, lang: Lang) -> String {
    let minutes = secs / 60;
    let (h, m) = (minutes / 60, minutes % 60);
    match (h, m, lang) {
        (0, 0, _) => lang
            .pick("kurang dari 1 menit", "less than a minute")
            .to_string(),
        (0, m, Lang::Id) => format!("{m} menit"),
        (0, m, Lang::En) => format!("{m} min"),
        (h, m, Lang::Id) => format!("{h} jam {m} menit"),
        (h, m, Lang::En) => format!("{h} h {m} min"),
    }
}

/// A time of day in the library's zone.
pub(super) fn clock_time(at: DateTime<Utc>, zone: Zone) -> String {
    at.with_timezone(&zone.offset()).format("%H:%M").to_string()
}

/// A date and time in the library's zone with the zone's name.
fn date_time(at: DateTime<Utc>, zone: Zone) -> String {
    format!(
        "{} {}",
        at.with_timezone(&zone.offset()).format("%d-%m-%Y %H:%M"),
        zone.label(Lang::Id)
    )
}

/// A few words about each purpose, so the choice is clear without an icon. Short, so
/// that each fits one line of a tile on a 1024-pixel-wide screen.
fn purpose_hint(purpose: Purpose, lang: Lang) -> &'static str {
    match purpose {
        Purpose::Pendidikan => lang.pick("sekolah, kursus, tugas", "study, homework, courses"),
        Purpose::Ekonomi => lang.pick("usaha, jualan, lowongan", "business, selling, jobs"),
        Purpose::Kesehatan => lang.pick("info kesehatan, BPJS", "health information"),
        Purpose::Komunikasi => lang.pick("surel, pesan, medsos", "e-mail, chat, social media"),
        Purpose::Hobi => lang.pick("musik, video, game", "music, video, games"),
        Purpose::Pemerintahan => lang.pick("KTP, pajak, urusan desa", "ID card, taxes, services"),
        Purpose::LiterasiDigital => lang.pick("belajar komputer", "learning computers"),
        Purpose::Lainnya => lang.pick("keperluan lain", "something else"),
    }
}

/// A label cut after each slash ("Pemerintahan/" "layanan publik"), so that the
/// template can let a line break there (`<wbr>`): browsers do not break after a slash
/// on their own, and a tile too narrow for the whole would otherwise cut a word.
fn after_slashes(label: &str) -> Vec<&str> {
    label.split_inclusive('/').collect()
}

/// The check-in form's words for an age group: the group's name and its ages in years
/// (the reports' labels, "Anak (≤12)", are for tables; a patron reads a sentence).
/// "Unknown" is an answer about oneself here, so it reads as declining to say.
fn age_tile(age: AgeGroup, lang: Lang) -> (&'static str, &'static str) {
    match age {
        AgeGroup::Anak => (
            lang.pick("Anak", "Child"),
            lang.pick("≤ 12 tahun", "≤ 12 years"),
        ),
        AgeGroup::Remaja => (
            lang.pick("Remaja", "Teen"),
            lang.pick("13–15 tahun", "13–15 years"),
        ),
        AgeGroup::Pemuda => (
            lang.pick("Pemuda", "Youth"),
            lang.pick("16–30 tahun", "16–30 years"),
        ),
        AgeGroup::Dewasa => (
            lang.pick("Dewasa", "Adult"),
            lang.pick("31–45 tahun", "31–45 years"),
        ),
        AgeGroup::Madya => (
            lang.pick("Dewasa madya", "Middle age"),
            lang.pick("46–59 tahun", "46–59 years"),
        ),
        AgeGroup::Lansia => (
            lang.pick("Lansia", "Senior"),
            lang.pick("≥ 60 tahun", "≥ 60 years"),
        ),
        AgeGroup::Unknown => (prefer_not_to_say(lang), ""),
    }
}

/// The form's words for a gender: "not stated" is an answer about oneself here.
fn gender_tile(gender: Gender, lang: Lang) -> &'static str {
    match gender {
        Gender::X => prefer_not_to_say(lang),
        other => other.label(lang),
    }
}

fn prefer_not_to_say(lang: Lang) -> &'static str {
    lang.pick("Tidak ingin menyebutkan", "Prefer not to say")
}

/// One choice on the check-in form.
struct Tile {
    code: &'static str,
    /// The label, in pieces that may each start a line.
    label: Vec<&'static str>,
    hint: &'static str,
    checked: bool,
}

#[derive(Template)]
#[template(path = "checkin/form.html")]
struct CheckinForm<'a> {
    f: Frame,
    csrf: &'a str,
    /// The patron who just finished, thanked in their language (which may not be the
    /// page's: the page is the next patron's).
    thanks: Option<Lang>,
    filling_in_since: Option<String>,
    replacing: bool,
    errors: &'a [String],
    purposes: Vec<Tile>,
    genders: Vec<Tile>,
    ages: Vec<Tile>,
    member_given: bool,
    member_max: usize,
    group_size: &'a str,
    group_max: u32,
}

/// The check-in form. `choices` are what came back with an error (never the member
/// number); `thanks` thanks the patron who just finished, in their language; `open` is the session open
/// now, which the check-in fills in (a login nobody checked in) or ends first.
pub(super) fn checkin_form(
    lang: Lang,
    csrf: &str,
    choices: &Choices,
    errors: Option<&[String]>,
    thanks: Option<Lang>,
    open: Option<&Session>,
    zone: Zone,
) -> String {
    let unattended = open.filter(|s| super::is_unattended(s));
    let purposes = Purpose::ALL
        .iter()
        .map(|p| Tile {
            code: p.code(),
            label: after_slashes(p.label(lang)),
            hint: purpose_hint(*p, lang),
            checked: choices.purposes.iter().any(|c| c == p.code()),
        })
        .collect();
    let genders = Gender::ALL
        .iter()
        .map(|g| Tile {
            code: g.code(),
            label: after_slashes(gender_tile(*g, lang)),
            hint: "",
            checked: choices.gender.as_deref() == Some(g.code()),
        })
        .collect();
    let ages = AgeGroup::ALL
        .iter()
        .map(|a| {
            let (label, hint) = age_tile(*a, lang);
            Tile {
                code: a.code(),
                label: after_slashes(label),
                hint,
                checked: choices.age.as_deref() == Some(a.code()),
            }
        })
        .collect();
    render(&CheckinForm {
        f: Frame::new(
            lang,
            lang.pick("Mulai memakai komputer", "Start using the computer"),
            "/",
        ),
        csrf,
        thanks,
        filling_in_since: unattended.map(|s| clock_time(s.started_at, zone)),
        replacing: unattended.is_none() && open.is_some(),
        errors: errors.unwrap_or_default(),
        purposes,
        genders,
        ages,
        member_given: choices.member_given,
        member_max: MAX_MEMBER_CHARS,
        group_size: if choices.group_size.is_empty() {
            "1"
        } else {
            &choices.group_size
        },
        group_max: jejak_domain::MAX_GROUP_SIZE,
    })
}

#[derive(Template)]
#[template(path = "checkin/session_open.html")]
struct SessionOpen<'a> {
    f: Frame,
    csrf: &'a str,
    started: String,
    used: String,
    now: String,
}

/// The open session: when it started (which stays true however long the page stays
/// open, so the page never reloads itself), the time used when the page was drawn, and
/// the Finish button.
pub(super) fn session_open(
    lang: Lang,
    csrf: &str,
    session: &Session,
    now: DateTime<Utc>,
    zone: Zone,
) -> String {
    render(&SessionOpen {
        f: Frame::new(lang, lang.pick("Sesi berjalan", "Session in progress"), "/"),
        csrf,
        started: clock_time(session.started_at, zone),
        used: duration(session.duration_secs, lang),
        now: clock_time(now, zone),
    })
}

#[derive(Template)]
#[template(path = "checkin/pin.html")]
struct PinForm<'a> {
    f: Frame,
    csrf: &'a str,
    error: Option<&'a str>,
    pin_set: bool,
    /// When PIN attempts wait: until when, in words.
    wait: Option<&'a str>,
}

/// The PIN form in front of the librarian screen. `wait` says until when PIN attempts
/// wait after wrong ones (the page's own words, see `PinAttempts`).
pub(super) fn pin_form(
    lang: Lang,
    csrf: &str,
    error: Option<&str>,
    pin_set: bool,
    wait: Option<&str>,
) -> String {
    render(&PinForm {
        f: Frame::new(
            lang,
            lang.pick("Layar pustakawan", "Librarian screen"),
            "/pustakawan",
        ),
        csrf,
        error,
        pin_set,
        wait,
    })
}

/// One row of today's sessions on the librarian screen.
struct SessionRow {
    start: String,
    duration: String,
    kind: &'static str,
    purposes: String,
    gender: &'static str,
    age: &'static str,
    end: &'static str,
}

#[derive(Template)]
#[template(path = "checkin/librarian.html")]
struct LibrarianScreen<'a> {
    f: Frame,
    csrf: &'a str,
    running: bool,
    /// The last "sync now": whether it succeeded, and its time and message.
    last_sync: Option<(bool, String)>,
    short_pin: bool,
    summary: Vec<(&'static str, &'static str, String)>,
    enrolled: bool,
    has_open: bool,
    clock_warnings: Vec<String>,
    rejected: Vec<String>,
    sessions: Vec<SessionRow>,
    more_sessions: usize,
    desk: DeskScreen<'a>,
}

/// One radio choice of the desk's forms.
struct Choice {
    code: &'static str,
    /// The label, in pieces that may each start a line (see [`after_slashes`]).
    label: Vec<&'static str>,
    checked: bool,
}

/// The desk on the librarian screen: the visitor book and the member form.
struct DeskScreen<'a> {
    today_people: u32,
    today_entries: usize,
    /// The entry the undo withdraws: its id and a line about it.
    last: Option<(String, String)>,
    genders: Vec<Choice>,
    ages: Vec<Choice>,
    kinds: Vec<Choice>,
    purposes: Vec<Choice>,
    people: &'a str,
    people_max: u32,
    /// The quick buttons: their value and label.
    quick: Vec<(String, String)>,
    visit_errors: &'a [String],
    undone: bool,
    undo_stale: bool,
    /// The months offered: code, label, chosen.
    months: Vec<(String, String, bool)>,
    members: String,
    new_members: String,
    members_max: u32,
    month_last: Option<String>,
    counts: Vec<[String; 4]>,
    member_errors: &'a [String],
    member_saved: bool,
    activity: ActivityForm<'a>,
}

/// The activity form and the activities listed under it.
struct ActivityForm<'a> {
    /// The activity the form changes (its full id); none for a new one.
    editing: Option<String>,
    /// An edit link named no activity of this PC.
    edit_unknown: bool,
    date: String,
    start: String,
    duration: String,
    title: String,
    partner: String,
    notes: String,
    /// The kinds: code, label, selected.
    types: Vec<(&'static str, &'static str, bool)>,
    places: Vec<Choice>,
    /// The participants' grid: the genders across (by their codes, explained above the
    /// grid, so that three columns of numbers fit a phone), an age group a row.
    genders: Vec<(&'static str, &'static str)>,
    rows: Vec<(&'static str, Vec<GridCell>)>,
    duration_max: u32,
    cell_max: u32,
    title_max: usize,
    partner_max: usize,
    notes_max: usize,
    errors: &'a [String],
    saved: bool,
    edited: bool,
    /// Since when the list goes, in words.
    since: String,
    list: Vec<ActivityRow>,
    more: usize,
}

/// One cell of the participants' grid.
struct GridCell {
    /// The form field's name (`p_L_dewasa`).
    name: String,
    /// Its accessible name: the gender and the age group.
    label: String,
    value: String,
}

/// One activity listed under the form.
struct ActivityRow {
    date: String,
    kind: &'static str,
    title: String,
    total: u32,
    /// Its short id, for the edit link.
    short: String,
}

/// `text` cut to `max` characters with an ellipsis when it is longer.
fn shortened(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{}…", cut.trim_end())
}

/// A day by its name: "5 Januari 2031".
fn day_name(day: chrono::NaiveDate, lang: Lang) -> String {
    use chrono::Datelike;
    format!(
        "{} {} {}",
        day.day(),
        lang.month_name(day.month()),
        day.year()
    )
}

fn activity_form<'a>(lang: Lang, desk: &DeskView, notice: &'a DeskNotice) -> ActivityForm<'a> {
    // What the form shows: what was just typed (a refused form), the activity being
    // changed, or a new activity held today at the library.
    let typed = match (&notice.activity_typed, &desk.editing) {
        (Some(typed), _) => typed.clone(),
        (None, Some(activity)) => ActivityTyped::of(activity),
        (None, None) => ActivityTyped {
            date: desk.today.map(|d| d.to_string()).unwrap_or_default(),
            place: jejak_domain::ActivityPlace::DiPerpustakaan
                .code()
                .to_string(),
            cells: vec![String::new(); cells().count()],
            ..ActivityTyped::default()
        },
    };
    let editing = typed.id.clone().filter(|_| desk.editing.is_some());
    let mut values = typed.cells.iter();
    let mut by_cell = std::collections::HashMap::new();
    for (gender, age) in cells() {
        by_cell.insert((gender, age), values.next().cloned().unwrap_or_default());
    }
    let rows = AgeGroup::ALL
        .iter()
        .map(|&age| {
            (
                age.label(lang),
                Gender::ALL
                    .iter()
                    .map(|&gender| GridCell {
                        name: cell_name(gender, age),
                        label: format!("{}, {}", gender.label(lang), age.label(lang)),
                        value: by_cell.get(&(gender, age)).cloned().unwrap_or_default(),
                    })
                    .collect(),
            )
        })
        .collect();
    ActivityForm {
        editing,
        edit_unknown: desk.edit_unknown,
        types: jejak_domain::ActivityType::ALL
            .iter()
            .map(|t| (t.code(), t.label(lang), typed.kind == t.code()))
            .collect(),
        places: jejak_domain::ActivityPlace::ALL
            .iter()
            .map(|p| Choice {
                code: p.code(),
                label: after_slashes(p.label(lang)),
                checked: typed.place == p.code(),
            })
            .collect(),
        genders: Gender::ALL
            .iter()
            .map(|g| (g.code(), g.label(lang)))
            .collect(),
        rows,
        duration_max: jejak_domain::MAX_DURATION_MINUTES,
        cell_max: jejak_domain::MAX_PARTICIPANTS_PER_CELL,
        title_max: jejak_domain::MAX_TITLE_CHARS,
        partner_max: jejak_domain::MAX_PARTNER_CHARS,
        notes_max: jejak_domain::MAX_NOTES_CHARS,
        errors: &notice.activity_errors,
        saved: notice.activity_saved,
        edited: notice.activity_edited,
        since: desk
            .listed_since
            .map(|d| day_name(d, lang))
            .unwrap_or_default(),
        list: desk
            .activities
            .iter()
            .take(ACTIVITIES_LISTED)
            .map(|a| ActivityRow {
                date: day_name(a.date, lang),
                kind: a.activity_type.label(lang),
                title: shortened(&a.title, LISTED_TITLE_CHARS),
                total: a.participants.total(),
                short: crate::store::short_id(&a.id),
            })
            .collect(),
        more: desk.more_activities,
        date: typed.date,
        start: typed.start,
        duration: typed.duration,
        title: typed.title,
        partner: typed.partner,
        notes: typed.notes,
    }
}

/// A month by its name: "November 2026".
fn month_name(month: YearMonth, lang: Lang) -> String {
    format!("{} {}", lang.month_name(month.month()), month.year())
}

/// A visit in a line: when (the date too when `dated`), how many, who (in categories)
/// and why.
fn visit_line(visit: &Visit, dated: bool, lang: Lang, zone: Zone) -> String {
    format!(
        "{} · {} {} · {}, {}, {} · {}",
        if dated {
            date_time(visit.at, zone)
        } else {
            clock_time(visit.at, zone)
        },
        visit.people,
        lang.pick(
            "orang",
            if visit.people == 1 {
                "person"
            } else {
                "people"
            }
        ),
        visit.gender.label(lang),
        visit.age_group.label(lang),
        visit.user_kind.label(lang),
        visit.purpose.label(lang),
    )
}

fn choices<T: Copy + PartialEq>(
    all: &[T],
    code: impl Fn(T) -> &'static str,
    label: impl Fn(T) -> &'static str,
    typed: Option<&str>,
    sticky: Option<T>,
) -> Vec<Choice> {
    all.iter()
        .map(|v| Choice {
            code: code(*v),
            label: after_slashes(label(*v)),
            checked: match typed {
                Some(typed) => typed == code(*v),
                None => sticky == Some(*v),
            },
        })
        .collect()
}

fn desk_screen<'a>(
    lang: Lang,
    desk: &DeskView,
    notice: &'a DeskNotice,
    zone: Zone,
) -> DeskScreen<'a> {
    let typed = notice.visit_typed.as_ref();
    let sticky = desk.sticky;
    let count_line = |m: &MemberCount| {
        format!(
            "{} · {} {} · {} {}",
            date_time(m.at, zone),
            m.members,
            lang.pick("anggota", "members"),
            m.new_members,
            lang.pick("anggota baru", "new members"),
        )
    };
    let (members, new_members) = match (&notice.member_typed, &desk.month_count) {
        (Some(typed), _) => (typed.members.clone(), typed.new_members.clone()),
        (None, Some(count)) => (count.members.to_string(), count.new_members.to_string()),
        (None, None) => (String::new(), String::new()),
    };
    DeskScreen {
        today_people: desk.today_people,
        today_entries: desk.today_entries,
        last: desk.last.as_ref().map(|v| {
            (
                v.id.to_string(),
                visit_line(v, desk.last_before_today, lang, zone),
            )
        }),
        genders: choices(
            Gender::ALL,
            Gender::code,
            |g| g.label(lang),
            typed.map(|t| t.gender.as_str()),
            sticky.map(|s| s.0),
        ),
        ages: choices(
            AgeGroup::ALL,
            AgeGroup::code,
            |a| a.label(lang),
            typed.map(|t| t.age.as_str()),
            sticky.map(|s| s.1),
        ),
        kinds: choices(
            UserKind::VISITORS,
            UserKind::code,
            |k| k.label(lang),
            typed.map(|t| t.kind.as_str()),
            sticky.map(|s| s.2),
        ),
        purposes: choices(
            VisitPurpose::ALL,
            VisitPurpose::code,
            |p| p.label(lang),
            typed.map(|t| t.purpose.as_str()),
            sticky.map(|s| s.3),
        ),
        people: typed.map(|t| t.people.as_str()).unwrap_or("1"),
        people_max: jejak_domain::MAX_VISIT_PEOPLE,
        quick: desk
            .quick
            .iter()
            .map(|c| {
                (
                    combo_value(c),
                    format!(
                        "{} · {} · {} · {}",
                        c.0.label(lang),
                        c.1.label(lang),
                        c.2.label(lang),
                        c.3.label(lang)
                    ),
                )
            })
            .collect(),
        visit_errors: &notice.visit_errors,
        undone: notice.undone,
        undo_stale: notice.undo_stale,
        months: desk
            .months
            .iter()
            .map(|m| (m.to_string(), month_name(*m, lang), Some(*m) == desk.month))
            .collect(),
        members,
        new_members,
        members_max: jejak_domain::MAX_MEMBERS,
        month_last: desk.month_count.as_ref().map(count_line),
        counts: desk
            .counts
            .iter()
            .map(|m| {
                [
                    month_name(m.month, lang),
                    m.members.to_string(),
                    m.new_members.to_string(),
                    date_time(m.at, zone),
                ]
            })
            .collect(),
        member_errors: &notice.member_errors,
        member_saved: notice.member_saved,
        activity: activity_form(lang, desk, notice),
    }
}

/// The librarian screen, with the desk.
pub(super) fn librarian(
    lang: Lang,
    csrf: &str,
    view: &LibrarianView,
    desk: &DeskView,
    notice: &DeskNotice,
    zone: Zone,
) -> String {
    let never = lang.pick("belum pernah", "never");
    let summary = vec![
        (
            "today-count",
            lang.pick("Sesi hari ini", "Sessions today"),
            view.today.len().to_string(),
        ),
        (
            "open-session",
            lang.pick("Sesi berjalan", "Open session"),
            match &view.open {
                Some(s) => format!(
                    "{} {} · {}",
                    lang.pick("sejak", "since"),
                    clock_time(s.started_at, zone),
                    duration(s.duration_secs, lang)
                ),
                None => lang.pick("tidak ada", "none").to_string(),
            },
        ),
        (
            "pending",
            lang.pick("Menunggu sinkron", "Waiting to sync"),
            // The word `jejak status` and `jejak sync` use for the same count.
            format!("{} {}", view.pending, lang.pick("catatan", "records")),
        ),
        (
            "last-success",
            lang.pick("Sinkron terakhir berhasil", "Last successful sync"),
            view.sync
                .last_success
                .map(|t| date_time(t, zone))
                .unwrap_or_else(|| never.to_string()),
        ),
        (
            "last-result",
            lang.pick("Hasil sinkron terakhir", "Last sync result"),
            // The sentence `jejak sync` says; the technical detail stays in the store.
            match (&view.sync.last_attempt, view.sync.last_result_text(lang)) {
                (Some(at), Some(result)) => {
                    let short: String = result.chars().take(240).collect();
                    format!("{} · {short}", date_time(*at, zone))
                }
                _ => "-".to_string(),
            },
        ),
        (
            "rejected",
            lang.pick("Ditolak server", "Rejected by the server"),
            format!(
                "{} {}",
                view.sync.rejected,
                lang.pick(
                    "catatan (disimpan di komputer ini)",
                    "records (kept on this PC)"
                )
            ),
        ),
        (
            "clock",
            lang.pick("Jam komputer", "PC clock"),
            view.clock.advice(lang),
        ),
    ];
    let clock_warnings = view
        .clock_warnings
        .iter()
        .map(|w| {
            format!(
                "{} · {}{}",
                date_time(w.at, zone),
                w.kind.label(lang),
                w.delta_ms
                    .map(|d| format!(" ({:+} s)", d / 1000))
                    .unwrap_or_default()
            )
        })
        .collect();
    let rejected = view
        .rejected
        .iter()
        .map(|r| {
            format!(
                "{} · {} ({})",
                date_time(r.rejected_at, zone),
                r.detail,
                r.code
            )
        })
        .collect();
    let sessions = view
        .today
        .iter()
        .take(MAX_ROWS)
        .map(|s| SessionRow {
            start: clock_time(s.started_at, zone),
            duration: duration(s.duration_secs, lang),
            kind: s.patron.user_kind.label(lang),
            purposes: s
                .patron
                .purposes
                .iter()
                .map(|p| p.label(lang))
                .collect::<Vec<_>>()
                .join(", "),
            gender: s.patron.gender.code(),
            age: s.patron.age_group.label(lang),
            end: s
                .end_reason
                .map(|r| r.label(lang))
                .unwrap_or(lang.pick("(berjalan)", "(open)")),
        })
        .collect();
    render(&LibrarianScreen {
        f: Frame::new(
            lang,
            lang.pick("Layar pustakawan", "Librarian screen"),
            "/pustakawan",
        ),
        csrf,
        running: view.run.running,
        last_sync: view.run.last.as_ref().map(|(at, outcome)| {
            (
                outcome.ok,
                format!("{} · {}", clock_time(*at, zone), outcome.message(lang)),
            )
        }),
        short_pin: view.short_pin,
        summary,
        enrolled: view.enrolled,
        has_open: view.open.is_some(),
        clock_warnings,
        rejected,
        sessions,
        more_sessions: view.today.len().saturating_sub(MAX_ROWS),
        desk: desk_screen(lang, desk, notice, zone),
    })
}

#[derive(Template)]
#[template(path = "checkin/message.html")]
struct Message<'a> {
    f: Frame,
    refusal: Option<&'static str>,
    store_failure: bool,
    text: &'a str,
    link: &'static str,
}

/// The refusal page: what happened and what to do.
pub(super) fn refused(lang: Lang, refusal: Refusal) -> String {
    let why = match refusal {
        Refusal::NotLoopback => lang.pick(
            "Halaman ini hanya bisa dibuka dari komputer ini sendiri.",
            "This page can only be opened on this computer itself.",
        ),
        Refusal::BadHost => lang.pick(
            "Alamat tidak dikenal. Buka halaman ini lewat http://127.0.0.1 atau http://localhost.",
            "Unknown address. Open this page at http://127.0.0.1 or http://localhost.",
        ),
        Refusal::ForeignOrigin => lang.pick(
            "Permintaan dari situs lain ditolak.",
            "A request from another site was refused.",
        ),
        Refusal::MissingCsrf => lang.pick(
            "Formulir ini kedaluwarsa atau tidak berasal dari halaman ini. Buka halaman lagi lalu coba sekali lagi.",
            "This form has expired or did not come from this page. Open the page again and retry.",
        ),
    };
    render(&Message {
        f: Frame::new(
            lang,
            lang.pick("Permintaan ditolak", "Request refused"),
            "/",
        ),
        refusal: Some(refusal.code()),
        store_failure: false,
        text: why,
        link: lang.pick("Ke halaman awal", "To the start page"),
    })
}

pub(super) fn not_found(lang: Lang) -> String {
    render(&Message {
        f: Frame::new(lang, lang.pick("Halaman tidak ada", "No such page"), "/"),
        refusal: None,
        store_failure: false,
        text: "",
        link: lang.pick("Ke halaman awal", "To the start page"),
    })
}

pub(super) fn store_failure(lang: Lang, message: &str) -> String {
    render(&Message {
        f: Frame::new(
            lang,
            lang.pick("Belum bisa mencatat", "Cannot record right now"),
            "/",
        ),
        refusal: None,
        store_failure: true,
        text: message,
        link: lang.pick("Coba lagi", "Try again"),
    })
}
