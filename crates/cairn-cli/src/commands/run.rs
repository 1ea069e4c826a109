//! `cairn run SCRIPT`: a Travis-style script run on a fresh instance (`cairn-run` does the
//! run; this reads the flags, the environment and the signals, and picks the exit code).
//! `--list-drivers` and `--help-driver NAME` show the drivers and their settings.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use cairn_compute::{DRIVER_INFO, DriverInfo, DriverRegistry};
use cairn_run::{Cancel, Reason, RunLimits, RunRequest, RunResult};

use crate::cli::{RunArgs, ScriptOptions};
use crate::workspace::Workspace;
use crate::{AlreadyReported, bad_input, env, output};

/// The exit codes of a run that did not complete (PRODUCT.md); README and `--help` say them.
const HARD_TIMEOUT: u8 = 124;
const LOG_SILENCE: u8 = 123;
const LOG_CAP: u8 = 122;
const INFRASTRUCTURE: u8 = 125;
const CANCELLED: u8 = 130;

pub async fn run(workspace: &Workspace, args: RunArgs) -> anyhow::Result<()> {
    if args.list_drivers {
        list_drivers(workspace.global.json);
        return Ok(());
    }
    if let Some(name) = &args.help_driver {
        return help_driver(workspace.global.json, info_of(name)?);
    }
    let info = info_of(&args.options.driver)?;
    let script = read_script(workspace, args.script.as_deref())?;
    let limits = RunLimits {
        grace: cairn_core::parse_go_duration(&args.grace)
            .map_err(|error| bad_input(format!("--grace: {error}")))?,
        ..limits_of(&args.options)?
    };
    let env = env_values(&args.options.env)?;
    let secret_env = secret_env(&args.options.secret_env)?;
    let run_id = cairn_run::new_run_id();
    let run_dir = workspace.home.join("run");
    let work_dir = cairn_run::work_dir_for(info.name, &run_dir, &run_id);
    let properties = cairn_run::instance_properties(
        info.name,
        args.options.image.as_deref(),
        &env,
        work_dir.as_deref(),
    )
    .map_err(bad_input)?;
    let settings = settings_of(info, &args.options.set, &run_dir)?;
    // Where the default `path` of `fake` and `dir` of `process` are.
    fs_err::create_dir_all(&run_dir)?;
    let request = RunRequest {
        run_id: run_id.clone(),
        script,
        properties,
        limits,
        work_dir,
        tags: Default::default(),
        secret_env,
        fence: None,
    };
    let json = workspace.global.json;
    let driver = match DriverRegistry::builtin()
        .build_from_strings(info.name, &settings)
        .await
    {
        Ok(driver) => driver,
        Err(cairn_compute::DriverError::Invalid(message)) => return Err(bad_input(message)),
        Err(error) => return finish_errored(json, &run_id, &format!("the driver: {error}")),
    };
    let cancel = Cancel::default();
    let signals = watch_signals(cancel.clone())?;
    // With --json, stdout is the result alone; the log goes to stderr.
    let mut sink = output::LogSink::new(json);
    let outcome = cairn_run::run(driver, request, &mut sink, &cancel).await;
    signals.abort();
    match outcome {
        Ok(result) => finish(json, &result),
        Err(error) => finish_errored(json, &run_id, &error.to_string()),
    }
}

/// The driver named `name`, or a bad-input error listing the drivers.
pub(crate) fn info_of(name: &str) -> anyhow::Result<&'static DriverInfo> {
    DriverRegistry::builtin().info(name).ok_or_else(|| {
        let known: Vec<&str> = DRIVER_INFO.iter().map(|info| info.name).collect();
        bad_input(format!(
            "unknown driver `{name}`; the drivers are: {}",
            known.join(", ")
        ))
    })
}

fn list_drivers(json: bool) {
    if json {
        let drivers: Vec<serde_json::Value> = DRIVER_INFO.iter().map(info_json).collect();
        output::json(&serde_json::Value::Array(drivers));
        return;
    }
    for info in DRIVER_INFO {
        output::line(&format!("{:<8} {}", info.name, info.human_name));
    }
}

