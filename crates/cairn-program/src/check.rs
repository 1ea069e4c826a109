//! Spanned YAML → checked `Program`: the sections of a Pulumi YAML program, resource types
//! resolved through the `SchemaSource`, properties checked against schemas, every `${...}`
//! resolved to a resource, variable or config value, builtins parsed, and dependency cycles found.
//!
//! Architecture invariant: checking never stops at the first problem; every problem becomes a
//! diagnostic and the walk goes on with a placeholder. It reads no files (see `lib.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use cairn_core::schema::PropertyType;
use cairn_core::{ResourceSchema, TypeToken, Value};

use crate::SchemaSource;
use crate::ast::{
    Accessor, BUILTIN_NAMES, Builtin, ConfigDecl, ConfigType, CustomTimeoutsDecl, Deps, Expr,
    GetDecl, Invoke, Part, Program, Reference, ResourceDecl, ResourceOptions, Root,
    STACK_REFERENCE_TOKEN, Span, Variable, is_provider_token,
};
use crate::config::normalize_config_key;
use crate::diagnostic::{Diagnostics, SourceFile, did_you_mean, suggest};
use crate::expr::{Piece, parse_reference, split_interpolation};
use crate::yaml::{Key, Node, NodeKind};

/// Top-level keys of a program.
const PROGRAM_KEYS: &[&str] = &[
    "name",
    "runtime",
    "description",
    "config",
    "configuration",
    "variables",
    "resources",
    "outputs",
    "main",
];

/// Keys of a Pulumi project file that Cairn accepts and does not use.
const IGNORED_PROJECT_KEYS: &[&str] = &[
    "stackConfigDir",
    "backend",
    "options",
    "template",
    "plugins",
    "author",
    "website",
    "license",
    "packages",
];

const RESOURCE_KEYS: &[&str] = &[
    "type",
    "properties",
    "options",
    "get",
    "name",
    "defaultProvider",
];

const OPTION_KEYS: &[&str] = &[
    "provider",
    "providers",
    "dependsOn",
    "parent",
    "protect",
    "deleteBeforeReplace",
    "retainOnDelete",
    "ignoreChanges",
    "replaceOnChanges",
    "aliases",
    "import",
    "customTimeouts",
    "version",
    "additionalSecretOutputs",
    "pluginDownloadURL",
    "deletedWith",
];

/// Keys of Pulumi's alias object.
const ALIAS_KEYS: &[&str] = &["name", "type", "parent", "noParent", "stack", "project"];

const CONFIG_DECL_KEYS: &[&str] = &["type", "default", "secret", "description", "items", "value"];

/// One parsed file of the program: the project file, and `Main.yaml` when `main:` is used.
pub(crate) struct ParsedFile<'a> {
    pub source: &'a SourceFile,
    pub root: &'a Node,
}

/// Checks the parsed files (the project file first) and builds the program.
/// A provider resource with `defaultProvider: true` manages every resource of its package that
/// names no provider, so those resources wait for it.
fn add_default_provider_deps(resources: &mut [ResourceDecl]) {
    let defaults: Vec<(String, String)> = resources
        .iter()
        .filter(|resource| resource.options.default_provider)
        .filter_map(|resource| {
            let package = resource
                .type_token
                .strip_prefix("pulumi:providers:")
                .or_else(|| resource.type_token.strip_prefix("cairn:providers:"))?;
            Some((package.to_owned(), resource.key.clone()))
        })
        .collect();
    if defaults.is_empty() {
        return;
    }
    for resource in resources.iter_mut() {
        if resource.options.provider.is_some() || is_provider_token(&resource.type_token) {
            continue;
        }
        let package = cairn_core::type_token::package_of(&resource.type_token);
        if let Some((_, key)) = defaults.iter().find(|(name, _)| name == package) {
            resource.deps.resources.insert(key.clone());
        }
    }
}

/// `protect` and `retainOnDelete` not set on a resource are its parent's, as in Pulumi (the
/// conformance test `l2-resource-parent-inheritance`). Bounded by the number of resources, so a
/// parent cycle (reported elsewhere) cannot loop.
fn inherit_protect_and_retain(resources: &mut [ResourceDecl], sections: &Sections<'_>) {
    /// The two options as the resource itself sets them (lowering keeps only the value).
    struct Explicit {
        protect: Option<bool>,
        retain_on_delete: Option<bool>,
    }
    let mut explicit: BTreeMap<&str, Explicit> = BTreeMap::new();
    for (_, entries) in &sections.resources {
        for (key, node) in *entries {
            let options = node
                .as_mapping()
                .and_then(|fields| fields.iter().find(|(field, _)| field.name == "options"))
                .and_then(|(_, options)| options.as_mapping())
                .unwrap_or_default();
            let set = |name: &str| {
                options
                    .iter()
                    .find(|(field, _)| field.name == name)
                    .and_then(|(_, value)| match value.kind {
                        NodeKind::Bool(flag) => Some(flag),
                        _ => None,
                    })
            };
            explicit.insert(
                &key.name,
                Explicit {
                    protect: set("protect"),
                    retain_on_delete: set("retainOnDelete"),
                },
            );
        }
    }
    let parents: BTreeMap<String, String> = resources
        .iter()
        .filter_map(|resource| Some((resource.key.clone(), resource.options.parent.clone()?)))
        .collect();
    let effective = |key: &str, pick: fn(&Explicit) -> Option<bool>| {
        let mut current = key;
        for _ in 0..=parents.len() {
            if let Some(flag) = explicit.get(current).and_then(pick) {
                return flag;
            }
            match parents.get(current) {
                Some(parent) => current = parent,
                None => break,
            }
        }
        false
    };
    for resource in resources.iter_mut() {
        resource.options.protect = effective(&resource.key, |flags| flags.protect);
        resource.options.retain_on_delete =
            effective(&resource.key, |flags| flags.retain_on_delete);
    }
}

