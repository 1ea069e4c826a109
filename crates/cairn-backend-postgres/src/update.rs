//! One update's writer, with group commit, and a held stack lock.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use cairn_state::backend::BackendResult;
use cairn_state::{
    BackendError, Deployment, JournalRecord, StackLock, UpdateInfo, UpdateResult, UpdateWriter,
};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::Client;

use crate::{Fence, KEPT_VERSIONS, Param, database_error, in_transaction, to_json, unix_now};

/// A batch of journal records waiting for the next commit, and who to tell when it is done.
type Queued = (Vec<String>, oneshot::Sender<Result<(), BatchError>>);

/// Why a batch was not committed; cloned to every append in the batch.
#[derive(Clone)]
enum BatchError {
    LockLost,
    Database(String),
}

/// Records one update of one stack. Appends from concurrent steps are committed together:
/// one INSERT per batch of whatever queued while the previous one ran, each caller returning
/// only once the batch holding its records is committed.
pub(crate) struct PostgresUpdateWriter {
    queue: mpsc::UnboundedSender<Queued>,
    committer: tokio::task::JoinHandle<()>,
    transactions: Arc<tokio::sync::Mutex<Client>>,
    /// The stack and the token of the lock every write is checked against.
    fence: Arc<Fence>,
    /// The in-progress history record, completed by `finish`.
    info: UpdateInfo,
    bytes_written: Arc<AtomicU64>,
}

impl PostgresUpdateWriter {
    pub(crate) fn new(
        client: Arc<Client>,
        transactions: Arc<tokio::sync::Mutex<Client>>,
        fence: Fence,
        info: UpdateInfo,
        bytes_written: Arc<AtomicU64>,
    ) -> PostgresUpdateWriter {
        let fence = Arc::new(fence);
        let (queue, receiver) = mpsc::unbounded_channel();
        let committer = tokio::spawn(commit_batches(client, fence.clone(), receiver));
        PostgresUpdateWriter {
            queue,
            committer,
            transactions,
            fence,
            info,
            bytes_written,
        }
    }
}

impl Drop for PostgresUpdateWriter {
    fn drop(&mut self) {
        self.committer.abort();
    }
}

async fn commit_batches(
    client: Arc<Client>,
    fence: Arc<Fence>,
    mut receiver: mpsc::UnboundedReceiver<Queued>,
) {
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        while let Ok(more) = receiver.try_recv() {
            batch.push(more);
        }
        let texts: Vec<&String> = batch.iter().flat_map(|(texts, _)| texts.iter()).collect();
        // One statement, so one commit, for the whole batch. It inserts only while the lock row
        // carries this update's token; `FOR SHARE` makes `cairn cancel`'s delete of that row
        // wait for the insert, or the insert see the row gone.
        let result = match client
            .execute(
                "INSERT INTO cairn_journal (stack_id, record) \
                 SELECT $1, unnest($2::text[]) WHERE EXISTS \
                 (SELECT 1 FROM cairn_locks WHERE stack_id = $1 AND token = $3 FOR SHARE)",
                &[&fence.stack_id, &texts, &fence.token],
            )
            .await
        {
            Ok(0) if !texts.is_empty() => Err(BatchError::LockLost),
            Ok(_) => Ok(()),
            Err(error) => Err(BatchError::Database(
                database_error("appending to the journal", error).to_string(),
            )),
        };
        for (_, done) in batch {
            let _ = done.send(result.clone());
        }
    }
}

