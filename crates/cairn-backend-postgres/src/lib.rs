//! The `postgres://` backend: every stack of a team in one PostgreSQL database.
//!
//! A stack is a row with its latest checkpoint (Pulumi's deployment JSON). While an update runs,
//! each batch of journal records is one multi-row INSERT, committed before `append` returns:
//! that commit is what lets the engine call the provider. `finish` replaces the checkpoint,
//! deletes the journal, keeps the replaced checkpoint as a past version and completes the history
//! record in one transaction, so a crash at any instant leaves either the old checkpoint with its
//! journal (replayed at the next load: open steps become pending operations) or the new one.
//! The stack lock is a row (owner, token, heartbeat) inserted only when absent, so of two
//! machines exactly one gets it; it is never taken over, only removed by `cairn cancel`.

mod apps;
mod jobs;
mod schema;
#[cfg(feature = "test-cluster")]
pub mod test_cluster;
mod tls;
mod update;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use cairn_state::backend::BackendResult;
use cairn_state::{
    Backend, BackendError, Deployment, JournalRecord, LockOwner, LogEntry, StackLock, StackRef,
    StackSummary, UpdateInfo, UpdateKind, UpdateMetadata, UpdateResult, UpdateWriter,
};
use tokio_postgres::{Client, NoTls};

pub use apps::PostgresAppStore;
pub use jobs::PostgresJobQueue;

/// How many past checkpoints are kept per stack (`cairn stack export --version N`).
pub(crate) const KEPT_VERSIONS: i64 = 10;
/// How often a held lock's heartbeat is refreshed.
pub(crate) const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

/// A backend in a PostgreSQL database.
pub struct PostgresBackend {
    client: Arc<Client>,
    /// A second connection, for transactions.
    transactions: Arc<tokio::sync::Mutex<Client>>,
    url: String,
    bytes_written: Arc<AtomicU64>,
    /// How the job queue makes its `LISTEN`ing connection.
    listen: jobs::Connect,
}

impl PostgresBackend {
    /// Connects and brings the schema up to date. The URL is a libpq-style
    /// `postgres://user[:password]@host[:port]/database`; errors never repeat the password.
    pub async fn connect(url: &str) -> BackendResult<PostgresBackend> {
        PostgresBackend::connect_with_password(url, None).await
    }

    /// As `connect`, with the password given apart from the URL (`PGPASSWORD`), so it need
    /// not be stored with the URL.
    pub async fn connect_with_password(
        url: &str,
        password: Option<&str>,
    ) -> BackendResult<PostgresBackend> {
        PostgresBackend::connect_with(url, password, None).await
    }

    /// The app store in this backend's database (`cairn app`, `cairn pool`, `cairn node`).
    pub fn app_store(&self) -> PostgresAppStore {
        PostgresAppStore::new(self.client.clone(), self.transactions.clone())
    }

    /// The job queue in this backend's database (`cairn job`, `cairn worker`).
    pub fn job_queue(&self) -> PostgresJobQueue {
        PostgresJobQueue::new(self.client.clone(), self.listen.clone())
    }

