//! The router against real TCP servers on 127.0.0.1 as units, with units written into a
//! `file://` app store as a provisioner writes them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_app::{AppStore, NewApp, Process, Unit, UnitStatus};
use cairn_backend_file::FileAppStore;
use cairn_router::{Drained, Router, RouterEvent, RouterOptions};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const DOMAIN: &str = "cairn.localhost";
const LEASE: Duration = Duration::from_secs(5);

/// A unit: answers every request with its name (`/slow` after a second, `/slower` after
/// five; a POST with its name and the body it received), counting the requests it got.
struct UnitServer {
    name: String,
    address: SocketAddr,
    hits: Arc<AtomicUsize>,
    started: Arc<AtomicUsize>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl UnitServer {
    async fn start(name: &str) -> UnitServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let (name, hits, started, stop) =
                (name.to_owned(), hits.clone(), started.clone(), stop.clone());
            async move {
                let graceful = hyper_util::server::graceful::GracefulShutdown::new();
                loop {
                    let (stream, _) = tokio::select! {
                        _ = stop.cancelled() => break,
                        accepted = listener.accept() => accepted.unwrap(),
                    };
                    let (name, hits, started) = (name.clone(), hits.clone(), started.clone());
                    let service = hyper::service::service_fn(
                        move |request: Request<hyper::body::Incoming>| {
                            let (name, hits, started) =
                                (name.clone(), hits.clone(), started.clone());
                            async move {
                                started.fetch_add(1, Ordering::SeqCst);
                                match request.uri().path() {
                                    "/slow" => tokio::time::sleep(Duration::from_secs(1)).await,
                                    "/slower" => tokio::time::sleep(Duration::from_secs(5)).await,
                                    _ => {}
                                }
                                let answer = if request.method() == hyper::Method::POST {
                                    let body = request.into_body().collect().await?.to_bytes();
                                    format!("{name} got {}", String::from_utf8_lossy(&body))
                                } else {
                                    name
                                };
                                hits.fetch_add(1, Ordering::SeqCst);
                                Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from(answer))))
                            }
                        },
                    );
                    let connection = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service);
                    let watched = graceful.watch(connection);
                    tokio::spawn(async move {
                        let _ = watched.await;
                    });
                }
                drop(listener);
                graceful.shutdown().await;
            }
        });
        UnitServer {
            name: name.to_owned(),
            address,
            hits,
            started,
            stop,
            task,
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Stops accepting, lets requests in flight finish, closes its connections.
    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap();
    }
}

async fn store_with_apps(names: &[&str]) -> (tempfile::TempDir, Arc<dyn AppStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn AppStore> = Arc::new(FileAppStore::open(dir.path()).unwrap());
    for name in names {
        store
            .create_app(NewApp {
                name: (*name).to_owned(),
                pool: cairn_app::DEFAULT_POOL.to_owned(),
                processes: vec![
                    Process {
                        name: "web".to_owned(),
                        command: "./server".to_owned(),
                    },
                    Process {
                        name: "worker".to_owned(),
                        command: "./work".to_owned(),
                    },
                ],
            })
            .await
            .unwrap();
    }
    (dir, store)
}

/// Records a unit of `app` at `address` as a provisioner does, and moves it along tsuru's
/// flow to `status`.
async fn add_unit(
    store: &dyn AppStore,
    app: &str,
    id: &str,
    process: &str,
    address: SocketAddr,
    status: UnitStatus,
) {
    let lock = store
        .lock_app(app, "test provisioner", LEASE)
        .await
        .unwrap();
    store
        .add_unit(
            &lock,
            Unit {
                id: id.to_owned(),
                name: format!("{app}-{process}-{id}"),
                app: app.to_owned(),
                process: process.to_owned(),
                node: None,
                address: Some(address.to_string()),
                status: UnitStatus::Created,
            },
        )
        .await
        .unwrap();
    store.unlock_app(&lock).await.unwrap();
    let path: &[UnitStatus] = match status {
        UnitStatus::Created => &[],
        UnitStatus::Starting => &[UnitStatus::Starting],
        UnitStatus::Started => &[UnitStatus::Starting, UnitStatus::Started],
        UnitStatus::Stopped => &[
            UnitStatus::Starting,
            UnitStatus::Started,
            UnitStatus::Stopped,
        ],
        UnitStatus::Error => &[UnitStatus::Starting, UnitStatus::Error],
        other => panic!("no path to {other} here"),
    };
    for &next in path {
        store.set_unit_status(app, id, next).await.unwrap();
    }
}

