//! `cairn cancel`: ends an update whose process died or is stuck, releasing the stack's lock
//! and marking the update cancelled in the history. It never takes a lock over silently: the
//! user sees who held it and confirms. `cairn_ops::admin` releases the lock; waiting for the
//! cancelled process to stop is the terminal's business, here.

use cairn_ops::CancelOutcome;

use crate::cli::CancelArgs;
use crate::commands;
use crate::env;
use crate::output;
use crate::workspace::Workspace;

pub async fn cancel(workspace: &Workspace, args: CancelArgs) -> anyhow::Result<()> {
    let context = commands::open_stack(workspace).await?;
    let stack = &context.stack.name;
    let Some(holder) =
        cairn_ops::admin::plan_cancel(context.backend.as_ref(), &context.stack).await?
    else {
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
            "Stack '{stack}' is held by the update {holder}.\nCancelling it releases the stack; if it is still running, it may go on changing resources. Continue?"
        );
        if !commands::confirm(&question)? {
            return Err(anyhow::anyhow!("confirmation declined, not cancelling"));
        }
    }
    let outcome =
        cairn_ops::admin::cancel(context.backend.as_ref(), &context.stack, &holder).await?;
    if outcome == CancelOutcome::AlreadyEnded {
        output::line(&format!(
            "The update of stack '{stack}' ended by itself; nothing was cancelled. It was held by {holder}."
        ));
        return Ok(());
    }
    output::line(&format!(
        "Cancelled the update of stack '{stack}' and released the stack. It was held by {holder}."
    ));
    if holder.is_stale {
        return Ok(());
    }
    // Its process, if it runs here, starts no new step now (its lock is gone) and ends once its
    // steps in flight do: wait for that, so that what it leaves pending is final before anyone
    // settles it.
    if holder.host == env::host_name() && wait_for_exit(holder.pid).await {
        output::line(&format!("Its process (pid {}) has stopped.", holder.pid));
        return Ok(());
    }
    output::warning(&format!(
        "its process may still be running; run `{}` once it has stopped",
        context.clear_pending_command
    ));
    Ok(())
}

/// How long `cancel` waits for a cancelled update's process on this host to stop.
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Waits (at most `STOP_WAIT`) for process `pid` to exit; whether it did.
async fn wait_for_exit(pid: u32) -> bool {
    if !is_running(pid) {
        return true;
    }
    output::progress(&format!(
        "waiting for its process (pid {pid}) to finish the steps it has in flight"
    ));
    let deadline = std::time::Instant::now() + STOP_WAIT;
    while std::time::Instant::now() < deadline {
        if !is_running(pid) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

/// Whether process `pid` is alive: it exists and is not a zombie (an exited child its parent
/// has not reaped yet does no more work).
fn is_running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (command) S ...`: the state follows the last `)`, as the command may hold one.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z' | 'X') | None)
}
