#![allow(clippy::unwrap_used)]

use super::*;

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
