//! Pulumi YAML programs: `Cairn.yaml` (or `Pulumi.yaml`) → spanned YAML → checked `Program`,
//! and the evaluation of its `${...}` expressions and `fn::` builtins.
//!
//! Architecture invariant: this crate does no I/O. Project files are read through `FileSource`,
//! resource schemas come through `SchemaSource`, and evaluation reaches resources, files and
//! other stacks through `EvalContext`. Loading never stops at the first problem: it returns every
//! diagnostic it found.

mod ast;
mod check;
mod config;
mod diagnostic;
mod eval;
mod expr;
mod yaml;

use std::path::{Path, PathBuf};

pub use ast::{
    Accessor, BUILTIN_NAMES, Builtin, ConfigDecl, ConfigType, CustomTimeoutsDecl, Deps, Expr,
    GetDecl, Invoke, Part, Program, Reference, ResourceDecl, ResourceOptions, Root,
    STACK_REFERENCE_TOKEN, Span, Variable, is_provider_token,
};
pub use config::{normalize_config_key, resolve_config};
pub use diagnostic::Diagnostic;
pub use eval::{
    ARCHIVE_SIGNATURE, ASSET_SIGNATURE, EvalContext, EvalError, ResourceValue, SIGNATURE_KEY,
    evaluate, value_from_json, value_to_json,
};

use crate::check::{ParsedFile, check_program};
use crate::diagnostic::{Diagnostics, SourceFile};
pub use crate::yaml::{MAX_DOCUMENT_DEPTH, find_too_deep};
use crate::yaml::{Node, parse_document};

/// Reads project files; the CLI implements it over the real file system.
pub trait FileSource {
    fn read_to_string(&self, path: &Path) -> std::io::Result<String>;

    /// Whether `path` could be read, without reading it (the CLI: a regular file within the
    /// size limit). Loading asks it about literal `fn::readFile` paths.
    fn check_readable(&self, _path: &Path) -> std::io::Result<()> {
        Ok(())
    }
}

/// Resource and function schemas, looked up by any accepted spelling of a token.
pub trait SchemaSource {
    /// Canonical token and schema for any accepted spelling of a resource type.
    fn resolve_resource(&self, spelling: &str) -> Option<(String, cairn_core::ResourceSchema)>;
    fn resolve_function(
        &self,
        spelling: &str,
    ) -> Option<(String, cairn_core::schema::FunctionSchema)>;
    /// Every resource token in canonical form, for "did you mean" hints.
    fn resource_tokens(&self) -> Vec<String>;
}

impl SchemaSource for cairn_provider::ProviderRegistry {
    fn resolve_resource(&self, spelling: &str) -> Option<(String, cairn_core::ResourceSchema)> {
        cairn_provider::ProviderRegistry::resolve_resource(self, spelling)
            .map(|resolved| (resolved.canonical.to_owned(), resolved.schema.clone()))
    }

    fn resolve_function(
        &self,
        spelling: &str,
    ) -> Option<(String, cairn_core::schema::FunctionSchema)> {
        cairn_provider::ProviderRegistry::resolve_function(self, spelling)
            .map(|(canonical, schema, _)| (canonical.to_owned(), schema.clone()))
    }

    fn resource_tokens(&self) -> Vec<String> {
        cairn_provider::ProviderRegistry::resource_tokens(self)
            .into_iter()
            .map(str::to_owned)
            .collect()
    }
}

