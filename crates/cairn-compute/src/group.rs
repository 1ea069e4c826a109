//! Groups (InfraKit's group plugin): a spec says what each instance is and how many there are
//! (`size`, a scaled group) or which ones (`logicalIds`, a quorum group). Converging creates
//! what is missing, removes the surplus, and replaces instances whose spec fingerprint is stale
//! one at a time: the new one must pass the health check before the old one goes; if it does
//! not, the rollout stops there and the old instances keep serving.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::driver::{
    DestroyReason, DriverError, DriverResult, InstanceDescription, InstanceDriver, InstanceSpec,
};

pub const GROUP_TAG: &str = "cairn.group";
pub const CONFIG_HASH_TAG: &str = "cairn.config.hash";
pub const LOGICAL_ID_TAG: &str = "cairn.logical_id";

/// How many instances are created at once.
const CREATE_PARALLELISM: usize = 16;

/// The most members a group may have.
pub const MAX_GROUP_SIZE: usize = 10_000;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupSpec {
    pub id: String,
    /// What each instance is (driver-specific properties).
    pub properties: serde_json::Value,
    #[serde(default)]
    pub init: Option<String>,
    /// A scaled group of this many instances...
    #[serde(default)]
    pub size: Option<usize>,
    /// ...or a quorum group with exactly these members.
    #[serde(default)]
    pub logical_ids: Vec<String>,
    #[serde(default)]
    pub health: Option<HealthCheck>,
    /// Attached to every instance (InfraKit's attachments).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<crate::driver::Attachment>,
    /// How stale instances are replaced; one at a time by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<RollingUpdate>,
}

/// Rolling-update policy: replace `batchSize` instances at a time (their replacements all
/// healthy before any of them goes), waiting `pauseSeconds` between batches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollingUpdate {
    #[serde(default = "one")]
    pub batch_size: usize,
    #[serde(default)]
    pub pause_seconds: u64,
}

impl Default for RollingUpdate {
    fn default() -> Self {
        RollingUpdate {
            batch_size: 1,
            pause_seconds: 0,
        }
    }
}

fn one() -> usize {
    1
}

/// How to tell a new instance is healthy: a `command` run in it exits 0, or a `tcp` port at
/// its address accepts a connection, or an `http` GET there answers 2xx or 3xx.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheck {
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub tcp: Option<u16>,
    #[serde(default)]
    pub http: Option<HttpProbe>,
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpProbe {
    pub port: u16,
    #[serde(default = "default_path")]
    pub path: String,
}

fn default_path() -> String {
    "/".to_owned()
}

fn default_timeout_seconds() -> u64 {
    30
}

fn default_interval_ms() -> u64 {
    250
}

impl GroupSpec {
    /// The fingerprint of what defines an instance: the SHA-256 of the canonical JSON (keys
    /// sorted) of its properties, init script and attachments. It is the `cairn.config.hash` tag.
    pub fn fingerprint(&self) -> String {
        let mut defining = serde_json::json!({ "properties": self.properties, "init": self.init });
        if !self.attachments.is_empty() {
            defining["attachments"] = serde_json::json!(self.attachments);
        }
        hex::encode(sha2::Sha256::digest(canonical(&defining).as_bytes()))
    }

    pub fn check(&self) -> DriverResult<()> {
        if self.id.is_empty() {
            return Err(DriverError::Invalid("a group needs an `id`".to_owned()));
        }
        // Every member is planned in memory first: a size in the billions would exhaust it.
        if let Some(size) = self.size
            && size > MAX_GROUP_SIZE
        {
            return Err(DriverError::Invalid(format!(
                "`size` is {size}; a group has at most {MAX_GROUP_SIZE} members"
            )));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(repeated) = self.logical_ids.iter().find(|id| !seen.insert(*id)) {
            return Err(DriverError::Invalid(format!(
                "`logicalIds` names `{repeated}` twice; each member needs its own"
            )));
        }
        match (self.size, self.logical_ids.is_empty()) {
            (Some(_), false) => Err(DriverError::Invalid(
                "a group has either `size` or `logicalIds`, not both".to_owned(),
            )),
            (None, true) => Err(DriverError::Invalid(
                "a group needs `size` (a scaled group) or `logicalIds` (a quorum group)".to_owned(),
            )),
            _ => Ok(()),
        }
    }
}

fn canonical(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|key| {
                    format!(
                        "{}:{}",
                        serde_json::Value::String(key.clone()),
                        canonical(&map[key])
                    )
                })
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        serde_json::Value::Array(items) => {
            format!(
                "[{}]",
                items.iter().map(canonical).collect::<Vec<_>>().join(",")
            )
        }
        other => other.to_string(),
    }
}

