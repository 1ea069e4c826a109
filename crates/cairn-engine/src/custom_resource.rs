//! A provider-managed program resource's step: evaluated inputs checked and diffed by its
//! provider, the step decided (`same`, `create`, `update`, `replace`) and carried out with the
//! intent recorded first; `get` reads an existing resource and `import` adopts one.

use std::sync::Arc;
use std::time::Instant;

use cairn_core::{PendingOperationKind, PropertyMap, ResourceState, StepOp, Value};
use cairn_provider::CallContext;

use crate::events::EngineEvent;
use crate::events::{FailureCause, StepError};
use crate::plan::{Decision, apply_ignore_changes, decide};
use crate::provider_calls::{
    TypeProvider, call_provider, create_with_provider, delete_with_provider, provider_for,
};
use crate::providers::{UNKNOWN_ID, explicit_provider_key};
use crate::resource_plan::{ResourcePlan, new_state, publish};
use crate::run_state::RunState;
use crate::secrets::{reseal_outputs, reveal_map};

/// Why a resource's inputs are still unknown in an update: most often (as in Pulumi) it uses an
/// output of a resource that `--target` left out and that does not exist yet.
fn unknown_inputs_error(shared: &RunState, plan: &ResourcePlan<'_>) -> String {
    let missing: Vec<String> = plan
        .dependencies
        .iter()
        .filter(|urn| !shared.is_targeted(urn) && shared.old_state(urn).is_none())
        .map(|urn| format!("`{urn}`"))
        .collect();
    if missing.is_empty() {
        return "some of its inputs are unknown outside a preview, so it was not sent to its provider".to_owned();
    }
    format!(
        "it uses outputs of {}, which {} not targeted and {} not exist yet\nhelp: add {} to the targets (`--target URN`)",
        missing.join(", "),
        if missing.len() == 1 { "is" } else { "are" },
        if missing.len() == 1 { "does" } else { "do" },
        if missing.len() == 1 { "it" } else { "them" },
    )
}

