//! The generic store of the low-volume record kinds (visits, member counts, activities), without
//! any IO: what a backend keeps of an entry, and the revision rules that decide what a
//! resent or newer entry does. Both backends keep one table, `entries`, keyed by
//! (library, kind, id), and call [`decide`]; no kind has SQL of its own.
//!
//! The rules, as for sessions: a higher revision replaces the stored one (its counts
//! taken away first), a lower one is already superseded, the same revision with the
//! same content is a duplicate and with other content a conflict (the stored one is
//! kept and the record is reported as rejected). A per-PC kind's id belongs to the PC
//! that first sent it: another PC sending it is a conflict. A library-scoped kind's id
//! is the library's (a UUIDv5, `jejak_domain::scoped_id`): versions from two PCs are
//! decided by `jejak_domain::library_scoped_supersedes`, a total order, so arrival order
//! never changes which version stands.
//!
//! Packing: an entry's integer fields are kept as zigzag varints ([`pack_entry`]); a
//! kind with free text (an activity's title, partner, notes) adds a -1 varint (no
//! field is ever negative) and then each text as its byte length and its UTF-8 bytes,
//! so a visit's row keeps its bytes and a text kind needs no column of its own.
//!
//! Dating: an entry's day is its wall time dated like a pc event's (`dating::date`, by
//! its run's anchor or the PC's clock offset), once, when it is first stored or
//! replaced. When a later batch re-dates its run, sessions and events move but an entry
//! does not yet: the run plan's record lists hold only sessions and events (entries give
//! a run no evidence), and a visit is entered at the desk while the librarian watches
//! the clock, so a misdated one is rare; carrying entries in the plan's lists is the
//! next step if districts see it. A member count's day is its month's first day and an
//! activity's its own date (the day it was held, which the domain bounds against the
//! entry time), whatever its time.
//!
//! Retention: `jejak server prune` removes raw sessions and events of final months, not
//! entries (a village's year of visits is a few hundred kilobytes); an entry that would
//! count in a pruned month and is not stored yet is refused as `beyond-retention`, as a
//! session is, and the recount leaves pruned months' counters as they are.

use jejak_domain::{EntryRecord, EntryVersion, RecordBody, RecordKind, Scope};
use uuid::Uuid;

/// A low-volume record ready for the writer.
#[derive(Debug, Clone)]
pub(crate) struct PreparedEntry {
    pub seq: u64,
    pub kind: RecordKind,
    /// The kind's number in storage ([`kind_number`]).
    pub kind_number: i64,
    pub id: Uuid,
    pub run: Uuid,
    pub mono_ms: i64,
    pub revision: i64,
    /// Wall time of the entry by the PC's clock, Unix ms.
    pub wall_ms: i64,
    pub fields: Vec<i64>,
    /// The kind's free text, if it has any.
    pub texts: Vec<String>,
    /// The record itself, for the counting rules (`rollup::entry_counters`).
    pub body: RecordBody,
}

impl PreparedEntry {
    /// `None` when a number does not fit what the store keeps, or `body` is not an
    /// entry.
    pub(crate) fn of(seq: u64, body: &RecordBody) -> Option<PreparedEntry> {
        let EntryRecord {
            kind,
            id,
            revision,
            run_id,
            mono_ms,
            wall_ms,
            fields,
            texts,
        } = body.entry()?;
        Some(PreparedEntry {
            seq,
            kind,
            kind_number: kind_number(kind),
            id,
            run: run_id,
            mono_ms: i64::try_from(mono_ms).ok()?,
            revision: i64::from(revision),
            wall_ms,
            fields,
            texts,
            body: body.clone(),
        })
    }
}

/// A kind's number in the `entries` table: its place in `RecordKind::ALL`, which only
/// ever grows at its end.
pub(crate) fn kind_number(kind: RecordKind) -> i64 {
    RecordKind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(usize::MAX) as i64
}

/// The kind of a stored number.
pub(crate) fn kind_of_number(number: i64) -> Option<RecordKind> {
    usize::try_from(number)
        .ok()
        .and_then(|i| RecordKind::ALL.get(i).copied())
}

/// What the store holds of an entry, as far as the rules need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredEntry {
    pub device: i64,
    /// The code of the PC that sent the stored version.
    pub pc: String,
    pub revision: i64,
    pub wall_ms: i64,
    pub fields: Vec<i64>,
    pub texts: Vec<String>,
    /// Its dated time, Unix s (its counts are on this time's local day).
    pub at_s: i64,
}

/// What to do with an incoming entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Not stored yet: insert it and count it.
    Insert,
    /// It supersedes the stored version: replace it, its counts taken away first.
    Replace,
    /// Already held (the same, or superseded): nothing changes.
    Duplicate,
    /// Refused, with the reason; the stored version is kept.
    Conflict(String),
}

