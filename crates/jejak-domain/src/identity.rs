//! Who a record belongs to: the library and the PC.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, Field};

/// Checks the shape shared by library and PC codes: short, ASCII, safe in file
/// names, URLs and spreadsheet cells.
fn check_code(field: Field, raw: &str) -> Result<String, DomainError> {
    let ok_len = (1..=32).contains(&raw.len());
    let ok_first = raw
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let ok_chars = raw
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok_len && ok_first && ok_chars {
        Ok(raw.to_string())
    } else {
        Err(DomainError::BadCode {
            field,
            given: raw.to_string(),
        })
    }
}

macro_rules! code_type {
    ($(#[$meta:meta])* $name:ident, $field:expr) => {
        $(#[$meta])*
        // Shared text: a decoded batch stamps every record with its library and PC,
        // and cloning an `Arc<str>` costs no allocation.
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Arc<str>);

        impl $name {
            /// Reads a code a person typed: surrounding spaces are forgiven.
            pub fn parse(raw: &str) -> Result<Self, DomainError> {
                Self::parse_exact(raw.trim())
            }

            /// Reads a code a program wrote (a batch, a stored row): it must be exact, so
            /// `" 3302012001"` is refused rather than quietly taken for another spelling.
            pub fn parse_exact(raw: &str) -> Result<Self, DomainError> {
                check_code($field, raw).map(|code| $name(Arc::from(code)))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = DomainError;
            fn try_from(raw: String) -> Result<Self, Self::Error> {
                Self::parse_exact(&raw)
            }
        }

        impl From<$name> for String {
            fn from(code: $name) -> String {
                code.0.to_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = DomainError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
    };
}

code_type!(
    /// A library's code: its NPP (Nomor Pokok Perpustakaan) or a district-assigned code.
    LibraryCode,
    Field::Library
);
code_type!(
    /// A PC's code inside its library, such as `pc-01`.
    PcCode,
    Field::Pc
);

/// One PC of one library: the identity every record of a device carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeviceIdentity {
    pub library: LibraryCode,
    pub pc: PcCode,
}

impl fmt::Display for DeviceIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.library, self.pc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_accept_npp_and_pc_names_and_refuse_unsafe_text() {
        assert!(LibraryCode::parse("3302012001").is_ok());
        assert!(PcCode::parse("pc-01").is_ok());
        for bad in ["", "-pc", "pc 01", "pc/01", "a'b", &"x".repeat(33)] {
            assert!(PcCode::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(serde_json::from_str::<PcCode>("\"../etc\"").is_err());
    }

    #[test]
    fn people_may_add_spaces_but_documents_may_not() {
        assert_eq!(
            LibraryCode::parse(" 3302012001 ").unwrap().as_str(),
            "3302012001"
        );
        assert!(LibraryCode::parse_exact(" 3302012001").is_err());
        assert!(serde_json::from_str::<LibraryCode>("\" 3302012001\"").is_err());
        assert!(serde_json::from_str::<PcCode>("\"pc-01 \"").is_err());
        assert!(serde_json::from_str::<LibraryCode>("\"3302012001\"").is_ok());
    }
}
