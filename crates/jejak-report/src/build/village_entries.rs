//! The village monthly report's tables of the desk's record kinds: visits (buku tamu
//! and PC check-ins together, by the rule of [`VISITS_RULE`]), the member count and the
//! activities. Their counters come from [`LibraryFacts::entry_counts`]; the keys are
//! stated at [`crate::facts::EntryCountFacts`].

use jejak_domain::{ActivityPlace, ActivityType, AgeGroup, Gender, Lang, UserKind, VisitPurpose};

use super::{col, count, gender_cells, gender_columns, gender_index, ratio};
use crate::counters;
use crate::facts::{
    DayVisits, LibraryFacts, VISITS_RULE, library_day_visits, month_count, month_members,
};
use crate::model::{Cell, ColumnKind, Row, Table, Text};

/// The tables, in the order they follow the report's own.
pub(super) fn entry_tables(lib: &LibraryFacts, lang: Lang) -> Vec<Table> {
    vec![
        visits_per_day(lib, lang),
        visitors_by_age_and_gender(lib, lang),
        visitors_by_kind(lib, lang),
        visitors_by_purpose(lib, lang),
        members(lib, lang),
        activities_by(
            lib,
            lang,
            counters::TYPE,
            ActivityType::ALL.iter().map(|t| (t.code(), t.label(lang))),
        ),
        activities_by(
            lib,
            lang,
            counters::PLACE,
            ActivityPlace::ALL.iter().map(|p| (p.code(), p.label(lang))),
        ),
        participants_by_age_and_gender(lib, lang),
    ]
}

/// The note under every table that counts visits by the rule: the rule itself, so that a
/// reader of any one table knows a PC user was not counted twice.
pub(super) fn visits_rule() -> Text {
    Text::new(VISITS_RULE.0, VISITS_RULE.1)
}

/// Visits per local day: the visitor book's people (and of them those who came for the
/// computer), the people checked in at the PCs, and the visits the rule makes of them.
fn visits_per_day(lib: &LibraryFacts, lang: Lang) -> Table {
    let mut total = [0u64; 4];
    let mut rows = Vec::new();
    for (day, parts) in library_day_visits(lib) {
        let DayVisits {
            desk_people: desk,
            desk_computer,
            pc_persons: pcs,
        } = parts;
        let visits = parts.visits();
        for (t, n) in total.iter_mut().zip([desk, desk_computer, pcs, visits]) {
            *t += n;
        }
        rows.push(Row::new(vec![
            Cell::text(day.format("%Y-%m-%d").to_string()),
            count(desk),
            count(desk_computer),
            count(pcs),
            count(visits),
        ]));
    }
    rows.push(Row::total(vec![
        Cell::text(lang.pick("Jumlah", "Total")),
        count(total[0]),
        count(total[1]),
        count(total[2]),
        count(total[3]),
    ]));
    Table {
        id: "visits_daily".into(),
        title: Text::new("I. Kunjungan per Hari", "I. Visits per Day"),
        columns: vec![
            col("day", "Tanggal", "Date", ColumnKind::Date),
            col(
                "desk_people",
                "Pengunjung buku tamu",
                "Visitor-book visitors",
                ColumnKind::Count,
            ),
            col(
                "desk_computer",
                "di antaranya komputer/internet",
                "of whom computer/internet",
                ColumnKind::Count,
            ),
            col(
                "pc_persons",
                "Check-in di PC (orang)",
                "PC check-ins (persons)",
                ColumnKind::Count,
            ),
            col("visits", "Kunjungan", "Visits", ColumnKind::Count),
        ],
        rows,
        notes: vec![visits_rule()],
    }
}

/// The visitor book's people by age group and gender. PC check-ins are not in it (their
/// own cross table is C), so the rule is not used here: the title says "buku tamu".
fn visitors_by_age_and_gender(lib: &LibraryFacts, lang: Lang) -> Table {
    Table {
        id: "visitors_by_age_gender".into(),
        title: Text::new(
            "J. Buku Tamu: Umur × Kelamin",
            "J. Visitor Book: Age × Gender",
        ),
        columns: gender_columns(col(
            "age_group",
            "Kelompok umur",
            "Age group",
            ColumnKind::Text,
        )),
        rows: age_gender_rows(lib, lang, counters::VISIT_PEOPLE),
        notes: Vec::new(),
    }
}

/// The activities' participants by age group and gender.
fn participants_by_age_and_gender(lib: &LibraryFacts, lang: Lang) -> Table {
    Table {
        id: "participants_by_age_gender".into(),
        title: Text::new(
            "P. Peserta: Umur × Kelamin",
            "P. Participants: Age × Gender",
        ),
        columns: gender_columns(col(
            "age_group",
            "Kelompok umur",
            "Age group",
            ColumnKind::Text,
        )),
        rows: age_gender_rows(lib, lang, counters::PARTICIPANTS),
        notes: Vec::new(),
    }
}

/// Rows of age groups split by gender from the counters of `base` by gender and age
/// group, and their total.
fn age_gender_rows(lib: &LibraryFacts, lang: Lang, base: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut total = [0u64; 3];
    for age in AgeGroup::ALL {
        let mut cells = [0u64; 3];
        for gender in Gender::ALL {
            let n = month_count(lib, &counters::by_gender_age(base, *gender, *age));
            cells[gender_index(*gender)] += n;
            total[gender_index(*gender)] += n;
        }
        rows.push(Row::new(gender_cells(age.label(lang).to_string(), cells)));
    }
    rows.push(Row::total(gender_cells(
        lang.pick("Jumlah", "Total").to_string(),
        total,
    )));
    rows
}

