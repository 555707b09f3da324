//! Windows 10/11 sources for the platform layer, through raw Win32 calls.
//!
//! - Monotonic time: `GetTickCount64`, the milliseconds since boot, which keep counting
//!   through sleep and hibernation (unlike `QueryUnbiasedInterruptTime`), so a session's
//!   duration on a PC that slept includes the sleep, as `CLOCK_BOOTTIME` does on Linux.
//! - The boot identity: Windows has no `boot_id`. A *volatile* registry key
//!   (`HKLM\SOFTWARE\Jejak\Boot`) lives in memory only: it is gone after a restart or a
//!   power cut, and survives sleep and hibernation — including Windows 10/11's Fast
//!   Startup, where "shut down" hibernates the kernel and the tick count carries on. The
//!   first Jejak process of a boot writes an id there (the boot's moment and a random
//!   part); every later process of the same boot reads the same id. So a reboot and a
//!   power cut are told apart from an agent restart exactly as on Linux: same id, same
//!   run; new id, new run.
//! - Interface counters: `GetIfTable2`, counting physical adapters and modem links only
//!   ([`crate::netdev::counts_on_windows`]).
//! - Private data: the data folder gets a protected ACL that grants SYSTEM and the
//!   Administrators only; files inside inherit it.
//! - Logins: the console session, from the service's session-change notifications and a
//!   look at the active console session ([`ConsoleSource`]).
//!
//! Every `unsafe` block is a Win32 call with the buffers it documents; each says why it
//! is sound.
#![allow(unsafe_code)]

use std::ffi::OsStr;
use std::os::windows::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use windows_sys::Win32::Foundation::{CloseHandle, ERROR_SUCCESS, HANDLE, HLOCAL, LocalFree};
use windows_sys::Win32::NetworkManagement::IpHelper::{FreeMibTable, GetIfTable2, MIB_IF_TABLE2};
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, ConvertStringSecurityDescriptorToSecurityDescriptorW,
    GetNamedSecurityInfoW, SDDL_REVISION_1, SE_FILE_OBJECT, SetNamedSecurityInfoW,
};
use windows_sys::Win32::Security::{
    ACL, DACL_SECURITY_INFORMATION, GetAce, GetSecurityDescriptorDacl,
    PROTECTED_DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR,
};
use windows_sys::Win32::Storage::FileSystem::{
    BY_HANDLE_FILE_INFORMATION, GetDiskFreeSpaceExW, GetFileInformationByHandle,
};
use windows_sys::Win32::System::Registry::{
    HKEY, HKEY_LOCAL_MACHINE, KEY_READ, KEY_WRITE, REG_CREATED_NEW_KEY, REG_OPTION_NON_VOLATILE,
    REG_OPTION_VOLATILE, REG_SZ, RegCloseKey, RegCreateKeyExW, RegQueryValueExW, RegSetValueExW,
};
use windows_sys::Win32::System::RemoteDesktop::{WTSGetActiveConsoleSessionId, WTSQueryUserToken};
use windows_sys::Win32::System::SystemInformation::GetTickCount64;
use windows_sys::Win32::UI::Input::KeyboardAndMouse::{GetLastInputInfo, LASTINPUTINFO};
use windows_sys::Win32::UI::Shell::{IsUserAnAdmin, ShellExecuteW};
use windows_sys::Win32::UI::WindowsAndMessaging::SW_SHOWNORMAL;

use crate::login::{LoginSource, SeatSnapshot};
use crate::netdev::InterfaceRow;
use crate::store::NetCounters;

/// The registry key (under `HKEY_LOCAL_MACHINE`) that holds Jejak's machine-wide state.
const JEJAK_KEY: &str = r"SOFTWARE\Jejak";
/// Its volatile subkey that lives as long as the boot.
const BOOT_KEY: &str = r"SOFTWARE\Jejak\Boot";
/// The protected ACL of the data folder, in SDDL: full control for SYSTEM (`SY`, the
/// service) and the Administrators (`BA`), inherited by every file and folder inside;
/// `P` stops the ACL of `%ProgramData%` (which lets Users read) from being inherited.
const PRIVATE_FOLDER_SDDL: &str = "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)";
/// The SIDs that may read the data folder: SYSTEM and the Administrators.
const TRUSTED_SIDS: &[&str] = &["S-1-5-18", "S-1-5-32-544"];

