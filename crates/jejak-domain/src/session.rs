//! A session: one continuous use of one PC by one person or one group.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::DomainError;
use crate::identity::{LibraryCode, PcCode};
use crate::vocab::{AgeGroup, EndReason, Gender, Purpose, TimeQuality, UserKind};

/// The most people counted at one PC; larger numbers are typing mistakes.
pub const MAX_GROUP_SIZE: u32 = 200;
/// A session names one to three purposes (none while nobody has said).
pub const MAX_PURPOSES: usize = 3;

/// What the patron (or the librarian for them) says at check-in. Only categories:
/// never a name, a NIK, a phone number or a member number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatronProfile {
    pub user_kind: UserKind,
    /// Empty while the purpose is not known (a session nobody checked in).
    pub purposes: Vec<Purpose>,
    pub gender: Gender,
    pub age_group: AgeGroup,
    pub group_size: u32,
    pub patron_key: Option<PatronKey>,
}

impl Default for PatronProfile {
    fn default() -> Self {
        PatronProfile {
            user_kind: UserKind::Unknown,
            purposes: Vec::new(),
            gender: Gender::X,
            age_group: AgeGroup::Unknown,
            group_size: 1,
            patron_key: None,
        }
    }
}

impl PatronProfile {
    pub fn validate(&self) -> Result<(), DomainError> {
        if self.purposes.len() > MAX_PURPOSES {
            return Err(DomainError::TooManyPurposes {
                given: self.purposes.len(),
            });
        }
        for (i, p) in self.purposes.iter().enumerate() {
            if self.purposes[..i].contains(p) {
                return Err(DomainError::DuplicatePurpose { purpose: p.code() });
            }
        }
        if !(1..=MAX_GROUP_SIZE).contains(&self.group_size) {
            return Err(DomainError::GroupSize {
                given: self.group_size,
            });
        }
        Ok(())
    }
}

/// A pseudonymous patron key: the HMAC-SHA256 of a member number under a per-library
/// secret, as 64 lowercase hex characters. The type refuses anything else, so a member
/// number can never be stored in its place by mistake.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PatronKey(String);

