//! The two languages Jejak speaks to people in.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The language of user-facing text. Indonesian is the default because the people
/// who read Jejak's screens and reports are Indonesian village and district staff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    Id,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Id => "id",
            Lang::En => "en",
        }
    }

    /// Picks the Indonesian or the English text.
    pub fn pick<'a>(self, id: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Id => id,
            Lang::En => en,
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The error for a language code other than `id` or `en`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bahasa tidak dikenal '{0}'; pilihan: id, en / unknown language '{0}'; choose id or en")]
pub struct UnknownLang(pub String);

impl FromStr for Lang {
    type Err = UnknownLang;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "id" | "ind" | "indonesia" | "bahasa" => Ok(Lang::Id),
            "en" | "eng" | "english" => Ok(Lang::En),
            _ => Err(UnknownLang(s.to_string())),
        }
    }
}
