//! Runs on the real Docker Engine, in a busybox image built here (`FROM scratch`, Debian's
//! static busybox: nothing can be pulled): pass, fail, hard timeout, log silence, log cap,
//! cancels, a stale instance. After each, the engine is asked for containers labelled with the
//! run: there must be none. Without a reachable engine these tests fail, loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_compute::docker::DockerDriver;
use cairn_compute::{InstanceDriver, InstanceSpec};
use cairn_run::{Cancel, Instance, Reason, RunError, RunLimits, RunRequest, RunResult, SecretEnv};
use support::{SharedSink, cancel_when, limits};

async fn connect() -> DockerDriver {
    DockerDriver::connect(std::env::var("DOCKER_HOST").ok().as_deref())
        .await
        .unwrap_or_else(|error| panic!("these tests need the Docker Engine: {error}"))
}

/// A tag of the test image, removed when dropped (also when the test failed).
struct Image(String);

impl Drop for Image {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rmi", &self.0])
            .output();
    }
}

/// The test image, built from busybox under a tag of the test's own.
async fn ensure_image(driver: &DockerDriver) -> Image {
    let image = format!("cairn-run-test-busybox:{}", cairn_run::new_run_id());
    cairn_compute::test_image::build_busybox_image(
        driver.client(),
        &image,
        &["sh", "sleep", "true", "false", "echo", "cat", "kill"],
        "CMD [\"/bin/sh\"]",
    )
    .await
    .unwrap_or_else(|error| panic!("{error}"));
    Image(image)
}

/// The containers labelled with the run, asked of the engine itself (not the driver).
async fn containers_of(driver: &DockerDriver, run_id: &str) -> Vec<String> {
    let options = bollard::query_parameters::ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([(
            "label".to_owned(),
            vec![format!("{}={run_id}", cairn_run::RUN_TAG)],
        )])),
        ..Default::default()
    };
    driver
        .client()
        .list_containers(Some(options))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|container| container.id)
        .collect()
}

struct Run {
    result: Result<RunResult, RunError>,
    log: String,
    took: Duration,
}

/// Runs `script` with `limits` and `env`; `prepare` may arrange cancels on the sink. Checks
/// that no container of the run is left.
async fn run_with(
    script: &str,
    limits: RunLimits,
    env: &[(&str, &str)],
    prepare: impl FnOnce(&SharedSink, &Cancel),
) -> Run {
    run_with_secrets(script, limits, env, SecretEnv::default(), prepare).await
}

async fn run_with_secrets(
    script: &str,
    limits: RunLimits,
    env: &[(&str, &str)],
    secret_env: SecretEnv,
    prepare: impl FnOnce(&SharedSink, &Cancel),
) -> Run {
    let driver = connect().await;
    let image = ensure_image(&driver).await;
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect();
    let request = RunRequest {
        run_id: cairn_run::new_run_id(),
        script: script.as_bytes().to_vec(),
        properties: cairn_run::instance_properties("docker", Some(&image.0), &env, None).unwrap(),
        limits,
        work_dir: None,
        tags: Default::default(),
        secret_env,
        fence: None,
    };
    let run_id = request.run_id.clone();
    let mut sink = SharedSink::default();
    let cancel = Cancel::default();
    prepare(&sink, &cancel);
    let started = Instant::now();
    let driver: Arc<dyn InstanceDriver> = Arc::new(driver);
    let result = cairn_run::run(driver, request, &mut sink, &cancel).await;
    let took = started.elapsed();
    let left = containers_of(&connect().await, &run_id).await;
    assert!(left.is_empty(), "containers left behind: {left:?}");
    Run {
        result,
        log: sink.text(),
        took,
    }
}

async fn run(script: &str, limits: RunLimits) -> Run {
    run_with(script, limits, &[], |_, _| {}).await
}

#[tokio::test]
async fn a_script_passes_and_its_output_is_streamed() {
    let run = run_with(
        "echo \"hello $GREETING\"\necho to-stderr >&2\n",
        limits(),
        &[("GREETING", "docker")],
        |_, _| {},
    )
    .await;
    let result = run.result.unwrap();
    assert!(result.passed(), "{result:?}: {}", run.log);
    assert!(run.log.contains("hello docker"), "{}", run.log);
    assert!(run.log.contains("to-stderr"), "{}", run.log);
}

#[tokio::test]
async fn secret_variables_reach_the_script_masked_and_not_in_the_container() {
    let secret_env = SecretEnv::new(BTreeMap::from([(
        "TOKEN".to_owned(),
        "hunter2 'quoted'\nline two".to_owned(),
    )]))
    .unwrap();
    // The container's own environment (what `docker inspect` shows) is PID 1's.
    let script = "echo \"token: $TOKEN\"\n\
                  if grep -q hunter2 /proc/1/environ; then echo IN-CONTAINER-ENV; else echo not-in-env; fi\n\
                  [ \"${TOKEN#hunter2 }\" != \"$TOKEN\" ] && echo starts-right\n";
    let run = run_with_secrets(script, limits(), &[], secret_env, |_, _| {}).await;
    let result = run.result.unwrap();
    assert!(result.passed(), "{result:?}: {}", run.log);
    assert!(run.log.contains("token: [secret]"), "{}", run.log);
    assert!(run.log.contains("not-in-env"), "{}", run.log);
    assert!(run.log.contains("starts-right"), "{}", run.log);
    assert!(!run.log.contains("hunter2"), "{}", run.log);
}

