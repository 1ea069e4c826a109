//! The job queue conformance suite: the checks every `JobQueue` must pass, run by each backend
//! crate's tests against a fresh, empty queue. Each check uses queues of its own, so they can
//! share one backend; each panics with what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::jobs::{Attempt, JobError, JobId, JobQueue, JobSpec, JobState, Outcome};

const LEASE: Duration = Duration::from_secs(30);

pub fn spec(queue: &str, script: &str) -> JobSpec {
    JobSpec {
        queue: queue.to_owned(),
        script: script.to_owned(),
        driver: "fake".to_owned(),
        settings: BTreeMap::new(),
        image: None,
        env: BTreeMap::from([("GREETING".to_owned(), "hello".to_owned())]),
        timeout_seconds: 3000,
        log_silence_seconds: 600,
        max_log_bytes: 4_500_000,
        retries: 1,
        secret_env: None,
    }
}

fn outcome(state: JobState, exit_code: Option<i64>) -> Outcome {
    Outcome {
        state,
        exit_code,
        reason: None,
    }
}

fn is_stale<T: std::fmt::Debug>(result: Result<T, JobError>) -> bool {
    matches!(result, Err(JobError::Stale { .. }))
}

/// Runs every check.
pub async fn run_all(queue: Arc<dyn JobQueue>) {
    a_job_goes_from_queued_to_passed_with_its_log(queue.as_ref()).await;
    claims_take_the_oldest_job_of_their_own_queue(queue.as_ref()).await;
    an_expired_lease_requeues_and_fences_the_old_attempt(queue.as_ref()).await;
    infrastructure_failures_use_up_retries_and_draining_does_not(queue.as_ref()).await;
    a_job_past_its_timeout_is_ended_by_the_queue(queue.as_ref()).await;
    cancel_ends_queued_jobs_and_asks_workers_to_stop_claimed_ones(queue.as_ref()).await;
    a_restarted_job_runs_again_with_a_fresh_log(queue.as_ref()).await;
    bad_names_and_unknown_jobs_are_refused(queue.as_ref()).await;
    claim_many_takes_the_oldest_up_to_its_max(queue.as_ref()).await;
    jobs_with_secrets_wait_for_a_worker_that_can_open_them(queue.as_ref()).await;
    concurrent_claims_take_each_job_once(queue.clone()).await;
    concurrent_batch_claims_take_each_job_once(queue).await;
}

async fn claim_many_takes_the_oldest_up_to_its_max(queue: &dyn JobQueue) {
    let mut ids = Vec::new();
    for index in 0..3 {
        ids.push(
            queue
                .submit(spec("batch", &format!("job {index}")))
                .await
                .unwrap(),
        );
    }
    let first = queue
        .claim_many("batch", "w1", LEASE, 2, true)
        .await
        .unwrap();
    let taken: Vec<JobId> = first.iter().map(|(job, _)| job.id).collect();
    assert_eq!(taken, ids[..2]);
    for (job, attempt) in &first {
        assert_eq!(job.state, JobState::Received);
        assert_eq!(
            *attempt,
            Attempt {
                job: job.id,
                number: 1
            }
        );
    }
    let rest = queue
        .claim_many("batch", "w2", LEASE, 5, true)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].0.id, ids[2]);
    assert!(
        queue
            .claim_many("batch", "w3", LEASE, 5, true)
            .await
            .unwrap()
            .is_empty()
    );
    for (_, attempt) in first.into_iter().chain(rest) {
        queue
            .finish(attempt, outcome(JobState::Passed, Some(0)))
            .await
            .unwrap();
    }
}

async fn jobs_with_secrets_wait_for_a_worker_that_can_open_them(queue: &dyn JobQueue) {
    let sealed = JobSpec {
        secret_env: Some(crate::jobs::SealedEnv {
            salt: "cairn-v1:salt:check".to_owned(),
            values: BTreeMap::from([("TOKEN".to_owned(), "v1:sealed".to_owned())]),
        }),
        ..spec("secrets", "uses $TOKEN")
    };
    let with_secret = queue.submit(sealed).await.unwrap();
    let plain = queue.submit(spec("secrets", "plain")).await.unwrap();
    // Passed over, not taken: the newer plain job is claimed, the older one stays queued.
    let taken = queue
        .claim_many("secrets", "no-passphrase", LEASE, 5, false)
        .await
        .unwrap();
    let ids: Vec<JobId> = taken.iter().map(|(job, _)| job.id).collect();
    assert_eq!(ids, [plain]);
    let waiting = queue.job(with_secret).await.unwrap().unwrap();
    assert_eq!((waiting.state, waiting.attempt), (JobState::Queued, 0));
    let taken = queue
        .claim_many("secrets", "has-passphrase", LEASE, 5, true)
        .await
        .unwrap();
    let ids: Vec<JobId> = taken.iter().map(|(job, _)| job.id).collect();
    assert_eq!(ids, [with_secret]);
    for (_, attempt) in taken {
        queue
            .finish(attempt, outcome(JobState::Passed, Some(0)))
            .await
            .unwrap();
    }
}

