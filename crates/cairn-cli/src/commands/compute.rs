//! `cairn group` and `cairn instance`. Committed groups live in a Cairn project of their own,
//! `$CAIRN_HOME/groups/<stack>/` (stack `--stack`, default `default`), whose program is the list
//! of committed specs as `cairn:compute:Group` resources: committing one is an update of that
//! stack, so group specs and their status are in the backend (file:// or postgres://) with
//! locking, journaling and history like any stack. `instance` commands talk to a driver directly.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use cairn_compute::group::{self, GroupSpec};
use cairn_compute::provider::driver_of;
use cairn_compute::{DestroyReason, InstanceSpec};

use crate::cli::{DeployArgs, GroupCommand, InstanceCommand};
use crate::commands::{deploy, render};
use crate::output;
use crate::workspace::Workspace;

const GROUPS_PROJECT: &str = "cairn-groups";

/// The workspace of the groups project, created on first use.
fn groups_workspace(workspace: &Workspace) -> anyhow::Result<(Workspace, String)> {
    let stack = workspace
        .global
        .stack
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    let dir = workspace.home.join("groups").join(&stack);
    fs_err::create_dir_all(&dir)?;
    let mut global = workspace.global.clone();
    global.cwd = Some(dir.clone());
    global.stack = Some(stack.clone());
    let groups = Workspace::new(global)?;
    Ok((groups, stack))
}

fn program_path(groups: &Workspace) -> PathBuf {
    groups.project_dir.join("Cairn.yaml")
}

/// The committed specs, by group id (each as the JSON of its resource properties).
fn committed(groups: &Workspace) -> anyhow::Result<BTreeMap<String, serde_json::Value>> {
    let Ok(text) = fs_err::read_to_string(program_path(groups)) else {
        return Ok(BTreeMap::new());
    };
    let program = crate::stack_config::yaml_to_json(&text).map_err(anyhow::Error::msg)?;
    Ok(program["resources"]
        .as_object()
        .map(|resources| {
            resources
                .values()
                .filter_map(|resource| {
                    let properties = resource["properties"].clone();
                    Some((properties["id"].as_str()?.to_owned(), properties))
                })
                .collect()
        })
        .unwrap_or_default())
}

/// The resource key of a group in the groups program.
fn resource_key(id: &str) -> String {
    let key: String = id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("g_{key}")
}

/// Writes the groups program: one `cairn:compute:Group` per spec (JSON is YAML).
fn write_program(
    groups: &Workspace,
    specs: &BTreeMap<String, serde_json::Value>,
) -> anyhow::Result<()> {
    let mut text = format!("name: {GROUPS_PROJECT}\nruntime: yaml\nresources:\n");
    for (id, spec) in specs {
        text.push_str(&format!(
            "  {}:\n    type: cairn:compute:Group\n    properties: {spec}\n",
            resource_key(id)
        ));
    }
    if specs.is_empty() {
        text = format!("name: {GROUPS_PROJECT}\nruntime: yaml\nresources: {{}}\n");
    }
    fs_err::write(program_path(groups), text)?;
    Ok(())
}

async fn ensure_stack(groups: &Workspace, stack: &str) -> anyhow::Result<()> {
    let stack_ref =
        cairn_state::StackRef::parse(stack, GROUPS_PROJECT).map_err(crate::bad_input)?;
    let backend = groups.backend()?;
    if !backend.stack_exists(&stack_ref).await? {
        backend.create_stack(&stack_ref).await?;
    }
    Ok(())
}

fn deploy_args(yes: bool) -> DeployArgs {
    DeployArgs {
        yes,
        skip_preview: false,
        diff: false,
        show_sames: false,
        message: None,
        target: Vec::new(),
        parallel: 16,
        refresh: false,
    }
}

