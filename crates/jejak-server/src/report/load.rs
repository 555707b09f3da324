//! From a request to a finished [`Report`]: what to read from the store for each kind of
//! report.
//! `jejak report`, the report API and the dashboard all go through [`load`], so the
//! three always show the same numbers.

use chrono::{DateTime, Utc};
use jejak_domain::{Lang, LibraryCode, Zone};
use jejak_report::{
    DetailFacts, FactsDetail, OpsRow, Period, Report, ReportRequest, SessionDetail, detail_export,
    district_monthly, iplm_sheet, operations_report, period_report, today_wib, village_monthly,
};

use crate::store::{ServerStore, StoreError};

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The village report of a library the server does not know.
    #[error("library '{0}' is not registered")]
    UnknownLibrary(LibraryCode),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Builds a report from the store. `lang` is the language of the text a builder writes
/// into cells (row labels such as "Jumlah", the identity lines, the operations view's
/// words), which hold one text; titles and column labels carry both; `now` dates it.
/// The store's letterhead (kop) is put on top.
pub async fn load(
    store: &dyn ServerStore,
    request: &ReportRequest,
    lang: Lang,
    now: DateTime<Utc>,
) -> Result<Report, LoadError> {
    let mut report = match request {
        ReportRequest::Village { month, library } => {
            let facts = store
                .month_facts(*month, Some(library), FactsDetail::Breakdowns)
                .await?;
            // The month before, for the change against it: its days are enough.
            let previous = match month.checked_sub_months(chrono::Months::new(1)) {
                Some(before) => Some(
                    store
                        .month_facts(before, Some(library), FactsDetail::Days)
                        .await?,
                ),
                None => None,
            };
            village_monthly(&facts, previous.as_ref(), library, lang, now)
                .ok_or_else(|| LoadError::UnknownLibrary(library.clone()))?
        }
        ReportRequest::District { month } => {
            let facts = store.month_facts(*month, None, FactsDetail::Days).await?;
            district_monthly(&facts, today_wib(now), lang, now)
        }
        ReportRequest::Period(period) => {
            let (months, before) = (period.months(), period.previous().months());
            let (current, previous) = tokio::try_join!(
                store.months_facts(&months, None, FactsDetail::Breakdowns),
                store.months_facts(&before, None, FactsDetail::Breakdowns)
            )?;
            period_report(*period, &current, &previous, lang, now)
        }
        ReportRequest::Detail { month } => {
            let facts = detail_facts(store, *month).await?;
            detail_export(*month, &facts, lang, now)
        }
        ReportRequest::Iplm { year } => {
            // The two halves of the year are read at once (the stores read in parallel).
            let months = Period::Year(*year).months();
            let (first, second) = months.split_at(months.len() / 2);
            let (mut facts, later) = tokio::try_join!(
                store.months_facts(first, None, FactsDetail::Days),
                store.months_facts(second, None, FactsDetail::Days)
            )?;
            facts.extend(later);
            iplm_sheet(*year, &facts, lang, now)
        }
        ReportRequest::Operations => {
            let rows = operations_rows(store, now).await?;
            operations_report(&rows, today_wib(now), Zone::Wib, lang, now)
        }
    };
    if let Some(letterhead) = store.letterhead().await? {
        report.letterhead = letterhead;
    }
    Ok(report)
}

/// What the detail export of `month` reads: the sessions that started in it in any
/// zone of Indonesia (the builder keeps those of each library's own days) and every
/// stored entry.
async fn detail_facts(
    store: &dyn ServerStore,
    month: chrono::NaiveDate,
) -> Result<DetailFacts, StoreError> {
    let (first, next) = jejak_report::facts::month_bounds(month);
    // WIT (UTC+9) begins a day first and WIB (UTC+7) ends it last.
    let day_start = |day: chrono::NaiveDate, offset_hours: i64| {
        day.and_time(chrono::NaiveTime::MIN).and_utc() - chrono::Duration::hours(offset_hours)
    };
    let sessions = store
        .sessions_started_between(day_start(first, 9), day_start(next, 7))
        .await?;
    Ok(DetailFacts {
        libraries: store
            .libraries()
            .await?
            .into_iter()
            .map(|l| (l.code, l.timezone))
            .collect(),
        entries: store.entry_records().await?,
        sessions: sessions
            .into_iter()
            .map(|(library, pc, s)| SessionDetail {
                library,
                pc,
                start: s.corrected_start,
                duration_secs: s.duration_secs,
                patron: s.patron,
                kib: s.rx_kib + s.tx_kib,
            })
            .collect(),
    })
}

/// Every enrolled PC with what the operations view shows of it.
async fn operations_rows(
    store: &dyn ServerStore,
    now: DateTime<Utc>,
) -> Result<Vec<OpsRow>, StoreError> {
    let long_open = store
        .long_open_sessions(now - chrono::Duration::hours(12))
        .await?;
    let libraries = store.libraries().await?;
    let mut rows = Vec::new();
    for device in store.devices().await? {
        let library_name = libraries
            .iter()
            .find(|l| l.code == device.library)
            .map_or_else(|| device.library.as_str().to_string(), |l| l.name.clone());
        let mut row = OpsRow {
            library: device.library.clone(),
            library_name,
            pc: device.pc.clone(),
            active: device.active,
            last_batch_ms: None,
            clock_offset_ms: None,
            long_open_sessions: long_open
                .iter()
                .find(|(l, p, _)| l == &device.library && p == &device.pc)
                .map_or(0, |(_, _, n)| *n),
            rejected: 0,
            new_epochs_30d: 0,
            lost: Vec::new(),
        };
        if let Some(found) = store.find_device(&device.library, &device.pc).await? {
            let state = store.device_state(&found).await?;
            row.last_batch_ms = state.last_batch_at_ms;
            row.clock_offset_ms = state.clock_offset_ms;
            row.rejected = state.rejected;
            let since = (now - chrono::Duration::days(30)).timestamp_millis();
            row.new_epochs_30d = state
                .epochs
                .iter()
                .filter(|e| e.opened_at_ms.is_some_and(|at| at >= since))
                .count() as u64;
            row.lost = state.lost;
        }
        rows.push(row);
    }
    Ok(rows)
}
