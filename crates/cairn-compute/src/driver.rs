//! The `InstanceDriver` trait (InfraKit's `instance.Plugin`) and its types.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("invalid instance properties: {0}")]
    Invalid(String),
    #[error("no instance `{0}`")]
    NotFound(String),
    #[error("{0}")]
    Failed(String),
}

pub type DriverResult<T> = Result<T, DriverError>;

/// What to provision (InfraKit's `instance.Spec`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceSpec {
    /// Driver-specific properties (for `docker`: image, command, env, ...).
    pub properties: serde_json::Value,
    pub tags: BTreeMap<String, String>,
    /// A script run when the instance starts (`/bin/sh -c`).
    #[serde(default)]
    pub init: Option<String>,
    /// A stable identity for members of a quorum group.
    #[serde(default)]
    pub logical_id: Option<String>,
    /// Things to attach (InfraKit's attachments): for `docker`, a `volume` (mounted at
    /// `/attachments/<id>`) or a `network` (joined).
    #[serde(default)]
    pub attachments: Vec<Attachment>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// One instance as a driver sees it (InfraKit's `instance.Description`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceDescription {
    pub id: String,
    pub logical_id: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// Whether it is running.
    pub running: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<serde_json::Value>,
}

/// How an instance is doing, as its driver can tell (the `health` method). Drivers without a
/// health check of their own say `Running` or `Stopped`; group health checks (command, TCP,
/// HTTP) are the group's business, not the driver's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Health {
    /// Running, and its own health check (Docker's `HEALTHCHECK`) passes.
    Healthy,
    /// Running, but its own health check fails.
    Unhealthy,
    /// Running, its own health check has not decided yet.
    Starting,
    /// Running, with no health check of its own.
    Running,
    /// Exited, dead, or never started.
    Stopped,
}

/// Why an instance is destroyed (InfraKit's `instance.Context`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DestroyReason {
    RollingUpdate,
    Terminate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// A piece of a command's output, as it arrives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputChunk {
    pub stream: Stream,
    pub bytes: Vec<u8>,
}

#[async_trait]
pub trait InstanceDriver: Send + Sync {
    /// The driver's name (`docker`, `fake`).
    fn name(&self) -> &str;

    /// What the driver's settings and instance properties are (as Travis's backend registry
    /// shows them), for `cairn instance drivers` and error messages.
    fn help(&self) -> &str {
        ""
    }

    /// Checks properties before anything is provisioned.
    async fn validate(&self, properties: &serde_json::Value) -> DriverResult<()>;

    /// Starts an instance; returns its ID.
    async fn provision(&self, spec: InstanceSpec) -> DriverResult<String>;

    /// Merges `tags` into the instance's tags.
    async fn label(&self, id: &str, tags: &BTreeMap<String, String>) -> DriverResult<()>;

    /// Stops and removes an instance; one already gone is not an error.
    async fn destroy(&self, id: &str, reason: DestroyReason) -> DriverResult<()>;

    /// The instances carrying every tag of `tags` (all of them for an empty filter).
    async fn describe(
        &self,
        tags: &BTreeMap<String, String>,
        with_properties: bool,
    ) -> DriverResult<Vec<InstanceDescription>>;

    /// Writes a file into the instance (a script to run, a build's sources).
    async fn copy_in(&self, id: &str, path: &str, bytes: Vec<u8>) -> DriverResult<()> {
        let _ = (id, path, bytes);
        Err(DriverError::Failed(format!(
            "the `{}` driver cannot copy files into instances",
            self.name()
        )))
    }

    /// Whether a script is better written by the command that runs it, from its standard
    /// input, than by `copy_in` first: true where a copy costs the engine a process of its own
    /// (Docker unpacks an archive for it), so a run makes one call instead of two.
    fn prefers_stdin_upload(&self) -> bool {
        false
    }

    /// The address TCP and HTTP health probes connect to; `None` when the instance has none.
    async fn address(&self, id: &str) -> DriverResult<Option<String>> {
        let _ = id;
        Ok(None)
    }

    /// Runs `command` in the instance, streaming its output to `output`; returns its exit code.
    async fn exec(
        &self,
        id: &str,
        command: &[String],
        output: tokio::sync::mpsc::UnboundedSender<OutputChunk>,
    ) -> DriverResult<i64>;

    /// `exec`, with `stdin` written to the command's standard input (then closed), for what
    /// reads a script or an archive there (tsuru's `exec`). Drivers that cannot feed stdin keep
    /// this default, which refuses rather than run the command without its input.
    async fn exec_with_stdin(
        &self,
        id: &str,
        command: &[String],
        stdin: Option<Vec<u8>>,
        output: tokio::sync::mpsc::UnboundedSender<OutputChunk>,
    ) -> DriverResult<i64> {
        match stdin {
            None => self.exec(id, command, output).await,
            Some(_) => Err(DriverError::Failed(format!(
                "the `{}` driver cannot feed a command's standard input",
                self.name()
            ))),
        }
    }

    /// How the instance is doing. The default asks `describe`, so every driver answers
    /// `Running` or `Stopped`; a driver that knows more (Docker's health status) says so.
    async fn health(&self, id: &str) -> DriverResult<Health> {
        let instances = self.describe(&BTreeMap::new(), false).await?;
        let instance = instances
            .iter()
            .find(|instance| instance.id == id)
            .ok_or_else(|| DriverError::NotFound(id.to_owned()))?;
        Ok(if instance.running {
            Health::Running
        } else {
            Health::Stopped
        })
    }
}
