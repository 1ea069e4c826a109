//! The deployment format: Pulumi's version 3 deployment (`apitype.DeploymentV3`), as `stack
//! export` prints it and as the file backend stores it, and the conversion to and from the
//! engine's `Snapshot` with secrets sealed by a `Crypter`.

use std::collections::BTreeMap;

use cairn_core::resource::CustomTimeouts;
use cairn_core::{
    PendingOperation, PendingOperationKind, PropertyMap, ResourceState, Snapshot, Urn, Value,
};
use cairn_secrets::Crypter;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::persister::StateError;

/// The key marking a special object in Pulumi's property encoding.
pub const SIGNATURE_KEY: &str = "4dabf18193072939515e22adb298388d";
/// The signature of a secret.
pub const SECRET_SIGNATURE: &str = "1b47061264138c4ac30d75fd1eb44270";
/// Pulumi's marker for an unknown value.
pub const UNKNOWN_VALUE: &str = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";
/// The deployment format version.
pub const DEPLOYMENT_VERSION: u32 = 3;

/// `{"version": 3, "deployment": {...}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UntypedDeployment {
    pub version: u32,
    pub deployment: Deployment,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub manifest: Manifest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets_providers: Option<SecretsProviders>,
    #[serde(default)]
    pub resources: Vec<ResourceV3>,
    /// Always written, even when empty, so readers can rely on the key.
    #[serde(default)]
    pub pending_operations: Vec<OperationV2>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub time: String,
    #[serde(default)]
    pub magic: String,
    #[serde(default)]
    pub version: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SecretsProviders {
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub state: Json,
}

fn is_false(flag: &bool) -> bool {
    !*flag
}

/// One resource, with Pulumi's field names.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceV3 {
    pub urn: String,
    pub custom: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub delete: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub inputs: serde_json::Map<String, Json>,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub outputs: serde_json::Map<String, Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub protect: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub external: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_lists_as_empty"
    )]
    pub property_dependencies: BTreeMap<String, Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_timeouts: Option<CustomTimeoutsV1>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub retain_on_delete: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub delete_before_replace: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_changes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replace_on_changes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_with: Option<String>,
}

/// Timeouts in seconds, as Pulumi stores them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomTimeoutsV1 {
    #[serde(default)]
    pub create: f64,
    #[serde(default)]
    pub update: f64,
    #[serde(default)]
    pub delete: f64,
}

/// A pending operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OperationV2 {
    pub resource: ResourceV3,
    #[serde(rename = "type")]
    pub type_: String,
}

