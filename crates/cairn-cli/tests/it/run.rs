//! `cairn run SCRIPT`: exit codes (the script's own, 124 hard timeout, 123 log silence, 122
//! log cap, 125 infrastructure, 130 cancelled, 2 bad input), driver settings from flags and
//! the environment, `--json`, `--list-drivers`, `--help-driver`, and Ctrl-C once and twice.
//! The `fake` driver covers every path without Docker; the `process` driver runs real scripts.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::TestContext;

fn context_with_script(script: &str) -> TestContext {
    let context = TestContext::new();
    std::fs::write(context.project().join("job.sh"), script).unwrap();
    context
}

fn fake_run(context: &TestContext, extra: &[&str]) -> crate::support::Run {
    let mut args = vec!["run", "job.sh", "--driver", "fake"];
    args.extend_from_slice(extra);
    context.cairn(&args)
}

/// The `process` driver's instance records left under `CAIRN_HOME`.
fn process_records(context: &TestContext) -> Vec<String> {
    std::fs::read_dir(context.home().join("run").join("process"))
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".json"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_passing_run_exits_0_with_its_log_on_stdout() {
    let context = context_with_script("echo hi\n");
    let run = fake_run(&context, &["--set", "logOutput=Hello, world!"]).success();
    assert_eq!(run.stdout, "Hello, world!");
    assert_eq!(run.stderr, "");
}

#[test]
fn the_scripts_exit_code_is_cairns() {
    let context = context_with_script("exit 7\n");
    fake_run(&context, &["--set", "exitCode=7"]).expect_code(7);
}

#[test]
fn settings_come_from_the_environment_and_the_flag_wins() {
    let context = context_with_script("true\n");
    let mut command = context.command(&["run", "job.sh", "--driver", "fake"]);
    command.env("CAIRN_RUN_FAKE_EXIT_CODE", "5");
    assert_eq!(command.output().unwrap().status.code(), Some(5));
    let mut command = context.command(&[
        "run",
        "job.sh",
        "--driver",
        "fake",
        "--setting",
        "exitCode=6",
    ]);
    command.env("CAIRN_RUN_FAKE_EXIT_CODE", "5");
    assert_eq!(command.output().unwrap().status.code(), Some(6));
}

#[test]
fn runs_that_do_not_complete_have_their_own_exit_codes() {
    let context = context_with_script("true\n");
    let cases: [(&[&str], i32, &str); 4] = [
        (
            &["--set", "runSleep=30s", "--timeout", "500ms"],
            124,
            "hard timeout of 500ms",
        ),
        (
            &["--set", "runSleep=30s", "--log-silence", "300ms"],
            123,
            "wrote nothing for 300ms",
        ),
        (
            &["--set", "logOutput=0123456789abcdef", "--max-log", "10B"],
            122,
            "cap of 10 bytes",
        ),
        (&["--set", "errorOn=upload"], 125, "uploading the script"),
    ];
    for (flags, code, reason) in cases {
        let run = fake_run(&context, flags).expect_code(code);
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        assert!(run.stderr.contains(reason), "{}", run.stderr);
    }
    let run = fake_run(&context, &["--set", "errorOn=start"]).expect_code(125);
    assert!(
        run.stderr.contains("starting an instance"),
        "{}",
        run.stderr
    );
}

#[test]
fn bad_input_exits_2_and_runs_nothing() {
    let context = context_with_script("true\n");
    for args in [
        &["run", "missing.sh", "--driver", "fake"][..],
        &[
            "run",
            "job.sh",
            "--driver",
            "fake",
            "--timeout",
            "5 minutes",
        ],
        &["run", "job.sh", "--driver", "fake", "--max-log", "lots"],
        &["run", "job.sh", "--driver", "fake", "--set", "colour=blue"],
        &["run", "job.sh", "--driver", "fake", "--env", "NOEQUALS"],
        &["run", "job.sh", "--driver", "vm"],
        &["run", "job.sh", "--driver", "docker"],
        &["run"],
    ] {
        let run = context.cairn(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
    }
    assert!(
        !context
            .home()
            .join("run")
            .join("fake-instances.json")
            .exists()
            || std::fs::read_to_string(context.home().join("run").join("fake-instances.json"))
                .unwrap()
                .trim()
                == "{}"
    );
}

#[test]
fn json_gives_the_result_on_stdout_and_the_log_on_stderr() {
    let context = context_with_script("true\n");
    let run = fake_run(
        &context,
        &[
            "--json",
            "--set",
            "logOutput=some log",
            "--set",
            "exitCode=3",
        ],
    )
    .expect_code(3);
    let result: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(result["exitCode"], 3);
    assert_eq!(result["completed"], true);
    assert_eq!(result["reason"], "finished");
    assert_eq!(result["status"], 3);
    assert_eq!(result["logBytes"], 8);
    assert!(result["runId"].is_string());
    assert!(run.stderr.contains("some log"), "{}", run.stderr);

    let run = fake_run(
        &context,
        &["--json", "--set", "runSleep=30s", "--timeout", "200ms"],
    )
    .expect_code(124);
    let result: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(result["reason"], "hardTimeout");
    assert_eq!(result["completed"], false);
    assert_eq!(result["exitCode"], serde_json::Value::Null);
}

#[test]
fn the_drivers_and_their_settings_are_listed() {
    let context = TestContext::new();
    let run = context.cairn(&["run", "--list-drivers"]).success();
    for name in ["docker", "process", "fake"] {
        assert!(run.stdout.contains(name), "{}", run.stdout);
    }
    let run = context
        .cairn(&["run", "--list-drivers", "--json"])
        .success();
    let drivers: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(drivers.as_array().map(Vec::len), Some(3));
    assert!(drivers[2]["settings"]["logOutput"].is_string(), "{drivers}");

    let run = context.cairn(&["run", "--help-driver", "fake"]).success();
    assert!(
        run.stdout.starts_with("fake: Fake instances"),
        "{}",
        run.stdout
    );
    for needle in [
        "logOutput",
        "CAIRN_RUN_FAKE_LOG_OUTPUT",
        "runSleep",
        "errorOn",
        "startupDuration",
    ] {
        assert!(run.stdout.contains(needle), "{needle}: {}", run.stdout);
    }
    context
        .cairn(&["run", "--help-driver", "nope"])
        .expect_code(2);
    let run = context.cairn(&["run", "--help"]).success();
    assert!(run.stdout.contains("124  hard timeout"), "{}", run.stdout);
}

#[test]
fn the_process_driver_runs_a_script_from_stdin() {
    let context = TestContext::new();
    let mut child = context
        .command(&["run", "-", "--driver", "process", "--env", "WHO=stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"echo \"hello $WHO\"\nexit 4\n").unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(4));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "hello stdin\n");
    assert!(process_records(&context).is_empty());
}

#[test]
fn secret_variables_are_masked_in_the_output() {
    let context = context_with_script(
        "echo \"token=$TOKEN other=$OTHER\"\n[ \"${#TOKEN}\" = 16 ] && echo right-length\n",
    );
    let run = context
        .command(&[
            "run",
            "job.sh",
            "--driver",
            "process",
            "--secret-env",
            "TOKEN",
            "--secret-env",
            "OTHER=on-the-line",
        ])
        .env("TOKEN", "hunter2-from-env")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{run:?}");
    assert_eq!(stdout, "token=[secret] other=[secret]\nright-length\n");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        !stderr.contains("hunter2") && !stderr.contains("on-the-line"),
        "{stderr}"
    );
    let refused = context.cairn(&[
        "run",
        "job.sh",
        "--driver",
        "process",
        "--secret-env",
        "UNSET_HERE",
    ]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("UNSET_HERE"), "{}", refused.stderr);
}

