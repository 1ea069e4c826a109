//! The `docker` driver: one container per instance, through the Docker Engine API (bollard),
//! never the `docker` CLI. Properties: `image` (required), `command` (list), `env` (map or
//! `K=V` list), `ports` (`[{internal, external}]`), `mounts` (`[{source, target, readOnly}]`,
//! a volume name or host path), `memoryMb`, `cpus`, `network`, `restart` (`no`, `always`,
//! `unless-stopped`, `on-failure`). Tags become labels, and `describe` filters on them in the
//! engine. `init` runs as the container's command under `/bin/sh -c`. The engine is the one
//! `DOCKER_HOST` names (or the `host` setting: `unix:///path` or `tcp://host:port`); the API
//! version is negotiated, so older engines (API 1.41) work. Docker cannot change a container's
//! labels, so tags added by `label` are kept in the `tagsFile` setting's file and merged into
//! `describe`; without that setting `label` refuses rather than pretend.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, ExecConfig, HostConfig, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, RemoveContainerOptions, StartContainerOptions,
};
use futures_util::StreamExt;

use crate::driver::{
    DestroyReason, DriverError, DriverResult, Health, InstanceDescription, InstanceDriver,
    InstanceSpec, OutputChunk, Stream,
};
use crate::group::LOGICAL_ID_TAG;

/// Every container this driver makes carries this label, so it never touches others.
pub const MANAGED_LABEL: &str = "cairn.managed";

pub struct DockerDriver {
    docker: Docker,
    /// Tags added after provisioning (Docker fixes a container's labels at creation): kept in
    /// this file, by container ID, and merged into `describe`. Without it, `label` refuses.
    tags_file: Option<std::path::PathBuf>,
}

fn failed(action: &str, error: bollard::errors::Error) -> DriverError {
    DriverError::Failed(format!("docker: {action}: {error}"))
}

