//! `jejak report …`: the district's monthly, quarterly and annual reports and the
//! operations view, read from the server's database
//! directly (`--database sqlite:PATH`, like `jejak server`).
//!
//! Output (`--format`, the global flag, which `jejak report` extends):
//!
//! - `table` (or `text`, the default): the terminal table on stdout, or in `--out`.
//! - `json`: the report model on stdout, or in `--out`.
//! - `csv`: one file per table. With `--out DIR` (an existing folder) the files get
//!   their own names (`<report id>-<table id>.csv`) in it; with `--out FILE.csv` they are
//!   written beside it as `FILE-<table id>.csv`. Without `--out` they are printed one
//!   after another with a blank line between.
//! - `xlsx`, `html`: need `--out`, unless stdout is not a terminal (a pipe or a
//!   redirection), where the bytes are written to stdout.
//!
//! `--lang id|en` (global) picks the labels; Indonesian by default.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::{NaiveDate, Utc};
use clap::{Args, Subcommand};
use jejak_domain::{Lang, LibraryCode};
use jejak_server::SqliteStore;
use jejak_server::report::{
    LoadError, Period, RenderOptions, Report, ReportRequest, load, render_csv, render_html,
    render_json, render_terminal, render_xlsx,
};

use crate::errors::UsageError;
use crate::server_cmd::sqlite_path;

/// The formats a report is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Table,
    Json,
    Csv,
    Xlsx,
    Html,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The server's database: `sqlite:PATH` (or a plain path).
    #[arg(
        long,
        global = true,
        env = "JEJAK_DATABASE",
        default_value = "sqlite:jejak-server.db"
    )]
    database: String,
    #[command(subcommand)]
    command: ReportCommand,
}

#[derive(Debug, Args)]
struct Output {
    /// Write the report to this file (CSV: beside it, one file per table; or into this
    /// folder when it exists).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Show counts from 1 to K-1 as "<K" (for exports that leave the office).
    #[arg(long, value_name = "K")]
    suppress_below: Option<u32>,
}

#[derive(Debug, Subcommand)]
enum ReportCommand {
    /// Village monthly report (Laporan Bulanan Layanan TIK) of one library.
    Village {
        /// The month, YYYY-MM.
        #[arg(long)]
        month: String,
        /// The library's code.
        #[arg(long)]
        library: String,
        #[command(flatten)]
        output: Output,
    },
    /// District monthly matrix (Rekap Bulanan Kabupaten): a row per library.
    District {
        /// The month, YYYY-MM.
        #[arg(long)]
        month: String,
        #[command(flatten)]
        output: Output,
    },
    /// Quarterly report: libraries × months, change against the previous quarter,
    /// target groups (women, youth 16–30, UMKM).
    Quarter {
        /// The quarter, YYYY-Qn, e.g. 2026-Q4.
        #[arg(long)]
        quarter: String,
        #[command(flatten)]
        output: Output,
    },
    /// Operations view: last sync per library and PC, clock offsets, sessions open for
    /// more than 12 hours, rejected records.
    Ops {
        #[command(flatten)]
        output: Output,
    },
    /// Annual report: libraries × months, change against the previous year, target groups.
    Year {
        /// The year, e.g. 2026.
        #[arg(long)]
        year: i32,
        #[command(flatten)]
        output: Output,
    },
}

fn parse_quarter(raw: &str) -> anyhow::Result<Period> {
    jejak_server::report::parse_quarter(raw).ok_or_else(|| {
        UsageError::new(
            format!("triwulan '{raw}' tidak dikenali; tulis YYYY-Qn, mis. 2026-Q4"),
            format!("quarter '{raw}' is not understood; write YYYY-Qn, e.g. 2026-Q4"),
        )
        .into()
    })
}

