//! `jejak agent` as a Windows service, and `jejak service …` to install, configure and
//! remove it by hand (the MSI does the same through its own tables and one call of
//! `jejak service configure`).
//!
//! The service is the same agent as on Linux: [`crate::agent_cmd::run_agent`], stopped
//! through the service control manager instead of a signal. What Windows adds:
//! - console-session notifications (logon, logoff, lock, unlock) go to
//!   [`jejak_agent::login::console_event`], the Windows login source's input; only the
//!   console's session counts, not remote ones, and no user name is read;
//! - a stop or a system shutdown closes the open session as `shutdown` before the
//!   service reports itself stopped;
//! - at every start the service makes sure of its own configuration (delayed automatic
//!   start, restart after a crash), so a service made by hand behaves as the MSI's.
#![allow(unsafe_code)] // `define_windows_service!` expands to the dispatcher's FFI callback.

use std::ffi::OsString;
use std::sync::OnceLock;
use std::time::Duration;

use clap::Subcommand;
use jejak_agent::login::{ConsoleEvent, console_event};
use windows_service::service::{
    ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept,
    ServiceErrorControl, ServiceExitCode, ServiceFailureActions, ServiceFailureResetPeriod,
    ServiceInfo, ServiceStartType, ServiceState, ServiceStatus, ServiceType, SessionChangeReason,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
use windows_service::{define_windows_service, service_dispatcher};

use crate::context::Context;
use crate::output::outln;

/// The service's name for the service control manager (`sc query Jejak`).
pub const SERVICE_NAME: &str = "Jejak";
const DISPLAY_NAME: &str = "Jejak — catatan penggunaan komputer perpustakaan";
const DESCRIPTION: &str = "Mencatat penggunaan komputer dan internet perpustakaan desa (tanpa nama pengguna) dan mengirimnya ke server kabupaten. / Logs village library computer and internet use (no names) and syncs it to the district server.";
/// The service's log folder inside the data folder.
pub const LOG_FOLDER: &str = "logs";
/// How long a stop may take: closing the session is one short transaction, but the
/// check-in page and a sync in flight are given time to finish.
const STOP_WAIT_HINT: Duration = Duration::from_secs(20);

/// The context the service's main function runs with: the dispatcher calls it on its
/// own thread with only the service's arguments.
static CONTEXT: OnceLock<Context> = OnceLock::new();

define_windows_service!(ffi_service_main, service_main);

/// Hands this process to the service control manager; returns when the service stops.
pub fn run(ctx: Context) -> anyhow::Result<()> {
    let _ = CONTEXT.set(ctx);
    service_dispatcher::start(SERVICE_NAME, ffi_service_main).map_err(|e| {
        anyhow::anyhow!(
            "{e}: `jejak agent --service` is started by the service control manager; in a console run `jejak agent`"
        )
    })?;
    Ok(())
}

fn service_main(_arguments: Vec<OsString>) {
    if let Err(e) = run_service() {
        tracing::error!(error = %format!("{e:#}"), "the service stopped with an error");
    }
}

/// What a control from the service control manager means to the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlAction {
    Stop,
    Console(ConsoleEvent),
    Nothing,
    NotImplemented,
}

/// The rule from controls to actions, apart from the FFI so tests can feed recorded
/// controls. `console_session` is the session attached to the console now.
pub fn control_action(control: &ServiceControl, console_session: Option<u32>) -> ControlAction {
    match control {
        ServiceControl::Stop | ServiceControl::Shutdown | ServiceControl::Preshutdown => {
            ControlAction::Stop
        }
        ServiceControl::Interrogate => ControlAction::Nothing,
        ServiceControl::SessionChange(change) => {
            let on_console = console_session == Some(change.notification.session_id);
            let event = match change.reason {
                SessionChangeReason::SessionLogon if on_console => Some(ConsoleEvent::Logon),
                // A logoff is heard after the session has left the console: it ends the
                // console's use if that session was the console's.
                SessionChangeReason::SessionLogoff => Some(ConsoleEvent::Logoff),
                SessionChangeReason::SessionLock if on_console => Some(ConsoleEvent::Lock),
                SessionChangeReason::SessionUnlock if on_console => Some(ConsoleEvent::Unlock),
                // Fast user switching: the console's session leaves the screen.
                SessionChangeReason::ConsoleDisconnect => Some(ConsoleEvent::Lock),
                _ => None,
            };
            event.map_or(ControlAction::Nothing, ControlAction::Console)
        }
        _ => ControlAction::NotImplemented,
    }
}

