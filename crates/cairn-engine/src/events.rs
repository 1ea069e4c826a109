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
    pub error: Option<String>,
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
