//! The `Backend` trait: stacks, their latest checkpoint, update journals and history.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::deployment::Deployment;
use crate::journal::JournalRecord;
use crate::stack_ref::StackRef;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("stack `{0}` already exists")]
    StackAlreadyExists(String),
    #[error("no stack named `{0}` found")]
    StackNotFound(String),
    #[error("stack `{stack}` still has {count} resources or pending operations")]
    StackHasResources { stack: String, count: usize },
    #[error("stack `{stack}` is locked by {holder}")]
    Locked { stack: String, holder: LockOwner },
    #[error("the state of stack `{stack}` is corrupt: {reason}")]
    Corrupt { stack: String, reason: String },
    #[error("{action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Data that cannot be encoded or decoded; `source` is the parser's error, when there is one.
    #[error("{message}")]
    Format {
        message: String,
        #[source]
        source: Option<ErrorSource>,
    },
    #[error("{0}")]
    InvalidName(String),
    #[error(
        "stack `{0}` has an unfinished update: if one is running, let it finish; if not, settle what it left with `cairn refresh --clear-pending` (after `cairn cancel` if the stack is still locked)"
    )]
    UpdateInProgress(String),
    /// The writer's lock was released (`cairn cancel`, or its file deleted) or is held by
    /// someone else now: it must write nothing more.
    #[error(
        "this process no longer holds the lock of stack `{0}` (was the update cancelled with `cairn cancel`?); nothing more was written"
    )]
    LockLost(String),
    /// The database refused or failed; `source` is the driver's error, when there is one.
    #[error("the database: {message}")]
    Database {
        message: String,
        #[source]
        source: Option<ErrorSource>,
    },
    #[error("{0}")]
    Secrets(#[from] cairn_secrets::SecretsError),
}

pub type BackendResult<T> = Result<T, BackendError>;

/// The error under a backend error, kept so that callers can look through it.
pub type ErrorSource = Box<dyn std::error::Error + Send + Sync>;

impl BackendError {
    /// A format error with nothing under it.
    pub fn format(message: impl Into<String>) -> BackendError {
        BackendError::Format {
            message: message.into(),
            source: None,
        }
    }