fn wide(s: &OsStr) -> Vec<u16> {
    s.encode_wide().chain(std::iter::once(0)).collect()
}

fn wide_str(s: &str) -> Vec<u16> {
    wide(OsStr::new(s))
}

/// A UTF-16 string the system allocated with `LocalAlloc`, read and freed.
///
/// # Safety
/// `p` must be null or a NUL-terminated string from `LocalAlloc`.
unsafe fn take_local_wide(p: *mut u16) -> Option<String> {
    if p.is_null() {
        return None;
    }
    let mut len = 0;
    // SAFETY: the caller promises a NUL-terminated string.
    while unsafe { *p.add(len) } != 0 {
        len += 1;
    }
    // SAFETY: `len` characters were just read at `p`.
    let text = String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(p, len) });
    // SAFETY: the string came from LocalAlloc and is not used after this.
    unsafe { LocalFree(p as HLOCAL) };
    Some(text)
}

/// `GetTickCount64`: milliseconds since boot, through sleep and hibernation.
pub(super) fn boottime_ms() -> u64 {
    // SAFETY: no arguments; cannot fail.
    unsafe { GetTickCount64() }
}

/// The id of this boot from the volatile registry key, made by the first process of the
/// boot that may write `HKLM` (the service, or an administrator's command).
pub fn kernel_boot_id() -> Option<String> {
    let jejak = create_key(
        HKEY_LOCAL_MACHINE,
        JEJAK_KEY,
        REG_OPTION_NON_VOLATILE,
        KEY_READ | KEY_WRITE,
    )
    .or_else(|| {
        create_key(
            HKEY_LOCAL_MACHINE,
            JEJAK_KEY,
            REG_OPTION_NON_VOLATILE,
            KEY_READ,
        )
    });
    if let Some((key, _)) = jejak {
        close_key(key);
    }
    let (key, created) = create_key(
        HKEY_LOCAL_MACHINE,
        BOOT_KEY,
        REG_OPTION_VOLATILE,
        KEY_READ | KEY_WRITE,
    )?;
    let id = if created {
        let boot = chrono::Utc::now() - chrono::Duration::milliseconds(boottime_ms() as i64);
        let id = format!(
            "win-{}-{}",
            boot.format("%Y%m%dT%H%M%S"),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        set_string(key, "Id", &id).then_some(id)
    } else {
        // Another process of this boot made the key; it writes the id at once.
        let mut found = None;
        for _ in 0..50 {
            found = get_string(key, "Id");
            if found.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        found
    };
    close_key(key);
    id
}

/// Creates or opens `path` under `root`; `true` when it was created now.
fn create_key(root: HKEY, path: &str, options: u32, access: u32) -> Option<(HKEY, bool)> {
    let path = wide_str(path);
    let mut key: HKEY = std::ptr::null_mut();
    let mut disposition = 0u32;
    // SAFETY: `path` is NUL-terminated; `key` and `disposition` are valid out-pointers.
    let status = unsafe {
        RegCreateKeyExW(
            root,
            path.as_ptr(),
            0,
            std::ptr::null(),
            options,
            access,
            std::ptr::null(),
            &mut key,
            &mut disposition,
        )
    };
    (status == ERROR_SUCCESS).then_some((key, disposition == REG_CREATED_NEW_KEY))
}

fn close_key(key: HKEY) {
    // SAFETY: `key` came from RegCreateKeyExW and is closed once.
    unsafe { RegCloseKey(key) };
}

fn set_string(key: HKEY, name: &str, value: &str) -> bool {
    let name = wide_str(name);
    let data = wide_str(value);
    // SAFETY: `data` holds `data.len()` UTF-16 units including the NUL, as REG_SZ wants.
    let status = unsafe {
        RegSetValueExW(
            key,
            name.as_ptr(),
            0,
            REG_SZ,
            data.as_ptr().cast(),
            (data.len() * 2) as u32,
        )
    };
    status == ERROR_SUCCESS
}

fn get_string(key: HKEY, name: &str) -> Option<String> {
    let name = wide_str(name);
    let mut buffer = [0u16; 128];
    let mut size = (buffer.len() * 2) as u32;
    let mut kind = 0u32;
    // SAFETY: `buffer` has `size` bytes; the call writes at most that many.
    let status = unsafe {
        RegQueryValueExW(
            key,
            name.as_ptr(),
            std::ptr::null(),
            &mut kind,
            buffer.as_mut_ptr().cast(),
            &mut size,
        )
    };
    if status != ERROR_SUCCESS || kind != REG_SZ {
        return None;
    }
    let units = (size as usize / 2).min(buffer.len());
    let text = String::from_utf16_lossy(&buffer[..units]);
    let text = text.trim_end_matches('\0').trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// New files inherit the data folder's protected ACL: nothing to add per file.
pub(super) fn restrict_new_file(_options: &mut std::fs::OpenOptions) {}

/// Creates `dir` (and its parents) and gives it the protected ACL that lets only SYSTEM
/// and the Administrators in; files made inside inherit it.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let sddl = wide_str(PRIVATE_FOLDER_SDDL);
    let mut descriptor: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: `sddl` is NUL-terminated; `descriptor` is an out-pointer freed below.
    let ok = unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl.as_ptr(),
            SDDL_REVISION_1,
            &mut descriptor,
            std::ptr::null_mut(),
        )
    };
    if ok == 0 {
        return Err(std::io::Error::last_os_error());
    }
    let result = (|| {
        let mut present = 0;
        let mut defaulted = 0;
        let mut dacl: *mut ACL = std::ptr::null_mut();
        // SAFETY: `descriptor` is the valid descriptor made above.
        if unsafe { GetSecurityDescriptorDacl(descriptor, &mut present, &mut dacl, &mut defaulted) }
            == 0
        {
            return Err(std::io::Error::last_os_error());
        }
        let path = wide(dir.as_os_str());
        // SAFETY: `path` is NUL-terminated; `dacl` points into `descriptor`, alive here.
        let status = unsafe {
            SetNamedSecurityInfoW(
                path.as_ptr(),
                SE_FILE_OBJECT,
                DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                dacl,
                std::ptr::null(),
            )
        };
        if status != ERROR_SUCCESS {
            return Err(std::io::Error::from_raw_os_error(status as i32));
        }
        Ok(())
    })();
    // SAFETY: allocated by ConvertStringSecurityDescriptorToSecurityDescriptorW.
    unsafe { LocalFree(descriptor as HLOCAL) };
    result
}

