//! The backend conformance suite: one set of checks every `Backend` must pass, run by each
//! backend crate's tests against a fresh, empty backend (`file://` in a temporary directory,
//! `postgres://` in a fresh database). Each check panics with what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;

use cairn_core::{PendingOperationKind, ResourceState, Snapshot, Urn, Value};

use crate::backend::{
    Backend, BackendError, LockOwner, LogEntry, StackLock, UpdateKind, UpdateResult,
};
use crate::{Deployment, Persister, StackRef};

/// A reversible stand-in for a cipher, so tests do not pay for key derivation.
pub struct Reverse;

impl cairn_secrets::Crypter for Reverse {
    fn encrypt(&self, plaintext: &str) -> Result<String, cairn_secrets::SecretsError> {
        Ok(plaintext.chars().rev().collect())
    }
    fn decrypt(&self, ciphertext: &str) -> Result<String, cairn_secrets::SecretsError> {
        Ok(ciphertext.chars().rev().collect())
    }
}

/// Runs every check, each on its own stacks of one backend.
pub async fn run_all(backend: &dyn Backend) {
    stacks_are_created_listed_and_removed(backend).await;
    an_update_becomes_the_checkpoint_with_history(backend).await;
    a_crash_leaves_pending_operations_and_the_next_update_starts_clean(backend).await;
    past_versions_are_kept(backend).await;
    an_import_replaces_the_state(backend).await;
    values_at_the_depth_limit_round_trip_and_deeper_ones_are_refused(backend).await;
    locks_exclude_and_cancel_releases(backend).await;
    tags_are_set_read_removed_and_validated(backend).await;
    logs_are_kept_and_filtered(backend).await;
    a_rename_carries_everything(backend).await;
    a_cancelled_update_writes_nothing_more(backend).await;
    a_stack_is_removed_only_under_its_own_lock(backend).await;
    names_that_escape_are_refused(backend).await;
}

fn stack(project: &str, name: &str) -> StackRef {
    StackRef::parse(name, project).unwrap()
}

fn resource(stack: &StackRef, name: &str, id: &str) -> ResourceState {
    ResourceState {
        urn: Urn::parse(&format!(
            "urn:pulumi:{}::{}::fake:index:Resource::{name}",
            stack.name, stack.project
        ))
        .unwrap(),
        custom: true,
        id: id.to_owned(),
        type_: "fake:index:Resource".to_owned(),
        inputs: [("n".to_owned(), Value::Number(1.0))].into(),
        ..ResourceState::default()
    }
}

fn names(deployment: &Deployment) -> Vec<String> {
    deployment
        .resources
        .iter()
        .map(|resource| resource.urn.rsplit("::").next().unwrap().to_owned())
        .collect()
}

/// An update's persister, and the stack lock it runs under (drop it after the persister).
pub async fn locked_persister(
    backend: &dyn Backend,
    stack: &StackRef,
) -> (Persister, Box<dyn StackLock>) {
    let lock = backend.lock_stack(stack, owner("cairn up")).await.unwrap();
    let writer = backend
        .begin_update(stack, UpdateKind::Update, Default::default(), lock.as_ref())
        .await
        .unwrap();
    (Persister::new(writer, Arc::new(Reverse)), lock)
}

/// Removes a stack under its lock, as `cairn stack rm` does.
pub async fn remove_stack(
    backend: &dyn Backend,
    stack: &StackRef,
    force: bool,
) -> Result<(), BackendError> {
    let lock = backend.lock_stack(stack, owner("cairn stack rm")).await?;
    backend.remove_stack(stack, force, lock.as_ref()).await
}

/// One finished update that leaves exactly `resources`.
async fn update_to(backend: &dyn Backend, stack: &StackRef, resources: Vec<ResourceState>) {
    let (persister, _lock) = locked_persister(backend, stack).await;
    for resource in &resources {
        let op = persister
            .begin(PendingOperationKind::Creating, resource)
            .await
            .unwrap();
        persister.end(op, None, Some(resource)).await.unwrap();
    }
    let snapshot = Snapshot {
        resources,
        pending_operations: Vec::new(),
    };
    persister
        .finish(
            &snapshot,
            UpdateResult::Succeeded,
            [("create".to_owned(), snapshot.resources.len())].into(),
        )
        .await
        .unwrap();
}

