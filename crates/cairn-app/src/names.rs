//! Names checked before they reach a path or a query: apps (which become host names,
//! `APP.<domain>`, so DNS labels as tsuru's), pools, processes, environment variables, and
//! node addresses (`unix:///path` or `tcp://host:port`).

use crate::{AppError, AppResult};

/// The longest app name (tsuru's limit), short enough for a DNS label with a suffix.
pub const MAX_APP_NAME: usize = 40;
/// The longest pool or process name.
pub const MAX_NAME: usize = 63;

/// An app name: lowercase letters, digits and `-`, starting with a letter, not ending with
/// `-`, 1 to 40 long (a DNS label, as the router serves `APP.<domain>`).
pub fn validate_app_name(name: &str) -> AppResult<()> {
    let is_valid = name.len() <= MAX_APP_NAME
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if is_valid {
        Ok(())
    } else {
        Err(AppError::Invalid(format!(
            "`{}` is not an app name: use 1 to {MAX_APP_NAME} lowercase letters, digits or `-`, \
             starting with a letter and not ending with `-`",
            printable(name)
        )))
    }
}

/// One label of a DNS name: 1 to 63 letters, digits and `-`, not starting or ending with `-`.
pub fn is_dns_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// A custom host name for an app (`cairn app cname add`): a DNS name of at least two labels,
/// each of letters, digits and `-` (not first or last), 253 characters at most; stored
/// lowercase (`normalize_cname`).
pub fn validate_cname(name: &str) -> AppResult<()> {
    let labels: Vec<&str> = name.split('.').collect();
    let is_valid =
        name.len() <= 253 && labels.len() >= 2 && labels.iter().all(|label| is_dns_label(label));
    if is_valid {
        Ok(())
    } else {
        Err(AppError::Invalid(format!(
            "`{}` is not a host name: use labels of letters, digits and `-`, joined by dots \
             (`www.example.com`)",
            printable(name)
        )))
    }
}

/// A custom host name as stored and matched: lowercase, without a trailing dot.
pub fn normalize_cname(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// A pool name: lowercase letters, digits, `-` and `_`, starting with a letter or digit, 1 to
/// 63 long.
pub fn validate_pool_name(name: &str) -> AppResult<()> {
    check_label("pool", name, "lowercase letters", |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit()
    })
}

/// A process name (a Procfile's `name:`): letters, digits, `-` and `_`, starting with a letter
/// or digit, 1 to 63 long.
pub fn validate_process_name(name: &str) -> AppResult<()> {
    check_label("process", name, "letters", |c| c.is_ascii_alphanumeric())
}

/// `name` is 1 to `MAX_NAME` characters that `is_alphanumeric` accepts, `-` or `_`, starting
/// with one `is_alphanumeric` accepts.
fn check_label(
    kind: &str,
    name: &str,
    letters: &str,
    is_alphanumeric: fn(char) -> bool,
) -> AppResult<()> {
    let is_valid = name.len() <= MAX_NAME
        && name.starts_with(is_alphanumeric)
        && name
            .chars()
            .all(|c| is_alphanumeric(c) || matches!(c, '-' | '_'));
    if is_valid {
        return Ok(());
    }
    Err(AppError::Invalid(format!(
        "`{}` is not a {kind} name: use 1 to {MAX_NAME} {letters}, digits, `-` or `_`, \
         starting with a letter or digit",
        printable(name)
    )))
}

/// An environment variable's name: a shell name (`[A-Za-z_][A-Za-z0-9_]*`), and neither
/// `PORT` nor `CAIRN_*`, which Cairn sets in every unit.
pub fn validate_env_name(name: &str) -> AppResult<()> {
    let is_shell_name = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.len() <= 256
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !is_shell_name {
        return Err(AppError::Invalid(format!(
            "`{}` is not an environment variable name: use letters, digits and `_`, not \
             starting with a digit",
            printable(name)
        )));
    }
    if name == "PORT" || name.starts_with("CAIRN_") {
        return Err(AppError::Invalid(format!(
            "`{name}` is set by Cairn in every unit and cannot be changed"
        )));
    }
    Ok(())
}

/// A node's address: `unix:///absolute/path` (a Docker Engine socket) or `tcp://host:port`.
/// Returned as given when valid.
pub fn validate_node_address(address: &str) -> AppResult<()> {
    let invalid = |why: &str| {
        AppError::Invalid(format!(
            "`{}` is not a node address: {why}; use `unix:///path/to/docker.sock` or \
             `tcp://host:port`",
            printable(address)
        ))
    };
    if address.len() > 1024 || address.chars().any(char::is_control) {
        return Err(invalid("it is too long or holds control characters"));
    }
    if let Some(path) = address.strip_prefix("unix://") {
        if !path.starts_with('/') || path.len() < 2 {
            return Err(invalid("a socket path must be absolute"));
        }
        return Ok(());
    }
    if let Some(rest) = address.strip_prefix("tcp://") {
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| invalid("a port is missing"))?;
        let host_is_valid = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'));
        if !host_is_valid {
            return Err(invalid("the host is not a host name or IP address"));
        }
        if port.parse::<u16>().map_or(true, |port| port == 0) {
            return Err(invalid("the port must be a number from 1 to 65535"));
        }
        return Ok(());
    }
    Err(invalid("the scheme must be `unix` or `tcp`"))
}

