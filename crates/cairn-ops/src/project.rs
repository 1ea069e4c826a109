//! The project: the one reader of `Cairn.yaml` / `Pulumi.yaml` outside the program loader. It
//! gives what commands need before (or without) loading the program: the name, description,
//! declared config keys, `plugins:`, and the packages the program uses, following `main:` (or
//! `Main.yaml` / `Main.json` beside the project file) as the program loader does.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cairn_program::{MAIN_FILE_NAMES, PROJECT_FILE_NAMES};
use cairn_provider::files::{MAX_READ_BYTES, check_regular_file, read_regular_file};

use crate::yaml::yaml_to_json;

/// Why a project could not be read. Every case is the user's input.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error(
        "no Cairn.yaml or Pulumi.yaml in `{}`\nhelp: run the command in a project directory, or pass `--cwd DIR`",
        .0.display()
    )]
    NotFound(PathBuf),
    #[error("{}: the project file is not UTF-8 text\nhelp: save it as UTF-8", .0.display())]
    NotUtf8(PathBuf),
    #[error("{}: {message}", path.display())]
    Unreadable { path: PathBuf, message: String },
    #[error("{}:{message}", path.display())]
    Syntax { path: PathBuf, message: String },
    #[error("{}: the project has no `name`\nhelp: add `name: <project>` at the top", .0.display())]
    NoName(PathBuf),
}

/// A project directory and what its project file says.
#[derive(Clone, Debug, PartialEq)]
pub struct Project {
    pub dir: PathBuf,
    /// The project file found in `dir`.
    pub file: PathBuf,
    pub name: String,
    pub description: Option<String>,
    /// Whether the project uses Pulumi's file names (its stack files are `Pulumi.<stack>.yaml`).
    pub uses_pulumi_names: bool,
    /// The declarations under `config:` (and the older `configuration:`), in source order.
    pub config: Vec<ConfigDeclaration>,
    /// `plugins:`: `{name: path}`, or Pulumi's `{providers: [{name, path}]}`.
    pub plugins: BTreeMap<String, PathBuf>,
    /// Packages named by `type:` and `function:` in the project file and the program it runs.
    pub packages: BTreeSet<String>,
}

/// A configuration key the project declares.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigDeclaration {
    /// As written: `count`, `proj:count` or `aws:region`.
    pub key: String,
    /// Declared `secret: true`: its value is sealed when set.
    pub secret: bool,
}

impl Project {
    /// Whether `key` (`project:name`, or `name` in the project's namespace) is declared
    /// `secret: true`.
    pub fn declares_secret(&self, key: &str) -> bool {
        let short = key.strip_prefix(&format!("{}:", self.name));
        self.config.iter().any(|declaration| {
            declaration.secret
                && (declaration.key == key || Some(declaration.key.as_str()) == short)
        })
    }

    /// A project made in memory, with no file behind it (the project of `cairn group`'s
    /// stacks, whose program is made from the committed specs): `dir` keeps its stack files.
    pub fn in_memory(dir: &Path, name: &str, packages: &[&str]) -> Project {
        Project {
            dir: dir.to_owned(),
            file: dir.join(PROJECT_FILE_NAMES[0]),
            name: name.to_owned(),
            description: None,
            uses_pulumi_names: false,
            config: Vec::new(),
            plugins: BTreeMap::new(),
            packages: packages.iter().map(|name| (*name).to_owned()).collect(),
        }
    }

    /// The project file in `dir`, if there is one (a regular file: a FIFO named `Cairn.yaml`
    /// would hang the reader).
    pub fn find_file(dir: &Path) -> Result<PathBuf, ProjectError> {
        let path = PROJECT_FILE_NAMES
            .iter()
            .map(|name| dir.join(name))
            .find(|path| path.exists())
            .ok_or_else(|| ProjectError::NotFound(dir.to_owned()))?;
        check_regular_file(&path, MAX_READ_BYTES).map_err(|error| ProjectError::Unreadable {
            path: path.clone(),
            message: error.to_string(),
        })?;
        Ok(path)
    }

