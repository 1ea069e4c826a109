//! Stack configuration against the program's declarations: normalizing keys, applying defaults,
//! converting the strings stack files hold into the declared types, and marking secrets.

use std::collections::BTreeMap;

use cairn_core::Value;

use crate::ast::{ConfigType, Program};
use crate::diagnostic::Diagnostic;

/// Resolves the stack's config against the program's `config:` declarations.
///
/// `stack_config` is keyed as in the stack file (`proj:key`, `key`, `aws:region`); the result is
/// keyed by normalized key (no project prefix). Keys the program does not declare are passed
/// through (provider config such as `aws:region`).
pub fn resolve_config(
    program: &Program,
    stack_config: &BTreeMap<String, Value>,
) -> Result<BTreeMap<String, Value>, Vec<Diagnostic>> {
    let mut resolved: BTreeMap<String, Value> = stack_config
        .iter()
        .map(|(key, value)| (normalize_config_key(&program.name, key), value.clone()))
        .collect();
    let mut diagnostics = Vec::new();
    for decl in &program.config {
        let key = normalize_config_key(&program.name, &decl.key);
        let source_text = program.sources.get(&decl.span.file);
        let value = match resolved.get(&key).or(decl.default.as_ref()) {
            Some(value) => value.clone(),
            None => {
                diagnostics.push(
                    Diagnostic::at(
                        &decl.span,
                        source_text,
                        format!("missing required configuration value `{key}`"),
                    )
                    .with_help(format!("run `cairn config set {key} <value>`")),
                );
                continue;
            }
        };
        let typed = match &decl.type_ {
            Some(type_) => match coerce_config_value(&value, type_) {
                Ok(typed) => typed,
                Err(problem) => {
                    diagnostics.push(
                        Diagnostic::at(
                            &decl.span,
                            source_text,
                            format!("configuration value `{key}` {problem}"),
                        )
                        .with_help(format!(
                            "run `cairn config set {key} <value>` with a value of type `{}`",
                            type_.display_name()
                        )),
                    );
                    continue;
                }
            },
            None => value,
        };
        let typed = if decl.secret {
            typed.into_secret()
        } else {
            typed
        };
        resolved.insert(key, typed);
    }
    if diagnostics.is_empty() {
        Ok(resolved)
    } else {
        Err(diagnostics)
    }
}

/// `proj:key` → `key` for the program's own project; other namespaces are kept.
pub fn normalize_config_key(project: &str, key: &str) -> String {
    match key.split_once(':') {
        Some((namespace, rest)) if namespace == project => rest.to_owned(),
        _ => key.to_owned(),
    }
}

/// The largest integer a JSON number (an `f64`, as in Pulumi) holds exactly: 2^53.
const MAX_EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;

/// An integer config value, refused when it is beyond what can be kept exactly.
fn exact_integer(number: f64, is_exact: bool) -> Result<Value, String> {
    if is_exact {
        Ok(Value::Number(number))
    } else {
        Err("must be an integer between -2^53 and 2^53 (9007199254740992); larger ones cannot be kept exactly".to_owned())
    }
}

