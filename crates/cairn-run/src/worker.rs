//! Workers (`cairn worker`): take jobs from a `JobQueue` and run each as `cairn run` does, on a
//! fresh instance, while keeping the queue informed:
//!
//! - the claim's lease is renewed every `heartbeat`; a heartbeat that says the job was
//!   cancelled sends the script SIGTERM (the grace period, then the kill, are the run's); one
//!   refused as stale (the queue gave the job to someone else) kills the run at once, and
//!   nothing more is written for it;
//! - the log goes to the queue in chunks every `LOG_FLUSH`, so `job logs --follow` sees it
//!   within half a second and a crash loses at most that much;
//! - an infrastructure failure (the driver, the instance's start, the upload) requeues the job
//!   as one of its retries; it is never the script's failure;
//! - every `rescue_every`, the worker rescues jobs of workers that stopped (lease run out)
//!   and ends those run past their timeout;
//! - draining (SIGTERM to the worker) stops claiming and lets running jobs finish for up to
//!   `drain_timeout`; the ones still running then are stopped and given back to the queue
//!   without using a retry.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_compute::{DriverRegistry, InstanceDescription};
use cairn_state::jobs::{
    Attempt, Job, JobError, JobId, JobQueue, JobState, Outcome, Rescued, TIMEOUT_GRACE,
};
use tokio_util::sync::CancellationToken;

use crate::{Cancel, Fence, Passphrase, Reason, RunLimits, RunRequest, RunResult, SecretEnv};

/// The tag naming the worker on every instance it starts: a worker restarted under the same
/// name removes what its earlier life left running.
pub const WORKER_TAG: &str = "cairn.worker";

/// The tag naming the job on every instance of its runs: a later attempt removes what an
/// earlier one left running (its worker killed or frozen), so two never run at once.
pub const JOB_TAG: &str = "cairn.job";

/// The tag carrying the attempt's number on every instance of a job's run: what removes an
/// earlier attempt's instances must spare a later attempt's, which may be starting already.
pub const ATTEMPT_TAG: &str = "cairn.attempt";

/// How long a worker's claim lasts without a heartbeat.
pub const LEASE: Duration = Duration::from_secs(10);

/// How many times recording a job's end is tried again when the queue cannot be reached.
const FINISH_TRIES: u32 = 5;

/// How often the log buffered from a running script goes to the queue.
const LOG_FLUSH: Duration = Duration::from_millis(250);

#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// Who the worker is in the queue (`job ls` shows it).
    pub name: String,
    pub queue: String,
    /// How many jobs run at once.
    pub concurrency: usize,
    /// How long a claim lasts without a heartbeat.
    pub lease: Duration,
    pub heartbeat: Duration,
    pub rescue_every: Duration,
    /// How long running jobs may go on once draining began.
    pub drain_timeout: Duration,
    /// Where runs keep their local files (`fake` and `process` defaults, work directories).
    pub run_dir: PathBuf,
    /// How long a cancelled script has after SIGTERM.
    pub grace: Duration,
    /// Opens jobs' secret variables; a job that has some waits for a worker that has it.
    pub passphrase: Option<Passphrase>,
}

impl WorkerOptions {
    pub fn new(name: &str, queue: &str, run_dir: PathBuf) -> WorkerOptions {
        WorkerOptions {
            name: name.to_owned(),
            queue: queue.to_owned(),
            concurrency: 1,
            lease: LEASE,
            heartbeat: Duration::from_millis(500),
            rescue_every: Duration::from_secs(2),
            drain_timeout: Duration::from_secs(60),
            run_dir,
            grace: RunLimits::default().grace,
            passphrase: None,
        }
    }
}

/// What a worker tells its caller, as it happens.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkerEvent {
    Claimed {
        job: Box<Job>,
        attempt: Attempt,
    },
    Finished {
        attempt: Attempt,
        outcome: Outcome,
    },
    Requeued {
        attempt: Attempt,
        reason: String,
        state: JobState,
    },
    /// The queue took the job away (rescued, restarted); its run was stopped.
    Lost {
        attempt: Attempt,
    },
    Rescued(Rescued),
    /// An instance left running by an earlier life of this worker, or by a stopped worker
    /// whose job was rescued, was removed.
    RemovedLeftover {
        driver: String,
        instance: String,
    },
    /// Something failed that the worker carries on after (the queue unreachable for a while).
    Problem(String),
}