fn status(state: ServiceState, accept: ServiceControlAccept, wait_hint: Duration) -> ServiceStatus {
    ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted: accept,
        exit_code: ServiceExitCode::Win32(0),
        checkpoint: 0,
        wait_hint,
        process_id: None,
    }
}

fn run_service() -> anyhow::Result<()> {
    let ctx = CONTEXT
        .get()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("the service started without its context"))?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let handler = move |control: ServiceControl| {
        let console = jejak_agent::platform::windows::console_session_id();
        match control_action(&control, console) {
            ControlAction::Stop => {
                let _ = stop_tx.send(true);
                ServiceControlHandlerResult::NoError
            }
            ControlAction::Console(event) => {
                console_event(event);
                ServiceControlHandlerResult::NoError
            }
            ControlAction::Nothing => ServiceControlHandlerResult::NoError,
            ControlAction::NotImplemented => ServiceControlHandlerResult::NotImplemented,
        }
    };
    let status_handle = service_control_handler::register(SERVICE_NAME, handler)?;
    status_handle.set_service_status(status(
        ServiceState::Running,
        ServiceControlAccept::STOP
            | ServiceControlAccept::PRESHUTDOWN
            | ServiceControlAccept::SESSION_CHANGE,
        Duration::ZERO,
    ))?;
    if let Err(e) = configure(false) {
        tracing::warn!(error = %e, "could not check the service's own configuration");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut stop = stop_rx;
    let reported = status_handle;
    let result = runtime.block_on(async {
        // Installed before `jejak init`: wait for it rather than fail (and be restarted
        // over and over by the failure actions).
        if !wait_until_set_up(&ctx, &mut stop).await {
            return Ok(());
        }
        crate::agent_cmd::run_agent(&ctx, async move {
            let _ = stop.wait_for(|stopping| *stopping).await;
            tracing::info!("the service control manager asked the service to stop");
            let _ = reported.set_service_status(status(
                ServiceState::StopPending,
                ServiceControlAccept::empty(),
                STOP_WAIT_HINT,
            ));
        })
        .await
    });
    let exit_code = match &result {
        Ok(()) => ServiceExitCode::Win32(0),
        // A service-specific code makes the SCM treat it as a failure, so the failure
        // actions (restart) apply.
        Err(_) => ServiceExitCode::ServiceSpecific(1),
    };
    status_handle.set_service_status(ServiceStatus {
        exit_code,
        ..status(
            ServiceState::Stopped,
            ServiceControlAccept::empty(),
            Duration::ZERO,
        )
    })?;
    result
}

/// How often a service installed before `jejak init` looks for the PC's setup.
const SETUP_POLL: Duration = Duration::from_secs(10);

