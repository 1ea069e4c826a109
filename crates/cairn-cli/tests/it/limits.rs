//! Depth limits on property values: whatever is accepted can be read back, and a stack whose
//! checkpoint cannot be read says exactly how to go back to a good one.

use crate::support::TestContext;

const PROGRAM: &str = "name: deep\nruntime: yaml\nresources:\n  a:\n    type: fake:Resource\n    properties:\n      v: 1\n";

/// `depth` nested flow mappings around `inner`.
fn nested(depth: usize, inner: &str) -> String {
    format!("{}{inner}{}", "{a: ".repeat(depth), "}".repeat(depth))
}

/// `depth` nested JSON arrays around `1`, built without parsing (parsing stops at 128).
fn nested_json(depth: usize) -> serde_json::Value {
    let mut value = serde_json::json!(1);
    for _ in 0..depth {
        value = serde_json::Value::Array(vec![value]);
    }
    value
}

fn checkpoint(context: &TestContext) -> std::path::PathBuf {
    context.home().join(".pulumi/stacks/deep/dev.json")
}

#[test]
fn a_value_nested_130_deep_is_refused_and_the_stack_stays_usable() {
    let context = TestContext::with_program(PROGRAM);
    context.cairn(&["up", "--yes"]).success();
    let before = std::fs::read(checkpoint(&context)).unwrap();
    context.write_program(&format!(
        "{PROGRAM}  b:\n    type: fake:Resource\n    properties:\n      v: {}\n",
        nested(130, "1")
    ));
    for args in [&["preview"][..], &["up", "--yes"]] {
        let run = context.cairn(args).expect_code(2);
        assert!(run.stderr.contains("Cairn.yaml:11:"), "{}", run.stderr);
        assert!(
            run.stderr.contains("nests more than 128 levels deep"),
            "{}",
            run.stderr
        );
    }
    assert_eq!(std::fs::read(checkpoint(&context)).unwrap(), before);
    // 64 levels is fine, and the stack reads back.
    context.write_program(&format!(
        "{PROGRAM}  b:\n    type: fake:Resource\n    properties:\n      v: {}\n",
        nested(64, "1")
    ));
    context.cairn(&["up", "--yes"]).success();
    assert_eq!(context.resource_names(), ["a", "b"]);
    let preview = context.cairn(&["preview"]).success();
    assert!(preview.stdout.contains("unchanged"), "{}", preview.stdout);
}