    /// Reads the project in `dir`.
    pub fn load(dir: &Path) -> Result<Project, ProjectError> {
        let file = Self::find_file(dir)?;
        let text = read_text(&file)?;
        let document = yaml_to_json(&text).map_err(|message| ProjectError::Syntax {
            path: file.clone(),
            message,
        })?;
        let name = document
            .get("name")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ProjectError::NoName(file.clone()))?;
        let description = document
            .get("description")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned);
        let config = ["config", "configuration"]
            .iter()
            .filter_map(|key| document.get(key)?.as_object())
            .flat_map(|entries| entries.iter())
            .map(|(key, declaration)| ConfigDeclaration {
                key: key.clone(),
                secret: declaration["secret"] == serde_json::Value::Bool(true),
            })
            .collect();
        let mut packages = referenced_packages(&text);
        for program_file in main_files(dir, &document) {
            // A program the loader cannot read is reported by the loader, where it is named.
            if let Ok(text) = read_text(&program_file) {
                packages.extend(referenced_packages(&text));
            }
        }
        let uses_pulumi_names = file
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with("Pulumi"));
        Ok(Project {
            dir: dir.to_owned(),
            plugins: project_plugins(&document),
            file,
            name,
            description,
            uses_pulumi_names,
            config,
            packages,
        })
    }

    /// The stack's config file: `Cairn.<stack>.yaml`, or `Pulumi.<stack>.yaml` for projects
    /// that use Pulumi's names (or where that file already exists).
    pub fn stack_config_path(&self, stack: &str) -> PathBuf {
        stack_config_path(&self.dir, self.uses_pulumi_names, stack)
    }
}

/// `Cairn.<stack>.yaml`, else `Pulumi.<stack>.yaml` when it exists or `uses_pulumi_names`.
pub fn stack_config_path(dir: &Path, uses_pulumi_names: bool, stack: &str) -> PathBuf {
    let cairn = dir.join(format!("Cairn.{stack}.yaml"));
    let pulumi = dir.join(format!("Pulumi.{stack}.yaml"));
    if cairn.exists() {
        cairn
    } else if pulumi.exists() || uses_pulumi_names {
        pulumi
    } else {
        cairn
    }
}

fn read_text(path: &Path) -> Result<String, ProjectError> {
    read_regular_file(path, MAX_READ_BYTES).map_err(|error| match error.kind() {
        std::io::ErrorKind::InvalidData => ProjectError::NotUtf8(path.to_owned()),
        _ => ProjectError::Unreadable {
            path: path.to_owned(),
            message: error.to_string(),
        },
    })
}

/// The program files beside the project file: what `main:` names (a file, or a directory
/// holding `Main.yaml`/`Main.json`), else `Main.yaml`/`Main.json` in the project directory.
fn main_files(dir: &Path, document: &serde_json::Value) -> Vec<PathBuf> {
    let main = document["main"].as_str().unwrap_or_default();
    let relative = main.trim_start_matches("./").trim_end_matches('/');
    let is_file = [".yaml", ".yml", ".json"]
        .iter()
        .any(|extension| relative.ends_with(extension));
    if is_file {
        return vec![dir.join(relative)];
    }
    let main_dir = dir.join(relative);
    MAIN_FILE_NAMES
        .iter()
        .map(|name| main_dir.join(name))
        .filter(|path| path.is_file())
        .collect()
}

/// `plugins:` of the project file: `{name: path}`, or Pulumi's `{providers: [{name, path}]}`.
fn project_plugins(document: &serde_json::Value) -> BTreeMap<String, PathBuf> {
    let plugins = &document["plugins"];
    if let Some(providers) = plugins["providers"].as_array() {
        return providers
            .iter()
            .filter_map(|provider| {
                Some((
                    provider["name"].as_str()?.to_owned(),
                    PathBuf::from(provider["path"].as_str()?),
                ))
            })
            .collect();
    }
    plugins
        .as_object()
        .map(|plugins| {
            plugins
                .iter()
                .filter_map(|(name, path)| Some((name.clone(), PathBuf::from(path.as_str()?))))
                .collect()
        })
        .unwrap_or_default()
}

