//! Durations written as Go writes them (`300ms`, `1.5h`, `2h45m`): Pulumi's `customTimeouts`
//! and, in PRODUCT.md, every duration Cairn reads. One parser, so a value the checker accepted
//! is the value the engine waits.

use std::time::Duration;

/// Parses Go's `time.ParseDuration` syntax: one or more decimal numbers, each with an optional
/// fraction and a unit (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`); `0` alone needs no unit. A sign
/// is refused (a timeout cannot be negative), and so is anything else (`1d`, `5 m`, `10`).
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let invalid = || {
        format!(
            "`{text}` is not a duration: write it as Go does, e.g. `30s`, `5m`, `1h30m` or `500ms`"
        )
    };
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err(invalid());
    }
    let mut total_seconds = 0.0_f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let number = &rest[..number_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(invalid());
        }
        let value: f64 = number.parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        total_seconds += value * seconds_per_unit;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total_seconds).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_are_read_as_go_reads_them() {
        for (text, seconds) in [
            ("0", 0.0),
            ("30s", 30.0),
            ("5m", 300.0),
            ("1h30m", 5400.0),
            ("2h45m10s", 9910.0),
            ("500ms", 0.5),
            ("1.5h", 5400.0),
            ("100us", 0.0001),
            ("250µs", 0.00025),
            ("10ns", 0.00000001),
        ] {
            let parsed = parse_go_duration(text).unwrap();
            assert!(
                (parsed.as_secs_f64() - seconds).abs() < 1e-12,
                "{text}: {parsed:?}"
            );
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for text in [
            "", "10", "1d", "5 m", "-5m", "+5m", "m", "1.2.3s", ".s", "5mm", "1h x", "1e3s",
        ] {
            assert!(parse_go_duration(text).is_err(), "`{text}` was accepted");
        }
    }
}
