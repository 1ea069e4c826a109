//! Operations on a stack as a whole: cancel the update holding it (`cairn cancel`), remove it
//! (`cairn stack rm`), rename it (`cairn stack rename`), replace its state (`cairn stack
//! import`). Each is a read-only plan, for the
//! front end to show and confirm, and its application, which checks again what it depends on.

use cairn_state::{Backend, BackendError, LockOwner, StackRef};

use crate::{Caller, OpsError, StackSession, lock_stack};

/// Replaces the stack's state with `snapshot` (`cairn stack import`), under the stack's lock,
/// its secrets sealed with the stack's own.
pub async fn import_snapshot(
    session: &StackSession,
    snapshot: &cairn_core::Snapshot,
    manifest_time: &str,
) -> Result<(), OpsError> {
    let backend = session.backend.as_ref();
    let _lock = lock_stack(
        backend,
        &session.stack,
        &session.caller,
        &session.cancel_command,
    )
    .await?;
    let deployment = cairn_state::deployment::encode_snapshot(
        snapshot,
        session.crypter.as_ref(),
        manifest_time,
    )?;
    backend
        .import_deployment(&session.stack, deployment)
        .await?;
    Ok(())
}

/// Who holds `stack`'s lock, if anyone: the update `cancel` would end.
pub async fn plan_cancel(
    backend: &dyn Backend,
    stack: &StackRef,
) -> Result<Option<LockOwner>, OpsError> {
    Ok(backend.lock_holder(stack).await?)
}

/// What `cancel` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The holder's update is marked cancelled and the stack released.
    Cancelled(LockOwner),
    /// The update ended by itself after the plan; nothing was changed.
    AlreadyEnded,
}

/// Ends the update `holder` (from `plan_cancel`) holds on `stack`, releasing the lock. Refused
/// when another process holds the stack now: the user confirmed cancelling that update, not
/// whichever came after it.
pub async fn cancel(
    backend: &dyn Backend,
    stack: &StackRef,
    holder: &LockOwner,
) -> Result<CancelOutcome, OpsError> {
    let same_hold = |current: &LockOwner| {
        current.pid == holder.pid
            && current.host == holder.host
            && current.started == holder.started
    };
    match backend.lock_holder(stack).await? {
        None => return Ok(CancelOutcome::AlreadyEnded),
        Some(current) if !same_hold(&current) => {
            return Err(OpsError::Refused(format!(
                "stack `{}` is now held by {current}, not by the update that was to be cancelled; nothing was changed",
                stack.name
            )));
        }
        Some(_) => {}
    }
    Ok(match backend.cancel(stack).await? {
        Some(released) => CancelOutcome::Cancelled(released),
        None => CancelOutcome::AlreadyEnded,
    })
}

/// What `remove_stack` would remove.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemovePlan {
    pub stack: StackRef,
    /// Remove it even with resources or pending operations (their state is lost; the
    /// resources themselves are left as they are).
    pub force: bool,
    /// Resources and pending operations in its state; not read when forced (a corrupt stack
    /// can still be removed).
    pub resources: Option<usize>,
}

/// Plans removing `stack`: it must exist and, unless `force`, hold no resources.
pub async fn plan_remove_stack(
    backend: &dyn Backend,
    stack: &StackRef,
    force: bool,
) -> Result<RemovePlan, OpsError> {
    if !backend.stack_exists(stack).await? {
        return Err(BackendError::StackNotFound(stack.name.clone()).into());
    }
    let resources = if force {
        None
    } else {
        let count = backend
            .load_deployment(stack)
            .await?
            .map_or(0, |deployment| deployment.count_resources_and_pending());
        if count > 0 {
            return Err(has_resources(&stack.name, count));
        }
        Some(count)
    };
    Ok(RemovePlan {
        stack: stack.clone(),
        force,
        resources,
    })
}

/// Removes the stack `plan` names, under its lock like any other writer: refused while an
/// update (or anything else) holds it.
pub async fn remove_stack(
    backend: &dyn Backend,
    plan: &RemovePlan,
    caller: &Caller,
    cancel_command: &str,
) -> Result<(), OpsError> {
    let lock = lock_stack(backend, &plan.stack, caller, cancel_command).await?;
    // The backend counts again under the lock: an update may have run since the plan.
    backend
        .remove_stack(&plan.stack, plan.force, lock.as_ref())
        .await
        .map_err(|error| match error {
            BackendError::StackHasResources { stack, count } => has_resources(&stack, count),
            other => other.into(),
        })
}

fn has_resources(stack: &str, count: usize) -> OpsError {
    OpsError::Refused(format!(
        "stack `{stack}` still has {count} resources or pending operations\nhelp: run `cairn refresh --clear-pending` and `cairn destroy` first, or pass `--force` to remove the stack anyway"
    ))
}

/// The front end's files named after a stack (its config file), moved in step with its state
/// so that a rename killed midway, which the next access finishes, finds them under the new
/// name.
pub trait StackFiles {
    /// Copies them under the new name, before the state moves.
    fn copy_to_new_name(&self) -> std::io::Result<()>;
    /// Removes the copies: the state did not move.
    fn remove_copies(&self);
    /// Removes the originals, once the state has moved.
    fn remove_originals(&self) -> std::io::Result<()>;
}

/// Plans renaming the session's stack to `new_name`: a valid name no stack of the project has.
pub async fn plan_rename(session: &StackSession, new_name: &str) -> Result<StackRef, OpsError> {
    cairn_state::stack_ref::validate_stack_name(new_name).map_err(OpsError::Input)?;
    let renamed = StackRef {
        name: new_name.to_owned(),
        ..session.stack.clone()
    };
    if session.backend.stack_exists(&renamed).await? {
        return Err(OpsError::Input(format!(
            "stack `{new_name}` already exists"
        )));
    }
    Ok(renamed)
}

/// Renames the session's stack to `renamed` (from `plan_rename`) under its lock, so no update
/// starts while it moves; the state, history, tags and logs move in the backend, `files` with
/// them.
pub async fn rename_stack(
    session: &StackSession,
    renamed: &StackRef,
    files: &dyn StackFiles,
) -> Result<(), OpsError> {
    let lock = session.lock().await?;
    files.copy_to_new_name().map_err(OpsError::Files)?;
    let moved = session
        .backend
        .rename_stack(&session.stack, &renamed.name, lock.as_ref())
        .await;
    if let Err(error) = moved {
        files.remove_copies();
        return Err(match error {
            BackendError::InvalidName(message) => OpsError::Input(message),
            BackendError::StackAlreadyExists(name) => {
                OpsError::Input(format!("stack `{name}` already exists"))
            }
            other => other.into(),
        });
    }
    files.remove_originals().map_err(OpsError::Files)
}
