//! Human sizes (`512m`, `1.5GB`, `2048`) as Docker's flags and options take them, and Go
//! durations (`1h30m`) as Docker's and containerd's settings take them.
//!
//! Docker has two rules (go-units): sizes of things on disk or in logs use decimal units
//! (`FromHumanSize`: k = 1000), memory and storage limits use binary units (`RAMInBytes`:
//! k = 1024). Both accept a fraction, any case, and an optional `b` or `ib` after the unit.

use std::time::Duration;

/// Which multiple a unit letter means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeUnits {
    /// k, m, g, t, p are powers of 1000 (Docker's log `max-size`).
    Decimal,
    /// k, m, g, t, p are powers of 1024 (Docker's `--memory`, storage limits).
    Binary,
}

/// Why a size was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// Not a number with an optional unit.
    #[error("{0:?} is not a size (a number with an optional unit k, m, g, t)")]
    Invalid(String),
    /// Negative, or too large for 64 bits.
    #[error("{0:?} is out of range")]
    OutOfRange(String),
}

/// Parses `<number>[unit][b|ib]` (no unit: bytes). Zero is allowed; callers that need a
/// positive size check that themselves.
pub fn parse_size(s: &str, units: SizeUnits) -> Result<u64, SizeError> {
    let t = s.trim();
    let invalid = || SizeError::Invalid(s.to_owned());
    if t.starts_with('-') {
        return Err(SizeError::OutOfRange(s.to_owned()));
    }
    let end = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(end);
    let n: f64 = num.parse().map_err(|_| invalid())?;
    let unit = unit.trim_start().to_ascii_lowercase();
    let (prefix, rest) = unit.split_at(unit.len().min(1));
    let power = match prefix {
        "" => 0,
        "b" if rest.is_empty() => 0,
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        "p" => 5,
        _ => return Err(invalid()),
    };
    if !matches!(rest, "" | "b" | "ib") {
        return Err(invalid());
    }
    let base: f64 = match units {
        SizeUnits::Decimal => 1000.0,
        SizeUnits::Binary => 1024.0,
    };
    let bytes = n * base.powi(power);
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(SizeError::OutOfRange(s.to_owned()));
    }
    Ok(bytes as u64)
}

/// A Go `time.ParseDuration` subset: a sequence of `<number><unit>` with units `h`, `m`,
/// `s`, `ms`; a bare `0` is zero.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let n: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let secs = match &rest[..unit] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
        rest = &rest[unit..];
        total += Duration::try_from_secs_f64(n * secs).ok()?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use SizeUnits::{Binary, Decimal};

    #[test]
    fn durations_parse_as_go_does() {
        assert_eq!(parse_duration("24h"), Some(Duration::from_secs(86400)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("5d"), None);
    }

    #[test]
    fn units_follow_the_rule_asked_for() {
        assert_eq!(parse_size("2048", Decimal), Ok(2048));
        assert_eq!(parse_size("10m", Decimal), Ok(10_000_000));
        assert_eq!(parse_size("1.5MB", Decimal), Ok(1_500_000));
        assert_eq!(parse_size("100 kib", Decimal), Ok(100_000));
        assert_eq!(parse_size("512m", Binary), Ok(512 << 20));
        assert_eq!(parse_size("2GB", Binary), Ok(2 << 30));
        assert_eq!(parse_size("1t", Binary), Ok(1 << 40));
        assert_eq!(parse_size("0", Binary), Ok(0));
        assert_eq!(parse_size("7b", Binary), Ok(7));
    }

    #[test]
    fn bad_sizes_are_refused() {
        for bad in ["", "m", "1x", "1mm", "1bb", "1.2.3", "ten"] {
            assert!(
                matches!(parse_size(bad, Decimal), Err(SizeError::Invalid(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_size("-1", Binary),
            Err(SizeError::OutOfRange(_))
        ));
        assert!(matches!(
            parse_size("99999999p", Binary),
            Err(SizeError::OutOfRange(_))
        ));
    }
}
