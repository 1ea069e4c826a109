//! Secret environment variables of a run (`--secret-env`), as Travis's secure variables: the
//! script sees them, nothing else does.
//!
//! - **They never touch an instance's properties**, which drivers record (the `fake` and
//!   `process` drivers keep them in files; Docker shows them in `inspect`). They reach the
//!   script through the standard input of the command that starts it, which exports them and
//!   then execs the script.
//! - **Its output is masked**: every occurrence of a value is replaced with `[secret]` before
//!   the log is capped, shown or stored, also when a value arrives split across chunks.

use std::collections::BTreeMap;
use std::io::Write;

use cairn_secrets::{Crypter, PassphraseCrypter};
use cairn_state::jobs::SealedEnv;

/// What a secret's value becomes in the log.
pub const MASK: &str = "[secret]";

/// Secret variables by name. Its `Debug` shows the names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretEnv {
    values: BTreeMap<String, String>,
}

impl std::fmt::Debug for SecretEnv {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_set().entries(self.values.keys()).finish()
    }
}

impl SecretEnv {
    /// Checks every name (a shell variable name: it is exported by `sh`).
    pub fn new(values: BTreeMap<String, String>) -> Result<SecretEnv, String> {
        for name in values.keys() {
            validate_env_name(name)?;
        }
        Ok(SecretEnv { values })
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// What the log masks: each non-empty value and, of a value of several lines, each line
    /// of four characters or more (a script may print such a value a line at a time).
    fn masked_texts(&self) -> Vec<Vec<u8>> {
        let mut texts: Vec<Vec<u8>> = Vec::new();
        for value in self.values.values().filter(|value| !value.is_empty()) {
            texts.push(value.as_bytes().to_vec());
            if value.contains('\n') {
                let lines = value.lines().map(str::trim).filter(|line| line.len() >= 4);
                texts.extend(lines.map(|line| line.as_bytes().to_vec()));
            }
        }
        // Longest first, so a value that contains another is masked whole.
        texts.sort_by_key(|text| std::cmp::Reverse(text.len()));
        texts.dedup();
        texts
    }

    /// The shell text the script's starter reads from its standard input: one `export` per
    /// variable, values single-quoted (a `'` inside becomes `'\''`), so any byte survives.
    pub fn shell_exports(&self) -> Vec<u8> {
        let mut text = String::new();
        for (name, value) in &self.values {
            text.push_str("export ");
            text.push_str(name);
            text.push_str("='");
            text.push_str(&value.replace('\'', r"'\''"));
            text.push_str("'\n");
        }
        text.into_bytes()
    }
}

/// The passphrase that opens jobs' sealed variables. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Passphrase(pub String);

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Passphrase(..)")
    }
}

/// Seals `values` with `passphrase` under a fresh salt (`cairn job submit --secret-env`).
pub fn seal(passphrase: &str, values: &SecretEnv) -> Result<SealedEnv, String> {
    let crypter = PassphraseCrypter::new(passphrase, &cairn_secrets::new_salt())
        .map_err(|error| error.to_string())?;
    let values = values
        .values
        .iter()
        .map(|(name, value)| {
            let sealed = crypter
                .encrypt(value)
                .map_err(|error| format!("sealing `{name}`: {error}"))?;
            Ok((name.clone(), sealed))
        })
        .collect::<Result<_, String>>()?;
    Ok(SealedEnv {
        salt: crypter.encryption_salt(),
        values,
    })
}

/// Opens sealed variables; a wrong passphrase is an error that says so.
pub fn open(passphrase: Option<&Passphrase>, sealed: &SealedEnv) -> Result<SecretEnv, String> {
    let passphrase = passphrase.ok_or(
        "the job has secret variables and this worker has no passphrase to open them \
         (start it with CAIRN_CONFIG_PASSPHRASE or CAIRN_CONFIG_PASSPHRASE_FILE)",
    )?;
    let crypter = PassphraseCrypter::from_encryption_salt(&passphrase.0, &sealed.salt)
        .map_err(|error| format!("opening the job's secret variables: {error}"))?;
    let values = sealed
        .values
        .iter()
        .map(|(name, ciphertext)| {
            let value = crypter
                .decrypt(ciphertext)
                .map_err(|error| format!("opening the secret variable `{name}`: {error}"))?;
            Ok((name.clone(), value))
        })
        .collect::<Result<_, String>>()?;
    SecretEnv::new(values)
}

/// An environment variable's name as `sh` takes it: a letter or `_`, then letters, digits, `_`.
pub fn validate_env_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid && !name.starts_with("__cairn_") {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not an environment variable name: use letters, digits and `_`, not starting with a digit (nor with `__cairn_`, which Cairn's starter uses)"
        ))
    }
}

/// A writer that masks secrets on their way to `inner`. What could be the start of a secret
/// is held back until the next bytes tell; `finish` writes what is still held.
pub struct Masker<'a> {
    inner: &'a mut (dyn Write + Send),
    secrets: Vec<Vec<u8>>,
    held: Vec<u8>,
}