/// A resource its provider manages: check, diff, decide the step and carry it out (or read it
/// with `get`, or adopt it with `import`), the intent recorded before every provider call.
pub(crate) async fn run_custom_resource(
    shared: &Arc<RunState>,
    plan: &ResourcePlan<'_>,
) -> Result<(), StepError> {
    let decl = plan.decl;
    let started = Instant::now();
    let program = shared.program();
    let provider_reference = match explicit_provider_key(shared, &program, decl) {
        Some(key) => shared.explicit_provider(&key),
        None => shared.default_provider(cairn_core::type_token::package_of(&decl.type_token)),
    };
    let typed = provider_for(shared, &decl.type_token, provider_reference.as_deref())
        .await?
        .with_secret_outputs(&decl.options.additional_secret_outputs);
    let provider = typed.provider.clone();
    let type_token = typed.type_token.clone();
    let is_secret_output = |key: &str| typed.is_secret_output(key);
    for value in plan.inputs.values() {
        shared.secrets().add_secrets_of(value);
    }
    // The log lines of a resource with secret outputs (by its schema or its
    // `additionalSecretOutputs`) wait until those are known (its provider or command may print
    // them first); dropping `held_logs` sends them.
    let (ctx, held_logs) = if !typed.has_secret_outputs() {
        (shared.call_context(&plan.urn), None)
    } else {
        let (ctx, held) = shared.held_call_context(&plan.urn, typed.secret_outputs.clone());
        (ctx, Some(held))
    };
    let _permit = shared.acquire_permit().await?;

    let mut state = new_state(plan, &type_token);
    state.provider = provider_reference;

    if let Some(get) = &decl.get {
        return read_existing(shared, plan, &typed, &ctx, state, get, started).await;
    }

    let revealed_olds = plan.old.as_ref().map(|old| reveal_map(&old.inputs));
    let mut checked = provider
        .check(
            &ctx,
            &type_token,
            revealed_olds.as_ref(),
            &reveal_map(&plan.inputs),
        )
        .await
        .map_err(|error| StepError::provider(format!("checking inputs failed: {error}")))?;
    if !checked.failures.is_empty() {
        let reasons: Vec<String> = checked
            .failures
            .iter()
            .map(|failure| match &failure.property {
                Some(property) => format!("property `{property}`: {}", failure.reason),
                None => failure.reason.clone(),
            })
            .collect();
        return Err(StepError::provider(format!(
            "invalid inputs: {}",
            reasons.join("; ")
        )));
    }
    // Inputs that were secret stay secret after the provider filled in defaults.
    checked.inputs = reseal_outputs(shared.secrets(), &plan.inputs, checked.inputs, &|_| false);
    cairn_core::check_depth(&checked.inputs)
        .map_err(|error| StepError::provider(format!("the provider's checked input {error}")))?;
    state.inputs = checked.inputs;

    if !shared.is_targeted(&plan.urn) {
        if let Some(old) = &plan.old {
            publish(shared, old.clone(), &decl.key, true);
        }
        return Ok(());
    }
    // Outside a preview a provider only ever sees known values: an unknown reaching it would be
    // taken as real (a network named after the unknown sentinel).
    if !shared.is_dry_run() && state.inputs.values().any(Value::contains_unknown) {
        return Err(StepError::new(
            FailureCause::Refused,
            unknown_inputs_error(shared, plan),
        ));
    }

    if plan.old.is_none()
        && let Some(import_id) = &decl.options.import
    {
        *plan
            .attempted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(StepOp::Import);
        return import_existing(shared, plan, &typed, &ctx, state, import_id, started).await;
    }
    let decision = match &plan.old {
        None => Decision::create(),
        Some(old) => {
            apply_ignore_changes(&old.inputs, &mut state.inputs, &decl.options.ignore_changes);
            let diff = provider
                .diff(
                    &ctx,
                    &type_token,
                    &old.id,
                    &without_bridge_bookkeeping(reveal_map(&old.inputs)),
                    &reveal_map(&old.outputs),
                    &reveal_map(&state.inputs),
                )
                .await
                .map_err(|error| StepError::provider(format!("diffing failed: {error}")))?;
            let mut decision = decide(
                &diff,
                &decl.options.replace_on_changes,
                decl.options.delete_before_replace,
            );
            // Seed 003: a resource whose provider reference changes (its provider was replaced
            // or another one named) must be replaced.
            if old.provider.is_some() && old.provider != state.provider {
                decision.op = StepOp::Replace;
                decision.replace_keys.push("provider".to_owned());
                if !decision.changed_keys.iter().any(|key| key == "provider") {
                    decision.changed_keys.push("provider".to_owned());
                }
            }
            decision
        }
    };
    *plan
        .attempted
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(decision.op);
    if decision.op == StepOp::Replace
        && let Some(old) = &plan.old
        && old.protect
    {
        return Err(StepError::new(
            FailureCause::Refused,
            format!(
                "the change to {} requires replacing it, but it is protected; set `protect: false` first",
                join_keys(&decision.replace_keys)
            ),
        ));
    }
    let mut record = plan.step_record(decision.op, &type_token);
    // A step that changes nothing has nothing to diff; not copying its properties keeps a
    // no-op preview of a large stack small.
    if decision.op != StepOp::Same {
        record.old_inputs = plan.old.as_ref().map(|old| old.inputs.clone());
        record.new_inputs = Some(state.inputs.clone());
    }
    record.changed_keys = decision.changed_keys.clone();
    record.replace_keys = decision.replace_keys.clone();
    if decision.op != StepOp::Same {
        shared.emit(EngineEvent::StepStarted {
            op: decision.op,
            urn: plan.urn.clone(),
            type_: type_token.clone(),
        });
    }
    let timeouts = state.custom_timeouts;
    let revealed_inputs = reveal_map(&state.inputs);
    let dry_run = shared.is_dry_run();
    let mut id_known = true;
    match (decision.op, &plan.old) {
        (StepOp::Same, Some(old)) => {
            state.id = old.id.clone();
            // An output that became secret since the last run (named in
            // `additionalSecretOutputs`, say) is sealed now, though nothing else changed.
            state.outputs = reseal_outputs(
                shared.secrets(),
                &state.inputs,
                old.outputs.clone(),
                &is_secret_output,
            );
            // Options such as `protect` may have changed without any input changing.
            if !dry_run && &state != old {
                let op = shared.begin(PendingOperationKind::Updating, old).await?;
                shared.end(op, Some(old), Some(&state)).await?;
            }
        }
        (StepOp::Update, Some(old)) => {
            let op = shared.begin(PendingOperationKind::Updating, old).await?;
            let outputs = call_provider(
                shared,
                timeouts.update,
                "update",
                provider.update(
                    &ctx,
                    &type_token,
                    &old.id,
                    &reveal_map(&old.inputs),
                    &reveal_map(&old.outputs),
                    &revealed_inputs,
                    dry_run,
                ),
            )
            .await;
            let outputs = match outputs {
                Ok(outputs) => outputs,
                // The provider answered that the update failed: the resource stays as it was
                // and nothing is left pending, as in Pulumi. An update abandoned by a hard
                // cancellation may or may not have happened, so it stays pending.
                Err(error) if error.cause != FailureCause::Cancelled => {
                    shared.end(op, Some(old), Some(old)).await?;
                    return Err(error);
                }
                Err(error) => return Err(error),
            };
            state.id = old.id.clone();
            state.outputs = reseal_outputs(
                shared.secrets(),
                &state.inputs,
                shared.storable(&state.urn, "output", outputs),
                &is_secret_output,
            );
            shared.end(op, Some(old), Some(&state)).await?;
        }
        (StepOp::Replace, Some(old)) if decision.delete_before_replace => {
            delete_with_provider(shared, provider.as_ref(), &ctx, old).await?;
            id_known = create_with_provider(
                shared,
                provider.as_ref(),
                &ctx,
                &type_token,
                &mut state,
                &is_secret_output,
            )
            .await?;
        }
        (StepOp::Replace, Some(old)) => {
            // Mark the old copy for deletion before creating its replacement: the state then
            // never holds two live copies of one URN, whatever instant a crash comes at.
            let mut doomed = old.clone();
            doomed.delete = true;
            let op = shared.begin(PendingOperationKind::Updating, old).await?;
            shared.end(op, Some(old), Some(&doomed)).await?;
            let created = create_with_provider(
                shared,
                provider.as_ref(),
                &ctx,
                &type_token,
                &mut state,
                &is_secret_output,
            )
            .await;
            match created {
                Ok(created) => {
                    id_known = created;
                    shared.delete_later(doomed);
                }
                Err(error) => {
                    // No replacement exists: the old copy stays the live one.
                    let op = shared
                        .begin(PendingOperationKind::Updating, &doomed)
                        .await?;
                    shared.end(op, Some(&doomed), Some(old)).await?;
                    return Err(error);
                }
            }
        }
        _ => {
            id_known = create_with_provider(
                shared,
                provider.as_ref(),
                &ctx,
                &type_token,
                &mut state,
                &is_secret_output,
            )
            .await?;
        }
    }
    warn_of_secret_id(shared, plan, &state);
    drop(held_logs);
    if decision.op != StepOp::Same {
        record.outputs = state.outputs.clone();
    }
    record.duration = started.elapsed();
    shared.record_step(record);
    publish(shared, state, &decl.key, id_known);
    Ok(())
}

