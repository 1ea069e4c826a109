//! First-class providers (seed 003): explicit and default providers, their configuration,
//! replacement cascading to the resources they manage, and configuration unknown in a preview.

use std::path::Path;

use crate::support::TestContext;

const EXPLICIT_AND_DEFAULT: &str = r#"
name: provs
runtime: yaml
resources:
  eu:
    type: pulumi:providers:fake
    properties:
      region: eu
      label: first
  us:
    type: pulumi:providers:fake
    properties:
      region: us
  inEu:
    type: fake:Resource
    properties:
      size: 1
    options:
      provider: ${eu}
  inUs:
    type: fake:Resource
    properties:
      size: 1
    options:
      provider: ${us}
  byDefault:
    type: fake:Resource
    properties:
      size: 1
"#;

/// Whether a rendered preview or update has a row with `symbol`, `type_` and `name`.
fn has_row(output: &str, symbol: &str, type_: &str, name: &str) -> bool {
    output.lines().any(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        words.first() == Some(&symbol) && words.contains(&type_) && words.contains(&name)
    })
}

fn provider_states(context: &TestContext) -> Vec<serde_json::Value> {
    context.export()["deployment"]["resources"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|resource| {
            resource["type"]
                .as_str()
                .is_some_and(|type_| type_.starts_with("pulumi:providers:"))
        })
        .collect()
}

fn reference_of(provider: &serde_json::Value) -> String {
    format!(
        "{}::{}",
        provider["urn"].as_str().unwrap(),
        provider["id"].as_str().unwrap()
    )
}

fn provider_named(context: &TestContext, name: &str) -> serde_json::Value {
    provider_states(context)
        .into_iter()
        .find(|provider| {
            provider["urn"]
                .as_str()
                .is_some_and(|urn| urn.ends_with(&format!("::{name}")))
        })
        .unwrap_or_else(|| panic!("no provider named `{name}`"))
}

