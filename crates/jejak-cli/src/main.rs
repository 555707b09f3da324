//! `jejak`: the one command for a village PC (agent, sessions, status) and, in later
//! parts, for the district server. It wires the library crates together and turns
//! their errors into messages in the user's language.

mod activity_cmd;
mod agent_cmd;
#[cfg(feature = "district")]
mod backup_cmd;
mod checkin_cmd;
mod clap_lang;
mod context;
#[cfg(feature = "district")]
mod demo;
mod desk_cmd;
mod doctor;
mod errors;
mod init;
mod logon_cmd;
mod output;
mod pc;
mod prune_cmd;
#[cfg(feature = "district")]
mod report_cmd;
#[cfg(feature = "district")]
mod server_cmd;
mod sync_cmd;
#[cfg(windows)]
mod windows_service;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{ArgAction, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use jejak_domain::Lang;
use output::errln;

#[derive(Debug, Parser)]
#[command(
    name = "jejak",
    version,
    about = "Jejak: catatan penggunaan komputer & internet perpustakaan desa / village library computer and internet use log"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
struct GlobalArgs {
    /// The PC's data directory (store, configuration, secrets).
    #[arg(long, global = true, env = "JEJAK_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Language of messages: id (Indonesian, default) or en.
    #[arg(long, global = true, env = "JEJAK_LANG")]
    lang: Option<String>,
    /// Output format: text for people, json for scripts; `jejak report` also writes
    /// csv, xlsx and html.
    #[arg(long, global = true, value_enum, default_value = "text")]
    format: Format,
    /// Show the technical detail behind a message (the underlying error, log lines);
    /// -vv for more.
    #[arg(short, long, global = true, action = ArgAction::Count)]
    verbose: u8,
}

#[derive(Debug, Clone, Args)]
struct AgentArgs {
    /// Run under the Windows service control manager (the service's own command line;
    /// not for a console).
    #[arg(long, hide = true)]
    service: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// For people (a table).
    #[value(alias = "table")]
    Text,
    /// For scripts.
    Json,
    /// CSV, one file per table (`jejak report` only).
    Csv,
    /// An XLSX workbook (`jejak report` only).
    Xlsx,
    /// A printable HTML page (`jejak report` only).
    Html,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Set up this PC: library, PC code, time zone, server (siapkan komputer ini).
    Init(init::InitArgs),
    /// Run the background agent (heartbeat, probe, recovery).
    Agent(AgentArgs),
    /// Start, end or list patron sessions (sesi pengguna).
    #[command(subcommand)]
    Session(pc::SessionCommand),
    /// The visitor book: record a visitor or a group, undo the last, list (buku tamu).
    #[command(subcommand)]
    Visit(desk_cmd::VisitCommand),
    /// The library's member count of a month (jumlah anggota).
    #[command(subcommand)]
    Member(desk_cmd::MemberCommand),
    /// The library's activities with their participants: add, list, edit (kegiatan).
    #[command(subcommand)]
    Activity(activity_cmd::ActivityCommand),
    /// Show the open session, what waits to sync, clock warnings and store health.
    Status,
    /// Remove data the server acknowledged long ago; keep the store under its size
    /// budget (hapus data lama yang sudah tersinkron). Never removes unsynced data.
    Prune(prune_cmd::PruneArgs),
    /// Send what waits to the district server now, or write/read a USB bundle.
    Sync(sync_cmd::SyncArgs),
    /// Connect this PC to the district server with the token it issued.
    Enroll(sync_cmd::EnrollArgs),
    /// Check the data folder, configuration, store, link, token, clock and disk, and
    /// say what to do about each problem (periksa komputer ini).
    Doctor(doctor::DoctorArgs),
    /// At a desktop logon: open the check-in page and report input idle time to the
    /// agent (the per-user part; the installer runs it at every logon).
    Logon(logon_cmd::LogonArgs),
    /// The Windows service: install, configure, uninstall, status (layanan Windows).
    #[cfg(windows)]
    #[command(subcommand)]
    Service(windows_service::ServiceCommand),
    /// The district server: set up, run, enroll libraries and PCs, import USB bundles.
    #[cfg(feature = "district")]
    Server(server_cmd::ServerArgs),
    /// Simulate a month at five Banyumas village libraries through the real store, then
    /// sync them to a district server.
    #[cfg(feature = "district")]
    Demo(demo::DemoArgs),
    /// District reports from the server's database: `village`, `district` (laporan).
    #[cfg(feature = "district")]
    #[command(subcommand_required = true)]
    Report(report_cmd::ReportArgs),
}

/// The log filter a command starts from (`JEJAK_LOG` overrides it). The agent and a
/// running server log what they do; a command a person types logs errors only, since
/// its outcome is told in a sentence in their language and log lines are English.
/// `-v` shows the info lines, `-vv` the debug lines.
fn log_filter(command: &Command, verbose: u8) -> &'static str {
    const LEVELS: [&str; 5] = ["off", "error", "warn", "info", "debug"];
    let base = match command {
        Command::Agent(_) => 3,
        #[cfg(feature = "district")]
        Command::Server(args) if args.serves() => 3,
        // The per-user part at a desktop logon has no terminal: its warnings are the
        // only trace of a problem.
        Command::Logon(_) => 2,
        _ => 1,
    };
    let wanted = match verbose {
        0 => base,
        1 => base.max(3),
        _ => 4,
    };
    LEVELS[wanted]
}

