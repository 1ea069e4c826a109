//! Where plugins are found, in order: the project's `plugins:` (name → path, relative to the
//! project), then `$CAIRN_HOME/plugins/` (`cairn-provider-<name>`, or
//! `<name>/cairn-provider-<name>`), then `cairn-provider-<name>` on `PATH`.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// Where a plugin was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PluginSource {
    Project,
    Home,
    Path,
}

impl PluginSource {
    pub fn as_str(self) -> &'static str {
        match self {
            PluginSource::Project => "project",
            PluginSource::Home => "CAIRN_HOME",
            PluginSource::Path => "PATH",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginCandidate {
    /// The package it provides.
    pub name: String,
    pub path: PathBuf,
    pub source: PluginSource,
}

const PREFIX: &str = "cairn-provider-";

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The plugin for package `name`, if there is one.
pub fn find_plugin(
    name: &str,
    project_plugins: &BTreeMap<String, PathBuf>,
    project_dir: &Path,
    cairn_home: &Path,
    path_env: Option<&OsStr>,
) -> Option<PluginCandidate> {
    if let Some(path) = project_plugins.get(name) {
        return Some(PluginCandidate {
            name: name.to_owned(),
            path: project_dir.join(path),
            source: PluginSource::Project,
        });
    }
    let file = format!("{PREFIX}{name}");
    let plugins = cairn_home.join("plugins");
    for path in [plugins.join(&file), plugins.join(name).join(&file)] {
        if is_executable(&path) {
            return Some(PluginCandidate {
                name: name.to_owned(),
                path,
                source: PluginSource::Home,
            });
        }
    }
    let dirs = path_env.map(|paths| std::env::split_paths(paths).collect::<Vec<_>>())?;
    dirs.into_iter()
        .map(|dir| dir.join(&file))
        .find(|path| is_executable(path))
        .map(|path| PluginCandidate {
            name: name.to_owned(),
            path,
            source: PluginSource::Path,
        })
}

/// Every plugin that can be found, the first of each name winning (`cairn plugin ls`).
pub fn discover_all(
    project_plugins: &BTreeMap<String, PathBuf>,
    project_dir: &Path,
    cairn_home: &Path,
    path_env: Option<&OsStr>,
) -> Vec<PluginCandidate> {
    let mut names: Vec<String> = project_plugins.keys().cloned().collect();
    let plugins = cairn_home.join("plugins");
    let mut dirs = vec![plugins.clone()];
    if let Ok(entries) = std::fs::read_dir(&plugins) {
        dirs.extend(
            entries
                .flatten()
                .map(|entry| entry.path())
                .filter(|path| path.is_dir()),
        );
    }
    if let Some(paths) = path_env {
        dirs.extend(std::env::split_paths(paths));
    }
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            if let Some(name) = file.strip_prefix(PREFIX)
                && is_executable(&entry.path())
                && !names.iter().any(|known| known == name)
            {
                names.push(name.to_owned());
            }
        }
    }
    names
        .iter()
        .filter_map(|name| find_plugin(name, project_plugins, project_dir, cairn_home, path_env))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn executable(path: &Path) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(path.parent().unwrap_or(Path::new("."))).ok();
        std::fs::write(path, "#!/bin/sh\n").ok();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).ok();
    }

    #[test]
    fn project_then_home_then_path() {
        let Ok(root) = tempfile::tempdir() else {
            return;
        };
        let home = root.path().join("home");
        let bin = root.path().join("bin");
        executable(&home.join("plugins/cairn-provider-files"));
        executable(&bin.join("cairn-provider-files"));
        executable(&bin.join("cairn-provider-other"));
        let path_env = std::ffi::OsString::from(bin.as_os_str());
        let none = BTreeMap::new();
        let found = find_plugin("files", &none, root.path(), &home, Some(&path_env));
        assert_eq!(found.map(|found| found.source), Some(PluginSource::Home));
        let found = find_plugin("other", &none, root.path(), &home, Some(&path_env));
        assert_eq!(found.map(|found| found.source), Some(PluginSource::Path));
        let project = BTreeMap::from([("files".to_owned(), PathBuf::from("plugins/mine"))]);
        let found = find_plugin("files", &project, root.path(), &home, Some(&path_env));
        assert_eq!(
            found.map(|found| (found.source, found.path)),
            Some((PluginSource::Project, root.path().join("plugins/mine")))
        );
        assert_eq!(
            find_plugin("absent", &none, root.path(), &home, Some(&path_env)),
            None
        );
        let all = discover_all(&none, root.path(), &home, Some(&path_env));
        let names: Vec<&str> = all
            .iter()
            .map(|candidate| candidate.name.as_str())
            .collect();
        assert_eq!(names, ["files", "other"]);
    }
}
