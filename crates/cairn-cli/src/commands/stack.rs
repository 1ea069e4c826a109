//! `cairn stack init|ls|select|rm|output|export|import|history|tag|rename`; removing and
//! renaming are `cairn_ops::admin` operations, the stack's config file moved here.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;

use cairn_state::StackRef;

use crate::cli::{StackCommand, TagCommand};
use crate::commands::{self, render, value_to_json};
use crate::output;
use crate::stack_config::StackConfigFile;
use crate::workspace::Workspace;

pub async fn run(workspace: &Workspace, command: StackCommand) -> anyhow::Result<()> {
    match command {
        StackCommand::Init { name } => init(workspace, name).await,
        StackCommand::Ls { all } => list(workspace, all).await,
        StackCommand::Select { name } => select(workspace, name).await,
        StackCommand::Rm { name, force, yes } => remove(workspace, name, force, yes).await,
        StackCommand::Output { name } => show_outputs(workspace, name).await,
        StackCommand::Export { file, version } => export(workspace, file, version).await,
        StackCommand::Import { file } => import(workspace, file).await,
        StackCommand::History => history(workspace).await,
        StackCommand::Tag(command) => tag(workspace, command).await,
        StackCommand::Rename { new_name } => rename(workspace, &new_name).await,
    }
}

fn stack_name_argument(workspace: &Workspace, name: Option<String>) -> anyhow::Result<String> {
    name.or_else(|| workspace.global.stack.clone()).ok_or_else(|| {
        crate::bad_input("a stack name is required\nhelp: pass it as an argument, e.g. `cairn stack init dev`")
    })
}

pub(crate) async fn init(workspace: &Workspace, name: Option<String>) -> anyhow::Result<()> {
    let project = workspace.project_name()?;
    let name = stack_name_argument(workspace, name)?;
    let stack = StackRef::parse(&name, &project).map_err(crate::bad_input)?;
    let backend = workspace.backend()?;
    backend
        .create_stack(&stack)
        .await
        .map_err(|error| match error {
            cairn_state::BackendError::StackAlreadyExists(_) => crate::bad_input(format!(
                "stack `{}` already exists\nhelp: run `cairn stack select {}`",
                stack.name, stack.name
            )),
            other => anyhow::Error::new(other),
        })?;
    // Create the stack file (with its encryption salt when a passphrase is at hand), so that
    // secrets set later use a salt of this stack's own.
    let config_path = workspace.stack_config_path(&stack.name);
    if let Ok(passphrase) = crate::workspace::passphrase() {
        StackConfigFile::edit(&config_path, |config| {
            if config.encryption_salt.is_none() {
                let crypter =
                    cairn_secrets::PassphraseCrypter::new(&passphrase, &cairn_secrets::new_salt())?;
                config.encryption_salt = Some(crypter.encryption_salt());
            }
            Ok(())
        })?;
    } else {
        // Still read it, so a broken file is reported now.
        StackConfigFile::load(&config_path)?;
    }
    workspace.select_stack(&project, Some(&stack.relative_to(&project)))?;
    output::line(&format!("Created stack '{}'", stack.name));
    Ok(())
}

async fn list(workspace: &Workspace, all: bool) -> anyhow::Result<()> {
    let project = if all {
        None
    } else {
        Some(workspace.project_name()?)
    };
    let backend = workspace.backend()?;
    let stacks = backend.list_stacks(project.as_deref()).await?;
    // The selection may be qualified (`team/dev`): compare references, not names.
    let current_project = match &project {
        Some(project) => Some(project.clone()),
        None => workspace.project_name().ok(),
    };
    let selected = current_project.as_deref().and_then(|project| {
        let selected = workspace.selected_stack(project)?;
        StackRef::parse(&selected, project).ok()
    });
    let is_current = |stack: &StackRef| selected.as_ref() == Some(stack);
    // Stacks of two organizations may share a name (on postgres://): each is shown as it is
    // selected, `dev` or `team/dev`, and qualified in full with `--all`.
    let display_name = |stack: &StackRef| match (&project, all) {
        (Some(project), false) => stack.relative_to(project),
        _ => stack.qualified(),
    };
    if workspace.global.json {
        let rows: Vec<serde_json::Value> = stacks
            .iter()
            .map(|summary| {
                serde_json::json!({
                    "name": display_name(&summary.stack),
                    "current": is_current(&summary.stack),
                    "lastUpdate": summary.last_update,
                    "resourceCount": summary.resource_count,
                    "problem": summary.problem,
                })
            })
            .collect();
        output::json(&serde_json::Value::Array(rows));
        return Ok(());
    }
    let mut rows = vec![[
        "NAME".to_owned(),
        "LAST UPDATE".to_owned(),
        "RESOURCE COUNT".to_owned(),
    ]];
    for summary in &stacks {
        let mut name = display_name(&summary.stack);
        if is_current(&summary.stack) {
            name.push('*');
        }
        rows.push([
            name,
            summary
                .last_update
                .map(render::ago)
                .unwrap_or_else(|| "n/a".to_owned()),
            summary
                .resource_count
                .map(|count| count.to_string())
                .unwrap_or_else(|| "n/a".to_owned()),
        ]);
    }
    for row in render::table(&rows) {
        output::line(&row);
    }
    for summary in &stacks {
        if let Some(problem) = &summary.problem {
            output::warning(&format!(
                "stack `{}` cannot be read: {problem}",
                display_name(&summary.stack)
            ));
        }
    }
    Ok(())
}

