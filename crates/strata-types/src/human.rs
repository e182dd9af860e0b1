//! Human-readable sizes and durations, exactly as Docker prints them
//! (github.com/docker/go-units).

use std::time::{Duration, SystemTime};

use crate::gofloat::format_g;

const DECIMAL_UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
const BINARY_UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];

fn scaled(mut size: f64, base: f64, units: &[&'static str; 9]) -> (f64, &'static str) {
    let mut i = 0;
    while size >= base && i < units.len() - 1 {
        size /= base;
        i += 1;
    }
    (size, units[i])
}

/// A size in decimal units with three significant digits, as Docker's
/// `SIZE` columns (go-units `HumanSizeWithPrecision(size, 3)`).
///
/// ```
/// use strata_types::human_size;
/// assert_eq!(human_size(0), "0B");
/// assert_eq!(human_size(1234), "1.23kB");
/// assert_eq!(human_size(7_750_000), "7.75MB");
/// assert_eq!(human_size(1_000_000_000), "1GB");
/// ```
pub fn human_size(bytes: u64) -> String {
    human_size_with_precision(bytes as f64, 3)
}

/// go-units `HumanSizeWithPrecision`: decimal units, `precision`
/// significant digits, Go's `%g` layout (so 999.5 kB is `1e+03kB`, as in
/// Docker). `HumanSize` is precision 4.
pub fn human_size_with_precision(size: f64, precision: usize) -> String {
    let (size, unit) = scaled(size, 1000.0, &DECIMAL_UNITS);
    format!("{}{unit}", signed_g(size, precision))
}

/// go-units `BytesSize`: binary units with four significant digits, as
/// Docker prints memory (`1.5GiB`).
pub fn bytes_size(size: f64) -> String {
    let (size, unit) = scaled(size, 1024.0, &BINARY_UNITS);
    format!("{}{unit}", signed_g(size, 4))
}

fn signed_g(f: f64, precision: usize) -> String {
    let body = format_g(f, Some(precision), false);
    if f.is_sign_negative() && f != 0.0 {
        format!("-{body}")
    } else {
        body
    }
}

/// go-units `HumanDuration`: "Less than a second", "1 second", "5 seconds",
/// "About a minute", "5 minutes", "About an hour", "3 hours", "2 days",
/// "3 weeks", "4 months", "2 years".
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    let seconds = secs as u64;
    if seconds < 1 {
        return "Less than a second".to_owned();
    }
    if seconds == 1 {
        return "1 second".to_owned();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = (secs / 60.0) as u64;
    if minutes == 1 {
        return "About a minute".to_owned();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let hours = (secs / 3600.0 + 0.5) as u64;
    if hours == 1 {
        return "About an hour".to_owned();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", (secs / 3600.0) as u64 / 24 / 365)
}

/// "5 minutes ago", as Docker's `CREATED` column. A time in the future reads
/// "Less than a second ago", as in Docker.
pub fn ago(then: SystemTime) -> String {
    ago_at(then, SystemTime::now())
}

/// [`ago`] relative to a given `now`.
pub fn ago_at(then: SystemTime, now: SystemTime) -> String {
    let d = now.duration_since(then).unwrap_or(Duration::ZERO);
    format!("{} ago", human_duration(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        let cases: &[(u64, &str)] = &[
            (0, "0B"),
            (5, "5B"),
            (999, "999B"),
            (1000, "1kB"),
            (1024, "1.02kB"),
            (1234, "1.23kB"),
            (1235, "1.24kB"),
            (12_345, "12.3kB"),
            (123_456, "123kB"),
            (999_499, "999kB"),
            (999_500, "1e+03kB"),
            (1_000_000, "1MB"),
            (7_750_000, "7.75MB"),
            (77_800_000, "77.8MB"),
            (1_000_000_000, "1GB"),
            (1_500_000_000_000, "1.5TB"),
            (u64::MAX, "18.4EB"),
        ];
        for (bytes, want) in cases {
            assert_eq!(human_size(*bytes), *want, "human_size({bytes})");
        }
    }

    #[test]
    fn go_units_human_size_cases() {
        // go-units' own HumanSize (precision 4) test table.
        assert_eq!(human_size_with_precision(1000.0, 4), "1kB");
        assert_eq!(human_size_with_precision(1024.0, 4), "1.024kB");
        assert_eq!(human_size_with_precision(1_000_000.0, 4), "1MB");
        assert_eq!(human_size_with_precision(1_048_576.0, 4), "1.049MB");
        assert_eq!(human_size_with_precision(2e6, 4), "2MB");
        assert_eq!(human_size_with_precision(3.42e9, 4), "3.42GB");
        assert_eq!(human_size_with_precision(5.372e12, 4), "5.372TB");
        assert_eq!(human_size_with_precision(2.22e15, 4), "2.22PB");
        assert_eq!(human_size_with_precision(1e28, 4), "1e+04YB");
    }

    #[test]
    fn binary_sizes() {
        assert_eq!(bytes_size(1024.0), "1KiB");
        assert_eq!(bytes_size(1024.0 * 1024.0), "1MiB");
        assert_eq!(bytes_size(3.42 * 1024.0 * 1024.0 * 1024.0), "3.42GiB");
        assert_eq!(bytes_size(5.372 * 1024f64.powi(4)), "5.372TiB");
        assert_eq!(bytes_size(500.0), "500B");
    }

    #[test]
    fn human_durations() {
        let s = Duration::from_secs;
        let min = 60;
        let hour = 60 * min;
        let day = 24 * hour;
        let week = 7 * day;
        let month = 30 * day;
        let year = 365 * day;
        let cases: &[(Duration, &str)] = &[
            (Duration::from_millis(450), "Less than a second"),
            (s(1), "1 second"),
            (s(45), "45 seconds"),
            (s(59), "59 seconds"),
            (s(60), "About a minute"),
            (s(3 * min), "3 minutes"),
            (s(35 * min + 40), "35 minutes"),
            (s(59 * min), "59 minutes"),
            (s(hour), "About an hour"),
            (s(hour + 29 * min), "About an hour"),
            (s(hour + 31 * min), "2 hours"),
            (s(3 * hour + 29 * min), "3 hours"),
            (s(3 * hour + 31 * min), "4 hours"),
            (s(24 * hour), "24 hours"),
            (s(day + 12 * hour), "36 hours"),
            (s(2 * day), "2 days"),
            (s(7 * day), "7 days"),
            (s(13 * day + 5 * hour), "13 days"),
            (s(2 * week), "2 weeks"),
            (s(2 * week + 4 * day), "2 weeks"),
            (s(3 * week), "3 weeks"),
            (s(4 * week + 3 * day), "4 weeks"),
            (s(month), "4 weeks"),
            (s(month + 2 * week), "6 weeks"),
            (s(2 * month), "2 months"),
            (s(3 * month + week), "3 months"),
            (s(5 * month + 2 * week), "5 months"),
            (s(13 * month), "13 months"),
            (s(24 * month), "24 months"),
            (s(24 * month + 2 * week), "2 years"),
            (s(3 * year + 2 * month), "3 years"),
        ];
        for (d, want) in cases {
            assert_eq!(human_duration(*d), *want, "human_duration({d:?})");
        }
    }

    #[test]
    fn ago_reads_like_docker() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(ago_at(now - Duration::from_secs(300), now), "5 minutes ago");
        assert_eq!(ago_at(now, now), "Less than a second ago");
        assert_eq!(
            ago_at(now + Duration::from_secs(30), now),
            "Less than a second ago"
        );
        assert!(ago(SystemTime::now()).ends_with(" ago"));
    }
}
