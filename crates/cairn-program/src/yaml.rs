//! YAML text → a small spanned tree (`Node`) that the checker walks.
//!
//! saphyr gives every node a span in characters; this module converts them to byte offsets
//! once, resolves tags away and turns scalar keys into strings, so nothing past this point
//! touches saphyr. It knows nothing about Pulumi YAML's meaning.

use std::collections::HashMap;

use saphyr::{MarkedYaml, Scalar, YamlData, YamlLoader};
use saphyr_parser::{Event, SpannedEventReceiver};

use crate::ast::Span;
use crate::diagnostic::{Diagnostics, SourceFile};

/// A YAML node with its span.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub kind: NodeKind,
    pub span: Span,
    /// For strings: the byte offset where the value's text starts in the file when the value
    /// is a verbatim copy of the source (a plain scalar, or a quoted one without escapes), so
    /// that a `${...}` inside it can be pointed at precisely.
    pub verbatim_start: Option<usize>,
}

#[derive(Clone, Debug)]
pub(crate) enum NodeKind {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Sequence(Vec<Node>),
    Mapping(Vec<(Key, Node)>),
}

/// A mapping key (always a scalar, as text).
#[derive(Clone, Debug)]
pub(crate) struct Key {
    pub name: String,
    pub span: Span,
}

impl Node {
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::String(text) => Some(text),
            _ => None,
        }
    }

    pub fn as_mapping(&self) -> Option<&[(Key, Node)]> {
        match &self.kind {
            NodeKind::Mapping(entries) => Some(entries),
            _ => None,
        }
    }

    /// A short name for the kind of node, for messages.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            NodeKind::Null => "null",
            NodeKind::Bool(_) => "boolean",
            NodeKind::Number(_) => "number",
            NodeKind::String(_) => "string",
            NodeKind::Sequence(_) => "list",
            NodeKind::Mapping(_) => "mapping",
        }
    }
}

/// How deeply a YAML (or JSON) document may nest. Building, lowering and dropping a tree
/// recurse once per level, so a file nested thousands deep would overflow the stack. 128 is
/// what JSON readers usually allow (serde_json does) and twice what a property value may hold
/// (`cairn_core::MAX_VALUE_DEPTH`), leaving room for the program's own structure.
pub const MAX_DOCUMENT_DEPTH: usize = 128;

/// Where `text` first nests deeper than `MAX_DOCUMENT_DEPTH`, or `None` when it does not (or
/// has a syntax error before that point, which loading reports). It reads the parser's events
/// without building anything, so it is safe on any input; an alias counts as deep as the
/// anchored node it copies.
pub fn find_too_deep(text: &str) -> Option<saphyr::Marker> {
    use saphyr_parser::{Event, Parser};
    // The height of each anchored collection, by anchor id, for the aliases that copy it.
    let mut anchored: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
    // For each open collection: its anchor id and the height of its tallest child so far.
    let mut open: Vec<(usize, usize)> = Vec::new();
    for event in Parser::new_from_str(text) {
        let (event, span) = match event {
            Ok(event) => event,
            // The scanner reads flow collections ahead and has a nesting limit of its own
            // (255), which it can reach before any event gets here: the same problem.
            Err(error) if error.info() == "recursion limit exceeded" => {
                return Some(*error.marker());
            }
            Err(_) => return None,
        };
        let child_height = match event {
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if open.len() >= MAX_DOCUMENT_DEPTH {
                    return Some(span.start);
                }
                open.push((anchor, 0));
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some((anchor, tallest_child)) = open.pop() else {
                    continue;
                };
                let height = tallest_child + 1;
                if anchor != 0 {
                    anchored.insert(anchor, height);
                }
                height
            }
            Event::Alias(anchor) => {
                let height = anchored.get(&anchor).copied().unwrap_or(0);
                if open.len() + height > MAX_DOCUMENT_DEPTH {
                    return Some(span.start);
                }
                height
            }
            _ => 0,
        };
        if let Some((_, tallest)) = open.last_mut() {
            *tallest = (*tallest).max(child_height);
        }
    }
    None
}

