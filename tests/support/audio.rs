//! Test audio: speech generated at test time (espeak-ng, then sox), G.711
//! µ-law (ITU-T G.711) coding, and a similarity measure that decides "the
//! audio that came back is the speech that was sent".
//!
//! Similarity compares short-time loudness envelopes, not waveforms: 5 ms
//! frames, the RMS of each, then the Pearson correlation of the two envelopes
//! at the best lag within ±1 s. Envelopes survive what a call does to audio
//! (µ-law quantisation, a gain change, a delay, a lost packet here and there)
//! while two different sentences, noise or silence do not line up.
//!
//! The lag is searched to the millisecond: the received envelope is cut
//! starting at each millisecond within a frame. A recording or an echo
//! starts wherever its first packet happened to arrive, so its delay falls
//! anywhere within a frame, and envelopes cut at whole-frame lags only
//! scored clean, delayed speech as low as 0.77 on 5 ms frames (0.96 on
//! 10 ms) when the delay fell half a frame off; with the search, 0.98 and
//! 0.998 at every offset.
//!
//! Thresholds, measured on espeak-ng sentences of 3 to 4 s (see
//! `tests/harness_selftest.rs`):
//! - the same speech, delayed 300 ms with 5 % of its 20 ms frames zeroed,
//!   scores 0.93 to 0.97 (found lag 300 ms); echoed through sipp or baresip
//!   it scores 0.99 or more: [`SAME_SPEECH_MIN`] = 0.8 leaves room for
//!   jitter buffers, concealment and codec round trips;
//! - a different sentence scores 0.19 to 0.30, white noise 0.13 to 0.18 and
//!   silence 0 (an envelope without variance): [`DIFFERENT_MAX`] = 0.5.
//!
//! Audio that went through Opus or through Chromium is compared with
//! [`similarity_coarse`]: 10 ms frames, which average over more of the
//! edges of a hole. Chromium's fake microphone drops the time its process
//! did not run, so on a starved machine its audio has holes: with Chromium
//! stopped 150 to 250 ms of every 500 ms, an echo heard in Chromium scored
//! 0.78 to 0.93 on 5 ms frames and 0.93 to 0.96 on 10 ms ones (measured
//! before the lag was searched to the millisecond, which accounts for part
//! of that gap). Unstarved, Chromium's Opus audio scores 0.986 or more on
//! either, and on 10 ms frames a different sentence scores 0.27 and noise
//! 0.13: the same two thresholds apply. The toolkit self-test holds both
//! measures to speech with a tenth of it missing in 50 ms holes.
//!
//! Speech files are cached under Cargo's per-target test directory, keyed by
//! a hash of the text and format, and written atomically so that parallel
//! tests share them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::require_program;

/// Samples per second of G.711 audio.
pub const SAMPLE_RATE: usize = 8000;
/// A score at or above this: the received audio is the speech sent.
pub const SAME_SPEECH_MIN: f64 = 0.8;
/// A score below this: the received audio is something else.
pub const DIFFERENT_MAX: f64 = 0.5;

/// 5 ms envelope frames at 8 kHz.
const FRAME_MS: i64 = 5;
/// 10 ms envelope frames, for audio that went through Opus or Chromium.
const COARSE_FRAME_MS: i64 = 10;
/// Bumped when the generation recipe changes, so old cache entries die.
const RECIPE: &str = "espeak-ng default voice; sox v1";

/// `text` spoken, as raw 8 kHz µ-law bytes (what a PCMU RTP stream carries
/// and sipp's `rtp_stream` plays).
pub fn speech_ulaw(text: &str) -> Vec<u8> {
    let path = cached(text, "ulaw", |wav, out| {
        sox(&[
            wav, "-t", "raw", "-r", "8000", "-e", "mu-law", "-b", "8", "-c", "1", out,
        ]);
    });
    std::fs::read(path).expect("read cached speech")
}

/// `text` spoken, as 8 kHz 16-bit samples (decoded from [`speech_ulaw`]).
pub fn speech_pcm_8k(text: &str) -> Vec<i16> {
    decode_ulaw(&speech_ulaw(text))
}

/// `text` spoken, as a mono 16-bit WAV file at 48 kHz (for the browser's
/// fake microphone).
pub fn speech_wav_48k(text: &str) -> PathBuf {
    speech_wav(text, 48_000)
}

/// `text` spoken, as a mono 16-bit WAV file at `rate` Hz.
pub fn speech_wav(text: &str, rate: u32) -> PathBuf {
    let rate = rate.to_string();
    cached(text, &format!("{rate}.wav"), |wav, out| {
        sox(&[
            wav,
            "-r",
            &rate,
            "-c",
            "1",
            "-b",
            "16",
            "-e",
            "signed-integer",
            out,
        ]);
    })
}

