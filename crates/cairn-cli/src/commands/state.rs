//! `cairn state delete|unprotect|repair`: direct edits of a stack's state, done by
//! `cairn_ops::StateEditor` under the stack's lock. Each plan is shown and confirmed here
//! before it is applied. With `--json` the plan goes to stderr and the outcome is one JSON
//! object on stdout.

use cairn_core::Urn;
use cairn_ops::{DeletePlan, RepairOutcome, RepairPlan, StateEditor};
use cairn_state::JournalDamage;

use crate::cli::StateCommand;
use crate::commands::{self, StackContext};
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

/// A line of a plan: on stdout, unless stdout is for the JSON outcome.
fn plan_line(workspace: &Workspace, text: &str) {
    if workspace.global.json {
        output::progress(text);
    } else {
        output::line(text);
    }
}

async fn delete(workspace: &Workspace, urn: &str, force: bool, yes: bool) -> anyhow::Result<()> {
    let plan = delete_resource(workspace, urn, force, yes).await?;
    if workspace.global.json {
        output::json(&serde_json::json!({
            "urn": plan.urn.as_str(),
            "id": plan.id,
            "removed": true,
        }));
    } else {
        output::line(&format!(
            "Resource `{}` was removed from the state.",
            plan.urn
        ));
    }
    Ok(())
}

/// Removes `urn` from the selected stack's state once confirmed, printing nothing on success:
/// `state delete` and `group free` each say what it means.
pub(super) async fn delete_resource(
    workspace: &Workspace,
    urn: &str,
    force: bool,
    yes: bool,
) -> anyhow::Result<DeletePlan> {
    let urn = parse_urn(urn)?;
    let context = commands::open_stack(workspace).await?;
    let session = context.session();
    let editor = StateEditor::open(&session).await?;
    let plan = editor.plan_delete(&urn, force).await?;
    confirm_edit(
        yes,
        &format!(
            "This removes `{urn}` from the state; the resource itself is left as it is. Continue?"
        ),
    )?;
    editor.delete(plan.clone()).await?;
    Ok(plan)
}

async fn unprotect(workspace: &Workspace, urn: &str, yes: bool) -> anyhow::Result<()> {
    let urn = parse_urn(urn)?;
    let context = commands::open_stack(workspace).await?;
    let session = context.session();
    let editor = StateEditor::open(&session).await?;
    let plan = editor.plan_unprotect(&urn).await?;
    let was_protected = plan.was_protected;
    if was_protected {
        confirm_edit(yes, &format!("Unprotect `{urn}`?"))?;
        editor.unprotect(plan).await?;
    }
    if workspace.global.json {
        output::json(&serde_json::json!({
            "urn": urn.as_str(),
            "unprotected": was_protected,
        }));
    } else if was_protected {
        output::line(&format!("Resource `{urn}` is no longer protected."));
    } else {
        output::line(&format!("Resource `{urn}` is not protected."));
    }
    Ok(())
}

/// Salvages a damaged journal first (the state behind it cannot be read before), then repairs
/// the resources; each step is shown and confirmed.
async fn repair(workspace: &Workspace, yes: bool) -> anyhow::Result<()> {
    let context = commands::open_stack(workspace).await?;
    let session = context.session();
    let editor = StateEditor::open(&session).await?;
    let mut outcome = RepairOutcome::default();
    let mut plan = editor.plan_repair().await?;
    if let Some(damage) = &plan.salvage {
        show_salvage(workspace, &context, damage);
        confirm_edit(yes, "Salvage the journal?")?;
        let salvaged = editor.repair(plan).await?;
        if let Some(salvaged) = &salvaged.salvaged {
            plan_line(
                workspace,
                &format!(
                    "Kept {} records of the journal; the damaged journal is now `{}`.",
                    salvaged.kept_records,
                    salvaged.moved_to.as_deref().unwrap_or("(not moved)")
                ),
            );
            if !salvaged.damaged_urns.is_empty() {
                output::warning(&format!(
                    "the damaged part of the journal names `{}`: what it recorded of them is not in the state; run `cairn refresh`, and `cairn import` those that exist but are missing from the state",
                    salvaged.damaged_urns.join("`, `")
                ));
            }
        }
        outcome.merge(salvaged);
        plan = editor.plan_repair().await?;
    }
    if !plan.changes.is_empty() {
        show_changes(workspace, &plan);
        if let Err(declined) = confirm_edit(yes, "Apply these changes?") {
            if outcome.nothing_to_do() {
                return Err(declined);
            }
            // The journal is salvaged already: say so, not "nothing was changed".
            report_repair(workspace, &context, &outcome);
            return Err(anyhow::anyhow!(
                "confirmation declined: the journal was salvaged, the changes above were not made"
            ));
        }
        outcome.merge(editor.repair(plan).await?);
    }
    drop(editor);
    report_repair(workspace, &context, &outcome);
    Ok(())
}

fn show_salvage(workspace: &Workspace, context: &StackContext, damage: &JournalDamage) {
    plan_line(
        workspace,
        &format!(
            "The journal of an interrupted update of stack '{}' is damaged at {} ({}). Repairing the state will:",
            context.stack.name, damage.location, damage.reason
        ),
    );
    plan_line(
        workspace,
        &format!(
            "  - keep the {} intact records before the damage, applied to the last checkpoint",
            damage.kept_records
        ),
    );
    if !damage.pending.is_empty() {
        plan_line(
            workspace,
            &format!(
                "  - keep the {} operations they began and did not finish as pending operations (`{}`)",
                damage.pending.len(),
                damage.pending.join("`, `")
            ),
        );
    }
    plan_line(
        workspace,
        &format!(
            "  - move the journal aside, with its {} damaged lines (nothing is deleted)",
            damage.damaged_lines
        ),
    );
}

fn show_changes(workspace: &Workspace, plan: &RepairPlan) {
    plan_line(workspace, "Repairing the state will:");
    for change in &plan.changes {
        plan_line(workspace, &format!("  - {change}"));
    }
}

/// What the repair did, all of it: a salvage followed by nothing more is still a repair.
fn report_repair(workspace: &Workspace, context: &StackContext, outcome: &RepairOutcome) {
    let stack = &context.stack.name;
    if workspace.global.json {
        let salvaged = outcome.salvaged.as_ref().map(|salvaged| {
            serde_json::json!({
                "location": salvaged.location,
                "reason": salvaged.reason,
                "keptRecords": salvaged.kept_records,
                "pending": salvaged.pending,
                "damagedLines": salvaged.damaged_lines,
                "damagedUrns": salvaged.damaged_urns,
                "movedTo": salvaged.moved_to,
            })
        });
        let repaired: Vec<String> = outcome.repaired.iter().map(ToString::to_string).collect();
        output::json(&serde_json::json!({
            "stack": stack,
            "changed": !outcome.nothing_to_do(),
            "salvaged": salvaged,
            "repaired": repaired,
        }));
    } else if outcome.nothing_to_do() {
        output::line(&format!("The state of stack '{stack}' needs no repair."));
    } else {
        output::line(&format!("The state of stack '{stack}' was repaired:"));
        if let Some(salvaged) = &outcome.salvaged {
            output::line(&format!(
                "  - salvaged its damaged journal, keeping {} records",
                salvaged.kept_records
            ));
        }
        for change in &outcome.repaired {
            output::line(&format!("  - {change}"));
        }
    }
    if outcome
        .salvaged
        .as_ref()
        .is_some_and(|salvaged| !salvaged.pending.is_empty())
    {
        plan_line(
            workspace,
            &format!(
                "Settle the pending operations with `{}`.",
                context.clear_pending_command
            ),
        );
    }
}
