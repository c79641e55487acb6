//! The customer's admin API (`Authorization: Bearer <api key>`, or the
//! dashboard's session cookie): numbers, widgets, CDR export and its
//! summary (quality per number, SIP causes), recordings,
//! the audit log, the webhook endpoint and privacy requests (export and
//! erase by the reference a visitor was shown); the operator's `/v1/node`
//! (status and drain) and `/v1/tenants/{id}/allowance` (where a tenant may
//! call), `operator` keys only; and the OpenAPI document that describes
//! every route of the node.
//!
//! Invariants:
//! - Every query is scoped to the caller's tenant; another tenant's object
//!   answers 404, exactly like a missing one.
//! - `read` keys change nothing (403); every change by an `admin` key and
//!   every recording access is in the audit log, written with the change.
//! - A change authenticated by the session cookie comes from the node's
//!   own origin (403 otherwise).
//! - Bodies and queries are strict: unknown fields and bad values answer
//!   400 naming the field.

mod allowances;
pub mod api_key;
mod audit;
mod auth;
mod body;
mod caller;
mod cdr_summary;
mod cdrs;
mod error;
mod node;
mod node_control;
mod numbers;
pub mod openapi;
mod privacy;
mod recordings;
mod session;
mod state;
mod tar_stream;
pub(crate) mod times;
pub mod validate;
mod webhooks;
mod widgets;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::http::lookups::{LookupBudget, within_budget};

pub use self::auth::Caller;
pub use self::error::ApiError;
pub use self::node_control::NodeControl;
pub use self::state::AdminState;
pub use self::widgets::embed_snippet;

/// The admin API; every route but the OpenAPI document looks up a key or
/// a session, within the client's `lookups` budget.
pub fn routes(state: AdminState, lookups: LookupBudget) -> Router {
    let budget = axum::middleware::from_fn_with_state(lookups, within_budget);
    Router::new()
        .route("/v1/numbers", get(numbers::list).post(numbers::create))
        .route(
            "/v1/numbers/{id}",
            get(numbers::get)
                .patch(numbers::update)
                .delete(numbers::delete),
        )
        .route("/v1/widgets", get(widgets::list).post(widgets::create))
        .route(
            "/v1/widgets/{id}",
            get(widgets::get)
                .patch(widgets::update)
                .delete(widgets::delete),
        )
        .route("/v1/cdrs", get(cdrs::export))
        .route("/v1/cdrs/summary", get(cdr_summary::summary))
        .route("/v1/recordings", get(recordings::list))
        .route(
            "/v1/recordings/{id}",
            get(recordings::get).delete(recordings::delete),
        )
        .route("/v1/recordings/{id}/audio", get(recordings::audio))
        .route("/v1/audit", get(audit::list))
        .route(
            "/v1/webhook",
            get(webhooks::get)
                .put(webhooks::put)
                .delete(webhooks::delete),
        )
        .route("/v1/privacy/{reference}/export", get(privacy::export))
        .route("/v1/privacy/{reference}/erase", post(privacy::erase))
        .route(
            "/v1/session",
            get(session::show)
                .post(session::create)
                .delete(session::delete),
        )
        .route("/v1/node", get(node::status))
        .route("/v1/node/drain", post(node::drain).delete(node::resume))
        .route("/v1/cluster/nodes", get(node::cluster_nodes))
        .route(
            "/v1/tenants/{id}/allowance",
            get(allowances::get)
                .put(allowances::put)
                .delete(allowances::delete),
        )
        .route_layer(budget)
        .route("/v1/openapi.json", get(openapi::document))
        .layer(DefaultBodyLimit::max(body::MAX_BODY_BYTES))
        .with_state(state)
}

/// Reads `body` as every admin request body and checks what parses, as the
/// handlers do before they reach the store; the same for it as an API key
/// and a session token. For the fuzzer and its corpus test only: none of
/// this may panic, whatever the bytes.
#[cfg(any(feature = "fuzzing", test))]
pub(crate) fn fuzz_request(body: &[u8]) {
    use body::{parse_json, parse_query};

    let limits = crate::config::LimitsConfig::default();
    let allowance = limits.default_allowance();
    if let Ok(new) = parse_json::<numbers::NewNumber>(body) {
        let _ = new.validate();
        let _ = new.limits.checked(&limits);
        let _ = allowance.may_dial(&new.e164);
    }
    if let Ok(patch) = parse_json::<numbers::NumberPatch>(body) {
        let _ = patch.validate();
        let _ = patch.limits.map(|l| l.checked(&limits));
    }
    if let Ok(new) = parse_json::<widgets::NewWidget>(body) {
        let _ = new.validate();
        let _ = new.limits.checked(&limits);
    }
    if let Ok(patch) = parse_json::<widgets::WidgetPatch>(body) {
        let _ = patch.validate();
        let _ = patch.limits.map(|l| l.checked(&limits));
    }
    if let Ok(put) = parse_json::<webhooks::WebhookPut>(body) {
        let _ = validate::webhook_url("url", &put.url, false);
    }
    if let Ok(put) = parse_json::<allowances::AllowanceBody>(body) {
        let routes = ["demo".to_owned(), "carrier".to_owned()];
        if let Ok(allowance) = put.into_allowance(&routes) {
            let _ = allowance.describe_destinations();
            let _ = allowance.may_dial("+441632960961");
        }
    }
    let _ = parse_json::<session::SignIn>(body);
    if let Ok(text) = std::str::from_utf8(body) {
        let _ = api_key::parse(text);
        let _ = session::parse(text);
        if let Ok(query) = parse_query::<cdrs::CdrQuery>(Some(text)) {
            let _ = times::parse("from", query.from.as_deref());
            let _ = times::parse("to", query.to.as_deref());
        }
        if let Ok(query) = parse_query::<cdr_summary::SummaryQuery>(Some(text)) {
            let _ = times::parse("from", query.from.as_deref());
        }
    }
}

/// `text` as a presented API key, a session token and a `Cookie` header,
/// each checked against a key and a token of a fixed key ring as the
/// admin routes check them. For the fuzzer and its corpus test only.
#[cfg(any(feature = "fuzzing", test))]
pub(crate) fn fuzz_credentials(text: &[u8]) {
    use crate::keys::{Kek, KeyRing};
    use crate::store::Role;

    static RING: std::sync::OnceLock<(KeyRing, crate::store::ApiKeyRecord)> =
        std::sync::OnceLock::new();
    let (keys, record) = RING.get_or_init(|| {
        let kek =
            Kek::from_text("k1", "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=").expect("a KEK");
        let keys = KeyRing::new(vec![kek], "k1").expect("a key ring");
        let (_, record) = api_key::generate(&keys, Some("t1"), Role::Admin);
        (keys, record)
    });
    if let Ok(value) = axum::http::HeaderValue::from_bytes(text) {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(axum::http::header::COOKIE, value);
        if let Some(cookie) = session::cookie_value(&headers)
            && let Some(token) = session::parse(cookie)
        {
            let _ = session::valid(keys, record, &token, 0);
        }
    }
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    if let Some(presented) = api_key::parse(text) {
        assert!(
            !api_key::matches(keys, record, &presented),
            "a key nobody was given"
        );
        let _ = api_key::refuse_unknown(keys, &presented);
    }
    if let Some(token) = session::parse(text) {
        assert!(
            !session::valid(keys, record, &token, 0),
            "a token nobody was given"
        );
    }
}
