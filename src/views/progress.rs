//! [`CallProgressView`]: the body of the `call.ringing` and
//! `call.answered` webhooks.

use crate::domain::{CallId, NumberId, WidgetId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The body of `call.ringing` and `call.answered`: which call, and when.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct CallProgressView {
    pub call_id: CallId,
    pub number_id: NumberId,
    pub widget_id: WidgetId,
    /// When the node saw it (RFC 3339).
    pub at: String,
}
