//! The built-in `docker` provider: `docker:Container`, `docker:Network`, `docker:Volume` and
//! `docker:Image` with the property names of Pulumi's docker package, so Pulumi YAML programs
//! using them run unchanged, on the Docker Engine API (bollard; never the `docker` CLI).
//! Images are built from a local context and never pushed: no registry is used.
//!
//! Every input change replaces the resource (as most of the Terraform-bridged docker provider's
//! inputs do). Provider config: `host` (`docker:host`, e.g. `tcp://10.0.0.5:2375`), else
//! `DOCKER_HOST`, else the local socket; a configured provider talks to its own engine.

mod resources;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bollard::Docker;
use cairn_core::schema::{PropertySchema, PropertyType, ResourceSchema};
use cairn_core::{PackageSchema, PropertyMap, Value};
use cairn_provider::{
    CallContext, CheckFailure, CheckResponse, CreateResponse, DiffResponse, Provider,
    ProviderError, ProviderResult, ReadResponse,
};
use tokio::sync::OnceCell;

pub const CONTAINER: &str = "docker:index/container:Container";
pub const NETWORK: &str = "docker:index/network:Network";
pub const VOLUME: &str = "docker:index/volume:Volume";
pub const IMAGE: &str = "docker:index/image:Image";

/// The provider. The engine connection is made on first use, so programs that never touch
/// Docker do not need an engine.
pub struct DockerProvider {
    schema: PackageSchema,
    host: Option<String>,
    docker: OnceCell<Docker>,
}

pub fn docker_provider() -> Arc<dyn Provider> {
    Arc::new(DockerProvider::new(None))
}

fn property(type_: PropertyType) -> PropertySchema {
    PropertySchema::new(type_).replaces()
}

fn schema() -> PackageSchema {
    use PropertyType::{Any, Array, Boolean, Integer, Map, String};
    let list = |item: PropertyType| property(Array(Box::new(item)));
    let resource = |token: &str,
                    description: &str,
                    inputs: Vec<(&str, PropertySchema)>,
                    outputs: Vec<(&str, PropertyType)>| {
        let inputs: BTreeMap<std::string::String, PropertySchema> = inputs
            .into_iter()
            .map(|(name, property)| (name.to_owned(), property))
            .collect();
        let mut all_outputs = inputs.clone();
        for (name, type_) in outputs {
            all_outputs.insert(name.to_owned(), PropertySchema::new(type_));
        }
        ResourceSchema {
            token: token.to_owned(),
            description: description.to_owned(),
            inputs,
            outputs: all_outputs,
            accepts_any_input: false,
        }
    };
    PackageSchema {
        name: "docker".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        resources: vec![
            resource(
                CONTAINER,
                "A container",
                vec![
                    ("image", property(String).required()),
                    ("name", property(String)),
                    ("command", list(String)),
                    ("entrypoints", list(String)),
                    ("envs", list(String)),
                    ("labels", list(Any)),
                    ("networksAdvanced", list(Any)),
                    ("volumes", list(Any)),
                    ("ports", list(Any)),
                    ("restart", property(String)),
                    ("memory", property(Integer)),
                    ("mustRun", property(Boolean)),
                    ("start", property(Boolean)),
                    ("hostname", property(String)),
                    ("workingDir", property(String)),
                    ("user", property(String)),
                    ("networkMode", property(String)),
                ],
                vec![("ipAddress", String), ("exitCode", Integer)],
            ),
            resource(
                NETWORK,
                "A network",
                vec![
                    ("name", property(String)),
                    ("driver", property(String)),
                    ("internal", property(Boolean)),
                    ("attachable", property(Boolean)),
                    ("labels", list(Any)),
                    ("options", property(Map(Box::new(String)))),
                ],
                vec![("scope", String)],
            ),
            resource(
                VOLUME,
                "A volume",
                vec![
                    ("name", property(String)),
                    ("driver", property(String)),
                    ("driverOpts", property(Map(Box::new(String)))),
                    ("labels", list(Any)),
                ],
                vec![("mountpoint", String)],
            ),
            resource(
                IMAGE,
                "An image built from a local context (never pushed: no registry is used)",
                vec![
                    ("imageName", property(String).required()),
                    ("build", property(Any)),
                    ("skipPush", PropertySchema::new(Boolean)),
                    ("registry", PropertySchema::new(Any)),
                    ("contextDigest", property(String)),
                ],
                vec![
                    ("repoDigest", String),
                    ("baseImageName", String),
                    ("imageId", String),
                ],
            ),
        ],
        functions: Vec::new(),
        config: BTreeMap::from([(
            "host".to_owned(),
            PropertySchema::new(String)
                .replaces()
                .describe("the Docker Engine (unix:///path or tcp://host:port)"),
        )]),
    }
}

