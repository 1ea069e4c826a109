//! Expression evaluation against an `EvalContext` the engine implements: references to
//! resources, variables, config and `pulumi.*`, and the builtins.
//!
//! Unknown values (a resource not created yet, in preview) propagate: anything computed from an
//! unknown is unknown. Secrets propagate: anything computed from a secret is secret. This module
//! does no I/O; files, invokes and other stacks are reached through the context.

use base64::Engine as _;
use cairn_core::{PropertyMap, Value};

use crate::ast::{Accessor, Builtin, Expr, Invoke, Part, Reference, Root, Span};

/// Pulumi's signature key marking an object as an asset or archive, and the two signatures.
pub const SIGNATURE_KEY: &str = "4dabf18193072939515e22adb298388d";
pub const ASSET_SIGNATURE: &str = "c44067f5952c0a294b673a41bacd8c17";
pub const ARCHIVE_SIGNATURE: &str = "0def7320c3a5731c473e5ecbe6d01bc7";

/// What evaluation needs from the engine.
pub trait EvalContext {
    /// The resource's state once it has been created or read: None = not known yet (the
    /// reference evaluates to Unknown).
    fn resource(&self, key: &str) -> Option<ResourceValue>;
    /// A variable the engine has already evaluated (variables are graph nodes).
    fn variable(&self, name: &str) -> Option<Value>;
    /// Config by normalized key (no project prefix; `aws:region` keeps its namespace).
    fn config(&self, key: &str) -> Option<Value>;
    fn stack(&self) -> &str;
    fn project(&self) -> &str;
    fn organization(&self) -> &str;
    fn cwd(&self) -> &str;
    fn invoke(
        &self,
        token: &str,
        args: PropertyMap,
        provider: Option<&str>,
    ) -> Result<PropertyMap, String>;
    /// Reads a file, `path` relative to the program's directory.
    fn read_file(&self, path: &str) -> Result<String, String>;
    fn stack_output(&self, stack: &str, key: &str) -> Result<Value, String>;
    /// Told of every secret evaluation meets (an `fn::secret`, a reference to a secret config
    /// value, variable or output, an invoke's secret result) before it is mixed into a larger
    /// string, so the engine can mask its plaintext wherever it turns up later.
    fn saw_secret(&self, _value: &Value) {}
}

/// A resource's state as evaluation sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceValue {
    /// May be Unknown in preview.
    pub id: Value,
    pub urn: String,
    pub outputs: PropertyMap,
}

/// Evaluation failed at a place in the program.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{}:{}:{}: {message}", span.file, span.line, span.column)]
pub struct EvalError {
    pub message: String,
    pub span: Span,
}

/// Evaluates an expression.
pub fn evaluate(expr: &Expr, ctx: &dyn EvalContext) -> Result<Value, EvalError> {
    match expr {
        Expr::Null(_) => Ok(Value::Null),
        Expr::Bool(flag, _) => Ok(Value::Bool(*flag)),
        Expr::Number(number, _) => Ok(Value::Number(*number)),
        Expr::String(text, _) => Ok(Value::String(text.clone())),
        Expr::Interpolate(parts, _) => interpolate(parts, ctx),
        Expr::Ref(reference, _) => noting_secrets(evaluate_reference(reference, ctx), ctx),
        Expr::Array(items, _) => items
            .iter()
            .map(|item| evaluate(item, ctx))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Expr::Object(entries, _) => entries
            .iter()
            .map(|(key, value)| Ok((key.clone(), evaluate(value, ctx)?)))
            .collect::<Result<PropertyMap, _>>()
            .map(Value::Object),
        Expr::Builtin(builtin, span) => evaluate_builtin(builtin, span, ctx),
    }
}

fn error(span: &Span, message: impl Into<String>) -> EvalError {
    EvalError {
        message: message.into(),
        span: span.clone(),
    }
}

