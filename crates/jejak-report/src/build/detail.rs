//! The detail export (Data Rinci): one row per public session, desk visit and activity
//! of a month, for the district's own analysis in a spreadsheet. Pseudonymous: a
//! session's patron is the first twelve hex digits of its patron key, which the PC made
//! with the library's secret, so rows of one patron can be told apart from another's
//! and no name or member number can be read from them. Staff sessions and visits the
//! librarian took back are left out, as every report leaves them out.

use chrono::{DateTime, NaiveDate, Utc};
use jejak_domain::{Lang, LibraryCode, PatronProfile, PcCode, RecordBody, Zone};

use super::{col, count, month_code, month_text};
use crate::facts::month_bounds;
use crate::model::{Cell, ColumnKind, Report, Row, Table, Text};

/// A stored session as the detail export shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionDetail {
    /// The library of the PC.
    pub library: LibraryCode,
    /// The PC.
    pub pc: PcCode,
    /// Its start by the server's clock.
    pub start: DateTime<Utc>,
    /// Seconds of use.
    pub duration_secs: u64,
    /// Who used the PC, in categories, with the patron key when there was one.
    pub patron: PatronProfile,
    /// Kibibytes received and sent.
    pub kib: u64,
}

/// What the detail export of a month is made from: every library with its zone, the
/// sessions that may lie in the month (the builder keeps those of its local days) and
/// every stored entry with the time it is dated at (Unix s).
#[derive(Debug, Clone, Default)]
pub struct DetailFacts {
    /// Every library and the zone its days are counted in.
    pub libraries: Vec<(LibraryCode, Zone)>,
    /// Sessions, staff ones and those of other months included (the builder sorts out).
    pub sessions: Vec<SessionDetail>,
    /// Every stored entry's newest version and the time it is dated at, Unix s.
    pub entries: Vec<(RecordBody, i64)>,
}

/// How many hex digits of a patron key the export shows.
const PATRON_DIGITS: usize = 12;

