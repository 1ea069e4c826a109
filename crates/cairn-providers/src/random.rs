//! The `random` provider: Pulumi's `random` package (itself Terraform's `random` provider).
//!
//! Every resource generates its values once, on create, and keeps them in state; nothing exists
//! outside the state, so `read` returns what is stored and `delete` does nothing. As in Terraform,
//! every input change forces replacement, which is the only way to get new values (`keepers` exist
//! for exactly that). With a `seed`, `RandomInteger` and `RandomShuffle` are deterministic;
//! they use Cairn's own generator, so the values differ from Terraform's for the same seed.

use std::collections::BTreeMap;

use async_trait::async_trait;
use base64::Engine as _;
use cairn_core::{PackageSchema, PropertyMap, PropertySchema, PropertyType, ResourceSchema, Value};
use cairn_provider::{
    CallContext, CheckFailure, CheckResponse, CreateResponse, DiffResponse, Provider,
    ProviderError, ProviderResult, ReadResponse,
};
use petname::Generator as _;
use rand::seq::SliceRandom as _;
use rand::{Rng, RngCore, SeedableRng as _};

use crate::properties::{
    apply_defaults, check_against_schema, failure, is_unknown, known_bool, known_integer,
    known_str, property,
};

pub const RANDOM_BYTES: &str = "random:index/randomBytes:RandomBytes";
pub const RANDOM_ID: &str = "random:index/randomId:RandomId";
pub const RANDOM_INTEGER: &str = "random:index/randomInteger:RandomInteger";
pub const RANDOM_PASSWORD: &str = "random:index/randomPassword:RandomPassword";
pub const RANDOM_PET: &str = "random:index/randomPet:RandomPet";
pub const RANDOM_SHUFFLE: &str = "random:index/randomShuffle:RandomShuffle";
pub const RANDOM_STRING: &str = "random:index/randomString:RandomString";
pub const RANDOM_UUID: &str = "random:index/randomUuid:RandomUuid";
pub const RANDOM_UUID4: &str = "random:index/randomUuid4:RandomUuid4";
pub const RANDOM_UUID7: &str = "random:index/randomUuid7:RandomUuid7";

/// The `random` provider. See the module docs.
pub struct RandomProvider {
    schema: PackageSchema,
}

impl RandomProvider {
    pub fn new() -> RandomProvider {
        RandomProvider {
            schema: random_schema(),
        }
    }

    fn resource_schema(&self, kind: RandomKind) -> &ResourceSchema {
        self.schema
            .resource(kind.token())
            .expect("random_schema declares one resource per RandomKind")
    }
}

impl Default for RandomProvider {
    fn default() -> Self {
        RandomProvider::new()
    }
}

/// The resource types this provider serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RandomKind {
    Bytes,
    Id,
    Integer,
    Password,
    Pet,
    Shuffle,
    String,
    Uuid,
    Uuid4,
    Uuid7,
}

impl RandomKind {
    const ALL: [RandomKind; 10] = [
        RandomKind::Bytes,
        RandomKind::Id,
        RandomKind::Integer,
        RandomKind::Password,
        RandomKind::Pet,
        RandomKind::Shuffle,
        RandomKind::String,
        RandomKind::Uuid,
        RandomKind::Uuid4,
        RandomKind::Uuid7,
    ];

    fn token(self) -> &'static str {
        match self {
            RandomKind::Bytes => RANDOM_BYTES,
            RandomKind::Id => RANDOM_ID,
            RandomKind::Integer => RANDOM_INTEGER,
            RandomKind::Password => RANDOM_PASSWORD,
            RandomKind::Pet => RANDOM_PET,
            RandomKind::Shuffle => RANDOM_SHUFFLE,
            RandomKind::String => RANDOM_STRING,
            RandomKind::Uuid => RANDOM_UUID,
            RandomKind::Uuid4 => RANDOM_UUID4,
            RandomKind::Uuid7 => RANDOM_UUID7,
        }
    }

    fn from_token(token: &str) -> ProviderResult<RandomKind> {
        RandomKind::ALL
            .into_iter()
            .find(|kind| kind.token() == token)
            .ok_or_else(|| ProviderError::UnknownType(token.to_owned()))
    }

    fn description(self) -> &'static str {
        match self {
            RandomKind::Bytes => "Random bytes, given as base64 and hex; both are secret",
            RandomKind::Id => {
                "A random identifier of `byteLength` bytes, given as base64, hex and decimal"
            }
            RandomKind::Integer => "A random integer between `min` and `max`, both included",
            RandomKind::Password => {
                "A random password; like `RandomString`, but its `result` is secret and also \
                 given as a bcrypt hash"
            }
            RandomKind::Pet => {
                "A random pet name (`adjective-animal`), usable as a unique, readable name; the \
                 name is the resource's id"
            }
            RandomKind::Shuffle => "A random permutation of a list of strings",
            RandomKind::String => "A random string of characters from chosen classes",
            RandomKind::Uuid | RandomKind::Uuid4 => "A random version 4 UUID",
            RandomKind::Uuid7 => "A version 7 (time-ordered) UUID",
        }
    }

    /// Input properties (all of them force replacement, as in Terraform).
    fn inputs(self) -> BTreeMap<String, PropertySchema> {
        let integer = |description| property(PropertyType::Integer, description);
        let boolean = |description| property(PropertyType::Boolean, description);
        let string = |description| property(PropertyType::String, description);
        let seed = string(
            "Arbitrary string used to seed the generator, so that the same seed gives the \
             same result",
        );
        let mut inputs: Vec<(&str, PropertySchema)> = vec![(
            "keepers",
            property(
                PropertyType::Map(Box::new(PropertyType::Any)),
                "Arbitrary values that, when changed, replace the resource and so generate new \
                 values",
            ),
        )];
        match self {
            RandomKind::Bytes => inputs.push((
                "length",
                integer("The number of bytes requested, at least 1").required(),
            )),
            RandomKind::Id => {
                inputs.push((
                    "byteLength",
                    integer("The number of random bytes to produce, at least 1").required(),
                ));
                inputs.push((
                    "prefix",
                    string("Arbitrary prefix added to every output (but not to the id)"),
                ));
            }
            RandomKind::Integer => {
                inputs.push(("min", integer("The smallest possible result").required()));
                inputs.push(("max", integer("The largest possible result").required()));
                inputs.push(("seed", seed));
            }
            RandomKind::Password | RandomKind::String => {
                inputs.extend([
                    (
                        "length",
                        integer(
                            "The length of the string, at least 1 and at least the sum of the \
                             minimums",
                        )
                        .required(),
                    ),
                    (
                        "special",
                        boolean("Include special characters (default `true`)"),
                    ),
                    (
                        "upper",
                        boolean("Include upper-case letters (default `true`)"),
                    ),
                    (
                        "lower",
                        boolean("Include lower-case letters (default `true`)"),
                    ),
                    ("numeric", boolean("Include digits (default `true`)")),
                    (
                        "number",
                        boolean("Deprecated alias of `numeric` (default `true`)"),
                    ),
                    (
                        "minUpper",
                        integer("Minimum number of upper-case letters (default 0)"),
                    ),
                    (
                        "minLower",
                        integer("Minimum number of lower-case letters (default 0)"),
                    ),
                    (
                        "minNumeric",
                        integer("Minimum number of digits (default 0)"),
                    ),
                    (
                        "minSpecial",
                        integer("Minimum number of special characters (default 0)"),
                    ),
                    (
                        "overrideSpecial",
                        string("The special characters to use instead of `!@#$%&*()-_=+[]{}<>:?`"),
                    ),
                ]);
            }
            RandomKind::Pet => {
                inputs.push(("length", integer("The number of words (default 2)")));
                inputs.push((
                    "prefix",
                    string("A string put before the name, followed by the separator"),
                ));
                inputs.push((
                    "separator",
                    string("The character between words (default `-`)"),
                ));
            }
            RandomKind::Shuffle => {
                inputs.push((
                    "inputs",
                    property(
                        PropertyType::Array(Box::new(PropertyType::String)),
                        "The list of strings to shuffle",
                    )
                    .required(),
                ));
                inputs.push((
                    "resultCount",
                    integer(
                        "The number of results to return (default: the number of inputs); \
                         more than that repeats the inputs",
                    ),
                ));
                inputs.push(("seed", seed));
            }
            RandomKind::Uuid | RandomKind::Uuid4 | RandomKind::Uuid7 => {}
        }
        inputs
            .into_iter()
            .map(|(name, schema)| (name.to_owned(), schema.replaces()))
            .collect()
    }

    /// The outputs this resource generates, on top of echoing its inputs.
    fn generated_outputs(self) -> BTreeMap<String, PropertySchema> {
        let string = |description| property(PropertyType::String, description);
        let outputs: Vec<(&str, PropertySchema)> = match self {
            RandomKind::Bytes => vec![
                (
                    "base64",
                    string("The bytes, base64-encoded (standard, padded)").secret(),
                ),
                ("hex", string("The bytes, hex-encoded").secret()),
            ],
            RandomKind::Id => vec![
                (
                    "b64Std",
                    string("The prefix and the bytes, base64-encoded (standard, padded)"),
                ),
                (
                    "b64Url",
                    string("The prefix and the bytes, base64url-encoded (unpadded)"),
                ),
                (
                    "dec",
                    string("The prefix and the bytes read as a big-endian decimal number"),
                ),
                (
                    "hex",
                    string("The prefix and the bytes, lower-case hex-encoded"),
                ),
            ],
            RandomKind::Integer => vec![(
                "result",
                property(PropertyType::Integer, "The random integer"),
            )],
            RandomKind::Password => vec![
                ("result", string("The generated password").secret()),
                (
                    "bcryptHash",
                    string("A bcrypt hash of the password (cost 10)").secret(),
                ),
            ],
            RandomKind::Pet => vec![],
            RandomKind::Shuffle => vec![(
                "results",
                property(
                    PropertyType::Array(Box::new(PropertyType::String)),
                    "The shuffled strings",
                ),
            )],
            RandomKind::String => vec![("result", string("The generated string"))],
            RandomKind::Uuid | RandomKind::Uuid4 | RandomKind::Uuid7 => {
                vec![("result", string("The generated UUID"))]
            }
        };
        outputs
            .into_iter()
            .map(|(name, schema)| (name.to_owned(), schema))
            .collect()
    }

    /// Defaults `check` fills in for absent inputs.
    fn defaults(self) -> Vec<(&'static str, Value)> {
        match self {
            RandomKind::Password | RandomKind::String => vec![
                ("special", Value::Bool(true)),
                ("upper", Value::Bool(true)),
                ("lower", Value::Bool(true)),
                ("numeric", Value::Bool(true)),
                ("number", Value::Bool(true)),
                ("minUpper", Value::Number(0.0)),
                ("minLower", Value::Number(0.0)),
                ("minNumeric", Value::Number(0.0)),
                ("minSpecial", Value::Number(0.0)),
            ],
            RandomKind::Pet => vec![
                ("length", Value::Number(2.0)),
                ("separator", Value::string("-")),
            ],
            _ => vec![],
        }
    }
}

