//! `cairn config` and how programs read configuration.

use crate::support::TestContext;

const PROGRAM: &str = r#"
name: configured
runtime: yaml
config:
  count:
    type: integer
    default: 2
  name:
    type: string
resources:
  a:
    type: fake:Resource
    properties:
      count: ${count}
      name: ${name}
      both: ${name}-${count}
"#;

#[test]
fn set_get_list_and_remove() {
    let context = TestContext::with_program(PROGRAM);
    context.cairn(&["config", "set", "name", "alpha"]).success();
    assert_eq!(
        context.cairn(&["config", "get", "name"]).success().stdout,
        "alpha\n"
    );
    let file = context.read("Cairn.dev.yaml");
    assert!(file.contains("configured:name"), "{file}");
    let list = context.cairn(&["config"]).success();
    assert!(list.stdout.contains("name"), "{}", list.stdout);
    assert!(list.stdout.contains("alpha"), "{}", list.stdout);
    context.cairn(&["config", "rm", "name"]).success();
    context.cairn(&["config", "get", "name"]).expect_code(2);
}

#[test]
fn program_reads_typed_config_with_defaults() {
    let context = TestContext::with_program(PROGRAM);
    context.cairn(&["config", "set", "name", "alpha"]).success();
    context.cairn(&["up", "--yes"]).success();
    let a = context.resource("a");
    assert_eq!(a["inputs"]["count"], 2);
    assert_eq!(a["inputs"]["both"], "alpha-2");
    context.cairn(&["config", "set", "count", "5"]).success();
    context.cairn(&["up", "--yes"]).success();
    assert_eq!(context.resource("a")["inputs"]["count"], 5);
}

#[test]
fn missing_required_config_is_bad_input() {
    let context = TestContext::with_program(PROGRAM);
    let run = context.cairn(&["preview"]).expect_code(2);
    assert!(run.stderr.contains("name"), "{}", run.stderr);
    assert!(run.stderr.contains("cairn config set"), "{}", run.stderr);
}

#[test]
fn parallel_sets_all_land_and_keep_the_salt() {
    let context = TestContext::with_program(PROGRAM);
    let before = context.read("Cairn.dev.yaml");
    let salt_line = before
        .lines()
        .find(|line| line.starts_with("encryptionsalt: "))
        .expect("stack init writes the salt")
        .to_owned();
    let children: Vec<_> = (0..16)
        .map(|n| {
            context
                .command(&["config", "set", &format!("k{n}"), &format!("v{n}")])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let after = context.read("Cairn.dev.yaml");
    assert!(after.lines().any(|line| line == salt_line), "{after}");
    let list = context.cairn(&["config", "--json"]).success();
    let list: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    for n in 0..16 {
        assert_eq!(
            list[format!("configured:k{n}")]["value"],
            format!("v{n}"),
            "{after}"
        );
    }
    // Nothing is left behind but the lock file.
    let mut names: Vec<String> = std::fs::read_dir(context.project())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [".Cairn.dev.yaml.lock", "Cairn.dev.yaml", "Cairn.yaml"]
    );
}

#[test]
fn parallel_secrets_on_a_stack_without_salt_share_one_salt() {
    let context = TestContext::with_program(PROGRAM);
    // A stack file with no salt yet: the first secret makes one, and only one may be made.
    std::fs::write(context.project().join("Cairn.dev.yaml"), "").unwrap();
    let children: Vec<_> = (0..8)
        .map(|n| {
            context
                .command(&[
                    "config",
                    "set",
                    "--secret",
                    &format!("s{n}"),
                    &format!("v{n}"),
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        assert!(child.wait_with_output().unwrap().status.success());
    }
    for n in 0..8 {
        let run = context
            .cairn(&["config", "get", &format!("s{n}")])
            .success();
        assert_eq!(run.stdout, format!("v{n}\n"));
    }
}

#[test]
fn program_reads_stack_config_it_does_not_declare() {
    let context = TestContext::with_program(
        "name: undeclared\nruntime: yaml\nresources:\n  a:\n    type: fake:Resource\n    properties:\n      greeting: ${greeting}\n      region: ${settings.region}\n      zones: ${settings.zones}\n      first: ${settings.zones[0]}\noutputs:\n  settings: ${settings}\n",
    );
    context
        .cairn(&["config", "set", "greeting", "hi"])
        .success();
    let stack_file = context.project().join("Cairn.dev.yaml");
    let mut text = context.read("Cairn.dev.yaml");
    text.push_str("  undeclared:settings:\n    region: eu\n    zones: [a, b]\n");
    std::fs::write(&stack_file, text).unwrap();
    context.cairn(&["up", "--yes"]).success();
    let inputs = &context.resource("a")["inputs"];
    assert_eq!(
        *inputs,
        serde_json::json!({"greeting": "hi", "region": "eu", "zones": ["a", "b"], "first": "a"})
    );
    let settings = context
        .cairn(&["stack", "output", "settings", "--json"])
        .success()
        .stdout;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&settings).unwrap(),
        serde_json::json!({"region": "eu", "zones": ["a", "b"]})
    );
}
