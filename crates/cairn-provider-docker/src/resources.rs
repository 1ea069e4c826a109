//! What each resource type does in the engine: create, read (None when gone), delete.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkCreateRequest, NetworkingConfig,
    PortBinding, RestartPolicy, RestartPolicyNameEnum, VolumeCreateRequest,
};
use bollard::query_parameters::{
    BuildImageOptions, CreateContainerOptions, RemoveContainerOptions, RemoveImageOptions,
    StartContainerOptions,
};
use cairn_provider::{CallContext, ProviderError, ProviderResult};
use futures_util::StreamExt;
use serde_json::{Value as Json, json};
use sha2::Digest;

use crate::{CONTAINER, IMAGE, NETWORK, VOLUME};

fn failed(action: &str, error: bollard::errors::Error) -> ProviderError {
    ProviderError::Failed(format!("docker: {action}: {error}"))
}

fn is_gone(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

fn text(inputs: &Json, key: &str) -> Option<String> {
    inputs[key].as_str().map(str::to_owned)
}

fn strings(inputs: &Json, key: &str) -> Option<Vec<String>> {
    inputs[key].as_array().map(|items| {
        items
            .iter()
            .map(|item| {
                item.as_str()
                    .map_or_else(|| item.to_string(), str::to_owned)
            })
            .collect()
    })
}

/// Pulumi's `labels: [{label, value}]`.
fn labels(inputs: &Json) -> Option<HashMap<String, String>> {
    inputs["labels"].as_array().map(|labels| {
        labels
            .iter()
            .filter_map(|label| {
                Some((
                    label["label"].as_str()?.to_owned(),
                    label["value"].as_str()?.to_owned(),
                ))
            })
            .collect()
    })
}

fn string_map(inputs: &Json, key: &str) -> Option<HashMap<String, String>> {
    inputs[key].as_object().map(|map| {
        map.iter()
            .map(|(key, value)| {
                (
                    key.clone(),
                    value
                        .as_str()
                        .map_or_else(|| value.to_string(), str::to_owned),
                )
            })
            .collect()
    })
}

/// A name for a resource that was not given one: its logical name and a random suffix, as
/// Pulumi's auto-naming does.
fn auto_name(ctx: &CallContext, inputs: &Json) -> String {
    text(inputs, "name").unwrap_or_else(|| {
        let suffix: String = uuid_like();
        format!("{}-{suffix}", ctx.urn.name())
    })
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|duration| duration.as_nanos())
        .unwrap_or(0);
    hex::encode(sha2::Sha256::digest(format!(
        "{nanos}-{}",
        std::process::id()
    )))[..7]
        .to_owned()
}

pub async fn create(
    docker: &Docker,
    ctx: &CallContext,
    type_token: &str,
    inputs: &Json,
) -> ProviderResult<(String, Json)> {
    match type_token {
        NETWORK => {
            let name = auto_name(ctx, inputs);
            let created = docker
                .create_network(NetworkCreateRequest {
                    name: name.clone(),
                    driver: text(inputs, "driver"),
                    internal: inputs["internal"].as_bool(),
                    attachable: inputs["attachable"].as_bool(),
                    labels: labels(inputs),
                    options: string_map(inputs, "options"),
                    ..Default::default()
                })
                .await
                .map_err(|error| failed("creating a network", error))?;
            let outputs = read(docker, NETWORK, &created.id, inputs)
                .await?
                .unwrap_or(json!({ "name": name }));
            Ok((created.id, outputs))
        }
        VOLUME => {
            let name = auto_name(ctx, inputs);
            let created = docker
                .create_volume(VolumeCreateRequest {
                    name: Some(name),
                    driver: text(inputs, "driver"),
                    driver_opts: string_map(inputs, "driverOpts"),
                    labels: labels(inputs),
                    ..Default::default()
                })
                .await
                .map_err(|error| failed("creating a volume", error))?;
            Ok((
                created.name.clone(),
                json!({ "name": created.name, "mountpoint": created.mountpoint }),
            ))
        }
        IMAGE => build_image(docker, ctx, inputs).await,
        CONTAINER => create_container(docker, ctx, inputs).await,
        other => Err(ProviderError::UnknownType(other.to_owned())),
    }
}

