//! The job queue of a `postgres://` backend, shared by workers on many machines. A job is a row
//! of `cairn_jobs`; a claim takes the oldest queued row of its queue with `FOR UPDATE SKIP
//! LOCKED` (two workers never wait on, or take, the same row); every write of a worker is one
//! statement fenced by `attempt = $n AND state IN ('received', 'started')`, so a worker whose
//! job was rescued, cancelled or restarted changes nothing. Submits and requeues `NOTIFY
//! cairn_jobs` with the queue's name, which idle workers `LISTEN` for on a connection of their
//! own. Times are the database's clock, so machines with skewed clocks agree on leases.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cairn_state::jobs::{
    Attempt, Heartbeat, Job, JobError, JobId, JobQueue, JobResult, JobSpec, JobState, Outcome,
    Rescued, validate_queue_name,
};
use tokio::sync::{Mutex, RwLock, broadcast};
use tokio_postgres::{Client, Row, Statement};

/// The database's clock, in Unix milliseconds.
const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";
const CHANNEL: &str = "cairn_jobs";
const COLUMNS: &str = "id, spec, state, attempt, infra_failures, worker, lease_expires_ms, \
     created_ms, started_ms, finished_ms, exit_code, reason, cancel_requested";
const CLAIMED: &str = "state IN ('received', 'started')";

/// Makes a connection that `LISTEN`s (with the backend's own settings).
pub(crate) type Connect = Arc<
    dyn Fn() -> Pin<Box<dyn Future<Output = JobResult<(Client, Listener)>> + Send>> + Send + Sync,
>;

/// A listening connection's notifications: the names of queues that may have work.
pub(crate) type Listener = broadcast::Sender<String>;

pub struct PostgresJobQueue {
    /// Replaced by a new connection when the server closed it (a restart, a cut network): a
    /// worker outlives its database's restarts.
    connection: RwLock<Arc<Connection>>,
    /// A connection whose commits do not wait for the disk (`synchronous_commit = off`), for
    /// the one write whose loss in a database crash costs nothing: `start`. The claim before it
    /// and the end after it are durable, and fenced by the attempt either way; a lost `start`
    /// leaves the job `received` under the same attempt, which its worker's heartbeats and end
    /// still match. Made on first use, and again once closed.
    relaxed: RwLock<Option<Arc<Connection>>>,
    connect: Connect,
    /// The `LISTEN`ing connection, made by the first wait (and again once closed).
    listener: Mutex<Option<(Client, Listener)>>,
}

/// A connection and the statements prepared on it. A worker runs the same few statements for
/// every job: prepared once, each costs the server no parsing or planning and one round trip
/// instead of two.
struct Connection {
    client: Arc<Client>,
    statements: std::sync::Mutex<HashMap<String, Statement>>,
}

impl Connection {
    fn new(client: Arc<Client>) -> Connection {
        Connection {
            client,
            statements: std::sync::Mutex::default(),
        }
    }

    async fn statement(&self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        let cached = self
            .statements
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(sql)
            .cloned();
        if let Some(statement) = cached {
            return Ok(statement);
        }
        let statement = self.client.prepare(sql).await?;
        self.statements
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        let statement = self.statement(sql).await?;
        self.client.query(&statement, params).await
    }

    async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Option<Row>, tokio_postgres::Error> {
        let statement = self.statement(sql).await?;
        self.client.query_opt(&statement, params).await
    }

    async fn query_one(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Row, tokio_postgres::Error> {
        let statement = self.statement(sql).await?;
        self.client.query_one(&statement, params).await
    }
}

fn failed(action: &str) -> impl Fn(tokio_postgres::Error) -> JobError + '_ {
    move |error| {
        let detail = error
            .as_db_error()
            .map(|db| db.message().to_owned())
            .unwrap_or_else(|| error.to_string());
        JobError::Storage(format!("{action}: {detail}"))
    }
}

