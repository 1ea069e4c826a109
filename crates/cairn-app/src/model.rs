//! The records an `AppStore` keeps, named as tsuru's `provision` package names them: `App`,
//! `Process`, `Release`, `Unit`, `Pool`, `Node`. They are the stored format too (JSON in both
//! backends), so fields are only ever added, with serde defaults.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::UnitStatus;

/// The pool an app goes to when none is configured (PRODUCT.md): it needs no record.
pub const DEFAULT_POOL: &str = "default";

/// One process type of an app: a Procfile line (`web: ./server`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    pub name: String,
    pub command: String,
}

/// An environment variable's value as stored: a secret one only ever sealed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EnvValue {
    Plain(String),
    /// Ciphertext of the release's crypter (`Release::encryption_salt`).
    Secret(String),
}

impl EnvValue {
    pub fn is_secret(&self) -> bool {
        matches!(self, EnvValue::Secret(_))
    }
}

impl std::fmt::Debug for EnvValue {
    /// Even the ciphertext stays out of debug output: it is nobody's business in a log.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnvValue::Plain(value) => write!(formatter, "{value:?}"),
            EnvValue::Secret(_) => formatter.write_str("[secret]"),
        }
    }
}

/// An app as the store holds it. `processes`, `env` and `release` are its current release's
/// (written with the release, atomically); before its first release an app has the processes
/// it was created with and no environment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct App {
    pub name: String,
    pub pool: String,
    pub processes: Vec<Process>,
    #[serde(default)]
    pub env: BTreeMap<String, EnvValue>,
    /// The version of the current release; `None` before the first.
    #[serde(default)]
    pub release: Option<u64>,
    /// The image the current release runs, once one was deployed.
    #[serde(default)]
    pub image: Option<String>,
    /// The passphrase crypter's salt line that seals this app's secret values, made with its
    /// first secret.
    #[serde(default)]
    pub encryption_salt: Option<String>,
    /// Unix milliseconds.
    pub created_ms: i64,
    /// Host names the router serves the app at besides `APP.<domain>` (`cairn app cname`),
    /// each held by one app at most, lowercase, in the order they were added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cnames: Vec<String>,
}

/// What `AppStore::create_app` needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewApp {
    pub name: String,
    pub pool: String,
    pub processes: Vec<Process>,
}

/// One entry of an app's history: every deploy and every environment change is a release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Release {
    /// 1, 2, ... per app.
    pub version: u64,
    pub image: Option<String>,
    pub env: BTreeMap<String, EnvValue>,
    pub processes: Vec<Process>,
    #[serde(default)]
    pub encryption_salt: Option<String>,
    pub created_ms: i64,
    /// Why it was made (`env set DATABASE_URL`, `deploy`, `rollback to 3`).
    pub reason: String,
}

/// What `AppStore::append_release` needs; the store numbers and dates it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRelease {
    pub image: Option<String>,
    pub env: BTreeMap<String, EnvValue>,
    pub processes: Vec<Process>,
    pub encryption_salt: Option<String>,
    pub reason: String,
}

/// One running copy of one of an app's processes (tsuru's `provision.Unit`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Unit {
    /// The provisioner's id (a container id).
    pub id: String,
    pub name: String,
    pub app: String,
    pub process: String,
    /// The address of the node it runs on.
    pub node: Option<String>,
    /// Where it answers (`host:port`), once known.
    pub address: Option<String>,
    pub status: UnitStatus,
}

/// A group of nodes apps are placed on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pool {
    pub name: String,
    /// `docker` (Cairn places units) or `swarm` (Swarm schedules them).
    pub provisioner: String,
    /// Apps created without `--pool` go to the default pool.
    pub is_default: bool,
}

/// Whether units may be placed on a node. The health checks that will mark nodes up or down
/// come later; these two are what a user sets (tsuru's `UpdateNodeOptions` Enable/Disable).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    Enabled,
    Disabled,
}

impl NodeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Enabled => "enabled",
            NodeStatus::Disabled => "disabled",
        }
    }
}

/// A Docker Engine endpoint in a pool (tsuru's `NodeSpec`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    /// `unix:///path` or `tcp://host:port`; unique.
    pub address: String,
    pub pool: String,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    pub status: NodeStatus,
}

/// A held lock on one app: whoever holds it is the app's one writer until it unlocks or its
/// lease runs out. The token fences every write (`AppError::LockLost` once it is not the
/// app's current one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppLock {
    pub app: String,
    pub token: String,
}
