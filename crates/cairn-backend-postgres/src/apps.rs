//! The app store of a `postgres://` backend (`cairn app`, `cairn pool`, `cairn node`): an app is
//! a row of `cairn_apps` holding its document (the app, its units, its lock's hold) as JSON,
//! with its releases as rows of `cairn_app_releases`; pools and nodes are rows of their own.
//! Every change is one transaction on the backend's transaction connection that first locks
//! the rows it reads (`FOR UPDATE`), applies one of `AppDocument`'s rules and writes, so a crash
//! at any instant leaves the change whole or absent, and two writers on any machines are
//! ordered by the database. Lock leases run on the database's clock.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cairn_app::names::{
    validate_app_name, validate_new_app, validate_node, validate_node_address, validate_pool_name,
};
use cairn_app::{
    App, AppDocument, AppError, AppLock, AppResult, AppStore, DEFAULT_POOL, NewApp, NewRelease,
    Node, NodeUpdate, Pool, Release, Unit, UnitStatus, apply_node_update,
};
use tokio::sync::Mutex;
use tokio_postgres::{Client, Transaction};

/// The database's clock, in Unix milliseconds.
const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

pub struct PostgresAppStore {
    client: Arc<Client>,
    /// The backend's connection for transactions (a transaction needs the `&mut Client`).
    transactions: Arc<Mutex<Client>>,
}

