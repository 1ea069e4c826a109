//! Compute instances with InfraKit's instance SPI (seed 004): an `InstanceDriver` provisions,
//! labels, describes and destroys instances, and runs commands in them (what the Travis- and
//! tsuru-style parts build on). Drivers: `docker` (the Docker Engine API through bollard),
//! `process` (local processes) and `fake` (a documented test double). `group` converges a group of instances to its spec;
//! `provider` makes a group a resource of programs (`cairn:compute:Group`).

pub mod docker;
mod driver;
pub mod fake;
pub mod group;
pub mod process;
pub mod provider;

pub use driver::{
    DestroyReason, DriverError, DriverResult, InstanceDescription, InstanceDriver, InstanceSpec,
    OutputChunk, Stream,
};
