//! The encrypted recording format: a plaintext header, then the audio in
//! AES-256-GCM segments chained by the STREAM construction (Hoang, Reyhanitabar,
//! Rogaway, Vizár: "Online Authenticated-Encryption and its Nonce-Reuse
//! Misuse-Resistance"), as `aead-stream`'s `StreamBE32` implements it.
//!
//! ```text
//! magic "CGREC\0"  version u8  body_len u16
//! body: key_id (u8 len + UTF-8)  recording_id (u8 len + UTF-8)
//!       nonce_prefix [7]  consent_hash [32]
//!       encoding u8  channels u8  sample_rate u32  segment_size u32
//! header_tag [16]        AES-GCM tag over nothing, the header as associated data
//! segment 0 .. n-1       segment_size plaintext bytes + 16-byte tag each
//! segment n (last)       0 ..< segment_size bytes + tag, flagged last
//! ```
//! All integers are big-endian.
//!
//! Invariants:
//! - Every segment carries the whole header (magic to the end of the body) as
//!   associated data, its index in the 32-bit counter and the last-segment flag
//!   in its nonce: an edited header, a flipped byte, swapped, dropped or
//!   appended segments and a missing end all fail authentication.
//! - A full-size segment is never the last: when the audio fills the last
//!   segment exactly an empty last segment follows, so a recording cut at a
//!   segment boundary is told apart from a complete one.
//! - The header tag uses the nonce `prefix ‖ 0xFFFFFFFF ‖ 0x02`, a flag byte
//!   STREAM never uses, so it collides with no segment's nonce.
//! - Plaintext exists only in memory: [`SegmentEncryptor`] buffers at most one
//!   segment and hands out ciphertext only.
//!
//! A recording interrupted mid-call (the node died) has no last segment;
//! [`Completeness::Interrupted`] decrypts it up to its last whole segment.

use aead_stream::{NewStream, StreamBE32, StreamPrimitive};
use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit};

use crate::domain::RecordingId;
use crate::keys::DataKey;

const MAGIC: &[u8; 6] = b"CGREC\0";
pub const FORMAT_VERSION: u8 = 1;
/// Plaintext bytes per segment: 64 KiB, about 2 s of two-channel 8 kHz
/// 16-bit audio, so a crash loses at most that much.
pub const SEGMENT_SIZE: usize = 64 * 1024;
const TAG_LEN: usize = 16;
const NONCE_PREFIX_LEN: usize = 7;
/// The fixed part before the body: magic, version, body length.
const PREAMBLE_LEN: usize = MAGIC.len() + 1 + 2;

/// How the audio inside is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioFormat {
    /// 1: linear PCM, 16-bit little-endian samples, channels interleaved.
    pub encoding: u8,
    pub channels: u8,
    pub sample_rate: u32,
}

impl AudioFormat {
    pub const PCM16: u8 = 1;

    /// Two channels (visitor, callee) of 8 kHz 16-bit PCM.
    pub fn two_channel_8k() -> Self {
        Self {
            encoding: Self::PCM16,
            channels: 2,
            sample_rate: 8_000,
        }
    }
}

/// What the header says; all of it is authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingHeader {
    /// The key-encryption key that wraps this recording's data key.
    pub key_id: String,
    pub recording_id: RecordingId,
    pub nonce_prefix: [u8; NONCE_PREFIX_LEN],
    /// SHA-256 of the consent receipt the recording was made under.
    pub consent_hash: [u8; 32],
    pub audio: AudioFormat,
}

/// Why a recording cannot be read; each names the problem.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    #[error("not a callgate recording (bad magic)")]
    NotARecording,
    #[error("recording format version {0} is not supported (this build reads {FORMAT_VERSION})")]
    UnsupportedVersion(u8),
    #[error("the recording header is malformed: {0}")]
    MalformedHeader(&'static str),
    #[error("the header does not authenticate: it was altered, or the key is not this recording's")]
    HeaderTampered,
    #[error("segment {index} does not authenticate: it was altered")]
    SegmentTampered { index: u32 },
    #[error("segment {index} holds segment {original}: the segments were reordered")]
    SegmentsReordered { index: u32, original: u32 },
    #[error("the recording is truncated: it ends without its last segment")]
    Truncated,
    #[error("the last segment ({index}) is truncated or altered")]
    LastSegmentDamaged { index: u32 },
    #[error("the recording has data after its last segment")]
    TrailingData,
    #[error("the recording is too long for its segment counter")]
    TooLong,
}

