//! The router that ships inside the `cairn` binary (`cairn router run`): an HTTP/1.1 reverse
//! proxy on hyper that sends `APP.<domain>`, and the custom names an app was given
//! (`cairn app cname add`), to the app's `web` units whose status is `started`, taken in turn.
//!
//! - **Follows the store.** A `RouteTable` is built from `AppStore::list_apps` and `units`,
//!   again every `refresh` (200 ms by default: polling, on both backends; PostgreSQL's
//!   LISTEN/NOTIFY may replace it later), and swapped in whole when it differs, so a request
//!   never waits on a refresh: it clones an `Arc` under a read lock held for that clone only.
//!   A refresh that fails keeps the last table (reported once, until one succeeds again).
//! - **No failed request when a unit goes away.** A GET or HEAD without a body whose unit
//!   refuses the connection, or closes it before answering, is sent to each other unit in
//!   turn until one answers (to the same one once more when it is alone), so units stopped
//!   just before the table noticed cost nothing; a unit that refused is passed over for
//!   `REFUSED_FOR` (2 s) while another has not.
//! - **Pooled.** Connections to units are kept alive and reused (hyper-util's client).
//! - **Drains.** When `shutdown` fires, the listener closes, idle keep-alive connections are
//!   closed, and requests in flight finish (up to the drain timeout).
//!
//! Answers of its own: 404 for a host no app has, 503 naming the app when it has no unit to
//! take the request, 502 when the unit failed, 400 without a Host. Each is one line of text.