/// Converts a config value to its declared type. Stack files hold strings, so `"3"` is a fine
/// `Integer`. The error says what was wrong (never the value itself: it may be a secret).
pub(crate) fn coerce_config_value(value: &Value, type_: &ConfigType) -> Result<Value, String> {
    if let Value::Secret(inner) = value {
        return coerce_config_value(inner, type_).map(Value::into_secret);
    }
    let mismatch = || {
        Err(format!(
            "must be of type `{}`, found a {}",
            type_.display_name(),
            value.kind_name()
        ))
    };
    match (type_, value) {
        (ConfigType::String, Value::String(_)) => Ok(value.clone()),
        (ConfigType::String, Value::Number(_) | Value::Bool(_)) => Ok(Value::String(
            value.to_interpolated_string().unwrap_or_default(),
        )),
        (ConfigType::Number, Value::Number(_)) => Ok(value.clone()),
        (ConfigType::Integer, Value::Number(number)) if number.fract() == 0.0 => {
            exact_integer(*number, number.abs() <= MAX_EXACT_INTEGER)
        }
        (ConfigType::Integer, Value::String(text)) if text.trim().parse::<i128>().is_ok() => {
            // Parsed as an integer first: as a float, 2^53 + 1 would silently become 2^53.
            let integer = text.trim().parse::<i128>().unwrap_or_default();
            exact_integer(
                integer as f64,
                integer.unsigned_abs() <= MAX_EXACT_INTEGER as u128,
            )
        }
        (ConfigType::Number | ConfigType::Integer, Value::String(text)) => {
            match text.trim().parse::<f64>() {
                Ok(number) if *type_ == ConfigType::Number => Ok(Value::Number(number)),
                Ok(number) if number.fract() == 0.0 => {
                    exact_integer(number, number.abs() <= MAX_EXACT_INTEGER)
                }
                _ => Err(format!(
                    "must be of type `{}`, found a string that is not one",
                    type_.display_name()
                )),
            }
        }
        (ConfigType::Boolean, Value::Bool(_)) => Ok(value.clone()),
        (ConfigType::Boolean, Value::String(text)) => match text.trim() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err("must be `true` or `false`".to_owned()),
        },
        (ConfigType::List(item_type), Value::Array(items)) => items
            .iter()
            .map(|item| coerce_config_value(item, item_type))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        (ConfigType::Object, Value::Object(_)) => Ok(value.clone()),
        // `cairn config set` stores structured values as JSON text.
        (ConfigType::List(_) | ConfigType::Object, Value::String(text)) => {
            match serde_json::from_str::<serde_json::Value>(text) {
                Ok(json) => {
                    let parsed = crate::eval::value_from_json(&json);
                    if matches!(parsed, Value::String(_)) {
                        mismatch()
                    } else {
                        coerce_config_value(&parsed, type_)
                    }
                }
                Err(_) => mismatch(),
            }
        }
        _ => mismatch(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::TestSchemas;
    use expect_test::{Expect, expect};

    #[track_caller]
    fn check(program_text: &str, stack: &[(&str, Value)], expect: Expect) {
        let loaded = crate::load_str("Cairn.yaml", program_text, &TestSchemas);
        let program = loaded.program.expect("the test program has no errors");
        let stack_config = stack
            .iter()
            .map(|(key, value)| ((*key).to_owned(), value.clone()))
            .collect();
        let rendered = match resolve_config(&program, &stack_config) {
            Ok(resolved) => resolved
                .iter()
                .map(|(key, value)| format!("{key} = {value:?}"))
                .collect::<Vec<_>>()
                .join("\n"),
            Err(diagnostics) => diagnostics
                .iter()
                .map(|diagnostic| {
                    format!(
                        "{diagnostic}\n  help: {}",
                        diagnostic.help.clone().unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
        };
        expect.assert_eq(&rendered);
    }

    #[test]
    fn stack_strings_become_declared_types_and_defaults_apply() {
        check(
            "name: proj\nruntime: yaml\nconfig:\n  count:\n    type: integer\n  enabled:\n    type: boolean\n    default: false\n  greeting: hello\n  tags:\n    type: List<String>\n  password:\n    type: string\n    secret: true\n",
            &[
                ("proj:count", Value::string("3")),
                ("tags", Value::string(r#"["a","b"]"#)),
                ("password", Value::string("hunter2")),
                ("aws:region", Value::string("us-east-1")),
            ],
            expect![[r#"
                aws:region = "us-east-1"
                count = 3
                enabled = false
                greeting = "hello"
                password = [secret]
                tags = ["a", "b"]"#]],
        );
    }

    #[test]
    fn missing_and_mistyped_values_are_reported_together() {
        check(
            "name: proj\nruntime: yaml\nconfig:\n  count:\n    type: integer\n  size:\n    type: Number\n",
            &[("size", Value::string("big"))],
            expect![[r#"
                Cairn.yaml:4:3: missing required configuration value `count`
                  help: run `cairn config set count <value>`
                Cairn.yaml:6:3: configuration value `size` must be of type `Number`, found a string that is not one
                  help: run `cairn config set size <value>` with a value of type `Number`"#]],
        );
    }

    #[test]
    fn non_integral_number_is_not_an_integer() {
        assert!(coerce_config_value(&Value::string("2.5"), &ConfigType::Integer).is_err());
        for beyond in [
            "9007199254740993",
            "-9007199254740993",
            "123456789012345678901234567890",
            "1e300",
        ] {
            let error = coerce_config_value(&Value::string(beyond), &ConfigType::Integer)
                .expect_err(beyond);
            assert!(error.contains("2^53"), "{beyond}: {error}");
        }
        assert_eq!(
            coerce_config_value(&Value::string("9007199254740992"), &ConfigType::Integer),
            Ok(Value::Number(9_007_199_254_740_992.0))
        );
        assert_eq!(
            coerce_config_value(&Value::string(" -42 "), &ConfigType::Integer),
            Ok(Value::Number(-42.0))
        );
        assert_eq!(
            coerce_config_value(&Value::string("2.5"), &ConfigType::Number),
            Ok(Value::Number(2.5))
        );
    }

    #[test]
    fn project_prefix_is_stripped_only_for_own_project() {
        assert_eq!(normalize_config_key("proj", "proj:key"), "key");
        assert_eq!(normalize_config_key("proj", "aws:region"), "aws:region");
        assert_eq!(normalize_config_key("proj", "key"), "key");
    }
}