fn random_schema() -> PackageSchema {
    let resources = RandomKind::ALL
        .into_iter()
        .map(|kind| {
            let inputs = kind.inputs();
            let mut outputs: BTreeMap<String, PropertySchema> = inputs
                .iter()
                .map(|(name, input)| {
                    let mut output = input.clone();
                    output.required = false;
                    output.replace_on_changes = false;
                    (name.clone(), output)
                })
                .collect();
            outputs.extend(kind.generated_outputs());
            ResourceSchema {
                token: kind.token().to_owned(),
                description: kind.description().to_owned(),
                inputs,
                outputs,
                accepts_any_input: false,
            }
        })
        .collect();
    PackageSchema {
        name: "random".to_owned(),
        config: Default::default(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        resources,
        functions: Vec::new(),
    }
}

/// The kind-specific rules on top of the schema's type checks. Unknown inputs are skipped.
fn check_rules(kind: RandomKind, inputs: &PropertyMap) -> Vec<CheckFailure> {
    let mut failures = Vec::new();
    let mut require_at_least = |name: &str, minimum: i64| {
        if let Some(value) = known_integer(inputs, name)
            && value < minimum
        {
            failures.push(failure(
                name,
                format!("`{name}` must be at least {minimum}, not {value}"),
            ));
        }
    };
    match kind {
        RandomKind::Bytes => require_at_least("length", 1),
        RandomKind::Id => require_at_least("byteLength", 1),
        RandomKind::Shuffle => require_at_least("resultCount", 0),
        RandomKind::Pet => {
            require_at_least("length", 1);
            if let Some(length) = known_integer(inputs, "length")
                && length > i64::from(u8::MAX)
            {
                failures.push(failure(
                    "length",
                    format!("`length` must be at most {}, not {length}", u8::MAX),
                ));
            }
        }
        RandomKind::Integer => {
            if let (Some(min), Some(max)) =
                (known_integer(inputs, "min"), known_integer(inputs, "max"))
                && min > max
            {
                failures.push(failure(
                    "min",
                    format!("`min` ({min}) must be less than or equal to `max` ({max})"),
                ));
            }
        }
        RandomKind::Password | RandomKind::String => {
            require_at_least("length", 1);
            for name in MINIMUM_NAMES {
                require_at_least(name, 0);
            }
            failures.extend(check_string_length(inputs));
        }
        RandomKind::Uuid | RandomKind::Uuid4 | RandomKind::Uuid7 => {}
    }
    failures
}

const MINIMUM_NAMES: [&str; 4] = ["minUpper", "minLower", "minNumeric", "minSpecial"];

/// `length` must leave room for the minimums, and characters beyond the minimums need at least
/// one enabled class to come from.
fn check_string_length(inputs: &PropertyMap) -> Vec<CheckFailure> {
    let mut failures = Vec::new();
    let Some(length) = known_integer(inputs, "length") else {
        return failures;
    };
    let minimums: Option<Vec<i64>> = MINIMUM_NAMES
        .iter()
        .map(|name| known_integer(inputs, name))
        .collect();
    let Some(minimums) = minimums else {
        return failures;
    };
    let sum_of_minimums: i64 = minimums.iter().map(|minimum| minimum.max(&0)).sum();
    if length < sum_of_minimums {
        failures.push(failure(
            "length",
            format!(
                "`length` ({length}) must be at least the sum of `minUpper`, `minLower`, \
                 `minNumeric` and `minSpecial` ({sum_of_minimums})"
            ),
        ));
    }
    let classes: Option<Vec<bool>> = ["upper", "lower", "numeric", "special"]
        .iter()
        .map(|name| known_bool(inputs, name))
        .collect();
    if let Some(classes) = classes
        && !classes.contains(&true)
        && length > sum_of_minimums
    {
        failures.push(CheckFailure {
            property: None,
            reason: "at least one of `upper`, `lower`, `numeric` and `special` must be true"
                .to_owned(),
        });
    }
    failures
}

/// `number` is the deprecated spelling of `numeric`: a value given for one is copied to the other,
/// and giving both with different values is an error.
fn reconcile_number_alias(inputs: &mut PropertyMap, failures: &mut Vec<CheckFailure>) {
    let number = inputs
        .get("number")
        .filter(|value| !value.is_null())
        .cloned();
    let numeric = inputs
        .get("numeric")
        .filter(|value| !value.is_null())
        .cloned();
    match (number, numeric) {
        (Some(number), None) => {
            inputs.insert("numeric".to_owned(), number);
        }
        (None, Some(numeric)) => {
            inputs.insert("number".to_owned(), numeric);
        }
        (Some(number), Some(numeric)) => {
            let both_known = !number.contains_unknown() && !numeric.contains_unknown();
            if both_known && number != numeric {
                failures.push(failure(
                    "number",
                    "`number` is a deprecated alias of `numeric`: give only `numeric`, or the \
                     same value for both"
                        .to_owned(),
                ));
            }
        }
        (None, None) => {}
    }
}

#[async_trait]
impl Provider for RandomProvider {
    fn package(&self) -> &str {
        "random"
    }

    fn schema(&self) -> &PackageSchema {
        &self.schema
    }

    async fn check(
        &self,
        _ctx: &CallContext,
        type_token: &str,
        _olds: Option<&PropertyMap>,
        news: &PropertyMap,
    ) -> ProviderResult<CheckResponse> {
        let kind = RandomKind::from_token(type_token)?;
        let mut failures = check_against_schema(&self.resource_schema(kind).inputs, news);
        let mut inputs = news.clone();
        if matches!(kind, RandomKind::Password | RandomKind::String) {
            reconcile_number_alias(&mut inputs, &mut failures);
        }
        apply_defaults(&mut inputs, &kind.defaults());
        // Kind-specific rules only make sense on well-typed inputs.
        if failures.is_empty() {
            failures.extend(check_rules(kind, &inputs));
        }
        Ok(CheckResponse { inputs, failures })
    }

    async fn diff(
        &self,
        _ctx: &CallContext,
        type_token: &str,
        _id: &str,
        old_inputs: &PropertyMap,
        _old_outputs: &PropertyMap,
        news: &PropertyMap,
    ) -> ProviderResult<DiffResponse> {
        let kind = RandomKind::from_token(type_token)?;
        Ok(cairn_provider::diff_by_schema(
            Some(self.resource_schema(kind)),
            old_inputs,
            news,
        ))
    }

    async fn create(
        &self,
        _ctx: &CallContext,
        type_token: &str,
        inputs: &PropertyMap,
        preview: bool,
    ) -> ProviderResult<CreateResponse> {
        let kind = RandomKind::from_token(type_token)?;
        let mut outputs = inputs.clone();
        apply_defaults(&mut outputs, &kind.defaults());
        if preview {
            for name in kind.generated_outputs().into_keys() {
                outputs.insert(name, Value::Unknown);
            }
            return Ok(CreateResponse {
                id: String::new(),
                outputs,
            });
        }
        let generated = generate(kind, &outputs).await?;
        outputs.extend(generated.outputs);
        Ok(CreateResponse {
            id: generated.id,
            outputs,
        })
    }

    async fn read(
        &self,
        _ctx: &CallContext,
        type_token: &str,
        id: &str,
        inputs: &PropertyMap,
        outputs: &PropertyMap,
    ) -> ProviderResult<Option<ReadResponse>> {
        let kind = RandomKind::from_token(type_token)?;
        if !outputs.is_empty() {
            return Ok(Some(ReadResponse {
                id: id.to_owned(),
                inputs: inputs.clone(),
                outputs: outputs.clone(),
            }));
        }
        // No outputs: an import. As the random provider does, the ID is the value itself, and
        // the inputs not given are what would have made it.
        let mut inputs = inputs.clone();
        let imported = import(kind, id, &mut inputs).await?;
        apply_defaults(&mut inputs, &kind.defaults());
        let mut outputs = inputs.clone();
        outputs.extend(imported.outputs);
        Ok(Some(ReadResponse {
            id: imported.id,
            inputs,
            outputs,
        }))
    }

    async fn update(
        &self,
        _ctx: &CallContext,
        type_token: &str,
        _id: &str,
        _old_inputs: &PropertyMap,
        old_outputs: &PropertyMap,
        news: &PropertyMap,
        _preview: bool,
    ) -> ProviderResult<PropertyMap> {
        // Every input replaces, so the engine never asks for an update; should it, the generated
        // values are kept, since regenerating them is what replacement is for.
        let kind = RandomKind::from_token(type_token)?;
        let mut outputs = news.clone();
        apply_defaults(&mut outputs, &kind.defaults());
        for name in kind.generated_outputs().into_keys() {
            if let Some(value) = old_outputs.get(&name) {
                outputs.insert(name, value.clone());
            }
        }
        Ok(outputs)
    }

    async fn delete(
        &self,
        _ctx: &CallContext,
        type_token: &str,
        _id: &str,
        _inputs: &PropertyMap,
        _outputs: &PropertyMap,
    ) -> ProviderResult<()> {
        // The values live only in state; forgetting them is all deleting means.
        RandomKind::from_token(type_token)?;
        Ok(())
    }

    async fn invoke(
        &self,
        _ctx: &CallContext,
        function_token: &str,
        _args: &PropertyMap,
    ) -> ProviderResult<PropertyMap> {
        Err(ProviderError::UnknownFunction(function_token.to_owned()))
    }
}

/// What `create` generated: the resource's id and the generated outputs.
struct Generated {
    id: String,
    outputs: PropertyMap,
}

/// The id Terraform gives resources whose value is secret or has no natural id.
const SECRET_ID: &str = "none";

async fn generate(kind: RandomKind, inputs: &PropertyMap) -> ProviderResult<Generated> {
    let generated = match kind {
        RandomKind::Bytes => {
            let length = required_count(inputs, "length")?;
            let mut bytes = vec![0_u8; length];
            rand::thread_rng().fill_bytes(&mut bytes);
            Generated {
                id: SECRET_ID.to_owned(),
                outputs: PropertyMap::from([
                    (
                        "base64".to_owned(),
                        Value::string(base64::engine::general_purpose::STANDARD.encode(&bytes))
                            .into_secret(),
                    ),
                    (
                        "hex".to_owned(),
                        Value::string(hex::encode(&bytes)).into_secret(),
                    ),
                ]),
            }
        }
        RandomKind::Id => {
            let byte_length = required_count(inputs, "byteLength")?;
            let mut bytes = vec![0_u8; byte_length];
            rand::thread_rng().fill_bytes(&mut bytes);
            let prefix = known_str(inputs, "prefix").unwrap_or("");
            random_id_outputs(&bytes, prefix)
        }
        RandomKind::Integer => {
            let min = required_integer(inputs, "min")?;
            let max = required_integer(inputs, "max")?;
            if min > max {
                return Err(ProviderError::Failed(format!(
                    "`min` ({min}) must be less than or equal to `max` ({max})"
                )));
            }
            let result = seeded_rng(known_str(inputs, "seed")).gen_range(min..=max);
            Generated {
                id: result.to_string(),
                outputs: PropertyMap::from([("result".to_owned(), Value::Number(result as f64))]),
            }
        }
        RandomKind::Password => {
            let options = StringOptions::from_inputs(inputs)?;
            let password = generate_string(&options, &mut rand::thread_rng())?;
            let bcrypt_hash = bcrypt_hash(password.clone()).await?;
            Generated {
                id: SECRET_ID.to_owned(),
                outputs: PropertyMap::from([
                    ("result".to_owned(), Value::string(password).into_secret()),
                    (
                        "bcryptHash".to_owned(),
                        Value::string(bcrypt_hash).into_secret(),
                    ),
                ]),
            }
        }
        RandomKind::Pet => {
            let length = required_integer(inputs, "length")?;
            let words = u8::try_from(length)
                .ok()
                .filter(|words| *words >= 1)
                .ok_or_else(|| {
                    ProviderError::Failed(format!(
                        "`length` must be between 1 and {}, not {length}",
                        u8::MAX
                    ))
                })?;
            let separator = known_str(inputs, "separator").unwrap_or("-");
            let prefix = known_str(inputs, "prefix");
            let pet = generate_pet(words, separator, prefix, &mut rand::thread_rng())?;
            Generated {
                id: pet,
                outputs: PropertyMap::new(),
            }
        }
        RandomKind::Shuffle => {
            let items: Vec<Value> = inputs
                .get("inputs")
                .and_then(Value::as_array)
                .cloned()
                .ok_or_else(|| missing("inputs"))?;
            let result_count = match known_integer(inputs, "resultCount") {
                Some(count) => usize::try_from(count).map_err(|_| {
                    ProviderError::Failed(format!("`resultCount` must be at least 0, not {count}"))
                })?,
                None => items.len(),
            };
            let mut rng = seeded_rng(known_str(inputs, "seed"));
            Generated {
                id: "-".to_owned(),
                outputs: PropertyMap::from([(
                    "results".to_owned(),
                    Value::Array(shuffle(&items, result_count, &mut rng)),
                )]),
            }
        }
        RandomKind::String => {
            let options = StringOptions::from_inputs(inputs)?;
            let result = generate_string(&options, &mut rand::thread_rng())?;
            Generated {
                id: result.clone(),
                outputs: PropertyMap::from([("result".to_owned(), Value::string(result))]),
            }
        }
        RandomKind::Uuid | RandomKind::Uuid4 | RandomKind::Uuid7 => {
            let uuid = if kind == RandomKind::Uuid7 {
                uuid::Uuid::now_v7()
            } else {
                uuid::Uuid::new_v4()
            };
            let result = uuid.hyphenated().to_string();
            Generated {
                id: result.clone(),
                outputs: PropertyMap::from([("result".to_owned(), Value::string(result))]),
            }
        }
    };
    Ok(generated)
}

/// The outputs of an imported resource, from its ID: `RandomString` and `RandomPassword` take
/// the value, `RandomPet` the name, `RandomInteger` the number (or Terraform's
/// `result,min,max[,seed]`), `RandomId` the base64url bytes, `RandomBytes` the base64 bytes,
/// `RandomUuid` the UUID. Inputs that size the value (`length`, `byteLength`, `min`, `max`) are
/// filled in from it when not given.
async fn import(kind: RandomKind, id: &str, inputs: &mut PropertyMap) -> ProviderResult<Generated> {
    // The ID is not quoted back: for `RandomBytes` it is the secret value.
    let cannot = |what: &str| {
        ProviderError::Failed(format!(
            "cannot import `{}`: the ID must be {what}",
            kind.token()
        ))
    };
    let imported = match kind {
        RandomKind::String | RandomKind::Password => {
            set_if_absent(inputs, "length", Value::Number(id.chars().count() as f64));
            if kind == RandomKind::String {
                Generated {
                    id: id.to_owned(),
                    outputs: PropertyMap::from([("result".to_owned(), Value::string(id))]),
                }
            } else {
                let bcrypt_hash = bcrypt_hash(id.to_owned()).await?;
                Generated {
                    id: SECRET_ID.to_owned(),
                    outputs: PropertyMap::from([
                        ("result".to_owned(), Value::string(id).into_secret()),
                        (
                            "bcryptHash".to_owned(),
                            Value::string(bcrypt_hash).into_secret(),
                        ),
                    ]),
                }
            }
        }
        RandomKind::Pet => {
            let separator = known_str(inputs, "separator").unwrap_or("-").to_owned();
            let words = if separator.is_empty() {
                1
            } else {
                id.split(separator.as_str()).count()
            };
            set_if_absent(inputs, "length", Value::Number(words as f64));
            Generated {
                id: id.to_owned(),
                outputs: PropertyMap::new(),
            }
        }
        RandomKind::Integer => {
            let parts: Vec<&str> = id.split(',').collect();
            let numbers: Option<Vec<i64>> = parts
                .iter()
                .take(3)
                .map(|part| part.trim().parse().ok())
                .collect();
            let (result, min, max) = match (numbers.as_deref(), parts.len()) {
                (Some(&[result]), 1) => (result, result, result),
                (Some(&[result, min, max]), 3 | 4) if (min..=max).contains(&result) => {
                    (result, min, max)
                }
                _ => return Err(cannot("an integer, or `result,min,max[,seed]`")),
            };
            set_if_absent(inputs, "min", Value::Number(min as f64));
            set_if_absent(inputs, "max", Value::Number(max as f64));
            if let Some(seed) = parts.get(3) {
                set_if_absent(inputs, "seed", Value::string(*seed));
            }
            Generated {
                id: result.to_string(),
                outputs: PropertyMap::from([("result".to_owned(), Value::Number(result as f64))]),
            }
        }
        RandomKind::Id => {
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(id.trim_end_matches('='))
                .ok()
                .filter(|bytes| !bytes.is_empty())
                .ok_or_else(|| cannot("the bytes, base64url-encoded"))?;
            set_if_absent(inputs, "byteLength", Value::Number(bytes.len() as f64));
            random_id_outputs(&bytes, known_str(inputs, "prefix").unwrap_or(""))
        }
        RandomKind::Bytes => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(id)
                .ok()
                .filter(|bytes| !bytes.is_empty())
                .ok_or_else(|| cannot("the bytes, base64-encoded"))?;
            set_if_absent(inputs, "length", Value::Number(bytes.len() as f64));
            Generated {
                id: SECRET_ID.to_owned(),
                outputs: PropertyMap::from([
                    ("base64".to_owned(), Value::string(id).into_secret()),
                    (
                        "hex".to_owned(),
                        Value::string(hex::encode(&bytes)).into_secret(),
                    ),
                ]),
            }
        }
        RandomKind::Uuid | RandomKind::Uuid4 | RandomKind::Uuid7 => {
            let uuid = uuid::Uuid::parse_str(id).map_err(|_| cannot("a UUID"))?;
            let result = uuid.hyphenated().to_string();
            Generated {
                id: result.clone(),
                outputs: PropertyMap::from([("result".to_owned(), Value::string(result))]),
            }
        }
        RandomKind::Shuffle => {
            return Err(ProviderError::Failed(format!(
                "`{}` cannot be imported: its result depends on inputs an ID cannot carry",
                kind.token()
            )));
        }
    };
    Ok(imported)
}

