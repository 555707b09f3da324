//! What the district knows of a village library besides its code, name and zone: the
//! identity printed on its reports (NPP, desa, kecamatan, address) and the two people
//! who sign its monthly report (the head of the village and the library's manager, with
//! the manager's NIP when they are a civil servant).
//!
//! These are the library's public, official identity, never a patron's: they are set by
//! district staff (`jejak server add-library` / `edit-library`) and printed on paper.
//! Every field is optional (most villages will fill them in over time), bounded in
//! length and free of control characters, so a report's layout cannot be broken by
//! what was typed.
//!
//! The NPP (Nomor Pokok Perpustakaan) is the national library number Perpustakaan
//! Nasional issues: 15 characters, the area code of the province, regency/city and
//! kecamatan (six digits), a code of the library's kind and status (two characters, a
//! digit and a letter in the published examples such as `6372052C0000001`, taken as any
//! two digits or capital letters here, since the codes are not published in full), and
//! a seven-digit serial number. Spaces, dots and dashes people type between the parts
//! are dropped, and letters are taken in capitals.
//!
//! The NIP (Nomor Induk Pegawai) of a civil servant or a PPPK employee is 18 digits: the
//! date of birth (`YYYYMMDD`), the month of appointment (`YYYYMM`), the gender (1 or 2)
//! and a three-digit serial number. It is checked as far as that structure allows and
//! printed in its usual groups (`19850312 201001 2 004`).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::lang::Lang;

/// A library's identity and signatories; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LibraryDetails {
    /// Nomor Pokok Perpustakaan (15 characters, e.g. `3302012D1000001`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub npp: Option<String>,
    /// The village (desa) the library serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desa: Option<String>,
    /// The sub-district (kecamatan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kecamatan: Option<String>,
    /// The library's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The head of the village (kepala desa), who acknowledges the monthly report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kepala_desa: Option<String>,
    /// The library's manager (pengelola perpustakaan), who signs the monthly report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
    /// The manager's NIP (18 digits, without spaces), when they have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager_nip: Option<String>,
}

/// One field of [`LibraryDetails`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DetailField {
    Npp,
    Desa,
    Kecamatan,
    Address,
    KepalaDesa,
    Manager,
    ManagerNip,
}

impl DetailField {
    /// Every field, in the order reports and lists show them.
    pub const ALL: [DetailField; 7] = [
        DetailField::Npp,
        DetailField::Desa,
        DetailField::Kecamatan,
        DetailField::Address,
        DetailField::KepalaDesa,
        DetailField::Manager,
        DetailField::ManagerNip,
    ];

    /// The command-line option that sets it (without `--`).
    pub fn option(self) -> &'static str {
        match self {
            DetailField::Npp => "npp",
            DetailField::Desa => "desa",
            DetailField::Kecamatan => "kecamatan",
            DetailField::Address => "address",
            DetailField::KepalaDesa => "kepala-desa",
            DetailField::Manager => "manager",
            DetailField::ManagerNip => "nip",
        }
    }

    /// Its label for people.
    pub fn label(self, lang: Lang) -> &'static str {
        match self {
            DetailField::Npp => "NPP",
            DetailField::Desa => "Desa",
            DetailField::Kecamatan => lang.pick("Kecamatan", "Sub-district (kecamatan)"),
            DetailField::Address => lang.pick("Alamat", "Address"),
            DetailField::KepalaDesa => lang.pick("Kepala desa", "Head of the village"),
            DetailField::Manager => lang.pick("Pengelola perpustakaan", "Library manager"),
            DetailField::ManagerNip => lang.pick("NIP pengelola", "Manager's NIP"),
        }
    }

    /// The most characters a free-text value may have (the NPP and NIP have their own
    /// exact forms).
    pub fn max_chars(self) -> usize {
        match self {
            DetailField::Npp => NPP_LEN,
            DetailField::ManagerNip => NIP_LEN,
            DetailField::Address => 200,
            DetailField::Desa | DetailField::Kecamatan => 80,
            DetailField::KepalaDesa | DetailField::Manager => 100,
        }
    }

    /// `raw` as stored: trimmed (and, for the NPP and NIP, without separators), `None`
    /// for an empty value (which clears the field), or why it is refused.
    pub fn normalize(self, raw: &str) -> Result<Option<String>, LibraryDetailsError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        match self {
            DetailField::Npp => parse_npp(trimmed).map(Some),
            DetailField::ManagerNip => parse_nip(trimmed).map(Some),
            _ => {
                if trimmed.chars().any(char::is_control) {
                    return Err(LibraryDetailsError::ControlCharacter(self));
                }
                // Runs of spaces become one: a name typed with a double space prints
                // the same as one without.
                let text = trimmed.split_whitespace().collect::<Vec<_>>().join(" ");
                if text.chars().count() > self.max_chars() {
                    return Err(LibraryDetailsError::TooLong(self));
                }
                Ok(Some(text))
            }
        }
    }
}

