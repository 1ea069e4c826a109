//! `cairn-bench --jobs`: the job queue and its workers on a throwaway PostgreSQL cluster (fsync
//! on), in this process: the latency from `submit` to a worker's claim with an idle worker
//! (waiting on LISTEN), and the throughput of no-op jobs on the `fake` driver through four
//! workers, each with its own connections, as four machines would have.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use cairn_backend_postgres::PostgresBackend;
use cairn_backend_postgres::test_cluster::TestCluster;
use cairn_compute::DriverRegistry;
use cairn_run::worker::{WorkerControl, WorkerEvent, WorkerOptions, work};
use cairn_state::jobs::{JobId, JobQueue, JobSpec, JobState};

fn no_op(queue: &str) -> JobSpec {
    JobSpec {
        queue: queue.to_owned(),
        script: "true\n".to_owned(),
        driver: "fake".to_owned(),
        settings: BTreeMap::new(),
        image: None,
        env: BTreeMap::new(),
        timeout_seconds: 600,
        log_silence_seconds: 600,
        max_log_bytes: 4_500_000,
        retries: 2,
        secret_env: None,
    }
}

type Claims = Arc<Mutex<BTreeMap<JobId, Instant>>>;

/// How many jobs the workers finished (counted from their events, so that watching costs the
/// database nothing).
type Finished = Arc<std::sync::atomic::AtomicUsize>;

/// Starts a worker on its own connection; its claims are timed in `claims`.
async fn start_worker(
    url: &str,
    name: &str,
    queue: &str,
    concurrency: usize,
    run_dir: &std::path::Path,
    claims: Claims,
    finished: Finished,
) -> anyhow::Result<(WorkerControl, tokio::task::JoinHandle<()>)> {
    let backend = PostgresBackend::connect(url).await?;
    let jobs: Arc<dyn JobQueue> = Arc::new(backend.job_queue());
    let mut options = WorkerOptions::new(name, queue, run_dir.join(name));
    options.concurrency = concurrency;
    let control = WorkerControl::default();
    let events = Arc::new(move |event: WorkerEvent| match event {
        WorkerEvent::Claimed { attempt, .. } => {
            claims
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(attempt.job, Instant::now());
        }
        WorkerEvent::Finished { .. } => {
            finished.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        _ => {}
    });
    let handle = tokio::spawn({
        let control = control.clone();
        async move {
            let _ = work(
                jobs,
                Arc::new(DriverRegistry::builtin()),
                options,
                control,
                events,
            )
            .await;
        }
    });
    Ok((control, handle))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

pub fn run(quick: bool) -> anyhow::Result<()> {
    let cluster = TestCluster::start_with(true)
        .map_err(|error| anyhow::anyhow!("starting PostgreSQL: {error}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let url = cluster
            .new_database()
            .await
            .map_err(|error| anyhow::anyhow!(error))?;
        let run_dir = tempfile::tempdir()?;
        let submitter = PostgresBackend::connect(&url).await?.job_queue();

        // Latency: one idle worker; each job is submitted once the previous one was claimed.
        let claims: Claims = Arc::default();
        let (control, worker) = start_worker(
            &url,
            "latency",
            "latency",
            1,
            run_dir.path(),
            claims.clone(),
            Finished::default(),
        )
        .await?;
        let samples = if quick { 20 } else { 200 };
        let mut latencies = Vec::new();
        for _ in 0..samples {
            tokio::time::sleep(Duration::from_millis(20)).await; // the worker is idle again
            let submitted = Instant::now();
            let id = submitter.submit(no_op("latency")).await?;
            let claimed = loop {
                if let Some(at) = claims.lock().unwrap_or_else(|e| e.into_inner()).get(&id) {
                    break *at;
                }
                tokio::time::sleep(Duration::from_micros(200)).await;
            };
            latencies.push(claimed.duration_since(submitted).as_secs_f64() * 1000.0);
        }
        control.drain.cancel();
        worker.await.context("the latency worker")?;
        latencies.sort_by(f64::total_cmp);

        // Throughput: four workers, the queue filled first.
        let n_jobs = if quick { 400 } else { 4_000 };
        for _ in 0..n_jobs {
            submitter.submit(no_op("throughput")).await?;
        }
        let claims: Claims = Arc::default();
        let finished = Finished::default();
        let started = Instant::now();
        let mut workers = Vec::new();
        for index in 0..4 {
            workers.push(
                start_worker(
                    &url,
                    &format!("w{index}"),
                    "throughput",
                    8,
                    run_dir.path(),
                    claims.clone(),
                    finished.clone(),
                )
                .await?,
            );
        }
        while finished.load(std::sync::atomic::Ordering::Relaxed) < n_jobs {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let seconds = started.elapsed().as_secs_f64();
        for (control, _) in &workers {
            control.drain.cancel();
        }
        for (_, handle) in workers {
            handle.await.context("a throughput worker")?;
        }
        let jobs = submitter.list(Some("throughput"), None).await?;
        let passed = jobs
            .iter()
            .filter(|job| job.state == JobState::Passed)
            .count();
        let throughput = n_jobs as f64 / seconds;
        println!(
            "submit → claim, idle worker on postgres ({samples} jobs): p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.95),
            percentile(&latencies, 1.0),
        );
        println!(
            "no-op jobs on the fake driver, 4 workers × 8, one PostgreSQL: {n_jobs} in {seconds:.2} s = {throughput:.0} jobs/s ({passed} passed)"
        );
        let json = serde_json::json!({
            "latencyMs": {
                "p50": percentile(&latencies, 0.5),
                "p95": percentile(&latencies, 0.95),
                "max": percentile(&latencies, 1.0),
            },
            "throughput": { "jobs": n_jobs, "seconds": seconds, "jobsPerSecond": throughput, "passed": passed },
        });
        println!("{json}");
        Ok(())
    })
}
