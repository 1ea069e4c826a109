//! The deployment executor: builds the graph of program nodes (variables and resources), runs
//! each node the moment its dependencies finish (bounded by `--parallel`), then deletes what the
//! program no longer declares in reverse dependency order, and assembles the new snapshot.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use cairn_core::{ResourceState, Snapshot, StepOp, Urn};
use cairn_state::{Persister, UpdateResult};
use tokio::sync::mpsc::UnboundedSender;

use crate::dependencies::{resource_dependencies, sort_by_dependencies};
use crate::events::EngineEvent;
use crate::providers::is_default_provider;
use crate::run_state::RunState;
use crate::{Cancellation, DeployOptions, DeployOutcome, DeployRequest, EngineError, Operation};

/// Runs one operation on a stack. Resource failures are collected in the outcome; only a
/// failure to persist state is an `Err`.
pub async fn deploy(
    request: DeployRequest,
    options: DeployOptions,
    persister: Option<Persister>,
    events: UnboundedSender<EngineEvent>,
    cancel: Cancellation,
) -> Result<DeployOutcome, EngineError> {
    let shared = Arc::new(RunState::new(request, options, persister, events, cancel));

    if shared.options.clear_pending {
        let resolved = crate::refresh::resolve_pending(&shared, &shared.old_snapshot()).await;
        shared.set_old(Arc::new(resolved));
    }
    if shared.options.operation == Operation::Refresh || shared.options.refresh {
        let refreshed = crate::refresh::refresh_all(&shared, &shared.old_snapshot()).await;
        shared.set_old(Arc::new(refreshed));
    }
    let old = shared.old_snapshot();
    let remaining = match shared.options.operation {
        Operation::Refresh => Ok(old.resources.clone()),
        Operation::Destroy => destroy_all(&shared, &old).await,
        Operation::Update => Ok(update(&shared, &old).await),
    };
    // Plugin processes configured for this run exit before the state is finished.
    shared.provider_instances().shutdown_all().await;
    finish(shared, old, remaining?).await
}