/// The result of loading: the program when there were no errors, and every diagnostic.
#[derive(Debug)]
pub struct Loaded {
    pub program: Option<Program>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Project file names, in the order they are looked for.
pub const PROJECT_FILE_NAMES: &[&str] = &["Cairn.yaml", "Cairn.yml", "Pulumi.yaml", "Pulumi.yml"];

/// Program file names inside the directory `main:` points at.
pub const MAIN_FILE_NAMES: &[&str] = &["Main.yaml", "Main.yml", "Main.json"];

/// Loads `Cairn.yaml` (else `Pulumi.yaml`; also `.yml`) from `project_dir`, following `main:`
/// to a directory holding `Main.yaml` (or `Main.json`).
///
/// `stack_config_keys` are the keys of the stack's config file (`proj:key`, `key`): as in Pulumi
/// YAML, `${key}` may name one the program does not declare.
pub fn load_project(
    project_dir: &Path,
    files: &dyn FileSource,
    schemas: &dyn SchemaSource,
    stack_config_keys: &[String],
) -> Loaded {
    let mut diagnostics = Diagnostics::default();
    let mut project = None;
    for file_name in PROJECT_FILE_NAMES {
        match files.read_to_string(&project_dir.join(file_name)) {
            Ok(text) => {
                project = Some(SourceFile::new(file_name, &text));
                break;
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return failed(Diagnostic::for_file(
                    file_name,
                    format!("cannot read `{file_name}`: {error}"),
                ));
            }
        }
    }
    let Some(project) = project else {
        return failed(
            Diagnostic::for_file(
                "Cairn.yaml",
                format!(
                    "no `Cairn.yaml` or `Pulumi.yaml` in `{}`",
                    project_dir.display()
                ),
            )
            .with_help("run `cairn new` to create a project, or pass `--cwd <dir>`"),
        );
    };
    diagnostics.add_source(&project);
    let Some(project_root) = parse_document(&project, &mut diagnostics) else {
        return finish(None, diagnostics);
    };

    let main_node = project_root.as_mapping().and_then(|entries| {
        entries
            .iter()
            .find(|(key, _)| key.name == "main")
            .map(|(_, value)| value)
    });
    let main_file = match main_node {
        Some(main_node) => match read_main_file(project_dir, main_node, files, &mut diagnostics) {
            Some(found) => Some(found),
            None => return finish(None, diagnostics),
        },
        // Without `main:`, a `Main.yaml` (or `Main.json`) beside the project file is the
        // program, as in Pulumi YAML.
        None => match read_first_of(project_dir, MAIN_FILE_NAMES.iter().copied(), files) {
            Ok(Some(found)) => {
                if !reject_second_program(&project, &project_root, &found.0, &mut diagnostics) {
                    return finish(None, diagnostics);
                }
                Some(found)
            }
            Ok(None) => None,
            Err((file_name, error)) => {
                return failed(Diagnostic::for_file(
                    &file_name,
                    format!("cannot read `{file_name}`: {error}"),
                ));
            }
        },
    };
    let main_root = match &main_file {
        Some((main_source, _)) => {
            diagnostics.add_source(main_source);
            match parse_document(main_source, &mut diagnostics) {
                Some(root) => Some(root),
                None => return finish(None, diagnostics),
            }
        }
        None => None,
    };
    let mut parsed = vec![ParsedFile {
        source: &project,
        root: &project_root,
    }];
    if let (Some((source, _)), Some(root)) = (&main_file, &main_root) {
        parsed.push(ParsedFile { source, root });
    }
    let source_dir = main_file.as_ref().map_or_else(
        || project_dir.to_path_buf(),
        |(_, main_dir)| main_dir.clone(),
    );
    let program = check_program(
        &parsed,
        schemas,
        stack_config_keys,
        source_dir,
        &mut diagnostics,
    );
    check_read_files(&program, files, &mut diagnostics);
    finish(Some(program), diagnostics)
}

/// Refuses a literal `fn::readFile` path that names something unreadable (a FIFO, a device, a
/// directory, a file over the size limit) now, at its file:line:col, rather than when the
/// update reaches it. A missing file is left for then: an earlier resource may create it.
fn check_read_files(program: &Program, files: &dyn FileSource, diagnostics: &mut Diagnostics) {
    let mut check = |expr: &Expr| {
        expr.for_each_builtin(&mut |builtin| {
            let Builtin::ReadFile(argument) = builtin else {
                return;
            };
            let Expr::String(path, span) = argument.as_ref() else {
                return;
            };
            match files.check_readable(&program.source_dir.join(path)) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => diagnostics.error(
                    span,
                    format!("`fn::readFile`: cannot read `{path}`: {error}"),
                    Some("`fn::readFile` reads a regular file of at most 64 MiB".to_owned()),
                ),
                _ => {}
            }
        });
    };
    program
        .variables
        .iter()
        .for_each(|variable| check(&variable.value));
    program
        .resources
        .iter()
        .filter_map(|resource| resource.properties.as_ref())
        .for_each(&mut check);
    program.outputs.iter().for_each(|(_, value)| check(value));
}

