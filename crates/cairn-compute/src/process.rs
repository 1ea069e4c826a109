//! The `process` driver: instances are local processes (for hosts without Docker). Each runs
//! in a process group of its own (`init` under `/bin/sh -c`, else `command`), detached from
//! Cairn so it outlives the command that started it; its record (pid, tags, logical ID,
//! properties) is a JSON file in the `dir` setting, so `describe` works from any later command.
//! `destroy` kills the whole group, commands run by `exec` included. `exec` runs a command on the host in the instance's working
//! directory (`workingDir`), with the instance's `env` and, of Cairn's own environment, only
//! `PATH`, `HOME`, `USER`, `LOGNAME`, `LANG`, `LC_ALL`, `TZ`, `TMPDIR` and `SHELL`.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::driver::{
    DestroyReason, DriverError, DriverResult, InstanceDescription, InstanceDriver, InstanceSpec,
    OutputChunk, Stream,
};

/// The variables of Cairn's own environment an instance's processes inherit.
const INHERITED: [&str; 9] = [
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SHELL",
];

pub struct ProcessDriver {
    dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    pid: u32,
    logical_id: Option<String>,
    tags: BTreeMap<String, String>,
    properties: serde_json::Value,
}

fn failed(action: &str, error: impl std::fmt::Display) -> DriverError {
    DriverError::Failed(format!("process driver: {action}: {error}"))
}

/// Whether `pid` is a live process (not a zombie left for its parent to reap).
fn is_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let after_name = stat.rsplit_once(')')?.1.trim_start().to_owned();
            after_name.chars().next()
        })
        .is_some_and(|state| state != 'Z' && state != 'X')
}