/// The kind of a value with its article, for messages: "an object", "a string".
fn with_article(value: &Value) -> String {
    let kind = value.kind_name();
    let article = if kind.starts_with(['a', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {kind}")
}

/// Wraps `value` as a secret when `is_secret`.
fn secret_if(value: Value, is_secret: bool) -> Value {
    if is_secret {
        value.into_secret()
    } else {
        value
    }
}

fn interpolate(parts: &[Part], ctx: &dyn EvalContext) -> Result<Value, EvalError> {
    let mut text = String::new();
    let mut is_unknown = false;
    let mut is_secret = false;
    for part in parts {
        match part {
            Part::Text(literal) => text.push_str(literal),
            Part::Ref(reference) => {
                let value = noting_secrets(evaluate_reference(reference, ctx), ctx)?;
                if value.contains_unknown() {
                    is_unknown = true;
                    continue;
                }
                is_secret |= value.contains_secret();
                let Some(piece) = value.to_interpolated_string() else {
                    let kind = with_article(&value);
                    let hint = match &reference.root {
                        Root::Resource(key) if reference.path.is_empty() => {
                            format!(" (a whole resource; write `${{{key}.id}}` for its ID)")
                        }
                        _ => String::new(),
                    };
                    return Err(error(
                        &reference.span,
                        format!(
                            "cannot interpolate `${{{}}}` into a string: it is {kind}{hint}",
                            reference.text,
                        ),
                    ));
                };
                text.push_str(&piece);
            }
        }
    }
    if is_unknown {
        return Ok(Value::Unknown);
    }
    Ok(secret_if(Value::String(text), is_secret))
}

/// Passes `result` on, telling `ctx` about the secrets in it.
fn noting_secrets(
    result: Result<Value, EvalError>,
    ctx: &dyn EvalContext,
) -> Result<Value, EvalError> {
    if let Ok(value) = &result
        && value.contains_secret()
    {
        ctx.saw_secret(value);
    }
    result
}

fn evaluate_reference(reference: &Reference, ctx: &dyn EvalContext) -> Result<Value, EvalError> {
    let span = &reference.span;
    let (root_value, path) = match &reference.root {
        Root::PulumiStack => return Ok(Value::string(ctx.stack())),
        Root::PulumiProject => return Ok(Value::string(ctx.project())),
        Root::PulumiCwd => return Ok(Value::string(ctx.cwd())),
        Root::PulumiOrganization => return Ok(Value::string(ctx.organization())),
        Root::Variable(name) => (
            ctx.variable(name).unwrap_or(Value::Unknown),
            &reference.path[..],
        ),
        Root::Config(key) => match ctx.config(key) {
            Some(value) => (value, &reference.path[..]),
            None => {
                return Err(error(span, format!("missing configuration value `{key}`")));
            }
        },
        Root::Resource(key) => {
            let Some(resource) = ctx.resource(key) else {
                return Ok(Value::Unknown);
            };
            match reference.path.split_first() {
                // A whole resource is the object of its outputs with `id` and `urn`, as in
                // Pulumi YAML (options such as `dependsOn` take resources at check time).
                None => {
                    let mut object = resource.outputs;
                    object.insert("id".to_owned(), resource.id);
                    object.insert("urn".to_owned(), Value::String(resource.urn));
                    return Ok(Value::Object(object));
                }
                Some((Accessor::Property(property), rest)) if property == "id" => {
                    (resource.id, rest)
                }
                Some((Accessor::Property(property), rest)) if property == "urn" => {
                    (Value::String(resource.urn), rest)
                }
                Some(_) => (Value::Object(resource.outputs), &reference.path[..]),
            }
        }
    };
    access_path(root_value, path, reference)
}

/// Follows `path` into `value`, keeping secrecy and stopping at unknowns.
fn access_path(value: Value, path: &[Accessor], reference: &Reference) -> Result<Value, EvalError> {
    let mut current = value;
    let mut is_secret = false;
    for accessor in path {
        if let Value::Secret(inner) = current {
            is_secret = true;
            current = *inner;
        }
        current = match (current, accessor) {
            (Value::Unknown, _) => return Ok(secret_if(Value::Unknown, is_secret)),
            (Value::Object(mut map), Accessor::Property(key) | Accessor::Key(key)) => {
                match map.remove(key) {
                    Some(value) => value,
                    None => {
                        return Err(error(
                            &reference.span,
                            format!("`${{{}}}`: there is no property `{key}`", reference.text),
                        ));
                    }
                }
            }
            (Value::Array(mut items), Accessor::Index(index)) => {
                let length = items.len();
                if *index >= length {
                    return Err(error(
                        &reference.span,
                        format!(
                            "`${{{}}}`: index {index} is out of range for a list of {length}",
                            reference.text
                        ),
                    ));
                }
                items.swap_remove(*index)
            }
            (other, accessor) => {
                let step = match accessor {
                    Accessor::Property(key) => format!("property `{key}`"),
                    Accessor::Key(key) => format!("key `{key}`"),
                    Accessor::Index(index) => format!("index {index}"),
                };
                return Err(error(
                    &reference.span,
                    format!(
                        "`${{{}}}`: cannot take {step} of a {}",
                        reference.text,
                        other.kind_name()
                    ),
                ));
            }
        };
    }
    Ok(secret_if(current, is_secret))
}

/// An evaluated builtin argument, with its secrecy split off.
struct Argument {
    value: Value,
    is_secret: bool,
}

fn argument(expr: &Expr, ctx: &dyn EvalContext) -> Result<Option<Argument>, EvalError> {
    let value = evaluate(expr, ctx)?;
    if value.contains_unknown() {
        return Ok(None);
    }
    let is_secret = value.contains_secret();
    Ok(Some(Argument {
        value: value.reveal(),
        is_secret,
    }))
}

fn string_argument(
    builtin: &str,
    expr: &Expr,
    ctx: &dyn EvalContext,
) -> Result<Option<(String, bool)>, EvalError> {
    let Some(argument) = argument(expr, ctx)? else {
        return Ok(None);
    };
    match argument.value {
        Value::String(text) => Ok(Some((text, argument.is_secret))),
        other => Err(error(
            expr.span(),
            format!(
                "`{builtin}` expects a string, found a {}",
                other.kind_name()
            ),
        )),
    }
}

/// Evaluates `$body` with unknown arguments short-circuiting to `Value::Unknown`.
macro_rules! known {
    ($argument:expr) => {
        match $argument {
            Some(value) => value,
            None => return Ok(Value::Unknown),
        }
    };
}

fn evaluate_builtin(
    builtin: &Builtin,
    span: &Span,
    ctx: &dyn EvalContext,
) -> Result<Value, EvalError> {
    let name = builtin.name();
    match builtin {
        Builtin::Secret(inner) => noting_secrets(Ok(evaluate(inner, ctx)?.into_secret()), ctx),
        Builtin::Join { delimiter, items } => {
            let (delimiter, delimiter_secret) = known!(string_argument(name, delimiter, ctx)?);
            let items_argument = known!(argument(items, ctx)?);
            let Value::Array(items_values) = items_argument.value else {
                return Err(error(
                    items.span(),
                    format!(
                        "`fn::join` expects a list, found a {}",
                        items_argument.value.kind_name()
                    ),
                ));
            };
            let mut pieces = Vec::with_capacity(items_values.len());
            for (index, item) in items_values.iter().enumerate() {
                match item.to_interpolated_string() {
                    Some(piece) => pieces.push(piece),
                    None => {
                        // Point at the item when the list is written out in the program.
                        let item_span = match &**items {
                            Expr::Array(item_exprs, _) => item_exprs.get(index).map(Expr::span),
                            _ => None,
                        };
                        return Err(error(
                            item_span.unwrap_or(items.span()),
                            format!("`fn::join` cannot join {}", with_article(item)),
                        ));
                    }
                }
            }
            Ok(secret_if(
                Value::String(pieces.join(&delimiter)),
                delimiter_secret || items_argument.is_secret,
            ))
        }
        Builtin::Split { delimiter, source } => {
            let (delimiter, delimiter_secret) = known!(string_argument(name, delimiter, ctx)?);
            let (text, text_secret) = known!(string_argument(name, source, ctx)?);
            let parts = text.split(delimiter.as_str()).map(Value::string).collect();
            Ok(secret_if(
                Value::Array(parts),
                delimiter_secret || text_secret,
            ))
        }
        Builtin::Select { index, items } => {
            let index_argument = known!(argument(index, ctx)?);
            let position = match index_argument.value {
                Value::Number(number) if number >= 0.0 && number.fract() == 0.0 => number as usize,
                // Name only the kind: the revealed value may be a secret.
                other => {
                    return Err(error(
                        index.span(),
                        format!(
                            "`fn::select` expects a whole number index, found a {}",
                            other.kind_name()
                        ),
                    ));
                }
            };
            let items_value = evaluate(items, ctx)?;
            let (items_value, items_secret) = match items_value {
                Value::Secret(inner) => (*inner, true),
                other => (other, false),
            };
            match items_value {
                Value::Unknown => Ok(Value::Unknown),
                Value::Array(mut values) => {
                    if position >= values.len() {
                        return Err(error(
                            span,
                            format!(
                                "`fn::select` index {position} is out of range for a list of {}",
                                values.len()
                            ),
                        ));
                    }
                    Ok(secret_if(
                        values.swap_remove(position),
                        items_secret || index_argument.is_secret,
                    ))
                }
                other => Err(error(
                    items.span(),
                    format!("`fn::select` expects a list, found a {}", other.kind_name()),
                )),
            }
        }
        Builtin::ToJson(inner) => {
            let inner_argument = known!(argument(inner, ctx)?);
            let json = value_to_json(&inner_argument.value);
            let text = serde_json::to_string(&json)
                .map_err(|problem| error(span, format!("`fn::toJSON` failed: {problem}")))?;
            Ok(secret_if(Value::String(text), inner_argument.is_secret))
        }
        Builtin::ToBase64(inner) => {
            let (text, is_secret) = known!(string_argument(name, inner, ctx)?);
            let encoded = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
            Ok(secret_if(Value::String(encoded), is_secret))
        }
        Builtin::FromBase64(inner) => {
            let (text, is_secret) = known!(string_argument(name, inner, ctx)?);
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text.trim().as_bytes())
                .map_err(|problem| {
                    // The decoder names the offending character and its offset: of a secret,
                    // that is part of the secret.
                    let detail = if is_secret {
                        String::new()
                    } else {
                        format!(" ({problem})")
                    };
                    error(
                        inner.span(),
                        format!("`fn::fromBase64`: the text is not valid base64{detail}"),
                    )
                })?;
            let decoded = String::from_utf8(bytes).map_err(|_| {
                error(
                    inner.span(),
                    "`fn::fromBase64`: the decoded bytes are not UTF-8 text",
                )
            })?;
            Ok(secret_if(Value::String(decoded), is_secret))
        }
        Builtin::ReadFile(path) => {
            let (path_text, is_secret) = known!(string_argument(name, path, ctx)?);
            let contents = ctx.read_file(&path_text).map_err(|problem| {
                error(
                    path.span(),
                    format!("`fn::readFile`: cannot read `{path_text}`: {problem}"),
                )
            })?;
            Ok(secret_if(Value::String(contents), is_secret))
        }
        Builtin::StringAsset(inner) => signed(name, inner, ctx, ASSET_SIGNATURE, "text"),
        Builtin::FileAsset(inner) => signed(name, inner, ctx, ASSET_SIGNATURE, "path"),
        Builtin::RemoteAsset(inner) => signed(name, inner, ctx, ASSET_SIGNATURE, "uri"),
        Builtin::FileArchive(inner) => signed(name, inner, ctx, ARCHIVE_SIGNATURE, "path"),
        Builtin::RemoteArchive(inner) => signed(name, inner, ctx, ARCHIVE_SIGNATURE, "uri"),
        Builtin::AssetArchive(entries) => {
            let mut assets = PropertyMap::new();
            for (key, value) in entries {
                assets.insert(key.clone(), evaluate(value, ctx)?);
            }
            Ok(Value::Object(PropertyMap::from([
                (SIGNATURE_KEY.to_owned(), Value::string(ARCHIVE_SIGNATURE)),
                ("assets".to_owned(), Value::Object(assets)),
            ])))
        }
        Builtin::StackReference { stack, key } => {
            let (stack_name, stack_secret) = known!(string_argument(name, stack, ctx)?);
            let (output, key_secret) = known!(string_argument(name, key, ctx)?);
            let value = ctx
                .stack_output(&stack_name, &output)
                .map_err(|problem| error(span, format!("`fn::stackReference`: {problem}")))?;
            Ok(secret_if(value, stack_secret || key_secret))
        }
        Builtin::Invoke(invoke) => evaluate_invoke(invoke, span, ctx),
    }
}

/// An asset or archive object: `{<signature key>: <signature>, <field>: <text>}`.
fn signed(
    name: &str,
    inner: &Expr,
    ctx: &dyn EvalContext,
    signature: &str,
    field: &str,
) -> Result<Value, EvalError> {
    let (text, is_secret) = known!(string_argument(name, inner, ctx)?);
    Ok(Value::Object(PropertyMap::from([
        (SIGNATURE_KEY.to_owned(), Value::string(signature)),
        (field.to_owned(), secret_if(Value::String(text), is_secret)),
    ])))
}

fn evaluate_invoke(
    invoke: &Invoke,
    span: &Span,
    ctx: &dyn EvalContext,
) -> Result<Value, EvalError> {
    let (arguments, is_secret) = match &invoke.arguments {
        Some(arguments) => {
            let evaluated = known!(argument(arguments, ctx)?);
            match evaluated.value {
                Value::Object(map) => (map, evaluated.is_secret),
                Value::Null => (PropertyMap::new(), evaluated.is_secret),
                other => {
                    return Err(error(
                        arguments.span(),
                        format!(
                            "`fn::invoke` arguments must be a mapping, found a {}",
                            other.kind_name()
                        ),
                    ));
                }
            }
        }
        None => (PropertyMap::new(), false),
    };
    let result = ctx
        .invoke(&invoke.function, arguments, invoke.provider.as_deref())
        .map_err(|problem| {
            error(
                span,
                format!("`fn::invoke` of `{}` failed: {problem}", invoke.function),
            )
        })?;
    let value = match &invoke.return_ {
        Some(property) => match result.get(property) {
            Some(value) => value.clone(),
            None => {
                return Err(error(
                    span,
                    format!(
                        "`fn::invoke` of `{}` returned no property `{property}`",
                        invoke.function
                    ),
                ));
            }
        },
        None => Value::Object(result),
    };
    noting_secrets(Ok(secret_if(value, is_secret)), ctx)
}

/// A value as JSON (secrets must be revealed first; unknowns become null).
pub fn value_to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Null | Value::Unknown => serde_json::Value::Null,
        Value::Bool(flag) => serde_json::Value::Bool(*flag),
        Value::Number(number) => {
            if number.fract() == 0.0 && number.abs() < 9.0e15 {
                serde_json::Value::from(*number as i64)
            } else {
                serde_json::Number::from_f64(*number)
                    .map_or(serde_json::Value::Null, serde_json::Value::Number)
            }
        }
        Value::String(text) => serde_json::Value::String(text.clone()),
        Value::Array(items) => serde_json::Value::Array(items.iter().map(value_to_json).collect()),
        Value::Object(map) => serde_json::Value::Object(
            map.iter()
                .map(|(key, value)| (key.clone(), value_to_json(value)))
                .collect(),
        ),
        Value::Secret(inner) => value_to_json(inner),
    }
}

