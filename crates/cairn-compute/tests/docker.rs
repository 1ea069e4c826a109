//! The `docker` driver against the real Docker Engine. No image can be pulled: the test image
//! is built here, `FROM scratch`, from Debian's static busybox. Everything made carries a label
//! unique to the run and is removed at the end, also when a test fails. Without a reachable
//! engine these tests fail, loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use cairn_compute::docker::DockerDriver;
use cairn_compute::group::{self, GroupSpec, HealthCheck};
use cairn_compute::{DestroyReason, InstanceDriver, InstanceSpec, Stream};

const RUN_LABEL: &str = "cairn.test.run";

/// Each test builds and removes its own tag of the image (the layers are shared and cached).
fn image_of(run: &str) -> String {
    format!("cairn-test-busybox:{run}")
}

async fn connect() -> DockerDriver {
    DockerDriver::connect(std::env::var("DOCKER_HOST").ok().as_deref())
        .await
        .unwrap_or_else(|error| panic!("these tests need the Docker Engine: {error}"))
}

/// Builds the test image from busybox.
async fn ensure_image(driver: &DockerDriver, image: &str) {
    cairn_compute::test_image::build_busybox_image(
        driver.client(),
        image,
        &["sh", "sleep", "true", "false", "echo", "cat"],
        "CMD [\"/bin/sh\"]",
    )
    .await
    .unwrap_or_else(|error| panic!("{error}"));
}

/// Removes every container of this run (tagged with the run, or members of its group) and
/// its image tag when dropped, even after a failed assertion.
struct Cleanup {
    run: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let run = self.run.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async {
                let driver = connect().await;
                for tags in [
                    BTreeMap::from([(RUN_LABEL.to_owned(), run.clone())]),
                    BTreeMap::from([(group::GROUP_TAG.to_owned(), format!("web-{run}"))]),
                ] {
                    for instance in driver.describe(&tags, false).await.unwrap_or_default() {
                        let _ = driver.destroy(&instance.id, DestroyReason::Terminate).await;
                    }
                }
                for role in ["web", "db"] {
                    let _ = driver
                        .client()
                        .remove_volume(
                            &format!("vol-{run}-{role}"),
                            None::<bollard::query_parameters::RemoveVolumeOptions>,
                        )
                        .await;
                }
                let _ = driver
                    .client()
                    .remove_image(
                        &image_of(&run),
                        None::<bollard::query_parameters::RemoveImageOptions>,
                        None,
                    )
                    .await;
            });
        })
        .join();
    }
}

