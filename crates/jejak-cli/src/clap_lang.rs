//! The argument parser's complaints in the user's language. clap writes its usage
//! errors in English; a librarian who types `--gender perempuan` or `--yaer 2026`
//! reads them here in Indonesian (the default), with what to do: the allowed values,
//! the option clap thinks was meant, how the command is used and where its help is.
//! `--lang en` keeps clap's own English.
//!
//! The language cannot come from the parsed arguments (parsing is what failed), so
//! [`lang_from_args`] looks for `--lang` in the raw arguments, then `JEJAK_LANG`.

use std::ffi::OsString;
use std::fmt::Write as _;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use jejak_domain::Lang;

use crate::errors::UsageError;

/// The language asked for by `--lang X`, `--lang=X` or `JEJAK_LANG`, else Indonesian.
/// An unknown code counts as the default here; the parsed arguments refuse it later.
pub fn lang_from_args(args: &[OsString]) -> Lang {
    let mut given = None;
    let mut words = args.iter().skip(1).map(|a| a.to_string_lossy());
    while let Some(word) = words.next() {
        if word == "--" {
            break;
        }
        if word == "--lang" {
            given = words.next().map(|w| w.into_owned());
        } else if let Some(value) = word.strip_prefix("--lang=") {
            given = Some(value.to_string());
        }
    }
    given
        .or_else(|| std::env::var("JEJAK_LANG").ok())
        .and_then(|code| code.parse().ok())
        .unwrap_or_default()
}

/// The text of a usage error in Indonesian, ending in a newline, or `None` for what is
/// not an error (help, version), which clap prints itself.
pub fn indonesian(error: &clap::Error) -> Option<String> {
    let string = |kind| match error.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    let strings = |kind| match error.get(kind) {
        Some(ContextValue::Strings(v)) => v.clone(),
        Some(ContextValue::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    };
    let number = |kind| match error.get(kind) {
        Some(ContextValue::Number(n)) => Some(*n),
        _ => None,
    };
    let arg = string(ContextKind::InvalidArg).unwrap_or_default();
    let value = string(ContextKind::InvalidValue).unwrap_or_default();
    let mut text = String::from("jejak: ");
    match error.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => return None,
        ErrorKind::InvalidValue if value.is_empty() => {
            let _ = write!(text, "{arg} perlu nilai, tetapi tidak diberi nilai");
        }
        ErrorKind::InvalidValue => {
            let _ = write!(text, "nilai '{value}' tidak sah untuk {arg}");
        }
        ErrorKind::ValueValidation => {
            let _ = write!(text, "nilai '{value}' tidak sah untuk {arg}");
            if let Some(why) = std::error::Error::source(error).and_then(why_invalid) {
                let _ = write!(text, ": {why}");
            }
        }
        ErrorKind::UnknownArgument => {
            let _ = write!(text, "opsi '{arg}' tidak dikenal di sini");
        }
        ErrorKind::InvalidSubcommand => {
            let name = string(ContextKind::InvalidSubcommand).unwrap_or_default();
            let _ = write!(text, "perintah '{name}' tidak dikenal");
        }
        ErrorKind::MissingSubcommand => {
            let name = string(ContextKind::InvalidSubcommand).unwrap_or_default();
            let _ = write!(text, "'{name}' perlu perintah lanjutan");
        }
        ErrorKind::MissingRequiredArgument => {
            let missing = strings(ContextKind::InvalidArg);
            let _ = write!(text, "opsi wajib belum diberikan: {}", missing.join(", "));
        }
        ErrorKind::ArgumentConflict => {
            let prior = strings(ContextKind::PriorArg);
            if prior.is_empty() || prior == [arg.clone()] {
                let _ = write!(text, "{arg} hanya boleh diberikan sekali");
            } else {
                let _ = write!(
                    text,
                    "{arg} tidak dapat dipakai bersama {}; pilih salah satu",
                    prior.join(", ")
                );
            }
        }
        ErrorKind::TooManyValues => {
            let _ = write!(
                text,
                "nilai '{value}' untuk {arg} berlebih; {arg} hanya menerima satu nilai"
            );
        }
        ErrorKind::TooFewValues => {
            let _ = write!(
                text,
                "{arg} perlu paling sedikit {} nilai, diberikan {}",
                number(ContextKind::MinValues).unwrap_or(1),
                number(ContextKind::ActualNumValues).unwrap_or(0)
            );
        }
        ErrorKind::WrongNumberOfValues => {
            let _ = write!(
                text,
                "{arg} perlu {} nilai, diberikan {}",
                number(ContextKind::ExpectedNumValues).unwrap_or(1),
                number(ContextKind::ActualNumValues).unwrap_or(0)
            );
        }
        ErrorKind::NoEquals => {
            let _ = write!(text, "{arg} perlu tanda '=' sebelum nilainya");
        }
        ErrorKind::InvalidUtf8 => text.push_str("argumen berisi huruf yang tidak dapat dibaca"),
        _ => text.push_str("perintah tidak dapat dibaca"),
    }
    let valid = strings(ContextKind::ValidValue);
    if !valid.is_empty() {
        let _ = write!(text, "; pilihan yang sah: {}", valid.join(", "));
    }
    let subcommands = strings(ContextKind::ValidSubcommand);
    if !subcommands.is_empty() {
        let _ = write!(text, "; pilihan: {}", subcommands.join(", "));
    }
    text.push('\n');
    for kind in [
        ContextKind::SuggestedArg,
        ContextKind::SuggestedSubcommand,
        ContextKind::SuggestedValue,
    ] {
        let suggested = strings(kind);
        if !suggested.is_empty() {
            let _ = writeln!(text, "  mungkin maksudnya: {}", suggested.join(" atau "));
        }
    }
    if let Some(ContextValue::StyledStr(usage)) = error.get(ContextKind::Usage) {
        let usage = usage.to_string();
        let usage = usage.trim().trim_start_matches("Usage:").trim();
        let _ = writeln!(text, "\nCara pakai: {usage}");
        let command: Vec<&str> = usage
            .split_whitespace()
            .take_while(|word| !word.starts_with(['[', '<', '-']))
            .collect();
        let _ = writeln!(
            text,
            "Penjelasan semua opsi: {} --help",
            if command.is_empty() {
                "jejak".to_string()
            } else {
                command.join(" ")
            }
        );
    }
    Some(text)
}

