//! `cairn job submit|ls|show|logs|cancel|restart`: the user's side of the job queue the backend
//! keeps (`cairn_state::jobs::JobQueue`); workers (`cairn worker`) take the jobs and run them.
//! `submit` takes `cairn run`'s flags and checks them as `cairn run` does before anything is
//! queued.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use cairn_state::jobs::{Job, JobError, JobId, JobQueue, JobSpec, JobState, validate_queue_name};

use crate::cli::{JobCommand, JobSubmitArgs};
use crate::commands::render;
use crate::commands::run::{
    env_values, flag_settings, info_of, limits_of, read_script, secret_env,
};
use crate::workspace::Workspace;
use crate::{bad_input, output};

/// How often `job logs --follow` asks for more of the log.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

pub async fn run(workspace: &Workspace, command: JobCommand) -> anyhow::Result<()> {
    let json = workspace.global.json;
    match command {
        JobCommand::Submit(args) => submit(workspace, args).await,
        JobCommand::Ls { queue, state } => {
            if let Some(queue) = &queue {
                validate_queue_name(queue).map_err(queue_error)?;
            }
            let state = state.as_deref().map(parse_state).transpose()?;
            let queue_of_jobs = workspace.job_queue()?;
            let jobs = queue_of_jobs.list(queue.as_deref(), state).await?;
            list(json, &jobs);
            Ok(())
        }
        JobCommand::Show { id } => {
            let job = existing(workspace.job_queue()?.as_ref(), id).await?;
            show(json, &job);
            Ok(())
        }
        JobCommand::Logs { id, follow } => {
            logs(workspace.job_queue()?.as_ref(), id, follow, json).await
        }
        JobCommand::Cancel { id } => cancel(json, workspace.job_queue()?.as_ref(), id).await,
        JobCommand::Restart { id } => restart(json, workspace.job_queue()?.as_ref(), id).await,
    }
}

async fn submit(workspace: &Workspace, args: JobSubmitArgs) -> anyhow::Result<()> {
    // Everything is checked before the queue is touched: bad input queues nothing.
    validate_queue_name(&args.queue).map_err(queue_error)?;
    let options = &args.options;
    let info = info_of(&options.driver)?;
    let limits = limits_of(options)?;
    let env = env_values(&options.env)?;
    let secret_env = secret_env(&options.secret_env)?;
    let settings = flag_settings(info, &options.set)?;
    check_setting_values(workspace, info.name, &settings).await?;
    // The instance's properties are made by the worker; this checks them as `cairn run` does
    // (the docker driver needs an image). The process driver's working directory is the
    // worker's, so any stands in for it here.
    let work_dir = (info.name == "process").then(|| Path::new("/"));
    cairn_run::instance_properties(info.name, options.image.as_deref(), &env, work_dir)
        .map_err(bad_input)?;
    let script = read_script(workspace, Some(&args.script))?;
    let script = String::from_utf8(script)
        .map_err(|_| bad_input("the script is not UTF-8 text; a job's script must be"))?;
    // Sealed here: the queue, its files and its tables never see the values.
    let sealed_env = if secret_env.is_empty() {
        None
    } else {
        let passphrase = crate::workspace::passphrase().map_err(bad_input)?;
        Some(cairn_run::secrets::seal(&passphrase, &secret_env).map_err(anyhow::Error::msg)?)
    };
    let spec = JobSpec {
        queue: args.queue.clone(),
        script,
        driver: info.name.to_owned(),
        settings,
        image: options.image.clone(),
        env,
        timeout_seconds: whole_seconds(limits.hard_timeout),
        log_silence_seconds: whole_seconds(limits.log_silence),
        max_log_bytes: limits.max_log,
        retries: args.retries,
        secret_env: sealed_env,
    };
    let id = workspace.job_queue()?.submit(spec).await?;
    if workspace.global.json {
        output::json(&serde_json::json!({ "id": id, "queue": args.queue }));
    } else {
        output::line(&id.to_string());
    }
    Ok(())
}