/// JSON as a value.
pub fn value_from_json(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(flag) => Value::Bool(*flag),
        serde_json::Value::Number(number) => Value::Number(number.as_f64().unwrap_or_default()),
        serde_json::Value::String(text) => Value::String(text.clone()),
        serde_json::Value::Array(items) => {
            Value::Array(items.iter().map(value_from_json).collect())
        }
        serde_json::Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| (key.clone(), value_from_json(value)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::TestSchemas;
    use expect_test::{Expect, expect};

    /// A fixed world: `pet` and `ref` exist, `pending` is not created yet.
    struct TestContext;

    impl EvalContext for TestContext {
        fn resource(&self, key: &str) -> Option<ResourceValue> {
            let outputs = match key {
                "pet" => PropertyMap::from([
                    ("length".to_owned(), Value::Number(2.0)),
                    (
                        "keepers".to_owned(),
                        Value::Object(PropertyMap::from([
                            ("a".to_owned(), Value::string("b")),
                            ("pw".to_owned(), Value::string("hunter2").into_secret()),
                        ])),
                    ),
                ]),
                "thing" => PropertyMap::from([(
                    "tags".to_owned(),
                    Value::Array(vec![Value::string("x"), Value::Unknown]),
                )]),
                "ref" => PropertyMap::from([(
                    "outputs".to_owned(),
                    Value::Object(PropertyMap::from([(
                        "key".to_owned(),
                        Value::string("sealed").into_secret(),
                    )])),
                )]),
                _ => return None,
            };
            Some(ResourceValue {
                id: Value::string(format!("{key}-id")),
                urn: format!("urn:pulumi:dev::proj::fake:index:Thing::{key}"),
                outputs,
            })
        }

        fn variable(&self, name: &str) -> Option<Value> {
            (name == "greeting").then(|| Value::string("hello"))
        }

        fn config(&self, key: &str) -> Option<Value> {
            match key {
                "size" => Some(Value::Number(3.0)),
                "password" => Some(Value::string("hunter2").into_secret()),
                _ => None,
            }
        }

        fn stack(&self) -> &str {
            "dev"
        }

        fn project(&self) -> &str {
            "proj"
        }

        fn organization(&self) -> &str {
            "organization"
        }

        fn cwd(&self) -> &str {
            "/work"
        }

        fn invoke(
            &self,
            token: &str,
            mut args: PropertyMap,
            provider: Option<&str>,
        ) -> Result<PropertyMap, String> {
            args.insert("token".to_owned(), Value::string(token));
            args.insert(
                "provider".to_owned(),
                provider.map_or(Value::Null, Value::string),
            );
            Ok(args)
        }

        fn read_file(&self, path: &str) -> Result<String, String> {
            match path {
                "hello.txt" => Ok("file text".to_owned()),
                _ => Err("no such file".to_owned()),
            }
        }

        fn stack_output(&self, stack: &str, key: &str) -> Result<Value, String> {
            Ok(Value::string(format!("{stack}/{key}")))
        }
    }

    /// Shows secrets as `secret(...)` so tests can see inside them.
    fn show(value: &Value) -> String {
        match value {
            Value::Secret(inner) => format!("secret({})", show(inner)),
            Value::Array(items) => format!(
                "[{}]",
                items.iter().map(show).collect::<Vec<_>>().join(", ")
            ),
            Value::Object(map) => format!(
                "{{{}}}",
                map.iter()
                    .map(|(key, value)| format!("{key}: {}", show(value)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            other => format!("{other:?}"),
        }
    }

    const PROGRAM_HEAD: &str = "name: proj\nruntime: yaml\nconfig:\n  size: 1\n  password:\n    type: string\n    secret: true\nvariables:\n  greeting: hi\nresources:\n  prov:\n    type: pulumi:providers:random\n  pet:\n    type: random:RandomPet\n  pending:\n    type: fake:Thing\n  thing:\n    type: fake:Thing\n  ref:\n    type: pulumi:pulumi:StackReference\n    properties:\n      name: org/other/dev\noutputs:\n";

    /// Evaluates every output of a program made of `PROGRAM_HEAD` plus `outputs`.
    #[track_caller]
    fn check(outputs: &str, expect: Expect) {
        let loaded = crate::load_str(
            "Cairn.yaml",
            &format!("{PROGRAM_HEAD}{outputs}"),
            &TestSchemas,
        );
        let program = loaded
            .program
            .unwrap_or_else(|| panic!("the program has errors: {:?}", loaded.diagnostics));
        let rendered: Vec<String> = program
            .outputs
            .iter()
            .map(|(name, expr)| match evaluate(expr, &TestContext) {
                Ok(value) => format!("{name} = {}", show(&value)),
                Err(error) => format!("{name}: error {error}"),
            })
            .collect();
        expect.assert_eq(&rendered.join("\n"));
    }

    #[test]
    fn resource_references() {
        check(
            "  explicitId: ${pet.id}\n  urn: ${pet.urn}\n  length: ${pet.length}\n  keeper: ${pet.keepers[\"a\"]}\n  dotted: ${pet.keepers.a}\n  pending: ${pending.anything}\n  pendingId: ${pending}\n  tagsZero: ${thing.tags[0]}\n  tagsOne: ${thing.tags[1]}\n",
            expect![[r#"
                explicitId = "pet-id"
                urn = "urn:pulumi:dev::proj::fake:index:Thing::pet"
                length = 2
                keeper = "b"
                dotted = "b"
                pending = [unknown]
                pendingId = [unknown]
                tagsZero = "x"
                tagsOne = [unknown]"#]],
        );
    }

    #[test]
    fn a_whole_resource_is_the_object_of_its_outputs_with_id_and_urn() {
        check(
            "  whole: ${pet}\n  wrapped:\n    fn::secret: ${pet}\n  nested: {pets: [\"${pet}\"]}\n  pending: ${pending}\n  interpolated: \"pet ${pet}\"\n",
            expect![[r#"
                whole = {id: "pet-id", keepers: {a: "b", pw: secret("hunter2")}, length: 2, urn: "urn:pulumi:dev::proj::fake:index:Thing::pet"}
                wrapped = secret({id: "pet-id", keepers: {a: "b", pw: secret("hunter2")}, length: 2, urn: "urn:pulumi:dev::proj::fake:index:Thing::pet"})
                nested = {pets: [{id: "pet-id", keepers: {a: "b", pw: secret("hunter2")}, length: 2, urn: "urn:pulumi:dev::proj::fake:index:Thing::pet"}]}
                pending = [unknown]
                interpolated: error Cairn.yaml:29:22: cannot interpolate `${pet}` into a string: it is an object (a whole resource; write `${pet.id}` for its ID)"#]],
        );
    }

    #[test]
    fn missing_properties_and_bad_indexes_are_errors_at_the_reference() {
        check(
            "  missing: ${pet.keepers.nope}\n  range: ${thing.tags[5]}\n  into: \"x-${pet.length.deeper}\"\n",
            expect![[r#"
                missing: error Cairn.yaml:24:12: `${pet.keepers.nope}`: there is no property `nope`
                range: error Cairn.yaml:25:10: `${thing.tags[5]}`: index 5 is out of range for a list of 2
                into: error Cairn.yaml:26:12: `${pet.length.deeper}`: cannot take property `deeper` of a number"#]],
        );
    }

    #[test]
    fn interpolation_secrets_and_unknowns() {
        check(
            "  plain: \"${pulumi.project}-${pulumi.stack}-${size}-${greeting}\"\n  escaped: \"$${pet} costs $$5\"\n  secret: \"pw=${password}\"\n  secretKeeper: ${pet.keepers.pw}\n  selectIntoSecret: ${pet.keepers}\n  unknown: \"a-${pending.x}-${password}\"\n  stackRef: ${ref.outputs[\"key\"]}\n  org: ${pulumi.organization}\n  cwd: ${pulumi.cwd}\n",
            expect![[r#"
                plain = "proj-dev-3-hello"
                escaped = "${pet} costs $$5"
                secret = secret("pw=hunter2")
                secretKeeper = secret("hunter2")
                selectIntoSecret = {a: "b", pw: secret("hunter2")}
                unknown = [unknown]
                stackRef = secret("sealed")
                org = "organization"
                cwd = "/work""#]],
        );
    }

    #[test]
    fn string_builtins() {
        check(
            "  join:\n    fn::join: [\"-\", [a, 1, true]]\n  split:\n    fn::split: [\",\", \"a,b\"]\n  select:\n    fn::select: [1, [x, y]]\n  json:\n    fn::toJSON: {b: [1, 2.5], a: x}\n  b64:\n    fn::toBase64: hello\n  back:\n    fn::fromBase64: aGVsbG8=\n  secretJoin:\n    fn::join: [\"\", [\"${password}\", x]]\n  unknownJoin:\n    fn::join: [\"\", [\"${pending.x}\"]]\n  wrapped:\n    fn::secret: plain\n  file:\n    fn::readFile: hello.txt\n  missingFile:\n    fn::readFile: nope.txt\n",
            expect![[r#"
                join = "a-1-true"
                split = ["a", "b"]
                select = "y"
                json = "{\"a\":\"x\",\"b\":[1,2.5]}"
                b64 = "aGVsbG8="
                back = "hello"
                secretJoin = secret("hunter2x")
                unknownJoin = [unknown]
                wrapped = secret("plain")
                file = "file text"
                missingFile: error Cairn.yaml:45:19: `fn::readFile`: cannot read `nope.txt`: no such file"#]],
        );
    }

    #[test]
    fn assets_invokes_and_stack_references() {
        check(
            "  text:\n    fn::stringAsset: hi\n  path:\n    fn::fileAsset: ./a.txt\n  archive:\n    fn::fileArchive: ./dir\n  invoked:\n    fn::invoke:\n      function: random:getPet\n      arguments:\n        size: ${size}\n      options:\n        provider: ${prov}\n      return: token\n  viaProvider:\n    fn::invoke:\n      function: random:getPet\n      options:\n        provider: ${prov}\n      return: provider\n  whole:\n    fn::invoke:\n      function: random:index/getPet:getPet\n  other:\n    fn::stackReference: [org/other/dev, key]\n",
            expect![[r#"
                text = {4dabf18193072939515e22adb298388d: "c44067f5952c0a294b673a41bacd8c17", text: "hi"}
                path = {4dabf18193072939515e22adb298388d: "c44067f5952c0a294b673a41bacd8c17", path: "./a.txt"}
                archive = {4dabf18193072939515e22adb298388d: "0def7320c3a5731c473e5ecbe6d01bc7", path: "./dir"}
                invoked = "random:index/getPet:getPet"
                viaProvider = "prov"
                whole = {provider: null, token: "random:index/getPet:getPet"}
                other = "org/other/dev/key""#]],
        );
    }

    #[test]
    fn eval_error_display_names_the_place() {
        let error = EvalError {
            message: "boom".to_owned(),
            span: Span {
                file: "Cairn.yaml".to_owned(),
                start: 0,
                end: 1,
                line: 3,
                column: 7,
            },
        };
        assert_eq!(error.to_string(), "Cairn.yaml:3:7: boom");
    }
}
