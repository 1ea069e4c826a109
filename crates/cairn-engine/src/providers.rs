//! First-class providers (seed 003): provider resources, their configuration, and the
//! configured provider instance behind each provider reference (`<urn>::<id>`).
//!
//! Every custom resource names its provider by reference. The instance behind a reference is made
//! once per run, on first use: the provider resource's state (registered this run, or found in
//! the old snapshot, so old copies can still delete what they manage) gives the configuration,
//! and the package's registered provider `configure`s an instance from it. Configuration that is
//! not known yet (a preview, config taken from an output not created yet) leaves the provider
//! unconfigured: its resources show as unknown and nothing is asked of the real provider.

use std::sync::Arc;

use async_trait::async_trait;
use cairn_core::{PendingOperationKind, PropertyMap, ResourceState, StepOp, Urn, Value};
use cairn_program::{Program, ResourceDecl};
use cairn_provider::{
    CallContext, CheckResponse, CreateResponse, DiffResponse, ENGINE_CONFIG_KEYS, Provider,
    ProviderError, ProviderResult, ReadResponse,
};

use crate::events::StepError;
use crate::provider_instances::reference_of;
use crate::run_state::RunState;
use crate::secrets::{reseal_outputs, reveal_map};

/// Pulumi's marker for a value that is not known yet, used as the ID of resources a preview
/// would create (and so in the provider references of provider resources a preview would
/// create).
pub(crate) const UNKNOWN_ID: &str = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

/// The package a provider resource type configures (`pulumi:providers:aws` → `aws`).
pub(crate) fn provider_package(type_token: &str) -> Option<&str> {
    type_token
        .strip_prefix("pulumi:providers:")
        .or_else(|| type_token.strip_prefix("cairn:providers:"))
}

/// Whether `urn` names a default provider: `default`, or Pulumi's versioned `default_4_16_0`.
pub fn is_default_provider(urn: &Urn) -> bool {
    provider_package(urn.type_token()).is_some()
        && (urn.name() == "default" || urn.name().starts_with("default_"))
}

/// The resource key of the explicit provider that manages `decl`: its own `provider` option,
/// else the first matching entry of a `providers` option on it or on an ancestor (Pulumi's
/// inheritance from parents), else a provider resource of the package marked
/// `defaultProvider: true`. `None` means the package's default provider.
pub(crate) fn explicit_provider_key(
    shared: &RunState,
    program: &Program,
    decl: &ResourceDecl,
) -> Option<String> {
    let index_of = &shared.resource_index;
    if let Some(key) = &decl.options.provider {
        return Some(key.clone());
    }
    let package = cairn_core::type_token::package_of(&decl.type_token);
    let manages_package = |key: &&String| {
        index_of
            .get(key.as_str())
            .and_then(|&index| provider_package(&program.resources[index].type_token))
            == Some(package)
    };
    let mut current = Some(decl);
    // A parent chain is acyclic (the checker rejects cycles); the count only guards that.
    let mut n_visited = 0;
    while let Some(resource) = current
        && n_visited <= program.resources.len()
    {
        n_visited += 1;
        if let Some(key) = resource.options.providers.iter().find(manages_package) {
            return Some(key.clone());
        }
        if !std::ptr::eq(resource, decl)
            && let Some(key) = resource.options.provider.as_ref().filter(manages_package)
        {
            return Some(key.clone());
        }
        current = resource
            .options
            .parent
            .as_ref()
            .and_then(|parent| index_of.get(parent))
            .map(|&index| &program.resources[index]);
    }
    // A provider resource marked `defaultProvider: true` stands in for the package's default.
    shared
        .marked_default_providers
        .iter()
        .map(|&index| &program.resources[index])
        .find(|resource| provider_package(&resource.type_token) == Some(package))
        .map(|resource| resource.key.clone())
}

/// The configured instance behind a provider reference, made once per run on first use.
pub(crate) async fn provider_instance(
    shared: &RunState,
    reference: &str,
) -> Result<Arc<dyn Provider>, String> {
    shared
        .provider_instances()
        .get_or_configure(reference, || configure_reference(shared, reference))
        .await
}