pub type Events = Arc<dyn Fn(WorkerEvent) + Send + Sync>;

/// Stops a worker: `drain` stops claiming and lets running jobs finish (for `drain_timeout`,
/// then gives them back); `now` gives them back at once.
#[derive(Clone, Debug, Default)]
pub struct WorkerControl {
    pub drain: CancellationToken,
    pub now: CancellationToken,
}

/// Runs jobs of `options.queue` until `control` stops the worker.
pub async fn work(
    queue: Arc<dyn JobQueue>,
    registry: Arc<DriverRegistry>,
    options: WorkerOptions,
    control: WorkerControl,
    events: Events,
) -> Result<(), JobError> {
    cairn_state::jobs::validate_queue_name(&options.queue)?;
    remove_leftovers(&registry, &options, &events).await;
    // Jobs with secret variables are for workers that can open them: none without a
    // passphrase, and none once the passphrase failed to open a job's.
    let can_open_secrets = Arc::new(std::sync::atomic::AtomicBool::new(
        options.passphrase.is_some(),
    ));
    let options = Arc::new(options);
    let slots = Arc::new(tokio::sync::Semaphore::new(options.concurrency.max(1)));
    let mut running = tokio::task::JoinSet::new();
    let mut next_rescue = tokio::time::Instant::now();
    while !control.drain.is_cancelled() && !control.now.is_cancelled() {
        if tokio::time::Instant::now() >= next_rescue {
            match queue.rescue(TIMEOUT_GRACE).await {
                Ok(rescued) if rescued != Rescued::default() => {
                    // What the stopped workers left running of these jobs goes now, whether
                    // the job runs again (later) or ended (no attempt would remove it).
                    let jobs: Vec<JobId> = rescued
                        .requeued
                        .iter()
                        .chain(&rescued.errored)
                        .copied()
                        .collect();
                    events(WorkerEvent::Rescued(rescued));
                    let (queue, registry, options, events) = (
                        queue.clone(),
                        registry.clone(),
                        options.clone(),
                        events.clone(),
                    );
                    tokio::spawn(async move {
                        for job in jobs {
                            remove_stopped_attempts(&queue, &registry, &options, job, &events)
                                .await;
                        }
                    });
                }
                Ok(_) => {}
                Err(error) => events(WorkerEvent::Problem(format!("rescuing jobs: {error}"))),
            }
            next_rescue = tokio::time::Instant::now() + options.rescue_every;
        }
        // Slots first: a claim is only made for jobs that can start at once. Every free slot
        // is filled by one claim.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.map_err(|_| JobError::Storage("the worker's slots closed".to_owned()))?,
            () = control.drain.cancelled() => break,
            () = control.now.cancelled() => break,
        };
        let mut free = vec![slot];
        while let Ok(slot) = slots.clone().try_acquire_owned() {
            free.push(slot);
        }
        let claimed = match queue
            .claim_many(
                &options.queue,
                &options.name,
                options.lease,
                free.len(),
                can_open_secrets.load(std::sync::atomic::Ordering::Relaxed),
            )
            .await
        {
            Ok(claimed) => claimed,
            Err(error) => {
                events(WorkerEvent::Problem(format!("claiming a job: {error}")));
                drop(free);
                tokio::time::sleep(options.heartbeat).await;
                continue;
            }
        };
        if claimed.is_empty() {
            drop(free);
            let until_rescue = next_rescue.saturating_duration_since(tokio::time::Instant::now());
            tokio::select! {
                waited = queue.wait_for_work(&options.queue, until_rescue.max(Duration::from_millis(10))) => {
                    if let Err(error) = waited {
                        events(WorkerEvent::Problem(format!("waiting for jobs: {error}")));
                        tokio::time::sleep(options.heartbeat).await;
                    }
                }
                () = control.drain.cancelled() => break,
                () = control.now.cancelled() => break,
            }
            continue;
        }
        // The slots claims did not fill go back now; each job keeps its own until it ends.
        free.truncate(claimed.len());
        for ((job, attempt), slot) in claimed.into_iter().zip(free) {
            events(WorkerEvent::Claimed {
                job: Box::new(job.clone()),
                attempt,
            });
            let (queue, registry, options, control, events, can_open_secrets) = (
                queue.clone(),
                registry.clone(),
                options.clone(),
                control.clone(),
                events.clone(),
                can_open_secrets.clone(),
            );
            running.spawn(async move {
                let worker = Worker {
                    queue: &queue,
                    registry: &registry,
                    options: &options,
                    control: &control,
                    events: &events,
                    can_open_secrets: &can_open_secrets,
                };
                run_job(worker, job, attempt).await;
                drop(slot);
            });
        }
        // Reap what has finished, so the set does not grow with every job.
        while running.try_join_next().is_some() {}
    }
    // Draining: the running jobs finish, or are given back at the drain timeout (`run_job`
    // watches the same tokens).
    while running.join_next().await.is_some() {}
    Ok(())
}

