//! The golden test of the village monthly report and the district matrix: a small
//! hand-built month ingested through the real store, every cell known.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use jejak_domain::{
    AgeGroup, ChangeRecord, ClientInstant, ClockAnchor, EndReason, Gender, Lang, LibraryCode,
    PatronKey, PatronProfile, PcCode, PcEvent, PcEventKind, Purpose, RecordBody, Session,
    TimeQuality, UserKind, WireBatch, Zone,
};
use uuid::Uuid;

use super::{Cell, Report, ReportRequest, Table, district_monthly, village_monthly};
use crate::store::{Delivery, ServerStore};
use crate::test_backend::Backend;

/// A time given in WIB (UTC+7).
fn wib(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Zone::Wib
        .offset()
        .with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .expect("a valid time")
        .with_timezone(&Utc)
}

fn key(n: u8) -> PatronKey {
    PatronKey::parse(&hex::encode([n; 32])).expect("a valid key")
}

struct S {
    start: DateTime<Utc>,
    minutes: u64,
    kind: UserKind,
    gender: Gender,
    age: AgeGroup,
    purposes: Vec<Purpose>,
    group: u32,
    key: Option<u8>,
    rx_kib: u64,
    offline_s: u64,
}

#[allow(clippy::too_many_arguments)]
fn s(
    start: DateTime<Utc>,
    minutes: u64,
    kind: UserKind,
    gender: Gender,
    age: AgeGroup,
    purposes: &[Purpose],
    group: u32,
    key: Option<u8>,
    rx_kib: u64,
    offline_s: u64,
) -> S {
    S {
        start,
        minutes,
        kind,
        gender,
        age,
        purposes: purposes.to_vec(),
        group,
        key,
        rx_kib,
        offline_s,
    }
}

/// One PC's month: runs (id, boot), boot events to record, sessions.
async fn send(
    store: &dyn ServerStore,
    library: &LibraryCode,
    pc: &str,
    runs: &[(Uuid, DateTime<Utc>, bool)],
    sessions: Vec<S>,
    sync_at: DateTime<Utc>,
) {
    let pc = PcCode::parse(pc).unwrap();
    store.add_device(library, &pc).await.unwrap();
    let device = store.find_device(library, &pc).await.unwrap().unwrap();
    let mut records = Vec::new();
    let mut seq = 0;
    for (run, boot, record_boot) in runs {
        if *record_boot {
            seq += 1;
            records.push(ChangeRecord {
                seq,
                recorded_at: *boot,
                run_id: *run,
                mono_ms: 0,
                body: RecordBody::PcEvent(PcEvent {
                    id: Uuid::new_v4(),
                    library: library.clone(),
                    pc: pc.clone(),
                    kind: PcEventKind::Boot,
                    at: *boot,
                    run_id: *run,
                    mono_ms: 0,
                    clock_delta_ms: None,
                }),
            });
        }
    }
    let (run, boot, _) = runs[0];
    for x in sessions {
        seq += 1;
        let duration = x.minutes * 60;
        let mono = u64::try_from((x.start - boot).num_milliseconds()).unwrap();
        let end = x.start + chrono::Duration::seconds(duration as i64);
        records.push(ChangeRecord {
            seq,
            recorded_at: end,
            run_id: run,
            mono_ms: mono + duration * 1000,
            body: RecordBody::Session(Session {
                id: Uuid::new_v4(),
                revision: 2,
                library: library.clone(),
                pc: pc.clone(),
                started_at: x.start,
                ended_at: Some(end),
                duration_secs: duration,
                end_reason: Some(EndReason::Logout),
                patron: PatronProfile {
                    user_kind: x.kind,
                    purposes: x.purposes,
                    gender: x.gender,
                    age_group: x.age,
                    group_size: x.group,
                    patron_key: x.key.map(key),
                },
                bytes_rx: x.rx_kib * 1024,
                bytes_tx: 0,
                online_secs: duration - x.offline_s,
                time_quality: TimeQuality::Trusted,
                run_id: run,
                started_mono_ms: mono,
            }),
        });
    }
    let anchors = runs
        .iter()
        .map(|(run, boot, _)| ClockAnchor {
            run: *run,
            mono_ms: u64::try_from((sync_at - *boot).num_milliseconds()).unwrap(),
            server_ms: sync_at.timestamp_millis(),
            uncertainty_ms: 40,
        })
        .collect();
    let batch = WireBatch::encode(
        Uuid::new_v4(),
        library.clone(),
        pc.clone(),
        Uuid::new_v4(),
        1,
        seq,
        ClientInstant {
            run,
            mono_ms: u64::try_from((sync_at - boot).num_milliseconds()).unwrap(),
            wall_ms: sync_at.timestamp_millis(),
        },
        anchors,
        &records,
    );
    let ack = store
        .ingest(&device, batch, sync_at, Delivery::Online)
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&ack).unwrap()["rejected"],
        serde_json::json!([]),
        "{ack:?}"
    );
}

