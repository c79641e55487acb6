//! Call detail records: one row per call, written once when the call ends.
//!
//! A record holds what billing and operations need and no more: ids, times,
//! outcome, codecs, per-leg packet counts and jitter, whether it was
//! recorded, and the visitor's network cut to its /24 or /48. Times are unix
//! milliseconds; jitter is stored as integer microseconds so it round-trips
//! exactly and needs no float column.

use std::net::IpAddr;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::database::{Store, unix_ms};
use super::error::StoreError;
use super::widgets::WidgetRoute;
use crate::domain::{CallId, Disposition, EndedBy, LegStats, NumberId, TenantId, WidgetId};
use crate::privacy::truncate_ip;

/// One row of `cdrs`. Times are unix milliseconds ([`super::unix_ms`]).
/// Its JSON form is also how a CDR waits in the writer's spool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CdrRecord {
    pub call_id: CallId,
    pub tenant_id: TenantId,
    pub number_id: NumberId,
    pub widget_id: WidgetId,
    /// The trunk actually used; `None` when no trunk was reached.
    pub trunk: Option<String>,
    pub node_id: String,
    pub created_at_ms: i64,
    pub answered_at_ms: Option<i64>,
    pub ended_at_ms: i64,
    /// From answer to end; 0 when never answered.
    pub duration_ms: i64,
    pub disposition: Disposition,
    /// The trunk's final SIP status, when one arrived.
    pub sip_code: Option<u16>,
    /// The reason phrase of a refusing final response, stripped of
    /// personal data (`crate::sip::TrunkReason`).
    pub sip_reason: Option<String>,
    /// The Q.850 cause of that response's `Reason` header (RFC 3326).
    pub q850_cause: Option<u8>,
    pub ended_by: EndedBy,
    pub browser_codec: Option<String>,
    pub trunk_codec: Option<String>,
    pub browser_stats: LegStats,
    pub trunk_stats: LegStats,
    /// The visitor's network (`203.0.113.0/24`), never the full address.
    pub visitor_network: Option<String>,
    pub recorded: bool,
    /// What the visitor was shown to quote in a privacy request.
    pub privacy_ref: Option<String>,
    /// Set once the call was erased: only the billing fields remain.
    pub erased_at_ms: Option<i64>,
    /// Why the node ended the call, where disposition and `ended_by` do not
    /// say it all: [`NODE_LOST`] for a call whose node died, written by
    /// another node of the cluster.
    #[serde(default)]
    pub end_reason: Option<String>,
}

/// The `end_reason` of a call whose node died mid-call.
pub const NODE_LOST: &str = "node_lost";

impl CdrRecord {
    /// A record for a call placed through `route` at `created_at`. It reads
    /// as a call the node ended at once with disposition `failed` until
    /// [`CdrRecord::on_ended`] says otherwise.
    pub fn begin(
        call_id: impl Into<CallId>,
        route: &WidgetRoute,
        node_id: impl Into<String>,
        created_at: SystemTime,
    ) -> CdrRecord {
        let created_at_ms = unix_ms(created_at);
        CdrRecord {
            call_id: call_id.into(),
            tenant_id: route.tenant_id.clone(),
            number_id: route.number_id.clone(),
            widget_id: route.widget_id.clone(),
            trunk: None,
            node_id: node_id.into(),
            created_at_ms,
            answered_at_ms: None,
            ended_at_ms: created_at_ms,
            duration_ms: 0,
            disposition: Disposition::Failed,
            sip_code: None,
            sip_reason: None,
            q850_cause: None,
            ended_by: EndedBy::Node,
            browser_codec: None,
            trunk_codec: None,
            browser_stats: LegStats::default(),
            trunk_stats: LegStats::default(),
            visitor_network: None,
            recorded: false,
            privacy_ref: None,
            erased_at_ms: None,
            end_reason: None,
        }
    }

    /// Marks the call answered at `at`.
    pub fn on_answered(&mut self, at: SystemTime) {
        self.answered_at_ms = Some(unix_ms(at));
    }

    /// Marks the call ended at `at` and derives its duration.
    pub fn on_ended(&mut self, at: SystemTime, ended_by: EndedBy, disposition: Disposition) {
        self.ended_at_ms = unix_ms(at);
        self.ended_by = ended_by;
        self.disposition = disposition;
        self.duration_ms = self
            .answered_at_ms
            .map_or(0, |answered| (self.ended_at_ms - answered).max(0));
    }

