//! The stack operations: preview, update, refresh, destroy and import. Each is a preview
//! (unless skipped), an approval, then the real run, as in Pulumi. An operation owns what a
//! run needs around the engine: the stack's lock, the persister that journals the update, the
//! log lines kept for `cairn logs`, and other stacks' outputs. What the user sees goes out
//! through a `Reporter`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_core::{Snapshot, StepOp, Urn};
use cairn_engine::{
    Cancellation, DeployOptions, DeployOutcome, DeployRequest, EngineError, EngineEvent, Operation,
};
use cairn_program::{Diagnostic, Program, ResourceDecl};
use cairn_provider::ProviderRegistry;
use cairn_state::{Backend, LogEntry, Persister, StackLock, StackRef, UpdateKind, UpdateMetadata};

use crate::OpsError;
use crate::files::DiskFiles;
use crate::stack::StackSession;

/// Which stack operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackOperation {
    Update,
    Refresh,
    Destroy,
}

impl StackOperation {
    /// "update", "refresh", "destroy".
    pub fn noun(self) -> &'static str {
        match self {
            StackOperation::Update => "update",
            StackOperation::Refresh => "refresh",
            StackOperation::Destroy => "destroy",
        }
    }

    /// "Updating", "Refreshing", "Destroying".
    pub fn doing(self) -> &'static str {
        match self {
            StackOperation::Update => "Updating",
            StackOperation::Refresh => "Refreshing",
            StackOperation::Destroy => "Destroying",
        }
    }

    fn engine(self) -> Operation {
        match self {
            StackOperation::Update => Operation::Update,
            StackOperation::Refresh => Operation::Refresh,
            StackOperation::Destroy => Operation::Destroy,
        }
    }

    fn update_kind(self) -> UpdateKind {
        match self {
            StackOperation::Update => UpdateKind::Update,
            StackOperation::Refresh => UpdateKind::Refresh,
            StackOperation::Destroy => UpdateKind::Destroy,
        }
    }
}

/// What to run and how far to go.
#[derive(Clone, Debug)]
pub struct RunRequest {
    pub operation: StackOperation,
    pub targets: Vec<Urn>,
    pub parallel: usize,
    /// Refresh the state from the providers first (`up --refresh`).
    pub refresh: bool,
    /// Settle pending operations (`refresh --clear-pending`).
    pub clear_pending: bool,
    /// Only preview: take no lock and change nothing.
    pub preview_only: bool,
    pub skip_preview: bool,
    /// The update's message, for history.
    pub message: Option<String>,
    /// Where the update ran from (git metadata), for history.
    pub environment: BTreeMap<String, String>,
    /// A resource added to the program for this run only (`cairn import`).
    pub extra_resource: Option<ResourceDecl>,
}

impl RunRequest {
    pub fn new(operation: StackOperation) -> RunRequest {
        RunRequest {
            operation,
            targets: Vec::new(),
            parallel: 16,
            refresh: false,
            clear_pending: false,
            preview_only: false,
            skip_preview: false,
            message: None,
            environment: BTreeMap::new(),
            extra_resource: None,
        }
    }
}

/// A run of the engine within an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The dry run; `then_apply` when the real run follows it.
    Preview {
        then_apply: bool,
    },
    Apply,
}

impl Phase {
    pub fn is_preview(self) -> bool {
        matches!(self, Phase::Preview { .. })
    }
}

/// What a finished phase cost.
#[derive(Clone, Copy, Debug)]
pub struct PhaseStats {
    pub elapsed: Duration,
    /// Bytes the backend wrote during the operation (the real run only).
    pub bytes_written: Option<u64>,
}

/// Where an operation's progress goes: the CLI renders it, a test records it.
pub trait Reporter: Send + Sync {
    /// The program's diagnostics, warnings and errors alike.
    fn diagnostics(&self, diagnostics: &[Diagnostic]);
    fn warning(&self, message: &str);
    fn phase_started(&self, operation: StackOperation, phase: Phase, stack: &str);
    /// An engine event, in the order it happened.
    fn event(&self, phase: Phase, event: &EngineEvent);
    fn phase_finished(&self, phase: Phase, outcome: &DeployOutcome, stats: &PhaseStats);
    /// Whether to go on after the preview. `Err` when nobody could be asked.
    fn approve(&self, question: &str) -> Result<bool, String>;
}

