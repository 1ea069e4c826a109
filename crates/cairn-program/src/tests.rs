//! Loader tests: a program text in, rendered diagnostics (or a summary of the program) out.
//! Also the small `SchemaSource` every test in this crate uses.

use std::collections::BTreeMap;
use std::path::Path;

use cairn_core::schema::{FunctionSchema, PropertyType};
use cairn_core::{PropertySchema, ResourceSchema, TypeToken};
use expect_test::{Expect, expect};

use crate::{FileSource, Loaded, SchemaSource, load_project, load_str};

/// `random` (RandomPet, RandomString, the function `getPet`) and `fake` (accepts any input).
pub(crate) struct TestSchemas;

fn test_resources() -> Vec<ResourceSchema> {
    let pet_inputs = BTreeMap::from([
        (
            "length".to_owned(),
            PropertySchema::new(PropertyType::Integer),
        ),
        (
            "prefix".to_owned(),
            PropertySchema::new(PropertyType::String),
        ),
        (
            "separator".to_owned(),
            PropertySchema::new(PropertyType::String),
        ),
        (
            "keepers".to_owned(),
            PropertySchema::new(PropertyType::Map(Box::new(PropertyType::Any))),
        ),
    ]);
    let string_inputs = BTreeMap::from([
        (
            "length".to_owned(),
            PropertySchema::new(PropertyType::Integer).required(),
        ),
        (
            "special".to_owned(),
            PropertySchema::new(PropertyType::Boolean),
        ),
        (
            "overrides".to_owned(),
            PropertySchema::new(PropertyType::Array(Box::new(PropertyType::String))),
        ),
    ]);
    let mut string_outputs = string_inputs.clone();
    string_outputs.insert(
        "result".to_owned(),
        PropertySchema::new(PropertyType::String).secret(),
    );
    vec![
        ResourceSchema {
            token: "random:index/randomPet:RandomPet".to_owned(),
            outputs: pet_inputs.clone(),
            inputs: pet_inputs,
            ..ResourceSchema::default()
        },
        ResourceSchema {
            token: "random:index/randomString:RandomString".to_owned(),
            inputs: string_inputs,
            outputs: string_outputs,
            ..ResourceSchema::default()
        },
        ResourceSchema {
            token: "fake:index:Thing".to_owned(),
            accepts_any_input: true,
            ..ResourceSchema::default()
        },
    ]
}

impl SchemaSource for TestSchemas {
    fn resolve_resource(&self, spelling: &str) -> Option<(String, ResourceSchema)> {
        test_resources().into_iter().find_map(|schema| {
            TypeToken::new(schema.token.clone())
                .spellings()
                .iter()
                .any(|candidate| candidate == spelling)
                .then(|| (schema.token.clone(), schema))
        })
    }

    fn resolve_function(&self, spelling: &str) -> Option<(String, FunctionSchema)> {
        let token = "random:index/getPet:getPet";
        TypeToken::new(token)
            .spellings()
            .iter()
            .any(|candidate| candidate == spelling)
            .then(|| {
                (
                    token.to_owned(),
                    FunctionSchema {
                        token: token.to_owned(),
                        ..FunctionSchema::default()
                    },
                )
            })
    }

    fn resource_tokens(&self) -> Vec<String> {
        test_resources()
            .into_iter()
            .map(|schema| schema.token)
            .collect()
    }
}

/// Diagnostics as `file:line:col: message` plus `help:` lines, or a summary of the program.
pub(crate) fn render(loaded: &Loaded) -> String {
    if !loaded.diagnostics.is_empty() {
        assert!(
            loaded.program.is_none(),
            "a program with errors must not be returned"
        );
        return loaded
            .diagnostics
            .iter()
            .map(|diagnostic| {
                let mut line = format!("{diagnostic} [{}]", diagnostic.snippet);
                if let Some(help) = &diagnostic.help {
                    line.push_str(&format!("\n  help: {help}"));
                }
                line
            })
            .collect::<Vec<_>>()
            .join("\n");
    }
    let program = loaded
        .program
        .as_ref()
        .expect("no diagnostics means a program");
    let mut lines = vec![format!("program {} ({})", program.name, program.runtime)];
    for decl in &program.config {
        lines.push(format!(
            "config {} type={:?} default={:?} secret={}",
            decl.key, decl.type_, decl.default, decl.secret
        ));
    }
    for variable in &program.variables {
        lines.push(format!(
            "variable {} deps={:?}/{:?}",
            variable.name, variable.deps.resources, variable.deps.variables
        ));
    }
    for resource in &program.resources {
        lines.push(format!(
            "resource {} name={} type={} deps={:?}/{:?}",
            resource.key,
            resource.name,
            resource.type_token,
            resource.deps.resources,
            resource.deps.variables
        ));
    }
    for (name, _) in &program.outputs {
        lines.push(format!("output {name}"));
    }
    lines.join("\n")
}

