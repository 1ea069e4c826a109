//! Plugins in the CLI: building the provider registry (built-in providers, then a plugin for
//! every package the project uses that is not built in or that its `plugins:` overrides),
//! `cairn plugin ls`, and `cairn plugin serve` (a built-in provider over the plugin protocol).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use cairn_plugin::PluginProvider;
use cairn_provider::{Provider, ProviderRegistry};

use crate::cli::PluginCommand;
use crate::commands::render;
use crate::env;
use crate::output;
use crate::workspace::Workspace;

/// Plugins started by this command, shut down when it ends.
static STARTED: Mutex<Vec<Arc<PluginProvider>>> = Mutex::new(Vec::new());

/// The built-in providers.
pub fn builtin_registry() -> anyhow::Result<ProviderRegistry> {
    let mut registry = ProviderRegistry::new();
    registry.register(cairn_providers::random_provider());
    registry.register(cairn_providers::command_provider());
    let ledger = env::var(env::CAIRN_FAKE_LEDGER).map(std::path::PathBuf::from);
    let fake = cairn_provider::fake::FakeProvider::new(ledger)
        .context("opening the fake provider's ledger (CAIRN_FAKE_LEDGER)")?;
    registry.register(Arc::new(fake));
    registry.register(Arc::new(cairn_compute::provider::GroupProvider::new()));
    registry.register(cairn_provider_docker::docker_provider());
    Ok(registry)
}

/// The registry for this project: built-in providers, and the plugins its program needs.
pub async fn registry_for(workspace: &Workspace) -> anyhow::Result<ProviderRegistry> {
    let mut registry = builtin_registry()?;
    let Ok(project_file) = workspace.project_file() else {
        return Ok(registry);
    };
    let text = cairn_provider::files::read_regular_file(
        &project_file,
        cairn_provider::files::MAX_READ_BYTES,
    )?;
    let project_plugins = project_plugins(&text);
    let packages: BTreeSet<String> = program_texts(workspace, &text)?
        .iter()
        .flat_map(|text| referenced_packages(text))
        .collect();
    for package in packages {
        let overridden = project_plugins.contains_key(&package);
        if registry.provider(&package).is_some() && !overridden {
            continue;
        }
        let path_env = std::env::var_os("PATH");
        let Some(candidate) = cairn_plugin::find_plugin(
            &package,
            &project_plugins,
            &workspace.project_dir,
            &workspace.home,
            path_env.as_deref(),
        ) else {
            // Not found: the program check reports the unknown package where it is used.
            continue;
        };
        let plugin = PluginProvider::launch(&package, &candidate.path).await?;
        if let Ok(mut started) = STARTED.lock() {
            started.push(plugin.clone());
        }
        registry.register(plugin);
    }
    Ok(registry)
}

/// Stops the plugins this command started.
pub async fn shutdown_all() {
    let started = STARTED
        .lock()
        .map(|mut started| std::mem::take(&mut *started))
        .unwrap_or_default();
    for plugin in started {
        plugin.shutdown().await;
    }
}

/// `plugins:` of the project file: `{name: path}`, or Pulumi's `{providers: [{name, path}]}`.
fn project_plugins(text: &str) -> BTreeMap<String, PathBuf> {
    let Ok(project) = crate::stack_config::yaml_to_json(text) else {
        return BTreeMap::new();
    };
    let plugins = &project["plugins"];
    if let Some(providers) = plugins["providers"].as_array() {
        return providers
            .iter()
            .filter_map(|provider| {
                Some((
                    provider["name"].as_str()?.to_owned(),
                    PathBuf::from(provider["path"].as_str()?),
                ))
            })
            .collect();
    }
    plugins
        .as_object()
        .map(|plugins| {
            plugins
                .iter()
                .filter_map(|(name, path)| Some((name.clone(), PathBuf::from(path.as_str()?))))
                .collect()
        })
        .unwrap_or_default()
}

