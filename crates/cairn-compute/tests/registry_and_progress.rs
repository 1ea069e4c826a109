//! The driver registry, the fake driver's `failEvery`, converge's progress events, `pretend`
//! and `inspect`, the default `health`, and the process driver feeding stdin and streaming
//! output while a command runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cairn_compute::group::{self, GroupEvent, GroupSpec, HealthCheck};
use cairn_compute::process::ProcessDriver;
use cairn_compute::{
    DestroyReason, DriverError, DriverRegistry, Health, InstanceDriver, InstanceSpec, Stream,
};

fn spec(size: usize, version: &str, healthy: bool) -> GroupSpec {
    GroupSpec {
        id: "web".to_owned(),
        properties: serde_json::json!({ "version": version }),
        init: None,
        size: Some(size),
        logical_ids: Vec::new(),
        attachments: Vec::new(),
        rolling_update: None,
        health: Some(HealthCheck {
            command: vec![if healthy { "true" } else { "false" }.to_owned()],
            timeout_seconds: 1,
            interval_ms: 20,
            ..Default::default()
        }),
    }
}

async fn fake(dir: &tempfile::TempDir, extra: &[(&str, &str)]) -> Arc<dyn InstanceDriver> {
    let mut settings = BTreeMap::from([(
        "path".to_owned(),
        dir.path().join("fake.json").display().to_string(),
    )]);
    settings.extend(
        extra
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned())),
    );
    DriverRegistry::builtin()
        .build_from_strings("fake", &settings)
        .await
        .unwrap()
}

fn events_of(mut receiver: tokio::sync::mpsc::Receiver<GroupEvent>) -> Vec<GroupEvent> {
    let mut events = Vec::new();
    while let Ok(event) = receiver.try_recv() {
        events.push(event);
    }
    events
}

#[tokio::test]
async fn the_registry_builds_the_builtin_drivers_and_names_them_on_a_typo() {
    let registry = DriverRegistry::builtin();
    let names: Vec<&str> = registry.drivers().map(|(name, _)| name).collect();
    assert_eq!(names, ["docker", "fake", "process"]);
    assert!(registry.help("process").unwrap().contains("dir"));
    let fake_info = registry.info("fake").unwrap();
    assert_eq!(fake_info.human_name, "Fake instances (a test double)");
    for setting in [
        "startupDuration",
        "logOutput",
        "runSleep",
        "exitCode",
        "errorOn",
    ] {
        assert!(
            fake_info.settings.iter().any(|(name, _)| *name == setting),
            "{setting}"
        );
    }
    assert!(registry.info("vm").is_none());

    let dir = tempfile::tempdir().unwrap();
    let driver = fake(&dir, &[]).await;
    assert_eq!(driver.name(), "fake");
    assert!(driver.help().contains("failEvery"), "{}", driver.help());

    let process = registry
        .build(
            "process",
            serde_json::json!({ "dir": dir.path().join("p") }),
        )
        .await
        .unwrap();
    assert_eq!(process.name(), "process");

    let Err(error) = registry.build("dokcer", serde_json::Value::Null).await else {
        panic!("an unknown driver was built");
    };
    assert!(matches!(error, DriverError::Invalid(_)), "{error}");
    assert!(
        error.to_string().contains("docker, fake, process"),
        "{error}"
    );
}

#[tokio::test]
async fn the_fake_fails_every_nth_provision_and_converge_reports_each() {
    let dir = tempfile::tempdir().unwrap();
    let driver = fake(&dir, &[("failEvery", "2")]).await;
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    let error = group::converge_with_progress(driver.clone(), &spec(4, "1", true), Some(sender))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("one provision in 2"), "{error}");
    let events = events_of(receiver);
    let created = events
        .iter()
        .filter(|event| matches!(event, GroupEvent::Created { .. }))
        .count();
    let failed = events
        .iter()
        .filter(|event| matches!(event, GroupEvent::CreateFailed { .. }))
        .count();
    assert_eq!((created, failed), (2, 2), "{events:?}");
    let members = driver
        .describe(&group::group_tags(&spec(4, "1", true)), false)
        .await
        .unwrap();
    assert_eq!(members.len(), 2);
}

