//! The `cairn` binary: parses arguments, runs one command, renders errors and picks the exit
//! code (0 success, 1 failed operation, 2 bad usage or bad input). Everything else lives in the
//! library crates; commands are thin wrappers around them.

mod atomic_file;
mod cli;
mod commands;
mod env;
mod git;
mod output;
mod progress;
mod stack_config;
mod workspace;

use std::process::ExitCode;

use clap::Parser;

// The engine allocates many small maps and strings per resource; mimalloc keeps that fast and
// keeps memory from fragmenting across the parallel executor's threads (glibc's allocator spent
// a fifth of a 10,000-resource preview consolidating free lists).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An error caused by the user's input (exit code 2), as opposed to a failed operation (1).
#[derive(Debug)]
pub struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

pub fn bad_input(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(BadInput(message.into()))
}

/// A failed operation whose details were already printed; only the exit code is left to set.
#[derive(Debug)]
pub struct AlreadyReported(pub u8);

impl std::fmt::Display for AlreadyReported {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "failed (exit code {})", self.0)
    }
}

impl std::error::Error for AlreadyReported {}

/// Whether an error that reached the top is the user's input (exit 2), wherever it was caught:
/// a name a backend refused, a stack that does not exist, a passphrase or secret that does not
/// fit, a job that does not exist or cannot do what was asked. Each changed nothing.
fn is_bad_input(error: &anyhow::Error) -> bool {
    use cairn_state::BackendError;
    use cairn_state::jobs::JobError;
    use cairn_state::persister::StateError;
    let is_bad_backend_input = |error: &BackendError| {
        matches!(
            error,
            BackendError::InvalidName(_)
                | BackendError::StackNotFound(_)
                | BackendError::Secrets(_)
        )
    };
    error.chain().any(|cause| {
        cause.is::<BadInput>()
            || cause.is::<cairn_ops::ProjectError>()
            || cause
                .downcast_ref::<cairn_ops::OpsError>()
                .is_some_and(cairn_ops::OpsError::is_bad_input)
            || cause.is::<cairn_secrets::SecretsError>()
            || cause
                .downcast_ref::<cairn_app::AppError>()
                .is_some_and(cairn_app::AppError::is_bad_input)
            || matches!(
                cause.downcast_ref::<JobError>(),
                Some(JobError::NotFound(_) | JobError::Invalid(_))
            )
            || cause
                .downcast_ref::<BackendError>()
                .is_some_and(is_bad_backend_input)
            || match cause.downcast_ref::<StateError>() {
                Some(StateError::Secrets(_)) => true,
                Some(StateError::Backend(error)) => is_bad_backend_input(error),
                _ => false,
            }
    })
}

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let is_usage_error = error.use_stderr();
            // Printing help or the version is not an error.
            let _ = error.print();
            return if is_usage_error {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            output::error_line(&format!("cannot start the async runtime: {error}"));
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(commands::run(cli));
    // Providers may leave child processes or blocking reads behind after a hard stop; do not
    // wait for them.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if let Some(reported) = error.downcast_ref::<AlreadyReported>() {
                return ExitCode::from(reported.0);
            }
            // The program's diagnostics were printed where they were found.
            if let Some(cairn_ops::OpsError::Program) = error.downcast_ref() {
                return ExitCode::from(2);
            }
            output::error_chain(&error);
            if is_bad_input(&error) {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