/// A lock owner for tests.
pub fn owner(command: &str) -> LockOwner {
    LockOwner {
        pid: std::process::id(),
        host: "conformance".to_owned(),
        user: "tester".to_owned(),
        command: command.to_owned(),
        started: 0,
        heartbeat: 0,
        is_stale: false,
    }
}

pub async fn stacks_are_created_listed_and_removed(backend: &dyn Backend) {
    let dev = stack("lifecycle", "dev");
    let prod = stack("lifecycle", "prod");
    let other = stack("elsewhere", "dev");
    for stack in [&dev, &prod, &other] {
        backend.create_stack(stack).await.unwrap();
    }
    assert!(matches!(
        backend.create_stack(&dev).await,
        Err(BackendError::StackAlreadyExists(_))
    ));
    assert!(backend.stack_exists(&dev).await.unwrap());
    let listed: Vec<String> = backend
        .list_stacks(Some("lifecycle"))
        .await
        .unwrap()
        .into_iter()
        .map(|summary| summary.stack.name)
        .collect();
    assert_eq!(listed, ["dev", "prod"]);
    let all = backend.list_stacks(None).await.unwrap();
    assert!(
        all.iter()
            .any(|summary| summary.stack.project == "elsewhere")
    );

    update_to(backend, &prod, vec![resource(&prod, "a", "1")]).await;
    assert!(matches!(
        remove_stack(backend, &prod, false).await,
        Err(BackendError::StackHasResources { count: 1, .. })
    ));
    remove_stack(backend, &prod, true).await.unwrap();
    remove_stack(backend, &dev, false).await.unwrap();
    assert!(!backend.stack_exists(&prod).await.unwrap());
    assert!(matches!(
        remove_stack(backend, &dev, false).await,
        Err(BackendError::StackNotFound(_))
    ));
    // Removing one stack left its neighbours alone.
    assert!(backend.stack_exists(&other).await.unwrap());
}

pub async fn an_update_becomes_the_checkpoint_with_history(backend: &dyn Backend) {
    let dev = stack("updates", "dev");
    backend.create_stack(&dev).await.unwrap();
    let before = backend.bytes_written();
    let mut secret = resource(&dev, "a", "1");
    secret
        .outputs
        .insert("pw".to_owned(), Value::string("hunter2").into_secret());
    update_to(
        backend,
        &dev,
        vec![secret.clone(), resource(&dev, "b", "2")],
    )
    .await;
    assert!(backend.bytes_written() > before);
    let deployment = backend.load_deployment(&dev).await.unwrap().unwrap();
    assert_eq!(names(&deployment), ["a", "b"]);
    let decoded = crate::deployment::decode_deployment(&deployment, &Reverse).unwrap();
    assert_eq!(decoded.resources[0], secret);
    assert!(
        !serde_json::to_string(&deployment)
            .unwrap()
            .contains("hunter2")
    );
    let history = backend.history(&dev).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].result, UpdateResult::Succeeded);
    assert_eq!(history[0].kind, UpdateKind::Update);
    assert_eq!(history[0].resource_changes["create"], 2);
    assert!(history[0].end_time >= history[0].start_time);

    update_to(backend, &dev, vec![resource(&dev, "c", "3")]).await;
    let history = backend.history(&dev).await.unwrap();
    assert_eq!(history.len(), 2);
    assert!(history[0].version > history[1].version, "newest first");
}

