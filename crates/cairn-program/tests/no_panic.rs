//! The program loader never panics, whatever text it is given: arbitrary text, and text made of
//! the pieces programs are made of (indentation, keys, `${...}` references, `fn::` built-ins,
//! flow collections, anchors), so that the generated inputs get past the YAML parser into the
//! checker. Each property tries `PROPTEST_CASES` inputs (256 by default; raise it to fuzz
//! longer, e.g. `PROPTEST_CASES=100000 cargo test -p cairn-program --test no_panic`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use cairn_program::load_str;
use proptest::prelude::*;

fn registry() -> cairn_provider::ProviderRegistry {
    let mut registry = cairn_provider::ProviderRegistry::new();
    registry.register(Arc::new(
        cairn_provider::fake::FakeProvider::new(None).expect("the fake provider"),
    ));
    registry
}

/// One line of a program: a key, a value, or a list item, at some indentation.
fn program_line() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "name",
        "runtime",
        "config",
        "variables",
        "resources",
        "outputs",
        "type",
        "properties",
        "options",
        "get",
        "dependsOn",
        "parent",
        "provider",
        "aliases",
        "protect",
        "default",
        "secret",
        "items",
        "fn::join",
        "fn::select",
        "fn::secret",
        "fn::invoke",
        "fn::toJSON",
        "fn::readFile",
        "fn::split",
        "fn::fromBase64",
        "a",
        "b",
        "r",
        "main",
        "import",
        "customTimeouts",
        "ignoreChanges",
        "additionalSecretOutputs",
        "function",
        "arguments",
    ]);
    let value = prop::sample::select(vec![
        "",
        "fake:Resource",
        "fake:index:Resource",
        "yaml",
        "${a}",
        "${r.id}",
        "${r}",
        "${r.outputs[0].x}",
        "${a.b[\"c\"]}",
        "${pulumi.stack}",
        "${",
        "}",
        "[1, 2, {a: b}]",
        "{x: ${a}}",
        "&anchor x",
        "*anchor",
        "42",
        "-1e400",
        "true",
        "null",
        "\"quoted ${r}\"",
        "'single'",
        "|",
        ">",
        "- x",
        "[",
        "{",
        "~",
        "!!binary aGk=",
        "String",
        "List<Integer>",
        "${r.nmae}",
        "${config}",
        "[${a}, ${b}]",
        "\"\\u0000\"",
    ]);
    (0..12usize, key, value, any::<bool>()).prop_map(|(indent, key, value, is_item)| {
        let pad = " ".repeat(indent);
        if is_item {
            format!("{pad}- {key}: {value}")
        } else {
            format!("{pad}{key}: {value}")
        }
    })
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = load_str("Cairn.yaml", &text, &registry());
    }

    #[test]
    fn programs_made_of_program_pieces_never_panic(
        lines in prop::collection::vec(program_line(), 0..40)
    ) {
        let text = format!("name: fuzz\nruntime: yaml\n{}\n", lines.join("\n"));
        let loaded = load_str("Cairn.yaml", &text, &registry());
        // What loads can have its config resolved, also without panicking.
        if let Some(program) = &loaded.program {
            let _ = cairn_program::resolve_config(program, &Default::default());
        }
        // Every diagnostic points inside the text it came from.
        let n_lines = text.lines().count() + 1;
        for diagnostic in &loaded.diagnostics {
            prop_assert!(diagnostic.line <= n_lines, "{diagnostic:?} in\n{text}");
            prop_assert!(diagnostic.span.end <= text.len(), "{diagnostic:?} in\n{text}");
            prop_assert!(!diagnostic.message.is_empty());
        }
    }
}
