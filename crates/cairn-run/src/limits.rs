//! What bounds a run (Travis's defaults), and the size syntax PRODUCT.md fixes: SI units as
//! Travis writes them (`4.5MB` = 4,500,000 bytes), binary ones with `i` (`64KiB`).

use std::time::Duration;

/// The longest a timeout may be: 30 days, far past any build, and small enough that every
/// deadline computed from it, in milliseconds, fits anywhere.
pub const MAX_LIMIT: Duration = Duration::from_secs(30 * 24 * 3600);

/// The limits of one run. The defaults are Travis's: 50 minutes in all, 10 minutes without
/// output, 4.5 MB of log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunLimits {
    /// From the start of the instance to the end of the script.
    pub hard_timeout: Duration,
    /// The longest the script may go without writing anything.
    pub log_silence: Duration,
    /// The most bytes of log kept (beyond it, the head and the tail are kept and the run
    /// errors).
    pub max_log: u64,
    /// How long a script has to end after SIGTERM (the first cancel) before it is killed.
    pub grace: Duration,
}

impl Default for RunLimits {
    fn default() -> Self {
        RunLimits {
            hard_timeout: Duration::from_secs(50 * 60),
            log_silence: Duration::from_secs(10 * 60),
            max_log: 4_500_000,
            grace: Duration::from_secs(10),
        }
    }
}

/// Parses a size: a decimal number and a unit, `B`, `kB`/`KB`, `MB`, `GB` (powers of 1000) or
/// `KiB`, `MiB`, `GiB` (powers of 1024); a bare number is bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let invalid = || {
        format!(
            "`{text}` is not a size: write it as `4.5MB` (SI: 1 MB = 1,000,000 bytes), `64KiB` (binary) or a number of bytes"
        )
    };
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "kB" | "KB" | "k" | "K" => 1_000,
        "MB" | "M" => 1_000_000,
        "GB" | "G" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(invalid()),
    };
    if number.is_empty() || number.matches('.').count() > 1 {
        return Err(invalid());
    }
    let value: f64 = number.parse().map_err(|_| invalid())?;
    let bytes = (value * multiplier as f64).round();
    // 2^53: past it an f64 no longer holds every whole number, and no log is that long.
    if !bytes.is_finite() || bytes > 9_007_199_254_740_992.0 {
        return Err(invalid());
    }
    Ok(bytes as u64)
}

/// A duration as Go prints it, shortened (`50m`, `1m30s`, `1.5s`, `250ms`), for messages.
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis < 1000 {
        return format!("{millis}ms");
    }
    if !millis.is_multiple_of(1000) {
        return format!("{}s", duration.as_secs_f64());
    }
    let seconds = duration.as_secs();
    let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    let mut text = String::new();
    if hours > 0 {
        text.push_str(&format!("{hours}h"));
    }
    if minutes > 0 {
        text.push_str(&format!("{minutes}m"));
    }
    if seconds > 0 {
        text.push_str(&format!("{seconds}s"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_si_unless_binary() {
        assert_eq!(parse_size("4.5MB"), Ok(4_500_000));
        assert_eq!(parse_size("64KiB"), Ok(65_536));
        assert_eq!(parse_size("1MiB"), Ok(1_048_576));
        assert_eq!(parse_size("2kB"), Ok(2_000));
        assert_eq!(parse_size("1000"), Ok(1_000));
        assert_eq!(parse_size("12B"), Ok(12));
        for bad in ["", "MB", "1.2.3MB", "4.5 parsecs", "-1MB", "1e400"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_print_as_go_writes_them() {
        assert_eq!(format_duration(Duration::from_secs(3000)), "50m");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    }
}
