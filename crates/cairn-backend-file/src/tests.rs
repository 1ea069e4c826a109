//! Tests of the file backend against a temporary directory.

use std::sync::Arc;

use cairn_core::{PendingOperationKind, ResourceState, Snapshot, Urn, Value};
use cairn_state::{Backend, Persister, StackLock, StackRef, UpdateResult};

use super::*;

use cairn_state::conformance::Reverse;

fn backend(dir: &tempfile::TempDir) -> FileBackend {
    FileBackend::open(
        dir.path().to_owned(),
        "file://test".to_owned(),
        "tester".to_owned(),
    )
    .unwrap()
}

fn stack(name: &str) -> StackRef {
    StackRef::parse(name, "proj").unwrap()
}

fn resource(name: &str, id: &str) -> ResourceState {
    ResourceState {
        urn: Urn::parse(&format!(
            "urn:pulumi:dev::proj::fake:index:Resource::{name}"
        ))
        .unwrap(),
        custom: true,
        id: id.to_owned(),
        type_: "fake:index:Resource".to_owned(),
        inputs: [("n".to_owned(), Value::Number(1.0))].into(),
        ..ResourceState::default()
    }
}

async fn persister(backend: &FileBackend, stack: &StackRef) -> (Persister, Box<dyn StackLock>) {
    cairn_state::conformance::locked_persister(backend, stack).await
}

