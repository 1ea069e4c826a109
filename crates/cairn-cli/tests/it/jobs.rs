//! `cairn job submit|ls|show|logs|cancel|restart` on a `file://` backend: what `submit` queues,
//! the `--json` shapes, cancel and restart, bad input refused (exit 2) with nothing queued, and
//! logs, with the job driven through the queue as a worker would (`FileJobQueue` on the test's
//! backend directory).

use std::io::{BufRead, BufReader, Read};
use std::time::{Duration, Instant};

use cairn_backend_file::FileJobQueue;
use cairn_state::jobs::{Attempt, JobQueue, JobState, Outcome};

use crate::support::TestContext;

fn context_with_script(script: &str) -> TestContext {
    let context = TestContext::new();
    std::fs::write(context.project().join("build.sh"), script).unwrap();
    context
}

fn submit(context: &TestContext, extra: &[&str]) -> u64 {
    let mut args = vec!["job", "submit", "build.sh", "--driver", "fake"];
    args.extend_from_slice(extra);
    let run = context.cairn(&args).success();
    run.stdout.trim().parse().expect("submit prints the job id")
}

fn json_of(context: &TestContext, args: &[&str]) -> serde_json::Value {
    let mut args = args.to_vec();
    args.push("--json");
    let run = context.cairn(&args).success();
    serde_json::from_str(&run.stdout).expect("--json prints JSON")
}

fn jobs(context: &TestContext) -> Vec<serde_json::Value> {
    match json_of(context, &["job", "ls"]) {
        serde_json::Value::Array(jobs) => jobs,
        other => panic!("job ls --json is not an array: {other}"),
    }
}

/// Drives the queue of the test's backend (`file://$CAIRN_HOME`) as a worker would.
struct Worker {
    runtime: tokio::runtime::Runtime,
    queue: FileJobQueue,
}

impl Worker {
    fn new(context: &TestContext) -> Worker {
        Worker {
            runtime: tokio::runtime::Runtime::new().unwrap(),
            queue: FileJobQueue::open(&context.home()).unwrap(),
        }
    }

    fn claim(&self, queue: &str) -> Attempt {
        let (_, attempt) = self
            .runtime
            .block_on(self.queue.claim(queue, "worker-1", Duration::from_secs(60)))
            .unwrap()
            .expect("a queued job");
        attempt
    }

    fn start(&self, attempt: Attempt) {
        self.runtime.block_on(self.queue.start(attempt)).unwrap();
    }

    fn log(&self, attempt: Attempt, text: &str) {
        self.runtime
            .block_on(self.queue.append_log(attempt, text.as_bytes()))
            .unwrap();
    }

    fn finish(&self, attempt: Attempt, state: JobState, exit_code: i64) {
        let outcome = Outcome {
            state,
            exit_code: Some(exit_code),
            reason: None,
        };
        self.runtime
            .block_on(self.queue.finish(attempt, outcome))
            .unwrap();
    }
}

#[test]
fn a_submitted_job_is_listed_as_queued_with_what_it_was_given() {
    let context = context_with_script("echo building\n");
    let id = submit(
        &context,
        &[
            "--queue",
            "builds",
            "--set",
            "exitCode=3",
            "--env",
            "APP=web",
            "--timeout",
            "90s",
            "--log-silence",
            "1500ms",
            "--max-log",
            "1MB",
            "--retries",
            "4",
        ],
    );
    assert_eq!(id, 1);
    let jobs = jobs(&context);
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(job["id"], 1);
    assert_eq!(job["queue"], "builds");
    assert_eq!(job["state"], "queued");
    assert_eq!(job["attempt"], 0);
    assert_eq!(job["exitCode"], serde_json::Value::Null);
    assert!(job["createdAt"].as_str().unwrap().ends_with('Z'), "{job}");
    assert_eq!(job["startedAt"], serde_json::Value::Null);
    assert_eq!(job["finishedAt"], serde_json::Value::Null);
    assert_eq!(job["driver"], "fake");
    assert_eq!(job["settings"], serde_json::json!({ "exitCode": "3" }));
    assert_eq!(job["env"], serde_json::json!({ "APP": "web" }));
    assert_eq!(job["timeoutSeconds"], 90);
    // Limits are whole seconds, a fraction rounded up.
    assert_eq!(job["logSilenceSeconds"], 2);
    assert_eq!(job["maxLogBytes"], 1_000_000);
    assert_eq!(job["retries"], 4);
    assert!(
        job.get("script").is_none(),
        "ls leaves the script out: {job}"
    );

    let table = context.cairn(&["job", "ls"]).success().stdout;
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "ID",
            "QUEUE",
            "STATE",
            "ATTEMPT",
            "WORKER",
            "AGE/DURATION",
            "EXIT"
        ]
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[..5], ["1", "builds", "queued", "0", "-"], "{table}");
    assert_eq!(row.last(), Some(&"-"), "{table}");
}

