//! Script runs, as Travis CI worker's backends do them (seed 001): start a fresh instance
//! through an `InstanceDriver`, upload a script, run it with its output streamed to a sink as
//! it arrives, and stop the instance, whatever happened. A run is bounded by a hard timeout, a
//! log-silence timeout and a log cap (`RunLimits`), and can be cancelled: the first cancel
//! sends the script SIGTERM and waits a grace period, the second (or the grace period's end)
//! kills it. No CLI here: the caller picks the driver, the sink and the exit code.

mod instance;
mod limits;
mod log;
mod result;
pub mod secrets;
pub mod worker;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use cairn_compute::{InstanceDriver, InstanceSpec};
use tokio::time::Instant;

pub use instance::{Cancel, Instance, RUN_TAG, SCRIPT_PATH, interpreter_of};
pub use limits::{MAX_LIMIT, RunLimits, format_duration, parse_size};
pub use result::{Reason, RunError, RunResult};
pub use secrets::{Passphrase, SecretEnv};

/// How long a start in flight may still take after a hard cancel or the deadline.
const START_SETTLE: std::time::Duration = std::time::Duration::from_secs(3);

/// How long after an interrupted start the run's tag is swept a second time.
const LATE_CREATION: std::time::Duration = std::time::Duration::from_secs(1);

/// One run: the script, the instance to run it on, its limits.
#[derive(Clone, Debug)]
pub struct RunRequest {
    /// Tags the instance (`cairn.run=<run_id>`), so leftovers can be found.
    pub run_id: String,
    pub script: Vec<u8>,
    /// The driver's instance properties (`instance_properties` makes them).
    pub properties: serde_json::Value,
    pub limits: RunLimits,
    /// A directory made for the run and removed after it (the `process` driver's instance
    /// works in it).
    pub work_dir: Option<PathBuf>,
    /// More tags for the instance (a worker's, so it finds what an earlier life left).
    pub tags: BTreeMap<String, String>,
    /// Variables the script sees and the log masks; never part of the instance's properties.
    pub secret_env: SecretEnv,
    /// Asked just before the script starts: a worker whose claim may have run out (it was
    /// frozen) must not start a script another worker may be running.
    pub fence: Option<Fence>,
}

/// Whether a run may still start its script.
#[derive(Clone)]
pub struct Fence(Arc<dyn Fn() -> bool + Send + Sync>);

impl Fence {
    pub fn new(holds: impl Fn() -> bool + Send + Sync + 'static) -> Fence {
        Fence(Arc::new(holds))
    }

    pub fn holds(&self) -> bool {
        (self.0)()
    }
}

impl std::fmt::Debug for Fence {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Fence(..)")
    }
}

/// A fresh run ID (what `cairn.run` tags carry).
pub fn new_run_id() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    id[..12].to_owned()
}

/// What an instance for a script run is, per driver: a container of `image` (which must hold
/// `/bin/sh` and `sleep`) kept alive by `sleep`; a local process group working in `work_dir`;
/// a fake instance. `env` is what the script sees.
pub fn instance_properties(
    driver: &str,
    image: Option<&str>,
    env: &BTreeMap<String, String>,
    work_dir: Option<&std::path::Path>,
) -> Result<serde_json::Value, String> {
    // An instance does nothing of its own: it waits for the script, and is removed after.
    let keep_alive = serde_json::json!(["/bin/sh", "-c", "exec sleep 2147483647"]);
    match driver {
        "docker" => {
            let image = image.ok_or_else(|| {
                "the docker driver needs an image (`--image`): a local one, nothing is pulled"
                    .to_owned()
            })?;
            Ok(serde_json::json!({ "image": image, "env": env, "command": keep_alive }))
        }
        "process" => {
            let work_dir = work_dir.ok_or_else(|| {
                "the process driver needs a working directory for the run".to_owned()
            })?;
            Ok(serde_json::json!({ "workingDir": work_dir, "env": env, "command": keep_alive }))
        }
        _ => Ok(serde_json::json!({ "env": env })),
    }
}

/// Fills in the settings a driver needs on this machine when they were not given: where the
/// `fake` driver keeps its instances and the `process` driver its records, under `run_dir`.
pub fn default_settings(
    driver: &str,
    run_dir: &std::path::Path,
    settings: &mut BTreeMap<String, String>,
) {
    let default = match driver {
        "fake" => Some(("path", run_dir.join("fake-instances.json"))),
        "process" => Some(("dir", run_dir.join("process"))),
        _ => None,
    };
    if let Some((key, path)) = default {
        settings
            .entry(key.to_owned())
            .or_insert_with(|| path.display().to_string());
    }
}

