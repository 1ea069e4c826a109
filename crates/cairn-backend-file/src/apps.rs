//! The app store of a `file://` backend (`cairn app`, `cairn pool`, `cairn node`), under
//! `.pulumi/apps/`: one JSON file per app (`apps/<name>.json`: the app, its units, its lock's
//! hold and its whole release history), per pool (`pools/<name>.json`) and per node
//! (`nodes/<sha256 of the address>.json`). Every operation holds an exclusive `flock` on
//! `.lock` for its few milliseconds, which makes each one atomic between processes and
//! threads; each file is replaced atomically (written aside, fsynced, renamed, directory
//! fsynced), so a crash at any instant leaves every record whole, before or after the change.
//! A listing passes over a file it cannot read, so one damaged file does not hide the others;
//! reading that record by name says what is wrong with it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use cairn_app::names::{
    validate_app_name, validate_new_app, validate_node, validate_node_address, validate_pool_name,
};
use cairn_app::{
    App, AppDocument, AppError, AppLock, AppResult, AppStore, DEFAULT_POOL, NewApp, NewRelease,
    Node, NodeUpdate, Pool, Release, Unit, UnitStatus, apply_node_update,
};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::files::{sync_dir, write_atomically};

#[derive(Clone)]
pub struct FileAppStore {
    dir: PathBuf,
}

/// An app's file: its document and its releases, oldest first, written together.
#[derive(Serialize, Deserialize)]
struct AppFile {
    document: AppDocument,
    releases: Vec<Release>,
}

fn storage(action: &str, path: &Path, error: impl std::fmt::Display) -> AppError {
    AppError::Storage(format!("{action} {}: {error}", path.display()))
}

/// The store's files, while the lock is held.
struct Locked<'a> {
    dir: &'a Path,
}

impl FileAppStore {
    /// The app store of the backend at `root` (its `.pulumi/apps` directory, created when
    /// missing).
    pub fn open(root: &Path) -> AppResult<FileAppStore> {
        let dir = root.join(".pulumi").join("apps");
        for sub in ["apps", "pools", "nodes"] {
            let path = dir.join(sub);
            fs_err::create_dir_all(&path).map_err(|error| storage("creating", &path, error))?;
        }
        Ok(FileAppStore { dir })
    }

    /// Runs `operation` under the store's lock, off the async threads (it blocks on the lock
    /// and on fsync).
    async fn locked<T: Send + 'static>(
        &self,
        operation: impl FnOnce(&Locked) -> AppResult<T> + Send + 'static,
    ) -> AppResult<T> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            let _lock = crate::files::lock_directory(&dir, crate::files::DIRECTORY_LOCK_WAIT)
                .map_err(|error| storage("locking", &dir, error))?;
            operation(&Locked { dir: &dir })
        })
        .await
        .map_err(|error| AppError::Storage(format!("an app store operation failed: {error}")))?
    }

    /// Reads, changes and writes one app's file under the lock.
    async fn edit_app<T: Send + 'static>(
        &self,
        app: &str,
        edit: impl FnOnce(&mut AppFile, i64) -> AppResult<T> + Send + 'static,
    ) -> AppResult<T> {
        validate_app_name(app)?;
        let app = app.to_owned();
        self.locked(move |files| {
            let mut file = files.existing_app(&app)?;
            let result = edit(&mut file, crate::files::unix_now_millis())?;
            files.write_app(&file)?;
            Ok(result)
        })
        .await
    }

    /// Reads one app's file under the lock.
    async fn read_app<T: Send + 'static>(
        &self,
        app: &str,
        read: impl FnOnce(AppFile) -> T + Send + 'static,
    ) -> AppResult<T> {
        validate_app_name(app)?;
        let app = app.to_owned();
        self.locked(move |files| files.existing_app(&app).map(read))
            .await
    }
}