    /// A format error caused by `source` (whose text `message` already quotes).
    pub fn format_from(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> BackendError {
        BackendError::Format {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// A database error with nothing under it.
    pub fn database(message: impl Into<String>) -> BackendError {
        BackendError::Database {
            message: message.into(),
            source: None,
        }
    }

    /// A database error caused by `source` (whose text `message` already quotes).
    pub fn database_from(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> BackendError {
        BackendError::Database {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

/// Who holds a stack's lock: enough to find the process and judge whether it is alive.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LockOwner {
    pub pid: u32,
    pub host: String,
    pub user: String,
    /// The command line (`cairn up`).
    pub command: String,
    /// Unix seconds when the lock was taken.
    pub started: i64,
    /// Unix seconds of the holder's last sign of life.
    pub heartbeat: i64,
    /// Set by the backend when the holder is on this host and its process is gone.
    #[serde(default, skip_serializing)]
    pub is_stale: bool,
}

impl std::fmt::Display for LockOwner {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|duration| duration.as_secs() as i64)
            .unwrap_or(self.started);
        write!(
            formatter,
            "`{}` (pid {}, {}@{}), started {} ago",
            self.command,
            self.pid,
            self.user,
            self.host,
            describe_age(now - self.started)
        )?;
        if self.is_stale {
            write!(formatter, "; that process is gone, so the lock is stale")?;
        } else if now - self.heartbeat > SILENT_AFTER_SECONDS {
            write!(
                formatter,
                "; no sign of life for {}",
                describe_age(now - self.heartbeat)
            )?;
        }
        Ok(())
    }
}

/// A holder silent this long (its heartbeat comes every 5 s) is said to show no sign of life.
const SILENT_AFTER_SECONDS: i64 = 30;

/// "3s", "4m", "2h".
pub fn describe_age(seconds: i64) -> String {
    let seconds = seconds.max(0);
    match seconds {
        0..=119 => format!("{seconds}s"),
        120..=7199 => format!("{}m", seconds / 60),
        _ => format!("{}h", seconds / 3600),
    }
}

/// This machine's host name, as lock owners record it and backends compare it: one reader, so
/// that "the holder ran here" means the same everywhere.
pub fn local_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned())
}

/// Whether the holder of a lock ran on this host and its process is gone.
pub fn is_gone_here(owner: &LockOwner) -> bool {
    owner.host == local_host() && !std::path::Path::new(&format!("/proc/{}", owner.pid)).exists()
}

/// A held stack lock. Dropping it releases the lock.
pub trait StackLock: Send + Sync {
    /// The fencing token of this holding of the lock, unique to it. Writers made under the
    /// lock carry it, and the backend refuses their writes once the lock is released or
    /// held by anyone else, so an update that was cancelled while alive cannot overwrite the
    /// state of the update after it.
    fn token(&self) -> &str;
}

/// What `cairn stack ls` shows of one stack.
#[derive(Clone, Debug, PartialEq)]
pub struct StackSummary {
    pub stack: StackRef,
    /// Unix seconds of the last finished update.
    pub last_update: Option<i64>,
    pub resource_count: Option<usize>,
    /// Why the stack's state could not be read (a damaged journal, say): one damaged stack is
    /// listed with its problem, and does not hide the project's other stacks.
    pub problem: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpdateKind {
    Update,
    Preview,
    Refresh,
    Destroy,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateResult {
    InProgress,
    Succeeded,
    Failed,
    Cancelled,
}

/// Optional metadata the user and the environment attach to an update.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UpdateMetadata {
    pub message: String,
    pub environment: BTreeMap<String, String>,
}

/// One update in a stack's history (Pulumi's `UpdateInfo`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateInfo {
    pub kind: UpdateKind,
    pub start_time: i64,
    pub message: String,
    pub environment: BTreeMap<String, String>,
    pub result: UpdateResult,
    pub end_time: i64,
    #[serde(default)]
    pub resource_changes: BTreeMap<String, usize>,
    #[serde(default)]
    pub version: u64,
}

/// A journal damaged before its end, as `Backend::journal_damage` finds it and
/// `Backend::salvage_journal` settles it. A damaged record cannot be read, so nothing after it
/// can be applied safely: a later record may depend on what the lost one said.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JournalDamage {
    /// The file and line of the first damaged record.
    pub location: String,
    /// What is wrong with that line.
    pub reason: String,
    /// The intact records before the damage, which salvaging applies to the last checkpoint.
    pub kept_records: usize,
    /// The URNs of the operations those records began and did not finish: pending operations
    /// once salvaged, settled by `cairn refresh --clear-pending` as after any crash.
    pub pending: Vec<String>,
    /// Lines from the damaged one to the end of the journal.
    pub damaged_lines: usize,
    /// The URNs that the readable records in the damaged part name: what it may have recorded.
    pub damaged_urns: Vec<String>,
    /// Where salvaging moved the damaged journal (`None` before it did).
    pub moved_to: Option<String>,
}

/// A state backend. Implementations: `file://` (cairn-backend-file), later `postgres://`.
#[async_trait]
pub trait Backend: Send + Sync {
    /// The URL this backend was opened with (`file:///home/me/.cairn`).
    fn url(&self) -> &str;

    /// Who is logged in (`whoami`).
    async fn current_user(&self) -> BackendResult<String>;

    async fn create_stack(&self, stack: &StackRef) -> BackendResult<()>;

    async fn stack_exists(&self, stack: &StackRef) -> BackendResult<bool>;

    /// Stacks, optionally only those of one project.
    async fn list_stacks(&self, project: Option<&str>) -> BackendResult<Vec<StackSummary>>;

    /// Removes a stack, under its lock like any other writer (`BackendError::LockLost` when
    /// `lock` is not the stack's current lock). Without `force`, refuses while the stack has
    /// resources.
    async fn remove_stack(
        &self,
        stack: &StackRef,
        force: bool,
        lock: &dyn StackLock,
    ) -> BackendResult<()>;

