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
//! - Browser audio for the trunk leaves no hole where packets were lost:
//!   up to [`MAX_CONCEALED`] lost in a row are rebuilt from the next
//!   packet's FEC or concealed by the decoder, so the trunk hears a
//!   continuous stream; a packet that comes after its time was concealed
//!   (reordered, or a duplicate) is dropped.

use std::time::Instant;

use crate::domain::Codec;
use crate::media::transcode::{Converted, Transcoder};

/// Browser packets lost in a row that are made up for towards the trunk:
/// 100 ms. A longer gap is an outage (or a new stream), and the audio
/// resumes as it comes.
const MAX_CONCEALED: u16 = 5;
/// How far behind the last packet converted a packet counts as late
/// rather than as the start of a new stream.
const LATE_WINDOW: u16 = 100;

/// Where converted audio goes, and what its delivery needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toward {
    /// Browser audio for the trunk; `timestamp` is the browser packet's,
    /// which places it in the recording, `sequence` its RTP sequence
    /// number, which shows the packets lost before it, and `recorded`
    /// whether the consent gate was open when it arrived (it is recorded
    /// only if the gate is still open when it comes back).
    Trunk {
        timestamp: u32,
        sequence: u16,
        recorded: bool,
    },
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
    /// The sequence number of the last browser packet converted for the
    /// trunk.
    last_to_trunk: Option<u16>,
}

impl CallTranscoders {
    /// Converts `request`; codecs libopus cannot set up give no frames.
    pub fn convert(&mut self, request: TranscodeRequest) -> Transcoded {
        let TranscodeRequest {
            from,
            to,
            payload,
            mut toward,
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
        let mut keep = |converted: Converted<'_>| {
            frames.push(ConvertedFrame {
                payload: converted.payload.to_vec(),
                ticks: converted.ticks,
            });
        };
        if let Some(transcoder) = slot.as_mut() {
            let mut on_time = true;
            if let Toward::Trunk {
                timestamp,
                sequence,
                ..
            } = &mut toward
            {
                match lost_before(self.last_to_trunk, *sequence) {
                    Some(lost) => {
                        self.last_to_trunk = Some(*sequence);
                        // The made-up audio comes first, stamped as the
                        // first lost packet would have been.
                        let samples = transcoder.conceal(lost.into(), &payload, &mut keep);
                        let ticks_per_sample = from.clock_rate() / 8_000;
                        *timestamp = timestamp.wrapping_sub(samples * ticks_per_sample);
                    }
                    None => on_time = false,
                }
            }
            if on_time {
                transcoder.convert(&payload, keep);
            }
        }
        Transcoded {
            toward,
            received_at,
            frames,
        }
    }
}

/// How many packets were lost between the last one converted and
/// `sequence` (up to [`MAX_CONCEALED`]); `None` if `sequence` is a
/// duplicate or came late.
fn lost_before(last: Option<u16>, sequence: u16) -> Option<u16> {
    let Some(last) = last else {
        return Some(0);
    };
    match sequence.wrapping_sub(last) {
        0 => None,
        behind if behind > u16::MAX - LATE_WINDOW => None,
        ahead if ahead <= MAX_CONCEALED + 1 => Some(ahead - 1),
        _ => Some(0),
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
            sequence: 1,
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
        let next = Toward::Trunk {
            timestamp: 967,
            sequence: 2,
            recorded: false,
        };
        let alaw = call.convert(request(
            Codec::Opus,
            Codec::Pcma,
            opus[0].payload.clone(),
            next,
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
                sequence: 0,
                recorded: false,
            },
        );
        let frames = call.convert(junk).frames;
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].payload.len(), 160);
    }

    /// 20 ms of Opus for each of `count` packets, as the node's encoder
    /// makes them.
    fn opus_packets(count: usize) -> Vec<Vec<u8>> {
        let mut encode = Transcoder::new(Codec::Pcmu, Codec::Opus).unwrap();
        let mut packets = Vec::new();
        for _ in 0..count {
            encode.convert(&[0x55; 160], |c| packets.push(c.payload.to_vec()));
        }
        packets
    }

    #[test]
    fn lost_browser_packets_are_made_up_for_and_late_ones_dropped() {
        let mut call = CallTranscoders::default();
        let packets = opus_packets(4);
        let mut send = |sequence: u16, payload: &Vec<u8>| {
            let toward = Toward::Trunk {
                timestamp: u32::from(sequence) * 960,
                sequence,
                recorded: true,
            };
            call.convert(request(Codec::Opus, Codec::Pcmu, payload.clone(), toward))
        };
        assert_eq!(send(10, &packets[0]).frames.len(), 1);
        // 11 and 12 lost: made up for, stamped from 11 on, before 13's own.
        let after_gap = send(13, &packets[1]);
        assert_eq!(after_gap.frames.len(), 3);
        assert!(after_gap.frames.iter().all(|f| f.ticks == 160));
        assert_eq!(
            after_gap.toward,
            Toward::Trunk {
                timestamp: 11 * 960,
                sequence: 13,
                recorded: true,
            }
        );
        // 12 comes after all: its time was made up for.
        assert!(send(12, &packets[2]).frames.is_empty());
        assert_eq!(send(14, &packets[3]).frames.len(), 1);
    }

    #[test]
    fn gaps_are_counted_across_the_wrap_and_long_ones_are_not_filled() {
        assert_eq!(lost_before(None, 7), Some(0), "the first packet");
        assert_eq!(lost_before(Some(7), 8), Some(0));
        assert_eq!(lost_before(Some(u16::MAX), 1), Some(1), "65535, (0), 1");
        assert_eq!(
            lost_before(Some(7), 7 + MAX_CONCEALED + 1),
            Some(MAX_CONCEALED)
        );
        assert_eq!(
            lost_before(Some(7), 7 + MAX_CONCEALED + 2),
            Some(0),
            "an outage"
        );
        assert_eq!(lost_before(Some(7), 7), None, "a duplicate");
        assert_eq!(lost_before(Some(7), 6), None, "late");
        assert_eq!(lost_before(Some(200), 200 - LATE_WINDOW), None, "late");
        assert_eq!(
            lost_before(Some(200), 200 - LATE_WINDOW - 1),
            Some(0),
            "a new stream"
        );
    }
}