pub(crate) fn check_program(
    files: &[ParsedFile<'_>],
    schemas: &dyn SchemaSource,
    stack_config_keys: &[String],
    source_dir: PathBuf,
    diagnostics: &mut Diagnostics,
) -> Program {
    let sections = collect_sections(files, diagnostics);
    let project_file = files.first().map(|file| file.source);

    let name = match &sections.name {
        Some(node) => match node.as_str() {
            Some(name) if !name.is_empty() => name.to_owned(),
            _ => {
                diagnostics.error(
                    &node.span,
                    "`name` must be a non-empty string",
                    Some("write the project name, like `name: my-project`".to_owned()),
                );
                String::new()
            }
        },
        None => {
            if let Some(source) = project_file {
                diagnostics.error(
                    &source.span(0, 0),
                    "missing `name`",
                    Some(
                        "add the project name at the top level, like `name: my-project`".to_owned(),
                    ),
                );
            }
            String::new()
        }
    };
    let runtime = check_runtime(sections.runtime, project_file, diagnostics);
    let description = sections
        .description
        .and_then(|node| node.as_str())
        .map(str::to_owned);

    let config = sections
        .config
        .iter()
        .flat_map(|(_, node)| lower_config_section(node, diagnostics))
        .collect::<Vec<_>>();

    let packages: BTreeSet<String> = schemas
        .resource_tokens()
        .iter()
        .map(|token| cairn_core::type_token::package_of(token).to_owned())
        .collect();
    let mut scope = build_scope(&name, &config, &sections, schemas, &packages, diagnostics);
    // Pulumi YAML reads any key of the stack's config, declared or not. Resources and variables
    // are resolved first, so a stack key never shadows them.
    scope.config.extend(
        stack_config_keys
            .iter()
            .map(|key| normalize_config_key(&name, key)),
    );

    let mut resources = Vec::new();
    for (source, entries) in &sections.resources {
        for (key, node) in *entries {
            let mut lowerer = Lowerer {
                source,
                scope: &scope,
                schemas,
                diagnostics,
                depth: 0,
            };
            if let Some(resource) = lowerer.resource(key, node) {
                resources.push(resource);
            }
        }
    }
    add_default_provider_deps(&mut resources);
    inherit_protect_and_retain(&mut resources, &sections);
    let mut variables = Vec::new();
    for (source, entries) in &sections.variables {
        for (key, node) in *entries {
            let mut lowerer = Lowerer {
                source,
                scope: &scope,
                schemas,
                diagnostics,
                depth: 0,
            };
            let value = lowerer.expr(node);
            let mut deps = Deps::default();
            deps.add_expr(&value);
            variables.push(Variable {
                name: key.name.clone(),
                value,
                deps,
            });
        }
    }
    let mut outputs = Vec::new();
    for (source, entries) in &sections.outputs {
        for (key, node) in *entries {
            let mut lowerer = Lowerer {
                source,
                scope: &scope,
                schemas,
                diagnostics,
                depth: 0,
            };
            outputs.push((key.name.clone(), lowerer.expr(node)));
        }
    }

    report_cycles(&resources, &variables, diagnostics);

    Program {
        name,
        description,
        runtime,
        config,
        variables,
        resources,
        outputs,
        source_dir,
        sources: diagnostics.sources.clone(),
    }
}

/// The top-level sections, each with the file it came from.
#[derive(Default)]
struct Sections<'a> {
    name: Option<&'a Node>,
    runtime: Option<&'a Node>,
    description: Option<&'a Node>,
    config: Vec<(&'a SourceFile, &'a Node)>,
    variables: Vec<(&'a SourceFile, &'a [(Key, Node)])>,
    resources: Vec<(&'a SourceFile, &'a [(Key, Node)])>,
    outputs: Vec<(&'a SourceFile, &'a [(Key, Node)])>,
}

fn collect_sections<'a>(files: &[ParsedFile<'a>], diagnostics: &mut Diagnostics) -> Sections<'a> {
    let mut sections = Sections::default();
    for file in files {
        let Some(entries) = file.root.as_mapping() else {
            diagnostics.error(
                &file.root.span,
                format!(
                    "expected a mapping at the top level, found a {}",
                    file.root.kind_name()
                ),
                Some("a program is a mapping with `name`, `runtime`, `resources`, ...".to_owned()),
            );
            continue;
        };
        for (key, node) in entries {
            match key.name.as_str() {
                "name" => sections.name = sections.name.or(Some(node)),
                "runtime" => sections.runtime = sections.runtime.or(Some(node)),
                "description" => sections.description = sections.description.or(Some(node)),
                "config" | "configuration" => sections.config.push((file.source, node)),
                "variables" | "resources" | "outputs" => {
                    let Some(section_entries) = mapping_or_error(node, &key.name, diagnostics)
                    else {
                        continue;
                    };
                    let list = match key.name.as_str() {
                        "variables" => &mut sections.variables,
                        "resources" => &mut sections.resources,
                        _ => &mut sections.outputs,
                    };
                    list.push((file.source, section_entries));
                }
                // `main:` is followed by the loader before checking starts.
                "main" => {}
                other if IGNORED_PROJECT_KEYS.contains(&other) => {}
                other => diagnostics.error(
                    &key.span,
                    format!("unknown top-level key `{other}`"),
                    suggest(other, PROGRAM_KEYS.iter().copied(), "top-level keys are"),
                ),
            }
        }
    }
    sections
}

fn mapping_or_error<'a>(
    node: &'a Node,
    section: &str,
    diagnostics: &mut Diagnostics,
) -> Option<&'a [(Key, Node)]> {
    match &node.kind {
        NodeKind::Mapping(entries) => Some(entries),
        // An empty section (`outputs:` with nothing under it) is fine.
        NodeKind::Null => Some(&[]),
        _ => {
            diagnostics.error(
                &node.span,
                format!(
                    "`{section}` must be a mapping, found a {}",
                    node.kind_name()
                ),
                Some(format!(
                    "write `{section}:` followed by indented `name: value` entries"
                )),
            );
            None
        }
    }
}

fn check_runtime(
    runtime: Option<&Node>,
    project_file: Option<&SourceFile>,
    diagnostics: &mut Diagnostics,
) -> String {
    let help = Some("Cairn runs Pulumi YAML programs: write `runtime: yaml`".to_owned());
    let Some(node) = runtime else {
        if let Some(source) = project_file {
            diagnostics.error(&source.span(0, 0), "missing `runtime`", help);
        }
        return String::new();
    };
    let (name, span) = match &node.kind {
        NodeKind::String(name) => (Some(name.as_str()), &node.span),
        NodeKind::Mapping(entries) => match entries.iter().find(|(key, _)| key.name == "name") {
            Some((_, name_node)) => (name_node.as_str(), &name_node.span),
            None => (None, &node.span),
        },
        _ => (None, &node.span),
    };
    match name {
        Some("yaml") => "yaml".to_owned(),
        Some(other) => {
            diagnostics.error(span, format!("unsupported runtime `{other}`"), help);
            other.to_owned()
        }
        None => {
            diagnostics.error(span, "`runtime` must be `yaml` or `{name: yaml}`", help);
            String::new()
        }
    }
}

fn lower_config_section(node: &Node, diagnostics: &mut Diagnostics) -> Vec<ConfigDecl> {
    let Some(entries) = mapping_or_error(node, "config", diagnostics) else {
        return Vec::new();
    };
    entries
        .iter()
        .map(|(key, value)| lower_config_decl(key, value, diagnostics))
        .collect()
}

fn lower_config_decl(key: &Key, node: &Node, diagnostics: &mut Diagnostics) -> ConfigDecl {
    let mut decl = ConfigDecl {
        key: key.name.clone(),
        type_: None,
        default: None,
        secret: false,
        span: key.span.clone(),
    };
    let Some(entries) = node.as_mapping() else {
        // A plain value (`config: {foo: bar}`) is a default.
        decl.default = Some(literal_value(node));
        return decl;
    };
    let mut items_type = None;
    let mut type_node = None;
    for (field, value) in entries {
        match field.name.as_str() {
            "type" => type_node = Some(value),
            "default" | "value" => decl.default = Some(literal_value(value)),
            "secret" => match value.kind {
                NodeKind::Bool(flag) => decl.secret = flag,
                _ => diagnostics.error(&value.span, "`secret` must be `true` or `false`", None),
            },
            "description" => {}
            "items" => {
                items_type = value
                    .as_mapping()
                    .and_then(|item| item.iter().find(|(item_key, _)| item_key.name == "type"))
                    .map(|(_, item_type)| item_type);
                if items_type.is_none() {
                    diagnostics.error(
                        &value.span,
                        "`items` must be a mapping with a `type`",
                        Some("write `items: {type: string}`".to_owned()),
                    );
                }
            }
            other => diagnostics.error(
                &field.span,
                format!(
                    "unknown key `{other}` in the declaration of config `{}`",
                    key.name
                ),
                suggest(other, CONFIG_DECL_KEYS.iter().copied(), "known keys are"),
            ),
        }
    }
    if let Some(type_node) = type_node {
        decl.type_ = parse_config_type_node(type_node, items_type, diagnostics);
    }
    let default_node = entries
        .iter()
        .find(|(field, _)| field.name == "default" || field.name == "value")
        .map(|(_, value)| value);
    match (&decl.type_, &decl.default, default_node) {
        // A default is written in the program, so unlike a stack file's strings it must already
        // have the declared type, as in Pulumi YAML.
        (Some(type_), Some(default), Some(default_node)) if !has_config_type(default, type_) => {
            diagnostics.error(
                &default_node.span,
                format!(
                    "the default of config `{}` is {}, but its type is `{}`",
                    key.name,
                    article(yaml_kind_name(default)),
                    type_.display_name()
                ),
                Some(format!(
                    "write a default of type `{}`, or change `type`",
                    type_.display_name()
                )),
            );
        }
        // An unknown `type` was reported where it is written.
        (None, None, _) if type_node.is_none() => diagnostics.error(
            &key.span,
            format!(
                "cannot infer the type of config `{}`: it has neither `type` nor `default`",
                key.name
            ),
            Some("add a `type` (`string`, `integer`, `boolean`, `number`, `array` or `object`) or a `default`".to_owned()),
        ),
        _ => {}
    }
    decl
}

