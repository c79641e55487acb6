//! Consent receipts: what the visitor agreed to, when and how, signed by
//! the node so an auditor can check that it was not made up afterwards.
//!
//! The signed text is canonical (`key=value` lines in a fixed order), its
//! SHA-256 is the receipt's hash, which the recording's header carries, so
//! a recording proves which consent it was made under. The signature is an
//! HMAC-SHA256 under the current KEK (see [`KeyRing::sign`]), stored as
//! `KEY_ID:HEX`.

use sha2::{Digest, Sha256};

use super::gate::ConsentMethod;
use crate::domain::{CallId, NumberId};
use crate::keys::{KeyError, KeyRing};
use crate::store::ConsentReceiptRow;

/// The facts of one grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentReceipt {
    pub call_id: CallId,
    pub number_id: NumberId,
    /// `opt_in` or `notice`.
    pub policy: String,
    /// SHA-256 (hex) of the notice text the widget was given to show.
    pub notice_hash: String,
    pub method: ConsentMethod,
    pub granted_at_ms: i64,
}

/// SHA-256 (hex) of a notice text; of the empty text when there is none.
pub fn notice_hash(notice: Option<&str>) -> String {
    hex::encode(Sha256::digest(notice.unwrap_or_default().as_bytes()))
}

impl ConsentReceipt {
    /// The text that is hashed and signed.
    pub fn canonical(&self) -> String {
        format!(
            "call_id={}\nnumber_id={}\npolicy={}\nnotice_sha256={}\nmethod={}\ngranted_at_ms={}\n",
            self.call_id,
            self.number_id,
            self.policy,
            self.notice_hash,
            self.method.as_str(),
            self.granted_at_ms
        )
    }

    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.canonical().as_bytes()).into()
    }

    /// The row to store, signed with the ring's current KEK.
    pub fn signed(&self, keys: &KeyRing) -> ConsentReceiptRow {
        let (key_id, tag) = keys.sign(self.canonical().as_bytes());
        ConsentReceiptRow {
            hash: hex::encode(self.hash()),
            call_id: self.call_id.clone(),
            number_id: self.number_id.clone(),
            policy: self.policy.clone(),
            notice_hash: self.notice_hash.clone(),
            method: self.method.as_str().to_owned(),
            granted_at: self.granted_at_ms,
            signature: format!("{key_id}:{}", hex::encode(tag)),
        }
    }
}

/// Whether a stored receipt is what the node signed: its hash matches its
/// fields and its signature checks under the KEK it names.
pub fn verify(row: &ConsentReceiptRow, keys: &KeyRing) -> Result<bool, KeyError> {
    let method = match row.method.as_str() {
        "api" => ConsentMethod::Api,
        "button" => ConsentMethod::Button,
        "notice" => ConsentMethod::Notice,
        _ => return Ok(false),
    };
    let receipt = ConsentReceipt {
        call_id: row.call_id.clone(),
        number_id: row.number_id.clone(),
        policy: row.policy.clone(),
        notice_hash: row.notice_hash.clone(),
        method,
        granted_at_ms: row.granted_at,
    };
    let Some((key_id, tag)) = row.signature.split_once(':') else {
        return Ok(false);
    };
    let Ok(tag) = hex::decode(tag) else {
        return Ok(false);
    };
    let hash_matches = hex::encode(receipt.hash()) == row.hash;
    Ok(hash_matches && keys.verify(key_id, receipt.canonical().as_bytes(), &tag)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Kek, generate_kek_text};

    fn ring() -> KeyRing {
        KeyRing::new(
            vec![Kek::from_text("k1", &generate_kek_text()).unwrap()],
            "k1",
        )
        .unwrap()
    }

    fn receipt() -> ConsentReceipt {
        ConsentReceipt {
            call_id: "call-1".into(),
            number_id: "demo".into(),
            policy: "opt_in".into(),
            notice_hash: notice_hash(Some("This call may be recorded.")),
            method: ConsentMethod::Button,
            granted_at_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn a_signed_receipt_verifies_and_an_edited_one_does_not() {
        let keys = ring();
        let row = receipt().signed(&keys);
        assert!(row.signature.starts_with("k1:"));
        assert!(verify(&row, &keys).unwrap());
        let mut later = row.clone();
        later.granted_at += 1;
        assert!(!verify(&later, &keys).unwrap(), "edited time");
        let mut method = row.clone();
        method.method = "api".into();
        assert!(!verify(&method, &keys).unwrap(), "edited method");
        assert!(!verify(&row, &ring()).unwrap(), "another node's key");
    }

    #[test]
    fn the_hash_covers_the_notice_shown() {
        let mut other = receipt();
        other.notice_hash = notice_hash(Some("A different notice."));
        assert_ne!(receipt().hash(), other.hash());
    }
}
