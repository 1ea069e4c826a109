//! An opened stack and what operations do with it before the engine runs: take its lock,
//! unseal its configuration, read its last snapshot, and read other stacks' outputs.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use cairn_core::{PropertyMap, Snapshot, Value};
use cairn_engine::StackReferences;
use cairn_secrets::{Crypter, SecretsError};
use cairn_state::{Backend, BackendError, LockOwner, StackLock, StackRef};

use crate::OpsError;

/// Reads the passphrase that opens other stacks' secrets (a referenced stack's crypter is made
/// only if one of its outputs is a secret).
pub type PassphraseSource = Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

/// Who runs the operation, as lock holders and history show it.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user: String,
    /// The command line, with any password already redacted.
    pub command: String,
}

/// One entry of the stack's configuration, as its config file keeps it.
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigEntry {
    Plain(Value),
    /// A ciphertext of the stack's crypter.
    Secure(String),
}

/// A stack ready for operations.
pub struct StackSession {
    pub backend: Arc<dyn Backend>,
    pub stack: StackRef,
    /// The project the operation's program belongs to.
    pub project: String,
    /// The project's directory: where commands run and relative paths start when there is no
    /// program (refresh, destroy).
    pub project_dir: std::path::PathBuf,
    pub crypter: Arc<dyn Crypter>,
    /// The stack's configuration, keyed as in its config file.
    pub config: Vec<(String, ConfigEntry)>,
    pub passphrase: PassphraseSource,
    pub caller: Caller,
    /// `cairn cancel` for this stack, as a command that works from the user's directory.
    pub cancel_command: String,
    /// `cairn refresh --clear-pending` for this stack, likewise.
    pub clear_pending_command: String,
}

impl StackSession {
    /// Takes the stack's lock for this process.
    pub async fn lock(&self) -> Result<Box<dyn StackLock>, OpsError> {
        lock_stack(
            self.backend.as_ref(),
            &self.stack,
            &self.caller,
            &self.cancel_command,
        )
        .await
    }

    /// The configuration with secrets unsealed (as `Value::Secret`).
    pub fn config_values(&self) -> Result<BTreeMap<String, Value>, OpsError> {
        let mut values = BTreeMap::new();
        for (key, entry) in &self.config {
            let value = match entry {
                ConfigEntry::Plain(value) => value.clone(),
                ConfigEntry::Secure(ciphertext) => {
                    let plaintext = self.crypter.decrypt(ciphertext).map_err(|error| {
                        OpsError::ConfigSecret {
                            key: key.clone(),
                            error,
                        }
                    })?;
                    Value::String(plaintext).into_secret()
                }
            };
            values.insert(key.clone(), value);
        }
        Ok(values)
    }

    /// The stack's last snapshot (empty for a new stack).
    pub async fn snapshot(&self) -> Result<Snapshot, OpsError> {
        match self.backend.load_deployment(&self.stack).await? {
            Some(deployment) => Ok(cairn_state::deployment::decode_deployment(
                &deployment,
                self.crypter.as_ref(),
            )?),
            None => Ok(Snapshot::default()),
        }
    }

    /// Other stacks' outputs, read from this stack's backend.
    pub fn references(&self) -> Arc<dyn StackReferences> {
        Arc::new(BackendStackReferences {
            backend: self.backend.clone(),
            project: self.project.clone(),
            passphrase: self.passphrase.clone(),
        })
    }
}

/// Takes `stack`'s lock in `backend`, turning "locked" into an error that names the holder and
/// says what to do (`cancel_command` is the hint).
pub async fn lock_stack(
    backend: &dyn Backend,
    stack: &StackRef,
    caller: &Caller,
    cancel_command: &str,
) -> Result<Box<dyn StackLock>, OpsError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|duration| duration.as_secs() as i64)
        .unwrap_or(0);
    let owner = LockOwner {
        pid: std::process::id(),
        host: cairn_state::backend::local_host(),
        user: caller.user.clone(),
        command: caller.command.clone(),
        started: now,
        heartbeat: now,
        is_stale: false,
    };
    match backend.lock_stack(stack, owner).await {
        Ok(lock) => Ok(lock),
        Err(BackendError::Locked { stack, holder }) => {
            let help = if holder.is_stale {
                format!(
                    "help: nothing is running it any more; run `{cancel_command}` to release the stack"
                )
            } else {
                format!("help: wait for it to finish; if it is stuck, run `{cancel_command}`")
            };
            Err(OpsError::Refused(format!(
                "stack `{stack}` is locked by {holder}\n{help}"
            )))
        }
        Err(error) => Err(error.into()),
    }
}

/// Reads other stacks' outputs from the same backend.
struct BackendStackReferences {
    backend: Arc<dyn Backend>,
    project: String,
    passphrase: PassphraseSource,
}

impl StackReferences for BackendStackReferences {
    fn outputs(&self, stack: &str) -> Result<PropertyMap, String> {
        let stack_ref = StackRef::parse(stack, &self.project)?;
        let deployment = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(self.backend.load_deployment(&stack_ref))
        })
        .map_err(|error| error.to_string())?
        .ok_or_else(|| format!("stack `{stack}` has no state"))?;
        // The other stack's secrets open with its own salt, kept in its state (its stack file
        // belongs to another project, maybe another machine), and the same passphrase.
        let crypter = ReferencedCrypter {
            salt: deployment
                .secrets_providers
                .as_ref()
                .and_then(|providers| providers.state.get("salt")?.as_str().map(str::to_owned)),
            stack: stack.to_owned(),
            passphrase: self.passphrase.clone(),
            crypter: OnceLock::new(),
        };
        let snapshot = cairn_state::deployment::decode_deployment(&deployment, &crypter)
            .map_err(|error| error.to_string())?;
        Ok(snapshot.stack_outputs())
    }
}

/// The crypter of a referenced stack, made (deriving its key) only if one of its outputs is a
/// secret.
struct ReferencedCrypter {
    salt: Option<String>,
    stack: String,
    passphrase: PassphraseSource,
    crypter: OnceLock<Result<Box<dyn Crypter>, String>>,
}

impl ReferencedCrypter {
    fn get(&self) -> Result<&dyn Crypter, SecretsError> {
        let made = self.crypter.get_or_init(|| {
            let salt = self.salt.as_ref().ok_or_else(|| {
                format!(
                    "stack `{}` keeps secrets but no salt to open them",
                    self.stack
                )
            })?;
            let passphrase = (self.passphrase)()?;
            cairn_secrets::crypter_for_salt(&passphrase, salt).map_err(|error| error.to_string())
        });
        made.as_ref()
            .map(|crypter| crypter.as_ref())
            .map_err(|message| SecretsError::Unavailable(message.clone()))
    }
}

impl Crypter for ReferencedCrypter {
    fn encrypt(&self, plaintext: &str) -> Result<String, SecretsError> {
        self.get()?.encrypt(plaintext)
    }

    fn decrypt(&self, ciphertext: &str) -> Result<String, SecretsError> {
        self.get()?.decrypt(ciphertext)
    }
}