/// Whether a literal default has the declared type (an integer is also a number).
fn has_config_type(value: &Value, type_: &ConfigType) -> bool {
    match (type_, value) {
        (ConfigType::String, Value::String(_))
        | (ConfigType::Number, Value::Number(_))
        | (ConfigType::Boolean, Value::Bool(_))
        | (ConfigType::Object, Value::Object(_)) => true,
        (ConfigType::Integer, Value::Number(number)) => number.fract() == 0.0,
        (ConfigType::List(item_type), Value::Array(items)) => {
            items.iter().all(|item| has_config_type(item, item_type))
        }
        _ => false,
    }
}

/// A literal's kind as the YAML user wrote it, for messages.
fn yaml_kind_name(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "list",
        Value::Object(_) => "mapping",
        other => other.kind_name(),
    }
}

fn parse_config_type_node(
    type_node: &Node,
    items_type: Option<&Node>,
    diagnostics: &mut Diagnostics,
) -> Option<ConfigType> {
    let known = "known types are `string`, `integer`, `boolean`, `number`, `array` (with `items`), `object` and `List<String>`";
    let Some(type_name) = type_node.as_str() else {
        diagnostics.error(
            &type_node.span,
            "config `type` must be a string",
            Some(known.to_owned()),
        );
        return None;
    };
    let items = items_type.and_then(|node| parse_config_type_node(node, None, diagnostics));
    match parse_config_type(type_name, items) {
        Some(type_) => Some(type_),
        None => {
            let help = did_you_mean(
                type_name,
                ["string", "integer", "boolean", "number", "array", "object"],
            )
            .unwrap_or_else(|| known.to_owned());
            diagnostics.error(
                &type_node.span,
                format!("unknown config type `{type_name}`"),
                Some(help),
            );
            None
        }
    }
}

/// Parses a config type name: `string`, `Integer`, `int`, `List<Number>`, `array` (with items).
pub(crate) fn parse_config_type(name: &str, items: Option<ConfigType>) -> Option<ConfigType> {
    let lowered = name.trim().to_lowercase();
    if let Some(inner) = lowered
        .strip_prefix("list<")
        .and_then(|rest| rest.strip_suffix('>'))
    {
        return parse_config_type(inner, None).map(|item| ConfigType::List(Box::new(item)));
    }
    match lowered.as_str() {
        "string" => Some(ConfigType::String),
        "integer" | "int" => Some(ConfigType::Integer),
        "boolean" | "bool" => Some(ConfigType::Boolean),
        "number" => Some(ConfigType::Number),
        "object" => Some(ConfigType::Object),
        "array" | "list" => Some(ConfigType::List(Box::new(
            items.unwrap_or(ConfigType::String),
        ))),
        _ => None,
    }
}

/// A YAML node taken literally (config defaults).
fn literal_value(node: &Node) -> Value {
    match &node.kind {
        NodeKind::Null => Value::Null,
        NodeKind::Bool(flag) => Value::Bool(*flag),
        NodeKind::Number(number) => Value::Number(*number),
        NodeKind::String(text) => Value::String(text.clone()),
        NodeKind::Sequence(items) => Value::Array(items.iter().map(literal_value).collect()),
        NodeKind::Mapping(entries) => Value::Object(
            entries
                .iter()
                .map(|(key, value)| (key.name.clone(), literal_value(value)))
                .collect(),
        ),
    }
}

/// What names exist, known before any expression is lowered.
struct Scope {
    project: String,
    /// Resource key → canonical type token (None when the type is unknown) and schema.
    resources: BTreeMap<String, (Option<String>, Option<ResourceSchema>)>,
    variables: BTreeSet<String>,
    /// Normalized config keys.
    config: BTreeSet<String>,
    /// Packages that have resources, for provider config like `aws:region`.
    packages: BTreeSet<String>,
}

impl Scope {
    fn names(&self) -> Vec<&str> {
        self.resources
            .keys()
            .chain(self.variables.iter())
            .chain(self.config.iter())
            .map(String::as_str)
            .collect()
    }
}

fn build_scope(
    project: &str,
    config: &[ConfigDecl],
    sections: &Sections<'_>,
    schemas: &dyn SchemaSource,
    packages: &BTreeSet<String>,
    diagnostics: &mut Diagnostics,
) -> Scope {
    let mut scope = Scope {
        project: project.to_owned(),
        resources: BTreeMap::new(),
        variables: BTreeSet::new(),
        config: BTreeSet::new(),
        packages: packages.clone(),
    };
    let mut seen: BTreeMap<String, &'static str> = BTreeMap::new();
    let mut check_duplicate = |name: &str,
                               kind: &'static str,
                               span: &Span,
                               diagnostics: &mut Diagnostics| {
        if let Some(previous) = seen.get(name) {
            diagnostics.error(
                span,
                format!("`{name}` is already defined as a {previous}"),
                Some("resources, variables and config values share one namespace: rename one of them".to_owned()),
            );
            false
        } else {
            seen.insert(name.to_owned(), kind);
            true
        }
    };
    for decl in config {
        let normalized = normalize_config_key(project, &decl.key);
        if check_duplicate(&normalized, "config value", &decl.span, diagnostics) {
            scope.config.insert(normalized);
        }
    }
    for (_, entries) in &sections.resources {
        for (key, node) in *entries {
            if !check_duplicate(&key.name, "resource", &key.span, diagnostics) {
                continue;
            }
            let resolved = resolve_resource_type(key, node, schemas, packages, diagnostics);
            scope.resources.insert(key.name.clone(), resolved);
        }
    }
    for (_, entries) in &sections.variables {
        for (key, _) in *entries {
            if check_duplicate(&key.name, "variable", &key.span, diagnostics) {
                scope.variables.insert(key.name.clone());
            }
        }
    }
    scope
}

