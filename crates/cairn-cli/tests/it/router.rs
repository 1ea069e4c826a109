//! `cairn router run` as a process: the line it prints when it listens, an app's host sent to
//! its started web unit (written into the `file://` store as a provisioner writes it), 404 for
//! an unknown host, and SIGTERM draining a request in flight before exit 0. The routing itself
//! is tested in `crates/cairn-router/tests`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cairn_app::{AppStore, Unit, UnitStatus};

use crate::support::{TestContext, wait_until};

/// A unit: answers each request (one per connection) with `hello from the unit`, after a
/// second for `/slow`; counts the requests it began.
fn start_unit() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let begun = Arc::new(AtomicUsize::new(0));
    let counter = begun.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap();
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap() == 0 || header == "\r\n" {
                        break;
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                if request_line.starts_with("GET /slow ") {
                    std::thread::sleep(Duration::from_secs(1));
                }
                let body = "hello from the unit";
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    (address, begun)
}

/// A GET of `path` at `host` through the router; the status line and the body.
fn get(router: SocketAddr, host: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(router).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.lines().next().unwrap_or_default().to_owned();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn add_started_unit(context: &TestContext, app: &str, address: SocketAddr) {
    let store = cairn_backend_file::FileAppStore::open(&context.home()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let lock = store
            .lock_app(app, "test provisioner", Duration::from_secs(5))
            .await
            .unwrap();
        store
            .add_unit(
                &lock,
                Unit {
                    id: "u1".to_owned(),
                    name: format!("{app}-web-u1"),
                    app: app.to_owned(),
                    process: "web".to_owned(),
                    node: None,
                    address: Some(address.to_string()),
                    status: UnitStatus::Created,
                },
            )
            .await
            .unwrap();
        store.unlock_app(&lock).await.unwrap();
        for status in [UnitStatus::Starting, UnitStatus::Started] {
            store.set_unit_status(app, "u1", status).await.unwrap();
        }
    });
}

fn terminate(child: &Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn router_run_serves_an_apps_host_and_drains_on_sigterm() {
    let context = TestContext::new();
    context
        .cairn(&["app", "create", "shop", "--process", "web=./server"])
        .success();
    context
        .cairn(&["app", "cname", "add", "shop", "WWW.Shop.Test"])
        .success();
    let (unit, begun) = start_unit();
    add_started_unit(&context, "shop", unit);
    let mut child = context.spawn(&[
        "router",
        "run",
        "--listen",
        "127.0.0.1:0",
        "--domain",
        "apps.test",
        "--json",
    ]);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let listening: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(listening["event"], "listening");
    assert_eq!(listening["domain"], "apps.test");
    let router: SocketAddr = listening["address"].as_str().unwrap().parse().unwrap();

    let (status, body) = get(router, "shop.apps.test", "/");
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 200 OK", "hello from the unit")
    );
    let (status, body) = get(router, "www.shop.test:80", "/");
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 200 OK", "hello from the unit")
    );
    let (status, body) = get(router, "blog.apps.test", "/");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    assert_eq!(body, "no app is served at `blog.apps.test`\n");

    // A request in flight when SIGTERM comes is answered; then the router exits 0.
    let before = begun.load(Ordering::SeqCst);
    let slow = std::thread::spawn(move || get(router, "shop.apps.test", "/slow"));
    wait_until("the slow request reaching the unit", || {
        begun.load(Ordering::SeqCst) > before
    });
    terminate(&child);
    let (status, body) = slow.join().unwrap();
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 200 OK", "hello from the unit")
    );
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "{rest}");
    let events: Vec<String> = rest
        .lines()
        .map(|line| {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            event["event"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(events, ["routes", "draining", "drained"], "{rest}");
}

#[test]
fn router_run_refuses_a_bad_address_or_domain_with_exit_2() {
    let context = TestContext::new();
    let run = context
        .cairn(&["router", "run", "--listen", "localhost"])
        .expect_code(2);
    assert!(
        run.stderr
            .contains("`localhost` is not an address to listen on"),
        "{}",
        run.stderr
    );
    let run = context
        .cairn(&[
            "router",
            "run",
            "--listen",
            "127.0.0.1:0",
            "--domain",
            "bad_domain..x",
        ])
        .expect_code(2);
    assert!(run.stderr.contains("is not a domain"), "{}", run.stderr);
}

#[test]
fn app_cname_add_and_rm_keep_one_app_per_name() {
    let context = TestContext::new();
    for app in ["shop", "blog"] {
        context
            .cairn(&["app", "create", app, "--process", "web=./server"])
            .success();
    }
    let run = context
        .cairn(&["app", "cname", "add", "shop", "WWW.Shop.Test."])
        .success();
    assert_eq!(run.stdout, "app `shop` is served at `www.shop.test` too\n");
    let info: serde_json::Value = serde_json::from_str(
        &context
            .cairn(&["app", "info", "shop", "--json"])
            .success()
            .stdout,
    )
    .unwrap();
    assert_eq!(info["cnames"], serde_json::json!(["www.shop.test"]));
    let run = context
        .cairn(&["app", "cname", "add", "blog", "www.shop.test"])
        .expect_code(2);
    assert!(
        run.stderr
            .contains("host name `www.shop.test` belongs to app `shop`"),
        "{}",
        run.stderr
    );
    let run = context
        .cairn(&["app", "cname", "add", "blog", "not a name"])
        .expect_code(2);
    assert!(run.stderr.contains("is not a host name"), "{}", run.stderr);
    context
        .cairn(&["app", "cname", "rm", "shop", "www.shop.test"])
        .success();
    let run = context
        .cairn(&["app", "cname", "rm", "shop", "www.shop.test"])
        .expect_code(2);
    assert!(
        run.stderr
            .contains("app `shop` has no host name `www.shop.test`"),
        "{}",
        run.stderr
    );
    context
        .cairn(&["app", "cname", "add", "blog", "www.shop.test"])
        .success();
    let info: serde_json::Value = serde_json::from_str(
        &context
            .cairn(&["app", "info", "shop", "--json"])
            .success()
            .stdout,
    )
    .unwrap();
    assert!(info.get("cnames").is_none(), "{info}");
}