impl RecordingHeader {
    /// The header's bytes, the associated data of every segment.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(96);
        push_short_string(&mut body, &self.key_id);
        push_short_string(&mut body, &self.recording_id);
        body.extend_from_slice(&self.nonce_prefix);
        body.extend_from_slice(&self.consent_hash);
        body.push(self.audio.encoding);
        body.push(self.audio.channels);
        body.extend_from_slice(&self.audio.sample_rate.to_be_bytes());
        body.extend_from_slice(&(SEGMENT_SIZE as u32).to_be_bytes());
        let mut out = Vec::with_capacity(PREAMBLE_LEN + body.len());
        out.extend_from_slice(MAGIC);
        out.push(FORMAT_VERSION);
        // Both strings are cut to 255 bytes, so the body fits easily.
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Parses the header at the start of `bytes`; returns it and its length
    /// (the header tag follows).
    pub fn decode(bytes: &[u8]) -> Result<(Self, usize), FormatError> {
        if bytes.len() < PREAMBLE_LEN || &bytes[..MAGIC.len()] != MAGIC {
            return Err(FormatError::NotARecording);
        }
        let version = bytes[MAGIC.len()];
        if version != FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion(version));
        }
        let body_len = usize::from(u16::from_be_bytes([bytes[7], bytes[8]]));
        let end = PREAMBLE_LEN + body_len;
        let body = bytes
            .get(PREAMBLE_LEN..end)
            .ok_or(FormatError::MalformedHeader("shorter than its length"))?;
        let mut reader = Reader(body);
        let header = Self {
            key_id: reader.short_string()?,
            recording_id: reader.short_string()?.into(),
            nonce_prefix: reader.array()?,
            consent_hash: reader.array()?,
            audio: AudioFormat {
                encoding: reader.array::<1>()?[0],
                channels: reader.array::<1>()?[0],
                sample_rate: u32::from_be_bytes(reader.array()?),
            },
        };
        let segment_size = u32::from_be_bytes(reader.array()?);
        if segment_size as usize != SEGMENT_SIZE {
            return Err(FormatError::MalformedHeader("unexpected segment size"));
        }
        if !reader.0.is_empty() {
            return Err(FormatError::MalformedHeader("trailing bytes in the body"));
        }
        Ok((header, end))
    }
}

fn push_short_string(out: &mut Vec<u8>, text: &str) {
    let mut end = text.len().min(255);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    out.push(end as u8);
    out.extend_from_slice(&text.as_bytes()[..end]);
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, len: usize) -> Result<&[u8], FormatError> {
        if self.0.len() < len {
            return Err(FormatError::MalformedHeader("body too short"));
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], FormatError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn short_string(&mut self) -> Result<String, FormatError> {
        let len = usize::from(self.array::<1>()?[0]);
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| FormatError::MalformedHeader("not UTF-8"))
    }
}

/// The AEAD pieces shared by writing and reading.
struct Cipher {
    stream: StreamBE32<Aes256Gcm>,
    aead: Aes256Gcm,
    header: Vec<u8>,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
}

impl Cipher {
    fn new(key: &DataKey, header: &RecordingHeader) -> Self {
        let aead = Aes256Gcm::new(&(*key.expose()).into());
        let prefix =
            aead_stream::Nonce::<Aes256Gcm, StreamBE32<Aes256Gcm>>::from(header.nonce_prefix);
        Self {
            stream: StreamBE32::from_aead(aead.clone(), &prefix),
            aead,
            header: header.encode(),
            nonce_prefix: header.nonce_prefix,
        }
    }

    fn header_nonce(&self) -> aes_gcm::Nonce<aes_gcm::aead::consts::U12> {
        let mut nonce = [0xFF; 12];
        nonce[..NONCE_PREFIX_LEN].copy_from_slice(&self.nonce_prefix);
        nonce[11] = 0x02;
        nonce.into()
    }

    fn header_tag(&self) -> Vec<u8> {
        let payload = Payload {
            msg: &[],
            aad: &self.header,
        };
        // Encrypting nothing cannot fail.
        self.aead
            .encrypt(&self.header_nonce(), payload)
            .unwrap_or_default()
    }

    fn check_header_tag(&self, tag: &[u8]) -> Result<(), FormatError> {
        let payload = Payload {
            msg: tag,
            aad: &self.header,
        };
        self.aead
            .decrypt(&self.header_nonce(), payload)
            .map(drop)
            .map_err(|_| FormatError::HeaderTampered)
    }

    fn seal(&self, index: u32, last: bool, buffer: &mut Vec<u8>) {
        // AES-GCM fails only on inputs over 64 GiB; a segment is 64 KiB.
        let _ = self
            .stream
            .encrypt_in_place(index, last, &self.header, buffer);
    }