/// Who else can read a folder, as `jejak doctor` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderAccess {
    /// Accounts other than SYSTEM and the Administrators can read it.
    pub others_can_read: bool,
    /// What was read, for the message: the accounts the ACL lets in.
    pub description: String,
    /// Never set on Windows: files an administrator makes stay the service's to use.
    pub owned_by_another_user: Option<String>,
}

/// The SIDs the DACL of `path` allows, or `None` for a NULL DACL (everyone).
fn allowed_sids(path: &Path) -> std::io::Result<Option<Vec<String>>> {
    let wide_path = wide(path.as_os_str());
    let mut dacl: *mut ACL = std::ptr::null_mut();
    let mut descriptor: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: `wide_path` is NUL-terminated; the out-pointers are valid; the descriptor
    // is freed below and `dacl` points into it.
    let status = unsafe {
        GetNamedSecurityInfoW(
            wide_path.as_ptr(),
            SE_FILE_OBJECT,
            DACL_SECURITY_INFORMATION,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut dacl,
            std::ptr::null_mut(),
            &mut descriptor,
        )
    };
    if status != ERROR_SUCCESS {
        return Err(std::io::Error::from_raw_os_error(status as i32));
    }
    let sids = if dacl.is_null() {
        None
    } else {
        let mut sids = Vec::new();
        // SAFETY: `dacl` is a valid ACL inside `descriptor`.
        let count = unsafe { (*dacl).AceCount };
        for index in 0..u32::from(count) {
            let mut ace: *mut core::ffi::c_void = std::ptr::null_mut();
            // SAFETY: `index` is below the ACL's ACE count.
            if unsafe { GetAce(dacl, index, &mut ace) } == 0 || ace.is_null() {
                continue;
            }
            let header = ace as *const u8;
            // SAFETY: every ACE starts with ACE_HEADER { type: u8, flags: u8, size: u16 }.
            let ace_type = unsafe { *header };
            // ACCESS_ALLOWED_ACE_TYPE = 0: header (4 bytes), mask (4 bytes), then the SID.
            if ace_type != 0 {
                continue;
            }
            // SAFETY: an ACCESS_ALLOWED_ACE holds its SID at offset 8.
            let sid = unsafe { header.add(8) } as *mut core::ffi::c_void;
            let mut text: *mut u16 = std::ptr::null_mut();
            // SAFETY: `sid` is the ACE's SID; `text` is freed by take_local_wide.
            if unsafe { ConvertSidToStringSidW(sid, &mut text) } != 0
                && let Some(s) = unsafe { take_local_wide(text) }
            {
                sids.push(s);
            }
        }
        Some(sids)
    };
    // SAFETY: allocated by GetNamedSecurityInfoW.
    unsafe { LocalFree(descriptor as HLOCAL) };
    Ok(sids)
}

