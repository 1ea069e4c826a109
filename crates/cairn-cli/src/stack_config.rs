//! The stack configuration file, `Cairn.<stack>.yaml` (or `Pulumi.<stack>.yaml`), shaped as
//! Pulumi's: `encryptionsalt: ...` and `config: {"<project>:<key>": value, "<key>": {secure: ...}}`.
//! Secret values are stored only as ciphertext.

use std::path::{Path, PathBuf};

use anyhow::Context;
use cairn_ops::yaml_to_json;
use serde_json::Value as Json;

/// One configuration value as stored.
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigEntry {
    Plain(Json),
    /// Ciphertext from the stack's `Crypter`.
    Secure(String),
}

/// The parsed file, keys in file order.
#[derive(Clone, Debug, Default)]
pub struct StackConfigFile {
    pub path: PathBuf,
    pub encryption_salt: Option<String>,
    pub entries: Vec<(String, ConfigEntry)>,
}

impl StackConfigFile {
    /// Reads the file; a missing file is an empty configuration.
    pub fn load(path: &Path) -> anyhow::Result<StackConfigFile> {
        let mut file = StackConfigFile {
            path: path.to_owned(),
            ..StackConfigFile::default()
        };
        if !path.exists() {
            return Ok(file);
        }
        let text =
            cairn_provider::files::read_regular_file(path, cairn_provider::files::MAX_READ_BYTES)
                .map_err(|error| match error.kind() {
                // Not text, or not a file: the user's to fix, named.
                std::io::ErrorKind::InvalidData => crate::bad_input(format!(
                    "{}: the stack file is not UTF-8 text",
                    path.display()
                )),
                std::io::ErrorKind::InvalidInput => crate::bad_input(error.to_string()),
                _ => error.into(),
            })?;
        let document = yaml_to_json(&text)
            .map_err(|error| crate::bad_input(format!("{}:{error}", path.display())))?;
        let Json::Object(top) = document else {
            if document.is_null() {
                return Ok(file);
            }
            return Err(crate::bad_input(format!(
                "{}: expected a mapping with `config:`",
                path.display()
            )));
        };
        file.encryption_salt = top
            .get("encryptionsalt")
            .and_then(Json::as_str)
            .map(str::to_owned);
        if let Some(Json::Object(config)) = top.get("config") {
            for (key, value) in config {
                let entry = match value {
                    Json::Object(fields) if fields.len() == 1 && fields.contains_key("secure") => {
                        ConfigEntry::Secure(
                            fields["secure"].as_str().unwrap_or_default().to_owned(),
                        )
                    }
                    other => ConfigEntry::Plain(other.clone()),
                };
                file.entries.push((key.clone(), entry));
            }
        }
        Ok(file)
    }

    pub fn get(&self, key: &str) -> Option<&ConfigEntry> {
        self.entries
            .iter()
            .find(|(entry_key, _)| entry_key == key)
            .map(|(_, entry)| entry)
    }

    pub fn set(&mut self, key: &str, entry: ConfigEntry) {
        match self
            .entries
            .iter_mut()
            .find(|(entry_key, _)| entry_key == key)
        {
            Some((_, existing)) => *existing = entry,
            None => self.entries.push((key.to_owned(), entry)),
        }
    }

    pub fn remove(&mut self, key: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|(entry_key, _)| entry_key != key);
        self.entries.len() != before
    }

    /// Reads the file, lets `change` edit it, and writes it back if it changed, holding the
    /// file's lock throughout: parallel edits (`cairn config set` in a loop with `&`) all land,
    /// one after another, and none is lost. An unchanged file is not rewritten (a stack file
    /// written by `pulumi` keeps its own formatting). `change` must not edit this file itself
    /// (the lock is not re-entrant).
    pub fn edit<T>(
        path: &Path,
        change: impl FnOnce(&mut StackConfigFile) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let _lock = lock(path)?;
        let mut file = StackConfigFile::load(path)?;
        let before = (file.encryption_salt.clone(), file.entries.clone());
        let result = change(&mut file)?;
        if (&file.encryption_salt, &file.entries) != (&before.0, &before.1) {
            file.save()?;
        }
        Ok(result)
    }

    /// Writes the file atomically (`atomic_file`). Strings are written as JSON strings, which
    /// YAML reads back verbatim, so no value can change meaning on the way. Callers that read
    /// the file first go through `edit`, which holds the lock.
    fn save(&self) -> anyhow::Result<()> {
        let mut text = String::new();
        if let Some(salt) = &self.encryption_salt {
            text.push_str(&format!("encryptionsalt: {}\n", Json::String(salt.clone())));
        }
        if !self.entries.is_empty() {
            text.push_str("config:\n");
            for (key, entry) in &self.entries {
                let key = Json::String(key.clone());
                match entry {
                    ConfigEntry::Plain(value) => text.push_str(&format!("  {key}: {value}\n")),
                    ConfigEntry::Secure(ciphertext) => text.push_str(&format!(
                        "  {key}:\n    secure: {}\n",
                        Json::String(ciphertext.clone())
                    )),
                }
            }
        }
        crate::atomic_file::write(
            &self.path,
            text.as_bytes(),
            crate::atomic_file::Access::Shared,
        )
        .with_context(|| format!("saving {}", self.path.display()))
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Takes the exclusive lock of the config file at `path`: a kernel advisory lock (`flock`) on
/// `.<file>.lock` beside it, released when the returned file is closed, so a process that is
/// killed never leaves a stale lock behind. The lock file itself is left in place: removing it
/// would let a waiter lock a file that a newcomer no longer sees.
fn lock(path: &Path) -> anyhow::Result<fs_err::File> {
    let lock_path = path.with_file_name(format!(".{}.lock", file_name(path)));
    let file = fs_err::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .with_context(|| format!("locking {}", lock_path.display()))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_plain_and_secure_values() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("Cairn.dev.yaml");
        let mut file = StackConfigFile::load(&path).unwrap();
        file.encryption_salt = Some("v1:salt".to_owned());
        file.set(
            "proj:name",
            ConfigEntry::Plain(Json::String("a: b # c".to_owned())),
        );
        file.set("proj:token", ConfigEntry::Secure("v1:abc".to_owned()));
        file.save().unwrap();
        let loaded = StackConfigFile::load(&path).unwrap();
        assert_eq!(loaded.encryption_salt.as_deref(), Some("v1:salt"));
        assert_eq!(loaded.entries, file.entries);
    }

    #[test]
    fn an_edit_that_changes_nothing_leaves_the_file_as_written() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("Pulumi.dev.yaml");
        let pulumi_written = "encryptionsalt: v1:x\nconfig:\n  proj:a: '1' # kept\n";
        std::fs::write(&path, pulumi_written).unwrap();
        let salt = StackConfigFile::edit(&path, |file| Ok(file.encryption_salt.clone())).unwrap();
        assert_eq!(salt.as_deref(), Some("v1:x"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), pulumi_written);
        StackConfigFile::edit(&path, |file| {
            file.set("proj:b", ConfigEntry::Plain(Json::from(2)));
            Ok(())
        })
        .unwrap();
        let loaded = StackConfigFile::load(&path).unwrap();
        assert_eq!(loaded.encryption_salt.as_deref(), Some("v1:x"));
        assert_eq!(loaded.entries.len(), 2);
    }
}
