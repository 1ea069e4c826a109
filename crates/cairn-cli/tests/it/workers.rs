//! `cairn worker` processes running the jobs of `cairn job submit`: outcomes and draining on a
//! `file://` backend, and, on one PostgreSQL, four workers of which one is killed (SIGKILL)
//! and one frozen (SIGSTOP) mid-job: every job ends exactly once, no two attempts of a job
//! overlap (a ledger the scripts append to says so), and nothing is left running.
//!
//! Size: `CAIRN_TORTURE_JOBS` (default 200).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use cairn_state::jobs::{JobQueue, JobSpec};

use crate::support::TestContext;

fn jobs(context: &TestContext) -> Vec<serde_json::Value> {
    let listed = context.cairn(&["job", "ls", "--json"]).success();
    serde_json::from_str::<serde_json::Value>(&listed.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn spawn_worker(context: &TestContext, name: &str, concurrency: usize) -> Child {
    let log = std::fs::File::create(context.root.path().join(format!("{name}.log"))).unwrap();
    context
        .command(&[
            "worker",
            "--name",
            name,
            "--concurrency",
            &concurrency.to_string(),
            "--drain-timeout",
            "20s",
        ])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("starting a worker")
}

fn signal(child: &Child, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {}", child.id());
}

/// Waits for a worker to exit after SIGTERM; its exit code.
fn drain(context: &TestContext, mut worker: Child, name: &str) -> Option<i32> {
    signal(&worker, "TERM");
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        if let Some(status) = worker.try_wait().unwrap() {
            return status.code();
        }
        assert!(
            Instant::now() < deadline,
            "worker {name} did not stop after SIGTERM:\n{}",
            std::fs::read_to_string(context.root.path().join(format!("{name}.log")))
                .unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_for_jobs(
    context: &TestContext,
    what: &str,
    timeout: Duration,
    done: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let listed = jobs(context);
        if done(&listed) {
            return listed;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never happened: {listed:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn is_final(job: &serde_json::Value) -> bool {
    matches!(
        job["state"].as_str(),
        Some("passed" | "failed" | "errored" | "cancelled")
    )
}

#[test]
fn a_worker_runs_submitted_jobs_and_stops_when_told() {
    let context = TestContext::new();
    let passing = context.project().join("pass.sh");
    std::fs::write(&passing, "echo \"job $CAIRN_JOB_ID says $WORD\"\n").unwrap();
    let failing = context.project().join("fail.sh");
    std::fs::write(&failing, "echo failing >&2\nexit 4\n").unwrap();
    for (script, word) in [(&passing, "one"), (&failing, "two"), (&passing, "three")] {
        context
            .cairn(&[
                "job",
                "submit",
                script.to_str().unwrap(),
                "--driver",
                "process",
                "--env",
                &format!("WORD={word}"),
            ])
            .success();
    }
    let worker = spawn_worker(&context, "solo", 2);
    let listed = wait_for_jobs(
        &context,
        "every job finishing",
        Duration::from_secs(60),
        |jobs| jobs.iter().all(is_final),
    );
    assert_eq!(drain(&context, worker, "solo"), Some(0));
    let states: Vec<&str> = listed
        .iter()
        .map(|job| job["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["passed", "failed", "passed"]);
    assert_eq!(listed[1]["exitCode"], 4);
    assert_eq!(
        context.cairn(&["job", "logs", "3"]).success().stdout,
        "job 3 says three\n"
    );
    assert_eq!(
        context.cairn(&["job", "logs", "2"]).success().stdout,
        "failing\n"
    );

    // A script sees its job's variables and not the worker's secrets (the passphrase in the
    // worker's environment, here).
    let env = context.project().join("env.sh");
    std::fs::write(&env, "env\n").unwrap();
    context
        .cairn(&[
            "job",
            "submit",
            env.to_str().unwrap(),
            "--driver",
            "process",
        ])
        .success();
    let worker = spawn_worker(&context, "solo", 1);
    wait_for_jobs(
        &context,
        "the env job finishing",
        Duration::from_secs(60),
        |jobs| jobs.iter().all(is_final),
    );
    assert_eq!(drain(&context, worker, "solo"), Some(0));
    let printed = context.cairn(&["job", "logs", "4"]).success().stdout;
    assert!(printed.contains("CAIRN_JOB_ID=4"), "{printed}");
    assert!(printed.contains("PATH="), "{printed}");
    for secret in [
        "CAIRN_CONFIG_PASSPHRASE",
        crate::support::PASSPHRASE,
        "CAIRN_HOME",
    ] {
        assert!(
            !printed.contains(secret),
            "`{secret}` reached the script:\n{printed}"
        );
    }
}

/// Files under `dir` holding `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<std::path::PathBuf> {
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

#[test]
fn a_jobs_secret_variables_are_sealed_shown_by_name_and_masked() {
    let context = TestContext::new();
    let script = context.project().join("secret.sh");
    std::fs::write(&script, "echo \"token=$TOKEN, key=$KEY\"\n").unwrap();
    let script = script.to_str().unwrap();
    let submit = |args: &[&str], passphrase: bool| {
        let mut command =
            context.command(&[&["job", "submit", script, "--driver", "process"], args].concat());
        command.env("TOKEN", "hunter2-from-env");
        if !passphrase {
            command.env_remove("CAIRN_CONFIG_PASSPHRASE");
        }
        command.output().unwrap()
    };
    // Without a passphrase there is nothing to seal with: refused, nothing queued.
    let refused = submit(&["--secret-env", "TOKEN"], false);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("passphrase"));
    for bad in ["1BAD=x", "NOT_SET_ANYWHERE"] {
        let refused = submit(&["--secret-env", bad], true);
        assert_eq!(refused.status.code(), Some(2), "{bad}: {refused:?}");
    }
    assert!(jobs(&context).is_empty());

    let queued = submit(
        &[
            "--secret-env",
            "TOKEN",
            "--secret-env",
            "KEY=k3y-on-the-line",
        ],
        true,
    );
    assert!(queued.status.success(), "{queued:?}");
    let shown = context
        .cairn(&["job", "show", "1", "--json"])
        .success()
        .stdout;
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["secretEnv"], serde_json::json!(["KEY", "TOKEN"]));
    let text = context.cairn(&["job", "show", "1"]).success().stdout;
    assert!(text.contains("KEY TOKEN (sealed)"), "{text}");

    let worker = spawn_worker(&context, "sealed", 1);
    wait_for_jobs(
        &context,
        "the job finishing",
        Duration::from_secs(60),
        |jobs| jobs.iter().all(is_final),
    );
    assert_eq!(drain(&context, worker, "sealed"), Some(0));
    assert_eq!(jobs(&context)[0]["state"], "passed");
    assert_eq!(
        context.cairn(&["job", "logs", "1"]).success().stdout,
        "token=[secret], key=[secret]\n"
    );
    for secret in ["hunter2-from-env", "k3y-on-the-line"] {
        assert_eq!(
            files_containing(context.root.path(), secret),
            Vec::<std::path::PathBuf>::new()
        );
    }
}

const LEDGER_SCRIPT: &str = "\
echo \"start $CAIRN_JOB_ID $CAIRN_JOB_ATTEMPT $(date +%s%N)\" >> \"$LEDGER\"
sleep 0.$((CAIRN_JOB_ID % 4 + 1))
echo \"end $CAIRN_JOB_ID $CAIRN_JOB_ATTEMPT $(date +%s%N)\" >> \"$LEDGER\"
";

/// When an attempt started and ended (nanoseconds), as far as the ledger says.
type Span = (Option<u128>, Option<u128>);

/// Per job and attempt, its span, from the ledger.
fn read_ledger(path: &Path) -> BTreeMap<u64, BTreeMap<u64, Span>> {
    let mut attempts: BTreeMap<u64, BTreeMap<u64, Span>> = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let [what, job, attempt, at] = fields[..] else {
            panic!("a torn ledger line: {line:?}");
        };
        let entry = attempts
            .entry(job.parse().unwrap())
            .or_default()
            .entry(attempt.parse().unwrap())
            .or_default();
        let at: u128 = at.parse().unwrap();
        match what {
            "start" => entry.0 = Some(at),
            "end" => entry.1 = Some(at),
            other => panic!("a ledger line of `{other}`"),
        }
    }
    attempts
}

#[test]
fn torture_killed_and_frozen_workers_lose_no_job_and_run_none_twice_at_once() {
    let n_jobs: u64 = std::env::var("CAIRN_TORTURE_JOBS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(200);
    let cluster =
        cairn_backend_postgres::test_cluster::TestCluster::start().unwrap_or_else(|error| {
            panic!("this test needs PostgreSQL and it could not start: {error}")
        });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = runtime.block_on(cluster.new_database()).unwrap();
    let context = TestContext::new();
    context.cairn(&["login", &url]).success();
    let ledger = context.root.path().join("ledger");
    let queue = runtime
        .block_on(cairn_backend_postgres::PostgresBackend::connect(&url))
        .unwrap()
        .job_queue();
    for _ in 0..n_jobs {
        let spec = JobSpec {
            queue: "default".to_owned(),
            script: LEDGER_SCRIPT.to_owned(),
            driver: "process".to_owned(),
            settings: BTreeMap::new(),
            image: None,
            env: BTreeMap::from([("LEDGER".to_owned(), ledger.display().to_string())]),
            timeout_seconds: 300,
            log_silence_seconds: 300,
            max_log_bytes: 4_500_000,
            retries: 2,
            secret_env: None,
        };
        runtime.block_on(queue.submit(spec)).unwrap();
    }

    let mut workers: Vec<(String, Child)> = (0..4)
        .map(|index| {
            let name = format!("w{index}");
            let child = spawn_worker(&context, &name, 2);
            (name, child)
        })
        .collect();
    // Mid-run, with jobs in flight everywhere: one worker is killed, one frozen.
    let ended = |count: usize| {
        std::fs::read_to_string(&ledger)
            .unwrap_or_default()
            .matches("end ")
            .count()
            >= count
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ended(n_jobs as usize / 4) {
        assert!(Instant::now() < deadline, "the workers made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (killed_name, mut killed) = workers.remove(0);
    signal(&killed, "KILL");
    killed.wait().unwrap();
    let (frozen_name, frozen) = workers.remove(0);
    signal(&frozen, "STOP");

    // The others finish everything, the jobs of the two included (once their leases run out).
    let listed = wait_for_jobs(
        &context,
        "every job finishing",
        Duration::from_secs(180),
        |jobs| jobs.len() == n_jobs as usize && jobs.iter().all(is_final),
    );
    // The frozen worker wakes to find its jobs gone: it stops their runs and records nothing.
    signal(&frozen, "CONT");
    workers.push((frozen_name, frozen));
    // The killed one, restarted under its name, removes what it left running.
    workers.push((killed_name.clone(), spawn_worker(&context, &killed_name, 1)));
    std::thread::sleep(Duration::from_secs(3));
    for (name, worker) in workers {
        assert_eq!(drain(&context, worker, &name), Some(0), "worker {name}");
    }

    for job in &listed {
        assert_eq!(job["state"], "passed", "{job:#}");
    }
    let ledger = read_ledger(&ledger);
    assert_eq!(ledger.len(), n_jobs as usize, "every job ran");
    let mut rerun = 0;
    for job in &listed {
        let id = job["id"].as_u64().unwrap();
        let attempts = &ledger[&id];
        let mut spans: Vec<(u128, u128)> = Vec::new();
        for (attempt, (start, end)) in attempts {
            let start = start.unwrap_or_else(|| panic!("job {id} attempt {attempt}: no start"));
            // An attempt cut short by a killed worker may have no end; it may not overlap
            // the next one either way.
            spans.push((start, end.unwrap_or(u128::MAX)));
        }
        // In time order: a worker frozen after its claim was checked may, once woken, still
        // run its script after a later attempt finished (its result is refused); what may
        // never happen is two attempts running at once.
        spans.sort_unstable();
        for pair in spans.windows(2) {
            assert!(
                pair[0].1 <= pair[1].0,
                "job {id}: two attempts overlapped: {attempts:?}"
            );
        }
        let last = job["attempt"].as_u64().unwrap();
        assert!(
            matches!(attempts.get(&last), Some((Some(_), Some(_)))),
            "job {id}: its final attempt {last} is not complete in the ledger: {attempts:?}"
        );
        rerun += usize::from(attempts.len() > 1);
    }
    assert!(
        rerun > 0,
        "the killed and frozen workers had jobs in flight"
    );
    // Nothing is left running: no process instance of any worker.
    let driver = runtime
        .block_on(cairn_compute::DriverRegistry::builtin().build_from_strings(
            "process",
            &BTreeMap::from([(
                "dir".to_owned(),
                context.home().join("run/process").display().to_string(),
            )]),
        ))
        .unwrap();
    let left = runtime
        .block_on(driver.describe(&BTreeMap::new(), false))
        .unwrap();
    assert!(left.is_empty(), "instances left running: {left:?}");
}

/// Two live workers may not share a name (the second would remove the first one's
/// instances as leftovers); names are checked like other names.
#[test]
fn a_second_live_worker_of_the_same_name_is_refused() {
    let context = TestContext::new();
    let long = context.project().join("long.sh");
    std::fs::write(&long, "echo started\nsleep 60\n").unwrap();
    context
        .cairn(&[
            "job",
            "submit",
            long.to_str().unwrap(),
            "--driver",
            "process",
        ])
        .success();
    let first = spawn_worker(&context, "same", 1);
    wait_for_jobs(
        &context,
        "the job starting",
        Duration::from_secs(30),
        |jobs| jobs[0]["state"] == "started",
    );
    let refused = context.cairn(&["worker", "--name", "same"]).expect_code(2);
    assert!(
        refused.stderr.contains("a worker named `same` is running"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        jobs(&context)[0]["state"],
        "started",
        "the first worker's job runs on"
    );
    for bad in ["", "a/b", "a b", &"w".repeat(101)] {
        context.cairn(&["worker", "--name", bad]).expect_code(2);
    }
    // Stopped at once, the first gives its job back.
    signal(&first, "TERM");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(drain(&context, first, "same"), Some(0));
    assert_eq!(jobs(&context)[0]["state"], "queued");
}
