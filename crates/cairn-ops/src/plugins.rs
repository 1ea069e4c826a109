//! The providers an operation uses: the built-in ones, and a plugin process for every package
//! the project uses that is not built in or that its `plugins:` overrides. The plugins started
//! belong to a `Plugins` value, shut down when the caller is done with it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_plugin::PluginProvider;
use cairn_provider::{Provider as _, ProviderRegistry};

use crate::project::Project;

/// Why the providers could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PluginsError {
    #[error("opening the fake provider's ledger (CAIRN_FAKE_LEDGER): {0}")]
    FakeLedger(#[source] std::io::Error),
    #[error(transparent)]
    Plugin(#[from] cairn_plugin::PluginError),
}

/// Where plugins are looked for, besides the project's own `plugins:`.
#[derive(Clone, Debug, Default)]
pub struct PluginSearch {
    /// `$CAIRN_HOME`, whose `plugins/` directory holds installed plugins.
    pub home: PathBuf,
    /// `PATH`, searched last.
    pub path_env: Option<std::ffi::OsString>,
    /// The fake provider's ledger (`CAIRN_FAKE_LEDGER`), if its side effects are recorded.
    pub fake_ledger: Option<PathBuf>,
}

/// The built-in providers.
pub fn builtin_registry(fake_ledger: Option<&Path>) -> Result<ProviderRegistry, PluginsError> {
    let mut registry = ProviderRegistry::new();
    registry.register(cairn_providers::random_provider());
    registry.register(cairn_providers::command_provider());
    let fake = cairn_provider::fake::FakeProvider::new(fake_ledger.map(Path::to_owned))
        .map_err(PluginsError::FakeLedger)?;
    registry.register(Arc::new(fake));
    registry.register(Arc::new(cairn_compute::provider::GroupProvider::new()));
    registry.register(cairn_provider_docker::docker_provider());
    Ok(registry)
}

/// The plugin processes an operation started. Call `shutdown` when done: plugins get their
/// `shutdown` request and are killed if they do not exit.
#[derive(Default)]
pub struct Plugins {
    started: Vec<Arc<PluginProvider>>,
}

impl Plugins {
    /// The registry for `project` (built-in providers only without one), starting the plugins
    /// its program needs.
    pub async fn start(
        project: Option<&Project>,
        search: &PluginSearch,
    ) -> Result<(ProviderRegistry, Plugins), PluginsError> {
        let mut registry = builtin_registry(search.fake_ledger.as_deref())?;
        let mut plugins = Plugins::default();
        let Some(project) = project else {
            return Ok((registry, plugins));
        };
        for package in &project.packages {
            let overridden = project.plugins.contains_key(package);
            if registry.provider(package).is_some() && !overridden {
                continue;
            }
            let Some(candidate) = cairn_plugin::find_plugin(
                package,
                &project.plugins,
                &project.dir,
                &search.home,
                search.path_env.as_deref(),
            ) else {
                // Not found: the program check reports the unknown package where it is used.
                continue;
            };
            let plugin = match PluginProvider::launch(package, &candidate.path).await {
                Ok(plugin) => plugin,
                Err(error) => {
                    plugins.shutdown().await;
                    return Err(error.into());
                }
            };
            plugins.started.push(plugin.clone());
            registry.register(plugin);
        }
        Ok((registry, plugins))
    }

    /// Stops the plugins.
    pub async fn shutdown(self) {
        for plugin in self.started {
            plugin.shutdown().await;
        }
    }
}