/// Parses the command line. A usage error is printed in the user's language and becomes
/// the exit code (2); help and version are printed as clap prints them.
fn parse_command_line() -> Result<(Cli, bool), ExitCode> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let matches = match Cli::command().try_get_matches_from(&args) {
        Ok(matches) => matches,
        Err(e) => return Err(usage_error(&e, clap_lang::lang_from_args(&args))),
    };
    let data_dir_typed = matches.value_source("data_dir") == Some(ValueSource::CommandLine)
        || matches
            .subcommand()
            .is_some_and(|(_, sub)| sub.value_source("data_dir") == Some(ValueSource::CommandLine));
    match Cli::from_arg_matches(&matches) {
        Ok(cli) => Ok((cli, data_dir_typed)),
        Err(e) => Err(usage_error(&e, clap_lang::lang_from_args(&args))),
    }
}

fn usage_error(error: &clap::Error, lang: Lang) -> ExitCode {
    match (lang, clap_lang::indonesian(error)) {
        (Lang::Id, Some(text)) => {
            output::write_stderr(format_args!("{text}"));
            ExitCode::from(errors::EXIT_INVALID_INPUT)
        }
        // A command given without its subcommand (`jejak session`): clap lists the
        // choices, under a sentence saying so.
        (Lang::Id, None)
            if error.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
        {
            errln!(
                "jejak: perintah ini belum lengkap; pilih salah satu perintah di bawah (penjelasannya dalam bahasa Inggris):\n"
            );
            let _ = error.print();
            ExitCode::from(errors::EXIT_INVALID_INPUT)
        }
        // English, help and version: clap's own words, on stdout or stderr as clap
        // chooses, with clap's exit code (0 for help, 2 for an error).
        _ => {
            let _ = error.print();
            ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(errors::EXIT_INVALID_INPUT))
        }
    }
}

/// `--data-dir` is the village PC's data folder; the district's commands keep their
/// data elsewhere and say where instead of ignoring it.
fn refuse_pc_options(command: &Command, data_dir_typed: bool) -> Option<errors::UsageError> {
    if !data_dir_typed {
        return None;
    }
    match command {
        #[cfg(feature = "district")]
        Command::Server(_) | Command::Report(_) => Some(errors::UsageError::new(
            "--data-dir adalah folder data komputer perpustakaan (untuk perintah PC seperti jejak status); perintah server dan laporan memakai basis data server: --database sqlite:PATH (atau JEJAK_DATABASE)",
            "--data-dir is a library PC's data folder (for PC commands such as jejak status); server and report commands use the server's database: --database sqlite:PATH (or JEJAK_DATABASE)",
        )),
        #[cfg(feature = "district")]
        Command::Demo(_) => Some(errors::UsageError::new(
            "--data-dir adalah folder data komputer perpustakaan; jejak demo menaruh data komputer simulasinya di --out FOLDER",
            "--data-dir is a library PC's data folder; jejak demo puts its simulated PCs' data in --out FOLDER",
        )),
        _ => None,
    }
}