    /// The stack's latest state: the last checkpoint with the journal of an unfinished update
    /// replayed on top (so steps that began and did not end are pending operations).
    /// `None` when the stack has never been updated.
    async fn load_deployment(&self, stack: &StackRef) -> BackendResult<Option<Deployment>>;

    /// Starts an update under `lock`: returns the writer its steps are recorded through. Every
    /// append and the final write check the lock's token first, and fail with
    /// `BackendError::LockLost` once it is no longer the stack's lock.
    async fn begin_update(
        &self,
        stack: &StackRef,
        kind: UpdateKind,
        metadata: UpdateMetadata,
        lock: &dyn StackLock,
    ) -> BackendResult<Box<dyn UpdateWriter>>;

    /// Updates, newest first.
    async fn history(&self, stack: &StackRef) -> BackendResult<Vec<UpdateInfo>>;

    /// A past checkpoint by update version (the last few are kept); `None` if not kept.
    async fn load_version(
        &self,
        stack: &StackRef,
        version: u64,
    ) -> BackendResult<Option<Deployment>>;

    /// Replaces the stack's state with `deployment` (`cairn stack import`).
    async fn import_deployment(
        &self,
        stack: &StackRef,
        deployment: Deployment,
    ) -> BackendResult<()>;

    /// Takes the stack's exclusive lock, or fails at once with `BackendError::Locked` naming
    /// the holder. The lock is held (and its heartbeat kept) until the returned guard drops.
    async fn lock_stack(
        &self,
        stack: &StackRef,
        owner: LockOwner,
    ) -> BackendResult<Box<dyn StackLock>>;

    /// Who holds the stack's lock, if anyone.
    async fn lock_holder(&self, stack: &StackRef) -> BackendResult<Option<LockOwner>>;

    /// Releases a lock whose holder died or is stuck (`cairn cancel`) and marks that holder's
    /// update cancelled in the history. Returns the holder it released.
    async fn cancel(&self, stack: &StackRef) -> BackendResult<Option<LockOwner>>;

    /// Renames a stack within its project, rewriting the URNs in its state and carrying its
    /// history, kept versions, tags and logs along, under the stack's lock (`LockLost` when
    /// `lock` is not it). Refused while an interrupted update's journal is unsettled.
    async fn rename_stack(
        &self,
        stack: &StackRef,
        new_name: &str,
        lock: &dyn StackLock,
    ) -> BackendResult<()>;

    /// The damage in the journal of the stack's interrupted update when it is damaged before
    /// its end (every load fails then); `None` when it is not. Backends that keep no journal
    /// file have none.
    async fn journal_damage(&self, stack: &StackRef) -> BackendResult<Option<JournalDamage>> {
        let _ = stack;
        Ok(None)
    }

    /// Salvages a journal damaged before its end, under `lock` (`LockLost` when it is not the
    /// stack's lock): the intact records before the damage are applied to the last checkpoint,
    /// operations they began and did not finish becoming pending operations, and the journal
    /// is moved aside, never deleted. `None` when there was no damage.
    async fn salvage_journal(
        &self,
        stack: &StackRef,
        lock: &dyn StackLock,
    ) -> BackendResult<Option<JournalDamage>> {
        let _ = (stack, lock);
        Ok(None)
    }

    /// The stack's tags (seed 000's `GetStackTags`), without the automatic ones.
    async fn stack_tags(&self, stack: &StackRef) -> BackendResult<BTreeMap<String, String>>;

    /// Sets one tag; name and value are checked as `validate_tag` says.
    async fn set_stack_tag(&self, stack: &StackRef, name: &str, value: &str) -> BackendResult<()>;

    /// Removes one tag (no error when it was not set).
    async fn remove_stack_tag(&self, stack: &StackRef, name: &str) -> BackendResult<()>;

    /// Keeps log lines of the stack's updates (`cairn logs`). Secrets are masked before this.
    async fn append_logs(&self, stack: &StackRef, entries: Vec<LogEntry>) -> BackendResult<()>;