/// Warns when an output named in `additionalSecretOutputs` is also the resource's ID (as a
/// `random:RandomString`'s `result` is): the ID is stored and shown in plaintext, as in Pulumi,
/// so the option cannot keep that value secret.
fn warn_of_secret_id(shared: &RunState, plan: &ResourcePlan<'_>, state: &ResourceState) {
    if state.id.is_empty() || state.id == UNKNOWN_ID {
        return;
    }
    for name in &plan.decl.options.additional_secret_outputs {
        let Some(output) = state.outputs.get(name) else {
            continue;
        };
        if output.as_str() == Some(state.id.as_str()) {
            shared.emit(EngineEvent::Warning(format!(
                "`{}`: `additionalSecretOutputs` cannot hide `{name}`: it is also the resource's ID, which is stored in plaintext; use a resource whose ID is not the secret (e.g. `random:RandomPassword`)",
                plan.decl.key
            )));
        }
    }
}

/// Old inputs without `__defaults`, which Pulumi's bridged providers (`random`, `docker`) keep in
/// state to remember which inputs they defaulted; it is bookkeeping, not an input to compare.
fn without_bridge_bookkeeping(mut inputs: PropertyMap) -> PropertyMap {
    inputs.remove("__defaults");
    inputs
}

fn join_keys(keys: &[String]) -> String {
    let quoted: Vec<String> = keys.iter().map(|key| format!("`{key}`")).collect();
    quoted.join(", ")
}

