//! `cairn preview`, `up`, `refresh` and `destroy`: resolve the stack, load the program and its
//! configuration, run the engine (a dry run first, then for real once confirmed), render.

use std::sync::Arc;
use std::time::Instant;

use cairn_core::{PropertyMap, Snapshot, StepOp, Urn};
use cairn_engine::{
    Cancellation, DeployOptions, DeployOutcome, DeployRequest, EngineEvent, Operation,
    StackReferences,
};
use cairn_state::{LogEntry, Persister, StackRef, UpdateKind, UpdateMetadata};

use crate::cli::{DeployArgs, DestroyArgs, ImportArgs, RefreshArgs};
use crate::commands::{self, StackContext, render};
use crate::output;
use crate::workspace::Workspace;

/// Everything an operation needs, loaded once and shared by its preview and its update.
struct Prepared {
    context: StackContext,
    project: String,
    program: Option<Arc<cairn_program::Program>>,
    config: std::collections::BTreeMap<String, cairn_core::Value>,
    old: Arc<Snapshot>,
    providers: Arc<cairn_provider::ProviderRegistry>,
    /// Held for the whole operation when it changes the stack; the update's writes are fenced
    /// by it.
    lock: Option<Box<dyn cairn_state::StackLock>>,
}

async fn prepare(
    workspace: &Workspace,
    with_program: bool,
    with_lock: bool,
    refuse_pending: bool,
) -> anyhow::Result<Prepared> {
    let project = workspace.project_name()?;
    let providers = Arc::new(commands::plugins::registry_for(workspace).await?);
    // The program is checked before anything else, so bad input never touches the stack.
    let program = if with_program {
        Some(Arc::new(commands::load_program(workspace, &providers)?))
    } else {
        None
    };
    let context = commands::open_stack(workspace).await?;
    // The lock comes before reading state, so what is read is what no one else is changing.
    let lock = if with_lock {
        Some(commands::lock_stack(&context).await?)
    } else {
        None
    };
    // The stack's secrets are unlocked before anything changes, as Pulumi asks for the
    // passphrase up front: found missing at the first secret output, the resource would be
    // created and then could not be recorded. A preview only needs them for secrets in state.
    if with_lock || commands::is_interactive() {
        context.crypter.encrypt("").map_err(|error| match error {
            cairn_secrets::SecretsError::Unavailable(message) => crate::bad_input(message),
            other => other.into(),
        })?;
    }
    let config = match &program {
        Some(program) => {
            let stack_values = commands::stack_config_values(&context)?;
            match cairn_program::resolve_config(program, &stack_values) {
                Ok(config) => config,
                Err(diagnostics) => {
                    for diagnostic in &diagnostics {
                        output::diagnostic(diagnostic);
                    }
                    return Err(anyhow::Error::new(crate::AlreadyReported(2)));
                }
            }
        }
        None => Default::default(),
    };
    let old = commands::load_snapshot(&context).await?;
    if !old.pending_operations.is_empty() {
        let mut message = format!(
            "the last update of stack `{}` did not finish: {} operations may or may not have happened:",
            context.stack.name,
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
            context.clear_pending_command
        ));
        // Running on would make new copies of what may already exist, and settling the
        // pending operations afterwards could no longer tell the copies apart (Pulumi refuses
        // too). A preview and a refresh only look.
        if refuse_pending {
            return Err(anyhow::anyhow!(message));
        }
        output::warning(&message);
    }
    Ok(Prepared {
        context,
        project,
        program,
        config,
        old: Arc::new(old),
        providers,
        lock,
    })
}

/// Reads other stacks' outputs from the same backend.
struct BackendStackReferences {
    backend: Arc<dyn cairn_state::Backend>,
    project: String,
}

impl StackReferences for BackendStackReferences {
    fn outputs(&self, stack: &str) -> Result<PropertyMap, String> {
        let stack_ref = StackRef::parse(stack, &self.project)?;
        let deployment = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(self.backend.load_deployment(&stack_ref))
        })
        .map_err(|error| error.to_string())?
        .ok_or_else(|| format!("stack `{stack}` has no state"))?;
        // The other stack's secrets open with its own salt, kept in its state (its stack file
        // belongs to another project, maybe another machine), and the same passphrase.
        let crypter = ReferencedCrypter {
            salt: deployment
                .secrets_providers
                .as_ref()
                .and_then(|providers| providers.state.get("salt")?.as_str().map(str::to_owned)),
            stack: stack.to_owned(),
            crypter: std::sync::OnceLock::new(),
        };
        let snapshot = cairn_state::deployment::decode_deployment(&deployment, &crypter)
            .map_err(|error| error.to_string())?;
        Ok(snapshot.stack_outputs())
    }
}

