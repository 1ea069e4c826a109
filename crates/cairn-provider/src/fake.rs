//! The `fake` provider: a documented test and benchmark double, like the seeds' fake backends.
//!
//! Type `fake:index:Resource` (short form `fake:Resource`) accepts any inputs and echoes them as
//! outputs. Control inputs: `latencyMs` (every operation sleeps that long), `failOn` (`create`,
//! `update` or `delete`: that operation fails), `replaceOn` (names of inputs whose change forces
//! replacement). With a ledger path (`CAIRN_FAKE_LEDGER`), every real side effect is appended to
//! that file as one JSON line and fsynced before the operation returns: the ground truth crash
//! tests compare state against.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use cairn_core::schema::FunctionSchema;
use cairn_core::{PackageSchema, PropertyMap, PropertySchema, PropertyType, ResourceSchema, Value};

use crate::{
    CallContext, CheckFailure, CheckResponse, CreateResponse, DiffResponse, Provider,
    ProviderError, ProviderResult, ReadResponse,
};

pub const FAKE_RESOURCE: &str = "fake:index:Resource";
pub const FAKE_ECHO: &str = "fake:index:echo";

/// The fake provider. See the module docs.
pub struct FakeProvider {
    schema: PackageSchema,
    ledger: Option<Mutex<fs_err::File>>,
}

impl FakeProvider {
    /// A fake provider; with `ledger`, side effects are appended to that file.
    pub fn new(ledger: Option<PathBuf>) -> std::io::Result<FakeProvider> {
        let ledger = match ledger {
            Some(path) => Some(Mutex::new(
                fs_err::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            )),
            None => None,
        };
        Ok(FakeProvider {
            schema: fake_schema(),
            ledger,
        })
    }

    fn record(&self, operation: &str, ctx: &CallContext, id: &str) -> ProviderResult<()> {
        let Some(ledger) = &self.ledger else {
            return Ok(());
        };
        let line = serde_json::json!({"op": operation, "urn": ctx.urn.as_str(), "id": id});
        let mut file = ledger
            .lock()
            .map_err(|_| ProviderError::Failed("the fake ledger lock is poisoned".to_owned()))?;
        let write = writeln!(file, "{line}").and_then(|()| file.sync_data());
        write.map_err(|error| ProviderError::Failed(format!("writing the fake ledger: {error}")))
    }
}

fn fake_schema() -> PackageSchema {
    let mut inputs = std::collections::BTreeMap::new();
    inputs.insert(
        "latencyMs".to_owned(),
        PropertySchema::new(PropertyType::Number)
            .describe("every operation on this resource sleeps this many milliseconds"),
    );
    inputs.insert(
        "failOn".to_owned(),
        PropertySchema::new(PropertyType::String)
            .describe("`create`, `update` or `delete`: that operation fails"),
    );
    inputs.insert(
        "replaceOn".to_owned(),
        PropertySchema::new(PropertyType::Array(Box::new(PropertyType::String)))
            .describe("names of inputs whose change forces replacement"),
    );
    PackageSchema {
        name: "fake".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        resources: vec![ResourceSchema {
            token: FAKE_RESOURCE.to_owned(),
            description: "A test double that echoes its inputs as outputs".to_owned(),
            outputs: inputs.clone(),
            inputs,
            accepts_any_input: true,
        }],
        functions: vec![FunctionSchema {
            token: FAKE_ECHO.to_owned(),
            description: "Returns its arguments".to_owned(),
            inputs: Default::default(),
            outputs: Default::default(),
        }],
    }
}

async fn simulate_latency(ctx: &CallContext, inputs: &PropertyMap) -> ProviderResult<()> {
    let latency_ms = inputs
        .get("latencyMs")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    if latency_ms > 0.0 {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs_f64(latency_ms / 1000.0)) => {}
            () = ctx.cancel.cancelled() => return Err(ProviderError::Cancelled),
        }
    }
    Ok(())
}

fn fail_if_asked(inputs: &PropertyMap, operation: &str) -> ProviderResult<()> {
    if inputs.get("failOn").and_then(Value::as_str) == Some(operation) {
        return Err(ProviderError::Failed(format!(
            "the fake resource was asked to fail on {operation} (`failOn: {operation}`)"
        )));
    }
    Ok(())
}

#[async_trait]
impl Provider for FakeProvider {
    fn package(&self) -> &str {
        "fake"
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
        let mut failures = Vec::new();
        if let Some(fail_on) = news.get("failOn").and_then(Value::as_str)
            && !matches!(fail_on, "create" | "update" | "delete")
        {
            failures.push(CheckFailure {
                property: Some("failOn".to_owned()),
                reason: format!("`failOn` must be `create`, `update` or `delete`, not `{fail_on}`"),
            });
        }
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
        _old_outputs: &PropertyMap,
        news: &PropertyMap,
    ) -> ProviderResult<DiffResponse> {
        let mut diff = crate::diff_by_schema(None, old_inputs, news);
        let replace_on: Vec<String> = news
            .get("replaceOn")
            .and_then(Value::as_array)
            .map(|names| {
                names
                    .iter()
                    .filter_map(|name| name.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        diff.replace_keys = diff
            .changed_keys
            .iter()
            .filter(|key| replace_on.contains(key))
            .cloned()
            .collect();
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
            return Ok(CreateResponse {
                id: String::new(),
                outputs: inputs.clone(),
            });
        }
        simulate_latency(ctx, inputs).await?;
        fail_if_asked(inputs, "create")?;
        let id = uuid::Uuid::new_v4().to_string();
        self.record("create", ctx, &id)?;
        Ok(CreateResponse {
            id,
            outputs: inputs.clone(),
        })
    }

    async fn read(
        &self,
        _ctx: &CallContext,
        _type_token: &str,
        id: &str,
        inputs: &PropertyMap,
        outputs: &PropertyMap,
    ) -> ProviderResult<Option<ReadResponse>> {
        Ok(Some(ReadResponse {
            id: id.to_owned(),
            inputs: inputs.clone(),
            outputs: outputs.clone(),
        }))
    }

    async fn update(
        &self,
        ctx: &CallContext,
        _type_token: &str,
        id: &str,
        _old_inputs: &PropertyMap,
        _old_outputs: &PropertyMap,
        news: &PropertyMap,
        preview: bool,
    ) -> ProviderResult<PropertyMap> {
        if preview {
            return Ok(news.clone());
        }
        simulate_latency(ctx, news).await?;
        fail_if_asked(news, "update")?;
        self.record("update", ctx, id)?;
        Ok(news.clone())
    }

    async fn delete(
        &self,
        ctx: &CallContext,
        _type_token: &str,
        id: &str,
        inputs: &PropertyMap,
        _outputs: &PropertyMap,
    ) -> ProviderResult<()> {
        simulate_latency(ctx, inputs).await?;
        fail_if_asked(inputs, "delete")?;
        self.record("delete", ctx, id)
    }

    async fn invoke(
        &self,
        _ctx: &CallContext,
        function_token: &str,
        args: &PropertyMap,
    ) -> ProviderResult<PropertyMap> {
        match function_token {
            FAKE_ECHO => Ok(args.clone()),
            other => Err(ProviderError::UnknownFunction(other.to_owned())),
        }
    }
}
