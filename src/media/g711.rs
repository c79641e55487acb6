//! G.711 µ-law (PCMU) and A-law (PCMA) companding, ITU-T G.711.
//!
//! Owns the conversion between 16-bit linear PCM and the two 8-bit G.711
//! encodings, and direct µ-law ↔ A-law transcoding. Pure functions, no state,
//! no allocation, no panics on any input.
//!
//! Behaviour follows the classic CCITT/Sun reference code that every SIP stack
//! interoperates with:
//! - µ-law: magnitude clipped at 32635, bias 0x84 added, exponent from the
//!   highest set bit, every bit inverted on the wire (so silence is 0xFF).
//! - A-law: 13-bit magnitude, segment and quantisation bits, even bits toggled
//!   with 0x55 on the wire (so silence is 0xD5).
//! - Decoding returns the middle of each quantisation step.
//!
//! Decoding goes through 256-entry tables built at compile time; encoding is a
//! handful of integer operations. Transcoding tables map each code to the code
//! of the other law nearest its decoded value (decode then encode), which is
//! what gateways do in practice.
//!
//! Public API:
//! - [`encode_ulaw`], [`decode_ulaw`], [`encode_alaw`], [`decode_alaw`]: one sample.
//! - [`encode_ulaw_into`], [`decode_ulaw_into`], [`encode_alaw_into`],
//!   [`decode_alaw_into`]: slices; each converts `min(src.len(), dst.len())`
//!   samples and returns that count.
//! - [`ulaw_to_alaw`], [`alaw_to_ulaw`] and the in-place slice forms
//!   [`ulaw_to_alaw_in_place`], [`alaw_to_ulaw_in_place`].

/// µ-law bias: shifts every magnitude so the segment search can use the
/// position of the highest set bit.
const ULAW_BIAS: i32 = 0x84;
/// Largest magnitude µ-law can represent once the bias is added (0x7FFF).
const ULAW_CLIP: i32 = 32635;
/// A-law toggles the even bits so idle lines carry enough transitions.
const ALAW_XOR: u8 = 0x55;

/// Builds a 256-entry table at compile time; a macro because const fns
/// cannot take the per-entry function as an argument.
macro_rules! code_table {
    ($ty:ty, $entry:expr) => {{
        let mut table: [$ty; 256] = [0; 256];
        let mut code = 0;
        while code < 256 {
            table[code] = $entry(code as u8);
            code += 1;
        }
        table
    }};
}

static ULAW_DECODE: [i16; 256] = code_table!(i16, ulaw_decode_formula);
static ALAW_DECODE: [i16; 256] = code_table!(i16, alaw_decode_formula);
static ULAW_TO_ALAW: [u8; 256] = code_table!(u8, ulaw_to_alaw_formula);
static ALAW_TO_ULAW: [u8; 256] = code_table!(u8, alaw_to_ulaw_formula);