impl ProcessDriver {
    pub fn new(settings: &serde_json::Value) -> DriverResult<ProcessDriver> {
        let dir = settings["dir"].as_str().map(PathBuf::from).ok_or_else(|| {
            DriverError::Invalid(
                "the process driver needs a `dir` setting (where it keeps its records)".to_owned(),
            )
        })?;
        std::fs::create_dir_all(&dir).map_err(|error| failed("creating its directory", error))?;
        Ok(ProcessDriver { dir })
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn load(&self, id: &str) -> DriverResult<Record> {
        let text = std::fs::read_to_string(self.record_path(id))
            .map_err(|_| DriverError::NotFound(id.to_owned()))?;
        serde_json::from_str(&text).map_err(|error| failed("reading a record", error))
    }

    fn save(&self, id: &str, record: &Record) -> DriverResult<()> {
        let text = serde_json::to_string_pretty(record)
            .map_err(|error| failed("writing a record", error))?;
        let path = self.record_path(id);
        let temporary = path.with_extension("tmp");
        std::fs::write(&temporary, text)
            .and_then(|()| std::fs::rename(&temporary, &path))
            .map_err(|error| failed("writing a record", error))
    }

    /// What an instance's processes see: the host's few variables a process needs to work
    /// (`INHERITED`), then the instance's `env`. Nothing else of Cairn's environment reaches
    /// them: it may hold a passphrase, a database password or cloud credentials, and an
    /// instance runs whatever script someone submitted.
    fn env_of(properties: &serde_json::Value) -> Vec<(String, String)> {
        let inherited = INHERITED
            .iter()
            .filter_map(|name| Some(((*name).to_owned(), std::env::var(name).ok()?)));
        inherited.chain(Self::instance_env(properties)).collect()
    }

    fn instance_env(properties: &serde_json::Value) -> Vec<(String, String)> {
        properties["env"]
            .as_object()
            .map(|env| {
                env.iter()
                    .map(|(key, value)| {
                        (
                            key.clone(),
                            value
                                .as_str()
                                .map_or_else(|| value.to_string(), str::to_owned),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[async_trait]
impl InstanceDriver for ProcessDriver {
    fn name(&self) -> &str {
        "process"
    }

    fn help(&self) -> &str {
        crate::help_of("process")
    }

    async fn validate(&self, properties: &serde_json::Value) -> DriverResult<()> {
        let has_command = properties["command"]
            .as_array()
            .is_some_and(|command| !command.is_empty());
        if properties.is_object() && (has_command || properties.get("command").is_none()) {
            Ok(())
        } else {
            Err(DriverError::Invalid(
                "`command` must be a non-empty list".to_owned(),
            ))
        }
    }

    async fn provision(&self, spec: InstanceSpec) -> DriverResult<String> {
        self.validate(&spec.properties).await?;
        let argv: Vec<String> = match (&spec.init, spec.properties["command"].as_array()) {
            (Some(init), _) => vec!["/bin/sh".to_owned(), "-c".to_owned(), init.clone()],
            (None, Some(command)) => command
                .iter()
                .map(|word| {
                    word.as_str()
                        .map_or_else(|| word.to_string(), str::to_owned)
                })
                .collect(),
            (None, None) => {
                return Err(DriverError::Invalid(
                    "a process instance needs `init` or a `command`".to_owned(),
                ));
            }
        };
        let mut command = std::process::Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .env_clear()
            .envs(ProcessDriver::env_of(&spec.properties))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            // A group of its own: `destroy` kills everything it started, and a Ctrl-C meant
            // for Cairn does not reach it.
            .process_group(0);
        if let Some(dir) = spec.properties["workingDir"].as_str() {
            command.current_dir(dir);
        }
        let child = command
            .spawn()
            .map_err(|error| failed("starting the process", error))?;
        let pid = child.id();
        // Reaped by a thread, so it never lingers as a zombie while this process lives.
        std::thread::spawn(move || {
            let mut child = child;
            let _ = child.wait();
        });
        let id = format!("proc-{pid}-{}", uuid::Uuid::new_v4().simple());
        self.save(
            &id,
            &Record {
                pid,
                logical_id: spec.logical_id,
                tags: spec.tags,
                properties: spec.properties,
            },
        )?;
        Ok(id)
    }

    async fn label(&self, id: &str, tags: &BTreeMap<String, String>) -> DriverResult<()> {
        let mut record = self.load(id)?;
        record.tags.extend(tags.clone());
        self.save(id, &record)
    }

    async fn destroy(&self, id: &str, _reason: DestroyReason) -> DriverResult<()> {
        let Ok(record) = self.load(id) else {
            return Ok(());
        };
        if is_alive(record.pid)
            && let Some(pid) = i32::try_from(record.pid)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        match std::fs::remove_file(self.record_path(id)) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(failed("removing a record", error)),
        }
    }

    async fn describe(
        &self,
        tags: &BTreeMap<String, String>,
        with_properties: bool,
    ) -> DriverResult<Vec<InstanceDescription>> {
        let entries =
            std::fs::read_dir(&self.dir).map_err(|error| failed("listing records", error))?;
        let mut instances = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".json") else {
                continue;
            };
            let Ok(record) = self.load(id) else {
                continue;
            };
            if !tags
                .iter()
                .all(|(key, value)| record.tags.get(key) == Some(value))
            {
                continue;
            }
            instances.push(InstanceDescription {
                id: id.to_owned(),
                logical_id: record.logical_id,
                tags: record.tags,
                running: is_alive(record.pid),
                properties: with_properties.then_some(record.properties),
            });
        }
        instances.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(instances)
    }

    async fn copy_in(&self, id: &str, path: &str, bytes: Vec<u8>) -> DriverResult<()> {
        let record = self.load(id)?;
        let base = record.properties["workingDir"]
            .as_str()
            .map(PathBuf::from)
            .unwrap_or_else(|| self.dir.clone());
        let target = base.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|error| failed("copying a file in", error))?;
        }
        std::fs::write(&target, bytes).map_err(|error| failed("copying a file in", error))
    }

    async fn address(&self, _id: &str) -> DriverResult<Option<String>> {
        Ok(Some("127.0.0.1".to_owned()))
    }

    async fn exec(
        &self,
        id: &str,
        command: &[String],
        output: tokio::sync::mpsc::UnboundedSender<OutputChunk>,
    ) -> DriverResult<i64> {
        self.exec_with_stdin(id, command, None, output).await
    }

    /// Runs the command on the host, in the instance's working directory with its `env`; its
    /// output is sent as it comes (a long build's log shows while it runs).
    async fn exec_with_stdin(
        &self,
        id: &str,
        command: &[String],
        stdin: Option<Vec<u8>>,
        output: tokio::sync::mpsc::UnboundedSender<OutputChunk>,
    ) -> DriverResult<i64> {
        use tokio::io::AsyncWriteExt;
        let record = self.load(id)?;
        let (program, args) = command
            .split_first()
            .ok_or_else(|| DriverError::Invalid("an empty command".to_owned()))?;
        let mut process = tokio::process::Command::new(program);
        process
            .args(args)
            .env_clear()
            .envs(ProcessDriver::env_of(&record.properties))
            .stdin(if stdin.is_some() {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        if let Some(dir) = record.properties["workingDir"].as_str() {
            process.current_dir(dir);
        }
        // In the instance's process group, so `destroy` ends the command and everything it
        // started, as removing a container would. An instance started from another session
        // cannot be joined (EPERM); its commands then get a group of their own.
        let group = i32::try_from(record.pid)
            .ok()
            .filter(|_| is_alive(record.pid));
        let spawned = match group {
            Some(group) => process.process_group(group).spawn(),
            None => process.spawn(),
        };
        let mut child = match spawned {
            Ok(child) => child,
            Err(error) if group.is_some() && error.raw_os_error() == Some(1) => process
                .process_group(0)
                .spawn()
                .map_err(|error| failed("running a command", error))?,
            Err(error) => return Err(failed("running a command", error)),
        };
        let readers = [
            child
                .stdout
                .take()
                .map(|pipe| forward(pipe, Stream::Stdout, output.clone())),
            child
                .stderr
                .take()
                .map(|pipe| forward(pipe, Stream::Stderr, output.clone())),
        ];
        if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A command that exits without reading all its input is not an error here.
            let _ = pipe.write_all(&bytes).await;
            drop(pipe);
        }
        let status = child
            .wait()
            .await
            .map_err(|error| failed("running a command", error))?;
        // What the command wrote is read to the end of its pipes, but a process it left in
        // the background holding them does not keep the command going (as with Docker's
        // exec): past a short wait, its output is no longer the command's.
        let drained_by = tokio::time::Instant::now() + std::time::Duration::from_millis(250);
        for mut reader in readers.into_iter().flatten() {
            if tokio::time::timeout_at(drained_by, &mut reader)
                .await
                .is_err()
            {
                reader.abort();
            }
        }
        // A command killed by a signal exits 128 + its number, as a shell (and Docker) says.
        let code = std::os::unix::process::ExitStatusExt::signal(&status)
            .map_or_else(|| status.code().unwrap_or(-1), |signal| 128 + signal);
        Ok(i64::from(code))
    }
}

/// Sends what `pipe` gives to `output`, chunk by chunk, until it closes.
fn forward(
    mut pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    stream: Stream,
    output: tokio::sync::mpsc::UnboundedSender<OutputChunk>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut buffer = vec![0u8; 8192];
        while let Ok(read) = pipe.read(&mut buffer).await {
            let Some(bytes) = buffer.get(..read).filter(|bytes| !bytes.is_empty()) else {
                break;
            };
            let _ = output.send(OutputChunk {
                stream,
                bytes: bytes.to_vec(),
            });
        }
    })
}
