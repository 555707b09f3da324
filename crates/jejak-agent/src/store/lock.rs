//! Opening the store is serialised between processes with an exclusive lock on a file
//! beside it: checking, migrating and (when damaged) moving the store aside must each
//! happen once, not once per process that happens to start at the same moment.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::StoreError;

/// Held while a process opens the store; released on drop.
#[derive(Debug)]
pub(crate) struct OpenLock {
    /// Kept open for the lifetime of the lock: closing it releases the lock.
    _file: File,
}

pub(crate) fn lock_path(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl OpenLock {
    /// Waits for and takes the lock.
    pub(crate) fn acquire(store: &Path) -> Result<OpenLock, StoreError> {
        let path = lock_path(store);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| StoreError::Io {
                path: path.clone(),
                source,
            })?;
        crate::platform::lock_exclusive(&file).map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(OpenLock { _file: file })
    }
}