fn interrupt(child: &std::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Starts `cairn run` of `script` on the process driver; returns once the script printed
/// `ready`.
fn start_process_run(context: &TestContext, script: &str) -> std::process::Child {
    start_run(context, script, &["--driver", "process"])
}

/// Starts `cairn run` of `script` with `driver_args`; returns once the script printed `ready`.
fn start_run(context: &TestContext, script: &str, driver_args: &[&str]) -> std::process::Child {
    std::fs::write(context.project().join("job.sh"), script).unwrap();
    let mut child = context
        .command(&[&["run", "job.sh", "--grace", "30s"], driver_args].concat())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    // Keep reading, so the script never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut rest);
    });
    child
}

#[test]
fn one_ctrl_c_sends_sigterm_and_the_script_ends_itself() {
    let context = TestContext::new();
    let child = start_process_run(
        &context,
        "trap 'echo cleaning; exit 3' TERM\necho ready\nwhile :; do sleep 1 & wait $!; done\n",
    );
    let started = Instant::now();
    interrupt(&child);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130));
    assert!(started.elapsed() < Duration::from_secs(15));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cancelled"), "{stderr}");
    assert!(process_records(&context).is_empty());
}

#[test]
fn a_second_ctrl_c_kills_a_script_that_ignores_sigterm() {
    let context = TestContext::new();
    let child = start_process_run(&context, "trap '' TERM\necho ready\nsleep 60\n");
    interrupt(&child);
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    interrupt(&child);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130));
    // The grace period is 30 s: only the second Ctrl-C ends the run this soon.
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(process_records(&context).is_empty());
}