/// Runs the program and then deletes what it no longer declares. Returns the old resources
/// that stay in state (not re-declared this run and not deleted).
async fn update(shared: &Arc<RunState>, old: &Snapshot) -> Vec<ResourceState> {
    let Some(program) = shared.request.program.clone() else {
        return old.resources.clone();
    };
    crate::stack_resources::register_root(shared).await;
    crate::stack_resources::register_default_providers(shared, &program).await;

    let n_variables = program.variables.len();
    let node_ids: HashMap<&str, usize> = program
        .variables
        .iter()
        .enumerate()
        .map(|(index, variable)| (variable.name.as_str(), index))
        .chain(
            program
                .resources
                .iter()
                .enumerate()
                .map(|(index, resource)| (resource.key.as_str(), n_variables + index)),
        )
        .collect();
    let deps_of = |deps: &cairn_program::Deps| -> Vec<usize> {
        deps.variables
            .iter()
            .filter_map(|name| node_ids.get(name.as_str()).copied())
            .chain(
                deps.resources
                    .iter()
                    .filter_map(|key| node_ids.get(key.as_str()).copied()),
            )
            .collect()
    };
    let dependencies: Vec<Vec<usize>> = program
        .variables
        .iter()
        .map(|variable| deps_of(&variable.deps))
        .chain(
            program
                .resources
                .iter()
                .map(|resource| deps_of(&resource.deps)),
        )
        .collect();

    let run_shared = shared.clone();
    let result = crate::executor::run_dag(
        dependencies,
        &shared.cancel,
        crate::executor::parallel_of(&shared.options),
        move |node| {
            let shared = run_shared.clone();
            async move {
                if node < n_variables {
                    crate::stack_resources::evaluate_variable(&shared, node)
                } else {
                    crate::resources::run_resource(&shared, node - n_variables).await
                }
            }
        },
    )
    .await;
    if !result.blocked.is_empty() {
        let blocked: Vec<crate::Blocked> = result
            .blocked
            .iter()
            .map(|&node| match node.checked_sub(n_variables) {
                Some(resource) => crate::Blocked {
                    name: program.resources[resource].name.clone(),
                    urn: shared.urns.get(resource).cloned(),
                },
                None => crate::Blocked {
                    name: program.variables[node].name.clone(),
                    urn: None,
                },
            })
            .collect();
        // Named, so the user knows what did not change and why (a few, then how many more).
        const NAMED: usize = 10;
        let mut names: Vec<String> = blocked
            .iter()
            .take(NAMED)
            .map(|blocked| match blocked.urn {
                Some(_) => format!("`{}`", blocked.name),
                None => format!("variable `{}`", blocked.name),
            })
            .collect();
        if result.blocked.len() > NAMED {
            names.push(format!("and {} more", result.blocked.len() - NAMED));
        }
        let message = if result.blocked.len() == 1 {
            format!(
                "{} was not changed because something it depends on failed",
                names.join(", ")
            )
        } else {
            format!(
                "{} were not changed because something they depend on failed",
                names.join(", ")
            )
        };
        shared.emit(EngineEvent::Warning(message));
        shared.record_blocked(blocked);
    }
    crate::stack_resources::register_outputs(shared, &program).await;
    shared.forget_resolved();

    // Old resources the program no longer declares, old copies left by earlier replacements,
    // and the ones this run replaced, are deleted last, in reverse dependency order. After a
    // failure nothing is deleted: the state keeps them for the next run.
    let claimed_aliases = shared.take_claimed_aliases();
    let mut program_urns: HashSet<&Urn> = shared.urns.iter().collect();
    program_urns.extend(claimed_aliases.iter());
    let default_provider_refs = shared.default_provider_references();
    let is_kept_provider = |resource: &ResourceState| {
        default_provider_refs.iter().any(|reference| {
            reference
                .strip_prefix(resource.urn.as_str())
                .is_some_and(|id| id.starts_with("::"))
        })
    };
    // Only the old states that leave or stay are copied: copying every old state first (most
    // are superseded) cost a second copy of a large stack's whole state.
    let mut to_delete = Vec::new();
    let mut kept = Vec::new();
    for resource in &old.resources {
        if resource.urn == shared.root_urn {
            continue;
        }
        let is_targeted = shared.is_targeted(&resource.urn);
        if resource.delete && is_targeted {
            to_delete.push(resource.clone());
            continue;
        }
        // A re-declared resource is superseded by its new state (or carried over by `finish`
        // when its step did not run); a default provider in use is registered again.
        if (!resource.delete && program_urns.contains(&resource.urn)) || is_kept_provider(resource)
        {
            continue;
        }
        if is_targeted {
            to_delete.push(resource.clone());
        } else {
            kept.push(resource.clone());
        }
    }
    to_delete.extend(shared.take_replaced());
    let has_failed = shared.has_failed();
    if has_failed || shared.cancel.graceful.is_cancelled() {
        kept.extend(to_delete);
        return kept;
    }
    kept.extend(delete_in_reverse_order(shared, to_delete).await);
    kept
}

/// Deletes every resource of the stack (`destroy`), refusing up front if one is protected.
async fn destroy_all(
    shared: &Arc<RunState>,
    old: &Snapshot,
) -> Result<Vec<ResourceState>, EngineError> {
    let (to_delete, kept): (Vec<ResourceState>, Vec<ResourceState>) = old
        .resources
        .iter()
        .cloned()
        .partition(|resource| shared.is_targeted(&resource.urn));
    let protected: Vec<&str> = to_delete
        .iter()
        .filter(|resource| resource.protect)
        .map(|resource| resource.urn.as_str())
        .collect();
    if !protected.is_empty() {
        return Err(EngineError::Refused(format!(
            "refusing to destroy: {} protected (`{}`); set `protect: false` and run `cairn up`, or run `cairn state unprotect <urn>`",
            if protected.len() == 1 {
                "a resource is"
            } else {
                "resources are"
            },
            protected.join("`, `")
        )));
    }
    let mut remaining = kept;
    remaining.extend(delete_in_reverse_order(shared, to_delete).await);
    Ok(remaining)
}