    /// Ends the record of a call whose node died, last seen alive at
    /// `last_seen_ms` (unix ms): `failed`, ended by the node, [`NODE_LOST`].
    /// A call answered before counts its talk time up to then.
    pub fn on_node_lost(&mut self, last_seen_ms: i64) {
        let answered_at_ms = self.answered_at_ms.unwrap_or(i64::MIN);
        self.ended_at_ms = last_seen_ms.max(self.created_at_ms).max(answered_at_ms);
        self.ended_by = EndedBy::Node;
        self.disposition = Disposition::Failed;
        self.duration_ms = self
            .answered_at_ms
            .map_or(0, |answered| self.ended_at_ms - answered);
        self.end_reason = Some(NODE_LOST.to_owned());
    }

    /// Keeps only the visitor's network (/24 or /48), never the address.
    pub fn set_visitor_ip(&mut self, ip: IpAddr) {
        self.visitor_network = Some(truncate_ip(ip));
    }
}

const CDR_COLUMNS: &str = "call_id, tenant_id, number_id, widget_id, trunk, node_id, \
    created_at, answered_at, ended_at, duration_ms, disposition, sip_code, ended_by, \
    browser_codec, trunk_codec, \
    browser_packets_sent, browser_packets_received, browser_packets_lost, browser_jitter_us, \
    trunk_packets_sent, trunk_packets_received, trunk_packets_lost, trunk_jitter_us, \
    visitor_network, recorded, privacy_ref, erased_at, sip_reason, q850_cause, \
    browser_mos_worst_x100, browser_mos_average_x100, trunk_mos_worst_x100, trunk_mos_average_x100, \
    end_reason";

const CDR_PLACEHOLDERS: &str = "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
    $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34";

/// The insert of a record: a new row, or the replacement of a row written
/// for a lost node and not erased since (`ON CONFLICT ... DO UPDATE`, which SQLite and
/// PostgreSQL both read the same). Any other row already there stays.
fn insert_cdr_sql() -> String {
    let updates: Vec<String> = CDR_COLUMNS
        .split(',')
        .map(str::trim)
        .filter(|column| *column != "call_id")
        .map(|column| format!("{column} = excluded.{column}"))
        .collect();
    format!(
        "INSERT INTO cdrs ({CDR_COLUMNS}) VALUES ({CDR_PLACEHOLDERS}) \
         ON CONFLICT (call_id) DO UPDATE SET {} \
         WHERE cdrs.end_reason = '{NODE_LOST}' AND cdrs.erased_at IS NULL",
        updates.join(", ")
    )
}

/// The row as stored: BIGINT columns as `i64`, INTEGER columns as `i32`
/// (the widths PostgreSQL will insist on).
#[derive(sqlx::FromRow)]
struct CdrRow {
    call_id: CallId,
    tenant_id: TenantId,
    number_id: NumberId,
    widget_id: WidgetId,
    trunk: Option<String>,
    node_id: String,
    created_at: i64,
    answered_at: Option<i64>,
    ended_at: i64,
    duration_ms: i64,
    disposition: String,
    sip_code: Option<i32>,
    ended_by: String,
    browser_codec: Option<String>,
    trunk_codec: Option<String>,
    browser_packets_sent: i64,
    browser_packets_received: i64,
    browser_packets_lost: i64,
    browser_jitter_us: i64,
    trunk_packets_sent: i64,
    trunk_packets_received: i64,
    trunk_packets_lost: i64,
    trunk_jitter_us: i64,
    visitor_network: Option<String>,
    recorded: i32,
    privacy_ref: Option<String>,
    erased_at: Option<i64>,
    sip_reason: Option<String>,
    q850_cause: Option<i32>,
    browser_mos_worst_x100: Option<i32>,
    browser_mos_average_x100: Option<i32>,
    trunk_mos_worst_x100: Option<i32>,
    trunk_mos_average_x100: Option<i32>,
    end_reason: Option<String>,
}

impl TryFrom<CdrRow> for CdrRecord {
    type Error = StoreError;