#[track_caller]
fn check(src: &str, expect: Expect) {
    let loaded = load_str("Cairn.yaml", src, &TestSchemas);
    expect.assert_eq(&render(&loaded));
}

const HEADER: &str = "name: proj\nruntime: yaml\n";

#[track_caller]
fn check_body(body: &str, expect: Expect) {
    check(&format!("{HEADER}{body}"), expect);
}

#[test]
fn both_token_spellings_resolve_to_the_canonical_token() {
    check_body(
        "resources:\n  a:\n    type: random:RandomPet\n  b:\n    type: random:index/randomPet:RandomPet\n    name: custom-b\n  c:\n    type: random:index:RandomPet\n",
        expect![[r#"
            program proj (yaml)
            resource a name=a type=random:index/randomPet:RandomPet deps={}/{}
            resource b name=custom-b type=random:index/randomPet:RandomPet deps={}/{}
            resource c name=c type=random:index/randomPet:RandomPet deps={}/{}"#]],
    );
}

#[test]
fn yaml_syntax_error_has_position() {
    check(
        "name: proj\nruntime: yaml\nresources:\n  a: [1, 2\n",
        expect![[r#"
            Cairn.yaml:5:1: invalid YAML: while parsing a flow sequence, expected ',' or ']' []
              help: check the indentation and quoting around this point"#]],
    );
}

#[test]
fn missing_name_and_runtime() {
    check(
        "description: hi\n",
        expect![[r#"
            Cairn.yaml:1:1: missing `name` []
              help: add the project name at the top level, like `name: my-project`
            Cairn.yaml:1:1: missing `runtime` []
              help: Cairn runs Pulumi YAML programs: write `runtime: yaml`"#]],
    );
}

#[test]
fn runtime_must_be_yaml() {
    check(
        "name: p\nruntime: nodejs\n",
        expect![[r#"
            Cairn.yaml:2:10: unsupported runtime `nodejs` [nodejs]
              help: Cairn runs Pulumi YAML programs: write `runtime: yaml`"#]],
    );
    check(
        "name: p\nruntime:\n  name: yaml\n  options: {}\n",
        expect!["program p (yaml)"],
    );
}

#[test]
fn unknown_top_level_key() {
    check_body(
        "resource:\n  a: {type: random:RandomPet}\n",
        expect![[r#"
            Cairn.yaml:3:1: unknown top-level key `resource` [resource]
              help: did you mean `resources`?"#]],
    );
}

#[test]
fn resource_without_type() {
    check_body(
        "resources:\n  pet:\n    properties: {length: 2}\n",
        expect![[r#"
            Cairn.yaml:4:3: resource `pet` has no `type` [pet]
              help: add a type token, like `type: random:RandomPet`"#]],
    );
}

#[test]
fn unknown_resource_type_suggests_a_spelling() {
    check_body(
        "resources:\n  pet:\n    type: random:RandomPett\n  other:\n    type: zzz:Nothing\n",
        expect![[r#"
            Cairn.yaml:5:11: unknown resource type `random:RandomPett` [random:RandomPett]
              help: did you mean `random:RandomPet`?
            Cairn.yaml:7:11: unknown resource type `zzz:Nothing` [zzz:Nothing]
              help: available types are: `random:index/randomPet:RandomPet`, `random:index/randomString:RandomString`, `fake:index:Thing`"#]],
    );
}

#[test]
fn unknown_property_suggests_the_closest() {
    check_body(
        "resources:\n  pet:\n    type: random:RandomPet\n    properties:\n      lenght: 2\n",
        expect![[r#"
            Cairn.yaml:7:7: unknown property `lenght` on `random:index/randomPet:RandomPet` [lenght]
              help: did you mean `length`?"#]],
    );
}

#[test]
fn any_input_schema_accepts_unknown_properties() {
    check_body(
        "resources:\n  thing:\n    type: fake:Thing\n    properties:\n      whatever: [1, 2]\n",
        expect![[r#"
            program proj (yaml)
            resource thing name=thing type=fake:index:Thing deps={}/{}"#]],
    );
}

#[test]
fn missing_required_property() {
    check_body(
        "resources:\n  s:\n    type: random:RandomString\n    properties:\n      special: true\n  t:\n    type: random:RandomString\n  u:\n    type: random:RandomString\n    get:\n      id: abc\n",
        expect![[r#"
            Cairn.yaml:6:5: missing required property `length` on `s` (`random:index/randomString:RandomString`) [properties]
              help: add `length: <integer>` under `properties:`
            Cairn.yaml:8:3: missing required property `length` on `t` (`random:index/randomString:RandomString`) [t]
              help: add `length: <integer>` under `properties:`"#]],
    );
}

#[test]
fn wrong_literal_types() {
    check_body(
        "resources:\n  s:\n    type: random:RandomString\n    properties:\n      length: \"3\"\n      special: yes-please\n      overrides: [a, [b]]\n  p:\n    type: random:RandomPet\n    properties:\n      length: 2.5\n      prefix: [x]\n      keepers: {a: [1]}\n      separator: {fn::toBase64: x}\n",
        expect![[r#"
            Cairn.yaml:7:15: wrong type for property `length`: expected integer, found a string ["3"]
              help: `random:index/randomString:RandomString` declares `length` as integer
            Cairn.yaml:8:16: wrong type for property `special`: expected boolean, found a string [yes-please]
              help: `random:index/randomString:RandomString` declares `special` as boolean
            Cairn.yaml:9:22: wrong type for property `overrides[1]`: expected string, found a list [[b]]
              help: `random:index/randomString:RandomString` declares `overrides[1]` as string
            Cairn.yaml:13:15: wrong type for property `length`: expected integer, found the number `2.5` [2.5]
              help: `random:index/randomPet:RandomPet` declares `length` as integer
            Cairn.yaml:14:15: wrong type for property `prefix`: expected string, found a list [[x]]
              help: `random:index/randomPet:RandomPet` declares `prefix` as string"#]],
    );
}

#[test]
fn references_resolve_and_record_deps() {
    check_body(
        "config:\n  size:\n    type: integer\n    default: 2\n  aws:region: us-east-1\nvariables:\n  prefix: ${pulumi.stack}-${size}\n  both: ${pet.id}-${prefix}\nresources:\n  pet:\n    type: random:RandomPet\n    properties:\n      length: ${size}\n      prefix: ${prefix}\n  s:\n    type: random:RandomString\n    properties:\n      length: ${pet.length}\n    options:\n      dependsOn:\n        - ${pet}\noutputs:\n  name: ${pet}\n  region: ${aws:region}\n  own: ${proj:size}\n",
        expect![[r#"
            program proj (yaml)
            config size type=Some(Integer) default=Some(2) secret=false
            config aws:region type=None default=Some("us-east-1") secret=false
            variable prefix deps={}/{}
            variable both deps={"pet"}/{"prefix"}
            resource pet name=pet type=random:index/randomPet:RandomPet deps={}/{"prefix"}
            resource s name=s type=random:index/randomString:RandomString deps={"pet"}/{}
            output name
            output region
            output own"#]],
    );
}

#[test]
fn unknown_names_in_references_point_at_the_name() {
    check_body(
        "resources:\n  pet:\n    type: random:RandomPet\n    properties:\n      prefix: \"a-${pett.id}\"\n      separator: ${nothing}\noutputs:\n  x: ${pet.lenght}\n  y: ${pulumi.stacks}\n",
        expect![[r#"
            Cairn.yaml:7:20: unknown name `pett` in `${pett.id}` [pett]
              help: did you mean `pet`?
            Cairn.yaml:8:20: unknown name `nothing` in `${nothing}` [nothing]
              help: defined names are: `pet`
            Cairn.yaml:10:6: resource `pet` (`random:index/randomPet:RandomPet`) has no property `lenght` [${pet.lenght}]
              help: did you mean `length`?
            Cairn.yaml:11:6: unknown `${pulumi.stacks}` [${pulumi.stacks}]
              help: use `${pulumi.stack}`, `${pulumi.project}`, `${pulumi.cwd}` or `${pulumi.organization}`"#]],
    );
}

#[test]
fn malformed_interpolation() {
    check_body(
        "outputs:\n  a: \"x ${oops\"\n  b: ${a..b}\n  c: \"$${literal} ok\"\n",
        expect![[r#"
            Cairn.yaml:4:9: unterminated `${` [${oops]
              help: close the reference with `}`, or write `$${` for a literal `${`
            Cairn.yaml:5:9: malformed reference `${a..b}`: expected a property name after `.` [.]
              help: a reference looks like `${name}`, `${name.property}`, `${name[0]}` or `${name["key"]}`"#]],
    );
}

#[test]
fn options_are_checked() {
    check_body(
        "resources:\n  prov:\n    type: pulumi:providers:random\n    defaultProvider: true\n  pet:\n    type: random:RandomPet\n  other:\n    type: random:RandomPet\n    options:\n      provider: ${pet}\n      dependsOn:\n        - ${pett}\n        - plain\n      parent: ${pet.id}\n      protect: maybe\n      ignoreChange: [length]\n",
        expect![[r#"
            Cairn.yaml:12:17: `provider` must be a provider resource, but `pet` is a `random:index/randomPet:RandomPet` [${pet}]
              help: declare a provider with `type: pulumi:providers:<package>`
            Cairn.yaml:14:13: unknown resource `pett` in `dependsOn` [pett]
              help: did you mean `pet`?
            Cairn.yaml:15:11: `dependsOn` must reference a resource, like `${myResource}` [plain]
              help: write `dependsOn: ${resourceName}`
            Cairn.yaml:16:15: `parent` must reference a resource, like `${myResource}` [${pet.id}]
              help: write `parent: ${resourceName}`
            Cairn.yaml:17:16: `protect` must be `true` or `false`, found a string [maybe]
            Cairn.yaml:18:7: unknown resource option `ignoreChange` [ignoreChange]
              help: did you mean `ignoreChanges`?"#]],
    );
}

#[test]
fn options_are_lowered() {
    let loaded = load_str(
        "Cairn.yaml",
        &format!(
            "{HEADER}resources:\n  prov:\n    type: pulumi:providers:random\n  pet:\n    type: random:RandomPet\n    options:\n      provider: ${{prov}}\n      providers:\n        random: ${{prov}}\n      protect: true\n      ignoreChanges: [length]\n      customTimeouts: {{create: 5m}}\n      aliases: [urn:pulumi:dev::proj::random:index/randomPet:RandomPet::old]\n      import: pet-id\n      version: 4.0.0\n"
        ),
        &TestSchemas,
    );
    assert_eq!(render(&loaded).lines().next(), Some("program proj (yaml)"));
    let program = loaded.program.expect("no errors");
    let pet = program.resource("pet").expect("pet is declared");
    assert_eq!(pet.options.provider.as_deref(), Some("prov"));
    assert_eq!(pet.options.providers, ["prov"]);
    assert!(pet.options.protect);
    assert_eq!(pet.options.ignore_changes, ["length"]);
    assert_eq!(pet.options.custom_timeouts.create.as_deref(), Some("5m"));
    assert_eq!(pet.options.aliases.len(), 1);
    assert_eq!(pet.options.import.as_deref(), Some("pet-id"));
    assert_eq!(pet.options.version.as_deref(), Some("4.0.0"));
    assert!(pet.deps.resources.contains("prov"));
    assert!(
        program
            .resource("prov")
            .expect("prov is declared")
            .is_provider()
    );
}

#[test]
fn builtins_are_checked() {
    check_body(
        "outputs:\n  a: {fn::jion: [\",\", [a]]}\n  b: {fn::join: \",\"}\n  c: {fn::select: [x, [1]]}\n  d: {fn::toBase64: x, extra: 1}\n  e:\n    fn::invoke:\n      function: random:getPett\n  f:\n    fn::invoke:\n      function: random:getPet\n      arguments: {x: 1}\n      return: name\n",
        expect![[r#"
            Cairn.yaml:4:7: unknown builtin `fn::jion` [fn::jion]
              help: did you mean `fn::join`?
            Cairn.yaml:5:17: `fn::join` takes a list of two items: `[delimiter, list]` [","]
              help: write `fn::join: [delimiter, list]`
            Cairn.yaml:6:20: the index of `fn::select` must be a number [x]
              help: write `fn::select: [0, ${list}]`
            Cairn.yaml:7:7: `fn::toBase64` must be the only key of its mapping [fn::toBase64]
              help: move the other keys to a separate mapping
            Cairn.yaml:10:17: unknown function `random:getPett` [random:getPett]
              help: check the function token against the provider's schema"#]],
    );
}

#[test]
fn dependency_cycles_are_named_once_each() {
    check_body(
        "variables:\n  v: ${a.id}\n  self: ${self}\nresources:\n  a:\n    type: random:RandomPet\n    properties:\n      prefix: ${b.id}\n  b:\n    type: random:RandomPet\n    properties:\n      prefix: ${v}\n  c:\n    type: random:RandomPet\n    options:\n      dependsOn:\n        - ${a}\n",
        expect![[r#"
            Cairn.yaml:7:3: dependency cycle: `a` -> `b` -> `v` -> `a` [a]
              help: break the cycle: a resource or variable cannot depend on itself, directly or through others
            Cairn.yaml:5:9: dependency cycle: `self` -> `self` [${self}]
              help: break the cycle: a resource or variable cannot depend on itself, directly or through others"#]],
    );
}

#[test]
fn many_errors_are_reported_together() {
    check(
        "runtime: python\nresources:\n  a:\n    type: random:Nope\n  b:\n    type: random:RandomPet\n    properties:\n      prefix: ${zz}\n    option: {}\n",
        expect![[r#"
            Cairn.yaml:1:1: missing `name` []
              help: add the project name at the top level, like `name: my-project`
            Cairn.yaml:1:10: unsupported runtime `python` [python]
              help: Cairn runs Pulumi YAML programs: write `runtime: yaml`
            Cairn.yaml:4:11: unknown resource type `random:Nope` [random:Nope]
              help: available types are: `random:index/randomPet:RandomPet`, `random:index/randomString:RandomString`, `fake:index:Thing`
            Cairn.yaml:8:17: unknown name `zz` in `${zz}` [zz]
              help: defined names are: `a`, `b`
            Cairn.yaml:9:5: unknown key `option` in resource `b` [option]
              help: did you mean `options`?"#]],
    );
}

#[test]
fn duplicate_names_across_sections() {
    check_body(
        "config:\n  pet: x\nresources:\n  pet:\n    type: random:RandomPet\n",
        expect![[r#"
            Cairn.yaml:6:3: `pet` is already defined as a config value [pet]
              help: resources, variables and config values share one namespace: rename one of them"#]],
    );
}

#[test]
fn stack_reference_and_provider_resources_need_no_schema() {
    check_body(
        "resources:\n  ref:\n    type: pulumi:pulumi:StackReference\n    properties:\n      name: org/other/dev\n  prov:\n    type: cairn:providers:random\n  bad:\n    type: pulumi:providers:nope\n  badref:\n    type: pulumi:pulumi:StackReference\n    properties:\n      stack: x\noutputs:\n  o: ${ref.outputs[\"key\"]}\n",
        expect![[r#"
            Cairn.yaml:11:11: unknown provider package `nope` [pulumi:providers:nope]
              help: available packages are: `fake`, `random`
            Cairn.yaml:15:7: unknown property `stack` on `pulumi:pulumi:StackReference` [stack]
              help: its properties are: `name`
            Cairn.yaml:14:5: missing required property `name` on `badref` (`pulumi:pulumi:StackReference`) [properties]
              help: add `name: <string>` under `properties:`"#]],
    );
}

#[test]
fn whole_properties_from_an_expression() {
    check_body(
        "variables:\n  inputs: {length: 2}\nresources:\n  pet:\n    type: random:RandomPet\n    properties: ${inputs}\n",
        expect![[r#"
            program proj (yaml)
            variable inputs deps={}/{}
            resource pet name=pet type=random:index/randomPet:RandomPet deps={}/{"inputs"}"#]],
    );
}

#[test]
fn config_declarations_in_both_spellings() {
    check_body(
        "configuration:\n  names:\n    type: List<String>\n  count:\n    type: Integer\n    default: 3\nconfig:\n  tags:\n    type: array\n    items: {type: string}\n  flag:\n    type: bool\n    secret: true\n  bad:\n    type: strng\n",
        expect![[r#"
            Cairn.yaml:17:11: unknown config type `strng` [strng]
              help: did you mean `string`?"#]],
    );
}

/// Files in memory, keyed by path.
struct MemoryFiles(BTreeMap<String, String>);

impl FileSource for MemoryFiles {
    fn read_to_string(&self, path: &Path) -> std::io::Result<String> {
        let key = path.to_string_lossy().replace('\\', "/");
        self.0
            .get(&key)
            .cloned()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, key))
    }
}

fn memory_files(files: &[(&str, &str)]) -> MemoryFiles {
    MemoryFiles(
        files
            .iter()
            .map(|(path, text)| ((*path).to_owned(), (*text).to_owned()))
            .collect(),
    )
}

#[test]
fn main_points_at_a_directory_with_main_yaml() {
    let files = memory_files(&[
        (
            "proj/Pulumi.yaml",
            "name: proj\nruntime: yaml\nmain: ./app/\nconfig:\n  size: 3\n",
        ),
        (
            "proj/app/Main.yaml",
            "resources:\n  pet:\n    type: random:RandomPet\n    properties:\n      length: ${size}\n      prefix: ${nope}\n",
        ),
    ]);
    let loaded = load_project(Path::new("proj"), &files, &TestSchemas, &[]);
    expect![[r#"
        app/Main.yaml:6:17: unknown name `nope` in `${nope}` [nope]
          help: defined names are: `pet`, `size`"#]]
    .assert_eq(&render(&loaded));

    let files = memory_files(&[
        ("proj/Cairn.yaml", "name: proj\nruntime: yaml\nmain: app\n"),
        (
            "proj/app/Main.json",
            "{\n  \"resources\": {\n    \"pet\": {\"type\": \"random:RandomPet\"}\n  }\n}\n",
        ),
    ]);
    let loaded = load_project(Path::new("proj"), &files, &TestSchemas, &[]);
    let program = loaded.program.expect("no errors");
    assert_eq!(program.source_dir, Path::new("proj/app"));
    assert_eq!(program.resources[0].span.file, "app/Main.json");
}

#[test]
fn missing_project_file_and_missing_main() {
    let loaded = load_project(Path::new("proj"), &memory_files(&[]), &TestSchemas, &[]);
    expect![[r#"
        Cairn.yaml: no `Cairn.yaml` or `Pulumi.yaml` in `proj` []
          help: run `cairn new` to create a project, or pass `--cwd <dir>`"#]]
    .assert_eq(&render(&loaded));

    let files = memory_files(&[("proj/Cairn.yaml", "name: proj\nruntime: yaml\nmain: src\n")]);
    let loaded = load_project(Path::new("proj"), &files, &TestSchemas, &[]);
    expect![[r#"
        Cairn.yaml:3:7: `main` points at `src`, which holds no `Main.yaml` or `Main.json` [src]
          help: put the program in `Main.yaml` inside that directory, or fix `main:`"#]]
    .assert_eq(&render(&loaded));
}

#[test]
fn diagnostics_render_through_miette() {
    let loaded = load_str(
        "Cairn.yaml",
        &format!(
            "{HEADER}resources:\n  pet:\n    type: random:RandomPet\n    properties:\n      lenght: 2\n"
        ),
        &TestSchemas,
    );
    let diagnostic = &loaded.diagnostics[0];
    let labels: Vec<_> = miette::Diagnostic::labels(diagnostic)
        .expect("a label")
        .map(|label| (label.offset(), label.len()))
        .collect();
    assert_eq!(labels, [(diagnostic.span.start, 6)]);
    assert!(miette::Diagnostic::source_code(diagnostic).is_some());
    assert_eq!(
        miette::Diagnostic::help(diagnostic).map(|help| help.to_string()),
        Some("did you mean `length`?".to_owned())
    );
}

/// `depth` nested flow mappings around `1`: `{a: {a: 1}}` is 2 deep.
fn nested_value(depth: usize) -> String {
    format!("{}1{}", "{a: ".repeat(depth), "}".repeat(depth))
}

#[test]
fn a_value_at_the_depth_limit_is_accepted() {
    let depth = cairn_core::MAX_VALUE_DEPTH;
    let loaded = load_str(
        "Cairn.yaml",
        &format!(
            "{HEADER}resources:\n  r:\n    type: fake:Thing\n    properties:\n      v: {}\n",
            nested_value(depth)
        ),
        &TestSchemas,
    );
    assert!(loaded.diagnostics.is_empty(), "{}", render(&loaded));
}

#[test]
fn a_value_past_the_depth_limit_points_at_where_it_goes_too_deep() {
    // The 65th mapping starts after `      v: ` and 64 `{a: `, at column 10 + 64 * 4 (and
    // after `  w: `, at 6 + 64 * 4). Deeper still is the document limit's business.
    let body = format!(
        "resources:\n  r:\n    type: fake:Thing\n    properties:\n      v: {}\nvariables:\n  w: {}\n",
        nested_value(100),
        nested_value(65),
    );
    let loaded = load_str("Cairn.yaml", &format!("{HEADER}{body}"), &TestSchemas);
    let messages: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
    assert!(loaded.program.is_none());
    assert_eq!(
        messages,
        [
            "Cairn.yaml:7:266: this value nests more than 64 levels deep",
            "Cairn.yaml:9:262: this value nests more than 64 levels deep",
        ]
    );
}

#[test]
fn main_yaml_beside_a_project_file_without_a_program_is_the_program() {
    let files = memory_files(&[
        (
            "proj/Pulumi.yaml",
            "name: proj\nruntime: yaml\nconfig:\n  size: 3\n",
        ),
        (
            "proj/Main.yaml",
            "resources:\n  pet:\n    type: random:RandomPet\n    properties:\n      length: ${size}\noutputs:\n  name: ${pet.id}\n",
        ),
    ]);
    let loaded = load_project(Path::new("proj"), &files, &TestSchemas, &[]);
    expect![[r#"
        program proj (yaml)
        config size type=None default=Some(3) secret=false
        resource pet name=pet type=random:index/randomPet:RandomPet deps={}/{}
        output name"#]]
    .assert_eq(&render(&loaded));
    let program = loaded.program.expect("no errors");
    assert_eq!(program.resources[0].span.file, "Main.yaml");
    assert_eq!(program.source_dir, Path::new("proj"));

    let files = memory_files(&[
        ("proj/Cairn.yaml", "name: proj\nruntime: yaml\n"),
        (
            "proj/Main.json",
            "{\"resources\": {\"pet\": {\"type\": \"random:RandomPet\"}}}\n",
        ),
    ]);
    let loaded = load_project(Path::new("proj"), &files, &TestSchemas, &[]);
    expect![[r#"
        program proj (yaml)
        resource pet name=pet type=random:index/randomPet:RandomPet deps={}/{}"#]]
    .assert_eq(&render(&loaded));
}

#[test]
fn a_project_file_with_a_program_and_a_main_yaml_is_an_error_naming_both() {
    let files = memory_files(&[
        (
            "proj/Pulumi.yaml",
            "name: proj\nruntime: yaml\nresources:\n  a:\n    type: random:RandomPet\noutputs:\n  x: 1\n",
        ),
        (
            "proj/Main.yaml",
            "resources:\n  b:\n    type: random:RandomPet\n",
        ),
    ]);
    let loaded = load_project(Path::new("proj"), &files, &TestSchemas, &[]);
    expect![[r#"
        Pulumi.yaml:3:1: `Pulumi.yaml` declares `resources`, but `Main.yaml` beside it is the program: a project has one program [resources]
          help: move `resources` into `Main.yaml`, or remove `Main.yaml`
        Pulumi.yaml:6:1: `Pulumi.yaml` declares `outputs`, but `Main.yaml` beside it is the program: a project has one program [outputs]
          help: move `outputs` into `Main.yaml`, or remove `Main.yaml`"#]].assert_eq(&render(&loaded));
}

#[test]
fn stack_config_keys_are_names_without_a_declaration() {
    let files = memory_files(&[(
        "proj/Cairn.yaml",
        "name: proj\nruntime: yaml\nresources:\n  thing:\n    type: fake:Thing\n    properties:\n      a: ${plain}\n      b: ${settings.nested[0]}\n      c: ${proj:plain}\n      d: ${undeclared}\n",
    )]);
    let stack_keys = ["proj:plain".to_owned(), "settings".to_owned()];
    let loaded = load_project(Path::new("proj"), &files, &TestSchemas, &stack_keys);
    expect![[r#"
        Cairn.yaml:10:12: unknown name `undeclared` in `${undeclared}` [undeclared]
          help: defined names are: `thing`, `plain`, `settings`"#]]
    .assert_eq(&render(&loaded));
}

#[test]
fn every_duplicated_key_and_every_other_error_is_reported_at_once() {
    check_body(
        "config:\n  size: 1\n  size: 2\nvariables:\n  v: 1\n  v: 2\nresources:\n  pet:\n    type: random:RandomPet\n  pet:\n    type: random:RandomPet\n    properties:\n      lenght: 2\n",
        expect![[r#"
            Cairn.yaml:5:3: duplicated key `size`: it is already defined at line 4 [size]
              help: a key may appear once in a mapping: remove or rename one of them
            Cairn.yaml:8:3: duplicated key `v`: it is already defined at line 7 [v]
              help: a key may appear once in a mapping: remove or rename one of them
            Cairn.yaml:12:3: duplicated key `pet`: it is already defined at line 10 [pet]
              help: a key may appear once in a mapping: remove or rename one of them
            Cairn.yaml:15:7: unknown property `lenght` on `random:index/randomPet:RandomPet` [lenght]
              help: did you mean `length`?"#]],
    );
}

#[test]
fn config_defaults_must_match_their_type_and_a_type_must_be_known() {
    check_body(
        "config:\n  name:\n    type: String\n    default: 42\n  count:\n    type: Integer\n    default: \"3\"\n  flag:\n    type: boolean\n    default: true\n  tags:\n    type: List<String>\n    default: [a, 1]\n  opaque:\n    secret: true\n  described:\n    description: nothing else\n",
        expect![[r#"
            Cairn.yaml:6:14: the default of config `name` is a number, but its type is `String` [42]
              help: write a default of type `String`, or change `type`
            Cairn.yaml:9:14: the default of config `count` is a string, but its type is `Integer` ["3"]
              help: write a default of type `Integer`, or change `type`
            Cairn.yaml:15:14: the default of config `tags` is a list, but its type is `List<String>` [[a, 1]]
              help: write a default of type `List<String>`, or change `type`
            Cairn.yaml:16:3: cannot infer the type of config `opaque`: it has neither `type` nor `default` [opaque]
              help: add a `type` (`string`, `integer`, `boolean`, `number`, `array` or `object`) or a `default`
            Cairn.yaml:18:3: cannot infer the type of config `described`: it has neither `type` nor `default` [described]
              help: add a `type` (`string`, `integer`, `boolean`, `number`, `array` or `object`) or a `default`"#]],
    );
}

#[test]
fn aliases_in_object_form_have_pulumis_keys() {
    check_body(
        "resources:\n  parent:\n    type: fake:Thing\n  pet:\n    type: random:RandomPet\n    options:\n      aliases:\n        - name: old\n          parent: ${parent}\n        - {name: old, noParent: true, stack: prod, project: other, type: random:RandomPet}\n        - urn:pulumi:dev::proj::random:index/randomPet:RandomPet::older\n        - {nmae: old}\n",
        expect![[r#"
            Cairn.yaml:14:12: unknown key `nmae` in an alias [nmae]
              help: did you mean `name`?"#]],
    );
}

#[test]
fn protect_and_retain_on_delete_are_inherited_from_the_parent_unless_set() {
    let loaded = load_str(
        "Cairn.yaml",
        &format!(
            "{HEADER}resources:\n  root:\n    type: fake:Thing\n    options: {{protect: true, retainOnDelete: true}}\n  child:\n    type: fake:Thing\n    options: {{parent: \"${{root}}\"}}\n  grandchild:\n    type: fake:Thing\n    options: {{parent: \"${{child}}\"}}\n  unprotected:\n    type: fake:Thing\n    options: {{parent: \"${{root}}\", protect: false}}\n  itsChild:\n    type: fake:Thing\n    options: {{parent: \"${{unprotected}}\"}}\n  orphan:\n    type: fake:Thing\n"
        ),
        &TestSchemas,
    );
    let program = loaded
        .program
        .as_ref()
        .unwrap_or_else(|| panic!("{}", render(&loaded)));
    let flags: Vec<String> = program
        .resources
        .iter()
        .map(|resource| {
            format!(
                "{} protect={} retainOnDelete={}",
                resource.key, resource.options.protect, resource.options.retain_on_delete
            )
        })
        .collect();
    expect![[r#"
        root protect=true retainOnDelete=true
        child protect=true retainOnDelete=true
        grandchild protect=true retainOnDelete=true
        unprotected protect=false retainOnDelete=true
        itsChild protect=false retainOnDelete=true
        orphan protect=false retainOnDelete=false"#]]
    .assert_eq(&flags.join("\n"));
}

#[test]
fn custom_timeouts_are_go_durations_checked_where_they_are_written() {
    check_body(
        "resources:\n  pet:\n    type: random:RandomPet\n    options:\n      customTimeouts:\n        create: 500ms\n        update: 1d\n        delete: 5 m\n",
        expect![[r#"
            Cairn.yaml:9:17: `update`: `1d` is not a duration: write it as Go does, e.g. `30s`, `5m`, `1h30m` or `500ms` [1d]
            Cairn.yaml:10:17: `delete`: `5 m` is not a duration: write it as Go does, e.g. `30s`, `5m`, `1h30m` or `500ms` [5 m]"#]],
    );
}
