//! A resource's life: create, no-op, update, replace, delete; ordering; failures; options.

use crate::support::TestContext;

const TWO_FAKES: &str = r#"
name: life
runtime: yaml
resources:
  first:
    type: fake:Resource
    properties:
      size: 1
      replaceOn: [zone]
      zone: a
  second:
    type: fake:index:Resource
    properties:
      fromFirst: ${first.size}
outputs:
  firstSize: ${first.size}
"#;

#[test]
fn create_noop_update_replace_delete() {
    let context = TestContext::with_program(TWO_FAKES);

    let created = context.cairn(&["up", "--yes"]).success();
    assert!(
        created.stdout.contains("Resources: 3 created"),
        "{}",
        created.stdout
    );
    assert!(
        created.stdout.contains("firstSize: 1"),
        "{}",
        created.stdout
    );
    let first = context.resource("first");
    assert_eq!(first["type"], "fake:index:Resource");
    assert_eq!(first["inputs"]["size"], 1);
    assert_eq!(first["outputs"]["size"], 1);
    assert_eq!(context.resource("second")["inputs"]["fromFirst"], 1);
    let first_id = first["id"].as_str().unwrap().to_owned();

    let unchanged = context.cairn(&["up", "--yes"]).success();
    assert!(
        unchanged.stdout.contains("Resources: 3 unchanged"),
        "{}",
        unchanged.stdout
    );

    context.write_program(&TWO_FAKES.replace("size: 1", "size: 2"));
    let preview = context.cairn(&["preview", "--diff"]).success();
    assert!(
        preview
            .stdout
            .contains("Resources: 2 to update, 1 unchanged"),
        "{}",
        preview.stdout
    );
    assert!(
        preview.stdout.contains("~ size: 1 => 2"),
        "{}",
        preview.stdout
    );
    let updated = context.cairn(&["up", "--yes"]).success();
    assert!(
        updated.stdout.contains("Resources: 2 updated, 1 unchanged"),
        "{}",
        updated.stdout
    );
    assert_eq!(context.resource("first")["id"], first_id.as_str());
    assert_eq!(context.resource("second")["inputs"]["fromFirst"], 2);

    context.write_program(
        &TWO_FAKES
            .replace("size: 1", "size: 2")
            .replace("zone: a", "zone: b"),
    );
    let replaced = context.cairn(&["up", "--yes"]).success();
    assert!(
        replaced
            .stdout
            .contains("Resources: 1 replaced, 2 unchanged"),
        "{}",
        replaced.stdout
    );
    assert!(replaced.stdout.contains("+-"), "{}", replaced.stdout);
    let first = context.resource("first");
    assert_ne!(first["id"], first_id.as_str());
    assert_eq!(context.resources().len(), 2, "the old copy was deleted");

    context.write_program(
        "name: life\nruntime: yaml\nresources:\n  first:\n    type: fake:Resource\n    properties:\n      size: 2\n      replaceOn: [zone]\n      zone: b\n",
    );
    let deleted = context.cairn(&["up", "--yes"]).success();
    assert!(
        deleted.stdout.contains("Resources: 1 deleted, 2 unchanged"),
        "{}",
        deleted.stdout
    );
    assert_eq!(context.resources().len(), 1);

    let destroyed = context.cairn(&["destroy", "--yes"]).success();
    assert!(
        destroyed.stdout.contains("Resources: 2 deleted"),
        "{}",
        destroyed.stdout
    );
    assert!(context.resources().is_empty());
}

#[test]
fn preview_shows_unknowns_and_has_no_side_effects() {
    let context = TestContext::with_program(
        r#"
name: preview
runtime: yaml
resources:
  pet:
    type: random:RandomPet
  marker:
    type: command:local:Command
    properties:
      create: echo made > made.txt
outputs:
  name: ${pet.id}
"#,
    );
    let preview = context.cairn(&["preview"]).success();
    assert!(
        preview.stdout.contains("Previewing update (dev)"),
        "{}",
        preview.stdout
    );
    assert!(
        preview.stdout.contains("name: output<string>"),
        "{}",
        preview.stdout
    );
    assert!(
        preview.stdout.contains("Resources: 3 to create"),
        "{}",
        preview.stdout
    );
    assert!(
        preview.stdout.contains("random:index:RandomPet"),
        "{}",
        preview.stdout
    );
    assert!(
        !context.project().join("made.txt").exists(),
        "preview ran a command"
    );
    assert!(context.resources().is_empty(), "preview wrote state");

    context.cairn(&["up", "--yes"]).success();
    assert_eq!(context.read("made.txt"), "made\n");
}

