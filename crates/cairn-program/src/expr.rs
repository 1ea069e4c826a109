//! The `${...}` syntax: splitting a string into text and references, and parsing one reference
//! (`res.prop[0]["key"]`). Pure string functions; name resolution happens in `check.rs`.
//!
//! `$${` is an escape for a literal `${`.

use crate::ast::Accessor;

/// A piece of a string that may contain `${...}`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Piece {
    Text(String),
    /// `inner` is the text between `${` and `}`; `start..end` is the byte range of the whole
    /// `${...}` within the string.
    Reference {
        inner: String,
        start: usize,
        end: usize,
    },
}

/// A syntax error at bytes `start..end` of the text that was parsed.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SyntaxError {
    pub message: String,
    pub help: Option<String>,
    pub start: usize,
    pub end: usize,
}

/// A reference before its root name is resolved.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ParsedReference {
    pub root: String,
    pub path: Vec<Accessor>,
}

/// Splits `value` into text and `${...}` pieces. Adjacent text is merged; escapes are resolved.
pub(crate) fn split_interpolation(value: &str) -> Result<Vec<Piece>, SyntaxError> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut position = 0;
    while position < value.len() {
        let rest = &value[position..];
        if rest.starts_with("$${") {
            text.push_str("${");
            position += 3;
        } else if let Some(after_open) = rest.strip_prefix("${") {
            let Some(close) = find_closing_brace(after_open) else {
                return Err(SyntaxError {
                    message: "unterminated `${`".to_owned(),
                    help: Some(
                        "close the reference with `}`, or write `$${` for a literal `${`"
                            .to_owned(),
                    ),
                    start: position,
                    end: value.len(),
                });
            };
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            let end = position + 2 + close + 1;
            pieces.push(Piece::Reference {
                inner: after_open[..close].to_owned(),
                start: position,
                end,
            });
            position = end;
        } else {
            let next = rest.chars().next().map_or(1, char::len_utf8);
            text.push_str(&rest[..next]);
            position += next;
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

/// The offset of the `}` closing a reference, skipping `}` inside `["..."]` keys.
fn find_closing_brace(text: &str) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (offset, character) in text.char_indices() {
        match character {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '}' if !in_quotes => return Some(offset),
            _ => {}
        }
    }
    None
}

fn is_root_char(character: char) -> bool {
    character.is_alphanumeric() || matches!(character, '_' | '-' | ':')
}

fn is_property_char(character: char) -> bool {
    character.is_alphanumeric() || matches!(character, '_' | '-' | '$')
}

/// Parses the text between `${` and `}`. Error offsets are relative to `inner`.
pub(crate) fn parse_reference(inner: &str) -> Result<ParsedReference, SyntaxError> {
    let error = |message: String, start: usize, end: usize| {
        SyntaxError {
        message,
        help: Some(
            "a reference looks like `${name}`, `${name.property}`, `${name[0]}` or `${name[\"key\"]}`"
                .to_owned(),
        ),
        start,
        end,
    }
    };
    if inner.is_empty() {
        return Err(error("empty reference `${}`".to_owned(), 0, 0));
    }
    let root_end = inner
        .char_indices()
        .find(|(_, character)| !is_root_char(*character))
        .map_or(inner.len(), |(offset, _)| offset);
    if root_end == 0 {
        return Err(error(
            format!("malformed reference `${{{inner}}}`: it must start with a name"),
            0,
            inner.len(),
        ));
    }
    let root = inner[..root_end].to_owned();
    let mut path = Vec::new();
    let mut position = root_end;
    while position < inner.len() {
        let rest = &inner[position..];
        if let Some(after_dot) = rest.strip_prefix('.') {
            let length = after_dot
                .char_indices()
                .find(|(_, character)| !is_property_char(*character))
                .map_or(after_dot.len(), |(offset, _)| offset);
            if length == 0 {
                return Err(error(
                    format!(
                        "malformed reference `${{{inner}}}`: expected a property name after `.`"
                    ),
                    position,
                    position + 1,
                ));
            }
            path.push(Accessor::Property(after_dot[..length].to_owned()));
            position += 1 + length;
        } else if let Some(after_bracket) = rest.strip_prefix('[') {
            let (accessor, consumed) = parse_bracket(after_bracket).ok_or_else(|| {
                error(
                    format!(
                        "malformed reference `${{{inner}}}`: expected `[<number>]` or `[\"<key>\"]`"
                    ),
                    position,
                    inner.len(),
                )
            })?;
            path.push(accessor);
            position += 1 + consumed;
        } else {
            let unexpected = rest.chars().next().unwrap_or(' ');
            return Err(error(
                format!("malformed reference `${{{inner}}}`: unexpected `{unexpected}`"),
                position,
                position + unexpected.len_utf8(),
            ));
        }
    }
    Ok(ParsedReference { root, path })
}

/// Parses what follows `[`: `12]` or `"key"]`. Returns the accessor and the bytes consumed.
fn parse_bracket(text: &str) -> Option<(Accessor, usize)> {
    if let Some(quoted) = text.strip_prefix('"') {
        let mut key = String::new();
        let mut escaped = false;
        for (offset, character) in quoted.char_indices() {
            if escaped {
                key.push(character);
                escaped = false;
            } else if character == '\\' {
                escaped = true;
            } else if character == '"' {
                let after = &quoted[offset + 1..];
                return after
                    .starts_with(']')
                    .then_some((Accessor::Key(key), 1 + offset + 1 + 1));
            } else {
                key.push(character);
            }
        }
        None
    } else {
        let digits = text.find(']')?;
        let index = text[..digits].parse::<usize>().ok()?;
        Some((Accessor::Index(index), digits + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{Expect, expect};

    #[track_caller]
    fn check(value: &str, expect: Expect) {
        let rendered = match split_interpolation(value) {
            Ok(pieces) => pieces
                .iter()
                .map(|piece| match piece {
                    Piece::Text(text) => format!("text {text:?}"),
                    Piece::Reference { inner, start, end } => match parse_reference(inner) {
                        Ok(parsed) => {
                            format!("ref {start}..{end} {} {:?}", parsed.root, parsed.path)
                        }
                        Err(error) => format!(
                            "ref {start}..{end} error {}..{}: {}",
                            error.start, error.end, error.message
                        ),
                    },
                })
                .collect::<Vec<_>>()
                .join("\n"),
            Err(error) => format!("error {}..{}: {}", error.start, error.end, error.message),
        };
        expect.assert_eq(&rendered);
    }

    #[test]
    fn plain_text_stays_text() {
        check("hello", expect![[r#"text "hello""#]]);
    }

    #[test]
    fn references_with_paths() {
        check(
            r#"a-${pet.keepers["x}y"][0].id}!"#,
            expect![[r#"
                text "a-"
                ref 2..29 pet [Property("keepers"), Key("x}y"), Index(0), Property("id")]
                text "!""#]],
        );
    }

    #[test]
    fn escapes_produce_literal_dollar_brace() {
        check(
            "$${not} and ${yes}",
            expect![[r#"
                text "${not} and "
                ref 12..18 yes []"#]],
        );
    }

    #[test]
    fn namespaced_config_root() {
        check("${aws:region}", expect![[r#"ref 0..13 aws:region []"#]]);
    }

    #[test]
    fn unterminated_reference() {
        check("x ${a.b", expect![[r#"error 2..7: unterminated `${`"#]]);
    }

    #[test]
    fn malformed_references() {
        check(
            "${}",
            expect![[r#"ref 0..3 error 0..0: empty reference `${}`"#]],
        );
        check(
            "${a..b}",
            expect![[
                r#"ref 0..7 error 1..2: malformed reference `${a..b}`: expected a property name after `.`"#
            ]],
        );
        check(
            "${a[x]}",
            expect![[
                r#"ref 0..7 error 1..4: malformed reference `${a[x]}`: expected `[<number>]` or `["<key>"]`"#
            ]],
        );
        check(
            "${a b}",
            expect![[r#"ref 0..6 error 1..2: malformed reference `${a b}`: unexpected ` `"#]],
        );
    }
}
