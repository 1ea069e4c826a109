//! `cairn:compute:Group` in programs: a resource whose properties are a group spec plus its
//! driver (`driver: {name: docker|fake, settings: {...}}`). `up` converges the group (creating,
//! scaling, rolling), `refresh` reads its members back, `destroy` removes them all.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use cairn_core::schema::{PropertySchema, PropertyType, ResourceSchema};
use cairn_core::{PackageSchema, PropertyMap, Value};
use cairn_provider::{
    CallContext, CheckFailure, CheckResponse, CreateResponse, DiffResponse, LogSeverity, Provider,
    ProviderError, ProviderResult, ReadResponse,
};

use crate::driver::{DriverError, InstanceDriver};
use crate::group::{self, GroupSpec};

pub const GROUP_TYPE: &str = "cairn:compute:Group";

/// Inputs that name the group or its engine: changing them means another group.
const REPLACING: [&str; 2] = ["id", "driver"];

pub struct GroupProvider {
    schema: PackageSchema,
}

impl Default for GroupProvider {
    fn default() -> Self {
        GroupProvider::new()
    }
}

impl GroupProvider {
    pub fn new() -> GroupProvider {
        let any = || PropertySchema::new(PropertyType::Any);
        let inputs: BTreeMap<String, PropertySchema> = [
            (
                "id",
                PropertySchema::new(PropertyType::String)
                    .required()
                    .replaces(),
            ),
            (
                "driver",
                any()
                    .required()
                    .replaces()
                    .describe("{name: docker|fake, settings: {...}}"),
            ),
            (
                "properties",
                any()
                    .required()
                    .describe("what each instance is (driver properties)"),
            ),
            ("init", PropertySchema::new(PropertyType::String)),
            ("size", PropertySchema::new(PropertyType::Integer)),
            (
                "logicalIds",
                PropertySchema::new(PropertyType::Array(Box::new(PropertyType::String))),
            ),
            ("health", any()),
            // Every field of `GroupSpec` is an input: a spec `group commit` accepts must pass
            // the program check too (the test `the_schema_has_every_field_of_a_spec` keeps it so).
            ("attachments", any()),
            (
                "rollingUpdate",
                any().describe("{batchSize: 1, pauseSeconds: 0}"),
            ),
        ]
        .into_iter()
        .map(|(name, property)| (name.to_owned(), property))
        .collect();
        let mut outputs = inputs.clone();
        outputs.insert("instances".to_owned(), any());
        outputs.insert(
            "fingerprint".to_owned(),
            PropertySchema::new(PropertyType::String),
        );
        GroupProvider {
            schema: PackageSchema {
                name: "cairn".to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                resources: vec![ResourceSchema {
                    token: GROUP_TYPE.to_owned(),
                    description: "A group of compute instances, converged to its spec".to_owned(),
                    inputs,
                    outputs,
                    accepts_any_input: false,
                }],
                functions: Vec::new(),
                config: BTreeMap::new(),
            },
        }
    }
}

fn to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Null | Value::Unknown => serde_json::Value::Null,
        Value::Bool(flag) => serde_json::Value::Bool(*flag),
        Value::Number(number) if number.fract() == 0.0 => serde_json::json!(*number as i64),
        Value::Number(number) => serde_json::json!(number),
        Value::String(text) => serde_json::Value::String(text.clone()),
        Value::Array(items) => serde_json::Value::Array(items.iter().map(to_json).collect()),
        Value::Object(map) => serde_json::Value::Object(
            map.iter()
                .map(|(key, value)| (key.clone(), to_json(value)))
                .collect(),
        ),
        Value::Secret(inner) => to_json(inner),
    }
}

/// The spec and driver of a group resource's inputs.
fn parse(inputs: &PropertyMap) -> Result<(GroupSpec, serde_json::Value), String> {
    let json: serde_json::Map<String, serde_json::Value> = inputs
        .iter()
        .map(|(key, value)| (key.clone(), to_json(value)))
        .collect();
    parse_spec(serde_json::Value::Object(json))
}

