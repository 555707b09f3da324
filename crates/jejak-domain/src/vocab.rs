//! The closed vocabularies of the brief (purpose, gender, age group, user kind, end
//! reason, pc event kind, time quality, time zone), each with a stable wire code and
//! labels in Indonesian and English.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{DomainError, Field};
use crate::lang::Lang;

/// Declares a vocabulary enum. The wire code is what is stored and sent; the labels
/// are what people read. Extra aliases are accepted on input only, so that a
/// librarian typing the English or the long Indonesian word is understood.
macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        $name:ident, field = $field:expr;
        $( $(#[$vmeta:meta])* $variant:ident = $code:literal, id = $id:literal, en = $en:literal $(, aliases = [$($alias:literal),*])? ;)+
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in the order reports list them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable code used in storage and on the wire.
            pub fn code(self) -> &'static str {
                match self { $($name::$variant => $code,)+ }
            }

            /// The label people read.
            pub fn label(self, lang: Lang) -> &'static str {
                match (self, lang) {
                    $( ($name::$variant, Lang::Id) => $id, ($name::$variant, Lang::En) => $en, )+
                }
            }

            /// The codes that are accepted, for error messages.
            pub fn codes() -> Vec<&'static str> {
                Self::ALL.iter().map(|v| v.code()).collect()
            }

            /// Parses a code (or an accepted alias), ignoring case and surrounding spaces.
            pub fn parse(input: &str) -> Result<Self, DomainError> {
                let wanted = input.trim().to_lowercase().replace(['-', ' '], "_");
                $(
                    if wanted == $code.to_lowercase() $($(|| wanted == $alias)*)? {
                        return Ok($name::$variant);
                    }
                )+
                Err(DomainError::UnknownValue {
                    field: $field,
                    given: input.to_string(),
                    allowed: Self::codes(),
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.code())
            }
        }

        impl FromStr for $name {
            type Err = DomainError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.code())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct CodeVisitor;

                impl serde::de::Visitor<'_> for CodeVisitor {
                    type Value = $name;

                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        write!(f, "one of {}", $name::codes().join(", "))
                    }

                    // Borrowing the text (no String per value) matters: a batch holds
                    // thousands of these and ingest speed is a goal of the brief.
                    fn visit_str<E: serde::de::Error>(self, raw: &str) -> Result<$name, E> {
                        // The wire accepts exact codes only: aliases are for people, not machines.
                        $name::ALL
                            .iter()
                            .copied()
                            .find(|v| v.code() == raw)
                            .ok_or_else(|| E::custom(
                                DomainError::UnknownValue { field: $field, given: raw.to_string(), allowed: $name::codes() }
                                    .message(Lang::En),
                            ))
                    }
                }

                deserializer.deserialize_str(CodeVisitor)
            }
        }
    };
}

vocabulary! {
    /// Why the patron used the PC (tujuan penggunaan); a session has one to three.
    Purpose, field = Field::Purpose;
    Pendidikan = "pendidikan", id = "Pendidikan", en = "Education", aliases = ["education", "belajar"];
    Ekonomi = "ekonomi", id = "Ekonomi/UMKM", en = "Economy/UMKM", aliases = ["economy", "umkm"];
    Kesehatan = "kesehatan", id = "Kesehatan", en = "Health", aliases = ["health"];
    Komunikasi = "komunikasi", id = "Komunikasi", en = "Communication", aliases = ["communication"];
    Hobi = "hobi", id = "Hobi/hiburan", en = "Hobby/leisure", aliases = ["hobby", "leisure", "hiburan"];
    Pemerintahan = "pemerintahan", id = "Pemerintahan/layanan publik", en = "Governance/e-government", aliases = ["governance", "egov", "e_gov"];
    LiterasiDigital = "literasi_digital", id = "Literasi digital", en = "Digital literacy", aliases = ["digital_literacy", "literasi"];
    Lainnya = "lainnya", id = "Lainnya", en = "Other", aliases = ["other"];
}

vocabulary! {
    /// Jenis kelamin, as on INLISLite forms, with "not stated".
    Gender, field = Field::Gender;
    L = "L", id = "Laki-laki", en = "Male", aliases = ["laki_laki", "male", "m"];
    P = "P", id = "Perempuan", en = "Female", aliases = ["perempuan", "female", "f", "w"];
    X = "X", id = "Tidak disebutkan", en = "Not stated", aliases = ["tidak_disebutkan", "not_stated", "unknown"];
}

