//! State storage: the `Backend` trait every state backend implements (shaped by Pulumi's
//! `backend.Backend` and `backend.Stack`), the versioned deployment and journal formats, and the
//! `Persister` the engine records each step's intent and outcome through.
//!
//! Architecture invariant: the formats here are explicit DTOs; engine types never derive
//! `Serialize`. Secrets are sealed by a `Crypter` on the way in and unsealed on the way out, so
//! a backend only ever stores ciphertext.

pub mod backend;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod deployment;
pub mod jobs;
#[cfg(feature = "conformance")]
pub mod jobs_conformance;
pub mod journal;
pub mod persister;
pub mod stack_ref;

pub use backend::{
    Backend, BackendError, JournalDamage, LockOwner, LogEntry, StackLock, StackSummary, UpdateInfo,
    UpdateKind, UpdateMetadata, UpdateResult, UpdateWriter, validate_tag,
};
pub use deployment::{Deployment, UntypedDeployment};
pub use journal::JournalRecord;
pub use persister::Persister;
pub use stack_ref::StackRef;
