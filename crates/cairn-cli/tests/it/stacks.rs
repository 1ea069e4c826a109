//! Stacks: init, ls, select, rm, output.

use crate::support::TestContext;

#[test]
fn stack_init_select_list_and_remove() {
    let context = TestContext::new();
    context
        .write_program("name: stacks\nruntime: yaml\nresources:\n  a:\n    type: fake:Resource\n");
    context.cairn(&["stack", "init", "dev"]).success();
    context.cairn(&["stack", "init", "prod"]).success();
    let again = context.cairn(&["stack", "init", "dev"]).expect_code(2);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);

    let list = context.cairn(&["stack", "ls"]).success();
    assert!(list.stdout.contains("prod*"), "{}", list.stdout);
    assert!(list.stdout.contains("dev"), "{}", list.stdout);

    context.cairn(&["stack", "select", "dev"]).success();
    context.cairn(&["up", "--yes"]).success();
    let list = context.cairn(&["stack", "ls", "--json"]).success();
    let stacks: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    let dev = stacks
        .as_array()
        .unwrap()
        .iter()
        .find(|stack| stack["name"] == "dev")
        .unwrap();
    assert_eq!(dev["current"], true);

    let refused = context
        .cairn(&["stack", "rm", "dev", "--yes"])
        .expect_code(1);
    assert!(refused.stderr.contains("still has"), "{}", refused.stderr);
    context.cairn(&["stack", "rm", "prod", "--yes"]).success();
    context
        .cairn(&["stack", "rm", "dev", "--yes", "--force"])
        .success();
    let list = context.cairn(&["stack", "ls", "--json"]).success();
    assert_eq!(list.stdout.trim(), "[]");
    assert!(context.cairn(&["stack", "select", "dev"]).code == 2);
}

#[test]
fn stack_output_forms() {
    let context = TestContext::with_program(
        "name: outs\nruntime: yaml\nresources:\n  a:\n    type: fake:Resource\n    properties:\n      n: 3\n      s: text\noutputs:\n  n: ${a.n}\n  s: ${a.s}\n",
    );
    context.cairn(&["up", "--yes"]).success();
    let table = context.cairn(&["stack", "output"]).success();
    assert!(
        table.stdout.contains("Current stack outputs (2):"),
        "{}",
        table.stdout
    );
    assert_eq!(
        context.cairn(&["stack", "output", "s"]).success().stdout,
        "text\n"
    );
    assert_eq!(
        context.cairn(&["stack", "output", "n"]).success().stdout,
        "3\n"
    );
    let json: serde_json::Value = serde_json::from_str(
        &context
            .cairn(&["stack", "output", "--json"])
            .success()
            .stdout,
    )
    .unwrap();
    assert_eq!(json, serde_json::json!({"n": 3, "s": "text"}));
    context.cairn(&["stack", "output", "nope"]).expect_code(2);
}

#[test]
fn export_is_shaped_as_pulumis_deployment() {
    let context = TestContext::with_program(
        "name: shape\nruntime: yaml\nresources:\n  a:\n    type: fake:Resource\n    properties:\n      n: 1\n  b:\n    type: fake:Resource\n    properties:\n      n: ${a.n}\n",
    );
    context.cairn(&["up", "--yes"]).success();
    // A second, no-op update must leave the state exactly as it was (it once duplicated the
    // default provider).
    let first = context.export()["deployment"]["resources"].clone();
    context.cairn(&["up", "--yes"]).success();
    let export = context.export();
    assert_eq!(export["deployment"]["resources"], first);
    assert_eq!(export["version"], 3);
    let deployment = &export["deployment"];
    assert!(deployment["manifest"]["time"].is_string());
    assert_eq!(deployment["pending_operations"], serde_json::json!([]));
    let resources = deployment["resources"].as_array().unwrap();
    let types: Vec<&str> = resources
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        vec![
            "pulumi:pulumi:Stack",
            "pulumi:providers:fake",
            "fake:index:Resource",
            "fake:index:Resource"
        ]
    );
    let stack_urn = "urn:pulumi:dev::shape::pulumi:pulumi:Stack::shape-dev";
    assert_eq!(resources[0]["urn"], stack_urn);
    let b = &resources[3];
    assert_eq!(b["urn"], "urn:pulumi:dev::shape::fake:index:Resource::b");
    assert_eq!(b["custom"], true);
    assert_eq!(b["parent"], stack_urn);
    assert_eq!(
        b["dependencies"],
        serde_json::json!(["urn:pulumi:dev::shape::fake:index:Resource::a"])
    );
    let provider = b["provider"].as_str().unwrap();
    assert!(
        provider.starts_with("urn:pulumi:dev::shape::pulumi:providers:fake::default::"),
        "{provider}"
    );
}
