//! Stack locks: a lock file created atomically (written aside, then hard-linked into place, which
//! fails if a lock exists), holding its owner's pid, host, user, command and start time, with a
//! heartbeat refreshed while the lock is held. A lock is never taken over: a dead holder's lock
//! is reported as stale, and `cairn cancel` releases it.
//!
//! Each holding of a lock has a fencing token, written in the lock file. The holder's writes
//! check it first (`check_token`), so once `cairn cancel` removed the lock, or someone else
//! holds it, a holder that is still running writes nothing more. The check and the write are
//! two system calls, not one: the window between them is microseconds, against the seconds a
//! person needs to cancel an update and start the next.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use cairn_state::{BackendError, LockOwner, StackLock};

use crate::files::{io_error, sync_dir, write_atomically};

/// How often a held lock's heartbeat is refreshed.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// What a lock file holds: the owner, and the token of this holding of the lock.
#[derive(serde::Serialize, serde::Deserialize)]
struct LockFile {
    #[serde(flatten)]
    owner: LockOwner,
    #[serde(default)]
    token: String,
}

/// A held lock; dropping it stops the heartbeat and removes the lock file.
pub struct FileLock {
    path: PathBuf,
    token: String,
    stop: Arc<AtomicBool>,
    heartbeat: Option<JoinHandle<()>>,
}

impl StackLock for FileLock {
    fn token(&self) -> &str {
        &self.token
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.heartbeat.take() {
            let _ = thread.join();
        }
        // Remove the lock only while it is still ours: `cairn cancel` may have released it and
        // someone else taken it since.
        if read_lock(&self.path).is_some_and(|lock| lock.token == self.token) {
            let _ = fs_err::remove_file(&self.path);
        }
    }
}

/// Fails with `BackendError::LockLost` unless the lock at `path` is the holding `token`.
pub fn check_token(path: &Path, stack: &str, token: &str) -> Result<(), BackendError> {
    match read_lock(path) {
        Some(lock) if lock.token == token => Ok(()),
        _ => Err(BackendError::LockLost(stack.to_owned())),
    }
}

/// Takes the lock at `path` for `owner`, or reports who holds it.
pub fn acquire(path: &Path, stack: &str, owner: LockOwner) -> Result<FileLock, BackendError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs_err::create_dir_all(dir).map_err(|error| io_error("creating", dir, error))?;
    let token = new_token();
    let aside = dir.join(format!(".{stack}.{token}.lock.tmp"));
    let lock_file = LockFile { owner, token };
    let text = serde_json::to_string_pretty(&lock_file)
        .map_err(|error| BackendError::format_from(error.to_string(), error))?;
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
    let token = lock_file.token.clone();
    let heartbeat = {
        let token = token.clone();
        let stop = stop.clone();
        let path = path.to_owned();
        std::thread::Builder::new()
            .name("cairn-lock-heartbeat".to_owned())
            .spawn(move || beat(&path, &token, &stop))
            .map_err(|error| io_error("starting the heartbeat of", dir, error))?
    };
    Ok(FileLock {
        path: path.to_owned(),
        token,
        stop,
        heartbeat: Some(heartbeat),
    })
}

/// A token no other holding of any lock has: 128 random bits.
fn new_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Keeps the lock's heartbeat: the lock file's modification time. Touching the time, rather
/// than rewriting the file, can never recreate a lock that `cairn cancel` just removed.
fn beat(path: &Path, token: &str, stop: &AtomicBool) {
    let step = Duration::from_millis(100);
    let mut waited = Duration::ZERO;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(step);
        waited += step;
        if waited < HEARTBEAT {
            continue;
        }
        waited = Duration::ZERO;
        if read_lock(path).is_none_or(|current| current.token != token) {
            return;
        }
        let touched = std::fs::File::options()
            .write(true)
            .open(path)
            .and_then(|file| file.set_modified(std::time::SystemTime::now()));
        if touched.is_err() {
            return;
        }
    }
}

/// The fencing token of the lock at `path`, if it can be read.
pub fn token(path: &Path) -> Option<String> {
    read_lock(path).map(|lock| lock.token)
}

/// Removes the lock at `path` if it is still the holding `token` (the lock of a holder that is
/// gone, whose work is being finished for it).
pub fn remove_if_token(path: &Path, token: &str) -> Result<(), BackendError> {
    if read_lock(path).is_some_and(|lock| lock.token == token) {
        match fs_err::remove_file(path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(io_error("removing", path, error)),
        }
        sync_dir(path.parent().unwrap_or(Path::new(".")))?;
    }
    Ok(())
}

fn read_lock(path: &Path) -> Option<LockFile> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// The lock's holder, judged stale when it ran on this host and its process is gone.
pub fn holder(path: &Path) -> Option<LockOwner> {
    if !path.exists() {
        return None;
    }
    let mut owner = read_lock(path)
        .map(|lock| lock.owner)
        .unwrap_or_else(|| unreadable_holder(path));
    // The heartbeat is the file's modification time (see `beat`).
    if let Some(touched) = std::fs::metadata(path)
        .and_then(|metadata| metadata.modified())
        .ok()
        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
    {
        owner.heartbeat = owner.heartbeat.max(touched.as_secs() as i64);
    }
    owner.is_stale = cairn_state::backend::is_gone_here(&owner);
    Some(owner)
}

fn unreadable_holder(path: &Path) -> LockOwner {
    LockOwner {
        pid: 0,
        host: "unknown".to_owned(),
        user: "unknown".to_owned(),
        command: format!("an unreadable lock file ({})", path.display()),
        started: crate::files::unix_now(),
        heartbeat: crate::files::unix_now(),
        is_stale: false,
    }
}
