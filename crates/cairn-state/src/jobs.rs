//! The job queue every state backend keeps beside its stacks (`cairn job`, `cairn worker`):
//! Travis CI's job states (queued → received → started → passed | failed | errored |
//! cancelled) with leases and fencing, so that no job is lost when a worker dies and none runs
//! twice at once.
//!
//! - **Attempts are fencing tokens.** Claiming a job increments its attempt number; every write
//!   of a worker (start, heartbeat, log, finish, requeue) names its attempt and is refused with
//!   `JobError::Stale` once the job has moved on (rescued, cancelled, restarted). A worker that
//!   was frozen and wakes up can write nothing more.
//! - **Leases.** A claimed job carries a lease its worker renews by heartbeat. `rescue` (run by
//!   every worker, every few seconds) requeues the jobs whose lease ran out, and errors the ones
//!   whose worker let them run past their timeout, so a killed or frozen worker cannot keep a job.
//! - **Infrastructure failures** (an instance that did not start, a worker that died) requeue a
//!   job up to its `retries`; they are never reported as the script's failure.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// A job's number, unique in its backend.
pub type JobId = u64;

/// How long a job may outlive its timeout when its worker stops enforcing it (frozen, cut
/// off) before the queue ends it.
pub const TIMEOUT_GRACE: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// Claimed by a worker, which is starting its instance.
    Received,
    /// Its script runs.
    Started,
    /// The script exited 0.
    Passed,
    /// The script exited non-zero.
    Failed,
    /// The run did not complete (timeout, log silence, log cap, infrastructure failures past
    /// the retries).
    Errored,
    /// Cancelled by `cairn job cancel`.
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 7] = [
        JobState::Queued,
        JobState::Received,
        JobState::Started,
        JobState::Passed,
        JobState::Failed,
        JobState::Errored,
        JobState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Received => "received",
            JobState::Started => "started",
            JobState::Passed => "passed",
            JobState::Failed => "failed",
            JobState::Errored => "errored",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<JobState> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
    }

    /// Whether the job is done (nothing more happens to it unless restarted).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Passed | JobState::Failed | JobState::Errored | JobState::Cancelled
        )
    }

    /// Whether a worker holds the job.
    pub fn is_claimed(self) -> bool {
        matches!(self, JobState::Received | JobState::Started)
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// What to run: a script on a fresh instance of a driver (`cairn run`'s options).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSpec {
    pub queue: String,
    pub script: String,
    pub driver: String,
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub timeout_seconds: u64,
    pub log_silence_seconds: u64,
    pub max_log_bytes: u64,
    /// How many times an infrastructure failure requeues the job.
    pub retries: u32,
    /// Secret variables (`--secret-env`), sealed: the queue never holds them in plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<SealedEnv>,
}

/// Environment variables sealed with a passphrase (Cairn's passphrase scheme): a worker opens
/// them with the same passphrase, and masks their values in the job's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedEnv {
    /// The scheme's salt line (`cairn-v1:...`), which also tells a wrong passphrase.
    pub salt: String,
    /// Each variable's sealed value, by name.
    pub values: BTreeMap<String, String>,
}

/// A job as the queue holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: JobId,
    pub spec: JobSpec,
    pub state: JobState,
    /// How many times a worker claimed it; the current attempt's number.
    pub attempt: u32,
    /// Infrastructure failures so far (each requeued it).
    pub infra_failures: u32,
    pub worker: Option<String>,
    /// Unix milliseconds when the current claim's lease runs out.
    pub lease_expires_ms: Option<i64>,
    pub created_ms: i64,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    pub exit_code: Option<i64>,
    /// Why it ended as it did, or why it was last requeued.
    pub reason: Option<String>,
    /// `cairn job cancel` asked its worker to stop it.
    pub cancel_requested: bool,
}

/// One claim of a job by a worker: the fencing token of its writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub job: JobId,
    pub number: u32,
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// `Passed`, `Failed`, `Errored` or `Cancelled`.
    pub state: JobState,
    pub exit_code: Option<i64>,
    pub reason: Option<String>,
}

/// What a heartbeat learns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    pub cancel_requested: bool,
}

