//! The `fake` driver: a documented test double, like the seeds' fake backends. Instances are
//! records in a JSON file (so they survive across processes); nothing runs. Settings:
//! `path` (the file), `startupLatencyMs` (every provision sleeps that long), `failLogicalId`
//! (provisioning that logical ID fails), `failEvery` (every Nth provision by this driver
//! value fails: 3 fails the 3rd, 6th, ...; to test partial failures). `exec` of `["false"]` exits 1, anything else exits 0
//! and echoes the command; an instance tagged `unhealthy=true` fails every exec.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;

use crate::driver::{
    DestroyReason, DriverError, DriverResult, InstanceDescription, InstanceDriver, InstanceSpec,
    OutputChunk, Stream,
};

pub struct FakeDriver {
    path: PathBuf,
    startup_latency: Duration,
    fail_logical_id: Option<String>,
    fail_every: Option<u64>,
    /// Provisions asked of this driver value, for `failEvery`.
    provisions: std::sync::atomic::AtomicU64,
    /// One writer at a time within this process; the file is rewritten whole.
    lock: tokio::sync::Mutex<()>,
}

impl FakeDriver {
    pub fn new(settings: &serde_json::Value) -> DriverResult<FakeDriver> {
        let path = settings["path"]
            .as_str()
            .map(PathBuf::from)
            .ok_or_else(|| {
                DriverError::Invalid("the fake driver needs a `path` setting".to_owned())
            })?;
        Ok(FakeDriver {
            path,
            startup_latency: Duration::from_millis(
                settings["startupLatencyMs"].as_u64().unwrap_or(0),
            ),
            fail_logical_id: settings["failLogicalId"].as_str().map(str::to_owned),
            fail_every: settings["failEvery"].as_u64().filter(|every| *every > 0),
            provisions: std::sync::atomic::AtomicU64::new(0),
            lock: tokio::sync::Mutex::new(()),
        })
    }

    fn load(&self) -> DriverResult<BTreeMap<String, InstanceDescription>> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|error| DriverError::Failed(format!("the fake driver's file: {error}"))),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(error) => Err(DriverError::Failed(error.to_string())),
        }
    }

    fn save(&self, instances: &BTreeMap<String, InstanceDescription>) -> DriverResult<()> {
        let text = serde_json::to_string_pretty(instances)
            .map_err(|error| DriverError::Failed(error.to_string()))?;
        let temporary = self.path.with_extension("tmp");
        std::fs::write(&temporary, text)
            .and_then(|()| std::fs::rename(&temporary, &self.path))
            .map_err(|error| DriverError::Failed(error.to_string()))
    }
}

#[async_trait]
impl InstanceDriver for FakeDriver {
    fn name(&self) -> &str {
        "fake"
    }

    fn help(&self) -> &str {
        crate::help_of("fake")
    }

    async fn validate(&self, properties: &serde_json::Value) -> DriverResult<()> {
        if properties.is_object() || properties.is_null() {
            Ok(())
        } else {
            Err(DriverError::Invalid(
                "properties must be an object".to_owned(),
            ))
        }
    }

    async fn provision(&self, spec: InstanceSpec) -> DriverResult<String> {
        let count = self
            .provisions
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        tokio::time::sleep(self.startup_latency).await;
        if let Some(every) = self.fail_every
            && count % every == 0
        {
            return Err(DriverError::Failed(format!(
                "the fake driver fails one provision in {every} (`failEvery`); this was provision {count}"
            )));
        }
        if spec.logical_id.is_some() && spec.logical_id == self.fail_logical_id {
            return Err(DriverError::Failed(format!(
                "the fake driver was asked to fail provisioning `{}`",
                spec.logical_id.unwrap_or_default()
            )));
        }
        let _guard = self.lock.lock().await;
        let mut instances = self.load()?;
        let id = format!("fake-{}", uuid::Uuid::new_v4().simple());
        instances.insert(
            id.clone(),
            InstanceDescription {
                id: id.clone(),
                logical_id: spec.logical_id,
                tags: spec.tags,
                running: true,
                properties: Some(spec.properties),
            },
        );
        self.save(&instances)?;
        Ok(id)
    }

    async fn label(&self, id: &str, tags: &BTreeMap<String, String>) -> DriverResult<()> {
        let _guard = self.lock.lock().await;
        let mut instances = self.load()?;
        let instance = instances
            .get_mut(id)
            .ok_or_else(|| DriverError::NotFound(id.to_owned()))?;
        instance.tags.extend(tags.clone());
        self.save(&instances)
    }

    async fn destroy(&self, id: &str, _reason: DestroyReason) -> DriverResult<()> {
        let _guard = self.lock.lock().await;
        let mut instances = self.load()?;
        instances.remove(id);
        self.save(&instances)
    }

    async fn describe(
        &self,
        tags: &BTreeMap<String, String>,
        with_properties: bool,
    ) -> DriverResult<Vec<InstanceDescription>> {
        let _guard = self.lock.lock().await;
        Ok(self
            .load()?
            .into_values()
            .filter(|instance| {
                tags.iter()
                    .all(|(key, value)| instance.tags.get(key) == Some(value))
            })
            .map(|mut instance| {
                if !with_properties {
                    instance.properties = None;
                }
                instance
            })
            .collect())
    }

    async fn exec(
        &self,
        id: &str,
        command: &[String],
        output: tokio::sync::mpsc::UnboundedSender<OutputChunk>,
    ) -> DriverResult<i64> {
        let instance = self
            .load()?
            .remove(id)
            .ok_or_else(|| DriverError::NotFound(id.to_owned()))?;
        if instance.tags.get("unhealthy").map(String::as_str) == Some("true")
            || command.first().map(String::as_str) == Some("false")
        {
            return Ok(1);
        }
        let _ = output.send(OutputChunk {
            stream: Stream::Stdout,
            bytes: format!("{}\n", command.join(" ")).into_bytes(),
        });
        Ok(0)
    }
}
