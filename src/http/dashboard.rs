//! The customer dashboard: one page, its script and its stylesheet
//! (`widget/dashboard.*`, embedded in the binary), served at `/dashboard`.
//! Everything it shows comes from the admin API through the session cookie
//! (see `http::admin`); this module only serves the files.
//!
//! Invariants: every answer carries [`CSP`] (nothing but the node's own
//! scripts, styles, API and audio; no inline code; no framing, no `<base>`),
//! `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`.
//! The tests below hold the assets to that policy: no inline scripts or
//! styles, and the script never parses HTML.

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const PAGE: &str = include_str!("../../widget/dashboard.html");
const SCRIPT: &str = include_str!("../../widget/dashboard.js");
const STYLE: &str = include_str!("../../widget/dashboard.css");

/// The dashboard's Content-Security-Policy.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; media-src 'self'; img-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

pub fn routes() -> Router {
    Router::new()
        .route(
            "/dashboard",
            get(|| async { asset("text/html; charset=utf-8", PAGE) }),
        )
        .route(
            "/dashboard/dashboard.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/dashboard/dashboard.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        // Small files that change with the node: always revalidate.
        (header::CACHE_CONTROL, "no-cache"),
    ];
    (headers, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_served_with_the_strict_policy() {
        for (kind, body) in [
            ("text/html; charset=utf-8", PAGE),
            ("text/javascript; charset=utf-8", SCRIPT),
            ("text/css; charset=utf-8", STYLE),
        ] {
            let response = asset(kind, body);
            let header = |name| response.headers()[name].to_str().unwrap().to_owned();
            assert_eq!(header(header::CONTENT_TYPE), kind);
            assert_eq!(header(header::CONTENT_SECURITY_POLICY), CSP);
            assert_eq!(header(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
            assert_eq!(header(header::REFERRER_POLICY), "no-referrer");
        }
        assert!(CSP.starts_with("default-src 'none';"));
        assert!(!CSP.contains("unsafe") && !CSP.contains("data:") && !CSP.contains("http"));
    }

    #[test]
    fn the_page_has_no_inline_code_and_loads_nothing_from_elsewhere() {
        let page = PAGE.to_ascii_lowercase();
        assert!(!page.contains("<style"), "no style elements");
        assert!(!page.contains(" style="), "no style attributes");
        for tag in page.split("<script").skip(1) {
            let open = tag.split('>').next().unwrap_or_default();
            assert!(
                open.contains("src=\"/dashboard/"),
                "inline script: <script{open}>"
            );
        }
        for handler in [
            " onclick=",
            " onload=",
            " onsubmit=",
            " onerror=",
            "javascript:",
        ] {
            assert!(!page.contains(handler), "{handler}");
        }
        assert!(!page.contains("href=\"http") && !page.contains("src=\"http"));
    }

    #[test]
    fn the_script_never_parses_text_as_html_or_code() {
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            "setAttribute('style'",
            ".style.",
        ] {
            assert!(!SCRIPT.contains(sink), "dashboard.js uses {sink}");
        }
        assert!(!STYLE.contains("url(") && !STYLE.contains("@import"));
    }
}
