//! The deployment engine: turns a checked program and a stack's old snapshot into steps, runs
//! them on a parallel executor, and records every step's intent and outcome through the state
//! persister.
//!
//! Architecture invariant: the engine does no I/O of its own. It reaches providers through
//! `cairn_provider::Provider`, state through `cairn_state::Persister`, files through
//! `cairn_program::FileSource`, and other stacks through `StackReferences`. It never prints:
//! it sends `EngineEvent`s and returns a `DeployOutcome` for the CLI to render.

mod custom_resource;
mod delete;
mod dependencies;
mod deploy;
mod eval_context;
mod events;
mod executor;
pub mod graph;
pub mod plan;
mod provider_calls;
mod provider_instances;
mod providers;
mod refresh;
mod resource_plan;
mod resources;
mod run_state;
mod secrets;
mod stack_resources;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use cairn_core::{PropertyMap, Snapshot, StepOp, Urn, Value};
use cairn_program::{FileSource, Program};
use cairn_provider::ProviderRegistry;
use tokio_util::sync::CancellationToken;

pub use dependencies::sort_by_dependencies;
pub use deploy::deploy;
pub use events::{EngineEvent, FailureCause, StepError, StepRecord};

pub use providers::is_default_provider;

/// What to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Bring the stack's resources in line with the program (`up`, `preview`).
    Update,
    /// Read live state and record drift (`refresh`).
    Refresh,
    /// Delete every resource (`destroy`).
    Destroy,
}

/// How to do it.
#[derive(Clone, Debug)]
pub struct DeployOptions {
    pub operation: Operation,
    /// Plan only: no provider side effect and nothing persisted.
    pub dry_run: bool,
    /// When non-empty, only these resources are changed.
    pub targets: Vec<Urn>,
    /// At most this many provider operations at once.
    pub parallel: usize,
    /// Refresh the old state from the providers before planning.
    pub refresh: bool,
    /// Resolve the pending operations of an interrupted update by asking the providers
    /// whether they happened (`refresh --clear-pending`).
    pub clear_pending: bool,
}

/// Cancellation: `graceful` stops new steps from starting; `hard` abandons in-flight steps,
/// which stay recorded as pending operations.
#[derive(Clone, Debug, Default)]
pub struct Cancellation {
    pub graceful: CancellationToken,
    pub hard: CancellationToken,
}

/// Reads other stacks' outputs, for `pulumi:pulumi:StackReference` and `fn::stackReference`.
pub trait StackReferences: Send + Sync {
    fn outputs(&self, stack: &str) -> Result<PropertyMap, String>;
}

/// Everything the engine works from.
pub struct DeployRequest {
    pub stack: String,
    pub project: String,
    pub organization: String,
    /// The directory holding the program; relative paths resolve against it.
    pub program_dir: PathBuf,
    /// The program; `None` for `destroy` and `refresh`, which work from the old state alone.
    pub program: Option<Arc<Program>>,
    /// Resolved configuration, keyed as `cairn_program::resolve_config` returns it.
    pub config: BTreeMap<String, Value>,
    /// The stack's state before the operation (shared, as a preview and the update that
    /// follows it start from the same one).
    pub old: Arc<Snapshot>,
    pub providers: Arc<ProviderRegistry>,
    pub files: Arc<dyn FileSource + Send + Sync>,
    pub stack_references: Arc<dyn StackReferences>,
}

/// What happened.
#[derive(Clone, Debug, Default)]
pub struct DeployOutcome {
    /// Every step, in the order it finished.
    pub steps: Vec<StepRecord>,
    /// The stack's outputs after the operation.
    pub outputs: PropertyMap,
    /// How many steps of each kind ran (the stack resource included, default providers not).
    pub changes: BTreeMap<StepOp, usize>,
    /// Failures that are no step's (a variable or an output that cannot be evaluated), in the
    /// order they happened; the failed steps carry their own errors.
    pub program_errors: Vec<String>,
    /// Some failure was an error in the program found while evaluating it (a variable, an
    /// output or a resource's properties that cannot be evaluated), not a failure of a
    /// resource's provider.
    pub has_program_error: bool,
    /// The resulting snapshot (for `dry_run`, what it would be).
    pub snapshot: Snapshot,
    /// The operation was stopped by a cancellation before it finished.
    pub cancelled: bool,
    /// Resources and variables that never ran because something they depend on failed.
    pub blocked: Vec<Blocked>,
}

/// A resource (with its URN) or a variable that a failure kept from running.
#[derive(Clone, Debug, PartialEq)]
pub struct Blocked {
    pub name: String,
    pub urn: Option<Urn>,
}

impl DeployOutcome {
    /// Whether a step failed or the program could not be evaluated.
    pub fn has_failed(&self) -> bool {
        !self.program_errors.is_empty() || self.failed_steps().next().is_some()
    }

    /// The steps that failed, in the order they finished: each names its resource, its
    /// operation and, in its `StepError`, why.
    pub fn failed_steps(&self) -> impl Iterator<Item = &StepRecord> {
        self.steps.iter().filter(|step| step.error.is_some())
    }

    /// Counts keyed by Pulumi's names (`create`, `same`, ...), for history and `--json`.
    pub fn change_counts(&self) -> BTreeMap<String, usize> {
        self.changes
            .iter()
            .map(|(op, count)| (op.verb().to_owned(), *count))
            .collect()
    }
}

/// Errors that stop an operation as a whole (a single resource's failure is recorded in
/// `DeployOutcome::errors` instead).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("saving state: {0}")]
    State(#[from] cairn_state::persister::StateError),
    #[error("{0}")]
    Refused(String),
}

#[cfg(test)]
mod tests;