/// Builds the driver as a worker will, to refuse a setting's bad value now rather than
/// queue a job that can only error. A driver that cannot be reached from here (no Docker
/// Engine on this machine) is the worker's business, not an error.
async fn check_setting_values(
    workspace: &Workspace,
    driver: &str,
    settings: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let mut probe = settings.clone();
    cairn_run::default_settings(driver, &workspace.home.join("run"), &mut probe);
    match cairn_compute::DriverRegistry::builtin()
        .build_from_strings(driver, &probe)
        .await
    {
        Err(cairn_compute::DriverError::Invalid(message)) => Err(bad_input(message)),
        _ => Ok(()),
    }
}

/// A job's limits are whole seconds; a fraction rounds up, so no limit becomes 0.
fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

fn queue_error(error: JobError) -> anyhow::Error {
    bad_input(error.to_string())
}

fn parse_state(text: &str) -> anyhow::Result<JobState> {
    JobState::parse(text).ok_or_else(|| {
        let states: Vec<&str> = JobState::ALL.iter().map(|state| state.as_str()).collect();
        bad_input(format!(
            "`{text}` is not a job state; the states are: {}",
            states.join(", ")
        ))
    })
}

async fn existing(queue: &dyn JobQueue, id: JobId) -> anyhow::Result<Job> {
    queue
        .job(id)
        .await?
        .ok_or_else(|| bad_input(format!("no job {id}")))
}

fn list(json: bool, jobs: &[Job]) {
    if json {
        let jobs = jobs.iter().map(job_json).collect();
        output::json(&serde_json::Value::Array(jobs));
        return;
    }
    if jobs.is_empty() {
        output::progress("no jobs");
        return;
    }
    let mut rows = vec![[
        "ID".to_owned(),
        "QUEUE".to_owned(),
        "STATE".to_owned(),
        "ATTEMPT".to_owned(),
        "WORKER".to_owned(),
        "AGE/DURATION".to_owned(),
        "EXIT".to_owned(),
    ]];
    let now = cairn_ops::unix_now_millis();
    for job in jobs {
        rows.push([
            job.id.to_string(),
            job.spec.queue.clone(),
            state_text(job),
            job.attempt.to_string(),
            job.worker.clone().unwrap_or_else(|| "-".to_owned()),
            timing(job, now),
            job.exit_code
                .map_or_else(|| "-".to_owned(), |code| code.to_string()),
        ]);
    }
    for row in render::table(&rows) {
        output::line(&row);
    }
}

/// The state, with a cancel that its worker has not acted on yet.
fn state_text(job: &Job) -> String {
    if job.cancel_requested && !job.state.is_final() {
        format!("{} (cancel requested)", job.state)
    } else {
        job.state.to_string()
    }
}

/// How long the job has waited (`3m ago`, since it was submitted), run (`1m30s (running)`) or
/// took (`4m2s`).
fn timing(job: &Job, now: i64) -> String {
    match (job.started_ms, job.finished_ms) {
        (Some(started), Some(finished)) => span(finished - started),
        (Some(started), None) => format!("{} (running)", span(now - started)),
        (None, _) => format!("{} ago", span(now - job.created_ms)),
    }
}

/// A span of milliseconds in whole seconds, as Go writes durations (`1h2m3s`).
fn span(millis: i64) -> String {
    match u64::try_from(millis / 1000) {
        Ok(seconds) if seconds > 0 => cairn_run::format_duration(Duration::from_secs(seconds)),
        _ => "0s".to_owned(),
    }
}

fn time_json(millis: Option<i64>) -> serde_json::Value {
    millis.map_or(serde_json::Value::Null, |millis| {
        serde_json::json!(render::rfc3339_of_millis(millis))
    })
}

