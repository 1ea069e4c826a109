//! The `Provider` trait every resource provider implements (built in or, later, out of process),
//! the `ProviderRegistry` the engine looks providers up in, and the `fake` provider.
//!
//! Architecture invariant: the engine talks to providers only through this trait. A provider
//! never sees a `Value::Secret` marker it has to keep: the engine reveals inputs before calling and
//! re-applies secretness to outputs afterwards, so providers deal in plain values.

pub mod fake;
pub mod files;
mod registry;

use std::collections::BTreeMap;

use async_trait::async_trait;
use cairn_core::{PackageSchema, PropertyMap, Urn};
use tokio_util::sync::CancellationToken;

pub use registry::{ProviderRegistry, ResolvedType};

/// Failures a provider reports. The message is shown to the user as is, so it must never contain
/// a secret's plaintext.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("{0}")]
    Failed(String),
    #[error("the operation was cancelled")]
    Cancelled,
    #[error("unknown type `{0}`")]
    UnknownType(String),
    #[error("unknown function `{0}`")]
    UnknownFunction(String),
}

pub type ProviderResult<T> = Result<T, ProviderError>;

/// One problem `check` found in a resource's inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckFailure {
    /// The offending property, when the problem is with one property.
    pub property: Option<String>,
    pub reason: String,
}

/// Inputs after the provider applied defaults, or what is wrong with them.
#[derive(Clone, Debug, Default)]
pub struct CheckResponse {
    pub inputs: PropertyMap,
    pub failures: Vec<CheckFailure>,
}

/// A provider's verdict on changed inputs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DiffResponse {
    /// Top-level properties that changed.
    pub changed_keys: Vec<String>,
    /// The subset of `changed_keys` that forces replacement.
    pub replace_keys: Vec<String>,
    /// The old resource must be deleted before its replacement is created.
    pub delete_before_replace: bool,
}

impl DiffResponse {
    pub fn has_changes(&self) -> bool {
        !self.changed_keys.is_empty()
    }

    pub fn requires_replacement(&self) -> bool {
        !self.replace_keys.is_empty()
    }
}

/// A resource the provider created (or, when `preview` was set, would create).
#[derive(Clone, Debug, Default)]
pub struct CreateResponse {
    pub id: String,
    pub outputs: PropertyMap,
}

/// The live state of a resource, or `None` from `read` when it no longer exists.
#[derive(Clone, Debug, Default)]
pub struct ReadResponse {
    pub id: String,
    pub inputs: PropertyMap,
    pub outputs: PropertyMap,
}

/// What every call carries: which resource, a token that is cancelled on a hard stop, and where
/// the provider's log lines go.
#[derive(Clone, Debug)]
pub struct CallContext {
    pub urn: Urn,
    pub cancel: CancellationToken,
    /// Where relative paths in inputs resolve (the program's directory).
    pub cwd: std::path::PathBuf,
    /// Log lines about this resource (Pulumi's `LogMessage`); `LogSink::default()` drops them.
    pub logs: LogSink,
    /// Outputs the resource declares secret (its schema's, and `additionalSecretOutputs`): a
    /// provider must not quote them in an error, which the engine cannot seal (a failed
    /// command's output, for one).
    pub secret_outputs: Vec<String>,
}

impl CallContext {
    /// A context whose log lines are dropped (tests, one-off calls).
    pub fn new(urn: Urn, cancel: CancellationToken, cwd: std::path::PathBuf) -> CallContext {
        CallContext {
            urn,
            cancel,
            cwd,
            logs: LogSink::default(),
            secret_outputs: Vec::new(),
        }
    }

    /// Logs a line about this call's resource.
    pub fn log(&self, severity: LogSeverity, message: &str) {
        self.logs.log(severity, message);
    }
}

/// How much a log line matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogSeverity {
    Debug,
    Info,
    Warning,
    Error,
}

impl LogSeverity {
    pub fn as_str(self) -> &'static str {
        match self {
            LogSeverity::Debug => "debug",
            LogSeverity::Info => "info",
            LogSeverity::Warning => "warning",
            LogSeverity::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Option<LogSeverity> {
        match text {
            "debug" => Some(LogSeverity::Debug),
            "info" => Some(LogSeverity::Info),
            "warning" | "warn" => Some(LogSeverity::Warning),
            "error" => Some(LogSeverity::Error),
            _ => None,
        }
    }
}

type LogFn = dyn Fn(LogSeverity, &str) + Send + Sync;

/// Where a provider's log lines go. The engine supplies one that records them (and keeps
/// secrets out of them); the default drops them.
#[derive(Clone, Default)]
pub struct LogSink(Option<std::sync::Arc<LogFn>>);

impl LogSink {
    pub fn new(sink: impl Fn(LogSeverity, &str) + Send + Sync + 'static) -> LogSink {
        LogSink(Some(std::sync::Arc::new(sink)))
    }