fn job_of(row: &Row) -> JobResult<Job> {
    let spec: String = row.get(1);
    let state: String = row.get(2);
    Ok(Job {
        id: row.get::<_, i64>(0) as JobId,
        spec: serde_json::from_str(&spec)
            .map_err(|error| JobError::Storage(format!("reading a job's spec: {error}")))?,
        state: JobState::parse(&state)
            .ok_or_else(|| JobError::Storage(format!("a job has the unknown state `{state}`")))?,
        attempt: row.get::<_, i32>(3) as u32,
        infra_failures: row.get::<_, i32>(4) as u32,
        worker: row.get(5),
        lease_expires_ms: row.get(6),
        created_ms: row.get(7),
        started_ms: row.get(8),
        finished_ms: row.get(9),
        exit_code: row.get(10),
        reason: row.get(11),
        cancel_requested: row.get(12),
    })
}

fn id_param(id: JobId) -> i64 {
    id as i64
}

/// The SET clause that requeues a claimed job, or ends it when it was asked to stop or its
/// retries are spent (`$inc` is 1 for an infrastructure failure, 0 for a drain; `$reason`
/// says why). Every expression reads the row as it was before the update.
fn requeue_set(inc: &str, reason: &str) -> String {
    let ends = format!("(cancel_requested OR infra_failures + {inc} > retries)");
    format!(
        "infra_failures = infra_failures + {inc}, worker = NULL, lease_expires_ms = NULL, \
         state = CASE WHEN cancel_requested THEN 'cancelled' \
                      WHEN infra_failures + {inc} > retries THEN 'errored' ELSE 'queued' END, \
         finished_ms = CASE WHEN {ends} THEN {NOW_MS} ELSE NULL END, \
         started_ms = CASE WHEN {ends} THEN started_ms ELSE NULL END, \
         reason = CASE WHEN cancel_requested THEN 'cancelled' \
                       WHEN infra_failures + {inc} > retries THEN {reason} || '; no retries left' \
                       ELSE {reason} END"
    )
}

impl PostgresJobQueue {
    pub(crate) fn new(client: Arc<Client>, connect: Connect) -> PostgresJobQueue {
        PostgresJobQueue {
            connection: RwLock::new(Arc::new(Connection::new(client))),
            relaxed: RwLock::new(None),
            connect,
            listener: Mutex::new(None),
        }
    }

    /// The connection, made anew when the server has closed it. The statement that found it
    /// closed failed; the next one runs on the new connection.
    async fn client(&self) -> JobResult<Arc<Connection>> {
        {
            let connection = self.connection.read().await;
            if !connection.client.is_closed() {
                return Ok(connection.clone());
            }
        }
        let mut connection = self.connection.write().await;
        if connection.client.is_closed() {
            let (fresh, _notifications) = (self.connect)().await?;
            *connection = Arc::new(Connection::new(Arc::new(fresh)));
        }
        Ok(connection.clone())
    }

    /// The relaxed connection (see `relaxed`).
    async fn relaxed_client(&self) -> JobResult<Arc<Connection>> {
        {
            let relaxed = self.relaxed.read().await;
            if let Some(connection) = relaxed.as_ref()
                && !connection.client.is_closed()
            {
                return Ok(connection.clone());
            }
        }
        let mut relaxed = self.relaxed.write().await;
        if let Some(connection) = relaxed.as_ref()
            && !connection.client.is_closed()
        {
            return Ok(connection.clone());
        }
        let (client, _notifications) = (self.connect)().await?;
        client
            .batch_execute("SET synchronous_commit = off")
            .await
            .map_err(failed("setting up a connection"))?;
        let connection = Arc::new(Connection::new(Arc::new(client)));
        *relaxed = Some(connection.clone());
        Ok(connection)
    }

