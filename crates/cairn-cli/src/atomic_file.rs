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
    std::fs::File::open(directory).and_then(|directory| directory.sync_all())
}