mod table;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use cairn_app::{AppError, AppStore};
use http_body_util::{Either, Empty, Full};
use hyper::body::{Body as _, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::http::uri::{Authority, PathAndQuery, Scheme};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use table::{AppRoute, REFUSED_FOR, RouteTable, WEB_PROCESS};

/// What a unit receives as a request body: the client's, or nothing (a GET or HEAD that may
/// be sent twice).
pub type UnitBody = Either<Incoming, Empty<Bytes>>;
/// What the router answers with: the unit's response, or one of its own.
pub type RouterBody = Either<Incoming, Full<Bytes>>;

/// How `serve` runs.
#[derive(Clone, Debug)]
pub struct RouterOptions {
    /// App `shop` is served at `shop.<domain>`.
    pub domain: String,
    /// How often the table is rebuilt from the store.
    pub refresh: Duration,
    /// How long requests in flight may take to finish once shutdown began.
    pub drain_timeout: Duration,
}

impl Default for RouterOptions {
    fn default() -> RouterOptions {
        RouterOptions {
            domain: DEFAULT_DOMAIN.to_owned(),
            refresh: Duration::from_millis(200),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// `*.localhost` resolves to the loopback address in browsers and systemd-resolved.
pub const DEFAULT_DOMAIN: &str = "cairn.localhost";

/// What happens while the router runs, for the front end to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouterEvent {
    /// The table changed: how many apps, how many units take traffic.
    TableChanged { apps: usize, units: usize },
    /// A refresh failed; the last table stays. Reported once until a refresh succeeds.
    RefreshFailed(String),
    /// Refreshes succeed again.
    RefreshRecovered,
    /// Shutdown began: no new connection is accepted.
    Draining,
}

pub type EventSink = Arc<dyn Fn(RouterEvent) + Send + Sync>;

/// How `serve` ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drained {
    /// Every connection finished.
    Completed,
    /// The drain timeout passed with connections still open; they were dropped.
    TimedOut,
}

/// The proxy: the current table and the pool of connections to units.
pub struct Router {
    domain: String,
    table: RwLock<Arc<RouteTable>>,
    client: Client<HttpConnector, UnitBody>,
}

impl Router {
    pub fn new(domain: &str) -> Router {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build(connector);
        Router {
            domain: domain.to_owned(),
            table: RwLock::new(Arc::new(RouteTable::default())),
            client,
        }
    }

    /// The table requests are routed by now.
    pub fn table(&self) -> Arc<RouteTable> {
        self.table
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn replace_table(&self, table: RouteTable) {
        *self
            .table
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(table);
    }

    /// Rebuilds the table from the store; swaps it in when it routes differently, and says
    /// whether it did. An app removed while this reads is left out.
    pub async fn refresh(&self, store: &dyn AppStore) -> Result<bool, AppError> {
        let apps = store.list_apps().await?;
        let mut records = Vec::with_capacity(apps.len());
        for app in apps {
            match store.units(&app.name).await {
                Ok(units) => records.push((app, units)),
                Err(AppError::AppNotFound(_)) => {}
                Err(error) => return Err(error),
            }
        }
        let table = RouteTable::build(&self.domain, &records);
        let current = self.table();
        if table.summary() == current.summary() && table.hosts() == current.hosts() {
            return Ok(false);
        }
        self.replace_table(table);
        Ok(true)
    }

    /// Proxies one request from `peer`.
    pub async fn handle(
        &self,
        request: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<RouterBody> {
        let table = self.table();
        let (mut parts, body) = request.into_parts();
        let Some(host_value) = request_host(&parts) else {
            return text(
                StatusCode::BAD_REQUEST,
                "the request names no host\n".to_owned(),
            );
        };
        let host = host_value.to_str().unwrap_or_default();
        let Some(route) = table.route(host) else {
            return text(
                StatusCode::NOT_FOUND,
                format!("no app is served at `{host}`\n"),
            );
        };
        let Some((index, unit)) = route.pick() else {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("app `{}` has no started web unit\n", route.app),
            );
        };
        strip_hop_by_hop(&mut parts.headers);
        add_forwarded(&mut parts.headers, peer, &host_value);
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let may_retry = matches!(parts.method, Method::GET | Method::HEAD) && body.is_end_stream();
        let outcome = if may_retry {
            // A GET or HEAD that got no answer (refused, or the connection closed first, as a
            // unit being stopped does) may be sent again: every other unit is tried in turn.
            let (mut index, mut unit) = (index, unit);
            let mut attempt = 0;
            loop {
                let result = self
                    .send(
                        &parts.method,
                        unit,
                        &path,
                        parts.headers.clone(),
                        Either::Right(Empty::new()),
                    )
                    .await;
                let error = match result {
                    Ok(response) => break Ok(response),
                    Err(error) => error,
                };
                attempt += 1;
                let refused = error.is_connect();
                if refused {
                    route.refused(index);
                }
                let more = attempt < route.units.len().max(2);
                match route.retry(index, attempt) {
                    Some(next) if more => (index, unit) = next,
                    _ => break Err(error),
                }
            }
        } else {
            self.send(
                &parts.method,
                unit,
                &path,
                parts.headers,
                Either::Left(body),
            )
            .await
        };
        match outcome {
            Ok(mut response) => {
                strip_hop_by_hop(response.headers_mut());
                response.map(Either::Left)
            }
            Err(error) => text(
                StatusCode::BAD_GATEWAY,
                format!("app `{}`: its unit did not answer ({error})\n", route.app),
            ),
        }
    }

    async fn send(
        &self,
        method: &Method,
        unit: &Authority,
        path: &PathAndQuery,
        headers: HeaderMap,
        body: UnitBody,
    ) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
        let mut uri = hyper::http::uri::Parts::default();
        uri.scheme = Some(Scheme::HTTP);
        uri.authority = Some(unit.clone());
        uri.path_and_query = Some(path.clone());
        let mut request = Request::new(body);
        *request.method_mut() = method.clone();
        // Built from valid parts; `Uri::default()` is never used in practice.
        *request.uri_mut() = Uri::from_parts(uri).unwrap_or_default();
        *request.headers_mut() = headers;
        self.client.request(request).await
    }
}

/// The host a request is for: its absolute URI's, else its Host header (a cheap clone).
fn request_host(parts: &hyper::http::request::Parts) -> Option<HeaderValue> {
    if let Some(host) = parts.uri.host() {
        return HeaderValue::from_str(host).ok();
    }
    parts
        .headers
        .get(header::HOST)
        .filter(|host| !host.is_empty() && host.to_str().is_ok())
        .cloned()
}

/// Headers meant for one connection only (RFC 9110, 7.6.1), never forwarded.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if let Some(connection) = headers.get(header::CONNECTION).cloned()
        && let Ok(connection) = connection.to_str()
    {
        for name in connection.split(',') {
            headers.remove(name.trim());
        }
    }
    for name in [
        header::CONNECTION,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

fn add_forwarded(headers: &mut HeaderMap, peer: SocketAddr, host: &HeaderValue) {
    let forwarded_for = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(earlier) => format!("{earlier}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
        headers.insert("x-forwarded-for", value);
    }
    if !headers.contains_key("x-forwarded-host") {
        headers.insert("x-forwarded-host", host.clone());
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
}

fn text(status: StatusCode, body: String) -> Response<RouterBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Keeps `router`'s table following `store` until `shutdown`.
pub async fn follow(
    router: Arc<Router>,
    store: Arc<dyn AppStore>,
    every: Duration,
    shutdown: CancellationToken,
    events: EventSink,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        match router.refresh(store.as_ref()).await {
            Ok(changed) => {
                if failing {
                    failing = false;
                    events(RouterEvent::RefreshRecovered);
                }
                if changed {
                    let (apps, units) = router.table().counts();
                    events(RouterEvent::TableChanged { apps, units });
                }
            }
            Err(error) => {
                if !failing {
                    failing = true;
                    events(RouterEvent::RefreshFailed(error.to_string()));
                }
            }
        }
    }
}

/// Serves `listener` with `router` until `shutdown`, following `store`; then drains.
/// The table is filled once before the first connection is accepted.
pub async fn serve(
    listener: TcpListener,
    router: Arc<Router>,
    store: Arc<dyn AppStore>,
    options: RouterOptions,
    shutdown: CancellationToken,
    events: EventSink,
) -> Drained {
    match router.refresh(store.as_ref()).await {
        Ok(_) => {
            let (apps, units) = router.table().counts();
            events(RouterEvent::TableChanged { apps, units });
        }
        Err(error) => events(RouterEvent::RefreshFailed(error.to_string())),
    }
    let stop_following = CancellationToken::new();
    let follower = tokio::spawn(follow(
        router.clone(),
        store,
        options.refresh,
        stop_following.clone(),
        events.clone(),
    ));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, peer)) = accepted else {
            // Out of file descriptors and the like: wait a little rather than spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |request| {
            let router = router.clone();
            async move { Ok::<_, std::convert::Infallible>(router.handle(request, peer).await) }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service);
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = watched.await;
        });
    }
    drop(listener);
    events(RouterEvent::Draining);
    let drained = tokio::select! {
        _ = graceful.shutdown() => Drained::Completed,
        _ = tokio::time::sleep(options.drain_timeout) => Drained::TimedOut,
    };
    stop_following.cancel();
    let _ = follower.await;
    drained
}