#[test]
fn job_submit_json_is_the_id_and_queue_and_defaults_apply() {
    let context = context_with_script("true\n");
    let submitted = json_of(&context, &["job", "submit", "build.sh", "--driver", "fake"]);
    assert_eq!(
        submitted,
        serde_json::json!({ "id": 1, "queue": "default" })
    );
    // The script comes from stdin with `-`.
    let mut command = context.command(&["job", "submit", "-", "--driver", "process"]);
    command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"echo from stdin\n").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout), "2\n");
    let shown = json_of(&context, &["job", "show", "2"]);
    assert_eq!(shown["script"], "echo from stdin\n");
    assert_eq!(shown["driver"], "process");
    let first = json_of(&context, &["job", "show", "1"]);
    assert_eq!(first["queue"], "default");
    assert_eq!(first["retries"], 2);
    assert_eq!(first["timeoutSeconds"], 3000);
    assert_eq!(first["logSilenceSeconds"], 600);
    assert_eq!(first["maxLogBytes"], 4_500_000);
}

#[test]
fn job_show_prints_every_field_and_the_script() {
    let context = context_with_script("echo one\necho two\n");
    submit(&context, &["--queue", "nightly"]);
    let shown = context.cairn(&["job", "show", "1"]).success().stdout;
    for expected in [
        "id:",
        "queue:",
        "nightly",
        "state:",
        "queued",
        "attempt:",
        "reason:",
        "driver:",
        "fake",
        "timeout:",
        "50m",
        "  echo one\n  echo two\n",
    ] {
        assert!(shown.contains(expected), "no `{expected}` in\n{shown}");
    }
    let json = json_of(&context, &["job", "show", "1"]);
    for key in [
        "id",
        "queue",
        "state",
        "attempt",
        "exitCode",
        "createdAt",
        "startedAt",
        "finishedAt",
        "reason",
        "worker",
        "script",
    ] {
        assert!(json.get(key).is_some(), "no `{key}` in {json}");
    }
}

#[test]
fn a_queued_job_cancels_at_once_and_restarts_as_queued() {
    let context = context_with_script("true\n");
    submit(&context, &[]);
    let run = context.cairn(&["job", "cancel", "1"]).success();
    assert_eq!(run.stdout, "job 1: cancelled\n");
    let job = json_of(&context, &["job", "show", "1"]);
    assert_eq!(job["state"], "cancelled");
    assert!(job["finishedAt"].is_string(), "{job}");
    assert!(job["reason"].is_string(), "{job}");

    // Nothing is left to cancel.
    let run = context.cairn(&["job", "cancel", "1"]).expect_code(2);
    assert!(run.stderr.contains("already cancelled"), "{}", run.stderr);

    let run = context.cairn(&["job", "restart", "1"]).success();
    assert_eq!(run.stdout, "job 1: queued\n");
    assert_eq!(json_of(&context, &["job", "show", "1"])["state"], "queued");

    // Only a finished job restarts.
    let run = context.cairn(&["job", "restart", "1"]).expect_code(2);
    assert!(
        run.stderr.contains("only a finished job can be restarted"),
        "{}",
        run.stderr
    );

    let cancelled = json_of(&context, &["job", "cancel", "1"]);
    assert_eq!(
        cancelled,
        serde_json::json!({ "id": 1, "state": "cancelled", "cancelRequested": false })
    );
    let restarted = json_of(&context, &["job", "restart", "1"]);
    assert_eq!(restarted, serde_json::json!({ "id": 1, "state": "queued" }));
}