fn parse_month(raw: &str) -> anyhow::Result<NaiveDate> {
    jejak_server::report::parse_month(raw).ok_or_else(|| {
        UsageError::new(
            format!("bulan '{raw}' tidak dikenali; tulis YYYY-MM, mis. 2026-10"),
            format!("month '{raw}' is not understood; write YYYY-MM, e.g. 2026-10"),
        )
        .into()
    })
}

pub fn run(lang: Lang, format: ReportFormat, args: ReportArgs) -> anyhow::Result<()> {
    let path = sqlite_path(&args.database)?;
    if !path.exists() {
        return Err(UsageError::new(
            format!("basis data server {} tidak ada", path.display()),
            format!("the server database {} does not exist", path.display()),
        )
        .into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let store =
        SqliteStore::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    let now = Utc::now();
    let (request, output) = match args.command {
        ReportCommand::Village {
            month,
            library,
            output,
        } => {
            let month = parse_month(&month)?;
            let library = LibraryCode::parse(&library)?;
            (ReportRequest::Village { month, library }, output)
        }
        ReportCommand::District { month, output } => {
            let month = parse_month(&month)?;
            (ReportRequest::District { month }, output)
        }
        ReportCommand::Quarter { quarter, output } => {
            (ReportRequest::Period(parse_quarter(&quarter)?), output)
        }
        ReportCommand::Ops { output } => (ReportRequest::Operations, output),
        ReportCommand::Year { year, output } => (ReportRequest::Period(Period::Year(year)), output),
    };
    let report = match runtime.block_on(load(&store, &request, lang, now)) {
        Ok(report) => report,
        Err(LoadError::UnknownLibrary(code)) => {
            return Err(UsageError::new(
                format!("perpustakaan '{code}' tidak terdaftar"),
                format!("library '{code}' is not registered"),
            )
            .into());
        }
        Err(LoadError::Store(e)) => return Err(e.into()),
    };
    let mut options = RenderOptions::new(lang);
    if let Some(k) = output.suppress_below {
        options = options.suppressing_below(k);
    }
    write_report(&report, format, &options, output.out.as_deref())
}

fn write_to(out: Option<&Path>, bytes: &[u8]) -> anyhow::Result<()> {
    match out {
        Some(path) => {
            std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(bytes)?;
            stdout.flush()?;
            Ok(())
        }
    }
}

fn write_report(
    report: &Report,
    format: ReportFormat,
    options: &RenderOptions,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    match format {
        ReportFormat::Table => write_to(out, render_terminal(report, options).as_bytes()),
        ReportFormat::Json => {
            let mut json = render_json(report, options)?;
            json.push('\n');
            write_to(out, json.as_bytes())
        }
        ReportFormat::Csv => {
            let files = render_csv(report, options);
            match out {
                None => {
                    let text: Vec<String> = files.into_iter().map(|f| f.content).collect();
                    write_to(None, text.join("\n").as_bytes())
                }
                Some(out) => {
                    for (file, table) in files.iter().zip(&report.sections) {
                        let path = if out.is_dir() {
                            out.join(&file.name)
                        } else {
                            let stem = out
                                .file_stem()
                                .map_or_else(|| report.id.clone(), |s| s.to_string_lossy().into());
                            out.with_file_name(format!("{stem}-{}.csv", table.id))
                        };
                        write_to(Some(&path), file.content.as_bytes())?;
                        eprintln!("{}", path.display());
                    }
                    Ok(())
                }
            }
        }
        ReportFormat::Xlsx | ReportFormat::Html => {
            if out.is_none() && std::io::stdout().is_terminal() {
                return Err(UsageError::new(
                    "format xlsx/html perlu --out FILE (atau alihkan stdout ke file)",
                    "xlsx/html need --out FILE (or stdout redirected to a file)",
                )
                .into());
            }
            let bytes = if format == ReportFormat::Xlsx {
                render_xlsx(report, options)?
            } else {
                render_html(report, options).into_bytes()
            };
            write_to(out, &bytes)
        }
    }
}
