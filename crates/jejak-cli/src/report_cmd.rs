//! `jejak report …`: the district's monthly, quarterly and annual reports and the
//! operations view, read from the server's database
//! directly (`--database sqlite:PATH`, like `jejak server`), or fetched from a running
//! server's report API (`--server URL --token jejak_staff_…`, a staff token from
//! `jejak server add-staff`). Over HTTP the report comes as JSON and is rendered here,
//! so every format is the same file as from the database.
//!
//! Output (`--format`, the global flag, which `jejak report` extends):
//!
//! - `table` (or `text`, the default): the terminal table on stdout, or in `--out`.
//! - `json`: the report model on stdout, or in `--out`.
//! - `csv`: one file per table. With `--out DIR` (an existing folder) the files get
//!   their own names (`<report id>-<table id>.csv`) in it; with `--out FILE.csv` they are
//!   written beside it as `FILE-<table id>.csv`. Without `--out` they are printed one
//!   after another, each under its title, with a blank line between. `--csv-dialect id`
//!   writes `;` and decimal commas, for Indonesian Excel (see the server's `report::csv`).
//! - `xlsx`, `html`: need `--out`, unless stdout is not a terminal (a pipe or a
//!   redirection), where the bytes are written to stdout.
//!
//! `--lang id|en` (global) picks the labels; Indonesian by default.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::{Datelike, NaiveDate, Utc};
use clap::{Arg, ArgMatches, Args, Command, FromArgMatches, Subcommand};
use jejak_domain::{Lang, LibraryCode, Problem};
use jejak_server::SqliteStore;
use jejak_server::report::{
    CsvDialect, LoadError, ParamError, ParamKind, RenderOptions, Report, ReportKind, ReportRequest,
    load, render_csv, render_csv_combined, render_html, render_json, render_terminal, render_xlsx,
};

use crate::errors::{EXIT_FAILURE, UsageError, file_error};
use crate::output::errln;
use crate::server_cmd::{default_database, is_postgres, missing_database, open_store, sqlite_path};

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
    /// The server's database: `sqlite:PATH` (or a plain path), or `postgres://…`; by
    /// default the one `jejak server` uses (/var/lib/jejak-server/jejak-server.db as
    /// root, ~/.local/share/jejak-server/jejak-server.db otherwise).
    #[arg(long, global = true, env = "JEJAK_DATABASE", value_name = "DATABASE")]
    database: Option<String>,
    /// Fetch the report from this server's report API instead of reading a database,
    /// e.g. http://dinas.example:8080.
    #[arg(long, global = true, env = "JEJAK_SERVER_URL", value_name = "URL")]
    server: Option<String>,
    /// The staff token for --server (from `jejak server add-staff`).
    #[arg(
        long,
        global = true,
        env = "JEJAK_STAFF_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
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
    /// CSV: `standard` (commas, decimal points) or `id` (semicolons, decimal commas:
    /// for Excel and LibreOffice under an Indonesian locale).
    #[arg(long, value_name = "DIALECT", value_parser = parse_csv_dialect)]
    csv_dialect: Option<CsvDialect>,
}

fn parse_csv_dialect(raw: &str) -> Result<CsvDialect, String> {
    raw.parse()
        .map_err(|e: jejak_server::report::UnknownCsvDialect| e.to_string())
}

