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
pub mod registry;

pub use driver::{
    Attachment, DestroyReason, DriverError, DriverResult, Health, InstanceDescription,
    InstanceDriver, InstanceSpec, OutputChunk, Stream,
};
pub use registry::DriverRegistry;

/// The drivers, with the settings each takes (`cairn instance drivers`).
pub const DRIVERS: [(&str, &str); 3] = [
    (
        "docker",
        "containers on the Docker Engine API. Settings: host (unix:///path or tcp://host:port; default DOCKER_HOST, then the local socket). Properties: image, command, env, ports, mounts, memoryMb, cpus, network, restart",
    ),
    (
        "process",
        "local process groups, for hosts without Docker. Settings: dir (where instance records are kept). Properties: command, env, workingDir",
    ),
    (
        "fake",
        "a test double keeping instances in a file. Settings: path, startupLatencyMs, failLogicalId, failEvery (every Nth provision fails)",
    ),
];

/// The settings help of a built-in driver (its `help()`), from `DRIVERS`.
pub(crate) fn help_of(name: &str) -> &'static str {
    DRIVERS
        .iter()
        .find(|(driver, _)| *driver == name)
        .map_or("", |(_, help)| help)
}