const NPP_LEN: usize = 15;
const NIP_LEN: usize = 18;

impl LibraryDetails {
    /// The value of `field`.
    pub fn get(&self, field: DetailField) -> Option<&str> {
        match field {
            DetailField::Npp => self.npp.as_deref(),
            DetailField::Desa => self.desa.as_deref(),
            DetailField::Kecamatan => self.kecamatan.as_deref(),
            DetailField::Address => self.address.as_deref(),
            DetailField::KepalaDesa => self.kepala_desa.as_deref(),
            DetailField::Manager => self.manager.as_deref(),
            DetailField::ManagerNip => self.manager_nip.as_deref(),
        }
    }

    fn slot(&mut self, field: DetailField) -> &mut Option<String> {
        match field {
            DetailField::Npp => &mut self.npp,
            DetailField::Desa => &mut self.desa,
            DetailField::Kecamatan => &mut self.kecamatan,
            DetailField::Address => &mut self.address,
            DetailField::KepalaDesa => &mut self.kepala_desa,
            DetailField::Manager => &mut self.manager,
            DetailField::ManagerNip => &mut self.manager_nip,
        }
    }

    /// The manager's NIP in its usual groups (`19850312 201001 2 004`).
    pub fn manager_nip_grouped(&self) -> Option<String> {
        self.manager_nip.as_deref().map(group_nip)
    }
}

/// Changes to a library's details: the fields given, each with its new value or `None`
/// to clear it. Every value was validated when it was added ([`LibraryDetailsEdit::set`]),
/// so applying an edit cannot fail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LibraryDetailsEdit {
    changes: Vec<(DetailField, Option<String>)>,
}

impl LibraryDetailsEdit {
    /// Sets `field` to `raw` (an empty value clears it), after validating it.
    pub fn set(&mut self, field: DetailField, raw: &str) -> Result<(), LibraryDetailsError> {
        let value = field.normalize(raw)?;
        self.changes.retain(|(f, _)| *f != field);
        self.changes.push((field, value));
        Ok(())
    }

    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The changes, in the order they were given.
    pub fn changes(&self) -> &[(DetailField, Option<String>)] {
        &self.changes
    }

    /// `details` with the changes made.
    pub fn apply(&self, details: &mut LibraryDetails) {
        for (field, value) in &self.changes {
            *details.slot(*field) = value.clone();
        }
    }
}

/// Why a value for a library's details was refused. Messages say what to type instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message(Lang::Id))]
pub enum LibraryDetailsError {
    /// Not an NPP.
    BadNpp(String),
    /// Not a NIP.
    BadNip(String),
    /// A free-text value over its bound.
    TooLong(DetailField),
    /// A line break, tab or other control character in a free-text value.
    ControlCharacter(DetailField),
}