#[test]
fn depends_on_orders_side_effects() {
    let context = TestContext::with_program(
        r#"
name: order
runtime: yaml
resources:
  slow:
    type: command:local:Command
    properties:
      create: sleep 0.3 && echo slow >> log.txt
      delete: echo delete-slow >> log.txt
  fast:
    type: command:local:Command
    properties:
      create: echo fast >> log.txt
      delete: echo delete-fast >> log.txt
    options:
      dependsOn:
        - ${slow}
"#,
    );
    context.cairn(&["up", "--yes"]).success();
    assert_eq!(context.read("log.txt"), "slow\nfast\n");
    context.cairn(&["destroy", "--yes"]).success();
    assert_eq!(
        context.read("log.txt"),
        "slow\nfast\ndelete-fast\ndelete-slow\n",
        "deletes run in reverse dependency order"
    );
}

#[test]
fn replacement_creates_before_deleting_unless_told_otherwise() {
    let program = |trigger: &str, delete_before_replace: bool| {
        format!(
            r#"
name: replace
runtime: yaml
resources:
  thing:
    type: command:local:Command
    properties:
      create: echo create-{trigger} >> log.txt
      delete: echo delete-$PULUMI_COMMAND_STDOUT >> log.txt
      triggers: ["{trigger}"]
    options:
      deleteBeforeReplace: {delete_before_replace}
"#
        )
    };
    let context = TestContext::with_program(&program("a", false));
    context.cairn(&["up", "--yes"]).success();
    context.write_program(&program("b", false));
    context.cairn(&["up", "--yes"]).success();
    assert_eq!(context.read("log.txt"), "create-a\ncreate-b\ndelete-\n");

    let context = TestContext::with_program(&program("a", true));
    context.cairn(&["up", "--yes"]).success();
    context.write_program(&program("b", true));
    context.cairn(&["up", "--yes"]).success();
    assert_eq!(context.read("log.txt"), "create-a\ndelete-\ncreate-b\n");
}

#[test]
fn a_failure_keeps_what_succeeded_and_stops_dependents() {
    let context = TestContext::with_program(
        r#"
name: failing
runtime: yaml
resources:
  good:
    type: fake:Resource
    properties:
      n: 1
  bad:
    type: fake:Resource
    properties:
      failOn: create
  dependent:
    type: fake:Resource
    properties:
      from: ${bad.failOn}
"#,
    );
    let run = context.cairn(&["up", "--yes"]).expect_code(1);
    assert!(run.stdout.contains("failOn: create"), "{}", run.stdout);
    assert!(run.stdout.contains("Diagnostics:"), "{}", run.stdout);
    assert!(
        run.stdout.lines().any(|line| line.starts_with(" +")
            && line.contains("bad")
            && line.contains("**create failed**")),
        "{}",
        run.stdout
    );
    let names = context.resource_names();
    assert_eq!(names, vec!["good"]);
    assert!(
        context.export()["deployment"]["pending_operations"]
            .as_array()
            .is_none_or(Vec::is_empty)
    );
}

#[test]
fn protect_blocks_destroy() {
    let context = TestContext::with_program(
        r#"
name: protected
runtime: yaml
resources:
  keep:
    type: fake:Resource
    options:
      protect: true
"#,
    );
    context.cairn(&["up", "--yes"]).success();
    assert_eq!(context.resource("keep")["protect"], true);
    let run = context.cairn(&["destroy", "--yes"]).expect_code(1);
    assert!(run.stderr.contains("protected"), "{}", run.stderr);
    assert_eq!(context.resources().len(), 1);
}