/// A job as `ls --json` and `show --json` print it (PRODUCT.md names the first fields); the
/// script only in `show`.
fn job_json(job: &Job) -> serde_json::Value {
    let spec = &job.spec;
    serde_json::json!({
        "id": job.id,
        "queue": spec.queue,
        "state": job.state.as_str(),
        "attempt": job.attempt,
        "exitCode": job.exit_code,
        "createdAt": time_json(Some(job.created_ms)),
        "startedAt": time_json(job.started_ms),
        "finishedAt": time_json(job.finished_ms),
        "worker": job.worker,
        "reason": job.reason,
        "cancelRequested": job.cancel_requested,
        "infraFailures": job.infra_failures,
        "driver": spec.driver,
        "image": spec.image,
        "env": spec.env,
        "secretEnv": secret_names(spec),
        "settings": spec.settings,
        "timeoutSeconds": spec.timeout_seconds,
        "logSilenceSeconds": spec.log_silence_seconds,
        "maxLogBytes": spec.max_log_bytes,
        "retries": spec.retries,
    })
}

/// The names of a job's secret variables (their values are sealed).
fn secret_names(spec: &JobSpec) -> Vec<String> {
    spec.secret_env
        .as_ref()
        .map(|sealed| sealed.values.keys().cloned().collect())
        .unwrap_or_default()
}

fn show(json: bool, job: &Job) {
    if json {
        let mut value = job_json(job);
        if let Some(object) = value.as_object_mut() {
            object.insert("script".to_owned(), serde_json::json!(job.spec.script));
        }
        output::json(&value);
        return;
    }
    let spec = &job.spec;
    let or_dash = |value: Option<String>| value.unwrap_or_else(|| "-".to_owned());
    let time = |millis: Option<i64>| or_dash(millis.map(render::rfc3339_of_millis));
    let pairs = |map: &std::collections::BTreeMap<String, String>| {
        if map.is_empty() {
            "-".to_owned()
        } else {
            // Escaped, so a value with a newline cannot pass for another field.
            map.iter()
                .map(|(key, value)| format!("{key}={}", value.escape_debug()))
                .collect::<Vec<_>>()
                .join(" ")
        }
    };
    let rows = [
        ["id".to_owned(), job.id.to_string()],
        ["queue".to_owned(), spec.queue.clone()],
        ["state".to_owned(), state_text(job)],
        ["attempt".to_owned(), job.attempt.to_string()],
        [
            "infrastructure failures".to_owned(),
            format!("{} (retries: {})", job.infra_failures, spec.retries),
        ],
        ["worker".to_owned(), or_dash(job.worker.clone())],
        [
            "exit code".to_owned(),
            or_dash(job.exit_code.map(|code| code.to_string())),
        ],
        ["reason".to_owned(), or_dash(job.reason.clone())],
        ["created".to_owned(), time(Some(job.created_ms))],
        ["started".to_owned(), time(job.started_ms)],
        ["finished".to_owned(), time(job.finished_ms)],
        ["driver".to_owned(), spec.driver.clone()],
        ["image".to_owned(), or_dash(spec.image.clone())],
        ["env".to_owned(), pairs(&spec.env)],
        [
            "secret env".to_owned(),
            match secret_names(spec).join(" ") {
                names if names.is_empty() => "-".to_owned(),
                names => format!("{names} (sealed)"),
            },
        ],
        ["settings".to_owned(), pairs(&spec.settings)],
        [
            "timeout".to_owned(),
            cairn_run::format_duration(Duration::from_secs(spec.timeout_seconds)),
        ],
        [
            "log silence".to_owned(),
            cairn_run::format_duration(Duration::from_secs(spec.log_silence_seconds)),
        ],
        [
            "max log".to_owned(),
            format!("{} bytes", spec.max_log_bytes),
        ],
    ];
    let rows: Vec<[String; 2]> = rows
        .into_iter()
        .map(|[key, value]| [format!("{key}:"), value])
        .collect();
    for row in render::table(&rows) {
        output::line(&row);
    }
    output::line("script:");
    for line in spec.script.lines() {
        output::line(&format!("  {line}"));
    }
}