#[async_trait]
impl UpdateWriter for PostgresUpdateWriter {
    async fn append(&self, records: Vec<JournalRecord>) -> BackendResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        let texts: Vec<String> = records.iter().map(to_json).collect::<BackendResult<_>>()?;
        let bytes: usize = texts.iter().map(String::len).sum();
        let (done, committed) = oneshot::channel();
        let lost = || BackendError::database("the journal writer stopped".to_owned());
        self.queue.send((texts, done)).map_err(|_| lost())?;
        // When this returns Ok, the records are durable; an error (connection lost) reaches the
        // engine, which stops, and the step stays a pending operation.
        committed
            .await
            .map_err(|_| lost())?
            .map_err(|error| match error {
                BatchError::LockLost => BackendError::LockLost(self.fence.stack.clone()),
                BatchError::Database(message) => BackendError::database(message),
            })?;
        self.bytes_written
            .fetch_add(bytes as u64, Ordering::Relaxed);
        Ok(())
    }

    async fn finish(
        self: Box<Self>,
        deployment: Deployment,
        result: UpdateResult,
        resource_changes: BTreeMap<String, usize>,
    ) -> BackendResult<()> {
        let transactions = self.transactions.clone();
        let fence = self.fence.clone();
        let stack_id = fence.stack_id;
        let bytes_written = self.bytes_written.clone();
        let mut info = self.info.clone();
        drop(self);
        let version = info.version as i64;
        info.result = result;
        info.end_time = unix_now();
        info.resource_changes = resource_changes;
        let checkpoint = crate::checkpoint_json(&deployment)?;
        let history = to_json(&info)?;
        let result_name = serde_json::to_value(result)
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_default();
        in_transaction(
            &transactions,
            Some(&fence),
            &[
                // The checkpoint being replaced is the state after the previous update.
                (
                    "INSERT INTO cairn_versions (stack_id, version, checkpoint) \
                     SELECT id, $2::bigint - 1, checkpoint FROM cairn_stacks \
                     WHERE id = $1 AND $2::bigint > 1 \
                     ON CONFLICT (stack_id, version) DO NOTHING",
                    vec![Param::Id(stack_id), Param::Int(version)],
                ),
                (
                    "DELETE FROM cairn_versions \
                     WHERE stack_id = $1 AND version <= $2::bigint - 1 - $3::bigint",
                    vec![
                        Param::Id(stack_id),
                        Param::Int(version),
                        Param::Int(KEPT_VERSIONS),
                    ],
                ),
                (
                    "UPDATE cairn_stacks SET checkpoint = $2 WHERE id = $1",
                    vec![Param::Id(stack_id), Param::Text(checkpoint.clone())],
                ),
                (
                    "DELETE FROM cairn_journal WHERE stack_id = $1",
                    vec![Param::Id(stack_id)],
                ),
                (
                    "UPDATE cairn_history SET result = $3, end_time = $4, info = $5 \
                     WHERE stack_id = $1 AND version = $2",
                    vec![
                        Param::Id(stack_id),
                        Param::Int(version),
                        Param::Text(result_name),
                        Param::Int(info.end_time),
                        Param::Text(history.clone()),
                    ],
                ),
            ],
        )
        .await?;
        bytes_written.fetch_add((checkpoint.len() + history.len()) as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// A held stack lock: its heartbeat runs until it is dropped, which deletes the row.
pub(crate) struct PostgresLock {
    pub(crate) client: Arc<Client>,
    pub(crate) stack_id: i64,
    pub(crate) token: String,
    pub(crate) heartbeat: tokio::task::JoinHandle<()>,
}

impl StackLock for PostgresLock {
    fn token(&self) -> &str {
        &self.token
    }
}

impl Drop for PostgresLock {
    fn drop(&mut self) {
        self.heartbeat.abort();
        let client = self.client.clone();
        let stack_id = self.stack_id;
        let token = std::mem::take(&mut self.token);
        let release = async move {
            let _ = client
                .execute(
                    "DELETE FROM cairn_locks WHERE stack_id = $1 AND token = $2",
                    &[&stack_id, &token],
                )
                .await;
        };
        // The release must be done before the process exits, or the next command would find
        // the stack locked; on a multi-threaded runtime, wait for it here.
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
            tokio::task::block_in_place(|| handle.block_on(release));
        } else {
            handle.spawn(release);
        }
    }
}
