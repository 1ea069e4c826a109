//! One running plugin process and the JSON-RPC conversation with it: requests written to its
//! stdin, a reader task matching responses on stdout to their requests by id (so requests run
//! concurrently), log notifications routed to the resource they are about, and stderr kept so a
//! crash can be explained.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_provider::{LogSeverity, LogSink};
use cairn_provider_sdk::wire::codes;
use serde_json::{Value as Json, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::oneshot;

/// How many of the plugin's last stderr lines an error quotes.
const STDERR_TAIL: usize = 10;
/// How long a plugin may take to exit after `shutdown` before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// What a call can end with, besides a result.
#[derive(Debug)]
pub enum CallError {
    /// The plugin answered with a JSON-RPC error.
    Rpc { code: i64, message: String },
    /// The conversation is over: the plugin died, or printed something that is not protocol.
    Broken(String),
}

type Reply = Result<Json, CallError>;

pub struct Connection {
    stdin: Arc<tokio::sync::Mutex<Option<ChildStdin>>>,
    child: tokio::sync::Mutex<Option<Child>>,
    next_id: AtomicU64,
    shared: Arc<Shared>,
}

/// What the reader task and the callers share.
struct Shared {
    waiting: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    /// Set once the conversation is over, with why.
    broken: Mutex<Option<String>>,
    /// Where log notifications about each resource (by URN) go while its calls run.
    logs: Mutex<HashMap<String, LogSink>>,
    stderr_tail: Mutex<VecDeque<String>>,
}

impl Shared {
    fn break_with(&self, reason: String) {
        let mut broken = self
            .broken
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if broken.is_none() {
            *broken = Some(reason.clone());
        }
        let reason = broken.clone().unwrap_or(reason);
        drop(broken);
        let waiting: Vec<_> = self
            .waiting
            .lock()
            .map(|mut waiting| waiting.drain().collect())
            .unwrap_or_default();
        for (_, sender) in waiting {
            let _ = sender.send(Err(CallError::Broken(reason.clone())));
        }
    }

    fn broken(&self) -> Option<String> {
        self.broken.lock().ok().and_then(|broken| broken.clone())
    }

    fn stderr_tail(&self) -> String {
        let lines: Vec<String> = self
            .stderr_tail
            .lock()
            .map(|tail| tail.iter().cloned().collect())
            .unwrap_or_default();
        if lines.is_empty() {
            String::new()
        } else {
            format!("; its last words on stderr:\n  {}", lines.join("\n  "))
        }
    }
}

impl Connection {
    /// Starts the plugin executable.
    pub fn spawn(path: &Path) -> std::io::Result<Connection> {
        let mut child = tokio::process::Command::new(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let shared = Arc::new(Shared {
            waiting: Mutex::new(HashMap::new()),
            broken: Mutex::new(None),
            logs: Mutex::new(HashMap::new()),
            stderr_tail: Mutex::new(VecDeque::new()),
        });
        let stderr_reader = stderr.map(|stderr| {
            let shared = shared.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Ok(mut tail) = shared.stderr_tail.lock() {
                        if tail.len() == STDERR_TAIL {
                            tail.pop_front();
                        }
                        tail.push_back(line);
                    }
                }
            })
        });
        if let Some(stdout) = stdout {
            let shared = shared.clone();
            tokio::spawn(read_messages(stdout, stderr_reader, shared));
        }
        Ok(Connection {
            stdin: Arc::new(tokio::sync::Mutex::new(stdin)),
            child: tokio::sync::Mutex::new(Some(child)),
            next_id: AtomicU64::new(1),
            shared,
        })
    }

    /// Sends a request and waits for its answer. Dropping the future (a time limit) sends the
    /// plugin a `cancel` for it and forgets it.
    pub async fn call(&self, method: &str, params: Json, logs: Option<(&str, &LogSink)>) -> Reply {
        if let Some(reason) = self.shared.broken() {
            return Err(CallError::Broken(reason));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = oneshot::channel();
        if let Ok(mut waiting) = self.shared.waiting.lock() {
            waiting.insert(id, sender);
        }
        if let Some((urn, sink)) = logs
            && let Ok(mut sinks) = self.shared.logs.lock()
        {
            sinks.insert(urn.to_owned(), sink.clone());
        }
        let guard = Pending {
            connection: self,
            id,
            done: false,
        };
        let message = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        self.write(&message).await;
        let reply = receiver
            .await
            .unwrap_or_else(|_| Err(CallError::Broken(self.broken_reason())));
        let mut guard = guard;
        guard.done = true;
        reply
    }

    /// Sends a notification (no answer expected).
    pub async fn notify(&self, method: &str, params: Json) {
        let message = json!({ "jsonrpc": "2.0", "method": method, "params": params });
        self.write(&message).await;
    }

    async fn write(&self, message: &Json) {
        let mut line = message.to_string();
        line.push('\n');
        let mut stdin = self.stdin.lock().await;
        let written = match stdin.as_mut() {
            Some(stdin) => stdin
                .write_all(line.as_bytes())
                .await
                .and(stdin.flush().await),
            None => Err(std::io::Error::other("its input is closed")),
        };
        if let Err(error) = written {
            drop(stdin);
            self.shared.break_with(format!(
                "stopped taking requests ({error}){}",
                self.shared.stderr_tail()
            ));
        }
    }

    fn broken_reason(&self) -> String {
        self.shared
            .broken()
            .unwrap_or_else(|| "stopped answering".to_owned())
    }

    /// Asks the plugin to stop, closes its input, and kills it if it does not exit in time.
    pub async fn shutdown(&self) {
        if self.shared.broken().is_none() {
            let _ = tokio::time::timeout(EXIT_GRACE, self.call("shutdown", json!({}), None)).await;
        }
        self.stdin.lock().await.take();
        let mut child = self.child.lock().await;
        if let Some(mut process) = child.take() {
            match tokio::time::timeout(EXIT_GRACE, process.wait()).await {
                Ok(_) => {}
                Err(_) => {
                    let _ = process.kill().await;
                }
            }
        }
        self.shared.break_with("was shut down".to_owned());
    }
}