#[test]
fn a_value_built_too_deep_from_references_fails_only_its_resource() {
    let context = TestContext::with_program(PROGRAM);
    // 40 levels in a variable, placed 40 levels down: 80 once evaluated.
    context.write_program(&format!(
        "{PROGRAM}  b:\n    type: fake:Resource\n    properties:\n      v: {}\nvariables:\n  inner: {}\n",
        nested(40, "\"${inner}\""),
        nested(40, "1"),
    ));
    // An error of the program found while evaluating it: exit 2, as for one found earlier.
    let run = context
        .cairn(&["up", "--yes", "--skip-preview"])
        .expect_code(2);
    assert!(
        run.stdout
            .contains("input property `v` is nested 80 levels deep; at most 64 are allowed"),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    // What could be created was, and the stack reads back.
    assert_eq!(context.resource_names(), ["a"]);
    context.cairn(&["preview"]).expect_code(2);
    context.write_program(PROGRAM);
    context.cairn(&["up", "--yes"]).success();
}

#[test]
fn importing_a_value_too_deep_writes_nothing() {
    let context = TestContext::with_program(PROGRAM);
    context.cairn(&["up", "--yes"]).success();
    let mut export = context.export();
    let before = export.clone();
    let resources = export["deployment"]["resources"].as_array_mut().unwrap();
    let a = resources
        .iter_mut()
        .find(|resource| resource["urn"].as_str().unwrap().ends_with("::a"))
        .unwrap();
    // Readable as JSON (under 128 levels), but past the 64 a value may hold.
    a["inputs"]["v"] = nested_json(100);
    let file = context.root.path().join("deep.json");
    std::fs::write(&file, serde_json::to_string(&export).unwrap()).unwrap();
    let run = context
        .cairn(&["stack", "import", "--file", file.to_str().unwrap()])
        .expect_code(2);
    assert!(run.stderr.contains("nothing was written"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("input property `v` is nested 100 levels deep"),
        "{}",
        run.stderr
    );
    assert_eq!(
        context.export()["deployment"]["resources"],
        before["deployment"]["resources"]
    );
}

/// Rewrites the current checkpoint with a 130-deep value and a matching checksum: what an
/// older Cairn wrote, which no JSON reader takes back.
fn write_unreadable_checkpoint(context: &TestContext) {
    let path = checkpoint(context);
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut deployment = file["deployment"].clone();
    for resource in deployment["resources"].as_array_mut().unwrap() {
        if resource["urn"].as_str().unwrap().ends_with("::a") {
            resource["inputs"]["v"] = nested_json(130);
        }
    }
    let text = serde_json::to_string(&deployment).unwrap();
    let mut sha = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut sha.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let output = sha.wait_with_output().unwrap();
    let checksum = String::from_utf8(output.stdout).unwrap();
    let checksum = checksum.split_whitespace().next().unwrap();
    std::fs::write(
        &path,
        format!("{{\"version\":3,\"checksum\":\"{checksum}\",\"deployment\":{text}}}\n"),
    )
    .unwrap();
}

#[test]
fn an_unreadable_checkpoint_names_the_version_to_restore_and_how() {
    let context = TestContext::with_program(PROGRAM);
    for _ in 0..3 {
        context.cairn(&["up", "--yes"]).success();
    }
    let before = context.export()["deployment"]["resources"].clone();
    write_unreadable_checkpoint(&context);
    let refused = context.cairn(&["preview"]).expect_code(1);
    for needle in [
        "nests deeper than JSON can be read",
        "the last good checkpoints are versions 2, 1",
        "cairn stack export --version 2 --file good.json",
        "cairn stack import --file good.json",
        "Cairn does not go back by itself",
    ] {
        assert!(
            refused.stderr.contains(needle),
            "missing `{needle}` in:\n{}",
            refused.stderr
        );
    }
    context.restore_version(2);
    assert_eq!(context.export()["deployment"]["resources"], before);
    let preview = context.cairn(&["preview"]).success();
    assert!(preview.stdout.contains("unchanged"), "{}", preview.stdout);
}

#[test]
fn importing_a_deeply_nested_json_file_is_refused_not_a_crash() {
    let context = TestContext::with_program(PROGRAM);
    context.cairn(&["up", "--yes"]).success();
    let before = context.export();
    let file = context.root.path().join("deep.json");
    std::fs::write(
        &file,
        format!(
            "{{\"version\": 3, \"deployment\": {{\"manifest\": {{\"time\": \"\"}}, \"resources\": [{{\"urn\": \"urn:pulumi:dev::deep::fake:index:Resource::a\", \"custom\": true, \"type\": \"fake:index:Resource\", \"inputs\": {{\"v\": {}1{}}}}}]}}}}",
            "[".repeat(5_000),
            "]".repeat(5_000)
        ),
    )
    .unwrap();
    let run = context
        .cairn(&["stack", "import", "--file", file.to_str().unwrap()])
        .expect_code(2);
    assert!(
        run.stderr.contains("recursion limit exceeded"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("nothing was written"), "{}", run.stderr);
    assert_eq!(context.export(), before);
}

#[test]
fn a_stack_output_built_too_deep_is_a_program_error() {
    let context = TestContext::with_program(PROGRAM);
    context.cairn(&["up", "--yes"]).success();
    context.write_program(&format!(
        "{PROGRAM}variables:\n  inner: {}\noutputs:\n  o: {}\n",
        nested(40, "1"),
        nested(40, "\"${inner}\""),
    ));
    for args in [&["preview"][..], &["up", "--yes", "--skip-preview"]] {
        let run = context.cairn(args).expect_code(2);
        assert!(
            run.stdout
                .contains("output property `o` is nested 80 levels deep; at most 64 are allowed"),
            "{}\n{}",
            run.stdout,
            run.stderr
        );
    }
    // The stack reads back, without the output.
    assert_eq!(context.resource_names(), ["a"]);
    let export = context.export();
    let root = export["deployment"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|resource| resource["type"] == "pulumi:pulumi:Stack")
        .unwrap();
    assert!(root["outputs"].get("o").is_none(), "{root}");
}