/// Configures the instance behind `reference` from its provider resource's state: registered
/// this run, else found in the old snapshot.
async fn configure_reference(
    shared: &RunState,
    reference: &str,
) -> Result<Arc<dyn Provider>, String> {
    let (urn, id) = reference
        .rsplit_once("::")
        .ok_or_else(|| format!("malformed provider reference `{reference}`"))?;
    let registered = shared.provider_instances().registered(reference);
    let state = registered.or_else(|| {
        shared
            .old_snapshot()
            .resources
            .iter()
            .find(|resource| resource.urn.as_str() == urn && resource.id == id)
            .cloned()
    });
    let parsed =
        Urn::parse(urn).map_err(|_| format!("malformed provider reference `{reference}`"))?;
    let package = provider_package(parsed.type_token())
        .map(str::to_owned)
        .ok_or_else(|| format!("`{reference}` is not a provider reference"))?;
    let base = shared
        .request
        .providers
        .provider(&package)
        .cloned()
        .ok_or_else(|| missing_package(&package))?;
    let Some(state) = state else {
        // A state written before providers had configuration: the package's own instance.
        return Ok(base);
    };
    let config = provider_config(&state.inputs);
    if config.values().any(Value::contains_unknown) {
        return Ok(Arc::new(Unconfigured { base }));
    }
    let ctx = shared.call_context(&state.urn);
    match base.configure(&ctx, &reveal_map(&config)).await {
        Ok(Some(instance)) => {
            shared.provider_instances().record_made(instance.clone());
            Ok(instance)
        }
        Ok(None) => Ok(base),
        Err(error) => Err(format!(
            "configuring the `{package}` provider `{}` failed: {error}",
            state.urn.name()
        )),
    }
}

fn missing_package(package: &str) -> String {
    format!(
        "no provider for package `{package}`: it is not built in and no plugin \
         `cairn-provider-{package}` was found (see `cairn plugin ls`)"
    )
}

