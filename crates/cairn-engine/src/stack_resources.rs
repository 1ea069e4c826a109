//! The resources every deployment has besides the program's own: the root
//! `pulumi:pulumi:Stack` resource (whose outputs are the stack's outputs), a default provider per
//! package, and the program's variables, evaluated as graph nodes.

use std::sync::Arc;

use cairn_core::urn::ROOT_STACK_TYPE;
use cairn_core::{PendingOperationKind, PropertyMap, ResourceState, StepOp, Urn};
use cairn_program::Program;

use crate::events::StepRecord;
use crate::provider_calls::{STACK_REFERENCE_TYPE, is_provider_type};
use crate::provider_instances::reference_of;
use crate::providers::{
    default_provider_config, explicit_provider_key, is_default_provider, step_provider,
};
use crate::run_state::RunState;

/// Records the root `pulumi:pulumi:Stack` resource: every program resource's default parent.
pub(crate) async fn register_root(shared: &Arc<RunState>) {
    let root = match shared.old_state(&shared.root_urn) {
        Some(old_root) => {
            shared.record_step(StepRecord::new(
                StepOp::Same,
                shared.root_urn.clone(),
                ROOT_STACK_TYPE.to_owned(),
                None,
            ));
            old_root
        }
        None => {
            let root = ResourceState {
                urn: shared.root_urn.clone(),
                type_: ROOT_STACK_TYPE.to_owned(),
                ..ResourceState::default()
            };
            let result = async {
                let op = shared.begin(PendingOperationKind::Creating, &root).await?;
                shared.end(op, None, Some(&root)).await
            }
            .await;
            let mut record = StepRecord::new(
                StepOp::Create,
                shared.root_urn.clone(),
                ROOT_STACK_TYPE.to_owned(),
                None,
            );
            record.error = result.err();
            shared.record_step(record);
            root
        }
    };
    shared.finish_resource(root);
}

/// Records a default provider for every package whose resources name no explicit provider,
/// configured from the stack's `<package>:<key>` config.
pub(crate) async fn register_default_providers(shared: &Arc<RunState>, program: &Program) {
    let mut packages: Vec<&str> = program
        .resources
        .iter()
        .filter(|resource| {
            resource.type_token != STACK_REFERENCE_TYPE
                && !is_provider_type(&resource.type_token)
                && explicit_provider_key(shared, program, resource).is_none()
        })
        .map(|resource| cairn_core::type_token::package_of(&resource.type_token))
        .collect();
    packages.sort_unstable();
    packages.dedup();
    for package in packages {
        let type_token = format!("pulumi:providers:{package}");
        let urn = Urn::new(
            &shared.request.stack,
            &shared.request.project,
            None,
            &type_token,
            "default",
        );
        // A stack Pulumi wrote names its default providers by version (`default_4_16_0`);
        // keeping that URN keeps the references of the resources it manages.
        let old = shared.old_state(&urn).or_else(|| {
            shared
                .old_snapshot()
                .resources
                .iter()
                .find(|old| !old.delete && old.type_ == type_token && is_default_provider(&old.urn))
                .cloned()
        });
        let urn = old.as_ref().map_or(urn, |old| old.urn.clone());
        let mut inputs = default_provider_config(shared, package);
        for key in cairn_provider::ENGINE_CONFIG_KEYS {
            if let Some(value) = old.as_ref().and_then(|old| old.inputs.get(key)) {
                inputs.insert(key.to_owned(), value.clone());
            }
        }
        let new = ResourceState {
            urn: urn.clone(),
            custom: true,
            type_: type_token,
            inputs,
            ..ResourceState::default()
        };
        let state = match step_provider(shared, new, old.as_ref()).await {
            Ok(step) => {
                if step.op != StepOp::Same {
                    let mut record =
                        StepRecord::new(step.op, urn.clone(), step.state.type_.clone(), None);
                    record.old_inputs = old.as_ref().map(|old| old.inputs.clone());
                    record.new_inputs = Some(step.state.inputs.clone());
                    record.changed_keys = step.changed_keys;
                    record.replace_keys = step.replace_keys;
                    shared.record_step(record);
                }
                step.state
            }
            Err(error) => {
                shared.record_error(StepOp::Create, &urn, None, error);
                // Its resources fail on the missing provider; the old state stays as it was.
                match old {
                    Some(old) => old,
                    None => continue,
                }
            }
        };
        shared.set_default_provider(package, reference_of(&state));
        shared.finish_resource(state);
    }
}

/// Evaluates a program variable once everything it refers to is known.
pub(crate) fn evaluate_variable(shared: &Arc<RunState>, index: usize) -> bool {
    let program = shared.program();
    let variable = &program.variables[index];
    match cairn_program::evaluate(&variable.value, shared.as_ref()) {
        Ok(value) => {
            shared.publish_variable(&variable.name, value);
            true
        }
        Err(error) => {
            shared.record_failure(
                error.to_string(),
                &format!("variable `{}`: {error}", variable.name),
            );
            false
        }
    }
}

/// Evaluates the program's outputs and records them on the root stack resource.
pub(crate) async fn register_outputs(shared: &Arc<RunState>, program: &Program) {
    let old_root = shared.finished_state(&shared.root_urn);
    let Some(old_root) = old_root else {
        return;
    };
    let mut outputs = PropertyMap::new();
    for (name, expr) in &program.outputs {
        match cairn_program::evaluate(expr, shared.as_ref()) {
            // Built from references, an output can nest deeper than the state can hold: it is
            // an error in the program, and the output keeps its last value.
            Ok(value) if value.depth() > cairn_core::MAX_VALUE_DEPTH => {
                let error = cairn_core::TooDeep {
                    property: name.clone(),
                    depth: value.depth(),
                };
                shared.record_failure(format!("stack output {error}"), &format!("output {error}"));
                if let Some(previous) = old_root.outputs.get(name) {
                    outputs.insert(name.clone(), previous.clone());
                }
            }
            Ok(value) if shared.is_dry_run() || !value.contains_unknown() => {
                outputs.insert(name.clone(), value);
            }
            // When nothing failed, an output that cannot be evaluated (`${r.nmae}`) is an
            // error in the program, never silently dropped. Not in a preview, where a resource
            // to be created (or managed by a provider not configured yet) has only some of its
            // outputs; nor with `--target`, where resources left out may not exist.
            Err(error)
                if !shared.is_dry_run()
                    && shared.options.targets.is_empty()
                    && !shared.has_failed() =>
            {
                shared.record_failure(error.to_string(), &format!("output `{name}`: {error}"));
            }
            Ok(_) | Err(_) => {
                // An output that refers to a resource that failed keeps its last value.
                if let Some(previous) = old_root.outputs.get(name) {
                    outputs.insert(name.clone(), previous.clone());
                }
            }
        }
    }
    if outputs == old_root.outputs {
        return;
    }
    let mut new_root = old_root.clone();
    new_root.outputs = outputs;
    let saved = async {
        let op = shared
            .begin(PendingOperationKind::Updating, &old_root)
            .await?;
        shared.end(op, Some(&old_root), Some(&new_root)).await
    }
    .await;
    if let Err(error) = saved {
        shared.record_error(StepOp::Update, &shared.root_urn, None, error);
        return;
    }
    shared.refinish_resource(new_root);
}
