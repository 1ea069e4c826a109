//! Command-line arguments, as close to the flags as possible: parsing only, no I/O. The
//! commands mirror the `pulumi` CLI so its users feel at home.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cairn",
    version,
    about = "Infrastructure as code and provisioning in one binary"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    #[command(flatten)]
    pub global: GlobalArgs,
}

#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Run as if started in this directory
    #[arg(long, short = 'C', global = true, value_name = "DIR")]
    pub cwd: Option<PathBuf>,

    /// The stack to operate on (default: the selected stack)
    #[arg(long, short = 's', global = true, value_name = "NAME")]
    pub stack: Option<String>,

    /// The state backend URL (default: CAIRN_BACKEND_URL, then `cairn login`, then file://~/.cairn)
    #[arg(long, global = true, value_name = "URL")]
    pub backend: Option<String>,

    /// Print machine-readable JSON
    #[arg(long, global = true)]
    pub json: bool,

    /// Show secret values in plaintext
    #[arg(long, global = true)]
    pub show_secrets: bool,

    /// Never prompt and never draw live progress: one line per event, as off a terminal
    #[arg(long, global = true)]
    pub non_interactive: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log in to a backend (a `file://` directory)
    Login(LoginArgs),
    /// Log out of the current backend
    Logout,
    /// Show the current user and backend
    Whoami,
    /// Create a project from a built-in template (no template: list them)
    New(NewArgs),
    /// Manage stacks
    #[command(subcommand)]
    Stack(StackCommand),
    /// Manage the stack's configuration
    Config(ConfigArgs),
    /// Show what `up` would change, without changing anything
    Preview(DeployArgs),
    /// Create or update the stack's resources
    Up(DeployArgs),
    /// Read the live state of the stack's resources and record drift
    Refresh(RefreshArgs),
    /// Delete every resource of the stack
    Destroy(DestroyArgs),
    /// End an update whose process died or is stuck, releasing the stack's lock
    Cancel(CancelArgs),
    /// Edit the stack's state directly
    #[command(subcommand)]
    State(StateCommand),
    /// Adopt an existing resource into the stack and print the program snippet that declares it
    Import(ImportArgs),
    /// Show what providers and the engine logged during the stack's updates
    Logs(LogsArgs),
    /// Provider plugins
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Groups of compute instances, converged to their spec
    #[command(subcommand)]
    Group(GroupCommand),
    /// Compute instances, straight through a driver
    #[command(subcommand)]
    Instance(InstanceCommand),
    /// Run a script on a fresh instance, stream its output, exit with its exit code
    #[command(after_help = RUN_EXIT_CODES)]
    Run(RunArgs),
    /// Queued script runs, taken by workers (`cairn worker`)
    #[command(subcommand)]
    Job(JobCommand),
    /// Run the jobs of a queue (`cairn job submit`) until stopped; SIGTERM drains
    Worker(WorkerArgs),
    /// Apps on tsuru's model: processes, environment, release history (deploys come later)
    #[command(subcommand)]
    App(AppCommand),
    /// Pools: the groups of nodes apps are placed on
    #[command(subcommand)]
    Pool(PoolCommand),
    /// Nodes: the Docker Engine endpoints of the pools
    #[command(subcommand)]
    Node(NodeCommand),
    /// The HTTP router: sends APP.<domain> to the app's started web units
    #[command(subcommand)]
    Router(RouterCommand),
}

#[derive(Debug, Subcommand)]
pub enum RouterCommand {
    /// Serve HTTP until SIGTERM or Ctrl-C, which drains: no new connections, requests in
    /// flight finish (up to --drain-timeout), then exit 0
    Run(RouterRunArgs),
}

#[derive(Args, Debug)]
pub struct RouterRunArgs {
    /// The address to listen on (`127.0.0.1:8080`, `0.0.0.0:80`)
    #[arg(long, value_name = "ADDR")]
    pub listen: String,
    /// App `shop` is served at `shop.<domain>`
    #[arg(long, default_value = cairn_router::DEFAULT_DOMAIN)]
    pub domain: String,
    /// How often the routes are read again from the backend
    #[arg(long, default_value = "200ms", value_name = "DURATION")]
    pub refresh: humantime::Duration,
    /// How long requests in flight may take to finish after SIGTERM or Ctrl-C
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    pub drain_timeout: humantime::Duration,
}

