//! The operating system under the agent, in one place: the clocks, the identity of the
//! current boot, the interface byte counters, who sits at the PC, private files and
//! folders, free disk space and whether the caller is an administrator.
//!
//! Everything above this module is the same on every system; each function here has one
//! implementation per family ([`unix`] for Linux, `windows` for Windows 10/11), with the
//! same signature, so the daemon, the store and the CLI never branch on the platform.
//! What can be tested without the real system (parsing `/proc/net/dev`, choosing which
//! Windows interfaces count, turning console events into seat snapshots) lives in
//! platform-neutral code that the tests feed with recorded inputs.

use std::fs::File;
use std::io::Write;
use std::path::Path;

#[cfg(unix)]
pub mod logind;
#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub use unix::*;

#[cfg(windows)]
pub mod windows;
#[cfg(windows)]
pub use self::windows::*;

/// The name of this family of systems in messages ("Linux", "Windows").
pub const SYSTEM_NAME: &str = if cfg!(windows) { "Windows" } else { "Linux" };

/// Writes `bytes` to `path` so that only the agent's user (on Windows: SYSTEM and the
/// Administrators, through the data folder's inherited ACL) can read it, and so that a
/// power cut leaves either the old or the new content: a private temporary file beside
/// it, flushed to disk, then renamed over it.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp_name);
    let mut file = create_private_file(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

/// Creates (or truncates) a file that only the agent's user can read.
pub fn create_private_file(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    restrict_new_file(&mut options);
    options.open(path)
}

/// Waits for and takes an exclusive lock on `file`, released when it is closed. The
/// standard library's lock is `flock` on Unix and `LockFileEx` on Windows.
pub fn lock_exclusive(file: &File) -> std::io::Result<()> {
    file.lock()
}

/// The time since the boot in milliseconds, from a clock that keeps counting through
/// sleep and hibernation and never goes back within one boot.
pub fn monotonic_ms() -> u64 {
    boottime_ms()
}
