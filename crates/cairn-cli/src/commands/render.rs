//! Rendering results as Pulumi does: the resource tree with `+`/`~`/`-`/`+-`, outputs, the
//! summary line, diagnostics; and the `--json` form of the same.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_core::{PropertyMap, StepOp, Urn, Value};
use cairn_engine::{DeployOutcome, StepRecord};

use crate::commands::{map_to_json, value_to_json};

/// Left-aligns columns, two spaces apart.
pub fn table<const N: usize>(rows: &[[String; N]]) -> Vec<String> {
    let mut widths = [0usize; N];
    for row in rows {
        for (column, cell) in row.iter().enumerate() {
            widths[column] = widths[column].max(cell.chars().count());
        }
    }
    rows.iter()
        .map(|row| {
            let mut line = String::new();
            for (column, cell) in row.iter().enumerate() {
                if column + 1 == N {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<width$}  ", width = widths[column]));
                }
            }
            line.trim_end().to_owned()
        })
        .collect()
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|duration| duration.as_secs() as i64)
        .unwrap_or(0)
}

/// "3 minutes ago".
pub fn ago(unix_seconds: i64) -> String {
    let seconds = (unix_now() - unix_seconds).max(0);
    match seconds {
        0..=59 => format!("{seconds} seconds ago"),
        60..=3599 => format!("{} minutes ago", seconds / 60),
        3600..=86399 => format!("{} hours ago", seconds / 3600),
        _ => format!("{} days ago", seconds / 86400),
    }
}

/// RFC 3339 UTC time of now, for manifests.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// RFC 3339 UTC time of a Unix time in milliseconds, for log lines.
pub fn rfc3339_of_millis(unix_millis: i64) -> String {
    let time = UNIX_EPOCH + std::time::Duration::from_millis(unix_millis.max(0) as u64);
    humantime::format_rfc3339_millis(time).to_string()
}

/// A value as `stack output NAME` prints it: strings bare, the rest as JSON.
pub fn plain_value(value: &Value, show_secrets: bool) -> String {
    match value {
        Value::Secret(_) if !show_secrets => "[secret]".to_owned(),
        Value::Secret(inner) => plain_value(inner, show_secrets),
        Value::String(text) => text.clone(),
        other => value_to_json(other, show_secrets).to_string(),
    }
}

