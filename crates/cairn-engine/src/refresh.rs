//! Refreshing: reading every resource's live state from its provider and recording drift (a
//! changed resource is a `refresh` step, a vanished one a `delete`), and resolving the pending
//! operations an interrupted update left behind.

use std::sync::Arc;
use std::time::Instant;

use cairn_core::{
    PendingOperation, PendingOperationKind, PropertyMap, ResourceState, Snapshot, StepOp, Value,
};

use crate::events::StepError;
use crate::events::{EngineEvent, StepRecord};
use crate::provider_calls::{is_provider_managed, provider_for, read_live};
use crate::run_state::RunState;
use crate::secrets::{reseal_outputs, reveal_map};

/// Reads every resource's live state from its provider and returns the refreshed snapshot.
pub(crate) async fn refresh_all(shared: &Arc<RunState>, old: &Snapshot) -> Snapshot {
    let resources = Arc::new(old.resources.clone());
    let refreshed: Arc<std::sync::Mutex<Vec<Option<ResourceState>>>> = Arc::new(
        std::sync::Mutex::new(old.resources.iter().cloned().map(Some).collect()),
    );
    let run_shared = shared.clone();
    let run_resources = resources.clone();
    let run_refreshed = refreshed.clone();
    crate::executor::run_dag(
        vec![Vec::new(); resources.len()],
        &shared.cancel,
        crate::executor::parallel_of(&shared.options),
        move |index| {
            let shared = run_shared.clone();
            let resources = run_resources.clone();
            let refreshed = run_refreshed.clone();
            async move {
                let resource = &resources[index];
                match refresh_resource(&shared, resource).await {
                    Ok(new_state) => {
                        if let Ok(mut refreshed) = refreshed.lock() {
                            refreshed[index] = new_state;
                        }
                        true
                    }
                    Err(error) => {
                        shared.record_error(
                            StepOp::Refresh,
                            &resource.urn,
                            resource.parent.as_ref(),
                            error,
                        );
                        false
                    }
                }
            }
        },
    )
    .await;
    let refreshed = match Arc::try_unwrap(refreshed) {
        Ok(mutex) => mutex.into_inner().unwrap_or_default(),
        Err(shared_refreshed) => shared_refreshed
            .lock()
            .map(|refreshed| refreshed.clone())
            .unwrap_or_default(),
    };
    Snapshot {
        resources: refreshed.into_iter().flatten().collect(),
        pending_operations: old.pending_operations.clone(),
    }
}

/// Refreshes one resource: `Ok(None)` when it no longer exists.
async fn refresh_resource(
    shared: &Arc<RunState>,
    resource: &ResourceState,
) -> Result<Option<ResourceState>, StepError> {
    if resource.delete || !is_provider_managed(resource) {
        return Ok(Some(resource.clone()));
    }
    let started = Instant::now();
    let typed = provider_for(shared, &resource.type_, resource.provider.as_deref()).await?;
    let _permit = shared.acquire_permit().await?;
    let read = read_live(shared, &typed, resource).await?;
    let new_state = read.map(|read| {
        let mut state = resource.clone();
        state.id = read.id;
        if !read.inputs.is_empty() {
            state.inputs =
                reseal_outputs(shared.secrets(), &resource.inputs, read.inputs, &|_| false);
        }
        state.outputs = reseal_outputs(shared.secrets(), &resource.inputs, read.outputs, &|key| {
            typed.is_secret_output(key) || resource.outputs.get(key).is_some_and(Value::is_secret)
        });
        state
    });
    let op = match &new_state {
        None => StepOp::Delete,
        Some(state) if reveal_map(&state.outputs) != reveal_map(&resource.outputs) => {
            StepOp::Refresh
        }
        Some(_) => StepOp::Same,
    };
    if op != StepOp::Same && !shared.is_dry_run() {
        let pending = shared
            .begin(PendingOperationKind::Reading, resource)
            .await?;
        shared
            .end(pending, Some(resource), new_state.as_ref())
            .await?;
    }
    let mut record = StepRecord::new(
        op,
        resource.urn.clone(),
        resource.type_.clone(),
        resource.parent.clone(),
    );
    record.old_inputs = Some(resource.outputs.clone());
    record.new_inputs = new_state.as_ref().map(|state| state.outputs.clone());
    if let Some(state) = &new_state {
        record.changed_keys = changed_keys(&resource.outputs, &state.outputs);
        record.outputs = state.outputs.clone();
    }
    record.duration = started.elapsed();
    shared.record_step(record);
    Ok(new_state)
}

fn changed_keys(old: &PropertyMap, new: &PropertyMap) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter(|key| old.get(*key).map(Value::reveal) != new.get(*key).map(Value::reveal))
        .cloned()
        .collect()
}

