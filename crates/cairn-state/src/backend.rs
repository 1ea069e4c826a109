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
    #[error("stack `{stack}` still has {count} resources")]
    StackHasResources { stack: String, count: usize },
    #[error("the state of stack `{stack}` is corrupt: {reason}")]
    Corrupt { stack: String, reason: String },
    #[error("{action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Format(String),
    #[error("{0}")]
    Secrets(#[from] cairn_secrets::SecretsError),
}

pub type BackendResult<T> = Result<T, BackendError>;

/// What `cairn stack ls` shows of one stack.
#[derive(Clone, Debug, PartialEq)]
pub struct StackSummary {
    pub stack: StackRef,
    /// Unix seconds of the last finished update.
    pub last_update: Option<i64>,
    pub resource_count: Option<usize>,
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

    /// Removes a stack. Without `force`, refuses while the stack has resources.
    async fn remove_stack(&self, stack: &StackRef, force: bool) -> BackendResult<()>;

    /// The stack's latest state: the last checkpoint with the journal of an unfinished update
    /// replayed on top (so steps that began and did not end are pending operations).
    /// `None` when the stack has never been updated.
    async fn load_deployment(&self, stack: &StackRef) -> BackendResult<Option<Deployment>>;

    /// Starts an update: returns the writer its steps are recorded through.
    async fn begin_update(
        &self,
        stack: &StackRef,
        kind: UpdateKind,
        metadata: UpdateMetadata,
    ) -> BackendResult<Box<dyn UpdateWriter>>;

    /// Updates, newest first.
    async fn history(&self, stack: &StackRef) -> BackendResult<Vec<UpdateInfo>>;

    /// Bytes this backend wrote since it was opened (for the benchmark).
    fn bytes_written(&self) -> u64;
}

/// Records one update. Dropping it without `finish` leaves the journal to be replayed at the
/// next load, which is exactly what a crash does.
#[async_trait]
pub trait UpdateWriter: Send + Sync {
    /// Appends records to the update's journal. When this returns, they are durable.
    async fn append(&self, records: Vec<JournalRecord>) -> BackendResult<()>;

    /// Writes the final checkpoint, closes the journal and records the update in history.
    async fn finish(
        self: Box<Self>,
        deployment: Deployment,
        result: UpdateResult,
        resource_changes: BTreeMap<String, usize>,
    ) -> BackendResult<()>;
}
