//! Program diagnostics: an error with a file, a 1-based line and column, a byte span into the
//! text the user wrote, the offending snippet and a help line. They render through `miette`
//! (the CLI's job) or as plain `file:line:col: message` text.
//!
//! Also the source-file bookkeeping that turns saphyr's character positions into byte offsets.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use miette::{LabeledSpan, NamedSource, SourceCode};

use crate::ast::Span;

/// One problem in a program, at a place in one of its files.
#[derive(Clone, Debug)]
pub struct Diagnostic {
    pub message: String,
    /// The path as given relative to the project directory (`Cairn.yaml`, `app/Main.yaml`).
    pub file: String,
    /// 1-based; 0 when the problem is not inside the file (a missing file).
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    /// Byte offsets into the file's text.
    pub span: Range<usize>,
    /// The offending text.
    pub snippet: String,
    pub help: Option<String>,
    source_code: Option<NamedSource<Arc<str>>>,
}

impl Diagnostic {
    /// A diagnostic at `span`; `source_text` is the text of `span.file` when it is known.
    pub fn at(
        span: &Span,
        source_text: Option<&Arc<str>>,
        message: impl Into<String>,
    ) -> Diagnostic {
        let snippet = source_text
            .and_then(|text| text.get(span.start..span.end))
            .unwrap_or_default()
            .to_owned();
        Diagnostic {
            message: message.into(),
            file: span.file.clone(),
            line: span.line,
            column: span.column,
            span: span.start..span.end,
            snippet,
            help: None,
            source_code: source_text
                .map(|text| NamedSource::new(span.file.clone(), Arc::clone(text))),
        }
    }

    /// A diagnostic about a whole file (a missing or unreadable file).
    pub fn for_file(file: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::at(
            &Span {
                file: file.to_owned(),
                ..Span::default()
            },
            None,
            message,
        )
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn with_optional_help(mut self, help: Option<String>) -> Diagnostic {
        self.help = help;
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(formatter, "{}: {}", self.file, self.message)
        } else {
            write!(
                formatter,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        }
    }
}

impl std::error::Error for Diagnostic {}

impl miette::Diagnostic for Diagnostic {
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|help| Box::new(help) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source_code
            .as_ref()
            .map(|source| source as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.source_code.as_ref()?;
        let label = LabeledSpan::new_with_span(None, self.span.clone());
        Some(Box::new(std::iter::once(label)))
    }
}

/// A file's text plus the tables that convert positions.
pub(crate) struct SourceFile {
    pub name: String,
    pub text: Arc<str>,
    /// Byte offset of every character, plus one past the end: saphyr counts characters. Empty
    /// for ASCII text, where a character's index is its byte offset: at eight bytes a
    /// character, the table outweighed the rest of a large program.
    char_to_byte: Vec<usize>,
    /// Byte offset where each line starts.
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(name: &str, text: &str) -> SourceFile {
        let char_to_byte = if text.is_ascii() {
            Vec::new()
        } else {
            let mut table: Vec<usize> = text.char_indices().map(|(byte, _)| byte).collect();
            table.push(text.len());
            table
        };
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(byte, _)| byte + 1))
            .collect();
        SourceFile {
            name: name.to_owned(),
            text: Arc::from(text),
            char_to_byte,
            line_starts,
        }
    }

    pub fn byte_of_char(&self, char_index: usize) -> usize {
        if self.char_to_byte.is_empty() {
            return char_index.min(self.text.len());
        }
        self.char_to_byte
            .get(char_index)
            .copied()
            .unwrap_or(self.text.len())
    }

    /// The span of the bytes `start..end`, with its 1-based line and column.
    pub fn span(&self, start: usize, end: usize) -> Span {
        let start = start.min(self.text.len());
        let end = end.clamp(start, self.text.len());
        let line_index = self
            .line_starts
            .partition_point(|line_start| *line_start <= start)
            .saturating_sub(1);
        let line_start = self.line_starts.get(line_index).copied().unwrap_or(0);
        let column = self
            .text
            .get(line_start..start)
            .map_or(0, |prefix| prefix.chars().count())
            + 1;
        Span {
            file: self.name.clone(),
            start,
            end,
            line: line_index + 1,
            column,
        }
    }

    /// The span from character index `start` to character index `end`, trailing whitespace
    /// trimmed (saphyr ends block collections at the next token).
    pub fn span_of_chars(&self, start: usize, end: usize) -> Span {
        let start_byte = self.byte_of_char(start);
        let mut end_byte = self.byte_of_char(end).max(start_byte);
        let trimmed = self
            .text
            .get(start_byte..end_byte)
            .map_or(0, |slice| slice.trim_end().len());
        end_byte = start_byte + trimmed;
        self.span(start_byte, end_byte)
    }
}

