//! Simulated village PCs for the tests and the benchmarks: realistic sessions and the
//! batches a PC would send of them, and (in [`clocks`]) a PC whose clock lies.
//!
//! The sessions follow the brief's village library: a PC boots in the morning, serves a
//! handful of patrons for 15 minutes to 2 hours each, with one to three purposes, about
//! a third of them members with a patron key, and tens of megabytes of traffic.

use chrono::{DateTime, TimeZone, Utc};
use jejak_domain::{
    AgeGroup, ChangeRecord, ClientInstant, ClockAnchor, EndReason, Gender, LibraryCode, PatronKey,
    PatronProfile, PcCode, Purpose, RecordBody, Session, TimeQuality, UserKind, WireBatch,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

pub mod clocks;

/// One simulated PC and its clock.
#[derive(Debug, Clone)]
pub struct SimPc {
    /// Its library.
    pub library: LibraryCode,
    /// Its code.
    pub pc: PcCode,
    /// Its store's epoch.
    pub epoch: Uuid,
    /// How far its wall clock is off (PC wall minus true time), ms.
    pub clock_error_ms: i64,
}

/// Sessions of one PC with their true start times (the server's clock).
#[derive(Debug, Clone)]
pub struct SimLog {
    /// The change log, seqs from 1, each session at its final revision.
    pub records: Vec<ChangeRecord>,
    /// Each run and the true time it booted, for anchors.
    pub runs: Vec<(Uuid, DateTime<Utc>)>,
    /// The true start of each session, by id.
    pub true_starts: Vec<(Uuid, DateTime<Utc>)>,
}

fn uuid_v7_at(rng: &mut StdRng, at: DateTime<Utc>) -> Uuid {
    let mut random = [0u8; 10];
    rng.fill(&mut random);
    uuid::Builder::from_unix_timestamp_millis(at.timestamp_millis().max(0) as u64, &random)
        .into_uuid()
}

/// How busy a simulated PC is: sessions a day, their length and the gaps between them
/// (each a half-open range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Sessions a day.
    pub per_day: (u32, u32),
    /// Minutes a session lasts.
    pub minutes: (i64, i64),
    /// Minutes between two sessions.
    pub gap_minutes: (i64, i64),
}

impl Pace {
    /// A typical village PC: 3 to 8 sessions a day of 15 minutes to 2 hours.
    pub const TYPICAL: Pace = Pace {
        per_day: (3, 9),
        minutes: (15, 120),
        gap_minutes: (1, 30),
    };
    /// The brief's stress district: about 17 sessions a day per PC (6.5 million a year
    /// over 350 libraries of three PCs), shorter and back to back.
    pub const STRESS: Pace = Pace {
        per_day: (13, 22),
        minutes: (10, 40),
        gap_minutes: (0, 6),
    };
}

/// `sessions` realistic sessions of `pc`, a few a day from `first_day` on. Every run
/// (one boot per day) starts at 07:30 local time (WIB); the PC's wall clock is off by
/// `pc.clock_error_ms`. Deterministic for a given `seed`.
pub fn simulate(pc: &SimPc, sessions: usize, first_day: DateTime<Utc>, seed: u64) -> SimLog {
    simulate_at(pc, sessions, first_day, seed, Pace::TYPICAL)
}

