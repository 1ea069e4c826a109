//! One module per command. A command parses nothing itself: it takes its argument struct,
//! resolves the workspace, calls the libraries, and renders.

mod app;
mod cancel;
mod compute;
mod config;
mod deploy;
mod job;
mod login;
mod logs;
mod new;
pub mod plugins;
pub mod render;
mod reporter;
mod router;
mod run;
mod stack;
mod state;
mod worker;

use std::sync::Arc;

use cairn_core::{PropertyMap, Snapshot, Value};
use cairn_program::Program;
use cairn_provider::ProviderRegistry;
use cairn_secrets::Crypter;
use cairn_state::{Backend, StackRef};

use crate::cli::{Cli, Command};
use crate::env;
use crate::stack_config::{ConfigEntry, StackConfigFile};
use crate::workspace::Workspace;

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    NON_INTERACTIVE.store(
        cli.global.non_interactive,
        std::sync::atomic::Ordering::Relaxed,
    );
    let workspace = Workspace::new(cli.global)?;
    run_command(&workspace, cli.command).await
}

async fn run_command(workspace: &Workspace, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Login(args) => login::login(workspace, args),
        Command::Logout => login::logout(workspace),
        Command::Whoami => login::whoami(workspace).await,
        Command::New(args) => new::new(workspace, args).await,
        Command::Stack(command) => stack::run(workspace, command).await,
        Command::Config(args) => config::run(workspace, args).await,
        Command::Preview(args) => deploy::preview(workspace, args).await,
        Command::Up(args) => deploy::up(workspace, args).await,
        Command::Refresh(args) => deploy::refresh(workspace, args).await,
        Command::Destroy(args) => deploy::destroy(workspace, args).await,
        Command::Cancel(args) => cancel::cancel(workspace, args).await,
        Command::State(command) => state::run(workspace, command).await,
        Command::Import(args) => deploy::import(workspace, args).await,
        Command::Logs(args) => logs::logs(workspace, args).await,
        Command::Plugin(command) => plugins::run(workspace, command).await,
        Command::Group(command) => compute::group(workspace, command).await,
        Command::Instance(command) => compute::instance(workspace, command).await,
        Command::Run(args) => run::run(workspace, args).await,
        Command::Job(command) => job::run(workspace, command).await,
        Command::Worker(args) => worker::run(workspace, args).await,
        Command::App(command) => app::run(workspace, command).await,
        Command::Pool(command) => app::run_pool(workspace, command).await,
        Command::Node(command) => app::run_node(workspace, command).await,
        Command::Router(command) => router::run(workspace, command).await,
    }
}

/// Loads and checks the program of the workspace's project; every diagnostic is printed, and
/// any error fails with exit code 2.
pub fn load_program(
    workspace: &Workspace,
    registry: &ProviderRegistry,
) -> anyhow::Result<Arc<Program>> {
    Ok(cairn_ops::load_program(
        &workspace.project_dir,
        registry,
        &stack_config_keys(workspace),
        &reporter::TerminalReporter::new(reporter::Display::default()),
    )?)
}

/// The keys of the selected stack's config file, which the program may read undeclared. The
/// program is checked before the stack is opened, so this reads the file on its own; without a
/// selected stack or a readable file there are none (opening the stack reports why).
fn stack_config_keys(workspace: &Workspace) -> Vec<String> {
    let Ok(project) = workspace.project_name() else {
        return Vec::new();
    };
    let Ok(stack) = workspace.stack_ref(&project) else {
        return Vec::new();
    };
    StackConfigFile::load(&workspace.stack_config_path(&stack.name))
        .map(|file| file.entries.into_iter().map(|(key, _)| key).collect())
        .unwrap_or_default()
}

/// A stack's context: backend, reference, configuration file and crypter.
pub struct StackContext {
    pub project: String,
    pub project_dir: std::path::PathBuf,
    pub backend: Arc<dyn Backend>,
    pub stack: StackRef,
    pub config_file: StackConfigFile,
    pub crypter: Arc<dyn Crypter>,
    /// `cairn cancel` for this stack, as a command that works from the user's directory.
    pub cancel_command: String,
    /// `cairn refresh --clear-pending` for this stack, likewise.
    pub clear_pending_command: String,
}

/// Resolves the current stack and checks that it exists.
pub async fn open_stack(workspace: &Workspace) -> anyhow::Result<StackContext> {
    let project = workspace.project_name()?;
    let stack = workspace.stack_ref(&project)?;
    let backend = workspace.backend()?;
    if !backend.stack_exists(&stack).await? {
        return Err(crate::bad_input(format!(
            "no stack named `{}` found\nhelp: run `cairn stack init {}` to create it",
            stack.name, stack.name
        )));
    }
    let mut config_file = StackConfigFile::load(&workspace.stack_config_path(&stack.name))?;
    if config_file.encryption_salt.is_none() {
        restore_salt(backend.as_ref(), &stack, &mut config_file).await?;
    }
    let crypter = workspace.crypter(&stack.name);
    let cancel_command = workspace.command_for("cancel", &stack.relative_to(&project));
    let clear_pending_command =
        workspace.command_for("refresh --clear-pending", &stack.relative_to(&project));
    Ok(StackContext {
        project,
        project_dir: workspace.project_dir.clone(),
        backend,
        stack,
        config_file,
        crypter,
        cancel_command,
        clear_pending_command,
    })
}

