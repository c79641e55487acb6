//! Widgets and the route a browser call takes: widget → number → trunk.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use super::{Store, StoreError};

/// The `allowed_origins` token meaning "the node's own public origin".
///
/// The store keeps it as written; the signalling layer resolves it against
/// the node's public URL when it checks a browser's `Origin`.
pub const SELF_ORIGIN: &str = "self";

/// A number's recording policy (the `numbers.recording` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingPolicy {
    /// Never recorded.
    Off,
    /// Recorded only after the visitor grants consent.
    OptIn,
    /// The visitor is told before the call; recorded unless they decline.
    Notice,
}

impl RecordingPolicy {
    /// The stored and API name: `off`, `opt_in` or `notice`.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingPolicy::Off => "off",
            RecordingPolicy::OptIn => "opt_in",
            RecordingPolicy::Notice => "notice",
        }
    }
}

impl fmt::Display for RecordingPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RecordingPolicy {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(RecordingPolicy::Off),
            "opt_in" => Ok(RecordingPolicy::OptIn),
            "notice" => Ok(RecordingPolicy::Notice),
            other => Err(StoreError::Corrupt {
                column: "numbers.recording",
                detail: format!("unknown policy {other:?}"),
            }),
        }
    }
}

/// What happens to a recording when the visitor revokes consent mid-call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRevoke {
    Discard,
    Keep,
}

impl FromStr for OnRevoke {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "discard" => Ok(OnRevoke::Discard),
            "keep" => Ok(OnRevoke::Keep),
            other => Err(StoreError::Corrupt {
                column: "numbers.on_revoke",
                detail: format!("unknown value {other:?}"),
            }),
        }
    }
}

/// Everything a browser call needs to know about the widget it was placed
/// from. The destination comes from here, never from the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WidgetRoute {
    pub widget_id: String,
    pub tenant_id: String,
    pub number_id: String,
    /// The callee in E.164; personal data, wrap it in `Pii` to log it.
    pub e164: String,
    /// A route name from `[[sip.routes]]`.
    pub trunk: String,
    pub recording: RecordingPolicy,
    /// Whether a mid-call revocation deletes the recording (`discard`) or
    /// keeps what was recorded before it (`keep`).
    pub on_revoke: OnRevoke,
    /// Days a recording of this number is kept.
    pub retention_days: u32,
    /// The notice the widget shows before a call on a recorded number.
    pub notice_text: Option<String>,
    /// Origins a browser may place calls from, e.g. `https://shop.example`.
    /// The token [`SELF_ORIGIN`] (`"self"`) stands for the node's own public
    /// origin, which the signalling layer resolves.
    pub allowed_origins: Vec<String>,
}

#[derive(sqlx::FromRow)]
struct RouteRow {
    widget_id: String,
    tenant_id: String,
    number_id: String,
    e164: String,
    trunk: String,
    recording: String,
    on_revoke: String,
    retention_days: i64,
    notice_text: Option<String>,
    allowed_origins: String,
}

impl TryFrom<RouteRow> for WidgetRoute {
    type Error = StoreError;

    fn try_from(row: RouteRow) -> Result<Self, Self::Error> {
        let allowed_origins = parse_origins(&row.allowed_origins)?;
        Ok(WidgetRoute {
            recording: row.recording.parse()?,
            on_revoke: row.on_revoke.parse()?,
            retention_days: u32::try_from(row.retention_days).map_err(|_| StoreError::Corrupt {
                column: "numbers.retention_days",
                detail: format!("out of range: {}", row.retention_days),
            })?,
            notice_text: row.notice_text,
            widget_id: row.widget_id,
            tenant_id: row.tenant_id,
            number_id: row.number_id,
            e164: row.e164,
            trunk: row.trunk,
            allowed_origins,
        })
    }
}

/// Decodes the `widgets.allowed_origins` JSON array.
pub(super) fn parse_origins(json: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(json).map_err(|error| StoreError::Corrupt {
        column: "widgets.allowed_origins",
        detail: error.to_string(),
    })
}

/// Encodes origins for the `widgets.allowed_origins` column.
pub(super) fn encode_origins(origins: &[String]) -> String {
    // A Vec<String> always serialises; the fallback is unreachable.
    serde_json::to_string(origins).unwrap_or_else(|_| "[]".to_owned())
}

impl Store {
    /// The route for calls placed from `widget_id`, or `None` when no such
    /// widget exists.
    pub async fn widget_route(&self, widget_id: &str) -> Result<Option<WidgetRoute>, StoreError> {
        let row: Option<RouteRow> = sqlx::query_as(
            "SELECT w.id AS widget_id, w.tenant_id, w.number_id, n.e164, n.trunk, \
                    n.recording, n.on_revoke, n.retention_days, n.notice_text, \
                    w.allowed_origins \
             FROM widgets w JOIN numbers n ON n.id = w.number_id \
             WHERE w.id = $1",
        )
        .bind(widget_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query("widget lookup"))?;
        row.map(WidgetRoute::try_from).transpose()
    }
}
