//! Secrets: the `Crypter` trait that seals and unseals secret values, and the passphrase
//! secrets manager (Argon2id key derivation, XChaCha20-Poly1305 sealing).
//!
//! Architecture invariant: this is the only crate that turns a secret into ciphertext or back.

mod passphrase;
mod pulumi;

pub use passphrase::{PassphraseCrypter, new_salt};
pub use pulumi::PulumiPassphraseCrypter;

/// Opens the crypter a stack file's `encryptionsalt` calls for, checking the passphrase:
/// Cairn's own (`cairn-v1:...`) or Pulumi's (`v1:...`, so stacks made by `pulumi` keep working).
pub fn crypter_for_salt(
    passphrase: &str,
    encryption_salt: &str,
) -> Result<Box<dyn Crypter>, SecretsError> {
    if encryption_salt.starts_with(passphrase::SALT_PREFIX) {
        Ok(Box::new(PassphraseCrypter::from_encryption_salt(
            passphrase,
            encryption_salt,
        )?))
    } else {
        Ok(Box::new(PulumiPassphraseCrypter::from_encryption_salt(
            passphrase,
            encryption_salt,
        )?))
    }
}

/// Errors from sealing or unsealing.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("incorrect passphrase: the stack's secrets cannot be decrypted with it")]
    WrongPassphrase,
    #[error("malformed ciphertext: {0}")]
    Malformed(String),
    #[error("malformed encryption salt `{0}`")]
    MalformedSalt(String),
    /// No crypter could be made (no passphrase given, the stack file unreadable, ...).
    #[error("{0}")]
    Unavailable(String),
}

/// Seals plaintext into an opaque ASCII ciphertext and back.
pub trait Crypter: Send + Sync {
    fn encrypt(&self, plaintext: &str) -> Result<String, SecretsError>;
    fn decrypt(&self, ciphertext: &str) -> Result<String, SecretsError>;

    /// The salt line a passphrase crypter stores in a deployment's `secrets_providers.state.salt`
    /// (Pulumi keeps it there too, so an exported stack can be imported elsewhere). `None` for
    /// crypters that are not passphrase based.
    fn passphrase_salt_state(&self) -> Option<String> {
        None
    }
}
