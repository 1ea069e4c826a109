//! The `command` provider: Pulumi's `command` package, local half (`command:local:Command` and
//! the `command:local:run` function).
//!
//! A `Command` runs its `create` command when created, its `update` command (or `create` again
//! when there is none) when any input other than `triggers` changes, and its `delete` command when
//! deleted; a change to `triggers` replaces it. Commands run through the `interpreter`
//! (`/bin/sh -c` by default) in `dir` (relative to the program's directory), with `environment`
//! added to Cairn's own environment and `stdin` piped in. The previous run's output is passed as
//! `PULUMI_COMMAND_STDOUT` and `PULUMI_COMMAND_STDERR` unless `addPreviousOutputInEnv` is false.
//! A command never outlives Cairn: it runs in the process group of a watchdog (`crate::watchdog`)
//! that ends the group when Cairn dies.
//!
//! Not supported yet: `assetPaths` and `archivePaths` (Cairn has no asset values in outputs), and
//! `logging` picks which streams go to the resource's log (`cairn logs`); both are always
//! captured as the `stdout` and `stderr` outputs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};

use async_trait::async_trait;
use cairn_core::schema::FunctionSchema;
use cairn_core::{PackageSchema, PropertyMap, PropertySchema, PropertyType, ResourceSchema, Value};
use cairn_provider::{
    CallContext, CheckResponse, CreateResponse, DiffResponse, LogSeverity, Provider, ProviderError,
    ProviderResult, ReadResponse,
};
use rand::RngCore as _;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};

use crate::properties::{apply_defaults, check_against_schema, failure, known_bool, property};

pub const COMMAND_RESOURCE: &str = "command:local:Command";
pub const COMMAND_RUN: &str = "command:local:run";

/// The environment variables that carry the previous run's output, as in Pulumi.
const PREVIOUS_STDOUT_VARIABLE: &str = "PULUMI_COMMAND_STDOUT";
const PREVIOUS_STDERR_VARIABLE: &str = "PULUMI_COMMAND_STDERR";

const DEFAULT_INTERPRETER: [&str; 2] = ["/bin/sh", "-c"];
const LOGGING_VALUES: [&str; 4] = ["stdout", "stderr", "stdoutAndStderr", "none"];

/// How much of a failed command's output goes into the error message.
const FAILURE_TAIL_LINES: usize = 20;
const FAILURE_TAIL_BYTES: usize = 4096;

/// The `command` provider. See the module docs.
pub struct CommandProvider {
    schema: PackageSchema,
}

impl CommandProvider {
    pub fn new() -> CommandProvider {
        CommandProvider {
            schema: command_schema(),
        }
    }

    fn resource_schema(&self) -> &ResourceSchema {
        self.schema
            .resource(COMMAND_RESOURCE)
            .expect("command_schema declares command:local:Command")
    }

    fn run_schema(&self) -> &FunctionSchema {
        self.schema
            .function(COMMAND_RUN)
            .expect("command_schema declares command:local:run")
    }
}

impl Default for CommandProvider {
    fn default() -> Self {
        CommandProvider::new()
    }
}

/// The inputs `Command` and `run` share: how to run a command.
fn base_inputs() -> BTreeMap<String, PropertySchema> {
    let strings = || PropertyType::Array(Box::new(PropertyType::String));
    BTreeMap::from([
        (
            "interpreter".to_owned(),
            property(
                strings(),
                "The program and arguments that run the command (default `[\"/bin/sh\", \"-c\"]`)",
            ),
        ),
        (
            "dir".to_owned(),
            property(
                PropertyType::String,
                "The directory to run the command in, relative to the program's directory; it \
                 must exist",
            ),
        ),
        (
            "environment".to_owned(),
            property(
                PropertyType::Map(Box::new(PropertyType::String)),
                "Additional environment variables for the command's process",
            ),
        ),
        (
            "stdin".to_owned(),
            property(
                PropertyType::String,
                "A string passed to the command's process as standard input",
            ),
        ),
        (
            "addPreviousOutputInEnv".to_owned(),
            property(
                PropertyType::Boolean,
                "Pass the previous run's stdout and stderr as `PULUMI_COMMAND_STDOUT` and \
                 `PULUMI_COMMAND_STDERR` (default `true`)",
            ),
        ),
        (
            "logging".to_owned(),
            property(
                PropertyType::String,
                "Which output to log: `stdout`, `stderr`, `stdoutAndStderr` or `none`; it does \
                 not affect the `stdout` and `stderr` outputs",
            ),
        ),
    ])
}

fn captured_outputs() -> BTreeMap<String, PropertySchema> {
    BTreeMap::from([
        (
            "stdout".to_owned(),
            property(
                PropertyType::String,
                "The standard output of the command's process",
            ),
        ),
        (
            "stderr".to_owned(),
            property(
                PropertyType::String,
                "The standard error of the command's process",
            ),
        ),
    ])
}

