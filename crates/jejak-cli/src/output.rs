//! How the CLI shows things: logs on stderr, tables and numbers for people, JSON for
//! scripts.
//!
//! Everything a command prints goes through [`outln!`] (stdout) and [`errln!`] (stderr)
//! rather than `println!`, which panics when the reader has gone: `jejak status --format
//! json | head` closes the pipe after ten lines, and the next write fails with EPIPE.
//! `outln!` returns that error, the command stops at the next `?`, and `main` ends it
//! quietly ([`is_closed_pipe`]). A failed write to stderr is dropped: there is nowhere
//! left to say anything.

use chrono::{DateTime, Utc};
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use jejak_domain::{Lang, Zone};

/// `println!` that returns the write's error instead of panicking on a closed pipe.
macro_rules! outln {
    () => {
        $crate::output::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use outln;

/// `eprintln!` that never panics: a message that cannot be written is dropped.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::output::write_stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use errln;

/// Writes to stdout; the error of a closed pipe is returned, not a panic.
pub fn write_stdout(text: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    use std::io::Write;
    std::io::stdout().lock().write_fmt(text)
}

/// Writes to stderr, dropping any error.
pub fn write_stderr(text: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = std::io::stderr().lock().write_fmt(text);
}

/// Whether an error comes from writing to a reader that has gone (EPIPE): the command
/// then stops quietly, its work done, as `head` asked.
pub fn is_closed_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Logs go to stderr so that stdout stays clean for what scripts read. `JEJAK_LOG`
/// sets the filter (e.g. `debug`), `JEJAK_LOG_FORMAT=json` gives one JSON object per line.
pub fn init_logging(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("JEJAK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if std::env::var("JEJAK_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The Windows service's log: `jejak.log.YYYY-MM-DD` in `folder`, a new file each day,
/// the last seven kept. If the folder cannot be made the log goes to stderr (which the
/// service control manager discards), so the service still runs.
#[cfg(windows)]
pub fn init_logging_to_folder(folder: &std::path::Path, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("JEJAK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let appender = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix("jejak.log")
        .max_log_files(7)
        .build(folder);
    match appender {
        Ok(appender) => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(appender))
            .init(),
        Err(e) => {
            init_logging(default_filter);
            tracing::error!(error = %e, folder = %folder.display(), "cannot write the log folder; logging to stderr");
        }
    }
}

/// A table with a header row, as the terminal shows it.
pub fn table(header: Vec<String>, rows: Vec<Vec<String>>) -> String {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header);
    for row in rows {
        table.add_row(row);
    }
    table.to_string()
}

/// A wall time in the library's zone, e.g. `2026-11-02 08:15 WIB`.
pub fn local_time(at: DateTime<Utc>, zone: Zone) -> String {
    let abbreviation = match zone {
        Zone::Wib => "WIB",
        Zone::Wita => "WITA",
        Zone::Wit => "WIT",
    };
    format!(
        "{} {abbreviation}",
        at.with_timezone(&zone.offset()).format("%Y-%m-%d %H:%M")
    )
}

/// A number as people read it: `1.234,5` in Indonesian, `1,234.5` in English.
pub fn number(value: f64, decimals: usize, lang: Lang) -> String {
    let (thousands, point) = match lang {
        Lang::Id => ('.', ','),
        Lang::En => (',', '.'),
    };
    let text = format!("{:.*}", decimals, value.abs());
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(thousands);
        }
        grouped.push(digit);
    }
    let sign = if value < 0.0 && text.chars().any(|c| c.is_ascii_digit() && c != '0') {
        "-"
    } else {
        ""
    };
    if fraction.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}{point}{fraction}")
    }
}

/// A duration in seconds as hours and minutes, e.g. `1 j 05 m` / `1 h 05 m`.
pub fn duration(secs: u64, lang: Lang) -> String {
    let hours = secs / 3600;
    let minutes = (secs % 3600) / 60;
    if hours > 0 {
        format!("{hours} {} {minutes:02} m", lang.pick("j", "h"))
    } else {
        format!("{minutes} m")
    }
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_follow_the_language() {
        assert_eq!(number(1234.5, 1, Lang::Id), "1.234,5");
        assert_eq!(number(1234.5, 1, Lang::En), "1,234.5");
        assert_eq!(number(1_234_567.0, 0, Lang::Id), "1.234.567");
        assert_eq!(number(999.0, 0, Lang::Id), "999");
        assert_eq!(number(-12.34, 1, Lang::Id), "-12,3");
        assert_eq!(number(0.0, 2, Lang::Id), "0,00");
    }

    #[test]
    fn times_are_shown_in_the_library_zone() {
        let at = DateTime::from_timestamp(1_793_500_000, 0).unwrap();
        assert_eq!(local_time(at, Zone::Wib), "2026-11-01 09:26 WIB");
        assert_eq!(local_time(at, Zone::Wit), "2026-11-01 11:26 WIT");
    }

    #[test]
    fn durations_read_as_hours_and_minutes() {
        assert_eq!(duration(3900, Lang::Id), "1 j 05 m");
        assert_eq!(duration(600, Lang::En), "10 m");
    }
}
