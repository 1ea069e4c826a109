//! Stack locks: one update at a time, the loser told who holds the stack; a dead holder's lock
//! is reported stale and released only by `cairn cancel`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{TestContext, wait_until};

const SLOW: &str = "name: locked\nruntime: yaml\nresources:\n  slow:\n    type: fake:Resource\n    properties:\n      latencyMs: 3000\n";

#[test]
fn a_second_update_fails_at_once_naming_the_holder() {
    let context = TestContext::with_program(SLOW);
    let first = context
        .command(&["up", "--yes", "--skip-preview"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the first holds the lock.
    let lock = context.home().join(".pulumi/locks/locked/dev.json");
    wait_until("the first update taking the lock", || lock.exists());
    let started = Instant::now();
    let second = context
        .cairn(&["up", "--yes", "--skip-preview"])
        .expect_code(1);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the loser waited"
    );
    assert!(
        second.stderr.contains("is locked by `cairn up"),
        "{}",
        second.stderr
    );
    assert!(
        second.stderr.contains(&format!("pid {}", first.id())),
        "{}",
        second.stderr
    );
    assert!(second.stderr.contains("cairn cancel"), "{}", second.stderr);
    let output = first.wait_with_output().unwrap();
    assert!(output.status.success());
    assert!(!lock.exists(), "the lock outlived its update");
    assert_eq!(context.resources().len(), 1);
    // A preview does not need the lock, and a later update gets it.
    context.cairn(&["up", "--yes"]).success();
}

#[test]
fn cancel_frees_a_stack_whose_update_was_killed() {
    let context = TestContext::with_program(SLOW);
    let mut first = context
        .command(&["up", "--yes", "--skip-preview"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lock = context.home().join(".pulumi/locks/locked/dev.json");
    // Killed mid-update: once its journal has the start of `slow`, which the checks below
    // expect pending (the update's history record comes earlier, before any step began).
    let journal = context.home().join(".pulumi/stacks/locked/dev.journal");
    wait_until("the update beginning `slow`", || {
        std::fs::read_to_string(&journal).is_ok_and(|text| text.contains("::slow"))
    });
    assert!(lock.exists());
    first.kill().unwrap();
    first.wait().unwrap();

    let blocked = context.cairn(&["up", "--yes"]).expect_code(1);
    assert!(blocked.stderr.contains("stale"), "{}", blocked.stderr);
    assert!(
        blocked.stderr.contains("cairn cancel"),
        "{}",
        blocked.stderr
    );
    // Without a terminal, cancel wants --yes and changes nothing without it.
    context.cairn(&["cancel"]).expect_code(2);
    assert!(lock.exists());
    let cancelled = context.cairn(&["cancel", "--yes"]).success();
    assert!(
        cancelled.stdout.contains("Cancelled the update"),
        "{}",
        cancelled.stdout
    );
    assert!(!lock.exists());
    let history: serde_json::Value = serde_json::from_str(
        &context
            .cairn(&["stack", "history", "--json"])
            .success()
            .stdout,
    )
    .unwrap();
    assert_eq!(history[0]["result"], "cancelled", "{history}");
    // What the killed update had in flight is settled before anything else runs.
    let refused = context
        .cairn(&["up", "--yes", "--skip-preview"])
        .expect_code(1);
    assert!(
        refused.stderr.contains("refresh --clear-pending"),
        "{}",
        refused.stderr
    );
    context
        .cairn(&["refresh", "--clear-pending", "--yes"])
        .success();
    context.cairn(&["up", "--yes", "--skip-preview"]).success();
    assert_eq!(context.resources().len(), 1);
}

#[test]
fn two_updates_started_together_one_runs_one_is_refused() {
    let context = TestContext::with_program(SLOW);
    let spawn = || {
        context
            .command(&["up", "--yes", "--skip-preview"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let started = Instant::now();
    let waiters: Vec<_> = [spawn(), spawn()]
        .into_iter()
        .map(|child| {
            std::thread::spawn(move || {
                let output = child.wait_with_output().unwrap();
                (output, started.elapsed())
            })
        })
        .collect();
    let results: Vec<(std::process::Output, Duration)> = waiters
        .into_iter()
        .map(|waiter| waiter.join().unwrap())
        .collect();
    let mut codes: Vec<Option<i32>> = results
        .iter()
        .map(|(output, _)| output.status.code())
        .collect();
    codes.sort();
    assert_eq!(codes, vec![Some(0), Some(1)], "exactly one runs");
    let (loser, refused_after) = results
        .iter()
        .find(|(output, _)| output.status.code() == Some(1))
        .unwrap();
    let stderr = String::from_utf8_lossy(&loser.stderr);
    assert!(stderr.contains("is locked by `cairn up"), "{stderr}");
    assert!(
        *refused_after < Duration::from_secs(1),
        "refused after {refused_after:?}"
    );
    assert_eq!(
        context.resources().len(),
        1,
        "the resource was created once"
    );
}