fn table<'a>(report: &'a Report, id: &str) -> &'a Table {
    report.sections.iter().find(|t| t.id == id).unwrap()
}

/// A row as comparable values: numbers rounded to 4 places, texts as they are.
fn row(table: &Table, i: usize) -> Vec<String> {
    table.rows[i]
        .cells
        .iter()
        .map(|c| match c {
            Cell::Text(t) => t.clone(),
            Cell::Number(n) => format!("{:.4}", n),
            Cell::Empty => "-".into(),
        })
        .collect()
}

fn v(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn golden_month_every_cell() {
    golden_month_every_cell_on(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn golden_month_every_cell_on_postgres() {
    if let Some(backend) = Backend::postgres() {
        golden_month_every_cell_on(backend).await;
    }
}

async fn golden_month_every_cell_on(backend: Backend) {
    use AgeGroup as A;
    use Gender::{L, P, X};
    use Purpose as Pu;
    use UserKind as U;

    let sync_at = Utc.with_ymd_and_hms(2026, 11, 2, 3, 0, 0).unwrap();
    let clock: crate::store::ServerClock = Arc::new(move || sync_at);
    let under_test = backend.open(clock).await;
    let store = under_test.store.as_ref();
    let dermaji = LibraryCode::parse("dermaji").unwrap();
    let silent = LibraryCode::parse("kalisalak").unwrap();
    store
        .add_library(&dermaji, "Perpustakaan Desa Dermaji", Zone::Wib)
        .await
        .unwrap();
    store
        .add_library(&silent, "Perpustakaan Desa Kalisalak", Zone::Wib)
        .await
        .unwrap();
    store
        .add_device(&silent, &PcCode::parse("pc-01").unwrap())
        .await
        .unwrap();

    // Both PCs booted on 30 September 23:00 WIB (not a day of October) and stayed up;
    // pc-02 booted again on 10 October, a day without sessions that is still open.
    let boot = wib(2026, 9, 30, 23, 0);
    send(
        store,
        &dermaji,
        "pc-01",
        &[(Uuid::new_v4(), boot, true)],
        vec![
            // 1 October 00:20 WIB is still 30 September in UTC: October.
            s(
                wib(2026, 10, 1, 0, 20),
                10,
                U::NonAnggota,
                L,
                A::Anak,
                &[Pu::Pendidikan],
                1,
                None,
                0,
                0,
            ),
            s(
                wib(2026, 10, 5, 9, 0),
                60,
                U::Anggota,
                L,
                A::Pemuda,
                &[Pu::Pendidikan],
                1,
                Some(1),
                1024,
                0,
            ),
            // Several purposes: counted once per purpose.
            s(
                wib(2026, 10, 5, 10, 0),
                30,
                U::NonAnggota,
                P,
                A::Remaja,
                &[Pu::Pendidikan, Pu::Komunikasi],
                1,
                None,
                512,
                0,
            ),
            // Staff: excluded everywhere (its key too), but its day is open anyway.
            s(
                wib(2026, 10, 5, 11, 0),
                45,
                U::Staf,
                L,
                A::Dewasa,
                &[Pu::Lainnya],
                1,
                Some(3),
                4096,
                0,
            ),
        ],
        sync_at,
    )
    .await;
    send(
        store,
        &dermaji,
        "pc-02",
        &[
            (Uuid::new_v4(), boot, false),
            (Uuid::new_v4(), wib(2026, 10, 10, 8, 0), true),
        ],
        vec![
            // 6 October 00:10 WIB is 5 October 17:10 UTC: the 6th.
            s(
                wib(2026, 10, 6, 0, 10),
                20,
                U::Anggota,
                P,
                A::Pemuda,
                &[Pu::Hobi],
                1,
                Some(2),
                0,
                0,
            ),
            s(
                wib(2026, 10, 6, 14, 0),
                90,
                U::Rombongan,
                X,
                A::Unknown,
                &[Pu::Ekonomi],
                4,
                Some(1),
                2048,
                2700,
            ),
            // 1 November 00:05 WIB is still 31 October in UTC: not October.
            s(
                wib(2026, 11, 1, 0, 5),
                15,
                U::Anggota,
                P,
                A::Dewasa,
                &[Pu::Kesehatan],
                1,
                Some(4),
                0,
                0,
            ),
        ],
        sync_at,
    )
    .await;

    let month = NaiveDate::from_ymd_opt(2026, 10, 1).unwrap();
    let facts = store
        .month_facts(
            month,
            Some(&dermaji),
            crate::report::FactsDetail::Breakdowns,
        )
        .await
        .unwrap();
    assert_eq!(facts.libraries.len(), 1);
    // September holds only the boot of 30 September 23:00 WIB: one open day.
    let september = store
        .month_facts(
            NaiveDate::from_ymd_opt(2026, 9, 1).unwrap(),
            Some(&dermaji),
            crate::report::FactsDetail::Days,
        )
        .await
        .unwrap();
    let report = village_monthly(&facts, Some(&september), &dermaji, Lang::Id, sync_at).unwrap();
    assert_eq!(report.id, "laporan-bulanan-dermaji-2026-10");

    let identity = table(&report, "identity");
    // No details were set: the identity rows say so.
    assert_eq!(row(identity, 2), v(&["NPP", "(belum diisi)"]));
    assert_eq!(row(identity, 3), v(&["Desa", "(belum diisi)"]));
    assert_eq!(row(identity, 4), v(&["Kecamatan", "(belum diisi)"]));
    assert_eq!(row(identity, 5), v(&["Alamat", "(belum diisi)"]));
    assert_eq!(row(identity, 6), v(&["Bulan", "Oktober 2026"]));
    assert_eq!(row(identity, 8), v(&["Jumlah PC", "2.0000"]), "a number");
    assert_eq!(row(identity, 9), v(&["Sinkron terakhir", "2026-11-02"]));

    // Against September: 4 open days against 1, 5 sessions against none (no share of
    // nothing), 8 persons, 2 keys, 3.5 hours and 3.67 MB against zero.
    let change = table(&report, "change");
    assert_eq!(
        row(change, 0),
        v(&[
            "Oktober 2026",
            "4.0000",
            "5.0000",
            "8.0000",
            "2.0000",
            "3.5000",
            "3.6700",
            // Visits are the check-ins' persons (no visitor book); no activity, and no
            // member count entered, so no members to compare.
            "8.0000",
            "0.0000",
            "0.0000",
            "-"
        ])
    );
    assert_eq!(
        row(change, 1),
        v(&[
            "September 2026",
            "1.0000",
            "0.0000",
            "0.0000",
            "0.0000",
            "0.0000",
            "0.0000",
            "0.0000",
            "0.0000",
            "0.0000",
            "-"
        ])
    );
    assert_eq!(
        row(change, 2),
        v(&[
            "Perubahan",
            "3.0000",
            "5.0000",
            "8.0000",
            "2.0000",
            "3.5000",
            "3.6700",
            "8.0000",
            "0.0000",
            "0.0000",
            "-"
        ])
    );
    assert!(change.rows[2].is_total && change.rows[3].is_total);
    assert_eq!(
        row(change, 3),
        v(&[
            "Perubahan (%)",
            "naik 300,0%",
            "-",
            "-",
            "-",
            "-",
            "-",
            "-",
            "-",
            "-",
            "-"
        ])
    );

    // PC sessions by user kind (staff excluded): the group of four is one session of
    // four persons.
    let kinds = table(&report, "user_kind");
    let expect_kinds = [
        ["Anggota", "1", "1", "0", "2", "2"],
        ["Non-anggota", "1", "1", "0", "2", "2"],
        ["Rombongan", "0", "0", "1", "1", "4"],
        ["Pelatihan", "0", "0", "0", "0", "0"],
        ["Tidak diketahui", "0", "0", "0", "0", "0"],
        ["Jumlah", "2", "2", "1", "5", "8"],
    ];
    assert_eq!(kinds.rows.len(), expect_kinds.len());
    for (i, expected) in expect_kinds.iter().enumerate() {
        let got: Vec<String> = row(kinds, i)
            .into_iter()
            .map(|c| c.trim_end_matches(".0000").to_string())
            .collect();
        assert_eq!(got, v(expected), "user kind row {i}");
    }
    assert!(kinds.rows[5].is_total);

    // Signed by the manager and acknowledged by the head of the village, dated the
    // day the report was made (2 November 10:00 WIB); without details, the names are
    // lines to fill in by hand and there is no place.
    let signature = report.signature.as_ref().unwrap();
    assert_eq!(
        signature.date,
        NaiveDate::from_ymd_opt(2026, 11, 2).unwrap()
    );
    assert_eq!(signature.place_and_date(Lang::Id), "2 November 2026");
    assert_eq!(signature.acknowledged_by.heading[1].id, "Kepala Desa");
    assert_eq!(signature.made_by.name, None);

    // Days open: 1, 5, 6 (sessions) and 10 (a boot). Sessions 5, persons 1+1+1+1+4,
    // unique keys 1 and 2, 210 minutes = 3.5 h, mean 42 min, use rate
    // 210 / (2 PCs × 4 days × 420) = 6.25 %, online 9900 / 12600 s,
    // complete profiles 4 of 5.
    // 3584 KiB = 3.670016 MB.
    let summary = table(&report, "summary");
    assert_eq!(
        row(summary, 0),
        v(&[
            "4.0000", "5.0000", "8.0000", "2.0000", "3.5000", "42.0000", "0.0625", "0.7857",
            // Internet uptime: the dataset's only pc events are boots, so no powered time
            // is known and the cell stays empty (`uptime` has its own unit test).
            "-", "3.6700", "0.8000",
            // Every run has an anchor: none dated by estimate, none undated.
            "0.0000", "0.0000"
        ])
    );

    let age = table(&report, "age_by_gender");
    let expect_age = [
        ["Anak (≤12)", "1", "0", "0", "1"],
        ["Remaja (13–15)", "0", "1", "0", "1"],
        ["Pemuda (16–30)", "1", "1", "0", "2"],
        ["Dewasa (31–45)", "0", "0", "0", "0"],
        ["Dewasa madya (46–59)", "0", "0", "0", "0"],
        ["Lansia (≥60)", "0", "0", "0", "0"],
        ["Tidak diketahui", "0", "0", "1", "1"],
        ["Jumlah", "2", "2", "1", "5"],
    ];
    assert_eq!(age.rows.len(), expect_age.len());
    for (i, expected) in expect_age.iter().enumerate() {
        let got: Vec<String> = row(age, i)
            .into_iter()
            .map(|c| c.trim_end_matches(".0000").to_string())
            .collect();
        assert_eq!(got, v(expected), "age row {i}");
    }
    assert!(age.rows[7].is_total);

    let purpose = table(&report, "purpose_by_gender");
    let expect_purpose = [
        ["Pendidikan", "2", "1", "0", "3", "0.6000"],
        ["Ekonomi/UMKM", "0", "0", "1", "1", "0.2000"],
        ["Kesehatan", "0", "0", "0", "0", "0"],
        ["Komunikasi", "0", "1", "0", "1", "0.2000"],
        ["Hobi/hiburan", "0", "1", "0", "1", "0.2000"],
        ["Pemerintahan/layanan publik", "0", "0", "0", "0", "0"],
        ["Literasi digital", "0", "0", "0", "0", "0"],
        ["Lainnya", "0", "0", "0", "0", "0"],
        ["Jumlah sesi", "2", "2", "1", "5", "-"],
    ];
    assert_eq!(purpose.rows.len(), expect_purpose.len());
    for (i, expected) in expect_purpose.iter().enumerate() {
        let got: Vec<String> = row(purpose, i)
            .into_iter()
            .map(|c| c.trim_end_matches(".0000").to_string())
            .collect();
        assert_eq!(got, v(expected), "purpose row {i}");
    }

    let daily = table(&report, "daily");
    assert_eq!(daily.rows.len(), 32);
    for (i, r) in daily.rows.iter().take(31).enumerate() {
        let day = i + 1;
        let expected = match day {
            1 => v(&["2026-10-01", "ya", "1.0000", "0.1667"]),
            5 => v(&["2026-10-05", "ya", "2.0000", "1.5000"]),
            6 => v(&["2026-10-06", "ya", "2.0000", "1.8333"]),
            10 => v(&["2026-10-10", "ya", "0.0000", "0.0000"]),
            _ => v(&[&format!("2026-10-{day:02}"), "", "0.0000", "0.0000"]),
        };
        assert!(!r.is_total);
        assert_eq!(row(daily, i), expected, "day {day}");
    }
    assert_eq!(row(daily, 31), v(&["Jumlah", "4.0000", "5.0000", "3.5000"]));

    let pcs = table(&report, "per_pc");
    assert_eq!(
        row(pcs, 0),
        v(&[
            "pc-01",
            "3.0000",
            "1.6667",
            "0.0595",
            "1.5729",
            "2026-11-02"
        ])
    );
    assert_eq!(
        row(pcs, 1),
        v(&[
            "pc-02",
            "2.0000",
            "1.8333",
            "0.0655",
            "2.0972",
            "2026-11-02"
        ])
    );
    assert_eq!(
        row(pcs, 2),
        v(&[
            "Jumlah",
            "5.0000",
            "3.5000",
            "0.0625",
            "3.6700",
            "2026-11-02"
        ])
    );

    // Every renderer takes it.
    let options = super::RenderOptions::new(Lang::En).suppressing_below(3);
    assert!(super::render_terminal(&report, &options).contains("Monthly ICT Service Report"));
    assert!(super::render_xlsx(&report, &options).is_ok());
    assert!(
        super::render_json(&report, &options)
            .unwrap()
            .contains("\"<3\"")
    );

    // The district matrix: the silent library is flagged, dermaji only 3 days after its
    // last batch is not, 20 days after it is.
    let all = store
        .month_facts(month, None, crate::report::FactsDetail::Breakdowns)
        .await
        .unwrap();
    assert_eq!(all.libraries.len(), 2);
    let today = NaiveDate::from_ymd_opt(2026, 11, 5).unwrap();
    let matrix = district_monthly(&all, today, Lang::Id, sync_at);
    for built in [&report, &matrix] {
        assert_eq!(
            crate::report::sheets_not_named_in_full(built),
            Vec::<(String, String)>::new(),
            "these sheet names would be cut or changed; give them a short form in sheet_title"
        );
    }
    let libs = table(&matrix, "libraries");
    assert_eq!(libs.rows.len(), 3);
    assert_eq!(
        row(libs, 0),
        v(&[
            "Perpustakaan Desa Dermaji",
            "dermaji",
            // No NPP, desa or kecamatan set (and so no kecamatan subtotals).
            "-",
            "-",
            "-",
            "2.0000",
            "4.0000",
            "5.0000",
            "0.6250",
            "2.0000",
            "2.0000",
            "2.0000",
            "3.5000",
            "42.0000",
            "0.0625",
            "-",
            "3.6700",
            "2026-11-02",
            "0.8000",
            "0.0000",
            "0.0000"
        ])
    );
    assert!(libs.rows[0].emphasis.is_none());
    assert_eq!(row(libs, 1)[5..8], v(&["1.0000", "0.0000", "0.0000"]));
    assert_eq!(
        libs.rows[1].emphasis.as_ref().unwrap().reason.en,
        "Never synced"
    );
    assert!(libs.rows[2].is_total);
    assert_eq!(row(libs, 2)[5..9], v(&["3.0000", "-", "5.0000", "0.6250"]));
    let later = district_monthly(
        &all,
        NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(),
        Lang::Id,
        sync_at,
    );
    assert_eq!(
        table(&later, "libraries").rows[0]
            .emphasis
            .as_ref()
            .unwrap()
            .reason
            .en,
        "Silent for 20 days"
    );

    // The detail export: October's five public sessions, a row each in time order
    // (the staff session and the one dated 1 November left out), patrons as the first
    // twelve hex digits of their keys, the group of four as four persons.
    let detail = crate::report::load(store, &ReportRequest::Detail { month }, Lang::En, sync_at)
        .await
        .unwrap();
    let sessions = table(&detail, "sessions");
    let expect = [
        [
            "pc-01",
            "2026-10-01",
            "00:20",
            "10.0000",
            "Non-member",
            "Male",
            "Child (≤12)",
            "Education",
            "1.0000",
            "0.0000",
            "-",
        ],
        [
            "pc-01",
            "2026-10-05",
            "09:00",
            "60.0000",
            "Member",
            "Male",
            "Youth (16–30)",
            "Education",
            "1.0000",
            "1.0486",
            "010101010101",
        ],
        [
            "pc-01",
            "2026-10-05",
            "10:00",
            "30.0000",
            "Non-member",
            "Female",
            "Teen (13–15)",
            "Education; Communication",
            "1.0000",
            "0.5243",
            "-",
        ],
        [
            "pc-02",
            "2026-10-06",
            "00:10",
            "20.0000",
            "Member",
            "Female",
            "Youth (16–30)",
            "Hobby/leisure",
            "1.0000",
            "0.0000",
            "020202020202",
        ],
        [
            "pc-02",
            "2026-10-06",
            "14:00",
            "90.0000",
            "Group",
            "Not stated",
            "Unknown",
            "Economy/UMKM",
            "4.0000",
            "2.0972",
            "010101010101",
        ],
    ];
    assert_eq!(sessions.rows.len(), expect.len());
    for (i, want) in expect.iter().enumerate() {
        assert_eq!(row(sessions, i)[0], "dermaji");
        assert_eq!(row(sessions, i)[1..], v(want)[..], "session row {i}");
    }
    assert!(table(&detail, "visits").rows.is_empty());
    assert!(table(&detail, "activities").rows.is_empty());
    under_test.finish().await;
}

/// The split rule, cell by cell: a session crossing midnight counts once, on its start
/// day, and gives each day the hours spent in it; one crossing the month end gives its
/// later hours (and data) to the next month's report.
#[tokio::test(flavor = "multi_thread")]
async fn sessions_across_midnight_and_the_month_end_are_split_by_the_stated_rule() {
    split_rule_on(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_across_midnight_and_the_month_end_are_split_by_the_stated_rule_on_postgres() {
    if let Some(backend) = Backend::postgres() {
        split_rule_on(backend).await;
    }
}

async fn split_rule_on(backend: Backend) {
    let sync_at = Utc.with_ymd_and_hms(2026, 11, 2, 3, 0, 0).unwrap();
    let clock: crate::store::ServerClock = Arc::new(move || sync_at);
    let under_test = backend.open(clock).await;
    let store = under_test.store.clone();
    let library = LibraryCode::parse("rempoah").unwrap();
    store
        .add_library(&library, "Perpustakaan Desa Rempoah", Zone::Wib)
        .await
        .unwrap();
    let boot = wib(2026, 10, 10, 7, 0);
    let one = |start, minutes, rx_kib| {
        s(
            start,
            minutes,
            UserKind::NonAnggota,
            Gender::P,
            AgeGroup::Dewasa,
            &[Purpose::Ekonomi],
            1,
            None,
            rx_kib,
            0,
        )
    };
    send(
        store.as_ref(),
        &library,
        "pc-01",
        &[(Uuid::new_v4(), boot, false)],
        vec![
            // 10 October 23:00 to 11 October 01:00 WIB: 1 h on each day.
            one(wib(2026, 10, 10, 23, 0), 120, 2000),
            // 31 October 23:30 to 1 November 01:00 WIB: 0.5 h in October, 1 h in November;
            // its 3,000 KiB split a third and two thirds.
            one(wib(2026, 10, 31, 23, 30), 90, 3000),
        ],
        sync_at,
    )
    .await;
    let october = NaiveDate::from_ymd_opt(2026, 10, 1).unwrap();
    let november = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
    let report = |month| {
        let store = store.clone();
        let library = library.clone();
        async move {
            let facts = store
                .month_facts(
                    month,
                    Some(&library),
                    crate::report::FactsDetail::Breakdowns,
                )
                .await
                .unwrap();
            village_monthly(&facts, None, &library, Lang::Id, sync_at).unwrap()
        }
    };
    let oct = report(october).await;
    let daily = table(&oct, "daily");
    // Rows are the month's days: date, open, sessions, hours.
    assert_eq!(row(daily, 9), v(&["2026-10-10", "ya", "1.0000", "1.0000"]));
    assert_eq!(row(daily, 10), v(&["2026-10-11", "", "0.0000", "1.0000"]));
    assert_eq!(row(daily, 30), v(&["2026-10-31", "ya", "1.0000", "0.5000"]));
    // Summary: 2 sessions, 2.5 hours, 75 mean minutes; data = (2,000 + 1,000) KiB.
    let summary = table(&oct, "summary");
    let cells = row(summary, 0);
    assert_eq!(&cells[1..3], &v(&["2.0000", "2.0000"])[..]);
    assert_eq!(cells[4], "2.5000");
    assert_eq!(cells[5], "75.0000");
    assert_eq!(cells[9], format!("{:.4}", 3000.0 * 1024.0 / 1e6));
    // The age × gender table counts both sessions in October, none in November.
    let age = table(&oct, "age_by_gender");
    assert!(
        age.rows
            .iter()
            .any(|r| matches!(r.cells.get(2), Some(Cell::Number(n)) if *n == 2.0))
    );

    let nov = report(november).await;
    let daily = table(&nov, "daily");
    assert_eq!(row(daily, 0), v(&["2026-11-01", "", "0.0000", "1.0000"]));
    let cells = row(table(&nov, "summary"), 0);
    assert_eq!(cells[1], "0.0000");
    assert_eq!(cells[4], "1.0000");
    assert_eq!(cells[9], format!("{:.4}", 2000.0 * 1024.0 / 1e6));
    assert!(store.check_rollups().await.unwrap().is_consistent());
    drop(store);
    under_test.finish().await;
}

/// The new cells: a PC that syncs by USB only has its sessions of the month dated by
/// estimate (its clock is believable, but no anchor checks it), and a day whose clock
/// read 2000 with nothing to bound it within a month is listed as undated, in the
/// summary, the matrix and the matrix's flag, and in no month's sessions.
#[tokio::test(flavor = "multi_thread")]
async fn estimated_and_undated_sessions_are_counted_and_shown() {
    estimated_and_undated_on(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn estimated_and_undated_sessions_are_counted_and_shown_on_postgres() {
    if let Some(backend) = Backend::postgres() {
        estimated_and_undated_on(backend).await;
    }
}

async fn estimated_and_undated_on(backend: Backend) {
    use jejak_testkit::sim::clocks::{SimClock, SimRun, history};
    let now = wib(2026, 12, 20, 9, 0);
    let clock: crate::store::ServerClock = Arc::new(move || now);
    let under_test = backend.open(clock).await;
    let store = under_test.store.as_ref();
    let adisara = LibraryCode::parse("adisara").unwrap();
    store
        .add_library(&adisara, "Perpustakaan Desa Adisara", Zone::Wib)
        .await
        .unwrap();
    let pc = PcCode::parse("pc-03").unwrap();
    store.add_device(&adisara, &pc).await.unwrap();
    let device = store.find_device(&adisara, &pc).await.unwrap().unwrap();
    let run = |n: u64, boot: DateTime<Utc>, sessions: usize, clock: SimClock| SimRun {
        run: Uuid::from_u64_pair(9, n),
        boot_ms: boot.timestamp_millis(),
        length_ms: 8 * 3_600_000,
        sessions,
        clock,
        cut: false,
    };
    let sim = jejak_testkit::sim::SimPc {
        library: adisara.clone(),
        pc: pc.clone(),
        epoch: Uuid::from_u64_pair(9, 9),
        clock_error_ms: 0,
    };
    let h = history(
        &sim,
        vec![
            run(0, wib(2026, 10, 27, 8, 0), 3, SimClock::Right),
            run(1, wib(2026, 10, 29, 8, 0), 2, SimClock::Reset),
        ],
        3,
    );
    let export = wib(2026, 10, 29, 15, 59).timestamp_millis();
    let bundle = h.batch((1, h.seq_at(export)), (1, export), &[], &[]);
    store
        .ingest(&device, bundle, now, Delivery::Carried)
        .await
        .unwrap();
    let month = NaiveDate::from_ymd_opt(2026, 10, 1).unwrap();
    let facts = store
        .month_facts(
            month,
            Some(&adisara),
            crate::report::FactsDetail::Breakdowns,
        )
        .await
        .unwrap();
    let report = village_monthly(&facts, None, &adisara, Lang::Id, now).unwrap();
    let summary = table(&report, "summary");
    let keys: Vec<&str> = summary.columns.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys[11..], ["estimated", "undated"]);
    let cells = row(summary, 0);
    // Three sessions in October, all dated by estimate; two whose month is unknown.
    assert_eq!(cells[1], "3.0000");
    assert_eq!(cells[11..], v(&["3.0000", "2.0000"]));

    let matrix = district_monthly(
        &facts,
        NaiveDate::from_ymd_opt(2026, 12, 20).unwrap(),
        Lang::Id,
        now,
    );
    let libs = table(&matrix, "libraries");
    let cells = row(libs, 0);
    assert_eq!(cells[7], "3.0000");
    assert_eq!(cells[19..], v(&["3.0000", "2.0000"]));
    assert_eq!(
        libs.rows[0].emphasis.as_ref().unwrap().reason.en,
        "2 sessions, date unknown (PC clock wrong)"
    );
    assert_eq!(
        row(libs, 1)[19..],
        v(&["3.0000", "2.0000"]),
        "the total row"
    );
    under_test.finish().await;
}
