//! The `Persister`: how the engine records each step through a backend's `UpdateWriter`,
//! converting engine states to the stored format (secrets sealed) on the way.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cairn_core::{PendingOperation, PendingOperationKind, ResourceState, Snapshot, Urn};
use cairn_secrets::Crypter;

use crate::backend::{BackendError, UpdateResult, UpdateWriter};
use crate::deployment::{encode_operation, encode_resource, encode_snapshot, operation_name};
use crate::journal::{JournalRecord, ResourceKey};

/// Errors while recording state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Secrets(#[from] cairn_secrets::SecretsError),
    #[error("malformed state: {0}")]
    Format(String),
    /// A value the state could not be read back with (see `cairn_core::MAX_VALUE_DEPTH`).
    #[error("`{urn}`: {kind} {error}")]
    TooDeep {
        urn: String,
        /// `input` or `output`.
        kind: &'static str,
        error: cairn_core::TooDeep,
    },
}

impl StateError {
    /// Whether the update lost its stack lock (`cairn cancel`): nothing more may be written.
    pub fn is_lock_lost(&self) -> bool {
        matches!(self, StateError::Backend(BackendError::LockLost(_)))
    }
}

/// Records one update's steps. Safe to share between the engine's step tasks.
pub struct Persister {
    writer: Box<dyn UpdateWriter>,
    crypter: Arc<dyn Crypter>,
    next_op: AtomicU64,
    /// Operations begun and not ended. If the update stops with some still open (a hard stop,
    /// a step that panicked), the final checkpoint keeps them as pending operations.
    open: Mutex<HashMap<u64, PendingOperation>>,
    /// When the update started, for the checkpoint's manifest.
    manifest_time: String,
}

impl Persister {
    pub fn new(writer: Box<dyn UpdateWriter>, crypter: Arc<dyn Crypter>) -> Persister {
        Persister {
            writer,
            crypter,
            next_op: AtomicU64::new(1),
            open: Mutex::new(HashMap::new()),
            manifest_time: rfc3339_now(),
        }
    }

    /// Durably records that an operation is about to start, and returns its op number.
    pub async fn begin(
        &self,
        kind: PendingOperationKind,
        resource: &ResourceState,
    ) -> Result<u64, StateError> {
        let op = self.next_op.fetch_add(1, Ordering::Relaxed);
        let record = JournalRecord::Begin {
            op,
            operation: operation_name(kind).to_owned(),
            resource: encode_resource(resource, self.crypter.as_ref())?,
        };
        self.writer.append(vec![record]).await?;
        self.lock_open().insert(
            op,
            PendingOperation {
                kind,
                resource: resource.clone(),
            },
        );
        Ok(op)
    }

    fn lock_open(&self) -> std::sync::MutexGuard<'_, HashMap<u64, PendingOperation>> {
        // The map stays consistent even if a holder panicked: each access is one insert/remove.
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Durably records an operation's outcome: the resource copy `removed` (URN and ID) left
    /// the state, and `added` joined it.
    pub async fn end(
        &self,
        op: u64,
        removed: Option<(&Urn, &str)>,
        added: Option<&ResourceState>,
    ) -> Result<(), StateError> {
        let record = JournalRecord::End {
            op,
            removed: removed.map(|(urn, id)| ResourceKey {
                urn: urn.to_string(),
                id: id.to_owned(),
            }),
            added: added
                .map(|resource| encode_resource(resource, self.crypter.as_ref()))
                .transpose()?,
        };
        self.writer.append(vec![record]).await?;
        self.lock_open().remove(&op);
        Ok(())
    }

    /// Writes the final checkpoint (with any operation still open as a pending operation) and
    /// the history record.
    pub async fn finish(
        self,
        snapshot: &Snapshot,
        result: UpdateResult,
        resource_changes: BTreeMap<String, usize>,
    ) -> Result<(), StateError> {
        let mut open: Vec<(u64, PendingOperation)> = self.lock_open().drain().collect();
        open.sort_by_key(|(op, _)| *op);
        // The open operations are encoded after the snapshot's own rather than added to a copy
        // of it: a copy of a large snapshot is as big as the stack's whole state.
        let mut deployment = encode_snapshot(snapshot, self.crypter.as_ref(), &self.manifest_time)?;
        for (_, operation) in &open {
            deployment
                .pending_operations
                .push(encode_operation(operation, self.crypter.as_ref())?);
        }
        self.writer
            .finish(deployment, result, resource_changes)
            .await?;
        Ok(())
    }
}

/// The current time as RFC 3339 (UTC, whole seconds).
pub fn rfc3339_now() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|duration| duration.as_secs() as i64)
        .unwrap_or(0);
    rfc3339(seconds)
}

