//! `GET /v1/openapi.json`: the OpenAPI 3.1 document of the node's HTTP API,
//! generated from the handlers' annotations so it cannot drift from them.

use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{audit, cdrs, error, numbers, privacy, recordings, widgets};

#[derive(OpenApi)]
#[openapi(
    info(title = "callgate", description = "WebRTC-to-SIP call relay: signalling, admin and operator API"),
    paths(
        numbers::list, numbers::get, numbers::create, numbers::update, numbers::delete,
        widgets::list, widgets::get, widgets::create, widgets::update, widgets::delete,
        cdrs::export,
        recordings::list, recordings::get, recordings::audio, recordings::delete,
        audit::list,
        privacy::export, privacy::erase,
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
        (name = "privacy", description = "a visitor's request: export or erase one call's data"),
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
    }
}

/// The document; no key needed, it describes, it does not reveal.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "this document", content_type = "application/json")))]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
