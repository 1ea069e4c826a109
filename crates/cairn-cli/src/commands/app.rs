//! `cairn app create|ls|info|remove|unlock|env|units|releases|cname`, `cairn pool add|ls|rm` and `cairn node
//! add|ls|update|rm`: the user's side of the app store the backend keeps
//! (`cairn_app::AppStore`). Arguments are parsed here; `cairn_app::ops` checks them and makes
//! each change under the app's lock. Nothing here deploys or runs a unit yet.
//!
//! A secret environment value is sealed inside `cairn_app::ops` and never printed: listings
//! show `[secret]`, and the messages name variables, never values.

use std::collections::BTreeMap;

use cairn_app::ops::{self, EnvChange};
use cairn_app::{
    App, AppError, AppStore, EnvValue, Node, NodeStatus, NodeUpdate, Pool, Process, Release, Unit,
};

use crate::cli::{AppCnameCommand, AppCommand, AppEnvCommand, NodeCommand, PoolCommand};
use crate::commands::{self, render};
use crate::workspace::Workspace;
use crate::{bad_input, env, output};

pub async fn run(workspace: &Workspace, command: AppCommand) -> anyhow::Result<()> {
    let json = workspace.global.json;
    match command {
        AppCommand::Create {
            app,
            pool,
            processes,
            procfile,
        } => {
            let processes = match procfile {
                Some(path) => {
                    let path = workspace.project_dir.join(path);
                    // A Procfile is a few lines; 1 MiB bounds a wrong path's damage.
                    let text = cairn_provider::files::read_input_file(&path, 1 << 20)
                        .map_err(|error| bad_input(error.to_string()))?;
                    cairn_app::procfile::parse(&path.display().to_string(), &text)?
                }
                None => parse_processes(&processes)?,
            };
            let store = workspace.app_store()?;
            let app = ops::create_app(store.as_ref(), &app, pool.as_deref(), processes).await?;
            if json {
                output::json(&app_json(&app, &[]));
            } else {
                output::line(&format!(
                    "created app `{}` in pool `{}`",
                    app.name, app.pool
                ));
            }
            Ok(())
        }
        AppCommand::Ls => {
            let store = workspace.app_store()?;
            let apps = store.list_apps().await?;
            let mut listed = Vec::with_capacity(apps.len());
            for app in apps {
                // An app removed since the listing has no units; any other failure is reported.
                let units = match store.units(&app.name).await {
                    Err(AppError::AppNotFound(_)) => Vec::new(),
                    units => units?,
                };
                listed.push((app, units));
            }
            list_apps(json, &listed);
            Ok(())
        }
        AppCommand::Info { app } => {
            let store = workspace.app_store()?;
            let found = existing(store.as_ref(), &app).await?;
            let units = store.units(&app).await?;
            info(json, &found, &units);
            Ok(())
        }
        AppCommand::Remove { app, yes } => remove(workspace, &app, yes).await,
        AppCommand::Unlock { app } => {
            let store = workspace.app_store()?;
            match store.break_lock(&app).await? {
                Some(holder) => output::line(&format!("unlocked app `{app}` (held by {holder})")),
                None => output::line(&format!("app `{app}` was not locked")),
            }
            Ok(())
        }
        AppCommand::Env(command) => change_env(workspace, command).await,
        AppCommand::Units { app } => {
            let units = workspace.app_store()?.units(&app).await?;
            if json {
                output::json(&serde_json::Value::Array(
                    units.iter().map(unit_json).collect(),
                ));
            } else if units.is_empty() {
                output::progress(&format!("app `{app}` has no units"));
            } else {
                for row in render::table(&unit_rows(&units)) {
                    output::line(&row);
                }
            }
            Ok(())
        }
        AppCommand::Releases { app } => {
            let store = workspace.app_store()?;
            let releases = store.releases(&app).await?;
            list_releases(json, &releases);
            Ok(())
        }
        AppCommand::Cname(command) => change_cname(workspace, command).await,
    }
}

async fn change_cname(workspace: &Workspace, command: AppCnameCommand) -> anyhow::Result<()> {
    let (app, name, adding) = match command {
        AppCnameCommand::Add { app, name } => (app, name, true),
        AppCnameCommand::Rm { app, name } => (app, name, false),
    };
    let store = workspace.app_store()?;
    let name = cairn_app::names::normalize_cname(&name);
    if adding {
        // Checked before the lock is taken: bad input changes nothing.
        cairn_app::names::validate_cname(&name)?;
    }
    ops::with_lock(store.as_ref(), &app, &holder(), async |lock| {
        if adding {
            store.add_cname(lock, &name).await
        } else {
            store.remove_cname(lock, &name).await
        }
    })
    .await?;
    output::line(&if adding {
        format!("app `{app}` is served at `{name}` too")
    } else {
        format!("app `{app}` is no longer served at `{name}`")
    });
    Ok(())
}

