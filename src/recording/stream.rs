//! A stored recording streamed out as a WAV: read from the store and
//! decrypted one sealed segment at a time, so a long recording never sits in
//! memory whole.
//!
//! Everything that can be checked before the first byte goes out is
//! checked first: the key, the header and its tag, that the header names
//! this recording and its consent receipt, and that the file's size is one a
//! finished recording can have (it gives the WAV's length). A segment that
//! fails later (tampered, reordered, cut) ends the stream with an error, so
//! the reader sees a broken transfer, never wrong audio. The access is
//! audited before streaming starts.

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt as _};

use super::access::{AccessError, check_header, data_key, door_of, wav_header};
use super::format::{self, FormatError, SEALED_SEGMENT_LEN, SegmentDecryptor};
use super::storage::{RecordingStorage, StorageError};
use crate::keys::KeyRing;
use crate::store::{Actor, RecordingRow, Store};

/// Bytes read before the header is decoded.
const HEADER_READ: u64 = 4096;

/// A recording on its way out as a WAV.
pub struct WavStream {
    /// The WAV's length in bytes, header included.
    pub len: u64,
    pub body: BoxStream<'static, Result<Bytes, std::io::Error>>,
}

/// Opens the stored, complete recording of `row` for streaming and audits
/// `actor` reading it. Recordings that are not stored and complete are
/// read whole with [`super::access::open_row`] instead.
pub async fn open_wav_stream(
    store: &Store,
    storage: &RecordingStorage,
    keys: &KeyRing,
    row: &RecordingRow,
    actor: &Actor,
) -> Result<WavStream, AccessError> {
    let key = data_key(keys, row)?;
    let (size, mut chunks) = storage.read_stream(&row.object_path).await?;
    // A header is a few hundred bytes; read at least that much before
    // asking whether it is whole (an empty buffer has no magic yet).
    let mut pending = Vec::new();
    while (pending.len() as u64) < size.min(HEADER_READ) {
        match chunks.next().await {
            Some(chunk) => pending.extend_from_slice(&chunk?),
            None => return Err(FormatError::Truncated.into()),
        }
    }
    let (decryptor, header, start) = loop {
        match SegmentDecryptor::start(&key, &pending) {
            Ok(started) => break started,
            Err(FormatError::Truncated) if (pending.len() as u64) < size => {
                match chunks.next().await {
                    Some(chunk) => pending.extend_from_slice(&chunk?),
                    None => return Err(FormatError::Truncated.into()),
                }
            }
            Err(error) => return Err(error.into()),
        }
    };
    check_header(row, &header)?;
    let audio_len = format::audio_len(size, start as u64).ok_or(FormatError::Truncated)?;
    store.audit_access(row, actor, door_of(actor)).await?;
    let wav = wav_header(
        audio_len,
        u16::from(header.audio.channels),
        header.audio.sample_rate,
    );
    let segments = Segments {
        chunks,
        pending: pending.split_off(start),
        remaining: size - start as u64,
        decryptor,
    };
    let body = stream::once(async move { Ok(Bytes::from(wav)) })
        .chain(segments.into_stream())
        .boxed();
    Ok(WavStream {
        len: 44 + audio_len,
        body,
    })
}

/// The sealed segments still to read and open.
struct Segments {
    chunks: BoxStream<'static, Result<Bytes, StorageError>>,
    /// Read but not yet opened.
    pending: Vec<u8>,
    /// Bytes of the file not yet opened (`pending` included).
    remaining: u64,
    decryptor: SegmentDecryptor,
}

impl Segments {
    fn into_stream(self) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
        stream::try_unfold(self, |mut at| async move {
            if at.remaining == 0 {
                return Ok(None);
            }
            let want = (SEALED_SEGMENT_LEN as u64).min(at.remaining) as usize;
            while at.pending.len() < want {
                match at.chunks.next().await {
                    Some(chunk) => at
                        .pending
                        .extend_from_slice(&chunk.map_err(std::io::Error::other)?),
                    None => return Err(std::io::Error::other("recording ends before its size")),
                }
            }
            let rest = at.pending.split_off(want);
            let sealed = std::mem::replace(&mut at.pending, rest);
            at.remaining -= want as u64;
            let audio = at
                .decryptor
                .open_next(&sealed, at.remaining == 0)
                .map_err(|error| {
                    tracing::warn!(%error, "a streamed recording failed its checks");
                    std::io::Error::other(error)
                })?;
            Ok(Some((Bytes::from(audio), at)))
        })
    }
}
