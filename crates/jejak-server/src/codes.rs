//! The small integers the server stores instead of the vocabularies' text codes.
//!
//! A session must cost at most 64 bytes of disk, so every closed vocabulary is a small
//! integer, purposes are a bitmask, and a session's codes and revision share one
//! integer column (`attrs`, see [`SessionAttrs`]): in SQLite every column costs a header
//! byte besides its value, so one 4-byte integer holds what eight columns would spend
//! 12 to 16 bytes on. The mappings are written out as exhaustive `match`es, never as
//! positions in a list: adding a variant to the domain is then a compile error here
//! instead of a silent renumbering of stored data. Codes are never reused or changed.

use jejak_domain::{AgeGroup, EndReason, Gender, PcEventKind, Purpose, TimeQuality, UserKind};

/// Declares both directions of one mapping from the same table, so that they cannot
/// disagree.
macro_rules! mapping {
    ($to:ident, $from:ident, $ty:ident { $($variant:ident = $code:literal,)+ }) => {
        /// The stored code of a value.
        pub fn $to(value: $ty) -> i64 {
            match value {
                $($ty::$variant => $code,)+
            }
        }

        /// The value of a stored code; `None` for a code this build does not know.
        pub fn $from(code: i64) -> Option<$ty> {
            match code {
                $($code => Some($ty::$variant),)+
                _ => None,
            }
        }
    };
}

mapping!(end_reason_code, end_reason_from, EndReason {
    Logout = 0,
    Idle = 1,
    Shutdown = 2,
    PowerLoss = 3,
    Crash = 4,
    StaffEnded = 5,
});

mapping!(user_kind_code, user_kind_from, UserKind {
    NonAnggota = 0,
    Anggota = 1,
    Rombongan = 2,
    Pelatihan = 3,
    Staf = 4,
    Unknown = 5,
});

mapping!(gender_code, gender_from, Gender {
    L = 0,
    P = 1,
    X = 2,
});

mapping!(age_group_code, age_group_from, AgeGroup {
    Unknown = 0,
    Anak = 1,
    Remaja = 2,
    Pemuda = 3,
    Dewasa = 4,
    Madya = 5,
    Lansia = 6,
});

mapping!(time_quality_code, time_quality_from, TimeQuality {
    Trusted = 0,
    Corrected = 1,
    Estimated = 2,
});

mapping!(event_kind_code, event_kind_from, PcEventKind {
    Heartbeat = 0,
    Boot = 1,
    Shutdown = 2,
    InternetUp = 3,
    InternetDown = 4,
    ClockJump = 5,
    ClockSuspect = 6,
    StoreRecovered = 7,
});

/// The bit of one purpose in the stored mask.
pub(crate) fn purpose_bit(purpose: Purpose) -> i64 {
    match purpose {
        Purpose::Pendidikan => 1,
        Purpose::Ekonomi => 2,
        Purpose::Kesehatan => 4,
        Purpose::Komunikasi => 8,
        Purpose::Hobi => 16,
        Purpose::Pemerintahan => 32,
        Purpose::LiterasiDigital => 64,
        Purpose::Lainnya => 128,
    }
}

/// The stored mask of a session's purposes. The server keeps purposes as a set: the
/// domain forbids repeating one, and reports count each purpose once per session.
pub fn purposes_mask(purposes: &[Purpose]) -> i64 {
    purposes.iter().fold(0, |mask, p| mask | purpose_bit(*p))
}

/// The purposes of a stored mask, in the domain's order.
pub(crate) fn purposes_from(mask: i64) -> Vec<Purpose> {
    Purpose::ALL
        .iter()
        .copied()
        .filter(|p| mask & purpose_bit(*p) != 0)
        .collect()
}