    pub fn log(&self, severity: LogSeverity, message: &str) {
        if let Some(sink) = &self.0 {
            sink(severity, message);
        }
    }
}

impl std::fmt::Debug for LogSink {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(if self.0.is_some() {
            "LogSink"
        } else {
            "LogSink(none)"
        })
    }
}

/// A resource provider. Every method is one of Pulumi's provider RPCs.
#[async_trait]
pub trait Provider: Send + Sync {
    /// The package this provider serves (`random`).
    fn package(&self) -> &str;

    /// The types and functions this provider offers.
    fn schema(&self) -> &PackageSchema;

    /// Validates inputs and fills defaults. `type_token` is canonical.
    async fn check(
        &self,
        ctx: &CallContext,
        type_token: &str,
        olds: Option<&PropertyMap>,
        news: &PropertyMap,
    ) -> ProviderResult<CheckResponse>;

    /// Compares old outputs/inputs with new inputs. Unknown new values count as changed.
    async fn diff(
        &self,
        ctx: &CallContext,
        type_token: &str,
        id: &str,
        old_inputs: &PropertyMap,
        old_outputs: &PropertyMap,
        news: &PropertyMap,
    ) -> ProviderResult<DiffResponse>;

    /// Creates a resource. With `preview` set, performs no side effect and returns the outputs
    /// it can predict, with `Value::Unknown` for the rest.
    async fn create(
        &self,
        ctx: &CallContext,
        type_token: &str,
        inputs: &PropertyMap,
        preview: bool,
    ) -> ProviderResult<CreateResponse>;

    /// Reads a resource's live state; `Ok(None)` when it is gone.
    async fn read(
        &self,
        ctx: &CallContext,
        type_token: &str,
        id: &str,
        inputs: &PropertyMap,
        outputs: &PropertyMap,
    ) -> ProviderResult<Option<ReadResponse>>;

    /// Updates a resource in place; with `preview`, no side effect.
    #[allow(clippy::too_many_arguments)]
    async fn update(
        &self,
        ctx: &CallContext,
        type_token: &str,
        id: &str,
        old_inputs: &PropertyMap,
        old_outputs: &PropertyMap,
        news: &PropertyMap,
        preview: bool,
    ) -> ProviderResult<PropertyMap>;

    /// Deletes a resource.
    async fn delete(
        &self,
        ctx: &CallContext,
        type_token: &str,
        id: &str,
        inputs: &PropertyMap,
        outputs: &PropertyMap,
    ) -> ProviderResult<()>;

    /// Calls a function (`fn::invoke`).
    async fn invoke(
        &self,
        ctx: &CallContext,
        function_token: &str,
        args: &PropertyMap,
    ) -> ProviderResult<PropertyMap>;

    /// Validates the provider's own configuration and fills defaults (Pulumi's `CheckConfig`).
    /// `news` may hold `Value::Unknown` during a preview. By default the package schema's
    /// `config` decides: required keys must be present, known values must have their type.
    async fn check_config(
        &self,
        _ctx: &CallContext,
        _olds: Option<&PropertyMap>,
        news: &PropertyMap,
    ) -> ProviderResult<CheckResponse> {
        Ok(check_config_by_schema(&self.schema().config, news))
    }

    /// Compares old and new configuration (Pulumi's `DiffConfig`). By default a change to a key
    /// the schema marks `replace_on_changes`, or any unknown value (seed 003: config that is not
    /// known yet must be assumed to replace), replaces the provider and the resources it manages.
    async fn diff_config(
        &self,
        _ctx: &CallContext,
        old_inputs: &PropertyMap,
        _old_outputs: &PropertyMap,
        news: &PropertyMap,
    ) -> ProviderResult<DiffResponse> {
        Ok(diff_config_by_schema(
            &self.schema().config,
            old_inputs,
            news,
        ))
    }

    /// Returns an instance configured with `config` (every value known, secrets revealed).
    /// `None` means this instance serves every configuration as it is, which is right for
    /// providers without configuration; a plugin returns a freshly started, configured process.
    async fn configure(
        &self,
        _ctx: &CallContext,
        _config: &PropertyMap,
    ) -> ProviderResult<Option<std::sync::Arc<dyn Provider>>> {
        Ok(None)
    }

    /// Called once when the engine is done with this instance: a plugin process exits here.
    async fn shutdown(&self) {}
}

