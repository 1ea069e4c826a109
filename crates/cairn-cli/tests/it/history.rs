//! `cairn stack history`: every update with its kind, result, times, changes and the git
//! environment of the project (seed 000's keys).

use std::path::Path;
use std::process::Command;

use crate::support::TestContext;

const PROGRAM: &str = r#"
name: hist
runtime: yaml
resources:
  thing:
    type: fake:Resource
    properties:
      size: 1
"#;

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=Ada Author",
            "-c",
            "user.email=ada@example.com",
        ])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git runs");
    assert!(output.status.success(), "git {args:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[test]
fn history_records_each_update_with_the_git_environment() {
    let context = TestContext::with_program(PROGRAM);
    let project = context.project();
    git(&project, &["init", "-q", "-b", "main"]);
    git(&project, &["add", "Cairn.yaml"]);
    git(&project, &["commit", "-q", "-m", "first"]);
    git(
        &project,
        &["remote", "add", "origin", "git@github.com:acme/infra.git"],
    );
    let head = git(&project, &["rev-parse", "HEAD"]);

    context
        .cairn(&["up", "--yes", "-m", "first update"])
        .success();
    context.write_program(&PROGRAM.replace("size: 1", "size: 2"));
    context.cairn(&["up", "--yes"]).success();

    let run = context.cairn(&["stack", "history", "--json"]).success();
    let history: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let updates = history.as_array().unwrap();
    assert_eq!(updates.len(), 2);
    let (newest, oldest) = (&updates[0], &updates[1]);
    assert_eq!(oldest["message"], "first update");
    assert_eq!(oldest["kind"], "update");
    assert_eq!(oldest["result"], "succeeded");
    assert_eq!(oldest["resourceChanges"]["create"], 2);
    assert_eq!(newest["resourceChanges"]["update"], 1);
    assert!(newest["version"].as_u64() > oldest["version"].as_u64());

    let first = &oldest["environment"];
    assert_eq!(first["git.head"], head.as_str());
    assert_eq!(first["git.headName"], "refs/heads/main");
    assert_eq!(first["git.dirty"], "false");
    assert_eq!(first["git.author"], "Ada Author");
    assert_eq!(first["git.author.email"], "ada@example.com");
    assert_eq!(first["git.committer"], "Ada Author");
    assert_eq!(first["vcs.owner"], "acme");
    assert_eq!(first["vcs.repo"], "infra");
    assert_eq!(first["github.repo"], "infra");
    // The second update ran with Cairn.yaml edited and not committed.
    assert_eq!(newest["environment"]["git.dirty"], "true");

    let text = context.cairn(&["stack", "history"]).success();
    assert!(
        text.stdout.contains(&format!("git.head: {head}")),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("UpdateKind: update"),
        "{}",
        text.stdout
    );
}

#[test]
fn outside_a_repository_history_has_no_git_keys() {
    let context = TestContext::with_program(PROGRAM);
    context.cairn(&["up", "--yes"]).success();
    let run = context.cairn(&["stack", "history", "--json"]).success();
    let history: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let environment = history[0]["environment"].as_object().unwrap();
    assert!(environment.contains_key("cairn.version"));
    assert!(
        environment.keys().all(|key| !key.starts_with("git.")),
        "{environment:?}"
    );
}