/// A report and its options, as `jejak report NAME --PARAM VALUE …` gives them. The
/// subcommands are made from the report registry ([`ReportKind::ALL`]): each report's
/// name and summary, its parameters as required options, and the output options.
#[derive(Debug)]
struct ReportCommand {
    kind: ReportKind,
    /// The raw values of the report's parameters, by name.
    values: Vec<(&'static str, String)>,
    output: Output,
}

impl FromArgMatches for ReportCommand {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let (name, options) = matches
            .subcommand()
            .ok_or_else(|| clap::Error::new(clap::error::ErrorKind::MissingSubcommand))?;
        let kind = ReportKind::from_name(name)
            .ok_or_else(|| clap::Error::new(clap::error::ErrorKind::InvalidSubcommand))?;
        let values = kind
            .params()
            .iter()
            .filter_map(|param| {
                options
                    .get_one::<String>(param.name)
                    .map(|value| (param.name, value.clone()))
            })
            .collect();
        Ok(ReportCommand {
            kind,
            values,
            output: Output::from_arg_matches(options)?,
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = ReportCommand::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Subcommand for ReportCommand {
    fn augment_subcommands(command: Command) -> Command {
        ReportKind::ALL.into_iter().fold(command, |command, kind| {
            let report = kind.params().iter().fold(
                Command::new(kind.name()).about(kind.summary()),
                |report, param| {
                    report.arg(
                        Arg::new(param.name)
                            .long(param.name)
                            .value_name(value_name(param.kind))
                            .required(true)
                            .help(format!(
                                "{}, e.g. {}.",
                                param.description.replace('`', ""),
                                param.example
                            )),
                    )
                },
            );
            command.subcommand(Output::augment_args(report))
        })
    }

    fn augment_subcommands_for_update(command: Command) -> Command {
        ReportCommand::augment_subcommands(command)
    }

    fn has_subcommand(name: &str) -> bool {
        ReportKind::from_name(name).is_some()
    }
}

/// How `--help` names a parameter's value, as clap names those of derived options.
fn value_name(kind: ParamKind) -> &'static str {
    match kind {
        ParamKind::Month => "MONTH",
        ParamKind::Library => "LIBRARY",
        ParamKind::Quarter => "QUARTER",
        ParamKind::Year => "YEAR",
    }
}

/// The request a report's parameters make, or what to type instead: the periods are
/// checked against `today` (a period that has not begun is a typo).
fn request_of(command: &ReportCommand, today: NaiveDate) -> anyhow::Result<ReportRequest> {
    let value = |name: &str| {
        command
            .values
            .iter()
            .find(|(param, _)| *param == name)
            .map(|(_, value)| value.as_str())
    };
    let request = command.kind.request(value).map_err(|error| match error {
        ParamError::Invalid { param, ref raw, .. } => match param.kind {
            ParamKind::Month => month_not_understood(raw, today),
            ParamKind::Quarter => quarter_not_understood(raw, today),
            ParamKind::Year => year_not_understood(raw, today),
            // The domain's own error, in the user's language.
            ParamKind::Library => LibraryCode::parse(raw)
                .err()
                .map_or_else(|| anyhow::anyhow!("{error}"), anyhow::Error::from),
        },
        // clap requires every parameter; this is only a message in case it did not.
        ParamError::Missing(param) => UsageError::new(
            format!(
                "--{} wajib, mis. --{} {}",
                param.name, param.name, param.example
            ),
            format!(
                "--{} is required, e.g. --{} {}",
                param.name, param.name, param.example
            ),
        )
        .into(),
    })?;
    if let (Some(first_day), Some((_, shown))) = (request.first_day(), request.params().first()) {
        not_after_today(first_day, today, shown)?;
    }
    Ok(request)
}

fn quarter_not_understood(raw: &str, today: NaiveDate) -> anyhow::Error {
    UsageError::new(
        format!(
            "triwulan '{raw}' tidak dikenali; tulis tahun empat angka, -Q dan nomor triwulan 1–4, mis. {}",
            example_quarter(today)
        ),
        format!(
            "quarter '{raw}' is not understood; write a four-digit year, -Q and the quarter 1–4, e.g. {}",
            example_quarter(today)
        ),
    )
    .into()
}

fn month_not_understood(raw: &str, today: NaiveDate) -> anyhow::Error {
    let example = today.format("%Y-%m");
    UsageError::new(
        format!(
            "bulan '{raw}' tidak dikenali; tulis tahun empat angka dan bulan 01–12, mis. {example}"
        ),
        format!(
            "month '{raw}' is not understood; write a four-digit year and the month 01–12, e.g. {example}"
        ),
    )
    .into()
}

fn year_not_understood(raw: &str, today: NaiveDate) -> anyhow::Error {
    UsageError::new(
        format!(
            "tahun '{raw}' tidak masuk akal; tulis tahun empat angka dari 2000, mis. {}",
            today.year()
        ),
        format!(
            "year '{raw}' is not plausible; write a four-digit year from 2000 on, e.g. {}",
            today.year()
        ),
    )
    .into()
}

/// A report of a period that has not begun can only be empty: it is a typo (2062 for
/// 2026), refused with the period that is running now.
fn not_after_today(first_day: NaiveDate, today: NaiveDate, shown: &str) -> anyhow::Result<()> {
    if first_day <= today {
        return Ok(());
    }
    Err(UsageError::new(
        format!(
            "{shown} belum dimulai (hari ini {today}), jadi laporannya pasti kosong; periksa angkanya"
        ),
        format!(
            "{shown} has not begun (today is {today}), so its report can only be empty; check the number"
        ),
    )
    .into())
}

fn example_quarter(today: NaiveDate) -> String {
    format!("{}-Q{}", today.year(), today.month0() / 3 + 1)
}

pub fn run(lang: Lang, format: ReportFormat, args: ReportArgs) -> anyhow::Result<()> {
    // Periods are checked against the district's calendar (WIB, where most are).
    let today = Utc::now()
        .with_timezone(&jejak_domain::Zone::Wib.offset())
        .date_naive();
    let request = request_of(&args.command, today)?;
    let output = args.command.output;
    // Checked before any work: a dialect only shapes CSV.
    if output.csv_dialect.is_some() && format != ReportFormat::Csv {
        return Err(UsageError::new(
            "--csv-dialect hanya untuk --format csv (contoh: jejak report district --month 2026-10 --format csv --csv-dialect id)",
            "--csv-dialect is for --format csv only (e.g. jejak report district --month 2026-10 --format csv --csv-dialect id)",
        )
        .into());
    }
    let database = args.database.unwrap_or_else(default_database);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = match args.server.as_deref() {
        Some(server) => {
            let Some(token) = args.token.as_deref().filter(|t| !t.trim().is_empty()) else {
                return Err(UsageError::new(
                    "--server perlu --token TOKEN (token staf dari `jejak server add-staff`, \
                     atau JEJAK_STAFF_TOKEN)",
                    "--server needs --token TOKEN (a staff token from `jejak server add-staff`, \
                     or JEJAK_STAFF_TOKEN)",
                )
                .into());
            };
            runtime.block_on(fetch(server, token.trim(), &request, lang))?
        }
        None if is_postgres(&database) => {
            let store = runtime.block_on(open_store(&database))?;
            match runtime.block_on(load(store.as_ref(), &request, lang, Utc::now())) {
                Ok(report) => report,
                Err(LoadError::UnknownLibrary(code)) => return Err(unknown_library(&code).into()),
                Err(LoadError::Store(e)) => return Err(e.into()),
            }
        }
        None => {
            let path = sqlite_path(&database)?;
            if !path.exists() {
                let missing = missing_database(&path);
                return Err(UsageError::new(
                    format!(
                        "{}; atau ambil laporan dari server yang berjalan dengan --server URL --token TOKEN (token staf dari jejak server add-staff)",
                        missing.id
                    ),
                    format!(
                        "{}; or fetch the report from a running server with --server URL --token TOKEN (a staff token from jejak server add-staff)",
                        missing.en
                    ),
                )
                .into());
            }
            let store = SqliteStore::open(&path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            match runtime.block_on(load(&store, &request, lang, Utc::now())) {
                Ok(report) => report,
                Err(LoadError::UnknownLibrary(code)) => return Err(unknown_library(&code).into()),
                Err(LoadError::Store(e)) => return Err(e.into()),
            }
        }
    };
    let mut options = RenderOptions::new(lang);
    if let Some(k) = output.suppress_below {
        options = options.suppressing_below(k);
    }
    if let Some(dialect) = output.csv_dialect {
        options = options.with_csv_dialect(dialect);
    }
    write_report(&report, format, &options, output.out.as_deref())
}

fn unknown_library(code: &impl std::fmt::Display) -> UsageError {
    UsageError::new(
        format!(
            "perpustakaan '{code}' tidak terdaftar di server ini; lihat kode yang terdaftar dengan jejak server list"
        ),
        format!(
            "library '{code}' is not registered on this server; see the registered codes with jejak server list"
        ),
    )
}

/// Fetches the report as JSON from a server's report API. Suppression is not asked
/// of the server: the full report is rendered here with the same options as one read
/// from the database, so both paths give the same files.
async fn fetch(
    server: &str,
    token: &str,
    request: &ReportRequest,
    lang: Lang,
) -> anyhow::Result<Report> {
    let base = server.trim().trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(UsageError::new(
            format!("alamat server '{server}' harus diawali http:// atau https://"),
            format!("the server address '{server}' must start with http:// or https://"),
        )
        .into());
    }
    let (endpoint, mut query) = (request.kind().name(), request.params());
    query.push(("lang", lang.code().to_string()));
    let url = format!("{base}/api/v1/reports/{endpoint}");
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        // An annual report reads twelve months of facts; give it time on a slow link.
        .timeout(std::time::Duration::from_secs(300))
        .build()?;
    let unreachable = |e: &reqwest::Error| {
        UsageError::new(
            format!("server {base} tidak dapat dihubungi; periksa alamatnya dan sambungan ke sana, lalu coba lagi"),
            format!("the server {base} cannot be reached; check its address and the link to it, then try again"),
        )
        .exit_code(EXIT_FAILURE)
        .with_detail(e)
    };
    let response = client
        .get(&url)
        .bearer_auth(token)
        .query(&query)
        .send()
        .await
        .map_err(|e| unreachable(&e))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| unreachable(&e))?;
    if status.is_success() {
        return serde_json::from_slice::<Report>(&body).map_err(|e| {
            UsageError::new(
                format!("jawaban {url} bukan laporan Jejak; periksa bahwa --server menunjuk server Jejak kabupaten"),
                format!("the answer of {url} is not a Jejak report; check that --server points at the district's Jejak server"),
            )
            .exit_code(EXIT_FAILURE)
            .with_detail(e)
            .into()
        });
    }
    let problem = serde_json::from_slice::<Problem>(&body).ok();
    let detail = problem.as_ref().map_or_else(
        || String::from_utf8_lossy(&body).chars().take(300).collect(),
        |p| p.detail.clone(),
    );
    let kind = problem.as_ref().map_or("", |p| p.kind.as_str());
    let error = match (status.as_u16(), kind) {
        (401 | 403, _) => UsageError::new(
            format!(
                "server menolak token ({}): pakai token staf dari `jejak server add-staff` \
                 (token yang dicabut atau token komputer tidak bisa dipakai untuk laporan)",
                status.as_u16()
            ),
            format!(
                "the server refused the token ({}): use a staff token from \
                 `jejak server add-staff` (a revoked token or a PC's token cannot read reports)",
                status.as_u16()
            ),
        )
        .with_detail(&detail),
        (404, "unknown-library") => match request {
            ReportRequest::Village { library, .. } => unknown_library(library),
            _ => unknown_library(&"?"),
        },
        _ => UsageError::new(
            format!("server menjawab {status}: {detail}"),
            format!("the server answered {status}: {detail}"),
        )
        .exit_code(if status.is_client_error() {
            crate::errors::EXIT_INVALID_INPUT
        } else {
            EXIT_FAILURE
        }),
    };
    Err(error.into())
}

fn write_to(out: Option<&Path>, bytes: &[u8]) -> anyhow::Result<()> {
    match out {
        Some(path) => Ok(std::fs::write(path, bytes).map_err(|e| file_error(path, true, e))?),
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
                None => write_to(None, render_csv_combined(report, options).as_bytes()),
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
                        errln!("{}", path.display());
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
