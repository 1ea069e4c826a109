//! `cairn config`, `config set|get|rm`: the stack's configuration in `Cairn.<stack>.yaml`.

use std::io::Read;

use anyhow::Context;

use crate::cli::{ConfigArgs, ConfigCommand};
use crate::commands::{self, render};
use crate::output;
use crate::stack_config::{ConfigEntry, StackConfigFile};
use crate::workspace::Workspace;

/// Longer keys could not be written as plain YAML keys, and the file could not be read back.
const MAX_KEY_CHARS: usize = 256;

pub async fn run(workspace: &Workspace, args: ConfigArgs) -> anyhow::Result<()> {
    let project = workspace.project_name()?;
    let context = commands::open_stack(workspace).await?;
    // Pulumi's `config.ParseKey`: `name` (in the project's namespace) or `namespace:name`,
    // neither part empty; and short enough for a YAML key (1024 characters at most).
    let full_key = |key: &str| -> anyhow::Result<String> {
        let (namespace, name) = key.split_once(':').unwrap_or((&project, key));
        if key.chars().count() > MAX_KEY_CHARS {
            return Err(crate::bad_input(format!(
                "a configuration key may have at most {MAX_KEY_CHARS} characters"
            )));
        }
        if namespace.is_empty() || name.is_empty() {
            return Err(crate::bad_input(format!(
                "`{key}` is not a configuration key: use `name` or `namespace:name`"
            )));
        }
        Ok(format!("{namespace}:{name}"))
    };
    match args.command {
        None => list(workspace, &context, &project),
        Some(ConfigCommand::Get { key }) => {
            let key = full_key(&key)?;
            let entry = context.config_file.get(&key).ok_or_else(|| {
                crate::bad_input(format!(
                    "configuration key `{key}` not found for stack `{}`",
                    context.stack.name
                ))
            })?;
            let text = match entry {
                ConfigEntry::Plain(serde_json::Value::String(text)) => text.clone(),
                ConfigEntry::Plain(other) => other.to_string(),
                ConfigEntry::Secure(ciphertext) => context
                    .crypter
                    .decrypt(ciphertext)
                    .with_context(|| format!("decrypting `{key}`"))?,
            };
            if workspace.global.json {
                output::json(&serde_json::json!({
                    "value": text,
                    "secret": matches!(entry, ConfigEntry::Secure(_)),
                }));
            } else {
                output::line(&text);
            }
            Ok(())
        }
        Some(ConfigCommand::Set {
            key,
            value,
            secret,
            plaintext,
        }) => {
            let key = full_key(&key)?;
            // A key the project declares `secret: true` is sealed even without `--secret`
            // (`--plaintext` says otherwise on purpose): it must never sit in the file in
            // the clear by a slip.
            let secret = secret || (!plaintext && workspace.project()?.declares_secret(&key));
            let value = match value {
                Some(value) => value,
                None => {
                    // Reading from stdin keeps a secret off the command line (and out of
                    // shell history).
                    let mut text = String::new();
                    std::io::stdin().read_to_string(&mut text)?;
                    text.trim_end_matches(['\n', '\r']).to_owned()
                }
            };
            let entry = if secret {
                ConfigEntry::Secure(context.crypter.encrypt(&value)?)
            } else {
                ConfigEntry::Plain(serde_json::Value::String(value))
            };
            // Read again under the lock: the crypter may have just written the stack's new
            // salt, and other `config set`s may be running.
            StackConfigFile::edit(&context.config_file.path, |file| {
                file.set(&key, entry);
                Ok(())
            })
        }
        Some(ConfigCommand::Rm { key }) => {
            let key = full_key(&key)?;
            StackConfigFile::edit(&context.config_file.path, |file| {
                if file.remove(&key) {
                    Ok(())
                } else {
                    Err(crate::bad_input(format!(
                        "configuration key `{key}` not found"
                    )))
                }
            })
        }
    }
}

fn list(
    workspace: &Workspace,
    context: &commands::StackContext,
    project: &str,
) -> anyhow::Result<()> {
    let show_secrets = workspace.global.show_secrets;
    let mut shown = Vec::new();
    for (key, entry) in &context.config_file.entries {
        let (value, is_secret) = match entry {
            ConfigEntry::Plain(serde_json::Value::String(text)) => (text.clone(), false),
            ConfigEntry::Plain(other) => (other.to_string(), false),
            ConfigEntry::Secure(ciphertext) if show_secrets => (
                context
                    .crypter
                    .decrypt(ciphertext)
                    .with_context(|| format!("decrypting `{key}`"))?,
                true,
            ),
            ConfigEntry::Secure(_) => ("[secret]".to_owned(), true),
        };
        shown.push((key.clone(), value, is_secret));
    }
    if workspace.global.json {
        let object: serde_json::Map<String, serde_json::Value> = shown
            .into_iter()
            .map(|(key, value, is_secret)| {
                let mut fields = serde_json::json!({ "secret": is_secret });
                if !is_secret || show_secrets {
                    fields["value"] = serde_json::Value::String(value);
                }
                (key, fields)
            })
            .collect();
        output::json(&serde_json::Value::Object(object));
        return Ok(());
    }
    let mut rows = vec![["KEY".to_owned(), "VALUE".to_owned()]];
    for (key, value, _) in shown {
        let short_key = key
            .strip_prefix(&format!("{project}:"))
            .map(str::to_owned)
            .unwrap_or(key);
        rows.push([short_key, value]);
    }
    for row in render::table(&rows) {
        output::line(&row);
    }
    Ok(())
}
