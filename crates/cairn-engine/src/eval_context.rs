//! The bridge between the program evaluator and a running deployment: resolved resources,
//! variables and config, and calls out to providers (`fn::invoke`), files and other stacks.

use cairn_core::{PropertyMap, Value};
use cairn_program::{EvalContext, ResourceValue};

use crate::providers::provider_instance;
use crate::run_state::RunState;

impl EvalContext for RunState {
    fn resource(&self, key: &str) -> Option<ResourceValue> {
        self.resolved_resource(key)
    }

    fn variable(&self, name: &str) -> Option<Value> {
        self.resolved_variable(name)
    }

    fn config(&self, key: &str) -> Option<Value> {
        self.request.config.get(key).cloned()
    }

    fn stack(&self) -> &str {
        &self.request.stack
    }

    fn project(&self) -> &str {
        &self.request.project
    }

    fn organization(&self) -> &str {
        &self.request.organization
    }

    fn cwd(&self) -> &str {
        self.request.program_dir.to_str().unwrap_or(".")
    }

    fn invoke(
        &self,
        token: &str,
        args: PropertyMap,
        provider_key: Option<&str>,
    ) -> Result<PropertyMap, String> {
        let (canonical, function_schema, base) = self
            .request
            .providers
            .resolve_function(token)
            .ok_or_else(|| format!("unknown function `{token}`"))?;
        // The explicit provider named in `options.provider`, else the package's default one;
        // either way the configured instance behind its reference.
        let reference = match provider_key {
            Some(key) => Some(
                self.explicit_provider(key)
                    .ok_or_else(|| format!("the provider `{key}` is not ready"))?,
            ),
            None => self.default_provider(cairn_core::type_token::package_of(canonical)),
        };
        let revealed: PropertyMap = args
            .iter()
            .map(|(key, value)| (key.clone(), value.reveal()))
            .collect();
        let had_secret_args = args.values().any(Value::contains_secret);
        let ctx = self.call_context(&self.root_urn);
        // The evaluator is synchronous (expressions nest arbitrarily); an invoke is the one place
        // it waits on async work, so it blocks this worker thread on the provider call.
        let result = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async {
                let provider = match &reference {
                    Some(reference) => provider_instance(self, reference)
                        .await
                        .map_err(cairn_provider::ProviderError::Failed)?,
                    None => base.clone(),
                };
                provider.invoke(&ctx, canonical, &revealed).await
            })
        })
        .map_err(|error| format!("invoking `{canonical}`: {error}"))?;
        Ok(result
            .into_iter()
            .map(|(key, value)| {
                let is_secret = had_secret_args
                    || function_schema
                        .outputs
                        .get(&key)
                        .is_some_and(|property| property.secret);
                let value = if is_secret {
                    value.into_secret()
                } else {
                    value
                };
                (key, value)
            })
            .collect())
    }

    fn read_file(&self, path: &str) -> Result<String, String> {
        let full_path = self.request.program_dir.join(path);
        self.request
            .files
            .read_to_string(&full_path)
            .map_err(|error| format!("reading `{}`: {error}", full_path.display()))
    }

    fn saw_secret(&self, value: &Value) {
        self.secrets().add_secrets_of(value);
    }

    fn stack_output(&self, stack: &str, key: &str) -> Result<Value, String> {
        let outputs = self.request.stack_references.outputs(stack)?;
        outputs
            .get(key)
            .cloned()
            .ok_or_else(|| format!("stack `{stack}` has no output named `{key}`"))
    }
}