/// Encodes one linear sample as µ-law.
#[must_use]
pub const fn encode_ulaw(sample: i16) -> u8 {
    let sample = sample as i32;
    let (sign, magnitude) = if sample < 0 {
        (0x80, -sample)
    } else {
        (0x00, sample)
    };
    let magnitude = if magnitude > ULAW_CLIP {
        ULAW_CLIP
    } else {
        magnitude
    };
    let biased = magnitude + ULAW_BIAS;
    // biased is in 0x84..=0x7FFF, so its highest bit is bit 7..=14.
    let exponent = (31 - biased.leading_zeros() as i32) - 7;
    let mantissa = (biased >> (exponent + 3)) & 0x0F;
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// Decodes one µ-law code to a linear sample.
#[must_use]
pub fn decode_ulaw(code: u8) -> i16 {
    ULAW_DECODE[usize::from(code)]
}

/// Encodes one linear sample as A-law.
#[must_use]
pub const fn encode_alaw(sample: i16) -> u8 {
    // A-law works on 13 bits; the arithmetic shift keeps the sign.
    let value = (sample as i32) >> 3;
    let (mask, magnitude) = if value >= 0 {
        (0xD5u8, value)
    } else {
        // One's complement: -1 maps to the smallest negative step, like 0
        // maps to the smallest positive one.
        (ALAW_XOR, -value - 1)
    };
    // magnitude is at most 4095 (12 bits), so segment is 0..=7.
    let segment = if magnitude < 32 {
        0
    } else {
        (31 - (magnitude as u32).leading_zeros() as i32) - 4
    };
    let quant = if segment < 2 {
        (magnitude >> 1) & 0x0F
    } else {
        (magnitude >> segment) & 0x0F
    };
    ((segment << 4) | quant) as u8 ^ mask
}

/// Decodes one A-law code to a linear sample.
#[must_use]
pub fn decode_alaw(code: u8) -> i16 {
    ALAW_DECODE[usize::from(code)]
}

/// Transcodes one µ-law code to the nearest A-law code.
#[must_use]
pub fn ulaw_to_alaw(code: u8) -> u8 {
    ULAW_TO_ALAW[usize::from(code)]
}

/// Transcodes one A-law code to the nearest µ-law code.
#[must_use]
pub fn alaw_to_ulaw(code: u8) -> u8 {
    ALAW_TO_ULAW[usize::from(code)]
}

/// Decodes µ-law bytes into linear samples; returns how many were converted.
pub fn decode_ulaw_into(src: &[u8], dst: &mut [i16]) -> usize {
    map_into(src, dst, decode_ulaw)
}

/// Decodes A-law bytes into linear samples; returns how many were converted.
pub fn decode_alaw_into(src: &[u8], dst: &mut [i16]) -> usize {
    map_into(src, dst, decode_alaw)
}

/// Encodes linear samples as µ-law; returns how many were converted.
pub fn encode_ulaw_into(src: &[i16], dst: &mut [u8]) -> usize {
    map_into(src, dst, encode_ulaw)
}

/// Encodes linear samples as A-law; returns how many were converted.
pub fn encode_alaw_into(src: &[i16], dst: &mut [u8]) -> usize {
    map_into(src, dst, encode_alaw)
}

/// Rewrites a µ-law payload as A-law without going through linear samples.
pub fn ulaw_to_alaw_in_place(payload: &mut [u8]) {
    for code in payload {
        *code = ulaw_to_alaw(*code);
    }
}

/// Rewrites an A-law payload as µ-law without going through linear samples.
pub fn alaw_to_ulaw_in_place(payload: &mut [u8]) {
    for code in payload {
        *code = alaw_to_ulaw(*code);
    }
}

fn map_into<S: Copy, D>(src: &[S], dst: &mut [D], f: impl Fn(S) -> D) -> usize {
    let count = src.len().min(dst.len());
    for (out, sample) in dst.iter_mut().zip(src) {
        *out = f(*sample);
    }
    count
}

const fn ulaw_decode_formula(code: u8) -> i16 {
    let code = !code;
    let exponent = (code >> 4) & 0x07;
    let mantissa = (code & 0x0F) as i32;
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    if code & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

const fn alaw_decode_formula(code: u8) -> i16 {
    let code = code ^ ALAW_XOR;
    let segment = (code >> 4) & 0x07;
    let quant = ((code & 0x0F) as i32) << 4;
    let magnitude = match segment {
        0 => quant + 8,
        _ => (quant + 0x108) << (segment - 1),
    };
    // After the toggle a set sign bit means positive, unlike µ-law.
    if code & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

const fn ulaw_to_alaw_formula(code: u8) -> u8 {
    encode_alaw(ulaw_decode_formula(code))
}

const fn alaw_to_ulaw_formula(code: u8) -> u8 {
    encode_ulaw(alaw_decode_formula(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// G.711 µ-law decoding as the recommendation states it: 14-bit
    /// magnitude ((2m + 33) << e) - 33, scaled to 16 bits.
    fn ulaw_spec(code: u8) -> i32 {
        let c = !code;
        let e = i32::from((c >> 4) & 7);
        let m = i32::from(c & 0x0F);
        let magnitude = 4 * (((2 * m + 33) << e) - 33);
        if c & 0x80 != 0 { -magnitude } else { magnitude }
    }

    /// G.711 A-law decoding as the recommendation states it: 13-bit
    /// magnitude 2m + 1 in segment 0, (2m + 33) << (e - 1) above, scaled.
    fn alaw_spec(code: u8) -> i32 {
        let c = code ^ 0x55;
        let e = i32::from((c >> 4) & 7);
        let m = i32::from(c & 0x0F);
        let magnitude = 8 * if e == 0 {
            2 * m + 1
        } else {
            (2 * m + 33) << (e - 1)
        };
        if c & 0x80 != 0 { magnitude } else { -magnitude }
    }

    #[test]
    fn silence_encodes_to_the_classic_idle_codes() {
        assert_eq!(encode_ulaw(0), 0xFF);
        assert_eq!(encode_alaw(0), 0xD5);
        assert_eq!(decode_ulaw(0xFF), 0);
        assert_eq!(decode_ulaw(0x7F), 0);
        assert_eq!(decode_alaw(0xD5), 8);
        assert_eq!(decode_alaw(0x55), -8);
    }

    #[test]
    fn extremes_match_the_reference_code() {
        assert_eq!(encode_ulaw(i16::MAX), 0x80);
        assert_eq!(encode_ulaw(i16::MIN), 0x00);
        assert_eq!(decode_ulaw(0x80), 32124);
        assert_eq!(decode_ulaw(0x00), -32124);
        assert_eq!(encode_alaw(i16::MAX), 0xAA);
        assert_eq!(encode_alaw(i16::MIN), 0x2A);
        assert_eq!(decode_alaw(0xAA), 32256);
        assert_eq!(decode_alaw(0x2A), -32256);
    }

    #[test]
    fn known_vectors_from_the_reference_code() {
        // Values computed by hand from the Sun reference routines.
        assert_eq!(encode_ulaw(1000), 0xCE);
        assert_eq!(encode_ulaw(-1000), 0x4E);
        assert_eq!(decode_ulaw(0xCE), 988);
        assert_eq!(encode_alaw(1000), 0xFA);
        assert_eq!(encode_alaw(-1000), 0x7A);
        assert_eq!(decode_alaw(0xFA), 1008);
        assert_eq!(decode_alaw(0x7A), -1008);
    }

    #[test]
    fn decode_tables_agree_with_the_recommendation_for_all_codes() {
        for code in 0..=255u8 {
            assert_eq!(
                i32::from(decode_ulaw(code)),
                ulaw_spec(code),
                "µ-law {code:#04x}"
            );
            assert_eq!(
                i32::from(decode_alaw(code)),
                alaw_spec(code),
                "A-law {code:#04x}"
            );
        }
    }

    #[test]
    fn every_code_survives_decode_then_encode() {
        for code in 0..=255u8 {
            // 0x7F is µ-law "negative zero"; it decodes to 0, which encodes as 0xFF.
            if code != 0x7F {
                assert_eq!(encode_ulaw(decode_ulaw(code)), code, "µ-law {code:#04x}");
            }
            assert_eq!(encode_alaw(decode_alaw(code)), code, "A-law {code:#04x}");
        }
    }

    #[test]
    fn ulaw_round_trip_error_is_within_half_a_step() {
        for x in i16::MIN..=i16::MAX {
            let back = i32::from(decode_ulaw(encode_ulaw(x)));
            let x = i32::from(x);
            if x.abs() <= ULAW_CLIP {
                let bound = (x.abs() + ULAW_BIAS) / 32 + 1;
                assert!((back - x).abs() <= bound, "x={x} back={back}");
            } else {
                assert_eq!(back, 32124 * x.signum(), "x={x}");
            }
        }
    }

    #[test]
    fn alaw_round_trip_error_is_within_half_a_step() {
        for x in i16::MIN..=i16::MAX {
            let back = i32::from(decode_alaw(encode_alaw(x)));
            let x = i32::from(x);
            let bound = (x.abs() / 32).max(8);
            assert!((back - x).abs() <= bound, "x={x} back={back}");
        }
    }

    #[test]
    fn companding_is_monotonic() {
        let mut last = (i32::MIN, i32::MIN);
        for x in i16::MIN..=i16::MAX {
            let now = (
                i32::from(decode_ulaw(encode_ulaw(x))),
                i32::from(decode_alaw(encode_alaw(x))),
            );
            assert!(now.0 >= last.0 && now.1 >= last.1, "x={x}");
            last = now;
        }
    }

    #[test]
    fn transcoding_lands_within_half_an_alaw_step() {
        for code in 0..=255u8 {
            let from = i32::from(decode_ulaw(code));
            let to = i32::from(decode_alaw(ulaw_to_alaw(code)));
            assert!(
                (to - from).abs() <= (from.abs() / 32).max(8),
                "µ {code:#04x}"
            );
        }
    }

    #[test]
    fn transcoding_lands_within_half_a_ulaw_step() {
        for code in 0..=255u8 {
            let from = i32::from(decode_alaw(code));
            let to = i32::from(decode_ulaw(alaw_to_ulaw(code)));
            let bound = (from.abs() + ULAW_BIAS) / 32 + 1;
            let clipped = from.abs() > 32124 && to.abs() == 32124;
            assert!(clipped || (to - from).abs() <= bound, "A {code:#04x}");
        }
    }

    #[test]
    fn idle_codes_transcode_to_the_same_level() {
        // µ-law 0xFF is 0, nearest A-law is ±8; A-law 0xD5 is +8, which µ-law
        // holds exactly as 0xFE.
        assert_eq!(ulaw_to_alaw(0xFF), 0xD5);
        assert_eq!(alaw_to_ulaw(0xD5), 0xFE);
        assert_eq!(decode_ulaw(0xFE), 8);
    }

    #[test]
    fn slice_helpers_convert_the_shorter_length() {
        let pcm = [0i16, 1000, -1000, i16::MAX, i16::MIN];
        let mut ulaw = [0u8; 3];
        assert_eq!(encode_ulaw_into(&pcm, &mut ulaw), 3);
        assert_eq!(ulaw, [0xFF, 0xCE, 0x4E]);

        let mut back = [7i16; 5];
        assert_eq!(decode_ulaw_into(&ulaw, &mut back), 3);
        assert_eq!(back, [0, 988, -988, 7, 7]);

        let mut alaw = [0u8; 8];
        assert_eq!(encode_alaw_into(&pcm, &mut alaw), 5);
        let mut linear = [0i16; 5];
        assert_eq!(decode_alaw_into(&alaw, &mut linear), 5);
        assert_eq!(linear, [8, 1008, -1008, 32256, -32256]);
    }

    #[test]
    fn in_place_transcoding_matches_the_per_code_tables() {
        let mut payload: Vec<u8> = (0..=255).collect();
        ulaw_to_alaw_in_place(&mut payload);
        assert!(
            payload
                .iter()
                .enumerate()
                .all(|(i, &a)| a == ulaw_to_alaw(i as u8))
        );
        let mut payload: Vec<u8> = (0..=255).collect();
        alaw_to_ulaw_in_place(&mut payload);
        assert!(
            payload
                .iter()
                .enumerate()
                .all(|(i, &u)| u == alaw_to_ulaw(i as u8))
        );
    }
}
