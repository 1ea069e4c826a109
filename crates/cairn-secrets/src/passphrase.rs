//! The passphrase secrets manager: a 256-bit key derived from the passphrase and a per-stack
//! salt with Argon2id, and values sealed with XChaCha20-Poly1305 under a random nonce.
//!
//! The stack file stores `encryptionsalt: cairn-v1:<salt>:<sealed check value>`; unsealing the check
//! value tells a wrong passphrase apart from corrupt ciphertext.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use zeroize::Zeroizing;

use crate::{Crypter, SecretsError};

/// The plaintext sealed into the salt line, to verify the passphrase.
const CHECK_PLAINTEXT: &str = "cairn";
/// How Cairn's own `encryptionsalt` lines start; Pulumi's start with `v1:`.
pub(crate) const SALT_PREFIX: &str = "cairn-v1:";

/// A random 16-byte salt, base64.
pub fn new_salt() -> String {
    let mut salt = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut salt);
    STANDARD.encode(salt)
}

/// Seals and unseals with a key derived from a passphrase.
pub struct PassphraseCrypter {
    /// Holds the derived key; `chacha20poly1305` zeroizes it when the cipher is dropped.
    cipher: XChaCha20Poly1305,
    salt_b64: String,
    /// `cairn-v1:<salt>:<sealed check value>`, computed once so every caller stores the same line.
    encryption_salt: String,
}

impl std::fmt::Debug for PassphraseCrypter {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PassphraseCrypter")
            .field("salt", &self.salt_b64)
            .finish_non_exhaustive()
    }
}

impl PassphraseCrypter {
    /// Derives the key from `passphrase` and `salt_b64` (Argon2id, 19 MiB, 2 passes).
    pub fn new(passphrase: &str, salt_b64: &str) -> Result<PassphraseCrypter, SecretsError> {
        let salt = STANDARD
            .decode(salt_b64)
            .map_err(|_| SecretsError::MalformedSalt(salt_b64.to_owned()))?;
        let params = argon2::Params::new(19_456, 2, 1, Some(32))
            .map_err(|error| SecretsError::Malformed(error.to_string()))?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut key = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(passphrase.as_bytes(), &salt, key.as_mut())
            .map_err(|error| SecretsError::MalformedSalt(format!("{salt_b64}: {error}")))?;
        let cipher = XChaCha20Poly1305::new_from_slice(key.as_ref())
            .map_err(|error| SecretsError::Malformed(error.to_string()))?;
        let check = seal(&cipher, CHECK_PLAINTEXT)?;
        Ok(PassphraseCrypter {
            cipher,
            salt_b64: salt_b64.to_owned(),
            encryption_salt: format!("{SALT_PREFIX}{salt_b64}:{check}"),
        })
    }

    /// The value stored as `encryptionsalt` in the stack file.
    pub fn encryption_salt(&self) -> String {
        self.encryption_salt.clone()
    }

    /// Rebuilds the crypter from a stored `encryptionsalt`, verifying the passphrase.
    pub fn from_encryption_salt(
        passphrase: &str,
        encryption_salt: &str,
    ) -> Result<PassphraseCrypter, SecretsError> {
        let malformed = || SecretsError::MalformedSalt(encryption_salt.to_owned());
        let rest = encryption_salt
            .strip_prefix(SALT_PREFIX)
            .ok_or_else(malformed)?;
        let (salt, check) = rest.split_once(':').ok_or_else(malformed)?;
        let mut crypter = PassphraseCrypter::new(passphrase, salt)?;
        match crypter.decrypt(check) {
            Ok(plaintext) if plaintext == CHECK_PLAINTEXT => {
                // Keep the stored line, so saving the stack file again does not churn it.
                crypter.encryption_salt = encryption_salt.to_owned();
                Ok(crypter)
            }
            Ok(_) | Err(SecretsError::WrongPassphrase) => Err(SecretsError::WrongPassphrase),
            Err(other) => Err(other),
        }
    }
}

/// Seals `plaintext` under a fresh random nonce: `v1:<nonce>:<ciphertext>`.
fn seal(cipher: &XChaCha20Poly1305, plaintext: &str) -> Result<String, SecretsError> {
    let mut nonce = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut nonce);
    let ciphertext = cipher
        .encrypt(XNonce::from_slice(&nonce), plaintext.as_bytes())
        .map_err(|_| SecretsError::Malformed("sealing failed".to_owned()))?;
    Ok(crate::sealed::format(&nonce, &ciphertext))
}

