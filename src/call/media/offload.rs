//! Transcoding handed over by a call's media: what it asks of a
//! transcoder its host keeps ([`TranscodeRequest`]), what comes back
//! ([`Transcoded`]), and the transcoders one call keeps there
//! ([`CallTranscoders`]). No I/O: the host carries requests and results.
//!
//! The host decides when a call's transcoders run: a shard converts after
//! the passthrough work of each round, so that transcoding cannot make
//! its other calls wait.
//!
//! Invariants:
//! - Requests of one call are converted in the order they were made, by
//!   transcoders that keep their state from one packet to the next (the
//!   Opus decoder's concealment, the encoder's partial frame).
//! - A request naming other codecs than the call's transcoder has (the
//!   trunk changed codec) starts a fresh transcoder for that direction.

use std::time::Instant;

use crate::domain::Codec;
use crate::media::transcode::Transcoder;

/// Where converted audio goes, and what its delivery needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toward {
    /// Browser audio for the trunk; `timestamp` is the browser packet's,
    /// which places it in the recording, and `recorded` whether the
    /// consent gate was open when it arrived (it is recorded only if the
    /// gate is still open when it comes back).
    Trunk { timestamp: u32, recorded: bool },
    /// Trunk audio for the browser; `marker` is the trunk packet's.
    Browser { marker: bool },
}

/// One packet's audio to convert.
#[derive(Debug)]
pub struct TranscodeRequest {
    pub from: Codec,
    pub to: Codec,
    pub payload: Vec<u8>,
    pub toward: Toward,
    /// When the packet arrived: where its relay latency starts.
    pub received_at: Instant,
}

/// One converted packet and its length in the output's RTP clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertedFrame {
    pub payload: Vec<u8>,
    pub ticks: u32,
}

/// What a request became: zero or more packets (Opus output waits for
/// whole 20 ms frames).
#[derive(Debug)]
pub struct Transcoded {
    pub toward: Toward,
    pub received_at: Instant,
    pub frames: Vec<ConvertedFrame>,
}

/// The transcoders of one call, one per direction, built on first use.
#[derive(Debug, Default)]
pub struct CallTranscoders {
    to_trunk: Option<Transcoder>,
    to_browser: Option<Transcoder>,
}

impl CallTranscoders {
    /// Converts `request`; codecs libopus cannot set up give no frames.
    pub fn convert(&mut self, request: TranscodeRequest) -> Transcoded {
        let TranscodeRequest {
            from,
            to,
            payload,
            toward,
            received_at,
        } = request;
        let slot = match toward {
            Toward::Trunk { .. } => &mut self.to_trunk,
            Toward::Browser { .. } => &mut self.to_browser,
        };
        if slot.as_ref().map(Transcoder::codecs) != Some((from, to)) {
            *slot = Transcoder::new(from, to).ok();
        }
        let mut frames = Vec::new();
        if let Some(transcoder) = slot.as_mut() {
            transcoder.convert(&payload, |converted| {
                frames.push(ConvertedFrame {
                    payload: converted.payload.to_vec(),
                    ticks: converted.ticks,
                });
            });
        }
        Transcoded {
            toward,
            received_at,
            frames,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(from: Codec, to: Codec, payload: Vec<u8>, toward: Toward) -> TranscodeRequest {
        TranscodeRequest {
            from,
            to,
            payload,
            toward,
            received_at: Instant::now(),
        }
    }

    #[test]
    fn a_call_keeps_an_encoder_per_direction_and_a_new_codec_starts_afresh() {
        let mut call = CallTranscoders::default();
        let to_browser = Toward::Browser { marker: false };
        // 10 ms of G.711 is half an Opus frame: nothing yet, then one.
        let half = request(Codec::Pcmu, Codec::Opus, vec![0xff; 80], to_browser);
        assert!(call.convert(half).frames.is_empty());
        let rest = request(Codec::Pcmu, Codec::Opus, vec![0xff; 80], to_browser);
        let opus = call.convert(rest).frames;
        assert_eq!(opus.len(), 1, "the encoder kept the first half");
        assert_eq!(opus[0].ticks, 960);

        // The other direction has its own transcoder.
        let to_trunk = Toward::Trunk {
            timestamp: 7,
            recorded: false,
        };
        let decoded = call.convert(request(
            Codec::Opus,
            Codec::Pcmu,
            opus[0].payload.clone(),
            to_trunk,
        ));
        assert_eq!(decoded.toward, to_trunk);
        assert_eq!(decoded.frames.len(), 1);
        assert_eq!(
            (decoded.frames[0].payload.len(), decoded.frames[0].ticks),
            (160, 160)
        );

        // A trunk now on PCMA: the decoder is rebuilt for it.
        let alaw = call.convert(request(
            Codec::Opus,
            Codec::Pcma,
            opus[0].payload.clone(),
            to_trunk,
        ));
        assert_eq!(alaw.frames.len(), 1);
        assert_ne!(alaw.frames[0].payload, decoded.frames[0].payload);
    }

    #[test]
    fn a_corrupt_opus_packet_still_gives_a_frame_of_concealment() {
        let mut call = CallTranscoders::default();
        let junk = request(
            Codec::Opus,
            Codec::Pcmu,
            vec![0xff, 0xfe, 0x01],
            Toward::Trunk {
                timestamp: 0,
                recorded: false,
            },
        );
        let frames = call.convert(junk).frames;
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].payload.len(), 160);
    }
}