impl DockerProvider {
    pub fn new(host: Option<String>) -> DockerProvider {
        DockerProvider {
            schema: schema(),
            host,
            docker: OnceCell::new(),
        }
    }

    async fn docker(&self) -> ProviderResult<&Docker> {
        self.docker
            .get_or_try_init(|| async {
                let docker = match self.host.as_deref() {
                    Some(host) if host.starts_with("unix://") => Docker::connect_with_socket(
                        host.trim_start_matches("unix://"),
                        120,
                        bollard::API_DEFAULT_VERSION,
                    ),
                    Some(host) => {
                        Docker::connect_with_http(host, 120, bollard::API_DEFAULT_VERSION)
                    }
                    None => Docker::connect_with_local_defaults(),
                }
                .map_err(|error| ProviderError::Failed(format!("connecting to Docker: {error}")))?;
                docker
                    .negotiate_version()
                    .await
                    .map_err(|error| ProviderError::Failed(format!("reaching Docker: {error}")))
            })
            .await
    }
}

/// Plain JSON of a property map (the engine has revealed secrets; unknowns only in previews).
pub(crate) fn to_json(inputs: &PropertyMap) -> serde_json::Value {
    fn one(value: &Value) -> serde_json::Value {
        match value {
            Value::Null | Value::Unknown => serde_json::Value::Null,
            Value::Bool(flag) => serde_json::json!(flag),
            Value::Number(number) if number.fract() == 0.0 => serde_json::json!(*number as i64),
            Value::Number(number) => serde_json::json!(number),
            Value::String(text) => serde_json::json!(text),
            Value::Array(items) => serde_json::Value::Array(items.iter().map(one).collect()),
            Value::Object(map) => serde_json::Value::Object(
                map.iter()
                    .map(|(key, value)| (key.clone(), one(value)))
                    .collect(),
            ),
            Value::Secret(inner) => one(inner),
        }
    }
    serde_json::Value::Object(
        inputs
            .iter()
            .map(|(key, value)| (key.clone(), one(value)))
            .collect(),
    )
}

pub(crate) fn from_json(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(flag) => Value::Bool(*flag),
        serde_json::Value::Number(number) => Value::Number(number.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(text) => Value::String(text.clone()),
        serde_json::Value::Array(items) => Value::Array(items.iter().map(from_json).collect()),
        serde_json::Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| (key.clone(), from_json(value)))
                .collect(),
        ),
    }
}

#[async_trait]
impl Provider for DockerProvider {
    fn package(&self) -> &str {
        "docker"
    }

    fn schema(&self) -> &PackageSchema {
        &self.schema
    }

    async fn check(
        &self,
        ctx: &CallContext,
        type_token: &str,
        _olds: Option<&PropertyMap>,
        news: &PropertyMap,
    ) -> ProviderResult<CheckResponse> {
        let mut inputs = news.clone();
        let mut failures = Vec::new();
        if type_token == IMAGE && !news.values().any(Value::contains_unknown) {
            // A changed build context is a new image: its digest is an input, so diff sees it.
            match resources::context_digest(ctx, &to_json(news)) {
                Ok(Some(digest)) => {
                    inputs.insert("contextDigest".to_owned(), Value::String(digest));
                }
                Ok(None) => {}
                Err(reason) => failures.push(CheckFailure {
                    property: Some("build".to_owned()),
                    reason,
                }),
            }
            if news.get("skipPush").and_then(Value::as_bool) == Some(false) {
                failures.push(CheckFailure {
                    property: Some("skipPush".to_owned()),
                    reason: "pushing images is not supported (no registry is used); set `skipPush: true`".to_owned(),
                });
            }
        }
        Ok(CheckResponse { inputs, failures })
    }

