//! `cairn.app.yaml`, shaped as tsuru's `tsuru.yaml`: the hooks a deploy runs and the health
//! check a new unit must pass before it gets traffic.
//!
//! ```yaml
//! hooks:
//!   restart: {before: [python manage.py migrate], after: [./warm-cache]}
//!   build: [npm run build]
//! healthcheck:
//!   path: /healthz        # required; a leading `/` is added when missing
//!   method: GET           # default GET
//!   status: 200           # default 200
//!   scheme: http          # http or https
//!   match: "ok"           # a regular expression the body must match
//!   allowed_failures: 0
//!   use_in_router: false
//!   interval_seconds: 3   # default 3: retried this often...
//!   timeout_seconds: 120  # default 120: ...for this long
//! ```
//!
//! Every error names the file, line and column of the offending node. Unknown keys are
//! refused, so a misspelt `helthcheck` does not silently turn the check off.

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};

use crate::AppError;

/// The file's name beside the Procfile.
pub const FILE_NAME: &str = "cairn.app.yaml";

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppManifest {
    pub hooks: Hooks,
    pub healthcheck: Option<Healthcheck>,
}

/// Commands run in a unit: `restart.before` before a unit's process starts, `restart.after`
/// once it runs, `build` while the image is built.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hooks {
    pub restart_before: Vec<String>,
    pub restart_after: Vec<String>,
    pub build: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Healthcheck {
    pub path: String,
    pub method: String,
    pub status: u16,
    pub scheme: String,
    pub r#match: Option<String>,
    pub allowed_failures: u32,
    pub use_in_router: bool,
    pub interval_seconds: u64,
    pub timeout_seconds: u64,
}

impl Healthcheck {
    /// The check of `path` with every other field at its default.
    pub fn of_path(path: &str) -> Healthcheck {
        Healthcheck {
            path: if path.starts_with('/') {
                path.to_owned()
            } else {
                format!("/{path}")
            },
            method: "GET".to_owned(),
            status: 200,
            scheme: "http".to_owned(),
            r#match: None,
            allowed_failures: 0,
            use_in_router: false,
            interval_seconds: 3,
            timeout_seconds: 120,
        }
    }
}

/// Parses the file's text; `file` is how errors name it.
pub fn parse(file: &str, text: &str) -> Result<AppManifest, AppError> {
    if let Some(marker) = cairn_program::find_too_deep(text) {
        return Err(AppError::Invalid(format!(
            "{file}:{}:{}: the file nests more than {} levels deep",
            marker.line(),
            marker.col() + 1,
            cairn_program::MAX_DOCUMENT_DEPTH
        )));
    }
    let documents = MarkedYaml::load_from_str(text).map_err(|error| {
        AppError::Invalid(format!(
            "{file}:{}:{}: {}",
            error.marker().line(),
            error.marker().col() + 1,
            error.info()
        ))
    })?;
    let reader = Reader { file };
    let mut manifest = AppManifest::default();
    let Some(root) = documents.first() else {
        return Ok(manifest);
    };
    if matches!(root.data, YamlData::Value(Scalar::Null)) {
        return Ok(manifest);
    }
    for (key, value) in reader.mapping(root, &["hooks", "healthcheck"])? {
        match key {
            "hooks" => manifest.hooks = reader.hooks(value)?,
            _ => manifest.healthcheck = Some(reader.healthcheck(value)?),
        }
    }
    Ok(manifest)
}

struct Reader<'a> {
    file: &'a str,
}