#[test]
fn ignore_changes_keeps_old_inputs() {
    let program = |value: u32| {
        format!(
            "name: ignore\nruntime: yaml\nresources:\n  thing:\n    type: fake:Resource\n    properties:\n      watched: 1\n      ignored: {value}\n    options:\n      ignoreChanges: [ignored]\n"
        )
    };
    let context = TestContext::with_program(&program(1));
    context.cairn(&["up", "--yes"]).success();
    context.write_program(&program(2));
    let run = context.cairn(&["up", "--yes"]).success();
    assert!(
        run.stdout.contains("Resources: 2 unchanged"),
        "{}",
        run.stdout
    );
    assert_eq!(context.resource("thing")["inputs"]["ignored"], 1);
}

#[test]
fn target_limits_changes() {
    let program = |value: u32| {
        format!(
            "name: target\nruntime: yaml\nresources:\n  a:\n    type: fake:Resource\n    properties:\n      v: {value}\n  b:\n    type: fake:Resource\n    properties:\n      v: {value}\n"
        )
    };
    let context = TestContext::with_program(&program(1));
    context.cairn(&["up", "--yes"]).success();
    context.write_program(&program(2));
    let urn = "urn:pulumi:dev::target::fake:index:Resource::a";
    context.cairn(&["up", "--yes", "--target", urn]).success();
    assert_eq!(context.resource("a")["inputs"]["v"], 2);
    assert_eq!(context.resource("b")["inputs"]["v"], 1);
}

#[test]
fn up_without_yes_refuses_when_not_interactive() {
    let context = TestContext::with_program(
        "name: refuse\nruntime: yaml\nresources:\n  a:\n    type: fake:Resource\n",
    );
    let run = context.cairn(&["up"]).expect_code(2);
    assert!(run.stderr.contains("--yes"), "{}", run.stderr);
    assert!(context.resources().is_empty());
    context.cairn(&["up", "--yes"]).success();
    context.cairn(&["destroy"]).expect_code(2);
    assert_eq!(context.resources().len(), 1);
}

#[test]
fn json_output_is_machine_readable() {
    let context = TestContext::with_program(
        "name: json\nruntime: yaml\nresources:\n  a:\n    type: fake:Resource\n    properties:\n      v: 1\noutputs:\n  v: ${a.v}\n",
    );
    let run = context.cairn(&["up", "--yes", "--json"]).success();
    let json: serde_json::Value = serde_json::from_str(&run.stdout).expect("one JSON document");
    assert_eq!(json["changeSummary"]["create"], 2);
    assert_eq!(json["outputs"]["v"], 1);
    assert_eq!(json["result"], "succeeded");
    let ops: Vec<&str> = json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| step["op"].as_str().unwrap())
        .collect();
    assert_eq!(ops, vec!["create", "create"]);
}

#[test]
fn refresh_detects_resources_deleted_outside_cairn() {
    let context = TestContext::with_program(
        "name: drift\nruntime: yaml\nresources:\n  a:\n    type: fake:Resource\n  b:\n    type: fake:Resource\n",
    );
    let ledger = context.root.path().join("ledger.jsonl");
    let env = [("CAIRN_FAKE_LEDGER", ledger.as_path())];
    context.cairn_with(&["up", "--yes"], &env).success();
    let a_id = context.resource("a")["id"].as_str().unwrap().to_owned();
    assert_eq!(std::fs::read_to_string(&ledger).unwrap().lines().count(), 2);

    // Delete `a` behind Cairn's back.
    let mut text = std::fs::read_to_string(&ledger).unwrap();
    text.push_str(&format!(
        "{}\n",
        serde_json::json!({"op": "delete", "urn": "outside", "id": a_id})
    ));
    std::fs::write(&ledger, text).unwrap();

    let preview = context
        .cairn_with(&["refresh", "--preview-only"], &env)
        .success();
    assert!(
        preview
            .stdout
            .contains("Resources: 1 to delete, 1 unchanged"),
        "{}",
        preview.stdout
    );
    assert_eq!(context.resources().len(), 2, "a preview changed state");
    let refresh = context.cairn_with(&["refresh", "--yes"], &env).success();
    assert!(
        refresh.stdout.contains("Resources: 1 deleted, 1 unchanged"),
        "{}",
        refresh.stdout
    );
    let names = context.resource_names();
    assert_eq!(names, vec!["b"]);

    let up = context.cairn_with(&["up", "--yes"], &env).success();
    assert!(
        up.stdout.contains("Resources: 1 created, 2 unchanged"),
        "{}",
        up.stdout
    );
}

