//! Workers on a `file://` job queue, running real scripts on the `process` driver (and the
//! `fake` driver's error injection for infrastructure failures): outcomes, logs, cancel,
//! retries and draining. Each test has its own backend directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_backend_file::FileJobQueue;
use cairn_compute::DriverRegistry;
use cairn_run::worker::{WorkerControl, WorkerEvent, WorkerOptions, work};
use cairn_state::jobs::{JobId, JobQueue, JobSpec, JobState};

struct Setup {
    dir: tempfile::TempDir,
    queue: Arc<dyn JobQueue>,
    events: Arc<Mutex<Vec<WorkerEvent>>>,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let queue: Arc<dyn JobQueue> = Arc::new(FileJobQueue::open(dir.path()).unwrap());
    Setup {
        dir,
        queue,
        events: Arc::default(),
    }
}

fn spec(driver: &str, script: &str) -> JobSpec {
    JobSpec {
        queue: "default".to_owned(),
        script: script.to_owned(),
        driver: driver.to_owned(),
        settings: BTreeMap::new(),
        image: None,
        env: BTreeMap::from([("GREETING".to_owned(), "hello".to_owned())]),
        timeout_seconds: 60,
        log_silence_seconds: 60,
        max_log_bytes: 4_500_000,
        retries: 1,
        secret_env: None,
    }
}

impl Setup {
    fn options(&self, concurrency: usize) -> WorkerOptions {
        let mut options = WorkerOptions::new("test-worker", "default", self.dir.path().join("run"));
        options.concurrency = concurrency;
        options.heartbeat = Duration::from_millis(100);
        options.grace = Duration::from_secs(2);
        options
    }

    /// Starts a worker; stop it with the returned control.
    fn start(&self, options: WorkerOptions) -> (WorkerControl, tokio::task::JoinHandle<()>) {
        let control = WorkerControl::default();
        let events = self.events.clone();
        let handle = tokio::spawn({
            let (queue, control) = (self.queue.clone(), control.clone());
            async move {
                work(
                    queue,
                    Arc::new(DriverRegistry::builtin()),
                    options,
                    control,
                    Arc::new(move |event| events.lock().unwrap().push(event)),
                )
                .await
                .unwrap();
            }
        });
        (control, handle)
    }

    async fn wait_for(
        &self,
        id: JobId,
        what: &str,
        done: impl Fn(&cairn_state::jobs::Job) -> bool,
    ) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let job = self.queue.job(id).await.unwrap().unwrap();
            if done(&job) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} never {what}: {job:?}\nevents: {:?}",
                self.events.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn log(&self, id: JobId) -> String {
        String::from_utf8_lossy(&self.queue.logs(id, 0).await.unwrap()).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_pass_and_fail_with_their_logs_and_exit_codes() {
    let setup = setup();
    let passing = setup
        .queue
        .submit(spec(
            "process",
            "echo \"$GREETING from job $CAIRN_JOB_ID, attempt $CAIRN_JOB_ATTEMPT of $CAIRN_JOB_QUEUE\"\n",
        ))
        .await
        .unwrap();
    let failing = setup
        .queue
        .submit(spec("process", "echo broken >&2\nexit 3\n"))
        .await
        .unwrap();
    let (control, worker) = setup.start(setup.options(2));
    for id in [passing, failing] {
        setup
            .wait_for(id, "finished", |job| job.state.is_final())
            .await;
    }
    control.drain.cancel();
    worker.await.unwrap();

    let passed = setup.queue.job(passing).await.unwrap().unwrap();
    assert_eq!(passed.state, JobState::Passed);
    assert_eq!(passed.exit_code, Some(0));
    assert_eq!(passed.worker.as_deref(), Some("test-worker"));
    assert_eq!(
        setup.log(passing).await,
        format!("hello from job {passing}, attempt 1 of default\n")
    );
    let failed = setup.queue.job(failing).await.unwrap().unwrap();
    assert_eq!(failed.state, JobState::Failed);
    assert_eq!(failed.exit_code, Some(3));
    assert_eq!(setup.log(failing).await, "broken\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infrastructure_failure_is_retried_and_never_the_scripts_failure() {
    let setup = setup();
    let mut broken = spec("fake", "true");
    broken
        .settings
        .insert("errorOn".to_owned(), "start".to_owned());
    let id = setup.queue.submit(broken).await.unwrap(); // retries: 1
    let (control, worker) = setup.start(setup.options(1));
    setup
        .wait_for(id, "errored", |job| job.state.is_final())
        .await;
    control.drain.cancel();
    worker.await.unwrap();
    let job = setup.queue.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Errored);
    assert_eq!(job.attempt, 2, "run once more after the first failure");
    assert_eq!(job.exit_code, None);
    assert!(
        job.reason.as_deref().unwrap().contains("no retries left"),
        "{job:?}"
    );
    let requeued = setup
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|event| matches!(event, WorkerEvent::Requeued { .. }))
        .count();
    assert_eq!(requeued, 2);
}

