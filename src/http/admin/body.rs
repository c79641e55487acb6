//! Request bodies and queries: strict JSON that names the field at fault.
//!
//! Every body type denies unknown fields; a bad one answers 400 with the
//! field's path (`allowed_origins[1]`, `retention_days`), never a generic
//! "bad request".

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use super::error::ApiError;

/// Admin bodies are small; this bounds what a request can make the node
/// buffer before it is refused.
pub const MAX_BODY_BYTES: usize = crate::http::serve::MAX_BODY_BYTES;

/// Parses a JSON body of type `T`, naming the field of the first problem.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::BadRequest(
            "body: a JSON object is required".into(),
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let message = first_clause(&error.inner().to_string());
        if error.inner().is_syntax() || error.inner().is_eof() {
            return ApiError::BadRequest(format!("body: not valid JSON: {message}"));
        }
        named_problem("body", &error.path().to_string(), message)
    })?;
    deserializer
        .end()
        .map_err(|_| ApiError::BadRequest("body: trailing characters after the JSON".into()))?;
    Ok(value)
}

/// Parses a query string (`None`: no query) into `T`, naming the field
/// of the first problem, unknown parameters included.
pub fn parse_query<T: DeserializeOwned>(query: Option<&str>) -> Result<T, ApiError> {
    let pairs = form_urlencoded::parse(query.unwrap_or("").as_bytes());
    let deserializer = serde_urlencoded::Deserializer::new(pairs);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        named_problem(
            "query",
            &error.path().to_string(),
            error.inner().to_string(),
        )
    })
}

/// A problem at `path` (`.` for the whole `what`) as the error naming it.
fn named_problem(what: &str, path: &str, message: String) -> ApiError {
    match (path, missing_field(&message)) {
        (".", Some(field)) => ApiError::bad_field(field, message),
        (".", None) => ApiError::BadRequest(format!("{what}: {message}")),
        _ => ApiError::bad_field(path, message),
    }
}

/// The field of serde's "missing field `x`".
fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split_once('`').map(|(field, _)| field.to_owned())
}

/// serde_json appends " at line L column C"; the field name says more.
fn first_clause(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// For `PATCH` fields that may be set to `null`: absent is `None`, `null`
/// is `Some(None)`.
pub fn nullable<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        name: String,
        days: u32,
        #[serde(default, deserialize_with = "nullable")]
        note: Option<Option<String>>,
    }

    fn field_of(body: &str) -> Option<String> {
        match parse_json::<Sample>(body.as_bytes()) {
            Err(ApiError::BadField { field, .. }) => Some(field),
            _ => None,
        }
    }

    #[test]
    fn problems_name_their_field() {
        assert_eq!(
            field_of(r#"{"name":"a","days":-1}"#).as_deref(),
            Some("days")
        );
        assert_eq!(field_of(r#"{"name":7,"days":1}"#).as_deref(), Some("name"));
        assert_eq!(
            field_of(r#"{"name":"a","days":1,"colour":"red"}"#).as_deref(),
            Some("colour")
        );
    }

    #[test]
    fn broken_json_and_missing_fields_are_bad_requests() {
        assert_eq!(field_of(r#"{"name":"a"}"#).as_deref(), Some("days"));
        for body in ["", "{", "[]", r#"{"name":"a","days":1} x"#] {
            assert!(
                matches!(
                    parse_json::<Sample>(body.as_bytes()),
                    Err(ApiError::BadRequest(_))
                ),
                "{body}"
            );
        }
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Filter {
        from: Option<String>,
        limit: Option<u32>,
    }

    #[test]
    fn query_problems_name_their_parameter() {
        let ok: Filter = parse_query(Some("from=2026-01-01T00%3A00%3A00Z&limit=5")).unwrap();
        assert_eq!(ok.from.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert!(parse_query::<Filter>(None).is_ok());
        let field = |q| match parse_query::<Filter>(Some(q)) {
            Err(ApiError::BadField { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field("limit=x"), "limit");
        assert_eq!(field("colour=red"), "colour");
    }

    #[test]
    fn null_and_absent_differ_for_nullable_fields() {
        let absent: Sample = parse_json(br#"{"name":"a","days":1}"#).unwrap();
        let null: Sample = parse_json(br#"{"name":"a","days":1,"note":null}"#).unwrap();
        assert_eq!(absent.note, None);
        assert_eq!(null.note, Some(None));
    }
}