/// (operation, id) of every ledger line, in order.
fn ledger_ops(ledger: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(ledger)
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let entry: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                entry["op"].as_str().unwrap().to_owned(),
                entry["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn explicit_providers_each_configure_their_resources_and_the_default_takes_stack_config() {
    let context = TestContext::with_program(EXPLICIT_AND_DEFAULT);
    context
        .cairn(&["config", "set", "fake:label", "from-stack"])
        .success();
    context.cairn(&["up", "--yes"]).success();

    let eu = provider_named(&context, "eu");
    let us = provider_named(&context, "us");
    let default = provider_named(&context, "default");
    assert_eq!(eu["inputs"]["region"], "eu");
    assert_eq!(default["inputs"]["label"], "from-stack");

    let in_eu = context.resource("inEu");
    let in_us = context.resource("inUs");
    let by_default = context.resource("byDefault");
    assert_eq!(in_eu["provider"], reference_of(&eu));
    assert_eq!(in_us["provider"], reference_of(&us));
    assert_eq!(by_default["provider"], reference_of(&default));
    // Each resource was made by an instance configured with its own provider's config.
    assert_eq!(in_eu["outputs"]["providerConfig"]["region"], "eu");
    assert_eq!(in_eu["outputs"]["providerConfig"]["label"], "first");
    assert_eq!(in_us["outputs"]["providerConfig"]["region"], "us");
    assert_eq!(
        by_default["outputs"]["providerConfig"]["label"],
        "from-stack"
    );

    let unchanged = context.cairn(&["preview"]).success();
    assert!(
        unchanged.stdout.contains("6 unchanged"),
        "{}",
        unchanged.stdout
    );
}

#[test]
fn a_config_change_that_replaces_the_provider_replaces_its_resources_new_before_old() {
    let context = TestContext::with_program(EXPLICIT_AND_DEFAULT);
    let ledger = context.root.path().join("ledger.jsonl");
    let env = [("CAIRN_FAKE_LEDGER", ledger.as_path())];
    context.cairn_with(&["up", "--yes"], &env).success();
    let old_eu = provider_named(&context, "eu");
    let old_in_eu = context.resource("inEu");
    let old_in_us = context.resource("inUs");

    context.write_program(&EXPLICIT_AND_DEFAULT.replace("region: eu", "region: ap"));
    let preview = context.cairn_with(&["preview"], &env).success();
    assert!(
        has_row(&preview.stdout, "+-", "fake:index:Resource", "inEu"),
        "{}",
        preview.stdout
    );
    assert!(
        has_row(&preview.stdout, "+-", "pulumi:providers:fake", "eu"),
        "{}",
        preview.stdout
    );
    assert!(
        !preview.stdout.contains("inUs"),
        "only the replaced provider's resources change\n{}",
        preview.stdout
    );

    let before = ledger_ops(&ledger).len();
    context.cairn_with(&["up", "--yes"], &env).success();
    let new_eu = provider_named(&context, "eu");
    let new_in_eu = context.resource("inEu");
    assert_ne!(new_eu["id"], old_eu["id"], "the provider was replaced");
    assert_eq!(new_in_eu["provider"], reference_of(&new_eu));
    assert_ne!(new_in_eu["id"], old_in_eu["id"]);
    assert_eq!(new_in_eu["outputs"]["providerConfig"]["region"], "ap");
    assert_eq!(context.resource("inUs")["id"], old_in_us["id"]);
    // Only one copy of the provider remains, and the new copy was created before the old one
    // was deleted.
    assert_eq!(
        provider_states(&context)
            .iter()
            .filter(|provider| provider["urn"] == old_eu["urn"])
            .count(),
        1
    );
    let ops = ledger_ops(&ledger)[before..].to_vec();
    let new_id = new_in_eu["id"].as_str().unwrap();
    let old_id = old_in_eu["id"].as_str().unwrap();
    assert_eq!(
        ops,
        vec![
            ("create".to_owned(), new_id.to_owned()),
            ("delete".to_owned(), old_id.to_owned())
        ]
    );
}

#[test]
fn a_config_change_that_does_not_replace_updates_the_provider_in_place() {
    let context = TestContext::with_program(EXPLICIT_AND_DEFAULT);
    context.cairn(&["up", "--yes"]).success();
    let old_eu = provider_named(&context, "eu");
    let old_in_eu = context.resource("inEu");

    context.write_program(&EXPLICIT_AND_DEFAULT.replace("label: first", "label: second"));
    let up = context.cairn(&["up", "--yes"]).success();
    assert!(
        has_row(&up.stdout, "~", "pulumi:providers:fake", "eu"),
        "{}",
        up.stdout
    );
    let new_eu = provider_named(&context, "eu");
    assert_eq!(new_eu["id"], old_eu["id"]);
    assert_eq!(new_eu["inputs"]["label"], "second");
    assert_eq!(context.resource("inEu")["id"], old_in_eu["id"]);
}

#[test]
fn stack_config_that_replaces_the_default_provider_replaces_its_resources() {
    let context = TestContext::with_program(EXPLICIT_AND_DEFAULT);
    context.cairn(&["up", "--yes"]).success();
    let old = context.resource("byDefault");
    context
        .cairn(&["config", "set", "fake:region", "mars"])
        .success();
    let preview = context.cairn(&["preview"]).success();
    assert!(
        has_row(&preview.stdout, "+-", "fake:index:Resource", "byDefault"),
        "{}",
        preview.stdout
    );
    context.cairn(&["up", "--yes"]).success();
    let new = context.resource("byDefault");
    assert_ne!(new["id"], old["id"]);
    assert_eq!(new["outputs"]["providerConfig"]["region"], "mars");
    assert_eq!(
        provider_states(&context)
            .iter()
            .filter(|provider| provider["urn"].as_str().unwrap().ends_with("::default"))
            .count(),
        1
    );
}

#[test]
fn provider_config_unknown_in_a_preview_leaves_its_resources_unknown_and_up_proceeds() {
    let program = r#"
name: provs
runtime: yaml
resources:
  source:
    type: fake:Resource
    properties:
      region: late
  late:
    type: pulumi:providers:fake
    properties:
      region: ${source.id}
  managed:
    type: fake:Resource
    properties:
      size: 1
    options:
      provider: ${late}
outputs:
  managedConfig: ${managed.providerConfig}
"#;
    let context = TestContext::with_program(program);
    let preview = context.cairn(&["preview", "--json"]).success();
    let preview: serde_json::Value = serde_json::from_str(&preview.stdout).unwrap();
    let step = |name: &str| {
        preview["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|step| {
                step["urn"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!("::{name}"))
            })
            .cloned()
            .unwrap_or_else(|| panic!("no step for `{name}` in {preview}"))
    };
    const UNKNOWN: &str = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";
    assert_eq!(step("late")["newInputs"]["region"], UNKNOWN);
    // The unconfigured provider was not asked to predict anything: every output the schema
    // declares is unknown, and no configured instance stamped its config on the outputs.
    let managed = step("managed");
    assert_eq!(managed["op"], "create");
    assert_eq!(managed["outputs"]["latencyMs"], UNKNOWN);
    assert_eq!(managed["outputs"]["size"], 1);
    assert!(
        managed["outputs"].get("providerConfig").is_none(),
        "{managed}"
    );
    context.cairn(&["up", "--yes"]).success();
    let source = context.resource("source");
    let managed = context.resource("managed");
    assert_eq!(
        managed["outputs"]["providerConfig"]["region"], source["id"],
        "the provider was configured with the output once it was known"
    );
}

