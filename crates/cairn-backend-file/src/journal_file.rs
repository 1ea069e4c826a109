//! The journal file of one update: a header line naming the checkpoint it applies to, then one
//! line per record, `{"sha256": <hex>, "record": <record>}`.
//!
//! Appends use group commit: one writer thread owns the file, takes every batch queued while it
//! was busy, writes them together and fsyncs once, then acknowledges each. Hundreds of steps
//! running at once cost a handful of fsyncs, and a record is durable when `append` returns.
//! Before each batch the writer checks its fence (the update still holds the stack's lock), so
//! a cancelled update appends nothing more.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use cairn_state::{BackendError, JournalRecord};
use serde::Deserialize;

use crate::files::{io_error, sha256_hex, sync_dir};

type Ack = tokio::sync::oneshot::Sender<Result<(), BatchError>>;

/// Checked before every batch is written: `Err` (the lock is lost) refuses the batch.
pub type Fence = Box<dyn Fn() -> Result<(), BackendError> + Send>;

/// Why a batch was not written; cloned to every append in the batch.
#[derive(Clone)]
enum BatchError {
    LockLost(String),
    Io(String),
}

/// An open journal.
pub struct JournalFile {
    path: String,
    sender: Option<mpsc::Sender<(String, Ack)>>,
    thread: Option<JoinHandle<()>>,
    /// Bytes in this journal so far (header included), to decide when to fold it.
    length: Arc<AtomicU64>,
}

/// One record as a journal line.
fn encode_line(record: &JournalRecord) -> Result<String, BackendError> {
    let record_json = serde_json::to_string(record)
        .map_err(|error| BackendError::format_from(error.to_string(), error))?;
    Ok(format!(
        "{{\"sha256\":\"{}\",\"record\":{record_json}}}\n",
        sha256_hex(record_json.as_bytes())
    ))
}

impl JournalFile {
    /// Creates the journal (replacing any old one) with its header and `initial` records (the
    /// operations a fold carries over), durably.
    pub fn create(
        path: &Path,
        base_checksum: &str,
        initial: &[JournalRecord],
        bytes_written: Arc<AtomicU64>,
        fence: Fence,
    ) -> Result<JournalFile, BackendError> {
        fence()?;
        let mut file =
            fs_err::File::create(path).map_err(|error| io_error("creating", path, error))?;
        // The header's own checksum: a damaged base would otherwise name "another checkpoint"
        // and the journal be passed over as already folded, its records lost without a word.
        let mut header = format!(
            "{}\n",
            serde_json::json!({ "base": base_checksum, "sha256": sha256_hex(base_checksum.as_bytes()) })
        );
        for record in initial {
            header.push_str(&encode_line(record)?);
        }
        file.write_all(header.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|error| io_error("writing", path, error))?;
        bytes_written.fetch_add(header.len() as u64, Ordering::Relaxed);
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
        let length = Arc::new(AtomicU64::new(header.len() as u64));
        let (sender, receiver) = mpsc::channel::<(String, Ack)>();
        let thread = {
            let length = length.clone();
            std::thread::Builder::new()
                .name("cairn-journal".to_owned())
                .spawn(move || write_batches(file, receiver, bytes_written, length, fence))
                .map_err(|error| io_error("starting a writer for", path, error))?
        };
        Ok(JournalFile {
            path: path.display().to_string(),
            sender: Some(sender),
            thread: Some(thread),
            length,
        })
    }

    /// Bytes in this journal so far.
    pub fn length(&self) -> u64 {
        self.length.load(Ordering::Relaxed)
    }

