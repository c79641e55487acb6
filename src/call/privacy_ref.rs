//! The privacy reference of a call: what the visitor is shown when the call
//! ends, and what they quote to ask the customer for a copy or an erasure.
//!
//! Ten Crockford base32 characters in two groups (`7KQ2M-XD4PA`): 50 random
//! bits, easy to read aloud (no I, L, O or U) and unrelated to the call id,
//! so a reference reveals nothing about other calls. Lookups accept lower
//! case and a missing dash.

/// Crockford's base32 alphabet.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const GROUP: usize = 5;

/// A new random reference.
pub fn new_privacy_ref() -> String {
    let bits: u64 = rand::random::<u64>() >> 14;
    let chars: Vec<u8> = (0..GROUP * 2)
        .map(|i| ALPHABET[((bits >> (5 * i)) & 31) as usize])
        .collect();
    format!(
        "{}-{}",
        String::from_utf8_lossy(&chars[..GROUP]),
        String::from_utf8_lossy(&chars[GROUP..])
    )
}

/// `text` as a stored reference when it could be one (`7kq2mxd4pa` →
/// `7KQ2M-XD4PA`), else `None`.
pub fn normalise(text: &str) -> Option<String> {
    let chars: Vec<u8> = text
        .bytes()
        .filter(|&b| b != b'-')
        .map(|b| b.to_ascii_uppercase())
        .collect();
    let valid = chars.len() == GROUP * 2 && chars.iter().all(|c| ALPHABET.contains(c));
    valid.then(|| {
        format!(
            "{}-{}",
            String::from_utf8_lossy(&chars[..GROUP]),
            String::from_utf8_lossy(&chars[GROUP..])
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_readable_and_normalise_to_themselves() {
        for _ in 0..100 {
            let reference = new_privacy_ref();
            assert_eq!(reference.len(), 11);
            assert!(!reference.contains(['I', 'L', 'O', 'U']), "{reference}");
            assert_eq!(normalise(&reference).as_deref(), Some(reference.as_str()));
            let loose = reference.replace('-', "").to_lowercase();
            assert_eq!(normalise(&loose).as_deref(), Some(reference.as_str()));
        }
    }

    #[test]
    fn other_text_is_no_reference() {
        for text in [
            "",
            "ABCDE",
            "ABCDE-FGHIJ",
            "ABCDE-FGHJKM",
            "a8f3c2d1-0000-4000-8000-000000000000",
        ] {
            assert_eq!(normalise(text), None, "{text}");
        }
    }

    #[test]
    fn references_differ() {
        let set: std::collections::HashSet<_> = (0..1000).map(|_| new_privacy_ref()).collect();
        assert_eq!(set.len(), 1000);
    }
}