fn cached(text: &str, extension: &str, convert: impl FnOnce(&str, &str)) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("speech");
    std::fs::create_dir_all(&dir).expect("speech cache dir");
    let key = Sha256::digest(format!("{RECIPE}\n{extension}\n{text}").as_bytes());
    let stem = hex::encode(&key[..12]);
    let path = dir.join(format!("{stem}.{extension}"));
    if path.is_file() {
        return path;
    }
    let unique = format!(
        "{stem}.{}.{:?}",
        std::process::id(),
        std::thread::current().id()
    );
    let wav = dir.join(format!("{unique}.espeak.wav"));
    let partial = dir.join(format!("{unique}.partial.{extension}"));
    espeak(text, &wav);
    convert(&wav.to_string_lossy(), &partial.to_string_lossy());
    let _ = std::fs::remove_file(&wav);
    std::fs::rename(&partial, &path).expect("publish cached speech");
    path
}

fn espeak(text: &str, wav: &Path) {
    let program = require_program("espeak-ng");
    // A leading '-' would read as an option.
    let text = format!(" {text}");
    let output = Command::new(program)
        .arg("-w")
        .arg(wav)
        .arg(&text)
        .output()
        .expect("run espeak-ng");
    assert!(
        output.status.success() && wav.is_file(),
        "espeak-ng failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn sox(args: &[&str]) {
    let output = Command::new(require_program("sox"))
        .args(args)
        .output()
        .expect("run sox");
    assert!(
        output.status.success(),
        "sox {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// One µ-law byte to linear 16-bit PCM (G.711, the inverse of
/// [`linear_to_ulaw`]).
pub fn ulaw_to_linear(byte: u8) -> i16 {
    let u = !byte;
    let exponent = (u >> 4) & 0x07;
    let mantissa = i16::from(u & 0x0f);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    if u & 0x80 == 0 { magnitude } else { -magnitude }
}

/// Linear 16-bit PCM to one µ-law byte (G.711, with the usual bias of 132).
pub fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32_635;
    let sign: u8 = if sample < 0 { 0x80 } else { 0 };
    let magnitude = i32::from(sample).abs().min(CLIP) + BIAS;
    let exponent = (7 - (magnitude.leading_zeros() as i32 - 17)).clamp(0, 7);
    let mantissa = (magnitude >> (exponent + 3)) & 0x0f;
    let exponent = u8::try_from(exponent).unwrap_or(7);
    let mantissa = u8::try_from(mantissa).unwrap_or(0x0f);
    !(sign | (exponent << 4) | mantissa)
}

pub fn decode_ulaw(bytes: &[u8]) -> Vec<i16> {
    bytes.iter().copied().map(ulaw_to_linear).collect()
}

pub fn encode_ulaw(samples: &[i16]) -> Vec<u8> {
    samples.iter().copied().map(linear_to_ulaw).collect()
}

/// How much `received` sounds like `sent`, and when.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Similarity {
    /// 0 (unrelated) ..= 1 (the same loudness contour).
    pub score: f64,
    /// How much later the speech starts in `received` than in `sent`
    /// (1 ms steps; negative if earlier).
    pub lag_ms: i64,
}

/// [`similarity_within`] with a lag of up to ±1 s.
pub fn similarity(sent: &[i16], received: &[i16]) -> Similarity {
    similarity_within(sent, received, Duration::from_secs(1))
}

/// Both µ-law, as RTP payloads carry them.
pub fn similarity_ulaw(sent: &[u8], received: &[u8]) -> Similarity {
    similarity(&decode_ulaw(sent), &decode_ulaw(received))
}

/// Envelope correlation of two 8 kHz signals at the best lag in
/// ±`max_lag`. Lags where less than half of `sent` overlaps `received`
/// are not considered, so a short burst cannot pass for a sentence.
pub fn similarity_within(sent: &[i16], received: &[i16], max_lag: Duration) -> Similarity {
    similarity_frames(sent, received, max_lag, FRAME_MS)
}

/// [`similarity`] on 10 ms frames, for audio that went through Opus or
/// Chromium (see the module doc).
pub fn similarity_coarse(sent: &[i16], received: &[i16]) -> Similarity {
    similarity_frames(sent, received, Duration::from_secs(1), COARSE_FRAME_MS)
}

/// [`similarity_within`] on 10 ms frames, for audio that went through Opus
/// or Chromium.
pub fn similarity_coarse_within(sent: &[i16], received: &[i16], max_lag: Duration) -> Similarity {
    similarity_frames(sent, received, max_lag, COARSE_FRAME_MS)
}

fn similarity_frames(
    sent: &[i16],
    received: &[i16],
    max_lag: Duration,
    frame_ms: i64,
) -> Similarity {
    let max_lag_ms = i64::try_from(max_lag.as_millis()).unwrap_or(i64::MAX);
    let frame = unsigned(frame_ms) * SAMPLE_RATE / 1000;
    let a = envelope(sent, frame);
    let mut best = Similarity {
        score: 0.0,
        lag_ms: 0,
    };
    // Envelopes of `received` starting 0, 1, 2, ... ms into it: the delay
    // is found to the millisecond, and the score does not depend on where
    // it falls within a frame (see the module doc).
    for phase_ms in 0..frame_ms {
        let phase = unsigned(phase_ms) * SAMPLE_RATE / 1000;
        let b = envelope(received.get(phase..).unwrap_or_default(), frame);
        let lags =
            (-max_lag_ms - phase_ms).div_euclid(frame_ms)..=(max_lag_ms - phase_ms) / frame_ms;
        for lag in lags {
            let lag_ms = lag * frame_ms + phase_ms;
            if lag_ms.abs() > max_lag_ms {
                continue;
            }
            let Some(score) = score_at(&a, &b, lag) else {
                continue;
            };
            if score > best.score {
                best = Similarity { score, lag_ms };
            }
        }
    }
    best.score = best.score.clamp(0.0, 1.0);
    best
}

/// The correlation of envelope `a` with `b` shifted `lag` frames later;
/// `None` where less than half of `a` overlaps `b`, so that a short burst
/// cannot pass for a sentence.
fn score_at(a: &[f64], b: &[f64], lag: i64) -> Option<f64> {
    let (a_len, b_len) = (signed(a.len()), signed(b.len()));
    let min_overlap = (a_len + 1) / 2;
    let start = 0.max(-lag);
    let end = a_len.min(b_len - lag);
    if end - start < min_overlap.max(2) {
        return None;
    }
    let (start, end) = (unsigned(start), unsigned(end));
    let shifted = unsigned(signed(start) + lag);
    Some(pearson(
        &a[start..end],
        &b[shifted..shifted + (end - start)],
    ))
}

fn signed(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn unsigned(n: i64) -> usize {
    usize::try_from(n).unwrap_or(0)
}

fn envelope(samples: &[i16], frame_len: usize) -> Vec<f64> {
    samples
        .chunks_exact(frame_len)
        .map(|frame| {
            let energy: f64 = frame.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
            (energy / frame_len as f64).sqrt()
        })
        .collect()
}

/// Pearson correlation; 0 when either side has no variance (silence).
fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let mean_a = a.iter().sum::<f64>() / n;
    let mean_b = b.iter().sum::<f64>() / n;
    let (mut cov, mut var_a, mut var_b) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (dx, dy) = (x - mean_a, y - mean_b);
        cov += dx * dy;
        var_a += dx * dx;
        var_b += dy * dy;
    }
    if var_a <= f64::EPSILON || var_b <= f64::EPSILON {
        return 0.0;
    }
    cov / (var_a * var_b).sqrt()
}

