//! `jejak logon`: the per-user part, run at every desktop logon (Windows: the MSI's
//! `Run` entry). It opens the check-in page in the default browser once the agent serves
//! it, then reports how long the input has been idle to the agent every minute, since
//! the service cannot read that from its own session. It stops when the session ends.
//!
//! It runs as the patron's own account, which cannot read the data folder: it knows the
//! page by its port only, and sends nothing but a number of milliseconds.

use std::time::{Duration, Instant};

use clap::Args;
use jejak_agent::checkin::{DEFAULT_PORT, IDLE_REPORT_PATH};
use jejak_agent::login::IDLE_REPORT_EVERY;
use jejak_agent::platform;

use crate::context::Context;

/// How long to wait for the agent's page after a logon: a service with delayed start
/// begins about two minutes after the PC's own start-up.
const WAIT_FOR_PAGE: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Args)]
pub struct LogonArgs {
    /// The check-in page's port (`checkin_port` of agent.toml).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    port: u16,
    /// Do not open the browser (only report idle time).
    #[arg(long)]
    no_browser: bool,
}

pub fn run(_ctx: &Context, args: LogonArgs) -> anyhow::Result<()> {
    // The patron must not meet a console window; messages go to the (discarded) stderr.
    platform::detach_console();
    let base = format!("http://127.0.0.1:{}", args.port);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .no_proxy()
            .build()?;
        let started = Instant::now();
        // Wait until the page answers, so the patron does not meet a browser error.
        while http.get(format!("{base}/")).send().await.is_err() {
            if started.elapsed() > WAIT_FOR_PAGE {
                tracing::warn!("the check-in page does not answer; is the Jejak service running?");
                break;
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        if !args.no_browser
            && let Err(e) = platform::open_in_browser(&format!("{base}/"))
        {
            tracing::warn!(error = %e, "cannot open the browser");
        }
        if platform::input_idle().is_none() {
            // This system's desktop tells the agent itself (Linux: logind's idle hint).
            return Ok(());
        }
        loop {
            if let Some(idle) = platform::input_idle() {
                let report = http
                    .post(format!("{base}{IDLE_REPORT_PATH}"))
                    .form(&[("idle_ms", idle.as_millis().to_string())])
                    .send()
                    .await;
                if let Err(e) = report {
                    tracing::debug!(error = %e, "idle report not delivered");
                }
            }
            tokio::time::sleep(IDLE_REPORT_EVERY).await;
        }
    })
}