/// Removes the instances an earlier life of this worker (same name) left behind, on the drivers
/// it can reach with this machine's defaults (`process`, `fake`, and Docker when it runs).
/// Their jobs are not touched: the queue requeues those when their leases run out.
async fn remove_leftovers(registry: &DriverRegistry, options: &WorkerOptions, events: &Events) {
    let tags = BTreeMap::from([(WORKER_TAG.to_owned(), options.name.clone())]);
    remove_tagged(registry, &options.run_dir, &tags, &|_| true, events).await;
}

/// Removes what a rescued job's stopped attempts left running: the instances of its attempts
/// up to the one the queue took back. A later attempt may be starting already (the job was
/// requeued, or restarted): its instances are spared.
async fn remove_stopped_attempts(
    queue: &Arc<dyn JobQueue>,
    registry: &DriverRegistry,
    options: &WorkerOptions,
    job: JobId,
    events: &Events,
) {
    let Ok(Some(current)) = queue.job(job).await else {
        return;
    };
    let last = if current.state.is_claimed() {
        current.attempt.saturating_sub(1)
    } else {
        current.attempt
    };
    let tags = BTreeMap::from([(JOB_TAG.to_owned(), job.to_string())]);
    let only = |instance: &InstanceDescription| attempt_at_most(instance, last);
    remove_tagged(registry, &options.run_dir, &tags, &only, events).await;
}

/// Whether `instance` belongs to an attempt numbered `last` or lower (one without the tag is
/// older than the tag).
fn attempt_at_most(instance: &InstanceDescription, last: u32) -> bool {
    instance
        .tags
        .get(ATTEMPT_TAG)
        .and_then(|number| number.parse::<u32>().ok())
        .unwrap_or(0)
        <= last
}

/// Removes the instances carrying `tags` (those of them `only` accepts) on every driver
/// reachable with this machine's defaults.
async fn remove_tagged(
    registry: &DriverRegistry,
    run_dir: &std::path::Path,
    tags: &BTreeMap<String, String>,
    only: &(dyn Fn(&InstanceDescription) -> bool + Sync),
    events: &Events,
) {
    for (name, _) in registry.drivers() {
        let mut settings = BTreeMap::new();
        crate::default_settings(name, run_dir, &mut settings);
        let Ok(driver) = registry.build_from_strings(name, &settings).await else {
            continue; // not reachable here (no Docker Engine): nothing of ours can be there
        };
        let Ok(leftovers) = driver.describe(tags, false).await else {
            continue;
        };
        for instance in leftovers.into_iter().filter(|instance| only(instance)) {
            match driver
                .destroy(&instance.id, cairn_compute::DestroyReason::Terminate)
                .await
            {
                Ok(()) => events(WorkerEvent::RemovedLeftover {
                    driver: name.to_owned(),
                    instance: instance.id,
                }),
                Err(error) => events(WorkerEvent::Problem(format!(
                    "removing instance `{}` ({name}) left by an earlier run: {error}",
                    instance.id
                ))),
            }
        }
    }
}

/// A script's output on its way to the queue: the run writes into `buffer`, a task moves it.
#[derive(Clone, Default)]
struct LogBuffer {
    bytes: Arc<Mutex<Vec<u8>>>,
}

impl LogBuffer {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.bytes.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.bytes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Why the worker stopped a run itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// The user cancelled the job.
    Cancelled,
    /// The queue no longer counts this attempt as the job's: write nothing more.
    Lost,
    /// The worker drains past its timeout, or stops now: give the job back.
    GiveBack,
}

