//! The words every layer shares, defined once: the identifiers, the
//! codecs, who ended a call, a number's recording policy and the visitor's
//! consent. Nothing
//! here imports the rest of the crate; config, the store, both legs, the
//! call and the API all speak these types.

mod codec;
mod ended_by;
mod ids;
mod recording;

pub use self::codec::{Codec, TelephoneEvent};
pub use self::ended_by::EndedBy;
pub use self::ids::{CallId, NumberId, RecordingId, TenantId, WidgetId};
pub use self::recording::{Consent, OnRevoke, RecordingPolicy};

/// A stored or configured name that is none of a type's names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownName {
    /// What was being read (`recording policy`).
    pub kind: &'static str,
    pub value: String,
}

impl UnknownName {
    fn new(kind: &'static str, value: &str) -> Self {
        Self {
            kind,
            value: value.to_owned(),
        }
    }
}
