//! The checked program: what `load_project` hands to the engine. Every expression node carries
//! the span of the YAML it came from, so evaluation errors can point back at the file.
//!
//! These types are plain data: they do not know how they were parsed (see `check.rs`) or how they
//! are evaluated (see `eval.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

/// A checked Pulumi YAML program.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    pub name: String,
    pub description: Option<String>,
    pub runtime: String,
    /// From `config:` (and the older `configuration:`), in source order.
    pub config: Vec<ConfigDecl>,
    /// In source order.
    pub variables: Vec<Variable>,
    /// In source order.
    pub resources: Vec<ResourceDecl>,
    pub outputs: Vec<(String, Expr)>,
    /// The directory of the file holding the program, for `fn::readFile` relative paths.
    pub source_dir: PathBuf,
    /// The text of every file the program came from, keyed by the file name used in spans, so
    /// that later diagnostics (`resolve_config`) can show the offending source.
    pub sources: BTreeMap<String, Arc<str>>,
}

impl Program {
    pub fn resource(&self, key: &str) -> Option<&ResourceDecl> {
        self.resources.iter().find(|resource| resource.key == key)
    }

    pub fn variable(&self, name: &str) -> Option<&Variable> {
        self.variables.iter().find(|variable| variable.name == name)
    }
}

/// One declared configuration value.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigDecl {
    /// As written, e.g. `count`, `proj:count` or `aws:region`.
    pub key: String,
    pub type_: Option<ConfigType>,
    pub default: Option<cairn_core::Value>,
    pub secret: bool,
    pub span: Span,
}

/// The declared type of a configuration value.
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigType {
    String,
    Integer,
    Boolean,
    Number,
    List(Box<ConfigType>),
    Object,
}

impl ConfigType {
    /// The name used in messages (`List<String>` style, as Pulumi YAML's `configuration:` does).
    pub fn display_name(&self) -> String {
        match self {
            ConfigType::String => "String".to_owned(),
            ConfigType::Integer => "Integer".to_owned(),
            ConfigType::Boolean => "Boolean".to_owned(),
            ConfigType::Number => "Number".to_owned(),
            ConfigType::List(item) => format!("List<{}>", item.display_name()),
            ConfigType::Object => "Object".to_owned(),
        }
    }
}

/// A named expression under `variables:`.
#[derive(Clone, Debug, PartialEq)]
pub struct Variable {
    pub name: String,
    pub value: Expr,
    pub deps: Deps,
}

/// One entry under `resources:`.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceDecl {
    /// The logical name: the key, or the resource's `name:` field when given.
    pub name: String,
    /// The key under `resources:`.
    pub key: String,
    /// Canonical token; `pulumi:providers:<pkg>` and `pulumi:pulumi:StackReference` kept as is.
    pub type_token: String,
    /// An `Object` expression, or any expression (`properties: ${inputs}`).
    pub properties: Option<Expr>,
    pub get: Option<GetDecl>,
    pub options: ResourceOptions,
    /// Everything this resource refers to, options included.
    pub deps: Deps,
    pub span: Span,
}

impl ResourceDecl {
    pub fn is_provider(&self) -> bool {
        is_provider_token(&self.type_token)
    }
}

/// Whether a type token names a provider resource (`pulumi:providers:aws`).
pub fn is_provider_token(token: &str) -> bool {
    token.starts_with("pulumi:providers:") || token.starts_with("cairn:providers:")
}

/// The token of the resource that reads another stack's outputs.
pub const STACK_REFERENCE_TOKEN: &str = "pulumi:pulumi:StackReference";

/// `get: {id: ..., state: {...}}`: read an existing resource instead of creating one.
#[derive(Clone, Debug, PartialEq)]
pub struct GetDecl {
    pub id: Expr,
    pub state: Option<Expr>,
}

/// A resource's `options:`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResourceOptions {
    /// The resource key of the provider.
    pub provider: Option<String>,
    /// Resource keys (map or list form).
    pub providers: Vec<String>,
    /// Resource keys.
    pub depends_on: Vec<String>,
    /// Resource key.
    pub parent: Option<String>,
    /// Set on the resource, else inherited from its parent.
    pub protect: bool,
    pub delete_before_replace: bool,
    /// Set on the resource, else inherited from its parent.
    pub retain_on_delete: bool,
    pub ignore_changes: Vec<String>,
    pub replace_on_changes: Vec<String>,
    /// Output names made secret whatever the provider's schema says.
    pub additional_secret_outputs: Vec<String>,
    /// Strings (URNs) or objects `{name, type, parent, stack, project}`.
    pub aliases: Vec<Expr>,
    pub import: Option<String>,
    /// Resource key: when it is deleted in the same operation, this one's delete is skipped.
    pub deleted_with: Option<String>,
    pub custom_timeouts: CustomTimeoutsDecl,
    pub version: Option<String>,
    /// `defaultProvider: true` on a provider resource.
    pub default_provider: bool,
}

