//! Cairn's operations layer, between the front ends (the CLI, compute groups, tests) and the
//! engine, as cargo's `ops` is between its commands and its core:
//!
//! - `Project::load`: the one reader of a project file outside the program loader;
//! - `Plugins`: the providers an operation uses, plugin processes owned as a value;
//! - `StackSession`: an opened stack (backend, crypter, configuration) with its lock;
//! - `run`: the stack operations (preview, update, refresh, destroy, import) with their
//!   preview → approve → apply flow, reporting through a `Reporter` and stopping on a
//!   `Cancellation`;
//! - `StateEditor`: direct edits of a stack's state (delete, unprotect, repair), each a plan
//!   and its application under one hold of the stack's lock;
//! - `admin`: cancelling a stack's update, removing and renaming a stack.
//!
//! Nothing here prints, prompts or reads the environment: the front end resolves the workspace
//! and renders what the reporter is told.

pub mod admin;
pub mod edit;
mod files;
pub mod plugins;
pub mod project;
pub mod run;
pub mod stack;
mod yaml;

use std::sync::Arc;

pub use admin::{CancelOutcome, RemovePlan, StackFiles};
pub use edit::{DeletePlan, RepairChange, RepairOutcome, RepairPlan, StateEditor, UnprotectPlan};
pub use files::DiskFiles;
pub use plugins::{PluginSearch, Plugins, PluginsError, builtin_registry};
pub use project::{ConfigDeclaration, Project, ProjectError};
pub use run::{
    Failure, Phase, PhaseStats, Reporter, RunOutcome, RunRequest, StackOperation, run,
    unix_now_millis,
};
pub use stack::{Caller, ConfigEntry, PassphraseSource, StackSession, lock_stack};
pub use yaml::yaml_to_json;

use cairn_program::Program;
use cairn_provider::ProviderRegistry;

/// Why an operation did not run to its end. A step that fails is not an error here: it is in
/// the outcome (`RunOutcome::failure`).
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The user's input is wrong; nothing was changed.
    #[error("{0}")]
    Input(String),
    /// The program has errors, already given to the reporter as diagnostics.
    #[error("the program has errors")]
    Program,
    /// The operation cannot run now (the stack is locked, pending operations are unsettled,
    /// it was interrupted before it began); nothing was changed.
    #[error("{0}")]
    Refused(String),
    #[error("confirmation declined, not proceeding")]
    Declined,
    #[error("decrypting the config value `{key}`: {error}")]
    ConfigSecret {
        key: String,
        #[source]
        error: cairn_secrets::SecretsError,
    },
    #[error(transparent)]
    Project(#[from] ProjectError),
    #[error(transparent)]
    Plugins(#[from] PluginsError),
    #[error(transparent)]
    Backend(#[from] cairn_state::BackendError),
    #[error(transparent)]
    State(#[from] cairn_state::persister::StateError),
    #[error(transparent)]
    Secrets(#[from] cairn_secrets::SecretsError),
    #[error(transparent)]
    Engine(#[from] cairn_engine::EngineError),
    /// The front end's files that move with a stack (`admin::StackFiles`).
    #[error(transparent)]
    Files(std::io::Error),
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl OpsError {
    /// Whether the error is the user's input (exit code 2 in PRODUCT.md) rather than a failed
    /// operation (1): a bad program, project or name, a stack that does not exist, secrets
    /// that do not open.
    pub fn is_bad_input(&self) -> bool {
        use cairn_state::BackendError;
        use cairn_state::persister::StateError;
        let is_bad_backend_input = |error: &BackendError| {
            matches!(
                error,
                BackendError::InvalidName(_)
                    | BackendError::StackNotFound(_)
                    | BackendError::Secrets(_)
            )
        };
        match self {
            OpsError::Input(_)
            | OpsError::Program
            | OpsError::ConfigSecret { .. }
            | OpsError::Project(_)
            | OpsError::Secrets(_) => true,
            OpsError::Backend(error) => is_bad_backend_input(error),
            OpsError::State(StateError::Secrets(_)) => true,
            OpsError::State(StateError::Backend(error)) => is_bad_backend_input(error),
            OpsError::Engine(cairn_engine::EngineError::State(StateError::Secrets(_))) => true,
            _ => false,
        }
    }
}

/// Loads and checks the program of the project in `project_dir` against `registry`'s schemas
/// (a project file that does not parse is reported here, with its position). `stack_config_keys` are
/// the keys of the stack's config file, which the program may read undeclared. Every
/// diagnostic goes to the reporter; any error fails the load.
pub fn load_program(
    project_dir: &std::path::Path,
    registry: &ProviderRegistry,
    stack_config_keys: &[String],
    reporter: &dyn Reporter,
) -> Result<Arc<Program>, OpsError> {
    let loaded = cairn_program::load_project(project_dir, &DiskFiles, registry, stack_config_keys);
    if !loaded.diagnostics.is_empty() {
        reporter.diagnostics(&loaded.diagnostics);
    }
    match loaded.program {
        // Warnings are not errors, but the loader gives none: any diagnostic fails the load.
        Some(program) if loaded.diagnostics.is_empty() => Ok(Arc::new(program)),
        _ => Err(OpsError::Program),
    }
}
