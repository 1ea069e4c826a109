//! Stack references: `stack`, `project/stack` or `org/project/stack`.

use std::fmt;

/// A stack within a backend. The organization is `organization` on self-managed backends, as
/// in Pulumi.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StackRef {
    pub organization: String,
    pub project: String,
    pub name: String,
}

pub const DEFAULT_ORGANIZATION: &str = "organization";

impl StackRef {
    /// Parses `stack`, `project/stack` or `org/project/stack`; `project` fills in what is left out.
    pub fn parse(text: &str, project: &str) -> Result<StackRef, String> {
        let parts: Vec<&str> = text.split('/').collect();
        let (organization, project, name) = match parts.as_slice() {
            [name] => (DEFAULT_ORGANIZATION, project, *name),
            [project, name] => (DEFAULT_ORGANIZATION, *project, *name),
            [organization, project, name] => (*organization, *project, *name),
            _ => {
                return Err(format!(
                    "`{text}` is not a stack name: use `stack`, `project/stack` or `org/project/stack`"
                ));
            }
        };
        validate_stack_name(name)?;
        Ok(StackRef {
            organization: organization.to_owned(),
            project: project.to_owned(),
            name: name.to_owned(),
        })
    }

    /// The fully qualified form.
    pub fn qualified(&self) -> String {
        format!("{}/{}/{}", self.organization, self.project, self.name)
    }
}

/// Pulumi's rule: stack names use letters, digits, `-`, `_` and `.`, at most 100 characters.
pub fn validate_stack_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a stack name must not be empty".to_owned());
    }
    if name.len() > 100 {
        return Err(format!(
            "stack name `{name}` is too long: at most 100 characters"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "stack name `{name}` may only contain letters, digits, `-`, `_` and `.`"
        ));
    }
    Ok(())
}

impl fmt::Display for StackRef {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.name)
    }
}