impl LibraryDetailsError {
    /// The message in `lang`.
    pub fn message(&self, lang: Lang) -> String {
        match (self, lang) {
            (LibraryDetailsError::BadNpp(given), Lang::Id) => format!(
                "NPP '{given}' tidak sah: NPP terdiri dari 15 karakter, 6 angka kode wilayah, 2 angka/huruf kode jenis, lalu 7 angka nomor urut (contoh 3302012D1000001). Salin NPP persis dari data.perpusnas.go.id, atau kosongkan dengan --npp \"\""
            ),
            (LibraryDetailsError::BadNpp(given), Lang::En) => format!(
                "NPP '{given}' is not valid: an NPP has 15 characters, a 6-digit area code, a 2-character kind code (digits or capitals), then a 7-digit serial number (e.g. 3302012D1000001). Copy it exactly from data.perpusnas.go.id, or leave it empty with --npp \"\""
            ),
            (LibraryDetailsError::BadNip(given), Lang::Id) => format!(
                "NIP '{given}' tidak sah: NIP terdiri dari 18 angka (tanggal lahir YYYYMMDD, bulan pengangkatan YYYYMM, jenis kelamin 1 atau 2, nomor urut 3 angka; contoh 19850312 201001 2 004). Periksa NIP pada SK, atau kosongkan dengan --nip \"\" bila pengelola bukan ASN"
            ),
            (LibraryDetailsError::BadNip(given), Lang::En) => format!(
                "NIP '{given}' is not valid: a NIP has 18 digits (date of birth YYYYMMDD, month of appointment YYYYMM, gender 1 or 2, a 3-digit serial; e.g. 19850312 201001 2 004). Check it on the appointment letter, or leave it empty with --nip \"\" when the manager is not a civil servant"
            ),
            (LibraryDetailsError::TooLong(field), lang) => match lang {
                Lang::Id => format!(
                    "{} terlalu panjang: paling banyak {} karakter; singkat isinya",
                    field.label(lang),
                    field.max_chars()
                ),
                Lang::En => format!(
                    "{} is too long: at most {} characters; shorten it",
                    field.label(lang),
                    field.max_chars()
                ),
            },
            (LibraryDetailsError::ControlCharacter(field), lang) => match lang {
                Lang::Id => format!(
                    "{} tidak boleh berisi baris baru, tab atau karakter kendali lain; tulis dalam satu baris",
                    field.label(lang)
                ),
                Lang::En => format!(
                    "{} must not contain line breaks, tabs or other control characters; write it on one line",
                    field.label(lang)
                ),
            },
        }
    }
}

/// Drops the separators people type between an identifier's groups.
fn without_separators(raw: &str) -> String {
    raw.chars()
        .filter(|c| !matches!(c, ' ' | '.' | '-' | '\u{a0}'))
        .collect()
}

/// Shown back in an error: what was given, cut to a readable length.
fn shown(raw: &str) -> String {
    raw.chars().take(40).collect()
}

fn parse_npp(raw: &str) -> Result<String, LibraryDetailsError> {
    let npp = without_separators(raw).to_ascii_uppercase();
    let bytes = npp.as_bytes();
    let valid = bytes.len() == NPP_LEN
        && bytes[..6].iter().all(u8::is_ascii_digit)
        // Province codes run from 11 (Aceh) to 9x (Papua): never 0x.
        && bytes[0] != b'0'
        && bytes[6..8]
            .iter()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        && bytes[8..].iter().all(u8::is_ascii_digit);
    if valid {
        Ok(npp)
    } else {
        Err(LibraryDetailsError::BadNpp(shown(raw)))
    }
}

fn parse_nip(raw: &str) -> Result<String, LibraryDetailsError> {
    let nip = without_separators(raw);
    let refused = || LibraryDetailsError::BadNip(shown(raw));
    if nip.len() != NIP_LEN || !nip.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refused());
    }
    let number = |range: std::ops::Range<usize>| nip[range].parse::<u32>().unwrap_or(0);
    let year = i32::try_from(number(0..4)).unwrap_or(0);
    let born = NaiveDate::from_ymd_opt(year, number(4..6), number(6..8));
    let appointed_year = number(8..12);
    let appointed_month = number(12..14);
    let valid = born.is_some()
        && (1900..2100).contains(&year)
        && (1950..2100).contains(&appointed_year)
        && (1..=12).contains(&appointed_month)
        && matches!(&nip[14..15], "1" | "2");
    if valid { Ok(nip) } else { Err(refused()) }
}

