//! `GET /v1/cdrs/summary`: how a tenant's calls sounded and why they ended,
//! over a chosen period: per number, the calls in each band of the ITU-T
//! G.107 user satisfaction scale and the worst calls; over all, the SIP
//! causes.
//!
//! A call's figure is its worst quality window on either leg (the CDR's
//! `*_mos_worst`): one bad minute is what a caller remembers. The store is
//! read page by page, as the export is, so the summary holds counts, never
//! the rows; a period of more than [`MAX_CALLS`] calls is summarised up to
//! there and says so.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{RawQuery, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::body::parse_query;
use super::error::{ApiError, ErrorBody};
use super::state::AdminState;
use super::{times, validate};
use crate::domain::{CallId, NumberId};
use crate::store::{CdrCursor, CdrFilter, CdrRecord};

/// Calls read at most for one summary.
pub const MAX_CALLS: usize = 100_000;
/// Worst calls listed per number.
pub const WORST_CALLS: usize = 5;
const PAGE_ROWS: u32 = 500;

/// G.107 Annex B's satisfaction bands, by the MOS (in hundredths) at
/// their lower edge: R 90, 80, 70, 60, 50 and below.
const BANDS: [(&str, u16); 6] = [
    ("very_satisfied", 434),
    ("satisfied", 403),
    ("some_dissatisfied", 360),
    ("many_dissatisfied", 310),
    ("nearly_all_dissatisfied", 258),
    ("not_recommended", 0),
];

/// The period, as the export takes it; times are RFC 3339, `to` exclusive.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SummaryQuery {
    /// Calls placed at or after this time.
    pub from: Option<String>,
    /// Calls placed before this time.
    pub to: Option<String>,
    pub number_id: Option<String>,
}

/// The summary of a period.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct CdrSummary {
    /// Per number, in id order.
    pub numbers: Vec<NumberQuality>,
    /// Why calls ended, most frequent first.
    pub causes: Vec<CauseCount>,
    /// More than `MAX_CALLS` calls fell in the period: only the oldest
    /// were summarised.
    pub truncated: bool,
}

/// How one number's calls sounded.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct NumberQuality {
    pub number_id: NumberId,
    pub calls: u64,
    pub answered: u64,
    /// Calls with a quality figure (answered and measured).
    pub measured: u64,
    /// The measured calls in each band, best first: `very_satisfied`
    /// (MOS 4.34 and up), `satisfied` (4.03), `some_dissatisfied` (3.60),
    /// `many_dissatisfied` (3.10), `nearly_all_dissatisfied` (2.58),
    /// `not_recommended` (below).
    pub bands: Vec<BandCount>,
    /// The mean of the measured calls' average MOS.
    pub average_mos: Option<f64>,
    /// The measured calls with the lowest figure, worst first.
    pub worst_calls: Vec<WorstCall>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct BandCount {
    pub band: String,
    pub calls: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct WorstCall {
    pub call_id: CallId,
    pub created_at: String,
    /// The call's worst window on either leg.
    pub mos: f64,
    /// The leg it was on: `browser` or `trunk`.
    pub leg: String,
}

/// Calls that ended one way.
#[derive(Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct CauseCount {
    pub disposition: String,
    pub sip_code: Option<u16>,
    pub sip_reason: Option<String>,
    pub q850_cause: Option<u8>,
    pub calls: u64,
}

type CauseKey = (String, Option<u16>, Option<String>, Option<u8>);

/// The counts so far; see [`Tally::add`].
#[derive(Debug, Default)]
pub struct Tally {
    numbers: BTreeMap<NumberId, NumberTally>,
    causes: BTreeMap<CauseKey, u64>,
    calls: usize,
}

