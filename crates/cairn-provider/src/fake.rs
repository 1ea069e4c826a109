//! The `fake` provider: a documented test and benchmark double, like the seeds' fake backends.
//!
//! Type `fake:index:Resource` (short form `fake:Resource`) accepts any inputs and echoes them as
//! outputs. Control inputs: `latencyMs` (every operation sleeps that long), `failOn` (`create`,
//! `update` or `delete`: that operation fails), `replaceOn` (names of inputs whose change forces
//! replacement). With a ledger path (`CAIRN_FAKE_LEDGER`), every real side effect is appended to
//! that file as one JSON line and fsynced before the operation returns: the ground truth crash
//! tests compare state against. It is also the fake's "live world": with a ledger, `read`
//! reports a resource as existing exactly when the ledger's last word on its ID is a create or
//! update, so deleting it outside Cairn is one appended `{"op":"delete",...}` line.
//!
//! Provider configuration (stack config `fake:<key>` or a `pulumi:providers:fake` resource):
//! `region` (a change replaces the provider and its resources), `label` (updated in place), and
//! `failConfigure: true` (configuring fails). A configured instance adds the configuration to
//! every resource's outputs as `providerConfig`, so tests can see which instance made what.

use std::collections::HashMap;
use std::io::{BufRead, Write};
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
    /// Shared by every configured instance: one live world.
    ledger: Option<std::sync::Arc<Mutex<Ledger>>>,
    config: PropertyMap,
}

/// The ledger file, and which IDs it says exist.
struct Ledger {
    path: PathBuf,
    file: fs_err::File,
    /// ID → whether its last recorded operation left it existing.
    live: HashMap<String, bool>,
    /// URN → the ID of its latest create: how a create that finished just before a crash
    /// (so its ID never reached the state) is found again.
    latest_by_urn: HashMap<String, String>,
    /// Bytes of the file already folded into `live`.
    read_up_to: u64,
}

impl Ledger {
    /// Folds lines appended since the last look (by this process or anyone else) into `live`.
    fn catch_up(&mut self) -> std::io::Result<()> {
        let mut reader = std::io::BufReader::new(fs_err::File::open(&self.path)?);
        std::io::Seek::seek(&mut reader, std::io::SeekFrom::Start(self.read_up_to))?;
        let mut line = String::new();
        loop {
            line.clear();
            let n_bytes = reader.read_line(&mut line)?;
            // A line without its newline is still being written; read it next time.
            if n_bytes == 0 || !line.ends_with('\n') {
                break;
            }
            self.read_up_to += n_bytes as u64;
            let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if let (Some(operation), Some(id)) = (entry["op"].as_str(), entry["id"].as_str()) {
                self.live.insert(id.to_owned(), operation != "delete");
                if operation == "create"
                    && let Some(urn) = entry["urn"].as_str()
                {
                    self.latest_by_urn.insert(urn.to_owned(), id.to_owned());
                }
            }
        }
        Ok(())
    }
}