#[test]
fn up_with_refresh_plans_against_live_state() {
    let context = TestContext::with_program(
        "name: drift\nruntime: yaml\nresources:\n  a:\n    type: fake:Resource\n",
    );
    let ledger = context.root.path().join("ledger.jsonl");
    let env = [("CAIRN_FAKE_LEDGER", ledger.as_path())];
    context.cairn_with(&["up", "--yes"], &env).success();
    let a_id = context.resource("a")["id"].as_str().unwrap().to_owned();
    let mut text = std::fs::read_to_string(&ledger).unwrap();
    text.push_str(&format!(
        "{}\n",
        serde_json::json!({"op": "delete", "urn": "outside", "id": a_id})
    ));
    std::fs::write(&ledger, text).unwrap();
    let up = context
        .cairn_with(&["up", "--yes", "--refresh"], &env)
        .success();
    assert!(up.stdout.contains("1 created"), "{}", up.stdout);
    assert_ne!(context.resource("a")["id"], a_id.as_str());
}

#[test]
fn retain_on_delete_leaves_the_resource_alone() {
    let context = TestContext::with_program(
        "name: retain\nruntime: yaml\nresources:\n  kept:\n    type: command:local:Command\n    properties:\n      create: echo made >> log.txt\n      delete: echo deleted >> log.txt\n    options:\n      retainOnDelete: true\n",
    );
    context.cairn(&["up", "--yes"]).success();
    let destroy = context.cairn(&["destroy", "--yes"]).success();
    assert!(destroy.stdout.contains("2 deleted"), "{}", destroy.stdout);
    assert_eq!(context.read("log.txt"), "made\n", "the delete command ran");
    assert!(context.resources().is_empty());
}

#[test]
fn replace_on_changes_forces_replacement() {
    let program = |value: u32| {
        format!(
            "name: roc\nruntime: yaml\nresources:\n  thing:\n    type: fake:Resource\n    properties:\n      v: {value}\n    options:\n      replaceOnChanges: [v]\n"
        )
    };
    let context = TestContext::with_program(&program(1));
    context.cairn(&["up", "--yes"]).success();
    let id = context.resource("thing")["id"].clone();
    context.write_program(&program(2));
    let run = context.cairn(&["up", "--yes"]).success();
    assert!(run.stdout.contains("1 replaced"), "{}", run.stdout);
    assert_ne!(context.resource("thing")["id"], id);
}

#[test]
fn children_chain_their_parents_types_in_urns() {
    let context = TestContext::with_program(
        "name: tree\nruntime: yaml\nresources:\n  parent:\n    type: fake:Resource\n  child:\n    type: random:RandomPet\n    options:\n      parent: ${parent}\n",
    );
    let run = context.cairn(&["up", "--yes"]).success();
    assert!(
        run.stdout.contains("└─ random:index:RandomPet"),
        "{}",
        run.stdout
    );
    let child = context.resource("child");
    assert_eq!(
        child["urn"],
        "urn:pulumi:dev::tree::fake:index:Resource$random:index/randomPet:RandomPet::child"
    );
    assert_eq!(
        child["parent"],
        "urn:pulumi:dev::tree::fake:index:Resource::parent"
    );
}

