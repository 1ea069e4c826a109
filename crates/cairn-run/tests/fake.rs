//! Every outcome of a run, and every setting of the fake driver (Travis's fake backend:
//! startup duration, log output, run sleep, exit code, errors on start, upload and run),
//! without Docker. After each run, no instance of it is left.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_compute::InstanceDriver;
use cairn_compute::fake::FakeDriver;
use cairn_run::{Cancel, Instance, Reason, RunError, RunLimits, RunRequest, RunResult};
use support::{SharedSink, limits};

struct Fake {
    _dir: tempfile::TempDir,
    driver: Arc<dyn InstanceDriver>,
}

fn fake(settings: serde_json::Value) -> Fake {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings;
    settings["path"] = serde_json::json!(dir.path().join("instances.json"));
    let driver = Arc::new(FakeDriver::new(&settings).unwrap());
    Fake { _dir: dir, driver }
}

fn request(limits: RunLimits) -> RunRequest {
    RunRequest {
        run_id: cairn_run::new_run_id(),
        script: b"echo hello\n".to_vec(),
        properties: serde_json::json!({}),
        limits,
        work_dir: None,
        tags: Default::default(),
        secret_env: Default::default(),
        fence: None,
    }
}

impl Fake {
    async fn run(
        &self,
        request: RunRequest,
        cancel: &Cancel,
    ) -> (Result<RunResult, RunError>, String) {
        let mut sink = SharedSink::default();
        let result = cairn_run::run(self.driver.clone(), request, &mut sink, cancel).await;
        self.assert_nothing_left().await;
        (result, sink.text())
    }

    async fn assert_nothing_left(&self) {
        let left = self.driver.describe(&BTreeMap::new(), false).await.unwrap();
        assert!(left.is_empty(), "instances left behind: {left:?}");
    }
}

#[tokio::test]
async fn secret_values_in_the_log_are_masked_and_never_stored_by_the_driver() {
    let fake = fake(serde_json::json!({ "logOutput": "key: hunter2, again hunter2\\n" }));
    let secret_env =
        cairn_run::SecretEnv::new(BTreeMap::from([("KEY".to_owned(), "hunter2".to_owned())]))
            .unwrap();
    let request = RunRequest {
        secret_env,
        ..request(limits())
    };
    let (result, log) = fake.run(request, &Cancel::default()).await;
    assert!(result.unwrap().passed());
    assert_eq!(log, "key: [secret], again [secret]\n");
    let stored = std::fs::read_to_string(fake._dir.path().join("instances.json")).unwrap();
    assert!(!stored.contains("hunter2"), "{stored}");
}

#[tokio::test]
async fn the_log_cap_never_cuts_through_a_secret() {
    let secret = "CapStraddleSecret77";
    for (before, after) in [(490, 3000), (3000, 485)] {
        let output = format!("{}{secret}{}", "x".repeat(before), "y".repeat(after));
        let fake = fake(serde_json::json!({ "logOutput": output }));
        let secret_env =
            cairn_run::SecretEnv::new(BTreeMap::from([("V".to_owned(), secret.to_owned())]))
                .unwrap();
        let request = RunRequest {
            secret_env,
            limits: RunLimits {
                max_log: 1000,
                ..limits()
            },
            ..request(limits())
        };
        let (result, log) = fake.run(request, &Cancel::default()).await;
        assert_eq!(result.unwrap().reason, Reason::LogCap { cap_bytes: 1000 });
        // Every five letters of the secret (but those the mask itself spells).
        for fragment in secret.as_bytes().windows(5) {
            let fragment = std::str::from_utf8(fragment).unwrap();
            if cairn_run::secrets::MASK.contains(fragment) {
                continue;
            }
            assert!(
                !log.contains(fragment),
                "`{fragment}` of the secret in: {log}"
            );
        }
    }
}

#[tokio::test]
async fn a_fence_that_no_longer_holds_keeps_the_script_from_starting() {
    let fake = fake(serde_json::json!({ "logOutput": "ran\\n" }));
    let request = RunRequest {
        fence: Some(cairn_run::Fence::new(|| false)),
        ..request(limits())
    };
    let (result, log) = fake.run(request, &Cancel::default()).await;
    let result = result.unwrap();
    assert!(!result.completed, "{result:?}");
    assert_eq!(result.reason, Reason::Cancelled);
    assert_eq!(log, "");
}