/// Formats Unix seconds as RFC 3339 UTC.
pub fn rfc3339(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant): one timestamp does not justify a date crate.
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3600,
        (second_of_day % 3600) / 60,
        second_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::Deployment;

    /// Keeps what the persister writes, in memory.
    #[derive(Clone, Default)]
    struct MemoryWriter {
        records: Arc<Mutex<Vec<JournalRecord>>>,
        finished: Arc<Mutex<Option<(Deployment, UpdateResult)>>>,
    }

    #[async_trait::async_trait]
    impl UpdateWriter for MemoryWriter {
        async fn append(&self, records: Vec<JournalRecord>) -> Result<(), BackendError> {
            self.records.lock().unwrap().extend(records);
            Ok(())
        }

        async fn finish(
            self: Box<Self>,
            deployment: Deployment,
            result: UpdateResult,
            _resource_changes: BTreeMap<String, usize>,
        ) -> Result<(), BackendError> {
            *self.finished.lock().unwrap() = Some((deployment, result));
            Ok(())
        }
    }

    struct Reverse;

    impl Crypter for Reverse {
        fn encrypt(&self, plaintext: &str) -> Result<String, cairn_secrets::SecretsError> {
            Ok(plaintext.chars().rev().collect())
        }
        fn decrypt(&self, ciphertext: &str) -> Result<String, cairn_secrets::SecretsError> {
            Ok(ciphertext.chars().rev().collect())
        }
    }

    fn resource(name: &str, id: &str) -> ResourceState {
        ResourceState {
            urn: Urn::parse(&format!("urn:pulumi:dev::p::fake:index:Resource::{name}")).unwrap(),
            custom: true,
            id: id.to_owned(),
            type_: "fake:index:Resource".to_owned(),
            outputs: [(
                "pw".to_owned(),
                cairn_core::Value::string("hunter2").into_secret(),
            )]
            .into(),
            ..ResourceState::default()
        }
    }

    #[tokio::test]
    async fn records_begin_and_end_with_secrets_sealed() {
        let writer = MemoryWriter::default();
        let persister = Persister::new(Box::new(writer.clone()), Arc::new(Reverse));
        let op = persister
            .begin(PendingOperationKind::Updating, &resource("a", "1"))
            .await
            .unwrap();
        let urn = resource("a", "1").urn;
        persister
            .end(op, Some((&urn, "1")), Some(&resource("a", "1")))
            .await
            .unwrap();
        let records = writer.records.lock().unwrap().clone();
        assert_eq!(records.len(), 2);
        assert!(
            matches!(&records[0], JournalRecord::Begin { op: begun, operation, .. } if *begun == op && operation == "updating")
        );
        match &records[1] {
            JournalRecord::End {
                op: ended,
                removed,
                added,
            } => {
                assert_eq!(*ended, op);
                assert_eq!(removed.as_ref().unwrap().id, "1");
                assert_eq!(added.as_ref().unwrap().urn, urn.to_string());
            }
            other => panic!("expected an end record, got {other:?}"),
        }
        let text = serde_json::to_string(&records).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_steps_get_distinct_ops_and_open_ones_stay_pending() {
        let writer = MemoryWriter::default();
        let persister = Arc::new(Persister::new(Box::new(writer.clone()), Arc::new(Reverse)));
        let mut tasks = tokio::task::JoinSet::new();
        for index in 0..100 {
            let persister = persister.clone();
            tasks.spawn(async move {
                let name = format!("r{index}");
                let op = persister
                    .begin(PendingOperationKind::Creating, &resource(&name, ""))
                    .await
                    .unwrap();
                // Every tenth step never ends, as a hard stop would leave it.
                if index % 10 != 0 {
                    persister
                        .end(op, None, Some(&resource(&name, "id")))
                        .await
                        .unwrap();
                }
                op
            });
        }
        let mut ops = std::collections::HashSet::new();
        while let Some(joined) = tasks.join_next().await {
            assert!(ops.insert(joined.unwrap()));
        }
        assert_eq!(ops.len(), 100);
        let persister = Arc::into_inner(persister).unwrap();
        persister
            .finish(
                &Snapshot::default(),
                UpdateResult::Cancelled,
                BTreeMap::new(),
            )
            .await
            .unwrap();
        let (deployment, result) = writer.finished.lock().unwrap().clone().unwrap();
        assert_eq!(result, UpdateResult::Cancelled);
        assert_eq!(deployment.pending_operations.len(), 10);
        assert!(
            deployment
                .pending_operations
                .iter()
                .all(|operation| operation.type_ == "creating")
        );
    }

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