vocabulary! {
    /// Kelompok umur; "pemuda" is 16–30 as UU 40/2009 defines youth.
    AgeGroup, field = Field::AgeGroup;
    Anak = "anak", id = "Anak (≤12)", en = "Child (≤12)", aliases = ["child"];
    Remaja = "remaja", id = "Remaja (13–15)", en = "Teen (13–15)", aliases = ["teen"];
    Pemuda = "pemuda", id = "Pemuda (16–30)", en = "Youth (16–30)", aliases = ["youth"];
    Dewasa = "dewasa", id = "Dewasa (31–45)", en = "Adult (31–45)", aliases = ["adult"];
    Madya = "madya", id = "Dewasa madya (46–59)", en = "Middle age (46–59)", aliases = ["middle", "middle_age"];
    Lansia = "lansia", id = "Lansia (≥60)", en = "Senior (≥60)", aliases = ["senior", "elderly"];
    Unknown = "unknown", id = "Tidak diketahui", en = "Unknown", aliases = ["tidak_diketahui"];
}

vocabulary! {
    /// Kriteria pengguna. Staff sessions are recorded but excluded from public counts.
    UserKind, field = Field::UserKind;
    Anggota = "anggota", id = "Anggota", en = "Member", aliases = ["member"];
    NonAnggota = "non_anggota", id = "Non-anggota", en = "Non-member", aliases = ["nonanggota", "non_member", "nonmember"];
    Rombongan = "rombongan", id = "Rombongan", en = "Group", aliases = ["group"];
    Pelatihan = "pelatihan", id = "Pelatihan", en = "Training", aliases = ["training"];
    Staf = "staf", id = "Petugas", en = "Staff", aliases = ["staff", "petugas"];
    Unknown = "unknown", id = "Tidak diketahui", en = "Unknown", aliases = ["tidak_diketahui"];
}

impl UserKind {
    /// Whether sessions of this kind count in public usage figures.
    pub fn counts_publicly(self) -> bool {
        self != UserKind::Staf
    }

    /// The kinds a desk visitor can be (the buku tamu has no staff and no "unknown":
    /// the librarian always sees who came).
    pub const VISITORS: &'static [UserKind] = &[
        UserKind::Anggota,
        UserKind::NonAnggota,
        UserKind::Rombongan,
        UserKind::Pelatihan,
    ];
}

vocabulary! {
    /// The kind of a library activity (jenis kegiatan). The order is the wire's (an
    /// activity's fields carry the index), so new values go at the end.
    ActivityType, field = Field::ActivityType;
    Pelatihan = "pelatihan", id = "Pelatihan", en = "Training", aliases = ["training"];
    SosialisasiKie = "sosialisasi_kie", id = "Sosialisasi/KIE", en = "Socialisation/KIE", aliases = ["sosialisasi", "kie", "sosialisasi/kie", "socialisation"];
    BimbinganBelajar = "bimbingan_belajar", id = "Bimbingan belajar", en = "Tutoring", aliases = ["bimbel", "tutoring"];
    BedahBuku = "bedah_buku", id = "Bedah buku", en = "Book discussion", aliases = ["book_discussion"];
    Lomba = "lomba", id = "Lomba", en = "Competition", aliases = ["competition"];
    Pameran = "pameran", id = "Pameran", en = "Exhibition", aliases = ["exhibition"];
    KunjunganStudiBanding = "kunjungan_studi_banding", id = "Kunjungan/studi banding", en = "Study visit", aliases = ["kunjungan", "studi_banding", "study_visit"];
    Lainnya = "lainnya", id = "Lainnya", en = "Other", aliases = ["other"];
}

vocabulary! {
    /// Where an activity was held (tempat kegiatan). Wire order, new values at the end.
    ActivityPlace, field = Field::ActivityPlace;
    DiPerpustakaan = "di_perpustakaan", id = "Di perpustakaan", en = "At the library", aliases = ["perpustakaan", "library", "at_library", "inside"];
    DiLuar = "di_luar", id = "Di luar perpustakaan", en = "Outside the library", aliases = ["luar", "outside"];
}

vocabulary! {
    /// Why a visitor came to the library desk (tujuan kunjungan, the buku tamu's column):
    /// one per visit. The order is the wire's (a visit's fields carry the index), so new
    /// values go at the end.
    VisitPurpose, field = Field::VisitPurpose;
    Membaca = "membaca", id = "Membaca", en = "Reading", aliases = ["reading", "baca"];
    PinjamKembali = "pinjam_kembali", id = "Pinjam/kembali buku", en = "Borrow/return books", aliases = ["pinjam", "kembali", "borrow", "return", "pinjam/kembali"];
    Belajar = "belajar", id = "Belajar/tugas", en = "Study/homework", aliases = ["study", "tugas", "homework"];
    KomputerInternet = "komputer_internet", id = "Komputer/internet", en = "Computer/internet", aliases = ["komputer", "internet", "computer", "komputer/internet"];
    IkutKegiatan = "ikut_kegiatan", id = "Ikut kegiatan", en = "Attend an activity", aliases = ["kegiatan", "activity"];
    Lainnya = "lainnya", id = "Lainnya", en = "Other", aliases = ["other"];
}