#[tokio::test]
async fn a_failing_script_gives_its_exit_code() {
    let run = run("echo failing\nexit 7\n", limits()).await;
    let result = run.result.unwrap();
    assert!(result.completed);
    assert_eq!(
        (result.exit_code, result.reason),
        (Some(7), Reason::Finished)
    );
}

#[tokio::test]
async fn a_shebang_picks_the_interpreter() {
    let run = run("#!/bin/sh -e\nfalse\necho unreachable\n", limits()).await;
    let result = run.result.unwrap();
    assert_eq!(result.exit_code, Some(1));
    assert!(!run.log.contains("unreachable"), "{}", run.log);
}

#[tokio::test]
async fn the_hard_timeout_stops_a_long_script() {
    let limits = RunLimits {
        hard_timeout: Duration::from_secs(3),
        ..limits()
    };
    let run = run(
        "echo started\nwhile :; do echo tick; sleep 1; done\n",
        limits,
    )
    .await;
    let result = run.result.unwrap();
    assert_eq!(result.reason, Reason::HardTimeout { after_ms: 3000 });
    assert!(run.log.contains("started"), "{}", run.log);
    assert!(run.took < Duration::from_secs(20), "{:?}", run.took);
}

#[tokio::test]
async fn a_silent_script_is_stopped() {
    let limits = RunLimits {
        log_silence: Duration::from_secs(2),
        ..limits()
    };
    let run = run("echo started\nsleep 60\necho never\n", limits).await;
    let result = run.result.unwrap();
    assert_eq!(result.reason, Reason::LogSilence { after_ms: 2000 });
    assert!(!run.log.contains("never"), "{}", run.log);
    assert!(run.took < Duration::from_secs(20), "{:?}", run.took);
}

#[tokio::test]
async fn a_log_over_the_cap_errors_keeping_head_and_tail() {
    let limits = RunLimits {
        max_log: 1000,
        ..limits()
    };
    let script =
        "echo FIRST\ni=0\nwhile [ $i -lt 500 ]; do echo line-$i; i=$((i+1)); done\necho LAST\n";
    let run = run(script, limits).await;
    let result = run.result.unwrap();
    assert_eq!(result.reason, Reason::LogCap { cap_bytes: 1000 });
    assert_eq!(result.exit_code, Some(0));
    assert!(!result.passed());
    assert!(run.log.starts_with("FIRST"), "{}", run.log);
    assert!(run.log.contains("[log truncated]"), "{}", run.log);
    assert!(run.log.trim_end().ends_with("LAST"), "{}", run.log);
    assert!(!run.log.contains("line-250\n"), "{}", run.log);
}

#[tokio::test]
async fn a_graceful_cancel_sends_sigterm_and_the_script_can_clean_up() {
    let script =
        "trap 'echo cleaning up; exit 3' TERM\necho ready\nwhile :; do sleep 1 & wait $!; done\n";
    let run = run_with(script, limits(), &[], |sink, cancel| {
        cancel_when(sink, "ready", cancel, false);
    })
    .await;
    let result = run.result.unwrap();
    assert_eq!(result.reason, Reason::Cancelled);
    assert!(!result.completed);
    assert_eq!(result.exit_code, Some(3));
    assert!(run.log.contains("cleaning up"), "{}", run.log);
}

#[tokio::test]
async fn a_script_that_ignores_sigterm_is_killed_after_the_grace_period() {
    let limits = RunLimits {
        grace: Duration::from_secs(1),
        ..limits()
    };
    let script = "trap '' TERM\necho ready\nsleep 60\n";
    let run = run_with(script, limits, &[], |sink, cancel| {
        cancel_when(sink, "ready", cancel, false);
    })
    .await;
    let result = run.result.unwrap();
    assert_eq!(result.reason, Reason::Cancelled);
    assert_eq!(result.exit_code, None);
    assert!(run.took < Duration::from_secs(20), "{:?}", run.took);
}

#[tokio::test]
async fn a_hard_cancel_kills_at_once() {
    let script = "trap '' TERM\necho ready\nsleep 60\n";
    let run = run_with(script, limits(), &[], |sink, cancel| {
        cancel_when(sink, "ready", cancel, true);
    })
    .await;
    assert_eq!(run.result.unwrap().reason, Reason::Cancelled);
    assert!(run.took < Duration::from_secs(20), "{:?}", run.took);
}