fn set_if_absent(inputs: &mut PropertyMap, name: &str, value: Value) {
    if inputs.get(name).is_none_or(Value::is_null) {
        inputs.insert(name.to_owned(), value);
    }
}

fn missing(name: &str) -> ProviderError {
    ProviderError::Failed(format!("missing required property `{name}`"))
}

fn required_integer(inputs: &PropertyMap, name: &str) -> ProviderResult<i64> {
    known_integer(inputs, name).ok_or_else(|| {
        if is_unknown(inputs, name) {
            ProviderError::Failed(format!("`{name}` is not known yet"))
        } else {
            missing(name)
        }
    })
}

/// A required integer that counts something and so must be at least 1.
fn required_count(inputs: &PropertyMap, name: &str) -> ProviderResult<usize> {
    let count = required_integer(inputs, name)?;
    usize::try_from(count)
        .ok()
        .filter(|count| *count >= 1)
        .ok_or_else(|| ProviderError::Failed(format!("`{name}` must be at least 1, not {count}")))
}

/// A generator seeded from `seed` when there is one, else from the operating system. A seed
/// must give the same result forever, so the generator is ChaCha12, which `rand_chacha`
/// specifies bit for bit (`StdRng` may change with any `rand` release), and the seed is hashed
/// with FNV-1a (std's hasher may change between Rust releases).
fn seeded_rng(seed: Option<&str>) -> rand_chacha::ChaCha12Rng {
    match seed {
        Some(seed) => {
            let hash = seed.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
                (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
            });
            rand_chacha::ChaCha12Rng::seed_from_u64(hash)
        }
        None => rand_chacha::ChaCha12Rng::from_entropy(),
    }
}

