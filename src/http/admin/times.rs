//! Times in the admin API: RFC 3339 in UTC (`2026-11-22T10:00:00.000Z`)
//! both ways; the store keeps unix milliseconds. Written as every public
//! view writes them ([`crate::views::times`]), read from queries here.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::error::ApiError;
pub use crate::views::times::format;

/// An optional RFC 3339 query value as unix milliseconds; a bad one names
/// `field`.
pub fn parse(field: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let time = OffsetDateTime::parse(value, &Rfc3339).map_err(|_| {
        ApiError::bad_field(
            field,
            "must be an RFC 3339 time such as 2026-11-22T10:00:00Z",
        )
    })?;
    let ms = time.unix_timestamp_nanos() / 1_000_000;
    i64::try_from(ms)
        .map(Some)
        .map_err(|_| ApiError::bad_field(field, "out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_milliseconds() {
        let ms = 1_795_000_000_123;
        let text = format(ms);
        assert!(text.ends_with('Z'), "{text}");
        assert_eq!(parse("from", Some(&text)).unwrap(), Some(ms));
        assert_eq!(
            parse("from", Some("2026-11-22T10:00:00+01:00")).unwrap(),
            Some(1_795_338_000_000)
        );
    }

    #[test]
    fn bad_times_name_the_field() {
        assert_eq!(parse("to", None).unwrap(), None);
        assert!(matches!(
            parse("to", Some("yesterday")),
            Err(ApiError::BadField { field, .. }) if field == "to"
        ));
    }
}
