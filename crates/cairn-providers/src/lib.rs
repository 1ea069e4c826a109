//! Cairn's built-in providers: `random` (values generated once and then kept in state, like
//! Pulumi's `random` package) and `command` (shell commands run when a resource is created,
//! updated or deleted, like Pulumi's `command` package). Both declare the same type tokens,
//! properties and defaults as their Pulumi namesakes, so Pulumi YAML programs that use them run
//! unchanged.
//!
//! Architecture invariant: these providers know nothing about the engine, state or secrets
//! managers. They see plain values through `cairn_provider::Provider`, and the only side effects
//! are the child processes `command` starts.

mod command;
mod properties;
mod random;
#[cfg(unix)]
mod watchdog;

use std::sync::Arc;

use cairn_provider::Provider;

pub use command::{COMMAND_RESOURCE, COMMAND_RUN, CommandProvider};
pub use random::{
    RANDOM_BYTES, RANDOM_ID, RANDOM_INTEGER, RANDOM_PASSWORD, RANDOM_PET, RANDOM_SHUFFLE,
    RANDOM_STRING, RANDOM_UUID, RANDOM_UUID4, RANDOM_UUID7, RandomProvider,
};

/// The `random` provider, ready to register.
pub fn random_provider() -> Arc<dyn Provider> {
    Arc::new(RandomProvider::new())
}

/// The `command` provider, ready to register.
pub fn command_provider() -> Arc<dyn Provider> {
    Arc::new(CommandProvider::new())
}

#[cfg(test)]
mod tests {
    use cairn_provider::ProviderRegistry;

    use super::*;

    #[test]
    fn both_providers_register_and_resolve_short_tokens() {
        let mut registry = ProviderRegistry::new();
        registry.register(random_provider());
        registry.register(command_provider());
        let pet = registry.resolve_resource("random:RandomPet").unwrap();
        assert_eq!(pet.canonical, RANDOM_PET);
        let command = registry.resolve_resource("command:local:Command").unwrap();
        assert_eq!(command.canonical, COMMAND_RESOURCE);
        let (run, _, _) = registry.resolve_function("command:local:run").unwrap();
        assert_eq!(run, COMMAND_RUN);
    }
}
