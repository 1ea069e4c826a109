//! One resource's part of a deployment: evaluating its inputs, asking its provider to check and
//! diff them, deciding its step and carrying it out with the intent recorded first.

use std::sync::Arc;
use std::time::Instant;

use cairn_core::resource::CustomTimeouts;
use cairn_core::{PendingOperationKind, PropertyMap, ResourceState, StepOp, Urn, Value};
use cairn_program::{Program, ResourceDecl, ResourceValue};
use cairn_provider::{CallContext, ProviderError};

use crate::events::{EngineEvent, StepRecord};
use crate::plan::{Decision, apply_ignore_changes, decide};
use crate::provider_calls::{
    STACK_REFERENCE_TYPE, TypeProvider, call_provider, create_with_provider, delete_with_provider,
    is_provider_type, parse_timeout, provider_for,
};
use crate::provider_instances::reference_of;
use crate::providers::{
    ProviderStep, UNKNOWN_ID, explicit_provider_key, provider_package, step_provider,
};
use crate::run_state::RunState;
use crate::secrets::{reseal_outputs, reveal_map};

pub(crate) fn program_of(shared: &RunState) -> Arc<Program> {
    shared
        .request
        .program
        .clone()
        .expect("program nodes only run when the request has a program")
}

/// Everything needed to carry out one program resource's step.
struct ResourcePlan<'a> {
    decl: &'a ResourceDecl,
    urn: Urn,
    parent: Urn,
    dependencies: Vec<Urn>,
    /// The URN of the `deletedWith` resource.
    deleted_with: Option<Urn>,
    inputs: PropertyMap,
    old: Option<ResourceState>,
    /// The step decided on, once it is (a failure after that point is shown as that step's).
    attempted: std::sync::Mutex<Option<StepOp>>,
}

impl ResourcePlan<'_> {
    /// A record of this resource's step, under its parent.
    fn step_record(&self, op: StepOp, type_token: &str) -> StepRecord {
        StepRecord::new(
            op,
            self.urn.clone(),
            type_token.to_owned(),
            Some(self.parent.clone()),
        )
    }
}

/// Runs one program resource; returns whether it succeeded.
pub(crate) async fn run_resource(shared: &Arc<RunState>, index: usize) -> bool {
    let program = program_of(shared);
    let decl = &program.resources[index];
    let urn = shared.urns[index].clone();
    let urn_of = |key: &str| {
        shared
            .resource_index
            .get(key)
            .map(|&position| shared.urns[position].clone())
    };
    let parent = decl
        .options
        .parent
        .as_deref()
        .and_then(urn_of)
        .unwrap_or_else(|| shared.root_urn.clone());
    let dependencies: Vec<Urn> = decl
        .deps
        .resources
        .iter()
        .filter_map(|key| urn_of(key))
        .collect();
    let inputs = match evaluate_properties(shared, decl) {
        Ok(inputs) => inputs,
        Err(error) => {
            let op = if shared.old_state(&urn).is_some() {
                StepOp::Update
            } else {
                StepOp::Create
            };
            // Every resource it refers to has finished (a failed one blocks it before this), so
            // inputs that cannot be evaluated are an error in the program.
            shared.record_error(op, &urn, Some(&parent), error);
            shared.lock_outcome().has_program_error = true;
            return false;
        }
    };
    let old = shared.old_state(&urn).or_else(|| {
        decl.options.aliases.iter().find_map(|alias| {
            let alias = cairn_program::evaluate(alias, shared.as_ref()).ok()?;
            let alias_urn = alias_urn(&alias.reveal(), &urn, &parent, &shared.root_urn)?;
            let old = shared.old_state(&alias_urn)?;
            // The old URN now belongs to this resource: it must not be deleted as gone.
            shared.lock_outcome().claimed_aliases.insert(alias_urn);
            Some(old)
        })
    });
    let plan = ResourcePlan {
        decl,
        urn,
        parent,
        dependencies,
        deleted_with: decl.options.deleted_with.as_deref().and_then(urn_of),
        inputs,
        old,
        attempted: std::sync::Mutex::new(None),
    };
    let result = if is_provider_type(&decl.type_token) {
        run_provider_resource(shared, &plan).await
    } else if decl.type_token == STACK_REFERENCE_TYPE {
        run_stack_reference(shared, &plan).await
    } else {
        run_custom_resource(shared, &plan).await
    };
    match result {
        Ok(()) => true,
        Err(error) => {
            let attempted = *plan
                .attempted
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let op = attempted.unwrap_or(if plan.old.is_some() {
                StepOp::Update
            } else {
                StepOp::Create
            });
            shared.record_error(op, &plan.urn, Some(&plan.parent), error);
            false
        }
    }
}

