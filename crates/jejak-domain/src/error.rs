//! Validation errors, each with a message in Indonesian and in English that says what
//! is allowed.

use crate::lang::Lang;

/// Which field a validation error is about, so that messages can name it in the
/// reader's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Purpose,
    Gender,
    AgeGroup,
    UserKind,
    EndReason,
    PcEventKind,
    TimeQuality,
    Timezone,
    Library,
    Pc,
    GroupSize,
    PatronKey,
    Revision,
    EndedAt,
    VisitPurpose,
    People,
    Month,
    Members,
    NewMembers,
    ActivityType,
    ActivityPlace,
    ActivityDate,
    StartTime,
    Duration,
    Participants,
    Title,
    Partner,
    Notes,
}

impl Field {
    pub fn label(self, lang: Lang) -> &'static str {
        use Field::*;
        match self {
            Purpose => lang.pick("tujuan penggunaan", "purpose"),
            Gender => lang.pick("jenis kelamin", "gender"),
            AgeGroup => lang.pick("kelompok umur", "age group"),
            UserKind => lang.pick("kriteria pengguna", "user kind"),
            EndReason => lang.pick("alasan berakhir", "end reason"),
            PcEventKind => lang.pick("jenis peristiwa komputer", "pc event kind"),
            TimeQuality => lang.pick("kualitas waktu", "time quality"),
            Timezone => lang.pick("zona waktu", "time zone"),
            Library => lang.pick("kode perpustakaan", "library code"),
            Pc => lang.pick("kode komputer", "PC code"),
            GroupSize => lang.pick("jumlah orang", "group size"),
            PatronKey => lang.pick("kunci pengguna", "patron key"),
            Revision => lang.pick("revisi", "revision"),
            EndedAt => lang.pick("waktu selesai", "end time"),
            VisitPurpose => lang.pick("tujuan kunjungan", "purpose of the visit"),
            People => lang.pick("jumlah pengunjung", "number of visitors"),
            Month => lang.pick("bulan", "month"),
            Members => lang.pick("jumlah anggota", "number of members"),
            NewMembers => lang.pick("anggota baru", "new members"),
            ActivityType => lang.pick("jenis kegiatan", "activity type"),
            ActivityPlace => lang.pick("tempat kegiatan", "place of the activity"),
            ActivityDate => lang.pick("tanggal kegiatan", "date of the activity"),
            StartTime => lang.pick("jam mulai", "start time"),
            Duration => lang.pick("durasi (menit)", "duration (minutes)"),
            Participants => lang.pick("jumlah peserta", "number of participants"),
            Title => lang.pick("judul kegiatan", "title"),
            Partner => lang.pick("mitra", "partner"),
            Notes => lang.pick("catatan", "notes"),
        }
    }
}

/// A value that breaks one of the domain's rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message(Lang::Id))]
pub enum DomainError {
    UnknownValue {
        field: Field,
        given: String,
        allowed: Vec<&'static str>,
    },
    BadCode {
        field: Field,
        given: String,
    },
    TooManyPurposes {
        given: usize,
    },
    DuplicatePurpose {
        purpose: &'static str,
    },
    GroupSize {
        given: u32,
    },
    EndWithoutReason,
    ReasonWithoutEnd,
    EndBeforeStart,
    RevisionZero,
    BadPatronKey,
    /// A number outside what the field allows (`min..=max`).
    OutOfBounds {
        field: Field,
        given: i64,
        min: i64,
        max: i64,
    },
    /// A desk visitor of a kind the visitor book does not have (staff, unknown).
    NotAVisitorKind {
        given: &'static str,
    },
    BadMonth {
        given: String,
    },
    NewMembersAboveTotal {
        new_members: u32,
        members: u32,
    },
    /// A library-scoped record whose id is not the one its library and key give.
    ScopedIdMismatch,
    /// A free-text field longer than it may be (in characters).
    TextTooLong {
        field: Field,
        given: usize,
        max: usize,
    },
    /// A free-text field with a control character (a line break, a tab, an escape).
    ControlCharacter {
        field: Field,
    },
    /// A required free-text field left empty.
    TextMissing {
        field: Field,
    },
    /// A date that is not a calendar date written YYYY-MM-DD.
    BadDate {
        given: String,
    },
    /// A time of day that is not HH:MM.
    BadTime {
        given: String,
    },
    /// An activity's date too far from the day it is entered.
    ActivityDateOutOfRange {
        date: String,
        entered: String,
    },
}

