//! Plugins in the CLI: the provider registry of `cairn_ops::Plugins` with the search paths
//! from the environment, `cairn plugin ls`, and `cairn plugin serve` (a built-in provider over
//! the plugin protocol).

use std::path::PathBuf;
use std::sync::Arc;

use cairn_ops::{PluginSearch, Plugins};
use cairn_plugin::PluginProvider;
use cairn_provider::{Provider, ProviderRegistry};

use crate::cli::PluginCommand;
use crate::commands::render;
use crate::env;
use crate::output;
use crate::workspace::Workspace;

/// Where plugins are looked for and the fake provider's ledger, from the environment.
fn search(workspace: &Workspace) -> PluginSearch {
    PluginSearch {
        home: workspace.home.clone(),
        path_env: std::env::var_os("PATH"),
        fake_ledger: env::var(env::CAIRN_FAKE_LEDGER).map(PathBuf::from),
    }
}

/// The built-in providers.
pub fn builtin_registry() -> anyhow::Result<ProviderRegistry> {
    let ledger = env::var(env::CAIRN_FAKE_LEDGER).map(PathBuf::from);
    Ok(cairn_ops::builtin_registry(ledger.as_deref())?)
}

/// The registry for the workspace's project (built-in providers only outside a project) and
/// the plugins it started; the caller shuts them down.
pub async fn start(workspace: &Workspace) -> anyhow::Result<(ProviderRegistry, Plugins)> {
    let project = workspace.project().ok();
    Ok(Plugins::start(project, &search(workspace)).await?)
}

pub async fn run(workspace: &Workspace, command: PluginCommand) -> anyhow::Result<()> {
    match command {
        PluginCommand::Ls => list(workspace).await,
        PluginCommand::Serve { package } => serve(&package).await,
    }
}

async fn list(workspace: &Workspace) -> anyhow::Result<()> {
    let builtins = builtin_registry()?;
    let mut rows: Vec<[String; 4]> = Vec::new();
    let mut packages: Vec<&str> = builtins.packages().collect();
    packages.sort_unstable();
    for package in packages {
        let version = builtins
            .provider(package)
            .map(|provider| provider.schema().version.clone())
            .unwrap_or_default();
        rows.push([
            package.to_owned(),
            version,
            "built-in".to_owned(),
            String::new(),
        ]);
    }
    let project_plugins = workspace
        .project()
        .map(|project| project.plugins.clone())
        .unwrap_or_default();
    let search = search(workspace);
    for candidate in cairn_plugin::discover_all(
        &project_plugins,
        &workspace.project_dir,
        &search.home,
        search.path_env.as_deref(),
    ) {
        // The version comes from the plugin itself; one that does not start says why.
        let version = match PluginProvider::launch(&candidate.name, &candidate.path).await {
            Ok(plugin) => {
                let version = plugin.version().to_owned();
                plugin.shutdown().await;
                version
            }
            Err(error) => format!("(does not start: {error})"),
        };
        rows.push([
            candidate.name.clone(),
            version,
            candidate.source.as_str().to_owned(),
            candidate.path.display().to_string(),
        ]);
    }
    if workspace.global.json {
        let plugins: Vec<serde_json::Value> = rows
            .iter()
            .map(|[name, version, source, path]| {
                serde_json::json!({ "name": name, "version": version, "source": source, "path": path })
            })
            .collect();
        output::json(&serde_json::Value::Array(plugins));
        return Ok(());
    }
    let mut table = vec![[
        "NAME".to_owned(),
        "VERSION".to_owned(),
        "SOURCE".to_owned(),
        "PATH".to_owned(),
    ]];
    table.extend(rows);
    for row in render::table(&table) {
        output::line(&row);
    }
    Ok(())
}

/// Serves a built-in provider over the plugin protocol: the same provider, out of process.
async fn serve(package: &str) -> anyhow::Result<()> {
    let registry = builtin_registry()?;
    let provider: Arc<dyn Provider> = registry
        .provider(package)
        .cloned()
        .ok_or_else(|| crate::bad_input(format!("`{package}` is not a built-in provider")))?;
    drop(registry);
    let code = cairn_provider_sdk::serve(provider).await;
    if code == std::process::ExitCode::SUCCESS {
        Ok(())
    } else {
        Err(anyhow::anyhow!("serving `{package}` failed"))
    }
}