pub async fn a_crash_leaves_pending_operations_and_the_next_update_starts_clean(
    backend: &dyn Backend,
) {
    let dev = stack("crashes", "dev");
    backend.create_stack(&dev).await.unwrap();
    {
        let (persister, _lock) = locked_persister(backend, &dev).await;
        let op = persister
            .begin(PendingOperationKind::Creating, &resource(&dev, "a", ""))
            .await
            .unwrap();
        persister
            .end(op, None, Some(&resource(&dev, "a", "1")))
            .await
            .unwrap();
        persister
            .begin(PendingOperationKind::Creating, &resource(&dev, "b", ""))
            .await
            .unwrap();
        // Dropped without `finish`: the process died here (and `cairn cancel` released its
        // lock).
    }
    let deployment = backend.load_deployment(&dev).await.unwrap().unwrap();
    assert_eq!(names(&deployment), ["a"]);
    assert_eq!(deployment.pending_operations.len(), 1);
    assert_eq!(deployment.pending_operations[0].type_, "creating");
    assert!(
        deployment.pending_operations[0]
            .resource
            .urn
            .ends_with("::b")
    );
    let history = backend.history(&dev).await.unwrap();
    assert_eq!(history[0].result, UpdateResult::InProgress);

    // The next update starts from that state and applies the old journal only once.
    drop(locked_persister(backend, &dev).await);
    let again = backend.load_deployment(&dev).await.unwrap().unwrap();
    assert_eq!(names(&again), ["a"]);
    assert_eq!(again.pending_operations.len(), 1);
}

pub async fn past_versions_are_kept(backend: &dyn Backend) {
    let dev = stack("versions", "dev");
    backend.create_stack(&dev).await.unwrap();
    for (index, name) in ["one", "two", "three"].into_iter().enumerate() {
        update_to(
            backend,
            &dev,
            vec![resource(&dev, name, &index.to_string())],
        )
        .await;
    }
    let newest = backend.history(&dev).await.unwrap()[0].version;
    for (back, name) in [(0, "three"), (1, "two"), (2, "one")] {
        let deployment = backend
            .load_version(&dev, newest - back)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("version {} is kept", newest - back));
        assert_eq!(names(&deployment), [name]);
    }
    assert!(
        backend
            .load_version(&dev, newest + 5)
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn an_import_replaces_the_state(backend: &dyn Backend) {
    let dev = stack("imports", "dev");
    backend.create_stack(&dev).await.unwrap();
    update_to(backend, &dev, vec![resource(&dev, "old", "1")]).await;
    let snapshot = Snapshot {
        resources: vec![resource(&dev, "new", "2")],
        pending_operations: Vec::new(),
    };
    let deployment =
        crate::deployment::encode_snapshot(&snapshot, &Reverse, "2026-01-01T00:00:00Z").unwrap();
    backend.import_deployment(&dev, deployment).await.unwrap();
    let loaded = backend.load_deployment(&dev).await.unwrap().unwrap();
    assert_eq!(names(&loaded), ["new"]);
}

/// Whatever a backend writes it must read back: a value at `MAX_VALUE_DEPTH` survives an update
/// and an import, and a deeper one is refused with nothing written.
pub async fn values_at_the_depth_limit_round_trip_and_deeper_ones_are_refused(
    backend: &dyn Backend,
) {
    let dev = stack("depths", "dev");
    backend.create_stack(&dev).await.unwrap();
    let mut deep = resource(&dev, "deep", "1");
    let mut value = Value::string("bottom").into_secret();
    while value.depth() < cairn_core::MAX_VALUE_DEPTH {
        value = Value::Array(vec![value]);
    }
    deep.inputs.insert("v".to_owned(), value);
    deep.outputs = deep.inputs.clone();
    update_to(backend, &dev, vec![deep.clone()]).await;
    let loaded = backend.load_deployment(&dev).await.unwrap().unwrap();
    let decoded = crate::deployment::decode_deployment(&loaded, &Reverse).unwrap();
    assert_eq!(decoded.resources, vec![deep]);
    backend
        .import_deployment(&dev, loaded.clone())
        .await
        .unwrap();

    let mut too_deep = loaded.clone();
    let mut json = serde_json::json!("bottom");
    for _ in 0..=cairn_core::MAX_VALUE_DEPTH {
        json = serde_json::json!({ "a": json });
    }
    too_deep.resources[0].outputs.insert("w".to_owned(), json);
    let error = backend.import_deployment(&dev, too_deep).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("output property `w` is nested 65 levels deep"),
        "{error}"
    );
    assert_eq!(
        backend.load_deployment(&dev).await.unwrap().unwrap(),
        loaded
    );
}