    fn open(&self, index: u32, last: bool, segment: &[u8]) -> Option<Vec<u8>> {
        let mut buffer = segment.to_vec();
        self.stream
            .decrypt_in_place(index, last, &self.header, &mut buffer)
            .ok()
            .map(|()| buffer)
    }
}

/// Encrypts a recording as it is written. Feed plaintext with
/// [`SegmentEncryptor::push`]; ciphertext comes out a whole segment at a
/// time; [`SegmentEncryptor::finish`] seals the last segment.
pub struct SegmentEncryptor {
    cipher: Cipher,
    pending: Vec<u8>,
    next_index: u32,
}

impl SegmentEncryptor {
    /// Returns the encryptor and the bytes that start the file (header and
    /// header tag).
    pub fn new(key: &DataKey, header: &RecordingHeader) -> (Self, Vec<u8>) {
        let cipher = Cipher::new(key, header);
        let mut start = cipher.header.clone();
        start.extend_from_slice(&cipher.header_tag());
        let encryptor = Self {
            cipher,
            pending: Vec::with_capacity(SEGMENT_SIZE + TAG_LEN),
            next_index: 0,
        };
        (encryptor, start)
    }

    /// Appends the ciphertext of every segment `plaintext` completes to
    /// `out`. A segment is sealed only once more audio follows it, so a
    /// full segment is never the last.
    pub fn push(&mut self, mut plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), FormatError> {
        while !plaintext.is_empty() {
            if self.pending.len() == SEGMENT_SIZE {
                self.seal_pending(false, out)?;
            }
            let room = SEGMENT_SIZE - self.pending.len();
            let (now, later) = plaintext.split_at(room.min(plaintext.len()));
            self.pending.extend_from_slice(now);
            plaintext = later;
        }
        Ok(())
    }

    /// Seals what is pending as the last segment (empty when the audio
    /// ended on a segment boundary: then the full one goes first).
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), FormatError> {
        if self.pending.len() == SEGMENT_SIZE {
            self.seal_pending(false, out)?;
        }
        self.seal_pending(true, out)
    }

    fn seal_pending(&mut self, last: bool, out: &mut Vec<u8>) -> Result<(), FormatError> {
        let index = self.next_index;
        self.next_index = index.checked_add(1).ok_or(FormatError::TooLong)?;
        self.cipher.seal(index, last, &mut self.pending);
        out.extend_from_slice(&self.pending);
        self.pending.clear();
        Ok(())
    }
}

/// Whether a recording was closed properly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completeness {
    /// Finished: the last segment must be there.
    Complete,
    /// The writer stopped mid-recording: read up to the last whole segment.
    Interrupted,
}

/// A decrypted recording.
#[derive(Debug)]
pub struct Decrypted {
    pub header: RecordingHeader,
    pub audio: Vec<u8>,
    /// False when read as interrupted and no last segment was found.
    pub complete: bool,
}

/// Reads just the header (for its key id) without any key.
pub fn read_header(file: &[u8]) -> Result<RecordingHeader, FormatError> {
    RecordingHeader::decode(file).map(|(header, _)| header)
}

/// Decrypts a whole recording held in memory.
pub fn decrypt(key: &DataKey, file: &[u8], expect: Completeness) -> Result<Decrypted, FormatError> {
    let (header, header_len) = RecordingHeader::decode(file)?;
    let cipher = Cipher::new(key, &header);
    let tag_end = header_len + TAG_LEN;
    let tag = file
        .get(header_len..tag_end)
        .ok_or(FormatError::Truncated)?;
    cipher.check_header_tag(tag)?;
    let segments: Vec<&[u8]> = file[tag_end..].chunks(SEGMENT_SIZE + TAG_LEN).collect();
    let mut audio = Vec::with_capacity(file.len());
    for (index, segment) in segments.iter().enumerate() {
        let index = u32::try_from(index).map_err(|_| FormatError::TooLong)?;
        let is_final_chunk = index as usize + 1 == segments.len();
        match open_segment(&cipher, index, segment, is_final_chunk, expect)? {
            Opened::Middle(plain) => audio.extend_from_slice(&plain),
            Opened::Last(plain) => {
                audio.extend_from_slice(&plain);
                return Ok(Decrypted {
                    header,
                    audio,
                    complete: true,
                });
            }
            Opened::CutOff => break,
        }
    }
    match expect {
        Completeness::Complete => Err(FormatError::Truncated),
        Completeness::Interrupted => Ok(Decrypted {
            header,
            audio,
            complete: false,
        }),
    }
}

