//! [`Caller`]: the key a request was made with and the tenant it may see,
//! and how an API key's text is checked into one. The [`super::auth`]
//! extractors and the dashboard's sign-in ([`super::session`]) both start
//! here.

use super::api_key;
use super::error::ApiError;
use super::state::AdminState;
use crate::domain::TenantId;
use crate::store::{Actor, ApiKeyRecord, Role};

/// The key a request was made with, and the one tenant it may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub key_id: String,
    pub tenant_id: TenantId,
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

/// The caller an API key's text stands for, and the key's record.
pub async fn authenticate_key(
    state: &AdminState,
    text: &str,
) -> Result<(Caller, ApiKeyRecord), ApiError> {
    let record = checked_key(state, text).await?;
    Ok((caller_of(record.clone())?, record))
}

/// The record of the live key `text` is, whatever its role.
pub async fn checked_key(state: &AdminState, text: &str) -> Result<ApiKeyRecord, ApiError> {
    let presented = api_key::parse(text).ok_or(ApiError::Unauthorized)?;
    let record = state.store.api_key(presented.id).await?;
    match record {
        Some(record) if api_key::matches(&state.keys, &record, &presented) => Ok(record),
        Some(_) => Err(ApiError::Unauthorized),
        None => {
            api_key::refuse_unknown(&state.keys, &presented);
            Err(ApiError::Unauthorized)
        }
    }
}

/// The caller a checked key's record stands for; operator keys have no
/// tenant to see.
pub fn caller_of(record: ApiKeyRecord) -> Result<Caller, ApiError> {
    let tenant_id = record
        .tenant_id
        .ok_or(ApiError::Forbidden("operator keys belong to no tenant"))?;
    Ok(Caller {
        key_id: record.id,
        tenant_id: tenant_id.into(),
        role: record.role,
    })
}
