//! The IPLM sheet (Indeks Pembangunan Literasi Masyarakat): a year's figures per village
//! library as the district enters them in the national data collection — visits per
//! day served, members, participants in activities and in socialisation/KIE apart — and
//! the PC and internet service, with a table that defines every figure.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use jejak_domain::{DetailField, Lang, LibraryCode, Zone};

use super::services::Services;
use super::{
    LibraryMonth, Sum, col, count, data_mb_column,
    district::{by_kecamatan, kecamatan_total_label},
    internet_uptime_column, ratio, sessions_column,
};
use crate::facts::{LibraryFacts, MonthFacts};
use crate::model::{Cell, ColumnKind, Report, Row, Table, Text};

/// The IPLM sheet of `year` from the month facts of its months (in order). A library
/// appears if any month has it; its name and details are the latest month's.
pub fn iplm_sheet(
    year: i32,
    months: &[MonthFacts],
    lang: Lang,
    generated_at: DateTime<Utc>,
) -> Report {
    let mut years: BTreeMap<&LibraryCode, (YearFigures, &LibraryFacts)> = BTreeMap::new();
    for month in months {
        for lib in &month.libraries {
            let figures = YearFigures::of_month(lib);
            years
                .entry(&lib.code)
                .and_modify(|(year, latest)| {
                    year.add_later_month(&figures);
                    *latest = lib;
                })
                .or_insert((figures, lib));
        }
    }
    let grouped = years.values().any(|(_, l)| l.details.kecamatan.is_some());
    let mut rows = Vec::new();
    let mut district = YearFigures::default();
    for (kecamatan, libraries) in by_kecamatan(years.values().map(|(_, lib)| *lib)) {
        let mut group = YearFigures::default();
        for lib in libraries {
            let Some((figures, _)) = years.get(&lib.code) else {
                continue;
            };
            let detail =
                |field: DetailField| lib.details.get(field).map_or(Cell::Empty, Cell::text);
            let mut cells = vec![
                Cell::text(lib.name.clone()),
                Cell::text(lib.code.as_str()),
                detail(DetailField::Npp),
                detail(DetailField::Desa),
                detail(DetailField::Kecamatan),
            ];
            cells.extend(figures.cells());
            rows.push(Row::new(cells));
            group.add_library(figures);
        }
        if grouped {
            let label = kecamatan_total_label(kecamatan);
            rows.push(group.total_row(label.get(lang), kecamatan.unwrap_or("")));
        }
        district.add_library(&group);
    }
    rows.push(district.total_row(lang.pick("Jumlah", "Total"), ""));
    let zone = years.values().next().map_or(Zone::Wib, |(_, l)| l.timezone);
    let columns = [
        col("library", "Perpustakaan", "Library", ColumnKind::Text),
        col("code", "Kode", "Code", ColumnKind::Text),
        col("npp", "NPP", "NPP", ColumnKind::Text),
        col("desa", "Desa", "Village (desa)", ColumnKind::Text),
        col("kecamatan", "Kecamatan", "Sub-district", ColumnKind::Text),
        col(
            "days_served",
            "Hari layanan",
            "Days served",
            ColumnKind::Count,
        ),
        col("visits", "Kunjungan", "Visits", ColumnKind::Count),
        col(
            "visits_per_day",
            "Kunjungan per hari",
            "Visits per day",
            ColumnKind::Decimal(1),
        ),
        col("members", "Anggota", "Members", ColumnKind::Count),
        col(
            "new_members",
            "Anggota baru",
            "New members",
            ColumnKind::Count,
        ),
        col("activities", "Kegiatan", "Activities", ColumnKind::Count),
        col(
            "participants",
            "Peserta kegiatan",
            "Participants",
            ColumnKind::Count,
        ),
        col(
            "participants_kie",
            "Peserta sosialisasi/KIE",
            "Socialisation/KIE participants",
            ColumnKind::Count,
        ),
        col("pcs", "PC", "PCs", ColumnKind::Count),
        sessions_column(),
        col(
            "pc_users",
            "Pengguna PC (orang)",
            "PC users (persons)",
            ColumnKind::Count,
        ),
        col(
            "hours",
            "Jam pemakaian PC",
            "PC hours",
            ColumnKind::Decimal(1),
        ),
        data_mb_column(),
        internet_uptime_column(),
    ]
    .into_iter()
    .collect();
    Report {
        id: format!("iplm-{year}"),
        title: Text::new(
            "Lembar Data IPLM Perpustakaan Desa",
            "IPLM Data Sheet of the Village Libraries",
        ),
        subtitle: vec![
            Text::new(format!("Tahun {year}"), format!("Year {year}")),
            Text::new(
                "Angka untuk pengisian data Indeks Pembangunan Literasi Masyarakat (IPLM); definisi di tabel kedua.",
                "Figures for the national library development index (IPLM) data collection; definitions in the second table.",
            ),
        ],
        letterhead: Default::default(),
        sections: vec![
            Table {
                id: "iplm".into(),
                title: Text::new("Angka per perpustakaan", "Figures per library"),
                columns,
                rows,
                notes: Vec::new(),
            },
            definitions(lang),
        ],
        generated_at: generated_at.with_timezone(&zone.offset()),
        landscape: true,
        suppressed_below: None,
        signature: None,
    }
}

/// A library's (or a group's) year: the services and the PCs' public use.
#[derive(Default)]
struct YearFigures {
    services: Services,
    /// Public PC use.
    sum: Sum,
    /// The PCs counted in any month (the most of any one month).
    pcs: usize,
    /// The PCs' powered seconds and, of them, seconds with the internet up.
    powered_seconds: u64,
    internet_up_seconds: u64,
}