impl FakeProvider {
    /// A fake provider; with `ledger`, side effects are appended to that file.
    pub fn new(ledger: Option<PathBuf>) -> std::io::Result<FakeProvider> {
        let ledger = match ledger {
            Some(path) => {
                let mut file = fs_err::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)?;
                // End a line torn by a crash, so the next entry starts on a line of its own.
                let existing = fs_err::read(&path)?;
                if existing.last().is_some_and(|&byte| byte != b'\n') {
                    file.write_all(b"\n")?;
                }
                let mut ledger = Ledger {
                    path,
                    file,
                    live: HashMap::new(),
                    latest_by_urn: HashMap::new(),
                    read_up_to: 0,
                };
                ledger.catch_up()?;
                Some(std::sync::Arc::new(Mutex::new(ledger)))
            }
            None => None,
        };
        Ok(FakeProvider {
            schema: fake_schema(),
            ledger,
            config: PropertyMap::new(),
        })
    }

    fn record(&self, operation: &str, ctx: &CallContext, id: &str) -> ProviderResult<()> {
        let Some(ledger) = &self.ledger else {
            return Ok(());
        };
        let line = serde_json::json!({"op": operation, "urn": ctx.urn.as_str(), "id": id});
        let mut ledger = ledger
            .lock()
            .map_err(|_| ProviderError::Failed("the fake ledger lock is poisoned".to_owned()))?;
        // One write call per line: a process killed mid-operation leaves a whole line or none.
        let line = format!("{line}\n");
        let write = ledger
            .file
            .write_all(line.as_bytes())
            .and_then(|()| ledger.file.sync_data());
        write.map_err(|error| ProviderError::Failed(format!("writing the fake ledger: {error}")))
    }

    /// Looks a resource up in the ledger: by `id`, or (when `id` is empty, for a create whose
    /// outcome was lost) the live resource most recently created for `urn`. `Ok(None)` without
    /// a ledger; `Ok(Some(None))` when the ledger says it does not exist.
    fn find_live(&self, id: &str, urn: &str) -> ProviderResult<Option<Option<String>>> {
        let Some(ledger) = &self.ledger else {
            return Ok(None);
        };
        let mut ledger = ledger
            .lock()
            .map_err(|_| ProviderError::Failed("the fake ledger lock is poisoned".to_owned()))?;
        ledger
            .catch_up()
            .map_err(|error| ProviderError::Failed(format!("reading the fake ledger: {error}")))?;
        let id = if id.is_empty() {
            match ledger.latest_by_urn.get(urn) {
                Some(id) => id.clone(),
                None => return Ok(Some(None)),
            }
        } else {
            id.to_owned()
        };
        let is_live = ledger.live.get(&id).copied().unwrap_or(false);
        Ok(Some(is_live.then_some(id)))
    }
}

/// The outputs of a resource with `inputs`: the inputs, plus the provider's configuration.
impl FakeProvider {
    fn outputs_of(&self, inputs: &PropertyMap) -> PropertyMap {
        let mut outputs = inputs.clone();
        if !self.config.is_empty() {
            outputs.insert(
                "providerConfig".to_owned(),
                Value::Object(self.config.clone()),
            );
        }
        outputs
    }
}

