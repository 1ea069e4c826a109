//! The `fake` driver: a documented test double, like the seeds' fake backends. Instances are
//! records in a JSON file (so they survive across processes); nothing runs. Settings:
//! `path` (the file), `startupLatencyMs` (every provision sleeps that long), `failLogicalId`
//! (provisioning that logical ID fails), `failEvery` (every Nth provision by this driver
//! value fails: 3 fails the 3rd, 6th, ...; to test partial failures). `exec` of `["false"]` exits 1, anything else exits 0
//! and echoes the command; an instance tagged `unhealthy=true` fails every exec.
//!
//! Script runs, with the settings of Travis's fake backend: a command whose last word is a
//! file copied into the instance (`copy_in`) is a script run; it sleeps `runSleep`, writes
//! `logOutput` (`\n` in it is a new line) and exits with `exitCode` (default 0). A command
//! containing `kill -TERM` sent to the instance meanwhile ends that run at once with 143, as a
//! shell killed by SIGTERM does. `startupDuration` (a Go duration) is how long a provision
//! takes; `errorOn` (`start`, `upload`, `run`, comma-separated) makes that step fail.

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
    script: FakeScript,
    /// Files copied into each instance, by instance ID: what makes an exec a script run.
    uploads: std::sync::Mutex<BTreeMap<String, Vec<String>>>,
    /// Per instance, what a `kill -TERM` exec wakes: the script run in flight, if any.
    terms: std::sync::Mutex<BTreeMap<String, std::sync::Arc<tokio::sync::Notify>>>,
    fail_logical_id: Option<String>,
    fail_every: Option<u64>,
    /// Provisions asked of this driver value, for `failEvery`.
    provisions: std::sync::atomic::AtomicU64,
    /// One writer at a time within this process; the file is rewritten whole.
    lock: tokio::sync::Mutex<()>,
}

/// Travis's fake settings: what a script run does, and which steps fail on purpose.
#[derive(Default)]
struct FakeScript {
    log_output: String,
    run_sleep: Duration,
    exit_code: i64,
    error_on_start: bool,
    error_on_upload: bool,
    error_on_run: bool,
}

/// A Go duration setting (`1s`), or a number of seconds.
fn duration_setting(settings: &serde_json::Value, name: &str) -> DriverResult<Duration> {
    match &settings[name] {
        serde_json::Value::Null => Ok(Duration::ZERO),
        serde_json::Value::String(text) => cairn_core::parse_go_duration(text)
            .map_err(|error| DriverError::Invalid(format!("the fake driver's `{name}`: {error}"))),
        serde_json::Value::Number(number) => number
            .as_f64()
            .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| {
                DriverError::Invalid(format!("the fake driver's `{name}` must not be negative"))
            }),
        other => Err(DriverError::Invalid(format!(
            "the fake driver's `{name}` must be a duration, not `{other}`"
        ))),
    }
}