/// Cancel reaches the script within a second (SIGTERM, which this one traps and reports),
/// and the job ends as cancelled once the grace period (2 s here) is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_reaches_the_running_script_within_a_second() {
    let setup = setup();
    let script = "trap 'echo got TERM' TERM\necho started\nwhile true; do sleep 0.05; done\n";
    let id = setup.queue.submit(spec("process", script)).await.unwrap();
    let (control, worker) = setup.start(setup.options(1));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !setup.log(id).await.contains("started") {
        assert!(Instant::now() < deadline, "the job never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cancelled = Instant::now();
    assert_eq!(setup.queue.cancel(id).await.unwrap(), JobState::Started);
    while !setup.log(id).await.contains("got TERM") {
        assert!(
            cancelled.elapsed() < Duration::from_secs(1),
            "the cancel did not reach the script within a second: {:?}",
            setup.log(id).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    setup
        .wait_for(id, "cancelled", |job| job.state.is_final())
        .await;
    assert!(
        cancelled.elapsed() < Duration::from_secs(5),
        "took {:?}",
        cancelled.elapsed()
    );
    control.drain.cancel();
    worker.await.unwrap();
    let job = setup.queue.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_worker_lets_short_jobs_finish_and_gives_long_ones_back() {
    let setup = setup();
    let short = setup
        .queue
        .submit(spec("process", "sleep 0.3\necho done\n"))
        .await
        .unwrap();
    let long = setup
        .queue
        .submit(spec("process", "echo started\nsleep 60\n"))
        .await
        .unwrap();
    let mut options = setup.options(2);
    options.drain_timeout = Duration::from_secs(1);
    let (control, worker) = setup.start(options);
    setup
        .wait_for(long, "started", |job| job.state == JobState::Started)
        .await;
    setup
        .wait_for(short, "started", |job| job.state == JobState::Started)
        .await;
    control.drain.cancel();
    let drained = Instant::now();
    worker.await.unwrap();
    assert!(
        drained.elapsed() < Duration::from_secs(10),
        "{:?}",
        drained.elapsed()
    );

    let short = setup.queue.job(short).await.unwrap().unwrap();
    assert_eq!(short.state, JobState::Passed);
    let long = setup.queue.job(long).await.unwrap().unwrap();
    assert_eq!(long.state, JobState::Queued, "{long:?}");
    assert_eq!(long.infra_failures, 0, "a drain uses no retry");
    // The next worker runs it again.
    assert!(
        setup
            .queue
            .claim("default", "next", Duration::from_secs(10))
            .await
            .unwrap()
            .is_some()
    );
}

/// A worker restarted under its name removes what its earlier life left running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_worker_removes_the_instances_of_its_earlier_life() {
    use cairn_compute::InstanceSpec;
    let setup = setup();
    let options = setup.options(1);
    let mut settings = BTreeMap::new();
    cairn_run::default_settings("process", &options.run_dir, &mut settings);
    let driver = DriverRegistry::builtin()
        .build_from_strings("process", &settings)
        .await
        .unwrap();
    let tags = |worker: &str| {
        BTreeMap::from([(cairn_run::worker::WORKER_TAG.to_owned(), worker.to_owned())])
    };
    let spec = |worker: &str| InstanceSpec {
        properties: serde_json::json!({ "command": ["sleep", "600"] }),
        tags: tags(worker),
        ..InstanceSpec::default()
    };
    driver.provision(spec("test-worker")).await.unwrap();
    let other = driver.provision(spec("another-worker")).await.unwrap();

    let (control, worker) = setup.start(options);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !driver
        .describe(&tags("test-worker"), false)
        .await
        .unwrap()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "the leftover is still there");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    control.drain.cancel();
    worker.await.unwrap();
    // Another worker's instance is not this worker's to remove.
    let left = driver
        .describe(&tags("another-worker"), false)
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    driver
        .destroy(&other, cairn_compute::DestroyReason::Terminate)
        .await
        .unwrap();
    assert!(setup.events.lock().unwrap().iter().any(|event| matches!(
        event,
        WorkerEvent::RemovedLeftover { driver, .. } if driver == "process"
    )));
}

/// Stopped at once (a second signal), a worker gives its running jobs back and returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stopped_now_gives_its_jobs_back_at_once() {
    let setup = setup();
    let id = setup
        .queue
        .submit(spec("process", "echo started\nsleep 60\n"))
        .await
        .unwrap();
    let (control, worker) = setup.start(setup.options(1));
    setup
        .wait_for(id, "started", |job| job.state == JobState::Started)
        .await;
    control.drain.cancel();
    control.now.cancel();
    let stopped = Instant::now();
    worker.await.unwrap();
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "{:?}",
        stopped.elapsed()
    );
    let job = setup.queue.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Queued, "{job:?}");
    assert_eq!(job.infra_failures, 0);
}