pub async fn locks_exclude_and_cancel_releases(backend: &dyn Backend) {
    let dev = stack("locks", "dev");
    backend.create_stack(&dev).await.unwrap();
    let first = backend.lock_stack(&dev, owner("cairn up")).await.unwrap();
    match backend.lock_stack(&dev, owner("cairn destroy")).await {
        Err(BackendError::Locked { holder, .. }) => assert_eq!(holder.command, "cairn up"),
        other => panic!("a second lock must fail, got {:?}", other.map(|_| ())),
    }
    assert_eq!(
        backend.lock_holder(&dev).await.unwrap().unwrap().command,
        "cairn up"
    );
    drop(first);
    assert!(backend.lock_holder(&dev).await.unwrap().is_none());

    // A holder that died mid-update: `cancel` releases it and marks its update cancelled.
    let held = backend.lock_stack(&dev, owner("cairn up")).await.unwrap();
    let writer = backend
        .begin_update(&dev, UpdateKind::Update, Default::default(), held.as_ref())
        .await
        .unwrap();
    std::mem::forget(writer);
    let released = backend.cancel(&dev).await.unwrap();
    assert_eq!(released.unwrap().command, "cairn up");
    assert!(backend.lock_holder(&dev).await.unwrap().is_none());
    assert_eq!(
        backend.history(&dev).await.unwrap()[0].result,
        UpdateResult::Cancelled
    );
    let again = backend.lock_stack(&dev, owner("cairn up")).await;
    assert!(again.is_ok(), "the stack can be locked again after cancel");
}

pub async fn tags_are_set_read_removed_and_validated(backend: &dyn Backend) {
    let dev = stack("tags", "dev");
    backend.create_stack(&dev).await.unwrap();
    backend
        .set_stack_tag(&dev, "owner", "team-a")
        .await
        .unwrap();
    backend
        .set_stack_tag(&dev, "cost:center", "42")
        .await
        .unwrap();
    backend
        .set_stack_tag(&dev, "owner", "team-b")
        .await
        .unwrap();
    let tags = backend.stack_tags(&dev).await.unwrap();
    assert_eq!(
        tags,
        BTreeMap::from([
            ("cost:center".to_owned(), "42".to_owned()),
            ("owner".to_owned(), "team-b".to_owned()),
        ])
    );
    backend.remove_stack_tag(&dev, "owner").await.unwrap();
    assert_eq!(backend.stack_tags(&dev).await.unwrap().len(), 1);
    for (name, value) in [("has space", "x"), ("", "x"), ("ok", &"v".repeat(257))] {
        assert!(matches!(
            backend.set_stack_tag(&dev, name, value).await,
            Err(BackendError::InvalidName(_))
        ));
    }
}

pub async fn logs_are_kept_and_filtered(backend: &dyn Backend) {
    let dev = stack("logs", "dev");
    backend.create_stack(&dev).await.unwrap();
    let entry = |timestamp_ms: i64, urn: Option<&str>, message: &str| LogEntry {
        timestamp_ms,
        urn: urn.map(str::to_owned),
        severity: "info".to_owned(),
        message: message.to_owned(),
    };
    backend
        .append_logs(
            &dev,
            vec![
                entry(1_000, Some("urn:a"), "first"),
                entry(2_000, Some("urn:b"), "second"),
            ],
        )
        .await
        .unwrap();
    backend
        .append_logs(&dev, vec![entry(3_000, None, "third, from the engine")])
        .await
        .unwrap();
    let all = backend.logs(&dev, None, None).await.unwrap();
    let messages: Vec<&str> = all.iter().map(|entry| entry.message.as_str()).collect();
    assert_eq!(messages, ["first", "second", "third, from the engine"]);
    let recent = backend.logs(&dev, Some(2_000), None).await.unwrap();
    assert_eq!(recent.len(), 2);
    let of_b = backend.logs(&dev, None, Some("urn:b")).await.unwrap();
    assert_eq!(of_b, vec![entry(2_000, Some("urn:b"), "second")]);
}