/// Keys of a provider resource's inputs that belong to the engine, not to the provider's config.
pub const ENGINE_CONFIG_KEYS: [&str; 2] = ["version", "pluginDownloadURL"];

/// The default `check_config`: required keys present, known values of the declared type.
/// Keys the schema does not declare are passed through, as Pulumi's providers accept them.
pub fn check_config_by_schema(
    config: &BTreeMap<String, cairn_core::PropertySchema>,
    news: &PropertyMap,
) -> CheckResponse {
    let mut failures = Vec::new();
    for (key, property) in config {
        let value = news.get(key).map(cairn_core::Value::reveal);
        match value {
            None | Some(cairn_core::Value::Null) if property.required => {
                failures.push(CheckFailure {
                    property: Some(key.clone()),
                    reason: format!("missing required configuration `{key}`"),
                });
            }
            Some(value) if !value_has_type(&value, &property.type_) => {
                failures.push(CheckFailure {
                    property: Some(key.clone()),
                    reason: format!(
                        "configuration `{key}` should be {}",
                        describe_type(&property.type_)
                    ),
                });
            }
            _ => {}
        }
    }
    CheckResponse {
        inputs: news.clone(),
        failures,
    }
}

/// The default `diff_config`: changed keys, replacing on `replace_on_changes` keys and on any
/// value not known yet.
pub fn diff_config_by_schema(
    config: &BTreeMap<String, cairn_core::PropertySchema>,
    old_inputs: &PropertyMap,
    news: &PropertyMap,
) -> DiffResponse {
    let mut diff = diff_by_schema(None, old_inputs, news);
    diff.replace_keys = diff
        .changed_keys
        .iter()
        .filter(|key| {
            config
                .get(key.as_str())
                .is_some_and(|property| property.replace_on_changes)
                || news
                    .get(key.as_str())
                    .is_some_and(cairn_core::Value::contains_unknown)
        })
        .cloned()
        .collect();
    diff
}

fn value_has_type(value: &cairn_core::Value, type_: &cairn_core::PropertyType) -> bool {
    use cairn_core::{PropertyType, Value};
    match (value, type_) {
        (Value::Unknown | Value::Null, _) | (_, PropertyType::Any) => true,
        (Value::String(_), PropertyType::String) => true,
        (Value::Number(_), PropertyType::Number | PropertyType::Integer) => true,
        (Value::Bool(_), PropertyType::Boolean) => true,
        (Value::Array(_), PropertyType::Array(_)) => true,
        (Value::Object(_), PropertyType::Map(_)) => true,
        // Stack config arrives as strings (`cairn config set aws:maxRetries 3`).
        (Value::String(_), _) => true,
        _ => false,
    }
}

fn describe_type(type_: &cairn_core::PropertyType) -> &'static str {
    use cairn_core::PropertyType;
    match type_ {
        PropertyType::String => "a string",
        PropertyType::Number | PropertyType::Integer => "a number",
        PropertyType::Boolean => "a boolean",
        PropertyType::Array(_) => "a list",
        PropertyType::Map(_) => "a map",
        _ => "a value",
    }
}

/// A diff computed the generic way: by comparing old inputs with new ones, key by key, and
/// replacing on the schema's `replace_on_changes` properties. Providers without special rules use it.
pub fn diff_by_schema(
    schema: Option<&cairn_core::ResourceSchema>,
    old_inputs: &PropertyMap,
    news: &PropertyMap,
) -> DiffResponse {
    let mut changed_keys: Vec<String> = Vec::new();
    let keys: std::collections::BTreeSet<&String> = old_inputs.keys().chain(news.keys()).collect();
    for key in keys {
        let old = old_inputs.get(key).map(cairn_core::Value::reveal);
        let new = news.get(key).map(cairn_core::Value::reveal);
        let is_null = |value: &Option<cairn_core::Value>| {
            matches!(value, None | Some(cairn_core::Value::Null))
        };
        if old != new && !(is_null(&old) && is_null(&new)) {
            changed_keys.push(key.clone());
        }
    }
    let replace_keys = changed_keys
        .iter()
        .filter(|key| {
            schema
                .and_then(|schema| schema.inputs.get(key.as_str()))
                .is_some_and(|property| property.replace_on_changes)
        })
        .cloned()
        .collect();
    DiffResponse {
        changed_keys,
        replace_keys,
        delete_before_replace: false,
    }
}

/// Helpers for providers reading their inputs.
pub fn input_str<'a>(inputs: &'a PropertyMap, key: &str) -> Option<&'a str> {
    inputs.get(key).and_then(cairn_core::Value::as_str)
}

/// Maps keyed by name, for providers that build schemas by hand.
pub type PropertySchemas = BTreeMap<String, cairn_core::PropertySchema>;
