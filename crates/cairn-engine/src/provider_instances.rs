//! The configured provider instances of one run, by provider reference (`<urn>::<id>`).
//!
//! A cache and nothing more: how an instance is configured is `providers`' business, which
//! hands the configuring future to `get_or_configure`. Keeping the cache free of the run state
//! lets the run state own it without the two modules depending on each other.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use cairn_core::ResourceState;
use cairn_provider::Provider;
use tokio::sync::OnceCell;

/// A provider reference as Pulumi writes it in state.
pub(crate) fn reference_of(state: &ResourceState) -> String {
    format!("{}::{}", state.urn, state.id)
}

/// The instance behind one reference, configured once however many steps ask at the same time.
type InstanceCell = Arc<OnceCell<Arc<dyn Provider>>>;

/// Configured provider instances by reference, for one run.
#[derive(Default)]
pub(crate) struct ProviderInstances {
    cells: Mutex<HashMap<String, InstanceCell>>,
    /// Provider resource states registered this run, by reference.
    states: Mutex<HashMap<String, ResourceState>>,
    /// Instances `configure` made; shut down when the run ends.
    made: Mutex<Vec<Arc<dyn Provider>>>,
}

impl ProviderInstances {
    /// The instance behind `reference`, made by `configure` on the first call for it; callers
    /// arriving while it is being made wait for it. A failure is not cached: the next caller
    /// tries again.
    pub async fn get_or_configure<F, Fut>(
        &self,
        reference: &str,
        configure: F,
    ) -> Result<Arc<dyn Provider>, String>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Arc<dyn Provider>, String>>,
    {
        let cell = self
            .cells
            .lock()
            .map_err(|_| "internal error: provider cache poisoned".to_owned())?
            .entry(reference.to_owned())
            .or_default()
            .clone();
        cell.get_or_try_init(configure).await.cloned()
    }

    /// Records a provider resource's new state; a later lookup of its reference configures an
    /// instance from it (an in-place update keeps the reference, so any earlier instance is
    /// dropped from the cache).
    pub fn register(&self, state: ResourceState) {
        let reference = reference_of(&state);
        if let Ok(mut cells) = self.cells.lock() {
            cells.remove(&reference);
        }
        if let Ok(mut states) = self.states.lock() {
            states.insert(reference, state);
        }
    }

    /// The provider resource state registered this run under `reference`, if any.
    pub fn registered(&self, reference: &str) -> Option<ResourceState> {
        self.states
            .lock()
            .ok()
            .and_then(|states| states.get(reference).cloned())
    }

    /// Remembers an instance `configure` made, to shut it down when the run ends.
    pub fn record_made(&self, instance: Arc<dyn Provider>) {
        if let Ok(mut made) = self.made.lock() {
            made.push(instance);
        }
    }

    /// Shuts down every instance this run configured (plugin processes exit here).
    pub async fn shutdown_all(&self) {
        let made = self
            .made
            .lock()
            .map(|mut made| std::mem::take(&mut *made))
            .unwrap_or_default();
        for provider in made {
            provider.shutdown().await;
        }
    }
}
