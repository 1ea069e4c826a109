//! Groups converging on the `fake` driver: scaling, quorum members, rolling updates that pass
//! and that fail their health check, and `watch` replacing an instance removed outside.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use cairn_compute::fake::FakeDriver;
use cairn_compute::group::{self, CONFIG_HASH_TAG, GroupSpec, HealthCheck};
use cairn_compute::{DestroyReason, InstanceDriver};

fn driver(dir: &tempfile::TempDir) -> Arc<dyn InstanceDriver> {
    Arc::new(
        FakeDriver::new(&serde_json::json!({ "path": dir.path().join("instances.json") })).unwrap(),
    )
}

fn scaled(size: usize, version: &str) -> GroupSpec {
    GroupSpec {
        id: "web".to_owned(),
        properties: serde_json::json!({ "image": "web", "version": version }),
        init: None,
        size: Some(size),
        logical_ids: Vec::new(),
        attachments: Vec::new(),
        rolling_update: None,
        health: Some(HealthCheck {
            command: vec!["true".to_owned()],
            timeout_seconds: 1,
            interval_ms: 10,
            ..Default::default()
        }),
    }
}

async fn members(
    driver: &Arc<dyn InstanceDriver>,
    spec: &GroupSpec,
) -> Vec<cairn_compute::InstanceDescription> {
    driver
        .describe(&group::group_tags(spec), false)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_scaled_group_grows_and_shrinks() {
    let dir = tempfile::tempdir().unwrap();
    let driver = driver(&dir);
    let report = group::converge(driver.clone(), &scaled(3, "1"))
        .await
        .unwrap();
    assert_eq!(report.created.len(), 3);
    let report = group::converge(driver.clone(), &scaled(5, "1"))
        .await
        .unwrap();
    assert_eq!((report.created.len(), report.destroyed.len()), (2, 0));
    assert_eq!(members(&driver, &scaled(5, "1")).await.len(), 5);
    let report = group::converge(driver.clone(), &scaled(2, "1"))
        .await
        .unwrap();
    assert_eq!(report.destroyed.len(), 3);
    let left = members(&driver, &scaled(2, "1")).await;
    assert_eq!(left.len(), 2);
    let fingerprint = scaled(2, "1").fingerprint();
    assert!(
        left.iter()
            .all(|instance| instance.tags[CONFIG_HASH_TAG] == fingerprint)
    );
    // Converged: nothing more to do.
    assert!(group::plan(&scaled(2, "1"), &left).is_empty());
}

#[tokio::test]
async fn a_quorum_group_keeps_exactly_its_logical_ids() {
    let dir = tempfile::tempdir().unwrap();
    let driver = driver(&dir);
    let mut spec = scaled(0, "1");
    spec.size = None;
    spec.logical_ids = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
    group::converge(driver.clone(), &spec).await.unwrap();
    let mut ids: Vec<String> = members(&driver, &spec)
        .await
        .into_iter()
        .filter_map(|instance| instance.logical_id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["a", "b", "c"]);
    // A member lost is recreated with its logical ID; one dropped from the spec goes.
    let b = members(&driver, &spec)
        .await
        .into_iter()
        .find(|instance| instance.logical_id.as_deref() == Some("b"))
        .unwrap();
    driver
        .destroy(&b.id, DestroyReason::Terminate)
        .await
        .unwrap();
    spec.logical_ids = vec!["a".to_owned(), "b".to_owned()];
    let report = group::converge(driver.clone(), &spec).await.unwrap();
    assert_eq!((report.created.len(), report.destroyed.len()), (1, 1));
    let mut ids: Vec<String> = members(&driver, &spec)
        .await
        .into_iter()
        .filter_map(|instance| instance.logical_id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["a", "b"]);
}

#[tokio::test]
async fn a_rolling_update_replaces_one_at_a_time_and_stops_when_unhealthy() {
    let dir = tempfile::tempdir().unwrap();
    let driver = driver(&dir);
    group::converge(driver.clone(), &scaled(6, "1"))
        .await
        .unwrap();
    let old: Vec<String> = members(&driver, &scaled(6, "1"))
        .await
        .into_iter()
        .map(|instance| instance.id)
        .collect();

    let report = group::converge(driver.clone(), &scaled(6, "2"))
        .await
        .unwrap();
    assert_eq!(report.replaced.len(), 6);
    let now = members(&driver, &scaled(6, "2")).await;
    assert_eq!(now.len(), 6);
    assert!(now.iter().all(|instance| !old.contains(&instance.id)));
    let fingerprint = scaled(6, "2").fingerprint();
    assert!(
        now.iter()
            .all(|instance| instance.tags[CONFIG_HASH_TAG] == fingerprint)
    );

    // Version 3 never passes its health check: the first replacement fails, the rollout stops,
    // and the six healthy version-2 instances keep serving.
    let mut broken = scaled(6, "3");
    broken.health = Some(HealthCheck {
        command: vec!["false".to_owned()],
        timeout_seconds: 1,
        interval_ms: 50,
        ..Default::default()
    });
    let error = group::converge(driver.clone(), &broken).await.unwrap_err();
    assert!(error.to_string().contains("health check"), "{error}");
    assert!(
        error.to_string().contains("old instances keep serving"),
        "{error}"
    );
    let after = members(&driver, &broken).await;
    assert_eq!(after.len(), 6);
    assert!(
        after
            .iter()
            .all(|instance| instance.tags[CONFIG_HASH_TAG] == fingerprint)
    );
}

#[tokio::test]
async fn watch_replaces_an_instance_removed_outside() {
    let dir = tempfile::tempdir().unwrap();
    let driver = driver(&dir);
    let spec = scaled(3, "1");
    group::converge(driver.clone(), &spec).await.unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let (reports, mut received) = tokio::sync::mpsc::unbounded_channel();
    let watcher = tokio::spawn({
        let driver = driver.clone();
        let spec = spec.clone();
        let cancel = cancel.clone();
        async move { group::watch(driver, &spec, Duration::from_millis(100), cancel, reports).await }
    });
    received.recv().await.unwrap().unwrap();
    let victim = members(&driver, &spec).await.remove(0);
    driver
        .destroy(&victim.id, DestroyReason::Terminate)
        .await
        .unwrap();
    let replaced = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let report = received.recv().await.unwrap().unwrap();
            if !report.created.is_empty() {
                return report;
            }
        }
    })
    .await
    .expect("watch replaced the instance within 10 s");
    assert_eq!(replaced.created.len(), 1);
    assert_eq!(members(&driver, &spec).await.len(), 3);
    cancel.cancel();
    watcher.await.unwrap();
}