#[tokio::test]
async fn pretend_changes_nothing_and_progress_tells_each_step_of_a_stopped_rollout() {
    let dir = tempfile::tempdir().unwrap();
    let driver = fake(&dir, &[]).await;

    let plan = group::pretend(driver.as_ref(), &spec(3, "1", true))
        .await
        .unwrap();
    assert_eq!(plan.create.len(), 3);
    assert!(
        driver
            .describe(&BTreeMap::new(), false)
            .await
            .unwrap()
            .is_empty()
    );

    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    group::converge_with_progress(driver.clone(), &spec(3, "1", true), Some(sender))
        .await
        .unwrap();
    let events = events_of(receiver);
    assert!(matches!(&events[0], GroupEvent::Planned { plan } if plan.create.len() == 3));
    assert_eq!(events.len(), 4, "{events:?}");

    // Version 2 is never healthy: one replacement is tried, fails, is removed, and it stops.
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    group::converge_with_progress(driver.clone(), &spec(3, "2", false), Some(sender))
        .await
        .unwrap_err();
    let kinds: Vec<String> = events_of(receiver)
        .iter()
        .map(|event| serde_json::to_value(event).unwrap()["event"].to_string())
        .collect();
    assert_eq!(
        kinds,
        [
            "\"planned\"",
            "\"replacing\"",
            "\"unhealthy\"",
            "\"destroyed\"",
            "\"rolloutStopped\""
        ]
    );

    let status = group::inspect(driver.as_ref(), &spec(3, "2", false))
        .await
        .unwrap();
    assert_eq!(status.members.len(), 3);
    assert!(status.members.iter().all(|member| !member.current));
    assert_eq!(status.plan.replace.len(), 3);
    // It round-trips, so it can be stored.
    let stored = serde_json::to_string(&status).unwrap();
    assert_eq!(
        serde_json::from_str::<group::GroupStatus>(&stored).unwrap(),
        status
    );

    let id = status.members[0].instance.id.clone();
    assert_eq!(driver.health(&id).await.unwrap(), Health::Running);
    driver.destroy(&id, DestroyReason::Terminate).await.unwrap();
    assert!(matches!(
        driver.health(&id).await,
        Err(DriverError::NotFound(_))
    ));
}

#[tokio::test]
async fn the_process_driver_feeds_stdin_and_streams_output_while_a_command_runs() {
    let dir = tempfile::tempdir().unwrap();
    let driver = ProcessDriver::new(&serde_json::json!({ "dir": dir.path() })).unwrap();
    let id = driver
        .provision(InstanceSpec {
            properties: serde_json::json!({ "command": ["sleep", "30"] }),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(driver.health(&id).await.unwrap(), Health::Running);

    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let code = driver
        .exec_with_stdin(
            &id,
            &[
                "sh".into(),
                "-c".into(),
                "cat; echo oops >&2; exit 3".into(),
            ],
            Some(b"hello from stdin".to_vec()),
            sender,
        )
        .await
        .unwrap();
    assert_eq!(code, 3);
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    while let Ok(chunk) = receiver.try_recv() {
        match chunk.stream {
            Stream::Stdout => stdout.extend(chunk.bytes),
            Stream::Stderr => stderr.extend(chunk.bytes),
        }
    }
    assert_eq!(stdout, b"hello from stdin");
    assert_eq!(stderr, b"oops\n");

    // The first line arrives while the command still runs.
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let command: Vec<String> = vec!["sh".into(), "-c".into(), "echo first; sleep 3".into()];
    let running = driver.exec(&id, &command, sender);
    tokio::pin!(running);
    tokio::select! {
        chunk = receiver.recv() => assert_eq!(chunk.unwrap().bytes, b"first\n"),
        _ = &mut running => panic!("the output came only when the command ended"),
        () = tokio::time::sleep(Duration::from_secs(2)) => panic!("no output within 2 s"),
    }
    assert_eq!(running.await.unwrap(), 0);

    driver.destroy(&id, DestroyReason::Terminate).await.unwrap();
    assert!(matches!(
        driver.health(&id).await,
        Err(DriverError::NotFound(_))
    ));
}
