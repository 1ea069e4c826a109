//! The plugin side of the protocol: reads requests from stdin, runs each in a task of its own
//! (so a plugin serves the engine's parallel steps), and writes responses and log
//! notifications to stdout through one writer.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use cairn_core::Urn;
use cairn_provider::{CallContext, LogSink, Provider, ProviderError};
use serde_json::{Value as Json, json};
use tokio::sync::{RwLock, mpsc};
use tokio_util::sync::CancellationToken;

use crate::PROTOCOL_VERSION;
use crate::wire::{self, codes, map_from_json, map_to_json};

/// Serves `provider` on stdin/stdout until the engine says `shutdown` or closes stdin.
pub async fn serve(provider: Arc<dyn Provider>) -> ExitCode {
    // Plain threads do the blocking reads and writes of stdin and stdout: tokio's own stdio
    // would send every read and write through its blocking pool, which costs more than the
    // message itself. The writer flushes only when nothing else is queued, so a burst of
    // answers goes out in one write.
    let (outgoing, to_write) = mpsc::unbounded_channel::<String>();
    let writer = std::thread::spawn(move || write_lines(to_write));
    let (line_sender, mut incoming) = mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if line_sender.send(line).is_err() {
                break;
            }
        }
    });
    let server = Arc::new(Server {
        provider: RwLock::new(provider),
        outgoing: outgoing.clone(),
        in_flight: Mutex::new(HashMap::new()),
    });
    let mut tasks = tokio::task::JoinSet::new();
    while let Some(line) = incoming.recv().await {
        if line.trim().is_empty() {
            continue;
        }
        let message: Json = match serde_json::from_str(&line) {
            Ok(message) => message,
            Err(error) => {
                server.send(json!({
                    "jsonrpc": "2.0", "id": null,
                    "error": { "code": -32700, "message": format!("not JSON: {error}") },
                }));
                continue;
            }
        };
        let method = message["method"].as_str().unwrap_or_default().to_owned();
        let id = message.get("id").cloned();
        let params = message.get("params").cloned().unwrap_or(Json::Null);
        match (method.as_str(), id) {
            ("cancel", _) => server.cancel(&params),
            ("shutdown", id) => {
                // Let requests still running finish, then answer and stop.
                while tasks.join_next().await.is_some() {}
                server.provider.read().await.shutdown().await;
                if let Some(id) = id {
                    server.send(json!({ "jsonrpc": "2.0", "id": id, "result": {} }));
                }
                break;
            }
            (_, Some(id)) => {
                let server = server.clone();
                tasks.spawn(async move {
                    let token = CancellationToken::new();
                    let key = id.to_string();
                    if let Ok(mut in_flight) = server.in_flight.lock() {
                        in_flight.insert(key.clone(), token.clone());
                    }
                    let result = server.handle(&method, &params, token).await;
                    if let Ok(mut in_flight) = server.in_flight.lock() {
                        in_flight.remove(&key);
                    }
                    let response = match result {
                        Ok(result) => json!({ "jsonrpc": "2.0", "id": id, "result": result }),
                        Err((code, message)) => json!({
                            "jsonrpc": "2.0", "id": id,
                            "error": { "code": code, "message": message },
                        }),
                    };
                    server.send(response);
                });
            }
            // A notification we do not know: nothing to answer.
            (_, None) => {}
        }
    }
    drop(server);
    drop(outgoing);
    let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    ExitCode::SUCCESS
}

fn write_lines(mut to_write: mpsc::UnboundedReceiver<String>) {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    while let Some(line) = to_write.blocking_recv() {
        let mut written = out.write_all(line.as_bytes()).and(out.write_all(b"\n"));
        while written.is_ok()
            && let Ok(more) = to_write.try_recv()
        {
            written = out.write_all(more.as_bytes()).and(out.write_all(b"\n"));
        }
        if written.and(out.flush()).is_err() {
            return;
        }
    }
}