fn fake_config_schema() -> std::collections::BTreeMap<String, PropertySchema> {
    std::collections::BTreeMap::from([
        (
            "region".to_owned(),
            PropertySchema::new(PropertyType::String)
                .replaces()
                .describe("a change replaces the provider and every resource it manages"),
        ),
        (
            "label".to_owned(),
            PropertySchema::new(PropertyType::String).describe("updated in place"),
        ),
        (
            "failConfigure".to_owned(),
            PropertySchema::new(PropertyType::Boolean).describe("when true, configuring fails"),
        ),
    ])
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
        config: fake_config_schema(),
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
                outputs: self.outputs_of(inputs),
            });
        }
        simulate_latency(ctx, inputs).await?;
        fail_if_asked(inputs, "create")?;
        let id = uuid::Uuid::new_v4().to_string();
        self.record("create", ctx, &id)?;
        Ok(CreateResponse {
            id,
            outputs: self.outputs_of(inputs),
        })
    }

    async fn read(
        &self,
        ctx: &CallContext,
        _type_token: &str,
        id: &str,
        inputs: &PropertyMap,
        outputs: &PropertyMap,
    ) -> ProviderResult<Option<ReadResponse>> {
        let id = match self.find_live(id, ctx.urn.as_str())? {
            Some(Some(live_id)) => live_id,
            Some(None) => return Ok(None),
            None => id.to_owned(),
        };
        // The fake's outputs are its inputs; a resource found again after a lost create has
        // no recorded outputs yet.
        let outputs = if outputs.is_empty() { inputs } else { outputs };
        Ok(Some(ReadResponse {
            id,
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
            return Ok(self.outputs_of(news));
        }
        simulate_latency(ctx, news).await?;
        fail_if_asked(news, "update")?;
        self.record("update", ctx, id)?;
        Ok(self.outputs_of(news))
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
            FAKE_ECHO => Ok(self.outputs_of(args)),
            other => Err(ProviderError::UnknownFunction(other.to_owned())),
        }
    }

    async fn configure(
        &self,
        _ctx: &CallContext,
        config: &PropertyMap,
    ) -> ProviderResult<Option<std::sync::Arc<dyn Provider>>> {
        let fail = config.get("failConfigure");
        // Stack config arrives as strings (`cairn config set fake:failConfigure true`).
        if fail.and_then(Value::as_bool) == Some(true)
            || fail.and_then(Value::as_str) == Some("true")
        {
            return Err(ProviderError::Failed(
                "the fake provider was asked to fail configuring (`failConfigure: true`)"
                    .to_owned(),
            ));
        }
        if config.is_empty() {
            return Ok(None);
        }
        Ok(Some(std::sync::Arc::new(FakeProvider {
            schema: self.schema.clone(),
            ledger: self.ledger.clone(),
            config: config.clone(),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::Urn;

    fn ctx() -> CallContext {
        CallContext::new(
            Urn::parse("urn:pulumi:dev::p::fake:index:Resource::a").unwrap(),
            Default::default(),
            std::env::temp_dir(),
        )
    }

    fn inputs(entries: &[(&str, Value)]) -> PropertyMap {
        entries
            .iter()
            .map(|(key, value)| ((*key).to_owned(), value.clone()))
            .collect()
    }

    #[tokio::test]
    async fn echoes_inputs_and_fails_on_request() {
        let fake = FakeProvider::new(None).unwrap();
        let news = inputs(&[("x", Value::from("y"))]);
        let created = fake
            .create(&ctx(), FAKE_RESOURCE, &news, false)
            .await
            .unwrap();
        assert_eq!(created.outputs, news);
        assert!(!created.id.is_empty());
        let failing = inputs(&[("failOn", Value::from("create"))]);
        let error = fake
            .create(&ctx(), FAKE_RESOURCE, &failing, false)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("failOn: create"), "{error}");
        // A preview never fails and never has side effects.
        assert!(
            fake.create(&ctx(), FAKE_RESOURCE, &failing, true)
                .await
                .is_ok()
        );
        let bad = inputs(&[("failOn", Value::from("sometimes"))]);
        let checked = fake.check(&ctx(), FAKE_RESOURCE, None, &bad).await.unwrap();
        assert_eq!(checked.failures[0].property.as_deref(), Some("failOn"));
    }

    #[tokio::test]
    async fn replace_on_names_inputs_that_replace() {
        let fake = FakeProvider::new(None).unwrap();
        let replace_on = Value::Array(vec![Value::from("zone")]);
        let olds = inputs(&[
            ("zone", Value::from("a")),
            ("size", Value::Number(1.0)),
            ("replaceOn", replace_on.clone()),
        ]);
        let news = inputs(&[
            ("zone", Value::from("b")),
            ("size", Value::Number(2.0)),
            ("replaceOn", replace_on),
        ]);
        let diff = fake
            .diff(&ctx(), FAKE_RESOURCE, "id", &olds, &olds, &news)
            .await
            .unwrap();
        assert_eq!(diff.changed_keys, vec!["size", "zone"]);
        assert_eq!(diff.replace_keys, vec!["zone"]);
    }

    #[tokio::test]
    async fn the_ledger_records_side_effects_and_decides_what_exists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.jsonl");
        let fake = FakeProvider::new(Some(path.clone())).unwrap();
        let news = inputs(&[("x", Value::from("y"))]);
        let created = fake
            .create(&ctx(), FAKE_RESOURCE, &news, false)
            .await
            .unwrap();
        fake.update(
            &ctx(),
            FAKE_RESOURCE,
            &created.id,
            &news,
            &news,
            &news,
            false,
        )
        .await
        .unwrap();
        fake.create(&ctx(), FAKE_RESOURCE, &news, true)
            .await
            .unwrap();
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "a preview is not a side effect");
        assert_eq!(lines[0]["op"], "create");
        assert_eq!(lines[1]["op"], "update");
        assert_eq!(lines[0]["id"], created.id.as_str());
        assert!(
            fake.read(&ctx(), FAKE_RESOURCE, &created.id, &news, &news)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            fake.read(&ctx(), FAKE_RESOURCE, "never-made", &news, &news)
                .await
                .unwrap()
                .is_none()
        );
        // A create whose ID was lost is found again by URN.
        let found = fake
            .read(&ctx(), FAKE_RESOURCE, "", &news, &PropertyMap::new())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.id, created.id);
        assert_eq!(found.outputs, news);

        // Someone deletes it behind Cairn's back: the next read sees it gone.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        writeln!(
            file,
            "{}",
            serde_json::json!({"op": "delete", "urn": "x", "id": created.id})
        )
        .unwrap();
        assert!(
            fake.read(&ctx(), FAKE_RESOURCE, &created.id, &news, &news)
                .await
                .unwrap()
                .is_none()
        );
    }
}
