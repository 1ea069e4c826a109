//! All terminal output goes through here: results on stdout, progress and errors on stderr,
//! readable without colour. A broken pipe ends output quietly.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;

/// The live progress view being drawn, if any. Every line written meanwhile (a warning, the
/// Ctrl-C notice, from whichever task) goes through it, above its rows: written behind its back
/// a line would be overdrawn by the next frame, or leave a stale frame on the screen.
static LIVE_VIEW: std::sync::Mutex<Option<indicatif::MultiProgress>> = std::sync::Mutex::new(None);

/// Sets (or, with `None`, ends) the live view that output goes around.
pub fn set_live_view(view: Option<indicatif::MultiProgress>) {
    if let Ok(mut live) = LIVE_VIEW.lock() {
        *live = view;
    }
}

/// Runs `write` with the live view's rows lifted, or at once when there is none.
fn around_live_view(write: impl FnOnce()) {
    // Cloned out, so the lock is not held while the view redraws.
    let view = LIVE_VIEW.lock().ok().and_then(|live| live.clone());
    match view {
        Some(view) => view.suspend(write),
        None => write(),
    }
}

/// Prints one line of results on stdout.
pub fn line(text: &str) {
    around_live_view(|| {
        let mut stdout = std::io::stdout().lock();
        let text = for_terminal(text, std::io::IsTerminal::is_terminal(&stdout));
        // A closed pipe (`cairn stack ls | head -1`) is not an error worth reporting.
        let _ = writeln!(stdout, "{text}");
    });
}

/// On a terminal, control characters other than newline and tab are shown escaped (`\u{1b}`):
/// what a command or a plugin printed must not move the cursor, retitle the window or fake a
/// prompt. Piped output stays byte for byte what it was.
pub fn for_terminal(text: &str, is_terminal: bool) -> std::borrow::Cow<'_, str> {
    let is_unsafe = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !is_terminal || !text.chars().any(is_unsafe) {
        return std::borrow::Cow::Borrowed(text);
    }
    text.chars()
        .map(|c| {
            if is_unsafe(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Prints JSON on stdout, pretty.
pub fn json(value: &serde_json::Value) {
    let rendered = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".to_owned());
    line(&rendered);
}

/// Prints JSON on stdout as one line (a stream of records, as `logs --json` prints).
pub fn json_line(value: &serde_json::Value) {
    line(&value.to_string());
}

/// Prints a progress or informational line on stderr.
pub fn progress(text: &str) {
    around_live_view(|| {
        let mut stderr = std::io::stderr().lock();
        let text = for_terminal(text, std::io::IsTerminal::is_terminal(&stderr));
        let _ = writeln!(stderr, "{text}");
    });
}

pub fn warning(text: &str) {
    progress(&format!("warning: {text}"));
}

pub fn prompt(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = write!(stderr, "{text}");
    let _ = stderr.flush();
}

pub fn error_line(text: &str) {
    progress(&format!("error: {text}"));
}

/// Prints an error and its causes; a `help:` line inside the message stays on its own line.
pub fn error_chain(error: &anyhow::Error) {
    error_line(&chain_message(error));
}

/// An error and its causes on one line, each said once: many errors already quote their
/// source in their own message.
fn chain_message(error: &anyhow::Error) -> String {
    let mut message = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !message.contains(&cause) {
            message.push_str(&format!(": {cause}"));
        }
    }
    message
}

/// Renders a program diagnostic the way miette does: location, snippet, label and help.
pub fn diagnostic(diagnostic: &dyn miette::Diagnostic) {
    let handler =
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor());
    let mut rendered = String::new();
    if handler.render_report(&mut rendered, diagnostic).is_err() {
        rendered = diagnostic.to_string();
    }
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{rendered}");
}

/// Where `cairn run` streams a script's log, byte for byte as it comes: stdout, or stderr when
/// stdout is kept for `--json`. On a terminal, control characters are escaped as everywhere.
pub struct LogSink {
    to_stderr: bool,
}

impl LogSink {
    pub fn new(to_stderr: bool) -> LogSink {
        LogSink { to_stderr }
    }
}

impl Write for LogSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let write = |out: &mut dyn Write, is_terminal: bool| {
            if is_terminal {
                let text = String::from_utf8_lossy(bytes);
                out.write_all(for_terminal(&text, true).as_bytes())
            } else {
                out.write_all(bytes)
            }
        };
        if self.to_stderr {
            let mut stderr = std::io::stderr().lock();
            let is_terminal = std::io::IsTerminal::is_terminal(&stderr);
            write(&mut stderr, is_terminal)?;
        } else {
            let mut stdout = std::io::stdout().lock();
            let is_terminal = std::io::IsTerminal::is_terminal(&stdout);
            write(&mut stdout, is_terminal)?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.to_stderr {
            std::io::stderr().flush()
        } else {
            std::io::stdout().flush()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_reach_a_terminal_escaped_and_a_pipe_unchanged() {
        let text = "ok\x1b]0;owned\x07\x1b[2J\tdone\nnext";
        assert_eq!(
            for_terminal(text, true),
            "ok\\u{1b}]0;owned\\u{7}\\u{1b}[2J\tdone\nnext"
        );
        assert_eq!(for_terminal(text, false), text);
    }

    #[test]
    fn each_cause_of_an_error_is_said_once() {
        let io = std::io::Error::other("disk on fire");
        let quoted = anyhow::Error::new(cairn_state::BackendError::Io {
            action: "writing",
            path: "/x".to_owned(),
            source: io,
        })
        .context("saving the stack");
        assert_eq!(
            chain_message(&quoted),
            "saving the stack: writing `/x`: disk on fire"
        );
    }
}