    /// As `connect_with_password`; with `sslmode=require` in the URL the connection is TLS
    /// (rustls), verified against the system's roots and `root_cert` (`PGSSLROOTCERT`).
    pub async fn connect_with(
        url: &str,
        password: Option<&str>,
        root_cert: Option<&std::path::Path>,
    ) -> BackendResult<PostgresBackend> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|error| {
            BackendError::database(format!(
                "`{}` is not a PostgreSQL URL: {error}",
                redact(url)
            ))
        })?;
        if config.get_password().is_none()
            && let Some(password) = password
        {
            config.password(password);
        }
        let tls = match config.get_ssl_mode() {
            tokio_postgres::config::SslMode::Require => Some(tls::connector(root_cert)?),
            _ => None,
        };
        let connect = || async {
            let failed = |error| database_error(&format!("connecting to {}", redact(url)), error);
            // The connection task ends (and every later call fails) if the server goes away;
            // those failures surface as errors of the calls, never as silent loss.
            let client = match &tls {
                Some(tls) => {
                    let (client, connection) = config.connect(tls.clone()).await.map_err(failed)?;
                    tokio::spawn(connection);
                    client
                }
                None => {
                    let (client, connection) = config.connect(NoTls).await.map_err(failed)?;
                    tokio::spawn(connection);
                    client
                }
            };
            Ok::<Client, BackendError>(client)
        };
        let client = connect().await?;
        let transactions = connect().await?;
        schema::migrate(&client).await?;
        let listen = listening(config.clone(), tls.clone(), redact(url));
        Ok(PostgresBackend {
            client: Arc::new(client),
            transactions: Arc::new(tokio::sync::Mutex::new(transactions)),
            url: redact(url),
            bytes_written: Arc::new(AtomicU64::new(0)),
            listen,
        })
    }

    fn count(&self, texts: &[&str]) {
        let bytes: usize = texts.iter().map(|text| text.len()).sum();
        self.bytes_written
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    async fn stack_id(&self, stack: &StackRef) -> BackendResult<i64> {
        self.find_stack(stack)
            .await?
            .ok_or_else(|| BackendError::StackNotFound(stack.name.clone()))
    }

    /// The stack's row id. Every operation on an existing stack comes through here, so this is
    /// where the reference is validated (names go into queries as parameters, never into SQL,
    /// but every backend refuses the same names).
    async fn find_stack(&self, stack: &StackRef) -> BackendResult<Option<i64>> {
        stack.validate().map_err(BackendError::InvalidName)?;
        let row = self
            .client
            .query_opt(
                "SELECT id FROM cairn_stacks WHERE org = $1 AND project = $2 AND name = $3",
                &[&stack.organization, &stack.project, &stack.name],
            )
            .await
            .map_err(|error| database_error("finding the stack", error))?;
        Ok(row.map(|row| row.get(0)))
    }

    /// The checkpoint with the journal of an unfinished update replayed on top.
    async fn load(&self, stack_id: i64) -> BackendResult<Deployment> {
        let row = self
            .client
            .query_one(
                "SELECT checkpoint FROM cairn_stacks WHERE id = $1",
                &[&stack_id],
            )
            .await
            .map_err(|error| database_error("reading the checkpoint", error))?;
        let checkpoint: String = row.get(0);
        let deployment: Deployment = parse(&checkpoint, "the checkpoint")?;
        let rows = self
            .client
            .query(
                "SELECT record FROM cairn_journal WHERE stack_id = $1 ORDER BY id",
                &[&stack_id],
            )
            .await
            .map_err(|error| database_error("reading the journal", error))?;
        if rows.is_empty() {
            return Ok(deployment);
        }
        let records: Vec<JournalRecord> = rows
            .iter()
            .map(|row| parse::<JournalRecord>(row.get(0), "a journal record"))
            .collect::<BackendResult<_>>()?;
        Ok(cairn_state::journal::replay(Some(deployment), &records))
    }

    async fn read_history(&self, stack_id: i64) -> BackendResult<Vec<UpdateInfo>> {
        let rows = self
            .client
            .query(
                "SELECT info FROM cairn_history WHERE stack_id = $1 ORDER BY version DESC",
                &[&stack_id],
            )
            .await
            .map_err(|error| database_error("reading the history", error))?;
        rows.iter()
            .map(|row| parse::<UpdateInfo>(row.get(0), "a history record"))
            .collect()
    }

    async fn holder_of(&self, stack_id: i64) -> BackendResult<Option<LockOwner>> {
        let row = self
            .client
            .query_opt(
                "SELECT owner, heartbeat, extract(epoch from now())::bigint \
                 FROM cairn_locks WHERE stack_id = $1",
                &[&stack_id],
            )
            .await
            .map_err(|error| database_error("reading the stack's lock", error))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut owner: LockOwner = parse(row.get(0), "the lock's owner")?;
        let heartbeat: i64 = row.get(1);
        let now: i64 = row.get(2);
        // The holder's process is known to be gone only when it ran on this host; elsewhere a
        // late heartbeat is reported as such (`LockOwner`'s display), never as a death.
        // The database's clock, not this machine's, says how long ago the last heartbeat was.
        owner.heartbeat = unix_now() - (now - heartbeat);
        owner.is_stale = cairn_state::backend::is_gone_here(&owner);
        Ok(Some(owner))
    }
}