/// A SID as an administrator reads it.
fn sid_name(sid: &str) -> &str {
    match sid {
        "S-1-5-18" => "SYSTEM",
        "S-1-5-32-544" => "Administrators",
        "S-1-5-32-545" => "Users",
        "S-1-5-11" => "Authenticated Users",
        "S-1-1-0" => "Everyone",
        "S-1-3-0" => "CREATOR OWNER",
        other => other,
    }
}

fn describe_access(path: &Path) -> std::io::Result<(bool, String)> {
    Ok(judge_acl(allowed_sids(path)?.as_deref()))
}

/// Whether an ACL that allows `sids` (`None`: no DACL at all, so everyone) lets anyone
/// but SYSTEM and the Administrators in, and the ACL as an administrator reads it.
fn judge_acl(sids: Option<&[String]>) -> (bool, String) {
    match sids {
        None => (true, "ACL: (kosong/none) Everyone".to_string()),
        Some(sids) => {
            let others = sids.iter().any(|s| !TRUSTED_SIDS.contains(&s.as_str()));
            let mut names: Vec<&str> = sids.iter().map(|s| sid_name(s)).collect();
            names.dedup();
            (others, format!("ACL: {}", names.join(", ")))
        }
    }
}

/// Whether this process runs under wine rather than Windows (wine's ntdll exports
/// `wine_get_version`). Only tests ask: wine keeps no real ACLs on files.
pub fn running_under_wine() -> bool {
    use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
    let ntdll = wide_str("ntdll.dll");
    // SAFETY: a NUL-terminated module name; ntdll is loaded in every process.
    let module = unsafe { GetModuleHandleW(ntdll.as_ptr()) };
    if module.is_null() {
        return false;
    }
    // SAFETY: a NUL-terminated ANSI name on a loaded module.
    unsafe { GetProcAddress(module, c"wine_get_version".as_ptr().cast()) }.is_some()
}

/// Reads who can open `dir`.
pub fn folder_access(dir: &Path) -> std::io::Result<FolderAccess> {
    let (others_can_read, description) = describe_access(dir)?;
    Ok(FolderAccess {
        others_can_read,
        description,
        owned_by_another_user: None,
    })
}

/// Whether accounts other than SYSTEM and the Administrators can read a file.
pub fn file_readable_by_others(path: &Path) -> Option<String> {
    match describe_access(path) {
        Ok((true, description)) => Some(description),
        _ => None,
    }
}

/// The command that gives a folder the data folder's ACL, for messages. SIDs rather than
/// names, since group names are translated on Indonesian Windows.
pub fn restrict_folder_command(dir: &Path) -> String {
    format!(
        "icacls \"{}\" /inheritance:r /grant:r *S-1-5-18:(OI)(CI)F *S-1-5-32-544:(OI)(CI)F",
        dir.display()
    )
}