/// Who holds an app's lock, as `AppError::Locked` names it: never the command line, which may
/// hold a secret value.
fn holder() -> String {
    format!(
        "{} on {} (pid {})",
        env::user_name(),
        env::host_name(),
        std::process::id()
    )
}

async fn existing(store: &dyn AppStore, app: &str) -> anyhow::Result<App> {
    Ok(store
        .app(app)
        .await?
        .ok_or_else(|| AppError::AppNotFound(app.to_owned()))?)
}

/// `NAME=VALUE` arguments, split at the first `=`.
fn key_values(values: &[String], flag: &str) -> anyhow::Result<Vec<(String, String)>> {
    values
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(key, value)| (key.to_owned(), value.to_owned()))
                .ok_or_else(|| {
                    // The argument may be a secret typed without its `=`: never quote it.
                    bad_input(format!("{flag} takes `KEY=VALUE`; an argument has no `=`"))
                })
        })
        .collect()
}

fn parse_processes(values: &[String]) -> anyhow::Result<Vec<Process>> {
    let processes: Vec<Process> = key_values(values, "--process")?
        .into_iter()
        .map(|(name, command)| Process { name, command })
        .collect();
    cairn_app::names::validate_processes(&processes)?;
    Ok(processes)
}

async fn remove(workspace: &Workspace, app: &str, yes: bool) -> anyhow::Result<()> {
    cairn_app::names::validate_app_name(app)?;
    if !yes && !commands::is_interactive() {
        return Err(bad_input(
            "refusing to remove an app without confirmation\nhelp: pass `--yes` when not running in a terminal",
        ));
    }
    let store = workspace.app_store()?;
    // Checked before asking: an app that does not exist is refused without a question.
    existing(store.as_ref(), app).await?;
    if !yes
        && !commands::confirm(&format!(
            "This will permanently remove the app '{app}' and its release history. Continue?"
        ))?
    {
        return Err(anyhow::anyhow!("confirmation declined"));
    }
    ops::remove_app(store.as_ref(), app, &holder()).await?;
    output::line(&format!("removed app `{app}`"));
    Ok(())
}

async fn change_env(workspace: &Workspace, command: AppEnvCommand) -> anyhow::Result<()> {
    let (app, change) = match command {
        AppEnvCommand::Set {
            app,
            values,
            secret,
        } => {
            let values = key_values(&values, "`app env set`")?;
            (app, EnvChange::Set { values, secret })
        }
        AppEnvCommand::Unset { app, names } => (app, EnvChange::Unset(names)),
    };
    let store = workspace.app_store()?;
    let passphrase = || crate::workspace::passphrase();
    let release = ops::change_env(store.as_ref(), &app, &holder(), change, &passphrase).await?;
    if workspace.global.json {
        output::json(&release_json(&release));
    } else {
        output::line(&format!(
            "app `{app}`: release {} ({})",
            release.version, release.reason
        ));
    }
    Ok(())
}

fn env_json(env: &BTreeMap<String, EnvValue>) -> serde_json::Value {
    serde_json::json!(ops::displayed_env(env))
}

fn processes_json(processes: &[Process]) -> serde_json::Value {
    processes
        .iter()
        .map(|process| serde_json::json!({"name": process.name, "command": process.command}))
        .collect()
}

fn unit_json(unit: &Unit) -> serde_json::Value {
    serde_json::json!({
        "id": unit.id,
        "name": unit.name,
        "process": unit.process,
        "status": unit.status.as_str(),
        "address": unit.address,
        "node": unit.node,
    })
}

/// An app as `ls --json` and `info --json` print it (PRODUCT.md names `name`, `pool`, `units`).
fn app_json(app: &App, units: &[Unit]) -> serde_json::Value {
    let mut json = serde_json::json!({
        "name": app.name,
        "pool": app.pool,
        "units": units.iter().map(unit_json).collect::<Vec<_>>(),
        "release": app.release,
        "image": app.image,
        "processes": processes_json(&app.processes),
        "env": env_json(&app.env),
        "createdAt": render::rfc3339_of_millis(app.created_ms),
    });
    if !app.cnames.is_empty()
        && let Some(object) = json.as_object_mut()
    {
        object.insert("cnames".to_owned(), serde_json::json!(app.cnames));
    }
    json
}