async fn create_container(
    docker: &Docker,
    ctx: &CallContext,
    inputs: &Json,
) -> ProviderResult<(String, Json)> {
    let name = auto_name(ctx, inputs);
    let networks: Vec<(String, Option<Vec<String>>)> = inputs["networksAdvanced"]
        .as_array()
        .map(|networks| {
            networks
                .iter()
                .filter_map(|network| {
                    Some((
                        network["name"].as_str()?.to_owned(),
                        strings(network, "aliases"),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let binds: Option<Vec<String>> = inputs["volumes"].as_array().map(|volumes| {
        volumes
            .iter()
            .filter_map(|volume| {
                let source = volume["volumeName"]
                    .as_str()
                    .or(volume["hostPath"].as_str())?;
                let target = volume["containerPath"].as_str()?;
                let mode = if volume["readOnly"].as_bool() == Some(true) {
                    ":ro"
                } else {
                    ""
                };
                Some(format!("{source}:{target}{mode}"))
            })
            .collect()
    });
    let ports: Vec<(String, Option<String>)> = inputs["ports"]
        .as_array()
        .map(|ports| {
            ports
                .iter()
                .filter_map(|port| {
                    let internal = port["internal"].as_i64()?;
                    let protocol = port["protocol"].as_str().unwrap_or("tcp");
                    Some((
                        format!("{internal}/{protocol}"),
                        port["external"]
                            .as_i64()
                            .map(|external| external.to_string()),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let restart = text(inputs, "restart").map(|name| RestartPolicy {
        name: Some(match name.as_str() {
            "always" => RestartPolicyNameEnum::ALWAYS,
            "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
            "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
            _ => RestartPolicyNameEnum::NO,
        }),
        maximum_retry_count: None,
    });
    let host_config = HostConfig {
        binds,
        memory: inputs["memory"].as_i64().map(|mb| mb * 1024 * 1024),
        restart_policy: restart,
        network_mode: text(inputs, "networkMode")
            .or_else(|| networks.first().map(|(name, _)| name.clone())),
        port_bindings: (!ports.is_empty()).then(|| {
            ports
                .iter()
                .map(|(port, external)| {
                    (
                        port.clone(),
                        Some(vec![PortBinding {
                            host_ip: None,
                            host_port: external.clone(),
                        }]),
                    )
                })
                .collect()
        }),
        ..Default::default()
    };
    let networking_config = (!networks.is_empty()).then(|| NetworkingConfig {
        endpoints_config: Some(
            networks
                .iter()
                .map(|(network, aliases)| {
                    (
                        network.clone(),
                        EndpointSettings {
                            aliases: aliases.clone(),
                            ..Default::default()
                        },
                    )
                })
                .collect(),
        ),
    });
    let body = ContainerCreateBody {
        image: text(inputs, "image"),
        cmd: strings(inputs, "command"),
        entrypoint: strings(inputs, "entrypoints"),
        env: strings(inputs, "envs"),
        labels: labels(inputs),
        hostname: text(inputs, "hostname"),
        working_dir: text(inputs, "workingDir"),
        user: text(inputs, "user"),
        exposed_ports: (!ports.is_empty())
            .then(|| ports.iter().map(|(port, _)| port.clone()).collect()),
        host_config: Some(host_config),
        networking_config,
        ..Default::default()
    };
    let options = CreateContainerOptions {
        name: Some(name.clone()),
        ..Default::default()
    };
    let created = docker
        .create_container(Some(options), body)
        .await
        .map_err(|error| failed("creating a container", error))?;
    if inputs["start"].as_bool() != Some(false) {
        if let Err(error) = docker
            .start_container(&created.id, None::<StartContainerOptions>)
            .await
        {
            let _ = delete(docker, CONTAINER, &created.id).await;
            return Err(failed("starting the container", error));
        }
        // Pulumi's `mustRun` (default true): a container that stops at once is a failure, not
        // a created resource; `mustRun: false` accepts one that exits (a one-off task).
        if inputs["mustRun"].as_bool() != Some(false)
            && let Some(exit_code) = exited_at_once(docker, &created.id).await
        {
            let _ = delete(docker, CONTAINER, &created.id).await;
            return Err(ProviderError::Failed(format!(
                "docker: the container `{name}` exited at once with code {exit_code}\nhelp: set `mustRun: false` for a container that is meant to stop"
            )));
        }
    }
    let outputs = read(docker, CONTAINER, &created.id, inputs)
        .await?
        .unwrap_or(json!({ "name": name }));
    Ok((created.id, outputs))
}

/// How long a new container must stay up to count as running (`mustRun`).
const MUST_RUN_SETTLE: std::time::Duration = std::time::Duration::from_millis(500);

/// The exit code of a container that stopped within `MUST_RUN_SETTLE` of starting.
async fn exited_at_once(docker: &Docker, id: &str) -> Option<i64> {
    tokio::time::sleep(MUST_RUN_SETTLE).await;
    let state = docker.inspect_container(id, None).await.ok()?.state?;
    if state.running == Some(true) {
        return None;
    }
    Some(state.exit_code.unwrap_or(-1))
}

/// The build context directory and Dockerfile of an Image's inputs.
fn build_context(ctx: &CallContext, inputs: &Json) -> Option<(PathBuf, String)> {
    let build = &inputs["build"];
    let context = match build {
        Json::String(context) => context.clone(),
        Json::Object(_) => build["context"].as_str().unwrap_or(".").to_owned(),
        _ => return None,
    };
    let dockerfile = build["dockerfile"]
        .as_str()
        .unwrap_or("Dockerfile")
        .to_owned();
    Some((ctx.cwd.join(context), dockerfile))
}

/// The files of a build context, as (path inside the context, full path), sorted.
fn context_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = std::fs::read_dir(&current)
            .map_err(|error| format!("reading `{}`: {error}", current.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let metadata = std::fs::symlink_metadata(&path).map_err(|error| error.to_string())?;
            if metadata.is_dir() {
                pending.push(path);
            } else if let Some(kind) = cairn_provider::files::special_kind(&metadata.file_type()) {
                // Reading a FIFO blocks for ever and a device may never end; `docker build`
                // refuses them too.
                return Err(format!(
                    "the build context holds `{}`, which is {kind}: only regular files, \
                     directories and symlinks can be sent to Docker; move it out of the context",
                    path.display()
                ));
            } else {
                let relative = path
                    .strip_prefix(dir)
                    .map_err(|error| error.to_string())?
                    .to_string_lossy()
                    .into_owned();
                files.push((relative, path));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// A digest of the build context's files (names, contents, symlink targets), so editing the
/// Dockerfile or anything it copies rebuilds the image.
pub fn context_digest(ctx: &CallContext, inputs: &Json) -> Result<Option<String>, String> {
    let Some((dir, _)) = build_context(ctx, inputs) else {
        return Ok(None);
    };
    if !dir.is_dir() {
        return Err(format!(
            "the build context `{}` is not a directory",
            dir.display()
        ));
    }
    let mut hasher = sha2::Sha256::new();
    for (relative, path) in context_files(&dir)? {
        hasher.update(relative.as_bytes());
        hasher.update([0]);
        match std::fs::read_link(&path) {
            Ok(target) => hasher.update(target.to_string_lossy().as_bytes()),
            Err(_) => hasher.update(
                std::fs::read(&path)
                    .map_err(|error| format!("reading `{}`: {error}", path.display()))?,
            ),
        }
        hasher.update([0]);
    }
    Ok(Some(hex::encode(hasher.finalize())))
}

async fn build_image(
    docker: &Docker,
    ctx: &CallContext,
    inputs: &Json,
) -> ProviderResult<(String, Json)> {
    let image_name = text(inputs, "imageName")
        .ok_or_else(|| ProviderError::Failed("`imageName` is required".to_owned()))?;
    let (dir, dockerfile) = build_context(ctx, inputs)
        .ok_or_else(|| ProviderError::Failed("an image needs `build: {context: <dir>}` (images are built locally; nothing is pulled)".to_owned()))?;
    let mut archive = tar::Builder::new(Vec::new());
    archive.follow_symlinks(false);
    for (relative, path) in context_files(&dir).map_err(ProviderError::Failed)? {
        archive
            .append_path_with_name(&path, &relative)
            .map_err(|error| {
                ProviderError::Failed(format!("packing the build context: {error}"))
            })?;
    }
    let context = archive
        .into_inner()
        .map_err(|error| ProviderError::Failed(format!("packing the build context: {error}")))?;
    let options = BuildImageOptions {
        t: Some(image_name.clone()),
        dockerfile,
        rm: true,
        buildargs: string_map(&inputs["build"], "args"),
        target: text(&inputs["build"], "target").unwrap_or_default(),
        ..Default::default()
    };
    let mut build = docker.build_image(
        options,
        None,
        Some(bollard::body_full(bytes::Bytes::from(context))),
    );
    while let Some(step) = build.next().await {
        let step = step.map_err(|error| failed("building the image", error))?;
        if let Some(detail) = step.error_detail {
            return Err(ProviderError::Failed(format!(
                "docker: building `{image_name}`: {}",
                detail.message.unwrap_or_default()
            )));
        }
    }
    let outputs = read(docker, IMAGE, &image_name, inputs)
        .await?
        .ok_or_else(|| {
            ProviderError::Failed(format!("docker: the built image `{image_name}` is missing"))
        })?;
    Ok((image_name, outputs))
}

pub async fn read(
    docker: &Docker,
    type_token: &str,
    id: &str,
    inputs: &Json,
) -> ProviderResult<Option<Json>> {
    match type_token {
        CONTAINER => match docker.inspect_container(id, None).await {
            Ok(container) => {
                let state = container.state.unwrap_or_default();
                let ip = container
                    .network_settings
                    .and_then(|settings| settings.networks)
                    .and_then(|networks| {
                        networks
                            .into_values()
                            .find_map(|network| network.ip_address)
                    })
                    .unwrap_or_default();
                Ok(Some(json!({
                    "name": container.name.unwrap_or_default().trim_start_matches('/'),
                    "ipAddress": ip,
                    "exitCode": if state.running == Some(true) { Json::Null } else { json!(state.exit_code) },
                })))
            }
            Err(error) if is_gone(&error) => Ok(None),
            Err(error) => Err(failed("inspecting a container", error)),
        },
        NETWORK => match docker.inspect_network(id, None).await {
            Ok(network) => Ok(Some(json!({
                "name": network.name,
                "driver": network.driver,
                "scope": network.scope,
            }))),
            Err(error) if is_gone(&error) => Ok(None),
            Err(error) => Err(failed("inspecting a network", error)),
        },
        VOLUME => match docker.inspect_volume(id).await {
            Ok(volume) => Ok(Some(
                json!({ "name": volume.name, "mountpoint": volume.mountpoint }),
            )),
            Err(error) if is_gone(&error) => Ok(None),
            Err(error) => Err(failed("inspecting a volume", error)),
        },
        IMAGE => match docker.inspect_image(id).await {
            Ok(image) => {
                let name = text(inputs, "imageName").unwrap_or_else(|| id.to_owned());
                Ok(Some(json!({
                    "imageName": name,
                    // Local images have no registry digest; the tag is what containers use.
                    "repoDigest": name,
                    "baseImageName": name,
                    "imageId": image.id,
                })))
            }
            Err(error) if is_gone(&error) => Ok(None),
            Err(error) => Err(failed("inspecting an image", error)),
        },
        other => Err(ProviderError::UnknownType(other.to_owned())),
    }
}

pub async fn delete(docker: &Docker, type_token: &str, id: &str) -> ProviderResult<()> {
    let result = match type_token {
        CONTAINER => {
            let options = RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            };
            docker.remove_container(id, Some(options)).await
        }
        NETWORK => docker.remove_network(id).await,
        VOLUME => {
            docker
                .remove_volume(id, None::<bollard::query_parameters::RemoveVolumeOptions>)
                .await
        }
        IMAGE => docker
            .remove_image(id, None::<RemoveImageOptions>, None)
            .await
            .map(|_| ()),
        other => return Err(ProviderError::UnknownType(other.to_owned())),
    };
    match result {
        Ok(()) => Ok(()),
        Err(error) if is_gone(&error) => Ok(()),
        Err(error) => Err(failed("removing", error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_in_the_build_context_is_refused_by_name() {
        let dir = std::env::temp_dir().join(format!("cairn-context-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("Dockerfile"), "FROM scratch\n").unwrap();
        let fifo = dir.join("sub/pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        let result = context_files(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(made.unwrap().success());
        let error = result.unwrap_err();
        assert!(
            error.contains(&format!("`{}`, which is a FIFO", fifo.display())),
            "{error}"
        );
    }

    #[test]
    fn regular_files_and_symlinks_make_the_context() {
        let dir = std::env::temp_dir().join(format!("cairn-context-ok-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("Dockerfile"), "FROM scratch\n").unwrap();
        std::os::unix::fs::symlink("../Dockerfile", dir.join("sub/link")).unwrap();
        let result = context_files(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        let names: Vec<String> = result.unwrap().into_iter().map(|(name, _)| name).collect();
        assert_eq!(names, ["Dockerfile", "sub/link"]);
    }
}