/// Processes whose working directory is under `CAIRN_HOME/run/work`: the scripts of `process`
/// runs and what they started.
fn processes_of_runs(context: &TestContext) -> Vec<String> {
    let work = context.home().join("run").join("work");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|entry| {
            std::fs::read_link(entry.path().join("cwd")).is_ok_and(|cwd| cwd.starts_with(&work))
        })
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn no_process_of_a_cancelled_run_is_left() {
    let context = TestContext::new();
    let child = start_process_run(&context, "trap '' TERM\necho ready\nsleep 60 &\nsleep 60\n");
    assert!(!processes_of_runs(&context).is_empty());
    interrupt(&child);
    std::thread::sleep(Duration::from_millis(300));
    interrupt(&child);
    assert_eq!(child.wait_with_output().unwrap().status.code(), Some(130));
    crate::support::wait_until("the run's processes end", || {
        processes_of_runs(&context).is_empty()
    });
    assert!(process_records(&context).is_empty());
}

mod docker {
    //! `cairn run` on the Docker Engine, in a busybox image built here with the `docker` CLI
    //! (nothing is pulled). Without Docker these tests fail, loudly.

    use std::process::{Command, Stdio};
    use std::time::Duration;

    use super::{context_with_script, interrupt};

    /// A tag of the test image, removed when dropped (also when the test failed).
    struct Image(String);

    impl Drop for Image {
        fn drop(&mut self) {
            let _ = Command::new("docker").args(["rmi", &self.0]).output();
        }
    }