/// Resolves a resource's `type:`; errors are reported here, once per resource.
fn resolve_resource_type(
    key: &Key,
    node: &Node,
    schemas: &dyn SchemaSource,
    packages: &BTreeSet<String>,
    diagnostics: &mut Diagnostics,
) -> (Option<String>, Option<ResourceSchema>) {
    let Some(entries) = node.as_mapping() else {
        diagnostics.error(
            &node.span,
            format!(
                "resource `{}` must be a mapping, found a {}",
                key.name,
                node.kind_name()
            ),
            Some("write `type:` and `properties:` under the resource's name".to_owned()),
        );
        return (None, None);
    };
    let Some((_, type_node)) = entries.iter().find(|(field, _)| field.name == "type") else {
        diagnostics.error(
            &key.span,
            format!("resource `{}` has no `type`", key.name),
            Some("add a type token, like `type: random:RandomPet`".to_owned()),
        );
        return (None, None);
    };
    let Some(spelling) = type_node.as_str() else {
        diagnostics.error(
            &type_node.span,
            "`type` must be a string",
            Some("write a type token, like `type: random:RandomPet`".to_owned()),
        );
        return (None, None);
    };
    if spelling == STACK_REFERENCE_TOKEN {
        return (Some(spelling.to_owned()), None);
    }
    if is_provider_token(spelling) {
        let package = spelling.rsplit(':').next().unwrap_or_default();
        if !packages.contains(package) {
            diagnostics.error(
                &type_node.span,
                format!("unknown provider package `{package}`"),
                suggest(
                    package,
                    packages.iter().map(String::as_str),
                    "available packages are",
                ),
            );
            return (None, None);
        }
        return (Some(spelling.to_owned()), None);
    }
    if let Some((canonical, schema)) = schemas.resolve_resource(spelling) {
        return (Some(canonical), Some(schema));
    }
    let tokens = schemas.resource_tokens();
    let spellings: Vec<String> = tokens
        .iter()
        .flat_map(|token| TypeToken::new(token.clone()).spellings())
        .collect();
    let help = did_you_mean(spelling, spellings.iter().map(String::as_str)).or_else(|| {
        suggest(
            spelling,
            tokens.iter().map(String::as_str),
            "available types are",
        )
    });
    diagnostics.error(
        &type_node.span,
        format!("unknown resource type `{spelling}`"),
        help,
    );
    (None, None)
}

/// Lowers YAML nodes of one file into expressions, resolving names against the scope.
struct Lowerer<'a> {
    source: &'a SourceFile,
    scope: &'a Scope,
    schemas: &'a dyn SchemaSource,
    diagnostics: &'a mut Diagnostics,
    /// How many lists and mappings enclose the node being lowered (`fn::` calls aside).
    depth: usize,
}