/// The command that gives a file the data folder's ACL back, for messages.
pub fn restrict_file_command(path: &Path) -> String {
    format!("icacls \"{}\" /reset", path.display())
}

/// Which file a path names now (volume serial and file index), to notice that the store
/// this process has open was moved aside by another process.
pub fn file_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::windows::io::AsRawHandle;
    let file = std::fs::File::open(path).ok()?;
    // SAFETY: an all-zero BY_HANDLE_FILE_INFORMATION is a valid value to be overwritten.
    let mut info: BY_HANDLE_FILE_INFORMATION = unsafe { std::mem::zeroed() };
    // SAFETY: the handle is open for the duration of the call; `info` is an out-pointer.
    let ok = unsafe { GetFileInformationByHandle(file.as_raw_handle() as HANDLE, &mut info) };
    (ok != 0).then(|| {
        (
            u64::from(info.dwVolumeSerialNumber),
            (u64::from(info.nFileIndexHigh) << 32) | u64::from(info.nFileIndexLow),
        )
    })
}

/// Free space for the caller on the disk that holds `path`.
pub fn free_disk_bytes(path: &Path) -> std::io::Result<u64> {
    let wide_path = wide(path.as_os_str());
    let mut free = 0u64;
    // SAFETY: `wide_path` is NUL-terminated; `free` is an out-pointer; the other two
    // outputs are optional.
    let ok = unsafe {
        GetDiskFreeSpaceExW(
            wide_path.as_ptr(),
            &mut free,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    if ok == 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(free)
}

/// Whether this process runs with an administrator's rights (an elevated prompt, or
/// the service as SYSTEM).
pub fn is_elevated() -> bool {
    // SAFETY: no arguments.
    unsafe { IsUserAnAdmin() != 0 }
}

/// `%ProgramData%\Jejak`, where the service keeps its data and configuration. The
/// folder comes from the shell's known folder, not the environment: a service's
/// environment is not a user's, and every process must find the same folder.
pub fn default_data_dir() -> PathBuf {
    use windows_sys::Win32::System::Com::CoTaskMemFree;
    use windows_sys::Win32::UI::Shell::{FOLDERID_ProgramData, SHGetKnownFolderPath};
    let mut path: *mut u16 = std::ptr::null_mut();
    // SAFETY: a valid folder id; `path` is an out-pointer freed with CoTaskMemFree.
    let status =
        unsafe { SHGetKnownFolderPath(&FOLDERID_ProgramData, 0, std::ptr::null_mut(), &mut path) };
    let program_data = if status >= 0 && !path.is_null() {
        let mut len = 0;
        // SAFETY: the shell returned a NUL-terminated string.
        while unsafe { *path.add(len) } != 0 {
            len += 1;
        }
        // SAFETY: `len` characters were just read at `path`.
        let text = String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(path, len) });
        Some(PathBuf::from(text))
    } else {
        None
    };
    // SAFETY: allocated by SHGetKnownFolderPath (freeing null is allowed).
    unsafe { CoTaskMemFree(path.cast()) };
    program_data
        .or_else(|| {
            std::env::var_os("ProgramData")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"))
        .join("Jejak")
}

/// The interface counters of the system: `GetIfTable2`, physical adapters and modem
/// links only.
pub fn system_net_counters() -> Option<NetCounters> {
    let mut table: *mut MIB_IF_TABLE2 = std::ptr::null_mut();
    // SAFETY: `table` is an out-pointer; the table is freed with FreeMibTable below.
    if unsafe { GetIfTable2(&mut table) } != ERROR_SUCCESS || table.is_null() {
        return None;
    }
    // SAFETY: GetIfTable2 returned a table of NumEntries rows laid out after the header.
    let rows = unsafe {
        std::slice::from_raw_parts((*table).Table.as_ptr(), (*table).NumEntries as usize)
    };
    let rows: Vec<InterfaceRow> = rows
        .iter()
        .map(|row| {
            let flags = row.InterfaceAndOperStatusFlags._bitfield;
            InterfaceRow {
                if_type: row.Type,
                hardware: flags & 0x01 != 0,
                filter: flags & 0x02 != 0,
                connector_present: flags & 0x04 != 0,
                rx: row.InOctets,
                tx: row.OutOctets,
            }
        })
        .collect();
    // SAFETY: the table came from GetIfTable2 and is not used after this.
    unsafe { FreeMibTable(table.cast()) };
    crate::netdev::sum_windows_interfaces(&rows)
}

/// The session attached to the console now, if any.
pub fn console_session_id() -> Option<u32> {
    // SAFETY: no arguments.
    let session = unsafe { WTSGetActiveConsoleSessionId() };
    (session != u32::MAX).then_some(session)
}

/// Lets go of the console window this process was given (a program run at logon from
/// the `Run` key gets one), so the per-user part runs unseen.
pub fn detach_console() {
    // SAFETY: no arguments; failing (no console) is harmless.
    unsafe { windows_sys::Win32::System::Console::FreeConsole() };
}

/// Opens `url` in the user's default browser.
pub fn open_in_browser(url: &str) -> std::io::Result<()> {
    let operation = wide_str("open");
    let file = wide_str(url);
    // SAFETY: both strings are NUL-terminated; the other pointers may be null.
    let result = unsafe {
        ShellExecuteW(
            std::ptr::null_mut(),
            operation.as_ptr(),
            file.as_ptr(),
            std::ptr::null(),
            std::ptr::null(),
            SW_SHOWNORMAL,
        )
    };
    // ShellExecuteW returns a value above 32 on success.
    if (result as isize) > 32 {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "ShellExecuteW answered {}",
            result as isize
        )))
    }
}

