//! Every environment variable Cairn reads, in one place.

/// The backend URL, when `--backend` is not given.
pub const CAIRN_BACKEND_URL: &str = "CAIRN_BACKEND_URL";
/// Where Cairn keeps its own files (default `~/.cairn`): login, selected stacks, default state.
pub const CAIRN_HOME: &str = "CAIRN_HOME";
/// The passphrase that protects a stack's secrets.
pub const CAIRN_CONFIG_PASSPHRASE: &str = "CAIRN_CONFIG_PASSPHRASE";
/// A file holding that passphrase.
pub const CAIRN_CONFIG_PASSPHRASE_FILE: &str = "CAIRN_CONFIG_PASSPHRASE_FILE";
/// When set, the `fake` provider appends every side effect to this file.
pub const CAIRN_FAKE_LEDGER: &str = "CAIRN_FAKE_LEDGER";
/// Fold an update's journal into a checkpoint once it is longer than this many bytes (tuning
/// and tests; the default is 64 MiB or four checkpoints).
pub const CAIRN_JOURNAL_FOLD_BYTES: &str = "CAIRN_JOURNAL_FOLD_BYTES";
/// The password for a `postgres://` backend whose URL has none, as libpq reads it.
pub const PGPASSWORD: &str = "PGPASSWORD";
/// Root certificates (PEM) to trust for a `postgres://...?sslmode=require` backend, as libpq.
pub const PGSSLROOTCERT: &str = "PGSSLROOTCERT";
/// Pulumi's names for the same settings, accepted so existing setups keep working.
pub const PULUMI_CONFIG_PASSPHRASE: &str = "PULUMI_CONFIG_PASSPHRASE";
pub const PULUMI_CONFIG_PASSPHRASE_FILE: &str = "PULUMI_CONFIG_PASSPHRASE_FILE";
/// The terminal's type: `dumb` cannot move the cursor, so progress stays one line per event.
pub const TERM: &str = "TERM";

/// A `cairn run` driver setting: `CAIRN_RUN_<DRIVER>_<SETTING>`, the setting's name in
/// SCREAMING_SNAKE_CASE (`logOutput` of `fake`: `CAIRN_RUN_FAKE_LOG_OUTPUT`).
pub fn run_setting_var(driver: &str, setting: &str) -> String {
    let mut name = format!("CAIRN_RUN_{}_", driver.to_ascii_uppercase());
    for c in setting.chars() {
        if c.is_ascii_uppercase() {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// The user's name, for `whoami` and history.
pub fn user_name() -> String {
    var("USER")
        .or_else(|| var("LOGNAME"))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// This machine's host name, for lock owners.
pub fn host_name() -> String {
    cairn_state::backend::local_host()
}

/// The command line, as lock owners and history show it (to anyone who can read the
/// backend): a password in a URL argument (`--backend postgres://user:PASSWORD@host/db`) is
/// replaced by `***`.
pub fn command_line() -> String {
    command_line_of(std::env::args())
}

fn command_line_of(args: impl Iterator<Item = String>) -> String {
    let mut words: Vec<String> = args
        .map(|word| {
            if word.contains("://") {
                cairn_backend_postgres::redact(&word)
            } else {
                word
            }
        })
        .collect();
    if let Some(program) = words.first_mut() {
        *program = "cairn".to_owned();
    }
    words.join(" ")
}

pub fn home_dir() -> std::path::PathBuf {
    var("HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("/"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn run_settings_are_read_in_screaming_snake_case() {
        assert_eq!(
            super::run_setting_var("fake", "logOutput"),
            "CAIRN_RUN_FAKE_LOG_OUTPUT"
        );
        assert_eq!(
            super::run_setting_var("fake", "startupLatencyMs"),
            "CAIRN_RUN_FAKE_STARTUP_LATENCY_MS"
        );
        assert_eq!(
            super::run_setting_var("docker", "host"),
            "CAIRN_RUN_DOCKER_HOST"
        );
    }

    #[test]
    fn a_password_in_a_url_argument_never_reaches_the_command_line() {
        let args = [
            "/usr/bin/cairn",
            "--backend",
            "postgres://me:pgsecretpw@db:5432/cairn",
            "up",
            "--backend=postgres://me:pgsecretpw@db/cairn?sslmode=require",
        ]
        .map(str::to_owned);
        let line = super::command_line_of(args.into_iter());
        assert!(!line.contains("pgsecretpw"), "{line}");
        assert!(
            line.starts_with("cairn --backend postgres://me:***@db:5432/cairn up"),
            "{line}"
        );
    }
}