    fn try_from(row: CdrRow) -> Result<Self, Self::Error> {
        let sip_code = row
            .sip_code
            .map(|code| {
                u16::try_from(code).map_err(|_| corrupt("cdrs.sip_code", format!("{code}")))
            })
            .transpose()?;
        let q850_cause = row
            .q850_cause
            .map(|cause| {
                u8::try_from(cause).map_err(|_| corrupt("cdrs.q850_cause", format!("{cause}")))
            })
            .transpose()?;
        let browser_stats = LegStats {
            packets_sent: counter("cdrs.browser_packets_sent", row.browser_packets_sent)?,
            packets_received: counter(
                "cdrs.browser_packets_received",
                row.browser_packets_received,
            )?,
            packets_lost: row.browser_packets_lost,
            jitter_us: counter("cdrs.browser_jitter_us", row.browser_jitter_us)?,
            mos_worst_x100: mos("cdrs.browser_mos_worst_x100", row.browser_mos_worst_x100)?,
            mos_average_x100: mos(
                "cdrs.browser_mos_average_x100",
                row.browser_mos_average_x100,
            )?,
        };
        let trunk_stats = LegStats {
            packets_sent: counter("cdrs.trunk_packets_sent", row.trunk_packets_sent)?,
            packets_received: counter("cdrs.trunk_packets_received", row.trunk_packets_received)?,
            packets_lost: row.trunk_packets_lost,
            jitter_us: counter("cdrs.trunk_jitter_us", row.trunk_jitter_us)?,
            mos_worst_x100: mos("cdrs.trunk_mos_worst_x100", row.trunk_mos_worst_x100)?,
            mos_average_x100: mos("cdrs.trunk_mos_average_x100", row.trunk_mos_average_x100)?,
        };
        Ok(CdrRecord {
            ended_by: row.ended_by.parse()?,
            disposition: row.disposition.parse()?,
            call_id: row.call_id,
            tenant_id: row.tenant_id,
            number_id: row.number_id,
            widget_id: row.widget_id,
            trunk: row.trunk,
            node_id: row.node_id,
            created_at_ms: row.created_at,
            answered_at_ms: row.answered_at,
            ended_at_ms: row.ended_at,
            duration_ms: row.duration_ms,
            sip_code,
            sip_reason: row.sip_reason,
            q850_cause,
            browser_codec: row.browser_codec,
            trunk_codec: row.trunk_codec,
            browser_stats,
            trunk_stats,
            visitor_network: row.visitor_network,
            recorded: row.recorded != 0,
            privacy_ref: row.privacy_ref,
            erased_at_ms: row.erased_at,
            end_reason: row.end_reason,
        })
    }
}

fn corrupt(column: &'static str, detail: String) -> StoreError {
    StoreError::Corrupt { column, detail }
}

fn mos(column: &'static str, value: Option<i32>) -> Result<Option<u16>, StoreError> {
    value
        .map(|v| u16::try_from(v).map_err(|_| corrupt(column, format!("{v}"))))
        .transpose()
}

fn counter(column: &'static str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| corrupt(column, format!("negative count {value}")))
}

/// Counters beyond `i64::MAX` cannot happen in a call; saturate rather than fail.
fn stored(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

impl Store {
    /// Talk time (answered to ended) of the calls to `number` of `tenant`
    /// created since `since_ms`, in milliseconds: what a number's daily
    /// minutes cap counts.
    pub async fn talk_ms_since(
        &self,
        tenant: &str,
        number: &str,
        since_ms: i64,
    ) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(duration_ms), 0) AS BIGINT) FROM cdrs \
             WHERE tenant_id = $1 AND created_at >= $2 AND number_id = $3",
        )
        .bind(tenant)
        .bind(since_ms)
        .bind(number)
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::query("talk time"))
    }

    /// Writes the record of an ended call. A call id already present is a
    /// [`StoreError::Duplicate`], except a record another node wrote when
    /// it took the call's node for lost ([`NODE_LOST`]): the call's own
    /// record replaces it. A tenant that does not exist is a
    /// [`StoreError::MissingReference`].
    pub async fn insert_cdr(&self, cdr: &CdrRecord) -> Result<(), StoreError> {
        let sql = insert_cdr_sql();
        let (browser, trunk) = (&cdr.browser_stats, &cdr.trunk_stats);
        let written = sqlx::query(&sql)
            .bind(&cdr.call_id)
            .bind(&cdr.tenant_id)
            .bind(&cdr.number_id)
            .bind(&cdr.widget_id)
            .bind(&cdr.trunk)
            .bind(&cdr.node_id)
            .bind(cdr.created_at_ms)
            .bind(cdr.answered_at_ms)
            .bind(cdr.ended_at_ms)
            .bind(cdr.duration_ms)
            .bind(cdr.disposition.as_str())
            .bind(cdr.sip_code.map(i32::from))
            .bind(cdr.ended_by.as_str())
            .bind(&cdr.browser_codec)
            .bind(&cdr.trunk_codec)
            .bind(stored(browser.packets_sent))
            .bind(stored(browser.packets_received))
            .bind(browser.packets_lost)
            .bind(stored(browser.jitter_us))
            .bind(stored(trunk.packets_sent))
            .bind(stored(trunk.packets_received))
            .bind(trunk.packets_lost)
            .bind(stored(trunk.jitter_us))
            .bind(&cdr.visitor_network)
            .bind(i32::from(cdr.recorded))
            .bind(&cdr.privacy_ref)
            .bind(cdr.erased_at_ms)
            .bind(&cdr.sip_reason)
            .bind(cdr.q850_cause.map(i32::from))
            .bind(browser.mos_worst_x100.map(i32::from))
            .bind(browser.mos_average_x100.map(i32::from))
            .bind(trunk.mos_worst_x100.map(i32::from))
            .bind(trunk.mos_average_x100.map(i32::from))
            .bind(&cdr.end_reason)
            .execute(&self.pool)
            .await
            .map_err(StoreError::query("cdr insert"))?;
        match written.rows_affected() {
            0 => Err(StoreError::Duplicate { op: "cdr insert" }),
            _ => Ok(()),
        }
    }

    /// The record of call `call_id`, if one was written.
    pub async fn cdr(&self, call_id: &str) -> Result<Option<CdrRecord>, StoreError> {
        let sql = format!("SELECT {CDR_COLUMNS} FROM cdrs WHERE call_id = $1");
        let row: Option<CdrRow> = sqlx::query_as(&sql)
            .bind(call_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query("cdr lookup"))?;
        row.map(CdrRecord::try_from).transpose()
    }

    /// Up to `limit` records of `tenant`, newest first.
    pub async fn cdrs_for_tenant(
        &self,
        tenant: &str,
        limit: u32,
    ) -> Result<Vec<CdrRecord>, StoreError> {
        let sql = format!(
            "SELECT {CDR_COLUMNS} FROM cdrs WHERE tenant_id = $1 \
             ORDER BY created_at DESC, call_id DESC LIMIT $2"
        );
        let rows: Vec<CdrRow> = sqlx::query_as(&sql)
            .bind(tenant)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query("cdr listing"))?;
        rows.into_iter().map(CdrRecord::try_from).collect()
    }
}