/// Why a finished operation counts as failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The program could not be evaluated (a bad reference, a variable that fails): the
    /// user's input, whatever else happened.
    Program,
    /// A resource's step failed.
    Steps,
    /// A cancellation stopped it.
    Cancelled,
}

impl Failure {
    /// How `outcome` failed, if it did.
    pub fn of(outcome: &DeployOutcome) -> Option<Failure> {
        if outcome.has_program_error {
            Some(Failure::Program)
        } else if outcome.has_failed() {
            Some(Failure::Steps)
        } else if outcome.cancelled {
            Some(Failure::Cancelled)
        } else {
            None
        }
    }

    /// The exit code PRODUCT.md gives it: 2 for the user's input, 1 for a failed operation.
    pub fn exit_code(self) -> u8 {
        match self {
            Failure::Program => 2,
            Failure::Steps | Failure::Cancelled => 1,
        }
    }
}

/// The result of an operation: the last phase's outcome, and whether it failed.
#[derive(Debug)]
pub struct RunOutcome {
    pub outcome: DeployOutcome,
    /// Which phase the outcome is of (a preview that failed or was all that was asked).
    pub phase: Phase,
    pub failure: Option<Failure>,
}

/// Runs `request` on `session`'s stack with `program` (none for refresh and destroy, which
/// work from the state) and `providers`.
pub async fn run(
    session: &StackSession,
    program: Option<Arc<Program>>,
    providers: Arc<ProviderRegistry>,
    request: RunRequest,
    reporter: Arc<dyn Reporter>,
    cancellation: Cancellation,
) -> Result<RunOutcome, OpsError> {
    let prepared = Prepared::new(session, program, providers, &request, reporter.as_ref()).await?;
    let stack = session.stack.name.clone();
    let options = DeployOptions {
        operation: request.operation.engine(),
        dry_run: false,
        targets: request.targets.clone(),
        parallel: request.parallel,
        refresh: request.refresh,
        clear_pending: request.clear_pending,
    };
    if request.preview_only || !request.skip_preview {
        let phase = Phase::Preview {
            then_apply: !request.preview_only,
        };
        reporter.phase_started(request.operation, phase, &stack);
        let started = Instant::now();
        let dry_run = DeployOptions {
            dry_run: true,
            ..options.clone()
        };
        let preview = prepared
            .run_engine(dry_run, None, &reporter, phase, &cancellation)
            .await?;
        let stats = PhaseStats {
            elapsed: started.elapsed(),
            bytes_written: None,
        };
        reporter.phase_finished(phase, &preview, &stats);
        let failure = Failure::of(&preview);
        if request.preview_only || failure.is_some() {
            return Ok(RunOutcome {
                outcome: preview,
                phase,
                failure,
            });
        }
        let question = format!("Do you want to perform this {}?", request.operation.noun());
        match reporter.approve(&question) {
            Ok(true) => {}
            Ok(false) => return Err(OpsError::Declined),
            Err(message) => return Err(OpsError::Input(message)),
        }
        if cancellation.graceful.is_cancelled() {
            return Err(OpsError::Refused(
                "interrupted before the update began; nothing was changed".to_owned(),
            ));
        }
    }
    reporter.phase_started(request.operation, Phase::Apply, &stack);
    let started = Instant::now();
    let update = Update {
        kind: request.operation.update_kind(),
        metadata: UpdateMetadata {
            message: request.message.clone().unwrap_or_default(),
            environment: request.environment.clone(),
        },
    };
    let outcome = prepared
        .run_engine(
            options,
            Some(update),
            &reporter,
            Phase::Apply,
            &cancellation,
        )
        .await?;
    let stats = PhaseStats {
        elapsed: started.elapsed(),
        bytes_written: Some(session.backend.bytes_written()),
    };
    reporter.phase_finished(Phase::Apply, &outcome, &stats);
    let failure = Failure::of(&outcome);
    Ok(RunOutcome {
        outcome,
        phase: Phase::Apply,
        failure,
    })
}