/// Terraform's `random_id` outputs: the prefix plus the bytes in four encodings; the id is the
/// unprefixed base64url form.
fn random_id_outputs(bytes: &[u8], prefix: &str) -> Generated {
    let b64_url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let b64_std = base64::engine::general_purpose::STANDARD.encode(bytes);
    Generated {
        outputs: PropertyMap::from([
            (
                "b64Std".to_owned(),
                Value::string(format!("{prefix}{b64_std}")),
            ),
            (
                "b64Url".to_owned(),
                Value::string(format!("{prefix}{b64_url}")),
            ),
            (
                "dec".to_owned(),
                Value::string(format!("{prefix}{}", big_endian_to_decimal(bytes))),
            ),
            (
                "hex".to_owned(),
                Value::string(format!("{prefix}{}", hex::encode(bytes))),
            ),
        ]),
        id: b64_url,
    }
}

/// The decimal digits of an arbitrarily long big-endian unsigned number.
fn big_endian_to_decimal(bytes: &[u8]) -> String {
    // Decimal digits, least significant first; each byte multiplies the number by 256.
    let mut digits: Vec<u8> = vec![0];
    for byte in bytes {
        let mut carry = u32::from(*byte);
        for digit in &mut digits {
            let value = u32::from(*digit) * 256 + carry;
            *digit = (value % 10) as u8;
            carry = value / 10;
        }
        while carry > 0 {
            digits.push((carry % 10) as u8);
            carry /= 10;
        }
    }
    while digits.len() > 1 && digits.last() == Some(&0) {
        digits.pop();
    }
    digits
        .iter()
        .rev()
        .map(|digit| char::from(b'0' + digit))
        .collect()
}

