//! Calls to a resource's provider, shared by every kind of step (update, delete, refresh): which
//! provider serves a resource, the time limit and hard cancellation around each call, and the
//! create, read and delete calls with their intents recorded first.

use std::sync::Arc;
use std::time::Duration;

use cairn_core::{PendingOperationKind, ResourceState};
use cairn_provider::{CallContext, Provider, ProviderError};

use crate::events::{FailureCause, StepError};
use crate::providers::{UNKNOWN_ID, provider_instance};
use crate::run_state::RunState;
use crate::secrets::{reseal_outputs, reveal_map};

pub(crate) const STACK_REFERENCE_TYPE: &str = "pulumi:pulumi:StackReference";

pub(crate) fn is_provider_type(type_token: &str) -> bool {
    type_token.starts_with("pulumi:providers:") || type_token.starts_with("cairn:providers:")
}

/// Whether a resource's lifecycle goes through a provider: not a component, a provider
/// resource or a stack reference.
pub(crate) fn is_provider_managed(resource: &ResourceState) -> bool {
    resource.custom && !is_provider_type(&resource.type_) && resource.type_ != STACK_REFERENCE_TYPE
}

/// A resource type's provider, its canonical token and the outputs its schema marks secret.
pub(crate) struct TypeProvider {
    pub provider: Arc<dyn Provider>,
    pub type_token: String,
    pub secret_outputs: Vec<String>,
}

impl TypeProvider {
    pub fn is_secret_output(&self, key: &str) -> bool {
        self.secret_outputs.iter().any(|name| name == key)
    }

    pub fn has_secret_outputs(&self) -> bool {
        !self.secret_outputs.is_empty()
    }

    /// Also treats `names` as secret outputs: a resource's `additionalSecretOutputs`.
    pub fn with_secret_outputs(mut self, names: &[String]) -> TypeProvider {
        self.secret_outputs.extend(names.iter().cloned());
        self
    }
}

/// Looks up the provider of a resource type written in any accepted spelling: the configured
/// instance behind `reference` (the resource's provider reference) when there is one.
pub(crate) async fn provider_for(
    shared: &RunState,
    type_token: &str,
    reference: Option<&str>,
) -> Result<TypeProvider, StepError> {
    let resolved = shared
        .request
        .providers
        .resolve_resource(type_token)
        .ok_or_else(|| {
            StepError::program(format!(
                "no provider offers the resource type `{type_token}`"
            ))
        })?;
    let provider = match reference {
        Some(reference) => provider_instance(shared, reference)
            .await
            .map_err(StepError::provider)?,
        None => resolved.provider.clone(),
    };
    Ok(TypeProvider {
        provider,
        type_token: resolved.canonical.to_owned(),
        secret_outputs: resolved
            .schema
            .outputs
            .iter()
            .filter(|(_, property)| property.secret)
            .map(|(name, _)| name.clone())
            .collect(),
    })
}

/// Reads a resource's live state through its provider; `Ok(None)` when it is gone.
pub(crate) async fn read_live(
    shared: &RunState,
    typed: &TypeProvider,
    resource: &ResourceState,
) -> Result<Option<cairn_provider::ReadResponse>, StepError> {
    let ctx = shared.call_context(&resource.urn);
    call_provider(
        shared,
        0.0,
        "read",
        typed.provider.read(
            &ctx,
            &resource.type_,
            &resource.id,
            &reveal_map(&resource.inputs),
            &reveal_map(&resource.outputs),
        ),
    )
    .await
    .map(|read| {
        read.map(|mut read| {
            read.inputs = shared.storable(&resource.urn, "input", read.inputs);
            read.outputs = shared.storable(&resource.urn, "output", read.outputs);
            read
        })
    })
}

/// A `customTimeouts` duration in seconds (Go's syntax, checked when the program was loaded);
/// 0, no limit, for none.
pub(crate) fn parse_timeout(text: Option<&str>) -> f64 {
    text.and_then(|text| cairn_core::parse_go_duration(text.trim()).ok())
        .map_or(0.0, |duration| duration.as_secs_f64())
}

/// A provider call's error; a provider that stopped because it was cancelled says so.
fn provider_failure(operation: &str, error: ProviderError) -> StepError {
    let cause = match error {
        ProviderError::Cancelled => FailureCause::Cancelled,
        _ => FailureCause::Provider,
    };
    StepError::new(cause, format!("{operation} failed: {error}"))
}