#[tokio::test]
async fn an_image_that_does_not_exist_is_an_infrastructure_error() {
    let driver = connect().await;
    let request = RunRequest {
        run_id: cairn_run::new_run_id(),
        script: b"true".to_vec(),
        properties: cairn_run::instance_properties(
            "docker",
            Some("cairn-run-test-no-such-image:0"),
            &BTreeMap::new(),
            None,
        )
        .unwrap(),
        limits: limits(),
        work_dir: None,
        tags: Default::default(),
        secret_env: Default::default(),
        fence: None,
    };
    let run_id = request.run_id.clone();
    let driver: Arc<dyn InstanceDriver> = Arc::new(driver);
    let mut sink = SharedSink::default();
    let result = cairn_run::run(driver, request, &mut sink, &Cancel::default()).await;
    assert!(matches!(result, Err(RunError::Start(_))), "{result:?}");
    assert!(containers_of(&connect().await, &run_id).await.is_empty());
}

#[tokio::test]
async fn an_instance_that_ran_a_script_is_stale() {
    let driver = connect().await;
    let image = ensure_image(&driver).await;
    let driver: Arc<dyn InstanceDriver> = Arc::new(driver);
    let run_id = cairn_run::new_run_id();
    let spec = InstanceSpec {
        properties: cairn_run::instance_properties(
            "docker",
            Some(&image.0),
            &BTreeMap::new(),
            None,
        )
        .unwrap(),
        ..InstanceSpec::default()
    };
    let mut instance = Instance::start(driver.clone(), spec, &run_id)
        .await
        .unwrap();
    let id = instance.id().to_owned();
    let mut sink = SharedSink::default();
    let cancel = Cancel::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    instance.upload_script(b"echo first\n").await.unwrap();
    let first = instance
        .run_script(
            &mut sink,
            &SecretEnv::default(),
            &limits(),
            deadline,
            &cancel,
        )
        .await
        .unwrap();
    assert!(first.passed(), "{first:?}");
    let again = instance
        .run_script(
            &mut sink,
            &SecretEnv::default(),
            &limits(),
            deadline,
            &cancel,
        )
        .await;
    assert!(matches!(again, Err(RunError::Stale(_))), "{again:?}");
    // Another value for the same container finds the first script's traces on it.
    let mut reused = Instance::attach(driver.clone(), &id, &run_id);
    let upload = reused.upload_script(b"echo second\n").await;
    assert!(matches!(upload, Err(RunError::Stale(_))), "{upload:?}");
    reused.stop().await.unwrap();
    instance.stop().await.unwrap();
    assert!(containers_of(&connect().await, &run_id).await.is_empty());
}

#[tokio::test]
async fn a_hard_cancel_while_the_container_is_created_leaves_none() {
    for delay_ms in [5, 30, 80] {
        let run = run_with("echo hi\n", limits(), &[], |_, cancel| {
            let hard = cancel.hard.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                hard.cancel();
            });
        })
        .await;
        // Either the cancel came first, or the script was quicker; nothing is left either way.
        let result = run.result.unwrap();
        assert!(
            result.reason == Reason::Cancelled || result.passed(),
            "{result:?}"
        );
    }
}

#[tokio::test]
async fn the_script_arrives_byte_for_byte_with_its_run() {
    // The docker driver has the run's own command write the script (no archive upload).
    let script = "#!/bin/sh\n\t  indented \\ back\\slash 'single' \"double\" $HOME `x` %s %%\nprintf '%s' \"$(cat \"$0\")\" > /copy\ncat /copy\n";
    let run = run(script, limits()).await;
    let result = run.result.unwrap();
    assert!(result.passed(), "{result:?}: {}", run.log);
    // The first line fails to run as a command (`indented` is no program); what counts is
    // that the copy the script made of itself is the script, whole.
    assert!(
        run.log.ends_with(script.trim_end_matches('\n')),
        "{:?}",
        run.log
    );
}

#[tokio::test]
async fn a_script_that_cannot_be_written_is_an_upload_failure() {
    let driver = connect().await;
    let image = ensure_image(&driver).await;
    let read_only = tempfile::tempdir().unwrap();
    // The image's working directory is `/`: a directory mounted at the script's path there
    // cannot be written as a file.
    let properties = serde_json::json!({
        "image": image.0,
        "command": ["/bin/sh", "-c", "exec sleep 2147483647"],
        "mounts": [{ "source": read_only.path(), "target": "/.cairn-run-script", "readOnly": true }],
    });
    let driver: Arc<dyn InstanceDriver> = Arc::new(driver);
    let run_id = cairn_run::new_run_id();
    let spec = InstanceSpec {
        properties,
        ..InstanceSpec::default()
    };
    let mut instance = Instance::start(driver.clone(), spec, &run_id)
        .await
        .unwrap();
    instance.upload_script(b"echo never\n").await.unwrap();
    let mut sink = SharedSink::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let outcome = instance
        .run_script(
            &mut sink,
            &SecretEnv::default(),
            &limits(),
            deadline,
            &Cancel::default(),
        )
        .await;
    instance.stop().await.unwrap();
    assert!(
        matches!(outcome, Err(RunError::Upload(_))),
        "{outcome:?}: {}",
        sink.text()
    );
    assert!(!sink.text().contains("--cairn-run-"), "{}", sink.text());
    assert!(containers_of(&connect().await, &run_id).await.is_empty());
}
