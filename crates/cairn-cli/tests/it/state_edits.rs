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
    let unprotected = context
        .cairn(&["state", "unprotect", BASE, "--yes", "--json"])
        .success();
    let unprotected: serde_json::Value = serde_json::from_str(&unprotected.stdout).unwrap();
    assert_eq!(
        unprotected,
        serde_json::json!({"urn": BASE, "unprotected": true})
    );
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
    let deleted = context
        .cairn(&["state", "delete", TOP, "--yes", "--json"])
        .success();
    let deleted: serde_json::Value = serde_json::from_str(&deleted.stdout).unwrap();
    assert_eq!(deleted["urn"], TOP);
    assert_eq!(deleted["removed"], true);
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
    // With `--json`, the plan goes to stderr and stdout is one object: what was repaired.
    let done = context
        .cairn(&["state", "repair", "--yes", "--json"])
        .success();
    let done: serde_json::Value = serde_json::from_str(&done.stdout)
        .unwrap_or_else(|error| panic!("{error}: {}", done.stdout));
    assert_eq!(done["stack"], "dev");
    assert_eq!(done["changed"], true);
    assert_eq!(done["salvaged"], serde_json::Value::Null);
    let repaired_changes: Vec<&str> = done["repaired"]
        .as_array()
        .unwrap()
        .iter()
        .map(|change| change.as_str().unwrap())
        .collect();
    assert!(
        repaired_changes.contains(&"put resources in dependency order"),
        "{done}"
    );
    assert!(
        repaired_changes
            .iter()
            .any(|change| change.contains("do not exist")),
        "{done}"
    );
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
    let again = context
        .cairn(&["state", "repair", "--yes", "--json"])
        .success();
    let again: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(again["changed"], false);
    assert_eq!(again["repaired"], serde_json::json!([]));
}

#[test]
fn repair_says_what_it_repaired() {
    let context = TestContext::with_program(PROGRAM);
    context.cairn(&["up", "--yes"]).success();
    let mut export = context.export();
    export["deployment"]["resources"]
        .as_array_mut()
        .unwrap()
        .reverse();
    let broken = context.root.path().join("broken.json");
    std::fs::write(&broken, export.to_string()).unwrap();
    context
        .cairn(&["stack", "import", "--file", broken.to_str().unwrap()])
        .success();
    let repaired = context.cairn(&["state", "repair", "--yes"]).success();
    assert!(
        repaired.stdout.contains(
            "The state of stack 'dev' was repaired:\n  - put resources in dependency order"
        ),
        "{}",
        repaired.stdout
    );
    assert!(
        !repaired.stdout.contains("needs no repair"),
        "{}",
        repaired.stdout
    );
}

const CHAIN_THEN_SLOW: &str = "name: salvage\nruntime: yaml\nresources:\n  a:\n    type: fake:Resource\n  b:\n    type: fake:Resource\n    options:\n      dependsOn: [\"${a}\"]\n  slow:\n    type: fake:Resource\n    properties:\n      latencyMs: 60000\n    options:\n      dependsOn: [\"${b}\"]\n";

#[test]
fn repair_salvages_a_journal_damaged_in_the_middle() {
    let context = TestContext::with_program(CHAIN_THEN_SLOW);
    let journal = context.home().join(".pulumi/stacks/salvage/dev.journal");
    let mut up = context.spawn(&["up", "--yes", "--skip-preview"]);
    crate::support::wait_until("the update beginning `slow`", || {
        std::fs::read_to_string(&journal).is_ok_and(|text| text.contains("::slow"))
    });
    up.kill().unwrap();
    up.wait().unwrap();
    context.cairn(&["cancel", "--yes"]).success();

    // A garbage line in the middle: the records before it are intact, `slow`'s begin is after.
    let text = std::fs::read_to_string(&journal).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let slow = lines
        .iter()
        .position(|line| line.contains("::slow"))
        .unwrap();
    assert!(slow + 1 == lines.len(), "`slow` began last:\n{text}");
    lines.insert(slow, "not a journal record");
    std::fs::write(&journal, lines.join("\n") + "\n").unwrap();

    // Every ordinary command stops, failing (exit 1), and names the repair.
    for args in [vec!["up", "--yes"], vec!["stack", "export"]] {
        let refused = context.cairn(&args).expect_code(1);
        assert!(
            refused.stderr.contains("dev.journal:")
                && refused.stderr.contains("cairn state repair"),
            "{args:?}: {}",
            refused.stderr
        );
    }
    // Not run in a terminal, `repair` changes nothing without `--yes`.
    context.cairn(&["state", "repair"]).expect_code(2);
    assert!(journal.exists());

    let repaired = context.cairn(&["state", "repair", "--yes"]).success();
    assert!(
        repaired.stdout.contains("Kept") && repaired.stdout.contains("dev.journal.damaged-"),
        "{}",
        repaired.stdout
    );
    // A salvage is a repair: it ends saying so, never "needs no repair".
    assert!(
        repaired.stdout.contains("was repaired:")
            && repaired
                .stdout
                .contains("salvaged its damaged journal, keeping"),
        "{}",
        repaired.stdout
    );
    assert!(
        !repaired.stdout.contains("needs no repair"),
        "{}",
        repaired.stdout
    );
    // What the damaged part named is left for the user to check.
    assert!(repaired.stderr.contains("::slow"), "{}", repaired.stderr);
    let aside: Vec<_> = std::fs::read_dir(journal.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with("dev.journal.damaged-")
        })
        .collect();
    assert_eq!(aside.len(), 1);
    assert!(
        std::fs::read_to_string(aside[0].path())
            .unwrap()
            .contains("not a journal record")
    );
    assert!(!journal.exists());

    // The intact records are the state, and the stack works again.
    assert_eq!(context.resource_names(), ["a", "b"]);
    assert!(
        context.export()["deployment"]
            .get("pending_operations")
            .is_none_or(|pending| pending.as_array().is_none_or(Vec::is_empty)),
        "nothing was left unfinished before the damage"
    );
    context.write_program(&CHAIN_THEN_SLOW.replace("      latencyMs: 60000\n", "      n: 1\n"));
    let up = context.cairn(&["up", "--yes"]).success();
    assert!(
        up.stdout.contains("1 created") || up.stdout.contains("+ 1"),
        "{}",
        up.stdout
    );
    assert_eq!(context.resource_names(), ["a", "b", "slow"]);
}