impl<'a> Masker<'a> {
    pub fn new(inner: &'a mut (dyn Write + Send), secrets: &SecretEnv) -> Masker<'a> {
        Masker {
            inner,
            secrets: secrets.masked_texts(),
            held: Vec::new(),
        }
    }

    /// Writes what is held back: the run is over, no secret can complete it now.
    pub fn finish(mut self) -> std::io::Result<()> {
        let out = self.mask_held(true);
        self.inner.write_all(&out)?;
        self.inner.flush()
    }

    /// Masks `self.held`; returns how much of it is safe to pass on. Unless `at_end`, what
    /// may be the start of a secret stays held.
    fn mask_held(&mut self, at_end: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.held.len());
        let mut at = 0;
        'scan: while at < self.held.len() {
            let rest = &self.held[at..];
            for secret in &self.secrets {
                if rest.starts_with(secret) {
                    out.extend_from_slice(MASK.as_bytes());
                    at += secret.len();
                    continue 'scan;
                }
                // A secret that may go on in the next bytes: hold from here.
                if !at_end && secret.len() > rest.len() && secret.starts_with(rest) {
                    self.held.drain(..at);
                    return out;
                }
            }
            out.push(rest[0]);
            at += 1;
        }
        self.held.clear();
        out
    }
}

impl Write for Masker<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.secrets.is_empty() {
            return self.inner.write(bytes);
        }
        self.held.extend_from_slice(bytes);
        let out = self.mask_held(false);
        self.inner.write_all(&out)?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(pairs: &[(&str, &str)]) -> SecretEnv {
        let values = pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        SecretEnv::new(values).unwrap_or_default()
    }

    fn masked(env: &SecretEnv, chunks: &[&[u8]]) -> String {
        let mut sink = Vec::new();
        let mut masker = Masker::new(&mut sink, env);
        for chunk in chunks {
            masker.write_all(chunk).unwrap_or_default();
        }
        masker.finish().unwrap_or_default();
        String::from_utf8(sink).unwrap_or_default()
    }

    #[test]
    fn every_occurrence_is_masked_even_across_chunks() {
        let env = secrets(&[("TOKEN", "hunter2"), ("OTHER", "s3cr3t-value")]);
        assert_eq!(
            masked(&env, &[b"a hunter2 b hunter2\n"]),
            "a [secret] b [secret]\n"
        );
        assert_eq!(
            masked(&env, &[b"x hun", b"te", b"r2 y s3cr3t", b"-value"]),
            "x [secret] y [secret]"
        );
        // A start that turns out not to be a secret is passed on whole.
        assert_eq!(
            masked(&env, &[b"hunt", b"ing\n", b"hunte"]),
            "hunting\nhunte"
        );
    }

    #[test]
    fn text_that_cannot_start_a_secret_is_not_held_back() {
        let env = secrets(&[("TOKEN", "hunter2")]);
        let mut sink = Vec::new();
        let mut masker = Masker::new(&mut sink, &env);
        masker.write_all(b"progress 50%").unwrap_or_default();
        drop(masker);
        assert_eq!(sink, b"progress 50%");
    }

    #[test]
    fn the_lines_of_a_multi_line_secret_are_masked_one_by_one() {
        let env = secrets(&[("KEY", "-----BEGIN KEY-----\nabcdefgh\n-----END KEY-----")]);
        assert_eq!(masked(&env, &[b"got abcdefgh here"]), "got [secret] here");
    }

    #[test]
    fn a_value_holding_another_is_masked_whole() {
        let env = secrets(&[("SHORT", "pass"), ("LONG", "password123")]);
        assert_eq!(masked(&env, &[b"password123 pass"]), "[secret] [secret]");
        // Held back as the start of the longer one, the shorter is still masked at the end.
        assert_eq!(masked(&env, &[b"a pass"]), "a [secret]");
    }

    #[test]
    fn exports_quote_any_value_and_names_are_checked() {
        let env = secrets(&[("A", "it's $HOME `x`\nline")]);
        assert_eq!(
            String::from_utf8(env.shell_exports()).unwrap_or_default(),
            "export A='it'\\''s $HOME `x`\nline'\n"
        );
        assert!(SecretEnv::new(BTreeMap::from([("1A".to_owned(), String::new())])).is_err());
        assert!(SecretEnv::new(BTreeMap::from([("A;rm".to_owned(), String::new())])).is_err());
        assert_eq!(format!("{:?}", secrets(&[("T", "hunter2")])), "{\"T\"}");
    }

    #[test]
    fn sealed_values_open_with_the_passphrase_only() {
        let env = secrets(&[("TOKEN", "hunter2")]);
        let sealed = seal("right", &env).unwrap();
        assert!(!serde_json::to_string(&sealed).unwrap().contains("hunter2"));
        let right = Passphrase("right".to_owned());
        assert_eq!(open(Some(&right), &sealed).unwrap(), env);
        let wrong = Passphrase("wrong".to_owned());
        let error = open(Some(&wrong), &sealed).unwrap_err();
        assert!(error.contains("incorrect passphrase"), "{error}");
        let error = open(None, &sealed).unwrap_err();
        assert!(error.contains("CAIRN_CONFIG_PASSPHRASE"), "{error}");
    }
}