/// The old URN an alias names: a URN string, or Pulumi's alias object (`name`, `type`,
/// `parent`, `noParent`, `stack`, `project`), each part left out being the resource's own.
fn alias_urn(alias: &Value, urn: &Urn, parent: &Urn, root: &Urn) -> Option<Urn> {
    let fields = match alias {
        Value::String(text) => return Urn::parse(text).ok(),
        Value::Object(fields) => fields,
        _ => return None,
    };
    let field = |key: &str| fields.get(key).and_then(Value::as_str);
    let alias_parent = if fields.get("noParent") == Some(&Value::Bool(true)) {
        None
    } else {
        match fields.get("parent") {
            // `parent: ${res}` is the resource's object of outputs, `urn` among them.
            Some(Value::Object(resource)) => Some(Urn::parse(resource.get("urn")?.as_str()?).ok()?),
            Some(Value::String(text)) => Some(Urn::parse(text).ok()?),
            Some(_) => return None,
            None => (parent != root).then(|| parent.clone()),
        }
    };
    Some(Urn::new(
        field("stack").unwrap_or(urn.stack()),
        field("project").unwrap_or(urn.project()),
        alias_parent.as_ref().map(Urn::qualified_type),
        field("type").unwrap_or(urn.type_token()),
        field("name").unwrap_or(urn.name()),
    ))
}

/// The resource's inputs, evaluated. Values built from references can nest deeper than any
/// one in the file, so the depth limit is checked again here, before any provider sees them.
fn evaluate_properties(shared: &Arc<RunState>, decl: &ResourceDecl) -> Result<PropertyMap, String> {
    let inputs = evaluate_property_values(shared, decl)?;
    cairn_core::check_depth(&inputs).map_err(|error| format!("input {error}"))?;
    Ok(inputs)
}

fn evaluate_property_values(
    shared: &Arc<RunState>,
    decl: &ResourceDecl,
) -> Result<PropertyMap, String> {
    let Some(properties) = &decl.properties else {
        return Ok(PropertyMap::new());
    };
    match cairn_program::evaluate(properties, shared.as_ref()).map_err(|error| error.to_string())? {
        Value::Object(map) => Ok(map),
        Value::Null | Value::Unknown => Ok(PropertyMap::new()),
        Value::Secret(inner) => match *inner {
            Value::Object(map) => Ok(map
                .into_iter()
                .map(|(key, value)| (key, value.into_secret()))
                .collect()),
            other => Err(format!(
                "the properties of `{}` must be an object, not {}",
                decl.key,
                other.kind_name()
            )),
        },
        other => Err(format!(
            "the properties of `{}` must be an object, not {}",
            decl.key,
            other.kind_name()
        )),
    }
}

/// Makes a finished resource visible to its dependents and to the new snapshot.
fn publish(shared: &RunState, state: ResourceState, key: &str, id_known: bool) {
    let value = ResourceValue {
        id: if id_known {
            Value::String(state.id.clone())
        } else {
            Value::Unknown
        },
        urn: state.urn.to_string(),
        outputs: state.outputs.clone(),
    };
    shared.publish_resource(key, value);
    let mut outcome = shared.lock_outcome();
    outcome.finished_urns.insert(state.urn.clone());
    outcome.new_states.push(state);
}

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

fn new_state(plan: &ResourcePlan<'_>, type_: &str) -> ResourceState {
    let options = &plan.decl.options;
    ResourceState {
        urn: plan.urn.clone(),
        custom: true,
        id: String::new(),
        type_: type_.to_owned(),
        inputs: plan.inputs.clone(),
        outputs: PropertyMap::new(),
        parent: Some(plan.parent.clone()),
        dependencies: plan.dependencies.clone(),
        property_dependencies: Default::default(),
        provider: None,
        protect: options.protect,
        retain_on_delete: options.retain_on_delete,
        external: false,
        delete: false,
        delete_before_replace: options.delete_before_replace,
        ignore_changes: options.ignore_changes.clone(),
        replace_on_changes: options.replace_on_changes.clone(),
        aliases: Vec::new(),
        deleted_with: plan.deleted_with.clone(),
        custom_timeouts: CustomTimeouts {
            create: parse_timeout(options.custom_timeouts.create.as_deref()),
            update: parse_timeout(options.custom_timeouts.update.as_deref()),
            delete: parse_timeout(options.custom_timeouts.delete.as_deref()),
        },
    }
}