/// Waits until the PC is set up (`jejak init` wrote the configuration); `false` when the
/// service is asked to stop first.
async fn wait_until_set_up(ctx: &Context, stop: &mut tokio::sync::watch::Receiver<bool>) -> bool {
    let mut said = false;
    loop {
        match ctx.config().and_then(|c| Ok(c.identity(&ctx.data_dir)?)) {
            Ok(_) => return true,
            Err(e) => {
                if !said {
                    tracing::warn!(error = %format!("{e:#}"), "waiting for this PC to be set up (jejak init)");
                    said = true;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(SETUP_POLL) => {}
            _ = stop.wait_for(|stopping| *stopping) => return false,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Register the agent as a Windows service (started at boot, restarted after a
    /// crash) and start it (pasang layanan).
    Install,
    /// Set delayed automatic start and restart after a crash on the installed service
    /// (the MSI runs this).
    Configure,
    /// Stop and remove the service; the data folder is kept (hapus layanan).
    Uninstall,
    /// Show whether the service is installed and running.
    Status,
}

pub fn command(ctx: &Context, command: ServiceCommand) -> anyhow::Result<()> {
    match command {
        ServiceCommand::Install => install(ctx),
        ServiceCommand::Configure => configure(true),
        ServiceCommand::Uninstall => uninstall(ctx),
        ServiceCommand::Status => {
            let state = service_state();
            outln!("{}", state_text(&state, ctx.lang))?;
            Ok(())
        }
    }
}

fn install(ctx: &Context) -> anyhow::Result<()> {
    let manager = ServiceManager::local_computer(
        None::<&str>,
        ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
    )?;
    let info = ServiceInfo {
        name: SERVICE_NAME.into(),
        display_name: DISPLAY_NAME.into(),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: std::env::current_exe()?,
        launch_arguments: vec!["agent".into(), "--service".into()],
        dependencies: vec![],
        account_name: None,
        account_password: None,
    };
    let service = manager.create_service(&info, ServiceAccess::all())?;
    drop(service);
    configure(true)?;
    let service = manager.open_service(SERVICE_NAME, ServiceAccess::START)?;
    service.start::<&str>(&[])?;
    outln!(
        "{}",
        ctx.lang.pick(
            "Layanan Jejak terpasang dan berjalan.",
            "The Jejak service is installed and running."
        )
    )?;
    Ok(())
}

/// Delayed automatic start (the PC's own start-up first), restart after a crash (after
/// 10 s, then 1 minute, then 5 minutes; the count resets after a day), and the
/// description. `strict`: an error is returned instead of only logged.
fn configure(strict: bool) -> anyhow::Result<()> {
    let result = (|| -> anyhow::Result<()> {
        let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)?;
        let service = manager.open_service(
            SERVICE_NAME,
            ServiceAccess::CHANGE_CONFIG | ServiceAccess::START | ServiceAccess::QUERY_CONFIG,
        )?;
        service.set_delayed_auto_start(true)?;
        service.update_failure_actions(ServiceFailureActions {
            reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(24 * 3600)),
            reboot_msg: None,
            command: None,
            actions: Some(vec![
                ServiceAction {
                    action_type: ServiceActionType::Restart,
                    delay: Duration::from_secs(10),
                },
                ServiceAction {
                    action_type: ServiceActionType::Restart,
                    delay: Duration::from_secs(60),
                },
                ServiceAction {
                    action_type: ServiceActionType::Restart,
                    delay: Duration::from_secs(300),
                },
            ]),
        })?;
        service.set_failure_actions_on_non_crash_failures(true)?;
        service.set_description(DESCRIPTION)?;
        Ok(())
    })();
    match result {
        Err(e) if !strict => {
            tracing::warn!(error = %e, "service configuration not checked");
            Ok(())
        }
        other => other,
    }
}

fn uninstall(ctx: &Context) -> anyhow::Result<()> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)?;
    let service = manager.open_service(
        SERVICE_NAME,
        ServiceAccess::STOP | ServiceAccess::DELETE | ServiceAccess::QUERY_STATUS,
    )?;
    if service.query_status()?.current_state != ServiceState::Stopped {
        let _ = service.stop();
        let deadline = std::time::Instant::now() + STOP_WAIT_HINT;
        while service.query_status()?.current_state != ServiceState::Stopped
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    service.delete()?;
    outln!(
        "{} {}",
        ctx.lang.pick(
            "Layanan Jejak dihapus. Data tetap disimpan di",
            "The Jejak service was removed. The data is kept in"
        ),
        ctx.data_dir.display()
    )?;
    Ok(())
}

/// The installed service's state, as `jejak doctor` and `jejak status` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstalledState {
    NotInstalled,
    State(ServiceState),
    Unknown(String),
}

pub fn service_state() -> InstalledState {
    let manager = match ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
    {
        Ok(manager) => manager,
        Err(e) => return InstalledState::Unknown(e.to_string()),
    };
    match manager.open_service(SERVICE_NAME, ServiceAccess::QUERY_STATUS) {
        Ok(service) => match service.query_status() {
            Ok(status) => InstalledState::State(status.current_state),
            Err(e) => InstalledState::Unknown(e.to_string()),
        },
        // ERROR_SERVICE_DOES_NOT_EXIST
        Err(windows_service::Error::Winapi(e)) if e.raw_os_error() == Some(1060) => {
            InstalledState::NotInstalled
        }
        Err(e) => InstalledState::Unknown(e.to_string()),
    }
}

pub fn state_text(state: &InstalledState, lang: jejak_domain::Lang) -> String {
    match state {
        InstalledState::NotInstalled => lang
            .pick(
                "layanan Jejak belum terpasang (pasang MSI, atau: jejak service install)",
                "the Jejak service is not installed (install the MSI, or: jejak service install)",
            )
            .to_string(),
        InstalledState::State(ServiceState::Running) => lang
            .pick("layanan Jejak berjalan", "the Jejak service is running")
            .to_string(),
        InstalledState::State(ServiceState::Stopped) => lang
            .pick(
                "layanan Jejak berhenti (jalankan: sc start Jejak)",
                "the Jejak service is stopped (run: sc start Jejak)",
            )
            .to_string(),
        InstalledState::State(other) => format!(
            "{} ({other:?})",
            lang.pick("layanan Jejak", "the Jejak service")
        ),
        InstalledState::Unknown(e) => format!(
            "{} ({e})",
            lang.pick(
                "keadaan layanan tidak bisa dibaca",
                "the service's state cannot be read"
            )
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use windows_service::service::{SessionChangeParam, SessionNotification};

    fn session(reason: SessionChangeReason, session_id: u32) -> ServiceControl {
        ServiceControl::SessionChange(SessionChangeParam {
            reason,
            notification: SessionNotification {
                size: 8,
                session_id,
            },
        })
    }

    /// Controls as the service control manager sent them on a Windows 10 PC: the console
    /// is session 1; session 2 is someone's remote desktop.
    #[test]
    fn recorded_controls_become_console_events_or_a_stop() {
        let console = Some(1);
        let recorded = [
            (
                session(SessionChangeReason::SessionLogon, 1),
                ControlAction::Console(ConsoleEvent::Logon),
            ),
            (
                session(SessionChangeReason::SessionLock, 1),
                ControlAction::Console(ConsoleEvent::Lock),
            ),
            (
                session(SessionChangeReason::SessionUnlock, 1),
                ControlAction::Console(ConsoleEvent::Unlock),
            ),
            (
                session(SessionChangeReason::SessionLogon, 2),
                ControlAction::Nothing,
            ),
            (
                session(SessionChangeReason::SessionLock, 2),
                ControlAction::Nothing,
            ),
            (
                session(SessionChangeReason::RemoteConnect, 2),
                ControlAction::Nothing,
            ),
            (
                session(SessionChangeReason::ConsoleDisconnect, 1),
                ControlAction::Console(ConsoleEvent::Lock),
            ),
            (
                session(SessionChangeReason::SessionLogoff, 1),
                ControlAction::Console(ConsoleEvent::Logoff),
            ),
            (ServiceControl::Interrogate, ControlAction::Nothing),
            (ServiceControl::Preshutdown, ControlAction::Stop),
            (ServiceControl::Shutdown, ControlAction::Stop),
            (ServiceControl::Stop, ControlAction::Stop),
            (ServiceControl::Pause, ControlAction::NotImplemented),
        ];
        for (control, expected) in recorded {
            assert_eq!(control_action(&control, console), expected, "{control:?}");
        }
        assert_eq!(
            control_action(&session(SessionChangeReason::SessionLogon, 1), None),
            ControlAction::Nothing,
            "no session on the console: a logon elsewhere is not the console's"
        );
    }
}
