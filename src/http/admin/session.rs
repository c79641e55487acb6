//! Dashboard sessions: `POST /v1/session` trades an API key for an HttpOnly
//! cookie, so that a page's `<audio src>` and download links (which cannot
//! send an `Authorization` header) reach the admin API; `GET /v1/session`
//! says who is signed in; `DELETE /v1/session` clears the cookie.
//!
//! The cookie holds a token derived from the key, never the key:
//! `v1.<api key id>.<expiry, unix seconds>.<tag>.<kek id>`, the tag an
//! HMAC under the current KEK (its own purpose label) of the key id, the
//! expiry and the key's stored hash. So a copied cookie dies at its expiry
//! ([`LIFETIME`]) while the key lives on, revoking the key ends every
//! session made from it (each request still reads the key's row), and any
//! node holding the KEKs checks it without shared session state.
//!
//! Invariants:
//! - Sign-in checks the key exactly as the Bearer path does; a bad key is
//!   401 and sets no cookie.
//! - A request authenticated by the cookie that may change something (any
//!   method but GET, HEAD, OPTIONS) must carry an `Origin` equal to the
//!   node's own origin, or it is 403: the cookie is `SameSite=Strict`, and
//!   this check does not depend on the browser enforcing that.
//! - A Bearer request needs no Origin: browsers never attach that header
//!   on their own.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::parse_json;
use super::caller::{self, Caller};
use super::error::{ApiError, ErrorBody};
use super::state::AdminState;
use crate::domain::TenantId;
use crate::http::guard::{SELF_TOKEN, origin_allowed, origin_of};
use crate::keys::KeyRing;
use crate::store::{ApiKeyRecord, Role, now_ms};

/// The cookie's name.
pub const COOKIE: &str = "cg_session";
/// How long a session lasts: a working day.
pub const LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// The cookie is sent only to the API, not to pages.
const COOKIE_PATH: &str = "/v1";
const VERSION: &str = "v1";

/// A session token's parts, as read from a cookie (not yet checked).
#[derive(Debug, PartialEq, Eq)]
pub struct Token<'a> {
    pub key_id: &'a str,
    pub expires_s: u64,
    pub tag: Vec<u8>,
    pub kek_id: &'a str,
}

/// What the tag covers: the key, its stored hash and the expiry.
fn signed_text(record: &ApiKeyRecord, expires_s: u64) -> String {
    format!("{}\n{expires_s}\n{}", record.id, record.hash)
}

/// A new token for `record`, valid until `now_s + LIFETIME`.
pub fn issue(keys: &KeyRing, record: &ApiKeyRecord, now_s: u64) -> String {
    let expires_s = now_s + LIFETIME.as_secs();
    let (kek_id, tag) = keys.sign_session(signed_text(record, expires_s).as_bytes());
    format!(
        "{VERSION}.{}.{expires_s}.{}.{}",
        record.id,
        URL_SAFE_NO_PAD.encode(tag),
        kek_id.0
    )
}

/// Splits a cookie value into a token; `None` when it cannot be one.
/// KEK ids may contain dots, so the id comes last and takes the rest.
pub fn parse(text: &str) -> Option<Token<'_>> {
    let mut parts = text.splitn(5, '.');
    if parts.next()? != VERSION {
        return None;
    }
    let key_id = parts.next()?;
    let expires = parts.next()?;
    let tag = URL_SAFE_NO_PAD.decode(parts.next()?).ok()?;
    let kek_id = parts.next()?;
    let digits = !expires.is_empty() && expires.bytes().all(|b| b.is_ascii_digit());
    let well_formed = !key_id.is_empty() && !kek_id.is_empty() && tag.len() == 32 && digits;
    well_formed.then_some(Token {
        key_id,
        expires_s: expires.parse().ok()?,
        tag,
        kek_id,
    })
}

/// Whether `token` was issued for `record` by a KEK in `keys`, has not
/// expired at `now_s`, and the key is not revoked.
pub fn valid(keys: &KeyRing, record: &ApiKeyRecord, token: &Token<'_>, now_s: u64) -> bool {
    // The tag is checked first, whatever the record says, so every refusal
    // takes the same time.
    let text = signed_text(record, token.expires_s);
    let signed = keys
        .check_session(token.kek_id, text.as_bytes(), &token.tag)
        .unwrap_or(false);
    signed && record.revoked_at_ms.is_none() && record.id == token.key_id && token.expires_s > now_s
}

