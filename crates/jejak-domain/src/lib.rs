//! Jejak's domain: what a session and a pc event are, the closed vocabularies with
//! Indonesian and English labels, validation, and the records the sync carries.
//!
//! This crate does no IO: no files, no clocks, no network. Callers pass times in.

mod activity;
mod change;
mod device_key;
mod entry;
mod error;
mod event;
mod identity;
mod lang;
mod library;
mod member_count;
#[cfg(feature = "openapi")]
mod openapi;
mod session;
mod visit;
mod vocab;
mod wire;

pub use activity::{
    Activity, MAX_DURATION_MINUTES, MAX_NOTES_CHARS, MAX_PARTICIPANTS_PER_CELL, MAX_PARTNER_CHARS,
    MAX_TITLE_CHARS, Participants, parse_date, parse_time,
};
pub use change::{ChangeRecord, RecordBody, RecordKind, newest_revisions};
pub use device_key::{KeyRegistrationAnswer, KeyRegistrationRequest};
pub use entry::{
    EntryFieldError, EntryRecord, EntryVersion, SCOPED_ID_NAMESPACE, Scope,
    library_scoped_supersedes, scoped_id,
};
pub use error::{DomainError, Field};
pub use event::PcEvent;
pub use identity::{DeviceIdentity, LibraryCode, PcCode};
pub use lang::{Lang, UnknownLang};
pub use library::{DetailField, LibraryDetails, LibraryDetailsEdit, LibraryDetailsError};
pub use member_count::{MAX_MEMBERS, MemberCount, YearMonth};
pub use session::{
    MAX_GROUP_SIZE, MAX_PURPOSES, PatronKey, PatronProfile, Session, parse_purposes,
};
pub use visit::{MAX_VISIT_PEOPLE, Visit, check_people};
pub use vocab::{
    ActivityPlace, ActivityType, AgeGroup, EndReason, Gender, PcEventKind, Purpose, TimeQuality,
    UserKind, VisitPurpose, Zone,
};
pub use wire::{
    BATCH_MEDIA_TYPE, BatchAck, BatchRecord, BatchShapeError, ClientInstant, ClockAnchor,
    ClockBound, EARLIEST_SERVER_MS, EntryRow, EventColumns, HexId, MAX_ENTRY_FIELDS, Problem,
    RejectedRecord, SeqRange, SessionColumns, WIRE_VERSION, WireBatch,
};
