//! `cairn state delete|unprotect|repair`: direct edits of a stack's state, under the stack's
//! lock, each shown and confirmed before anything is written. `repair` also salvages the journal
//! of an interrupted update that is damaged before its end.

use std::collections::HashSet;

use cairn_core::{ResourceState, Snapshot, Urn};

use crate::cli::StateCommand;
use crate::commands::{self, StackContext, render};
use crate::output;
use crate::workspace::Workspace;

pub async fn run(workspace: &Workspace, command: StateCommand) -> anyhow::Result<()> {
    match command {
        StateCommand::Delete { urn, force, yes } => delete(workspace, &urn, force, yes).await,
        StateCommand::Unprotect { urn, yes } => unprotect(workspace, &urn, yes).await,
        StateCommand::Repair { yes } => repair(workspace, yes).await,
    }
}

fn parse_urn(text: &str) -> anyhow::Result<Urn> {
    Urn::parse(text).map_err(|error| {
        crate::bad_input(format!(
            "{error}\nhelp: `cairn stack export` lists the stack's URNs"
        ))
    })
}

fn confirm_edit(yes: bool, question: &str) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !commands::is_interactive() {
        return Err(crate::bad_input(
            "--yes must be passed to edit the state when not running in a terminal; nothing was changed",
        ));
    }
    if commands::confirm(question)? {
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "confirmation declined, nothing was changed"
        ))
    }
}

fn find<'a>(snapshot: &'a Snapshot, urn: &Urn, stack: &str) -> anyhow::Result<&'a ResourceState> {
    snapshot
        .resources
        .iter()
        .find(|resource| &resource.urn == urn && !resource.delete)
        .ok_or_else(|| crate::bad_input(format!("no resource `{urn}` in stack `{stack}`")))
}

async fn save(context: &StackContext, snapshot: &Snapshot) -> anyhow::Result<()> {
    let deployment = cairn_state::deployment::encode_snapshot(
        snapshot,
        context.crypter.as_ref(),
        &render::now_rfc3339(),
    )?;
    context
        .backend
        .import_deployment(&context.stack, deployment)
        .await?;
    Ok(())
}

/// The URN a provider reference (`urn::id`) points at.
fn provider_urn(reference: &str) -> Option<&str> {
    reference.rsplit_once("::").map(|(urn, _id)| urn)
}

pub(super) async fn delete(
    workspace: &Workspace,
    urn: &str,
    force: bool,
    yes: bool,
) -> anyhow::Result<()> {
    let urn = parse_urn(urn)?;
    let context = commands::open_stack(workspace).await?;
    let _lock = commands::lock_stack(&context).await?;
    let mut snapshot = commands::load_snapshot(&context).await?;
    let target = find(&snapshot, &urn, &context.stack.name)?.clone();
    let dependents: Vec<&str> = snapshot
        .resources
        .iter()
        .filter(|resource| {
            resource.parent.as_ref() == Some(&urn)
                || resource.dependencies.contains(&urn)
                || resource.provider.as_deref().and_then(provider_urn) == Some(urn.as_str())
        })
        .map(|resource| resource.urn.as_str())
        .collect();
    if !dependents.is_empty() && !force {
        return Err(anyhow::anyhow!(
            "`{urn}` cannot be removed from the state: {} depend on it (`{}`)\nhelp: remove those first, or pass `--force` to remove it anyway",
            dependents.len(),
            dependents.join("`, `")
        ));
    }
    if target.protect && !force {
        return Err(anyhow::anyhow!(
            "`{urn}` is protected\nhelp: run `cairn state unprotect {urn}` first, or pass `--force`"
        ));
    }
    confirm_edit(
        yes,
        &format!(
            "This removes `{urn}` from the state; the resource itself is left as it is. Continue?"
        ),
    )?;
    snapshot
        .resources
        .retain(|resource| resource.urn != urn || resource.id != target.id);
    save(&context, &snapshot).await?;
    output::line(&format!("Resource `{urn}` was removed from the state."));
    Ok(())
}

async fn unprotect(workspace: &Workspace, urn: &str, yes: bool) -> anyhow::Result<()> {
    let urn = parse_urn(urn)?;
    let context = commands::open_stack(workspace).await?;
    let _lock = commands::lock_stack(&context).await?;
    let mut snapshot = commands::load_snapshot(&context).await?;
    let target = find(&snapshot, &urn, &context.stack.name)?;
    if !target.protect {
        output::line(&format!("Resource `{urn}` is not protected."));
        return Ok(());
    }
    confirm_edit(yes, &format!("Unprotect `{urn}`?"))?;
    for resource in &mut snapshot.resources {
        if resource.urn == urn {
            resource.protect = false;
        }
    }
    save(&context, &snapshot).await?;
    output::line(&format!("Resource `{urn}` is no longer protected."));
    Ok(())
}

