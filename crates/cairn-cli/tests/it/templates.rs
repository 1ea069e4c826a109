//! `cairn new`: projects from the built-in templates run as they are.

use crate::support::TestContext;

#[test]
fn every_template_makes_a_project_that_comes_up_and_goes_down() {
    for (template, output) in [("random-yaml", "petName"), ("command-yaml", "said")] {
        let context = TestContext::new();
        context
            .cairn(&["new", template, "--dir", "made", "--yes"])
            .success();
        let made = context.project().join("made");
        let project = std::fs::read_to_string(made.join("Cairn.yaml")).unwrap();
        assert!(project.starts_with("name: made\n"), "{project}");
        let dir = made.to_str().unwrap();
        let up = context.cairn(&["up", "--yes", "-C", dir]).success();
        assert!(up.stdout.contains(output), "{template}: {}", up.stdout);
        let destroyed = context.cairn(&["destroy", "--yes", "-C", dir]).success();
        assert!(
            destroyed.stdout.contains("deleted"),
            "{template}: {}",
            destroyed.stdout
        );
    }
}

#[test]
fn the_command_template_runs_its_command_in_the_project() {
    let context = TestContext::new();
    context.cairn(&["new", "command-yaml", "--yes"]).success();
    context.cairn(&["up", "--yes"]).success();
    assert_eq!(context.read("hello.txt"), "hello from stack dev\n");
    context.cairn(&["destroy", "--yes"]).success();
    assert!(!context.project().join("hello.txt").exists());
}

#[test]
fn bad_template_or_a_non_empty_directory_is_refused_and_writes_nothing() {
    let context = TestContext::new();
    let unknown = context.cairn(&["new", "nope"]).expect_code(2);
    assert!(
        unknown.stderr.contains("no template named `nope`"),
        "{}",
        unknown.stderr
    );
    assert!(unknown.stderr.contains("random-yaml"), "{}", unknown.stderr);

    std::fs::write(context.project().join("notes.txt"), "mine").unwrap();
    let busy = context.cairn(&["new", "random-yaml"]).expect_code(2);
    assert!(busy.stderr.contains("is not empty"), "{}", busy.stderr);
    assert!(!context.project().join("Cairn.yaml").exists());

    let listed = context.cairn(&["new"]).success();
    assert!(listed.stdout.contains("command-yaml"), "{}", listed.stdout);
}
