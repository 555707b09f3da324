//! The operations view: every enrolled PC, its last batch, its clock and what it lost.

use chrono::{DateTime, NaiveDate, Utc};
use jejak_domain::{Lang, LibraryCode, PcCode, Zone};

use super::{SILENT_DAYS, col, count, date_cell, date_of_ms};
use crate::facts::LostRange;
use crate::model::{Cell, ColumnKind, Flag, Report, Row, Table, Text};

/// One PC as the operations view shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct OpsRow {
    /// The PC's library.
    pub library: LibraryCode,
    /// The library's name, as registered.
    pub library_name: String,
    /// The PC.
    pub pc: PcCode,
    /// Whether its token is active.
    pub active: bool,
    /// Its latest batch, Unix ms.
    pub last_batch_ms: Option<i64>,
    /// The server's clock minus the PC's, as last measured (ms): negative when the
    /// PC's clock is ahead.
    pub clock_offset_ms: Option<i64>,
    /// Sessions open for more than 12 hours.
    pub long_open_sessions: u64,
    /// Records the server refused.
    pub rejected: u64,
    /// New epochs (change logs started again at seq 1) in the last 30 days: more than
    /// one means the PC's store was replaced, or a token is misused.
    pub new_epochs_30d: u64,
    /// Ranges of the PC's change log lost after a restore from an older backup.
    pub lost: Vec<LostRange>,
}

/// A clock further off than this is worth a visit (or a word on the phone).
pub const CLOCK_WARNING_MS: i64 = 5 * 60 * 1000;

/// What the operations view says of a PC's clock, when it needs attention: a short
/// cell in both languages and the flag with the evidence. Off by more than
/// [`CLOCK_WARNING_MS`] at the last measurement, or never measured although the PC sends
/// data (it syncs only by USB, so its records are dated by estimate). `None` for a clock
/// measured right, or a PC that never sent anything.
fn clock_evidence(offset_ms: Option<i64>, has_synced: bool, lang: Lang) -> Option<(String, Text)> {
    match offset_ms {
        Some(ms) if ms.abs() > CLOCK_WARNING_MS => {
            let (id, en) = span_words(ms.abs());
            let (ahead_id, ahead_en) = if ms < 0 {
                ("lebih cepat", "ahead")
            } else {
                ("terlambat", "behind")
            };
            Some((
                match lang {
                    Lang::Id => format!("{id} {ahead_id}"),
                    Lang::En => format!("{en} {ahead_en}"),
                },
                Text::new(
                    format!(
                        "Jam komputer salah: {id} {ahead_id} dari server (diukur saat sinkron)"
                    ),
                    format!("PC clock is wrong: {en} {ahead_en} of the server (measured at sync)"),
                ),
            ))
        }
        Some(_) => None,
        None if has_synced => Some((
            lang.pick("tidak diketahui", "unknown").to_string(),
            Text::new(
                "Jam komputer tidak diketahui: belum pernah diukur (hanya sinkron lewat USB?); waktu catatannya diperkirakan",
                "PC clock unknown: never measured (syncs by USB only?); its records are dated by estimate",
            ),
        )),
        None => None,
    }
}

/// A duration in the largest whole unit that fits, in both languages.
fn span_words(ms: i64) -> (String, String) {
    let minutes = ms / 60_000;
    let (n, id, en) = if minutes >= 2 * 365 * 1440 {
        (minutes / (365 * 1440), "tahun", "years")
    } else if minutes >= 2 * 1440 {
        (minutes / 1440, "hari", "days")
    } else if minutes >= 120 {
        (minutes / 60, "jam", "hours")
    } else {
        (minutes, "menit", "minutes")
    };
    (format!("{n} {id}"), format!("{n} {en}"))
}