#[derive(Debug, Default)]
struct NumberTally {
    calls: u64,
    answered: u64,
    bands: [u64; BANDS.len()],
    average_sum: f64,
    averaged: u64,
    /// (mos in hundredths, leg, call id, created at), worst first.
    worst: Vec<(u16, &'static str, CallId, i64)>,
}

impl NumberTally {
    fn add_worst(&mut self, call: (u16, &'static str, CallId, i64)) {
        let at = self.worst.partition_point(|w| w.0 <= call.0);
        if at < WORST_CALLS {
            self.worst.insert(at, call);
            self.worst.truncate(WORST_CALLS);
        }
    }
}

/// The lower of the legs' worst windows, and its leg.
fn call_worst(cdr: &CdrRecord) -> Option<(u16, &'static str)> {
    let browser = cdr.browser_stats.mos_worst_x100.map(|m| (m, "browser"));
    let trunk = cdr.trunk_stats.mos_worst_x100.map(|m| (m, "trunk"));
    match (browser, trunk) {
        (Some(b), Some(t)) => Some(if t.0 < b.0 { t } else { b }),
        (one, other) => one.or(other),
    }
}

/// The lower of the legs' averages.
fn call_average(cdr: &CdrRecord) -> Option<u16> {
    let legs = [
        cdr.browser_stats.mos_average_x100,
        cdr.trunk_stats.mos_average_x100,
    ];
    legs.into_iter().flatten().min()
}

impl Tally {
    /// Counts one call.
    pub fn add(&mut self, cdr: &CdrRecord) {
        self.calls += 1;
        let number = self.numbers.entry(cdr.number_id.clone()).or_default();
        number.calls += 1;
        number.answered += u64::from(cdr.answered_at_ms.is_some());
        if let Some((mos, leg)) = call_worst(cdr) {
            let band = BANDS
                .iter()
                .position(|(_, floor)| mos >= *floor)
                .unwrap_or(BANDS.len() - 1);
            number.bands[band] += 1;
            number.add_worst((mos, leg, cdr.call_id.clone(), cdr.created_at_ms));
        }
        if let Some(average) = call_average(cdr) {
            number.average_sum += f64::from(average) / 100.0;
            number.averaged += 1;
        }
        let key = (
            cdr.disposition.as_str().to_owned(),
            cdr.sip_code,
            cdr.sip_reason.clone(),
            cdr.q850_cause,
        );
        *self.causes.entry(key).or_default() += 1;
    }

    pub fn is_full(&self) -> bool {
        self.calls >= MAX_CALLS
    }