/// A group spec with its `driver: {name, settings}` (a resource's inputs, or a file `cairn
/// group commit` reads), checked whole: the spec's fields and rules, and a driver that exists.
/// The one check both paths share, so a spec the CLI accepts is one the program accepts.
pub fn parse_spec(mut spec: serde_json::Value) -> Result<(GroupSpec, serde_json::Value), String> {
    let driver = spec
        .as_object_mut()
        .and_then(|object| object.remove("driver"))
        .unwrap_or(serde_json::Value::Null);
    let spec: GroupSpec =
        serde_json::from_value(spec).map_err(|error| format!("not a group spec: {error}"))?;
    spec.check().map_err(|error| error.to_string())?;
    let name = driver["name"].as_str();
    if !name.is_some_and(|name| crate::DRIVERS.iter().any(|(known, _)| *known == name)) {
        return Err(format!(
            "unknown driver {}; `driver: {{name: ..., settings: {{...}}}}` names one of: {}",
            name.map_or("(none)".to_owned(), |name| format!("`{name}`")),
            crate::DRIVERS.map(|(name, _)| name).join(", ")
        ));
    }
    Ok((spec, driver))
}

/// Builds the driver the inputs name.
pub async fn driver_of(driver: &serde_json::Value) -> Result<Arc<dyn InstanceDriver>, DriverError> {
    let settings = &driver["settings"];
    match driver["name"].as_str() {
        Some("docker") => {
            let driver = crate::docker::DockerDriver::connect(settings["host"].as_str()).await?;
            Ok(Arc::new(match settings["tagsFile"].as_str() {
                Some(path) => driver.with_tags_file(path.into()),
                None => driver,
            }))
        }
        Some("fake") => Ok(Arc::new(crate::fake::FakeDriver::new(settings)?)),
        Some("process") => Ok(Arc::new(crate::process::ProcessDriver::new(settings)?)),
        other => Err(DriverError::Invalid(format!(
            "unknown driver `{}`: the drivers are `docker` (settings: host), `process` (settings: dir) and `fake` (settings: path, startupLatencyMs, failLogicalId)",
            other.unwrap_or("(none)")
        ))),
    }
}

fn failed(error: impl std::fmt::Display) -> ProviderError {
    ProviderError::Failed(error.to_string())
}

impl GroupProvider {
    /// Converges and returns the outputs: the inputs, the members and the fingerprint.
    async fn converge(
        &self,
        ctx: &CallContext,
        inputs: &PropertyMap,
    ) -> ProviderResult<PropertyMap> {
        let (spec, driver) = parse(inputs).map_err(ProviderError::Failed)?;
        let driver = driver_of(&driver).await.map_err(failed)?;
        let report = tokio::select! {
            report = group::converge(driver.clone(), &spec) => report.map_err(failed)?,
            () = ctx.cancel.cancelled() => return Err(ProviderError::Cancelled),
        };
        ctx.log(
            LogSeverity::Info,
            &format!(
                "group `{}`: {} created, {} destroyed, {} replaced",
                spec.id,
                report.created.len(),
                report.destroyed.len(),
                report.replaced.len()
            ),
        );
        self.outputs(inputs, driver.as_ref(), &spec).await
    }

    async fn outputs(
        &self,
        inputs: &PropertyMap,
        driver: &dyn InstanceDriver,
        spec: &GroupSpec,
    ) -> ProviderResult<PropertyMap> {
        let mut members: Vec<String> = driver
            .describe(&group::group_tags(spec), false)
            .await
            .map_err(failed)?
            .into_iter()
            .map(|instance| instance.id)
            .collect();
        members.sort();
        let mut outputs = inputs.clone();
        outputs.insert(
            "instances".to_owned(),
            Value::Array(members.into_iter().map(Value::String).collect()),
        );
        outputs.insert("fingerprint".to_owned(), Value::String(spec.fingerprint()));
        Ok(outputs)
    }
}

#[async_trait]
impl Provider for GroupProvider {
    fn package(&self) -> &str {
        "cairn"
    }

    fn schema(&self) -> &PackageSchema {
        &self.schema
    }

    async fn check(
        &self,
        _ctx: &CallContext,
        _type_token: &str,
        _olds: Option<&PropertyMap>,
        news: &PropertyMap,
    ) -> ProviderResult<CheckResponse> {
        let failures = if news.values().any(Value::contains_unknown) {
            Vec::new()
        } else {
            match parse(news) {
                Ok(_) => Vec::new(),
                Err(reason) => vec![CheckFailure {
                    property: None,
                    reason,
                }],
            }
        };
        Ok(CheckResponse {
            inputs: news.clone(),
            failures,
        })
    }

