//! Who is calling: the [`Caller`] extractor behind every admin route.
//!
//! `Authorization: Bearer cg_<id>_<secret>`, or else the dashboard's
//! session cookie (see [`super::session`]). A missing, malformed, unknown,
//! wrong or revoked key or session is 401, all alike, so a probe learns
//! nothing about which keys exist. A well-formed key or session costs one
//! row lookup by id and one HMAC compared in constant time, whether the id
//! names a key or not.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

pub use super::caller::Caller;
use super::caller::{authenticate_key, checked_key};
use super::error::ApiError;
use super::session;
use super::state::AdminState;
use crate::store::Role;

impl FromRequestParts<AdminState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AdminState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(bearer_token)
                .ok_or(ApiError::Unauthorized)?;
            return authenticate_key(state, token)
                .await
                .map(|(caller, _)| caller);
        }
        let cookie = session::cookie_value(&parts.headers).ok_or(ApiError::Unauthorized)?;
        let origin = parts
            .headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok());
        session::check_same_origin(&parts.method, origin, &state.base_url)?;
        session::authenticate(state, cookie).await
    }
}

/// An operator key's holder: the node's own routes (`/v1/node`) take only
/// `Authorization: Bearer` with an `operator` key, never a session cookie;
/// a tenant's key is 403.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub key_id: String,
}

impl FromRequestParts<AdminState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AdminState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(bearer_token)
            .ok_or(ApiError::Unauthorized)?;
        let record = checked_key(state, token).await?;
        match record.role {
            Role::Operator => Ok(Operator { key_id: record.id }),
            _ => Err(ApiError::Forbidden("an operator key is required")),
        }
    }
}

/// The token of `Bearer <token>`; the scheme is case-insensitive (RFC 9110
/// §11.1).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn bearer_tokens_are_read_whatever_the_scheme_case() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
    }
}
