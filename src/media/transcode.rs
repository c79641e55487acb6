//! [`Transcoder`]: audio from one leg's codec into the other's, one packet
//! at a time.
//!
//! - Same codec: the payload passes through untouched (no decode, no copy
//!   beyond the packet buffer).
//! - PCMU ↔ PCMA: a byte-for-byte table lookup (ITU-T G.711 Appendix).
//! - Opus ↔ G.711: libopus decodes straight to 8 kHz mono and encodes from
//!   it (libopus resamples internally), in 20 ms frames (RFC 7587: Opus RTP
//!   timestamps always tick at 48 kHz, so 20 ms is 960 ticks).
//! - The encoder is tuned for what a phone line carries: narrowband, in
//!   Opus' transform mode (CELT) at its lowest complexity and a bitrate
//!   that keeps the waveform (see [`voice_encoder`]). It costs a fraction
//!   of the speech mode (SILK) and adds 4 ms less delay.
//!
//! Invariants: never panics on a bad payload (a corrupt Opus packet is
//! replaced by libopus' packet-loss concealment); allocation-free after
//! construction: output payloads are lent from the input or from the
//! transcoder's own buffers until the next packet.

use super::g711;
use crate::domain::Codec;

/// 20 ms at 8 kHz.
const FRAME_SAMPLES: usize = 160;
/// Opus RTP ticks per 8 kHz sample (48 kHz clock, RFC 7587 §4.1).
const OPUS_TICKS_PER_SAMPLE: u32 = 6;
/// Enough for 120 ms of decoded 8 kHz audio, the longest Opus packet.
const MAX_DECODED: usize = 960;
/// libopus' encoder complexity (0-10; its default is 9 or 10).
const ENCODER_COMPLEXITY: i32 = 0;
/// Opus' bitrate towards the browser: enough for the transform mode to
/// keep a G.711 waveform (about 16 dB SNR on voice, against 10 dB at
/// libopus' default of 11 kb/s for 8 kHz), half of G.711's own.
const ENCODER_BITRATE: i32 = 32_000;
/// A 20 ms voice frame is well under this at any VoIP bitrate.
const MAX_OPUS_PACKET: usize = 400;

#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    #[error("opus codec: {0}")]
    Opus(#[from] opus::Error),
}

/// One packet of converted audio and its length in the output's RTP clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Converted<'a> {
    pub payload: &'a [u8],
    pub ticks: u32,
}

/// See the module documentation.
pub struct Transcoder {
    from: Codec,
    to: Codec,
    decoder: Option<opus::Decoder>,
    encoder: Option<opus::Encoder>,
    decoded: Vec<i16>,
    /// Samples waiting for a full 20 ms frame before Opus encoding.
    pending: Vec<i16>,
    encoded: Vec<u8>,
    /// G.711 output of a table lookup or an Opus decode.
    g711: Vec<u8>,
}

impl std::fmt::Debug for Transcoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcoder")
            .field("from", &self.from)
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

impl Transcoder {
    pub fn new(from: Codec, to: Codec) -> Result<Self, TranscodeError> {
        let decoder = (from == Codec::Opus && to != Codec::Opus)
            .then(|| opus::Decoder::new(8_000, opus::Channels::Mono))
            .transpose()?;
        let encoder = (to == Codec::Opus && from != Codec::Opus)
            .then(voice_encoder)
            .transpose()?;
        // Buffers only for the conversion this does: a passthrough call
        // (most of them) carries none.
        let (decodes, encodes) = (decoder.is_some(), encoder.is_some());
        Ok(Self {
            from,
            to,
            decoder,
            encoder,
            decoded: sized_if(decodes, MAX_DECODED),
            pending: Vec::with_capacity(if encodes { FRAME_SAMPLES * 2 } else { 0 }),
            encoded: sized_if(encodes, MAX_OPUS_PACKET),
            // A table lookup grows it on first use.
            g711: sized_if(decodes, MAX_DECODED),
        })
    }

    /// The codecs this converts from and to.
    pub fn codecs(&self) -> (Codec, Codec) {
        (self.from, self.to)
    }

    /// True when payloads pass through untouched.
    pub fn is_passthrough(&self) -> bool {
        self.from == self.to
    }

