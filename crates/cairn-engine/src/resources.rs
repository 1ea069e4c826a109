//! One program resource's part of a deployment: its URN, parent and dependencies, its inputs
//! evaluated, its old state found (under its own URN or an alias), then the step its kind calls
//! for: an explicit provider resource and a stack reference here, a provider-managed resource in
//! `custom_resource`.

use std::sync::Arc;
use std::time::Instant;

use cairn_core::{PropertyMap, StepOp, Urn, Value};
use cairn_program::ResourceDecl;

use crate::custom_resource::run_custom_resource;
use crate::events::{FailureCause, StepError};
use crate::provider_calls::{STACK_REFERENCE_TYPE, is_provider_type};
use crate::provider_instances::reference_of;
use crate::providers::{ProviderStep, UNKNOWN_ID, provider_package, step_provider};
use crate::resource_plan::{ResourcePlan, new_state, publish};
use crate::run_state::RunState;

/// Runs one program resource; returns whether it succeeded.
pub(crate) async fn run_resource(shared: &Arc<RunState>, index: usize) -> bool {
    let program = shared.program();
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
            let error = StepError::new(FailureCause::Program, error);
            shared.record_error(op, &urn, Some(&parent), error);
            shared.mark_program_error();
            return false;
        }
    };
    let old = shared.old_state(&urn).or_else(|| {
        decl.options.aliases.iter().find_map(|alias| {
            let alias = cairn_program::evaluate(alias, shared.as_ref()).ok()?;
            let alias_urn = alias_urn(&alias.reveal(), &urn, &parent, &shared.root_urn)?;
            let old = shared.old_state(&alias_urn)?;
            // The old URN now belongs to this resource: it must not be deleted as gone.
            shared.claim_alias(alias_urn);
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

/// An explicit provider resource (`pulumi:providers:<package>`): its inputs are its config.
async fn run_provider_resource(
    shared: &Arc<RunState>,
    plan: &ResourcePlan<'_>,
) -> Result<(), StepError> {
    let started = Instant::now();
    let state = new_state(plan, &plan.decl.type_token);
    if provider_package(&state.type_).is_none() {
        return Err(StepError::program(format!(
            "`{}` is not a provider type",
            state.type_
        )));
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
) -> Result<(), StepError> {
    let name = plan
        .inputs
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            StepError::program("a StackReference needs a `name` property (`org/project/stack`)")
        })?
        .to_owned();
    let outputs = shared
        .request
        .stack_references
        .outputs(&name)
        .map_err(StepError::program)?;
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
    let op = plan.record_read(shared, &state).await?;
    let record = plan.step_record(op, &state.type_);
    shared.record_step(record);
    publish(shared, state, &plan.decl.key, true);
    Ok(())
}
