//! `cairn-bench --router`: the router's added latency and its throughput, in this process. A
//! tiny hyper server on loopback is the unit; a router routes `shop.bench.localhost` to it
//! (recorded as a started web unit in a `file://` app store). Latency: 5,000 sequential GETs
//! on one keep-alive connection, direct then through the router (medians and 99th
//! percentiles). Throughput: 16 concurrent clients for 3 s each way.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use cairn_app::{AppStore, NewApp, Process, Unit, UnitStatus};
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const HOST: &str = "shop.bench.localhost";

type BenchClient = Client<HttpConnector, Empty<Bytes>>;

async fn start_unit() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let service = hyper::service::service_fn(|_request| async {
                Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from_static(
                    b"hello from the unit",
                ))))
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    Ok(address)
}

fn client() -> BenchClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(connector)
}

async fn get(client: &BenchClient, target: SocketAddr) -> anyhow::Result<()> {
    let request = Request::builder()
        .uri(format!("http://{target}/"))
        .header("host", HOST)
        .body(Empty::new())?;
    let response = client.request(request).await?;
    anyhow::ensure!(
        response.status().is_success(),
        "answer {}",
        response.status()
    );
    response.into_body().collect().await?;
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Median and 99th percentile in milliseconds of `n` sequential GETs.
async fn latency(target: SocketAddr, n: usize) -> anyhow::Result<(f64, f64)> {
    let client = client();
    for _ in 0..100 {
        get(&client, target).await?; // warm: connections made, pools filled
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let begun = Instant::now();
        get(&client, target).await?;
        samples.push(begun.elapsed().as_secs_f64() * 1000.0);
    }
    samples.sort_by(f64::total_cmp);
    Ok((percentile(&samples, 0.5), percentile(&samples, 0.99)))
}

/// Requests per second of `clients` concurrent clients for `duration`.
async fn throughput(target: SocketAddr, clients: usize, duration: Duration) -> anyhow::Result<f64> {
    let begun = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        tasks.push(tokio::spawn(async move {
            let client = client();
            let mut done = 0u64;
            while begun.elapsed() < duration {
                get(&client, target).await?;
                done += 1;
            }
            anyhow::Ok(done)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    Ok(total as f64 / begun.elapsed().as_secs_f64())
}

pub fn run(quick: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let dir = tempfile::tempdir()?;
        let store: Arc<dyn AppStore> = Arc::new(cairn_backend_file::FileAppStore::open(dir.path())?);
        store
            .create_app(NewApp {
                name: "shop".to_owned(),
                pool: cairn_app::DEFAULT_POOL.to_owned(),
                processes: vec![Process {
                    name: "web".to_owned(),
                    command: "./server".to_owned(),
                }],
            })
            .await?;
        let unit = start_unit().await?;
        let lock = store
            .lock_app("shop", "bench", Duration::from_secs(5))
            .await?;
        store
            .add_unit(
                &lock,
                Unit {
                    id: "u1".to_owned(),
                    name: "shop-web-u1".to_owned(),
                    app: "shop".to_owned(),
                    process: "web".to_owned(),
                    node: None,
                    address: Some(unit.to_string()),
                    status: UnitStatus::Created,
                },
            )
            .await?;
        store.unlock_app(&lock).await?;
        for status in [UnitStatus::Starting, UnitStatus::Started] {
            store.set_unit_status("shop", "u1", status).await?;
        }
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let router_address = listener.local_addr()?;
        let options = cairn_router::RouterOptions {
            domain: "bench.localhost".to_owned(),
            ..Default::default()
        };
        let router = Arc::new(cairn_router::Router::new(&options.domain));
        let shutdown = CancellationToken::new();
        let served = tokio::spawn(cairn_router::serve(
            listener,
            router,
            store,
            options,
            shutdown.clone(),
            Arc::new(|_| {}),
        ));

        let n = if quick { 1_000 } else { 5_000 };
        let duration = Duration::from_secs(if quick { 1 } else { 3 });
        let (direct_p50, direct_p99) = latency(unit, n).await.context("direct")?;
        let (routed_p50, routed_p99) = latency(router_address, n)
            .await
            .context("through the router")?;
        let direct_rps = throughput(unit, 16, duration).await?;
        let routed_rps = throughput(router_address, 16, duration).await?;
        shutdown.cancel();
        served.await?;

        println!("router: {n} sequential GETs (one keep-alive connection), then 16 concurrent clients for {duration:?}");
        println!("| | direct | through the router | added |");
        println!("|---|---:|---:|---:|");
        println!(
            "| median | {direct_p50:.3} ms | {routed_p50:.3} ms | {:.3} ms |",
            routed_p50 - direct_p50
        );
        println!(
            "| p99 | {direct_p99:.3} ms | {routed_p99:.3} ms | {:.3} ms |",
            routed_p99 - direct_p99
        );
        println!(
            "| requests/s, 16 clients | {direct_rps:.0} | {routed_rps:.0} | {:.0}% |",
            (routed_rps / direct_rps - 1.0) * 100.0
        );
        println!(
            "{}",
            serde_json::json!({
                "requests": n,
                "directMedianMs": direct_p50,
                "directP99Ms": direct_p99,
                "routedMedianMs": routed_p50,
                "routedP99Ms": routed_p99,
                "addedMedianMs": routed_p50 - direct_p50,
                "addedP99Ms": routed_p99 - direct_p99,
                "directRequestsPerSecond": direct_rps,
                "routedRequestsPerSecond": routed_rps,
            })
        );
        anyhow::Ok(())
    })
}
