//! Property values as the engine sees them: JSON-like data plus two markers that only exist in
//! flight, `Secret` (the value must never be shown or stored in plaintext) and `Unknown` (the
//! value will only be known once a resource has been created or updated).

use std::collections::BTreeMap;
use std::fmt;

/// A property map: resource inputs, resource outputs, stack outputs.
pub type PropertyMap = BTreeMap<String, Value>;

/// How deeply a property value may nest: each object, array and secret is one level, so
/// `{a: [1]}` is 2 deep. State is JSON, whose readers (serde_json among them) refuse more than
/// 128 levels; a value sits a few levels down inside a checkpoint or journal record (and a
/// secret's plaintext is JSON again), so 64 leaves room, and no real program comes near it.
/// Every way in (programs, provider outputs, `stack import`) and every backend write checks it,
/// so whatever is accepted can be read back.
pub const MAX_VALUE_DEPTH: usize = 64;

/// A property nested deeper than `MAX_VALUE_DEPTH`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "property `{property}` is nested {depth} levels deep; at most {} are allowed",
    MAX_VALUE_DEPTH
)]
pub struct TooDeep {
    pub property: String,
    pub depth: usize,
}

/// Checks every property of `map` against `MAX_VALUE_DEPTH`, naming the first one too deep.
pub fn check_depth(map: &PropertyMap) -> Result<(), TooDeep> {
    for (property, value) in map {
        let depth = value.depth();
        if depth > MAX_VALUE_DEPTH {
            return Err(TooDeep {
                property: property.clone(),
                depth,
            });
        }
    }
    Ok(())
}

/// One property value.
#[derive(Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Value>),
    Object(PropertyMap),
    /// A value that must stay sealed at rest and hidden in output.
    Secret(Box<Value>),
    /// A value that is not known yet (during preview, an output of a resource to be created).
    Unknown,
}

