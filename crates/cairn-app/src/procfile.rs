//! Procfiles, as Heroku and tsuru read them: one `name: command` line per process type; blank
//! lines and lines starting with `#` are skipped. Every error names the line it is on.

use crate::names::validate_process_name;
use crate::{AppError, Process};

/// Parses a Procfile's text; `file` is how errors name it (`Procfile`, a path).
pub fn parse(file: &str, text: &str) -> Result<Vec<Process>, AppError> {
    let mut processes: Vec<Process> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        let at = |message: String| AppError::Invalid(format!("{file}:{line_number}: {message}"));
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some((name, command)) = trimmed.split_once(':') else {
            return Err(at(format!(
                "expected `name: command`, found `{}`",
                trimmed.escape_debug()
            )));
        };
        let (name, command) = (name.trim(), command.trim());
        validate_process_name(name).map_err(|error| at(error.to_string()))?;
        if command.is_empty() {
            return Err(at(format!("process `{name}` has no command")));
        }
        if processes.iter().any(|process| process.name == name) {
            return Err(at(format!("process `{name}` is declared twice")));
        }
        processes.push(Process {
            name: name.to_owned(),
            command: command.to_owned(),
        });
    }
    if processes.is_empty() {
        return Err(AppError::Invalid(format!(
            "{file}: no process declared; add a line such as `web: ./server`"
        )));
    }
    Ok(processes)
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    #[track_caller]
    fn check(text: &str, expect: Expect) {
        let rendered = match super::parse("Procfile", text) {
            Ok(processes) => processes
                .iter()
                .map(|process| format!("{} => {}\n", process.name, process.command))
                .collect(),
            Err(error) => format!("error: {error}\n"),
        };
        expect.assert_eq(&rendered);
    }

    #[test]
    fn reads_processes_skipping_comments_and_blank_lines() {
        check(
            "# the web server\nweb: ./server --port $PORT\n\n  worker:python worker.py  \r\nclock: echo a:b\n",
            expect![[r#"
                web => ./server --port $PORT
                worker => python worker.py
                clock => echo a:b
            "#]],
        );
    }

    #[test]
    fn a_line_without_a_colon_names_its_line() {
        check(
            "web: ./server\n\njust a command\n",
            expect![[r#"
                error: Procfile:3: expected `name: command`, found `just a command`
            "#]],
        );
    }

    #[test]
    fn bad_names_empty_commands_and_repeats_are_refused() {
        check(
            "web server: ./x\n",
            expect![[r#"
                error: Procfile:1: `web server` is not a process name: use 1 to 63 letters, digits, `-` or `_`, starting with a letter or digit
            "#]],
        );
        check(
            "web:\n",
            expect![[r#"
                error: Procfile:1: process `web` has no command
            "#]],
        );
        check(
            "web: a\n# x\nweb: b\n",
            expect![[r#"
                error: Procfile:3: process `web` is declared twice
            "#]],
        );
        check(
            "# nothing\n\n",
            expect![[r#"
                error: Procfile: no process declared; add a line such as `web: ./server`
            "#]],
        );
    }
}