impl Reader<'_> {
    fn error(&self, node: &MarkedYaml<'_>, message: String) -> AppError {
        let start = node.span.start;
        AppError::Invalid(format!(
            "{}:{}:{}: {message}",
            self.file,
            start.line(),
            start.col() + 1
        ))
    }

    /// A mapping's entries, every key one of `known`.
    fn mapping<'n, 'i>(
        &self,
        node: &'n MarkedYaml<'i>,
        known: &[&'static str],
    ) -> Result<Vec<(&'static str, &'n MarkedYaml<'i>)>, AppError> {
        let YamlData::Mapping(entries) = &node.data else {
            return Err(self.error(
                node,
                format!("expected a mapping with the keys {}", quoted(known)),
            ));
        };
        let mut pairs = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let name = match &key.data {
                YamlData::Value(Scalar::String(text)) => text.as_ref(),
                YamlData::Representation(text, _, _) => text.as_ref(),
                _ => "",
            };
            let Some(name) = known.iter().find(|known| **known == name) else {
                return Err(self.error(
                    key,
                    format!(
                        "unknown key `{}`; expected one of {}",
                        name.escape_debug(),
                        quoted(known)
                    ),
                ));
            };
            pairs.push((*name, value));
        }
        Ok(pairs)
    }

    fn string(&self, node: &MarkedYaml<'_>, what: &str) -> Result<String, AppError> {
        match &node.data {
            YamlData::Value(Scalar::String(text)) => Ok(text.to_string()),
            YamlData::Representation(text, _, _) => Ok(text.to_string()),
            _ => Err(self.error(node, format!("{what} must be a string"))),
        }
    }

    fn integer(&self, node: &MarkedYaml<'_>, what: &str, max: u64) -> Result<u64, AppError> {
        match &node.data {
            YamlData::Value(Scalar::Integer(number)) if *number >= 0 && (*number as u64) <= max => {
                Ok(*number as u64)
            }
            _ => Err(self.error(
                node,
                format!("{what} must be a whole number from 0 to {max}"),
            )),
        }
    }

    /// A list of commands; a single string is a list of one.
    fn commands(&self, node: &MarkedYaml<'_>, what: &str) -> Result<Vec<String>, AppError> {
        match &node.data {
            YamlData::Sequence(items) => items
                .iter()
                .map(|item| self.string(item, &format!("each command of {what}")))
                .collect(),
            YamlData::Value(Scalar::Null) => Ok(Vec::new()),
            _ => Ok(vec![
                self.string(node, &format!("{what} (a list of commands)"))?,
            ]),
        }
    }

    fn hooks(&self, node: &MarkedYaml<'_>) -> Result<Hooks, AppError> {
        let mut hooks = Hooks::default();
        for (key, value) in self.mapping(node, &["restart", "build"])? {
            if key == "build" {
                hooks.build = self.commands(value, "`hooks.build`")?;
                continue;
            }
            for (when, commands) in self.mapping(value, &["before", "after"])? {
                let what = format!("`hooks.restart.{when}`");
                let commands = self.commands(commands, &what)?;
                if when == "before" {
                    hooks.restart_before = commands;
                } else {
                    hooks.restart_after = commands;
                }
            }
        }
        Ok(hooks)
    }

    fn healthcheck(&self, node: &MarkedYaml<'_>) -> Result<Healthcheck, AppError> {
        const KEYS: [&str; 9] = [
            "path",
            "method",
            "status",
            "scheme",
            "match",
            "allowed_failures",
            "use_in_router",
            "interval_seconds",
            "timeout_seconds",
        ];
        let entries = self.mapping(node, &KEYS)?;
        let path = entries
            .iter()
            .find(|(key, _)| *key == "path")
            .ok_or_else(|| self.error(node, "the health check needs a `path`".to_owned()))?;
        let mut check = Healthcheck::of_path(&self.string(path.1, "`path`")?);
        for (key, value) in entries {
            let what = format!("`healthcheck.{key}`");
            match key {
                "method" => {
                    let method = self.string(value, &what)?.to_ascii_uppercase();
                    if method.is_empty() || !method.chars().all(|c| c.is_ascii_uppercase()) {
                        return Err(self.error(value, format!("{what} must be an HTTP method")));
                    }
                    check.method = method;
                }
                "status" => {
                    let status = self.integer(value, &what, 599)?;
                    if status < 100 {
                        return Err(self.error(value, format!("{what} must be an HTTP status")));
                    }
                    check.status = status as u16;
                }
                "scheme" => {
                    let scheme = self.string(value, &what)?;
                    if scheme != "http" && scheme != "https" {
                        return Err(self.error(value, format!("{what} must be `http` or `https`")));
                    }
                    check.scheme = scheme;
                }
                "match" => check.r#match = Some(self.string(value, &what)?),
                "allowed_failures" => {
                    check.allowed_failures = self.integer(value, &what, u32::MAX.into())? as u32;
                }
                "use_in_router" => match &value.data {
                    YamlData::Value(Scalar::Boolean(flag)) => check.use_in_router = *flag,
                    _ => return Err(self.error(value, format!("{what} must be true or false"))),
                },
                "interval_seconds" | "timeout_seconds" => {
                    let seconds = self.integer(value, &what, 86_400)?;
                    if seconds == 0 {
                        return Err(self.error(value, format!("{what} must be at least 1")));
                    }
                    if key == "interval_seconds" {
                        check.interval_seconds = seconds;
                    } else {
                        check.timeout_seconds = seconds;
                    }
                }
                _ => {}
            }
        }
        Ok(check)
    }
}

