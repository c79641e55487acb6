//! The words every layer shares, defined once: the identifiers, the
//! codecs, how and by whom a call ended, each leg's figures, a number's
//! recording policy and the visitor's consent. Nothing
//! here imports the rest of the crate; config, the store, both legs, the
//! call and the API all speak these types.

mod codec;
mod disposition;
mod ended_by;
mod ids;
mod leg_stats;
mod recording;
mod unknown_name;

pub use self::codec::{Codec, TelephoneEvent};
pub use self::disposition::Disposition;
pub use self::ended_by::EndedBy;
pub use self::ids::{CallId, NumberId, RecordingId, TenantId, WidgetId};
pub use self::leg_stats::LegStats;
pub use self::recording::{Consent, OnRevoke, RecordingPolicy};
pub use self::unknown_name::UnknownName;
