//! The library's activities (kegiatan): `jejak activity add|list|edit`. Every value is
//! read before the store is opened, so a typo writes nothing; an edit is the activity's
//! next revision with the changed fields.

use clap::{Args, Subcommand};
use jejak_agent::store::{ActivityInput, short_id};
use jejak_domain::{
    Activity, ActivityPlace, ActivityType, Lang, Participants, RecordBody, YearMonth, parse_date,
    parse_time,
};

use crate::context::Context;
use crate::output;
use crate::output::{errln, outln};

#[derive(Debug, Subcommand)]
pub enum ActivityCommand {
    /// Record an activity the library held, with its participants (catat kegiatan).
    Add(AddArgs),
    /// List the activities recorded on this PC, newest first (daftar kegiatan).
    List {
        /// Only the activities of this month, YYYY-MM (e.g. 2026-11).
        #[arg(long)]
        month: Option<String>,
        /// Show whole ids instead of their short form.
        #[arg(long)]
        full_id: bool,
    },
    /// Correct an activity: the fields given change, the rest stay (ubah kegiatan).
    Edit {
        /// The activity's id as `jejak activity list` shows it (or the whole id).
        id: String,
        #[command(flatten)]
        fields: EditArgs,
    },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The day it was held, YYYY-MM-DD (at most tomorrow, at most a year back).
    #[arg(long)]
    date: String,
    /// Start time, HH:MM.
    #[arg(long)]
    start: String,
    /// Duration in minutes (1 to 1440).
    #[arg(long)]
    duration: u32,
    /// pelatihan, sosialisasi_kie, bimbingan_belajar, bedah_buku, lomba, pameran,
    /// kunjungan_studi_banding or lainnya.
    #[arg(long = "type")]
    activity_type: String,
    /// What the activity was (at most 120 characters). Never a patron's name.
    #[arg(long)]
    title: String,
    /// The partner organisation (mitra), at most 120 characters.
    #[arg(long)]
    partner: Option<String>,
    /// di_perpustakaan (the default) or di_luar.
    #[arg(long, default_value = "di_perpustakaan")]
    place: String,
    /// Participants by gender and age group: "L:dewasa=5,P:dewasa=7,P:remaja=3"
    /// (gender L, P or X; age anak, remaja, pemuda, dewasa, madya, lansia, unknown).
    #[arg(long, default_value = "")]
    participants: String,
    /// Notes on the activity (at most 500 characters, one line). Never a patron's name.
    #[arg(long)]
    notes: Option<String>,
}

/// The fields an edit may change; an empty `--partner ""` or `--notes ""` clears them.
#[derive(Debug, Args)]
pub struct EditArgs {
    #[arg(long)]
    date: Option<String>,
    #[arg(long)]
    start: Option<String>,
    #[arg(long)]
    duration: Option<u32>,
    #[arg(long = "type")]
    activity_type: Option<String>,
    #[arg(long)]
    title: Option<String>,
    #[arg(long)]
    partner: Option<String>,
    #[arg(long)]
    place: Option<String>,
    /// The whole list of participants, as for `add`: it replaces the old one.
    #[arg(long)]
    participants: Option<String>,
    #[arg(long)]
    notes: Option<String>,
}

/// An optional text as typed, without surrounding spaces: empty means none.
fn optional(text: Option<String>) -> Option<String> {
    text.map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
}