/// The crypter of a referenced stack, made (deriving its key) only if one of its outputs is a
/// secret.
struct ReferencedCrypter {
    salt: Option<String>,
    stack: String,
    crypter: std::sync::OnceLock<Result<Box<dyn cairn_secrets::Crypter>, String>>,
}

impl ReferencedCrypter {
    fn get(&self) -> Result<&dyn cairn_secrets::Crypter, cairn_secrets::SecretsError> {
        let made = self.crypter.get_or_init(|| {
            let salt = self.salt.as_ref().ok_or_else(|| {
                format!(
                    "stack `{}` keeps secrets but no salt to open them",
                    self.stack
                )
            })?;
            let passphrase = crate::workspace::passphrase()?;
            cairn_secrets::crypter_for_salt(&passphrase, salt).map_err(|error| error.to_string())
        });
        made.as_ref()
            .map(|crypter| crypter.as_ref())
            .map_err(|message| cairn_secrets::SecretsError::Unavailable(message.clone()))
    }
}

impl cairn_secrets::Crypter for ReferencedCrypter {
    fn encrypt(&self, plaintext: &str) -> Result<String, cairn_secrets::SecretsError> {
        self.get()?.encrypt(plaintext)
    }

    fn decrypt(&self, ciphertext: &str) -> Result<String, cairn_secrets::SecretsError> {
        self.get()?.decrypt(ciphertext)
    }
}

impl Prepared {
    fn request(&self, workspace: &Workspace) -> DeployRequest {
        DeployRequest {
            stack: self.context.stack.name.clone(),
            project: self.project.clone(),
            organization: self.context.stack.organization.clone(),
            program_dir: self
                .program
                .as_ref()
                .map(|program| program.source_dir.clone())
                .unwrap_or_else(|| workspace.project_dir.clone()),
            program: self.program.clone(),
            config: self.config.clone(),
            old: self.old.clone(),
            providers: self.providers.clone(),
            files: Arc::new(commands::DiskFiles),
            stack_references: Arc::new(BackendStackReferences {
                backend: self.context.backend.clone(),
                project: self.project.clone(),
            }),
        }
    }
}

/// How a run is shown.
struct Display {
    json: bool,
    show_secrets: bool,
    show_sames: bool,
    diff: bool,
}

impl Display {
    fn of(workspace: &Workspace, show_sames: bool, diff: bool) -> Display {
        Display {
            json: workspace.global.json,
            show_secrets: workspace.global.show_secrets,
            show_sames,
            diff,
        }
    }
}

/// Runs the engine once, showing progress while it works.
async fn run_engine(
    workspace: &Workspace,
    prepared: &Prepared,
    options: DeployOptions,
    kind: UpdateKind,
    message: Option<String>,
    display: &Display,
    total_hint: Option<usize>,
) -> anyhow::Result<DeployOutcome> {
    let persister = if options.dry_run {
        None
    } else {
        let metadata = UpdateMetadata {
            message: message.unwrap_or_default(),
            environment: crate::git::environment(&workspace.project_dir),
        };
        let lock = prepared.lock.as_deref().ok_or_else(|| {
            anyhow::anyhow!("internal error: an update must hold the stack's lock")
        })?;
        let writer = prepared
            .context
            .backend
            .begin_update(&prepared.context.stack, kind, metadata, lock)
            .await?;
        Some(Persister::new(writer, prepared.context.crypter.clone()))
    };
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let show_progress = !options.dry_run && !display.json;
    // On a terminal progress is a live view redrawn in place (a preview's leaves nothing
    // behind); elsewhere one line per event, and none for a preview.
    let mut live = crate::progress::is_live(display.json, workspace.global.non_interactive)
        .then(|| crate::progress::ProgressView::on_terminal(total_hint, show_progress));
    let keeps_logs = !options.dry_run;
    let pending_logs: Arc<std::sync::Mutex<Vec<LogEntry>>> = Arc::default();
    let collected = pending_logs.clone();
    let progress = tokio::spawn(async move {
        while let Some(event) = receiver.recv().await {
            if let Some(view) = live.as_mut() {
                view.on_event(&event);
            } else if show_progress {
                render_progress(&event);
            }
            if keeps_logs
                && let Some(entry) = log_entry_of(&event)
                && let Ok(mut logs) = collected.lock()
            {
                logs.push(entry);
            }
        }
        if let Some(view) = live {
            view.finish();
        }
    });
    // Log lines reach the backend while the update runs, so `cairn logs --follow` sees them.
    let flusher = keeps_logs.then(|| {
        let backend = prepared.context.backend.clone();
        let stack = prepared.context.stack.clone();
        let pending = pending_logs.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(LOG_FLUSH_INTERVAL).await;
                flush_logs(backend.as_ref(), &stack, &pending).await;
            }
        })
    });
    let cancellation = Cancellation::default();
    let signals = tokio::spawn(watch_signals(cancellation.clone()));
    let outcome = cairn_engine::deploy(
        prepared.request(workspace),
        options,
        persister,
        sender,
        cancellation,
    )
    .await;
    signals.abort();
    // The engine dropped its sender, so the progress task ends once it has printed everything.
    let _ = progress.await;
    if let Some(flusher) = flusher {
        flusher.abort();
        flush_logs(
            prepared.context.backend.as_ref(),
            &prepared.context.stack,
            &pending_logs,
        )
        .await;
    }
    match outcome {
        Ok(outcome) => Ok(outcome),
        Err(cairn_engine::EngineError::Refused(message)) => Err(anyhow::anyhow!(message)),
        Err(error) => Err(error.into()),
    }
}