pub async fn a_rename_carries_everything(backend: &dyn Backend) {
    let dev = stack("renames", "dev");
    let taken = stack("renames", "taken");
    backend.create_stack(&dev).await.unwrap();
    backend.create_stack(&taken).await.unwrap();
    update_to(backend, &dev, vec![resource(&dev, "a", "1")]).await;
    update_to(backend, &dev, vec![resource(&dev, "a", "1")]).await;
    backend.set_stack_tag(&dev, "owner", "me").await.unwrap();
    backend
        .append_logs(
            &dev,
            vec![LogEntry {
                timestamp_ms: 5,
                urn: None,
                severity: "info".to_owned(),
                message: "kept".to_owned(),
            }],
        )
        .await
        .unwrap();
    let lock = backend
        .lock_stack(&dev, owner("cairn stack rename"))
        .await
        .unwrap();
    assert!(matches!(
        backend.rename_stack(&dev, "taken", lock.as_ref()).await,
        Err(BackendError::StackAlreadyExists(_))
    ));
    assert!(matches!(
        backend.rename_stack(&dev, "no spaces", lock.as_ref()).await,
        Err(BackendError::InvalidName(_))
    ));
    // Another stack's lock is not this stack's: an update holding `dev` keeps it in place.
    let taken_lock = backend.lock_stack(&taken, owner("cairn up")).await.unwrap();
    assert!(matches!(
        backend
            .rename_stack(&dev, "prod", taken_lock.as_ref())
            .await,
        Err(BackendError::LockLost(_))
    ));
    drop(taken_lock);
    backend
        .rename_stack(&dev, "prod", lock.as_ref())
        .await
        .unwrap();
    drop(lock);
    let prod = stack("renames", "prod");
    assert!(!backend.stack_exists(&dev).await.unwrap());
    let deployment = backend.load_deployment(&prod).await.unwrap().unwrap();
    assert_eq!(
        deployment.resources[0].urn,
        "urn:pulumi:prod::renames::fake:index:Resource::a"
    );
    assert_eq!(backend.history(&prod).await.unwrap().len(), 2);
    let newest = backend.history(&prod).await.unwrap()[0].version;
    let past = backend
        .load_version(&prod, newest - 1)
        .await
        .unwrap()
        .unwrap();
    assert!(past.resources[0].urn.starts_with("urn:pulumi:prod::"));
    assert_eq!(backend.stack_tags(&prod).await.unwrap()["owner"], "me");
    assert_eq!(
        backend.logs(&prod, None, None).await.unwrap()[0].message,
        "kept"
    );
}

/// `cairn cancel` of an update that is still running: its lock is gone, so it writes nothing
/// more, and the update after it keeps what it wrote.
pub async fn a_cancelled_update_writes_nothing_more(backend: &dyn Backend) {
    let dev = stack("fencing", "dev");
    backend.create_stack(&dev).await.unwrap();
    let (cancelled, cancelled_lock) = locked_persister(backend, &dev).await;
    let in_flight = resource(&dev, "in-flight", "1");
    let op = cancelled
        .begin(PendingOperationKind::Creating, &in_flight)
        .await
        .unwrap();
    backend.cancel(&dev).await.unwrap();

    // The next update starts after the cancel; the cancelled one's open step is pending.
    let next = resource(&dev, "next", "2");
    {
        let (persister, _lock) = locked_persister(backend, &dev).await;
        let started = backend.load_deployment(&dev).await.unwrap().unwrap();
        assert_eq!(started.pending_operations.len(), 1);
        let next_op = persister
            .begin(PendingOperationKind::Creating, &next)
            .await
            .unwrap();
        persister.end(next_op, None, Some(&next)).await.unwrap();

        // The cancelled update goes on while the next one runs: every write is refused.
        let late = resource(&dev, "late", "3");
        assert!(matches!(
            cancelled.begin(PendingOperationKind::Creating, &late).await,
            Err(crate::persister::StateError::Backend(
                BackendError::LockLost(_)
            ))
        ));
        assert!(matches!(
            cancelled.end(op, None, Some(&in_flight)).await,
            Err(crate::persister::StateError::Backend(
                BackendError::LockLost(_)
            ))
        ));
        persister
            .finish(
                &Snapshot {
                    resources: vec![next.clone()],
                    pending_operations: Vec::new(),
                },
                UpdateResult::Succeeded,
                BTreeMap::new(),
            )
            .await
            .unwrap();
    }
    let finished = cancelled
        .finish(
            &Snapshot {
                resources: vec![in_flight],
                pending_operations: Vec::new(),
            },
            UpdateResult::Succeeded,
            BTreeMap::new(),
        )
        .await;
    assert!(
        matches!(
            finished,
            Err(crate::persister::StateError::Backend(
                BackendError::LockLost(_)
            ))
        ),
        "a cancelled update's final write must be refused"
    );
    drop(cancelled_lock);
    let deployment = backend.load_deployment(&dev).await.unwrap().unwrap();
    assert_eq!(names(&deployment), ["next"]);
    // A lock that was cancelled while its guard lived is not someone else's to release.
    assert!(backend.lock_holder(&dev).await.unwrap().is_none());
    let again = backend.lock_stack(&dev, owner("cairn up")).await.unwrap();
    drop(again);
}

