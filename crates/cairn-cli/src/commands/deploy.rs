//! `cairn preview`, `up`, `refresh`, `destroy` and `import`: each resolves the workspace, then
//! runs a stack operation of `cairn_ops` with the terminal's reporter, and picks the exit code.

use std::sync::Arc;

use cairn_core::Urn;
use cairn_engine::Cancellation;
use cairn_ops::{RunOutcome, RunRequest, StackOperation};

use crate::cli::{DeployArgs, DestroyArgs, ImportArgs, RefreshArgs};
use crate::commands::{
    self, render,
    reporter::{Display, TerminalReporter},
};
use crate::output;
use crate::workspace::Workspace;

/// Runs `request` on the selected stack: the program (the project's, unless one is given) is
/// loaded and checked first for an update, so bad input never touches the stack; then the
/// operation, with Ctrl-C and SIGTERM wired to its cancellation.
pub async fn run_operation(
    workspace: &Workspace,
    request: RunRequest,
    reporter: TerminalReporter,
    program: Option<Arc<cairn_program::Program>>,
) -> anyhow::Result<RunOutcome> {
    if !request.preview_only {
        require_approval(reporter.approves(), request.operation.noun())?;
    }
    let (registry, plugins) = commands::plugins::start(workspace).await?;
    let result = run_with_registry(workspace, request, reporter, program, registry).await;
    plugins.shutdown().await;
    result
}