fn group_nip(nip: &str) -> String {
    if nip.len() == NIP_LEN && nip.is_ascii() {
        format!(
            "{} {} {} {}",
            &nip[..8],
            &nip[8..14],
            &nip[14..15],
            &nip[15..]
        )
    } else {
        nip.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npps_are_taken_in_their_published_form() {
        for (given, stored) in [
            ("6372052C0000001", "6372052C0000001"),
            ("3302012d1000001", "3302012D1000001"),
            ("330201 2D 1000001", "3302012D1000001"),
            ("3302.01-2D-1000001", "3302012D1000001"),
        ] {
            assert_eq!(
                DetailField::Npp.normalize(given),
                Ok(Some(stored.into())),
                "{given}"
            );
        }
        for bad in [
            "3302012D100000",    // 14
            "3302012D10000011",  // 16
            "0302012D1000001",   // no province 0x
            "33020A2D1000001",   // a letter in the area code
            "3302012D100000X",   // a letter in the serial
            "3302012é1000001",   // not ASCII
            "perpustakaan-desa", // a name
        ] {
            let refused = DetailField::Npp.normalize(bad).unwrap_err();
            assert!(matches!(refused, LibraryDetailsError::BadNpp(_)), "{bad}");
            assert!(refused.message(Lang::Id).contains("15 karakter"));
            assert!(refused.message(Lang::En).contains("15 characters"));
        }
    }

    #[test]
    fn nips_are_18_digits_with_a_birth_date_an_appointment_month_and_a_gender() {
        assert_eq!(
            DetailField::ManagerNip.normalize("19850312 201001 2 004"),
            Ok(Some("198503122010012004".into()))
        );
        for bad in [
            "19850312201001200",   // 17
            "1985031220100120045", // 19
            "19851312201001 2004", // month 13 of birth
            "19850230201001 2004", // 30 February
            "19850312201013 2004", // appointed in month 13
            "19850312201001 3004", // gender 3
            "1985031220100120O4",  // a letter O
        ] {
            let refused = DetailField::ManagerNip.normalize(bad).unwrap_err();
            assert!(matches!(refused, LibraryDetailsError::BadNip(_)), "{bad}");
            assert!(refused.message(Lang::Id).contains("18 angka"));
        }
        let details = LibraryDetails {
            manager_nip: Some("198503122010012004".into()),
            ..LibraryDetails::default()
        };
        assert_eq!(
            details.manager_nip_grouped().as_deref(),
            Some("19850312 201001 2 004")
        );
    }

    #[test]
    fn free_text_is_trimmed_bounded_and_on_one_line() {
        assert_eq!(
            DetailField::Manager.normalize("  Siti   Aminah "),
            Ok(Some("Siti Aminah".into()))
        );
        assert_eq!(DetailField::Desa.normalize("   "), Ok(None), "clears");
        assert_eq!(
            DetailField::Desa.normalize(&"a".repeat(81)),
            Err(LibraryDetailsError::TooLong(DetailField::Desa))
        );
        assert!(DetailField::Address.normalize(&"a".repeat(200)).is_ok());
        assert_eq!(
            DetailField::Address.normalize("Jl. Raya\nNo. 1"),
            Err(LibraryDetailsError::ControlCharacter(DetailField::Address))
        );
    }

    #[test]
    fn an_edit_changes_only_the_fields_given_and_clears_empty_ones() {
        let mut details = LibraryDetails {
            desa: Some("Dermaji".into()),
            kecamatan: Some("Lumbir".into()),
            manager: Some("Siti".into()),
            ..LibraryDetails::default()
        };
        let mut edit = LibraryDetailsEdit::default();
        edit.set(DetailField::Manager, "Siti Aminah").unwrap();
        edit.set(DetailField::Kecamatan, "").unwrap();
        assert!(edit.set(DetailField::Npp, "nope").is_err());
        assert_eq!(edit.changes().len(), 2, "a refused value changes nothing");
        edit.apply(&mut details);
        assert_eq!(
            details,
            LibraryDetails {
                desa: Some("Dermaji".into()),
                manager: Some("Siti Aminah".into()),
                ..LibraryDetails::default()
            }
        );
    }
}