/// Prints the current attempt's log; with `follow`, keeps printing what is appended until the
/// job is finished. When the job moves to a new attempt (its worker died and another took it),
/// the new attempt's log is printed from its beginning, after a line on stderr.
async fn logs(queue: &dyn JobQueue, id: JobId, follow: bool, json: bool) -> anyhow::Result<()> {
    match print_logs(queue, id, follow, json).await {
        // The reader went away (`cairn job logs 7 | head`): output ends quietly.
        Err(error)
            if error
                .downcast_ref::<std::io::Error>()
                .is_some_and(|error| error.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// Where a job's log goes: the bytes as they are, or (`--json`) one JSON object per chunk,
/// `{"attempt": N, "text": "..."}`.
enum LogOutput {
    Raw(output::LogSink),
    Json,
}

impl LogOutput {
    fn write(&mut self, attempt: u32, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            LogOutput::Raw(sink) => {
                sink.write_all(bytes)?;
                sink.flush()
            }
            LogOutput::Json if bytes.is_empty() => Ok(()),
            LogOutput::Json => {
                let line = serde_json::json!({
                    "attempt": attempt,
                    "text": String::from_utf8_lossy(bytes),
                });
                let mut stdout = std::io::stdout().lock();
                writeln!(stdout, "{line}")?;
                stdout.flush()
            }
        }
    }
}

async fn print_logs(
    queue: &dyn JobQueue,
    id: JobId,
    follow: bool,
    json: bool,
) -> anyhow::Result<()> {
    let mut sink = if json {
        LogOutput::Json
    } else {
        LogOutput::Raw(output::LogSink::new(false))
    };
    // The job is always read before its log: when it was already finished, the log read after
    // it is the whole of its last attempt's.
    let mut job = existing(queue, id).await?;
    if !follow {
        sink.write(job.attempt, &queue.logs(id, 0).await?)?;
        return Ok(());
    }
    let mut attempt = job.attempt;
    let mut offset = 0u64;
    loop {
        let bytes = queue.logs(id, offset).await?;
        let after = existing(queue, id).await?;
        if after.attempt != attempt {
            // The log just read may be of either attempt: it is dropped, and the new
            // attempt's read from its start.
            if attempt > 0 {
                output::progress(&format!("-- attempt {} --", after.attempt));
            }
            attempt = after.attempt;
            offset = 0;
            job = after;
            continue;
        }
        offset += bytes.len() as u64;
        sink.write(attempt, &bytes)?;
        if job.state.is_final() {
            return Ok(());
        }
        let is_final = after.state.is_final();
        job = after;
        if !is_final {
            tokio::time::sleep(FOLLOW_POLL).await;
        }
    }
}

async fn cancel(json: bool, queue: &dyn JobQueue, id: JobId) -> anyhow::Result<()> {
    let before = existing(queue, id).await?;
    if before.state.is_final() {
        return Err(bad_input(format!(
            "job {id} is already {}; there is nothing to cancel",
            before.state
        )));
    }
    let state = queue.cancel(id).await?;
    let cancel_requested = state.is_claimed();
    if json {
        output::json(&serde_json::json!({
            "id": id,
            "state": state.as_str(),
            "cancelRequested": cancel_requested,
        }));
    } else if cancel_requested {
        output::line(&format!(
            "job {id}: cancel requested (it is {state}; its worker stops it)"
        ));
    } else {
        output::line(&format!("job {id}: {state}"));
    }
    Ok(())
}

async fn restart(json: bool, queue: &dyn JobQueue, id: JobId) -> anyhow::Result<()> {
    existing(queue, id).await?;
    queue.restart(id).await?;
    let state = existing(queue, id).await?.state;
    if json {
        output::json(&serde_json::json!({ "id": id, "state": state.as_str() }));
    } else {
        output::line(&format!("job {id}: {state}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_limits_round_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::from_secs(90)), 90);
        assert_eq!(whole_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::ZERO), 0);
    }

    #[test]
    fn job_spans_are_whole_seconds_as_go_writes_them() {
        assert_eq!(span(0), "0s");
        assert_eq!(span(999), "0s");
        assert_eq!(span(-5000), "0s");
        assert_eq!(span(90_400), "1m30s");
        assert_eq!(span(3_723_000), "1h2m3s");
    }
}