/// A `get` resource: read through the provider, never owned.
async fn read_existing(
    shared: &Arc<RunState>,
    plan: &ResourcePlan<'_>,
    typed: &TypeProvider,
    ctx: &CallContext,
    mut state: ResourceState,
    get: &cairn_program::GetDecl,
    started: Instant,
) -> Result<(), StepError> {
    let id = cairn_program::evaluate(&get.id, shared.as_ref())
        .map_err(|error| StepError::program(error.to_string()))?;
    let Some(id) = id.as_str().map(str::to_owned) else {
        return Err(StepError::new(
            FailureCause::Program,
            "`get.id` must be a string",
        ));
    };
    let read = typed
        .provider
        .read(
            ctx,
            &state.type_,
            &id,
            &PropertyMap::new(),
            &PropertyMap::new(),
        )
        .await
        .map_err(|error| StepError::provider(format!("read failed: {error}")))?
        .ok_or_else(|| {
            StepError::provider(format!("no `{}` with ID `{id}` exists", state.type_))
        })?;
    state.id = read.id;
    state.inputs = shared.storable(&state.urn, "input", read.inputs);
    // A read resource's secret outputs are as secret as a created one's.
    let outputs = shared.storable(&state.urn, "output", read.outputs);
    state.outputs = reseal_outputs(shared.secrets(), &state.inputs, outputs, &|key| {
        typed.is_secret_output(key)
    });
    state.external = true;
    let op = plan.record_read(shared, &state).await?;
    let mut record = plan.step_record(op, &state.type_);
    record.outputs = state.outputs.clone();
    record.duration = started.elapsed();
    shared.record_step(record);
    publish(shared, state, &plan.decl.key, true);
    Ok(())
}

/// The `import` option: adopt an existing resource (read through the provider) instead of
/// creating one. From then on Cairn owns it like any other.
async fn import_existing(
    shared: &Arc<RunState>,
    plan: &ResourcePlan<'_>,
    typed: &TypeProvider,
    ctx: &CallContext,
    mut state: ResourceState,
    import_id: &str,
    started: Instant,
) -> Result<(), StepError> {
    shared.emit(EngineEvent::StepStarted {
        op: StepOp::Import,
        urn: plan.urn.clone(),
        type_: state.type_.clone(),
    });
    let pending = shared.begin(PendingOperationKind::Reading, &state).await?;
    let read = call_provider(
        shared,
        0.0,
        "import",
        typed.provider.read(
            ctx,
            &state.type_,
            import_id,
            &reveal_map(&state.inputs),
            &PropertyMap::new(),
        ),
    )
    .await;
    let read = match read {
        Ok(Some(read)) => read,
        Ok(None) => {
            shared.end(pending, None, None).await?;
            return Err(StepError::provider(format!(
                "there is no `{}` with ID `{import_id}` to import",
                state.type_
            )));
        }
        Err(error) => {
            shared.end(pending, None, None).await?;
            return Err(error);
        }
    };
    state.id = read.id;
    // Declared no inputs (`cairn import TYPE NAME ID`): adopt the live ones, so a program that
    // declares them afterwards has nothing to change.
    if state.inputs.is_empty() {
        state.inputs = shared.storable(&state.urn, "input", read.inputs);
    }
    let outputs = shared.storable(&state.urn, "output", read.outputs);
    state.outputs = reseal_outputs(shared.secrets(), &state.inputs, outputs, &|key| {
        typed.is_secret_output(key)
    });
    shared.end(pending, None, Some(&state)).await?;
    let mut record = plan.step_record(StepOp::Import, &state.type_);
    record.new_inputs = Some(state.inputs.clone());
    record.outputs = state.outputs.clone();
    record.duration = started.elapsed();
    shared.record_step(record);
    publish(shared, state, &plan.decl.key, true);
    Ok(())
}