/// Terraform's `random_shuffle`: permutations of the inputs, one after another, until
/// `result_count` items have been taken.
fn shuffle(items: &[Value], result_count: usize, rng: &mut impl Rng) -> Vec<Value> {
    let mut results = Vec::with_capacity(result_count);
    if items.is_empty() {
        return results;
    }
    while results.len() < result_count {
        let mut permutation: Vec<&Value> = items.iter().collect();
        permutation.shuffle(rng);
        let still_needed = result_count - results.len();
        results.extend(permutation.into_iter().take(still_needed).cloned());
    }
    results
}

fn generate_pet(
    words: u8,
    separator: &str,
    prefix: Option<&str>,
    rng: &mut dyn RngCore,
) -> ProviderResult<String> {
    let pet = petname::Petnames::default()
        .generate(rng, words, separator)
        .ok_or_else(|| ProviderError::Failed("the pet name word lists are empty".to_owned()))?;
    Ok(match prefix {
        Some(prefix) if !prefix.is_empty() => format!("{prefix}{separator}{pet}"),
        _ => pet,
    })
}

const UPPER_CHARACTERS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const LOWER_CHARACTERS: &str = "abcdefghijklmnopqrstuvwxyz";
const NUMERIC_CHARACTERS: &str = "0123456789";
const SPECIAL_CHARACTERS: &str = "!@#$%&*()-_=+[]{}<>:?";

/// `RandomString` and `RandomPassword` inputs, with defaults applied.
#[derive(Clone, Debug)]
struct StringOptions {
    length: usize,
    upper: bool,
    lower: bool,
    numeric: bool,
    special: bool,
    min_upper: usize,
    min_lower: usize,
    min_numeric: usize,
    min_special: usize,
    special_characters: String,
}

impl StringOptions {
    fn from_inputs(inputs: &PropertyMap) -> ProviderResult<StringOptions> {
        let count = |name: &str| -> ProviderResult<usize> {
            let value = known_integer(inputs, name).unwrap_or(0);
            usize::try_from(value).map_err(|_| {
                ProviderError::Failed(format!("`{name}` must be at least 0, not {value}"))
            })
        };
        let flag = |name: &str| known_bool(inputs, name).unwrap_or(true);
        let special_characters = match known_str(inputs, "overrideSpecial") {
            Some(characters) if !characters.is_empty() => characters.to_owned(),
            _ => SPECIAL_CHARACTERS.to_owned(),
        };
        Ok(StringOptions {
            length: required_count(inputs, "length")?,
            upper: flag("upper"),
            lower: flag("lower"),
            numeric: flag("numeric") && flag("number"),
            special: flag("special"),
            min_upper: count("minUpper")?,
            min_lower: count("minLower")?,
            min_numeric: count("minNumeric")?,
            min_special: count("minSpecial")?,
            special_characters,
        })
    }
}

/// Terraform's algorithm: first the minimum number of characters of each class (whether or not
/// the class is enabled, as Terraform does), then the rest from every enabled class, then a
/// shuffle so the classes are not grouped.
fn generate_string(options: &StringOptions, rng: &mut impl Rng) -> ProviderResult<String> {
    let classes: [(&str, bool, usize); 4] = [
        (UPPER_CHARACTERS, options.upper, options.min_upper),
        (LOWER_CHARACTERS, options.lower, options.min_lower),
        (NUMERIC_CHARACTERS, options.numeric, options.min_numeric),
        (
            &options.special_characters,
            options.special,
            options.min_special,
        ),
    ];
    let mut characters: Vec<char> = Vec::with_capacity(options.length);
    let mut pool: Vec<char> = Vec::new();
    for (class, is_enabled, minimum) in classes {
        let class: Vec<char> = class.chars().collect();
        for _ in 0..minimum {
            characters.push(class[rng.gen_range(0..class.len())]);
        }
        if is_enabled {
            pool.extend(class);
        }
    }
    if characters.len() > options.length {
        return Err(ProviderError::Failed(format!(
            "`length` ({}) must be at least the sum of `minUpper`, `minLower`, `minNumeric` and \
             `minSpecial` ({})",
            options.length,
            characters.len()
        )));
    }
    if characters.len() < options.length && pool.is_empty() {
        return Err(ProviderError::Failed(
            "at least one of `upper`, `lower`, `numeric` and `special` must be true".to_owned(),
        ));
    }
    while characters.len() < options.length {
        characters.push(pool[rng.gen_range(0..pool.len())]);
    }
    characters.shuffle(rng);
    Ok(characters.into_iter().collect())
}

/// Go's bcrypt default cost, which Terraform uses (the Rust crate's default is 12).
const BCRYPT_COST: u32 = 10;

/// bcrypt as Terraform computes it (`$2a$`, cost 10). Hashing takes tens of milliseconds of CPU,
/// so it runs on the blocking pool rather than stalling other resources' operations.
async fn bcrypt_hash(password: String) -> ProviderResult<String> {
    let hashing = tokio::task::spawn_blocking(move || {
        bcrypt::hash_with_result(password, BCRYPT_COST)
            .map(|parts| parts.format_for_version(bcrypt::Version::TwoA))
    });
    let hashed = hashing
        .await
        .map_err(|error| ProviderError::Failed(format!("hashing the password: {error}")))?;
    hashed.map_err(|error| ProviderError::Failed(format!("hashing the password: {error}")))
}

#[cfg(test)]
mod tests {
    use cairn_core::Urn;
    use tokio_util::sync::CancellationToken;

    use super::*;

    fn ctx() -> CallContext {
        CallContext::new(
            Urn::new("dev", "project", None, RANDOM_PET, "thing"),
            CancellationToken::new(),
            std::env::temp_dir(),
        )
    }

    fn props(entries: &[(&str, Value)]) -> PropertyMap {
        entries
            .iter()
            .map(|(name, value)| (name.to_string(), value.clone()))
            .collect()
    }

    fn number(value: f64) -> Value {
        Value::Number(value)
    }

    async fn check(token: &str, news: PropertyMap) -> CheckResponse {
        RandomProvider::new()
            .check(&ctx(), token, None, &news)
            .await
            .unwrap()
    }

    /// Checks, then creates for real; panics if the check fails.
    async fn create(token: &str, news: PropertyMap) -> CreateResponse {
        let checked = check(token, news).await;
        assert_eq!(checked.failures, vec![]);
        RandomProvider::new()
            .create(&ctx(), token, &checked.inputs, false)
            .await
            .unwrap()
    }

    fn failures_of(response: &CheckResponse) -> Vec<String> {
        response
            .failures
            .iter()
            .map(|failure| {
                format!(
                    "{}: {}",
                    failure.property.as_deref().unwrap_or("-"),
                    failure.reason
                )
            })
            .collect()
    }

    fn text(outputs: &PropertyMap, name: &str) -> String {
        outputs[name].as_str().unwrap().to_owned()
    }

    #[test]
    fn schema_has_pulumi_tokens_and_every_input_replaces() {
        let provider = RandomProvider::new();
        let tokens: Vec<&str> = provider
            .schema()
            .resources
            .iter()
            .map(|resource| resource.token.as_str())
            .collect();
        assert_eq!(
            tokens,
            vec![
                RANDOM_BYTES,
                RANDOM_ID,
                RANDOM_INTEGER,
                RANDOM_PASSWORD,
                RANDOM_PET,
                RANDOM_SHUFFLE,
                RANDOM_STRING,
                RANDOM_UUID,
                RANDOM_UUID4,
                RANDOM_UUID7
            ]
        );
        for resource in &provider.schema().resources {
            assert!(
                resource.inputs.contains_key("keepers"),
                "{}",
                resource.token
            );
            for (name, input) in &resource.inputs {
                assert!(input.replace_on_changes, "{} {name}", resource.token);
                assert!(
                    resource.outputs.contains_key(name),
                    "{} {name}",
                    resource.token
                );
            }
        }
        let password = provider.schema().resource(RANDOM_PASSWORD).unwrap();
        assert!(password.outputs["result"].secret);
        assert!(password.outputs["bcryptHash"].secret);
        assert!(!password.outputs["length"].secret);
        assert_eq!(
            password.required_inputs().collect::<Vec<_>>(),
            vec!["length"]
        );
        let string = provider.schema().resource(RANDOM_STRING).unwrap();
        assert!(!string.outputs["result"].secret);
        let integer = provider.schema().resource(RANDOM_INTEGER).unwrap();
        assert_eq!(
            integer.required_inputs().collect::<Vec<_>>(),
            vec!["max", "min"]
        );
        assert_eq!(integer.outputs["result"].type_, PropertyType::Integer);
    }