async fn concurrent_batch_claims_take_each_job_once(queue: Arc<dyn JobQueue>) {
    const JOBS: usize = 40;
    let mut submitted = HashSet::new();
    for index in 0..JOBS {
        submitted.insert(
            queue
                .submit(spec("race-batch", &format!("job {index}")))
                .await
                .unwrap(),
        );
    }
    let mut workers = Vec::new();
    for worker in 0..4 {
        let queue = queue.clone();
        workers.push(tokio::spawn(async move {
            let mut taken = Vec::new();
            loop {
                let claimed = queue
                    .claim_many("race-batch", &format!("w{worker}"), LEASE, 3, true)
                    .await
                    .unwrap();
                if claimed.is_empty() {
                    return taken;
                }
                for (job, attempt) in claimed {
                    queue
                        .finish(attempt, outcome(JobState::Passed, Some(0)))
                        .await
                        .unwrap();
                    taken.push(job.id);
                }
            }
        }));
    }
    let mut taken = Vec::new();
    for worker in workers {
        taken.extend(worker.await.unwrap());
    }
    assert_eq!(taken.len(), JOBS, "a job was claimed twice or not at all");
    assert_eq!(taken.into_iter().collect::<HashSet<_>>(), submitted);
}

async fn a_job_goes_from_queued_to_passed_with_its_log(queue: &dyn JobQueue) {
    let id = queue.submit(spec("flow", "echo hi")).await.unwrap();
    let job = queue.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.spec, spec("flow", "echo hi"));
    assert_eq!(job.attempt, 0);

    let (claimed, attempt) = queue.claim("flow", "w1", LEASE).await.unwrap().unwrap();
    assert_eq!(claimed.id, id);
    assert_eq!(claimed.state, JobState::Received);
    assert_eq!(claimed.worker.as_deref(), Some("w1"));
    assert_eq!(attempt, Attempt { job: id, number: 1 });
    assert!(queue.claim("flow", "w2", LEASE).await.unwrap().is_none());

    queue.start(attempt).await.unwrap();
    let started = queue.job(id).await.unwrap().unwrap();
    assert_eq!(started.state, JobState::Started);
    assert!(started.started_ms.is_some());
    queue.append_log(attempt, b"hello ").await.unwrap();
    queue.append_log(attempt, b"world\n").await.unwrap();
    assert_eq!(queue.logs(id, 0).await.unwrap(), b"hello world\n");
    assert_eq!(queue.logs(id, 6).await.unwrap(), b"world\n");
    assert_eq!(queue.logs(id, 100).await.unwrap(), b"");
    let beat = queue.heartbeat(attempt, LEASE).await.unwrap();
    assert!(!beat.cancel_requested);

    queue
        .finish(attempt, outcome(JobState::Passed, Some(0)))
        .await
        .unwrap();
    let done = queue.job(id).await.unwrap().unwrap();
    assert_eq!(done.state, JobState::Passed);
    assert_eq!(done.exit_code, Some(0));
    assert!(done.finished_ms.is_some());
    // Finished: the attempt writes nothing more, and an outcome must be final.
    assert!(is_stale(queue.append_log(attempt, b"late").await));
    assert!(is_stale(
        queue
            .finish(attempt, outcome(JobState::Failed, Some(1)))
            .await
    ));
    assert_eq!(queue.logs(id, 0).await.unwrap(), b"hello world\n");
    let listed = queue.list(Some("flow"), None).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
    assert!(
        queue
            .list(Some("flow"), Some(JobState::Queued))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn claims_take_the_oldest_job_of_their_own_queue(queue: &dyn JobQueue) {
    let first = queue.submit(spec("order-a", "1")).await.unwrap();
    let other = queue.submit(spec("order-b", "x")).await.unwrap();
    let second = queue.submit(spec("order-a", "2")).await.unwrap();
    assert!(first < other && other < second);
    let (job, _) = queue.claim("order-a", "w", LEASE).await.unwrap().unwrap();
    assert_eq!(job.id, first);
    let (job, _) = queue.claim("order-a", "w", LEASE).await.unwrap().unwrap();
    assert_eq!(job.id, second);
    assert!(queue.claim("order-a", "w", LEASE).await.unwrap().is_none());
    let (job, _) = queue.claim("order-b", "w", LEASE).await.unwrap().unwrap();
    assert_eq!(job.id, other);
    // Waiting on a queue with work returns at once.
    queue.submit(spec("order-a", "3")).await.unwrap();
    let waited = std::time::Instant::now();
    queue
        .wait_for_work("order-a", Duration::from_secs(10))
        .await
        .unwrap();
    assert!(waited.elapsed() < Duration::from_secs(5));
}

async fn an_expired_lease_requeues_and_fences_the_old_attempt(queue: &dyn JobQueue) {
    let id = queue.submit(spec("lease", "sleep")).await.unwrap();
    let (_, old) = queue
        .claim("lease", "doomed", Duration::from_millis(1))
        .await
        .unwrap()
        .unwrap();
    queue.start(old).await.unwrap();
    queue.append_log(old, b"first try\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let rescued = queue.rescue(Duration::from_secs(30)).await.unwrap();
    assert!(rescued.requeued.contains(&id), "{rescued:?}");
    let job = queue.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.infra_failures, 1);
    assert!(job.reason.unwrap().contains("doomed"));

    // The old attempt can write nothing more, whatever it tries.
    assert!(is_stale(queue.heartbeat(old, LEASE).await));
    assert!(is_stale(queue.append_log(old, b"zombie").await));
    assert!(is_stale(queue.start(old).await));
    assert!(is_stale(
        queue.finish(old, outcome(JobState::Passed, Some(0))).await
    ));
    assert!(is_stale(queue.requeue(old, "again", true).await));

    let (_, new) = queue.claim("lease", "w2", LEASE).await.unwrap().unwrap();
    assert_eq!(new.number, 2);
    // The old attempt stays fenced while the new one holds the job.
    assert!(is_stale(queue.append_log(old, b"zombie").await));
    queue.start(new).await.unwrap();
    assert_eq!(queue.logs(id, 0).await.unwrap(), b"", "a new attempt's log");
    queue
        .finish(new, outcome(JobState::Failed, Some(3)))
        .await
        .unwrap();
    let job = queue.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.exit_code, Some(3));
    // A lease still running is left alone.
    let kept = queue.submit(spec("lease", "kept")).await.unwrap();
    let (_, attempt) = queue.claim("lease", "w3", LEASE).await.unwrap().unwrap();
    let rescued = queue.rescue(Duration::from_secs(30)).await.unwrap();
    assert!(!rescued.requeued.contains(&kept) && !rescued.errored.contains(&kept));
    queue.heartbeat(attempt, LEASE).await.unwrap();
}