pub fn activity(ctx: &Context, command: ActivityCommand) -> anyhow::Result<()> {
    match command {
        ActivityCommand::Add(args) => {
            let input = ActivityInput {
                date: parse_date(&args.date)?,
                start: parse_time(&args.start)?,
                duration_minutes: args.duration,
                activity_type: ActivityType::parse(&args.activity_type)?,
                title: args.title.trim().to_string(),
                partner: optional(args.partner),
                place: ActivityPlace::parse(&args.place)?,
                participants: Participants::parse(&args.participants)?,
                notes: optional(args.notes),
            };
            let mut pc = ctx.open_pc()?;
            let activity = pc.store.add_activity(input)?;
            remind_no_patron_names(ctx.lang);
            if ctx.json {
                return output::print_json(&activity);
            }
            outln!(
                "{} {}\n{} {}",
                ctx.lang.pick("Kegiatan dicatat:", "Activity recorded:"),
                activity_text(&activity, ctx.lang),
                ctx.lang.pick("ID kegiatan:", "Activity ID:"),
                short_id(&activity.id)
            )?;
            Ok(())
        }
        ActivityCommand::Edit { id, fields } => {
            // Read every value first: a typo in one changes nothing.
            let date = fields.date.as_deref().map(parse_date).transpose()?;
            let start = fields.start.as_deref().map(parse_time).transpose()?;
            let activity_type = fields
                .activity_type
                .as_deref()
                .map(ActivityType::parse)
                .transpose()?;
            let place = fields
                .place
                .as_deref()
                .map(ActivityPlace::parse)
                .transpose()?;
            let participants = fields
                .participants
                .as_deref()
                .map(Participants::parse)
                .transpose()?;
            let mut pc = ctx.open_pc()?;
            let activity = pc.store.edit_activity(&id, |a| {
                if let Some(date) = date {
                    a.date = date;
                }
                if let Some(start) = start {
                    a.start = start;
                }
                if let Some(minutes) = fields.duration {
                    a.duration_minutes = minutes;
                }
                if let Some(kind) = activity_type {
                    a.activity_type = kind;
                }
                if let Some(title) = fields.title {
                    a.title = title.trim().to_string();
                }
                if fields.partner.is_some() {
                    a.partner = optional(fields.partner);
                }
                if let Some(place) = place {
                    a.place = place;
                }
                if let Some(participants) = participants {
                    a.participants = participants;
                }
                if fields.notes.is_some() {
                    a.notes = optional(fields.notes);
                }
            })?;
            remind_no_patron_names(ctx.lang);
            if ctx.json {
                return output::print_json(&activity);
            }
            outln!(
                "{} {}",
                ctx.lang.pick(
                    "Kegiatan diubah (revisi baru):",
                    "Activity changed (a new revision):"
                ),
                activity_text(&activity, ctx.lang)
            )?;
            Ok(())
        }
        ActivityCommand::List { month, full_id } => {
            let month = month.as_deref().map(YearMonth::parse).transpose()?;
            let pc = ctx.open_pc()?;
            let mut activities: Vec<Activity> = pc
                .store
                .desk_records("activity", u32::MAX)?
                .into_iter()
                .filter_map(|r| match r {
                    RecordBody::Activity(a) => Some(a),
                    _ => None,
                })
                .filter(|a| month.is_none_or(|m| YearMonth::of(a.date) == Some(m)))
                .collect();
            // Newest first by when they were held, not by when they were typed.
            activities.sort_by_key(|a| std::cmp::Reverse((a.date, a.start, a.id)));
            if ctx.json {
                return output::print_json(&activities);
            }
            if activities.is_empty() {
                outln!(
                    "{}",
                    ctx.lang.pick(
                        "Belum ada kegiatan; catat dengan 'jejak activity add'.",
                        "No activities yet; record one with 'jejak activity add'."
                    )
                )?;
                return Ok(());
            }
            let lang = ctx.lang;
            let header = [
                ("ID", "ID"),
                ("Tanggal", "Date"),
                ("Mulai", "Start"),
                ("Menit", "Minutes"),
                ("Jenis", "Type"),
                ("Judul", "Title"),
                ("Mitra", "Partner"),
                ("Tempat", "Place"),
                ("Peserta", "Participants"),
                ("Rev.", "Rev."),
            ]
            .iter()
            .map(|(id, en)| lang.pick(id, en).to_string())
            .collect();
            let rows = activities
                .iter()
                .map(|a| {
                    vec![
                        if full_id {
                            a.id.to_string()
                        } else {
                            short_id(&a.id)
                        },
                        a.date.to_string(),
                        a.start.format("%H:%M").to_string(),
                        a.duration_minutes.to_string(),
                        a.activity_type.label(lang).to_string(),
                        a.title.clone(),
                        a.partner.clone().unwrap_or_else(|| "-".into()),
                        a.place.label(lang).to_string(),
                        a.participants.total().to_string(),
                        a.revision.to_string(),
                    ]
                })
                .collect();
            outln!("{}", output::table(header, rows))?;
            Ok(())
        }
    }
}

/// The reminder the librarian sees whenever they type an activity's free text.
fn remind_no_patron_names(lang: Lang) {
    errln!(
        "{}",
        lang.pick(
            "Ingat: judul, mitra dan catatan menjelaskan kegiatan dan lembaga mitranya, jangan pernah menulis nama pengunjung.",
            "Remember: the title, partner and notes describe the activity and its partner organisation; never write a patron's name."
        )
    );
}

/// One activity in a line.
fn activity_text(a: &Activity, lang: Lang) -> String {
    format!(
        "{} {} · {} {} · {} · {} · {} {} ({} {})",
        a.date,
        a.start.format("%H:%M"),
        a.duration_minutes,
        lang.pick("menit", "minutes"),
        a.activity_type.label(lang),
        a.title,
        a.participants.total(),
        lang.pick("peserta", "participants"),
        lang.pick("revisi", "revision"),
        a.revision
    )
}
