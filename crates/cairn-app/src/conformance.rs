//! The app store conformance suite: the checks every `AppStore` must pass, run by each backend
//! crate's tests against a fresh, empty store (`run_all`). Each panics with what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::{
    AppError, AppStore, EnvValue, NewApp, NewRelease, Node, NodeStatus, NodeUpdate, Pool, Process,
    Unit, UnitStatus,
};

const LEASE: Duration = Duration::from_secs(30);

fn new_app(name: &str, pool: &str) -> NewApp {
    NewApp {
        name: name.to_owned(),
        pool: pool.to_owned(),
        processes: vec![Process {
            name: "web".to_owned(),
            command: "./server".to_owned(),
        }],
    }
}

fn release(reason: &str, env: &[(&str, EnvValue)]) -> NewRelease {
    NewRelease {
        image: Some("registry.local/app:1".to_owned()),
        env: env
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .collect(),
        processes: vec![Process {
            name: "web".to_owned(),
            command: "./server --port $PORT".to_owned(),
        }],
        encryption_salt: Some("cairn-v1:salt:check".to_owned()),
        reason: reason.to_owned(),
    }
}

fn unit(app: &str, id: &str) -> Unit {
    Unit {
        id: id.to_owned(),
        name: format!("{app}-web-{id}"),
        app: app.to_owned(),
        process: "web".to_owned(),
        node: Some("unix:///var/run/docker.sock".to_owned()),
        address: Some("172.17.0.2:8888".to_owned()),
        status: UnitStatus::Created,
    }
}

fn pool(name: &str, is_default: bool) -> Pool {
    Pool {
        name: name.to_owned(),
        provisioner: "docker".to_owned(),
        is_default,
    }
}

fn node(address: &str, pool: &str) -> Node {
    Node {
        address: address.to_owned(),
        pool: pool.to_owned(),
        metadata: BTreeMap::from([("zone".to_owned(), "a".to_owned())]),
        status: NodeStatus::Enabled,
    }
}

/// Runs every check. The apps checks run first, while no pool exists (the implicit default
/// pool is only there then).
pub async fn run_all(store: Arc<dyn AppStore>) {
    apps_are_created_listed_and_removed(store.as_ref()).await;
    releases_are_numbered_kept_and_current(store.as_ref()).await;
    the_lock_has_one_writer_and_fences_lost_writers(store.as_ref()).await;
    unit_statuses_follow_tsurus_flow_and_are_persisted(store.as_ref()).await;
    concurrent_lockers_get_the_lock_once(store.clone()).await;
    host_names_are_kept_unique_across_apps(store.as_ref()).await;
    pools_and_nodes_are_kept_and_checked(store.as_ref()).await;
}

pub async fn apps_are_created_listed_and_removed(store: &dyn AppStore) {
    let app = store.create_app(new_app("shop", "default")).await.unwrap();
    assert_eq!(app.name, "shop");
    assert_eq!(app.pool, "default");
    assert_eq!(app.release, None);
    assert!(app.env.is_empty());
    assert!(matches!(
        store.create_app(new_app("shop", "default")).await,
        Err(AppError::AppExists(name)) if name == "shop"
    ));
    store.create_app(new_app("blog", "default")).await.unwrap();
    let names: Vec<String> = store
        .list_apps()
        .await
        .unwrap()
        .into_iter()
        .map(|app| app.name)
        .collect();
    assert_eq!(names, ["blog", "shop"]);
    assert_eq!(store.app("shop").await.unwrap(), Some(app));
    assert_eq!(store.app("nope").await.unwrap(), None);

    // Names are refused before they reach a path or a query, and so are pools that do not
    // exist (only `default` exists implicitly, while no pool does).
    for bad in ["../etc", "Shop", "a/b", "", "x'; DROP TABLE cairn_apps; --"] {
        assert!(
            matches!(
                store.create_app(new_app(bad, "default")).await,
                Err(AppError::Invalid(_))
            ),
            "`{bad}` was not refused"
        );
        assert!(matches!(store.app(bad).await, Err(AppError::Invalid(_))));
    }
    assert!(matches!(
        store.create_app(new_app("elsewhere", "eu")).await,
        Err(AppError::PoolNotFound(pool)) if pool == "eu"
    ));

    let lock = store.lock_app("blog", "test", LEASE).await.unwrap();
    store
        .append_release(&lock, release("deploy", &[]))
        .await
        .unwrap();
    store.add_unit(&lock, unit("blog", "u1")).await.unwrap();
    store.remove_app(&lock).await.unwrap();
    assert_eq!(store.app("blog").await.unwrap(), None);
    assert!(matches!(
        store.releases("blog").await,
        Err(AppError::AppNotFound(_))
    ));
    // The removed app's lock went with it.
    assert!(matches!(
        store.append_release(&lock, release("late", &[])).await,
        Err(AppError::LockLost(_) | AppError::AppNotFound(_))
    ));
    store.unlock_app(&lock).await.unwrap_or(());
    // A new app of the same name starts a history of its own.
    store.create_app(new_app("blog", "default")).await.unwrap();
    let lock = store.lock_app("blog", "test", LEASE).await.unwrap();
    let first = store
        .append_release(&lock, release("deploy", &[]))
        .await
        .unwrap();
    assert_eq!(first.version, 1);
    assert!(store.units("blog").await.unwrap().is_empty());
    store.remove_app(&lock).await.unwrap();
    assert!(matches!(
        store.lock_app("blog", "test", LEASE).await,
        Err(AppError::AppNotFound(_))
    ));
}