    /// Why a fenced write changed no row: the job is gone, or the attempt is not current.
    async fn refusal(&self, attempt: Attempt) -> JobError {
        match self.job(attempt.job).await {
            Ok(None) => JobError::NotFound(attempt.job),
            Ok(Some(_)) => JobError::Stale {
                job: attempt.job,
                number: attempt.number,
            },
            Err(error) => error,
        }
    }

    /// Runs a statement fenced by the attempt on `connection`; one row changed, or the
    /// refusal.
    async fn fenced_on(
        &self,
        connection: Arc<Connection>,
        action: &str,
        sql: &str,
        attempt: Attempt,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> JobResult<Row> {
        let job = id_param(attempt.job);
        let number = attempt.number as i32;
        let mut all: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&job, &number];
        all.extend_from_slice(params);
        let row = connection
            .query_opt(sql, &all)
            .await
            .map_err(failed(action))?;
        match row {
            Some(row) => Ok(row),
            None => Err(self.refusal(attempt).await),
        }
    }

    /// Runs a durable statement fenced by the attempt.
    async fn fenced(
        &self,
        action: &str,
        sql: &str,
        attempt: Attempt,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> JobResult<Row> {
        let connection = self.client().await?;
        self.fenced_on(connection, action, sql, attempt, params)
            .await
    }
}

#[async_trait]
impl JobQueue for PostgresJobQueue {
    async fn submit(&self, spec: JobSpec) -> JobResult<JobId> {
        validate_queue_name(&spec.queue)?;
        let text = serde_json::to_string(&spec)
            .map_err(|error| JobError::Storage(format!("writing a job's spec: {error}")))?;
        let sql = format!(
            "WITH job AS (
                INSERT INTO cairn_jobs (queue, spec, state, timeout_ms, retries, created_ms)
                VALUES ($1, $2, 'queued', $3, $4, {NOW_MS}) RETURNING id)
             SELECT id, pg_notify('{CHANNEL}', $1) IS NULL FROM job"
        );
        let timeout_ms = (spec.timeout_seconds.saturating_mul(1000)).min(i64::MAX as u64) as i64;
        let row = self
            .client()
            .await?
            .query_one(
                &sql,
                &[&spec.queue, &text, &timeout_ms, &(spec.retries as i32)],
            )
            .await
            .map_err(failed("submitting a job"))?;
        Ok(row.get::<_, i64>(0) as JobId)
    }

    async fn claim_many(
        &self,
        queue: &str,
        worker: &str,
        lease: Duration,
        max: usize,
        with_secrets: bool,
    ) -> JobResult<Vec<(Job, Attempt)>> {
        validate_queue_name(queue)?;
        let sql = format!(
            "UPDATE cairn_jobs SET state = 'received', attempt = attempt + 1, worker = $2,
                 lease_expires_ms = {NOW_MS} + $3
             WHERE state = 'queued' AND id IN (
                 SELECT id FROM cairn_jobs WHERE queue = $1 AND state = 'queued'
                     AND ($5 OR NOT (spec::jsonb ? 'secretEnv'))
                 ORDER BY id FOR UPDATE SKIP LOCKED LIMIT $4)
             RETURNING {COLUMNS}"
        );
        let lease_ms = lease.as_millis() as i64;
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let rows = self
            .client()
            .await?
            .query(&sql, &[&queue, &worker, &lease_ms, &max, &with_secrets])
            .await
            .map_err(failed("claiming jobs"))?;
        let mut claimed = rows
            .iter()
            .map(|row| {
                let job = job_of(row)?;
                let attempt = Attempt {
                    job: job.id,
                    number: job.attempt,
                };
                Ok((job, attempt))
            })
            .collect::<JobResult<Vec<_>>>()?;
        // Oldest first, as the queue's order says (RETURNING keeps none).
        claimed.sort_by_key(|(job, _)| job.id);
        Ok(claimed)
    }

