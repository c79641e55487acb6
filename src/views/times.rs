//! Times in the public views: RFC 3339 in UTC with milliseconds
//! (`2026-11-22T10:00:00.000Z`); the store keeps unix milliseconds.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `ms` (unix milliseconds) as RFC 3339 UTC with milliseconds.
pub fn format(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|time| time.format(&Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::format;

    #[test]
    fn writes_utc_with_milliseconds() {
        assert_eq!(format(1_795_000_000_123), "2026-11-18T11:06:40.123Z");
    }
}