pub async fn group(workspace: &Workspace, command: GroupCommand) -> anyhow::Result<()> {
    let (groups, stack) = groups_workspace(workspace)?;
    match command {
        GroupCommand::Commit { file, pretend, yes } => {
            let text = cairn_provider::files::read_input_file(
                &file,
                cairn_provider::files::MAX_READ_BYTES,
            )
            .map_err(|error| crate::bad_input(error.to_string()))?;
            let spec = crate::stack_config::yaml_to_json(&text)
                .map_err(|error| crate::bad_input(format!("{}: {error}", file.display())))?;
            let parsed = group_spec(&spec).map_err(|error| {
                crate::bad_input(format!("{}: not a group spec: {error:#}", file.display()))
            })?;
            parsed
                .check()
                .map_err(|error| crate::bad_input(format!("{}: {error}", file.display())))?;
            if spec["driver"]["name"].as_str().is_none() {
                return Err(crate::bad_input(format!(
                    "{}: the spec needs `driver: {{name: docker|fake, settings: {{...}}}}`",
                    file.display()
                )));
            }
            let mut specs = committed(&groups)?;
            let previous = specs.clone();
            specs.insert(parsed.id.clone(), spec);
            write_program(&groups, &specs)?;
            ensure_stack(&groups, &stack).await?;
            let result = if pretend {
                deploy::preview(&groups, deploy_args(true)).await
            } else {
                deploy::up(&groups, deploy_args(yes)).await
            };
            // A pretend commit, or a failed one, leaves the committed specs as they were.
            if pretend || result.is_err() {
                write_program(&groups, &previous)?;
            }
            result
        }
        GroupCommand::Destroy { id, yes } => {
            let previous = committed(&groups)?;
            let mut specs = previous.clone();
            if specs.remove(&id).is_none() {
                return Err(crate::bad_input(format!("no group `{id}` is committed")));
            }
            write_program(&groups, &specs)?;
            let result = deploy::up(&groups, deploy_args(yes)).await;
            if result.is_err() {
                write_program(&groups, &previous)?;
            }
            result
        }
        GroupCommand::Free { id, yes } => {
            let mut specs = committed(&groups)?;
            if specs.remove(&id).is_none() {
                return Err(crate::bad_input(format!("no group `{id}` is committed")));
            }
            // Out of the state first (members untouched), then out of the committed specs.
            let urn = format!(
                "urn:pulumi:{stack}::{GROUPS_PROJECT}::cairn:compute:Group::{}",
                resource_key(&id)
            );
            super::state::run(
                &groups,
                crate::cli::StateCommand::Delete {
                    urn,
                    force: true,
                    yes,
                },
            )
            .await?;
            write_program(&groups, &specs)?;
            output::line(&format!(
                "Group `{id}` is no longer managed; its instances keep running"
            ));
            Ok(())
        }
        GroupCommand::Ls => {
            let specs = committed(&groups)?;
            if workspace.global.json {
                output::json(&serde_json::to_value(&specs)?);
            } else {
                for id in specs.keys() {
                    output::line(id);
                }
            }
            Ok(())
        }
        GroupCommand::Describe { id } | GroupCommand::Inspect { id } => {
            let specs = committed(&groups)?;
            let spec = specs
                .get(&id)
                .ok_or_else(|| crate::bad_input(format!("no group `{id}` is committed")))?;
            describe(workspace, spec).await
        }
        GroupCommand::Watch { id, interval } => {
            let specs = committed(&groups)?;
            let spec = specs
                .get(&id)
                .ok_or_else(|| crate::bad_input(format!("no group `{id}` is committed")))?;
            watch(spec, interval).await
        }
    }
}

fn group_spec(spec: &serde_json::Value) -> anyhow::Result<GroupSpec> {
    let mut without_driver = spec.clone();
    if let Some(object) = without_driver.as_object_mut() {
        object.remove("driver");
    }
    serde_json::from_value(without_driver).context("reading the group spec")
}

async fn describe(workspace: &Workspace, spec: &serde_json::Value) -> anyhow::Result<()> {
    let driver = driver_of(&spec["driver"]).await?;
    let parsed = group_spec(spec)?;
    let members = driver.describe(&group::group_tags(&parsed), true).await?;
    let fingerprint = parsed.fingerprint();
    if workspace.global.json {
        output::json(&serde_json::json!({
            "spec": spec,
            "fingerprint": fingerprint,
            "instances": members,
        }));
        return Ok(());
    }
    let mut rows = vec![[
        "ID".to_owned(),
        "LOGICAL ID".to_owned(),
        "RUNNING".to_owned(),
        "UP TO DATE".to_owned(),
    ]];
    for member in members {
        let current = member.tags.get(group::CONFIG_HASH_TAG) == Some(&fingerprint);
        rows.push([
            member.id,
            member.logical_id.unwrap_or_default(),
            member.running.to_string(),
            current.to_string(),
        ]);
    }
    for row in render::table(&rows) {
        output::line(&row);
    }
    Ok(())
}

