//! Package schemas, shaped after Pulumi's package schema: which resource types and functions a
//! provider offers, their input and output properties, which inputs are required and which force
//! replacement. The program checker and the engine both read them.

use std::collections::BTreeMap;

/// What one provider package offers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PackageSchema {
    pub name: String,
    pub version: String,
    pub resources: Vec<ResourceSchema>,
    pub functions: Vec<FunctionSchema>,
    /// The provider's own configuration (`<package>:<key>` stack config, or the properties of a
    /// `pulumi:providers:<package>` resource). `replace_on_changes` marks keys whose change
    /// replaces the provider and, with it, every resource it manages.
    pub config: BTreeMap<String, PropertySchema>,
}

impl PackageSchema {
    pub fn resource(&self, canonical_token: &str) -> Option<&ResourceSchema> {
        self.resources
            .iter()
            .find(|resource| resource.token == canonical_token)
    }

    pub fn function(&self, canonical_token: &str) -> Option<&FunctionSchema> {
        self.functions
            .iter()
            .find(|function| function.token == canonical_token)
    }
}

/// One resource type.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResourceSchema {
    /// The canonical type token (`random:index/randomPet:RandomPet`).
    pub token: String,
    pub description: String,
    pub inputs: BTreeMap<String, PropertySchema>,
    /// Output properties (Pulumi's `properties`), inputs included.
    pub outputs: BTreeMap<String, PropertySchema>,
    /// When true, inputs not listed in `inputs` are accepted (the `fake` provider).
    pub accepts_any_input: bool,
}

impl ResourceSchema {
    pub fn required_inputs(&self) -> impl Iterator<Item = &str> {
        self.inputs
            .iter()
            .filter(|(_, property)| property.required)
            .map(|(name, _)| name.as_str())
    }
}

/// One function (invoke).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FunctionSchema {
    pub token: String,
    pub description: String,
    pub inputs: BTreeMap<String, PropertySchema>,
    pub outputs: BTreeMap<String, PropertySchema>,
}

/// One property of a resource or function.
#[derive(Clone, Debug, PartialEq)]
pub struct PropertySchema {
    pub type_: PropertyType,
    pub description: String,
    pub required: bool,
    /// A change to this input replaces the resource.
    pub replace_on_changes: bool,
    /// The value is always secret (`RandomPassword.result`).
    pub secret: bool,
}

impl PropertySchema {
    pub fn new(type_: PropertyType) -> PropertySchema {
        PropertySchema {
            type_,
            description: String::new(),
            required: false,
            replace_on_changes: false,
            secret: false,
        }
    }

    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    pub fn replaces(mut self) -> Self {
        self.replace_on_changes = true;
        self
    }

    pub fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    pub fn describe(mut self, description: &str) -> Self {
        self.description = description.to_owned();
        self
    }
}

/// The type of a property.
#[derive(Clone, Debug, PartialEq)]
pub enum PropertyType {
    Any,
    String,
    Number,
    Integer,
    Boolean,
    Array(Box<PropertyType>),
    Map(Box<PropertyType>),
    /// An asset (`fn::stringAsset`, `fn::fileAsset`).
    Asset,
    /// An archive (`fn::fileArchive`).
    Archive,
}

impl PropertyType {
    /// The name used in error messages and docs (Pulumi's schema spelling).
    pub fn display_name(&self) -> String {
        match self {
            PropertyType::Any => "any".to_owned(),
            PropertyType::String => "string".to_owned(),
            PropertyType::Number => "number".to_owned(),
            PropertyType::Integer => "integer".to_owned(),
            PropertyType::Boolean => "boolean".to_owned(),
            PropertyType::Array(item) => format!("array of {}", item.display_name()),
            PropertyType::Map(item) => format!("map of {}", item.display_name()),
            PropertyType::Asset => "asset".to_owned(),
            PropertyType::Archive => "archive".to_owned(),
        }
    }
}
