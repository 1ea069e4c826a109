//! The job queue of a `file://` backend, for workers on one machine: one JSON file per job under
//! `.pulumi/jobs/`, a marker per queued job under `queued/<queue>/` (so a claim reads one
//! small directory, not every job), logs in `<id>.<attempt>.log`. Every operation holds an
//! exclusive `flock` on `jobs/.lock` for its few milliseconds, which makes each one atomic
//! between processes and threads alike; job files are replaced atomically (written aside,
//! fsynced, renamed), so a crash at any instant leaves every job whole.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use cairn_state::jobs::{
    Attempt, Heartbeat, Job, JobError, JobId, JobQueue, JobResult, JobSpec, JobState, Outcome,
    Rescued, validate_queue_name,
};

use crate::files::write_atomically;

/// How often an idle worker looks for queued jobs.
const POLL: Duration = Duration::from_millis(50);

#[derive(Clone)]
pub struct FileJobQueue {
    dir: PathBuf,
}

fn storage(action: &str, path: &Path, error: impl std::fmt::Display) -> JobError {
    JobError::Storage(format!("{action} {}: {error}", path.display()))
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// The queue's files, while the lock is held.
struct Locked<'a> {
    dir: &'a Path,
}

impl FileJobQueue {
    /// The queue of the backend at `root` (its `.pulumi/jobs` directory, created when missing).
    pub fn open(root: &Path) -> JobResult<FileJobQueue> {
        let dir = root.join(".pulumi").join("jobs");
        fs_err::create_dir_all(dir.join("queued"))
            .map_err(|error| storage("creating", &dir, error))?;
        Ok(FileJobQueue { dir })
    }

    /// Runs `operation` under the queue's lock, off the async threads (it blocks on the lock
    /// and on fsync).
    async fn locked<T: Send + 'static>(
        &self,
        operation: impl FnOnce(&Locked) -> JobResult<T> + Send + 'static,
    ) -> JobResult<T> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            let _lock = crate::files::lock_directory(&dir, crate::files::DIRECTORY_LOCK_WAIT)
                .map_err(|error| storage("locking", &dir, error))?;
            operation(&Locked { dir: &dir })
        })
        .await
        .map_err(|error| JobError::Storage(format!("a job queue operation failed: {error}")))?
    }
}

impl Locked<'_> {
    fn job_path(&self, id: JobId) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn queued_dir(&self, queue: &str) -> PathBuf {
        self.dir.join("queued").join(queue)
    }

    fn log_path(&self, id: JobId, attempt: u32) -> PathBuf {
        self.dir.join(format!("{id}.{attempt}.log"))
    }

    fn read(&self, id: JobId) -> JobResult<Option<Job>> {
        let path = self.job_path(id);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|error| storage("reading", &path, error)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(storage("reading", &path, error)),
        }
    }

    fn existing(&self, id: JobId) -> JobResult<Job> {
        self.read(id)?.ok_or(JobError::NotFound(id))
    }

    /// Writes the job and keeps its queued marker in step with its state. The job file is
    /// written first: a crash between the two leaves at worst a marker of a job that is not
    /// queued (a claim skips it) or a queued job without one (`rescue` restores it).
    fn write(&self, job: &Job) -> JobResult<()> {
        let bytes =
            serde_json::to_vec(job).map_err(|error| JobError::Storage(error.to_string()))?;
        write_atomically(&self.job_path(job.id), &bytes)
            .map_err(|error| JobError::Storage(error.to_string()))?;
        let marker = self.queued_dir(&job.spec.queue).join(job.id.to_string());
        if job.state == JobState::Queued {
            fs_err::create_dir_all(marker.parent().unwrap_or(self.dir))
                .map_err(|error| storage("creating", &marker, error))?;
            fs_err::write(&marker, b"").map_err(|error| storage("writing", &marker, error))?;
        } else {
            match std::fs::remove_file(&marker) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(storage("removing", &marker, error)),
            }
        }
        Ok(())
    }

    /// The job an attempt belongs to, if the attempt is still its current claim.
    fn current(&self, attempt: Attempt) -> JobResult<Job> {
        let job = self.existing(attempt.job)?;
        if job.attempt != attempt.number || !job.state.is_claimed() {
            return Err(JobError::Stale {
                job: attempt.job,
                number: attempt.number,
            });
        }
        Ok(job)
    }

    fn ids(&self) -> JobResult<Vec<JobId>> {
        let entries =
            std::fs::read_dir(self.dir).map_err(|error| storage("listing", self.dir, error))?;
        let mut ids: Vec<JobId> = entries
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".json")?.parse().ok()
            })
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// The next job number: `next-id`, unless it is missing, damaged, or names a job that
    /// exists (then one past the highest job there is), so a number is never given twice.
    fn next_id(&self) -> JobResult<JobId> {
        let path = self.dir.join("next-id");
        let recorded = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| text.trim().parse::<JobId>().ok())
            .filter(|&next| next > 0 && !self.job_path(next).exists());
        let next = match recorded {
            Some(next) => next,
            None => self.ids()?.last().map_or(1, |last| last + 1),
        };
        write_atomically(&path, (next + 1).to_string().as_bytes())
            .map_err(|error| JobError::Storage(error.to_string()))?;
        Ok(next)
    }

    /// A job to go through in a scan (claim, rescue, list): one whose file cannot be read is
    /// passed over, so one damaged file does not stop the queue; `job show` names its damage.
    fn scanned(&self, id: JobId) -> Option<Job> {
        self.read(id).ok().flatten()
    }
}