/// A value as the outputs section shows it: JSON-ish, unknowns as `output<string>`.
pub fn display_value(value: &Value, show_secrets: bool) -> String {
    match value {
        Value::Unknown => "output<string>".to_owned(),
        Value::Secret(_) if !show_secrets => "[secret]".to_owned(),
        Value::Secret(inner) => display_value(inner, show_secrets),
        Value::String(text) => serde_json::Value::String(text.clone()).to_string(),
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(|item| display_value(item, show_secrets))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(key, item)| format!("{key}: {}", display_value(item, show_secrets)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => value_to_json(other, show_secrets).to_string(),
    }
}

/// Pulumi shows `random:index/randomPet:RandomPet` as `random:index:RandomPet`.
pub fn display_type(type_token: &str) -> String {
    let parts: Vec<&str> = type_token.split(':').collect();
    match parts.as_slice() {
        [package, module, name] => {
            let module = module.split('/').next().unwrap_or(module);
            format!("{package}:{module}:{name}")
        }
        _ => type_token.to_owned(),
    }
}

fn is_hidden(step: &StepRecord) -> bool {
    cairn_engine::is_default_provider(&step.urn)
}

/// Where an operation goes in the summary line.
fn order_of(op: StepOp) -> usize {
    match op {
        StepOp::Create => 0,
        StepOp::Update => 1,
        StepOp::Replace => 2,
        StepOp::Delete => 3,
        StepOp::Read => 4,
        StepOp::Import => 5,
        StepOp::Refresh => 6,
        StepOp::Same => 7,
    }
}

/// `Resources: 3 created, 1 unchanged` (or `3 to create` in a preview).
pub fn summary_line(changes: &BTreeMap<StepOp, usize>, is_preview: bool) -> String {
    let mut entries: Vec<(&StepOp, &usize)> =
        changes.iter().filter(|(_, count)| **count > 0).collect();
    entries.sort_by_key(|(op, _)| order_of(**op));
    let parts: Vec<String> = entries
        .iter()
        .map(|(op, count)| {
            let word = if is_preview {
                op.future_tense()
            } else {
                op.past_tense()
            };
            format!("{count} {word}")
        })
        .collect();
    if parts.is_empty() {
        "Resources: no changes".to_owned()
    } else {
        format!("Resources: {}", parts.join(", "))
    }
}

/// Renders the resource tree: each row `symbol type name status`, children indented under
/// their parents.
pub fn tree(outcome: &DeployOutcome, is_preview: bool, show_sames: bool) -> Vec<String> {
    let steps: Vec<&StepRecord> = outcome
        .steps
        .iter()
        .filter(|step| !is_hidden(step))
        .collect();
    // The last record of a URN wins (an error record follows the step it belongs to).
    let mut by_urn: HashMap<&Urn, &StepRecord> = HashMap::new();
    let mut order: Vec<&Urn> = Vec::new();
    for step in &steps {
        if !by_urn.contains_key(&step.urn) {
            order.push(&step.urn);
        }
        by_urn.insert(&step.urn, step);
    }
    let is_shown = |step: &StepRecord| {
        show_sames || step.op != StepOp::Same || step.error.is_some() || step.parent.is_none()
    };
    let mut children: HashMap<Option<&Urn>, Vec<&Urn>> = HashMap::new();
    for urn in &order {
        let step = by_urn[urn];
        let parent = step
            .parent
            .as_ref()
            .filter(|parent| by_urn.contains_key(parent));
        children.entry(parent).or_default().push(urn);
    }
    // Keep a row when it or any descendant is shown.
    fn keep<'a>(
        urn: &'a Urn,
        by_urn: &HashMap<&'a Urn, &'a StepRecord>,
        children: &HashMap<Option<&'a Urn>, Vec<&'a Urn>>,
        is_shown: &dyn Fn(&StepRecord) -> bool,
    ) -> bool {
        is_shown(by_urn[urn])
            || children
                .get(&Some(urn))
                .is_some_and(|kids| kids.iter().any(|kid| keep(kid, by_urn, children, is_shown)))
    }
    let mut rows: Vec<[String; 4]> = vec![[
        String::new(),
        "Type".to_owned(),
        "Name".to_owned(),
        if is_preview { "Plan" } else { "Status" }.to_owned(),
    ]];
    #[allow(clippy::too_many_arguments)]
    fn walk<'a>(
        urn: &'a Urn,
        prefix: &str,
        is_last: bool,
        depth: usize,
        by_urn: &HashMap<&'a Urn, &'a StepRecord>,
        children: &HashMap<Option<&'a Urn>, Vec<&'a Urn>>,
        is_shown: &dyn Fn(&StepRecord) -> bool,
        is_preview: bool,
        rows: &mut Vec<[String; 4]>,
    ) {
        let step = by_urn[urn];
        let branch = if depth == 0 {
            String::new()
        } else if is_last {
            format!("{prefix}└─ ")
        } else {
            format!("{prefix}├─ ")
        };
        let status = match (&step.error, is_preview) {
            (Some(_), true) => format!("{} failed", step.op.verb()),
            (Some(_), false) => format!("**{} failed**", step.op.verb()),
            (None, true) if step.op == StepOp::Same => String::new(),
            (None, true) => step.op.verb().to_owned(),
            (None, false) if step.op == StepOp::Same => String::new(),
            (None, false) => format!(
                "{} ({})",
                step.op.past_tense(),
                format_duration(step.duration)
            ),
        };
        rows.push([
            step.op.symbol().to_owned(),
            format!("{branch}{}", display_type(&step.type_)),
            step.urn.name().to_owned(),
            status,
        ]);
        let kids: Vec<&&Urn> = children
            .get(&Some(urn))
            .map(|kids| {
                kids.iter()
                    .filter(|kid| keep(kid, by_urn, children, is_shown))
                    .collect()
            })
            .unwrap_or_default();
        let child_prefix = if depth == 0 {
            String::new()
        } else if is_last {
            format!("{prefix}   ")
        } else {
            format!("{prefix}│  ")
        };
        for (index, kid) in kids.iter().enumerate() {
            walk(
                kid,
                &child_prefix,
                index + 1 == kids.len(),
                depth + 1,
                by_urn,
                children,
                is_shown,
                is_preview,
                rows,
            );
        }
    }
    let roots: Vec<&Urn> = children
        .get(&None)
        .map(|roots| {
            roots
                .iter()
                .copied()
                .filter(|urn| keep(urn, &by_urn, &children, &is_shown))
                .collect()
        })
        .unwrap_or_default();
    for (index, root) in roots.iter().enumerate() {
        walk(
            root,
            "",
            index + 1 == roots.len(),
            0,
            &by_urn,
            &children,
            &is_shown,
            is_preview,
            &mut rows,
        );
    }
    if rows.len() == 1 {
        return Vec::new();
    }
    table(&rows)
        .into_iter()
        .map(|row| format!(" {row}"))
        .collect()
}