/// Parses the first YAML document of `source`. Syntax errors become diagnostics, and so does
/// every duplicated key (all of them, not only the first: the walk goes on with the last value).
pub(crate) fn parse_document(source: &SourceFile, diagnostics: &mut Diagnostics) -> Option<Node> {
    if let Some(marker) = find_too_deep(&source.text) {
        let start = source.byte_of_char(marker.index());
        diagnostics.error(
            &source.span(start, start),
            format!("the document nests more than {MAX_DOCUMENT_DEPTH} levels deep"),
            Some(format!(
                "flatten this data: a property value may nest at most {} levels",
                cairn_core::MAX_VALUE_DEPTH
            )),
        );
        return None;
    }
    let mut receiver = KeyTracker::default();
    receiver.loader.allow_duplicate_keys(true);
    let result = saphyr_parser::Parser::new_from_str(&source.text)
        .load(&mut receiver, true)
        .and_then(|()| receiver.loader.error().cloned().map_or(Ok(()), Err));
    if let Err(scan_error) = result {
        let marker = scan_error.marker();
        let start = source.byte_of_char(marker.index());
        let end = source
            .text
            .get(start..)
            .and_then(|rest| rest.chars().next())
            .map_or(start, |next| start + next.len_utf8());
        diagnostics.error(
            &source.span(start, end),
            format!("invalid YAML: {}", scan_error.info()),
            Some("check the indentation and quoting around this point".to_owned()),
        );
        return None;
    }
    for duplicate in &receiver.duplicates {
        diagnostics.error(
            &source.span_of_chars(duplicate.span.start.index(), duplicate.span.end.index()),
            format!(
                "duplicated key `{}`: it is already defined at line {}",
                duplicate.key, duplicate.first_line
            ),
            Some("a key may appear once in a mapping: remove or rename one of them".to_owned()),
        );
    }
    match receiver.loader.into_documents().first() {
        Some(document) => Some(lower_node(source, document, None, diagnostics)),
        None => {
            diagnostics.error(
                &source.span(0, 0),
                "the file is empty",
                Some("a program needs at least `name:` and `runtime: yaml`".to_owned()),
            );
            None
        }
    }
}

/// saphyr's loader, which stops at the first duplicated key unless told to keep the last value,
/// fed through a receiver that notes every duplicated scalar key with its span.
#[derive(Default)]
struct KeyTracker<'input> {
    loader: YamlLoader<'input, MarkedYaml<'input>>,
    /// Open collections: for a mapping, its keys so far (with their line) and whether the next
    /// node is a key.
    open: Vec<Option<(HashMap<String, usize>, bool)>>,
    duplicates: Vec<DuplicateKey>,
}

struct DuplicateKey {
    key: String,
    span: saphyr_parser::Span,
    first_line: usize,
}

impl KeyTracker<'_> {
    /// A node of the innermost collection is complete; `key` is its text when it is a scalar.
    fn complete_node(&mut self, key: Option<&str>, span: saphyr_parser::Span) {
        let Some(Some((seen, expects_key))) = self.open.last_mut() else {
            return;
        };
        if *expects_key && let Some(key) = key {
            match seen.get(key) {
                Some(first_line) => self.duplicates.push(DuplicateKey {
                    key: key.to_owned(),
                    span,
                    first_line: *first_line,
                }),
                None => {
                    seen.insert(key.to_owned(), span.start.line());
                }
            }
        }
        *expects_key = !*expects_key;
    }
}

impl<'input> SpannedEventReceiver<'input> for KeyTracker<'input> {
    fn on_event(&mut self, event: Event<'input>, span: saphyr_parser::Span) {
        match &event {
            Event::Scalar(text, ..) => self.complete_node(Some(text), span),
            Event::Alias(_) => self.complete_node(None, span),
            Event::MappingStart(..) => self.open.push(Some((HashMap::new(), true))),
            Event::SequenceStart(..) => self.open.push(None),
            Event::MappingEnd | Event::SequenceEnd => {
                self.open.pop();
                self.complete_node(None, span);
            }
            _ => {}
        }
        self.loader.on_event(event, span);
    }
}