impl Value {
    pub fn string(text: impl Into<String>) -> Value {
        Value::String(text.into())
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(text) => Some(text),
            Value::Secret(inner) => inner.as_str(),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(number) => Some(*number),
            Value::Secret(inner) => inner.as_f64(),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(flag) => Some(*flag),
            Value::Secret(inner) => inner.as_bool(),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Vec<Value>> {
        match self {
            Value::Array(items) => Some(items),
            Value::Secret(inner) => inner.as_array(),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&PropertyMap> {
        match self {
            Value::Object(map) => Some(map),
            Value::Secret(inner) => inner.as_object(),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn is_secret(&self) -> bool {
        matches!(self, Value::Secret(_))
    }

    /// Levels of nesting (0 for a scalar; see `MAX_VALUE_DEPTH`). Iterative, so measuring a
    /// value of any depth cannot overflow the stack.
    pub fn depth(&self) -> usize {
        let mut deepest = 0;
        let mut pending = vec![(self, 0)];
        while let Some((value, above)) = pending.pop() {
            match value {
                Value::Array(items) => pending.extend(items.iter().map(|item| (item, above + 1))),
                Value::Object(map) => pending.extend(map.values().map(|item| (item, above + 1))),
                Value::Secret(inner) => pending.push((inner, above + 1)),
                _ => {}
            }
            // A container is one level more than what encloses it, even when empty.
            let own = match value {
                Value::Array(_) | Value::Object(_) | Value::Secret(_) => above + 1,
                _ => above,
            };
            deepest = deepest.max(own);
        }
        deepest
    }

    /// Whether this value or anything inside it is unknown.
    pub fn contains_unknown(&self) -> bool {
        match self {
            Value::Unknown => true,
            Value::Secret(inner) => inner.contains_unknown(),
            Value::Array(items) => items.iter().any(Value::contains_unknown),
            Value::Object(map) => map.values().any(Value::contains_unknown),
            _ => false,
        }
    }

    /// Whether this value or anything inside it is secret.
    pub fn contains_secret(&self) -> bool {
        match self {
            Value::Secret(_) => true,
            Value::Array(items) => items.iter().any(Value::contains_secret),
            Value::Object(map) => map.values().any(Value::contains_secret),
            _ => false,
        }
    }

    /// Wraps the value as a secret unless it already is one.
    pub fn into_secret(self) -> Value {
        match self {
            Value::Secret(_) => self,
            other => Value::Secret(Box::new(other)),
        }
    }

    /// The value with every secret marker removed (the plaintext, for providers and for
    /// `--show-secrets`).
    pub fn reveal(&self) -> Value {
        match self {
            Value::Secret(inner) => inner.reveal(),
            Value::Array(items) => Value::Array(items.iter().map(Value::reveal).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(key, value)| (key.clone(), value.reveal()))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// Pulumi's rule for interpolation: a number prints without a trailing `.0`.
    pub fn to_interpolated_string(&self) -> Option<String> {
        match self {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(format_number(*number)),
            Value::Bool(flag) => Some(flag.to_string()),
            Value::Null => Some(String::new()),
            Value::Secret(inner) => inner.to_interpolated_string(),
            _ => None,
        }
    }

    /// A short name for the kind of value, for error messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
            Value::Secret(inner) => inner.kind_name(),
            Value::Unknown => "unknown",
        }
    }
}

/// Formats a number the way Pulumi and JSON users expect: integers without a fraction.
pub fn format_number(number: f64) -> String {
    if number.fract() == 0.0 && number.abs() < 1e15 {
        format!("{}", number as i64)
    } else {
        format!("{number}")
    }
}

/// Debug never shows a secret's plaintext: `Debug` output ends up in logs and panics.
impl fmt::Debug for Value {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => write!(formatter, "null"),
            Value::Bool(flag) => write!(formatter, "{flag}"),
            Value::Number(number) => write!(formatter, "{}", format_number(*number)),
            Value::String(text) => write!(formatter, "{text:?}"),
            Value::Array(items) => formatter.debug_list().entries(items).finish(),
            Value::Object(map) => formatter.debug_map().entries(map).finish(),
            Value::Secret(_) => write!(formatter, "[secret]"),
            Value::Unknown => write!(formatter, "[unknown]"),
        }
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::String(text.to_owned())
    }
}

impl From<String> for Value {
    fn from(text: String) -> Self {
        Value::String(text)
    }
}

impl From<bool> for Value {
    fn from(flag: bool) -> Self {
        Value::Bool(flag)
    }
}

impl From<f64> for Value {
    fn from(number: f64) -> Self {
        Value::Number(number)
    }
}

impl From<PropertyMap> for Value {
    fn from(map: PropertyMap) -> Self {
        Value::Object(map)
    }
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Self {
        Value::Array(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let value = Value::Object(PropertyMap::from([(
            "password".to_owned(),
            Value::string("hunter2").into_secret(),
        )]));
        assert_eq!(format!("{value:?}"), r#"{"password": [secret]}"#);
    }

    #[test]
    fn reveal_strips_nested_secrets() {
        let value = Value::Array(vec![Value::string("a").into_secret(), Value::Number(2.0)]);
        assert_eq!(
            value.reveal(),
            Value::Array(vec![Value::string("a"), Value::Number(2.0)])
        );
        assert!(value.contains_secret());
        assert!(!value.reveal().contains_secret());
    }

    #[test]
    fn depth_counts_containers_and_secrets() {
        assert_eq!(Value::Number(1.0).depth(), 0);
        assert_eq!(Value::Array(Vec::new()).depth(), 1);
        let mut value = Value::string("x").into_secret();
        for _ in 0..9 {
            value = Value::Object(PropertyMap::from([("a".to_owned(), value)]));
        }
        assert_eq!(value.depth(), 10);
        let map = PropertyMap::from([("shallow".to_owned(), Value::Null), ("v".to_owned(), value)]);
        assert_eq!(check_depth(&map), Ok(()));
        let mut deep = Value::Null;
        for _ in 0..=MAX_VALUE_DEPTH {
            deep = Value::Array(vec![deep]);
        }
        let map = PropertyMap::from([("deep".to_owned(), deep)]);
        let error = check_depth(&map).unwrap_err();
        assert_eq!(error.property, "deep");
        assert_eq!(error.depth, MAX_VALUE_DEPTH + 1);
    }

    #[test]
    fn numbers_interpolate_without_fraction() {
        assert_eq!(Value::Number(3.0).to_interpolated_string().unwrap(), "3");
        assert_eq!(Value::Number(2.5).to_interpolated_string().unwrap(), "2.5");
    }
}