fn info_json(info: &DriverInfo) -> serde_json::Value {
    let settings: serde_json::Map<String, serde_json::Value> = info
        .settings
        .iter()
        .map(|(name, help)| ((*name).to_owned(), serde_json::json!(help)))
        .collect();
    serde_json::json!({ "name": info.name, "humanName": info.human_name, "settings": settings })
}

fn help_driver(json: bool, info: &DriverInfo) -> anyhow::Result<()> {
    if json {
        output::json(&info_json(info));
        return Ok(());
    }
    output::line(&format!("{}: {}", info.name, info.human_name));
    output::line("");
    output::line("Settings (--set KEY=VALUE, or the environment variable):");
    let width = info
        .settings
        .iter()
        .map(|(name, _)| name.len())
        .max()
        .unwrap_or(0);
    for (name, help) in info.settings {
        output::line(&format!(
            "  {name:<width$}  {}",
            env::run_setting_var(info.name, name)
        ));
        output::line(&format!("  {:<width$}  {help}", ""));
    }
    Ok(())
}

/// Reads the script at `path` (relative to the project directory; `-` is standard input),
/// refusing what is not a regular file or is larger than 64 MiB.
pub(crate) fn read_script(workspace: &Workspace, path: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    let Some(path) = path else {
        return Err(bad_input("a script to run is needed"));
    };
    if path.as_os_str() == "-" {
        let mut script = Vec::new();
        std::io::stdin()
            .take(cairn_provider::files::MAX_READ_BYTES)
            .read_to_end(&mut script)
            .map_err(|error| bad_input(format!("reading the script from stdin: {error}")))?;
        return Ok(script);
    }
    let path = workspace.project_dir.join(path);
    cairn_provider::files::read_input_file(&path, cairn_provider::files::MAX_READ_BYTES)
        .map(String::into_bytes)
        .map_err(|error| bad_input(format!("reading the script: {error}")))
}

/// The limits the flags give (the default grace: `cairn run` reads its own `--grace`).
pub(crate) fn limits_of(args: &ScriptOptions) -> anyhow::Result<RunLimits> {
    let duration = |flag: &str, text: &str| -> anyhow::Result<Duration> {
        let duration = cairn_core::parse_go_duration(text)
            .map_err(|error| bad_input(format!("{flag}: {error}")))?;
        if duration.is_zero() {
            return Err(bad_input(format!("{flag} must be longer than 0")));
        }
        if duration > cairn_run::MAX_LIMIT {
            return Err(bad_input(format!(
                "{flag} {text} is longer than the longest a run may take ({})",
                cairn_run::format_duration(cairn_run::MAX_LIMIT)
            )));
        }
        Ok(duration)
    };
    let max_log = cairn_run::parse_size(&args.max_log)
        .map_err(|error| bad_input(format!("--max-log: {error}")))?;
    if max_log == 0 {
        return Err(bad_input("--max-log must be more than 0 bytes"));
    }
    Ok(RunLimits {
        hard_timeout: duration("--timeout", &args.timeout)?,
        log_silence: duration("--log-silence", &args.log_silence)?,
        max_log,
        ..RunLimits::default()
    })
}

/// `KEY=VALUE` flags as a map; `flag` names them in errors.
pub(crate) fn key_values(pairs: &[String], flag: &str) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
            _ => Err(bad_input(format!("{flag} `{pair}`: write it as KEY=VALUE"))),
        })
        .collect()
}

/// The variables `--env` gives, each name one the script's shell can see.
pub(crate) fn env_values(flags: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let env = key_values(flags, "--env")?;
    for name in env.keys() {
        cairn_run::secrets::validate_env_name(name)
            .map_err(|error| bad_input(format!("--env: {error}")))?;
    }
    Ok(env)
}

/// The variables `--secret-env` gives: `KEY=VALUE`, or `KEY` for the value of Cairn's own
/// environment variable (so the value is in no command line and no shell history).
pub(crate) fn secret_env(flags: &[String]) -> anyhow::Result<cairn_run::SecretEnv> {
    let values = flags
        .iter()
        .map(|flag| match flag.split_once('=') {
            Some((key, value)) => Ok((key.to_owned(), value.to_owned())),
            None => match std::env::var(flag) {
                Ok(value) => Ok((flag.clone(), value)),
                Err(_) => Err(bad_input(format!(
                    "--secret-env `{flag}`: Cairn's environment has no variable `{flag}`; set it, or write KEY=VALUE"
                ))),
            },
        })
        .collect::<anyhow::Result<BTreeMap<String, String>>>()?;
    cairn_run::SecretEnv::new(values).map_err(|error| bad_input(format!("--secret-env: {error}")))
}