/// What a job's run needs of its worker.
struct Worker<'a> {
    queue: &'a Arc<dyn JobQueue>,
    registry: &'a DriverRegistry,
    options: &'a Arc<WorkerOptions>,
    control: &'a WorkerControl,
    events: &'a Events,
    /// Cleared when the worker's passphrase fails to open a job's secret variables.
    can_open_secrets: &'a std::sync::atomic::AtomicBool,
}

async fn run_job(worker: Worker<'_>, job: Job, attempt: Attempt) {
    let Worker {
        queue,
        registry,
        options,
        control,
        events,
        can_open_secrets,
    } = worker;
    let requeue = |reason: String, counts: bool| async move {
        match queue.requeue(attempt, &reason, counts).await {
            Ok(state) => events(WorkerEvent::Requeued {
                attempt,
                reason,
                state,
            }),
            Err(JobError::Stale { .. }) => events(WorkerEvent::Lost { attempt }),
            Err(error) => events(WorkerEvent::Problem(format!(
                "giving job {} back: {error} (its lease will run out and it will be requeued)",
                attempt.job
            ))),
        }
    };
    // The claim's lease was just set: it counts from here on this side.
    let renewed = Renewed::now();
    let spec = &job.spec;
    let run_id = crate::new_run_id();
    let mut settings = spec.settings.clone();
    crate::default_settings(&spec.driver, &options.run_dir, &mut settings);
    let work_dir = crate::work_dir_for(&spec.driver, &options.run_dir, &run_id);
    // The script knows which job and attempt it is (a ledger, an idempotency key).
    let mut env = spec.env.clone();
    env.insert("CAIRN_JOB_ID".to_owned(), attempt.job.to_string());
    env.insert("CAIRN_JOB_ATTEMPT".to_owned(), attempt.number.to_string());
    env.insert("CAIRN_JOB_QUEUE".to_owned(), spec.queue.clone());
    let properties = match crate::instance_properties(
        &spec.driver,
        spec.image.as_deref(),
        &env,
        work_dir.as_deref(),
    ) {
        Ok(properties) => properties,
        Err(error) => return finish(queue, events, attempt, errored(error)).await,
    };
    // A worker without the passphrase gives the job back for one that has it; past the
    // retries, the job errors with the reason.
    let secret_env = match &spec.secret_env {
        None => SecretEnv::default(),
        Some(sealed) => match crate::secrets::open(options.passphrase.as_ref(), sealed) {
            Ok(secret_env) => secret_env,
            // Not the job's failure, nor one a retry here would mend: the job goes back for
            // a worker that can open it, and this one takes no more jobs with secrets.
            Err(error) => {
                can_open_secrets.store(false, std::sync::atomic::Ordering::Relaxed);
                events(WorkerEvent::Problem(format!(
                    "job {}: {error}; this worker takes no more jobs with secret variables",
                    attempt.job
                )));
                return requeue(error, false).await;
            }
        },
    };
    let driver = match registry.build_from_strings(&spec.driver, &settings).await {
        Ok(driver) => driver,
        Err(error) => return requeue(format!("the {} driver: {error}", spec.driver), true).await,
    };
    if attempt.number > 1
        && let Err(error) = remove_earlier_attempts(driver.as_ref(), attempt).await
    {
        return requeue(error, true).await;
    }
    if let Err(error) = queue.start(attempt).await {
        return match error {
            JobError::Stale { .. } => events(WorkerEvent::Lost { attempt }),
            error => requeue(format!("starting: {error}"), true).await,
        };
    }
    let request = RunRequest {
        run_id,
        script: spec.script.clone().into_bytes(),
        properties,
        limits: RunLimits {
            hard_timeout: Duration::from_secs(spec.timeout_seconds),
            log_silence: Duration::from_secs(spec.log_silence_seconds),
            max_log: spec.max_log_bytes,
            grace: options.grace,
        },
        work_dir,
        tags: BTreeMap::from([
            (WORKER_TAG.to_owned(), options.name.clone()),
            (JOB_TAG.to_owned(), attempt.job.to_string()),
            (ATTEMPT_TAG.to_owned(), attempt.number.to_string()),
        ]),
        secret_env,
        fence: Some(Fence::new({
            let renewed = renewed.clone();
            let lease = options.lease;
            move || renewed.holds(lease)
        })),
    };
    let log = LogBuffer::default();
    let cancel = Cancel::default();
    let stopped: Arc<Mutex<Option<Stop>>> = Arc::default();
    let run_done = CancellationToken::new();
    let keeper = tokio::spawn(keep_claim(
        queue.clone(),
        options.clone(),
        control.clone(),
        attempt,
        log.clone(),
        cancel.clone(),
        stopped.clone(),
        renewed.clone(),
        run_done.clone(),
    ));
    let mut sink = log.clone();
    let outcome = crate::run(driver, request, &mut sink, &cancel).await;
    run_done.cancel();
    // The keeper flushes what is left of the log before it ends.
    let _ = keeper.await;
    let mut stop = *stopped.lock().unwrap_or_else(|e| e.into_inner());
    if stop.is_none() && !renewed.holds(options.lease) {
        // The claim ran out here before the run ended (the worker was frozen): the queue
        // may have given the job to another worker, so nothing is written for it.
        stop = Some(Stop::Lost);
    }
    match (stop, outcome) {
        (Some(Stop::Lost), _) => events(WorkerEvent::Lost { attempt }),
        (Some(Stop::GiveBack), _) => {
            requeue(format!("worker `{}` stopped", options.name), false).await;
        }
        (Some(Stop::Cancelled), Ok(result)) if !result.completed => {
            let outcome = Outcome {
                state: JobState::Cancelled,
                exit_code: result.exit_code,
                reason: Some("cancelled".to_owned()),
            };
            finish(queue, events, attempt, outcome).await;
        }
        (_, Ok(result)) => finish(queue, events, attempt, outcome_of(&result)).await,
        (Some(Stop::Cancelled), Err(_)) => {
            let outcome = Outcome {
                state: JobState::Cancelled,
                exit_code: None,
                reason: Some("cancelled".to_owned()),
            };
            finish(queue, events, attempt, outcome).await;
        }
        (None, Err(error)) => requeue(error.to_string(), true).await,
    }
}

