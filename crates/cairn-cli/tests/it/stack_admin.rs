//! Stack tags, `stack rename` and `cairn logs`.

use crate::support::{TestContext, files_under};

const PROGRAM: &str = r#"
name: admin
runtime: yaml
description: A project to administer
config:
  token:
    type: string
    secret: true
resources:
  thing:
    type: fake:Resource
    properties:
      size: 1
  talker:
    type: command:local:Command
    properties:
      create: echo "making it"; echo "the token is ${token}"; echo "a warning" >&2
outputs:
  size: ${thing.size}
"#;

const TOKEN: &str = "tok-4f9a-plaintext";

fn context() -> TestContext {
    let context = TestContext::with_program(PROGRAM);
    context
        .cairn(&["config", "set", "--secret", "token", TOKEN])
        .success();
    context
}

#[test]
fn tags_are_set_listed_removed_and_validated() {
    let context = context();
    context
        .cairn(&["stack", "tag", "set", "owner", "team-a"])
        .success();
    assert_eq!(
        context
            .cairn(&["stack", "tag", "get", "owner"])
            .success()
            .stdout
            .trim(),
        "team-a"
    );
    let listed = context.cairn(&["stack", "tag", "ls", "--json"]).success();
    let tags: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(tags["owner"], "team-a");
    assert_eq!(tags["cairn:project"], "admin");
    assert_eq!(tags["cairn:description"], "A project to administer");

    let bad = context
        .cairn(&["stack", "tag", "set", "no spaces", "x"])
        .expect_code(2);
    assert!(bad.stderr.contains("may only contain"), "{}", bad.stderr);
    let long = "v".repeat(257);
    let too_long = context
        .cairn(&["stack", "tag", "set", "ok", &long])
        .expect_code(2);
    assert!(too_long.stderr.contains("256"), "{}", too_long.stderr);
    context
        .cairn(&["stack", "tag", "set", "cairn:project", "x"])
        .expect_code(2);

    context.cairn(&["stack", "tag", "rm", "owner"]).success();
    context
        .cairn(&["stack", "tag", "get", "owner"])
        .expect_code(2);
}

#[test]
fn rename_moves_state_history_tags_logs_and_stack_file() {
    let context = context();
    context.cairn(&["up", "--yes"]).success();
    context
        .cairn(&["stack", "tag", "set", "owner", "me"])
        .success();
    let thing_id = context.resource("thing")["id"].clone();

    context.cairn(&["stack", "rename", "prod"]).success();
    assert!(context.project().join("Cairn.prod.yaml").exists());
    assert!(!context.project().join("Cairn.dev.yaml").exists());
    let thing = context.resource("thing");
    assert_eq!(thing["id"], thing_id);
    assert_eq!(
        thing["urn"],
        "urn:pulumi:prod::admin::fake:index:Resource::thing"
    );
    assert!(
        thing["parent"]
            .as_str()
            .unwrap()
            .starts_with("urn:pulumi:prod::"),
        "{thing}"
    );
    let names = context.cairn(&["stack", "ls", "--json"]).success();
    assert!(
        names.stdout.contains("prod") && !names.stdout.contains("\"dev\""),
        "{}",
        names.stdout
    );
    assert_eq!(
        context
            .cairn(&["stack", "tag", "get", "owner"])
            .success()
            .stdout
            .trim(),
        "me"
    );
    let history = context.cairn(&["stack", "history", "--json"]).success();
    assert!(history.stdout.contains("succeeded"), "{}", history.stdout);
    assert!(
        context
            .cairn(&["logs"])
            .success()
            .stdout
            .contains("making it")
    );
    // The same program is a no-op on the renamed stack: nothing was lost or duplicated.
    let preview = context.cairn(&["preview"]).success();
    assert!(preview.stdout.contains("3 unchanged"), "{}", preview.stdout);

    let taken = TestContext::with_program(PROGRAM);
    taken.cairn(&["stack", "init", "other"]).success();
    taken.cairn(&["stack", "rename", "dev"]).expect_code(2);
    taken.cairn(&["stack", "rename", "bad name"]).expect_code(2);
}

#[test]
fn logs_show_command_output_and_engine_steps_without_secrets() {
    let context = context();
    context.cairn(&["up", "--yes"]).success();
    let logs = context.cairn(&["logs"]).success();
    assert!(
        logs.stdout.contains("[talker] making it"),
        "{}",
        logs.stdout
    );
    assert!(
        logs.stdout.contains("[talker] a warning"),
        "{}",
        logs.stdout
    );
    assert!(
        logs.stdout.contains("[thing] created in"),
        "{}",
        logs.stdout
    );
    assert!(
        logs.stdout.contains("the token is [secret]"),
        "{}",
        logs.stdout
    );
    assert!(!logs.stdout.contains(TOKEN), "{}", logs.stdout);
    for file in files_under(&context.home()) {
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
        assert!(!text.contains(TOKEN), "{}", file.display());
    }

    let urn = context.resource("thing")["urn"]
        .as_str()
        .unwrap()
        .to_owned();
    let one = context
        .cairn(&["logs", "--resource", &urn, "--json"])
        .success();
    let lines: Vec<serde_json::Value> = one
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(!lines.is_empty());
    assert!(
        lines.iter().all(|line| line["urn"] == urn.as_str()),
        "{}",
        one.stdout
    );

    let recent = context.cairn(&["logs", "--since", "1h"]).success();
    assert!(recent.stdout.contains("making it"), "{}", recent.stdout);
    let bad = context.cairn(&["logs", "--since", "soon"]).expect_code(2);
    assert!(bad.stderr.contains("--since soon"), "{}", bad.stderr);
}

#[test]
fn logs_follow_prints_lines_as_an_update_writes_them() {
    let context = context();
    context.cairn(&["up", "--yes"]).success();
    let mut follower = context
        .command(&["logs", "--follow"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    context.write_program(&PROGRAM.replace("size: 1", "size: 2"));
    context.cairn(&["up", "--yes"]).success();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    follower.kill().unwrap();
    let output = follower.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("[thing] updated in"), "{text}");
    assert_eq!(text.matches("[talker] making it").count(), 1, "{text}");
}