pub async fn releases_are_numbered_kept_and_current(store: &dyn AppStore) {
    store
        .create_app(new_app("ledger", "default"))
        .await
        .unwrap();
    assert!(store.releases("ledger").await.unwrap().is_empty());
    let lock = store.lock_app("ledger", "test", LEASE).await.unwrap();
    let first = store
        .append_release(
            &lock,
            release("env set A", &[("A", EnvValue::Plain("1".to_owned()))]),
        )
        .await
        .unwrap();
    let secret = EnvValue::Secret("v1:bm9uY2U=:c2VhbGVk".to_owned());
    let second = store
        .append_release(
            &lock,
            release(
                "env set B",
                &[
                    ("A", EnvValue::Plain("1".to_owned())),
                    ("B", secret.clone()),
                ],
            ),
        )
        .await
        .unwrap();
    store.unlock_app(&lock).await.unwrap();
    assert_eq!((first.version, second.version), (1, 2));
    assert!(second.created_ms >= first.created_ms);
    assert_eq!(second.reason, "env set B");
    let history = store.releases("ledger").await.unwrap();
    assert_eq!(history, [first, second.clone()]);
    let app = store.app("ledger").await.unwrap().unwrap();
    assert_eq!(app.release, Some(2));
    assert_eq!(app.env, second.env);
    assert_eq!(app.env["B"], secret);
    assert_eq!(app.processes, second.processes);
    assert_eq!(app.image.as_deref(), Some("registry.local/app:1"));
    assert_eq!(app.encryption_salt.as_deref(), Some("cairn-v1:salt:check"));
    assert!(matches!(
        store.releases("missing").await,
        Err(AppError::AppNotFound(_))
    ));
}

