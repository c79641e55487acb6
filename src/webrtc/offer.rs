//! Checks a browser's SDP offer before any call state exists, and picks the
//! audio codec for the browser leg.
//!
//! The checks are the ones a visitor's browser always passes and a forged
//! or broken request does not: SDP text of bounded size, an audio section,
//! ICE credentials (RFC 8839 §5.4) and a DTLS fingerprint (RFC 8122 §5).
//! Pure: no I/O, no allocation proportional to anything but the offer.

use crate::config::BrowserCodec;
use crate::domain::{Codec, TelephoneEvent};

/// Browsers' offers are a few kilobytes; anything far bigger is not one.
pub const MAX_OFFER_BYTES: usize = 32 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    #[error("offer is larger than {MAX_OFFER_BYTES} bytes")]
    TooLarge,
    #[error("offer is not an SDP session description (must start with v=0)")]
    NotSdp,
    #[error("offer has no audio section (m=audio)")]
    NoAudio,
    #[error("offer has no ICE credentials (a=ice-ufrag and a=ice-pwd)")]
    NoIceCredentials,
    #[error("offer has no DTLS fingerprint (a=fingerprint)")]
    NoFingerprint,
    #[error("offer's audio section is not UDP/TLS/RTP/SAVPF (DTLS-SRTP)")]
    NotDtlsSrtp,
    #[error("offer has no codec in common with this node (PCMU, PCMA or opus)")]
    NoCommonCodec,
}

/// The browser leg's negotiated audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrowserMedia {
    pub codec: Codec,
    /// The browser's payload type for `codec`.
    pub payload_type: u8,
    pub telephone_event: Option<TelephoneEvent>,
}

/// What the offer's audio section offers, in the browser's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OfferedAudio {
    codecs: Vec<(Codec, u8)>,
    events: Vec<TelephoneEvent>,
}

/// Checks `offer` and lists its audio codecs.
pub fn inspect(offer: &str) -> Result<OfferedAudio, OfferError> {
    if offer.len() > MAX_OFFER_BYTES {
        return Err(OfferError::TooLarge);
    }
    if !offer.trim_start().starts_with("v=0") {
        return Err(OfferError::NotSdp);
    }
    let mut audio = None;
    let (mut ufrag, mut pwd, mut fingerprint) = (false, false, false);
    let mut in_audio = false;
    for line in offer.lines().map(str::trim_end) {
        if let Some(media) = line.strip_prefix("m=") {
            in_audio = audio.is_none() && media.starts_with("audio ");
            if in_audio {
                audio = Some((media.to_owned(), OfferedAudio::default()));
            }
            continue;
        }
        let Some(attribute) = line.strip_prefix("a=") else {
            continue;
        };
        ufrag |= attribute.starts_with("ice-ufrag:") && attribute.len() > "ice-ufrag:".len();
        pwd |= attribute.starts_with("ice-pwd:") && attribute.len() > "ice-pwd:".len();
        fingerprint |= attribute.starts_with("fingerprint:");
        if let (true, Some((_, offered))) = (in_audio, audio.as_mut()) {
            offered.add_rtpmap(attribute);
        }
    }
    let (m_line, offered) = audio.ok_or(OfferError::NoAudio)?;
    if !(ufrag && pwd) {
        return Err(OfferError::NoIceCredentials);
    }
    if !fingerprint {
        return Err(OfferError::NoFingerprint);
    }
    if m_line.split_whitespace().nth(2) != Some("UDP/TLS/RTP/SAVPF") {
        return Err(OfferError::NotDtlsSrtp);
    }
    Ok(offered)
}

impl OfferedAudio {
    fn add_rtpmap(&mut self, attribute: &str) {
        let Some(map) = attribute.strip_prefix("rtpmap:") else {
            return;
        };
        let mut parts = map.splitn(2, ' ');
        let pt = parts.next().and_then(|p| p.parse::<u8>().ok());
        let encoding = parts.next().unwrap_or_default();
        let mut fields = encoding.split('/');
        let name = fields.next().unwrap_or_default().to_ascii_lowercase();
        let rate = fields.next().and_then(|r| r.parse::<u32>().ok());
        let (Some(pt), Some(rate)) = (pt.filter(|p| *p < 128), rate) else {
            return;
        };
        match (name.as_str(), rate) {
            ("pcmu", 8_000) => self.codecs.push((Codec::Pcmu, pt)),
            ("pcma", 8_000) => self.codecs.push((Codec::Pcma, pt)),
            ("opus", 48_000) => self.codecs.push((Codec::Opus, pt)),
            ("telephone-event", rate) => self.events.push(TelephoneEvent {
                payload_type: pt,
                clock_rate: rate,
            }),
            _ => {}
        }
    }

    fn find(&self, codec: Codec) -> Option<u8> {
        self.codecs
            .iter()
            .find(|(c, _)| *c == codec)
            .map(|(_, pt)| *pt)
    }