#[test]
fn specs_are_checked_and_fingerprints_ignore_key_order() {
    let mut spec = scaled(1, "1");
    spec.logical_ids = vec!["a".to_owned()];
    assert!(spec.check().is_err());
    let one: GroupSpec =
        serde_json::from_str(r#"{"id":"g","size":1,"properties":{"a":1,"b":{"x":1,"y":2}}}"#)
            .unwrap();
    let other: GroupSpec =
        serde_json::from_str(r#"{"id":"g","size":2,"properties":{"b":{"y":2,"x":1},"a":1}}"#)
            .unwrap();
    assert_eq!(one.fingerprint(), other.fingerprint());
    let changed: GroupSpec =
        serde_json::from_str(r#"{"id":"g","size":1,"properties":{"a":2}}"#).unwrap();
    assert_ne!(one.fingerprint(), changed.fingerprint());
}

#[tokio::test]
async fn a_rolling_update_in_batches_replaces_a_batch_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let driver = driver(&dir);
    group::converge(driver.clone(), &scaled(6, "1"))
        .await
        .unwrap();
    let mut batched = scaled(6, "2");
    batched.rolling_update = Some(group::RollingUpdate {
        batch_size: 3,
        pause_seconds: 0,
    });
    let report = group::converge(driver.clone(), &batched).await.unwrap();
    assert_eq!(report.replaced.len(), 6);
    let fingerprint = batched.fingerprint();
    let rolled = members(&driver, &batched).await;
    assert_eq!(rolled.len(), 6);
    assert!(
        rolled
            .iter()
            .all(|instance| instance.tags[CONFIG_HASH_TAG] == fingerprint)
    );

    // An unhealthy batch is removed whole; the group stays at six, all of version 2.
    let mut broken = scaled(6, "3");
    broken.rolling_update = batched.rolling_update.clone();
    broken.health = Some(HealthCheck {
        command: vec!["false".to_owned()],
        timeout_seconds: 1,
        interval_ms: 50,
        ..Default::default()
    });
    assert!(group::converge(driver.clone(), &broken).await.is_err());
    let after = members(&driver, &broken).await;
    assert_eq!(after.len(), 6);
    assert!(
        after
            .iter()
            .all(|instance| instance.tags[CONFIG_HASH_TAG] == fingerprint)
    );
}