    pub fn finish(self, truncated: bool) -> CdrSummary {
        let numbers = self
            .numbers
            .into_iter()
            .map(|(number_id, tally)| NumberQuality {
                number_id,
                calls: tally.calls,
                answered: tally.answered,
                measured: tally.bands.iter().sum(),
                bands: BANDS
                    .iter()
                    .zip(tally.bands)
                    .map(|((band, _), calls)| BandCount {
                        band: (*band).to_owned(),
                        calls,
                    })
                    .collect(),
                average_mos: (tally.averaged > 0)
                    .then(|| (tally.average_sum / tally.averaged as f64 * 100.0).round() / 100.0),
                worst_calls: tally
                    .worst
                    .into_iter()
                    .map(|(mos, leg, call_id, at)| WorstCall {
                        call_id,
                        created_at: times::format(at),
                        mos: f64::from(mos) / 100.0,
                        leg: leg.to_owned(),
                    })
                    .collect(),
            })
            .collect();
        let mut causes: Vec<CauseCount> = self
            .causes
            .into_iter()
            .map(
                |((disposition, sip_code, sip_reason, q850_cause), calls)| CauseCount {
                    disposition,
                    sip_code,
                    sip_reason,
                    q850_cause,
                    calls,
                },
            )
            .collect();
        // Stable: equal counts keep the key order.
        causes.sort_by_key(|cause| std::cmp::Reverse(cause.calls));
        CdrSummary {
            numbers,
            causes,
            truncated,
        }
    }
}

#[utoipa::path(get, path = "/v1/cdrs/summary", tag = "cdrs",
    security(("api_key" = [])), params(SummaryQuery),
    responses(
        (status = 200, description = "per-number quality and the SIP causes of the period",
            body = CdrSummary),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn summary(
    State(state): State<AdminState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<CdrSummary>, ApiError> {
    let query: SummaryQuery = parse_query(query.as_deref())?;
    if let Some(number_id) = &query.number_id {
        validate::id("number_id", number_id)?;
    }
    let filter = CdrFilter {
        tenant_id: caller.tenant_id,
        from_ms: times::parse("from", query.from.as_deref())?.unwrap_or(i64::MIN),
        to_ms: times::parse("to", query.to.as_deref())?.unwrap_or(i64::MAX),
        number_id: query.number_id,
    };
    let mut tally = Tally::default();
    let mut cursor: Option<CdrCursor> = None;
    loop {
        let page = state
            .store
            .cdr_page(&filter, cursor.as_ref(), PAGE_ROWS)
            .await?;
        for cdr in &page {
            if tally.is_full() {
                return Ok(Json(tally.finish(true)));
            }
            tally.add(cdr);
        }
        match page.last() {
            Some(last) if page.len() == PAGE_ROWS as usize => {
                cursor = Some(CdrCursor {
                    created_at_ms: last.created_at_ms,
                    call_id: last.call_id.clone(),
                });
            }
            _ => return Ok(Json(tally.finish(false))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Disposition, EndedBy, LegStats};

    fn cdr(id: &str, number: &str, browser: Option<u16>, trunk: Option<u16>) -> CdrRecord {
        let answered = browser.or(trunk).is_some();
        let mut cdr = CdrRecord {
            call_id: id.into(),
            tenant_id: "demo".into(),
            number_id: number.into(),
            widget_id: "w".into(),
            trunk: None,
            node_id: "node".into(),
            created_at_ms: 1_700_000_000_000,
            answered_at_ms: answered.then_some(1_700_000_001_000),
            ended_at_ms: 1_700_000_002_000,
            duration_ms: 1_000,
            disposition: if answered {
                Disposition::Answered
            } else {
                Disposition::Busy
            },
            sip_code: None,
            sip_reason: None,
            q850_cause: None,
            ended_by: EndedBy::Visitor,
            browser_codec: None,
            trunk_codec: None,
            browser_stats: LegStats::default(),
            trunk_stats: LegStats::default(),
            visitor_network: None,
            recorded: false,
            privacy_ref: None,
            erased_at_ms: None,
            end_reason: None,
        };
        cdr.browser_stats.mos_worst_x100 = browser;
        cdr.browser_stats.mos_average_x100 = browser.map(|m| m + 10);
        cdr.trunk_stats.mos_worst_x100 = trunk;
        cdr.trunk_stats.mos_average_x100 = trunk.map(|m| m + 10);
        cdr
    }

    #[test]
    fn calls_fall_in_the_band_of_their_worst_leg_and_the_worst_are_listed() {
        let mut tally = Tally::default();
        tally.add(&cdr("a", "sales", Some(440), Some(438)));
        tally.add(&cdr("b", "sales", Some(441), Some(250)));
        tally.add(&cdr("c", "sales", Some(300), None));
        tally.add(&cdr("d", "sales", None, None));
        tally.add(&cdr("e", "help", Some(403), Some(420)));
        let summary = tally.finish(false);
        assert_eq!(summary.numbers.len(), 2);
        let help = &summary.numbers[0];
        assert_eq!(help.number_id, "help");
        assert_eq!(help.bands[1].band, "satisfied");
        assert_eq!(help.bands[1].calls, 1, "4.03 is the satisfied band's floor");
        let sales = &summary.numbers[1];
        assert_eq!((sales.calls, sales.answered, sales.measured), (4, 3, 3));
        let counts: Vec<u64> = sales.bands.iter().map(|b| b.calls).collect();
        assert_eq!(counts, [1, 0, 0, 0, 1, 1]);
        let worst: Vec<(&str, f64, &str)> = sales
            .worst_calls
            .iter()
            .map(|w| (w.call_id.as_str(), w.mos, w.leg.as_str()))
            .collect();
        assert_eq!(
            worst,
            [
                ("b", 2.5, "trunk"),
                ("c", 3.0, "browser"),
                ("a", 4.38, "trunk")
            ]
        );
        // Averages: the lower leg's, 4.48, 2.60 and 3.10 over three calls.
        assert_eq!(sales.average_mos, Some(3.39));
    }

    #[test]
    fn only_the_five_worst_calls_are_kept() {
        let mut tally = Tally::default();
        for (i, mos) in [400, 120, 380, 250, 300, 110, 420, 260]
            .into_iter()
            .enumerate()
        {
            tally.add(&cdr(&format!("c{i}"), "n", Some(mos), None));
        }
        let summary = tally.finish(false);
        let kept: Vec<f64> = summary.numbers[0]
            .worst_calls
            .iter()
            .map(|w| w.mos)
            .collect();
        assert_eq!(kept, [1.1, 1.2, 2.5, 2.6, 3.0]);
    }

    #[test]
    fn causes_are_counted_most_frequent_first() {
        let mut tally = Tally::default();
        let mut busy = cdr("x", "n", None, None);
        busy.sip_code = Some(486);
        busy.sip_reason = Some("Busy Here".into());
        busy.q850_cause = Some(17);
        tally.add(&busy);
        tally.add(&cdr("y", "n", Some(440), Some(440)));
        let mut again = busy.clone();
        again.call_id = "z".into();
        tally.add(&again);
        let summary = tally.finish(false);
        assert_eq!(
            summary.causes[0],
            CauseCount {
                disposition: "busy".into(),
                sip_code: Some(486),
                sip_reason: Some("Busy Here".into()),
                q850_cause: Some(17),
                calls: 2,
            }
        );
        assert_eq!(summary.causes[1].disposition, "answered");
        assert_eq!(summary.causes[1].calls, 1);
    }
}
