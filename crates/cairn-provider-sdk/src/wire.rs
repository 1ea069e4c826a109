//! The wire format of the plugin protocol: JSON-RPC 2.0 messages, one per line, and the JSON
//! encoding of property values and package schemas. See `docs/provider-protocol.md`.

use std::collections::BTreeMap;

use cairn_core::schema::{FunctionSchema, PropertySchema, PropertyType, ResourceSchema};
use cairn_core::{PackageSchema, PropertyMap, Value};
use serde_json::{Value as Json, json};

/// The key marking a special value, and the signatures of unknown and secret values (Pulumi's).
pub const SIG_KEY: &str = "4dabf18193072939515e22adb298388d";
pub const UNKNOWN_SIG: &str = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";
pub const SECRET_SIG: &str = "1b47061264138c4ac30d75fd1eb44270";

/// JSON-RPC error codes of the protocol.
pub mod codes {
    pub const FAILED: i64 = -32000;
    pub const CANCELLED: i64 = -32001;
    pub const UNKNOWN_TYPE: i64 = -32002;
    pub const UNKNOWN_FUNCTION: i64 = -32003;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
}

pub fn value_to_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Bool(flag) => Json::Bool(*flag),
        Value::Number(number) => number_to_json(*number),
        Value::String(text) => Json::String(text.clone()),
        Value::Array(items) => Json::Array(items.iter().map(value_to_json).collect()),
        Value::Object(map) => Json::Object(
            map.iter()
                .map(|(key, value)| (key.clone(), value_to_json(value)))
                .collect(),
        ),
        Value::Secret(inner) => json!({ SIG_KEY: SECRET_SIG, "value": value_to_json(inner) }),
        Value::Unknown => json!({ SIG_KEY: UNKNOWN_SIG }),
    }
}

/// Whole numbers go out as JSON integers (plugins in other languages compare them as such).
fn number_to_json(number: f64) -> Json {
    if number.fract() == 0.0 && number.abs() < 9.0e15 {
        Json::from(number as i64)
    } else {
        serde_json::Number::from_f64(number).map_or(Json::Null, Json::Number)
    }
}

pub fn value_from_json(json: &Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(flag) => Value::Bool(*flag),
        Json::Number(number) => Value::Number(number.as_f64().unwrap_or(0.0)),
        Json::String(text) => Value::String(text.clone()),
        Json::Array(items) => Value::Array(items.iter().map(value_from_json).collect()),
        Json::Object(map) => match map.get(SIG_KEY).and_then(Json::as_str) {
            Some(UNKNOWN_SIG) => Value::Unknown,
            Some(SECRET_SIG) => {
                value_from_json(map.get("value").unwrap_or(&Json::Null)).into_secret()
            }
            _ => Value::Object(
                map.iter()
                    .map(|(key, value)| (key.clone(), value_from_json(value)))
                    .collect(),
            ),
        },
    }
}

pub fn map_to_json(map: &PropertyMap) -> Json {
    Json::Object(
        map.iter()
            .map(|(key, value)| (key.clone(), value_to_json(value)))
            .collect(),
    )
}

/// A property map from JSON; anything but an object (or null) is a protocol error.
pub fn map_from_json(json: &Json) -> Result<PropertyMap, String> {
    match json {
        Json::Null => Ok(PropertyMap::new()),
        Json::Object(map) => Ok(map
            .iter()
            .map(|(key, value)| (key.clone(), value_from_json(value)))
            .collect()),
        other => Err(format!("expected an object of properties, got `{other}`")),
    }
}

fn type_to_json(type_: &PropertyType) -> Json {
    match type_ {
        PropertyType::Any => json!({ "$ref": "pulumi.json#/Any" }),
        PropertyType::String => json!({ "type": "string" }),
        PropertyType::Number => json!({ "type": "number" }),
        PropertyType::Integer => json!({ "type": "integer" }),
        PropertyType::Boolean => json!({ "type": "boolean" }),
        PropertyType::Array(item) => json!({ "type": "array", "items": type_to_json(item) }),
        PropertyType::Map(item) => {
            json!({ "type": "object", "additionalProperties": type_to_json(item) })
        }
        PropertyType::Asset => json!({ "$ref": "pulumi.json#/Asset" }),
        PropertyType::Archive => json!({ "$ref": "pulumi.json#/Archive" }),
    }
}

fn type_from_json(json: &Json) -> PropertyType {
    if let Some(reference) = json.get("$ref").and_then(Json::as_str) {
        return match reference {
            "pulumi.json#/Asset" => PropertyType::Asset,
            "pulumi.json#/Archive" => PropertyType::Archive,
            _ => PropertyType::Any,
        };
    }
    match json.get("type").and_then(Json::as_str) {
        Some("string") => PropertyType::String,
        Some("number") => PropertyType::Number,
        Some("integer") => PropertyType::Integer,
        Some("boolean") => PropertyType::Boolean,
        Some("array") => PropertyType::Array(Box::new(
            json.get("items").map_or(PropertyType::Any, type_from_json),
        )),
        Some("object") => PropertyType::Map(Box::new(
            json.get("additionalProperties")
                .map_or(PropertyType::Any, type_from_json),
        )),
        _ => PropertyType::Any,
    }
}