async fn select(workspace: &Workspace, name: Option<String>) -> anyhow::Result<()> {
    let project = workspace.project_name()?;
    let name = stack_name_argument(workspace, name)?;
    let stack = StackRef::parse(&name, &project).map_err(crate::bad_input)?;
    let backend = workspace.backend()?;
    if !backend.stack_exists(&stack).await? {
        return Err(crate::bad_input(format!(
            "no stack named `{}` found\nhelp: run `cairn stack init {}` to create it",
            stack.name, stack.name
        )));
    }
    workspace.select_stack(&project, Some(&stack.relative_to(&project)))?;
    Ok(())
}

async fn remove(
    workspace: &Workspace,
    name: Option<String>,
    force: bool,
    yes: bool,
) -> anyhow::Result<()> {
    let project = workspace.project_name()?;
    let stack = match name {
        Some(name) => StackRef::parse(&name, &project).map_err(crate::bad_input)?,
        None => workspace.stack_ref(&project)?,
    };
    if !yes && !commands::is_interactive() {
        return Err(crate::bad_input(
            "refusing to remove a stack without confirmation\nhelp: pass `--yes` when not running in a terminal",
        ));
    }
    let backend = workspace.backend()?;
    // Checked before asking: a stack that cannot be removed is refused without a question.
    let plan = cairn_ops::admin::plan_remove_stack(backend.as_ref(), &stack, force).await?;
    if !yes
        && !commands::confirm(&format!(
            "This will permanently remove the '{}' stack. Continue?",
            stack.name
        ))?
    {
        return Err(anyhow::anyhow!("confirmation declined"));
    }
    let cancel = workspace.command_for("cancel", &stack.relative_to(&project));
    cairn_ops::admin::remove_stack(backend.as_ref(), &plan, &commands::caller(), &cancel).await?;
    let config_path = workspace.stack_config_path(&stack.name);
    if config_path.exists() {
        fs_err::remove_file(&config_path)?;
    }
    let was_selected = workspace
        .selected_stack(&project)
        .is_some_and(|selected| StackRef::parse(&selected, &project).as_ref() == Ok(&stack));
    if was_selected {
        workspace.select_stack(&project, None)?;
    }
    output::line(&format!("Stack '{}' has been removed!", stack.name));
    Ok(())
}

async fn show_outputs(workspace: &Workspace, name: Option<String>) -> anyhow::Result<()> {
    let context = commands::open_stack(workspace).await?;
    let snapshot = commands::load_snapshot(&context).await?;
    let outputs = snapshot.stack_outputs();
    let show_secrets = workspace.global.show_secrets;
    if let Some(name) = name {
        let value = outputs.get(&name).ok_or_else(|| {
            crate::bad_input(format!(
                "current stack does not have output property `{name}`"
            ))
        })?;
        if workspace.global.json {
            output::json(&value_to_json(value, show_secrets));
        } else {
            output::line(&render::plain_value(value, show_secrets));
        }
        return Ok(());
    }
    if workspace.global.json {
        output::json(&commands::map_to_json(&outputs, show_secrets));
        return Ok(());
    }
    output::line(&format!("Current stack outputs ({}):", outputs.len()));
    if outputs.is_empty() {
        output::line("    No output values currently in this stack");
        return Ok(());
    }
    let mut rows = vec![["OUTPUT".to_owned(), "VALUE".to_owned()]];
    for (key, value) in &outputs {
        rows.push([key.clone(), render::plain_value(value, show_secrets)]);
    }
    for row in render::table(&rows) {
        output::line(&format!("    {row}"));
    }
    Ok(())
}