/// The revision rules (see the module's documentation) for `incoming`, sent by
/// `device` (whose code is `pc`), against what is stored under its key.
pub(crate) fn decide(
    incoming: &PreparedEntry,
    device: i64,
    pc: &str,
    stored: Option<&StoredEntry>,
) -> Decision {
    let Some(stored) = stored else {
        return Decision::Insert;
    };
    let kind = incoming.kind.code();
    if stored.device != device {
        return match incoming.kind.scope() {
            Scope::Pc => Decision::Conflict(format!(
                "this {kind} id is stored for another PC; the stored one is kept"
            )),
            Scope::Library => {
                let version = |revision: i64, wall_ms, pc, fields| EntryVersion {
                    revision: u32::try_from(revision).unwrap_or(u32::MAX),
                    wall_ms,
                    pc,
                    fields,
                };
                let new = version(incoming.revision, incoming.wall_ms, pc, &incoming.fields);
                let old = version(stored.revision, stored.wall_ms, &stored.pc, &stored.fields);
                if jejak_domain::library_scoped_supersedes(&new, &old) {
                    Decision::Replace
                } else {
                    Decision::Duplicate
                }
            }
        };
    }
    match incoming.revision.cmp(&stored.revision) {
        std::cmp::Ordering::Greater => Decision::Replace,
        std::cmp::Ordering::Less => Decision::Duplicate,
        std::cmp::Ordering::Equal
            if incoming.wall_ms == stored.wall_ms
                && incoming.fields == stored.fields
                && incoming.texts == stored.texts =>
        {
            Decision::Duplicate
        }
        std::cmp::Ordering::Equal => Decision::Conflict(format!(
            "revision {} of this {kind} is stored with different content; the stored one is kept",
            incoming.revision
        )),
    }
}

/// The stored version as a record, for taking its counts away; `None` when its fields
/// no longer read (a corrupt row: `check-rollups` then finds the difference).
pub(crate) fn stored_body(incoming: &PreparedEntry, stored: &StoredEntry) -> Option<RecordBody> {
    let (library, _) = incoming.body.owner();
    let pc = jejak_domain::PcCode::parse_exact(&stored.pc).ok()?;
    stored_record(incoming.kind, incoming.id, library, &pc, stored).ok()
}

/// A stored entry as a record of `library`'s `pc` (the recount reads every entry so).
pub(crate) fn stored_record(
    kind: RecordKind,
    id: Uuid,
    library: &jejak_domain::LibraryCode,
    pc: &jejak_domain::PcCode,
    stored: &StoredEntry,
) -> Result<RecordBody, jejak_domain::EntryFieldError> {
    let entry = EntryRecord {
        kind,
        id,
        revision: u32::try_from(stored.revision).unwrap_or(u32::MAX),
        run_id: Uuid::nil(),
        mono_ms: 0,
        wall_ms: stored.wall_ms,
        fields: stored.fields.clone(),
        texts: stored.texts.clone(),
    };
    RecordBody::from_entry(library, pc, &entry)
}

/// An entry's fields and texts as the `entries` table keeps them (see the module's
/// documentation).
pub(crate) fn pack_entry(fields: &[i64], texts: &[String]) -> Vec<u8> {
    let mut out = crate::rollup::pack(fields);
    if !texts.is_empty() {
        out.extend(crate::rollup::pack(&[-1]));
        for text in texts {
            out.extend(crate::rollup::pack(&[text.len() as i64]));
            out.extend(text.as_bytes());
        }
    }
    out
}

/// Reads what [`pack_entry`] wrote; `None` when it does not read back (a corrupt row).
pub(crate) fn unpack_entry(bytes: &[u8]) -> Option<(Vec<i64>, Vec<String>)> {
    let mut at = 0;
    let mut fields = Vec::new();
    while at < bytes.len() {
        match read_varint(bytes, &mut at)? {
            -1 => break,
            value => fields.push(value),
        }
    }
    let mut texts = Vec::new();
    while at < bytes.len() {
        let len = usize::try_from(read_varint(bytes, &mut at)?).ok()?;
        let end = at.checked_add(len).filter(|end| *end <= bytes.len())?;
        texts.push(String::from_utf8(bytes[at..end].to_vec()).ok()?);
        at = end;
    }
    Some((fields, texts))
}

/// [`unpack_entry`], reading a corrupt row as no fields (the kind's reader then refuses
/// it and `check-rollups` finds the difference).
pub(crate) fn unpack_or_empty(bytes: &[u8]) -> (Vec<i64>, Vec<String>) {
    unpack_entry(bytes).unwrap_or_default()
}

/// One zigzag varint at `at`, moving `at` past it.
fn read_varint(bytes: &[u8], at: &mut usize) -> Option<i64> {
    let start = *at;
    let end = bytes[start..].iter().position(|b| b & 0x80 == 0)? + start + 1;
    *at = end;
    crate::rollup::unpack(&bytes[start..end])?.first().copied()
}