/// How long this desktop session's input has been idle (`GetLastInputInfo`, which only
/// a process in the user's session can read).
pub fn input_idle() -> Option<std::time::Duration> {
    let mut info = LASTINPUTINFO {
        cbSize: std::mem::size_of::<LASTINPUTINFO>() as u32,
        dwTime: 0,
    };
    // SAFETY: `info` is a valid LASTINPUTINFO with its size set.
    if unsafe { GetLastInputInfo(&mut info) } == 0 {
        return None;
    }
    // Both are 32-bit tick counts that wrap after 49.7 days: subtract with wrapping.
    // SAFETY: no arguments.
    let now = unsafe { windows_sys::Win32::System::SystemInformation::GetTickCount() };
    Some(std::time::Duration::from_millis(u64::from(
        now.wrapping_sub(info.dwTime),
    )))
}

/// Whether a user is logged on at the console now: the active console session has a
/// user token. Only the service (SYSTEM) may ask; `None` when the system will not say.
/// No user name is read.
pub fn console_user_logged_on() -> Option<bool> {
    // SAFETY: no arguments.
    let session = unsafe { WTSGetActiveConsoleSessionId() };
    if session == u32::MAX {
        // No session is attached to the console (for example while switching users).
        return Some(false);
    }
    let mut token: HANDLE = std::ptr::null_mut();
    // SAFETY: `token` is an out-pointer, closed below.
    let ok = unsafe { WTSQueryUserToken(session, &mut token) };
    if ok != 0 {
        // SAFETY: the token came from WTSQueryUserToken.
        unsafe { CloseHandle(token) };
        return Some(true);
    }
    // ERROR_NO_TOKEN: the console shows the logon screen. Anything else (a process that
    // is not SYSTEM gets ERROR_PRIVILEGE_NOT_HELD) means the system will not say.
    const ERROR_NO_TOKEN: i32 = 1008;
    match std::io::Error::last_os_error().raw_os_error() {
        Some(ERROR_NO_TOKEN) => Some(false),
        _ => None,
    }
}

/// The console as the service hears it ([`crate::login::console`]) corrected by a look
/// at the active console session at each snapshot.
#[derive(Debug, Default)]
pub struct ConsoleSource;

impl LoginSource for ConsoleSource {
    fn snapshot(&mut self) -> Option<SeatSnapshot> {
        let looked = console_user_logged_on();
        let mut seat = crate::login::console()
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(logged_on) = looked {
            seat.observe_logged_on(logged_on);
        }
        seat.snapshot(std::time::Instant::now())
    }
}