/// How often log lines collected during an update are written to the backend.
const LOG_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// What `cairn logs` keeps of an engine event: provider log lines, and each step's outcome.
fn log_entry_of(event: &EngineEvent) -> Option<LogEntry> {
    let timestamp_ms = render::unix_now_millis();
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
                    format!("{} failed: {error}", progressive(record.op)),
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

/// Writes the collected log lines. Logs are a convenience: failing to keep them is reported,
/// never a reason to fail the update.
async fn flush_logs(
    backend: &dyn cairn_state::Backend,
    stack: &StackRef,
    pending: &std::sync::Mutex<Vec<LogEntry>>,
) {
    let entries = match pending.lock() {
        Ok(mut pending) => std::mem::take(&mut *pending),
        Err(_) => return,
    };
    if entries.is_empty() {
        return;
    }
    if let Err(error) = backend.append_logs(stack, entries).await {
        output::warning(&format!("could not keep the update's log lines: {error}"));
    }
}

fn render_progress(event: &EngineEvent) {
    match event {
        EngineEvent::StepStarted { op, urn, type_ } => output::progress(&format!(
            " {:<2} {} {} {}",
            op.symbol(),
            render::display_type(type_),
            urn.name(),
            progressive(*op)
        )),
        EngineEvent::StepFinished(record) => {
            let is_hidden =
                record.op == StepOp::Same || cairn_engine::is_default_provider(&record.urn);
            if is_hidden && record.error.is_none() {
                return;
            }
            let status = match &record.error {
                Some(error) => format!("{} failed: {error}", progressive(record.op)),
                None => record.op.past_tense().to_owned(),
            };
            output::progress(&format!(
                " {:<2} {} {} {status}",
                record.op.symbol(),
                render::display_type(&record.type_),
                record.urn.name()
            ));
        }
        EngineEvent::Warning(message) => output::warning(message),
        EngineEvent::Log {
            urn,
            severity,
            message,
        } => {
            if *severity >= cairn_provider::LogSeverity::Warning {
                output::progress(&format!(" {} {}: {message}", severity.as_str(), urn.name()));
            }
        }
    }
}

fn progressive(op: StepOp) -> &'static str {
    match op {
        StepOp::Create => "creating",
        StepOp::Update => "updating",
        StepOp::Replace => "replacing",
        StepOp::Delete => "deleting",
        StepOp::Read => "reading",
        StepOp::Import => "importing",
        StepOp::Refresh => "refreshing",
        StepOp::Same => "",
    }
}