/// Forgets a request whose caller gave up (a time limit dropped the call), and tells the
/// plugin to stop working on it.
struct Pending<'a> {
    connection: &'a Connection,
    id: u64,
    done: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Ok(mut waiting) = self.connection.shared.waiting.lock() {
            waiting.remove(&self.id);
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let stdin = self.connection.stdin.clone();
        let line = format!(
            "{}\n",
            json!({ "jsonrpc": "2.0", "method": "cancel", "params": { "id": self.id } })
        );
        runtime.spawn(async move {
            if let Some(stdin) = stdin.lock().await.as_mut() {
                let _ = stdin.write_all(line.as_bytes()).await;
                let _ = stdin.flush().await;
            }
        });
    }
}

/// How long, once a plugin's stdout has closed, its last stderr lines are waited for.
const LAST_WORDS_WAIT: Duration = Duration::from_secs(1);

async fn read_messages(
    stdout: tokio::process::ChildStdout,
    stderr_reader: Option<tokio::task::JoinHandle<()>>,
    shared: Arc<Shared>,
) {
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = match lines.next_line().await {
            Ok(Some(line)) => line,
            Ok(None) => {
                // The process is gone or going: let its stderr drain, so the error quotes it.
                if let Some(reader) = stderr_reader {
                    let _ = tokio::time::timeout(LAST_WORDS_WAIT, reader).await;
                }
                shared.break_with(format!("exited{}", shared.stderr_tail()));
                return;
            }
            Err(error) => {
                shared.break_with(format!("could not be read ({error})"));
                return;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let Ok(message) = serde_json::from_str::<Json>(&line) else {
            let shown: String = line.chars().take(120).collect();
            shared.break_with(format!(
                "printed something that is not a protocol message on stdout: `{shown}` (a plugin must write only JSON-RPC lines to stdout; use stderr for anything else)"
            ));
            return;
        };
        if let Some(method) = message.get("method").and_then(Json::as_str) {
            if method == "log" || method == "progress" {
                route_log(&shared, &message["params"], method);
            }
            continue;
        }
        let Some(id) = message.get("id").and_then(Json::as_u64) else {
            // A response to nothing we sent (or an error about a line it could not parse).
            if let Some(error) = message.get("error") {
                shared.break_with(format!("rejected a message: {error}"));
                return;
            }
            continue;
        };
        let reply = match message.get("error") {
            Some(error) => Err(CallError::Rpc {
                code: error["code"].as_i64().unwrap_or(codes::FAILED),
                message: error["message"].as_str().unwrap_or("failed").to_owned(),
            }),
            None => Ok(message.get("result").cloned().unwrap_or(Json::Null)),
        };
        let sender = shared
            .waiting
            .lock()
            .ok()
            .and_then(|mut waiting| waiting.remove(&id));
        if let Some(sender) = sender {
            let _ = sender.send(reply);
        }
    }
}

fn route_log(shared: &Shared, params: &Json, method: &str) {
    let urn = params["urn"].as_str().unwrap_or_default();
    let severity = if method == "progress" {
        LogSeverity::Info
    } else {
        params["severity"]
            .as_str()
            .and_then(LogSeverity::parse)
            .unwrap_or(LogSeverity::Info)
    };
    let message = params["message"].as_str().unwrap_or_default();
    let sink = shared
        .logs
        .lock()
        .ok()
        .and_then(|sinks| sinks.get(urn).cloned());
    if let Some(sink) = sink {
        sink.log(severity, message);
    }
}
