//! Values shared by every command line: durations (parsed and printed exactly, so a replay
//! line reads back to the same value) and shell quoting for replay lines.

use std::time::Duration;

/// A duration flag that must be more than zero.
pub fn parse_positive(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err("must be more than 0".into());
    }
    Ok(d)
}

/// Parses a duration with a unit: `500ms`, `10s`, `1.5s`, `2m`, `1h` (also `us`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "expected a number with a unit, like 500ms, 10s or 2m; got {s:?}"
        ));
    }
    let unit_ns: u128 = match unit.trim() {
        "" => {
            return Err(format!(
                "missing unit in {s:?}: write e.g. {num}s or {num}ms"
            ))
        }
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" | "min" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {s:?}: use ns, us, ms, s, m or h"
            ))
        }
    };
    // Exact decimal arithmetic: what `format_duration` prints reads back to the same value.
    let bad = || format!("bad number {num:?} in duration {s:?}");
    let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
    if (whole.is_empty() && frac.is_empty()) || frac.contains('.') || frac.len() > 18 {
        return Err(bad());
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let frac_ns = if frac.is_empty() {
        0
    } else {
        let digits: u128 = frac.parse().map_err(|_| bad())?;
        digits * unit_ns / 10u128.pow(frac.len() as u32)
    };
    let ns = whole
        .checked_mul(unit_ns)
        .and_then(|n| n.checked_add(frac_ns))
        .filter(|n| *n <= u128::from(u64::MAX))
        .ok_or_else(|| format!("duration {s:?} out of range"))?;
    Ok(Duration::from_nanos(ns as u64))
}

/// Formats a duration the way [`parse_duration`] reads it back, exactly.
pub fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns % 1_000_000_000 == 0 {
        format!("{}s", ns / 1_000_000_000)
    } else if ns % 1_000_000 == 0 {
        format!("{}ms", ns / 1_000_000)
    } else if ns % 1_000 == 0 {
        format!("{}us", ns / 1_000)
    } else {
        format!("{ns}ns")
    }
}

/// A short human reading of a duration: `850us`, `12.3ms`, `4.00s`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.2}s")
    } else if s >= 1e-3 {
        format!("{:.1}ms", s * 1e3)
    } else {
        format!("{:.0}us", s * 1e6)
    }
}

/// `s` quoted for a POSIX shell when it needs to be.
pub fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip() {
        for (s, d) in [
            ("500ms", Duration::from_millis(500)),
            ("10s", Duration::from_secs(10)),
            ("2m", Duration::from_secs(120)),
            ("1.5s", Duration::from_millis(1500)),
            ("250us", Duration::from_micros(250)),
            ("1500us", Duration::from_micros(1500)),
            ("1001ms", Duration::from_millis(1001)),
            ("1ns", Duration::from_nanos(1)),
            ("1234567ns", Duration::from_nanos(1_234_567)),
        ] {
            assert_eq!(parse_duration(s), Ok(d), "{s}");
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{s}");
        }
        for bad in ["", "10", "s", "1x", "1.2.3s", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
