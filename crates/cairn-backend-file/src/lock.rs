//! Stack locks: a lock file created atomically (written aside, then hard-linked into place, which
//! fails if a lock exists), holding its owner's pid, host, user, command and start time, with a
//! heartbeat refreshed while the lock is held. A lock is never taken over: a dead holder's lock
//! is reported as stale, and `cairn cancel` releases it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use cairn_state::{BackendError, LockOwner, StackLock};

use crate::files::{io_error, sync_dir, write_atomically};

/// How often a held lock's heartbeat is refreshed.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// A held lock; dropping it stops the heartbeat and removes the lock file.
pub struct FileLock {
    path: PathBuf,
    owner: LockOwner,
    stop: Arc<AtomicBool>,
    heartbeat: Option<JoinHandle<()>>,
}

impl StackLock for FileLock {}

impl Drop for FileLock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.heartbeat.take() {
            let _ = thread.join();
        }
        // Remove the lock only while it is still ours: `cairn cancel` may have released it and
        // someone else taken it since.
        if read_owner(&self.path).is_some_and(|holder| is_same_holder(&holder, &self.owner)) {
            let _ = fs_err::remove_file(&self.path);
        }
    }
}

fn is_same_holder(left: &LockOwner, right: &LockOwner) -> bool {
    left.pid == right.pid && left.host == right.host && left.started == right.started
}

/// Takes the lock at `path` for `owner`, or reports who holds it.
pub fn acquire(path: &Path, stack: &str, owner: LockOwner) -> Result<FileLock, BackendError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs_err::create_dir_all(dir).map_err(|error| io_error("creating", dir, error))?;
    let aside = dir.join(format!(".{stack}.{}.lock.tmp", owner.pid));
    let text = serde_json::to_string_pretty(&owner)
        .map_err(|error| BackendError::Format(error.to_string()))?;
    write_atomically(&aside, text.as_bytes())?;
    let linked = std::fs::hard_link(&aside, path);
    let _ = fs_err::remove_file(&aside);
    match linked {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(BackendError::Locked {
                stack: stack.to_owned(),
                holder: holder(path).unwrap_or_else(|| unreadable_holder(path)),
            });
        }
        Err(error) => return Err(io_error("creating the lock", path, error)),
    }
    sync_dir(dir)?;
    let stop = Arc::new(AtomicBool::new(false));
    let heartbeat = {
        let stop = stop.clone();
        let path = path.to_owned();
        let owner = owner.clone();
        std::thread::Builder::new()
            .name("cairn-lock-heartbeat".to_owned())
            .spawn(move || beat(&path, owner, &stop))
            .map_err(|error| io_error("starting the heartbeat of", dir, error))?
    };
    Ok(FileLock {
        path: path.to_owned(),
        owner,
        stop,
        heartbeat: Some(heartbeat),
    })
}

fn beat(path: &Path, mut owner: LockOwner, stop: &AtomicBool) {
    let step = Duration::from_millis(100);
    let mut waited = Duration::ZERO;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(step);
        waited += step;
        if waited < HEARTBEAT {
            continue;
        }
        waited = Duration::ZERO;
        if !read_owner(path).is_some_and(|holder| is_same_holder(&holder, &owner)) {
            return;
        }
        owner.heartbeat = unix_now();
        if let Ok(text) = serde_json::to_string_pretty(&owner) {
            let _ = write_atomically(path, text.as_bytes());
        }
    }
}

fn read_owner(path: &Path) -> Option<LockOwner> {
    let text = fs_err::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// The lock's holder, judged stale when it ran on this host and its process is gone.
pub fn holder(path: &Path) -> Option<LockOwner> {
    if !path.exists() {
        return None;
    }
    let mut owner = read_owner(path).unwrap_or_else(|| unreadable_holder(path));
    owner.is_stale =
        owner.host == local_host() && !Path::new(&format!("/proc/{}", owner.pid)).exists();
    Some(owner)
}

fn unreadable_holder(path: &Path) -> LockOwner {
    LockOwner {
        pid: 0,
        host: "unknown".to_owned(),
        user: "unknown".to_owned(),
        command: format!("an unreadable lock file ({})", path.display()),
        started: unix_now(),
        heartbeat: unix_now(),
        is_stale: false,
    }
}

/// This machine's host name.
pub fn local_host() -> String {
    fs_err::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|duration| duration.as_secs() as i64)
        .unwrap_or(0)
}