/// The history record of a real run.
struct Update {
    kind: UpdateKind,
    metadata: UpdateMetadata,
}

/// Everything a run needs, loaded once and shared by its preview and its real run.
struct Prepared<'a> {
    session: &'a StackSession,
    program: Option<Arc<Program>>,
    config: BTreeMap<String, cairn_core::Value>,
    old: Arc<Snapshot>,
    providers: Arc<ProviderRegistry>,
    program_dir: PathBuf,
    /// Held for the whole operation when it changes the stack; the update's writes are fenced
    /// by it.
    lock: Option<Box<dyn StackLock>>,
}

impl<'a> Prepared<'a> {
    async fn new(
        session: &'a StackSession,
        program: Option<Arc<Program>>,
        providers: Arc<ProviderRegistry>,
        request: &RunRequest,
        reporter: &dyn Reporter,
    ) -> Result<Prepared<'a>, OpsError> {
        let mut program = program;
        if let (Some(extra), Some(program)) = (&request.extra_resource, &mut program) {
            Arc::make_mut(program).resources.push(extra.clone());
        }
        // The lock comes before reading state, so what is read is what no one else is changing.
        let changes_stack = !request.preview_only;
        let lock = if changes_stack {
            Some(session.lock().await?)
        } else {
            None
        };
        // The stack's secrets are unlocked before anything changes, as Pulumi asks for the
        // passphrase up front: found missing at the first secret output, the resource would be
        // created and then could not be recorded. A preview needs them only for secrets in
        // state, and asks when it meets one.
        if changes_stack {
            session.crypter.encrypt("").map_err(|error| match error {
                cairn_secrets::SecretsError::Unavailable(message) => OpsError::Input(message),
                other => other.into(),
            })?;
        }
        let config = match &program {
            Some(program) => {
                let stack_values = session.config_values()?;
                cairn_program::resolve_config(program, &stack_values).map_err(|diagnostics| {
                    reporter.diagnostics(&diagnostics);
                    OpsError::Program
                })?
            }
            None => BTreeMap::new(),
        };
        let old = session.snapshot().await?;
        if !old.pending_operations.is_empty() {
            let message = pending_message(session, &old);
            // Running on would make new copies of what may already exist, and settling the
            // pending operations afterwards could no longer tell the copies apart (Pulumi
            // refuses too). A preview and a refresh only look.
            let refuses = changes_stack && request.operation != StackOperation::Refresh;
            if refuses {
                return Err(OpsError::Refused(message));
            }
            reporter.warning(&message);
        }
        let program_dir = program.as_ref().map_or_else(
            || session.project_dir.clone(),
            |program| program.source_dir.clone(),
        );
        Ok(Prepared {
            session,
            program,
            config,
            old: Arc::new(old),
            providers,
            program_dir,
            lock,
        })
    }

    fn request(&self) -> DeployRequest {
        DeployRequest {
            stack: self.session.stack.name.clone(),
            project: self.session.project.clone(),
            organization: self.session.stack.organization.clone(),
            program_dir: self.program_dir.clone(),
            program: self.program.clone(),
            config: self.config.clone(),
            old: self.old.clone(),
            providers: self.providers.clone(),
            files: Arc::new(DiskFiles),
            stack_references: self.session.references(),
        }
    }

    /// Runs the engine once: journaled through a persister when `update` is given, with its
    /// events sent to the reporter and its log lines kept in the backend as it goes.
    async fn run_engine(
        &self,
        options: DeployOptions,
        update: Option<Update>,
        reporter: &Arc<dyn Reporter>,
        phase: Phase,
        cancellation: &Cancellation,
    ) -> Result<DeployOutcome, OpsError> {
        let backend = &self.session.backend;
        let stack = &self.session.stack;
        let persister = match update {
            Some(update) => {
                let lock = self
                    .lock
                    .as_deref()
                    .ok_or(OpsError::Internal("an update must hold the stack's lock"))?;
                let writer = backend
                    .begin_update(stack, update.kind, update.metadata, lock)
                    .await?;
                Some(Persister::new(writer, self.session.crypter.clone()))
            }
            None => None,
        };
        let keeps_logs = persister.is_some();
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
        let pending_logs: Arc<Mutex<Vec<LogEntry>>> = Arc::default();
        let collected = pending_logs.clone();
        let forwarded = reporter.clone();
        let progress = tokio::spawn(async move {
            while let Some(event) = receiver.recv().await {
                forwarded.event(phase, &event);
                if keeps_logs
                    && let Some(entry) = log_entry_of(&event)
                    && let Ok(mut logs) = collected.lock()
                {
                    logs.push(entry);
                }
            }
        });
        // Log lines reach the backend while the update runs, so `cairn logs --follow` sees them.
        let flusher = keeps_logs.then(|| {
            let backend = backend.clone();
            let stack = stack.clone();
            let pending = pending_logs.clone();
            let reporter = reporter.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(LOG_FLUSH_INTERVAL).await;
                    flush_logs(backend.as_ref(), &stack, &pending, reporter.as_ref()).await;
                }
            })
        });
        let outcome = cairn_engine::deploy(
            self.request(),
            options,
            persister,
            sender,
            cancellation.clone(),
        )
        .await;
        // The engine dropped its sender, so the progress task ends once it has passed on
        // everything.
        let _ = progress.await;
        if let Some(flusher) = flusher {
            flusher.abort();
            flush_logs(backend.as_ref(), stack, &pending_logs, reporter.as_ref()).await;
        }
        match outcome {
            Ok(outcome) => Ok(outcome),
            Err(EngineError::Refused(message)) => Err(OpsError::Refused(message)),
            Err(error) => Err(error.into()),
        }
    }
}

