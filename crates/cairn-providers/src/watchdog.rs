//! A watchdog that ends a command's process group when Cairn ends, however Cairn ends.
//!
//! Cancellation and timeouts kill a command's process group from inside Cairn, but a `kill -9`
//! (or a crash, or the OOM killer) gives Cairn no chance to: its commands would keep running,
//! and after `cancel` and `refresh --clear-pending` the next `up` would start the same command a
//! second time while the first one still runs. Linux's `PR_SET_PDEATHSIG` would need `pre_exec`,
//! which is `unsafe`; this needs none.
//!
//! The watchdog is a tiny `/bin/sh` that leads a process group of its own, into which the command
//! is then started. Its stdin is a pipe whose write end only Cairn holds (std opens pipes
//! close-on-exec, so no other child inherits it). Whenever that end closes, because Cairn died or
//! because Cairn dropped the command without finishing it, the kernel gives the watchdog's `read`
//! end of file, and the watchdog sends TERM to the whole group, waits a grace period, then sends
//! KILL to it (itself included, so it never lingers). It ignores TERM, HUP and INT itself, so that
//! its own TERM, or a terminal's hangup, cannot stop it before it has done its job.
//!
//! Starting the watchdog first and the command into its group means there is no instant at which
//! the command runs unwatched. When the command finishes, Cairn kills the watchdog alone and
//! reaps it: what the command left running in the background on purpose is not touched, as
//! before.

use std::io;
use std::process::Stdio;

use tokio::process::{Child, ChildStdin};

/// How long the command's processes get to exit after TERM before they are killed.
const GRACE_SECONDS: u32 = 2;

/// The watchdog's script: wait for end of file on stdin, then end the group it leads (`$$` is its
/// own process id, which is its group's id).
fn script() -> String {
    format!(
        "trap '' HUP INT TERM; read -r _; kill -TERM -$$; sleep {GRACE_SECONDS}; kill -KILL -$$"
    )
}

/// A running watchdog. Dropping it without [`Watchdog::dismiss`] ends the command's group.
pub(crate) struct Watchdog {
    process: Child,
    /// The write end of the watchdog's stdin. Never written to: closing it is the signal.
    _lifeline: Option<ChildStdin>,
}

impl Watchdog {
    /// Starts a watchdog in a new process group of its own.
    pub(crate) fn start() -> io::Result<Watchdog> {
        let mut process = tokio::process::Command::new("/bin/sh");
        process
            .arg("-c")
            .arg(script())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Not holding the program's directory, which a test or a user may remove.
            .current_dir("/")
            // Not `kill_on_drop`: on drop the closed pipe makes it end the group, then itself.
            .process_group(0);
        let mut process = process.spawn()?;
        let lifeline = process.stdin.take();
        Ok(Watchdog {
            process,
            _lifeline: lifeline,
        })
    }

    /// The id of the process group the command must join: the watchdog's own process id.
    pub(crate) fn process_group(&self) -> io::Result<i32> {
        self.process
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .ok_or_else(|| io::Error::other("the watchdog exited before the command started"))
    }

    /// Stops watching (the command has finished): kills the watchdog alone and reaps it.
    pub(crate) async fn dismiss(mut self) {
        // Killing it before the lifeline closes (when `self` drops) keeps it from seeing end of
        // file and ending the group. Errors mean it is already gone, which is what is wanted.
        let _ = self.process.start_kill();
        let _ = self.process.wait().await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;

    /// Whether a process is gone: no `/proc` entry, or a zombie waiting to be reaped by whoever
    /// inherited it.
    fn is_gone(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat.contains(") Z "),
        }
    }

    async fn wait_until_gone(pid: i32) -> bool {
        for _ in 0..250 {
            if is_gone(pid) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    fn start_in_group(group: i32, command: &str) -> Child {
        let mut process = tokio::process::Command::new("/bin/sh");
        process
            .args(["-c", command])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(group);
        process.spawn().unwrap()
    }

    #[tokio::test]
    async fn closing_the_lifeline_ends_the_group_and_the_watchdog() {
        let watchdog = Watchdog::start().unwrap();
        let group = watchdog.process_group().unwrap();
        let mut command = start_in_group(group, "sleep 30");
        // A command that ignores TERM needs the KILL after the grace period.
        let mut stubborn = start_in_group(group, "trap '' TERM; sleep 30 & wait");
        let command_pid = i32::try_from(command.id().unwrap()).unwrap();
        drop(watchdog);
        let status = tokio::time::timeout(Duration::from_secs(5), command.wait())
            .await
            .expect("the command outlived the watchdog's TERM")
            .unwrap();
        assert!(!status.success());
        assert!(is_gone(command_pid));
        let status = tokio::time::timeout(Duration::from_secs(10), stubborn.wait())
            .await
            .expect("a command ignoring TERM outlived the watchdog's KILL")
            .unwrap();
        assert!(!status.success());
        assert!(
            wait_until_gone(group).await,
            "the watchdog ({group}) outlived the group it ended"
        );
    }

    #[tokio::test]
    async fn a_dismissed_watchdog_ends_nothing_and_is_gone() {
        let watchdog = Watchdog::start().unwrap();
        let group = watchdog.process_group().unwrap();
        let mut command = start_in_group(group, "sleep 30");
        watchdog.dismiss().await;
        // Reaped, so it can no longer end anything: a dismissal is never taken for Cairn's death.
        assert!(is_gone(group), "a dismissed watchdog ({group}) still runs");
        assert!(
            command.try_wait().unwrap().is_none(),
            "the command was ended"
        );
        // The group outlives its leader; the test's own clean-up ends it.
        let pid = rustix::process::Pid::from_raw(group).unwrap();
        rustix::process::kill_process_group(pid, rustix::process::Signal::KILL).unwrap();
        command.wait().await.unwrap();
    }
}
