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

/// The sealed-value format both passphrase schemes share: `v1:<nonce>:<ciphertext>`, base64.
mod sealed {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    use crate::SecretsError;

    pub fn format(nonce: &[u8], ciphertext: &[u8]) -> String {
        format!(
            "v1:{}:{}",
            STANDARD.encode(nonce),
            STANDARD.encode(ciphertext)
        )
    }

    /// The nonce (which must be `nonce_len` bytes) and the ciphertext.
    pub fn parse(text: &str, nonce_len: usize) -> Result<(Vec<u8>, Vec<u8>), SecretsError> {
        let malformed = || SecretsError::Malformed("expected `v1:<nonce>:<ciphertext>`".to_owned());
        let rest = text.strip_prefix("v1:").ok_or_else(malformed)?;
        let (nonce, ciphertext) = rest.split_once(':').ok_or_else(malformed)?;
        let nonce = STANDARD.decode(nonce).map_err(|_| malformed())?;
        let ciphertext = STANDARD.decode(ciphertext).map_err(|_| malformed())?;
        if nonce.len() != nonce_len {
            return Err(malformed());
        }
        Ok((nonce, ciphertext))
    }

    /// Plaintext bytes as a string.
    pub fn utf8(plaintext: Vec<u8>) -> Result<String, SecretsError> {
        String::from_utf8(plaintext)
            .map_err(|_| SecretsError::Malformed("the plaintext is not UTF-8".to_owned()))
    }
}