fn failed(action: &str) -> impl Fn(tokio_postgres::Error) -> AppError + '_ {
    move |error| {
        let detail = error
            .as_db_error()
            .map(|db| db.message().to_owned())
            .unwrap_or_else(|| error.to_string());
        AppError::Storage(format!("{action}: {detail}"))
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> AppResult<String> {
    serde_json::to_string(value).map_err(|error| AppError::Storage(error.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> AppResult<T> {
    serde_json::from_str(text)
        .map_err(|error| AppError::Storage(format!("reading {what}: {error}")))
}

/// A lock's app that is gone was removed by whoever held the lock after it: to the writer,
/// its lock is lost.
fn lost_if_gone(error: AppError, lock: &AppLock) -> AppError {
    match error {
        AppError::AppNotFound(_) => AppError::LockLost(lock.app.clone()),
        other => other,
    }
}

impl PostgresAppStore {
    pub(crate) fn new(client: Arc<Client>, transactions: Arc<Mutex<Client>>) -> PostgresAppStore {
        PostgresAppStore {
            client,
            transactions,
        }
    }

    /// Locks the app's row, applies `edit` to its document at the database's time, writes it
    /// and the release `edit` made, if any, and commits.
    async fn edit_app<T>(
        &self,
        app: &str,
        edit: impl FnOnce(&mut AppDocument, i64) -> AppResult<(T, Option<Release>)>,
    ) -> AppResult<T> {
        validate_app_name(app)?;
        let mut client = self.transactions.lock().await;
        let transaction = client
            .transaction()
            .await
            .map_err(failed("starting a transaction"))?;
        let row = transaction
            .query_opt(
                &format!("SELECT document, {NOW_MS} FROM cairn_apps WHERE name = $1 FOR UPDATE"),
                &[&app],
            )
            .await
            .map_err(failed("reading an app"))?
            .ok_or_else(|| AppError::AppNotFound(app.to_owned()))?;
        let mut document: AppDocument = from_json("an app", row.get(0))?;
        // Dropping the transaction on an error rolls it back: nothing is written.
        let (result, release) = edit(&mut document, row.get(1))?;
        transaction
            .execute(
                "UPDATE cairn_apps SET document = $2 WHERE name = $1",
                &[&app, &to_json(&document)?],
            )
            .await
            .map_err(failed("writing an app"))?;
        if let Some(release) = release {
            transaction
                .execute(
                    "INSERT INTO cairn_app_releases (app, version, release) VALUES ($1, $2, $3)",
                    &[&app, &(release.version as i64), &to_json(&release)?],
                )
                .await
                .map_err(failed("writing a release"))?;
        }
        transaction
            .commit()
            .await
            .map_err(failed("committing an app"))?;
        Ok(result)
    }

    /// Runs `body` in a transaction on the transaction connection and commits what it did.
    async fn in_transaction<T>(
        &self,
        body: impl AsyncFnOnce(&Transaction<'_>) -> AppResult<T>,
    ) -> AppResult<T> {
        let mut client = self.transactions.lock().await;
        let transaction = client
            .transaction()
            .await
            .map_err(failed("starting a transaction"))?;
        let result = body(&transaction).await?;
        transaction.commit().await.map_err(failed("committing"))?;
        Ok(result)
    }

    async fn pools_of(&self) -> AppResult<Vec<Pool>> {
        let rows = self
            .client
            .query(
                "SELECT name, provisioner, is_default FROM cairn_pools ORDER BY name COLLATE \"C\"",
                &[],
            )
            .await
            .map_err(failed("listing pools"))?;
        Ok(rows
            .iter()
            .map(|row| Pool {
                name: row.get(0),
                provisioner: row.get(1),
                is_default: row.get(2),
            })
            .collect())
    }
}

/// Whether `pool` exists (locked against removal until the transaction ends), or is the
/// implicit default pool while no pool does.
async fn check_pool_exists(transaction: &Transaction<'_>, pool: &str) -> AppResult<()> {
    let exists = transaction
        .query_opt(
            "SELECT 1 FROM cairn_pools WHERE name = $1 FOR SHARE",
            &[&pool],
        )
        .await
        .map_err(failed("reading a pool"))?
        .is_some();
    if exists {
        return Ok(());
    }
    if pool == DEFAULT_POOL {
        // No pool may be added while this app goes to the implicit one.
        transaction
            .batch_execute("LOCK TABLE cairn_pools IN SHARE MODE")
            .await
            .map_err(failed("locking the pools"))?;
        let count: i64 = transaction
            .query_one("SELECT count(*) FROM cairn_pools", &[])
            .await
            .map_err(failed("counting pools"))?
            .get(0);
        if count == 0 {
            return Ok(());
        }
    }
    Err(AppError::PoolNotFound(pool.to_owned()))
}

#[async_trait]
impl AppStore for PostgresAppStore {
    async fn create_app(&self, app: NewApp) -> AppResult<App> {
        validate_new_app(&app)?;
        self.in_transaction(async |transaction| {
            check_pool_exists(transaction, &app.pool).await?;
            let now: i64 = transaction
                .query_one(&format!("SELECT {NOW_MS}"), &[])
                .await
                .map_err(failed("reading the time"))?
                .get(0);
            let record = App {
                name: app.name.clone(),
                pool: app.pool.clone(),
                processes: app.processes.clone(),
                env: Default::default(),
                release: None,
                image: None,
                encryption_salt: None,
                created_ms: now,
                cnames: Vec::new(),
            };
            let document = to_json(&AppDocument::new(record.clone()))?;
            let inserted = transaction
                .execute(
                    "INSERT INTO cairn_apps (name, pool, document) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO NOTHING",
                    &[&app.name, &app.pool, &document],
                )
                .await
                .map_err(failed("creating an app"))?;
            if inserted == 0 {
                return Err(AppError::AppExists(app.name.clone()));
            }
            Ok(record)
        })
        .await
    }

    async fn list_apps(&self) -> AppResult<Vec<App>> {
        let rows = self
            .client
            .query(
                "SELECT document FROM cairn_apps ORDER BY name COLLATE \"C\"",
                &[],
            )
            .await
            .map_err(failed("listing apps"))?;
        rows.iter()
            .map(|row| from_json::<AppDocument>("an app", row.get(0)).map(|doc| doc.app))
            .collect()
    }

    async fn app(&self, name: &str) -> AppResult<Option<App>> {
        validate_app_name(name)?;
        let row = self
            .client
            .query_opt("SELECT document FROM cairn_apps WHERE name = $1", &[&name])
            .await
            .map_err(failed("reading an app"))?;
        row.map(|row| from_json::<AppDocument>("an app", row.get(0)).map(|doc| doc.app))
            .transpose()
    }

    async fn remove_app(&self, lock: &AppLock) -> AppResult<()> {
        validate_app_name(&lock.app)?;
        self.in_transaction(async |transaction| {
            let row = transaction
                .query_opt(
                    &format!(
                        "SELECT document, {NOW_MS} FROM cairn_apps WHERE name = $1 FOR UPDATE"
                    ),
                    &[&lock.app],
                )
                .await
                .map_err(failed("reading an app"))?
                .ok_or_else(|| AppError::LockLost(lock.app.clone()))?;
            let document: AppDocument = from_json("an app", row.get(0))?;
            document.check_lock(lock, row.get(1))?;
            // Its releases go with it (ON DELETE CASCADE), in this transaction.
            transaction
                .execute("DELETE FROM cairn_apps WHERE name = $1", &[&lock.app])
                .await
                .map_err(failed("removing an app"))?;
            Ok(())
        })
        .await
    }

    async fn lock_app(&self, app: &str, holder: &str, lease: Duration) -> AppResult<AppLock> {
        self.edit_app(app, |document, now| {
            Ok((document.take_lock(holder, lease, now)?, None))
        })
        .await
    }

    async fn renew_lock(&self, lock: &AppLock, lease: Duration) -> AppResult<()> {
        self.edit_app(&lock.app, |document, now| {
            Ok((document.renew_lock(lock, lease, now)?, None))
        })
        .await
        .map_err(|error| lost_if_gone(error, lock))
    }

    async fn unlock_app(&self, lock: &AppLock) -> AppResult<()> {
        let result = self
            .edit_app(&lock.app, |document, _| {
                document.release_lock(lock);
                Ok(((), None))
            })
            .await;
        match result {
            Err(AppError::AppNotFound(_)) => Ok(()),
            other => other,
        }
    }

    async fn break_lock(&self, app: &str) -> AppResult<Option<String>> {
        self.edit_app(app, |document, _| Ok((document.break_lock(), None)))
            .await
    }

    async fn append_release(&self, lock: &AppLock, release: NewRelease) -> AppResult<Release> {
        self.edit_app(&lock.app, |document, now| {
            let release = document.append_release(lock, release, now)?;
            Ok((release.clone(), Some(release)))
        })
        .await
        .map_err(|error| lost_if_gone(error, lock))
    }

    async fn releases(&self, app: &str) -> AppResult<Vec<Release>> {
        validate_app_name(app)?;
        // One statement: the app's existence and its releases are read at one instant.
        let rows = self
            .client
            .query(
                "SELECT r.release FROM cairn_apps a \
                 LEFT JOIN cairn_app_releases r ON r.app = a.name \
                 WHERE a.name = $1 ORDER BY r.version",
                &[&app],
            )
            .await
            .map_err(failed("reading releases"))?;
        if rows.is_empty() {
            return Err(AppError::AppNotFound(app.to_owned()));
        }
        rows.iter()
            .filter_map(|row| row.get::<_, Option<&str>>(0))
            .map(|text| from_json("a release", text))
            .collect()
    }

    async fn add_unit(&self, lock: &AppLock, unit: Unit) -> AppResult<()> {
        self.edit_app(&lock.app, |document, now| {
            Ok((document.add_unit(lock, unit, now)?, None))
        })
        .await
        .map_err(|error| lost_if_gone(error, lock))
    }

    async fn add_cname(&self, lock: &AppLock, cname: &str) -> AppResult<()> {
        validate_app_name(&lock.app)?;
        let cname = cairn_app::names::normalize_cname(cname);
        cairn_app::names::validate_cname(&cname)?;
        self.in_transaction(async |transaction| {
            // Self-conflicting: two additions of host names (to any apps) run one at a time,
            // so no other app takes the name between the check and the write.
            transaction
                .batch_execute("LOCK TABLE cairn_apps IN SHARE ROW EXCLUSIVE MODE")
                .await
                .map_err(failed("locking the apps"))?;
            let holder = transaction
                .query_opt(
                    "SELECT name FROM cairn_apps WHERE name <> $1 \
                     AND (document::jsonb -> 'app' -> 'cnames') ? $2 LIMIT 1",
                    &[&lock.app, &cname],
                )
                .await
                .map_err(failed("reading host names"))?;
            if let Some(holder) = holder {
                let holder: String = holder.get(0);
                return Err(AppError::Invalid(format!(
                    "host name `{cname}` belongs to app `{holder}`"
                )));
            }
            let row = transaction
                .query_opt(
                    &format!(
                        "SELECT document, {NOW_MS} FROM cairn_apps WHERE name = $1 FOR UPDATE"
                    ),
                    &[&lock.app],
                )
                .await
                .map_err(failed("reading an app"))?
                .ok_or_else(|| AppError::AppNotFound(lock.app.clone()))?;
            let mut document: AppDocument = from_json("an app", row.get(0))?;
            document.add_cname(lock, &cname, row.get(1))?;
            transaction
                .execute(
                    "UPDATE cairn_apps SET document = $2 WHERE name = $1",
                    &[&lock.app, &to_json(&document)?],
                )
                .await
                .map_err(failed("writing an app"))?;
            Ok(())
        })
        .await
        .map_err(|error| lost_if_gone(error, lock))
    }

    async fn remove_cname(&self, lock: &AppLock, cname: &str) -> AppResult<()> {
        let cname = cairn_app::names::normalize_cname(cname);
        self.edit_app(&lock.app, |document, now| {
            Ok((document.remove_cname(lock, &cname, now)?, None))
        })
        .await
        .map_err(|error| lost_if_gone(error, lock))
    }

    async fn remove_unit(&self, lock: &AppLock, unit_id: &str) -> AppResult<Unit> {
        self.edit_app(&lock.app, |document, now| {
            Ok((document.remove_unit(lock, unit_id, now)?, None))
        })
        .await
        .map_err(|error| lost_if_gone(error, lock))
    }

    async fn units(&self, app: &str) -> AppResult<Vec<Unit>> {
        validate_app_name(app)?;
        let row = self
            .client
            .query_opt("SELECT document FROM cairn_apps WHERE name = $1", &[&app])
            .await
            .map_err(failed("reading an app"))?
            .ok_or_else(|| AppError::AppNotFound(app.to_owned()))?;
        Ok(from_json::<AppDocument>("an app", row.get(0))?.units)
    }

    async fn set_unit_status(
        &self,
        app: &str,
        unit_id: &str,
        status: UnitStatus,
    ) -> AppResult<UnitStatus> {
        self.edit_app(app, |document, _| {
            Ok((document.set_unit_status(unit_id, status)?, None))
        })
        .await
    }

    async fn add_pool(&self, pool: Pool) -> AppResult<()> {
        validate_pool_name(&pool.name)?;
        self.in_transaction(async |transaction| {
            // Self-conflicting: two pools made default at once are ordered, so one stays.
            transaction
                .batch_execute("LOCK TABLE cairn_pools IN SHARE ROW EXCLUSIVE MODE")
                .await
                .map_err(failed("locking the pools"))?;
            let inserted = transaction
                .execute(
                    "INSERT INTO cairn_pools (name, provisioner, is_default) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO NOTHING",
                    &[&pool.name, &pool.provisioner, &pool.is_default],
                )
                .await
                .map_err(failed("adding a pool"))?;
            if inserted == 0 {
                return Err(AppError::PoolExists(pool.name.clone()));
            }
            if pool.is_default {
                transaction
                    .execute(
                        "UPDATE cairn_pools SET is_default = false WHERE name <> $1 AND is_default",
                        &[&pool.name],
                    )
                    .await
                    .map_err(failed("moving the default pool"))?;
            }
            Ok(())
        })
        .await
    }

    async fn list_pools(&self) -> AppResult<Vec<Pool>> {
        self.pools_of().await
    }

    async fn set_default_pool(&self, name: &str) -> AppResult<()> {
        validate_pool_name(name)?;
        self.in_transaction(async |transaction| {
            transaction
                .batch_execute("LOCK TABLE cairn_pools IN SHARE ROW EXCLUSIVE MODE")
                .await
                .map_err(failed("locking the pools"))?;
            let exists = transaction
                .query_opt("SELECT 1 FROM cairn_pools WHERE name = $1", &[&name])
                .await
                .map_err(failed("reading a pool"))?
                .is_some();
            if !exists {
                return Err(AppError::PoolNotFound(name.to_owned()));
            }
            transaction
                .execute(
                    "UPDATE cairn_pools SET is_default = (name = $1) \
                     WHERE name = $1 OR is_default",
                    &[&name],
                )
                .await
                .map_err(failed("moving the default pool"))?;
            Ok(())
        })
        .await
    }

    async fn remove_pool(&self, name: &str) -> AppResult<()> {
        validate_pool_name(name)?;
        self.in_transaction(async |transaction| {
            // The row lock waits for any transaction placing an app or a node in the pool, so
            // the checks below see what they placed.
            let exists = transaction
                .query_opt(
                    "SELECT 1 FROM cairn_pools WHERE name = $1 FOR UPDATE",
                    &[&name],
                )
                .await
                .map_err(failed("reading a pool"))?
                .is_some();
            if !exists {
                return Err(AppError::PoolNotFound(name.to_owned()));
            }
            let in_use = |reason: String| AppError::PoolInUse {
                pool: name.to_owned(),
                reason,
            };
            let node = transaction
                .query_opt(
                    "SELECT address FROM cairn_nodes WHERE pool = $1 LIMIT 1",
                    &[&name],
                )
                .await
                .map_err(failed("reading nodes"))?;
            if let Some(node) = node {
                return Err(in_use(format!(
                    "node `{}` is in it",
                    node.get::<_, String>(0)
                )));
            }
            let app = transaction
                .query_opt(
                    "SELECT name FROM cairn_apps WHERE pool = $1 LIMIT 1",
                    &[&name],
                )
                .await
                .map_err(failed("reading apps"))?;
            if let Some(app) = app {
                return Err(in_use(format!(
                    "app `{}` is in it",
                    app.get::<_, String>(0)
                )));
            }
            transaction
                .execute("DELETE FROM cairn_pools WHERE name = $1", &[&name])
                .await
                .map_err(failed("removing a pool"))?;
            Ok(())
        })
        .await
    }

    async fn add_node(&self, node: Node) -> AppResult<()> {
        validate_node(&node)?;
        self.in_transaction(async |transaction| {
            let pool = transaction
                .query_opt(
                    "SELECT 1 FROM cairn_pools WHERE name = $1 FOR SHARE",
                    &[&node.pool],
                )
                .await
                .map_err(failed("reading a pool"))?;
            if pool.is_none() {
                return Err(AppError::PoolNotFound(node.pool.clone()));
            }
            let inserted = transaction
                .execute(
                    "INSERT INTO cairn_nodes (address, pool, node) VALUES ($1, $2, $3) \
                     ON CONFLICT (address) DO NOTHING",
                    &[&node.address, &node.pool, &to_json(&node)?],
                )
                .await
                .map_err(failed("adding a node"))?;
            if inserted == 0 {
                return Err(AppError::NodeExists(node.address.clone()));
            }
            Ok(())
        })
        .await
    }

    async fn list_nodes(&self) -> AppResult<Vec<Node>> {
        let rows = self
            .client
            .query(
                "SELECT node FROM cairn_nodes ORDER BY address COLLATE \"C\"",
                &[],
            )
            .await
            .map_err(failed("listing nodes"))?;
        rows.iter()
            .map(|row| from_json("a node", row.get(0)))
            .collect()
    }

    async fn update_node(&self, address: &str, update: NodeUpdate) -> AppResult<Node> {
        validate_node_address(address)?;
        self.in_transaction(async |transaction| {
            let row = transaction
                .query_opt(
                    "SELECT node FROM cairn_nodes WHERE address = $1 FOR UPDATE",
                    &[&address],
                )
                .await
                .map_err(failed("reading a node"))?
                .ok_or_else(|| AppError::NodeNotFound(address.to_owned()))?;
            let mut node: Node = from_json("a node", row.get(0))?;
            apply_node_update(&mut node, update);
            validate_node(&node)?;
            let pool = transaction
                .query_opt(
                    "SELECT 1 FROM cairn_pools WHERE name = $1 FOR SHARE",
                    &[&node.pool],
                )
                .await
                .map_err(failed("reading a pool"))?;
            if pool.is_none() {
                return Err(AppError::PoolNotFound(node.pool.clone()));
            }
            transaction
                .execute(
                    "UPDATE cairn_nodes SET pool = $2, node = $3 WHERE address = $1",
                    &[&address, &node.pool, &to_json(&node)?],
                )
                .await
                .map_err(failed("writing a node"))?;
            Ok(node)
        })
        .await
    }

    async fn remove_node(&self, address: &str) -> AppResult<()> {
        validate_node_address(address)?;
        let removed = self
            .client
            .execute("DELETE FROM cairn_nodes WHERE address = $1", &[&address])
            .await
            .map_err(failed("removing a node"))?;
        if removed == 0 {
            return Err(AppError::NodeNotFound(address.to_owned()));
        }
        Ok(())
    }
}

/// The schema of the app store (migration 3).
pub(crate) const MIGRATION: &str = "
    CREATE TABLE cairn_apps (
        name TEXT PRIMARY KEY,
        pool TEXT NOT NULL,
        document TEXT NOT NULL
    );
    CREATE INDEX cairn_apps_pool ON cairn_apps (pool);
    CREATE TABLE cairn_app_releases (
        app TEXT NOT NULL REFERENCES cairn_apps (name) ON DELETE CASCADE,
        version BIGINT NOT NULL,
        release TEXT NOT NULL,
        PRIMARY KEY (app, version)
    );
    CREATE TABLE cairn_pools (
        name TEXT PRIMARY KEY,
        provisioner TEXT NOT NULL,
        is_default BOOLEAN NOT NULL
    );
    CREATE TABLE cairn_nodes (
        address TEXT PRIMARY KEY,
        pool TEXT NOT NULL REFERENCES cairn_pools (name),
        node TEXT NOT NULL
    );
    CREATE INDEX cairn_nodes_pool ON cairn_nodes (pool);";