    /// Appends records; returns once they are on disk.
    pub async fn append(&self, records: Vec<JournalRecord>) -> Result<(), BackendError> {
        let mut lines = String::new();
        for record in &records {
            lines.push_str(&encode_line(record)?);
        }
        let (ack, done) = tokio::sync::oneshot::channel();
        let closed = || BackendError::format(format!("the journal `{}` is closed", self.path));
        self.sender
            .as_ref()
            .ok_or_else(closed)?
            .send((lines, ack))
            .map_err(|_| closed())?;
        done.await
            .map_err(|_| closed())?
            .map_err(|error| match error {
                BatchError::LockLost(stack) => BackendError::LockLost(stack),
                BatchError::Io(message) => {
                    BackendError::format(format!("appending to `{}`: {message}", self.path))
                }
            })
    }

    /// Stops the writer once everything queued is written.
    pub fn close(mut self) -> Result<(), BackendError> {
        self.sender.take();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            return Err(BackendError::format(format!(
                "the writer of `{}` panicked",
                self.path
            )));
        }
        Ok(())
    }
}

impl Drop for JournalFile {
    fn drop(&mut self) {
        self.sender.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn write_batches(
    mut file: fs_err::File,
    receiver: mpsc::Receiver<(String, Ack)>,
    bytes_written: Arc<AtomicU64>,
    length: Arc<AtomicU64>,
    fence: Fence,
) {
    // After a failed write the file may end in a partial line; writing more after it would
    // turn a torn tail into corruption in the middle, so every later append fails too.
    let mut failure: Option<String> = None;
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        while let Ok(more) = receiver.try_recv() {
            batch.push(more);
        }
        let result = match (&failure, fence()) {
            (Some(message), _) => Err(BatchError::Io(message.clone())),
            (None, Err(BackendError::LockLost(stack))) => Err(BatchError::LockLost(stack)),
            (None, Err(error)) => Err(BatchError::Io(error.to_string())),
            (None, Ok(())) => {
                let mut buffer = String::new();
                for (lines, _) in &batch {
                    buffer.push_str(lines);
                }
                let written = file
                    .write_all(buffer.as_bytes())
                    .and_then(|()| file.sync_data())
                    .map_err(|error| error.to_string());
                match &written {
                    Ok(()) => {
                        bytes_written.fetch_add(buffer.len() as u64, Ordering::Relaxed);
                        length.fetch_add(buffer.len() as u64, Ordering::Relaxed);
                    }
                    Err(message) => failure = Some(message.clone()),
                }
                written.map_err(BatchError::Io)
            }
        };
        for (_, ack) in batch {
            // The waiting step may have been abandoned (hard cancellation); nothing to tell it.
            let _ = ack.send(result.clone());
        }
    }
}

/// A journal as read back.
pub struct Journal {
    pub base_checksum: String,
    pub records: Vec<JournalRecord>,
}

#[derive(Deserialize)]
struct Header {
    base: String,
    /// Of `base`; absent in journals written before it was added.
    #[serde(default)]
    sha256: Option<String>,
}

impl Header {
    fn is_intact(&self) -> bool {
        self.sha256
            .as_ref()
            .is_none_or(|sum| *sum == sha256_hex(self.base.as_bytes()))
    }
}

#[derive(Deserialize)]
struct Line<'a> {
    sha256: String,
    #[serde(borrow)]
    record: &'a serde_json::value::RawValue,
}

/// Reads a journal; a torn or corrupt last line (a crash mid-append) is ignored, a corrupt line
/// before it is an error. `None` when there is no journal.
pub fn read_journal(path: &Path, stack: &str) -> Result<Option<Journal>, BackendError> {
    let Some(read) = read_journal_up_to_damage(path)? else {
        return Ok(None);
    };
    match (read.damage, read.base_checksum) {
        (Some(damage), _) => Err(damage.error(path, stack)),
        (None, Some(base_checksum)) => Ok(Some(Journal {
            base_checksum,
            records: read.records,
        })),
        // An unreadable header is always damage (see `read_journal_up_to_damage`).
        (None, None) => Ok(None),
    }
}

/// A journal read up to its first damaged line.
pub struct JournalPrefix {
    /// The checkpoint the journal applies to; `None` when its header is damaged.
    pub base_checksum: Option<String>,
    /// The intact records before the damage.
    pub records: Vec<JournalRecord>,
    /// The first damaged line, when one comes before the last line.
    pub damage: Option<Damage>,
}