#[test]
fn a_running_job_is_asked_to_stop() {
    let context = context_with_script(
        "true
",
    );
    submit(&context, &[]);
    let worker = Worker::new(&context);
    let attempt = worker.claim("default");
    worker.start(attempt);
    let run = context.cairn(&["job", "cancel", "1"]).success();
    assert_eq!(
        run.stdout,
        "job 1: cancel requested (it is started; its worker stops it)\n"
    );
    let job = json_of(&context, &["job", "show", "1"]);
    assert_eq!(job["state"], "started");
    assert_eq!(job["cancelRequested"], true);
    assert_eq!(job["attempt"], 1);
    assert_eq!(job["worker"], "worker-1");
    assert!(job["startedAt"].is_string(), "{job}");
    let table = context.cairn(&["job", "ls"]).success().stdout;
    assert!(
        table.contains("started (cancel requested)") && table.contains("(running)"),
        "{table}"
    );
    // A running job cannot be restarted.
    let run = context.cairn(&["job", "restart", "1"]).expect_code(2);
    assert!(run.stderr.contains("job 1 is started"), "{}", run.stderr);
}

#[test]
fn job_ls_filters_by_queue_and_state() {
    let context = context_with_script(
        "true
",
    );
    submit(&context, &["--queue", "a"]);
    submit(&context, &["--queue", "b"]);
    submit(&context, &["--queue", "a"]);
    context.cairn(&["job", "cancel", "3"]).success();
    let ids = |args: &[&str]| -> Vec<u64> {
        let mut all = vec!["job", "ls"];
        all.extend_from_slice(args);
        match json_of(&context, &all) {
            serde_json::Value::Array(jobs) => {
                jobs.iter().map(|job| job["id"].as_u64().unwrap()).collect()
            }
            other => panic!("not an array: {other}"),
        }
    };
    assert_eq!(ids(&[]), [1, 2, 3]);
    assert_eq!(ids(&["--queue", "a"]), [1, 3]);
    assert_eq!(ids(&["--state", "queued"]), [1, 2]);
    assert_eq!(ids(&["--queue", "a", "--state", "cancelled"]), [3]);
    assert_eq!(ids(&["--queue", "c"]), Vec::<u64>::new());
}

#[test]
fn bad_job_input_exits_2_and_queues_nothing() {
    let context = context_with_script(
        "true
",
    );
    let cases: [(&[&str], &str); 12] = [
        (&["--queue", ".."], "`..` is not a queue name"),
        (&["--queue", "a/b"], "`a/b` is not a queue name"),
        (&["--queue", ""], "is not a queue name"),
        (
            &["--driver", "nope"],
            "unknown driver `nope`; the drivers are: docker",
        ),
        (&["--driver", "docker"], "needs an image"),
        (
            &["--set", "noSuchSetting=1"],
            "has no setting `noSuchSetting`",
        ),
        (&["--env", "NOEQUALS"], "write it as KEY=VALUE"),
        (
            &["--set", "startupDuration=soon"],
            "the fake driver's `startupDuration`",
        ),
        (
            &["--secret-env", "2X=y"],
            "not an environment variable name",
        ),
        (
            &["--env", "A-B=1"],
            "`A-B` is not an environment variable name",
        ),
        (&["--timeout", "5 minutes"], "--timeout"),
        (&["--max-log", "lots"], "--max-log"),
    ];
    for (extra, message) in cases {
        let mut args = vec!["job", "submit", "build.sh"];
        if !extra.contains(&"--driver") {
            args.extend_from_slice(&["--driver", "fake"]);
        }
        args.extend_from_slice(extra);
        let run = context.cairn(&args).expect_code(2);
        assert!(
            run.stderr.contains(message),
            "{args:?}: expected `{message}` in\n{}",
            run.stderr
        );
        assert_eq!(run.stdout, "", "{args:?}");
    }
    let run = context
        .cairn(&["job", "submit", "missing.sh", "--driver", "fake"])
        .expect_code(2);
    assert!(run.stderr.contains("reading the script"), "{}", run.stderr);
    assert_eq!(jobs(&context), Vec::<serde_json::Value>::new());
}