/// Removes the instances of a job's earlier attempts that are still there: a killed worker's
/// container runs on, a frozen one's waits to. The new attempt starts only once they are gone.
async fn remove_earlier_attempts(
    driver: &dyn cairn_compute::InstanceDriver,
    attempt: Attempt,
) -> Result<(), String> {
    let tags = BTreeMap::from([(JOB_TAG.to_owned(), attempt.job.to_string())]);
    let earlier = driver
        .describe(&tags, false)
        .await
        .map_err(|error| format!("looking for earlier attempts' instances: {error}"))?;
    let earlier = earlier
        .into_iter()
        .filter(|instance| attempt_at_most(instance, attempt.number - 1));
    for instance in earlier {
        driver
            .destroy(&instance.id, cairn_compute::DestroyReason::Terminate)
            .await
            .map_err(|error| {
                format!(
                    "removing instance `{}` of an earlier attempt: {error}",
                    instance.id
                )
            })?;
    }
    Ok(())
}

/// When the worker last renewed its claim, as its own clock says (which runs on while the
/// process is frozen, unlike its timers' turns).
#[derive(Clone)]
struct Renewed(Arc<Mutex<tokio::time::Instant>>);

impl Renewed {
    fn now() -> Renewed {
        Renewed(Arc::new(Mutex::new(tokio::time::Instant::now())))
    }

    fn renew(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = tokio::time::Instant::now();
    }

    /// Whether the claim surely still holds: renewed within half the lease (the queue counts
    /// the lease from the claim, a moment before this side does).
    fn holds(&self, lease: Duration) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).elapsed() < lease / 2
    }

    fn elapsed(&self) -> Duration {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).elapsed()
    }
}

fn errored(reason: String) -> Outcome {
    Outcome {
        state: JobState::Errored,
        exit_code: None,
        reason: Some(reason),
    }
}