/// Encodes a property value; secrets are sealed.
pub fn encode_value(value: &Value, crypter: &dyn Crypter) -> Result<Json, StateError> {
    Ok(match value {
        Value::Null => Json::Null,
        Value::Bool(flag) => Json::Bool(*flag),
        Value::Number(number) => encode_number(*number),
        Value::String(text) => Json::String(text.clone()),
        Value::Array(items) => Json::Array(
            items
                .iter()
                .map(|item| encode_value(item, crypter))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Json::Object(encode_map(map, crypter)?),
        Value::Unknown => Json::String(UNKNOWN_VALUE.to_owned()),
        Value::Secret(inner) => {
            let plaintext_json = encode_value(&inner.reveal(), crypter)?;
            let ciphertext = crypter.encrypt(&plaintext_json.to_string())?;
            serde_json::json!({ SIGNATURE_KEY: SECRET_SIGNATURE, "ciphertext": ciphertext })
        }
    })
}

fn encode_number(number: f64) -> Json {
    if number.fract() == 0.0 && number.abs() < 9.0e15 {
        Json::from(number as i64)
    } else {
        serde_json::Number::from_f64(number)
            .map(Json::Number)
            .unwrap_or(Json::Null)
    }
}

pub fn encode_map(
    map: &PropertyMap,
    crypter: &dyn Crypter,
) -> Result<serde_json::Map<String, Json>, StateError> {
    map.iter()
        .map(|(key, value)| Ok((key.clone(), encode_value(value, crypter)?)))
        .collect()
}

/// Decodes a property value; sealed secrets (and Pulumi's `plaintext` form) become
/// `Value::Secret`.
pub fn decode_value(json: &Json, crypter: &dyn Crypter) -> Result<Value, StateError> {
    Ok(match json {
        Json::Null => Value::Null,
        Json::Bool(flag) => Value::Bool(*flag),
        Json::Number(number) => Value::Number(number.as_f64().unwrap_or(0.0)),
        Json::String(text) if text == UNKNOWN_VALUE => Value::Unknown,
        Json::String(text) => Value::String(text.clone()),
        Json::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| decode_value(item, crypter))
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(map)
            if map.get(SIGNATURE_KEY).and_then(Json::as_str) == Some(SECRET_SIGNATURE) =>
        {
            let plaintext = match (map.get("ciphertext"), map.get("plaintext")) {
                (Some(Json::String(ciphertext)), _) => crypter.decrypt(ciphertext)?,
                (_, Some(Json::String(plaintext))) => plaintext.clone(),
                _ => {
                    return Err(StateError::Format(
                        "a secret value has neither `ciphertext` nor `plaintext`".to_owned(),
                    ));
                }
            };
            let inner: Json = serde_json::from_str(&plaintext).map_err(|error| {
                StateError::Format(format!("a secret's plaintext is not JSON: {error}"))
            })?;
            decode_value(&inner, crypter)?.into_secret()
        }
        Json::Object(map) => Value::Object(decode_map(map, crypter)?),
    })
}

pub fn decode_map(
    map: &serde_json::Map<String, Json>,
    crypter: &dyn Crypter,
) -> Result<PropertyMap, StateError> {
    map.iter()
        .map(|(key, value)| Ok((key.clone(), decode_value(value, crypter)?)))
        .collect()
}

/// Checks a resource's inputs and outputs against `cairn_core::MAX_VALUE_DEPTH`.
pub fn check_resource_depth(resource: &ResourceState) -> Result<(), StateError> {
    for (kind, map) in [("input", &resource.inputs), ("output", &resource.outputs)] {
        cairn_core::check_depth(map).map_err(|error| StateError::TooDeep {
            urn: resource.urn.to_string(),
            kind,
            error,
        })?;
    }
    Ok(())
}

/// Encodes a resource for the state. A value nested too deep to be read back is refused here,
/// the one way into every journal record and checkpoint, so nothing unreadable is written.
pub fn encode_resource(
    resource: &ResourceState,
    crypter: &dyn Crypter,
) -> Result<ResourceV3, StateError> {
    check_resource_depth(resource)?;
    let timeouts = resource.custom_timeouts;
    Ok(ResourceV3 {
        urn: resource.urn.to_string(),
        custom: resource.custom,
        delete: resource.delete,
        id: resource.id.clone(),
        type_: resource.type_.clone(),
        inputs: encode_map(&resource.inputs, crypter)?,
        outputs: encode_map(&resource.outputs, crypter)?,
        parent: resource.parent.as_ref().map(ToString::to_string),
        protect: resource.protect,
        external: resource.external,
        dependencies: resource
            .dependencies
            .iter()
            .map(ToString::to_string)
            .collect(),
        provider: resource.provider.clone(),
        property_dependencies: resource
            .property_dependencies
            .iter()
            .map(|(key, urns)| (key.clone(), urns.iter().map(ToString::to_string).collect()))
            .collect(),
        aliases: resource.aliases.iter().map(ToString::to_string).collect(),
        custom_timeouts: (timeouts != CustomTimeouts::default()).then_some(CustomTimeoutsV1 {
            create: timeouts.create,
            update: timeouts.update,
            delete: timeouts.delete,
        }),
        retain_on_delete: resource.retain_on_delete,
        delete_before_replace: resource.delete_before_replace,
        ignore_changes: resource.ignore_changes.clone(),
        replace_on_changes: resource.replace_on_changes.clone(),
        deleted_with: resource.deleted_with.as_ref().map(ToString::to_string),
    })
}