fn names(deployment: &Deployment) -> Vec<String> {
    deployment
        .resources
        .iter()
        .map(|resource| resource.urn.rsplit("::").next().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn creates_lists_and_removes_stacks() {
    let dir = tempfile::tempdir().unwrap();
    let backend = backend(&dir);
    backend.create_stack(&stack("dev")).await.unwrap();
    backend.create_stack(&stack("prod")).await.unwrap();
    assert!(matches!(
        backend.create_stack(&stack("dev")).await,
        Err(BackendError::StackAlreadyExists(_))
    ));
    let listed: Vec<String> = backend
        .list_stacks(Some("proj"))
        .await
        .unwrap()
        .into_iter()
        .map(|summary| summary.stack.name)
        .collect();
    assert_eq!(listed, vec!["dev", "prod"]);
    assert_eq!(backend.list_stacks(None).await.unwrap().len(), 2);
    assert!(backend.list_stacks(Some("other")).await.unwrap().is_empty());

    let (persister, lock) = persister(&backend, &stack("dev")).await;
    let op = persister
        .begin(PendingOperationKind::Creating, &resource("a", ""))
        .await
        .unwrap();
    persister
        .end(op, None, Some(&resource("a", "1")))
        .await
        .unwrap();
    let snapshot = Snapshot {
        resources: vec![resource("a", "1")],
        pending_operations: Vec::new(),
    };
    persister
        .finish(&snapshot, UpdateResult::Succeeded, Default::default())
        .await
        .unwrap();
    drop(lock);

    assert!(matches!(
        cairn_state::conformance::remove_stack(&backend, &stack("dev"), false).await,
        Err(BackendError::StackHasResources { count: 1, .. })
    ));
    cairn_state::conformance::remove_stack(&backend, &stack("prod"), false)
        .await
        .unwrap();
    cairn_state::conformance::remove_stack(&backend, &stack("dev"), true)
        .await
        .unwrap();
    assert!(!backend.stack_exists(&stack("dev")).await.unwrap());
    assert!(backend.list_stacks(Some("proj")).await.unwrap().is_empty());
}

#[tokio::test]
async fn finished_update_is_the_new_checkpoint_with_history() {
    let dir = tempfile::tempdir().unwrap();
    let backend = backend(&dir);
    backend.create_stack(&stack("dev")).await.unwrap();
    let (persister, _lock) = persister(&backend, &stack("dev")).await;
    let mut secret = resource("a", "1");
    secret
        .outputs
        .insert("pw".to_owned(), Value::string("hunter2").into_secret());
    let snapshot = Snapshot {
        resources: vec![secret],
        pending_operations: Vec::new(),
    };
    persister
        .finish(
            &snapshot,
            UpdateResult::Succeeded,
            [("create".to_owned(), 1)].into(),
        )
        .await
        .unwrap();
    let deployment = backend
        .load_deployment(&stack("dev"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(names(&deployment), vec!["a"]);
    let decoded = cairn_state::deployment::decode_deployment(&deployment, &Reverse).unwrap();
    assert_eq!(decoded, snapshot);
    assert!(!dir.path().join(".pulumi/stacks/proj/dev.journal").exists());
    let stored = std::fs::read_to_string(dir.path().join(".pulumi/stacks/proj/dev.json")).unwrap();
    assert!(!stored.contains("hunter2"));
    let history = backend.history(&stack("dev")).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].result, UpdateResult::Succeeded);
    assert_eq!(history[0].resource_changes["create"], 1);
}

#[tokio::test]
async fn a_crash_leaves_finished_steps_and_pending_operations() {
    let dir = tempfile::tempdir().unwrap();
    let backend = backend(&dir);
    backend.create_stack(&stack("dev")).await.unwrap();
    {
        let (persister, _lock) = persister(&backend, &stack("dev")).await;
        let op = persister
            .begin(PendingOperationKind::Creating, &resource("a", ""))
            .await
            .unwrap();
        persister
            .end(op, None, Some(&resource("a", "1")))
            .await
            .unwrap();
        persister
            .begin(PendingOperationKind::Creating, &resource("b", ""))
            .await
            .unwrap();
        // Dropped without `finish`: the process died here.
    }
    let deployment = backend
        .load_deployment(&stack("dev"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(names(&deployment), vec!["a"]);
    assert_eq!(deployment.pending_operations.len(), 1);
    assert_eq!(deployment.pending_operations[0].type_, "creating");
    assert!(
        deployment.pending_operations[0]
            .resource
            .urn
            .ends_with("::b")
    );

    // The next update folds the old journal first, and does not apply it twice.
    let (persister, _lock) = persister(&backend, &stack("dev")).await;
    drop(persister);
    let again = backend
        .load_deployment(&stack("dev"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(names(&again), vec!["a"]);
    assert_eq!(again.pending_operations.len(), 1);
}

#[tokio::test]
async fn a_torn_last_journal_line_is_ignored_but_corruption_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let backend = backend(&dir);
    backend.create_stack(&stack("dev")).await.unwrap();
    {
        let (persister, _lock) = persister(&backend, &stack("dev")).await;
        for (name, id) in [("a", "1"), ("b", "2")] {
            let op = persister
                .begin(PendingOperationKind::Creating, &resource(name, ""))
                .await
                .unwrap();
            persister
                .end(op, None, Some(&resource(name, id)))
                .await
                .unwrap();
        }
    }
    let journal = dir.path().join(".pulumi/stacks/proj/dev.journal");
    let text = std::fs::read_to_string(&journal).unwrap();
    // Cut the last line in half, as a crash mid-write would.
    let torn = &text[..text.len() - 20];
    std::fs::write(&journal, torn).unwrap();
    let deployment = backend
        .load_deployment(&stack("dev"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(names(&deployment), vec!["a"]);
    assert_eq!(
        deployment.pending_operations.len(),
        1,
        "b's create began and its end was lost"
    );

    // Flip a byte in a middle line: that is corruption, not a torn write.
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[1] = lines[1].replacen("creating", "creatinG", 1);
    std::fs::write(&journal, lines.join("\n") + "\n").unwrap();
    match backend.load_deployment(&stack("dev")).await {
        // The error says where, and how to recover.
        Err(BackendError::Corrupt { reason, .. }) => {
            assert!(reason.contains("dev.journal:2"), "{reason}");
            assert!(reason.contains("`cairn state repair`"), "{reason}");
        }
        other => panic!(
            "a damaged journal must be refused, got {:?}",
            other.map(|_| ())
        ),
    }
}

#[tokio::test]
async fn a_corrupted_checkpoint_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let backend = backend(&dir);
    backend.create_stack(&stack("dev")).await.unwrap();
    let path = dir.path().join(".pulumi/stacks/proj/dev.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("\"resources\":[]", "\"resources\":[ ]")).unwrap();
    let error = backend.load_deployment(&stack("dev")).await.unwrap_err();
    assert!(error.to_string().contains("checksum"), "{error}");
    std::fs::write(&path, &text[..text.len() / 2]).unwrap();
    assert!(matches!(
        backend.load_deployment(&stack("dev")).await,
        Err(BackendError::Corrupt { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_steps_are_all_durable_and_bytes_grow_linearly() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(backend(&dir));
    backend.create_stack(&stack("dev")).await.unwrap();
    let (persister, _lock) = persister(&backend, &stack("dev")).await;
    let persister = Arc::new(persister);
    let before = backend.bytes_written();
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..200 {
        let persister = persister.clone();
        tasks.spawn(async move {
            let name = format!("r{index}");
            let op = persister
                .begin(PendingOperationKind::Creating, &resource(&name, ""))
                .await
                .unwrap();
            persister
                .end(op, None, Some(&resource(&name, &index.to_string())))
                .await
                .unwrap();
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.unwrap();
    }
    let journal_bytes = backend.bytes_written() - before;
    let deployment = backend
        .load_deployment(&stack("dev"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deployment.resources.len(), 200);
    assert!(deployment.pending_operations.is_empty());
    // Two records per step, each a few hundred bytes: linear, not a checkpoint per record.
    let checkpoint_like = serde_json::to_string(&deployment).unwrap().len() as u64;
    assert!(
        journal_bytes < 4 * checkpoint_like,
        "{journal_bytes} vs {checkpoint_like}"
    );
    assert!(
        journal_bytes > checkpoint_like,
        "{journal_bytes} vs {checkpoint_like}"
    );
}

#[tokio::test]
async fn operations_still_open_at_finish_stay_pending() {
    let dir = tempfile::tempdir().unwrap();
    let backend = backend(&dir);
    backend.create_stack(&stack("dev")).await.unwrap();
    let (persister, _lock) = persister(&backend, &stack("dev")).await;
    let op = persister
        .begin(PendingOperationKind::Creating, &resource("a", ""))
        .await
        .unwrap();
    persister
        .end(op, None, Some(&resource("a", "1")))
        .await
        .unwrap();
    persister
        .begin(PendingOperationKind::Deleting, &resource("gone", "9"))
        .await
        .unwrap();
    let snapshot = Snapshot {
        resources: vec![resource("a", "1")],
        pending_operations: Vec::new(),
    };
    persister
        .finish(&snapshot, UpdateResult::Cancelled, Default::default())
        .await
        .unwrap();
    let deployment = backend
        .load_deployment(&stack("dev"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(names(&deployment), vec!["a"]);
    assert_eq!(deployment.pending_operations.len(), 1);
    assert_eq!(deployment.pending_operations[0].type_, "deleting");
    assert_eq!(
        backend.history(&stack("dev")).await.unwrap()[0].result,
        UpdateResult::Cancelled
    );
}

#[tokio::test]
async fn the_checkpoint_carries_the_checksum_of_its_deployment_and_a_backup() {
    let dir = tempfile::tempdir().unwrap();
    let backend = backend(&dir);
    assert_eq!(backend.current_user().await.unwrap(), "tester");
    backend.create_stack(&stack("dev")).await.unwrap();
    let path = dir.path().join(".pulumi/stacks/proj/dev.json");
    let created = std::fs::read_to_string(&path).unwrap();
    let (persister, _lock) = persister(&backend, &stack("dev")).await;
    let snapshot = Snapshot {
        resources: vec![resource("a", "1")],
        pending_operations: Vec::new(),
    };
    persister
        .finish(&snapshot, UpdateResult::Succeeded, Default::default())
        .await
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with(r#"{"version":3,"checksum":""#), "{text}");
    let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
    let deployment_start = text.find(r#","deployment":"#).unwrap() + r#","deployment":"#.len();
    let deployment_json = text[deployment_start..]
        .trim_end()
        .strip_suffix('}')
        .unwrap();
    assert_eq!(
        parsed["checksum"].as_str().unwrap(),
        files::sha256_hex(deployment_json.as_bytes())
    );
    assert_eq!(parsed["deployment"]["resources"][0]["id"], "1");
    // The checkpoint it replaced is kept beside it.
    let backup = dir.path().join(".pulumi/stacks/proj/dev.json.bak");
    assert_eq!(std::fs::read_to_string(backup).unwrap(), created);
    // No temporary files are left behind.
    let leftovers: Vec<String> = std::fs::read_dir(dir.path().join(".pulumi/stacks/proj"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn history_is_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let backend = backend(&dir);
    backend.create_stack(&stack("dev")).await.unwrap();
    for result in [UpdateResult::Failed, UpdateResult::Succeeded] {
        let (persister, _lock) = persister(&backend, &stack("dev")).await;
        persister
            .finish(&Snapshot::default(), result, Default::default())
            .await
            .unwrap();
    }
    let history = backend.history(&stack("dev")).await.unwrap();
    let results: Vec<UpdateResult> = history.iter().map(|update| update.result).collect();
    assert_eq!(results, vec![UpdateResult::Succeeded, UpdateResult::Failed]);
    assert!(history[0].version > history[1].version);
    assert!(backend.history(&stack("other")).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_corrupt_stack_can_only_be_removed_with_force() {
    let dir = tempfile::tempdir().unwrap();
    let backend = backend(&dir);
    backend.create_stack(&stack("dev")).await.unwrap();
    std::fs::write(dir.path().join(".pulumi/stacks/proj/dev.json"), "{").unwrap();
    assert!(matches!(
        cairn_state::conformance::remove_stack(&backend, &stack("dev"), false).await,
        Err(BackendError::Corrupt { .. })
    ));
    cairn_state::conformance::remove_stack(&backend, &stack("dev"), true)
        .await
        .unwrap();
    assert!(!backend.stack_exists(&stack("dev")).await.unwrap());
    assert!(matches!(
        cairn_state::conformance::remove_stack(&backend, &stack("dev"), true).await,
        Err(BackendError::StackNotFound(_))
    ));
    assert!(matches!(
        backend
            .lock_stack(&stack("dev"), cairn_state::conformance::owner("cairn up"))
            .await,
        Err(BackendError::StackNotFound(_))
    ));
}

#[tokio::test]
async fn a_journal_folded_into_a_newer_checkpoint_is_not_applied_again() {
    let dir = tempfile::tempdir().unwrap();
    let backend = backend(&dir);
    backend.create_stack(&stack("dev")).await.unwrap();
    let journal = dir.path().join(".pulumi/stacks/proj/dev.journal");
    let (persister, _lock) = persister(&backend, &stack("dev")).await;
    let op = persister
        .begin(PendingOperationKind::Creating, &resource("a", ""))
        .await
        .unwrap();
    persister
        .end(op, None, Some(&resource("a", "1")))
        .await
        .unwrap();
    let left_over = std::fs::read(&journal).unwrap();
    persister
        .finish(
            &Snapshot {
                resources: vec![resource("a", "1")],
                pending_operations: Vec::new(),
            },
            UpdateResult::Succeeded,
            Default::default(),
        )
        .await
        .unwrap();
    // A crash between writing the checkpoint and removing the journal leaves this.
    std::fs::write(&journal, left_over).unwrap();
    let deployment = backend
        .load_deployment(&stack("dev"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(names(&deployment), vec!["a"]);
    assert!(deployment.pending_operations.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_updates_fold_their_journal_and_keep_open_operations() {
    let dir = tempfile::tempdir().unwrap();
    let backend = backend(&dir).with_fold_threshold(4 * 1024);
    backend.create_stack(&stack("dev")).await.unwrap();
    let journal_path = dir.path().join(".pulumi/stacks/proj/dev.journal");
    {
        let (persister, _lock) = persister(&backend, &stack("dev")).await;
        // Begun before the folds and never ended: must survive them as a pending operation.
        persister
            .begin(PendingOperationKind::Creating, &resource("open", ""))
            .await
            .unwrap();
        // Begun before a fold and ended after it: must end up a resource, not pending.
        let straddling = persister
            .begin(PendingOperationKind::Creating, &resource("straddle", ""))
            .await
            .unwrap();
        let mut longest_journal = 0;
        for index in 0..300 {
            let name = format!("r{index}");
            let op = persister
                .begin(PendingOperationKind::Creating, &resource(&name, ""))
                .await
                .unwrap();
            persister
                .end(op, None, Some(&resource(&name, &index.to_string())))
                .await
                .unwrap();
            longest_journal = longest_journal.max(std::fs::metadata(&journal_path).unwrap().len());
        }
        persister
            .end(straddling, None, Some(&resource("straddle", "s")))
            .await
            .unwrap();
        // Bounded by the threshold or four checkpoints, plus one batch.
        let checkpoint = std::fs::metadata(dir.path().join(".pulumi/stacks/proj/dev.json"))
            .unwrap()
            .len();
        assert!(
            longest_journal < (4 * checkpoint).max(4 * 1024) + 4 * 1024,
            "journal grew to {longest_journal} bytes (checkpoint {checkpoint})"
        );
        // Dropped without `finish`: a crash after many folds.
    }
    let deployment = backend
        .load_deployment(&stack("dev"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        deployment.resources.len(),
        301,
        "300 steps and the straddling one"
    );
    assert!(names(&deployment).contains(&"straddle".to_owned()));
    let pending: Vec<&str> = deployment
        .pending_operations
        .iter()
        .map(|operation| operation.resource.urn.rsplit("::").next().unwrap())
        .collect();
    assert_eq!(pending, vec!["open"]);
}

#[tokio::test]
async fn passes_the_backend_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    cairn_state::conformance::run_all(&backend(&dir)).await;
}

/// A value `depth` levels deep (`cairn_core::Value::depth`), with a secret innermost.
fn nested(depth: usize) -> Value {
    let mut value = Value::string("deep").into_secret();
    for level in 1..depth {
        value = if level % 2 == 0 {
            Value::Array(vec![value])
        } else {
            Value::Object([("a".to_owned(), value)].into())
        };
    }
    value
}

#[tokio::test]
async fn a_checkpoint_at_the_depth_limit_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let backend = backend(&dir);
    let dev = stack("dev");
    backend.create_stack(&dev).await.unwrap();
    let mut deep = resource("deep", "id-1");
    deep.inputs
        .insert("v".to_owned(), nested(cairn_core::MAX_VALUE_DEPTH));
    deep.outputs = deep.inputs.clone();
    assert_eq!(deep.inputs["v"].depth(), cairn_core::MAX_VALUE_DEPTH);
    let snapshot = Snapshot {
        resources: vec![deep.clone()],
        ..Snapshot::default()
    };
    // Through the journal (begin/end records) and the final checkpoint.
    let (persister, _lock) = persister(&backend, &dev).await;
    let op = persister
        .begin(PendingOperationKind::Creating, &deep)
        .await
        .unwrap();
    persister.end(op, None, Some(&deep)).await.unwrap();
    persister
        .finish(&snapshot, UpdateResult::Succeeded, Default::default())
        .await
        .unwrap();
    let loaded = backend.load_deployment(&dev).await.unwrap().unwrap();
    let decoded = cairn_state::deployment::decode_deployment(&loaded, &Reverse).unwrap();
    assert_eq!(decoded.resources, vec![deep]);
}

#[tokio::test]
async fn a_value_past_the_depth_limit_is_never_written() {
    let dir = tempfile::tempdir().unwrap();
    let backend = backend(&dir);
    let dev = stack("dev");
    backend.create_stack(&dev).await.unwrap();
    let checkpoint = backend.checkpoint_path(&dev);
    let before = std::fs::read(&checkpoint).unwrap();
    let mut deep = resource("deep", "id-1");
    deep.inputs
        .insert("v".to_owned(), nested(cairn_core::MAX_VALUE_DEPTH + 1));

    // The persister refuses to record it...
    let (persister, _lock) = persister(&backend, &dev).await;
    let error = persister
        .begin(PendingOperationKind::Creating, &deep)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "`urn:pulumi:dev::proj::fake:index:Resource::deep`: input property `v` is nested 65 levels deep; at most 64 are allowed"
    );
    drop(persister);

    // ...and the backend refuses a deployment holding it, whoever encoded it.
    let mut encoded =
        cairn_state::deployment::encode_resource(&resource("deep", "id-1"), &Reverse).unwrap();
    let mut json = serde_json::json!("deep");
    for _ in 0..=cairn_core::MAX_VALUE_DEPTH {
        json = serde_json::json!([json]);
    }
    encoded.inputs.insert("v".to_owned(), json);
    let deployment = Deployment {
        resources: vec![encoded],
        ..Deployment::default()
    };
    let error = backend
        .import_deployment(&dev, deployment)
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("input property `v` is nested 65 levels deep"),
        "{error}"
    );
    assert_eq!(std::fs::read(&checkpoint).unwrap(), before);
    assert!(backend.load_deployment(&dev).await.is_ok());
}

/// An update that crashed with `a` created, `b` begun and never ended, then `c` begun and `d`
/// created; its journal is then damaged on the line that ended `b`.
async fn crash_and_damage_the_journal(backend: &FileBackend, dir: &tempfile::TempDir) -> String {
    let dev = stack("dev");
    backend.create_stack(&dev).await.unwrap();
    {
        let (persister, _lock) = persister(backend, &dev).await;
        let op = persister
            .begin(PendingOperationKind::Creating, &resource("base", ""))
            .await
            .unwrap();
        persister
            .end(op, None, Some(&resource("base", "0")))
            .await
            .unwrap();
        let snapshot = Snapshot {
            resources: vec![resource("base", "0")],
            pending_operations: Vec::new(),
        };
        persister
            .finish(&snapshot, UpdateResult::Succeeded, Default::default())
            .await
            .unwrap();
    }
    {
        let (persister, _lock) = persister(backend, &dev).await;
        let a = persister
            .begin(PendingOperationKind::Creating, &resource("a", ""))
            .await
            .unwrap();
        persister
            .end(a, None, Some(&resource("a", "1")))
            .await
            .unwrap();
        let b = persister
            .begin(PendingOperationKind::Creating, &resource("b", ""))
            .await
            .unwrap();
        persister
            .end(b, None, Some(&resource("b", "2")))
            .await
            .unwrap();
        persister
            .begin(PendingOperationKind::Creating, &resource("c", ""))
            .await
            .unwrap();
        let d = persister
            .begin(PendingOperationKind::Creating, &resource("d", ""))
            .await
            .unwrap();
        persister
            .end(d, None, Some(&resource("d", "4")))
            .await
            .unwrap();
        // Dropped without `finish`: the process died here.
    }
    let journal = dir.path().join(".pulumi/stacks/proj/dev.journal");
    let text = std::fs::read_to_string(&journal).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 8, "header and 7 records:\n{text}");
    // Line 5 ended `b`.
    assert!(
        lines[4].contains("\"end\"") && lines[4].contains("::b"),
        "{text}"
    );
    lines[4] = "{\"sha256\": \"garbage\"";
    let damaged = lines.join("\n") + "\n";
    std::fs::write(&journal, &damaged).unwrap();
    damaged
}

#[tokio::test]
async fn a_journal_damaged_in_the_middle_is_salvaged_up_to_the_damage() {
    let dir = tempfile::tempdir().unwrap();
    let backend = backend(&dir);
    let dev = stack("dev");
    let damaged = crash_and_damage_the_journal(&backend, &dir).await;

    // Every load stops, and names the command that salvages.
    match backend.load_deployment(&dev).await {
        Err(BackendError::Corrupt { reason, .. }) => {
            assert!(reason.contains("dev.journal:5"), "{reason}");
            assert!(reason.contains("`cairn state repair`"), "{reason}");
            assert!(reason.contains("keeps the 3 intact records"), "{reason}");
        }
        other => panic!("expected a damaged journal, got {:?}", other.map(|_| ())),
    }
    let report = backend.journal_damage(&dev).await.unwrap().unwrap();
    assert!(report.location.ends_with("dev.journal:5"), "{report:?}");
    assert_eq!(report.kept_records, 3);
    assert_eq!(report.pending.len(), 1);
    assert!(report.pending[0].ends_with("::b"), "{report:?}");
    assert_eq!(report.damaged_lines, 4);
    let damaged_names: Vec<&str> = report
        .damaged_urns
        .iter()
        .map(|urn| urn.rsplit("::").next().unwrap())
        .collect();
    assert_eq!(damaged_names, ["c", "d"]);
    assert_eq!(report.moved_to, None);

    // Only under the stack's lock.
    backend.create_stack(&stack("other")).await.unwrap();
    let other_lock = backend
        .lock_stack(&stack("other"), cairn_state::conformance::owner("cairn up"))
        .await
        .unwrap();
    assert!(matches!(
        backend.salvage_journal(&dev, other_lock.as_ref()).await,
        Err(BackendError::LockLost(_))
    ));
    backend.load_deployment(&dev).await.unwrap_err();

    let lock = backend
        .lock_stack(&dev, cairn_state::conformance::owner("cairn state repair"))
        .await
        .unwrap();
    let salvaged = backend
        .salvage_journal(&dev, lock.as_ref())
        .await
        .unwrap()
        .unwrap();
    // The damaged journal is kept whole, where the report says.
    let moved_to = PathBuf::from(salvaged.moved_to.clone().unwrap());
    assert_eq!(std::fs::read_to_string(&moved_to).unwrap(), damaged);
    assert!(!dir.path().join(".pulumi/stacks/proj/dev.journal").exists());

    // The records before the damage are the state: `a` created, `b` pending; nothing after.
    let deployment = backend.load_deployment(&dev).await.unwrap().unwrap();
    assert_eq!(names(&deployment), vec!["base", "a"]);
    assert_eq!(deployment.pending_operations.len(), 1);
    assert_eq!(deployment.pending_operations[0].type_, "creating");
    assert!(
        deployment.pending_operations[0]
            .resource
            .urn
            .ends_with("::b")
    );
    assert_eq!(backend.journal_damage(&dev).await.unwrap(), None);
    assert_eq!(
        backend.salvage_journal(&dev, lock.as_ref()).await.unwrap(),
        None
    );

    // A crash after the salvaged checkpoint was written but before the journal was removed:
    // the journal names the checkpoint before, so it is stale and not applied again.
    std::fs::copy(
        &moved_to,
        dir.path().join(".pulumi/stacks/proj/dev.journal"),
    )
    .unwrap();
    assert_eq!(
        backend.load_deployment(&dev).await.unwrap().unwrap(),
        deployment
    );
    drop(lock);

    // The stack works again: the next update starts from the salvaged state.
    let (persister, _lock) = persister(&backend, &dev).await;
    drop(persister);
    let again = backend.load_deployment(&dev).await.unwrap().unwrap();
    assert_eq!(names(&again), vec!["base", "a"]);
    assert_eq!(again.pending_operations.len(), 1);
}

#[tokio::test]
async fn a_journal_with_a_damaged_header_is_set_aside_whole() {
    let dir = tempfile::tempdir().unwrap();
    let backend = backend(&dir);
    let dev = stack("dev");
    crash_and_damage_the_journal(&backend, &dir).await;
    let journal = dir.path().join(".pulumi/stacks/proj/dev.journal");
    let text = std::fs::read_to_string(&journal).unwrap();
    let damaged = text.replacen("{\"base\"", "{\"bas", 1);
    std::fs::write(&journal, &damaged).unwrap();
    backend.load_deployment(&dev).await.unwrap_err();
    let report = backend.journal_damage(&dev).await.unwrap().unwrap();
    assert_eq!(report.kept_records, 0);
    assert!(report.location.ends_with("dev.journal:1"), "{report:?}");
    let lock = backend
        .lock_stack(&dev, cairn_state::conformance::owner("cairn state repair"))
        .await
        .unwrap();
    let salvaged = backend
        .salvage_journal(&dev, lock.as_ref())
        .await
        .unwrap()
        .unwrap();
    let moved_to = PathBuf::from(salvaged.moved_to.unwrap());
    assert_eq!(std::fs::read_to_string(moved_to).unwrap(), damaged);
    // Which checkpoint it applied to is unknown, so none of it is: the last checkpoint stands.
    let deployment = backend.load_deployment(&dev).await.unwrap().unwrap();
    assert_eq!(names(&deployment), vec!["base"]);
    assert!(deployment.pending_operations.is_empty());
}

/// A base changed by one character names "another checkpoint": without the header's own
/// checksum the journal would be passed over as already folded and its records lost silently.
#[tokio::test]
async fn a_journal_whose_base_was_altered_is_damage_not_a_stale_journal() {
    let dir = tempfile::tempdir().unwrap();
    let backend = backend(&dir);
    let dev = stack("dev");
    crash_and_damage_the_journal(&backend, &dir).await;
    let journal = dir.path().join(".pulumi/stacks/proj/dev.journal");
    let text = std::fs::read_to_string(&journal).unwrap();
    let header_end = text.find('\n').unwrap();
    let header = &text[..header_end];
    let at = header.find("\"base\":\"").unwrap() + "\"base\":\"".len();
    let digit = header.as_bytes()[at];
    let altered_digit = if digit == b'0' { '1' } else { '0' };
    let mut altered = text.clone();
    altered.replace_range(at..=at, &altered_digit.to_string());
    std::fs::write(&journal, &altered).unwrap();
    backend.load_deployment(&dev).await.unwrap_err();
    let report = backend.journal_damage(&dev).await.unwrap().unwrap();
    assert!(report.location.ends_with("dev.journal:1"), "{report:?}");
}

/// A lock owner on this host whose process is gone: what a `kill -9` leaves in a lock file.
fn gone_owner(command: &str) -> cairn_state::LockOwner {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    cairn_state::LockOwner {
        pid,
        host: cairn_state::backend::local_host(),
        ..cairn_state::conformance::owner(command)
    }
}

/// `dev` with two finished updates (so a kept version and two history records), tags and logs.
async fn renamable(backend: &FileBackend) {
    let dev = stack("dev");
    backend.create_stack(&dev).await.unwrap();
    for id in ["1", "2"] {
        let (persister, _lock) = persister(backend, &dev).await;
        let op = persister
            .begin(PendingOperationKind::Creating, &resource("a", ""))
            .await
            .unwrap();
        persister
            .end(op, None, Some(&resource("a", id)))
            .await
            .unwrap();
        let snapshot = Snapshot {
            resources: vec![resource("a", id)],
            pending_operations: Vec::new(),
        };
        persister
            .finish(&snapshot, UpdateResult::Succeeded, Default::default())
            .await
            .unwrap();
    }
    backend.set_stack_tag(&dev, "owner", "me").await.unwrap();
    // What `cairn state repair` once set aside goes along too.
    std::fs::write(
        backend.stack_dir(&dev).join("dev.journal.damaged-1"),
        "damaged",
    )
    .unwrap();
    backend
        .append_logs(
            &dev,
            vec![cairn_state::LogEntry {
                timestamp_ms: 5,
                urn: None,
                severity: "info".to_owned(),
                message: "kept".to_owned(),
            }],
        )
        .await
        .unwrap();
}

/// Renames `dev` to `prod` under a lock held by `owner`, as a renamer that dies after `steps`
/// steps: its lock stays behind, as a killed process's does. Returns how many steps a whole
/// rename has.
async fn rename_crashing_after(
    backend: &FileBackend,
    owner: cairn_state::LockOwner,
    steps: usize,
) -> usize {
    let (dev, prod) = (stack("dev"), stack("prod"));
    let lock = backend.lock_stack(&dev, owner).await.unwrap();
    let intent = backend.start_rename(&dev, &prod, lock.token()).unwrap();
    let total = backend
        .run_rename(&dev, &prod, &intent, lock.token(), Some(steps))
        .unwrap();
    // The lock file stays; its heartbeat thread is leaked, which the test does not mind.
    std::mem::forget(lock);
    total
}

/// Every path under the backend that still mentions the old name `dev`.
fn paths_naming_dev(dir: &tempfile::TempDir) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.path().to_owned()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap().flatten() {
            let path = entry.path();
            let relative = path
                .strip_prefix(dir.path())
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if relative.contains("dev") {
                found.push(relative);
            }
            if path.is_dir() {
                pending.push(path);
            }
        }
    }
    found
}

/// The stack is whole under `prod` and nothing is left under `dev`.
async fn assert_renamed(backend: &FileBackend, dir: &tempfile::TempDir, context: &str) {
    let (dev, prod) = (stack("dev"), stack("prod"));
    assert!(!backend.stack_exists(&dev).await.unwrap(), "{context}");
    assert!(backend.stack_exists(&prod).await.unwrap(), "{context}");
    let deployment = backend.load_deployment(&prod).await.unwrap().unwrap();
    let urns: Vec<&str> = deployment
        .resources
        .iter()
        .map(|r| r.urn.as_str())
        .collect();
    assert_eq!(
        urns,
        ["urn:pulumi:prod::proj::fake:index:Resource::a"],
        "{context}"
    );
    assert_eq!(deployment.resources[0].id, "2", "{context}");
    let history = backend.history(&prod).await.unwrap();
    assert_eq!(history.len(), 2, "{context}");
    let past = backend.load_version(&prod, 1).await.unwrap().unwrap();
    assert_eq!(past.resources[0].id, "1", "{context}");
    assert!(
        past.resources[0].urn.starts_with("urn:pulumi:prod::"),
        "{context}"
    );
    assert_eq!(
        backend.stack_tags(&prod).await.unwrap()["owner"],
        "me",
        "{context}"
    );
    assert_eq!(
        backend.logs(&prod, None, None).await.unwrap()[0].message,
        "kept",
        "{context}"
    );
    let listed: Vec<String> = backend
        .list_stacks(Some("proj"))
        .await
        .unwrap()
        .into_iter()
        .map(|summary| summary.stack.name)
        .collect();
    assert_eq!(listed, ["prod"], "{context}");
    assert_eq!(paths_naming_dev(dir), Vec::<String>::new(), "{context}");
    assert_eq!(
        std::fs::read_to_string(backend.stack_dir(&prod).join("prod.journal.damaged-1")).unwrap(),
        "damaged",
        "{context}"
    );
    // Both names are free of locks: the new one takes updates, the old one is gone.
    let (persister, _lock) = persister(backend, &prod).await;
    drop(persister);
    assert!(matches!(
        backend
            .lock_stack(&dev, cairn_state::conformance::owner("cairn up"))
            .await,
        Err(BackendError::StackNotFound(_))
    ));
}

#[tokio::test]
async fn a_rename_killed_after_any_step_is_finished_by_the_next_access_to_either_name() {
    let mut steps = 0;
    loop {
        let dir = tempfile::tempdir().unwrap();
        let backend = backend(&dir);
        renamable(&backend).await;
        let total = rename_crashing_after(&backend, gone_owner("cairn stack rename"), steps).await;
        // The first access after the crash, to one name or the other, finishes the rename.
        let first = if steps % 2 == 0 { "prod" } else { "dev" };
        let exists = backend.stack_exists(&stack(first)).await.unwrap();
        assert_eq!(
            exists,
            first == "prod",
            "killed after {steps} of {total} steps"
        );
        assert_renamed(
            &backend,
            &dir,
            &format!("killed after {steps} of {total} steps, then `{first}` was read"),
        )
        .await;
        if steps == total {
            break;
        }
        steps += 1;
    }
    // checkpoint, one kept version, two history records, a journal set aside, tags, logs,
    // three removals, the old name's lock, the marker
    assert_eq!(steps, 12);
}

#[tokio::test]
async fn while_a_rename_runs_both_names_are_busy_until_its_lock_is_released() {
    let dir = tempfile::tempdir().unwrap();
    let backend = backend(&dir);
    renamable(&backend).await;
    let (dev, prod) = (stack("dev"), stack("prod"));
    // The renamer is alive (its host is not this one, so nothing says it is gone), midway.
    rename_crashing_after(
        &backend,
        cairn_state::conformance::owner("cairn stack rename"),
        3,
    )
    .await;
    for name in [&dev, &prod] {
        assert!(
            matches!(
                backend.load_deployment(name).await,
                Err(BackendError::Locked { ref holder, .. }) if holder.command == "cairn stack rename"
            ),
            "{name}"
        );
        assert!(matches!(
            backend
                .lock_stack(name, cairn_state::conformance::owner("cairn up"))
                .await,
            Err(BackendError::Locked { .. })
        ));
        assert!(matches!(
            backend.history(name).await,
            Err(BackendError::Locked { .. })
        ));
        // Busy, not missing: commands go on to name the lock.
        assert!(backend.stack_exists(name).await.unwrap());
        assert_eq!(
            backend.lock_holder(name).await.unwrap().unwrap().command,
            "cairn stack rename"
        );
    }
    assert!(matches!(
        backend.create_stack(&prod).await,
        Err(BackendError::Locked { .. })
    ));
    let listed: Vec<String> = backend
        .list_stacks(Some("proj"))
        .await
        .unwrap()
        .into_iter()
        .map(|summary| summary.stack.name)
        .collect();
    assert_eq!(listed, ["dev"], "the new name is not a stack yet");

    // `cairn cancel` on either name releases the renamer's lock; the next access finishes.
    let released = backend.cancel(&prod).await.unwrap().unwrap();
    assert_eq!(released.command, "cairn stack rename");
    assert_renamed(&backend, &dir, "after cancel").await;
}

#[tokio::test]
async fn a_rename_does_not_take_over_a_stack_that_took_the_new_name() {
    let dir = tempfile::tempdir().unwrap();
    let backend = backend(&dir);
    renamable(&backend).await;
    let (dev, prod) = (stack("dev"), stack("prod"));
    // Killed right after writing its marker; meanwhile another `prod` came to be.
    rename_crashing_after(&backend, gone_owner("cairn stack rename"), 0).await;
    let (text, _) = files::encode_checkpoint(&Deployment::default()).unwrap();
    std::fs::write(dir.path().join(".pulumi/stacks/proj/prod.json"), text).unwrap();
    // The rename is abandoned whole: both stacks stay as they are.
    let kept = backend.load_deployment(&dev).await.unwrap().unwrap();
    assert_eq!(
        kept.resources[0].urn,
        "urn:pulumi:dev::proj::fake:index:Resource::a"
    );
    assert_eq!(backend.history(&dev).await.unwrap().len(), 2);
    let other = backend.load_deployment(&prod).await.unwrap().unwrap();
    assert!(other.resources.is_empty());
    assert!(
        !dir.path()
            .join(".pulumi/stacks/proj/.dev.renaming")
            .exists()
    );
}

/// However far a live rename has got, `stack ls` shows the stack once: under the old name
/// while the checkpoint is there, under the new name once it has moved.
#[tokio::test]
async fn a_rename_in_flight_lists_its_stack_exactly_once() {
    let mut steps = 0;
    loop {
        let dir = tempfile::tempdir().unwrap();
        let backend = backend(&dir);
        renamable(&backend).await;
        let total = rename_crashing_after(
            &backend,
            cairn_state::conformance::owner("cairn stack rename"),
            steps,
        )
        .await;
        let listed: Vec<String> = backend
            .list_stacks(Some("proj"))
            .await
            .unwrap()
            .into_iter()
            .map(|summary| summary.stack.name)
            .collect();
        assert_eq!(
            listed.len(),
            1,
            "after {steps} of {total} steps: {listed:?}"
        );
        if steps == total {
            break;
        }
        steps += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_queue_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let queue = crate::FileJobQueue::open(dir.path()).unwrap();
    cairn_state::jobs_conformance::run_all(std::sync::Arc::new(queue)).await;
}

/// Two processes' worth of queues on one directory (separate handles, as separate workers
/// have) never hand out one job twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_handles_on_one_directory_share_the_queue() {
    use cairn_state::jobs::JobQueue;
    let dir = tempfile::tempdir().unwrap();
    let first = crate::FileJobQueue::open(dir.path()).unwrap();
    let second = crate::FileJobQueue::open(dir.path()).unwrap();
    let spec = cairn_state::jobs_conformance::spec("shared", "true");
    let id = first.submit(spec).await.unwrap();
    let lease = std::time::Duration::from_secs(30);
    let (job, _) = second.claim("shared", "w2", lease).await.unwrap().unwrap();
    assert_eq!(job.id, id);
    assert!(first.claim("shared", "w1", lease).await.unwrap().is_none());
}

/// One damaged job file, or a damaged counter, does not stop the queue: scans pass the job
/// over, reading it says what is wrong, and numbers are never given twice.
#[tokio::test]
async fn a_damaged_job_file_does_not_stop_the_queue() {
    use cairn_state::jobs::JobQueue;
    let dir = tempfile::tempdir().unwrap();
    let queue = crate::FileJobQueue::open(dir.path()).unwrap();
    let spec = cairn_state::jobs_conformance::spec("damaged", "true");
    let first = queue.submit(spec.clone()).await.unwrap();
    let second = queue.submit(spec.clone()).await.unwrap();
    let jobs = dir.path().join(".pulumi/jobs");
    std::fs::write(jobs.join(format!("{first}.json")), "{garbage").unwrap();
    std::fs::write(jobs.join("next-id"), "not a number").unwrap();

    assert!(queue.job(first).await.is_err());
    let listed = queue.list(None, None).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, second);
    queue
        .rescue(std::time::Duration::from_secs(30))
        .await
        .unwrap();
    let lease = std::time::Duration::from_secs(30);
    let (claimed, _) = queue.claim("damaged", "w", lease).await.unwrap().unwrap();
    assert_eq!(claimed.id, second);
    let third = queue.submit(spec.clone()).await.unwrap();
    assert_eq!(third, second + 1);
    // A counter behind the jobs there are never reuses a number.
    std::fs::write(jobs.join("next-id"), "1").unwrap();
    let fourth = queue.submit(spec).await.unwrap();
    assert_eq!(fourth, third + 1);
}
