//! A Pulumi YAML program with `docker:Network`, `docker:Image` (built here from Debian's static
//! busybox: nothing can be pulled) and `docker:Container`, on the real Docker Engine: up,
//! changed, refreshed after the container is removed outside Cairn, destroyed. The `docker` CLI
//! is used only to look at the engine from outside; everything made is removed at the end.

use std::process::Command;

use crate::support::TestContext;

fn docker(args: &[&str]) -> String {
    let output = Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("these tests need Docker: {error}"));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Removes what a run made (by its unique names and label) even when the test fails.
struct Cleanup {
    run: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let ids = docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=cairn.test.run={}", self.run),
        ]);
        for id in ids.split_whitespace() {
            docker(&["rm", "-f", id]);
        }
        docker(&["network", "rm", &format!("net-{}", self.run)]);
        docker(&["rmi", &format!("cairn-docker-test:{}", self.run)]);
    }
}

fn program(run: &str, greeting: &str) -> String {
    format!(
        r#"name: dockerapp
runtime: yaml
resources:
  net:
    type: docker:Network
    properties:
      name: net-{run}
  image:
    type: docker:Image
    properties:
      imageName: cairn-docker-test:{run}
      build:
        context: ./app
      skipPush: true
  app:
    type: docker:Container
    properties:
      image: ${{image.imageName}}
      name: app-{run}
      command: ["sh", "-c", "echo {greeting}; sleep 300"]
      envs: ["GREETING={greeting}"]
      labels:
        - label: cairn.test.run
          value: {run}
      networksAdvanced:
        - name: ${{net.name}}
outputs:
  container: ${{app.name}}
  ip: ${{app.ipAddress}}
"#
    )
}

#[test]
fn a_docker_program_comes_up_changes_refreshes_and_goes_down() {
    if !std::path::Path::new("/bin/busybox").exists() {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../scripts/ensure-busybox.sh");
        assert!(Command::new("bash").arg(script).status().unwrap().success());
    }
    let run = format!("{:x}", std::process::id() ^ 0x5eed);
    let _cleanup = Cleanup { run: run.clone() };
    let context = TestContext::new();
    let app = context.project().join("app");
    std::fs::create_dir_all(app.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", app.join("bin/busybox")).unwrap();
    for applet in ["sh", "sleep", "echo"] {
        std::os::unix::fs::symlink("busybox", app.join("bin").join(applet)).unwrap();
    }
    std::fs::write(app.join("Dockerfile"), "FROM scratch\nCOPY bin /bin\n").unwrap();
    context.write_program(&program(&run, "hello"));
    context.cairn(&["stack", "init", "dev"]).success();

    let up = context.cairn(&["up", "--yes"]).success();
    assert!(up.stdout.contains("4 created"), "{}", up.stdout);
    let name = format!("app-{run}");
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Running}}", &name]),
        "true"
    );
    let network = docker(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}",
        &name,
    ]);
    assert_eq!(network, format!("net-{run}"));
    assert!(docker(&["logs", &name]).contains("hello"));
    let first_id = context.resource("app")["id"].as_str().unwrap().to_owned();

    // A changed command replaces the container; the image and network stay.
    context.write_program(&program(&run, "changed"));
    let changed = context.cairn(&["up", "--yes"]).success();
    assert!(changed.stdout.contains("1 replaced"), "{}", changed.stdout);
    let second_id = context.resource("app")["id"].as_str().unwrap().to_owned();
    assert_ne!(first_id, second_id);
    assert!(docker(&["ps", "-aq", "--no-trunc"]).contains(&second_id));
    assert!(!docker(&["ps", "-aq", "--no-trunc"]).contains(&first_id));

    // Removed outside Cairn: refresh drops it from the state, up creates it again.
    docker(&["rm", "-f", &name]);
    context.cairn(&["refresh", "--yes"]).success();
    assert!(!context.resource_names().contains(&"app".to_owned()));
    context.cairn(&["up", "--yes"]).success();
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Running}}", &name]),
        "true"
    );

    context.cairn(&["destroy", "--yes"]).success();
    assert!(docker(&["ps", "-aq", "--filter", &format!("name=app-{run}")]).is_empty());
    assert!(
        docker(&[
            "network",
            "ls",
            "-q",
            "--filter",
            &format!("name=net-{run}")
        ])
        .is_empty()
    );
    assert!(docker(&["images", "-q", &format!("cairn-docker-test:{run}")]).is_empty());

    // `mustRun` (default true): a container that exits at once is a failed create, and none is
    // left behind; `mustRun: false` accepts it.
    let one_off = |must_run: &str| {
        format!(
            "name: dockerapp\nruntime: yaml\nresources:\n  image:\n    type: docker:Image\n    properties:\n      imageName: cairn-docker-test:{run}\n      build:\n        context: ./app\n      skipPush: true\n  task:\n    type: docker:Container\n    properties:\n      image: ${{image.imageName}}\n      name: task-{run}\n      command: [\"sh\", \"-c\", \"exit 3\"]\n      labels:\n        - label: cairn.test.run\n          value: {run}\n{must_run}"
        )
    };
    context.write_program(&one_off(""));
    let failed = context.cairn(&["up", "--yes"]).expect_code(1);
    assert!(
        failed.stdout.contains("exited at once with code 3")
            || failed.stderr.contains("exited at once with code 3"),
        "{}{}",
        failed.stdout,
        failed.stderr
    );
    assert!(docker(&["ps", "-aq", "--filter", &format!("name=task-{run}")]).is_empty());
    context.write_program(&one_off("      mustRun: false\n"));
    context.cairn(&["up", "--yes"]).success();
    // Once it has stopped, a refresh sees how it ended.
    std::thread::sleep(std::time::Duration::from_millis(500));
    context.cairn(&["refresh", "--yes"]).success();
    assert_eq!(context.resource("task")["outputs"]["exitCode"], 3);
    context.cairn(&["destroy", "--yes"]).success();
}
