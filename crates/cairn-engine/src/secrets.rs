//! Secrets during a run: masking their plaintexts out of every message that leaves the engine,
//! revealing them for a provider call, and resealing what the provider returns.
//!
//! Providers see plain values (see `cairn_provider`): the engine reveals secret inputs before a
//! call (`reveal_map`) and decides afterwards which outputs are secret (`reseal_outputs`). Every
//! secret plaintext the run meets is remembered in `SecretTexts`, so that log lines, warnings and
//! step errors (a failed command's output) never quote one; `HeldLogs` holds a resource's log
//! lines until its step ends, for secrets learned only from its outputs.

use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use cairn_core::{PropertyMap, Urn, Value};
use cairn_provider::{LogSeverity, LogSink};
use tokio::sync::mpsc::UnboundedSender;

use crate::events::EngineEvent;

/// A property map with every secret revealed, for a provider call.
pub(crate) fn reveal_map(map: &PropertyMap) -> PropertyMap {
    map.iter()
        .map(|(key, value)| (key.clone(), value.reveal()))
        .collect()
}

/// The plaintexts of secrets, shared with every log sink, so a provider that prints a secret
/// (a command echoing its environment) never puts it in the log. Kept longest first, so that a
/// secret containing another is masked whole.
#[derive(Clone, Default)]
pub(crate) struct SecretTexts(Arc<std::sync::RwLock<BTreeSet<LongestFirst>>>);

/// A secret's plaintext, ordered by length, longest first.
type LongestFirst = (Reverse<usize>, String);

impl SecretTexts {
    pub fn of_values<'a>(values: impl Iterator<Item = &'a Value>) -> SecretTexts {
        let texts = SecretTexts::default();
        for value in values {
            texts.add_secrets_of(value);
        }
        texts
    }

    /// Remembers every secret string (and number, as text) inside `value`.
    pub fn add_secrets_of(&self, value: &Value) {
        let mut found = Vec::new();
        collect_secret_texts(value, false, &mut found);
        if found.is_empty() {
            return;
        }
        if let Ok(mut texts) = self.0.write() {
            for text in found {
                if !text.is_empty() {
                    texts.insert((Reverse(text.len()), text));
                }
            }
        }
    }

    /// The plaintexts, longest first.
    fn texts(&self) -> Vec<String> {
        match self.0.read() {
            Ok(texts) => texts.iter().map(|(_, text)| text.clone()).collect(),
            Err(_) => Vec::new(),
        }
    }

    pub fn mask(&self, message: &str) -> String {
        let Ok(texts) = self.0.read() else {
            return "[message hidden: secrets unavailable]".to_owned();
        };
        let mut masked = message.to_owned();
        for (_, text) in texts.iter() {
            if masked.contains(text.as_str()) {
                masked = masked.replace(text.as_str(), "[secret]");
            }
        }
        masked
    }
}

type HeldLine = (LogSeverity, String);

/// Log lines of one resource held back until its step ends, then sent masked with the secrets
/// known by then (see `RunState::held_call_context`): its provider may print a secret output
/// before the engine can know it is one.
pub(crate) struct HeldLogs {
    lines: Arc<Mutex<Vec<HeldLine>>>,
    urn: Urn,
    events: UnboundedSender<EngineEvent>,
    secrets: SecretTexts,
}

impl HeldLogs {
    pub fn new(urn: &Urn, events: UnboundedSender<EngineEvent>, secrets: SecretTexts) -> HeldLogs {
        HeldLogs {
            lines: Arc::default(),
            urn: urn.clone(),
            events,
            secrets,
        }
    }

    /// A log sink that holds its lines here.
    pub fn sink(&self) -> LogSink {
        let lines = self.lines.clone();
        LogSink::new(move |severity, message| {
            if let Ok(mut lines) = lines.lock() {
                lines.push((severity, message.to_owned()));
            }
        })
    }
}

impl Drop for HeldLogs {
    fn drop(&mut self) {
        let lines = match self.lines.lock() {
            Ok(mut lines) => std::mem::take(&mut *lines),
            Err(_) => return,
        };
        for (severity, message) in lines {
            let _ = self.events.send(EngineEvent::Log {
                urn: self.urn.clone(),
                severity,
                message: self.secrets.mask(&message),
            });
        }
    }
}