#[test]
fn unknown_job_ids_and_states_exit_2() {
    let context = context_with_script(
        "true
",
    );
    submit(&context, &[]);
    for command in ["show", "logs", "cancel", "restart"] {
        let run = context.cairn(&["job", command, "9"]).expect_code(2);
        assert!(run.stderr.contains("no job 9"), "{command}: {}", run.stderr);
    }
    let run = context
        .cairn(&["job", "logs", "9", "--follow"])
        .expect_code(2);
    assert!(run.stderr.contains("no job 9"), "{}", run.stderr);
    context.cairn(&["job", "show", "x"]).expect_code(2);
    let run = context
        .cairn(&["job", "ls", "--state", "done"])
        .expect_code(2);
    assert!(
        run.stderr.contains(
            "`done` is not a job state; the states are: queued, received, started, passed, failed, errored, cancelled"
        ),
        "{}",
        run.stderr
    );
    let run = context
        .cairn(&["job", "ls", "--queue", "a/b"])
        .expect_code(2);
    assert!(run.stderr.contains("is not a queue name"), "{}", run.stderr);
    // Nothing changed.
    assert_eq!(json_of(&context, &["job", "show", "1"])["state"], "queued");
}

#[test]
fn job_logs_prints_the_current_attempts_log() {
    let context = context_with_script(
        "true
",
    );
    submit(&context, &[]);
    // Nothing yet.
    assert_eq!(context.cairn(&["job", "logs", "1"]).success().stdout, "");
    let worker = Worker::new(&context);
    let attempt = worker.claim("default");
    worker.start(attempt);
    worker.log(attempt, "hello\n");
    assert_eq!(
        context.cairn(&["job", "logs", "1"]).success().stdout,
        "hello\n"
    );
    worker.log(attempt, "world\n");
    worker.finish(attempt, JobState::Failed, 3);
    assert_eq!(
        context.cairn(&["job", "logs", "1"]).success().stdout,
        "hello\nworld\n"
    );
    // A finished job's --follow prints the log and ends at once.
    assert_eq!(
        context
            .cairn(&["job", "logs", "1", "--follow"])
            .success()
            .stdout,
        "hello\nworld\n"
    );
    // --json: one object per chunk, with its attempt.
    let printed = context
        .cairn(&["job", "logs", "1", "--json"])
        .success()
        .stdout;
    let chunk: serde_json::Value = serde_json::from_str(printed.trim_end()).unwrap();
    assert_eq!(
        chunk,
        serde_json::json!({ "attempt": 1, "text": "hello\nworld\n" })
    );
    let job = json_of(&context, &["job", "show", "1"]);
    assert_eq!(job["state"], "failed");
    assert_eq!(job["exitCode"], 3);
    assert!(job["finishedAt"].is_string(), "{job}");
    let table = context.cairn(&["job", "ls"]).success().stdout;
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        row[..5],
        ["1", "default", "failed", "1", "worker-1"],
        "{table}"
    );
    assert_eq!(row.last(), Some(&"3"), "{table}");
}