impl FakeScript {
    fn new(settings: &serde_json::Value) -> DriverResult<FakeScript> {
        let mut script = FakeScript {
            log_output: match &settings["logOutput"] {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(text) => text.replace("\\n", "\n"),
                other => other.to_string(),
            },
            run_sleep: duration_setting(settings, "runSleep")?,
            exit_code: match &settings["exitCode"] {
                serde_json::Value::Null => 0,
                value => value.as_i64().ok_or_else(|| {
                    DriverError::Invalid(format!(
                        "the fake driver's `exitCode` must be a whole number, not `{value}`"
                    ))
                })?,
            },
            ..FakeScript::default()
        };
        let error_on = settings["errorOn"].as_str().unwrap_or_default();
        for step in error_on
            .split(',')
            .map(str::trim)
            .filter(|step| !step.is_empty())
        {
            match step {
                "start" => script.error_on_start = true,
                "upload" => script.error_on_upload = true,
                "run" => script.error_on_run = true,
                other => {
                    return Err(DriverError::Invalid(format!(
                        "the fake driver's `errorOn` takes start, upload and run, not `{other}`"
                    )));
                }
            }
        }
        Ok(script)
    }
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
            ) + duration_setting(settings, "startupDuration")?,
            script: FakeScript::new(settings)?,
            uploads: std::sync::Mutex::new(BTreeMap::new()),
            terms: std::sync::Mutex::new(BTreeMap::new()),
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
        let temporary = self
            .path
            .with_extension(format!("{}.tmp", uuid::Uuid::new_v4().simple()));
        std::fs::write(&temporary, text)
            .and_then(|()| std::fs::rename(&temporary, &self.path))
            .map_err(|error| DriverError::Failed(error.to_string()))
    }

    /// Reads, changes and writes the instances file under an exclusive `flock` of
    /// `<path>.lock`: other drivers on the same file (another job's, another process's) wait,
    /// so no change is lost.
    fn update<T>(
        &self,
        change: impl FnOnce(&mut BTreeMap<String, InstanceDescription>) -> DriverResult<T>,
    ) -> DriverResult<T> {
        let lock_path = self.path.with_extension("lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .and_then(|file| file.lock().map(|()| file))
            .map_err(|error| {
                DriverError::Failed(format!("locking {}: {error}", lock_path.display()))
            })?;
        let mut instances = self.load()?;
        let changed = change(&mut instances)?;
        self.save(&instances)?;
        drop(lock);
        Ok(changed)
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
        if self.script.error_on_start {
            return Err(DriverError::Failed(
                "the fake driver was asked to fail starting instances (`errorOn: start`)"
                    .to_owned(),
            ));
        }
        if let Some(every) = self.fail_every
            && count.is_multiple_of(every)
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
        let id = format!("fake-{}", uuid::Uuid::new_v4().simple());
        self.update(|instances| {
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
            Ok(())
        })?;
        Ok(id)
    }

    async fn label(&self, id: &str, tags: &BTreeMap<String, String>) -> DriverResult<()> {
        let _guard = self.lock.lock().await;
        self.update(|instances| {
            let instance = instances
                .get_mut(id)
                .ok_or_else(|| DriverError::NotFound(id.to_owned()))?;
            instance.tags.extend(tags.clone());
            Ok(())
        })
    }

    async fn destroy(&self, id: &str, _reason: DestroyReason) -> DriverResult<()> {
        let _guard = self.lock.lock().await;
        self.update(|instances| {
            instances.remove(id);
            Ok(())
        })?;
        if let Ok(mut uploads) = self.uploads.lock() {
            uploads.remove(id);
        }
        // A script run in flight ends, as it would with its instance gone.
        if let Some(term) = self
            .terms
            .lock()
            .ok()
            .and_then(|mut terms| terms.remove(id))
        {
            term.notify_one();
        }
        Ok(())
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

    async fn copy_in(&self, id: &str, path: &str, _bytes: Vec<u8>) -> DriverResult<()> {
        if self.script.error_on_upload {
            return Err(DriverError::Failed(
                "the fake driver was asked to fail uploads (`errorOn: upload`)".to_owned(),
            ));
        }
        if !self.load()?.contains_key(id) {
            return Err(DriverError::NotFound(id.to_owned()));
        }
        self.uploads
            .lock()
            .map_err(|_| DriverError::Failed("the fake driver's uploads are poisoned".to_owned()))?
            .entry(id.to_owned())
            .or_default()
            .push(path.to_owned());
        Ok(())
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
        let is_script_run = self.uploads.lock().is_ok_and(|uploads| {
            command
                .last()
                .is_some_and(|last| uploads.get(id).is_some_and(|paths| paths.contains(last)))
        });
        if is_script_run {
            return self.run_script(id, output).await;
        }
        if command.iter().any(|word| word.contains("kill -TERM")) {
            if let Some(term) = self
                .terms
                .lock()
                .ok()
                .and_then(|terms| terms.get(id).cloned())
            {
                term.notify_one();
            }
            return Ok(0);
        }
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

    /// A fake instance runs no command, so there is nothing to read its standard input: it is
    /// dropped, and the command is answered as `exec` answers it.
    async fn exec_with_stdin(
        &self,
        id: &str,
        command: &[String],
        _stdin: Option<Vec<u8>>,
        output: tokio::sync::mpsc::UnboundedSender<OutputChunk>,
    ) -> DriverResult<i64> {
        self.exec(id, command, output).await
    }
}

impl FakeDriver {
    /// A script run: sleeps `runSleep` (ended early by a `kill -TERM` exec or the instance's
    /// destruction, with 143), writes `logOutput`, exits with `exitCode`.
    async fn run_script(
        &self,
        id: &str,
        output: tokio::sync::mpsc::UnboundedSender<OutputChunk>,
    ) -> DriverResult<i64> {
        if self.script.error_on_run {
            return Err(DriverError::Failed(
                "the fake driver was asked to fail script runs (`errorOn: run`)".to_owned(),
            ));
        }
        let term = std::sync::Arc::new(tokio::sync::Notify::new());
        if let Ok(mut terms) = self.terms.lock() {
            terms.insert(id.to_owned(), term.clone());
        }
        let terminated = tokio::select! {
            () = tokio::time::sleep(self.script.run_sleep) => false,
            () = term.notified() => true,
        };
        if let Ok(mut terms) = self.terms.lock() {
            terms.remove(id);
        }
        if terminated {
            return Ok(143);
        }
        if !self.script.log_output.is_empty() {
            let _ = output.send(OutputChunk {
                stream: Stream::Stdout,
                bytes: self.script.log_output.clone().into_bytes(),
            });
        }
        Ok(self.script.exit_code)
    }
}