/// First Ctrl-C: finish in-flight steps and stop; second (or SIGTERM): stop now.
async fn watch_signals(cancellation: Cancellation) {
    #[cfg(unix)]
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    loop {
        #[cfg(unix)]
        let is_terminate = tokio::select! {
            _ = tokio::signal::ctrl_c() => false,
            _ = async {
                match terminate.as_mut() {
                    Some(signal) => { signal.recv().await; }
                    None => std::future::pending::<()>().await,
                }
            } => true,
        };
        #[cfg(not(unix))]
        let is_terminate = {
            let _ = tokio::signal::ctrl_c().await;
            false
        };
        if is_terminate || cancellation.graceful.is_cancelled() {
            output::progress("stopping now: operations in flight are left pending");
            cancellation.graceful.cancel();
            cancellation.hard.cancel();
            return;
        }
        output::progress(
            "interrupted: waiting for operations in flight to finish (press Ctrl-C again to stop now)",
        );
        cancellation.graceful.cancel();
    }
}

fn render_outcome(
    outcome: &DeployOutcome,
    is_preview: bool,
    display: &Display,
    started: Instant,
    bytes_written: Option<u64>,
) {
    if display.json {
        output::json(&render::outcome_json(
            outcome,
            is_preview,
            display.show_secrets,
            bytes_written,
            started.elapsed(),
        ));
        return;
    }
    let tree = render::tree(outcome, is_preview, display.show_sames);
    for row in &tree {
        output::line(row);
    }
    if display.diff {
        let diff = render::diff_lines(outcome, display.show_secrets);
        if !diff.is_empty() {
            output::line("");
            for row in diff {
                output::line(&row);
            }
        }
    }
    let failures: Vec<&cairn_engine::StepRecord> = outcome
        .steps
        .iter()
        .filter(|step| step.error.is_some())
        .collect();
    if !outcome.errors.is_empty() {
        output::line("");
        output::line("Diagnostics:");
        for step in &failures {
            output::line(&format!(
                "  {} ({}):",
                render::display_type(&step.type_),
                step.urn.name()
            ));
            output::line(&format!(
                "    error: {}",
                step.error.as_deref().unwrap_or_default()
            ));
        }
        for error in &outcome.program_errors {
            output::line(&format!("  error: {error}"));
        }
    }
    if !outcome.outputs.is_empty() {
        output::line("");
        output::line("Outputs:");
        let width = outcome.outputs.keys().map(String::len).max().unwrap_or(0);
        for (key, value) in &outcome.outputs {
            output::line(&format!(
                "    {:<width$}: {}",
                key,
                render::display_value(value, display.show_secrets),
                width = width
            ));
        }
    }
    output::line("");
    output::line(&render::summary_line(&outcome.changes, is_preview));
    if !is_preview {
        output::line("");
        output::line(&format!("Duration: {}s", started.elapsed().as_secs()));
    }
    if outcome.cancelled {
        output::line("");
        output::line("The update was interrupted; the state records what finished.");
    }
}

fn parse_targets(targets: &[String]) -> anyhow::Result<Vec<Urn>> {
    targets
        .iter()
        .map(|target| {
            Urn::parse(target).map_err(|error| {
                crate::bad_input(format!(
                    "{error}\nhelp: `--target` takes a URN; `cairn stack export` lists them"
                ))
            })
        })
        .collect()
}

/// Refuses to change anything without `--yes` when nobody can answer a prompt.
fn require_approval(yes: bool, what: &str) -> anyhow::Result<()> {
    if yes || commands::is_interactive() {
        return Ok(());
    }
    Err(crate::bad_input(format!(
        "--yes must be passed to {what} when not running in a terminal; nothing was changed"
    )))
}

fn ask_approval(yes: bool, question: &str) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if commands::confirm(question)? {
        Ok(())
    } else {
        Err(anyhow::anyhow!("confirmation declined, not proceeding"))
    }
}

fn fail_if(outcome: &DeployOutcome) -> anyhow::Result<()> {
    // An error in the program is bad input, whatever else happened.
    if outcome.has_program_error {
        return Err(anyhow::Error::new(crate::AlreadyReported(2)));
    }
    if outcome.has_failed() {
        return Err(anyhow::Error::new(crate::AlreadyReported(1)));
    }
    if outcome.cancelled {
        return Err(anyhow::Error::new(crate::AlreadyReported(1)));
    }
    Ok(())
}

/// What one command does: its operation and the words it shows.
struct Command {
    operation: Operation,
    kind: UpdateKind,
    /// "update", "refresh", "destroy".
    noun: &'static str,
    /// "Updating", "Refreshing", "Destroying".
    doing: &'static str,
}

