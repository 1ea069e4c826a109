//! Type tokens: `package:module/member:Name`. Pulumi YAML accepts the short forms
//! `package:Name` (module `index`) and `package:module:Name`; they all resolve to the canonical
//! token a provider's schema declares.

use std::fmt;

/// A canonical type token, as a provider's schema declares it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TypeToken(String);

impl TypeToken {
    pub fn new(token: impl Into<String>) -> TypeToken {
        TypeToken(token.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The package: the part before the first `:`.
    pub fn package(&self) -> &str {
        package_of(&self.0)
    }

    /// The last component (`RandomPet` in `random:index/randomPet:RandomPet`).
    pub fn short_name(&self) -> &str {
        self.0.rsplit(':').next().unwrap_or(&self.0)
    }

    /// Every spelling a user may write for this token, the canonical one first.
    pub fn spellings(&self) -> Vec<String> {
        let parts: Vec<&str> = self.0.split(':').collect();
        let mut spellings = vec![self.0.clone()];
        if let [package, module_part, name] = parts.as_slice() {
            let module = module_part.split('/').next().unwrap_or(module_part);
            let lower_camel = lower_camel(name);
            for spelling in [
                format!("{package}:{module}:{name}"),
                format!("{package}:{module}/{lower_camel}:{name}"),
            ] {
                if !spellings.contains(&spelling) {
                    spellings.push(spelling);
                }
            }
            if module == "index" {
                let short = format!("{package}:{name}");
                if !spellings.contains(&short) {
                    spellings.push(short);
                }
            }
        }
        spellings
    }
}

/// The package of any token spelling.
pub fn package_of(token: &str) -> &str {
    token.split(':').next().unwrap_or(token)
}

fn lower_camel(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl fmt::Display for TypeToken {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_module_has_short_spelling() {
        let token = TypeToken::new("random:index/randomPet:RandomPet");
        assert_eq!(
            token.spellings(),
            vec![
                "random:index/randomPet:RandomPet",
                "random:index:RandomPet",
                "random:RandomPet"
            ]
        );
        assert_eq!(token.package(), "random");
        assert_eq!(token.short_name(), "RandomPet");
    }

    #[test]
    fn named_module_keeps_module() {
        let token = TypeToken::new("command:local:Command");
        assert_eq!(
            token.spellings(),
            vec!["command:local:Command", "command:local/command:Command"]
        );
    }
}