struct Server {
    /// The provider; `configure` replaces it with the configured instance.
    provider: RwLock<Arc<dyn Provider>>,
    outgoing: mpsc::UnboundedSender<String>,
    /// Cancellation of each request in flight, by its id.
    in_flight: Mutex<HashMap<String, CancellationToken>>,
}

type Failure = (i64, String);

fn failure(error: ProviderError) -> Failure {
    let code = match &error {
        ProviderError::Failed(_) => codes::FAILED,
        ProviderError::Cancelled => codes::CANCELLED,
        ProviderError::UnknownType(_) => codes::UNKNOWN_TYPE,
        ProviderError::UnknownFunction(_) => codes::UNKNOWN_FUNCTION,
    };
    (code, error.to_string())
}

fn invalid(message: String) -> Failure {
    (codes::INVALID_PARAMS, message)
}

fn text<'a>(params: &'a Json, key: &str) -> &'a str {
    params[key].as_str().unwrap_or_default()
}

fn properties(params: &Json, key: &str) -> Result<cairn_core::PropertyMap, Failure> {
    map_from_json(&params[key]).map_err(|error| invalid(format!("`{key}`: {error}")))
}

impl Server {
    fn send(&self, message: Json) {
        let _ = self.outgoing.send(message.to_string());
    }

    fn cancel(&self, params: &Json) {
        let Ok(in_flight) = self.in_flight.lock() else {
            return;
        };
        match params.get("id") {
            Some(id) => {
                if let Some(token) = in_flight.get(&id.to_string()) {
                    token.cancel();
                }
            }
            None => in_flight.values().for_each(CancellationToken::cancel),
        }
    }