#[test]
fn a_reader_that_goes_away_early_is_no_error() {
    let context = context_with_script("true\n");
    submit(&context, &[]);
    let worker = Worker::new(&context);
    let attempt = worker.claim("default");
    worker.start(attempt);
    worker.log(attempt, &"a line of the log\n".repeat(100_000));
    worker.finish(attempt, JobState::Passed, 0);
    // As `cairn job logs 1 | head -1`: the pipe's reading end closes before the log is out.
    let mut child = context
        .command(&["job", "logs", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
}

#[test]
fn job_logs_follow_streams_until_the_job_finishes() {
    let context = context_with_script(
        "true
",
    );
    submit(&context, &[]);
    let worker = Worker::new(&context);
    let attempt = worker.claim("default");
    worker.start(attempt);
    worker.log(attempt, "one\n");
    let mut child = context.spawn(&["job", "logs", "1", "--follow"]);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "one\n");
    worker.log(attempt, "two\n");
    line.clear();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "two\n");
    assert!(
        child.try_wait().unwrap().is_none(),
        "--follow ended before the job did"
    );
    worker.log(attempt, "three\n");
    worker.finish(attempt, JobState::Passed, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "`job logs --follow` did not end with its job"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "three\n");
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn job_commands_work_on_a_postgres_backend() {
    let cluster =
        cairn_backend_postgres::test_cluster::TestCluster::start().unwrap_or_else(|error| {
            panic!("this test needs PostgreSQL and it could not start: {error}")
        });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = runtime.block_on(cluster.new_database()).unwrap();
    let context = context_with_script("echo hi\n");
    context.cairn(&["login", &url]).success();
    assert_eq!(submit(&context, &["--queue", "pg"]), 1);
    assert_eq!(submit(&context, &["--queue", "pg"]), 2);
    let listed = jobs(&context);
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["queue"], "pg");
    assert_eq!(listed[0]["state"], "queued");
    // Nothing went to the default file:// backend.
    assert!(!context.home().join(".pulumi").join("jobs").exists());

    let queue = runtime
        .block_on(cairn_backend_postgres::PostgresBackend::connect(&url))
        .unwrap()
        .job_queue();
    let (_, attempt) = runtime
        .block_on(queue.claim("pg", "worker-pg", Duration::from_secs(60)))
        .unwrap()
        .expect("a queued job");
    runtime.block_on(queue.start(attempt)).unwrap();
    runtime
        .block_on(queue.append_log(attempt, b"from postgres\n"))
        .unwrap();
    assert_eq!(
        context.cairn(&["job", "logs", "1"]).success().stdout,
        "from postgres\n"
    );
    let run = context.cairn(&["job", "cancel", "1"]).success();
    assert!(run.stdout.contains("cancel requested"), "{}", run.stdout);
    assert_eq!(
        context.cairn(&["job", "cancel", "2"]).success().stdout,
        "job 2: cancelled\n"
    );
    assert_eq!(
        context.cairn(&["job", "restart", "2"]).success().stdout,
        "job 2: queued\n"
    );
    let run = context.cairn(&["job", "show", "9"]).expect_code(2);
    assert!(run.stderr.contains("no job 9"), "{}", run.stderr);
    let run = context.cairn(&["job", "restart", "1"]).expect_code(2);
    assert!(run.stderr.contains("only a finished job"), "{}", run.stderr);
}

#[test]
fn job_logs_follow_moves_to_a_new_attempt_from_its_start() {
    let context = context_with_script("true\n");
    submit(&context, &[]);
    let worker = Worker::new(&context);
    let first = worker.claim("default");
    worker.start(first);
    worker.log(first, "first attempt\n");
    let mut child = context.spawn(&["job", "logs", "1", "--follow"]);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "first attempt\n");
    // The worker died: the job is requeued, and another worker takes it.
    let state = worker
        .runtime
        .block_on(worker.queue.requeue(first, "the worker died", true))
        .unwrap();
    assert_eq!(state, JobState::Queued);
    let second = worker.claim("default");
    assert_eq!(second.number, 2);
    worker.start(second);
    worker.log(second, "second\n");
    line.clear();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "second\n");
    worker.finish(second, JobState::Passed, 0);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "");
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("-- attempt 2 --"), "{stderr}");
}