impl Locked<'_> {
    fn app_path(&self, name: &str) -> PathBuf {
        self.dir.join("apps").join(format!("{name}.json"))
    }

    fn pool_path(&self, name: &str) -> PathBuf {
        self.dir.join("pools").join(format!("{name}.json"))
    }

    /// A node's file is named by its address's digest: an address holds `/` and `:`.
    fn node_path(&self, address: &str) -> PathBuf {
        let digest = hex::encode(sha2::Sha256::digest(address.as_bytes()));
        self.dir.join("nodes").join(format!("{digest}.json"))
    }

    fn read<T: serde::de::DeserializeOwned>(&self, path: &Path) -> AppResult<Option<T>> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|error| storage("reading", path, error)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(storage("reading", path, error)),
        }
    }

    fn write<T: Serialize>(&self, path: &Path, value: &T) -> AppResult<()> {
        let bytes =
            serde_json::to_vec(value).map_err(|error| AppError::Storage(error.to_string()))?;
        write_atomically(path, &bytes).map_err(|error| AppError::Storage(error.to_string()))
    }

    fn remove(&self, path: &Path) -> AppResult<()> {
        std::fs::remove_file(path).map_err(|error| storage("removing", path, error))?;
        let dir = path.parent().unwrap_or(self.dir);
        sync_dir(dir).map_err(|error| AppError::Storage(error.to_string()))
    }

    /// Every readable record in `sub`, skipping damaged files (see the module's comment).
    fn scan<T: serde::de::DeserializeOwned>(&self, sub: &str) -> AppResult<Vec<T>> {
        let dir = self.dir.join(sub);
        let entries = std::fs::read_dir(&dir).map_err(|error| storage("listing", &dir, error))?;
        let mut paths: Vec<PathBuf> = entries
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| {
                let name = path.file_name().map(|name| name.to_string_lossy());
                name.is_some_and(|name| name.ends_with(".json") && !name.starts_with('.'))
            })
            .collect();
        paths.sort();
        Ok(paths
            .iter()
            .filter_map(|path| self.read(path).ok().flatten())
            .collect())
    }

    fn existing_app(&self, name: &str) -> AppResult<AppFile> {
        self.read(&self.app_path(name))?
            .ok_or_else(|| AppError::AppNotFound(name.to_owned()))
    }

    fn write_app(&self, file: &AppFile) -> AppResult<()> {
        self.write(&self.app_path(&file.document.app.name), file)
    }

    fn pools(&self) -> AppResult<Vec<Pool>> {
        let mut pools: Vec<Pool> = self.scan("pools")?;
        pools.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(pools)
    }

    fn nodes(&self) -> AppResult<Vec<Node>> {
        let mut nodes: Vec<Node> = self.scan("nodes")?;
        nodes.sort_by(|a, b| a.address.cmp(&b.address));
        Ok(nodes)
    }

    /// Whether an app may be placed in `pool`: it exists, or it is the implicit default pool
    /// while no pool does.
    fn check_pool_exists(&self, pool: &str) -> AppResult<()> {
        if self.pool_path(pool).exists() {
            return Ok(());
        }
        if pool == DEFAULT_POOL && self.pools()?.is_empty() {
            return Ok(());
        }
        Err(AppError::PoolNotFound(pool.to_owned()))
    }

    fn existing_node(&self, address: &str) -> AppResult<Node> {
        self.read(&self.node_path(address))?
            .ok_or_else(|| AppError::NodeNotFound(address.to_owned()))
    }
}

#[async_trait]
impl AppStore for FileAppStore {
    async fn create_app(&self, app: NewApp) -> AppResult<App> {
        validate_new_app(&app)?;
        self.locked(move |files| {
            if files.app_path(&app.name).exists() {
                return Err(AppError::AppExists(app.name));
            }
            files.check_pool_exists(&app.pool)?;
            let record = App {
                name: app.name,
                pool: app.pool,
                processes: app.processes,
                env: Default::default(),
                release: None,
                image: None,
                encryption_salt: None,
                created_ms: crate::files::unix_now_millis(),
                cnames: Vec::new(),
            };
            files.write_app(&AppFile {
                document: AppDocument::new(record.clone()),
                releases: Vec::new(),
            })?;
            Ok(record)
        })
        .await
    }

    async fn list_apps(&self) -> AppResult<Vec<App>> {
        self.locked(|files| {
            let mut apps: Vec<App> = files
                .scan::<AppFile>("apps")?
                .into_iter()
                .map(|file| file.document.app)
                .collect();
            apps.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(apps)
        })
        .await
    }

