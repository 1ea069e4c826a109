//! End-to-end tests: the real `cairn` binary in a temporary project and `CAIRN_HOME`, checking
//! output, exit codes and the resulting state. One test binary for the whole CLI.

// Test helpers panic on purpose: a failed setup step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod apps;
mod compute;
mod config;
mod corruption;
mod docker;
mod errors;
mod hardening;
mod history;
mod import;
mod jobs;
mod lifecycle;
mod limits;
mod live;
mod locks;
mod plugins;
mod postgres;
mod programs;
mod providers;
mod pulumi_import;
mod rendered;
mod router;
mod run;
mod secrets;
mod signals;
mod stack_admin;
mod stacks;
mod state_edits;
mod templates;
mod torture;
mod workers;
