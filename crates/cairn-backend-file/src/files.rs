//! Checkpoint files: written atomically with a checksum of their deployment, read back only
//! when the checksum matches.

use std::io::Write;
use std::path::Path;

use cairn_state::{BackendError, Deployment};
use serde::Deserialize;
use sha2::Digest;

pub fn io_error(action: &'static str, path: &Path, source: std::io::Error) -> BackendError {
    BackendError::Io {
        action,
        path: path.display().to_string(),
        source,
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A checkpoint as read: its deployment and the checksum that identifies it.
pub struct Checkpoint {
    pub deployment: Deployment,
    pub checksum: String,
}

#[derive(Deserialize)]
struct CheckpointFile<'a> {
    version: u32,
    checksum: String,
    #[serde(borrow)]
    deployment: &'a serde_json::value::RawValue,
}

/// Reads and verifies a checkpoint; `None` when the file does not exist.
pub fn read_checkpoint(path: &Path, stack: &str) -> Result<Option<Checkpoint>, BackendError> {
    let text = match fs_err::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_error("reading", path, error)),
    };
    let corrupt = |reason: String| BackendError::Corrupt {
        stack: stack.to_owned(),
        reason: format!("{}: {reason}", path.display()),
    };
    // Checkpoints written before values were limited (`cairn_core::MAX_VALUE_DEPTH`) can nest
    // deeper than serde_json reads.
    let too_deep = |error: &serde_json::Error| {
        error.to_string().contains("recursion limit exceeded").then(|| {
            corrupt(format!(
                "it nests deeper than JSON can be read ({error}); only a Cairn from before property values were limited in depth wrote such checkpoints"
            ))
        })
    };
    let file: CheckpointFile<'_> = serde_json::from_str(&text).map_err(|error| {
        too_deep(&error).unwrap_or_else(|| corrupt(format!("not a checkpoint ({error})")))
    })?;
    if file.version != cairn_state::deployment::DEPLOYMENT_VERSION {
        return Err(corrupt(format!("unsupported version {}", file.version)));
    }
    let raw = file.deployment.get();
    if sha256_hex(raw.as_bytes()) != file.checksum {
        return Err(corrupt(
            "its checksum does not match its contents".to_owned(),
        ));
    }
    let deployment: Deployment = serde_json::from_str(raw)
        .map_err(|error| too_deep(&error).unwrap_or_else(|| corrupt(error.to_string())))?;
    Ok(Some(Checkpoint {
        deployment,
        checksum: file.checksum,
    }))
}

/// A checkpoint file's text and its checksum, before anything is written: a journal that will
/// apply to this checkpoint can name it first. A deployment nested too deep to be read back is
/// refused before anything is written.
pub fn encode_checkpoint(deployment: &Deployment) -> Result<(String, String), BackendError> {
    deployment.check_depth()?;
    let deployment_json = serde_json::to_string(deployment)
        .map_err(|error| BackendError::format_from(error.to_string(), error))?;
    let checksum = sha256_hex(deployment_json.as_bytes());
    let text = format!(
        "{{\"version\":{},\"checksum\":\"{checksum}\",\"deployment\":{deployment_json}}}\n",
        cairn_state::deployment::DEPLOYMENT_VERSION
    );
    Ok((text, checksum))
}

/// Temporary file in the same directory, fsync, rename over the target, fsync the directory:
/// a reader sees the old file or the new one, never a mix, even after a crash.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), BackendError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let temporary = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let mut file = fs_err::File::create(&temporary)
        .map_err(|error| io_error("creating", &temporary, error))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|error| io_error("writing", &temporary, error))?;
    drop(file);
    fs_err::rename(&temporary, path).map_err(|error| io_error("renaming into", path, error))?;
    sync_dir(dir)
}

