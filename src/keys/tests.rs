//! The keys' promises: what is wrapped, sealed or tagged under one KEK
//! and context opens or checks only with the same, across rotation.

use super::*;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

fn kek(id: &str) -> Kek {
    Kek::from_text(id, &generate_kek_text()).unwrap()
}

#[test]
fn a_wrapped_key_opens_only_with_its_kek_and_recording() {
    let ring = KeyRing::new(vec![kek("k1")], "k1").unwrap();
    let key = DataKey::generate();
    let wrapped = ring.wrap(&key, "rec-1");
    assert_eq!(wrapped.key_id.0, "k1");
    let opened = ring.unwrap(&wrapped, "rec-1").unwrap();
    assert_eq!(opened.expose(), key.expose());
    assert_eq!(
        ring.unwrap(&wrapped, "rec-2").unwrap_err(),
        KeyError::Unwrap {
            key_id: "k1".into()
        }
    );
    let other = KeyRing::new(vec![kek("k1")], "k1").unwrap();
    assert!(matches!(
        other.unwrap(&wrapped, "rec-1"),
        Err(KeyError::Unwrap { .. })
    ));
}

#[test]
fn a_sealed_secret_opens_only_with_its_kek_and_context() {
    let ring = KeyRing::new(vec![kek("k1")], "k1").unwrap();
    let sealed = ring.seal_secret("webhook secret", "tenant-a");
    assert!(sealed.starts_with("sealed:v1:k1:"), "{sealed}");
    assert!(!sealed.contains("webhook secret"));
    assert_ne!(ring.seal_secret("webhook secret", "tenant-a"), sealed);
    assert_eq!(
        ring.open_secret(&sealed, "tenant-a").unwrap().as_str(),
        "webhook secret"
    );
    assert!(matches!(
        ring.open_secret(&sealed, "tenant-b"),
        Err(KeyError::Unseal { .. })
    ));
    let other = KeyRing::new(vec![kek("k1")], "k1").unwrap();
    assert!(matches!(
        other.open_secret(&sealed, "tenant-a"),
        Err(KeyError::Unseal { .. })
    ));
    let mut tampered = sealed.clone().into_bytes();
    let last = tampered.len() - 3;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert!(ring.open_secret(&tampered, "tenant-a").is_err());
    let relabelled = sealed.replacen(":k1:", ":k2:", 1);
    assert!(matches!(
        ring.open_secret(&relabelled, "tenant-a"),
        Err(KeyError::UnknownKeyId(_))
    ));
    for not_sealed in ["plain", "sealed:v1:", "sealed:v1:k1", "sealed:v1:k1:%%"] {
        assert!(
            ring.open_secret(not_sealed, "tenant-a").is_err(),
            "{not_sealed}"
        );
    }
}

#[test]
fn rotation_wraps_with_the_new_key_and_still_opens_old_ones() {
    let old_text = generate_kek_text();
    let old_ring = KeyRing::new(vec![Kek::from_text("old", &old_text).unwrap()], "old").unwrap();
    let key = DataKey::generate();
    let old_wrapped = old_ring.wrap(&key, "rec-1");

    let ring = KeyRing::new(
        vec![Kek::from_text("old", &old_text).unwrap(), kek("new")],
        "new",
    )
    .unwrap();
    assert_eq!(ring.current_id().0, "new");
    assert_eq!(ring.wrap(&key, "rec-2").key_id.0, "new");
    assert_eq!(
        ring.unwrap(&old_wrapped, "rec-1").unwrap().expose(),
        key.expose()
    );
    let retired = KeyRing::new(vec![kek("new")], "new").unwrap();
    assert_eq!(
        retired.unwrap(&old_wrapped, "rec-1").unwrap_err(),
        KeyError::UnknownKeyId("old".into())
    );
}

#[test]
fn bad_key_text_ids_and_rings_are_refused() {
    assert!(matches!(
        Kek::from_text("k", "not base64!"),
        Err(KeyError::BadKeyText { .. })
    ));
    assert!(matches!(
        Kek::from_text("k", &BASE64.encode([0u8; 16])),
        Err(KeyError::BadKeyText { .. })
    ));
    assert!(matches!(
        Kek::from_text("has space", &generate_kek_text()),
        Err(KeyError::BadKeyId(_))
    ));
    assert_eq!(KeyRing::new(vec![], "x").unwrap_err(), KeyError::Empty);
    assert_eq!(
        KeyRing::new(vec![kek("a"), kek("a")], "a").unwrap_err(),
        KeyError::Duplicate("a".into())
    );
    assert_eq!(
        KeyRing::new(vec![kek("a")], "b").unwrap_err(),
        KeyError::UnknownKeyId("b".into())
    );
}

#[test]
fn keys_never_print() {
    let text = generate_kek_text();
    let kek = Kek::from_text("k1", &text).unwrap();
    let shown = format!("{kek:?} {:?}", DataKey::generate());
    assert!(!shown.contains(text.as_str()), "{shown}");
    assert!(shown.contains("redacted"));
}

#[test]
fn each_purpose_tags_the_same_text_differently() {
    let ring = KeyRing::new(vec![kek("k1")], "k1").unwrap();
    let text = b"cg_0123456789abcdef_secret";
    let (_, receipt) = ring.sign(text);
    let (_, api_key) = ring.hash_api_key(text);
    let (id, session) = ring.sign_session(text);
    assert!(receipt != api_key && api_key != session && session != receipt);
    assert!(ring.check_session(&id.0, text, &session).unwrap());
    assert!(!ring.check_session(&id.0, text, &api_key).unwrap());
    assert!(!ring.check_api_key(&id.0, text, &session).unwrap());
}
