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
}
