//! The one generic form of a low-volume record (a desk visit, a month's member count):
//! what the wire's `entries` array and the server's `entries` table carry, whatever the
//! kind. Each kind declares its fields as a short list of small integers
//! ([`EntryRecord::fields`]) and reads them back, refusing a value outside its bounds
//! with the field's name; everything else (seq, id, revision, run, times) is common.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::activity::Activity;
use crate::change::{RecordBody, RecordKind};
use crate::identity::{LibraryCode, PcCode};
use crate::member_count::MemberCount;
use crate::visit::Visit;

/// Whose record it is: a PC's own (a UUIDv7 made on the PC, one writer) or the
/// library's (a UUIDv5 of the library, the kind and its natural key, so the same fact
/// entered on two PCs is one record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Pc,
    Library,
}

/// The namespace of library-scoped ids (a UUIDv5 of `library/kind/key`). Fixed for
/// ever: changing it would make every stored library-scoped record a different one.
pub const SCOPED_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6a656a61_6b2d_4c49_4252_415259000001);

/// The id of a library-scoped record: the same on every PC of the library.
pub fn scoped_id(library: &LibraryCode, kind: RecordKind, key: &str) -> Uuid {
    let name = format!("{}/{}/{}", library.as_str(), kind.code(), key);
    Uuid::new_v5(&SCOPED_ID_NAMESPACE, name.as_bytes())
}

/// A low-volume record in its generic form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRecord {
    pub kind: RecordKind,
    pub id: Uuid,
    pub revision: u32,
    pub run_id: Uuid,
    pub mono_ms: u64,
    /// Wall time of the entry as the PC's clock said, Unix ms.
    pub wall_ms: i64,
    /// The kind's own fields, in the kind's order. Never negative (every kind's reader
    /// refuses a negative value), which the server's packing relies on.
    pub fields: Vec<i64>,
    /// The kind's free-text fields, in the kind's order (an activity's title, partner
    /// and notes; empty for an absent optional one); empty for kinds without text.
    pub texts: Vec<String>,
}

/// A field of an entry outside what its kind allows: the wire refuses the batch (422)
/// naming `field` (such as `visit.people`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} is {value}, outside what a {kind} allows")]
pub struct EntryFieldError {
    pub kind: &'static str,
    pub field: &'static str,
    pub value: i64,
}

/// Reads field `index` of an entry (named `name`) as an index into `all` (a
/// vocabulary's `ALL`) or a number in `min..=max`.
pub(crate) struct FieldReader<'a> {
    pub kind: RecordKind,
    pub fields: &'a [i64],
    pub texts: &'a [String],
}

impl FieldReader<'_> {
    pub fn error(&self, field: &'static str, value: i64) -> EntryFieldError {
        EntryFieldError {
            kind: self.kind.code(),
            field,
            value,
        }
    }

    pub fn number(
        &self,
        index: usize,
        field: &'static str,
        min: i64,
        max: i64,
    ) -> Result<i64, EntryFieldError> {
        // A missing field reads as -1, which no field allows.
        let value = self.fields.get(index).copied().unwrap_or(-1);
        if (min..=max).contains(&value) {
            Ok(value)
        } else {
            Err(self.error(field, value))
        }
    }

    pub fn one_of<T: Copy>(
        &self,
        index: usize,
        field: &'static str,
        all: &[T],
    ) -> Result<T, EntryFieldError> {
        let value = self.number(index, field, 0, all.len() as i64 - 1)?;
        Ok(all[value as usize])
    }

    /// Refuses an entry with more fields than its kind has, or any text: a newer PC's
    /// extra field must not be dropped silently.
    pub fn exactly(&self, count: usize, field: &'static str) -> Result<(), EntryFieldError> {
        self.exactly_with_texts(count, 0, field)
    }

    /// As [`FieldReader::exactly`], for a kind with `texts` free-text fields.
    pub fn exactly_with_texts(
        &self,
        count: usize,
        texts: usize,
        field: &'static str,
    ) -> Result<(), EntryFieldError> {
        if self.fields.len() != count {
            Err(self.error(field, self.fields.len() as i64))
        } else if self.texts.len() != texts {
            Err(self.error(field, self.texts.len() as i64))
        } else {
            Ok(())
        }
    }

    /// Text `index` (an empty string when the entry has none there).
    pub fn text(&self, index: usize) -> String {
        self.texts.get(index).cloned().unwrap_or_default()
    }
}

/// The index of `value` in a vocabulary's `ALL`, as the wire carries it.
pub(crate) fn index_of<T: PartialEq>(all: &[T], value: &T) -> i64 {
    all.iter().position(|v| v == value).unwrap_or(0) as i64
}

impl RecordBody {
    /// The record in its generic form; `None` for sessions and pc events, which have
    /// columns of their own.
    pub fn entry(&self) -> Option<EntryRecord> {
        let mut texts = Vec::new();
        let (kind, id, revision, run_id, mono_ms, at, fields) = match self {
            RecordBody::Session(_) | RecordBody::PcEvent(_) => return None,
            RecordBody::Visit(v) => (
                RecordKind::Visit,
                v.id,
                v.revision,
                v.run_id,
                v.mono_ms,
                v.at,
                v.fields(),
            ),
            RecordBody::MemberCount(m) => (
                RecordKind::MemberCount,
                m.id,
                m.revision,
                m.run_id,
                m.mono_ms,
                m.at,
                m.fields(),
            ),
            RecordBody::Activity(a) => {
                texts = a.texts();
                (
                    RecordKind::Activity,
                    a.id,
                    a.revision,
                    a.run_id,
                    a.mono_ms,
                    a.at,
                    a.fields(),
                )
            }
        };
        Some(EntryRecord {
            kind,
            id,
            revision,
            run_id,
            mono_ms,
            wall_ms: at.timestamp_millis(),
            fields,
            texts,
        })
    }