/// The packed `attrs` column of a stored session: its codes and revision as one
/// mixed-radix number, so that a session at revision 3 or less fits a 3-byte SQLite
/// integer (8 single-field columns would cost 12 to 16 bytes). From the least
/// significant digit:
///
/// | digit | radix | field |
/// |---|---|---|
/// | who | 126 | user kind × 21 + gender × 7 + age group |
/// | how | 63 | end reason (6 while open) × 9 + time quality × 3 + PC's time quality |
/// | purposes | 256 | purposes mask |
/// | revision | — | the rest |
///
/// so `attrs = ((revision × 256 + purposes) × 63 + how) × 126 + who`. The `sessions_v`
/// view decodes it with the same arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionAttrs {
    pub end_reason: Option<i64>,
    pub user_kind: i64,
    pub gender: i64,
    pub age_group: i64,
    pub quality: i64,
    pub client_quality: i64,
    pub purposes: i64,
    pub revision: i64,
}

/// The end reason digit's value while a session is open.
const OPEN: i64 = 6;
const WHO: i64 = 126;
const HOW: i64 = 63;
const PURPOSES: i64 = 256;

impl SessionAttrs {
    /// The column's value. Every field is reduced to its digit's range (the codes above
    /// always are), so a bad code cannot spill into its neighbour; revisions beyond
    /// 2^40 (a u32 never gets there) saturate.
    pub fn pack(&self) -> i64 {
        let who = self.user_kind.rem_euclid(6) * 21
            + self.gender.rem_euclid(3) * 7
            + self.age_group.rem_euclid(7);
        let how = self.end_reason.map_or(OPEN, |e| e.rem_euclid(6)) * 9
            + self.quality.rem_euclid(3) * 3
            + self.client_quality.rem_euclid(3);
        ((self.revision.clamp(0, 1 << 40) * PURPOSES + (self.purposes & 0xff)) * HOW + how) * WHO
            + who
    }

    /// The fields of a stored value.
    pub fn unpack(attrs: i64) -> SessionAttrs {
        let who = attrs.rem_euclid(WHO);
        let how = attrs.div_euclid(WHO).rem_euclid(HOW);
        let rest = attrs.div_euclid(WHO * HOW);
        let end = how / 9;
        SessionAttrs {
            end_reason: (end != OPEN).then_some(end),
            user_kind: who / 21,
            gender: (who / 7) % 3,
            age_group: who % 7,
            quality: (how / 3) % 3,
            client_quality: how % 3,
            purposes: rest.rem_euclid(PURPOSES),
            revision: rest.div_euclid(PURPOSES),
        }
    }
}

/// The packed `attrs` column of a stored pc event: bits 0–3 the kind, 4–5 the time
/// quality as the server dated it.
pub(crate) fn event_attrs(kind: i64, quality: i64) -> i64 {
    (kind & 15) | (quality & 3) << 4
}

/// The kind and quality of a stored pc event's `attrs`.
pub(crate) fn event_attrs_unpack(attrs: i64) -> (i64, i64) {
    (attrs & 15, (attrs >> 4) & 3)
}

/// A row of `sessions` as both backends keep it, before decoding.
pub(crate) struct SessionColumns {
    pub id: Vec<u8>,
    pub attrs: i64,
    pub start_s: i64,
    pub skew_ms: i64,
    pub duration_s: i64,
    pub offline_s: i64,
    pub group_size: i64,
    /// The patron key's id in `patron_keys`, if the session had one.
    pub patron: Option<i64>,
    pub rx_kib: i64,
    pub tx_kib: i64,
}

