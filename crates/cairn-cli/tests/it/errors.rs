//! Bad programs: every error names file:line:col and what would be right, all errors are
//! reported at once, the exit code is 2, and nothing is changed.

use crate::support::TestContext;

/// Runs `preview` and `up` on a broken program and checks both fail the same way without
/// touching state.
#[track_caller]
fn check_rejected(program: &str, expected: &[&str]) -> String {
    let context = TestContext::with_program("name: bad\nruntime: yaml\n");
    context.write_program(program);
    let preview = context.cairn(&["preview"]).expect_code(2);
    for needle in expected {
        assert!(
            preview.stderr.contains(needle),
            "missing `{needle}` in:\n{}",
            preview.stderr
        );
    }
    let up = context.cairn(&["up", "--yes"]).expect_code(2);
    assert_eq!(up.stderr, preview.stderr);
    // Read the checkpoint directly: `stack export` itself needs a readable project file.
    let checkpoint = context.home().join(".pulumi/stacks/bad/dev.json");
    let checkpoint: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(checkpoint).unwrap()).unwrap();
    assert_eq!(
        checkpoint["deployment"]["resources"],
        serde_json::json!([]),
        "a bad program changed state"
    );
    assert!(
        !context.home().join(".pulumi/history").exists(),
        "a bad program recorded an update"
    );
    preview.stderr
}

#[test]
fn yaml_syntax_error_points_at_position() {
    check_rejected(
        "name: bad\nruntime: yaml\nresources:\n  a:\n    type: [unclosed\n",
        &["Cairn.yaml:"],
    );
}

#[test]
fn unknown_property_suggests_the_right_one() {
    check_rejected(
        "name: bad\nruntime: yaml\nresources:\n  pet:\n    type: random:RandomPet\n    properties:\n      lenght: 2\n",
        &["Cairn.yaml:7:7", "lenght", "did you mean `length`"],
    );
}

#[test]
fn unknown_resource_type_is_named() {
    check_rejected(
        "name: bad\nruntime: yaml\nresources:\n  pet:\n    type: random:RandomPett\n",
        &["Cairn.yaml:5:11", "random:RandomPett"],
    );
}

#[test]
fn unknown_reference_is_named() {
    check_rejected(
        "name: bad\nruntime: yaml\nresources:\n  a:\n    type: fake:Resource\n    properties:\n      x: ${nothere.id}\n",
        &["Cairn.yaml:7:", "nothere"],
    );
}

#[test]
fn missing_required_property_is_named() {
    check_rejected(
        "name: bad\nruntime: yaml\nresources:\n  s:\n    type: random:RandomString\n    properties:\n      special: true\n",
        &["Cairn.yaml:", "length"],
    );
}

#[test]
fn wrong_type_is_named() {
    check_rejected(
        "name: bad\nruntime: yaml\nresources:\n  s:\n    type: random:RandomString\n    properties:\n      length: many\n",
        &["Cairn.yaml:7:15", "length"],
    );
}

#[test]
fn dependency_cycle_names_the_cycle() {
    check_rejected(
        "name: bad\nruntime: yaml\nresources:\n  a:\n    type: fake:Resource\n    properties:\n      x: ${b.x}\n  b:\n    type: fake:Resource\n    properties:\n      x: ${a.x}\n",
        &["cycle", "`a`", "`b`"],
    );
}

#[test]
fn all_errors_are_reported_together() {
    let stderr = check_rejected(
        "name: bad\nruntime: yaml\nresources:\n  pet:\n    type: random:RandomPet\n    properties:\n      lenght: 2\n  other:\n    type: fake:Resource\n    properties:\n      x: ${missing}\n",
        &["Cairn.yaml:7:7", "Cairn.yaml:11:"],
    );
    assert!(stderr.contains("missing"), "{stderr}");
}

#[test]
fn missing_project_file_is_bad_input() {
    let context = TestContext::new();
    let run = context.cairn(&["preview"]).expect_code(2);
    assert!(run.stderr.contains("Cairn.yaml"), "{}", run.stderr);
}

#[test]
fn missing_stack_is_bad_input() {
    let context = TestContext::new();
    context.write_program("name: nostack\nruntime: yaml\n");
    let run = context.cairn(&["up", "--yes"]).expect_code(2);
    assert!(run.stderr.contains("cairn stack init"), "{}", run.stderr);
}

/// `depth` block mappings, one `a:` per line, each indented one more.
fn block_mappings(depth: usize) -> String {
    (0..depth)
        .map(|level| format!("{}a:\n", " ".repeat(level + 2)))
        .collect()
}