/// The `cg_session` cookie's value among the request's `Cookie` headers.
pub fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim_matches('"'))
}

/// The `Set-Cookie` value that stores `token`; `Secure` when the node is
/// reached over https.
pub fn set_cookie(token: &str, secure: bool) -> String {
    cookie_line(token, LIFETIME.as_secs(), secure)
}

/// The `Set-Cookie` value that makes the browser forget the session.
pub fn clear_cookie(secure: bool) -> String {
    cookie_line("", 0, secure)
}

fn cookie_line(value: &str, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{COOKIE}={value}; Path={COOKIE_PATH}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    )
}

/// Refuses a cookie-authenticated request that may change something unless
/// its `Origin` is the node's own (`base_url`'s).
pub fn check_same_origin(
    method: &Method,
    origin: Option<&str>,
    base_url: &str,
) -> Result<(), ApiError> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let own = [SELF_TOKEN.to_owned()];
    if origin_allowed(origin, &own, &origin_of(base_url)) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "a change made with the session cookie must come from this node's own origin",
        ))
    }
}

/// The caller a session cookie's `text` stands for.
pub async fn authenticate(state: &AdminState, text: &str) -> Result<Caller, ApiError> {
    let token = parse(text).ok_or(ApiError::Unauthorized)?;
    let Some(record) = state.store.api_key(token.key_id).await? else {
        // As long as a refusal of a known key's session takes.
        std::hint::black_box(state.keys.sign_session(text.as_bytes()));
        return Err(ApiError::Unauthorized);
    };
    if !valid(&state.keys, &record, &token, now_s()) {
        return Err(ApiError::Unauthorized);
    }
    caller::caller_of(record)
}

fn now_s() -> u64 {
    u64::try_from(now_ms() / 1000).unwrap_or(0)
}

fn secure(state: &AdminState) -> bool {
    state.base_url.starts_with("https://")
}

/// `POST /v1/session`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// An API key, `cg_<id>_<secret>`.
    pub key: String,
}

/// Who the session (or the Bearer key) is.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub key_id: String,
    pub tenant_id: TenantId,
    /// `admin` or `read`; a `read` key's changes are refused.
    #[schema(value_type = String, example = "admin")]
    pub role: Role,
}

#[utoipa::path(post, path = "/v1/session", tag = "session", request_body = SignIn,
    responses(
        (status = 204, description = "signed in: `Set-Cookie: cg_session=...; HttpOnly; \
            SameSite=Strict; Path=/v1`, valid 8 hours"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn create(
    State(state): State<AdminState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    // A foreign page must not sign a visitor into someone else's tenant.
    // Scripts without an Origin (curl) may sign in: they hold the key.
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    if origin.is_some() {
        check_same_origin(&Method::POST, origin, &state.base_url)?;
    }
    let sign_in: SignIn = parse_json(&body)?;
    let (_, record) = caller::authenticate_key(&state, &sign_in.key).await?;
    let token = issue(&state.keys, &record, now_s());
    Ok(with_cookie(set_cookie(&token, secure(&state))))
}

#[utoipa::path(get, path = "/v1/session", tag = "session",
    security(("api_key" = [])),
    responses((status = 200, body = SessionView), (status = 401, body = ErrorBody)))]
pub async fn show(caller: Caller) -> Json<SessionView> {
    Json(SessionView {
        key_id: caller.key_id,
        tenant_id: caller.tenant_id,
        role: caller.role,
    })
}

#[utoipa::path(delete, path = "/v1/session", tag = "session",
    responses((status = 204, description = "signed out: the cookie is cleared")))]
pub async fn delete(State(state): State<AdminState>) -> Response {
    with_cookie(clear_cookie(secure(&state)))
}