    /// Converts one packet's payload; `emit` gets zero or more output
    /// packets (Opus output waits for whole 20 ms frames).
    pub fn convert(&mut self, payload: &[u8], mut emit: impl FnMut(Converted<'_>)) {
        match (self.from, self.to) {
            (from, to) if from == to => emit(Converted {
                payload,
                ticks: ticks_of(from, payload),
            }),
            (Codec::Pcmu, Codec::Pcma) => {
                emit(table(payload, g711::ulaw_to_alaw, &mut self.g711));
            }
            (Codec::Pcma, Codec::Pcmu) => {
                emit(table(payload, g711::alaw_to_ulaw, &mut self.g711));
            }
            (Codec::Opus, to) => self.decode_opus(payload, to, emit),
            (from, _) => self.encode_opus(payload, from, emit),
        }
    }

    fn decode_opus(&mut self, payload: &[u8], to: Codec, mut emit: impl FnMut(Converted<'_>)) {
        let Some(decoder) = self.decoder.as_mut() else {
            return;
        };
        // An empty or undecodable packet is treated as one lost 20 ms
        // frame: libopus conceals it (its length is the buffer's length).
        let decoded = match payload.is_empty() {
            true => Err(()),
            false => decoder
                .decode(payload, &mut self.decoded, false)
                .map_err(|_| ()),
        };
        let samples = decoded
            .or_else(|()| decoder.decode(&[], &mut self.decoded[..FRAME_SAMPLES], false))
            .unwrap_or(0);
        let pcm = self.decoded.get(..samples).unwrap_or_default();
        emit_g711(pcm, to, &mut self.g711, &mut emit);
    }

    /// Audio for `lost` packets that never came, just before `next`, the
    /// packet that came after them; returns its length in 8 kHz samples.
    /// Only an Opus decoder has any: the last lost packet is rebuilt from
    /// the in-band FEC `next` carries (RFC 7587 §3.3; libopus conceals it
    /// when `next` carries none), the others are libopus' concealment,
    /// each as long as `next`. Call before converting `next`.
    pub fn conceal(&mut self, lost: u32, next: &[u8], mut emit: impl FnMut(Converted<'_>)) -> u32 {
        let (Codec::Opus, to, Some(decoder)) = (self.from, self.to, self.decoder.as_mut()) else {
            return 0;
        };
        let length = decoder
            .get_nb_samples(next)
            .unwrap_or(FRAME_SAMPLES)
            .clamp(1, MAX_DECODED);
        let mut concealed = 0;
        for left in (0..lost).rev() {
            let out = &mut self.decoded[..length];
            let decoded = match left {
                0 => decoder.decode(next, out, true),
                _ => decoder.decode(&[], out, false),
            };
            let Ok(samples) = decoded else {
                break;
            };
            let pcm = self.decoded.get(..samples).unwrap_or_default();
            emit_g711(pcm, to, &mut self.g711, &mut emit);
            concealed += samples as u32;
        }
        concealed
    }

    fn encode_opus(&mut self, payload: &[u8], from: Codec, mut emit: impl FnMut(Converted<'_>)) {
        let start = self.pending.len();
        self.pending.resize(start + payload.len(), 0);
        let target = self.pending.get_mut(start..).unwrap_or_default();
        match from {
            Codec::Pcma => g711::decode_alaw_into(payload, target),
            _ => g711::decode_ulaw_into(payload, target),
        };
        let Some(encoder) = self.encoder.as_mut() else {
            return;
        };
        let mut consumed = 0;
        while self.pending.len() - consumed >= FRAME_SAMPLES {
            let frame = &self.pending[consumed..consumed + FRAME_SAMPLES];
            consumed += FRAME_SAMPLES;
            if let Ok(len) = encoder.encode(frame, &mut self.encoded) {
                emit(Converted {
                    payload: &self.encoded[..len],
                    ticks: FRAME_SAMPLES as u32 * OPUS_TICKS_PER_SAMPLE,
                });
            }
        }
        self.pending.drain(..consumed);
    }
}

/// Decoded `pcm` as G.711 (`to`'s law) in 20 ms frames, through `out`.
fn emit_g711(pcm: &[i16], to: Codec, out: &mut [u8], emit: &mut impl FnMut(Converted<'_>)) {
    for frame in pcm.chunks(FRAME_SAMPLES) {
        let out = &mut out[..frame.len()];
        match to {
            Codec::Pcma => g711::encode_alaw_into(frame, out),
            _ => g711::encode_ulaw_into(frame, out),
        };
        emit(Converted {
            payload: out,
            ticks: frame.len() as u32,
        });
    }
}

/// `len` zeroes when `wanted`, else nothing.
fn sized_if<T: Clone + Default>(wanted: bool, len: usize) -> Vec<T> {
    match wanted {
        true => vec![T::default(); len],
        false => Vec::new(),
    }
}

/// An Opus encoder for telephone audio. G.711 holds nothing above 4 kHz,
/// so narrowband says all there is. The restricted low-delay application
/// keeps libopus in its transform mode (CELT): at complexity 0 it encodes
/// a 20 ms frame several times faster than the speech mode (SILK) at 5,
/// it codes the waveform (so tones, keypad digits and music on hold come
/// through as well as voice), and its look-ahead is 2.5 ms rather than
/// 6.5 ms.
fn voice_encoder() -> Result<opus::Encoder, opus::Error> {
    let mut encoder = opus::Encoder::new(8_000, opus::Channels::Mono, opus::Application::LowDelay)?;
    encoder.set_max_bandwidth(opus::Bandwidth::Narrowband)?;
    encoder.set_complexity(ENCODER_COMPLEXITY)?;
    encoder.set_bitrate(opus::Bitrate::Bits(ENCODER_BITRATE))?;
    Ok(encoder)
}

fn ticks_of(codec: Codec, payload: &[u8]) -> u32 {
    match codec {
        Codec::Pcmu | Codec::Pcma => payload.len() as u32,
        // The packet's own duration (RFC 6716 §3.1 TOC), 20 ms if unreadable.
        Codec::Opus => opus::packet::get_nb_samples(payload, 48_000).map_or(960, |n| n as u32),
    }
}

/// `payload` mapped byte for byte into `out`.
fn table<'a>(payload: &[u8], map: fn(u8) -> u8, out: &'a mut Vec<u8>) -> Converted<'a> {
    out.clear();
    out.extend(payload.iter().map(|&b| map(b)));
    Converted {
        ticks: out.len() as u32,
        payload: out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A converted packet, kept past the next one.
    #[derive(Debug, PartialEq, Eq)]
    struct Owned {
        payload: Vec<u8>,
        ticks: u32,
    }

    fn tone_ulaw(samples: usize) -> Vec<u8> {
        let pcm: Vec<i16> = (0..samples)
            .map(|i| {
                ((i as f64 * 2.0 * std::f64::consts::PI * 440.0 / 8000.0).sin() * 8000.0) as i16
            })
            .collect();
        let mut out = vec![0u8; samples];
        g711::encode_ulaw_into(&pcm, &mut out);
        out
    }

    fn own(converted: Converted<'_>) -> Owned {
        Owned {
            payload: converted.payload.to_vec(),
            ticks: converted.ticks,
        }
    }

    fn collect(t: &mut Transcoder, payload: &[u8]) -> Vec<Owned> {
        let mut out = Vec::new();
        t.convert(payload, |c| out.push(own(c)));
        out
    }

    #[test]
    fn same_codec_passes_the_payload_through() {
        let mut t = Transcoder::new(Codec::Pcmu, Codec::Pcmu).unwrap();
        assert!(t.is_passthrough());
        let payload = tone_ulaw(160);
        let out = collect(&mut t, &payload);
        assert_eq!(
            out,
            vec![Owned {
                payload: payload.clone(),
                ticks: 160
            }]
        );
    }

    #[test]
    fn ulaw_and_alaw_convert_by_table() {
        let payload = tone_ulaw(160);
        let mut there = Transcoder::new(Codec::Pcmu, Codec::Pcma).unwrap();
        let mut back = Transcoder::new(Codec::Pcma, Codec::Pcmu).unwrap();
        let alaw = collect(&mut there, &payload).remove(0);
        assert_ne!(alaw.payload, payload);
        let ulaw = collect(&mut back, &alaw.payload).remove(0);
        let close = ulaw.payload.iter().zip(payload.iter()).all(|(a, b)| {
            (g711::decode_ulaw(*a) as i32 - g711::decode_ulaw(*b) as i32).abs() < 300
        });
        assert!(close, "a round trip keeps the waveform");
    }

    #[test]
    fn g711_to_opus_and_back_keeps_the_tone() {
        let mut encode = Transcoder::new(Codec::Pcmu, Codec::Opus).unwrap();
        let mut decode = Transcoder::new(Codec::Opus, Codec::Pcmu).unwrap();
        let payload = tone_ulaw(160 * 50);
        let mut opus_packets = Vec::new();
        // 30 ms packets from the trunk still give 20 ms Opus frames.
        for chunk in payload.chunks(240) {
            encode.convert(chunk, |c| opus_packets.push(own(c)));
        }
        assert_eq!(opus_packets.len(), 50);
        assert!(opus_packets.iter().all(|p| p.ticks == 960));
        let mut energy = 0f64;
        let mut frames = 0;
        for packet in &opus_packets {
            for out in collect(&mut decode, &packet.payload) {
                assert_eq!(out.ticks, 160);
                frames += 1;
                energy += out
                    .payload
                    .iter()
                    .map(|b| f64::from(g711::decode_ulaw(*b)).abs())
                    .sum::<f64>();
            }
        }
        assert_eq!(frames, 50);
        assert!(
            energy / (frames as f64 * 160.0) > 1000.0,
            "the tone survived"
        );
    }

    /// `seconds` of a voiced sound: 24 harmonics of a pitch gliding
    /// between 80 and 160 Hz, its loudness rising and falling, in µ-law.
    fn voiced_ulaw(seconds: usize) -> Vec<u8> {
        let pcm: Vec<i16> = (0..seconds * 8000)
            .map(|i| {
                let t = i as f64 / 8000.0;
                let pitch = 120.0 + 40.0 * (1.3 * t).sin();
                let voiced: f64 = (1..=24)
                    .map(|h| (2.0 * std::f64::consts::PI * pitch * h as f64 * t).sin() / h as f64)
                    .sum();
                (voiced * 5000.0 * (0.6 + 0.4 * (3.0 * t).sin())) as i16
            })
            .collect();
        let mut out = vec![0u8; pcm.len()];
        g711::encode_ulaw_into(&pcm, &mut out);
        out
    }

    /// The signal-to-noise ratio of `heard` against `sent` in dB, at the
    /// codec delay (up to 50 ms) that matches them best, past the first
    /// 100 ms.
    fn snr_db(sent: &[i16], heard: &[i16]) -> f64 {
        (0..400)
            .map(|delay| {
                let (mut signal, mut noise) = (0f64, 0f64);
                for (s, h) in sent.iter().zip(&heard[delay..]).skip(800) {
                    signal += f64::from(*s).powi(2);
                    noise += (f64::from(*s) - f64::from(*h)).powi(2);
                }
                10.0 * (signal / noise.max(1.0)).log10()
            })
            .fold(f64::MIN, f64::max)
    }

    #[test]
    fn audio_for_the_browser_is_narrowband_transform_coded_and_keeps_its_waveform() {
        let mut encode = Transcoder::new(Codec::Pcmu, Codec::Opus).unwrap();
        let mut decode = Transcoder::new(Codec::Opus, Codec::Pcmu).unwrap();
        let sent = voiced_ulaw(3);
        let mut heard = Vec::new();
        for chunk in sent.chunks(160) {
            encode.convert(chunk, |opus| {
                // RFC 6716 §3.1: TOC configuration 19 is CELT-only,
                // narrowband, 20 ms.
                assert_eq!(opus.payload[0] >> 3, 19, "{:?}", opus.payload);
                for out in collect(&mut decode, opus.payload) {
                    heard.extend_from_slice(&out.payload);
                }
            });
        }
        let pcm = |ulaw: &[u8]| {
            ulaw.iter()
                .map(|b| g711::decode_ulaw(*b))
                .collect::<Vec<_>>()
        };
        let snr = snr_db(&pcm(&sent), &pcm(&heard));
        // The speech mode at libopus' default bitrate keeps about 3 dB.
        assert!(snr > 12.0, "the waveform came through at {snr:.1} dB SNR");
    }

    /// What a browser sends once the answer asks for narrowband: Opus'
    /// speech mode from 48 kHz, with in-band FEC as a browser adds it when
    /// it hears of loss, one packet per 20 ms of `ulaw`; at 32 kb/s, where
    /// libopus has room for FEC (at the 12 kb/s Chromium picks for
    /// narrowband it mostly leaves FEC out). libopus carries FEC in its
    /// speech mode only, which it leaves for parts of this synthetic sound:
    /// those packets conceal no better than nothing.
    fn browser_opus_with_fec(ulaw: &[u8]) -> Vec<Vec<u8>> {
        let mut encoder =
            opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip).unwrap();
        encoder
            .set_max_bandwidth(opus::Bandwidth::Narrowband)
            .unwrap();
        encoder.set_bitrate(opus::Bitrate::Bits(32_000)).unwrap();
        encoder.set_inband_fec(true).unwrap();
        encoder.set_packet_loss_perc(10).unwrap();
        ulaw.chunks(160)
            .map(|frame| {
                // Each 8 kHz sample held for six 48 kHz ones.
                let pcm: Vec<i16> = frame
                    .iter()
                    .flat_map(|b| [g711::decode_ulaw(*b); 6])
                    .collect();
                encoder.encode_vec(&pcm, 400).unwrap()
            })
            .collect()
    }

    #[test]
    fn a_lost_opus_packet_is_rebuilt_from_the_next_ones_fec_closer_than_concealment() {
        let packets = browser_opus_with_fec(&voiced_ulaw(1));
        let pcm = |ulaw: &[u8]| {
            ulaw.iter()
                .map(|b| f64::from(g711::decode_ulaw(*b)))
                .collect::<Vec<_>>()
        };
        // How close `heard` came to `clean`, in dB of signal to error.
        let snr = |heard: &[f64], clean: &[f64]| -> f64 {
            let signal: f64 = clean.iter().map(|c| c.powi(2)).sum();
            let error: f64 = heard.iter().zip(clean).map(|(h, c)| (h - c).powi(2)).sum();
            10.0 * (signal / error.max(1.0)).log10()
        };
        let (mut rebuilt_db, mut concealed_db) = (Vec::new(), Vec::new());
        for lost in (10..45).step_by(3) {
            // What the packet decodes to when it arrives.
            let mut clean = Transcoder::new(Codec::Opus, Codec::Pcmu).unwrap();
            let mut heard = Vec::new();
            for packet in &packets[..=lost] {
                heard = collect(&mut clean, packet);
            }
            let clean = pcm(&heard[0].payload);

            // Lost: rebuilt before the next packet is converted.
            let mut repair = Transcoder::new(Codec::Opus, Codec::Pcmu).unwrap();
            for packet in &packets[..lost] {
                collect(&mut repair, packet);
            }
            let mut rebuilt = Vec::new();
            let samples = repair.conceal(1, &packets[lost + 1], |c| rebuilt.push(own(c)));
            assert_eq!(samples, 160);
            assert_eq!(rebuilt.len(), 1);
            assert_eq!((rebuilt[0].payload.len(), rebuilt[0].ticks), (160, 160));
            assert_eq!(collect(&mut repair, &packets[lost + 1]).len(), 1);
            rebuilt_db.push(snr(&pcm(&rebuilt[0].payload), &clean));

            // Lost: what an empty packet gets, libopus' concealment alone.
            let mut guess = Transcoder::new(Codec::Opus, Codec::Pcmu).unwrap();
            for packet in &packets[..lost] {
                collect(&mut guess, packet);
            }
            concealed_db.push(snr(&pcm(&collect(&mut guess, &[])[0].payload), &clean));
        }
        let mean = |db: &[f64]| db.iter().sum::<f64>() / db.len() as f64;
        let (rebuilt, concealed) = (mean(&rebuilt_db), mean(&concealed_db));
        assert!(
            rebuilt > concealed + 2.0,
            "rebuilt from FEC {rebuilt:.1} dB, concealed {concealed:.1} dB"
        );
    }

    #[test]
    fn several_lost_packets_are_concealed_and_only_an_opus_decoder_conceals() {
        let packets = browser_opus_with_fec(&voiced_ulaw(1));
        let mut decode = Transcoder::new(Codec::Opus, Codec::Pcma).unwrap();
        collect(&mut decode, &packets[0]);
        let mut frames = Vec::new();
        assert_eq!(decode.conceal(3, &packets[4], |c| frames.push(own(c))), 480);
        assert_eq!(frames.len(), 3);
        assert!(
            frames
                .iter()
                .all(|f| f.payload.len() == 160 && f.ticks == 160)
        );

        for (from, to) in [(Codec::Pcmu, Codec::Opus), (Codec::Pcmu, Codec::Pcma)] {
            let mut other = Transcoder::new(from, to).unwrap();
            let mut emitted = 0;
            assert_eq!(other.conceal(2, &[0xff; 160], |_| emitted += 1), 0);
            assert_eq!(emitted, 0);
        }
    }

    #[test]
    fn a_corrupt_opus_packet_is_concealed_not_fatal() {
        let mut decode = Transcoder::new(Codec::Opus, Codec::Pcma).unwrap();
        let out = collect(&mut decode, &[0xff, 0xff, 0xff, 0x00, 0x13]);
        assert!(out.len() <= 1);
        let empty = collect(&mut decode, &[]);
        assert!(empty.len() <= 1);
    }
}
