//! The `docker` driver feeding a command's stdin through the exec API, and reporting the
//! engine's own health status, against the real Docker Engine (these fail without one). The
//! image is built here `FROM scratch` from Debian's static busybox, with a `HEALTHCHECK`; all
//! this test makes carries its run's label and is removed at the end, also on failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use cairn_compute::docker::DockerDriver;
use cairn_compute::{DestroyReason, Health, InstanceDriver, InstanceSpec, Stream};

const RUN_LABEL: &str = "cairn.test.run";

async fn connect() -> DockerDriver {
    DockerDriver::connect(std::env::var("DOCKER_HOST").ok().as_deref())
        .await
        .unwrap_or_else(|error| panic!("this test needs the Docker Engine: {error}"))
}

fn image_of(run: &str) -> String {
    format!("cairn-test-busybox-healthy:{run}")
}

/// A busybox image whose `HEALTHCHECK` passes while `/ok` exists.
async fn build_image(driver: &DockerDriver, image: &str) {
    cairn_compute::test_image::build_busybox_image(
        driver.client(),
        image,
        &["sh", "sleep", "cat", "test", "touch", "rm", "tr"],
        "HEALTHCHECK --interval=1s --timeout=1s --retries=1 CMD [\"/bin/test\", \"-e\", \"/ok\"]",
    )
    .await
    .unwrap_or_else(|error| panic!("{error}"));
}

/// Removes this run's containers and image when dropped, even after a failed assertion.
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
                let tags = BTreeMap::from([(RUN_LABEL.to_owned(), run.clone())]);
                for instance in driver.describe(&tags, false).await.unwrap_or_default() {
                    let _ = driver.destroy(&instance.id, DestroyReason::Terminate).await;
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

async fn wait_for(driver: &DockerDriver, id: &str, wanted: Health) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let health = driver.health(id).await.unwrap();
        if health == wanted {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the container stayed {health:?}, not {wanted:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_feeds_stdin_and_health_follows_the_engines_healthcheck() {
    let driver = connect().await;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let _cleanup = Cleanup { run: run.clone() };
    build_image(&driver, &image_of(&run)).await;
    let id = driver
        .provision(InstanceSpec {
            properties: serde_json::json!({ "image": image_of(&run) }),
            tags: BTreeMap::from([(RUN_LABEL.to_owned(), run.clone())]),
            init: Some("touch /ok; sleep 300".to_owned()),
            ..Default::default()
        })
        .await
        .unwrap();

    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let code = driver
        .exec_with_stdin(
            &id,
            &[
                "sh".into(),
                "-c".into(),
                "tr a-z A-Z; echo oops >&2; exit 4".into(),
            ],
            Some(b"hello from stdin".to_vec()),
            sender,
        )
        .await
        .unwrap();
    assert_eq!(code, 4);
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    while let Ok(chunk) = receiver.try_recv() {
        match chunk.stream {
            Stream::Stdout => stdout.extend(chunk.bytes),
            Stream::Stderr => stderr.extend(chunk.bytes),
        }
    }
    assert_eq!(String::from_utf8_lossy(&stdout), "HELLO FROM STDIN");
    assert_eq!(String::from_utf8_lossy(&stderr), "oops\n");

    wait_for(&driver, &id, Health::Healthy).await;
    let (sender, _output) = tokio::sync::mpsc::unbounded_channel();
    let removed = driver
        .exec(&id, &["rm".into(), "/ok".into()], sender)
        .await
        .unwrap();
    assert_eq!(removed, 0);
    wait_for(&driver, &id, Health::Unhealthy).await;

    driver.destroy(&id, DestroyReason::Terminate).await.unwrap();
    assert!(matches!(
        driver.health(&id).await,
        Err(cairn_compute::DriverError::NotFound(_))
    ));
}