/// The operations view: last sync per library and PC, clock offsets, sessions open for
/// more than 12 hours and rejected records, with the rows that need attention flagged.
pub fn operations_report(
    rows: &[OpsRow],
    today: NaiveDate,
    zone: Zone,
    lang: Lang,
    generated_at: DateTime<Utc>,
) -> Report {
    let mut table_rows = Vec::new();
    let mut lost_rows = Vec::new();
    for r in rows {
        for range in &r.lost {
            lost_rows.push(Row::new(vec![
                Cell::text(r.library_name.as_str()),
                Cell::text(r.library.as_str()),
                Cell::text(r.pc.as_str()),
                Cell::text(range.epoch.simple().to_string()[..8].to_string()),
                Cell::number(range.first_seq as f64),
                Cell::number(range.last_seq as f64),
                count(range.changes()),
                date_cell(date_of_ms(Some(range.reported_at_ms), zone)),
            ]));
        }
        let lost: u64 = r.lost.iter().map(|l| l.changes()).sum();
        let clock = clock_evidence(r.clock_offset_ms, r.last_batch_ms.is_some(), lang);
        let last = date_of_ms(r.last_batch_ms, zone);
        let silent = last.map(|d| (today - d).num_days());
        let mut row = Row::new(vec![
            Cell::text(r.library_name.as_str()),
            Cell::text(r.library.as_str()),
            Cell::text(r.pc.as_str()),
            Cell::text(if r.active {
                lang.pick("aktif", "active")
            } else {
                lang.pick("dicabut", "revoked")
            }),
            date_cell(last),
            silent.map_or(Cell::Empty, |d| Cell::number(d as f64)),
            r.clock_offset_ms
                .map_or(Cell::Empty, |ms| Cell::number((ms as f64 / 1000.0).round())),
            clock
                .as_ref()
                .map_or(Cell::Empty, |(cell, _)| Cell::text(cell.as_str())),
            count(r.long_open_sessions),
            count(r.rejected),
            count(r.new_epochs_30d),
            count(lost),
        ]);
        let flag = if lost > 0 {
            Some(Flag::alert(Text::new(
                format!("{lost} perubahan hilang setelah pemulihan server"),
                format!("{lost} changes lost after the server was restored"),
            )))
        } else if !r.active {
            None
        } else if last.is_none() {
            Some(Flag::alert(Text::new(
                "Belum pernah sinkron",
                "Never synced",
            )))
        } else if silent.is_some_and(|d| d > SILENT_DAYS) {
            let days = silent.unwrap_or_default();
            Some(Flag::alert(Text::new(
                format!("Tidak sinkron {days} hari"),
                format!("Silent for {days} days"),
            )))
        } else if r.long_open_sessions > 0 {
            Some(Flag::warning(Text::new(
                "Ada sesi terbuka lebih dari 12 jam",
                "Sessions open for more than 12 hours",
            )))
        } else if r.new_epochs_30d > 1 {
            Some(Flag::warning(Text::new(
                "Penyimpanan data PC dimulai ulang berulang kali",
                "The PC's store started again more than once",
            )))
        } else if r.rejected > 0 {
            Some(Flag::warning(Text::new(
                "Ada catatan ditolak",
                "Records were rejected",
            )))
        } else if let Some((_, evidence)) = clock {
            Some(Flag::warning(evidence))
        } else {
            None
        };
        if let Some(flag) = flag {
            row = row.flagged(flag);
        }
        table_rows.push(row);
    }
    Report {
        id: format!("operasional-{}", today.format("%Y-%m-%d")),
        title: Text::new("Keadaan Operasional", "Operations View"),
        subtitle: vec![Text::new(
            format!("Per {}", today.format("%Y-%m-%d")),
            format!("As of {}", today.format("%Y-%m-%d")),
        )],
        letterhead: Default::default(),
        sections: vec![Table {
            id: "pcs".into(),
            title: Text::new("Komputer", "PCs"),
            columns: vec![
                col("library", "Perpustakaan", "Library", ColumnKind::Text),
                col("code", "Kode", "Code", ColumnKind::Text),
                col("pc", "Komputer", "PC", ColumnKind::Text),
                col("token", "Token", "Token", ColumnKind::Text),
                col(
                    "last_sync",
                    "Sinkron terakhir",
                    "Last sync",
                    ColumnKind::Date,
                ),
                col(
                    "days_silent",
                    "Hari tanpa sinkron",
                    "Days silent",
                    ColumnKind::Decimal(0),
                ),
                col(
                    "clock_offset_s",
                    "Selisih jam (detik)",
                    "Clock offset (s)",
                    ColumnKind::Decimal(0),
                ),
                col("clock", "Jam komputer", "PC clock", ColumnKind::Text),
                col(
                    "open_over_12h",
                    "Sesi terbuka > 12 jam",
                    "Open > 12 h",
                    ColumnKind::Count,
                ),
                col("rejected", "Ditolak", "Rejected", ColumnKind::Count),
                col(
                    "new_epochs_30d",
                    "Penyimpanan baru (30 hari)",
                    "New stores (30 days)",
                    ColumnKind::Count,
                ),
                col(
                    "lost",
                    "Hilang setelah pemulihan",
                    "Lost after restore",
                    ColumnKind::Count,
                ),
            ],
            rows: table_rows,
            notes: Vec::new(),
        }]
        .into_iter()
        .chain((!lost_rows.is_empty()).then(|| Table {
            id: "lost".into(),
            title: Text::new(
                "Perubahan yang hilang setelah server dipulihkan dari cadangan lama (PC sudah menghapusnya)",
                "Changes lost after the server was restored from an older backup (the PC had pruned them)",
            ),
            columns: vec![
                col("library", "Perpustakaan", "Library", ColumnKind::Text),
                col("code", "Kode", "Code", ColumnKind::Text),
                col("pc", "Komputer", "PC", ColumnKind::Text),
                col("epoch", "Epoch", "Epoch", ColumnKind::Text),
                col("first_seq", "Seq awal", "First seq", ColumnKind::Decimal(0)),
                col("last_seq", "Seq akhir", "Last seq", ColumnKind::Decimal(0)),
                col("changes", "Perubahan", "Changes", ColumnKind::Count),
                col("reported", "Dilaporkan", "Reported", ColumnKind::Date),
            ],
            rows: lost_rows,
            notes: Vec::new(),
        }))
        .collect(),
        generated_at: generated_at.with_timezone(&zone.offset()),
        landscape: true,
        suppressed_below: None,
        signature: None,
    }
}

