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
    check_worker_name(&name)?;
    let queue = workspace.job_queue()?;
    wait_for_namesake(queue.as_ref(), &name).await?;
    let mut options = WorkerOptions::new(&name, &args.queue, workspace.home.join("run"));
    options.concurrency = args.concurrency;
    options.drain_timeout = args.drain_timeout.into();
    // Jobs with secret variables need it; a worker never prompts for it.
    options.passphrase = crate::workspace::passphrase_from_environment()
        .transpose()
        .map_err(|error| crate::bad_input(format!("reading the passphrase: {error}")))?
        .map(cairn_run::Passphrase);
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

/// A worker's name: what `job ls` shows and what tags its instances, so letters, digits and
/// `-`, `_`, `.`, `:`, `@`, 1 to 100 of them.
fn check_worker_name(name: &str) -> anyhow::Result<()> {
    let is_valid = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@'));
    if is_valid {
        Ok(())
    } else {
        Err(bad_input(format!(
            "`{name}` is not a worker name: use 1 to 100 letters, digits, `-`, `_`, `.`, `:` or `@`"
        )))
    }
}

/// A worker started under a name removes the instances an earlier life of that name left, so
/// two live workers may not share one. Claims of the name whose leases still run are waited
/// out (a worker just killed); claims still renewed after a lease's time belong to a live
/// worker, and this one refuses to start.
async fn wait_for_namesake(
    queue: &dyn cairn_state::jobs::JobQueue,
    name: &str,
) -> anyhow::Result<()> {
    use cairn_state::jobs::JobState;
    let deadline =
        tokio::time::Instant::now() + cairn_run::worker::LEASE + std::time::Duration::from_secs(2);
    let mut announced = false;
    loop {
        let mut held = Vec::new();
        for state in [JobState::Received, JobState::Started] {
            held.extend(
                queue
                    .list(None, Some(state))
                    .await?
                    .into_iter()
                    .filter(|job| job.worker.as_deref() == Some(name))
                    .filter(|job| {
                        job.lease_expires_ms
                            .is_some_and(|at| at > cairn_ops::unix_now_millis())
                    })
                    .map(|job| job.id),
            );
        }
        let Some(first) = held.first() else {
            return Ok(());
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(bad_input(format!(
                "a worker named `{name}` is running (it holds job {first}); give each worker a name of its own (`--name`)"
            )));
        }
        if !announced {
            output::progress(&format!(
                "waiting for the leases of a worker named `{name}` to run out (job {first}): it may still be running"
            ));
            announced = true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
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
            // Given back past its retries, the job ended: reported as every other end is.
            if state.is_final() {
                "finished"
            } else {
                "requeued"
            },
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
                "removed instance `{instance}` ({driver}), left running by a worker that stopped"
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
