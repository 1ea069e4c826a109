//! Writing a Cairn provider plugin: implement `cairn_provider::Provider` and call
//! `cairn_provider_sdk::serve(provider)` from `main`. The plugin then speaks the protocol of
//! `docs/provider-protocol.md` (JSON-RPC 2.0, one message per line on stdin/stdout) and Cairn
//! runs it as it runs its built-in providers.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # fn provider() -> Arc<dyn cairn_provider::Provider> { unimplemented!() }
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     cairn_provider_sdk::serve(provider()).await
//! }
//! ```
//!
//! The wire format (`wire`) is shared with the engine's plugin client (`cairn-plugin`).

mod server;
pub mod wire;

pub use server::serve;

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u64 = 1;