/// Collects diagnostics while loading; knows every file's text so each diagnostic can carry it.
#[derive(Default)]
pub(crate) struct Diagnostics {
    pub items: Vec<Diagnostic>,
    pub sources: std::collections::BTreeMap<String, Arc<str>>,
}

impl Diagnostics {
    pub fn add_source(&mut self, source: &SourceFile) {
        self.sources
            .insert(source.name.clone(), Arc::clone(&source.text));
    }

    pub fn error(&mut self, span: &Span, message: impl Into<String>, help: Option<String>) {
        let diagnostic =
            Diagnostic::at(span, self.sources.get(&span.file), message).with_optional_help(help);
        self.items.push(diagnostic);
    }

    pub fn has_errors(&self) -> bool {
        !self.items.is_empty()
    }
}

/// `did you mean `x`?` for the candidate closest to `name`, if any is close enough.
pub(crate) fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    closest(name, candidates).map(|best| format!("did you mean `{best}`?"))
}

/// The candidate closest to `name`, if any is close enough to be a plausible typo.
pub(crate) fn closest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lowered = name.to_lowercase();
    // Short names get less slack: `zz` is not a typo of `a`.
    let allowed_distance = (name.chars().count().div_ceil(3)).max(1);
    candidates
        .into_iter()
        .filter(|candidate| *candidate != name)
        .map(|candidate| {
            let distance = strsim::damerau_levenshtein(&lowered, &candidate.to_lowercase());
            (distance, candidate)
        })
        .filter(|(distance, _)| *distance <= allowed_distance)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// "did you mean" when something is close, else a list of what exists (at most ten).
pub(crate) fn suggest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str> + Clone,
    what: &str,
) -> Option<String> {
    if let Some(hint) = did_you_mean(name, candidates.clone()) {
        return Some(hint);
    }
    let listed: Vec<String> = candidates
        .into_iter()
        .take(10)
        .map(|candidate| format!("`{candidate}`"))
        .collect();
    if listed.is_empty() {
        None
    } else {
        Some(format!("{what}: {}", listed.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_count_bytes_and_columns_count_chars() {
        let source = SourceFile::new("Cairn.yaml", "a: é\nbb: x\n");
        // Character 3 is `é` (two bytes), character 5 is the `b` starting line 2.
        assert_eq!(source.byte_of_char(3), 3);
        assert_eq!(source.byte_of_char(5), 6);
        let span = source.span_of_chars(5, 7);
        assert_eq!((span.start, span.end, span.line, span.column), (6, 8, 2, 1));
        let x = source.span(10, 11);
        assert_eq!((x.line, x.column), (2, 5));
    }

    #[test]
    fn display_is_file_line_column_message() {
        let source = SourceFile::new("Cairn.yaml", "name: x\n");
        let diagnostic =
            Diagnostic::at(&source.span(6, 7), Some(&source.text), "bad `x`").with_help("use `y`");
        assert_eq!(diagnostic.to_string(), "Cairn.yaml:1:7: bad `x`");
        assert_eq!(diagnostic.snippet, "x");
        assert_eq!(
            Diagnostic::for_file("Cairn.yaml", "missing").to_string(),
            "Cairn.yaml: missing"
        );
    }

    #[test]
    fn did_you_mean_picks_the_closest() {
        assert_eq!(
            did_you_mean("lenght", ["length", "prefix"]),
            Some("did you mean `length`?".to_owned())
        );
        assert_eq!(did_you_mean("zzzzzz", ["length", "prefix"]), None);
    }
}