    fn docker(args: &[&str]) -> String {
        let output = Command::new("docker")
            .args(args)
            .output()
            .unwrap_or_else(|error| panic!("these tests need Docker: {error}"));
        assert!(
            output.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Builds the test image from /bin/busybox under a tag of the test's own (the layers are
    /// shared and cached).
    fn build_image() -> Image {
        if !std::path::Path::new("/bin/busybox").exists() {
            let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../scripts/ensure-busybox.sh");
            assert!(Command::new("bash").arg(script).status().unwrap().success());
        }
        let context = tempfile::tempdir().unwrap();
        let bin = context.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
        for applet in ["sh", "sleep", "echo", "cat", "kill"] {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
        std::fs::write(
            context.path().join("Dockerfile"),
            "FROM scratch\nCOPY bin /bin\nCMD [\"/bin/sh\"]\n",
        )
        .unwrap();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let tag = format!("cairn-run-cli-test:t{}-{nanos}", std::process::id());
        // Without the build cache, which may take another test's busybox layer for this one.
        docker(&[
            "build",
            "--no-cache",
            "-q",
            "-t",
            &tag,
            context.path().to_str().unwrap(),
        ]);
        Image(tag)
    }

    fn containers_of(run_id: &str) -> String {
        docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=cairn.run={run_id}"),
        ])
    }

    #[test]
    fn a_run_passes_on_its_exit_code_and_leaves_no_container() {
        let image = build_image();
        let context = context_with_script("echo \"hello $WHO\"\nexit 7\n");
        let run = context.cairn(&[
            "run",
            "job.sh",
            "--image",
            &image.0,
            "--env",
            "WHO=docker",
            "--json",
        ]);
        assert_eq!(run.code, 7, "{}", run.stderr);
        let result: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(result["exitCode"], 7);
        assert!(run.stderr.contains("hello docker"), "{}", run.stderr);
        assert_eq!(containers_of(result["runId"].as_str().unwrap()), "");
    }

    #[test]
    fn ctrl_c_twice_kills_the_script_and_leaves_no_container() {
        let image = build_image();
        let context = context_with_script("trap '' TERM\necho ready\nsleep 60\n");
        let mut child = context
            .command(&[
                "run", "job.sh", "--image", &image.0, "--json", "--grace", "30s",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
        assert_eq!(lines.next().unwrap().unwrap(), "ready");
        std::thread::spawn(move || for _ in lines {});
        interrupt(&child);
        std::thread::sleep(Duration::from_millis(500));
        let started = std::time::Instant::now();
        interrupt(&child);
        let output = child.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(130));
        assert!(started.elapsed() < Duration::from_secs(10));
        let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(result["reason"], "cancelled");
        assert_eq!(containers_of(result["runId"].as_str().unwrap()), "");
    }
}

/// A busybox image of this test's own (nothing can be pulled), removed when dropped.
struct TestImage(String);

impl TestImage {
    fn build() -> TestImage {
        let tag = format!("cairn-cli-run-test:{}", std::process::id());
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let docker = bollard::Docker::connect_with_local_defaults()
                .unwrap_or_else(|error| panic!("these tests need the Docker Engine: {error}"));
            cairn_compute::test_image::build_busybox_image(
                &docker,
                &tag,
                &["sh", "sleep", "echo", "cat", "kill"],
                "CMD [\"/bin/sh\"]",
            )
            .await
            .unwrap_or_else(|error| panic!("building the test image: {error}"));
        });
        TestImage(tag)
    }
}

impl Drop for TestImage {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rmi", "-f", &self.0])
            .output();
    }
}

/// Containers of `cairn run`s (labelled `cairn.run`) made from `image`.
fn run_containers(image: &str) -> Vec<String> {
    let output = std::process::Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            "label=cairn.run",
            "--filter",
            &format!("ancestor={image}"),
        ])
        .output()
        .unwrap_or_else(|error| panic!("these tests need Docker: {error}"));
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[test]
fn ctrl_c_once_and_twice_on_docker_end_the_run_and_leave_no_container() {
    let image = TestImage::build();
    let docker = ["--driver", "docker", "--image", image.0.as_str()];
    let context = TestContext::new();

    // Once: the script gets SIGTERM and ends itself.
    let child = start_run(
        &context,
        "trap 'echo cleaning; exit 3' TERM\necho ready\nwhile :; do sleep 1 & wait $!; done\n",
        &docker,
    );
    let started = Instant::now();
    interrupt(&child);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{output:?}");
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(run_containers(&image.0), Vec::<String>::new());

    // Twice: a script that ignores SIGTERM is killed at the second.
    let child = start_run(&context, "trap '' TERM\necho ready\nsleep 60\n", &docker);
    interrupt(&child);
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    interrupt(&child);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{output:?}");
    // The grace period is 30 s: only the second Ctrl-C ends the run this soon.
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(run_containers(&image.0), Vec::<String>::new());
}