/// What converging will do.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Instances to create: their logical IDs (`None` in a scaled group).
    pub create: Vec<Option<String>>,
    /// Instances to destroy outright: surplus, or members no longer in the quorum.
    pub destroy: Vec<String>,
    /// Instances with a stale fingerprint, replaced one at a time.
    pub replace: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.destroy.is_empty() && self.replace.is_empty()
    }
}

/// Decides the steps from the spec and the group's instances (a pure function).
pub fn plan(spec: &GroupSpec, instances: &[InstanceDescription]) -> Plan {
    let fingerprint = spec.fingerprint();
    let is_stale = |instance: &InstanceDescription| {
        instance.tags.get(CONFIG_HASH_TAG) != Some(&fingerprint) || !instance.running
    };
    let mut plan = Plan::default();
    if !spec.logical_ids.is_empty() {
        for logical_id in &spec.logical_ids {
            let members: Vec<&InstanceDescription> = instances
                .iter()
                .filter(|instance| instance.logical_id.as_ref() == Some(logical_id))
                .collect();
            match members.split_first() {
                None => plan.create.push(Some(logical_id.clone())),
                Some((first, extra)) => {
                    plan.destroy
                        .extend(extra.iter().map(|instance| instance.id.clone()));
                    if is_stale(first) {
                        plan.replace.push(first.id.clone());
                    }
                }
            }
        }
        plan.destroy.extend(
            instances
                .iter()
                .filter(|instance| {
                    instance
                        .logical_id
                        .as_ref()
                        .is_none_or(|id| !spec.logical_ids.contains(id))
                })
                .map(|instance| instance.id.clone()),
        );
        return plan;
    }
    let size = spec.size.unwrap_or(0);
    // Surplus goes stale-first, so fewer instances need replacing afterwards.
    let mut ordered: Vec<&InstanceDescription> = instances.iter().collect();
    ordered.sort_by_key(|instance| (!is_stale(instance), instance.id.clone()));
    let surplus = ordered.len().saturating_sub(size);
    plan.destroy = ordered[..surplus]
        .iter()
        .map(|instance| instance.id.clone())
        .collect();
    plan.replace = ordered[surplus..]
        .iter()
        .filter(|instance| is_stale(instance))
        .map(|instance| instance.id.clone())
        .collect();
    plan.create = vec![None; size.saturating_sub(instances.len())];
    plan
}

/// What converging did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub created: Vec<String>,
    pub destroyed: Vec<String>,
    /// (old, new) pairs.
    pub replaced: Vec<(String, String)>,
}

/// The group's tag filter.
pub fn group_tags(spec: &GroupSpec) -> BTreeMap<String, String> {
    BTreeMap::from([(GROUP_TAG.to_owned(), spec.id.clone())])
}

fn instance_spec(spec: &GroupSpec, logical_id: Option<String>) -> InstanceSpec {
    let mut tags = group_tags(spec);
    tags.insert(CONFIG_HASH_TAG.to_owned(), spec.fingerprint());
    if let Some(logical_id) = &logical_id {
        tags.insert(LOGICAL_ID_TAG.to_owned(), logical_id.clone());
    }
    InstanceSpec {
        properties: spec.properties.clone(),
        tags,
        init: spec.init.clone(),
        logical_id,
        attachments: spec.attachments.clone(),
    }
}

fn describe_check(health: &HealthCheck) -> String {
    match (&health.http, health.tcp) {
        (Some(http), _) => format!("HTTP GET :{}{}", http.port, http.path),
        (None, Some(port)) => format!("TCP :{port}"),
        (None, None) => format!("`{}`", health.command.join(" ")),
    }
}