#[tokio::test]
async fn a_run_passes_with_the_fake_log_output() {
    let fake = fake(serde_json::json!({ "logOutput": "Hello, world!\\n" }));
    let (result, log) = fake.run(request(limits()), &Cancel::default()).await;
    let result = result.unwrap();
    assert!(result.passed(), "{result:?}");
    assert_eq!(result.exit_code, Some(0));
    assert_eq!(log, "Hello, world!\n");
    assert_eq!(result.log_bytes, 14);
}

#[tokio::test]
async fn the_exit_code_is_the_scripts() {
    let fake = fake(serde_json::json!({ "exitCode": 3 }));
    let result = fake
        .run(request(limits()), &Cancel::default())
        .await
        .0
        .unwrap();
    assert!(result.completed && !result.passed(), "{result:?}");
    assert_eq!(
        (result.exit_code, result.reason),
        (Some(3), Reason::Finished)
    );
}

#[tokio::test]
async fn starting_takes_the_startup_duration() {
    let fake = fake(serde_json::json!({ "startupDuration": "300ms" }));
    let started = Instant::now();
    let result = fake
        .run(request(limits()), &Cancel::default())
        .await
        .0
        .unwrap();
    assert!(result.passed());
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn a_run_longer_than_the_hard_timeout_is_stopped() {
    let fake = fake(serde_json::json!({ "runSleep": "10s", "logOutput": "late" }));
    let limits = RunLimits {
        hard_timeout: Duration::from_millis(300),
        ..limits()
    };
    let started = Instant::now();
    let (result, log) = fake.run(request(limits), &Cancel::default()).await;
    let result = result.unwrap();
    assert_eq!(result.reason, Reason::HardTimeout { after_ms: 300 });
    assert!(!result.completed && result.exit_code.is_none());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(log, "");
}

#[tokio::test]
async fn the_hard_timeout_counts_the_instance_start() {
    let fake = fake(serde_json::json!({ "startupDuration": "10s" }));
    let limits = RunLimits {
        hard_timeout: Duration::from_millis(200),
        ..limits()
    };
    let result = fake
        .run(request(limits), &Cancel::default())
        .await
        .0
        .unwrap();
    assert_eq!(result.reason, Reason::HardTimeout { after_ms: 200 });
}

#[tokio::test]
async fn a_silent_script_is_stopped() {
    let fake = fake(serde_json::json!({ "runSleep": "10s" }));
    let limits = RunLimits {
        log_silence: Duration::from_millis(300),
        ..limits()
    };
    let result = fake
        .run(request(limits), &Cancel::default())
        .await
        .0
        .unwrap();
    assert_eq!(result.reason, Reason::LogSilence { after_ms: 300 });
    assert!(!result.completed);
}

#[tokio::test]
async fn a_log_over_the_cap_keeps_head_and_tail_and_the_run_errors() {
    let output = format!("{}{}", "a".repeat(60), "z".repeat(40));
    let fake = fake(serde_json::json!({ "logOutput": output }));
    let limits = RunLimits {
        max_log: 40,
        ..limits()
    };
    let (result, log) = fake.run(request(limits), &Cancel::default()).await;
    let result = result.unwrap();
    assert_eq!(result.reason, Reason::LogCap { cap_bytes: 40 });
    assert!(!result.passed());
    assert_eq!(result.log_bytes, 100);
    assert!(log.starts_with(&"a".repeat(20)), "{log}");
    assert!(log.contains("[log truncated]"), "{log}");
    assert!(log.ends_with(&"z".repeat(20)), "{log}");
}

#[tokio::test]
async fn a_graceful_cancel_terms_the_script() {
    let fake = fake(serde_json::json!({ "runSleep": "30s" }));
    let cancel = Cancel::default();
    let graceful = cancel.graceful.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        graceful.cancel();
    });
    let started = Instant::now();
    let result = fake.run(request(limits()), &cancel).await.0.unwrap();
    assert_eq!(result.reason, Reason::Cancelled);
    // The fake ends a run it is sent SIGTERM with 143, as a shell does.
    assert_eq!(result.exit_code, Some(143));
    assert!(!result.completed);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_hard_cancel_stops_at_once() {
    let fake = fake(serde_json::json!({ "runSleep": "30s" }));
    let cancel = Cancel::default();
    let hard = cancel.hard.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        hard.cancel();
    });
    let result = fake.run(request(limits()), &cancel).await.0.unwrap();
    assert_eq!(result.reason, Reason::Cancelled);
    assert_eq!(result.exit_code, None);
}

