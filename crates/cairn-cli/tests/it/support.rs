//! `TestContext`: a temporary project directory and `CAIRN_HOME`, a fixed passphrase, and
//! helpers to run `cairn` and read its state.

use std::path::{Path, PathBuf};
use std::process::Output;

pub const PASSPHRASE: &str = "test-passphrase";

pub struct TestContext {
    pub root: tempfile::TempDir,
}

/// What one run of `cairn` produced.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Panics with the whole output unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "expected exit code {code}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn success(self) -> Run {
        self.expect_code(0)
    }
}

impl TestContext {
    /// A project with `program` as its `Cairn.yaml` and a selected stack `dev`.
    pub fn with_program(program: &str) -> TestContext {
        let context = TestContext::new();
        context.write_program(program);
        context.cairn(&["stack", "init", "dev"]).success();
        context
    }

    /// As `with_program`, on the backend at `url` (`cairn login URL` first).
    pub fn with_program_on(program: &str, url: &str) -> TestContext {
        let context = TestContext::new();
        context.write_program(program);
        context.cairn(&["login", url]).success();
        context.cairn(&["stack", "init", "dev"]).success();
        context
    }

    pub fn new() -> TestContext {
        let root = tempfile::tempdir().expect("creating a temporary directory");
        std::fs::create_dir_all(root.path().join("project")).unwrap();
        std::fs::create_dir_all(root.path().join("home")).unwrap();
        TestContext { root }
    }

    pub fn project(&self) -> PathBuf {
        self.root.path().join("project")
    }

    pub fn home(&self) -> PathBuf {
        self.root.path().join("home")
    }

    pub fn write_program(&self, program: &str) {
        std::fs::write(self.project().join("Cairn.yaml"), program).unwrap();
    }

    pub fn command(&self, args: &[&str]) -> std::process::Command {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"));
        command
            .args(args)
            .current_dir(self.project())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.root.path())
            .env("USER", "tester")
            .env("CAIRN_HOME", self.home())
            .env("CAIRN_CONFIG_PASSPHRASE", PASSPHRASE)
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null());
        command
    }

    /// Starts `cairn ARGS` in the background, its output kept for `wait_with_output`.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.command(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("starting cairn")
    }

    /// Runs `cairn ARGS` in the project, non-interactively.
    pub fn cairn(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().expect("running cairn"))
    }

    /// Runs `cairn ARGS` on a pseudo-terminal (util-linux `script`), as a user at a terminal
    /// would; stdout and stderr arrive merged, escape codes and all, in `stdout`.
    pub fn cairn_in_terminal(&self, args: &[&str]) -> Run {
        let command_line = std::iter::once(env!("CARGO_BIN_EXE_cairn"))
            .chain(args.iter().copied())
            .map(|word| format!("'{word}'"))
            .collect::<Vec<_>>()
            .join(" ");
        let output = std::process::Command::new("script")
            .args(["-qfec", &command_line, "/dev/null"])
            .current_dir(self.project())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.root.path())
            .env("USER", "tester")
            .env("TERM", "xterm")
            .env("CAIRN_HOME", self.home())
            .env("CAIRN_CONFIG_PASSPHRASE", PASSPHRASE)
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("running cairn under `script` (util-linux) for a pseudo-terminal");
        Run::from(output)
    }

    /// Runs `cairn ARGS` with extra environment variables.
    pub fn cairn_with(&self, args: &[&str], env: &[(&str, &Path)]) -> Run {
        let mut command = self.command(args);
        for (key, value) in env {
            command.env(key, value);
        }
        Run::from(command.output().expect("running cairn"))
    }

    /// Restores kept version `version` of the stack as the README says: `stack export --version`
    /// into a file, then `stack import` of it.
    pub fn restore_version(&self, version: u64) {
        let good = self.root.path().join("good.json");
        let good = good.to_str().expect("a UTF-8 temporary path");
        self.cairn(&[
            "stack",
            "export",
            "--version",
            &version.to_string(),
            "--file",
            good,
        ])
        .success();
        self.cairn(&["stack", "import", "--file", good]).success();
    }

    /// `cairn stack export` parsed.
    pub fn export(&self) -> serde_json::Value {
        let run = self.cairn(&["stack", "export"]).success();
        serde_json::from_str(&run.stdout).expect("stack export prints JSON")
    }

    /// The resources in the exported state, by logical name (the stack and providers left out).
    pub fn resources(&self) -> Vec<serde_json::Value> {
        self.export()["deployment"]["resources"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|resource| {
                let type_ = resource["type"].as_str().unwrap_or_default();
                type_ != "pulumi:pulumi:Stack" && !type_.starts_with("pulumi:providers:")
            })
            .collect()
    }

    /// The logical names of the resources in the state, in state order.
    pub fn resource_names(&self) -> Vec<String> {
        self.resources()
            .iter()
            .map(|resource| {
                let urn = resource["urn"].as_str().expect("every resource has a URN");
                urn.rsplit("::").next().unwrap_or(urn).to_owned()
            })
            .collect()
    }

    pub fn resource(&self, name: &str) -> serde_json::Value {
        self.resources()
            .into_iter()
            .find(|resource| {
                resource["urn"]
                    .as_str()
                    .is_some_and(|urn| urn.ends_with(&format!("::{name}")))
            })
            .unwrap_or_else(|| panic!("no resource named `{name}` in state"))
    }

    pub fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.project().join(relative)).unwrap_or_default()
    }
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// Waits until `condition` holds, failing the test (naming `what`) after 20 seconds.
#[track_caller]
pub fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} never happened"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