/// `customTimeouts:` durations as written (`5m`, `30s`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CustomTimeoutsDecl {
    pub create: Option<String>,
    pub update: Option<String>,
    pub delete: Option<String>,
}

/// What a resource or variable refers to: the edges of the engine's graph.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Deps {
    /// Resource keys.
    pub resources: BTreeSet<String>,
    pub variables: BTreeSet<String>,
}

impl Deps {
    /// Adds every resource and variable `expr` refers to.
    pub fn add_expr(&mut self, expr: &Expr) {
        expr.for_each_reference(&mut |reference| match &reference.root {
            Root::Resource(key) => {
                self.resources.insert(key.clone());
            }
            Root::Variable(name) => {
                self.variables.insert(name.clone());
            }
            _ => {}
        });
        expr.for_each_builtin(&mut |builtin| {
            if let Builtin::Invoke(invoke) = builtin
                && let Some(provider) = &invoke.provider
            {
                self.resources.insert(provider.clone());
            }
        });
    }
}

/// Where something is in the files the user wrote. Offsets are bytes; line and column are 1-based.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub file: String,
    pub start: usize,
    pub end: usize,
    pub line: usize,
    pub column: usize,
}

/// An expression. Every node carries a span.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Null(Span),
    Bool(bool, Span),
    Number(f64, Span),
    String(String, Span),
    /// `"hello ${a.b}!"`.
    Interpolate(Vec<Part>, Span),
    /// A string that is exactly one `${...}`: it keeps the referenced value's type.
    Ref(Reference, Span),
    Array(Vec<Expr>, Span),
    Object(Vec<(String, Expr)>, Span),
    /// `fn::join` and friends.
    Builtin(Builtin, Span),
}

impl Expr {
    pub fn span(&self) -> &Span {
        match self {
            Expr::Null(span)
            | Expr::Bool(_, span)
            | Expr::Number(_, span)
            | Expr::String(_, span)
            | Expr::Interpolate(_, span)
            | Expr::Ref(_, span)
            | Expr::Array(_, span)
            | Expr::Object(_, span)
            | Expr::Builtin(_, span) => span,
        }
    }

    /// Calls `visit` for every reference inside this expression, builtin arguments included.
    pub fn for_each_reference(&self, visit: &mut dyn FnMut(&Reference)) {
        match self {
            Expr::Null(_) | Expr::Bool(..) | Expr::Number(..) | Expr::String(..) => {}
            Expr::Interpolate(parts, _) => {
                for part in parts {
                    if let Part::Ref(reference) = part {
                        visit(reference);
                    }
                }
            }
            Expr::Ref(reference, _) => visit(reference),
            Expr::Array(items, _) => items.iter().for_each(|item| item.for_each_reference(visit)),
            Expr::Object(entries, _) => entries
                .iter()
                .for_each(|(_, value)| value.for_each_reference(visit)),
            Expr::Builtin(builtin, _) => builtin
                .arguments()
                .into_iter()
                .for_each(|argument| argument.for_each_reference(visit)),
        }
    }

    /// Calls `visit` for every builtin call inside this expression, nested ones included.
    pub fn for_each_builtin(&self, visit: &mut dyn FnMut(&Builtin)) {
        match self {
            Expr::Array(items, _) => items.iter().for_each(|item| item.for_each_builtin(visit)),
            Expr::Object(entries, _) => entries
                .iter()
                .for_each(|(_, value)| value.for_each_builtin(visit)),
            Expr::Builtin(builtin, _) => {
                visit(builtin);
                builtin
                    .arguments()
                    .into_iter()
                    .for_each(|argument| argument.for_each_builtin(visit));
            }
            _ => {}
        }
    }
}

/// A piece of an interpolated string.
#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    Text(String),
    Ref(Reference),
}

/// A `${...}` reference.
#[derive(Clone, Debug, PartialEq)]
pub struct Reference {
    pub root: Root,
    pub path: Vec<Accessor>,
    /// The text between `${` and `}`.
    pub text: String,
    /// Where the `${...}` is (the whole string when it cannot be located more precisely).
    pub span: Span,
}

/// What a reference starts from.
#[derive(Clone, Debug, PartialEq)]
pub enum Root {
    /// A resource key.
    Resource(String),
    Variable(String),
    /// The normalized key: no `project:` prefix; `aws:region` keeps its namespace.
    Config(String),
    PulumiStack,
    PulumiProject,
    PulumiCwd,
    PulumiOrganization,
}