    async fn diff(
        &self,
        _ctx: &CallContext,
        _type_token: &str,
        _id: &str,
        old_inputs: &PropertyMap,
        old_outputs: &PropertyMap,
        news: &PropertyMap,
    ) -> ProviderResult<DiffResponse> {
        let mut diff = cairn_provider::diff_by_schema(None, old_inputs, news);
        // Members lost since the last update (seen by a refresh) are a change too: `up`
        // converges the group back to its size.
        let size = news.get("size").and_then(Value::as_f64);
        let members = old_outputs
            .get("instances")
            .and_then(Value::as_array)
            .map(Vec::len);
        if let (Some(size), Some(members)) = (size, members)
            && size as usize != members
            && !diff.changed_keys.iter().any(|key| key == "size")
        {
            diff.changed_keys.push("instances".to_owned());
        }
        diff.replace_keys = diff
            .changed_keys
            .iter()
            .filter(|key| REPLACING.contains(&key.as_str()))
            .cloned()
            .collect();
        // A group replaced under the same id (its driver changed) cannot exist twice: its
        // members are found by the `cairn.group=<id>` tag, so the new group would adopt the
        // old members and the old one's delete would then remove the new group's members.
        // The old group goes first.
        diff.delete_before_replace =
            diff.requires_replacement() && !diff.changed_keys.iter().any(|key| key == "id");
        Ok(diff)
    }

    async fn create(
        &self,
        ctx: &CallContext,
        _type_token: &str,
        inputs: &PropertyMap,
        preview: bool,
    ) -> ProviderResult<CreateResponse> {
        if preview {
            let mut outputs = inputs.clone();
            outputs.insert("instances".to_owned(), Value::Unknown);
            outputs.insert("fingerprint".to_owned(), Value::Unknown);
            return Ok(CreateResponse {
                id: String::new(),
                outputs,
            });
        }
        let outputs = self.converge(ctx, inputs).await?;
        let id = inputs
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Ok(CreateResponse { id, outputs })
    }

    async fn read(
        &self,
        _ctx: &CallContext,
        _type_token: &str,
        id: &str,
        inputs: &PropertyMap,
        _outputs: &PropertyMap,
    ) -> ProviderResult<Option<ReadResponse>> {
        let (spec, driver) = parse(inputs).map_err(ProviderError::Failed)?;
        let driver = driver_of(&driver).await.map_err(failed)?;
        let outputs = self.outputs(inputs, driver.as_ref(), &spec).await?;
        Ok(Some(ReadResponse {
            id: id.to_owned(),
            inputs: inputs.clone(),
            outputs,
        }))
    }

    async fn update(
        &self,
        ctx: &CallContext,
        _type_token: &str,
        _id: &str,
        _old_inputs: &PropertyMap,
        _old_outputs: &PropertyMap,
        news: &PropertyMap,
        preview: bool,
    ) -> ProviderResult<PropertyMap> {
        if preview {
            let mut outputs = news.clone();
            outputs.insert("instances".to_owned(), Value::Unknown);
            outputs.insert("fingerprint".to_owned(), Value::Unknown);
            return Ok(outputs);
        }
        self.converge(ctx, news).await
    }

    async fn delete(
        &self,
        _ctx: &CallContext,
        _type_token: &str,
        _id: &str,
        inputs: &PropertyMap,
        _outputs: &PropertyMap,
    ) -> ProviderResult<()> {
        let (spec, driver) = parse(inputs).map_err(ProviderError::Failed)?;
        let driver = driver_of(&driver).await.map_err(failed)?;
        group::destroy_group(driver.as_ref(), &spec)
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn invoke(
        &self,
        _ctx: &CallContext,
        function_token: &str,
        _args: &PropertyMap,
    ) -> ProviderResult<PropertyMap> {
        Err(ProviderError::UnknownFunction(function_token.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A spec `cairn group commit` accepts must pass the program check too: every field of
    /// `GroupSpec` is an input of the resource.
    #[test]
    fn the_schema_has_every_field_of_a_spec() {
        let spec: GroupSpec = serde_json::from_value(serde_json::json!({
            "id": "web",
            "properties": {"image": "web"},
            "init": "true",
            "size": 1,
            "logicalIds": [],
            "health": {"command": ["true"]},
            "attachments": [{"id": "data", "type": "volume"}],
            "rollingUpdate": {"batchSize": 1, "pauseSeconds": 0},
        }))
        .unwrap();
        let provider = GroupProvider::new();
        let inputs = &provider.schema().resources[0].inputs;
        let fields = serde_json::to_value(&spec).unwrap();
        for field in fields
            .as_object()
            .unwrap()
            .keys()
            .chain([&"driver".to_owned()])
        {
            assert!(inputs.contains_key(field), "the schema lacks `{field}`");
        }
    }
}