/// Deletes `resources` so that each goes only after everything in the set that depends on it.
/// Returns the resources that were not deleted (failures, blocked, cancelled).
async fn delete_in_reverse_order(
    shared: &Arc<RunState>,
    resources: Vec<ResourceState>,
) -> Vec<ResourceState> {
    let index_by_urn: HashMap<&Urn, Vec<usize>> =
        resources
            .iter()
            .enumerate()
            .fold(HashMap::new(), |mut map, (index, resource)| {
                map.entry(&resource.urn).or_default().push(index);
                map
            });
    // Node i waits for every node that depends on it.
    let mut wait_for: Vec<Vec<usize>> = vec![Vec::new(); resources.len()];
    for (dependent_index, resource) in resources.iter().enumerate() {
        for dependency in resource_dependencies(resource) {
            for &dependency_index in index_by_urn.get(&dependency).into_iter().flatten() {
                if dependency_index != dependent_index {
                    wait_for[dependency_index].push(dependent_index);
                }
            }
        }
    }
    // A resource whose `deletedWith` resource goes in the same operation is taken with it.
    let deleted_urns: HashSet<Urn> = resources
        .iter()
        .map(|resource| resource.urn.clone())
        .collect();
    let is_taken: Arc<Vec<bool>> = Arc::new(
        resources
            .iter()
            .map(|resource| {
                resource
                    .deleted_with
                    .as_ref()
                    .is_some_and(|urn| deleted_urns.contains(urn))
            })
            .collect(),
    );
    let resources = Arc::new(resources);
    let run_resources = resources.clone();
    let run_shared = shared.clone();
    let result = crate::executor::run_dag(
        wait_for,
        &shared.cancel,
        crate::executor::parallel_of(&shared.options),
        move |node| {
            let shared = run_shared.clone();
            let resources = run_resources.clone();
            let is_taken = is_taken[node];
            async move { crate::delete::delete_resource(&shared, &resources[node], is_taken).await }
        },
    )
    .await;
    resources
        .iter()
        .enumerate()
        .filter(|(index, _)| !result.succeeded[*index])
        .map(|(_, resource)| resource.clone())
        .collect()
}

/// Assembles the new snapshot, persists it, and builds the outcome.
async fn finish(
    shared: Arc<RunState>,
    old: Arc<Snapshot>,
    remaining_old: Vec<ResourceState>,
) -> Result<DeployOutcome, EngineError> {
    let mut builder = shared.take_outcome();
    let mut resources = std::mem::take(&mut builder.new_states);
    // Program resources whose step did not run (blocked, untargeted, cancelled) keep their
    // old state. (`destroy` and `refresh` account for every old resource themselves.)
    let program_urns = match shared.options.operation {
        Operation::Update => shared.urns.as_slice(),
        Operation::Refresh | Operation::Destroy => &[],
    };
    for urn in program_urns {
        if !builder.finished_urns.contains(urn)
            && let Some(old_state) = shared.old_state(urn)
        {
            resources.push(old_state);
        }
    }
    if shared.options.operation == Operation::Update
        && !builder.finished_urns.contains(&shared.root_urn)
        && let Some(root) = shared.old_state(&shared.root_urn)
    {
        resources.push(root);
    }
    resources.extend(remaining_old);
    let snapshot = Snapshot {
        resources: sort_by_dependencies(resources),
        pending_operations: old.pending_operations.clone(),
    };
    // Show steps in the order the program declares its resources (the root first, deletions
    // last), as Pulumi does, not in the order they happened to finish.
    let program_position: HashMap<&Urn, usize> = std::iter::once(&shared.root_urn)
        .chain(shared.urns.iter())
        .enumerate()
        .map(|(position, urn)| (urn, position))
        .collect();
    builder.steps.sort_by_key(|step| {
        let is_delete = step.op == StepOp::Delete;
        (
            is_delete,
            program_position
                .get(&step.urn)
                .copied()
                .unwrap_or(usize::MAX),
        )
    });
    let mut changes = std::collections::BTreeMap::new();
    for step in builder.steps.iter().filter(|step| step.error.is_none()) {
        // Default providers are the engine's bookkeeping; explicit ones count as Pulumi's do.
        if !is_default_provider(&step.urn) {
            *changes.entry(step.op).or_insert(0) += 1;
        }
    }
    let outcome = DeployOutcome {
        outputs: snapshot.stack_outputs(),
        steps: builder.steps,
        changes,
        program_errors: builder.program_errors,
        has_program_error: builder.has_program_error,
        snapshot,
        cancelled: shared.cancel.graceful.is_cancelled(),
        blocked: builder.blocked,
    };
    let shared = Arc::try_unwrap(shared).map_err(|_| {
        EngineError::Refused("internal error: a step task outlived its deployment".to_owned())
    })?;
    if let Some(persister) = shared.into_persister() {
        let result = if outcome.has_failed() {
            UpdateResult::Failed
        } else if outcome.cancelled {
            UpdateResult::Cancelled
        } else {
            UpdateResult::Succeeded
        };
        persister
            .finish(&outcome.snapshot, result, outcome.change_counts())
            .await?;
    }
    Ok(outcome)
}
