//! The one error type of apps and their stores: what was refused and why, with the names the
//! user gave; never a secret value.

use crate::UnitStatus;

pub type AppResult<T> = Result<T, AppError>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A name (app, pool, process, environment variable) or a value the user gave is not
    /// acceptable; nothing was changed.
    #[error("{0}")]
    Invalid(String),
    #[error("no app `{0}`")]
    AppNotFound(String),
    #[error("an app named `{0}` already exists")]
    AppExists(String),
    #[error("no pool `{0}`")]
    PoolNotFound(String),
    #[error("a pool named `{0}` already exists")]
    PoolExists(String),
    #[error("pool `{pool}` is in use: {reason}")]
    PoolInUse { pool: String, reason: String },
    #[error("no node `{0}`")]
    NodeNotFound(String),
    #[error("a node with the address `{0}` already exists")]
    NodeExists(String),
    #[error("app `{app}` has no unit `{unit}`")]
    UnitNotFound { app: String, unit: String },
    #[error("app `{app}` already has a unit `{unit}`")]
    UnitExists { app: String, unit: String },
    /// tsuru's status machine does not allow the move.
    #[error("a unit cannot go from `{from}` to `{to}`")]
    ForbiddenTransition { from: UnitStatus, to: UnitStatus },
    /// Another writer holds the app's lock and its lease has not run out.
    #[error(
        "app `{app}` is locked by {holder} for {}s more\nhelp: try again once it is done; a lock whose holder was killed runs out by itself",
        (remaining_ms + 999) / 1000
    )]
    Locked {
        app: String,
        holder: String,
        remaining_ms: i64,
    },
    /// The writer's lock is gone (its lease ran out, another writer took it, or the app was
    /// removed): the write is refused, so a writer that lost its lock changes nothing more.
    #[error("the lock on app `{0}` is no longer held; nothing was written")]
    LockLost(String),
    /// Sealing or unsealing a secret value failed (no passphrase, a wrong one).
    #[error(transparent)]
    Secrets(#[from] cairn_secrets::SecretsError),
    /// The backend could not be read or written.
    #[error("{0}")]
    Storage(String),
}

impl AppError {
    /// Whether the error is the user's input (a bad name, something that does not exist or
    /// already does, a refused move): the CLI exits 2 for these.
    pub fn is_bad_input(&self) -> bool {
        !matches!(
            self,
            AppError::Storage(_) | AppError::Locked { .. } | AppError::LockLost(_)
        )
    }
}
