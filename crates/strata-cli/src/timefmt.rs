//! Timestamps as Docker prints them. Written here rather than pulling in a date crate: two
//! fixed UTC formats need only the civil-date conversion below.

use std::time::{SystemTime, UNIX_EPOCH};

/// (year, month, day, seconds-of-day, nanos) in UTC.
fn civil(t: SystemTime) -> (i64, u32, u32, u64, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = (secs / 86_400) as i64;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, secs % 86_400, d.subsec_nanos())
}

/// RFC 3339 with nanoseconds, as in `docker inspect`: `2024-01-01T00:00:00.123456789Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let (y, mo, d, s, ns) = civil(t);
    let frac = if ns == 0 {
        String::new()
    } else {
        format!(".{ns:09}").trim_end_matches('0').to_owned()
    };
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}{frac}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Go's `time.Time.String()` in UTC, as Docker's list JSON `CreatedAt`:
/// `2024-01-01 00:00:00 +0000 UTC`.
pub fn go_time(t: SystemTime) -> String {
    let (y, mo, d, s, _) = civil(t);
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02} +0000 UTC",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's days-from-civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses an RFC 3339 timestamp as image configs carry them (`2024-01-01T00:00:00Z`,
/// fractional seconds and `+hh:mm` offsets allowed). `None` if it is not one, or before 1970.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let len = frac.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 {
            return None;
        }
        let digits = &frac[..len.min(9)];
        nanos = digits.parse::<u32>().ok()? * 10u32.pow(9 - digits.len() as u32);
        rest = &frac[len..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let oh = num(s.len() - 5..s.len() - 3)?;
            let om = num(s.len() - 2..s.len())?;
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + std::time::Duration::new(secs, nanos))
}

/// A `--since`/`--until` value as Docker takes it: an RFC 3339 timestamp, a date
/// (`2024-01-31`, midnight UTC), Unix seconds (`1700000000.5`), or a duration back from `now`
/// (`42m`, `1h30m`).
pub fn parse_since(s: &str, now: SystemTime) -> Option<SystemTime> {
    if let Some(t) = parse_rfc3339(s) {
        return Some(t);
    }
    if s.len() == 10
        && let Some(t) = parse_rfc3339(&format!("{s}T00:00:00Z"))
    {
        return Some(t);
    }
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if digits(secs) && (frac.is_empty() || digits(frac)) {
        let nanos = if frac.is_empty() {
            0
        } else {
            let f = &frac[..frac.len().min(9)];
            f.parse::<u32>().ok()? * 10u32.pow(9 - f.len() as u32)
        };
        return Some(UNIX_EPOCH + std::time::Duration::new(secs.parse().ok()?, nanos));
    }
    now.checked_sub(strata_types::parse_duration(s)?)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn formats_known_instants() {
        let t = UNIX_EPOCH + Duration::from_secs(1_704_067_200);
        assert_eq!(rfc3339(t), "2024-01-01T00:00:00Z");
        assert_eq!(go_time(t), "2024-01-01 00:00:00 +0000 UTC");
        let t = UNIX_EPOCH + Duration::new(951_782_400 + 3661, 120_000_000);
        assert_eq!(rfc3339(t), "2000-02-29T01:01:01.12Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn parses_since_values() {
        let now = UNIX_EPOCH + Duration::from_secs(1_704_067_200);
        assert_eq!(parse_since("2024-01-01T00:00:00Z", now), Some(now));
        assert_eq!(parse_since("2024-01-01", now), Some(now));
        assert_eq!(parse_since("1704067200", now), Some(now));
        assert_eq!(
            parse_since("1704067200.25", now),
            Some(now + Duration::from_millis(250))
        );
        assert_eq!(
            parse_since("1h30m", now),
            Some(now - Duration::from_secs(5400))
        );
        for bad in ["", "yesterday", "12x", "1.2.3"] {
            assert_eq!(parse_since(bad, now), None, "{bad}");
        }
    }

    #[test]
    fn parses_rfc3339() {
        let t = UNIX_EPOCH + Duration::from_secs(1_704_067_200);
        assert_eq!(parse_rfc3339("2024-01-01T00:00:00Z"), Some(t));
        assert_eq!(
            parse_rfc3339("2024-01-01T02:30:00.5+02:30"),
            Some(t + Duration::from_millis(500))
        );
        assert_eq!(
            parse_rfc3339("2000-02-29T01:01:01.123456789123Z"),
            Some(UNIX_EPOCH + Duration::new(951_782_400 + 3661, 123_456_789))
        );
        for bad in [
            "",
            "2024-01-01",
            "2024-13-01T00:00:00Z",
            "2024-01-01T00:00:00",
            "1969-12-31T00:00:00Z",
            "2024-01-01T00:00:00+0200",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