#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// The queue to take jobs from
    #[arg(long, default_value = "default")]
    pub queue: String,
    /// How many jobs run at once
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// The worker's name in the queue (default: host:pid)
    #[arg(long)]
    pub name: Option<String>,
    /// How long running jobs may finish after SIGTERM before they go back to the queue
    #[arg(long, default_value = "60s")]
    pub drain_timeout: humantime::Duration,
}

pub const RUN_EXIT_CODES: &str = "\
Exit status: the script's own when it ran to its end; otherwise
  124  hard timeout (--timeout)
  123  log silence (--log-silence)
  122  log cap (--max-log; the head and tail of the log are kept)
  125  infrastructure failure (driver, instance start, upload)
  130  cancelled (Ctrl-C: once sends the script SIGTERM and waits --grace, twice kills it)
    2  bad usage or input
each with one line on stderr naming the reason. The instance is removed in every case.

Driver settings: --set KEY=VALUE, or CAIRN_RUN_<DRIVER>_<SETTING> (the setting in
SCREAMING_SNAKE_CASE: logOutput -> CAIRN_RUN_FAKE_LOG_OUTPUT); the flag wins.
Sizes are SI (4.5MB = 4,500,000 bytes; KiB/MiB are binary), durations Go's (90s, 10m, 1h30m).";

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The script (`-` reads it from standard input), run by /bin/sh unless it starts with a shebang
    #[arg(required_unless_present_any = ["list_drivers", "help_driver"])]
    pub script: Option<PathBuf>,
    #[command(flatten)]
    pub options: ScriptOptions,
    /// How long the script has to end after SIGTERM (the first Ctrl-C) before it is killed
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub grace: String,
    /// List the drivers
    #[arg(long, conflicts_with = "help_driver")]
    pub list_drivers: bool,
    /// Show a driver's settings
    #[arg(long, value_name = "NAME")]
    pub help_driver: Option<String>,
}

