//! The state edits of `StateEditor` (delete, unprotect, repair), in-process on a `file://`
//! backend in a temporary directory: each plan changes nothing, each application changes what
//! its plan said, and the stack's lock is held from the plan to the application.

mod support;

use cairn_core::{PendingOperationKind, Snapshot};
use cairn_ops::{OpsError, RepairChange, RepairOutcome, StateEditor};
use cairn_state::{Persister, UpdateKind};
use support::{Fixture, fake, names, urn};

/// `base` (protected), `top` (depends on `base`) and `other`.
fn three() -> Snapshot {
    let mut base = fake("base");
    base.protect = true;
    let mut top = fake("top");
    top.dependencies = vec![urn("base")];
    Snapshot {
        resources: vec![base, top, fake("other")],
        pending_operations: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_refuses_dependents_and_protection_unless_forced() {
    let fixture = Fixture::new("");
    fixture.write_snapshot(&three()).await;
    let session = fixture.session();
    let editor = StateEditor::open(&session).await.expect("editor");

    match editor.plan_delete(&urn("base"), false).await {
        Err(OpsError::Refused(message)) => {
            assert!(message.contains(urn("top").as_str()), "{message}");
        }
        other => panic!("not refused: {other:?}"),
    }
    let plan = editor.plan_delete(&urn("top"), false).await.expect("plan");
    assert_eq!(plan.id, "top-id");
    assert!(plan.dependents.is_empty() && !plan.protected, "{plan:?}");
    assert_eq!(
        names(&fixture.resources().await),
        ["base", "top", "other"],
        "a plan changes nothing"
    );
    editor.delete(plan).await.expect("delete");
    assert_eq!(names(&fixture.resources().await), ["base", "other"]);

    match editor.plan_delete(&urn("base"), false).await {
        Err(OpsError::Refused(message)) => assert!(message.contains("protected"), "{message}"),
        other => panic!("not refused: {other:?}"),
    }
    let forced = editor.plan_delete(&urn("base"), true).await.expect("plan");
    assert!(forced.protected);
    editor.delete(forced).await.expect("delete");
    assert_eq!(names(&fixture.resources().await), ["other"]);

    let missing = editor.plan_delete(&urn("base"), true).await;
    assert!(
        missing.as_ref().is_err_and(OpsError::is_bad_input),
        "{missing:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forced_delete_names_the_dependents_it_leaves_behind() {
    let fixture = Fixture::new("");
    let mut snapshot = three();
    snapshot.resources[0].protect = false;
    fixture.write_snapshot(&snapshot).await;
    let session = fixture.session();
    let editor = StateEditor::open(&session).await.expect("editor");
    let plan = editor.plan_delete(&urn("base"), true).await.expect("plan");
    assert_eq!(plan.dependents, [urn("top")]);
    editor.delete(plan).await.expect("delete");
    let resources = fixture.resources().await;
    assert_eq!(names(&resources), ["top", "other"]);
    // Left pointing at nothing: `repair` is what drops such references.
    assert_eq!(resources[0].dependencies, [urn("base")]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_editor_holds_the_stack_until_it_is_dropped() {
    let fixture = Fixture::new("");
    fixture.write_snapshot(&three()).await;
    let session = fixture.session();
    let editor = StateEditor::open(&session).await.expect("editor");
    match fixture.session().lock().await {
        Err(OpsError::Refused(message)) => assert!(message.contains("is locked by"), "{message}"),
        other => panic!("a second writer got in: {:?}", other.map(|_| ())),
    }
    assert!(StateEditor::open(&session).await.is_err());
    drop(editor);
    StateEditor::open(&session).await.expect("released");
}

#[tokio::test(flavor = "multi_thread")]
async fn unprotect_clears_the_flag_only_when_applied() {
    let fixture = Fixture::new("");
    fixture.write_snapshot(&three()).await;
    let session = fixture.session();
    let editor = StateEditor::open(&session).await.expect("editor");
    let plan = editor.plan_unprotect(&urn("base")).await.expect("plan");
    assert!(plan.was_protected);
    assert!(
        fixture.resources().await[0].protect,
        "a plan changes nothing"
    );
    editor.unprotect(plan).await.expect("unprotect");
    let resources = fixture.resources().await;
    assert!(resources.iter().all(|resource| !resource.protect));

    let again = editor.plan_unprotect(&urn("base")).await.expect("plan");
    assert!(!again.was_protected);
    editor.unprotect(again).await.expect("nothing to do");
    assert_eq!(fixture.resources().await, resources);
    assert!(
        editor
            .plan_unprotect(&urn("gone"))
            .await
            .is_err_and(|error| error.is_bad_input())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn repair_drops_dangling_references_and_orders_resources() {
    let fixture = Fixture::new("");
    let mut top = fake("top");
    top.dependencies = vec![urn("base"), urn("gone")];
    top.parent = Some(urn("lost-parent"));
    top.provider = Some("urn:pulumi:dev::ops::pulumi:providers:fake::gone::provider-id".to_owned());
    top.property_dependencies
        .insert("from".to_owned(), vec![urn("base"), urn("gone")]);
    let broken = Snapshot {
        resources: vec![top, fake("base")],
        pending_operations: Vec::new(),
    };
    fixture.write_snapshot(&broken).await;
    let session = fixture.session();
    let editor = StateEditor::open(&session).await.expect("editor");

    let plan = editor.plan_repair().await.expect("plan");
    assert!(plan.salvage.is_none());
    assert_eq!(
        plan.changes,
        [
            RepairChange::DropDependencies {
                urn: urn("top"),
                count: 1
            },
            RepairChange::ClearParent {
                urn: urn("top"),
                parent: urn("lost-parent")
            },
            RepairChange::ClearProvider {
                urn: urn("top"),
                provider: "urn:pulumi:dev::ops::pulumi:providers:fake::gone".to_owned()
            },
            RepairChange::DropPropertyDependencies {
                urn: urn("top"),
                property: "from".to_owned()
            },
            RepairChange::Reorder,
        ]
    );
    assert_eq!(names(&fixture.resources().await), ["top", "base"]);

    let outcome = editor.repair(plan.clone()).await.expect("repair");
    assert_eq!(outcome.repaired, plan.changes);
    assert!(outcome.salvaged.is_none() && !outcome.nothing_to_do());
    let resources = fixture.resources().await;
    assert_eq!(names(&resources), ["base", "top"]);
    let top = &resources[1];
    assert_eq!(top.dependencies, [urn("base")]);
    assert_eq!((&top.parent, &top.provider), (&None, &None));
    assert_eq!(top.property_dependencies["from"], [urn("base")]);

    let again = editor.plan_repair().await.expect("plan");
    assert!(again.is_empty(), "{again:?}");
    assert!(editor.repair(again).await.expect("repair").nothing_to_do());
}

/// An update that died after ending `a`, beginning `b` and ending it, and beginning `c`; then
/// the record that ended `b` was damaged. Returns the journal's path.
async fn interrupted_update_with_damage(fixture: &Fixture) -> std::path::PathBuf {
    fixture.write_snapshot(&Snapshot::default()).await;
    let session = fixture.session();
    {
        let lock = session.lock().await.expect("lock");
        let writer = fixture
            .backend
            .begin_update(
                &fixture.stack,
                UpdateKind::Update,
                Default::default(),
                lock.as_ref(),
            )
            .await
            .expect("begin update");
        let persister = Persister::new(writer, session.crypter.clone());
        for name in ["a", "b"] {
            let created = fake(name);
            let mut begun = created.clone();
            begun.id = String::new();
            let op = persister
                .begin(PendingOperationKind::Creating, &begun)
                .await
                .expect("begin");
            persister.end(op, None, Some(&created)).await.expect("end");
        }
        persister
            .begin(PendingOperationKind::Creating, &fake("c"))
            .await
            .expect("begin");
        // Dropped without `finish`: the process died here.
    }
    let journal = fixture
        .dir
        .path()
        .join("state/.pulumi/stacks/ops/dev.journal");
    let text = std::fs::read_to_string(&journal).expect("journal");
    let mut lines: Vec<&str> = text.lines().collect();
    // The header, then begin a, end a, begin b, end b, begin c.
    assert_eq!(lines.len(), 6, "{text}");
    assert!(lines[4].contains("\"end\""), "{text}");
    lines[4] = "not a journal record";
    std::fs::write(&journal, lines.join("\n") + "\n").expect("damage");
    journal
}

#[tokio::test(flavor = "multi_thread")]
async fn repair_salvages_a_damaged_journal_and_says_so() {
    let fixture = Fixture::new("");
    let journal = interrupted_update_with_damage(&fixture).await;
    let session = fixture.session();
    assert!(session.snapshot().await.is_err(), "the damage stops reads");
    let editor = StateEditor::open(&session).await.expect("editor");

    let plan = editor.plan_repair().await.expect("plan");
    let damage = plan.salvage.clone().expect("damage found");
    assert!(damage.location.ends_with("dev.journal:5"), "{damage:?}");
    assert_eq!(damage.kept_records, 3);
    assert_eq!(damage.damaged_lines, 2);
    assert!(plan.changes.is_empty() && !plan.is_empty());
    assert!(journal.exists(), "a plan changes nothing");

    let mut outcome = RepairOutcome::default();
    outcome.merge(editor.repair(plan).await.expect("salvage"));
    let salvaged = outcome.salvaged.clone().expect("salvaged");
    assert_eq!(salvaged.kept_records, 3);
    assert_eq!(salvaged.pending.len(), 1, "`b` began and did not end");
    assert!(salvaged.pending[0].ends_with("::b"), "{salvaged:?}");
    assert!(salvaged.damaged_urns[0].ends_with("::c"), "{salvaged:?}");
    let moved_to = salvaged.moved_to.expect("moved aside");
    assert!(
        std::fs::read_to_string(&moved_to)
            .expect("kept")
            .contains("not a journal record")
    );
    assert!(!journal.exists());

    let snapshot = session.snapshot().await.expect("readable again");
    assert_eq!(names(&snapshot.resources), ["a"]);
    assert_eq!(snapshot.pending_operations.len(), 1);

    // Nothing is left to repair, and the outcome still says what was done: a repair that
    // salvaged is not "nothing to do".
    let after = editor.plan_repair().await.expect("plan");
    assert!(after.is_empty(), "{after:?}");
    outcome.merge(editor.repair(after).await.expect("repair"));
    assert!(!outcome.nothing_to_do());
    assert!(outcome.salvaged.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_salvage_needs_the_editor_of_the_same_stack() {
    // The salvage writes under the editor's lock: the backend checks it is the stack's.
    let fixture = Fixture::new("");
    interrupted_update_with_damage(&fixture).await;
    let session = fixture.session();
    let editor = StateEditor::open(&session).await.expect("editor");
    let plan = editor.plan_repair().await.expect("plan");
    fixture
        .backend
        .cancel(&fixture.stack)
        .await
        .expect("cancel the editor's hold");
    let lost = editor.repair(plan).await;
    assert!(lost.is_err(), "salvaged without the lock: {lost:?}");
}