#[async_trait]
impl Backend for PostgresBackend {
    fn url(&self) -> &str {
        &self.url
    }

    async fn current_user(&self) -> BackendResult<String> {
        let row = self
            .client
            .query_one("SELECT current_user::text", &[])
            .await
            .map_err(|error| database_error("asking who is logged in", error))?;
        Ok(row.get(0))
    }

    async fn create_stack(&self, stack: &StackRef) -> BackendResult<()> {
        stack.validate().map_err(BackendError::InvalidName)?;
        let empty = Deployment {
            manifest: cairn_state::deployment::Manifest {
                time: cairn_state::persister::rfc3339_now(),
                magic: String::new(),
                version: String::new(),
            },
            ..Deployment::default()
        };
        let checkpoint = to_json(&empty)?;
        let inserted = self
            .client
            .execute(
                "INSERT INTO cairn_stacks (org, project, name, checkpoint) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (org, project, name) DO NOTHING",
                &[
                    &stack.organization,
                    &stack.project,
                    &stack.name,
                    &checkpoint,
                ],
            )
            .await
            .map_err(|error| database_error("creating the stack", error))?;
        if inserted == 0 {
            return Err(BackendError::StackAlreadyExists(stack.name.clone()));
        }
        self.count(&[&checkpoint]);
        Ok(())
    }

    async fn stack_exists(&self, stack: &StackRef) -> BackendResult<bool> {
        Ok(self.find_stack(stack).await?.is_some())
    }

    async fn list_stacks(&self, project: Option<&str>) -> BackendResult<Vec<StackSummary>> {
        let rows = self
            .client
            .query(
                "SELECT s.id, s.org, s.project, s.name, \
                   (SELECT max(h.end_time) FROM cairn_history h \
                     WHERE h.stack_id = s.id AND h.result <> 'in-progress' AND h.kind <> 'preview') \
                 FROM cairn_stacks s WHERE $1::text IS NULL OR s.project = $1 \
                 ORDER BY s.project, s.name",
                &[&project],
            )
            .await
            .map_err(|error| database_error("listing stacks", error))?;
        let mut summaries = Vec::new();
        for row in rows {
            let id: i64 = row.get(0);
            let (resource_count, problem) = match self.load(id).await {
                Ok(deployment) => (Some(deployment.count_resources()), None),
                Err(error) => (None, Some(error.to_string())),
            };
            summaries.push(StackSummary {
                stack: StackRef {
                    organization: row.get(1),
                    project: row.get(2),
                    name: row.get(3),
                },
                last_update: row.get::<_, Option<i64>>(4),
                resource_count,
                problem,
            });
        }
        Ok(summaries)
    }

    async fn remove_stack(
        &self,
        stack: &StackRef,
        force: bool,
        lock: &dyn StackLock,
    ) -> BackendResult<()> {
        let id = self.stack_id(stack).await?;
        if !force {
            let count = self.load(id).await?.count_resources_and_pending();
            if count > 0 {
                return Err(BackendError::StackHasResources {
                    stack: stack.name.clone(),
                    count,
                });
            }
        }
        // Journal, history, versions, tags, logs and lock go with it (ON DELETE CASCADE), only
        // while `lock` is the stack's lock: checked in the same statement.
        let removed = self
            .client
            .execute(
                "DELETE FROM cairn_stacks WHERE id = $1 AND EXISTS \
                 (SELECT 1 FROM cairn_locks WHERE stack_id = $1 AND token = $2)",
                &[&id, &lock.token()],
            )
            .await
            .map_err(|error| database_error("removing the stack", error))?;
        if removed == 0 {
            return Err(BackendError::LockLost(stack.name.clone()));
        }
        Ok(())
    }