    async fn app(&self, name: &str) -> AppResult<Option<App>> {
        match self.read_app(name, |file| file.document.app).await {
            Ok(app) => Ok(Some(app)),
            Err(AppError::AppNotFound(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn remove_app(&self, lock: &AppLock) -> AppResult<()> {
        validate_app_name(&lock.app)?;
        let lock = lock.clone();
        self.locked(move |files| {
            let file = files
                .existing_app(&lock.app)
                .map_err(|error| lost_if_gone(error, &lock))?;
            file.document
                .check_lock(&lock, crate::files::unix_now_millis())?;
            files.remove(&files.app_path(&lock.app))
        })
        .await
    }

    async fn lock_app(&self, app: &str, holder: &str, lease: Duration) -> AppResult<AppLock> {
        let holder = holder.to_owned();
        self.edit_app(app, move |file, now| {
            file.document.take_lock(&holder, lease, now)
        })
        .await
    }

    async fn renew_lock(&self, lock: &AppLock, lease: Duration) -> AppResult<()> {
        let held = lock.clone();
        self.edit_app(&lock.app, move |file, now| {
            file.document.renew_lock(&held, lease, now)
        })
        .await
        .map_err(|error| lost_if_gone(error, lock))
    }

    async fn unlock_app(&self, lock: &AppLock) -> AppResult<()> {
        let held = lock.clone();
        match self
            .edit_app(&lock.app, move |file, _| {
                file.document.release_lock(&held);
                Ok(())
            })
            .await
        {
            Err(AppError::AppNotFound(_)) => Ok(()),
            other => other,
        }
    }

    async fn break_lock(&self, app: &str) -> AppResult<Option<String>> {
        self.edit_app(app, |file, _| Ok(file.document.break_lock()))
            .await
    }

    async fn append_release(&self, lock: &AppLock, release: NewRelease) -> AppResult<Release> {
        let held = lock.clone();
        self.edit_app(&lock.app, move |file, now| {
            let release = file.document.append_release(&held, release, now)?;
            file.releases.push(release.clone());
            Ok(release)
        })
        .await
        .map_err(|error| lost_if_gone(error, lock))
    }

    async fn releases(&self, app: &str) -> AppResult<Vec<Release>> {
        self.read_app(app, |file| file.releases).await
    }

    async fn add_unit(&self, lock: &AppLock, unit: Unit) -> AppResult<()> {
        let held = lock.clone();
        self.edit_app(&lock.app, move |file, now| {
            file.document.add_unit(&held, unit, now)
        })
        .await
        .map_err(|error| lost_if_gone(error, lock))
    }

    async fn add_cname(&self, lock: &AppLock, cname: &str) -> AppResult<()> {
        validate_app_name(&lock.app)?;
        let (held, cname) = (lock.clone(), cairn_app::names::normalize_cname(cname));
        cairn_app::names::validate_cname(&cname)?;
        self.locked(move |files| {
            // Under the store's lock, so no other app takes the name meanwhile.
            let holder = files
                .scan::<AppFile>("apps")?
                .into_iter()
                .find(|file| file.document.app.cnames.contains(&cname));
            if let Some(holder) = holder
                && holder.document.app.name != held.app
            {
                return Err(AppError::Invalid(format!(
                    "host name `{cname}` belongs to app `{}`",
                    holder.document.app.name
                )));
            }
            let mut file = files.existing_app(&held.app)?;
            file.document
                .add_cname(&held, &cname, crate::files::unix_now_millis())?;
            files.write_app(&file)
        })
        .await
        .map_err(|error| lost_if_gone(error, lock))
    }

    async fn remove_cname(&self, lock: &AppLock, cname: &str) -> AppResult<()> {
        let (held, cname) = (lock.clone(), cairn_app::names::normalize_cname(cname));
        self.edit_app(&lock.app, move |file, now| {
            file.document.remove_cname(&held, &cname, now)
        })
        .await
        .map_err(|error| lost_if_gone(error, lock))
    }

    async fn remove_unit(&self, lock: &AppLock, unit_id: &str) -> AppResult<Unit> {
        let (held, unit_id) = (lock.clone(), unit_id.to_owned());
        self.edit_app(&lock.app, move |file, now| {
            file.document.remove_unit(&held, &unit_id, now)
        })
        .await
        .map_err(|error| lost_if_gone(error, lock))
    }

    async fn units(&self, app: &str) -> AppResult<Vec<Unit>> {
        self.read_app(app, |file| file.document.units).await
    }

    async fn set_unit_status(
        &self,
        app: &str,
        unit_id: &str,
        status: UnitStatus,
    ) -> AppResult<UnitStatus> {
        let unit_id = unit_id.to_owned();
        self.edit_app(app, move |file, _| {
            file.document.set_unit_status(&unit_id, status)
        })
        .await
    }

    async fn add_pool(&self, pool: Pool) -> AppResult<()> {
        validate_pool_name(&pool.name)?;
        self.locked(move |files| {
            let path = files.pool_path(&pool.name);
            if path.exists() {
                return Err(AppError::PoolExists(pool.name));
            }
            // The new pool is written first: a crash before the old default is cleared
            // leaves two defaults, of which the first by name is used, never none.
            files.write(&path, &pool)?;
            if pool.is_default {
                for mut other in files.pools()? {
                    if other.is_default && other.name != pool.name {
                        other.is_default = false;
                        files.write(&files.pool_path(&other.name), &other)?;
                    }
                }
            }
            Ok(())
        })
        .await
    }

    async fn list_pools(&self) -> AppResult<Vec<Pool>> {
        self.locked(|files| files.pools()).await
    }

    async fn set_default_pool(&self, name: &str) -> AppResult<()> {
        validate_pool_name(name)?;
        let name = name.to_owned();
        self.locked(move |files| {
            let pools = files.pools()?;
            let Some(mut chosen) = pools.iter().find(|pool| pool.name == name).cloned() else {
                return Err(AppError::PoolNotFound(name));
            };
            // The new default is written first, as `add_pool` does: never none.
            chosen.is_default = true;
            files.write(&files.pool_path(&chosen.name), &chosen)?;
            for mut other in pools {
                if other.is_default && other.name != name {
                    other.is_default = false;
                    files.write(&files.pool_path(&other.name), &other)?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn remove_pool(&self, name: &str) -> AppResult<()> {
        validate_pool_name(name)?;
        let name = name.to_owned();
        self.locked(move |files| {
            let path = files.pool_path(&name);
            if !path.exists() {
                return Err(AppError::PoolNotFound(name));
            }
            let in_use = |reason: String| AppError::PoolInUse {
                pool: name.clone(),
                reason,
            };
            if let Some(node) = files.nodes()?.into_iter().find(|node| node.pool == name) {
                return Err(in_use(format!("node `{}` is in it", node.address)));
            }
            let apps: Vec<AppFile> = files.scan("apps")?;
            if let Some(file) = apps.iter().find(|file| file.document.app.pool == name) {
                return Err(in_use(format!("app `{}` is in it", file.document.app.name)));
            }
            files.remove(&path)
        })
        .await
    }

    async fn add_node(&self, node: Node) -> AppResult<()> {
        validate_node(&node)?;
        self.locked(move |files| {
            let path = files.node_path(&node.address);
            if path.exists() {
                return Err(AppError::NodeExists(node.address));
            }
            if !files.pool_path(&node.pool).exists() {
                return Err(AppError::PoolNotFound(node.pool));
            }
            files.write(&path, &node)
        })
        .await
    }

    async fn list_nodes(&self) -> AppResult<Vec<Node>> {
        self.locked(|files| files.nodes()).await
    }

    async fn update_node(&self, address: &str, update: NodeUpdate) -> AppResult<Node> {
        validate_node_address(address)?;
        let address = address.to_owned();
        self.locked(move |files| {
            let mut node = files.existing_node(&address)?;
            apply_node_update(&mut node, update);
            validate_node(&node)?;
            if !files.pool_path(&node.pool).exists() {
                return Err(AppError::PoolNotFound(node.pool));
            }
            files.write(&files.node_path(&address), &node)?;
            Ok(node)
        })
        .await
    }

    async fn remove_node(&self, address: &str) -> AppResult<()> {
        validate_node_address(address)?;
        let address = address.to_owned();
        self.locked(move |files| {
            let path = files.node_path(&address);
            if !path.exists() {
                return Err(AppError::NodeNotFound(address));
            }
            files.remove(&path)
        })
        .await
    }
}

/// A lock's app that is gone was removed by whoever held the lock after it: to the writer,
/// its lock is lost.
fn lost_if_gone(error: AppError, lock: &AppLock) -> AppError {
    match error {
        AppError::AppNotFound(_) => AppError::LockLost(lock.app.clone()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cairn_app::AppStore;

    use super::FileAppStore;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_app_store_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileAppStore::open(dir.path()).unwrap();
        cairn_app::conformance::run_all(Arc::new(store)).await;
    }

    /// Two handles on one directory (two processes' worth) share apps and their locks.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn separate_handles_share_apps_and_locks() {
        let dir = tempfile::tempdir().unwrap();
        let first = FileAppStore::open(dir.path()).unwrap();
        let second = FileAppStore::open(dir.path()).unwrap();
        let app = cairn_app::NewApp {
            name: "shared".to_owned(),
            pool: "default".to_owned(),
            processes: Vec::new(),
        };
        first.create_app(app).await.unwrap();
        let lease = std::time::Duration::from_secs(30);
        let _lock = first.lock_app("shared", "one", lease).await.unwrap();
        assert!(matches!(
            second.lock_app("shared", "two", lease).await,
            Err(cairn_app::AppError::Locked { .. })
        ));
    }

    /// A damaged app file is passed over by the listing, and named when read.
    #[tokio::test]
    async fn a_damaged_app_file_does_not_hide_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileAppStore::open(dir.path()).unwrap();
        for name in ["good", "bad"] {
            let app = cairn_app::NewApp {
                name: name.to_owned(),
                pool: "default".to_owned(),
                processes: Vec::new(),
            };
            store.create_app(app).await.unwrap();
        }
        let bad = dir.path().join(".pulumi/apps/apps/bad.json");
        std::fs::write(&bad, b"{\"document\": tru").unwrap();
        let names: Vec<String> = store
            .list_apps()
            .await
            .unwrap()
            .into_iter()
            .map(|app| app.name)
            .collect();
        assert_eq!(names, ["good"]);
        let error = store.app("bad").await.unwrap_err().to_string();
        assert!(error.starts_with("reading "), "{error}");
        assert!(error.contains("bad.json"), "{error}");
    }
}

/// `cairn_app::ops::with_lock` against a real store: the lease is renewed while a change runs
/// longer than it, and a killed writer's lock is waited out, not reported.
#[cfg(test)]
mod lock_tests {
    use std::time::Duration;

    use cairn_app::ops::with_lock_leased;
    use cairn_app::{AppError, AppStore, NewApp, NewRelease};

    use super::FileAppStore;

    const LEASE: Duration = Duration::from_millis(300);

    fn new_app(name: &str) -> NewApp {
        NewApp {
            name: name.to_owned(),
            pool: "default".to_owned(),
            processes: Vec::new(),
        }
    }

    fn release(reason: &str) -> NewRelease {
        NewRelease {
            image: None,
            env: Default::default(),
            processes: Vec::new(),
            encryption_salt: None,
            reason: reason.to_owned(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_change_longer_than_the_lease_keeps_its_lock() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileAppStore::open(dir.path()).unwrap();
        store.create_app(new_app("slow")).await.unwrap();
        let released = with_lock_leased(&store, "slow", "slow change", LEASE, async |lock| {
            // Three leases long: without renewal, the lock would be anyone's by now.
            tokio::time::sleep(LEASE * 3).await;
            assert!(matches!(
                store.lock_app("slow", "intruder", LEASE).await,
                Err(AppError::Locked { .. })
            ));
            store.append_release(lock, release("slow")).await
        })
        .await
        .unwrap();
        assert_eq!(released.version, 1);
        // And it was given up at the end.
        store.lock_app("slow", "next", LEASE).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_killed_writers_lock_is_waited_out() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileAppStore::open(dir.path()).unwrap();
        store.create_app(new_app("orphan")).await.unwrap();
        // Taken and never renewed nor given up, as by a writer killed with SIGKILL.
        let _orphaned = store.lock_app("orphan", "killed", LEASE).await.unwrap();
        let release = with_lock_leased(&store, "orphan", "next", LEASE, async |lock| {
            store.append_release(lock, release("after the kill")).await
        })
        .await
        .unwrap();
        assert_eq!(release.reason, "after the kill");
    }
}
