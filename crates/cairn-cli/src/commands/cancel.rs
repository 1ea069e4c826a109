//! `cairn cancel`: ends an update whose process died or is stuck, releasing the stack's lock
//! and marking the update cancelled in the history. It never takes a lock over silently: the
//! user sees who held it and confirms.

use crate::cli::CancelArgs;
use crate::commands;
use crate::output;
use crate::workspace::Workspace;

pub async fn cancel(workspace: &Workspace, args: CancelArgs) -> anyhow::Result<()> {
    let context = commands::open_stack(workspace).await?;
    let stack = &context.stack.name;
    let Some(holder) = context.backend.lock_holder(&context.stack).await? else {
        output::line(&format!("Stack '{stack}' has no update in progress."));
        return Ok(());
    };
    if !args.yes {
        if !commands::is_interactive() {
            return Err(crate::bad_input(format!(
                "stack `{stack}` is locked by {holder}\nhelp: pass `--yes` to cancel it when not running in a terminal"
            )));
        }
        let question = format!(
            "The update {holder} holds stack '{stack}'. Cancelling it releases the stack; if it is still running, it may go on changing resources. Continue?"
        );
        if !commands::confirm(&question)? {
            return Err(anyhow::anyhow!("confirmation declined, not cancelling"));
        }
    }
    context.backend.cancel(&context.stack).await?;
    output::line(&format!(
        "The update {holder} of stack '{stack}' has been cancelled and the stack released."
    ));
    if !holder.is_stale {
        output::warning(&format!(
            "its process may still be running; run `{}` once it has stopped",
            context.clear_pending_command
        ));
    }
    Ok(())
}
