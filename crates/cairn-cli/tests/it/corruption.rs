//! A damaged checkpoint is never used: commands refuse with a clear message that offers the
//! kept checkpoints, and exporting one and importing it back recovers the stack.

use crate::support::TestContext;

const PROGRAM: &str = "name: fragile\nruntime: yaml\nresources:\n  a:\n    type: fake:Resource\n    properties:\n      v: 1\n  b:\n    type: fake:Resource\n    properties:\n      v: ${a.v}\n";

fn checkpoint(context: &TestContext) -> std::path::PathBuf {
    context.home().join(".pulumi/stacks/fragile/dev.json")
}

#[track_caller]
fn check_recovery(context: &TestContext, before: &serde_json::Value) {
    let refused = context.cairn(&["preview"]).expect_code(1);
    assert!(refused.stderr.contains("corrupt"), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("versions 2, 1"),
        "{}",
        refused.stderr
    );
    context.cairn(&["up", "--yes"]).expect_code(1);
    context.restore_version(2);
    assert_eq!(&context.export()["deployment"]["resources"], before);
    let preview = context.cairn(&["preview"]).success();
    assert!(preview.stdout.contains("3 unchanged"), "{}", preview.stdout);
}

#[test]
fn a_flipped_byte_is_detected_and_recovered_from() {
    let context = TestContext::with_program(PROGRAM);
    for _ in 0..3 {
        context.cairn(&["up", "--yes"]).success();
    }
    let before = context.export()["deployment"]["resources"].clone();
    let path = checkpoint(&context);
    let mut bytes = std::fs::read(&path).unwrap();
    let position = bytes.len() / 2;
    bytes[position] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    check_recovery(&context, &before);
}

#[test]
fn a_truncated_checkpoint_is_detected_and_recovered_from() {
    let context = TestContext::with_program(PROGRAM);
    for _ in 0..3 {
        context.cairn(&["up", "--yes"]).success();
    }
    let before = context.export()["deployment"]["resources"].clone();
    let path = checkpoint(&context);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    check_recovery(&context, &before);
}

#[test]
fn only_the_last_ten_checkpoints_are_kept() {
    let context = TestContext::with_program(PROGRAM);
    for _ in 0..12 {
        context.cairn(&["up", "--yes", "--skip-preview"]).success();
    }
    // Version 12 is the current checkpoint; 2 to 11 are the ten kept before it.
    context
        .cairn(&["stack", "export", "--version", "12"])
        .success();
    context
        .cairn(&["stack", "export", "--version", "2"])
        .success();
    let gone = context
        .cairn(&["stack", "export", "--version", "1"])
        .expect_code(2);
    assert!(gone.stderr.contains("last 10 are kept"), "{}", gone.stderr);
}

#[test]
fn importing_garbage_writes_nothing() {
    let context = TestContext::with_program(PROGRAM);
    context.cairn(&["up", "--yes"]).success();
    let before = context.export();
    let garbage = context.root.path().join("garbage.json");
    std::fs::write(
        &garbage,
        "{\"version\": 3, \"deployment\": {\"resources\": [{\"urn\": \"not-a-urn\"}]}}",
    )
    .unwrap();
    context
        .cairn(&["stack", "import", "--file", garbage.to_str().unwrap()])
        .expect_code(2);
    assert_eq!(
        context.export()["deployment"]["resources"],
        before["deployment"]["resources"]
    );
}

/// One damaged stack is listed with its problem; it does not hide the project's other stacks.
#[test]
fn stack_ls_lists_every_stack_when_one_is_damaged() {
    let context = TestContext::with_program(PROGRAM);
    context.cairn(&["up", "--yes"]).success();
    context.cairn(&["stack", "init", "prod"]).success();
    context.cairn(&["up", "--yes", "--stack", "prod"]).success();
    let path = checkpoint(&context);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();

    let listed = context.cairn(&["stack", "ls"]).success();
    assert!(
        listed.stdout.contains("dev") && listed.stdout.contains("prod"),
        "{}",
        listed.stdout
    );
    assert!(
        listed.stderr.contains("stack `dev` cannot be read") && listed.stderr.contains("corrupt"),
        "{}",
        listed.stderr
    );
    let listed = context.cairn(&["stack", "ls", "--json"]).success();
    let listed: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    let by_name = |name: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|stack| stack["name"] == name)
            .unwrap_or_else(|| panic!("no `{name}` in {listed}"))
            .clone()
    };
    assert!(
        by_name("dev")["problem"]
            .as_str()
            .unwrap()
            .contains("corrupt")
    );
    assert_eq!(by_name("dev")["resourceCount"], serde_json::Value::Null);
    assert_eq!(by_name("prod")["problem"], serde_json::Value::Null);
    assert_eq!(by_name("prod")["resourceCount"], 2);
}