fn release_json(release: &Release) -> serde_json::Value {
    serde_json::json!({
        "version": release.version,
        "createdAt": render::rfc3339_of_millis(release.created_ms),
        "reason": release.reason,
        "image": release.image,
        "processes": processes_json(&release.processes),
        "env": env_json(&release.env),
    })
}

fn list_apps(json: bool, apps: &[(App, Vec<Unit>)]) {
    if json {
        let apps = apps
            .iter()
            .map(|(app, units)| app_json(app, units))
            .collect();
        output::json(&serde_json::Value::Array(apps));
        return;
    }
    if apps.is_empty() {
        output::progress("no apps");
        return;
    }
    let mut rows = vec![[
        "NAME".to_owned(),
        "POOL".to_owned(),
        "RELEASE".to_owned(),
        "PROCESSES".to_owned(),
        "UNITS".to_owned(),
    ]];
    for (app, units) in apps {
        let names: Vec<&str> = app.processes.iter().map(|p| p.name.as_str()).collect();
        rows.push([
            app.name.clone(),
            app.pool.clone(),
            app.release
                .map_or_else(|| "-".to_owned(), |version| version.to_string()),
            if names.is_empty() {
                "-".to_owned()
            } else {
                names.join(",")
            },
            units.len().to_string(),
        ]);
    }
    for row in render::table(&rows) {
        output::line(&row);
    }
}

fn info(json: bool, app: &App, units: &[Unit]) {
    if json {
        output::json(&app_json(app, units));
        return;
    }
    output::line(&format!("App:      {}", app.name));
    output::line(&format!("Pool:     {}", app.pool));
    let release = match app.release {
        Some(version) => format!(
            "{version} (image {})",
            app.image.as_deref().unwrap_or("none yet")
        ),
        None => "none yet".to_owned(),
    };
    output::line(&format!("Release:  {release}"));
    output::line(&format!(
        "Created:  {}",
        render::rfc3339_of_millis(app.created_ms)
    ));
    if !app.cnames.is_empty() {
        output::line(&format!("Cnames:   {}", app.cnames.join(", ")));
    }
    output::line("Processes:");
    if app.processes.is_empty() {
        output::line("  (none)");
    }
    for process in &app.processes {
        output::line(&format!("  {}: {}", process.name, process.command));
    }
    output::line("Environment:");
    if app.env.is_empty() {
        output::line("  (none)");
    }
    for (name, value) in ops::displayed_env(&app.env) {
        output::line(&format!("  {name}={value}"));
    }
    output::line(&format!("Units: {}", units.len()));
    if !units.is_empty() {
        for row in render::table(&unit_rows(units)) {
            output::line(&format!("  {row}"));
        }
    }
}

/// A table of units, headed, as `info` and `units` print it.
fn unit_rows(units: &[Unit]) -> Vec<[String; 5]> {
    let mut rows = vec![[
        "ID".to_owned(),
        "PROCESS".to_owned(),
        "STATUS".to_owned(),
        "ADDRESS".to_owned(),
        "NODE".to_owned(),
    ]];
    for unit in units {
        rows.push([
            unit.id.clone(),
            unit.process.clone(),
            unit.status.to_string(),
            unit.address.clone().unwrap_or_else(|| "-".to_owned()),
            unit.node.clone().unwrap_or_else(|| "-".to_owned()),
        ]);
    }
    rows
}

fn list_releases(json: bool, releases: &[Release]) {
    if json {
        let releases = releases.iter().map(release_json).collect();
        output::json(&serde_json::Value::Array(releases));
        return;
    }
    if releases.is_empty() {
        output::progress("no releases yet");
        return;
    }
    let mut rows = vec![[
        "VERSION".to_owned(),
        "CREATED".to_owned(),
        "IMAGE".to_owned(),
        "REASON".to_owned(),
    ]];
    for release in releases {
        rows.push([
            release.version.to_string(),
            render::rfc3339_of_millis(release.created_ms),
            release.image.clone().unwrap_or_else(|| "-".to_owned()),
            release.reason.clone(),
        ]);
    }
    for row in render::table(&rows) {
        output::line(&row);
    }
}