#[cfg(test)]
mod ops_tests {
    use super::*;
    use crate::build::assert_sheets_named_in_full;

    #[test]
    fn the_operations_view_flags_what_needs_attention() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
        let yesterday_ms = 1_795_600_000_000; // 2026-11-25 in WIB
        let row =
            |pc: &str, last: Option<i64>, offset: Option<i64>, open: u64, rejected: u64| OpsRow {
                library: LibraryCode::parse("dermaji").unwrap(),
                library_name: "Desa Dermaji".into(),
                pc: jejak_domain::PcCode::parse(pc).unwrap(),
                active: true,
                last_batch_ms: last,
                clock_offset_ms: offset,
                long_open_sessions: open,
                rejected,
                new_epochs_30d: 1,
                lost: Vec::new(),
            };
        let mut replaced = row("pc-07", Some(yesterday_ms), None, 0, 0);
        replaced.new_epochs_30d = 3;
        let mut restored = row("pc-09", Some(yesterday_ms), Some(0), 0, 0);
        restored.lost = vec![crate::facts::LostRange {
            epoch: uuid::Uuid::nil(),
            first_seq: 5,
            last_seq: 9,
            reported_at_ms: yesterday_ms,
        }];
        let rows = [
            row("pc-01", Some(yesterday_ms), Some(1_000), 0, 0),
            row("pc-02", None, None, 0, 0),
            row("pc-03", Some(yesterday_ms - 20 * 86_400_000), None, 0, 0),
            row("pc-04", Some(yesterday_ms), None, 2, 0),
            row("pc-05", Some(yesterday_ms), None, 0, 3),
            row(
                "pc-06",
                Some(yesterday_ms),
                Some(-3 * 365 * 86_400_000),
                0,
                0,
            ),
            replaced,
            // Syncs (by USB) but its clock was never measured.
            row("pc-08", Some(yesterday_ms), None, 0, 0),
            restored,
        ];
        let report = operations_report(&rows, today, Zone::Wib, Lang::Id, Utc::now());
        assert_sheets_named_in_full(&report);
        assert_eq!(report.sections[1].id, "lost");
        let reasons: Vec<Option<String>> = report.sections[0]
            .rows
            .iter()
            .map(|r| r.emphasis.as_ref().map(|f| f.reason.en.clone()))
            .collect();
        assert_eq!(
            reasons,
            vec![
                None,
                Some("Never synced".into()),
                Some("Silent for 21 days".into()),
                Some("Sessions open for more than 12 hours".into()),
                Some("Records were rejected".into()),
                Some("PC clock is wrong: 3 years ahead of the server (measured at sync)".into()),
                Some("The PC's store started again more than once".into()),
                Some(
                    "PC clock unknown: never measured (syncs by USB only?); its records are dated by estimate"
                        .into()
                ),
                Some("5 changes lost after the server was restored".into()),
            ]
        );
        let column = |key: &str| {
            report.sections[0]
                .columns
                .iter()
                .position(|c| c.key == key)
                .unwrap()
        };
        assert_eq!(
            report.sections[0].rows[6].cells[column("new_epochs_30d")],
            Cell::number(3.0)
        );
        let clock = column("clock");
        assert_eq!(report.sections[0].rows[0].cells[clock], Cell::Empty);
        assert_eq!(
            report.sections[0].rows[5].cells[clock],
            Cell::text("3 tahun lebih cepat")
        );
        assert_eq!(
            report.sections[0].rows[0].cells[0],
            Cell::text("Desa Dermaji")
        );
        assert_eq!(report.sections[0].rows[0].cells[3], Cell::text("aktif"));
        assert_eq!(
            report.sections[0].rows[0].cells[column("clock_offset_s")],
            Cell::number(1.0)
        );
        assert_eq!(
            report.sections[0].rows[0].cells[column("days_silent")],
            Cell::number(1.0)
        );
        // One language at a time, English too.
        let english = operations_report(&rows, today, Zone::Wib, Lang::En, Utc::now());
        assert_eq!(
            english.sections[0].rows[5].cells[clock],
            Cell::text("3 years ahead")
        );
        assert_eq!(english.sections[0].rows[0].cells[3], Cell::text("active"));
    }
}