fn command_schema() -> PackageSchema {
    let mut command_inputs = base_inputs();
    command_inputs.extend([
        (
            "create".to_owned(),
            property(
                PropertyType::String,
                "The command to run once, when the resource is created; also on update when \
                 there is no `update` command",
            ),
        ),
        (
            "update".to_owned(),
            property(
                PropertyType::String,
                "The command to run when inputs other than `triggers` change (default: `create`)",
            ),
        ),
        (
            "delete".to_owned(),
            property(
                PropertyType::String,
                "The command to run when the resource is deleted",
            ),
        ),
        (
            "triggers".to_owned(),
            property(
                PropertyType::Array(Box::new(PropertyType::Any)),
                "Values of any type whose change replaces the resource",
            )
            .replaces(),
        ),
    ]);
    let mut command_outputs = command_inputs.clone();
    for output in command_outputs.values_mut() {
        output.replace_on_changes = false;
    }
    command_outputs.extend(captured_outputs());

    let mut run_inputs = base_inputs();
    run_inputs.insert(
        "command".to_owned(),
        property(PropertyType::String, "The command to run").required(),
    );
    let mut run_outputs = run_inputs.clone();
    run_outputs.extend(captured_outputs());

    PackageSchema {
        name: "command".to_owned(),
        config: Default::default(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        resources: vec![ResourceSchema {
            token: COMMAND_RESOURCE.to_owned(),
            description: "A local command run when the resource is created, updated or deleted; \
                          a non-zero exit status fails the step"
                .to_owned(),
            inputs: command_inputs,
            outputs: command_outputs,
            accepts_any_input: false,
        }],
        functions: vec![FunctionSchema {
            token: COMMAND_RUN.to_owned(),
            description: "Runs a local command on every preview and update and returns its output"
                .to_owned(),
            inputs: run_inputs,
            outputs: run_outputs,
        }],
    }
}

/// Which of the resource's commands is running, for error messages.
#[derive(Clone, Copy, Debug)]
enum CommandRole {
    Create,
    Update,
    Delete,
    Run,
}

impl CommandRole {
    /// How error messages refer to the command.
    fn label(self) -> &'static str {
        match self {
            CommandRole::Create => "the `create` command",
            CommandRole::Update => "the `update` command",
            CommandRole::Delete => "the `delete` command",
            CommandRole::Run => "the command",
        }
    }
}

/// What a finished command printed, trailing newline trimmed as Pulumi does.
#[derive(Clone, Debug, Default, PartialEq)]
struct CapturedOutput {
    stdout: String,
    stderr: String,
}

impl CapturedOutput {
    /// The output a previous run left in a resource's outputs.
    fn from_outputs(outputs: &PropertyMap) -> CapturedOutput {
        let text = |name: &str| {
            outputs
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        CapturedOutput {
            stdout: text("stdout"),
            stderr: text("stderr"),
        }
    }

    fn insert_into(self, outputs: &mut PropertyMap) {
        outputs.insert("stdout".to_owned(), Value::String(self.stdout));
        outputs.insert("stderr".to_owned(), Value::String(self.stderr));
    }
}

fn insert_unknown_output(outputs: &mut PropertyMap) {
    outputs.insert("stdout".to_owned(), Value::Unknown);
    outputs.insert("stderr".to_owned(), Value::Unknown);
}

/// Inputs as they should be stored: nulls dropped and `addPreviousOutputInEnv` defaulted.
fn with_defaults(inputs: &PropertyMap) -> PropertyMap {
    let mut inputs = inputs.clone();
    apply_defaults(
        &mut inputs,
        &[("addPreviousOutputInEnv", Value::Bool(true))],
    );
    inputs
}

fn command_text<'a>(inputs: &'a PropertyMap, name: &str) -> Option<&'a str> {
    inputs.get(name).and_then(Value::as_str)
}

/// Resolves `dir` against the program's directory.
fn working_directory(ctx: &CallContext, settings: &PropertyMap) -> PathBuf {
    match settings.get("dir").and_then(Value::as_str) {
        Some(dir) => ctx.cwd.join(dir),
        None => ctx.cwd.clone(),
    }
}