fn pending_message(session: &StackSession, old: &Snapshot) -> String {
    let mut message = format!(
        "the last update of stack `{}` did not finish: {} operations may or may not have happened:",
        session.stack.name,
        old.pending_operations.len()
    );
    for operation in &old.pending_operations {
        message.push_str(&format!(
            "\n    {} {}",
            operation.kind.as_str(),
            operation.resource.urn
        ));
    }
    message.push_str(&format!(
        "\nhelp: run `{}` to ask the providers what happened and record it",
        session.clear_pending_command
    ));
    message
}

/// How often log lines collected during an update are written to the backend.
const LOG_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// What `cairn logs` keeps of an engine event: provider log lines, and each step's outcome.
fn log_entry_of(event: &EngineEvent) -> Option<LogEntry> {
    let timestamp_ms = unix_now_millis();
    match event {
        EngineEvent::Log {
            urn,
            severity,
            message,
        } => Some(LogEntry {
            timestamp_ms,
            urn: Some(urn.to_string()),
            severity: severity.as_str().to_owned(),
            message: message.clone(),
        }),
        EngineEvent::StepFinished(record)
            if record.op != StepOp::Same && !cairn_engine::is_default_provider(&record.urn) =>
        {
            let (severity, message) = match &record.error {
                Some(error) => (
                    "error",
                    format!("{} failed: {error}", record.op.progressive()),
                ),
                None => (
                    "info",
                    format!(
                        "{} in {:.2}s",
                        record.op.past_tense(),
                        record.duration.as_secs_f64()
                    ),
                ),
            };
            Some(LogEntry {
                timestamp_ms,
                urn: Some(record.urn.to_string()),
                severity: severity.to_owned(),
                message,
            })
        }
        EngineEvent::Warning(message) => Some(LogEntry {
            timestamp_ms,
            urn: None,
            severity: "warning".to_owned(),
            message: message.clone(),
        }),
        _ => None,
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|duration| duration.as_millis() as i64)
        .unwrap_or(0)
}

/// Writes the collected log lines. Logs are a convenience: failing to keep them is reported,
/// never a reason to fail the update.
async fn flush_logs(
    backend: &dyn Backend,
    stack: &StackRef,
    pending: &Mutex<Vec<LogEntry>>,
    reporter: &dyn Reporter,
) {
    let entries = match pending.lock() {
        Ok(mut pending) => std::mem::take(&mut *pending),
        Err(_) => return,
    };
    if entries.is_empty() {
        return;
    }
    if let Err(error) = backend.append_logs(stack, entries).await {
        reporter.warning(&format!("could not keep the update's log lines: {error}"));
    }
}