/// Logins and idleness at the console.
pub fn system_login_source() -> Box<dyn LoginSource> {
    Box::new(ConsoleSource)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boot_id_is_the_same_for_every_process_of_one_boot() {
        let first = kernel_boot_id().expect("the volatile key can be written");
        assert!(first.starts_with("win-"), "{first}");
        assert_eq!(kernel_boot_id().as_deref(), Some(first.as_str()));
        // What a second process reads: the value in the key, not one it makes.
        let (key, created) =
            create_key(HKEY_LOCAL_MACHINE, BOOT_KEY, REG_OPTION_VOLATILE, KEY_READ).unwrap();
        assert!(!created);
        assert_eq!(get_string(key, "Id").as_deref(), Some(first.as_str()));
        close_key(key);
    }

    #[test]
    fn the_tick_count_moves_forward() {
        let a = boottime_ms();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let b = boottime_ms();
        assert!(b >= a + 30, "{a} then {b}");
    }

    /// ACLs as Windows 10 gave them: the data folder after `jejak init`, the folder
    /// left with `%ProgramData%`'s inherited ACL, one with a NULL DACL.
    #[test]
    fn recorded_acls_are_judged_by_who_they_let_in() {
        let sids = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let private = sids(&["S-1-5-18", "S-1-5-32-544"]);
        assert_eq!(
            judge_acl(Some(&private)),
            (false, "ACL: SYSTEM, Administrators".to_string())
        );
        let inherited = sids(&["S-1-5-18", "S-1-5-32-544", "S-1-3-0", "S-1-5-32-545"]);
        let (others, text) = judge_acl(Some(&inherited));
        assert!(others, "Users can read: {text}");
        assert!(
            text.contains("Users") && text.contains("CREATOR OWNER"),
            "{text}"
        );
        assert!(judge_acl(None).0, "no DACL lets everyone in");
    }

    /// Tested only on real Windows: wine keeps no ACLs on files (it reports one made
    /// from the Unix mode instead), so there the call is only made.
    #[test]
    fn a_private_folder_lets_only_system_and_administrators_in() {
        let dir = tempfile::tempdir().unwrap();
        if running_under_wine() {
            create_private_dir(&dir.path().join("Jejak")).unwrap();
            return;
        }
        let data = dir.path().join("Jejak");
        create_private_dir(&data).unwrap();
        let access = folder_access(&data).unwrap();
        assert!(!access.others_can_read, "{access:?}");
        assert!(access.description.contains("SYSTEM"), "{access:?}");
        assert!(access.description.contains("Administrators"), "{access:?}");
        let secret = data.join("patron.key");
        crate::platform::write_private_file(&secret, b"00").unwrap();
        assert_eq!(file_readable_by_others(&secret), None, "inherited");
        assert!(restrict_folder_command(&data).contains("*S-1-5-18"));
    }

    #[test]
    fn disk_space_and_file_identity_are_read() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_disk_bytes(dir.path()).unwrap() > 0);
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(&a, "a").unwrap();
        std::fs::write(&b, "b").unwrap();
        let id_a = file_identity(&a).unwrap();
        assert_eq!(file_identity(&a), Some(id_a));
        assert_ne!(file_identity(&b), Some(id_a));
        std::fs::rename(&a, dir.path().join("moved")).unwrap();
        std::fs::rename(&b, &a).unwrap();
        assert_ne!(
            file_identity(&a),
            Some(id_a),
            "another file under the old name"
        );
    }

    #[test]
    fn the_interface_table_is_read() {
        // Under wine the table mirrors the host's interfaces; on a PC, its adapters.
        // Either way the call works and loopback alone never counts.
        let counters = system_net_counters();
        if let Some(c) = counters {
            assert!(c.rx > 0 || c.tx > 0, "{c:?}");
        }
    }

    #[test]
    fn the_data_folder_is_under_program_data() {
        let dir = default_data_dir();
        assert!(dir.ends_with("Jejak"), "{}", dir.display());
    }
}