fn parse_urn(text: &str) -> Result<Urn, StateError> {
    Urn::parse(text).map_err(|error| StateError::Format(error.to_string()))
}

pub fn decode_resource(
    resource: &ResourceV3,
    crypter: &dyn Crypter,
) -> Result<ResourceState, StateError> {
    let timeouts = resource.custom_timeouts.unwrap_or_default();
    Ok(ResourceState {
        urn: parse_urn(&resource.urn)?,
        custom: resource.custom,
        id: resource.id.clone(),
        type_: resource.type_.clone(),
        inputs: decode_map(&resource.inputs, crypter)?,
        outputs: decode_map(&resource.outputs, crypter)?,
        parent: resource.parent.as_deref().map(parse_urn).transpose()?,
        dependencies: resource
            .dependencies
            .iter()
            .map(|urn| parse_urn(urn))
            .collect::<Result<_, _>>()?,
        property_dependencies: resource
            .property_dependencies
            .iter()
            .map(|(key, urns)| {
                Ok((
                    key.clone(),
                    urns.iter()
                        .map(|urn| parse_urn(urn))
                        .collect::<Result<_, _>>()?,
                ))
            })
            .collect::<Result<_, StateError>>()?,
        provider: resource.provider.clone(),
        protect: resource.protect,
        retain_on_delete: resource.retain_on_delete,
        external: resource.external,
        delete: resource.delete,
        delete_before_replace: resource.delete_before_replace,
        ignore_changes: resource.ignore_changes.clone(),
        replace_on_changes: resource.replace_on_changes.clone(),
        aliases: resource
            .aliases
            .iter()
            .map(|urn| parse_urn(urn))
            .collect::<Result<_, _>>()?,
        deleted_with: resource
            .deleted_with
            .as_deref()
            .map(parse_urn)
            .transpose()?,
        custom_timeouts: CustomTimeouts {
            create: timeouts.create,
            update: timeouts.update,
            delete: timeouts.delete,
        },
    })
}

pub fn operation_name(kind: PendingOperationKind) -> &'static str {
    kind.as_str()
}

pub fn parse_operation(name: &str) -> Result<PendingOperationKind, StateError> {
    Ok(match name {
        "creating" => PendingOperationKind::Creating,
        "updating" => PendingOperationKind::Updating,
        "deleting" => PendingOperationKind::Deleting,
        "reading" | "importing" => PendingOperationKind::Reading,
        other => {
            return Err(StateError::Format(format!(
                "unknown pending operation type `{other}`"
            )));
        }
    })
}

/// Encodes a snapshot as a deployment.
pub fn encode_snapshot(
    snapshot: &Snapshot,
    crypter: &dyn Crypter,
    manifest_time: &str,
) -> Result<Deployment, StateError> {
    let version = format!("cairn {}", env!("CARGO_PKG_VERSION"));
    // Pulumi keeps the passphrase provider's salt line in `state.salt`.
    let mut provider_state = serde_json::Map::new();
    if let Some(salt) = crypter.passphrase_salt_state() {
        provider_state.insert("salt".to_owned(), Json::String(salt));
    }
    Ok(Deployment {
        manifest: Manifest {
            time: manifest_time.to_owned(),
            magic: manifest_magic(&version),
            version,
        },
        secrets_providers: Some(SecretsProviders {
            type_: "passphrase".to_owned(),
            state: Json::Object(provider_state),
        }),
        resources: snapshot
            .resources
            .iter()
            .map(|resource| encode_resource(resource, crypter))
            .collect::<Result<_, _>>()?,
        pending_operations: snapshot
            .pending_operations
            .iter()
            .map(|operation| encode_operation(operation, crypter))
            .collect::<Result<_, StateError>>()?,
    })
}

/// A pending operation as stored.
pub fn encode_operation(
    operation: &PendingOperation,
    crypter: &dyn Crypter,
) -> Result<OperationV2, StateError> {
    Ok(OperationV2 {
        resource: encode_resource(&operation.resource, crypter)?,
        type_: operation_name(operation.kind).to_owned(),
    })
}

