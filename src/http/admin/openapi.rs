//! `GET /v1/openapi.json`: the OpenAPI 3.1 document of the node's HTTP API,
//! generated from the handlers' annotations so it cannot drift from them.

use axum::Json;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
};
use utoipa::{Modify, OpenApi};

use super::{
    allowances, audit, cdr_summary, cdrs, error, node, numbers, privacy, recordings, session,
    webhooks, widgets,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "callgate", description = "WebRTC-to-SIP call relay: signalling, admin and operator API"),
    paths(
        numbers::list, numbers::get, numbers::create, numbers::update, numbers::delete,
        widgets::list, widgets::get, widgets::create, widgets::update, widgets::delete,
        cdrs::export, cdr_summary::summary,
        recordings::list, recordings::get, recordings::audio, recordings::delete,
        audit::list,
        webhooks::get, webhooks::put, webhooks::delete,
        privacy::export, privacy::erase,
        session::create, session::show, session::delete,
        node::status, node::drain, node::resume, node::cluster_nodes,
        allowances::get, allowances::put, allowances::delete,
        document,
    ),
    components(schemas(error::ErrorBody)),
    modifiers(&BearerKeys),
    tags(
        (name = "numbers", description = "a tenant's numbers and their recording policy"),
        (name = "widgets", description = "call buttons and the origins that may embed them"),
        (name = "cdrs", description = "call detail records, JSON or CSV"),
        (name = "recordings", description = "encrypted recordings: list, listen, delete"),
        (name = "audit", description = "who changed or read what, and when"),
        (name = "webhooks", description = "the tenant's endpoint for signed call.ringing, \
            call.answered, call.ended and recording.ready events"),
        (name = "privacy", description = "a visitor's request: export or erase one call's data"),
        (name = "session", description = "the dashboard's sign-in: an API key traded for an \
            HttpOnly cookie that the admin routes accept too"),
        (name = "node", description = "the operator's view of this node and its drain \
            (operator keys only)"),
        (name = "tenants", description = "where a tenant's numbers may call: routes and \
            destination prefixes (operator keys only)"),
    )
)]
pub struct ApiDoc;

struct BearerKeys;

impl Modify for BearerKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                session::COOKIE,
                "from POST /v1/session; a change needs the node's own Origin",
            ))),
        );
        // Every route that takes a key takes the session cookie instead,
        // except the operator's, which take only an operator key.
        let operator_only =
            |path: &str| path.starts_with("/v1/node") || path.starts_with("/v1/tenants");
        let bearer = SecurityRequirement::new("api_key", Vec::<String>::new());
        let cookie = SecurityRequirement::new("session", Vec::<String>::new());
        let tenant_routes = openapi
            .paths
            .paths
            .iter_mut()
            .filter(|(path, _)| !operator_only(path))
            .map(|(_, item)| item);
        for item in tenant_routes {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.patch,
                &mut item.delete,
            ];
            for security in operations
                .into_iter()
                .flatten()
                .filter_map(|o| o.security.as_mut())
            {
                if security.contains(&bearer) {
                    security.push(cookie.clone());
                }
            }
        }
    }
}

/// The document; no key needed, it describes, it does not reveal.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "this document", content_type = "application/json")))]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
