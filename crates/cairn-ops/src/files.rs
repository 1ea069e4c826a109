//! The program's view of the disk.

use std::path::Path;

use cairn_provider::files;

/// Reads program files and `fn::readFile`s from disk: regular files only (a FIFO would block
/// forever, `/dev/zero` never ends), of at most `MAX_READ_BYTES`.
pub struct DiskFiles;

impl cairn_program::FileSource for DiskFiles {
    fn read_to_string(&self, path: &Path) -> std::io::Result<String> {
        files::read_regular_file(path, files::MAX_READ_BYTES)
    }

    fn check_readable(&self, path: &Path) -> std::io::Result<()> {
        files::check_regular_file(path, files::MAX_READ_BYTES).map(drop)
    }
}