fn lower_node(
    source: &SourceFile,
    node: &MarkedYaml<'_>,
    outer_span: Option<&Span>,
    diagnostics: &mut Diagnostics,
) -> Node {
    // saphyr leaves the node inside a tag without a span; the tag's span covers it.
    let mut span = match outer_span {
        Some(outer) if node.span.start.index() == 0 && node.span.end.index() == 0 => outer.clone(),
        _ => source.span_of_chars(node.span.start.index(), node.span.end.index()),
    };
    // saphyr ends a flow collection at its closing bracket; include the bracket.
    let closing = match &node.data {
        YamlData::Sequence(_) => Some("]"),
        YamlData::Mapping(_) => Some("}"),
        _ => None,
    };
    if let Some(closing) = closing
        && source
            .text
            .get(span.end..)
            .is_some_and(|rest| rest.starts_with(closing))
    {
        span = source.span(span.start, span.end + 1);
    }
    let kind = match &node.data {
        YamlData::Value(scalar) => lower_scalar(scalar),
        YamlData::Representation(text, _, _) => NodeKind::String(text.to_string()),
        YamlData::Sequence(items) => NodeKind::Sequence(
            items
                .iter()
                .map(|item| lower_node(source, item, None, diagnostics))
                .collect(),
        ),
        YamlData::Mapping(entries) => {
            let mut lowered = Vec::with_capacity(entries.len());
            for (key, value) in entries {
                let key_span = source.span_of_chars(key.span.start.index(), key.span.end.index());
                let name = match &key.data {
                    YamlData::Value(Scalar::String(text)) => text.to_string(),
                    YamlData::Value(_) => source
                        .text
                        .get(key_span.start..key_span.end)
                        .unwrap_or_default()
                        .to_owned(),
                    _ => {
                        diagnostics.error(
                            &key_span,
                            "mapping keys must be plain strings",
                            Some("write the key as a string".to_owned()),
                        );
                        continue;
                    }
                };
                let value = lower_node(source, value, None, diagnostics);
                lowered.push((
                    Key {
                        name,
                        span: key_span,
                    },
                    value,
                ));
            }
            NodeKind::Mapping(lowered)
        }
        YamlData::Tagged(_, inner) => return lower_node(source, inner, Some(&span), diagnostics),
        // The loader resolves aliases itself; a bad value is something it could not parse.
        YamlData::Alias(_) | YamlData::BadValue => NodeKind::Null,
    };
    let verbatim_start = match &kind {
        NodeKind::String(value) => verbatim_start(source, &span, value),
        _ => None,
    };
    Node {
        kind,
        span,
        verbatim_start,
    }
}

fn lower_scalar(scalar: &Scalar<'_>) -> NodeKind {
    match scalar {
        Scalar::Null => NodeKind::Null,
        Scalar::Boolean(flag) => NodeKind::Bool(*flag),
        Scalar::Integer(number) => NodeKind::Number(*number as f64),
        Scalar::FloatingPoint(number) => NodeKind::Number(number.into_inner()),
        Scalar::String(text) => NodeKind::String(text.to_string()),
    }
}