    async fn start(&self, attempt: Attempt) -> JobResult<()> {
        let sql = format!(
            "UPDATE cairn_jobs SET state = 'started', started_ms = {NOW_MS}
             WHERE id = $1 AND attempt = $2 AND {CLAIMED} RETURNING id"
        );
        let relaxed = self.relaxed_client().await?;
        self.fenced_on(relaxed, "starting a job", &sql, attempt, &[])
            .await?;
        Ok(())
    }

    async fn heartbeat(&self, attempt: Attempt, lease: Duration) -> JobResult<Heartbeat> {
        let sql = format!(
            "UPDATE cairn_jobs SET lease_expires_ms = {NOW_MS} + $3
             WHERE id = $1 AND attempt = $2 AND {CLAIMED} RETURNING cancel_requested"
        );
        let lease_ms = lease.as_millis() as i64;
        let row = self
            .fenced("renewing a job's lease", &sql, attempt, &[&lease_ms])
            .await?;
        Ok(Heartbeat {
            cancel_requested: row.get(0),
        })
    }

    async fn append_log(&self, attempt: Attempt, bytes: &[u8]) -> JobResult<()> {
        // The row lock (FOR SHARE) orders the append before any change of the job's state:
        // a log written is one its attempt was current for.
        let sql = format!(
            "INSERT INTO cairn_job_logs (job_id, attempt, chunk)
             SELECT id, attempt, $3 FROM cairn_jobs
             WHERE id = $1 AND attempt = $2 AND {CLAIMED} FOR SHARE
             RETURNING job_id"
        );
        self.fenced("appending to a job's log", &sql, attempt, &[&bytes])
            .await?;
        Ok(())
    }

    async fn finish(&self, attempt: Attempt, outcome: Outcome) -> JobResult<()> {
        if !outcome.state.is_final() {
            return Err(JobError::Invalid(format!(
                "`{}` is not an outcome",
                outcome.state
            )));
        }
        let sql = format!(
            "UPDATE cairn_jobs SET state = $3, exit_code = $4, reason = $5,
                 finished_ms = {NOW_MS}, lease_expires_ms = NULL
             WHERE id = $1 AND attempt = $2 AND {CLAIMED} RETURNING id"
        );
        self.fenced(
            "finishing a job",
            &sql,
            attempt,
            &[&outcome.state.as_str(), &outcome.exit_code, &outcome.reason],
        )
        .await?;
        Ok(())
    }