async fn infrastructure_failures_use_up_retries_and_draining_does_not(queue: &dyn JobQueue) {
    let id = queue.submit(spec("infra", "x")).await.unwrap(); // retries: 1
    // A drain gives the job back without using a retry, however often.
    for _ in 0..3 {
        let (_, attempt) = queue.claim("infra", "w", LEASE).await.unwrap().unwrap();
        let state = queue.requeue(attempt, "draining", false).await.unwrap();
        assert_eq!(state, JobState::Queued);
    }
    let (_, attempt) = queue.claim("infra", "w", LEASE).await.unwrap().unwrap();
    assert_eq!(
        queue
            .requeue(attempt, "the instance did not start", true)
            .await
            .unwrap(),
        JobState::Queued
    );
    let (_, attempt) = queue.claim("infra", "w", LEASE).await.unwrap().unwrap();
    assert_eq!(attempt.number, 5);
    assert_eq!(
        queue
            .requeue(attempt, "the instance did not start", true)
            .await
            .unwrap(),
        JobState::Errored
    );
    let job = queue.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Errored);
    assert!(job.reason.unwrap().contains("the instance did not start"));
    assert!(job.exit_code.is_none(), "never the script's failure");
    assert!(queue.claim("infra", "w", LEASE).await.unwrap().is_none());
}

async fn a_job_past_its_timeout_is_ended_by_the_queue(queue: &dyn JobQueue) {
    // A started job with an absurd timeout never stops the rescue of the others.
    let mut endless = spec("timeout", "sleep");
    endless.timeout_seconds = u64::MAX;
    queue.submit(endless).await.unwrap();
    let (_, attempt) = queue.claim("timeout", "w", LEASE).await.unwrap().unwrap();
    queue.start(attempt).await.unwrap();
    queue.rescue(Duration::ZERO).await.unwrap();

    let mut quick = spec("timeout", "sleep 1000");
    quick.timeout_seconds = 0;
    let id = queue.submit(quick).await.unwrap();
    let (_, attempt) = queue
        .claim("timeout", "frozen", LEASE)
        .await
        .unwrap()
        .unwrap();
    queue.start(attempt).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Still within the grace: left to its worker.
    let rescued = queue.rescue(Duration::from_secs(30)).await.unwrap();
    assert!(!rescued.errored.contains(&id));
    let rescued = queue.rescue(Duration::from_millis(10)).await.unwrap();
    assert!(rescued.errored.contains(&id), "{rescued:?}");
    let job = queue.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Errored);
    assert!(job.reason.unwrap().contains("timeout"));
    assert!(is_stale(queue.heartbeat(attempt, LEASE).await));
}