/// [`simulate`] at another pace.
pub fn simulate_at(
    pc: &SimPc,
    sessions: usize,
    first_day: DateTime<Utc>,
    seed: u64,
    pace: Pace,
) -> SimLog {
    let mut rng = StdRng::seed_from_u64(seed);
    let keys: Vec<PatronKey> = (0..40)
        .map(|_| {
            let mut bytes = [0u8; 32];
            rng.fill(&mut bytes);
            PatronKey::parse(&hex::encode(bytes))
                .expect("64 lowercase hex digits are exactly what a patron key is")
        })
        .collect();
    let mut log = SimLog {
        records: Vec::with_capacity(sessions),
        runs: Vec::new(),
        true_starts: Vec::with_capacity(sessions),
    };
    let mut day = 0i64;
    let mut seq = 0u64;
    while log.records.len() < sessions {
        // 07:30 WIB is 00:30 UTC.
        let boot = first_day + chrono::Duration::days(day) + chrono::Duration::minutes(30);
        let run = uuid_v7_at(&mut rng, boot);
        log.runs.push((run, boot));
        let mut t = boot + chrono::Duration::minutes(rng.random_range(10..60));
        let per_day = rng.random_range(pace.per_day.0..pace.per_day.1);
        for _ in 0..per_day {
            if log.records.len() >= sessions {
                break;
            }
            let minutes: i64 = rng.random_range(pace.minutes.0..pace.minutes.1);
            let duration = minutes * 60 + rng.random_range(0..60);
            let wall = t + chrono::Duration::milliseconds(pc.clock_error_ms);
            let mono = (t - boot).num_milliseconds() as u64;
            let purposes_n = rng.random_range(1..=2);
            let mut purposes = Vec::new();
            while purposes.len() < purposes_n {
                let p = Purpose::ALL[rng.random_range(0..Purpose::ALL.len())];
                if !purposes.contains(&p) {
                    purposes.push(p);
                }
            }
            let member = rng.random_bool(0.35);
            let kib_per_s = rng.random_range(2..40u64);
            let id = uuid_v7_at(&mut rng, wall);
            seq += 1;
            log.true_starts.push((id, t));
            log.records.push(ChangeRecord {
                seq,
                recorded_at: wall + chrono::Duration::seconds(duration),
                run_id: run,
                mono_ms: mono + duration as u64 * 1000,
                body: RecordBody::Session(Session {
                    id,
                    revision: rng.random_range(2..4),
                    library: pc.library.clone(),
                    pc: pc.pc.clone(),
                    started_at: wall,
                    ended_at: Some(wall + chrono::Duration::seconds(duration)),
                    duration_secs: duration as u64,
                    end_reason: Some(if rng.random_bool(0.85) {
                        EndReason::Logout
                    } else {
                        EndReason::Idle
                    }),
                    patron: PatronProfile {
                        user_kind: if member {
                            UserKind::Anggota
                        } else {
                            UserKind::NonAnggota
                        },
                        purposes,
                        gender: if rng.random_bool(0.5) {
                            Gender::L
                        } else {
                            Gender::P
                        },
                        age_group: AgeGroup::ALL[rng.random_range(1..6)],
                        group_size: if rng.random_bool(0.9) {
                            1
                        } else {
                            rng.random_range(2..6)
                        },
                        patron_key: member.then(|| keys[rng.random_range(0..keys.len())].clone()),
                    },
                    bytes_rx: duration as u64 * kib_per_s * 1024,
                    bytes_tx: duration as u64 * kib_per_s * 100,
                    online_secs: duration as u64 - rng.random_range(0..60),
                    time_quality: TimeQuality::Trusted,
                    run_id: run,
                    started_mono_ms: mono,
                }),
            });
            t += chrono::Duration::seconds(duration)
                + chrono::Duration::minutes(
                    rng.random_range(pace.gap_minutes.0..pace.gap_minutes.1),
                );
        }
        day += 1;
    }
    log
}

/// The log in batches of `per_batch` records as the sync client would send them, each
/// with an anchor for every run it uses (measured at the true time `sync_at`, when the
/// run's monotonic clock read `sync_at - boot`).
pub fn batches(
    pc: &SimPc,
    log: &SimLog,
    per_batch: usize,
    sync_at: DateTime<Utc>,
) -> Vec<WireBatch> {
    let mut out = Vec::new();
    let per_batch = per_batch.max(1);
    for chunk in log.records.chunks(per_batch) {
        let (Some(first), Some(last)) = (chunk.first(), chunk.last()) else {
            continue;
        };
        let mut anchors: Vec<ClockAnchor> = Vec::new();
        for record in chunk {
            if anchors.iter().any(|a| a.run == record.run_id) {
                continue;
            }
            if let Some((run, boot)) = log.runs.iter().find(|(run, _)| *run == record.run_id) {
                anchors.push(ClockAnchor {
                    run: *run,
                    mono_ms: (sync_at - *boot).num_milliseconds().max(0) as u64,
                    server_ms: sync_at.timestamp_millis(),
                    uncertainty_ms: 40,
                });
            }
        }
        let (last_run, last_boot) = log
            .runs
            .iter()
            .find(|(run, _)| *run == last.run_id)
            .copied()
            .unwrap_or((last.run_id, sync_at));
        out.push(WireBatch::encode(
            Uuid::new_v4(),
            pc.library.clone(),
            pc.pc.clone(),
            pc.epoch,
            first.seq,
            last.seq,
            ClientInstant {
                run: last_run,
                mono_ms: (sync_at - last_boot).num_milliseconds().max(0) as u64,
                wall_ms: sync_at.timestamp_millis() + pc.clock_error_ms,
            },
            anchors,
            chunk,
        ));
    }
    out
}

/// `count` PCs: libraries `lib-00`, `lib-01` … with three PCs each, clocks off by up to
/// ±3 s (NTP-less PCs drift).
pub fn district(count: usize, seed: u64) -> Vec<SimPc> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|i| SimPc {
            library: LibraryCode::parse(&format!("lib-{:02}", i / 3))
                .expect("a valid library code"),
            pc: PcCode::parse(&format!("pc-{:02}", i % 3 + 1)).expect("a valid PC code"),
            epoch: Uuid::from_u64_pair(seed, i as u64),
            clock_error_ms: rng.random_range(-3_000..3_000),
        })
        .collect()
}