fn verbatim_start(source: &SourceFile, span: &Span, value: &str) -> Option<usize> {
    let written = source.text.get(span.start..span.end)?;
    if written == value {
        return Some(span.start);
    }
    let quote = written
        .chars()
        .next()
        .filter(|first| *first == '"' || *first == '\'')?;
    let inner = written.strip_prefix(quote)?.strip_suffix(quote)?;
    (inner == value).then_some(span.start + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Option<Node>, Vec<String>) {
        let source = SourceFile::new("Cairn.yaml", text);
        let mut diagnostics = Diagnostics::default();
        diagnostics.add_source(&source);
        let node = parse_document(&source, &mut diagnostics);
        let messages = diagnostics.items.iter().map(ToString::to_string).collect();
        (node, messages)
    }

    #[test]
    fn quoted_strings_locate_their_text() {
        let (node, messages) = parse("a: 'é${x}'\nb: \"x\\ty\"\n");
        assert!(messages.is_empty());
        let node = node.unwrap();
        let entries = node.as_mapping().unwrap();
        assert_eq!(entries[0].1.as_str(), Some("é${x}"));
        assert_eq!(entries[0].1.verbatim_start, Some(4));
        assert_eq!(entries[0].1.span.end, 11);
        // An escape means the value is not a copy of the source text.
        assert_eq!(entries[1].1.verbatim_start, None);
    }

    #[test]
    fn syntax_errors_point_at_the_scanner_position() {
        let (node, messages) = parse("a: b\n  c: d\n");
        assert!(node.is_none());
        assert_eq!(
            messages,
            ["Cairn.yaml:2:4: invalid YAML: mapping values are not allowed in this context"]
        );
    }

    /// `depth` nested mappings in block style (`a:` indented one more each time).
    fn block_mappings(depth: usize) -> String {
        let mut text = String::new();
        for level in 0..depth {
            text.push_str(&" ".repeat(level));
            text.push_str("a:\n");
        }
        text.push_str(&" ".repeat(depth));
        text.push_str("x: 1\n");
        text
    }

    #[test]
    fn nesting_at_the_limit_is_accepted() {
        // The innermost `x: 1` mapping is one level more than the `a:` keys.
        let (node, messages) = parse(&block_mappings(MAX_DOCUMENT_DEPTH - 1));
        assert!(messages.is_empty(), "{messages:?}");
        assert!(node.is_some());
    }

    #[test]
    fn deep_block_mappings_are_refused_where_they_pass_the_limit() {
        let (node, messages) = parse(&block_mappings(5_000));
        assert!(node.is_none());
        assert_eq!(
            messages,
            ["Cairn.yaml:129:129: the document nests more than 128 levels deep"]
        );
    }

    #[test]
    fn deep_sequences_flow_and_json_are_refused() {
        let block_sequences: String = (0..5_000)
            .map(|level| format!("{}-\n", " ".repeat(level * 2)))
            .collect();
        let flow = format!("v: {}{}\n", "[".repeat(5_000), "]".repeat(5_000));
        let json = format!("{{\"v\": {}1{}}}", "[".repeat(5_000), "]".repeat(5_000));
        for text in [block_sequences, flow, json] {
            let (node, messages) = parse(&text);
            assert!(node.is_none());
            assert_eq!(messages.len(), 1, "{messages:?}");
            assert!(
                messages[0].contains("nests more than 128 levels deep"),
                "{messages:?}"
            );
        }
    }

    #[test]
    fn aliases_count_as_deep_as_what_they_copy() {
        // 100 levels anchored, then copied 100 levels down: 200 levels once loaded.
        let inner = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        let outer = format!("{}*x{}", "[".repeat(100), "]".repeat(100));
        let (node, messages) = parse(&format!("a: &x {inner}\nb: {outer}\n"));
        assert!(node.is_none());
        assert!(
            messages[0].contains("nests more than 128 levels deep"),
            "{messages:?}"
        );
    }

    #[test]
    fn every_duplicated_key_is_reported_at_its_place() {
        let (node, messages) =
            parse("a: 1\na: 2\nb:\n  c: [x, {c: 1}]\n  d: {e: 1, e: 2}\n  c: 3\na: 4\n\"a\": 5\n");
        assert_eq!(
            messages,
            [
                "Cairn.yaml:2:1: duplicated key `a`: it is already defined at line 1",
                "Cairn.yaml:5:13: duplicated key `e`: it is already defined at line 5",
                "Cairn.yaml:6:3: duplicated key `c`: it is already defined at line 4",
                "Cairn.yaml:7:1: duplicated key `a`: it is already defined at line 1",
                "Cairn.yaml:8:1: duplicated key `a`: it is already defined at line 1",
            ]
        );
        assert!(node.is_some(), "the walk goes on with the last values");
    }
}