fn with_cookie(cookie: String) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        headers.insert(header::SET_COOKIE, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::admin::api_key;
    use crate::keys::{Kek, generate_kek_text};

    const NOW: u64 = 1_800_000_000;
    const BASE: &str = "http://127.0.0.1:8080";

    fn ring(id: &str) -> KeyRing {
        KeyRing::new(vec![Kek::from_text(id, &generate_kek_text()).unwrap()], id).unwrap()
    }

    fn checks(keys: &KeyRing, record: &ApiKeyRecord, text: &str, now_s: u64) -> bool {
        parse(text).is_some_and(|token| valid(keys, record, &token, now_s))
    }

    #[test]
    fn a_token_holds_no_key_and_is_valid_until_it_expires() {
        let keys = ring("k.1");
        let (key, record) = api_key::generate(&keys, Some("acme"), Role::Admin);
        let token = issue(&keys, &record, NOW);
        assert!(!token.contains(&key[3..]) && !token.contains(&record.hash));
        let parsed = parse(&token).unwrap();
        assert_eq!((parsed.key_id, parsed.kek_id), (record.id.as_str(), "k.1"));
        assert!(checks(&keys, &record, &token, NOW));
        let end = NOW + LIFETIME.as_secs();
        assert!(checks(&keys, &record, &token, end - 1));
        assert!(!checks(&keys, &record, &token, end));
    }

    #[test]
    fn a_changed_expiry_another_key_or_a_revoked_key_is_refused() {
        let keys = ring("k1");
        let (_, record) = api_key::generate(&keys, Some("acme"), Role::Admin);
        let token = issue(&keys, &record, NOW);
        let expires = (NOW + LIFETIME.as_secs()).to_string();
        let later = (NOW + 10 * LIFETIME.as_secs()).to_string();
        assert!(!checks(
            &keys,
            &record,
            &token.replace(&expires, &later),
            NOW
        ));

        let (_, other) = api_key::generate(&keys, Some("acme"), Role::Admin);
        let swapped = token.replace(&record.id, &other.id);
        assert!(!checks(&keys, &other, &swapped, NOW));
        assert!(!checks(&keys, &other, &token, NOW));
        assert!(!checks(&ring("k1"), &record, &token, NOW), "another KEK");

        let mut revoked = record.clone();
        revoked.revoked_at_ms = Some(1);
        assert!(!checks(&keys, &revoked, &token, NOW));
    }

    #[test]
    fn malformed_tokens_do_not_parse() {
        let keys = ring("k1");
        let (_, record) = api_key::generate(&keys, Some("acme"), Role::Read);
        let good = issue(&keys, &record, NOW);
        assert!(parse(&good).is_some());
        let tag = good.split('.').nth(3).unwrap();
        for bad in [
            "",
            "v1",
            "cg_0123456789abcdef_secret",
            &good.replacen("v1.", "v2.", 1),
            &good.replace(tag, &tag[1..]),
            &good.replace(&record.id, ""),
            &format!("v1.{}.-5.{tag}.k1", record.id),
            &format!("v1.{}.{NOW}.{tag}.", record.id),
        ] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn the_cookie_is_found_among_others_and_by_its_exact_name() {
        let mut headers = HeaderMap::new();
        assert_eq!(cookie_value(&headers), None);
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("xcg_session=no; a=1"),
        );
        assert_eq!(cookie_value(&headers), None);
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("b=2;  cg_session=v1.x ;c=3"),
        );
        assert_eq!(cookie_value(&headers), Some("v1.x"));
    }

    #[test]
    fn cookies_are_httponly_strict_on_the_api_path_and_secure_over_https() {
        assert_eq!(
            set_cookie("v1.t", false),
            "cg_session=v1.t; Path=/v1; Max-Age=28800; HttpOnly; SameSite=Strict"
        );
        assert!(set_cookie("v1.t", true).ends_with("; Secure"));
        assert_eq!(
            clear_cookie(true),
            "cg_session=; Path=/v1; Max-Age=0; HttpOnly; SameSite=Strict; Secure"
        );
    }

    #[test]
    fn cookie_changes_need_the_nodes_own_origin() {
        let refused = |method: Method, origin: Option<&str>| {
            check_same_origin(&method, origin, BASE).is_err()
        };
        for safe in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert!(!refused(safe.clone(), None));
            assert!(!refused(safe, Some("https://evil.example")));
        }
        for change in [Method::POST, Method::PATCH, Method::PUT, Method::DELETE] {
            assert!(!refused(change.clone(), Some(BASE)));
            assert!(!refused(change.clone(), Some("HTTP://127.0.0.1:8080")));
            assert!(refused(change.clone(), None));
            assert!(refused(change.clone(), Some("null")));
            assert!(refused(change.clone(), Some("http://127.0.0.1:8081")));
            assert!(refused(change.clone(), Some("https://127.0.0.1:8080")));
            assert!(refused(change, Some("http://localhost:8080")));
        }
        let behind_a_path = "https://gw.example.net/callgate";
        assert!(
            check_same_origin(
                &Method::DELETE,
                Some("https://gw.example.net"),
                behind_a_path
            )
            .is_ok()
        );
    }
}
