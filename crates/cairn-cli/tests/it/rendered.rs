//! Snapshots of what the CLI prints (insta): a preview, an update, a destroy and a failed step,
//! stdout and stderr as a user reads them off a pipe. Durations and the temporary directory are
//! normalised so the snapshots are stable; everything else is byte for byte. Review a changed
//! snapshot by eye: it must read well.

use crate::support::{Run, TestContext};

/// Three resources in a chain (so progress lines come in one order), an output and a secret.
const PROGRAM: &str = r#"
name: shop
runtime: yaml
config:
  apiKey:
    type: string
    secret: true
    default: hunter2
resources:
  network:
    type: fake:Resource
    properties:
      size: 1
      zone: a
      replaceOn: [zone]
  greeting:
    type: command:local:Command
    properties:
      create: echo hello from ${network.zone}
  server:
    type: fake:index:Resource
    properties:
      size: 2
      after: ${greeting.stdout}
      key: ${apiKey}
outputs:
  message: ${greeting.stdout}
  key: ${apiKey}
"#;

/// A run as one text: the command, its exit code, stdout, stderr, normalised.
fn rendered(context: &TestContext, args: &[&str]) -> String {
    let run: Run = context.cairn(args);
    let text = format!(
        "$ cairn {}\nexit code: {}\n--- stdout ---\n{}--- stderr ---\n{}",
        args.join(" "),
        run.code,
        run.stdout,
        run.stderr
    );
    text.replace(&context.root.path().display().to_string(), "[tmp]")
}

/// Runs `assert_snapshot!` with the normalisations every snapshot here needs.
macro_rules! assert_rendered {
    ($name:expr, $text:expr) => {
        insta::with_settings!({
            filters => vec![
                // Step durations in the tree and in progress lines: `(0.01s)`, `(2s)`.
                (r"\((\d+\.)?\d+s\)", "([time])"),
                (r"Duration: \d+s", "Duration: [time]"),
            ],
            prepend_module_to_snapshot => false,
        }, {
            insta::assert_snapshot!($name, $text);
        });
    };
}

#[test]
fn preview_of_a_new_stack() {
    let context = TestContext::with_program(PROGRAM);
    assert_rendered!("preview", rendered(&context, &["preview"]));
}

#[test]
fn preview_with_diff_of_an_update_and_a_replacement() {
    let context = TestContext::with_program(PROGRAM);
    context.cairn(&["up", "--yes"]).success();
    context.write_program(
        &PROGRAM
            .replace("size: 2", "size: 3")
            .replace("zone: a", "zone: b"),
    );
    assert_rendered!("preview_diff", rendered(&context, &["preview", "--diff"]));
}

#[test]
fn up_then_up_again() {
    let context = TestContext::with_program(PROGRAM);
    let first = rendered(&context, &["up", "--yes", "--parallel", "1"]);
    assert!(!first.contains("hunter2"), "a secret was printed:\n{first}");
    assert_rendered!("up", first);
    assert_rendered!(
        "up_unchanged",
        rendered(&context, &["up", "--yes", "--parallel", "1"])
    );
}

#[test]
fn destroy() {
    let context = TestContext::with_program(PROGRAM);
    context.cairn(&["up", "--yes"]).success();
    assert_rendered!(
        "destroy",
        rendered(&context, &["destroy", "--yes", "--parallel", "1"])
    );
}

#[test]
fn a_failed_step_with_diagnostics() {
    let context = TestContext::with_program(
        r#"
name: shop
runtime: yaml
resources:
  good:
    type: fake:Resource
    properties:
      size: 1
  bad:
    type: fake:Resource
    properties:
      failOn: create
      dependsOnGood: ${good.size}
  dependent:
    type: fake:Resource
    properties:
      from: ${bad.failOn}
"#,
    );
    let run = rendered(&context, &["up", "--yes", "--parallel", "1"]);
    assert!(run.contains("exit code: 1"), "{run}");
    assert_rendered!("failed_step", run);
}
