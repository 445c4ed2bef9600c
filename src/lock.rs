//! Exclusive locks on output folders, so that two processes never write one sweep or one run
//! at once.
//!
//! The lock is the operating system's (`flock` on the folder's [`FILE_NAME`]), so it goes with
//! the process that holds it: a process killed with `kill -9` leaves the file but not the lock,
//! and the next process takes it over. The file says who holds the lock, for the refusal.

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// The lock file's name inside a locked folder.
pub const FILE_NAME: &str = ".gunlearn.lock";

/// Who holds a lock, as its file records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Holder {
    /// Host name.
    pub host: String,
    /// Process id on that host.
    pub pid: u32,
    /// When it took the lock, UTC (RFC 3339).
    pub since_utc: String,
    /// What it is doing (`sweep`, `run-job`, `unlearn` …).
    pub what: String,
}

impl Holder {
    fn describe(&self) -> String {
        format!(
            "{} (pid {} on {}, since {})",
            self.what, self.pid, self.host, self.since_utc
        )
    }
}

/// An exclusive lock on a folder, held until dropped (or the process ends).
#[derive(Debug)]
pub struct FolderLock {
    /// Kept open: closing it releases the lock.
    _file: File,
}

impl FolderLock {
    /// Takes the lock on `dir` (created if missing) for `what`, or refuses naming the process
    /// that holds it. A lock left by a process that is gone is taken over.
    pub fn acquire(dir: &Path, what: &str) -> anyhow::Result<FolderLock> {
        // Taking the lock writes into the folder: an unwritable one is refused here, before
        // any work, not when the results are saved.
        let unwritable = || {
            format!(
                "{} cannot be written to: choose another output folder or fix its permissions",
                dir.display()
            )
        };
        std::fs::create_dir_all(dir).with_context(unwritable)?;
        let path = dir.join(FILE_NAME);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(unwritable)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = serde_json::from_str::<Holder>(&text)
                    .map(|h| h.describe())
                    .unwrap_or_else(|_| "another gunlearn process".into());
                bail!(
                    "{} is in use by {holder}: wait for it to finish or stop it; two processes \
                     writing one folder would run the same jobs twice",
                    dir.display()
                );
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
        let holder = Holder {
            host: host_name(),
            pid: std::process::id(),
            since_utc: crate::audit::utc_now(),
            what: what.to_string(),
        };
        let written = file
            .set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(serde_json::to_string(&holder)?.as_bytes()))
            .and_then(|()| file.flush());
        written.with_context(unwritable)?;
        // Results are written atomically through new files beside them.
        let probe = dir.join(".gunlearn.probe");
        std::fs::write(&probe, b"")
            .and_then(|()| std::fs::remove_file(&probe))
            .with_context(unwritable)?;
        Ok(FolderLock { _file: file })
    }
}

/// This machine's host name (`unknown` when it cannot be read).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}