/// Why a value parser refused a value, in Indonesian, for the parsers this command
/// uses: numbers, socket addresses, and its own ([`UsageError`]); any other parser's
/// message is passed on as it is (better its words than none).
fn why_invalid(source: &(dyn std::error::Error + 'static)) -> Option<String> {
    if let Some(e) = source.downcast_ref::<UsageError>() {
        return Some(e.message(Lang::Id));
    }
    if let Some(e) = source.downcast_ref::<std::num::ParseIntError>() {
        use std::num::IntErrorKind;
        return Some(
            match e.kind() {
                IntErrorKind::Empty => "kosong; tulis sebuah bilangan",
                IntErrorKind::PosOverflow => "terlalu besar",
                IntErrorKind::NegOverflow => "terlalu kecil",
                _ => "harus bilangan bulat tanpa tanda, mis. 5",
            }
            .to_string(),
        );
    }
    if source.downcast_ref::<std::net::AddrParseError>().is_some() {
        return Some("tulis alamat dan port, mis. 127.0.0.1:8080".to_string());
    }
    // clap's own range checks say "N is not in MIN..=MAX".
    let said = source.to_string();
    let Some((_, range)) = said.split_once(" is not in ") else {
        return Some(said);
    };
    Some(match range.split_once("..=") {
        Some((min, max)) => format!("harus antara {min} dan {max}"),
        None => format!("harus dalam rentang {range}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_language_is_read_from_the_raw_arguments() {
        assert_eq!(
            lang_from_args(&args(&["jejak", "--lang", "en", "x"])),
            Lang::En
        );
        assert_eq!(lang_from_args(&args(&["jejak", "--lang=en"])), Lang::En);
        // After `--` nothing is an option.
        assert_eq!(
            lang_from_args(&args(&["jejak", "x", "--", "--lang=en"])),
            lang_from_args(&args(&["jejak"]))
        );
    }
}