/// Pulumi's manifest magic: the SHA-256 of the version string, in hex.
pub fn manifest_magic(version: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(version.as_bytes()))
}

/// Decodes a deployment into a snapshot.
pub fn decode_deployment(
    deployment: &Deployment,
    crypter: &dyn Crypter,
) -> Result<Snapshot, StateError> {
    Ok(Snapshot {
        resources: deployment
            .resources
            .iter()
            .map(|resource| decode_resource(resource, crypter))
            .collect::<Result<_, _>>()?,
        pending_operations: deployment
            .pending_operations
            .iter()
            .map(|operation| {
                Ok(PendingOperation {
                    kind: parse_operation(&operation.type_)?,
                    resource: decode_resource(&operation.resource, crypter)?,
                })
            })
            .collect::<Result<_, StateError>>()?,
    })
}

/// Replaces every sealed secret with Pulumi's plaintext form, for `stack export --show-secrets`.
pub fn reveal_deployment(
    deployment: &Deployment,
    crypter: &dyn Crypter,
) -> Result<Deployment, StateError> {
    fn reveal(json: &Json, crypter: &dyn Crypter) -> Result<Json, StateError> {
        Ok(match json {
            Json::Object(map)
                if map.get(SIGNATURE_KEY).and_then(Json::as_str) == Some(SECRET_SIGNATURE) =>
            {
                match map.get("ciphertext").and_then(Json::as_str) {
                    Some(ciphertext) => serde_json::json!({
                        SIGNATURE_KEY: SECRET_SIGNATURE,
                        "plaintext": crypter.decrypt(ciphertext)?,
                    }),
                    None => json.clone(),
                }
            }
            Json::Object(map) => Json::Object(
                map.iter()
                    .map(|(key, value)| Ok((key.clone(), reveal(value, crypter)?)))
                    .collect::<Result<_, StateError>>()?,
            ),
            Json::Array(items) => Json::Array(
                items
                    .iter()
                    .map(|item| reveal(item, crypter))
                    .collect::<Result<_, _>>()?,
            ),
            other => other.clone(),
        })
    }
    let reveal_resource = |resource: &ResourceV3| -> Result<ResourceV3, StateError> {
        let mut resource = resource.clone();
        for map in [&mut resource.inputs, &mut resource.outputs] {
            for value in map.values_mut() {
                *value = reveal(value, crypter)?;
            }
        }
        Ok(resource)
    };
    let mut revealed = deployment.clone();
    revealed.resources = deployment
        .resources
        .iter()
        .map(reveal_resource)
        .collect::<Result<_, _>>()?;
    for operation in &mut revealed.pending_operations {
        operation.resource = reveal_resource(&operation.resource)?;
    }
    Ok(revealed)
}

/// Levels of nesting of a JSON value (0 for a scalar), measured as `Value::depth` measures:
/// a sealed secret is one object, as `Value::Secret` is one level. Iterative, so safe on any
/// value.
pub fn json_depth(json: &Json) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(json, 0)];
    while let Some((value, above)) = pending.pop() {
        match value {
            Json::Array(items) => pending.extend(items.iter().map(|item| (item, above + 1))),
            Json::Object(map) => pending.extend(map.values().map(|item| (item, above + 1))),
            _ => {}
        }
        let own = match value {
            Json::Array(_) | Json::Object(_) => above + 1,
            _ => above,
        };
        deepest = deepest.max(own);
    }
    deepest
}

