//! The database schema, created and migrated by Cairn itself. Migrations are numbered and
//! applied in order, each recorded in `cairn_schema_migrations`; the whole run holds a
//! transaction-scoped advisory lock, so two processes starting at once apply each exactly once.

use cairn_state::backend::BackendResult;
use tokio_postgres::Client;

use crate::database_error;

/// Any fixed number works; it only has to be the same in every Cairn process.
const MIGRATION_LOCK: i64 = 0x00ca_1e5c_0de5;

/// The migrations, oldest first. Never edit one that has shipped: add the next.
const MIGRATIONS: &[&str] = &[
    // 1: stacks with their checkpoint, and everything that belongs to a stack.
    "CREATE TABLE cairn_stacks (
        id BIGSERIAL PRIMARY KEY,
        org TEXT NOT NULL,
        project TEXT NOT NULL,
        name TEXT NOT NULL,
        checkpoint TEXT NOT NULL,
        UNIQUE (org, project, name)
    );
    CREATE TABLE cairn_journal (
        id BIGSERIAL PRIMARY KEY,
        stack_id BIGINT NOT NULL REFERENCES cairn_stacks (id) ON DELETE CASCADE,
        record TEXT NOT NULL
    );
    CREATE INDEX cairn_journal_stack ON cairn_journal (stack_id, id);
    CREATE TABLE cairn_history (
        stack_id BIGINT NOT NULL REFERENCES cairn_stacks (id) ON DELETE CASCADE,
        version BIGINT NOT NULL,
        kind TEXT NOT NULL,
        result TEXT NOT NULL,
        end_time BIGINT NOT NULL,
        info TEXT NOT NULL,
        PRIMARY KEY (stack_id, version)
    );
    CREATE TABLE cairn_versions (
        stack_id BIGINT NOT NULL REFERENCES cairn_stacks (id) ON DELETE CASCADE,
        version BIGINT NOT NULL,
        checkpoint TEXT NOT NULL,
        PRIMARY KEY (stack_id, version)
    );
    CREATE TABLE cairn_tags (
        stack_id BIGINT NOT NULL REFERENCES cairn_stacks (id) ON DELETE CASCADE,
        tag TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (stack_id, tag)
    );
    CREATE TABLE cairn_logs (
        id BIGSERIAL PRIMARY KEY,
        stack_id BIGINT NOT NULL REFERENCES cairn_stacks (id) ON DELETE CASCADE,
        ts BIGINT NOT NULL,
        urn TEXT,
        severity TEXT NOT NULL,
        message TEXT NOT NULL
    );
    CREATE INDEX cairn_logs_stack ON cairn_logs (stack_id, ts);
    CREATE TABLE cairn_locks (
        stack_id BIGINT PRIMARY KEY REFERENCES cairn_stacks (id) ON DELETE CASCADE,
        token TEXT NOT NULL,
        owner TEXT NOT NULL,
        heartbeat BIGINT NOT NULL
    );",
    // 2: the job queue (`cairn job`, `cairn worker`).
    crate::jobs::MIGRATION,
    // 3: the app store (`cairn app`, `cairn pool`, `cairn node`).
    crate::apps::MIGRATION,
];

/// Applies the migrations this database has not seen.
pub async fn migrate(client: &Client) -> BackendResult<()> {
    let migrate_error =
        |error: tokio_postgres::Error| database_error("migrating the schema", error);
    // Cheap check first: most runs find the schema current and take no lock.
    let current = current_version(client).await?;
    if current >= MIGRATIONS.len() as i64 {
        return Ok(());
    }
    client
        .batch_execute(&format!(
            "BEGIN;
             SELECT pg_advisory_xact_lock({MIGRATION_LOCK});
             CREATE TABLE IF NOT EXISTS cairn_schema_migrations (
                 version BIGINT PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             );"
        ))
        .await
        .map_err(migrate_error)?;
    let result = async {
        // Under the lock, read again: another process may have just migrated.
        let applied = current_version(client).await?;
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            let version = index as i64 + 1;
            if version <= applied {
                continue;
            }
            client
                .batch_execute(migration)
                .await
                .map_err(migrate_error)?;
            client
                .execute(
                    "INSERT INTO cairn_schema_migrations (version) VALUES ($1)",
                    &[&version],
                )
                .await
                .map_err(migrate_error)?;
        }
        client.batch_execute("COMMIT").await.map_err(migrate_error)
    }
    .await;
    if result.is_err() {
        let _ = client.batch_execute("ROLLBACK").await;
    }
    result
}

async fn current_version(client: &Client) -> BackendResult<i64> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('cairn_schema_migrations') IS NOT NULL",
            &[],
        )
        .await
        .map_err(|error| database_error("reading the schema version", error))?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let row = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM cairn_schema_migrations",
            &[],
        )
        .await
        .map_err(|error| database_error("reading the schema version", error))?;
    Ok(row.get(0))
}
