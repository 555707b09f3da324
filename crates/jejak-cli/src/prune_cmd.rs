//! `jejak prune`: removes what the district server acknowledged long enough ago, and
//! keeps the store under its size budget, as the agent does daily and after each sync.
//! Nothing unsynced is ever removed.

use clap::Args;
use jejak_agent::store::PruneReport;
use jejak_domain::Lang;

use crate::context::Context;
use crate::output;
use crate::output::{errln, outln};

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Only say what would be removed (nothing is changed).
    #[arg(long)]
    dry_run: bool,
}

pub fn run(ctx: &Context, args: PruneArgs) -> anyhow::Result<()> {
    let mut pc = ctx.open_pc()?;
    let report = pc.store.prune(&pc.config.prune_policy(), args.dry_run)?;
    if report.unsynced_over_budget {
        errln!("{}", over_budget_warning(report.budget_bytes, ctx.lang));
    }
    if ctx.json {
        return output::print_json(&report);
    }
    outln!(
        "{}",
        report_table(&report, pc.config.retention_days, ctx.lang)
    )?;
    Ok(())
}

/// Megabytes in the user's number style.
pub fn mb(bytes: u64, lang: Lang) -> String {
    format!("{} MB", output::number(bytes as f64 / 1_048_576.0, 1, lang))
}

/// The warning `jejak prune` and `jejak status` show when the unsynced data alone keeps
/// the store over its budget.
pub fn over_budget_warning(budget_bytes: u64, lang: Lang) -> String {
    match lang {
        Lang::Id => format!(
            "PERINGATAN: data yang belum tersinkron saja sudah melebihi batas ukuran basis data ({}). Data itu tidak pernah dihapus; segera sinkron (jejak sync) atau bawa bundel USB ke kantor kabupaten, atau naikkan store_budget_mb.",
            mb(budget_bytes, lang)
        ),
        Lang::En => format!(
            "WARNING: the unsynced data alone is over the store's size budget ({}). It is never deleted; sync soon (jejak sync) or carry a USB bundle to the district office, or raise store_budget_mb.",
            mb(budget_bytes, lang)
        ),
    }
}

fn report_table(report: &PruneReport, retention_days: u32, lang: Lang) -> String {
    let count = |n: u64| output::number(n as f64, 0, lang);
    let rows = vec![
        (
            if report.dry_run {
                lang.pick(
                    "Uji coba (tidak ada yang dihapus)",
                    "Dry run (nothing removed)",
                )
            } else {
                lang.pick("Dihapus", "Removed")
            }
            .to_string(),
            String::new(),
        ),
        (
            match lang {
                Lang::Id => format!("Perubahan > {retention_days} hari setelah diterima server"),
                Lang::En => {
                    format!("Changes > {retention_days} days after the server's acknowledgement")
                }
            },
            count(report.changes_past_retention),
        ),
        (
            lang.pick(
                "Perubahan terkirim, dihapus lebih awal karena batas ukuran",
                "Synced changes removed early for the size budget",
            )
            .to_string(),
            count(report.changes_over_budget),
        ),
        (
            lang.pick("Sesi selesai yang dihapus", "Closed sessions removed")
                .to_string(),
            count(report.sessions_removed),
        ),
        (
            lang.pick(
                "Belum tersinkron (selalu disimpan)",
                "Not yet synced (always kept)",
            )
            .to_string(),
            count(report.unsynced_changes),
        ),
        (
            lang.pick(
                "Ukuran terpakai sebelum → sesudah",
                "Size in use before → after",
            )
            .to_string(),
            format!(
                "{} → {}",
                mb(report.bytes_before, lang),
                mb(report.bytes_after, lang)
            ),
        ),
        (
            lang.pick("Batas ukuran", "Size budget").to_string(),
            mb(report.budget_bytes, lang),
        ),
    ];
    output::table(
        vec![
            lang.pick("Hal", "Item").into(),
            lang.pick("Jumlah", "Count").into(),
        ],
        rows.into_iter().map(|(k, v)| vec![k, v]).collect(),
    )
}