    #[tokio::test]
    async fn check_fills_pulumi_defaults() {
        let pet = check(RANDOM_PET, PropertyMap::new()).await;
        assert_eq!(
            pet.inputs,
            props(&[("length", number(2.0)), ("separator", Value::string("-"))])
        );
        let string = check(RANDOM_STRING, props(&[("length", number(8.0))])).await;
        assert_eq!(
            string.inputs,
            props(&[
                ("length", number(8.0)),
                ("special", Value::Bool(true)),
                ("upper", Value::Bool(true)),
                ("lower", Value::Bool(true)),
                ("numeric", Value::Bool(true)),
                ("number", Value::Bool(true)),
                ("minUpper", number(0.0)),
                ("minLower", number(0.0)),
                ("minNumeric", number(0.0)),
                ("minSpecial", number(0.0)),
            ])
        );
        // An explicit null counts as absent.
        let null_separator = check(RANDOM_PET, props(&[("separator", Value::Null)])).await;
        assert_eq!(null_separator.inputs["separator"], Value::string("-"));
    }

    #[tokio::test]
    async fn deprecated_number_is_copied_to_numeric() {
        let from_number = check(
            RANDOM_STRING,
            props(&[("length", number(8.0)), ("number", Value::Bool(false))]),
        )
        .await;
        assert_eq!(from_number.inputs["numeric"], Value::Bool(false));
        let from_numeric = check(
            RANDOM_STRING,
            props(&[("length", number(8.0)), ("numeric", Value::Bool(false))]),
        )
        .await;
        assert_eq!(from_numeric.inputs["number"], Value::Bool(false));
        let conflicting = check(
            RANDOM_STRING,
            props(&[
                ("length", number(8.0)),
                ("numeric", Value::Bool(false)),
                ("number", Value::Bool(true)),
            ]),
        )
        .await;
        assert_eq!(
            failures_of(&conflicting),
            vec![
                "number: `number` is a deprecated alias of `numeric`: give only `numeric`, or \
                 the same value for both"
            ]
        );
    }

    #[tokio::test]
    async fn check_reports_invalid_inputs_by_property() {
        let cases: Vec<(&str, PropertyMap, Vec<&str>)> = vec![
            (
                RANDOM_STRING,
                PropertyMap::new(),
                vec!["length: missing required property `length`"],
            ),
            (
                RANDOM_STRING,
                props(&[("length", number(0.0))]),
                vec!["length: `length` must be at least 1, not 0"],
            ),
            (
                RANDOM_PASSWORD,
                props(&[
                    ("length", number(3.0)),
                    ("minUpper", number(2.0)),
                    ("minSpecial", number(2.0)),
                ]),
                vec![
                    "length: `length` (3) must be at least the sum of `minUpper`, `minLower`, \
                     `minNumeric` and `minSpecial` (4)",
                ],
            ),
            (
                RANDOM_STRING,
                props(&[("length", number(4.0)), ("minLower", number(-1.0))]),
                vec!["minLower: `minLower` must be at least 0, not -1"],
            ),
            (
                RANDOM_STRING,
                props(&[
                    ("length", number(4.0)),
                    ("upper", Value::Bool(false)),
                    ("lower", Value::Bool(false)),
                    ("numeric", Value::Bool(false)),
                    ("special", Value::Bool(false)),
                ]),
                vec!["-: at least one of `upper`, `lower`, `numeric` and `special` must be true"],
            ),
            (
                RANDOM_STRING,
                props(&[("length", Value::string("8"))]),
                vec!["length: `length` must be an integer, not string"],
            ),
            (
                RANDOM_INTEGER,
                props(&[("min", number(5.0)), ("max", number(1.0))]),
                vec!["min: `min` (5) must be less than or equal to `max` (1)"],
            ),
            (
                RANDOM_INTEGER,
                props(&[("min", number(1.0))]),
                vec!["max: missing required property `max`"],
            ),
            (
                RANDOM_PET,
                props(&[("length", number(0.0)), ("lenght", number(2.0))]),
                vec!["lenght: unknown property `lenght`"],
            ),
            (
                RANDOM_PET,
                props(&[("length", number(0.0))]),
                vec!["length: `length` must be at least 1, not 0"],
            ),
            (
                RANDOM_ID,
                props(&[("byteLength", number(0.0))]),
                vec!["byteLength: `byteLength` must be at least 1, not 0"],
            ),
            (
                RANDOM_SHUFFLE,
                props(&[("inputs", Value::Array(vec![number(1.0)]))]),
                vec!["inputs: `inputs` must be an array of string, not array"],
            ),
            (
                RANDOM_SHUFFLE,
                props(&[
                    ("inputs", Value::Array(vec![])),
                    ("resultCount", number(-1.0)),
                ]),
                vec!["resultCount: `resultCount` must be at least 0, not -1"],
            ),
            (
                RANDOM_BYTES,
                props(&[("length", number(0.0))]),
                vec!["length: `length` must be at least 1, not 0"],
            ),
        ];
        for (token, news, expected) in cases {
            let response = check(token, news.clone()).await;
            assert_eq!(failures_of(&response), expected, "{token} {news:?}");
        }
    }

    #[tokio::test]
    async fn check_accepts_unknown_inputs_during_preview() {
        let response = check(
            RANDOM_STRING,
            props(&[("length", Value::Unknown), ("minUpper", number(3.0))]),
        )
        .await;
        assert_eq!(response.failures, vec![]);
        assert_eq!(response.inputs["length"], Value::Unknown);
    }

    #[tokio::test]
    async fn check_rejects_unknown_types() {
        let error = RandomProvider::new()
            .check(&ctx(), "random:index:Nope", None, &PropertyMap::new())
            .await
            .unwrap_err();
        assert!(matches!(error, ProviderError::UnknownType(token) if token == "random:index:Nope"));
    }

    #[tokio::test]
    async fn preview_returns_inputs_and_unknown_generated_outputs() {
        let cases = [
            (
                RANDOM_PASSWORD,
                props(&[("length", number(8.0))]),
                vec!["bcryptHash", "result"],
            ),
            (
                RANDOM_STRING,
                props(&[("length", number(8.0))]),
                vec!["result"],
            ),
            (
                RANDOM_INTEGER,
                props(&[("min", number(1.0)), ("max", number(3.0))]),
                vec!["result"],
            ),
            (
                RANDOM_ID,
                props(&[("byteLength", number(4.0))]),
                vec!["b64Std", "b64Url", "dec", "hex"],
            ),
            (RANDOM_UUID, PropertyMap::new(), vec!["result"]),
            (
                RANDOM_SHUFFLE,
                props(&[("inputs", Value::Array(vec![Value::string("a")]))]),
                vec!["results"],
            ),
            (
                RANDOM_BYTES,
                props(&[("length", number(4.0))]),
                vec!["base64", "hex"],
            ),
        ];
        for (token, news, generated) in cases {
            let checked = check(token, news).await;
            let response = RandomProvider::new()
                .create(&ctx(), token, &checked.inputs, true)
                .await
                .unwrap();
            assert_eq!(response.id, "", "{token}");
            for (name, value) in &checked.inputs {
                assert_eq!(&response.outputs[name], value, "{token} {name}");
            }
            let unknown: Vec<&str> = response
                .outputs
                .iter()
                .filter(|(_, value)| **value == Value::Unknown)
                .map(|(name, _)| name.as_str())
                .collect();
            assert_eq!(unknown, generated, "{token}");
        }
        let pet = check(RANDOM_PET, PropertyMap::new()).await;
        let preview = RandomProvider::new()
            .create(&ctx(), RANDOM_PET, &pet.inputs, true)
            .await
            .unwrap();
        assert_eq!(preview.id, "");
        assert_eq!(preview.outputs, pet.inputs);
    }