/// A step's duration as the tree shows it: `0.42s` under a second, `12s` above.
pub fn format_duration(duration: Duration) -> String {
    let seconds = duration.as_secs_f64();
    if seconds < 1.0 {
        format!("{seconds:.2}s")
    } else {
        format!("{seconds:.0}s")
    }
}

/// Property-level diff lines for `--diff`.
pub fn diff_lines(outcome: &DeployOutcome, show_secrets: bool) -> Vec<String> {
    let mut lines = Vec::new();
    for step in outcome.steps.iter().filter(|step| !is_hidden(step)) {
        if step.op == StepOp::Same || step.type_ == cairn_core::urn::ROOT_STACK_TYPE {
            continue;
        }
        lines.push(format!(
            "  {} {}: ({})",
            step.op.symbol(),
            display_type(&step.type_),
            step.op.verb()
        ));
        lines.push(format!("      [urn={}]", step.urn));
        let empty = PropertyMap::new();
        let old = step.old_inputs.as_ref().unwrap_or(&empty);
        let new = step.new_inputs.as_ref().unwrap_or(&empty);
        match step.op {
            StepOp::Create | StepOp::Read | StepOp::Import => {
                for (key, value) in new {
                    lines.push(format!(
                        "      {key}: {}",
                        display_value(value, show_secrets)
                    ));
                }
            }
            StepOp::Delete => {
                for (key, value) in old {
                    lines.push(format!(
                        "    - {key}: {}",
                        display_value(value, show_secrets)
                    ));
                }
            }
            _ => {
                for key in &step.changed_keys {
                    // A space after `+-` as after `~`, so the key does not run into the marker.
                    let marker = if step.replace_keys.contains(key) {
                        "+- "
                    } else {
                        "~ "
                    };
                    let render = |value: Option<&Value>| {
                        value
                            .map(|value| display_value(value, show_secrets))
                            .unwrap_or_else(|| "<none>".to_owned())
                    };
                    lines.push(format!(
                        "    {marker}{key}: {} => {}",
                        render(old.get(key)),
                        render(new.get(key))
                    ));
                }
            }
        }
    }
    lines
}

