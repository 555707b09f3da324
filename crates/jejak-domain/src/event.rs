//! pc events: what happened to the PC itself (power, internet, clock), from which the
//! server derives uptime during opening hours.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::identity::{LibraryCode, PcCode};
use crate::vocab::PcEventKind;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PcEvent {
    pub id: Uuid,
    pub library: LibraryCode,
    pub pc: PcCode,
    pub kind: PcEventKind,
    /// Wall time as the PC's clock said (UTC).
    pub at: DateTime<Utc>,
    pub run_id: Uuid,
    /// Monotonic milliseconds since the run began.
    pub mono_ms: u64,
    /// For `clock_jump`: how far the wall clock moved beyond what the monotonic clock
    /// measured, in milliseconds (negative when it went back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_delta_ms: Option<i64>,
}
