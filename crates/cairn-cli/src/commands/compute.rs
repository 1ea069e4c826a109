//! `cairn group` and `cairn instance`. Committed groups are the `cairn:compute:Group` resources
//! of a stack of their own (project `cairn-groups`, stack `--stack`, default `default`):
//! committing a spec is an update of that stack with an in-memory program of every committed
//! spec, so group specs and their status are in the backend (file:// or postgres://) with
//! locking, journaling and history like any stack. `instance` commands talk to a driver directly.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cairn_compute::group::{self, GroupSpec};
use cairn_compute::provider::driver_of;
use cairn_compute::{DestroyReason, InstanceSpec};

use cairn_core::Value;

use crate::cli::{GroupCommand, InstanceCommand};
use crate::commands::{
    self, deploy, render,
    reporter::{Display, TerminalReporter},
};
use crate::output;
use crate::workspace::{GROUPS_DIR, GROUPS_PROJECT, Workspace};

const GROUP_TYPE: &str = "cairn:compute:Group";

/// The workspace of the groups project, created on first use. Its directory holds only the
/// project file (the project's name, no program) and the stack's config file (its secrets'
/// salt), so `cairn cancel`, `refresh --clear-pending` and `stack history` reach the groups
/// stack with `--cwd`, as the hints say.
fn groups_workspace(workspace: &Workspace) -> anyhow::Result<(Workspace, String)> {
    let stack = workspace
        .global
        .stack
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    cairn_state::stack_ref::validate_stack_name(&stack).map_err(crate::bad_input)?;
    // The stack's files (its `Cairn.<stack>.yaml`) live here; its project and program are made
    // in memory (`Workspace::project`, `program`).
    let dir = workspace.home.join(GROUPS_DIR).join(&stack);
    fs_err::create_dir_all(&dir)?;
    // Earlier versions kept a program here; the state has the specs, so it goes.
    let old_program = dir.join("Cairn.yaml");
    if old_program.is_file() {
        fs_err::remove_file(&old_program)?;
    }
    let mut global = workspace.global.clone();
    global.cwd = Some(dir);
    global.stack = Some(stack.clone());
    let groups = Workspace::new(global)?;
    Ok((groups, stack))
}

/// The committed specs, by group id: the inputs of the stack's `cairn:compute:Group`
/// resources.
async fn committed(groups: &Workspace) -> anyhow::Result<BTreeMap<String, Value>> {
    let stack = groups.stack_ref(GROUPS_PROJECT)?;
    let backend = groups.backend()?;
    if !backend.stack_exists(&stack).await? {
        return Ok(BTreeMap::new());
    }
    let snapshot = commands::load_snapshot(&commands::open_stack(groups).await?).await?;
    Ok(snapshot
        .resources
        .into_iter()
        .filter(|resource| resource.type_ == GROUP_TYPE && !resource.delete)
        .filter_map(|resource| {
            let id = resource.inputs.get("id")?.as_str()?.to_owned();
            Some((id, Value::Object(resource.inputs)))
        })
        .collect())
}

/// Group ids of committed groups: letters, digits and `-`, starting with a letter or digit,
/// so that no two ids share a resource key (`a-b` and `a b` would both be `g_a_b`) and an id
/// is never a path (`..`).
fn check_group_id(id: &str) -> Result<(), String> {
    let is_valid = id.len() <= 63
        && id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if is_valid {
        Ok(())
    } else {
        Err(format!(
            "`{id}` is not a group id: use at most 63 letters, digits and `-`, starting with a letter or digit"
        ))
    }
}

/// The resource key of a group in the groups program.
fn resource_key(id: &str) -> String {
    let key: String = id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("g_{key}")
}

/// The groups program, in memory: one `cairn:compute:Group` per spec.
fn program(groups: &Workspace, specs: &BTreeMap<String, Value>) -> cairn_program::Program {
    let resources = specs
        .iter()
        .map(|(id, spec)| cairn_program::ResourceDecl {
            name: resource_key(id),
            key: resource_key(id),
            type_token: GROUP_TYPE.to_owned(),
            properties: Some(literal(spec)),
            get: None,
            options: Default::default(),
            deps: Default::default(),
            span: Default::default(),
        })
        .collect();
    cairn_program::Program {
        name: GROUPS_PROJECT.to_owned(),
        description: None,
        runtime: "yaml".to_owned(),
        config: Vec::new(),
        variables: Vec::new(),
        resources,
        outputs: Vec::new(),
        source_dir: groups.project_dir.clone(),
        sources: Default::default(),
    }
}