/// The `--json` form of an outcome.
pub fn outcome_json(
    outcome: &DeployOutcome,
    is_preview: bool,
    show_secrets: bool,
    bytes_written: Option<u64>,
    duration: Duration,
) -> serde_json::Value {
    let steps: Vec<serde_json::Value> = outcome
        .steps
        .iter()
        .filter(|step| !is_hidden(step))
        .map(|step| {
            let mut fields = serde_json::json!({
                "op": step.op.verb(),
                "urn": step.urn.as_str(),
                "type": step.type_,
            });
            if let Some(old) = &step.old_inputs {
                fields["oldInputs"] = map_to_json(old, show_secrets);
            }
            if let Some(new) = &step.new_inputs {
                fields["newInputs"] = map_to_json(new, show_secrets);
            }
            if !step.outputs.is_empty() {
                fields["outputs"] = map_to_json(&step.outputs, show_secrets);
            }
            if !step.changed_keys.is_empty() {
                fields["diffReasons"] = serde_json::json!(step.changed_keys);
            }
            if !step.replace_keys.is_empty() {
                fields["replaceReasons"] = serde_json::json!(step.replace_keys);
            }
            if let Some(error) = &step.error {
                fields["error"] = serde_json::Value::String(error.message.clone());
                fields["errorCause"] = serde_json::Value::from(error.cause.as_str());
            }
            fields
        })
        .collect();
    let summary: serde_json::Map<String, serde_json::Value> = outcome
        .changes
        .iter()
        .map(|(op, count)| (op.verb().to_owned(), serde_json::json!(count)))
        .collect();
    // Every failure as a value: which resource and operation (none for the program's own),
    // why, and the message.
    let step_diagnostics = outcome.failed_steps().filter_map(|step| {
        let error = step.error.as_ref()?;
        Some(serde_json::json!({
            "urn": step.urn.as_str(),
            "operation": step.op.verb(),
            "cause": error.cause.as_str(),
            "message": error.message,
        }))
    });
    let program_diagnostics = outcome.program_errors.iter().map(|message| {
        serde_json::json!({ "cause": cairn_engine::FailureCause::Program.as_str(), "message": message })
    });
    // What the failures kept from running: never run, so no operation.
    let blocked_diagnostics = outcome.blocked.iter().map(|blocked| {
        let mut diagnostic = serde_json::json!({
            "cause": cairn_engine::FailureCause::Blocked.as_str(),
            "message": format!("`{}` was not changed because something it depends on failed", blocked.name),
        });
        match &blocked.urn {
            Some(urn) => diagnostic["urn"] = serde_json::json!(urn.as_str()),
            None => diagnostic["variable"] = serde_json::json!(blocked.name),
        }
        diagnostic
    });
    let diagnostics: Vec<serde_json::Value> = step_diagnostics
        .chain(program_diagnostics)
        .chain(blocked_diagnostics)
        .collect();
    let mut json = serde_json::json!({
        "steps": steps,
        "changeSummary": summary,
        "outputs": map_to_json(&outcome.outputs, show_secrets),
        "diagnostics": diagnostics,
        "result": if outcome.has_failed() { "failed" } else if outcome.cancelled { "cancelled" } else { "succeeded" },
        "durationSeconds": duration.as_secs_f64(),
    });
    if is_preview {
        json["preview"] = serde_json::Value::Bool(true);
    }
    if let Some(bytes) = bytes_written {
        json["backendBytesWritten"] = serde_json::json!(bytes);
    }
    json
}

/// The Pulumi YAML that declares an imported resource with the inputs it was adopted with.
/// A secret input is never printed: the snippet asks for it instead.
pub fn resource_snippet(
    name: &str,
    type_token: &str,
    resource: &cairn_core::ResourceState,
) -> Vec<String> {
    let mut rows = vec![
        format!("  {name}:"),
        format!("    type: {}", display_type(type_token)),
    ];
    if !resource.inputs.is_empty() {
        rows.push("    properties:".to_owned());
        for (key, value) in &resource.inputs {
            let text = if value.contains_secret() {
                "{ fn::secret: \"<the secret value>\" }".to_owned()
            } else {
                value_to_json(value, false).to_string()
            };
            rows.push(format!("      {key}: {text}"));
        }
    }
    if resource.protect {
        rows.push("    options:".to_owned());
        rows.push("      protect: true".to_owned());
    }
    rows
}
