//! Reading and validating provider inputs against a hand-written schema: type checks, required
//! and unknown properties, defaults. Shared by `random` and `command`, which both validate their
//! inputs the same generic way before applying their own rules.
//!
//! Values that are `Unknown` (not yet computed during a preview) always pass: they are checked
//! again once they are known.

use std::collections::BTreeMap;

use cairn_core::{PropertyMap, PropertySchema, PropertyType, Value};
use cairn_provider::CheckFailure;

/// Checks `news` against `schema`: no unknown properties, every required one present, every
/// known value of the declared type. Returns one failure per problem.
pub(crate) fn check_against_schema(
    schema: &BTreeMap<String, PropertySchema>,
    news: &PropertyMap,
) -> Vec<CheckFailure> {
    let mut failures = Vec::new();
    for (name, value) in news {
        let Some(property) = schema.get(name) else {
            failures.push(failure(name, format!("unknown property `{name}`")));
            continue;
        };
        if !value.is_null() && !value_matches(value, &property.type_) {
            failures.push(failure(
                name,
                format!(
                    "`{name}` must be {}, not {}",
                    article_for(&property.type_.display_name()),
                    value.kind_name()
                ),
            ));
        }
    }
    for (name, property) in schema {
        let is_missing = news.get(name).is_none_or(Value::is_null);
        if property.required && is_missing {
            failures.push(failure(name, format!("missing required property `{name}`")));
        }
    }
    failures
}

/// Whether a value has the given type. Unknown values match every type.
pub(crate) fn value_matches(value: &Value, type_: &PropertyType) -> bool {
    match (value, type_) {
        (Value::Unknown, _) | (_, PropertyType::Any) => true,
        (Value::Secret(inner), _) => value_matches(inner, type_),
        (Value::String(_), PropertyType::String) => true,
        (Value::Number(_), PropertyType::Number) => true,
        (Value::Number(number), PropertyType::Integer) => number.fract() == 0.0,
        (Value::Bool(_), PropertyType::Boolean) => true,
        (Value::Array(items), PropertyType::Array(item_type)) => {
            items.iter().all(|item| value_matches(item, item_type))
        }
        (Value::Object(map), PropertyType::Map(item_type)) => {
            map.values().all(|item| value_matches(item, item_type))
        }
        _ => false,
    }
}

/// Drops explicit nulls (Pulumi treats them as absent) and fills in defaults for absent
/// properties.
pub(crate) fn apply_defaults(inputs: &mut PropertyMap, defaults: &[(&str, Value)]) {
    inputs.retain(|_, value| !value.is_null());
    for (name, default) in defaults {
        inputs
            .entry((*name).to_owned())
            .or_insert_with(|| default.clone());
    }
}

/// A known integer input; `None` when absent, unknown or not an integer (the type check reports
/// the latter).
pub(crate) fn known_integer(inputs: &PropertyMap, name: &str) -> Option<i64> {
    let number = inputs.get(name)?.as_f64()?;
    // The bound check keeps the cast exact: beyond 2^53 an f64 no longer holds every integer.
    let is_exact_integer = number.fract() == 0.0 && number.abs() <= 9_007_199_254_740_992.0;
    is_exact_integer.then_some(number as i64)
}

pub(crate) fn known_bool(inputs: &PropertyMap, name: &str) -> Option<bool> {
    inputs.get(name)?.as_bool()
}

pub(crate) fn known_str<'a>(inputs: &'a PropertyMap, name: &str) -> Option<&'a str> {
    inputs.get(name)?.as_str()
}

/// Whether the input is present and (partly) unknown.
pub(crate) fn is_unknown(inputs: &PropertyMap, name: &str) -> bool {
    inputs.get(name).is_some_and(Value::contains_unknown)
}

pub(crate) fn failure(property: &str, reason: String) -> CheckFailure {
    CheckFailure {
        property: Some(property.to_owned()),
        reason,
    }
}

/// A property of the given type with a description, for hand-written schemas.
pub(crate) fn property(type_: PropertyType, description: &str) -> PropertySchema {
    PropertySchema::new(type_).describe(description)
}

fn article_for(type_name: &str) -> String {
    let starts_with_vowel = type_name.starts_with(['a', 'e', 'i', 'o', 'u']);
    if starts_with_vowel {
        format!("an {type_name}")
    } else {
        format!("a {type_name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> BTreeMap<String, PropertySchema> {
        BTreeMap::from([
            (
                "length".to_owned(),
                property(PropertyType::Integer, "").required(),
            ),
            (
                "inputs".to_owned(),
                property(PropertyType::Array(Box::new(PropertyType::String)), ""),
            ),
        ])
    }

    fn reasons(news: PropertyMap) -> Vec<String> {
        check_against_schema(&schema(), &news)
            .into_iter()
            .map(|failure| format!("{}: {}", failure.property.unwrap(), failure.reason))
            .collect()
    }

    #[test]
    fn reports_unknown_missing_and_mistyped_properties() {
        assert_eq!(
            reasons(PropertyMap::from([
                ("lenght".to_owned(), Value::Number(3.0)),
                ("inputs".to_owned(), Value::Array(vec![Value::Number(1.0)])),
            ])),
            vec![
                "inputs: `inputs` must be an array of string, not array",
                "lenght: unknown property `lenght`",
                "length: missing required property `length`",
            ]
        );
        assert_eq!(
            reasons(PropertyMap::from([(
                "length".to_owned(),
                Value::Number(2.5)
            )])),
            vec!["length: `length` must be an integer, not number"]
        );
    }

    #[test]
    fn unknown_and_secret_values_pass_the_type_check() {
        assert!(reasons(PropertyMap::from([("length".to_owned(), Value::Unknown)])).is_empty());
        assert!(
            reasons(PropertyMap::from([(
                "length".to_owned(),
                Value::Number(4.0).into_secret()
            )]))
            .is_empty()
        );
    }

    #[test]
    fn defaults_fill_absent_and_null_properties_only() {
        let mut inputs = PropertyMap::from([
            ("a".to_owned(), Value::Null),
            ("b".to_owned(), Value::Bool(false)),
        ]);
        apply_defaults(
            &mut inputs,
            &[("a", Value::Bool(true)), ("b", Value::Bool(true))],
        );
        assert_eq!(
            inputs,
            PropertyMap::from([
                ("a".to_owned(), Value::Bool(true)),
                ("b".to_owned(), Value::Bool(false)),
            ])
        );
    }

    #[test]
    fn known_integer_rejects_fractions_and_unknowns() {
        let inputs = PropertyMap::from([
            ("whole".to_owned(), Value::Number(-7.0)),
            ("fraction".to_owned(), Value::Number(1.5)),
            ("later".to_owned(), Value::Unknown),
        ]);
        assert_eq!(known_integer(&inputs, "whole"), Some(-7));
        assert_eq!(known_integer(&inputs, "fraction"), None);
        assert_eq!(known_integer(&inputs, "later"), None);
        assert!(is_unknown(&inputs, "later"));
    }
}