/// How a script runs, shared by `cairn run` and `cairn job submit`.
#[derive(Debug, Args)]
pub struct ScriptOptions {
    /// The instance driver: docker, process or fake
    #[arg(long, default_value = "docker")]
    pub driver: String,
    /// The image of the instance (docker: a local image, nothing is pulled)
    #[arg(long)]
    pub image: Option<String>,
    /// An environment variable for the script, `KEY=VALUE` (repeatable)
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// A secret environment variable for the script, `KEY=VALUE`, or `KEY` to take the value
    /// of Cairn's own variable KEY (repeatable). Never stored or shown in plaintext: its
    /// value is masked in the log, and a job's is sealed with CAIRN_CONFIG_PASSPHRASE
    #[arg(long = "secret-env", value_name = "KEY[=VALUE]")]
    pub secret_env: Vec<String>,
    /// The hard timeout of the whole run, instance start included
    #[arg(long, default_value = "50m", value_name = "DURATION")]
    pub timeout: String,
    /// How long the script may write nothing before it is stopped
    #[arg(long, default_value = "10m", value_name = "DURATION")]
    pub log_silence: String,
    /// The most log kept; past it the run errors, keeping the log's head and tail
    #[arg(long, default_value = "4.5MB", value_name = "SIZE")]
    pub max_log: String,
    /// A driver setting, `KEY=VALUE` (repeatable; see `cairn run --help-driver`)
    #[arg(long = "set", visible_alias = "setting", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Queue a script for a worker (`cairn worker`) to run; prints the job's id
    Submit(JobSubmitArgs),
    /// List jobs, oldest first
    Ls {
        /// Only the jobs of this queue
        #[arg(long, short = 'q')]
        queue: Option<String>,
        /// Only the jobs in this state (queued, received, started, passed, failed, errored, cancelled)
        #[arg(long, value_name = "STATE")]
        state: Option<String>,
    },
    /// Show everything about a job
    Show {
        #[arg(value_name = "ID")]
        id: u64,
    },
    /// Print the log of a job's current attempt
    Logs {
        #[arg(value_name = "ID")]
        id: u64,
        /// Keep printing the log as it grows, until the job is finished
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// Cancel a job: a queued one at once, a running one by asking its worker to stop it
    Cancel {
        #[arg(value_name = "ID")]
        id: u64,
    },
    /// Queue a finished job again
    Restart {
        #[arg(value_name = "ID")]
        id: u64,
    },
}

#[derive(Debug, Args)]
pub struct JobSubmitArgs {
    /// The script (`-` reads it from standard input), run by /bin/sh unless it starts with a shebang
    pub script: PathBuf,
    /// The queue (workers take jobs from the queues they are given)
    #[arg(long, short = 'q', default_value = "default")]
    pub queue: String,
    #[command(flatten)]
    pub options: ScriptOptions,
    /// How many times an infrastructure failure (an instance that does not start, a worker
    /// that dies) puts the job back in the queue before it errors
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub retries: u32,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Remove a resource from the state without deleting it
    Delete {
        urn: String,
        /// Remove it even if other resources depend on it, or it is protected
        #[arg(long)]
        force: bool,
        /// Do not ask for confirmation
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Clear a resource's `protect` flag
    Unprotect {
        urn: String,
        /// Do not ask for confirmation
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Put resources in dependency order and drop references to resources that do not exist;
    /// salvage the intact part of a damaged journal
    Repair {
        /// Do not ask for confirmation
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The template (`random-yaml`, `command-yaml`); without one, list the templates
    pub template: Option<String>,
    /// Create the project in this directory (default: the current one)
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The project name (default: the directory's name)
    #[arg(long, short = 'n')]
    pub name: Option<String>,
    /// The project description
    #[arg(long, short = 'd')]
    pub description: Option<String>,
    /// Write into a directory that is not empty
    #[arg(long)]
    pub force: bool,
    /// Do not ask any question
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The resource type (`random:RandomPet`, `docker:Container`)
    #[arg(value_name = "TYPE")]
    pub type_token: String,
    /// The resource's name in the program
    pub name: String,
    /// The provider's ID of the existing resource
    pub id: String,
    /// Mark the imported resource protected, so `destroy` leaves it alone (as `pulumi import`)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub protect: bool,
    /// Approve without asking
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Skip the preview
    #[arg(long, short = 'f')]
    pub skip_preview: bool,
    /// A message for the update history
    #[arg(long, short = 'm')]
    pub message: Option<String>,
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The backend URL (`file://<dir>`); default `file://~/.cairn`
    pub url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum StackCommand {
    /// Create a stack and select it
    Init { name: Option<String> },
    /// List the project's stacks
    Ls {
        /// List the stacks of every project
        #[arg(long, short = 'a')]
        all: bool,
    },
    /// Select the current stack
    Select { name: Option<String> },
    /// Remove a stack and its configuration
    Rm {
        name: Option<String>,
        /// Remove even if the stack still has resources
        #[arg(long, short = 'f')]
        force: bool,
        /// Do not ask for confirmation
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Show the stack's outputs
    Output { name: Option<String> },
    /// Print the stack's deployment as JSON
    Export {
        /// Write to this file instead of stdout
        #[arg(long)]
        file: Option<PathBuf>,
        /// Export the checkpoint kept from this update version (`cairn stack history`)
        #[arg(long)]
        version: Option<u64>,
    },
    /// Replace the stack's state with a deployment (as `stack export` prints it)
    Import {
        /// Read from this file instead of stdin
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Show the stack's update history
    History,
    /// Manage the stack's tags
    #[command(subcommand)]
    Tag(TagCommand),
    /// Rename the current stack (its state, history, tags, logs and stack file)
    Rename {
        /// The new name
        new_name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Commit a group spec (YAML or JSON) and converge the group to it
    Commit {
        file: PathBuf,
        /// Only show what converging would do
        #[arg(long)]
        pretend: bool,
        /// Approve without asking
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// List the committed groups
    Ls,
    /// Show a group's members: running, and up to date with the spec
    Describe { id: String },
    /// Show a group's spec, fingerprint and members
    Inspect { id: String },
    /// Keep converging the group (replacing members that die), until interrupted
    Watch {
        id: String,
        /// Seconds between passes
        #[arg(long, default_value_t = 2)]
        interval: u64,
    },
    /// Stop managing the group, leaving its members running (InfraKit's Free)
    Free {
        id: String,
        /// Approve without asking
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Destroy every member and forget the group
    Destroy {
        id: String,
        /// Approve without asking
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum InstanceCommand {
    /// List the instance drivers and the settings each takes
    Drivers,
    /// List instances, optionally only those with every `--tag key=value`
    Ls {
        /// `docker`, `docker:<host URL>` or `fake:<file>`
        #[arg(long, default_value = "docker")]
        driver: String,
        #[arg(long)]
        tag: Vec<String>,
    },
    /// Provision an instance from a spec file (properties, tags, init, logicalId)
    Provision {
        #[arg(long, default_value = "docker")]
        driver: String,
        file: PathBuf,
    },
    /// Add tags to an instance
    Label {
        #[arg(long, default_value = "docker")]
        driver: String,
        id: String,
        /// `key=value`, repeatable
        #[arg(required = true)]
        tag: Vec<String>,
    },
    /// Destroy an instance
    Destroy {
        #[arg(long, default_value = "docker")]
        driver: String,
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// List the built-in providers and the plugins found, with their versions
    Ls,
    /// Serve a built-in provider over the plugin protocol on stdin/stdout
    #[command(hide = true)]
    Serve { package: String },
}

#[derive(Debug, Subcommand)]
pub enum TagCommand {
    /// List the stack's tags, the automatic ones included
    Ls,
    /// Print one tag's value
    Get { name: String },
    /// Set a tag
    Set { name: String, value: String },
    /// Remove a tag
    Rm { name: String },
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Only lines about this resource (a URN)
    #[arg(long, short = 'r', value_name = "URN")]
    pub resource: Option<String>,
    /// Only lines from this long ago on (`30s`, `5m`, `2h`)
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
    /// Keep printing new lines as they arrive
    #[arg(long, short = 'f')]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: Option<ConfigCommand>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Set a configuration value
    Set {
        key: String,
        /// The value (read from standard input when left out). It may start with `-`, as a
        /// PEM key does: it is never taken for a flag (and echoed in an error).
        #[arg(allow_hyphen_values = true)]
        value: Option<String>,
        /// Encrypt the value
        #[arg(long)]
        secret: bool,
        /// Store the value as plain text (the default)
        #[arg(long, conflicts_with = "secret")]
        plaintext: bool,
    },
    /// Print one configuration value
    Get { key: String },
    /// Remove a configuration value
    Rm { key: String },
}

#[derive(Debug, Args, Clone)]
pub struct DeployArgs {
    /// Approve the update without asking
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Do not show a preview before updating
    #[arg(long, short = 'f')]
    pub skip_preview: bool,
    /// Show property-level diffs
    #[arg(long)]
    pub diff: bool,
    /// Show unchanged resources too
    #[arg(long)]
    pub show_sames: bool,
    /// A message for the update history
    #[arg(long, short = 'm')]
    pub message: Option<String>,
    /// Only change these resources (URNs); repeatable
    #[arg(long, short = 't', value_name = "URN")]
    pub target: Vec<String>,
    /// At most this many resource operations at once
    #[arg(long, short = 'p', default_value_t = 64)]
    pub parallel: usize,
    /// Refresh the state from the providers first
    #[arg(long, short = 'r')]
    pub refresh: bool,
}

#[derive(Debug, Args)]
pub struct RefreshArgs {
    /// Approve without asking
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Only show what would change
    #[arg(long)]
    pub preview_only: bool,
    /// Skip the preview
    #[arg(long, short = 'f')]
    pub skip_preview: bool,
    #[arg(long, short = 'p', default_value_t = 64)]
    pub parallel: usize,
    /// Resolve the pending operations of an interrupted update: adopt creates that happened,
    /// forget those that did not, drop resources whose delete happened
    #[arg(long, alias = "clear-pending-creates")]
    pub clear_pending: bool,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    /// Approve without asking
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Skip the preview
    #[arg(long, short = 'f')]
    pub skip_preview: bool,
    /// Only delete these resources (URNs); repeatable
    #[arg(long, short = 't', value_name = "URN")]
    pub target: Vec<String>,
    #[arg(long, short = 'p', default_value_t = 64)]
    pub parallel: usize,
    /// A message for the update history
    #[arg(long, short = 'm')]
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Clap checks every command and flag definition (duplicate names, conflicting short
    /// flags) only when asked; a clash would otherwise surface as a panic in one subcommand.
    #[test]
    fn argument_definitions_are_consistent() {
        super::Cli::command().debug_assert();
    }
}

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Create an app (no release until its first deploy or environment change)
    Create {
        #[arg(value_name = "APP")]
        app: String,
        /// The pool its units go to (default: the default pool)
        #[arg(long, value_name = "POOL")]
        pool: Option<String>,
        /// A process and its command (`--process web="./server"`); repeatable
        #[arg(long = "process", value_name = "NAME=COMMAND")]
        processes: Vec<String>,
        /// Read the processes from a Procfile (`name: command` lines)
        #[arg(long, value_name = "PATH", conflicts_with = "processes")]
        procfile: Option<PathBuf>,
    },
    /// List apps
    Ls,
    /// Show an app: pool, processes, environment (secrets as `[secret]`), release, units
    Info {
        #[arg(value_name = "APP")]
        app: String,
    },
    /// Remove an app with its releases (asks first on a terminal)
    Remove {
        #[arg(value_name = "APP")]
        app: String,
        /// Do not ask for confirmation
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// End the hold of a writer that is stuck or gone on the app's lock (its writes are refused
    /// from then on)
    Unlock {
        #[arg(value_name = "APP")]
        app: String,
    },
    /// Environment variables; every change is a new release
    #[command(subcommand)]
    Env(AppEnvCommand),
    /// The app's units and their statuses (units are started by deploys, which come later)
    Units {
        #[arg(value_name = "APP")]
        app: String,
    },
    /// The app's release history, oldest first
    Releases {
        #[arg(value_name = "APP")]
        app: String,
    },
    /// Custom host names the router serves the app at, besides APP.<domain>
    #[command(subcommand)]
    Cname(AppCnameCommand),
}

#[derive(Debug, Subcommand)]
pub enum AppCnameCommand {
    /// Serve the app at NAME too (a name another app has is refused)
    Add {
        #[arg(value_name = "APP")]
        app: String,
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Stop serving the app at NAME
    Rm {
        #[arg(value_name = "APP")]
        app: String,
        #[arg(value_name = "NAME")]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AppEnvCommand {
    /// Set variables (a new release)
    Set {
        #[arg(value_name = "APP")]
        app: String,
        #[arg(value_name = "KEY=VALUE", required = true)]
        values: Vec<String>,
        /// Seal the values with the passphrase (`CAIRN_CONFIG_PASSPHRASE`); shown as `[secret]`
        #[arg(long)]
        secret: bool,
    },
    /// Remove variables (a new release)
    Unset {
        #[arg(value_name = "APP")]
        app: String,
        #[arg(value_name = "KEY", required = true)]
        names: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// Add a pool
    Add {
        #[arg(value_name = "NAME")]
        name: String,
        /// Who places units on its nodes
        #[arg(long, default_value = "docker", value_parser = ["docker", "swarm"])]
        provisioner: String,
        /// Apps created without `--pool` go here
        #[arg(long)]
        default: bool,
    },
    /// List pools
    Ls,
    /// Remove a pool no node and no app uses
    Rm {
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Make a pool the default one: apps created without `--pool` go there
    Default {
        #[arg(value_name = "NAME")]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Add a node (`unix:///path/to/docker.sock` or `tcp://host:port`) to a pool
    Add {
        #[arg(value_name = "ADDRESS")]
        address: String,
        #[arg(long, value_name = "POOL")]
        pool: String,
        /// Metadata (`--meta zone=a`); repeatable
        #[arg(long = "meta", value_name = "KEY=VALUE")]
        metadata: Vec<String>,
    },
    /// List nodes
    Ls,
    /// Change a node's pool, metadata or status
    Update {
        #[arg(value_name = "ADDRESS")]
        address: String,
        /// Move it to this pool
        #[arg(long, value_name = "POOL")]
        pool: Option<String>,
        /// Set metadata (`--meta zone=b`); repeatable
        #[arg(long = "meta", value_name = "KEY=VALUE")]
        metadata: Vec<String>,
        /// Remove a metadata key; repeatable
        #[arg(long = "remove-meta", value_name = "KEY")]
        remove_metadata: Vec<String>,
        /// Let units be placed on it
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        /// Place no new units on it
        #[arg(long)]
        disable: bool,
    },
    /// Remove a node
    Rm {
        #[arg(value_name = "ADDRESS")]
        address: String,
    },
}