/// The job's outcome from the run's: passed, failed (the script's exit code), or errored (a
/// limit; a run whose log was cut never passes).
fn outcome_of(result: &RunResult) -> Outcome {
    match (&result.reason, result.exit_code) {
        (Reason::Finished, Some(0)) if result.completed => Outcome {
            state: JobState::Passed,
            exit_code: Some(0),
            reason: None,
        },
        (Reason::Finished, code) if result.completed => Outcome {
            state: JobState::Failed,
            exit_code: code,
            reason: Some(format!(
                "the script exited with {}",
                code.map_or("no code".to_owned(), |code| code.to_string())
            )),
        },
        (reason, code) => Outcome {
            state: JobState::Errored,
            exit_code: code,
            reason: Some(reason.message()),
        },
    }
}

async fn finish(queue: &Arc<dyn JobQueue>, events: &Events, attempt: Attempt, outcome: Outcome) {
    // The queue may be out of reach for a moment (a database restarting): the outcome is
    // worth a few tries before the lease runs out and the job runs again.
    let mut tries = 0;
    loop {
        match queue.finish(attempt, outcome.clone()).await {
            Ok(()) => return events(WorkerEvent::Finished { attempt, outcome }),
            Err(JobError::Stale { .. }) => return events(WorkerEvent::Lost { attempt }),
            Err(error) if tries >= FINISH_TRIES => {
                return events(WorkerEvent::Problem(format!(
                    "recording the end of job {}: {error} (its lease will run out and it will run again)",
                    attempt.job
                )));
            }
            Err(_) => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(250) * tries).await;
            }
        }
    }
}

/// While the run goes on: renews the lease, moves the log to the queue, and stops the run
/// when the job is cancelled, taken away, or the worker stops. Flushes the log's rest at the
/// end.
#[allow(clippy::too_many_arguments)]
async fn keep_claim(
    queue: Arc<dyn JobQueue>,
    options: Arc<WorkerOptions>,
    control: WorkerControl,
    attempt: Attempt,
    log: LogBuffer,
    cancel: Cancel,
    stopped: Arc<Mutex<Option<Stop>>>,
    renewed: Renewed,
    run_done: CancellationToken,
) {
    let stop = |why: Stop, hard: bool| {
        let mut stopped = stopped.lock().unwrap_or_else(|e| e.into_inner());
        if stopped.is_none() {
            *stopped = Some(why);
        }
        cancel.graceful.cancel();
        if hard {
            cancel.hard.cancel();
        }
    };
    let is_lost = || *stopped.lock().unwrap_or_else(|e| e.into_inner()) == Some(Stop::Lost);
    let mut flush = tokio::time::interval(LOG_FLUSH);
    // The claim just set the lease: the first heartbeat is one period on, so a short job
    // costs the queue no heartbeat at all.
    let mut heartbeat = tokio::time::interval_at(
        tokio::time::Instant::now() + options.heartbeat,
        options.heartbeat,
    );
    // After a freeze (SIGSTOP), one tick each, not one per missed period.
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let drain_deadline = async {
        control.drain.cancelled().await;
        tokio::time::sleep(options.drain_timeout).await;
    };
    tokio::pin!(drain_deadline);
    let mut given_back = false;
    loop {
        tokio::select! {
            () = run_done.cancelled() => break,
            _ = flush.tick() => {
                let bytes = log.take();
                if !bytes.is_empty() && !is_lost() {
                    // A refused append means the attempt is no longer current.
                    if let Err(JobError::Stale { .. }) = queue.append_log(attempt, &bytes).await {
                        stop(Stop::Lost, true);
                    }
                }
            }
            _ = heartbeat.tick() => match queue.heartbeat(attempt, options.lease).await {
                Ok(beat) => {
                    renewed.renew();
                    if beat.cancel_requested {
                        stop(Stop::Cancelled, false);
                    }
                }
                Err(JobError::Stale { .. }) => stop(Stop::Lost, true),
                // The queue is unreachable: once the lease has run out here too, someone
                // else may have the job, so this run stops.
                Err(_) if renewed.elapsed() >= options.lease => stop(Stop::Lost, true),
                Err(_) => {}
            },
            // Once given back, the run is being stopped: these fire once, not at every turn.
            () = &mut drain_deadline, if !given_back => {
                given_back = true;
                stop(Stop::GiveBack, true);
            }
            () = control.now.cancelled(), if !given_back => {
                given_back = true;
                stop(Stop::GiveBack, true);
            }
        }
    }
    let rest = log.take();
    if !rest.is_empty() && !is_lost() {
        let _ = queue.append_log(attempt, &rest).await;
    }
}
