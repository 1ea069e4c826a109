//! Deleting one resource: through its provider unless it is retained, read-only, a component,
//! a provider, or taken with its `deletedWith` resource; refused when protected.

use std::sync::Arc;
use std::time::Instant;

use cairn_core::{PendingOperationKind, ResourceState, StepOp};

use crate::events::{EngineEvent, StepRecord};
use crate::events::{FailureCause, StepError};
use crate::provider_calls::{delete_with_provider, is_provider_managed, provider_for};
use crate::run_state::RunState;

/// Deletes one resource (or, in a dry run, plans it); returns whether it is gone.
/// `is_taken_with_another`: its `deletedWith` resource is deleted in the same operation, so only
/// its state entry goes, without a provider call.
pub(crate) async fn delete_resource(
    shared: &Arc<RunState>,
    resource: &ResourceState,
    is_taken_with_another: bool,
) -> bool {
    let started = Instant::now();
    let is_default_provider = crate::providers::is_default_provider(&resource.urn);
    // The old copy of a resource replaced in this run was shown as part of its `+-` step.
    let is_replaced_now = resource.delete && shared.is_finished(&resource.urn);
    let is_shown = !is_default_provider && !is_replaced_now;
    if resource.protect {
        shared.record_error(
            StepOp::Delete,
            &resource.urn,
            resource.parent.as_ref(),
            StepError::new(
                FailureCause::Refused,
                "it is protected and cannot be deleted; set `protect: false` or run `cairn state unprotect`",
            ),
        );
        return false;
    }
    if is_shown {
        shared.emit(EngineEvent::StepStarted {
            op: StepOp::Delete,
            urn: resource.urn.clone(),
            type_: resource.type_.clone(),
        });
    }
    let result = if is_provider_managed(resource) && !is_taken_with_another {
        match provider_for(shared, &resource.type_, resource.provider.as_deref()).await {
            Ok(typed) => {
                let ctx = shared.call_context(&resource.urn);
                match shared.acquire_permit().await {
                    Ok(_permit) => {
                        delete_with_provider(shared, typed.provider.as_ref(), &ctx, resource).await
                    }
                    Err(error) => Err(error),
                }
            }
            Err(error) => Err(StepError::provider(format!(
                "{error}, so it cannot be deleted"
            ))),
        }
    } else if shared.is_dry_run() {
        Ok(())
    } else {
        async {
            let op = shared
                .begin(PendingOperationKind::Deleting, resource)
                .await?;
            shared.end(op, Some(resource), None).await
        }
        .await
    };
    let mut record = StepRecord::new(
        StepOp::Delete,
        resource.urn.clone(),
        resource.type_.clone(),
        resource.parent.clone(),
    );
    record.old_inputs = Some(resource.inputs.clone());
    record.duration = started.elapsed();
    let succeeded = result.is_ok();
    record.error = result.err();
    if is_shown || record.error.is_some() {
        shared.record_step(record);
    }
    succeeded
}