/// A stack file without its salt (a fresh clone, with the stack on a shared backend) gets the
/// salt back from the stack's state, where Pulumi's format keeps it too. A new salt would make
/// the right passphrase look wrong for every secret already in the state.
async fn restore_salt(
    backend: &dyn Backend,
    stack: &StackRef,
    config_file: &mut StackConfigFile,
) -> anyhow::Result<()> {
    let salt = backend
        .load_deployment(stack)
        .await?
        .and_then(|deployment| deployment.secrets_providers)
        .and_then(|providers| providers.state.get("salt")?.as_str().map(str::to_owned));
    if let Some(salt) = salt {
        // Under the file's lock, and only if no other process has put a salt there meanwhile.
        let kept = StackConfigFile::edit(&config_file.path, |file| {
            Ok(file.encryption_salt.get_or_insert(salt).clone())
        })?;
        config_file.encryption_salt = Some(kept);
        crate::output::warning(&format!(
            "`{}` had no `encryptionsalt`; it was restored from the state of stack `{}`",
            config_file.path.display(),
            stack.name
        ));
    }
    Ok(())
}

impl StackContext {
    /// The stack as the operations library takes it.
    pub fn session(&self) -> cairn_ops::StackSession {
        let config = self
            .config_file
            .entries
            .iter()
            .map(|(key, entry)| {
                let entry = match entry {
                    ConfigEntry::Plain(json) => cairn_ops::ConfigEntry::Plain(json_to_value(json)),
                    ConfigEntry::Secure(ciphertext) => {
                        cairn_ops::ConfigEntry::Secure(ciphertext.clone())
                    }
                };
                (key.clone(), entry)
            })
            .collect();
        cairn_ops::StackSession {
            backend: self.backend.clone(),
            stack: self.stack.clone(),
            project: self.project.clone(),
            project_dir: self.project_dir.clone(),
            crypter: self.crypter.clone(),
            config,
            passphrase: Arc::new(crate::workspace::passphrase),
            caller: caller(),
            cancel_command: self.cancel_command.clone(),
            clear_pending_command: self.clear_pending_command.clone(),
        }
    }
}

/// Who runs this command, as lock holders and history show it.
pub fn caller() -> cairn_ops::Caller {
    cairn_ops::Caller {
        user: env::user_name(),
        command: env::command_line(),
    }
}

/// The stack's last snapshot (empty for a new stack).
pub async fn load_snapshot(context: &StackContext) -> anyhow::Result<Snapshot> {
    Ok(context.session().snapshot().await?)
}

pub fn json_to_value(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(flag) => Value::Bool(*flag),
        serde_json::Value::Number(number) => Value::Number(number.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(text) => Value::String(text.clone()),
        serde_json::Value::Array(items) => Value::Array(items.iter().map(json_to_value).collect()),
        serde_json::Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| (key.clone(), json_to_value(value)))
                .collect(),
        ),
    }
}

/// Renders a value as JSON for output: secrets as `[secret]` unless revealed, unknowns as
/// Pulumi's unknown marker.
pub fn value_to_json(value: &Value, show_secrets: bool) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(flag) => serde_json::Value::Bool(*flag),
        Value::Number(number) => {
            if number.fract() == 0.0 && number.abs() < 9e15 {
                serde_json::Value::from(*number as i64)
            } else {
                serde_json::Number::from_f64(*number)
                    .map(serde_json::Value::Number)
                    .unwrap_or(serde_json::Value::Null)
            }
        }
        Value::String(text) => serde_json::Value::String(text.clone()),
        Value::Array(items) => serde_json::Value::Array(
            items
                .iter()
                .map(|item| value_to_json(item, show_secrets))
                .collect(),
        ),
        Value::Object(map) => map_to_json(map, show_secrets),
        Value::Secret(inner) if show_secrets => value_to_json(inner, show_secrets),
        Value::Secret(_) => serde_json::Value::String("[secret]".to_owned()),
        Value::Unknown => {
            serde_json::Value::String("04da6b54-80e4-46f7-96ec-b56ff0331ba9".to_owned())
        }
    }
}

pub fn map_to_json(map: &PropertyMap, show_secrets: bool) -> serde_json::Value {
    serde_json::Value::Object(
        map.iter()
            .map(|(key, value)| (key.clone(), value_to_json(value, show_secrets)))
            .collect(),
    )
}

/// `--non-interactive`, set once at start. Global because prompts are asked from deep inside
/// commands (the passphrase, from the crypter) that have no workspace at hand.
static NON_INTERACTIVE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether someone can answer a prompt: stdin is a terminal and `--non-interactive` was not
/// given.
pub fn is_interactive() -> bool {
    !NON_INTERACTIVE.load(std::sync::atomic::Ordering::Relaxed)
        && std::io::IsTerminal::is_terminal(&std::io::stdin())
}

/// Asks a yes/no question on the terminal.
pub fn confirm(question: &str) -> anyhow::Result<bool> {
    crate::output::prompt(&format!("{question} [yes/no] "));
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "yes" | "y"))
}