/// What `rescue` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rescued {
    /// Jobs whose worker stopped renewing its lease, back in the queue.
    pub requeued: Vec<JobId>,
    /// Jobs past their timeout (and the grace) or out of retries, ended as errored.
    pub errored: Vec<JobId>,
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("no job {0}")]
    NotFound(JobId),
    /// The attempt is no longer the job's current one: the write is refused.
    #[error("attempt {number} of job {job} is no longer current; its result is not recorded")]
    Stale { job: JobId, number: u32 },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Storage(String),
}

pub type JobResult<T> = Result<T, JobError>;

/// A queue name: letters, digits, `-`, `_` and `.`, 1 to 100 of them, not starting with `.`
/// (it names files in the `file://` backend).
pub fn validate_queue_name(name: &str) -> JobResult<()> {
    let is_valid = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if is_valid {
        Ok(())
    } else {
        Err(JobError::Invalid(format!(
            "`{name}` is not a queue name: use 1 to 100 letters, digits, `-`, `_` or `.`, not starting with `.`"
        )))
    }
}

#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Adds a job to its queue; returns its number.
    async fn submit(&self, spec: JobSpec) -> JobResult<JobId>;

    /// Takes the oldest queued job of `queue` for `worker` (queued → received), with a lease
    /// of `lease`; `None` when the queue is empty.
    async fn claim(
        &self,
        queue: &str,
        worker: &str,
        lease: Duration,
    ) -> JobResult<Option<(Job, Attempt)>> {
        Ok(self.claim_many(queue, worker, lease, 1, true).await?.pop())
    }

    /// Takes up to `max` of the oldest queued jobs of `queue` at once (a worker with several
    /// free slots fills them with one claim), oldest first. Unless `with_secrets`, jobs with
    /// secret variables are passed over and stay queued: a worker that cannot open them (it
    /// has no passphrase, or the wrong one) leaves them to one that can.
    async fn claim_many(
        &self,
        queue: &str,
        worker: &str,
        lease: Duration,
        max: usize,
        with_secrets: bool,
    ) -> JobResult<Vec<(Job, Attempt)>>;

    /// The script starts (received → started).
    async fn start(&self, attempt: Attempt) -> JobResult<()>;

    /// Renews the attempt's lease; says whether the job was asked to stop.
    async fn heartbeat(&self, attempt: Attempt, lease: Duration) -> JobResult<Heartbeat>;

    /// Appends to the attempt's log.
    async fn append_log(&self, attempt: Attempt, bytes: &[u8]) -> JobResult<()>;

    /// Ends the attempt with its outcome (a final state).
    async fn finish(&self, attempt: Attempt, outcome: Outcome) -> JobResult<()>;

    /// Gives the job back. An infrastructure failure (`counts_as_failure`) uses up one of its
    /// retries, and past them the job errors; a worker draining on SIGTERM gives it back for
    /// free. Returns the job's new state.
    async fn requeue(
        &self,
        attempt: Attempt,
        reason: &str,
        counts_as_failure: bool,
    ) -> JobResult<JobState>;

    /// Requeues jobs whose lease ran out (as infrastructure failures) and errors started jobs
    /// past their timeout plus `timeout_grace` (workers pass `TIMEOUT_GRACE`).
    async fn rescue(&self, timeout_grace: Duration) -> JobResult<Rescued>;

    /// Cancels a job: a queued one at once, a claimed one by asking its worker (the next
    /// heartbeat says so). Returns its state after the call.
    async fn cancel(&self, id: JobId) -> JobResult<JobState>;

    /// Queues a finished job again, as a fresh job with the next attempt number.
    async fn restart(&self, id: JobId) -> JobResult<()>;

    async fn job(&self, id: JobId) -> JobResult<Option<Job>>;

    /// Jobs, oldest first, of one queue and one state when given.
    async fn list(&self, queue: Option<&str>, state: Option<JobState>) -> JobResult<Vec<Job>>;

    /// The log of the job's current attempt from byte `from` on.
    async fn logs(&self, id: JobId, from: u64) -> JobResult<Vec<u8>>;

    /// Waits until something may have been queued in `queue` (or `timeout` passed): what an
    /// idle worker does between claims.
    async fn wait_for_work(&self, queue: &str, timeout: Duration) -> JobResult<()>;
}