/// `stack rm` is a writer like any other: refused while someone else holds the lock.
pub async fn a_stack_is_removed_only_under_its_own_lock(backend: &dyn Backend) {
    let dev = stack("removal", "dev");
    let prod = stack("removal", "prod");
    backend.create_stack(&dev).await.unwrap();
    backend.create_stack(&prod).await.unwrap();
    let (persister, update_lock) = locked_persister(backend, &dev).await;
    assert!(matches!(
        remove_stack(backend, &dev, true).await,
        Err(BackendError::Locked { .. })
    ));
    // Another stack's lock is not this stack's.
    let prod_lock = backend.lock_stack(&prod, owner("cairn up")).await.unwrap();
    assert!(matches!(
        backend.remove_stack(&dev, true, prod_lock.as_ref()).await,
        Err(BackendError::LockLost(_))
    ));
    drop(prod_lock);
    persister
        .finish(
            &Snapshot::default(),
            UpdateResult::Succeeded,
            BTreeMap::new(),
        )
        .await
        .unwrap();
    drop(update_lock);
    assert!(backend.stack_exists(&dev).await.unwrap());
    assert_eq!(backend.history(&dev).await.unwrap().len(), 1);
    remove_stack(backend, &dev, false).await.unwrap();
    assert!(!backend.stack_exists(&dev).await.unwrap());
    assert!(backend.stack_exists(&prod).await.unwrap());
}

/// Names that would reach outside the stack's own files or rows are refused by the backend
/// itself, whatever the caller checked.
pub async fn names_that_escape_are_refused(backend: &dyn Backend) {
    let victim = stack("victim", "dev");
    backend.create_stack(&victim).await.unwrap();
    update_to(backend, &victim, vec![resource(&victim, "a", "1")]).await;
    for (project, name) in [
        ("victim", ".."),
        ("..", "dev"),
        ("victim/..", "dev"),
        (".", "."),
    ] {
        let bad = StackRef {
            organization: crate::stack_ref::DEFAULT_ORGANIZATION.to_owned(),
            project: project.to_owned(),
            name: name.to_owned(),
        };
        assert!(matches!(
            backend.create_stack(&bad).await,
            Err(BackendError::InvalidName(_))
        ));
        assert!(matches!(
            backend.lock_stack(&bad, owner("cairn stack rm")).await,
            Err(BackendError::InvalidName(_))
        ));
        assert!(matches!(
            backend.load_deployment(&bad).await,
            Err(BackendError::InvalidName(_))
        ));
        assert!(matches!(
            backend.cancel(&bad).await,
            Err(BackendError::InvalidName(_))
        ));
    }
    let deployment = backend.load_deployment(&victim).await.unwrap().unwrap();
    assert_eq!(names(&deployment), ["a"]);
    assert_eq!(backend.history(&victim).await.unwrap().len(), 1);
}