/// Where a journal is damaged, and what can still be read after that point.
pub struct Damage {
    /// 1-based line number.
    pub line: usize,
    pub reason: &'static str,
    /// Lines from the damaged one to the end.
    pub tail_lines: usize,
    /// URNs that the readable records after the damage name, first mention first: what the
    /// damaged part may have recorded, for the user to check.
    pub tail_urns: Vec<String>,
}

impl Damage {
    pub fn location(&self, path: &Path) -> String {
        format!("{}:{}", path.display(), self.line)
    }

    fn error(&self, path: &Path, stack: &str) -> BackendError {
        BackendError::Corrupt {
            stack: stack.to_owned(),
            reason: format!("{}: {}", self.location(path), self.reason),
        }
    }
}

/// Reads a journal as far as it is intact. A torn or corrupt last line (a crash mid-append) is
/// not damage; a corrupt line before it is, and reading stops there, because a record after a
/// lost one may depend on what the lost one said. `None` when there is no journal.
pub fn read_journal_up_to_damage(path: &Path) -> Result<Option<JournalPrefix>, BackendError> {
    let text = match fs_err::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_error("reading", path, error)),
    };
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let Some(header_line) = lines.first() else {
        return Ok(None);
    };
    let header = serde_json::from_str::<Header>(header_line.trim_end())
        .ok()
        .filter(Header::is_intact);
    let Some(header) = header else {
        // A crash while creating the journal: nothing was recorded in it yet.
        if lines.len() == 1 {
            return Ok(None);
        }
        return Ok(Some(JournalPrefix {
            base_checksum: None,
            records: Vec::new(),
            damage: Some(damage_at(&lines, 0, "the header is not readable")),
        }));
    };
    let mut records = Vec::new();
    for (index, line) in lines.iter().enumerate().skip(1) {
        let is_last = index + 1 == lines.len();
        let parsed = if line.ends_with('\n') {
            parse_line(line.trim_end())
        } else {
            Err("the line is incomplete")
        };
        match parsed {
            Ok(record) => records.push(record),
            Err(_) if is_last => break,
            Err(reason) => {
                return Ok(Some(JournalPrefix {
                    base_checksum: Some(header.base),
                    records,
                    damage: Some(damage_at(&lines, index, reason)),
                }));
            }
        }
    }
    Ok(Some(JournalPrefix {
        base_checksum: Some(header.base),
        records,
        damage: None,
    }))
}

/// The damage at `lines[index]`, with the URNs the readable lines after it name.
fn damage_at(lines: &[&str], index: usize, reason: &'static str) -> Damage {
    let mut tail_urns: Vec<String> = Vec::new();
    let mut note = |urn: &str| {
        if !urn.is_empty() && !tail_urns.iter().any(|known| known == urn) {
            tail_urns.push(urn.to_owned());
        }
    };
    for line in &lines[index..] {
        match parse_line(line.trim_end()) {
            Ok(JournalRecord::Begin { resource, .. }) => note(&resource.urn),
            Ok(JournalRecord::End { removed, added, .. }) => {
                if let Some(key) = removed {
                    note(&key.urn);
                }
                if let Some(resource) = added {
                    note(&resource.urn);
                }
            }
            Err(_) => {}
        }
    }
    Damage {
        line: index + 1,
        reason,
        tail_lines: lines.len() - index,
        tail_urns,
    }
}

fn parse_line(line: &str) -> Result<JournalRecord, &'static str> {
    let parsed: Line<'_> =
        serde_json::from_str(line).map_err(|_| "the line is not a journal record")?;
    if sha256_hex(parsed.record.get().as_bytes()) != parsed.sha256 {
        return Err("the record's checksum does not match");
    }
    serde_json::from_str(parsed.record.get()).map_err(|_| "the record is malformed")
}