/// A value as a program expression that evaluates to it (secrets stay secrets).
fn literal(value: &Value) -> cairn_program::Expr {
    use cairn_program::{Builtin, Expr};
    let span = cairn_program::Span::default();
    match value {
        Value::Null | Value::Unknown => Expr::Null(span),
        Value::Bool(flag) => Expr::Bool(*flag, span),
        Value::Number(number) => Expr::Number(*number, span),
        Value::String(text) => Expr::String(text.clone(), span),
        Value::Array(items) => Expr::Array(items.iter().map(literal).collect(), span),
        Value::Object(map) => Expr::Object(
            map.iter()
                .map(|(key, value)| (key.clone(), literal(value)))
                .collect(),
            span,
        ),
        Value::Secret(inner) => Expr::Builtin(Builtin::Secret(Box::new(literal(inner))), span),
    }
}

/// Converges the groups stack to `specs`: an update of the stack with the in-memory program
/// (a preview only when `pretend`).
async fn apply(
    groups: &Workspace,
    stack: &str,
    specs: &BTreeMap<String, Value>,
    pretend: bool,
    yes: bool,
) -> anyhow::Result<()> {
    let stack_ref =
        cairn_state::StackRef::parse(stack, GROUPS_PROJECT).map_err(crate::bad_input)?;
    let backend = groups.backend()?;
    if !backend.stack_exists(&stack_ref).await? {
        backend.create_stack(&stack_ref).await?;
    }
    let request = cairn_ops::RunRequest {
        preview_only: pretend,
        ..cairn_ops::RunRequest::new(cairn_ops::StackOperation::Update)
    };
    let reporter = TerminalReporter::new(Display {
        json: groups.global.json,
        show_secrets: groups.global.show_secrets,
        yes: yes || pretend,
        non_interactive: groups.global.non_interactive,
        ..Display::default()
    });
    let program = Arc::new(program(groups, specs));
    deploy::run_operation(groups, request, reporter, Some(program)).await?;
    Ok(())
}

/// The spec of a committed group, as the drivers and `--json` take it.
fn committed_json(specs: &BTreeMap<String, Value>, id: &str) -> anyhow::Result<serde_json::Value> {
    specs
        .get(id)
        .map(|spec| commands::value_to_json(spec, true))
        .ok_or_else(|| crate::bad_input(format!("no group `{id}` is committed")))
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
            let spec = cairn_ops::yaml_to_json(&text)
                .map_err(|error| crate::bad_input(format!("{}: {error}", file.display())))?;
            let (parsed, _) = cairn_compute::provider::parse_spec(spec.clone())
                .map_err(|error| crate::bad_input(format!("{}: {error}", file.display())))?;
            check_group_id(&parsed.id)
                .map_err(|error| crate::bad_input(format!("{}: {error}", file.display())))?;
            let mut specs = committed(&groups).await?;
            specs.insert(parsed.id.clone(), commands::json_to_value(&spec));
            apply(&groups, &stack, &specs, pretend, yes).await
        }
        GroupCommand::Destroy { id, yes } => {
            let mut specs = committed(&groups).await?;
            if specs.remove(&id).is_none() {
                return Err(crate::bad_input(format!("no group `{id}` is committed")));
            }
            apply(&groups, &stack, &specs, false, yes).await
        }
        GroupCommand::Free { id, yes } => {
            let specs = committed(&groups).await?;
            if !specs.contains_key(&id) {
                return Err(crate::bad_input(format!("no group `{id}` is committed")));
            }
            // Out of the state (members untouched): it is no longer committed either.
            let urn = format!(
                "urn:pulumi:{stack}::{GROUPS_PROJECT}::{GROUP_TYPE}::{}",
                resource_key(&id)
            );
            super::state::delete_resource(&groups, &urn, true, yes).await?;
            if workspace.global.json {
                output::json(&serde_json::json!({ "group": id, "urn": urn, "freed": true }));
            } else {
                output::line(&format!(
                    "Group `{id}` is no longer managed; its instances keep running"
                ));
            }
            Ok(())
        }
        GroupCommand::Ls => {
            let specs = committed(&groups).await?;
            if workspace.global.json {
                let specs: serde_json::Map<String, serde_json::Value> = specs
                    .iter()
                    .map(|(id, spec)| {
                        let shown = commands::value_to_json(spec, workspace.global.show_secrets);
                        (id.clone(), shown)
                    })
                    .collect();
                output::json(&serde_json::Value::Object(specs));
            } else {
                for id in specs.keys() {
                    output::line(id);
                }
            }
            Ok(())
        }
        GroupCommand::Describe { id } | GroupCommand::Inspect { id } => {
            let spec = committed_json(&committed(&groups).await?, &id)?;
            describe(workspace, &spec).await
        }
        GroupCommand::Watch { id, interval } => {
            let spec = committed_json(&committed(&groups).await?, &id)?;
            watch(&spec, interval).await
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
            let spec: InstanceSpec =
                serde_json::from_value(cairn_ops::yaml_to_json(&text).map_err(anyhow::Error::msg)?)
                    .map_err(|error| {
                        crate::bad_input(format!(
                            "{}: not an instance spec: {error}",
                            file.display()
                        ))
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
