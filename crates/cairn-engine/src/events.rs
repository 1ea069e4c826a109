//! Events the engine sends while it works, so the CLI can show progress, and the record of each
//! finished step.

use std::time::Duration;

use cairn_core::{PropertyMap, StepOp, Urn};

/// One finished (or, in a dry run, planned) step.
#[derive(Clone, Debug)]
pub struct StepRecord {
    pub op: StepOp,
    pub urn: Urn,
    pub type_: String,
    pub parent: Option<Urn>,
    /// Inputs before and after (for `--diff`).
    pub old_inputs: Option<PropertyMap>,
    pub new_inputs: Option<PropertyMap>,
    pub outputs: PropertyMap,
    pub changed_keys: Vec<String>,
    pub replace_keys: Vec<String>,
    pub error: Option<StepError>,
    pub duration: Duration,
}

impl StepRecord {
    pub fn new(op: StepOp, urn: Urn, type_: String, parent: Option<Urn>) -> StepRecord {
        StepRecord {
            op,
            urn,
            type_,
            parent,
            old_inputs: None,
            new_inputs: None,
            outputs: PropertyMap::new(),
            changed_keys: Vec::new(),
            replace_keys: Vec::new(),
            error: None,
            duration: Duration::ZERO,
        }
    }
}

/// Why a step failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureCause {
    /// The provider failed, refused the inputs, or did not answer within the time limit.
    Provider,
    /// The step's outcome could not be recorded in the stack's state.
    StateNotSaved,
    /// A cancellation interrupted the step.
    Cancelled,
    /// The program: the resource's inputs cannot be evaluated.
    Program,
    /// Cairn refused the step itself (a protected resource, an unknown value outside a
    /// preview).
    Refused,
    /// Something the step depends on failed, so it never ran.
    Blocked,
}

impl FailureCause {
    /// The name `--json` gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCause::Provider => "provider",
            FailureCause::StateNotSaved => "state-not-saved",
            FailureCause::Cancelled => "cancelled",
            FailureCause::Program => "program",
            FailureCause::Refused => "refused",
            FailureCause::Blocked => "blocked",
        }
    }
}

/// A failed step's error: why, and the message that says so (masked of every secret).
#[derive(Clone, Debug, PartialEq)]
pub struct StepError {
    pub cause: FailureCause,
    pub message: String,
}

impl StepError {
    pub fn new(cause: FailureCause, message: impl Into<String>) -> StepError {
        StepError {
            cause,
            message: message.into(),
        }
    }

    /// The provider failed or refused.
    pub fn provider(message: impl Into<String>) -> StepError {
        StepError::new(FailureCause::Provider, message)
    }

    /// The program asked for something that cannot be (an unknown type, a bad reference).
    pub fn program(message: impl Into<String>) -> StepError {
        StepError::new(FailureCause::Program, message)
    }
}

impl std::fmt::Display for StepError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.message)
    }
}

/// Progress, in the order it happens.
#[derive(Clone, Debug)]
pub enum EngineEvent {
    /// A step is about to run.
    StepStarted { op: StepOp, urn: Urn, type_: String },
    /// A step finished (or failed: `record.error`).
    StepFinished(Box<StepRecord>),
    /// Something worth telling the user that is not a step.
    Warning(String),
    /// A provider logged a line about a resource (secrets already masked as `[secret]`).
    Log {
        urn: Urn,
        severity: cairn_provider::LogSeverity,
        message: String,
    },
}