const UPDATE: Command = Command {
    operation: Operation::Update,
    kind: UpdateKind::Update,
    noun: "update",
    doing: "Updating",
};
const REFRESH: Command = Command {
    operation: Operation::Refresh,
    kind: UpdateKind::Refresh,
    noun: "refresh",
    doing: "Refreshing",
};
const DESTROY: Command = Command {
    operation: Operation::Destroy,
    kind: UpdateKind::Destroy,
    noun: "destroy",
    doing: "Destroying",
};

/// How far to go.
struct Flow {
    yes: bool,
    skip_preview: bool,
    preview_only: bool,
    message: Option<String>,
    /// A resource to add to the program for this run only (`cairn import`).
    extra_resource: Option<cairn_program::ResourceDecl>,
}

/// The shape of every command here: a preview (unless skipped), a confirmation, then the real
/// run; each rendered as Pulumi does. Returns the real run's outcome, or the preview's when
/// only previewing.
async fn preview_then_apply(
    workspace: &Workspace,
    command: &Command,
    options: DeployOptions,
    flow: Flow,
    display: &Display,
) -> anyhow::Result<DeployOutcome> {
    if !flow.preview_only {
        require_approval(flow.yes, command.noun)?;
    }
    let mut prepared = prepare(
        workspace,
        command.operation == Operation::Update,
        !flow.preview_only,
        !flow.preview_only && command.operation != Operation::Refresh,
    )
    .await?;
    if let (Some(extra), Some(program)) = (flow.extra_resource, &mut prepared.program) {
        Arc::make_mut(program).resources.push(extra);
    }
    let stack = prepared.context.stack.name.clone();
    let mut total_hint = None;
    if flow.preview_only || !flow.skip_preview {
        // In `--json` mode a preview that leads to an update prints nothing of its own (one
        // JSON document per command), unless it fails.
        let is_shown = flow.preview_only || !display.json;
        if is_shown && !display.json {
            output::line(&format!("Previewing {} ({stack}):", command.noun));
            output::line("");
        }
        let started = Instant::now();
        let dry_run = DeployOptions {
            dry_run: true,
            ..options.clone()
        };
        let preview = run_engine(
            workspace,
            &prepared,
            dry_run,
            UpdateKind::Preview,
            None,
            display,
            None,
        )
        .await?;
        total_hint = Some(crate::progress::total_of(&preview));
        if is_shown || preview.has_failed() {
            render_outcome(&preview, true, display, started, None);
        }
        fail_if(&preview)?;
        if flow.preview_only {
            return Ok(preview);
        }
        ask_approval(
            flow.yes,
            &format!("Do you want to perform this {}?", command.noun),
        )?;
        if !display.json {
            output::line("");
        }
    }
    if !display.json {
        output::line(&format!("{} ({stack}):", command.doing));
        output::line("");
    }
    let started = Instant::now();
    let apply = DeployOptions {
        dry_run: false,
        ..options
    };
    let outcome = run_engine(
        workspace,
        &prepared,
        apply,
        command.kind,
        flow.message,
        display,
        total_hint,
    )
    .await?;
    let bytes = prepared.context.backend.bytes_written();
    render_outcome(&outcome, false, display, started, Some(bytes));
    fail_if(&outcome)?;
    if command.operation == Operation::Destroy
        && !display.json
        && outcome.snapshot.resources.is_empty()
    {
        output::line("");
        output::line(&format!(
            "The resources in the stack have been deleted, but the history and configuration associated with the stack are still maintained.\nIf you want to remove the stack completely, run `cairn stack rm {stack}`."
        ));
    }
    Ok(outcome)
}

fn options(
    operation: Operation,
    targets: Vec<Urn>,
    parallel: usize,
    refresh: bool,
) -> DeployOptions {
    DeployOptions {
        operation,
        dry_run: false,
        targets,
        parallel,
        refresh,
        clear_pending: false,
    }
}

pub async fn preview(workspace: &Workspace, args: DeployArgs) -> anyhow::Result<()> {
    let targets = parse_targets(&args.target)?;
    let display = Display::of(workspace, args.show_sames, args.diff);
    let flow = Flow {
        yes: true,
        skip_preview: false,
        preview_only: true,
        message: None,
        extra_resource: None,
    };
    let options = options(Operation::Update, targets, args.parallel, args.refresh);
    preview_then_apply(workspace, &UPDATE, options, flow, &display).await?;
    Ok(())
}