    #[tokio::test]
    async fn pet_names_have_the_requested_words_separator_and_prefix() {
        let pet = create(RANDOM_PET, PropertyMap::new()).await;
        assert_eq!(pet.id.split('-').count(), 2, "{}", pet.id);
        assert!(pet.id.chars().all(|c| c.is_ascii_lowercase() || c == '-'));
        assert_eq!(
            pet.outputs,
            props(&[("length", number(2.0)), ("separator", Value::string("-"))])
        );
        let long = create(
            RANDOM_PET,
            props(&[
                ("length", number(4.0)),
                ("separator", Value::string("_")),
                ("prefix", Value::string("dev")),
                ("keepers", Value::Object(props(&[("k", number(1.0))]))),
            ]),
        )
        .await;
        let words: Vec<&str> = long.id.split('_').collect();
        assert_eq!(words.len(), 5, "{}", long.id);
        assert_eq!(words[0], "dev");
        assert_eq!(long.outputs["prefix"], Value::string("dev"));
        assert_eq!(
            long.outputs["keepers"],
            Value::Object(props(&[("k", number(1.0))]))
        );
        let one = create(RANDOM_PET, props(&[("length", number(1.0))])).await;
        assert!(!one.id.contains('-') && !one.id.is_empty(), "{}", one.id);
    }

    #[tokio::test]
    async fn strings_have_the_length_and_charsets_asked_for() {
        let plain = create(RANDOM_STRING, props(&[("length", number(32.0))])).await;
        let result = text(&plain.outputs, "result");
        assert_eq!(result.chars().count(), 32);
        assert_eq!(plain.id, result);
        assert!(!plain.outputs["result"].is_secret());
        let all_classes: String = [
            UPPER_CHARACTERS,
            LOWER_CHARACTERS,
            NUMERIC_CHARACTERS,
            SPECIAL_CHARACTERS,
        ]
        .concat();
        assert!(result.chars().all(|c| all_classes.contains(c)), "{result}");

        let digits_only = create(
            RANDOM_STRING,
            props(&[
                ("length", number(20.0)),
                ("upper", Value::Bool(false)),
                ("lower", Value::Bool(false)),
                ("special", Value::Bool(false)),
            ]),
        )
        .await;
        let result = text(&digits_only.outputs, "result");
        assert!(result.chars().all(|c| c.is_ascii_digit()), "{result}");

        let override_special = create(
            RANDOM_STRING,
            props(&[
                ("length", number(30.0)),
                ("upper", Value::Bool(false)),
                ("lower", Value::Bool(false)),
                ("numeric", Value::Bool(false)),
                ("overrideSpecial", Value::string("_%")),
            ]),
        )
        .await;
        let result = text(&override_special.outputs, "result");
        assert!(result.chars().all(|c| c == '_' || c == '%'), "{result}");
    }

    #[tokio::test]
    async fn string_minimums_are_honoured() {
        for _ in 0..20 {
            let response = create(
                RANDOM_STRING,
                props(&[
                    ("length", number(10.0)),
                    ("minUpper", number(3.0)),
                    ("minNumeric", number(3.0)),
                    ("minSpecial", number(2.0)),
                    ("lower", Value::Bool(false)),
                ]),
            )
            .await;
            let result = text(&response.outputs, "result");
            let count = |class: &str| result.chars().filter(|c| class.contains(*c)).count();
            assert_eq!(result.len(), 10);
            assert!(count(UPPER_CHARACTERS) >= 3, "{result}");
            assert!(count(NUMERIC_CHARACTERS) >= 3, "{result}");
            assert!(count(SPECIAL_CHARACTERS) >= 2, "{result}");
            assert_eq!(count(LOWER_CHARACTERS), 0, "{result}");
        }
    }

    #[tokio::test]
    async fn password_result_and_hash_are_secret_and_the_hash_verifies() {
        let response = create(RANDOM_PASSWORD, props(&[("length", number(16.0))])).await;
        assert_eq!(response.id, "none");
        assert!(response.outputs["result"].is_secret());
        assert!(response.outputs["bcryptHash"].is_secret());
        assert!(!response.outputs["length"].is_secret());
        let password = text(&response.outputs, "result");
        let hash = text(&response.outputs, "bcryptHash");
        assert_eq!(password.chars().count(), 16);
        assert!(hash.starts_with("$2a$10$"), "{hash}");
        assert!(bcrypt::verify(&password, &hash).unwrap());
        assert!(!format!("{:?}", response.outputs).contains(&password));
    }

    #[tokio::test]
    async fn integers_stay_in_range_and_seeds_are_deterministic() {
        for _ in 0..20 {
            let response = create(
                RANDOM_INTEGER,
                props(&[("min", number(-2.0)), ("max", number(2.0))]),
            )
            .await;
            let result = response.outputs["result"].as_f64().unwrap();
            assert!((-2.0..=2.0).contains(&result));
            assert_eq!(response.id, format!("{}", result as i64));
        }
        let seeded = props(&[
            ("min", number(1.0)),
            ("max", number(1_000_000.0)),
            ("seed", Value::string("cairn")),
        ]);
        let first = create(RANDOM_INTEGER, seeded.clone()).await;
        let second = create(RANDOM_INTEGER, seeded).await;
        assert_eq!(first.outputs["result"], second.outputs["result"]);
        assert_eq!(first.id, second.id);
        // The same seed gives this number in every release to come (ChaCha12 is specified).
        assert_eq!(first.id, "672509");
        let same = create(
            RANDOM_INTEGER,
            props(&[("min", number(7.0)), ("max", number(7.0))]),
        )
        .await;
        assert_eq!(same.outputs["result"], number(7.0));
        assert_eq!(same.id, "7");
    }

