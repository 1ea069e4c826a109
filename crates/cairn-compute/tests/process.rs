//! The `process` driver: real local processes, in groups of their own, described across
//! driver instances (as across commands), killed as a group on destroy; and a group of them
//! kept whole by `watch` when one is killed outside Cairn.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cairn_compute::group::{self, GroupSpec, HealthCheck};
use cairn_compute::process::ProcessDriver;
use cairn_compute::{DestroyReason, InstanceDriver, InstanceSpec, Stream};

fn driver(dir: &tempfile::TempDir) -> ProcessDriver {
    ProcessDriver::new(&serde_json::json!({ "dir": dir.path().join("records") })).unwrap()
}

fn pid_of(id: &str) -> u32 {
    id.split('-').nth(1).unwrap().parse().unwrap()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            !stat
                .rsplit_once(')')
                .unwrap()
                .1
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

#[tokio::test]
async fn processes_are_provisioned_described_labelled_run_commands_and_destroyed() {
    let dir = tempfile::tempdir().unwrap();
    let first = driver(&dir);
    let id = first
        .provision(InstanceSpec {
            properties: serde_json::json!({ "env": { "ROLE": "worker" }, "workingDir": dir.path() }),
            tags: BTreeMap::from([("role".to_owned(), "worker".to_owned())]),
            // The shell starts a child: destroy must take the whole group.
            init: Some("sleep 300 & sleep 300".to_owned()),
            logical_id: Some("w1".to_owned()),
            attachments: Vec::new(),
        })
        .await
        .unwrap();
    let pid = pid_of(&id);
    assert!(alive(pid));

    // Another driver on the same directory (another command) sees it.
    let second = driver(&dir);
    second
        .label(
            &id,
            &BTreeMap::from([("owner".to_owned(), "me".to_owned())]),
        )
        .await
        .unwrap();
    let found = second
        .describe(
            &BTreeMap::from([("owner".to_owned(), "me".to_owned())]),
            true,
        )
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].logical_id.as_deref(), Some("w1"));
    assert_eq!(found[0].tags["role"], "worker");
    assert!(found[0].running);

    let (sender, mut output) = tokio::sync::mpsc::unbounded_channel();
    let code = second
        .exec(
            &id,
            &[
                "sh".to_owned(),
                "-c".to_owned(),
                "echo $ROLE in $(pwd); echo bad >&2; exit 4".to_owned(),
            ],
            sender,
        )
        .await
        .unwrap();
    assert_eq!(code, 4);
    let mut stdout = String::new();
    let mut stderr = String::new();
    while let Some(chunk) = output.recv().await {
        let text = String::from_utf8_lossy(&chunk.bytes).into_owned();
        match chunk.stream {
            Stream::Stdout => stdout.push_str(&text),
            Stream::Stderr => stderr.push_str(&text),
        }
    }
    assert_eq!(stdout.trim(), format!("worker in {}", dir.path().display()));
    assert_eq!(stderr.trim(), "bad");

    second.destroy(&id, DestroyReason::Terminate).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!alive(pid), "the process group was killed");
    assert!(
        second
            .describe(&BTreeMap::new(), false)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn watch_replaces_a_process_killed_outside_cairn_within_ten_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let driver: Arc<dyn InstanceDriver> = Arc::new(driver(&dir));
    let spec = GroupSpec {
        id: "workers".to_owned(),
        properties: serde_json::json!({}),
        init: Some("sleep 300".to_owned()),
        size: Some(3),
        logical_ids: Vec::new(),
        attachments: Vec::new(),
        rolling_update: None,
        health: Some(HealthCheck {
            command: vec!["true".to_owned()],
            timeout_seconds: 5,
            interval_ms: 50,
            ..Default::default()
        }),
    };
    group::converge(driver.clone(), &spec).await.unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let (reports, mut received) = tokio::sync::mpsc::unbounded_channel();
    let watcher = tokio::spawn({
        let driver = driver.clone();
        let spec = spec.clone();
        let cancel = cancel.clone();
        async move { group::watch(driver, &spec, Duration::from_millis(500), cancel, reports).await }
    });
    let victim = driver
        .describe(&group::group_tags(&spec), false)
        .await
        .unwrap()
        .remove(0);
    let pid = i32::try_from(pid_of(&victim.id)).unwrap();
    // Killed outside Cairn, as an OOM killer or an operator would.
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    let started = std::time::Instant::now();
    let replaced = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let report = received.recv().await.unwrap().unwrap();
            if !report.replaced.is_empty() || !report.created.is_empty() {
                return report;
            }
        }
    })
    .await
    .expect("the killed instance was replaced within 10 s");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        replaced.replaced.iter().any(|(old, _)| *old == victim.id) || !replaced.created.is_empty()
    );
    let members = driver
        .describe(&group::group_tags(&spec), false)
        .await
        .unwrap();
    assert_eq!(members.iter().filter(|member| member.running).count(), 3);
    cancel.cancel();
    watcher.await.unwrap();
    group::destroy_group(driver.as_ref(), &spec).await.unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn http_and_tcp_probes_decide_health() {
    let dir = tempfile::tempdir().unwrap();
    let driver: Arc<dyn InstanceDriver> = Arc::new(driver(&dir));
    let port = free_port();
    let spec = |id: &str, health: HealthCheck| GroupSpec {
        id: id.to_owned(),
        properties: serde_json::json!({ "workingDir": dir.path() }),
        init: Some(format!(
            "exec python3 -m http.server {port} --bind 127.0.0.1"
        )),
        size: Some(1),
        logical_ids: Vec::new(),
        attachments: Vec::new(),
        rolling_update: None,
        health: Some(health),
    };
    // A new instance must answer HTTP (then TCP) before it counts as healthy.
    let http = HealthCheck {
        http: Some(group::HttpProbe {
            port,
            path: "/".to_owned(),
        }),
        timeout_seconds: 20,
        interval_ms: 100,
        ..Default::default()
    };
    let web = spec("web", http);
    let replaced = group::converge(driver.clone(), &web).await.unwrap();
    assert_eq!(replaced.created.len(), 1);
    let tcp = HealthCheck {
        tcp: Some(port),
        timeout_seconds: 20,
        interval_ms: 100,
        ..Default::default()
    };
    let mut rolled = spec("web", tcp);
    rolled.properties["version"] = serde_json::json!(2);
    // The new instance cannot bind the port the old one holds, but the TCP probe reaches the
    // port all the same: the probe checks the address, as a load balancer would.
    group::converge(driver.clone(), &rolled).await.unwrap();

    // A probe on a port nobody listens on never passes: the instance is removed and the
    // error says which check failed.
    let closed = HealthCheck {
        tcp: Some(free_port()),
        timeout_seconds: 1,
        interval_ms: 100,
        ..Default::default()
    };
    let mut broken = spec("web", closed);
    broken.properties["version"] = serde_json::json!(3);
    let error = group::converge(driver.clone(), &broken).await.unwrap_err();
    assert!(error.to_string().contains("TCP :"), "{error}");
    let members = driver
        .describe(&group::group_tags(&broken), false)
        .await
        .unwrap();
    assert_eq!(members.len(), 1, "the unhealthy replacement was removed");
    assert_eq!(
        members[0].tags[group::CONFIG_HASH_TAG],
        rolled.fingerprint()
    );

    // copy_in writes into the instance's working directory.
    driver
        .copy_in(&members[0].id, "hello.txt", b"hi".to_vec())
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("hello.txt")).unwrap(),
        "hi"
    );
    group::destroy_group(driver.as_ref(), &rolled)
        .await
        .unwrap();
}
