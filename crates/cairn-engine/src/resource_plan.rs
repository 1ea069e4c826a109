//! One program resource's step as planned: its URN, parent, dependencies, evaluated inputs and
//! old state, and the state and value it leaves for its dependents. Shared by every kind of
//! program resource (`resources` dispatches, `custom_resource` carries out the provider-managed
//! kind).

use cairn_core::resource::CustomTimeouts;
use cairn_core::{PendingOperationKind, PropertyMap, ResourceState, StepOp, Urn, Value};
use cairn_program::{ResourceDecl, ResourceValue};

use crate::events::{StepError, StepRecord};
use crate::provider_calls::parse_timeout;
use crate::run_state::RunState;

/// Everything needed to carry out one program resource's step.
pub(crate) struct ResourcePlan<'a> {
    pub decl: &'a ResourceDecl,
    pub urn: Urn,
    pub parent: Urn,
    pub dependencies: Vec<Urn>,
    /// The URN of the `deletedWith` resource.
    pub deleted_with: Option<Urn>,
    pub inputs: PropertyMap,
    pub old: Option<ResourceState>,
    /// The step decided on, once it is (a failure after that point is shown as that step's).
    pub attempted: std::sync::Mutex<Option<StepOp>>,
}

impl ResourcePlan<'_> {
    /// A record of this resource's step, under its parent.
    pub fn step_record(&self, op: StepOp, type_token: &str) -> StepRecord {
        StepRecord::new(
            op,
            self.urn.clone(),
            type_token.to_owned(),
            Some(self.parent.clone()),
        )
    }

    /// The step of a resource read rather than managed (a `get`, a stack reference): `same`
    /// when `state` is what the old state holds, else a read, journaled outside a preview.
    pub async fn record_read(
        &self,
        shared: &RunState,
        state: &ResourceState,
    ) -> Result<StepOp, StepError> {
        if self.old.as_ref() == Some(state) {
            return Ok(StepOp::Same);
        }
        if !shared.is_dry_run() {
            let pending = shared.begin(PendingOperationKind::Reading, state).await?;
            shared.end(pending, self.old.as_ref(), Some(state)).await?;
        }
        Ok(StepOp::Read)
    }
}

/// Makes a finished resource visible to its dependents and to the new snapshot.
pub(crate) fn publish(shared: &RunState, state: ResourceState, key: &str, id_known: bool) {
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
    shared.finish_resource(state);
}

/// The state a resource's step starts from: its inputs and options, no ID or outputs yet.
pub(crate) fn new_state(plan: &ResourcePlan<'_>, type_: &str) -> ResourceState {
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