fn sleeper(run: &str, role: &str) -> InstanceSpec {
    InstanceSpec {
        properties: serde_json::json!({
            "image": image_of(run),
            "command": ["sleep", "300"],
            "env": { "ROLE": role },
            "memoryMb": 64,
            "ports": [{ "internal": 8080 }],
            "mounts": [{ "source": format!("vol-{run}-{role}"), "target": "/data" }],
        }),
        tags: BTreeMap::from([
            (RUN_LABEL.to_owned(), run.to_owned()),
            ("role".to_owned(), role.to_owned()),
        ]),
        init: None,
        logical_id: None,
        attachments: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_are_provisioned_described_run_commands_and_destroyed() {
    let driver = connect().await;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let _cleanup = Cleanup { run: run.clone() };
    ensure_image(&driver, &image_of(&run)).await;

    let web = driver.provision(sleeper(&run, "web")).await.unwrap();
    let db = driver.provision(sleeper(&run, "db")).await.unwrap();
    let all = driver
        .describe(&BTreeMap::from([(RUN_LABEL.to_owned(), run.clone())]), true)
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|instance| instance.running));
    let only_web = driver
        .describe(
            &BTreeMap::from([
                (RUN_LABEL.to_owned(), run.clone()),
                ("role".to_owned(), "web".to_owned()),
            ]),
            false,
        )
        .await
        .unwrap();
    assert_eq!(only_web.len(), 1);
    assert_eq!(only_web[0].id, web);
    assert_eq!(only_web[0].tags["role"], "web");

    let (sender, mut output) = tokio::sync::mpsc::unbounded_channel();
    let code = driver
        .exec(
            &db,
            &[
                "sh".to_owned(),
                "-c".to_owned(),
                "echo role=$ROLE; echo oops >&2; exit 3".to_owned(),
            ],
            sender,
        )
        .await
        .unwrap();
    assert_eq!(code, 3);
    let mut stdout = String::new();
    let mut stderr = String::new();
    while let Some(chunk) = output.recv().await {
        let text = String::from_utf8_lossy(&chunk.bytes).into_owned();
        match chunk.stream {
            Stream::Stdout => stdout.push_str(&text),
            Stream::Stderr => stderr.push_str(&text),
        }
    }
    assert_eq!(stdout, "role=db\n");
    assert_eq!(stderr, "oops\n");

    // Without a tags file, Docker (which fixes labels at creation) cannot label; with one,
    // added tags are kept there and filter `describe` like labels do.
    assert!(driver.label(&web, &BTreeMap::new()).await.is_err());
    let tags_dir = tempfile::tempdir().unwrap();
    let labelling = connect()
        .await
        .with_tags_file(tags_dir.path().join("tags.json"));
    labelling
        .label(
            &web,
            &BTreeMap::from([("owner".to_owned(), "me".to_owned())]),
        )
        .await
        .unwrap();
    let owned = labelling
        .describe(
            &BTreeMap::from([
                (RUN_LABEL.to_owned(), run.clone()),
                ("owner".to_owned(), "me".to_owned()),
            ]),
            false,
        )
        .await
        .unwrap();
    assert_eq!(owned.len(), 1);
    assert_eq!(owned[0].id, web);
    assert_eq!(owned[0].tags["role"], "web");
    driver
        .copy_in(&db, "/script.sh", b"echo copied in".to_vec())
        .await
        .unwrap();
    let (sender, mut copied) = tokio::sync::mpsc::unbounded_channel();
    let code = driver
        .exec(&db, &["sh".to_owned(), "/script.sh".to_owned()], sender)
        .await
        .unwrap();
    assert_eq!(code, 0);
    let mut text = Vec::new();
    while let Some(chunk) = copied.recv().await {
        text.extend(chunk.bytes);
    }
    assert_eq!(String::from_utf8_lossy(&text), "copied in\n");
    assert!(driver.address(&db).await.unwrap().is_some());
    let inspected = driver.client().inspect_container(&db, None).await.unwrap();
    let host_config = inspected.host_config.unwrap();
    assert!(host_config.port_bindings.unwrap().contains_key("8080/tcp"));
    assert_eq!(
        host_config.binds.unwrap(),
        vec![format!("vol-{run}-db:/data")]
    );

    // Attachments: a volume mounted at /attachments/<id>.
    let mut attached = sleeper(&run, "attached");
    attached.attachments = vec![cairn_compute::Attachment {
        id: format!("vol-{run}-web"),
        kind: "volume".to_owned(),
    }];
    attached.properties["mounts"] = serde_json::json!([]);
    let attached = driver.provision(attached).await.unwrap();
    let binds = driver
        .client()
        .inspect_container(&attached, None)
        .await
        .unwrap()
        .host_config
        .unwrap()
        .binds
        .unwrap();
    assert_eq!(
        binds,
        vec![format!("vol-{run}-web:/attachments/vol-{run}-web")]
    );
    driver
        .destroy(&attached, DestroyReason::Terminate)
        .await
        .unwrap();
    driver
        .destroy(&web, DestroyReason::Terminate)
        .await
        .unwrap();
    driver.destroy(&db, DestroyReason::Terminate).await.unwrap();
    // Destroying what is gone is not an error.
    driver.destroy(&db, DestroyReason::Terminate).await.unwrap();
    let left = driver
        .describe(
            &BTreeMap::from([(RUN_LABEL.to_owned(), run.clone())]),
            false,
        )
        .await
        .unwrap();
    assert!(left.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_containers_converges_scales_and_rolls() {
    let driver = connect().await;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let _cleanup = Cleanup { run: run.clone() };
    ensure_image(&driver, &image_of(&run)).await;
    let driver: Arc<dyn InstanceDriver> = Arc::new(driver);
    let spec = |size: usize, version: &str| GroupSpec {
        id: format!("web-{run}"),
        properties: serde_json::json!({ "image": image_of(&run), "env": { "VERSION": version } }),
        init: Some("sleep 300".to_owned()),
        size: Some(size),
        logical_ids: Vec::new(),
        attachments: Vec::new(),
        rolling_update: None,
        health: Some(HealthCheck {
            command: vec![
                "sh".to_owned(),
                "-c".to_owned(),
                "test -n \"$VERSION\"".to_owned(),
            ],
            timeout_seconds: 20,
            interval_ms: 100,
            ..Default::default()
        }),
    };
    let report = group::converge(driver.clone(), &spec(3, "1"))
        .await
        .unwrap();
    assert_eq!(report.created.len(), 3);
    let report = group::converge(driver.clone(), &spec(2, "1"))
        .await
        .unwrap();
    assert_eq!(report.destroyed.len(), 1);
    let report = group::converge(driver.clone(), &spec(2, "2"))
        .await
        .unwrap();
    assert_eq!(report.replaced.len(), 2);
    let members = driver
        .describe(&group::group_tags(&spec(2, "2")), false)
        .await
        .unwrap();
    assert_eq!(members.len(), 2);
    assert!(members.iter().all(|member| member.running));
    let removed = group::destroy_group(driver.as_ref(), &spec(2, "2"))
        .await
        .unwrap();
    assert_eq!(removed.len(), 2);
    assert!(
        driver
            .describe(&group::group_tags(&spec(2, "2")), false)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_replaces_a_container_removed_outside_cairn_within_ten_seconds() {
    let driver = connect().await;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let _cleanup = Cleanup { run: run.clone() };
    ensure_image(&driver, &image_of(&run)).await;
    let driver: Arc<dyn InstanceDriver> = Arc::new(driver);
    let spec = GroupSpec {
        id: format!("web-{run}"),
        properties: serde_json::json!({ "image": image_of(&run) }),
        init: Some("sleep 300".to_owned()),
        size: Some(2),
        logical_ids: Vec::new(),
        attachments: Vec::new(),
        rolling_update: None,
        health: None,
    };
    group::converge(driver.clone(), &spec).await.unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let (reports, mut received) = tokio::sync::mpsc::unbounded_channel();
    let watcher = tokio::spawn({
        let driver = driver.clone();
        let spec = spec.clone();
        let cancel = cancel.clone();
        async move {
            group::watch(
                driver,
                &spec,
                std::time::Duration::from_secs(1),
                cancel,
                reports,
            )
            .await
        }
    });
    received.recv().await.unwrap().unwrap();
    let victim = driver
        .describe(&group::group_tags(&spec), false)
        .await
        .unwrap()
        .remove(0);
    driver
        .destroy(&victim.id, DestroyReason::Terminate)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let report = received.recv().await.unwrap().unwrap();
            if !report.created.is_empty() {
                return;
            }
        }
    })
    .await
    .expect("the removed container was replaced within 10 s");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    cancel.cancel();
    watcher.await.unwrap();
    let members = driver
        .describe(&group::group_tags(&spec), false)
        .await
        .unwrap();
    assert_eq!(members.iter().filter(|member| member.running).count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_members_and_a_rolling_update_of_six_that_stops_when_unhealthy() {
    let driver = connect().await;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let _cleanup = Cleanup { run: run.clone() };
    ensure_image(&driver, &image_of(&run)).await;
    let driver: Arc<dyn InstanceDriver> = Arc::new(driver);
    let spec = |version: &str, healthy: bool| GroupSpec {
        id: format!("web-{run}"),
        properties: serde_json::json!({ "image": image_of(&run), "env": { "VERSION": version } }),
        init: Some("sleep 300".to_owned()),
        size: Some(6),
        logical_ids: Vec::new(),
        attachments: Vec::new(),
        rolling_update: None,
        health: Some(HealthCheck {
            command: vec![if healthy { "true" } else { "false" }.to_owned()],
            timeout_seconds: 2,
            interval_ms: 100,
            ..Default::default()
        }),
    };
    group::converge(driver.clone(), &spec("1", true))
        .await
        .unwrap();
    let report = group::converge(driver.clone(), &spec("2", true))
        .await
        .unwrap();
    assert_eq!(report.replaced.len(), 6);
    let error = group::converge(driver.clone(), &spec("3", false))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("old instances keep serving"),
        "{error}"
    );
    let members = driver
        .describe(&group::group_tags(&spec("2", true)), false)
        .await
        .unwrap();
    assert_eq!(members.len(), 6);
    let fingerprint = spec("2", true).fingerprint();
    assert!(
        members
            .iter()
            .all(|member| member.running && member.tags[group::CONFIG_HASH_TAG] == fingerprint)
    );
    group::destroy_group(driver.as_ref(), &spec("2", true))
        .await
        .unwrap();

    // A quorum group: exactly these logical IDs, each a container labelled with its ID.
    let quorum = GroupSpec {
        id: format!("web-{run}"),
        properties: serde_json::json!({ "image": image_of(&run) }),
        init: Some("sleep 300".to_owned()),
        size: None,
        logical_ids: vec!["a".to_owned(), "b".to_owned(), "c".to_owned()],
        attachments: Vec::new(),
        rolling_update: None,
        health: None,
    };
    group::converge(driver.clone(), &quorum).await.unwrap();
    let mut ids: Vec<String> = driver
        .describe(&group::group_tags(&quorum), false)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|member| member.logical_id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["a", "b", "c"]);
    assert!(
        group::plan(
            &quorum,
            &driver
                .describe(&group::group_tags(&quorum), false)
                .await
                .unwrap()
        )
        .is_empty()
    );
}