/// Runs one command with the `settings` (a resource's inputs or a `run` call's arguments) and
/// returns its output, or an error naming the command's role, its exit status and the tail of what
/// it printed. Environment values never appear in errors.
async fn run_command(
    ctx: &CallContext,
    role: CommandRole,
    command: &str,
    settings: &PropertyMap,
    previous_output: Option<&CapturedOutput>,
) -> ProviderResult<CapturedOutput> {
    let interpreter: Vec<String> = settings
        .get("interpreter")
        .and_then(Value::as_array)
        .map(|words| {
            words
                .iter()
                .filter_map(|word| word.as_str().map(str::to_owned))
                .collect()
        })
        .filter(|words: &Vec<String>| !words.is_empty())
        .unwrap_or_else(|| DEFAULT_INTERPRETER.map(str::to_owned).to_vec());
    let directory = working_directory(ctx, settings);
    if !directory.is_dir() {
        return Err(ProviderError::Failed(format!(
            "cannot run {}: directory `{}` does not exist",
            role.label(),
            directory.display()
        )));
    }

    // Started before the command, so that the command never runs unwatched.
    #[cfg(unix)]
    let (watchdog, group) = start_watchdog(role)?;
    let mut process = tokio::process::Command::new(&interpreter[0]);
    process
        .args(&interpreter[1..])
        .arg(command)
        .current_dir(&directory)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Dropping the child (on cancellation or any early return) must not leave it running.
        .kill_on_drop(true);
    // The watchdog's process group, so that cancelling can kill the whole tree the shell started,
    // so that the watchdog can do the same if Cairn dies, and so that a Ctrl-C at the terminal
    // reaches Cairn, which decides what to cancel, not the command.
    #[cfg(unix)]
    process.process_group(group);
    if let Some(environment) = settings.get("environment").and_then(Value::as_object) {
        for (name, value) in environment {
            if let Some(text) = value.to_interpolated_string() {
                process.env(name, text);
            }
        }
    }
    let add_previous_output = known_bool(settings, "addPreviousOutputInEnv").unwrap_or(true);
    if let Some(previous) = previous_output.filter(|_| add_previous_output) {
        if !previous.stdout.is_empty() {
            process.env(PREVIOUS_STDOUT_VARIABLE, &previous.stdout);
        }
        if !previous.stderr.is_empty() {
            process.env(PREVIOUS_STDERR_VARIABLE, &previous.stderr);
        }
    }
    let stdin_text = settings
        .get("stdin")
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
        .map(str::to_owned);
    process.stdin(if stdin_text.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });

    let mut child = match process.spawn() {
        Ok(child) => child,
        Err(error) => {
            // Nothing to watch: dismissed rather than dropped, it does not linger its grace period.
            #[cfg(unix)]
            watchdog.dismiss().await;
            return Err(ProviderError::Failed(format!(
                "cannot start {} with interpreter `{}`: {error}",
                role.label(),
                interpreter[0]
            )));
        }
    };
    let stdin_pipe = child.stdin.take();
    let stdout_pipe = child.stdout.take();
    let stderr_pipe = child.stderr.take();
    let completion = async {
        let feed_stdin = async {
            if let (Some(mut pipe), Some(text)) = (stdin_pipe, stdin_text) {
                // A command that exits without reading its input closes the pipe; that is its
                // business, not an error.
                let _ = pipe.write_all(text.as_bytes()).await;
            }
        };
        let (_, stdout, stderr, status) = tokio::join!(
            feed_stdin,
            read_all(stdout_pipe),
            read_all(stderr_pipe),
            child.wait()
        );
        (stdout, stderr, status)
    };
    let (stdout, stderr, status) = tokio::select! {
        finished = completion => finished,
        () = ctx.cancel.cancelled() => {
            // The watchdog is in the group and goes with it.
            #[cfg(unix)]
            kill_process_group(group);
            return Err(ProviderError::Cancelled);
        }
    };
    // Finished: what the command left running in the background on purpose is its business.
    // (Any other way out of this function drops the watchdog, which then ends the group.)
    #[cfg(unix)]
    watchdog.dismiss().await;
    let status = status
        .map_err(|error| ProviderError::Failed(format!("waiting for {}: {error}", role.label())))?;
    let output = CapturedOutput {
        stdout: trim_one_newline(String::from_utf8_lossy(&stdout?).into_owned()),
        stderr: trim_one_newline(String::from_utf8_lossy(&stderr?).into_owned()),
    };
    log_output(ctx, settings, &output, status.success());
    if !status.success() {
        return Err(ProviderError::Failed(failure_message(
            role,
            status,
            &output,
            &ctx.secret_outputs,
        )));
    }
    Ok(output)
}

async fn read_all(pipe: Option<impl AsyncRead + Unpin>) -> ProviderResult<Vec<u8>> {
    let mut buffer = Vec::new();
    if let Some(mut pipe) = pipe {
        pipe.read_to_end(&mut buffer)
            .await
            .map_err(|error| ProviderError::Failed(format!("reading command output: {error}")))?;
    }
    Ok(buffer)
}

/// Starts the watchdog that ends the command's process group if Cairn dies, and returns it with
/// the id of the group the command must join.
#[cfg(unix)]
fn start_watchdog(role: CommandRole) -> ProviderResult<(crate::watchdog::Watchdog, i32)> {
    let watchdog = crate::watchdog::Watchdog::start().map_err(|error| {
        ProviderError::Failed(format!(
            "cannot start {}: cannot start its watchdog (/bin/sh): {error}",
            role.label()
        ))
    })?;
    let group = watchdog.process_group().map_err(|error| {
        ProviderError::Failed(format!("cannot start {}: {error}", role.label()))
    })?;
    Ok((watchdog, group))
}