impl Deployment {
    /// Checks that every property of every resource (pending operations' too) nests at most
    /// `cairn_core::MAX_VALUE_DEPTH` levels. Backends check before every write, whatever the
    /// deployment came from, so a checkpoint they write can always be read back.
    pub fn check_depth(&self) -> Result<(), crate::BackendError> {
        let resources = self.resources.iter().chain(
            self.pending_operations
                .iter()
                .map(|operation| &operation.resource),
        );
        for resource in resources {
            for (kind, map) in [("input", &resource.inputs), ("output", &resource.outputs)] {
                for (property, value) in map {
                    let depth = json_depth(value);
                    if depth > cairn_core::MAX_VALUE_DEPTH {
                        return Err(crate::BackendError::format(format!(
                            "`{}`: {kind} {}; nothing was written",
                            resource.urn,
                            cairn_core::TooDeep {
                                property: property.clone(),
                                depth,
                            }
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// The resources a user counts (`stack ls`, `stack rm`): not the stack itself or providers.
    /// What `stack rm` must not drop silently: the resources, and the pending operations (a
    /// create that may have happened is a resource that may exist).
    pub fn count_resources_and_pending(&self) -> usize {
        self.count_resources() + self.pending_operations.len()
    }

    pub fn count_resources(&self) -> usize {
        self.resources
            .iter()
            .filter(|resource| {
                resource.type_ != "pulumi:pulumi:Stack"
                    && !resource.type_.starts_with("pulumi:providers:")
            })
            .count()
    }
}

/// Pulumi writes a property without dependencies as `"length": null` (a nil Go slice).
fn null_lists_as_empty<'de, D>(deserializer: D) -> Result<BTreeMap<String, Vec<String>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let map: BTreeMap<String, Option<Vec<String>>> = serde::Deserialize::deserialize(deserializer)?;
    Ok(map
        .into_iter()
        .map(|(key, urns)| (key, urns.unwrap_or_default()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reversible stand-in for a real cipher.
    struct Rot;

    impl Crypter for Rot {
        fn encrypt(&self, plaintext: &str) -> Result<String, cairn_secrets::SecretsError> {
            Ok(plaintext.chars().rev().collect())
        }
        fn decrypt(&self, ciphertext: &str) -> Result<String, cairn_secrets::SecretsError> {
            Ok(ciphertext.chars().rev().collect())
        }
    }

    fn sample() -> Snapshot {
        let urn = Urn::parse("urn:pulumi:dev::p::fake:index:Resource::a").unwrap();
        let resource = ResourceState {
            urn: urn.clone(),
            custom: true,
            id: "id-1".to_owned(),
            type_: "fake:index:Resource".to_owned(),
            inputs: PropertyMap::from([
                ("n".to_owned(), Value::Number(3.0)),
                ("half".to_owned(), Value::Number(0.5)),
                ("pw".to_owned(), Value::string("hunter2").into_secret()),
                (
                    "list".to_owned(),
                    Value::Array(vec![Value::Bool(true), Value::Null]),
                ),
            ]),
            outputs: PropertyMap::from([("later".to_owned(), Value::Unknown)]),
            protect: true,
            custom_timeouts: CustomTimeouts {
                create: 60.0,
                ..CustomTimeouts::default()
            },
            ..ResourceState::default()
        };
        Snapshot {
            resources: vec![resource.clone()],
            pending_operations: vec![PendingOperation {
                kind: PendingOperationKind::Creating,
                resource,
            }],
        }
    }

    #[test]
    fn snapshot_round_trips_with_secrets_sealed() {
        let snapshot = sample();
        let deployment = encode_snapshot(&snapshot, &Rot, "2026-01-01T00:00:00Z").unwrap();
        let text = serde_json::to_string(&deployment).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains(SECRET_SIGNATURE));
        assert!(text.contains("\"protect\":true"));
        let parsed: Deployment = serde_json::from_str(&text).unwrap();
        assert_eq!(decode_deployment(&parsed, &Rot).unwrap(), snapshot);
    }

    #[test]
    fn reveal_shows_plaintext_and_still_decodes() {
        let deployment = encode_snapshot(&sample(), &Rot, "t").unwrap();
        let revealed = reveal_deployment(&deployment, &Rot).unwrap();
        let text = serde_json::to_string(&revealed).unwrap();
        assert!(text.contains(r#"\"hunter2\""#), "{text}");
        assert_eq!(decode_deployment(&revealed, &Rot).unwrap(), sample());
    }

    #[test]
    fn json_shape_matches_pulumi() {
        let deployment = encode_snapshot(&sample(), &Rot, "2026-01-01T00:00:00Z").unwrap();
        let json = serde_json::to_value(&deployment).unwrap();
        assert_eq!(json["manifest"]["time"], "2026-01-01T00:00:00Z");
        assert_eq!(
            json["manifest"]["magic"].as_str().unwrap(),
            manifest_magic(json["manifest"]["version"].as_str().unwrap())
        );
        assert_eq!(json["secrets_providers"]["type"], "passphrase");
        let resource = &json["resources"][0];
        assert_eq!(resource["inputs"]["n"], serde_json::json!(3));
        assert_eq!(resource["inputs"]["half"], serde_json::json!(0.5));
        assert_eq!(resource["outputs"]["later"], UNKNOWN_VALUE);
        assert_eq!(resource["inputs"]["pw"][SIGNATURE_KEY], SECRET_SIGNATURE);
        // The ciphertext seals the JSON encoding of the plaintext (`"hunter2"`, quotes included).
        let ciphertext = resource["inputs"]["pw"]["ciphertext"].as_str().unwrap();
        assert_eq!(Rot.decrypt(ciphertext).unwrap(), r#""hunter2""#);
        assert_eq!(
            resource["customTimeouts"]["create"],
            serde_json::json!(60.0)
        );
        assert_eq!(json["pending_operations"][0]["type"], "creating");
        let untyped = UntypedDeployment {
            version: DEPLOYMENT_VERSION,
            deployment: deployment.clone(),
        };
        let text = serde_json::to_string(&untyped).unwrap();
        assert!(
            text.starts_with(r#"{"version":3,"deployment":{"manifest""#),
            "{text}"
        );
        assert_eq!(
            serde_json::from_str::<UntypedDeployment>(&text).unwrap(),
            untyped
        );
    }

    #[test]
    fn a_passphrase_crypter_leaves_its_salt_in_the_deployment() {
        let crypter =
            cairn_secrets::PassphraseCrypter::new("pass", &cairn_secrets::new_salt()).unwrap();
        let deployment = encode_snapshot(&sample(), &crypter, "t").unwrap();
        let providers = deployment.secrets_providers.clone().unwrap();
        assert_eq!(providers.state["salt"], crypter.encryption_salt());
        assert_eq!(decode_deployment(&deployment, &crypter).unwrap(), sample());
    }

    #[test]
    fn reads_secrets_nested_in_objects_and_arrays() {
        let secret = serde_json::json!({SIGNATURE_KEY: SECRET_SIGNATURE, "plaintext": "[1,\"x\"]"});
        let json = serde_json::json!({"outer": {"list": [secret]}});
        let decoded = decode_value(&json, &Rot).unwrap();
        let expected = Value::Object(PropertyMap::from([(
            "outer".to_owned(),
            Value::Object(PropertyMap::from([(
                "list".to_owned(),
                Value::Array(vec![
                    Value::Array(vec![Value::Number(1.0), Value::string("x")]).into_secret(),
                ]),
            )])),
        )]));
        assert_eq!(decoded, expected);
        let broken = serde_json::json!({SIGNATURE_KEY: SECRET_SIGNATURE});
        assert!(decode_value(&broken, &Rot).is_err());
    }

    #[test]
    fn omits_empty_fields_like_pulumi() {
        let resource = ResourceState {
            urn: Urn::parse("urn:pulumi:dev::p::pulumi:pulumi:Stack::p-dev").unwrap(),
            type_: "pulumi:pulumi:Stack".to_owned(),
            ..ResourceState::default()
        };
        let encoded = serde_json::to_value(encode_resource(&resource, &Rot).unwrap()).unwrap();
        assert_eq!(
            encoded,
            serde_json::json!({"urn": "urn:pulumi:dev::p::pulumi:pulumi:Stack::p-dev", "custom": false, "type": "pulumi:pulumi:Stack"})
        );
    }
}
