//! `cairn-bench --backends`: the same `up` on `file://` and on `postgres://` (a throwaway
//! PostgreSQL cluster started here, fsync on), and 20 stacks of one PostgreSQL backend updated
//! at once by 20 processes.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use cairn_backend_postgres::test_cluster::TestCluster;

/// Times `cairn up` of `n_resources` independent fake resources on the backend at `url`
/// (`None`: a fresh `file://` home), from empty.
fn time_up(cairn: &Path, url: Option<&str>, n_resources: usize) -> anyhow::Result<f64> {
    let root = tempfile::tempdir()?;
    let project = root.path().join("project");
    std::fs::create_dir_all(&project)?;
    let scenario = crate::Scenario {
        shape: crate::Shape::Independent,
        n_resources,
        latency_ms: 0,
        parallel: 64,
    };
    std::fs::write(project.join("Cairn.yaml"), crate::generate(&scenario, 0))?;
    let run = |args: &[&str]| -> anyhow::Result<f64> {
        let mut command = Command::new(cairn);
        command
            .args(args)
            .current_dir(&project)
            .env("CAIRN_HOME", root.path().join("home"))
            .env("CAIRN_CONFIG_PASSPHRASE", "bench");
        if let Some(url) = url {
            command.env("CAIRN_BACKEND_URL", url);
        }
        let started = Instant::now();
        let output = command.output().context("running cairn")?;
        if !output.status.success() {
            bail!(
                "`cairn {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(started.elapsed().as_secs_f64())
    };
    // Each run gets a stack of its own name, so runs on one database do not meet.
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let stack = format!(
        "bench{}",
        RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    run(&["stack", "init", &stack])?;
    run(&["up", "--yes", "--skip-preview", "-s", &stack])
}

pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// 20 processes, each updating a stack of its own, all at once.
fn concurrent_stacks(
    cairn: &Path,
    url: &str,
    n_stacks: usize,
    n_resources: usize,
) -> anyhow::Result<(f64, usize, Vec<String>)> {
    let root = tempfile::tempdir()?;
    let project = root.path().join("project");
    std::fs::create_dir_all(&project)?;
    let scenario = crate::Scenario {
        shape: crate::Shape::Independent,
        n_resources,
        latency_ms: 0,
        parallel: 64,
    };
    std::fs::write(project.join("Cairn.yaml"), crate::generate(&scenario, 0))?;
    let command = |args: &[&str]| {
        let mut command = Command::new(cairn);
        command
            .args(args)
            .current_dir(&project)
            .env("CAIRN_HOME", root.path().join("home"))
            .env("CAIRN_CONFIG_PASSPHRASE", "bench")
            .env("CAIRN_BACKEND_URL", url);
        command
    };
    for index in 0..n_stacks {
        let status = command(&["stack", "init", &format!("s{index}")]).output()?;
        if !status.status.success() {
            bail!(
                "stack init failed: {}",
                String::from_utf8_lossy(&status.stderr)
            );
        }
    }
    let started = Instant::now();
    let children: Vec<_> = (0..n_stacks)
        .map(|index| {
            command(&["up", "--yes", "--skip-preview", "-s", &format!("s{index}")])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    let mut failures = Vec::new();
    let mut succeeded = 0;
    for child in children {
        let output = child.wait_with_output()?;
        if output.status.success() {
            succeeded += 1;
        } else {
            failures.push(String::from_utf8_lossy(&output.stderr).into_owned());
        }
    }
    Ok((started.elapsed().as_secs_f64(), succeeded, failures))
}

pub fn run(cairn: &Path, quick: bool) -> anyhow::Result<()> {
    let cluster = TestCluster::start_with(true).map_err(|error| anyhow::anyhow!(error))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let url = runtime
        .block_on(cluster.new_database())
        .map_err(|error| anyhow::anyhow!(error))?;
    let n_resources = if quick { 1_000 } else { 10_000 };
    let runs = if quick { 1 } else { 3 };
    let file = median(
        (0..runs)
            .map(|_| time_up(cairn, None, n_resources))
            .collect::<anyhow::Result<_>>()?,
    );
    let postgres = median(
        (0..runs)
            .map(|_| time_up(cairn, Some(&url), n_resources))
            .collect::<anyhow::Result<_>>()?,
    );
    println!(
        "up of {n_resources} resources: file:// {file:.2} s, postgres:// {postgres:.2} s ({:.2}x)",
        postgres / file
    );
    let (seconds, succeeded, failures) = concurrent_stacks(cairn, &url, 20, 200)?;
    println!(
        "20 stacks of 200 resources updated by 20 processes at once: {seconds:.2} s, {succeeded} succeeded, {} failed",
        failures.len()
    );
    for failure in &failures {
        println!("  failure: {failure}");
    }
    println!(
        "{}",
        serde_json::json!({
            "resources": n_resources,
            "fileUpSeconds": file,
            "postgresUpSeconds": postgres,
            "ratio": postgres / file,
            "concurrentStacks": 20,
            "concurrentSeconds": seconds,
            "concurrentSucceeded": succeeded,
            "concurrentFailures": failures.len(),
        })
    );
    if !failures.is_empty() {
        bail!("{} concurrent updates failed", failures.len());
    }
    Ok(())
}
