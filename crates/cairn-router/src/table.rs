//! The route table: which units serve which host name. It is built from the store's records
//! (`RouteTable::build`), then only read: requests look a host up and take the next unit in
//! turn, without a lock and without allocating.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cairn_app::{App, Unit, UnitStatus};
use hyper::http::uri::Authority;

/// The process whose units receive an app's HTTP traffic (tsuru's convention).
pub const WEB_PROCESS: &str = "web";

/// How long a unit that refused a connection is passed over by `pick` (it is being stopped,
/// or gone before the table noticed).
pub const REFUSED_FOR: Duration = Duration::from_secs(2);

/// Milliseconds since the first call: a clock for `refused_at`, with 0 as "never".
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis())
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

/// One app's routes: its units that may take traffic, taken in turn.
#[derive(Debug)]
pub struct AppRoute {
    pub app: String,
    /// The addresses (`host:port`) of the app's `web` units whose status is `started`.
    pub units: Vec<Authority>,
    /// When each unit last refused a connection (`now_ms`), 0 for never.
    refused_at: Vec<AtomicU64>,
    next: AtomicUsize,
}

impl AppRoute {
    fn new(app: String, units: Vec<Authority>) -> AppRoute {
        AppRoute {
            app,
            refused_at: units.iter().map(|_| AtomicU64::new(0)).collect(),
            units,
            next: AtomicUsize::new(0),
        }
    }

    fn recently_refused(&self, index: usize, now: u64) -> bool {
        self.refused_at.get(index).is_some_and(|at| {
            let at = at.load(Ordering::Relaxed);
            at != 0 && now.saturating_sub(at) < REFUSED_FOR.as_millis() as u64
        })
    }

    /// The unit the next request goes to (round robin, passing over units that refused a
    /// connection in the last `REFUSED_FOR` while another has not), with its index; `None`
    /// with no unit.
    pub fn pick(&self) -> Option<(usize, &Authority)> {
        if self.units.is_empty() {
            return None;
        }
        let first = self.next.fetch_add(1, Ordering::Relaxed) % self.units.len();
        let now = now_ms();
        let index = (0..self.units.len())
            .map(|offset| (first + offset) % self.units.len())
            .find(|&index| !self.recently_refused(index, now))
            .unwrap_or(first);
        Some((index, &self.units[index]))
    }

    /// The unit to try after the one at `index` failed, on the `attempt`th retry (1, 2, ...):
    /// the next ones in order, those that recently refused last; the same unit when it is the
    /// only one.
    pub fn retry(&self, index: usize, attempt: usize) -> Option<(usize, &Authority)> {
        let len = self.units.len();
        if len == 0 {
            return None;
        }
        if len == 1 {
            return Some((0, &self.units[0]));
        }
        let now = now_ms();
        let others = (1..len).map(|offset| (index + offset) % len);
        let fresh = others
            .clone()
            .filter(|&other| !self.recently_refused(other, now));
        let stale = others.filter(|&other| self.recently_refused(other, now));
        let chosen = fresh.chain(stale).nth((attempt - 1) % (len - 1))?;
        Some((chosen, &self.units[chosen]))
    }

    /// Notes that the unit at `index` refused a connection.
    pub fn refused(&self, index: usize) {
        if let Some(at) = self.refused_at.get(index) {
            at.store(now_ms(), Ordering::Relaxed);
        }
    }
}

/// Every served host name and the app behind it.
#[derive(Debug, Default)]
pub struct RouteTable {
    /// Lowercase host name (no port) → index in `apps`.
    hosts: HashMap<String, usize>,
    apps: Vec<AppRoute>,
}