pub async fn the_lock_has_one_writer_and_fences_lost_writers(store: &dyn AppStore) {
    store.create_app(new_app("locky", "default")).await.unwrap();
    let first = store.lock_app("locky", "first", LEASE).await.unwrap();
    match store.lock_app("locky", "second", LEASE).await {
        Err(AppError::Locked { app, holder, .. }) => {
            assert_eq!((app.as_str(), holder.as_str()), ("locky", "first"));
        }
        other => panic!("a held lock was given again: {other:?}"),
    }
    store.renew_lock(&first, LEASE).await.unwrap();
    store.unlock_app(&first).await.unwrap();
    // An unlocked writer writes nothing more, even before anyone else takes the lock.
    assert!(matches!(
        store.append_release(&first, release("late", &[])).await,
        Err(AppError::LockLost(_))
    ));

    // A lease that runs out is taken over, and the writer that had it is fenced off.
    let short = store
        .lock_app("locky", "frozen", Duration::from_millis(200))
        .await
        .unwrap();
    store.add_unit(&short, unit("locky", "u1")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let next = store.lock_app("locky", "next", LEASE).await.unwrap();
    assert_ne!(next.token, short.token);
    assert!(matches!(
        store.append_release(&short, release("frozen", &[])).await,
        Err(AppError::LockLost(_))
    ));
    assert!(matches!(
        store.add_unit(&short, unit("locky", "u2")).await,
        Err(AppError::LockLost(_))
    ));
    assert!(matches!(
        store.remove_unit(&short, "u1").await,
        Err(AppError::LockLost(_))
    ));
    assert!(matches!(
        store.renew_lock(&short, LEASE).await,
        Err(AppError::LockLost(_))
    ));
    assert!(matches!(
        store.remove_app(&short).await,
        Err(AppError::LockLost(_))
    ));
    // The fenced writer's unlock does not release the new holder's lock.
    store.unlock_app(&short).await.unwrap();
    assert!(matches!(
        store.lock_app("locky", "third", LEASE).await,
        Err(AppError::Locked { .. })
    ));
    assert!(store.releases("locky").await.unwrap().is_empty());
    assert_eq!(store.units("locky").await.unwrap().len(), 1);
    store
        .append_release(&next, release("next", &[]))
        .await
        .unwrap();

    // Breaking a lock ends its holder's writes, and frees the app for the next writer.
    assert_eq!(
        store.break_lock("locky").await.unwrap().as_deref(),
        Some("next")
    );
    assert!(matches!(
        store.append_release(&next, release("broken", &[])).await,
        Err(AppError::LockLost(_))
    ));
    assert_eq!(store.break_lock("locky").await.unwrap(), None);
    let last = store.lock_app("locky", "last", LEASE).await.unwrap();
    assert_eq!(store.releases("locky").await.unwrap().len(), 1);
    store.remove_app(&last).await.unwrap();
    assert!(matches!(
        store.break_lock("locky").await,
        Err(AppError::AppNotFound(_))
    ));
}

pub async fn unit_statuses_follow_tsurus_flow_and_are_persisted(store: &dyn AppStore) {
    store.create_app(new_app("units", "default")).await.unwrap();
    let lock = store.lock_app("units", "provisioner", LEASE).await.unwrap();
    store.add_unit(&lock, unit("units", "u1")).await.unwrap();
    store.add_unit(&lock, unit("units", "u2")).await.unwrap();
    assert!(matches!(
        store.add_unit(&lock, unit("units", "u1")).await,
        Err(AppError::UnitExists { .. })
    ));
    assert!(matches!(
        store.add_unit(&lock, unit("other", "u3")).await,
        Err(AppError::Invalid(_))
    ));
    store.unlock_app(&lock).await.unwrap();

    // Statuses need no lock: they are reported by whoever watches the units.
    for (to, from) in [
        (UnitStatus::Building, UnitStatus::Created),
        (UnitStatus::Starting, UnitStatus::Building),
        (UnitStatus::Started, UnitStatus::Starting),
        (UnitStatus::Started, UnitStatus::Started),
        (UnitStatus::Asleep, UnitStatus::Started),
    ] {
        assert_eq!(
            store.set_unit_status("units", "u1", to).await.unwrap(),
            from
        );
        let units = store.units("units").await.unwrap();
        assert_eq!(units[0].status, to, "not persisted at once");
    }
    match store
        .set_unit_status("units", "u1", UnitStatus::Started)
        .await
    {
        Err(AppError::ForbiddenTransition { from, to }) => {
            assert_eq!((from, to), (UnitStatus::Asleep, UnitStatus::Started));
        }
        other => panic!("asleep -> started was allowed: {other:?}"),
    }
    assert_eq!(
        store.units("units").await.unwrap()[0].status,
        UnitStatus::Asleep
    );
    assert!(matches!(
        store
            .set_unit_status("units", "u2", UnitStatus::Stopped)
            .await,
        Err(AppError::ForbiddenTransition { .. })
    ));
    assert!(matches!(
        store
            .set_unit_status("units", "nope", UnitStatus::Error)
            .await,
        Err(AppError::UnitNotFound { .. })
    ));
    assert!(matches!(
        store
            .set_unit_status("missing", "u1", UnitStatus::Error)
            .await,
        Err(AppError::AppNotFound(_))
    ));

    let lock = store.lock_app("units", "provisioner", LEASE).await.unwrap();
    let removed = store.remove_unit(&lock, "u1").await.unwrap();
    assert_eq!(removed.status, UnitStatus::Asleep);
    let ids: Vec<String> = store
        .units("units")
        .await
        .unwrap()
        .into_iter()
        .map(|unit| unit.id)
        .collect();
    assert_eq!(ids, ["u2"]);
    assert!(matches!(
        store.remove_unit(&lock, "u1").await,
        Err(AppError::UnitNotFound { .. })
    ));
    store.remove_app(&lock).await.unwrap();
}

pub async fn concurrent_lockers_get_the_lock_once(store: Arc<dyn AppStore>) {
    store.create_app(new_app("race", "default")).await.unwrap();
    let mut tasks = Vec::new();
    for index in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .lock_app("race", &format!("writer-{index}"), LEASE)
                .await
        }));
    }
    let mut winners = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => winners += 1,
            Err(AppError::Locked { .. }) => {}
            Err(other) => panic!("a locker failed: {other}"),
        }
    }
    assert_eq!(winners, 1);
}