/// One sealed segment as it lies in the file: up to 64 KiB and its tag.
pub const SEALED_SEGMENT_LEN: usize = SEGMENT_SIZE + TAG_LEN;

/// Decrypts a finished recording segment by segment, so it can be streamed
/// out without being held in memory. [`SegmentDecryptor::start`] checks the
/// header; each sealed segment then goes to [`SegmentDecryptor::open_next`]
/// in file order, and the same checks as [`decrypt`] apply: a segment that
/// is altered, moved, cut short or missing at the end is an error.
pub struct SegmentDecryptor {
    cipher: Cipher,
    next: u32,
    finished: bool,
}

impl SegmentDecryptor {
    /// From the first bytes of a file (at least its header and header tag):
    /// the decryptor, the header, and where the first segment starts.
    pub fn start(
        key: &DataKey,
        file_start: &[u8],
    ) -> Result<(Self, RecordingHeader, usize), FormatError> {
        let (header, header_len) = RecordingHeader::decode(file_start)?;
        let cipher = Cipher::new(key, &header);
        let tag_end = header_len + TAG_LEN;
        let tag = file_start
            .get(header_len..tag_end)
            .ok_or(FormatError::Truncated)?;
        cipher.check_header_tag(tag)?;
        let decryptor = Self {
            cipher,
            next: 0,
            finished: false,
        };
        Ok((decryptor, header, tag_end))
    }

    /// The audio of the next sealed segment; `final_chunk` when it is the
    /// last bytes of the file, which must hold the last segment.
    pub fn open_next(&mut self, segment: &[u8], final_chunk: bool) -> Result<Vec<u8>, FormatError> {
        if self.finished {
            return Err(FormatError::TrailingData);
        }
        let index = self.next;
        self.next = index.checked_add(1).ok_or(FormatError::TooLong)?;
        match open_segment(
            &self.cipher,
            index,
            segment,
            final_chunk,
            Completeness::Complete,
        )? {
            Opened::Middle(_) if final_chunk => Err(FormatError::Truncated),
            Opened::Middle(plain) => Ok(plain),
            Opened::Last(plain) => {
                self.finished = true;
                Ok(plain)
            }
            Opened::CutOff => Err(FormatError::Truncated),
        }
    }
}

/// The audio length of a finished recording file of `file_len` bytes whose
/// segments start at `segments_start`: every segment but the last is full,
/// and the last holds at least its tag. `None` for a size no finished
/// recording can have.
pub fn audio_len(file_len: u64, segments_start: u64) -> Option<u64> {
    let sealed = file_len.checked_sub(segments_start)?;
    let chunk = SEALED_SEGMENT_LEN as u64;
    let (full, rest) = (sealed / chunk, sealed % chunk);
    if rest < TAG_LEN as u64 {
        return None;
    }
    Some(sealed - (full + 1) * TAG_LEN as u64)
}

enum Opened {
    Middle(Vec<u8>),
    Last(Vec<u8>),
    /// The partial tail of an interrupted recording.
    CutOff,
}

fn open_segment(
    cipher: &Cipher,
    index: u32,
    segment: &[u8],
    is_final_chunk: bool,
    expect: Completeness,
) -> Result<Opened, FormatError> {
    let full = segment.len() == SEGMENT_SIZE + TAG_LEN;
    if full {
        if let Some(plain) = cipher.open(index, false, segment) {
            return Ok(Opened::Middle(plain));
        }
        if cipher.open(index, true, segment).is_some() {
            return Err(FormatError::TrailingData);
        }
    } else if is_final_chunk {
        if let Some(plain) = cipher.open(index, true, segment) {
            return Ok(Opened::Last(plain));
        }
        if expect == Completeness::Interrupted {
            return Ok(Opened::CutOff);
        }
        return Err(reordered_from(cipher, index, segment)
            .unwrap_or(FormatError::LastSegmentDamaged { index }));
    }
    Err(reordered_from(cipher, index, segment).unwrap_or(FormatError::SegmentTampered { index }))
}

/// A segment that fails at `index` but opens at another position was moved.
fn reordered_from(cipher: &Cipher, index: u32, segment: &[u8]) -> Option<FormatError> {
    const SEARCH: u32 = 64;
    let low = index.saturating_sub(SEARCH);
    let high = index.saturating_add(SEARCH);
    (low..=high)
        .filter(|&other| other != index)
        .find(|&other| {
            cipher.open(other, false, segment).is_some()
                || cipher.open(other, true, segment).is_some()
        })
        .map(|original| FormatError::SegmentsReordered { index, original })
}

#[cfg(test)]
mod tests;
