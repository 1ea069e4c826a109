//! The provider registry: packages → providers, and every spelling of a type token → its
//! canonical token. Built once in `main` and passed down; there is no global registry.

use std::collections::HashMap;
use std::sync::Arc;

use cairn_core::{ResourceSchema, TypeToken};

use crate::Provider;

/// A type token resolved through the registry.
#[derive(Clone)]
pub struct ResolvedType<'a> {
    pub canonical: &'a str,
    pub schema: &'a ResourceSchema,
    pub provider: &'a Arc<dyn Provider>,
}

/// Providers by package name.
#[derive(Default, Clone)]
pub struct ProviderRegistry {
    providers: HashMap<String, Arc<dyn Provider>>,
    /// Every accepted spelling of a resource or function token → its canonical token.
    spellings: HashMap<String, String>,
}

impl ProviderRegistry {
    pub fn new() -> ProviderRegistry {
        ProviderRegistry::default()
    }

    pub fn register(&mut self, provider: Arc<dyn Provider>) {
        let schema = provider.schema();
        let tokens = schema
            .resources
            .iter()
            .map(|resource| resource.token.clone())
            .chain(
                schema
                    .functions
                    .iter()
                    .map(|function| function.token.clone()),
            );
        for token in tokens {
            for spelling in TypeToken::new(token.clone()).spellings() {
                self.spellings.entry(spelling).or_insert(token.clone());
            }
        }
        self.providers
            .insert(provider.package().to_owned(), provider);
    }

    pub fn provider(&self, package: &str) -> Option<&Arc<dyn Provider>> {
        self.providers.get(package)
    }

    pub fn packages(&self) -> impl Iterator<Item = &str> {
        self.providers.keys().map(String::as_str)
    }

    /// The canonical token for any accepted spelling.
    pub fn canonical_token(&self, spelling: &str) -> Option<&str> {
        self.spellings.get(spelling).map(String::as_str)
    }

    /// Resolves a resource type written in any accepted spelling.
    pub fn resolve_resource(&self, spelling: &str) -> Option<ResolvedType<'_>> {
        let canonical = self.canonical_token(spelling)?;
        let provider = self
            .providers
            .get(cairn_core::type_token::package_of(canonical))?;
        let schema = provider.schema().resource(canonical)?;
        Some(ResolvedType {
            canonical,
            schema,
            provider,
        })
    }

    /// Resolves a function token written in any accepted spelling.
    pub fn resolve_function(
        &self,
        spelling: &str,
    ) -> Option<(
        &str,
        &cairn_core::schema::FunctionSchema,
        &Arc<dyn Provider>,
    )> {
        let canonical = self.canonical_token(spelling)?;
        let provider = self
            .providers
            .get(cairn_core::type_token::package_of(canonical))?;
        let schema = provider.schema().function(canonical)?;
        Some((canonical, schema, provider))
    }

    /// Every resource token in canonical form, for "did you mean" hints.
    pub fn resource_tokens(&self) -> Vec<&str> {
        let mut tokens: Vec<&str> = self
            .providers
            .values()
            .flat_map(|provider| provider.schema().resources.iter())
            .map(|resource| resource.token.as_str())
            .collect();
        tokens.sort_unstable();
        tokens
    }
}