impl Store {
    /// Deletes the records of calls placed before `cutoff_ms`, and their
    /// consent receipts, in one transaction; returns how many records.
    pub async fn delete_cdrs_before(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(StoreError::query("cdr retention"))?;
        sqlx::query(
            "DELETE FROM consent_receipts WHERE call_id IN \
             (SELECT call_id FROM cdrs WHERE created_at < $1)",
        )
        .bind(cutoff_ms)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("cdr retention"))?;
        let deleted = sqlx::query("DELETE FROM cdrs WHERE created_at < $1")
            .bind(cutoff_ms)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query("cdr retention"))?
            .rows_affected();
        tx.commit()
            .await
            .map_err(StoreError::query("cdr retention"))?;
        Ok(deleted)
    }
}

/// Which of a tenant's records an export wants: created in
/// `[from_ms, to_ms)`, optionally of one number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdrFilter {
    pub tenant_id: TenantId,
    pub from_ms: i64,
    pub to_ms: i64,
    pub number_id: Option<String>,
}

/// Where the previous page of an export ended: its last row's creation
/// time and call id. Pages follow that key, so rows written meanwhile
/// neither repeat nor shift a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdrCursor {
    pub created_at_ms: i64,
    pub call_id: CallId,
}

impl Store {
    /// Up to `limit` records matching `filter` after `cursor`, oldest
    /// first. An export reads page after page, so a year of records never
    /// sits in memory at once.
    pub async fn cdr_page(
        &self,
        filter: &CdrFilter,
        cursor: Option<&CdrCursor>,
        limit: u32,
    ) -> Result<Vec<CdrRecord>, StoreError> {
        let sql = format!(
            "SELECT {CDR_COLUMNS} FROM cdrs \
             WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3 \
               AND ($4 IS NULL OR number_id = $4) \
               AND (created_at > $5 OR (created_at = $5 AND call_id > $6)) \
             ORDER BY created_at, call_id LIMIT $7"
        );
        let (after_ms, after_id) = match cursor {
            Some(cursor) => (cursor.created_at_ms, cursor.call_id.as_str()),
            None => (i64::MIN, ""),
        };
        let rows: Vec<CdrRow> = sqlx::query_as(&sql)
            .bind(&filter.tenant_id)
            .bind(filter.from_ms)
            .bind(filter.to_ms)
            .bind(&filter.number_id)
            .bind(after_ms)
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query("cdr export"))?;
        rows.into_iter().map(CdrRecord::try_from).collect()
    }
}
