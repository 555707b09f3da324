//! Linux (and other Unix) sources for the platform layer.

use std::path::{Path, PathBuf};

use crate::store::NetCounters;

/// Where the kernel publishes the interface byte counters.
pub const PROC_NET_DEV: &str = "/proc/net/dev";

/// `CLOCK_BOOTTIME` in milliseconds: shared by every process of one boot (so the CLI and
/// the daemon agree) and counting through suspend. Systems without it fall back to
/// `CLOCK_MONOTONIC`.
pub(super) fn boottime_ms() -> u64 {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let id = rustix::time::ClockId::Boottime;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let id = rustix::time::ClockId::Monotonic;
    let ts = rustix::time::clock_gettime(id);
    (ts.tv_sec as u64)
        .saturating_mul(1000)
        .saturating_add(ts.tv_nsec as u64 / 1_000_000)
}

/// `CLOCK_MONOTONIC` in microseconds, the clock systemd-logind's idle hint is on.
pub(crate) fn monotonic_us() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000)
        .saturating_add(ts.tv_nsec as u64 / 1_000)
}

/// The kernel's identifier of this boot, new at every boot.
pub fn kernel_boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// New private files get mode 0600.
pub(super) fn restrict_new_file(options: &mut std::fs::OpenOptions) {
    use std::os::unix::fs::OpenOptionsExt;
    options.mode(0o600);
}

/// Creates `dir` (and its parents) and makes it its owner's only (mode 0700): it holds
/// patron categories and the library's patron secret.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Who else can read a folder, as `jejak doctor` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderAccess {
    /// Users other than the owner (and the administrators) can read it.
    pub others_can_read: bool,
    /// What was read, for the message: `mode 0700`.
    pub description: String,
    /// The folder belongs to another user than the caller, who is an administrator:
    /// opening the store as the administrator would leave files the agent cannot write.
    pub owned_by_another_user: Option<String>,
}

/// Reads who can open `dir`.
pub fn folder_access(dir: &Path) -> std::io::Result<FolderAccess> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(dir)?;
    let mode = meta.permissions().mode() & 0o777;
    Ok(FolderAccess {
        others_can_read: mode & 0o077 != 0,
        description: format!("mode {mode:04o}"),
        owned_by_another_user: (is_elevated() && meta.uid() != 0)
            .then(|| format!("uid {}", meta.uid())),
    })
}

/// Whether a file's mode lets users other than its owner read it (the token file).
pub fn file_readable_by_others(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| format!("mode {mode:04o}"))
}

/// The command that makes a folder its owner's only, for messages.
pub fn restrict_folder_command(dir: &Path) -> String {
    format!("chmod 700 {}", dir.display())
}

/// The command that makes a file its owner's only, for messages.
pub fn restrict_file_command(path: &Path) -> String {
    format!("chmod 600 {}", path.display())
}

/// Which file a path names now (device and inode), to notice that the store this
/// process has open was moved aside by another process.
pub fn file_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Free space for an unprivileged writer on the disk that holds `path`.
pub fn free_disk_bytes(path: &Path) -> std::io::Result<u64> {
    let stat = rustix::fs::statvfs(path)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Whether this process runs as root.
pub fn is_elevated() -> bool {
    rustix::process::geteuid().is_root()
}

/// `/var/lib/jejak` for a system service (root), the user's data directory otherwise.
pub fn default_data_dir() -> PathBuf {
    if is_elevated() {
        return PathBuf::from("/var/lib/jejak");
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("jejak");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(".local/share/jejak");
    }
    PathBuf::from("jejak-data")
}

/// The interface counters of the system: the kernel's `/proc/net/dev`.
pub fn system_net_counters() -> Option<NetCounters> {
    crate::netdev::read_proc_net_dev(Path::new(PROC_NET_DEV))
}

/// Logins and idleness as systemd-logind sees them.
pub fn system_login_source() -> Box<dyn crate::login::LoginSource> {
    Box::new(super::logind::LogindSource::new())
}

/// A program started at a desktop login has no console window to let go of here.
pub fn detach_console() {}

/// Opens `url` in the desktop's browser.
pub fn open_in_browser(url: &str) -> std::io::Result<()> {
    std::process::Command::new("xdg-open")
        .arg(url)
        .stdin(std::process::Stdio::null())
        .spawn()
        .map(drop)
}

/// How long the input of this desktop session has been idle: the desktop sets
/// systemd-logind's idle hint instead, which the agent reads itself.
pub fn input_idle() -> Option<std::time::Duration> {
    None
}