#[test]
fn a_provider_that_refuses_its_configuration_fails_the_preview_and_changes_nothing() {
    let context = TestContext::with_program(&EXPLICIT_AND_DEFAULT.replace(
        "      region: us\n",
        "      region: us\n      failConfigure: true\n",
    ));
    let up = context.cairn(&["up", "--yes"]).expect_code(1);
    let all = format!("{}{}", up.stdout, up.stderr);
    assert!(
        all.contains("configuring the `fake` provider `us` failed"),
        "{all}"
    );
    assert!(all.contains("failConfigure: true"), "{all}");
    assert!(context.resource_names().is_empty());
}

#[test]
fn children_inherit_the_providers_map_of_their_parent_and_invokes_use_options_provider() {
    let program = r#"
name: provs
runtime: yaml
resources:
  eu:
    type: pulumi:providers:fake
    properties:
      region: eu
  parent:
    type: fake:Resource
    properties:
      role: parent
    options:
      providers:
        fake: ${eu}
  child:
    type: fake:Resource
    properties:
      role: child
    options:
      parent: ${parent}
variables:
  echoed:
    fn::invoke:
      function: fake:index:echo
      arguments:
        said: hello
      options:
        provider: ${eu}
outputs:
  echoRegion: ${echoed.providerConfig.region}
"#;
    let context = TestContext::with_program(program);
    let up = context.cairn(&["up", "--yes"]).success();
    let eu = provider_named(&context, "eu");
    assert_eq!(context.resource("parent")["provider"], reference_of(&eu));
    assert_eq!(context.resource("child")["provider"], reference_of(&eu));
    assert!(
        provider_states(&context)
            .iter()
            .all(|provider| !provider["urn"].as_str().unwrap().ends_with("::default")),
        "no default provider is needed"
    );
    assert!(up.stdout.contains("echoRegion: \"eu\""), "{}", up.stdout);
}

#[test]
fn a_provider_marked_default_provider_manages_its_package() {
    let program = r#"
name: provs
runtime: yaml
resources:
  thing:
    type: fake:Resource
    properties:
      size: 1
  mine:
    type: pulumi:providers:fake
    defaultProvider: true
    properties:
      region: mine
"#;
    let context = TestContext::with_program(program);
    context.cairn(&["up", "--yes"]).success();
    let mine = provider_named(&context, "mine");
    let thing = context.resource("thing");
    assert_eq!(thing["provider"], reference_of(&mine));
    assert_eq!(thing["outputs"]["providerConfig"]["region"], "mine");
}