/// The detail export of `month` (any day of it).
pub fn detail_export(
    month: NaiveDate,
    facts: &DetailFacts,
    lang: Lang,
    generated_at: DateTime<Utc>,
) -> Report {
    let (first, next) = month_bounds(month);
    let zone_of = |library: &LibraryCode| {
        facts
            .libraries
            .iter()
            .find(|(code, _)| code == library)
            .map_or(Zone::Wib, |(_, zone)| *zone)
    };
    let in_month = |day: NaiveDate| (first..next).contains(&day);
    let local = |at: DateTime<Utc>, zone: Zone| at.with_timezone(&zone.offset());

    let mut sessions: Vec<&SessionDetail> = facts
        .sessions
        .iter()
        .filter(|s| s.patron.user_kind.counts_publicly())
        .filter(|s| in_month(local(s.start, zone_of(&s.library)).date_naive()))
        .collect();
    sessions.sort_by(|a, b| (&a.library, a.start, &a.pc).cmp(&(&b.library, b.start, &b.pc)));
    let session_rows = sessions
        .iter()
        .map(|s| {
            let at = local(s.start, zone_of(&s.library));
            let purposes: Vec<&str> = s.patron.purposes.iter().map(|p| p.label(lang)).collect();
            Row::new(vec![
                Cell::text(s.library.as_str()),
                Cell::text(s.pc.as_str()),
                Cell::text(at.format("%Y-%m-%d").to_string()),
                Cell::text(at.format("%H:%M").to_string()),
                Cell::number((s.duration_secs as f64 / 60.0).round()),
                Cell::text(s.patron.user_kind.label(lang)),
                Cell::text(s.patron.gender.label(lang)),
                Cell::text(s.patron.age_group.label(lang)),
                Cell::text(purposes.join("; ")),
                count(u64::from(s.patron.group_size)),
                Cell::number(s.kib as f64 * 1024.0 / 1e6),
                s.patron.patron_key.as_ref().map_or(Cell::Empty, |key| {
                    Cell::text(key.as_str().chars().take(PATRON_DIGITS).collect::<String>())
                }),
            ])
        })
        .collect();

    let mut visits = Vec::new();
    let mut activities = Vec::new();
    for (body, at_s) in &facts.entries {
        match body {
            RecordBody::Visit(v) if !v.withdrawn => {
                let Some(at) = DateTime::<Utc>::from_timestamp(*at_s, 0) else {
                    continue;
                };
                let at = local(at, zone_of(&v.library));
                if in_month(at.date_naive()) {
                    visits.push((v.library.clone(), at, v));
                }
            }
            RecordBody::Activity(a) if in_month(a.date) => activities.push(a),
            RecordBody::Visit(_)
            | RecordBody::Activity(_)
            | RecordBody::MemberCount(_)
            | RecordBody::Session(_)
            | RecordBody::PcEvent(_) => {}
        }
    }
    visits.sort_by(|a, b| (&a.0, a.1, a.2.id).cmp(&(&b.0, b.1, b.2.id)));
    activities.sort_by(|a, b| {
        (&a.library, a.date, a.start, a.id).cmp(&(&b.library, b.date, b.start, b.id))
    });
    let visit_rows = visits
        .iter()
        .map(|(library, at, v)| {
            Row::new(vec![
                Cell::text(library.as_str()),
                Cell::text(v.pc.as_str()),
                Cell::text(at.format("%Y-%m-%d").to_string()),
                Cell::text(at.format("%H:%M").to_string()),
                Cell::text(v.user_kind.label(lang)),
                Cell::text(v.gender.label(lang)),
                Cell::text(v.age_group.label(lang)),
                Cell::text(v.purpose.label(lang)),
                count(u64::from(v.people)),
            ])
        })
        .collect();
    let activity_rows = activities
        .iter()
        .map(|a| {
            let by_gender = |gender: jejak_domain::Gender| {
                a.participants
                    .cells()
                    .filter(|(g, _, _)| *g == gender)
                    .map(|(_, _, n)| u64::from(n))
                    .sum::<u64>()
            };
            Row::new(vec![
                Cell::text(a.library.as_str()),
                Cell::text(a.date.format("%Y-%m-%d").to_string()),
                Cell::text(a.start.format("%H:%M").to_string()),
                count(u64::from(a.duration_minutes)),
                Cell::text(a.activity_type.label(lang)),
                Cell::text(a.title.clone()),
                a.partner.clone().map_or(Cell::Empty, Cell::text),
                Cell::text(a.place.label(lang)),
                count(by_gender(jejak_domain::Gender::L)),
                count(by_gender(jejak_domain::Gender::P)),
                count(u64::from(a.participants.total())),
                a.notes.clone().map_or(Cell::Empty, Cell::text),
            ])
        })
        .collect();

    let library_col = || {
        col(
            "library",
            "Kode perpustakaan",
            "Library code",
            ColumnKind::Text,
        )
    };
    let date_col = || col("date", "Tanggal", "Date", ColumnKind::Date);
    let time_col = |key: &str| col(key, "Jam", "Time", ColumnKind::Text);
    let profile_cols = || {
        [
            col("user_kind", "Jenis pengguna", "User kind", ColumnKind::Text),
            col("gender", "Jenis kelamin", "Gender", ColumnKind::Text),
            col("age_group", "Kelompok umur", "Age group", ColumnKind::Text),
        ]
    };
    let mut session_columns = vec![
        library_col(),
        col("pc", "PC", "PC", ColumnKind::Text),
        date_col(),
        time_col("start"),
        col("minutes", "Menit", "Minutes", ColumnKind::Decimal(0)),
    ];
    session_columns.extend(profile_cols());
    session_columns.extend([
        col("purposes", "Tujuan", "Purposes", ColumnKind::Text),
        col("persons", "Orang", "Persons", ColumnKind::Count),
        col("data_mb", "Data (MB)", "Data (MB)", ColumnKind::Decimal(2)),
        col(
            "patron",
            "Pengguna (samaran)",
            "Patron (pseudonym)",
            ColumnKind::Text,
        ),
    ]);
    let mut visit_columns = vec![
        library_col(),
        col("pc", "PC", "PC", ColumnKind::Text),
        date_col(),
        time_col("time"),
    ];
    visit_columns.extend(profile_cols());
    visit_columns.extend([
        col("purpose", "Tujuan", "Purpose", ColumnKind::Text),
        col("people", "Orang", "People", ColumnKind::Count),
    ]);
    let activity_columns = vec![
        library_col(),
        date_col(),
        time_col("start"),
        col("minutes", "Menit", "Minutes", ColumnKind::Count),
        col("type", "Jenis kegiatan", "Activity type", ColumnKind::Text),
        col("title", "Nama kegiatan", "Title", ColumnKind::Text),
        col("partner", "Mitra", "Partner", ColumnKind::Text),
        col("place", "Tempat", "Place", ColumnKind::Text),
        col(
            "participants_l",
            "Peserta L",
            "Participants M",
            ColumnKind::Count,
        ),
        col(
            "participants_p",
            "Peserta P",
            "Participants F",
            ColumnKind::Count,
        ),
        col("participants", "Peserta", "Participants", ColumnKind::Count),
        col("notes", "Catatan", "Notes", ColumnKind::Text),
    ];
    let zone = facts.libraries.first().map_or(Zone::Wib, |(_, z)| *z);
    Report {
        id: format!("data-rinci-{}", month_code(first)),
        title: Text::new("Data Rinci", "Detail Export"),
        subtitle: vec![
            month_text(first),
            Text::new(
                "Satu baris per sesi PC, kunjungan buku tamu dan kegiatan; tanpa sesi petugas dan kunjungan yang dibatalkan; pengguna ditulis dengan samaran.",
                "One row per PC session, visitor-book visit and activity; staff sessions and withdrawn visits left out; patrons as pseudonyms.",
            ),
        ],
        letterhead: Default::default(),
        sections: vec![
            Table {
                id: "sessions".into(),
                title: Text::new("Sesi PC", "PC sessions"),
                columns: session_columns,
                rows: session_rows,
                notes: Vec::new(),
            },
            Table {
                id: "visits".into(),
                title: Text::new("Kunjungan buku tamu", "Visitor-book visits"),
                columns: visit_columns,
                rows: visit_rows,
                notes: Vec::new(),
            },
            Table {
                id: "activities".into(),
                title: Text::new("Kegiatan", "Activities"),
                columns: activity_columns,
                rows: activity_rows,
                notes: Vec::new(),
            },
        ],
        generated_at: generated_at.with_timezone(&zone.offset()),
        landscape: true,
        suppressed_below: None,
        signature: None,
    }
}