impl Lowerer<'_> {
    fn error(&mut self, span: &Span, message: impl Into<String>, help: Option<String>) {
        self.diagnostics.error(span, message, help);
    }

    /// The span of bytes `start..end` of a string node's value, or the node's span when the
    /// value is not a verbatim copy of the source.
    fn sub_span(&self, node: &Node, start: usize, end: usize) -> Span {
        match node.verbatim_start {
            Some(base) => self.source.span(base + start, base + end),
            None => node.span.clone(),
        }
    }

    fn expr(&mut self, node: &Node) -> Expr {
        let span = node.span.clone();
        let is_call = node
            .as_mapping()
            .is_some_and(|entries| entries.iter().any(|(key, _)| key.name.starts_with("fn::")));
        let is_container = matches!(node.kind, NodeKind::Sequence(_) | NodeKind::Mapping(_));
        if is_container && !is_call {
            // A value the state could not hold is refused here, where the file can be pointed at.
            if self.depth >= cairn_core::MAX_VALUE_DEPTH {
                self.error(
                    &span,
                    format!(
                        "this value nests more than {} levels deep",
                        cairn_core::MAX_VALUE_DEPTH
                    ),
                    Some("flatten the data, or pass it as a string (`fn::toJSON`)".to_owned()),
                );
                return Expr::Null(span);
            }
            self.depth += 1;
            let expr = self.expr_inner(node);
            self.depth -= 1;
            return expr;
        }
        self.expr_inner(node)
    }

    fn expr_inner(&mut self, node: &Node) -> Expr {
        let span = node.span.clone();
        match &node.kind {
            NodeKind::Null => Expr::Null(span),
            NodeKind::Bool(flag) => Expr::Bool(*flag, span),
            NodeKind::Number(number) => Expr::Number(*number, span),
            NodeKind::String(text) => self.string_expr(node, text),
            NodeKind::Sequence(items) => {
                Expr::Array(items.iter().map(|item| self.expr(item)).collect(), span)
            }
            NodeKind::Mapping(entries) => {
                if let Some((key, _)) = entries.iter().find(|(key, _)| key.name.starts_with("fn::"))
                {
                    if entries.len() > 1 {
                        self.error(
                            &key.span,
                            format!("`{}` must be the only key of its mapping", key.name),
                            Some("move the other keys to a separate mapping".to_owned()),
                        );
                        return Expr::Null(span);
                    }
                    let (key, argument) = &entries[0];
                    return match self.builtin(key, argument) {
                        Some(builtin) => Expr::Builtin(builtin, span),
                        None => Expr::Null(span),
                    };
                }
                Expr::Object(
                    entries
                        .iter()
                        .map(|(key, value)| (key.name.clone(), self.expr(value)))
                        .collect(),
                    span,
                )
            }
        }
    }

    fn string_expr(&mut self, node: &Node, text: &str) -> Expr {
        let span = node.span.clone();
        let pieces = match split_interpolation(text) {
            Ok(pieces) => pieces,
            Err(error) => {
                let error_span = self.sub_span(node, error.start, error.end);
                self.error(&error_span, error.message, error.help);
                return Expr::Null(span);
            }
        };
        let mut parts = Vec::with_capacity(pieces.len());
        for piece in pieces {
            match piece {
                Piece::Text(text) => parts.push(Part::Text(text)),
                Piece::Reference { inner, start, end } => {
                    let reference_span = self.sub_span(node, start, end);
                    match self.reference(node, &inner, start, reference_span) {
                        Some(reference) => parts.push(Part::Ref(reference)),
                        None => return Expr::Null(span),
                    }
                }
            }
        }
        match parts.as_slice() {
            [] => Expr::String(String::new(), span),
            [Part::Text(text)] => Expr::String(text.clone(), span),
            [Part::Ref(reference)] => Expr::Ref(reference.clone(), span),
            _ => Expr::Interpolate(parts, span),
        }
    }

    /// Parses and resolves the reference `${inner}` found at byte `start` of `node`'s value.
    fn reference(
        &mut self,
        node: &Node,
        inner: &str,
        start: usize,
        span: Span,
    ) -> Option<Reference> {
        // The text between `${` and `}` starts two bytes after the `$`.
        let inner_start = start + 2;
        let parsed = match parse_reference(inner) {
            Ok(parsed) => parsed,
            Err(error) => {
                let error_span =
                    self.sub_span(node, inner_start + error.start, inner_start + error.end);
                self.error(&error_span, error.message, error.help);
                return None;
            }
        };
        let root_span = self.sub_span(node, inner_start, inner_start + parsed.root.len());
        let mut path = parsed.path;
        let root = if parsed.root == "pulumi" {
            let root = match path.first() {
                Some(Accessor::Property(field)) if path.len() == 1 => match field.as_str() {
                    "stack" => Some(Root::PulumiStack),
                    "project" => Some(Root::PulumiProject),
                    "cwd" => Some(Root::PulumiCwd),
                    "organization" => Some(Root::PulumiOrganization),
                    _ => None,
                },
                _ => None,
            };
            let Some(root) = root else {
                self.error(
                    &span,
                    format!("unknown `${{{inner}}}`"),
                    Some("use `${pulumi.stack}`, `${pulumi.project}`, `${pulumi.cwd}` or `${pulumi.organization}`".to_owned()),
                );
                return None;
            };
            path.clear();
            root
        } else if self.scope.resources.contains_key(&parsed.root) {
            self.check_resource_property(&parsed.root, &path, &span);
            Root::Resource(parsed.root.clone())
        } else if self.scope.variables.contains(&parsed.root) {
            Root::Variable(parsed.root.clone())
        } else {
            let normalized = normalize_config_key(&self.scope.project, &parsed.root);
            let namespace = normalized.split_once(':').map(|(namespace, _)| namespace);
            if self.scope.config.contains(&normalized)
                || namespace.is_some_and(|namespace| self.scope.packages.contains(namespace))
            {
                Root::Config(normalized)
            } else {
                let names = self.scope.names();
                self.error(
                    &root_span,
                    format!("unknown name `{}` in `${{{inner}}}`", parsed.root),
                    suggest(&parsed.root, names.iter().copied(), "defined names are").or_else(
                        || {
                            Some(
                                "define it under `resources:`, `variables:` or `config:`"
                                    .to_owned(),
                            )
                        },
                    ),
                );
                return None;
            }
        };
        Some(Reference {
            root,
            path,
            text: inner.to_owned(),
            span,
        })
    }

    /// `${res.prop}`: the property must exist on the resource's schema.
    fn check_resource_property(&mut self, key: &str, path: &[Accessor], span: &Span) {
        let Some(Accessor::Property(property)) = path.first() else {
            return;
        };
        let Some((Some(token), Some(schema))) = self.scope.resources.get(key) else {
            return;
        };
        if schema.accepts_any_input
            || property == "id"
            || property == "urn"
            || schema.outputs.contains_key(property)
            || schema.inputs.contains_key(property)
        {
            return;
        }
        let known: BTreeSet<&str> = schema
            .outputs
            .keys()
            .chain(schema.inputs.keys())
            .map(String::as_str)
            .chain(["id", "urn"])
            .collect();
        self.error(
            span,
            format!("resource `{key}` (`{token}`) has no property `{property}`"),
            suggest(property, known.iter().copied(), "its properties are"),
        );
    }

    fn builtin(&mut self, key: &Key, argument: &Node) -> Option<Builtin> {
        let name = key.name.as_str();
        let pair = |lowerer: &mut Lowerer<'_>, shape: &str| -> Option<(Box<Expr>, Box<Expr>)> {
            match &argument.kind {
                NodeKind::Sequence(items) if items.len() == 2 => Some((
                    Box::new(lowerer.expr(&items[0])),
                    Box::new(lowerer.expr(&items[1])),
                )),
                _ => {
                    lowerer.error(
                        &argument.span,
                        format!("`{name}` takes a list of two items: `[{shape}]`"),
                        Some(format!("write `{name}: [{shape}]`")),
                    );
                    None
                }
            }
        };
        let builtin = match name {
            "fn::invoke" => Builtin::Invoke(self.invoke(argument)?),
            "fn::join" => {
                let (delimiter, items) = pair(self, "delimiter, list")?;
                self.expect_string_arg(name, &delimiter);
                Builtin::Join { delimiter, items }
            }
            "fn::split" => {
                let (delimiter, source) = pair(self, "delimiter, string")?;
                self.expect_string_arg(name, &delimiter);
                self.expect_string_arg(name, &source);
                Builtin::Split { delimiter, source }
            }
            "fn::select" => {
                let (index, items) = pair(self, "index, list")?;
                if let Expr::Number(number, span) = &*index
                    && (number.fract() != 0.0 || *number < 0.0)
                {
                    self.error(
                        span,
                        format!(
                            "the index of `fn::select` must be a whole number, found `{number}`"
                        ),
                        None,
                    );
                }
                if !matches!(
                    &*index,
                    Expr::Number(..) | Expr::Ref(..) | Expr::Builtin(..)
                ) {
                    self.error(
                        index.span(),
                        "the index of `fn::select` must be a number",
                        Some("write `fn::select: [0, ${list}]`".to_owned()),
                    );
                }
                Builtin::Select { index, items }
            }
            "fn::stackReference" => {
                let (stack, key) = pair(self, "stack, output")?;
                self.expect_string_arg(name, &stack);
                self.expect_string_arg(name, &key);
                Builtin::StackReference { stack, key }
            }
            "fn::assetArchive" => {
                let Some(entries) = argument.as_mapping() else {
                    self.error(
                        &argument.span,
                        "`fn::assetArchive` takes a mapping of names to assets or archives",
                        Some(
                            "write `fn::assetArchive: {file.txt: {fn::stringAsset: hello}}`"
                                .to_owned(),
                        ),
                    );
                    return None;
                };
                Builtin::AssetArchive(
                    entries
                        .iter()
                        .map(|(entry_key, value)| (entry_key.name.clone(), self.expr(value)))
                        .collect(),
                )
            }
            "fn::toJSON" | "fn::secret" => {
                let value = Box::new(self.expr(argument));
                if name == "fn::toJSON" {
                    Builtin::ToJson(value)
                } else {
                    Builtin::Secret(value)
                }
            }
            "fn::toBase64" | "fn::fromBase64" | "fn::readFile" | "fn::stringAsset"
            | "fn::fileAsset" | "fn::remoteAsset" | "fn::fileArchive" | "fn::remoteArchive" => {
                let value = Box::new(self.expr(argument));
                self.expect_string_arg(name, &value);
                match name {
                    "fn::toBase64" => Builtin::ToBase64(value),
                    "fn::fromBase64" => Builtin::FromBase64(value),
                    "fn::readFile" => Builtin::ReadFile(value),
                    "fn::stringAsset" => Builtin::StringAsset(value),
                    "fn::fileAsset" => Builtin::FileAsset(value),
                    "fn::remoteAsset" => Builtin::RemoteAsset(value),
                    "fn::fileArchive" => Builtin::FileArchive(value),
                    _ => Builtin::RemoteArchive(value),
                }
            }
            unknown => {
                self.error(
                    &key.span,
                    format!("unknown builtin `{unknown}`"),
                    suggest(unknown, BUILTIN_NAMES.iter().copied(), "builtins are"),
                );
                return None;
            }
        };
        Some(builtin)
    }

    /// A literal argument that cannot be a string is an error; references are checked at run time.
    fn expect_string_arg(&mut self, builtin: &str, argument: &Expr) {
        let found = match argument {
            Expr::Bool(..) => "boolean",
            Expr::Number(..) => "number",
            Expr::Array(..) => "list",
            Expr::Object(..) => "mapping",
            _ => return,
        };
        self.error(
            argument.span(),
            format!("`{builtin}` expects a string here, found a {found}"),
            None,
        );
    }

    fn invoke(&mut self, argument: &Node) -> Option<Invoke> {
        let shape = "write `fn::invoke: {function: <token>, arguments: {...}, return: <property>}`";
        let Some(entries) = argument.as_mapping() else {
            self.error(
                &argument.span,
                "`fn::invoke` takes a mapping",
                Some(shape.to_owned()),
            );
            return None;
        };
        let mut invoke = Invoke {
            function: String::new(),
            arguments: None,
            provider: None,
            version: None,
            return_: None,
        };
        let mut function_seen = false;
        let mut well_formed = true;
        for (field, value) in entries {
            match field.name.as_str() {
                "function" => {
                    function_seen = true;
                    let Some(spelling) = value.as_str() else {
                        self.error(
                            &value.span,
                            "`function` must be a function token",
                            Some(shape.to_owned()),
                        );
                        well_formed = false;
                        continue;
                    };
                    match self.schemas.resolve_function(spelling) {
                        Some((canonical, _)) => invoke.function = canonical,
                        None => {
                            self.error(
                                &value.span,
                                format!("unknown function `{spelling}`"),
                                Some(
                                    "check the function token against the provider's schema"
                                        .to_owned(),
                                ),
                            );
                            well_formed = false;
                        }
                    }
                }
                "arguments" => invoke.arguments = Some(Box::new(self.expr(value))),
                "return" => match value.as_str() {
                    Some(property) => invoke.return_ = Some(property.to_owned()),
                    None => self.error(&value.span, "`return` must be a property name", None),
                },
                "options" => {
                    let Some(options) = value.as_mapping() else {
                        self.error(&value.span, "`options` must be a mapping", None);
                        continue;
                    };
                    for (option, option_value) in options {
                        match option.name.as_str() {
                            "provider" => {
                                invoke.provider = self.resource_ref(option_value, "provider")
                            }
                            "version" => {
                                invoke.version = self.string_option(option_value, "version")
                            }
                            // Accepted for compatibility; invokes have no parent in Cairn.
                            "parent" | "pluginDownloadURL" => {}
                            other => self.error(
                                &option.span,
                                format!("unknown `fn::invoke` option `{other}`"),
                                suggest(other, ["provider", "version", "parent"], "options are"),
                            ),
                        }
                    }
                }
                other => self.error(
                    &field.span,
                    format!("unknown `fn::invoke` key `{other}`"),
                    suggest(
                        other,
                        ["function", "arguments", "options", "return"],
                        "keys are",
                    ),
                ),
            }
        }
        if !function_seen {
            self.error(
                &argument.span,
                "`fn::invoke` needs a `function`",
                Some(shape.to_owned()),
            );
            return None;
        }
        well_formed.then_some(invoke)
    }

    /// `${res}` naming a resource: returns its key.
    fn resource_ref(&mut self, node: &Node, option: &str) -> Option<String> {
        let help = Some(format!("write `{option}: ${{resourceName}}`"));
        let pieces = node.as_str().map(split_interpolation);
        if let Some(Ok(pieces)) = &pieces
            && let [Piece::Reference { inner, start, .. }] = pieces.as_slice()
            && let Ok(parsed) = parse_reference(inner)
            && parsed.path.is_empty()
        {
            if self.scope.resources.contains_key(&parsed.root) {
                return Some(parsed.root);
            }
            let name_span = self.sub_span(node, start + 2, start + 2 + parsed.root.len());
            let keys: Vec<&str> = self.scope.resources.keys().map(String::as_str).collect();
            let help = did_you_mean(&parsed.root, keys.iter().copied()).or(help);
            self.error(
                &name_span,
                format!("unknown resource `{}` in `{option}`", parsed.root),
                help,
            );
            return None;
        }
        self.error(
            &node.span,
            format!("`{option}` must reference a resource, like `${{myResource}}`"),
            help,
        );
        None
    }

    fn resource_refs(&mut self, node: &Node, option: &str) -> Vec<String> {
        match &node.kind {
            NodeKind::Sequence(items) => items
                .iter()
                .filter_map(|item| self.resource_ref(item, option))
                .collect(),
            _ => self.resource_ref(node, option).into_iter().collect(),
        }
    }

    fn string_option(&mut self, node: &Node, option: &str) -> Option<String> {
        match node.as_str() {
            Some(text) => Some(text.to_owned()),
            None => {
                self.error(
                    &node.span,
                    format!("`{option}` must be a string, found a {}", node.kind_name()),
                    None,
                );
                None
            }
        }
    }

    fn bool_option(&mut self, node: &Node, option: &str) -> bool {
        match node.kind {
            NodeKind::Bool(flag) => flag,
            _ => {
                self.error(
                    &node.span,
                    format!(
                        "`{option}` must be `true` or `false`, found a {}",
                        node.kind_name()
                    ),
                    None,
                );
                false
            }
        }
    }

    fn string_list_option(&mut self, node: &Node, option: &str) -> Vec<String> {
        match &node.kind {
            NodeKind::Sequence(items) => items
                .iter()
                .filter_map(|item| self.string_option(item, option))
                .collect(),
            _ => {
                self.error(
                    &node.span,
                    format!(
                        "`{option}` must be a list of strings, found a {}",
                        node.kind_name()
                    ),
                    Some(format!("write `{option}: [\"property\"]`")),
                );
                Vec::new()
            }
        }
    }

    fn resource(&mut self, key: &Key, node: &Node) -> Option<ResourceDecl> {
        let entries = node.as_mapping()?;
        let (type_token, schema) = self.scope.resources.get(&key.name)?.clone();
        let mut properties = None;
        let mut properties_key = None;
        let mut get = None;
        let mut options = ResourceOptions::default();
        let mut deps = Deps::default();
        let mut name = key.name.clone();
        for (field, value) in entries {
            match field.name.as_str() {
                "type" => {}
                "properties" => {
                    properties_key = Some(field);
                    properties = Some(self.properties(
                        &key.name,
                        type_token.as_deref(),
                        schema.as_ref(),
                        value,
                    ));
                }
                "options" => options = self.options(value, options),
                "get" => get = self.get(value),
                "name" => {
                    if let Some(logical_name) = self.string_option(value, "name") {
                        name = logical_name;
                    }
                }
                "defaultProvider" => {
                    options.default_provider = self.bool_option(value, "defaultProvider")
                }
                other => self.error(
                    &field.span,
                    format!("unknown key `{other}` in resource `{}`", key.name),
                    suggest(other, RESOURCE_KEYS.iter().copied(), "resource keys are"),
                ),
            }
        }
        // Required inputs only matter when the resource is created, not read with `get:`.
        if get.is_none() && matches!(properties, None | Some(Expr::Object(..))) {
            let present: BTreeSet<&str> = match &properties {
                Some(Expr::Object(entries, _)) => {
                    entries.iter().map(|(name, _)| name.as_str()).collect()
                }
                _ => BTreeSet::new(),
            };
            let required: Vec<(String, String)> = match (&schema, type_token.as_deref()) {
                (Some(schema), _) => schema
                    .inputs
                    .iter()
                    .filter(|(_, property)| property.required)
                    .map(|(input, property)| (input.clone(), property.type_.display_name()))
                    .collect(),
                (None, Some(STACK_REFERENCE_TOKEN)) => {
                    vec![("name".to_owned(), "string".to_owned())]
                }
                _ => Vec::new(),
            };
            for (input, type_name) in required {
                if !present.contains(input.as_str()) {
                    let span = properties_key.map_or(&key.span, |field| &field.span);
                    self.error(
                        span,
                        format!(
                            "missing required property `{input}` on `{}` (`{}`)",
                            key.name,
                            type_token.as_deref().unwrap_or_default()
                        ),
                        Some(format!("add `{input}: <{type_name}>` under `properties:`")),
                    );
                }
            }
        }
        if options.default_provider && !type_token.as_deref().is_some_and(is_provider_token) {
            self.error(
                &key.span,
                format!(
                    "`defaultProvider` is only allowed on provider resources, and `{}` is not one",
                    key.name
                ),
                Some("use it on a `pulumi:providers:<package>` resource".to_owned()),
            );
        }
        if let Some(properties) = &properties {
            deps.add_expr(properties);
        }
        if let Some(get) = &get {
            deps.add_expr(&get.id);
            if let Some(state) = &get.state {
                deps.add_expr(state);
            }
        }
        for alias in &options.aliases {
            deps.add_expr(alias);
        }
        deps.resources.extend(options.provider.iter().cloned());
        deps.resources.extend(options.providers.iter().cloned());
        deps.resources.extend(options.depends_on.iter().cloned());
        deps.resources.extend(options.parent.iter().cloned());
        deps.resources.extend(options.deleted_with.iter().cloned());
        Some(ResourceDecl {
            name,
            key: key.name.clone(),
            type_token: type_token?,
            properties,
            get,
            options,
            deps,
            span: key.span.clone(),
        })
    }

    fn properties(
        &mut self,
        resource: &str,
        type_token: Option<&str>,
        schema: Option<&ResourceSchema>,
        node: &Node,
    ) -> Expr {
        let is_builtin = node
            .as_mapping()
            .is_some_and(|entries| entries.iter().any(|(key, _)| key.name.starts_with("fn::")));
        let Some(entries) = node.as_mapping().filter(|_| !is_builtin) else {
            let expr = self.expr(node);
            if matches!(
                expr,
                Expr::Bool(..) | Expr::Number(..) | Expr::String(..) | Expr::Array(..)
            ) {
                self.error(
                    &node.span,
                    format!(
                        "`properties` of `{resource}` must be a mapping, found a {}",
                        node.kind_name()
                    ),
                    Some(
                        "write `properties:` followed by indented `name: value` entries".to_owned(),
                    ),
                );
            }
            return expr;
        };
        let token = type_token.unwrap_or_default();
        let mut lowered = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let expr = self.expr(value);
            let property_type = match schema {
                Some(schema) => schema
                    .inputs
                    .get(&key.name)
                    .map(|property| property.type_.clone()),
                None if token == STACK_REFERENCE_TOKEN => {
                    (key.name == "name").then_some(PropertyType::String)
                }
                None => Some(PropertyType::Any),
            };
            match property_type {
                Some(expected) => self.check_type(&expr, &expected, &key.name, token),
                None if schema.is_some_and(|schema| schema.accepts_any_input) => {}
                None => {
                    let known: Vec<&str> = match schema {
                        Some(schema) => schema.inputs.keys().map(String::as_str).collect(),
                        None => vec!["name"],
                    };
                    self.error(
                        &key.span,
                        format!("unknown property `{}` on `{token}`", key.name),
                        suggest(&key.name, known.iter().copied(), "its properties are"),
                    );
                }
            }
            lowered.push((key.name.clone(), expr));
        }
        Expr::Object(lowered, node.span.clone())
    }

    /// Checks a literal value against the schema type; references are unknown until run time.
    fn check_type(&mut self, expr: &Expr, expected: &PropertyType, path: &str, token: &str) {
        let found = match (expr, expected) {
            (_, PropertyType::Any) | (Expr::Null(_), _) | (Expr::Ref(..), _) => return,
            (Expr::Builtin(Builtin::Secret(inner), _), _) => {
                return self.check_type(inner, expected, path, token);
            }
            (Expr::Number(number, _), PropertyType::Integer) if number.fract() != 0.0 => {
                format!("the number `{number}`")
            }
            (
                Expr::Number(..),
                PropertyType::Number | PropertyType::Integer | PropertyType::String,
            )
            | (Expr::Bool(..), PropertyType::Boolean | PropertyType::String)
            | (Expr::String(..) | Expr::Interpolate(..), PropertyType::String) => return,
            (Expr::Array(items, _), PropertyType::Array(item_type)) => {
                for (index, item) in items.iter().enumerate() {
                    self.check_type(item, item_type, &format!("{path}[{index}]"), token);
                }
                return;
            }
            (Expr::Object(entries, _), PropertyType::Map(value_type)) => {
                for (key, value) in entries {
                    self.check_type(value, value_type, &format!("{path}.{key}"), token);
                }
                return;
            }
            (Expr::Builtin(builtin, _), _) => match (builtin_result_kind(builtin), expected) {
                (None, _)
                | (Some("string"), PropertyType::String)
                | (Some("list"), PropertyType::Array(_))
                | (Some("asset"), PropertyType::Asset)
                | (Some("archive"), PropertyType::Archive) => return,
                (Some(kind), _) => format!("{} (`{}`)", article(kind), builtin.name()),
            },
            (Expr::Bool(..), _) => "a boolean".to_owned(),
            (Expr::Number(..), _) => "a number".to_owned(),
            (Expr::String(..) | Expr::Interpolate(..), _) => "a string".to_owned(),
            (Expr::Array(..), _) => "a list".to_owned(),
            (Expr::Object(..), _) => "a mapping".to_owned(),
        };
        let expected_name = expected.display_name();
        self.error(
            expr.span(),
            format!("wrong type for property `{path}`: expected {expected_name}, found {found}"),
            Some(format!("`{token}` declares `{path}` as {expected_name}")),
        );
    }

    fn get(&mut self, node: &Node) -> Option<GetDecl> {
        let Some(entries) = node.as_mapping() else {
            self.error(
                &node.span,
                "`get` must be a mapping with an `id`",
                Some("write `get: {id: <resource id>}`".to_owned()),
            );
            return None;
        };
        let mut id = None;
        let mut state = None;
        for (field, value) in entries {
            match field.name.as_str() {
                "id" => id = Some(self.expr(value)),
                "state" => state = Some(self.expr(value)),
                other => self.error(
                    &field.span,
                    format!("unknown key `{other}` in `get`"),
                    suggest(other, ["id", "state"], "keys are"),
                ),
            }
        }
        let Some(id) = id else {
            self.error(
                &node.span,
                "`get` needs an `id`",
                Some("write `get: {id: <resource id>}`".to_owned()),
            );
            return None;
        };
        Some(GetDecl { id, state })
    }

    fn options(&mut self, node: &Node, mut options: ResourceOptions) -> ResourceOptions {
        let Some(entries) = node.as_mapping() else {
            self.error(
                &node.span,
                format!("`options` must be a mapping, found a {}", node.kind_name()),
                None,
            );
            return options;
        };
        for (field, value) in entries {
            let option = field.name.as_str();
            match option {
                "provider" => {
                    options.provider = self.resource_ref(value, option);
                    if let Some(provider) = &options.provider {
                        self.check_is_provider(provider, value);
                    }
                }
                "providers" => {
                    options.providers = match &value.kind {
                        NodeKind::Mapping(providers) => providers
                            .iter()
                            .filter_map(|(_, provider)| self.resource_ref(provider, option))
                            .collect(),
                        _ => self.resource_refs(value, option),
                    };
                }
                "dependsOn" => options.depends_on = self.resource_refs(value, option),
                "parent" => options.parent = self.resource_ref(value, option),
                "deletedWith" => options.deleted_with = self.resource_ref(value, option),
                "protect" => options.protect = self.bool_option(value, option),
                "deleteBeforeReplace" => {
                    options.delete_before_replace = self.bool_option(value, option)
                }
                "retainOnDelete" => options.retain_on_delete = self.bool_option(value, option),
                "ignoreChanges" => options.ignore_changes = self.string_list_option(value, option),
                "replaceOnChanges" => {
                    options.replace_on_changes = self.string_list_option(value, option)
                }
                "additionalSecretOutputs" => {
                    options.additional_secret_outputs = self.string_list_option(value, option)
                }
                "aliases" => match &value.kind {
                    NodeKind::Sequence(items) => {
                        for item in items {
                            self.check_alias_keys(item);
                        }
                        options.aliases = items.iter().map(|item| self.expr(item)).collect();
                    }
                    _ => self.error(
                        &value.span,
                        "`aliases` must be a list",
                        Some("write `aliases: [<urn or {name, type, parent}>]`".to_owned()),
                    ),
                },
                "import" => options.import = self.string_option(value, option),
                "version" => options.version = self.string_option(value, option),
                "pluginDownloadURL" => {
                    self.string_option(value, option);
                }
                "customTimeouts" => options.custom_timeouts = self.custom_timeouts(value),
                other => self.error(
                    &field.span,
                    format!("unknown resource option `{other}`"),
                    suggest(other, OPTION_KEYS.iter().copied(), "options are"),
                ),
            }
        }
        options
    }

    /// An alias written as a mapping has the keys of Pulumi's alias object.
    fn check_alias_keys(&mut self, item: &Node) {
        let Some(entries) = item.as_mapping() else {
            return;
        };
        for (key, _) in entries {
            if !ALIAS_KEYS.contains(&key.name.as_str()) && !key.name.starts_with("fn::") {
                self.error(
                    &key.span,
                    format!("unknown key `{}` in an alias", key.name),
                    suggest(&key.name, ALIAS_KEYS.iter().copied(), "alias keys are"),
                );
            }
        }
    }

    fn check_is_provider(&mut self, key: &str, node: &Node) {
        if let Some((Some(token), _)) = self.scope.resources.get(key)
            && !is_provider_token(token)
        {
            self.error(
                &node.span,
                format!("`provider` must be a provider resource, but `{key}` is a `{token}`"),
                Some("declare a provider with `type: pulumi:providers:<package>`".to_owned()),
            );
        }
    }

    fn custom_timeouts(&mut self, node: &Node) -> CustomTimeoutsDecl {
        let mut timeouts = CustomTimeoutsDecl::default();
        let Some(entries) = node.as_mapping() else {
            self.error(
                &node.span,
                "`customTimeouts` must be a mapping",
                Some("write `customTimeouts: {create: 5m}`".to_owned()),
            );
            return timeouts;
        };
        for (field, value) in entries {
            let slot = match field.name.as_str() {
                "create" => &mut timeouts.create,
                "update" => &mut timeouts.update,
                "delete" => &mut timeouts.delete,
                other => {
                    self.error(
                        &field.span,
                        format!("unknown key `{other}` in `customTimeouts`"),
                        suggest(other, ["create", "update", "delete"], "keys are"),
                    );
                    continue;
                }
            };
            *slot = match &value.kind {
                NodeKind::String(duration) => match cairn_core::parse_go_duration(duration) {
                    Ok(_) => Some(duration.clone()),
                    Err(message) => {
                        self.error(&value.span, format!("`{}`: {message}", field.name), None);
                        None
                    }
                },
                _ => {
                    self.error(
                        &value.span,
                        format!("`{}` must be a duration like `5m` or `30s`", field.name),
                        None,
                    );
                    None
                }
            };
        }
        timeouts
    }
}