impl YearFigures {
    fn of_month(lib: &LibraryFacts) -> YearFigures {
        let month = LibraryMonth::of(lib);
        YearFigures {
            services: Services::of_month(lib),
            pcs: month.pcs.len(),
            sum: month.sum,
            powered_seconds: lib.pcs.iter().map(|p| p.powered_seconds).sum(),
            internet_up_seconds: lib.pcs.iter().map(|p| p.internet_up_seconds).sum(),
        }
    }

    fn add_pc_use(&mut self, other: &YearFigures) {
        self.sum.merge(&other.sum);
        self.powered_seconds += other.powered_seconds;
        self.internet_up_seconds += other.internet_up_seconds;
    }

    fn add_later_month(&mut self, later: &YearFigures) {
        self.services.add_later_month(&later.services);
        self.add_pc_use(later);
        self.pcs = self.pcs.max(later.pcs);
    }

    fn add_library(&mut self, other: &YearFigures) {
        self.services.add_library(&other.services);
        self.add_pc_use(other);
        self.pcs += other.pcs;
    }

    fn cells(&self) -> Vec<Cell> {
        let s = &self.services;
        vec![
            count(s.days_served),
            count(s.visits),
            s.visits_per_day(),
            s.members.map_or(Cell::Empty, |(m, _)| count(m)),
            s.members.map_or(Cell::Empty, |(_, n)| count(n)),
            count(s.activities),
            count(s.participants),
            count(s.participants_kie),
            count(self.pcs as u64),
            count(self.sum.sessions),
            count(self.sum.persons),
            Cell::number(self.sum.hours()),
            Cell::number(self.sum.mb()),
            ratio(self.internet_up_seconds as f64, self.powered_seconds as f64),
        ]
    }

    /// A total row labelled `label`; `kecamatan` fills a subtotal's kecamatan column.
    fn total_row(&self, label: &str, kecamatan: &str) -> Row {
        let mut cells = vec![
            Cell::text(label),
            Cell::Empty,
            Cell::Empty,
            Cell::Empty,
            if kecamatan.is_empty() {
                Cell::Empty
            } else {
                Cell::text(kecamatan)
            },
        ];
        cells.extend(self.cells());
        Row::total(cells)
    }
}

/// What each figure of the sheet is, so that whoever types it into the national
/// collection knows what it counts.
fn definitions(lang: Lang) -> Table {
    // The figures that mean over a year what they mean over a month are explained as
    // the glossary explains their columns.
    let general = |key: &str| crate::glossary::meaning(key, lang).unwrap_or_default();
    let items: [(&str, &str); 12] = [
        ("Hari layanan / Days served", general("days_served")),
        ("Kunjungan / Visits", general("visits")),
        (
            "Kunjungan per hari / Visits per day",
            lang.pick(
                "Kunjungan setahun dibagi hari layanan setahun.",
                "The year's visits divided by its days served.",
            ),
        ),
        (
            "Anggota / Members",
            lang.pick(
                "Anggota terdaftar menurut isian pustakawan untuk bulan terakhir tahun itu yang diisi; kosong bila tidak pernah diisi.",
                "Registered members as the librarian entered them for the year's latest month with a count; empty if never entered.",
            ),
        ),
        (
            "Anggota baru / New members",
            lang.pick(
                "Jumlah anggota baru dari semua bulan yang diisi.",
                "The new members of every month with a count, summed.",
            ),
        ),
        ("Kegiatan / Activities", general("activities")),
        ("Peserta kegiatan / Participants", general("participants")),
        (
            "Peserta sosialisasi/KIE / Socialisation/KIE participants",
            general("participants_kie"),
        ),
        (
            "PC",
            lang.pick(
                "PC perpustakaan yang dihitung (terdaftar dan aktif, atau yang mencatat pemakaian), paling banyak dalam satu bulan.",
                "The library PCs counted (enrolled and active, or with recorded use), the most in any one month.",
            ),
        ),
        (
            "Sesi, Pengguna PC / Sessions, PC users",
            lang.pick(
                "Sesi pemakaian umum (sesi petugas tidak dihitung) dan orang yang memakainya (rombongan dihitung sejumlah anggotanya).",
                "Public sessions (staff sessions excluded) and the people in them (a group counts its size).",
            ),
        ),
        (
            "Jam pemakaian PC, Data (MB) / PC hours, Data (MB)",
            lang.pick(
                "Lama sesi umum dalam jam dan data internet yang dipakai dalam megabita (1 MB = 1.000.000 bita).",
                "The public sessions' length in hours and the internet data used in megabytes (1 MB = 1,000,000 bytes).",
            ),
        ),
        (
            "Internet aktif / Internet uptime",
            lang.pick(
                "Bagian waktu PC menyala ketika internet tersambung.",
                "The share of the PCs' powered time with the internet up.",
            ),
        ),
    ];
    Table {
        id: "definitions".into(),
        title: Text::new("Definisi", "Definitions"),
        columns: vec![
            col("figure", "Angka", "Figure", ColumnKind::Text),
            col("definition", "Definisi", "Definition", ColumnKind::Text),
        ],
        rows: items
            .iter()
            .map(|(figure, meaning)| Row::new(vec![Cell::text(*figure), Cell::text(*meaning)]))
            .collect(),
        notes: Vec::new(),
    }
}