async fn run_custom_resource(
    shared: &Arc<RunState>,
    plan: &ResourcePlan<'_>,
) -> Result<(), String> {
    let decl = plan.decl;
    let started = Instant::now();
    let program = program_of(shared);
    let provider_reference = match explicit_provider_key(&program, &shared.resource_index, decl) {
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
        .map_err(|error| format!("checking inputs failed: {error}"))?;
    if !checked.failures.is_empty() {
        let reasons: Vec<String> = checked
            .failures
            .iter()
            .map(|failure| match &failure.property {
                Some(property) => format!("property `{property}`: {}", failure.reason),
                None => failure.reason.clone(),
            })
            .collect();
        return Err(format!("invalid inputs: {}", reasons.join("; ")));
    }
    // Inputs that were secret stay secret after the provider filled in defaults.
    checked.inputs = reseal_outputs(shared.secrets(), &plan.inputs, checked.inputs, &|_| false);
    cairn_core::check_depth(&checked.inputs)
        .map_err(|error| format!("the provider's checked input {error}"))?;
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
        return Err(unknown_inputs_error(shared, plan));
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
                .map_err(|error| format!("diffing failed: {error}"))?;
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
        return Err(format!(
            "the change to {} requires replacing it, but it is protected; set `protect: false` first",
            join_keys(&decision.replace_keys)
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
            let outputs = call_provider(shared, timeouts.update, "update", async {
                let op = shared
                    .begin(PendingOperationKind::Updating, old)
                    .await
                    .map_err(ProviderError::Failed)?;
                let outputs = provider
                    .update(
                        &ctx,
                        &type_token,
                        &old.id,
                        &reveal_map(&old.inputs),
                        &reveal_map(&old.outputs),
                        &revealed_inputs,
                        dry_run,
                    )
                    .await?;
                Ok((op, outputs))
            })
            .await;
            let (op, outputs) = outputs?;
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
                    shared.lock_outcome().replaced.push(doomed);
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
) -> Result<(), String> {
    let id =
        cairn_program::evaluate(&get.id, shared.as_ref()).map_err(|error| error.to_string())?;
    let Some(id) = id.as_str().map(str::to_owned) else {
        return Err("`get.id` must be a string".to_owned());
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
        .map_err(|error| format!("read failed: {error}"))?
        .ok_or_else(|| format!("no `{}` with ID `{id}` exists", state.type_))?;
    state.id = read.id;
    state.inputs = shared.storable(&state.urn, "input", read.inputs);
    // A read resource's secret outputs are as secret as a created one's.
    let outputs = shared.storable(&state.urn, "output", read.outputs);
    state.outputs = reseal_outputs(shared.secrets(), &state.inputs, outputs, &|key| {
        typed.is_secret_output(key)
    });
    state.external = true;
    let op = if plan.old.as_ref() == Some(&state) {
        StepOp::Same
    } else {
        StepOp::Read
    };
    if op == StepOp::Read && !shared.is_dry_run() {
        let pending = shared.begin(PendingOperationKind::Reading, &state).await?;
        shared.end(pending, plan.old.as_ref(), Some(&state)).await?;
    }
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
) -> Result<(), String> {
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
            return Err(format!(
                "there is no `{}` with ID `{import_id}` to import",
                state.type_
            ));
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

/// An explicit provider resource (`pulumi:providers:<package>`): its inputs are its config.
async fn run_provider_resource(
    shared: &Arc<RunState>,
    plan: &ResourcePlan<'_>,
) -> Result<(), String> {
    let started = Instant::now();
    let state = new_state(plan, &plan.decl.type_token);
    if provider_package(&state.type_).is_none() {
        return Err(format!("`{}` is not a provider type", state.type_));
    }
    let ProviderStep {
        op,
        state,
        changed_keys,
        replace_keys,
    } = step_provider(shared, state, plan.old.as_ref()).await?;
    *plan
        .attempted
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(op);
    shared.set_explicit_provider(&plan.decl.key, reference_of(&state));
    let mut record = plan.step_record(op, &state.type_);
    if op != StepOp::Same {
        record.old_inputs = plan.old.as_ref().map(|old| old.inputs.clone());
        record.new_inputs = Some(state.inputs.clone());
    }
    record.changed_keys = changed_keys;
    record.replace_keys = replace_keys;
    record.duration = started.elapsed();
    shared.record_step(record);
    let id_known = state.id != UNKNOWN_ID;
    publish(shared, state, &plan.decl.key, id_known);
    Ok(())
}

/// `pulumi:pulumi:StackReference`: reads another stack's outputs.
async fn run_stack_reference(
    shared: &Arc<RunState>,
    plan: &ResourcePlan<'_>,
) -> Result<(), String> {
    let name = plan
        .inputs
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| "a StackReference needs a `name` property (`org/project/stack`)".to_owned())?
        .to_owned();
    let outputs = shared.request.stack_references.outputs(&name)?;
    let secret_names: Vec<Value> = outputs
        .iter()
        .filter(|(_, value)| value.is_secret())
        .map(|(key, _)| Value::String(key.clone()))
        .collect();
    let mut state = new_state(plan, STACK_REFERENCE_TYPE);
    state.id = name.clone();
    state.external = true;
    state.outputs = PropertyMap::from([
        ("name".to_owned(), Value::String(name)),
        ("outputs".to_owned(), Value::Object(outputs)),
        ("secretOutputNames".to_owned(), Value::Array(secret_names)),
    ]);
    let op = if plan.old.as_ref() == Some(&state) {
        StepOp::Same
    } else {
        StepOp::Read
    };
    if op == StepOp::Read && !shared.is_dry_run() {
        let pending = shared.begin(PendingOperationKind::Reading, &state).await?;
        shared.end(pending, plan.old.as_ref(), Some(&state)).await?;
    }
    let record = plan.step_record(op, &state.type_);
    shared.record_step(record);
    publish(shared, state, &plan.decl.key, true);
    Ok(())
}