/// What a builtin returns, when that is known without running it.
fn builtin_result_kind(builtin: &Builtin) -> Option<&'static str> {
    match builtin {
        Builtin::Join { .. }
        | Builtin::ToJson(_)
        | Builtin::ToBase64(_)
        | Builtin::FromBase64(_)
        | Builtin::ReadFile(_) => Some("string"),
        Builtin::Split { .. } => Some("list"),
        Builtin::StringAsset(_) | Builtin::FileAsset(_) | Builtin::RemoteAsset(_) => Some("asset"),
        Builtin::FileArchive(_) | Builtin::RemoteArchive(_) | Builtin::AssetArchive(_) => {
            Some("archive")
        }
        Builtin::Invoke(_)
        | Builtin::Select { .. }
        | Builtin::Secret(_)
        | Builtin::StackReference { .. } => None,
    }
}

fn article(kind: &str) -> String {
    if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
        format!("an {kind}")
    } else {
        format!("a {kind}")
    }
}

/// Reports each dependency cycle among resources and variables once, at its first member.
fn report_cycles(
    resources: &[ResourceDecl],
    variables: &[Variable],
    diagnostics: &mut Diagnostics,
) {
    // Nodes in source order: resources, then variables (each section keeps its own order).
    let mut names: Vec<&str> = Vec::new();
    let mut spans: Vec<Span> = Vec::new();
    let mut edges: Vec<Vec<usize>> = Vec::new();
    let mut index_of: BTreeMap<(bool, &str), usize> = BTreeMap::new();
    for resource in resources {
        index_of.insert((true, &resource.key), names.len());
        names.push(&resource.key);
        spans.push(resource.span.clone());
    }
    for variable in variables {
        index_of.insert((false, &variable.name), names.len());
        names.push(&variable.name);
        spans.push(variable.value.span().clone());
    }
    let deps_of = resources
        .iter()
        .map(|resource| &resource.deps)
        .chain(variables.iter().map(|variable| &variable.deps));
    for deps in deps_of {
        let targets = deps
            .resources
            .iter()
            .filter_map(|key| index_of.get(&(true, key.as_str())))
            .chain(
                deps.variables
                    .iter()
                    .filter_map(|name| index_of.get(&(false, name.as_str()))),
            )
            .copied()
            .collect();
        edges.push(targets);
    }
    for component in strongly_connected_components(&edges) {
        let is_cycle = component.len() > 1
            || component
                .first()
                .is_some_and(|node| edges[*node].contains(node));
        if !is_cycle {
            continue;
        }
        let Some(first) = component.iter().copied().min() else {
            continue;
        };
        let members: BTreeSet<usize> = component.iter().copied().collect();
        let cycle = cycle_through(first, &edges, &members);
        let path: Vec<String> = cycle
            .iter()
            .chain(std::iter::once(&first))
            .map(|node| format!("`{}`", names[*node]))
            .collect();
        diagnostics.error(
            &spans[first],
            format!("dependency cycle: {}", path.join(" -> ")),
            Some("break the cycle: a resource or variable cannot depend on itself, directly or through others".to_owned()),
        );
    }
}