#[test]
fn a_deeply_nested_block_mapping_is_refused_not_a_crash() {
    // Level 1 is the file's mapping, 2 is `variables`' value (`v` and the first `a`, on line 5,
    // both indented 2): level 129 starts on line 132, indented 129.
    let program = format!(
        "name: bad\nruntime: yaml\nvariables:\n  v:\n{}",
        block_mappings(5_000)
    );
    check_rejected(
        &program,
        &["Cairn.yaml:132:130", "nests more than 128 levels deep"],
    );
}

#[test]
fn a_deeply_nested_main_json_is_refused_not_a_crash() {
    let context = TestContext::with_program("name: bad\nruntime: yaml\n");
    context.write_program("name: bad\nruntime: yaml\nmain: app\n");
    std::fs::create_dir_all(context.project().join("app")).unwrap();
    let json = format!(
        "{{\"variables\": {{\"v\": {}1{}}}}}",
        "[".repeat(5_000),
        "]".repeat(5_000)
    );
    std::fs::write(context.project().join("app/Main.json"), json).unwrap();
    let run = context.cairn(&["preview"]).expect_code(2);
    assert!(run.stderr.contains("app/Main.json:1:"), "{}", run.stderr);
    assert!(
        run.stderr.contains("nests more than 128 levels deep"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_deeply_nested_stack_config_file_is_refused_not_a_crash() {
    let context = TestContext::with_program("name: bad\nruntime: yaml\n");
    std::fs::write(
        context.project().join("Cairn.dev.yaml"),
        format!("config:\n  bad:x:\n{}", block_mappings(5_000)),
    )
    .unwrap();
    for args in [&["preview"][..], &["config", "set", "y", "1"]] {
        let run = context.cairn(args).expect_code(2);
        assert!(run.stderr.contains("Cairn.dev.yaml:"), "{}", run.stderr);
        assert!(
            run.stderr.contains("nests more than 128 levels deep"),
            "{}",
            run.stderr
        );
    }
}

/// Runs `cairn preview` and fails the test (killing cairn) if it takes more than 20 seconds.
fn preview_within_deadline(context: &TestContext) -> (i32, String) {
    let mut child = context
        .command(&["preview"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("cairn preview hung reading a special file");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn read_file_of_a_fifo_or_a_device_is_refused_quickly() {
    let context = TestContext::with_program("name: bad\nruntime: yaml\n");
    let fifo = context.project().join("pipe");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    for (path, what) in [
        ("pipe", "is a FIFO"),
        ("/dev/zero", "is a character device"),
    ] {
        context.write_program(&format!(
            "name: bad\nruntime: yaml\nresources:\n  a:\n    type: fake:Resource\n    properties:\n      v:\n        fn::readFile: {path}\n"
        ));
        let (code, stderr) = preview_within_deadline(&context);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("Cairn.yaml:8:23"), "{stderr}");
        assert!(stderr.contains(what), "{stderr}");
        let named = if path == "/dev/zero" {
            "`/dev/zero`".to_owned()
        } else {
            format!("`{}`", fifo.display())
        };
        assert!(stderr.contains(&named), "{stderr}");
    }
}

#[test]
fn a_fifo_as_the_program_file_is_refused_quickly() {
    let context = TestContext::with_program("name: bad\nruntime: yaml\n");
    let program = context.project().join("Cairn.yaml");
    std::fs::remove_file(&program).unwrap();
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&program)
            .status()
            .unwrap()
            .success()
    );
    let (code, stderr) = preview_within_deadline(&context);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is a FIFO"), "{stderr}");
}

#[test]
fn properties_that_cannot_be_evaluated_are_a_program_error() {
    let context = TestContext::with_program(
        "name: evaluated\nruntime: yaml\nvariables:\n  settings: {b: 1}\nresources:\n  good:\n    type: fake:Resource\n    properties:\n      v: 1\n  bad:\n    type: fake:Resource\n    properties:\n      joined:\n        fn::join: [\",\", [a, \"${settings}\"]]\n",
    );
    for args in [
        vec!["preview"],
        vec!["up", "--yes"],
        vec!["up", "--yes", "--skip-preview"],
    ] {
        let run = context.cairn(&args).expect_code(2);
        let shown = format!("{}{}", run.stdout, run.stderr);
        assert!(
            shown.contains("Cairn.yaml:14:29: `fn::join` cannot join an object"),
            "{args:?}: {shown}"
        );
    }
    assert_eq!(context.resource_names(), ["good"]);
}