async fn export(
    workspace: &Workspace,
    file: Option<std::path::PathBuf>,
    version: Option<u64>,
) -> anyhow::Result<()> {
    let context = commands::open_stack(workspace).await?;
    let deployment = match version {
        Some(version) => context
            .backend
            .load_version(&context.stack, version)
            .await?
            .ok_or_else(|| {
                crate::bad_input(format!(
                    "no checkpoint of version {version} is kept for stack `{}`\nhelp: `cairn stack history` lists the versions; the last 10 are kept",
                    context.stack.name
                ))
            })?,
        None => load_current(&context).await?,
    };
    let deployment = if workspace.global.show_secrets {
        cairn_state::deployment::reveal_deployment(&deployment, context.crypter.as_ref())?
    } else {
        deployment
    };
    let untyped = cairn_state::UntypedDeployment {
        version: 3,
        deployment,
    };
    let text = serde_json::to_string_pretty(&untyped).context("rendering the deployment")?;
    match file {
        Some(path) => fs_err::write(path, format!("{text}\n"))?,
        None => output::line(&text),
    }
    Ok(())
}

/// The stack's current deployment (an empty one for a stack never updated).
async fn load_current(context: &commands::StackContext) -> anyhow::Result<cairn_state::Deployment> {
    Ok(
        match context.backend.load_deployment(&context.stack).await? {
            Some(deployment) => deployment,
            None => cairn_state::deployment::encode_snapshot(
                &cairn_core::Snapshot::default(),
                context.crypter.as_ref(),
                &render::now_rfc3339(),
            )?,
        },
    )
}

/// The largest export `stack import` reads.
const MAX_IMPORT_BYTES: u64 = 1024 * 1024 * 1024;

/// Checks a deployment completely (format, URNs, secrets) before anything is written, then
/// replaces the stack's state with it, secrets sealed with this stack's key.
async fn import(workspace: &Workspace, file: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let context = commands::open_stack(workspace).await?;
    // Bounded: an export of 100,000 resources is tens of MB; `/dev/zero` is no export.
    let read = match &file {
        Some(path) => cairn_provider::files::read_input_file(path, MAX_IMPORT_BYTES)
            .map(|text| (path.display().to_string(), text)),
        None => cairn_provider::files::read_bounded(
            std::io::stdin(),
            std::path::Path::new("stdin"),
            MAX_IMPORT_BYTES,
        )
        .map(|text| ("stdin".to_owned(), text)),
    };
    let (source, text) = read.map_err(|error| match error.kind() {
        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => {
            crate::bad_input(error.to_string())
        }
        _ => error.into(),
    })?;
    let untyped: cairn_state::UntypedDeployment = serde_json::from_str(&text).map_err(|error| {
        crate::bad_input(format!(
            "{source}: not a deployment ({error}); nothing was written\nhelp: import what `cairn stack export` (or `pulumi stack export`) prints"
        ))
    })?;
    if untyped.version != cairn_state::deployment::DEPLOYMENT_VERSION {
        return Err(crate::bad_input(format!(
            "{source}: deployment version {} is not supported (expected 3); nothing was written",
            untyped.version
        )));
    }
    // A deployment sealed under another salt (exported from another stack, or by `pulumi`) is
    // opened with that salt and the same passphrase, then sealed again with this stack's.
    let export_salt = untyped
        .deployment
        .secrets_providers
        .as_ref()
        .and_then(|providers| providers.state["salt"].as_str())
        .map(str::to_owned);
    let has_secrets = text.contains(cairn_state::deployment::SECRET_SIGNATURE);
    let opener: Arc<dyn cairn_secrets::Crypter> = match export_salt {
        Some(salt)
            if has_secrets
                && context.config_file.encryption_salt.as_deref() != Some(salt.as_str()) =>
        {
            let passphrase = crate::workspace::passphrase().map_err(crate::bad_input)?;
            Arc::from(
                cairn_secrets::crypter_for_salt(&passphrase, &salt).map_err(|error| {
                    crate::bad_input(format!("{source}: {error}; nothing was written"))
                })?,
            )
        }
        _ => context.crypter.clone(),
    };
    let snapshot = cairn_state::deployment::decode_deployment(&untyped.deployment, opener.as_ref())
        .map_err(|error| {
            crate::bad_input(format!(
                "{source}: {error}; nothing was written\nhelp: secrets are opened with CAIRN_CONFIG_PASSPHRASE, which must be the passphrase the deployment was exported with"
            ))
        })?;
    check_importable(&snapshot, &context.stack, &source)?;
    cairn_ops::admin::import_snapshot(&context.session(), &snapshot, &render::now_rfc3339())
        .await?;
    output::line(&format!(
        "Import complete: stack '{}' now has {} resources.",
        context.stack.name,
        snapshot.resources.len()
    ));
    Ok(())
}