/// The settings `--set` gives, each one the driver has.
pub(crate) fn flag_settings(
    info: &DriverInfo,
    flags: &[String],
) -> anyhow::Result<BTreeMap<String, String>> {
    let settings = key_values(flags, "--set")?;
    for key in settings.keys() {
        if !info.settings.iter().any(|(name, _)| name == key) {
            let known: Vec<&str> = info.settings.iter().map(|(name, _)| *name).collect();
            return Err(bad_input(format!(
                "the {} driver has no setting `{key}`; its settings are: {}",
                info.name,
                known.join(", ")
            )));
        }
    }
    Ok(settings)
}

/// The driver's settings: from `CAIRN_RUN_<DRIVER>_<SETTING>`, then `--set` (which wins), then
/// where Cairn keeps a driver's files when none was named.
fn settings_of(
    info: &DriverInfo,
    flags: &[String],
    run_dir: &std::path::Path,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut settings: BTreeMap<String, String> = info
        .settings
        .iter()
        .filter_map(|(name, _)| {
            env::var(&env::run_setting_var(info.name, name))
                .map(|value| ((*name).to_owned(), value))
        })
        .collect();
    settings.extend(flag_settings(info, flags)?);
    cairn_run::default_settings(info.name, run_dir, &mut settings);
    Ok(settings)
}

/// Ctrl-C once: SIGTERM to the script and the grace period; twice (or SIGTERM to Cairn): kill.
/// One listener each for the whole run, so a second signal is never missed between two.
/// The listeners are installed before the run starts, so no early Ctrl-C kills Cairn outright.
fn watch_signals(cancel: Cancel) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupts = signal(SignalKind::interrupt())?;
    let mut terminations = signal(SignalKind::terminate())?;
    Ok(tokio::spawn(async move {
        let mut first = true;
        loop {
            tokio::select! {
                _ = interrupts.recv() => {
                    if first {
                        first = false;
                        output::progress(
                            "cancelling: the script was sent SIGTERM; press Ctrl-C again to kill it now",
                        );
                        cancel.graceful.cancel();
                    } else {
                        cancel.hard.cancel();
                        return;
                    }
                }
                _ = terminations.recv() => {
                    cancel.hard.cancel();
                    return;
                }
            }
        }
    }))
}

fn exit_code_of(result: &RunResult) -> u8 {
    match (&result.reason, result.exit_code) {
        (Reason::Finished, Some(code)) => u8::try_from(code).unwrap_or(1),
        (Reason::Finished, None) => INFRASTRUCTURE,
        (Reason::HardTimeout { .. }, _) => HARD_TIMEOUT,
        (Reason::LogSilence { .. }, _) => LOG_SILENCE,
        (Reason::LogCap { .. }, _) => LOG_CAP,
        (Reason::Cancelled, _) => CANCELLED,
    }
}

fn finish(json: bool, result: &RunResult) -> anyhow::Result<()> {
    let code = exit_code_of(result);
    if json {
        output::json(&serde_json::json!({
            "runId": result.run_id,
            "completed": result.completed,
            "exitCode": result.exit_code,
            "reason": result.reason.kind(),
            "message": result.reason.message(),
            "logBytes": result.log_bytes,
            "status": code,
        }));
    }
    if result.reason != Reason::Finished {
        output::error_line(&result.reason.message());
    }
    if code == 0 {
        Ok(())
    } else {
        Err(AlreadyReported(code).into())
    }
}

fn finish_errored(json: bool, run_id: &str, message: &str) -> anyhow::Result<()> {
    if json {
        output::json(&serde_json::json!({
            "runId": run_id,
            "completed": false,
            "exitCode": null,
            "reason": "infrastructure",
            "message": message,
            "logBytes": 0,
            "status": INFRASTRUCTURE,
        }));
    }
    output::error_line(message);
    Err(AlreadyReported(INFRASTRUCTURE).into())
}