    /// The record of a generic entry of `library`'s `pc`. Whether it keeps the domain's
    /// rules is [`RecordBody::validate`]'s question; this only refuses fields its kind
    /// cannot hold, and a kind that is not an entry.
    pub fn from_entry(
        library: &LibraryCode,
        pc: &PcCode,
        entry: &EntryRecord,
    ) -> Result<RecordBody, EntryFieldError> {
        let reader = FieldReader {
            kind: entry.kind,
            fields: &entry.fields,
            texts: &entry.texts,
        };
        // The wall time was range-checked by the caller; a time chrono cannot hold
        // reads as the epoch rather than panicking.
        let at = DateTime::<Utc>::from_timestamp_millis(entry.wall_ms).unwrap_or_default();
        let common = EntryCommon {
            id: entry.id,
            revision: entry.revision,
            library: library.clone(),
            pc: pc.clone(),
            at,
            run_id: entry.run_id,
            mono_ms: entry.mono_ms,
        };
        match entry.kind {
            RecordKind::Session | RecordKind::PcEvent => Err(EntryFieldError {
                kind: entry.kind.code(),
                field: "kind",
                value: 0,
            }),
            RecordKind::Visit => Visit::from_fields(common, &reader).map(RecordBody::Visit),
            RecordKind::MemberCount => {
                MemberCount::from_fields(common, &reader).map(RecordBody::MemberCount)
            }
            RecordKind::Activity => {
                Activity::from_fields(common, &reader).map(RecordBody::Activity)
            }
        }
    }
}

/// What every entry has besides its kind's fields.
pub(crate) struct EntryCommon {
    pub id: Uuid,
    pub revision: u32,
    pub library: LibraryCode,
    pub pc: PcCode,
    pub at: DateTime<Utc>,
    pub run_id: Uuid,
    pub mono_ms: u64,
}

/// One version of a record as the server meets it, for deciding which of two versions
/// of a library-scoped record stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryVersion<'a> {
    pub revision: u32,
    pub wall_ms: i64,
    pub pc: &'a str,
    pub fields: &'a [i64],
}

/// The rule for two versions of one library-scoped record (the same month's member
/// count entered on two PCs): the higher revision stands; at the same revision the
/// later entry by the PCs' clocks; then the PC whose code sorts last; then the larger
/// fields. It is a total order on versions, so whichever order the versions arrive in,
/// the server ends holding the same one: arrival order never changes a report.
pub fn library_scoped_supersedes(incoming: &EntryVersion, stored: &EntryVersion) -> bool {
    let rank = |v: &EntryVersion<'_>| (v.revision, v.wall_ms, v.pc.to_owned(), v.fields.to_vec());
    rank(incoming) > rank(stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tie_rule_gives_the_same_winner_in_every_arrival_order() {
        let f1 = [202611, 120, 4];
        let f2 = [202611, 125, 9];
        let versions = [
            EntryVersion {
                revision: 1,
                wall_ms: 10,
                pc: "pc-01",
                fields: &f1,
            },
            EntryVersion {
                revision: 1,
                wall_ms: 10,
                pc: "pc-02",
                fields: &f2,
            },
            EntryVersion {
                revision: 1,
                wall_ms: 9,
                pc: "pc-03",
                fields: &f2,
            },
            EntryVersion {
                revision: 2,
                wall_ms: 1,
                pc: "pc-01",
                fields: &f1,
            },
            EntryVersion {
                revision: 1,
                wall_ms: 10,
                pc: "pc-02",
                fields: &f1,
            },
        ];
        // Every permutation of the five, applied one by one as the server would.
        let mut winners = std::collections::HashSet::new();
        let mut order: Vec<usize> = (0..versions.len()).collect();
        permute(&mut order, 0, &mut |order| {
            let mut stored = versions[order[0]];
            for &i in &order[1..] {
                if library_scoped_supersedes(&versions[i], &stored) {
                    stored = versions[i];
                }
            }
            winners.insert((stored.revision, stored.wall_ms, stored.pc, stored.fields));
        });
        assert_eq!(winners.len(), 1, "{winners:?}");
        assert!(winners.contains(&(2, 1, "pc-01", &f1[..])));
        // At the same revision the later entry stands, then the later PC code.
        assert!(library_scoped_supersedes(&versions[1], &versions[0]));
        assert!(!library_scoped_supersedes(&versions[2], &versions[0]));
        assert!(!library_scoped_supersedes(&versions[0], &versions[0]));
    }

    fn permute(items: &mut Vec<usize>, k: usize, visit: &mut dyn FnMut(&[usize])) {
        if k == items.len() {
            visit(items);
            return;
        }
        for i in k..items.len() {
            items.swap(k, i);
            permute(items, k + 1, visit);
            items.swap(k, i);
        }
    }

    #[test]
    fn scoped_ids_depend_on_library_kind_and_key_only() {
        let a = LibraryCode::parse("dermaji").unwrap();
        let b = LibraryCode::parse("kebasen").unwrap();
        let id = scoped_id(&a, RecordKind::MemberCount, "2026-11");
        assert_eq!(id, scoped_id(&a, RecordKind::MemberCount, "2026-11"));
        assert_eq!(id.get_version_num(), 5);
        assert_ne!(id, scoped_id(&b, RecordKind::MemberCount, "2026-11"));
        assert_ne!(id, scoped_id(&a, RecordKind::MemberCount, "2026-12"));
        assert_ne!(id, scoped_id(&a, RecordKind::Visit, "2026-11"));
    }
}
