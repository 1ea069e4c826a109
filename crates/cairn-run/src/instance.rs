//! One instance running one script (Travis's `Instance`): `start`, `upload_script`,
//! `run_script`, `stop`. Every instance of a run carries the tag `cairn.run=<run id>`; the
//! `Sweep` guard destroys whatever carries it when the run ends, also when the run's future is
//! dropped midway, so nothing is left behind.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use cairn_compute::{DestroyReason, DriverError, InstanceDriver, InstanceSpec};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::limits::RunLimits;
use crate::log::CappedLog;
use crate::result::{Reason, RunError, RunResult};
use crate::secrets::{Masker, SecretEnv};

/// The tag every instance of a run carries (its value is the run's ID).
pub const RUN_TAG: &str = "cairn.run";
/// Where the script goes, relative to the instance's working directory (where commands run).
pub const SCRIPT_PATH: &str = "./.cairn-run-script";
/// The process ID of the running script, for SIGTERM.
const PID_PATH: &str = "./.cairn-run.pid";

/// What the command that starts a script reads from its standard input first, and how: the
/// secret variables as `export` lines (read up to a marker line and evaluated, so they are in
/// no file and no instance property), then, when the driver defers the upload to the run, the
/// script itself, written line by line with the shell's own `read` and `printf` (an image
/// needs nothing more than `sh`). A script that cannot be written is told apart from the
/// script's own failure by a marker on stderr: it is an upload failure, not the script's.
struct Starter {
    reader: String,
    stdin: Option<Vec<u8>>,
    failure_marker: String,
}

impl Starter {
    fn new(run_id: &str, secret_env: &SecretEnv, script: Option<Vec<u8>>) -> Starter {
        // The run's ID is random: no line of a secret or a script is this by chance.
        let marker = format!("--cairn-run-{run_id}--");
        let failure_marker = format!("{marker}-not-written");
        if secret_env.is_empty() && script.is_none() {
            return Starter {
                reader: String::new(),
                stdin: None,
                failure_marker,
            };
        }
        let mut reader = format!(
            "__cairn_s=; while IFS= read -r __cairn_l; do [ \"$__cairn_l\" = '{marker}' ] && break; \
             __cairn_s=\"$__cairn_s$__cairn_l\n\"; done; eval \"$__cairn_s\"; unset __cairn_s __cairn_l; "
        );
        let mut stdin = secret_env.shell_exports();
        stdin.extend_from_slice(marker.as_bytes());
        stdin.push(b'\n');
        if let Some(script) = script {
            reader.push_str(&format!(
                "{{ while IFS= read -r __cairn_l || [ -n \"$__cairn_l\" ]; do printf '%s\\n' \"$__cairn_l\"; done; }} \
                 2>/dev/null > {SCRIPT_PATH} || {{ echo '{failure_marker}' >&2; exit 125; }}; unset __cairn_l; "
            ));
            stdin.extend_from_slice(&script);
        }
        Starter {
            reader,
            stdin: Some(stdin),
            failure_marker,
        }
    }

    /// Whether `chunk` says the script could not be written.
    fn failed_to_write(&self, chunk: &cairn_compute::OutputChunk) -> bool {
        chunk.stream == cairn_compute::Stream::Stderr
            && chunk.bytes.starts_with(self.failure_marker.as_bytes())
    }
}

/// How a run is cancelled: `graceful` sends the script SIGTERM and waits the grace period;
/// `hard` (or the grace period's end) kills it at once.
#[derive(Clone, Debug, Default)]
pub struct Cancel {
    pub graceful: CancellationToken,
    pub hard: CancellationToken,
}

/// Destroys the run's instances: the one it knows of, and any carrying the run's tag (one
/// whose provisioning was interrupted has no ID yet). On drop, unless `finish` ran, the same is
/// done in a task of its own.
pub(crate) struct Sweep {
    driver: Arc<dyn InstanceDriver>,
    run_id: String,
    id: Option<String>,
    done: bool,
}