/// The working directory of a run of `driver` under `run_dir` (the `process` driver's
/// instances work in one of their own; others need none).
pub fn work_dir_for(driver: &str, run_dir: &std::path::Path, run_id: &str) -> Option<PathBuf> {
    (driver == "process").then(|| run_dir.join("work").join(run_id))
}

/// Runs `request.script` on a fresh instance of `driver`, its output going to `sink`.
/// Whatever the outcome, the instance (and anything else tagged with the run) is removed
/// before this returns; if the returned future is dropped instead, that happens in a task of
/// its own.
pub async fn run(
    driver: Arc<dyn InstanceDriver>,
    request: RunRequest,
    sink: &mut (dyn Write + Send),
    cancel: &Cancel,
) -> Result<RunResult, RunError> {
    if let Some(dir) = &request.work_dir {
        std::fs::create_dir_all(dir).map_err(|error| RunError::WorkDir {
            path: dir.clone(),
            error,
        })?;
    }
    let outcome = run_on_instance(driver.clone(), &request, sink, cancel).await;
    if let Some(dir) = &request.work_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    outcome
}

async fn run_on_instance(
    driver: Arc<dyn InstanceDriver>,
    request: &RunRequest,
    sink: &mut (dyn Write + Send),
    cancel: &Cancel,
) -> Result<RunResult, RunError> {
    let limits = &request.limits;
    let deadline = Instant::now() + limits.hard_timeout;
    let not_run = |reason| RunResult {
        run_id: request.run_id.clone(),
        completed: false,
        exit_code: None,
        reason,
        log_bytes: 0,
    };
    let timed_out = Reason::HardTimeout {
        after_ms: u64::try_from(limits.hard_timeout.as_millis()).unwrap_or(u64::MAX),
    };
    let spec = InstanceSpec {
        properties: request.properties.clone(),
        tags: request.tags.clone(),
        ..InstanceSpec::default()
    };
    // A start in flight is let finish (for `START_SETTLE` at most after a hard cancel or the
    // deadline), so the instance is known and removed by its ID. A start that does not finish
    // even then is dropped, and the sweep looks for what it may have made by the run's tag: at
    // once, and again a moment later, for a creation the engine finished after the request
    // was dropped.
    let sweep = instance::Sweep::new(driver.clone(), &request.run_id);
    let mut start = Box::pin(Instance::start(driver.clone(), spec, &request.run_id));
    let mut cancelled = false;
    let mut stopping = false;
    let mut settle_deadline = deadline;
    let started = loop {
        tokio::select! {
            started = &mut start => break Some(started),
            () = cancel.graceful.cancelled(), if !cancelled => cancelled = true,
            () = cancel.hard.cancelled(), if !stopping => {
                (cancelled, stopping) = (true, true);
                settle_deadline = Instant::now() + START_SETTLE;
            }
            () = tokio::time::sleep_until(settle_deadline) => {
                if stopping {
                    break None;
                }
                stopping = true;
                settle_deadline = Instant::now() + START_SETTLE;
            }
        }
    };
    drop(start);
    let reason_stopped = || {
        if Instant::now() >= deadline {
            timed_out.clone()
        } else {
            Reason::Cancelled
        }
    };
    let mut instance = match started {
        Some(Ok(instance)) => {
            // The instance's own sweep covers the run's tag from here on.
            sweep.disarm();
            instance
        }
        Some(Err(error)) => {
            sweep.finish().await?;
            return if stopping || cancelled {
                Ok(not_run(reason_stopped()))
            } else {
                Err(error)
            };
        }
        None => {
            let again = instance::Sweep::new(driver.clone(), &request.run_id);
            sweep.finish().await?;
            tokio::time::sleep(LATE_CREATION).await;
            again.finish().await?;
            return Ok(not_run(reason_stopped()));
        }
    };
    if cancelled || stopping {
        instance.stop().await?;
        return Ok(not_run(reason_stopped()));
    }
    let uploaded = tokio::select! {
        uploaded = instance.upload_script(&request.script) => Some(uploaded),
        () = cancel.graceful.cancelled() => None,
        () = cancel.hard.cancelled() => None,
        () = tokio::time::sleep_until(deadline) => None,
    };
    let fenced_off = request.fence.as_ref().is_some_and(|fence| !fence.holds());
    let outcome = match uploaded {
        Some(Ok(())) if fenced_off => Ok(not_run(Reason::Cancelled)),
        Some(Ok(())) => {
            instance
                .run_script(sink, &request.secret_env, limits, deadline, cancel)
                .await
        }
        Some(Err(error)) => Err(error),
        None if Instant::now() >= deadline => Ok(not_run(timed_out)),
        None => Ok(not_run(Reason::Cancelled)),
    };
    instance.stop().await?;
    outcome
}
