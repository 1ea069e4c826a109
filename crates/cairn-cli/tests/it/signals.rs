//! Ctrl-C: once finishes the steps in flight and saves; twice stops at once and records the
//! steps in flight as pending operations.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::{TestContext, wait_until};

const SLOW_PROGRAM: &str = "name: slow\nruntime: yaml\nresources:\n  r0:\n    type: fake:Resource\n    properties:\n      latencyMs: 2000\n  r1:\n    type: fake:Resource\n    properties:\n      latencyMs: 2000\n  r2:\n    type: fake:Resource\n    properties:\n      latencyMs: 2000\n  r3:\n    type: fake:Resource\n    properties:\n      latencyMs: 2000\n";

/// Starts `cairn up` with two steps at a time and waits until both are in flight.
fn start_slow_update(context: &TestContext) -> Child {
    let mut child = context
        .command(&["up", "--yes", "--skip-preview", "--parallel", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut n_creating = 0;
    let mut lines = stderr.lines();
    while n_creating < 2 {
        let line = lines
            .next()
            .expect("cairn ended before its steps started")
            .unwrap();
        if line.contains("fake:index:Resource") && line.contains("creating") {
            n_creating += 1;
        }
    }
    // Keep draining stderr so the process never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    child
}

fn interrupt(child: &Child) {
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn created_names(context: &TestContext) -> Vec<String> {
    let mut names = context.resource_names();
    names.sort();
    names
}

#[test]
fn one_interrupt_finishes_in_flight_steps_and_saves() {
    let context = TestContext::with_program(SLOW_PROGRAM);
    let child = start_slow_update(&context);
    interrupt(&child);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("interrupted"), "{stdout}");
    assert_eq!(
        created_names(&context),
        vec!["r0", "r1"],
        "the two in flight finished"
    );
    let pending = &context.export()["deployment"]["pending_operations"];
    assert!(pending.as_array().is_none_or(Vec::is_empty), "{pending}");
    // The next update picks up where this one stopped.
    let run = context.cairn(&["up", "--yes", "--skip-preview"]).success();
    assert!(run.stdout.contains("2 created"), "{}", run.stdout);
}

/// How many `begin` records the stack's journals hold (steps whose pending operation is
/// recorded: a step is shown as started a moment before its record is durable).
fn begun_in_journals(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| entry.path())
        .map(|path| {
            if path.is_dir() {
                begun_in_journals(&path)
            } else if path
                .extension()
                .is_some_and(|extension| extension == "journal")
            {
                std::fs::read_to_string(&path)
                    .unwrap_or_default()
                    .matches("\"kind\":\"begin\"")
                    .count()
            } else {
                0
            }
        })
        .sum()
}

#[test]
fn two_interrupts_leave_in_flight_steps_pending() {
    let context = TestContext::with_program(SLOW_PROGRAM);
    let child = start_slow_update(&context);
    // Both steps' pending operations are on disk before the interrupts (under load, the
    // journal's commit may come well after the steps show as started).
    wait_until("both steps recorded as begun", || {
        begun_in_journals(context.root.path()) >= 2
    });
    interrupt(&child);
    std::thread::sleep(std::time::Duration::from_millis(200));
    interrupt(&child);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(created_names(&context).is_empty());
    let pending = context.export()["deployment"]["pending_operations"].clone();
    let mut pending: Vec<(String, String)> = pending
        .as_array()
        .unwrap()
        .iter()
        .map(|operation| {
            (
                operation["type"].as_str().unwrap().to_owned(),
                operation["resource"]["urn"]
                    .as_str()
                    .unwrap()
                    .rsplit("::")
                    .next()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    // Both began at once; their order in the journal is whichever reached it first.
    pending.sort();
    assert_eq!(
        pending,
        vec![
            ("creating".to_owned(), "r0".to_owned()),
            ("creating".to_owned(), "r1".to_owned())
        ]
    );
    let preview = context.cairn(&["preview"]).success();
    assert!(
        preview.stderr.contains("did not finish"),
        "{}",
        preview.stderr
    );
}

/// A command whose shell and background child record their process ids, then finish slowly.
const COMMAND_PROGRAM: &str = "name: slow-command\nruntime: yaml\nresources:\n  slow:\n    type: command:local:Command\n    properties:\n      create: \"echo $$ > shell.pid; sleep 30 & echo $! > child.pid; wait; touch marker\"\n";

/// Whether process `pid` is gone: no `/proc` entry, or a zombie waiting for whoever inherited it.
fn is_gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.contains(") Z "),
    }
}

/// `kill -9` gives Cairn no chance to stop its commands; their watchdog must. Otherwise the
/// command would still run when the next `up` (after `cancel` and `refresh --clear-pending`)
/// starts it again.
#[test]
fn kill_9_of_cairn_ends_the_commands_it_was_running() {
    let context = TestContext::with_program(COMMAND_PROGRAM);
    let mut child = context.spawn(&["up", "--yes", "--skip-preview"]);
    let child_pid_file = context.project().join("child.pid");
    wait_until("the command's start", || {
        std::fs::read_to_string(&child_pid_file).is_ok_and(|pid| pid.ends_with('\n'))
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    for name in ["shell.pid", "child.pid"] {
        let pid = context.read(name).trim().to_owned();
        assert!(!pid.is_empty(), "{name} is empty");
        while !is_gone(&pid) {
            assert!(
                Instant::now() < deadline,
                "the command's {name} ({pid}) outlived cairn"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert!(!context.project().join("marker").exists());
    // The interrupted create is a pending operation, as after any crash.
    context.cairn(&["cancel", "--yes"]).success();
    let pending = &context.export()["deployment"]["pending_operations"];
    assert_eq!(pending.as_array().map(Vec::len), Some(1), "{pending}");
}
