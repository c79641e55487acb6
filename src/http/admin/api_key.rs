//! API keys as text: `cg_<id>_<secret>`.
//!
//! The id (16 hex digits) is public: it finds the key's row without a scan
//! and names the key in the audit log. The secret is 32 random bytes
//! (base64url); the node keeps only a keyed hash of the whole key
//! ([`crate::keys::KeyRing::hash_api_key`]), so checking a key
//! costs one HMAC, not a password hash, and a stolen database reveals no key.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use zeroize::Zeroizing;

use crate::keys::KeyRing;
use crate::store::{ApiKeyRecord, Role, now_ms};

const PREFIX: &str = "cg_";
const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

/// A key split into its public id and the whole text to hash.
#[derive(Debug, PartialEq, Eq)]
pub struct PresentedKey<'a> {
    pub id: &'a str,
    pub text: &'a str,
}

/// Splits `text` into id and secret; `None` for anything that is not a
/// well-formed key (checked before any lookup).
pub fn parse(text: &str) -> Option<PresentedKey<'_>> {
    let rest = text.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let id_ok = id.len() == ID_BYTES * 2 && id.bytes().all(|b| b.is_ascii_hexdigit());
    let secret_ok = URL_SAFE_NO_PAD
        .decode(secret)
        .is_ok_and(|bytes| bytes.len() == SECRET_BYTES);
    (id_ok && secret_ok).then_some(PresentedKey { id, text })
}

/// A new key: the text to show once, and the record to store.
pub fn generate(
    keys: &KeyRing,
    tenant_id: Option<&str>,
    role: Role,
) -> (Zeroizing<String>, ApiKeyRecord) {
    let id = hex::encode(rand::random::<[u8; ID_BYTES]>());
    let secret = Zeroizing::new(rand::random::<[u8; SECRET_BYTES]>());
    let text = Zeroizing::new(format!(
        "{PREFIX}{id}_{}",
        URL_SAFE_NO_PAD.encode(secret.as_slice())
    ));
    let (hash_key_id, hash) = keys.hash_api_key(text.as_bytes());
    let record = ApiKeyRecord {
        id,
        tenant_id: tenant_id.map(str::to_owned),
        role,
        hash_key_id: hash_key_id.0,
        hash: hex::encode(hash),
        created_at_ms: now_ms(),
        revoked_at_ms: None,
    };
    (text, record)
}

/// Whether `presented` is the key `record` was made from (constant time)
/// and still valid. The keyed hash is computed whatever the record says,
/// so a revoked key is refused in the time a wrong one is.
pub fn matches(keys: &KeyRing, record: &ApiKeyRecord, presented: &PresentedKey<'_>) -> bool {
    let hash = hex::decode(&record.hash).unwrap_or_default();
    let equal = keys
        .check_api_key(&record.hash_key_id, presented.text.as_bytes(), &hash)
        .unwrap_or(false);
    equal && record.revoked_at_ms.is_none() && record.id == presented.id
}

/// Refuses a key whose id names no record after the same keyed hash
/// [`matches`] computes, so an unknown id is refused in the time a known
/// one with a wrong secret is, and a probe cannot time its way to ids.
pub fn refuse_unknown(keys: &KeyRing, presented: &PresentedKey<'_>) -> bool {
    let (_, hash) = keys.hash_api_key(presented.text.as_bytes());
    std::hint::black_box(hash);
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Kek, generate_kek_text};

    fn ring(ids: &[&str], current: &str) -> KeyRing {
        let keks = ids
            .iter()
            .map(|id| Kek::from_text(id, &generate_kek_text()).unwrap())
            .collect();
        KeyRing::new(keks, current).unwrap()
    }

    #[test]
    fn a_generated_key_parses_and_matches_its_record_only() {
        let keys = ring(&["k1"], "k1");
        let (text, record) = generate(&keys, Some("acme"), Role::Admin);
        let presented = parse(&text).unwrap();
        assert_eq!(presented.id, record.id);
        assert!(matches(&keys, &record, &presented));
        assert!(!record.hash.contains(&text[3..]));

        let (other_text, _) = generate(&keys, Some("acme"), Role::Admin);
        let other = parse(&other_text).unwrap();
        let forged = PresentedKey {
            id: &record.id,
            text: other.text,
        };
        assert!(!matches(&keys, &record, &forged));
    }

    #[test]
    fn revoked_keys_and_keys_under_another_kek_do_not_match() {
        let keys = ring(&["k1"], "k1");
        let (text, mut record) = generate(&keys, None, Role::Operator);
        let presented = parse(&text).unwrap();
        let unrelated = ring(&["k1"], "k1");
        assert!(!matches(&unrelated, &record, &presented));
        record.revoked_at_ms = Some(1);
        assert!(!matches(&keys, &record, &presented));
    }

    #[test]
    fn keys_made_before_a_rotation_still_match() {
        let k1 = generate_kek_text();
        let kek = |id: &str, text: &str| Kek::from_text(id, text).unwrap();
        let before = KeyRing::new(vec![kek("k1", &k1)], "k1").unwrap();
        let (text, record) = generate(&before, Some("acme"), Role::Read);
        let k2 = generate_kek_text();
        let rotated = KeyRing::new(vec![kek("k1", &k1), kek("k2", &k2)], "k2").unwrap();
        assert!(matches(&rotated, &record, &parse(&text).unwrap()));
        let (_, newer) = generate(&rotated, Some("acme"), Role::Read);
        assert_eq!(newer.hash_key_id, "k2");
    }

    #[test]
    fn malformed_keys_are_refused_before_any_lookup() {
        let good = format!(
            "cg_{}_{}",
            "0123456789abcdef",
            URL_SAFE_NO_PAD.encode([7u8; 32])
        );
        assert!(parse(&good).is_some());
        for bad in [
            "",
            "cg_",
            "Bearer x",
            "cg_0123456789abcdef",
            "cg_0123456789abcdeg_AAAA",
            &good.replace("cg_", "xx_"),
            &good[..good.len() - 1],
            &format!("{good}A"),
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