impl DomainError {
    /// The message in the reader's language. Indonesian is the default rendering
    /// (`Display`); English is one call away.
    pub fn message(&self, lang: Lang) -> String {
        use DomainError::*;
        match (self, lang) {
            (
                UnknownValue {
                    field,
                    given,
                    allowed,
                },
                Lang::Id,
            ) => format!(
                "{} '{}' tidak dikenal; pilihan yang sah: {}",
                field.label(lang),
                given,
                allowed.join(", ")
            ),
            (
                UnknownValue {
                    field,
                    given,
                    allowed,
                },
                Lang::En,
            ) => format!(
                "unknown {} '{}'; allowed values: {}",
                field.label(lang),
                given,
                allowed.join(", ")
            ),
            (BadCode { field, given }, Lang::Id) => format!(
                "{} '{}' tidak sah: pakai 1–32 huruf, angka, titik, garis bawah atau tanda hubung, diawali huruf atau angka (contoh: pc-01)",
                field.label(lang),
                given
            ),
            (BadCode { field, given }, Lang::En) => format!(
                "invalid {} '{}': use 1–32 letters, digits, '.', '_' or '-', starting with a letter or digit (e.g. pc-01)",
                field.label(lang),
                given
            ),
            (TooManyPurposes { given }, Lang::Id) => {
                format!("tujuan penggunaan paling banyak 3, diberikan {given}")
            }
            (TooManyPurposes { given }, Lang::En) => {
                format!("at most 3 purposes are allowed, {given} given")
            }
            (DuplicatePurpose { purpose }, Lang::Id) => {
                format!("tujuan '{purpose}' disebut lebih dari sekali")
            }
            (DuplicatePurpose { purpose }, Lang::En) => {
                format!("purpose '{purpose}' is given more than once")
            }
            (GroupSize { given }, Lang::Id) => {
                format!("jumlah orang harus 1 sampai 200, diberikan {given}")
            }
            (GroupSize { given }, Lang::En) => {
                format!("group size must be 1 to 200, {given} given")
            }
            (EndWithoutReason, Lang::Id) => "sesi selesai harus punya alasan berakhir".into(),
            (EndWithoutReason, Lang::En) => "an ended session needs an end reason".into(),
            (ReasonWithoutEnd, Lang::Id) => {
                "sesi yang masih berjalan tidak boleh punya alasan berakhir".into()
            }
            (ReasonWithoutEnd, Lang::En) => "an open session cannot have an end reason".into(),
            (EndBeforeStart, Lang::Id) => "waktu selesai lebih awal dari waktu mulai".into(),
            (EndBeforeStart, Lang::En) => "the end time is before the start time".into(),
            (RevisionZero, Lang::Id) => "revisi dimulai dari 1".into(),
            (RevisionZero, Lang::En) => "revisions start at 1".into(),
            (BadPatronKey, Lang::Id) => {
                "kunci pengguna harus HMAC-SHA256 (64 karakter heksadesimal), bukan nomor anggota"
                    .into()
            }
            (BadPatronKey, Lang::En) => {
                "a patron key must be an HMAC-SHA256 (64 hex characters), never a member number"
                    .into()
            }
            (
                OutOfBounds {
                    field,
                    given,
                    min,
                    max,
                },
                Lang::Id,
            ) => format!(
                "{} harus {min} sampai {max}, diberikan {given}",
                field.label(lang)
            ),
            (
                OutOfBounds {
                    field,
                    given,
                    min,
                    max,
                },
                Lang::En,
            ) => format!(
                "{} must be {min} to {max}, {given} given",
                field.label(lang)
            ),
            (NotAVisitorKind { given }, Lang::Id) => format!(
                "kriteria pengunjung '{given}' tidak ada di buku tamu; pilihan yang sah: anggota, non_anggota, rombongan, pelatihan"
            ),
            (NotAVisitorKind { given }, Lang::En) => format!(
                "'{given}' is not a visitor kind of the visitor book; allowed values: anggota, non_anggota, rombongan, pelatihan"
            ),
            (BadMonth { given }, Lang::Id) => {
                format!("bulan '{given}' tidak sah: tulis TTTT-BB, misalnya 2026-11")
            }
            (BadMonth { given }, Lang::En) => {
                format!("month '{given}' is not valid: write YYYY-MM, e.g. 2026-11")
            }
            (
                NewMembersAboveTotal {
                    new_members,
                    members,
                },
                Lang::Id,
            ) => format!(
                "anggota baru ({new_members}) tidak boleh lebih dari jumlah anggota akhir bulan ({members})"
            ),
            (
                NewMembersAboveTotal {
                    new_members,
                    members,
                },
                Lang::En,
            ) => format!(
                "new members ({new_members}) cannot exceed the members at month end ({members})"
            ),
            (ScopedIdMismatch, Lang::Id) => {
                "id catatan tidak cocok dengan perpustakaan dan bulannya".into()
            }
            (ScopedIdMismatch, Lang::En) => {
                "the record's id does not match its library and month".into()
            }
            (TextTooLong { field, given, max }, Lang::Id) => format!(
                "{} terlalu panjang: {given} karakter, paling banyak {max}; persingkat",
                field.label(lang)
            ),
            (TextTooLong { field, given, max }, Lang::En) => format!(
                "{} is too long: {given} characters, at most {max}; shorten it",
                field.label(lang)
            ),
            (ControlCharacter { field }, Lang::Id) => format!(
                "{} memuat karakter kontrol (baris baru, tab); tulis dalam satu baris",
                field.label(lang)
            ),
            (ControlCharacter { field }, Lang::En) => format!(
                "{} contains a control character (line break, tab); write it on one line",
                field.label(lang)
            ),
            (TextMissing { field }, Lang::Id) => format!("{} wajib diisi", field.label(lang)),
            (TextMissing { field }, Lang::En) => format!("{} is required", field.label(lang)),
            (BadDate { given }, Lang::Id) => {
                format!("tanggal '{given}' tidak sah: tulis TTTT-BB-HH, misalnya 2026-11-14")
            }
            (BadDate { given }, Lang::En) => {
                format!("date '{given}' is not valid: write YYYY-MM-DD, e.g. 2026-11-14")
            }
            (BadTime { given }, Lang::Id) => {
                format!("jam '{given}' tidak sah: tulis JJ:MM, misalnya 09:00")
            }
            (BadTime { given }, Lang::En) => {
                format!("time '{given}' is not valid: write HH:MM, e.g. 09:00")
            }
            (ActivityDateOutOfRange { date, entered }, Lang::Id) => format!(
                "tanggal kegiatan {date} terlalu jauh dari hari pencatatan {entered}: paling lambat besok, paling awal setahun lalu"
            ),
            (ActivityDateOutOfRange { date, entered }, Lang::En) => format!(
                "the activity's date {date} is too far from the day it is entered, {entered}: at most tomorrow and at most a year back"
            ),
        }
    }
}
