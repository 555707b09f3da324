//! The PC's change log entries: every change on a PC is one `ChangeRecord` with the
//! device's next sequence number. `wire` turns them into the sync's wire format.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::DomainError;
use crate::event::PcEvent;
use crate::session::Session;

/// The thing a change wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum RecordBody {
    /// The full session at its new revision: the newest revision replaces the older.
    Session(Session),
    PcEvent(PcEvent),
}

impl RecordBody {
    /// The record's own id: a session keeps its id over its revisions.
    pub fn record_id(&self) -> Uuid {
        match self {
            RecordBody::Session(s) => s.id,
            RecordBody::PcEvent(e) => e.id,
        }
    }

    pub fn revision(&self) -> u32 {
        match self {
            RecordBody::Session(s) => s.revision,
            RecordBody::PcEvent(_) => 1,
        }
    }

    pub fn kind_code(&self) -> &'static str {
        match self {
            RecordBody::Session(_) => "session",
            RecordBody::PcEvent(_) => "pc_event",
        }
    }

    pub fn validate(&self) -> Result<(), DomainError> {
        match self {
            RecordBody::Session(s) => s.validate(),
            RecordBody::PcEvent(_) => Ok(()),
        }
    }
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
