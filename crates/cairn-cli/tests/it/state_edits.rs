//! `cairn state delete|unprotect|repair`.

use crate::support::TestContext;

const PROGRAM: &str = "name: edits\nruntime: yaml\nresources:\n  base:\n    type: fake:Resource\n    options:\n      protect: true\n  top:\n    type: fake:Resource\n    properties:\n      from: ${base.id}\n";
const BASE: &str = "urn:pulumi:dev::edits::fake:index:Resource::base";
const TOP: &str = "urn:pulumi:dev::edits::fake:index:Resource::top";

#[test]
fn unprotect_then_destroy() {
    let context = TestContext::with_program(PROGRAM);
    context.cairn(&["up", "--yes"]).success();
    context.cairn(&["destroy", "--yes"]).expect_code(1);
    context.cairn(&["state", "unprotect", BASE]).expect_code(2);
    assert_eq!(
        context.resource("base")["protect"],
        true,
        "changed without --yes"
    );
    context
        .cairn(&["state", "unprotect", BASE, "--yes"])
        .success();
    assert!(context.resource("base").get("protect").is_none());
    context.cairn(&["destroy", "--yes"]).success();
    assert!(context.resources().is_empty());
}

#[test]
fn delete_refuses_while_others_depend_on_it() {
    let context = TestContext::with_program(PROGRAM);
    context.cairn(&["up", "--yes"]).success();
    let refused = context
        .cairn(&["state", "delete", BASE, "--yes"])
        .expect_code(1);
    assert!(refused.stderr.contains(TOP), "{}", refused.stderr);
    context.cairn(&["state", "delete", TOP, "--yes"]).success();
    let protected = context
        .cairn(&["state", "delete", BASE, "--yes"])
        .expect_code(1);
    assert!(
        protected.stderr.contains("protected"),
        "{}",
        protected.stderr
    );
    context
        .cairn(&["state", "delete", BASE, "--yes", "--force"])
        .success();
    assert!(context.resources().is_empty());
    let missing = context
        .cairn(&["state", "delete", BASE, "--yes"])
        .expect_code(2);
    assert!(missing.stderr.contains("no resource"), "{}", missing.stderr);
    // The program still declares them: the next update creates them again.
    let preview = context.cairn(&["preview"]).success();
    assert!(preview.stdout.contains("2 to create"), "{}", preview.stdout);
}

#[test]
fn repair_orders_resources_and_drops_dangling_references() {
    let context = TestContext::with_program(PROGRAM);
    context.cairn(&["up", "--yes"]).success();
    let mut export = context.export();
    let resources = export["deployment"]["resources"].as_array_mut().unwrap();
    resources.reverse();
    let top = resources
        .iter_mut()
        .find(|resource| resource["urn"] == TOP)
        .unwrap();
    top["dependencies"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!(
            "urn:pulumi:dev::edits::fake:index:Resource::gone"
        ));
    let broken = context.root.path().join("broken.json");
    std::fs::write(&broken, export.to_string()).unwrap();
    context
        .cairn(&["stack", "import", "--file", broken.to_str().unwrap()])
        .success();

    let shown = context.cairn(&["state", "repair"]).expect_code(2);
    assert!(
        shown.stdout.contains("dependency order"),
        "{}",
        shown.stdout
    );
    assert!(shown.stdout.contains("do not exist"), "{}", shown.stdout);
    context.cairn(&["state", "repair", "--yes"]).success();
    let repaired = context.export();
    let urns: Vec<&str> = repaired["deployment"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|resource| resource["urn"].as_str().unwrap())
        .collect();
    let position = |urn: &str| urns.iter().position(|candidate| *candidate == urn).unwrap();
    assert!(position(BASE) < position(TOP), "{urns:?}");
    assert_eq!(
        context.resource("top")["dependencies"],
        serde_json::json!([BASE])
    );
    let again = context.cairn(&["state", "repair", "--yes"]).success();
    assert!(again.stdout.contains("needs no repair"), "{}", again.stdout);
}
