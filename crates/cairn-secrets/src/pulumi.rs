//! Pulumi's passphrase secrets, so stack files and exported states written by `pulumi` work
//! unchanged: the key is PBKDF2-HMAC-SHA256 (1,000,000 rounds) of the passphrase and an 8-byte
//! salt; values are AES-256-GCM under a 12-byte nonce, `v1:<nonce>:<ciphertext>`; the stack
//! file's `encryptionsalt` is `v1:<salt>:` followed by the sealed word `pulumi`.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use zeroize::Zeroizing;

use crate::{Crypter, SecretsError};

const ROUNDS: u32 = 1_000_000;
const CHECK_PLAINTEXT: &str = "pulumi";

/// A crypter for stacks whose secrets Pulumi's passphrase manager sealed.
pub struct PulumiPassphraseCrypter {
    cipher: Aes256Gcm,
    encryption_salt: String,
}

impl std::fmt::Debug for PulumiPassphraseCrypter {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PulumiPassphraseCrypter")
            .finish_non_exhaustive()
    }
}

impl PulumiPassphraseCrypter {
    /// Rebuilds the crypter from Pulumi's `encryptionsalt`, verifying the passphrase.
    pub fn from_encryption_salt(
        passphrase: &str,
        encryption_salt: &str,
    ) -> Result<PulumiPassphraseCrypter, SecretsError> {
        let malformed = || SecretsError::MalformedSalt(encryption_salt.to_owned());
        let rest = encryption_salt.strip_prefix("v1:").ok_or_else(malformed)?;
        let (salt_b64, check) = rest.split_once(':').ok_or_else(malformed)?;
        let salt = STANDARD.decode(salt_b64).map_err(|_| malformed())?;
        let mut key = Zeroizing::new([0u8; 32]);
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(passphrase.as_bytes(), &salt, ROUNDS, key.as_mut());
        let cipher = Aes256Gcm::new_from_slice(key.as_ref())
            .map_err(|error| SecretsError::Malformed(error.to_string()))?;
        let crypter = PulumiPassphraseCrypter {
            cipher,
            encryption_salt: encryption_salt.to_owned(),
        };
        match crypter.decrypt(check) {
            Ok(plaintext) if plaintext == CHECK_PLAINTEXT => Ok(crypter),
            Ok(_) | Err(SecretsError::WrongPassphrase) => Err(SecretsError::WrongPassphrase),
            Err(other) => Err(other),
        }
    }
}

impl Crypter for PulumiPassphraseCrypter {
    fn encrypt(&self, plaintext: &str) -> Result<String, SecretsError> {
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes())
            .map_err(|_| SecretsError::Malformed("sealing failed".to_owned()))?;
        Ok(crate::sealed::format(&nonce, &sealed))
    }

    fn decrypt(&self, ciphertext: &str) -> Result<String, SecretsError> {
        let (nonce, sealed) = crate::sealed::parse(ciphertext, 12)?;
        let plaintext = self
            .cipher
            .decrypt(Nonce::from_slice(&nonce), sealed.as_slice())
            .map_err(|_| SecretsError::WrongPassphrase)?;
        crate::sealed::utf8(plaintext)
    }

    fn passphrase_salt_state(&self) -> Option<String> {
        Some(self.encryption_salt.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made by an independent implementation of Pulumi's scheme (the `pulumi-crypto` Python
    // package) for the passphrase `correct horse`.
    const SALT_LINE: &str = "v1:aXx0U3t05rg=:v1:78hHLumIeruNhoAk:6DoZAhKB9JxKjK7vYT6j3n2678hOww==";
    const SEALED: &str = "v1:TYTw9ZHHTdW2qo2E:kzvNu1mP51g+rHTnbzU4umN3QY78kZtnUabRGA==";

    #[test]
    fn reads_what_pulumi_sealed() {
        let crypter =
            PulumiPassphraseCrypter::from_encryption_salt("correct horse", SALT_LINE).unwrap();
        assert_eq!(crypter.decrypt(SEALED).unwrap(), "s3cr3t-value");
        let resealed = crypter.encrypt("again").unwrap();
        assert_ne!(resealed, SEALED);
        assert_eq!(crypter.decrypt(&resealed).unwrap(), "again");
        assert_eq!(crypter.passphrase_salt_state().as_deref(), Some(SALT_LINE));
    }

    #[test]
    fn a_wrong_passphrase_is_told_apart() {
        assert!(matches!(
            PulumiPassphraseCrypter::from_encryption_salt("wrong horse", SALT_LINE),
            Err(SecretsError::WrongPassphrase)
        ));
    }
}