fn main() -> ExitCode {
    let (cli, data_dir_typed) = match parse_command_line() {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    let lang = match cli
        .global
        .lang
        .as_deref()
        .map(str::parse::<Lang>)
        .transpose()
    {
        Ok(lang) => lang.unwrap_or_default(),
        Err(e) => {
            errln!("jejak: {e}");
            return ExitCode::from(errors::EXIT_INVALID_INPUT);
        }
    };
    let verbose = cli.global.verbose;
    if let Some(refusal) = refuse_pc_options(&cli.command, data_dir_typed) {
        errln!("jejak: {}", refusal.message(lang));
        return ExitCode::from(refusal.code);
    }
    let default_filter = log_filter(&cli.command, verbose);
    let data_dir = cli
        .global
        .data_dir
        .clone()
        .unwrap_or_else(jejak_agent::platform::default_data_dir);
    match &cli.command {
        // A Windows service has no console: its log goes to a file in the data folder,
        // where an administrator looks.
        #[cfg(windows)]
        Command::Agent(AgentArgs { service: true }) => {
            // The service may be the first to make the data folder: it gets its
            // protected ACL before anything is written into it.
            let _ = jejak_agent::platform::create_private_dir(&data_dir);
            output::init_logging_to_folder(
                &data_dir.join(windows_service::LOG_FOLDER),
                default_filter,
            )
        }
        _ => output::init_logging(default_filter),
    }
    #[cfg(feature = "district")]
    let is_report = matches!(cli.command, Command::Report(_));
    #[cfg(not(feature = "district"))]
    let is_report = false;
    if !is_report && matches!(cli.global.format, Format::Csv | Format::Xlsx | Format::Html) {
        errln!(
            "jejak: {}",
            lang.pick(
                "--format csv/xlsx/html hanya untuk `jejak report`",
                "--format csv/xlsx/html is only for `jejak report`"
            )
        );
        return ExitCode::from(errors::EXIT_INVALID_INPUT);
    }
    let context = context::Context {
        data_dir,
        lang,
        json: cli.global.format == Format::Json,
        verbose: verbose > 0,
    };
    let result = match cli.command {
        Command::Init(args) => init::run(&context, args),
        Command::Agent(args) => agent_cmd::agent(&context, args.service),
        Command::Session(command) => pc::session(&context, command),
        Command::Visit(command) => desk_cmd::visit(&context, command),
        Command::Member(command) => desk_cmd::member(&context, command),
        Command::Activity(command) => activity_cmd::activity(&context, command),
        Command::Status => pc::status(&context),
        Command::Prune(args) => prune_cmd::run(&context, args),
        Command::Sync(args) => sync_cmd::sync(&context, args),
        Command::Enroll(args) => sync_cmd::enroll(&context, args),
        Command::Doctor(args) => doctor::run(&context, args),
        Command::Logon(args) => logon_cmd::run(&context, args),
        #[cfg(windows)]
        Command::Service(command) => windows_service::command(&context, command),
        #[cfg(feature = "district")]
        Command::Server(args) => server_cmd::run(&context, args),
        #[cfg(feature = "district")]
        Command::Demo(args) => demo::run(&context, args),
        #[cfg(feature = "district")]
        Command::Report(args) => {
            let format = match cli.global.format {
                Format::Text => report_cmd::ReportFormat::Table,
                Format::Json => report_cmd::ReportFormat::Json,
                Format::Csv => report_cmd::ReportFormat::Csv,
                Format::Xlsx => report_cmd::ReportFormat::Xlsx,
                Format::Html => report_cmd::ReportFormat::Html,
            };
            report_cmd::run(lang, format, args)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader stopped reading (`| head`): what it wanted is printed, and nothing
        // is left to say to it.
        Err(err) if output::is_closed_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            let (message, code) = errors::explain(&err, lang);
            if !message.is_empty() {
                errln!("jejak: {message}");
            }
            if verbose > 0
                && let Some(detail) = errors::detail(&err)
            {
                errln!("  ({detail})");
            }
            ExitCode::from(code)
        }
    }
}