/// A provider resource's inputs without the keys that belong to the engine (`version`).
pub(crate) fn provider_config(inputs: &PropertyMap) -> PropertyMap {
    inputs
        .iter()
        .filter(|(key, _)| !ENGINE_CONFIG_KEYS.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// The default provider's configuration: the stack's `<package>:<key>` config entries.
pub(crate) fn default_provider_config(shared: &RunState, package: &str) -> PropertyMap {
    let prefix = format!("{package}:");
    shared
        .request
        .config
        .iter()
        .filter_map(|(key, value)| {
            key.strip_prefix(&prefix)
                .map(|name| (name.to_owned(), value.clone()))
        })
        .collect()
}

/// What one provider resource's step did.
pub(crate) struct ProviderStep {
    pub op: StepOp,
    pub state: ResourceState,
    pub changed_keys: Vec<String>,
    pub replace_keys: Vec<String>,
}

/// Checks and diffs a provider resource's configuration, records its step (a replacement
/// marks the old copy for deletion first, as resources do), and registers it so the resources
/// it manages find a configured instance. `state` carries the new inputs, without an ID.
pub(crate) async fn step_provider(
    shared: &RunState,
    mut state: ResourceState,
    old: Option<&ResourceState>,
) -> Result<ProviderStep, StepError> {
    let package = provider_package(&state.type_)
        .ok_or_else(|| StepError::program(format!("`{}` is not a provider type", state.type_)))?
        .to_owned();
    let base = shared
        .request
        .providers
        .provider(&package)
        .cloned()
        .ok_or_else(|| StepError::program(missing_package(&package)))?;
    let ctx = shared.call_context(&state.urn);
    let news = provider_config(&state.inputs);
    let old_config = old.map(|old| reveal_map(&provider_config(&old.inputs)));
    let checked = base
        .check_config(&ctx, old_config.as_ref(), &reveal_map(&news))
        .await
        .map_err(|error| {
            StepError::provider(format!(
                "checking the provider configuration failed: {error}"
            ))
        })?;
    if !checked.failures.is_empty() {
        let reasons: Vec<String> = checked
            .failures
            .iter()
            .map(|failure| match &failure.property {
                Some(property) => format!("`{package}:{property}`: {}", failure.reason),
                None => failure.reason.clone(),
            })
            .collect();
        return Err(StepError::provider(format!(
            "invalid provider configuration: {}",
            reasons.join("; ")
        )));
    }
    let mut inputs = reseal_outputs(shared.secrets(), &news, checked.inputs, &|_| false);
    for key in ENGINE_CONFIG_KEYS {
        if let Some(value) = state.inputs.get(key) {
            inputs.insert(key.to_owned(), value.clone());
        }
    }
    state.inputs = inputs;
    state.outputs = state.inputs.clone();

    let diff = match old {
        None => DiffResponse::default(),
        Some(old) => base
            .diff_config(
                &ctx,
                &reveal_map(&provider_config(&old.inputs)),
                &reveal_map(&provider_config(&old.outputs)),
                &reveal_map(&provider_config(&state.inputs)),
            )
            .await
            .map_err(|error| {
                StepError::provider(format!(
                    "diffing the provider configuration failed: {error}"
                ))
            })?,
    };
    let op = match old {
        None => StepOp::Create,
        Some(_) if diff.requires_replacement() => StepOp::Replace,
        Some(old) if diff.has_changes() || old.inputs != state.inputs => StepOp::Update,
        Some(_) => StepOp::Same,
    };
    let dry_run = shared.is_dry_run();
    state.id = match (op, old) {
        (StepOp::Same | StepOp::Update, Some(old)) => old.id.clone(),
        _ if dry_run => UNKNOWN_ID.to_owned(),
        _ => uuid::Uuid::new_v4().to_string(),
    };
    if !dry_run {
        match (op, old) {
            (StepOp::Replace, Some(old)) => {
                let mut doomed = old.clone();
                doomed.delete = true;
                let pending = shared.begin(PendingOperationKind::Updating, old).await?;
                shared.end(pending, Some(old), Some(&doomed)).await?;
                let pending = shared.begin(PendingOperationKind::Creating, &state).await?;
                shared.end(pending, None, Some(&state)).await?;
                shared.delete_later(doomed);
            }
            (_, Some(old)) if old != &state => {
                let pending = shared.begin(PendingOperationKind::Updating, old).await?;
                shared.end(pending, Some(old), Some(&state)).await?;
            }
            (_, None) => {
                let pending = shared.begin(PendingOperationKind::Creating, &state).await?;
                shared.end(pending, None, Some(&state)).await?;
            }
            _ => {}
        }
    }
    shared.provider_instances().register(state.clone());
    // Configure now, so a provider that refuses its configuration fails here, on its own step.
    provider_instance(shared, &reference_of(&state))
        .await
        .map_err(StepError::provider)?;
    Ok(ProviderStep {
        op,
        state,
        changed_keys: diff.changed_keys,
        replace_keys: diff.replace_keys,
    })
}

/// A provider whose configuration is not known yet (only in a preview). Seed 003: it is not
/// configured; it passes inputs through and reports every output as unknown.
struct Unconfigured {
    base: Arc<dyn Provider>,
}

impl Unconfigured {
    fn unknown_outputs(&self, type_token: &str, inputs: &PropertyMap) -> PropertyMap {
        let mut outputs = inputs.clone();
        if let Some(schema) = self.base.schema().resource(type_token) {
            for key in schema.outputs.keys() {
                outputs.entry(key.clone()).or_insert(Value::Unknown);
            }
        }
        outputs
    }

    fn refuse(&self, operation: &str) -> ProviderError {
        ProviderError::Failed(format!(
            "the `{}` provider cannot {operation}: its configuration is not known yet",
            self.base.package()
        ))
    }
}

#[async_trait]
impl Provider for Unconfigured {
    fn package(&self) -> &str {
        self.base.package()
    }

    fn schema(&self) -> &cairn_core::PackageSchema {
        self.base.schema()
    }

    async fn check(
        &self,
        _: &CallContext,
        _: &str,
        _: Option<&PropertyMap>,
        news: &PropertyMap,
    ) -> ProviderResult<CheckResponse> {
        Ok(CheckResponse {
            inputs: news.clone(),
            failures: Vec::new(),
        })
    }

    async fn diff(
        &self,
        _: &CallContext,
        _: &str,
        _: &str,
        old_inputs: &PropertyMap,
        _: &PropertyMap,
        news: &PropertyMap,
    ) -> ProviderResult<DiffResponse> {
        Ok(cairn_provider::diff_by_schema(None, old_inputs, news))
    }

    async fn create(
        &self,
        _: &CallContext,
        type_token: &str,
        inputs: &PropertyMap,
        preview: bool,
    ) -> ProviderResult<CreateResponse> {
        if !preview {
            return Err(self.refuse("create"));
        }
        Ok(CreateResponse {
            id: String::new(),
            outputs: self.unknown_outputs(type_token, inputs),
        })
    }

    async fn read(
        &self,
        _: &CallContext,
        _: &str,
        _: &str,
        _: &PropertyMap,
        _: &PropertyMap,
    ) -> ProviderResult<Option<ReadResponse>> {
        Err(self.refuse("read"))
    }

    async fn update(
        &self,
        _: &CallContext,
        type_token: &str,
        _: &str,
        _: &PropertyMap,
        _: &PropertyMap,
        news: &PropertyMap,
        preview: bool,
    ) -> ProviderResult<PropertyMap> {
        if !preview {
            return Err(self.refuse("update"));
        }
        Ok(self.unknown_outputs(type_token, news))
    }

    async fn delete(
        &self,
        _: &CallContext,
        _: &str,
        _: &str,
        _: &PropertyMap,
        _: &PropertyMap,
    ) -> ProviderResult<()> {
        Err(self.refuse("delete"))
    }

    async fn invoke(
        &self,
        _: &CallContext,
        _: &str,
        _: &PropertyMap,
    ) -> ProviderResult<PropertyMap> {
        Err(self.refuse("invoke"))
    }
}