pub async fn run_pool(workspace: &Workspace, command: PoolCommand) -> anyhow::Result<()> {
    let json = workspace.global.json;
    match command {
        PoolCommand::Add {
            name,
            provisioner,
            default,
        } => {
            let pool = Pool {
                name,
                provisioner,
                is_default: default,
            };
            cairn_app::names::validate_pool_name(&pool.name)?;
            workspace.app_store()?.add_pool(pool.clone()).await?;
            output::line(&format!("added pool `{}`", pool.name));
        }
        PoolCommand::Ls => {
            let pools = workspace.app_store()?.list_pools().await?;
            list_pools(json, &pools);
        }
        PoolCommand::Rm { name } => {
            cairn_app::names::validate_pool_name(&name)?;
            workspace.app_store()?.remove_pool(&name).await?;
            output::line(&format!("removed pool `{name}`"));
        }
        PoolCommand::Default { name } => {
            cairn_app::names::validate_pool_name(&name)?;
            workspace.app_store()?.set_default_pool(&name).await?;
            output::line(&format!("pool `{name}` is the default"));
        }
    }
    Ok(())
}

fn list_pools(json: bool, pools: &[Pool]) {
    if json {
        let pools = pools
            .iter()
            .map(|pool| {
                serde_json::json!({
                    "name": pool.name,
                    "provisioner": pool.provisioner,
                    "default": pool.is_default,
                })
            })
            .collect();
        output::json(&serde_json::Value::Array(pools));
        return;
    }
    if pools.is_empty() {
        output::progress("no pools (apps go to the implicit pool `default`)");
        return;
    }
    let mut rows = vec![[
        "NAME".to_owned(),
        "PROVISIONER".to_owned(),
        "DEFAULT".to_owned(),
    ]];
    for pool in pools {
        rows.push([
            pool.name.clone(),
            pool.provisioner.clone(),
            if pool.is_default { "yes" } else { "" }.to_owned(),
        ]);
    }
    for row in render::table(&rows) {
        output::line(&row);
    }
}

pub async fn run_node(workspace: &Workspace, command: NodeCommand) -> anyhow::Result<()> {
    let json = workspace.global.json;
    match command {
        NodeCommand::Add {
            address,
            pool,
            metadata,
        } => {
            let node = Node {
                address,
                pool,
                metadata: key_values(&metadata, "--meta")?.into_iter().collect(),
                status: NodeStatus::Enabled,
            };
            cairn_app::names::validate_node(&node)?;
            workspace.app_store()?.add_node(node.clone()).await?;
            output::line(&format!(
                "added node `{}` to pool `{}`",
                node.address, node.pool
            ));
        }
        NodeCommand::Ls => {
            let nodes = workspace.app_store()?.list_nodes().await?;
            list_nodes(json, &nodes);
        }
        NodeCommand::Update {
            address,
            pool,
            metadata,
            remove_metadata,
            enable,
            disable,
        } => {
            let status = match (enable, disable) {
                (true, _) => Some(NodeStatus::Enabled),
                (_, true) => Some(NodeStatus::Disabled),
                _ => None,
            };
            let set_metadata: std::collections::BTreeMap<String, String> =
                key_values(&metadata, "--meta")?.into_iter().collect();
            if let Some(key) = remove_metadata
                .iter()
                .find(|key| set_metadata.contains_key(*key))
            {
                return Err(bad_input(format!(
                    "`{key}` is both set (--meta) and removed (--remove-meta); give one"
                )));
            }
            let update = NodeUpdate {
                pool,
                set_metadata,
                remove_metadata,
                status,
            };
            cairn_app::names::validate_node_address(&address)?;
            let node = workspace.app_store()?.update_node(&address, update).await?;
            if json {
                output::json(&node_json(&node));
            } else {
                output::line(&format!("updated node `{}`", node.address));
            }
        }
        NodeCommand::Rm { address } => {
            cairn_app::names::validate_node_address(&address)?;
            workspace.app_store()?.remove_node(&address).await?;
            output::line(&format!("removed node `{address}`"));
        }
    }
    Ok(())
}

fn node_json(node: &Node) -> serde_json::Value {
    serde_json::json!({
        "address": node.address,
        "pool": node.pool,
        "metadata": node.metadata,
        "status": node.status.as_str(),
    })
}

fn list_nodes(json: bool, nodes: &[Node]) {
    if json {
        output::json(&serde_json::Value::Array(
            nodes.iter().map(node_json).collect(),
        ));
        return;
    }
    if nodes.is_empty() {
        output::progress("no nodes");
        return;
    }
    let mut rows = vec![[
        "ADDRESS".to_owned(),
        "POOL".to_owned(),
        "STATUS".to_owned(),
        "METADATA".to_owned(),
    ]];
    for node in nodes {
        let metadata: Vec<String> = node
            .metadata
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        rows.push([
            node.address.clone(),
            node.pool.clone(),
            node.status.as_str().to_owned(),
            metadata.join(","),
        ]);
    }
    for row in render::table(&rows) {
        output::line(&row);
    }
}