impl SessionColumns {
    /// The stored session; `keys` maps patron key ids to the keys.
    pub(crate) fn decode(
        self,
        keys: &std::collections::HashMap<i64, jejak_domain::PatronKey>,
    ) -> Result<crate::store::StoredSession, crate::store::StoreError> {
        fn bad(what: &str) -> crate::store::StoreError {
            crate::store::StoreError::Inconsistent(format!("a stored {what} is invalid"))
        }
        fn known<T>(value: Option<T>, what: &str) -> Result<T, crate::store::StoreError> {
            value.ok_or_else(|| bad(what))
        }
        let time = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).ok_or_else(|| bad("time"));
        let count = |value: i64| u64::try_from(value).unwrap_or(0);
        let a = SessionAttrs::unpack(self.attrs);
        let end_reason = match a.end_reason {
            Some(c) => Some(known(end_reason_from(c), "end reason")?),
            None => None,
        };
        let corrected_start = time(self.start_s.saturating_mul(1000))?;
        let patron_key = match self.patron {
            Some(id) => Some(known(keys.get(&id).cloned(), "patron key")?),
            None => None,
        };
        Ok(crate::store::StoredSession {
            id: uuid::Uuid::from_slice(&self.id).map_err(|_| bad("session id"))?,
            revision: u32::try_from(a.revision).map_err(|_| bad("revision"))?,
            raw_start: time(
                self.start_s
                    .saturating_mul(1000)
                    .saturating_add(self.skew_ms),
            )?,
            corrected_start,
            corrected_end: end_reason
                .map(|_| corrected_start + chrono::Duration::seconds(self.duration_s)),
            duration_secs: count(self.duration_s),
            end_reason,
            patron: jejak_domain::PatronProfile {
                user_kind: known(user_kind_from(a.user_kind), "user kind")?,
                purposes: purposes_from(a.purposes),
                gender: known(gender_from(a.gender), "gender")?,
                age_group: known(age_group_from(a.age_group), "age group")?,
                group_size: u32::try_from(self.group_size).map_err(|_| bad("group size"))?,
                patron_key,
            },
            rx_kib: count(self.rx_kib),
            tx_kib: count(self.tx_kib),
            online_secs: count(self.duration_s.saturating_sub(self.offline_s)),
            client_time_quality: known(time_quality_from(a.client_quality), "time quality")?,
            time_quality: known(time_quality_from(a.quality), "time quality")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attrs_round_trip_and_stay_small() {
        let a = SessionAttrs {
            end_reason: Some(end_reason_code(EndReason::StaffEnded)),
            user_kind: user_kind_code(UserKind::Unknown),
            gender: gender_code(Gender::X),
            age_group: age_group_code(AgeGroup::Lansia),
            quality: time_quality_code(TimeQuality::Estimated),
            client_quality: time_quality_code(TimeQuality::Corrected),
            purposes: purposes_mask(Purpose::ALL),
            revision: 3,
        };
        assert_eq!(SessionAttrs::unpack(a.pack()), a);
        let open = SessionAttrs {
            end_reason: None,
            revision: u32::MAX as i64,
            ..a
        };
        assert_eq!(SessionAttrs::unpack(open.pack()), open);
        // Any session at revision 3 or less fits a 3-byte SQLite integer.
        assert!(a.pack() < 1 << 23);
        let mut exhaustive = 0;
        for revision in [1, 2, 3, 4, 1000] {
            for end in [None, Some(0), Some(5)] {
                for (q, cq) in [(0, 0), (1, 2), (2, 1)] {
                    let v = SessionAttrs {
                        end_reason: end,
                        quality: q,
                        client_quality: cq,
                        revision,
                        ..a
                    };
                    assert_eq!(SessionAttrs::unpack(v.pack()), v);
                    exhaustive += 1;
                }
            }
        }
        assert_eq!(exhaustive, 45);
        for kind in PcEventKind::ALL {
            let packed = event_attrs(event_kind_code(*kind), 2);
            assert_eq!(event_attrs_unpack(packed), (event_kind_code(*kind), 2));
        }
    }

    #[test]
    fn every_value_round_trips_and_codes_are_distinct() {
        fn check<T: Copy + PartialEq + std::fmt::Debug>(
            all: &[T],
            to: fn(T) -> i64,
            from: fn(i64) -> Option<T>,
        ) {
            let mut seen = std::collections::HashSet::new();
            for v in all {
                assert!(seen.insert(to(*v)), "{v:?} shares a code");
                assert_eq!(from(to(*v)), Some(*v));
            }
            assert_eq!(from(-1), None);
        }
        check(EndReason::ALL, end_reason_code, end_reason_from);
        check(UserKind::ALL, user_kind_code, user_kind_from);
        check(Gender::ALL, gender_code, gender_from);
        check(AgeGroup::ALL, age_group_code, age_group_from);
        check(TimeQuality::ALL, time_quality_code, time_quality_from);
        check(PcEventKind::ALL, event_kind_code, event_kind_from);
        let all = Purpose::ALL.to_vec();
        assert_eq!(purposes_from(purposes_mask(&all)), all);
        assert_eq!(purposes_mask(&[]), 0);
    }
}