impl Crypter for PassphraseCrypter {
    fn encrypt(&self, plaintext: &str) -> Result<String, SecretsError> {
        seal(&self.cipher, plaintext)
    }

    fn passphrase_salt_state(&self) -> Option<String> {
        Some(self.encryption_salt.clone())
    }

    fn decrypt(&self, ciphertext: &str) -> Result<String, SecretsError> {
        let (nonce, sealed) = crate::sealed::parse(ciphertext, 24)?;
        // An authentication failure means another key: the passphrase is wrong (or the value
        // was tampered with, which the same error covers without telling which).
        let plaintext = self
            .cipher
            .decrypt(XNonce::from_slice(&nonce), sealed.as_slice())
            .map_err(|_| SecretsError::WrongPassphrase)?;
        crate::sealed::utf8(plaintext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_distinct_nonces() {
        let crypter = PassphraseCrypter::new("pass", &new_salt()).unwrap();
        let first = crypter.encrypt("hunter2").unwrap();
        let second = crypter.encrypt("hunter2").unwrap();
        assert_ne!(first, second);
        assert!(!first.contains("hunter2"));
        assert_eq!(crypter.decrypt(&first).unwrap(), "hunter2");
        assert_eq!(crypter.decrypt(&second).unwrap(), "hunter2");
    }

    #[test]
    fn wrong_passphrase_is_detected_from_the_salt_line() {
        let crypter = PassphraseCrypter::new("right", &new_salt()).unwrap();
        let line = crypter.encryption_salt();
        assert!(PassphraseCrypter::from_encryption_salt("right", &line).is_ok());
        assert!(matches!(
            PassphraseCrypter::from_encryption_salt("wrong", &line),
            Err(SecretsError::WrongPassphrase)
        ));
    }

    #[test]
    fn tampering_is_detected() {
        let crypter = PassphraseCrypter::new("pass", &new_salt()).unwrap();
        let sealed = crypter.encrypt("value").unwrap();
        let (head, body) = sealed.rsplit_once(':').unwrap();
        let mut bytes = STANDARD.decode(body).unwrap();
        bytes[0] ^= 1;
        let tampered = format!("{head}:{}", STANDARD.encode(bytes));
        assert!(crypter.decrypt(&tampered).is_err());
        assert!(crypter.decrypt("garbage").is_err());
    }

    #[test]
    fn the_salt_line_is_stable_and_survives_a_reload() {
        let crypter = PassphraseCrypter::new("pass", &new_salt()).unwrap();
        let line = crypter.encryption_salt();
        assert_eq!(crypter.encryption_salt(), line);
        assert!(line.starts_with("cairn-v1:"));
        assert_eq!(
            crypter.passphrase_salt_state().as_deref(),
            Some(line.as_str())
        );
        let reloaded = PassphraseCrypter::from_encryption_salt("pass", &line).unwrap();
        assert_eq!(reloaded.encryption_salt(), line);
        // The reloaded crypter has the same key: it opens what the first one sealed.
        let sealed = crypter.encrypt("s3cret").unwrap();
        assert_eq!(reloaded.decrypt(&sealed).unwrap(), "s3cret");
    }

    #[test]
    fn malformed_salts_and_ciphertexts_are_reported_as_such() {
        assert!(matches!(
            PassphraseCrypter::new("pass", "not base64!"),
            Err(SecretsError::MalformedSalt(_))
        ));
        assert!(matches!(
            PassphraseCrypter::from_encryption_salt("pass", "v2:abc"),
            Err(SecretsError::MalformedSalt(_))
        ));
        let crypter = PassphraseCrypter::new("pass", &new_salt()).unwrap();
        assert!(matches!(
            crypter.decrypt("v1:AAAA:AAAA"),
            Err(SecretsError::Malformed(_))
        ));
    }

    #[test]
    fn another_passphrase_cannot_open_a_value() {
        let salt = new_salt();
        let sealed = PassphraseCrypter::new("right", &salt)
            .unwrap()
            .encrypt("value")
            .unwrap();
        let wrong = PassphraseCrypter::new("wrong", &salt).unwrap();
        assert!(matches!(
            wrong.decrypt(&sealed),
            Err(SecretsError::WrongPassphrase)
        ));
    }

    #[test]
    fn debug_does_not_show_the_key() {
        let crypter = PassphraseCrypter::new("pass", &new_salt()).unwrap();
        assert!(format!("{crypter:?}").starts_with("PassphraseCrypter { salt"));
    }
}
