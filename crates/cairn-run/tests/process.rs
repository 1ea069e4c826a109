//! Runs on the `process` driver (local process groups): pass, fail, a timeout and a graceful
//! cancel, with no instance record and no process of the run left after each.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cairn_compute::InstanceDriver;
use cairn_compute::process::ProcessDriver;
use cairn_run::{Cancel, Reason, RunLimits, RunRequest, RunResult, SecretEnv};
use support::{SharedSink, cancel_when, limits};

/// Runs `script` in a fresh process instance; checks nothing of the run is left: no record,
/// no working directory, no process whose command line names the run's directory.
async fn run(
    script: &str,
    limits: RunLimits,
    graceful_cancel_on: Option<&'static str>,
) -> (RunResult, String) {
    run_with_secrets(script, limits, graceful_cancel_on, SecretEnv::default()).await
}

async fn run_with_secrets(
    script: &str,
    limits: RunLimits,
    graceful_cancel_on: Option<&'static str>,
    secret_env: SecretEnv,
) -> (RunResult, String) {
    let dir = tempfile::tempdir().unwrap();
    let driver =
        ProcessDriver::new(&serde_json::json!({ "dir": dir.path().join("records") })).unwrap();
    let driver: Arc<dyn InstanceDriver> = Arc::new(driver);
    let run_id = cairn_run::new_run_id();
    let work_dir = dir.path().join("work").join(&run_id);
    // Where the driver keeps its records: the script may look there for a leaked secret.
    let records = dir.path().join("records");
    let env = BTreeMap::from([
        ("GREETING".to_owned(), "process".to_owned()),
        ("RECORDS".to_owned(), records.display().to_string()),
        // Short names a starter's own variables could clobber.
        ("s".to_owned(), "plainS".to_owned()),
        ("l".to_owned(), "plainL".to_owned()),
    ]);
    let request = RunRequest {
        run_id: run_id.clone(),
        script: script.as_bytes().to_vec(),
        properties: cairn_run::instance_properties("process", None, &env, Some(&work_dir)).unwrap(),
        limits,
        work_dir: Some(work_dir.clone()),
        tags: Default::default(),
        secret_env,
        fence: None,
    };
    let mut sink = SharedSink::default();
    let cancel = Cancel::default();
    if let Some(needle) = graceful_cancel_on {
        cancel_when(&sink, needle, &cancel, false);
    }
    let result = cairn_run::run(driver.clone(), request, &mut sink, &cancel)
        .await
        .unwrap();
    let tags = BTreeMap::from([(cairn_run::RUN_TAG.to_owned(), run_id)]);
    assert!(driver.describe(&tags, false).await.unwrap().is_empty());
    assert!(!work_dir.exists());
    (result, sink.text())
}

#[tokio::test]
async fn secret_variables_reach_the_script_and_nothing_else() {
    let value = "it's a \"hunter2\" $HOME `x`\nsecond line";
    let secret_env =
        SecretEnv::new(BTreeMap::from([("TOKEN".to_owned(), value.to_owned())])).unwrap();
    let script = "printf '%s' \"$TOKEN\" > token.txt\n\
                  [ \"$(cat token.txt)\" = \"$(printf 'it'\\''s a \"hunter2\" $HOME `x`\\nsecond line')\" ] && echo same\n\
                  echo \"the token is $TOKEN.\"\n\
                  if grep -rq hunter2 \"$RECORDS\"; then echo RECORDED; else echo unrecorded; fi\n\
                  read -r line && echo \"stdin: $line\" || echo stdin-empty\n\
                  echo \"[$s][$l]\"\n";
    let (result, log) = run_with_secrets(script, limits(), None, secret_env).await;
    assert!(result.passed(), "{result:?}: {log}");
    assert!(log.contains("same\n"), "{log}");
    assert!(log.contains("the token is [secret]."), "{log}");
    assert!(log.contains("unrecorded"), "{log}");
    assert!(log.contains("stdin-empty"), "{log}");
    assert!(log.contains("[plainS][plainL]"), "{log}");
    assert!(!log.contains("hunter2"), "{log}");
}

#[tokio::test]
async fn a_script_passes_with_its_environment() {
    let (result, log) = run("echo \"hello $GREETING\"\n", limits(), None).await;
    assert!(result.passed(), "{result:?}");
    assert_eq!(log, "hello process\n");
}

#[tokio::test]
async fn a_failing_script_gives_its_exit_code() {
    let (result, _) = run("exit 9\n", limits(), None).await;
    assert_eq!(
        (result.exit_code, result.reason),
        (Some(9), Reason::Finished)
    );
}

#[tokio::test]
async fn a_timeout_stops_the_script() {
    let limits = RunLimits {
        hard_timeout: Duration::from_secs(1),
        ..limits()
    };
    let (result, _) = run("sleep 30\n", limits, None).await;
    assert_eq!(result.reason, Reason::HardTimeout { after_ms: 1000 });
}

#[tokio::test]
async fn a_graceful_cancel_sends_sigterm() {
    let script =
        "trap 'echo terminated; exit 4' TERM\necho ready\nwhile :; do sleep 1 & wait $!; done\n";
    let (result, log) = run(script, limits(), Some("ready")).await;
    assert_eq!(result.reason, Reason::Cancelled);
    assert_eq!(result.exit_code, Some(4));
    assert!(log.contains("terminated"), "{log}");
}

#[tokio::test]
async fn a_script_killed_by_a_signal_exits_128_plus_its_number() {
    let (result, _) = run("kill -KILL $$\n", limits(), None).await;
    assert_eq!(
        (result.exit_code, result.reason),
        (Some(137), Reason::Finished)
    );
}

#[tokio::test]
async fn a_background_process_holding_the_output_does_not_hold_the_run() {
    let limits = RunLimits {
        log_silence: Duration::from_secs(5),
        ..limits()
    };
    let started = std::time::Instant::now();
    let (result, log) = run("(sleep 30) &\necho bye\nexit 5\n", limits, None).await;
    assert_eq!(result.exit_code, Some(5), "{result:?}: {log}");
    assert_eq!(result.reason, Reason::Finished, "{result:?}");
    assert_eq!(log, "bye\n");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}