impl Sweep {
    pub(crate) fn new(driver: Arc<dyn InstanceDriver>, run_id: &str) -> Sweep {
        Sweep {
            driver,
            run_id: run_id.to_owned(),
            id: None,
            done: false,
        }
    }

    /// Leaves the run's instances to another sweep.
    pub(crate) fn disarm(mut self) {
        self.done = true;
    }

    pub(crate) async fn finish(mut self) -> Result<(), RunError> {
        self.done = true;
        sweep(self.driver.clone(), self.run_id.clone(), self.id.take())
            .await
            .map_err(|error| RunError::Stop {
                run_id: self.run_id.clone(),
                error,
            })
    }
}

impl Drop for Sweep {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(sweep(
                self.driver.clone(),
                self.run_id.clone(),
                self.id.take(),
            ));
        }
    }
}

async fn sweep(
    driver: Arc<dyn InstanceDriver>,
    run_id: String,
    id: Option<String>,
) -> Result<(), cairn_compute::DriverError> {
    let mut first_error = None;
    if let Some(id) = id
        && let Err(error) = driver.destroy(&id, DestroyReason::Terminate).await
    {
        first_error = Some(error);
    }
    let tags = BTreeMap::from([(RUN_TAG.to_owned(), run_id)]);
    for left in driver.describe(&tags, false).await? {
        if let Err(error) = driver.destroy(&left.id, DestroyReason::Terminate).await {
            first_error.get_or_insert(error);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Where the script is in its life on this instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Fresh,
    Uploaded,
    Ran,
}

pub struct Instance {
    driver: Arc<dyn InstanceDriver>,
    id: String,
    run_id: String,
    /// The interpreter and its argument, from the script's shebang (else `/bin/sh`).
    interpreter: Vec<String>,
    stage: Stage,
    /// The script, when the driver has the run's command write it (`prefers_stdin_upload`).
    deferred_script: Option<Vec<u8>>,
    /// Provisioned by this value (`start`), so nothing ran in it before: no need to ask the
    /// instance whether an earlier script was left there, as for one `attach`ed.
    made_here: bool,
    sweep: Option<Sweep>,
}

impl Instance {
    /// Provisions an instance for run `run_id` (tagged with it) and waits until it is ready.
    pub async fn start(
        driver: Arc<dyn InstanceDriver>,
        mut spec: InstanceSpec,
        run_id: &str,
    ) -> Result<Instance, RunError> {
        spec.tags.insert(RUN_TAG.to_owned(), run_id.to_owned());
        let mut sweep = Sweep::new(driver.clone(), run_id);
        let id = driver.provision(spec).await.map_err(RunError::Start)?;
        sweep.id = Some(id.clone());
        Ok(Instance {
            driver,
            id,
            run_id: run_id.to_owned(),
            interpreter: Vec::new(),
            stage: Stage::Fresh,
            deferred_script: None,
            made_here: true,
            sweep: Some(sweep),
        })
    }

    /// An instance that already exists (started by someone else); `stop` still destroys it.
    pub fn attach(driver: Arc<dyn InstanceDriver>, id: &str, run_id: &str) -> Instance {
        let mut sweep = Sweep::new(driver.clone(), run_id);
        sweep.id = Some(id.to_owned());
        Instance {
            driver,
            id: id.to_owned(),
            run_id: run_id.to_owned(),
            interpreter: Vec::new(),
            stage: Stage::Fresh,
            deferred_script: None,
            made_here: false,
            sweep: Some(sweep),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Uploads the script. An instance that already has one, from this value or from any
    /// earlier run, is stale and refused.
    pub async fn upload_script(&mut self, script: &[u8]) -> Result<(), RunError> {
        if self.stage != Stage::Fresh {
            return Err(RunError::Stale(self.id.clone()));
        }
        if !self.made_here {
            let probe = vec![
                "/bin/sh".to_owned(),
                "-c".to_owned(),
                format!("test ! -e {SCRIPT_PATH}"),
            ];
            let (discard, _) = tokio::sync::mpsc::unbounded_channel();
            let clean = self
                .driver
                .exec(&self.id, &probe, discard)
                .await
                .map_err(RunError::Upload)?;
            if clean != 0 {
                return Err(RunError::Stale(self.id.clone()));
            }
        }
        if self.driver.prefers_stdin_upload() {
            self.deferred_script = Some(script.to_vec());
        } else {
            self.driver
                .copy_in(&self.id, SCRIPT_PATH, script.to_vec())
                .await
                .map_err(RunError::Upload)?;
        }
        self.interpreter = interpreter_of(script);
        self.stage = Stage::Uploaded;
        Ok(())
    }

    /// Runs the uploaded script, its output (stdout and stderr, merged as they come) going
    /// to `sink`, within `limits` (the hard timeout ends at `deadline`). A run stopped by a
    /// limit or a cancel returns at once; the script may still be running in the instance
    /// until `stop` removes it.
    pub async fn run_script(
        &mut self,
        sink: &mut (dyn Write + Send),
        secret_env: &SecretEnv,
        limits: &RunLimits,
        deadline: Instant,
        cancel: &Cancel,
    ) -> Result<RunResult, RunError> {
        match self.stage {
            Stage::Fresh => return Err(RunError::NoScript(self.id.clone())),
            Stage::Ran => return Err(RunError::Stale(self.id.clone())),
            Stage::Uploaded => self.stage = Stage::Ran,
        }
        // `$$` is the shell's PID, which `exec` hands to the script: SIGTERM reaches it.
        let script = self.deferred_script.take();
        let mut starter = Starter::new(&self.run_id, secret_env, script);
        let mut command = vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            format!("{}echo $$ > {PID_PATH} && exec \"$@\"", starter.reader),
            "cairn-run".to_owned(),
        ];
        command.extend(self.interpreter.iter().cloned());
        command.push(SCRIPT_PATH.to_owned());
        let (output, mut chunks) = tokio::sync::mpsc::unbounded_channel();
        let exec = self
            .driver
            .exec_with_stdin(&self.id, &command, starter.stdin.take(), output);
        tokio::pin!(exec);
        let mut capped = CappedLog::new(sink, limits.max_log);
        // Masked before the log is capped, so a cut cannot split a secret and show part of it.
        let mut log = Masker::new(&mut capped, secret_env);
        let mut silence_deadline = Instant::now() + limits.log_silence;
        let mut grace_deadline: Option<Instant> = None;
        let mut terminator: Option<tokio::task::JoinHandle<()>> = None;
        let mut exit_code = None;
        let mut failure = None;
        let mut not_written = false;
        let ended = loop {
            // Not biased: a script that floods its output must not starve the timers. What
            // the script wrote before it ended is drained below, so none is lost.
            tokio::select! {
                Some(chunk) = chunks.recv() => {
                    if starter.failed_to_write(&chunk) {
                        not_written = true;
                    } else {
                        let _ = log.write_all(&chunk.bytes);
                    }
                    silence_deadline = Instant::now() + limits.log_silence;
                }
                status = &mut exec => {
                    while let Ok(chunk) = chunks.try_recv() {
                        if starter.failed_to_write(&chunk) {
                            not_written = true;
                        } else {
                            let _ = log.write_all(&chunk.bytes);
                        }
                    }
                    match status {
                        Ok(code) => exit_code = Some(code),
                        Err(error) => failure = Some(error),
                    }
                    break if grace_deadline.is_some() { Reason::Cancelled } else { Reason::Finished };
                }
                () = cancel.hard.cancelled() => break Reason::Cancelled,
                () = sleep_until_some(grace_deadline) => break Reason::Cancelled,
                () = cancel.graceful.cancelled(), if grace_deadline.is_none() => {
                    grace_deadline = Some(Instant::now() + limits.grace);
                    terminator = Some(self.terminate());
                }
                () = tokio::time::sleep_until(deadline), if grace_deadline.is_none() => {
                    break Reason::HardTimeout { after_ms: millis(limits.hard_timeout) };
                }
                () = tokio::time::sleep_until(silence_deadline), if grace_deadline.is_none() => {
                    break Reason::LogSilence { after_ms: millis(limits.log_silence) };
                }
            }
        };
        if let Some(terminator) = terminator {
            terminator.abort();
        }
        // What may be the start of a secret was held back: it goes to the log now.
        let _ = log.finish();
        if let Some(error) = failure {
            capped.finish();
            return Err(RunError::Run(error));
        }
        if not_written {
            capped.finish();
            return Err(RunError::Upload(DriverError::Failed(format!(
                "the script could not be written to {SCRIPT_PATH} in instance `{}`",
                self.id
            ))));
        }
        let log_bytes = capped.total();
        let reason = if ended == Reason::Finished && capped.over_cap() {
            Reason::LogCap {
                cap_bytes: limits.max_log,
            }
        } else {
            ended
        };
        capped.finish();
        Ok(RunResult {
            run_id: self.run_id.clone(),
            completed: exit_code.is_some() && !matches!(reason, Reason::Cancelled),
            exit_code,
            reason,
            log_bytes,
        })
    }

    /// Sends SIGTERM to the script, from a task of its own so the run keeps reading output.
    fn terminate(&self) -> tokio::task::JoinHandle<()> {
        let driver = self.driver.clone();
        let id = self.id.clone();
        tokio::spawn(async move {
            let command = vec![
                "/bin/sh".to_owned(),
                "-c".to_owned(),
                format!("read pid < {PID_PATH} && kill -TERM \"$pid\""),
            ];
            // A cancel that comes the moment the script starts may find no PID written yet:
            // try again for a while; the grace period's end kills the script regardless.
            for _ in 0..20 {
                let (discard, _) = tokio::sync::mpsc::unbounded_channel();
                if let Ok(0) = driver.exec(&id, &command, discard).await {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        })
    }

    /// Stops and removes the instance (and anything else tagged with the run).
    pub async fn stop(mut self) -> Result<(), RunError> {
        match self.sweep.take() {
            Some(sweep) => sweep.finish().await,
            None => Ok(()),
        }
    }
}

fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The program that runs the script: its shebang's interpreter and optional argument (as the
/// kernel reads it: one argument, the rest of the line), else `/bin/sh`. Running it this way
/// needs no execute permission on the uploaded file.
pub fn interpreter_of(script: &[u8]) -> Vec<String> {
    let Some(rest) = script.strip_prefix(b"#!") else {
        return vec!["/bin/sh".to_owned()];
    };
    let line = rest.split(|byte| *byte == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let line = line.trim();
    match line.split_once(char::is_whitespace) {
        Some((program, argument)) => vec![program.to_owned(), argument.trim().to_owned()],
        None if !line.is_empty() => vec![line.to_owned()],
        None => vec!["/bin/sh".to_owned()],
    }
}

#[cfg(test)]
mod tests {
    use super::interpreter_of;

    #[test]
    fn the_shebang_names_the_interpreter() {
        assert_eq!(interpreter_of(b"echo hi\n"), ["/bin/sh"]);
        assert_eq!(interpreter_of(b"#!/bin/sh -e\nfalse\n"), ["/bin/sh", "-e"]);
        assert_eq!(
            interpreter_of(b"#!/usr/bin/env python3\n"),
            ["/usr/bin/env", "python3"]
        );
        assert_eq!(interpreter_of(b"#!/bin/bash"), ["/bin/bash"]);
        assert_eq!(interpreter_of(b"#!\n"), ["/bin/sh"]);
    }
}
