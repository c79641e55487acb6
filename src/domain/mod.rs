//! The words every layer shares, defined once: the identifiers, the
//! codecs, who ended a call, a number's recording policy and the visitor's
//! consent. Nothing
//! here imports the rest of the crate; config, the store, both legs, the
//! call and the API all speak these types.

mod codec;
mod ended_by;
mod ids;
mod recording;
mod unknown_name;

pub use self::codec::{Codec, TelephoneEvent};
pub use self::ended_by::EndedBy;
pub use self::ids::{CallId, NumberId, RecordingId, TenantId, WidgetId};
pub use self::recording::{Consent, OnRevoke, RecordingPolicy};
pub use self::unknown_name::UnknownName;