/// Converges every `interval` until interrupted: instances that die or are removed outside
/// Cairn are replaced.
async fn watch(spec: &serde_json::Value, interval: u64) -> anyhow::Result<()> {
    let driver = driver_of(&spec["driver"]).await?;
    let parsed = group_spec(spec)?;
    let cancel = tokio_util::sync::CancellationToken::new();
    let (reports, mut received) = tokio::sync::mpsc::unbounded_channel();
    let watcher = tokio::spawn({
        let cancel = cancel.clone();
        async move {
            group::watch(
                driver,
                &parsed,
                Duration::from_secs(interval.max(1)),
                cancel,
                reports,
            )
            .await;
        }
    });
    loop {
        tokio::select! {
            report = received.recv() => match report {
                Some(Ok(report)) if report.created.len() + report.destroyed.len() + report.replaced.len() > 0 => {
                    output::line(&format!(
                        "{} created, {} destroyed, {} replaced",
                        report.created.len(), report.destroyed.len(), report.replaced.len()
                    ));
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => output::warning(&error.to_string()),
                None => break,
            },
            _ = tokio::signal::ctrl_c() => {
                cancel.cancel();
                break;
            }
        }
    }
    let _ = watcher.await;
    Ok(())
}

fn parse_tags(tags: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    tags.iter()
        .map(|tag| {
            tag.split_once('=')
                .map(|(key, value)| (key.to_owned(), value.to_owned()))
                .ok_or_else(|| crate::bad_input(format!("`{tag}` is not a tag: use key=value")))
        })
        .collect()
}

pub async fn instance(workspace: &Workspace, command: InstanceCommand) -> anyhow::Result<()> {
    match command {
        InstanceCommand::Drivers => {
            for (name, help) in cairn_compute::DRIVERS {
                output::line(&format!("{name:<8} {help}"));
            }
            Ok(())
        }
        InstanceCommand::Ls { driver, tag } => {
            let driver = driver_of(&driver_json(workspace, &driver)).await?;
            let instances = driver.describe(&parse_tags(&tag)?, false).await?;
            if workspace.global.json {
                output::json(&serde_json::to_value(&instances)?);
                return Ok(());
            }
            let mut rows = vec![["ID".to_owned(), "RUNNING".to_owned(), "TAGS".to_owned()]];
            for instance in instances {
                let tags: Vec<String> = instance
                    .tags
                    .iter()
                    .map(|(key, value)| format!("{key}={value}"))
                    .collect();
                rows.push([instance.id, instance.running.to_string(), tags.join(",")]);
            }
            for row in render::table(&rows) {
                output::line(&row);
            }
            Ok(())
        }
        InstanceCommand::Provision { driver, file } => {
            let text = cairn_provider::files::read_input_file(
                &file,
                cairn_provider::files::MAX_READ_BYTES,
            )
            .map_err(|error| crate::bad_input(error.to_string()))?;
            let spec: InstanceSpec = serde_json::from_value(
                crate::stack_config::yaml_to_json(&text).map_err(anyhow::Error::msg)?,
            )
            .map_err(|error| {
                crate::bad_input(format!("{}: not an instance spec: {error}", file.display()))
            })?;
            let driver = driver_of(&driver_json(workspace, &driver)).await?;
            let id = driver.provision(spec).await?;
            output::line(&id);
            Ok(())
        }
        InstanceCommand::Label { driver, id, tag } => {
            let driver = driver_of(&driver_json(workspace, &driver)).await?;
            driver.label(&id, &parse_tags(&tag)?).await?;
            Ok(())
        }
        InstanceCommand::Destroy { driver, id } => {
            let driver = driver_of(&driver_json(workspace, &driver)).await?;
            driver.destroy(&id, DestroyReason::Terminate).await?;
            Ok(())
        }
    }
}

/// `docker`, `docker:tcp://host:2375`, `fake:/path/to/file.json`. Docker tags added by
/// `instance label` are kept under `$CAIRN_HOME/compute/`.
fn driver_json(workspace: &Workspace, driver: &str) -> serde_json::Value {
    let tags_file = workspace.home.join("compute").join("docker-tags.json");
    match driver.split_once(':') {
        Some(("docker", host)) => serde_json::json!({
            "name": "docker",
            "settings": { "host": host, "tagsFile": tags_file },
        }),
        None if driver == "docker" => serde_json::json!({
            "name": "docker",
            "settings": { "tagsFile": tags_file },
        }),
        Some(("fake", path)) => serde_json::json!({ "name": "fake", "settings": { "path": path } }),
        _ => serde_json::json!({ "name": driver, "settings": {} }),
    }
}