/// Packages named by `type:` and `function:` in a program's text, YAML or JSON (`random` of
/// `random:RandomPet`, `aws` of `pulumi:providers:aws`). A cheap scan rather than a walk of
/// the parsed program: the program check that follows reports anything it missed as an
/// unknown type, where it is written.
fn referenced_packages(text: &str) -> BTreeSet<String> {
    let mut packages = BTreeSet::new();
    for key in ["type", "function"] {
        for (at, _) in text.match_indices(key) {
            let before = text[..at].chars().next_back();
            if before.is_some_and(|c| !(c.is_whitespace() || matches!(c, '"' | '{' | ',' | '-'))) {
                continue;
            }
            let rest = text[at + key.len()..].trim_start_matches('"');
            let Some(rest) = rest.trim_start().strip_prefix(':') else {
                continue;
            };
            let value = rest.trim_start().trim_start_matches(['"', '\'']);
            let token: &str = value
                .split(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | '}'))
                .next()
                .unwrap_or_default();
            // `pulumi:providers:aws` names the package itself; `aws:s3:Bucket` before its colon.
            let provider_package = token
                .strip_prefix("pulumi:providers:")
                .or_else(|| token.strip_prefix("cairn:providers:"));
            let Some(package) = provider_package.or_else(|| Some(token.split_once(':')?.0)) else {
                continue;
            };
            if !package.is_empty()
                && package != "pulumi"
                && package
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                packages.insert(package.to_owned());
            }
        }
    }
    packages
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, text).expect("write");
    }

    #[test]
    fn reads_the_name_description_config_plugins_and_packages() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            dir.path(),
            "Cairn.yaml",
            "name: p\ndescription: a test\nruntime: yaml\nplugins:\n  files: ./bin/files\nconfig:\n  count: {type: integer}\n  aws:region: {}\n  token: {secret: true}\nresources:\n  a:\n    type: files:index:File\n  b:\n    type: \"random:RandomPet\"\n  p:\n    type: pulumi:providers:aws\nvariables:\n  v:\n    fn::invoke:\n      function: std:index:abs\n",
        );
        let project = Project::load(dir.path()).expect("load");
        assert_eq!(project.name, "p");
        assert_eq!(project.description.as_deref(), Some("a test"));
        let keys: Vec<&str> = project.config.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["count", "aws:region", "token"]);
        assert!(project.declares_secret("p:token") && project.declares_secret("token"));
        assert!(!project.declares_secret("p:count") && !project.declares_secret("q:token"));
        assert_eq!(
            project.plugins,
            BTreeMap::from([("files".to_owned(), PathBuf::from("./bin/files"))])
        );
        let packages: Vec<&str> = project.packages.iter().map(String::as_str).collect();
        assert_eq!(packages, ["aws", "files", "random", "std"]);
        assert!(!project.uses_pulumi_names);
        assert_eq!(
            project.stack_config_path("dev"),
            dir.path().join("Cairn.dev.yaml")
        );
    }

    #[test]
    fn follows_main_to_a_directory_a_file_or_main_yaml_beside_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            dir.path(),
            "Pulumi.yaml",
            "name: p\nruntime: yaml\nmain: infra/\nplugins:\n  providers:\n    - name: files\n      path: ./files\n",
        );
        write(
            dir.path(),
            "infra/Main.json",
            r#"{"resources": {"a": {"type": "files:index:File"}}}"#,
        );
        let project = Project::load(dir.path()).expect("load");
        assert!(project.packages.contains("files"), "{:?}", project.packages);
        assert_eq!(project.plugins.len(), 1);
        assert!(project.uses_pulumi_names);
        assert_eq!(
            project.stack_config_path("dev"),
            dir.path().join("Pulumi.dev.yaml")
        );

        write(
            dir.path(),
            "Pulumi.yaml",
            "name: p\nruntime: yaml\nmain: prog.yaml\n",
        );
        write(
            dir.path(),
            "prog.yaml",
            "resources:\n  a:\n    type: tls:index:Key\n",
        );
        assert!(
            Project::load(dir.path())
                .expect("load")
                .packages
                .contains("tls")
        );

        write(dir.path(), "Pulumi.yaml", "name: p\nruntime: yaml\n");
        write(
            dir.path(),
            "Main.yaml",
            "resources:\n  a:\n    type: docker:Network\n",
        );
        assert!(
            Project::load(dir.path())
                .expect("load")
                .packages
                .contains("docker")
        );
    }

    #[test]
    fn skips_what_is_not_a_type_key() {
        let json = r#"{"resources": {"a": {"type": "files:index:File"}, "b": {"type":"bad:index:Thing"}},
  "variables": {"v": {"fn::invoke": {"function": "std:index:abs"}}}}"#;
        let packages: Vec<String> = referenced_packages(json).into_iter().collect();
        assert_eq!(packages, ["bad", "files", "std"]);
        let prose = "description: a subtype: of things, prototype: x:y\n";
        assert!(referenced_packages(prose).is_empty());
    }

    #[test]
    fn bad_project_files_say_what_is_wrong() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            Project::load(dir.path()),
            Err(ProjectError::NotFound(_))
        ));
        write(dir.path(), "Cairn.yaml", "runtime: yaml\n");
        let error = Project::load(dir.path()).expect_err("no name");
        assert!(error.to_string().contains("has no `name`"), "{error}");
        write(dir.path(), "Cairn.yaml", "name: [p\n");
        let error = Project::load(dir.path()).expect_err("syntax");
        assert!(error.to_string().contains("Cairn.yaml:"), "{error}");
        std::fs::write(dir.path().join("Cairn.yaml"), b"name: \xff\n").expect("write");
        assert!(matches!(
            Project::load(dir.path()),
            Err(ProjectError::NotUtf8(_))
        ));
    }
}