/// Requeues `job` after an infrastructure failure, or errors it when its retries are spent.
fn requeue_or_error(job: &mut Job, reason: String, counts_as_failure: bool) {
    job.worker = None;
    job.lease_expires_ms = None;
    if counts_as_failure {
        job.infra_failures += 1;
    }
    if job.cancel_requested {
        job.state = JobState::Cancelled;
        job.finished_ms = Some(crate::files::unix_now_millis());
        job.reason = Some("cancelled".to_owned());
    } else if job.infra_failures > job.spec.retries {
        job.state = JobState::Errored;
        job.finished_ms = Some(crate::files::unix_now_millis());
        job.reason = Some(format!("{reason}; no retries left"));
    } else {
        job.state = JobState::Queued;
        job.started_ms = None;
        job.reason = Some(reason);
    }
}

#[async_trait]
impl JobQueue for FileJobQueue {
    async fn submit(&self, spec: JobSpec) -> JobResult<JobId> {
        validate_queue_name(&spec.queue)?;
        self.locked(move |store| {
            let id = store.next_id()?;
            store.write(&Job {
                id,
                spec,
                state: JobState::Queued,
                attempt: 0,
                infra_failures: 0,
                worker: None,
                lease_expires_ms: None,
                created_ms: crate::files::unix_now_millis(),
                started_ms: None,
                finished_ms: None,
                exit_code: None,
                reason: None,
                cancel_requested: false,
            })?;
            Ok(id)
        })
        .await
    }

    async fn claim_many(
        &self,
        queue: &str,
        worker: &str,
        lease: Duration,
        max: usize,
        with_secrets: bool,
    ) -> JobResult<Vec<(Job, Attempt)>> {
        validate_queue_name(queue)?;
        let (queue, worker) = (queue.to_owned(), worker.to_owned());
        self.locked(move |store| {
            let mut claimed = Vec::new();
            let dir = store.queued_dir(&queue);
            let mut queued: Vec<JobId> = match std::fs::read_dir(&dir) {
                Ok(entries) => entries
                    .flatten()
                    .filter_map(|entry| entry.file_name().to_string_lossy().parse().ok())
                    .collect(),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(error) => return Err(storage("listing", &dir, error)),
            };
            queued.sort_unstable();
            for id in queued {
                if claimed.len() >= max {
                    break;
                }
                let Some(mut job) = store.scanned(id) else {
                    continue;
                };
                if job.state != JobState::Queued {
                    store.write(&job)?; // a stale marker: drop it
                    continue;
                }
                if !with_secrets && job.spec.secret_env.is_some() {
                    continue;
                }
                job.state = JobState::Received;
                job.attempt += 1;
                job.worker = Some(worker.clone());
                job.lease_expires_ms =
                    Some(crate::files::unix_now_millis().saturating_add(millis(lease)));
                store.write(&job)?;
                let attempt = Attempt {
                    job: id,
                    number: job.attempt,
                };
                claimed.push((job, attempt));
            }
            Ok(claimed)
        })
        .await
    }

    async fn start(&self, attempt: Attempt) -> JobResult<()> {
        self.locked(move |store| {
            let mut job = store.current(attempt)?;
            job.state = JobState::Started;
            job.started_ms = Some(crate::files::unix_now_millis());
            store.write(&job)
        })
        .await
    }

    async fn heartbeat(&self, attempt: Attempt, lease: Duration) -> JobResult<Heartbeat> {
        self.locked(move |store| {
            let mut job = store.current(attempt)?;
            job.lease_expires_ms =
                Some(crate::files::unix_now_millis().saturating_add(millis(lease)));
            store.write(&job)?;
            Ok(Heartbeat {
                cancel_requested: job.cancel_requested,
            })
        })
        .await
    }