/// The start of the simulated month: 2026-10-01 00:00 UTC.
pub fn month_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// A year of one library's desk from `first_day`: about 15 visitor-book entries an open
/// day (Sundays closed), four activities a month and each month's member count, as one
/// run of a desk PC.
pub fn desk_year(pc: &SimPc, first_day: DateTime<Utc>, seed: u64) -> SimLog {
    use chrono::Datelike;
    use jejak_domain::{
        Activity, ActivityPlace, ActivityType, AgeGroup, ChangeRecord, Gender, MemberCount,
        Participants, RecordBody, UserKind, Visit, VisitPurpose, YearMonth,
    };

    let mut rng = StdRng::seed_from_u64(seed);
    let run = uuid::Uuid::from_u64_pair(seed, 7);
    let mut records = Vec::new();
    let push = |records: &mut Vec<ChangeRecord>, at: DateTime<Utc>, body| {
        let seq = records.len() as u64 + 1;
        records.push(ChangeRecord {
            seq,
            recorded_at: at,
            run_id: run,
            mono_ms: (at - first_day).num_milliseconds().max(0) as u64,
            body,
        });
    };
    for day in 0..365 {
        let morning = first_day + chrono::Duration::days(day) + chrono::Duration::hours(1);
        if morning.weekday() == chrono::Weekday::Sun {
            continue;
        }
        for _ in 0..rng.random_range(8..23) {
            let at = morning + chrono::Duration::seconds(rng.random_range(0..25_200));
            let group = rng.random_range(0..20) == 0;
            let visit = Visit {
                id: uuid::Uuid::from_u64_pair(seed, records.len() as u64 + 100),
                revision: 1,
                library: pc.library.clone(),
                pc: pc.pc.clone(),
                at,
                run_id: run,
                mono_ms: (at - first_day).num_milliseconds().max(0) as u64,
                gender: Gender::ALL[rng.random_range(0..2)],
                age_group: AgeGroup::ALL[rng.random_range(0..6)],
                user_kind: if group {
                    UserKind::Rombongan
                } else {
                    UserKind::VISITORS[rng.random_range(0..2)]
                },
                purpose: VisitPurpose::ALL[rng.random_range(0..VisitPurpose::ALL.len())],
                people: if group { rng.random_range(5..30) } else { 1 },
                withdrawn: false,
            };
            push(&mut records, at, RecordBody::Visit(visit));
        }
        let date = morning.date_naive();
        if [3, 10, 17, 24].contains(&date.day()) {
            let mut participants = Participants::default();
            for _ in 0..rng.random_range(4..9) {
                participants.set(
                    Gender::ALL[rng.random_range(0..2)],
                    AgeGroup::ALL[rng.random_range(0..6)],
                    rng.random_range(1..15),
                );
            }
            let activity_type = ActivityType::ALL[rng.random_range(0..ActivityType::ALL.len())];
            let at = morning + chrono::Duration::hours(7);
            let activity = Activity {
                id: uuid::Uuid::from_u64_pair(seed, records.len() as u64 + 100),
                revision: 1,
                library: pc.library.clone(),
                pc: pc.pc.clone(),
                at,
                run_id: run,
                mono_ms: (at - first_day).num_milliseconds().max(0) as u64,
                date,
                start: chrono::NaiveTime::from_hms_opt(9, 0, 0).expect("09:00 is a time"),
                duration_minutes: 120,
                activity_type,
                title: format!(
                    "{} untuk warga desa",
                    activity_type.label(jejak_domain::Lang::Id)
                ),
                partner: None,
                place: ActivityPlace::ALL[rng.random_range(0..2)],
                participants,
                notes: None,
            };
            push(&mut records, at, RecordBody::Activity(activity));
        }
        if date.day() == 25 {
            let month = YearMonth::of(date).expect("a simulated date has a month");
            let at = morning + chrono::Duration::hours(8);
            let count = MemberCount {
                id: MemberCount::id_for(&pc.library, month),
                revision: 1,
                library: pc.library.clone(),
                pc: pc.pc.clone(),
                at,
                run_id: run,
                mono_ms: (at - first_day).num_milliseconds().max(0) as u64,
                month,
                members: 150 + date.month() * 3,
                new_members: 3,
            };
            push(&mut records, at, RecordBody::MemberCount(count));
        }
    }
    SimLog {
        records,
        runs: vec![(run, first_day)],
        true_starts: Vec::new(),
    }
}
