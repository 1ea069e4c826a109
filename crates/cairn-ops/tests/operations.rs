//! Stack operations driven in-process through the library, as a front end other than the CLI
//! would: a `file://` backend in a temporary directory, the built-in `fake` provider, and a
//! reporter that records what it is told. No binary, no terminal, no sleeps.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use cairn_engine::Cancellation;
use cairn_ops::{Failure, OpsError, Phase, Project, RunRequest, StackOperation};
use support::{Fixture, Recorder};

const TWO: &str = "resources:\n  a:\n    type: fake:Resource\n    properties:\n      value: ${greeting}\n  b:\n    type: fake:Resource\n    properties:\n      value: ${a.value}\n";

fn update() -> RunRequest {
    RunRequest::new(StackOperation::Update)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_update_previews_asks_then_applies_and_keeps_its_log_lines() {
    let fixture = Fixture::new(TWO);
    let reporter = Recorder::approving();
    let outcome = fixture
        .run(update(), reporter.clone(), Cancellation::default())
        .await
        .expect("update");
    assert_eq!(outcome.failure, None);
    assert_eq!(outcome.phase, Phase::Apply);
    assert_eq!(fixture.resource_names().await, ["a", "b"]);
    let lines = reporter.lines();
    let position = |wanted: &str| {
        lines
            .iter()
            .position(|line| line == wanted)
            .unwrap_or_else(|| panic!("no `{wanted}` in {lines:#?}"))
    };
    // The order of a Pulumi update: plan, question, then the steps, each after its dependency.
    assert!(position("start update Preview { then_apply: true } dev") < position("plan Create a"));
    assert!(position("plan Create b") < position("asked: Do you want to perform this update?"));
    assert!(
        position("asked: Do you want to perform this update?") < position("start update Apply dev")
    );
    assert!(position("step Create a") < position("step Create b"));
    assert!(position("step Create b") < position("end Apply failed=false"));
    // Step outcomes reach the backend's log by the time the operation returns.
    let logs = fixture
        .backend
        .logs(&fixture.stack, None, None)
        .await
        .expect("logs");
    assert!(
        logs.iter()
            .any(|entry| entry.message.starts_with("created in")),
        "{logs:?}"
    );
    let history = fixture
        .backend
        .history(&fixture.stack)
        .await
        .expect("history");
    assert_eq!(history.len(), 1, "{history:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_preview_or_a_declined_update_changes_nothing() {
    let fixture = Fixture::new(TWO);
    let preview = fixture
        .run(
            RunRequest {
                preview_only: true,
                ..update()
            },
            Recorder::approving(),
            Cancellation::default(),
        )
        .await
        .expect("preview");
    assert!(preview.phase.is_preview());
    let planned = preview.outcome.snapshot.resources.iter();
    assert_eq!(
        planned.filter(|r| r.type_ == "fake:index:Resource").count(),
        2
    );

    let declining = Arc::new(Recorder::default());
    let declined = fixture
        .run(update(), declining.clone(), Cancellation::default())
        .await;
    assert!(matches!(declined, Err(OpsError::Declined)), "{declined:?}");
    assert!(
        !declining
            .lines()
            .iter()
            .any(|line| line.starts_with("step"))
    );
    assert!(fixture.resource_names().await.is_empty());
    let history = fixture
        .backend
        .history(&fixture.stack)
        .await
        .expect("history");
    assert!(history.is_empty(), "{history:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_lock_refuses_the_update_and_names_the_cancel_command() {
    let fixture = Fixture::new(TWO);
    fixture.ensure_stack().await;
    let held = fixture.session().lock().await.expect("lock");
    let refused = fixture
        .run(update(), Recorder::approving(), Cancellation::default())
        .await;
    match refused {
        Err(OpsError::Refused(message)) => {
            assert!(message.contains("is locked by"), "{message}");
            assert!(message.contains("`cairn cancel`"), "{message}");
        }
        other => panic!("not refused: {other:?}"),
    }
    // A preview takes no lock, so it runs.
    fixture
        .run(
            RunRequest {
                preview_only: true,
                ..update()
            },
            Recorder::approving(),
            Cancellation::default(),
        )
        .await
        .expect("preview under a held lock");
    drop(held);
    fixture
        .run(update(), Recorder::approving(), Cancellation::default())
        .await
        .expect("update after release");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_step_and_a_program_error_are_typed_failures() {
    let fixture = Fixture::new(
        "resources:\n  bad:\n    type: fake:Resource\n    properties:\n      failOn: create\n",
    );
    let failed = fixture
        .run(
            RunRequest {
                skip_preview: true,
                ..update()
            },
            Recorder::approving(),
            Cancellation::default(),
        )
        .await
        .expect("ran");
    assert_eq!(failed.failure, Some(Failure::Steps));
    assert_eq!(Failure::Steps.exit_code(), 1);

    fixture.write_program("outputs:\n  x: ${nothing.here}\n");
    let reporter = Recorder::approving();
    let invalid = fixture
        .run(update(), reporter.clone(), Cancellation::default())
        .await;
    assert!(matches!(invalid, Err(OpsError::Program)), "{invalid:?}");
    assert!(invalid.is_err_and(|error| error.is_bad_input()));
    assert!(
        reporter
            .lines()
            .iter()
            .any(|line| line.starts_with("diagnostic:") && line.contains("nothing")),
        "{:?}",
        reporter.lines()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancellation_before_the_update_begins_changes_nothing() {
    let fixture = Fixture::new(TWO);
    let cancellation = Cancellation::default();
    cancellation.graceful.cancel();
    let reporter = Recorder::approving();
    let outcome = fixture.run(update(), reporter.clone(), cancellation).await;
    match outcome {
        // The preview stops at once and fails as cancelled, or the update is refused.
        Ok(outcome) => {
            assert!(outcome.phase.is_preview());
            assert_eq!(outcome.failure, Some(Failure::Cancelled));
        }
        Err(OpsError::Refused(message)) => assert!(message.contains("interrupted"), "{message}"),
        Err(other) => panic!("{other:?}: {:#?}", reporter.lines()),
    }
    assert!(fixture.resource_names().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_and_destroy_work_from_the_state_alone() {
    let fixture = Fixture::new(TWO);
    fixture
        .run(update(), Recorder::approving(), Cancellation::default())
        .await
        .expect("update");
    // Neither needs the program: it may be gone.
    std::fs::write(
        fixture.project_dir().join("Cairn.yaml"),
        "name: ops\nruntime: yaml\n",
    )
    .expect("write");
    let refreshed = fixture
        .run(
            RunRequest::new(StackOperation::Refresh),
            Recorder::approving(),
            Cancellation::default(),
        )
        .await
        .expect("refresh");
    assert_eq!(refreshed.failure, None);
    assert_eq!(fixture.resource_names().await, ["a", "b"]);
    let destroyed = fixture
        .run(
            RunRequest::new(StackOperation::Destroy),
            Recorder::approving(),
            Cancellation::default(),
        )
        .await
        .expect("destroy");
    assert_eq!(destroyed.failure, None);
    assert!(fixture.resource_names().await.is_empty());
    let kinds: BTreeMap<String, usize> = fixture
        .backend
        .history(&fixture.stack)
        .await
        .expect("history")
        .iter()
        .fold(BTreeMap::new(), |mut kinds, update| {
            *kinds.entry(format!("{:?}", update.kind)).or_default() += 1;
            kinds
        });
    assert_eq!(kinds.len(), 3, "{kinds:?}");
}

#[test]
fn the_project_of_the_fixture_is_read_by_project_load() {
    let fixture = Fixture::new(TWO);
    let project = Project::load(Path::new(&fixture.project_dir())).expect("project");
    assert_eq!(project.name, "ops");
    assert!(project.packages.contains("fake"), "{:?}", project.packages);
}
