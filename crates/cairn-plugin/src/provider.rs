//! `PluginProvider`: a plugin process behind the `Provider` trait.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cairn_core::{PackageSchema, PropertyMap};
use cairn_provider::{
    CallContext, CheckFailure, CheckResponse, CreateResponse, DiffResponse, Provider,
    ProviderError, ProviderResult, ReadResponse,
};
use cairn_provider_sdk::PROTOCOL_VERSION;
use cairn_provider_sdk::wire::{self, codes, map_from_json, map_to_json};
use serde_json::{Value as Json, json};

use crate::PluginError;
use crate::connection::{CallError, Connection};

/// How long a plugin has to answer the handshake and send its schema.
const START_TIMEOUT: Duration = Duration::from_secs(20);

pub struct PluginProvider {
    /// The package, as the plugin names itself.
    package: String,
    /// The executable, for messages and for starting configured instances.
    path: PathBuf,
    version: String,
    schema: PackageSchema,
    connection: Connection,
}

impl PluginProvider {
    /// Starts the plugin at `path` (expected to provide package `name`), shakes hands and reads
    /// its schema.
    pub async fn launch(name: &str, path: &Path) -> Result<Arc<PluginProvider>, PluginError> {
        let fail = |reason: String| PluginError::Launch {
            name: name.to_owned(),
            path: path.display().to_string(),
            reason,
        };
        let connection = Connection::spawn(path).map_err(|error| fail(error.to_string()))?;
        let started = tokio::time::timeout(START_TIMEOUT, async {
            let hello = connection
                .call(
                    "handshake",
                    json!({
                        "engine": "cairn",
                        "engineVersion": env!("CARGO_PKG_VERSION"),
                        "protocolVersions": [PROTOCOL_VERSION],
                    }),
                    None,
                )
                .await
                .map_err(|error| format!("the handshake failed: {}", describe(&error)))?;
            let version = hello["protocolVersion"].as_u64().unwrap_or(0);
            if version != PROTOCOL_VERSION {
                return Err(format!(
                    "it speaks plugin protocol version {version}; this Cairn speaks version {PROTOCOL_VERSION}"
                ));
            }
            let package = hello["name"].as_str().unwrap_or(name).to_owned();
            if package != name {
                return Err(format!("it provides package `{package}`, not `{name}`"));
            }
            let schema = connection
                .call("getSchema", json!({}), None)
                .await
                .map_err(|error| format!("getSchema failed: {}", describe(&error)))?;
            let schema = wire::schema_from_json(&schema["schema"])?;
            Ok((package, hello["version"].as_str().unwrap_or("").to_owned(), schema))
        })
        .await;
        let (package, version, schema) = match started {
            Ok(Ok(started)) => started,
            Ok(Err(reason)) => {
                connection.shutdown().await;
                return Err(fail(reason));
            }
            Err(_) => {
                connection.shutdown().await;
                return Err(fail(format!(
                    "it did not answer the handshake within {}s",
                    START_TIMEOUT.as_secs()
                )));
            }
        };
        Ok(Arc::new(PluginProvider {
            package,
            path: path.to_owned(),
            version,
            schema,
            connection,
        }))
    }

    /// The version the plugin reports.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Calls `method`; errors name the plugin and the operation. A cancelled context sends the
    /// plugin `cancel` and returns at once.
    async fn call(
        &self,
        ctx: Option<&CallContext>,
        method: &str,
        mut params: Json,
    ) -> ProviderResult<Json> {
        if let Some(ctx) = ctx {
            params["urn"] = json!(ctx.urn.as_str());
            params["cwd"] = json!(ctx.cwd.display().to_string());
            if !ctx.secret_outputs.is_empty() {
                params["secretOutputs"] = json!(ctx.secret_outputs);
            }
        }
        let logs = ctx.map(|ctx| (ctx.urn.as_str(), &ctx.logs));
        let call = self.connection.call(method, params, logs);
        let reply = match ctx {
            Some(ctx) => tokio::select! {
                reply = call => reply,
                () = ctx.cancel.cancelled() => {
                    self.connection.notify("cancel", json!({})).await;
                    return Err(ProviderError::Cancelled);
                }
            },
            None => call.await,
        };
        reply.map_err(|error| match error {
            CallError::Rpc { code, .. } if code == codes::CANCELLED => ProviderError::Cancelled,
            CallError::Rpc { code, message } if code == codes::FAILED => {
                ProviderError::Failed(message)
            }
            other => ProviderError::Failed(format!(
                "plugin `{}` ({}) failed `{method}`: {}",
                self.package,
                self.path.display(),
                describe(&other)
            )),
        })
    }