/// A path from `start` back to `start` within `members`, as the list of nodes visited.
fn cycle_through(start: usize, edges: &[Vec<usize>], members: &BTreeSet<usize>) -> Vec<usize> {
    // Breadth-first search from `start`'s successors back to `start`, so the reported cycle is
    // a shortest one.
    let mut previous: BTreeMap<usize, usize> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for next in edges[node]
            .iter()
            .copied()
            .filter(|next| members.contains(next))
        {
            if next == start {
                let mut path = vec![node];
                let mut current = node;
                while current != start {
                    current = previous[&current];
                    path.push(current);
                }
                path.reverse();
                return path;
            }
            if let std::collections::btree_map::Entry::Vacant(entry) = previous.entry(next) {
                entry.insert(node);
                queue.push_back(next);
            }
        }
    }
    vec![start]
}

/// Tarjan's algorithm, iterative so deep dependency chains cannot overflow the stack.
fn strongly_connected_components(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let node_count = edges.len();
    let mut index = vec![usize::MAX; node_count];
    let mut low_link = vec![0; node_count];
    let mut on_stack = vec![false; node_count];
    let mut stack = Vec::new();
    let mut components = Vec::new();
    let mut next_index = 0;
    for root in 0..node_count {
        if index[root] != usize::MAX {
            continue;
        }
        // Each frame: (node, position of the next edge to visit).
        let mut frames = vec![(root, 0)];
        index[root] = next_index;
        low_link[root] = next_index;
        next_index += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (node, ref mut edge_position)) = frames.last_mut() {
            if let Some(&next) = edges[node].get(*edge_position) {
                *edge_position += 1;
                if index[next] == usize::MAX {
                    index[next] = next_index;
                    low_link[next] = next_index;
                    next_index += 1;
                    stack.push(next);
                    on_stack[next] = true;
                    frames.push((next, 0));
                } else if on_stack[next] {
                    low_link[node] = low_link[node].min(index[next]);
                }
                continue;
            }
            frames.pop();
            if let Some(&(parent, _)) = frames.last() {
                low_link[parent] = low_link[parent].min(low_link[node]);
            }
            if low_link[node] == index[node] {
                let mut component = Vec::new();
                while let Some(member) = stack.pop() {
                    on_stack[member] = false;
                    component.push(member);
                    if member == node {
                        break;
                    }
                }
                components.push(component);
            }
        }
    }
    components
}
