//! Plain data shared by every Cairn crate: property values, URNs, type tokens, resource states,
//! snapshots, schemas and step kinds.
//!
//! Architecture invariant: this crate does no I/O, spawns nothing and knows nothing about
//! serialization formats. State files and protocols own their own DTOs and convert to these types.

pub mod duration;
pub mod resource;
pub mod schema;
pub mod step;
pub mod type_token;
pub mod urn;
pub mod value;

pub use duration::parse_go_duration;
pub use resource::{PendingOperation, PendingOperationKind, ResourceState, Snapshot};
pub use schema::{PackageSchema, PropertySchema, PropertyType, ResourceSchema};
pub use step::StepOp;
pub use type_token::TypeToken;
pub use urn::{Urn, UrnError};
pub use value::{MAX_VALUE_DEPTH, PropertyMap, TooDeep, Value, check_depth};
