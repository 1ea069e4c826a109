//! The live progress view, on a pseudo-terminal: drawn for an update at a terminal, and not
//! with `--non-interactive` or `--json`, where progress stays one line per event.

use crate::support::TestContext;

const PROGRAM: &str = r#"
name: live
runtime: yaml
config:
  apiKey:
    type: string
    secret: true
    default: hunter2
resources:
  slow:
    type: command:local:Command
    properties:
      create: sleep 1; echo slow
      environment:
        API_KEY: ${apiKey}
  quick:
    type: fake:Resource
    properties:
      size: 1
outputs:
  key: ${apiKey}
"#;

/// What `indicatif` writes to move up and clear a row it redraws.
const REDRAW: &str = "\u{1b}[1A";

#[test]
fn an_update_at_a_terminal_draws_rows_in_flight_and_a_counter() {
    let context = TestContext::with_program(PROGRAM);
    let run = context.cairn_in_terminal(&["up", "--yes"]).success();
    let screen = run.stdout;
    assert!(
        screen.contains("of 3 done"),
        "no counter line (its total from the preview):\n{screen}"
    );
    assert!(
        screen.contains("+  command:local:Command slow creating ("),
        "no live row with its elapsed time:\n{screen}"
    );
    assert!(
        screen.contains(REDRAW),
        "nothing redrawn in place:\n{screen}"
    );
    assert!(
        screen.contains("   +  command:local:Command slow created ("),
        "the finished step's line does not stay:\n{screen}"
    );
    assert!(screen.contains("Resources: 3 created"), "{screen}");
    assert!(screen.contains("key: [secret]"), "{screen}");
    assert!(
        !screen.contains("hunter2"),
        "a secret reached the screen:\n{screen}"
    );
}

#[test]
fn non_interactive_and_json_keep_one_line_per_event_at_a_terminal() {
    let context = TestContext::with_program(PROGRAM);
    let run = context
        .cairn_in_terminal(&["up", "--yes", "--non-interactive"])
        .success();
    assert!(!run.stdout.contains("done,"), "{}", run.stdout);
    assert!(!run.stdout.contains('\u{1b}'), "{}", run.stdout);
    assert!(
        run.stdout
            .contains(" +  command:local:Command slow creating\r\n"),
        "{}",
        run.stdout
    );
    context.cairn(&["destroy", "--yes"]).success();
    let run = context
        .cairn_in_terminal(&["up", "--yes", "--json"])
        .success();
    assert!(!run.stdout.contains("done,"), "{}", run.stdout);
    assert!(!run.stdout.contains('\u{1b}'), "{}", run.stdout);
}

#[test]
fn non_interactive_never_prompts() {
    let context = TestContext::with_program(PROGRAM);
    let run = context
        .cairn_in_terminal(&["up", "--non-interactive"])
        .expect_code(2);
    assert!(
        run.stdout.contains("--yes must be passed"),
        "{}",
        run.stdout
    );
    assert!(context.resource_names().is_empty());
}