/// One try of the health check.
async fn probe(driver: &dyn InstanceDriver, health: &HealthCheck, id: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let port = health.http.as_ref().map(|http| http.port).or(health.tcp);
    let Some(port) = port else {
        let (sender, _output) = tokio::sync::mpsc::unbounded_channel();
        return matches!(driver.exec(id, &health.command, sender).await, Ok(0));
    };
    let Ok(Some(address)) = driver.address(id).await else {
        return false;
    };
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect((address.as_str(), port))
            .await
            .ok()?;
        let Some(http) = &health.http else {
            return Some(true);
        };
        let request = format!("GET {} HTTP/1.0\r\nHost: {address}\r\n\r\n", http.path);
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.ok()?;
        // "HTTP/1.x NNN"
        Some(matches!(head.get(9), Some(b'2' | b'3')))
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// Waits until the health check passes, or says it did not within its time.
async fn wait_healthy(driver: &dyn InstanceDriver, spec: &GroupSpec, id: &str) -> DriverResult<()> {
    let Some(health) = &spec.health else {
        return Ok(());
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(health.timeout_seconds);
    loop {
        if probe(driver, health, id).await {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(DriverError::Failed(format!(
                "instance `{id}` did not pass its health check ({}) within {}s",
                describe_check(health),
                health.timeout_seconds
            )));
        }
        tokio::time::sleep(Duration::from_millis(health.interval_ms)).await;
    }
}

/// A step of converging, as it happens (for progress output and `--json` event streams).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum GroupEvent {
    /// What will be done, before anything is.
    #[serde(rename_all = "camelCase")]
    Planned {
        plan: Plan,
    },
    #[serde(rename_all = "camelCase")]
    Created {
        id: String,
        logical_id: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    CreateFailed {
        logical_id: Option<String>,
        error: String,
    },
    Destroyed {
        id: String,
    },
    /// A replacement for `old` is up and its health check is being waited for.
    Replacing {
        old: String,
        new: String,
    },
    Healthy {
        id: String,
    },
    Unhealthy {
        id: String,
        error: String,
    },
    Replaced {
        old: String,
        new: String,
    },
    /// The rolling update stopped; the instances not yet replaced keep serving.
    RolloutStopped {
        error: String,
    },
}

/// Sends an event to whoever listens; nobody listening is fine.
async fn emit(progress: Option<&tokio::sync::mpsc::Sender<GroupEvent>>, event: GroupEvent) {
    if let Some(progress) = progress {
        let _ = progress.send(event).await;
    }
}

/// What converging would do now, changing nothing (`group commit --pretend`).
pub async fn pretend(driver: &dyn InstanceDriver, spec: &GroupSpec) -> DriverResult<Plan> {
    spec.check()?;
    driver.validate(&spec.properties).await?;
    let instances = driver.describe(&group_tags(spec), false).await?;
    Ok(plan(spec, &instances))
}

/// Brings the group in line with `spec`. A failed rolling replacement stops the rollout: the
/// instance that failed its health check is removed, the old ones are left serving, and the
/// error says which.
pub async fn converge(driver: Arc<dyn InstanceDriver>, spec: &GroupSpec) -> DriverResult<Report> {
    converge_with_progress(driver, spec, None).await
}

/// `converge`, telling `progress` each step as it happens.
pub async fn converge_with_progress(
    driver: Arc<dyn InstanceDriver>,
    spec: &GroupSpec,
    progress: Option<tokio::sync::mpsc::Sender<GroupEvent>>,
) -> DriverResult<Report> {
    let progress = progress.as_ref();
    spec.check()?;
    driver.validate(&spec.properties).await?;
    let instances = driver.describe(&group_tags(spec), false).await?;
    let plan = plan(spec, &instances);
    emit(progress, GroupEvent::Planned { plan: plan.clone() }).await;
    let mut report = Report::default();

    let semaphore = Arc::new(tokio::sync::Semaphore::new(CREATE_PARALLELISM));
    let mut creations = tokio::task::JoinSet::new();
    for logical_id in plan.create {
        let driver = driver.clone();
        let instance = instance_spec(spec, logical_id.clone());
        let semaphore = semaphore.clone();
        creations.spawn(async move {
            let _permit = semaphore.acquire().await;
            (logical_id, driver.provision(instance).await)
        });
    }
    let mut first_error = None;
    while let Some(created) = creations.join_next().await {
        match created {
            Ok((logical_id, Ok(id))) => {
                emit(
                    progress,
                    GroupEvent::Created {
                        id: id.clone(),
                        logical_id,
                    },
                )
                .await;
                report.created.push(id);
            }
            Ok((logical_id, Err(error))) => {
                emit(
                    progress,
                    GroupEvent::CreateFailed {
                        logical_id,
                        error: error.to_string(),
                    },
                )
                .await;
                first_error = first_error.or(Some(error));
            }
            Err(error) => {
                first_error = first_error.or(Some(DriverError::Failed(error.to_string())))
            }
        }
    }
    for id in plan.destroy {
        driver.destroy(&id, DestroyReason::Terminate).await?;
        emit(progress, GroupEvent::Destroyed { id: id.clone() }).await;
        report.destroyed.push(id);
    }
    if let Some(error) = first_error {
        return Err(error);
    }
    let policy = spec.rolling_update.clone().unwrap_or_default();
    let batch_size = policy.batch_size.max(1);
    for (batch_index, batch) in plan.replace.chunks(batch_size).enumerate() {
        if batch_index > 0 && policy.pause_seconds > 0 {
            tokio::time::sleep(Duration::from_secs(policy.pause_seconds)).await;
        }
        // New instances for the whole batch first; the old ones go only once all are healthy.
        let mut fresh = Vec::new();
        for old_id in batch {
            let logical_id = instances
                .iter()
                .find(|instance| &instance.id == old_id)
                .and_then(|instance| instance.logical_id.clone());
            let new_id = driver.provision(instance_spec(spec, logical_id)).await?;
            emit(
                progress,
                GroupEvent::Replacing {
                    old: old_id.clone(),
                    new: new_id.clone(),
                },
            )
            .await;
            fresh.push(new_id);
        }
        for new_id in &fresh {
            if let Err(error) = wait_healthy(driver.as_ref(), spec, new_id).await {
                emit(
                    progress,
                    GroupEvent::Unhealthy {
                        id: new_id.clone(),
                        error: error.to_string(),
                    },
                )
                .await;
                for new_id in &fresh {
                    driver.destroy(new_id, DestroyReason::RollingUpdate).await?;
                    emit(progress, GroupEvent::Destroyed { id: new_id.clone() }).await;
                }
                let error = format!(
                    "rolling update of group `{}` stopped after {} of its replacements: {error}; the old instances keep serving",
                    spec.id,
                    report.replaced.len()
                );
                emit(
                    progress,
                    GroupEvent::RolloutStopped {
                        error: error.clone(),
                    },
                )
                .await;
                return Err(DriverError::Failed(error));
            }
            emit(progress, GroupEvent::Healthy { id: new_id.clone() }).await;
        }
        for (old_id, new_id) in batch.iter().zip(fresh) {
            driver.destroy(old_id, DestroyReason::RollingUpdate).await?;
            emit(
                progress,
                GroupEvent::Replaced {
                    old: old_id.clone(),
                    new: new_id.clone(),
                },
            )
            .await;
            report.replaced.push((old_id.clone(), new_id));
        }
    }
    Ok(report)
}

/// A group as it is: its spec, its members (each marked current or stale against the spec's
/// fingerprint) and what converging would do. Serde both ways, so it can be stored or shown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupStatus {
    pub spec: GroupSpec,
    pub fingerprint: String,
    pub members: Vec<Member>,
    pub plan: Plan,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    #[serde(flatten)]
    pub instance: InstanceDescription,
    /// Whether it carries the spec's fingerprint (else a rolling update will replace it).
    pub current: bool,
}

/// The group's status (`group inspect`).
pub async fn inspect(driver: &dyn InstanceDriver, spec: &GroupSpec) -> DriverResult<GroupStatus> {
    let instances = driver.describe(&group_tags(spec), true).await?;
    let fingerprint = spec.fingerprint();
    let plan = plan(spec, &instances);
    let members = instances
        .into_iter()
        .map(|instance| Member {
            current: instance.tags.get(CONFIG_HASH_TAG) == Some(&fingerprint),
            instance,
        })
        .collect();
    Ok(GroupStatus {
        spec: spec.clone(),
        fingerprint,
        members,
        plan,
    })
}

/// Destroys every instance of the group.
pub async fn destroy_group(
    driver: &dyn InstanceDriver,
    spec: &GroupSpec,
) -> DriverResult<Vec<String>> {
    let mut destroyed = Vec::new();
    for instance in driver.describe(&group_tags(spec), false).await? {
        driver
            .destroy(&instance.id, DestroyReason::Terminate)
            .await?;
        destroyed.push(instance.id);
    }
    Ok(destroyed)
}

/// Converges every `interval` until `cancel` fires: an instance that dies or is removed
/// outside Cairn is replaced at the next pass. Errors of one pass are reported and retried.
pub async fn watch(
    driver: Arc<dyn InstanceDriver>,
    spec: &GroupSpec,
    interval: Duration,
    cancel: tokio_util::sync::CancellationToken,
    reports: tokio::sync::mpsc::UnboundedSender<DriverResult<Report>>,
) {
    loop {
        let result = converge(driver.clone(), spec).await;
        let _ = reports.send(result);
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = cancel.cancelled() => return,
        }
    }
}