    async fn load_deployment(&self, stack: &StackRef) -> BackendResult<Option<Deployment>> {
        let Some(id) = self.find_stack(stack).await? else {
            return Ok(None);
        };
        Ok(Some(self.load(id).await?))
    }

    async fn begin_update(
        &self,
        stack: &StackRef,
        kind: UpdateKind,
        metadata: UpdateMetadata,
        lock: &dyn StackLock,
    ) -> BackendResult<Box<dyn UpdateWriter>> {
        let id = self.stack_id(stack).await?;
        let fence = Fence {
            stack: stack.name.clone(),
            stack_id: id,
            token: lock.token().to_owned(),
        };
        fence.check(&self.client).await?;
        // A journal left by a crashed update is folded into the checkpoint first, so this
        // update's journal starts empty and applies to the checkpoint as it is now.
        let has_journal = self
            .client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM cairn_journal WHERE stack_id = $1)",
                &[&id],
            )
            .await
            .map_err(|error| database_error("reading the journal", error))?
            .get::<_, bool>(0);
        if has_journal {
            let folded = checkpoint_json(&self.load(id).await?)?;
            in_transaction(
                &self.transactions,
                Some(&fence),
                &[
                    (
                        "UPDATE cairn_stacks SET checkpoint = $2 WHERE id = $1",
                        vec![Param::Id(id), Param::Text(folded.clone())],
                    ),
                    (
                        "DELETE FROM cairn_journal WHERE stack_id = $1",
                        vec![Param::Id(id)],
                    ),
                ],
            )
            .await?;
            self.count(&[&folded]);
        }
        let version: i64 = self
            .client
            .query_one(
                "SELECT coalesce(max(version), 0) + 1 FROM cairn_history WHERE stack_id = $1",
                &[&id],
            )
            .await
            .map_err(|error| database_error("numbering the update", error))?
            .get(0);
        let info = UpdateInfo {
            kind,
            start_time: unix_now(),
            message: metadata.message,
            environment: metadata.environment,
            result: UpdateResult::InProgress,
            end_time: 0,
            resource_changes: BTreeMap::new(),
            version: version as u64,
        };
        let text = to_json(&info)?;
        self.client
            .execute(
                "INSERT INTO cairn_history (stack_id, version, kind, result, end_time, info) \
                 VALUES ($1, $2, $3, 'in-progress', 0, $4)",
                &[&id, &version, &kind_name(kind), &text],
            )
            .await
            .map_err(|error| database_error("recording the update in history", error))?;
        self.count(&[&text]);
        Ok(Box::new(update::PostgresUpdateWriter::new(
            self.client.clone(),
            self.transactions.clone(),
            fence,
            info,
            self.bytes_written.clone(),
        )))
    }

    async fn history(&self, stack: &StackRef) -> BackendResult<Vec<UpdateInfo>> {
        let id = self.stack_id(stack).await?;
        self.read_history(id).await
    }

    async fn load_version(
        &self,
        stack: &StackRef,
        version: u64,
    ) -> BackendResult<Option<Deployment>> {
        let id = self.stack_id(stack).await?;
        let row = self
            .client
            .query_opt(
                "SELECT checkpoint FROM cairn_versions WHERE stack_id = $1 AND version = $2",
                &[&id, &(version as i64)],
            )
            .await
            .map_err(|error| database_error("reading a past checkpoint", error))?;
        if let Some(row) = row {
            return Ok(Some(parse(row.get(0), "a past checkpoint")?));
        }
        // The newest version is the current checkpoint itself.
        let newest = self
            .read_history(id)
            .await?
            .first()
            .map(|update| update.version);
        if newest == Some(version) {
            return Ok(Some(self.load(id).await?));
        }
        Ok(None)
    }

    async fn import_deployment(
        &self,
        stack: &StackRef,
        deployment: Deployment,
    ) -> BackendResult<()> {
        let id = self.stack_id(stack).await?;
        let text = checkpoint_json(&deployment)?;
        in_transaction(
            &self.transactions,
            None,
            &[
                (
                    "UPDATE cairn_stacks SET checkpoint = $2 WHERE id = $1",
                    vec![Param::Id(id), Param::Text(text.clone())],
                ),
                // The imported state replaces whatever an interrupted update left behind.
                (
                    "DELETE FROM cairn_journal WHERE stack_id = $1",
                    vec![Param::Id(id)],
                ),
            ],
        )
        .await?;
        self.count(&[&text]);
        Ok(())
    }

    async fn lock_stack(
        &self,
        stack: &StackRef,
        owner: LockOwner,
    ) -> BackendResult<Box<dyn StackLock>> {
        let id = self.stack_id(stack).await?;
        let token = uuid::Uuid::new_v4().to_string();
        let owner_text = to_json(&owner)?;
        let inserted = self
            .client
            .execute(
                "INSERT INTO cairn_locks (stack_id, token, owner, heartbeat) \
                 VALUES ($1, $2, $3, extract(epoch from now())::bigint) \
                 ON CONFLICT (stack_id) DO NOTHING",
                &[&id, &token, &owner_text],
            )
            .await
            .map_err(|error| database_error("taking the stack's lock", error))?;
        if inserted == 0 {
            let holder = self.holder_of(id).await?.unwrap_or(owner);
            return Err(BackendError::Locked {
                stack: stack.name.clone(),
                holder,
            });
        }
        let client = self.client.clone();
        let heartbeat_token = token.clone();
        let heartbeat = tokio::spawn(async move {
            loop {
                tokio::time::sleep(HEARTBEAT_INTERVAL).await;
                let _ = client
                    .execute(
                        "UPDATE cairn_locks SET heartbeat = extract(epoch from now())::bigint \
                         WHERE stack_id = $1 AND token = $2",
                        &[&id, &heartbeat_token],
                    )
                    .await;
            }
        });
        Ok(Box::new(update::PostgresLock {
            client: self.client.clone(),
            stack_id: id,
            token,
            heartbeat,
        }))
    }

    async fn lock_holder(&self, stack: &StackRef) -> BackendResult<Option<LockOwner>> {
        let id = self.stack_id(stack).await?;
        self.holder_of(id).await
    }

    async fn cancel(&self, stack: &StackRef) -> BackendResult<Option<LockOwner>> {
        let id = self.stack_id(stack).await?;
        let holder = self.holder_of(id).await?;
        self.client
            .execute("DELETE FROM cairn_locks WHERE stack_id = $1", &[&id])
            .await
            .map_err(|error| database_error("releasing the stack's lock", error))?;
        // The update still in progress is the one whose process died or hung.
        let row = self
            .client
            .query_opt(
                "SELECT version, info FROM cairn_history \
                 WHERE stack_id = $1 AND result = 'in-progress' ORDER BY version DESC LIMIT 1",
                &[&id],
            )
            .await
            .map_err(|error| database_error("reading the history", error))?;
        if let Some(row) = row {
            let version: i64 = row.get(0);
            let mut info: UpdateInfo = parse(row.get(1), "a history record")?;
            info.result = UpdateResult::Cancelled;
            info.end_time = unix_now();
            let text = to_json(&info)?;
            self.client
                .execute(
                    "UPDATE cairn_history SET result = 'cancelled', end_time = $3, info = $4 \
                     WHERE stack_id = $1 AND version = $2",
                    &[&id, &version, &info.end_time, &text],
                )
                .await
                .map_err(|error| database_error("marking the update cancelled", error))?;
        }
        Ok(holder)
    }

    async fn rename_stack(
        &self,
        stack: &StackRef,
        new_name: &str,
        lock: &dyn StackLock,
    ) -> BackendResult<()> {
        cairn_state::stack_ref::validate_stack_name(new_name).map_err(BackendError::InvalidName)?;
        let id = self.stack_id(stack).await?;
        let new = StackRef {
            name: new_name.to_owned(),
            ..stack.clone()
        };
        if self.find_stack(&new).await?.is_some() {
            return Err(BackendError::StackAlreadyExists(new.name));
        }
        let fence = Fence {
            stack: stack.name.clone(),
            stack_id: id,
            token: lock.token().to_owned(),
        };
        let journal_rows: i64 = self
            .client
            .query_one(
                "SELECT count(*) FROM cairn_journal WHERE stack_id = $1",
                &[&id],
            )
            .await
            .map_err(|error| database_error("reading the journal", error))?
            .get(0);
        if journal_rows > 0 {
            return Err(BackendError::UpdateInProgress(stack.name.clone()));
        }
        let renamed =
            cairn_state::backend::rename_in_deployment(&self.load(id).await?, stack, new_name)?;
        let mut statements = vec![(
            "UPDATE cairn_stacks SET name = $2, checkpoint = $3 WHERE id = $1",
            vec![
                Param::Id(id),
                Param::Text(new_name.to_owned()),
                Param::Text(to_json(&renamed)?),
            ],
        )];
        let versions = self
            .client
            .query(
                "SELECT version, checkpoint FROM cairn_versions WHERE stack_id = $1",
                &[&id],
            )
            .await
            .map_err(|error| database_error("reading past checkpoints", error))?;
        for row in versions {
            let version: i64 = row.get(0);
            let deployment: Deployment = parse(row.get(1), "a past checkpoint")?;
            let renamed = cairn_state::backend::rename_in_deployment(&deployment, stack, new_name)?;
            statements.push((
                "UPDATE cairn_versions SET checkpoint = $3 WHERE stack_id = $1 AND version = $2",
                vec![
                    Param::Id(id),
                    Param::Int(version),
                    Param::Text(to_json(&renamed)?),
                ],
            ));
        }
        // Under the lock, checked in the same transaction: no update can start in between.
        in_transaction(&self.transactions, Some(&fence), &statements).await
    }

    async fn stack_tags(&self, stack: &StackRef) -> BackendResult<BTreeMap<String, String>> {
        let id = self.stack_id(stack).await?;
        let rows = self
            .client
            .query(
                "SELECT tag, value FROM cairn_tags WHERE stack_id = $1",
                &[&id],
            )
            .await
            .map_err(|error| database_error("reading tags", error))?;
        Ok(rows
            .iter()
            .map(|row| (row.get::<_, String>(0), row.get::<_, String>(1)))
            .collect())
    }

    async fn set_stack_tag(&self, stack: &StackRef, name: &str, value: &str) -> BackendResult<()> {
        cairn_state::validate_tag(name, value)?;
        let id = self.stack_id(stack).await?;
        self.client
            .execute(
                "INSERT INTO cairn_tags (stack_id, tag, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (stack_id, tag) DO UPDATE SET value = excluded.value",
                &[&id, &name, &value],
            )
            .await
            .map_err(|error| database_error("setting a tag", error))?;
        self.count(&[name, value]);
        Ok(())
    }

    async fn remove_stack_tag(&self, stack: &StackRef, name: &str) -> BackendResult<()> {
        let id = self.stack_id(stack).await?;
        self.client
            .execute(
                "DELETE FROM cairn_tags WHERE stack_id = $1 AND tag = $2",
                &[&id, &name],
            )
            .await
            .map_err(|error| database_error("removing a tag", error))?;
        Ok(())
    }

    async fn append_logs(&self, stack: &StackRef, entries: Vec<LogEntry>) -> BackendResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let id = self.stack_id(stack).await?;
        let text = to_json(&entries)?;
        // One statement for the batch: the rows come from the JSON array.
        self.client
            .execute(
                "INSERT INTO cairn_logs (stack_id, ts, urn, severity, message) \
                 SELECT $1, (e->>'timestampMs')::bigint, e->>'urn', e->>'severity', e->>'message' \
                 FROM jsonb_array_elements($2::text::jsonb) AS e",
                &[&id, &text],
            )
            .await
            .map_err(|error| database_error("keeping log lines", error))?;
        self.count(&[&text]);
        Ok(())
    }

    async fn logs(
        &self,
        stack: &StackRef,
        since_ms: Option<i64>,
        urn: Option<&str>,
    ) -> BackendResult<Vec<LogEntry>> {
        let id = self.stack_id(stack).await?;
        let rows = self
            .client
            .query(
                "SELECT ts, urn, severity, message FROM cairn_logs \
                 WHERE stack_id = $1 AND ($2::bigint IS NULL OR ts >= $2) \
                   AND ($3::text IS NULL OR urn = $3) \
                 ORDER BY ts, id",
                &[&id, &since_ms, &urn],
            )
            .await
            .map_err(|error| database_error("reading log lines", error))?;
        Ok(rows
            .iter()
            .map(|row| LogEntry {
                timestamp_ms: row.get(0),
                urn: row.get(1),
                severity: row.get(2),
                message: row.get(3),
            })
            .collect())
    }

    fn bytes_written(&self) -> u64 {
        self.bytes_written.load(Ordering::Relaxed)
    }
}