fn properties_to_json(properties: &BTreeMap<String, PropertySchema>) -> (Json, Json) {
    let mut specs = serde_json::Map::new();
    let mut required = Vec::new();
    for (name, property) in properties {
        let mut spec = type_to_json(&property.type_);
        if !property.description.is_empty() {
            spec["description"] = json!(property.description);
        }
        if property.replace_on_changes {
            spec["replaceOnChanges"] = json!(true);
        }
        if property.secret {
            spec["secret"] = json!(true);
        }
        if property.required {
            required.push(json!(name));
        }
        specs.insert(name.clone(), spec);
    }
    (Json::Object(specs), Json::Array(required))
}

fn properties_from_json(
    specs: Option<&Json>,
    required: Option<&Json>,
) -> BTreeMap<String, PropertySchema> {
    let required: Vec<&str> = required
        .and_then(Json::as_array)
        .map(|names| names.iter().filter_map(Json::as_str).collect())
        .unwrap_or_default();
    specs
        .and_then(Json::as_object)
        .map(|specs| {
            specs
                .iter()
                .map(|(name, spec)| {
                    let flag = |key: &str| spec.get(key).and_then(Json::as_bool).unwrap_or(false);
                    let property = PropertySchema {
                        type_: type_from_json(spec),
                        description: spec
                            .get("description")
                            .and_then(Json::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                        required: required.contains(&name.as_str()),
                        replace_on_changes: flag("replaceOnChanges"),
                        secret: flag("secret"),
                    };
                    (name.clone(), property)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A package schema as the protocol sends it: a subset of Pulumi's package schema.
pub fn schema_to_json(schema: &PackageSchema) -> Json {
    let (config, config_required) = properties_to_json(&schema.config);
    let resources: serde_json::Map<String, Json> = schema
        .resources
        .iter()
        .map(|resource| {
            let (inputs, required) = properties_to_json(&resource.inputs);
            let (outputs, _) = properties_to_json(&resource.outputs);
            let mut spec = json!({
                "description": resource.description,
                "inputProperties": inputs,
                "requiredInputs": required,
                "properties": outputs,
            });
            if resource.accepts_any_input {
                spec["acceptsAnyInput"] = json!(true);
            }
            (resource.token.clone(), spec)
        })
        .collect();
    let functions: serde_json::Map<String, Json> = schema
        .functions
        .iter()
        .map(|function| {
            let (inputs, required) = properties_to_json(&function.inputs);
            let (outputs, _) = properties_to_json(&function.outputs);
            (
                function.token.clone(),
                json!({
                    "description": function.description,
                    "inputs": { "properties": inputs, "required": required },
                    "outputs": { "properties": outputs },
                }),
            )
        })
        .collect();
    json!({
        "name": schema.name,
        "version": schema.version,
        "config": { "variables": config, "required": config_required },
        "resources": resources,
        "functions": functions,
    })
}

pub fn schema_from_json(json: &Json) -> Result<PackageSchema, String> {
    check_schema_shape(json)?;
    let name = json
        .get("name")
        .and_then(Json::as_str)
        .ok_or("the schema has no `name`")?
        .to_owned();
    let resources = json
        .get("resources")
        .and_then(Json::as_object)
        .map(|resources| {
            resources
                .iter()
                .map(|(token, spec)| ResourceSchema {
                    token: token.clone(),
                    description: spec
                        .get("description")
                        .and_then(Json::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    inputs: properties_from_json(
                        spec.get("inputProperties"),
                        spec.get("requiredInputs"),
                    ),
                    outputs: properties_from_json(spec.get("properties"), None),
                    accepts_any_input: spec
                        .get("acceptsAnyInput")
                        .and_then(Json::as_bool)
                        .unwrap_or(false),
                })
                .collect()
        })
        .unwrap_or_default();
    let functions = json
        .get("functions")
        .and_then(Json::as_object)
        .map(|functions| {
            functions
                .iter()
                .map(|(token, spec)| FunctionSchema {
                    token: token.clone(),
                    description: spec
                        .get("description")
                        .and_then(Json::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    inputs: properties_from_json(
                        spec.pointer("/inputs/properties"),
                        spec.pointer("/inputs/required"),
                    ),
                    outputs: properties_from_json(spec.pointer("/outputs/properties"), None),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(PackageSchema {
        name,
        version: json
            .get("version")
            .and_then(Json::as_str)
            .unwrap_or("0.0.0")
            .to_owned(),
        resources,
        functions,
        config: properties_from_json(
            json.pointer("/config/variables"),
            json.pointer("/config/required"),
        ),
    })
}

/// Refuses a schema whose parts have the wrong shape, saying where: reading it leniently would
/// turn a plugin's mistake into "unknown resource type" far from its cause.
fn check_schema_shape(json: &Json) -> Result<(), String> {
    let object = |value: Option<&Json>, path: &str| -> Result<(), String> {
        match value {
            None | Some(Json::Object(_)) => Ok(()),
            Some(other) => Err(format!(
                "the schema's `{path}` must be an object, not {}",
                json_kind(other)
            )),
        }
    };
    let properties = |value: Option<&Json>, path: &str| -> Result<(), String> {
        object(value, path)?;
        for (name, spec) in value.and_then(Json::as_object).into_iter().flatten() {
            object(Some(spec), &format!("{path}.{name}"))?;
        }
        Ok(())
    };
    let names = |value: Option<&Json>, path: &str| -> Result<(), String> {
        match value {
            None => Ok(()),
            Some(Json::Array(items)) if items.iter().all(Json::is_string) => Ok(()),
            Some(_) => Err(format!("the schema's `{path}` must be a list of names")),
        }
    };
    if !json.is_object() {
        return Err(format!(
            "the schema must be an object, not {}",
            json_kind(json)
        ));
    }
    let package = json.get("name").and_then(Json::as_str).unwrap_or_default();
    for (section, is_resource) in [("resources", true), ("functions", false)] {
        object(json.get(section), section)?;
        for (token, spec) in json
            .get(section)
            .and_then(Json::as_object)
            .into_iter()
            .flatten()
        {
            let path = format!("{section}.{token}");
            if token.split(':').next() != Some(package) || token.split(':').count() != 3 {
                return Err(format!(
                    "the schema's `{path}`: `{token}` is not a token of package `{package}` (`{package}:module:Name`)"
                ));
            }
            object(Some(spec), &path)?;
            if is_resource {
                properties(
                    spec.get("inputProperties"),
                    &format!("{path}.inputProperties"),
                )?;
                properties(spec.get("properties"), &format!("{path}.properties"))?;
                names(
                    spec.get("requiredInputs"),
                    &format!("{path}.requiredInputs"),
                )?;
            } else {
                properties(
                    spec.pointer("/inputs/properties"),
                    &format!("{path}.inputs.properties"),
                )?;
                properties(
                    spec.pointer("/outputs/properties"),
                    &format!("{path}.outputs.properties"),
                )?;
            }
        }
    }
    properties(json.pointer("/config/variables"), "config.variables")?;
    Ok(())
}

fn json_kind(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_of_the_wrong_shape_is_refused_saying_where() {
        for (schema, expected) in [
            (json!([]), "the schema must be an object"),
            (
                json!({"name": "files", "resources": []}),
                "`resources` must be an object",
            ),
            (
                json!({"name": "files", "resources": {"files:index:File": "x"}}),
                "`resources.files:index:File` must be an object",
            ),
            (
                json!({"name": "files", "resources": {"File": {}}}),
                "is not a token of package `files`",
            ),
            (
                json!({"name": "files", "resources": {"files:index:File": {"inputProperties": {"path": 1}}}}),
                "`resources.files:index:File.inputProperties.path` must be an object",
            ),
            (
                json!({"name": "files", "resources": {"files:index:File": {"requiredInputs": "path"}}}),
                "must be a list of names",
            ),
        ] {
            let error = schema_from_json(&schema).expect_err("a malformed schema");
            assert!(error.contains(expected), "{schema}: {error}");
        }
    }

    #[test]
    fn values_round_trip_with_unknowns_and_secrets() {
        let value = Value::Object(PropertyMap::from([
            ("n".to_owned(), Value::Number(3.0)),
            ("half".to_owned(), Value::Number(0.5)),
            ("later".to_owned(), Value::Unknown),
            ("pw".to_owned(), Value::string("hunter2").into_secret()),
            (
                "list".to_owned(),
                Value::Array(vec![Value::Bool(true), Value::Null]),
            ),
        ]));
        let json = value_to_json(&value);
        assert_eq!(json["n"], json!(3));
        assert_eq!(json["later"], json!({ SIG_KEY: UNKNOWN_SIG }));
        assert_eq!(json["pw"]["value"], json!("hunter2"));
        assert_eq!(value_from_json(&json), value);
    }

    #[test]
    fn schemas_round_trip() {
        let schema = cairn_provider::fake::FakeProvider::new(None)
            .map(|fake| cairn_provider::Provider::schema(&fake).clone())
            .unwrap_or_default();
        let back = schema_from_json(&schema_to_json(&schema)).unwrap_or_default();
        assert_eq!(back, schema);
    }
}
