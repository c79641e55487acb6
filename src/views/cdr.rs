//! [`CdrView`]: one finished call, flat, as the admin API exports it and
//! the `call.ended` webhook sends it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::times;
use crate::domain::{CallId, NumberId, WidgetId};
use crate::store::CdrRecord;

/// One call, flat, as exported.
#[derive(Debug, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct CdrView {
    pub call_id: CallId,
    pub number_id: NumberId,
    pub widget_id: WidgetId,
    pub trunk: Option<String>,
    pub node_id: String,
    pub created_at: String,
    pub answered_at: Option<String>,
    pub ended_at: String,
    pub duration_ms: i64,
    /// `answered`, `busy`, `no_answer`, `rejected`, `unreachable`, `failed`, ...
    pub disposition: String,
    pub sip_code: Option<u16>,
    /// The trunk's reason phrase when it refused the call, stripped of
    /// anything that could name someone (`Busy Here`, `Subscriber
    /// [redacted] Busy`).
    pub sip_reason: Option<String>,
    /// The Q.850 cause of the trunk's `Reason` header (RFC 3326), e.g. 17
    /// for user busy.
    pub q850_cause: Option<u8>,
    /// `visitor`, `callee` or `node`.
    pub ended_by: String,
    /// Why the node ended the call, where that needs saying: `node_lost`
    /// when the node carrying it died and another node wrote this record
    /// (`disposition` is then `failed`). `null` otherwise.
    pub end_reason: Option<String>,
    pub browser_codec: Option<String>,
    pub trunk_codec: Option<String>,
    pub browser_packets_sent: u64,
    pub browser_packets_received: u64,
    pub browser_packets_lost: i64,
    pub browser_jitter_us: u64,
    pub trunk_packets_sent: u64,
    pub trunk_packets_received: u64,
    pub trunk_packets_lost: i64,
    pub trunk_jitter_us: u64,
    /// Each leg's estimated MOS (ITU-T G.107 E-model, 1 to 4.5) over the
    /// call's 5 s quality windows: the worst window and the average.
    /// `null` when no window measured the leg.
    pub browser_mos_worst: Option<f64>,
    pub browser_mos_average: Option<f64>,
    pub trunk_mos_worst: Option<f64>,
    pub trunk_mos_average: Option<f64>,
    /// The visitor's network, cut to /24 or /48.
    pub visitor_network: Option<String>,
    pub recorded: bool,
    /// The reference the visitor was shown, for privacy requests.
    pub privacy_ref: Option<String>,
    /// When the call was erased (only billing fields remain).
    pub erased_at: Option<String>,
}

impl From<CdrRecord> for CdrView {
    fn from(cdr: CdrRecord) -> Self {
        CdrView {
            created_at: times::format(cdr.created_at_ms),
            answered_at: cdr.answered_at_ms.map(times::format),
            ended_at: times::format(cdr.ended_at_ms),
            ended_by: cdr.ended_by.as_str().to_owned(),
            end_reason: cdr.end_reason,
            browser_packets_sent: cdr.browser_stats.packets_sent,
            browser_packets_received: cdr.browser_stats.packets_received,
            browser_packets_lost: cdr.browser_stats.packets_lost,
            browser_jitter_us: cdr.browser_stats.jitter_us,
            trunk_packets_sent: cdr.trunk_stats.packets_sent,
            trunk_packets_received: cdr.trunk_stats.packets_received,
            trunk_packets_lost: cdr.trunk_stats.packets_lost,
            trunk_jitter_us: cdr.trunk_stats.jitter_us,
            browser_mos_worst: mos(cdr.browser_stats.mos_worst_x100),
            browser_mos_average: mos(cdr.browser_stats.mos_average_x100),
            trunk_mos_worst: mos(cdr.trunk_stats.mos_worst_x100),
            trunk_mos_average: mos(cdr.trunk_stats.mos_average_x100),
            call_id: cdr.call_id,
            number_id: cdr.number_id,
            widget_id: cdr.widget_id,
            trunk: cdr.trunk,
            node_id: cdr.node_id,
            duration_ms: cdr.duration_ms,
            disposition: cdr.disposition.as_str().to_owned(),
            sip_code: cdr.sip_code,
            sip_reason: cdr.sip_reason,
            q850_cause: cdr.q850_cause,
            browser_codec: cdr.browser_codec,
            trunk_codec: cdr.trunk_codec,
            visitor_network: cdr.visitor_network,
            recorded: cdr.recorded,
            privacy_ref: cdr.privacy_ref,
            erased_at: cdr.erased_at_ms.map(times::format),
        }
    }
}

fn mos(x100: Option<u16>) -> Option<f64> {
    x100.map(|m| f64::from(m) / 100.0)
}
