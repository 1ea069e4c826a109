//! What a run comes to: a `RunResult` when the run came to an end Cairn can name (the script
//! finished, a limit was hit, it was cancelled), a `RunError` when the infrastructure failed.

use std::time::Duration;

use cairn_compute::DriverError;
use serde::Serialize;

use crate::limits::format_duration;

/// Why a run ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "kind"
)]
pub enum Reason {
    /// The script ran to its end.
    Finished,
    /// The run took longer than the hard timeout (instance start included).
    HardTimeout { after_ms: u64 },
    /// The script wrote nothing for this long.
    LogSilence { after_ms: u64 },
    /// The script wrote more than the cap; the log kept its head and tail.
    LogCap { cap_bytes: u64 },
    /// Cancelled (Ctrl-C, the caller's token).
    Cancelled,
}

impl Reason {
    /// The reason's name, as `--json` gives it.
    pub fn kind(&self) -> &'static str {
        match self {
            Reason::Finished => "finished",
            Reason::HardTimeout { .. } => "hardTimeout",
            Reason::LogSilence { .. } => "logSilence",
            Reason::LogCap { .. } => "logCap",
            Reason::Cancelled => "cancelled",
        }
    }

    /// One line saying why the run ended, for stderr.
    pub fn message(&self) -> String {
        let duration = |ms: &u64| format_duration(Duration::from_millis(*ms));
        match self {
            Reason::Finished => "the script finished".to_owned(),
            Reason::HardTimeout { after_ms } => format!(
                "the run was stopped: it took longer than its hard timeout of {}",
                duration(after_ms)
            ),
            Reason::LogSilence { after_ms } => format!(
                "the run was stopped: the script wrote nothing for {}",
                duration(after_ms)
            ),
            Reason::LogCap { cap_bytes } => format!(
                "the run errored: its log passed the cap of {cap_bytes} bytes (the middle was left out)"
            ),
            Reason::Cancelled => "the run was cancelled".to_owned(),
        }
    }
}

/// Travis's `RunResult`, with the reason: `exit_code` is the script's when it is known (a
/// script that ended after SIGTERM has one too, but the run did not complete).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunResult {
    pub run_id: String,
    /// Whether the script ran to its end on its own.
    pub completed: bool,
    pub exit_code: Option<i64>,
    pub reason: Reason,
    /// Bytes the script wrote, kept in the log or not.
    pub log_bytes: u64,
}

impl RunResult {
    /// Passed: completed, exit code 0, within every limit.
    pub fn passed(&self) -> bool {
        self.completed && self.reason == Reason::Finished && self.exit_code == Some(0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("starting an instance: {0}")]
    Start(#[source] DriverError),
    #[error("uploading the script: {0}")]
    Upload(#[source] DriverError),
    #[error("running the script: {0}")]
    Run(#[source] DriverError),
    /// Travis's `ErrStaleVM`: an instance runs one script, on a clean slate.
    #[error("instance `{0}` already ran a script (a stale instance); a run needs a fresh one")]
    Stale(String),
    #[error("instance `{0}` has no script uploaded")]
    NoScript(String),
    #[error(
        "stopping the instance of run `{run_id}`: {error}; find what is left with `cairn instance ls --tag cairn.run={run_id}`"
    )]
    Stop {
        run_id: String,
        #[source]
        error: DriverError,
    },
    #[error("the run's working directory `{path}`: {error}")]
    WorkDir {
        path: std::path::PathBuf,
        #[source]
        error: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_serializes_in_camel_case() {
        let result = RunResult {
            run_id: "r1".to_owned(),
            completed: false,
            exit_code: None,
            reason: Reason::HardTimeout { after_ms: 3000 },
            log_bytes: 12,
        };
        let json = serde_json::to_value(&result).unwrap_or_default();
        assert_eq!(
            json,
            serde_json::json!({
                "runId": "r1", "completed": false, "exitCode": null,
                "reason": { "kind": "hardTimeout", "afterMs": 3000 }, "logBytes": 12,
            })
        );
        assert_eq!(result.reason.kind(), "hardTimeout");
        assert!(!result.passed());
    }
}
