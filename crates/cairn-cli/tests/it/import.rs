//! `cairn import TYPE NAME ID`: adopt an existing resource through its provider's Read, change
//! nothing else, and print the snippet that declares it.

use crate::support::TestContext;

const PROGRAM: &str = r#"
name: imp
runtime: yaml
resources:
  kept:
    type: fake:Resource
    properties:
      size: 1
"#;

#[test]
fn import_adopts_a_live_resource_and_its_snippet_makes_a_no_op_program() {
    let context = TestContext::with_program(PROGRAM);
    let ledger = context.root.path().join("ledger.jsonl");
    let env = [("CAIRN_FAKE_LEDGER", ledger.as_path())];
    context.cairn_with(&["up", "--yes"], &env).success();
    let kept = context.resource("kept");
    // A resource made outside Cairn: the fake's live world is its ledger.
    std::fs::write(
        &ledger,
        format!(
            "{}{}\n",
            std::fs::read_to_string(&ledger).unwrap(),
            r#"{"op":"create","urn":"outside","id":"made-by-hand"}"#
        ),
    )
    .unwrap();

    let run = context
        .cairn_with(
            &[
                "import",
                "fake:Resource",
                "adopted",
                "made-by-hand",
                "--yes",
            ],
            &env,
        )
        .success();
    assert!(
        run.stdout
            .contains("  adopted:\n    type: fake:index:Resource"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("protect: true"), "{}", run.stdout);
    let adopted = context.resource("adopted");
    assert_eq!(adopted["id"], "made-by-hand");
    assert_eq!(adopted["protect"], true);
    assert_eq!(context.resource("kept")["id"], kept["id"]);

    // Declaring it as printed leaves nothing to do.
    let snippet: String = run
        .stdout
        .lines()
        .skip_while(|line| !line.starts_with("  adopted:"))
        .map(|line| format!("{line}\n"))
        .collect();
    context.write_program(&format!("{PROGRAM}{snippet}"));
    let preview = context.cairn_with(&["preview"], &env).success();
    assert!(preview.stdout.contains("3 unchanged"), "{}", preview.stdout);
    assert!(!preview.stdout.contains("to create"), "{}", preview.stdout);
}

#[test]
fn importing_what_does_not_exist_or_an_unknown_type_changes_nothing() {
    let context = TestContext::with_program(PROGRAM);
    let ledger = context.root.path().join("ledger.jsonl");
    let env = [("CAIRN_FAKE_LEDGER", ledger.as_path())];
    context.cairn_with(&["up", "--yes"], &env).success();
    let before = context.export();

    let missing = context
        .cairn_with(
            &["import", "fake:Resource", "ghost", "no-such-id", "--yes"],
            &env,
        )
        .expect_code(1);
    let all = format!("{}{}", missing.stdout, missing.stderr);
    assert!(all.contains("no-such-id"), "{all}");

    let unknown = context
        .cairn(&["import", "nope:Thing", "x", "y", "--yes"])
        .expect_code(2);
    assert!(unknown.stderr.contains("nope:Thing"), "{}", unknown.stderr);

    let taken = context
        .cairn(&["import", "fake:Resource", "kept", "y", "--yes"])
        .expect_code(2);
    assert!(
        taken.stderr.contains("already declares"),
        "{}",
        taken.stderr
    );

    assert_eq!(
        context.export()["deployment"]["resources"],
        before["deployment"]["resources"]
    );
}

#[test]
fn importing_over_a_name_the_stack_already_uses_is_refused() {
    let context = TestContext::with_program("name: imp\nruntime: yaml\n");
    let ledger = context.root.path().join("ledger.jsonl");
    let env = [("CAIRN_FAKE_LEDGER", ledger.as_path())];
    std::fs::write(
        &ledger,
        concat!(
            r#"{"op":"create","urn":"outside","id":"first"}"#,
            "\n",
            r#"{"op":"create","urn":"outside","id":"second"}"#,
            "\n"
        ),
    )
    .unwrap();
    let import =
        |id: &str| context.cairn_with(&["import", "fake:Resource", "adopted", id, "--yes"], &env);
    import("first").success();
    let refused = import("second").expect_code(2);
    assert!(
        refused
            .stderr
            .contains("already has a resource named `adopted`")
            && refused.stderr.contains("`first`"),
        "{}",
        refused.stderr
    );
    assert_eq!(context.resource("adopted")["id"], "first");
    // The same ID again is no conflict.
    import("first").success();
}

#[test]
fn an_imported_random_resource_takes_its_outputs_from_the_id() {
    let context = TestContext::with_program(
        "name: adopt\nruntime: yaml\nresources:\n  token:\n    type: random:RandomString\n    properties:\n      length: 8\n    options:\n      import: Ab3dEf7h\n  pw:\n    type: random:RandomPassword\n    properties:\n      length: 6\n    options:\n      import: s3cr3t\n  n:\n    type: random:RandomInteger\n    properties:\n      min: 1\n      max: 100\n    options:\n      import: \"42\"\noutputs:\n  token: ${token.result}\n  pw: ${pw.result}\n  n: ${n.result}\n",
    );
    let run = context.cairn(&["up", "--yes"]).success();
    assert!(run.stdout.contains("3 imported"), "{}", run.stdout);
    let outputs: serde_json::Value = serde_json::from_str(
        &context
            .cairn(&["stack", "output", "--json", "--show-secrets"])
            .success()
            .stdout,
    )
    .unwrap();
    assert_eq!(
        outputs,
        serde_json::json!({"token": "Ab3dEf7h", "pw": "s3cr3t", "n": 42})
    );
    assert_eq!(context.resource("pw")["id"], "none");
    let preview = context.cairn(&["preview"]).success();
    assert!(preview.stdout.contains("4 unchanged"), "{}", preview.stdout);
}

/// The plugin that offers the imported type is started once: the check of the import and the
/// update that adopts it use the same process.
#[test]
fn import_starts_the_plugins_once() {
    let context = TestContext::new();
    let plugin =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/misbehaving-plugin");
    context.write_program(&format!(
        "name: imp\nruntime: yaml\nplugins:\n  bad: {}\nresources:\n  thing:\n    type: bad:index:Thing\n    properties:\n      size: 1\n",
        plugin.display()
    ));
    context.cairn(&["stack", "init", "dev"]).success();
    let starts = context.root.path().join("starts.txt");
    let env = [("PLUGIN_STARTS", starts.as_path())];
    context
        .cairn_with(
            &["import", "bad:index:Thing", "adopted", "thing-7", "--yes"],
            &env,
        )
        .success();
    assert_eq!(context.resource("adopted")["id"], "thing-7");
    let started = std::fs::read_to_string(&starts).unwrap();
    assert_eq!(started.lines().count(), 1, "started:\n{started}");
}
