//! Stack references: `stack`, `org/stack` or `org/project/stack`, as in Pulumi.
//!
//! Every part of a reference ends up in a backend path or query, so each is checked here, before
//! a backend sees it: a name such as `..` would otherwise reach outside the stack's own files.

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
    /// Parses `stack`, `org/stack` or `org/project/stack` (Pulumi's forms); `project` fills
    /// in the project when it is left out. Every part is validated.
    pub fn parse(text: &str, project: &str) -> Result<StackRef, String> {
        let parts: Vec<&str> = text.split('/').collect();
        let (organization, project, name) = match parts.as_slice() {
            [name] => (DEFAULT_ORGANIZATION, project, *name),
            [organization, name] => (*organization, project, *name),
            [organization, project, name] => (*organization, *project, *name),
            _ => {
                return Err(format!(
                    "`{text}` is not a stack name: use `stack`, `org/stack` or `org/project/stack`"
                ));
            }
        };
        let stack = StackRef {
            organization: organization.to_owned(),
            project: project.to_owned(),
            name: name.to_owned(),
        };
        stack.validate()?;
        Ok(stack)
    }

    /// Checks every part of the reference; backends call it before touching paths or rows.
    pub fn validate(&self) -> Result<(), String> {
        validate_organization_name(&self.organization)?;
        validate_project_name(&self.project)?;
        validate_stack_name(&self.name)
    }

    /// The shortest form that `parse` reads back as this reference from `project`: `dev`,
    /// `team/dev` or `team/other/dev`. What a workspace keeps as its selected stack.
    pub fn relative_to(&self, project: &str) -> String {
        match (
            self.organization == DEFAULT_ORGANIZATION,
            self.project == project,
        ) {
            (true, true) => self.name.clone(),
            (false, true) => format!("{}/{}", self.organization, self.name),
            _ => self.qualified(),
        }
    }

    /// The fully qualified form.
    pub fn qualified(&self) -> String {
        format!("{}/{}/{}", self.organization, self.project, self.name)
    }
}

/// Pulumi's rule: stack names use letters, digits, `-`, `_` and `.`, at most 100 characters.
/// `.` and `..` alone are refused too: they name directories, not stacks.
pub fn validate_stack_name(name: &str) -> Result<(), String> {
    validate_part("stack", name, 100)
}

/// Pulumi's rule for project names (`tokens.ValidateProjectName`): letters, digits, `-`, `_`
/// and `.`, at most 100 characters.
pub fn validate_project_name(name: &str) -> Result<(), String> {
    validate_part("project", name, 100)
}

/// Organization names: letters, digits, `-`, `_` and `.`, at most 40 characters (Pulumi
/// Cloud's limit for organization logins).
pub fn validate_organization_name(name: &str) -> Result<(), String> {
    validate_part("organization", name, 40)
}

fn validate_part(what: &str, name: &str, max_len: usize) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("a {what} name must not be empty"));
    }
    if name.len() > max_len {
        return Err(format!(
            "{what} name `{name}` is too long: at most {max_len} characters"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "{what} name `{}` may only contain letters, digits, `-`, `_` and `.`",
            name.escape_debug()
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("`{name}` is not a valid {what} name"));
    }
    Ok(())
}

impl fmt::Display for StackRef {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_parts_are_organization_and_stack_three_add_the_project() {
        let stack = StackRef::parse("team/dev", "web").unwrap();
        assert_eq!(
            (
                stack.organization.as_str(),
                stack.project.as_str(),
                stack.name.as_str()
            ),
            ("team", "web", "dev")
        );
        let stack = StackRef::parse("team/api/prod", "web").unwrap();
        assert_eq!(stack.qualified(), "team/api/prod");
        let stack = StackRef::parse("dev", "web").unwrap();
        assert_eq!(stack.qualified(), "organization/web/dev");
        for text in ["dev", "team/dev", "team/api/dev", "organization/api/dev"] {
            let stack = StackRef::parse(text, "web").unwrap();
            assert_eq!(stack.relative_to("web"), text);
            assert_eq!(StackRef::parse(&stack.relative_to("web"), "web"), Ok(stack));
        }
    }

    #[test]
    fn names_that_would_escape_a_directory_are_refused() {
        for text in [
            "..",
            ".",
            "../..",
            "../../..",
            "org/../dev",
            "org/./dev",
            "a/b/c/d",
            "",
            "dev/",
            "/dev",
            "de v",
            "dev\0",
            "dév",
        ] {
            assert!(
                StackRef::parse(text, "web").is_err(),
                "`{}` was accepted",
                text.escape_debug()
            );
        }
        assert!(StackRef::parse("dev", "..").is_err());
        assert!(StackRef::parse("dev", "a/b").is_err());
        assert!(StackRef::parse(&"s".repeat(101), "web").is_err());
        assert!(StackRef::parse(&format!("{}/dev", "o".repeat(41)), "web").is_err());
        // Dots inside a name are Pulumi's and fine.
        assert!(StackRef::parse("dev.eu-west_1", "my.project").is_ok());
        assert!(StackRef::parse("...", "web").is_ok());
    }
}