fn quoted(keys: &[&str]) -> String {
    keys.iter()
        .map(|key| format!("`{key}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    #[track_caller]
    fn check(text: &str, expect: Expect) {
        let rendered = match super::parse("cairn.app.yaml", text) {
            Ok(manifest) => format!("{manifest:#?}\n"),
            Err(error) => format!("error: {error}\n"),
        };
        expect.assert_eq(&rendered);
    }

    #[test]
    fn reads_tsuru_yaml_hooks_and_healthcheck() {
        check(
            "hooks:\n  restart:\n    before: [migrate]\n    after:\n      - warm\n      - ping\n  build: npm run build\nhealthcheck:\n  path: healthz\n  method: post\n  status: 204\n  scheme: https\n  match: ^ok$\n  allowed_failures: 2\n  use_in_router: true\n  timeout_seconds: 30\n",
            expect![[r#"
                AppManifest {
                    hooks: Hooks {
                        restart_before: [
                            "migrate",
                        ],
                        restart_after: [
                            "warm",
                            "ping",
                        ],
                        build: [
                            "npm run build",
                        ],
                    },
                    healthcheck: Some(
                        Healthcheck {
                            path: "/healthz",
                            method: "POST",
                            status: 204,
                            scheme: "https",
                            match: Some(
                                "^ok$",
                            ),
                            allowed_failures: 2,
                            use_in_router: true,
                            interval_seconds: 3,
                            timeout_seconds: 30,
                        },
                    ),
                }
            "#]],
        );
    }

    #[test]
    fn an_empty_file_has_no_hooks_and_no_check() {
        check(
            "# nothing yet\n",
            expect![[r#"
                AppManifest {
                    hooks: Hooks {
                        restart_before: [],
                        restart_after: [],
                        build: [],
                    },
                    healthcheck: None,
                }
            "#]],
        );
    }

    #[test]
    fn errors_point_at_the_offending_node() {
        check(
            "hooks:\n  build: [a]\nhelthcheck:\n  path: /\n",
            expect![[r#"
                error: cairn.app.yaml:3:1: unknown key `helthcheck`; expected one of `hooks`, `healthcheck`
            "#]],
        );
        check(
            "healthcheck:\n  path: /\n  status: two hundred\n",
            expect![[r#"
                error: cairn.app.yaml:3:11: `healthcheck.status` must be a whole number from 0 to 599
            "#]],
        );
        check(
            "healthcheck:\n  method: GET\n",
            expect![[r#"
                error: cairn.app.yaml:2:3: the health check needs a `path`
            "#]],
        );
        check(
            "hooks:\n  restart:\n    during: [x]\n",
            expect![[r#"
                error: cairn.app.yaml:3:5: unknown key `during`; expected one of `before`, `after`
            "#]],
        );
        check(
            "healthcheck:\n  path: /\n  scheme: ftp\n",
            expect![[r#"
                error: cairn.app.yaml:3:11: `healthcheck.scheme` must be `http` or `https`
            "#]],
        );
        check(
            "healthcheck:\n  path: /a\n  path: /b\n",
            expect![[r#"
                error: cairn.app.yaml:3:3: duplicated key in mapping
            "#]],
        );
        check(
            "hooks: [a\n",
            expect![[r#"
                error: cairn.app.yaml:2:1: while parsing a flow sequence, expected ',' or ']'
            "#]],
        );
    }
}