impl PatronKey {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let ok = raw.len() == 64
            && raw
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(PatronKey(raw.to_string()))
        } else {
            Err(DomainError::BadPatronKey)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PatronKey {
    type Error = DomainError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<PatronKey> for String {
    fn from(key: PatronKey) -> String {
        key.0
    }
}

/// A session as the PC records it and the sync carries it. Each change makes a new
/// revision; the highest revision is the truth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// UUIDv7 made on the PC, so it is unique without asking anyone and sorts by time.
    pub id: Uuid,
    /// Starts at 1 and grows with every change of this session.
    pub revision: u32,
    pub library: LibraryCode,
    pub pc: PcCode,
    /// Wall time at the start, as the PC's clock said (UTC).
    pub started_at: DateTime<Utc>,
    /// `started_at` plus the monotonic duration, so that a wall clock that jumps
    /// during the session cannot make the end come before the start.
    pub ended_at: Option<DateTime<Utc>>,
    /// Seconds of use measured with the monotonic clock (so far, while open).
    pub duration_secs: u64,
    pub end_reason: Option<EndReason>,
    #[serde(flatten)]
    pub patron: PatronProfile,
    pub bytes_rx: u64,
    pub bytes_tx: u64,
    /// Seconds of the session during which the connectivity probe found the link up.
    pub online_secs: u64,
    pub time_quality: TimeQuality,
    /// The run (one boot of the PC) whose monotonic clock measured this session.
    pub run_id: Uuid,
    /// Monotonic milliseconds since the run began, at the start of the session.
    pub started_mono_ms: u64,
}

impl Session {
    pub fn is_open(&self) -> bool {
        self.ended_at.is_none()
    }

    pub fn validate(&self) -> Result<(), DomainError> {
        if self.revision == 0 {
            return Err(DomainError::RevisionZero);
        }
        self.patron.validate()?;
        match (self.ended_at, self.end_reason) {
            (Some(_), None) => return Err(DomainError::EndWithoutReason),
            (None, Some(_)) => return Err(DomainError::ReasonWithoutEnd),
            (Some(end), Some(_)) if end < self.started_at => {
                return Err(DomainError::EndBeforeStart);
            }
            _ => {}
        }
        Ok(())
    }
}

/// Parses the comma-separated purposes a person typed, e.g. `pendidikan,ekonomi`.
pub fn parse_purposes(input: &str) -> Result<Vec<Purpose>, DomainError> {
    let purposes = input
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(Purpose::parse)
        .collect::<Result<Vec<_>, _>>()?;
    let profile = PatronProfile {
        purposes,
        ..PatronProfile::default()
    };
    profile.validate()?;
    Ok(profile.purposes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lang::Lang;
    use chrono::TimeZone;

    fn session() -> Session {
        Session {
            id: Uuid::now_v7(),
            revision: 1,
            library: LibraryCode::parse("dermaji").unwrap(),
            pc: PcCode::parse("pc-01").unwrap(),
            started_at: Utc.with_ymd_and_hms(2026, 11, 2, 3, 0, 0).unwrap(),
            ended_at: None,
            duration_secs: 0,
            end_reason: None,
            patron: PatronProfile::default(),
            bytes_rx: 0,
            bytes_tx: 0,
            online_secs: 0,
            time_quality: TimeQuality::Trusted,
            run_id: Uuid::now_v7(),
            started_mono_ms: 1000,
        }
    }

    #[test]
    fn purposes_are_one_to_three_and_distinct() {
        assert_eq!(
            parse_purposes("pendidikan, ekonomi").unwrap(),
            vec![Purpose::Pendidikan, Purpose::Ekonomi]
        );
        assert!(matches!(
            parse_purposes("hobi,kesehatan,ekonomi,lainnya"),
            Err(DomainError::TooManyPurposes { given: 4 })
        ));
        assert!(matches!(
            parse_purposes("hobi,hobby"),
            Err(DomainError::DuplicatePurpose { purpose: "hobi" })
        ));
        let err = parse_purposes("pendidkan").unwrap_err();
        assert!(err.to_string().contains("pilihan yang sah"), "{err}");
    }

    #[test]
    fn an_ended_session_needs_a_reason_and_a_sane_end() {
        let mut s = session();
        assert!(s.validate().is_ok());
        s.ended_at = Some(s.started_at);
        assert_eq!(s.validate(), Err(DomainError::EndWithoutReason));
        s.end_reason = Some(EndReason::Logout);
        assert!(s.validate().is_ok());
        s.ended_at = Some(s.started_at - chrono::Duration::seconds(1));
        assert_eq!(s.validate(), Err(DomainError::EndBeforeStart));
        s.ended_at = None;
        assert_eq!(s.validate(), Err(DomainError::ReasonWithoutEnd));
        s.end_reason = None;
        s.revision = 0;
        assert_eq!(s.validate(), Err(DomainError::RevisionZero));
    }

    #[test]
    fn group_size_is_bounded() {
        let mut s = session();
        s.patron.group_size = 0;
        assert!(s.validate().is_err());
        s.patron.group_size = 201;
        let err = s.validate().unwrap_err();
        assert!(err.message(Lang::En).contains("1 to 200"));
    }

    #[test]
    fn a_member_number_is_not_a_patron_key() {
        assert!(PatronKey::parse("12345678").is_err());
        assert!(PatronKey::parse(&"ab".repeat(32)).is_ok());
        assert!(PatronKey::parse(&"AB".repeat(32)).is_err());
    }

    #[test]
    fn sessions_round_trip_as_json() {
        let mut s = session();
        s.patron.purposes = vec![Purpose::Kesehatan];
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"purposes\":[\"kesehatan\"]"), "{json}");
        assert_eq!(serde_json::from_str::<Session>(&json).unwrap(), s);
    }
}
