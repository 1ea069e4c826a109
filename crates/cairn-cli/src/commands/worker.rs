//! `cairn worker`: runs the jobs of a queue in this backend (`cairn job submit`) until stopped.
//! SIGTERM or Ctrl-C drains: no new claims, running jobs finish up to `--drain-timeout`, then
//! go back to the queue; a second signal gives them back at once. Each event is a line (a JSON
//! object per line with `--json`).

use std::sync::Arc;

use cairn_compute::DriverRegistry;
use cairn_run::worker::{WorkerControl, WorkerEvent, WorkerOptions};

use crate::cli::WorkerArgs;
use crate::workspace::Workspace;
use crate::{bad_input, env, output};

pub async fn run(workspace: &Workspace, args: WorkerArgs) -> anyhow::Result<()> {
    cairn_state::jobs::validate_queue_name(&args.queue)
        .map_err(|error| bad_input(error.to_string()))?;
    if args.concurrency == 0 {
        return Err(bad_input("`--concurrency` must be at least 1"));
    }
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("{}:{}", env::host_name(), std::process::id()));
    let queue = workspace.job_queue()?;
    let mut options = WorkerOptions::new(&name, &args.queue, workspace.home.join("run"));
    options.concurrency = args.concurrency;
    options.drain_timeout = args.drain_timeout.into();
    let control = WorkerControl::default();
    let signals = watch_signals(control.clone())?;
    let json = workspace.global.json;
    output::progress(&format!(
        "worker `{name}` takes jobs of queue `{}`, {} at a time (SIGTERM or Ctrl-C drains)",
        args.queue, args.concurrency
    ));
    let events = Arc::new(move |event: WorkerEvent| report(json, &event));
    let worked = cairn_run::worker::work(
        queue,
        Arc::new(DriverRegistry::builtin()),
        options,
        control,
        events,
    )
    .await;
    signals.abort();
    worked?;
    Ok(())
}

fn report(json: bool, event: &WorkerEvent) {
    let (kind, job, text, details) = match event {
        WorkerEvent::Claimed { job, attempt } => (
            "claimed",
            Some(attempt.job),
            format!("job {} (attempt {}) started", attempt.job, attempt.number),
            serde_json::json!({ "attempt": attempt.number, "queue": job.spec.queue }),
        ),
        WorkerEvent::Finished { attempt, outcome } => (
            "finished",
            Some(attempt.job),
            format!(
                "job {} {}{}",
                attempt.job,
                outcome.state,
                outcome
                    .reason
                    .as_deref()
                    .map(|reason| format!(": {reason}"))
                    .unwrap_or_default()
            ),
            serde_json::json!({
                "attempt": attempt.number,
                "state": outcome.state,
                "exitCode": outcome.exit_code,
                "reason": outcome.reason,
            }),
        ),
        WorkerEvent::Requeued {
            attempt,
            reason,
            state,
        } => (
            "requeued",
            Some(attempt.job),
            format!("job {} given back ({reason}); it is {state}", attempt.job),
            serde_json::json!({ "attempt": attempt.number, "state": state, "reason": reason }),
        ),
        WorkerEvent::Lost { attempt } => (
            "lost",
            Some(attempt.job),
            format!(
                "job {} attempt {} is no longer this worker's; its run was stopped",
                attempt.job, attempt.number
            ),
            serde_json::json!({ "attempt": attempt.number }),
        ),
        WorkerEvent::Rescued(rescued) => (
            "rescued",
            None,
            format!(
                "rescued jobs of stopped workers: requeued {:?}, errored {:?}",
                rescued.requeued, rescued.errored
            ),
            serde_json::json!({ "requeued": rescued.requeued, "errored": rescued.errored }),
        ),
        WorkerEvent::RemovedLeftover { driver, instance } => (
            "removedLeftover",
            None,
            format!(
                "removed instance `{instance}` ({driver}) left by an earlier run of this worker"
            ),
            serde_json::json!({ "driver": driver, "instance": instance }),
        ),
        WorkerEvent::Problem(problem) => (
            "problem",
            None,
            format!("warning: {problem}"),
            serde_json::json!({ "message": problem }),
        ),
    };
    if json {
        let mut line = serde_json::json!({ "event": kind, "job": job });
        if let (Some(line), Some(details)) = (line.as_object_mut(), details.as_object()) {
            line.extend(details.clone());
        }
        output::json_line(&line);
    } else {
        output::progress(&text);
    }
}

/// The first SIGTERM or Ctrl-C drains; the second gives the running jobs back at once.
fn watch_signals(control: WorkerControl) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupts = signal(SignalKind::interrupt())?;
    let mut terminations = signal(SignalKind::terminate())?;
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = interrupts.recv() => {}
                _ = terminations.recv() => {}
            }
            if control.drain.is_cancelled() {
                output::progress("stopping now: running jobs go back to the queue");
                control.now.cancel();
                return;
            }
            output::progress(
                "draining: no new jobs; running ones finish (signal again to give them back now)",
            );
            control.drain.cancel();
        }
    }))
}