pub async fn up(workspace: &Workspace, args: DeployArgs) -> anyhow::Result<()> {
    let targets = parse_targets(&args.target)?;
    let display = Display::of(workspace, args.show_sames, args.diff);
    let flow = Flow {
        yes: args.yes,
        skip_preview: args.skip_preview,
        preview_only: false,
        message: args.message,
        extra_resource: None,
    };
    let options = options(Operation::Update, targets, args.parallel, args.refresh);
    preview_then_apply(workspace, &UPDATE, options, flow, &display).await?;
    Ok(())
}

pub async fn refresh(workspace: &Workspace, args: RefreshArgs) -> anyhow::Result<()> {
    let display = Display::of(workspace, false, false);
    let flow = Flow {
        yes: args.yes,
        skip_preview: args.skip_preview,
        preview_only: args.preview_only,
        message: None,
        extra_resource: None,
    };
    let options = DeployOptions {
        clear_pending: args.clear_pending,
        ..options(Operation::Refresh, Vec::new(), args.parallel, false)
    };
    preview_then_apply(workspace, &REFRESH, options, flow, &display).await?;
    Ok(())
}

pub async fn destroy(workspace: &Workspace, args: DestroyArgs) -> anyhow::Result<()> {
    let targets = parse_targets(&args.target)?;
    let display = Display::of(workspace, false, false);
    let flow = Flow {
        yes: args.yes,
        skip_preview: args.skip_preview,
        preview_only: false,
        message: args.message,
        extra_resource: None,
    };
    let options = options(Operation::Destroy, targets, args.parallel, false);
    preview_then_apply(workspace, &DESTROY, options, flow, &display).await?;
    Ok(())
}

/// `cairn import TYPE NAME ID`: an update that adds one resource, read through its provider
/// (the `import` resource option), and changes nothing else; then the snippet to declare it.
pub async fn import(workspace: &Workspace, args: ImportArgs) -> anyhow::Result<()> {
    let registry = commands::plugins::registry_for(workspace).await?;
    let resolved = registry.resolve_resource(&args.type_token).ok_or_else(|| {
        crate::bad_input(format!(
            "no provider offers the resource type `{}`\nhelp: `cairn plugin ls` lists the providers and their packages",
            args.type_token
        ))
    })?;
    let type_token = resolved.canonical.to_owned();
    let project = workspace.project_name()?;
    let program = commands::load_program(workspace, &registry)?;
    if program
        .resources
        .iter()
        .any(|resource| resource.key == args.name)
    {
        return Err(crate::bad_input(format!(
            "the program already declares a resource named `{}`\nhelp: import it under another name",
            args.name
        )));
    }
    let stack = workspace.stack_ref(&project)?;
    let urn = Urn::new(&stack.name, &project, None, &type_token, &args.name);
    // Pulumi's `import` refuses a name the stack already uses for another resource; importing
    // over it would silently keep the old ID and report the import as unchanged.
    let current = commands::load_snapshot(&commands::open_stack(workspace).await?).await?;
    if let Some(existing) = current
        .resources
        .iter()
        .find(|resource| resource.urn == urn && !resource.delete)
        && existing.id != args.id
    {
        return Err(crate::bad_input(format!(
            "the stack already has a resource named `{}` ({urn}) with ID `{}`, not `{}`\nhelp: import it under another name, or forget the existing one first with `cairn state delete {urn}`",
            args.name, existing.id, args.id
        )));
    }
    let decl = cairn_program::ResourceDecl {
        name: args.name.clone(),
        key: args.name.clone(),
        type_token: type_token.clone(),
        properties: None,
        get: None,
        options: cairn_program::ResourceOptions {
            import: Some(args.id.clone()),
            protect: args.protect,
            ..Default::default()
        },
        deps: Default::default(),
        span: Default::default(),
    };
    let display = Display::of(workspace, false, false);
    let flow = Flow {
        yes: args.yes,
        skip_preview: args.skip_preview,
        preview_only: false,
        message: args.message,
        extra_resource: Some(decl),
    };
    let options = options(Operation::Update, vec![urn.clone()], 1, false);
    let outcome = preview_then_apply(workspace, &UPDATE, options, flow, &display).await?;
    let Some(imported) = outcome
        .snapshot
        .resources
        .iter()
        .find(|resource| resource.urn == urn && !resource.delete)
    else {
        return Err(anyhow::anyhow!("`{}` was not imported", args.name));
    };
    if !display.json {
        output::line("");
        output::line("Add this to the program's `resources:` to manage it from now on:");
        output::line("");
        for row in render::resource_snippet(&args.name, &type_token, imported) {
            output::line(&row);
        }
    }
    Ok(())
}
