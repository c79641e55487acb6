//! `GET /v1/cdrs`: a tenant's call detail records as JSON or CSV, streamed
//! page by page so a year of records never sits in memory.
//!
//! Both formats carry the same flat rows: the CSV's header row is the
//! JSON's keys, in the same order; an absent value is `null` in JSON and an
//! empty cell in CSV.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::body::parse_query;
use super::error::{ApiError, ErrorBody};
use super::state::AdminState;
use super::{times, validate};
use crate::store::{CdrCursor, CdrFilter, CdrRecord, Store};
use crate::views::CdrView;

/// Rows read per query while streaming.
const PAGE_ROWS: u32 = 500;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    #[default]
    Json,
    Csv,
}

/// The filter of an export; times are RFC 3339, `to` exclusive.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CdrQuery {
    /// Calls placed at or after this time.
    pub from: Option<String>,
    /// Calls placed before this time.
    pub to: Option<String>,
    pub number_id: Option<String>,
    /// `json` (default) or `csv`.
    pub format: Option<ExportFormat>,
}

#[utoipa::path(get, path = "/v1/cdrs", tag = "cdrs",
    security(("api_key" = [])), params(CdrQuery),
    responses(
        (status = 200, description = "JSON array (or CSV with format=csv), oldest first",
            body = [CdrView]),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn export(
    State(state): State<AdminState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query: CdrQuery = parse_query(query.as_deref())?;
    if let Some(number_id) = &query.number_id {
        validate::id("number_id", number_id)?;
    }
    let filter = CdrFilter {
        tenant_id: caller.tenant_id,
        from_ms: times::parse("from", query.from.as_deref())?.unwrap_or(i64::MIN),
        to_ms: times::parse("to", query.to.as_deref())?.unwrap_or(i64::MAX),
        number_id: query.number_id,
    };
    // The first page is read before answering, so a store that is down is a
    // clear 503 rather than a 200 cut short.
    let first = state.store.cdr_page(&filter, None, PAGE_ROWS).await?;
    let pages = pages(state.store.clone(), filter, first);
    let response = match query.format.unwrap_or_default() {
        ExportFormat::Json => (
            [(header::CONTENT_TYPE, "application/json")],
            Body::from_stream(json_body(pages)),
        )
            .into_response(),
        ExportFormat::Csv => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"cdrs.csv\"",
                ),
            ],
            Body::from_stream(csv_body(pages)),
        )
            .into_response(),
    };
    Ok(response)
}

type Page = Result<Vec<CdrView>, std::io::Error>;

/// Every page of `filter` after `first`, each read when the client is
/// ready for it. A store error mid-stream ends the body with an error, so
/// the client sees a broken transfer, never a silently short export.
fn pages(store: Store, filter: CdrFilter, first: Vec<CdrRecord>) -> impl Stream<Item = Page> {
    struct Cursor {
        store: Store,
        filter: CdrFilter,
        next: Option<Vec<CdrRecord>>,
    }
    let start = Cursor {
        store,
        filter,
        next: Some(first),
    };
    stream::unfold(start, |mut at| async move {
        let page = at.next.take()?;
        if page.is_empty() {
            return None;
        }
        if page.len() == PAGE_ROWS as usize {
            let last = &page[page.len() - 1];
            let cursor = CdrCursor {
                created_at_ms: last.created_at_ms,
                call_id: last.call_id.clone(),
            };
            match at
                .store
                .cdr_page(&at.filter, Some(&cursor), PAGE_ROWS)
                .await
            {
                Ok(next) => at.next = Some(next),
                Err(error) => {
                    tracing::warn!(%error, "cdr export stopped by the store");
                    return Some((Err(std::io::Error::other("store failed")), at));
                }
            }
        }
        let views = page.into_iter().map(CdrView::from).collect();
        Some((Ok(views), at))
    })
}