/// Every file under `dir`, read as text where it is text.
fn files_containing(dir: &std::path::Path, needle: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if std::fs::read(&path)
            .unwrap_or_default()
            .windows(needle.len())
            .any(|window| window == needle.as_bytes())
        {
            found.push(path);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_variables_are_sealed_in_the_queue_and_masked_in_the_log() {
    let setup = setup();
    let secrets = cairn_run::SecretEnv::new(BTreeMap::from([(
        "TOKEN".to_owned(),
        "hunter2-value".to_owned(),
    )]))
    .unwrap();
    let sealed = cairn_run::secrets::seal("queue-passphrase", &secrets).unwrap();
    let script = "echo \"token=$TOKEN\"\n[ \"${#TOKEN}\" = 13 ] && echo matches\n";
    let with_secret = || JobSpec {
        secret_env: Some(sealed.clone()),
        ..spec("process", script)
    };
    let opened = setup.queue.submit(with_secret()).await.unwrap();
    let mut options = setup.options(1);
    options.passphrase = Some(cairn_run::Passphrase("queue-passphrase".to_owned()));
    let (control, worker) = setup.start(options);
    setup
        .wait_for(opened, "finished", |job| job.state.is_final())
        .await;
    control.drain.cancel();
    worker.await.unwrap();
    let job = setup.queue.job(opened).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Passed, "{job:?}");
    assert_eq!(setup.log(opened).await, "token=[secret]\nmatches\n");

    // A worker without the passphrase never takes it; one with the wrong passphrase gives it
    // back once, without using a retry, and takes no more jobs with secrets. The job waits
    // for a worker that can open it.
    let waiting = setup.queue.submit(with_secret()).await.unwrap();
    let (control, worker) = setup.start(setup.options(1));
    tokio::time::sleep(Duration::from_millis(800)).await;
    control.drain.cancel();
    worker.await.unwrap();
    let job = setup.queue.job(waiting).await.unwrap().unwrap();
    assert_eq!((job.state, job.attempt), (JobState::Queued, 0), "{job:?}");

    let mut wrong = setup.options(1);
    wrong.passphrase = Some(cairn_run::Passphrase("wrong".to_owned()));
    let (control, worker) = setup.start(wrong);
    setup
        .wait_for(waiting, "given back", |job| {
            job.attempt == 1 && job.state == JobState::Queued
        })
        .await;
    let later = setup.queue.submit(with_secret()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    control.drain.cancel();
    worker.await.unwrap();
    let job = setup.queue.job(waiting).await.unwrap().unwrap();
    assert_eq!(job.infra_failures, 0, "{job:?}");
    let job = setup.queue.job(later).await.unwrap().unwrap();
    assert_eq!((job.state, job.attempt), (JobState::Queued, 0), "{job:?}");

    let mut right = setup.options(1);
    right.passphrase = Some(cairn_run::Passphrase("queue-passphrase".to_owned()));
    let (control, worker) = setup.start(right);
    for id in [waiting, later] {
        setup
            .wait_for(id, "finished", |job| job.state.is_final())
            .await;
    }
    control.drain.cancel();
    worker.await.unwrap();
    for id in [waiting, later] {
        let job = setup.queue.job(id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Passed, "{job:?}");
    }

    assert_eq!(
        files_containing(setup.dir.path(), "hunter2"),
        Vec::<std::path::PathBuf>::new()
    );
}

/// A job claimed by a worker that died, with an instance of its run still going: the
/// job's ID, the driver, and the instance's tags.
async fn ghost_claim(
    setup: &Setup,
    retries: u32,
) -> (
    JobId,
    Arc<dyn cairn_compute::InstanceDriver>,
    BTreeMap<String, String>,
    String,
) {
    let id = setup
        .queue
        .submit(JobSpec {
            retries,
            ..spec("process", "echo second attempt\n")
        })
        .await
        .unwrap();
    let (_, ghost) = setup
        .queue
        .claim("default", "ghost", Duration::from_millis(300))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ghost.number, 1);
    let settings = BTreeMap::from([(
        "dir".to_owned(),
        setup
            .dir
            .path()
            .join("run")
            .join("process")
            .display()
            .to_string(),
    )]);
    let driver = DriverRegistry::builtin()
        .build_from_strings("process", &settings)
        .await
        .unwrap();
    let tags = BTreeMap::from([(cairn_run::worker::JOB_TAG.to_owned(), id.to_string())]);
    let leftover = driver
        .provision(cairn_compute::InstanceSpec {
            properties: serde_json::json!({
                "command": ["/bin/sh", "-c", "exec sleep 300"],
                "workingDir": setup.dir.path(),
            }),
            tags: tags.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    (id, driver, tags, leftover)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_attempt_first_removes_what_an_earlier_one_left_running() {
    let setup = setup();
    let (id, driver, tags, leftover) = ghost_claim(&setup, 1).await;
    let (control, worker) = setup.start(setup.options(1));
    setup
        .wait_for(id, "finished", |job| job.state.is_final())
        .await;
    control.drain.cancel();
    worker.await.unwrap();
    let job = setup.queue.job(id).await.unwrap().unwrap();
    assert_eq!((job.state, job.attempt), (JobState::Passed, 2), "{job:?}");
    let left = driver.describe(&tags, false).await.unwrap();
    assert!(
        left.iter().all(|instance| instance.id != leftover),
        "the earlier attempt's instance is still there: {left:?}"
    );
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rescued_job_that_ends_there_has_what_its_worker_left_removed() {
    let setup = setup();
    // No retries: the rescue ends the job as errored; no later attempt will sweep for it.
    let (id, driver, tags, _) = ghost_claim(&setup, 0).await;
    let (control, worker) = setup.start(setup.options(1));
    setup
        .wait_for(id, "errored", |job| job.state.is_final())
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !driver.describe(&tags, false).await.unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the dead worker's instance is still running"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    control.drain.cancel();
    worker.await.unwrap();
    let job = setup.queue.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Errored, "{job:?}");
}