/// Refuses a deployment of another stack, or with resources no provider here can manage.
fn check_importable(
    snapshot: &cairn_core::Snapshot,
    stack: &StackRef,
    source: &str,
) -> anyhow::Result<()> {
    let registry = commands::plugins::builtin_registry()?;
    let mut problems = Vec::new();
    for resource in &snapshot.resources {
        let urn = &resource.urn;
        if urn.stack() != stack.name || urn.project() != stack.project {
            problems.push(format!(
                "`{urn}` belongs to stack `{}` of project `{}`, not `{}` of `{}`",
                urn.stack(),
                urn.project(),
                stack.name,
                stack.project
            ));
            continue;
        }
        let type_ = resource.type_.as_str();
        let known = if let Some(package) = type_
            .strip_prefix("pulumi:providers:")
            .or_else(|| type_.strip_prefix("cairn:providers:"))
        {
            registry.provider(package).is_some()
        } else {
            !resource.custom
                || type_ == "pulumi:pulumi:StackReference"
                || registry.resolve_resource(type_).is_some()
        };
        if !known {
            problems.push(format!("`{urn}`: no provider here manages `{type_}`"));
        }
    }
    // A value nested too deep would make a checkpoint that cannot be read back.
    let states = snapshot.resources.iter().chain(
        snapshot
            .pending_operations
            .iter()
            .map(|operation| &operation.resource),
    );
    for resource in states {
        if let Err(error) = cairn_state::deployment::check_resource_depth(resource) {
            problems.push(error.to_string());
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(crate::bad_input(format!(
        "{source} cannot be imported; nothing was written:\n  {}\nhelp: `cairn plugin ls` lists the providers Cairn has",
        problems.join("\n  ")
    )))
}

async fn history(workspace: &Workspace) -> anyhow::Result<()> {
    let context = commands::open_stack(workspace).await?;
    let updates = context.backend.history(&context.stack).await?;
    if workspace.global.json {
        output::json(&serde_json::to_value(&updates)?);
        return Ok(());
    }
    if updates.is_empty() {
        output::line("Stack has never been updated");
        return Ok(());
    }
    for update in &updates {
        let kind = serde_json::to_value(update.kind)?;
        let result = serde_json::to_value(update.result)?;
        let mut text = format!(
            "Version: {}\nUpdateKind: {}\nStatus: {}\nMessage: {}\nStart: {}\nEnd: {}\nResource changes: {}\n",
            update.version,
            kind.as_str().unwrap_or_default(),
            result.as_str().unwrap_or_default(),
            update.message,
            render::ago(update.start_time),
            render::ago(update.end_time),
            update
                .resource_changes
                .iter()
                .map(|(op, count)| format!("{count} {op}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for (key, value) in &update.environment {
            text.push_str(&format!("    {key}: {value}\n"));
        }
        output::line(&text);
    }
    Ok(())
}

/// Tags Cairn sets itself (seed 000's `GetStackTags`): the project's name and description, and
/// where its git remote lives.
fn automatic_tags(workspace: &Workspace) -> anyhow::Result<BTreeMap<String, String>> {
    let mut tags = BTreeMap::new();
    tags.insert("cairn:project".to_owned(), workspace.project_name()?);
    tags.insert("cairn:runtime".to_owned(), "yaml".to_owned());
    if let Some(description) = workspace.project()?.description.clone() {
        tags.insert("cairn:description".to_owned(), description);
    }
    let environment = crate::git::environment(&workspace.project_dir);
    for key in ["vcs.owner", "vcs.repo", "vcs.kind"] {
        if let Some(value) = environment.get(key) {
            tags.insert(key.replace('.', ":"), value.clone());
        }
    }
    Ok(tags)
}

async fn tag(workspace: &Workspace, command: TagCommand) -> anyhow::Result<()> {
    let context = commands::open_stack(workspace).await?;
    let backend = &context.backend;
    let stack = &context.stack;
    let invalid = |error: cairn_state::BackendError| match error {
        cairn_state::BackendError::InvalidName(message) => crate::bad_input(message),
        other => anyhow::Error::new(other),
    };
    match command {
        TagCommand::Ls => {
            let mut tags = automatic_tags(workspace)?;
            tags.extend(backend.stack_tags(stack).await?);
            if workspace.global.json {
                output::json(&serde_json::to_value(&tags)?);
                return Ok(());
            }
            let mut rows = vec![["NAME".to_owned(), "VALUE".to_owned()]];
            rows.extend(tags.into_iter().map(|(name, value)| [name, value]));
            for row in render::table(&rows) {
                output::line(&row);
            }
        }
        TagCommand::Get { name } => {
            let mut tags = automatic_tags(workspace)?;
            tags.extend(backend.stack_tags(stack).await?);
            match tags.get(&name) {
                Some(value) => output::line(value),
                None => {
                    return Err(crate::bad_input(format!(
                        "stack `{}` has no tag `{name}`\nhelp: `cairn stack tag ls` lists them",
                        stack.name
                    )));
                }
            }
        }
        TagCommand::Set { name, value } => {
            if name.starts_with("cairn:") || name.starts_with("pulumi:") {
                return Err(crate::bad_input(format!(
                    "`{name}` is an automatic tag and cannot be set"
                )));
            }
            backend
                .set_stack_tag(stack, &name, &value)
                .await
                .map_err(invalid)?;
        }
        TagCommand::Rm { name } => backend.remove_stack_tag(stack, &name).await?,
    }
    Ok(())
}

async fn rename(workspace: &Workspace, new_name: &str) -> anyhow::Result<()> {
    let context = commands::open_stack(workspace).await?;
    let session = context.session();
    let old_name = context.stack.name.clone();
    let renamed = cairn_ops::admin::plan_rename(&session, new_name).await?;
    // The stack file may not take the place of another stack's.
    let old_file = workspace.stack_config_path(&old_name);
    let new_file = old_file.with_file_name(
        old_file
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default()
            .replacen(&format!(".{old_name}."), &format!(".{new_name}."), 1),
    );
    // A copy a killed rename left behind is the same file, and may be overwritten.
    let is_leftover_copy = || fs_err::read(&old_file).ok() == fs_err::read(&new_file).ok();
    if old_file.exists() && new_file.exists() && !is_leftover_copy() {
        return Err(crate::bad_input(format!(
            "`{}` already exists: renaming would overwrite another stack's configuration\nhelp: move it away first",
            new_file.display()
        )));
    }
    let files = StackFileMove {
        old: old_file,
        new: new_file,
    };
    cairn_ops::admin::rename_stack(&session, &renamed, &files).await?;
    workspace.select_stack(
        &context.stack.project,
        Some(&renamed.relative_to(&context.stack.project)),
    )?;
    output::line(&format!("Renamed {old_name} to {new_name}"));
    Ok(())
}

/// The stack's config file, following its stack to the new name (keeping its name style,
/// `Cairn.*` or `Pulumi.*`).
struct StackFileMove {
    old: std::path::PathBuf,
    new: std::path::PathBuf,
}

impl cairn_ops::StackFiles for StackFileMove {
    fn copy_to_new_name(&self) -> std::io::Result<()> {
        if !self.old.exists() {
            return Ok(());
        }
        let contents = fs_err::read(&self.old)?;
        crate::atomic_file::write(&self.new, &contents, crate::atomic_file::Access::Shared)
    }

    fn remove_copies(&self) {
        if self.old.exists() {
            let _ = fs_err::remove_file(&self.new);
        }
    }

    fn remove_originals(&self) -> std::io::Result<()> {
        if self.old.exists() {
            fs_err::remove_file(&self.old)?;
        }
        Ok(())
    }
}