/// Checks every name of a new app: its name, pool and processes (distinct).
pub fn validate_new_app(app: &crate::NewApp) -> AppResult<()> {
    validate_app_name(&app.name)?;
    validate_pool_name(&app.pool)?;
    validate_processes(&app.processes)
}

/// Checks process names, and that none repeats.
pub fn validate_processes(processes: &[crate::Process]) -> AppResult<()> {
    let mut seen = std::collections::BTreeSet::new();
    for process in processes {
        validate_process_name(&process.name)?;
        if process.command.trim().is_empty() {
            return Err(AppError::Invalid(format!(
                "process `{}` has an empty command",
                process.name
            )));
        }
        // One line, as a Procfile has it: a newline would let a command pass for more.
        if process.command.chars().any(|c| c.is_control() && c != '\t') {
            return Err(AppError::Invalid(format!(
                "process `{}`: a command is one line, without control characters",
                process.name
            )));
        }
        if !seen.insert(process.name.as_str()) {
            return Err(AppError::Invalid(format!(
                "process `{}` is given twice",
                process.name
            )));
        }
    }
    Ok(())
}

/// Checks a node's address, pool and metadata keys (1 to 256 characters, no whitespace or
/// control characters, no `=`).
pub fn validate_node(node: &crate::Node) -> AppResult<()> {
    validate_node_address(&node.address)?;
    validate_pool_name(&node.pool)?;
    node.metadata
        .keys()
        .try_for_each(|key| validate_metadata_key(key))
}

pub fn validate_metadata_key(key: &str) -> AppResult<()> {
    // No whitespace either: `node ls` shows `key=value,...`, where a space would blur which
    // key is which.
    if key.is_empty()
        || key.len() > 256
        || key.contains('=')
        || key.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(AppError::Invalid(format!(
            "`{}` is not a metadata key: use 1 to 256 characters, without `=`, spaces or \
             control characters",
            printable(key)
        )));
    }
    Ok(())
}

/// A name as an error may quote it: control characters escaped, so a hostile name cannot
/// move the terminal's cursor.
fn printable(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(validate: fn(&str) -> AppResult<()>, good: &[&str], bad: &[&str]) {
        for name in good {
            assert!(validate(name).is_ok(), "`{name}` should be accepted");
        }
        for name in bad {
            assert!(validate(name).is_err(), "`{name}` should be refused");
        }
    }

    #[test]
    fn app_names_are_dns_labels() {
        check(
            validate_app_name,
            &["web", "my-app2", &"a".repeat(40)],
            &[
                "",
                "App",
                "2app",
                "app-",
                "a_b",
                "a.b",
                "../x",
                "a/b",
                &"a".repeat(41),
                "é",
            ],
        );
        let error = validate_app_name("Bad/Name").unwrap_err().to_string();
        assert_eq!(
            error,
            "`Bad/Name` is not an app name: use 1 to 40 lowercase letters, digits or `-`, \
             starting with a letter and not ending with `-`"
        );
    }

    #[test]
    fn pool_and_process_names_are_labels() {
        check(
            validate_pool_name,
            &["default", "eu_1", "2nd"],
            &["", "-x", "Pool", ".", "a b", &"p".repeat(64)],
        );
        check(
            validate_process_name,
            &["web", "Worker", "clock_2", "release-phase"],
            &["", "_x", "a:b", "a b", "../etc"],
        );
    }

    #[test]
    fn env_names_are_shell_names_cairn_does_not_set() {
        check(
            validate_env_name,
            &["DATABASE_URL", "_x", "a1"],
            &["", "1A", "A-B", "A B", "PORT", "CAIRN_APP", "A=B"],
        );
        assert_eq!(
            validate_env_name("PORT").unwrap_err().to_string(),
            "`PORT` is set by Cairn in every unit and cannot be changed"
        );
    }

    #[test]
    fn node_addresses_are_unix_sockets_or_tcp() {
        check(
            validate_node_address,
            &[
                "unix:///var/run/docker.sock",
                "tcp://10.0.0.2:2375",
                "tcp://engine.local:2376",
                "tcp://[::1]:2375",
            ],
            &[
                "",
                "/var/run/docker.sock",
                "unix://relative.sock",
                "tcp://host",
                "tcp://host:0",
                "tcp://host:99999",
                "tcp://:2375",
                "http://host:80",
                "tcp://a\nb:1",
            ],
        );
        assert_eq!(
            validate_node_address("tcp://host").unwrap_err().to_string(),
            "`tcp://host` is not a node address: a port is missing; use \
             `unix:///path/to/docker.sock` or `tcp://host:port`"
        );
    }
}
