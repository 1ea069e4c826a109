//! Out-of-process providers: `PluginProvider` runs a plugin executable and implements
//! `cairn_provider::Provider` over the plugin protocol (`docs/provider-protocol.md`), so the
//! engine treats it exactly as a built-in provider; `discovery` finds plugins.
//!
//! Architecture invariant: a plugin that crashes, hangs, prints garbage or speaks another
//! protocol version gives an error naming the plugin and the operation; nothing here panics or
//! waits without bound (every call ends with the plugin's answer, its death, or the caller
//! dropping the call, and `shutdown` kills a plugin that does not exit).

mod connection;
pub mod discovery;
mod provider;

pub use discovery::{PluginCandidate, PluginSource, discover_all, find_plugin};
pub use provider::PluginProvider;

/// Why a plugin could not be started.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("starting plugin `{name}` ({path}): {reason}")]
    Launch {
        name: String,
        path: String,
        reason: String,
    },
}
