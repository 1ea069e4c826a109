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
#[cfg(feature = "test-image")]
pub mod test_image;

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
        "a test double keeping instances in a file. Settings: path, startupLatencyMs, startupDuration, failLogicalId, failEvery (every Nth provision fails), logOutput, runSleep, exitCode, errorOn (start, upload, run)",
    ),
];

/// What a driver is called and what each of its settings means (Travis's `HumanReadableName`
/// and `ProviderHelp`), for `cairn run --help-driver` and for reading settings from the
/// environment, where only known names are looked up.
#[derive(Clone, Copy, Debug)]
pub struct DriverInfo {
    pub name: &'static str,
    pub human_name: &'static str,
    /// `(setting, help)`, settings spelled as in a spec (camelCase).
    pub settings: &'static [(&'static str, &'static str)],
}

pub const DRIVER_INFO: [DriverInfo; 3] = [
    DriverInfo {
        name: "docker",
        human_name: "Docker Engine containers",
        settings: &[
            (
                "host",
                "the engine: unix:///path or tcp://host:port (default DOCKER_HOST, then the local socket)",
            ),
            (
                "tagsFile",
                "a file keeping tags added after a container was created (Docker fixes labels at creation)",
            ),
        ],
    },
    DriverInfo {
        name: "process",
        human_name: "Local process groups",
        settings: &[(
            "dir",
            "the directory where instance records (pid, tags) are kept",
        )],
    },
    DriverInfo {
        name: "fake",
        human_name: "Fake instances (a test double)",
        settings: &[
            ("path", "the JSON file the instances are kept in"),
            (
                "startupDuration",
                "how long starting an instance takes, a Go duration (`1s`)",
            ),
            ("startupLatencyMs", "the same, in milliseconds"),
            ("failLogicalId", "provisioning this logical ID fails"),
            (
                "failEvery",
                "every Nth provision fails (3: the 3rd, 6th, ...)",
            ),
            (
                "logOutput",
                "what a script run writes to its log (`\\n` in it is a new line)",
            ),
            (
                "runSleep",
                "how long a script run takes before writing its log, a Go duration",
            ),
            ("exitCode", "the exit code of a script run (default 0)"),
            (
                "errorOn",
                "fail on purpose: start, upload or run (a comma-separated list)",
            ),
        ],
    },
];

/// The name and settings of a built-in driver.
pub fn driver_info(name: &str) -> Option<&'static DriverInfo> {
    DRIVER_INFO.iter().find(|info| info.name == name)
}

/// The settings help of a built-in driver (its `help()`), from `DRIVERS`.
pub(crate) fn help_of(name: &str) -> &'static str {
    DRIVERS
        .iter()
        .find(|(driver, _)| *driver == name)
        .map_or("", |(_, help)| help)
}
