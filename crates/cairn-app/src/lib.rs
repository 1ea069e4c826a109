//! Apps on tsuru's provisioner model (seed 002): an app has a pool, processes, environment
//! variables and a history of releases; a unit is one running copy of one of its processes,
//! with tsuru's status machine; pools group the nodes (Docker Engine endpoints) units run on.
//!
//! This crate is the model and its storage contract, not the running of anything: it parses
//! Procfiles and `cairn.app.yaml`, validates names, checks status transitions, and defines
//! `AppStore`, which each state backend implements (`file://` in `cairn-backend-file`,
//! `postgres://` in `cairn-backend-postgres`) and `conformance` checks. Deploying containers,
//! the router and node health checks build on it and are not here.
//!
//! Architecture invariant: no I/O. Files come in as text, time as Unix milliseconds, secrets
//! through a `cairn_secrets::Crypter`; a secret environment value is only ever held sealed.

#[cfg(feature = "conformance")]
pub mod conformance;
mod document;
mod error;
pub mod manifest;
mod model;
pub mod names;
pub mod ops;
pub mod procfile;
mod status;
mod store;

pub use document::{AppDocument, LockHold};
pub use error::{AppError, AppResult};
pub use model::{
    App, AppLock, DEFAULT_POOL, EnvValue, NewApp, NewRelease, Node, NodeStatus, Pool, Process,
    Release, Unit,
};
pub use status::UnitStatus;
pub use store::{AppStore, NodeUpdate, apply_node_update};