impl RouteTable {
    /// The table for `apps` (each with its units) under `domain`: `APP.<domain>` for each app,
    /// and the custom names it was given (`App::cnames`; a name that is also some app's
    /// `APP.<domain>` stays that app's). Only units of process `web`, with status `started`
    /// and an address that parses as `host:port`, take traffic. (A unit records no health of
    /// its own yet: a provisioner moves it to `started` once its health check passed, as tsuru
    /// does.)
    pub fn build(domain: &str, apps: &[(App, Vec<Unit>)]) -> RouteTable {
        let domain = domain.trim_matches('.').to_ascii_lowercase();
        let mut table = RouteTable::default();
        for (app, units) in apps {
            let routable = units
                .iter()
                .filter(|unit| unit.process == WEB_PROCESS && unit.status == UnitStatus::Started)
                .filter_map(|unit| unit.address.as_deref())
                .filter_map(|address| address.parse::<Authority>().ok())
                .filter(|authority| authority.port_u16().is_some())
                .collect();
            let index = table.apps.len();
            table.apps.push(AppRoute::new(app.name.clone(), routable));
            table
                .hosts
                .insert(format!("{}.{domain}", app.name.to_ascii_lowercase()), index);
        }
        for (index, (app, _)) in apps.iter().enumerate() {
            for cname in &app.cnames {
                table
                    .hosts
                    .entry(cname.trim_end_matches('.').to_ascii_lowercase())
                    .or_insert(index);
            }
        }
        table
    }

    /// The app served at `host` (a Host header: any case, with or without a port).
    pub fn route(&self, host: &str) -> Option<&AppRoute> {
        let host = strip_port(host).trim_end_matches('.');
        let index = if host.bytes().any(|byte| byte.is_ascii_uppercase()) {
            self.hosts.get(&host.to_ascii_lowercase())
        } else {
            self.hosts.get(host)
        }?;
        self.apps.get(*index)
    }

    /// Every app and its routable unit addresses, by app name: what the table routes, to
    /// compare two tables and to show.
    pub fn summary(&self) -> Vec<(String, Vec<String>)> {
        let mut apps: Vec<(String, Vec<String>)> = self
            .apps
            .iter()
            .map(|route| {
                (
                    route.app.clone(),
                    route.units.iter().map(ToString::to_string).collect(),
                )
            })
            .collect();
        apps.sort();
        apps
    }

    /// Every served host name and its app, sorted.
    pub fn hosts(&self) -> Vec<(String, String)> {
        let mut hosts: Vec<(String, String)> = self
            .hosts
            .iter()
            .filter_map(|(host, &index)| {
                let route = self.apps.get(index)?;
                Some((host.clone(), route.app.clone()))
            })
            .collect();
        hosts.sort();
        hosts
    }

    /// How many apps and routable units the table has.
    pub fn counts(&self) -> (usize, usize) {
        (
            self.apps.len(),
            self.apps.iter().map(|route| route.units.len()).sum(),
        )
    }
}

fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port))
            if !name.ends_with(']')
                && !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            name
        }
        Some((name, port)) if name.ends_with(']') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(name: &str) -> App {
        App {
            name: name.to_owned(),
            pool: "default".to_owned(),
            processes: Vec::new(),
            env: Default::default(),
            release: None,
            image: None,
            encryption_salt: None,
            created_ms: 0,
            cnames: Vec::new(),
        }
    }

    fn unit(id: &str, process: &str, status: UnitStatus, address: Option<&str>) -> Unit {
        Unit {
            id: id.to_owned(),
            name: id.to_owned(),
            app: "shop".to_owned(),
            process: process.to_owned(),
            node: None,
            address: address.map(str::to_owned),
            status,
        }
    }

    #[test]
    fn only_started_web_units_with_an_address_are_routed() {
        let units = vec![
            unit("a", "web", UnitStatus::Started, Some("127.0.0.1:1001")),
            unit("b", "web", UnitStatus::Starting, Some("127.0.0.1:1002")),
            unit("c", "worker", UnitStatus::Started, Some("127.0.0.1:1003")),
            unit("d", "web", UnitStatus::Started, None),
            unit("e", "web", UnitStatus::Started, Some("no port")),
            unit("f", "web", UnitStatus::Started, Some("127.0.0.1:1006")),
            unit("g", "web", UnitStatus::Error, Some("127.0.0.1:1007")),
        ];
        let table = RouteTable::build("Cairn.localhost.", &[(app("shop"), units)]);
        assert_eq!(
            table.summary(),
            vec![(
                "shop".to_owned(),
                vec!["127.0.0.1:1001".to_owned(), "127.0.0.1:1006".to_owned()]
            )]
        );
        assert_eq!(table.counts(), (1, 2));
    }

    #[test]
    fn hosts_match_in_any_case_with_or_without_a_port() {
        let units = vec![unit(
            "a",
            "web",
            UnitStatus::Started,
            Some("127.0.0.1:1001"),
        )];
        let table = RouteTable::build("cairn.localhost", &[(app("shop"), units)]);
        for host in [
            "shop.cairn.localhost",
            "SHOP.Cairn.Localhost:8080",
            "shop.cairn.localhost.",
        ] {
            assert_eq!(
                table.route(host).map(|r| r.app.as_str()),
                Some("shop"),
                "{host}"
            );
        }
        for host in ["blog.cairn.localhost", "shop.cairn", "cairn.localhost", ""] {
            assert!(table.route(host).is_none(), "{host}");
        }
    }

    #[test]
    fn custom_names_route_to_their_app_but_never_take_an_apps_own_name() {
        let mut shop = app("shop");
        shop.cnames = vec!["www.shop.test".to_owned(), "blog.d".to_owned()];
        let table = RouteTable::build("d", &[(shop, Vec::new()), (app("blog"), Vec::new())]);
        assert_eq!(
            table.route("WWW.shop.test:80").map(|r| r.app.as_str()),
            Some("shop")
        );
        assert_eq!(table.route("blog.d").map(|r| r.app.as_str()), Some("blog"));
        assert_eq!(
            table.hosts(),
            [
                ("blog.d".to_owned(), "blog".to_owned()),
                ("shop.d".to_owned(), "shop".to_owned()),
                ("www.shop.test".to_owned(), "shop".to_owned()),
            ]
        );
    }

    #[test]
    fn units_are_taken_in_turn_and_a_retry_goes_to_another() {
        let units = vec![
            unit("a", "web", UnitStatus::Started, Some("127.0.0.1:1001")),
            unit("b", "web", UnitStatus::Started, Some("127.0.0.1:1002")),
        ];
        let table = RouteTable::build("d", &[(app("shop"), units)]);
        let route = table.route("shop.d").unwrap();
        let picks: Vec<String> = (0..4)
            .map(|_| route.pick().unwrap().1.to_string())
            .collect();
        assert_eq!(
            picks,
            [
                "127.0.0.1:1001",
                "127.0.0.1:1002",
                "127.0.0.1:1001",
                "127.0.0.1:1002"
            ]
        );
        assert_eq!(route.retry(0, 1).unwrap().1.as_str(), "127.0.0.1:1002");
        assert_eq!(route.retry(1, 1).unwrap().1.as_str(), "127.0.0.1:1001");
    }

    #[test]
    fn a_unit_that_refused_is_passed_over_while_others_are_not() {
        let units = ["a", "b", "c"]
            .iter()
            .enumerate()
            .map(|(n, id)| {
                let address = format!("127.0.0.1:{}", 1001 + n);
                unit(id, "web", UnitStatus::Started, Some(&address))
            })
            .collect();
        let table = RouteTable::build("d", &[(app("shop"), units)]);
        let route = table.route("shop.d").unwrap();
        route.refused(1);
        let picks: Vec<usize> = (0..6).map(|_| route.pick().unwrap().0).collect();
        assert!(!picks.contains(&1), "{picks:?}");
        // Retries after unit 0: unit 2 first, the one that refused last.
        assert_eq!(route.retry(0, 1).unwrap().0, 2);
        assert_eq!(route.retry(0, 2).unwrap().0, 1);
        // When every unit refused, they are still taken in turn.
        route.refused(0);
        route.refused(2);
        let picks: Vec<usize> = (0..3).map(|_| route.pick().unwrap().0).collect();
        let mut sorted = picks.clone();
        sorted.sort();
        assert_eq!(sorted, [0, 1, 2], "{picks:?}");
    }
}
