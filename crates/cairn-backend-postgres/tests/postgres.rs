//! The postgres backend against a real PostgreSQL server (a throwaway cluster started here):
//! the conformance suite, two machines racing for one stack's lock, concurrent migrations, and
//! a lost connection surfacing as an error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use cairn_backend_postgres::PostgresBackend;
use cairn_backend_postgres::test_cluster::TestCluster;
use cairn_state::{Backend, BackendError, LockOwner, StackRef};

/// A cluster of the test's own, stopped when the test ends (nextest runs each test in a
/// process of its own, so a shared static one would outlive them).
fn cluster() -> TestCluster {
    TestCluster::start().unwrap_or_else(|error| {
        panic!("these tests need PostgreSQL and it could not start: {error}")
    })
}

/// Cuts every session of the database at `url`, as a server restart or a network cut does.
async fn cut_every_session(cluster: &TestCluster, url: &str) {
    let (admin, connection) = tokio_postgres::connect(&cluster.admin_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let database = url.rsplit('/').next().unwrap().to_owned();
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            &[&database],
        )
        .await
        .unwrap();
}

fn owner(host: &str) -> LockOwner {
    LockOwner {
        pid: 1,
        host: host.to_owned(),
        user: "tester".to_owned(),
        command: "cairn up".to_owned(),
        started: 0,
        heartbeat: 0,
        is_stale: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_backend_conformance_suite() {
    let cluster = cluster();
    let url = cluster.new_database().await.unwrap();
    let backend = PostgresBackend::connect(&url).await.unwrap();
    cairn_state::conformance::run_all(&backend).await;
    assert_eq!(backend.current_user().await.unwrap(), "postgres");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_machines_racing_for_a_stack_exactly_one_gets_it() {
    let cluster = cluster();
    let url = cluster.new_database().await.unwrap();
    let first = Arc::new(PostgresBackend::connect(&url).await.unwrap());
    let second = Arc::new(PostgresBackend::connect(&url).await.unwrap());
    let stack = StackRef::parse("dev", "race").unwrap();
    first.create_stack(&stack).await.unwrap();
    for _ in 0..10 {
        let (a, b) = tokio::join!(
            first.lock_stack(&stack, owner("machine-a")),
            second.lock_stack(&stack, owner("machine-b"))
        );
        let winners = [a.is_ok(), b.is_ok()].iter().filter(|won| **won).count();
        assert_eq!(winners, 1, "exactly one lock");
        let loser = if a.is_ok() { &b } else { &a };
        assert!(matches!(loser, Err(BackendError::Locked { .. })));
        drop(a);
        drop(b);
        assert!(first.lock_holder(&stack).await.unwrap().is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_from_many_processes_at_once_apply_once() {
    let cluster = cluster();
    let url = cluster.new_database().await.unwrap();
    let connects: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PostgresBackend::connect(&url).await.map(|_| ()) })
        })
        .collect();
    for connect in connects {
        connect.await.unwrap().unwrap();
    }
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let versions: Vec<i64> = client
        .query(
            "SELECT version FROM cairn_schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<_, i64>(0))
        .collect();
    assert_eq!(versions, [1, 2, 3], "each migration applied once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_fails_the_append_and_leaves_pending_operations() {
    let cluster = cluster();
    let url = cluster.new_database().await.unwrap();
    let backend = PostgresBackend::connect(&url).await.unwrap();
    let stack = StackRef::parse("dev", "lost").unwrap();
    backend.create_stack(&stack).await.unwrap();
    let (persister, lock) = cairn_state::conformance::locked_persister(&backend, &stack).await;
    let resource = cairn_core::ResourceState {
        urn: cairn_core::Urn::parse("urn:pulumi:dev::lost::fake:index:Resource::a").unwrap(),
        custom: true,
        type_: "fake:index:Resource".to_owned(),
        ..Default::default()
    };
    persister
        .begin(cairn_core::PendingOperationKind::Creating, &resource)
        .await
        .unwrap();
    // Every session of this database is cut, as when the server restarts or the network drops.
    cut_every_session(&cluster, &url).await;
    let error = persister
        .begin(cairn_core::PendingOperationKind::Creating, &resource)
        .await
        .expect_err("an append over a dead connection must fail");
    assert!(!error.to_string().is_empty());
    drop(persister);
    drop(lock);

    // A new process sees the step that began as a pending operation: nothing was lost.
    let again = PostgresBackend::connect(&url).await.unwrap();
    let deployment = again.load_deployment(&stack).await.unwrap().unwrap();
    assert_eq!(deployment.pending_operations.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_require_connects_over_verified_tls() {
    let cluster = TestCluster::start_tls()
        .unwrap_or_else(|error| panic!("these tests need PostgreSQL and openssl: {error}"));
    let url = format!("{}?sslmode=require", cluster.new_database().await.unwrap());
    let backend = PostgresBackend::connect_with(&url, None, Some(&cluster.ca_cert()))
        .await
        .unwrap();
    cairn_state::conformance::stacks_are_created_listed_and_removed(&backend).await;

    // The backend's sessions really are encrypted.
    let (admin, connection) = tokio_postgres::connect(&cluster.admin_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let database = url
        .trim_end_matches("?sslmode=require")
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let encrypted: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a ON s.pid = a.pid \
             WHERE a.datname = $1 AND s.ssl",
            &[&database],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(encrypted, 2, "both of the backend's connections use TLS");

    // Without the CA, the server's certificate is not trusted: a clear error, no connection.
    let error = PostgresBackend::connect_with(&url, None, None)
        .await
        .err()
        .expect("an untrusted certificate must be refused");
    assert!(error.to_string().contains("connecting to"), "{error}");
}

/// A holder on another machine whose heartbeat is late may be alive (a slow network, a paused
/// VM): it is described as silent, never as a process that is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_heartbeat_elsewhere_is_silence_not_death() {
    let cluster = cluster();
    let url = cluster.new_database().await.unwrap();
    let backend = PostgresBackend::connect(&url).await.unwrap();
    let stack = StackRef::parse("dev", "late").unwrap();
    backend.create_stack(&stack).await.unwrap();
    let held = backend
        .lock_stack(&stack, owner("another-machine"))
        .await
        .unwrap();
    let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    admin
        .execute(
            "UPDATE cairn_locks SET heartbeat = extract(epoch from now())::bigint - 300",
            &[],
        )
        .await
        .unwrap();
    let holder = backend.lock_holder(&stack).await.unwrap().unwrap();
    assert!(!holder.is_stale);
    let described = holder.to_string();
    assert!(described.contains("no sign of life for 5m"), "{described}");
    assert!(!described.contains("gone"), "{described}");
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_queue_passes_the_conformance_suite() {
    let cluster = cluster();
    let url = cluster.new_database().await.unwrap();
    let backend = PostgresBackend::connect(&url).await.unwrap();
    cairn_state::jobs_conformance::run_all(Arc::new(backend.job_queue())).await;
}

/// An idle worker on another connection is woken by a submit at once (LISTEN/NOTIFY), and two
/// machines' queues on one database never hand out a job twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submit_wakes_a_waiting_worker_on_another_machine() {
    use cairn_state::jobs::JobQueue;
    let cluster = cluster();
    let url = cluster.new_database().await.unwrap();
    let worker = PostgresBackend::connect(&url).await.unwrap().job_queue();
    let submitter = PostgresBackend::connect(&url).await.unwrap().job_queue();
    // The first wait sets up the listening connection; an empty queue waits out its time.
    let waited = std::time::Instant::now();
    worker
        .wait_for_work("wake", std::time::Duration::from_millis(300))
        .await
        .unwrap();
    assert!(waited.elapsed() >= std::time::Duration::from_millis(250));

    let waiting = tokio::spawn(async move {
        let started = std::time::Instant::now();
        worker
            .wait_for_work("wake", std::time::Duration::from_secs(20))
            .await
            .unwrap();
        (started.elapsed(), worker)
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let id = submitter
        .submit(cairn_state::jobs_conformance::spec("wake", "true"))
        .await
        .unwrap();
    let (elapsed, worker) = waiting.await.unwrap();
    assert!(
        elapsed < std::time::Duration::from_secs(5),
        "woken after {elapsed:?}"
    );
    let lease = std::time::Duration::from_secs(30);
    let (job, _) = worker.claim("wake", "w1", lease).await.unwrap().unwrap();
    assert_eq!(job.id, id);
    assert!(
        submitter
            .claim("wake", "w2", lease)
            .await
            .unwrap()
            .is_none()
    );
}

/// A queue outlives its connections: after the server cut every session (a restart, a network
/// cut), the first statement fails and the next ones run on a new connection, waits included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_queue_reconnects_after_its_connections_are_cut() {
    use cairn_state::jobs::JobQueue;
    let cluster = cluster();
    let url = cluster.new_database().await.unwrap();
    let queue = PostgresBackend::connect(&url).await.unwrap().job_queue();
    let spec = cairn_state::jobs_conformance::spec("cut", "true");
    queue.submit(spec.clone()).await.unwrap();
    queue
        .wait_for_work("cut", std::time::Duration::from_millis(10))
        .await
        .unwrap();

    cut_every_session(&cluster, &url).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    // The first call may fail on the dead connection; within a few, the queue works again.
    let mut claimed = None;
    for _ in 0..5 {
        if let Ok(Some(found)) = queue
            .claim("cut", "w", std::time::Duration::from_secs(30))
            .await
        {
            claimed = Some(found);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (job, attempt) = claimed.expect("the queue never came back");
    assert_eq!(job.spec, spec);
    // `start` goes through a connection of its own (commits that do not wait for the disk):
    // made on first use, and made again once cut.
    queue.start(attempt).await.unwrap();
    cut_every_session(&cluster, &url).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut heartbeat = None;
    for _ in 0..5 {
        if let Ok(beat) = queue
            .heartbeat(attempt, std::time::Duration::from_secs(30))
            .await
        {
            heartbeat = Some(beat);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(heartbeat.is_some(), "the queue never came back");
    let second_claim = queue.submit(spec.clone()).await.unwrap();
    let (_, second_attempt) = queue
        .claim("cut", "w", std::time::Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second_attempt.job, second_claim);
    let mut started = false;
    for _ in 0..5 {
        if queue.start(second_attempt).await.is_ok() {
            started = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(started, "start never came back");
    let started_job = queue.job(second_claim).await.unwrap().unwrap();
    assert_eq!(started_job.state, cairn_state::jobs::JobState::Started);
    queue
        .wait_for_work("cut", std::time::Duration::from_millis(10))
        .await
        .unwrap();
    let second = queue.submit(spec).await.unwrap();
    assert!(second > job.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_store_passes_the_conformance_suite() {
    let cluster = cluster();
    let url = cluster.new_database().await.unwrap();
    let backend = PostgresBackend::connect(&url).await.unwrap();
    cairn_app::conformance::run_all(Arc::new(backend.app_store())).await;
}

/// Two machines' stores on one database share apps and their locks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_machines_share_apps_and_their_locks() {
    use cairn_app::AppStore;
    let cluster = cluster();
    let url = cluster.new_database().await.unwrap();
    let first = PostgresBackend::connect(&url).await.unwrap().app_store();
    let second = PostgresBackend::connect(&url).await.unwrap().app_store();
    let app = cairn_app::NewApp {
        name: "shared".to_owned(),
        pool: "default".to_owned(),
        processes: Vec::new(),
    };
    first.create_app(app).await.unwrap();
    let lease = std::time::Duration::from_secs(30);
    let lock = first.lock_app("shared", "one", lease).await.unwrap();
    assert!(matches!(
        second.lock_app("shared", "two", lease).await,
        Err(cairn_app::AppError::Locked { .. })
    ));
    first.unlock_app(&lock).await.unwrap();
    second.lock_app("shared", "two", lease).await.unwrap();
}