vocabulary! {
    /// Alasan berakhir: how a session ended.
    EndReason, field = Field::EndReason;
    Logout = "logout", id = "Keluar", en = "Logout", aliases = ["keluar", "selesai", "finish"];
    Idle = "idle", id = "Tidak aktif", en = "Idle", aliases = ["tidak_aktif"];
    Shutdown = "shutdown", id = "Komputer dimatikan", en = "Shutdown", aliases = ["dimatikan"];
    PowerLoss = "power_loss", id = "Listrik padam", en = "Power loss", aliases = ["padam", "listrik_padam"];
    Crash = "crash", id = "Program berhenti", en = "Crash", aliases = [];
    StaffEnded = "staff_ended", id = "Diakhiri petugas", en = "Ended by staff", aliases = ["staf", "petugas", "staff"];
}

vocabulary! {
    /// What a pc event records.
    PcEventKind, field = Field::PcEventKind;
    Boot = "boot", id = "Komputer menyala", en = "Boot", aliases = [];
    Shutdown = "shutdown", id = "Komputer dimatikan", en = "Shutdown", aliases = [];
    Heartbeat = "heartbeat", id = "Tanda hidup", en = "Heartbeat", aliases = [];
    InternetUp = "internet_up", id = "Internet tersambung", en = "Internet up", aliases = [];
    InternetDown = "internet_down", id = "Internet terputus", en = "Internet down", aliases = [];
    ClockJump = "clock_jump", id = "Jam komputer melompat", en = "Clock jump", aliases = [];
    /// The wall clock reads a time before the software was built: a dead CMOS battery.
    ClockSuspect = "clock_suspect", id = "Jam komputer tidak masuk akal", en = "Clock implausible", aliases = [];
    /// The local store was found corrupt, moved aside and started afresh.
    StoreRecovered = "store_recovered", id = "Basis data dipulihkan", en = "Store recovered", aliases = [];
}

vocabulary! {
    /// How far a record's wall times can be trusted.
    TimeQuality, field = Field::TimeQuality;
    /// The PC's clock looked sane and nothing contradicted it.
    Trusted = "trusted", id = "Tepercaya", en = "Trusted", aliases = [];
    /// Corrected with an offset measured against the server.
    Corrected = "corrected", id = "Dikoreksi", en = "Corrected", aliases = [];
    /// Reconstructed (for example the end of a session cut by a power loss) or taken
    /// from a clock known to be wrong.
    Estimated = "estimated", id = "Perkiraan", en = "Estimated", aliases = [];
}

vocabulary! {
    /// Indonesia's three time zones. None observes daylight saving time, so a fixed
    /// offset is exact.
    Zone, field = Field::Timezone;
    Wib = "Asia/Jakarta", id = "WIB (UTC+7)", en = "WIB (UTC+7)", aliases = ["wib", "asia/pontianak"];
    Wita = "Asia/Makassar", id = "WITA (UTC+8)", en = "WITA (UTC+8)", aliases = ["wita", "asia/ujung_pandang"];
    Wit = "Asia/Jayapura", id = "WIT (UTC+9)", en = "WIT (UTC+9)", aliases = ["wit"];
}

impl Zone {
    pub fn utc_offset_hours(self) -> i32 {
        match self {
            Zone::Wib => 7,
            Zone::Wita => 8,
            Zone::Wit => 9,
        }
    }

    pub fn offset(self) -> chrono::FixedOffset {
        chrono::FixedOffset::east_opt(self.utc_offset_hours() * 3600)
            .expect("Indonesian offsets are well inside chrono's ±24 h range")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_serde_and_parse() {
        for p in Purpose::ALL {
            let json = serde_json::to_string(p).unwrap();
            assert_eq!(&serde_json::from_str::<Purpose>(&json).unwrap(), p);
            assert_eq!(Purpose::parse(p.code()).unwrap(), *p);
        }
        for z in Zone::ALL {
            assert_eq!(Zone::parse(z.code()).unwrap(), *z);
        }
    }

    #[test]
    fn aliases_are_accepted_from_people_but_not_from_the_wire() {
        assert_eq!(Purpose::parse(" Education ").unwrap(), Purpose::Pendidikan);
        assert_eq!(
            Purpose::parse("literasi-digital").unwrap(),
            Purpose::LiterasiDigital
        );
        assert_eq!(Gender::parse("p").unwrap(), Gender::P);
        assert_eq!(Zone::parse("WITA").unwrap(), Zone::Wita);
        assert!(serde_json::from_str::<Purpose>("\"education\"").is_err());
    }

    #[test]
    fn unknown_values_list_what_is_allowed_in_both_languages() {
        let err = AgeGroup::parse("remja").unwrap_err();
        let id = err.message(Lang::Id);
        let en = err.message(Lang::En);
        assert!(
            id.contains("remja") && id.contains("remaja") && id.contains("kelompok umur"),
            "{id}"
        );
        assert!(en.contains("age group") && en.contains("lansia"), "{en}");
    }

    #[test]
    fn zones_have_indonesian_offsets() {
        assert_eq!(Zone::Wib.offset().local_minus_utc(), 7 * 3600);
        assert_eq!(Zone::Wit.utc_offset_hours(), 9);
    }
}