    async fn requeue(
        &self,
        attempt: Attempt,
        reason: &str,
        counts_as_failure: bool,
    ) -> JobResult<JobState> {
        let sql = format!(
            "WITH job AS (
                UPDATE cairn_jobs SET {}
                WHERE id = $1 AND attempt = $2 AND {CLAIMED} RETURNING state, queue)
             SELECT state, pg_notify('{CHANNEL}', queue) IS NULL FROM job",
            requeue_set("$3", "$4")
        );
        let inc = i32::from(counts_as_failure);
        let row = self
            .fenced("requeueing a job", &sql, attempt, &[&inc, &reason])
            .await?;
        let state: String = row.get(0);
        JobState::parse(&state)
            .ok_or_else(|| JobError::Storage(format!("a job has the unknown state `{state}`")))
    }

    async fn rescue(&self, timeout_grace: Duration) -> JobResult<Rescued> {
        let grace_ms = timeout_grace.as_millis() as i64;
        let timed_out = self
            .client()
            .await?
            .query(
                &format!(
                    "UPDATE cairn_jobs SET state = 'errored', finished_ms = {NOW_MS},
                         lease_expires_ms = NULL,
                         reason = 'ran past its timeout of ' || (timeout_ms / 1000)
                             || 's and its worker did not stop it'
                     WHERE state = 'started'
                       AND started_ms::numeric + timeout_ms + $1::bigint < {NOW_MS}
                     RETURNING id"
                ),
                &[&grace_ms],
            )
            .await
            .map_err(failed("ending jobs past their timeout"))?;
        let expired = self
            .client()
            .await?
            .query(
                &format!(
                    "WITH job AS (
                        UPDATE cairn_jobs SET {}
                        WHERE {CLAIMED} AND lease_expires_ms < {NOW_MS}
                        RETURNING id, state, queue)
                     SELECT id, state, pg_notify('{CHANNEL}', queue) IS NULL FROM job",
                    requeue_set(
                        "1",
                        "'worker `' || worker || '` stopped renewing its lease'"
                    )
                ),
                &[],
            )
            .await
            .map_err(failed("requeueing jobs of workers that stopped"))?;
        let mut rescued = Rescued {
            requeued: Vec::new(),
            errored: timed_out
                .iter()
                .map(|row| row.get::<_, i64>(0) as JobId)
                .collect(),
        };
        for row in expired {
            let id = row.get::<_, i64>(0) as JobId;
            match row.get::<_, String>(1).as_str() {
                "queued" => rescued.requeued.push(id),
                _ => rescued.errored.push(id),
            }
        }
        Ok(rescued)
    }

    async fn cancel(&self, id: JobId) -> JobResult<JobState> {
        let sql = format!(
            "UPDATE cairn_jobs SET
                 state = CASE WHEN state = 'queued' THEN 'cancelled' ELSE state END,
                 finished_ms = CASE WHEN state = 'queued' THEN {NOW_MS} ELSE finished_ms END,
                 reason = CASE WHEN state = 'queued' THEN 'cancelled before it started'
                               ELSE reason END,
                 cancel_requested = cancel_requested OR {CLAIMED}
             WHERE id = $1 RETURNING state"
        );
        let row = self
            .client()
            .await?
            .query_opt(&sql, &[&id_param(id)])
            .await
            .map_err(failed("cancelling a job"))?
            .ok_or(JobError::NotFound(id))?;
        let state: String = row.get(0);
        JobState::parse(&state)
            .ok_or_else(|| JobError::Storage(format!("a job has the unknown state `{state}`")))
    }

    async fn restart(&self, id: JobId) -> JobResult<()> {
        let sql = format!(
            "WITH job AS (
                UPDATE cairn_jobs SET state = 'queued', infra_failures = 0,
                    cancel_requested = false, started_ms = NULL, finished_ms = NULL,
                    exit_code = NULL, reason = 'restarted'
                WHERE id = $1 AND state IN ('passed', 'failed', 'errored', 'cancelled')
                RETURNING queue)
             SELECT pg_notify('{CHANNEL}', queue) IS NULL FROM job"
        );
        let restarted = self
            .client()
            .await?
            .query_opt(&sql, &[&id_param(id)])
            .await
            .map_err(failed("restarting a job"))?;
        if restarted.is_some() {
            return Ok(());
        }
        match self.job(id).await? {
            None => Err(JobError::NotFound(id)),
            Some(job) => Err(JobError::Invalid(format!(
                "job {id} is {}; only a finished job can be restarted",
                job.state
            ))),
        }
    }

    async fn job(&self, id: JobId) -> JobResult<Option<Job>> {
        let row = self
            .client()
            .await?
            .query_opt(
                &format!("SELECT {COLUMNS} FROM cairn_jobs WHERE id = $1"),
                &[&id_param(id)],
            )
            .await
            .map_err(failed("reading a job"))?;
        row.as_ref().map(job_of).transpose()
    }

    async fn list(&self, queue: Option<&str>, state: Option<JobState>) -> JobResult<Vec<Job>> {
        let state = state.map(JobState::as_str);
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM cairn_jobs
                     WHERE ($1::text IS NULL OR queue = $1) AND ($2::text IS NULL OR state = $2)
                     ORDER BY id"
                ),
                &[&queue, &state],
            )
            .await
            .map_err(failed("listing jobs"))?;
        rows.iter().map(job_of).collect()
    }

    async fn logs(&self, id: JobId, from: u64) -> JobResult<Vec<u8>> {
        let Some(job) = self.job(id).await? else {
            return Err(JobError::NotFound(id));
        };
        let rows = self
            .client()
            .await?
            .query(
                "SELECT chunk FROM cairn_job_logs WHERE job_id = $1 AND attempt = $2 ORDER BY seq",
                &[&id_param(id), &(job.attempt as i32)],
            )
            .await
            .map_err(failed("reading a job's log"))?;
        let mut log = Vec::new();
        for row in rows {
            log.extend_from_slice(row.get::<_, &[u8]>(0));
        }
        Ok(log.get(from as usize..).unwrap_or_default().to_vec())
    }

    async fn wait_for_work(&self, queue: &str, timeout: Duration) -> JobResult<()> {
        validate_queue_name(queue)?;
        let mut notifications = {
            let mut listener = self.listener.lock().await;
            if listener
                .as_ref()
                .is_none_or(|(client, _)| client.is_closed())
            {
                *listener = Some((self.connect)().await?);
            }
            // Subscribed before looking, so a job queued in between still wakes us.
            listener
                .as_ref()
                .map(|(_, sender)| sender.subscribe())
                .ok_or_else(|| JobError::Storage("no listening connection".to_owned()))?
        };
        let has_work = self
            .client()
            .await?
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM cairn_jobs WHERE queue = $1 AND state = 'queued')",
                &[&queue],
            )
            .await
            .map_err(failed("looking for queued jobs"))?
            .get::<_, bool>(0);
        if has_work {
            return Ok(());
        }
        let wait = async {
            loop {
                match notifications.recv().await {
                    Ok(name) if name == queue => return,
                    Ok(_) => {}
                    // Missed some: one of them may have been ours.
                    Err(broadcast::error::RecvError::Lagged(_)) => return,
                    Err(broadcast::error::RecvError::Closed) => {
                        std::future::pending::<()>().await;
                    }
                }
            }
        };
        let _ = tokio::time::timeout(timeout, wait).await;
        Ok(())
    }
}