async fn cancel_ends_queued_jobs_and_asks_workers_to_stop_claimed_ones(queue: &dyn JobQueue) {
    let waiting = queue.submit(spec("cancel", "a")).await.unwrap();
    assert_eq!(queue.cancel(waiting).await.unwrap(), JobState::Cancelled);
    assert!(queue.claim("cancel", "w", LEASE).await.unwrap().is_none());

    let running = queue.submit(spec("cancel", "b")).await.unwrap();
    let (_, attempt) = queue.claim("cancel", "w", LEASE).await.unwrap().unwrap();
    queue.start(attempt).await.unwrap();
    assert_eq!(queue.cancel(running).await.unwrap(), JobState::Started);
    assert!(
        queue
            .heartbeat(attempt, LEASE)
            .await
            .unwrap()
            .cancel_requested
    );
    queue
        .finish(attempt, outcome(JobState::Cancelled, None))
        .await
        .unwrap();
    assert_eq!(
        queue.job(running).await.unwrap().unwrap().state,
        JobState::Cancelled
    );
    // Cancelling a finished job changes nothing.
    assert_eq!(queue.cancel(running).await.unwrap(), JobState::Cancelled);

    // A job whose worker died after a cancel is not run again.
    let orphan = queue.submit(spec("cancel", "c")).await.unwrap();
    queue
        .claim("cancel", "dies", Duration::from_millis(1))
        .await
        .unwrap()
        .unwrap();
    queue.cancel(orphan).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    queue.rescue(Duration::from_secs(30)).await.unwrap();
    assert_eq!(
        queue.job(orphan).await.unwrap().unwrap().state,
        JobState::Cancelled
    );
}

async fn a_restarted_job_runs_again_with_a_fresh_log(queue: &dyn JobQueue) {
    let id = queue.submit(spec("restart", "x")).await.unwrap();
    let (_, attempt) = queue.claim("restart", "w", LEASE).await.unwrap().unwrap();
    assert!(matches!(queue.restart(id).await, Err(JobError::Invalid(_))));
    queue.start(attempt).await.unwrap();
    queue.append_log(attempt, b"one").await.unwrap();
    queue
        .finish(attempt, outcome(JobState::Failed, Some(1)))
        .await
        .unwrap();
    queue.restart(id).await.unwrap();
    let job = queue.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.exit_code, None);
    let (_, again) = queue.claim("restart", "w", LEASE).await.unwrap().unwrap();
    assert_eq!(again.number, 2);
    assert!(is_stale(queue.append_log(attempt, b"old").await));
    queue.start(again).await.unwrap();
    queue.append_log(again, b"two").await.unwrap();
    assert_eq!(queue.logs(id, 0).await.unwrap(), b"two");
}

async fn bad_names_and_unknown_jobs_are_refused(queue: &dyn JobQueue) {
    for name in ["", "..", ".hidden", "a/b", "a b", &"q".repeat(101)] {
        assert!(
            matches!(
                queue.submit(spec(name, "x")).await,
                Err(JobError::Invalid(_))
            ),
            "`{name}` was accepted"
        );
        assert!(matches!(
            queue.claim(name, "w", LEASE).await,
            Err(JobError::Invalid(_))
        ));
    }
    assert!(queue.job(999_999).await.unwrap().is_none());
    assert!(matches!(
        queue.cancel(999_999).await,
        Err(JobError::NotFound(999_999))
    ));
    assert!(matches!(
        queue.logs(999_999, 0).await,
        Err(JobError::NotFound(999_999))
    ));
}

async fn concurrent_claims_take_each_job_once(queue: Arc<dyn JobQueue>) {
    const JOBS: usize = 40;
    let mut submitted = HashSet::new();
    for index in 0..JOBS {
        submitted.insert(
            queue
                .submit(spec("race", &format!("job {index}")))
                .await
                .unwrap(),
        );
    }
    let mut workers = Vec::new();
    for worker in 0..6 {
        let queue = queue.clone();
        workers.push(tokio::spawn(async move {
            let mut taken = Vec::new();
            while let Some((job, attempt)) = queue
                .claim("race", &format!("w{worker}"), LEASE)
                .await
                .unwrap()
            {
                queue
                    .finish(attempt, outcome(JobState::Passed, Some(0)))
                    .await
                    .unwrap();
                taken.push(job.id);
            }
            taken
        }));
    }
    let mut taken = Vec::new();
    for worker in workers {
        taken.extend(worker.await.unwrap());
    }
    assert_eq!(taken.len(), JOBS, "a job was claimed twice or not at all");
    assert_eq!(taken.into_iter().collect::<HashSet<_>>(), submitted);
}