/// Whether `body`, dated at `at_s`, would count on a day before `retained_from_s` (Unix
/// s, the retention cutoff in the library's zone `offset_s`): such a record is refused
/// as beyond retention when it is not stored yet, as a session is, since its month's
/// counts are final.
pub(crate) fn counts_before(
    body: &RecordBody,
    at_s: i64,
    offset_s: i64,
    retained_from_s: i64,
) -> bool {
    if retained_from_s == i64::MIN {
        return false;
    }
    let cutoff_day = crate::rollup::local_day(retained_from_s, offset_s);
    crate::rollup::entry_counters(body, crate::rollup::local_day(at_s, offset_s))
        .iter()
        .any(|(day, _, _)| *day < cutoff_day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use jejak_domain::{LibraryCode, MemberCount, PcCode, YearMonth};

    fn count(pc: &str, revision: u32, minute: u32, members: u32) -> PreparedEntry {
        let library = LibraryCode::parse("dermaji").unwrap();
        let month = YearMonth::parse("2026-11").unwrap();
        let body = RecordBody::MemberCount(MemberCount {
            id: MemberCount::id_for(&library, month),
            revision,
            library,
            pc: PcCode::parse(pc).unwrap(),
            at: chrono::Utc
                .with_ymd_and_hms(2026, 12, 1, 2, minute, 0)
                .unwrap(),
            run_id: Uuid::nil(),
            mono_ms: 1,
            month,
            members,
            new_members: 1,
        });
        PreparedEntry::of(1, &body).unwrap()
    }

    fn stored(e: &PreparedEntry, device: i64, pc: &str) -> StoredEntry {
        StoredEntry {
            device,
            pc: pc.into(),
            revision: e.revision,
            wall_ms: e.wall_ms,
            fields: e.fields.clone(),
            texts: e.texts.clone(),
            at_s: 0,
        }
    }

    #[test]
    fn revisions_replace_duplicate_or_conflict_on_one_pc() {
        let first = count("pc-01", 1, 0, 100);
        let held = stored(&first, 1, "pc-01");
        assert_eq!(decide(&first, 1, "pc-01", None), Decision::Insert);
        assert_eq!(decide(&first, 1, "pc-01", Some(&held)), Decision::Duplicate);
        let newer = count("pc-01", 2, 5, 101);
        assert_eq!(decide(&newer, 1, "pc-01", Some(&held)), Decision::Replace);
        let other = count("pc-01", 1, 0, 105);
        assert!(matches!(
            decide(&other, 1, "pc-01", Some(&held)),
            Decision::Conflict(_)
        ));
        let older = stored(&newer, 1, "pc-01");
        assert_eq!(
            decide(&first, 1, "pc-01", Some(&older)),
            Decision::Duplicate
        );
    }

    #[test]
    fn two_pcs_end_with_the_same_version_in_either_order() {
        let a = count("pc-01", 1, 0, 100);
        let b = count("pc-02", 1, 3, 90);
        // a then b: b is later, it replaces a.
        assert_eq!(
            decide(&b, 2, "pc-02", Some(&stored(&a, 1, "pc-01"))),
            Decision::Replace
        );
        // b then a: a is earlier, it is superseded already.
        assert_eq!(
            decide(&a, 1, "pc-01", Some(&stored(&b, 2, "pc-02"))),
            Decision::Duplicate
        );
    }

    #[test]
    fn packed_entries_read_back_with_their_texts() {
        let fields = vec![20261114, 540, 0, 300_000];
        for texts in [
            vec![],
            vec!["Pelatihan".to_string(), String::new(), "Catatan — ñ".into()],
        ] {
            let packed = pack_entry(&fields, &texts);
            assert_eq!(unpack_entry(&packed), Some((fields.clone(), texts.clone())));
        }
        // Without texts the bytes are the plain varints a visit has always had.
        assert_eq!(pack_entry(&fields, &[]), crate::rollup::pack(&fields));
        let mut cut = pack_entry(&fields, &["Pelatihan".into()]);
        cut.pop();
        assert_eq!(unpack_entry(&cut), None);
        assert_eq!(unpack_entry(&[0x80]), None);
    }

    #[test]
    fn a_text_edit_at_the_same_revision_is_a_conflict() {
        let first = count("pc-01", 1, 0, 100);
        let mut held = stored(&first, 1, "pc-01");
        held.texts = vec!["lama".into()];
        assert!(matches!(
            decide(&first, 1, "pc-01", Some(&held)),
            Decision::Conflict(_)
        ));
    }

    #[test]
    fn kind_numbers_are_their_place_in_all() {
        for kind in RecordKind::ALL {
            assert_eq!(kind_of_number(kind_number(kind)), Some(kind));
        }
        assert_eq!(kind_number(RecordKind::Visit), 2);
        assert_eq!(kind_of_number(99), None);
    }
}
