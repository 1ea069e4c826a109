//! Stack tags, logs and renaming for the file backend: the parts of a stack that are not its
//! state. Tags live in `.pulumi/tags/<project>/<stack>.json`, logs in
//! `.pulumi/logs/<project>/<stack>.jsonl` (one JSON line per entry; a torn last line, left by a
//! crash, is skipped).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use cairn_state::backend::BackendResult;
use cairn_state::{BackendError, LogEntry, StackRef};

use crate::FileBackend;
use crate::files::{self, io_error};

impl FileBackend {
    pub(crate) fn tags_path(&self, stack: &StackRef) -> PathBuf {
        self.root
            .join(".pulumi")
            .join("tags")
            .join(&stack.project)
            .join(format!("{}.json", stack.name))
    }

    pub(crate) fn logs_path(&self, stack: &StackRef) -> PathBuf {
        self.root
            .join(".pulumi")
            .join("logs")
            .join(&stack.project)
            .join(format!("{}.jsonl", stack.name))
    }

    pub(crate) fn read_tags(&self, stack: &StackRef) -> BackendResult<BTreeMap<String, String>> {
        let path = self.tags_path(stack);
        match fs_err::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|error| BackendError::Corrupt {
                stack: stack.name.clone(),
                reason: format!("{}: {error}", path.display()),
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(error) => Err(io_error("reading", &path, error)),
        }
    }

    pub(crate) fn write_tags(
        &self,
        stack: &StackRef,
        tags: &BTreeMap<String, String>,
    ) -> BackendResult<()> {
        let path = self.tags_path(stack);
        create_parent(&path)?;
        let text = serde_json::to_string_pretty(tags)
            .map_err(|error| BackendError::format_from(error.to_string(), error))?;
        files::write_atomically(&path, text.as_bytes())?;
        self.bytes_written
            .fetch_add(text.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn append_log_lines(
        &self,
        stack: &StackRef,
        entries: &[LogEntry],
    ) -> BackendResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let path = self.logs_path(stack);
        create_parent(&path)?;
        let mut text = String::new();
        for entry in entries {
            let line = serde_json::to_string(entry)
                .map_err(|error| BackendError::format_from(error.to_string(), error))?;
            text.push_str(&line);
            text.push('\n');
        }
        let mut file = fs_err::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|error| io_error("opening", &path, error))?;
        // One write: concurrent appenders interleave whole batches, never half lines.
        file.write_all(text.as_bytes())
            .map_err(|error| io_error("appending to", &path, error))?;
        self.bytes_written
            .fetch_add(text.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn read_logs(
        &self,
        stack: &StackRef,
        since_ms: Option<i64>,
        urn: Option<&str>,
    ) -> BackendResult<Vec<LogEntry>> {
        let path = self.logs_path(stack);
        let text = match fs_err::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(io_error("reading", &path, error)),
        };
        let mut entries: Vec<LogEntry> = text
            .lines()
            .filter_map(|line| serde_json::from_str::<LogEntry>(line).ok())
            .filter(|entry| entry.matches(since_ms, urn))
            .collect();
        entries.sort_by_key(|entry| entry.timestamp_ms);
        Ok(entries)
    }

    /// Moves everything of `stack` to `new`: the checkpoint (URNs rewritten) first, so a crash
    /// midway leaves the stack under one name or both, never under neither.
    pub(crate) fn rename(&self, stack: &StackRef, new: &StackRef) -> BackendResult<()> {
        let Some((deployment, _)) = self.load(stack)? else {
            return Err(BackendError::StackNotFound(stack.name.clone()));
        };
        let renamed = cairn_state::backend::rename_in_deployment(&deployment, stack, &new.name)?;
        let dir = self.stack_dir(new);
        fs_err::create_dir_all(&dir).map_err(|error| io_error("creating", &dir, error))?;
        self.write_checkpoint(new, &renamed)?;

        // Kept versions: their URNs are rewritten too, so `stack export --version N` of the
        // renamed stack can be imported back into it.
        for version in self.backup_versions(stack)? {
            let old_path = self.backup_path(stack, version);
            if let Some(checkpoint) = files::read_checkpoint(&old_path, &stack.name)? {
                let renamed = cairn_state::backend::rename_in_deployment(
                    &checkpoint.deployment,
                    stack,
                    &new.name,
                )?;
                let (text, _) = files::encode_checkpoint(&renamed)?;
                let new_path = self.backup_path(new, version);
                create_parent(&new_path)?;
                files::write_atomically(&new_path, text.as_bytes())?;
            }
        }
        for (from, to) in [
            (self.history_dir(stack), self.history_dir(new)),
            (self.tags_path(stack), self.tags_path(new)),
            (self.logs_path(stack), self.logs_path(new)),
        ] {
            move_if_present(&from, &to)?;
        }
        // History files are named after the stack; their contents carry no URNs.
        let history = self.history_dir(new);
        if let Ok(entries) = fs_err::read_dir(&history) {
            let prefix = format!("{}-", stack.name);
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Some(rest) = name.strip_prefix(&prefix) {
                    let to = history.join(format!("{}-{rest}", new.name));
                    move_if_present(&entry.path(), &to)?;
                }
            }
        }
        let backups = self.backups_dir(stack);
        for path in [
            self.checkpoint_path(stack),
            self.checkpoint_path(stack).with_extension("json.bak"),
        ] {
            remove_if_present(&path)?;
        }
        if backups.exists() {
            fs_err::remove_dir_all(&backups)
                .map_err(|error| io_error("removing", &backups, error))?;
        }
        Ok(())
    }
}

fn create_parent(path: &Path) -> BackendResult<()> {
    if let Some(dir) = path.parent() {
        fs_err::create_dir_all(dir).map_err(|error| io_error("creating", dir, error))?;
    }
    Ok(())
}

fn move_if_present(from: &Path, to: &Path) -> BackendResult<()> {
    if !from.exists() {
        return Ok(());
    }
    create_parent(to)?;
    fs_err::rename(from, to).map_err(|error| io_error("moving", from, error))
}

fn remove_if_present(path: &Path) -> BackendResult<()> {
    match fs_err::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(io_error("removing", path, error)),
    }
}
