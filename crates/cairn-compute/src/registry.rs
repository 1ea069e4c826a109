//! The driver registry: driver names, their settings help, and how to build one from its
//! settings (as Travis's backend registry does). `cairn instance`, `cairn group`, `cairn run`
//! and `cairn app` all name a driver and its settings; this is the one place that turns them
//! into a driver, so a new driver is registered once and every command knows it.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::driver::{DriverError, DriverResult, InstanceDriver};

/// Builds a driver from its settings (a JSON object; `null` when none were given).
pub type Constructor = Arc<
    dyn Fn(serde_json::Value) -> BoxFuture<'static, DriverResult<Arc<dyn InstanceDriver>>>
        + Send
        + Sync,
>;

struct Entry {
    help: String,
    /// The human-readable name and each setting's help (built-in drivers have them).
    info: Option<&'static crate::DriverInfo>,
    constructor: Constructor,
}

pub struct DriverRegistry {
    entries: BTreeMap<String, Entry>,
}

impl Default for DriverRegistry {
    fn default() -> Self {
        DriverRegistry::builtin()
    }
}

impl DriverRegistry {
    /// A registry with nothing in it (for tests and embedders with drivers of their own).
    pub fn empty() -> DriverRegistry {
        DriverRegistry {
            entries: BTreeMap::new(),
        }
    }

    /// `docker`, `process` and `fake`, built as a group resource's `driver` input is (so the
    /// settings mean the same everywhere).
    pub fn builtin() -> DriverRegistry {
        let mut registry = DriverRegistry::empty();
        for (name, help) in crate::DRIVERS {
            let constructor: Constructor = Arc::new(move |settings| {
                Box::pin(async move {
                    let driver = serde_json::json!({ "name": name, "settings": settings });
                    crate::provider::driver_of(&driver).await
                })
            });
            registry.register(name, help, constructor);
            if let Some(entry) = registry.entries.get_mut(name) {
                entry.info = crate::driver_info(name);
            }
        }
        registry
    }

    /// Adds (or replaces) a driver.
    pub fn register(&mut self, name: &str, help: &str, constructor: Constructor) {
        self.entries.insert(
            name.to_owned(),
            Entry {
                help: help.to_owned(),
                info: None,
                constructor,
            },
        );
    }

    /// The drivers' names and settings help, by name.
    pub fn drivers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries
            .iter()
            .map(|(name, entry)| (name.as_str(), entry.help.as_str()))
    }

    /// A driver's human-readable name and settings, as Travis's `ProviderHelp` (`None` for an
    /// unknown driver, or one registered with a help line only).
    pub fn info(&self, name: &str) -> Option<&'static crate::DriverInfo> {
        self.entries.get(name).and_then(|entry| entry.info)
    }

    pub fn help(&self, name: &str) -> Option<&str> {
        self.entries.get(name).map(|entry| entry.help.as_str())
    }

    /// Builds the driver `name` from `settings`. An unknown name is an error listing the
    /// known ones, so a typo is easy to fix.
    pub async fn build(
        &self,
        name: &str,
        settings: serde_json::Value,
    ) -> DriverResult<Arc<dyn InstanceDriver>> {
        let Some(entry) = self.entries.get(name) else {
            let known: Vec<&str> = self.entries.keys().map(String::as_str).collect();
            return Err(DriverError::Invalid(format!(
                "unknown driver `{name}`; the drivers are: {}",
                known.join(", ")
            )));
        };
        (entry.constructor)(settings).await
    }

    /// Builds a driver from string settings (`--setting key=value` on a command line). A value
    /// that parses as JSON (a number, `true`) is taken as that; anything else is a string.
    pub async fn build_from_strings(
        &self,
        name: &str,
        settings: &BTreeMap<String, String>,
    ) -> DriverResult<Arc<dyn InstanceDriver>> {
        let settings: serde_json::Map<String, serde_json::Value> = settings
            .iter()
            .map(|(key, value)| {
                let parsed = match serde_json::from_str::<serde_json::Value>(value) {
                    Ok(value @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
                        value
                    }
                    _ => serde_json::Value::String(value.clone()),
                };
                (key.clone(), parsed)
            })
            .collect();
        self.build(name, serde_json::Value::Object(settings)).await
    }
}