/// `run_operation` with the providers already started (`registry`); the caller shuts the
/// plugins down.
async fn run_with_registry(
    workspace: &Workspace,
    request: RunRequest,
    reporter: TerminalReporter,
    program: Option<Arc<cairn_program::Program>>,
    registry: cairn_provider::ProviderRegistry,
) -> anyhow::Result<RunOutcome> {
    if !request.preview_only {
        require_approval(reporter.approves(), request.operation.noun())?;
    }
    let program = match (request.operation, program) {
        (StackOperation::Update, Some(program)) => Some(program),
        (StackOperation::Update, None) => Some(commands::load_program(workspace, &registry)?),
        (StackOperation::Refresh | StackOperation::Destroy, _) => None,
    };
    let context = commands::open_stack(workspace).await?;
    let mut request = request;
    request.environment = crate::git::environment(&workspace.project_dir);
    let cancellation = Cancellation::default();
    let signals = tokio::spawn(watch_signals(cancellation.clone()));
    let outcome = cairn_ops::run(
        &context.session(),
        program,
        Arc::new(registry),
        request,
        Arc::new(reporter),
        cancellation,
    )
    .await;
    signals.abort();
    let outcome = outcome?;
    if let Some(failure) = outcome.failure {
        return Err(anyhow::Error::new(crate::AlreadyReported(
            failure.exit_code(),
        )));
    }
    Ok(outcome)
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

fn reporter(workspace: &Workspace, yes: bool, show_sames: bool, diff: bool) -> TerminalReporter {
    TerminalReporter::new(Display {
        json: workspace.global.json,
        show_secrets: workspace.global.show_secrets,
        show_sames,
        diff,
        yes,
        non_interactive: workspace.global.non_interactive,
    })
}

fn deploy_request(args: &DeployArgs, preview_only: bool) -> anyhow::Result<RunRequest> {
    Ok(RunRequest {
        targets: parse_targets(&args.target)?,
        parallel: args.parallel,
        refresh: args.refresh,
        preview_only,
        skip_preview: args.skip_preview && !preview_only,
        message: args.message.clone(),
        ..RunRequest::new(StackOperation::Update)
    })
}

pub async fn preview(workspace: &Workspace, args: DeployArgs) -> anyhow::Result<()> {
    let request = deploy_request(&args, true)?;
    let reporter = reporter(workspace, true, args.show_sames, args.diff);
    run_operation(workspace, request, reporter, None).await?;
    Ok(())
}

pub async fn up(workspace: &Workspace, args: DeployArgs) -> anyhow::Result<()> {
    let request = deploy_request(&args, false)?;
    let reporter = reporter(workspace, args.yes, args.show_sames, args.diff);
    run_operation(workspace, request, reporter, None).await?;
    Ok(())
}

pub async fn refresh(workspace: &Workspace, args: RefreshArgs) -> anyhow::Result<()> {
    let request = RunRequest {
        parallel: args.parallel,
        clear_pending: args.clear_pending,
        preview_only: args.preview_only,
        skip_preview: args.skip_preview,
        ..RunRequest::new(StackOperation::Refresh)
    };
    run_operation(
        workspace,
        request,
        reporter(workspace, args.yes, false, false),
        None,
    )
    .await?;
    Ok(())
}

pub async fn destroy(workspace: &Workspace, args: DestroyArgs) -> anyhow::Result<()> {
    let request = RunRequest {
        targets: parse_targets(&args.target)?,
        parallel: args.parallel,
        skip_preview: args.skip_preview,
        message: args.message.clone(),
        ..RunRequest::new(StackOperation::Destroy)
    };
    let outcome = run_operation(
        workspace,
        request,
        reporter(workspace, args.yes, false, false),
        None,
    )
    .await?;
    if !workspace.global.json && outcome.outcome.snapshot.resources.is_empty() {
        let stack = workspace.stack_ref(&workspace.project_name()?)?.name;
        output::line("");
        output::line(&format!(
            "The resources in the stack have been deleted, but the history and configuration associated with the stack are still maintained.\nIf you want to remove the stack completely, run `cairn stack rm {stack}`."
        ));
    }
    Ok(())
}

/// `cairn import TYPE NAME ID`: an update that adds one resource, read through its provider
/// (the `import` resource option), and changes nothing else; then the snippet to declare it.
pub async fn import(workspace: &Workspace, args: ImportArgs) -> anyhow::Result<()> {
    // One start of the plugins serves the check and the update: a plugin started twice would
    // do its start-up work (and any side effects of it) twice.
    let (registry, plugins) = commands::plugins::start(workspace).await?;
    let result = async {
        let (urn, decl, program) = check_import(workspace, &args, &registry).await?;
        let type_token = decl.type_token.clone();
        let request = RunRequest {
            targets: vec![urn.clone()],
            parallel: 1,
            skip_preview: args.skip_preview,
            message: args.message.clone(),
            extra_resource: Some(decl),
            ..RunRequest::new(StackOperation::Update)
        };
        let reporter = reporter(workspace, args.yes, false, false);
        let outcome =
            run_with_registry(workspace, request, reporter, Some(program), registry).await?;
        Ok::<_, anyhow::Error>((urn, type_token, outcome))
    }
    .await;
    plugins.shutdown().await;
    let (urn, type_token, outcome) = result?;
    let Some(imported) = outcome
        .outcome
        .snapshot
        .resources
        .iter()
        .find(|resource| resource.urn == urn && !resource.delete)
    else {
        return Err(anyhow::anyhow!("`{}` was not imported", args.name));
    };
    if !workspace.global.json {
        output::line("");
        output::line("Add this to the program's `resources:` to manage it from now on:");
        output::line("");
        for row in render::resource_snippet(&args.name, &type_token, imported) {
            output::line(&row);
        }
    }
    Ok(())
}

/// What `cairn import` adds to the program, after checking that it fits: a type some provider
/// offers, a name neither the program nor the stack uses for something else. The program it
/// was checked against is the one the update runs.
async fn check_import(
    workspace: &Workspace,
    args: &ImportArgs,
    registry: &cairn_provider::ProviderRegistry,
) -> anyhow::Result<(
    Urn,
    cairn_program::ResourceDecl,
    Arc<cairn_program::Program>,
)> {
    let resolved = registry.resolve_resource(&args.type_token).ok_or_else(|| {
        crate::bad_input(format!(
            "no provider offers the resource type `{}`\nhelp: `cairn plugin ls` lists the providers and their packages",
            args.type_token
        ))
    })?;
    let type_token = resolved.canonical.to_owned();
    let project = workspace.project_name()?;
    let program = commands::load_program(workspace, registry)?;
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
    Ok((urn, decl, program))
}
