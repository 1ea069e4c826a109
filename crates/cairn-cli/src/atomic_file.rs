//! The one way the CLI replaces a file it owns (stack config, credentials, workspace settings):
//! a temporary file of this process's own beside it, fsynced, renamed over it, and the directory
//! fsynced, so a reader sees the old file or the new one, even after a crash.

use std::io::Write as _;
use std::path::Path;

/// Who may read the file.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// As the umask allows (the config file is committed next to the program).
    Shared,
    /// The owner only (0600): the file may hold a password. The temporary file is created with
    /// that mode, never widened and narrowed afterwards, so no one else can open it in between.
    Private,
}

/// Replaces `path` with `contents` atomically.
pub fn write(path: &Path, contents: &[u8], access: Access) -> std::io::Result<()> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = directory.join(format!(".{name}.{}.tmp", std::process::id()));
    // A leftover from a crashed run of this same pid would make `create_new` fail.
    match std::fs::remove_file(&temporary) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if access == Access::Private {
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    }
    let written = options.open(&temporary).and_then(|mut file| {
        file.write_all(contents)?;
        file.sync_all()
    });
    let renamed = written.and_then(|()| std::fs::rename(&temporary, path));
    if let Err(error) = renamed {
        let _ = std::fs::remove_file(&temporary);
        return Err(std::io::Error::new(
            error.kind(),
            format!("writing `{}`: {error}", path.display()),
        ));
    }
    // The rename is durable once the directory is.
    std::fs::File::open(directory).and_then(|directory| directory.sync_all())?;
    remove_leftovers(directory, &name);
    Ok(())
}

/// Removes the temporary files of writers of `name` that were killed before their rename
/// (`.<name>.<pid>.tmp` whose process is gone): they hold nothing anyone will read.
fn remove_leftovers(directory: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return;
    };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = file_name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".tmp"))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_the_file_and_clear_what_killed_writers_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Cairn.dev.yaml");
        // A writer killed before its rename: no process has this pid (Linux's are below 2^22).
        let dead = dir.path().join(".Cairn.dev.yaml.4194304999.tmp");
        let own = dir
            .path()
            .join(format!(".Cairn.dev.yaml.{}.tmp", std::process::id()));
        std::fs::write(&dead, "half").unwrap();
        write(&path, b"new", Access::Shared).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert!(!dead.exists());
        // Our own temporary name was renamed away, not left behind.
        assert!(!own.exists());
        write(&path, b"secret", Access::Private).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }
}