/// What `repair` would change, in words, and the repaired snapshot.
fn plan_repair(snapshot: &Snapshot) -> (Vec<String>, Snapshot) {
    let mut changes = Vec::new();
    let known: HashSet<&Urn> = snapshot
        .resources
        .iter()
        .map(|resource| &resource.urn)
        .collect();
    let mut repaired = snapshot.clone();
    for resource in &mut repaired.resources {
        let before = resource.dependencies.len();
        resource
            .dependencies
            .retain(|dependency| known.contains(dependency));
        if resource.dependencies.len() != before {
            changes.push(format!(
                "drop {} dependencies of `{}` on resources that do not exist",
                before - resource.dependencies.len(),
                resource.urn
            ));
        }
        if let Some(parent) = &resource.parent
            && !known.contains(parent)
        {
            changes.push(format!(
                "clear the parent of `{}` (`{parent}` does not exist)",
                resource.urn
            ));
            resource.parent = None;
        }
        if let Some(provider) = resource.provider.as_deref().and_then(provider_urn)
            && !known.iter().any(|urn| urn.as_str() == provider)
        {
            changes.push(format!(
                "clear the provider of `{}` (`{provider}` does not exist)",
                resource.urn
            ));
            resource.provider = None;
        }
        for (property, urns) in resource.property_dependencies.iter_mut() {
            let before = urns.len();
            urns.retain(|dependency| known.contains(dependency));
            if urns.len() != before {
                changes.push(format!(
                    "drop dependencies of `{}`'s `{property}` on resources that do not exist",
                    resource.urn
                ));
            }
        }
    }
    let ordered = cairn_engine::sort_by_dependencies(repaired.resources.clone());
    if ordered
        .iter()
        .map(|resource| &resource.urn)
        .ne(repaired.resources.iter().map(|resource| &resource.urn))
    {
        changes.push("put resources in dependency order".to_owned());
    }
    repaired.resources = ordered;
    (changes, repaired)
}

/// Salvages the journal of an interrupted update when it is damaged before its end (which stops
/// every other command): what the backend keeps and sets aside is shown and confirmed first.
async fn salvage_journal(
    context: &StackContext,
    lock: &dyn cairn_state::StackLock,
    yes: bool,
) -> anyhow::Result<()> {
    let Some(damage) = context.backend.journal_damage(&context.stack).await? else {
        return Ok(());
    };
    output::line(&format!(
        "The journal of an interrupted update of stack '{}' is damaged at {} ({}). Repairing the state will:",
        context.stack.name, damage.location, damage.reason
    ));
    output::line(&format!(
        "  - keep the {} intact records before the damage, applied to the last checkpoint",
        damage.kept_records
    ));
    if !damage.pending.is_empty() {
        output::line(&format!(
            "  - keep the {} operations they began and did not finish as pending operations (`{}`)",
            damage.pending.len(),
            damage.pending.join("`, `")
        ));
    }
    output::line(&format!(
        "  - move the journal aside, with its {} damaged lines (nothing is deleted)",
        damage.damaged_lines
    ));
    confirm_edit(yes, "Salvage the journal?")?;
    let Some(salvaged) = context
        .backend
        .salvage_journal(&context.stack, lock)
        .await?
    else {
        return Ok(());
    };
    output::line(&format!(
        "Kept {} records of the journal; the damaged journal is now `{}`.",
        salvaged.kept_records,
        salvaged.moved_to.as_deref().unwrap_or("(not moved)")
    ));
    if !salvaged.damaged_urns.is_empty() {
        output::warning(&format!(
            "the damaged part of the journal names `{}`: what it recorded of them is not in the state; run `cairn refresh`, and `cairn import` those that exist but are missing from the state",
            salvaged.damaged_urns.join("`, `")
        ));
    }
    if !salvaged.pending.is_empty() {
        output::line(&format!(
            "Settle the pending operations with `{}`.",
            context.clear_pending_command
        ));
    }
    Ok(())
}

async fn repair(workspace: &Workspace, yes: bool) -> anyhow::Result<()> {
    let context = commands::open_stack(workspace).await?;
    let lock = commands::lock_stack(&context).await?;
    salvage_journal(&context, lock.as_ref(), yes).await?;
    let snapshot = commands::load_snapshot(&context).await?;
    let (changes, repaired) = plan_repair(&snapshot);
    if changes.is_empty() {
        output::line(&format!(
            "The state of stack '{}' needs no repair.",
            context.stack.name
        ));
        return Ok(());
    }
    output::line("Repairing the state will:");
    for change in &changes {
        output::line(&format!("  - {change}"));
    }
    confirm_edit(yes, "Apply these changes?")?;
    save(&context, &repaired).await?;
    output::line(&format!(
        "The state of stack '{}' was repaired.",
        context.stack.name
    ));
    Ok(())
}
