//! Who is calling: the [`Caller`] extractor behind every admin route.
//!
//! `Authorization: Bearer cg_<id>_<secret>`. A missing, malformed, unknown,
//! wrong or revoked key is 401, all alike, so a probe learns nothing about
//! which keys exist. A well-formed key costs one row lookup by id and one
//! HMAC compared in constant time.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::AdminState;
use super::api_key;
use super::error::ApiError;
use crate::store::{Actor, Role};

/// The key a request was made with, and the one tenant it may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub key_id: String,
    pub tenant_id: String,
    pub role: Role,
}

impl Caller {
    /// The audit log's name for this caller.
    pub fn actor(&self) -> Actor {
        Actor::Key(self.key_id.clone())
    }

    /// Refuses a `read` key on a route that changes something.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Admin => Ok(()),
            _ => Err(ApiError::Forbidden("this key may only read")),
        }
    }
}

impl FromRequestParts<AdminState> for Caller {
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
        let presented = api_key::parse(token).ok_or(ApiError::Unauthorized)?;
        let record = state
            .store
            .api_key(presented.id)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        if !api_key::matches(&state.keys, &record, &presented) {
            return Err(ApiError::Unauthorized);
        }
        let tenant_id = record
            .tenant_id
            .ok_or(ApiError::Forbidden("operator keys belong to no tenant"))?;
        Ok(Caller {
            key_id: record.id,
            tenant_id,
            role: record.role,
        })
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