/// Runs a provider call with the resource's time limit (if any) and the hard cancellation.
pub(crate) async fn call_provider<T>(
    shared: &RunState,
    timeout_seconds: f64,
    operation: &str,
    future: impl std::future::Future<Output = Result<T, ProviderError>>,
) -> Result<T, StepError> {
    let limited = async {
        if timeout_seconds > 0.0 {
            tokio::time::timeout(Duration::from_secs_f64(timeout_seconds), future)
                .await
                .map_err(|_| {
                    StepError::provider(format!(
                        "{operation} did not finish within its custom timeout of {timeout_seconds}s"
                    ))
                })?
                .map_err(|error| provider_failure(operation, error))
        } else {
            future
                .await
                .map_err(|error| provider_failure(operation, error))
        }
    };
    tokio::select! {
        result = limited => result,
        () = shared.cancel.hard.cancelled() => Err(StepError::new(
            FailureCause::Cancelled,
            format!("{operation} was interrupted"),
        )),
    }
}

/// Creates the resource (or, in a dry run, predicts it); returns whether the ID is known.
pub(crate) async fn create_with_provider(
    shared: &RunState,
    provider: &dyn Provider,
    ctx: &CallContext,
    type_token: &str,
    state: &mut ResourceState,
    is_secret_output: &(dyn Fn(&str) -> bool + Sync),
) -> Result<bool, StepError> {
    let revealed_inputs = reveal_map(&state.inputs);
    if shared.is_dry_run() {
        let predicted = provider
            .create(ctx, type_token, &revealed_inputs, true)
            .await
            .map_err(|error| provider_failure("create", error))?;
        state.id = UNKNOWN_ID.to_owned();
        state.outputs = reseal_outputs(
            shared.secrets(),
            &state.inputs,
            shared.storable(&state.urn, "output", predicted.outputs),
            is_secret_output,
        );
        return Ok(false);
    }
    // Record the pending create before calling the provider: if we crash after it succeeds,
    // the next command must know that a resource may exist.
    let op = shared.begin(PendingOperationKind::Creating, state).await?;
    let created = call_provider(
        shared,
        state.custom_timeouts.create,
        "create",
        provider.create(ctx, type_token, &revealed_inputs, false),
    )
    .await;
    let created = match created {
        Ok(created) => created,
        Err(error) => {
            // The provider reported failure: nothing was created, so the intent is closed.
            shared.end(op, None, None).await?;
            return Err(error);
        }
    };
    state.id = created.id;
    state.outputs = reseal_outputs(
        shared.secrets(),
        &state.inputs,
        shared.storable(&state.urn, "output", created.outputs),
        is_secret_output,
    );
    shared.end(op, None, Some(state)).await?;
    Ok(true)
}

/// Deletes the resource (nothing in a dry run; only forgets it with `retainOnDelete` or when it
/// was read with `get`), its intent recorded first.
pub(crate) async fn delete_with_provider(
    shared: &RunState,
    provider: &dyn Provider,
    ctx: &CallContext,
    old: &ResourceState,
) -> Result<(), StepError> {
    if shared.is_dry_run() {
        return Ok(());
    }
    let op = shared.begin(PendingOperationKind::Deleting, old).await?;
    if !old.retain_on_delete && !old.external {
        let deleted = call_provider(
            shared,
            old.custom_timeouts.delete,
            "delete",
            provider.delete(
                ctx,
                &old.type_,
                &old.id,
                &reveal_map(&old.inputs),
                &reveal_map(&old.outputs),
            ),
        )
        .await;
        if let Err(error) = deleted {
            shared.end(op, None, None).await?;
            return Err(error);
        }
    }
    shared.end(op, Some(old), None).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pulumi_durations() {
        assert_eq!(parse_timeout(None), 0.0);
        assert_eq!(parse_timeout(Some("30s")), 30.0);
        assert_eq!(parse_timeout(Some("5m")), 300.0);
        assert_eq!(parse_timeout(Some("1h30m")), 5400.0);
        // Read as 30,000 s and 1 s before Go's syntax was followed.
        assert_eq!(parse_timeout(Some("500ms")), 0.5);
        assert_eq!(parse_timeout(Some("1d")), 0.0);
    }
}