/// A parameter of a statement run in a transaction.
pub(crate) enum Param {
    Id(i64),
    Int(i64),
    Text(String),
}

/// The lock an update's writes are made under: its stack and its fencing token.
pub(crate) struct Fence {
    pub(crate) stack: String,
    pub(crate) stack_id: i64,
    pub(crate) token: String,
}

impl Fence {
    /// Fails with `LockLost` unless the stack's lock row still carries this token.
    async fn check(&self, client: &Client) -> BackendResult<()> {
        let held = client
            .query_opt(
                "SELECT 1 FROM cairn_locks WHERE stack_id = $1 AND token = $2",
                &[&self.stack_id, &self.token],
            )
            .await
            .map_err(|error| database_error("checking the stack's lock", error))?;
        match held {
            Some(_) => Ok(()),
            None => Err(BackendError::LockLost(self.stack.clone())),
        }
    }
}

/// Runs statements in one transaction, on the connection kept for transactions (the shared
/// one cannot give the `&mut` a transaction needs, and other tasks' statements must not land
/// inside it). With a `fence`, the transaction first locks the stack's lock row, and writes
/// nothing unless it still carries the fence's token: `cairn cancel`'s delete of that row
/// waits for the transaction, or the transaction sees the row gone.
pub(crate) async fn in_transaction(
    connection: &tokio::sync::Mutex<Client>,
    fence: Option<&Fence>,
    statements: &[(&str, Vec<Param>)],
) -> BackendResult<()> {
    let mut client = connection.lock().await;
    let transaction = client
        .transaction()
        .await
        .map_err(|error| database_error("starting a transaction", error))?;
    if let Some(fence) = fence {
        let held = transaction
            .query_opt(
                "SELECT 1 FROM cairn_locks WHERE stack_id = $1 AND token = $2 FOR SHARE",
                &[&fence.stack_id, &fence.token],
            )
            .await
            .map_err(|error| database_error("checking the stack's lock", error))?;
        if held.is_none() {
            // Dropping the transaction rolls it back.
            return Err(BackendError::LockLost(fence.stack.clone()));
        }
    }
    for (sql, params) in statements {
        let values: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>> = params
            .iter()
            .map(
                |param| -> Box<dyn tokio_postgres::types::ToSql + Sync + Send> {
                    match param {
                        Param::Id(value) | Param::Int(value) => Box::new(*value),
                        Param::Text(text) => Box::new(text.clone()),
                    }
                },
            )
            .collect();
        let references: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = values
            .iter()
            .map(|value| value.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        transaction
            .execute(*sql, &references)
            .await
            .map_err(|error| database_error("writing the stack", error))?;
    }
    transaction
        .commit()
        .await
        .map_err(|error| database_error("committing", error))
}

fn kind_name(kind: UpdateKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A checkpoint's text, refused when it could not be read back (`Deployment::check_depth`).
pub(crate) fn checkpoint_json(deployment: &Deployment) -> BackendResult<String> {
    deployment.check_depth()?;
    to_json(deployment)
}

pub(crate) fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> BackendResult<String> {
    serde_json::to_string(value)
        .map_err(|error| BackendError::format_from(error.to_string(), error))
}

fn parse<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> BackendResult<T> {
    serde_json::from_str(text).map_err(|error| {
        BackendError::format_from(
            format!("{what} in the database is malformed: {error}"),
            error,
        )
    })
}

/// Connects for `LISTEN cairn_jobs`, forwarding the notifications from a task of its own.
fn listening(
    config: tokio_postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    url: String,
) -> jobs::Connect {
    Arc::new(move || {
        let (config, tls, url) = (config.clone(), tls.clone(), url.clone());
        Box::pin(async move {
            let failed = |error: tokio_postgres::Error| {
                cairn_state::jobs::JobError::Storage(format!("listening on {url}: {error}"))
            };
            let (sender, _) = tokio::sync::broadcast::channel(1024);
            let client = match tls {
                Some(tls) => {
                    let (client, connection) = config.connect(tls).await.map_err(failed)?;
                    tokio::spawn(jobs::forward_notifications(connection, sender.clone()));
                    client
                }
                None => {
                    let (client, connection) = config.connect(NoTls).await.map_err(failed)?;
                    tokio::spawn(jobs::forward_notifications(connection, sender.clone()));
                    client
                }
            };
            client
                .batch_execute("LISTEN cairn_jobs")
                .await
                .map_err(failed)?;
            Ok((client, sender))
        })
    })
}

pub(crate) fn database_error(action: &str, error: tokio_postgres::Error) -> BackendError {
    // The driver's messages name hosts and databases, never the password.
    let detail = error
        .as_db_error()
        .map(|db| db.message().to_owned())
        .unwrap_or_else(|| error.to_string());
    BackendError::database_from(format!("{action}: {detail}"), error)
}

/// The URL with any password replaced by `***`, for messages and `whoami`: the one in the user
/// info (`postgres://user:***@host/db`) and a `password=` query parameter, which libpq also
/// accepts.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // The user info ends at the last `@` before the query, so that a password holding a raw `@`
    // or `/` is hidden whole; a raw `?` in a password puts every `@` after it, so then it ends
    // at the first `@`.
    let before_query = rest.split_once('?').map_or(rest, |(before, _)| before);
    let at = before_query.rfind('@').or_else(|| rest.find('@'));
    let (authority, tail) = match at {
        Some(at) => {
            let credentials = &rest[..at];
            let user = match credentials.split_once(':') {
                Some((user, _password)) => format!("{user}:***"),
                None => credentials.to_owned(),
            };
            (format!("{user}@"), &rest[at + 1..])
        }
        None => (String::new(), rest),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let pairs: Vec<&str> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some(("password", _)) => "password=***",
                    _ => pair,
                })
                .collect();
            format!("{path}?{}", pairs.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|duration| duration.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod redact_tests {
    use super::redact;

    #[test]
    fn redact_hides_every_form_of_password() {
        for (url, redacted) in [
            (
                "postgres://user:hunter2@db:5432/cairn",
                "postgres://user:***@db:5432/cairn",
            ),
            (
                "postgresql://user:p@ss/w0rd@db/cairn?sslmode=require",
                "postgresql://user:***@db/cairn?sslmode=require",
            ),
            (
                "postgres://user:pa?ss@db/cairn",
                "postgres://user:***@db/cairn",
            ),
            (
                "postgres://user@db/cairn?password=hunter2&sslmode=require",
                "postgres://user@db/cairn?password=***&sslmode=require",
            ),
            (
                "postgres://user@db/cairn?options=a@b",
                "postgres://user@db/cairn?options=a@b",
            ),
            ("postgres://db/cairn", "postgres://db/cairn"),
            ("file://~/.cairn", "file://~/.cairn"),
        ] {
            assert_eq!(redact(url), redacted, "{url}");
        }
    }
}