    async fn append_log(&self, attempt: Attempt, bytes: &[u8]) -> JobResult<()> {
        let bytes = bytes.to_vec();
        self.locked(move |store| {
            store.current(attempt)?;
            let path = store.log_path(attempt.job, attempt.number);
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|error| storage("opening", &path, error))?;
            file.write_all(&bytes)
                .and_then(|()| file.sync_data())
                .map_err(|error| storage("appending to", &path, error))
        })
        .await
    }

    async fn finish(&self, attempt: Attempt, outcome: Outcome) -> JobResult<()> {
        if !outcome.state.is_final() {
            return Err(JobError::Invalid(format!(
                "`{}` is not an outcome",
                outcome.state
            )));
        }
        self.locked(move |store| {
            let mut job = store.current(attempt)?;
            job.state = outcome.state;
            job.exit_code = outcome.exit_code;
            job.reason = outcome.reason;
            job.finished_ms = Some(crate::files::unix_now_millis());
            job.lease_expires_ms = None;
            store.write(&job)
        })
        .await
    }

    async fn requeue(
        &self,
        attempt: Attempt,
        reason: &str,
        counts_as_failure: bool,
    ) -> JobResult<JobState> {
        let reason = reason.to_owned();
        self.locked(move |store| {
            let mut job = store.current(attempt)?;
            requeue_or_error(&mut job, reason, counts_as_failure);
            store.write(&job)?;
            Ok(job.state)
        })
        .await
    }

    async fn rescue(&self, timeout_grace: Duration) -> JobResult<Rescued> {
        self.locked(move |store| {
            let now = crate::files::unix_now_millis();
            let mut rescued = Rescued::default();
            for id in store.ids()? {
                let Some(mut job) = store.scanned(id) else {
                    continue;
                };
                // Saturating: a job's limits come from its submitter, and no value of them
                // may stop the rescue of every other job.
                let timeout_ms = i64::try_from(job.spec.timeout_seconds.saturating_mul(1000))
                    .unwrap_or(i64::MAX);
                let grace_ms = i64::try_from(timeout_grace.as_millis()).unwrap_or(i64::MAX);
                let past_timeout = job.state == JobState::Started
                    && job.started_ms.is_some_and(|started| {
                        now > started.saturating_add(timeout_ms).saturating_add(grace_ms)
                    });
                if past_timeout {
                    job.state = JobState::Errored;
                    job.finished_ms = Some(now);
                    job.lease_expires_ms = None;
                    job.reason = Some(format!(
                        "ran past its timeout of {}s and its worker did not stop it",
                        job.spec.timeout_seconds
                    ));
                    store.write(&job)?;
                    rescued.errored.push(id);
                } else if job.state.is_claimed()
                    && job.lease_expires_ms.is_some_and(|expires| expires < now)
                {
                    let worker = job.worker.clone().unwrap_or_default();
                    requeue_or_error(
                        &mut job,
                        format!("worker `{worker}` stopped renewing its lease"),
                        true,
                    );
                    store.write(&job)?;
                    match job.state {
                        JobState::Queued => rescued.requeued.push(id),
                        _ => rescued.errored.push(id),
                    }
                } else if job.state == JobState::Queued {
                    // A crash between a job's file and its marker: restore the marker.
                    store.write(&job)?;
                }
            }
            Ok(rescued)
        })
        .await
    }

    async fn cancel(&self, id: JobId) -> JobResult<JobState> {
        self.locked(move |store| {
            let mut job = store.existing(id)?;
            match job.state {
                JobState::Queued => {
                    job.state = JobState::Cancelled;
                    job.finished_ms = Some(crate::files::unix_now_millis());
                    job.reason = Some("cancelled before it started".to_owned());
                }
                JobState::Received | JobState::Started => job.cancel_requested = true,
                _ => return Ok(job.state),
            }
            store.write(&job)?;
            Ok(job.state)
        })
        .await
    }

    async fn restart(&self, id: JobId) -> JobResult<()> {
        self.locked(move |store| {
            let mut job = store.existing(id)?;
            if !job.state.is_final() {
                return Err(JobError::Invalid(format!(
                    "job {id} is {}; only a finished job can be restarted",
                    job.state
                )));
            }
            job.state = JobState::Queued;
            job.infra_failures = 0;
            job.cancel_requested = false;
            job.started_ms = None;
            job.finished_ms = None;
            job.exit_code = None;
            job.reason = Some("restarted".to_owned());
            store.write(&job)
        })
        .await
    }

    async fn job(&self, id: JobId) -> JobResult<Option<Job>> {
        self.locked(move |store| store.read(id)).await
    }

    async fn list(&self, queue: Option<&str>, state: Option<JobState>) -> JobResult<Vec<Job>> {
        let queue = queue.map(str::to_owned);
        self.locked(move |store| {
            let mut jobs = Vec::new();
            for id in store.ids()? {
                if let Some(job) = store.scanned(id)
                    && queue.as_ref().is_none_or(|queue| &job.spec.queue == queue)
                    && state.is_none_or(|state| job.state == state)
                {
                    jobs.push(job);
                }
            }
            Ok(jobs)
        })
        .await
    }

    async fn logs(&self, id: JobId, from: u64) -> JobResult<Vec<u8>> {
        self.locked(move |store| {
            let job = store.existing(id)?;
            let path = store.log_path(id, job.attempt);
            let bytes = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(error) => return Err(storage("reading", &path, error)),
            };
            Ok(bytes.get(from as usize..).unwrap_or_default().to_vec())
        })
        .await
    }

    async fn wait_for_work(&self, queue: &str, timeout: Duration) -> JobResult<()> {
        validate_queue_name(queue)?;
        let dir = self.dir.join("queued").join(queue);
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            let has_work = std::fs::read_dir(&dir)
                .map(|mut entries| entries.next().is_some())
                .unwrap_or(false);
            if has_work {
                return Ok(());
            }
            tokio::time::sleep(POLL.min(deadline - tokio::time::Instant::now())).await;
        }
        Ok(())
    }
}