/// Packages named by `type:` and `function:` in a program's text, YAML or JSON (`random` of
/// `random:RandomPet`, `aws` of `pulumi:providers:aws`). A cheap scan rather than a parse (a
/// program may hold thousands of resources): the program check that follows reports anything
/// it missed as an unknown type, where it is written.
fn referenced_packages(text: &str) -> BTreeSet<String> {
    let mut packages = BTreeSet::new();
    for key in ["type", "function"] {
        for (at, _) in text.match_indices(key) {
            let before = text[..at].chars().next_back();
            if before.is_some_and(|c| !(c.is_whitespace() || matches!(c, '"' | '{' | ',' | '-'))) {
                continue;
            }
            let rest = text[at + key.len()..].trim_start_matches('"');
            let Some(rest) = rest.trim_start().strip_prefix(':') else {
                continue;
            };
            let value = rest.trim_start().trim_start_matches(['"', '\'']);
            let token: &str = value
                .split(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | '}'))
                .next()
                .unwrap_or_default();
            // `pulumi:providers:aws` names the package itself; `aws:s3:Bucket` before its colon.
            let provider_package = token
                .strip_prefix("pulumi:providers:")
                .or_else(|| token.strip_prefix("cairn:providers:"));
            let Some(package) = provider_package.or_else(|| Some(token.split_once(':')?.0)) else {
                continue;
            };
            if !package.is_empty()
                && package != "pulumi"
                && package
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                packages.insert(package.to_owned());
            }
        }
    }
    packages
}

/// The texts of the program: the project file, and the `Main.yaml`/`Main.json` it runs (in the
/// directory `main:` names, else beside it), so a plugin used only there is started too.
fn program_texts(workspace: &Workspace, project_text: &str) -> anyhow::Result<Vec<String>> {
    let main_dir = crate::stack_config::yaml_to_json(project_text)
        .ok()
        .and_then(|project| project["main"].as_str().map(str::to_owned))
        .map_or_else(
            || workspace.project_dir.clone(),
            |main| workspace.project_dir.join(main),
        );
    let mut texts = vec![project_text.to_owned()];
    for name in ["Main.yaml", "Main.yml", "Main.json"] {
        let path = main_dir.join(name);
        if path.is_file() {
            texts.push(cairn_provider::files::read_regular_file(
                &path,
                cairn_provider::files::MAX_READ_BYTES,
            )?);
        }
    }
    Ok(texts)
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
        .project_file()
        .ok()
        .and_then(|path| fs_err::read_to_string(path).ok())
        .map(|text| project_plugins(&text))
        .unwrap_or_default();
    let path_env = std::env::var_os("PATH");
    for candidate in cairn_plugin::discover_all(
        &project_plugins,
        &workspace.project_dir,
        &workspace.home,
        path_env.as_deref(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_packages_a_project_uses_and_its_plugins() {
        let text = "name: p\nruntime: yaml\nplugins:\n  files: ./bin/files\nresources:\n  a:\n    type: files:index:File\n  b:\n    type: \"random:RandomPet\"\n  p:\n    type: pulumi:providers:aws\nvariables:\n  v:\n    fn::invoke:\n      function: std:index:abs\n";
        let packages: Vec<String> = referenced_packages(text).into_iter().collect();
        assert_eq!(packages, ["aws", "files", "random", "std"]);
        assert_eq!(
            project_plugins(text),
            BTreeMap::from([("files".to_owned(), PathBuf::from("./bin/files"))])
        );
        let pulumi_style =
            "name: p\nplugins:\n  providers:\n    - name: files\n      path: ./files\n";
        assert_eq!(project_plugins(pulumi_style).len(), 1);
    }

    #[test]
    fn finds_the_packages_of_a_json_program_and_skips_what_is_not_a_key() {
        let json = r#"{"resources": {"a": {"type": "files:index:File"}, "b": {"type":"bad:index:Thing"}},
  "variables": {"v": {"fn::invoke": {"function": "std:index:abs"}}}}"#;
        let packages: Vec<String> = referenced_packages(json).into_iter().collect();
        assert_eq!(packages, ["bad", "files", "std"]);
        let prose = "description: a subtype: of things, prototype: x:y\n";
        assert!(referenced_packages(prose).is_empty());
    }
}