/// Reads a 16-bit PCM WAV file (what baresip's sndfile module and sox
/// write): its sample rate and the first channel's samples.
pub fn read_wav(path: &Path) -> (u32, Vec<i16>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let (rate, mut channels) =
        parse_wav(&bytes).unwrap_or_else(|| panic!("{} is not 16-bit PCM WAV", path.display()));
    (rate, channels.swap_remove(0))
}

/// A 16-bit PCM WAV file's sample rate and every channel's samples.
pub fn read_wav_channels(path: &Path) -> (u32, Vec<Vec<i16>>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    parse_wav(&bytes).unwrap_or_else(|| panic!("{} is not 16-bit PCM WAV", path.display()))
}

fn parse_wav(bytes: &[u8]) -> Option<(u32, Vec<Vec<i16>>)> {
    if bytes.get(0..4)? != b"RIFF" || bytes.get(8..12)? != b"WAVE" {
        return None;
    }
    let (mut at, mut format) = (12, None);
    while let Some(header) = bytes.get(at..at + 8) {
        let size = usize::try_from(u32::from_le_bytes(header[4..8].try_into().ok()?)).ok()?;
        let body = bytes.get(at + 8..(at + 8 + size).min(bytes.len()))?;
        match &header[0..4] {
            b"fmt " => {
                let tag = u16::from_le_bytes(body.get(0..2)?.try_into().ok()?);
                let channels = usize::from(u16::from_le_bytes(body.get(2..4)?.try_into().ok()?));
                let rate = u32::from_le_bytes(body.get(4..8)?.try_into().ok()?);
                let bits = u16::from_le_bytes(body.get(14..16)?.try_into().ok()?);
                if !(tag == 1 || tag == 0xfffe) || bits != 16 || channels == 0 {
                    return None;
                }
                format = Some((rate, channels));
            }
            b"data" => {
                let (rate, channels) = format?;
                let samples = (0..channels)
                    .map(|channel| {
                        body.chunks_exact(2 * channels)
                            .map(|frame| {
                                i16::from_le_bytes([frame[2 * channel], frame[2 * channel + 1]])
                            })
                            .collect()
                    })
                    .collect();
                return Some((rate, samples));
            }
            _ => {}
        }
        at += 8 + size + (size & 1);
    }
    None
}

/// The tests of one file that compare recorded audio with the speech sent
/// take turns: on two cores, a real-time client starved of CPU by the
/// file's other tests sends gaps, not speech.
pub static SPEECH_TURNS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
