//! `AppStore`: where apps, their releases and units, pools and nodes are kept. Each state
//! backend implements it beside its stacks and its job queue; `conformance` is the suite every
//! implementation passes.
//!
//! - **Atomic.** Every call is all or nothing, and state survives a crash at any instant: the
//!   `file://` store renames whole files into place, the `postgres://` one writes in a
//!   transaction.
//! - **One writer per app.** Changes to an app's releases and units take an `AppLock`, held
//!   by one writer at a time with a lease; every write names its lock and is refused with
//!   `AppError::LockLost` once the lease ran out, another writer took the lock or the app was
//!   removed, so a writer that lost its lock writes nothing more. A writer killed outright
//!   (SIGKILL) leaves a lock that the next writer takes over when its lease has run out.
//! - **Unit statuses** move only as tsuru's flow allows (`UnitStatus::can_become`), each
//!   change persisted when it is made.
//! - Names are validated (`crate::names`) before they reach a path or a query.

use std::time::Duration;

use async_trait::async_trait;

use crate::{
    App, AppLock, AppResult, NewApp, NewRelease, Node, NodeStatus, Pool, Release, Unit, UnitStatus,
};

/// What `AppStore::update_node` changes; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeUpdate {
    pub pool: Option<String>,
    /// Metadata to set (added or replaced).
    pub set_metadata: std::collections::BTreeMap<String, String>,
    /// Metadata keys to remove.
    pub remove_metadata: Vec<String>,
    pub status: Option<NodeStatus>,
}

#[async_trait]
pub trait AppStore: Send + Sync {
    /// Creates an app with no release. Its pool must exist, unless it is `DEFAULT_POOL` and no
    /// pool exists at all (the implicit default pool).
    async fn create_app(&self, app: NewApp) -> AppResult<App>;

    /// Every app, by name.
    async fn list_apps(&self) -> AppResult<Vec<App>>;

    async fn app(&self, name: &str) -> AppResult<Option<App>>;

    /// Removes the app, its releases and its units' records, under its lock.
    async fn remove_app(&self, lock: &AppLock) -> AppResult<()>;

    /// Takes the app's lock for `holder` (a description: user, host, pid) with a lease;
    /// `AppError::Locked` while another writer holds it.
    async fn lock_app(&self, app: &str, holder: &str, lease: Duration) -> AppResult<AppLock>;

    /// Extends a held lock's lease; `AppError::LockLost` once it is lost.
    async fn renew_lock(&self, lock: &AppLock, lease: Duration) -> AppResult<()>;

    /// Gives the lock up. Unlocking a lock that was lost (or an app removed) is not an error:
    /// it is no longer this writer's.
    async fn unlock_app(&self, lock: &AppLock) -> AppResult<()>;

    /// Ends whoever holds the app's lock (`cairn app unlock`, for a holder that is stuck or
    /// gone): its writes are refused from now on. Returns the holder it ended, if any.
    async fn break_lock(&self, app: &str) -> AppResult<Option<String>>;

    /// Appends the next release (numbered 1, 2, ...) and makes it the app's current one.
    async fn append_release(&self, lock: &AppLock, release: NewRelease) -> AppResult<Release>;

    /// The app's releases, oldest first.
    async fn releases(&self, app: &str) -> AppResult<Vec<Release>>;

    /// Records a unit of the app (a provisioner started it).
    async fn add_unit(&self, lock: &AppLock, unit: Unit) -> AppResult<()>;

    /// Forgets a unit of the app (a provisioner removed it); returns its last record.
    async fn remove_unit(&self, lock: &AppLock, unit_id: &str) -> AppResult<Unit>;

    /// The app's units, in the order they were added.
    async fn units(&self, app: &str) -> AppResult<Vec<Unit>>;

    /// Moves a unit to `status` (tsuru's `SetUnitStatus`), refusing a move tsuru's flow does
    /// not allow with `AppError::ForbiddenTransition`; returns the status it had.
    async fn set_unit_status(
        &self,
        app: &str,
        unit_id: &str,
        status: UnitStatus,
    ) -> AppResult<UnitStatus>;

    /// Adds a custom host name to the app (`cairn app cname add`): validated, lowercased,
    /// refused (`AppError::Invalid`) when another app has it. Adding one the app already has
    /// changes nothing.
    async fn add_cname(&self, lock: &AppLock, cname: &str) -> AppResult<()>;

    /// Removes a custom host name from the app; refused when it does not have it.
    async fn remove_cname(&self, lock: &AppLock, cname: &str) -> AppResult<()>;

    /// Adds a pool. Making it the default takes that from any other pool.
    async fn add_pool(&self, pool: Pool) -> AppResult<()>;

    /// Every pool, by name.
    async fn list_pools(&self) -> AppResult<Vec<Pool>>;

    /// Removes a pool no node and no app uses (`AppError::PoolInUse` otherwise).
    async fn remove_pool(&self, name: &str) -> AppResult<()>;

    /// Makes an existing pool the default one (the one before it no longer is).
    async fn set_default_pool(&self, name: &str) -> AppResult<()>;

    /// Adds a node to an existing pool.
    async fn add_node(&self, node: Node) -> AppResult<()>;

    /// Every node, by address.
    async fn list_nodes(&self) -> AppResult<Vec<Node>>;

    /// Changes a node's pool (which must exist), metadata or status; returns it as it is now.
    async fn update_node(&self, address: &str, update: NodeUpdate) -> AppResult<Node>;

    async fn remove_node(&self, address: &str) -> AppResult<()>;
}

/// Applies `update` to `node` (both backends use it, so they agree on its meaning).
pub fn apply_node_update(node: &mut Node, update: NodeUpdate) {
    if let Some(pool) = update.pool {
        node.pool = pool;
    }
    for key in &update.remove_metadata {
        node.metadata.remove(key);
    }
    node.metadata.extend(update.set_metadata);
    if let Some(status) = update.status {
        node.status = status;
    }
}