impl DockerDriver {
    /// Connects to the engine named by `host` (`unix://...`, `tcp://...`), else `DOCKER_HOST`,
    /// else the local socket, and agrees on an API version with it.
    pub async fn connect(host: Option<&str>) -> DriverResult<DockerDriver> {
        let docker = match host {
            Some(host) if host.starts_with("unix://") => Docker::connect_with_socket(
                host.trim_start_matches("unix://"),
                120,
                bollard::API_DEFAULT_VERSION,
            ),
            Some(host) => Docker::connect_with_http(host, 120, bollard::API_DEFAULT_VERSION),
            None => Docker::connect_with_local_defaults(),
        }
        .map_err(|error| failed("connecting to the engine", error))?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|error| failed("reaching the engine", error))?;
        Ok(DockerDriver {
            docker,
            tags_file: None,
        })
    }

    /// Keeps tags added by `label` in `path` (the `tagsFile` setting).
    pub fn with_tags_file(mut self, path: std::path::PathBuf) -> DockerDriver {
        self.tags_file = Some(path);
        self
    }

    fn added_tags(&self) -> DriverResult<BTreeMap<String, BTreeMap<String, String>>> {
        let Some(path) = &self.tags_file else {
            return Ok(BTreeMap::new());
        };
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|error| DriverError::Failed(format!("the docker tags file: {error}"))),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(error) => Err(DriverError::Failed(format!(
                "the docker tags file: {error}"
            ))),
        }
    }

    fn save_added_tags(
        &self,
        added: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> DriverResult<()> {
        let Some(path) = &self.tags_file else {
            return Ok(());
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|error| DriverError::Failed(error.to_string()))?;
        }
        let text = serde_json::to_string_pretty(added)
            .map_err(|error| DriverError::Failed(error.to_string()))?;
        let temporary = path.with_extension("tmp");
        std::fs::write(&temporary, text)
            .and_then(|()| std::fs::rename(&temporary, path))
            .map_err(|error| DriverError::Failed(format!("the docker tags file: {error}")))
    }

    /// Waits (up to a minute) until the container `id` no longer exists.
    async fn wait_until_gone(&self, id: &str) -> DriverResult<()> {
        for _ in 0..600 {
            match self.docker.inspect_container(id, None).await {
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => return Ok(()),
                Err(error) => return Err(failed("inspecting a container", error)),
                Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
        Err(DriverError::Failed(format!(
            "docker: container `{id}` was still being removed after a minute"
        )))
    }

    pub fn client(&self) -> &Docker {
        &self.docker
    }
}

fn strings(value: &serde_json::Value) -> Option<Vec<String>> {
    value.as_array().map(|items| {
        items
            .iter()
            .map(|item| {
                item.as_str()
                    .map_or_else(|| item.to_string(), str::to_owned)
            })
            .collect()
    })
}

fn env_of(value: &serde_json::Value) -> Option<Vec<String>> {
    match value {
        serde_json::Value::Object(map) => Some(
            map.iter()
                .map(|(key, value)| {
                    format!(
                        "{key}={}",
                        value
                            .as_str()
                            .map_or_else(|| value.to_string(), str::to_owned)
                    )
                })
                .collect(),
        ),
        other => strings(other),
    }
}

#[async_trait]
impl InstanceDriver for DockerDriver {
    fn name(&self) -> &str {
        "docker"
    }

    fn help(&self) -> &str {
        crate::help_of("docker")
    }

    async fn validate(&self, properties: &serde_json::Value) -> DriverResult<()> {
        if !properties["image"].is_string() {
            return Err(DriverError::Invalid(
                "the docker driver needs `image` (a local image: no registry is used)".to_owned(),
            ));
        }
        if let Some(restart) = properties["restart"].as_str()
            && !matches!(restart, "no" | "always" | "unless-stopped" | "on-failure")
        {
            return Err(DriverError::Invalid(format!(
                "`restart` must be no, always, unless-stopped or on-failure, not `{restart}`"
            )));
        }
        Ok(())
    }

    async fn provision(&self, spec: InstanceSpec) -> DriverResult<String> {
        self.validate(&spec.properties).await?;
        let properties = &spec.properties;
        let mut labels: HashMap<String, String> = spec.tags.clone().into_iter().collect();
        labels.insert(MANAGED_LABEL.to_owned(), "true".to_owned());
        if let Some(logical_id) = &spec.logical_id {
            labels.insert(LOGICAL_ID_TAG.to_owned(), logical_id.clone());
        }
        let cmd = match &spec.init {
            Some(init) => Some(vec!["/bin/sh".to_owned(), "-c".to_owned(), init.clone()]),
            None => strings(&properties["command"]),
        };
        let restart = properties["restart"].as_str().map(|name| RestartPolicy {
            name: Some(match name {
                "always" => RestartPolicyNameEnum::ALWAYS,
                "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
                "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
                _ => RestartPolicyNameEnum::NO,
            }),
            maximum_retry_count: None,
        });
        // `ports: [{internal, external}]` and `mounts: [{source, target, readOnly}]`.
        let ports: Vec<(String, Option<String>)> = properties["ports"]
            .as_array()
            .map(|ports| {
                ports
                    .iter()
                    .filter_map(|port| {
                        Some((
                            format!("{}/tcp", port["internal"].as_i64()?),
                            port["external"]
                                .as_i64()
                                .map(|external| external.to_string()),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut binds: Vec<String> = properties["mounts"]
            .as_array()
            .map(|mounts| {
                mounts
                    .iter()
                    .filter_map(|mount| {
                        let mode = if mount["readOnly"].as_bool() == Some(true) {
                            ":ro"
                        } else {
                            ""
                        };
                        Some(format!(
                            "{}:{}{mode}",
                            mount["source"].as_str()?,
                            mount["target"].as_str()?
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut networks: Vec<String> = properties["network"]
            .as_str()
            .map(str::to_owned)
            .into_iter()
            .collect();
        for attachment in &spec.attachments {
            match attachment.kind.as_str() {
                "volume" => binds.push(format!("{0}:/attachments/{0}", attachment.id)),
                "network" => networks.push(attachment.id.clone()),
                other => {
                    return Err(DriverError::Invalid(format!(
                        "the docker driver attaches volumes and networks, not `{other}`"
                    )));
                }
            }
        }
        let binds = (!binds.is_empty()).then_some(binds);
        let host_config = HostConfig {
            binds,
            port_bindings: (!ports.is_empty()).then(|| {
                ports
                    .iter()
                    .map(|(port, external)| {
                        (
                            port.clone(),
                            Some(vec![bollard::models::PortBinding {
                                host_ip: None,
                                host_port: external.clone(),
                            }]),
                        )
                    })
                    .collect()
            }),
            memory: properties["memoryMb"].as_i64().map(|mb| mb * 1024 * 1024),
            nano_cpus: properties["cpus"].as_f64().map(|cpus| (cpus * 1e9) as i64),
            network_mode: networks.first().cloned(),
            restart_policy: restart,
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: properties["image"].as_str().map(str::to_owned),
            cmd,
            env: env_of(&properties["env"]),
            labels: Some(labels),
            exposed_ports: (!ports.is_empty())
                .then(|| ports.iter().map(|(port, _)| port.clone()).collect()),
            host_config: Some(host_config),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(None::<CreateContainerOptions>, body)
            .await
            .map_err(|error| failed("creating a container", error))?;
        for network in networks.iter().skip(1) {
            let request = bollard::models::NetworkConnectRequest {
                container: created.id.clone(),
                ..Default::default()
            };
            if let Err(error) = self.docker.connect_network(network, request).await {
                let _ = self.destroy(&created.id, DestroyReason::Terminate).await;
                return Err(failed("joining a network", error));
            }
        }
        if let Err(error) = self
            .docker
            .start_container(&created.id, None::<StartContainerOptions>)
            .await
        {
            let _ = self.destroy(&created.id, DestroyReason::Terminate).await;
            return Err(failed("starting the container", error));
        }
        Ok(created.id)
    }

    /// Docker fixes a container's labels when it is created; new tags cannot be added to a
    /// running one, so this refuses rather than pretend.
    async fn label(&self, id: &str, tags: &BTreeMap<String, String>) -> DriverResult<()> {
        if self.tags_file.is_none() {
            return Err(DriverError::Failed(format!(
                "docker cannot change the labels of container `{id}`; give the driver a `tagsFile` setting to keep added tags"
            )));
        }
        // The container must exist; a full ID keys the file.
        let container = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(|error| failed("inspecting a container", error))?;
        let full_id = container.id.unwrap_or_else(|| id.to_owned());
        let mut added = self.added_tags()?;
        added.entry(full_id).or_default().extend(tags.clone());
        self.save_added_tags(&added)
    }

    async fn destroy(&self, id: &str, _reason: DestroyReason) -> DriverResult<()> {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        if self.tags_file.is_some() {
            let mut added = self.added_tags()?;
            let before = added.len();
            added.retain(|container, _| !container.starts_with(id));
            if added.len() != before {
                self.save_added_tags(&added)?;
            }
        }
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            // Someone else is removing it (two cleanups racing): done once it is gone.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409,
                message,
            }) if message.contains("already in progress") => self.wait_until_gone(id).await,
            Err(error) => Err(failed("removing a container", error)),
        }
    }

    async fn describe(
        &self,
        tags: &BTreeMap<String, String>,
        with_properties: bool,
    ) -> DriverResult<Vec<InstanceDescription>> {
        let added = self.added_tags()?;
        // Filters go to the engine, except on tags it cannot know (added after provisioning),
        // which are applied here.
        let mut labels = vec![format!("{MANAGED_LABEL}=true")];
        if added.is_empty() {
            labels.extend(tags.iter().map(|(key, value)| format!("{key}={value}")));
        }
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([("label".to_owned(), labels)])),
            ..Default::default()
        };
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|error| failed("listing containers", error))?;
        Ok(containers
            .into_iter()
            .map(|container| {
                let id = container.id.clone().unwrap_or_default();
                let mut found: BTreeMap<String, String> = container
                    .labels
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|(key, _)| key != MANAGED_LABEL)
                    .collect();
                if let Some(extra) = added.get(&id) {
                    found.extend(extra.clone());
                }
                let tags = found;
                let running = container
                    .state
                    .map(|state| format!("{state:?}").eq_ignore_ascii_case("running"))
                    .unwrap_or(false);
                InstanceDescription {
                    id: container.id.unwrap_or_default(),
                    logical_id: tags.get(LOGICAL_ID_TAG).cloned(),
                    tags,
                    running,
                    properties: with_properties
                        .then(|| serde_json::json!({ "image": container.image })),
                }
            })
            .filter(|instance| {
                tags.iter()
                    .all(|(key, value)| instance.tags.get(key) == Some(value))
            })
            .collect())
    }

    /// A relative `path` is relative to the container's working directory, where `exec`
    /// runs commands (as the `process` driver's are to its instance's).
    async fn copy_in(&self, id: &str, path: &str, bytes: Vec<u8>) -> DriverResult<()> {
        let mut target = std::path::PathBuf::from(path);
        if target.is_relative() {
            let container = self
                .docker
                .inspect_container(id, None)
                .await
                .map_err(|error| failed("inspecting a container", error))?;
            let working_dir = container
                .config
                .and_then(|config| config.working_dir)
                .filter(|dir| !dir.is_empty())
                .unwrap_or_else(|| "/".to_owned());
            target = std::path::Path::new(&working_dir).join(target);
        }
        let target = target.as_path();
        let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
            return Err(DriverError::Invalid(format!("`{path}` is not a file path")));
        };
        let mut archive = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o755);
        archive
            .append_data(&mut header, name, bytes.as_slice())
            .map_err(|error| DriverError::Failed(format!("packing `{path}`: {error}")))?;
        let archive = archive
            .into_inner()
            .map_err(|error| DriverError::Failed(format!("packing `{path}`: {error}")))?;
        let options = bollard::query_parameters::UploadToContainerOptions {
            path: dir.display().to_string(),
            ..Default::default()
        };
        self.docker
            .upload_to_container(
                id,
                Some(options),
                bollard::body_full(bytes::Bytes::from(archive)),
            )
            .await
            .map_err(|error| failed("copying into a container", error))
    }

    /// The container's state, and Docker's own health status when its image has a
    /// `HEALTHCHECK`.
    async fn health(&self, id: &str) -> DriverResult<Health> {
        use bollard::models::HealthStatusEnum;
        let container = match self.docker.inspect_container(id, None).await {
            Ok(container) => container,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => return Err(DriverError::NotFound(id.to_owned())),
            Err(error) => return Err(failed("inspecting a container", error)),
        };
        let Some(state) = container.state.filter(|state| state.running == Some(true)) else {
            return Ok(Health::Stopped);
        };
        Ok(match state.health.and_then(|health| health.status) {
            Some(HealthStatusEnum::HEALTHY) => Health::Healthy,
            Some(HealthStatusEnum::UNHEALTHY) => Health::Unhealthy,
            Some(HealthStatusEnum::STARTING) => Health::Starting,
            _ => Health::Running,
        })
    }

    async fn address(&self, id: &str) -> DriverResult<Option<String>> {
        let container = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(|error| failed("inspecting a container", error))?;
        Ok(container
            .network_settings
            .and_then(|settings| settings.networks)
            .and_then(|networks| {
                networks
                    .into_values()
                    .find_map(|network| network.ip_address.filter(|ip| !ip.is_empty()))
            }))
    }

    async fn exec(
        &self,
        id: &str,
        command: &[String],
        output: tokio::sync::mpsc::UnboundedSender<OutputChunk>,
    ) -> DriverResult<i64> {
        self.exec_with_stdin(id, command, None, output).await
    }

    /// The exec API: output is demultiplexed and streamed as it comes; `stdin` is written to
    /// the attached connection and its write half closed, which the engine passes on as EOF.
    fn prefers_stdin_upload(&self) -> bool {
        true
    }

    async fn exec_with_stdin(
        &self,
        id: &str,
        command: &[String],
        stdin: Option<Vec<u8>>,
        output: tokio::sync::mpsc::UnboundedSender<OutputChunk>,
    ) -> DriverResult<i64> {
        use tokio::io::AsyncWriteExt;
        let exec = self
            .docker
            .create_exec(
                id,
                ExecConfig {
                    attach_stdin: Some(stdin.is_some()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    cmd: Some(command.to_vec()),
                    ..Default::default()
                },
            )
            .await
            .map_err(|error| failed("starting a command", error))?;
        let started = self
            .docker
            .start_exec(&exec.id, None::<bollard::exec::StartExecOptions>)
            .await
            .map_err(|error| failed("starting a command", error))?;
        if let bollard::exec::StartExecResults::Attached {
            output: mut stream,
            mut input,
        } = started
        {
            if let Some(bytes) = stdin {
                // Written while the output is read, so neither side waits on the other.
                let writer = tokio::spawn(async move {
                    let _ = input.write_all(&bytes).await;
                    let _ = input.shutdown().await;
                });
                drop(writer);
            }
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|error| failed("reading a command's output", error))?;
                let (stream, bytes) = match chunk {
                    bollard::container::LogOutput::StdErr { message } => (Stream::Stderr, message),
                    bollard::container::LogOutput::StdOut { message }
                    | bollard::container::LogOutput::Console { message } => {
                        (Stream::Stdout, message)
                    }
                    bollard::container::LogOutput::StdIn { .. } => continue,
                };
                let _ = output.send(OutputChunk {
                    stream,
                    bytes: bytes.to_vec(),
                });
            }
        }
        let inspected = self
            .docker
            .inspect_exec(&exec.id)
            .await
            .map_err(|error| failed("reading a command's exit code", error))?;
        Ok(inspected.exit_code.unwrap_or(-1))
    }
}