    fn garbage(&self, method: &str, what: &str) -> ProviderError {
        ProviderError::Failed(format!(
            "plugin `{}` answered `{method}` with a malformed {what}",
            self.package
        ))
    }

    fn properties(&self, method: &str, json: &Json) -> ProviderResult<PropertyMap> {
        map_from_json(json).map_err(|_| self.garbage(method, "property map"))
    }

    fn diff_from(&self, method: &str, json: &Json) -> ProviderResult<DiffResponse> {
        let names = |key: &str| -> ProviderResult<Vec<String>> {
            match &json[key] {
                Json::Null => Ok(Vec::new()),
                Json::Array(names) => Ok(names
                    .iter()
                    .filter_map(|name| name.as_str().map(str::to_owned))
                    .collect()),
                _ => Err(self.garbage(method, "diff")),
            }
        };
        Ok(DiffResponse {
            changed_keys: names("changes")?,
            replace_keys: names("replaces")?,
            delete_before_replace: json["deleteBeforeReplace"].as_bool().unwrap_or(false),
        })
    }

    fn check_from(&self, method: &str, json: &Json) -> ProviderResult<CheckResponse> {
        let failures = json["failures"]
            .as_array()
            .map(|failures| {
                failures
                    .iter()
                    .map(|failure| CheckFailure {
                        property: failure["property"].as_str().map(str::to_owned),
                        reason: failure["reason"].as_str().unwrap_or("invalid").to_owned(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(CheckResponse {
            inputs: self.properties(method, &json["inputs"])?,
            failures,
        })
    }
}

fn describe(error: &CallError) -> String {
    match error {
        CallError::Rpc { code, message } => format!("{message} (error {code})"),
        CallError::Broken(reason) => format!("the plugin {reason}"),
    }
}

#[async_trait]
impl Provider for PluginProvider {
    fn package(&self) -> &str {
        &self.package
    }

    fn schema(&self) -> &PackageSchema {
        &self.schema
    }

    async fn check(
        &self,
        ctx: &CallContext,
        type_token: &str,
        olds: Option<&PropertyMap>,
        news: &PropertyMap,
    ) -> ProviderResult<CheckResponse> {
        let params = json!({
            "type": type_token,
            "olds": olds.map(map_to_json),
            "news": map_to_json(news),
        });
        let result = self.call(Some(ctx), "check", params).await?;
        self.check_from("check", &result)
    }

    async fn diff(
        &self,
        ctx: &CallContext,
        type_token: &str,
        id: &str,
        old_inputs: &PropertyMap,
        old_outputs: &PropertyMap,
        news: &PropertyMap,
    ) -> ProviderResult<DiffResponse> {
        let params = json!({
            "type": type_token, "id": id,
            "oldInputs": map_to_json(old_inputs),
            "oldOutputs": map_to_json(old_outputs),
            "news": map_to_json(news),
        });
        let result = self.call(Some(ctx), "diff", params).await?;
        self.diff_from("diff", &result)
    }

    async fn create(
        &self,
        ctx: &CallContext,
        type_token: &str,
        inputs: &PropertyMap,
        preview: bool,
    ) -> ProviderResult<CreateResponse> {
        let params =
            json!({ "type": type_token, "inputs": map_to_json(inputs), "preview": preview });
        let result = self.call(Some(ctx), "create", params).await?;
        let id = match &result["id"] {
            Json::String(id) => id.clone(),
            Json::Null if preview => String::new(),
            _ => return Err(self.garbage("create", "ID")),
        };
        if id.is_empty() && !preview {
            return Err(self.garbage("create", "(empty) ID"));
        }
        Ok(CreateResponse {
            id,
            outputs: self.properties("create", &result["outputs"])?,
        })
    }

    async fn read(
        &self,
        ctx: &CallContext,
        type_token: &str,
        id: &str,
        inputs: &PropertyMap,
        outputs: &PropertyMap,
    ) -> ProviderResult<Option<ReadResponse>> {
        let params = json!({
            "type": type_token, "id": id,
            "inputs": map_to_json(inputs),
            "outputs": map_to_json(outputs),
        });
        let result = self.call(Some(ctx), "read", params).await?;
        if result.is_null() {
            return Ok(None);
        }
        Ok(Some(ReadResponse {
            id: result["id"].as_str().unwrap_or(id).to_owned(),
            inputs: self.properties("read", &result["inputs"])?,
            outputs: self.properties("read", &result["outputs"])?,
        }))
    }

    async fn update(
        &self,
        ctx: &CallContext,
        type_token: &str,
        id: &str,
        old_inputs: &PropertyMap,
        old_outputs: &PropertyMap,
        news: &PropertyMap,
        preview: bool,
    ) -> ProviderResult<PropertyMap> {
        let params = json!({
            "type": type_token, "id": id,
            "oldInputs": map_to_json(old_inputs),
            "oldOutputs": map_to_json(old_outputs),
            "news": map_to_json(news),
            "preview": preview,
        });
        let result = self.call(Some(ctx), "update", params).await?;
        self.properties("update", &result["outputs"])
    }

    async fn delete(
        &self,
        ctx: &CallContext,
        type_token: &str,
        id: &str,
        inputs: &PropertyMap,
        outputs: &PropertyMap,
    ) -> ProviderResult<()> {
        let params = json!({
            "type": type_token, "id": id,
            "inputs": map_to_json(inputs),
            "outputs": map_to_json(outputs),
        });
        self.call(Some(ctx), "delete", params).await.map(|_| ())
    }

    async fn invoke(
        &self,
        ctx: &CallContext,
        function_token: &str,
        args: &PropertyMap,
    ) -> ProviderResult<PropertyMap> {
        let params = json!({ "token": function_token, "args": map_to_json(args) });
        let result = self.call(Some(ctx), "invoke", params).await?;
        self.properties("invoke", &result["outputs"])
    }

    async fn check_config(
        &self,
        ctx: &CallContext,
        olds: Option<&PropertyMap>,
        news: &PropertyMap,
    ) -> ProviderResult<CheckResponse> {
        let params = json!({ "olds": olds.map(map_to_json), "news": map_to_json(news) });
        let result = self.call(Some(ctx), "checkConfig", params).await?;
        self.check_from("checkConfig", &result)
    }

    async fn diff_config(
        &self,
        ctx: &CallContext,
        old_inputs: &PropertyMap,
        old_outputs: &PropertyMap,
        news: &PropertyMap,
    ) -> ProviderResult<DiffResponse> {
        let params = json!({
            "oldInputs": map_to_json(old_inputs),
            "oldOutputs": map_to_json(old_outputs),
            "news": map_to_json(news),
        });
        let result = self.call(Some(ctx), "diffConfig", params).await?;
        self.diff_from("diffConfig", &result)
    }

    /// Configuration is per process (as in Pulumi): a provider with configuration gets a
    /// process of its own; one without configures this process and shares it.
    async fn configure(
        &self,
        ctx: &CallContext,
        config: &PropertyMap,
    ) -> ProviderResult<Option<Arc<dyn Provider>>> {
        if config.is_empty() {
            self.call(Some(ctx), "configure", json!({ "config": {} }))
                .await?;
            return Ok(None);
        }
        let instance = PluginProvider::launch(&self.package, &self.path)
            .await
            .map_err(|error| ProviderError::Failed(error.to_string()))?;
        if let Err(error) = instance
            .call(
                Some(ctx),
                "configure",
                json!({ "config": map_to_json(config) }),
            )
            .await
        {
            instance.connection.shutdown().await;
            return Err(error);
        }
        Ok(Some(instance))
    }

    async fn shutdown(&self) {
        self.connection.shutdown().await;
    }
}