pub async fn pools_and_nodes_are_kept_and_checked(store: &dyn AppStore) {
    store.add_pool(pool("eu", true)).await.unwrap();
    store.add_pool(pool("us", false)).await.unwrap();
    assert!(matches!(
        store.add_pool(pool("eu", false)).await,
        Err(AppError::PoolExists(_))
    ));
    assert!(matches!(
        store.add_pool(pool("Bad Pool", false)).await,
        Err(AppError::Invalid(_))
    ));
    // A new default pool takes the flag from the old one.
    store.add_pool(pool("asia", true)).await.unwrap();
    let pools = store.list_pools().await.unwrap();
    let summary: Vec<(&str, bool)> = pools
        .iter()
        .map(|pool| (pool.name.as_str(), pool.is_default))
        .collect();
    assert_eq!(summary, [("asia", true), ("eu", false), ("us", false)]);
    // An existing pool can be made the default again.
    store.set_default_pool("us").await.unwrap();
    assert!(matches!(
        store.set_default_pool("nope").await,
        Err(AppError::PoolNotFound(_))
    ));
    let pools = store.list_pools().await.unwrap();
    let defaults: Vec<&str> = pools
        .iter()
        .filter(|pool| pool.is_default)
        .map(|pool| pool.name.as_str())
        .collect();
    assert_eq!(defaults, ["us"]);
    store.set_default_pool("asia").await.unwrap();
    // Once pools exist, the implicit default pool does not.
    assert!(matches!(
        store.create_app(new_app("late", "default")).await,
        Err(AppError::PoolNotFound(_))
    ));

    store
        .add_node(node("unix:///var/run/docker.sock", "eu"))
        .await
        .unwrap();
    store
        .add_node(node("tcp://10.0.0.2:2375", "eu"))
        .await
        .unwrap();
    assert!(matches!(
        store.add_node(node("tcp://10.0.0.2:2375", "us")).await,
        Err(AppError::NodeExists(_))
    ));
    assert!(matches!(
        store.add_node(node("tcp://10.0.0.3:2375", "mars")).await,
        Err(AppError::PoolNotFound(_))
    ));
    assert!(matches!(
        store.add_node(node("/var/run/docker.sock", "eu")).await,
        Err(AppError::Invalid(_))
    ));
    let addresses: Vec<String> = store
        .list_nodes()
        .await
        .unwrap()
        .into_iter()
        .map(|node| node.address)
        .collect();
    assert_eq!(
        addresses,
        ["tcp://10.0.0.2:2375", "unix:///var/run/docker.sock"]
    );

    let updated = store
        .update_node(
            "tcp://10.0.0.2:2375",
            NodeUpdate {
                pool: Some("us".to_owned()),
                set_metadata: BTreeMap::from([("disk".to_owned(), "ssd".to_owned())]),
                remove_metadata: vec!["zone".to_owned()],
                status: Some(NodeStatus::Disabled),
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.pool, "us");
    assert_eq!(
        updated.metadata,
        BTreeMap::from([("disk".to_owned(), "ssd".to_owned())])
    );
    assert_eq!(updated.status, NodeStatus::Disabled);
    let nodes = store.list_nodes().await.unwrap();
    assert_eq!(nodes[0], updated);
    assert!(matches!(
        store
            .update_node(
                "tcp://10.0.0.2:2375",
                NodeUpdate {
                    pool: Some("mars".to_owned()),
                    ..NodeUpdate::default()
                }
            )
            .await,
        Err(AppError::PoolNotFound(_))
    ));
    assert!(matches!(
        store
            .update_node("tcp://10.9.9.9:1", NodeUpdate::default())
            .await,
        Err(AppError::NodeNotFound(_))
    ));

    // A pool in use by a node or an app stays.
    assert!(matches!(
        store.remove_pool("us").await,
        Err(AppError::PoolInUse { .. })
    ));
    store.create_app(new_app("euro", "eu")).await.unwrap();
    store
        .remove_node("unix:///var/run/docker.sock")
        .await
        .unwrap();
    assert!(matches!(
        store.remove_pool("eu").await,
        Err(AppError::PoolInUse { .. })
    ));
    assert!(matches!(
        store.remove_node("unix:///var/run/docker.sock").await,
        Err(AppError::NodeNotFound(_))
    ));
    store.remove_node("tcp://10.0.0.2:2375").await.unwrap();
    store.remove_pool("us").await.unwrap();
    assert!(matches!(
        store.remove_pool("us").await,
        Err(AppError::PoolNotFound(_))
    ));
    let names: Vec<String> = store
        .list_pools()
        .await
        .unwrap()
        .into_iter()
        .map(|pool| pool.name)
        .collect();
    assert_eq!(names, ["asia", "eu"]);
}

pub async fn host_names_are_kept_unique_across_apps(store: &dyn AppStore) {
    store.create_app(new_app("named", "default")).await.unwrap();
    store
        .create_app(new_app("other-named", "default"))
        .await
        .unwrap();
    let lock = store.lock_app("named", "test", LEASE).await.unwrap();
    store.add_cname(&lock, "WWW.Example.com.").await.unwrap();
    store.add_cname(&lock, "shop.example.com").await.unwrap();
    // Adding one the app has changes nothing.
    store.add_cname(&lock, "www.example.com").await.unwrap();
    assert!(matches!(
        store.add_cname(&lock, "not a name").await,
        Err(AppError::Invalid(_))
    ));
    assert!(matches!(
        store.add_cname(&lock, "localhost").await,
        Err(AppError::Invalid(_))
    ));
    let app = store.app("named").await.unwrap().unwrap();
    assert_eq!(app.cnames, ["www.example.com", "shop.example.com"]);
    let listed = store.list_apps().await.unwrap();
    let listed = listed.iter().find(|app| app.name == "named").unwrap();
    assert_eq!(listed.cnames, ["www.example.com", "shop.example.com"]);

    // Another app cannot take it, until it is given up.
    let other = store.lock_app("other-named", "test", LEASE).await.unwrap();
    match store.add_cname(&other, "www.example.com").await {
        Err(AppError::Invalid(message)) => assert!(message.contains("`named`"), "{message}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    store.remove_cname(&lock, "www.example.com").await.unwrap();
    assert!(matches!(
        store.remove_cname(&lock, "www.example.com").await,
        Err(AppError::Invalid(_))
    ));
    store.add_cname(&other, "www.example.com").await.unwrap();
    assert_eq!(
        store.app("named").await.unwrap().unwrap().cnames,
        ["shop.example.com"]
    );

    // A lost lock writes no host name.
    store.unlock_app(&lock).await.unwrap();
    assert!(matches!(
        store.add_cname(&lock, "late.example.com").await,
        Err(AppError::LockLost(_))
    ));
    store.remove_app(&other).await.unwrap();
    let lock = store.lock_app("named", "test", LEASE).await.unwrap();
    store.remove_app(&lock).await.unwrap();
}