    /// Log lines at or after `since_ms` (Unix milliseconds), of one resource when `urn` is
    /// given, oldest first.
    async fn logs(
        &self,
        stack: &StackRef,
        since_ms: Option<i64>,
        urn: Option<&str>,
    ) -> BackendResult<Vec<LogEntry>>;

    /// Bytes this backend wrote since it was opened (for the benchmark).
    fn bytes_written(&self) -> u64;
}

/// One line of a stack's log: what a provider logged about a resource, or what the engine did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    pub timestamp_ms: i64,
    /// The resource, when the line is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urn: Option<String>,
    /// `debug`, `info`, `warning` or `error`.
    pub severity: String,
    pub message: String,
}

impl LogEntry {
    /// Whether the entry passes `logs`' filters.
    pub fn matches(&self, since_ms: Option<i64>, urn: Option<&str>) -> bool {
        since_ms.is_none_or(|since| self.timestamp_ms >= since)
            && urn.is_none_or(|urn| self.urn.as_deref() == Some(urn))
    }
}

/// Pulumi's `ValidateStackProperties` rule for tags: names of 1 to 40 letters, digits, `-`,
/// `_`, `.` or `:`; values of at most 256 characters.
pub fn validate_tag(name: &str, value: &str) -> BackendResult<()> {
    if name.is_empty() || name.len() > 40 {
        return Err(BackendError::InvalidName(format!(
            "tag name `{name}` must be 1 to 40 characters long"
        )));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    {
        return Err(BackendError::InvalidName(format!(
            "tag name `{name}` may only contain letters, digits, `-`, `_`, `.` and `:`"
        )));
    }
    if value.chars().count() > 256 {
        return Err(BackendError::InvalidName(format!(
            "the value of tag `{name}` is longer than 256 characters"
        )));
    }
    Ok(())
}

/// A deployment's JSON with every URN of `stack` moved to `new_name` (Pulumi's stack rename
/// rewrites URNs, parents, dependencies and provider references alike). Stack and project
/// names cannot contain JSON escapes, so a textual rewrite of the URN prefix is exact.
pub fn rename_in_deployment(
    deployment: &crate::Deployment,
    stack: &StackRef,
    new_name: &str,
) -> BackendResult<crate::Deployment> {
    let text = serde_json::to_string(deployment).map_err(|error| {
        BackendError::format_from(format!("encoding the deployment: {error}"), error)
    })?;
    let old_prefix = format!("urn:pulumi:{}::{}::", stack.name, stack.project);
    let new_prefix = format!("urn:pulumi:{new_name}::{}::", stack.project);
    // The root stack resource is named `<project>-<stack>` and is renamed with the stack; its
    // URN always ends a JSON string, so the closing quote keeps `dev` from matching `dev2`.
    let old_root = format!(
        "{new_prefix}pulumi:pulumi:Stack::{}-{}\"",
        stack.project, stack.name
    );
    let new_root = format!(
        "{new_prefix}pulumi:pulumi:Stack::{}-{new_name}\"",
        stack.project
    );
    let renamed = text
        .replace(&old_prefix, &new_prefix)
        .replace(&old_root, &new_root);
    serde_json::from_str(&renamed).map_err(|error| {
        BackendError::format_from(format!("decoding the renamed deployment: {error}"), error)
    })
}

/// Records one update. Dropping it without `finish` leaves the journal to be replayed at the
/// next load, which is exactly what a crash does.
#[async_trait]
pub trait UpdateWriter: Send + Sync {
    /// Appends records to the update's journal. When this returns, they are durable. Fails
    /// with `BackendError::LockLost`, writing nothing, once the update's lock is gone.
    async fn append(&self, records: Vec<JournalRecord>) -> BackendResult<()>;

    /// Writes the final checkpoint, closes the journal and records the update in history.
    async fn finish(
        self: Box<Self>,
        deployment: Deployment,
        result: UpdateResult,
        resource_changes: BTreeMap<String, usize>,
    ) -> BackendResult<()>;
}