    /// Picks the browser leg's codec. With `G711` preferred, the trunk's
    /// codecs come first in the trunk's order (no transcoding at all when
    /// the trunk answers with the same one), then the other G.711, then
    /// Opus. With `Opus` preferred, Opus when offered.
    pub fn choose(
        &self,
        preference: BrowserCodec,
        trunk_codecs: &[Codec],
    ) -> Result<BrowserMedia, OfferError> {
        let g711 = trunk_codecs
            .iter()
            .copied()
            .filter(|codec| codec.is_g711())
            .chain([Codec::Pcmu, Codec::Pcma]);
        let order: Vec<Codec> = match preference {
            BrowserCodec::G711 => g711.chain([Codec::Opus]).collect(),
            BrowserCodec::Opus => std::iter::once(Codec::Opus).chain(g711).collect(),
        };
        let (codec, payload_type) = order
            .into_iter()
            .find_map(|codec| Some((codec, self.find(codec)?)))
            .ok_or(OfferError::NoCommonCodec)?;
        let telephone_event = self
            .events
            .iter()
            .find(|e| e.clock_rate == codec.clock_rate())
            .copied();
        Ok(BrowserMedia {
            codec,
            payload_type,
            telephone_event,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of a Chromium audio-only offer (values shortened).
    pub(crate) const CHROMIUM_OFFER: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\nt=0 0\r\na=group:BUNDLE 0\r\na=msid-semantic: WMS\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n\
c=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:Fh4c\r\na=ice-pwd:Z9CzWQZ3Ft2hD3J1aU2kSzQm\r\na=ice-options:trickle\r\n\
a=fingerprint:sha-256 5B:E6:6E:41:6B:44:2A:2B:1C:44:DE:15:30:0F:3C:7A:35:2D:3E:91:31:D8:6C:E7:6A:D0:E5:C1:D4:0B:1E:54\r\n\
a=setup:actpass\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:63 red/48000/2\r\na=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\na=rtpmap:13 CN/8000\r\n\
a=rtpmap:110 telephone-event/48000\r\na=rtpmap:126 telephone-event/8000\r\n";

    #[test]
    fn a_browser_offer_passes_and_g711_is_chosen_without_transcoding() {
        let offered = inspect(CHROMIUM_OFFER).unwrap();
        let media = offered
            .choose(BrowserCodec::G711, &[Codec::Pcma, Codec::Pcmu])
            .unwrap();
        assert_eq!(media.codec, Codec::Pcma);
        assert_eq!(media.payload_type, 8);
        assert_eq!(
            media.telephone_event,
            Some(TelephoneEvent {
                payload_type: 126,
                clock_rate: 8000
            })
        );
    }

    #[test]
    fn opus_is_chosen_when_preferred_or_when_it_is_all_there_is() {
        let offered = inspect(CHROMIUM_OFFER).unwrap();
        let media = offered.choose(BrowserCodec::Opus, &[Codec::Pcmu]).unwrap();
        assert_eq!((media.codec, media.payload_type), (Codec::Opus, 111));
        assert_eq!(media.telephone_event.map(|e| e.payload_type), Some(110));
        let opus_only = CHROMIUM_OFFER
            .replace("a=rtpmap:0 PCMU/8000\r\n", "")
            .replace("a=rtpmap:8 PCMA/8000\r\n", "");
        let media = inspect(&opus_only)
            .unwrap()
            .choose(BrowserCodec::G711, &[Codec::Pcmu])
            .unwrap();
        assert_eq!(media.codec, Codec::Opus);
    }

    #[test]
    fn malformed_offers_are_refused_with_the_reason() {
        let cases = [
            (
                CHROMIUM_OFFER.replace("m=audio", "m=video"),
                OfferError::NoAudio,
            ),
            (
                CHROMIUM_OFFER.replace("a=fingerprint:", "a=x-fingerprint:"),
                OfferError::NoFingerprint,
            ),
            (
                CHROMIUM_OFFER.replace("a=ice-pwd:", "a=x-ice-pwd:"),
                OfferError::NoIceCredentials,
            ),
            (
                CHROMIUM_OFFER.replace("a=ice-ufrag:Fh4c", "a=ice-ufrag:"),
                OfferError::NoIceCredentials,
            ),
            (
                CHROMIUM_OFFER.replace("UDP/TLS/RTP/SAVPF", "RTP/AVP"),
                OfferError::NotDtlsSrtp,
            ),
            ("hello".to_owned(), OfferError::NotSdp),
            ("v=0\r\n".repeat(10_000), OfferError::TooLarge),
        ];
        for (offer, expected) in cases {
            assert_eq!(inspect(&offer), Err(expected));
        }
        let no_codec = CHROMIUM_OFFER
            .replace("a=rtpmap:0 PCMU/8000\r\n", "")
            .replace("a=rtpmap:8 PCMA/8000\r\n", "")
            .replace("a=rtpmap:111 opus/48000/2\r\n", "");
        let offered = inspect(&no_codec).unwrap();
        assert_eq!(
            offered.choose(BrowserCodec::G711, &[Codec::Pcmu]),
            Err(OfferError::NoCommonCodec)
        );
    }

    #[test]
    fn garbage_never_panics() {
        for garbage in [
            "",
            "v=0",
            "v=0\na=rtpmap:",
            "v=0\nm=audio\na=rtpmap:999 PCMU/8000",
        ] {
            let _ = inspect(garbage);
        }
        let bytes: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
        let _ = inspect(&String::from_utf8_lossy(&bytes));
    }
}