/// Writes `path` only if nothing is there, atomically: written aside, then hard-linked into
/// place, which fails if a file exists (of two `stack init`s at once, exactly one creates).
/// Returns whether it created the file.
pub fn create_exclusively(path: &Path, bytes: &[u8]) -> Result<bool, BackendError> {
    let aside = path.with_extension(format!("new.{}", std::process::id()));
    write_atomically(&aside, bytes)?;
    let linked = std::fs::hard_link(&aside, path);
    let _ = fs_err::remove_file(&aside);
    match linked {
        Ok(()) => {
            sync_dir(path.parent().unwrap_or(Path::new(".")))?;
            Ok(true)
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(error) => Err(io_error("creating", path, error)),
    }
}

/// Keeps the current checkpoint as `backup`: a hard link where the filesystem has them (no
/// bytes written, and the rename that follows leaves the link on the old contents), a copy
/// otherwise. Returns the bytes written.
pub fn keep_backup(path: &Path, backup: &Path) -> Result<u64, BackendError> {
    match fs_err::remove_file(backup) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(io_error("removing", backup, error)),
    }
    if fs_err::hard_link(path, backup).is_ok() {
        return Ok(0);
    }
    fs_err::copy(path, backup).map_err(|error| io_error("backing up", path, error))
}

pub fn sync_dir(dir: &Path) -> Result<(), BackendError> {
    fs_err::File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|error| io_error("syncing", dir, error))
}

/// How long a command waits for the lock of a directory of records. Holders keep it only
/// while they read and write a few small files; one that keeps it longer is stopped (Ctrl-Z,
/// SIGSTOP) or stuck, and waiting on it forever would freeze every command.
pub const DIRECTORY_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Opens `dir/.lock` and takes its exclusive `flock`: the lock of a directory of records (the
/// job queue's, the app store's). It is released when the file is closed, also when the
/// holder panics or is killed. Waits up to `wait` for another holder, then fails naming it.
pub fn lock_directory(dir: &Path, wait: std::time::Duration) -> std::io::Result<std::fs::File> {
    let path = dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    let deadline = std::time::Instant::now() + wait;
    let mut pause = std::time::Duration::from_millis(2);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::Error(error)) => return Err(error),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() >= deadline => {
                let holder = flock_holder(&file)
                    .map(|pid| format!(" (process {pid})"))
                    .unwrap_or_default();
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "another command{holder} has held {} for over {} s; it may be stopped \
                         (Ctrl-Z) or stuck: resume or end it, then try again",
                        path.display(),
                        wait.as_secs()
                    ),
                ));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(50));
            }
        }
    }
}

/// The process holding a `flock` on `file`, from Linux's `/proc/locks`.
fn flock_holder(file: &std::fs::File) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let inode = file.metadata().ok()?.ino();
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    // `1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF`: the pid, then major:minor:inode.
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let is_ours = fields.get(1) == Some(&"FLOCK")
            && fields
                .get(5)
                .and_then(|device| device.rsplit(':').next())
                .is_some_and(|ino| ino == inode.to_string());
        is_ours.then(|| fields.get(4)?.parse().ok()).flatten()
    })
}

/// The wall clock in Unix seconds (0 before 1970).
pub fn unix_now() -> i64 {
    unix_now_millis() / 1000
}

/// The wall clock in Unix milliseconds (0 before 1970).
pub fn unix_now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |duration| {
            i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod lock_tests {
    use super::*;

    #[test]
    fn a_directory_lock_held_too_long_is_given_up_on_naming_its_holder() {
        let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
        let held = lock_directory(dir.path(), DIRECTORY_LOCK_WAIT)
            .unwrap_or_else(|error| panic!("{error}"));
        let started = std::time::Instant::now();
        let error = lock_directory(dir.path(), std::time::Duration::from_millis(200))
            .err()
            .unwrap_or_else(|| panic!("a second holder got the lock"));
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        let message = error.to_string();
        assert!(
            message.contains(&format!("(process {})", std::process::id())),
            "{message}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        drop(held);
        assert!(lock_directory(dir.path(), std::time::Duration::from_millis(200)).is_ok());
    }
}