/// The visitor book's people and entries by user kind (a desk visitor is never staff).
fn visitors_by_kind(lib: &LibraryFacts, lang: Lang) -> Table {
    let kinds = UserKind::ALL
        .iter()
        .filter(|k| !matches!(k, UserKind::Staf | UserKind::Unknown))
        .map(|k| (k.code(), k.label(lang)));
    Table {
        id: "visitors_by_kind".into(),
        title: Text::new("K. Buku Tamu per Jenis", "K. Visitor Book by Kind"),
        columns: people_columns("user_kind", "Jenis pengguna", "User kind"),
        rows: people_rows(lib, lang, counters::KIND, kinds),
        notes: Vec::new(),
    }
}

/// The visitor book's people and entries by purpose, with each purpose's share.
fn visitors_by_purpose(lib: &LibraryFacts, lang: Lang) -> Table {
    let purposes = VisitPurpose::ALL.iter().map(|p| (p.code(), p.label(lang)));
    Table {
        id: "visitors_by_purpose".into(),
        title: Text::new("L. Buku Tamu per Tujuan", "L. Visitor Book by Purpose"),
        columns: people_columns("purpose", "Tujuan kunjungan", "Purpose"),
        rows: people_rows(lib, lang, counters::PURPOSE, purposes),
        notes: Vec::new(),
    }
}

fn people_columns(key: &str, id: &str, en: &str) -> Vec<crate::model::Column> {
    vec![
        col(key, id, en, ColumnKind::Text),
        col("entries", "Entri", "Entries", ColumnKind::Count),
        col("people", "Orang", "People", ColumnKind::Count),
        col("share", "% orang", "% people", ColumnKind::Percent(1)),
    ]
}

/// One row per `(code, label)` from the visitor book's entries and people broken down
/// by `part` ([`counters::KIND`] or [`counters::PURPOSE`]), and the total.
fn people_rows<'a>(
    lib: &LibraryFacts,
    lang: Lang,
    part: &str,
    values: impl Iterator<Item = (&'a str, &'a str)>,
) -> Vec<Row> {
    let people_total = month_count(lib, counters::VISIT_PEOPLE);
    let mut rows: Vec<Row> = values
        .map(|(code, label)| {
            let people = month_count(lib, &counters::by(counters::VISIT_PEOPLE, part, code));
            Row::new(vec![
                Cell::text(label),
                count(month_count(
                    lib,
                    &counters::by(counters::VISIT_ENTRIES, part, code),
                )),
                count(people),
                ratio(people as f64, people_total as f64),
            ])
        })
        .collect();
    rows.push(Row::total(vec![
        Cell::text(lang.pick("Jumlah", "Total")),
        count(month_count(lib, counters::VISIT_ENTRIES)),
        count(people_total),
        Cell::Empty,
    ]));
    rows
}

/// The member count the librarian entered for the month: members at its end and the new
/// members of the month (a month without one shows an empty cell, never a zero it did
/// not say).
fn members(lib: &LibraryFacts, lang: Lang) -> Table {
    let members = month_members(lib);
    let value = |pick: fn((u64, u64)) -> u64| members.map_or(Cell::Empty, |m| count(pick(m)));
    Table {
        id: "members".into(),
        title: Text::new("M. Anggota", "M. Members"),
        columns: vec![
            col("item", "Keterangan", "Item", ColumnKind::Text),
            col("value", "Jumlah", "Count", ColumnKind::Count),
        ],
        rows: vec![
            Row::new(vec![
                Cell::text(lang.pick("Anggota pada akhir bulan", "Members at month end")),
                value(|(members, _)| members),
            ]),
            Row::new(vec![
                Cell::text(lang.pick("Anggota baru bulan ini", "New members this month")),
                value(|(_, new)| new),
            ]),
        ],
        notes: Vec::new(),
    }
}

/// Activities and their participants by type or by place (`part`), and the total.
fn activities_by<'a>(
    lib: &LibraryFacts,
    lang: Lang,
    part: &str,
    values: impl Iterator<Item = (&'a str, &'a str)>,
) -> Table {
    let mut rows: Vec<Row> = values
        .map(|(code, label)| {
            Row::new(vec![
                Cell::text(label),
                count(month_count(
                    lib,
                    &counters::by(counters::ACTIVITIES, part, code),
                )),
                count(month_count(
                    lib,
                    &counters::by(counters::PARTICIPANTS, part, code),
                )),
            ])
        })
        .collect();
    rows.push(Row::total(vec![
        Cell::text(lang.pick("Jumlah", "Total")),
        count(month_count(lib, counters::ACTIVITIES)),
        count(month_count(lib, counters::PARTICIPANTS)),
    ]));
    let (id, title, first) = if part == counters::TYPE {
        (
            "activities_by_type",
            Text::new("N. Kegiatan per Jenis", "N. Activities by Type"),
            col("type", "Jenis kegiatan", "Activity type", ColumnKind::Text),
        )
    } else {
        (
            "activities_by_place",
            Text::new("O. Kegiatan per Tempat", "O. Activities by Place"),
            col("place", "Tempat", "Place", ColumnKind::Text),
        )
    };
    Table {
        id: id.into(),
        title,
        columns: vec![
            first,
            col("activities", "Kegiatan", "Activities", ColumnKind::Count),
            col("participants", "Peserta", "Participants", ColumnKind::Count),
        ],
        rows,
        notes: Vec::new(),
    }
}