fn json_body(pages: impl Stream<Item = Page>) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    use futures_util::StreamExt as _;
    let mut first_row = true;
    let rows = pages.map(move |page| {
        let mut out = Vec::new();
        for view in page? {
            if !first_row {
                out.push(b',');
            }
            first_row = false;
            serde_json::to_writer(&mut out, &view).map_err(std::io::Error::other)?;
        }
        Ok(Bytes::from(out))
    });
    let bracket =
        |text: &'static [u8]| stream::once(std::future::ready(Ok(Bytes::from_static(text))));
    bracket(b"[").chain(rows).chain(bracket(b"]"))
}

/// The CSV header: [`CdrView`]'s fields in order (a test keeps them equal).
const CSV_HEADER: &str = "call_id,number_id,widget_id,trunk,node_id,created_at,answered_at,\
ended_at,duration_ms,disposition,sip_code,sip_reason,q850_cause,ended_by,end_reason,browser_codec,trunk_codec,\
browser_packets_sent,browser_packets_received,browser_packets_lost,browser_jitter_us,\
trunk_packets_sent,trunk_packets_received,trunk_packets_lost,trunk_jitter_us,\
browser_mos_worst,browser_mos_average,trunk_mos_worst,trunk_mos_average,\
visitor_network,recorded,privacy_ref,erased_at\n";

fn csv_body(pages: impl Stream<Item = Page>) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    use futures_util::StreamExt as _;
    let rows = pages.map(|page| {
        let mut writer = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        for view in page? {
            writer.serialize(&view).map_err(std::io::Error::other)?;
        }
        writer
            .into_inner()
            .map(Bytes::from)
            .map_err(|e| std::io::Error::other(e.to_string()))
    });
    stream::once(std::future::ready(Ok(Bytes::from_static(
        CSV_HEADER.as_bytes(),
    ))))
    .chain(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Disposition, EndedBy, LegStats};
    use futures_util::StreamExt as _;

    fn view(id: &str) -> CdrView {
        CdrView::from(CdrRecord {
            call_id: id.into(),
            tenant_id: "t".into(),
            number_id: "n".into(),
            widget_id: "w".into(),
            trunk: None,
            node_id: "node-1".into(),
            created_at_ms: 1_000,
            answered_at_ms: Some(2_000),
            ended_at_ms: 3_000,
            duration_ms: 1_000,
            disposition: Disposition::Answered,
            sip_code: Some(200),
            sip_reason: None,
            q850_cause: None,
            ended_by: EndedBy::Visitor,
            browser_codec: Some("PCMU".into()),
            trunk_codec: Some("PCMU".into()),
            browser_stats: LegStats::default(),
            trunk_stats: LegStats::default(),
            visitor_network: Some("203.0.113.0/24".into()),
            recorded: false,
            privacy_ref: None,
            erased_at_ms: None,
            end_reason: None,
        })
    }

    async fn collect(body: impl Stream<Item = Result<Bytes, std::io::Error>>) -> String {
        let chunks: Vec<_> = body.collect().await;
        let bytes: Vec<u8> = chunks
            .into_iter()
            .flat_map(|c| c.unwrap().to_vec())
            .collect();
        String::from_utf8(bytes).unwrap()
    }

    fn two_pages() -> impl Stream<Item = Page> {
        stream::iter(vec![Ok(vec![view("a"), view("b")]), Ok(vec![view("c")])])
    }

    #[test]
    fn the_csv_header_is_the_views_fields() {
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.serialize(view("a")).unwrap();
        let text = String::from_utf8(writer.into_inner().unwrap()).unwrap();
        assert_eq!(text.lines().next().unwrap(), CSV_HEADER.trim_end());
    }

    #[tokio::test]
    async fn json_and_csv_carry_the_same_rows() {
        let json: Vec<CdrView> =
            serde_json::from_str(&collect(json_body(two_pages())).await).unwrap();
        let csv_text = collect(csv_body(two_pages())).await;
        let from_csv: Vec<CdrView> = csv::Reader::from_reader(csv_text.as_bytes())
            .deserialize()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(json.len(), 3);
        assert_eq!(json, from_csv);
    }

    #[tokio::test]
    async fn empty_exports_are_well_formed() {
        let none = || stream::iter(Vec::<Page>::new());
        assert_eq!(collect(json_body(none())).await, "[]");
        assert_eq!(collect(csv_body(none())).await, CSV_HEADER);
    }
}