async fn remove_unit(store: &dyn AppStore, app: &str, id: &str) {
    let lock = store
        .lock_app(app, "test provisioner", LEASE)
        .await
        .unwrap();
    store.remove_unit(&lock, id).await.unwrap();
    store.unlock_app(&lock).await.unwrap();
}

struct RunningRouter {
    address: SocketAddr,
    router: Arc<Router>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Drained>,
    events: Arc<std::sync::Mutex<Vec<RouterEvent>>>,
}

async fn start_router(store: Arc<dyn AppStore>, drain_timeout: Duration) -> RunningRouter {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let options = RouterOptions {
        domain: DOMAIN.to_owned(),
        refresh: Duration::from_millis(200),
        drain_timeout,
    };
    let router = Arc::new(Router::new(&options.domain));
    let shutdown = CancellationToken::new();
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = {
        let events = events.clone();
        Arc::new(move |event| events.lock().unwrap().push(event))
    };
    let task = tokio::spawn(cairn_router::serve(
        listener,
        router.clone(),
        store,
        options,
        shutdown.clone(),
        sink,
    ));
    RunningRouter {
        address,
        router,
        shutdown,
        task,
        events,
    }
}

type TestClient = Client<HttpConnector, Full<Bytes>>;

fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// A request to the router for `host`; the status and the body.
async fn request(
    client: &TestClient,
    router: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    body: &str,
) -> Result<(StatusCode, String), String> {
    let request = Request::builder()
        .method(method)
        .uri(format!("http://{router}{path}"))
        .header("host", host)
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let response = client
        .request(request)
        .await
        .map_err(|error| format!("{error:?}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|error| error.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

async fn get(client: &TestClient, router: SocketAddr, host: &str) -> (StatusCode, String) {
    request(client, router, "GET", host, "/", "").await.unwrap()
}

/// Asks until `check` holds of the answer, for at most `within`; how long it took.
async fn wait_for_answer(
    client: &TestClient,
    router: SocketAddr,
    host: &str,
    within: Duration,
    check: impl Fn(&(StatusCode, String)) -> bool,
) -> Duration {
    let begun = Instant::now();
    loop {
        let answer = get(client, router, host).await;
        if check(&answer) {
            return begun.elapsed();
        }
        assert!(
            begun.elapsed() < within,
            "still {answer:?} from {host} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_sends_each_host_to_its_started_web_units_only() {
    let (_dir, store) = store_with_apps(&["shop", "blog"]).await;
    let started = [UnitServer::start("a").await, UnitServer::start("b").await];
    let idle = [
        UnitServer::start("starting").await,
        UnitServer::start("stopped").await,
        UnitServer::start("error").await,
        UnitServer::start("created").await,
        UnitServer::start("worker").await,
    ];
    let blog = UnitServer::start("blog").await;
    add_unit(
        &*store,
        "shop",
        "a",
        "web",
        started[0].address,
        UnitStatus::Started,
    )
    .await;
    add_unit(
        &*store,
        "shop",
        "b",
        "web",
        started[1].address,
        UnitStatus::Started,
    )
    .await;
    add_unit(
        &*store,
        "shop",
        "s1",
        "web",
        idle[0].address,
        UnitStatus::Starting,
    )
    .await;
    add_unit(
        &*store,
        "shop",
        "s2",
        "web",
        idle[1].address,
        UnitStatus::Stopped,
    )
    .await;
    add_unit(
        &*store,
        "shop",
        "s3",
        "web",
        idle[2].address,
        UnitStatus::Error,
    )
    .await;
    add_unit(
        &*store,
        "shop",
        "s4",
        "web",
        idle[3].address,
        UnitStatus::Created,
    )
    .await;
    add_unit(
        &*store,
        "shop",
        "w",
        "worker",
        idle[4].address,
        UnitStatus::Started,
    )
    .await;
    add_unit(
        &*store,
        "blog",
        "b1",
        "web",
        blog.address,
        UnitStatus::Started,
    )
    .await;
    let router = start_router(store.clone(), Duration::from_secs(5)).await;
    let client = client();

    for _ in 0..20 {
        let (status, body) = get(&client, router.address, "shop.cairn.localhost").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body == "a" || body == "b", "{body}");
    }
    // Taken in turn: both started units served half.
    assert_eq!((started[0].hits(), started[1].hits()), (10, 10));
    for server in &idle {
        assert_eq!(server.hits(), 0, "unit `{}` got traffic", server.name);
    }
    let (status, body) = get(&client, router.address, "Blog.Cairn.Localhost:8080").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "blog"));
    // A request with a body goes through whole.
    let (status, body) = request(
        &client,
        router.address,
        "POST",
        "blog.cairn.localhost",
        "/orders",
        "one order",
    )
    .await
    .unwrap();
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "blog got one order")
    );
    assert_eq!(
        router.router.table().summary(),
        vec![
            ("blog".to_owned(), vec![blog.address.to_string()]),
            (
                "shop".to_owned(),
                vec![
                    started[0].address.to_string(),
                    started[1].address.to_string()
                ]
            ),
        ]
    );
    router.shutdown.cancel();
    assert_eq!(router.task.await.unwrap(), Drained::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_answers_503_naming_an_app_without_units_and_404_for_an_unknown_host() {
    let (_dir, store) = store_with_apps(&["shop"]).await;
    let router = start_router(store.clone(), Duration::from_secs(5)).await;
    let client = client();
    let (status, body) = get(&client, router.address, "shop.cairn.localhost").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "app `shop` has no started web unit\n");
    let (status, body) = get(&client, router.address, "nope.cairn.localhost").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, "no app is served at `nope.cairn.localhost`\n");
    let (status, _) = get(&client, router.address, "shop.elsewhere.test").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    router.shutdown.cancel();
    router.task.await.unwrap();
    assert_eq!(
        router.events.lock().unwrap()[0],
        RouterEvent::TableChanged { apps: 1, units: 0 }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_follows_a_unit_added_then_removed_within_a_second() {
    let (_dir, store) = store_with_apps(&["shop"]).await;
    let router = start_router(store.clone(), Duration::from_secs(5)).await;
    let client = client();
    let unit = UnitServer::start("a").await;
    assert_eq!(
        get(&client, router.address, "shop.cairn.localhost").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    add_unit(
        &*store,
        "shop",
        "a",
        "web",
        unit.address,
        UnitStatus::Started,
    )
    .await;
    let took = wait_for_answer(
        &client,
        router.address,
        "shop.cairn.localhost",
        Duration::from_secs(1),
        |answer| answer == &(StatusCode::OK, "a".to_owned()),
    )
    .await;
    assert!(took < Duration::from_secs(1), "{took:?}");
    // Stopped: no traffic any more, even before it is removed.
    store
        .set_unit_status("shop", "a", UnitStatus::Stopped)
        .await
        .unwrap();
    wait_for_answer(
        &client,
        router.address,
        "shop.cairn.localhost",
        Duration::from_secs(1),
        |answer| answer.0 == StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    store
        .set_unit_status("shop", "a", UnitStatus::Starting)
        .await
        .unwrap();
    store
        .set_unit_status("shop", "a", UnitStatus::Started)
        .await
        .unwrap();
    wait_for_answer(
        &client,
        router.address,
        "shop.cairn.localhost",
        Duration::from_secs(1),
        |answer| answer.0 == StatusCode::OK,
    )
    .await;
    remove_unit(&*store, "shop", "a").await;
    wait_for_answer(
        &client,
        router.address,
        "shop.cairn.localhost",
        Duration::from_secs(1),
        |answer| answer.0 == StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    router.shutdown.cancel();
    router.task.await.unwrap();
    unit.stop().await;
}

/// A deploy as tsuru does it, twice, on an app of `units` web units: the new units are started
/// and recorded first; once they take traffic, the old ones are removed from the store and
/// their servers stopped at once (before the router's next refresh, so requests still sent to
/// them are refused and go to the new ones). 200 GET/s from four clients for 3 s: none fails.
async fn deploys_under_load_lose_no_get(units: usize) {
    let (_dir, store) = store_with_apps(&["shop"]).await;
    let start_version = async |version: &str| {
        let mut servers = Vec::new();
        for index in 0..units {
            let server = UnitServer::start(&format!("{version}-{index}")).await;
            add_unit(
                &*store,
                "shop",
                &server.name,
                "web",
                server.address,
                UnitStatus::Started,
            )
            .await;
            servers.push(server);
        }
        servers
    };
    let mut old = start_version("v1").await;
    let router = start_router(store.clone(), Duration::from_secs(5)).await;
    let address = router.address;

    let stop_load = CancellationToken::new();
    let mut clients = Vec::new();
    for _ in 0..4 {
        let stop_load = stop_load.clone();
        clients.push(tokio::spawn(async move {
            let client = client();
            let mut ticker = tokio::time::interval(Duration::from_millis(20));
            let (mut ok, mut failed) = (0usize, Vec::new());
            while !stop_load.is_cancelled() {
                ticker.tick().await;
                match request(&client, address, "GET", "shop.cairn.localhost", "/", "").await {
                    Ok((StatusCode::OK, _)) => ok += 1,
                    other => failed.push(format!("{other:?}")),
                }
            }
            (ok, failed)
        }));
    }
    let load_began = Instant::now();
    let client = client();
    tokio::time::sleep(Duration::from_millis(500)).await; // load on the first units alone
    for version in ["v2", "v3"] {
        let new = start_version(version).await;
        wait_for_answer(
            &client,
            address,
            "shop.cairn.localhost",
            Duration::from_secs(2),
            |answer| answer.1.starts_with(version),
        )
        .await;
        let old_hits: usize = old.iter().map(UnitServer::hits).sum();
        assert!(old_hits > 0, "the old units took no traffic");
        for server in old {
            remove_unit(&*store, "shop", &server.name).await;
            server.stop().await;
        }
        old = new;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let remaining = Duration::from_secs(3).saturating_sub(load_began.elapsed());
    tokio::time::sleep(remaining).await;
    stop_load.cancel();
    let (mut ok, mut failed) = (0, Vec::new());
    for client in clients {
        let (o, f) = client.await.unwrap();
        ok += o;
        failed.extend(f);
    }
    assert!(failed.is_empty(), "{} failed: {failed:?}", failed.len());
    assert!(ok >= 400, "only {ok} requests in 3 s");
    for server in &old {
        assert!(server.hits() > 0, "unit {} took no traffic", server.name);
    }
    router.shutdown.cancel();
    router.task.await.unwrap();
    for server in old {
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_loses_no_get_while_units_are_swapped_as_a_deploy_does() {
    deploys_under_load_lose_no_get(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_loses_no_get_while_two_units_are_swapped_as_a_deploy_does() {
    deploys_under_load_lose_no_get(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_shutdown_lets_requests_in_flight_finish_and_accepts_no_more() {
    let (_dir, store) = store_with_apps(&["shop"]).await;
    let unit = UnitServer::start("a").await;
    add_unit(
        &*store,
        "shop",
        "a",
        "web",
        unit.address,
        UnitStatus::Started,
    )
    .await;
    let router = start_router(store.clone(), Duration::from_secs(5)).await;
    let address = router.address;
    let in_flight = tokio::spawn(async move {
        let client = client();
        request(&client, address, "GET", "shop.cairn.localhost", "/slow", "").await
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while unit.started.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the request never reached the unit"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    router.shutdown.cancel();
    let answer = in_flight.await.unwrap().unwrap();
    assert_eq!(answer, (StatusCode::OK, "a".to_owned()));
    assert_eq!(router.task.await.unwrap(), Drained::Completed);
    assert!(
        tokio::net::TcpStream::connect(address).await.is_err(),
        "the router still accepts connections"
    );
    assert!(
        router
            .events
            .lock()
            .unwrap()
            .contains(&RouterEvent::Draining)
    );
    unit.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_drain_gives_up_after_its_timeout() {
    let (_dir, store) = store_with_apps(&["shop"]).await;
    let unit = UnitServer::start("a").await;
    add_unit(
        &*store,
        "shop",
        "a",
        "web",
        unit.address,
        UnitStatus::Started,
    )
    .await;
    let router = start_router(store.clone(), Duration::from_millis(300)).await;
    let address = router.address;
    let in_flight = tokio::spawn(async move {
        let client = client();
        request(
            &client,
            address,
            "GET",
            "shop.cairn.localhost",
            "/slower",
            "",
        )
        .await
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while unit.started.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the request never reached the unit"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let begun = Instant::now();
    router.shutdown.cancel();
    assert_eq!(router.task.await.unwrap(), Drained::TimedOut);
    assert!(
        begun.elapsed() < Duration::from_secs(2),
        "{:?}",
        begun.elapsed()
    );
    in_flight.abort();
    unit.stop.cancel();
}

/// The store cannot be read for a while (its apps' directory replaced by a file): the router
/// keeps routing by the last table, says so once, and says when reads work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_keeps_its_last_table_while_the_store_cannot_be_read() {
    let (dir, store) = store_with_apps(&["shop"]).await;
    let unit = UnitServer::start("a").await;
    add_unit(
        &*store,
        "shop",
        "a",
        "web",
        unit.address,
        UnitStatus::Started,
    )
    .await;
    let router = start_router(store.clone(), Duration::from_secs(5)).await;
    let client = client();
    assert_eq!(
        get(&client, router.address, "shop.cairn.localhost").await,
        (StatusCode::OK, "a".to_owned())
    );
    let apps = dir.path().join(".pulumi/apps/apps");
    let aside = dir.path().join(".pulumi/apps/apps.aside");
    std::fs::rename(&apps, &aside).unwrap();
    std::fs::write(&apps, "not a directory").unwrap();
    assert!(store.list_apps().await.is_err(), "the store still reads");
    let failures = || {
        router
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|event| matches!(event, RouterEvent::RefreshFailed(_)))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while failures() == 0 {
        assert!(Instant::now() < deadline, "no refresh failed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Several refreshes fail meanwhile (one per 200 ms); they are reported once.
    for _ in 0..5 {
        assert_eq!(
            get(&client, router.address, "shop.cairn.localhost").await,
            (StatusCode::OK, "a".to_owned())
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(failures(), 1);
    std::fs::remove_file(&apps).unwrap();
    std::fs::rename(&aside, &apps).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !router
        .events
        .lock()
        .unwrap()
        .contains(&RouterEvent::RefreshRecovered)
    {
        assert!(Instant::now() < deadline, "refreshes never recovered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    router.shutdown.cancel();
    router.task.await.unwrap();
    unit.stop().await;
}

/// A custom name added to an app is served within a second; once removed, it is unknown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_follows_an_apps_custom_names() {
    let (_dir, store) = store_with_apps(&["shop"]).await;
    let unit = UnitServer::start("a").await;
    add_unit(
        &*store,
        "shop",
        "a",
        "web",
        unit.address,
        UnitStatus::Started,
    )
    .await;
    let router = start_router(store.clone(), Duration::from_secs(5)).await;
    let client = client();
    assert_eq!(
        get(&client, router.address, "www.shop.test").await.0,
        StatusCode::NOT_FOUND
    );
    let lock = store.lock_app("shop", "test", LEASE).await.unwrap();
    store.add_cname(&lock, "www.shop.test").await.unwrap();
    wait_for_answer(
        &client,
        router.address,
        "WWW.shop.test",
        Duration::from_secs(1),
        |answer| answer == &(StatusCode::OK, "a".to_owned()),
    )
    .await;
    store.remove_cname(&lock, "www.shop.test").await.unwrap();
    store.unlock_app(&lock).await.unwrap();
    wait_for_answer(
        &client,
        router.address,
        "www.shop.test",
        Duration::from_secs(1),
        |answer| answer.0 == StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(
        get(&client, router.address, "shop.cairn.localhost").await,
        (StatusCode::OK, "a".to_owned())
    );
    router.shutdown.cancel();
    router.task.await.unwrap();
    unit.stop().await;
}

/// The same on a `postgres://` store: a unit recorded there is routed within a second, and no
/// longer once removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_follows_units_on_a_postgres_store() {
    let cluster = cairn_backend_postgres::test_cluster::TestCluster::start().unwrap();
    let url = cluster.new_database().await.unwrap();
    let backend = cairn_backend_postgres::PostgresBackend::connect(&url)
        .await
        .unwrap();
    let store: Arc<dyn AppStore> = Arc::new(backend.app_store());
    store
        .create_app(NewApp {
            name: "shop".to_owned(),
            pool: cairn_app::DEFAULT_POOL.to_owned(),
            processes: vec![Process {
                name: "web".to_owned(),
                command: "./server".to_owned(),
            }],
        })
        .await
        .unwrap();
    let router = start_router(store.clone(), Duration::from_secs(5)).await;
    let client = client();
    let unit = UnitServer::start("a").await;
    add_unit(
        &*store,
        "shop",
        "a",
        "web",
        unit.address,
        UnitStatus::Started,
    )
    .await;
    wait_for_answer(
        &client,
        router.address,
        "shop.cairn.localhost",
        Duration::from_secs(1),
        |answer| answer == &(StatusCode::OK, "a".to_owned()),
    )
    .await;
    remove_unit(&*store, "shop", "a").await;
    wait_for_answer(
        &client,
        router.address,
        "shop.cairn.localhost",
        Duration::from_secs(1),
        |answer| answer.0 == StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    router.shutdown.cancel();
    router.task.await.unwrap();
    unit.stop().await;
}
