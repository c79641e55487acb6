//! Cross-origin access to the widget's routes (the CORS protocol of the
//! Fetch standard): a customer's page on its own origin reads the widget
//! config, places a call and hangs it up on a node at another origin.
//!
//! Which origins may do so is each widget's `allowed_origins`, so the check
//! is made by the handlers that know the widget (see
//! [`super::guard::origin_allowed`]); this module only writes the headers.
//!
//! Invariants:
//! - An allowed origin is echoed back as it was sent, never `*`, and no
//!   credentials are allowed: the widget sends no cookies, and a node that
//!   echoed credentials would let any listed site act with a visitor's
//!   session on the node.
//! - A refused origin gets no `Access-Control-*` header at all, so the
//!   browser hides the refusal from the page's script.
//! - Every response of these routes carries `Vary: Origin`, because what it
//!   says depends on the Origin it was asked from; a shared cache must not
//!   hand one site's answer to another.
//! - The admin API and the dashboard never get these headers: they are
//!   same-origin only.

use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};

/// How long a browser may reuse a preflight's answer. Short, so that a site
/// removed from a widget's list stops working within minutes (Chromium
/// caps any value at two hours).
pub const PREFLIGHT_MAX_AGE_SECS: u32 = 600;

/// The request headers a widget sends beyond the CORS-safelisted ones.
const ALLOWED_HEADERS: &str = "content-type";

/// Response headers the widget's script may read: a refused call's retry
/// hint.
const EXPOSED_HEADERS: &str = "retry-after";

/// The request's Origin header, if it sent one.
pub fn request_origin(headers: &HeaderMap) -> Option<&HeaderValue> {
    headers.get(header::ORIGIN)
}

/// Marks `response` as depending on the request's Origin; every response of
/// a cross-origin route gets this, allowed or not.
pub fn vary_on_origin(mut response: Response) -> Response {
    response
        .headers_mut()
        .append(header::VARY, HeaderValue::from_static("origin"));
    response
}

/// `response` readable by a page on `origin` (an origin already checked
/// against the widget's list).
pub fn allow(response: Response, origin: &HeaderValue) -> Response {
    let mut response = vary_on_origin(response);
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSED_HEADERS),
    );
    response
}

/// The answer to an allowed preflight: `methods` (a comma-separated list)
/// with a JSON body, for `PREFLIGHT_MAX_AGE_SECS`. A preflight that asks for
/// a method outside `methods` gets the same answer, and the browser refuses
/// the request itself.
pub fn preflight(origin: &HeaderValue, methods: &'static str) -> Response {
    let mut response = allow(StatusCode::NO_CONTENT.into_response(), origin);
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOWED_HEADERS),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from(PREFLIGHT_MAX_AGE_SECS),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITE: &str = "https://shop.example.com";

    fn header_of<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
        response.headers().get(name).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn an_allowed_origin_is_echoed_never_a_wildcard_and_without_credentials() {
        let response = allow(
            StatusCode::CREATED.into_response(),
            &HeaderValue::from_static(SITE),
        );
        assert_eq!(
            header_of(&response, "access-control-allow-origin"),
            Some(SITE)
        );
        assert_eq!(header_of(&response, "vary"), Some("origin"));
        assert_eq!(
            header_of(&response, "access-control-expose-headers"),
            Some("retry-after")
        );
        assert_eq!(
            header_of(&response, "access-control-allow-credentials"),
            None
        );
        assert_eq!(response.status(), StatusCode::CREATED);
    }

    #[test]
    fn a_preflight_names_methods_headers_and_how_long_it_holds() {
        let response = preflight(&HeaderValue::from_static(SITE), "POST");
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            header_of(&response, "access-control-allow-origin"),
            Some(SITE)
        );
        assert_eq!(
            header_of(&response, "access-control-allow-methods"),
            Some("POST")
        );
        assert_eq!(
            header_of(&response, "access-control-allow-headers"),
            Some("content-type")
        );
        assert_eq!(header_of(&response, "access-control-max-age"), Some("600"));
        assert_eq!(
            header_of(&response, "access-control-allow-credentials"),
            None
        );
    }

    #[test]
    fn vary_is_added_beside_what_a_response_already_varies_on() {
        let mut response = StatusCode::OK.into_response();
        response
            .headers_mut()
            .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        let response = vary_on_origin(response);
        let vary: Vec<_> = response.headers().get_all(header::VARY).iter().collect();
        assert_eq!(vary, ["accept-encoding", "origin"]);
        assert_eq!(header_of(&response, "access-control-allow-origin"), None);
    }
}
