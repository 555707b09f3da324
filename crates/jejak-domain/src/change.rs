//! The PC's change log entries: every change on a PC is one `ChangeRecord` with the
//! device's next sequence number. `wire` turns them into the sync's wire format.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::activity::Activity;
use crate::entry::Scope;
use crate::error::DomainError;
use crate::event::PcEvent;
use crate::identity::{LibraryCode, PcCode};
use crate::member_count::MemberCount;
use crate::session::Session;
use crate::visit::Visit;

/// The kinds of record the change log holds: a closed list, so that the compiler finds
/// every place a new kind must be handled (ARCHITECTURE.md, "How to add a record kind").
///
/// A server says which kinds it stores (`accepts` in `GET /api/v1/devices/me`); a PC
/// sends a server only those, and holds back the rest until the server takes them, so a
/// server older than a kind never stalls a PC's queue and never drops a record it does
/// not know.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    Session,
    PcEvent,
    /// A desk visit (buku tamu), in the wire's `entries`.
    Visit,
    /// A library's member count of a month, in the wire's `entries`.
    MemberCount,
    /// A library activity (kegiatan) with its participants, in the wire's `entries`.
    Activity,
}

impl RecordKind {
    /// Every kind this build knows, in the order of the wire format.
    pub const ALL: [RecordKind; 5] = [
        RecordKind::Session,
        RecordKind::PcEvent,
        RecordKind::Visit,
        RecordKind::MemberCount,
        RecordKind::Activity,
    ];

    /// The kinds of wire format v1, which every server takes: what a PC assumes of a
    /// server that does not say.
    pub const WIRE_V1: [RecordKind; 2] = [RecordKind::Session, RecordKind::PcEvent];

    /// The kind's code, on the wire and in the PC's change log.
    pub fn code(self) -> &'static str {
        match self {
            RecordKind::Session => "session",
            RecordKind::PcEvent => "pc_event",
            RecordKind::Visit => "visit",
            RecordKind::MemberCount => "member_count",
            RecordKind::Activity => "activity",
        }
    }

    /// Whose record it is: a PC's own, or the library's (one record whichever PC
    /// entered it).
    pub fn scope(self) -> Scope {
        match self {
            RecordKind::Session
            | RecordKind::PcEvent
            | RecordKind::Visit
            | RecordKind::Activity => Scope::Pc,
            RecordKind::MemberCount => Scope::Library,
        }
    }

    /// Whether the kind travels in the wire's generic `entries` (the low-volume kinds).
    pub fn is_entry(self) -> bool {
        match self {
            RecordKind::Session | RecordKind::PcEvent => false,
            RecordKind::Visit | RecordKind::MemberCount | RecordKind::Activity => true,
        }
    }

    /// The kind of a code; `None` for a kind this build does not know (a newer server
    /// may advertise one).
    pub fn from_code(code: &str) -> Option<RecordKind> {
        RecordKind::ALL.into_iter().find(|k| k.code() == code)
    }
}

/// The thing a change wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum RecordBody {
    /// The full session at its new revision: the newest revision replaces the older.
    Session(Session),
    PcEvent(PcEvent),
    /// A desk visit at its new revision (a withdrawal is one).
    Visit(Visit),
    /// A month's member count at its new revision.
    MemberCount(MemberCount),
    /// An activity at its new revision (an edit is one).
    Activity(Activity),
}

impl RecordBody {
    /// The record's own id: a session keeps its id over its revisions.
    pub fn record_id(&self) -> Uuid {
        match self {
            RecordBody::Session(s) => s.id,
            RecordBody::PcEvent(e) => e.id,
            RecordBody::Visit(v) => v.id,
            RecordBody::MemberCount(m) => m.id,
            RecordBody::Activity(a) => a.id,
        }
    }

    /// The library and PC the record is of.
    pub fn owner(&self) -> (&LibraryCode, &PcCode) {
        match self {
            RecordBody::Session(s) => (&s.library, &s.pc),
            RecordBody::PcEvent(e) => (&e.library, &e.pc),
            RecordBody::Visit(v) => (&v.library, &v.pc),
            RecordBody::MemberCount(m) => (&m.library, &m.pc),
            RecordBody::Activity(a) => (&a.library, &a.pc),
        }
    }

    /// The run (boot) the record belongs to: a session's revisions all name the run
    /// it started in.
    pub fn run_id(&self) -> Uuid {
        match self {
            RecordBody::Session(s) => s.run_id,
            RecordBody::PcEvent(e) => e.run_id,
            RecordBody::Visit(v) => v.run_id,
            RecordBody::MemberCount(m) => m.run_id,
            RecordBody::Activity(a) => a.run_id,
        }
    }

    pub fn revision(&self) -> u32 {
        match self {
            RecordBody::Session(s) => s.revision,
            RecordBody::PcEvent(_) => 1,
            RecordBody::Visit(v) => v.revision,
            RecordBody::MemberCount(m) => m.revision,
            RecordBody::Activity(a) => a.revision,
        }
    }

    pub fn kind(&self) -> RecordKind {
        match self {
            RecordBody::Session(_) => RecordKind::Session,
            RecordBody::PcEvent(_) => RecordKind::PcEvent,
            RecordBody::Visit(_) => RecordKind::Visit,
            RecordBody::MemberCount(_) => RecordKind::MemberCount,
            RecordBody::Activity(_) => RecordKind::Activity,
        }
    }

    pub fn kind_code(&self) -> &'static str {
        self.kind().code()
    }

    pub fn validate(&self) -> Result<(), DomainError> {
        match self {
            RecordBody::Session(s) => s.validate(),
            RecordBody::PcEvent(_) => Ok(()),
            RecordBody::Visit(v) => v.validate(),
            RecordBody::MemberCount(m) => m.validate(),
            RecordBody::Activity(a) => a.validate(),
        }
    }
}

/// Leaves out the revisions that a later change of the same record supersedes, as a
/// batch carries only the newest revision of each record of its range.
pub fn newest_revisions(records: Vec<ChangeRecord>) -> Vec<ChangeRecord> {
    let mut newest: HashMap<(RecordKind, Uuid), u64> = HashMap::new();
    for r in &records {
        let seq = newest
            .entry((r.body.kind(), r.body.record_id()))
            .or_insert(r.seq);
        *seq = (*seq).max(r.seq);
    }
    records
        .into_iter()
        .filter(|r| newest.get(&(r.body.kind(), r.body.record_id())) == Some(&r.seq))
        .collect()
}

/// One entry of a device's append-only change log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRecord {
    /// The device's sequence number: 1, 2, 3 … with no gaps within one store epoch.
    pub seq: u64,
    /// Wall time of the change as the PC's clock said.
    pub recorded_at: DateTime<Utc>,
    /// The run (one boot) and its monotonic milliseconds at the change.
    pub run_id: Uuid,
    pub mono_ms: u64,
    pub body: RecordBody,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_code_is_its_serde_name_and_unknown_codes_are_none() {
        for kind in RecordKind::ALL {
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::Value::String(kind.code().to_string())
            );
            assert_eq!(RecordKind::from_code(kind.code()), Some(kind));
        }
        assert_eq!(RecordKind::from_code("loan"), None);
    }
}
