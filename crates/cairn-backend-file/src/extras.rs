//! Stack tags and logs for the file backend: the parts of a stack that are not its
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
}

fn create_parent(path: &Path) -> BackendResult<()> {
    if let Some(dir) = path.parent() {
        fs_err::create_dir_all(dir).map_err(|error| io_error("creating", dir, error))?;
    }
    Ok(())
}
