//! The librarian's desk: `jejak visit add|undo|list` (the visitor book, buku tamu) and
//! `jejak member set|list` (the library's member count of a month). Bad values say what
//! is allowed and store nothing.

use clap::Subcommand;
use jejak_agent::store::VisitInput;
use jejak_domain::{
    AgeGroup, Gender, Lang, MemberCount, RecordBody, UserKind, Visit, VisitPurpose, YearMonth, Zone,
};

use crate::context::Context;
use crate::output;
use crate::output::outln;

#[derive(Debug, Subcommand)]
pub enum VisitCommand {
    /// Record a visitor, or a group with its size, in the visitor book (catat
    /// kunjungan).
    Add {
        /// L (laki-laki), P (perempuan) or X (not stated).
        #[arg(long)]
        gender: String,
        /// anak, remaja, pemuda, dewasa, madya, lansia or unknown.
        #[arg(long)]
        age: String,
        /// anggota, non_anggota, rombongan or pelatihan.
        #[arg(long)]
        user_kind: String,
        /// membaca, pinjam_kembali, belajar, komputer_internet, ikut_kegiatan or lainnya.
        #[arg(long)]
        purpose: String,
        /// How many people: 1, or the group's size (at most 500).
        #[arg(long, default_value_t = 1)]
        people: u32,
    },
    /// Take back the last visit recorded on this PC (batalkan kunjungan terakhir).
    Undo,
    /// List the latest visits recorded on this PC (daftar kunjungan).
    List {
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Set the library's members at the end of a month and the new members of the month
    /// (jumlah anggota), as the member book says. Setting a month again corrects it.
    Set {
        /// The month, YYYY-MM (e.g. 2026-11).
        #[arg(long)]
        month: String,
        /// Registered members at the month's end.
        #[arg(long)]
        total: u32,
        /// Members who joined during the month.
        #[arg(long)]
        new: u32,
    },
    /// List the member counts set on this PC (daftar jumlah anggota).
    List {
        #[arg(long, default_value_t = 12)]
        limit: u32,
    },
}

pub fn visit(ctx: &Context, command: VisitCommand) -> anyhow::Result<()> {
    match command {
        VisitCommand::Add {
            gender,
            age,
            user_kind,
            purpose,
            people,
        } => {
            // Every value is read before the store is opened: a typo writes nothing.
            let input = VisitInput {
                gender: Gender::parse(&gender)?,
                age_group: AgeGroup::parse(&age)?,
                user_kind: UserKind::parse(&user_kind)?,
                purpose: VisitPurpose::parse(&purpose)?,
                people,
            };
            jejak_domain::check_people(people)?;
            let mut pc = ctx.open_pc()?;
            let visit = pc.store.add_visit(input)?;
            if ctx.json {
                return output::print_json(&visit);
            }
            outln!(
                "{} {}\n{} {}",
                ctx.lang.pick("Kunjungan dicatat:", "Visit recorded:"),
                visit_text(&visit, pc.config.zone(), ctx.lang),
                ctx.lang.pick("ID kunjungan:", "Visit ID:"),
                visit.id
            )?;
            Ok(())
        }
        VisitCommand::Undo => {
            let mut pc = ctx.open_pc()?;
            let visit = pc.store.undo_last_visit()?;
            if ctx.json {
                return output::print_json(&visit);
            }
            outln!(
                "{} {}",
                ctx.lang.pick(
                    "Kunjungan dibatalkan (tidak dihitung lagi):",
                    "Visit undone (no longer counted):"
                ),
                visit_text(&visit, pc.config.zone(), ctx.lang)
            )?;
            Ok(())
        }
        VisitCommand::List { limit } => {
            let pc = ctx.open_pc()?;
            let visits: Vec<Visit> = pc
                .store
                .desk_records("visit", limit)?
                .into_iter()
                .filter_map(|r| match r {
                    RecordBody::Visit(v) => Some(v),
                    _ => None,
                })
                .collect();
            if ctx.json {
                return output::print_json(&visits);
            }
            for v in &visits {
                outln!("{}", visit_text(v, pc.config.zone(), ctx.lang))?;
            }
            Ok(())
        }
    }
}

pub fn member(ctx: &Context, command: MemberCommand) -> anyhow::Result<()> {
    match command {
        MemberCommand::Set { month, total, new } => {
            let month = YearMonth::parse(&month)?;
            let mut pc = ctx.open_pc()?;
            let count = pc.store.set_member_count(month, total, new)?;
            if ctx.json {
                return output::print_json(&count);
            }
            outln!(
                "{} {}",
                ctx.lang
                    .pick("Jumlah anggota disimpan:", "Member count saved:"),
                count_text(&count, ctx.lang)
            )?;
            Ok(())
        }
        MemberCommand::List { limit } => {
            let pc = ctx.open_pc()?;
            let counts: Vec<MemberCount> = pc
                .store
                .desk_records("member_count", limit)?
                .into_iter()
                .filter_map(|r| match r {
                    RecordBody::MemberCount(m) => Some(m),
                    _ => None,
                })
                .collect();
            if ctx.json {
                return output::print_json(&counts);
            }
            for c in &counts {
                outln!("{}", count_text(c, ctx.lang))?;
            }
            Ok(())
        }
    }
}

/// One visit in a line: when, how many, who (in categories) and why.
fn visit_text(visit: &Visit, zone: Zone, lang: Lang) -> String {
    let people = match lang {
        Lang::Id => format!("{} orang", visit.people),
        Lang::En if visit.people == 1 => "1 person".to_string(),
        Lang::En => format!("{} people", visit.people),
    };
    let mut text = format!(
        "{} · {people} · {}, {}, {} · {} {}",
        output::local_time(visit.at, zone),
        visit.user_kind.label(lang),
        visit.gender.label(lang),
        visit.age_group.label(lang),
        lang.pick("tujuan:", "purpose:"),
        visit.purpose.label(lang),
    );
    if visit.withdrawn {
        text.push_str(lang.pick(" · dibatalkan", " · undone"));
    }
    text
}

fn count_text(count: &MemberCount, lang: Lang) -> String {
    format!(
        "{} · {} {} · {} {} ({} {})",
        count.month,
        count.members,
        lang.pick("anggota di akhir bulan", "members at month end"),
        count.new_members,
        lang.pick("anggota baru", "new members"),
        lang.pick("revisi", "revision"),
        count.revision
    )
}
