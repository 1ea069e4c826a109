//! Ctrl-C: once finishes the steps in flight and saves; twice stops at once and records the
//! steps in flight as pending operations.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use crate::support::TestContext;

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

#[test]
fn two_interrupts_leave_in_flight_steps_pending() {
    let context = TestContext::with_program(SLOW_PROGRAM);
    let child = start_slow_update(&context);
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
