//! Pulumi URNs: `urn:pulumi:<stack>::<project>::<qualified type>::<name>`, where the qualified
//! type chains the types of the resource's parents (`parentType$childType`), leaving out the
//! root `pulumi:pulumi:Stack` as Pulumi does.

use std::fmt;
use std::sync::Arc;

/// A resource's unique name within a stack. Shared, not copied: a run holds each URN in many
/// places (states, parents, dependencies, step records, indexes), so a clone is a count.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Urn(Arc<str>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a URN: {reason}")]
pub struct UrnError {
    pub text: String,
    pub reason: &'static str,
}

/// The type of the stack's root resource, whose outputs are the stack's outputs.
pub const ROOT_STACK_TYPE: &str = "pulumi:pulumi:Stack";

impl Urn {
    /// Builds a URN. `parent_type` is the parent's qualified type (already chained), if the
    /// parent is not the root stack resource.
    pub fn new(
        stack: &str,
        project: &str,
        parent_qualified_type: Option<&str>,
        type_token: &str,
        name: &str,
    ) -> Urn {
        let qualified_type = match parent_qualified_type {
            Some(parent) if parent != ROOT_STACK_TYPE => format!("{parent}${type_token}"),
            _ => type_token.to_owned(),
        };
        Urn(format!("urn:pulumi:{stack}::{project}::{qualified_type}::{name}").into())
    }

    /// Parses and validates a URN.
    pub fn parse(text: &str) -> Result<Urn, UrnError> {
        let error = |reason| UrnError {
            text: text.to_owned(),
            reason,
        };
        let rest = text
            .strip_prefix("urn:pulumi:")
            .ok_or_else(|| error("it must start with `urn:pulumi:`"))?;
        let parts: Vec<&str> = rest.splitn(4, "::").collect();
        if parts.len() != 4 {
            return Err(error(
                "it must have the form `urn:pulumi:<stack>::<project>::<type>::<name>`",
            ));
        }
        if parts[0].is_empty() || parts[1].is_empty() || parts[2].is_empty() {
            return Err(error("its stack, project and type must not be empty"));
        }
        Ok(Urn(text.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn parts(&self) -> [&str; 4] {
        let rest = self.0.strip_prefix("urn:pulumi:").unwrap_or(&self.0);
        let mut parts = rest.splitn(4, "::");
        [
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        ]
    }

    pub fn stack(&self) -> &str {
        self.parts()[0]
    }

    pub fn project(&self) -> &str {
        self.parts()[1]
    }

    /// The qualified type, with the parents' types chained by `$`.
    pub fn qualified_type(&self) -> &str {
        self.parts()[2]
    }

    /// The resource's own type (the last element of the qualified type).
    pub fn type_token(&self) -> &str {
        let qualified = self.qualified_type();
        qualified.rsplit('$').next().unwrap_or(qualified)
    }

    pub fn name(&self) -> &str {
        self.parts()[3]
    }
}

impl fmt::Display for Urn {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_parses_top_level_urn() {
        let urn = Urn::new(
            "dev",
            "proj",
            Some(ROOT_STACK_TYPE),
            "random:index/randomPet:RandomPet",
            "pet",
        );
        assert_eq!(
            urn.as_str(),
            "urn:pulumi:dev::proj::random:index/randomPet:RandomPet::pet"
        );
        let parsed = Urn::parse(urn.as_str()).unwrap();
        assert_eq!(parsed.stack(), "dev");
        assert_eq!(parsed.project(), "proj");
        assert_eq!(parsed.type_token(), "random:index/randomPet:RandomPet");
        assert_eq!(parsed.name(), "pet");
    }

    #[test]
    fn chains_parent_types() {
        let urn = Urn::new("dev", "proj", Some("a:b:C"), "d:e:F", "child");
        assert_eq!(urn.as_str(), "urn:pulumi:dev::proj::a:b:C$d:e:F::child");
        assert_eq!(urn.type_token(), "d:e:F");
        assert_eq!(urn.qualified_type(), "a:b:C$d:e:F");
    }

    #[test]
    fn names_may_contain_double_colons() {
        let urn = Urn::parse("urn:pulumi:dev::proj::a:b:C::x::y").unwrap();
        assert_eq!(urn.name(), "x::y");
    }

    #[test]
    fn rejects_malformed() {
        assert!(Urn::parse("urn:aws:foo").is_err());
        assert!(Urn::parse("urn:pulumi:dev::proj").is_err());
    }
}