    fn context(&self, params: &Json, cancel: CancellationToken) -> CallContext {
        let urn = Urn::parse(text(params, "urn"))
            .unwrap_or_else(|_| Urn::new("plugin", "plugin", None, "plugin:index:Call", "call"));
        let outgoing = self.outgoing.clone();
        let log_urn = params["urn"].as_str().map(str::to_owned);
        CallContext {
            urn,
            cancel,
            cwd: params["cwd"]
                .as_str()
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(".")),
            logs: LogSink::new(move |severity, message| {
                let notification = json!({
                    "jsonrpc": "2.0",
                    "method": "log",
                    "params": { "urn": log_urn, "severity": severity.as_str(), "message": message },
                });
                let _ = outgoing.send(notification.to_string());
            }),
            secret_outputs: params["secretOutputs"]
                .as_array()
                .map(|names| {
                    names
                        .iter()
                        .filter_map(|name| name.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    async fn handle(
        &self,
        method: &str,
        params: &Json,
        cancel: CancellationToken,
    ) -> Result<Json, Failure> {
        let ctx = self.context(params, cancel);
        let provider = self.provider.read().await.clone();
        let type_token = text(params, "type");
        match method {
            "handshake" => {
                let offered: Vec<u64> = params["protocolVersions"]
                    .as_array()
                    .map(|versions| versions.iter().filter_map(Json::as_u64).collect())
                    .unwrap_or_default();
                if !offered.contains(&PROTOCOL_VERSION) {
                    return Err(invalid(format!(
                        "this plugin speaks protocol version {PROTOCOL_VERSION}, the engine offers {offered:?}"
                    )));
                }
                Ok(json!({
                    "name": provider.package(),
                    "version": provider.schema().version,
                    "protocolVersion": PROTOCOL_VERSION,
                }))
            }
            "getSchema" => Ok(json!({ "schema": wire::schema_to_json(provider.schema()) })),
            "checkConfig" => {
                let olds = optional_properties(params, "olds")?;
                let checked = provider
                    .check_config(&ctx, olds.as_ref(), &properties(params, "news")?)
                    .await
                    .map_err(failure)?;
                Ok(check_json(checked))
            }
            "diffConfig" => {
                let diff = provider
                    .diff_config(
                        &ctx,
                        &properties(params, "oldInputs")?,
                        &properties(params, "oldOutputs")?,
                        &properties(params, "news")?,
                    )
                    .await
                    .map_err(failure)?;
                Ok(diff_json(diff))
            }
            "configure" => {
                let config = properties(params, "config")?;
                if let Some(configured) =
                    provider.configure(&ctx, &config).await.map_err(failure)?
                {
                    *self.provider.write().await = configured;
                }
                Ok(json!({}))
            }
            "check" => {
                let olds = optional_properties(params, "olds")?;
                let checked = provider
                    .check(
                        &ctx,
                        type_token,
                        olds.as_ref(),
                        &properties(params, "news")?,
                    )
                    .await
                    .map_err(failure)?;
                Ok(check_json(checked))
            }
            "diff" => {
                let diff = provider
                    .diff(
                        &ctx,
                        type_token,
                        text(params, "id"),
                        &properties(params, "oldInputs")?,
                        &properties(params, "oldOutputs")?,
                        &properties(params, "news")?,
                    )
                    .await
                    .map_err(failure)?;
                Ok(diff_json(diff))
            }
            "create" => {
                let created = provider
                    .create(
                        &ctx,
                        type_token,
                        &properties(params, "inputs")?,
                        params["preview"].as_bool().unwrap_or(false),
                    )
                    .await
                    .map_err(failure)?;
                Ok(json!({ "id": created.id, "outputs": map_to_json(&created.outputs) }))
            }
            "read" => {
                let read = provider
                    .read(
                        &ctx,
                        type_token,
                        text(params, "id"),
                        &properties(params, "inputs")?,
                        &properties(params, "outputs")?,
                    )
                    .await
                    .map_err(failure)?;
                Ok(match read {
                    Some(read) => json!({
                        "id": read.id,
                        "inputs": map_to_json(&read.inputs),
                        "outputs": map_to_json(&read.outputs),
                    }),
                    None => Json::Null,
                })
            }
            "update" => {
                let outputs = provider
                    .update(
                        &ctx,
                        type_token,
                        text(params, "id"),
                        &properties(params, "oldInputs")?,
                        &properties(params, "oldOutputs")?,
                        &properties(params, "news")?,
                        params["preview"].as_bool().unwrap_or(false),
                    )
                    .await
                    .map_err(failure)?;
                Ok(json!({ "outputs": map_to_json(&outputs) }))
            }
            "delete" => {
                provider
                    .delete(
                        &ctx,
                        type_token,
                        text(params, "id"),
                        &properties(params, "inputs")?,
                        &properties(params, "outputs")?,
                    )
                    .await
                    .map_err(failure)?;
                Ok(json!({}))
            }
            "invoke" => {
                let outputs = provider
                    .invoke(&ctx, text(params, "token"), &properties(params, "args")?)
                    .await
                    .map_err(failure)?;
                Ok(json!({ "outputs": map_to_json(&outputs) }))
            }
            other => Err((codes::METHOD_NOT_FOUND, format!("unknown method `{other}`"))),
        }
    }
}

fn optional_properties(
    params: &Json,
    key: &str,
) -> Result<Option<cairn_core::PropertyMap>, Failure> {
    match &params[key] {
        Json::Null => Ok(None),
        _ => properties(params, key).map(Some),
    }
}

fn check_json(checked: cairn_provider::CheckResponse) -> Json {
    let failures: Vec<Json> = checked
        .failures
        .iter()
        .map(|failure| json!({ "property": failure.property, "reason": failure.reason }))
        .collect();
    json!({ "inputs": map_to_json(&checked.inputs), "failures": failures })
}

fn diff_json(diff: cairn_provider::DiffResponse) -> Json {
    json!({
        "changes": diff.changed_keys,
        "replaces": diff.replace_keys,
        "deleteBeforeReplace": diff.delete_before_replace,
    })
}
