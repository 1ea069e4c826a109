//! Pulumi YAML features end to end: project layouts, invokes, `get`, stack references,
//! aliases, variables and built-ins.

use crate::support::TestContext;

#[test]
fn pulumi_yaml_with_main_directory_runs_unchanged() {
    let context = TestContext::new();
    std::fs::write(
        context.project().join("Pulumi.yaml"),
        "name: pulumi-project\nruntime:\n  name: yaml\nmain: infra/\n",
    )
    .unwrap();
    std::fs::create_dir_all(context.project().join("infra")).unwrap();
    std::fs::write(
        context.project().join("infra/Main.yaml"),
        "resources:\n  pet:\n    type: random:index/randomPet:RandomPet\n    properties:\n      length: 3\n      separator: _\noutputs:\n  name: ${pet.id}\n",
    )
    .unwrap();
    context.cairn(&["stack", "init", "dev"]).success();
    assert!(context.project().join("Pulumi.dev.yaml").exists());
    assert!(!context.project().join("Cairn.dev.yaml").exists());
    context.cairn(&["up", "--yes"]).success();
    let name = context.cairn(&["stack", "output", "name"]).success().stdout;
    assert_eq!(name.trim().split('_').count(), 3, "{name}");
}

#[test]
fn variables_builtins_and_invokes() {
    let context = TestContext::with_program(
        r#"
name: builtins
runtime: yaml
variables:
  parts:
    fn::split: [",", "a,b,c"]
  joined:
    fn::join: ["-", "${parts}"]
  second:
    fn::select: [1, "${parts}"]
  encoded:
    fn::toBase64: hello
  ran:
    fn::invoke:
      function: command:local:run
      arguments:
        command: echo invoked
      return: stdout
resources:
  thing:
    type: fake:Resource
    properties:
      joined: ${joined}
      second: ${second}
      encoded: ${encoded}
      decoded:
        fn::fromBase64: ${encoded}
      json:
        fn::toJSON:
          a: 1
      ran: ${ran}
      file:
        fn::readFile: ./data.txt
      stack: ${pulumi.stack}
      project: ${pulumi.project}
"#,
    );
    std::fs::write(context.project().join("data.txt"), "from a file").unwrap();
    context.cairn(&["up", "--yes"]).success();
    let inputs = &context.resource("thing")["inputs"];
    assert_eq!(inputs["file"], "from a file");
    assert_eq!(inputs["joined"], "a-b-c");
    assert_eq!(inputs["second"], "b");
    assert_eq!(inputs["encoded"], "aGVsbG8=");
    assert_eq!(inputs["decoded"], "hello");
    assert_eq!(inputs["json"], r#"{"a":1}"#);
    assert_eq!(inputs["ran"], "invoked");
    assert_eq!(inputs["stack"], "dev");
    assert_eq!(inputs["project"], "builtins");
}

#[test]
fn get_reads_an_existing_resource_without_owning_it() {
    let context = TestContext::with_program(
        "name: getter\nruntime: yaml\nresources:\n  existing:\n    type: fake:Resource\n    get:\n      id: some-id\noutputs:\n  id: ${existing.id}\n",
    );
    let run = context.cairn(&["up", "--yes"]).success();
    assert!(run.stdout.contains("1 read"), "{}", run.stdout);
    let existing = context.resource("existing");
    assert_eq!(existing["id"], "some-id");
    assert_eq!(existing["external"], true);
    assert_eq!(
        context
            .cairn(&["stack", "output", "id"])
            .success()
            .stdout
            .trim(),
        "some-id"
    );
    context.cairn(&["destroy", "--yes"]).success();
    assert!(context.resources().is_empty());
}

#[test]
fn aliases_keep_a_renamed_resource() {
    let context = TestContext::with_program(
        "name: renamed\nruntime: yaml\nresources:\n  old:\n    type: fake:Resource\n    properties:\n      v: 1\n",
    );
    context.cairn(&["up", "--yes"]).success();
    let id = context.resource("old")["id"].clone();
    context.write_program(
        "name: renamed\nruntime: yaml\nresources:\n  new:\n    type: fake:Resource\n    properties:\n      v: 1\n    options:\n      aliases:\n        - urn:pulumi:dev::renamed::fake:index:Resource::old\n",
    );
    let run = context.cairn(&["up", "--yes"]).success();
    assert!(!run.stdout.contains("created"), "{}", run.stdout);
    assert!(!run.stdout.contains("deleted"), "{}", run.stdout);
    let resources = context.resources();
    assert_eq!(resources.len(), 1);
    assert_eq!(context.resource("new")["id"], id);
}

#[test]
fn stack_reference_reads_another_stacks_outputs() {
    let context = TestContext::with_program(
        "name: refs\nruntime: yaml\nresources:\n  a:\n    type: fake:Resource\n    properties:\n      v: shared-value\noutputs:\n  v: ${a.v}\n  hidden:\n    fn::secret: hush\n",
    );
    context.cairn(&["up", "--yes"]).success();
    context.cairn(&["stack", "init", "consumer"]).success();
    context.write_program(
        "name: refs\nruntime: yaml\nresources:\n  ref:\n    type: pulumi:pulumi:StackReference\n    properties:\n      name: organization/refs/dev\n  b:\n    type: fake:Resource\n    properties:\n      v: ${ref.outputs[\"v\"]}\n      hidden: ${ref.outputs[\"hidden\"]}\noutputs:\n  copied: ${b.v}\n  hidden: ${b.hidden}\n",
    );
    context.cairn(&["up", "--yes"]).success();
    assert_eq!(
        context
            .cairn(&["stack", "output", "copied"])
            .success()
            .stdout
            .trim(),
        "shared-value"
    );
    assert_eq!(
        context
            .cairn(&["stack", "output", "hidden"])
            .success()
            .stdout
            .trim(),
        "[secret]"
    );
}

#[test]
fn login_logout_and_whoami() {
    let context = TestContext::new();
    let backend_dir = context.root.path().join("elsewhere");
    let url = format!("file://{}", backend_dir.display());
    let login = context.cairn(&["login", &url]).success();
    assert!(login.stdout.contains("Logged in"), "{}", login.stdout);
    assert_eq!(context.cairn(&["whoami"]).success().stdout.trim(), "tester");
    let json: serde_json::Value =
        serde_json::from_str(&context.cairn(&["whoami", "--json"]).success().stdout).unwrap();
    assert_eq!(json["url"], url.as_str());
    context.write_program("name: where\nruntime: yaml\n");
    context.cairn(&["stack", "init", "dev"]).success();
    assert!(backend_dir.join(".pulumi/stacks/where/dev.json").exists());
    context.cairn(&["logout"]).success();
    let json: serde_json::Value =
        serde_json::from_str(&context.cairn(&["whoami", "--json"]).success().stdout).unwrap();
    assert!(json["url"].as_str().unwrap().ends_with("/home"), "{json}");
}

#[test]
fn import_adopts_an_existing_resource() {
    let context = TestContext::with_program(
        "name: adopt\nruntime: yaml\nresources:\n  found:\n    type: fake:Resource\n    properties:\n      v: 1\n    options:\n      import: existing-7\n",
    );
    let ledger = context.root.path().join("ledger.jsonl");
    std::fs::write(
        &ledger,
        format!(
            "{}\n",
            serde_json::json!({"op": "create", "urn": "elsewhere", "id": "existing-7"})
        ),
    )
    .unwrap();
    let env = [("CAIRN_FAKE_LEDGER", ledger.as_path())];
    let preview = context.cairn_with(&["preview"], &env).success();
    assert!(preview.stdout.contains("1 to import"), "{}", preview.stdout);
    let up = context.cairn_with(&["up", "--yes"], &env).success();
    assert!(up.stdout.contains("1 imported"), "{}", up.stdout);
    let found = context.resource("found");
    assert_eq!(found["id"], "existing-7");
    assert!(
        found.get("external").is_none(),
        "an imported resource is owned: {found}"
    );
    // Nothing was created: the ledger still has only the outside create.
    assert_eq!(std::fs::read_to_string(&ledger).unwrap().lines().count(), 1);
    let again = context.cairn_with(&["up", "--yes"], &env).success();
    assert!(again.stdout.contains("2 unchanged"), "{}", again.stdout);

    context.write_program(
        "name: adopt\nruntime: yaml\nresources:\n  missing:\n    type: fake:Resource\n    options:\n      import: no-such-id\n",
    );
    let failed = context.cairn_with(&["up", "--yes"], &env).expect_code(1);
    assert!(failed.stdout.contains("no-such-id"), "{}", failed.stdout);
}

#[test]
fn main_yaml_beside_a_project_file_without_a_program_is_run() {
    let context = TestContext::new();
    std::fs::write(
        context.project().join("Pulumi.yaml"),
        "name: beside\nruntime: yaml\n",
    )
    .unwrap();
    std::fs::write(
        context.project().join("Main.yaml"),
        "resources:\n  thing:\n    type: fake:Resource\n    properties:\n      v: 1\noutputs:\n  v: ${thing.v}\n",
    )
    .unwrap();
    context.cairn(&["stack", "init", "dev"]).success();
    context.cairn(&["up", "--yes"]).success();
    assert_eq!(context.resource_names(), ["thing"]);
    let v = context.cairn(&["stack", "output", "v"]).success().stdout;
    assert_eq!(v.trim(), "1");

    std::fs::write(
        context.project().join("Pulumi.yaml"),
        "name: beside\nruntime: yaml\noutputs:\n  w: 2\n",
    )
    .unwrap();
    let run = context.cairn(&["preview"]).expect_code(2);
    assert!(
        run.stderr
            .contains("`Pulumi.yaml` declares `outputs`, but `Main.yaml` beside it is the program"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_whole_resource_is_the_object_of_its_outputs() {
    let context = TestContext::with_program(
        "name: whole\nruntime: yaml\nresources:\n  first:\n    type: fake:Resource\n    properties:\n      v: 1\n  second:\n    type: fake:Resource\n    properties:\n      copy: ${first}\noutputs:\n  first: ${first}\n  hidden:\n    fn::secret: ${first}\n",
    );
    context.cairn(&["up", "--yes"]).success();
    let first = context.resource("first");
    let expected = serde_json::json!({
        "id": first["id"],
        "urn": first["urn"],
        "v": 1,
    });
    assert_eq!(context.resource("second")["inputs"]["copy"], expected);
    let outputs: serde_json::Value = serde_json::from_str(
        &context
            .cairn(&["stack", "output", "--json", "--show-secrets"])
            .success()
            .stdout,
    )
    .unwrap();
    assert_eq!(
        outputs,
        serde_json::json!({"first": expected, "hidden": expected})
    );
}

#[test]
fn aliases_in_object_form_keep_renamed_and_reparented_resources() {
    let context = TestContext::with_program(
        "name: moved\nruntime: yaml\nresources:\n  p:\n    type: fake:Resource\n  a:\n    type: fake:Resource\n    properties:\n      v: 1\n  b:\n    type: fake:Resource\n    properties:\n      v: 2\n    options:\n      parent: ${p}\n  c:\n    type: fake:Resource\n    properties:\n      v: 3\n",
    );
    context.cairn(&["up", "--yes"]).success();
    let ids: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|name| context.resource(name)["id"].clone())
        .collect();
    context.write_program(
        "name: moved\nruntime: yaml\nresources:\n  p:\n    type: fake:Resource\n  renamed:\n    type: fake:Resource\n    properties:\n      v: 1\n    options:\n      aliases:\n        - name: a\n  b:\n    type: fake:Resource\n    properties:\n      v: 2\n    options:\n      aliases:\n        - parent: ${p}\n  c:\n    type: fake:Resource\n    properties:\n      v: 3\n    options:\n      parent: ${p}\n      aliases:\n        - noParent: true\n",
    );
    let run = context.cairn(&["up", "--yes"]).success();
    assert!(!run.stdout.contains("create"), "{}", run.stdout);
    assert!(!run.stdout.contains("delete"), "{}", run.stdout);
    let mut names = context.resource_names();
    names.sort();
    assert_eq!(names, ["b", "c", "p", "renamed"]);
    assert_eq!(context.resource("renamed")["id"], ids[0]);
    assert_eq!(context.resource("b")["id"], ids[1]);
    assert_eq!(context.resource("c")["id"], ids[2]);
    assert_eq!(
        context.resource("b")["urn"],
        "urn:pulumi:dev::moved::fake:index:Resource::b"
    );
    assert_eq!(
        context.resource("c")["urn"],
        "urn:pulumi:dev::moved::fake:index:Resource$fake:index:Resource::c"
    );
}