/// Reads the program file `main:` points at: a directory holding `Main.yaml`/`Main.json`, or
/// the file itself.
fn read_main_file(
    project_dir: &Path,
    main_node: &Node,
    files: &dyn FileSource,
    diagnostics: &mut Diagnostics,
) -> Option<(SourceFile, PathBuf)> {
    let Some(main) = main_node.as_str() else {
        diagnostics.error(
            &main_node.span,
            "`main` must be a path",
            Some("write `main: <directory holding Main.yaml>`".to_owned()),
        );
        return None;
    };
    let relative = main.trim_start_matches("./").trim_end_matches('/');
    let relative = if relative == "." { "" } else { relative };
    let is_file = [".yaml", ".yml", ".json"]
        .iter()
        .any(|extension| relative.ends_with(extension));
    let candidates: Vec<String> = if is_file {
        vec![relative.to_owned()]
    } else {
        MAIN_FILE_NAMES
            .iter()
            .map(|file_name| {
                if relative.is_empty() {
                    (*file_name).to_owned()
                } else {
                    format!("{relative}/{file_name}")
                }
            })
            .collect()
    };
    match read_first_of(project_dir, candidates.iter().map(String::as_str), files) {
        Ok(Some(found)) => return Some(found),
        Ok(None) => {}
        Err((candidate, error)) => {
            diagnostics.error(
                &main_node.span,
                format!("cannot read `{candidate}`: {error}"),
                None,
            );
            return None;
        }
    }
    diagnostics.error(
        &main_node.span,
        format!("`main` points at `{main}`, which holds no `Main.yaml` or `Main.json`"),
        Some("put the program in `Main.yaml` inside that directory, or fix `main:`".to_owned()),
    );
    None
}

/// Reads the first of `candidates` (paths relative to `project_dir`) that exists, with the
/// directory it is in; a read error other than "not found" names the candidate.
fn read_first_of<'a>(
    project_dir: &Path,
    candidates: impl IntoIterator<Item = &'a str>,
    files: &dyn FileSource,
) -> Result<Option<(SourceFile, PathBuf)>, (String, std::io::Error)> {
    for candidate in candidates {
        let path = project_dir.join(candidate);
        match files.read_to_string(&path) {
            Ok(text) => {
                let main_dir = path
                    .parent()
                    .map_or_else(|| project_dir.to_path_buf(), Path::to_path_buf);
                return Ok(Some((SourceFile::new(candidate, &text), main_dir)));
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err((candidate.to_owned(), error)),
        }
    }
    Ok(None)
}

/// A project file that declares a program (`resources`, `variables` or `outputs`) while a
/// `Main.yaml` sits beside it has two programs: reports it at each program section and returns
/// false.
fn reject_second_program(
    project: &SourceFile,
    project_root: &Node,
    main: &SourceFile,
    diagnostics: &mut Diagnostics,
) -> bool {
    let program_keys: Vec<_> = project_root
        .as_mapping()
        .into_iter()
        .flatten()
        .filter(|(key, _)| PROGRAM_SECTIONS.contains(&key.name.as_str()))
        .collect();
    for (key, _) in &program_keys {
        diagnostics.error(
            &key.span,
            format!(
                "`{}` declares `{}`, but `{}` beside it is the program: a project has one program",
                project.name, key.name, main.name
            ),
            Some(format!(
                "move `{}` into `{}`, or remove `{}`",
                key.name, main.name, main.name
            )),
        );
    }
    program_keys.is_empty()
}

/// The sections of a project file that make it a program of its own.
const PROGRAM_SECTIONS: &[&str] = &["resources", "variables", "outputs"];

/// Same as `load_project`, from text (for tests and tools): `file_name` is used in diagnostics.
pub fn load_str(file_name: &str, text: &str, schemas: &dyn SchemaSource) -> Loaded {
    let mut diagnostics = Diagnostics::default();
    let source = SourceFile::new(file_name, text);
    diagnostics.add_source(&source);
    let Some(root) = parse_document(&source, &mut diagnostics) else {
        return finish(None, diagnostics);
    };
    let source_dir = Path::new(file_name)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let files = [ParsedFile {
        source: &source,
        root: &root,
    }];
    let program = check_program(&files, schemas, &[], source_dir, &mut diagnostics);
    finish(Some(program), diagnostics)
}

fn failed(diagnostic: Diagnostic) -> Loaded {
    Loaded {
        program: None,
        diagnostics: vec![diagnostic],
    }
}

fn finish(program: Option<Program>, diagnostics: Diagnostics) -> Loaded {
    Loaded {
        program: program.filter(|_| !diagnostics.has_errors()),
        diagnostics: diagnostics.items,
    }
}

#[cfg(test)]
mod tests;