/// Polls a connection made for `LISTEN`, forwarding each notification's payload (a queue's
/// name) to `sender`, until the connection ends.
pub(crate) async fn forward_notifications<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
    sender: Listener,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let message = std::future::poll_fn(|cx| connection.poll_message(cx)).await;
        match message {
            Some(Ok(tokio_postgres::AsyncMessage::Notification(notification))) => {
                let _ = sender.send(notification.payload().to_owned());
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return,
        }
    }
}

/// The schema of the queue (migration 2).
pub(crate) const MIGRATION: &str = "
    CREATE TABLE cairn_jobs (
        id BIGSERIAL PRIMARY KEY,
        queue TEXT NOT NULL,
        spec TEXT NOT NULL,
        state TEXT NOT NULL,
        attempt INTEGER NOT NULL DEFAULT 0,
        infra_failures INTEGER NOT NULL DEFAULT 0,
        retries INTEGER NOT NULL,
        timeout_ms BIGINT NOT NULL,
        worker TEXT,
        lease_expires_ms BIGINT,
        created_ms BIGINT NOT NULL,
        started_ms BIGINT,
        finished_ms BIGINT,
        exit_code BIGINT,
        reason TEXT,
        cancel_requested BOOLEAN NOT NULL DEFAULT false
    );
    CREATE INDEX cairn_jobs_queued ON cairn_jobs (queue, id) WHERE state = 'queued';
    CREATE INDEX cairn_jobs_claimed ON cairn_jobs (lease_expires_ms)
        WHERE state IN ('received', 'started');
    CREATE TABLE cairn_job_logs (
        seq BIGSERIAL PRIMARY KEY,
        job_id BIGINT NOT NULL REFERENCES cairn_jobs (id) ON DELETE CASCADE,
        attempt INTEGER NOT NULL,
        chunk BYTEA NOT NULL
    );
    CREATE INDEX cairn_job_logs_job ON cairn_job_logs (job_id, attempt, seq);";