#[tokio::test]
async fn a_cancel_while_the_instance_starts_leaves_nothing() {
    let fake = fake(serde_json::json!({ "startupDuration": "10s" }));
    let cancel = Cancel::default();
    let hard = cancel.hard.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        hard.cancel();
    });
    let result = fake.run(request(limits()), &cancel).await.0.unwrap();
    assert_eq!(result.reason, Reason::Cancelled);
}

#[tokio::test]
async fn errors_on_start_upload_and_run_are_infrastructure_errors() {
    for (step, expected) in [
        ("start", "starting"),
        ("upload", "uploading"),
        ("run", "running"),
    ] {
        let fake = fake(serde_json::json!({ "errorOn": step }));
        let error = fake
            .run(request(limits()), &Cancel::default())
            .await
            .0
            .unwrap_err();
        assert!(error.to_string().contains(expected), "{step}: {error}");
        match (step, &error) {
            ("start", RunError::Start(_))
            | ("upload", RunError::Upload(_))
            | ("run", RunError::Run(_)) => {}
            _ => panic!("{step}: {error:?}"),
        }
    }
}

#[tokio::test]
async fn bad_fake_settings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("instances.json");
    for settings in [
        serde_json::json!({ "path": path, "errorOn": "boot" }),
        serde_json::json!({ "path": path, "runSleep": "soon" }),
        serde_json::json!({ "path": path, "exitCode": "x" }),
    ] {
        assert!(FakeDriver::new(&settings).is_err(), "{settings}");
    }
}

#[tokio::test]
async fn an_instance_runs_one_script_only() {
    let fake = fake(serde_json::json!({ "logOutput": "once" }));
    let cancel = Cancel::default();
    let mut instance = Instance::start(fake.driver.clone(), Default::default(), "stale-test")
        .await
        .unwrap();
    let mut sink = SharedSink::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    assert!(matches!(
        instance
            .run_script(
                &mut sink,
                &cairn_run::SecretEnv::default(),
                &limits(),
                deadline,
                &cancel
            )
            .await,
        Err(RunError::NoScript(_))
    ));
    instance.upload_script(b"true").await.unwrap();
    let result = instance
        .run_script(
            &mut sink,
            &cairn_run::SecretEnv::default(),
            &limits(),
            deadline,
            &cancel,
        )
        .await
        .unwrap();
    assert!(result.passed());
    let again = instance
        .run_script(
            &mut sink,
            &cairn_run::SecretEnv::default(),
            &limits(),
            deadline,
            &cancel,
        )
        .await;
    assert!(matches!(again, Err(RunError::Stale(_))), "{again:?}");
    let upload = instance.upload_script(b"true").await;
    assert!(matches!(upload, Err(RunError::Stale(_))), "{upload:?}");
    instance.stop().await.unwrap();
    fake.assert_nothing_left().await;
}

#[tokio::test]
async fn a_dropped_run_still_removes_its_instance() {
    let fake = fake(serde_json::json!({ "runSleep": "30s" }));
    let mut sink = SharedSink::default();
    let cancel = Cancel::default();
    let run = cairn_run::run(fake.driver.clone(), request(limits()), &mut sink, &cancel);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), run)
            .await
            .is_err()
    );
    let started = Instant::now();
    loop {
        if fake
            .driver
            .describe(&BTreeMap::new(), false)
            .await
            .unwrap()
            .is_empty()
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the instance was left behind"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_graceful_cancel_while_the_instance_starts_waits_for_it_then_removes_it() {
    let fake = fake(serde_json::json!({ "startupDuration": "500ms", "logOutput": "never" }));
    let cancel = Cancel::default();
    let graceful = cancel.graceful.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        graceful.cancel();
    });
    let started = Instant::now();
    let (result, log) = fake.run(request(limits()), &cancel).await;
    assert_eq!(result.unwrap().reason, Reason::Cancelled);
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert_eq!(log, "");
}