/// Asks the providers what became of each pending operation and returns the snapshot without
/// them: a create that happened is adopted (an `import` step), one that did not is dropped; a
/// delete that happened removes the resource. Updates and reads leave the resource as recorded,
/// for the refresh that follows to bring up to date.
pub(crate) async fn resolve_pending(shared: &Arc<RunState>, old: &Snapshot) -> Snapshot {
    let mut snapshot = Snapshot {
        resources: old.resources.clone(),
        pending_operations: Vec::new(),
    };
    for operation in &old.pending_operations {
        match resolve_one(shared, operation, &snapshot.resources).await {
            Ok(Resolution::Adopted(mut state)) => {
                // A live copy under the same URN is never replaced by what an interrupted
                // create left: that copy may be the one a later `up` made. The adopted copy
                // waits for deletion instead, and the next `up` removes it (or, when the create
                // was a replacement, replaces again).
                if let Some(live) = snapshot
                    .resources
                    .iter()
                    .find(|resource| resource.urn == state.urn && !resource.delete)
                {
                    shared.emit(EngineEvent::Warning(format!(
                        "the interrupted create of `{}` did happen (ID `{}`), but the resource has a live copy (ID `{}`); the created copy is kept for deletion by the next `up`",
                        state.urn, state.id, live.id
                    )));
                    state.delete = true;
                }
                snapshot.resources.push(*state);
            }
            Ok(Resolution::Deleted) => snapshot.resources.retain(|resource| {
                resource.urn != operation.resource.urn || resource.id != operation.resource.id
            }),
            Ok(Resolution::Unchanged) => {}
            Err(error) => {
                // Keep what cannot be resolved, so nothing is forgotten.
                snapshot.pending_operations.push(operation.clone());
                shared.record_error(
                    StepOp::Refresh,
                    &operation.resource.urn,
                    operation.resource.parent.as_ref(),
                    error,
                );
            }
        }
    }
    snapshot.resources = crate::dependencies::sort_by_dependencies(snapshot.resources);
    snapshot
}

enum Resolution {
    Adopted(Box<ResourceState>),
    Deleted,
    Unchanged,
}

async fn resolve_one(
    shared: &Arc<RunState>,
    operation: &PendingOperation,
    known: &[ResourceState],
) -> Result<Resolution, StepError> {
    let resource = &operation.resource;
    if !is_provider_managed(resource)
        || !matches!(
            operation.kind,
            PendingOperationKind::Creating | PendingOperationKind::Deleting
        )
    {
        return Ok(Resolution::Unchanged);
    }
    let typed = provider_for(shared, &resource.type_, resource.provider.as_deref()).await?;
    let read = read_live(shared, &typed, resource).await?;
    let mut record = StepRecord::new(
        StepOp::Same,
        resource.urn.clone(),
        resource.type_.clone(),
        resource.parent.clone(),
    );
    let resolution = match (operation.kind, read) {
        // The provider found a resource already tracked: the create itself never happened (in
        // a replacement, the old copy is what it found).
        (PendingOperationKind::Creating, Some(read))
            if known
                .iter()
                .any(|existing| existing.urn == resource.urn && existing.id == read.id) =>
        {
            return Ok(Resolution::Unchanged);
        }
        // The create never returned, so its ID was never known; a provider that answers
        // without one cannot tell what was created (a command leaves nothing to look up).
        // Adopting an ID-less copy would record a half-done create as done, never to run again.
        (PendingOperationKind::Creating, Some(read)) if read.id.is_empty() => {
            shared.emit(EngineEvent::Warning(format!(
                "cannot tell whether the interrupted create of `{}` happened: its provider has no way to look it up; it is dropped from the state, and the next `up` runs its create again",
                resource.urn
            )));
            return Ok(Resolution::Unchanged);
        }
        (PendingOperationKind::Creating, Some(read)) => {
            let mut state = resource.clone();
            state.id = read.id;
            state.outputs =
                reseal_outputs(shared.secrets(), &resource.inputs, read.outputs, &|_| false);
            if !shared.is_dry_run() {
                let pending = shared.begin(PendingOperationKind::Reading, &state).await?;
                shared.end(pending, None, Some(&state)).await?;
            }
            record.op = StepOp::Import;
            record.outputs = state.outputs.clone();
            Resolution::Adopted(Box::new(state))
        }
        (PendingOperationKind::Creating, None) => {
            shared.emit(EngineEvent::Warning(format!(
                "the interrupted create of `{}` never happened; it is forgotten",
                resource.urn
            )));
            return Ok(Resolution::Unchanged);
        }
        (PendingOperationKind::Deleting, None) => {
            if !shared.is_dry_run() {
                let pending = shared
                    .begin(PendingOperationKind::Reading, resource)
                    .await?;
                shared.end(pending, Some(resource), None).await?;
            }
            record.op = StepOp::Delete;
            Resolution::Deleted
        }
        _ => Resolution::Unchanged,
    };
    shared.record_step(record);
    Ok(resolution)
}