#[test]
fn children_inherit_protect_and_retain_on_delete_from_their_parent() {
    let context = TestContext::with_program(
        "name: inherit\nruntime: yaml\nresources:\n  guard:\n    type: fake:Resource\n    options:\n      protect: true\n  guarded:\n    type: fake:Resource\n    options:\n      parent: ${guard}\n  keeper:\n    type: command:local:Command\n    properties:\n      create: echo keeper >> log.txt\n      delete: echo keeper deleted >> log.txt\n    options:\n      retainOnDelete: true\n  kept:\n    type: command:local:Command\n    properties:\n      create: echo kept >> log.txt\n      delete: echo kept deleted >> log.txt\n    options:\n      parent: ${keeper}\n",
    );
    context.cairn(&["up", "--yes"]).success();
    assert_eq!(context.resource("guarded")["protect"], true);
    assert_eq!(context.resource("kept")["retainOnDelete"], true);
    let run = context.cairn(&["destroy", "--yes"]).expect_code(1);
    assert!(
        run.stderr.contains("resources are protected")
            && run
                .stderr
                .contains("fake:index:Resource$fake:index:Resource::guarded"),
        "{}",
        run.stderr
    );
    context.write_program(
        "name: inherit\nruntime: yaml\nresources:\n  guard:\n    type: fake:Resource\n    options:\n      protect: true\n  guarded:\n    type: fake:Resource\n    options:\n      parent: ${guard}\n",
    );
    let up = context.cairn(&["up", "--yes"]).success();
    assert!(up.stdout.contains("2 deleted"), "{}", up.stdout);
    let mut names = context.resource_names();
    names.sort();
    assert_eq!(names, ["guard", "guarded"]);
    assert_eq!(
        context.read("log.txt"),
        "keeper\nkept\n",
        "a delete command ran"
    );
}

#[test]
fn deleted_with_skips_the_delete_when_its_resource_goes_too() {
    let context = TestContext::with_program(
        "name: taken\nruntime: yaml\nresources:\n  owner:\n    type: fake:Resource\n  inside:\n    type: fake:Resource\n    options:\n      deletedWith: ${owner}\n  alone:\n    type: fake:Resource\n    options:\n      deletedWith: ${owner}\n",
    );
    let ledger = context.root.path().join("ledger.jsonl");
    let env = [("CAIRN_FAKE_LEDGER", ledger.as_path())];
    context.cairn_with(&["up", "--yes"], &env).success();
    let owner = context.resource("owner");
    assert_eq!(context.resource("inside")["deletedWith"], owner["urn"]);
    let alone_id = context.resource("alone")["id"].clone();
    let inside_id = context.resource("inside")["id"].clone();
    let deletes = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&ledger)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
            .filter(|entry| entry["op"] == "delete")
            .map(|entry| entry["id"].clone())
            .collect()
    };

    // `alone` goes while `owner` stays: it is deleted through its provider.
    context.write_program(
        "name: taken\nruntime: yaml\nresources:\n  owner:\n    type: fake:Resource\n  inside:\n    type: fake:Resource\n    options:\n      deletedWith: ${owner}\n",
    );
    context.cairn_with(&["up", "--yes"], &env).success();
    assert_eq!(deletes(), [alone_id]);

    // `inside` goes with `owner`: only `owner` is deleted by the provider.
    let destroy = context.cairn_with(&["destroy", "--yes"], &env).success();
    assert!(destroy.stdout.contains("3 deleted"), "{}", destroy.stdout);
    assert!(context.resources().is_empty());
    let deleted = deletes();
    assert_eq!(deleted.len(), 2, "{deleted:?}");
    assert_eq!(deleted[1], owner["id"]);
    assert!(!deleted.contains(&inside_id));
}

/// A provider that answers that an update failed leaves the resource as it was and nothing
/// pending: the next `up` runs without `refresh --clear-pending`, as with Pulumi.
#[test]
fn a_failed_update_leaves_nothing_pending() {
    let context = TestContext::with_program(
        "name: upd\nruntime: yaml\nresources:\n  r:\n    type: fake:Resource\n    properties:\n      a: 1\n",
    );
    context.cairn(&["up", "--yes"]).success();
    context.write_program(
        "name: upd\nruntime: yaml\nresources:\n  r:\n    type: fake:Resource\n    properties:\n      a: 2\n      failOn: update\n",
    );
    context.cairn(&["up", "--yes"]).expect_code(1);
    assert_eq!(context.resource("r")["inputs"]["a"], 1);
    context.write_program(
        "name: upd\nruntime: yaml\nresources:\n  r:\n    type: fake:Resource\n    properties:\n      a: 3\n",
    );
    context.cairn(&["up", "--yes"]).success();
    assert_eq!(context.resource("r")["inputs"]["a"], 3);
}