/// One step into a value: `a.b`, `a[0]`, `a["k"]`.
#[derive(Clone, Debug, PartialEq)]
pub enum Accessor {
    Property(String),
    Index(usize),
    Key(String),
}

/// A builtin function call, its arguments parsed per builtin.
#[derive(Clone, Debug, PartialEq)]
pub enum Builtin {
    Invoke(Invoke),
    /// `fn::join: [delimiter, items]`.
    Join {
        delimiter: Box<Expr>,
        items: Box<Expr>,
    },
    /// `fn::split: [delimiter, source]`.
    Split {
        delimiter: Box<Expr>,
        source: Box<Expr>,
    },
    /// `fn::select: [index, items]`.
    Select {
        index: Box<Expr>,
        items: Box<Expr>,
    },
    ToJson(Box<Expr>),
    ToBase64(Box<Expr>),
    FromBase64(Box<Expr>),
    Secret(Box<Expr>),
    ReadFile(Box<Expr>),
    StringAsset(Box<Expr>),
    FileAsset(Box<Expr>),
    RemoteAsset(Box<Expr>),
    FileArchive(Box<Expr>),
    RemoteArchive(Box<Expr>),
    /// `fn::assetArchive: {name: asset-or-archive, ...}`.
    AssetArchive(Vec<(String, Expr)>),
    /// `fn::stackReference: [stack, key]`.
    StackReference {
        stack: Box<Expr>,
        key: Box<Expr>,
    },
}

/// `fn::invoke: {function, arguments, options: {provider, version}, return}`.
#[derive(Clone, Debug, PartialEq)]
pub struct Invoke {
    /// The canonical function token.
    pub function: String,
    pub arguments: Option<Box<Expr>>,
    /// The resource key of an explicit provider.
    pub provider: Option<String>,
    pub version: Option<String>,
    /// `return:` picks one property of the result.
    pub return_: Option<String>,
}

impl Builtin {
    /// The builtin's name as written (`fn::join`).
    pub fn name(&self) -> &'static str {
        match self {
            Builtin::Invoke(_) => "fn::invoke",
            Builtin::Join { .. } => "fn::join",
            Builtin::Split { .. } => "fn::split",
            Builtin::Select { .. } => "fn::select",
            Builtin::ToJson(_) => "fn::toJSON",
            Builtin::ToBase64(_) => "fn::toBase64",
            Builtin::FromBase64(_) => "fn::fromBase64",
            Builtin::Secret(_) => "fn::secret",
            Builtin::ReadFile(_) => "fn::readFile",
            Builtin::StringAsset(_) => "fn::stringAsset",
            Builtin::FileAsset(_) => "fn::fileAsset",
            Builtin::RemoteAsset(_) => "fn::remoteAsset",
            Builtin::FileArchive(_) => "fn::fileArchive",
            Builtin::RemoteArchive(_) => "fn::remoteArchive",
            Builtin::AssetArchive(_) => "fn::assetArchive",
            Builtin::StackReference { .. } => "fn::stackReference",
        }
    }

    /// The argument expressions, in order.
    pub fn arguments(&self) -> Vec<&Expr> {
        match self {
            Builtin::Invoke(invoke) => invoke.arguments.iter().map(|boxed| &**boxed).collect(),
            Builtin::Join {
                delimiter: first,
                items: second,
            }
            | Builtin::Split {
                delimiter: first,
                source: second,
            }
            | Builtin::Select {
                index: first,
                items: second,
            }
            | Builtin::StackReference {
                stack: first,
                key: second,
            } => vec![first, second],
            Builtin::ToJson(argument)
            | Builtin::ToBase64(argument)
            | Builtin::FromBase64(argument)
            | Builtin::Secret(argument)
            | Builtin::ReadFile(argument)
            | Builtin::StringAsset(argument)
            | Builtin::FileAsset(argument)
            | Builtin::RemoteAsset(argument)
            | Builtin::FileArchive(argument)
            | Builtin::RemoteArchive(argument) => vec![argument],
            Builtin::AssetArchive(entries) => entries.iter().map(|(_, value)| value).collect(),
        }
    }
}

/// Every builtin name, for "did you mean" hints.
pub const BUILTIN_NAMES: &[&str] = &[
    "fn::invoke",
    "fn::join",
    "fn::split",
    "fn::select",
    "fn::toJSON",
    "fn::toBase64",
    "fn::fromBase64",
    "fn::secret",
    "fn::readFile",
    "fn::stringAsset",
    "fn::fileAsset",
    "fn::remoteAsset",
    "fn::fileArchive",
    "fn::remoteArchive",
    "fn::assetArchive",
    "fn::stackReference",
];