    async fn diff(
        &self,
        _ctx: &CallContext,
        type_token: &str,
        _id: &str,
        old_inputs: &PropertyMap,
        _old_outputs: &PropertyMap,
        news: &PropertyMap,
    ) -> ProviderResult<DiffResponse> {
        let mut diff =
            cairn_provider::diff_by_schema(self.schema.resource(type_token), old_inputs, news);
        // Two containers (networks, volumes) cannot share a name: with a name given, the old
        // one must go before its replacement can be made, as Pulumi does for explicit names.
        let named = [CONTAINER, NETWORK, VOLUME].contains(&type_token) && news.contains_key("name");
        if named && diff.requires_replacement() {
            diff.delete_before_replace = true;
        }
        Ok(diff)
    }

    async fn create(
        &self,
        ctx: &CallContext,
        type_token: &str,
        inputs: &PropertyMap,
        preview: bool,
    ) -> ProviderResult<CreateResponse> {
        if preview {
            let mut outputs = inputs.clone();
            if let Some(schema) = self.schema.resource(type_token) {
                for key in schema.outputs.keys() {
                    outputs.entry(key.clone()).or_insert(Value::Unknown);
                }
            }
            return Ok(CreateResponse {
                id: String::new(),
                outputs,
            });
        }
        let docker = self.docker().await?;
        let (id, outputs) = resources::create(docker, ctx, type_token, &to_json(inputs)).await?;
        Ok(CreateResponse {
            id,
            outputs: merge(inputs, &outputs),
        })
    }

    async fn read(
        &self,
        _ctx: &CallContext,
        type_token: &str,
        id: &str,
        inputs: &PropertyMap,
        _outputs: &PropertyMap,
    ) -> ProviderResult<Option<ReadResponse>> {
        let docker = self.docker().await?;
        Ok(resources::read(docker, type_token, id, &to_json(inputs))
            .await?
            .map(|outputs| ReadResponse {
                id: id.to_owned(),
                inputs: inputs.clone(),
                outputs: merge(inputs, &outputs),
            }))
    }

    async fn update(
        &self,
        _ctx: &CallContext,
        _type_token: &str,
        _id: &str,
        _old_inputs: &PropertyMap,
        old_outputs: &PropertyMap,
        news: &PropertyMap,
        _preview: bool,
    ) -> ProviderResult<PropertyMap> {
        // Only inputs that replace exist, except `skipPush`/`registry` on images, which change
        // nothing in the engine.
        let mut outputs = old_outputs.clone();
        outputs.extend(news.clone());
        Ok(outputs)
    }

    async fn delete(
        &self,
        _ctx: &CallContext,
        type_token: &str,
        id: &str,
        _inputs: &PropertyMap,
        _outputs: &PropertyMap,
    ) -> ProviderResult<()> {
        let docker = self.docker().await?;
        resources::delete(docker, type_token, id).await
    }

    async fn invoke(
        &self,
        _ctx: &CallContext,
        function_token: &str,
        _args: &PropertyMap,
    ) -> ProviderResult<PropertyMap> {
        Err(ProviderError::UnknownFunction(function_token.to_owned()))
    }

    async fn configure(
        &self,
        _ctx: &CallContext,
        config: &PropertyMap,
    ) -> ProviderResult<Option<Arc<dyn Provider>>> {
        match config.get("host").and_then(Value::as_str) {
            Some(host) => Ok(Some(Arc::new(DockerProvider::new(Some(host.to_owned()))))),
            None => Ok(None),
        }
    }
}

/// Outputs: the inputs, with what the engine reported on top.
fn merge(inputs: &PropertyMap, reported: &serde_json::Value) -> PropertyMap {
    let mut outputs = inputs.clone();
    if let Some(reported) = reported.as_object() {
        for (key, value) in reported {
            outputs.insert(key.clone(), from_json(value));
        }
    }
    outputs
}
