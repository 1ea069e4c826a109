//! `cairn logs`: what providers logged (command output, plugin log lines) and what the engine
//! did, with timestamps, from the stack's backend. Secrets were masked before anything was kept.

use std::collections::HashSet;
use std::time::Duration;

use cairn_state::LogEntry;

use crate::cli::LogsArgs;
use crate::commands::{self, render};
use crate::output;
use crate::workspace::Workspace;

/// How often `--follow` asks the backend for new lines.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(500);

pub async fn logs(workspace: &Workspace, args: LogsArgs) -> anyhow::Result<()> {
    let context = commands::open_stack(workspace).await?;
    let since_ms = match &args.since {
        Some(text) => {
            let age = humantime::parse_duration(text).map_err(|error| {
                crate::bad_input(format!(
                    "`--since {text}`: {error}\nhelp: give a duration such as 30s, 5m or 2h"
                ))
            })?;
            Some(cairn_ops::unix_now_millis() - age.as_millis() as i64)
        }
        None => None,
    };
    // The newest timestamp shown, and what was shown at it: a poll asks from that instant on
    // and skips those lines, so `--follow` shows every line once.
    let mut cursor = since_ms;
    let mut shown_at_cursor: HashSet<(Option<String>, String)> = HashSet::new();
    loop {
        let entries = context
            .backend
            .logs(&context.stack, cursor, args.resource.as_deref())
            .await?;
        for entry in entries {
            let key = (entry.urn.clone(), entry.message.clone());
            if cursor.is_some_and(|at| entry.timestamp_ms < at)
                || (Some(entry.timestamp_ms) == cursor && shown_at_cursor.contains(&key))
            {
                continue;
            }
            show(&entry, workspace.global.json);
            if Some(entry.timestamp_ms) != cursor {
                cursor = Some(entry.timestamp_ms);
                shown_at_cursor.clear();
            }
            shown_at_cursor.insert(key);
        }
        if !args.follow {
            return Ok(());
        }
        tokio::time::sleep(FOLLOW_INTERVAL).await;
    }
}

fn show(entry: &LogEntry, json: bool) {
    if json {
        output::json_line(&serde_json::json!({
            "timestamp": render::rfc3339_of_millis(entry.timestamp_ms),
            "urn": entry.urn,
            "severity": entry.severity,
            "message": entry.message,
        }));
        return;
    }
    let source = entry
        .urn
        .as_deref()
        .map(|urn| urn.rsplit("::").next().unwrap_or(urn))
        .unwrap_or("engine");
    let severity = match entry.severity.as_str() {
        "info" => String::new(),
        other => format!("{other}: "),
    };
    output::line(&format!(
        "{} [{source}] {severity}{}",
        render::rfc3339_of_millis(entry.timestamp_ms),
        entry.message
    ));
}
