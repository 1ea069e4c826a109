//! Reading files named by programs (`fn::readFile`, assets, build contexts) safely: only
//! regular files, and only up to a size. Opening a FIFO blocks until a writer appears (and no
//! signal handling can interrupt the blocked thread), and `/dev/zero` never ends, so the kind
//! of file is checked from its metadata before it is ever opened.

use std::fs::{FileType, Metadata};
use std::io::{self, Read};
use std::path::Path;

/// The most `fn::readFile` (and a program file) reads: 64 MiB. A bigger file is refused rather
/// than held in memory and written into the state.
pub const MAX_READ_BYTES: u64 = 64 * 1024 * 1024;

/// What a file that is not a regular file or a directory is, for messages; `None` for regular
/// files, directories and symlinks.
pub fn special_kind(file_type: &FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if file_type.is_socket() {
        Some("a socket")
    } else if file_type.is_char_device() {
        Some("a character device")
    } else if file_type.is_block_device() {
        Some("a block device")
    } else {
        None
    }
}

/// The metadata of `path` (symlinks followed) when it is a regular file of at most `max_bytes`;
/// otherwise an error (`InvalidInput`) naming the path and what it is. A missing file is
/// `NotFound`, as from `open`.
pub fn check_regular_file(path: &Path, max_bytes: u64) -> io::Result<Metadata> {
    let metadata = fs_err::metadata(path)?;
    let refuse = |what: String| {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{}` {what}", path.display()),
        ))
    };
    if metadata.is_dir() {
        return refuse("is a directory, not a regular file".to_owned());
    }
    if let Some(kind) = special_kind(&metadata.file_type()) {
        return refuse(format!("is {kind}, not a regular file"));
    }
    if metadata.len() > max_bytes {
        return refuse(format!(
            "is {} bytes; at most {max_bytes} are read",
            metadata.len()
        ));
    }
    Ok(metadata)
}

/// Reads a file a user named on the command line, of at most `max_bytes`: a regular file, or
/// a pipe (`--file <(cairn stack export)`), read until it ends or passes the limit. A device,
/// socket or directory is refused: `/dev/zero` never ends.
pub fn read_input_file(path: &Path, max_bytes: u64) -> io::Result<String> {
    use std::os::unix::fs::FileTypeExt;
    let metadata = fs_err::metadata(path)?;
    if !metadata.file_type().is_fifo() {
        return read_regular_file(path, max_bytes);
    }
    read_bounded(fs_err::File::open(path)?, path, max_bytes)
}

/// Reads `reader` to its end as UTF-8 text, refusing it past `max_bytes`.
pub fn read_bounded(reader: impl Read, path: &Path, max_bytes: u64) -> io::Result<String> {
    let mut text = String::new();
    reader
        .take(max_bytes.saturating_add(1))
        .read_to_string(&mut text)?;
    if text.len() as u64 > max_bytes {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{}` is longer than {max_bytes} bytes", path.display()),
        ));
    }
    Ok(text)
}

/// Reads a regular file of at most `max_bytes` as UTF-8 text (see `check_regular_file`). The
/// read itself stops past the limit too, should the file grow in between.
pub fn read_regular_file(path: &Path, max_bytes: u64) -> io::Result<String> {
    check_regular_file(path, max_bytes)?;
    let file = fs_err::File::open(path)?;
    let mut text = String::new();
    file.take(max_bytes.saturating_add(1))
        .read_to_string(&mut text)?;
    if text.len() as u64 > max_bytes {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "`{}` grew past {max_bytes} bytes while being read",
                path.display()
            ),
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_read_within_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        std::fs::write(&path, "hello").unwrap();
        assert_eq!(read_regular_file(&path, 5).unwrap(), "hello");
        let error = read_regular_file(&path, 4).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert!(
            error.to_string().contains("a.txt` is 5 bytes; at most 4"),
            "{error}"
        );
    }

    #[test]
    fn fifos_devices_and_directories_are_refused_without_opening_them() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // Opening the FIFO would block this test forever; the check must not open it.
        let error = read_regular_file(&fifo, MAX_READ_BYTES).unwrap_err();
        assert!(error.to_string().contains("pipe` is a FIFO"), "{error}");
        let error = read_regular_file(Path::new("/dev/zero"), MAX_READ_BYTES).unwrap_err();
        assert_eq!(
            error.to_string(),
            "`/dev/zero` is a character device, not a regular file"
        );
        let error = read_regular_file(dir.path(), MAX_READ_BYTES).unwrap_err();
        assert!(error.to_string().contains("is a directory"), "{error}");
        let missing = read_regular_file(&dir.path().join("nope"), 1).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    }
}