/// Whether a plain string somewhere in `value` contains one of `texts`.
fn mentions_any(value: &Value, texts: &[String]) -> bool {
    match value {
        Value::String(text) => texts.iter().any(|secret| text.contains(secret.as_str())),
        Value::Array(items) => items.iter().any(|item| mentions_any(item, texts)),
        Value::Object(map) => map.values().any(|item| mentions_any(item, texts)),
        _ => false,
    }
}

fn collect_secret_texts(value: &Value, is_secret: bool, found: &mut Vec<String>) {
    match value {
        Value::Secret(inner) => collect_secret_texts(inner, true, found),
        Value::String(text) if is_secret => push_spellings(text, found),
        Value::Number(number) if is_secret => found.push(number.to_string()),
        Value::Array(items) => {
            for item in items {
                collect_secret_texts(item, is_secret, found);
            }
        }
        Value::Object(map) => {
            for item in map.values() {
                collect_secret_texts(item, is_secret, found);
            }
        }
        _ => {}
    }
}

/// A secret, and the other ways it is printed: JSON-escaped (a command printing JSON turns a
/// `"` in it into `\"`), and line by line when it has several lines (a key, a certificate),
/// since log lines split it. Lines shorter than 4 characters are left alone: masking every
/// `}` or blank would only hide unrelated text.
fn push_spellings(text: &str, found: &mut Vec<String>) {
    found.push(text.to_owned());
    let escaped = json_escaped(text);
    if escaped != text {
        found.push(escaped);
    }
    if text.contains('\n') {
        for line in text.lines().map(|line| line.trim_end_matches('\r')) {
            if line.trim().chars().count() >= 4 {
                found.push(line.to_owned());
            }
        }
    }
}

/// `text` as it stands between the quotes of a JSON string.
fn json_escaped(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => escaped.push_str("\\\""),
            '\\' => escaped.push_str("\\\\"),
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            c if (c as u32) < 0x20 => escaped.push_str(&format!("\\u{:04x}", c as u32)),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Property maps of a provider's outputs with secretness re-applied: outputs named like a
/// secret input, and outputs the schema marks secret, stay secret.
pub(crate) fn reseal_outputs(
    known_secrets: &SecretTexts,
    inputs: &PropertyMap,
    outputs: PropertyMap,
    schema_secret: &(dyn Fn(&str) -> bool + Sync),
) -> PropertyMap {
    // An output that repeats a secret (a command echoing its token) is as secret: the
    // plaintexts of this resource's secret inputs and of every secret the run has seen.
    let mut secret_texts = Vec::new();
    for value in inputs.values() {
        collect_secret_texts(value, false, &mut secret_texts);
    }
    secret_texts.extend(known_secrets.texts());
    secret_texts.retain(|text| !text.is_empty());
    let outputs: PropertyMap = outputs
        .into_iter()
        .map(|(key, value)| {
            let was_secret = inputs.get(&key).is_some_and(Value::contains_secret)
                || mentions_any(&value, &secret_texts);
            let value = if (was_secret || schema_secret(&key)) && !matches!(value, Value::Unknown) {
                value.into_secret()
            } else {
                value
            };
            (key, value)
        })
        .collect();
    // A secret output is masked from now on: in its own provider's log lines and errors, and
    // wherever a later resource repeats it.
    for value in outputs.values() {
        known_secrets.add_secrets_of(value);
    }
    outputs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_masked_json_escaped_and_line_by_line() {
        let texts = SecretTexts::default();
        texts.add_secrets_of(&Value::string("Tr0ub\\&\"ESC").into_secret());
        texts.add_secrets_of(
            &Value::string("-----BEGIN KEY-----\nMLSECRET-LINE2\n-----END KEY-----").into_secret(),
        );
        assert_eq!(
            texts.mask(r#"{"password": "Tr0ub\\&\"ESC"}"#),
            r#"{"password": "[secret]"}"#
        );
        assert_eq!(texts.mask("line: MLSECRET-LINE2"), "line: [secret]");
    }

    #[test]
    fn a_secret_that_contains_another_is_masked_whole() {
        let texts = SecretTexts::default();
        // Learned shortest first: masking in that order would leave `-suffix` showing.
        texts.add_secrets_of(&Value::string("hunter2").into_secret());
        texts.add_secrets_of(&Value::string("hunter2-suffix").into_secret());
        texts.add_secrets_of(&Value::string("not secret"));
        assert_eq!(
            texts.mask("a hunter2-suffix and a hunter2, not secret"),
            "a [secret] and a [secret], not secret"
        );
    }
}
