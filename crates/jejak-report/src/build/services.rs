//! What a library serves beyond its PCs over a month or a year: days served, visits by
//! the rule of [`crate::VISITS_RULE`], the visitor book's purposes, activities and their
//! participants, and the member count. The district matrix's services table and the
//! IPLM sheet both count with it, so the two always agree.

use jejak_domain::{ActivityType, Lang, VisitPurpose};

use super::{col, count, ratio};
use crate::counters;
use crate::facts::{LibraryFacts, library_visits, service_days};
use crate::model::{Cell, Column, ColumnKind, Text};

/// One library's or a group's services over a month or more.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Services {
    /// Days a PC was used or on, or the visitor book has a visitor.
    pub days_served: u64,
    /// Visits by the rule.
    pub visits: u64,
    /// The visitor book's people by purpose, in the order of [`VisitPurpose::ALL`].
    pub purposes: [u64; VisitPurpose::ALL.len()],
    /// Activities held.
    pub activities: u64,
    /// Their participants.
    pub participants: u64,
    /// The participants of socialisation/KIE activities (the IPLM's community
    /// participation).
    pub participants_kie: u64,
    /// Members at the end of the (latest) month with a count, and the new members of
    /// the months with one; `None` when no count was entered.
    pub members: Option<(u64, u64)>,
}

impl Services {
    /// One library's month. Its counters are read in one pass (the IPLM sheet reads a
    /// district's year of them); each sum is a count as [`month_count`] makes it.
    pub fn of_month(lib: &LibraryFacts) -> Services {
        let kie = ActivityType::SosialisasiKie.code();
        let mut purposes = [0i64; VisitPurpose::ALL.len()];
        let (mut activities, mut participants, mut participants_kie) = (0i64, 0i64, 0i64);
        let (mut members, mut new_members, mut entered) = (0i64, 0i64, false);
        for c in &lib.entry_counts {
            let key = &*c.key;
            if let Some(purpose) = counters::code_of(key, counters::VISIT_PEOPLE, counters::PURPOSE)
            {
                if let Some(i) = VisitPurpose::ALL.iter().position(|p| p.code() == purpose) {
                    purposes[i] += c.value;
                }
            } else if let Some(of_type) =
                counters::code_of(key, counters::PARTICIPANTS, counters::TYPE)
            {
                if of_type == kie {
                    participants_kie += c.value;
                }
            } else {
                match key {
                    counters::ACTIVITIES => activities += c.value,
                    counters::PARTICIPANTS => participants += c.value,
                    counters::MEMBERS => (members, entered) = (members + c.value, true),
                    counters::NEW_MEMBERS => (new_members, entered) = (new_members + c.value, true),
                    _ => {}
                }
            }
        }
        let count = |sum: i64| u64::try_from(sum).unwrap_or(0);
        Services {
            days_served: service_days(lib) as u64,
            visits: library_visits(lib).iter().map(|(_, v)| v).sum(),
            purposes: purposes.map(count),
            activities: count(activities),
            participants: count(participants),
            participants_kie: count(participants_kie),
            members: entered.then(|| (count(members), count(new_members))),
        }
    }

    /// Adds everything but the members, which a library and a group count differently.
    fn add_counts(&mut self, other: &Services) {
        self.days_served += other.days_served;
        self.visits += other.visits;
        for (a, b) in self.purposes.iter_mut().zip(other.purposes) {
            *a += b;
        }
        self.activities += other.activities;
        self.participants += other.participants;
        self.participants_kie += other.participants_kie;
    }

    /// Adds another library (or group) of the same period: members are summed over
    /// the libraries that entered a count.
    pub fn add_library(&mut self, other: &Services) {
        self.add_counts(other);
        self.members = match (self.members, other.members) {
            (Some((m, n)), Some((om, on))) => Some((m + om, n + on)),
            (one, None) | (None, one) => one,
        };
    }

    /// Adds the same library's next month: the members are the later count's, the new
    /// members are summed.
    pub fn add_later_month(&mut self, later: &Services) {
        self.add_counts(later);
        self.members = match (self.members, later.members) {
            (Some((_, n)), Some((m, on))) => Some((m, n + on)),
            (one, None) | (None, one) => one,
        };
    }

    /// The columns of [`Services::cells`].
    pub fn columns() -> Vec<Column> {
        let mut columns = vec![
            col(
                "days_served",
                "Hari layanan",
                "Days served",
                ColumnKind::Count,
            ),
            col("visits", "Kunjungan", "Visits", ColumnKind::Count),
            col(
                "visits_per_day",
                "Kunjungan/hari layanan",
                "Visits/day served",
                ColumnKind::Decimal(1),
            ),
        ];
        for purpose in VisitPurpose::ALL {
            columns.push(Column {
                key: format!("purpose_{}", purpose.code()),
                label: Text::new(
                    format!("Tujuan: {}", purpose.label(Lang::Id)),
                    format!("Purpose: {}", purpose.label(Lang::En)),
                ),
                kind: ColumnKind::Count,
            });
        }
        columns.extend([
            col("activities", "Kegiatan", "Activities", ColumnKind::Count),
            col("participants", "Peserta", "Participants", ColumnKind::Count),
            col(
                "participants_kie",
                "Peserta sosialisasi/KIE",
                "Socialisation/KIE participants",
                ColumnKind::Count,
            ),
            col("members", "Anggota", "Members", ColumnKind::Count),
            col(
                "new_members",
                "Anggota baru",
                "New members",
                ColumnKind::Count,
            ),
        ]);
        columns
    }

    /// Visits per day served (empty without a day served).
    pub fn visits_per_day(&self) -> Cell {
        ratio(self.visits as f64, self.days_served as f64)
    }

    /// The cells under [`Services::columns`].
    pub fn cells(&self) -> Vec<Cell> {
        let mut cells = vec![
            count(self.days_served),
            count(self.visits),
            self.visits_per_day(),
        ];
        cells.extend(self.purposes.iter().map(|n| count(*n)));
        cells.extend([
            count(self.activities),
            count(self.participants),
            count(self.participants_kie),
            self.members.map_or(Cell::Empty, |(m, _)| count(m)),
            self.members.map_or(Cell::Empty, |(_, n)| count(n)),
        ]);
        cells
    }
}