    #[tokio::test]
    async fn random_id_encodes_the_same_bytes_four_ways() {
        let response = create(
            RANDOM_ID,
            props(&[("byteLength", number(8.0)), ("prefix", Value::string("p-"))]),
        )
        .await;
        let outputs = &response.outputs;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&response.id)
            .unwrap();
        assert_eq!(bytes.len(), 8);
        assert_eq!(text(outputs, "b64Url"), format!("p-{}", response.id));
        assert_eq!(
            text(outputs, "b64Std"),
            format!(
                "p-{}",
                base64::engine::general_purpose::STANDARD.encode(&bytes)
            )
        );
        assert_eq!(text(outputs, "hex"), format!("p-{}", hex::encode(&bytes)));
        let as_u64 = u64::from_be_bytes(bytes.try_into().unwrap());
        assert_eq!(text(outputs, "dec"), format!("p-{as_u64}"));
    }

    #[test]
    fn decimal_conversion_handles_long_numbers() {
        assert_eq!(big_endian_to_decimal(&[]), "0");
        assert_eq!(big_endian_to_decimal(&[0, 0]), "0");
        assert_eq!(big_endian_to_decimal(&[1, 0]), "256");
        assert_eq!(big_endian_to_decimal(&[0xff; 16]), u128::MAX.to_string());
    }

    #[tokio::test]
    async fn uuids_are_lower_case_and_of_the_right_version() {
        for (token, version) in [(RANDOM_UUID, 4), (RANDOM_UUID4, 4), (RANDOM_UUID7, 7)] {
            let response = create(token, PropertyMap::new()).await;
            let result = text(&response.outputs, "result");
            assert_eq!(response.id, result);
            let parsed = uuid::Uuid::parse_str(&result).unwrap();
            assert_eq!(parsed.get_version_num(), version, "{token}");
            assert_eq!(result, result.to_lowercase());
            assert_eq!(result.len(), 36);
        }
    }

    #[tokio::test]
    async fn shuffle_permutes_repeats_and_is_deterministic_with_a_seed() {
        let items = Value::Array(["a", "b", "c", "d", "e"].map(Value::string).to_vec());
        let response = create(RANDOM_SHUFFLE, props(&[("inputs", items.clone())])).await;
        assert_eq!(response.id, "-");
        let mut results: Vec<String> = response.outputs["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|value| value.as_str().unwrap().to_owned())
            .collect();
        results.sort();
        assert_eq!(results, vec!["a", "b", "c", "d", "e"]);

        let seeded = props(&[
            ("inputs", items.clone()),
            ("seed", Value::string("s")),
            ("resultCount", number(12.0)),
        ]);
        let first = create(RANDOM_SHUFFLE, seeded.clone()).await;
        let second = create(RANDOM_SHUFFLE, seeded).await;
        assert_eq!(first.outputs["results"], second.outputs["results"]);
        let results = first.outputs["results"].as_array().unwrap();
        assert_eq!(results.len(), 12);
        // Each batch of five is a permutation of all five inputs.
        let mut first_batch: Vec<&str> = results[..5].iter().map(|v| v.as_str().unwrap()).collect();
        first_batch.sort_unstable();
        assert_eq!(first_batch, vec!["a", "b", "c", "d", "e"]);

        let fewer = create(
            RANDOM_SHUFFLE,
            props(&[("inputs", items), ("resultCount", number(2.0))]),
        )
        .await;
        assert_eq!(fewer.outputs["results"].as_array().unwrap().len(), 2);
        let empty = create(RANDOM_SHUFFLE, props(&[("inputs", Value::Array(vec![]))])).await;
        assert_eq!(empty.outputs["results"], Value::Array(vec![]));
    }

    #[tokio::test]
    async fn random_bytes_are_secret_and_consistent() {
        let response = create(RANDOM_BYTES, props(&[("length", number(12.0))])).await;
        assert!(response.outputs["base64"].is_secret());
        assert!(response.outputs["hex"].is_secret());
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text(&response.outputs, "base64"))
            .unwrap();
        assert_eq!(bytes.len(), 12);
        assert_eq!(text(&response.outputs, "hex"), hex::encode(bytes));
    }

    #[tokio::test]
    async fn every_input_change_replaces() {
        let provider = RandomProvider::new();
        let old = check(RANDOM_PET, props(&[("prefix", Value::string("a"))])).await;
        let cases = [
            (props(&[("prefix", Value::string("b"))]), vec!["prefix"]),
            (props(&[]), vec!["prefix"]),
            (
                props(&[
                    ("prefix", Value::string("a")),
                    ("keepers", Value::Object(props(&[("v", number(2.0))]))),
                ]),
                vec!["keepers"],
            ),
            (
                props(&[("prefix", Value::string("a")), ("length", number(3.0))]),
                vec!["length"],
            ),
            (props(&[("prefix", Value::Unknown)]), vec!["prefix"]),
        ];
        for (news, expected) in cases {
            let news = check(RANDOM_PET, news).await.inputs;
            let diff = provider
                .diff(&ctx(), RANDOM_PET, "id", &old.inputs, &old.inputs, &news)
                .await
                .unwrap();
            assert_eq!(diff.changed_keys, expected, "{news:?}");
            assert_eq!(diff.replace_keys, expected, "{news:?}");
            assert!(!diff.delete_before_replace);
        }
        let same = provider
            .diff(
                &ctx(),
                RANDOM_PET,
                "id",
                &old.inputs,
                &old.inputs,
                &old.inputs,
            )
            .await
            .unwrap();
        assert!(!same.has_changes());
    }

    #[tokio::test]
    async fn read_update_and_delete_keep_state_as_is() {
        let provider = RandomProvider::new();
        let created = create(RANDOM_STRING, props(&[("length", number(6.0))])).await;
        let inputs = check(RANDOM_STRING, props(&[("length", number(6.0))]))
            .await
            .inputs;
        let read = provider
            .read(
                &ctx(),
                RANDOM_STRING,
                &created.id,
                &inputs,
                &created.outputs,
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read.id, created.id);
        assert_eq!(read.outputs, created.outputs);
        assert_eq!(read.inputs, inputs);

        let mut news = inputs.clone();
        news.insert(
            "keepers".to_owned(),
            Value::Object(props(&[("k", Value::string("v"))])),
        );
        let updated = provider
            .update(
                &ctx(),
                RANDOM_STRING,
                &created.id,
                &inputs,
                &created.outputs,
                &news,
                false,
            )
            .await
            .unwrap();
        assert_eq!(updated["result"], created.outputs["result"]);
        assert_eq!(updated["keepers"], news["keepers"]);

        provider
            .delete(
                &ctx(),
                RANDOM_STRING,
                &created.id,
                &inputs,
                &created.outputs,
            )
            .await
            .unwrap();
    }

    /// Reads `id` with no outputs, as an import does; shows id, inputs and outputs, secrets
    /// opened as `secret(...)`.
    async fn import(token: &str, id: &str, inputs: PropertyMap) -> String {
        let read = RandomProvider::new()
            .read(&ctx(), token, id, &inputs, &PropertyMap::new())
            .await;
        let read = match read {
            Ok(read) => read.expect("an import is never gone"),
            Err(error) => return format!("error: {error}"),
        };
        let show = |map: &PropertyMap| {
            map.iter()
                .map(|(key, value)| match value {
                    Value::Secret(inner) => format!("{key}=secret({inner:?})"),
                    other => format!("{key}={other:?}"),
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        format!(
            "id={}\ninputs: {}\noutputs: {}",
            read.id,
            show(&read.inputs),
            show(&read.outputs)
        )
    }

    #[tokio::test]
    async fn import_sets_outputs_from_the_id() {
        let string = import(RANDOM_STRING, "abc123", PropertyMap::new()).await;
        expect_test::expect![[r#"
            id=abc123
            inputs: length=6 lower=true minLower=0 minNumeric=0 minSpecial=0 minUpper=0 number=true numeric=true special=true upper=true
            outputs: length=6 lower=true minLower=0 minNumeric=0 minSpecial=0 minUpper=0 number=true numeric=true result="abc123" special=true upper=true"#]].assert_eq(&string);
        let password = import(RANDOM_PASSWORD, "hunter2", PropertyMap::new()).await;
        assert!(password.starts_with("id=none\n"), "{password}");
        assert!(
            password.contains("result=secret(\"hunter2\")"),
            "{password}"
        );
        let pet = import(RANDOM_PET, "mighty-brave-fox", PropertyMap::new()).await;
        expect_test::expect![[r#"
            id=mighty-brave-fox
            inputs: length=3 separator="-"
            outputs: length=3 separator="-""#]]
        .assert_eq(&pet);
        let integer = import(RANDOM_INTEGER, "42", PropertyMap::new()).await;
        expect_test::expect![[r#"
            id=42
            inputs: max=42 min=42
            outputs: max=42 min=42 result=42"#]]
        .assert_eq(&integer);
        let ranged = import(RANDOM_INTEGER, "42,1,100,s", PropertyMap::new()).await;
        expect_test::expect![[r#"
            id=42
            inputs: max=100 min=1 seed="s"
            outputs: max=100 min=1 result=42 seed="s""#]]
        .assert_eq(&ranged);
        let random_id = import(
            RANDOM_ID,
            "3q2-7w",
            props(&[("prefix", Value::string("p-"))]),
        )
        .await;
        expect_test::expect![[r#"
            id=3q2-7w
            inputs: byteLength=4 prefix="p-"
            outputs: b64Std="p-3q2+7w==" b64Url="p-3q2-7w" byteLength=4 dec="p-3735928559" hex="p-deadbeef" prefix="p-""#]].assert_eq(&random_id);
        let uuid = import(
            RANDOM_UUID,
            "0E3B7C1A-5B6D-4F8E-9A0B-1C2D3E4F5A6B",
            PropertyMap::new(),
        )
        .await;
        expect_test::expect![[r#"
            id=0e3b7c1a-5b6d-4f8e-9a0b-1c2d3e4f5a6b
            inputs: 
            outputs: result="0e3b7c1a-5b6d-4f8e-9a0b-1c2d3e4f5a6b""#]]
        .assert_eq(&uuid);
        let bad = [
            import(RANDOM_INTEGER, "forty-two", PropertyMap::new()).await,
            import(RANDOM_INTEGER, "420,1,100", PropertyMap::new()).await,
            import(RANDOM_ID, "***", PropertyMap::new()).await,
            import(RANDOM_UUID, "not-a-uuid", PropertyMap::new()).await,
            import(RANDOM_SHUFFLE, "a,b", PropertyMap::new()).await,
        ];
        expect_test::expect![[r#"
            error: cannot import `random:index/randomInteger:RandomInteger`: the ID must be an integer, or `result,min,max[,seed]`
            error: cannot import `random:index/randomInteger:RandomInteger`: the ID must be an integer, or `result,min,max[,seed]`
            error: cannot import `random:index/randomId:RandomId`: the ID must be the bytes, base64url-encoded
            error: cannot import `random:index/randomUuid:RandomUuid`: the ID must be a UUID
            error: `random:index/randomShuffle:RandomShuffle` cannot be imported: its result depends on inputs an ID cannot carry"#]].assert_eq(&bad.join("\n"));
    }
}
