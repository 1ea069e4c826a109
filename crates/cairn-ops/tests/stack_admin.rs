//! The operations on a whole stack (`cairn_ops::admin`): cancel, remove, rename, in-process on
//! a `file://` backend in a temporary directory.

mod support;

use std::sync::Mutex;

use cairn_core::Snapshot;
use cairn_ops::admin::{self, CancelOutcome};
use cairn_ops::{OpsError, StackFiles};
use cairn_state::{LockOwner, StackRef};
use support::{Fixture, fake, names};

fn one_resource() -> Snapshot {
    Snapshot {
        resources: vec![fake("a")],
        pending_operations: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_releases_the_lock_of_the_holder_it_planned_for() {
    let fixture = Fixture::new("");
    fixture.ensure_stack().await;
    let backend = fixture.backend.as_ref();
    assert_eq!(
        admin::plan_cancel(backend, &fixture.stack)
            .await
            .expect("plan"),
        None
    );

    let held = fixture.session().lock().await.expect("lock");
    let holder = admin::plan_cancel(backend, &fixture.stack)
        .await
        .expect("plan")
        .expect("a holder");
    assert_eq!(holder.pid, std::process::id());
    assert_eq!(holder.command, "ops test");

    // Another hold than the one planned for is not cancelled.
    let other = LockOwner {
        started: holder.started - 60,
        ..holder.clone()
    };
    match admin::cancel(backend, &fixture.stack, &other).await {
        Err(OpsError::Refused(message)) => assert!(message.contains("now held by"), "{message}"),
        result => panic!("cancelled another hold: {result:?}"),
    }
    assert!(fixture.session().lock().await.is_err(), "still held");

    match admin::cancel(backend, &fixture.stack, &holder).await {
        Ok(CancelOutcome::Cancelled(released)) => assert_eq!(released.pid, holder.pid),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        admin::plan_cancel(backend, &fixture.stack)
            .await
            .expect("plan"),
        None
    );
    // The stack is free for the next writer; the cancelled hold writes nothing more.
    let next = fixture.session().lock().await.expect("released");
    drop(held);
    drop(next);

    // An update that ends between the plan and the cancel leaves nothing to cancel.
    let held = fixture.session().lock().await.expect("lock");
    let holder = admin::plan_cancel(backend, &fixture.stack)
        .await
        .expect("plan")
        .expect("a holder");
    drop(held);
    assert_eq!(
        admin::cancel(backend, &fixture.stack, &holder)
            .await
            .expect("cancel"),
        CancelOutcome::AlreadyEnded
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn remove_refuses_a_stack_with_resources_unless_forced() {
    let fixture = Fixture::new("");
    fixture.write_snapshot(&one_resource()).await;
    let backend = fixture.backend.as_ref();
    let session = fixture.session();

    match admin::plan_remove_stack(backend, &fixture.stack, false).await {
        Err(OpsError::Refused(message)) => assert!(message.contains("1 resources"), "{message}"),
        other => panic!("not refused: {other:?}"),
    }
    let plan = admin::plan_remove_stack(backend, &fixture.stack, true)
        .await
        .expect("plan");
    assert_eq!(plan.resources, None, "a forced removal reads no state");
    assert!(backend.stack_exists(&fixture.stack).await.expect("exists"));

    // A writer like any other: refused while the stack is held.
    let held = session.lock().await.expect("lock");
    let refused = admin::remove_stack(backend, &plan, &session.caller, "cairn cancel").await;
    assert!(
        matches!(&refused, Err(OpsError::Refused(message)) if message.contains("is locked by")),
        "{refused:?}"
    );
    drop(held);
    admin::remove_stack(backend, &plan, &session.caller, "cairn cancel")
        .await
        .expect("remove");
    assert!(!backend.stack_exists(&fixture.stack).await.expect("exists"));

    let missing = admin::plan_remove_stack(backend, &fixture.stack, false).await;
    assert!(
        missing.as_ref().is_err_and(OpsError::is_bad_input),
        "{missing:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_stack_is_removed_without_force() {
    let fixture = Fixture::new("");
    fixture.write_snapshot(&Snapshot::default()).await;
    let backend = fixture.backend.as_ref();
    let plan = admin::plan_remove_stack(backend, &fixture.stack, false)
        .await
        .expect("plan");
    assert_eq!(plan.resources, Some(0));
    let caller = fixture.session().caller;
    admin::remove_stack(backend, &plan, &caller, "cairn cancel")
        .await
        .expect("remove");
    assert!(!backend.stack_exists(&fixture.stack).await.expect("exists"));
}

/// Records what the rename asked of the front end's files.
#[derive(Default)]
struct Files {
    calls: Mutex<Vec<&'static str>>,
}

impl Files {
    fn calls(&self) -> Vec<&'static str> {
        self.calls.lock().expect("calls").clone()
    }
}

impl StackFiles for Files {
    fn copy_to_new_name(&self) -> std::io::Result<()> {
        self.calls.lock().expect("calls").push("copy");
        Ok(())
    }

    fn remove_copies(&self) {
        self.calls.lock().expect("calls").push("remove copies");
    }

    fn remove_originals(&self) -> std::io::Result<()> {
        self.calls.lock().expect("calls").push("remove originals");
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rename_moves_the_state_and_the_files_together() {
    let fixture = Fixture::new("");
    fixture.write_snapshot(&one_resource()).await;
    let session = fixture.session();
    let renamed = admin::plan_rename(&session, "prod").await.expect("plan");
    assert_eq!(renamed, StackRef::parse("prod", "ops").expect("stack"));
    let files = Files::default();
    admin::rename_stack(&session, &renamed, &files)
        .await
        .expect("rename");
    assert_eq!(files.calls(), ["copy", "remove originals"]);

    let backend = &fixture.backend;
    assert!(!backend.stack_exists(&fixture.stack).await.expect("exists"));
    let deployment = backend
        .load_deployment(&renamed)
        .await
        .expect("load")
        .expect("state");
    assert_eq!(deployment.resources.len(), 1);
    assert_eq!(
        deployment.resources[0].urn,
        "urn:pulumi:prod::ops::fake:index:Resource::a"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rename_that_cannot_happen_leaves_stack_and_files_as_they_were() {
    let fixture = Fixture::new("");
    fixture.write_snapshot(&one_resource()).await;
    let session = fixture.session();
    for bad in ["../up", ""] {
        let refused = admin::plan_rename(&session, bad).await;
        assert!(
            refused.as_ref().is_err_and(OpsError::is_bad_input),
            "{bad:?}: {refused:?}"
        );
    }
    let taken = StackRef::parse("prod", "ops").expect("stack");
    fixture.backend.create_stack(&taken).await.expect("create");
    assert!(
        admin::plan_rename(&session, "prod")
            .await
            .is_err_and(|error| error.is_bad_input())
    );

    // Planned while free, taken before it is applied: the copies are removed again.
    let planned = StackRef::parse("staging", "ops").expect("stack");
    let renamed = admin::plan_rename(&session, "staging").await.expect("plan");
    assert_eq!(renamed, planned);
    fixture
        .backend
        .create_stack(&planned)
        .await
        .expect("create");
    let files = Files::default();
    let refused = admin::rename_stack(&session, &renamed, &files).await;
    assert!(
        refused.as_ref().is_err_and(OpsError::is_bad_input),
        "{refused:?}"
    );
    assert_eq!(files.calls(), ["copy", "remove copies"]);
    assert_eq!(
        names(&fixture.resources().await),
        ["a"],
        "the stack keeps its state under its name"
    );
}

/// An import replaces the state under the stack's lock: refused while an update holds it.
#[tokio::test(flavor = "multi_thread")]
async fn import_replaces_the_state_and_waits_for_no_one() {
    let fixture = Fixture::new("");
    fixture.ensure_stack().await;
    let held = fixture.session().lock().await.expect("lock");
    let refused =
        admin::import_snapshot(&fixture.session(), &one_resource(), "2026-11-29T00:00:00Z").await;
    assert!(refused.is_err(), "imported under another's lock");
    assert!(fixture.resources().await.is_empty());
    drop(held);
    admin::import_snapshot(&fixture.session(), &one_resource(), "2026-11-29T00:00:00Z")
        .await
        .expect("import");
    assert_eq!(names(&fixture.resources().await), ["a"]);
}