/// Kills the command's whole process group: killing only the shell would leave what it started
/// running.
#[cfg(unix)]
fn kill_process_group(group: i32) {
    if let Some(pid) = rustix::process::Pid::from_raw(group) {
        // The group may already be gone; `kill_on_drop` still kills the direct child.
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// Go's `strings.TrimSuffix(output, "\n")`: one newline, not all trailing whitespace.
fn trim_one_newline(mut text: String) -> String {
    if text.ends_with('\n') {
        text.pop();
    }
    text
}

/// Sends the command's output to the resource's log (`cairn logs`), as the `logging` input says
/// (Pulumi's default: both streams), one line per log entry.
fn log_output(ctx: &CallContext, settings: &PropertyMap, output: &CapturedOutput, succeeded: bool) {
    let logging = settings
        .get("logging")
        .and_then(Value::as_str)
        .unwrap_or("stdoutAndStderr");
    let streams: &[(&str, LogSeverity)] = match logging {
        "stdout" => &[("stdout", LogSeverity::Info)],
        "stderr" => &[("stderr", LogSeverity::Info)],
        "none" => &[],
        _ => &[("stdout", LogSeverity::Info), ("stderr", LogSeverity::Info)],
    };
    for (stream, severity) in streams {
        // A stream the resource declares secret is logged only when the command succeeded:
        // then it is a secret output, which the engine masks in the held log lines; a failed
        // command has no outputs the engine could learn it from.
        if !succeeded && ctx.secret_outputs.iter().any(|name| name == stream) {
            continue;
        }
        let text = if *stream == "stdout" {
            &output.stdout
        } else {
            &output.stderr
        };
        for line in text.lines() {
            ctx.log(*severity, line);
        }
    }
}

/// Why a command failed, with the end of what it printed; a stream the resource declares
/// secret (`additionalSecretOutputs: [stdout]`) is never quoted.
fn failure_message(
    role: CommandRole,
    status: ExitStatus,
    output: &CapturedOutput,
    secret_outputs: &[String],
) -> String {
    let how = match status.code() {
        Some(code) => format!("exited with code {code}"),
        None => format!("was killed ({status})"),
    };
    let mut message = format!("{} {how}", role.label());
    for (stream, text) in [("stderr", &output.stderr), ("stdout", &output.stdout)] {
        if text.trim().is_empty() {
            continue;
        }
        if secret_outputs.iter().any(|name| name == stream) {
            message.push_str(&format!("\n{stream}:\n[secret]"));
        } else {
            message.push_str(&format!("\n{stream}:\n{}", tail(text)));
        }
    }
    message
}

/// The last lines of a command's output, so that a chatty command's error stays readable.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(FAILURE_TAIL_LINES);
    let mut tail = lines[start..].join("\n");
    if tail.len() > FAILURE_TAIL_BYTES {
        let mut cut = tail.len() - FAILURE_TAIL_BYTES;
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        tail = format!("…{}", &tail[cut..]);
    } else if start > 0 {
        tail = format!("…\n{tail}");
    }
    tail
}

/// A unique id in Pulumi's form: the resource's name and eight random hex digits.
fn unique_id(ctx: &CallContext) -> String {
    let mut bytes = [0_u8; 4];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{}{}", ctx.urn.name(), hex::encode(bytes))
}

fn check_logging(inputs: &PropertyMap) -> Option<cairn_provider::CheckFailure> {
    let logging = inputs.get("logging")?.as_str()?;
    (!LOGGING_VALUES.contains(&logging)).then(|| {
        failure(
            "logging",
            format!(
                "`logging` must be `stdout`, `stderr`, `stdoutAndStderr` or `none`, not \
                 `{logging}`"
            ),
        )
    })
}

#[async_trait]
impl Provider for CommandProvider {
    fn package(&self) -> &str {
        "command"
    }

    fn schema(&self) -> &PackageSchema {
        &self.schema
    }

    async fn check(
        &self,
        _ctx: &CallContext,
        type_token: &str,
        _olds: Option<&PropertyMap>,
        news: &PropertyMap,
    ) -> ProviderResult<CheckResponse> {
        if type_token != COMMAND_RESOURCE {
            return Err(ProviderError::UnknownType(type_token.to_owned()));
        }
        let mut failures = check_against_schema(&self.resource_schema().inputs, news);
        failures.extend(check_logging(news));
        Ok(CheckResponse {
            inputs: with_defaults(news),
            failures,
        })
    }

    async fn diff(
        &self,
        _ctx: &CallContext,
        type_token: &str,
        _id: &str,
        old_inputs: &PropertyMap,
        _old_outputs: &PropertyMap,
        news: &PropertyMap,
    ) -> ProviderResult<DiffResponse> {
        if type_token != COMMAND_RESOURCE {
            return Err(ProviderError::UnknownType(type_token.to_owned()));
        }
        // `triggers` replaces (the schema says so); any other change is an update, which runs
        // `update`, or `create` again.
        Ok(cairn_provider::diff_by_schema(
            Some(self.resource_schema()),
            old_inputs,
            news,
        ))
    }

    async fn create(
        &self,
        ctx: &CallContext,
        type_token: &str,
        inputs: &PropertyMap,
        preview: bool,
    ) -> ProviderResult<CreateResponse> {
        if type_token != COMMAND_RESOURCE {
            return Err(ProviderError::UnknownType(type_token.to_owned()));
        }
        let mut outputs = with_defaults(inputs);
        if preview {
            insert_unknown_output(&mut outputs);
            return Ok(CreateResponse {
                id: String::new(),
                outputs,
            });
        }
        let output = match command_text(inputs, "create") {
            Some(create) => run_command(ctx, CommandRole::Create, create, &outputs, None).await?,
            None => CapturedOutput::default(),
        };
        output.insert_into(&mut outputs);
        Ok(CreateResponse {
            id: unique_id(ctx),
            outputs,
        })
    }

    async fn read(
        &self,
        _ctx: &CallContext,
        type_token: &str,
        id: &str,
        inputs: &PropertyMap,
        outputs: &PropertyMap,
    ) -> ProviderResult<Option<ReadResponse>> {
        // A command leaves nothing Cairn could look at; what it printed is in state.
        if type_token != COMMAND_RESOURCE {
            return Err(ProviderError::UnknownType(type_token.to_owned()));
        }
        Ok(Some(ReadResponse {
            id: id.to_owned(),
            inputs: inputs.clone(),
            outputs: outputs.clone(),
        }))
    }

    async fn update(
        &self,
        ctx: &CallContext,
        type_token: &str,
        _id: &str,
        _old_inputs: &PropertyMap,
        old_outputs: &PropertyMap,
        news: &PropertyMap,
        preview: bool,
    ) -> ProviderResult<PropertyMap> {
        if type_token != COMMAND_RESOURCE {
            return Err(ProviderError::UnknownType(type_token.to_owned()));
        }
        let mut outputs = with_defaults(news);
        if preview {
            insert_unknown_output(&mut outputs);
            return Ok(outputs);
        }
        let previous_output = CapturedOutput::from_outputs(old_outputs);
        let to_run = match command_text(news, "update") {
            Some(update) => Some((CommandRole::Update, update)),
            None => command_text(news, "create").map(|create| (CommandRole::Create, create)),
        };
        // With neither command, Pulumi keeps the previous output.
        let output = match to_run {
            Some((role, command)) => {
                run_command(ctx, role, command, &outputs, Some(&previous_output)).await?
            }
            None => previous_output,
        };
        output.insert_into(&mut outputs);
        Ok(outputs)
    }

    async fn delete(
        &self,
        ctx: &CallContext,
        type_token: &str,
        _id: &str,
        inputs: &PropertyMap,
        outputs: &PropertyMap,
    ) -> ProviderResult<()> {
        if type_token != COMMAND_RESOURCE {
            return Err(ProviderError::UnknownType(type_token.to_owned()));
        }
        // The outputs hold the inputs as they were last applied; fall back on the inputs for
        // state written without them.
        let settings = if outputs.is_empty() { inputs } else { outputs };
        let Some(delete) = command_text(settings, "delete") else {
            return Ok(());
        };
        let previous_output = CapturedOutput::from_outputs(outputs);
        run_command(
            ctx,
            CommandRole::Delete,
            delete,
            settings,
            Some(&previous_output),
        )
        .await?;
        Ok(())
    }

    async fn invoke(
        &self,
        ctx: &CallContext,
        function_token: &str,
        args: &PropertyMap,
    ) -> ProviderResult<PropertyMap> {
        if function_token != COMMAND_RUN {
            return Err(ProviderError::UnknownFunction(function_token.to_owned()));
        }
        let mut problems = check_against_schema(&self.run_schema().inputs, args);
        problems.extend(check_logging(args));
        if !problems.is_empty() {
            let reasons: Vec<String> = problems.into_iter().map(|problem| problem.reason).collect();
            return Err(ProviderError::Failed(format!(
                "invalid arguments to `{COMMAND_RUN}`: {}",
                reasons.join("; ")
            )));
        }
        let command = command_text(args, "command").ok_or_else(|| {
            ProviderError::Failed(format!("`{COMMAND_RUN}` needs a known `command`"))
        })?;
        let mut outputs = args.clone();
        outputs.retain(|_, value| !value.is_null());
        let output = run_command(ctx, CommandRole::Run, command, &outputs, None).await?;
        output.insert_into(&mut outputs);
        Ok(outputs)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use cairn_core::Urn;
    use tokio_util::sync::CancellationToken;

    use super::*;

    struct Fixture {
        directory: tempfile::TempDir,
        provider: CommandProvider,
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture {
                directory: tempfile::tempdir().unwrap(),
                provider: CommandProvider::new(),
            }
        }

        fn ctx(&self) -> CallContext {
            CallContext::new(
                Urn::new("dev", "project", None, COMMAND_RESOURCE, "build"),
                CancellationToken::new(),
                self.directory.path().to_path_buf(),
            )
        }

        fn path(&self, name: &str) -> PathBuf {
            self.directory.path().join(name)
        }

        fn read(&self, name: &str) -> String {
            std::fs::read_to_string(self.path(name)).unwrap()
        }

        async fn check(&self, news: PropertyMap) -> PropertyMap {
            let response = self
                .provider
                .check(&self.ctx(), COMMAND_RESOURCE, None, &news)
                .await
                .unwrap();
            assert_eq!(response.failures, vec![]);
            response.inputs
        }

        async fn create(&self, news: PropertyMap) -> ProviderResult<CreateResponse> {
            let inputs = self.check(news).await;
            self.provider
                .create(&self.ctx(), COMMAND_RESOURCE, &inputs, false)
                .await
        }
    }

    fn props(entries: &[(&str, Value)]) -> PropertyMap {
        entries
            .iter()
            .map(|(name, value)| (name.to_string(), value.clone()))
            .collect()
    }

    fn text(value: &str) -> Value {
        Value::string(value)
    }

    fn error_text(error: ProviderError) -> String {
        match error {
            ProviderError::Failed(message) => message,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn schema_matches_pulumi_command() {
        let provider = CommandProvider::new();
        let resource = provider.schema().resource(COMMAND_RESOURCE).unwrap();
        let inputs: Vec<&str> = resource.inputs.keys().map(String::as_str).collect();
        assert_eq!(
            inputs,
            vec![
                "addPreviousOutputInEnv",
                "create",
                "delete",
                "dir",
                "environment",
                "interpreter",
                "logging",
                "stdin",
                "triggers",
                "update"
            ]
        );
        let replacing: Vec<&str> = resource
            .inputs
            .iter()
            .filter(|(_, input)| input.replace_on_changes)
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(replacing, vec!["triggers"]);
        assert!(resource.outputs.contains_key("stdout"));
        assert!(resource.outputs.contains_key("stderr"));
        let run = provider.schema().function(COMMAND_RUN).unwrap();
        assert!(run.inputs["command"].required);
        assert!(run.outputs.contains_key("stdout"));
    }

    #[tokio::test]
    async fn check_defaults_add_previous_output_and_validates() {
        let fixture = Fixture::new();
        let inputs = fixture.check(props(&[("create", text("true"))])).await;
        assert_eq!(
            inputs,
            props(&[
                ("create", text("true")),
                ("addPreviousOutputInEnv", Value::Bool(true))
            ])
        );
        let response = fixture
            .provider
            .check(
                &fixture.ctx(),
                COMMAND_RESOURCE,
                None,
                &props(&[
                    ("logging", text("loud")),
                    (
                        "environment",
                        Value::Object(props(&[("A", Value::Bool(true))])),
                    ),
                    ("creat", text("x")),
                ]),
            )
            .await
            .unwrap();
        let reasons: Vec<&str> = response
            .failures
            .iter()
            .map(|failure| failure.reason.as_str())
            .collect();
        assert_eq!(
            reasons,
            vec![
                "unknown property `creat`",
                "`environment` must be a map of string, not object",
                "`logging` must be `stdout`, `stderr`, `stdoutAndStderr` or `none`, not `loud`",
            ]
        );
    }

    #[tokio::test]
    async fn preview_runs_nothing_and_leaves_output_unknown() {
        let fixture = Fixture::new();
        let inputs = fixture
            .check(props(&[("create", text("touch created"))]))
            .await;
        let response = fixture
            .provider
            .create(&fixture.ctx(), COMMAND_RESOURCE, &inputs, true)
            .await
            .unwrap();
        assert_eq!(response.outputs["stdout"], Value::Unknown);
        assert_eq!(response.outputs["stderr"], Value::Unknown);
        assert_eq!(response.outputs["create"], text("touch created"));
        let updated = fixture
            .provider
            .update(
                &fixture.ctx(),
                COMMAND_RESOURCE,
                "id",
                &inputs,
                &inputs,
                &inputs,
                true,
            )
            .await
            .unwrap();
        assert_eq!(updated["stdout"], Value::Unknown);
        assert!(!fixture.path("created").exists());
    }

    #[tokio::test]
    async fn create_runs_in_dir_with_environment_and_stdin() {
        let fixture = Fixture::new();
        std::fs::create_dir(fixture.path("sub")).unwrap();
        let response = fixture
            .create(props(&[
                (
                    "create",
                    text("cat > input.txt; pwd; echo \"$GREETING\"; echo warning >&2"),
                ),
                ("dir", text("sub")),
                (
                    "environment",
                    Value::Object(props(&[("GREETING", text("hello"))])),
                ),
                ("stdin", text("piped in\n")),
            ]))
            .await
            .unwrap();
        let sub = fixture.path("sub").canonicalize().unwrap();
        assert_eq!(
            response.outputs["stdout"],
            text(&format!("{}\nhello", sub.display()))
        );
        assert_eq!(response.outputs["stderr"], text("warning"));
        assert_eq!(fixture.read("sub/input.txt"), "piped in\n");
        assert!(response.id.starts_with("build"), "{}", response.id);
        assert_eq!(response.id.len(), "build".len() + 8);
        assert!(
            response.id["build".len()..]
                .chars()
                .all(|c| c.is_ascii_hexdigit())
        );
        assert_eq!(response.outputs["dir"], text("sub"));
        assert_eq!(response.outputs["stdin"], text("piped in\n"));
    }

    #[tokio::test]
    async fn only_one_trailing_newline_is_trimmed() {
        let fixture = Fixture::new();
        let response = fixture
            .create(props(&[("create", text("printf 'a\\n\\n'"))]))
            .await
            .unwrap();
        assert_eq!(response.outputs["stdout"], text("a\n"));
        assert_eq!(response.outputs["stderr"], text(""));
    }

    #[tokio::test]
    async fn create_without_a_command_has_empty_output() {
        let fixture = Fixture::new();
        let response = fixture.create(PropertyMap::new()).await.unwrap();
        assert_eq!(response.outputs["stdout"], text(""));
        assert_eq!(response.outputs["stderr"], text(""));
    }

    #[tokio::test]
    async fn custom_interpreter_gets_the_command_as_last_argument() {
        let fixture = Fixture::new();
        let response = fixture
            .create(props(&[
                ("create", text("print('from python')")),
                (
                    "interpreter",
                    Value::Array(vec![text("/bin/echo"), text("-n")]),
                ),
            ]))
            .await
            .unwrap();
        assert_eq!(response.outputs["stdout"], text("print('from python')"));
    }

    #[tokio::test]
    async fn non_zero_exit_fails_with_code_and_output_tail_but_no_environment() {
        let fixture = Fixture::new();
        let error = fixture
            .create(props(&[
                (
                    "create",
                    text("for i in $(seq 1 30); do echo line$i; done; echo oops >&2; exit 3"),
                ),
                (
                    "environment",
                    Value::Object(props(&[("TOKEN", text("hunter2"))])),
                ),
            ]))
            .await
            .unwrap_err();
        let message = error_text(error);
        assert!(
            message.starts_with(
                "the `create` command exited with code 3\nstderr:\noops\nstdout:\n…\nline11\n"
            ),
            "{message}"
        );
        assert!(message.ends_with("line30"), "{message}");
        assert!(!message.contains("line10\n"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[tokio::test]
    async fn missing_dir_fails_before_running() {
        let fixture = Fixture::new();
        let error = fixture
            .create(props(&[("create", text("true")), ("dir", text("nope"))]))
            .await
            .unwrap_err();
        let message = error_text(error);
        assert!(
            message.starts_with("cannot run the `create` command: directory `"),
            "{message}"
        );
        assert!(message.ends_with("nope` does not exist"), "{message}");
    }

    #[tokio::test]
    async fn update_runs_update_with_previous_output_or_create_again() {
        let fixture = Fixture::new();
        let olds = fixture
            .check(props(&[
                ("create", text("echo first")),
                ("update", text("echo \"was $PULUMI_COMMAND_STDOUT\"")),
            ]))
            .await;
        let created = fixture
            .provider
            .create(&fixture.ctx(), COMMAND_RESOURCE, &olds, false)
            .await
            .unwrap();
        assert_eq!(created.outputs["stdout"], text("first"));
        let news = fixture
            .check(props(&[
                ("create", text("echo first")),
                ("update", text("echo \"was $PULUMI_COMMAND_STDOUT\"")),
                ("environment", Value::Object(props(&[("X", text("1"))]))),
            ]))
            .await;
        let diff = fixture
            .provider
            .diff(
                &fixture.ctx(),
                COMMAND_RESOURCE,
                &created.id,
                &olds,
                &created.outputs,
                &news,
            )
            .await
            .unwrap();
        assert_eq!(diff.changed_keys, vec!["environment"]);
        assert!(!diff.requires_replacement());
        let updated = fixture
            .provider
            .update(
                &fixture.ctx(),
                COMMAND_RESOURCE,
                &created.id,
                &olds,
                &created.outputs,
                &news,
                false,
            )
            .await
            .unwrap();
        assert_eq!(updated["stdout"], text("was first"));
        assert_eq!(updated["environment"], news["environment"]);

        // Without `update`, a change runs `create` again.
        let news = fixture
            .check(props(&[("create", text("echo second"))]))
            .await;
        let updated = fixture
            .provider
            .update(
                &fixture.ctx(),
                COMMAND_RESOURCE,
                &created.id,
                &olds,
                &created.outputs,
                &news,
                false,
            )
            .await
            .unwrap();
        assert_eq!(updated["stdout"], text("second"));

        // With neither, the previous output stays.
        let updated = fixture
            .provider
            .update(
                &fixture.ctx(),
                COMMAND_RESOURCE,
                &created.id,
                &olds,
                &created.outputs,
                &fixture.check(PropertyMap::new()).await,
                false,
            )
            .await
            .unwrap();
        assert_eq!(updated["stdout"], text("first"));
    }

    #[tokio::test]
    async fn previous_output_is_withheld_when_asked() {
        let fixture = Fixture::new();
        let inputs = props(&[
            ("create", text("echo first")),
            (
                "update",
                text("echo \"was ${PULUMI_COMMAND_STDOUT:-nothing}\""),
            ),
            ("addPreviousOutputInEnv", Value::Bool(false)),
        ]);
        let created = fixture.create(inputs.clone()).await.unwrap();
        let checked = fixture.check(inputs).await;
        let updated = fixture
            .provider
            .update(
                &fixture.ctx(),
                COMMAND_RESOURCE,
                &created.id,
                &checked,
                &created.outputs,
                &checked,
                false,
            )
            .await
            .unwrap();
        assert_eq!(updated["stdout"], text("was nothing"));
    }

    #[tokio::test]
    async fn trigger_changes_replace() {
        let fixture = Fixture::new();
        let olds = fixture
            .check(props(&[
                ("create", text("true")),
                (
                    "triggers",
                    Value::Array(vec![text("a"), Value::Number(1.0)]),
                ),
            ]))
            .await;
        let news = fixture
            .check(props(&[
                ("create", text("true")),
                (
                    "triggers",
                    Value::Array(vec![text("b"), Value::Number(1.0)]),
                ),
            ]))
            .await;
        let diff = fixture
            .provider
            .diff(&fixture.ctx(), COMMAND_RESOURCE, "id", &olds, &olds, &news)
            .await
            .unwrap();
        assert_eq!(diff.changed_keys, vec!["triggers"]);
        assert_eq!(diff.replace_keys, vec!["triggers"]);
        let unchanged = fixture
            .provider
            .diff(&fixture.ctx(), COMMAND_RESOURCE, "id", &olds, &olds, &olds)
            .await
            .unwrap();
        assert!(!unchanged.has_changes());
    }

    #[tokio::test]
    async fn delete_runs_with_the_last_output_in_the_environment() {
        let fixture = Fixture::new();
        let created = fixture
            .create(props(&[
                ("create", text("echo made; echo grumble >&2")),
                (
                    "delete",
                    text("echo \"$PULUMI_COMMAND_STDOUT/$PULUMI_COMMAND_STDERR\" > deleted.txt"),
                ),
            ]))
            .await
            .unwrap();
        fixture
            .provider
            .delete(
                &fixture.ctx(),
                COMMAND_RESOURCE,
                &created.id,
                &PropertyMap::new(),
                &created.outputs,
            )
            .await
            .unwrap();
        assert_eq!(fixture.read("deleted.txt"), "made/grumble\n");
    }

    #[tokio::test]
    async fn failing_delete_reports_the_delete_command() {
        let fixture = Fixture::new();
        let created = fixture
            .create(props(&[("delete", text("exit 1"))]))
            .await
            .unwrap();
        let error = fixture
            .provider
            .delete(
                &fixture.ctx(),
                COMMAND_RESOURCE,
                &created.id,
                &PropertyMap::new(),
                &created.outputs,
            )
            .await
            .unwrap_err();
        assert_eq!(error_text(error), "the `delete` command exited with code 1");
    }

    #[tokio::test]
    async fn cancellation_kills_the_command_and_its_children_quickly() {
        let fixture = Fixture::new();
        let ctx = fixture.ctx();
        let inputs = fixture
            .check(props(&[(
                "create",
                text("sleep 30 & echo $! > child.pid; wait"),
            )]))
            .await;
        let cancel = ctx.cancel.clone();
        let pid_file = fixture.path("child.pid");
        tokio::spawn(async move {
            while !pid_file.exists() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            cancel.cancel();
        });
        let started = Instant::now();
        let error = fixture
            .provider
            .create(&ctx, COMMAND_RESOURCE, &inputs, false)
            .await
            .unwrap_err();
        assert!(matches!(error, ProviderError::Cancelled), "{error:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        // The background `sleep` was in the command's process group and must be gone too.
        let sleep_pid = fixture.read("child.pid").trim().to_owned();
        assert!(
            wait_until_gone(&sleep_pid, Duration::from_secs(2)).await,
            "the background sleep ({sleep_pid}) still runs"
        );
    }

    /// Whether process `pid` is gone within `limit`. A killed child of an (also killed) shell is
    /// reparented and reaped; until then it is a zombie (`Z`), which counts as gone.
    async fn wait_until_gone(pid: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let is_gone = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => true,
                Ok(stat) => stat.contains(") Z "),
            };
            if is_gone {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What happens when Cairn dies, short of dying: the engine drops a command's future on a
    /// second Ctrl-C or a custom timeout, which closes the watchdog's pipe as Cairn's death does.
    #[tokio::test]
    async fn a_dropped_command_is_ended_with_everything_it_started() {
        let fixture = Fixture::new();
        let inputs = fixture
            .check(props(&[(
                "create",
                text("echo $$ > shell.pid; sleep 30 & echo $! > child.pid; wait; touch marker"),
            )]))
            .await;
        let provider = CommandProvider::new();
        let ctx = fixture.ctx();
        let running = tokio::spawn(async move {
            provider
                .create(&ctx, COMMAND_RESOURCE, &inputs, false)
                .await
        });
        let child_pid_file = fixture.path("child.pid");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(&child_pid_file).map_or(true, |pid| !pid.ends_with('\n')) {
            assert!(Instant::now() < deadline, "the command never started");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        running.abort();
        assert!(running.await.unwrap_err().is_cancelled());
        for name in ["shell.pid", "child.pid"] {
            let pid = fixture.read(name).trim().to_owned();
            assert!(
                wait_until_gone(&pid, Duration::from_secs(5)).await,
                "{name} ({pid}) outlived the dropped command"
            );
        }
        assert!(!fixture.path("marker").exists());
    }

    #[tokio::test]
    async fn a_missing_interpreter_fails_naming_it() {
        let fixture = Fixture::new();
        let error = fixture
            .create(props(&[
                ("create", text("true")),
                (
                    "interpreter",
                    Value::Array(vec![text("/nonexistent/interpreter")]),
                ),
            ]))
            .await
            .unwrap_err();
        let message = error_text(error);
        assert!(
            message.starts_with(
                "cannot start the `create` command with interpreter `/nonexistent/interpreter`"
            ),
            "{message}"
        );
    }

    #[tokio::test]
    async fn a_finished_command_leaves_no_watchdog_behind() {
        let fixture = Fixture::new();
        // The fifth field of `stat` is the process group, led by the watchdog.
        let created = fixture
            .create(props(&[(
                "create",
                text("echo $$; cut -d' ' -f5 /proc/$$/stat"),
            )]))
            .await
            .unwrap();
        let stdout = created.outputs["stdout"].as_str().unwrap().to_owned();
        let (shell, group) = stdout.split_once('\n').unwrap();
        assert_ne!(shell, group, "the command leads its own group: no watchdog");
        assert!(
            wait_until_gone(group, Duration::ZERO).await,
            "the watchdog ({group}) outlived its command"
        );
    }

    #[tokio::test]
    async fn run_returns_output_and_arguments() {
        let fixture = Fixture::new();
        let outputs = fixture
            .provider
            .invoke(
                &fixture.ctx(),
                COMMAND_RUN,
                &props(&[
                    ("command", text("echo \"$NAME\"; cat")),
                    (
                        "environment",
                        Value::Object(props(&[("NAME", text("run"))])),
                    ),
                    ("stdin", text("in")),
                ]),
            )
            .await
            .unwrap();
        assert_eq!(outputs["stdout"], text("run\nin"));
        assert_eq!(outputs["stderr"], text(""));
        assert_eq!(outputs["command"], text("echo \"$NAME\"; cat"));

        let error = fixture
            .provider
            .invoke(
                &fixture.ctx(),
                COMMAND_RUN,
                &props(&[("command", text("exit 2"))]),
            )
            .await
            .unwrap_err();
        assert_eq!(error_text(error), "the command exited with code 2");

        let error = fixture
            .provider
            .invoke(&fixture.ctx(), COMMAND_RUN, &PropertyMap::new())
            .await
            .unwrap_err();
        assert_eq!(
            error_text(error),
            "invalid arguments to `command:local:run`: missing required property `command`"
        );
        let error = fixture
            .provider
            .invoke(&fixture.ctx(), "command:local:nope", &PropertyMap::new())
            .await
            .unwrap_err();
        assert!(matches!(error, ProviderError::UnknownFunction(_)));
    }
}
